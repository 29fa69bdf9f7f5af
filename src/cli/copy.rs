//! `repoctl copy` and `repoctl move`: promote a version to other dists or
//! components.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::lifecycle::{parse_target, print, Place};
use crate::repo::lifecycle::PackageSpec;
use crate::repo::Repository;

/// Publish a version (every architecture) in more dists/components.
///
/// The pool keeps one file; only indices change. `move` also takes it out of
/// the source. --dry-run prints the plan and changes nothing.
///
/// Examples:
///   repoctl copy vrmd-whois=42 --from trusty/dev --to trusty/main
///   repoctl copy vrmd-whois=42 --from trusty/dev --to trusty/main --to precise/main
///   repoctl move vrmd-whois=42 --dist trusty --component dev --to trusty/main --dry-run
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// NAME=VERSION, e.g. vrmd-whois=42.
    spec: String,
    #[command(flatten)]
    from: Place,
    /// Where to publish it, as DIST/COMPONENT (repeatable, or comma-separated).
    #[arg(
        long,
        required = true,
        value_delimiter = ',',
        value_name = "DIST/COMPONENT"
    )]
    to: Vec<String>,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {command, dry_run, changes, published} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: CopyArgs, moving: bool) -> anyhow::Result<ExitCode> {
    let spec = PackageSpec::parse(&args.spec)?;
    let from = args.from.target()?;
    let to = args
        .to
        .iter()
        .map(|t| parse_target(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut repo = Repository::open(root)?;
    let outcome = repo.copy(&spec, &from, &to, moving, &super::cli_actor(), args.dry_run)?;
    print(&outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}
