//! `repoctl list`: what is published where.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;

/// List published packages: name, version, architecture, dist/component.
///
/// Example: repoctl list vrmd-whois --dist trusty --json
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this package.
    package: Option<String>,
    /// Only this dist.
    #[arg(long)]
    dist: Option<String>,
    /// Only this component.
    #[arg(long)]
    component: Option<String>,
    /// Print a JSON array of {package, version, architecture, dist, component, filename, size, sha256}.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let repo = Repository::open(root)?;
    let rows = repo.list(
        args.package.as_deref(),
        args.dist.as_deref(),
        args.component.as_deref(),
    )?;
    if args.json {
        super::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        println!(
            "{}\t{}\t{}\t{}/{}",
            row.package, row.version, row.architecture, row.dist, row.component
        );
    }
    if rows.is_empty() {
        eprintln!("no packages match");
    }
    Ok(ExitCode::SUCCESS)
}
