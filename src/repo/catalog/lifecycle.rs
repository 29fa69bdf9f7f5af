//! Statements of the operator lifecycle: which files are where, taking them
//! out of an index (remove, prune), withdrawing and restoring them
//! (rollback), and the garbage collector's view of the pool.

use std::collections::HashSet;

use rusqlite::{params, Connection};
use serde::Serialize;

use super::SqlError;

/// A package file in one dist/component (published, or withdrawn there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    #[serde(skip)]
    pub file_id: i64,
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub dist: String,
    pub component: String,
    pub filename: String,
}

fn placed_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Placed> {
    Ok(Placed {
        file_id: r.get(0)?,
        package: r.get(1)?,
        version: r.get(2)?,
        architecture: r.get(3)?,
        dist: r.get(4)?,
        component: r.get(5)?,
        filename: r.get(6)?,
    })
}

/// Files published in `dist`/`component` (all of them, or of one package
/// and, if given, one version).
pub fn published(
    conn: &Connection,
    dist: Option<&str>,
    component: Option<&str>,
    package: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Placed>, SqlError> {
    query_placed(conn, "memberships", dist, component, package, version)
}

/// Files withdrawn from `dist`/`component` by a rollback.
pub fn withdrawn(
    conn: &Connection,
    dist: Option<&str>,
    component: Option<&str>,
    package: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Placed>, SqlError> {
    query_placed(conn, "withdrawn", dist, component, package, version)
}

fn query_placed(
    conn: &Connection,
    table: &str,
    dist: Option<&str>,
    component: Option<&str>,
    package: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Placed>, SqlError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT p.id, p.name, p.version, p.architecture, t.dist, t.component, p.pool_path
           FROM {table} AS t JOIN package_files AS p ON p.id = t.file_id
          WHERE (?1 IS NULL OR t.dist = ?1) AND (?2 IS NULL OR t.component = ?2)
            AND (?3 IS NULL OR p.name = ?3) AND (?4 IS NULL OR p.version = ?4)
          ORDER BY p.name, t.dist, t.component, p.architecture, p.id"
    ))?;
    let rows = stmt.query_map(params![dist, component, package, version], placed_from_row)?;
    rows.collect()
}

/// Takes a file out of an index; the caller marks the index dirty.
pub fn unlist(tx: &Connection, dist: &str, component: &str, file_id: i64) -> Result<(), SqlError> {
    tx.execute(
        "DELETE FROM memberships WHERE dist = ?1 AND component = ?2 AND file_id = ?3",
        params![dist, component, file_id],
    )?;
    tx.execute(
        "DELETE FROM withdrawn WHERE dist = ?1 AND component = ?2 AND file_id = ?3",
        params![dist, component, file_id],
    )?;
    Ok(())
}

/// Takes a file out of an index but keeps it for `restore`.
pub fn withdraw(
    tx: &Connection,
    dist: &str,
    component: &str,
    file_id: i64,
    now: i64,
) -> Result<(), SqlError> {
    unlist(tx, dist, component, file_id)?;
    tx.execute(
        "INSERT INTO withdrawn (dist, component, file_id, withdrawn_at) VALUES (?1, ?2, ?3, ?4)",
        params![dist, component, file_id, now],
    )?;
    Ok(())
}

/// A file back into an index (restore, copy): no longer waiting for gc.
pub fn list_again(
    tx: &Connection,
    dist: &str,
    component: &str,
    file_id: i64,
    now: i64,
) -> Result<(), SqlError> {
    // The add path's own statement: it also clears the gc clock and the
    // withdrawal.
    super::add_membership(tx, dist, component, file_id, now).map(|_| ())
}

/// Starts the gc clock of a file that is now in no index and withdrawn
/// nowhere.
pub fn mark_unlisted_if_orphan(tx: &Connection, file_id: i64, now: i64) -> Result<(), SqlError> {
    tx.execute(
        "UPDATE package_files SET unlisted_at = ?2
          WHERE id = ?1 AND unlisted_at IS NULL AND collected_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM memberships WHERE file_id = ?1)
            AND NOT EXISTS (SELECT 1 FROM withdrawn WHERE file_id = ?1)",
        params![file_id, now],
    )?;
    Ok(())
}

/// The pool paths of every file the catalog holds (not collected by gc).
pub fn live_pool_paths(conn: &Connection) -> Result<HashSet<String>, SqlError> {
    let mut stmt =
        conn.prepare("SELECT pool_path FROM package_files WHERE collected_at IS NULL")?;
    let paths = stmt.query_map([], |r| r.get(0))?;
    paths.collect()
}

/// A pool file the garbage collector looks at.
#[derive(Debug, Clone, Serialize)]
pub struct Unlisted {
    #[serde(skip)]
    pub file_id: i64,
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub filename: String,
    pub unlisted_at: i64,
}

/// Files in no index, withdrawn nowhere and still in the pool.
pub fn unlisted(conn: &Connection) -> Result<Vec<Unlisted>, SqlError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, version, architecture, pool_path, unlisted_at FROM package_files
          WHERE unlisted_at IS NOT NULL AND collected_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM memberships AS m WHERE m.file_id = package_files.id)
            AND NOT EXISTS (SELECT 1 FROM withdrawn AS w WHERE w.file_id = package_files.id)
          ORDER BY unlisted_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Unlisted {
            file_id: r.get(0)?,
            package: r.get(1)?,
            version: r.get(2)?,
            architecture: r.get(3)?,
            filename: r.get(4)?,
            unlisted_at: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The pool file is gone; the row stays, so its name and version are
/// never handed out again.
pub fn mark_collected(tx: &Connection, file_id: i64, now: i64) -> Result<(), SqlError> {
    tx.execute(
        "UPDATE package_files SET collected_at = ?2 WHERE id = ?1",
        params![file_id, now],
    )?;
    Ok(())
}
