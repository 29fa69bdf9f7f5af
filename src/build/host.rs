//! The build host: its Debian packages, its release, its interpreters.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

/// The Debian packages of `deps` (version constraints ignored) that are not
/// installed here.
pub fn missing_packages(deps: &[String]) -> Vec<String> {
    deps.iter()
        .map(|dep| package_of(dep).to_string())
        .filter(|name| !is_installed(name))
        .collect()
}

/// `libpq-dev (>= 9)` → `libpq-dev`.
fn package_of(dep: &str) -> &str {
    dep.split(['(', ' ', ':']).next().unwrap_or(dep).trim()
}

fn is_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.ends_with(b"install ok installed"))
}

/// `apt-get install -y` of `packages` (for --install-build-deps).
pub fn install(packages: &[String]) -> Result<(), BuildError> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| BuildError::tool("apt-get", "apt", &e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Step {
            step: "install build dependencies",
            message: format!("apt-get install {} failed ({status})", packages.join(" ")),
            hint: "install them by hand, then build again".into(),
        })
    }
}

/// This host's release codename (`VERSION_CODENAME` of /etc/os-release).
pub fn release_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The interpreter the venv is made with.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub path: PathBuf,
    /// The Debian package that owns it: a dependency of the built package.
    pub package: Option<String>,
}

/// Debian's interpreter for `python_version` (`3.11` → /usr/bin/python3.11,
/// `pypy3` → /usr/bin/pypy3). `allow_foreign` accepts one that no Debian
/// package owns (it could never run on a clean host).
pub fn interpreter(python_version: &str, allow_foreign: bool) -> Result<Interpreter, BuildError> {
    let name = if python_version.starts_with("pypy") {
        python_version.to_string()
    } else {
        format!("python{python_version}")
    };
    let path = Path::new("/usr/bin").join(&name);
    if !path.exists() {
        return Err(BuildError::Step {
            step: "find the interpreter",
            message: format!("{} does not exist (python_version: {python_version:?})", path.display()),
            hint: format!("install Debian's {name} (apt-get install {name} {name}-venv), or change python_version in deploy.yml"),
        });
    }
    let package = owner(&path);
    if package.is_none() && !allow_foreign {
        return Err(BuildError::Step {
            step: "find the interpreter",
            message: format!("no Debian package owns {}", path.display()),
            hint: "a package built on it could never run on a clean host; install Debian's python, or pass --allow-foreign-python".into(),
        });
    }
    Ok(Interpreter { path, package })
}

/// The package that owns `path` (`dpkg -S`), following a symlink to the
/// real file (python3 → python3.11).
fn owner(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let out = Command::new("dpkg").arg("-S").arg(&real).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    let package = first.split(':').next()?.trim();
    // python3.11-minimal owns the binary, but a venv needs the whole
    // standard library: depend on python3.11.
    let package = package.strip_suffix("-minimal").unwrap_or(package);
    (!package.is_empty()).then(|| package.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_names_lose_their_constraints() {
        assert_eq!(package_of("libpq-dev (>= 9.1)"), "libpq-dev");
        assert_eq!(package_of("libpq5"), "libpq5");
        assert_eq!(package_of("libc6:amd64"), "libc6");
    }

    #[test]
    fn this_hosts_python_is_owned_by_a_debian_package() {
        let python = interpreter("3", false).unwrap();
        let package = python.package.unwrap();
        assert!(
            package.starts_with("python3") && !package.ends_with("-minimal"),
            "{package}"
        );
        assert!(interpreter("2.4", false).is_err());
    }
}
