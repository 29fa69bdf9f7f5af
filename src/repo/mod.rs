//! The repository: the one API every door (CLI, HTTP, incoming) calls.
//!
//! `Repository` owns the root directory: `repoctl.toml`, `state/` (catalog,
//! lock, index cache), `keys/`, `incoming/` and `public/` (pool and dists).
//! Adding a package is: inspect (no lock) → validate → under the writer lock,
//! pool file fsynced + catalog transaction committed (the acknowledgement) →
//! publish. Submodules own one concept each; this file sequences them.

pub mod catalog;
pub mod compress;
pub mod durable;
pub mod index;
pub mod lock;
pub mod next_version;
pub mod package;
pub mod publish;
mod reindex;
pub mod release;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use crate::config::{Config, ConfigError, Target};
use crate::deb::inspect::{self, DebError};
use crate::signing::{KeyType, Signer, SigningError, SigningKey};
use package::{PackageFile, PolicyError};
use publish::{DistPublished, PublishError, Publisher};

pub use reindex::ReindexReport;

/// Files under `state/`.
pub const CATALOG_FILE: &str = "catalog.sqlite";
pub const INDEX_CACHE_FILE: &str = "index-cache.sqlite";

/// Which door a change came through; recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    Cli,
    Http,
    Incoming,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Cli => "cli",
            Door::Http => "http",
            Door::Incoming => "incoming",
        }
    }
}

/// Who asked for a change, and through which door.
#[derive(Debug, Clone)]
pub struct Actor {
    pub door: Door,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    NextVersion(#[from] next_version::NextVersionError),
    #[error("the catalog failed")]
    Catalog(#[from] rusqlite::Error),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{root} already holds a repository ({file} exists)")]
    AlreadyInitialized { root: PathBuf, file: PathBuf },
    #[error("unknown target {target}: this repository publishes dists {dists} and components {components}")]
    UnknownTarget {
        target: String,
        dists: String,
        components: String,
    },
    #[error("`{file_name}` is already in the pool with different contents (sha256 {existing} at {pool_path}, this file has {new})")]
    Conflict {
        file_name: String,
        pool_path: String,
        existing: String,
        new: String,
    },
    #[error("version {new} of this package maps to the same pool file `{file_name}` as the stored version {existing}")]
    VersionAlias {
        file_name: String,
        existing: String,
        new: String,
    },
    #[error("{path} holds no .deb files")]
    NothingToAdd { path: PathBuf },
    #[error("{refused} of {total} files were refused; the others were added")]
    PartlyRefused { refused: usize, total: usize },
}

impl RepoError {
    /// How to fix it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            RepoError::Config(e) => e.hint(),
            RepoError::Deb(e) => e.hint(),
            RepoError::Policy(e) => e.hint(),
            RepoError::Publish(e) => e.hint(),
            RepoError::Signing(e) => e.hint(),
            RepoError::NextVersion(e) => e.hint(),
            RepoError::AlreadyInitialized { .. } => Some(
                "use that repository as it is (repoctl --root DIR ...), or init another directory".into(),
            ),
            RepoError::UnknownTarget { .. } => Some(
                "pass one of the configured dists and components, or add yours to repoctl.toml".into(),
            ),
            RepoError::Conflict { file_name, .. } => Some(format!(
                "a published version never changes its bytes (clients cache it by name); build it again with a new version (repoctl next-version {})",
                file_name.split('_').next().unwrap_or(file_name)
            )),
            RepoError::VersionAlias { .. } => Some(
                "pool file names leave out the epoch; use a version that differs after the epoch".into(),
            ),
            RepoError::NothingToAdd { .. } => Some("pass .deb files or a directory that holds some".into()),
            _ => None,
        }
    }
}

/// How `init` gets its signing key.
#[derive(Debug, Clone)]
pub enum KeySource {
    Generate(KeyType),
    Import(PathBuf),
}

pub struct InitOptions {
    pub config: Config,
    pub key: KeySource,
}

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

pub struct Repository {
    root: PathBuf,
    config: Config,
    catalog: Connection,
}

