//! Group commit: uploads are committed to the catalog one by one, as they
//! arrive, and published in batches by one background task.
//!
//! Each commit takes a sequence number. The publisher notes the highest
//! number committed before it starts, publishes every dirty dist, and then
//! announces that number: every upload at or below it is in the signed
//! indices. Uploads that arrive during a publish wait for the next one, so
//! 50 uploads in a second make a few publishes, not 50.
//!
//! A dist is published at most once per second: the publisher waits for the
//! second to turn before it takes the repository (the core would wait too,
//! but while holding the lock that uploads need). Owns the server's writer
//! `Repository`; nothing else in the server changes the repository.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::metrics::Metrics;
use crate::config::Target;
use crate::repo::publish::DistPublished;
use crate::repo::{Actor, AddOptions, AddReport, Door, Inspected, RepoError, Repository};

/// After a failed publish, the next try comes this much later.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The publisher's latest news.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Every commit with a sequence number up to this is published.
    pub through: u64,
    /// Set when the last publish failed (the commits stay queued).
    pub error: Option<String>,
    /// The commits up to this were in the failed publish.
    pub failed_through: u64,
}

pub struct Ingest {
    repo: Mutex<Repository>,
    committed: AtomicU64,
    wake: Notify,
    published: watch::Sender<Published>,
    metrics: Arc<Metrics>,
}

impl Ingest {
    pub fn new(repo: Repository, metrics: Arc<Metrics>) -> Ingest {
        Ingest {
            repo: Mutex::new(repo),
            committed: AtomicU64::new(0),
            wake: Notify::new(),
            published: watch::Sender::new(Published::default()),
            metrics,
        }
    }

    /// Commits inspected files to `target` (blocking: call it off the async
    /// threads). Returns the report and the commit's sequence number; the
    /// upload is acknowledged (durable) when this returns `Ok`.
    pub fn commit(
        &self,
        inspected: Inspected,
        target: &Target,
        actor: &Actor,
    ) -> Result<(AddReport, u64), RepoError> {
        let mut repo = self.lock();
        let options = AddOptions {
            publish: false,
            keep_going: false,
        };
        let report = repo.add_inspected(inspected, target, actor, &options)?;
        // Taken while holding the repository, so numbers follow commit order.
        let sequence = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        drop(repo);
        self.wake.notify_one();
        Ok((report, sequence))
    }

    /// Runs an operator action on the writer (blocking: call it off the
    /// async threads). It publishes itself, through the same core.
    pub fn with_repo<T>(&self, action: impl FnOnce(&mut Repository) -> T) -> T {
        action(&mut self.lock())
    }

    pub fn is_published(&self, sequence: u64) -> bool {
        self.published.borrow().through >= sequence
    }

    /// Waits until the commit `sequence` is published, or its publish failed.
    pub async fn wait_published(&self, sequence: u64) -> Result<(), String> {
        let mut news = self.published.subscribe();
        let result = news
            .wait_for(|p| p.through >= sequence || p.failed_through >= sequence)
            .await;
        match result {
            Ok(p) if p.through >= sequence => Ok(()),
            Ok(p) => Err(p.error.clone().unwrap_or_default()),
            Err(_) => Err("the server is shutting down".into()),
        }
    }

    /// Publishes in batches until `stop` turns true, then once more for
    /// whatever was committed meanwhile. Publishes once at start, so commits
    /// a previous run acknowledged but did not publish go out.
    pub async fn run_publisher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last_second = i64::MIN;
        loop {
            let stopping = *stop.borrow();
            let through = self.committed.load(Ordering::SeqCst);
            wait_for_next_second(last_second).await;
            let this = Arc::clone(&self);
            let started = Instant::now();
            let result =
                tokio::task::spawn_blocking(move || this.lock().publish(false, Door::Http)).await;
            let result = match result {
                Ok(result) => result.map_err(|e| {
                    tracing::error!(error = %crate::repo::error_chain(&e), "publish failed");
                    crate::repo::error_chain(&e)
                }),
                Err(e) => Err(format!("the publish task failed: {e}")),
            };
            // A publish with nothing to do wrote nothing: not counted.
            if result.as_ref().map_or(true, |dists| !dists.is_empty()) {
                self.metrics.published(started.elapsed(), result.is_ok());
            }
            last_second = self.announce(through, result, last_second);
            if stopping {
                return;
            }
            if self.published.borrow().error.is_some() {
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
            if self.committed.load(Ordering::SeqCst) > through {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Tells waiters what the publish covered; returns the second of the
    /// newest Release Date (the next publish waits until it has passed).
    fn announce(
        &self,
        through: u64,
        result: Result<Vec<DistPublished>, String>,
        last_second: i64,
    ) -> i64 {
        match result {
            Ok(dists) => {
                for dist in &dists {
                    tracing::info!(dist = %dist.dist, generation = dist.generation, indices = dist.indices_written.len(), "published");
                }
                self.published.send_modify(|p| {
                    p.through = p.through.max(through);
                    p.error = None;
                });
                dists
                    .iter()
                    .map(|d| d.date)
                    .max()
                    .unwrap_or(last_second)
                    .max(last_second)
            }
            Err(error) => {
                self.published.send_modify(|p| {
                    p.failed_through = p.failed_through.max(through);
                    p.error = Some(error);
                });
                last_second
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Repository> {
        // A panic while holding it cannot leave the repository half-changed
        // (the catalog transaction rolls back), so a poisoned lock is usable.
        self.repo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sleeps until the wall clock is past `second` (Unix seconds).
async fn wait_for_next_second(second: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let next = Duration::from_secs(second.saturating_add(1).max(0) as u64);
    if let Some(left) = next.checked_sub(now) {
        tokio::time::sleep(left).await;
    }
}
