//! Integration tests: one binary, so the suite links once.

mod support;

mod apt;
mod bad_input;
mod cli;
mod compress;
mod crash;
mod scanpackages;
mod signing;
mod version_dpkg;
