//! Publish benchmark: repoctl side by side with reprepro, aptly and apt-ftparchive.
//!
//! A program that prints figures and ratios, never a timed test (`harness = false`).
//! For each size N it generates N synthetic .debs (N/5 packages x 5 integer versions,
//! 90% `all`, 5% `amd64`, 5% `i386`), then measures every peer, one at a time:
//! (a) import all + publish + sign, (b) add one new version to the N-file repository and
//! publish (median of `--b-runs` additions), (c) peak RSS of (a) and (b), and the size on
//! disk of state, index tree and pool. `bench/README.md` says what each figure means.
//!
//! Each peer is driven by a few shell lines (`PEERS`) run under `/usr/bin/time`, which
//! reports the peak RSS of the script's whole process tree.
//!
//! Run: `cargo bench --bench publish -- --sizes 1000,10000,50000`

use anyhow::{anyhow, bail, Context, Result};
use flate2::Compression;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;
use support::load_average;

const USAGE: &str = "usage: cargo bench --bench publish -- [--sizes 1000,10000] \
[--peers repoctl,reprepro,aptly,apt-ftparchive] [--work DIR] [--repoctl PATH] [--b-runs 5] \
[--no-save]";
/// Bump when the generated corpus changes, so that cached corpora are made again.
const CORPUS_FORMAT: u32 = 2;
/// The package whose new versions (b) adds: an `all` package, so both indices change.
const B_PACKAGE: usize = 1;

/// How one peer is driven. Scripts run under `sh -e` in the peer's own (empty) directory
/// with $REPOCTL, $FPR (key fingerprint), $KEY (armored secret key), $DEBS (the corpus
/// directory of N .debs) and, for `add`, $DEB (one new .deb) in the environment.
struct Peer {
    name: &'static str,
    /// Untimed: configuration and an empty repository.
    setup: &'static str,
    /// (a): import the corpus, publish, sign.
    import: &'static str,
    /// (b): add $DEB, publish, sign.
    add: &'static str,
    /// For (c), relative to the peer's directory: [database], [index tree], [pool].
    layout: [&'static [&'static str]; 3],
}

