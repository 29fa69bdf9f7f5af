//! HTTP/1.1 for the apt tree, with sendfile.
//!
//! apt asks a repository for files only: GET and HEAD of `public/`, on
//! kept-alive and often pipelined connections. This module answers those
//! requests itself so that a pool file goes from the page cache to the
//! socket (`sendfile`), as nginx does, instead of being copied into a buffer
//! and out again as it must through hyper. Through hyper, a 1 MB .deb was
//! served at 0.62x nginx's rate with 1.7x its CPU per request
//! (bench/serve.rs).
//!
//! Owns reading request heads and writing answers on a connection, until a
//! request comes that is not a plain GET or HEAD of the tree (the API,
//! `/healthz`, `/metrics`, a request with a body, anything this parser does
//! not take): that request and the rest of the connection go to hyper with
//! the bytes already read, so everything else has one implementation. What
//! a request is answered with is [`super::App::tree_answer`]'s business,
//! the same on both paths.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use rustix::net::SendFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::files::{Answer, Payload};
use super::App;

/// Header lines a request may have on this path; one with more goes to
/// hyper, which has the last word on it.
const MAX_HEADERS: usize = 64;
/// The most one `sendfile` call is asked to send; it sends what the socket
/// takes anyway, this only bounds the call.
const SENDFILE_MAX: u64 = 1 << 30;

/// What the connection limits are (see [`super::connections`]).
pub struct Limits {
    /// From when the connection waits for a request until its head is read.
    pub header_timeout: Duration,
    /// Request heads past this size answer 431.
    pub max_header_bytes: usize,
    /// The longest a client may leave an answer unread (no byte taken by
    /// the socket) before the connection is closed: a client that stops
    /// reading would otherwise hold its task and descriptors for good.
    pub send_timeout: Duration,
}

/// How the connection left this path.
pub enum Outcome {
    /// It is closed: the client left, was idle or too slow, or the server stops.
    Closed,
    /// A request this path does not answer: hyper takes the connection and
    /// reads `read`, the bytes already taken from it, first.
    Handover { stream: TcpStream, read: Vec<u8> },
}

/// A request head this path answers.
struct Request {
    method: Method,
    /// The path of the request target, without the query.
    path: String,
    headers: HeaderMap,
    keep_alive: bool,
}

enum Next {
    /// A request of ours, the first `usize` bytes of the buffer.
    Ours(Request, usize),
    Theirs,
    Close,
}

enum Parsed {
    Ours(Request, usize),
    Theirs,
    Partial,
}

/// Answers the requests of `stream` for the apt tree, in order, until the
/// connection closes or a request for someone else arrives. Once `stop`
/// turns true, the answer being written is finished and the connection
/// closed; an idle one closes at once.
pub async fn serve(
    mut stream: TcpStream,
    app: &Arc<App>,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<Outcome> {
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let (request, len) = match next_request(&mut stream, &mut buffer, limits, &mut stop).await?
        {
            Next::Ours(request, len) => (request, len),
            Next::Theirs => {
                return Ok(Outcome::Handover {
                    stream,
                    read: buffer,
                })
            }
            Next::Close => {
                let _ = stream.shutdown().await;
                return Ok(Outcome::Closed);
            }
        };
        buffer.drain(..len);
        let answer = app
            .tree_answer(&request.method, &request.path, &request.headers)
            .await;
        let status = answer.status.as_u16();
        app.metrics.responded(status);
        tracing::debug!(method = %request.method, path = %request.path, status, "apt tree");
        let keep_alive = request.keep_alive && !*stop.borrow();
        send(&stream, answer, keep_alive, limits.send_timeout).await?;
        if !keep_alive {
            let _ = stream.shutdown().await;
            return Ok(Outcome::Closed);
        }
    }
}

/// Reads until `buffer` starts with a whole request head, within the header
/// timeout. A connection that waits idle when the server stops is closed.
async fn next_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Next> {
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    loop {
        match parse(buffer) {
            Parsed::Ours(request, len) => return Ok(Next::Ours(request, len)),
            Parsed::Theirs => return Ok(Next::Theirs),
            Parsed::Partial => {}
        }
        if buffer.len() >= limits.max_header_bytes {
            let too_large = Answer::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            send(stream, too_large, false, limits.send_timeout).await?;
            return Ok(Next::Close);
        }
        buffer.reserve(4096);
        let idle = buffer.is_empty();
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(buffer)) => read,
            () = stopped(stop), if idle => return Ok(Next::Close),
        };
        match read {
            // Too slow, as hyper's header_read_timeout: closed without an answer.
            Err(_elapsed) => return Ok(Next::Close),
            Ok(Ok(0)) => return Ok(Next::Close),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// Resolves once the server stops (or is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The request head at the start of `buffer`, if it is whole, and whether
/// this path answers it.
fn parse(buffer: &[u8]) -> Parsed {
    if buffer.is_empty() {
        return Parsed::Partial;
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut slots);
    let len = match head.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Theirs,
    };
    let method = match head.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Theirs,
    };
    // Origin form only (`/path?query`); hyper takes the absolute form.
    let Some(target) = head.path.filter(|target| target.starts_with('/')) else {
        return Parsed::Theirs;
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if super::is_reserved(path) {
        return Parsed::Theirs;
    }
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for line in head.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes());
        let value = HeaderValue::from_bytes(line.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Parsed::Theirs;
        };
        headers.append(name, value);
    }
    // A body, even on a GET, is hyper's to read or discard.
    if headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Parsed::Theirs;
    }
    let keep_alive = head.version == Some(1) && !asks_to_close(&headers);
    let request = Request {
        method,
        path: path.to_string(),
        headers,
        keep_alive,
    };
    Parsed::Ours(request, len)
}

