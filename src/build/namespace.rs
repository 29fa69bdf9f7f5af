//! Building at the real install path without touching what is there.
//!
//! As root, `repoctl build` runs itself again inside a private mount
//! namespace (`unshare --mount`) and mounts an empty directory over the
//! prefix there: an installed copy of the app on the build host is never
//! touched, and two builds of one app do not collide. Without root (or
//! where unshare is not allowed) the caller refuses an occupied path.

use std::path::Path;
use std::process::{Command, ExitStatus};

use super::BuildError;

/// Set in the re-run inside the namespace.
const INSIDE: &str = "REPOCTL_BUILD_NAMESPACE";

pub enum Isolation {
    /// The build ran in a child inside the namespace; this is its status.
    RanInChild(ExitStatus),
    /// We are the child: the prefix is an empty private directory, whose
    /// backing directory goes when this value is dropped.
    Inside(tempfile::TempDir),
    /// No namespace (not root, or not allowed): the install path is real.
    None,
}

pub fn isolate(prefix: &Path) -> Result<Isolation, BuildError> {
    if std::env::var_os(INSIDE).is_some() {
        return mount_empty(prefix).map(Isolation::Inside);
    }
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !root || !unshare_works() {
        return Ok(Isolation::None);
    }
    let exe = std::env::current_exe().map_err(|e| BuildError::Step {
        step: "enter the build namespace",
        message: e.to_string(),
        hint: "run repoctl by its path".into(),
    })?;
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .map_err(|e| BuildError::tool("unshare", "util-linux", &e))?;
    Ok(Isolation::RanInChild(status))
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn mount_empty(prefix: &Path) -> Result<tempfile::TempDir, BuildError> {
    let fail = |message: String| BuildError::Step {
        step: "make the prefix private",
        message,
        hint: "run without root to build at the real path (with --clean if it is occupied)".into(),
    };
    std::fs::create_dir_all(prefix).map_err(|e| fail(format!("{}: {e}", prefix.display())))?;
    let empty = tempfile::Builder::new()
        .prefix("repoctl-build-")
        .tempdir()
        .map_err(|e| fail(e.to_string()))?;
    let status = Command::new("mount")
        .arg("--bind")
        .arg(empty.path())
        .arg(prefix)
        .status()
        .map_err(|e| fail(format!("mount: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "mount --bind over {} failed ({status})",
            prefix.display()
        )));
    }
    Ok(empty)
}
