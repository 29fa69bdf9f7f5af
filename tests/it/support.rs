//! What the integration tests share: the real binary, real `.deb`s built by
//! `dpkg-deb`, a served repository on 127.0.0.1, the real apt through
//! `../shared/apt-check/apt-check.sh`, and snapshots of a repository's state.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    project_dir().join("tests").join("fixtures").join(name)
}

/// The real `repoctl` binary, with a fixed clock unless the test sets one.
pub fn repoctl(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_repoctl"));
    cmd.arg("--root").arg(root).env_remove("REPOCTL_ROOT");
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs and returns the output, panicking with both streams on failure.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must be refused: exit code 1, nothing on stdout
/// that a script could take for an answer. Returns stderr.
pub fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{cmd:?} was not refused:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refusal printed to stdout: {}",
        stdout(&out)
    );
    err
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A repository in a temporary directory, signed with the fixed test key
/// (generating RSA-4096 for every test would cost seconds each).
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        TestRepo::with_args(&[])
    }

    pub fn with_args(args: &[&str]) -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        run_ok(
            repoctl(&root)
                .arg("init")
                .arg("--import-key")
                .arg(fixture("test-signing-key.asc"))
                .args(args),
        );
        TestRepo { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn public(&self) -> PathBuf {
        self.root().join("public")
    }

    pub fn cmd(&self) -> Command {
        repoctl(&self.root())
    }

    /// A scratch directory for building packages.
    pub fn work(&self) -> PathBuf {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        work
    }

    /// `vrmd-whois` .debs of these versions, each with its own bytes.
    pub fn whois_versions(&self, versions: &[&str]) -> Vec<PathBuf> {
        whois_debs(&self.work(), versions)
    }

    /// A new API token (`repoctl token create NAME ARGS...`).
    pub fn token(&self, name: &str, args: &[&str]) -> String {
        let out = run_ok(self.cmd().args(["token", "create", name]).args(args));
        stdout(&out).trim().to_string()
    }

    /// Edits repoctl.toml: replaces `from` (which must be there) by `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let path = self.root().join("repoctl.toml");
        let text = std::fs::read_to_string(&path).expect("config");
        assert!(
            text.contains(from),
            "{from:?} is not in repoctl.toml:\n{text}"
        );
        std::fs::write(&path, text.replace(from, to)).expect("write config");
    }

    pub fn add(&self, dist: &str, component: &str, debs: &[&Path]) -> Output {
        run_ok(
            self.cmd()
                .args(["add", "--dist", dist, "--component", component])
                .args(debs),
        )
    }
}

/// A `.deb` built by the real `dpkg-deb`.
pub struct Deb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub architecture: &'a str,
    /// Extra control lines, e.g. "Depends: libc6\n".
    pub extra: &'a str,
    /// `gzip`, `xz`, `zstd` or `none`: the compression dpkg-deb uses for
    /// both members.
    pub compression: &'a str,
    /// Distinguishes otherwise identical packages (different bytes).
    pub payload: &'a str,
}

impl Default for Deb<'_> {
    fn default() -> Self {
        Deb {
            name: "vrmd-whois",
            version: "1",
            architecture: "all",
            extra: "",
            compression: "gzip",
            payload: "hello",
        }
    }
}

impl Deb<'_> {
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = dir.join(format!(
            "tree-{}-{}-{}-{}",
            self.name,
            self.version.replace(':', "_"),
            self.architecture,
            hex::encode(&Sha256::digest(self.payload.as_bytes())[..4])
        ));
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(tree.join("DEBIAN")).expect("DEBIAN dir");
        let app = tree.join("vrmd").join(self.name);
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::write(app.join("payload.txt"), self.payload).expect("payload");
        let control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Ops <ops@example.com>\nInstalled-Size: 1\nSection: misc\nPriority: optional\n{}Description: test package {}\n Built by the repoctl test suite.\n .\n Second paragraph.\n",
            self.name, self.version, self.architecture, self.extra, self.name
        );
        std::fs::write(tree.join("DEBIAN").join("control"), control).expect("control");
        let out = dir.join(format!(
            "{}_{}_{}-{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.architecture,
            hex::encode(&Sha256::digest(self.payload.as_bytes())[..4])
        ));
        run_ok(
            Command::new("dpkg-deb")
                .arg("--root-owner-group")
                .arg(format!("-Z{}", self.compression))
                .arg("--build")
                .arg(&tree)
                .arg(&out)
                .stdout(Stdio::null()),
        );
        out
    }
}

