//! Debian primitives with no repository policy: control paragraphs, versions and
//! `.deb` inspection.

pub mod ar;
pub mod control;
pub mod inspect;
pub mod version;
