//! The `ar` container of a `.deb`, read the way dpkg reads it
//! (`lib/dpkg/ar.c`, `dpkg-deb/extract.c`): the global magic, then members,
//! each a 60-byte header (name, date, owner, group, mode, decimal size and
//! the end marker `` `\n ``), the data, and one padding byte after an odd
//! size.
//!
//! Owns the container only; what a member holds is `inspect`'s business.
//! GNU and BSD long names and symbol tables are not read, as in dpkg: a
//! `.deb` has none, and a reader that follows them lets a 60-byte header ask
//! for gigabytes (the `ar` crate, used before, did: see fuzz/README.md).

use std::io::{self, Read};

/// The first bytes of every `ar` archive.
pub const MAGIC: &[u8; 8] = b"!<arch>\n";

const HEADER_LEN: usize = 60;
const END_MARKER: &[u8; 2] = b"`\n";

/// A member header: what inspection needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// The name without its space padding and GNU ar's trailing `/`.
    pub name: String,
    /// The size of the data that follows (at most 10 decimal digits).
    pub size: u64,
}

/// Why the next member header cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the file ends inside a member header, after {got} of its {HEADER_LEN} bytes")]
    Truncated { got: usize },
    #[error("the member header does not end with the ar end marker")]
    NoEndMarker,
    #[error("the member size {field:?} is not a decimal number")]
    BadSize { field: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads the header of the next member, after the magic or after the
/// previous member and its padding; `None` at the end of the archive.
pub fn read_member_header<R: Read>(reader: &mut R) -> Result<Option<MemberHeader>, HeaderError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_up_to(reader, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(HeaderError::Truncated { got });
    }
    if &header[58..60] != END_MARKER {
        return Err(HeaderError::NoEndMarker);
    }
    let size_field = &header[48..58];
    let digits = trim_end_spaces(size_field);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeaderError::BadSize {
            field: String::from_utf8_lossy(size_field).into_owned(),
        });
    }
    // At most 10 digits: no overflow.
    let size = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(Some(MemberHeader {
        name: member_name(&header[..16]),
        size,
    }))
}

/// Skips the padding byte that follows a member of odd size. A missing one
/// at the end of the file is accepted, as dpkg does.
pub fn skip_padding<R: Read>(reader: &mut R, size: u64) -> io::Result<()> {
    if size % 2 == 1 {
        read_up_to(reader, &mut [0u8; 1])?;
    }
    Ok(())
}

/// Names are space-padded, and GNU ar ends them with `/`.
fn member_name(field: &[u8]) -> String {
    String::from_utf8_lossy(trim_end_spaces(field))
        .trim_end_matches('/')
        .to_string()
}

fn trim_end_spaces(field: &[u8]) -> &[u8] {
    let end = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &field[..end]
}

/// Fills `buf` unless the reader ends first; returns how much it filled.
pub(crate) fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: &str, end: &[u8; 2]) -> Vec<u8> {
        let mut h =
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}", 0, 0, 0, 100644).into_bytes();
        h.extend_from_slice(end);
        h
    }

    fn read(bytes: &[u8]) -> Result<Option<MemberHeader>, HeaderError> {
        read_member_header(&mut &bytes[..])
    }

    #[test]
    fn reads_name_and_size_as_dpkg_does() {
        let got = read(&header("control.tar.gz/", "1234", END_MARKER)).unwrap();
        assert_eq!(
            got,
            Some(MemberHeader {
                name: "control.tar.gz".into(),
                size: 1234
            })
        );
        assert!(read(b"").unwrap().is_none());
    }

    #[test]
    fn long_name_references_are_plain_names_not_allocations() {
        // A GNU name-table index and a BSD long name: the `ar` crate followed
        // them (panicking past the table, or allocating the size given).
        for name in ["/99", "//", "#1/9999999999"] {
            let got = read(&header(name, "9999999999", END_MARKER)).unwrap();
            assert_eq!(
                got.map(|h| (h.name, h.size)),
                Some((name.trim_end_matches('/').to_string(), 9_999_999_999))
            );
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(matches!(
            read(&header("debian-binary", "4", END_MARKER)[..30]),
            Err(HeaderError::Truncated { got: 30 })
        ));
        assert!(matches!(
            read(&header("debian-binary", "4", b"``")),
            Err(HeaderError::NoEndMarker)
        ));
        for size in ["", "-1", "1 2", "0x10", "+4"] {
            assert!(
                matches!(
                    read(&header("debian-binary", size, END_MARKER)),
                    Err(HeaderError::BadSize { .. })
                ),
                "{size:?}"
            );
        }
    }
}