/// `repoctl serve` on a free port of 127.0.0.1, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    /// Everything the server wrote to stderr after its address.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        Server::start_with(root, &[])
    }

    /// `127.0.0.1:PORT`, for raw TCP clients.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://").trim_end_matches('/')
    }

    /// With more arguments, e.g. `--log-format json -vv`.
    pub fn start_with(root: &Path, args: &[&str]) -> Server {
        let mut child = repoctl(root)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("repoctl serve starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut reader = BufReader::new(stderr);
        let mut log = String::new();
        let url = loop {
            let mut line = Vec::new();
            let read = reader.read_until(b'\n', &mut line).expect("stderr");
            assert!(read > 0, "serve exited before printing its address:\n{log}");
            let line = String::from_utf8_lossy(&line);
            log.push_str(&line);
            if let Some(at) = line.find("http://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(log));
        let kept = std::sync::Arc::clone(&log);
        std::thread::spawn(move || loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => kept
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        });
        Server { child, url, log }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the server to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        run_ok(Command::new("kill").args(["-TERM", &self.pid().to_string()]));
        self.child.wait().expect("server exits")
    }

    /// Like `terminate`, and returns everything the server logged.
    pub fn terminate_with_log(mut self) -> (std::process::ExitStatus, String) {
        run_ok(Command::new("kill").args(["-TERM", &self.pid().to_string()]));
        let status = self.child.wait().expect("server exits");
        // The drain thread reaches the end of the pipe right after the exit.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the shared apt harness against a served repository.
pub fn apt_check(
    url: &str,
    key: &Path,
    dist: &str,
    components: &str,
    arch: &str,
    checks: &[&str],
) -> (bool, String) {
    let script = project_dir()
        .join("..")
        .join("shared")
        .join("apt-check")
        .join("apt-check.sh");
    assert!(
        script.exists(),
        "{} is missing: the apt acceptance tests need the shared harness beside the checkout",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .args([
            url,
            key.to_str().expect("utf-8 path"),
            dist,
            components,
            arch,
        ])
        .args(checks)
        .output()
        .expect("apt-check runs");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.success(), text)
}

/// Everything observable about a repository: every file under `public/`
/// (content hash, or link target), and the catalog's rows.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut state = served_snapshot(root);
    let conn =
        rusqlite::Connection::open(root.join("state").join("catalog.sqlite")).expect("catalog");
    for table in ["package_files", "memberships", "dirty_indices", "history"] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
            .expect("select");
        let columns = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).map(|v| format!("{v:?}"))))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        state.insert(format!("catalog:{table}"), rows.join("\n"));
    }
    state
}

/// What apt can see of a repository: every path under `public/`, with its
/// content hash or link target.
pub fn served_snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root.join("public")).sort_by_file_name() {
        let entry = entry.expect("walk");
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let value = if entry.path_is_symlink() {
            format!(
                "-> {}",
                std::fs::read_link(entry.path()).expect("link").display()
            )
        } else if entry.file_type().is_file() {
            hex::encode(Sha256::digest(std::fs::read(entry.path()).expect("read")))
        } else {
            "dir".into()
        };
        state.insert(rel, value);
    }
    state
}

