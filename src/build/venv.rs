//! The virtualenv at its final path `<prefix>/<app>`, folded (bin/, lib/
//! directly in it), with the requirements, the app and its byte code.
//!
//! Nothing is rewritten afterwards: the venv runs where it was made, which
//! is why the build happens at the real install path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::host::Interpreter;
use super::BuildError;

/// How pip finds packages: passed through, so repeated builds hit the cache.
#[derive(Debug, Clone, Default)]
pub struct PipOptions {
    pub index_url: Option<String>,
    pub find_links: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// Runs a build tool with its output on our stderr (stdout stays ours).
fn run(step: &'static str, command: &mut Command) -> Result<(), BuildError> {
    let shown = format!("{command:?}");
    let status = command
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| BuildError::Step {
            step,
            message: format!("cannot run {shown}: {e}"),
            hint: "check that the tool is installed".into(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Step {
            step,
            message: format!("{shown} failed ({status}); its output is above"),
            hint: "fix what it reports and build again".into(),
        })
    }
}

pub fn create(python: &Interpreter, venv: &Path) -> Result<(), BuildError> {
    run(
        "create the virtualenv",
        Command::new(&python.path).args(["-m", "venv"]).arg(venv),
    )
}

pub fn pip_install(
    venv: &Path,
    args: &[&std::ffi::OsStr],
    pip: &PipOptions,
) -> Result<(), BuildError> {
    let mut command = Command::new(venv.join("bin").join("pip"));
    // --no-compile: the byte code step compiles every module anyway, with
    // hash-based invalidation; pip's own pass took 5 of 10 s on a venv.
    command.args([
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--no-compile",
    ]);
    if let Some(url) = &pip.index_url {
        command.args(["--index-url", url]);
    }
    if let Some(dir) = &pip.find_links {
        command.arg("--find-links").arg(dir);
    }
    if let Some(dir) = &pip.cache_dir {
        command.arg("--cache-dir").arg(dir);
    }
    run("install the requirements", command.args(args))
}

/// Installs the app itself (its console scripts land in bin/), then
/// removes what the build left in its copy (`build/`, `*.egg-info`).
pub fn install_project(venv: &Path, project: &Path, pip: &PipOptions) -> Result<(), BuildError> {
    let names = |dir: &Path| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let before = names(project);
    pip_install(venv, &["--no-deps".as_ref(), project.as_os_str()], pip)?;
    for name in names(project).into_iter().filter(|n| !before.contains(n)) {
        let _ = std::fs::remove_dir_all(project.join(&name));
    }
    Ok(())
}

/// The site-packages directory of the venv (`lib/python3.X/site-packages`).
pub fn site_packages(venv: &Path) -> Result<PathBuf, BuildError> {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|e| e.path().join("site-packages"))
                .find(|p| p.is_dir())
        })
        .ok_or_else(|| BuildError::Step {
            step: "find site-packages",
            message: format!("{} has no */site-packages", lib.display()),
            hint: "the interpreter made an unusual virtualenv; use Debian's python".into(),
        })
}

/// `<app>.pth` in site-packages: makes `<venv>/<app>` importable, so
/// `<venv>/bin/python -m <module>` runs the app.
pub fn add_path_file(venv: &Path, app_name: &str, app_dir: &Path) -> Result<(), BuildError> {
    let pth = site_packages(venv)?.join(format!("{app_name}.pth"));
    std::fs::write(&pth, format!("{}\n", app_dir.display())).map_err(|e| BuildError::Step {
        step: "write the .pth file",
        message: format!("{}: {e}", pth.display()),
        hint: "check the space and permissions of the build prefix".into(),
    })
}

/// Byte code: pip's timestamp-based `.pyc` files embed install times, so
/// they go, and everything is compiled again with hash-based invalidation
/// (`unchecked-hash`: reproducible, and never re-validated on the target,
/// where package files do not change).
pub fn compile_bytecode(python: &Path, venv: &Path) -> Result<(), BuildError> {
    for entry in walkdir::WalkDir::new(venv)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_type().is_dir() && entry.file_name() == "__pycache__" {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    run(
        "compile the byte code",
        Command::new(python)
            .args([
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
            ])
            .arg(venv)
            .env("PYTHONHASHSEED", "0"),
    )
}
