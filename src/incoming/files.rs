//! The drop zone's files: finding them without following links, telling
//! whether someone still writes one, staging, and refusing with a reason.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{is_safe_name, Config, Target};
use crate::deb::inspect;
use crate::repo::RepoError;

/// The longest name a refused file keeps in rejected/ (a longer one is cut).
const MAX_KEPT_NAME: usize = 200;

/// What the watcher does with a file now.
pub enum Look {
    Wait,
    Ready,
    /// Refused: what is wrong, and how to fix it.
    Refuse(String, Option<String>),
}

/// A file in the drop zone.
pub struct Candidate {
    pub path: PathBuf,
    pub target: Target,
    pub mtime: SystemTime,
    /// The owner's user name: the history's actor.
    pub uploader: String,
    /// Set when the entry is refused whatever its contents (a symlink, a
    /// directory, a file outside any dist/component directory).
    pub problem: Option<(String, String)>,
}

/// Names that writers use before a final rename: they wait for it.
fn is_in_progress(name: &str) -> bool {
    name.starts_with('.')
        || [".part", ".tmp", ".filepart"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Every entry of `incoming/` (but `rejected/`): files at
/// `<dist>/<component>/NAME`, and anything misplaced, with its problem.
pub fn candidates(incoming: &Path, rejected: &str) -> Result<Vec<Candidate>, RepoError> {
    let mut found = Vec::new();
    for (dist_entry, dist) in entries(incoming)? {
        let is_dir = dist_entry.file_type().is_ok_and(|t| t.is_dir());
        if dist == rejected && is_dir {
            continue;
        }
        if !is_dir {
            let target = placeholder(&dist);
            found.push(misplaced(dist_entry.path(), target));
            continue;
        }
        for (component_entry, component) in entries(&dist_entry.path())? {
            let target = Target {
                dist: dist.clone(),
                component: component.clone(),
            };
            if !component_entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push(misplaced(component_entry.path(), target));
                continue;
            }
            for (entry, _) in entries(&component_entry.path())? {
                found.push(candidate(entry.path(), target.clone()));
            }
        }
    }
    Ok(found)
}

/// Directory entries by name, skipping names that wait for a rename. A name
/// that is not UTF-8 is shown with replacement characters, never skipped
/// (it would sit in incoming/ forever, neither taken nor refused).
fn entries(dir: &Path) -> Result<Vec<(fs::DirEntry, String)>, RepoError> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RepoError::Io {
                action: "cannot read",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out: Vec<_> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!is_in_progress(&name)).then_some((e, name))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn placeholder(name: &str) -> Target {
    Target {
        dist: name.to_string(),
        component: "-".into(),
    }
}

fn misplaced(path: PathBuf, target: Target) -> Candidate {
    let mut c = candidate(path, target);
    c.problem.get_or_insert((
        "not inside a dist/component directory".into(),
        "upload into incoming/<dist>/<component>/, e.g. incoming/trusty/dev/".into(),
    ));
    c
}

fn candidate(path: PathBuf, target: Target) -> Candidate {
    // lstat: a symlink is looked at, never through.
    let meta = fs::symlink_metadata(&path);
    let (mtime, uid) = meta.as_ref().map_or((SystemTime::UNIX_EPOCH, 0), |m| {
        (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.uid())
    });
    let problem = match &meta {
        Ok(m) if m.file_type().is_symlink() => Some((
            "a symbolic link: links in incoming/ are refused and never followed".into(),
            "upload the file itself (scp copies the file a link points to)".into(),
        )),
        Ok(m) if !m.file_type().is_file() => {
            Some(("not a regular file".into(), "upload .deb files only".into()))
        }
        // Another name for the same file: it may belong to someone else
        // (its owner would be recorded as the uploader), and it is not ours
        // to take away.
        Ok(m) if m.nlink() > 1 => Some((
            "a hard link: a file in incoming/ must have no other name".into(),
            "copy the file into incoming/ (scp, sftp, cp); do not hard-link it".into(),
        )),
        _ if !is_safe_name(&target.dist) || !is_safe_name(&target.component) => Some((
            format!("{target} is not a valid dist/component name"),
            "upload into incoming/<dist>/<component>/ of a configured target".into(),
        )),
        _ => None,
    };
    Candidate {
        path,
        target,
        mtime,
        uploader: user_name(uid),
        problem,
    }
}

/// Files a crash left in the staging directory, with their targets.
pub fn staged(staging: &Path) -> Result<Vec<(Target, PathBuf, String)>, RepoError> {
    let mut found = Vec::new();
    for (dist, dist_name) in entries(staging)? {
        for (component, component_name) in entries(&dist.path())? {
            for (file, _) in entries(&component.path())? {
                let uid = file.metadata().map(|m| m.uid()).unwrap_or(0);
                let target = Target {
                    dist: dist_name.clone(),
                    component: component_name.clone(),
                };
                found.push((target, file.path(), user_name(uid)));
            }
        }
    }
    Ok(found)
}

/// Moves a ready file into the staging directory (never replacing one
/// there). Returns the staged path, or why it cannot be taken and where the
/// entry is now (to be moved into rejected/ from there).
pub fn stage(candidate: &Candidate, staging: &Path) -> Result<PathBuf, (String, PathBuf)> {
    let name = candidate.path.file_name().unwrap_or_default();
    let dir = staging
        .join(&candidate.target.dist)
        .join(&candidate.target.component);
    let not_moved = |e: io::Error| (format!("cannot stage it: {e}"), candidate.path.clone());
    fs::create_dir_all(&dir).map_err(not_moved)?;
    let staged = dir.join(name);
    move_no_replace(&candidate.path, &staged).map_err(not_moved)?;
    // The staged entry must be the regular file that was checked, with no
    // other name (swapped for a link after it was looked at, it leaves).
    match fs::symlink_metadata(&staged) {
        Ok(m) if m.file_type().is_file() && m.nlink() == 1 => Ok(staged),
        _ => Err((
            "it changed into a link or something other than a regular file while it was taken"
                .into(),
            staged,
        )),
    }
}

/// Checks that a file is a whole .deb, opened without following a link.
pub fn check_deb(path: &Path, config: &Config) -> Result<(), RepoError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| RepoError::Io {
            action: "cannot open",
            path: path.to_path_buf(),
            source,
        })?;
    let io_err = |source| RepoError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    if !file.metadata().map_err(io_err)?.is_file() {
        return Err(io_err(io::Error::other("not a regular file")));
    }
    let info = inspect::inspect_reader(file, path)?;
    crate::repo::package::PackageFile::from_deb(info, config, path)?;
    Ok(())
}

