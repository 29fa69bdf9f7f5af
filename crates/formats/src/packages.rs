//! `Packages` indices: where a Release lists them, their stanzas, and the
//! versions of one package that an index holds.
//!
//! Owns reading index text (already fetched, verified and decompressed by
//! the caller). Fetching, checksums and signatures belong to `remote` in the
//! main crate; rendering our own indices belongs to `repo::index`.

use crate::deb::control::{ControlError, Paragraph};
use crate::deb::version::{Version, VersionError};

/// Why an index could not be read: the line where the stanza starts, and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackagesError {
    #[error("the stanza at line {line} is invalid")]
    Stanza {
        line: usize,
        #[source]
        source: ControlError,
    },
    #[error("the stanza at line {line} {problem}")]
    BadStanza { line: usize, problem: &'static str },
    #[error("the stanza at line {line} gives {package} an invalid version")]
    BadVersion {
        line: usize,
        package: String,
        #[source]
        source: VersionError,
    },
}

/// `(component, architecture)` of a binary index path listed in a Release
/// (`main/binary-amd64/Packages.xz`, `updates/main/binary-i386/Packages`).
/// Installer indices (`main/debian-installer/...`) list udebs and are skipped.
pub fn index_location(path: &str) -> Option<(String, String)> {
    let base = path
        .strip_suffix(".xz")
        .or_else(|| path.strip_suffix(".gz"))
        .unwrap_or(path);
    let dir = base.strip_suffix("/Packages")?;
    let (component, binary) = dir.rsplit_once('/')?;
    let arch = binary.strip_prefix("binary-")?;
    if component.is_empty()
        || arch.is_empty()
        || component.split('/').any(|p| p == "debian-installer")
    {
        return None;
    }
    Some((component.to_owned(), arch.to_owned()))
}

/// The `(version, architecture)` of every stanza of `package` in an index.
/// Every stanza is parsed, so a broken index is an error, not a gap.
pub fn versions_of(text: &str, package: &str) -> Result<Vec<(Version, String)>, PackagesError> {
    let mut found = Vec::new();
    for (line, stanza) in stanzas(text) {
        let paragraph =
            Paragraph::parse(&stanza).map_err(|source| PackagesError::Stanza { line, source })?;
        let bad = |problem| PackagesError::BadStanza { line, problem };
        let name = paragraph
            .get("Package")
            .ok_or_else(|| bad("has no Package field"))?;
        if name != package {
            continue;
        }
        let version = paragraph
            .get("Version")
            .ok_or_else(|| bad("has no Version field"))?;
        let version = Version::parse(version).map_err(|source| PackagesError::BadVersion {
            line,
            package: package.to_owned(),
            source,
        })?;
        let architecture = paragraph
            .get("Architecture")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("has no Architecture field"))?;
        found.push((version, architecture.to_owned()));
    }
    Ok(found)
}

/// Splits deb822 text into paragraphs at blank lines, with the 1-based line
/// number where each starts.
pub fn stanzas(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let (_, stanza) = current.get_or_insert_with(|| (index + 1, String::new()));
        stanza.push_str(line);
        stanza.push('\n');
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_binary_indices_in_release_paths() {
        let at = |p: &str| index_location(p);
        let pair = |c: &str, a: &str| Some((c.to_owned(), a.to_owned()));
        assert_eq!(at("main/binary-amd64/Packages.xz"), pair("main", "amd64"));
        assert_eq!(at("dev/binary-i386/Packages"), pair("dev", "i386"));
        assert_eq!(
            at("updates/main/binary-all/Packages.gz"),
            pair("updates/main", "all")
        );
        assert_eq!(at("main/source/Sources.xz"), None);
        assert_eq!(at("main/binary-amd64/Release"), None);
        assert_eq!(at("main/debian-installer/binary-amd64/Packages"), None);
        assert_eq!(at("main/Contents-amd64.gz"), None);
        assert_eq!(at("binary-amd64/Packages"), None);
    }

    #[test]
    fn splits_stanzas_with_their_line_numbers() {
        let text = "\nPackage: a\nVersion: 1\n\n \nPackage: b\nDescription: x\n .\n y\n";
        let got = stanzas(text);
        assert_eq!(
            got,
            vec![
                (2, "Package: a\nVersion: 1\n".to_owned()),
                (6, "Package: b\nDescription: x\n .\n y\n".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_versions_are_errors_not_gaps() {
        let index = "Package: p\nVersion: 1\nArchitecture: all\n\nPackage: p\nVersion: x1\nArchitecture: amd64\n";
        let err = versions_of(index, "p").unwrap_err();
        assert!(
            matches!(&err, PackagesError::BadVersion { line: 5, source, .. } if source.version == "x1"),
            "{err:?}"
        );
        assert!(versions_of(index, "q").unwrap().is_empty());
        let err = versions_of("Version: 1\n", "p").unwrap_err();
        assert!(
            matches!(err, PackagesError::BadStanza { line: 1, .. }),
            "{err:?}"
        );
    }
}
