//! Build benchmark: the whole `repoctl build` of an application against the
//! same steps done by hand (`python3 -m venv` + `pip install` + `dpkg-deb`).
//!
//! A program that prints figures and ratios, never a timed test. It copies
//! examples/whois into a git repository under the work dir, with heavier
//! requirements (the example's `six` plus `requests` and `numpy` by default),
//! warms a private pip cache with one untimed run of every contender (or,
//! where the index sends nothing pip may cache, fills a local wheelhouse that
//! both sides install from with `--no-index`: `--pip`), then
//! runs each contender `--runs` times, alternating, and prints the median wall
//! time, CPU time, .deb size and the time of each step:
//!
//! - `repoctl`: `repoctl build APP --build-only --force-version 1 --out DIR`,
//!   the release binary cargo builds for the bench, as root (so in its
//!   private mount namespace at /vrmd);
//! - `hand`: a shell script in `unshare --mount` with a scratch directory
//!   bind-mounted on /vrmd: `python3 -m venv /vrmd/whois`, `pip install -r
//!   requirements.txt`, the app's files (`git archive HEAD | tar -x`),
//!   `DEBIAN/control` and postinst, `dpkg-deb --root-owner-group -Zxz --build`;
//! - `hand-full`: the same plus what repoctl does beyond it (msgfmt, cache
//!   busting, the `.pth`, `pip install --no-deps` of the app, byte code again
//!   with `--invalidation-mode unchecked-hash`, md5sums, Installed-Size).
//!
//! ```text
//! cargo bench --bench build -- [--runs 3] [--compression xz|gzip]
//!     [--requirements six==1.16.0,requests,numpy] [--contenders repoctl,hand,hand-full]
//!     [--pip auto|cache|wheelhouse] [--work DIR] [--repoctl PATH] [--no-save]
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

mod support;
use support::{load_average as load, run};

const USAGE: &str = "usage: cargo bench --bench build -- [--runs 3] [--compression xz|gzip] \
[--requirements six==1.16.0,requests,numpy] [--contenders repoctl,hand,hand-full] \
[--pip auto|cache|wheelhouse] [--work DIR] [--repoctl PATH] [--no-save]";
const APP: &str = "whois";
const PREFIX: &str = "/vrmd";
/// Every build gets this version, so that repoctl's outputs can be compared.
const VERSION: &str = "1";
/// The commit date of the app (and so repoctl's `SOURCE_DATE_EPOCH`).
const COMMIT_DATE: &str = "2026-01-02T03:04:05Z";

