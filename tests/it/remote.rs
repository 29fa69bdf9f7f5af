//! `repoctl::remote::published_versions` against repositories published by
//! the real binary and served over 127.0.0.1: by `repoctl serve`, or, for
//! copies a test changes on purpose, by the real router
//! (`repoctl::server::router`) plus a few routes that redirect and answer in
//! chunks. A changed InRelease, a changed index, the wrong key and https are
//! refused; gpgv is the peer that agrees on what is signed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use md5::Md5;
use repoctl::deb::inspect::Checksums;
use repoctl::remote::{published_versions, RemoteError, RemoteVersion};
use repoctl::repo::release::{Release, ReleaseFields};
use repoctl::signing::{KeyType, Keyring, Signer, SigningError, SigningKey, VerifyProblem};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::support::{gpgv, Deb, Server, TestRepo};

/// The fingerprint of tests/fixtures/test-signing-key.asc.
const FIXTURE_FPR: &str = "DE3352D5B6579588FF06B97968AC0753B8F979F1";

/// `(version, component, architecture)`, for comparing results.
fn triples(versions: &[RemoteVersion]) -> Vec<(String, String, String)> {
    versions
        .iter()
        .map(|v| {
            (
                v.version.as_str().to_owned(),
                v.component.clone(),
                v.architecture.clone(),
            )
        })
        .collect()
}

fn triple(version: &str, component: &str, arch: &str) -> (String, String, String) {
    (version.into(), component.into(), arch.into())
}

/// trusty: vrmd-whois 1 (all, main), 2 (amd64, dev), 10 (i386, dev) and an
/// unrelated package; precise: vrmd-whois 7 (all, main).
fn published_repo() -> TestRepo {
    let repo = TestRepo::new();
    let work = repo.work();
    let deb = |name, version, architecture| {
        Deb {
            name,
            version,
            architecture,
            ..Deb::default()
        }
        .build(&work)
    };
    let v1 = deb("vrmd-whois", "1", "all");
    let v2 = deb("vrmd-whois", "2", "amd64");
    let v10 = deb("vrmd-whois", "10", "i386");
    let other = deb("vrmd-other", "99", "all");
    let v7 = deb("vrmd-whois", "7", "all");
    repo.add("trusty", "main", &[&v1, &other]);
    repo.add("trusty", "dev", &[&v2, &v10]);
    repo.add("precise", "main", &[&v7]);
    repo
}

fn key_of(repo: &TestRepo) -> PathBuf {
    repo.public().join("key.asc")
}

/// Copies `public/` with its symlinks resolved (dists/<dist> points to a
/// generation), so a test can change the copy.
fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).follow_links(true) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file under `root` whose content is `content` (an index and its
/// by-hash copies, in every generation).
fn files_holding(root: &Path, content: &[u8]) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| std::fs::read(entry.path()).unwrap() == content)
        .map(|entry| entry.into_path())
        .collect()
}

