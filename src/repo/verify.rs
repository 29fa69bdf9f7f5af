//! `verify`: checks the pool, the served tree and the catalog against each
//! other, and repairs what can be rebuilt from the catalog.
//!
//! Three checks, each reading what it checks once:
//! 1. **Pool**: every pool file the catalog holds (not collected by gc) is
//!    there with its recorded size and SHA-256, hashed on every core; every
//!    file under `public/pool/` is named by the catalog.
//! 2. **Served tree**: for every dist, `Release`, `InRelease` and
//!    `Release.gpg` are there and signed by the repository's keys, and every
//!    file the Release lists under SHA256 is served with that size and hash,
//!    under its name and under `by-hash/SHA256/` (DESIGN.md §4 invariant 1).
//! 3. **Keys**: `public/key.asc` is the export of the signing keys.
//!
//! Owns the consistency report. `verify` writes nothing; `repair`
//! republishes through [`Repository::publish`] and never deletes or rewrites
//! a package file: the catalog holds their hashes, not their bytes.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::publish::DistPublished;
use super::release::{http_date, Release};
use super::{durable, error_chain, now, workers, RepoError, Repository};
use crate::deb::inspect::Checksums;
use crate::signing::Keyring;

/// What is wrong (or worth knowing) about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A catalog row's pool file does not exist.
    PoolFileMissing,
    /// A pool file's size or SHA-256 differs from the catalog's.
    PoolFileDamaged,
    /// A pool file cannot be read (permissions, I/O error, not a file).
    PoolFileUnreadable,
    /// A file under `public/pool/` that no catalog row names.
    OrphanedPoolFile,
    /// A `.repoctl-tmp-*` file under `public/pool/`: an interrupted add.
    TemporaryLeftover,
    /// Information: a pool file in no index, deleted by gc after its grace.
    AwaitingCollection,
    /// `public/dists/<dist>` does not exist, or points at nothing.
    DistMissing,
    /// `public/dists/<dist>` is not a symlink to a generation.
    DistNotALink,
    ReleaseMissing,
    /// `Release` cannot be read or parsed.
    ReleaseUnreadable,
    /// `Release`'s Valid-Until has passed: apt refuses it.
    ReleaseExpired,
    /// `InRelease` or `Release.gpg` does not exist.
    SignatureMissing,
    /// `InRelease` or `Release.gpg` is not a good signature by the keys.
    SignatureInvalid,
    /// `InRelease` signs another text than `Release`.
    SignatureMismatch,
    /// A file the Release lists is not served (nor, for an uncompressed
    /// index, its `.gz`/`.xz`).
    IndexMissing,
    /// A file the Release lists is served with another size or hash.
    IndexDamaged,
    /// `by-hash/SHA256/<digest>` of a listed file does not exist.
    ByHashMissing,
    /// `by-hash/SHA256/<digest>` holds other bytes than its name says.
    ByHashDamaged,
    /// `public/key.asc` does not exist.
    PublicKeyMissing,
    /// `public/key.asc` is not the export of the configured signing keys.
    PublicKeyStale,
    /// The configured signing keys cannot be loaded: nothing can be published.
    SigningKeyUnusable,
}

impl FindingKind {
    /// Whether republishing from the catalog fixes it.
    pub fn republishing_fixes(self) -> bool {
        use FindingKind::*;
        match self {
            DistMissing | ReleaseMissing | ReleaseUnreadable | ReleaseExpired
            | SignatureMissing | SignatureInvalid | SignatureMismatch | IndexMissing
            | IndexDamaged | ByHashMissing | ByHashDamaged | PublicKeyMissing | PublicKeyStale => {
                true
            }
            PoolFileMissing | PoolFileDamaged | PoolFileUnreadable | OrphanedPoolFile
            | TemporaryLeftover | AwaitingCollection | DistNotALink | SigningKeyUnusable => false,
        }
    }
}

/// One problem or piece of information, about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Relative to the repository root, e.g. `public/dists/trusty/InRelease`.
    pub path: String,
    /// What is wrong: expected against found.
    pub detail: String,
    /// How to fix it.
    pub hint: String,
}

impl Finding {
    fn new(kind: FindingKind, path: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            kind,
            path: path.into(),
            detail: detail.into(),
            hint: default_hint(kind).to_string(),
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = hint.into();
        self
    }
}

