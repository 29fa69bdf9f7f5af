//! Hostile input through every door, and what holds against it: control
//! fields that try to smuggle lines into `Packages` (CLI add, HTTP upload,
//! incoming/), names with `/`, `..`, NUL, great length or non-UTF-8 bytes,
//! links in incoming/, slow, idle and oversized requests, downloads left
//! unread, every API route
//! without a live token of the right scope, a secret key that other users
//! can read, and secrets in the log.
//!
//! Each test names the protection it exercises and fails without it.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::support::*;

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

// ---------------------------------------------------------------- doors --

#[derive(Debug, Clone, Copy)]
enum Door {
    Cli,
    Http,
    Incoming,
}

const DOORS: [Door; 3] = [Door::Cli, Door::Http, Door::Incoming];

/// The three doors a package comes in by. incoming/ has a repository of its
/// own, driven by `watch --once`: the server's own watcher would race it.
struct Doors {
    served: TestRepo,
    server: Server,
    token: String,
    dropped: TestRepo,
}

impl Doors {
    fn new() -> Doors {
        let served = TestRepo::new();
        let token = served.token("ci", &["--upload", "trusty/dev"]);
        let server = Server::start(&served.root());
        Doors {
            served,
            server,
            token,
            dropped: TestRepo::new(),
        }
    }

    fn repo(&self, door: Door) -> &TestRepo {
        match door {
            Door::Cli | Door::Http => &self.served,
            Door::Incoming => &self.dropped,
        }
    }

    /// Offers `bytes` as the file `name` through `door`: `Ok` when it is
    /// taken, `Err` with the refusal's text. A crash, a 5xx or a failed
    /// watcher is an `Err` that no refusal matches: hostile input is the
    /// sender's problem, never the repository's.
    fn offer(&self, door: Door, name: &str, bytes: &[u8]) -> Result<(), String> {
        let repo = self.repo(door);
        let file = repo.work().join(format!("{door:?}-{name}"));
        std::fs::write(&file, bytes).unwrap();
        match door {
            Door::Cli => {
                let out = repo
                    .cmd()
                    .args(["add", "--dist", "trusty", "--component", "dev"])
                    .arg(&file)
                    .output()
                    .unwrap();
                match out.status.code() {
                    Some(0) => Ok(()),
                    Some(1) => Err(stderr(&out)),
                    _ => Err(format!("CRASH: repoctl add: {}", stderr(&out))),
                }
            }
            Door::Http => {
                let answer = upload(
                    &self.server.url,
                    "trusty/dev",
                    &self.token,
                    &file,
                    "?wait=published",
                );
                match answer.status {
                    200 | 201 => Ok(()),
                    400..=499 => Err(answer.json()["error"].as_str().unwrap().to_string()),
                    _ => Err(format!("SERVER ERROR: {answer:?}")),
                }
            }
            Door::Incoming => {
                // Closed and unchanged for an hour: taken or refused by the
                // next pass, never waited for.
                let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
                std::fs::File::options()
                    .write(true)
                    .open(&file)
                    .unwrap()
                    .set_modified(an_hour_ago)
                    .unwrap();
                let drop_dir = repo.root().join("incoming/trusty/dev");
                std::fs::rename(&file, drop_dir.join(name)).unwrap();
                let out = repo.cmd().args(["watch", "--once"]).output().unwrap();
                if !out.status.success() {
                    return Err(format!("WATCHER FAILED: {}", stderr(&out)));
                }
                if drop_dir.join(name).exists() {
                    return Err("STAYED in incoming/".into());
                }
                let reason = repo
                    .root()
                    .join("incoming/rejected")
                    .join(format!("{name}.reason"));
                std::fs::read_to_string(reason).map_or(Ok(()), Err)
            }
        }
    }
}

/// A control file for vrmd-whois `version`, `extra` lines before Description.
fn control(version: &str, extra: &str) -> Vec<u8> {
    fields("vrmd-whois", version, "all", extra)
}

fn fields(package: &str, version: &str, architecture: &str, extra: &str) -> Vec<u8> {
    format!(
        "Package: {package}\nVersion: {version}\nArchitecture: {architecture}\n\
         Maintainer: Ops <ops@example.com>\n{extra}Description: hostile\n body\n"
    )
    .into_bytes()
}

struct Hostile {
    kind: &'static str,
    /// The control file, given the version to use.
    control: fn(&str) -> Vec<u8>,
    /// `None`: taken, and harmless in the index. `Some(text)`: refused with
    /// `text` in the message.
    refused: Option<&'static str>,
}

const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hostile_controls() -> Vec<Hostile> {
    vec![
        // deb::control keeps continuation lines indented (Paragraph::parse,
        // Display): they stay inside the field they continue.
        Hostile {
            kind: "fields disguised as continuation lines",
            control: |v| {
                control(
                    v,
                    &format!(
                        "X-Note: harmless\n Filename: pool/dev/e/evil/evil_1_all.deb\n SHA256: {ZEROS}\n Size: 1\n"
                    ),
                )
            },
            refused: None,
        },
        // repo::package COMPUTED_FIELDS.
        Hostile {
            kind: "a Filename field",
            control: |v| control(v, "Filename: pool/dev/e/evil/evil_1_all.deb\n"),
            refused: Some("which only the repository may compute"),
        },
        Hostile {
            kind: "a lowercase sha256 field",
            control: |v| control(v, &format!("sha256: {ZEROS}\n")),
            refused: Some("which only the repository may compute"),
        },
        // deb::control: a blank line ends the paragraph, and one paragraph
        // is all a control file may hold.
        Hostile {
            kind: "a blank-looking continuation, then Filename",
            control: |v| control(v, "X-Note: a\n \t\nFilename: pool/evil.deb\n"),
            refused: Some("a second paragraph starts here"),
        },
        // repo::package: no control characters or line separators in values.
        Hostile {
            kind: "a carriage return, then Filename",
            control: |v| control(v, "Depends: libc6\rFilename: pool/evil.deb\n"),
            refused: Some("control character '\\r'"),
        },
        Hostile {
            kind: "a NUL in a value",
            control: |v| control(v, "Depends: libc6\0Filename: pool/evil.deb\n"),
            refused: Some("control character '\\0'"),
        },
        Hostile {
            kind: "a Unicode line separator, then SHA256",
            control: |v| control(v, &format!("Depends: libc6\u{2028}SHA256: {ZEROS}\n")),
            refused: Some("control character '\\u{2028}'"),
        },
        Hostile {
            kind: "a terminal escape sequence",
            control: |v| control(v, "X-Note: \u{1b}[2J\u{1b}]0;owned\u{7}\n"),
            refused: Some("control character '\\u{1b}'"),
        },
        // deb::control: text only.
        Hostile {
            kind: "non-UTF-8 bytes in a value",
            control: |v| [control(v, "").as_slice(), b"X-Bytes: \xff\xfe\n"].concat(),
            refused: Some("not UTF-8"),
        },
        // repo::package check_name.
        Hostile {
            kind: "a package name with path components",
            control: |v| fields("../../etc/passwd", v, "all", ""),
            refused: Some("invalid package name"),
        },
        Hostile {
            kind: "a package name with a NUL",
            control: |v| fields("vrmd\0whois", v, "all", ""),
            refused: Some("invalid package name"),
        },
        Hostile {
            kind: "a very long package name",
            control: |v| fields(&"v".repeat(300), v, "all", ""),
            refused: Some("longer than 128"),
        },
        // deb::version (dpkg's syntax), repo::package MAX_FILE_NAME.
        Hostile {
            kind: "a version with path components",
            control: |_| control("1/../../x", ""),
            refused: Some("invalid version"),
        },
        Hostile {
            kind: "a version with a NUL",
            control: |_| control("1\u{0}2", ""),
            refused: Some("invalid version"),
        },
        Hostile {
            kind: "a very long version",
            control: |_| control(&format!("1{}", "0".repeat(300)), ""),
            refused: Some("longer than the 255 a file name may have"),
        },
        // repo::package check_architecture.
        Hostile {
            kind: "an architecture with path components",
            control: |v| fields("vrmd-whois", v, "../../etc", ""),
            refused: Some("contains path components"),
        },
        Hostile {
            kind: "an architecture with a NUL",
            control: |v| fields("vrmd-whois", v, "all\0", ""),
            refused: Some("contains path components"),
        },
    ]
}

