//! `repoctl rollback` and `repoctl restore`: take a bad build out of what
//! clients see, and bring it back.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::lifecycle::{print, Place};
use crate::repo::lifecycle::PackageSpec;
use crate::repo::Repository;

/// Withdraw the newest version of a package from one dist/component (or
/// every version above --to), so `apt-get install PACKAGE` gets the older one.
///
/// Withdrawn files stay in the pool and the catalog (gc never collects
/// them); `repoctl restore` brings one back. The new Release is freshly
/// signed and dated after the previous one, so clients take it.
///
/// Examples:
///   repoctl rollback vrmd-whois --dist trusty --component main
///   repoctl rollback vrmd-whois --from trusty/main --to 41
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The package, e.g. vrmd-whois.
    package: String,
    #[command(flatten)]
    place: Place,
    /// Keep versions up to this one; withdraw every version above it.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {command, dry_run, changes, published} as JSON.
    #[arg(long)]
    json: bool,
}

/// Bring back a version that a rollback withdrew from one dist/component.
///
/// Example:
///   repoctl restore vrmd-whois=42 --dist trusty --component main
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// NAME=VERSION, e.g. vrmd-whois=42.
    spec: String,
    #[command(flatten)]
    place: Place,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {command, dry_run, changes, published} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn rollback(root: &Path, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let target = args.place.target()?;
    let mut repo = Repository::open(root)?;
    let outcome = repo.rollback(
        &args.package,
        &target,
        args.to.as_deref(),
        &super::cli_actor(),
        args.dry_run,
    )?;
    print(&outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn restore(root: &Path, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let spec = PackageSpec::parse(&args.spec)?;
    let target = args.place.target()?;
    let mut repo = Repository::open(root)?;
    let outcome = repo.restore(&spec, &target, &super::cli_actor(), args.dry_run)?;
    print(&outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}
