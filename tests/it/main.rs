//! Integration tests: one binary, so the suite links once.

mod support;
mod version_dpkg;
mod signing;
mod compress;
