//! Operator actions over HTTP: `POST /api/v1/operations/{action}` with a
//! JSON body, for copy, move, remove, prune, rollback, restore, gc and
//! verify (`"repair": true` republishes).
//!
//! Each needs an operator token (`repoctl token create NAME --operator`) and
//! calls the same `Repository` method as its CLI command, on the server's
//! writer; the answer is the command's `--json` output. `"dry_run": true`
//! plans without changing anything.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;

use super::error::ApiError;
use super::App;
use crate::config::Target;
use crate::repo::lifecycle::PackageSpec;
use crate::repo::{Actor, Door, RepoError};

/// Operation bodies are a few hundred bytes of JSON; a longer one is refused
/// (413) rather than buffered.
const MAX_BODY_BYTES: usize = 64 << 10;

/// The body of every operation; each uses the fields its CLI command has.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// NAME=VERSION (copy, move, remove, restore).
    spec: Option<String>,
    /// A package name (rollback, prune).
    package: Option<String>,
    /// DIST/COMPONENT, or `dist` and `component`.
    from: Option<String>,
    dist: Option<String>,
    component: Option<String>,
    /// Copy and move: DIST/COMPONENT or a list of them. Rollback: a version.
    to: Option<serde_json::Value>,
    /// Prune: how many versions to keep.
    keep: Option<usize>,
    #[serde(default)]
    dry_run: bool,
    /// Verify: republish the served tree if that fixes what was found.
    #[serde(default)]
    repair: bool,
}

pub async fn operate(
    State(app): State<Arc<App>>,
    UrlPath(action): UrlPath<String>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let grant = app.authenticate(request.headers()).await?;
    if !grant.operator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token {} may not run operator actions", grant.name),
            "use a token made with `repoctl token create NAME --operator`",
        ));
    }
    // Read and parsed here, after the token check, whatever the
    // Content-Type says.
    let body = read_body(request).await?;
    let body: Body = if body.is_empty() {
        Body::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            bad(&format!(
                "the body is not valid JSON for this operation: {e}"
            ))
        })?
    };
    let actor = Actor {
        door: Door::Http,
        name: grant.name,
    };
    let app = Arc::clone(&app);
    tokio::task::spawn_blocking(move || run(&app, &action, &body, &actor))
        .await
        .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))?
        .map(Json)
}

fn run(app: &App, action: &str, body: &Body, actor: &Actor) -> Result<serde_json::Value, ApiError> {
    let dry = body.dry_run;
    let value = match action {
        "copy" | "move" => {
            let (spec, from, to) = (spec(body)?, place(body)?, targets(body)?);
            let moving = action == "move";
            json(
                app.ingest
                    .with_repo(|r| r.copy(&spec, &from, &to, moving, actor, dry))?,
            )
        }
        "remove" => {
            let (spec, from) = (spec(body)?, place(body)?);
            json(
                app.ingest
                    .with_repo(|r| r.remove(&spec, &from, actor, dry))?,
            )
        }
        "restore" => {
            let (spec, at) = (spec(body)?, place(body)?);
            json(
                app.ingest
                    .with_repo(|r| r.restore(&spec, &at, actor, dry))?,
            )
        }
        "rollback" => {
            let package = required(&body.package, "package", "vrmd-whois")?;
            let at = place(body)?;
            let to = match &body.to {
                None => None,
                Some(serde_json::Value::String(v)) => Some(v.clone()),
                Some(_) => return Err(bad("`to` of a rollback is a version, e.g. \"41\"")),
            };
            json(
                app.ingest
                    .with_repo(|r| r.rollback(&package, &at, to.as_deref(), actor, dry))?,
            )
        }
        "prune" => {
            let keep = body
                .keep
                .filter(|k| *k > 0)
                .ok_or_else(|| bad("prune needs `keep`, at least 1"))?;
            let (dist, component) = (body.dist.as_deref(), body.component.as_deref());
            json(app.ingest.with_repo(|r| {
                r.prune(body.package.as_deref(), keep, dist, component, actor, dry)
            })?)
        }
        "gc" => json(app.ingest.with_repo(|r| r.gc(actor, dry))?),
        "verify" if body.repair => json(
            app.ingest
                .with_repo(|r| r.repair(crate::repo::Door::Http))?,
        ),
        "verify" => json(app.ingest.with_repo(|r| r.verify())?),
        _ => return Err(ApiError::not_found(format!("no operation {action:?}"))),
    };
    Ok(value)
}

/// The request body, refused past `MAX_BODY_BYTES`.
async fn read_body(request: Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("an operation's body may hold at most {MAX_BODY_BYTES} bytes"),
            "send only the fields of the operation, as a small JSON object",
        )
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut stream = request.into_body().into_data_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| bad(&format!("the body could not be read to its end: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn json<T: serde::Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn bad(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        message,
        "see `repoctl help` of the same command for its fields; repo-layout/README.md lists them",
    )
}

fn required(value: &Option<String>, field: &str, example: &str) -> Result<String, ApiError> {
    value
        .clone()
        .ok_or_else(|| bad(&format!("the body needs `{field}` (e.g. \"{example}\")")))
}

fn spec(body: &Body) -> Result<PackageSpec, ApiError> {
    let text = required(&body.spec, "spec", "vrmd-whois=42")?;
    PackageSpec::parse(&text)
        .map_err(|e| ApiError::from(RepoError::from(e)).with_status(StatusCode::BAD_REQUEST))
}

fn place(body: &Body) -> Result<Target, ApiError> {
    match (&body.from, &body.dist, &body.component) {
        (Some(text), _, _) => parse_target(text),
        (None, Some(dist), Some(component)) => Ok(Target {
            dist: dist.clone(),
            component: component.clone(),
        }),
        _ => Err(bad(
            "the body needs `from` (\"trusty/dev\") or `dist` and `component`",
        )),
    }
}

fn targets(body: &Body) -> Result<Vec<Target>, ApiError> {
    match &body.to {
        Some(serde_json::Value::String(one)) => Ok(vec![parse_target(one)?]),
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| bad("`to` holds DIST/COMPONENT strings"))
                    .and_then(parse_target)
            })
            .collect(),
        _ => Err(bad(
            "the body needs `to`: \"trusty/main\" or a list of them",
        )),
    }
}

fn parse_target(text: &str) -> Result<Target, ApiError> {
    match text.split_once('/') {
        Some((dist, component)) if !dist.is_empty() && !component.is_empty() => Ok(Target {
            dist: dist.to_string(),
            component: component.to_string(),
        }),
        _ => Err(bad(&format!("{text:?} is not DIST/COMPONENT"))),
    }
}
