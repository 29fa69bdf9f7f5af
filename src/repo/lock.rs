//! The repository's writer lock (`state/lock`).
//!
//! A writer holds it only for its own catalog transaction and the publish
//! that follows, so every CLI command works while `repoctl serve` runs on the
//! same root. Readers never take it: SQLite's WAL gives them a consistent view.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Held while alive; the kernel releases it if the process dies.
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    pub fn acquire(path: &Path) -> io::Result<WriterLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.lock()?;
        Ok(WriterLock { _file: file })
    }
}
