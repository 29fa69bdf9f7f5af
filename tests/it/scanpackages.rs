//! Our `Packages` stanzas say what `dpkg-scanpackages` says for the same
//! files, field by field: packages built here with every control member
//! compression, and real Debian packages fetched with `apt-get download`
//! (scripts/test puts them in target/test-debs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{index_text, project_dir, Deb, TestRepo};

type Stanza = BTreeMap<String, String>;

fn parse_stanzas(text: &str) -> BTreeMap<(String, String, String), Stanza> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut fields = Stanza::new();
        let mut last = String::new();
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                let value = fields.get_mut(&last).expect("continuation after a field");
                value.push('\n');
                value.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("field line");
                last = name.to_string();
                fields.insert(last.clone(), value.trim().to_string());
            }
        }
        let key = (
            fields["Package"].clone(),
            fields["Version"].clone(),
            fields["Architecture"].clone(),
        );
        out.insert(key, fields);
    }
    out
}

fn real_debian_debs() -> Vec<PathBuf> {
    let dir = std::env::var_os("REPOCTL_TEST_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir().join("target").join("test-debs"));
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/test, which fetches real Debian packages with apt-get download", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    assert!(
        debs.len() >= 2,
        "expected real Debian .debs in {}",
        dir.display()
    );
    debs
}

fn control_member(deb: &Path) -> String {
    let out = Command::new("ar").arg("t").arg(deb).output().expect("ar");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("control.tar"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn packages_stanzas_match_dpkg_scanpackages_field_by_field() {
    let repo = TestRepo::new();
    let work = repo.work();
    let mut debs = vec![];
    for (i, compression) in ["gzip", "xz", "zstd", "none"].iter().enumerate() {
        let version = format!("{}.0-{i}", i + 1);
        debs.push(
            Deb {
                name: "vrmd-scan",
                version: &version,
                compression,
                payload: compression,
                extra:
                    "Depends: libc6 (>= 2.15), python3 | python\nHomepage: https://example.com/x\n",
                ..Deb::default()
            }
            .build(&work),
        );
    }
    let real = real_debian_debs();
    let members: Vec<String> = debs
        .iter()
        .chain(&real)
        .map(|d| control_member(d))
        .collect();
    for wanted in [
        "control.tar.gz",
        "control.tar.xz",
        "control.tar.zst",
        "control.tar",
    ] {
        assert!(
            members.iter().any(|m| m == wanted),
            "no {wanted} in the test set: {members:?}"
        );
    }
    debs.extend(real);
    let refs: Vec<&Path> = debs.iter().map(|p| p.as_path()).collect();
    repo.add("trusty", "main", &refs);

    let ours = parse_stanzas(&index_text(&repo.public(), "trusty", "main", "amd64"));
    let scan = Command::new("dpkg-scanpackages")
        .args(["--multiversion", "pool", "/dev/null"])
        .current_dir(repo.public())
        .output()
        .expect("dpkg-scanpackages runs");
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let theirs: BTreeMap<_, _> = parse_stanzas(&String::from_utf8_lossy(&scan.stdout))
        .into_iter()
        .filter(|((_, _, arch), _)| arch == "all" || arch == "amd64")
        .collect();
    assert_eq!(
        ours.len(),
        debs.iter()
            .filter(|d| !d.to_string_lossy().contains("_i386"))
            .count()
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (key, stanza) in &theirs {
        assert_eq!(&ours[key], stanza, "{key:?} differs from dpkg-scanpackages");
    }
}