impl Repository {
    /// Creates a repository at `root` and publishes an empty, signed tree for
    /// every dist. Everything is checked before anything is written.
    pub fn init(root: &Path, options: InitOptions) -> Result<Repository, RepoError> {
        let config_file = root.join(crate::config::FILE_NAME);
        if config_file.exists() {
            return Err(RepoError::AlreadyInitialized {
                root: root.to_path_buf(),
                file: config_file,
            });
        }
        options.config.validate(&config_file)?;
        let key = match &options.key {
            KeySource::Generate(kind) => SigningKey::generate(
                *kind,
                &format!("{} archive signing key", options.config.repository.origin),
            )?,
            KeySource::Import(path) => {
                let bytes = fs::read(path).map_err(|source| RepoError::Io {
                    action: "cannot read the key to import",
                    path: path.clone(),
                    source,
                })?;
                SigningKey::from_armored(&bytes, path)?
            }
        };
        let config = options.config;
        for dir in layout_dirs(root, &config) {
            fs::create_dir_all(&dir).map_err(|source| RepoError::Io {
                action: "cannot create",
                path: dir.clone(),
                source,
            })?;
        }
        set_mode(&root.join("keys"), 0o700)?;
        let key_path = root.join(&config.signing.keys[0]);
        key.save_secret(&key_path)?;
        let signer = Signer::new(vec![key])?;
        write_public_keys(root, &signer)?;
        config.save(root)?;
        let mut repo = Repository::open(root)?;
        repo.publish(true)?;
        Ok(repo)
    }

