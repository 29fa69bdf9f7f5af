//! Integration tests: one binary, so the suite links once.

// Tests may panic on anything unexpected; that is how they fail.
#![allow(clippy::unwrap_used)]

mod support;

mod apt;
mod bad_input;
mod build;
mod cli;
mod compress;
mod crash;
mod faults;
mod hostile;
mod http;
mod http_tree;
mod incoming;
mod lifecycle;
mod next_version;
mod quickstart;
mod remote;
mod scanpackages;
mod signatures;
mod signing;
mod verify;
mod version_dpkg;
