//! repoctl verify: every kind of damage found by name, and --repair.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// A repository with vrmd-whois 1 and 2 in trusty/dev.
fn repo_with_packages() -> TestRepo {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["1", "2"]);
    repo.add("trusty", "dev", &[&debs[0], &debs[1]]);
    repo
}

fn pool_file(repo: &TestRepo, version: &str) -> PathBuf {
    let wanted = format!("vrmd-whois_{version}_all.deb");
    walkdir::WalkDir::new(repo.public().join("pool"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .find(|p| p.file_name().is_some_and(|n| n == wanted.as_str()))
        .unwrap_or_else(|| panic!("{wanted} is not in the pool"))
}

/// `public/...`, as the report names files.
fn shown(repo: &TestRepo, path: &Path) -> String {
    path.strip_prefix(repo.root())
        .unwrap()
        .display()
        .to_string()
}

/// The real file behind a served path (dists/<dist> is a symlink into
/// .generations): deleting through the link must hit the generation.
fn served_file(repo: &TestRepo, rel: &str) -> PathBuf {
    std::fs::canonicalize(repo.public().join(rel)).unwrap()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// `verify --json`: the report and the exit code.
fn verify_json(repo: &TestRepo, args: &[&str]) -> (Value, Option<i32>) {
    let out = repo
        .cmd()
        .arg("verify")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&out), stderr(&out)));
    (report, out.status.code())
}

/// `(kind, path)` of every problem in a JSON report, sorted.
fn problems(report: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            for field in ["kind", "path", "detail", "hint"] {
                assert!(
                    p[field].as_str().is_some_and(|s| !s.is_empty()),
                    "{field} missing in {p}"
                );
            }
            (
                p["kind"].as_str().unwrap().to_string(),
                p["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

fn pair(kind: &str, path: &str) -> (String, String) {
    (kind.to_string(), path.to_string())
}

/// The repository's key, copied out of public/ (gpgv's keyring conversion
/// writes beside it).
fn key(repo: &TestRepo) -> PathBuf {
    let key = repo.dir.path().join("key.asc");
    std::fs::copy(repo.public().join("key.asc"), &key).unwrap();
    key
}

#[test]
fn a_clean_repository_verifies() {
    let repo = repo_with_packages();
    let out = run_ok(repo.cmd().arg("verify"));
    assert!(
        out.stdout.is_empty(),
        "stdout without --json: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("checked 2 pool file(s)") && err.contains("no problems"),
        "{err}"
    );

    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(problems(&report), vec![]);
    assert_eq!(report["checked"]["pool_files"], 2);
    assert_eq!(report["checked"]["dists"], 2, "trusty and precise");
    // 2 components × 2 architectures × Packages{,.gz,.xz}, per dist.
    assert_eq!(report["checked"]["indices"], 24, "{report}");
    assert_eq!(report["info"], serde_json::json!([]));
}

#[test]
fn a_flipped_byte_in_a_pool_file_is_reported_by_name() {
    let repo = repo_with_packages();
    let deb = pool_file(&repo, "1");
    flip_a_byte(&deb);
    let name = shown(&repo, &deb);

    let err = refused(repo.cmd().arg("verify"));
    let line = err
        .lines()
        .find(|l| l.starts_with("problem: ") && l.contains(&name))
        .unwrap_or_else(|| panic!("{name} is not reported:\n{err}"));
    assert!(
        line.contains("expected") && line.contains("found"),
        "{line}"
    );
    assert!(
        line.contains("hint: restore this file from a backup"),
        "{line}"
    );
    assert!(err.contains("error: checked 2 pool file(s)"), "{err}");
    assert!(err.contains("1 problem(s)"), "{err}");

    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(problems(&report), vec![pair("pool-file-damaged", &name)]);
}

#[test]
fn a_deleted_index_file_is_reported_by_name() {
    let repo = repo_with_packages();
    let rel = "dists/trusty/dev/binary-amd64/Packages.xz";
    let real = served_file(&repo, rel);
    assert!(
        real.starts_with(repo.public().join(".generations")),
        "{real:?}"
    );
    std::fs::remove_file(&real).unwrap();

    let err = refused(repo.cmd().arg("verify"));
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("problem: public/{rel}: the Release lists it"))),
        "{err}"
    );
    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(1));
    // Its by-hash link still holds the bytes, so only the name is missing.
    assert_eq!(
        problems(&report),
        vec![pair("index-missing", &format!("public/{rel}"))]
    );
}

#[test]
fn a_missing_signature_is_reported_by_name() {
    let repo = repo_with_packages();
    std::fs::remove_file(served_file(&repo, "dists/trusty/InRelease")).unwrap();

    let err = refused(repo.cmd().arg("verify"));
    assert!(
        err.contains("problem: public/dists/trusty/InRelease: does not exist"),
        "{err}"
    );
    let (report, _) = verify_json(&repo, &[]);
    assert_eq!(
        problems(&report),
        vec![pair("signature-missing", "public/dists/trusty/InRelease")]
    );
}

