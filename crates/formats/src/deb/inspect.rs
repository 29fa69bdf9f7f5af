//! `.deb` inspection: one pass over the file yields its control paragraph,
//! its size and its MD5, SHA1 and SHA256.
//!
//! Owns the binary package container (ar → `debian-binary`, `control.tar*`,
//! `data.tar*`). It does not judge the control fields (that is repository
//! policy in `repo::validate`) and never unpacks the data member.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::ar::{self, read_up_to, HeaderError};
use super::control::{ControlError, Paragraph, MAX_CONTROL_BYTES};

/// A control member larger than this once decompressed is refused: real ones
/// hold a few scripts; a bigger one is a decompression bomb.
pub const MAX_CONTROL_TAR_BYTES: u64 = 16 << 20;

/// What inspection learned about a `.deb`.
#[derive(Debug, Clone)]
pub struct DebInfo {
    pub control: Paragraph,
    pub checksums: Checksums,
}

/// Size and digests of a whole file, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is empty")]
    Empty { path: PathBuf },
    #[error("{path} is not a Debian package: it is not an ar archive")]
    NotAr { path: PathBuf },
    #[error("{path} is not a Debian package: {problem}")]
    Format { path: PathBuf, problem: String },
    #[error("{path} is truncated: member `{member}` ends after {got} of {expected} bytes")]
    Truncated {
        path: PathBuf,
        member: String,
        got: u64,
        expected: u64,
    },
    #[error("{path} is truncated: the header of member #{number} ends after {got} of 60 bytes")]
    TruncatedHeader {
        path: PathBuf,
        number: usize,
        got: usize,
    },
    #[error("{path}: member `{member}` cannot be read")]
    Corrupt {
        path: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: `{member}` decompresses past the {limit}-byte limit for control data")]
    ControlTooLarge {
        path: PathBuf,
        member: String,
        limit: u64,
    },
    #[error("{path}: the control file is invalid")]
    Control {
        path: PathBuf,
        #[source]
        source: ControlError,
    },
}

impl DebError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DebError::Io { .. } => None,
            DebError::Truncated { .. }
            | DebError::TruncatedHeader { .. }
            | DebError::Empty { .. } => {
                Some("the upload or copy was cut short; send the whole file again".into())
            }
            DebError::Control { .. } => Some(
                "fix debian/control (or the builder's output) and build the package again; `dpkg-deb -I FILE` shows its control file".into(),
            ),
            _ => Some("build it with `dpkg-deb --build` or `repoctl build`; `dpkg-deb -I FILE` should be able to read it".into()),
        }
    }
}

