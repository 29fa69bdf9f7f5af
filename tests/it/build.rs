//! `repoctl build` with the real python venv, pip, git, dpkg-deb, dpkg,
//! lintian and apt: the example app built, inspected, installed, run and
//! removed; reproducible; pushed to a server twice; bad inputs refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// examples/whois copied into its own git repository (fixed commit date).
fn example_app() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    copy_dir(&project_dir().join("examples").join("whois"), &app);
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&app)
                .args(["-c", "user.email=ci@example.com", "-c", "user.name=CI"])
                .args(args)
                .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
                .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z"),
        )
    };
    git(&["init", "-q", "-b", "master"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the example"]);
    (dir, app)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A prefix no other test uses (the venv is built and installed there).
fn unique_prefix() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("repoctl-prefix-")
        .tempdir_in("/tmp")
        .unwrap();
    dir.keep()
}

fn build(app: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_repoctl"));
    cmd.env_remove("REPOCTL_ROOT")
        .arg("build")
        .arg(app)
        .args(args);
    cmd
}

fn field(deb: &Path, name: &str) -> String {
    let out = run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name));
    stdout(&out).trim().to_string()
}

#[test]
fn the_example_builds_installs_runs_and_removes_cleanly() {
    let (dir, app) = example_app();
    let prefix = unique_prefix();
    let out = dir.path().join("out");
    let prefix_arg = prefix.to_str().unwrap();
    // As on an operator's machine, where imports may write .pyc files.
    let mut command = build(
        &app,
        &[
            "--build-only",
            "--force-version",
            "7",
            "--prefix",
            prefix_arg,
            "--out",
            out.to_str().unwrap(),
            "--compression",
            "gzip",
        ],
    );
    run_ok(command.env_remove("PYTHONDONTWRITEBYTECODE"));
    let deb = out.join("vrmd-whois_7_all.deb");
    assert_eq!(field(&deb, "Package"), "vrmd-whois");
    assert_eq!(field(&deb, "Version"), "7");
    assert!(
        field(&deb, "Depends").contains("python3"),
        "{}",
        field(&deb, "Depends")
    );
    assert!(
        field(&deb, "Description").starts_with("Branch: master Commit: "),
        "{}",
        field(&deb, "Description")
    );
    let contents = stdout(&run_ok(
        Command::new("dpkg-deb").arg("--contents").arg(&deb),
    ));
    for path in [
        "whois/bin/python",
        "whois/whois/whois/cli.py",
        "whois/bin/whois",
    ] {
        assert!(
            contents.contains(&format!(".{prefix_arg}/{path}")),
            "{path} missing:\n{contents}"
        );
    }
    assert!(
        contents.lines().all(|l| l.contains(" root/root ")),
        "not all root-owned"
    );
    assert!(
        std::fs::read_dir(&prefix).unwrap().next().is_none(),
        "the build left files at its prefix"
    );

    if Command::new("lintian").arg("--version").output().is_ok() {
        let lint = Command::new("lintian")
            .args(["--no-tag-display-limit", "--suppress-tags-from-file"])
            .arg(project_dir().join("examples/whois/lintian-overrides"))
            .arg(&deb)
            .output()
            .unwrap();
        let text = stdout(&lint);
        assert!(
            !text.lines().any(|l| l.starts_with("E: ")),
            "lintian errors:\n{text}"
        );
    }

    // Installed with a private dpkg database; maintainer scripts run.
    let admin = dir.path().join("dpkg");
    std::fs::create_dir_all(admin.join("info")).unwrap();
    std::fs::create_dir_all(admin.join("updates")).unwrap();
    std::fs::write(admin.join("status"), "").unwrap();
    let marker = dir.path().join("postinst-ran");
    let dpkg = |args: &[&str]| {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--admindir={}", admin.display()))
                .args([
                    "--force-script-chrootless",
                    "--force-depends",
                    "--force-not-root",
                ])
                .args(args)
                .env("WHOIS_POSTINST_MARKER", &marker),
        )
    };
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "configured \n");
    let venv = prefix.join("whois");
    assert_every_module_has_unchecked_hash_byte_code(&venv);
    for command in [
        vec![venv.join("bin/whois")],
        vec![venv.join("bin/python"), "-m".into(), "whois".into()],
    ] {
        let ran = run_ok(Command::new(&command[0]).args(&command[1..]));
        let text = stdout(&ran);
        assert!(
            text.contains("whois version 7 from") && text.contains("six 1.16.0; Hallo"),
            "{text}"
        );
    }
    dpkg(&["-r", "vrmd-whois"]);
    assert!(
        !venv.exists() || std::fs::read_dir(&venv).unwrap().next().is_none(),
        "files left after remove"
    );
    let _ = std::fs::remove_dir_all(&prefix);
}

