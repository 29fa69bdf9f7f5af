//! Serving the published apt tree (`public/`) over HTTP: request-path checks,
//! validators (ETag, Last-Modified), conditional requests and single byte ranges.
//!
//! Owns the read side of `public/` only; routing lives in [`crate::server`] and
//! the tree is written by `repo` alone. Every refusal is a 404: apt >= 1.5
//! fails hard on 403 or 500 for InRelease, and a 404 tells a prober nothing.
//!
//! An [`Answer`] is what to send, before any transport: [`super::tree_http`]
//! writes it itself (a file's bytes with sendfile), hyper gets it as a
//! [`Response`] through [`Answer::into_response`].

use std::collections::HashMap;
use std::fs::File;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use percent_encoding::percent_decode_str;

/// Read size of bodies streamed through hyper.
const CHUNK: usize = 256 * 1024;
/// Files up to this size are read whole in the opening hop and kept in
/// memory: InRelease, Release and small indices then cost one stat and one
/// write per request. Larger files are kept open instead and sent from the
/// page cache (sendfile), which is cheaper than copying them out of memory.
const SMALL_MAX: u64 = 64 << 10;
/// The memory the kept small files may take together.
const CACHE_BUDGET: u64 = 64 << 20;
/// How many files the cache keeps, open or read: each large one holds a
/// descriptor, and processes often start with a limit of 1024.
const CACHE_FILES: usize = 256;

const OCTET_STREAM: &str = "application/octet-stream";

/// The canonical `public/` directory; answers requests for the files below it.
#[derive(Debug, Clone)]
pub struct PublicTree {
    root: Arc<Path>,
    cache: Arc<Mutex<Cache>>,
}

/// Files by request path, read (small) or open (large). An entry is used
/// only while the file that path leads to has the same device, inode, size
/// and mtime as when it was opened, checked to be inside the root, and read:
/// a publish writes new files (new inodes) and never rewrites one in place.
#[derive(Debug, Default)]
struct Cache {
    files: HashMap<PathBuf, Cached>,
    bytes: u64,
}

#[derive(Debug)]
struct Cached {
    identity: (u64, u64, u64, i64, i64),
    content: Content,
}

/// A file's bytes as the server holds them.
#[derive(Debug, Clone)]
enum Content {
    /// The whole file, read.
    Bytes(Bytes),
    /// The open file, read with positioned reads (`pread`, `sendfile` with
    /// an offset) so that many requests can share it.
    File(Arc<File>),
}

impl Content {
    fn memory(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::File(_) => 0,
        }
    }
}

/// What the tree answers one request with.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub payload: Payload,
}

/// The body of an [`Answer`].
pub enum Payload {
    Empty,
    Bytes(Bytes),
    /// `count` bytes of `file` from `start`.
    File {
        file: Arc<File>,
        start: u64,
        count: u64,
    },
}