/// Reads `path` once: the control paragraph and the checksums of every byte.
pub fn inspect(path: &Path) -> Result<DebInfo, DebError> {
    let file = File::open(path).map_err(|source| DebError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    inspect_reader(file, path)
}

/// As [`inspect`], from any reader; `path` names the file in errors.
pub fn inspect_reader<R: Read>(reader: R, path: &Path) -> Result<DebInfo, DebError> {
    let mut hashing = HashingReader::new(BufReader::with_capacity(1 << 16, reader));
    let control = read_members(&mut hashing, path)?;
    // Hash whatever follows the last member too: the checksums cover the file.
    io::copy(&mut hashing, &mut io::sink()).map_err(|source| DebError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(DebInfo {
        control,
        checksums: hashing.finish(),
    })
}

fn read_members<R: Read>(reader: &mut R, path: &Path) -> Result<Paragraph, DebError> {
    let format = |problem: &str| DebError::Format {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let mut magic = [0u8; 8];
    let got = read_up_to(reader, &mut magic).map_err(|source| DebError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if got == 0 {
        return Err(DebError::Empty {
            path: path.to_path_buf(),
        });
    }
    if got < magic.len() || &magic != ar::MAGIC {
        return Err(DebError::NotAr {
            path: path.to_path_buf(),
        });
    }
    let io_error = |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut index = 0;
    let mut control = None;
    let mut has_data = false;
    loop {
        let header = match ar::read_member_header(reader) {
            Ok(Some(header)) => header,
            Ok(None) => break,
            Err(HeaderError::Truncated { got }) => {
                return Err(DebError::TruncatedHeader {
                    path: path.to_path_buf(),
                    number: index + 1,
                    got,
                })
            }
            Err(HeaderError::Io(source)) => return Err(io_error(source)),
            Err(e) => return Err(format(&format!("member #{}: {e}", index + 1))),
        };
        let name = header.name;
        let expected = header.size;
        let mut entry = CountingReader {
            inner: (&mut *reader).take(expected),
            count: 0,
        };
        match (index, name.as_str()) {
            (0, "debian-binary") => {
                let mut version = String::new();
                (&mut entry)
                    .take(64)
                    .read_to_string(&mut version)
                    .map_err(|_| format("`debian-binary` is not text"))?;
                if !version.starts_with("2.") {
                    return Err(format(&format!(
                        "unsupported format version {:?} in `debian-binary` (expected 2.0)",
                        version.trim()
                    )));
                }
            }
            (0, _) => return Err(format("the first member is not `debian-binary`")),
            (_, n) if n.starts_with("control.tar") => {
                if control.is_some() {
                    return Err(format("it has two control members"));
                }
                control = Some(read_control_member(&mut entry, &name, path)?);
            }
            (_, n) if n.starts_with("data.tar") => has_data = true,
            _ => {}
        }
        // Consume the rest of the member so it is hashed and its length checked.
        io::copy(&mut entry, &mut io::sink()).map_err(|source| DebError::Corrupt {
            path: path.to_path_buf(),
            member: name.clone(),
            source,
        })?;
        let read = entry.count;
        if read < expected {
            return Err(DebError::Truncated {
                path: path.to_path_buf(),
                member: name,
                got: read,
                expected,
            });
        }
        ar::skip_padding(reader, expected).map_err(io_error)?;
        index += 1;
    }
    if index == 0 {
        return Err(format("the ar archive has no members"));
    }
    if !has_data {
        return Err(format("it has no `data.tar` member"));
    }
    control.ok_or_else(|| format("it has no `control.tar` member"))
}

fn read_control_member<R: Read>(
    member: &mut R,
    name: &str,
    path: &Path,
) -> Result<Paragraph, DebError> {
    let corrupt = |source: io::Error| DebError::Corrupt {
        path: path.to_path_buf(),
        member: name.to_string(),
        source,
    };
    let decompressed: Box<dyn Read + '_> = match name {
        "control.tar" => Box::new(member),
        "control.tar.gz" => Box::new(flate2::read::MultiGzDecoder::new(member)),
        "control.tar.xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(member)),
        "control.tar.zst" => Box::new(zstd::stream::read::Decoder::new(member).map_err(corrupt)?),
        other => {
            return Err(DebError::Format {
                path: path.to_path_buf(),
                problem: format!("unsupported control member compression `{other}`"),
            })
        }
    };
    let limited = LimitReader {
        inner: decompressed,
        left: MAX_CONTROL_TAR_BYTES,
    };
    let mut tar = tar::Archive::new(limited);
    let too_large = || DebError::ControlTooLarge {
        path: path.to_path_buf(),
        member: name.to_string(),
        limit: MAX_CONTROL_TAR_BYTES,
    };
    let map_err = |e: io::Error| {
        if is_limit_error(&e) {
            too_large()
        } else {
            corrupt(e)
        }
    };
    let mut text = None;
    for entry in tar.entries().map_err(map_err)? {
        let mut entry = entry.map_err(map_err)?;
        let entry_path = entry.path().map_err(map_err)?.into_owned();
        let is_control = matches!(entry_path.to_str(), Some("./control" | "control"));
        if is_control && entry.header().entry_type().is_file() {
            if entry.size() > MAX_CONTROL_BYTES as u64 {
                return Err(DebError::Control {
                    path: path.to_path_buf(),
                    source: ControlError::TooLarge,
                });
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(map_err)?;
            text = Some(bytes);
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(map_err)?;
        }
    }
    // Drain the decompressor so the limit also covers trailing data.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(map_err)?;
    let bytes = text.ok_or_else(|| DebError::Format {
        path: path.to_path_buf(),
        problem: format!("`{name}` has no `./control` file"),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| DebError::Control {
        path: path.to_path_buf(),
        source: ControlError::NotUtf8,
    })?;
    Paragraph::parse(&text).map_err(|source| DebError::Control {
        path: path.to_path_buf(),
        source,
    })
}

/// Counts what a member yields: a short member ends early, without an error.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Fails (instead of truncating) once more than `left` bytes pass through.
struct LimitReader<R> {
    inner: R,
    left: u64,
}

const LIMIT_MESSAGE: &str = "decompression limit exceeded";

fn is_limit_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string() == LIMIT_MESSAGE
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(LIMIT_MESSAGE));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Size, MD5, SHA1 and SHA256 of a byte stream, computed in one pass.
pub struct MultiHasher {
    size: u64,
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
}

impl Default for MultiHasher {
    fn default() -> Self {
        MultiHasher {
            size: 0,
            md5: Md5::new(),
            sha1: Sha1::new(),
            sha256: Sha256::new(),
        }
    }
}

impl MultiHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        self.md5.update(data);
        self.sha1.update(data);
        self.sha256.update(data);
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

/// Hashes every byte read through it, so inspection reads the file once.
pub struct HashingReader<R> {
    inner: R,
    hasher: MultiHasher,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: MultiHasher::default(),
        }
    }

    pub fn finish(self) -> Checksums {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes every byte written through it (index files are hashed as written).
pub struct HashingWriter<W> {
    inner: W,
    hasher: MultiHasher,
}

impl<W: io::Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: MultiHasher::default(),
        }
    }

    pub fn finish(self) -> (W, Checksums) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: io::Write> io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            data.len()
        )
        .into_bytes();
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
        out
    }

    fn control_tar(control: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        tar.into_inner().unwrap()
    }

    fn deb(members: &[Vec<u8>]) -> Vec<u8> {
        let mut out = ar::MAGIC.to_vec();
        for m in members {
            out.extend_from_slice(m);
        }
        out
    }

    fn inspect_bytes(bytes: &[u8]) -> Result<DebInfo, DebError> {
        inspect_reader(bytes, Path::new("t.deb"))
    }

    #[test]
    fn reads_the_control_of_a_minimal_deb() {
        let bytes = deb(&[
            member("debian-binary", b"2.0\n"),
            member("control.tar", &control_tar("Package: a\nVersion: 1\n")),
            member("data.tar", b"x"),
        ]);
        let info = inspect_bytes(&bytes).unwrap();
        assert_eq!(info.control.get("Version"), Some("1"));
        assert_eq!(info.checksums.size, bytes.len() as u64);
    }

    #[test]
    fn ar_long_name_references_are_refused_without_panic_or_allocation() {
        // Found while writing the fuzz target (fuzz/seeds/deb_inspect/
        // regression-ar-*): the `ar` crate, used before, indexed a GNU name
        // table that was never read (`/99`: a panic) and allocated whatever
        // size a header gave for the table (`//`) or a BSD long name (`#1/…`).
        for name in ["/99", "//", "#1/9999999999"] {
            let bytes = deb(&[
                member("debian-binary", b"2.0\n"),
                member(name, b""),
                member("control.tar", &control_tar("Package: a\n")),
            ]);
            let err = inspect_bytes(&bytes).unwrap_err();
            assert!(
                matches!(&err, DebError::Format { problem, .. } if problem.contains("data.tar")),
                "{name}: {err}"
            );
        }
        let mut huge = member("//", b"");
        huge[48..58].copy_from_slice(b"9999999999");
        let bytes = deb(&[member("debian-binary", b"2.0\n"), huge]);
        let err = inspect_bytes(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DebError::Truncated {
                    got: 0,
                    expected: 9_999_999_999,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_file_cut_inside_a_member_header_is_truncated() {
        let mut bytes = deb(&[member("debian-binary", b"2.0\n")]);
        bytes.extend_from_slice(&member("control.tar", b"")[..20]);
        let err = inspect_bytes(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DebError::TruncatedHeader {
                    number: 2,
                    got: 20,
                    ..
                }
            ),
            "{err}"
        );
    }
}
