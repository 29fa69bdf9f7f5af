//! Accepting connections, and the limits each one lives under so that a slow
//! or idle client cannot hold the server's connections, tasks and memory:
//! a deadline for a request's headers (which also closes a kept-alive
//! connection that waits idle for its next request) and a cap on their size.
//! The longest pause inside a request body is the router's layer
//! ([`super::router`]), since bodies are read by the handlers.
//!
//! Owns the accept loop and the graceful end of connections on shutdown;
//! what a request does is the router's business.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Request headers past this size answer 431 and close the connection. apt,
/// curl and CI clients send well under 8 KiB; without a cap hyper buffers
/// about 400 KiB per connection before it gives up.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// After an accept error other than a client's aborted connection (EMFILE:
/// out of file descriptors), wait before accepting again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets running requests finish and closes idle connections.
/// `header_timeout`: how long a client may take to send a request's headers,
/// counted from when the connection waits for them (also between requests).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
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
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts, oversized headers and vanished clients end here.
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
