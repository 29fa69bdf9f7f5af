//! Every refusal names the file or field, says why, and leaves the
//! repository byte-identical: `public/`, the pool and the catalog.

use std::path::{Path, PathBuf};

use crate::support::{ar_archive, snapshot, stderr, tar_gz, Deb, TestRepo};

fn deb_with_control(control: &str) -> Vec<u8> {
    crate::support::deb_with_control(control.as_bytes())
}

const GOOD_CONTROL: &str = "Package: vrmd-whois\nVersion: 7\nArchitecture: all\nMaintainer: Ops <ops@example.com>\nDescription: d\n";

struct Case {
    kind: &'static str,
    file: PathBuf,
    dist: &'static str,
    component: &'static str,
    expect: &'static str,
}

fn write(work: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = work.join(name);
    std::fs::write(&path, bytes).expect("write case");
    path
}

#[test]
fn each_kind_of_bad_input_gets_its_own_message_and_changes_nothing() {
    let repo = TestRepo::new();
    let work = repo.work();
    // What is already there: version 5, so conflicts have something to hit.
    let existing = Deb {
        version: "5",
        payload: "original",
        ..Deb::default()
    }
    .build(&work);
    repo.add("trusty", "dev", &[&existing]);

    let valid = std::fs::read(&existing).expect("read valid deb");
    let mut cases = vec![
        Case {
            kind: "empty file",
            file: write(&work, "empty.deb", b""),
            dist: "trusty",
            component: "dev",
            expect: "is empty",
        },
        Case {
            kind: "truncated",
            file: write(&work, "truncated.deb", &valid[..valid.len() - 100]),
            dist: "trusty",
            component: "dev",
            expect: "is truncated",
        },
        Case {
            kind: "not an ar archive",
            file: write(&work, "text.deb", b"this is not a package\n"),
            dist: "trusty",
            component: "dev",
            expect: "not an ar archive",
        },
        Case {
            kind: "no control member",
            file: write(
                &work,
                "nocontrol.deb",
                &ar_archive(&[
                    ("debian-binary", b"2.0\n".to_vec()),
                    ("data.tar.gz", tar_gz(&[("./x", b"x")])),
                ]),
            ),
            dist: "trusty",
            component: "dev",
            expect: "no `control.tar` member",
        },
        Case {
            kind: "control without Version",
            file: write(
                &work,
                "noversion.deb",
                &deb_with_control("Package: vrmd-whois\nArchitecture: all\n"),
            ),
            dist: "trusty",
            component: "dev",
            expect: "no `Version` field",
        },
        Case {
            kind: "invalid version",
            file: write(
                &work,
                "badversion.deb",
                &deb_with_control(&GOOD_CONTROL.replace("Version: 7", "Version: a1")),
            ),
            dist: "trusty",
            component: "dev",
            expect: "version number does not start with digit",
        },
        Case {
            kind: "invalid package name",
            file: write(
                &work,
                "badname.deb",
                &deb_with_control(&GOOD_CONTROL.replace("vrmd-whois", "Vrmd_Whois")),
            ),
            dist: "trusty",
            component: "dev",
            expect: "invalid package name \"Vrmd_Whois\"",
        },
        Case {
            kind: "path components in the pool file name",
            file: write(
                &work,
                "path.deb",
                &deb_with_control(
                    &GOOD_CONTROL.replace("Architecture: all", "Architecture: ../../etc"),
                ),
            ),
            dist: "trusty",
            component: "dev",
            expect: "contains path components",
        },
        Case {
            kind: "unknown dist",
            file: existing.clone(),
            dist: "sid",
            component: "dev",
            expect: "unknown target sid/dev",
        },
        Case {
            kind: "unknown component",
            file: existing.clone(),
            dist: "trusty",
            component: "contrib",
            expect: "unknown target trusty/contrib",
        },
        Case {
            kind: "architecture not configured",
            file: write(
                &work,
                "arm.deb",
                &deb_with_control(
                    &GOOD_CONTROL.replace("Architecture: all", "Architecture: arm64"),
                ),
            ),
            dist: "trusty",
            component: "dev",
            expect: "publishes only `all` and `amd64`, `i386`",
        },
        Case {
            kind: "same version, different bytes",
            file: Deb {
                version: "5",
                payload: "rebuilt",
                ..Deb::default()
            }
            .build(&work),
            dist: "trusty",
            component: "main",
            expect: "already in the pool with different contents",
        },
        Case {
            kind: "epoch alias of a stored version",
            file: Deb {
                version: "1:5",
                payload: "epoch",
                ..Deb::default()
            }
            .build(&work),
            dist: "trusty",
            component: "dev",
            expect: "maps to the same pool file",
        },
        Case {
            kind: "control member past the size limit",
            file: write(
                &work,
                "bomb.deb",
                &ar_archive(&[
                    ("debian-binary", b"2.0\n".to_vec()),
                    (
                        "control.tar.gz",
                        tar_gz(&[
                            ("./control", GOOD_CONTROL.as_bytes()),
                            ("./padding", &vec![0u8; 20 << 20]),
                        ]),
                    ),
                    ("data.tar.gz", tar_gz(&[("./x", b"x")])),
                ]),
            ),
            dist: "trusty",
            component: "dev",
            expect: "decompresses past the",
        },
        Case {
            kind: "control file with two paragraphs",
            file: write(
                &work,
                "twopara.deb",
                &deb_with_control(&format!("{GOOD_CONTROL}\nPackage: other\nVersion: 1\n")),
            ),
            dist: "trusty",
            component: "dev",
            expect: "a second paragraph starts here",
        },
        Case {
            kind: "control file that sets a computed field",
            file: write(
                &work,
                "inject.deb",
                &deb_with_control(&format!("{GOOD_CONTROL}Filename: pool/evil.deb\n")),
            ),
            dist: "trusty",
            component: "dev",
            expect: "sets `Filename`, which only the repository may compute",
        },
    ];
    // A batch with one bad file among good ones is refused whole.
    let good_new = Deb {
        version: "6",
        payload: "six",
        ..Deb::default()
    }
    .build(&work);
    cases.push(Case {
        kind: "a bad file in a batch",
        file: good_new,
        dist: "trusty",
        component: "dev",
        expect: "is empty",
    });

    let before = snapshot(&repo.root());
    for case in &cases {
        let mut cmd = repo.cmd();
        cmd.args(["add", "--dist", case.dist, "--component", case.component])
            .arg(&case.file);
        if case.kind == "a bad file in a batch" {
            cmd.arg(&cases[0].file);
        }
        let out = cmd.output().expect("repoctl runs");
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: exit code\n{err}",
            case.kind
        );
        assert!(
            err.contains(case.expect),
            "{}: expected {:?} in:\n{err}",
            case.kind,
            case.expect
        );
        assert!(err.contains("hint: "), "{}: no hint in:\n{err}", case.kind);
        assert!(!err.contains("panicked"), "{}: {err}", case.kind);
        assert_eq!(
            snapshot(&repo.root()),
            before,
            "{}: the repository changed",
            case.kind
        );
    }
    assert!(cases.len() >= 16);
}

#[test]
fn keep_going_adds_the_good_files_and_reports_the_bad_ones() {
    let repo = TestRepo::new();
    let work = repo.work();
    let good = Deb {
        version: "9",
        ..Deb::default()
    }
    .build(&work);
    let bad = write(&work, "bad.deb", b"junk");
    let out = repo
        .cmd()
        .args([
            "add",
            "--dist",
            "trusty",
            "--component",
            "dev",
            "--keep-going",
            "--json",
        ])
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["files"][0]["version"], "9");
    assert_eq!(report["files"][0]["outcome"], "added");
    assert!(report["refused"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not an ar archive"));
    let listed = crate::support::run_ok(repo.cmd().args(["list", "vrmd-whois"]));
    assert!(crate::support::stdout(&listed).contains("vrmd-whois\t9\tall\ttrusty/dev"));
}
