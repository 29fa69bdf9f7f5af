//! `repoctl remove`: take a version out of a dist/component.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::lifecycle::{print, Place};
use crate::repo::lifecycle::PackageSpec;
use crate::repo::Repository;

/// Take a version (every architecture) out of one dist/component.
///
/// The pool file stays until `repoctl gc` collects it, after [gc]
/// grace_hours and once no index of the last three publishes names it.
/// A version withdrawn there by a rollback is removed for good.
///
/// Example:
///   repoctl remove vrmd-whois=42 --from trusty/dev
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// NAME=VERSION, e.g. vrmd-whois=42.
    spec: String,
    #[command(flatten)]
    from: Place,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {command, dry_run, changes, published} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: RemoveArgs) -> anyhow::Result<ExitCode> {
    let spec = PackageSpec::parse(&args.spec)?;
    let from = args.from.target()?;
    let mut repo = Repository::open(root)?;
    let outcome = repo.remove(&spec, &from, &super::cli_actor(), args.dry_run)?;
    print(&outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}