fn default_hint(kind: FindingKind) -> &'static str {
    use FindingKind::*;
    match kind {
        PoolFileMissing | PoolFileDamaged => {
            "restore this file from a backup and check it against the SHA-256 above; repoctl cannot rebuild a package file from the catalog (--repair never rewrites one)"
        }
        PoolFileUnreadable => {
            "check the file's permissions and the disk; repoctl serve must be able to read it"
        }
        OrphanedPoolFile => {
            "no index lists it; if it belongs in the repository, add it again (repoctl add --dist D --component C FILE), otherwise move it out of public/pool/"
        }
        TemporaryLeftover => {
            "left by an interrupted add (unless one is running right now); nothing refers to it, so it is safe to delete"
        }
        AwaitingCollection => {
            "nothing to do: gc deletes it once its grace period (gc.grace_hours) is over"
        }
        DistNotALink => {
            "move that directory away; repoctl publishes each dist as a symlink to public/.generations/<dist>/<N>"
        }
        DistMissing | ReleaseMissing | ReleaseUnreadable => {
            "run `repoctl verify --repair`: it publishes the dist again from the catalog"
        }
        ReleaseExpired => {
            "run `repoctl verify --repair` (or `repoctl publish --force`): it signs a Release with a new Valid-Until"
        }
        SignatureMissing | SignatureInvalid | SignatureMismatch => {
            "run `repoctl verify --repair`: it signs the dist again with the configured keys"
        }
        IndexMissing | IndexDamaged | ByHashMissing | ByHashDamaged => {
            "run `repoctl verify --repair`: it renders every index again from the catalog"
        }
        PublicKeyMissing | PublicKeyStale => {
            "run `repoctl verify --repair` (or any publish): it writes key.asc from the signing keys"
        }
        SigningKeyUnusable => "check the key files listed under [signing] in repoctl.toml",
    }
}

/// How much was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Pool files hashed against the catalog.
    pub pool_files: usize,
    /// Files the served Releases list under SHA256.
    pub indices: usize,
    pub dists: usize,
}

/// What `verify` found. Clean when `problems` is empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub problems: Vec<Finding>,
    /// Not problems: pool files waiting out gc's grace period.
    pub info: Vec<Finding>,
    pub checked: Checked,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, finding: Finding) {
        self.problems.push(finding);
    }
}

/// What `repair` did: the state after it (the top-level fields, as `verify`
/// reports them), the problems it fixed and the dists it republished.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    #[serde(flatten)]
    pub after: VerifyReport,
    pub repaired: Vec<Finding>,
    pub published: Vec<DistPublished>,
}

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

/// The repository's public keys, as signatures are checked against them.
struct Keys {
    keyring: Keyring,
    certs: Vec<sequoia_openpgp::Cert>,
}

impl Repository {
    /// Checks the pool, the served tree and the catalog against each other.
    /// Reads every pool file once; writes nothing.
    pub fn verify(&self) -> Result<VerifyReport, RepoError> {
        let mut report = VerifyReport::default();
        let at = now();
        self.verify_pool(&mut report, at)?;
        let keys = self.verify_keys(&mut report);
        for dist in &self.config.repository.dists {
            self.verify_dist(dist, keys.as_ref(), at, &mut report);
            report.checked.dists += 1;
        }
        Ok(report)
    }

    /// Verifies, republishes the served tree from the catalog if that fixes
    /// anything (every index rendered and signed anew, switched in at once),
    /// and verifies again. Pool files are never touched.
    pub fn repair(&mut self) -> Result<RepairReport, RepoError> {
        let before = self.verify()?;
        let mut published = Vec::new();
        if before.problems.iter().any(|p| p.kind.republishing_fixes()) {
            self.make_publishable()?;
            published = self.publish(true)?;
        }
        let after = self.verify()?;
        let repaired = before
            .problems
            .into_iter()
            .filter(|p| {
                !after
                    .problems
                    .iter()
                    .any(|a| a.kind == p.kind && a.path == p.path)
            })
            .collect();
        Ok(RepairReport {
            after,
            repaired,
            published,
        })
    }

