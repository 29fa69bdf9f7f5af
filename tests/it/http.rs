//! The HTTP API over real HTTP on 127.0.0.1, with the real curl and apt:
//! uploads (raw and multipart), group commit, tokens and scopes, refusals
//! that change nothing, the query API and a graceful SIGTERM.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::*;

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// A metric's value from `/metrics` (0 when absent).
fn metric(url: &str, series: &str) -> f64 {
    let text = curl(&[], &format!("{url}metrics")).body;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// vrmd-whois 1..=count, architectures cycling all/amd64/i386, built on
/// every core (dpkg-deb is the slow part).
fn many_debs(repo: &TestRepo, count: usize) -> Vec<(String, &'static str, PathBuf)> {
    let work = repo.work();
    let archs = ["all", "amd64", "i386"];
    let specs: Vec<(String, &'static str)> =
        (1..=count).map(|n| (n.to_string(), archs[n % 3])).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(count.div_ceil(4))
            .map(|chunk| {
                let work = &work;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(version, arch)| {
                            let deb = Deb {
                                version,
                                architecture: arch,
                                payload: version,
                                ..Deb::default()
                            }
                            .build(work);
                            (version.clone(), *arch, deb)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("build thread"))
            .collect()
    })
}

#[test]
fn two_hundred_uploads_from_16_clients_are_all_published_in_fewer_publishes() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev,precise/dev"]);
    let debs = many_debs(&repo, 200);
    let server = Server::start(&repo.root());
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some((version, _, deb)) = debs.get(i) else {
                            return failures;
                        };
                        let dist = if i.is_multiple_of(2) {
                            "trusty/dev"
                        } else {
                            "precise/dev"
                        };
                        let answer = upload(&server.url, dist, &token, deb, "");
                        if answer.status != 201 {
                            failures.push(format!("{version}: {answer:?}"));
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!("200 uploads took {:?}", started.elapsed());

    // One last upload that waits for its publish: every earlier one is
    // committed before it, so it is in that publish or an earlier one.
    let last = Deb {
        version: "201",
        payload: "201",
        ..Deb::default()
    }
    .build(&repo.work());
    let answer = upload(&server.url, "trusty/dev", &token, &last, "?wait=published");
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.json()["published"], true);

    let detail = curl(
        &["-H", &bearer(&token)],
        &format!("{}api/v1/packages/vrmd-whois", server.url),
    );
    assert_eq!(detail.json()["files"].as_array().unwrap().len(), 201);
    let publishes = metric(&server.url, "repoctl_publishes_total");
    eprintln!("201 uploads, {publishes} publishes");
    assert!(
        (1.0..200.0).contains(&publishes),
        "{publishes} publishes for 201 uploads"
    );
    check_served_tree(
        &repo.public(),
        &["precise", "trusty"],
        &fixture("test-signing-key.pub.asc"),
    )
    .unwrap();

    for (dist, parity) in [("trusty", 0), ("precise", 1)] {
        for arch in ["amd64", "i386"] {
            let text = index_text(&repo.public(), dist, "dev", arch);
            let mut highest = 0;
            for (i, (version, deb_arch, _)) in debs.iter().enumerate() {
                let listed = text.contains(&format!("\nVersion: {version}\n"));
                let expected = i % 2 == parity && (*deb_arch == "all" || *deb_arch == arch);
                assert_eq!(listed, expected, "{dist} {arch} version {version}");
                if expected {
                    highest = highest.max(version.parse::<u32>().unwrap());
                }
            }
            if dist == "trusty" {
                highest = 201;
            }
            let (ok, log) = apt_check(
                &server.url,
                &repo.public().join("key.asc"),
                dist,
                "main dev",
                arch,
                &["--expect-candidate", &format!("vrmd-whois={highest}")],
            );
            assert!(ok, "{dist} {arch}:\n{log}");
        }
    }
}

#[test]
fn a_second_apt_update_is_answered_from_304s() {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["1"]);
    repo.add("trusty", "dev", &[&debs[0]]);
    let server = Server::start(&repo.root());
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let workdir = scratch.path().join("apt");
    let (ok, log) = apt_check(
        &server.url,
        &repo.public().join("key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &[
            "--expect",
            "vrmd-whois=1",
            "--workdir",
            workdir.to_str().unwrap(),
            "--keep",
        ],
    );
    assert!(ok, "{log}");
    let before = metric(&server.url, "repoctl_http_responses_total{status=\"304\"}");
    let again = Command::new(workdir.join("apt-get"))
        .arg("update")
        .output()
        .unwrap();
    let text = stdout(&again);
    assert!(again.status.success(), "{text}{}", stderr(&again));
    assert!(text.contains("Hit:") && !text.contains("Get:"), "{text}");
    let after = metric(&server.url, "repoctl_http_responses_total{status=\"304\"}");
    assert!(
        after > before,
        "no 304 answered ({before} -> {after}):\n{text}"
    );
}

