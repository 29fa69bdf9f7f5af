//! A package file as the repository knows it: validated identity (name,
//! version, architecture), its pool location and its `Packages` stanza.
//!
//! Owns the repository's policy on control fields. It turns an inspected
//! `.deb` into a [`PackageFile`] or refuses it with the field that is wrong.

use std::path::Path;

use crate::config::Config;
use crate::deb::control::Paragraph;
use crate::deb::inspect::{Checksums, DebInfo};
use crate::deb::version::Version;

/// Fields that the index computes; a `.deb` that carries them is refused so
/// nothing it says can stand in for the repository's own values.
const COMPUTED_FIELDS: &[&str] = &[
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Description-md5",
];

/// The longest file name Linux filesystems store (NAME_MAX): a pool file
/// name past it could not be written.
const MAX_FILE_NAME: usize = 255;

#[derive(Debug, Clone)]
pub struct PackageFile {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub checksums: Checksums,
    /// `<name>_<version without epoch>_<arch>.deb`: unique in the repository.
    pub file_name: String,
    /// The control paragraph with the computed fields added, in dpkg's order,
    /// except `Filename` (set when the pool path is known).
    pub control: Paragraph,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: the control file has no `{field}` field")]
    MissingField { path: String, field: &'static str },
    #[error("{path}: invalid package name {name:?}: {reason}")]
    BadName {
        path: String,
        name: String,
        reason: &'static str,
    },
    #[error("{path}: invalid version {version:?}: {reason}")]
    BadVersion {
        path: String,
        version: String,
        reason: String,
    },
    #[error("{path}: invalid architecture {architecture:?}: {reason}")]
    BadArchitecture {
        path: String,
        architecture: String,
        reason: String,
    },
    #[error("{path}: the control file sets `{field}`, which only the repository may compute")]
    ComputedField { path: String, field: String },
    #[error("{path}: the value of `{field}` holds the control character {character:?}")]
    ControlCharacter {
        path: String,
        field: String,
        character: char,
    },
}

impl PolicyError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PolicyError::MissingField { field, .. } => {
                format!("add `{field}:` to debian/control and build the package again")
            }
            PolicyError::BadName { .. } => "Debian package names use lowercase letters, digits, `+`, `-` and `.`, start with a letter or digit and are at least two characters long".into(),
            PolicyError::BadVersion { .. } => "use a version dpkg accepts, e.g. `42` (see `repoctl next-version`); `dpkg --compare-versions` checks the syntax".into(),
            PolicyError::BadArchitecture { .. } => "build the package for `all` or for one of the architectures in repoctl.toml, or add the architecture there".into(),
            PolicyError::ComputedField { .. } => "remove the field from debian/control; the repository writes it into the index".into(),
            PolicyError::ControlCharacter { .. } => "control fields are text: remove the character from debian/control (a value continues on the next line only after a space)".into(),
        })
    }
}

impl PackageFile {
    /// Applies the repository's policy to an inspected `.deb`.
    pub fn from_deb(
        info: DebInfo,
        config: &Config,
        path: &Path,
    ) -> Result<PackageFile, PolicyError> {
        let shown = path.display().to_string();
        let mut control = info.control;
        let required = |field: &'static str| {
            control
                .get(field)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or(PolicyError::MissingField {
                    path: shown.clone(),
                    field,
                })
        };
        let name = required("Package")?;
        let version_text = required("Version")?;
        let architecture = required("Architecture")?;

