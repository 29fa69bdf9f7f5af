//! The HTTP server: the apt-facing tree (`public/`) for now; the upload and
//! query API (`/api/v1`) arrives with the HTTP issue.
//!
//! Owns routing and HTTP semantics. It reads the served tree and never
//! writes it; changes go through `repo::Repository` like every other door.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

/// The whole application, built without a socket so tests can call it.
pub fn router(public: PathBuf) -> Router {
    let files = ServeDir::new(public).append_index_html_on_directories(false);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // Reserved for the API and metrics; 404 (never 403: apt >= 1.5 fails
        // hard on other codes for InRelease) until they exist.
        .route("/api/v1/{*rest}", get(not_found))
        .route("/metrics", get(not_found))
        .fallback_service(files)
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// Serves `public` on an already bound listener until Ctrl-C or SIGTERM.
/// Binding first lets callers print the real address (port 0 picks one).
pub async fn serve(public: PathBuf, listener: std::net::TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(%local, public = %public.display(), "serving");
    eprintln!("serving {} on http://{local}/", public.display());
    axum::serve(listener, router(public))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
