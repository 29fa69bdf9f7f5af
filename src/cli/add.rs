//! `repoctl add`: ingest .deb files into a dist/component and publish.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::Target;
use crate::repo::{AddOptions, AddOutcome, Repository};

/// Add .deb files to a dist and component, then publish.
///
/// Every file is checked before anything changes: with several files it is
/// all-or-nothing unless --keep-going. Re-adding identical bytes is a no-op;
/// the same name, version and architecture with other bytes is refused.
///
/// Example: repoctl add --dist trusty --component dev vrmd-whois_42_all.deb
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Dist (suite) to add to, e.g. trusty.
    #[arg(long)]
    dist: String,
    /// Component to add to, e.g. dev.
    #[arg(long)]
    component: String,
    /// Record the packages but do not publish yet (run `repoctl publish`).
    #[arg(long)]
    no_publish: bool,
    /// Add the valid files and report the refused ones (exit code 1).
    #[arg(long)]
    keep_going: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// .deb files, or directories holding .deb files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(root: &Path, args: AddArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repository::open(root)?;
    let target = Target {
        dist: args.dist,
        component: args.component,
    };
    let report = repo.add(
        &args.files,
        &target,
        &super::cli_actor(),
        &AddOptions {
            publish: !args.no_publish,
            keep_going: args.keep_going,
        },
    )?;
    if args.json {
        super::print_json(&report)?;
    } else {
        for file in &report.files {
            let what = match file.outcome {
                AddOutcome::Added => "added",
                AddOutcome::Linked => "added (pool file shared)",
                AddOutcome::Unchanged => "unchanged (already there with the same bytes)",
            };
            println!(
                "{what}: {} {} {} -> {}",
                file.package, file.version, file.architecture, file.target
            );
        }
        for refused in &report.refused {
            println!("refused: {}: {}", refused.path.display(), refused.error);
            if let Some(hint) = &refused.hint {
                println!("  hint: {hint}");
            }
        }
        for dist in &report.published {
            println!("published {} (generation {})", dist.dist, dist.generation);
        }
        if args.no_publish {
            println!("not published yet: run `repoctl publish`");
        }
    }
    Ok(if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
