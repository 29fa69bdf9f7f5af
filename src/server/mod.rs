//! The HTTP server: the apt tree (`public/`) at `/`, the upload and query
//! API at `/api/v1`, `/healthz` and `/metrics`.
//!
//! Owns routing, authentication of requests and the server's life (start,
//! group-commit publisher, graceful shutdown). Changes go through
//! `repo::Repository` like every other door: uploads through `ingest`.

pub mod api;
pub mod auth;
pub mod connections;
pub mod error;
pub mod files;
pub mod ingest;
pub mod metrics;
pub mod operations;
pub mod tree_http;
pub mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tokio::sync::watch;

use crate::config::{Config, Target};
use crate::repo::tokens::Grant;
use crate::repo::{RepoError, Repository};
use error::ApiError;
use files::{Answer, PublicTree};
use ingest::Ingest;
use metrics::Metrics;

/// What every request handler shares.
pub struct App {
    pub root: PathBuf,
    pub config: Config,
    tree: PublicTree,
    pub ingest: Arc<Ingest>,
    /// Token checks: a connection of their own, so they never wait behind
    /// a long query or a publish.
    auth: Mutex<Repository>,
    /// Queries and reservations (reads never wait for the writer: WAL).
    reads: Mutex<Repository>,
    pub metrics: Arc<Metrics>,
}

impl App {
    /// Opens the repository three times: the writer (uploads and
    /// publishes), token checks and queries.
    pub fn open(root: PathBuf) -> Result<App, RepoError> {
        let writer = Repository::open(&root)?;
        // Refused at start, not at the first publish after uploads were
        // acknowledged.
        writer.check_signing_keys()?;
        let config = writer.config().clone();
        let public = writer.public_dir();
        let tree = PublicTree::new(&public).map_err(|source| RepoError::Io {
            action: "cannot serve",
            path: public.clone(),
            source,
        })?;
        upload::sweep(&root).map_err(|source| RepoError::Io {
            action: "cannot clear the temporary uploads in",
            path: root.join(upload::UPLOADS_DIR),
            source,
        })?;
        let metrics = Arc::new(Metrics::default());
        Ok(App {
            auth: Mutex::new(Repository::open(&root)?),
            reads: Mutex::new(Repository::open(&root)?),
            ingest: Arc::new(Ingest::new(writer, Arc::clone(&metrics))),
            root,
            config,
            tree,
            metrics,
        })
    }

    /// The grant of the request's token; 401 without a live one.
    pub async fn authenticate(self: &Arc<Self>, headers: &HeaderMap) -> Result<Grant, ApiError> {
        let Some(credentials) = auth::credentials(headers) else {
            return Err(ApiError::unauthorized());
        };
        let app = Arc::clone(self);
        let grant = tokio::task::spawn_blocking(move || {
            lock(&app.auth)
                .authenticate(&credentials.token)
                .map(|grant| {
                    grant.filter(|g| {
                        credentials
                            .login
                            .as_ref()
                            .is_none_or(|login| *login == g.name)
                    })
                })
        })
        .await
        .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))??;
        grant.ok_or_else(ApiError::unauthorized)
    }

    /// The answer to a GET or HEAD of the apt tree, whichever HTTP path
    /// carried it: behind basic auth when the repository is private.
    pub async fn tree_answer(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Answer {
        match self.reader_refusal(headers).await {
            Some(refusal) => refusal,
            None => self.tree.answer(method, path, headers).await,
        }
    }

    /// What a reader of a private repository (the apt tree, /metrics)
    /// gets without a live token in basic auth: 401 and the challenge that
    /// makes apt and Prometheus send one. `None`: let in.
    async fn reader_refusal(self: &Arc<Self>, headers: &HeaderMap) -> Option<Answer> {
        if !self.config.server.private || self.authenticate(headers).await.is_ok() {
            return None;
        }
        let mut answer = Answer::new(StatusCode::UNAUTHORIZED);
        let challenge = HeaderValue::from_static("Basic realm=\"repoctl\"");
        answer.headers.insert(header::WWW_AUTHENTICATE, challenge);
        Some(answer)
    }

    pub fn check_target(&self, target: &Target) -> Result<(), ApiError> {
        if self.config.has_target(&target.dist, &target.component) {
            Ok(())
        } else {
            let repo = &self.config.repository;
            Err(ApiError::from(RepoError::UnknownTarget {
                target: target.to_string(),
                dists: repo.dists.join(", "),
                components: repo.components.join(", "),
            }))
        }
    }

    /// Runs a query off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&Repository) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.read_mut(move |repo| query(repo)).await
    }

    /// Like `read`, for the calls that write outside the writer lock
    /// (reservations: their own immediate transaction).
    pub async fn read_mut<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&mut Repository) -> Result<T, RepoError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || query(&mut lock(&app.reads)))
            .await
            .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))?
            .map_err(ApiError::from)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every route under `/api/v1`, in one table: the router is built from it,