/// Checks the served tree the way invariant 1 of DESIGN.md §4 states it:
/// every file each Release names exists with that size and SHA256 (for an
/// uncompressed index not on disk, its .gz and .xz decompress to it), and
/// InRelease and Release.gpg verify with gpgv against `key`.
pub fn check_served_tree(public: &Path, dists: &[&str], key: &Path) -> Result<(), String> {
    for dist in dists {
        let dist_dir = public.join("dists").join(dist);
        let release = std::fs::read_to_string(dist_dir.join("Release"))
            .map_err(|e| format!("{dist}: Release unreadable: {e}"))?;
        let mut in_sha256 = false;
        for line in release.lines() {
            if !line.starts_with(' ') {
                in_sha256 = line == "SHA256:";
                continue;
            }
            if !in_sha256 {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [sha, size, path] = parts[..] else {
                return Err(format!("{dist}: bad SHA256 line {line:?}"));
            };
            let size: usize = size.parse().map_err(|_| format!("bad size {line:?}"))?;
            let bytes = match std::fs::read(dist_dir.join(path)) {
                Ok(bytes) => bytes,
                Err(_) => decompress_sibling(&dist_dir.join(path)).ok_or_else(|| {
                    format!("{dist}: {path} is listed but neither it nor .gz/.xz exist")
                })?,
            };
            if bytes.len() != size || hex::encode(Sha256::digest(&bytes)) != sha {
                return Err(format!("{dist}: {path} does not match its Release entry"));
            }
        }
        gpgv(key, &dist_dir.join("InRelease"), None)
            .map_err(|e| format!("{dist}: InRelease: {e}"))?;
        gpgv(
            key,
            &dist_dir.join("Release.gpg"),
            Some(&dist_dir.join("Release")),
        )
        .map_err(|e| format!("{dist}: Release.gpg: {e}"))?;
    }
    Ok(())
}

/// For `.../Packages` not on disk: the text its `.gz` and `.xz` hold, which
/// must agree.
fn decompress_sibling(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let gz = std::fs::File::open(format!("{}.gz", path.display())).ok()?;
    let mut from_gz = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut from_gz)
        .ok()?;
    let xz = std::fs::File::open(format!("{}.xz", path.display())).ok()?;
    let mut from_xz = Vec::new();
    liblzma::read::XzDecoder::new(xz)
        .read_to_end(&mut from_xz)
        .ok()?;
    (from_gz == from_xz).then_some(from_gz)
}

/// gpgv with a status pipe: success means VALIDSIG (gpgv exits 0 even for an
/// expired key, so the exit code alone proves nothing).
pub fn gpgv(key: &Path, signed: &Path, data: Option<&Path>) -> Result<(), String> {
    let keyring = dearmored_keyring(key);
    let mut cmd = Command::new("gpgv");
    cmd.arg("--status-fd")
        .arg("1")
        .arg("--keyring")
        .arg(&keyring)
        .arg(signed);
    if let Some(data) = data {
        cmd.arg(data);
    }
    let out = cmd.output().map_err(|e| format!("gpgv: {e}"))?;
    let status = stdout(&out);
    if out.status.success() && status.contains("[GNUPG:] VALIDSIG") {
        Ok(())
    } else {
        Err(format!("gpgv refused:\n{status}{}", stderr(&out)))
    }
}

/// gpgv wants a binary keyring; convert an armored key once per call site.
pub fn dearmored_keyring(key: &Path) -> PathBuf {
    let text = std::fs::read_to_string(key).expect("armored key");
    let body: String = text
        .lines()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----END"))
        .collect();
    use base64_decode::decode;
    let bytes = decode(&body);
    // In the temporary directory, never beside a fixture in the source tree.
    // Named by content: tests running at once share one name per key and
    // each renames its whole copy into place, so gpgv never reads a keyring
    // another test is halfway through writing (or another key).
    let id = hex::encode(&Sha256::digest(&bytes)[..8]);
    let pid = std::process::id();
    let out = std::env::temp_dir().join(format!("repoctl-key-{id}.{pid}.gpg"));
    if !out.exists() {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tmp = out.with_extension(format!("gpg.{n}.tmp"));
        std::fs::write(&tmp, bytes).expect("write keyring");
        std::fs::rename(&tmp, &out).expect("rename keyring");
    }
    out
}

