//! Fault injection: `repoctl serve` is killed with SIGKILL at random moments
//! while clients upload, copy, prune and roll back over HTTP, and restarted.
//!
//! The promise under test: what the server acknowledged is never lost, no
//! operation is half-applied, and the tree on disk is complete and signed at
//! every kill point. The quick run (CI) makes [`QUICK_KILLS`] kill points;
//! the long run for the README's figures:
//!
//! ```sh
//! REPOCTL_FAULT_KILLS=200 cargo test --test it faults -- --nocapture
//! ```
//!
//! Who does what, so every expectation is exact:
//! - two uploaders put fresh versions of `vrmd-whois` into trusty/dev, each
//!   waiting for the publish (`?wait=published`): an acknowledged upload is
//!   in the index from then on;
//! - an operator copies acknowledged versions to precise/dev, and churns
//!   `vrmd-churn` in trusty/main (upload, prune to 2, roll back) against a
//!   model of what must be listed. After an answered operation the index
//!   must equal the model; after one the kill cut off, it must equal the
//!   state before or after the operation, nothing in between.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::{
    apt_check, check_served_tree, curl, index_text, repoctl, run_ok, served_snapshot, upload,
    whois_debs, Deb, Server, SmallDisk, TestRepo,
};

const QUICK_KILLS: usize = 10;
const DISTS: [&str; 2] = ["trusty", "precise"];

/// Versions listed for `name` in one index (architecture `all` packages
/// are in every binary-* index; amd64 is read).
fn listed(public: &Path, dist: &str, component: &str, name: &str) -> BTreeSet<u64> {
    let text = index_text(public, dist, component, "amd64");
    text.split("\n\n")
        .filter(|p| p.starts_with(&format!("Package: {name}\n")))
        .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")))
        .map(|v| v.parse().expect("integer versions"))
        .collect()
}

/// What the run saw; printed at the end, and the test's verdict.
#[derive(Default)]
struct Tally {
    kills: AtomicUsize,
    acknowledged: AtomicUsize,
    unanswered: AtomicUsize,
    problems: Mutex<Vec<String>>,
    inconsistent_trees: AtomicUsize,
}

impl Tally {
    fn problem(&self, what: String) {
        eprintln!("faults: {what}");
        self.problems.lock().unwrap().push(what);
    }
}

/// The clients' shared view: where the server is now, what was acknowledged.
struct Shared {
    repo: TestRepo,
    token: String,
    url: RwLock<String>,
    stop: AtomicBool,
    uploaded: Mutex<BTreeSet<u64>>,
    copied: Mutex<BTreeSet<u64>>,
    tally: Tally,
}

impl Shared {
    fn url(&self) -> String {
        self.url.read().unwrap().clone()
    }

    fn deb(&self, name: &str, version: u64) -> PathBuf {
        let version = version.to_string();
        Deb {
            name,
            version: &version,
            payload: &version,
            ..Deb::default()
        }
        .build(&self.repo.work())
    }

    /// POST /api/v1/operations/{action}; true when answered with success.
    fn operate(&self, action: &str, body: serde_json::Value) -> Option<bool> {
        let auth = format!("Authorization: Bearer {}", self.token);
        let url = format!("{}api/v1/operations/{action}", self.url());
        let answer = curl(
            &[
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ],
            &url,
        );
        self.answered(answer.status, &format!("{action} {body}: {}", answer.body))
    }

    /// Sorts an HTTP status: 2xx acknowledged, 0 cut off by a kill (None),
    /// anything else a refusal the run never provokes.
    fn answered(&self, status: u16, what: &str) -> Option<bool> {
        match status {
            200..=299 => {
                self.tally.acknowledged.fetch_add(1, SeqCst);
                Some(true)
            }
            // No final answer: curl saw no status, or only `100 Continue`.
            0..=199 => {
                self.tally.unanswered.fetch_add(1, SeqCst);
                None
            }
            _ => {
                self.tally.problem(format!("refused with {status}: {what}"));
                Some(false)
            }
        }
    }

    /// Waits until the server answers /healthz again (it is being restarted).
    fn wait_for_server(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if curl(&["--max-time", "2"], &format!("{}healthz", self.url())).status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not come back within 60 s");
    }
}

