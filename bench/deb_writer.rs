//! Placeholder: the .deb writer benchmark is being written.
fn main() {}
