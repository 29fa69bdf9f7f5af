//! The catalog (`state/catalog.sqlite`): package files, their membership in
//! each dist/component, the indices awaiting a publish and the history of every
//! change.
//!
//! Owns the schema and every SQL statement. It holds no policy: callers
//! decide what may change; this module records it in one transaction.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

pub mod lifecycle;

pub use rusqlite::Error as SqlError;

const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS package_files (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    architecture  TEXT NOT NULL,
    file_name     TEXT NOT NULL UNIQUE,   -- name_version-without-epoch_arch.deb
    pool_path     TEXT NOT NULL UNIQUE,   -- relative to public/, never moves
    size          INTEGER NOT NULL,
    md5           TEXT NOT NULL,
    sha1          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    stanza        TEXT NOT NULL,          -- the Packages paragraph, without the blank line
    added_at      INTEGER NOT NULL,
    unlisted_at   INTEGER,                -- since when in no index and not withdrawn (GC's clock)
    collected_at  INTEGER                 -- pool file deleted by gc; the row stays so the
                                          -- name and version are never handed out again
);
CREATE INDEX IF NOT EXISTS package_files_by_name ON package_files (name);

CREATE TABLE IF NOT EXISTS memberships (
    dist       TEXT NOT NULL,
    component  TEXT NOT NULL,
    file_id    INTEGER NOT NULL REFERENCES package_files (id),
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (dist, component, file_id)
) WITHOUT ROWID;
-- Where a file is published (next-version, reindex) without a scan.
CREATE INDEX IF NOT EXISTS memberships_by_file ON memberships (file_id);

-- Files taken out of an index by a rollback (schema version 5): kept in the
-- pool, never collected, until restored or removed.
CREATE TABLE IF NOT EXISTS withdrawn (
    dist          TEXT NOT NULL,
    component     TEXT NOT NULL,
    file_id       INTEGER NOT NULL REFERENCES package_files (id),
    withdrawn_at  INTEGER NOT NULL,
    PRIMARY KEY (dist, component, file_id)
) WITHOUT ROWID;

-- Indices whose package set changed since their last publish.
CREATE TABLE IF NOT EXISTS dirty_indices (
    dist          TEXT NOT NULL,
    component     TEXT NOT NULL,
    architecture  TEXT NOT NULL,
    PRIMARY KEY (dist, component, architecture)
) WITHOUT ROWID;

-- Numbers handed out by `next-version --reserve` (schema version 2).
CREATE TABLE IF NOT EXISTS reservations (
    package     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (package, version)
) WITHOUT ROWID;

-- API tokens (schema version 4). Only the SHA-256 of a token is kept; the
-- token itself is shown once, when it is created.
CREATE TABLE IF NOT EXISTS tokens (
    name        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    uploads     TEXT NOT NULL,          -- comma-separated dist/component scopes
    operator    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE IF NOT EXISTS history (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    door          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    package       TEXT,
    version       TEXT,
    architecture  TEXT,
    dist          TEXT,
    component     TEXT,
    detail        TEXT NOT NULL
);

";

/// Opens (creating if needed) the catalog with WAL and a generous busy
/// timeout: writers are serialised by the repository lock, readers never wait.
pub fn open(path: &Path) -> Result<Connection, SqlError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(SCHEMA)?;
        // Columns added after a table was first created (schema version 5).
        for column in ["unlisted_at", "collected_at"] {
            add_column_if_missing(&conn, "package_files", column, "INTEGER")?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(conn)
}

fn add_column_if_missing(
    conn: &Connection,
    table: &str,
    column: &str,
    kind: &str,
) -> Result<(), SqlError> {
    let exists: bool = conn.query_row(
        &format!("SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |r| r.get(0),
    )?;
    if !exists {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(())
}

/// Runs `f` in one immediate (write-locking) transaction, committed on `Ok`.
pub fn write<T, E: From<SqlError>>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// A package file already in the catalog.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: i64,
    pub version: String,
    pub pool_path: String,
    pub size: u64,
    pub sha256: String,
    /// The pool file was deleted by gc (the row stays).
    pub collected: bool,
}

pub fn file_by_name(conn: &Connection, file_name: &str) -> Result<Option<StoredFile>, SqlError> {
    conn.query_row(
        "SELECT id, version, pool_path, size, sha256, collected_at IS NOT NULL
           FROM package_files WHERE file_name = ?1",
        [file_name],
        |r| {
            Ok(StoredFile {
                id: r.get(0)?,
                version: r.get(1)?,
                pool_path: r.get(2)?,
                size: r.get(3)?,
                sha256: r.get(4)?,
                collected: r.get(5)?,
            })
        },
    )
    .optional()
}

pub struct NewFile<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub architecture: &'a str,
    pub file_name: &'a str,
    pub pool_path: &'a str,
    pub size: u64,
    pub md5: &'a str,
    pub sha1: &'a str,
    pub sha256: &'a str,
    pub stanza: &'a str,
    pub at: i64,
}

pub fn insert_file(conn: &Connection, f: &NewFile<'_>) -> Result<i64, SqlError> {
    conn.execute(
        "INSERT INTO package_files
           (name, version, architecture, file_name, pool_path, size, md5, sha1, sha256, stanza, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            f.name, f.version, f.architecture, f.file_name, f.pool_path, f.size, f.md5, f.sha1,
            f.sha256, f.stanza, f.at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Adds the file to dist/component; false when it was already there.
/// The pool file of a collected row is back.
pub fn uncollect(conn: &Connection, file_id: i64) -> Result<(), SqlError> {
    conn.execute(
        "UPDATE package_files SET collected_at = NULL WHERE id = ?1",
        [file_id],
    )?;
    Ok(())
}

pub fn add_membership(
    conn: &Connection,
    dist: &str,
    component: &str,
    file_id: i64,
    at: i64,
) -> Result<bool, SqlError> {
    let changed = conn.execute(
        "INSERT OR IGNORE INTO memberships (dist, component, file_id, added_at) VALUES (?1, ?2, ?3, ?4)",
        params![dist, component, file_id, at],
    )?;
    if changed == 1 {
        // Listed again: off the gc clock, and no longer withdrawn here.
        conn.execute(
            "UPDATE package_files SET unlisted_at = NULL WHERE id = ?1",
            [file_id],
        )?;
        conn.execute(
            "DELETE FROM withdrawn WHERE dist = ?1 AND component = ?2 AND file_id = ?3",
            params![dist, component, file_id],
        )?;
    }
    Ok(changed == 1)
}

pub fn mark_dirty(
    conn: &Connection,
    dist: &str,
    component: &str,
    architectures: &[&str],
) -> Result<(), SqlError> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO dirty_indices (dist, component, architecture) VALUES (?1, ?2, ?3)",
    )?;
    for arch in architectures {
        stmt.execute(params![dist, component, arch])?;
    }
    Ok(())
}

pub fn dirty_indices(conn: &Connection, dist: &str) -> Result<Vec<(String, String)>, SqlError> {
    let mut stmt = conn.prepare(
        "SELECT component, architecture FROM dirty_indices WHERE dist = ?1 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([dist], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

pub fn clear_dirty(
    conn: &Connection,
    dist: &str,
    indices: &[(String, String)],
) -> Result<(), SqlError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM dirty_indices WHERE dist = ?1 AND component = ?2 AND architecture = ?3",
    )?;
    for (component, arch) in indices {
        stmt.execute(params![dist, component, arch])?;
    }
    Ok(())
}

/// Calls `f(name, version, stanza)` for every package of one index, ordered
/// by name (the caller orders versions within a name). Streams: the planner
/// walks the name index and probes memberships, so memory stays flat however
/// large the index is.
pub fn for_each_stanza(
    conn: &Connection,
    dist: &str,
    component: &str,
    architecture: &str,
    mut f: impl FnMut(&str, &str, &str) -> std::io::Result<()>,
) -> Result<(), IndexQueryError> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.name, p.version, p.stanza
           FROM package_files AS p INDEXED BY package_files_by_name
           CROSS JOIN memberships AS m
             ON m.file_id = p.id AND m.dist = ?1 AND m.component = ?2
          WHERE p.architecture IN (?3, 'all')
          ORDER BY p.name",
    )?;
    let mut rows = stmt.query(params![dist, component, architecture])?;
    while let Some(row) = rows.next()? {
        let name = row.get_ref(0)?.as_str()?;
        let version = row.get_ref(1)?.as_str()?;
        let stanza = row.get_ref(2)?.as_str()?;
        f(name, version, stanza)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum IndexQueryError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    FromSql(#[from] rusqlite::types::FromSqlError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One history row.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    pub at: i64,
    pub door: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub package: Option<&'a str>,
    pub version: Option<&'a str>,
    pub architecture: Option<&'a str>,
    pub dist: Option<&'a str>,
    pub component: Option<&'a str>,
    pub detail: serde_json::Value,
}

impl<'a> Event<'a> {
    /// A change to the repository as a whole (publish, reindex), made by
    /// repoctl itself rather than for one package.
    pub fn repository(
        at: i64,
        action: &'a str,
        dist: Option<&'a str>,
        detail: serde_json::Value,
    ) -> Event<'a> {
        Event {
            at,
            door: "cli",
            actor: "repoctl",
            action,
            package: None,
            version: None,
            architecture: None,
            dist,
            component: None,
            detail,
        }
    }
}

pub fn record(conn: &Connection, e: &Event<'_>) -> Result<(), SqlError> {
    conn.prepare_cached(
        "INSERT INTO history (at, door, actor, action, package, version, architecture, dist, component, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        e.at,
        e.door,
        e.actor,
        e.action,
        e.package,
        e.version,
        e.architecture,
        e.dist,
        e.component,
        e.detail.to_string()
    ])?;
    Ok(())
}

/// One history row as queries return it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryRow {
    pub id: i64,
    pub at: i64,
    pub door: String,
    pub actor: String,
    pub action: String,
    pub package: Option<String>,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub dist: Option<String>,
    pub component: Option<String>,
    pub detail: serde_json::Value,
}