/// Every `.py` below `venv` (the requirements', pip's, the app's copy and
/// its installed package) has its `.pyc` in `__pycache__`, hash-based and
/// unchecked (flags 1 in the header): reproducible, never rewritten; and
/// `__pycache__` holds nothing else (no timestamp or optimized leftovers).
fn assert_every_module_has_unchecked_hash_byte_code(venv: &std::path::Path) {
    let mut modules = 0;
    let mut cached_files = 0;
    for entry in walkdir::WalkDir::new(venv).into_iter().map(Result::unwrap) {
        let path = entry.path();
        if path.parent().unwrap().ends_with("__pycache__") {
            cached_files += 1;
        }
        if path.extension().is_none_or(|e| e != "py") || !entry.file_type().is_file() {
            continue;
        }
        modules += 1;
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let cache = path.parent().unwrap().join("__pycache__");
        let pyc = std::fs::read_dir(&cache)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name.starts_with(&format!("{stem}.")) && name.ends_with(".pyc")
            })
            .unwrap_or_else(|| panic!("no byte code for {}", path.display()));
        let header = std::fs::read(&pyc).unwrap();
        let flags = u32::from_le_bytes(header[4..8].try_into().unwrap());
        assert_eq!(flags, 1, "{} is not unchecked-hash", pyc.display());
    }
    assert!(
        modules > 100,
        "only {modules} modules: pip and setuptools are missing"
    );
    assert_eq!(cached_files, modules, "__pycache__ holds strays");
}

/// The builder's byte code pass (src/build/bytecode.py) with the real
/// python3: a module gets an unchecked-hash `.pyc`, a current one is kept
/// (so a second pass compiles nothing), a changed module is compiled again,
/// strays in `__pycache__` go, and a module that does not compile is named
/// without stopping the others.
#[test]
fn byte_code_is_compiled_once_and_strays_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("lib/pkg");
    std::fs::create_dir_all(package.join("__pycache__")).unwrap();
    std::fs::write(package.join("good.py"), "ANSWER = 42\n").unwrap();
    std::fs::write(package.join("bad.py"), "def (:\n").unwrap();
    let stray = package.join("__pycache__/gone.cpython-311.pyc");
    std::fs::write(&stray, "left by an uninstalled module").unwrap();
    let optimized = package.join("__pycache__/good.cpython-311.opt-1.pyc");
    std::fs::write(&optimized, "an optimized level").unwrap();
    let pass = || {
        Command::new("python3")
            .args(["-c", include_str!("../../src/build/bytecode.py")])
            .arg(dir.path())
            .env("PYTHONHASHSEED", "0")
            .output()
            .unwrap()
    };
    let good_pyc = || {
        std::fs::read_dir(package.join("__pycache__"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("good.")
            })
            .expect("good.py has no .pyc")
    };

    let first = pass();
    assert!(!first.status.success(), "bad.py must fail the pass");
    assert!(String::from_utf8_lossy(&first.stderr).contains("bad.py"));
    assert!(!stray.exists() && !optimized.exists(), "strays left");
    let pyc = good_pyc();
    let header = std::fs::read(&pyc).unwrap();
    assert_eq!(u32::from_le_bytes(header[4..8].try_into().unwrap()), 1);

    // Current: kept as it is (an unchecked .pyc is never compared with the
    // source by import, so its bytes prove nothing; its inode does).
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&pyc).unwrap().ino();
    pass();
    assert_eq!(std::fs::metadata(&pyc).unwrap().ino(), inode, "recompiled");

    // Changed source: compiled again.
    std::fs::write(package.join("good.py"), "ANSWER = 43\n").unwrap();
    pass();
    assert_ne!(std::fs::read(good_pyc()).unwrap(), header);
}

#[test]
fn the_same_build_twice_is_byte_identical() {
    let (dir, app) = example_app();
    let prefix = unique_prefix();
    let mut debs = Vec::new();
    for round in 0..2 {
        let out = dir.path().join(format!("out{round}"));
        run_ok(
            build(
                &app,
                &[
                    "--build-only",
                    "--force-version",
                    "3",
                    "--prefix",
                    prefix.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--compression",
                    "gzip",
                ],
            )
            .env("SOURCE_DATE_EPOCH", "1767225600"),
        );
        debs.push(std::fs::read(out.join("vrmd-whois_3_all.deb")).unwrap());
    }
    assert!(debs[0] == debs[1], "two builds of one commit differ");
    let _ = std::fs::remove_dir_all(&prefix);
}

