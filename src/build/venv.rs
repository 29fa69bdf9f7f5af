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

/// What `python -m venv` runs to put pip and setuptools into a new venv
/// (`ensurepip --upgrade --default-pip`, the same wheels), except that pip
/// is told not to byte-compile them: the byte code step removes every
/// timestamp `.pyc` and compiles all modules again, so ensurepip's ~700
/// were thrown away, 1.5-2 s of each build. `_run_pip` is private; a Python
/// without it bootstraps unchanged. Exit code 3: this Python has no
/// ensurepip (Debian ships it in python3.X-venv).
const ENSUREPIP_WITHOUT_BYTE_CODE: &str = r#"
import sys
try:
    import ensurepip
except ImportError:
    sys.exit(3)
run_pip = getattr(ensurepip, "_run_pip", None)
if run_pip is not None:
    def without_byte_code(args, *rest, **kwargs):
        return run_pip([*args[:1], "--no-compile", *args[1:]], *rest, **kwargs)
    ensurepip._run_pip = without_byte_code
ensurepip.bootstrap(upgrade=True, default_pip=True)
"#;

/// `python -m venv`, with pip bootstrapped as above; where this Python has
/// no ensurepip, `virtualenv` makes the venv instead (it brings its own
/// pip), and without either the error says what to install.
pub fn create(python: &Interpreter, venv: &Path) -> Result<(), BuildError> {
    run(
        "create the virtualenv",
        Command::new(&python.path)
            .args(["-m", "venv", "--without-pip"])
            .arg(venv),
    )?;
    // The environment `python -m venv` gives ensurepip (venv/__init__.py).
    let status = Command::new(venv.join("bin").join("python"))
        .args(["-c", ENSUREPIP_WITHOUT_BYTE_CODE])
        .env("VIRTUAL_ENV", venv)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .current_dir(venv)
        .stdout(Stdio::from(std::io::stderr()))
        .status();
    let failure = match status {
        Ok(status) if status.success() => return Ok(()),
        Ok(status) if status.code() == Some(3) => return with_virtualenv(python, venv),
        Ok(status) => status.to_string(),
        Err(e) => e.to_string(),
    };
    Err(BuildError::Step {
        step: "create the virtualenv",
        message: format!(
            "{} could not install pip into {} ({failure}); its output is above",
            python.path.display(),
            venv.display(),
        ),
        hint: "run `python -m venv` by hand to see why".into(),
    })
}

/// The fallback of `create`: Debian's `virtualenv` (package virtualenv)
/// over the half-made venv.
fn with_virtualenv(python: &Interpreter, venv: &Path) -> Result<(), BuildError> {
    let name = python
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(venv);
    let mut command = Command::new("virtualenv");
    command.arg("--python").arg(&python.path).arg(venv);
    match command.stdout(Stdio::from(std::io::stderr())).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(BuildError::Step {
            step: "create the virtualenv",
            message: format!("{command:?} failed ({status}); its output is above"),
            hint: "fix what it reports and build again".into(),
        }),
        Err(_) => Err(BuildError::Step {
            step: "create the virtualenv",
            message: format!(
                "{} has no ensurepip, so `-m venv` cannot put pip into a venv, and virtualenv is not installed",
                python.path.display()
            ),
            hint: format!("apt-get install {name}-venv (or apt-get install virtualenv)"),
        }),
    }
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

/// Byte code: every module of the venv gets an `unchecked-hash` `.pyc`
/// (reproducible, unlike pip's timestamp ones, and never re-validated on
/// the target, where package files do not change). A `.pyc` that is
/// already current is kept, every other file in a `__pycache__` goes:
/// bytecode.py says how. Called after pip is bootstrapped and again at the
/// end, so pip's modules are compiled once and every pip run imports them
/// compiled (even under PYTHONDONTWRITEBYTECODE).
pub fn compile_bytecode(python: &Path, venv: &Path) -> Result<(), BuildError> {
    run("compile the byte code", &mut bytecode_command(python, venv))
}

fn bytecode_command(python: &Path, venv: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-c", include_str!("bytecode.py")])
        .arg(venv)
        // Sets and frozensets in constants are ordered by hash.
        .env("PYTHONHASHSEED", "0")
        // Else the .pyc files would be written outside the venv.
        .env_remove("PYTHONPYCACHEPREFIX");
    command
}

/// A byte code pass running beside other work (`bytecode.py --beside`):
/// the requirements' modules compile on the cores that the single-threaded
/// pip install of the app leaves idle. Best effort: its errors are not
/// reported, the final [`compile_bytecode`] does what it missed. Dropping
/// it waits for it, so the venv is never removed under it.
pub struct Beside(Option<std::process::Child>);

impl Beside {
    pub fn start(python: &Path, venv: &Path) -> Beside {
        let child = bytecode_command(python, venv)
            .arg("--beside")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        Beside(child.ok())
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.wait();
        }
    }
}
