//! Serve benchmark: `repoctl serve` taking uploads, and serving the apt tree beside nginx.
//!
//! A program that prints figures and ratios, never a timed test (`harness = false`).
//!
//! 1. Uploads: N synthetic .debs (3 in 4 of 100-600 KB, the others of a few KB) are PUT
//!    to `/api/v1/dists/trusty/components/dev/packages` by 1 and by 16 concurrent clients
//!    (raw HTTP/1.1 on keep-alive connections, bodies from memory), 3 runs each, every run
//!    on a fresh repository: packages/s and MB/s until the last upload is acknowledged, the
//!    time until the served Packages.gz lists them all, and how many publishes the group
//!    commit made.
//! 2. Static tree: one repository of 5,000 packages; `wrk` fetches Packages.gz, one pool
//!    .deb and InRelease from `repoctl serve` and from nginx serving the same `public/`,
//!    alternating over several rounds so that noise hits both; requests/s, MB/s and the
//!    ratio repoctl / nginx per round, with its median and spread. Both servers must first
//!    return the same bytes as the files on disk.
//!
//! `bench/README.md` says what each figure means.
//!
//! Run: `cargo bench --bench serve -- [--uploads 400] [--rounds 5] [--duration 10]`

use anyhow::{anyhow, bail, Context, Result};
use flate2::{read::MultiGzDecoder, Compression};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::load_average;

const USAGE: &str = "usage: cargo bench --bench serve -- [--parts uploads,static] \
[--uploads 400] [--upload-runs 3] [--clients 1,16] [--packages 5000] [--pool-kb 1024] \
[--rounds 5] [--duration 10] [--connections 32] [--threads 2] [--work DIR] [--repoctl PATH] \
[--no-save]";
/// Bump when the generated corpora change, so that cached ones are made again.
const CORPUS_FORMAT: u32 = 1;
const UPLOAD_PATH: &str = "/api/v1/dists/trusty/components/dev/packages";
const PACKAGES_GZ: &str = "/dists/trusty/dev/binary-amd64/Packages.gz";
/// The pool file `wrk` fetches: one package of `--pool-kb` KiB in the static repository.
const POOL_DEB: &str = "/pool/dev/b/bench-payload/bench-payload_1_all.deb";
/// The target: repoctl serves the static tree at least this fraction of nginx.
const TARGET_RATIO: f64 = 0.8;
const MB: f64 = 1_048_576.0;

struct Opts {
    uploads: bool,
    statics: bool,
    n_uploads: usize,
    upload_runs: usize,
    clients: Vec<usize>,
    packages: usize,
    pool_kb: usize,
    rounds: usize,
    duration: u64,
    connections: usize,
    threads: usize,
    work: PathBuf,
    repoctl: PathBuf,
    save: bool,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        uploads: true,
        statics: true,
        n_uploads: 400,
        upload_runs: 3,
        clients: vec![1, 16],
        packages: 5_000,
        pool_kb: 1024,
        rounds: 5,
        duration: 10,
        connections: 32,
        threads: 2,
        work: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-serve"),
        repoctl: PathBuf::from(option_env!("CARGO_BIN_EXE_repoctl").unwrap_or("repoctl")),
        save: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow!("{arg} needs a value\n{USAGE}"))
        };
        let number = |v: String| -> Result<usize> {
            v.replace('_', "")
                .parse()
                .with_context(|| format!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--bench" => {} // cargo bench passes it to harness = false programs
            "--parts" => {
                let v = value()?;
                o.uploads = v.split(',').any(|p| p == "uploads");
                o.statics = v.split(',').any(|p| p == "static");
                if v.split(',').any(|p| p != "uploads" && p != "static") {
                    bail!("--parts takes uploads and/or static\n{USAGE}");
                }
            }
            "--uploads" => o.n_uploads = number(value()?)?,
            "--upload-runs" => o.upload_runs = number(value()?)?,
            "--clients" => {
                let v = value()?;
                o.clients = v
                    .split(',')
                    .map(|c| number(c.into()))
                    .collect::<Result<_>>()?;
            }
            "--packages" => o.packages = number(value()?)?,
            "--pool-kb" => o.pool_kb = number(value()?)?,
            "--rounds" => o.rounds = number(value()?)?,
            "--duration" => o.duration = number(value()?)? as u64,
            "--connections" => o.connections = number(value()?)?,
            "--threads" => o.threads = number(value()?)?,
            "--work" => o.work = PathBuf::from(value()?),
            "--repoctl" => o.repoctl = PathBuf::from(value()?),
            "--no-save" => o.save = false,
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if o.n_uploads == 0 || o.upload_runs == 0 || o.clients.contains(&0) || o.packages == 0 {
        bail!("--uploads, --upload-runs, --clients and --packages must be at least 1");
    }
    if o.rounds == 0 || o.duration == 0 || o.connections < o.threads || o.threads == 0 {
        bail!("--rounds, --duration and --threads must be at least 1, --connections >= --threads");
    }
    Ok(o)
}

// ------------------------------------------------------------------------- corpus

const WORDS: &str = "apt archive python virtualenv deploy service request handler pool index \
release signature client server cache worker queue metrics configuration logging database schema \
migration bundle whois resolver gateway scheduler upload checksum";

/// A control file with a multi-line Description (a Packages paragraph of 700-900 bytes).
fn control_text(name: &str, version: usize, arch: &str, installed_kb: usize, seed: u64) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut state = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut word = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        words[(state % words.len() as u64) as usize]
    };
    let mut s = format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\n");
    s += "Maintainer: Bench Builder <bench@example.invalid>\n";
    s += &format!("Installed-Size: {installed_kb}\n");
    if seed % 3 == 1 {
        s += "Depends: python3 (>= 3.5), libc6 (>= 2.19)\n";
    }
    let section = ["misc", "python", "web", "net", "utils"][seed as usize % 5];
    s += &format!("Section: {section}\nPriority: optional\n");
    s += &format!("Homepage: https://example.invalid/{name}\n");
    let (a, b) = (word(), word());
    s += &format!("Description: synthetic {a} {b} package for benchmarks\n");
    for line in 0..(4 + seed % 3) {
        s += if line == 2 { " .\n This" } else { " This" };
        let start = s.len();
        while s.len() - start < 60 {
            s += " ";
            s += word();
        }
        s += ".\n";
    }
    s
}

