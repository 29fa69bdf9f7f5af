//! Adding packages: the one path every door takes (DESIGN.md §1).
//!
//! Inspect every file first (no lock, one thread per core), then, under the
//! writer lock, store new pool files and record them in one catalog
//! transaction that commits only after those files are fsynced (the
//! acknowledgement), then publish. Owns the add report and its outcomes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use super::package::{self, PackageFile};
use super::publish::DistPublished;
use super::{catalog, durable, error_chain, now, Actor, RepoError, Repository};
use crate::config::{Config, Target};
use crate::deb::inspect;

/// What happened to one file given to `add`.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub path: PathBuf,
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub target: Target,
    pub filename: String,
    pub sha256: String,
    pub outcome: AddOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddOutcome {
    /// New to the repository: stored in the pool and added to the target.
    Added,
    /// Already in the pool with these bytes; now also in this target.
    Linked,
    /// Already in this target with these bytes: nothing changed.
    Unchanged,
}

#[derive(Debug, Serialize)]
pub struct AddReport {
    pub files: Vec<Added>,
    pub refused: Vec<Refused>,
    pub published: Vec<DistPublished>,
}

#[derive(Debug, Serialize)]
pub struct Refused {
    pub path: PathBuf,
    pub error: String,
    pub hint: Option<String>,
}

pub struct AddOptions {
    pub publish: bool,
    pub keep_going: bool,
}

/// Files inspected and validated, ready for `Repository::add_inspected`;
/// refusals already collected when the caller keeps going.
pub struct Inspected {
    accepted: Vec<(PathBuf, PackageFile)>,
    refused: Vec<Refused>,
    /// What the history and the report call the source, when the path read
    /// is a door's temporary file (an HTTP upload) rather than the user's.
    source_name: Option<String>,
}

impl Inspected {
    /// Inspects `.deb` files (or every `.deb` below a directory) without any
    /// lock: one thread per core reads and hashes every byte. All-or-nothing
    /// unless `keep_going`.
    pub fn files(
        paths: &[PathBuf],
        config: &Config,
        keep_going: bool,
    ) -> Result<Inspected, RepoError> {
        let files = expand_paths(paths)?;
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        let results = inspect_all(&files, config);
        for (path, result) in files.into_iter().zip(results) {
            match result {
                Ok(package) => accepted.push((path, package)),
                Err(e) if keep_going => refused.push(refusal(path, &e)),
                Err(e) => return Err(e),
            }
        }
        Ok(Inspected {
            accepted,
            refused,
            source_name: None,
        })
    }

    /// Names the source in the history and the report (e.g. the file name
    /// a client uploaded) instead of the temporary path that was read.
    pub fn with_source_name(mut self, name: &str) -> Inspected {
        self.source_name = Some(name.to_string());
        self
    }
}

impl Repository {
    /// Adds `.deb` files (or every `.deb` below a directory) to `target`.
    ///
    /// All-or-nothing unless `keep_going`: every file is inspected first, and
    /// one refusal leaves the repository untouched. The catalog transaction
    /// commits only after every new pool file is fsynced; the publish that
    /// includes the files follows unless `publish` is false.
    pub fn add(
        &mut self,
        paths: &[PathBuf],
        target: &Target,
        actor: &Actor,
        options: &AddOptions,
    ) -> Result<AddReport, RepoError> {
        self.check_target(target)?;
        let inspected = Inspected::files(paths, &self.config, options.keep_going)?;
        self.add_inspected(inspected, target, actor, options)
    }

    /// The second half of `add`, for doors that inspect before they take
    /// their turn at the repository (the HTTP server).
    pub fn add_inspected(
        &mut self,
        inspected: Inspected,
        target: &Target,
        actor: &Actor,
        options: &AddOptions,
    ) -> Result<AddReport, RepoError> {
        self.check_target(target)?;
        let Inspected {
            accepted,
            mut refused,
            source_name,
        } = inspected;
        let _lock = self.lock()?;
        let now = now();
        let public = self.public_dir();
        let all_archs = self.config.repository.architectures.clone();
        let mut stored_here: Vec<PathBuf> = Vec::new();
        let mut added = Vec::new();
        let result = catalog::write(&mut self.catalog, |tx| -> Result<(), RepoError> {
            for (path, package) in &accepted {
                let mut savepoint_files = Vec::new();
                let shown = source_name.as_deref().map_or(path.as_path(), Path::new);
                match store_one(
                    tx,
                    &public,
                    (path, shown),
                    package,
                    target,
                    actor,
                    now,
                    &mut savepoint_files,
                ) {
                    Ok(outcome) => {
                        stored_here.extend(savepoint_files);
                        added.push(outcome);
                    }
                    Err(e) if options.keep_going => {
                        for file in savepoint_files {
                            let _ = fs::remove_file(file);
                        }
                        refused.push(refusal(path.clone(), &e));
                    }
                    Err(e) => return Err(e),
                }
            }
            let archs = dirty_architectures(&all_archs, &added);
            catalog::mark_dirty(tx, &target.dist, &target.component, &archs)?;
            // The acknowledgement: new pool files reach the disk before the
            // transaction that refers to them commits.
            durable::sync_all(&durable::with_parents(&stored_here)).map_err(|source| {
                RepoError::Io {
                    action: "cannot fsync new pool files in",
                    path: public.join("pool"),
                    source,
                }
            })?;
            Ok(())
        });
        if let Err(e) = result {
            // Nothing was committed: the new pool files are orphans; remove them.
            for file in stored_here {
                let _ = fs::remove_file(file);
            }
            return Err(e);
        }
        let published = if options.publish {
            self.publish_locked(false, actor.door)?
        } else {
            Vec::new()
        };
        Ok(AddReport {
            files: added,
            refused,
            published,
        })
    }
}

