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
//!
//! This file holds the report types and runs the checks in order; `pool`
//! holds check 1, `served` checks 2 and 3 and readies the served tree for
//! `repair`.

mod pool;
mod served;

use std::io::{self, Read};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::publish::DistPublished;
use super::{now, RepoError, Repository};

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
    pub fn repair(&mut self, door: super::Door) -> Result<RepairReport, RepoError> {
        let before = self.verify()?;
        let mut published = Vec::new();
        if before.problems.iter().any(|p| p.kind.republishing_fixes()) {
            self.make_publishable()?;
            published = self.publish(true, door)?;
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