/// The real router on 127.0.0.1, plus `/moved/X` (308 to `/chunked/X`),
/// `/chunked/X` (the file X in chunked encoding), `/loop/X` (redirects to
/// itself) and `/tls/X` (redirects to https). Stopped on drop.
struct TestServer {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    fn start(public: &Path) -> TestServer {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let app = test_router(public.to_owned());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            url,
            runtime: Some(runtime),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn test_router(public: PathBuf) -> Router {
    let files = public.clone();
    Router::new()
        .route(
            "/moved/{*rest}",
            get(|UrlPath(rest): UrlPath<String>| async move {
                Redirect::permanent(&format!("/chunked/{rest}"))
            }),
        )
        .route(
            "/chunked/{*rest}",
            get(move |UrlPath(rest): UrlPath<String>| {
                let files = files.clone();
                async move { chunked(&files, &rest) }
            }),
        )
        .route(
            "/loop/{*rest}",
            get(|uri: Uri| async move { Redirect::temporary(&uri.to_string()) }),
        )
        .route(
            "/tls/{*rest}",
            get(|UrlPath(rest): UrlPath<String>| async move {
                Redirect::temporary(&format!("https://127.0.0.1:1/{rest}"))
            }),
        )
        // The client under test, not our server: any static file server does.
        .fallback_service(tower_http::services::ServeDir::new(public))
}

/// A body of unknown length: hyper sends it with chunked encoding.
fn chunked(public: &Path, rest: &str) -> Response {
    if rest.split('/').any(|part| part == "..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(public.join(rest)) {
        Ok(bytes) => Body::from_stream(Body::from(bytes).into_data_stream()).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The raw response head for `path`, to prove what framing a route uses.
fn raw_head(url: &str, path: &str) -> String {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase()
}

fn signing_error(err: &RemoteError) -> &SigningError {
    match err {
        RemoteError::Signature { source, .. } => source,
        other => panic!("expected a signature error, got {other:?}"),
    }
}

#[test]
fn lists_every_published_version_with_its_component_and_architecture() {
    let repo = published_repo();
    let server = Server::start(&repo.root());
    let key = key_of(&repo);

    let trusty = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap();
    // dpkg order (10 after 2), and the `all` package listed in both
    // binary-amd64 and binary-i386 of main reported once.
    assert_eq!(
        triples(&trusty),
        vec![
            triple("1", "main", "all"),
            triple("2", "dev", "amd64"),
            triple("10", "dev", "i386"),
        ]
    );
    let precise = published_versions(&server.url, &key, "precise", "vrmd-whois").unwrap();
    assert_eq!(triples(&precise), vec![triple("7", "main", "all")]);
    let other = published_versions(&server.url, &key, "trusty", "vrmd-other").unwrap();
    assert_eq!(triples(&other), vec![triple("99", "main", "all")]);
    // Served and verified, but not there: an empty list, not an error.
    let none = published_versions(&server.url, &key, "trusty", "vrmd-nothing").unwrap();
    assert!(none.is_empty(), "{none:?}");
    // The base URL may be given without its final slash.
    let again = published_versions(
        server.url.trim_end_matches('/'),
        &key,
        "trusty",
        "vrmd-whois",
    )
    .unwrap();
    assert_eq!(again, trusty);
}

#[test]
fn verified_text_is_the_release_gpgv_accepts() {
    let repo = published_repo();
    let dist = repo.public().join("dists").join("trusty");
    let key = key_of(&repo);
    gpgv(&key, &dist.join("InRelease"), None).unwrap();
    let keyring = Keyring::load(&key).unwrap();
    assert_eq!(keyring.fingerprints(), vec![FIXTURE_FPR.to_owned()]);
    let text = keyring
        .verify_cleartext(&std::fs::read(dist.join("InRelease")).unwrap())
        .unwrap();
    assert_eq!(text, std::fs::read(dist.join("Release")).unwrap());
    // The free function takes the key bytes, armored or binary.
    let binary = SigningKey::from_armored(
        &std::fs::read(crate::support::fixture("test-signing-key.asc")).unwrap(),
        Path::new("fixture"),
    )
    .unwrap()
    .public_binary();
    let again = repoctl::signing::verify_cleartext(
        &std::fs::read(dist.join("InRelease")).unwrap(),
        &binary,
    )
    .unwrap();
    assert_eq!(again, text);
}

#[test]
fn follows_redirects_and_reads_chunked_bodies() {
    let repo = published_repo();
    let server = TestServer::start(&repo.public());
    // The detour really is chunked, and really redirects.
    let head = raw_head(&server.url, "/chunked/dists/trusty/InRelease");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let head = raw_head(&server.url, "/moved/dists/trusty/InRelease");
    assert!(head.starts_with("http/1.1 308"), "{head}");

    let key = key_of(&repo);
    let direct = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap();
    let detour = published_versions(
        &format!("{}moved", server.url),
        &key,
        "trusty",
        "vrmd-whois",
    )
    .unwrap();
    assert_eq!(detour, direct);
    assert_eq!(detour.len(), 3);

    let err = published_versions(&format!("{}loop", server.url), &key, "trusty", "vrmd-whois")
        .unwrap_err();
    assert!(
        matches!(&err, RemoteError::TooManyRedirects { url } if url.ends_with("/loop/dists/trusty/InRelease")),
        "{err:?}"
    );
    let err = published_versions(&format!("{}tls", server.url), &key, "trusty", "vrmd-whois")
        .unwrap_err();
    assert!(
        matches!(&err, RemoteError::UnsupportedScheme { url } if url == "https://127.0.0.1:1/dists/trusty/InRelease"),
        "{err:?}"
    );
}

#[test]
fn tampered_inrelease_is_refused() {
    let repo = published_repo();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&repo.public(), copy.path());
    let server = TestServer::start(copy.path());
    let key = key_of(&repo);
    // The untouched copy is fine: what follows fails because of the change.
    published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap();

    // One hex digit of the SHA256 of an index, inside the signed text: still
    // a well-formed Release, no longer the signed one.
    let inrelease = copy.path().join("dists/trusty/InRelease");
    let text = std::fs::read_to_string(&inrelease).unwrap();
    let line = text
        .lines()
        .skip_while(|l| *l != "SHA256:")
        .find(|l| l.ends_with(" main/binary-amd64/Packages.xz"))
        .unwrap();
    let digit = line.trim_start().as_bytes()[0];
    let changed_digit = if digit == b'0' { "1" } else { "0" };
    let changed = line.replacen(&(digit as char).to_string(), changed_digit, 1);
    std::fs::write(&inrelease, text.replacen(line, &changed, 1)).unwrap();
    assert!(
        gpgv(&key, &inrelease, None).is_err(),
        "gpgv must refuse it too"
    );

    let err = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap_err();
    let message = repoctl::repo::error_chain(&err);
    assert!(message.contains("/dists/trusty/InRelease"), "{message}");
    assert!(
        message.contains(&format!(
            "the signature by {FIXTURE_FPR} does not match the signed text"
        )),
        "{message}"
    );
    match signing_error(&err) {
        SigningError::Verify { problem, .. } => assert!(
            matches!(**problem, VerifyProblem::Invalid { altered: true, .. }),
            "{problem:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        err.hint().unwrap().contains("changed after it was signed"),
        "{err:?}"
    );

    // Unsigned text in front of the signed message is refused, as apt does.
    std::fs::write(&inrelease, format!("Origin: evil\n\n{text}")).unwrap();
    let err = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap_err();
    match signing_error(&err) {
        SigningError::Verify { problem, .. } => assert!(
            matches!(&**problem, VerifyProblem::NotClearsigned { detail } if detail.contains("Origin: evil")),
            "{problem:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn index_not_matching_the_release_is_refused() {
    let repo = published_repo();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&repo.public(), copy.path());
    let server = TestServer::start(copy.path());
    let key = key_of(&repo);

    // Add a version 99 to trusty's main/binary-amd64 index, everywhere the
    // index is served (its name and its by-hash copies).
    let xz_path = copy
        .path()
        .join("dists/trusty/main/binary-amd64/Packages.xz");
    let original = std::fs::read(&xz_path).unwrap();
    let mut text = String::new();
    liblzma::read::XzDecoder::new(&original[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("Version: 1\n"), "{text}");
    let forged = format!("{text}\nPackage: vrmd-whois\nVersion: 99\nArchitecture: all\n");
    let mut forged_xz = Vec::new();
    liblzma::read::XzEncoder::new(forged.as_bytes(), 6)
        .read_to_end(&mut forged_xz)
        .unwrap();
    let copies = files_holding(copy.path(), &original);
    assert!(copies.len() >= 2, "the name and by-hash: {copies:?}");
    for path in &copies {
        std::fs::write(path, &forged_xz).unwrap();
    }

    let err = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap_err();
    let RemoteError::Mismatch { url, mismatch } = &err else {
        panic!("expected a mismatch, got {err:?}");
    };
    assert!(url.contains("/dists/trusty/main/binary-amd64/"), "{url}");
    assert_eq!(mismatch.entry, "main/binary-amd64/Packages.xz");
    assert_eq!(mismatch.actual_size, forged_xz.len() as u64);
    assert_eq!(mismatch.expected_size, original.len() as u64);
    assert!(err.hint().unwrap().contains("do not trust"), "{err:?}");

    // Without the .xz (404), the .gz is read, and it is still honest.
    for path in &copies {
        std::fs::remove_file(path).unwrap();
    }
    let fallback = published_versions(&server.url, &key, "trusty", "vrmd-whois").unwrap();
    assert_eq!(fallback.len(), 3, "{fallback:?}");
}

#[test]
fn wrong_key_is_refused_with_a_hint() {
    let repo = published_repo();
    let server = Server::start(&repo.root());
    let other = SigningKey::generate(KeyType::Ed25519, "other <other@repoctl.invalid>").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.asc");
    std::fs::write(&other_key, other.public_armored()).unwrap();

    let err = published_versions(&server.url, &other_key, "trusty", "vrmd-whois").unwrap_err();
    match signing_error(&err) {
        SigningError::Verify { keyring, problem } => {
            assert_eq!(keyring, &other_key);
            assert!(
                matches!(&**problem, VerifyProblem::UnknownSigners { issuers } if issuers == &[FIXTURE_FPR.to_owned()]),
                "{problem:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let message = repoctl::repo::error_chain(&err);
    assert!(message.contains(FIXTURE_FPR), "{message}");
    assert!(message.contains("other.asc"), "{message}");
    let hint = err.hint().unwrap();
    assert!(hint.contains("not signed by this key"), "{hint}");
    assert!(hint.contains("--key"), "{hint}");

    // Not a key at all, or no file: said so, with the path.
    std::fs::write(&other_key, "not a key").unwrap();
    let err = published_versions(&server.url, &other_key, "trusty", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::Keyring { path, .. } if path == &other_key),
        "{err:?}"
    );
    let missing = dir.path().join("missing.asc");
    let err = published_versions(&server.url, &missing, "trusty", "vrmd-whois").unwrap_err();
    assert!(
        repoctl::repo::error_chain(&err).contains("missing.asc"),
        "{err:?}"
    );
}

#[test]
fn https_and_bad_urls_are_refused_before_any_request() {
    // Nothing listens on port 1 and the key does not exist: the URL is
    // refused first.
    let key = Path::new("/nonexistent/key.asc");
    let err = published_versions("https://127.0.0.1:1/", key, "trusty", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::UnsupportedScheme { url } if url == "https://127.0.0.1:1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("only http://"), "{err}");
    assert!(err.hint().unwrap().contains("http://"), "{err:?}");

    for url in ["apt.example.com", "ftp://apt.example.com/", "http://u:p@h/"] {
        let err = published_versions(url, key, "trusty", "vrmd-whois").unwrap_err();
        assert!(
            matches!(err, RemoteError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    let err = published_versions("http://127.0.0.1:1/", key, "../etc", "vrmd-whois").unwrap_err();
    assert!(
        matches!(err, RemoteError::InvalidName { what: "dist", .. }),
        "{err:?}"
    );
}

#[test]
fn unpublished_dist_and_unreachable_server_name_the_url() {
    let repo = published_repo();
    let server = Server::start(&repo.root());
    let key = key_of(&repo);
    let err = published_versions(&server.url, &key, "xenial", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::NoInRelease { url, dist } if url == &format!("{}dists/xenial/InRelease", server.url) && dist == "xenial"),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("--dist"), "{err:?}");

    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = published_versions(
        &format!("http://127.0.0.1:{port}/"),
        &key,
        "trusty",
        "vrmd-whois",
    )
    .unwrap_err();
    assert!(
        matches!(&err, RemoteError::Connect { url, .. } if url.contains(&format!(":{port}/dists/trusty/InRelease"))),
        "{err:?}"
    );
}

#[test]
fn release_of_another_dist_is_refused() {
    let repo = published_repo();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&repo.public(), copy.path());
    copy_tree(
        &copy.path().join("dists/trusty"),
        &copy.path().join("dists/xenial"),
    );
    let server = TestServer::start(copy.path());
    let err = published_versions(&server.url, &key_of(&repo), "xenial", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::WrongDist { dist, suite, .. } if dist == "xenial" && suite == "trusty"),
        "{err:?}"
    );
}

/// A dist written by hand and signed with a fresh key: its Release lists
/// only the uncompressed `Packages`, and only `Packages.gz` is served (no
/// by-hash), so the decompressed text is all there is to check.
struct HandMade {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl HandMade {
    fn new(packages: &str, served_gz: &str) -> HandMade {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::new(vec![SigningKey::generate_at(
            KeyType::Ed25519,
            "hand <hand@repoctl.invalid>",
            UNIX_EPOCH + Duration::from_secs(1_600_000_000),
        )
        .unwrap()])
        .unwrap();
        let key = dir.path().join("key.asc");
        std::fs::write(&key, signer.public_keys_armored()).unwrap();
        let dist = dir.path().join("dists/trusty");
        let index = dist.join("main/binary-amd64");
        std::fs::create_dir_all(&index).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(served_gz.as_bytes()).unwrap();
        std::fs::write(index.join("Packages.gz"), gz.finish().unwrap()).unwrap();
        let bytes = packages.as_bytes();
        let release = Release {
            fields: ReleaseFields {
                origin: "hand".into(),
                label: "hand".into(),
                suite: "stable".into(),
                codename: "trusty".into(),
                date: 1_700_000_000,
                valid_until: None,
                architectures: vec!["amd64".into()],
                components: vec!["main".into()],
                description: None,
            },
            files: [(
                "main/binary-amd64/Packages".to_owned(),
                Checksums {
                    size: bytes.len() as u64,
                    md5: hex::encode(Md5::digest(bytes)),
                    sha1: hex::encode(Sha1::digest(bytes)),
                    sha256: hex::encode(Sha256::digest(bytes)),
                },
            )]
            .into_iter()
            .collect(),
        }
        .render();
        let signed = signer
            .clearsign_at(
                release.as_bytes(),
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )
            .unwrap();
        std::fs::write(dist.join("InRelease"), signed).unwrap();
        HandMade { dir, key }
    }
}

const HAND_INDEX: &str = "Package: vrmd-whois\nVersion: 5\nArchitecture: amd64\n\nPackage: vrmd-whois\nVersion: 1:0.9\nArchitecture: amd64\n";

#[test]
fn decompressed_index_is_checked_against_the_uncompressed_entry() {
    let honest = HandMade::new(HAND_INDEX, HAND_INDEX);
    let server = TestServer::start(honest.dir.path());
    // Found by codename; gzip; the epoch orders 1:0.9 above 5.
    let versions = published_versions(&server.url, &honest.key, "trusty", "vrmd-whois").unwrap();
    assert_eq!(
        triples(&versions),
        vec![
            triple("5", "main", "amd64"),
            triple("1:0.9", "main", "amd64")
        ]
    );

    let forged_text = HAND_INDEX.replace("Version: 5", "Version: 6");
    let forged = HandMade::new(HAND_INDEX, &forged_text);
    let server = TestServer::start(forged.dir.path());
    let err = published_versions(&server.url, &forged.key, "trusty", "vrmd-whois").unwrap_err();
    let RemoteError::Mismatch { url, mismatch } = &err else {
        panic!("expected a mismatch, got {err:?}");
    };
    assert!(
        url.ends_with("/dists/trusty/main/binary-amd64/Packages.gz"),
        "{url}"
    );
    assert_eq!(mismatch.what, "decompressed text");
    assert_eq!(mismatch.entry, "main/binary-amd64/Packages");
    assert_eq!(
        mismatch.actual_sha256,
        hex::encode(Sha256::digest(forged_text.as_bytes()))
    );
}

#[test]
fn invalid_published_version_is_an_error_naming_it() {
    let index = format!("{HAND_INDEX}\nPackage: vrmd-whois\nVersion: v7\nArchitecture: all\n");
    let hand = HandMade::new(&index, &index);
    let server = TestServer::start(hand.dir.path());
    let err = published_versions(&server.url, &hand.key, "trusty", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::BadVersion { line: 9, package, source, .. } if package == "vrmd-whois" && source.version == "v7"),
        "{err:?}"
    );
    let message = repoctl::repo::error_chain(&err);
    assert!(message.contains("Packages.gz"), "{message}");
    assert!(message.contains("'v7'"), "{message}");
    // Another package's versions do not depend on it... but the index is
    // still read whole: a broken stanza is never skipped.
    let broken = format!("{HAND_INDEX}\nPackage: other\nVersion: 1\nVersion: 2\n");
    let hand = HandMade::new(&broken, &broken);
    let server = TestServer::start(hand.dir.path());
    let err = published_versions(&server.url, &hand.key, "trusty", "vrmd-whois").unwrap_err();
    assert!(
        matches!(&err, RemoteError::Stanza { line: 9, .. }),
        "{err:?}"
    );
}
