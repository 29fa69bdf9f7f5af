//! Garbage collection of the pool.
//!
//! A pool file is deleted only when it is in no index, withdrawn nowhere
//! (a rollback keeps its files for `restore`), has been so for the grace
//! period, and no served index (by-hash keeps those of the last three
//! publishes) names it: a client holding an older InRelease may still
//! download it. The catalog row stays (`collected_at`), so the name and
//! version are never handed out again. Leftovers go too, after an hour:
//! `.repoctl-tmp-*` files of killed adds, and pool files no catalog row
//! holds (an add killed between storing its file and committing, never
//! acknowledged; or a gc killed between its commit and the delete).
//! Nothing to do writes nothing.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::catalog::lifecycle::{self as sql, Unlisted};
use super::catalog::{self, Event};
use super::{durable, now, Actor, RepoError, Repository};

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Deleted from the pool (or, with --dry-run, would be).
    pub collected: Vec<Unlisted>,
    /// In no index, but still inside the grace period.
    pub waiting: Vec<Unlisted>,
    /// Past the grace period, but an index of a kept generation names them.
    pub still_served: Vec<Unlisted>,
    /// Temporary files of interrupted adds removed from the pool.
    pub temporary_files: Vec<String>,
    /// Pool files no catalog row holds, removed (relative to public/).
    pub orphans: Vec<String>,
}

impl Repository {
    pub fn gc(&mut self, actor: &Actor, dry_run: bool) -> Result<GcReport, RepoError> {
        let _lock = if dry_run { None } else { Some(self.lock()?) };
        let now = now();
        let grace = i64::from(self.config.gc.grace_hours) * 3600;
        let public = self.public_dir();
        let served = names_in_kept_indices(&public)?;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        for file in sql::unlisted(&self.catalog)? {
            if file.unlisted_at > now - grace {
                report.waiting.push(file);
            } else if served.contains(&file.filename) {
                report.still_served.push(file);
            } else {
                report.collected.push(file);
            }
        }
        let leftovers = Leftovers::find(&public, now - grace.min(3600));
        let live = sql::live_pool_paths(&self.catalog)?;
        report.temporary_files = leftovers.temporary;
        report.orphans = leftovers.others;
        // A file a kept index names is not an orphan whatever the catalog says.
        report
            .orphans
            .retain(|name| !live.contains(name) && !served.contains(name));
        let nothing = report.collected.is_empty()
            && report.temporary_files.is_empty()
            && report.orphans.is_empty();
        if dry_run || nothing {
            return Ok(report);
        }
        // Catalog first: a crash after it leaves a pool file nothing names,
        // which verify reports and the next gc cannot double-count.
        catalog::write(&mut self.catalog, |tx| -> Result<(), RepoError> {
            for file in &report.collected {
                sql::mark_collected(tx, file.file_id, now)?;
                catalog::record(tx, &gc_event(actor, now, file))?;
            }
            for name in &report.orphans {
                catalog::record(tx, &orphan_event(actor, now, name))?;
            }
            Ok(())
        })?;
        for file in &report.collected {
            remove(&public.join(&file.filename))?;
        }
        for name in report.temporary_files.iter().chain(&report.orphans) {
            remove(&public.join(name))?;
        }
        Ok(report)
    }
}

fn gc_event<'a>(actor: &'a Actor, now: i64, file: &'a Unlisted) -> Event<'a> {
    Event {
        at: now,
        door: actor.door.as_str(),
        actor: &actor.name,
        action: "gc",
        package: Some(&file.package),
        version: Some(&file.version),
        architecture: Some(&file.architecture),
        dist: None,
        component: None,
        detail: serde_json::json!({ "filename": file.filename, "unlisted_at": file.unlisted_at }),
    }
}

/// History keeps what went, though no catalog row named it.
fn orphan_event<'a>(actor: &'a Actor, now: i64, filename: &str) -> Event<'a> {
    Event {
        at: now,
        door: actor.door.as_str(),
        actor: &actor.name,
        action: "gc",
        package: None,
        version: None,
        architecture: None,
        dist: None,
        component: None,
        detail: serde_json::json!({ "filename": filename, "orphan": true }),
    }
}

fn remove(path: &Path) -> Result<(), RepoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RepoError::Io {
            action: "cannot delete",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Every `Filename:` of every index a client can still fetch: each served
/// dist's indices and its by-hash objects, which cover the last three
/// publishes (read from their gzip form; the other forms hold the same text).
fn names_in_kept_indices(public: &Path) -> Result<HashSet<String>, RepoError> {
    let mut names = HashSet::new();
    let mut seen_inodes = HashSet::new();
    let served = walkdir::WalkDir::new(public.join("dists"))
        .follow_links(true)
        .into_iter()
        .filter_map(Result::ok);
    for entry in served {
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let inode =
            std::os::unix::fs::MetadataExt::ino(&entry.metadata().map_err(|e| io(path, e.into()))?);
        if !seen_inodes.insert(inode) {
            continue;
        }
        let mut head = [0u8; 2];
        let mut file = fs::File::open(path).map_err(|e| io(path, e))?;
        if file.read_exact(&mut head).is_err() || head != [0x1f, 0x8b] {
            continue;
        }
        let mut text = String::new();
        let gzip =
            flate2::read::MultiGzDecoder::new(fs::File::open(path).map_err(|e| io(path, e))?);
        std::io::BufReader::new(gzip)
            .read_to_string(&mut text)
            .map_err(|e| io(path, e))?;
        names.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("Filename: "))
                .map(str::to_string),
        );
    }
    Ok(names)
}

fn io(path: &Path, source: std::io::Error) -> RepoError {
    RepoError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    }
}

/// Files under pool/ last modified before `before` (Unix seconds), relative
/// to public/: the temporary files of adds, and the others, which are
/// leftovers only if the catalog does not hold them.
struct Leftovers {
    temporary: Vec<String>,
    others: Vec<String>,
}

impl Leftovers {
    fn find(public: &Path, before: i64) -> Leftovers {
        let mut found = Leftovers {
            temporary: Vec::new(),
            others: Vec::new(),
        };
        let old_files = walkdir::WalkDir::new(public.join("pool"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && modified_before(e, before));
        for entry in old_files {
            let Some(name) = entry
                .path()
                .strip_prefix(public)
                .ok()
                .map(|p| p.display().to_string())
            else {
                continue;
            };
            let temporary = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(durable::TEMP_PREFIX));
            if temporary {
                found.temporary.push(name);
            } else {
                found.others.push(name);
            }
        }
        found
    }
}

fn modified_before(entry: &walkdir::DirEntry, before: i64) -> bool {
    entry
        .metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|age| (age.as_secs() as i64) < before)
}
