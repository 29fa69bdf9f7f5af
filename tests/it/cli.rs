//! What an operator sees: init's layout, idempotent adds, publishing only
//! what changed, Release dates that never go back, identity that never
//! changes, and a catalog that can be rebuilt from disk.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{check_served_tree, run_ok, snapshot, stderr, stdout, Deb, TestRepo};

fn served_date(public: &Path, dist: &str) -> String {
    let release = std::fs::read_to_string(public.join("dists").join(dist).join("Release")).unwrap();
    release
        .lines()
        .find(|l| l.starts_with("Date: "))
        .unwrap()
        .to_string()
}

fn generation(public: &Path, dist: &str) -> String {
    std::fs::read_link(public.join("dists").join(dist))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn init_creates_the_documented_layout_and_a_valid_empty_tree() {
    let repo = TestRepo::new();
    let root = repo.root();
    let key = root.join("keys").join("signing-key.asc");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(root.join("keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(std::fs::read_to_string(root.join("public/key.asc"))
        .unwrap()
        .contains("BEGIN PGP PUBLIC KEY BLOCK"));
    for dist in ["precise", "trusty"] {
        for component in ["main", "dev"] {
            assert!(root.join("incoming").join(dist).join(component).is_dir());
        }
    }
    assert!(root.join("incoming/rejected").is_dir());
    let config = std::fs::read_to_string(root.join("repoctl.toml")).unwrap();
    assert!(
        config.contains("dists = [\n    \"precise\",\n    \"trusty\",\n]"),
        "{config}"
    );
    check_served_tree(
        &repo.public(),
        &["precise", "trusty"],
        &repo.public().join("key.asc"),
    )
    .unwrap();
    let release = std::fs::read_to_string(repo.public().join("dists/trusty/Release")).unwrap();
    for line in [
        "Origin: repoctl",
        "Suite: trusty",
        "Codename: trusty",
        "Architectures: amd64 i386",
        "Components: main dev",
        "Acquire-By-Hash: yes",
    ] {
        assert!(release.contains(line), "{line} missing:\n{release}");
    }
    assert!(
        release.contains(" main/binary-i386/Packages\n"),
        "{release}"
    );

    let again = repo
        .cmd()
        .arg("init")
        .arg("--import-key")
        .arg(crate::support::fixture("test-signing-key.asc"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds a repository"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn readding_identical_bytes_is_a_noop_that_says_so() {
    let repo = TestRepo::new();
    let deb = Deb::default().build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    let before = snapshot(&repo.root());
    let out = repo.add("trusty", "dev", &[&deb]);
    assert!(
        stdout(&out).contains("unchanged (already there with the same bytes)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn the_same_file_in_another_target_shares_its_pool_file() {
    let repo = TestRepo::new();
    let deb = Deb::default().build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    let out = repo.add("precise", "main", &[&deb]);
    assert!(
        stdout(&out).contains("pool file shared"),
        "{}",
        stdout(&out)
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&run_ok(repo.cmd().args(["list", "--json"])).stdout).unwrap();
    let files: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["filename"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["pool/dev/v/vrmd-whois/vrmd-whois_1_all.deb"; 2]);
}

#[test]
fn publish_rewrites_only_what_changed() {
    let repo = TestRepo::new();
    let public = repo.public();
    let precise_before = generation(&public, "precise");
    let main_index = |public: &Path| {
        std::fs::metadata(public.join("dists/trusty/main/binary-amd64/Packages.xz"))
            .unwrap()
            .ino()
    };
    let main_before = main_index(&public);

    let deb = Deb {
        architecture: "amd64",
        ..Deb::default()
    }
    .build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    assert_eq!(
        generation(&public, "precise"),
        precise_before,
        "precise did not change"
    );
    assert_ne!(generation(&public, "trusty"), "../.generations/trusty/1");
    assert_eq!(
        main_index(&public),
        main_before,
        "trusty/main is linked, not rewritten"
    );

    let before = snapshot(&repo.root());
    let out = run_ok(repo.cmd().arg("publish"));
    assert!(
        stdout(&out).contains("nothing to publish"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        snapshot(&repo.root()),
        before,
        "a publish with nothing to do writes nothing"
    );
}

#[test]
fn add_no_publish_waits_for_publish() {
    let repo = TestRepo::new();
    let deb = Deb::default().build(&repo.work());
    let gen = generation(&repo.public(), "trusty");
    run_ok(
        repo.cmd()
            .args([
                "add",
                "--dist",
                "trusty",
                "--component",
                "dev",
                "--no-publish",
            ])
            .arg(&deb),
    );
    assert_eq!(generation(&repo.public(), "trusty"), gen);
    let out = run_ok(repo.cmd().arg("publish"));
    assert!(
        stdout(&out).contains("published trusty"),
        "{}",
        stdout(&out)
    );
    let packages = crate::support::index_text(&repo.public(), "trusty", "dev", "amd64");
    assert!(packages.contains("Package: vrmd-whois\n"), "{packages}");
}

#[test]
fn packages_are_sorted_by_name_then_dpkg_version() {
    let repo = TestRepo::new();
    let work = repo.work();
    let mut debs = repo.whois_versions(&["10", "9", "1", "1~rc1"]);
    debs.push(
        Deb {
            name: "aaa-first",
            ..Deb::default()
        }
        .build(&work),
    );
    let refs: Vec<&Path> = debs.iter().map(|p| p.as_path()).collect();
    repo.add("trusty", "dev", &refs);
    let text = crate::support::index_text(&repo.public(), "trusty", "dev", "i386");
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .collect();
    // aaa-first 1, then vrmd-whois in dpkg order (`~` sorts before the release).
    assert_eq!(order, ["1", "1~rc1", "1", "9", "10"]);
}

#[test]
fn release_date_never_goes_back_and_never_runs_far_ahead() {
    let repo = TestRepo::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let work = repo.work();
    let first = Deb {
        version: "1",
        ..Deb::default()
    }
    .build(&work);
    run_ok(
        repo.cmd()
            .env("REPOCTL_NOW", (now + 4).to_string())
            .args(["add", "--dist", "trusty", "--component", "dev"])
            .arg(&first),
    );
    let ahead = served_date(&repo.public(), "trusty");
    let second = Deb {
        version: "2",
        ..Deb::default()
    }
    .build(&work);
    run_ok(
        repo.cmd()
            .env("REPOCTL_NOW", now.to_string())
            .args(["add", "--dist", "trusty", "--component", "dev"])
            .arg(&second),
    );
    assert_eq!(
        served_date(&repo.public(), "trusty"),
        format!(
            "Date: {}",
            httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(now + 5)
            )
        )
        .replace("GMT", "UTC"),
        "the Date never goes back: one second after the later one ({ahead})"
    );

    let third = Deb {
        version: "3",
        ..Deb::default()
    }
    .build(&work);
    let out = repo
        .cmd()
        .env("REPOCTL_NOW", (now - 60).to_string())
        .args(["add", "--dist", "trusty", "--component", "dev"])
        .arg(&third)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ahead of this machine's clock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_changed_origin_is_refused_with_the_reason() {
    let repo = TestRepo::new();
    let config_path = repo.root().join("repoctl.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("origin = \"repoctl\"", "origin = \"Other\""),
    )
    .unwrap();
    let before = snapshot(&repo.root());
    let out = repo.cmd().args(["publish", "--force"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("sets Origin to \"Other\"") && err.contains("hint: apt refuses"),
        "{err}"
    );
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn reindex_rebuilds_packages_and_memberships_and_says_what_is_lost() {
    let repo = TestRepo::new();
    let work = repo.work();
    let a = Deb {
        version: "1",
        ..Deb::default()
    }
    .build(&work);
    let b = Deb {
        name: "vrmd-other",
        architecture: "amd64",
        ..Deb::default()
    }
    .build(&work);
    repo.add("trusty", "dev", &[&a, &b]);
    repo.add("precise", "main", &[&a]);
    let listed_before = stdout(&run_ok(repo.cmd().args(["list", "--json"])));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(repo.root().join(format!("state/catalog.sqlite{suffix}")));
    }
    let out = run_ok(repo.cmd().arg("reindex"));
    let text = stdout(&out);
    assert!(
        text.contains("2 package file(s), 3 membership(s)"),
        "{text}"
    );
    assert!(
        text.contains("not recoverable from disk: history, reservations, tokens"),
        "{text}"
    );
    assert_eq!(
        stdout(&run_ok(repo.cmd().args(["list", "--json"]))),
        listed_before
    );
    let out = run_ok(repo.cmd().arg("publish"));
    assert!(
        stdout(&out).contains("nothing to publish"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn by_hash_keeps_the_indices_of_the_last_three_publishes() {
    let repo = TestRepo::new();
    let work = repo.work();
    let by_hash_of = |public: &Path| -> String {
        let release = std::fs::read_to_string(public.join("dists/trusty/Release")).unwrap();
        let line = release
            .lines()
            .rev()
            .find(|l| l.ends_with(" dev/binary-amd64/Packages.xz"))
            .unwrap();
        line.split_whitespace().next().unwrap().to_string()
    };
    let mut hashes = vec![by_hash_of(&repo.public())];
    for v in ["1", "2", "3"] {
        let deb = Deb {
            version: v,
            ..Deb::default()
        }
        .build(&work);
        repo.add("trusty", "dev", &[&deb]);
        hashes.push(by_hash_of(&repo.public()));
    }
    let dir = repo
        .public()
        .join("dists/trusty/dev/binary-amd64/by-hash/SHA256");
    for (i, hash) in hashes.iter().enumerate() {
        assert_eq!(dir.join(hash).exists(), i >= 1, "publish {i}: {hash}");
    }
    check_served_tree(&repo.public(), &["trusty"], &repo.public().join("key.asc")).unwrap();
}

#[test]
fn ed25519_keys_work_but_warn_about_old_clients() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let out = run_ok(crate::support::repoctl(&root).args([
        "init",
        "--key-type",
        "ed25519",
        "--dists",
        "bookworm",
        "--components",
        "main",
        "--architectures",
        "amd64",
    ]));
    assert!(stderr(&out).contains("precise/trusty"), "{}", stderr(&out));
    check_served_tree(
        &root.join("public"),
        &["bookworm"],
        &root.join("public/key.asc"),
    )
    .unwrap();
}

#[test]
fn commands_work_while_serve_runs_on_the_same_root() {
    let repo = TestRepo::new();
    let server = crate::support::Server::start(&repo.root());
    let deb = Deb {
        version: "77",
        ..Deb::default()
    }
    .build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    run_ok(repo.cmd().args(["list", "vrmd-whois"]));
    run_ok(repo.cmd().args(["publish", "--force"]));
    let (ok, out) = crate::support::apt_check(
        &server.url,
        &repo.public().join("key.asc"),
        "trusty",
        "dev",
        "amd64",
        &["--expect", "vrmd-whois=77"],
    );
    assert!(ok, "{out}");
}

#[test]
fn uncompressed_packages_and_valid_until_follow_the_config() {
    let repo = TestRepo::new();
    let config_path = repo.root().join("repoctl.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replace(
        "[publish]\nwrite_uncompressed = false",
        "[publish]\nwrite_uncompressed = true\nvalid_for_days = 7",
    );
    assert!(config.contains("valid_for_days = 7"), "{config}");
    std::fs::write(&config_path, config).unwrap();
    let deb = Deb::default().build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    let plain =
        std::fs::read_to_string(repo.public().join("dists/trusty/dev/binary-amd64/Packages"))
            .unwrap();
    assert_eq!(
        plain,
        crate::support::index_text(&repo.public(), "trusty", "dev", "amd64")
    );
    let release = std::fs::read_to_string(repo.public().join("dists/trusty/Release")).unwrap();
    let field = |name: &str| {
        let line = release
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{release}"));
        httpdate::parse_http_date(&line[name.len()..].replace("UTC", "GMT")).unwrap()
    };
    assert_eq!(
        field("Valid-Until: ")
            .duration_since(field("Date: "))
            .unwrap()
            .as_secs(),
        7 * 86_400
    );
    check_served_tree(
        &repo.public(),
        &["precise", "trusty"],
        &repo.public().join("key.asc"),
    )
    .unwrap();
}

#[test]
fn a_secret_key_readable_by_others_is_refused() {
    let repo = TestRepo::new();
    let key = repo.root().join("keys/signing-key.asc");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = repo.cmd().args(["publish", "--force"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_unknown_roots_say_how_to_start() {
    let repo = TestRepo::new();
    let out = repo.cmd().arg("add").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::repoctl(dir.path())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hint: run `repoctl init`"),
        "{}",
        stderr(&out)
    );
}