    pub fn open(root: &Path) -> Result<Repository, RepoError> {
        let config = Config::load(root)?;
        let state = root.join("state");
        fs::create_dir_all(&state).map_err(|source| RepoError::Io {
            action: "cannot create",
            path: state.clone(),
            source,
        })?;
        let catalog = catalog::open(&state.join(CATALOG_FILE))?;
        Ok(Repository {
            root: root.to_path_buf(),
            config,
            catalog,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn public_dir(&self) -> PathBuf {
        self.root.join("public")
    }

    pub fn catalog(&self) -> &Connection {
        &self.catalog
    }

    pub fn check_target(&self, target: &Target) -> Result<(), RepoError> {
        if self.config.has_target(&target.dist, &target.component) {
            return Ok(());
        }
        Err(self.unknown_target(&target.dist, &target.component))
    }

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
        let files = expand_paths(paths)?;
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        let results = inspect_all(&files, &self.config);
        for (path, result) in files.into_iter().zip(results) {
            match result {
                Ok(package) => accepted.push((path, package)),
                Err(e) if options.keep_going => refused.push(refusal(path, &e)),
                Err(e) => return Err(e),
            }
        }

        let _lock = self.lock()?;
        let now = now();
        let public = self.public_dir();
        let all_archs = self.config.repository.architectures.clone();
        let mut stored_here: Vec<PathBuf> = Vec::new();
        let mut added = Vec::new();
        let result = catalog::write(&mut self.catalog, |tx| -> Result<(), RepoError> {
            for (path, package) in &accepted {
                let mut savepoint_files = Vec::new();
                match store_one(
                    tx,
                    &public,
                    path,
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
            self.publish_locked(false)?
        } else {
            Vec::new()
        };
        Ok(AddReport {
            files: added,
            refused,
            published,
        })
    }

    /// Publishes every dist whose content changed (all of them if `force`).
    pub fn publish(&mut self, force: bool) -> Result<Vec<DistPublished>, RepoError> {
        let _lock = self.lock()?;
        self.publish_locked(force)
    }

    fn publish_locked(&mut self, force: bool) -> Result<Vec<DistPublished>, RepoError> {
        let signer = self.signer()?;
        let state = self.root.join("state");
        // After a key rotation (keys added to repoctl.toml), clients must be
        // able to fetch every signing key before the old one goes away.
        write_public_keys(&self.root, &signer)?;
        let now = now();
        let public = self.public_dir();
        let mut published = Vec::new();
        for dist in self.config.repository.dists.clone() {
            let dirty = catalog::dirty_indices(&self.catalog, &dist)?;
            let publisher = Publisher {
                public: &public,
                state: &state,
                config: &self.config,
                signer: &signer,
                now,
            };
            if let Some(done) = publisher.publish_dist(&dist, &dirty, force)? {
                let at = done.date;
                catalog::write(&mut self.catalog, |tx| -> Result<(), RepoError> {
                    catalog::clear_dirty(tx, &dist, &dirty)?;
                    catalog::record(
                        tx,
                        &catalog::Event::repository(
                            at,
                            "publish",
                            Some(&dist),
                            serde_json::json!({
                                "generation": done.generation,
                                "indices_written": done.indices_written,
                            }),
                        ),
                    )?;
                    Ok(())
                })?;
                published.push(done);
            }
        }
        Ok(published)
    }

    pub fn signer(&self) -> Result<Signer, RepoError> {
        let keys = self
            .config
            .signing
            .keys
            .iter()
            .map(|path| SigningKey::load(&self.root.join(path)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signer::new(keys)?)
    }

    pub fn list(
        &self,
        package: Option<&str>,
        dist: Option<&str>,
        component: Option<&str>,
    ) -> Result<Vec<catalog::Listing>, RepoError> {
        let mut rows = catalog::list(&self.catalog, package, dist, component)?;
        rows.sort_by(|a, b| {
            (&a.package, &a.dist, &a.component)
                .cmp(&(&b.package, &b.dist, &b.component))
                .then_with(|| compare_versions(&a.version, &b.version))
                .then_with(|| a.architecture.cmp(&b.architecture))
        });
        Ok(rows)
    }

    /// The next plain-integer version of `package` (DESIGN.md §5); with
    /// `reserve_for`, the number is reserved for that holder.
    pub fn next_version(
        &mut self,
        package: &str,
        dist: Option<&str>,
        component: Option<&str>,
        reserve_for: Option<&str>,
    ) -> Result<next_version::NextVersion, RepoError> {
        package::check_name(package).map_err(|reason| {
            RepoError::Policy(PolicyError::BadName {
                path: "the command line".into(),
                name: package.to_string(),
                reason,
            })
        })?;
        let repo = &self.config.repository;
        let unknown = |value: &str, known: &[String]| !known.iter().any(|k| k == value);
        if let Some(d) = dist.filter(|d| unknown(d, &repo.dists)) {
            return Err(self.unknown_target(d, component.unwrap_or("*")));
        }
        if let Some(c) = component.filter(|c| unknown(c, &repo.components)) {
            return Err(self.unknown_target(dist.unwrap_or("*"), c));
        }
        let ttl = i64::from(self.config.versions.reservation_hours) * 3600;
        Ok(next_version::next_in_catalog(
            &mut self.catalog,
            package,
            dist,
            component,
            reserve_for.map(|holder| (holder, ttl)),
            now(),
        )?)
    }

    fn unknown_target(&self, dist: &str, component: &str) -> RepoError {
        let repo = &self.config.repository;
        RepoError::UnknownTarget {
            target: format!("{dist}/{component}"),
            dists: repo.dists.join(", "),
            components: repo.components.join(", "),
        }
    }

    /// Rebuilds a lost catalog from the pool and the served indices.
    pub fn reindex(root: &Path) -> Result<ReindexReport, RepoError> {
        reindex::run(root)
    }

    fn lock(&self) -> Result<lock::WriterLock, RepoError> {
        let path = self.root.join("state").join("lock");
        lock::WriterLock::acquire(&path).map_err(|source| RepoError::Io {
            action: "cannot take the writer lock",
            path,
            source,
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
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || files.len() < 2 {
        return files.iter().map(|path| inspect_one(path)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<PackageFile, RepoError>>> =
        files.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(files.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        done.push((i, inspect_one(path)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (i, result) in worker.join().unwrap_or_default() {
                results[i] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .zip(files)
        .map(|(result, path)| {
            result.unwrap_or_else(|| {
                Err(RepoError::Io {
                    action: "an inspection thread failed on",
                    path: path.to_path_buf(),
                    source: io::Error::other("thread panicked"),
                })
            })
        })
        .collect()
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
    path: &Path,
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
                    "source": path.display().to_string(),
                    "outcome": outcome,
                }),
            },
        )?;
    }
    Ok(Added {
        path: path.to_path_buf(),
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

fn refusal(path: PathBuf, error: &RepoError) -> Refused {
    Refused {
        path,
        error: error_chain(error),
        hint: error.hint(),
    }
}

/// `error: cause: cause` in one line, for reports and JSON.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

fn layout_dirs(root: &Path, config: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![
        root.join("state"),
        root.join("keys"),
        root.join("public").join("dists"),
        root.join("public").join("pool"),
        root.join("incoming").join("rejected"),
    ];
    for dist in &config.repository.dists {
        for component in &config.repository.components {
            dirs.push(root.join("incoming").join(dist).join(component));
        }
    }
    dirs
}

/// Writes `public/key.asc` when it differs from the signing keys' export
/// (a publish with nothing to do writes nothing).
fn write_public_keys(root: &Path, signer: &Signer) -> Result<(), RepoError> {
    let path = root.join("public").join("key.asc");
    let armored = signer.public_keys_armored();
    if fs::read(&path).is_ok_and(|current| current == armored) {
        return Ok(());
    }
    durable::write_file(&path, &armored).map_err(|source| RepoError::Io {
        action: "cannot write",
        path,
        source,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RepoError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| RepoError::Io {
        action: "cannot set permissions of",
        path: path.to_path_buf(),
        source,
    })
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use crate::deb::version::Version;
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// The clock publishing uses. Tests set `REPOCTL_NOW` (Unix seconds); it is
/// our own variable on purpose: publishing never reads `SOURCE_DATE_EPOCH`.
pub fn now() -> i64 {
    if let Some(forced) = std::env::var("REPOCTL_NOW")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return forced;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