/// The steps by hand, run by `sh` in `unshare --mount --propagation private`
/// with $ROOT (scratch, mounted on /vrmd), $APP, $APP_NAME, $PY, $CONTROL (the
/// control fields), $OUT, $Z, $EPOCH, $VERSION and $FULL in the environment.
/// `step NAME` marks the end of a step on stderr.
const HAND: &str = r#"set -eu
step() { printf 'STEP %s %s\n' "$(date +%s.%N)" "$1" >&2; }
step start
mkdir -p "$ROOT/vrmd"
mount --bind "$ROOT/vrmd" /vrmd
V=/vrmd/$APP_NAME
"$PY" -m venv "$V"
"$V/bin/pip" install --no-input -r "$APP/requirements.txt" >&2
step "venv + pip install -r"
mkdir "$V/$APP_NAME"
git -C "$APP" archive HEAD | tar -x -C "$V/$APP_NAME"
if [ "$FULL" = 1 ]; then
    find "$V/$APP_NAME" -name '*.po' | while read -r po; do msgfmt -o "${po%.po}.mo" "$po"; done
    sed -i "s/__CACHE_BUST__/$VERSION/g" "$V/$APP_NAME/$APP_NAME/templates/base.html"
    step "copy the app + pipeline"
    echo "$V/$APP_NAME" > "$(echo "$V"/lib/python3*/site-packages)/$APP_NAME.pth"
    "$V/bin/pip" install --no-input --no-deps "$V/$APP_NAME" >&2
    rm -rf "$V/$APP_NAME/build" "$V/$APP_NAME"/*.egg-info
    step "install the app"
    find "$V" -type d -name __pycache__ -prune -exec rm -rf {} +
    PYTHONHASHSEED=0 "$PY" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$V" >&2
    step "compile the byte code"
else
    step "copy the app"
fi
mkdir "$ROOT/DEBIAN"
install -m 755 "$APP/debian/postinst" "$ROOT/DEBIAN/postinst"
cp "$CONTROL" "$ROOT/DEBIAN/control"
if [ "$FULL" = 1 ]; then
    echo "Installed-Size: $(du -sk --apparent-size "$ROOT/vrmd" | cut -f1)" >> "$ROOT/DEBIAN/control"
    (cd "$ROOT" && find vrmd -type f -print0 | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
    step "control + md5sums"
else
    step "control"
fi
SOURCE_DATE_EPOCH=$EPOCH dpkg-deb --root-owner-group -Z"$Z" --build "$ROOT" "$OUT" >&2
step "dpkg-deb --build"
umount /vrmd
rm -rf "$ROOT"
step "clean up"
"#;

const NOTES: &str = "notes:
  repoctl: the steps of its summary (stderr). `install the requirements` includes the venv
  (python3 -m venv --without-pip, ensurepip without byte code, pip's modules compiled);
  `install the app` has the requirements' byte code compiled beside it (cores - 1 workers);
  `run the pipeline` includes git archive of the app; `write the .deb` includes deleting
  the venv afterwards (the steps by hand have it as `clean up`); `(outside the steps)` is
  process start, deploy.yml and the namespace (unshare, re-exec, bind mount).
  hand: python3 -m venv + pip install -r, git archive | tar -x, DEBIAN/control + postinst,
  dpkg-deb --root-owner-group -Z<compression> --build, umount + rm -rf. No md5sums, no
  Installed-Size, pip's own (timestamp) .pyc, no .mo, the app not pip-installed.
  hand-full: hand + msgfmt, cache busting, the .pth, pip install --no-deps of the app,
  __pycache__ removed and compileall --invalidation-mode unchecked-hash, md5sums, Installed-Size.
  files, .pyc, .mo, inst MB: regular files in each contender's last .deb (dpkg-deb --contents)
  and their unpacked size. Not timed: making the app's git repository, the probe or wheelhouse,
  building repoctl.";

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Repoctl,
    Hand,
    HandFull,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Repoctl => "repoctl",
            Contender::Hand => "hand",
            Contender::HandFull => "hand-full",
        }
    }
}

/// Where pip takes the requirements from in the timed runs.
#[derive(Clone, Copy, PartialEq)]
enum Pip {
    /// `cache` when the probe left files in the pip cache, else `wheelhouse`.
    Auto,
    /// The package index, through the warm pip cache of the work dir.
    Cache,
    /// `PIP_NO_INDEX=1 PIP_FIND_LINKS=<work>/wheelhouse`, filled by the probe.
    Wheelhouse,
}

struct Options {
    runs: usize,
    pip: Pip,
    compression: String,
    requirements: Vec<String>,
    contenders: Vec<Contender>,
    work: PathBuf,
    repoctl: PathBuf,
    save: bool,
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 3,
        pip: Pip::Auto,
        compression: "xz".into(),
        requirements: ["six==1.16.0", "requests", "numpy"]
            .map(String::from)
            .to_vec(),
        contenders: vec![Contender::Repoctl, Contender::Hand, Contender::HandFull],
        work: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-build"),
        repoctl: PathBuf::from(env!("CARGO_BIN_EXE_repoctl")),
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
            "--compression" => {
                o.compression = value()?;
                if !["xz", "gzip"].contains(&o.compression.as_str()) {
                    bail!("--compression is xz or gzip\n{USAGE}");
                }
            }
            "--requirements" => {
                o.requirements = value()?
                    .split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect()
            }
            "--contenders" => {
                o.contenders = value()?
                    .split(',')
                    .map(|c| match c.trim() {
                        "repoctl" => Ok(Contender::Repoctl),
                        "hand" => Ok(Contender::Hand),
                        "hand-full" => Ok(Contender::HandFull),
                        other => bail!("unknown contender {other}\n{USAGE}"),
                    })
                    .collect::<Result<_>>()?
            }
            "--pip" => {
                o.pip = match value()?.as_str() {
                    "auto" => Pip::Auto,
                    "cache" => Pip::Cache,
                    "wheelhouse" => Pip::Wheelhouse,
                    other => bail!("unknown --pip {other}\n{USAGE}"),
                }
            }
            "--work" => o.work = PathBuf::from(value()?),
            "--repoctl" => o.repoctl = PathBuf::from(value()?),
            "--no-save" => o.save = false,
            _ => bail!("unknown argument {flag}\n{USAGE}"),
        }
    }
    if o.runs == 0 || o.contenders.is_empty() {
        bail!("--runs must be at least 1, and --contenders name at least one");
    }
    Ok(o)
}

/// examples/whois in its own git repository under `<work>/app`, with the
/// requirements of the bench, `architecture: amd64` (numpy is compiled) and
/// this host's release as target (so that repoctl does not warn). Returns
/// the commit.
fn app(o: &Options, codename: &str) -> Result<String> {
    let app = o.work.join("app");
    if app.exists() {
        fs::remove_dir_all(&app)?;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(APP);
    for entry in walkdir::WalkDir::new(&example) {
        let entry = entry?;
        let dest = app.join(entry.path().strip_prefix(&example)?);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    fs::write(
        app.join("requirements.txt"),
        o.requirements.join("\n") + "\n",
    )?;
    let deploy = fs::read_to_string(app.join("deploy.yml"))?;
    let deploy: String = deploy
        .lines()
        .map(|l| match l.starts_with("target_platform:") {
            true => format!("target_platform: {codename}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    fs::write(app.join("deploy.yml"), deploy + "architecture: amd64\n")?;
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(&app)
            .args([
                "-c",
                "user.email=bench@example.com",
                "-c",
                "user.name=Bench",
            ])
            .args(args)
            .env("GIT_AUTHOR_DATE", COMMIT_DATE)
            .env("GIT_COMMITTER_DATE", COMMIT_DATE))
    };
    git(&["init", "-q", "-b", "master"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "the example, for the build benchmark"])?;
    Ok(git(&["rev-parse", "--short", "HEAD"])?.trim().to_string())
}

/// The control fields repoctl writes for the app (Installed-Size aside),
/// for the steps by hand.
fn control_fields(commit: &str, python_package: &str) -> String {
    format!(
        "Package: vrmd-{APP}\nVersion: {VERSION}\nArchitecture: amd64\n\
         Maintainer: DOM team <dom@example.com>\nDepends: {python_package}\nSection: misc\n\
         Priority: optional\nDescription: Branch: master Commit: {commit}\n \
         {APP} of DOM, a Python virtualenv at {PREFIX}/{APP}.\n"
    )
}

/// The Debian package of /usr/bin/python3 (`python3.11`), as repoctl finds it.
fn python_package() -> Result<String> {
    let real = fs::canonicalize("/usr/bin/python3")?;
    let owner = run(Command::new("dpkg").arg("-S").arg(&real))?;
    let package = owner.split(':').next().unwrap_or("").trim();
    Ok(package
        .strip_suffix("-minimal")
        .unwrap_or(package)
        .to_string())
}

/// `pip download` of the requirements and the app's build backend into
/// `<work>/wheelhouse`, through the bench's pip cache. Returns whether that
/// left anything in the cache: an index that sends no caching headers (no
/// `Cache-Control`) leaves it empty, and every build downloads again.
fn probe(o: &Options, p: &Paths) -> Result<bool> {
    let wheelhouse = o.work.join("wheelhouse");
    if wheelhouse.exists() {
        fs::remove_dir_all(&wheelhouse)?;
    }
    let cache = o.work.join("pip-cache");
    run(Command::new("/usr/bin/python3")
        .args(["-m", "pip", "download", "--no-input", "-q", "-d"])
        .arg(&wheelhouse)
        .arg("-r")
        .arg(p.app.join("requirements.txt"))
        .args(["setuptools>=61", "wheel"])
        .env("PIP_CACHE_DIR", &cache)
        .env("TMPDIR", o.work.join("tmp")))?;
    Ok(["http", "http-v2"].iter().any(|d| {
        walkdir::WalkDir::new(cache.join(d))
            .into_iter()
            .flatten()
            .any(|e| e.file_type().is_file())
    }))
}

/// CPU seconds (user + system) of this process's waited-for children.
fn children_cpu() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, cutime 16.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = |i: usize| f.get(i - 3).copied().unwrap_or(0.0) / 100.0; // USER_HZ
    tick(16) + tick(17)
}

struct Sample {
    wall: f64,
    cpu: f64,
    size: u64,
    /// (step, seconds), in order.
    steps: Vec<(String, f64)>,
}

struct Paths {
    work: PathBuf,
    app: PathBuf,
    control: PathBuf,
    commit_time: u64,
}

impl Paths {
    fn deb(&self, c: Contender) -> PathBuf {
        match c {
            Contender::Repoctl => self
                .work
                .join(format!("out/repoctl/vrmd-{APP}_{VERSION}_amd64.deb")),
            _ => self.work.join(format!("out/{}.deb", c.name())),
        }
    }
}

/// repoctl's summary on stderr: `  {seconds:7.2} s  {step}` per step.
fn repoctl_steps(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (secs, step) = l.trim_start().split_once(" s  ")?;
            Some((step.trim().to_string(), secs.parse().ok()?))
        })
        .collect()
}

/// The script's `STEP <unix time> <name>` marks: the time since the last one.
fn hand_steps(stderr: &str) -> Vec<(String, f64)> {
    let marks: Vec<(f64, &str)> = stderr
        .lines()
        .filter_map(|l| {
            let (time, name) = l.strip_prefix("STEP ")?.split_once(' ')?;
            Some((time.parse().ok()?, name))
        })
        .collect();
    marks
        .windows(2)
        .map(|w| (w[1].1.to_string(), w[1].0 - w[0].0))
        .collect()
}

/// One build by `c`; its log goes to `<work>/logs/<contender>-<label>.log`.
fn once(o: &Options, p: &Paths, c: Contender, label: &str) -> Result<Sample> {
    let deb = p.deb(c);
    let _ = fs::remove_file(&deb);
    let tmp = p.work.join("tmp");
    fs::create_dir_all(&tmp)?;
    fs::create_dir_all(deb.parent().unwrap_or(&p.work))?;
    let mut cmd = match c {
        Contender::Repoctl => {
            let mut cmd = Command::new(&o.repoctl);
            cmd.env_remove("REPOCTL_ROOT")
                .arg("build")
                .arg(&p.app)
                .args(["--build-only", "--force-version", VERSION, "--out"])
                .arg(deb.parent().unwrap_or(&p.work))
                .args(["--compression", &o.compression]);
            cmd
        }
        Contender::Hand | Contender::HandFull => {
            let root = tmp.join(c.name());
            if root.exists() {
                fs::remove_dir_all(&root)?;
            }
            let mut cmd = Command::new("unshare");
            cmd.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                HAND,
            ])
            .env("ROOT", &root)
            .env("APP", &p.app)
            .env("APP_NAME", APP)
            .env("PY", "/usr/bin/python3")
            .env("CONTROL", &p.control)
            .env("OUT", &deb)
            .env("Z", &o.compression)
            .env("EPOCH", p.commit_time.to_string())
            .env("VERSION", VERSION)
            .env("FULL", if c == Contender::HandFull { "1" } else { "0" });
            cmd
        }
    };
    // Both sides: the same pip cache and the same file system for scratch.
    cmd.env("PIP_CACHE_DIR", p.work.join("pip-cache"))
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null());
    if o.pip == Pip::Wheelhouse {
        cmd.env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", p.work.join("wheelhouse"));
    }
    let cpu0 = children_cpu();
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu0;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let log = p.work.join(format!("logs/{}-{label}.log", c.name()));
    fs::create_dir_all(p.work.join("logs"))?;
    fs::write(&log, format!("{cmd:?}\n{}\n{stdout}{stderr}", out.status))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}); see {}",
            c.name(),
            out.status,
            log.display()
        );
    }
    let steps = match c {
        Contender::Repoctl => repoctl_steps(&stderr),
        _ => hand_steps(&stderr),
    };
    Ok(Sample {
        wall,
        cpu,
        size: fs::metadata(&deb)
            .with_context(|| format!("{} made no {}", c.name(), deb.display()))?
            .len(),
        steps,
    })
}

fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What a .deb holds: entries, files, .pyc files, .mo files, unpacked bytes,
/// and the distributions in site-packages (`name==version` of `*.dist-info`).
struct Census {
    entries: usize,
    files: usize,
    pyc: usize,
    mo: usize,
    bytes: u64,
    dists: Vec<String>,
}

fn census(deb: &Path) -> Result<Census> {
    let text = run(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let mut c = Census {
        entries: 0,
        files: 0,
        pyc: 0,
        mo: 0,
        bytes: 0,
        dists: Vec::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(mode), Some(size), Some(name)) = (f.first(), f.get(2), f.get(5)) else {
            continue;
        };
        c.entries += 1;
        if mode.starts_with('-') {
            c.files += 1;
            c.bytes += size.parse::<u64>().unwrap_or(0);
            c.pyc += usize::from(name.ends_with(".pyc"));
            c.mo += usize::from(name.ends_with(".mo"));
        }
        if let Some(dist) = name
            .strip_suffix(".dist-info/")
            .and_then(|d| d.rsplit_once("/site-packages/"))
        {
            if let Some((n, v)) = dist.1.rsplit_once('-') {
                c.dists.push(format!("{n}=={v}"));
            }
        }
    }
    c.dists.sort();
    Ok(c)
}

fn load1(l: &str) -> f64 {
    l.split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0)
}

fn main() -> Result<()> {
    let mut o = options()?;
    fs::create_dir_all(&o.work)?;
    o.work = fs::canonicalize(&o.work)?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let date = run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    let codename = fs::read_to_string("/etc/os-release")?
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap_or("unknown")
        .trim_matches('"')
        .to_string();
    // The hand steps mount on it; repoctl as root makes it too (on the host).
    let vrmd_existed = Path::new(PREFIX).exists();
    fs::create_dir_all(PREFIX)?;
    let commit = app(&o, &codename)?;
    let app_dir = o.work.join("app");
    let commit_time =
        run(Command::new("git")
            .arg("-C")
            .arg(&app_dir)
            .args(["log", "-1", "--format=%ct"]))?
        .trim()
        .parse()?;
    let control = o.work.join("control");
    fs::write(&control, control_fields(&commit, &python_package()?))?;
    let p = Paths {
        work: o.work.clone(),
        app: app_dir,
        control,
        commit_time,
    };
    let first_line = |mut c: Command| -> String {
        run(&mut c)
            .map(|s| s.lines().next().unwrap_or("").trim().to_string())
            .unwrap_or_else(|e| format!("({e:#})"))
    };
    let mut v = Command::new(&o.repoctl);
    v.arg("--version");
    let repoctl_version = first_line(v);
    let mut v = Command::new("/usr/bin/python3");
    v.arg("--version");
    let python_version = first_line(v);
    let mut v = Command::new("dpkg-deb");
    v.arg("--version");
    let dpkg_version = first_line(v).trim_end_matches('.').to_string();

    fs::create_dir_all(o.work.join("tmp"))?;
    let cacheable = probe(&o, &p)?;
    let pip_how = match (o.pip, cacheable) {
        (Pip::Cache, _) | (Pip::Auto, true) => {
            o.pip = Pip::Cache;
            format!(
                "pip: the package index through the pip cache {}/pip-cache, warmed by one untimed \
                 build of each contender",
                o.work.display()
            )
        }
        (Pip::Wheelhouse, _) | (Pip::Auto, false) => {
            o.pip = Pip::Wheelhouse;
            format!(
                "pip: a local wheelhouse ({}/wheelhouse, PIP_NO_INDEX=1 PIP_FIND_LINKS=...) filled \
                 by an untimed `pip download`{}",
                o.work.display(),
                if cacheable {
                    ""
                } else {
                    ", as the package index sends no caching headers and so pip caches nothing \
                     (a warm cache cannot be had)"
                }
            )
        }
    };
    eprintln!("{pip_how}");
    let mut loads = vec![load()];
    eprintln!("warm-up: one untimed build of each contender");
    let mut warm = Vec::new();
    for &c in &o.contenders {
        warm.push(once(&o, &p, c, "warm-up")?);
    }
    let reference = if o.contenders.contains(&Contender::Repoctl) {
        Some(fs::read(p.deb(Contender::Repoctl))?)
    } else {
        None
    };
    let load_before = load();
    loads.push(load_before.clone());
    let mut samples: Vec<Vec<Sample>> = o.contenders.iter().map(|_| Vec::new()).collect();
    let mut identical = true;
    for r in 1..=o.runs {
        for (i, &c) in o.contenders.iter().enumerate() {
            eprintln!("run {r}/{}: {}", o.runs, c.name());
            samples[i].push(once(&o, &p, c, &format!("run{r}"))?);
            if let (Contender::Repoctl, Some(reference)) = (c, &reference) {
                identical &= fs::read(p.deb(c))? == *reference;
            }
        }
    }
    let load_after = load();
    loads.push(load_after.clone());
    let censuses: Vec<Census> = o
        .contenders
        .iter()
        .map(|&c| census(&p.deb(c)))
        .collect::<Result<_>>()?;
    if !vrmd_existed {
        // An empty mount point that was not there before goes.
        let _ = fs::remove_dir(PREFIX);
    }

    let ext = if o.compression == "xz" { "xz" } else { "gz" };
    let mut out = format!(
        "repoctl build benchmark, {}\n  app: examples/{APP} in a git repository ({}/app, commit \
         {commit}), architecture amd64, installed at {PREFIX}/{APP}\n",
        date.trim(),
        o.work.display()
    );
    out += &format!(
        "  requirements.txt: {}; site-packages: {}\n",
        o.requirements.join(" "),
        censuses[0].dists.join(" ")
    );
    out += &format!(
        "  {repoctl_version}; /usr/bin/python3 ({python_version}); {dpkg_version}; {cpus} CPUs\n"
    );
    out += &format!("  {pip_how}\n");
    out += &format!(
        "  data.tar.{ext} on both sides ({}); one untimed build of each contender first; TMPDIR \
         {}/tmp for all\n",
        if ext == "xz" { "xz -6" } else { "gzip -9" },
        o.work.display()
    );
    out += &format!(
        "  median of {} runs per contender, alternating; wall and CPU seconds (user + system of \
         all child processes)\n",
        o.runs
    );
    if loads.iter().any(|l| load1(l) > 2.0) {
        out += &format!(
            "  NOTE: the machine was busy (load average {} at start, {load_before} before the \
             timed runs, {load_after} after): other work shares the {cpus} cores, so wall times \
             are inflated; CPU seconds are the steadier figure\n",
            loads[0]
        );
    }
    out += &format!(
        "\n== whole build, --compression {} (load average {load_before} before, {load_after} \
         after)\n",
        o.compression
    );
    out += &format!(
        "{:<11}{:>8}{:>8}{:>11}{:>7}{:>7}{:>6}{:>9}  each run: wall s / cpu s\n",
        "contender", "wall s", "cpu s", "bytes", "files", ".pyc", ".mo", "inst MB"
    );
    for (i, &c) in o.contenders.iter().enumerate() {
        let s = &samples[i];
        let runs: Vec<String> = s
            .iter()
            .map(|s| format!("{:.1}/{:.1}", s.wall, s.cpu))
            .collect();
        let n = &censuses[i];
        out += &format!(
            "{:<11}{:>8.2}{:>8.2}{:>11}{:>7}{:>7}{:>6}{:>9.1}  {} (warm-up {:.1}/{:.1})\n",
            c.name(),
            median(s.iter().map(|s| s.wall)),
            median(s.iter().map(|s| s.cpu)),
            s[s.len() - 1].size,
            n.files,
            n.pyc,
            n.mo,
            n.bytes as f64 / 1e6,
            runs.join(" "),
            warm[i].wall,
            warm[i].cpu,
        );
    }
    if let Some(us) = o.contenders.iter().position(|&c| c == Contender::Repoctl) {
        let m = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f));
        for (i, &c) in o.contenders.iter().enumerate().filter(|x| x.0 != us) {
            out += &format!(
                "{} / repoctl: wall {:.2}x, cpu {:.2}x, size {:.3}x (above 1x: repoctl faster or \
                 smaller)\n",
                c.name(),
                m(i, |s| s.wall) / m(us, |s| s.wall),
                m(i, |s| s.cpu) / m(us, |s| s.cpu),
                samples[i][0].size as f64 / samples[us][0].size as f64,
            );
        }
        out += &format!(
            "repoctl's .deb identical in all {} builds: {}\n",
            o.runs + 1,
            if identical { "yes" } else { "NO" }
        );
    }
    out += "\n== steps: median seconds (each run)\n";
    for (i, &c) in o.contenders.iter().enumerate() {
        let s = &samples[i];
        let mut names: Vec<String> = Vec::new();
        for (name, _) in s.iter().flat_map(|s| &s.steps) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        out += &format!("{}\n", c.name());
        let mut sum = 0.0;
        for name in &names {
            let each: Vec<f64> = s
                .iter()
                .map(|s| s.steps.iter().filter(|x| &x.0 == name).map(|x| x.1).sum())
                .collect();
            let med = median(each.iter().copied());
            sum += med;
            let each: Vec<String> = each.iter().map(|x| format!("{x:.2}")).collect();
            out += &format!("  {name:<32}{med:>7.2}  {}\n", each.join(" "));
        }
        let outside: Vec<f64> = s
            .iter()
            .map(|s| s.wall - s.steps.iter().map(|x| x.1).sum::<f64>())
            .collect();
        let each: Vec<String> = outside.iter().map(|x| format!("{x:.2}")).collect();
        out += &format!(
            "  {:<32}{:>7.2}  {}\n",
            "(outside the steps)",
            median(outside.iter().copied()),
            each.join(" ")
        );
        if names.is_empty() {
            out += "  (no step times found in its output)\n";
        } else {
            out += &format!("  {:<32}{sum:>7.2}\n", "(sum of the step medians)");
        }
    }
    out += &format!("\n{NOTES}\n");
    print!("{out}");
    if o.save {
        support::save("build", &date, &out)?;
    }
    Ok(())
}