fn identity(meta: &Metadata) -> (u64, u64, u64, i64, i64) {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

impl Cache {
    fn get(&self, path: &Path, meta: &Metadata) -> Option<Content> {
        let cached = self.files.get(path)?;
        (cached.identity == identity(meta)).then(|| cached.content.clone())
    }

    fn put(&mut self, path: PathBuf, meta: &Metadata, content: Content) {
        let size = content.memory();
        self.forget(&path);
        // Full: forget everything (entries are cheap to open again; a
        // publish changes the hot set at once anyway).
        if self.bytes + size > CACHE_BUDGET || self.files.len() >= CACHE_FILES {
            self.files.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        let identity = identity(meta);
        self.files.insert(path, Cached { identity, content });
    }

    /// Drops the entry of a path that no longer leads to a file (a pruned
    /// pool file), so that its descriptor does not keep the disk space.
    fn forget(&mut self, path: &Path) {
        if let Some(old) = self.files.remove(path) {
            self.bytes -= old.content.memory();
        }
    }
}

/// A regular file inside the root, opened once so that the headers (from
/// fstat) describe the bytes sent even if a publish replaces the path meanwhile.
struct Opened {
    meta: Metadata,
    content: Content,
}

/// The validators of one opened file, already rendered as header values.
struct Validators {
    etag: HeaderValue,
    last_modified: HeaderValue,
    /// The mtime truncated to whole seconds: what HTTP dates can express.
    modified: std::time::SystemTime,
}

enum ByteRange {
    Whole,
    /// First and last byte, inclusive, as in Content-Range.
    Part(u64, u64),
    Unsatisfiable,
}

impl PublicTree {
    /// `public` must exist; it is canonicalized once.
    pub fn new(public: &Path) -> io::Result<PublicTree> {
        let root = std::fs::canonicalize(public)?;
        Ok(PublicTree {
            root: root.into(),
            cache: Arc::default(),
        })
    }

    /// Answers GET/HEAD for `path` (the raw, still percent-encoded URI path, starting with '/').
    pub async fn answer(&self, method: &Method, path: &str, headers: &HeaderMap) -> Answer {
        let with_body = match *method {
            Method::GET => true,
            Method::HEAD => false,
            _ => {
                let mut answer = Answer::new(StatusCode::METHOD_NOT_ALLOWED);
                let allow = HeaderValue::from_static("GET, HEAD");
                answer.headers.insert(header::ALLOW, allow);
                return answer;
            }
        };
        let Some((candidate, content_type)) = candidate(&self.root, path) else {
            return Answer::new(StatusCode::NOT_FOUND);
        };
        let opened = match self.cached(&candidate) {
            Some(opened) => opened,
            None => match self.open(candidate).await {
                Some(opened) => opened,
                None => return Answer::new(StatusCode::NOT_FOUND),
            },
        };
        let validators = Validators::of(&opened.meta);
        if not_modified(headers, &validators) {
            return Answer::new(StatusCode::NOT_MODIFIED).with_validators(validators);
        }
        // RFC 9110 §14.2: Range is for GET only.
        let range = if with_body {
            requested_range(headers, &validators, opened.meta.len())
        } else {
            ByteRange::Whole
        };
        file_answer(opened, range, validators, content_type, with_body)
    }

    /// A kept file, found by the request's path with one stat on this
    /// thread (no hop): the same device and inode as when it was opened,
    /// checked and read, are the same file, wherever links now point.
    fn cached(&self, candidate: &Path) -> Option<Opened> {
        let Ok(meta) = std::fs::metadata(candidate) else {
            lock(&self.cache).forget(candidate);
            return None;
        };
        let content = lock(&self.cache).get(candidate, &meta)?;
        Some(Opened { meta, content })
    }

    /// Opens, checks and fstats on a blocking thread, in one hop.
    async fn open(&self, candidate: PathBuf) -> Option<Opened> {
        let root = Arc::clone(&self.root);
        let cache = Arc::clone(&self.cache);
        let task = tokio::task::spawn_blocking(move || open_inside(&root, &cache, &candidate));
        match task.await {
            Ok(Ok(opened)) => opened,
            Ok(Err(err)) if err.kind() == io::ErrorKind::PermissionDenied => {
                // The operator's problem, not the client's: say so in the log.
                tracing::warn!(%err, "a file in public/ is not readable by the server");
                None
            }
            Ok(Err(_)) => None,
            Err(err) => {
                tracing::error!(%err, "the file opening task failed");
                None
            }
        }
    }
}

/// Maps the raw request path to a path below `root` and the Content-Type its
/// name calls for; `None` for what must be a 404 before touching the disk.
///
/// Only the request is checked for dot-segments (the canonical target of the
/// `dists/<dist>` symlink lies under `.generations/`). Empty segments (`a//b`)
/// collapse as in nginx; a trailing `/` names a directory and is refused.
fn candidate(root: &Path, raw: &str) -> Option<(PathBuf, &'static str)> {
    let rest = raw.strip_prefix('/')?;
    if rest.is_empty() || rest.ends_with('/') {
        return None;
    }
    let mut path = PathBuf::with_capacity(root.as_os_str().len() + rest.len() + 1);
    path.push(root);
    let mut content_type = OCTET_STREAM;
    for encoded in rest.split('/').filter(|s| !s.is_empty()) {
        let segment = percent_decode_str(encoded).decode_utf8().ok()?;
        // A decoded segment may not climb (`..`), hide (`.generations`),
        // smuggle a separator (`%2F`, `%5C`) or end a C string early (`%00`).
        if segment.starts_with('.') || segment.contains(['/', '\\', '\0']) {
            return None;
        }
        content_type = content_type_of(&segment);
        path.push(&*segment);
    }
    Some((path, content_type))
}

fn content_type_of(name: &str) -> &'static str {
    if matches!(name, "Release" | "InRelease" | "Packages") {
        return "text/plain; charset=utf-8";
    }
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("deb") => "application/vnd.debian.binary-package",
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("gpg") => "application/pgp-signature",
        Some("asc") => "application/pgp-keys",
        _ => OCTET_STREAM,
    }
}

