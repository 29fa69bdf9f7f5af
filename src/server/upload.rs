//! Uploads: `PUT`/`POST /api/v1/dists/{dist}/components/{component}/packages`
//! with the .deb as the raw body or as the `file` field of a multipart form.
//!
//! The body streams into a temporary file under `state/uploads/` (hashed as
//! it arrives, cut off past the size cap), then takes the same path as
//! `repoctl add`: inspection, then a commit through the group-commit queue.
//! Owns the temporary file's life: it is gone when the request ends, whatever
//! the outcome, including a client that disconnects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::error::{is_disk_full, ApiError};
use super::App;
use crate::config::Target;
use crate::repo::{Actor, AddOutcome, Door, Inspected};

/// Where uploads stream to, under the repository root (same filesystem as
/// the pool).
pub const UPLOADS_DIR: &str = "state/uploads";

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    /// `published`: answer after the publish that includes the package.
    wait: Option<String>,
}

pub async fn upload(
    State(app): State<Arc<App>>,
    UrlPath((dist, component)): UrlPath<(String, String)>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let result = receive(&app, dist, component, query, request).await;
    match &result {
        Ok(_) => {}
        Err(e) => app.metrics.refused(e.reason),
    }
    result
}

async fn receive(
    app: &Arc<App>,
    dist: String,
    component: String,
    query: UploadQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let wait = match query.wait.as_deref() {
        None => false,
        Some("published") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("unknown wait={other}"),
                "use ?wait=published, or leave it out to answer once the upload is stored",
            ))
        }
    };
    let grant = app.authenticate(request.headers()).await?;
    let target = Target { dist, component };
    app.check_target(&target)?;
    if !grant.may_upload(&target) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token {} may not upload to {target}", grant.name),
            format!("ask an operator for a token with --upload {target}"),
        ));
    }
    let cap = app.config.server.max_upload_bytes;
    if content_length(request.headers()).is_some_and(|length| length > cap) {
        return Err(too_large(cap));
    }
    let expected_sha256 = header_text(request.headers(), "x-checksum-sha256");
    let temp = TempUpload::create(&app.root.join(UPLOADS_DIR)).await?;
    let received = if is_multipart(request.headers()) {
        receive_multipart(request, &temp, cap).await?
    } else {
        let name = header_text(request.headers(), "x-file-name");
        let body = request.into_body().into_data_stream();
        temp.write(name.as_deref(), body, cap).await?
    };
    if let Some(expected) = expected_sha256 {
        if !expected.eq_ignore_ascii_case(&received.sha256) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "checksum",
                format!(
                    "{}: the body's sha256 is {}, but X-Checksum-Sha256 says {expected}",
                    received.shown_name, received.sha256
                ),
                "the upload was damaged on the way; send it again",
            ));
        }
    }

    let actor = Actor {
        door: Door::Http,
        name: grant.name.clone(),
    };
    let committed = commit(app, &received, &target, actor).await;
    drop(temp);
    let (report, sequence) = committed?;
    let added = report.files.into_iter().next().ok_or_else(|| {
        ApiError::internal(&std::io::Error::other(
            "an add that succeeded reported no file",
        ))
    })?;
    if added.sha256 != received.sha256 {
        // The file on disk is not what we received: say so, never ingest silently.
        return Err(ApiError::internal(&std::io::Error::other(format!(
            "{}: stored sha256 {} differs from the received {}",
            received.shown_name, added.sha256, received.sha256
        ))));
    }
    app.metrics.uploaded(received.size);
    let published = if wait {
        match app.ingest.wait_published(sequence).await {
            Ok(()) => serde_json::Value::Bool(true),
            Err(error) => {
                tracing::error!(%error, "publish after upload failed");
                serde_json::Value::Bool(false)
            }
        }
    } else {
        serde_json::Value::Bool(app.ingest.is_published(sequence))
    };
    let status = match added.outcome {
        AddOutcome::Unchanged => StatusCode::OK,
        AddOutcome::Added | AddOutcome::Linked => StatusCode::CREATED,
    };
    let body = serde_json::json!({
        "package": added.package,
        "version": added.version,
        "architecture": added.architecture,
        "dist": added.target.dist,
        "component": added.target.component,
        "filename": added.filename,
        "size": received.size,
        "sha256": added.sha256,
        "outcome": added.outcome,
        "published": published,
    });
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// Inspection and the commit, off the async threads.
async fn commit(
    app: &Arc<App>,
    received: &Received,
    target: &Target,
    actor: Actor,
) -> Result<(crate::repo::AddReport, u64), ApiError> {
    let app = Arc::clone(app);
    let path = received.path.clone();
    let shown = format!("upload {}", received.shown_name);
    let target = target.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let inspected = Inspected::files(std::slice::from_ref(&path), &app.config, false)?
            .with_source_name(&shown);
        app.ingest.commit(inspected, &target, &actor)
    })
    .await
    .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))?;
    outcome.map_err(|e| {
        ApiError::from(e).without_path(&received.path.display().to_string(), &received.shown_name)
    })
}

