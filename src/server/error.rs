//! API errors: a JSON body `{error, hint}` with an honest status.
//!
//! Owns the mapping from the core's errors to HTTP statuses. A 500 never
//! shows its cause to the client (it may name paths or internals); the
//! cause is logged instead.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::deb::inspect::DebError;
use crate::repo::lifecycle::LifecycleError;
use crate::repo::next_version::NextVersionError;
use crate::repo::publish::PublishError;
use crate::repo::tokens::TokenError;
use crate::repo::{error_chain, RepoError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub hint: Option<String>,
    /// A short label for the refusals metric (`not-a-deb`, `conflict`, ...).
    pub reason: &'static str,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        reason: &'static str,
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            hint: Some(hint.into()),
            reason,
        }
    }

    /// A failure that is ours, not the client's: logged with its cause,
    /// answered with a generic message.
    pub fn internal(cause: &dyn std::error::Error) -> ApiError {
        tracing::error!(cause = %error_chain(cause), "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal error; the cause is in the server's log".into(),
            hint: None,
            reason: "internal",
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown token",
            "send `Authorization: Bearer TOKEN` with a token from `repoctl token create`",
        )
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            what,
            "see GET /api/v1/dists for what this repository publishes",
        )
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// Rewrites every mention of a server-side temporary path, so the
    /// client sees the name it uploaded.
    pub fn without_path(mut self, path: &str, shown: &str) -> ApiError {
        self.error = self.error.replace(path, shown);
        self
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> ApiError {
        let (status, reason) = match &e {
            RepoError::Deb(DebError::Io { source, .. }) if is_disk_full(source) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk-full")
            }
            RepoError::Deb(DebError::Io { .. }) => return ApiError::internal(&e),
            RepoError::Deb(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not-a-deb"),
            RepoError::Policy(_) => (StatusCode::UNPROCESSABLE_ENTITY, "policy"),
            RepoError::Conflict { .. } | RepoError::VersionAlias { .. } => {
                (StatusCode::CONFLICT, "conflict")
            }
            RepoError::UnknownTarget { .. } => (StatusCode::NOT_FOUND, "unknown-target"),
            RepoError::Lifecycle(LifecycleError::BadSpec { .. }) => {
                (StatusCode::BAD_REQUEST, "bad-request")
            }
            RepoError::Lifecycle(LifecycleError::NotPublished { .. }) => {
                (StatusCode::NOT_FOUND, "not-published")
            }
            RepoError::Lifecycle(_) => (StatusCode::CONFLICT, "conflict"),
            RepoError::NextVersion(NextVersionError::NotInteger { .. })
            | RepoError::NextVersion(NextVersionError::Invalid { .. }) => {
                (StatusCode::CONFLICT, "not-integer")
            }
            RepoError::Token(TokenError::BadScope { .. } | TokenError::BadName { .. }) => {
                (StatusCode::BAD_REQUEST, "bad-request")
            }
            RepoError::Io { source, .. } if is_disk_full(source) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk-full")
            }
            RepoError::Catalog(sql) if is_sqlite_full(sql) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk-full")
            }
            RepoError::Publish(PublishError::Io { source, .. }) if is_disk_full(source) => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk-full")
            }
            _ => return ApiError::internal(&e),
        };
        let hint = if status == StatusCode::INSUFFICIENT_STORAGE {
            Some("nothing was stored; free space on the repository's disk (repoctl prune, gc) and upload again".into())
        } else {
            e.hint()
        };
        ApiError {
            status,
            error: error_chain(&e),
            hint,
            reason,
        }
    }
}

pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn is_sqlite_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&Body {
            error: &self.error,
            hint: self.hint.as_deref(),
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"repoctl\""),
            );
        }
        response
    }
}
