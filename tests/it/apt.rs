//! The real apt accepts what repoctl publishes: both dists, both
//! architectures, several versions side by side, `all` packages everywhere
//! and architecture-specific ones only where they belong.

use crate::support::{apt_check, Deb, Server, TestRepo};

#[test]
fn real_apt_updates_lists_downloads_and_installs_from_a_served_repository() {
    let repo = TestRepo::new();
    let work = repo.work();
    let mut debs = repo.whois_versions(&["1", "2", "3"]);
    debs.push(
        Deb {
            name: "vrmd-amd64only",
            architecture: "amd64",
            ..Deb::default()
        }
        .build(&work),
    );
    debs.push(
        Deb {
            name: "vrmd-i386only",
            architecture: "i386",
            ..Deb::default()
        }
        .build(&work),
    );
    let refs: Vec<&std::path::Path> = debs.iter().map(|p| p.as_path()).collect();
    for (dist, component) in [("trusty", "dev"), ("trusty", "main"), ("precise", "main")] {
        repo.add(dist, component, &refs);
    }

    let server = Server::start(&repo.root());
    let key = repo.public().join("key.asc");
    for dist in ["trusty", "precise"] {
        let (ok, out) = apt_check(
            &server.url,
            &key,
            dist,
            "main dev",
            "amd64",
            &[
                "--expect",
                "vrmd-whois=1",
                "--expect",
                "vrmd-whois=2",
                "--expect",
                "vrmd-whois=3",
                "--expect-candidate",
                "vrmd-whois=3",
                "--expect",
                "vrmd-amd64only=1",
                "--expect-absent",
                "vrmd-i386only",
                "--download",
                "vrmd-whois=2",
                "--install",
                "vrmd-whois=2",
            ],
        );
        assert!(ok, "apt-check {dist}/amd64 failed:\n{out}");
        assert!(out.contains("PASS install vrmd-whois=2"), "{out}");

        let (ok, out) = apt_check(
            &server.url,
            &key,
            dist,
            "main dev",
            "i386",
            &[
                "--expect",
                "vrmd-whois=3",
                "--expect",
                "vrmd-i386only=1",
                "--expect-absent",
                "vrmd-amd64only",
            ],
        );
        assert!(ok, "apt-check {dist}/i386 failed:\n{out}");
    }
}
