//! A deliberately small blocking HTTP/1.1 client for `http://` URLs: [`get`]
//! with redirects (how [`crate::remote`] reads a published repository), and
//! [`send_file`] / [`send_bytes`] (how a build pushes packages to
//! `repoctl serve`).
//!
//! One request per connection (`Connection: close`); Content-Length, chunked
//! and close-delimited response bodies; a [`TIMEOUT`] on connecting, reading
//! and writing; a size limit on every response body. `https://` is refused
//! because the crate has no TLS client yet, and proxies are not used. It
//! knows nothing about APT or the upload API: callers choose URLs, headers
//! and limits, and read the status. Header values are never logged (they may
//! carry a token).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connect, read and write timeout of every request.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects [`get`] follows per request (all within `http://`).
pub const MAX_REDIRECTS: usize = 5;
/// Limits on the response head.
const MAX_HEAD_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 128;
/// Request headers the client writes itself; a caller may not send them.
const FRAMING_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "accept-encoding",
];

/// Why a request failed. Every variant names the URL it concerns;
/// [`HttpError::hint`] says how to fix it when there is something to say.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: only http:// URLs are supported")]
    UnsupportedScheme { url: String },

    #[error("{url} is not a valid http:// URL: {problem}")]
    InvalidUrl { url: String, problem: &'static str },

    #[error("{url}: {method:?} is not an HTTP method")]
    InvalidMethod { url: String, method: String },

    /// The value is left out on purpose: it may be a token.
    #[error("{url}: cannot send the header {name:?}: {problem}")]
    InvalidHeader {
        url: String,
        name: String,
        problem: &'static str,
    },

    #[error("cannot read {path} to send it to {url}")]
    File {
        url: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("no answer from {url} within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },

    #[error("the request to {url} failed")]
    Io {
        url: String,
        #[source]
        source: io::Error,
    },

    #[error("{url} sent an invalid HTTP response: {problem}")]
    BadResponse { url: String, problem: String },

    #[error("the answer of {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },

    /// Only from [`get`]: [`send_file`] and [`send_bytes`] return the status.
    #[error("{url} answered HTTP {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },

    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
}

impl HttpError {
    /// The URL the failed request was for.
    pub fn url(&self) -> &str {
        match self {
            HttpError::UnsupportedScheme { url }
            | HttpError::InvalidUrl { url, .. }
            | HttpError::InvalidMethod { url, .. }
            | HttpError::InvalidHeader { url, .. }
            | HttpError::File { url, .. }
            | HttpError::Connect { url, .. }
            | HttpError::Timeout { url }
            | HttpError::Io { url, .. }
            | HttpError::BadResponse { url, .. }
            | HttpError::TooLarge { url, .. }
            | HttpError::Status { url, .. }
            | HttpError::TooManyRedirects { url } => url,
        }
    }

    /// How to fix it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            HttpError::UnsupportedScheme { .. } => {
                Some("repoctl has no TLS client yet; use the server's http:// URL".into())
            }
            HttpError::Connect { .. } | HttpError::Timeout { .. } => {
                Some("check the URL and that the server is reachable from here".into())
            }
            _ => None,
        }
    }
}

/// Refuses what this client cannot request (`https://`, malformed URLs)
/// without touching the network.
pub fn check_url(url: &str) -> Result<(), HttpError> {
    HttpUrl::parse(url).map(drop)
}

