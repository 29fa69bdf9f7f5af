//! Control paragraphs (deb822): the `control` file of a `.deb` and the
//! stanzas of a `Packages` index.
//!
//! Owns parsing (strict: one paragraph, no duplicate fields) and rendering.
//! A parsed value can never smuggle a new field into a rendered index: every
//! continuation line is stored with its leading blank, and rendering refuses
//! anything else.

use std::fmt;

/// Limits what a control file may hold; real ones are a few KiB.
pub const MAX_CONTROL_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph {
    /// Fields in file order. A value's first line has no surrounding blanks;
    /// continuation lines follow after `\n`, each starting with a space or tab.
    fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the control file is empty")]
    Empty,
    #[error("the control file is larger than {MAX_CONTROL_BYTES} bytes")]
    TooLarge,
    #[error("the control file is not UTF-8 text")]
    NotUtf8,
    #[error("line {line}: a continuation line comes before any field")]
    ContinuationFirst { line: usize },
    #[error("line {line}: expected `Field: value`, found {text:?}")]
    NotAField { line: usize, text: String },
    #[error("line {line}: invalid field name {name:?}")]
    BadFieldName { line: usize, name: String },
    #[error("line {line}: field `{name}` appears twice")]
    DuplicateField { line: usize, name: String },
    #[error("line {line}: a second paragraph starts here; a binary package's control file holds exactly one")]
    SecondParagraph { line: usize },
}

impl Paragraph {
    /// Parses exactly one paragraph. Blank lines before and after it are
    /// allowed; a second paragraph is refused (dpkg-scanpackages would silently
    /// take the first, which hides a broken package).
    pub fn parse(text: &str) -> Result<Paragraph, ControlError> {
        if text.len() > MAX_CONTROL_BYTES {
            return Err(ControlError::TooLarge);
        }
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut ended = false;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                ended = !fields.is_empty();
                continue;
            }
            if ended {
                return Err(ControlError::SecondParagraph { line: line_no });
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    return Err(ControlError::ContinuationFirst { line: line_no });
                };
                value.push('\n');
                value.push_str(line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(ControlError::NotAField {
                    line: line_no,
                    text: line.chars().take(80).collect(),
                });
            };
            if !is_field_name(name) {
                return Err(ControlError::BadFieldName {
                    line: line_no,
                    name: name.chars().take(80).collect(),
                });
            }
            if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(ControlError::DuplicateField {
                    line: line_no,
                    name: name.to_string(),
                });
            }
            fields.push((name.to_string(), value.trim().to_string()));
        }
        if fields.is_empty() {
            return Err(ControlError::Empty);
        }
        Ok(Paragraph { fields })
    }

    /// Field lookup is case-insensitive, as in dpkg and apt.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Sets a single-line value (replacing an existing field in place).
    /// Panics if the value holds a line break: callers pass computed values
    /// (sizes, hashes, paths) whose safety is their own invariant.
    pub fn set(&mut self, name: &str, value: &str) {
        assert!(
            !value.contains(['\n', '\r']) && is_field_name(name),
            "computed control values are single-line"
        );
        match self
            .fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(self.fields.remove(at).1)
    }

    /// Reorders fields the way dpkg writes index stanzas: known fields in
    /// dpkg's order, then the rest in their original order.
    pub fn sort_like_dpkg_index(&mut self) {
        let rank = |name: &str| {
            INDEX_FIELD_ORDER
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
                .unwrap_or(INDEX_FIELD_ORDER.len())
        };
        self.fields.sort_by_key(|(name, _)| rank(name));
    }
}

/// Renders the paragraph without a trailing blank line.
impl fmt::Display for Paragraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.fields {
            if value.is_empty() {
                writeln!(f, "{name}:")?;
            } else {
                writeln!(f, "{name}: {value}")?;
            }
        }
        Ok(())
    }
}

/// deb822 field names: printable ASCII without `:` and not starting with `#`
/// or `-` (Debian Policy 5.1).
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['#', '-'])
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

/// dpkg's field order for binary index stanzas (Dpkg::Control::FieldsCore),
/// so our `Packages` reads like one written by dpkg-scanpackages.
const INDEX_FIELD_ORDER: &[&str] = &[
    "Package",
    "Package-Type",
    "Source",
    "Version",
    "Kernel-Version",
    "Built-Using",
    "Static-Built-Using",
    "Built-For-Profiles",
    "Auto-Built-Package",
    "Architecture",
    "Subarchitecture",
    "Installer-Menu-Item",
    "Build-Essential",
    "Essential",
    "Protected",
    "Origin",
    "Bugs",
    "Maintainer",
    "Installed-Size",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Enhances",
    "Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "Section",
    "Priority",
    "Multi-Arch",
    "Homepage",
    "Description",
    "Tag",
    "Task",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_continuation_lines() {
        let p = Paragraph::parse(
            "Package: vrmd-whois\nVersion: 42\nDescription: short\n long line  \n .\n end\n",
        )
        .unwrap();
        assert_eq!(p.get("package"), Some("vrmd-whois"));
        assert_eq!(p.get("Description"), Some("short\n long line\n .\n end"));
    }

    #[test]
    fn a_second_paragraph_is_refused() {
        let err = Paragraph::parse("Package: a\n\nPackage: b\n").unwrap_err();
        assert_eq!(err, ControlError::SecondParagraph { line: 3 });
    }

    #[test]
    fn duplicate_fields_are_refused_whatever_their_case() {
        let err = Paragraph::parse("Package: a\npackage: b\n").unwrap_err();
        assert!(matches!(err, ControlError::DuplicateField { line: 2, .. }));
    }

    #[test]
    fn rendering_keeps_continuations_indented() {
        let p = Paragraph::parse("Package: a\nDescription: x\n Filename: evil\n").unwrap();
        let text = p.to_string();
        assert!(text.lines().all(|l| !l.starts_with("Filename")), "{text}");
    }

    #[test]
    fn index_order_puts_hashes_before_description() {
        let mut p = Paragraph::parse("Description: d\nPackage: a\nX-Custom: 1\n").unwrap();
        p.set("SHA256", "00");
        p.sort_like_dpkg_index();
        let names: Vec<_> = p.fields().map(|(n, _)| n).collect();
        assert_eq!(names, ["Package", "SHA256", "Description", "X-Custom"]);
    }
}
