//! `repoctl gc`: delete pool files no index needs any more.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;

/// Delete pool files that are in no index, after the grace period.
///
/// A file is collected only when no dist/component lists it, no rollback
/// withdrew it (those wait for restore or remove), it has been unlisted for
/// [gc] grace_hours, and no index of the last three publishes (by-hash)
/// still names it. Leftovers go too, an hour old or more: temporary files
/// of interrupted adds, and pool files no catalog row holds (an add killed
/// before its commit, never acknowledged). `repoctl serve`
/// runs this every [gc] interval_minutes. With nothing to do it writes
/// nothing.
///
/// Example: repoctl gc --dry-run
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print {dry_run, collected, waiting, still_served, temporary_files, orphans} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: GcArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repository::open(root)?;
    let report = repo.gc(&super::cli_actor(), args.dry_run)?;
    if args.json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for file in &report.collected {
        println!(
            "collect\t{}={}\t{}\t{}",
            file.package, file.version, file.architecture, file.filename
        );
    }
    for name in report.temporary_files.iter().chain(&report.orphans) {
        println!("collect\t-\t-\t{name}");
    }
    eprintln!(
        "{}{} collected, {} waiting out the grace period, {} still named by a kept index",
        if report.dry_run { "dry run: " } else { "" },
        report.collected.len() + report.temporary_files.len() + report.orphans.len(),
        report.waiting.len(),
        report.still_served.len()
    );
    Ok(ExitCode::SUCCESS)
}