/// The newest `limit` history rows (of one package, at or after `since`,
/// if given), newest first.
pub fn history(
    conn: &Connection,
    package: Option<&str>,
    since: Option<i64>,
    limit: u32,
) -> Result<Vec<HistoryRow>, SqlError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, door, actor, action, package, version, architecture, dist, component, detail
           FROM history WHERE (?1 IS NULL OR package = ?1) AND (?2 IS NULL OR at >= ?2)
          ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![package, since, limit], |r| {
        let detail: String = r.get(10)?;
        Ok(HistoryRow {
            id: r.get(0)?,
            at: r.get(1)?,
            door: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            package: r.get(5)?,
            version: r.get(6)?,
            architecture: r.get(7)?,
            dist: r.get(8)?,
            component: r.get(9)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        })
    })?;
    rows.collect()
}

/// One published package as `repoctl list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listing {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub dist: String,
    pub component: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

pub fn list(
    conn: &Connection,
    package: Option<&str>,
    dist: Option<&str>,
    component: Option<&str>,
) -> Result<Vec<Listing>, SqlError> {
    let mut stmt = conn.prepare(
        "SELECT p.name, p.version, p.architecture, m.dist, m.component, p.pool_path, p.size, p.sha256
           FROM memberships AS m JOIN package_files AS p ON p.id = m.file_id
          WHERE (?1 IS NULL OR p.name = ?1) AND (?2 IS NULL OR m.dist = ?2)
            AND (?3 IS NULL OR m.component = ?3)",
    )?;
    let rows = stmt.query_map(params![package, dist, component], |r| {
        Ok(Listing {
            package: r.get(0)?,
            version: r.get(1)?,
            architecture: r.get(2)?,
            dist: r.get(3)?,
            component: r.get(4)?,
            filename: r.get(5)?,
            size: r.get(6)?,
            sha256: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// Where a version of a package is: one row per file and membership (a
/// file in no dist/component has `None` for both).
#[derive(Debug, Clone)]
pub struct VersionPlace {
    pub version: String,
    pub architecture: String,
    pub dist: Option<String>,
    pub component: Option<String>,
}

/// Every version of `package` the repository holds, with where it is
/// published; restricted to memberships matching `dist`/`component` when
/// either is given.
pub fn version_places(
    conn: &Connection,
    package: &str,
    dist: Option<&str>,
    component: Option<&str>,
) -> Result<Vec<VersionPlace>, SqlError> {
    let filtered = dist.is_some() || component.is_some();
    let mut stmt = conn.prepare_cached(
        "SELECT p.version, p.architecture, m.dist, m.component
           FROM package_files AS p LEFT JOIN memberships AS m ON m.file_id = p.id
          WHERE p.name = ?1
            AND (NOT ?2 OR (m.dist IS NOT NULL AND (?3 IS NULL OR m.dist = ?3)
                            AND (?4 IS NULL OR m.component = ?4)))",
    )?;
    let rows = stmt.query_map(params![package, filtered, dist, component], |r| {
        Ok(VersionPlace {
            version: r.get(0)?,
            architecture: r.get(1)?,
            dist: r.get(2)?,
            component: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// A live reservation.
#[derive(Debug, Clone, Serialize)]
pub struct Reservation {
    pub package: String,
    pub version: u64,
    pub holder: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The highest number reserved for `package` and not expired at `now`.
pub fn highest_reservation(
    conn: &Connection,
    package: &str,
    now: i64,
) -> Result<Option<u64>, SqlError> {
    conn.prepare_cached(
        "SELECT max(version) FROM reservations WHERE package = ?1 AND expires_at > ?2",
    )?
    .query_row(params![package, now], |r| r.get::<_, Option<i64>>(0))
    .map(|v| v.map(|v| v as u64))
}

pub fn insert_reservation(conn: &Connection, r: &Reservation) -> Result<(), SqlError> {
    conn.execute(
        "DELETE FROM reservations WHERE package = ?1 AND expires_at <= ?2",
        params![r.package, r.created_at],
    )?;
    conn.execute(
        "INSERT INTO reservations (package, version, holder, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            r.package,
            r.version as i64,
            r.holder,
            r.created_at,
            r.expires_at
        ],
    )?;
    Ok(())
}

/// A package with this version arrived: its reservation has done its job.
pub fn release_reservation(
    conn: &Connection,
    package: &str,
    version: u64,
) -> Result<bool, SqlError> {
    let n = conn.execute(
        "DELETE FROM reservations WHERE package = ?1 AND version = ?2",
        params![package, version as i64],
    )?;
    Ok(n > 0)
}
