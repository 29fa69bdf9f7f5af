//! repoctl's parsers of Debian formats, kept apart from the server, signing
//! and the catalog so that they build (and are fuzzed, see `fuzz/`) on their
//! own. The main crate re-exports each module where it used to live.
//!
//! Codemap:
//!
//! - [`deb`] holds Debian primitives with no policy: control paragraphs,
//!   versions, `.deb` inspection (one pass: control member + size and hashes).
//! - [`release`] renders and parses `Release` files.
//! - [`packages`] reads `Packages` indices: stanzas and the versions of one
//!   package (for `next-version --from-index`).
//! - [`deploy`] parses an application's `deploy.yml` (`repoctl build`).
//! - [`names`] is the rule for dist, component and architecture names.
//!
//! Dependency direction: `deploy` → `names`; `release`, `packages` → `deb`.

pub mod deb;
pub mod deploy;
pub mod names;
pub mod packages;
pub mod release;