    /// Pool files against the catalog, and the catalog against the pool.
    fn verify_pool(&self, report: &mut VerifyReport, at: i64) -> Result<(), RepoError> {
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
                None => "no catalog row names it".to_string(),
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

    /// The keys signatures must verify against: the configured signing keys
    /// (their public parts), or `public/key.asc` if those cannot be loaded.
    fn verify_keys(&self, report: &mut VerifyReport) -> Option<Keys> {
        let key_asc = self.public_dir().join("key.asc");
        let shown_asc = "public/key.asc";
        let served = match fs::read(&key_asc) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                report.problem(Finding::new(
                    FindingKind::PublicKeyMissing,
                    shown_asc,
                    "clients install the repository's key from it, and it does not exist",
                ));
                None
            }
            Err(e) => {
                report.problem(Finding::new(
                    FindingKind::PublicKeyStale,
                    shown_asc,
                    format!("cannot be read: {e}"),
                ));
                None
            }
        };
        let (bytes, origin) = match self.signer() {
            Ok(signer) => {
                let stale = served
                    .as_deref()
                    .filter(|served| *served != signer.public_keys_armored());
                if let Some(served) = stale {
                    let expected = signer
                        .keys()
                        .iter()
                        .map(|k| k.fingerprint())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let found = Keyring::from_bytes(served, &key_asc)
                        .map(|k| k.fingerprints().join(", "))
                        .unwrap_or_else(|e| error_chain(&e));
                    report.problem(Finding::new(
                        FindingKind::PublicKeyStale,
                        shown_asc,
                        format!("expected the signing keys {expected}, found {found}"),
                    ));
                }
                // Named as repoctl.toml names them, for error messages.
                let names: Vec<String> = self
                    .config
                    .signing
                    .keys
                    .iter()
                    .map(|k| k.display().to_string())
                    .collect();
                (signer.public_keys_binary(), PathBuf::from(names.join(", ")))
            }
            Err(e) => {
                report.problem(
                    Finding::new(
                        FindingKind::SigningKeyUnusable,
                        "repoctl.toml",
                        format!(
                            "the signing keys cannot be loaded, so nothing can be published ({}); signatures were checked against public/key.asc",
                            error_chain(&e)
                        ),
                    )
                    .with_hint(e.hint().unwrap_or_else(|| {
                        default_hint(FindingKind::SigningKeyUnusable).to_string()
                    })),
                );
                (served?, PathBuf::from(shown_asc))
            }
        };
        let keyring = Keyring::from_bytes(&bytes, &origin).ok()?;
        use sequoia_openpgp::parse::Parse;
        let certs = sequoia_openpgp::cert::CertParser::from_bytes(&bytes)
            .ok()?
            .filter_map(Result::ok)
            .collect();
        Some(Keys { keyring, certs })
    }

    /// One served dist: its signed Release and every file it lists.
    fn verify_dist(&self, dist: &str, keys: Option<&Keys>, at: i64, report: &mut VerifyReport) {
        let shown = format!("public/dists/{dist}");
        let link = self.public_dir().join("dists").join(dist);
        match fs::symlink_metadata(&link) {
            Err(_) => {
                report.problem(Finding::new(
                    FindingKind::DistMissing,
                    shown,
                    "a configured dist is not served: the link does not exist",
                ));
                return;
            }
            Ok(meta) if !meta.file_type().is_symlink() => {
                report.problem(Finding::new(
                    FindingKind::DistNotALink,
                    shown,
                    "expected a symlink to public/.generations/<dist>/<N>, found a directory or file",
                ));
                return;
            }
            Ok(_) => {}
        }
        // Resolved once: a publish switching the link meanwhile does not mix
        // two generations into one check.
        let dir = match fs::canonicalize(&link) {
            Ok(dir) => dir,
            Err(e) => {
                let target = fs::read_link(&link).unwrap_or_default();
                report.problem(Finding::new(
                    FindingKind::DistMissing,
                    shown,
                    format!(
                        "the link points to {}, which cannot be opened ({e})",
                        target.display()
                    ),
                ));
                return;
            }
        };
        let file = |name: &str| format!("{shown}/{name}");

        let release_bytes = match fs::read(dir.join("Release")) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                let (kind, detail) = if e.kind() == io::ErrorKind::NotFound {
                    (FindingKind::ReleaseMissing, "does not exist".to_string())
                } else {
                    (
                        FindingKind::ReleaseUnreadable,
                        format!("cannot be read: {e}"),
                    )
                };
                report.problem(Finding::new(kind, file("Release"), detail));
                None
            }
        };
        let when = UNIX_EPOCH + Duration::from_secs(at.max(0) as u64);

        let inrelease_text = match fs::read(dir.join("InRelease")) {
            Err(e) => {
                report.problem(missing_or_unreadable(&file("InRelease"), &e));
                None
            }
            Ok(signed) => match keys.map(|k| k.keyring.verify_cleartext_at(&signed, when)) {
                None => None,
                Some(Err(e)) => {
                    report.problem(Finding::new(
                        FindingKind::SignatureInvalid,
                        file("InRelease"),
                        error_chain(&e),
                    ));
                    None
                }
                Some(Ok(text)) => {
                    if release_bytes.as_ref().is_some_and(|r| *r != text) {
                        report.problem(Finding::new(
                            FindingKind::SignatureMismatch,
                            file("InRelease"),
                            "it signs another text than Release: one of the two was changed or left from another publish",
                        ));
                    }
                    Some(text)
                }
            },
        };

        match fs::read(dir.join("Release.gpg")) {
            Err(e) => report.problem(missing_or_unreadable(&file("Release.gpg"), &e)),
            Ok(signature) => {
                if let (Some(keys), Some(release)) = (keys, &release_bytes) {
                    if let Err(detail) = verify_detached(&keys.certs, &signature, release, when) {
                        report.problem(Finding::new(
                            FindingKind::SignatureInvalid,
                            file("Release.gpg"),
                            format!("not a good signature of Release by the repository's keys: {detail}"),
                        ));
                    }
                }
            }
        }

        // The file list: Release's, or the signed copy in InRelease.
        let parsed = release_bytes
            .as_deref()
            .map(|bytes| parse_release(bytes).map_err(|e| (file("Release"), e)));
        let release = match parsed {
            Some(Ok(release)) => release,
            Some(Err((path, problem))) => {
                report.problem(Finding::new(
                    FindingKind::ReleaseUnreadable,
                    path,
                    format!("cannot be parsed: {problem}"),
                ));
                match inrelease_text.as_deref().map(parse_release) {
                    Some(Ok(release)) => release,
                    _ => return,
                }
            }
            None => match inrelease_text.as_deref().map(parse_release) {
                Some(Ok(release)) => release,
                _ => return,
            },
        };
        if let Some(until) = release.fields.valid_until.filter(|until| *until < at) {
            report.problem(Finding::new(
                FindingKind::ReleaseExpired,
                file("Release"),
                format!(
                    "Valid-Until {} has passed; apt refuses the dist",
                    http_date(until)
                ),
            ));
        }

        let listed: Vec<(&String, &Checksums)> = release
            .files
            .iter()
            .filter(|(_, sums)| !sums.sha256.is_empty())
            .collect();
        report.checked.indices += listed.len();
        let findings = workers::map(&listed, workers::cores(), |(rel, sums)| {
            check_index(&dir, &shown, rel, sums)
        });
        report.problems.extend(findings.into_iter().flatten());
    }

    /// Makes sure `publish` can read what each dist serves: a `Release`
    /// that is missing or unparseable is restored from the `InRelease`
    /// beside it when that verifies; otherwise the dist's link is removed,
    /// so the dist is published anew (it serves nothing usable anyway).
    fn make_publishable(&self) -> Result<(), RepoError> {
        let _lock = self.lock()?;
        let keyring = self
            .signer()
            .ok()
            .and_then(|s| Keyring::from_bytes(&s.public_keys_binary(), Path::new("")).ok());
        let when = UNIX_EPOCH + Duration::from_secs(now().max(0) as u64);
        for dist in &self.config.repository.dists {
            let link = self.public_dir().join("dists").join(dist);
            let is_link = fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                continue;
            }
            let Ok(dir) = fs::canonicalize(&link) else {
                remove_link(&link, dist, "it points at nothing")?;
                continue;
            };
            let release = dir.join("Release");
            let readable = fs::read(&release)
                .ok()
                .is_some_and(|bytes| parse_release(&bytes).is_ok());
            if readable {
                continue;
            }
            let restored = keyring.as_ref().and_then(|keyring| {
                let signed = fs::read(dir.join("InRelease")).ok()?;
                let text = keyring.verify_cleartext_at(&signed, when).ok()?;
                parse_release(&text).ok().map(|_| text)
            });
            match restored {
                Some(text) => {
                    durable::write_file(&release, &text).map_err(|source| RepoError::Io {
                        action: "cannot restore",
                        path: release.clone(),
                        source,
                    })?;
                    tracing::warn!(
                        "restored {} from the InRelease beside it",
                        release.display()
                    );
                }
                None => remove_link(&link, dist, "its Release is unusable")?,
            }
        }
        Ok(())
    }
}

