//! `repoctl reindex`: rebuilds a lost or damaged catalog from what is on
//! disk, the pool (package files) and the served indices (which dist and
//! component each file is in).
//!
//! What disk cannot tell is said, not invented: the history, reservations
//! and tokens are gone with the old catalog. The new catalog is built beside
//! the old one and renamed over it, so a failed reindex changes nothing.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::add::refusal;
use super::package::PackageFile;
use super::release::Release;
use super::{catalog, now, RepoError};
use crate::config::Config;
use crate::deb::control::Paragraph;
use crate::deb::inspect;

#[derive(Debug, Serialize)]
pub struct ReindexReport {
    pub package_files: usize,
    pub memberships: usize,
    /// Pool files that could not be read as packages (left in place).
    pub unreadable: Vec<super::Refused>,
    /// Index entries whose file is missing from the pool (or differs).
    pub missing_from_pool: Vec<String>,
    pub not_recoverable: Vec<&'static str>,
}

pub fn run(root: &Path) -> Result<ReindexReport, RepoError> {
    let config = Config::load(root)?;
    let state = root.join("state");
    let _lock =
        super::lock::WriterLock::acquire(&state.join("lock")).map_err(|source| RepoError::Io {
            action: "cannot take the writer lock",
            path: state.join("lock"),
            source,
        })?;
    let public = root.join("public");
    let fresh_path = state.join(format!("{}.rebuild", super::CATALOG_FILE));
    remove_database(&fresh_path);
    let mut conn = catalog::open(&fresh_path)?;
    let at = now();

    let mut report = ReindexReport {
        package_files: 0,
        memberships: 0,
        unreadable: Vec::new(),
        missing_from_pool: Vec::new(),
        not_recoverable: vec!["history", "reservations", "tokens", "withdrawn"],
    };
    // pool path → (file id, sha256)
    let mut by_path: HashMap<String, (i64, String)> = HashMap::new();
    catalog::write(&mut conn, |tx| -> Result<(), RepoError> {
        for path in pool_files(&public.join("pool")) {
            let rel = path
                .strip_prefix(&public)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let package = match inspect::inspect(&path)
                .map_err(RepoError::from)
                .and_then(|info| Ok(PackageFile::from_deb(info, &config, &path)?))
            {
                Ok(package) => package,
                Err(e) => {
                    report.unreadable.push(refusal(path.clone(), &e));
                    continue;
                }
            };
            let sums = &package.checksums;
            let stanza = package.stanza(&rel);
            let id = catalog::insert_file(tx, &package.catalog_row(&rel, &stanza, at))?;
            by_path.insert(rel, (id, sums.sha256.clone()));
            report.package_files += 1;
        }
        for dist in &config.repository.dists {
            let dist_dir = public.join("dists").join(dist);
            let Some(release) = fs::read_to_string(dist_dir.join("Release"))
                .ok()
                .and_then(|t| Release::parse(&t).ok())
            else {
                continue;
            };
            for path in release.files.keys().filter(|p| p.ends_with("/Packages")) {
                let Some((component, _)) = path.split_once('/') else {
                    continue;
                };
                let Some(text) = read_index(&dist_dir, path) else {
                    continue;
                };
                for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
                    let Ok(paragraph) = Paragraph::parse(stanza) else {
                        continue;
                    };
                    let filename = paragraph.get("Filename").unwrap_or("");
                    let sha256 = paragraph.get("SHA256").unwrap_or("");
                    match by_path.get(filename) {
                        Some((id, stored)) if stored == sha256 => {
                            if catalog::add_membership(tx, dist, component, *id, at)? {
                                report.memberships += 1;
                            }
                        }
                        _ => report
                            .missing_from_pool
                            .push(format!("{dist}/{component}: {filename}")),
                    }
                }
            }
        }
        catalog::record(
            tx,
            &catalog::Event::repository(
                at,
                "reindex",
                None,
                serde_json::json!({
                    "package_files": report.package_files,
                    "memberships": report.memberships,
                }),
            ),
        )?;
        Ok(())
    })?;
    drop(conn);
    report.missing_from_pool.sort();
    report.missing_from_pool.dedup();

    let live = state.join(super::CATALOG_FILE);
    remove_database(&live);
    fs::rename(&fresh_path, &live).map_err(|source| RepoError::Io {
        action: "cannot move the rebuilt catalog to",
        path: live.clone(),
        source,
    })?;
    Ok(report)
}

fn pool_files(pool: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(pool)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(super::durable::TEMP_PREFIX))
        })
        .collect();
    files.sort();
    files
}

/// The text of `<rel>` from whichever form the dist ships.
fn read_index(dist_dir: &Path, rel: &str) -> Option<String> {
    let mut text = String::new();
    if let Ok(file) = fs::File::open(dist_dir.join(format!("{rel}.gz"))) {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .ok()?;
        return Some(text);
    }
    fs::read_to_string(dist_dir.join(rel)).ok()
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = fs::remove_file(PathBuf::from(name));
    }
}
