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
    serve_blocking(repo.public_dir(), args.listen)
}

pub fn serve_blocking(public: std::path::PathBuf, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(crate::server::serve(public, listen))
        .map_err(|e| anyhow::anyhow!("cannot serve on {listen}: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