fn remove_link(link: &Path, dist: &str, why: &str) -> Result<(), RepoError> {
    fs::remove_file(link).map_err(|source| RepoError::Io {
        action: "cannot remove",
        path: link.to_path_buf(),
        source,
    })?;
    tracing::warn!("{dist} is published as a new dist: {why}");
    Ok(())
}

fn missing_or_unreadable(path: &str, error: &io::Error) -> Finding {
    if error.kind() == io::ErrorKind::NotFound {
        Finding::new(
            FindingKind::SignatureMissing,
            path,
            "does not exist; apt needs InRelease, older apt Release.gpg",
        )
    } else {
        Finding::new(
            FindingKind::SignatureInvalid,
            path,
            format!("cannot be read: {error}"),
        )
    }
}

fn parse_release(bytes: &[u8]) -> Result<Release, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    Release::parse(text)
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

/// Size and SHA-256 of a stream, read once.
fn hash(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// One file a Release lists under SHA256: served under its name (or, for an
/// uncompressed index not shipped, as its `.gz`/`.xz`), and under
/// `by-hash/SHA256/<digest>`.
fn check_index(dir: &Path, shown_dir: &str, rel: &str, sums: &Checksums) -> Vec<Finding> {
    let path = dir.join(rel);
    let shown = format!("{shown_dir}/{rel}");
    let expected = format!("{} bytes, sha256 {}", sums.size, sums.sha256);
    let mismatch = |size: u64, sha256: &str| size != sums.size || sha256 != sums.sha256;
    let mut findings = Vec::new();
    // The inode already hashed under the file's name, if it matched.
    let mut good_inode = None;
    let compressed = rel.ends_with(".gz") || rel.ends_with(".xz");
    match File::open(&path) {
        Ok(file) => {
            let inode = file.metadata().ok().map(|m| (m.dev(), m.ino()));
            match hash(file) {
                Ok((size, sha256)) if mismatch(size, &sha256) => findings.push(Finding::new(
                    FindingKind::IndexDamaged,
                    shown.clone(),
                    format!(
                        "expected {expected} (the Release), found {size} bytes, sha256 {sha256}"
                    ),
                )),
                Ok(_) => good_inode = inode,
                Err(e) => findings.push(Finding::new(
                    FindingKind::IndexDamaged,
                    shown.clone(),
                    format!("cannot be read: {e}"),
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !compressed => {
            // Listed but not shipped is fine when what apt would fetch
            // instead decompresses to it (DESIGN.md §4 invariant 1).
            let mut siblings = 0;
            for (ext, decoder) in [("gz", Decoder::Gzip), ("xz", Decoder::Xz)] {
                let sibling = dir.join(format!("{rel}.{ext}"));
                let Ok(file) = File::open(&sibling) else {
                    continue;
                };
                siblings += 1;
                let found = match decoder {
                    Decoder::Gzip => hash(flate2::read::MultiGzDecoder::new(file)),
                    Decoder::Xz => hash(liblzma::read::XzDecoder::new(file)),
                };
                let detail = match found {
                    Ok((size, sha256)) if mismatch(size, &sha256) => format!(
                        "not shipped, and {rel}.{ext} decompresses to {size} bytes, sha256 {sha256}; expected {expected} (the Release)"
                    ),
                    Ok(_) => continue,
                    Err(e) => format!("not shipped, and {rel}.{ext} cannot be decompressed: {e}"),
                };
                findings.push(Finding::new(
                    FindingKind::IndexDamaged,
                    shown.clone(),
                    detail,
                ));
            }
            if siblings == 0 {
                findings.push(Finding::new(
                    FindingKind::IndexMissing,
                    shown,
                    format!(
                        "the Release lists it ({expected}), but neither it nor its .gz/.xz exist"
                    ),
                ));
            }
            // An index that is not shipped has no by-hash entry either.
            return findings;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => findings.push(Finding::new(
            FindingKind::IndexMissing,
            shown.clone(),
            format!("the Release lists it ({expected}), but it does not exist"),
        )),
        Err(e) => findings.push(Finding::new(
            FindingKind::IndexDamaged,
            shown.clone(),
            format!("cannot be read: {e}"),
        )),
    }

    // Modern apt fetches indices by hash (Acquire-By-Hash: yes).
    let index_dir = Path::new(rel).parent().unwrap_or(Path::new(""));
    let by_hash_rel = index_dir.join("by-hash").join("SHA256").join(&sums.sha256);
    let by_hash_shown = format!("{shown_dir}/{}", by_hash_rel.display());
    match File::open(dir.join(&by_hash_rel)) {
        Ok(file) => {
            let inode = file.metadata().ok().map(|m| (m.dev(), m.ino()));
            if inode.is_some() && inode == good_inode {
                return findings;
            }
            let detail = match hash(file) {
                Ok((size, sha256)) if mismatch(size, &sha256) => {
                    format!("expected {expected} (the Release), found {size} bytes, sha256 {sha256}")
                }
                Ok(_) => return findings,
                Err(e) => format!("cannot be read: {e}"),
            };
            findings.push(Finding::new(FindingKind::ByHashDamaged, by_hash_shown, detail));
        }
        Err(_) => findings.push(Finding::new(
            FindingKind::ByHashMissing,
            by_hash_shown,
            format!("{rel} under its hash: apt with Acquire-By-Hash fetches this path, and it does not exist"),
        )),
    }
    findings
}

#[derive(Clone, Copy)]
enum Decoder {
    Gzip,
    Xz,
}

/// Checks a detached signature (`Release.gpg`) of `data` by any of `certs`
/// under sequoia's standard policy (what sqv applies). Good when at least
/// one signature is; otherwise says why none is.
///
/// signing.rs has only the cleartext check (`Keyring::verify_cleartext`);
/// this is its detached counterpart and belongs beside it.
fn verify_detached(
    certs: &[sequoia_openpgp::Cert],
    signature: &[u8],
    data: &[u8],
    time: SystemTime,
) -> Result<(), String> {
    use sequoia_openpgp::parse::stream::{
        DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
    };
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::policy::StandardPolicy;

    struct Helper<'a> {
        certs: &'a [sequoia_openpgp::Cert],
        problems: Vec<String>,
    }
    impl VerificationHelper for Helper<'_> {
        fn get_certs(
            &mut self,
            _ids: &[sequoia_openpgp::KeyHandle],
        ) -> sequoia_openpgp::Result<Vec<sequoia_openpgp::Cert>> {
            Ok(self.certs.to_vec())
        }

        fn check(&mut self, structure: MessageStructure) -> sequoia_openpgp::Result<()> {
            for layer in structure {
                if let MessageLayer::SignatureGroup { results } = layer {
                    for result in results {
                        match result {
                            Ok(_) => return Ok(()),
                            Err(e) => self.problems.push(e.to_string()),
                        }
                    }
                }
            }
            if self.problems.is_empty() {
                self.problems.push("it carries no signature".into());
            }
            Err(anyhow::anyhow!("no good signature"))
        }
    }

    let policy = StandardPolicy::new();
    let mut problems = Vec::new();
    let result = (|| -> sequoia_openpgp::Result<()> {
        let helper = Helper {
            certs,
            problems: Vec::new(),
        };
        let mut verifier =
            DetachedVerifierBuilder::from_bytes(signature)?.with_policy(&policy, time, helper)?;
        let outcome = verifier.verify_bytes(data);
        problems = std::mem::take(&mut verifier.helper_mut().problems);
        outcome
    })();
    match result {
        Ok(()) => Ok(()),
        Err(_) if !problems.is_empty() => Err(problems.join("; ")),
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_stream_once() {
        let (size, sha256) = hash(&b"abc"[..]).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_served_tree_problems_are_republished() {
        assert!(FindingKind::IndexMissing.republishing_fixes());
        assert!(FindingKind::SignatureMissing.republishing_fixes());
        assert!(!FindingKind::PoolFileDamaged.republishing_fixes());
        assert!(!FindingKind::OrphanedPoolFile.republishing_fixes());
    }
}
