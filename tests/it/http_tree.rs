//! The apt tree as `repoctl serve` answers it, over real HTTP with curl:
//! no escape from `public/`, 404 (never 403) for what is missing, caching
//! headers that never hide a newer index, ranges for resumed downloads.

use std::os::unix::fs::symlink;

use crate::support::*;

fn served_repo() -> (TestRepo, Server) {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["1"]);
    repo.add("trusty", "dev", &[&debs[0]]);
    let server = Server::start(&repo.root());
    (repo, server)
}

#[test]
fn no_path_escapes_public_and_every_miss_is_404() {
    let (repo, server) = served_repo();
    std::fs::write(repo.root().join("secret.txt"), "outside public/").unwrap();
    symlink("/etc/passwd", repo.public().join("passwd.deb")).unwrap();
    symlink("../secret.txt", repo.public().join("pool").join("secret")).unwrap();
    let base = server.url.trim_end_matches('/');
    for path in [
        "/../secret.txt",
        "/pool/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/pool/%2E%2E/%2e%2e/secret.txt",
        "/pool/..%2f..%2fsecret.txt",
        "/pool%2f..%2f..%2fsecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/passwd.deb",
        "/pool/secret",
        "/.generations/trusty/1/Release",
        "/dists/trusty/./Release",
        "/dists/nothing/InRelease",
        "/dists/trusty/dev",
        "/dists/trusty/Release%00",
        "/pool/..\\..\\secret.txt",
    ] {
        let answer = curl(&["--path-as-is"], &format!("{base}{path}"));
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert!(
            !answer.body.contains("outside public") && !answer.body.contains("root:"),
            "{path}"
        );
    }
    // The same files by their honest names are served.
    assert_eq!(
        curl(&[], &format!("{base}/dists/trusty/Release")).status,
        200
    );
    assert_eq!(curl(&[], &format!("{base}/key.asc")).status, 200);
}

#[test]
fn files_carry_validators_and_answer_304_head_and_ranges() {
    let (_repo, server) = served_repo();
    let url = format!("{}dists/trusty/dev/binary-amd64/Packages.gz", server.url);
    let full = curl(&[], &url);
    assert_eq!(full.status, 200);
    assert_eq!(
        full.header("content-type").as_deref(),
        Some("application/gzip")
    );
    let etag = full.header("etag").expect("an ETag");
    let modified = full.header("last-modified").expect("a Last-Modified");
    let length: usize = full.header("content-length").unwrap().parse().unwrap();

    let head = curl(&["-I"], &url);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(length.to_string()));
    // curl -I writes the head where the body would go: no body came.
    assert!(head.body.starts_with("HTTP/1.1 200"), "{}", head.body);

    let by_date = curl(&["-H", &format!("If-Modified-Since: {modified}")], &url);
    assert_eq!(by_date.status, 304, "{by_date:?}");
    let by_tag = curl(&["-H", &format!("If-None-Match: {etag}")], &url);
    assert_eq!(by_tag.status, 304, "{by_tag:?}");

    let range = curl(&["-r", "2-5"], &url);
    assert_eq!(range.status, 206);
    assert_eq!(
        range.header("content-range"),
        Some(format!("bytes 2-5/{length}"))
    );
    let beyond = curl(&["-r", &format!("{}-", length + 10)], &url);
    assert_eq!(beyond.status, 416);

    let release = curl(&[], &format!("{}dists/trusty/InRelease", server.url));
    assert!(release
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let key = curl(&[], &format!("{}key.asc", server.url));
    assert_eq!(
        key.header("content-type").as_deref(),
        Some("application/pgp-keys")
    );
}

#[test]
fn a_newer_index_is_never_hidden_by_if_modified_since() {
    // Two publishes as close together as uploads can make them: the second
    // InRelease must be newer by at least a second, or a client asking
    // If-Modified-Since with the first one's date would get a 304.
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let debs = repo.whois_versions(&["1", "2"]);
    let server = Server::start(&repo.root());
    let url = format!("{}dists/trusty/InRelease", server.url);
    let first = upload(
        &server.url,
        "trusty/dev",
        &token,
        &debs[0],
        "?wait=published",
    );
    assert_eq!(first.status, 201);
    let before = curl(&[], &url);
    let second = upload(
        &server.url,
        "trusty/dev",
        &token,
        &debs[1],
        "?wait=published",
    );
    assert_eq!(second.status, 201);
    let modified = before.header("last-modified").unwrap();
    let after = curl(&["-H", &format!("If-Modified-Since: {modified}")], &url);
    assert_eq!(after.status, 200, "the newer InRelease was hidden by a 304");
    assert_ne!(after.header("last-modified").unwrap(), modified);
    // Last-Modified is the Release Date.
    let date = after
        .body
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap()
        .replace("UTC", "GMT");
    assert_eq!(after.header("last-modified").unwrap(), date);
}

#[test]
fn reserved_paths_are_not_files_and_healthz_answers() {
    let (repo, server) = served_repo();
    // Even if public/ holds such names, they stay the server's.
    std::fs::create_dir_all(repo.public().join("api").join("v1")).unwrap();
    std::fs::write(repo.public().join("metrics"), "a file").unwrap();
    assert_eq!(curl(&[], &format!("{}healthz", server.url)).body, "ok\n");
    let metrics = curl(&[], &format!("{}metrics", server.url));
    assert!(
        metrics
            .body
            .contains("# TYPE repoctl_uploads_total counter"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("repoctl_index_bytes{dist=\"trusty\",component=\"dev\",architecture=\"amd64\",file=\"Packages.gz\"}"));
    let api = curl(&[], &format!("{}api/v1/whatever", server.url));
    assert_eq!(api.status, 404);
    assert!(api.json()["error"].is_string());
}