/// GETs `url`, following up to [`MAX_REDIRECTS`] redirects, and returns the
/// body of a 200 answer (at most `limit` bytes, else [`HttpError::TooLarge`]).
/// Any other final status is [`HttpError::Status`].
pub fn get(url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let parsed = HttpUrl::parse(&current)?;
        let stream = connect(&parsed, &current)?;
        let head = request_head("GET", &parsed, &[("Cache-Control", "max-age=0")], None);
        let written = (&stream)
            .write_all(head.as_bytes())
            .and_then(|()| (&stream).flush());
        written.map_err(|e| ReadError::Io(e).at(&current, 0))?;
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader).map_err(|e| e.at(&current, limit))?;
        match head.status {
            200 => return read_body(&mut reader, &head, limit).map_err(|e| e.at(&current, limit)),
            301 | 302 | 303 | 307 | 308 => {
                let location = head
                    .header("location")
                    .ok_or_else(|| HttpError::BadResponse {
                        url: current.clone(),
                        problem: format!("a {} redirect without a Location", head.status),
                    })?;
                let next = parsed.resolve(location);
                tracing::debug!(from = %current, to = %next, "redirected");
                current = next;
            }
            status => {
                return Err(HttpError::Status {
                    url: current,
                    status,
                    reason: head.reason,
                })
            }
        }
    }
    Err(HttpError::TooManyRedirects {
        url: url.to_owned(),
    })
}

/// Sends `method` (PUT or POST) to `url` (its query string included) with the
/// bytes of `file` streamed as the body (Content-Length from its size) and the
/// extra `headers` (e.g. `Authorization: Bearer ...`; their values are never
/// logged), and returns the final status and body (at most `limit` bytes,
/// else [`HttpError::TooLarge`]).
///
/// Redirects are not followed, and a non-2xx status is returned, not an
/// error: errors are for requests that could not be made or answers that
/// could not be read. Host, Content-Length, Connection, Expect,
/// Transfer-Encoding and Accept-Encoding are the client's to send.
pub fn send_file(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    file: &Path,
    limit: u64,
) -> Result<(u16, Vec<u8>), HttpError> {
    let parsed = HttpUrl::parse(url)?;
    check_request(url, method, headers)?;
    let file_error = |source| HttpError::File {
        url: url.to_owned(),
        path: file.to_owned(),
        source,
    };
    let opened = File::open(file).map_err(file_error)?;
    let metadata = opened.metadata().map_err(file_error)?;
    if !metadata.is_file() {
        return Err(file_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        )));
    }
    let length = metadata.len();
    let body = Body::File {
        file: opened,
        path: file,
        length,
    };
    exchange(method, &parsed, url, headers, body, limit)
}

/// [`send_file`] with an in-memory body, which may be empty (as for
/// `POST /api/v1/packages/NAME/reservations`).
pub fn send_bytes(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: u64,
) -> Result<(u16, Vec<u8>), HttpError> {
    let parsed = HttpUrl::parse(url)?;
    check_request(url, method, headers)?;
    exchange(method, &parsed, url, headers, Body::Bytes(body), limit)
}

/// Refuses a method or header that would break the request (or smuggle
/// another one in) before anything is sent.
fn check_request(url: &str, method: &str, headers: &[(&str, &str)]) -> Result<(), HttpError> {
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::InvalidMethod {
            url: url.to_owned(),
            method: method.to_owned(),
        });
    }
    for (name, value) in headers {
        let invalid = |problem| HttpError::InvalidHeader {
            url: url.to_owned(),
            name: (*name).to_owned(),
            problem,
        };
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(invalid("the name is not an HTTP token"));
        }
        if FRAMING_HEADERS
            .iter()
            .any(|framing| name.eq_ignore_ascii_case(framing))
        {
            return Err(invalid("the client sets it itself"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(invalid("the value holds control characters"));
        }
    }
    Ok(())
}

/// What a [`send_file`] or [`send_bytes`] request carries.
enum Body<'a> {
    Bytes(&'a [u8]),
    File {
        file: File,
        path: &'a Path,
        length: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { length, .. } => *length,
        }
    }
}

/// Why a request could not be written.
enum WriteFailure {
    /// Reading the file to send failed (or it shrank while being sent).
    File { path: PathBuf, source: io::Error },
    /// Writing to the connection failed.
    Connection(io::Error),
}

