//! next-version benchmark: how long "what is the next version of this
//! package?" takes as a whole process, beside what the old workflow and the
//! peers offer on the same data: `reprepro list`, `aptly package search`, and
//! a grep of the Packages file (what `apt-cache show` boils down to).
//!
//! A program that prints figures and ratios, never a timed test. It reuses
//! the repositories the publish benchmark leaves in its work directory, so
//! run that first at the sizes wanted:
//!
//! ```text
//! cargo bench --bench publish -- --sizes 50000
//! cargo bench --bench next_version -- --sizes 50000 [--runs 101] [--work DIR]
//! ```
//!
//! Every command runs `--runs` times; the table shows the median wall time of
//! one whole process (spawn to exit), then each peer's median over repoctl's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

const USAGE: &str =
    "usage: cargo bench --bench next_version -- [--sizes 50000] [--runs 101] [--work DIR] [--repoctl PATH]";
/// The package asked about: one with five versions in every corpus.
const PACKAGE: &str = "bench-pkg-00042";
const TARGET_MS: f64 = 10.0;

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    work: PathBuf,
    repoctl: PathBuf,
}

fn options() -> Result<Options> {
    let mut o = Options {
        sizes: vec![50_000],
        runs: 101,
        work: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-publish"),
        repoctl: PathBuf::from(env!("CARGO_BIN_EXE_repoctl")),
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--sizes" => {
                o.sizes = value()?
                    .split(',')
                    .map(|s| s.trim().parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?
            }
            "--runs" => o.runs = value()?.parse().context("--runs takes a number")?,
            "--work" => o.work = PathBuf::from(value()?),
            "--repoctl" => o.repoctl = PathBuf::from(value()?),
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    Ok(o)
}

/// One contender: a command line, run in `dir`, whose stdout must mention `expect`.
struct Contender {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
}

fn contenders(o: &Options, base: &Path) -> Vec<Contender> {
    let packages = base.join("apt-ftparchive/archive/dists/bench/main/binary-amd64/Packages");
    vec![
        Contender {
            name: "repoctl next-version",
            program: o.repoctl.clone(),
            args: vec![
                "--root".into(),
                "root".into(),
                "next-version".into(),
                PACKAGE.into(),
            ],
            dir: base.join("repoctl"),
        },
        Contender {
            name: "reprepro list",
            program: "reprepro".into(),
            args: vec![
                "-b".into(),
                ".".into(),
                "list".into(),
                "bench".into(),
                PACKAGE.into(),
            ],
            dir: base.join("reprepro"),
        },
        Contender {
            name: "aptly package search",
            program: "aptly".into(),
            args: vec![
                "-config=aptly.conf".into(),
                "package".into(),
                "search".into(),
                format!("Name ({PACKAGE})"),
            ],
            dir: base.join("aptly"),
        },
        Contender {
            name: "grep Packages",
            program: "grep".into(),
            args: vec![
                "-A3".into(),
                format!("^Package: {PACKAGE}$"),
                packages.display().to_string(),
            ],
            dir: base.to_path_buf(),
        },
    ]
}

/// Median wall milliseconds of `runs` whole-process runs (after one warm-up).
fn measure(c: &Contender, runs: usize) -> Result<(f64, String)> {
    let run = || -> Result<(f64, String)> {
        let start = Instant::now();
        let out = Command::new(&c.program)
            .args(&c.args)
            .current_dir(&c.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", c.name))?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok((ms, String::from_utf8_lossy(&out.stdout).into_owned()))
    };
    let (_, answer) = run()?;
    let mut times = (0..runs)
        .map(|_| run().map(|r| r.0))
        .collect::<Result<Vec<_>>>()?;
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], answer))
}

fn main() -> Result<()> {
    let o = options()?;
    println!(
        "next-version benchmark: median of {} whole-process runs each",
        o.runs
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average before: {}",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for n in &o.sizes {
        let base = o.work.join(format!("n{n}"));
        if !base.join("repoctl/root/state/catalog.sqlite").exists() {
            bail!(
                "{} has no repositories for N = {n}; run `cargo bench --bench publish -- --sizes {n}` first (with the same --work)",
                base.display()
            );
        }
        println!("\n== N = {n} package files, package {PACKAGE}");
        println!(
            "{:<24}{:>12}{:>14}  answer",
            "contender", "median ms", "vs repoctl"
        );
        let mut ours = None;
        for c in contenders(&o, &base) {
            let (ms, answer) = measure(&c, o.runs)?;
            let ratio = ours.map_or("1.0x".to_string(), |r: f64| format!("{:.1}x", ms / r));
            ours.get_or_insert(ms);
            let first = answer
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect::<String>();
            println!("{:<24}{:>12.2}{:>14}  {first}", c.name, ms, ratio);
        }
        if let Some(ms) = ours {
            println!(
                "target: repoctl <= {TARGET_MS} ms per call: {ms:.2} ms ({})",
                if ms <= TARGET_MS { "met" } else { "NOT met" }
            );
        }
    }
    Ok(())
}
