//! `repoctl next-version`: numeric order, every dist counts, filters, the
//! clear failure on a non-integer highest version, and reservations that
//! never hand out a number twice, even to 32 processes at once.

use std::path::Path;

use crate::support::{refused, run_ok, stderr, stdout, TestRepo};

fn next(repo: &TestRepo, args: &[&str]) -> String {
    stdout(&run_ok(repo.cmd().arg("next-version").args(args)))
        .trim()
        .to_string()
}

fn add_versions(repo: &TestRepo, dist: &str, component: &str, versions: &[&str]) {
    let debs = repo.whois_versions(versions);
    let refs: Vec<&Path> = debs.iter().map(|p| p.as_path()).collect();
    repo.add(dist, component, &refs);
}

#[test]
fn a_new_package_gets_1_and_integers_compare_as_numbers() {
    let repo = TestRepo::new();
    assert_eq!(next(&repo, &["vrmd-whois"]), "1");
    let versions: Vec<String> = (1..=12).map(|n| n.to_string()).collect();
    let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    add_versions(&repo, "trusty", "dev", &refs);
    // Only the number on stdout, so `V=$(repoctl next-version ...)` works.
    assert_eq!(next(&repo, &["vrmd-whois"]), "13");
}

#[test]
fn versions_anywhere_count_unless_filtered() {
    let repo = TestRepo::new();
    add_versions(&repo, "precise", "main", &["5"]);
    add_versions(&repo, "trusty", "dev", &["2"]);
    assert_eq!(
        next(&repo, &["vrmd-whois"]),
        "6",
        "precise/main counts for a trusty/dev build"
    );
    assert_eq!(next(&repo, &["vrmd-whois", "--dist", "trusty"]), "3");
    assert_eq!(
        next(
            &repo,
            &["vrmd-whois", "--dist", "precise", "--component", "dev"]
        ),
        "1"
    );
    assert_eq!(next(&repo, &["vrmd-whois", "--component", "main"]), "6");
    let json: serde_json::Value =
        serde_json::from_str(&next(&repo, &["vrmd-whois", "--json"])).unwrap();
    assert_eq!(json["next"], 6);
    assert_eq!(json["highest"], "5");

    let err = refused(
        repo.cmd()
            .args(["next-version", "vrmd-whois", "--dist", "sid"]),
    );
    assert!(err.contains("unknown target sid/*"), "{err}");
}

#[test]
fn a_highest_version_that_is_not_an_integer_fails_and_says_where() {
    for highest in ["1:5", "2.0-1"] {
        let repo = TestRepo::new();
        add_versions(&repo, "trusty", "dev", &["1"]);
        add_versions(&repo, "precise", "main", &[highest]);
        // Nothing on stdout for a script to take: `refused` checks it.
        let err = refused(repo.cmd().args(["next-version", "vrmd-whois"]));
        assert!(
            err.contains(&format!(
                "highest version of vrmd-whois is {highest} (precise/main all)"
            )),
            "{err}"
        );
        assert!(
            err.contains("hint: ") && err.contains("--force-version"),
            "{err}"
        );
        // The filter that excludes it gives an answer again.
        assert_eq!(next(&repo, &["vrmd-whois", "--dist", "trusty"]), "2");
    }
}

#[test]
fn reservations_are_skipped_released_by_the_add_and_expire() {
    let repo = TestRepo::new();
    add_versions(&repo, "trusty", "dev", &["7"]);
    let reserve = |holder: &str| next(&repo, &["vrmd-whois", "--reserve", "--for", holder]);
    assert_eq!(reserve("build-1"), "8");
    assert_eq!(reserve("build-2"), "9");
    assert_eq!(
        next(&repo, &["vrmd-whois"]),
        "10",
        "a reserved number is never returned"
    );
    // Reservations are repository-wide, whatever --dist says.
    assert_eq!(
        next(&repo, &["vrmd-whois", "--reserve", "--dist", "precise"]),
        "10"
    );

    add_versions(&repo, "trusty", "dev", &["8"]);
    let conn = rusqlite::Connection::open(repo.root().join("state/catalog.sqlite")).unwrap();
    let held: Vec<i64> = conn
        .prepare("SELECT version FROM reservations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(held, [9, 10], "adding 8 released its reservation");
    let holder: String = conn
        .query_row(
            "SELECT holder FROM reservations WHERE version = 9",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holder, "build-2");

    // After the configured time (24 h by default) reservations lapse.
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 25 * 3600)
        .to_string();
    let out = run_ok(
        repo.cmd()
            .env("REPOCTL_NOW", &later)
            .args(["next-version", "vrmd-whois"]),
    );
    assert_eq!(stdout(&out).trim(), "9");
}

#[test]
fn thirty_two_processes_reserving_at_once_get_distinct_consecutive_numbers() {
    let repo = TestRepo::new();
    add_versions(&repo, "trusty", "dev", &["100"]);
    let children: Vec<_> = (0..32)
        .map(|i| {
            repo.cmd()
                .args(["next-version", "vrmd-whois", "--reserve", "--for"])
                .arg(format!("build-{i}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut numbers: Vec<u64> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out).trim().parse().unwrap()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (101..=132).collect::<Vec<u64>>());
}

#[test]
fn from_index_gives_the_local_answer_and_refuses_a_foreign_key() {
    let repo = TestRepo::new();
    add_versions(&repo, "trusty", "dev", &["3", "11"]);
    add_versions(&repo, "trusty", "main", &["9"]);
    let server = crate::support::Server::start(&repo.root());
    let key = repo.public().join("key.asc");
    let remote = |extra: &[&str]| {
        let mut cmd = repo.cmd();
        cmd.args(["next-version", "vrmd-whois", "--from-index", &server.url])
            .arg("--key")
            .arg(&key)
            .args(["--dist", "trusty"])
            .args(extra);
        stdout(&run_ok(&mut cmd)).trim().to_string()
    };
    assert_eq!(
        remote(&[]),
        next(&repo, &["vrmd-whois", "--dist", "trusty"])
    );
    assert_eq!(remote(&[]), "12");
    assert_eq!(remote(&["--component", "main"]), "10");

    // A key that did not sign this repository: refused, with the reason.
    let foreign = tempfile::tempdir().unwrap();
    let foreign_key = foreign.path().join("other.asc");
    let generated =
        repoctl::signing::SigningKey::generate(repoctl::signing::KeyType::Ed25519, "someone else")
            .unwrap();
    std::fs::write(&foreign_key, generated.public_armored()).unwrap();
    let err = refused(
        repo.cmd()
            .args(["next-version", "vrmd-whois", "--from-index", &server.url])
            .arg("--key")
            .arg(&foreign_key)
            .args(["--dist", "trusty"]),
    );
    assert!(err.contains("hint: "), "{err}");
}