/// One request with a body, and its answer; no redirects.
fn exchange(
    method: &str,
    url: &HttpUrl,
    text: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
    limit: u64,
) -> Result<(u16, Vec<u8>), HttpError> {
    let length = body.len();
    let stream = connect(url, text)?;
    let head = request_head(method, url, headers, Some(length));
    let sent = write_request(&stream, &head, body);
    let mut reader = BufReader::new(stream);
    let (head, body) = match sent {
        Ok(()) => {
            let head = read_head(&mut reader).map_err(|e| e.at(text, limit))?;
            let body =
                read_answer_body(&mut reader, &head, limit).map_err(|e| e.at(text, limit))?;
            (head, body)
        }
        Err(WriteFailure::File { path, source }) => {
            return Err(HttpError::File {
                url: text.to_owned(),
                path,
                source,
            })
        }
        // A server may answer before reading the whole body (401, 413) and
        // close: that answer says more than the broken pipe, so read it if
        // it arrived, and its body as far as it goes.
        Err(WriteFailure::Connection(error)) => match read_head(&mut reader) {
            Ok(head) => {
                let body = read_answer_body(&mut reader, &head, limit).unwrap_or_default();
                (head, body)
            }
            Err(_) => return Err(ReadError::Io(error).at(text, limit)),
        },
    };
    tracing::debug!(
        method,
        url = %text,
        sent = length,
        status = head.status,
        received = body.len(),
        "sent"
    );
    Ok((head.status, body))
}

/// Writes the head and the body, in one buffer where they fit.
fn write_request(stream: &TcpStream, head: &str, body: Body<'_>) -> Result<(), WriteFailure> {
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    writer
        .write_all(head.as_bytes())
        .map_err(WriteFailure::Connection)?;
    match body {
        Body::Bytes(bytes) => writer.write_all(bytes).map_err(WriteFailure::Connection)?,
        Body::File { file, path, length } => {
            let file_failure = |source| WriteFailure::File {
                path: path.to_owned(),
                source,
            };
            let mut file = file.take(length);
            let mut buffer = vec![0; 64 << 10];
            let mut sent = 0;
            loop {
                let n = match file.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(file_failure(e)),
                };
                writer
                    .write_all(&buffer[..n])
                    .map_err(WriteFailure::Connection)?;
                sent += n as u64;
            }
            if sent != length {
                return Err(file_failure(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file shrank from {length} to {sent} bytes while it was sent"),
                )));
            }
        }
    }
    writer.flush().map_err(WriteFailure::Connection)
}

/// The body of an answer to a request with a body: none for 204 and 304.
fn read_answer_body(
    reader: &mut impl BufRead,
    head: &Head,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    if matches!(head.status, 204 | 304) {
        return Ok(Vec::new());
    }
    read_body(reader, head, limit)
}

