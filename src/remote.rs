//! Placeholder: the remote-index reader is being written (helper); this stub
//! only lets the crate build meanwhile.

use std::path::Path;

use crate::deb::version::Version;

pub struct RemoteVersion {
    pub version: Version,
    pub component: String,
    pub architecture: String,
}

#[derive(Debug, thiserror::Error)]
#[error("--from-index is not available yet")]
pub struct RemoteError;

pub fn published_versions(
    _base_url: &str,
    _keyring_path: &Path,
    _dist: &str,
    _package: &str,
) -> Result<Vec<RemoteVersion>, RemoteError> {
    Err(RemoteError)
}
