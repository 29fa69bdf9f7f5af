//! .deb writer benchmark: repoctl's own writer (`build::deb_writer`) side by
//! side with `dpkg-deb --build`, on one venv-like tree of 150+ MB.
//!
//! A program that prints figures and ratios, never a timed test. It builds
//! the tree once under the work dir (`python3 -m venv` + `pip install` of a
//! few large wheels; a synthetic mix of .py, .pyc, .so-like and text files
//! when pip cannot reach the package index) and a staging copy of the control
//! data for dpkg-deb (`DEBIAN/control` and `DEBIAN/md5sums`, untimed). Then,
//! for gzip and xz at the same level (gzip -9, dpkg-deb's default; xz -6,
//! the default of both; repoctl changes two of its options, nice_len 32
//! instead of 64 and a 16 MiB dictionary instead of 8: see `XZ_NICE_LEN`),
//! it runs each contender `--runs` times after one
//! warm-up, alternating, and prints the median wall time, CPU time and size.
//!
//! ```text
//! cargo bench --bench deb_writer -- [--runs 3] [--threads 0] [--work DIR]
//!     [--packages numpy,pandas] [--synthetic] [--compressions gzip,xz] [--no-save]
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use repoctl::build::deb_writer::{
    write_deb, Compression, DataDir, DebSpec, DebStats, GZIP_LEVEL, XZ_DICT_SIZE, XZ_NICE_LEN,
    XZ_PRESET,
};

mod support;
use support::run;

const USAGE: &str = "usage: cargo bench --bench deb_writer -- [--runs 3] [--threads 0] \
[--work DIR] [--packages numpy,pandas] [--synthetic] [--compressions gzip,xz] [--no-save]";
/// Every mtime in both packages is clamped to this (`SOURCE_DATE_EPOCH`).
const EPOCH: u64 = 1_700_000_000;
/// Where the tree installs, and so the directory it sits in under `<work>/tree`.
const INSTALL: &str = "vrmd/bench";
/// Bump when the tree recipe changes, so that a cached tree is made again.
const TREE_FORMAT: u32 = 1;

struct Options {
    runs: usize,
    threads: usize,
    work: PathBuf,
    packages: String,
    synthetic: bool,
    compressions: Vec<Compression>,
    save: bool,
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 3,
        threads: 0,
        work: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-deb"),
        packages: "numpy,pandas".into(),
        synthetic: false,
        compressions: vec![Compression::Gzip, Compression::Xz],
        save: true,
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--runs" => o.runs = value()?.parse().context("--runs takes a number")?,
            "--threads" => o.threads = value()?.parse().context("--threads takes a number")?,
            "--work" => o.work = PathBuf::from(value()?),
            "--packages" => o.packages = value()?,
            "--synthetic" => o.synthetic = true,
            "--no-save" => o.save = false,
            "--compressions" => {
                o.compressions = value()?
                    .split(',')
                    .map(|c| match c.trim() {
                        "gzip" => Ok(Compression::Gzip),
                        "xz" => Ok(Compression::Xz),
                        other => bail!("unknown compression {other}\n{USAGE}"),
                    })
                    .collect::<Result<_>>()?
            }
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(o)
}