#[test]
fn missing_or_wrong_token_is_401_and_a_token_without_the_scope_is_403_changing_nothing() {
    let repo = TestRepo::new();
    let precise_only = repo.token("precise-builder", &["--upload", "precise/dev"]);
    let revoked = repo.token("old", &["--upload", "trusty/dev"]);
    run_ok(repo.cmd().args(["token", "revoke", "old"]));
    let deb = &repo.whois_versions(&["7"])[0];
    let server = Server::start(&repo.root());
    let before = snapshot(&repo.root());

    let url = format!("{}api/v1/dists/trusty/components/dev/packages", server.url);
    let none = curl(&["-T", deb.to_str().unwrap()], &url);
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.header("www-authenticate").is_some());
    assert!(none.json()["hint"]
        .as_str()
        .unwrap()
        .contains("token create"));
    for wrong in ["repoctl_0000", revoked.as_str(), "Bearer"] {
        let answer = upload(&server.url, "trusty/dev", wrong, deb, "");
        assert_eq!(answer.status, 401, "{wrong}: {answer:?}");
    }
    let forbidden = upload(&server.url, "trusty/dev", &precise_only, deb, "");
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(forbidden.json()["error"]
        .as_str()
        .unwrap()
        .contains("trusty/dev"));
    let unknown = upload(&server.url, "sid/dev", &precise_only, deb, "");
    assert_eq!(unknown.status, 404, "{unknown:?}");

    assert_eq!(snapshot(&repo.root()), before);
    assert!(upload_leftovers(&repo.root()).is_empty());
}

#[test]
fn oversized_uploads_are_413_and_leave_no_temporary_file() {
    let repo = TestRepo::new();
    repo.edit_config("max_upload_bytes = 2147483648", "max_upload_bytes = 300");
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let deb = &repo.whois_versions(&["1"])[0];
    assert!(std::fs::metadata(deb).unwrap().len() > 300);
    let server = Server::start(&repo.root());
    let before = snapshot(&repo.root());

    // With Content-Length (refused before reading) and chunked (cut off).
    let declared = upload(&server.url, "trusty/dev", &token, deb, "");
    assert_eq!(declared.status, 413, "{declared:?}");
    assert!(declared.json()["hint"]
        .as_str()
        .unwrap()
        .contains("max_upload_bytes"));
    let url = format!("{}api/v1/dists/trusty/components/dev/packages", server.url);
    let chunked = curl(
        &[
            "-H",
            &bearer(&token),
            "-H",
            "Transfer-Encoding: chunked",
            "-T",
            deb.to_str().unwrap(),
        ],
        &url,
    );
    assert_eq!(chunked.status, 413, "{chunked:?}");

    assert_eq!(snapshot(&repo.root()), before);
    assert!(upload_leftovers(&repo.root()).is_empty());
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let before = snapshot(&repo.root());
    let addr = server.addr();
    {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "PUT /api/v1/dists/trusty/components/dev/packages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(b"!<arch>\n").unwrap();
        stream.write_all(&[0u8; 50_000]).unwrap();
        // Wait until the server has started the temporary file, then vanish.
        let started = Instant::now();
        while upload_leftovers(&repo.root()).is_empty()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !upload_leftovers(&repo.root()).is_empty(),
            "the upload never started"
        );
    }
    let started = Instant::now();
    while !upload_leftovers(&repo.root()).is_empty() && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        upload_leftovers(&repo.root()).is_empty(),
        "a temporary file was left"
    );
    assert_eq!(snapshot(&repo.root()), before);
    assert!(
        metric(
            &server.url,
            "repoctl_upload_refusals_total{reason=\"incomplete-body\"}"
        ) >= 1.0
    );
}

