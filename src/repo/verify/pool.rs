//! The pool check: every pool file the catalog holds (not collected by gc)
//! is there with its recorded size and SHA-256, hashed on every core; every
//! file under `public/pool/` is named by the catalog; pool files in no
//! index are reported as awaiting gc.
//!
//! Owns the catalog queries this check needs and the walk of
//! `public/pool/`. Does not own the served tree (`served`) nor the report
//! types (`verify`); reads only, never writes a pool file.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{hash, Finding, FindingKind, VerifyReport};
use crate::repo::release::http_date;
use crate::repo::{durable, workers, RepoError, Repository};

/// A pool file the catalog holds.
struct PoolRow {
    id: i64,
    pool_path: String,
    size: u64,
    sha256: String,
}

/// What was found at a pool path.
enum PoolState {
    Good,
    Missing,
    Unreadable(String),
    Damaged { size: u64, sha256: Option<String> },
}

impl Repository {
    /// Pool files against the catalog, and the catalog against the pool.
    pub(super) fn verify_pool(&self, report: &mut VerifyReport, at: i64) -> Result<(), RepoError> {
        let public = self.public_dir();
        // The walk comes before the catalog is read: a file an add stores
        // meanwhile is then in the catalog, not reported as an orphan.
        let on_disk = walk_pool(&public, report);
        let rows = live_pool_rows(&self.catalog)?;
        let collected = collected_pool_paths(&self.catalog)?;

        let named: HashSet<&str> = rows.iter().map(|r| r.pool_path.as_str()).collect();
        let mut findings = Vec::new();
        for rel in on_disk {
            if named.contains(rel.as_str()) {
                continue;
            }
            let shown = format!("public/{rel}");
            let is_temp = Path::new(&rel)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(durable::TEMP_PREFIX));
            if is_temp {
                findings.push(Finding::new(
                    FindingKind::TemporaryLeftover,
                    shown,
                    "a temporary file that no catalog row names",
                ));
                continue;
            }
            // Collected by gc (or finished by an add) since the walk?
            if fs::symlink_metadata(public.join(&rel)).is_err() {
                continue;
            }
            let detail = match collected.get(&rel) {
                Some(when) => format!(
                    "no catalog row holds it: the catalog records it as deleted by gc at {}",
                    http_date(*when)
                ),
                None => "no catalog row names it (an add interrupted before its commit, \
                         never acknowledged); gc removes it once it is an hour old"
                    .to_string(),
            };
            findings.push(Finding::new(FindingKind::OrphanedPoolFile, shown, detail));
        }

        let states = workers::map(&rows, workers::cores(), |row| {
            check_pool_file(&public.join(&row.pool_path), row.size, &row.sha256)
        });
        report.checked.pool_files = rows.len();
        for (row, state) in rows.iter().zip(states) {
            let shown = format!("public/{}", row.pool_path);
            let expected = format!("{} bytes, sha256 {}", row.size, row.sha256);
            match state {
                PoolState::Good => {}
                PoolState::Missing => {
                    if collected_since(&self.catalog, row.id)? {
                        continue;
                    }
                    findings.push(Finding::new(
                        FindingKind::PoolFileMissing,
                        shown,
                        format!("the catalog holds it ({expected}), but the file does not exist"),
                    ));
                }
                PoolState::Unreadable(error) => findings.push(Finding::new(
                    FindingKind::PoolFileUnreadable,
                    shown,
                    format!("cannot be read: {error}"),
                )),
                PoolState::Damaged { size, sha256 } => {
                    let found = match sha256 {
                        Some(sha256) => format!("{size} bytes, sha256 {sha256}"),
                        None => format!("{size} bytes"),
                    };
                    findings.push(Finding::new(
                        FindingKind::PoolFileDamaged,
                        shown,
                        format!("expected {expected} (the catalog), found {found}"),
                    ));
                }
            }
        }
        findings.sort_by(|a, b| a.path.cmp(&b.path));
        report.problems.extend(findings);

        let grace = i64::from(self.config.gc.grace_hours) * 3600;
        for (pool_path, unlisted_at) in awaiting_collection(&self.catalog)? {
            let due = unlisted_at + grace;
            let when = if due <= at {
                "gc may delete it now".to_string()
            } else {
                format!("gc deletes it after {}", http_date(due))
            };
            report.info.push(Finding::new(
                FindingKind::AwaitingCollection,
                format!("public/{pool_path}"),
                format!("in no index since {}; {when}", http_date(unlisted_at)),
            ));
        }
        Ok(())
    }
}

/// Every file and link under `public/pool/`, relative to `public/`, sorted.
fn walk_pool(public: &Path, report: &mut VerifyReport) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(public.join("pool")) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e
                    .path()
                    .map_or_else(|| public.join("pool"), Path::to_path_buf);
                let shown = path.strip_prefix(public.parent().unwrap_or(public));
                report.problem(Finding::new(
                    FindingKind::PoolFileUnreadable,
                    shown.unwrap_or(&path).display().to_string(),
                    format!("cannot be listed: {e}"),
                ));
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        if let Ok(rel) = entry.path().strip_prefix(public) {
            found.push(rel.to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

fn live_pool_rows(conn: &Connection) -> Result<Vec<PoolRow>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT id, pool_path, size, sha256 FROM package_files
         WHERE collected_at IS NULL ORDER BY pool_path",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PoolRow {
            id: r.get(0)?,
            pool_path: r.get(1)?,
            size: r.get(2)?,
            sha256: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Pool paths gc has deleted, with when.
fn collected_pool_paths(conn: &Connection) -> Result<BTreeMap<String, i64>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT pool_path, collected_at FROM package_files WHERE collected_at IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Whether gc collected the file after the rows were read.
fn collected_since(conn: &Connection, id: i64) -> Result<bool, rusqlite::Error> {
    Ok(conn
        .query_row(
            "SELECT collected_at IS NOT NULL FROM package_files WHERE id = ?1",
            [id],
            |r| r.get::<_, bool>(0),
        )
        .optional()?
        .unwrap_or(true))
}

/// Pool files in no index, not yet deleted by gc: `(pool_path, unlisted_at)`.
fn awaiting_collection(conn: &Connection) -> Result<Vec<(String, i64)>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT pool_path, unlisted_at FROM package_files
         WHERE unlisted_at IS NOT NULL AND collected_at IS NULL ORDER BY pool_path",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn check_pool_file(path: &Path, size: u64, sha256: &str) -> PoolState {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return PoolState::Missing,
        Err(e) => return PoolState::Unreadable(e.to_string()),
    };
    match file.metadata() {
        Ok(meta) if !meta.is_file() => return PoolState::Unreadable("not a regular file".into()),
        Ok(meta) if meta.len() != size => {
            return PoolState::Damaged {
                size: meta.len(),
                sha256: None,
            }
        }
        Ok(_) => {}
        Err(e) => return PoolState::Unreadable(e.to_string()),
    }
    match hash(file) {
        Ok((found_size, found)) if found_size == size && found == sha256 => PoolState::Good,
        Ok((found_size, found)) => PoolState::Damaged {
            size: found_size,
            sha256: Some(found),
        },
        Err(e) => PoolState::Unreadable(e.to_string()),
    }
}