/// The request line and headers, with the client's own headers first and
/// the caller's (already checked) after them.
fn request_head(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    content_length: Option<u64>,
) -> String {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\n",
        url.target,
        url.authority()
    );
    let given = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !given("user-agent") {
        head.push_str(concat!(
            "User-Agent: repoctl/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !given("accept") {
        head.push_str("Accept: */*\r\n");
    }
    head.push_str("Accept-Encoding: identity\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

/// An `http://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl {
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

impl HttpUrl {
    fn parse(url: &str) -> Result<HttpUrl, HttpError> {
        let invalid = |problem| HttpError::InvalidUrl {
            url: url.to_owned(),
            problem,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected http://HOST/PATH"))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(HttpError::UnsupportedScheme {
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

/// Connects (trying each address of the host) with the read and write
/// timeouts set.
fn connect(url: &HttpUrl, text: &str) -> Result<TcpStream, HttpError> {
    let connect_error = |source| HttpError::Connect {
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
    let stream = stream.ok_or_else(|| match last_error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout {
            url: text.to_owned(),
        },
        _ => connect_error(last_error),
    })?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| ReadError::Io(e).at(text, 0))?;
    Ok(stream)
}

/// What went wrong while reading a response, before the URL is known.
#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Malformed(String),
    TooLarge,
}

impl ReadError {
    fn at(self, url: &str, limit: u64) -> HttpError {
        let url = url.to_owned();
        match self {
            ReadError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                HttpError::Timeout { url }
            }
            ReadError::Io(source) => HttpError::Io { url, source },
            ReadError::Malformed(problem) => HttpError::BadResponse { url, problem },
            ReadError::TooLarge => HttpError::TooLarge { url, limit },
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
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
fn read_head(reader: &mut impl BufRead) -> Result<Head, ReadError> {
    loop {
        let line = read_line(reader)?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default().trim().to_owned();
        if !version.starts_with("HTTP/1.") || code.len() != 3 {
            return Err(ReadError::Malformed(format!(
                "bad status line {:?}",
                line.chars().take(80).collect::<String>()
            )));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ReadError::Malformed(format!("bad status code {code:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(reader)?;
            if line.is_empty() {
                break;
            }
            if headers.len() == MAX_HEADERS {
                return Err(ReadError::Malformed(format!(
                    "more than {MAX_HEADERS} headers"
                )));
            }
            if line.starts_with([' ', '\t']) {
                return Err(ReadError::Malformed("folded header line".into()));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ReadError::Malformed(format!("bad header line {line:?}")))?;
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
fn read_body(reader: &mut impl BufRead, head: &Head, limit: u64) -> Result<Vec<u8>, ReadError> {
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
    let lengths: std::collections::BTreeSet<&str> = head
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
            .ok_or_else(|| ReadError::Malformed("bad Content-Length".into()))?,
        _ => {
            return Err(ReadError::Malformed(
                "conflicting Content-Length headers".into(),
            ))
        }
    };
    if length > limit {
        return Err(ReadError::TooLarge);
    }
    read_exact(reader, length, Vec::new())
}

fn read_to_close(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut body)?;
    if body.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(body)
}

/// Appends exactly `length` bytes to `body`.
fn read_exact(
    reader: &mut impl BufRead,
    length: u64,
    mut body: Vec<u8>,
) -> Result<Vec<u8>, ReadError> {
    let before = body.len() as u64;
    reader.take(length).read_to_end(&mut body)?;
    let got = body.len() as u64 - before;
    if got != length {
        return Err(ReadError::Malformed(format!(
            "the connection closed after {got} of {length} body bytes"
        )));
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReadError::Malformed(format!("bad chunk size {size:?}")));
        }
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| ReadError::Malformed(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            for _ in 0..=MAX_HEADERS {
                if read_line(reader)?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(ReadError::Malformed("too many trailer lines".into()));
        }
        if body.len() as u64 + size > limit {
            return Err(ReadError::TooLarge);
        }
        body = read_exact(reader, size, body)?;
        if !read_line(reader)?.is_empty() {
            return Err(ReadError::Malformed(
                "a chunk is longer than its size".into(),
            ));
        }
    }
}

/// One line without its CRLF (or LF), at most [`MAX_HEAD_LINE`] bytes.
fn read_line(reader: &mut impl BufRead) -> Result<String, ReadError> {
    let mut line = Vec::new();
    reader
        .take(MAX_HEAD_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Malformed(if line.len() > MAX_HEAD_LINE {
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
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    fn response(raw: &str, limit: u64) -> Result<(u16, Vec<u8>), ReadError> {
        let mut reader = io::Cursor::new(raw.as_bytes().to_vec());
        let head = read_head(&mut reader)?;
        let body = read_body(&mut reader, &head, limit)?;
        Ok((head.status, body))
    }

    /// What the test server received.
    #[derive(Debug)]
    struct Received {
        request_line: String,
        /// Names lowercased, in order.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            let mut values = self.headers.iter().filter(|(n, _)| n == name);
            let value = values.next().map(|(_, v)| v.as_str());
            assert!(values.next().is_none(), "{name} sent twice: {self:?}");
            value
        }
    }

    /// Answers one request on 127.0.0.1 with `answer` and hands back what it
    /// received (the body as long as its Content-Length). Returns the base
    /// URL (`http://127.0.0.1:PORT`) and the server thread.
    fn serve_once(answer: &str) -> (String, JoinHandle<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answer = answer.as_bytes().to_vec();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(&stream);
            let mut line = || {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                line.strip_suffix("\r\n")
                    .unwrap_or_else(|| panic!("not CRLF-terminated: {line:?}"))
                    .to_owned()
            };
            let request_line = line();
            let mut headers = Vec::new();
            loop {
                let header = line();
                if header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(": ").unwrap();
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
            let mut received = Received {
                request_line,
                headers,
                body: Vec::new(),
            };
            let length = received
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            reader.take(length).read_to_end(&mut received.body).unwrap();
            (&stream).write_all(&answer).unwrap();
            received
        });
        (base, server)
    }

    #[test]
    fn send_file_streams_the_file_and_returns_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("vrmd-whois_2_amd64.deb");
        // Several write buffers long, and no two buffers alike.
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&deb, &content).unwrap();
        let answer = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"published\":1}\n";
        let (base, server) = serve_once(answer);

        let url = format!("{base}/api/v1/packages?wait=published");
        let headers = [
            ("Authorization", "Bearer s3cret"),
            ("Content-Type", "application/vnd.debian.binary-package"),
        ];
        let (status, body) = send_file("PUT", &url, &headers, &deb, 1024).unwrap();
        assert_eq!(status, 201);
        assert_eq!(body, b"{\"published\":1}\n");

        let received = server.join().unwrap();
        assert_eq!(
            received.request_line,
            "PUT /api/v1/packages?wait=published HTTP/1.1"
        );
        assert_eq!(received.header("host"), Some(&base["http://".len()..]));
        assert_eq!(received.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(
            received.header("content-type"),
            Some("application/vnd.debian.binary-package")
        );
        assert_eq!(received.header("content-length"), Some("300000"));
        assert_eq!(received.header("connection"), Some("close"));
        assert_eq!(received.header("transfer-encoding"), None);
        assert!(received.body == content, "the body arrived changed");
    }

    #[test]
    fn send_bytes_posts_an_empty_body_and_reads_a_chunked_answer() {
        let answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"error\r\n9;ext=1\r\n\":\"taken\"\r\n2\r\n}\n\r\n0\r\n\r\n";
        let (base, server) = serve_once(answer);
        let url = format!("{base}/api/v1/packages/vrmd-whois/reservations");
        let (status, body) = send_bytes("POST", &url, &[], b"", 1024).unwrap();
        assert_eq!((status, body), (409, b"{\"error\":\"taken\"}\n".to_vec()));

        let received = server.join().unwrap();
        assert_eq!(
            received.request_line,
            "POST /api/v1/packages/vrmd-whois/reservations HTTP/1.1"
        );
        assert_eq!(received.header("content-length"), Some("0"));
        assert!(received.body.is_empty());
    }

    #[test]
    fn send_bytes_sends_its_body_and_follows_no_redirect() {
        let answer = "HTTP/1.1 308 Permanent Redirect\r\nLocation: /elsewhere\r\nContent-Length: 5\r\n\r\nmoved";
        let (base, server) = serve_once(answer);
        let (status, body) =
            send_bytes("POST", &format!("{base}/x"), &[], b"{\"a\":1}", 1024).unwrap();
        assert_eq!((status, body), (308, b"moved".to_vec()));
        let received = server.join().unwrap();
        assert_eq!(received.request_line, "POST /x HTTP/1.1");
        assert_eq!(received.body, b"{\"a\":1}");
    }

    #[test]
    fn send_answers_without_a_body_or_too_long_are_told_apart() {
        // 204 has no body even without a Content-Length.
        let (base, server) = serve_once("HTTP/1.1 204 No Content\r\n\r\n");
        let got = send_bytes("PUT", &format!("{base}/"), &[], b"x", 10).unwrap();
        assert_eq!(got, (204, Vec::new()));
        server.join().unwrap();

        // A close-delimited answer past the limit.
        let (base, server) = serve_once(&format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(11)));
        let url = format!("{base}/big");
        let err = send_bytes("PUT", &url, &[], b"x", 10).unwrap_err();
        assert!(
            matches!(&err, HttpError::TooLarge { url: u, limit: 10 } if u == &url),
            "{err:?}"
        );
        server.join().unwrap();
    }

    #[test]
    fn send_refuses_bad_requests_before_connecting() {
        // Nothing listens on port 1: a request that got that far would be a
        // Connect error instead.
        let url = "http://127.0.0.1:1/api";
        let err = send_bytes("put", url, &[], b"", 10).unwrap_err();
        assert!(matches!(err, HttpError::InvalidMethod { .. }), "{err:?}");
        let err = send_bytes(
            "PUT",
            url,
            &[("Authorization", "Bearer a\r\nX: y")],
            b"",
            10,
        )
        .unwrap_err();
        assert!(
            matches!(&err, HttpError::InvalidHeader { name, .. } if name == "Authorization"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("Bearer"), "{err}");
        for name in ["Content-Length", "host", "Transfer-Encoding", "X Y", ""] {
            let err = send_bytes("PUT", url, &[(name, "1")], b"", 10).unwrap_err();
            assert!(
                matches!(err, HttpError::InvalidHeader { .. }),
                "{name}: {err:?}"
            );
        }
        let err = send_bytes("PUT", "https://127.0.0.1:1/api", &[], b"", 10).unwrap_err();
        assert!(
            matches!(err, HttpError::UnsupportedScheme { .. }),
            "{err:?}"
        );

        let missing = Path::new("/nonexistent/vrmd-whois_1_all.deb");
        let err = send_file("PUT", url, &[], missing, 10).unwrap_err();
        assert!(
            matches!(&err, HttpError::File { path, .. } if path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("vrmd-whois_1_all.deb"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = send_file("PUT", url, &[], dir.path(), 10).unwrap_err();
        assert!(
            matches!(&err, HttpError::File { path, .. } if path == dir.path()),
            "{err:?}"
        );
    }

    #[test]
    fn send_to_a_closed_port_is_a_connect_error() {
        // A port nobody listens on (bound, then closed).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/v1/packages");
        let err = send_bytes("POST", &url, &[], b"", 10).unwrap_err();
        assert!(
            matches!(&err, HttpError::Connect { url: u, .. } if u == &url),
            "{err:?}"
        );
        assert!(err.hint().unwrap().contains("reachable"), "{err:?}");
    }

    /// A server that refuses an upload (wrong token, too large) may answer
    /// before reading the body and close: the client's write then fails, and
    /// the answer is what the caller needs.
    #[test]
    fn an_answer_sent_before_the_body_was_read_is_returned() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while line != "\r\n" {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
            let answer = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n";
            (&stream).write_all(answer.as_bytes()).unwrap();
            // Closed with the body unread: the peer sees a reset.
        });
        // More than the socket buffers of both ends hold.
        let body = vec![7; 32 << 20];
        let got = send_bytes("PUT", &format!("{base}/x"), &[], &body, 100).unwrap();
        assert_eq!(got, (413, b"too big\n".to_vec()));
        server.join().unwrap();
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
            matches!(&err, ReadError::Malformed(m) if m.contains("5 of 10")),
            "{err:?}"
        );
        let err = response("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 100).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n",
            0x3f,
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::TooLarge), "{err:?}");
        let err =
            response(&format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(101)), 100).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            100,
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::Malformed(_)), "{err:?}");
        let err = response(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            100,
        )
        .unwrap_err();
        assert!(
            matches!(&err, ReadError::Malformed(m) if m.contains("conflicting")),
            "{err:?}"
        );
        let err = response("SSH-2.0-OpenSSH\r\n\r\n", 100).unwrap_err();
        assert!(
            matches!(&err, ReadError::Malformed(m) if m.contains("status line")),
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
            Err(HttpError::UnsupportedScheme { .. })
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
                matches!(HttpUrl::parse(bad), Err(HttpError::InvalidUrl { .. })),
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

    /// Callers wrap this error in theirs; keep clippy's `result_large_err` quiet.
    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<HttpError>() <= 128);
    }
}