#[test]
fn a_body_that_is_not_a_deb_is_422_with_the_reason() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let before = snapshot(&repo.root());
    let text = repo.work().join("notes.txt");
    std::fs::write(&text, "just some text\n").unwrap();
    let answer = upload(&server.url, "trusty/dev", &token, &text, "");
    assert_eq!(answer.status, 422, "{answer:?}");
    let error = answer.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("not a Debian package"), "{error}");
    assert!(
        !error.contains("state/uploads"),
        "the server's temporary path leaked: {error}"
    );
    assert_eq!(snapshot(&repo.root()), before);
    assert!(upload_leftovers(&repo.root()).is_empty());
}

#[test]
fn the_same_version_with_other_bytes_is_409_and_the_same_bytes_are_200() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let work = repo.work();
    let first = Deb {
        version: "5",
        payload: "a",
        ..Deb::default()
    }
    .build(&work);
    let other = Deb {
        version: "5",
        payload: "b",
        ..Deb::default()
    }
    .build(&work);
    let server = Server::start(&repo.root());
    assert_eq!(
        upload(&server.url, "trusty/dev", &token, &first, "").status,
        201
    );
    let again = upload(&server.url, "trusty/dev", &token, &first, "");
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["outcome"], "unchanged");
    let before = snapshot(&repo.root());
    let conflict = upload(&server.url, "trusty/dev", &token, &other, "");
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert!(conflict.json()["hint"]
        .as_str()
        .unwrap()
        .contains("next-version"));
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn a_multipart_upload_with_wait_published_is_in_the_index_when_answered() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let deb = &repo.whois_versions(&["42"])[0];
    let server = Server::start(&repo.root());
    let url = format!(
        "{}api/v1/dists/trusty/components/dev/packages?wait=published",
        server.url
    );
    let form = format!("file=@{};filename=vrmd-whois_42_all.deb", deb.display());
    let answer = curl(&["-H", &bearer(&token), "-F", &form], &url);
    assert_eq!(answer.status, 201, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["published"], true);
    assert_eq!(json["version"], "42");
    assert_eq!(
        json["filename"],
        "pool/dev/v/vrmd-whois/vrmd-whois_42_all.deb"
    );
    assert!(index_text(&repo.public(), "trusty", "dev", "amd64").contains("\nVersion: 42\n"));

    // The pool file and the upload have the same bytes.
    let pool = curl(
        &[],
        &format!("{}{}", server.url, json["filename"].as_str().unwrap()),
    );
    assert_eq!(pool.status, 200);
    assert_eq!(
        pool.header("content-type").as_deref(),
        Some("application/vnd.debian.binary-package")
    );
    let history = curl(
        &["-H", &bearer(&token)],
        &format!("{}api/v1/history?package=vrmd-whois", server.url),
    );
    let rows = history.json();
    assert_eq!(rows[0]["door"], "http");
    assert_eq!(rows[0]["actor"], "ci");
    assert_eq!(rows[0]["detail"]["source"], "upload vrmd-whois_42_all.deb");
}