/// Paths under `dir` that some process holds open for writing, from
/// `/proc/*/fd` (scp, sftp-server and rsync keep the file open while they
/// write; processes in other PID namespaces are not visible).
pub fn open_for_writing(dir: &Path) -> HashSet<PathBuf> {
    let mut open = HashSet::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return open;
    };
    for proc_entry in procs.filter_map(Result::ok) {
        let pid = proc_entry.path();
        let Ok(fds) = fs::read_dir(pid.join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if !target.starts_with(dir) {
                continue;
            }
            let info = pid.join("fdinfo").join(fd.file_name());
            if fs::read_to_string(info).is_ok_and(|text| writes(&text)) {
                open.insert(target);
            }
        }
    }
    open
}

/// Whether an fdinfo's `flags:` (octal) open the file for writing.
fn writes(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

/// Moves `path` into `rejected/` under a name no earlier reject has, with
/// `<name>.reason` beside it (human text, then one JSON line), readable by
/// the group of `rejected/` (the uploaders).
pub fn reject(
    path: &Path,
    rejected: &Path,
    target: &Target,
    error: &str,
    hint: Option<&str>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .map_or("unnamed".into(), |n| n.to_string_lossy().into_owned());
    // Room for `.N` and `.reason` within the 255 bytes of a file name.
    let mut base = name.clone();
    while base.len() > MAX_KEPT_NAME {
        base.pop();
    }
    let group = fs::metadata(rejected)?.gid();
    for attempt in 0u32.. {
        let kept = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}.{attempt}")
        };
        let reason_path = rejected.join(format!("{kept}.reason"));
        let reason = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&reason_path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        match move_no_replace(path, &rejected.join(&kept)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&reason_path);
                continue;
            }
            Err(e) => {
                let _ = fs::remove_file(&reason_path);
                return Err(e);
            }
        }
        write_reason(
            reason,
            &reason_path,
            group,
            &name,
            &kept,
            target,
            error,
            hint,
        )?;
        return Ok(());
    }
    unreachable!("an unbounded loop only returns")
}

