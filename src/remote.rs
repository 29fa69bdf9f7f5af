//! Reading a published APT repository over HTTP: every version of a package
//! that one dist serves, checked the way apt checks it.
//!
//! Phases of [`published_versions`]:
//! 1. **Fetch and verify** `dists/<dist>/InRelease` with the given key
//!    ([`crate::signing::Keyring`]); the Release must name the dist as its
//!    Suite or Codename and must not be past its Valid-Until.
//! 2. **Fetch every binary `Packages` index** the Release lists: `.xz`, else
//!    `.gz`, else uncompressed (through `by-hash/` first when the Release says
//!    `Acquire-By-Hash: yes`, so a publish in between cannot mix generations).
//!    The downloaded file must match its Release entry when listed, and the
//!    decompressed text must match the size and SHA256 listed for the
//!    uncompressed `Packages`: that is what makes a changed index detectable.
//! 3. **Collect** the stanzas of the package.
//!
//! Requests go through [`crate::http_client`] (`http://` only: `https://` is
//! refused because the crate has no TLS client yet); its errors are reported
//! as [`RemoteError`]s. This module does not know about the local catalog,
//! reservations or which version comes next; `next-version` decides that. It
//! writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::deb::control::{ControlError, Paragraph};
use crate::deb::inspect::Checksums;
use crate::deb::version::{Version, VersionError};
use crate::http_client::{self, HttpError};
use crate::repo::release::{http_date, Release};
use crate::signing::{Keyring, SigningError};
use repoctl_formats::packages::{self, index_location, PackagesError};

// The client's limits, which the messages below quote.
pub use crate::http_client::{MAX_REDIRECTS, TIMEOUT};

/// The largest response body read (a compressed index).
pub const MAX_BODY_BYTES: u64 = 512 << 20;
/// The largest InRelease read; real ones are well under a MiB.
const MAX_INRELEASE_BYTES: u64 = 16 << 20;
/// The largest decompressed index (when the Release gives no size for it).
const MAX_INDEX_TEXT_BYTES: u64 = 2 << 30;

/// One version of the package as a dist publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RemoteVersion {
    pub version: Version,
    /// The component whose index lists it (`main`, `dev`).
    pub component: String,
    /// The package's `Architecture` field. An `all` package is listed in
    /// every `binary-<arch>` index but reported once, as `all`.
    pub architecture: String,
}

/// Why the published versions could not be read. The message names the URL
/// (or file) concerned; [`RemoteError::hint`] says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{url}: only http:// repository URLs are supported")]
    UnsupportedScheme { url: String },

    #[error("{url} is not a valid http:// URL: {problem}")]
    InvalidUrl { url: String, problem: &'static str },

    #[error("invalid {what} {value:?}: {problem}")]
    InvalidName {
        what: &'static str,
        value: String,
        problem: &'static str,
    },

    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("no answer from {url} within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },

    #[error("reading {url} failed")]
    Io {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("{url} sent an invalid HTTP response: {problem}")]
    BadResponse { url: String, problem: String },

    #[error("{url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },

    #[error("{url} answered HTTP {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },

    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },

    #[error("{url} does not exist: the repository does not publish dist `{dist}`")]
    NoInRelease { url: String, dist: String },

    #[error("cannot use {path} as the repository key")]
    Keyring {
        path: PathBuf,
        #[source]
        source: Box<SigningError>,
    },

    #[error("cannot trust {url}")]
    Signature {
        url: String,
        #[source]
        source: Box<SigningError>,
    },

    #[error("{url} is not a valid Release: {problem}")]
    Release { url: String, problem: String },

    #[error("{url} is the Release of suite `{suite}` (codename `{codename}`), not of `{dist}`")]
    WrongDist {
        url: String,
        dist: String,
        suite: String,
        codename: String,
    },

    #[error("{url} expired at {valid_until} (its Valid-Until)")]
    Expired { url: String, valid_until: String },

    #[error("{url} lists no binary Packages index")]
    NoIndices { url: String },

    #[error("{url} lists no SHA256 for {path}")]
    WeakRelease { url: String, path: String },

    #[error("{url} is missing: none of its .xz, .gz or uncompressed forms is served")]
    IndexMissing { url: String },

    #[error("cannot decompress {url}")]
    Decompress {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("{url} does not match the signed Release: {mismatch}")]
    Mismatch {
        url: String,
        mismatch: Box<SumMismatch>,
    },

    #[error("{url}: the stanza at line {line} is invalid")]
    Stanza {
        url: String,
        line: usize,
        #[source]
        source: ControlError,
    },

    #[error("{url}: the stanza at line {line} {problem}")]
    BadStanza {
        url: String,
        line: usize,
        problem: &'static str,
    },

    #[error("{url}: the stanza at line {line} gives {package} an invalid version")]
    BadVersion {
        url: String,
        line: usize,
        package: String,
        #[source]
        source: VersionError,
    },
}

