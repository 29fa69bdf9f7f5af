//! `repoctl build`: an application directory into a virtualenv .deb.

pub mod deb_writer;
