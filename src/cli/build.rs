//! `repoctl build`: an application directory into a virtualenv .deb, pushed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::build::deb_writer::Compression;
use crate::build::namespace::{self, Isolation};
use crate::build::push::Remote;
use crate::build::{BuildOptions, Repo};

/// Build a .deb holding the app's whole virtualenv, and push it.
///
/// Run in (or pass) an application directory: deploy.yml, requirements.txt,
/// optional debian/{preinst,postinst,prerm,postrm}, the app's git-tracked
/// files. The venv is made at its final path <prefix>/<app_name> with
/// Debian's python<python_version>, the requirements are installed with pip
/// (pip's cache and your PIP_* settings apply), the files of HEAD land in
/// <prefix>/<app>/<app>/ and are importable, the pipeline runs, and our own
/// writer makes vrmd-<app>_<version>_<arch>.deb (Description:
/// "Branch: <branch> Commit: <sha>"). The version is the repository's next
/// one, reserved, unless --force-version. The push (to target_platform and
/// component of deploy.yml) returns after the publish that includes it.
///
/// As root the build runs in a private mount namespace, so an installed copy
/// at the same path is never touched.
///
/// Examples:
///   repoctl --root /srv/repo build ~/src/whois
///   repoctl build --server http://repo.example:8080/ --token "$TOKEN"
///   repoctl build --build-only --force-version 7 --out dist/
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BuildArgs {
    /// The application directory.
    #[arg(default_value = ".")]
    app_dir: PathBuf,
    /// Push to (and take the version from) repoctl serve at this URL.
    #[arg(long, value_name = "URL", requires = "token")]
    server: Option<String>,
    /// The API token for --server (an upload token for the target).
    #[arg(long, env = "REPOCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Use this version instead of the repository's next one.
    #[arg(long, value_name = "N")]
    force_version: Option<String>,
    /// Do not push; keep the .deb (in --out, or the current directory).
    #[arg(long)]
    build_only: bool,
    /// Keep the .deb in this directory.
    #[arg(long, visible_alias = "download", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build under this prefix instead of deploy.yml's (default /vrmd).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Compression of data.tar: xz (smaller) or gzip (faster).
    #[arg(long, default_value = "xz", value_parser = ["xz", "gzip"])]
    compression: String,
    /// apt-get install missing build_deps instead of stopping.
    #[arg(long)]
    install_build_deps: bool,
    /// Refuse to build when this host's release is not target_platform.
    #[arg(long)]
    strict_target: bool,
    /// Accept an interpreter no Debian package owns (pyenv, hand-built).
    #[arg(long)]
    allow_foreign_python: bool,
    /// Build a tree with uncommitted changes (the commit reads <sha>-dirty).
    #[arg(long)]
    allow_dirty: bool,
    /// Delete an existing <prefix>/<app> first (builds without root only).
    #[arg(long)]
    clean: bool,
    /// pip: the index URL to install from.
    #[arg(long, value_name = "URL")]
    index_url: Option<String>,
    /// pip: a local wheelhouse (--find-links).
    #[arg(long, value_name = "DIR")]
    find_links: Option<PathBuf>,
    /// pip: the cache directory (default: pip's own, which persists).
    #[arg(long, value_name = "DIR")]
    pip_cache: Option<PathBuf>,
    /// Print the build report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, root_given: bool, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let repo = match (&args.server, &args.token) {
        (Some(url), Some(token)) => Some(Repo::Server(Remote {
            url: if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            },
            token: token.clone(),
        })),
        // `build` never takes the application directory for a repository.
        _ if root_given => Some(Repo::Local(root.to_path_buf())),
        _ => None,
    };
    let deploy = crate::build::deploy::Deploy::load(&args.app_dir)?;
    let prefix = args.prefix.clone().unwrap_or(deploy.prefix.clone());
    let _private = match namespace::isolate(&prefix)? {
        Isolation::RanInChild(status) => {
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Isolation::Inside(empty) => Some(empty),
        Isolation::None => None,
    };
    let options = BuildOptions {
        app_dir: args.app_dir,
        repo,
        force_version: args.force_version,
        build_only: args.build_only,
        out: args.out,
        prefix: args.prefix,
        compression: if args.compression == "gzip" {
            Compression::Gzip
        } else {
            Compression::Xz
        },
        install_build_deps: args.install_build_deps,
        strict_target: args.strict_target,
        allow_foreign_python: args.allow_foreign_python,
        allow_dirty: args.allow_dirty,
        clean: args.clean,
        pip: crate::build::venv::PipOptions {
            index_url: args.index_url,
            find_links: args.find_links,
            cache_dir: args.pip_cache,
        },
        progress: std::io::stderr().is_terminal(),
    };
    let report = crate::build::build(&options)?;
    if args.json {
        super::print_json(&report)?;
    } else {
        let place = match (&report.pushed_to, &report.deb) {
            (Some(to), _) => format!("pushed to {to}"),
            (None, Some(deb)) => deb.display().to_string(),
            (None, None) => String::new(),
        };
        println!("{}={}\t{place}", report.package, report.version);
        eprintln!(
            "{} {} ({}, commit {}): {} files, {:.1} MB, installed {:.1} MB",
            report.package,
            report.version,
            report.branch,
            report.commit,
            report.files,
            report.size as f64 / 1e6,
            report.installed_size_kib as f64 / 1024.0
        );
        for (step, seconds) in &report.steps {
            eprintln!("  {seconds:7.2} s  {step}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