/// Inspects and validates every file, on one thread per core (a bulk
/// import reads and hashes every byte of every file), results in order.
fn inspect_all(files: &[PathBuf], config: &Config) -> Vec<Result<PackageFile, RepoError>> {
    let inspect_one = |path: &Path| {
        inspect::inspect(path)
            .map_err(RepoError::from)
            .and_then(|info| Ok(PackageFile::from_deb(info, config, path)?))
    };
    super::workers::map(files, super::workers::cores(), |path| inspect_one(path))
}

/// The architectures whose indices the added files change.
fn dirty_architectures<'a>(all: &'a [String], added: &'a [Added]) -> Vec<&'a str> {
    let mut archs = BTreeSet::new();
    for file in added.iter().filter(|a| a.outcome != AddOutcome::Unchanged) {
        if file.architecture == "all" {
            archs.extend(all.iter().map(String::as_str));
        } else {
            archs.insert(file.architecture.as_str());
        }
    }
    archs.into_iter().collect()
}

/// Stores one package and records it in `tx`; new pool files are pushed to
/// `created` so the caller can remove them if the transaction does not commit.
#[allow(clippy::too_many_arguments)]
fn store_one(
    tx: &Connection,
    public: &Path,
    (path, shown): (&Path, &Path),
    package: &PackageFile,
    target: &Target,
    actor: &Actor,
    now: i64,
    created: &mut Vec<PathBuf>,
) -> Result<Added, RepoError> {
    let sums = &package.checksums;
    let (file_id, pool_path, outcome) = match catalog::file_by_name(tx, &package.file_name)? {
        Some(stored) if stored.sha256 != sums.sha256 || stored.size != sums.size => {
            return Err(if stored.version != package.version.as_str() {
                RepoError::VersionAlias {
                    file_name: package.file_name.clone(),
                    existing: stored.version,
                    new: package.version.to_string(),
                }
            } else {
                RepoError::Conflict {
                    file_name: package.file_name.clone(),
                    pool_path: stored.pool_path,
                    existing: stored.sha256,
                    new: sums.sha256.clone(),
                }
            });
        }
        Some(stored) if stored.version != package.version.as_str() => {
            return Err(RepoError::VersionAlias {
                file_name: package.file_name.clone(),
                existing: stored.version,
                new: package.version.to_string(),
            })
        }
        Some(stored) if stored.collected => {
            // Collected by gc: the same bytes may come back under the name.
            let dest = public.join(&stored.pool_path);
            store_in_pool(path, &dest)?;
            created.push(dest);
            catalog::uncollect(tx, stored.id)?;
            (stored.id, stored.pool_path, AddOutcome::Added)
        }
        Some(stored) => (stored.id, stored.pool_path, AddOutcome::Linked),
        None => {
            let pool_path =
                package::pool_path(&target.component, &package.name, &package.file_name);
            let dest = public.join(&pool_path);
            store_in_pool(path, &dest)?;
            created.push(dest);
            let stanza = package.stanza(&pool_path);
            let id = catalog::insert_file(tx, &package.catalog_row(&pool_path, &stanza, now))?;
            // The number someone reserved for this build has arrived.
            if let Some(number) = package.version.as_plain_integer() {
                catalog::release_reservation(tx, &package.name, number)?;
            }
            (id, pool_path, AddOutcome::Added)
        }
    };
    let is_new_member = catalog::add_membership(tx, &target.dist, &target.component, file_id, now)?;
    let outcome = match (outcome, is_new_member) {
        (_, false) => AddOutcome::Unchanged,
        (outcome, true) => outcome,
    };
    if outcome != AddOutcome::Unchanged {
        catalog::record(
            tx,
            &catalog::Event {
                at: now,
                door: actor.door.as_str(),
                actor: &actor.name,
                action: "add",
                package: Some(&package.name),
                version: Some(package.version.as_str()),
                architecture: Some(&package.architecture),
                dist: Some(&target.dist),
                component: Some(&target.component),
                detail: serde_json::json!({
                    "filename": pool_path,
                    "sha256": sums.sha256,
                    "size": sums.size,
                    "source": shown.display().to_string(),
                    "outcome": outcome,
                }),
            },
        )?;
    }
    Ok(Added {
        path: shown.to_path_buf(),
        package: package.name.clone(),
        version: package.version.to_string(),
        architecture: package.architecture.clone(),
        target: target.clone(),
        filename: pool_path,
        sha256: sums.sha256.clone(),
        outcome,
    })
}

/// Copies into the pool (made durable by the caller before its commit). A
/// pool file without a catalog row can only be the leftover of an
/// interrupted add (never acknowledged): replace it.
fn store_in_pool(source: &Path, dest: &Path) -> Result<(), RepoError> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| RepoError::Io {
            action: "cannot create",
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    durable::copy_file_unsynced(source, dest).map_err(|e| RepoError::Io {
        action: "cannot store in the pool",
        path: dest.to_path_buf(),
        source: e,
    })
}

pub(super) fn refusal(path: PathBuf, error: &RepoError) -> Refused {
    Refused {
        path,
        error: error_chain(error),
        hint: error.hint(),
    }
}

/// Files as given, and every `*.deb` below each directory, sorted.
fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RepoError> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(path)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "deb"))
            .collect();
        if found.is_empty() {
            return Err(RepoError::NothingToAdd { path: path.clone() });
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}