/// Every stanza of every trusty/dev index is the repository's own: each
/// field on a line of its own, one `Filename` naming a pool file whose size
/// and SHA256 the stanza states. Returns the versions listed.
fn assert_stanzas_are_the_repositorys(repo: &TestRepo) -> BTreeSet<String> {
    let mut versions = BTreeSet::new();
    for arch in ["amd64", "i386"] {
        let text = index_text(&repo.public(), "trusty", "dev", arch);
        assert!(
            !text.contains(['\r', '\0', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}']),
            "a line break other than \\n is in the index: {text:?}"
        );
        for stanza in text.split("\n\n").filter(|s| !s.trim().is_empty()) {
            let fields: Vec<(&str, &str)> = stanza
                .lines()
                .filter(|line| !line.starts_with([' ', '\t']))
                .map(|line| {
                    line.split_once(": ")
                        .unwrap_or_else(|| panic!("not a field: {line:?} in\n{stanza}"))
                })
                .collect();
            let one = |wanted: &str| {
                let found: Vec<&str> = fields
                    .iter()
                    .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
                    .map(|(_, value)| *value)
                    .collect();
                assert_eq!(found.len(), 1, "{wanted} in\n{stanza}");
                found[0]
            };
            let filename = one("Filename");
            assert!(
                filename.starts_with("pool/dev/v/vrmd-whois/vrmd-whois_"),
                "{stanza}"
            );
            let bytes = std::fs::read(repo.public().join(filename)).unwrap();
            assert_eq!(
                one("SHA256"),
                hex::encode(Sha256::digest(&bytes)),
                "{stanza}"
            );
            assert_eq!(one("Size"), bytes.len().to_string(), "{stanza}");
            versions.insert(one("Version").to_string());
        }
    }
    versions
}

#[test]
fn hostile_control_fields_inject_nothing_into_packages_through_any_door() {
    let doors = Doors::new();
    let mut taken = Vec::new();
    // Every case through every door, then every problem at once.
    let mut problems = Vec::new();
    for (i, case) in hostile_controls().iter().enumerate() {
        for (d, door) in DOORS.into_iter().enumerate() {
            // A version of its own per case and door, so each is a new file.
            let version = format!("{}{d}", i + 1);
            let deb = deb_with_control(&(case.control)(&version));
            let name = format!("case{i}-{d}.deb");
            let repo = doors.repo(door);
            let before = snapshot(&repo.root());
            let kind = case.kind;
            match (doors.offer(door, &name, &deb), case.refused) {
                (Ok(()), None) => taken.push((door, version)),
                (Err(error), Some(expected)) => {
                    if !error.contains(expected) {
                        problems.push(format!(
                            "{kind} through {door:?}: expected {expected:?} in:\n{error}"
                        ));
                    }
                    if snapshot(&repo.root()) != before {
                        problems.push(format!(
                            "{kind} through {door:?}: the refusal changed the repository"
                        ));
                    }
                }
                (outcome, expected) => problems.push(format!(
                    "{kind} through {door:?}: {outcome:?}, expected refusal: {expected:?}"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(taken.len(), 3, "{taken:?}");

    for repo in [&doors.served, &doors.dropped] {
        let listed = assert_stanzas_are_the_repositorys(repo);
        let wanted: BTreeSet<String> = taken
            .iter()
            .filter(|(door, _)| std::ptr::eq(doors.repo(*door), repo))
            .map(|(_, version)| version.clone())
            .collect();
        assert_eq!(listed, wanted);
        check_served_tree(
            &repo.public(),
            &["precise", "trusty"],
            &fixture("test-signing-key.pub.asc"),
        )
        .unwrap();
    }
    // apt itself fetches what the index names and checks it against the
    // signed hashes: the disguised Filename and SHA256 are not what it uses.
    let mut checks = Vec::new();
    for (door, version) in &taken {
        if !matches!(door, Door::Incoming) {
            checks.extend(["--download".to_string(), format!("vrmd-whois={version}")]);
        }
    }
    let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    let (ok, log) = apt_check(
        &doors.server.url,
        &doors.served.public().join("key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &checks,
    );
    assert!(ok, "{log}");
}

// ---------------------------------------------------------------- names --

/// curl with arguments that may not be UTF-8 (raw header bytes).
fn curl_os(args: &[&OsStr], url: &str) -> Http {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            "--path-as-is",
            "-w",
            "%{http_code}",
            "-o",
        ])
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    Http {
        status: stdout(&out).trim().parse().unwrap_or(0),
        headers: String::new(),
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        curl_exit: out.status.code().unwrap_or(-1),
    }
}

/// Files anywhere under `dir` whose name contains `needle`.
fn files_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(needle))
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn hostile_upload_names_and_url_segments_stay_inside_the_repository() {
    let repo = TestRepo::new();
    let operator = repo.token("ops", &["--operator"]);
    let debs = repo.whois_versions(&["1", "2", "3", "4"]);
    let server = Server::start(&repo.root());
    let auth = bearer(&operator);
    let url = format!(
        "{}api/v1/dists/trusty/components/dev/packages?wait=published",
        server.url
    );

    // Upload file names: only a plain .deb name is kept
    // (server::upload::safe_file_name); the temporary file stays in its
    // own directory under state/uploads/.
    let climbing = b"X-File-Name: ../../../../escaped-raw.deb".to_vec();
    let long = format!("X-File-Name: {}.deb", "a".repeat(5000)).into_bytes();
    let not_utf8 = b"X-File-Name: \xff\xfe-escaped.deb".to_vec();
    for (version, header) in [("1", &climbing), ("3", &long), ("4", &not_utf8)] {
        let deb = &debs[version.parse::<usize>().unwrap() - 1];
        let answer = curl_os(
            &[
                OsStr::new("-H"),
                OsStr::new(&auth),
                OsStr::new("-H"),
                OsStr::from_bytes(header),
                OsStr::new("-T"),
                deb.as_os_str(),
            ],
            &url,
        );
        assert_eq!(answer.status, 201, "version {version}: {answer:?}");
    }
    let form = format!(
        "file=@{};filename=../../../../escaped-form.deb",
        debs[1].display()
    );
    let answer = curl(&["-H", &auth, "-F", &form], &url);
    assert_eq!(answer.status, 201, "{answer:?}");

    let history = curl(
        &["-H", &auth],
        &format!("{}api/v1/history?package=vrmd-whois", server.url),
    )
    .json();
    let source_of = |version: &str| {
        history
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["action"] == "add" && row["version"] == version)
            .map(|row| row["detail"]["source"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(source_of("1"), "upload escaped-raw.deb");
    assert_eq!(source_of("2"), "upload escaped-form.deb");
    assert_eq!(source_of("3"), "upload upload.deb");
    assert_eq!(source_of("4"), "upload upload.deb");
    assert_eq!(
        files_named(repo.dir.path(), "escaped"),
        Vec::<PathBuf>::new()
    );
    assert!(upload_leftovers(&repo.root()).is_empty());

    // URL path segments: every hostile one is a 4xx that touches nothing,
    // for the API (a known target, a valid name, a known operation) and
    // for the apt tree (server::files::candidate, open_inside).
    let before = snapshot(&repo.root());
    let long_name = "v".repeat(5000);
    let huge = "x".repeat(100_000);
    let deb = debs[0].to_str().unwrap();
    let requests: Vec<(&str, String)> = vec![
        ("GET", "api/v1/packages/..%2F..%2F..%2Fetc%2Fpasswd".into()),
        ("GET", "api/v1/packages/%00".into()),
        ("GET", "api/v1/packages/%FF%FE".into()),
        ("GET", format!("api/v1/packages/{long_name}/next-version")),
        ("GET", "api/v1/packages/..%2F..%2Fx/next-version".into()),
        ("POST", "api/v1/packages/%00/reservations".into()),
        ("POST", "api/v1/packages/..%2F..%2Fx/reservations".into()),
        (
            "GET",
            "api/v1/dists/..%2F..%2Fetc/components/dev/packages".into(),
        ),
        (
            "PUT",
            "api/v1/dists/trusty/components/..%2F..%2F..%2F..%2Fescaped/packages".into(),
        ),
        (
            "PUT",
            "api/v1/dists/..%2F..%2F..%2F..%2Fescaped/components/dev/packages".into(),
        ),
        ("POST", "api/v1/dists/trusty/components/%00/packages".into()),
        ("PUT", "api/v1/dists/%FF/components/dev/packages".into()),
        (
            "PUT",
            format!("api/v1/dists/{long_name}/components/dev/packages"),
        ),
        ("POST", "api/v1/operations/..%2F..%2Fgc".into()),
        ("POST", "api/v1/operations/%FF".into()),
        ("GET", format!("api/v1/{huge}")),
        ("GET", "..%2F..%2F..%2F..%2Fetc%2Fpasswd".into()),
        ("GET", "../../../../etc/passwd".into()),
        ("GET", "pool/..%2F..%2Frepoctl.toml".into()),
        ("GET", "pool/../../repoctl.toml".into()),
        ("GET", "%2e%2e/repoctl.toml".into()),
        ("GET", "dists/trusty/%00".into()),
        ("GET", "%FF".into()),
        ("GET", ".generations".into()),
    ];
    let mut problems = Vec::new();
    for (method, path) in &requests {
        let mut args = vec!["-X", method, "--path-as-is", "-H", &auth];
        if path.contains("packages") && *method != "GET" {
            args.extend(["-T", deb]);
        }
        let answer = curl(&args, &format!("{}{path}", server.url));
        let shown = &path[..path.len().min(80)];
        if !(400..500).contains(&answer.status)
            || answer.body.contains("root:x:0")
            || answer.body.contains("[repository]")
        {
            let body = &answer.body[..answer.body.len().min(200)];
            problems.push(format!("{method} {shown}: {} {body}", answer.status));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(snapshot(&repo.root()), before);
    assert_eq!(
        files_named(repo.dir.path(), "escaped"),
        Vec::<PathBuf>::new()
    );
    assert!(upload_leftovers(&repo.root()).is_empty());
}

// ------------------------------------------------------------- incoming --

fn rejected_reason(repo: &TestRepo, name: &str) -> String {
    std::fs::read_to_string(
        repo.root()
            .join("incoming/rejected")
            .join(format!("{name}.reason")),
    )
    .unwrap_or_else(|e| panic!("{name}.reason: {e}"))
}

fn adds(repo: &TestRepo) -> Vec<String> {
    let conn = rusqlite::Connection::open(repo.root().join("state/catalog.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT version FROM history WHERE action = 'add' ORDER BY version")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn links_in_incoming_are_refused_and_what_they_name_is_untouched() {
    let repo = TestRepo::new();
    let work = repo.work();
    let drop_dir = repo.root().join("incoming/trusty/dev");
    // Someone else's files beside the drop zone (same filesystem, so they
    // can be hard-linked): a package and a secret, owned by uid 4242.
    let outside = work.join("someone-else");
    std::fs::create_dir_all(&outside).unwrap();
    let theirs: Vec<PathBuf> = ["61", "62", "63"]
        .iter()
        .map(|v| {
            let built = Deb {
                version: v,
                payload: v,
                ..Deb::default()
            }
            .build(&work);
            let path = outside.join(format!("vrmd-whois_{v}_all.deb"));
            std::fs::rename(built, &path).unwrap();
            path
        })
        .collect();
    let secret = outside.join("secret");
    std::fs::write(&secret, "not yours\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for path in theirs.iter().chain([&secret]) {
        std::os::unix::fs::chown(path, Some(4242), Some(4242)).unwrap();
    }
    let state_of = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap();
        (std::fs::read(path).unwrap(), meta.uid(), meta.mode())
    };
    let before: Vec<_> = theirs
        .iter()
        .chain([&secret])
        .map(|p| state_of(p))
        .collect();
    let passwd = std::fs::read("/etc/passwd").unwrap();

    // incoming::files::candidate (lstat: links are refused, never followed;
    // a second name is refused) and the symlinked directory above the files.
    std::os::unix::fs::symlink("/etc/passwd", drop_dir.join("passwd.deb")).unwrap();
    std::os::unix::fs::symlink(&theirs[0], drop_dir.join("symlinked.deb")).unwrap();
    std::fs::hard_link(&theirs[1], drop_dir.join("hardlinked.deb")).unwrap();
    std::fs::hard_link(&secret, drop_dir.join("hardlinked-secret.deb")).unwrap();
    let precise_dev = repo.root().join("incoming/precise/dev");
    std::fs::remove_dir(&precise_dev).unwrap();
    std::fs::create_dir(outside.join("dir")).unwrap();
    std::fs::copy(&theirs[2], outside.join("dir/vrmd-whois_63_all.deb")).unwrap();
    std::os::unix::fs::symlink(outside.join("dir"), &precise_dev).unwrap();
    // A directory where files go holds nobody else up (here: 64).
    std::fs::create_dir(drop_dir.join("a-directory")).unwrap();
    let own = &repo.whois_versions(&["64"])[0];
    std::fs::copy(own, drop_dir.join("vrmd-whois_64_all.deb")).unwrap();

    run_ok(repo.cmd().args(["watch", "--once"]));

    assert_eq!(adds(&repo), ["64"], "only the uploader's own file is taken");
    let listed = index_text(&repo.public(), "trusty", "dev", "amd64");
    assert!(listed.contains("\nVersion: 64\n"), "{listed}");
    for (entry, expected) in [
        (drop_dir.join("passwd.deb"), "symbolic link"),
        (drop_dir.join("symlinked.deb"), "symbolic link"),
        (drop_dir.join("hardlinked.deb"), "hard link"),
        (drop_dir.join("hardlinked-secret.deb"), "hard link"),
        (precise_dev.clone(), "symbolic link"),
        (drop_dir.join("a-directory"), "not a regular file"),
    ] {
        let name = entry.file_name().unwrap().to_str().unwrap();
        let reason = rejected_reason(&repo, name);
        assert!(reason.contains(expected), "{name}: {reason}");
        assert!(std::fs::symlink_metadata(&entry).is_err(), "{name} stayed");
    }
    let kept = std::fs::symlink_metadata(repo.root().join("incoming/rejected/passwd.deb")).unwrap();
    assert!(kept.file_type().is_symlink(), "the link itself is kept");
    let after: Vec<_> = theirs
        .iter()
        .chain([&secret])
        .map(|p| state_of(p))
        .collect();
    assert_eq!(after, before, "a file outside incoming/ changed");
    assert!(outside.join("dir/vrmd-whois_63_all.deb").exists());
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    let staged: Vec<_> = walkdir::WalkDir::new(repo.root().join("state/incoming"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}

#[test]
fn hostile_file_names_in_incoming_neither_stop_the_door_nor_leave_it() {
    let repo = TestRepo::new();
    let drop_dir = repo.root().join("incoming/trusty/dev");
    let debs = repo.whois_versions(&["71", "72", "73"]);
    // incoming::files::entries keeps a name that is not UTF-8 (it would
    // otherwise wait forever), reject cuts a name too long to take a
    // `.reason` beside it (it would otherwise fail every pass).
    let not_utf8 = drop_dir.join(OsStr::from_bytes(b"vrmd-whois_\xff\xfe.deb"));
    std::fs::copy(&debs[0], &not_utf8).unwrap();
    let long_name = format!("{}.deb", "x".repeat(250));
    std::fs::write(drop_dir.join(&long_name), "not a package").unwrap();
    let newline = "evil\nFilename: evil.deb";
    std::fs::write(drop_dir.join(newline), "not a package").unwrap();
    std::fs::copy(&debs[1], drop_dir.join("vrmd-whois_72_all.deb")).unwrap();
    std::fs::copy(&debs[2], drop_dir.join("y".repeat(250))).unwrap();
    // Refused files wait `settle_ms` after their last change.
    for entry in std::fs::read_dir(&drop_dir).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    let out = run_ok(repo.cmd().args(["watch", "--once"]));
    assert!(
        stderr(&out).contains("3 added, 2 rejected"),
        "{}",
        stderr(&out)
    );
    let remaining: Vec<_> = std::fs::read_dir(&drop_dir).unwrap().collect();
    assert!(remaining.is_empty(), "{remaining:?}");
    assert_eq!(adds(&repo), ["71", "72", "73"]);
    assert_stanzas_are_the_repositorys(&repo);
    let rejected = repo.root().join("incoming/rejected");
    let kept = "x".repeat(200);
    let reason = std::fs::read_to_string(rejected.join(format!("{kept}.reason"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(reason.lines().last().unwrap()).unwrap();
    assert_eq!(json["file"], long_name);
    assert_eq!(json["kept_as"], kept);
    let reason = std::fs::read_to_string(rejected.join(format!("{newline}.reason"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(reason.lines().last().unwrap()).unwrap();
    assert_eq!(json["file"], newline);
}

// -------------------------------------------------------- slow clients --

/// Reads until the server closes the connection: what it sent, or `None`
/// if the connection is still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
    None
}

/// Well past the 1 s the test configures, and far short of forever.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(8);

#[test]
fn connections_past_max_connections_wait_until_one_closes() {
    let repo = TestRepo::new();
    repo.edit_config("max_connections = 4096", "max_connections = 2");
    let server = Server::start(&repo.root());
    let addr = server.addr().to_string();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    // Two kept-alive connections, each answered once: both slots taken.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            stream
        })
        .collect();
    // A third connects (the kernel's backlog) but is not served...
    let mut third = TcpStream::connect(&addr).unwrap();
    let last = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    third.write_all(last.as_bytes()).unwrap();
    assert_eq!(
        read_until_closed(&mut third, Duration::from_secs(1)),
        None,
        "served past max_connections"
    );
    // ...until one of the two closes.
    drop(held);
    let answer = read_until_closed(&mut third, CUT_OFF_WITHIN).expect("never served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn slow_idle_and_oversized_requests_are_cut_off() {
    let repo = TestRepo::new();
    repo.edit_config("header_timeout_secs = 30", "header_timeout_secs = 1");
    repo.edit_config("body_timeout_secs = 60", "body_timeout_secs = 1");
    let uploader = repo.token("ci", &["--upload", "trusty/dev"]);
    let operator = repo.token("ops", &["--operator"]);
    let server = Server::start(&repo.root());
    let addr = server.addr().to_string();
    let before = snapshot(&repo.root());
    let connect = || TcpStream::connect(&addr).unwrap();

    std::thread::scope(|scope| {
        // server::connections: header_read_timeout, which also runs while a
        // connection waits for its first or next request.
        let idle = scope.spawn(|| read_until_closed(&mut connect(), CUT_OFF_WITHIN));
        let kept_alive = scope.spawn(|| {
            let mut stream = connect();
            write!(stream, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            read_until_closed(&mut stream, CUT_OFF_WITHIN)
        });
        let slow_headers = scope.spawn(|| {
            let mut stream = connect();
            let mut writer = stream.try_clone().unwrap();
            let stop = AtomicBool::new(false);
            std::thread::scope(|inner| {
                inner.spawn(|| {
                    let _ = write!(writer, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
                    while !stop.load(Ordering::SeqCst) {
                        if writer.write_all(b"X-Slow: 1\r\n").is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                });
                let answer = read_until_closed(&mut stream, CUT_OFF_WITHIN);
                stop.store(true, Ordering::SeqCst);
                answer
            })
        });
        // The body timeout layer of server::router: an upload that stalls
        // is refused and its temporary file removed.
        let stalled_upload = scope.spawn(|| {
            let mut stream = connect();
            write!(
                stream,
                "PUT /api/v1/dists/trusty/components/dev/packages HTTP/1.1\r\nHost: {addr}\r\n\
                 Authorization: Bearer {uploader}\r\nContent-Length: 100000\r\n\r\n!<arch>\n"
            )
            .unwrap();
            stream.write_all(&[0u8; 1000]).unwrap();
            read_until_closed(&mut stream, CUT_OFF_WITHIN)
        });
        let stalled_operation = scope.spawn(|| {
            let mut stream = connect();
            write!(
                stream,
                "POST /api/v1/operations/verify HTTP/1.1\r\nHost: {addr}\r\n\
                 Authorization: Bearer {operator}\r\nContent-Length: 1000\r\n\r\n{{\"repair\":"
            )
            .unwrap();
            read_until_closed(&mut stream, CUT_OFF_WITHIN)
        });

        let idle = idle.join().unwrap();
        assert!(idle.is_some(), "an idle connection stayed open");
        let kept_alive = kept_alive
            .join()
            .unwrap()
            .expect("a kept-alive idle connection stayed open");
        assert!(kept_alive.starts_with("HTTP/1.1 200"), "{kept_alive}");
        let slow_headers = slow_headers
            .join()
            .unwrap()
            .expect("headers sent a line at a time held the connection");
        assert!(!slow_headers.contains(" 200 "), "{slow_headers}");
        let stalled_upload = stalled_upload
            .join()
            .unwrap()
            .expect("a stalled upload held the connection");
        assert!(
            stalled_upload.starts_with("HTTP/1.1 400")
                && stalled_upload.contains("could not be read to its end"),
            "{stalled_upload}"
        );
        let stalled_operation = stalled_operation
            .join()
            .unwrap()
            .expect("a stalled operation body held the connection");
        assert!(
            stalled_operation.starts_with("HTTP/1.1 400")
                && stalled_operation.contains("could not be read to its end"),
            "{stalled_operation}"
        );
    });

    // server::connections MAX_HEADER_BYTES: 100 KB of headers answer 431.
    let mut stream = connect();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    )
    .unwrap_or(());
    // Answered 431, or cut off mid-way (the rest of the headers unread):
    // never served.
    let answer = read_until_closed(&mut stream, CUT_OFF_WITHIN)
        .expect("100 KB of headers held the connection");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // server::operations MAX_BODY_BYTES: a 1 MB operation body is 413,
    // not buffered and parsed.
    let big = repo.work().join("big.json");
    std::fs::write(
        &big,
        format!("{{\"dry_run\": true, \"x\": \"{}\"}}", "a".repeat(1 << 20)),
    )
    .unwrap();
    let answer = curl(
        &[
            "-X",
            "POST",
            "-H",
            &bearer(&operator),
            "--data-binary",
            &format!("@{}", big.display()),
        ],
        &format!("{}api/v1/operations/gc", server.url),
    );
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.json()["error"].is_string());

    // The server is still there for everyone else, and nothing changed.
    assert_eq!(curl(&[], &format!("{}healthz", server.url)).status, 200);
    let start = Instant::now();
    while !upload_leftovers(&repo.root()).is_empty() && start.elapsed() < CUT_OFF_WITHIN {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(upload_leftovers(&repo.root()).is_empty());
    assert_eq!(snapshot(&repo.root()), before);
}

#[test]
fn a_download_left_unread_is_cut_off() {
    // [server] body_timeout_secs: a client that asks for a large file and
    // stops reading holds its connection only that long, on either path.
    let repo = TestRepo::new();
    repo.edit_config("body_timeout_secs = 60", "body_timeout_secs = 1");
    let server = Server::start(&repo.root());
    // Far more than the socket buffers of both ends hold on loopback.
    let size = 64 << 20;
    let file = std::fs::File::create(repo.public().join("pool").join("big.bin")).unwrap();
    file.set_len(size).unwrap();
    let addr = server.addr();
    let big = format!("GET /pool/big.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    // server::tree_http, Limits::send_timeout.
    assert_cut_off(addr, &big, size);
    // After /healthz the connection belongs to hyper (server::connections,
    // Replay), which then streams the file.
    let handed_over = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n{big}");
    assert_cut_off(addr, &handed_over, size);
    assert_eq!(curl(&[], &format!("{}healthz", server.url)).status, 200);
}

/// Sends `requests`, reads nothing for 4 s, then reads until the server
/// closes: less than the `size` bytes of the file must have come.
fn assert_cut_off(addr: &str, requests: &str, size: u64) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(requests.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    stream.set_read_timeout(Some(CUT_OFF_WITHIN)).unwrap();
    let mut received = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    let start = Instant::now();
    // Until the server's close (EOF or reset); a server that kept sending
    // would deliver all of it.
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        received += n as u64;
        assert!(start.elapsed() < CUT_OFF_WITHIN, "still sending");
    }
    assert!(
        received < size,
        "the whole file came: the connection was not cut off"
    );
}

// --------------------------------------------------------------- tokens --

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    /// Nobody needs a token (the health check).
    Anyone,
    /// Any live token (reads; the apt tree and /metrics of a private
    /// repository).
    AnyToken,
    /// A token that may upload to trusty/dev.
    UploadHere,
    /// A token with any upload scope.
    SomeUpload,
    Operator,
}

struct Route {
    method: &'static str,
    /// The path pattern under /api/v1 as the router names it; empty for
    /// routes outside the API.
    pattern: &'static str,
    /// A concrete path of the route (after the server's URL).
    path: &'static str,
    /// A body that a token of the right scope may send (dry runs).
    body: &'static str,
    needs: Needs,
}

const PACKAGES: &str = "/dists/{dist}/components/{component}/packages";
const OPERATION: &str = "/operations/{action}";

/// Every route, with the token it needs. A route added to the router
/// without a row here fails the test.
const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        pattern: "/dists",
        path: "api/v1/dists",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "GET",
        pattern: PACKAGES,
        path: "api/v1/dists/trusty/components/dev/packages",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "PUT",
        pattern: PACKAGES,
        path: "api/v1/dists/trusty/components/dev/packages",
        body: "@deb",
        needs: Needs::UploadHere,
    },
    Route {
        method: "POST",
        pattern: PACKAGES,
        path: "api/v1/dists/trusty/components/dev/packages",
        body: "@deb",
        needs: Needs::UploadHere,
    },
    Route {
        method: "GET",
        pattern: "/packages",
        path: "api/v1/packages",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "GET",
        pattern: "/packages/{name}",
        path: "api/v1/packages/vrmd-whois",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "GET",
        pattern: "/packages/{name}/next-version",
        path: "api/v1/packages/vrmd-whois/next-version",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "POST",
        pattern: "/packages/{name}/reservations",
        path: "api/v1/packages/vrmd-whois/reservations",
        body: "",
        needs: Needs::SomeUpload,
    },
    Route {
        method: "GET",
        pattern: "/history",
        path: "api/v1/history",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/copy",
        body: r#"{"spec": "vrmd-whois=1", "from": "trusty/dev", "to": "trusty/main", "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/move",
        body: r#"{"spec": "vrmd-whois=1", "from": "trusty/dev", "to": "trusty/main", "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/remove",
        body: r#"{"spec": "vrmd-whois=1", "from": "trusty/dev", "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/restore",
        body: r#"{"spec": "vrmd-whois=1", "from": "trusty/dev", "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/rollback",
        body: r#"{"package": "vrmd-whois", "from": "trusty/dev", "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/prune",
        body: r#"{"keep": 1, "dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/gc",
        body: r#"{"dry_run": true}"#,
        needs: Needs::Operator,
    },
    Route {
        method: "POST",
        pattern: OPERATION,
        path: "api/v1/operations/verify",
        body: "{}",
        needs: Needs::Operator,
    },
    Route {
        method: "GET",
        pattern: "",
        path: "dists/trusty/InRelease",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "GET",
        pattern: "",
        path: "pool/dev/v/vrmd-whois/vrmd-whois_1_all.deb",
        body: "",
        needs: Needs::AnyToken,
    },
    Route {
        method: "GET",
        pattern: "",
        path: "healthz",
        body: "",
        needs: Needs::Anyone,
    },
    Route {
        method: "GET",
        pattern: "",
        path: "metrics",
        body: "",
        // The repository of this test is private: its metrics name dists.
        needs: Needs::AnyToken,
    },
];

/// The methods the server answers on `path` (from the `Allow` of a 405).
fn methods_of(server: &Server, path: &str) -> BTreeSet<String> {
    let answer = curl(&["-X", "BREW"], &format!("{}{path}", server.url));
    assert_eq!(answer.status, 405, "{path}: {answer:?}");
    answer
        .header("allow")
        .unwrap_or_else(|| panic!("{path}: no Allow header"))
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| m != "HEAD")
        .collect()
}

#[test]
fn every_route_refuses_a_missing_revoked_or_under_scoped_token() {
    let repo = TestRepo::new();
    repo.edit_config("private = false", "private = true");
    let debs = repo.whois_versions(&["1", "2"]);
    repo.add("trusty", "dev", &[&debs[0]]);
    let deb = debs[1].to_str().unwrap();
    let reader = repo.token("reader", &[]);
    let here = repo.token("here", &["--upload", "trusty/dev"]);
    let elsewhere = repo.token("elsewhere", &["--upload", "precise/dev"]);
    let operator = repo.token("ops", &["--operator"]);
    let revoked = repo.token("old-ops", &["--operator"]);
    run_ok(repo.cmd().args(["token", "revoke", "old-ops"]));
    let server = Server::start(&repo.root());

    // The table covers the router: every method of every API path.
    let mut served = BTreeSet::new();
    for pattern in repoctl::server::api_paths() {
        let path = pattern
            .replace("{dist}", "trusty")
            .replace("{component}", "dev")
            .replace("{name}", "vrmd-whois")
            .replace("{action}", "gc");
        for method in methods_of(&server, &format!("api/v1{path}")) {
            served.insert((method, pattern.to_string()));
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| !r.pattern.is_empty())
        .map(|r| (r.method.to_string(), r.pattern.to_string()))
        .collect();
    assert_eq!(
        served, listed,
        "the API routes and this test's table differ: give each route a row"
    );

    let request = |route: &Route, credentials: &[&str]| {
        let mut args = vec!["-X", route.method];
        args.extend(credentials);
        match route.body {
            "" => {}
            "@deb" => args.extend(["-T", deb]),
            json => args.extend(["--data-binary", json]),
        }
        curl(&args, &format!("{}{}", server.url, route.path))
    };
    let bearer_of = |token: &str| bearer(token);
    let (reader_h, here_h, elsewhere_h, operator_h, revoked_h) = (
        bearer_of(&reader),
        bearer_of(&here),
        bearer_of(&elsewhere),
        bearer_of(&operator),
        bearer_of(&revoked),
    );
    let garbage = bearer_of(&format!("repoctl_{}", "0".repeat(64)));
    let wrong_login = format!("intruder:{operator}");
    let revoked_basic = format!("old-ops:{revoked}");

    // Refusals first: they must change nothing.
    let before = snapshot(&repo.root());
    for route in ROUTES {
        let what = format!("{} /{}", route.method, route.path);
        let mut refusals: Vec<(&str, Vec<&str>, u16)> = Vec::new();
        if route.needs != Needs::Anyone {
            refusals.extend([
                ("no token", vec![], 401),
                ("a revoked token", vec!["-H", revoked_h.as_str()], 401),
                (
                    "a revoked token (basic)",
                    vec!["-u", revoked_basic.as_str()],
                    401,
                ),
                ("an unknown token", vec!["-H", garbage.as_str()], 401),
                (
                    "another token's name",
                    vec!["-u", wrong_login.as_str()],
                    401,
                ),
            ]);
        }
        match route.needs {
            Needs::Anyone | Needs::AnyToken => {}
            Needs::UploadHere => refusals.extend([
                ("a read-only token", vec!["-H", reader_h.as_str()], 403),
                (
                    "a token for precise/dev",
                    vec!["-H", elsewhere_h.as_str()],
                    403,
                ),
            ]),
            Needs::SomeUpload => {
                refusals.push(("a read-only token", vec!["-H", reader_h.as_str()], 403))
            }
            Needs::Operator => refusals.extend([
                ("a read-only token", vec!["-H", reader_h.as_str()], 403),
                ("an upload token", vec!["-H", here_h.as_str()], 403),
            ]),
        }
        for (who, credentials, status) in refusals {
            let answer = request(route, &credentials);
            assert_eq!(answer.status, status, "{what} with {who}: {answer:?}");
            if route.pattern.is_empty() {
                continue;
            }
            assert!(answer.json()["error"].is_string(), "{what} with {who}");
        }
    }
    assert_eq!(
        snapshot(&repo.root()),
        before,
        "a refused request changed something"
    );

    // The right token gets through: each row reaches its handler.
    for route in ROUTES {
        let token = match route.needs {
            Needs::Anyone => None,
            Needs::AnyToken => Some(&reader_h),
            Needs::UploadHere => Some(&here_h),
            Needs::SomeUpload => Some(&elsewhere_h),
            Needs::Operator => Some(&operator_h),
        };
        let credentials: Vec<&str> = token.map_or(vec![], |t| vec!["-H", t.as_str()]);
        let answer = request(route, &credentials);
        assert!(
            !matches!(answer.status, 401 | 403) && (200..500).contains(&answer.status),
            "{} /{} with the right token: {answer:?}",
            route.method,
            route.path
        );
    }
}

// --------------------------------------------------------- secret keys --

/// Runs `cmd` to its end, failing the test if it is still running after
/// `limit` (a server that should have refused to start).
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} was still running:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_secret_key_open_to_group_or_others_stops_every_signing_command_before_any_change() {
    let repo = TestRepo::new();
    let debs = repo.whois_versions(&["1", "2", "3"]);
    repo.add("trusty", "dev", &[&debs[0], &debs[1]]);
    let key = repo.root().join("keys/signing-key.asc");
    assert!(
        key.exists(),
        "the test repository's key is at {}",
        key.display()
    );
    let deb = debs[2].to_str().unwrap();

    let commands: &[&[&str]] = &[
        &["serve", "--listen", "127.0.0.1:0"],
        &["watch"],
        &["watch", "--once"],
        &["publish", "--force"],
        &["add", "--dist", "trusty", "--component", "dev", deb],
        &[
            "add",
            "--no-publish",
            "--dist",
            "trusty",
            "--component",
            "dev",
            deb,
        ],
        &[
            "copy",
            "vrmd-whois=2",
            "--from",
            "trusty/dev",
            "--to",
            "trusty/main",
        ],
        &[
            "move",
            "vrmd-whois=2",
            "--from",
            "trusty/dev",
            "--to",
            "trusty/main",
        ],
        &["remove", "vrmd-whois=2", "--from", "trusty/dev"],
        &["rollback", "vrmd-whois", "--from", "trusty/dev"],
        &["restore", "vrmd-whois=2", "--from", "trusty/dev"],
        &["prune", "--keep", "1"],
        &["gc"],
        &["verify", "--repair"],
    ];
    let before = snapshot(&repo.root());
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        for args in commands {
            let out = run_bounded(repo.cmd().args(*args), Duration::from_secs(20));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} ({mode:o}):\n{err}");
            for expected in [
                key.display().to_string(),
                format!("mode {mode:04o}"),
                format!("chmod 600 {}", key.display()),
            ] {
                assert!(
                    err.contains(&expected),
                    "{args:?} ({mode:o}): no {expected:?} in:\n{err}"
                );
            }
            assert!(!err.contains("http://"), "{args:?} started serving:\n{err}");
            assert_eq!(
                snapshot(&repo.root()),
                before,
                "{args:?} ({mode:o}) changed something"
            );
        }
    }
    // The fix the message gives works.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    repo.add("trusty", "dev", &[&debs[2]]);
}

// ------------------------------------------------------------------ logs --

/// Texts that must never be in a log: the armored secret key's lines, and
/// windows of its binary form in hex and as Rust byte arrays.
fn key_material(armored: &str) -> Vec<String> {
    let mut needles: Vec<String> = armored
        .lines()
        .filter(|line| line.len() >= 20 && !line.starts_with("-----"))
        .map(str::to_string)
        .collect();
    assert!(needles.len() > 20, "the armored key is too short to check");
    let body: String = armored
        .lines()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----"))
        .collect();
    let binary = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap()
    };
    assert!(binary.len() > 1000, "{} bytes of key", binary.len());
    for window in binary.chunks(24).filter(|w| w.len() == 24) {
        needles.push(hex::encode(window));
        needles.push(hex::encode_upper(window));
        needles.push(format!("{:?}", &window[..12]).replace(' ', ""));
        needles.push(format!("{:?}", &window[..12]));
    }
    needles.push("PRIVATE KEY".into());
    needles
}

fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn no_token_password_or_key_material_reaches_the_log() {
    let repo = TestRepo::new();
    repo.edit_config("private = false", "private = true");
    repo.edit_config("rescan_ms = 5000", "rescan_ms = 200");
    let ci = repo.token("ci", &["--upload", "trusty/dev"]);
    let ops = repo.token("ops", &["--operator"]);
    let fleet = repo.token("fleet", &[]);
    let old = repo.token("old", &["--operator"]);
    run_ok(repo.cmd().args(["token", "revoke", "old"]));
    let debs = repo.whois_versions(&["1", "2", "3", "4", "5"]);
    let logging = ["--log-format", "json", "-vv"];
    let server = Server::start_with(&repo.root(), &logging);
    let api = |path: &str| format!("{}api/v1/{path}", server.url);
    let packages = api("dists/trusty/components/dev/packages");
    let deb = |i: usize| debs[i].to_str().unwrap().to_string();

    // Uploads: bearer, basic auth, multipart, refused ones.
    assert_eq!(
        upload(&server.url, "trusty/dev", &ci, &debs[0], "?wait=published").status,
        201
    );
    let basic_ci = format!("ci:{ci}");
    assert_eq!(
        curl(&["-u", &basic_ci, "-T", &deb(1)], &packages).status,
        201
    );
    let form = format!("file=@{}", deb(2));
    assert_eq!(
        curl(&["-H", &bearer(&ci), "-F", &form], &packages).status,
        201
    );
    let text = repo.work().join("notes.deb");
    std::fs::write(&text, "not a package").unwrap();
    assert_eq!(
        upload(&server.url, "trusty/dev", &ci, &text, "").status,
        422
    );
    let mismatch = curl(
        &[
            "-H",
            &bearer(&ci),
            "-H",
            "X-Checksum-Sha256: 00",
            "-T",
            &deb(3),
        ],
        &packages,
    );
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        upload(&server.url, "precise/dev", &ci, &debs[3], "").status,
        403
    );
    // Failed authentication of every kind.
    assert_eq!(
        upload(&server.url, "trusty/dev", &old, &debs[3], "").status,
        401
    );
    assert_eq!(
        upload(&server.url, "trusty/dev", &format!("{ci}x"), &debs[3], "").status,
        401
    );
    let wrong_login = format!("intruder:{ci}");
    assert_eq!(
        curl(&["-u", &wrong_login, "-T", &deb(3)], &packages).status,
        401
    );
    // The private apt tree with basic auth, as apt sends it.
    let inrelease = format!("{}dists/trusty/InRelease", server.url);
    let basic_fleet = format!("fleet:{fleet}");
    assert_eq!(curl(&["-u", &basic_fleet], &inrelease).status, 200);
    let wrong_password = format!("fleet:{ops}");
    assert_eq!(curl(&["-u", &wrong_password], &inrelease).status, 401);
    // Queries and reservations.
    for path in [
        "dists",
        "packages",
        "packages/vrmd-whois",
        "history?limit=5",
    ] {
        assert_eq!(
            curl(&["-H", &bearer(&fleet)], &api(path)).status,
            200,
            "{path}"
        );
    }
    let reserve = api("packages/vrmd-whois/reservations?for=build-7");
    assert_eq!(
        curl(&["-X", "POST", "-H", &bearer(&ci)], &reserve).status,
        201
    );
    // The history names the token that reserved, its door and the holder.
    let history = curl(&["-H", &bearer(&fleet)], &api("history?limit=1"));
    let event = &history.json()[0];
    assert_eq!(
        (&event["action"], &event["door"], &event["actor"]),
        (&"reserve".into(), &"http".into(), &"ci".into()),
        "{event}"
    );
    assert_eq!(event["detail"]["holder"], "build-7", "{event}");
    // Operator actions, allowed and refused.
    let operate = |token: &str, action: &str, body: &str| {
        curl(
            &["-X", "POST", "-H", &bearer(token), "--data-binary", body],
            &api(&format!("operations/{action}")),
        )
        .status
    };
    let copy = r#"{"spec": "vrmd-whois=1", "from": "trusty/dev", "to": "precise/main"}"#;
    assert_eq!(operate(&ops, "copy", copy), 200);
    assert_eq!(
        operate(
            &ops,
            "remove",
            r#"{"spec": "vrmd-whois=1", "from": "precise/main"}"#
        ),
        200
    );
    assert_eq!(operate(&ops, "verify", "{}"), 200);
    assert_eq!(operate(&ops, "gc", r#"{"dry_run": true}"#), 200);
    assert_eq!(operate(&ci, "gc", "{}"), 403);
    assert_eq!(operate(&old, "gc", "{}"), 401);
    // The incoming door, inside the same server.
    let dropped = repo.root().join("incoming/trusty/dev/vrmd-whois_5_all.deb");
    std::fs::copy(&debs[4], &dropped).unwrap();
    let start = Instant::now();
    while dropped.exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, mut log) = server.terminate_with_log();
    assert!(status.success(), "{log}");
    // Commands that load the key, with the same logging.
    for args in [
        &["publish", "--force"][..],
        &["verify"],
        &["token", "list"],
        &["add", "--dist", "trusty", "--component", "main", &deb(3)],
    ] {
        let out = run_ok(repo.cmd().args(logging).args(args));
        log.push_str(&stderr(&out));
    }

    // The log is there, at debug level, and holds the requests.
    assert!(
        log.contains("\"level\":\"DEBUG\""),
        "no debug lines:\n{log}"
    );
    assert!(log.contains("/api/v1/operations/copy"), "{log}");
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (name, token) in [("ci", &ci), ("ops", &ops), ("fleet", &fleet), ("old", &old)] {
        let hex_part = token.trim_start_matches("repoctl_").to_string();
        secrets.push((format!("token {name}"), hex_part[..16].to_string()));
        secrets.push((format!("token {name} (end)"), hex_part[48..].to_string()));
        for login in [name, "intruder", "fleet"] {
            let basic = encode_base64(format!("{login}:{token}").as_bytes());
            secrets.push((format!("basic auth {login}:{name}"), basic));
        }
    }
    let armored = std::fs::read_to_string(repo.root().join("keys/signing-key.asc")).unwrap();
    for needle in key_material(&armored) {
        secrets.push(("secret key".into(), needle));
    }
    for (what, needle) in &secrets {
        assert!(
            !log.contains(needle.as_str()),
            "the log holds a {what}: {needle:?}"
        );
    }
}