#[test]
fn builds_pushed_to_a_server_get_versions_1_and_2_and_apt_fetches_1() {
    let repo = TestRepo::new();
    let token = repo.token("ci", &["--upload", "trusty/dev"]);
    let server = Server::start(&repo.root());
    let (dir, app) = example_app();
    let prefix = unique_prefix();
    for expected in ["1", "2"] {
        let out = run_ok(&mut build(
            &app,
            &[
                "--server",
                &server.url,
                "--token",
                &token,
                "--prefix",
                prefix.to_str().unwrap(),
                "--compression",
                "gzip",
            ],
        ));
        assert_eq!(
            stdout(&out).split('\t').next().unwrap(),
            format!("vrmd-whois={expected}")
        );
    }
    let (ok, log) = apt_check(
        &server.url,
        &repo.public().join("key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &[
            "--expect",
            "vrmd-whois=1",
            "--expect-candidate",
            "vrmd-whois=2",
            "--download",
            "vrmd-whois=1",
        ],
    );
    assert!(ok, "{log}");
    // A local repository (--root) works the same way.
    run_ok(
        build(
            &app,
            &[
                "--prefix",
                prefix.to_str().unwrap(),
                "--compression",
                "gzip",
            ],
        )
        .arg("--root")
        .arg(repo.root()),
    );
    assert!(index_text(&repo.public(), "trusty", "dev", "amd64").contains("\nVersion: 3\n"));
    drop(dir);
    let _ = std::fs::remove_dir_all(&prefix);
}

#[test]
fn bad_inputs_are_refused_clearly_and_leave_nothing() {
    let (dir, app) = example_app();
    let prefix = unique_prefix();
    let out = dir.path().join("out");
    let edit = |file: &str, from: &str, to: &str| {
        let path = app.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in {file}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    };
    let commit = || {
        run_ok(Command::new("git").arg("-C").arg(&app).args([
            "-c",
            "user.email=c@e",
            "-c",
            "user.name=c",
            "commit",
            "-qam",
            "change",
        ]));
    };
    let attempt = |expect: &str| {
        let err = refused(&mut build(
            &app,
            &[
                "--build-only",
                "--force-version",
                "1",
                "--prefix",
                prefix.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ));
        assert!(
            err.contains(expect) && err.contains("hint:"),
            "expected {expect:?}:\n{err}"
        );
        assert!(
            !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
            "output left behind"
        );
        assert!(
            std::fs::read_dir(&prefix).unwrap().next().is_none(),
            "files left at the prefix"
        );
    };

    edit(
        "deploy.yml",
        "component: dev",
        "component: dev\ncolour: blue",
    );
    commit();
    attempt("deploy.yml:9:1: unknown field `colour`");
    edit("deploy.yml", "\ncolour: blue", "");
    edit("deploy.yml", "run_deps: []", "run_deps: libpq5");
    commit();
    attempt("deploy.yml:5:11: run_deps: invalid type");
    edit("deploy.yml", "run_deps: libpq5", "run_deps: []");
    edit(
        "deploy.yml",
        "python_version: \"3\"",
        "python_version: \"2.4\"",
    );
    commit();
    attempt("/usr/bin/python2.4 does not exist");
    edit(
        "deploy.yml",
        "python_version: \"2.4\"",
        "python_version: \"3\"",
    );
    edit(
        "deploy.yml",
        "build_deps: [gettext]",
        "build_deps: [gettext, repoctl-no-such-package]",
    );
    commit();
    attempt("build dependencies are missing: repoctl-no-such-package");
    edit(
        "deploy.yml",
        "build_deps: [gettext, repoctl-no-such-package]",
        "build_deps: [gettext]",
    );
    edit(
        "requirements.txt",
        "six==1.16.0",
        "six==1.16.0\nrepoctl-no-such-requirement==1.0",
    );
    commit();
    attempt("install the requirements");
    edit("requirements.txt", "\nrepoctl-no-such-requirement==1.0", "");
    commit();
    // A dirty tree, then a missing requirements file and deploy.yml.
    edit("whois/cli.py", "def main():", "def main():  # changed");
    attempt("has uncommitted changes");
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(&app)
            .args(["checkout", "--", "."]),
    );
    std::fs::remove_file(app.join("requirements.txt")).unwrap();
    attempt("requirements.txt is missing");
    std::fs::remove_file(app.join("deploy.yml")).unwrap();
    attempt("deploy.yml is missing");
    let _ = std::fs::remove_dir_all(&prefix);
}
