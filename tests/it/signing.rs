//! `repoctl::signing` checked by the verifiers apt clients run: gpgv 2.2
//! (apt 1.1 to 2.x, Debian 12), gpgv 1.4 (`gpgv1`: what Ubuntu 12.04 and 14.04
//! run) and sqv (apt 3, Debian 13).
//!
//! gpgv's exit code is not trusted (it exits 0 for a signature by an expired
//! key): a signature counts as good only when `--status-fd` reports GOODSIG
//! and VALIDSIG for it and nothing reports a bad, expired or revoked one.
//! sqv checks detached signatures only, so an InRelease is first split the
//! way apt splits it (apt's `SplitClearSignedFile`), and the content apt
//! would then parse is compared with what was signed.
//!
//! A missing verifier fails the test (install `gpgv`, `gpgv1` and `sqv`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use repoctl::signing::{KeyType, Signer, SigningError, SigningKey};
use sequoia_openpgp as openpgp;

/// RSA-4096, no passphrase, no expiry, created 2001-09-09T01:46:40Z (so that
/// tests can sign with any later injected clock). TEST ONLY.
const FIXTURE_KEY: &[u8] = include_bytes!("../fixtures/test-signing-key.asc");
const FIXTURE_PUB: &[u8] = include_bytes!("../fixtures/test-signing-key.pub.asc");
const FIXTURE_UID: &str = "repoctl test key (TEST ONLY, never trust) <test@repoctl.invalid>";
const FIXTURE_CREATED: u64 = 1_000_000_000;

/// The injected signature time: 2023-11-14T22:13:20Z.
const DATE: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn rsa_key() -> SigningKey {
    SigningKey::from_armored(
        FIXTURE_KEY,
        Path::new("tests/fixtures/test-signing-key.asc"),
    )
    .expect("fixture key loads")
}

fn ed25519_key() -> SigningKey {
    SigningKey::generate_at(
        KeyType::Ed25519,
        "repoctl ed25519 test <ed@repoctl.invalid>",
        at(1_600_000_000),
    )
    .expect("generate ed25519")
}

/// Texts that have broken cleartext signers before (DESIGN.md §9).
const TRICKY: &[(&str, &str)] = &[
    (
        "release",
        "Origin: vrmd\nLabel: vrmd\nSuite: trusty\nCodename: trusty\nDate: Tue, 14 Nov 2023 22:13:20 UTC\nArchitectures: amd64 i386\nComponents: main dev\nAcquire-By-Hash: yes\nSHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages\n",
    ),
    ("trailing spaces", "Origin: vrmd   \nLabel: x \n   \nend\n"),
    ("trailing tabs", "Origin: vrmd\t\nLabel:\t \t\n\t\nend\n"),
    (
        "dashes",
        "-leading dash\n- dash space\n--\n-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n-\n",
    ),
    ("from", "From here\nFrom \n>From there\nfrom lower\n"),
    ("empty lines", "\n\nafter two empty lines\n\n\nbefore\n\n"),
    ("no final newline", "Origin: vrmd\nLabel: last line has no newline"),
    ("mixed, no final newline", "Origin: x \n-x\nFrom y\n\n\t\nlast\t"),
];

/// What the cleartext framework signs and apt extracts: the text with
/// trailing blanks removed from each line (a final newline, or its absence,
/// is kept).
fn canonical(text: &str) -> String {
    text.split('\n')
        .map(|line| line.trim_end_matches([' ', '\t']))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scratch directory with the files a verifier reads.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).expect("write scratch file");
        path
    }

    fn home(&self) -> PathBuf {
        let home = self.dir.path().join("gnupg-home");
        fs::create_dir_all(&home).expect("gnupg home");
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod home");
        home
    }
}

