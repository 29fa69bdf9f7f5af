//! `repoctl build`: an application directory (deploy.yml, requirements.txt,
//! debian/) into a .deb holding a whole virtualenv at `<prefix>/<app>`, then
//! pushed like any upload (DESIGN.md §6).
//!
//! Steps, each timed for the summary: read deploy.yml → check the host
//! (build deps, release, interpreter) → the version (forced, or reserved
//! from the repository) → the venv at its final path (requirements, the
//! app's tracked files, its `.pth`) → the pipeline → byte code → our own
//! .deb writer → push (local add or HTTP upload), which returns after the
//! publish that includes the package.

pub mod deb_writer;
pub use repoctl_formats::deploy;
pub mod host;
pub mod namespace;
pub mod pipeline;
pub mod push;
pub mod source;
pub mod venv;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::repo::RepoError;
use deb_writer::{Compression, DataDir, DebSpec};
use deploy::{Deploy, DeployError};
use push::Remote;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("cannot {step}: {message}")]
    Step {
        step: &'static str,
        message: String,
        hint: String,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl BuildError {
    /// A host tool that is not installed.
    pub fn tool(program: &str, package: &str, error: &std::io::Error) -> BuildError {
        BuildError::Step {
            step: "run a build tool",
            message: format!("{program} cannot run: {error}"),
            hint: format!("install it: apt-get install {package}"),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            BuildError::Deploy(e) => e.hint(),
            BuildError::Step { hint, .. } => Some(hint.clone()),
            BuildError::Repo(e) => e.hint(),
        }
    }
}

/// Where the version comes from and where the package goes.
#[derive(Debug, Clone)]
pub enum Repo {
    /// A repository on this host (`--root`).
    Local(PathBuf),
    /// `repoctl serve` (`--server URL --token T`).
    Server(Remote),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub app_dir: PathBuf,
    pub repo: Option<Repo>,
    pub force_version: Option<String>,
    pub build_only: bool,
    pub out: Option<PathBuf>,
    pub prefix: Option<PathBuf>,
    pub compression: Compression,
    pub install_build_deps: bool,
    pub strict_target: bool,
    pub allow_foreign_python: bool,
    pub allow_dirty: bool,
    pub clean: bool,
    pub pip: venv::PipOptions,
    /// Draw a progress line on stderr while the .deb is written (a terminal).
    pub progress: bool,
}

#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Where the .deb was kept (None when pushed and not kept).
    pub deb: Option<PathBuf>,
    pub size: u64,
    pub files: u64,
    pub installed_size_kib: u64,
    pub pushed_to: Option<String>,
    pub branch: String,
    pub commit: String,
    /// Seconds per step, in order.
    pub steps: Vec<(String, f64)>,
    pub warnings: Vec<String>,
}

/// Times steps for the summary.
struct Clock {
    steps: Vec<(String, f64)>,
    last: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            steps: Vec::new(),
            last: Instant::now(),
        }
    }

    fn done(&mut self, step: &str) {
        let now = Instant::now();
        self.steps
            .push((step.to_string(), (now - self.last).as_secs_f64()));
        tracing::info!(
            step,
            seconds = (now - self.last).as_secs_f64(),
            "build step done"
        );
        self.last = now;
    }
}

/// The progress line while the .deb is written: the data member's share of
/// file bytes handed to the compressor, redrawn at most ten times a second.
struct Meter {
    on: bool,
    drawn: Option<Instant>,
}

impl Meter {
    fn new(on: bool) -> Meter {
        Meter { on, drawn: None }
    }

    fn show(&mut self, p: deb_writer::DataProgress) {
        let due = self.drawn.is_none_or(|t| t.elapsed().as_millis() >= 100);
        if !self.on || !due || p.total == 0 {
            return;
        }
        let mb = |bytes: u64| bytes as f64 / 1e6;
        eprint!(
            "\rwrite the .deb: {:3}% ({:.0} of {:.0} MB)",
            p.done * 100 / p.total,
            mb(p.done),
            mb(p.total)
        );
        self.drawn = Some(Instant::now());
    }