/// Incompressible bytes (xorshift64), the same for the same seed: real .debs hold
/// compressed data, so neither the pool nor the wire can shrink them.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A .deb whose data.tar.gz holds `payload` as /usr/share/<name>/payload. Noise does not
/// compress, so it is stored (gzip level 0) and the .deb is about as large as the payload.
fn deb(control: &str, name: &str, payload: &[u8]) -> Result<Vec<u8>> {
    let dir = format!("./usr/share/{name}/");
    let file = format!("{dir}payload");
    let mut data: Vec<(&str, Option<&[u8]>)> = vec![("./", None), ("./usr/", None)];
    data.extend([("./usr/share/", None), (dir.as_str(), None)]);
    data.push((file.as_str(), Some(payload)));
    support::deb(control, &data, Compression::none())
}

/// The payload of upload `i`: 3 in 4 are 100-600 KiB, every fourth 1-4 KiB.
fn upload_payload_len(i: usize) -> usize {
    let spread = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match i % 4 {
        3 => 1024 + (spread % 3072) as usize,
        _ => (100 + (spread % 500) as usize) * 1024,
    }
}

/// Makes the bytes of one generated file.
type Maker = Box<dyn Fn() -> Result<Vec<u8>> + Send + Sync>;

/// Makes the files of `jobs` (file name, maker) in `dir` unless its stamp says they are
/// there already, then returns their paths. Two threads: the machine has few cores.
fn cached_corpus(dir: &Path, stamp: &str, jobs: Vec<(String, Maker)>) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = jobs.iter().map(|j| dir.join(&j.0)).collect();
    if fs::read_to_string(dir.join("complete")).ok().as_deref() == Some(stamp) {
        return Ok(paths);
    }
    let start = Instant::now();
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    let next = AtomicUsize::new(0);
    let make = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((name, maker)) = jobs.get(i) else {
                return Ok(());
            };
            fs::write(dir.join(name), maker()?)?;
        }
    };
    std::thread::scope(|s| {
        let handles = [s.spawn(make), s.spawn(make)];
        let joined = handles.map(|h| h.join().map_err(|_| anyhow!("panic")));
        joined.into_iter().try_for_each(|r| r?)
    })?;
    // What dpkg itself reads, for the first and the last file.
    for path in [&paths[0], &paths[paths.len() - 1]] {
        let out = Command::new("dpkg-deb").arg("-I").arg(path).output();
        let out = out.context("running dpkg-deb (apt-get install dpkg)")?;
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("Package: ") {
            bail!("dpkg-deb cannot read {}", path.display());
        }
    }
    fs::write(dir.join("complete"), stamp)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "generated {} .debs in {} in {secs:.1} s",
        jobs.len(),
        dir.display()
    );
    Ok(paths)
}

/// One upload: its file name and its bytes (held in memory while uploading).
struct Deb {
    name: String,
    body: Vec<u8>,
}

