//! The repository: the one API every door (CLI, HTTP, incoming) calls.
//!
//! `Repository` owns the root directory: `repoctl.toml`, `state/` (catalog,
//! lock, index cache), `keys/`, `incoming/` and `public/` (pool and dists).
//! Adding a package is: inspect (no lock) → validate → under the writer lock,
//! pool file fsynced + catalog transaction committed (the acknowledgement) →
//! publish. Submodules own one concept each; this file sequences them.

mod add;
pub mod catalog;
pub mod compress;
pub mod durable;
pub mod gc;
pub mod index;
pub mod lifecycle;
pub mod lock;
pub mod next_version;
pub mod package;
pub mod publish;
mod reindex;
pub use repoctl_formats::release;
pub mod tokens;
pub mod verify;
mod workers;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;

use crate::config::{Config, ConfigError, Target};
use crate::deb::inspect::DebError;
use crate::signing::{KeyType, Signer, SigningError, SigningKey};
use package::PolicyError;
use publish::{DistPublished, PublishError, Publisher};

pub use add::{AddOptions, AddOutcome, AddReport, Added, Inspected, Refused};
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
    /// Jobs the server runs on its own (periodic gc).
    Schedule,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Cli => "cli",
            Door::Http => "http",
            Door::Incoming => "incoming",
            Door::Schedule => "schedule",
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
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::LifecycleError),
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
            RepoError::Token(e) => e.hint(),
            RepoError::Lifecycle(e) => e.hint(),
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
            RepoError::Catalog(e) => catalog_hint(e),
            _ => None,
        }
    }
}

/// A full or failing disk reaches SQLite first (its WAL and shared memory
/// grow on every write), as an I/O error that does not say "space".
fn catalog_hint(e: &rusqlite::Error) -> Option<String> {
    use rusqlite::ErrorCode::{DiskFull, SystemIoFailure};
    match e.sqlite_error_code()? {
        DiskFull | SystemIoFailure => Some(
            "the file system holding the repository may be full or failing: free space \
             (df -h), then run the command again; the catalog transaction rolled back, \
             nothing was changed"
                .into(),
        ),
        _ => None,
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
        repo.publish(true, Door::Cli)?;
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

    /// Publishes every dist whose content changed (all of them if `force`).
    /// `door`: through which door the caller came, for the history of the
    /// retention prunes a publish runs.
    pub fn publish(&mut self, force: bool, door: Door) -> Result<Vec<DistPublished>, RepoError> {
        let _lock = self.lock()?;
        self.publish_locked(force, door)
    }

    fn publish_locked(&mut self, force: bool, door: Door) -> Result<Vec<DistPublished>, RepoError> {
        self.apply_retention_locked(door)?;
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

    /// Refuses to go on while a secret key file is missing or open to group
    /// or others: every change ends in a signed publish, so a writer checks
    /// before it changes anything (the keys are parsed only to sign).
    pub fn check_signing_keys(&self) -> Result<(), RepoError> {
        for path in &self.config.signing.keys {
            SigningKey::check_file(&self.root.join(path))?;
        }
        Ok(())
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

    /// The newest `limit` changes (of one package, at or after `since`, if
    /// given), newest first.
    pub fn history(
        &self,
        package: Option<&str>,
        since: Option<i64>,
        limit: u32,
    ) -> Result<Vec<catalog::HistoryRow>, RepoError> {
        Ok(catalog::history(&self.catalog, package, since, limit)?)
    }

    /// The next plain-integer version of `package` (DESIGN.md §5); with
    /// `reserve`, the number is reserved for its holder (`--for`, or who asks),
    /// and the history records the actor who reserved it.
    pub fn next_version(
        &mut self,
        package: &str,
        dist: Option<&str>,
        component: Option<&str>,
        reserve: Option<(&str, &Actor)>,
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
            reserve.map(|(holder, by)| (holder, by, ttl)),
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
        self.check_signing_keys()?;
        let path = self.root.join("state").join("lock");
        lock::WriterLock::acquire(&path).map_err(|source| RepoError::Io {
            action: "cannot take the writer lock",
            path,
            source,
        })
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

/// Whether `REPOCTL_NOW` holds the clock still (then publishing never waits
/// for it to move).
pub fn clock_is_frozen() -> bool {
    std::env::var_os("REPOCTL_NOW").is_some()
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
