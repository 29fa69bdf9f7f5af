//! The scp/sftp drop zone: `incoming/<dist>/<component>/`, watched by
//! `repoctl watch` and by `repoctl serve`.
//!
//! Each file is taken exactly once, and only when complete:
//! 1. **Notice**: inotify (through `notify`) wakes the watcher; a scan at
//!    start and every `rescan_ms` catches what events miss.
//! 2. **Wait**: hidden files and `.part`/`.tmp`/`.filepart` names wait for
//!    their rename. A file is ready once no process has it open for writing
//!    (or, for writers that keep it open, once it has been unchanged for
//!    `settle_ms` and is a whole .deb). A closed file that is not a whole
//!    .deb is refused only after `settle_ms` unchanged.
//! 3. **Stage**: a ready file is renamed into `state/incoming/` (uploaders
//!    cannot write there), so nobody can swap it for a symlink afterwards,
//!    and a crash leaves it staged, to be finished at the next start.
//! 4. **Add**: staged files go through `Repository::add` like every door,
//!    then leave: accepted ones are deleted, refused ones move to
//!    `incoming/rejected/` with a `.reason` file. Re-adding a staged file
//!    after a crash is an unchanged no-op, so nothing is recorded twice.
//!
//! Owns the drop zone's files; never follows a symlink there.

mod files;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::Watcher as _;

use crate::config::{Config, Target};
use crate::repo::{error_chain, Actor, AddOptions, Door, RepoError, Repository};
use files::{Candidate, Look};

/// Where ready files wait for their add, under the repository root.
const STAGING_DIR: &str = "state/incoming";
const REJECTED_DIR: &str = "rejected";

pub struct Watcher {
    root: PathBuf,
    repo: Repository,
    config: Config,
    /// Files that waited in the last pass: look again soon.
    waiting: usize,
    /// Set until the first pass has published: a watcher killed between
    /// its commit and its publish left acknowledged files unpublished.
    publish_pending: bool,
    /// repoctl.toml's mtime when it was read: a new dist or component
    /// (and its incoming/ directory) is taken without a restart.
    config_time: Option<SystemTime>,
}

/// What one pass did (the tests and the log read it).
#[derive(Debug, Default)]
pub struct Pass {
    pub added: usize,
    pub rejected: usize,
    pub waiting: usize,
}