/// One open, one readlink, one fstat (and for a small file one read); the
/// file is kept in the cache under the request's path, which is what the
/// next request looks up (see `PublicTree::cached`).
/// `Ok(None)` for a target outside the root or not a regular file.
fn open_inside(root: &Path, cache: &Mutex<Cache>, candidate: &Path) -> io::Result<Option<Opened>> {
    // Open first (following the dists/<dist> link), then ask the kernel
    // which file this descriptor is: one readlink instead of canonicalize's
    // one per path component, and no gap between the check and the open.
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (regular
    // files ignore it); O_NOCTTY: a terminal never becomes ours.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(candidate)?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if !real.starts_with(root) {
        tracing::debug!(target = %real.display(), "refused a symlink out of public/");
        return Ok(None);
    }
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let content = if meta.len() <= SMALL_MAX {
        let mut buffer = Vec::with_capacity(meta.len() as usize);
        (&file).take(meta.len()).read_to_end(&mut buffer)?;
        if buffer.len() as u64 != meta.len() {
            // Changed while read: serve what was read, keep nothing.
            return Ok(Some(Opened {
                meta,
                content: Content::Bytes(buffer.into()),
            }));
        }
        Content::Bytes(buffer.into())
    } else {
        Content::File(Arc::new(file))
    };
    lock(cache).put(candidate.to_path_buf(), &meta, content.clone());
    Ok(Some(Opened { meta, content }))
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // The cache holds no invariant a panic could break half-way.
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes `start..start + count` of the opened file.
fn payload(content: Content, start: u64, count: u64) -> Payload {
    match content {
        Content::Bytes(whole) => {
            // Clamped: the file may have shrunk between the fstat and the read.
            let end = (start + count).min(whole.len() as u64) as usize;
            Payload::Bytes(whole.slice((start as usize).min(end)..end))
        }
        Content::File(file) => Payload::File { file, start, count },
    }
}

/// 200, 206 or 416 for an opened file whose validators did not answer 304.
fn file_answer(
    opened: Opened,
    range: ByteRange,
    validators: Validators,
    content_type: &'static str,
    with_body: bool,
) -> Answer {
    let len = opened.meta.len();
    let (status, start, count) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, len),
        ByteRange::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => {
            let mut answer = Answer::new(StatusCode::RANGE_NOT_SATISFIABLE);
            let range = ascii(format!("bytes */{len}"));
            answer.headers.insert(header::CONTENT_RANGE, range);
            return answer;
        }
    };
    let mut answer = Answer::new(status);
    if with_body {
        answer.payload = payload(opened.content, start, count);
    }
    let headers = &mut answer.headers;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{len}", start + count - 1);
        headers.insert(header::CONTENT_RANGE, ascii(range));
    }
    answer.with_validators(validators)
}

impl Answer {
    pub fn new(status: StatusCode) -> Answer {
        Answer {
            status,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
        }
    }

    fn with_validators(mut self, validators: Validators) -> Answer {
        self.headers.insert(header::ETAG, validators.etag);
        let last_modified = validators.last_modified;
        self.headers.insert(header::LAST_MODIFIED, last_modified);
        self
    }

    /// The answer as a response for hyper; a file's bytes are read in
    /// chunks on blocking threads.
    pub fn into_response(self) -> Response {
        let body = match self.payload {
            Payload::Empty => Body::empty(),
            Payload::Bytes(bytes) => Body::from(bytes),
            Payload::File { file, start, count } => Body::from_stream(chunks(file, start, count)),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// `count` bytes of `file` from `start`, a blocking positioned read per chunk.
fn chunks(
    file: Arc<File>,
    start: u64,
    count: u64,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    futures_util::stream::try_unfold((file, start, start + count), |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = (end - at).min(CHUNK as u64) as usize;
        let reader = Arc::clone(&file);
        let chunk = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; want];
            let n = reader.read_at(&mut buffer, at)?;
            buffer.truncate(n);
            Ok::<_, io::Error>(buffer)
        })
        .await
        .map_err(io::Error::other)??;
        if chunk.is_empty() {
            // Shrunk since the fstat: the promised length cannot be sent.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        let next = at + chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (file, next, end))))
    })
}