        check_name(&name).map_err(|reason| PolicyError::BadName {
            path: shown.clone(),
            name: name.clone(),
            reason,
        })?;
        let version = Version::parse(&version_text).map_err(|e| PolicyError::BadVersion {
            path: shown.clone(),
            version: version_text.clone(),
            reason: e.kind.to_string(),
        })?;
        check_architecture(&architecture, config).map_err(|reason| {
            PolicyError::BadArchitecture {
                path: shown.clone(),
                architecture: architecture.clone(),
                reason,
            }
        })?;
        if let Some((field, _)) = control
            .fields()
            .find(|(n, _)| COMPUTED_FIELDS.iter().any(|c| c.eq_ignore_ascii_case(n)))
        {
            return Err(PolicyError::ComputedField {
                path: shown,
                field: field.to_string(),
            });
        }
        // What the index copies must stay one field per line for every
        // reader: no CR, NUL, escape or Unicode line separator (a line break
        // is only ever the one before a continuation line).
        for (field, value) in control.fields() {
            if let Some(character) = value.chars().find(|&c| {
                (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
            }) {
                return Err(PolicyError::ControlCharacter {
                    path: shown,
                    field: field.to_string(),
                    character,
                });
            }
        }

        let checksums = info.checksums;
        control.set("Size", &checksums.size.to_string());
        control.set("MD5sum", &checksums.md5);
        control.set("SHA1", &checksums.sha1);
        control.set("SHA256", &checksums.sha256);
        control.sort_like_dpkg_index();
        let file_name = format!("{name}_{}_{architecture}.deb", version.without_epoch());
        if file_name.len() > MAX_FILE_NAME {
            return Err(PolicyError::BadVersion {
                path: shown,
                version: version_text,
                reason: format!(
                    "the pool file name would be {} bytes long, longer than the {MAX_FILE_NAME} a file name may have",
                    file_name.len()
                ),
            });
        }
        Ok(PackageFile {
            name,
            version,
            architecture,
            checksums,
            file_name,
            control,
        })
    }

    /// The catalog row for this file stored at `pool_path`.
    pub fn catalog_row<'a>(
        &'a self,
        pool_path: &'a str,
        stanza: &'a str,
        at: i64,
    ) -> super::catalog::NewFile<'a> {
        let sums = &self.checksums;
        super::catalog::NewFile {
            name: &self.name,
            version: self.version.as_str(),
            architecture: &self.architecture,
            file_name: &self.file_name,
            pool_path,
            size: sums.size,
            md5: &sums.md5,
            sha1: &sums.sha1,
            sha256: &sums.sha256,
            stanza,
            at,
        }
    }

    /// The `Packages` stanza for this file stored at `pool_path`.
    pub fn stanza(&self, pool_path: &str) -> String {
        let mut control = self.control.clone();
        control.set("Filename", pool_path);
        control.sort_like_dpkg_index();
        control.to_string()
    }
}

/// Debian Policy 5.6.1: `[a-z0-9][a-z0-9+.-]+`.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.len() < 2 {
        return Err("it must be at least two characters long");
    }
    if name.len() > 128 {
        return Err("it is longer than 128 characters");
    }
    let bytes = name.as_bytes();
    if !(bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()) {
        return Err("it must start with a lowercase letter or a digit");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(b))
    {
        return Err("only lowercase letters, digits, `+`, `-` and `.` are allowed");
    }
    Ok(())
}

fn check_architecture(architecture: &str, config: &Config) -> Result<(), String> {
    if architecture.contains(['/', '\\', '\0']) || architecture.contains("..") {
        return Err("it contains path components".into());
    }
    if architecture == "all"
        || config
            .repository
            .architectures
            .iter()
            .any(|a| a == architecture)
    {
        return Ok(());
    }
    Err(format!(
        "this repository publishes only `all` and {}",
        config
            .repository
            .architectures
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `pool/<component>/<prefix>/<name>/<file>`; `prefix` is `libx` for `lib*`.
pub fn pool_path(component: &str, name: &str, file_name: &str) -> String {
    let prefix = if name.starts_with("lib") && name.len() > 3 {
        &name[..4]
    } else {
        &name[..1]
    };
    format!("pool/{component}/{prefix}/{name}/{file_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_prefix_follows_debian() {
        assert_eq!(
            pool_path("dev", "vrmd-whois", "f.deb"),
            "pool/dev/v/vrmd-whois/f.deb"
        );
        assert_eq!(
            pool_path("main", "libpq5", "f.deb"),
            "pool/main/libp/libpq5/f.deb"
        );
    }

    #[test]
    fn names_follow_policy() {
        assert!(check_name("vrmd-whois").is_ok());
        assert!(check_name("g++").is_ok());
        for bad in ["a", "Vrmd", "-x", "a/b", "a_b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