fn upload_corpus(o: &Opts) -> Result<Vec<Deb>> {
    let n = o.n_uploads;
    let dir = o.work.join(format!("uploads-{n}"));
    let jobs = (0..n)
        .map(|i| {
            let arch = if i % 10 == 5 { "amd64" } else { "all" };
            let name = format!("upload-pkg-{i:05}");
            let file = format!("{name}_1_{arch}.deb");
            let len = upload_payload_len(i);
            let maker = move || {
                let control = control_text(&name, 1, arch, len / 1024 + 1, i as u64);
                deb(&control, &name, &noise(i as u64, len))
            };
            (file, Box::new(maker) as Maker)
        })
        .collect();
    let stamp = format!("format {CORPUS_FORMAT} uploads {n}\n");
    let paths = cached_corpus(&dir, &stamp, jobs)?;
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into();
            Ok(Deb {
                body: fs::read(&p)?,
                name,
            })
        })
        .collect()
}

/// `packages` small .debs (N/5 packages x 5 versions, 90% `all`, 10% `amd64`) and one
/// `bench-payload` of `pool_kb` KiB; returns the directory that holds them.
fn static_corpus(o: &Opts) -> Result<PathBuf> {
    let (n, kb) = (o.packages, o.pool_kb);
    let dir = o.work.join(format!("static-{n}-{kb}"));
    let mut jobs: Vec<(String, Maker)> = (0..n)
        .map(|i| {
            let (p, v) = (i / 5, i % 5 + 1);
            let arch = if p % 10 == 7 { "amd64" } else { "all" };
            let name = format!("bench-pkg-{p:05}");
            let file = format!("{name}_{v}_{arch}.deb");
            let maker = move || {
                let control = control_text(&name, v, arch, 8 + p % 50, p as u64);
                let readme = format!("{name} {v}: synthetic payload of the serve benchmark.\n");
                deb(&control, &name, readme.as_bytes())
            };
            (file, Box::new(maker) as Maker)
        })
        .collect();
    let payload = move || {
        let control = control_text("bench-payload", 1, "all", kb, 42);
        deb(&control, "bench-payload", &noise(42, kb * 1024))
    };
    jobs.push(("bench-payload_1_all.deb".into(), Box::new(payload)));
    let stamp = format!("format {CORPUS_FORMAT} packages {n} pool-kb {kb}\n");
    cached_corpus(&dir, &stamp, jobs)?;
    Ok(dir)
}

// --------------------------------------------------------------------- processes

/// Runs a command to its end; appends it and its output to `log`; returns its stdout.
fn run(cmd: &mut Command, log: &Path) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
    write!(logf, "$ {shown}\n{stdout}{stderr}")?;
    if !out.status.success() {
        let why = stderr.lines().last().unwrap_or_default();
        bail!("{shown}: {}: {why} (log {})", out.status, log.display());
    }
    Ok(stdout.into_owned())
}

fn repoctl(o: &Opts, root: &Path, args: &[&str], log: &Path) -> Result<String> {
    run(
        Command::new(&o.repoctl).arg("--root").arg(root).args(args),
        log,
    )
}

/// A fresh repository at `root`: dist trusty, component dev, amd64, the test key.
fn fresh_repository(o: &Opts, root: &Path, log: &Path) -> Result<()> {
    if root.exists() {
        fs::remove_dir_all(root)?;
    }
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-signing-key.asc");
    let key = key.to_string_lossy();
    let args = ["init", "--dists", "trusty", "--components", "dev"];
    let args = [
        &args[..],
        &["--architectures", "amd64", "--import-key", &key],
    ]
    .concat();
    repoctl(o, root, &args, log)?;
    Ok(())
}

/// A server process, stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
struct Server {
    name: &'static str,
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
}

