//! The application's source: the git-tracked files of HEAD, its branch and
//! commit, and the commit time (the default `SOURCE_DATE_EPOCH`).

use std::path::Path;
use std::process::Command;

use super::BuildError;

#[derive(Debug, Clone)]
pub struct Source {
    pub branch: String,
    /// Short commit, with `-dirty` when built from a dirty tree.
    pub commit: String,
    /// Unix seconds of the commit.
    pub commit_time: u64,
}

fn git(app_dir: &Path, args: &[&str]) -> Result<String, BuildError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(app_dir)
        .args(args)
        .output()
        .map_err(|e| BuildError::tool("git", "git", &e))?;
    if !out.status.success() {
        return Err(BuildError::Step {
            step: "read the app's git repository",
            message: format!(
                "git {} failed in {}: {}",
                args.join(" "),
                app_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            hint: "build from a git checkout with at least one commit (the package holds the files of HEAD)".into(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Branch, commit and commit time of HEAD; a tree with uncommitted
/// changes to tracked files is refused unless `allow_dirty`.
pub fn describe(app_dir: &Path, allow_dirty: bool) -> Result<Source, BuildError> {
    let commit = git(app_dir, &["rev-parse", "--short", "HEAD"])?;
    let branch = git(app_dir, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    let commit_time = git(app_dir, &["log", "-1", "--format=%ct"])?
        .parse()
        .unwrap_or(0);
    let changes = git(
        app_dir,
        &["status", "--porcelain", "--untracked-files=no", "--", "."],
    )?;
    let dirty = !changes.is_empty();
    if dirty && !allow_dirty {
        let files: Vec<&str> = changes.lines().take(5).collect();
        return Err(BuildError::Step {
            step: "build",
            message: format!(
                "{} has uncommitted changes ({})",
                app_dir.display(),
                files.join(", ")
            ),
            hint: "commit them (the package holds the committed files of HEAD), or pass --allow-dirty (the commit then reads <sha>-dirty)".into(),
        });
    }
    Ok(Source {
        branch,
        commit: if dirty {
            format!("{commit}-dirty")
        } else {
            commit
        },
        commit_time,
    })
}

/// Extracts the tracked files of HEAD into `dest`, leaving out names that
/// match `exclude` (`*.bak`, `*.orig`, `name`, `prefix*`).
pub fn export(app_dir: &Path, dest: &Path, exclude: &[String]) -> Result<u64, BuildError> {
    // The app may be a subdirectory of its repository: archive that tree.
    let subdir = git(app_dir, &["rev-parse", "--show-prefix"])?;
    let tree = format!("HEAD:{subdir}");
    let out = Command::new("git")
        .arg("-C")
        .arg(app_dir)
        .args(["archive", "--format=tar", &tree])
        .output()
        .map_err(|e| BuildError::tool("git", "git", &e))?;
    if !out.status.success() {
        return Err(BuildError::Step {
            step: "export the app",
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            hint: "check that HEAD is a commit of the app".into(),
        });
    }
    let io = |e: std::io::Error| BuildError::Step {
        step: "export the app",
        message: format!("cannot write into {}: {e}", dest.display()),
        hint: "check the space and permissions of the build prefix".into(),
    };
    std::fs::create_dir_all(dest).map_err(io)?;
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut files = 0;
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if exclude.iter().any(|pattern| matches(pattern, name)) {
            continue;
        }
        if entry.header().entry_type().is_file() {
            files += 1;
        }
        entry.unpack_in(dest).map_err(io)?;
    }
    Ok(files)
}

/// A shell-style pattern with at most one `*`.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn exclude_patterns() {
        assert!(matches("*.bak", "views.py.bak"));
        assert!(!matches("*.bak", "views.py"));
        assert!(matches("notes.txt", "notes.txt"));
        assert!(matches("tmp*", "tmp-1"));
        assert!(!matches("a*a", "a"));
    }
}