impl Validators {
    /// The ETag changes with the inode (a publish renames a new file in), the
    /// size and the mtime to the nanosecond (an in-place rewrite).
    fn of(meta: &Metadata) -> Validators {
        let since_epoch = meta
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let modified = UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
        let (inode, size, nanos) = (meta.ino(), meta.len(), since_epoch.as_nanos());
        Validators {
            etag: ascii(format!("\"{inode:x}-{size:x}-{nanos:x}\"")),
            last_modified: ascii(httpdate::fmt_http_date(modified)),
            modified,
        }
    }
}

/// RFC 9110 §13.2.2: If-None-Match decides when present (weak comparison);
/// If-Modified-Since only otherwise.
fn not_modified(headers: &HeaderMap, validators: &Validators) -> bool {
    if headers.contains_key(header::IF_NONE_MATCH) {
        let ours = validators.etag.as_bytes();
        return headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .is_some_and(|since| validators.modified <= since)
}

/// The Range header, honoured only while If-Range (if any) says the client's
/// partial copy is current: an ETag must match strongly, a date exactly.
fn requested_range(headers: &HeaderMap, validators: &Validators, len: u64) -> ByteRange {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return ByteRange::Whole;
    };
    let current = match headers
        .get(header::IF_RANGE)
        .map(|v| v.to_str().map(str::trim))
    {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(tag)) if tag.starts_with('"') || tag.starts_with("W/") => {
            tag.as_bytes() == validators.etag.as_bytes()
        }
        Some(Ok(date)) => httpdate::parse_http_date(date).is_ok_and(|d| d == validators.modified),
    };
    if !current {
        return ByteRange::Whole;
    }
    ByteRange::parse(range, len).unwrap_or(ByteRange::Whole)
}

impl ByteRange {
    /// One `bytes=` range against `len` bytes. `None` (serve the whole file,
    /// as RFC 9110 §14.2 allows) for several ranges or a malformed header.
    fn parse(value: &str, len: u64) -> Option<ByteRange> {
        let (unit, set) = value.split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
            return None;
        }
        let (first, last) = set.trim().split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let range = match (first, last) {
            ("", suffix) => match digits(suffix)? {
                0 => ByteRange::Unsatisfiable,
                _ if len == 0 => ByteRange::Unsatisfiable,
                suffix => ByteRange::Part(len - suffix.min(len), len - 1),
            },
            (first, "") => ByteRange::bounded(digits(first)?, u64::MAX, len),
            (first, last) => ByteRange::bounded(digits(first)?, digits(last)?, len),
        };
        Some(range)
    }

    /// `first-last` against `len` bytes; `last` may run past the end.
    fn bounded(first: u64, last: u64, len: u64) -> ByteRange {
        if last < first {
            ByteRange::Whole // malformed: ignored
        } else if first >= len {
            ByteRange::Unsatisfiable
        } else {
            ByteRange::Part(first, last.min(len - 1))
        }
    }
}

/// Digits only: `str::parse` would also take a leading `+`.
fn digits(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits_only.then(|| text.parse().ok())?
}

