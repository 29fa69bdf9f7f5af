//! `repoctl reindex`: rebuild the catalog from the pool and served indices.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;

/// Rebuild a lost catalog from the pool and the served indices.
///
/// Package files come from the pool, their dists and components from the
/// served Packages files. History, reservations and tokens cannot be
/// recovered from disk; the report says so.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: ReindexArgs) -> anyhow::Result<ExitCode> {
    let report = Repository::reindex(root)?;
    if args.json {
        super::print_json(&report)?;
    } else {
        println!(
            "rebuilt the catalog: {} package file(s), {} membership(s)",
            report.package_files, report.memberships
        );
        for refused in &report.unreadable {
            println!(
                "unreadable pool file: {}: {}",
                refused.path.display(),
                refused.error
            );
        }
        for missing in &report.missing_from_pool {
            println!("indexed but missing from the pool: {missing}");
        }
        println!(
            "not recoverable from disk: {}",
            report.not_recoverable.join(", ")
        );
    }
    let clean = report.unreadable.is_empty() && report.missing_from_pool.is_empty();
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