#[test]
fn the_query_api_lists_versions_and_hands_out_next_versions() {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["3", "10"]);
    repo.add("trusty", "dev", &[&debs[0], &debs[1]]);
    let reader = repo.token("reader", &[]);
    let builder = repo.token("builder", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let get = |token: &str, path: &str| {
        curl(
            &["-H", &bearer(token)],
            &format!("{}api/v1/{path}", server.url),
        )
    };

    let dists = get(&reader, "dists").json();
    assert_eq!(dists[1]["dist"], "trusty");
    assert_eq!(dists[1]["components"], serde_json::json!(["main", "dev"]));
    let packages = get(&reader, "dists/trusty/components/dev/packages").json();
    assert_eq!(
        packages,
        serde_json::json!([{"package": "vrmd-whois", "versions": ["3", "10"]}])
    );
    assert_eq!(
        get(&reader, "dists/precise/components/dev/packages").json(),
        serde_json::json!([])
    );
    assert_eq!(
        get(&reader, "packages/vrmd-whois").json()["files"][1]["version"],
        "10"
    );
    let missing = get(&reader, "packages/nothing-here");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["hint"].is_string());
    assert_eq!(get(&reader, "no/such/route").status, 404);
    assert_eq!(
        get(&reader, "packages/vrmd-whois/next-version").json()["next"],
        11
    );

    // Reserving needs upload rights; two reservations get two numbers.
    let url = format!("{}api/v1/packages/vrmd-whois/reservations", server.url);
    let denied = curl(&["-X", "POST", "-H", &bearer(&reader)], &url);
    assert_eq!(denied.status, 403, "{denied:?}");
    let first = curl(&["-X", "POST", "-H", &bearer(&builder)], &url);
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.json()["next"], 11);
    assert_eq!(first.json()["reservation"]["holder"], "builder");
    let second = curl(
        &["-X", "POST", "-H", &bearer(&builder)],
        &format!("{url}?for=build-77"),
    );
    assert_eq!(second.json()["next"], 12);
    assert_eq!(second.json()["reservation"]["holder"], "build-77");
    // The CLI sees the same reservations.
    let cli = run_ok(repo.cmd().args(["next-version", "vrmd-whois"]));
    assert_eq!(stdout(&cli).trim(), "13");
}