/// Makes `<work>/tree/vrmd/bench` once; returns how it was made.
fn tree(o: &Options) -> Result<String> {
    let root = o.work.join("tree");
    let recipe = if o.synthetic {
        "synthetic".to_string()
    } else {
        format!("pip {}", o.packages)
    };
    let marker = o.work.join("tree.made");
    let want = format!("{TREE_FORMAT} {recipe}\n");
    if fs::read_to_string(&marker).is_ok_and(|m| m.starts_with(&want)) {
        return Ok(fs::read_to_string(&marker)?[want.len()..]
            .trim()
            .to_string());
    }
    if root.exists() {
        fs::remove_dir_all(&root)?;
    }
    let venv = root.join(INSTALL);
    fs::create_dir_all(&venv)?;
    let how = if o.synthetic {
        synthesize(&venv)?
    } else {
        eprintln!(
            "building the tree: python3 -m venv + pip install {}",
            o.packages
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        let pip = run(Command::new(venv.join("bin/pip"))
            .args(["install", "--no-input", "--disable-pip-version-check", "-q"])
            .args(o.packages.split(',')));
        match pip {
            Ok(_) => {
                let freeze = run(Command::new(venv.join("bin/pip")).arg("freeze"))?;
                let python = run(Command::new(venv.join("bin/python")).arg("--version"))?;
                format!(
                    "python3 -m venv ({}) + pip install {}: {}",
                    python.trim(),
                    o.packages,
                    freeze.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
            Err(e) => {
                eprintln!("pip failed ({e:#}); synthesizing the tree instead");
                fs::remove_dir_all(&venv)?;
                fs::create_dir_all(&venv)?;
                synthesize(&venv)?
            }
        }
    };
    fs::write(&marker, format!("{want}{how}\n"))?;
    Ok(how)
}

/// A venv-like mix when pip is out of reach: 180 MB of small .py sources,
/// their .pyc, .so-like binaries (ELF magic, half random, half repetitive)
/// and text, in deep package directories.
fn synthesize(venv: &Path) -> Result<String> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const WORDS: [&str; 12] = [
        "def ",
        "return ",
        "self",
        ".value",
        " = ",
        "import ",
        "numpy",
        "(x, y)",
        "\n    ",
        "if not ",
        "None",
        "# comment about the array shape\n",
    ];
    let site = venv.join("lib/python3.11/site-packages");
    for p in 0..40 {
        for m in 0..150 {
            let dir = site.join(format!(
                "package_{p:02}/submodule_with_a_long_name_{}",
                m % 12
            ));
            fs::create_dir_all(dir.join("__pycache__"))?;
            let len = 1_000 + (next() % 30_000) as usize;
            let mut py = String::with_capacity(len);
            while py.len() < len {
                py.push_str(WORDS[(next() % 12) as usize]);
            }
            fs::write(dir.join(format!("module_{m}.py")), &py)?;
            let pyc: Vec<u8> = py.bytes().map(|b| b ^ (next() % 4) as u8).collect();
            let pyc_name = format!("__pycache__/module_{m}.cpython-311.pyc");
            fs::write(dir.join(pyc_name), pyc)?;
        }
        for s in 0..2 {
            let len = 500_000 + (next() % 4_000_000) as usize;
            let mut so = b"\x7fELF\x02\x01\x01\0".to_vec();
            while so.len() < len {
                let word = next().to_le_bytes();
                let block = if next() % 2 == 0 { word } else { [word[0]; 8] };
                so.extend_from_slice(&block);
            }
            fs::write(site.join(format!("package_{p:02}/_native_{s}.so")), so)?;
        }
        fs::write(
            site.join(format!("package_{p:02}/LICENSE.txt")),
            WORDS.concat().repeat(200),
        )?;
    }
    Ok("synthetic (pip unreachable or --synthetic)".into())
}

/// Files, bytes, paths over 100 bytes (as `./vrmd/bench/...`) in the tree.
fn census(venv: &Path) -> (u64, u64, u64, u64) {
    let (mut files, mut bytes, mut paths, mut long) = (0, 0, 0, 0);
    for e in walkdir::WalkDir::new(venv).into_iter().flatten() {
        paths += 1;
        let rel = e.path().strip_prefix(venv).unwrap_or(e.path());
        if format!("./{INSTALL}/{}", rel.display()).len() > 100 {
            long += 1;
        }
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    (files, bytes, paths, long)
}

fn control_fields() -> Vec<(String, String)> {
    [
        ("Package", "vrmd-bench"),
        ("Version", "1"),
        ("Architecture", "amd64"),
        ("Maintainer", "Bench <bench@example.com>"),
        ("Depends", "python3"),
        ("Description", "Branch: main Commit: 0000000"),
    ]
    .map(|(f, v)| (f.to_string(), v.to_string()))
    .to_vec()
}

/// `DEBIAN/control` (with our Installed-Size) and `DEBIAN/md5sums` for dpkg-deb, untimed.
fn stage_for_dpkg(root: &Path, stats: &DebStats) -> Result<()> {
    let debian = root.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    let mut control = String::new();
    for (f, v) in control_fields() {
        if f == "Depends" {
            control += &format!("Installed-Size: {}\n", stats.installed_size_kib);
        }
        control += &format!("{f}: {v}\n");
    }
    fs::write(debian.join("control"), control)?;
    let mut lines = Vec::new();
    for e in walkdir::WalkDir::new(root.join(INSTALL)).sort_by_file_name() {
        let e = e?;
        if e.file_type().is_file() {
            let digest = hex::encode(Md5::digest(fs::read(e.path())?));
            let rel = e.path().strip_prefix(root)?.display().to_string();
            lines.push((rel, digest));
        }
    }
    lines.sort();
    let mut md5sums = fs::File::create(debian.join("md5sums"))?;
    for (path, digest) in lines {
        writeln!(md5sums, "{digest}  {path}")?;
    }
    Ok(())
}

/// CPU seconds (user + system) of this process and of its waited-for children.
fn cpu_seconds() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0; // USER_HZ
    (tick(14) + tick(15), tick(16) + tick(17))
}

struct Sample {
    wall: f64,
    cpu: f64,
    size: u64,
}

/// One table row: medians, size, then every run.
fn row(name: &str, samples: &[Sample]) -> String {
    let runs: Vec<String> = samples
        .iter()
        .map(|s| format!("{:.1}/{:.1}", s.wall, s.cpu))
        .collect();
    format!(
        "{name:<10}{:>8.2}{:>8.2}{:>12}  {}\n",
        median(samples, |s| s.wall),
        median(samples, |s| s.cpu),
        samples[0].size,
        runs.join(" ")
    )
}

fn median(samples: &[Sample], f: fn(&Sample) -> f64) -> f64 {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ours(
    o: &Options,
    venv: &Path,
    compression: Compression,
    out: &Path,
) -> Result<(Sample, DebStats)> {
    let spec = DebSpec {
        control: control_fields(),
        scripts: vec![],
        data: vec![DataDir {
            source: venv.to_path_buf(),
            install_path: PathBuf::from(format!("/{INSTALL}")),
        }],
        mtime: EPOCH,
        compression,
        threads: o.threads,
    };
    let (cpu0, _) = cpu_seconds();
    let start = Instant::now();
    let stats = write_deb(&spec, out)?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().0 - cpu0;
    Ok((
        Sample {
            wall,
            cpu,
            size: stats.size,
        },
        stats,
    ))
}

fn dpkg_deb(root: &Path, compression: Compression, out: &Path) -> Result<Sample> {
    let (z, level) = match compression {
        Compression::Gzip => ("-Zgzip", format!("-z{GZIP_LEVEL}")),
        Compression::Xz => ("-Zxz", format!("-z{XZ_PRESET}")),
    };
    let (_, cpu0) = cpu_seconds();
    let start = Instant::now();
    run(Command::new("dpkg-deb")
        .args([
            "--root-owner-group",
            "--no-uniform-compression",
            z,
            &level,
            "--build",
        ])
        .arg(root)
        .arg(out)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string()))?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().1 - cpu0;
    Ok(Sample {
        wall,
        cpu,
        size: fs::metadata(out)?.len(),
    })
}

/// What `dpkg-deb --contents` lists (mode, owner, size, name), sorted.
fn listing(deb: &Path) -> Result<Vec<String>> {
    let text = run(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let mut names: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
        })
        .collect();
    names.sort();
    Ok(names)
}

fn main() -> Result<()> {
    let o = options()?;
    fs::create_dir_all(&o.work)?;
    let how = tree(&o)?;
    let root = o.work.join("tree");
    let venv = root.join(INSTALL);
    let (files, bytes, paths, long) = census(&venv);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let dpkg_version = run(Command::new("dpkg-deb").arg("--version"))?;
    let date = run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    let load = || {
        let l = fs::read_to_string("/proc/loadavg").unwrap_or_default();
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    };
    let mut out = format!(
        "repoctl .deb writer benchmark, {}\n  tree: {how}\n",
        date.trim()
    );
    out += &format!(
        "  {:.1} MB in {files} files, {paths} paths ({long} over 100 bytes as ./{INSTALL}/...)\n",
        bytes as f64 / 1e6
    );
    out += &format!(
        "  {}, {cpus} CPUs; repoctl --threads {} ({} compression threads)\n",
        dpkg_version
            .lines()
            .next()
            .unwrap_or("")
            .trim_end_matches('.'),
        o.threads,
        if o.threads == 0 { cpus } else { o.threads },
    );
    out += &format!(
        "  median of {} runs per contender after one warm-up, alternating; wall and CPU seconds \
         (user + system of all threads and children)\n",
        o.runs
    );
    print!("{out}");
    let mut targets = String::from("\ntargets (from the issue)\n");
    for &compression in &o.compressions {
        let (name, ext) = match compression {
            Compression::Gzip => (format!("gzip -{GZIP_LEVEL}"), "gz"),
            Compression::Xz => (
                format!(
                    "xz -{XZ_PRESET} (repoctl: nice_len {XZ_NICE_LEN}, dictionary {} MiB)",
                    XZ_DICT_SIZE >> 20
                ),
                "xz",
            ),
        };
        let (ours_deb, theirs_deb) = (
            o.work.join(format!("repoctl-{ext}.deb")),
            o.work.join(format!("dpkg-deb-{ext}.deb")),
        );
        let load_before = load();
        // Warm-up: page cache, staging (needs our Installed-Size), determinism reference.
        let (_, stats) = ours(&o, &venv, compression, &ours_deb)?;
        let reference = fs::read(&ours_deb)?;
        stage_for_dpkg(&root, &stats)?;
        dpkg_deb(&root, compression, &theirs_deb)?;
        let (mut a, mut b, mut identical) = (Vec::new(), Vec::new(), true);
        for _ in 0..o.runs {
            a.push(ours(&o, &venv, compression, &ours_deb)?.0);
            identical &= fs::read(&ours_deb)? == reference;
            b.push(dpkg_deb(&root, compression, &theirs_deb)?);
        }
        let same_entries = listing(&ours_deb)? == listing(&theirs_deb)?;
        let (wall_a, wall_b) = (median(&a, |s| s.wall), median(&b, |s| s.wall));
        let (cpu_a, cpu_b) = (median(&a, |s| s.cpu), median(&b, |s| s.cpu));
        let mut t = format!(
            "\n== data.tar.{ext}, {name} (load average {load_before} before, {} after)\n",
            load()
        );
        t += &format!(
            "{:<10}{:>8}{:>8}{:>12}  each run: wall s / cpu s\n",
            "contender", "wall s", "cpu s", "bytes"
        );
        t += &row("repoctl", &a);
        t += &row("dpkg-deb", &b);
        t += &format!(
            "dpkg-deb / repoctl: wall {:.2}x, cpu {:.2}x, size {:.4}x \
             (above 1x: repoctl faster or smaller)\n",
            wall_b / wall_a,
            cpu_b / cpu_a,
            b[0].size as f64 / a[0].size as f64,
        );
        t += &format!(
            "repoctl output identical in all {} runs: {}; dpkg-deb --contents (names, modes, \
             owners, sizes) the same for both: {}; {} ELF files\n",
            o.runs + 1,
            if identical { "yes" } else { "NO" },
            if same_entries { "yes" } else { "NO" },
            stats.elf_files.len(),
        );
        print!("{t}");
        out += &t;
        let speed = wall_b / wall_a;
        let smaller = a[0].size <= b[0].size;
        let (want, met) = match compression {
            Compression::Gzip => ("at least 2x faster, no larger", speed >= 2.0 && smaller),
            Compression::Xz => ("no slower, no larger", speed >= 1.0 && smaller),
        };
        targets += &format!(
            "{name}: {want} than dpkg-deb: {speed:.2}x, {} vs {} bytes ({})\n",
            a[0].size,
            b[0].size,
            if met { "met" } else { "NOT met" }
        );
    }
    print!("{targets}");
    out += &targets;
    if o.save {
        support::save("deb-writer", &date, &out)?;
    }
    Ok(())
}
