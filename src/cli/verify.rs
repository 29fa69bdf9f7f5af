//! `repoctl verify`: check the repository; `--repair` republishes the served tree.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::repo::verify::{Finding, FindingKind, VerifyReport};
use crate::repo::Repository;

/// Check the repository: the pool against the catalog, and every served
/// index and signature against its Release.
///
/// Every pool file is read once and its size and SHA-256 compared with the
/// catalog (hashed on all cores), and every file under public/pool/ must be
/// named by the catalog. For every dist, InRelease and Release.gpg must be
/// good signatures by the signing keys, and every file the Release lists
/// must be served with that size and hash (also under by-hash/SHA256/).
/// Pool files waiting out gc's grace period are listed as information.
///
/// Problems go to stderr, one line each with a hint; the exit code is 1 if
/// there is any. Nothing is changed without --repair.
///
/// --repair republishes the served tree from the catalog (every index
/// rendered and signed anew, switched in atomically), then checks again
/// and reports what remains. It never deletes or rewrites a package file:
/// a damaged or missing pool file must be restored from a backup.
///
/// Examples:
///   repoctl verify
///   repoctl verify --repair
///   repoctl verify --json | jq -r '.problems[].path'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// Republish the served tree from the catalog, then check again.
    #[arg(long)]
    repair: bool,
    /// Print {problems, info, checked} as JSON on stdout (with --repair,
    /// also repaired and published); problems are then not printed to stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut repo = Repository::open(root)?;
    let report = if args.repair {
        let repair = repo.repair(crate::repo::Door::Cli)?;
        if args.json {
            super::print_json(&repair)?;
        } else {
            for fixed in &repair.repaired {
                eprintln!("repaired: {}: {}", fixed.path, fixed.detail);
            }
            for dist in &repair.published {
                eprintln!("republished {} (generation {})", dist.dist, dist.generation);
            }
        }
        repair.after
    } else {
        let report = repo.verify()?;
        if args.json {
            super::print_json(&report)?;
        }
        report
    };
    if args.json {
        return Ok(exit_code(&report));
    }
    for info in &report.info {
        eprintln!("info: {}: {}", info.path, info.detail);
    }
    for problem in &report.problems {
        eprintln!(
            "problem: {}: {}; hint: {}",
            problem.path, problem.detail, problem.hint
        );
    }
    let checked = &report.checked;
    let summary = format!(
        "checked {} pool file(s), {} index file(s), {} dist(s)",
        checked.pool_files, checked.indices, checked.dists
    );
    if report.is_clean() {
        eprintln!("{summary}: no problems");
        return Ok(ExitCode::SUCCESS);
    }
    Err(super::Problem::new(
        format!(
            "{summary}: {} problem(s){}",
            report.problems.len(),
            if args.repair { " remain" } else { "" }
        ),
        overall_hint(&report.problems, args.repair),
    )
    .into())
}

fn exit_code(report: &VerifyReport) -> ExitCode {
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One hint for the whole report: what --repair can do, and what it cannot.
fn overall_hint(problems: &[Finding], repaired: bool) -> String {
    let republishable = problems.iter().any(|p| p.kind.republishing_fixes());
    let pool = problems.iter().any(|p| {
        matches!(
            p.kind,
            FindingKind::PoolFileMissing | FindingKind::PoolFileDamaged
        )
    });
    let mut hints = Vec::new();
    if republishable && !repaired {
        hints.push("run `repoctl verify --repair` to republish the served tree from the catalog");
    }
    if pool {
        hints.push("restore damaged or missing pool files from a backup (the catalog cannot rebuild them, and --repair never rewrites them)");
    }
    if hints.is_empty() {
        hints.push("see the hint on each problem above");
    }
    hints.join("; ")
}
