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

/// One answer read off a raw connection.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Splits what the server sent into answers; `bodiless` marks the answers
/// to HEAD requests, whose Content-Length announces no body.
fn answers(mut bytes: &[u8], bodiless: &[bool]) -> Vec<Answer> {
    let mut answers = Vec::new();
    for &no_body in bodiless {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head")
            + 4;
        let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })
            .map_or(0, |l| l.trim().parse().unwrap());
        let length = if no_body { 0 } else { length };
        answers.push(Answer {
            status,
            head,
            body: bytes[end..end + length].to_vec(),
        });
        bytes = &bytes[end + length..];
    }
    assert!(bytes.is_empty(), "more than {} answers", bodiless.len());
    answers
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order_across_the_hand_over() {
    use std::io::{Read, Write};
    let (repo, server) = served_repo();
    // Large enough to be sent with sendfile, not from memory.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(repo.public().join("pool").join("big.bin"), &big).unwrap();
    let release = std::fs::read(repo.public().join("dists/trusty/Release")).unwrap();
    let key = std::fs::read(repo.public().join("key.asc")).unwrap();

    let addr = server.addr();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let host = format!("Host: {addr}\r\n");
    // All at once, as apt pipelines: the tree's own path answers the first
    // four, /healthz hands the connection to the router, which answers the
    // last two from the bytes already read.
    let requests = [
        format!("GET /dists/trusty/Release HTTP/1.1\r\n{host}\r\n"),
        format!("HEAD /key.asc HTTP/1.1\r\n{host}\r\n"),
        format!("GET /pool/big.bin HTTP/1.1\r\n{host}\r\n"),
        format!("GET /pool/big.bin HTTP/1.1\r\n{host}Range: bytes=1000-1999\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\n{host}\r\n"),
        format!("GET /pool/big.bin HTTP/1.1\r\n{host}Range: bytes=-7\r\nConnection: close\r\n\r\n"),
    ];
    stream.write_all(requests.concat().as_bytes()).unwrap();
    let mut sent = Vec::new();
    stream.read_to_end(&mut sent).unwrap();

    let got = answers(&sent, &[false, true, false, false, false, false]);
    let statuses: Vec<u16> = got.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 206, 200, 206]);
    assert_eq!(got[0].body, release);
    assert!(
        got[1]
            .head
            .contains(&format!("content-length: {}", key.len())),
        "{}",
        got[1].head
    );
    assert!(got[2].body == big, "the whole file, byte for byte");
    assert!(
        got[3]
            .head
            .contains("content-range: bytes 1000-1999/3000000"),
        "{}",
        got[3].head
    );
    assert_eq!(got[3].body, big[1000..2000]);
    assert_eq!(got[4].body, b"ok\n");
    assert_eq!(got[5].body, big[big.len() - 7..]);
}
