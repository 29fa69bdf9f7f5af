//! `repoctl prune`: keep the newest N versions.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::lifecycle::print;
use crate::repo::Repository;

/// Keep the N highest versions (dpkg order) per package, dist, component and
/// architecture; take the others out of their indices.
///
/// Pool files stay until `repoctl gc` collects them. For a standing policy,
/// set [retention] in repoctl.toml (e.g. dev = 5): every publish prunes then.
///
/// Examples:
///   repoctl prune --keep 5 --component dev --dry-run
///   repoctl prune vrmd-whois --keep 2 --dist trusty
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this package (default: every package).
    package: Option<String>,
    /// How many versions to keep.
    #[arg(long)]
    keep: usize,
    /// Only this dist.
    #[arg(long)]
    dist: Option<String>,
    /// Only this component.
    #[arg(long)]
    component: Option<String>,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {command, dry_run, changes, published} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if args.keep == 0 {
        return Err(super::Problem::new(
            "--keep 0 would empty the indices",
            "keep at least 1; to take a version out, use repoctl remove",
        )
        .into());
    }
    let mut repo = Repository::open(root)?;
    let outcome = repo.prune(
        args.package.as_deref(),
        args.keep,
        args.dist.as_deref(),
        args.component.as_deref(),
        &super::cli_actor(),
        args.dry_run,
    )?;
    print(&outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}