impl Server {
    /// `repoctl serve --listen 127.0.0.1:0`; the address comes from its `serving` line.
    fn repoctl(o: &Opts, root: &Path, log: &Path) -> Result<Server> {
        let mut child = Command::new(&o.repoctl)
            .arg("--root")
            .arg(root)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start repoctl serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut server = Server {
            name: "repoctl",
            child,
            addr: String::new(),
        };
        let mut logf = File::create(log)?;
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        while server.addr.is_empty() {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                bail!(
                    "repoctl serve exited before serving (log {})",
                    log.display()
                );
            }
            logf.write_all(line.as_bytes())?;
            let url = line.trim().rsplit_once(" on http://").map(|(_, url)| url);
            server.addr = url.unwrap_or_default().trim_end_matches('/').into();
        }
        // Keep draining stderr, so that the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut logf));
        Ok(server)
    }

    /// nginx with a private configuration in `dir`, serving `public` on a free port.
    fn nginx(public: &Path, dir: &Path) -> Result<Server> {
        fs::create_dir_all(dir.join("temp"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = nginx_conf(public, dir, port)?;
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let log = File::create(dir.join("nginx.out"))?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start nginx")?;
        let mut server = Server {
            name: "nginx",
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while TcpStream::connect(&server.addr).is_err() {
            if server.child.try_wait()?.is_some() || start.elapsed() > Duration::from_secs(10) {
                let out = fs::read_to_string(dir.join("nginx.out")).unwrap_or_default();
                let err = fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                bail!("nginx did not start:\n{out}{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The server's processes: repoctl's one, or nginx's master and its workers.
    fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut pids = vec![master];
        let Ok(dir) = fs::read_dir("/proc") else {
            return pids;
        };
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let fields = stat
                .rsplit_once(") ")
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            if fields.split(' ').nth(1) == Some(master.to_string().as_str()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// CPU seconds (user + system) the server's processes have used so far.
    fn cpu(&self, ticks: f64) -> f64 {
        self.pids().iter().map(|&pid| process_cpu(pid, ticks)).sum()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = self.child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nginx_conf(public: &Path, dir: &Path, port: u16) -> Result<String> {
    // Temporary directories only for the modules this build has (`nginx -V` names their
    // default paths), kept under `dir` so that nothing outside the work dir is written.
    let v = Command::new("nginx").arg("-V").output();
    let v = v.context("running nginx -V (apt-get install nginx-light)")?;
    let mut temps = String::new();
    for arg in String::from_utf8_lossy(&v.stderr).split_whitespace() {
        if let Some(module) = arg
            .strip_prefix("--http-")
            .and_then(|a| a.split_once("-temp-path="))
        {
            let module = module.0.replace('-', "_");
            let path = dir.join("temp").join(&module);
            temps += &format!("    {module}_temp_path {};\n", path.display());
        }
    }
    let uid = run(Command::new("id").arg("-u"), &dir.join("id.log"))?;
    let user = if uid.trim() == "0" {
        "user root;\n"
    } else {
        ""
    };
    Ok(format!(
        "daemon off;
master_process on;
{user}worker_processes auto;
pid {pid};
error_log {log} warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 1000000;
{temps}    server {{
        listen 127.0.0.1:{port};
        root {public};
    }}
}}
",
        pid = dir.join("nginx.pid").display(),
        log = dir.join("error.log").display(),
        public = public.display(),
    ))
}

fn clock_ticks() -> Result<f64> {
    let out = run(
        Command::new("getconf").arg("CLK_TCK"),
        Path::new("/dev/null"),
    )?;
    out.trim().parse().context("getconf CLK_TCK")
}

/// utime + stime of a process (all its threads), in seconds.
fn process_cpu(pid: u32, ticks: f64) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |(_, rest)| rest)
        .split(' ')
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // After the command name: state(0) ppid(1) ... utime(11) stime(12).
    (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks
}

/// Busy and total time of the whole machine (all CPUs), in ticks, from /proc/stat.
fn machine_cpu() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).unwrap_or(&0.0) + v.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

// --------------------------------------------------------------------------- HTTP

/// A minimal HTTP/1.1 client on one keep-alive connection: what the benchmark needs and
/// no more (Content-Length and chunked bodies), so that clients cost little CPU.
struct Http {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Http {
    fn new(addr: &str) -> Http {
        Http {
            addr: addr.into(),
            conn: None,
        }
    }

    fn request(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> Result<Reply> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, headers, body) {
            // A kept-alive connection the server closed meanwhile: once more on a new one.
            Err(_) if reused => {
                self.conn = None;
                self.try_request(method, path, headers, body)
            }
            result => result,
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> Result<Reply> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, stream));
        }
        let conn = self.conn.as_mut().context("no connection")?;
        let length = match method {
            "GET" | "HEAD" => String::new(),
            _ => format!("Content-Length: {}\r\n", body.len()),
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}{length}\r\n",
            self.addr
        );
        conn.get_mut().write_all(head.as_bytes())?;
        conn.get_mut().write_all(body)?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            bail!("the connection closed before a response");
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let Some((name, value)) = line.trim_end().split_once(':') else {
                break;
            };
            let (name, value) = (name.to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if method == "HEAD" {
        } else if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let size = line.trim().split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size, 16).context("bad chunk size")?;
                let start = body.len();
                body.resize(start + size + 2, 0);
                conn.read_exact(&mut body[start..])?;
                body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            conn.read_exact(&mut body)?;
        } else {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(Reply { status, body })
    }

    fn get(&mut self, path: &str) -> Result<Vec<u8>> {
        let reply = self.request("GET", path, "", &[])?;
        if reply.status != 200 {
            bail!("GET {path} from {}: status {}", self.addr, reply.status);
        }
        Ok(reply.body)
    }
}

/// A counter or gauge from `/metrics` (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Paragraphs in a served Packages.gz (repoctl writes it as several gzip members).
fn packages_listed(http: &mut Http) -> Result<usize> {
    let mut text = String::new();
    MultiGzDecoder::new(&http.get(PACKAGES_GZ)?[..]).read_to_string(&mut text)?;
    Ok(text.matches("\nPackage: ").count() + usize::from(text.starts_with("Package: ")))
}

// ------------------------------------------------------------------------ uploads

struct UploadRun {
    clients: usize,
    /// First request to last acknowledgement.
    secs: f64,
    /// First request to the served Packages.gz listing every upload.
    listed_secs: f64,
    bytes: u64,
    /// Per-upload latency, sorted, in seconds.
    latencies: Vec<f64>,
    publishes: f64,
    publish_secs: f64,
    server_cpu: f64,
}

fn upload_run(o: &Opts, corpus: &[Deb], clients: usize, ticks: f64) -> Result<UploadRun> {
    let root = o.work.join(format!("upload-c{clients}"));
    let log = o.work.join(format!("upload-c{clients}.log"));
    let _ = fs::remove_file(&log);
    fresh_repository(o, &root, &log)?;
    let token = repoctl(
        o,
        &root,
        &["token", "create", "bench", "--upload", "trusty/dev"],
        &log,
    )?;
    let auth = format!("Authorization: Bearer {}\r\n", token.trim());
    let server = Server::repoctl(o, &root, &o.work.join(format!("serve-c{clients}.log")))?;
    // The server publishes once as it starts (nothing to do on a fresh repository, so not
    // counted); let that pass before the figures start.
    std::thread::sleep(Duration::from_millis(500));
    let mut http = Http::new(&server.addr);
    let before = String::from_utf8_lossy(&http.get("/metrics")?).into_owned();
    let cpu_before = server.cpu(ticks);
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let client = || -> Result<Vec<f64>> {
        let mut http = Http::new(&server.addr);
        let mut latencies = Vec::new();
        loop {
            let Some(d) = corpus.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(latencies);
            };
            let headers = format!(
                "{auth}Content-Type: application/vnd.debian.binary-package\r\nX-File-Name: {}\r\n",
                d.name
            );
            let sent = Instant::now();
            let reply = http.request("PUT", UPLOAD_PATH, &headers, &d.body)?;
            latencies.push(sent.elapsed().as_secs_f64());
            if reply.status != 201 {
                let body = String::from_utf8_lossy(&reply.body);
                bail!("upload of {}: status {}: {body}", d.name, reply.status);
            }
        }
    };
    let mut latencies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients).map(|_| s.spawn(client)).collect();
        let joined = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("panic")));
        joined.collect::<Result<Result<Vec<Vec<f64>>>>>()
    })??
    .concat();
    let secs = start.elapsed().as_secs_f64();
    while packages_listed(&mut http)? < corpus.len() {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("the uploads were not all published 300 s after the first one");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let listed_secs = start.elapsed().as_secs_f64();
    let after = String::from_utf8_lossy(&http.get("/metrics")?).into_owned();
    let server_cpu = server.cpu(ticks) - cpu_before;
    let delta = |name| metric(&after, name) - metric(&before, name);
    let uploads = delta("repoctl_uploads_total");
    if uploads != corpus.len() as f64 {
        bail!("/metrics counts {uploads} uploads, not {}", corpus.len());
    }
    latencies.sort_by(f64::total_cmp);
    Ok(UploadRun {
        clients,
        secs,
        listed_secs,
        bytes: delta("repoctl_upload_bytes_total") as u64,
        latencies,
        publishes: delta("repoctl_publishes_total"),
        publish_secs: delta("repoctl_publish_seconds_total"),
        server_cpu,
    })
}

