//! The operator lifecycle with the real apt and dpkg: promote, roll back and
//! restore, prune and collect, dry runs that change nothing, and a history
//! that tells who did what through which door.

use crate::support::*;

fn whois_repo(versions: &[&str]) -> TestRepo {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(versions);
    let refs: Vec<&std::path::Path> = debs.iter().map(|d| d.as_path()).collect();
    repo.add("trusty", "dev", &refs);
    repo
}

fn pool_files(repo: &TestRepo) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(repo.public().join("pool"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

fn versions_in(repo: &TestRepo, dist: &str, component: &str) -> Vec<String> {
    let text = index_text(&repo.public(), dist, component, "amd64");
    text.lines()
        .filter_map(|l| l.strip_prefix("Version: "))
        .map(str::to_string)
        .collect()
}

/// Runs a lifecycle command with --dry-run, then for real: the dry run must
/// change nothing and print the plan the real run then prints.
fn dry_then_real(repo: &TestRepo, args: &[&str]) -> String {
    let before = snapshot(&repo.root());
    let dry = run_ok(repo.cmd().args(args).arg("--dry-run"));
    assert_eq!(
        snapshot(&repo.root()),
        before,
        "--dry-run of {args:?} changed something"
    );
    let real = run_ok(repo.cmd().args(args));
    assert_eq!(
        stdout(&dry),
        stdout(&real),
        "{args:?}: the dry run planned something else"
    );
    assert!(!stdout(&real).is_empty(), "{args:?} changed nothing");
    stdout(&real)
}

#[test]
fn copy_promotes_to_main_keeping_dev_and_one_pool_file() {
    let repo = whois_repo(&["41", "42"]);
    let plan = dry_then_real(
        &repo,
        &[
            "copy",
            "vrmd-whois=42",
            "--from",
            "trusty/dev",
            "--to",
            "trusty/main,precise/main",
        ],
    );
    assert_eq!(
        plan,
        "publish\tvrmd-whois=42\tall\ttrusty/main\npublish\tvrmd-whois=42\tall\tprecise/main\n"
    );
    assert_eq!(
        pool_files(&repo),
        ["vrmd-whois_41_all.deb", "vrmd-whois_42_all.deb"]
    );
    let server = Server::start(&repo.root());
    let (ok, log) = apt_check(
        &server.url,
        &repo.public().join("key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &["--expect", "vrmd-whois=42", "--expect", "vrmd-whois=41"],
    );
    assert!(ok, "{log}");
    assert_eq!(versions_in(&repo, "trusty", "main"), ["42"]);
    assert_eq!(versions_in(&repo, "trusty", "dev"), ["41", "42"]);

    // A move takes it out of the source; copying again changes nothing.
    dry_then_real(
        &repo,
        &[
            "move",
            "vrmd-whois=41",
            "--dist",
            "trusty",
            "--component",
            "dev",
            "--to",
            "trusty/main",
        ],
    );
    assert_eq!(versions_in(&repo, "trusty", "dev"), ["42"]);
    assert_eq!(versions_in(&repo, "trusty", "main"), ["41", "42"]);
    let again = run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=42",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    assert!(stdout(&again).is_empty());
    assert!(stderr(&again).contains("nothing to change"));
    let plan = dry_then_real(
        &repo,
        &["remove", "vrmd-whois=42", "--from", "precise/main"],
    );
    assert_eq!(plan, "unpublish\tvrmd-whois=42\tall\tprecise/main\n");
    assert!(!index_text(&repo.public(), "precise", "main", "amd64").contains("Version: 42"));
    assert_eq!(pool_files(&repo).len(), 2, "remove deletes no pool file");
}

#[test]
fn rollback_makes_41_the_candidate_and_restore_brings_42_back() {
    let repo = whois_repo(&["40", "41", "42"]);
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=40",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=41",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=42",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    let server = Server::start(&repo.root());
    let key = repo.public().join("key.asc");
    let check = |checks: &[&str]| apt_check(&server.url, &key, "trusty", "main", "amd64", checks);

    let plan = dry_then_real(
        &repo,
        &[
            "rollback",
            "vrmd-whois",
            "--dist",
            "trusty",
            "--component",
            "main",
        ],
    );
    assert_eq!(plan, "withdraw\tvrmd-whois=42\tall\ttrusty/main\n");
    let (ok, log) = check(&[
        "--expect-candidate",
        "vrmd-whois=41",
        "--install",
        "vrmd-whois",
        "--expect-absent",
        "vrmd-whois=42",
    ]);
    assert!(ok, "after rollback:\n{log}");
    // Installing 42 explicitly fails cleanly while it is withdrawn.
    let (ok, log) = check(&["--install", "vrmd-whois=42"]);
    assert!(!ok, "42 installed while withdrawn:\n{log}");
    assert_eq!(pool_files(&repo).len(), 3, "a rollback deletes nothing");
    assert_eq!(
        versions_in(&repo, "trusty", "dev"),
        ["40", "41", "42"],
        "other components keep 42"
    );

    dry_then_real(
        &repo,
        &["restore", "vrmd-whois=42", "--from", "trusty/main"],
    );
    let (ok, log) = check(&[
        "--expect-candidate",
        "vrmd-whois=42",
        "--install",
        "vrmd-whois=42",
    ]);
    assert!(ok, "after restore:\n{log}");

    // --to withdraws every version above it.
    let plan = dry_then_real(
        &repo,
        &[
            "rollback",
            "vrmd-whois",
            "--from",
            "trusty/main",
            "--to",
            "40",
        ],
    );
    assert_eq!(plan.lines().count(), 2, "{plan}");
    assert_eq!(versions_in(&repo, "trusty", "main"), ["40"]);
    // A withdrawn file is never collected, even long after.
    let later = (repoctl_now() + 30 * 86_400).to_string();
    run_ok(repo.cmd().env("REPOCTL_NOW", &later).arg("gc"));
    assert_eq!(pool_files(&repo).len(), 3);
}

#[test]
fn refusals_name_what_is_missing_and_change_nothing() {
    let repo = whois_repo(&["1"]);
    let before = snapshot(&repo.root());
    for (args, expect) in [
        (
            vec![
                "copy",
                "vrmd-whois=9",
                "--from",
                "trusty/dev",
                "--to",
                "trusty/main",
            ],
            "vrmd-whois=9 is not published in trusty/dev",
        ),
        (
            vec![
                "copy",
                "vrmd-whois",
                "--from",
                "trusty/dev",
                "--to",
                "trusty/main",
            ],
            "is not NAME=VERSION",
        ),
        (
            vec![
                "copy",
                "vrmd-whois=1",
                "--from",
                "trusty/dev",
                "--to",
                "sid/main",
            ],
            "unknown target sid/main",
        ),
        (
            vec!["remove", "vrmd-whois=1", "--from", "trusty/main"],
            "not published in trusty/main",
        ),
        (
            vec!["rollback", "vrmd-whois", "--from", "trusty/dev"],
            "no version below 1",
        ),
        (
            vec!["restore", "vrmd-whois=1", "--from", "trusty/dev"],
            "is not withdrawn",
        ),
        (vec!["remove", "vrmd-whois=1"], "no dist/component given"),
        (vec!["prune", "--keep", "0"], "--keep 0"),
    ] {
        let err = refused(repo.cmd().args(&args));
        assert!(
            err.contains(expect) && err.contains("hint:"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(snapshot(&repo.root()), before);
}

fn repoctl_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn prune_keeps_the_two_highest_and_gc_collects_only_after_grace_and_by_hash() {
    let versions: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    let repo = whois_repo(&refs);
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=10",
        "--from",
        "trusty/dev",
        "--to",
        "precise/dev",
    ]));
    dry_then_real(&repo, &["prune", "--keep", "2", "--component", "dev"]);
    assert_eq!(versions_in(&repo, "trusty", "dev"), ["9", "10"]);
    assert_eq!(versions_in(&repo, "precise", "dev"), ["10"]);
    assert_eq!(pool_files(&repo).len(), 10, "prune deletes nothing at once");

    let now = repoctl_now();
    let gc = |offset: i64, dry: bool| {
        let mut cmd = repo.cmd();
        cmd.env("REPOCTL_NOW", (now + offset).to_string())
            .args(["gc", "--json"]);
        if dry {
            cmd.arg("--dry-run");
        }
        serde_json::from_str::<serde_json::Value>(&stdout(&run_ok(&mut cmd))).unwrap()
    };
    // Within the grace period: waiting.
    let report = gc(3600, false);
    assert_eq!(report["waiting"].as_array().unwrap().len(), 8, "{report}");
    assert_eq!(pool_files(&repo).len(), 10);
    // Past it, but the two publishes before the prune still name them.
    let day = 25 * 3600;
    let report = gc(day, false);
    assert_eq!(
        report["still_served"].as_array().unwrap().len(),
        8,
        "{report}"
    );
    assert_eq!(pool_files(&repo).len(), 10);
    // Two more publishes age those generations out.
    let others = Deb {
        name: "other",
        ..Deb::default()
    }
    .build(&repo.work());
    let others2 = Deb {
        name: "other",
        version: "2",
        ..Deb::default()
    }
    .build(&repo.work());
    for deb in [&others, &others2] {
        run_ok(
            repo.cmd()
                .env("REPOCTL_NOW", (now + day).to_string())
                .args(["add", "--dist", "trusty", "--component", "dev"])
                .arg(deb),
        );
    }
    let before = snapshot(&repo.root());
    let dry = gc(day, true);
    assert_eq!(
        snapshot(&repo.root()),
        before,
        "gc --dry-run changed something"
    );
    let report = gc(day, false);
    assert_eq!(report["collected"], dry["collected"]);
    assert_eq!(report["collected"].as_array().unwrap().len(), 8, "{report}");
    assert_eq!(
        pool_files(&repo),
        [
            "other_1_all.deb",
            "other_2_all.deb",
            "vrmd-whois_10_all.deb",
            "vrmd-whois_9_all.deb"
        ]
    );
    check_served_tree(
        &repo.public(),
        &["precise", "trusty"],
        &repo.public().join("key.asc"),
    )
    .unwrap();
    // Nothing left to do writes nothing.
    let quiet = snapshot(&repo.root());
    gc(day, false);
    assert_eq!(snapshot(&repo.root()), quiet);
    // A collected version is still known: next-version never hands it out.
    let next = run_ok(
        repo.cmd()
            .env("REPOCTL_NOW", (now + day).to_string())
            .args(["next-version", "vrmd-whois"]),
    );
    assert_eq!(stdout(&next).trim(), "11");
}

#[test]
fn retention_in_the_config_prunes_on_every_publish_at_the_door_of_the_change() {
    let repo = TestRepo::new();
    let path = repo.root().join("repoctl.toml");
    let text = std::fs::read_to_string(&path).unwrap() + "\n[retention]\ndev = 3\n";
    std::fs::write(&path, text).unwrap();
    let debs = repo.whois_versions(&["1", "2", "3", "4", "5", "6"]);
    for deb in &debs[..5] {
        repo.add("trusty", "dev", &[deb]);
    }
    assert_eq!(versions_in(&repo, "trusty", "dev"), ["3", "4", "5"]);

    // An upload's publish prunes too, and the history says it came by HTTP.
    let ci = repo.token("ci", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let answer = upload(&server.url, "trusty/dev", &ci, &debs[5], "?wait=published");
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(versions_in(&repo, "trusty", "dev"), ["4", "5", "6"]);
    let prunes: Vec<Vec<String>> = whois_history(&repo)
        .iter()
        .filter(|r| r["action"] == "prune")
        .map(|r| fields(r, &["version", "door", "actor"]))
        .collect();
    assert_eq!(
        prunes,
        [
            ["1", "cli", "retention"],
            ["2", "cli", "retention"],
            ["3", "http", "retention"],
        ]
    );
}

/// `repoctl history vrmd-whois --json`: every row, oldest first.
fn whois_history(repo: &TestRepo) -> Vec<serde_json::Value> {
    let out = run_ok(repo.cmd().args(["history", "vrmd-whois", "--json"]));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The string fields `keys` of a history row.
fn fields(row: &serde_json::Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| row[k].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn history_lists_every_action_in_order_with_its_door() {
    let repo = whois_repo(&["1", "2"]);
    let operator = repo.token("ops", &["--operator"]);
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=1",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    run_ok(repo.cmd().args([
        "copy",
        "vrmd-whois=2",
        "--from",
        "trusty/dev",
        "--to",
        "trusty/main",
    ]));
    let server = Server::start(&repo.root());
    let answer = curl(
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {operator}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"package": "vrmd-whois", "dist": "trusty", "component": "main"}"#,
        ],
        &format!("{}api/v1/operations/rollback", server.url),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["changes"][0]["effect"], "withdraw");
    let answer = curl(
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {operator}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"spec": "vrmd-whois=2", "dist": "trusty", "component": "main"}"#,
        ],
        &format!("{}api/v1/operations/restore", server.url),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    run_ok(
        repo.cmd()
            .args(["remove", "vrmd-whois=1", "--from", "trusty/dev"]),
    );

    let rows = whois_history(&repo);
    let seen: Vec<Vec<String>> = rows
        .iter()
        .map(|r| fields(r, &["action", "door", "version"]))
        .collect();
    assert_eq!(
        seen,
        [
            ["add", "cli", "1"],
            ["add", "cli", "2"],
            ["copy", "cli", "1"],
            ["copy", "cli", "2"],
            ["rollback", "http", "2"],
            ["restore", "http", "2"],
            ["remove", "cli", "1"],
        ]
    );
    assert_eq!(rows[4]["actor"], "ops");
    let text = stdout(&run_ok(repo.cmd().args(["history", "--since", "1h"])));
    assert!(text.contains("\tpublish\t"), "{text}");
    assert!(text.lines().count() >= 6, "{text}");
}

