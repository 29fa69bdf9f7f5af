//! Placeholder: the serve benchmark is being written.
fn main() {}