/// The value below which `p` of the sorted values lie (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}

fn upload_table(o: &Opts, corpus: &[Deb], runs: &[Result<Vec<UploadRun>>]) -> String {
    let total: usize = corpus.iter().map(|d| d.body.len()).sum();
    let small = corpus.iter().filter(|d| d.body.len() < 64 * 1024).count();
    let mut t = format!(
        "\n== uploads: {} .debs, {:.1} MB ({} of 100-600 KB, {small} of 1-4 KB), \
         PUT on keep-alive HTTP/1.1\n\
         {} runs per row, each on a fresh repository: the median run (by time), and the \
         range of packages/s over the runs\n",
        corpus.len(),
        total as f64 / MB,
        corpus.len() - small,
        o.upload_runs,
    );
    const W: [usize; 11] = [8, 8, 13, 8, 8, 8, 9, 10, 10, 10, 11];
    let head = "clients secs pkg/s pkg/s_range MB/s p50_ms p99_ms listed_s publishes \
                publish_s srv_cpu_s cpu_ms/pkg";
    let head: Vec<String> = head.split(' ').map(|h| h.replace('_', " ")).collect();
    t += &line(&head, &W);
    let mut medians = Vec::new();
    for (clients, runs) in o.clients.iter().zip(runs) {
        let runs = match runs {
            Ok(runs) if !runs.is_empty() => runs,
            Ok(_) => continue,
            Err(e) => {
                t += &format!("{clients:<20}FAILED: {e:#}\n");
                continue;
            }
        };
        let mut by_time: Vec<&UploadRun> = runs.iter().collect();
        by_time.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let r = by_time[by_time.len() / 2];
        let n = r.latencies.len() as f64;
        let (fastest, slowest) = (by_time[0], by_time[by_time.len() - 1]);
        let range = format!("{:.0}-{:.0}", n / slowest.secs, n / fastest.secs);
        let cells = [
            r.clients.to_string(),
            format!("{:.2}", r.secs),
            format!("{:.1}", n / r.secs),
            range,
            format!("{:.1}", r.bytes as f64 / MB / r.secs),
            format!("{:.1}", percentile(&r.latencies, 0.5) * 1000.0),
            format!("{:.1}", percentile(&r.latencies, 0.99) * 1000.0),
            format!("{:.2}", r.listed_secs),
            format!("{}", r.publishes),
            format!("{:.2}", r.publish_secs),
            format!("{:.2}", r.server_cpu),
            format!("{:.2}", r.server_cpu * 1000.0 / n),
        ];
        t += &line(&cells, &W);
        medians.push(r);
    }
    if let (Some(first), Some(last), true) = (medians.first(), medians.last(), medians.len() > 1) {
        t += &format!(
            "packages/s with {} clients / with {}: {:.2}x (median runs)\n",
            last.clients,
            first.clients,
            first.secs / last.secs
        );
    }
    t
}

