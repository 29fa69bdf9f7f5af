//! Durable file operations: every file that becomes visible is complete and
//! on disk first (temporary name, fsync, rename, fsync of the directory).
//!
//! Owns the crash-safety primitives the pool and the publisher share; it knows
//! nothing about packages.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of every temporary file we create, so leftovers of a crash are
/// recognisable (and never served under a real name).
pub const TEMP_PREFIX: &str = ".repoctl-tmp-";

/// A file being written under a temporary name in its final directory.
pub struct TempFile {
    file: File,
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub fn new_in(dir: &Path) -> io::Result<TempFile> {
        fs::create_dir_all(dir)?;
        for attempt in 0u32.. {
            let path = dir.join(format!(
                "{TEMP_PREFIX}{}-{}-{attempt}",
                std::process::id(),
                unique_suffix()
            ));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        path,
                        armed: true,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// fsyncs the data, renames over `dest` and fsyncs the directory.
    pub fn commit(mut self, dest: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, dest)?;
        self.armed = false;
        sync_parent(dest)
    }

    /// Renames over `dest` without waiting for the disk: for batches whose
    /// files are made durable together with [`sync_all`] before anything
    /// refers to them.
    pub fn commit_unsynced(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.armed = false;
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Writes `bytes` to `dest` atomically and durably.
pub fn write_file(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut temp = TempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.commit(dest)
}

/// Copies `source` to `dest` atomically; durable only after [`sync_all`]
/// covers `dest` and its directory.
pub fn copy_file_unsynced(source: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut temp = TempFile::new_in(dir)?;
    let mut input = File::open(source)?;
    io::copy(&mut input, temp.file())?;
    temp.commit_unsynced(dest)
}

/// Threads that fsync together (see [`sync_all`]).
const SYNC_THREADS: usize = 16;

/// fsyncs every path (files and directories) on a few threads at once, so
/// the file system can commit them together: one after the other they cost
/// ~4 ms each here, which dominated small publishes and bulk imports.
pub fn sync_all(paths: &[PathBuf]) -> io::Result<()> {
    super::workers::map(paths, SYNC_THREADS, |path| File::open(path)?.sync_all())
        .into_iter()
        .collect()
}

/// The files and their distinct parent directories, ready for [`sync_all`].
pub fn with_parents(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    files.iter().cloned().chain(dirs).collect()
}

/// fsyncs the directory holding `path`, so a rename in it survives a crash.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