/// `Connection: close`. HTTP/1.0 clients get one answer per connection.
fn asks_to_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Writes the answer: head and small bodies in one write; a file's bytes
/// with sendfile after the head, which MSG_MORE holds back to go out with
/// the file's first bytes. Each wait for the socket lasts at most `pause`.
async fn send(
    stream: &TcpStream,
    answer: Answer,
    keep_alive: bool,
    pause: Duration,
) -> io::Result<()> {
    let mut head = head(&answer, keep_alive);
    let socket = Socket { stream, pause };
    match answer.payload {
        Payload::Empty => socket.send_all(&head, SendFlags::empty()).await,
        Payload::Bytes(bytes) => {
            head.extend_from_slice(&bytes);
            socket.send_all(&head, SendFlags::empty()).await
        }
        Payload::File { file, start, count } => {
            socket.send_all(&head, SendFlags::MORE).await?;
            socket.send_file(&file, start, count).await
        }
    }
}

/// The status line and the header lines, with Date, a Content-Length for
/// every answer that may have a body, and `Connection: close` when it ends
/// the connection.
fn head(answer: &Answer, keep_alive: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let reason = answer.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", answer.status.as_str()).as_bytes());
    let date = httpdate::fmt_http_date(SystemTime::now());
    line(&mut head, "date", date.as_bytes());
    for (name, value) in &answer.headers {
        line(&mut head, name.as_str(), value.as_bytes());
    }
    let has_length = answer.headers.contains_key(header::CONTENT_LENGTH);
    if !has_length && answer.status != StatusCode::NOT_MODIFIED {
        let len = match &answer.payload {
            Payload::Empty => 0,
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::File { count, .. } => *count,
        };
        line(&mut head, "content-length", len.to_string().as_bytes());
    }
    if !keep_alive {
        line(&mut head, "connection", b"close");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn line(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// The connection being written to, and how long one write may wait.
struct Socket<'a> {
    stream: &'a TcpStream,
    pause: Duration,
}

impl Socket<'_> {
    /// One non-blocking call, retried whenever the socket can take more,
    /// until it returns or `pause` passes without the socket taking a byte.
    async fn write<T>(&self, mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let ready = self.stream.async_io(Interest::WRITABLE, &mut call);
        match tokio::time::timeout(self.pause, ready).await {
            Ok(result) => result,
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }

    async fn send_all(&self, mut bytes: &[u8], flags: SendFlags) -> io::Result<()> {
        while !bytes.is_empty() {
            let stream = self.stream;
            let sent = self
                .write(|| {
                    Ok(rustix::net::send(
                        stream,
                        bytes,
                        flags | SendFlags::NOSIGNAL,
                    )?)
                })
                .await?;
            bytes = &bytes[sent..];
        }
        Ok(())
    }

    /// `count` bytes of `file` from `start`, from the page cache to the socket.
    async fn send_file(&self, file: &File, start: u64, count: u64) -> io::Result<()> {
        let (mut offset, end) = (start, start + count);
        while offset < end {
            let want = (end - offset).min(SENDFILE_MAX) as usize;
            let stream = self.stream;
            let sent = self
                .write(|| Ok(rustix::fs::sendfile(stream, file, Some(&mut offset), want)?))
                .await?;
            if sent == 0 {
                // Shrunk since the fstat: the promised length cannot be kept,
                // and only closing the connection tells the client.
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Parsed::Ours(request, len) => {
                assert_eq!(len, text.len());
                request
            }
            Parsed::Theirs => panic!("handed over: {text:?}"),
            Parsed::Partial => panic!("partial: {text:?}"),
        }
    }

    fn theirs(text: &str) -> bool {
        matches!(parse(text.as_bytes()), Parsed::Theirs)
    }

    #[test]
    fn gets_and_heads_of_the_tree_are_answered_here() {
        let get = ours("GET /dists/trusty/InRelease?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            (get.method, get.path.as_str()),
            (Method::GET, "/dists/trusty/InRelease")
        );
        assert!(get.keep_alive);
        let head = ours("HEAD /pool/a.deb HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n");
        assert_eq!(head.method, Method::HEAD);
        assert!(!head.keep_alive);
        assert!(!ours("GET /key.asc HTTP/1.0\r\n\r\n").keep_alive);
        let incomplete = "GET /dists/trusty/InRelease HTTP/1.1\r\nHost: h\r\n";
        assert!(matches!(parse(incomplete.as_bytes()), Parsed::Partial));
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for text in [
            "PUT /api/v1/dists/trusty/components/dev/packages HTTP/1.1\r\n\r\n",
            "GET /api/v1/packages HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\n\r\n",
            "GET /metrics HTTP/1.1\r\n\r\n",
            "POST /pool/a.deb HTTP/1.1\r\n\r\n",
            "GET http://h/pool/a.deb HTTP/1.1\r\n\r\n",
            "GET /pool/a.deb HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
            "GET /pool/a.deb HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /pool/a.deb HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "NONSENSE\r\n\r\n",
        ] {
            assert!(theirs(text), "{text:?}");
        }
    }

    #[test]
    fn the_head_carries_a_length_unless_it_is_a_304() {
        let text =
            |answer: Answer, keep_alive| String::from_utf8(head(&answer, keep_alive)).unwrap();
        let not_found = text(Answer::new(StatusCode::NOT_FOUND), true);
        assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\ndate: "));
        assert!(
            not_found.ends_with("\r\ncontent-length: 0\r\n\r\n"),
            "{not_found}"
        );
        let not_modified = text(Answer::new(StatusCode::NOT_MODIFIED), false);
        assert!(!not_modified.contains("content-length"));
        assert!(not_modified.ends_with("\r\nconnection: close\r\n\r\n"));
    }
}