// ------------------------------------------------------------------------- static

/// What one `wrk` run measured, with the CPU the server and the machine used meanwhile.
#[derive(Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    socket_errors: u64,
    /// CPU seconds per wall second: 1.0 is one core busy.
    server_cores: f64,
    machine_cores: f64,
}

/// `1.23ms`, `456.78us`, `1.02s` as milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

fn wrk(o: &Opts, server: &Server, path: &str, secs: u64, ticks: f64, log: &Path) -> Result<Load> {
    let url = format!("http://{}{path}", server.addr);
    let (busy0, total0) = machine_cpu();
    let cpu0 = server.cpu(ticks);
    let start = Instant::now();
    let out = run(
        Command::new("wrk")
            .arg(format!("-t{}", o.threads))
            .arg(format!("-c{}", o.connections))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .arg(&url),
        log,
    )?;
    let wall = start.elapsed().as_secs_f64();
    let server_cores = (server.cpu(ticks) - cpu0) / wall;
    let (busy1, total1) = machine_cpu();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_cores = (busy1 - busy0) / (total1 - total0).max(1.0) * cpus;
    let mut load = Load {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        socket_errors: 0,
        server_cores,
        machine_cores,
    };
    for l in out.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        match words[..] {
            ["Requests/sec:", rps] => load.rps = rps.parse()?,
            ["50%", v] => load.p50_ms = duration_ms(v).unwrap_or(0.0),
            ["99%", v] => load.p99_ms = duration_ms(v).unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                bail!("wrk {url}: {n} responses were not 2xx or 3xx")
            }
            ["Socket", "errors:", ..] => {
                let numbers = l.split(|c: char| !c.is_ascii_digit());
                load.socket_errors = numbers.filter_map(|n| n.parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    if load.rps == 0.0 {
        bail!("wrk {url} printed no Requests/sec:\n{out}");
    }
    Ok(load)
}

/// One file `wrk` fetches, with its measurements per round and server.
struct Target {
    label: &'static str,
    path: &'static str,
    bytes: u64,
    /// Per round: [repoctl, nginx].
    rounds: Vec<[Load; 2]>,
}

fn static_part(o: &Opts, ticks: f64) -> Result<String> {
    let log = o.work.join("static.log");
    let _ = fs::remove_file(&log);
    let corpus = static_corpus(o)?;
    let root = o.work.join("static");
    fresh_repository(o, &root, &log)?;
    eprintln!("static: adding {} packages", o.packages + 1);
    let corpus_arg = corpus.to_string_lossy();
    let add = [
        "add",
        "--dist",
        "trusty",
        "--component",
        "dev",
        "--no-publish",
    ];
    repoctl(o, &root, &[&add[..], &[&corpus_arg]].concat(), &log)?;
    repoctl(o, &root, &["publish"], &log)?;
    let public = fs::canonicalize(root.join("public"))?;
    let mut targets: Vec<Target> = [
        ("Packages.gz", PACKAGES_GZ),
        ("pool .deb", POOL_DEB),
        ("InRelease", "/dists/trusty/InRelease"),
    ]
    .into_iter()
    .map(|(label, path)| {
        let file = public.join(&path[1..]);
        let meta = fs::metadata(&file).with_context(|| format!("{}", file.display()))?;
        Ok(Target {
            label,
            path,
            bytes: meta.len(),
            rounds: Vec::new(),
        })
    })
    .collect::<Result<_>>()?;
    let servers = [
        Server::repoctl(o, &root, &o.work.join("serve-static.log"))?,
        Server::nginx(&public, &o.work.join("nginx"))?,
    ];
    // Both must answer with the file's bytes before their speed means anything.
    for t in &targets {
        let on_disk = fs::read(public.join(&t.path[1..]))?;
        for s in &servers {
            if Http::new(&s.addr).get(t.path)? != on_disk {
                bail!("{} serves other bytes than {} holds", s.name, t.path);
            }
        }
    }
    eprintln!("static: the same bytes from both servers; warming up");
    for t in &targets {
        for s in &servers {
            wrk(o, s, t.path, 2, ticks, &log)?;
        }
    }
    for round in 0..o.rounds {
        eprintln!("static: round {} of {}", round + 1, o.rounds);
        for t in &mut targets {
            // Alternate who goes first, so that a drift in the machine hits both alike.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut loads = [None, None];
            for i in order {
                loads[i] = Some(wrk(o, &servers[i], t.path, o.duration, ticks, &log)?);
            }
            if let [Some(ours), Some(nginx)] = loads {
                t.rounds.push([ours, nginx]);
            }
        }
    }
    drop(servers);
    Ok(static_table(o, &targets))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn static_table(o: &Opts, targets: &[Target]) -> String {
    let mut t = format!(
        "\n== static tree: {} packages + 1 of {} KB; wrk -t{} -c{} -d{}s, {} rounds \
         alternating repoctl and nginx\n\
         (medians over the rounds; both servers returned the files' bytes)\n",
        o.packages, o.pool_kb, o.threads, o.connections, o.duration, o.rounds
    );
    const W: [usize; 9] = [9, 10, 10, 9, 9, 10, 10, 11, 9];
    let head = "file_/_server size_KB req/s MB/s p50_ms p99_ms srv_cores all_cores \
                srv_us/req sock_err";
    let head: Vec<String> = head.split(' ').map(|h| h.replace('_', " ")).collect();
    t += &line(&head, &W);
    for target in targets {
        for (i, server) in ["repoctl", "nginx"].into_iter().enumerate() {
            let m = |f: fn(&Load) -> f64| median(target.rounds.iter().map(|r| f(&r[i])).collect());
            let rps = m(|l| l.rps);
            let errors: u64 = target.rounds.iter().map(|r| r[i].socket_errors).sum();
            let label = if i == 0 { target.label } else { "" };
            let cells = [
                format!("{label:<12}{server}"),
                format!("{:.0}", target.bytes as f64 / 1024.0),
                format!("{rps:.0}"),
                format!("{:.1}", rps * target.bytes as f64 / MB),
                format!("{:.2}", m(|l| l.p50_ms)),
                format!("{:.2}", m(|l| l.p99_ms)),
                format!("{:.2}", m(|l| l.server_cores)),
                format!("{:.2}", m(|l| l.machine_cores)),
                format!("{:.1}", m(|l| l.server_cores / l.rps * 1e6)),
                errors.to_string(),
            ];
            t += &line(&cells, &W);
        }
    }
    t += "\nratio repoctl / nginx, requests/s per round (above 1x: repoctl is faster)\n";
    let mut head = vec!["file".to_string()];
    head.extend((1..=o.rounds).map(|r| format!("r{r}")));
    head.extend(["median".into(), "min-max".into(), "  target".into()]);
    let mut w = vec![7; o.rounds];
    w.extend([8, 13, 0]);
    t += &line(&head, &w);
    for target in targets {
        let ratios: Vec<f64> = target.rounds.iter().map(|r| r[0].rps / r[1].rps).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let med = median(ratios.clone());
        let mut cells = vec![target.label.to_string()];
        cells.extend(ratios.iter().map(|r| format!("{r:.2}x")));
        cells.push(format!("{med:.2}x"));
        cells.push(format!("{lo:.2}-{hi:.2}x"));
        let verdict = if med >= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        };
        cells.push(format!("  >= {TARGET_RATIO}x: {verdict}"));
        t += &line(&cells, &w);
    }
    t += "server CPU per request, repoctl / nginx (median of the rounds):";
    for target in targets {
        let per_request = |l: &Load| l.server_cores / l.rps;
        let r = target.rounds.iter();
        let ratio = median(r.map(|r| per_request(&r[0]) / per_request(&r[1])).collect());
        t += &format!(" {} {ratio:.1}x;", target.label);
    }
    t.pop();
    t + "\n"
}

// ------------------------------------------------------------------------ report

/// One line: a left-aligned first cell, then cells right-aligned to `widths`.
fn line<S: AsRef<str>>(cells: &[S], widths: &[usize]) -> String {
    let mut s = format!("{:<20}", cells[0].as_ref());
    for (cell, w) in cells[1..].iter().zip(widths) {
        s += &format!("{:>w$}", cell.as_ref());
    }
    s + "\n"
}

const NOTES: &str = "notes:
  uploads: raw HTTP/1.1 PUT of the .deb as the body (the `curl -T` form) on one keep-alive
  connection per client, from memory; each acknowledged 201 means stored durably (fsynced) and
  committed; secs = first request to last acknowledgement; listed s = first request until the
  served Packages.gz lists every upload; publishes = group-commit publishes during the run (the
  one at start-up excluded), publish s their total time; srv cpu = user + system CPU seconds of
  the repoctl process during the run. MB = 2^20 bytes.
  static: req/s from wrk; MB/s = req/s x file size; p50/p99 = wrk's latency percentiles;
  srv cores = CPU seconds per second of the server (nginx: master + workers), all cores = of the
  whole machine, wrk included (the load generator shares the same cores, so a server's share
  is what wrk leaves it). nginx: worker_processes auto, sendfile on, access_log off,
  keepalive_requests 1000000 (so neither server closes kept-alive connections).";

const VERSIONS: &[&[&str]] = &[&["nginx", "-v"], &["wrk", "--version"], &["uname", "-srm"]];

fn main() -> Result<()> {
    let mut o = parse_args()?;
    for (tool, package, needed) in [
        ("nginx", "nginx-light (or nginx)", o.statics),
        ("wrk", "wrk", o.statics),
        ("dpkg-deb", "dpkg", true),
    ] {
        let mut probe = Command::new(tool);
        probe
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if needed && probe.status().is_err() {
            bail!("{tool} is missing: apt-get install {package}");
        }
    }
    fs::create_dir_all(&o.work)?;
    o.work = fs::canonicalize(&o.work)?;
    let ticks = clock_ticks()?;
    let log = o.work.join("bench.log");
    let date = run(
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        &log,
    )?;
    let mut out = format!("repoctl serve benchmark, {}\n", date.trim());
    let version = run(Command::new(&o.repoctl).arg("--version"), &log)?;
    out += &format!("  {:<10}{}\n", "repoctl", version.trim());
    for cmd in VERSIONS {
        let v = Command::new(cmd[0]).args(&cmd[1..]).output();
        let v = v.map_or(String::new(), |v| {
            let text = [v.stdout, v.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines().next().unwrap_or_default().to_string()
        });
        out += &format!("  {:<10}{v}\n", cmd[0]);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = load_average();
    out += &format!("  {cpus} CPUs; load average before: {load}\n");
    let busy = load.split(' ').next().and_then(|l| l.parse::<f64>().ok());
    if busy.is_some_and(|l| l >= cpus as f64 / 2.0) {
        out += "  (the machine is busy with other work: absolute figures are noisy; the \
                alternated ratios less so)\n";
    }
    print!("{out}");
    if o.uploads {
        let corpus = upload_corpus(&o)?;
        let mut runs = Vec::new();
        for &clients in &o.clients {
            let r = (0..o.upload_runs)
                .map(|k| {
                    eprintln!(
                        "uploads: {} .debs with {clients} clients, run {}",
                        corpus.len(),
                        k + 1
                    );
                    upload_run(&o, &corpus, clients, ticks)
                })
                .collect::<Result<Vec<_>>>();
            if let Err(e) = &r {
                eprintln!("uploads with {clients} clients failed: {e:#}");
            }
            runs.push(r);
        }
        let t = upload_table(&o, &corpus, &runs);
        print!("{t}");
        out += &t;
    }
    if o.statics {
        let t = match static_part(&o, ticks) {
            Ok(t) => t,
            Err(e) => format!("\n== static tree: FAILED: {e:#}\n"),
        };
        print!("{t}");
        out += &t;
    }
    let after = format!("load average after: {}\n\n{NOTES}\n", load_average());
    print!("{after}");
    out += &after;
    if o.save {
        support::save("serve", &date, &out)?;
    }
    Ok(())
}