impl RemoteError {
    /// How to fix it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            RemoteError::UnsupportedScheme { .. } => Some(
                "repoctl has no TLS client yet; use the repository's http:// URL (the InRelease signature still protects what is read)".into(),
            ),
            RemoteError::InvalidUrl { .. } => Some(
                "pass the repository's base URL, the directory that holds dists/, e.g. http://apt.example.com/".into(),
            ),
            RemoteError::InvalidName { .. } => {
                Some("pass a plain name such as trusty or vrmd-whois".into())
            }
            RemoteError::Connect { .. } | RemoteError::Timeout { .. } => {
                Some("check the URL and that the repository server is reachable from here".into())
            }
            RemoteError::NoInRelease { .. } => Some(
                "check the URL (the directory that holds dists/) and --dist".into(),
            ),
            RemoteError::Keyring { source, .. } => source.hint().or_else(|| {
                Some("pass the repository's public key (its key.asc) with --key".into())
            }),
            RemoteError::Signature { source, .. } => source.hint(),
            RemoteError::WrongDist { .. } => Some(
                "check --dist: the server published this Release for another dist".into(),
            ),
            RemoteError::Expired { .. } => Some(
                "the repository has not been published since; publish it again (repoctl publish --force)".into(),
            ),
            RemoteError::NoIndices { .. } => {
                Some("check --dist: this dist publishes no binary packages".into())
            }
            RemoteError::WeakRelease { .. } => Some(
                "publish the repository with a tool that lists SHA256 sums (apt refuses it too)".into(),
            ),
            RemoteError::Mismatch { .. } => Some(
                "the index changed after the Release was signed: retry if a publish was running; if it persists, a proxy or mirror altered it, do not trust it".into(),
            ),
            RemoteError::Stanza { .. }
            | RemoteError::BadStanza { .. }
            | RemoteError::BadVersion { .. } => Some(
                "the published index is broken (apt cannot use that stanza either); remove or fix the package in the repository".into(),
            ),
            RemoteError::Io { .. }
            | RemoteError::BadResponse { .. }
            | RemoteError::TooLarge { .. }
            | RemoteError::Status { .. }
            | RemoteError::TooManyRedirects { .. }
            | RemoteError::Release { .. }
            | RemoteError::IndexMissing { .. }
            | RemoteError::Decompress { .. } => None,
        }
    }
}

/// A file whose size or SHA256 differs from its Release entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumMismatch {
    /// What was checked: the downloaded file or its decompressed text.
    pub what: &'static str,
    /// The Release entry that was checked against (`main/binary-amd64/Packages`).
    pub entry: String,
    pub expected_size: u64,
    pub expected_sha256: String,
    pub actual_size: u64,
    pub actual_sha256: String,
}

impl fmt::Display for SumMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} is {} bytes with SHA256 {}, but the Release lists {} with {} bytes and SHA256 {}",
            self.what,
            self.actual_size,
            self.actual_sha256,
            self.entry,
            self.expected_size,
            self.expected_sha256
        )
    }
}

