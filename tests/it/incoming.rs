//! The scp/sftp drop zone with the real OpenSSH server and clients: every
//! complete file taken exactly once, incomplete ones waited for, bad ones
//! moved to rejected/ with a reason, symlinks never followed, and SIGKILL
//! at any moment losing nothing and doubling nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A repository whose watcher looks every 200 ms and settles after 1 s.
fn quick_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.edit_config("rescan_ms = 5000", "rescan_ms = 200");
    repo.edit_config("settle_ms = 5000", "settle_ms = 1000");
    repo
}

fn drop_dir(repo: &TestRepo) -> PathBuf {
    repo.root().join("incoming").join("trusty").join("dev")
}

fn rejected(repo: &TestRepo) -> PathBuf {
    repo.root().join("incoming").join("rejected")
}

/// `repoctl watch`, killed on drop.
struct Watch(Child);

impl Watch {
    fn start(root: &Path) -> Watch {
        let child = repoctl(root)
            .arg("watch")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("repoctl watch starts");
        Watch(child)
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `done` for up to a minute.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How many times the history records an add of vrmd-whois `version`.
fn adds_of(repo: &TestRepo, version: &str) -> usize {
    let conn = rusqlite::Connection::open(repo.root().join("state/catalog.sqlite")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM history WHERE action = 'add' AND package = 'vrmd-whois' AND version = ?1",
        [version],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as usize
}

fn published(repo: &TestRepo, version: &str) -> bool {
    index_text(&repo.public(), "trusty", "dev", "amd64")
        .contains(&format!("\nVersion: {version}\n"))
}

/// A throwaway OpenSSH server on 127.0.0.1 that lets the current user in
/// with a throwaway key.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "client_key"] {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(path(key)),
            );
        }
        std::fs::copy(path("client_key.pub"), path("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\nAuthorizedKeysFile {keys}\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\n",
            host = path("host_key").display(),
            pid = path("sshd.pid").display(),
            keys = path("authorized_keys").display(),
        );
        std::fs::write(path("sshd_config"), config).unwrap();
        // sshd's privilege separation directory (the Debian service makes it).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(path("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/sbin/sshd starts (openssh-server)");
        eventually("sshd listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Sshd { dir, port, child }
    }

    fn client_args(&self, port_flag: &str) -> Vec<String> {
        vec![
            "-i".into(),
            self.dir.path().join("client_key").display().to_string(),
            port_flag.into(),
            self.port.to_string(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
        ]
    }

    fn user() -> String {
        stdout(&run_ok(Command::new("id").arg("-un")))
            .trim()
            .to_string()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn packages_uploaded_with_scp_and_sftp_are_published_and_apt_lists_them() {
    let repo = quick_repo();
    let debs = repo.whois_versions(&["1", "2", "3", "4"]);
    let sshd = Sshd::start();
    let server = Server::start(&repo.root());
    let remote = format!("{}@127.0.0.1:{}/", Sshd::user(), drop_dir(&repo).display());

    // scp over the SFTP protocol (OpenSSH's default), and the legacy protocol.
    for (deb, legacy) in [(&debs[0], false), (&debs[1], false), (&debs[2], true)] {
        let mut scp = Command::new("scp");
        scp.args(sshd.client_args("-P"));
        if legacy {
            scp.arg("-O");
        }
        run_ok(scp.arg(deb).arg(&remote));
    }
    let batch = repo.work().join("sftp-batch");
    std::fs::write(
        &batch,
        format!(
            "cd {}\nput {}\n",
            drop_dir(&repo).display(),
            debs[3].display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new("sftp")
            .args(sshd.client_args("-P"))
            .arg("-b")
            .arg(&batch)
            .arg(format!("{}@127.0.0.1", Sshd::user())),
    );

    eventually("all four published", || {
        ["1", "2", "3", "4"].iter().all(|v| published(&repo, v))
    });
    eventually("incoming emptied", || files_in(&drop_dir(&repo)).is_empty());
    assert!(
        files_in(&rejected(&repo)).is_empty(),
        "{:?}",
        files_in(&rejected(&repo))
    );
    let (ok, log) = apt_check(
        &server.url,
        &repo.public().join("key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &[
            "--expect",
            "vrmd-whois=1",
            "--expect",
            "vrmd-whois=3",
            "--expect-candidate",
            "vrmd-whois=4",
        ],
    );
    assert!(ok, "{log}");
    for version in ["1", "2", "3", "4"] {
        assert_eq!(adds_of(&repo, version), 1, "version {version}");
    }
    let conn = rusqlite::Connection::open(repo.root().join("state/catalog.sqlite")).unwrap();
    let door: String = conn
        .query_row(
            "SELECT door FROM history WHERE action = 'add' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(door, "incoming");
}

#[test]
fn a_slow_writer_is_taken_once_after_it_is_complete() {
    let repo = quick_repo();
    let deb = std::fs::read(&repo.whois_versions(&["7"])[0]).unwrap();
    let _watch = Watch::start(&repo.root());
    let path = drop_dir(&repo).join("vrmd-whois_7_all.deb");
    let mut file = std::fs::File::create(&path).unwrap();
    // Pauses longer than the rescan interval and the settle time, with the
    // file open all along, as scp keeps it.
    let chunks: Vec<&[u8]> = deb.chunks(deb.len().div_ceil(3)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1500));
            assert!(path.exists(), "taken while still being written");
            assert!(
                files_in(&rejected(&repo)).is_empty(),
                "refused while still being written"
            );
        }
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
    }
    drop(file);
    eventually("published", || published(&repo, "7"));
    eventually("taken", || !path.exists());
    assert_eq!(adds_of(&repo, "7"), 1);
    assert!(files_in(&rejected(&repo)).is_empty());
}

#[test]
fn an_rsync_style_temporary_name_is_taken_once_after_the_rename() {
    let repo = quick_repo();
    let deb = &repo.whois_versions(&["8"])[0];
    let _watch = Watch::start(&repo.root());
    let temporary = drop_dir(&repo).join(".vrmd-whois_8_all.deb.Xy12Ab");
    std::fs::copy(deb, &temporary).unwrap();
    // Complete and closed, but under its temporary name: it waits.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(temporary.exists());
    assert!(!published(&repo, "8"));
    let part = drop_dir(&repo).join("vrmd-whois_8_all.deb.part");
    std::fs::rename(&temporary, &part).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(part.exists(), ".part waits too");
    std::fs::rename(&part, drop_dir(&repo).join("vrmd-whois_8_all.deb")).unwrap();
    eventually("published", || published(&repo, "8"));
    eventually("incoming emptied", || files_in(&drop_dir(&repo)).is_empty());
    assert_eq!(adds_of(&repo, "8"), 1);
}

#[test]
fn a_hundred_files_at_once_are_each_published_or_rejected_once() {
    let repo = quick_repo();
    let versions: Vec<String> = (1..=90).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    let debs = repo.whois_versions(&refs);
    let staging = repo.work().join("drop");
    std::fs::create_dir_all(&staging).unwrap();
    for (i, deb) in debs.iter().enumerate() {
        std::fs::copy(deb, staging.join(format!("vrmd-whois_{}_all.deb", i + 1))).unwrap();
    }
    for n in 0..10 {
        std::fs::write(
            staging.join(format!("broken-{n}.deb")),
            format!("not a package {n}\n"),
        )
        .unwrap();
    }
    let _watch = Watch::start(&repo.root());
    // Dropped at once: renamed in, as fast as the loop goes.
    for name in files_in(&staging) {
        std::fs::rename(staging.join(&name), drop_dir(&repo).join(&name)).unwrap();
    }
    eventually("incoming emptied", || files_in(&drop_dir(&repo)).is_empty());
    eventually("all published", || {
        versions.iter().all(|v| published(&repo, v))
    });
    for version in &versions {
        assert_eq!(adds_of(&repo, version), 1, "version {version}");
    }
    let rejected_files = files_in(&rejected(&repo));
    for n in 0..10 {
        let name = format!("broken-{n}.deb");
        assert!(rejected_files.contains(&name), "{rejected_files:?}");
        let reason =
            std::fs::read_to_string(rejected(&repo).join(format!("{name}.reason"))).unwrap();
        assert!(reason.contains("not a Debian package"), "{reason}");
        let json: serde_json::Value = serde_json::from_str(reason.lines().last().unwrap()).unwrap();
        assert_eq!(json["file"], name);
        assert!(json["hint"].is_string() || json["hint"].is_null());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(rejected(&repo).join(format!("{name}.reason")))
                .unwrap()
                .permissions(),
        );
        assert_eq!(
            mode & 0o040,
            0o040,
            "the uploaders' group cannot read the reason"
        );
    }
    assert_eq!(rejected_files.len(), 20, "{rejected_files:?}");
}

#[test]
fn a_rejected_name_never_overwrites_an_earlier_reject() {
    let repo = quick_repo();
    for round in 0..3 {
        std::fs::write(
            drop_dir(&repo).join("same.deb"),
            format!("broken {round}\n"),
        )
        .unwrap();
        run_ok(repo.cmd().args(["watch", "--once"]));
        std::thread::sleep(Duration::from_millis(1100));
        run_ok(repo.cmd().args(["watch", "--once"]));
    }
    let names = files_in(&rejected(&repo));
    assert_eq!(
        names,
        [
            "same.deb",
            "same.deb.1",
            "same.deb.1.reason",
            "same.deb.2",
            "same.deb.2.reason",
            "same.deb.reason"
        ]
    );
    let contents: Vec<String> = ["same.deb", "same.deb.1", "same.deb.2"]
        .iter()
        .map(|n| std::fs::read_to_string(rejected(&repo).join(n)).unwrap())
        .collect();
    assert_eq!(contents, ["broken 0\n", "broken 1\n", "broken 2\n"]);
}

#[test]
fn sigkill_while_files_wait_and_while_one_is_ingested_loses_and_doubles_nothing() {
    let repo = quick_repo();
    let versions: Vec<String> = (1..=96).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    let debs = repo.whois_versions(&refs);
    let staged_files = || {
        walkdir::WalkDir::new(repo.root().join("state/incoming"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .count()
    };
    // Each round drops 8 files and kills the watcher after a longer while:
    // before it looked, while it stages, adds or publishes.
    let mut killed_mid_ingest = 0;
    for (round, batch) in debs.chunks(8).enumerate() {
        for deb in batch {
            let name = deb.file_name().unwrap();
            std::fs::copy(deb, drop_dir(&repo).join(name)).unwrap();
        }
        let watch = Watch::start(&repo.root());
        std::thread::sleep(Duration::from_millis(40 + 70 * round as u64));
        watch.kill();
        // Taken but not added, or added but not published: mid-ingest.
        let committed_unpublished = versions
            .iter()
            .any(|v| adds_of(&repo, v) == 1 && !published(&repo, v));
        if staged_files() > 0 || committed_unpublished {
            killed_mid_ingest += 1;
        }
    }
    eprintln!("{killed_mid_ingest} of 12 kills hit files taken but not yet finished");
    let _watch = Watch::start(&repo.root());
    eventually("incoming emptied", || files_in(&drop_dir(&repo)).is_empty());
    eventually("staging emptied", || staged_files() == 0);
    eventually("all published", || {
        versions.iter().all(|v| published(&repo, v))
    });
    for version in &versions {
        assert_eq!(adds_of(&repo, version), 1, "version {version}");
    }
    assert!(
        files_in(&rejected(&repo)).is_empty(),
        "{:?}",
        files_in(&rejected(&repo))
    );
    check_served_tree(
        &repo.public(),
        &["precise", "trusty"],
        &repo.public().join("key.asc"),
    )
    .unwrap();
    assert!(
        killed_mid_ingest > 0,
        "no kill landed while files were being ingested"
    );
}

#[test]
fn a_symlink_to_etc_passwd_is_refused_and_its_target_untouched() {
    let repo = quick_repo();
    let before = std::fs::read("/etc/passwd").unwrap();
    let evil = drop_dir(&repo).join("evil.deb");
    std::os::unix::fs::symlink("/etc/passwd", &evil).unwrap();
    run_ok(repo.cmd().args(["watch", "--once"]));
    assert!(
        std::fs::symlink_metadata(&evil).is_err(),
        "the link is still in incoming/"
    );
    let kept = rejected(&repo).join("evil.deb");
    assert!(std::fs::symlink_metadata(&kept)
        .unwrap()
        .file_type()
        .is_symlink());
    let reason = std::fs::read_to_string(rejected(&repo).join("evil.deb.reason")).unwrap();
    assert!(reason.contains("symbolic link"), "{reason}");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), before);
    assert!(std::fs::symlink_metadata("/etc/passwd")
        .unwrap()
        .file_type()
        .is_file());
}

#[test]
fn a_target_added_while_the_watcher_runs_is_watched_too() {
    let repo = quick_repo();
    let deb = &repo.whois_versions(&["9"])[0];
    let _watch = Watch::start(&repo.root());
    std::thread::sleep(Duration::from_millis(500));
    // An operator adds the component `qa`, then its incoming directory.
    repo.edit_config("    \"dev\",\n]", "    \"dev\",\n    \"qa\",\n]");
    let qa = repo.root().join("incoming").join("trusty").join("qa");
    std::fs::create_dir_all(&qa).unwrap();
    std::fs::copy(deb, qa.join("vrmd-whois_9_all.deb")).unwrap();
    eventually("published in trusty/qa", || {
        repo.public()
            .join("dists/trusty/qa/binary-amd64/Packages.xz")
            .exists()
            && index_text(&repo.public(), "trusty", "qa", "amd64").contains("\nVersion: 9\n")
    });
    assert!(
        files_in(&rejected(&repo)).is_empty(),
        "{:?}",
        files_in(&rejected(&repo))
    );
}