#[test]
fn a_detached_signature_of_another_release_is_refused() {
    let repo = repo_with_packages();
    // precise's Release.gpg is a good signature, of another text.
    std::fs::copy(
        served_file(&repo, "dists/precise/Release.gpg"),
        served_file(&repo, "dists/trusty/Release.gpg"),
    )
    .unwrap();
    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        problems(&report),
        vec![pair("signature-invalid", "public/dists/trusty/Release.gpg")]
    );
}

#[test]
fn files_no_catalog_row_names_are_reported() {
    let repo = repo_with_packages();
    let dir = pool_file(&repo, "1").parent().unwrap().to_path_buf();
    let stray = dir.join("vrmd-whois_9_all.deb");
    std::fs::copy(pool_file(&repo, "1"), &stray).unwrap();
    let leftover = dir.join(".repoctl-tmp-123-abc-0");
    std::fs::write(&leftover, b"half a package").unwrap();

    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        problems(&report),
        vec![
            pair("orphaned-pool-file", &shown(&repo, &stray)),
            pair("temporary-leftover", &shown(&repo, &leftover)),
        ]
    );
    // --repair reports them and leaves them alone.
    let (_, code) = verify_json(&repo, &["--repair"]);
    assert_eq!(code, Some(1));
    assert!(stray.exists() && leftover.exists());
}

#[test]
fn repair_restores_the_served_tree_but_not_a_damaged_pool_file() {
    let repo = repo_with_packages();
    let deb = pool_file(&repo, "1");
    flip_a_byte(&deb);
    let damaged_pool = std::fs::read(&deb).unwrap();
    std::fs::remove_file(served_file(
        &repo,
        "dists/trusty/dev/binary-amd64/Packages.xz",
    ))
    .unwrap();
    std::fs::remove_file(served_file(&repo, "dists/trusty/InRelease")).unwrap();
    std::fs::remove_file(served_file(&repo, "dists/precise/Release")).unwrap();
    let key = key(&repo);
    assert!(check_served_tree(&repo.public(), &["trusty", "precise"], &key).is_err());

    let out = repo.cmd().args(["verify", "--repair"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    for fixed in [
        "repaired: public/dists/trusty/dev/binary-amd64/Packages.xz:",
        "repaired: public/dists/trusty/InRelease:",
        "repaired: public/dists/precise/Release:",
        "republished trusty",
        "republished precise",
    ] {
        assert!(err.contains(fixed), "{fixed:?} is not in:\n{err}");
    }
    let name = shown(&repo, &deb);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("problem: {name}: expected"))),
        "{err}"
    );
    assert!(err.contains("1 problem(s) remain"), "{err}");

    check_served_tree(&repo.public(), &["trusty", "precise"], &key).unwrap();
    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(problems(&report), vec![pair("pool-file-damaged", &name)]);
    assert_eq!(
        std::fs::read(&deb).unwrap(),
        damaged_pool,
        "repair rewrote a package file"
    );
    // The served indices still list both versions.
    let text = index_text(&repo.public(), "trusty", "dev", "amd64");
    assert!(
        text.contains("Version: 1\n") && text.contains("Version: 2\n"),
        "{text}"
    );
}

#[test]
fn repair_json_reports_what_it_fixed_and_published() {
    let repo = repo_with_packages();
    std::fs::remove_file(served_file(&repo, "dists/trusty/Release.gpg")).unwrap();
    let (report, code) = verify_json(&repo, &["--repair"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(problems(&report), vec![]);
    assert_eq!(
        report["repaired"][0]["path"], "public/dists/trusty/Release.gpg",
        "{report}"
    );
    let published: Vec<&str> = report["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dist"].as_str().unwrap())
        .collect();
    assert!(published.contains(&"trusty"), "{report}");
    run_ok(repo.cmd().arg("verify"));
}

#[test]
fn repair_of_a_clean_repository_publishes_nothing() {
    let repo = repo_with_packages();
    let before = snapshot(&repo.root());
    let out = run_ok(repo.cmd().args(["verify", "--repair"]));
    assert!(stderr(&out).contains("no problems"), "{}", stderr(&out));
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn files_waiting_for_gc_are_information_not_problems() {
    let repo = repo_with_packages();
    let conn = rusqlite::Connection::open(repo.root().join("state/catalog.sqlite")).unwrap();
    conn.execute(
        "UPDATE package_files SET unlisted_at = 1700000000 WHERE version = '1'",
        [],
    )
    .unwrap();
    drop(conn);
    let name = shown(&repo, &pool_file(&repo, "1"));

    let (report, code) = verify_json(&repo, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["info"][0]["kind"], "awaiting-collection", "{report}");
    assert_eq!(report["info"][0]["path"], name.as_str(), "{report}");
    let out = run_ok(repo.cmd().arg("verify"));
    assert!(
        stderr(&out).contains(&format!("info: {name}: in no index since")),
        "{}",
        stderr(&out)
    );
}