/// The client's errors keep their URL and cause; only their wording is
/// about a repository.
impl From<HttpError> for RemoteError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::UnsupportedScheme { url } => RemoteError::UnsupportedScheme { url },
            HttpError::InvalidUrl { url, problem } => RemoteError::InvalidUrl { url, problem },
            HttpError::Connect { url, source } => RemoteError::Connect { url, source },
            HttpError::Timeout { url } => RemoteError::Timeout { url },
            HttpError::Io { url, source } => RemoteError::Io { url, source },
            HttpError::BadResponse { url, problem } => RemoteError::BadResponse { url, problem },
            HttpError::TooLarge { url, limit } => RemoteError::TooLarge { url, limit },
            HttpError::Status {
                url,
                status,
                reason,
            } => RemoteError::Status {
                url,
                status,
                reason,
            },
            HttpError::TooManyRedirects { url } => RemoteError::TooManyRedirects { url },
            // Only requests with a body fail these ways, and this module
            // sends none; should one appear, it keeps its message as cause.
            other @ (HttpError::InvalidMethod { .. }
            | HttpError::InvalidHeader { .. }
            | HttpError::File { .. }) => RemoteError::Io {
                url: other.url().to_owned(),
                source: io::Error::other(other),
            },
        }
    }
}

/// Every version of `package` that `<base_url>/dists/<dist>` publishes, in
/// dpkg order (then by component and architecture), each once. See the module
/// documentation for the checks; any failure is an error, never a shorter
/// list. An empty list means the dist is served and verified but does not
/// hold the package.
pub fn published_versions(
    base_url: &str,
    keyring_path: &Path,
    dist: &str,
    package: &str,
) -> Result<Vec<RemoteVersion>, RemoteError> {
    check_name("dist", dist, true)?;
    check_name("package", package, false)?;
    let base = base_url.trim_end_matches('/');
    // Refuse a bad or https URL before reading keys or touching the network.
    http_client::check_url(base)?;
    let keyring = Keyring::load(keyring_path).map_err(|source| RemoteError::Keyring {
        path: keyring_path.to_owned(),
        source: Box::new(source),
    })?;
    let dist_url = format!("{base}/dists/{dist}");

    let inrelease_url = format!("{dist_url}/InRelease");
    let signed = match http_client::get(&inrelease_url, MAX_INRELEASE_BYTES) {
        Err(HttpError::Status { status: 404, .. }) => {
            return Err(RemoteError::NoInRelease {
                url: inrelease_url,
                dist: dist.to_owned(),
            })
        }
        other => other?,
    };
    let text = keyring
        .verify_cleartext(&signed)
        .map_err(|source| RemoteError::Signature {
            url: inrelease_url.clone(),
            source: Box::new(source),
        })?;
    let release = read_release(&inrelease_url, &text, dist)?;
    let by_hash = Paragraph::parse(&String::from_utf8_lossy(&text))
        .ok()
        .and_then(|p| {
            p.get("Acquire-By-Hash")
                .map(|v| v.eq_ignore_ascii_case("yes"))
        })
        .unwrap_or(false);

    let indices: BTreeSet<(String, String)> = release
        .files
        .keys()
        .filter_map(|path| index_location(path))
        .collect();
    if indices.is_empty() {
        return Err(RemoteError::NoIndices { url: inrelease_url });
    }
    let mut found: BTreeMap<(String, String, String), Version> = BTreeMap::new();
    for (component, arch) in &indices {
        let rel = format!("{component}/binary-{arch}");
        let (url, text) = fetch_index(&dist_url, &inrelease_url, &release, &rel, by_hash)?;
        for version in versions_in_index(&url, &text, package)? {
            let (version, architecture) = version;
            found
                .entry((version.as_str().to_owned(), component.clone(), architecture))
                .or_insert(version);
        }
    }
    let mut versions: Vec<RemoteVersion> = found
        .into_iter()
        .map(|((_, component, architecture), version)| RemoteVersion {
            version,
            component,
            architecture,
        })
        .collect();
    versions.sort_by(|a, b| {
        a.version
            .cmp(&b.version)
            .then_with(|| a.version.as_str().cmp(b.version.as_str()))
            .then_with(|| a.component.cmp(&b.component))
            .then_with(|| a.architecture.cmp(&b.architecture))
    });
    Ok(versions)
}

