//! Where a build's version comes from and where its package goes: a local
//! repository (the same `Repository` calls as `next-version --reserve` and
//! `add`), or `repoctl serve` over HTTP (the reservations and upload API).

use std::path::Path;

use super::{BuildError, Repo};
use crate::config::Target;
use crate::repo::{Actor, AddOptions, Door, Repository};

/// `repoctl serve` and a token.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The server's base URL, ending in `/`.
    pub url: String,
    pub token: String,
}

const ANSWER_LIMIT: u64 = 1 << 20;

fn holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "build".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("repoctl build by {user}@{}", host.trim())
}

fn actor() -> Actor {
    Actor {
        door: Door::Cli,
        name: std::env::var("USER").unwrap_or_else(|_| "build".into()),
    }
}

/// The next version, reserved for this build.
pub fn reserve_version(repo: &Repo, package: &str) -> Result<String, BuildError> {
    match repo {
        Repo::Local(root) => {
            let mut repository = Repository::open(root)?;
            let next = repository.next_version(package, None, None, Some((&holder(), &actor())))?;
            Ok(next.next.to_string())
        }
        Repo::Server(remote) => {
            let url = format!(
                "{}api/v1/packages/{package}/reservations?for={}",
                remote.url,
                percent_encoding::utf8_percent_encode(
                    &holder(),
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            let answer = call(remote, "POST", &url, None)?;
            answer["next"]
                .as_u64()
                .map(|n| n.to_string())
                .ok_or_else(|| server_error("reserve a version", &url, 0, &answer))
        }
    }
}

/// Adds the package to `dist`/`component` and returns after the publish
/// that includes it; returns where it went.
pub fn push(repo: &Repo, deb: &Path, dist: &str, component: &str) -> Result<String, BuildError> {
    let target = Target {
        dist: dist.to_string(),
        component: component.to_string(),
    };
    match repo {
        Repo::Local(root) => {
            let mut repository = Repository::open(root)?;
            let options = AddOptions {
                publish: true,
                keep_going: false,
            };
            repository.add(&[deb.to_path_buf()], &target, &actor(), &options)?;
            Ok(format!("{} {target}", root.display()))
        }
        Repo::Server(remote) => {
            let url = format!(
                "{}api/v1/dists/{dist}/components/{component}/packages?wait=published",
                remote.url
            );
            call(remote, "PUT", &url, Some(deb))?;
            Ok(format!("{} {target}", remote.url))
        }
    }
}

/// One API call; a non-2xx answer becomes an error with the server's own
/// `{error, hint}`.
fn call(
    remote: &Remote,
    method: &str,
    url: &str,
    file: Option<&Path>,
) -> Result<serde_json::Value, BuildError> {
    let auth = format!("Bearer {}", remote.token);
    let headers = [("Authorization", auth.as_str())];
    let result = match file {
        Some(file) => crate::http_client::send_file(method, url, &headers, file, ANSWER_LIMIT),
        None => crate::http_client::send_bytes(method, url, &headers, b"", ANSWER_LIMIT),
    };
    let (status, body) = result.map_err(|e| BuildError::Step {
        step: "reach the server",
        message: format!("{method} {url}: {e}"),
        hint: "check --server (e.g. http://repo.example:8080/) and that repoctl serve runs there"
            .into(),
    })?;
    let answer: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err(server_error(
            if file.is_some() {
                "upload"
            } else {
                "reserve a version"
            },
            url,
            status,
            &answer,
        ))
    }
}

fn server_error(
    step: &'static str,
    url: &str,
    status: u16,
    answer: &serde_json::Value,
) -> BuildError {
    BuildError::Step {
        step,
        message: format!(
            "{url} answered {status}: {}",
            answer["error"].as_str().unwrap_or("no error message")
        ),
        hint: answer["hint"]
            .as_str()
            .unwrap_or("check the server's log")
            .to_string(),
    }
}