#[test]
fn operator_actions_over_http_need_an_operator_token() {
    let repo = whois_repo(&["1", "2"]);
    let uploader = repo.token("ci", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let before = snapshot(&repo.root());
    let url = format!("{}api/v1/operations/remove", server.url);
    let body = r#"{"spec": "vrmd-whois=1", "from": "trusty/dev"}"#;
    let denied = curl(
        &[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {uploader}"),
            "-d",
            body,
        ],
        &url,
    );
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(denied.json()["hint"]
        .as_str()
        .unwrap()
        .contains("--operator"));
    let anonymous = curl(&["-X", "POST", "-d", body], &url);
    assert_eq!(anonymous.status, 401);
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn gc_removes_pool_files_no_catalog_row_holds_once_they_are_an_hour_old() {
    // What an add killed between storing its pool file and committing
    // leaves (tests/it/faults.rs): never acknowledged, named by nothing.
    let repo = whois_repo(&["1"]);
    let orphan = "pool/dev/v/vrmd-whois/vrmd-whois_99_all.deb";
    std::fs::write(repo.public().join(orphan), b"never committed").unwrap();
    let verify = repo.cmd().arg("verify").output().unwrap();
    assert!(!verify.status.success(), "verify must report the orphan");
    let said = format!(
        "{}{}",
        stdout(&verify),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(said.contains("no catalog row names it"), "{said}");

    let gc = |offset: i64, dry: bool| {
        let mut cmd = repo.cmd();
        let at = repoctl_now() + offset;
        cmd.env("REPOCTL_NOW", at.to_string())
            .args(["gc", "--json"]);
        if dry {
            cmd.arg("--dry-run");
        }
        serde_json::from_str::<serde_json::Value>(&stdout(&run_ok(&mut cmd))).unwrap()
    };
    // Fresh: it may be an add that is still running.
    assert_eq!(gc(0, false)["orphans"], serde_json::json!([]));
    let before = snapshot(&repo.root());
    assert_eq!(gc(7200, true)["orphans"], serde_json::json!([orphan]));
    assert_eq!(
        snapshot(&repo.root()),
        before,
        "gc --dry-run changed something"
    );
    assert_eq!(gc(7200, false)["orphans"], serde_json::json!([orphan]));
    assert_eq!(pool_files(&repo), ["vrmd-whois_1_all.deb"]);
    run_ok(repo.cmd().arg("verify"));
    let history = stdout(&run_ok(repo.cmd().args(["history", "--json"])));
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let orphan_event = serde_json::json!({ "filename": orphan, "orphan": true });
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["action"] == "gc" && event["detail"] == orphan_event),
        "{history}"
    );
}