#[test]
fn sigterm_during_16_uploads_answers_each_cleanly_and_loses_no_success() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    // Bodies of ~300 KB sent at 150 KB/s: every upload is still arriving
    // when SIGTERM comes.
    let work = repo.work();
    let debs: Vec<(String, PathBuf)> = (1..=16)
        .map(|n| {
            let version = n.to_string();
            let mut random = rand::rngs::StdRng::seed_from_u64(n);
            let payload: String = (0..600_000)
                .map(|_| char::from(b"0123456789abcdef"[random.gen_range(0..16)]))
                .collect();
            let deb = Deb {
                version: &version,
                payload: &payload,
                ..Deb::default()
            }
            .build(&work);
            (version, deb)
        })
        .collect();
    let server = Server::start(&repo.root());
    let url = format!(
        "{}api/v1/dists/trusty/components/dev/packages?wait=published",
        server.url
    );
    let auth = bearer(&token);
    let answers: Vec<(String, Http)> = std::thread::scope(|scope| {
        let uploads: Vec<_> = debs
            .iter()
            .map(|(version, deb)| {
                let (url, auth) = (&url, &auth);
                scope.spawn(move || {
                    let args = [
                        "--limit-rate",
                        "150k",
                        "-H",
                        auth,
                        "-T",
                        deb.to_str().unwrap(),
                    ];
                    (version.clone(), curl(&args, url))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            !upload_leftovers(&repo.root()).is_empty(),
            "no upload was running yet"
        );
        let status = server.terminate();
        assert!(status.success(), "serve exited with {status}");
        uploads.into_iter().map(|u| u.join().unwrap()).collect()
    });

    let mut succeeded = Vec::new();
    for (version, answer) in &answers {
        match (answer.status, answer.curl_exit) {
            (201, 0) => succeeded.push(version.clone()),
            // Refused before it was read: the connection was never accepted.
            (0, 7) => {}
            (status, 0) if (400..600).contains(&status) => {
                assert!(answer.json()["error"].is_string(), "{answer:?}")
            }
            _ => panic!("version {version}: not a clean answer: {answer:?}"),
        }
    }
    // The grace period (30 s) is far longer than the uploads: all finish.
    assert_eq!(succeeded.len(), 16, "{answers:#?}");

    let _restarted = Server::start(&repo.root());
    assert!(upload_leftovers(&repo.root()).is_empty());
    let text = index_text(&repo.public(), "trusty", "dev", "amd64");
    for version in &succeeded {
        assert!(
            text.contains(&format!("\nVersion: {version}\n")),
            "acknowledged {version} is missing"
        );
    }
}

#[test]
fn token_create_prints_only_the_token_and_list_never_shows_it() {
    let repo = TestRepo::new();
    let out = run_ok(repo.cmd().args([
        "token",
        "create",
        "ci",
        "--upload",
        "trusty/dev,precise/dev",
    ]));
    let token = stdout(&out);
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(token.starts_with("repoctl_"));
    assert!(stderr(&out).contains("shown only this once"));
    let json = run_ok(
        repo.cmd()
            .args(["token", "create", "ops", "--operator", "--json"]),
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["operator"], true);
    assert!(json["token"].as_str().unwrap().starts_with("repoctl_"));

    let list = stdout(&run_ok(repo.cmd().args(["token", "list"])));
    assert!(
        list.contains("ci\tlive\tuploads to trusty/dev,precise/dev"),
        "{list}"
    );
    assert!(!list.contains(token.trim()) && !list.contains("repoctl_"));
    let catalog = std::fs::read(repo.root().join("state/catalog.sqlite")).unwrap();
    assert!(
        !String::from_utf8_lossy(&catalog).contains(token.trim()),
        "the token is stored"
    );

    let err = refused(repo.cmd().args(["token", "create", "ci"]));
    assert!(
        err.contains("already exists") && err.contains("hint:"),
        "{err}"
    );
    let err = refused(
        repo.cmd()
            .args(["token", "create", "x", "--upload", "sid/dev"]),
    );
    assert!(err.contains("sid/dev") && err.contains("hint:"), "{err}");
    let err = refused(repo.cmd().args(["token", "revoke", "nobody"]));
    assert!(err.contains("no token is named nobody"), "{err}");
}

#[test]
fn a_private_tree_and_its_metrics_need_basic_auth_and_the_public_ones_do_not() {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["1"]);
    repo.add("trusty", "dev", &[&debs[0]]);
    let fleet = repo.token("fleet", &[]);
    let inrelease = |server: &Server, args: &[&str]| {
        curl(args, &format!("{}dists/trusty/InRelease", server.url))
    };
    {
        let server = Server::start(&repo.root());
        assert_eq!(inrelease(&server, &[]).status, 200);
    }
    repo.edit_config("private = false", "private = true");
    let server = Server::start(&repo.root());
    let anonymous = inrelease(&server, &[]);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(
        inrelease(&server, &["-u", &format!("fleet:{fleet}")]).status,
        200
    );
    assert_eq!(
        inrelease(&server, &["-u", &format!("other:{fleet}")]).status,
        401
    );
    assert_eq!(
        inrelease(&server, &["-u", "fleet:repoctl_wrong"]).status,
        401
    );
    // /metrics names the dists: read like the tree.
    let metrics = |args: &[&str]| curl(args, &format!("{}metrics", server.url)).status;
    assert_eq!(metrics(&[]), 401);
    assert_eq!(metrics(&["-u", &format!("fleet:{fleet}")]), 200);
}

#[test]
fn a_full_disk_answers_507_changes_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount(8) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let root = disk.repo();
    let token = stdout(&run_ok(repoctl(&root).args([
        "token",
        "create",
        "ci",
        "--upload",
        "trusty/dev",
    ])));
    let work = tempfile::tempdir().unwrap();
    let deb = Deb {
        version: "3",
        ..Deb::default()
    }
    .build(work.path());
    let server = Server::start(&root);
    let before = snapshot(&root);

    let filler = disk.fill();
    let full = upload(&server.url, "trusty/dev", token.trim(), &deb, "");
    assert_eq!(full.status, 507, "{full:?}");
    assert!(
        full.json()["hint"].as_str().unwrap().contains("free space"),
        "{full:?}"
    );
    assert_eq!(snapshot(&root), before);
    assert!(upload_leftovers(&root).is_empty());

    std::fs::remove_file(filler).unwrap();
    let retried = upload(
        &server.url,
        "trusty/dev",
        token.trim(),
        &deb,
        "?wait=published",
    );
    assert_eq!(retried.status, 201, "{retried:?}");
    assert_eq!(retried.json()["published"], true);
}
