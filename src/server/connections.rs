//! Accepting connections, and the limits each one lives under so that a slow
//! or idle client cannot hold the server's connections, tasks and memory:
//! a deadline for a request's headers (which also closes a kept-alive
//! connection that waits idle for its next request) and a cap on their size.
//! The longest pause inside a request body is the router's layer
//! ([`super::router`]), since bodies are read by the handlers.
//!
//! Every connection starts on the apt tree's own path
//! ([`super::tree_http`]), which hands it to hyper and the router at the
//! first request that is not a GET or HEAD of the tree.
//!
//! Owns the accept loop, the hand-over and the graceful end of connections
//! on shutdown; what a request does is the router's business.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use super::tree_http::{self, Limits, Outcome};
use super::App;

/// Request headers past this size answer 431 and close the connection. apt,
/// curl and CI clients send well under 8 KiB; without a cap hyper buffers
/// about 400 KiB per connection before it gives up.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// After an accept error other than a client's aborted connection (EMFILE:
/// out of file descriptors), wait before accepting again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` (the tree) and `router` (everything else) on `listener`
/// until `shutdown` resolves, then stops accepting, lets running requests
/// finish and closes idle connections. From `[server]` of the config:
/// `header_timeout_secs`, how long a client may take to send a request's
/// headers, counted from when the connection waits for them (also between
/// requests); `body_timeout_secs`, how long an answer (the tree's or the
/// router's) may wait unread; `max_connections`, how many connections are served at once
/// (more wait in the listen backlog until one closes, instead of running
/// the server out of file descriptors).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = &app.config.server;
    let header_timeout = Duration::from_secs(config.header_timeout_secs);
    let send_timeout = Duration::from_secs(config.body_timeout_secs);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    let limits = Arc::new(Limits {
        header_timeout,
        max_header_bytes: MAX_HEADER_BYTES,
        send_timeout,
    });
    let (stop, stopping) = watch::channel(false);
    let connections = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept connections");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers end with a short write; Nagle would hold it back until
        // the client acknowledges the previous one.
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: Arc::clone(&app),
            router: router.clone(),
            http: http.clone(),
            limits: Arc::clone(&limits),
            stopping: stopping.clone(),
        };
        connections.spawn(async move {
            connection.run(stream).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What one connection needs from the server.
struct Connection {
    app: Arc<App>,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    limits: Arc<Limits>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let outcome = tree_http::serve(stream, &self.app, &self.limits, self.stopping.clone());
        let (stream, read) = match outcome.await {
            Ok(Outcome::Handover { stream, read }) => (stream, read),
            Ok(Outcome::Closed) => return,
            Err(e) => {
                tracing::debug!(error = %e, "connection closed");
                return;
            }
        };
        let io = TokioIo::new(Replay {
            read,
            at: 0,
            stream,
            send_timeout: self.limits.send_timeout,
            stalled: None,
        });
        let service = TowerToHyperService::new(self.router);
        let connection = self.http.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = tree_http::stopped(&mut self.stopping) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            // Timeouts, oversized headers and vanished clients end here.
            tracing::debug!(error = %e, "connection closed");
        }
    }
}

/// A connection whose first bytes were already read by the tree's path:
/// hyper reads them again, then the rest. A write that waits longer than
/// `send_timeout` for the client to read fails, as on the tree's path, so
/// a client that stops reading an answer does not hold its connection.
struct Replay {
    read: Vec<u8>,
    at: usize,
    stream: TcpStream,
    send_timeout: Duration,
    /// Armed when a write has to wait, disarmed when one makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Replay {
    fn unless_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.stalled = None;
            return written;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let unread = &this.read[this.at..];
        if unread.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = unread.len().min(buf.remaining());
        buf.put_slice(&unread[..n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.unless_stalled(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.unless_stalled(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        this.unless_stalled(cx, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Errors that concern one client's connection, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
