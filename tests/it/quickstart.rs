//! The README's first command: a repository with a generated key, served on
//! 127.0.0.1, and the exact lines a client needs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::apt_check;

#[test]
fn quickstart_creates_serves_and_prints_a_working_sources_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_repoctl"))
        .args(["quickstart", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("REPOCTL_ROOT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sources = loop {
        let line = lines
            .next()
            .expect("quickstart prints a sources line")
            .unwrap();
        printed.push(line.clone());
        if line.contains("deb [signed-by=") {
            break line;
        }
    };
    let url = sources
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .expect("a loopback URL in the sources line")
        .to_string();
    assert!(
        sources.contains("] http://127.0.0.1:") && sources.contains(" trusty main dev"),
        "{sources}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains(&format!("curl -fsSL {url}key.asc"))),
        "{printed:?}"
    );
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("repoctl --root repoctl-quickstart add --dist trusty --component dev") {
            break;
        }
    }
    let root = dir.path().join("repoctl-quickstart");
    let key = root.join("keys/signing-key.asc");
    assert!(key.exists(), "a key was generated");
    let (ok, out) = apt_check(
        &url,
        &root.join("public/key.asc"),
        "trusty",
        "main dev",
        "amd64",
        &[],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{out}");

    // Run again: the repository is reused, not replaced.
    let fingerprint = std::fs::read(&key).unwrap();
    let mut again = Command::new(env!("CARGO_BIN_EXE_repoctl"))
        .args(["quickstart", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = BufReader::new(again.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let _ = again.kill();
    let _ = again.wait();
    assert!(
        first.starts_with("Repository: repoctl-quickstart"),
        "{first}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), fingerprint);
}