/// What a verifier said.
#[derive(Debug)]
struct Verdict {
    accepted: bool,
    /// Fingerprints of the keys with a good signature, sorted.
    signers: Vec<String>,
    /// Signature creation times reported (gpgv only).
    times: Vec<u64>,
    log: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Gpgv {
    /// GnuPG 2.2 `gpgv`.
    Two,
    /// GnuPG 1.4 `gpgv1`.
    One,
}

impl Gpgv {
    /// gpgv1 may come from `REPOCTL_GPGV1`: Debian's `aptly` package
    /// conflicts with `gpgv1`, so a machine with aptly installed unpacks
    /// gpgv1 elsewhere (`apt-get download gpgv1; dpkg-deb -x gpgv1_*.deb DIR`).
    fn program(self) -> String {
        match self {
            Gpgv::Two => "gpgv".to_owned(),
            Gpgv::One => std::env::var("REPOCTL_GPGV1").unwrap_or_else(|_| "gpgv1".to_owned()),
        }
    }
}

fn run(command: &mut Command, package: &str) -> std::process::Output {
    command.output().unwrap_or_else(|e| {
        let hint = if package == "gpgv1" {
            " (it conflicts with aptly: alternatively `apt-get download gpgv1 && dpkg-deb -x gpgv1_*.deb DIR` and set REPOCTL_GPGV1=DIR/usr/bin/gpgv1)"
        } else {
            ""
        };
        panic!(
            "cannot run {:?}: {e}; install the Debian package `{package}`{hint}",
            command.get_program()
        )
    })
}

/// gpgv with a binary keyring (what apt hands it), judged by its status
/// lines: every signature GOODSIG and VALIDSIG, none bad, expired, revoked or
/// unverifiable.
fn gpgv(
    which: Gpgv,
    scratch: &Scratch,
    keyring: &Path,
    sig: Option<&Path>,
    data: &Path,
) -> Verdict {
    let mut cmd = Command::new(which.program());
    cmd.arg("--homedir")
        .arg(scratch.home())
        .args(["--status-fd", "1", "--keyring"])
        .arg(keyring);
    if let Some(sig) = sig {
        cmd.arg(sig);
    }
    cmd.arg(data);
    let package = match which {
        Gpgv::Two => "gpgv",
        Gpgv::One => "gpgv1",
    };
    let out = run(&mut cmd, package);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut signers = Vec::new();
    let mut times = Vec::new();
    let mut good = 0;
    let mut bad = false;
    for line in status.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.get(1).copied() {
            Some("VALIDSIG") => {
                signers.push(fields[2].to_owned());
                times.push(fields[4].parse().expect("VALIDSIG timestamp"));
            }
            Some("GOODSIG") => good += 1,
            Some("BADSIG" | "ERRSIG" | "EXPSIG" | "EXPKEYSIG" | "REVKEYSIG" | "NO_PUBKEY") => {
                bad = true
            }
            _ => {}
        }
    }
    signers.sort();
    let accepted = out.status.success() && !bad && good > 0 && good == signers.len();
    Verdict {
        accepted,
        signers,
        times,
        log: format!(
            "{} exit {:?}\nstatus:\n{status}stderr:\n{}",
            which.program(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// sqv 1.1: `sqv --keyring KEYRING [--signatures N] SIG FILE`; prints the
/// fingerprint of each good signature.
fn sqv(keyring: &Path, sig: &Path, data: &Path, signatures: usize) -> Verdict {
    let mut cmd = Command::new("sqv");
    cmd.arg("--keyring")
        .arg(keyring)
        .args(["--signatures", &signatures.to_string()])
        .arg(sig)
        .arg(data);
    let out = run(&mut cmd, "sqv");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut signers: Vec<String> = stdout.lines().map(|l| l.trim().to_owned()).collect();
    signers.sort();
    Verdict {
        accepted: out.status.success(),
        signers,
        times: Vec::new(),
        log: format!(
            "sqv exit {:?}\nstdout:\n{stdout}stderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Splits an InRelease as apt's `SplitClearSignedFile` does: the content is
/// the lines between the armor header's empty line and the signature,
/// dash-unescaped and joined by `\n` (the last line break belongs to the
/// framework); the signature is the armored block. Like apt, refuses text
/// around the message and unescaped lines starting with a dash.
fn split_like_apt(inrelease: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(inrelease).expect("InRelease is UTF-8");
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    assert_eq!(
        lines.next(),
        Some("-----BEGIN PGP SIGNED MESSAGE-----"),
        "text before the message"
    );
    for header in lines.by_ref() {
        if header.is_empty() {
            break;
        }
        assert!(header.starts_with("Hash: "), "armor header {header:?}");
    }
    let mut content = Vec::new();
    let mut first = true;
    let mut signature = Vec::new();
    for line in lines.by_ref() {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            signature.extend_from_slice(line.as_bytes());
            signature.push(b'\n');
            break;
        }
        if !first {
            content.push(b'\n');
        }
        first = false;
        if let Some(rest) = line.strip_prefix("- ") {
            content.extend_from_slice(rest.as_bytes());
        } else {
            assert!(!line.starts_with('-'), "unescaped dash line {line:?}");
            content.extend_from_slice(line.as_bytes());
        }
    }
    let mut done = false;
    for line in lines {
        if done {
            assert!(line.trim().is_empty(), "text after the signature: {line:?}");
            continue;
        }
        signature.extend_from_slice(line.as_bytes());
        signature.push(b'\n');
        done = line == "-----END PGP SIGNATURE-----";
    }
    assert!(done, "unterminated signature");
    (content, signature)
}

/// Signs `text` both ways with `signer` at `DATE` and checks each form with
/// every verifier listed, the way each apt generation calls it.
fn assert_verifies(signer: &Signer, text: &[u8], verifiers: &[Verifier], label: &str) {
    let scratch = Scratch::new();
    let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
    let keyring_asc = scratch.write("key.asc", &signer.public_keys_armored());
    let mut expected: Vec<String> = signer.keys().iter().map(|k| k.fingerprint()).collect();
    expected.sort();
    let n = expected.len();

    let inrelease = signer.clearsign_at(text, at(DATE)).expect("clearsign");
    let release_gpg = signer.detached_at(text, at(DATE)).expect("detached");
    let inrelease_path = scratch.write("InRelease", &inrelease);
    let release = scratch.write("Release", text);
    let release_gpg_path = scratch.write("Release.gpg", &release_gpg);
    let (content, sig) = split_like_apt(&inrelease);
    let expected_content = canonical(std::str::from_utf8(text).expect("utf-8"));
    assert_eq!(
        String::from_utf8_lossy(&content),
        expected_content,
        "{label}: apt would extract other text from\n{}",
        String::from_utf8_lossy(&inrelease)
    );
    let content_path = scratch.write("InRelease.content", &content);
    let sig_path = scratch.write("InRelease.sig", &sig);

    let check = |what: &str, verdict: Verdict| {
        assert!(
            verdict.accepted,
            "{label}: {what} refused:\n{}",
            verdict.log
        );
        assert_eq!(
            verdict.signers, expected,
            "{label}: {what}:\n{}",
            verdict.log
        );
        for t in &verdict.times {
            assert_eq!(*t, DATE, "{label}: {what}: signature time\n{}", verdict.log);
        }
    };
    for verifier in verifiers {
        match verifier {
            Verifier::Gpgv(which) => {
                let w = *which;
                check(
                    &format!("{w:?} InRelease"),
                    gpgv(w, &scratch, &keyring, None, &inrelease_path),
                );
                check(
                    &format!("{w:?} InRelease split"),
                    gpgv(w, &scratch, &keyring, Some(&sig_path), &content_path),
                );
                check(
                    &format!("{w:?} Release.gpg"),
                    gpgv(w, &scratch, &keyring, Some(&release_gpg_path), &release),
                );
            }
            Verifier::Sqv => {
                for ring in [&keyring, &keyring_asc] {
                    check(
                        &format!("sqv InRelease split, keyring {}", ring.display()),
                        sqv(ring, &sig_path, &content_path, n),
                    );
                    check(
                        &format!("sqv Release.gpg, keyring {}", ring.display()),
                        sqv(ring, &release_gpg_path, &release, n),
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Verifier {
    Gpgv(Gpgv),
    Sqv,
}

const ALL: &[Verifier] = &[
    Verifier::Gpgv(Gpgv::Two),
    Verifier::Gpgv(Gpgv::One),
    Verifier::Sqv,
];
const MODERN: &[Verifier] = &[Verifier::Gpgv(Gpgv::Two), Verifier::Sqv];

#[test]
fn rsa4096_signatures_verify_with_gpgv_gpgv1_and_sqv_for_tricky_texts() {
    let signer = Signer::new(vec![rsa_key()]).expect("signer");
    for (label, text) in TRICKY {
        assert_verifies(&signer, text.as_bytes(), ALL, label);
    }
}

#[test]
fn ed25519_signatures_verify_with_gpgv_and_sqv_for_tricky_texts() {
    let signer = Signer::new(vec![ed25519_key()]).expect("signer");
    for (label, text) in TRICKY {
        assert_verifies(&signer, text.as_bytes(), MODERN, label);
    }
}

#[test]
fn two_keys_sign_at_once_during_a_rotation() {
    let signer = Signer::new(vec![rsa_key(), ed25519_key()]).expect("signer");
    assert_verifies(&signer, TRICKY[0].1.as_bytes(), MODERN, "rsa + ed25519");
    let inrelease =
        String::from_utf8(signer.clearsign_at(b"a\n", at(DATE)).expect("sign")).expect("ascii");
    assert_eq!(
        inrelease.matches("-----BEGIN PGP SIGNATURE-----").count(),
        1
    );
    assert_eq!(inrelease.matches("Hash: SHA512").count(), 1, "{inrelease}");
}

/// Precise and trusty only verify RSA: Ed25519 is for modern-only fleets.
#[test]
fn gpgv1_cannot_verify_ed25519() {
    let signer = Signer::new(vec![ed25519_key()]).expect("signer");
    let scratch = Scratch::new();
    let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
    let inrelease = scratch.write(
        "InRelease",
        &signer.clearsign_at(b"Origin: x\n", at(DATE)).expect("sign"),
    );
    let verdict = gpgv(Gpgv::One, &scratch, &keyring, None, &inrelease);
    assert!(
        !verdict.accepted,
        "gpgv1 accepted Ed25519:\n{}",
        verdict.log
    );
}

/// A rotation that adds an Ed25519 key breaks precise and trusty: gpgv 1.4
/// reports the RSA signature as good but exits 2 (`unknown pubkey
/// algorithm` for the other), and apt of that era fails on any exit but 0.
#[test]
fn gpgv1_fails_when_ed25519_signs_next_to_rsa() {
    let rsa = rsa_key();
    let signer = Signer::new(vec![rsa.clone(), ed25519_key()]).expect("signer");
    let scratch = Scratch::new();
    let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
    let inrelease = scratch.write(
        "InRelease",
        &signer.clearsign_at(b"Origin: x\n", at(DATE)).expect("sign"),
    );
    let verdict = gpgv(Gpgv::One, &scratch, &keyring, None, &inrelease);
    assert_eq!(verdict.signers, vec![rsa.fingerprint()], "{}", verdict.log);
    assert!(verdict.log.contains("ERRSIG"), "{}", verdict.log);
    assert!(!verdict.log.contains("exit Some(0)"), "{}", verdict.log);
    assert!(!verdict.accepted, "{}", verdict.log);
}

#[test]
fn tampered_text_is_refused_by_every_verifier() {
    for (signer, verifiers) in [
        (Signer::new(vec![rsa_key()]).expect("rsa"), ALL),
        (Signer::new(vec![ed25519_key()]).expect("ed25519"), MODERN),
    ] {
        let text = TRICKY[0].1.as_bytes();
        // The untampered files verify, so the refusals below mean something.
        assert_verifies(&signer, text, verifiers, "untampered");

        let scratch = Scratch::new();
        let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
        let tamper = |bytes: &[u8]| -> Vec<u8> {
            let s = String::from_utf8(bytes.to_vec()).expect("utf-8");
            assert!(s.contains("Suite: trusty"));
            s.replacen("Suite: trusty", "Suite: xenial", 1).into_bytes()
        };
        let inrelease = tamper(&signer.clearsign_at(text, at(DATE)).expect("clearsign"));
        let inrelease_path = scratch.write("InRelease", &inrelease);
        let (content, sig) = split_like_apt(&inrelease);
        let content_path = scratch.write("content", &content);
        let sig_path = scratch.write("content.sig", &sig);
        let release_gpg = scratch.write(
            "Release.gpg",
            &signer.detached_at(text, at(DATE)).expect("detached"),
        );
        let release = scratch.write("Release", &tamper(text));

        for verifier in verifiers {
            let verdicts = match verifier {
                Verifier::Gpgv(w) => vec![
                    gpgv(*w, &scratch, &keyring, None, &inrelease_path),
                    gpgv(*w, &scratch, &keyring, Some(&sig_path), &content_path),
                    gpgv(*w, &scratch, &keyring, Some(&release_gpg), &release),
                ],
                Verifier::Sqv => vec![
                    sqv(&keyring, &sig_path, &content_path, 1),
                    sqv(&keyring, &release_gpg, &release, 1),
                ],
            };
            for verdict in verdicts {
                assert!(
                    !verdict.accepted,
                    "tampered text accepted:\n{}",
                    verdict.log
                );
                assert!(verdict.signers.is_empty(), "{}", verdict.log);
            }
        }
    }
}

/// gpgv exits 0 for a good signature by an expired key; the status lines
/// are what tells. This proves the `gpgv` helper above is not fooled.
#[test]
fn expired_key_is_caught_although_gpgv_exits_0() {
    use openpgp::cert::prelude::*;
    use openpgp::policy::StandardPolicy;
    use openpgp::serialize::stream::{Armorer, Message, Signer as StreamSigner};
    use openpgp::serialize::SerializeInto;
    use openpgp::types::KeyFlags;
    use std::io::Write;

    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_userid("expired <expired@repoctl.invalid>")
        .set_creation_time(at(DATE))
        .set_validity_period(Duration::from_secs(86_400))
        .generate()
        .expect("generate");
    let policy = StandardPolicy::new();
    let keypair = cert
        .keys()
        .with_policy(&policy, at(DATE + 3600))
        .secret()
        .for_signing()
        .next()
        .expect("signing key")
        .key()
        .clone()
        .into_keypair()
        .expect("keypair");
    let mut sig = Vec::new();
    {
        let message = Message::new(&mut sig);
        let message = Armorer::new(message)
            .kind(openpgp::armor::Kind::Signature)
            .build()
            .expect("armorer");
        let mut signer = StreamSigner::new(message, keypair)
            .expect("signer")
            .creation_time(at(DATE + 3600))
            .detached()
            .build()
            .expect("build");
        signer.write_all(b"Origin: x\n").expect("write");
        signer.finalize().expect("finalize");
    }
    let scratch = Scratch::new();
    let keyring = scratch.write("key.gpg", &cert.to_vec().expect("public cert"));
    let sig = scratch.write("Release.gpg", &sig);
    let data = scratch.write("Release", b"Origin: x\n");

    let verdict = gpgv(Gpgv::Two, &scratch, &keyring, Some(&sig), &data);
    assert!(verdict.log.contains("EXPKEYSIG"), "{}", verdict.log);
    assert!(verdict.log.contains("exit Some(0)"), "{}", verdict.log);
    assert!(!verdict.accepted, "{}", verdict.log);
    // And repoctl refuses to load such a key at all.
    let err = SigningKey::from_armored(&cert.as_tsk().to_vec().expect("tsk"), Path::new("old.asc"))
        .expect_err("expired key refused");
    assert!(matches!(err, SigningError::KeyUnusable { .. }), "{err:?}");
}

#[test]
fn fixture_key_is_rsa4096_without_expiry_and_matches_its_public_file() {
    use openpgp::parse::Parse;
    use openpgp::policy::StandardPolicy;

    let key = rsa_key();
    assert_eq!(key.user_ids(), vec![FIXTURE_UID.to_owned()]);
    let cert = key.cert();
    assert_eq!(cert.primary_key().key().mpis().bits(), Some(4096));
    assert_eq!(
        cert.primary_key().key().creation_time(),
        at(FIXTURE_CREATED)
    );
    let policy = StandardPolicy::new();
    let valid = cert
        .with_policy(&policy, at(4_000_000_000))
        .expect("valid in 2096");
    assert_eq!(valid.primary_key().key_expiration_time(), None);
    assert!(valid.alive().is_ok());

    let public = openpgp::Cert::from_bytes(FIXTURE_PUB).expect("public fixture");
    assert!(
        !public.is_tsk(),
        "the .pub.asc must not hold the secret key"
    );
    assert_eq!(public.fingerprint().to_hex(), key.fingerprint());
    assert_eq!(public, cert.clone().strip_secret_key_material());
}

/// Generation proper: a fresh RSA-4096 key never expires, survives a save and
/// load, and signs next to another key for gpgv 1.4 (a rotation on trusty).
#[test]
fn generated_rsa4096_key_never_expires_and_verifies_everywhere() {
    use openpgp::policy::StandardPolicy;

    let started = Instant::now();
    let key =
        SigningKey::generate(KeyType::Rsa4096, "fresh <fresh@repoctl.invalid>").expect("generate");
    eprintln!("RSA-4096 generation took {:?}", started.elapsed());

    let policy = StandardPolicy::new();
    let valid = key.cert().with_policy(&policy, None).expect("valid");
    assert_eq!(valid.primary_key().key_expiration_time(), None);
    assert!(valid.primary_key().for_signing() && valid.primary_key().for_certification());
    assert_eq!(key.cert().keys().count(), 1);
    assert!(key
        .cert()
        .with_policy(&policy, at(4_000_000_000))
        .expect("valid in 2096")
        .alive()
        .is_ok());

    let scratch = Scratch::new();
    let path = scratch.dir.path().join("repo.key");
    key.save_secret(&path).expect("save");
    let loaded = SigningKey::load(&path).expect("load");
    assert_eq!(loaded.fingerprint(), key.fingerprint());

    let signer = Signer::new(vec![rsa_key(), loaded]).expect("signer");
    let text = TRICKY[0].1.as_bytes();
    let now = SystemTime::now();
    let inrelease = scratch.write("InRelease", &signer.clearsign_at(text, now).expect("sign"));
    let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
    let mut expected = vec![rsa_key().fingerprint(), key.fingerprint()];
    expected.sort();
    for which in [Gpgv::Two, Gpgv::One] {
        let verdict = gpgv(which, &scratch, &keyring, None, &inrelease);
        assert!(verdict.accepted, "{}", verdict.log);
        assert_eq!(verdict.signers, expected, "{}", verdict.log);
    }
}

/// A key made ten years ago still signs today and every verifier agrees:
/// with sequoia's ~3 year default it would have expired (gpgv: EXPKEYSIG).
#[test]
fn ten_year_old_generated_key_still_verifies_today() {
    let ten_years = Duration::from_secs(10 * 365 * 86_400);
    let key = SigningKey::generate_at(
        KeyType::Ed25519,
        "old <old@repoctl.invalid>",
        SystemTime::now() - ten_years,
    )
    .expect("generate");
    let signer = Signer::new(vec![key.clone()]).expect("signer");
    let scratch = Scratch::new();
    let keyring = scratch.write("key.gpg", &signer.public_keys_binary());
    let data = scratch.write("Release", b"Origin: x\n");
    let sig = scratch.write(
        "Release.gpg",
        &signer.detached(b"Origin: x\n").expect("sign"),
    );
    let verdict = gpgv(Gpgv::Two, &scratch, &keyring, Some(&sig), &data);
    assert!(verdict.accepted, "{}", verdict.log);
    assert!(!verdict.log.contains("EXPKEY"), "{}", verdict.log);
    let verdict = sqv(&keyring, &sig, &data, 1);
    assert!(verdict.accepted, "{}", verdict.log);
    assert_eq!(verdict.signers, vec![key.fingerprint()]);
}

#[test]
fn load_refuses_a_key_file_readable_by_group_or_others() {
    let scratch = Scratch::new();
    for mode in [0o640, 0o644, 0o604] {
        let path = scratch.write(&format!("key-{mode:o}.asc"), FIXTURE_KEY);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = SigningKey::load(&path).expect_err("open key file refused");
        assert!(
            matches!(&err, SigningError::KeyFileTooOpen { path: p, mode: m } if p == &path && *m == mode),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(
            err.hint(),
            Some(format!("run `chmod 600 {}`", path.display()))
        );
    }
    for mode in [0o600, 0o400] {
        let path = scratch.write(&format!("key-{mode:o}.asc"), FIXTURE_KEY);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let key = SigningKey::load(&path).expect("private key file loads");
        assert_eq!(key.fingerprint(), rsa_key().fingerprint());
    }
    let missing = scratch.dir.path().join("missing.asc");
    let err = SigningKey::load(&missing).expect_err("missing");
    assert!(err.to_string().contains("missing.asc"), "{err}");
}

#[test]
fn save_secret_creates_0600_and_refuses_to_overwrite() {
    let scratch = Scratch::new();
    let key = ed25519_key();
    let path = scratch.dir.path().join("signing.asc");
    key.save_secret(&path).expect("save");
    let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let saved = fs::read(&path).expect("read");
    assert!(saved.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    assert_eq!(
        SigningKey::load(&path).expect("load").fingerprint(),
        key.fingerprint()
    );

    let err = key.save_secret(&path).expect_err("no overwrite");
    assert!(
        matches!(&err, SigningError::AlreadyExists { path: p } if p == &path),
        "{err:?}"
    );
    assert_eq!(
        fs::read(&path).expect("read"),
        saved,
        "existing file untouched"
    );
}

#[test]
fn public_key_export_holds_no_secret() {
    let key = rsa_key();
    let public = key.public_armored();
    assert!(public.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let err = SigningKey::from_armored(&public, Path::new("key.asc")).expect_err("public");
    assert!(matches!(err, SigningError::PublicKeyOnly { .. }), "{err:?}");
}