/// Header text this module builds from digits, hex and HTTP dates, which is
/// always valid; the fallback only keeps `unwrap` out.
fn ascii(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use axum::http::HeaderName;

    const DEB: &str = "/pool/main/h/hello/hello_1.0_all.deb";
    const DEB_LEN: usize = 100_000; // above SMALL_MAX: kept open
    const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT"; // the .deb's mtime is 0.5 s later
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    struct Fixture {
        _dir: tempfile::TempDir,
        tree: PublicTree,
        deb: Vec<u8>,
        etag: String,
    }

    fn write(path: &Path, contents: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    /// public/ with a pool .deb, a generation behind the `dists/stable`
    /// symlink, and ways out: symlinks leaving the root, a FIFO.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        let generation = public.join(".generations/stable/1");
        write(&generation.join("main/Packages"), b"Package: hello\n");
        write(&generation.join("InRelease"), b"signed\n");
        write(&dir.path().join("secret"), b"secret\n");
        let deb: Vec<u8> = (0..DEB_LEN).map(|i| (i % 251) as u8).collect();
        write(&public.join(&DEB[1..]), &deb);
        let mtime = Duration::new(1_700_000_000, 500_000_000);
        let file = fs::File::options().write(true).open(public.join(&DEB[1..]));
        let file = file.unwrap();
        file.set_modified(UNIX_EPOCH + mtime).unwrap();
        let ino = file.metadata().unwrap().ino();
        let etag = format!("\"{ino:x}-{DEB_LEN:x}-{:x}\"", mtime.as_nanos());
        fs::create_dir(public.join("dists")).unwrap();
        symlink("../.generations/stable/1", public.join("dists/stable")).unwrap();
        symlink("../secret", public.join("leak")).unwrap();
        symlink(dir.path(), public.join("pool/outside")).unwrap();
        let fifo = public.join("pool/fifo");
        let mkfifo = std::process::Command::new("mkfifo").arg(fifo).status();
        assert!(mkfifo.unwrap().success());
        let tree = PublicTree::new(&public).unwrap();
        Fixture {
            _dir: dir,
            tree,
            deb,
            etag,
        }
    }

    /// `request` holds header lines, `Name: value`, one per line.
    async fn call(
        fx: &Fixture,
        method: Method,
        path: &str,
        request: &str,
    ) -> (u16, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        for (name, value) in request.lines().filter_map(|line| line.split_once(": ")) {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        let answer = fx.tree.answer(&method, path, &headers).await;
        let (parts, body) = answer.into_response().into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status.as_u16(), parts.headers, body)
    }

    #[tokio::test]
    async fn get_and_head_carry_the_file_headers() {
        let fx = fixture();
        let (status, headers, body) = call(&fx, Method::GET, DEB, "").await;
        assert_eq!((status, &body[..]), (200, &fx.deb[..]));
        assert_eq!(headers[header::CONTENT_LENGTH], "100000");
        let deb_type = "application/vnd.debian.binary-package";
        assert_eq!(headers[header::CONTENT_TYPE], deb_type);
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(headers[header::LAST_MODIFIED], DATE);
        assert_eq!(headers[header::ETAG], fx.etag);
        // HEAD ignores Range and sends the same headers without a body.
        let (status, head, body) = call(&fx, Method::HEAD, DEB, "Range: bytes=0-1").await;
        assert_eq!((status, head, body.len()), (200, headers, 0));
        let (status, headers, _) = call(&fx, Method::POST, DEB, "").await;
        assert_eq!(
            (status, headers[header::ALLOW].as_bytes()),
            (405, &b"GET, HEAD"[..])
        );
    }

    #[tokio::test]
    async fn symlinked_dist_inside_root_is_served() {
        let fx = fixture();
        let (status, headers, body) = call(&fx, Method::GET, "/dists/stable/InRelease", "").await;
        assert_eq!((status, &body[..]), (200, &b"signed\n"[..]));
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        let packages = "/dists//stable/main/Packages";
        let (status, _, body) = call(&fx, Method::GET, packages, "Range: bytes=9-").await;
        assert_eq!((status, &body[..]), (206, &b"hello\n"[..]));
    }

    #[tokio::test]
    async fn conditionals_and_ranges() {
        let fx = fixture();
        let etag = &fx.etag;
        let (all, ims) = (0..DEB_LEN, "If-Modified-Since: ");
        let (same_second, earlier) = (format!("{ims}{DATE}"), format!("{ims}{EARLIER}"));
        let inm_list = format!("If-None-Match: \"other\", W/{etag}");
        let inm_wins = format!("If-None-Match: \"other\"\n{same_second}");
        let if_range = |value: &str| format!("Range: bytes=0-9\nIf-Range: {value}");
        for (request, status, part) in [
            (same_second.clone(), 304, 0..0),
            (earlier, 200, all.clone()),
            (format!("If-None-Match: {etag}"), 304, 0..0),
            (inm_list, 304, 0..0),
            ("If-None-Match: *".into(), 304, 0..0),
            (inm_wins, 200, all.clone()),
            ("Range: bytes=10-19".into(), 206, 10..20),
            ("Range: bytes=99990-".into(), 206, 99_990..DEB_LEN),
            ("Range: bytes=-5".into(), 206, 99_995..DEB_LEN),
            ("Range: bytes=99998-200000".into(), 206, 99_998..DEB_LEN),
            ("Range: bytes=100000-".into(), 416, 0..0),
            ("Range: bytes=-0".into(), 416, 0..0),
            ("Range: bytes=0-1,5-6".into(), 200, all.clone()),
            ("Range: bytes=5-1".into(), 200, all.clone()),
            ("Range: bytes=+1-2".into(), 200, all.clone()),
            ("Range: items=0-1".into(), 200, all.clone()),
            (if_range(etag), 206, 0..10),
            (if_range(DATE), 206, 0..10),
            (if_range("\"stale\""), 200, all.clone()),
            (if_range(&format!("W/{etag}")), 200, all.clone()),
            (if_range(EARLIER), 200, all.clone()),
        ] {
            let (got, headers, body) = call(&fx, Method::GET, DEB, &request).await;
            assert_eq!(
                (got, &body[..]),
                (status, &fx.deb[part.clone()]),
                "{request}"
            );
            let content_range = headers.get(header::CONTENT_RANGE);
            match status {
                206 => {
                    let expected = format!("bytes {}-{}/{DEB_LEN}", part.start, part.end - 1);
                    assert_eq!(content_range.unwrap(), &expected, "{request}");
                }
                416 => assert_eq!(content_range.unwrap(), "bytes */100000"),
                _ => assert_eq!(content_range, None, "{request}"),
            }
            if status != 416 {
                assert_eq!(headers[header::ETAG], fx.etag, "{request}");
            }
        }
    }

    #[tokio::test]
    async fn escapes_hidden_paths_and_non_files_are_404() {
        let fx = fixture();
        for path in [
            "/../secret",
            "/pool/../../secret",
            "/pool/%2e%2e/%2E%2E/secret",
            "/pool%2F..%2F..%2Fsecret",
            "/dists/stable%2F..%2F..%2F..%2Fsecret",
            "/pool%5C..%5C..%5Csecret",
            "/./pool/main/h/hello/hello_1.0_all.deb",
            "/.generations/stable/1/InRelease",
            "/dists/stable/InRelease%00",
            "/dists/stable/%ff",
            "/leak",
            "/pool/outside/secret",
            "/pool",
            "/pool/main/h/hello/hello_1.0_all.deb/",
            "/",
            "",
            "/missing",
            "/pool/fifo",
        ] {
            let (status, _, body) = call(&fx, Method::GET, path, "").await;
            assert_eq!((status, body.len()), (404, 0), "{path}");
        }
    }

    #[test]
    fn content_type_follows_the_name() {
        for (name, expected) in [
            ("Release", "text/plain; charset=utf-8"),
            ("Packages.gz", "application/gzip"),
            ("Packages.xz", "application/x-xz"),
            ("Release.gpg", "application/pgp-signature"),
            ("archive-key.asc", "application/pgp-keys"),
            ("0f1e2d3c4b5a", OCTET_STREAM),
        ] {
            assert_eq!(content_type_of(name), expected);
        }
    }

    #[tokio::test]
    async fn small_and_large_files_are_served_and_changed_files_are_reread() {
        let fx = fixture();
        let big: Vec<u8> = (0..8 * CHUNK + 10).map(|i| (i % 253) as u8).collect();
        let public = fx.tree.root.to_path_buf();
        write(&public.join("pool/big.deb"), &big);
        let (status, _, body) = call(&fx, Method::GET, "/pool/big.deb", "").await;
        assert_eq!((status, body.len()), (200, big.len()));
        assert!(body[..] == big[..]);
        let (status, _, body) = call(&fx, Method::GET, "/pool/big.deb", "Range: bytes=-3").await;
        assert_eq!((status, &body[..]), (206, &big[big.len() - 3..]));
        // A kept file that is replaced (new inode) is read again.
        let (_, _, first) = call(&fx, Method::GET, DEB, "").await;
        assert_eq!(first, fx.deb);
        let path = public.join(&DEB[1..]);
        fs::remove_file(&path).unwrap();
        write(&path, b"new bytes");
        let (_, _, second) = call(&fx, Method::GET, DEB, "").await;
        assert_eq!(&second[..], b"new bytes");
    }
}