    /// Erases the line, so the summary starts on a clean one.
    fn clear(&mut self) {
        if self.on && self.drawn.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn warn(warnings: &mut Vec<String>, message: String) {
    eprintln!("warning: {message}");
    warnings.push(message);
}

/// Builds (and unless `build_only`, pushes) the app. Runs at the app's
/// real install path: the caller has made that path private (namespace)
/// or checked that it is free.
pub fn build(options: &BuildOptions) -> Result<BuildReport, BuildError> {
    let mut clock = Clock::new();
    let mut warnings = Vec::new();
    let mut deploy = Deploy::load(&options.app_dir)?;
    if let Some(prefix) = &options.prefix {
        deploy.prefix = prefix.clone();
    }
    let requirements = options.app_dir.join("requirements.txt");
    if !requirements.is_file() {
        return Err(BuildError::Step {
            step: "build",
            message: format!("{} is missing", requirements.display()),
            hint: "list the app's run-time Python requirements there (an empty file is fine)"
                .into(),
        });
    }
    let source = source::describe(&options.app_dir, options.allow_dirty)?;
    check_build_deps(&deploy, options.install_build_deps)?;
    check_release(&deploy, options.strict_target, &mut warnings)?;
    let python = host::interpreter(&deploy.python_version, options.allow_foreign_python)?;
    clock.done("check the host");

    let version = match (&options.force_version, &options.repo) {
        (Some(version), _) => version.clone(),
        (None, Some(repo)) => push::reserve_version(repo, &deploy.package_name())?,
        (None, None) => {
            return Err(BuildError::Step {
                step: "choose the version",
                message: "no --force-version and no repository to ask".into(),
                hint: "pass --root DIR (or set REPOCTL_ROOT), --server URL --token T, or --force-version N".into(),
            })
        }
    };
    crate::deb::version::Version::parse(&version).map_err(|e| BuildError::Step {
        step: "choose the version",
        message: e.to_string(),
        hint: "use a plain integer such as 42".into(),
    })?;
    clock.done("choose the version");

    let venv_dir = deploy.install_path();
    prepare_install_path(&venv_dir, options.clean)?;
    // From here on a failure leaves nothing at the install path (the venv
    // was only needed for the .deb), and no partial .deb.
    let made = Made {
        deploy: &deploy,
        python: &python,
        source: &source,
        version: &version,
    };
    let result = made.venv_and_deb(options, &requirements, &mut clock, &mut warnings);
    if result.is_ok() {
        clock.done("write the .deb");
    }
    let _ = std::fs::remove_dir_all(&venv_dir);
    let (stats, deb, temp) = result?;
    clock.done("remove the build tree");

    let pushed_to = match (&options.repo, options.build_only) {
        (Some(repo), false) => Some(push::push(
            repo,
            &deb,
            &deploy.target_platform,
            &deploy.component,
        )?),
        _ => None,
    };
    clock.done("push");
    Ok(BuildReport {
        package: deploy.package_name(),
        version,
        architecture: deploy.architecture.clone(),
        deb: temp.is_none().then_some(deb),
        size: stats.size,
        files: stats.files,
        installed_size_kib: stats.installed_size_kib,
        pushed_to,
        branch: source.branch,
        commit: source.commit,
        steps: clock.steps,
        warnings,
    })
}

/// What one build is made of, for the steps that write at the install path.
struct Made<'a> {
    deploy: &'a Deploy,
    python: &'a host::Interpreter,
    source: &'a source::Source,
    version: &'a str,
}

/// A module that does not compile (a Python 2 test file in a wheel, say)
/// does not stop the build: the package still works.
fn compile_bytecode_or_warn(python: &Path, venv_dir: &Path, warnings: &mut Vec<String>) {
    if let Err(e) = venv::compile_bytecode(python, venv_dir) {
        warn(
            warnings,
            format!("byte code: {e} (modules compile on first import instead)"),
        );
    }
}

type Written = (deb_writer::DebStats, PathBuf, Option<tempfile::TempDir>);

impl Made<'_> {
    /// The venv at the install path, the app, the pipeline, byte code, .deb.
    fn venv_and_deb(
        &self,
        options: &BuildOptions,
        requirements: &Path,
        clock: &mut Clock,
        warnings: &mut Vec<String>,
    ) -> Result<Written, BuildError> {
        let (deploy, python, source, version) =
            (self.deploy, self.python, self.source, self.version);
        let venv_dir = deploy.install_path();
        venv::create(python, &venv_dir)?;
        // pip's own modules first, so each pip run below imports them compiled.
        compile_bytecode_or_warn(&python.path, &venv_dir, warnings);
        venv::pip_install(
            &venv_dir,
            &["-r".as_ref(), requirements.as_os_str()],
            &options.pip,
        )?;
        clock.done("install the requirements");
        let beside = venv::Beside::start(&python.path, &venv_dir);
        let app_copy = venv_dir.join(&deploy.app_name);
        source::export(&options.app_dir, &app_copy, &deploy.exclude)?;
        // The pipeline first, so the installed copy of the app has its assets.
        pipeline::run(&deploy.pipeline, &app_copy, &venv_dir, version)?;
        clock.done("run the pipeline");
        venv::add_path_file(&venv_dir, &deploy.app_name, &app_copy)?;
        if app_copy.join("pyproject.toml").exists() || app_copy.join("setup.py").exists() {
            venv::install_project(&venv_dir, &app_copy, &options.pip)?;
        }
        clock.done("install the app");
        drop(beside);
        compile_bytecode_or_warn(&python.path, &venv_dir, warnings);
        clock.done("compile the byte code");

        let mtime = source_date_epoch().unwrap_or(source.commit_time);
        let spec = DebSpec {
            control: control_fields(deploy, version, source, python.package.as_deref()),
            scripts: maintainer_scripts(&options.app_dir)?,
            data: vec![DataDir {
                source: venv_dir.clone(),
                install_path: venv_dir.clone(),
            }],
            mtime,
            compression: options.compression,
            threads: 0,
        };
        let file_name = format!(
            "{}_{}_{}.deb",
            deploy.package_name(),
            version,
            deploy.architecture
        );
        let (out_dir, temp) = output_dir(options)?;
        let deb = out_dir.join(&file_name);
        let mut meter = Meter::new(options.progress);
        let written = deb_writer::write_deb_reporting(&spec, &deb, &mut |p| meter.show(p));
        meter.clear();
        let stats = written.map_err(|e| BuildError::Step {
            step: "write the .deb",
            message: e.to_string(),
            hint: "check the space of the output directory".into(),
        })?;
        if deploy.architecture == "all" && !stats.elf_files.is_empty() {
            let some: Vec<&str> = stats.elf_files.iter().take(3).map(String::as_str).collect();
            warn(warnings, format!(
                "Architecture: all, but the package holds {} compiled files ({}); set `architecture: amd64` in deploy.yml",
                stats.elf_files.len(),
                some.join(", ")
            ));
        }
        Ok((stats, deb, temp))
    }
}