/// Uploads fresh versions to trusty/dev until told to stop.
fn uploader(shared: &Shared, first: u64) {
    let mut version = first;
    while !shared.stop.load(SeqCst) {
        let deb = shared.deb("vrmd-whois", version);
        let answer = upload(
            &shared.url(),
            "trusty/dev",
            &shared.token,
            &deb,
            "?wait=published",
        );
        let what = format!("upload vrmd-whois {version}: {}", answer.body);
        match shared.answered(answer.status, &what) {
            Some(true) => {
                shared.uploaded.lock().unwrap().insert(version);
            }
            Some(false) => {}
            None => shared.wait_for_server(),
        }
        version += 1;
    }
}

/// The churn of `vrmd-churn` in trusty/main, checked against its model.
struct Churn<'a> {
    shared: &'a Shared,
    model: BTreeSet<u64>,
    next: u64,
}

impl Churn<'_> {
    fn index(&self) -> BTreeSet<u64> {
        listed(&self.shared.repo.public(), "trusty", "main", "vrmd-churn")
    }

    /// One operation and its expected effect on the listed versions.
    fn step(&mut self, round: usize) {
        let expected: BTreeSet<u64>;
        let answered = match round % 4 {
            0 | 1 => {
                self.next += 1;
                let deb = self.shared.deb("vrmd-churn", self.next);
                let url = self.shared.url();
                let answer = upload(
                    &url,
                    "trusty/main",
                    &self.shared.token,
                    &deb,
                    "?wait=published",
                );
                let what = format!("upload vrmd-churn {}: {}", self.next, answer.body);
                expected = self.model.iter().copied().chain([self.next]).collect();
                self.shared.answered(answer.status, &what)
            }
            2 if self.model.len() > 2 => {
                let body = serde_json::json!({"package": "vrmd-churn", "dist": "trusty", "component": "main", "keep": 2});
                expected = self.model.iter().rev().take(2).copied().collect();
                self.shared.operate("prune", body)
            }
            3 if self.model.len() > 1 => {
                let body = serde_json::json!({"package": "vrmd-churn", "from": "trusty/main"});
                let newest = *self.model.last().unwrap();
                expected = self
                    .model
                    .iter()
                    .copied()
                    .filter(|v| *v != newest)
                    .collect();
                self.shared.operate("rollback", body)
            }
            _ => return,
        };
        match answered {
            Some(true) => {
                let index = self.index();
                if index != expected {
                    self.shared.tally.problem(format!(
                        "churn: acknowledged, but the index lists {index:?}, not {expected:?}"
                    ));
                }
                self.model = expected;
            }
            Some(false) => {}
            None => {
                self.shared.wait_for_server();
                let index = self.settled_index();
                if index != self.model && index != expected {
                    self.shared.tally.problem(format!(
                        "churn: cut off, and the index lists {index:?}: neither before {:?} nor after {expected:?}",
                        self.model
                    ));
                }
                self.model = index;
            }
        }
    }

    /// The index once the restarted server has published what was committed
    /// before the kill (it publishes every dirty dist at start).
    fn settled_index(&self) -> BTreeSet<u64> {
        let start = Instant::now();
        loop {
            let index = self.index();
            let catalog = self.catalog();
            if Some(&index) == catalog.as_ref() || start.elapsed() > Duration::from_secs(20) {
                return index;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn catalog(&self) -> Option<BTreeSet<u64>> {
        let auth = format!("Authorization: Bearer {}", self.shared.token);
        let url = format!(
            "{}api/v1/dists/trusty/components/main/packages",
            self.shared.url()
        );
        let answer = curl(&["-H", &auth], &url);
        (answer.status == 200).then(|| {
            let packages = answer.json();
            let churn = packages
                .as_array()?
                .iter()
                .find(|p| p["package"] == "vrmd-churn")?;
            churn["versions"]
                .as_array()?
                .iter()
                .map(|v| v.as_str()?.parse().ok())
                .collect()
        })?
    }
}

/// Copies acknowledged uploads to precise/dev and churns trusty/main.
fn operator(shared: &Shared) {
    let mut churn = Churn {
        shared,
        model: BTreeSet::new(),
        next: 0,
    };
    let mut round = 0;
    while !shared.stop.load(SeqCst) {
        churn.step(round);
        round += 1;
        let uncopied = {
            let copied = shared.copied.lock().unwrap();
            let uploaded = shared.uploaded.lock().unwrap();
            uploaded.difference(&copied).next().copied()
        };
        let Some(version) = uncopied else { continue };
        let body = serde_json::json!({"spec": format!("vrmd-whois={version}"), "from": "trusty/dev", "to": "precise/dev"});
        match shared.operate("copy", body) {
            Some(true) => {
                shared.copied.lock().unwrap().insert(version);
            }
            Some(false) => {}
            None => shared.wait_for_server(),
        }
    }
}

/// Checks the tree a kill left behind: complete and signed, and holding
/// every acknowledged upload and copy.
fn check_after_kill(shared: &Shared, key: &Path) {
    let public = shared.repo.public();
    // Read the acknowledgements first: each was answered before the kill.
    let uploaded = shared.uploaded.lock().unwrap().clone();
    let copied = shared.copied.lock().unwrap().clone();
    let mut bad = Vec::new();
    if let Err(problem) = check_served_tree(&public, &DISTS, key) {
        bad.push(problem);
    }
    for (dist, acknowledged) in [("trusty", &uploaded), ("precise", &copied)] {
        let index = listed(&public, dist, "dev", "vrmd-whois");
        let lost: Vec<_> = acknowledged.difference(&index).collect();
        if !lost.is_empty() {
            bad.push(format!("{dist}/dev lost acknowledged versions {lost:?}"));
        }
    }
    if !bad.is_empty() {
        shared.tally.inconsistent_trees.fetch_add(1, SeqCst);
        shared.tally.problem(bad.join("; "));
    }
}

/// `repoctl verify` on the stopped repository. The one finding a kill may
/// leave is a pool file of an upload it cut off between the pool file's
/// rename and the catalog commit: in no index and no catalog row, so apt
/// never sees it, and a retried upload replaces it. Returns how many; any
/// other finding is a problem.
fn verify_allowing_leftovers(shared: &Shared) -> usize {
    let out = shared.repo.cmd().arg("verify").output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let uploaded = shared.uploaded.lock().unwrap();
    let mut leftovers = 0;
    for line in text.lines().filter(|l| l.starts_with("problem: ")) {
        let acknowledged = uploaded
            .iter()
            .any(|v| line.contains(&format!("/vrmd-whois_{v}_all.deb:")));
        if line.contains("no catalog row names it") && !acknowledged {
            leftovers += 1;
        } else {
            shared.tally.problem(format!("verify: {line}"));
        }
    }
    if !out.status.success() && leftovers == 0 {
        shared.tally.problem(format!("verify failed:\n{text}"));
    }
    leftovers
}

#[test]
fn sigkill_during_uploads_copies_prunes_and_rollbacks_loses_nothing() {
    let kills: usize = std::env::var("REPOCTL_FAULT_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(QUICK_KILLS);
    let repo = TestRepo::new();
    let token = repo.token(
        "faults",
        &[
            "--upload",
            "trusty/dev,trusty/main,precise/dev",
            "--operator",
        ],
    );
    let key = repo.public().join("key.asc");
    let server = Server::start(&repo.root());
    let shared = Arc::new(Shared {
        url: RwLock::new(server.url.clone()),
        repo,
        token,
        stop: AtomicBool::new(false),
        uploaded: Mutex::new(BTreeSet::new()),
        copied: Mutex::new(BTreeSet::new()),
        tally: Tally::default(),
    });
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xfa175);
    let mut server = Some(server);
    std::thread::scope(|scope| {
        let clients = [
            scope.spawn(|| uploader(&shared, 1_000_000)),
            scope.spawn(|| uploader(&shared, 2_000_000)),
            scope.spawn(|| operator(&shared)),
        ];
        for _ in 0..kills {
            std::thread::sleep(Duration::from_millis(rng.gen_range(500..3000)));
            drop(server.take()); // SIGKILL, then wait for the exit
            shared.tally.kills.fetch_add(1, SeqCst);
            check_after_kill(&shared, &key);
            let restarted = Server::start(&shared.repo.root());
            *shared.url.write().unwrap() = restarted.url.clone();
            server = Some(restarted);
        }
        shared.stop.store(true, SeqCst);
        for client in clients {
            client.join().expect("client thread");
        }
    });

    // The end state, with nothing running: the repository's own check, and
    // every acknowledged upload and copy in the catalog too.
    let server = server.take().expect("running");
    let settled = Churn {
        shared: &shared,
        model: BTreeSet::new(),
        next: 0,
    }
    .settled_index();
    assert!(server.terminate().success());
    check_after_kill(&shared, &key);
    let leftovers = verify_allowing_leftovers(&shared);
    for (dist, acknowledged) in [("trusty", &shared.uploaded), ("precise", &shared.copied)] {
        let out = run_ok(
            shared
                .repo
                .cmd()
                .args(["list", "vrmd-whois", "--dist", dist, "--json"]),
        );
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = rows.to_string();
        for version in acknowledged.lock().unwrap().iter() {
            if !text.contains(&format!("\"{version}\"")) {
                shared
                    .tally
                    .problem(format!("{dist}: acknowledged {version} not in the catalog"));
            }
        }
    }
    let server = Server::start(&shared.repo.root());
    for dist in DISTS {
        let (ok, log) = apt_check(&server.url, &key, dist, "main dev", "amd64", &[]);
        if !ok {
            shared.tally.problem(format!("apt refuses {dist}:\n{log}"));
        }
    }

    let t = &shared.tally;
    let problems = t.problems.lock().unwrap();
    eprintln!(
        "fault injection: {} kill points in {:.0} s; {} operations acknowledged ({} uploads to trusty/dev, {} copies, the rest churn), {} cut off by a kill; operations lost or half-applied: {}; inconsistent trees seen: {}; pool files left by cut-off uploads: {leftovers}; vrmd-churn ends as {settled:?}",
        t.kills.load(SeqCst),
        started.elapsed().as_secs_f64(),
        t.acknowledged.load(SeqCst),
        shared.uploaded.lock().unwrap().len(),
        shared.copied.lock().unwrap().len(),
        t.unanswered.load(SeqCst),
        problems.len() - t.inconsistent_trees.load(SeqCst),
        t.inconsistent_trees.load(SeqCst),
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        shared.uploaded.lock().unwrap().len() >= kills / 4,
        "too few uploads were acknowledged to mean anything"
    );
}

#[test]
fn a_publish_on_a_full_disk_fails_leaving_the_served_tree_and_recovers_without_repair() {
    let Some(disk) = SmallDisk::mount(8) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let root = disk.repo();
    let work = tempfile::tempdir().unwrap();
    let debs = whois_debs(work.path(), &["1", "2"]);
    run_ok(
        repoctl(&root)
            .args(["add", "--dist", "trusty", "--component", "dev"])
            .arg(&debs[0]),
    );
    run_ok(
        repoctl(&root)
            .args([
                "add",
                "--no-publish",
                "--dist",
                "trusty",
                "--component",
                "dev",
            ])
            .arg(&debs[1]),
    );
    let key = root.join("public").join("key.asc");
    let before = served_snapshot(&root);

    let filler = disk.fill();
    let out = repoctl(&root).arg("publish").output().unwrap();
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "publish on a full disk succeeded");
    eprintln!("publish on a full disk: {message}");
    assert!(message.contains("space"), "{message}");
    assert_eq!(
        served_snapshot(&root),
        before,
        "a failed publish changed the served tree"
    );
    check_served_tree(&root.join("public"), &DISTS, &key).unwrap();

    std::fs::remove_file(filler).unwrap();
    run_ok(repoctl(&root).arg("publish"));
    run_ok(repoctl(&root).arg("verify"));
    check_served_tree(&root.join("public"), &DISTS, &key).unwrap();
    let listed = listed(&root.join("public"), "trusty", "dev", "vrmd-whois");
    assert_eq!(listed, BTreeSet::from([1, 2]));
}