#[allow(clippy::too_many_arguments)]
fn write_reason(
    mut file: fs::File,
    path: &Path,
    group: u32,
    name: &str,
    kept: &str,
    target: &Target,
    error: &str,
    hint: Option<&str>,
) -> io::Result<()> {
    let at = crate::repo::now();
    let json = serde_json::json!({
        "file": name,
        "kept_as": kept,
        "target": target.to_string(),
        "error": error,
        "hint": hint,
        "at": at,
    });
    let hint_line = hint.map(|h| format!("hint: {h}\n")).unwrap_or_default();
    write!(
        file,
        "{name} was refused (incoming/{target}/):\n{error}\n{hint_line}{json}\n"
    )?;
    file.sync_all()?;
    // Readable by the uploaders, whatever our umask did.
    let _ = std::os::unix::fs::chown(path, None, Some(group));
    fs::set_permissions(path, fs::Permissions::from_mode(0o640))
}

/// Renames without ever replacing: a hard link (which fails if the name
/// exists and never follows a symlink), then the old name goes. Copies
/// when the two are on different filesystems. A directory (which cannot be
/// hard-linked) is renamed if nothing has the new name.
fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    if fs::symlink_metadata(from)?.is_dir() {
        if fs::symlink_metadata(to).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        return fs::rename(from, to);
    }
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            fs::copy(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// The user name of `uid` from /etc/passwd, or `uid N`.
fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_writes_in_progress_wait() {
        for name in [
            ".x.deb.AbC123",
            "x.deb.part",
            "x.deb.tmp",
            "x.deb.filepart",
            ".hidden",
        ] {
            assert!(is_in_progress(name), "{name}");
        }
        assert!(!is_in_progress("vrmd-whois_42_all.deb"));
    }

    #[test]
    fn fdinfo_flags_tell_writers() {
        assert!(writes("pos:\t0\nflags:\t0100001\nmnt_id:\t29\n"));
        assert!(writes("flags:\t02\n"));
        assert!(!writes("pos:\t0\nflags:\t0100000\n"));
        assert!(!writes("nothing"));
    }

    #[test]
    fn an_entry_swapped_for_a_link_after_the_look_is_never_staged() {
        let dir = tempfile::tempdir().unwrap();
        let (incoming, staging) = (dir.path().join("trusty/dev"), dir.path().join("staging"));
        fs::create_dir_all(&incoming).unwrap();
        let outside = dir.path().join("outside.deb");
        fs::write(&outside, b"someone else's package").unwrap();
        let target = Target {
            dist: "trusty".into(),
            component: "dev".into(),
        };
        type Swap = fn(&Path, &Path) -> io::Result<()>;
        let swaps: [(&str, Swap); 2] = [
            ("symlink", |from, to| std::os::unix::fs::symlink(from, to)),
            ("hard link", |from, to| fs::hard_link(from, to)),
        ];
        for (i, (kind, swap)) in swaps.into_iter().enumerate() {
            let path = incoming.join(format!("{i}.deb"));
            fs::write(&path, b"the file that was looked at").unwrap();
            let looked_at = candidate(path.clone(), target.clone());
            assert!(looked_at.problem.is_none(), "{kind}");
            fs::remove_file(&path).unwrap();
            swap(&outside, &path).unwrap();
            let (reason, at) = stage(&looked_at, &staging).expect_err(kind);
            assert!(reason.contains("link"), "{kind}: {reason}");
            assert!(at.starts_with(&staging), "{kind}: {}", at.display());
            fs::remove_file(&at).unwrap();
        }
        assert_eq!(fs::read(&outside).unwrap(), b"someone else's package");
        let path = incoming.join("plain.deb");
        fs::write(&path, b"plain").unwrap();
        assert!(stage(&candidate(path, target), &staging).is_ok());
    }

    #[test]
    fn root_is_uid_0() {
        assert_eq!(user_name(0), "root");
    }
}