impl Watcher {
    pub fn open(root: &Path) -> Result<Watcher, RepoError> {
        let repo = Repository::open(root)?;
        // Every pass publishes: refuse at start, not at the first file.
        repo.check_signing_keys()?;
        // Canonical, so paths compare equal to what /proc/*/fd shows.
        let root = &root.canonicalize().map_err(|source| RepoError::Io {
            action: "cannot resolve",
            path: root.to_path_buf(),
            source,
        })?;
        let config = repo.config().clone();
        for dir in [STAGING_DIR.to_string(), format!("incoming/{REJECTED_DIR}")] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir).map_err(|source| RepoError::Io {
                action: "cannot create",
                path: dir,
                source,
            })?;
        }
        Ok(Watcher {
            root: root.to_path_buf(),
            repo,
            config,
            waiting: 0,
            publish_pending: true,
            config_time: config_time(root),
        })
    }

    fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }

    /// Watches until `stop` is set: a pass at start, after every burst of
    /// events, and every `rescan_ms`. A pass in progress always finishes.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(), RepoError> {
        let (events, wake) = mpsc::channel();
        let mut inotify = notify::recommended_watcher(move |event| {
            let _ = events.send(event);
        })
        .map_err(|e| self.watch_error(e))?;
        inotify
            .watch(&self.incoming(), notify::RecursiveMode::Recursive)
            .map_err(|e| self.watch_error(e))?;
        let rescan = Duration::from_millis(self.config.incoming.rescan_ms);
        let tick = Duration::from_millis(200).min(rescan);
        let mut last_pass = Instant::now() - rescan;
        while !stop.load(Ordering::SeqCst) {
            let woken = match wake.recv_timeout(tick) {
                Ok(_) => {
                    // A write is a burst of events: let it settle a moment.
                    std::thread::sleep(Duration::from_millis(50));
                    while wake.try_recv().is_ok() {}
                    true
                }
                Err(mpsc::RecvTimeoutError::Timeout) => false,
                Err(mpsc::RecvTimeoutError::Disconnected) => true,
            };
            let waiting = self.waiting > 0;
            if woken || last_pass.elapsed() >= rescan || (waiting && last_pass.elapsed() >= tick) {
                last_pass = Instant::now();
                match self.pass() {
                    Ok(pass) if pass.added + pass.rejected > 0 => {
                        tracing::info!(
                            added = pass.added,
                            rejected = pass.rejected,
                            waiting = pass.waiting,
                            "incoming"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %error_chain(&e), "incoming pass failed"),
                }
            }
        }
        Ok(())
    }

    fn watch_error(&self, e: notify::Error) -> RepoError {
        RepoError::Io {
            action: "cannot watch",
            path: self.incoming(),
            source: std::io::Error::other(e.to_string()),
        }
    }

    /// One pass: finish what a crash left staged, then look at every file
    /// of the drop zone and take the ready ones.
    pub fn pass(&mut self) -> Result<Pass, RepoError> {
        self.reload_if_changed()?;
        let mut pass = Pass::default();
        let mut staged = files::staged(&self.root.join(STAGING_DIR))?;
        let candidates = files::candidates(&self.incoming(), REJECTED_DIR)?;
        let writers = if candidates.is_empty() {
            Default::default()
        } else {
            files::open_for_writing(&self.incoming())
        };
        let now = SystemTime::now();
        let settle = Duration::from_millis(self.config.incoming.settle_ms);
        for candidate in candidates {
            match self.look(&candidate, &writers, now, settle) {
                Look::Wait => pass.waiting += 1,
                Look::Ready => match files::stage(&candidate, &self.root.join(STAGING_DIR)) {
                    Ok(path) => staged.push((candidate.target.clone(), path, candidate.uploader)),
                    Err((reason, at)) => {
                        self.reject(&at, &candidate.target, &reason, None)?;
                        pass.rejected += 1;
                    }
                },
                Look::Refuse(reason, hint) => {
                    self.reject(&candidate.path, &candidate.target, &reason, hint.as_deref())?;
                    pass.rejected += 1;
                }
            }
        }
        // One add per target and uploader, one publish for the pass.
        let mut groups: BTreeMap<(Target, String), Vec<PathBuf>> = BTreeMap::new();
        for (target, path, uploader) in staged {
            groups.entry((target, uploader)).or_default().push(path);
        }
        for ((target, uploader), paths) in groups {
            let (added, rejected) = self.add_staged(&target, &paths, &uploader)?;
            pass.added += added;
            pass.rejected += rejected;
        }
        if pass.added > 0 || self.publish_pending {
            self.repo.publish(false, Door::Incoming)?;
            self.publish_pending = false;
        }
        self.waiting = pass.waiting;
        Ok(pass)
    }

    fn reload_if_changed(&mut self) -> Result<(), RepoError> {
        let now = config_time(&self.root);
        if now != self.config_time {
            self.repo = Repository::open(&self.root)?;
            self.config = self.repo.config().clone();
            self.config_time = now;
            tracing::info!("incoming: repoctl.toml changed, reloaded");
        }
        Ok(())
    }

    /// Decides what to do with a file now. "Settled" is read from the
    /// file's mtime, so it holds across restarts and for `watch --once`.
    fn look(
        &self,
        candidate: &Candidate,
        writers: &HashSet<PathBuf>,
        now: SystemTime,
        settle: Duration,
    ) -> Look {
        if let Some(problem) = candidate.problem.clone() {
            return Look::Refuse(problem.0, Some(problem.1));
        }
        let target = &candidate.target;
        if !self.config.has_target(&target.dist, &target.component) {
            let repo = &self.config.repository;
            return Look::Refuse(
                format!("{target} is not a target of this repository"),
                Some(format!(
                    "upload into incoming/<dist>/<component>/ with dists {} and components {}",
                    repo.dists.join(", "),
                    repo.components.join(", ")
                )),
            );
        }
        let settled = now
            .duration_since(candidate.mtime)
            .is_ok_and(|age| age >= settle);
        let open = writers.contains(&candidate.path);
        if open && !settled {
            return Look::Wait;
        }
        match files::check_deb(&candidate.path, &self.config) {
            Ok(()) => Look::Ready,
            // Still being written, or about to be: give it time.
            Err(_) if open || !settled => Look::Wait,
            Err(e) => Look::Refuse(error_chain(&e), e.hint()),
        }
    }

    /// Adds staged files; accepted ones leave, refused ones move to
    /// rejected/. A failure of the repository itself (not of a file) leaves
    /// them all staged for the next pass.
    fn add_staged(
        &mut self,
        target: &Target,
        paths: &[PathBuf],
        uploader: &str,
    ) -> Result<(usize, usize), RepoError> {
        let actor = Actor {
            door: Door::Incoming,
            name: uploader.to_string(),
        };
        let options = AddOptions {
            publish: false,
            keep_going: true,
        };
        let report = match self.repo.add(paths, target, &actor, &options) {
            Ok(report) => report,
            Err(e) if is_about_the_file(&e) => {
                for path in paths {
                    self.reject(path, target, &error_chain(&e), e.hint().as_deref())?;
                }
                return Ok((0, paths.len()));
            }
            Err(e) => return Err(e),
        };
        // Committed (acknowledged): only now do the files leave.
        for added in &report.files {
            let _ = std::fs::remove_file(&added.path);
        }
        for refused in &report.refused {
            self.reject(
                &refused.path,
                target,
                &refused.error,
                refused.hint.as_deref(),
            )?;
        }
        Ok((report.files.len(), report.refused.len()))
    }

    fn reject(
        &self,
        path: &Path,
        target: &Target,
        error: &str,
        hint: Option<&str>,
    ) -> Result<(), RepoError> {
        let rejected = self.incoming().join(REJECTED_DIR);
        let shown = path.strip_prefix(&self.root).unwrap_or(path);
        tracing::warn!(file = %shown.display(), %error, "incoming file refused");
        files::reject(path, &rejected, target, error, hint).map_err(|source| RepoError::Io {
            action: "cannot move a refused file into",
            path: rejected,
            source,
        })
    }
}

/// Runs a watcher on its own thread until `stop` is set.
pub fn spawn(root: &Path, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>, RepoError> {
    let watcher = Watcher::open(root)?;
    Ok(std::thread::spawn(move || {
        if let Err(e) = watcher.run(&stop) {
            tracing::error!(error = %error_chain(&e), "the incoming watcher stopped");
        }
    }))
}

/// Whether an add failed because of the file (refuse it) rather than the
/// repository (keep it staged and try again).
fn is_about_the_file(e: &RepoError) -> bool {
    matches!(
        e,
        RepoError::Deb(_)
            | RepoError::Policy(_)
            | RepoError::Conflict { .. }
            | RepoError::VersionAlias { .. }
            | RepoError::UnknownTarget { .. }
    )
}

fn config_time(root: &Path) -> Option<SystemTime> {
    std::fs::metadata(root.join(crate::config::FILE_NAME))
        .and_then(|m| m.modified())
        .ok()
}
