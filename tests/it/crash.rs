//! Crash safety: `repoctl add` killed with SIGKILL at random moments never
//! leaves a tree that apt would refuse, and never loses or half-applies an
//! add: a killed add either happened or can simply be repeated.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::{apt_check, check_served_tree, run_ok, stdout, Deb, Server, TestRepo};

const KILLS: usize = 50;

#[test]
fn sigkill_at_random_moments_leaves_a_complete_signed_tree() {
    let repo = TestRepo::new();
    let work = repo.work();
    let key = repo.public().join("key.asc");
    let debs: Vec<_> = (1..=KILLS + 1)
        .map(|i| {
            let arch = ["all", "amd64", "i386"][i % 3];
            let version = i.to_string();
            Deb {
                version: &version,
                architecture: arch,
                payload: &version,
                ..Deb::default()
            }
            .build(&work)
        })
        .collect();

    // How long an uninterrupted add takes, so kills land all along it.
    let start = Instant::now();
    repo.add("trusty", "dev", &[&debs[0]]);
    let span = start.elapsed().mul_f64(1.3);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for (i, deb) in debs.iter().enumerate().skip(1) {
        let mut child = repo
            .cmd()
            .args(["add", "--dist", "trusty", "--component", "dev"])
            .arg(deb)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn add");
        std::thread::sleep(Duration::from_micros(
            rng.gen_range(0..span.as_micros() as u64),
        ));
        let _ = child.kill();
        let _ = child.wait();
        if let Err(problem) = check_served_tree(&repo.public(), &["trusty", "precise"], &key) {
            panic!("after kill {i}: {problem}");
        }
    }

    // Every add can be repeated: the ones that committed are no-ops, the
    // others go in now (a leftover pool file of a killed add is replaced).
    let all: Vec<&std::path::Path> = debs.iter().map(|p| p.as_path()).collect();
    let out = repo.add("trusty", "dev", &all);
    let text = stdout(&out);
    assert_eq!(
        text.matches("unchanged").count() + text.matches("added:").count(),
        debs.len(),
        "{text}"
    );
    let listed = stdout(&run_ok(repo.cmd().args([
        "list",
        "vrmd-whois",
        "--dist",
        "trusty",
    ])));
    assert_eq!(listed.lines().count(), debs.len(), "{listed}");
    check_served_tree(&repo.public(), &["trusty", "precise"], &key).unwrap();

    let server = Server::start(&repo.root());
    let (ok, out) = apt_check(
        &server.url,
        &key,
        "trusty",
        "main dev",
        "amd64",
        &["--expect", &format!("vrmd-whois={}", KILLS + 1)],
    );
    assert!(ok, "{out}");
}