async fn receive_multipart(
    request: Request,
    temp: &TempUpload,
    cap: u64,
) -> Result<Received, ApiError> {
    let bad_form = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the multipart form cannot be read: {e}"),
            "send the .deb as the form field `file` (curl -F file=@pkg.deb URL), or as the raw body (curl -T pkg.deb URL)",
        )
    };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad_form(&e))?;
    while let Some(field) = form.next_field().await.map_err(|e| bad_form(&e))? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(str::to_string);
        return temp.write(name.as_deref(), field, cap).await;
    }
    Err(bad_form(&"it has no field named `file`"))
}

/// A received body: where it is and what it hashed to.
struct Received {
    path: PathBuf,
    /// The client's file name, or `upload.deb`: what error messages show.
    shown_name: String,
    size: u64,
    sha256: String,
}

/// A directory of its own under `state/uploads/`, removed on drop.
struct TempUpload {
    dir: PathBuf,
}

impl TempUpload {
    async fn create(uploads: &Path) -> Result<TempUpload, ApiError> {
        let mut random = [0u8; 12];
        getrandom::getrandom(&mut random)
            .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))?;
        let dir = uploads.join(hex::encode(random));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error(&e))?;
        Ok(TempUpload { dir })
    }

    /// Streams `body` into the file, hashing it, refusing more than `cap`.
    async fn write<S, E>(&self, name: Option<&str>, body: S, cap: u64) -> Result<Received, ApiError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let shown_name = safe_file_name(name);
        let path = self.dir.join(&shown_name);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| io_error(&e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                // Usually the client went away; nothing is kept.
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "incomplete-body",
                    format!("{shown_name}: the body could not be read to its end: {e}"),
                    "send the upload again",
                )
            })?;
            size += chunk.len() as u64;
            if size > cap {
                return Err(too_large(cap));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| io_error(&e))?;
        }
        file.flush().await.map_err(|e| io_error(&e))?;
        Ok(Received {
            path,
            shown_name,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes what a killed server left in `state/uploads/` (never acknowledged).
pub fn sweep(root: &Path) -> std::io::Result<()> {
    let dir = root.join(UPLOADS_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(&dir)
}

/// The client's file name if it is a plain `.deb` name; else `upload.deb`.
fn safe_file_name(name: Option<&str>) -> String {
    name.map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n))
        .filter(|n| {
            n.ends_with(".deb")
                && !n.starts_with('.')
                && n.len() <= 200
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-._~:".contains(&b))
        })
        .unwrap_or("upload.deb")
        .to_string()
}

fn io_error(e: &std::io::Error) -> ApiError {
    if is_disk_full(e) {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk-full",
            "the repository's disk is full; nothing was stored",
            "free space on the repository's disk (repoctl prune, gc) and upload again",
        )
    } else {
        ApiError::internal(e)
    }
}

fn too_large(cap: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("the upload is larger than this server's limit of {cap} bytes"),
        "raise [server] max_upload_bytes in repoctl.toml if such packages are expected",
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    Some(headers.get(name)?.to_str().ok()?.trim().to_string())
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn only_plain_deb_names_are_kept() {
        assert_eq!(
            safe_file_name(Some("vrmd-whois_42_all.deb")),
            "vrmd-whois_42_all.deb"
        );
        assert_eq!(safe_file_name(Some("../../etc/x.deb")), "x.deb");
        assert_eq!(safe_file_name(Some("C:\\tmp\\a_1_all.deb")), "a_1_all.deb");
        assert_eq!(safe_file_name(Some(".hidden.deb")), "upload.deb");
        assert_eq!(safe_file_name(Some("notes.txt")), "upload.deb");
        assert_eq!(safe_file_name(None), "upload.deb");
    }
}
