//! The repository: pool, catalog, indices, Release and publishing.

pub mod compress;
