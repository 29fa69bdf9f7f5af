//! The served signatures verify with every verifier our clients run:
//! `gpgv` (Debian/Ubuntu today), `gpgv1` (GnuPG 1.4: precise and trusty) and
//! `sqv` (apt 3 on Debian 13), for both InRelease and Release.gpg; a
//! tampered Release is refused by all of them.

use std::path::Path;
use std::process::Command;

use crate::support::{dearmored_keyring, gpgv, run_ok, stderr, stdout, Deb, TestRepo};

/// gpgv1 with a status pipe; VALIDSIG is the only proof (see `gpgv`).
fn gpgv1(key: &Path, signed: &Path, data: Option<&Path>) -> Result<(), String> {
    let keyring = dearmored_keyring(key);
    // scripts/test provides it (extracted: the package conflicts with aptly).
    let gpgv1 = std::env::var("REPOCTL_GPGV1").unwrap_or_else(|_| "gpgv1".into());
    let mut cmd = Command::new(gpgv1);
    cmd.args(["--status-fd", "1", "--keyring"])
        .arg(&keyring)
        .arg(signed);
    if let Some(data) = data {
        cmd.arg(data);
    }
    let out = cmd.output().map_err(|e| format!("gpgv1 missing? {e}"))?;
    if out.status.success() && stdout(&out).contains("[GNUPG:] VALIDSIG") {
        Ok(())
    } else {
        Err(format!("gpgv1 refused:\n{}{}", stdout(&out), stderr(&out)))
    }
}

/// sqv checks detached signatures only.
fn sqv(key: &Path, signature: &Path, data: &Path) -> Result<(), String> {
    // sqv 1.1 (Debian 12): `sqv --keyring KEY SIG-FILE FILE`.
    let out = Command::new("sqv")
        .arg("--keyring")
        .arg(key)
        .arg(signature)
        .arg(data)
        .output()
        .map_err(|e| format!("sqv missing? {e}"))?;
    if out.status.success() && !stdout(&out).trim().is_empty() {
        Ok(())
    } else {
        Err(format!("sqv refused:\n{}{}", stdout(&out), stderr(&out)))
    }
}

/// Splits an InRelease the way apt does: the dash-unescaped text between
/// the armor headers and the signature, and the signature block.
fn split_inrelease(inrelease: &Path, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let text = std::fs::read_to_string(inrelease).unwrap();
    let body_start = text.find("\n\n").expect("armor headers end") + 2;
    let sig_start = text
        .find("\n-----BEGIN PGP SIGNATURE-----")
        .expect("signature");
    let body: String = text[body_start..sig_start]
        .split_inclusive('\n')
        .map(|line| line.strip_prefix("- ").unwrap_or(line))
        .collect();
    let signature = &text[sig_start + 1..];
    let (data, sig) = (dir.join("inrelease.txt"), dir.join("inrelease.sig"));
    std::fs::write(&data, body).unwrap();
    std::fs::write(&sig, signature).unwrap();
    (data, sig)
}

fn verify_all(
    dist_dir: &Path,
    key: &Path,
    work: &Path,
    with_gpgv1: bool,
) -> Vec<Result<(), String>> {
    let (release, detached, inline) = (
        dist_dir.join("Release"),
        dist_dir.join("Release.gpg"),
        dist_dir.join("InRelease"),
    );
    let (inline_text, inline_sig) = split_inrelease(&inline, work);
    let mut results = vec![
        gpgv(key, &inline, None),
        gpgv(key, &detached, Some(&release)),
        sqv(key, &detached, &release),
        sqv(key, &inline_sig, &inline_text),
    ];
    if with_gpgv1 {
        results.push(gpgv1(key, &inline, None));
        results.push(gpgv1(key, &detached, Some(&release)));
    }
    results
}

#[test]
fn rsa_signatures_verify_with_gpgv_gpgv1_and_sqv_and_tampering_is_refused() {
    let repo = TestRepo::new();
    let deb = Deb::default().build(&repo.work());
    repo.add("trusty", "dev", &[&deb]);
    let key = repo.public().join("key.asc");
    for dist in ["precise", "trusty"] {
        let dist_dir = repo.public().join("dists").join(dist);
        for result in verify_all(&dist_dir, &key, &repo.work(), true) {
            result.unwrap_or_else(|e| panic!("{dist}: {e}"));
        }
        let inline = std::fs::read_to_string(dist_dir.join("InRelease")).unwrap();
        assert!(
            inline.contains("\nHash: SHA512\n") || inline.contains("\nHash: SHA256\n"),
            "{inline}"
        );
    }

    // A copy of the served files with one changed byte in the text.
    let tampered = repo.work().join("tampered");
    std::fs::create_dir_all(&tampered).unwrap();
    let dist_dir = repo.public().join("dists/trusty");
    for name in ["Release", "Release.gpg", "InRelease"] {
        let text = std::fs::read_to_string(dist_dir.join(name)).unwrap();
        std::fs::write(
            tampered.join(name),
            text.replace("Suite: trusty", "Suite: trustx"),
        )
        .unwrap();
    }
    for (i, result) in verify_all(&tampered, &key, &repo.work(), true)
        .into_iter()
        .enumerate()
    {
        assert!(result.is_err(), "verifier {i} accepted a tampered Release");
    }
}

#[test]
fn ed25519_signatures_verify_with_gpgv_and_sqv_but_not_gpgv1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    run_ok(crate::support::repoctl(&root).args(["init", "--key-type", "ed25519"]));
    let key = root.join("public/key.asc");
    let dist_dir = root.join("public/dists/trusty");
    for result in verify_all(&dist_dir, &key, dir.path(), false) {
        result.unwrap();
    }
    // What the init warning says: precise/trusty's GnuPG 1.4 cannot verify it.
    assert!(gpgv1(&key, &dist_dir.join("InRelease"), None).is_err());
}