/// and the tests walk it to check that each route refuses a missing,
/// revoked or under-scoped token.
fn api_routes() -> Vec<(&'static str, MethodRouter<Arc<App>>)> {
    vec![
        ("/dists", get(api::dists)),
        (
            "/dists/{dist}/components/{component}/packages",
            get(api::packages_in)
                .put(upload::upload)
                .post(upload::upload),
        ),
        ("/packages", get(api::packages)),
        ("/packages/{name}", get(api::package)),
        ("/packages/{name}/next-version", get(api::next_version)),
        ("/packages/{name}/reservations", post(api::reserve)),
        ("/history", get(api::history)),
        ("/operations/{action}", post(operations::operate)),
    ]
}

/// Where the API is mounted.
const API_PREFIX: &str = "/api/v1";

/// Whether a request path belongs to the router's own routes rather than
/// to the apt tree (see [`tree_http`], which hands those to the router).
pub fn is_reserved(path: &str) -> bool {
    path.starts_with(API_PREFIX) || path == "/healthz" || path == "/metrics"
}

/// The path of every route under `/api/v1`, as the router matches it.
pub fn api_paths() -> Vec<&'static str> {
    api_routes().into_iter().map(|(path, _)| path).collect()
}

/// The whole application, built without a socket so tests can call it.
pub fn router(app: Arc<App>) -> Router {
    let api = api_routes()
        .into_iter()
        .fold(Router::new(), |api, (path, methods)| {
            api.route(path, methods)
        })
        .fallback(api::unknown)
        // Uploads count their own bytes against [server] max_upload_bytes,
        // operations against theirs.
        .layer(DefaultBodyLimit::disable());
    let body_timeout = Duration::from_secs(app.config.server.body_timeout_secs);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .nest(API_PREFIX, api)
        .fallback(apt_tree)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            count_responses,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // A body that pauses longer errors out: the handler refuses the
        // request, and the connection of a stalled upload closes.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .with_state(app)
}

/// Counters and index ages; a private repository's names its dists, so it
/// is read like the apt tree.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = app.reader_refusal(&headers).await {
        return refusal.into_response();
    }
    let public = app.root.join("public");
    let text = app.metrics.render(&app.config, &public);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Everything outside `/api/v1`: files of `public/`, for the connections
/// that [`tree_http`] handed over.
async fn apt_tree(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path();
    app.tree_answer(request.method(), path, request.headers())
        .await
        .into_response()
}

async fn count_responses(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    app.metrics.responded(response.status().as_u16());
    response
}

/// Serves the repository at `root` on an already bound listener until
/// Ctrl-C or SIGTERM. Binding first lets callers print the real address
/// (port 0 picks one).
pub async fn serve(root: PathBuf, listener: std::net::TcpListener) -> Result<(), ServeError> {
    raise_open_file_limit();
    let app = Arc::new(App::open(root.clone())?);
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(%local, root = %root.display(), "serving");
    eprintln!(
        "serving {} on http://{local}/",
        root.join("public").display()
    );

    // The scp/sftp door runs beside the HTTP one, on its own thread.
    let stop_incoming = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let incoming = crate::incoming::spawn(&root, Arc::clone(&stop_incoming))?;
    let (stop, stopped) = watch::channel(false);
    let publisher = tokio::spawn(Arc::clone(&app.ingest).run_publisher(stopped.clone()));
    let collector = tokio::spawn(collect_garbage(Arc::clone(&app), stopped));
    let grace = Duration::from_secs(app.config.server.shutdown_grace_secs);
    let signalled = Arc::new(tokio::sync::Notify::new());
    let on_signal = Arc::clone(&signalled);
    let server = connections::serve(
        listener,
        Arc::clone(&app),
        router(Arc::clone(&app)),
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new connections, running requests may finish");
            on_signal.notify_one();
        },
    );
    tokio::select! {
        result = server => result?,
        () = async { signalled.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "requests still running after the grace period are cut off");
        }
    }
    // Publish what was committed meanwhile, then stop; the watcher ends
    // the pass it is in.
    let _ = stop.send(true);
    let _ = publisher.await;
    let _ = collector.await;
    stop_incoming.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = tokio::task::spawn_blocking(move || incoming.join()).await;
    Ok(())
}

/// Each connection holds a descriptor and the file cache up to 256 more
/// (server/files.rs), against a soft limit that is often 1024; the hard
/// limit is what the operator allows. Raised as the Go runtime does for
/// every server, at start, once.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    // None is unlimited: nothing to raise, or no number to raise it to.
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        return;
    };
    if soft < hard {
        let raised = rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(soft, hard, "raised the open file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
        }
    }
}

/// Runs gc every `[gc] interval_minutes` until `stop` turns true.
async fn collect_garbage(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let minutes = app.config.gc.interval_minutes;
    if minutes == 0 {
        return;
    }
    let every = Duration::from_secs(u64::from(minutes) * 60);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let ingest = Arc::clone(&app.ingest);
        let actor = crate::repo::Actor {
            door: crate::repo::Door::Schedule,
            name: "gc".into(),
        };
        match tokio::task::spawn_blocking(move || ingest.with_repo(|repo| repo.gc(&actor, false)))
            .await
        {
            Ok(Ok(report)) if !report.collected.is_empty() => {
                tracing::info!(collected = report.collected.len(), "gc");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %crate::repo::error_chain(&e), "gc failed"),
            Err(e) => tracing::error!(error = %e, "gc task failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("serving failed")]
    Io(#[from] std::io::Error),
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