const PEERS: [Peer; 4] = [
    Peer {
        name: "repoctl",
        setup: "$REPOCTL --root root init --dists bench --components main \
                --architectures amd64,i386 --origin Bench --label Bench --import-key $KEY",
        import: "$REPOCTL --root root add --dist bench --component main --no-publish $DEBS
                 $REPOCTL --root root publish",
        add: "$REPOCTL --root root add --dist bench --component main $DEB",
        layout: [
            &["root/state"],
            &["root/public/dists", "root/public/.generations"],
            &["root/public/pool"],
        ],
    },
    Peer {
        name: "reprepro",
        setup: "mkdir conf && cat > conf/distributions <<EOF
Origin: Bench\nLabel: Bench\nSuite: bench\nCodename: bench\nArchitectures: amd64 i386
Components: main\nDebIndices: Packages Release . .gz .xz\nSignWith: $FPR\nEOF",
        // Batches stay below ARG_MAX; one export (indices and signatures) at the end.
        import: "find $DEBS -name '*.deb' | sort \
                 | xargs -n 2000 reprepro -b . --export=silent-never includedeb bench
                 reprepro -b . export bench",
        add: "reprepro -b . includedeb bench $DEB",
        layout: [&["db"], &["dists"], &["pool"]],
    },
    Peer {
        name: "aptly",
        setup: "printf '{\"rootDir\": \"%s\", \"gpgProvider\": \"gpg\"}\\n' \"$PWD\" > aptly.conf
                aptly -config=aptly.conf repo create -distribution=bench -component=main bench",
        import: "aptly -config=aptly.conf repo add bench $DEBS
                 aptly -config=aptly.conf publish repo -batch -gpg-key=$FPR -skip-contents \
                 -skip-bz2 -distribution=bench -component=main -architectures=amd64,i386 \
                 -origin=Bench -label=Bench bench",
        add: "aptly -config=aptly.conf repo add bench $DEB
              aptly -config=aptly.conf publish update -batch -gpg-key=$FPR -skip-contents \
              -skip-bz2 bench",
        layout: [&["db"], &["public/dists"], &["pool", "public/pool"]],
    },
    Peer {
        name: "apt-ftparchive",
        // It has no import step: the pool is laid out here, untimed, by hard links.
        setup: "D=archive/dists/bench/main
mkdir -p archive/pool/main $D/binary-amd64 $D/binary-i386 cache
find $DEBS -name '*.deb' -exec cp -l -t archive/pool/main {} +
cat > apt.conf <<'EOF'
Dir { ArchiveDir \"archive\"; CacheDir \"cache\"; };
Default { Packages::Compress \". gzip xz\"; Packages::Extensions \".deb\"; };
TreeDefault { Directory \"pool/$(SECTION)\";
  Packages \"$(DIST)/$(SECTION)/binary-$(ARCH)/Packages\"; };
Tree \"dists/bench\" { Sections \"main\"; Architectures \"amd64 i386\"; BinCacheDB \"pkgs.db\"; };
EOF
cat > release.conf <<'EOF'
APT::FTPArchive::Release { Origin \"Bench\"; Label \"Bench\"; Suite \"bench\";
  Codename \"bench\"; Architectures \"amd64 i386\"; Components \"main\"; };
EOF
cat > publish.sh <<'EOF'
D=archive/dists/bench
apt-ftparchive -oAPT::FTPArchive::Contents=false generate apt.conf
rm -f $D/Release $D/InRelease $D/Release.gpg
apt-ftparchive -c release.conf release $D > Release.new && mv Release.new $D/Release
gpg --batch --yes --digest-algo SHA256 -u $FPR --clearsign -o $D/InRelease $D/Release
gpg --batch --yes --digest-algo SHA256 -u $FPR -a --detach-sign -o $D/Release.gpg $D/Release
EOF",
        import: "sh -e publish.sh",
        add: "cp -l $DEB archive/pool/main/ && sh -e publish.sh",
        layout: [&["cache"], &["archive/dists"], &["archive/pool"]],
    },
];

/// One RSA-4096 key without passphrase in $GNUPGHOME, made once per work directory.
const KEYGEN: &str = "mkdir -m 700 -p $GNUPGHOME
gpg --batch --passphrase '' --quick-gen-key 'Bench Signing <bench@example.invalid>' rsa4096 sign
gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == \"fpr\" {print $10; exit}' > fpr
gpg --batch --armor --export-secret-keys $(cat fpr) > signing-secret.asc
gpg --batch --yes --output signing-public.gpg --export $(cat fpr)
mv fpr signing-fpr";

/// Prints `signed` when both signatures verify, then the compressed indices found.
const CHECK: &str = "cd $DISTS/bench
if gpgv --keyring $KEYRING InRelease && gpgv --keyring $KEYRING Release.gpg Release
then printf signed; else printf 'BAD SIGNATURE'; fi
for x in gz xz; do if test -e main/binary-amd64/Packages.$x; then printf \" .$x\"; fi; done
P=main/binary-
printf ' %s' $(zcat ${P}amd64/Packages.gz ${P}i386/Packages.gz | grep -c '^Package: ')";

const VERSIONS: &str = "for c in \"$REPOCTL --version\" 'reprepro --version' 'aptly version' \
'apt-ftparchive --version' 'gpg --version' 'uname -srm'
do printf '  %-17s%s\\n' \"$(basename ${c%% *})\" \"$($c 2>&1 | head -n 1)\"; done
echo \"  $(nproc) CPUs\"";

struct Opts {
    sizes: Vec<usize>,
    peers: Vec<&'static Peer>,
    work: PathBuf,
    repoctl: String,
    b_runs: usize,
    save: bool,
}

fn parse_args() -> Result<Opts> {
    let mut o = Opts {
        sizes: vec![1_000, 10_000],
        peers: PEERS.iter().collect(),
        work: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-publish"),
        repoctl: option_env!("CARGO_BIN_EXE_repoctl")
            .unwrap_or("repoctl")
            .into(),
        b_runs: 5,
        save: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--bench" => {} // cargo bench passes it to harness = false programs
            "--sizes" => {
                let v = value()?.replace('_', "");
                o.sizes = v.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--peers" => {
                let v = value()?;
                let peer = |s| PEERS.iter().find(|p| p.name == s);
                let peers = v
                    .split(',')
                    .map(|s| peer(s).ok_or_else(|| anyhow!("no peer {s}")));
                o.peers = peers.collect::<Result<_>>()?;
            }
            "--work" => o.work = PathBuf::from(value()?),
            "--repoctl" => o.repoctl = value()?,
            "--b-runs" => o.b_runs = value()?.parse().context("--b-runs")?,
            "--no-save" => o.save = false,
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if o.sizes.iter().any(|&n| n < 15) || o.b_runs == 0 {
        bail!("each size must be at least 15 and --b-runs at least 1");
    }
    Ok(o)
}

// ------------------------------------------------------------------------- corpus

fn pkg_arch(p: usize) -> &'static str {
    match p % 20 {
        7 => "amd64",
        13 => "i386",
        _ => "all",
    }
}

fn deb_file_name(p: usize, v: usize) -> String {
    format!("bench-pkg-{p:05}_{v}_{}.deb", pkg_arch(p))
}

const WORDS: &str = "apt archive python virtualenv deploy service request handler pool index \
release signature client server cache worker queue metrics configuration logging database schema \
migration bundle whois resolver gateway scheduler upload checksum";

/// A control file of 450-650 bytes, so that a Packages paragraph (with Filename, Size and
/// hashes) is 700-900 bytes, like a real one with a long description.
fn control_text(p: usize, v: usize) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut seed = (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ v as u64;
    let mut word = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        words[(seed % words.len() as u64) as usize]
    };
    let name = format!("bench-pkg-{p:05}");
    let mut s = format!(
        "Package: {name}\nVersion: {v}\nArchitecture: {}\n",
        pkg_arch(p)
    );
    s += "Maintainer: Bench Builder <bench@example.invalid>\n";
    s += &format!("Installed-Size: {}\n", 8 + p % 50);
    if p % 3 == 1 {
        s += &format!(
            "Depends: python3 (>= 3.5), libc6 (>= 2.19), bench-pkg-{:05}\n",
            p / 3
        );
    }
    let section = ["misc", "python", "web", "net", "utils"][p % 5];
    s += &format!("Section: {section}\nPriority: optional\n");
    s += &format!("Homepage: https://example.invalid/{name}\n");
    s += &format!(
        "Description: synthetic {} {} package for benchmarks\n",
        word(),
        word()
    );
    for line in 0..(4 + p % 3) {
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

fn write_deb(path: &Path, p: usize, v: usize) -> Result<()> {
    let control = control_text(p, v);
    let doc = format!("./usr/share/doc/bench-pkg-{p:05}/");
    let readme = format!("bench-pkg-{p:05} {v}: synthetic payload of the publish benchmark.\n");
    let mut data = vec![("./", None), ("./usr/", None), ("./usr/share/", None)];
    data.extend([("./usr/share/doc/", None), (doc.as_str(), None)]);
    let readme_path = format!("{doc}README");
    data.push((&readme_path, Some(readme.as_bytes())));
    let bytes = support::deb(&control, &data, Compression::default())?;
    fs::write(path, bytes).with_context(|| format!("creating {}", path.display()))
}

/// The N .debs that (a) imports, in `dir`/debs, and one new version of `B_PACKAGE` per (b)
/// run (versions 6, 7, ...), in `dir`/extra. Made once and reused while the stamp matches.
fn corpus(work: &Path, n: usize, b_runs: usize) -> Result<(PathBuf, Vec<PathBuf>)> {
    let dir = work.join(format!("corpus-{n}"));
    let (debs, extra) = (dir.join("debs"), dir.join("extra"));
    let mut jobs: Vec<(PathBuf, usize, usize)> = (0..n)
        .map(|i| (debs.join(deb_file_name(i / 5, i % 5 + 1)), i / 5, i % 5 + 1))
        .collect();
    let new = (6..6 + b_runs).map(|v| (extra.join(deb_file_name(B_PACKAGE, v)), B_PACKAGE, v));
    jobs.extend(new);
    let stamp = format!("format {CORPUS_FORMAT} n {n} b-runs {b_runs}\n");
    if fs::read_to_string(dir.join("complete")).ok() != Some(stamp.clone()) {
        let start = Instant::now();
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&debs)?;
        fs::create_dir_all(&extra)?;
        let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
        let chunks = jobs.chunks(jobs.len().div_ceil(threads));
        let write = |chunk: &[(PathBuf, usize, usize)]| {
            chunk.iter().try_for_each(|(f, p, v)| write_deb(f, *p, *v))
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks.map(|chunk| s.spawn(move || write(chunk))).collect();
            let joined = handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("panic")));
            joined.collect::<Result<Result<Vec<()>>>>()
        })??;
        // What dpkg itself reads: a sample of each architecture.
        for p in [0, 7, 13] {
            let deb = debs.join(deb_file_name(p, 1));
            let script = format!("dpkg-deb -I {0} && dpkg-deb -c {0}", deb.display());
            let out = sh(&dir, &script, &[], &dir.join("dpkg-deb.log"))?.0;
            let arch = format!("Architecture: {}", pkg_arch(p));
            if !out.contains(&arch) || !out.contains("./usr/share/doc/bench-pkg-") {
                bail!("dpkg-deb reads {} wrongly:\n{out}", deb.display());
            }
        }
        fs::write(dir.join("complete"), &stamp)?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!("generated {} .debs in {secs:.1} s", jobs.len());
    }
    Ok((debs, jobs.into_iter().skip(n).map(|j| j.0).collect()))
}

// --------------------------------------------------------------------- processes

/// Wall time, CPU time (user + system) and peak RSS of a script's whole process tree.
#[derive(Clone, Copy, Default)]
struct Cost {
    secs: f64,
    cpu: f64,
    rss_kb: u64,
}

/// Runs `script` with `sh -e` in `dir` under `/usr/bin/time`; appends the script and its
/// output to `log`; returns its stdout and cost, or an error with the end of its output.
fn sh(dir: &Path, script: &str, env: &[(&str, &Path)], log: &Path) -> Result<(String, Cost)> {
    let tfile = log.with_extension("time");
    let mut t = Command::new("/usr/bin/time");
    t.args(["-f", "%e %M %U %S", "-o"])
        .arg(&tfile)
        .args(["sh", "-ec", script]);
    t.current_dir(dir).envs(env.iter().copied());
    let start = Instant::now();
    let out = t
        .output()
        .context("running /usr/bin/time (apt-get install time)")?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
    write!(logf, "$ {script}\n{stdout}{stderr}")?;
    if !out.status.success() {
        let why = stderr.lines().last().unwrap_or_default();
        bail!("{}: {why} (log {})", out.status, log.display());
    }
    let times = fs::read_to_string(&tfile)?;
    let last = times.lines().last().unwrap_or_default().split_whitespace();
    let f: Vec<f64> = last.filter_map(|x| x.parse().ok()).collect();
    let [_, rss, user, sys] = f[..] else {
        bail!("/usr/bin/time wrote {times}")
    };
    let cost = Cost {
        secs,
        cpu: user + sys,
        rss_kb: rss as u64,
    };
    writeln!(
        logf,
        "# {secs:.3} s, cpu {:.2} s, peak RSS {rss} KB",
        cost.cpu
    )?;
    Ok((stdout, cost))
}

// ------------------------------------------------------------------ measurements

/// Bytes on disk (allocated blocks) under `paths`, each inode counted once across calls.
fn disk_usage(dir: &Path, paths: &[&str], seen: &mut HashSet<(u64, u64)>) -> u64 {
    let (mut total, mut stack): (u64, Vec<PathBuf>) =
        (0, paths.iter().map(|p| dir.join(p)).collect());
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if let (true, Ok(dir)) = (meta.is_dir(), fs::read_dir(&p)) {
            stack.extend(dir.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    total
}

struct Outcome {
    a: Cost,
    b: Vec<Cost>,
    /// Bytes on disk of the database, the index tree and the pool.
    sizes: [u64; 3],
    /// `signed .gz .xz ENTRIES`: signatures verified, indices found, paragraphs in
    /// binary-amd64 + binary-i386 (`all` packages are listed in both).
    check: String,
    /// repoctl only: catalog.sqlite + -wal, apparent bytes.
    catalog: Option<u64>,
}

impl Outcome {
    fn b_median(&self, f: fn(&Cost) -> f64) -> f64 {
        let mut s: Vec<f64> = self.b.iter().map(f).collect();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
    fn b_rss_kb(&self) -> u64 {
        self.b.iter().map(|c| c.rss_kb).max().unwrap_or(0)
    }
}

fn bench_peer(peer: &Peer, o: &Opts, n: usize, debs: &Path, extra: &[PathBuf]) -> Result<Outcome> {
    let base = o.work.join(format!("n{n}"));
    let dir = base.join(peer.name);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let log = base.join(format!("{}.log", peer.name));
    let _ = fs::remove_file(&log);
    sh(&dir, peer.setup, &[("DEBS", debs)], &log)?;
    eprintln!("{}: (a) and (b) at N = {n}", peer.name);
    let a = sh(&dir, peer.import, &[("DEBS", debs)], &log)?.1;
    let mut b = Vec::new();
    for deb in extra {
        b.push(sh(&dir, peer.add, &[("DEB", deb)], &log)?.1);
    }
    let mut seen = HashSet::new();
    let sizes = peer.layout.map(|paths| disk_usage(&dir, paths, &mut seen));
    let dists = dir.join(peer.layout[1][0]);
    let check = sh(&dir, CHECK, &[("DISTS", &dists)], &log)?.0;
    let len = |f: &str| fs::metadata(dir.join("root/state").join(f)).map_or(0, |m| m.len());
    let catalog =
        (peer.name == "repoctl").then(|| len("catalog.sqlite") + len("catalog.sqlite-wal"));
    Ok(Outcome {
        a,
        b,
        sizes,
        check,
        catalog,
    })
}

// ------------------------------------------------------------------------ report

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

fn ratio(peer: f64, ours: f64) -> String {
    format!("{:.1}x", peer / ours)
}

/// One line: a left-aligned first cell, then cells right-aligned to `widths`.
fn line<S: AsRef<str>>(cells: &[S], widths: &[usize]) -> String {
    let mut s = format!("{:<16}", cells[0].as_ref());
    for (cell, w) in cells[1..].iter().zip(widths) {
        s += &format!("{:>w$}", cell.as_ref());
    }
    s + "\n"
}

const RATIO_HEAD: [&str; 7] = ["peer", "(a)", "(a)cpu", "(b)", "(b)cpu", "RSS(b)", "state"];

fn table(n: usize, o: &Opts, load_before: &str, rows: &[(&Peer, Result<Outcome>)]) -> String {
    let (load_after, b_runs) = (load_average(), o.b_runs);
    let mut t = format!(
        "\n== N = {n} package files ({} packages x 5 versions; 90% all, 5% amd64, 5% i386)\n\
         (b) = median of {b_runs} additions, (b)max the slowest; \
         load average {load_before} before, {load_after} after\n",
        n / 5
    );
    const W: [usize; 11] = [8, 8, 8, 8, 8, 10, 10, 9, 9, 9, 0];
    let head = "peer (a)s (a)cpu (b)s (b)cpu (b)max RSS(a)MB RSS(b)MB state_MB dists_MB pool_MB";
    let mut head: Vec<String> = head.split(' ').map(|h| h.replace('_', " ")).collect();
    head.push("  check entries".into());
    t += &line(&head, &W);
    for (peer, res) in rows {
        let x = match res {
            Ok(x) => x,
            Err(e) => {
                t += &format!("{:<16}FAILED: {e}\n", peer.name);
                continue;
            }
        };
        let b = |f: fn(&Cost) -> f64| format!("{:.3}", x.b_median(f));
        let mut cells = vec![peer.name.into(), format!("{:.2}", x.a.secs)];
        cells.extend([format!("{:.2}", x.a.cpu), b(|c| c.secs), b(|c| c.cpu)]);
        let b_max = x.b.iter().map(|c| c.secs).fold(0.0, f64::max);
        cells.push(format!("{b_max:.3}"));
        cells.extend([mb(x.a.rss_kb * 1024), mb(x.b_rss_kb() * 1024)]);
        cells.extend(x.sizes.map(mb));
        cells.push(format!("  {}", x.check));
        t += &line(&cells, &W);
    }
    let find = |name| rows.iter().find(|r| r.0.name == name)?.1.as_ref().ok();
    let Some(us) = find("repoctl") else { return t };
    t += "ratios peer / repoctl (above 1x: repoctl is faster or smaller)\n";
    t += &line(&RATIO_HEAD, &[8; 6]);
    for (peer, x) in rows.iter().filter(|r| r.0.name != "repoctl") {
        let Ok(x) = x else { continue };
        let b = |f: fn(&Cost) -> f64| ratio(x.b_median(f), us.b_median(f));
        let mut cells = vec![peer.name.into(), ratio(x.a.secs, us.a.secs)];
        cells.extend([ratio(x.a.cpu, us.a.cpu), b(|c| c.secs), b(|c| c.cpu)]);
        cells.push(ratio(x.b_rss_kb() as f64, us.b_rss_kb() as f64));
        cells.push(ratio(x.sizes[0] as f64, us.sizes[0] as f64));
        t += &line(&cells, &[8; 6]);
    }
    let files = (n + o.b_runs) as u64;
    if let Some(cat) = us.catalog {
        let per = cat / files;
        t += &format!("repoctl catalog.sqlite + -wal: {cat} bytes for {files} package files");
        t += &format!(" = {per} bytes per package file\n");
    }
    let b = us.b_median(|c| c.secs);
    if let (Some(rp), 10_000) = (find("reprepro"), n) {
        let r = ratio(rp.b_median(|c| c.secs), b);
        t += &format!("target (b) reprepro/repoctl at 10,000 >= 2x: {r}\n");
    }
    if n == 50_000 {
        t += &format!("target (b) repoctl at 50,000 <= 0.5 s: {b:.3} s\n");
    }
    if let Some(fa) = find("apt-ftparchive") {
        let r = ratio(fa.a.secs, us.a.secs);
        t += &format!("target (a) apt-ftparchive/repoctl >= 2x: {r}\n");
    }
    let rss = mb(us.b_rss_kb() * 1024);
    t + &format!("target (c) repoctl peak RSS in (b) <= 20 MB: {rss} MB\n")
}

const NOTES: &str = "notes:
  (a) import all + publish + sign; (b) add one new version of an `all` package + publish + sign
  (both indices change). Times are wall seconds; cpu = user + system seconds of the process
  tree; RSS = the largest peak RSS of any one process of it (gpg-agent, a daemon, is not seen).
  check: both signatures verify with gpgv; index formats found; entries = paragraphs in
  binary-amd64 + binary-i386 Packages (`all` packages are listed in both).
  reprepro keeps only the newest version of a package: it indexes a fifth of the entries.
  aptly 1.5 cannot write Packages.xz: it writes Packages and .gz (.bz2 and Contents off).
  apt-ftparchive (a) leaves out laying the files into its pool (hard links, untimed).
  Contents indices are off everywhere; all sign with one RSA-4096 key (peers through gpg).
  state = database or catalog; dists = served index tree; pool = served .debs (an inode
  is counted once, so aptly's hard-linked public pool is not counted twice).";

fn main() -> Result<()> {
    let mut o = parse_args()?;
    fs::create_dir_all(&o.work)?;
    o.work = fs::canonicalize(&o.work)?;
    let (work, log) = (o.work.clone(), o.work.join("bench.log"));
    let w = work.display().to_string();
    if w.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
        bail!("the work dir must hold no blank, quote, $ or \\");
    }
    // Every script sees these; set before any thread starts.
    std::env::set_var("GNUPGHOME", work.join("gnupg"));
    std::env::set_var("REPOCTL", &o.repoctl);
    std::env::set_var("KEY", work.join("signing-secret.asc"));
    std::env::set_var("KEYRING", work.join("signing-public.gpg"));
    if !work.join("signing-fpr").exists() {
        sh(&work, KEYGEN, &[], &log)?;
    }
    std::env::set_var("FPR", fs::read_to_string(work.join("signing-fpr"))?.trim());
    let date = sh(&work, "date -u '+%Y-%m-%d %H:%M UTC'", &[], &log)?.0;
    let versions = sh(&work, VERSIONS, &[], &log)?.0;
    let mut out = format!("repoctl publish benchmark, {}\n{versions}", date.trim());
    print!("{out}");
    for &n in &o.sizes {
        let (debs, extra) = corpus(&work, n, o.b_runs)?;
        let load_before = load_average();
        let mut rows = Vec::new();
        for &peer in &o.peers {
            let res = bench_peer(peer, &o, n, &debs, &extra);
            if let Err(e) = &res {
                eprintln!("{} failed: {e:#}", peer.name);
            }
            rows.push((peer, res));
        }
        let t = table(n, &o, &load_before, &rows);
        print!("{t}");
        out += &t;
    }
    println!("\n{NOTES}");
    out += &format!("\n{NOTES}\n");
    let _ = sh(&work, "gpgconf --kill gpg-agent", &[], &log);
    if o.save {
        support::save("publish", &date, &out)?;
    }
    Ok(())
}