/// A tiny base64 decoder, so the tests need no extra crate.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            } as u32)
        };
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for v in text.bytes().filter_map(value) {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        out
    }
}

/// The text of a served index, read from its `.xz` (what modern apt fetches).
pub fn index_text(public: &Path, dist: &str, component: &str, arch: &str) -> String {
    use std::io::Read;
    let path = public
        .join("dists")
        .join(dist)
        .join(component)
        .join(format!("binary-{arch}"))
        .join("Packages.xz");
    let mut text = String::new();
    liblzma::read::XzDecoder::new(std::fs::File::open(&path).expect("Packages.xz"))
        .read_to_string(&mut text)
        .expect("xz text");
    text
}

/// Waits until `path` exists (a server or a background step is ready).
pub fn wait_for(path: &Path, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One HTTP exchange made with the real `curl`.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    /// The last response's header block, lowercased names.
    pub headers: String,
    pub body: String,
    /// curl's own exit code (0, or e.g. 7 when the connection was refused).
    pub curl_exit: i32,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<String> {
        let wanted = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&wanted))
            .map(|l| l[wanted.len()..].trim().to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `curl ARGS... URL` and returns the last response.
pub fn curl(args: &[&str], url: &str) -> Http {
    let dir = tempfile::tempdir().expect("tempdir");
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-w", "%{http_code}", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    // With `Expect: 100-continue`, the dump holds two blocks: keep the last.
    let last = headers
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("")
        .to_string();
    Http {
        status: stdout(&out).trim().parse().unwrap_or(0),
        headers: last,
        body: std::fs::read_to_string(&body).unwrap_or_default(),
        curl_exit: out.status.code().unwrap_or(-1),
    }
}

/// Uploads a .deb as the raw body with a bearer token.
pub fn upload(server_url: &str, target: &str, token: &str, deb: &Path, query: &str) -> Http {
    let auth = format!("Authorization: Bearer {token}");
    let url = format!(
        "{server_url}api/v1/dists/{target}/packages{query}",
        target = target.replacen('/', "/components/", 1)
    );
    curl(&["-H", &auth, "-T", deb.to_str().expect("utf-8")], &url)
}

/// An ar archive with the given members, as `dpkg-deb` would lay it out.
pub fn ar_archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A gzip-compressed tar holding `files`.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *data)
            .expect("tar entry");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// A .deb made by hand around any `control` bytes, for what `dpkg-deb`
/// refuses to build.
pub fn deb_with_control(control: &[u8]) -> Vec<u8> {
    ar_archive(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", tar_gz(&[("./control", control)])),
        ("data.tar.gz", tar_gz(&[("./vrmd/x", b"x")])),
    ])
}

/// Every file left under `state/uploads/` (temporary upload files).
pub fn upload_leftovers(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root.join("state").join("uploads"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// A small tmpfs of its own, unmounted on drop (needs root, as CI has).
pub struct SmallDisk {
    _dir: tempfile::TempDir,
    pub mount: PathBuf,
}

impl SmallDisk {
    pub fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&mount)
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { _dir: dir, mount })
    }

    /// Writes a filler file until the disk is full.
    /// A repository initialised on this disk with the test signing key.
    pub fn repo(&self) -> PathBuf {
        let root = self.mount.join("repo");
        run_ok(
            repoctl(&root)
                .args(["init", "--import-key"])
                .arg(fixture("test-signing-key.asc")),
        );
        root
    }

    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.mount.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// `vrmd-whois` .debs of these versions, built in `dir`.
pub fn whois_debs(dir: &Path, versions: &[&str]) -> Vec<PathBuf> {
    versions
        .iter()
        .map(|v| {
            Deb {
                version: v,
                payload: v,
                ..Deb::default()
            }
            .build(dir)
        })
        .collect()
}
