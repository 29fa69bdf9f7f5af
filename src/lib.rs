//! repoctl: a private APT repository manager.
//!
//! Codemap (the data flow of DESIGN.md §1, one line per module):
//!
//! - [`cli`] parses the command line; the only code that prints results to stdout.
//! - [`server`] serves the apt tree, the upload and query API over HTTP (a door).
//! - [`incoming`] takes files dropped into `incoming/` by scp or sftp (a door).
//! - [`config`] reads and writes `repoctl.toml`.
//! - [`deb`] holds Debian primitives with no policy: control paragraphs, versions,
//!   `.deb` inspection (one pass: control member + size and hashes). It lives in
//!   the `repoctl-formats` crate (`crates/formats`) with the other pure parsers
//!   (`repo::release`, `build::deploy`, the `Packages` reading of `remote`), so
//!   that they are fuzzed on their own (`fuzz/`); each is re-exported here.
//! - [`repo`] is the `Repository` facade every door calls: pool, catalog, index
//!   rendering, Release, publish, lock.
//! - [`signing`] loads, generates and uses the OpenPGP keys that sign `Release`,
//!   and verifies another repository's `InRelease` against a keyring.
//! - [`build`] turns an application directory into a virtualenv `.deb` (`repoctl
//!   build`) with its own `.deb` writer, and pushes it through `repo` or HTTP.
//! - [`http_client`] sends blocking HTTP/1.1 requests (`http://` only): GET, PUT, POST.
//! - [`remote`] reads a published APT repository over HTTP (verified InRelease,
//!   checked Packages) for `next-version --from-index`.
//!
//! Dependency direction: `cli`/`server`/`incoming`/`build` → `repo`, `remote`,
//! `http_client` → `deb`, `signing`.
//! `repo` never imports a front end.

pub mod build;
pub mod cli;
pub mod config;
pub use repoctl_formats::deb;
pub mod http_client;
pub mod incoming;
pub mod remote;
pub mod repo;
pub mod server;
pub mod signing;