fn check_build_deps(deploy: &Deploy, install: bool) -> Result<(), BuildError> {
    let missing = host::missing_packages(&deploy.build_deps);
    if missing.is_empty() {
        return Ok(());
    }
    if install {
        return host::install(&missing);
    }
    Err(BuildError::Step {
        step: "build",
        message: format!("build dependencies are missing: {}", missing.join(", ")),
        hint: format!(
            "apt-get install {} (or pass --install-build-deps)",
            missing.join(" ")
        ),
    })
}

fn check_release(
    deploy: &Deploy,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<(), BuildError> {
    let here = host::release_codename().unwrap_or_else(|| "unknown".into());
    if here == deploy.target_platform {
        return Ok(());
    }
    let message = format!(
        "this host runs {here}, the package targets {}: the venv links to this host's Python and compiled wheels may not run there",
        deploy.target_platform
    );
    if strict {
        return Err(BuildError::Step {
            step: "build",
            message,
            hint: format!(
                "build on a {} host (a container or VM), or drop --strict-target",
                deploy.target_platform
            ),
        });
    }
    warn(
        warnings,
        format!("{} (DESIGN.md §6)", message.to_uppercase()),
    );
    Ok(())
}

/// An existing install path is refused unless `clean`: it may be an
/// installed copy of the app (inside the build namespace it is empty).
fn prepare_install_path(path: &Path, clean: bool) -> Result<(), BuildError> {
    let occupied = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
    if occupied && !clean {
        return Err(BuildError::Step {
            step: "build",
            message: format!("{} exists (an installed copy of the app, or an earlier build)", path.display()),
            hint: "run the build as root (it then builds in a private mount namespace), or pass --clean to delete it first".into(),
        });
    }
    if occupied {
        std::fs::remove_dir_all(path).map_err(|e| BuildError::Step {
            step: "clean the install path",
            message: format!("{}: {e}", path.display()),
            hint: "delete it by hand".into(),
        })?;
    }
    Ok(())
}

fn control_fields(
    deploy: &Deploy,
    version: &str,
    source: &source::Source,
    python_package: Option<&str>,
) -> Vec<(String, String)> {
    let mut depends: Vec<String> = deploy.run_deps.clone();
    if let Some(package) = python_package {
        if !depends
            .iter()
            .any(|d| d.split([' ', '(']).next() == Some(package))
        {
            depends.push(package.to_string());
        }
    }
    let maintainer = deploy
        .maintainer
        .clone()
        .unwrap_or_else(|| format!("{} <root@localhost>", deploy.project));
    let mut fields = vec![
        ("Package".to_string(), deploy.package_name()),
        ("Version".to_string(), version.to_string()),
        ("Architecture".to_string(), deploy.architecture.clone()),
        ("Maintainer".to_string(), maintainer),
    ];
    if !depends.is_empty() {
        fields.push(("Depends".into(), depends.join(", ")));
    }
    fields.push(("Section".into(), "misc".into()));
    fields.push(("Priority".into(), "optional".into()));
    fields.push((
        "Description".into(),
        format!(
            "Branch: {} Commit: {}\n {} of {}, a Python virtualenv at {}.",
            source.branch,
            source.commit,
            deploy.app_name,
            deploy.project,
            deploy.install_path().display()
        ),
    ));
    fields
}

/// `debian/{preinst,postinst,prerm,postrm}` of the app, if present.
fn maintainer_scripts(app_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
    let mut scripts = Vec::new();
    for name in ["preinst", "postinst", "prerm", "postrm"] {
        let path = app_dir.join("debian").join(name);
        match std::fs::read(&path) {
            Ok(bytes) => scripts.push((name.to_string(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(BuildError::Step {
                    step: "read the maintainer scripts",
                    message: format!("{}: {e}", path.display()),
                    hint: "make it readable".into(),
                })
            }
        }
    }
    Ok(scripts)
}

/// `SOURCE_DATE_EPOCH` shapes the .deb only (file times), never a Release.
fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// `--out DIR`, the current directory for `--build-only`, else a temporary
/// directory that goes once the package is pushed.
fn output_dir(options: &BuildOptions) -> Result<(PathBuf, Option<tempfile::TempDir>), BuildError> {
    let io = |e: std::io::Error| BuildError::Step {
        step: "write the .deb",
        message: e.to_string(),
        hint: "pass --out DIR with a writable directory".into(),
    };
    match (&options.out, options.build_only || options.repo.is_none()) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            Ok((dir.clone(), None))
        }
        (None, true) => Ok((PathBuf::from("."), None)),
        (None, false) => {
            let temp = tempfile::tempdir().map_err(io)?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}
