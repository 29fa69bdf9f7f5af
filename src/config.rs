//! `repoctl.toml`: what a repository publishes and how it signs.
//!
//! Owns reading, validating and writing the configuration file. It does not
//! know about the catalog or the served tree; `repo` enforces the rules that
//! involve them (for example that Origin never changes once published).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The configuration file's name inside a repository root.
pub const FILE_NAME: &str = "repoctl.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub repository: RepositorySection,
    #[serde(default)]
    pub publish: PublishSection,
    pub signing: SigningSection,
    #[serde(default)]
    pub versions: VersionsSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub incoming: IncomingSection,
    #[serde(default)]
    pub gc: GcSection,
    /// Versions kept per component (`dev = 5`): a prune after every change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retention: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcSection {
    /// A pool file in no index is deleted only after this many hours.
    pub grace_hours: u32,
    /// How often `repoctl serve` runs gc, in minutes (0: never).
    pub interval_minutes: u32,
}

impl Default for GcSection {
    fn default() -> Self {
        GcSection {
            grace_hours: 24,
            interval_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncomingSection {
    /// How often incoming/ is scanned whatever inotify says (restarts,
    /// overflows and network filesystems miss events), in milliseconds.
    pub rescan_ms: u64,
    /// How long a file must stay unchanged before it is refused as broken,
    /// or taken while a writer still holds it open, in milliseconds.
    pub settle_ms: u64,
}

impl Default for IncomingSection {
    fn default() -> Self {
        IncomingSection {
            rescan_ms: 5000,
            settle_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Where `repoctl serve` listens unless `--listen` says otherwise.
    pub listen: String,
    /// The largest upload accepted, in bytes; larger bodies answer 413.
    pub max_upload_bytes: u64,
    /// Require HTTP basic auth (token name and token, as apt's auth.conf
    /// sends them) for the apt tree too. The API always needs a token.
    pub private: bool,
    /// On SIGTERM, how long running requests may take to finish before they
    /// are cut off.
    pub shutdown_grace_secs: u64,
    /// How long a client may take to send a request's headers, and how long
    /// a kept-alive connection may wait idle for its next request, before
    /// the connection is closed (slow or idle clients hold no connection).
    pub header_timeout_secs: u64,
    /// The longest pause inside a request body (a stalled upload) before
    /// the request is refused and its connection closed; also the longest
    /// an answer (a download of the apt tree, an API answer) may stay
    /// unread before its connection is closed.
    pub body_timeout_secs: u64,
    /// How many connections are served at once; further clients wait in
    /// the listen backlog until one closes (idle ones close after
    /// `header_timeout_secs`). Each takes a file descriptor; at start the
    /// server raises its limit to the hard limit.
    pub max_connections: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            max_upload_bytes: 2 << 30,
            private: false,
            shutdown_grace_secs: 30,
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionsSection {
    /// How long a number handed out by `next-version --reserve` stays
    /// reserved if no package with that version is added.
    pub reservation_hours: u32,
}

impl Default for VersionsSection {
    fn default() -> Self {
        VersionsSection {
            reservation_hours: 24,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySection {
    /// `Origin:` of every Release. Never changes after the first publish.
    pub origin: String,
    /// `Label:` of every Release. Never changes after the first publish.
    pub label: String,
    /// `Description:` of every Release (free text, may change).
    #[serde(default)]
    pub description: Option<String>,
    /// Dists published, each as Suite and Codename (e.g. `trusty`).
    pub dists: Vec<String>,
    pub components: Vec<String>,
    /// Binary architectures; `all` packages are listed in each of them.
    pub architectures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSection {
    /// Also write the uncompressed `Packages` (Release lists it either way).
    pub write_uncompressed: bool,
    /// Add `Valid-Until: Date + N days` to every Release; clients refuse a
    /// Release past it, so a publish must run more often than that.
    pub valid_for_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    /// Secret key files (armored OpenPGP, mode 0600), relative to the root.
    /// Every key signs each Release, which is how a key rotation overlaps.
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid repoctl configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => Some(
                "run `repoctl init` to create a repository, or pass --root (or set REPOCTL_ROOT) to an existing one"
                    .into(),
            ),
            ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
                Some("see repo-layout/repoctl.toml for every key with its meaning".into())
            }
            ConfigError::Write { .. } => None,
        }
    }
}

impl Config {
    /// The defaults `repoctl init` writes when given no options.
    pub fn new_default() -> Config {
        Config {
            repository: RepositorySection {
                origin: "repoctl".into(),
                label: "repoctl".into(),
                description: None,
                dists: vec!["precise".into(), "trusty".into()],
                components: vec!["main".into(), "dev".into()],
                architectures: vec!["amd64".into(), "i386".into()],
            },
            publish: PublishSection::default(),
            signing: SigningSection {
                keys: vec![PathBuf::from("keys/signing-key.asc")],
            },
            versions: VersionsSection::default(),
            server: ServerSection::default(),
            incoming: IncomingSection::default(),
            gc: GcSection::default(),
            retention: BTreeMap::new(),
        }
    }

    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let path = root.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    pub fn save(&self, root: &Path) -> Result<(), ConfigError> {
        let path = root.join(FILE_NAME);
        self.validate(&path)?;
        let body = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let text = format!(
            "# repoctl repository configuration; every key is explained in repo-layout/repoctl.toml.\n\
             # Origin, label and dist names are fixed once published: apt refuses a repository whose values change.\n\n{body}"
        );
        std::fs::write(&path, text).map_err(|source| ConfigError::Write { path, source })
    }

    /// Checks every name that ends up in a path or a Release field.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            problem,
        };
        let r = &self.repository;
        for (key, list) in [
            ("repository.dists", &r.dists),
            ("repository.components", &r.components),
            ("repository.architectures", &r.architectures),
        ] {
            if list.is_empty() {
                return Err(invalid(key, "is empty; list at least one name".into()));
            }
            for (i, name) in list.iter().enumerate() {
                if !is_safe_name(name) {
                    return Err(invalid(
                        key,
                        format!(
                            "has {name:?}: use lowercase letters, digits, '-', '.' and '_' only"
                        ),
                    ));
                }
                if list[..i].contains(name) {
                    return Err(invalid(key, format!("lists {name:?} twice")));
                }
            }
        }
        if r.architectures.iter().any(|a| a == "all" || a == "source") {
            return Err(invalid(
                "repository.architectures",
                "must not list `all` or `source`: `all` packages are published in every binary architecture".into(),
            ));
        }
        for (key, value) in [
            ("repository.origin", &r.origin),
            ("repository.label", &r.label),
        ] {
            if value.trim().is_empty() || value.contains(['\n', '\r']) {
                return Err(invalid(key, "must be one non-empty line".into()));
            }
        }
        if r.description
            .as_deref()
            .is_some_and(|d| d.contains(['\n', '\r']))
        {
            return Err(invalid("repository.description", "must be one line".into()));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen",
                format!(
                    "is {:?}: give an address and port, e.g. \"127.0.0.1:8080\"",
                    self.server.listen
                ),
            ));
        }
        for (component, keep) in &self.retention {
            if !r.components.contains(component) {
                return Err(invalid(
                    "retention",
                    format!("names {component:?}, which is not one of the components"),
                ));
            }
            if *keep == 0 {
                return Err(invalid(
                    &format!("retention.{component}"),
                    "must keep at least 1 version".into(),
                ));
            }
        }
        for (key, value) in [
            ("server.max_upload_bytes", self.server.max_upload_bytes),
            (
                "server.header_timeout_secs",
                self.server.header_timeout_secs,
            ),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
            ("server.max_connections", self.server.max_connections as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be more than 0".into()));
            }
        }
        if self.signing.keys.is_empty() {
            return Err(invalid(
                "signing.keys",
                "is empty; a repository needs at least one signing key".into(),
            ));
        }
        Ok(())
    }

    pub fn has_target(&self, dist: &str, component: &str) -> bool {
        self.repository.dists.iter().any(|d| d == dist)
            && self.repository.components.iter().any(|c| c == component)
    }
}

pub use repoctl_formats::names::is_safe_name;

/// `trusty/dev`: where a package is published.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub dist: String,
    pub component: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dist, self.component)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new_default();
        config.save(dir.path()).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), config);
    }

    /// repo-layout/repoctl.toml is where an operator reads what each key
    /// means: it must load, and name every key a new repository gets.
    #[test]
    fn the_documented_example_loads_and_names_every_key() {
        let example = include_str!("../repo-layout/repoctl.toml");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), example).unwrap();
        Config::load(dir.path()).expect("the example loads");
        let defaults = toml::to_string_pretty(&Config::new_default()).unwrap();
        let keys_of = |text: &str| -> std::collections::BTreeSet<String> {
            let table: toml::Table = toml::from_str(text).unwrap();
            let mut keys = std::collections::BTreeSet::new();
            for (section, value) in &table {
                match value.as_table() {
                    Some(inner) => keys.extend(inner.keys().map(|k| format!("{section}.{k}"))),
                    None => {
                        keys.insert(section.clone());
                    }
                }
            }
            keys
        };
        let documented = keys_of(example);
        let missing: Vec<_> = keys_of(&defaults)
            .difference(&documented)
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "not in repo-layout/repoctl.toml: {missing:?}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        Config::new_default().save(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap() + "\n[server]\nlisten = 1\n";
        std::fs::write(&path, text).unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("repoctl.toml") && err.contains("server"),
            "{err}"
        );
    }
}
