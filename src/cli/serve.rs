//! `repoctl serve`: serve the repository's public tree over HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;
use crate::server::ServeError;

/// Serve the repository over HTTP: the apt tree, uploads and the query API.
///
/// `/` serves public/ (dists, pool, key.asc) to apt, with ETag,
/// If-Modified-Since and Range. `/api/v1` takes uploads and answers queries,
/// with a token from `repoctl token create`:
///
///   curl -fsS -H "Authorization: Bearer $TOKEN" -T vrmd-whois_42_all.deb \
///     http://HOST:8080/api/v1/dists/trusty/components/dev/packages
///
/// Add `?wait=published` to answer after the publish that includes it.
/// Uploads are committed one by one and published in batches, at most once
/// per second per dist. `/healthz` and `/metrics` (Prometheus) are for
/// monitoring. SIGTERM stops accepting connections and lets running requests
/// finish ([server] shutdown_grace_secs). See repo-layout/README.md for the
/// whole API and a systemd unit.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (default: [server] listen in
    /// repoctl.toml, which defaults to 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub fn run(root: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Opening checks that this is a repository before we listen.
    let repo = Repository::open(root)?;
    let listen = match args.listen {
        Some(listen) => listen,
        None => repo.config().server.listen.parse()?,
    };
    drop(repo);
    let listener = bind(listen)?;
    serve_blocking(root.to_path_buf(), listener)
}

pub fn bind(listen: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(listen).map_err(|e| {
        super::Problem::new(
            format!("cannot listen on {listen}: {e}"),
            "pick a free address with --listen, e.g. 127.0.0.1:8081",
        )
        .into()
    })
}

pub fn serve_blocking(
    root: std::path::PathBuf,
    listener: std::net::TcpListener,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(crate::server::serve(root, listener)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServeError::Repo(e)) => Err(e.into()),
        Err(ServeError::Io(e)) => Err(anyhow::Error::new(e).context("serving failed")),
    }
}