/// A dist or package name that is safe to put into a request path.
fn check_name(what: &'static str, value: &str, slashes: bool) -> Result<(), RemoteError> {
    let invalid = |problem| RemoteError::InvalidName {
        what,
        value: value.to_owned(),
        problem,
    };
    if value.is_empty() {
        return Err(invalid("it is empty"));
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || "._+~-".contains(c) || (slashes && c == '/');
    if !value.chars().all(allowed) {
        return Err(invalid("only letters, digits and . _ + ~ - are allowed"));
    }
    if value
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid("empty, `.` and `..` path parts are not allowed"));
    }
    Ok(())
}

/// Parses the verified Release and checks that it is the dist's and current.
fn read_release(url: &str, text: &[u8], dist: &str) -> Result<Release, RemoteError> {
    let text = std::str::from_utf8(text).map_err(|_| RemoteError::Release {
        url: url.to_owned(),
        problem: "it is not UTF-8 text".into(),
    })?;
    let release = Release::parse(text).map_err(|problem| RemoteError::Release {
        url: url.to_owned(),
        problem,
    })?;
    let fields = &release.fields;
    if fields.suite != dist && fields.codename != dist {
        return Err(RemoteError::WrongDist {
            url: url.to_owned(),
            dist: dist.to_owned(),
            suite: fields.suite.clone(),
            codename: fields.codename.clone(),
        });
    }
    if let Some(until) = fields.valid_until {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if until < now {
            return Err(RemoteError::Expired {
                url: url.to_owned(),
                valid_until: http_date(until),
            });
        }
    }
    Ok(release)
}

#[derive(Clone, Copy)]
enum Compression {
    Xz,
    Gzip,
    None,
}

