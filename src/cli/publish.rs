//! `repoctl publish`: write and sign the indices of every changed dist.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::Repository;

/// Publish every dist whose packages changed (after `add --no-publish`).
///
/// A dist with no change is left alone (nothing is written). Each publish is a
/// new generation switched in atomically; clients never see a half-written tree.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Re-sign and rewrite every dist even if nothing changed.
    #[arg(long)]
    force: bool,
    /// Print what was published as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repository::open(root)?;
    let published = repo.publish(args.force, crate::repo::Door::Cli)?;
    if args.json {
        super::print_json(&published)?;
    } else if published.is_empty() {
        println!("nothing to publish: every dist is up to date");
    } else {
        for dist in &published {
            println!(
                "published {} (generation {}, {} index file(s) rewritten)",
                dist.dist,
                dist.generation,
                dist.indices_written.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
