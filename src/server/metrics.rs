//! `/metrics`: counters in the Prometheus text format.
//!
//! Owns the counters and their rendering. Index sizes are read from the
//! served tree at scrape time, so they are never stale.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::Config;

#[derive(Default)]
pub struct Metrics {
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    publishes: AtomicU64,
    publish_failures: AtomicU64,
    publish_micros: AtomicU64,
    responses: Mutex<BTreeMap<u16, u64>>,
}

impl Metrics {
    pub fn uploaded(&self, bytes: u64) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// An upload refused, by a short reason such as `not-a-deb`.
    pub fn refused(&self, reason: &'static str) {
        *lock(&self.refusals).entry(reason).or_default() += 1;
    }

    pub fn published(&self, took: Duration, ok: bool) {
        if ok {
            self.publishes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.publish_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.publish_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn responded(&self, status: u16) {
        *lock(&self.responses).entry(status).or_default() += 1;
    }

    pub fn render(&self, config: &Config, public: &Path) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            &mut out,
            "repoctl_uploads_total",
            "Uploads accepted (committed to the catalog).",
            self.uploads.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "repoctl_upload_bytes_total",
            "Bytes of accepted uploads.",
            self.upload_bytes.load(Ordering::Relaxed),
        );
        out.push_str("# HELP repoctl_upload_refusals_total Uploads refused, by reason.\n# TYPE repoctl_upload_refusals_total counter\n");
        for (reason, count) in lock(&self.refusals).iter() {
            let _ = writeln!(
                out,
                "repoctl_upload_refusals_total{{reason=\"{reason}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "repoctl_publishes_total",
            "Publishes that completed.",
            self.publishes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "repoctl_publish_failures_total",
            "Publishes that failed (their commits stay queued).",
            self.publish_failures.load(Ordering::Relaxed),
        );
        let seconds = self.publish_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP repoctl_publish_seconds_total Time spent publishing.\n# TYPE repoctl_publish_seconds_total counter\nrepoctl_publish_seconds_total {seconds:.6}\n"
        );
        out.push_str("# HELP repoctl_http_responses_total HTTP responses, by status.\n# TYPE repoctl_http_responses_total counter\n");
        for (status, count) in lock(&self.responses).iter() {
            let _ = writeln!(
                out,
                "repoctl_http_responses_total{{status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP repoctl_index_bytes Size of each served index file.\n# TYPE repoctl_index_bytes gauge\n");
        for (labels, size) in index_sizes(config, public) {
            let _ = writeln!(out, "repoctl_index_bytes{{{labels}}} {size}");
        }
        out
    }
}

fn index_sizes(config: &Config, public: &Path) -> Vec<(String, u64)> {
    let repo = &config.repository;
    let mut sizes = Vec::new();
    for dist in &repo.dists {
        for component in &repo.components {
            for arch in &repo.architectures {
                let dir = public
                    .join("dists")
                    .join(dist)
                    .join(component)
                    .join(format!("binary-{arch}"));
                for file in ["Packages", "Packages.gz", "Packages.xz"] {
                    if let Ok(meta) = std::fs::metadata(dir.join(file)) {
                        sizes.push((
                            format!("dist=\"{dist}\",component=\"{component}\",architecture=\"{arch}\",file=\"{file}\""),
                            meta.len(),
                        ));
                    }
                }
            }
        }
    }
    sizes
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
