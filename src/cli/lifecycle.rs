//! What the lifecycle commands (copy, move, remove, prune, rollback,
//! restore) share: where they act, and how their plan is printed.

use clap::Args;

use super::Problem;
use crate::config::Target;
use crate::repo::lifecycle::{Effect, Outcome};

/// A dist/component, as `--from trusty/dev` or `--dist trusty --component dev`.
#[derive(Debug, Args)]
pub struct Place {
    /// The dist and component, as DIST/COMPONENT (e.g. trusty/dev).
    #[arg(long, value_name = "DIST/COMPONENT", conflicts_with_all = ["dist", "component"])]
    pub from: Option<String>,
    /// The dist (with --component), instead of --from.
    #[arg(long, requires = "component")]
    pub dist: Option<String>,
    /// The component (with --dist), instead of --from.
    #[arg(long, requires = "dist")]
    pub component: Option<String>,
}

impl Place {
    pub fn target(&self) -> anyhow::Result<Target> {
        match (&self.from, &self.dist, &self.component) {
            (Some(text), _, _) => parse_target(text),
            (None, Some(dist), Some(component)) => Ok(Target {
                dist: dist.clone(),
                component: component.clone(),
            }),
            _ => Err(Problem::new(
                "no dist/component given",
                "pass --from DIST/COMPONENT, or --dist DIST --component COMPONENT",
            )
            .into()),
        }
    }
}

pub fn parse_target(text: &str) -> anyhow::Result<Target> {
    match text.split_once('/') {
        Some((dist, component)) if !dist.is_empty() && !component.is_empty() => Ok(Target {
            dist: dist.to_string(),
            component: component.to_string(),
        }),
        _ => Err(Problem::new(
            format!("{text:?} is not DIST/COMPONENT"),
            "write the target as e.g. trusty/main",
        )
        .into()),
    }
}

/// The plan on stdout (the same lines for --dry-run and the real run), or
/// the whole outcome as JSON; what was published on stderr.
pub fn print(outcome: &Outcome, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(outcome);
    }
    for change in &outcome.changes {
        let f = &change.file;
        let verb = match change.effect {
            Effect::Publish => "publish",
            Effect::Unpublish => "unpublish",
            Effect::Withdraw => "withdraw",
            Effect::Restore => "restore",
        };
        println!(
            "{verb}\t{}={}\t{}\t{}/{}",
            f.package, f.version, f.architecture, f.dist, f.component
        );
    }
    if outcome.dry_run {
        eprintln!(
            "dry run: {} change(s) planned, nothing changed",
            outcome.changes.len()
        );
    } else if outcome.changes.is_empty() {
        eprintln!("nothing to change");
    }
    for dist in &outcome.published {
        eprintln!("published {} (generation {})", dist.dist, dist.generation);
    }
    Ok(())
}
