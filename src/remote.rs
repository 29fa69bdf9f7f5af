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
//! Owns a deliberately small blocking HTTP/1.1 client for `http://` URLs
//! (redirects, chunked bodies, timeouts, size limits); `https://` is refused
//! because the crate has no TLS client yet, and proxies are not used. It does
//! not know about the local catalog, reservations or which version comes
//! next; `next-version` decides that. It writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::deb::control::{ControlError, Paragraph};
use crate::deb::inspect::Checksums;
use crate::deb::version::{Version, VersionError};
use crate::repo::release::{http_date, Release};
use crate::signing::{Keyring, SigningError};

/// Connect, read and write timeout of every request.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed per request (all within `http://`).
pub const MAX_REDIRECTS: usize = 5;
/// The largest response body read (a compressed index).
pub const MAX_BODY_BYTES: u64 = 512 << 20;
/// The largest InRelease read; real ones are well under a MiB.
const MAX_INRELEASE_BYTES: u64 = 16 << 20;
/// The largest decompressed index (when the Release gives no size for it).
const MAX_INDEX_TEXT_BYTES: u64 = 2 << 30;
/// Limits on the response head.
const MAX_HEAD_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 128;

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
    HttpUrl::parse(base)?;
    let keyring = Keyring::load(keyring_path).map_err(|source| RemoteError::Keyring {
        path: keyring_path.to_owned(),
        source: Box::new(source),
    })?;
    let dist_url = format!("{base}/dists/{dist}");

    let inrelease_url = format!("{dist_url}/InRelease");
    let signed = match get(&inrelease_url, MAX_INRELEASE_BYTES) {
        Err(RemoteError::Status { status: 404, .. }) => {
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

/// `(component, architecture)` of a binary index path listed in a Release
/// (`main/binary-amd64/Packages.xz`, `updates/main/binary-i386/Packages`).
/// Installer indices (`main/debian-installer/...`) list udebs and are skipped.
fn index_location(path: &str) -> Option<(String, String)> {
    let base = path
        .strip_suffix(".xz")
        .or_else(|| path.strip_suffix(".gz"))
        .unwrap_or(path);
    let dir = base.strip_suffix("/Packages")?;
    let (component, binary) = dir.rsplit_once('/')?;
    let arch = binary.strip_prefix("binary-")?;
    if component.is_empty()
        || arch.is_empty()
        || component.split('/').any(|p| p == "debian-installer")
    {
        return None;
    }
    Some((component.to_owned(), arch.to_owned()))
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
            let body = match get(&url, MAX_BODY_BYTES) {
                Ok(body) => body,
                Err(RemoteError::Status { status: 404, .. }) => continue,
                Err(e) => return Err(e),
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

/// The `(version, architecture)` of every stanza of `package` in an index.
/// Every stanza is parsed, so a broken index is an error, not a gap.
fn versions_in_index(
    url: &str,
    text: &[u8],
    package: &str,
) -> Result<Vec<(Version, String)>, RemoteError> {
    let text = String::from_utf8_lossy(text);
    let mut found = Vec::new();
    for (line, stanza) in stanzas(&text) {
        let paragraph = Paragraph::parse(&stanza).map_err(|source| RemoteError::Stanza {
            url: url.to_owned(),
            line,
            source,
        })?;
        let bad = |problem| RemoteError::BadStanza {
            url: url.to_owned(),
            line,
            problem,
        };
        let name = paragraph
            .get("Package")
            .ok_or_else(|| bad("has no Package field"))?;
        if name != package {
            continue;
        }
        let version = paragraph
            .get("Version")
            .ok_or_else(|| bad("has no Version field"))?;
        let version = Version::parse(version).map_err(|source| RemoteError::BadVersion {
            url: url.to_owned(),
            line,
            package: package.to_owned(),
            source,
        })?;
        let architecture = paragraph
            .get("Architecture")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("has no Architecture field"))?;
        found.push((version, architecture.to_owned()));
    }
    Ok(found)
}

/// Splits deb822 text into paragraphs at blank lines, with the 1-based line
/// number where each starts.
fn stanzas(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let (_, stanza) = current.get_or_insert_with(|| (index + 1, String::new()));
        stanza.push_str(line);
        stanza.push('\n');
    }
    out.extend(current);
    out
}

// ---------------------------------------------------------------------------
// The HTTP/1.1 client.

/// An `http://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl {
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

impl HttpUrl {
    fn parse(url: &str) -> Result<HttpUrl, RemoteError> {
        let invalid = |problem| RemoteError::InvalidUrl {
            url: url.to_owned(),
            problem,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected http://HOST/PATH"))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(RemoteError::UnsupportedScheme {
                url: url.to_owned(),
            });
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(invalid("the scheme must be http://"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if authority.contains('@') {
            return Err(invalid(
                "user names and passwords in URLs are not supported",
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed [ in the host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| invalid("bad port"))?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return Err(invalid("the host holds characters a host name cannot have"));
        }
        let port = match port {
            None | Some("") => 80,
            Some(port) => port.parse().map_err(|_| invalid("bad port"))?,
        };
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("the path holds spaces or control characters"));
        }
        Ok(HttpUrl {
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header value (also the authority of a rebuilt URL).
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Where a `Location` header points, as an absolute URL.
    fn resolve(&self, location: &str) -> String {
        let location = location.trim();
        let scheme_end = location.find("://").filter(|&at| {
            at > 0
                && location[..at]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if scheme_end.is_some() {
            location.to_owned()
        } else if let Some(rest) = location.strip_prefix("//") {
            format!("http://{rest}")
        } else if location.starts_with('/') {
            format!("http://{}{location}", self.authority())
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |at| at + 1)];
            format!("http://{}{dir}{location}", self.authority())
        }
    }
}

/// GETs `url`, following redirects, and returns the body of a 200 answer
/// (at most `limit` bytes). Any other final status is [`RemoteError::Status`].
fn get(url: &str, limit: u64) -> Result<Vec<u8>, RemoteError> {
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let parsed = HttpUrl::parse(&current)?;
        let mut reader = send(&parsed, &current)?;
        let head = read_head(&mut reader).map_err(|e| e.into_remote(&current, limit))?;
        match head.status {
            200 => {
                return read_body(&mut reader, &head, limit)
                    .map_err(|e| e.into_remote(&current, limit))
            }
            301 | 302 | 303 | 307 | 308 => {
                let location = head
                    .header("location")
                    .ok_or_else(|| RemoteError::BadResponse {
                        url: current.clone(),
                        problem: format!("a {} redirect without a Location", head.status),
                    })?;
                let next = parsed.resolve(location);
                tracing::debug!(from = %current, to = %next, "redirected");
                current = next;
            }
            status => {
                return Err(RemoteError::Status {
                    url: current,
                    status,
                    reason: head.reason,
                })
            }
        }
    }
    Err(RemoteError::TooManyRedirects {
        url: url.to_owned(),
    })
}

/// Connects and writes the request; the answer is read from the result.
fn send(url: &HttpUrl, text: &str) -> Result<BufReader<TcpStream>, RemoteError> {
    let connect_error = |source| RemoteError::Connect {
        url: text.to_owned(),
        source,
    };
    let addresses = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(connect_error)?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let mut stream = stream.ok_or_else(|| match last_error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => RemoteError::Timeout {
            url: text.to_owned(),
        },
        _ => connect_error(last_error),
    })?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: repoctl/{}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nCache-Control: max-age=0\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
    );
    let written = stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| stream.flush());
    written.map_err(|e| HttpError::Io(e).into_remote(text, 0))?;
    Ok(BufReader::new(stream))
}

/// What went wrong while reading a response, before the URL is known.
#[derive(Debug)]
enum HttpError {
    Io(io::Error),
    Malformed(String),
    TooLarge,
}

impl HttpError {
    fn into_remote(self, url: &str, limit: u64) -> RemoteError {
        let url = url.to_owned();
        match self {
            HttpError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                RemoteError::Timeout { url }
            }
            HttpError::Io(source) => RemoteError::Io { url, source },
            HttpError::Malformed(problem) => RemoteError::BadResponse { url, problem },
            HttpError::TooLarge => RemoteError::TooLarge { url, limit },
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

#[derive(Debug)]
struct Head {
    status: u16,
    reason: String,
    /// Names lowercased, in order.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the status line and headers, skipping interim (1xx) answers.
fn read_head(reader: &mut impl BufRead) -> Result<Head, HttpError> {
    loop {
        let line = read_line(reader)?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default().trim().to_owned();
        if !version.starts_with("HTTP/1.") || code.len() != 3 {
            return Err(HttpError::Malformed(format!(
                "bad status line {:?}",
                line.chars().take(80).collect::<String>()
            )));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| HttpError::Malformed(format!("bad status code {code:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(reader)?;
            if line.is_empty() {
                break;
            }
            if headers.len() == MAX_HEADERS {
                return Err(HttpError::Malformed(format!(
                    "more than {MAX_HEADERS} headers"
                )));
            }
            if line.starts_with([' ', '\t']) {
                return Err(HttpError::Malformed("folded header line".into()));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| HttpError::Malformed(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Head {
            status,
            reason,
            headers,
        });
    }
}

/// Reads the body framed by chunked encoding, Content-Length or the end of
/// the connection, refusing more than `limit` bytes.
fn read_body(reader: &mut impl BufRead, head: &Head, limit: u64) -> Result<Vec<u8>, HttpError> {
    let transfer_encoding: Vec<String> = head
        .all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    if transfer_encoding.last().map(String::as_str) == Some("chunked") {
        return read_chunked(reader, limit);
    }
    if !transfer_encoding.is_empty() {
        // Another final coding: the body ends with the connection.
        return read_to_close(reader, limit);
    }
    let lengths: BTreeSet<&str> = head
        .all("content-length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let length = match lengths.len() {
        0 => return read_to_close(reader, limit),
        1 => lengths
            .first()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?,
        _ => {
            return Err(HttpError::Malformed(
                "conflicting Content-Length headers".into(),
            ))
        }
    };
    if length > limit {
        return Err(HttpError::TooLarge);
    }
    read_exact(reader, length, Vec::new())
}

fn read_to_close(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)?;
    if body.len() as u64 > limit {
        return Err(HttpError::TooLarge);
    }
    Ok(body)
}

/// Appends exactly `length` bytes to `body`.
fn read_exact(
    reader: &mut impl BufRead,
    length: u64,
    mut body: Vec<u8>,
) -> Result<Vec<u8>, HttpError> {
    let before = body.len() as u64;
    reader.take(length).read_to_end(&mut body)?;
    let got = body.len() as u64 - before;
    if got != length {
        return Err(HttpError::Malformed(format!(
            "the connection closed after {got} of {length} body bytes"
        )));
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HttpError::Malformed(format!("bad chunk size {size:?}")));
        }
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| HttpError::Malformed(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            for _ in 0..=MAX_HEADERS {
                if read_line(reader)?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(HttpError::Malformed("too many trailer lines".into()));
        }
        if body.len() as u64 + size > limit {
            return Err(HttpError::TooLarge);
        }
        body = read_exact(reader, size, body)?;
        if !read_line(reader)?.is_empty() {
            return Err(HttpError::Malformed(
                "a chunk is longer than its size".into(),
            ));
        }
    }
}

/// One line without its CRLF (or LF), at most [`MAX_HEAD_LINE`] bytes.
fn read_line(reader: &mut impl BufRead) -> Result<String, HttpError> {
    let mut line = Vec::new();
    reader
        .take(MAX_HEAD_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(HttpError::Malformed(if line.len() > MAX_HEAD_LINE {
            format!("a line longer than {MAX_HEAD_LINE} bytes")
        } else {
            "the connection closed in the middle of the response".into()
        }));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(raw: &str, limit: u64) -> Result<(u16, Vec<u8>), HttpError> {
        let mut reader = io::Cursor::new(raw.as_bytes().to_vec());
        let head = read_head(&mut reader)?;
        let body = read_body(&mut reader, &head, limit)?;
        Ok((head.status, body))
    }

    #[test]
    fn reads_content_length_chunked_and_close_delimited_bodies() {
        let (status, body) = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            100,
        )
        .unwrap();
        assert_eq!((status, body), (200, b"hello".to_vec()));

        let chunked = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (status, body) = response(chunked, 100).unwrap();
        assert_eq!((status, body), (200, b"hello, world!!!".to_vec()));

        let (_, body) = response("HTTP/1.0 200 OK\nServer: x\n\nto the end", 100).unwrap();
        assert_eq!(body, b"to the end");
    }

    #[test]
    fn refuses_truncated_oversized_and_malformed_responses() {
        let err = response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 100).unwrap_err();
        assert!(
            matches!(&err, HttpError::Malformed(m) if m.contains("5 of 10")),
            "{err:?}"
        );
        let err = response("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 100).unwrap_err();
        assert!(matches!(err, HttpError::TooLarge), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n",
            0x3f,
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::TooLarge), "{err:?}");
        let err =
            response(&format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(101)), 100).unwrap_err();
        assert!(matches!(err, HttpError::TooLarge), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            100,
        )
        .unwrap_err();
        assert!(matches!(err, HttpError::Malformed(_)), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            100,
        )
        .unwrap_err();
        assert!(
            matches!(&err, HttpError::Malformed(m) if m.contains("conflicting")),
            "{err:?}"
        );
        let err = response("SSH-2.0-OpenSSH\r\n\r\n", 100).unwrap_err();
        assert!(
            matches!(&err, HttpError::Malformed(m) if m.contains("status line")),
            "{err:?}"
        );
    }

    #[test]
    fn parses_http_urls_and_refuses_others() {
        let url = HttpUrl::parse("http://apt.example.com:8080/repo?x=1#frag").unwrap();
        assert_eq!(
            url,
            HttpUrl {
                host: "apt.example.com".into(),
                port: 8080,
                target: "/repo?x=1".into()
            }
        );
        assert_eq!(url.authority(), "apt.example.com:8080");
        let url = HttpUrl::parse("HTTP://[::1]").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("::1", 80, "/")
        );
        assert_eq!(url.authority(), "[::1]");
        assert!(matches!(
            HttpUrl::parse("https://apt.example.com/"),
            Err(RemoteError::UnsupportedScheme { .. })
        ));
        for bad in [
            "apt.example.com/",
            "ftp://apt.example.com/",
            "http://user:pw@apt.example.com/",
            "http://apt.example.com:99999/",
            "http:///path",
            "http://apt.example.com/a b",
            "http://apt.exa\r\nmple.com/",
        ] {
            assert!(
                matches!(HttpUrl::parse(bad), Err(RemoteError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolves_redirect_locations() {
        let base = HttpUrl::parse("http://h:81/a/b/c?q").unwrap();
        assert_eq!(base.resolve("http://other/x"), "http://other/x");
        assert_eq!(base.resolve("https://other/x"), "https://other/x");
        assert_eq!(base.resolve("//other/x"), "http://other/x");
        assert_eq!(base.resolve("/x/y"), "http://h:81/x/y");
        assert_eq!(base.resolve("d"), "http://h:81/a/b/d");
    }

    #[test]
    fn finds_binary_indices_in_release_paths() {
        let at = |p: &str| index_location(p);
        let pair = |c: &str, a: &str| Some((c.to_owned(), a.to_owned()));
        assert_eq!(at("main/binary-amd64/Packages.xz"), pair("main", "amd64"));
        assert_eq!(at("dev/binary-i386/Packages"), pair("dev", "i386"));
        assert_eq!(
            at("updates/main/binary-all/Packages.gz"),
            pair("updates/main", "all")
        );
        assert_eq!(at("main/source/Sources.xz"), None);
        assert_eq!(at("main/binary-amd64/Release"), None);
        assert_eq!(at("main/debian-installer/binary-amd64/Packages"), None);
        assert_eq!(at("main/Contents-amd64.gz"), None);
        assert_eq!(at("binary-amd64/Packages"), None);
    }

    #[test]
    fn splits_stanzas_with_their_line_numbers() {
        let text = "\nPackage: a\nVersion: 1\n\n \nPackage: b\nDescription: x\n .\n y\n";
        let got = stanzas(text);
        assert_eq!(
            got,
            vec![
                (2, "Package: a\nVersion: 1\n".to_owned()),
                (6, "Package: b\nDescription: x\n .\n y\n".to_owned()),
            ]
        );
    }

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