/// Downloads one index in the first form that is served and returns its URL
/// and decompressed text, checked against the Release.
fn fetch_index(
    dist_url: &str,
    release_url: &str,
    release: &Release,
    rel: &str,
    by_hash: bool,
) -> Result<(String, Vec<u8>), RemoteError> {
    let plain_entry = format!("{rel}/Packages");
    let plain = release.files.get(&plain_entry);
    for (suffix, compression) in [
        (".xz", Compression::Xz),
        (".gz", Compression::Gzip),
        ("", Compression::None),
    ] {
        let entry = format!("{rel}/Packages{suffix}");
        let listed = release.files.get(&entry);
        // Only what the Release lets us check: the file itself, or its text.
        if listed.is_none() && plain.is_none() {
            continue;
        }
        let mut urls = Vec::with_capacity(2);
        if let Some(sums) = listed.filter(|s| by_hash && !s.sha256.is_empty()) {
            urls.push(format!("{dist_url}/{rel}/by-hash/SHA256/{}", sums.sha256));
        }
        urls.push(format!("{dist_url}/{entry}"));
        for url in urls {
            let body = match http_client::get(&url, MAX_BODY_BYTES) {
                Ok(body) => body,
                Err(HttpError::Status { status: 404, .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            tracing::debug!(%url, bytes = body.len(), "fetched index");
            if let Some(sums) = listed {
                check_sums(&url, release_url, "downloaded file", &entry, &body, sums)?;
            }
            let text = match compression {
                Compression::None => body,
                _ => {
                    let limit = plain.map_or(MAX_INDEX_TEXT_BYTES, |s| {
                        s.size.saturating_add(1).min(MAX_INDEX_TEXT_BYTES)
                    });
                    let text = decompress(compression, &body, limit).map_err(|source| {
                        RemoteError::Decompress {
                            url: url.clone(),
                            source,
                        }
                    })?;
                    if plain.is_none() && text.len() as u64 >= MAX_INDEX_TEXT_BYTES {
                        return Err(RemoteError::TooLarge {
                            url,
                            limit: MAX_INDEX_TEXT_BYTES,
                        });
                    }
                    text
                }
            };
            if let (Some(sums), Compression::Xz | Compression::Gzip) = (plain, compression) {
                check_sums(
                    &url,
                    release_url,
                    "decompressed text",
                    &plain_entry,
                    &text,
                    sums,
                )?;
            }
            return Ok((url, text));
        }
    }
    Err(RemoteError::IndexMissing {
        url: format!("{dist_url}/{plain_entry}"),
    })
}

fn check_sums(
    url: &str,
    release_url: &str,
    what: &'static str,
    entry: &str,
    data: &[u8],
    sums: &Checksums,
) -> Result<(), RemoteError> {
    if sums.sha256.is_empty() {
        return Err(RemoteError::WeakRelease {
            url: release_url.to_owned(),
            path: entry.to_owned(),
        });
    }
    let actual = hex::encode(Sha256::digest(data));
    if data.len() as u64 == sums.size && actual.eq_ignore_ascii_case(&sums.sha256) {
        return Ok(());
    }
    Err(RemoteError::Mismatch {
        url: url.to_owned(),
        mismatch: Box::new(SumMismatch {
            what,
            entry: entry.to_owned(),
            expected_size: sums.size,
            expected_sha256: sums.sha256.to_ascii_lowercase(),
            actual_size: data.len() as u64,
            actual_sha256: actual,
        }),
    })
}

/// Decompresses at most `limit` bytes (a longer text is cut there, and then
/// fails its size check). Concatenated gzip members and xz streams are read
/// through, as `gzip -d` and `xz -d` do.
fn decompress(compression: Compression, data: &[u8], limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match compression {
        Compression::Xz => liblzma::read::XzDecoder::new_multi_decoder(data)
            .take(limit)
            .read_to_end(&mut out)?,
        Compression::Gzip => flate2::read::MultiGzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out)?,
        Compression::None => data.take(limit).read_to_end(&mut out)?,
    };
    Ok(out)
}

/// The `(version, architecture)` of every stanza of `package` in an index
/// (see [`packages::versions_of`]), its errors naming `url`.
fn versions_in_index(
    url: &str,
    text: &[u8],
    package: &str,
) -> Result<Vec<(Version, String)>, RemoteError> {
    let url = url.to_owned();
    packages::versions_of(&String::from_utf8_lossy(text), package).map_err(|e| match e {
        PackagesError::Stanza { line, source } => RemoteError::Stanza { url, line, source },
        PackagesError::BadStanza { line, problem } => RemoteError::BadStanza { url, line, problem },
        PackagesError::BadVersion {
            line,
            package,
            source,
        } => RemoteError::BadVersion {
            url,
            line,
            package,
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_versions_are_errors_not_gaps() {
        let index = "Package: p\nVersion: 1\nArchitecture: all\n\nPackage: p\nVersion: x1\nArchitecture: amd64\n";
        let err = versions_in_index("http://h/P", index.as_bytes(), "p").unwrap_err();
        assert!(
            matches!(&err, RemoteError::BadVersion { line: 5, source, .. } if source.version == "x1"),
            "{err:?}"
        );
        let ok = versions_in_index("http://h/P", index.as_bytes(), "q").unwrap();
        assert!(ok.is_empty());
        let err = versions_in_index("http://h/P", b"Version: 1\n", "p").unwrap_err();
        assert!(
            matches!(err, RemoteError::BadStanza { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn names_are_checked_before_they_reach_a_request() {
        assert!(check_name("dist", "trusty", true).is_ok());
        assert!(check_name("dist", "trusty/updates", true).is_ok());
        for bad in ["", "../x", "a b", "a/", "x\r\n"] {
            assert!(check_name("dist", bad, true).is_err(), "{bad:?}");
        }
        assert!(check_name("package", "a/b", false).is_err());
    }

    /// Callers wrap this error in theirs; keep clippy's `result_large_err` quiet.
    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<RemoteError>() <= 128);
    }
}
