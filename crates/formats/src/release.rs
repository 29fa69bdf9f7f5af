//! `Release` files: rendering a dist's Release and reading back the one that
//! is served (its Date, identity fields and file list are what the next
//! publish must stay consistent with).
//!
//! Owns the Release text format; signing and file placement live elsewhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::deb::control::Paragraph;
use crate::deb::inspect::Checksums;

/// The fields of a Release besides its file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFields {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
    pub date: i64,
    pub valid_until: Option<i64>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub description: Option<String>,
}

/// A Release: fields plus the size and digests of every file it names, keyed
/// by path relative to the dist directory (`main/binary-amd64/Packages.gz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub fields: ReleaseFields,
    pub files: BTreeMap<String, Checksums>,
}

impl Release {
    pub fn render(&self) -> String {
        let f = &self.fields;
        let mut out = String::new();
        let mut line = |name: &str, value: &str| {
            let _ = writeln!(out, "{name}: {value}");
        };
        line("Origin", &f.origin);
        line("Label", &f.label);
        line("Suite", &f.suite);
        line("Codename", &f.codename);
        line("Date", &http_date(f.date));
        if let Some(until) = f.valid_until {
            line("Valid-Until", &http_date(until));
        }
        line("Architectures", &f.architectures.join(" "));
        line("Components", &f.components.join(" "));
        if let Some(description) = &f.description {
            line("Description", description);
        }
        line("Acquire-By-Hash", "yes");
        let width = self
            .files
            .values()
            .map(|c| c.size.to_string().len())
            .max()
            .unwrap_or(1)
            .max(8);
        for (section, digest) in [
            (
                "MD5Sum",
                (|c: &Checksums| c.md5.clone()) as fn(&Checksums) -> String,
            ),
            ("SHA1", |c| c.sha1.clone()),
            ("SHA256", |c| c.sha256.clone()),
        ] {
            let _ = writeln!(out, "{section}:");
            for (path, sums) in &self.files {
                let _ = writeln!(out, " {} {:>width$} {path}", digest(sums), sums.size);
            }
        }
        out
    }

    /// Parses a Release we wrote (or any reasonable one). Unknown fields are
    /// ignored; files are taken from the MD5Sum, SHA1 and SHA256 sections.
    pub fn parse(text: &str) -> Result<Release, String> {
        let paragraph = Paragraph::parse(text).map_err(|e| e.to_string())?;
        let get = |name: &str| paragraph.get(name).unwrap_or("").to_string();
        let date = parse_http_date(&get("Date")).ok_or("missing or invalid Date")?;
        let valid_until = paragraph.get("Valid-Until").and_then(parse_http_date);
        let words = |name: &str| get(name).split_whitespace().map(String::from).collect();
        let mut files: BTreeMap<String, Checksums> = BTreeMap::new();
        for section in ["MD5Sum", "SHA1", "SHA256"] {
            for entry in paragraph.get(section).unwrap_or("").lines() {
                let parts: Vec<&str> = entry.split_whitespace().collect();
                let [digest, size, path] = parts[..] else {
                    continue;
                };
                let size: u64 = size.parse().map_err(|_| format!("bad size in {section}"))?;
                let sums = files.entry(path.to_string()).or_insert(Checksums {
                    size,
                    md5: String::new(),
                    sha1: String::new(),
                    sha256: String::new(),
                });
                let slot = match section {
                    "MD5Sum" => &mut sums.md5,
                    "SHA1" => &mut sums.sha1,
                    _ => &mut sums.sha256,
                };
                *slot = digest.to_string();
            }
        }
        Ok(Release {
            fields: ReleaseFields {
                origin: get("Origin"),
                label: get("Label"),
                suite: get("Suite"),
                codename: get("Codename"),
                date,
                valid_until,
                architectures: words("Architectures"),
                components: words("Components"),
                description: paragraph.get("Description").map(String::from),
            },
            files,
        })
    }
}

/// RFC 1123 in UTC, as Debian writes it: `Sun, 29 Nov 2026 15:27:08 UTC`.
pub fn http_date(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(time).replace("GMT", "UTC")
}

pub fn parse_http_date(text: &str) -> Option<i64> {
    let normal = text.trim().replace("UTC", "GMT").replace("+0000", "GMT");
    let time = httpdate::parse_http_date(&normal).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(size: u64) -> Checksums {
        Checksums {
            size,
            md5: "m".repeat(32),
            sha1: "s".repeat(40),
            sha256: "h".repeat(64),
        }
    }

    #[test]
    fn renders_and_parses_back() {
        let release = Release {
            fields: ReleaseFields {
                origin: "O".into(),
                label: "L".into(),
                suite: "trusty".into(),
                codename: "trusty".into(),
                date: 1_795_000_000,
                valid_until: Some(1_795_600_000),
                architectures: vec!["amd64".into(), "i386".into()],
                components: vec!["main".into(), "dev".into()],
                description: None,
            },
            files: [
                ("main/binary-amd64/Packages".to_string(), sums(123456)),
                ("main/binary-amd64/Packages.gz".to_string(), sums(0)),
            ]
            .into_iter()
            .collect(),
        };
        let text = release.render();
        assert!(text.contains("Date: "), "{text}");
        assert!(text.contains(" UTC\n"), "{text}");
        assert!(text.contains(&format!(
            " {}   123456 main/binary-amd64/Packages\n",
            "h".repeat(64)
        )));
        assert_eq!(Release::parse(&text).unwrap(), release);
    }
}
