//! `repoctl serve`: serve the repository's public tree over HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;

/// Serve public/ (dists, pool, key.asc) to apt clients over HTTP.
///
/// Read-only for now. The tree is plain files: any web server that follows
/// symlinks can serve public/ instead.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

pub fn run(root: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Opening checks that this is a repository before we listen.
    let repo = Repository::open(root)?;
    let listener = bind(args.listen)?;
    serve_blocking(repo.public_dir(), listener)
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
    public: std::path::PathBuf,
    listener: std::net::TcpListener,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(crate::server::serve(public, listener))
        .map_err(|e| anyhow::anyhow!("serving failed: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
