//! `repoctl next-version`: the version to build next, from the catalog or
//! from any published repository's indices.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::repo::next_version::{self, NextVersion, Seen};
use crate::repo::Repository;

/// Print the next version of a package: its highest plain-integer version
/// across the repository, plus one (1 for a new package).
///
/// Only the number goes to stdout, so `V=$(repoctl next-version vrmd-whois)`
/// works. Numbers reserved with --reserve are never handed out again. If the
/// highest version is not a plain integer (1:5, 2.0-1) it fails and names it.
///
/// Examples:
///   repoctl next-version vrmd-whois
///   repoctl next-version --reserve vrmd-whois --for build-1234
///   repoctl next-version --from-index http://apt.example/ --key key.asc --dist trusty vrmd-whois
#[derive(Debug, Args)]
pub struct NextVersionArgs {
    /// The package, e.g. vrmd-whois.
    package: String,
    /// Only count versions published in this dist.
    #[arg(long)]
    dist: Option<String>,
    /// Only count versions published in this component.
    #[arg(long)]
    component: Option<String>,
    /// Reserve the number (repository-wide) so no other caller gets it.
    #[arg(long, conflicts_with = "from_index")]
    reserve: bool,
    /// Who the reservation is for (default: the user name).
    #[arg(long = "for", value_name = "NAME", requires = "reserve")]
    holder: Option<String>,
    /// Compute it from a published repository over HTTP instead (InRelease
    /// checked with --key, then its Packages indices). Needs --dist.
    #[arg(long, value_name = "URL", requires_all = ["key", "dist"])]
    from_index: Option<String>,
    /// The repository's public key (armored or binary), for --from-index.
    #[arg(long, value_name = "KEYFILE", requires = "from_index")]
    key: Option<PathBuf>,
    /// Print {package, next, highest, reserved_up_to, reservation} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: NextVersionArgs) -> anyhow::Result<ExitCode> {
    let answer = match (&args.from_index, &args.key, &args.dist) {
        (Some(url), Some(key), Some(dist)) => from_index(url, key, dist, &args)?,
        _ => {
            let mut repo = Repository::open(root)?;
            let actor = super::cli_actor();
            let holder = args.holder.clone().unwrap_or_else(|| actor.name.clone());
            repo.next_version(
                &args.package,
                args.dist.as_deref(),
                args.component.as_deref(),
                args.reserve.then_some((holder.as_str(), &actor)),
            )?
        }
    };
    if args.json {
        super::print_json(&answer)?;
    } else {
        println!("{}", answer.next);
        if let Some(r) = &answer.reservation {
            eprintln!(
                "reserved {} {} for {} until {}",
                r.package,
                r.version,
                r.holder,
                crate::repo::release::http_date(r.expires_at)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn from_index(
    url: &str,
    key: &Path,
    dist: &str,
    args: &NextVersionArgs,
) -> anyhow::Result<NextVersion> {
    let published = crate::remote::published_versions(url, key, dist, &args.package)?;
    let seen: Vec<Seen> = published
        .into_iter()
        .filter(|v| args.component.as_deref().is_none_or(|c| c == v.component))
        .map(|v| Seen {
            place: format!("{dist}/{} {}", v.component, v.architecture),
            version: v.version,
        })
        .collect();
    Ok(next_version::next_from(&args.package, &seen, None)?)
}
