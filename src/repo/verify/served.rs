//! The served-tree check: for every dist, `Release`, `InRelease` and
//! `Release.gpg` are there and signed by the repository's keys, and every
//! file the Release lists under SHA256 is served with that size and hash,
//! under its name and under `by-hash/SHA256/` (DESIGN.md §4 invariant 1);
//! and `public/key.asc` is the export of the signing keys.
//!
//! Owns reading a served Release, checking its signatures (cleartext and
//! detached) and its index files, and readying the served tree for
//! `repair`'s republish. Does not own the pool (`pool`) nor the report
//! types (`verify`); never touches a package file.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{default_hint, hash, Finding, FindingKind, VerifyReport};
use crate::deb::inspect::Checksums;
use crate::repo::release::{http_date, Release};
use crate::repo::{durable, error_chain, now, workers, RepoError, Repository};
use crate::signing::Keyring;

/// The repository's public keys, as signatures are checked against them.
pub(super) struct Keys {
    keyring: Keyring,
    certs: Vec<sequoia_openpgp::Cert>,
}

impl Repository {
    /// The keys signatures must verify against: the configured signing keys
    /// (their public parts), or `public/key.asc` if those cannot be loaded.
    pub(super) fn verify_keys(&self, report: &mut VerifyReport) -> Option<Keys> {
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
    pub(super) fn verify_dist(
        &self,
        dist: &str,
        keys: Option<&Keys>,
        at: i64,
        report: &mut VerifyReport,
    ) {
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
    pub(super) fn make_publishable(&self) -> Result<(), RepoError> {
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
