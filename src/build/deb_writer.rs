//! The .deb writer: directory trees and control fields into a binary package
//! that dpkg from Ubuntu precise (1.16) onwards installs.
//!
//! Owns the container: the ar archive (`debian-binary`, `control.tar.gz`,
//! `data.tar.xz` or `.gz`), GNU tar entries (long names as `././@LongLink`
//! entries: dpkg refuses PAX headers), `md5sums`, `Installed-Size`, and
//! reproducibility. Does not own what goes into the trees (venv, pipeline),
//! the control fields' content, or the package's file name.
//!
//! Determinism contract: the same trees (contents, modes, symlinks, mtimes up
//! to the clamp), fields, scripts and `mtime` give the same bytes with any
//! `threads`. Entries are sorted by path, owned by root:root, and their mtimes
//! clamped to `mtime`; gzip input is cut into [`GZIP_CHUNK`] pieces, each
//! compressed alone with the previous 32 KiB as dictionary (pigz's scheme),
//! and xz input into [`XZ_BLOCK`] blocks, so thread count never moves a
//! boundary. Bytes may differ between builds linking another zlib or liblzma.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gzp::deflate::Gzip;
use gzp::par::compress::ParCompressBuilder;
use gzp::ZWriter;
use liblzma::stream::{Check, MtStreamBuilder};
use liblzma::write::XzEncoder;
use md5::{Digest, Md5};
use tar::{EntryType, Header};

/// gzip level of both members: dpkg-deb's default for gzip.
pub const GZIP_LEVEL: u32 = 9;
/// xz preset: dpkg-deb's and xz's default.
pub const XZ_PRESET: u32 = 6;
/// Bytes of tar per independently compressed gzip piece.
pub const GZIP_CHUNK: usize = 1 << 20;
/// Bytes of tar per xz block: liblzma's default for preset 6 (3 × 8 MiB dictionary).
pub const XZ_BLOCK: u64 = 24 << 20;
const SCRIPTS: [&str; 4] = ["preinst", "postinst", "prerm", "postrm"];
/// Fields dpkg places after `Installed-Size` (dpkg's `Dpkg::Control::FieldsCore` order).
const AFTER_INSTALLED_SIZE: &str = "Pre-Depends Depends Recommends Suggests Enhances Conflicts \
    Breaks Replaces Provides Built-Using Section Priority Multi-Arch Homepage Description Tag Task";
/// Largest mtime both headers hold: 11 octal digits (tar) fit in 12 decimal ones (ar).
const MAX_MTIME: u64 = 0o777_7777_7777;
/// The ar size field holds 10 decimal digits.
const MAX_AR_MEMBER: u64 = 9_999_999_999;

/// How `data.tar` is compressed (`control.tar` is always gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
}

impl Compression {
    fn member(self) -> &'static str {
        match self {
            Compression::Gzip => "data.tar.gz",
            Compression::Xz => "data.tar.xz",
        }
    }
}

/// A directory on disk whose contents install at `install_path`.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub source: PathBuf,
    /// Absolute and normalised, e.g. `/vrmd/whois`.
    pub install_path: PathBuf,
}

/// Everything a package is made of.
#[derive(Debug, Clone)]
pub struct DebSpec {
    /// Control fields in order, without `Installed-Size` (computed and put
    /// where dpkg puts it: before the first relation or descriptive field).
    /// Continuation lines of a value start with a space.
    pub control: Vec<(String, String)>,
    /// Maintainer scripts (`preinst`, `postinst`, `prerm`, `postrm`), mode 0755.
    pub scripts: Vec<(String, Vec<u8>)>,
    pub data: Vec<DataDir>,
    /// Every mtime is clamped to this (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
    pub compression: Compression,
    /// Compression threads (0 = one per core). Does not change the output.
    pub threads: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebStats {
    /// Bytes of the `.deb`.
    pub size: u64,
    /// As dpkg-gencontrol: each regular file and symlink ceil(size / 1024),
    /// at least 1; each directory (`./` and made-up parents included) 1.
    pub installed_size_kib: u64,
    /// Regular files in `data.tar` (hard links count once per name).
    pub files: u64,
    /// Installed paths of files starting with `\x7fELF`, sorted.
    pub elf_files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DebWriteError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot package {path}: it is a {kind}")]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error("{path} changed size while it was being packaged")]
    Changed { path: PathBuf },
    #[error("cannot package {path}: {problem}")]
    BadPath {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("two data directories both put `{path}` in the package")]
    Duplicate { path: String },
    #[error("control field `{field}`: {problem}")]
    Control {
        field: String,
        problem: &'static str,
    },
    #[error("maintainer script `{name}`: {problem}")]
    Script { name: String, problem: &'static str },
    #[error("mtime {mtime} is past what tar and ar headers hold ({MAX_MTIME})")]
    Mtime { mtime: u64 },
    #[error("data member of {size} bytes is past the ar format's limit ({MAX_AR_MEMBER})")]
    TooLarge { size: u64 },
}

impl DebWriteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DebWriteError::SpecialFile { .. } => Some(
                "a .deb holds only files, directories and symlinks; remove it from the tree (or create it in postinst)".into(),
            ),
            DebWriteError::Changed { .. } => {
                Some("something is still writing into the tree; build again once it is done".into())
            }
            DebWriteError::Control { .. } | DebWriteError::Script { .. } => {
                Some("fix the app's deploy.yml or debian/ directory and build again".into())
            }
            _ => None,
        }
    }
}

/// Writes the package to a temporary file beside `out`, then renames it to
/// `out`. Phases: check the spec, scan the trees (sorted, special files
/// refused), write `data.tar` compressed to a second temporary file (hashing
/// as it goes), build `control.tar.gz`, assemble the ar archive. On error
/// nothing is left at `out` or beside it. No fsync: the file is rebuildable.
pub fn write_deb(spec: &DebSpec, out: &Path) -> Result<DebStats, DebWriteError> {
    write_deb_in(spec, out, GZIP_CHUNK, XZ_BLOCK)
}

fn write_deb_in(
    spec: &DebSpec,
    out: &Path,
    gzip_chunk: usize,
    xz_block: u64,
) -> Result<DebStats, DebWriteError> {
    check_spec(spec)?;
    let entries = scan(spec)?;
    let (data_tmp, data_file) = Scratch::beside(out, "data")?;
    let sum = write_data(spec, &entries, data_file, &data_tmp.0, gzip_chunk, xz_block)?;
    let control = control_tar_gz(spec, &sum).map_err(|source| write_err(&data_tmp.0, source))?;

    let (deb_tmp, deb_file) = Scratch::beside(out, "deb")?;
    let mut data = File::open(&data_tmp.0).map_err(|source| read_err(&data_tmp.0, source))?;
    let data_len = data.metadata().map_err(|e| read_err(&data_tmp.0, e))?.len();
    if data_len > MAX_AR_MEMBER {
        return Err(DebWriteError::TooLarge { size: data_len });
    }
    let mut head = b"!<arch>\n".to_vec();
    ar_member(&mut head, "debian-binary", spec.mtime, b"2.0\n");
    ar_member(&mut head, "control.tar.gz", spec.mtime, &control);
    head.extend(ar_header(spec.compression.member(), spec.mtime, data_len));
    let size = assemble(deb_file, &head, &mut data, data_len)
        .map_err(|source| write_err(&deb_tmp.0, source))?;
    fs::rename(&deb_tmp.0, out).map_err(|source| write_err(out, source))?;
    Ok(DebStats {
        size,
        installed_size_kib: sum.installed_kib,
        files: sum.files,
        elf_files: sum.elf,
    })
}

/// The ar archive: `head` (members up to the data member's header), the data, padding.
fn assemble(mut w: File, head: &[u8], data: &mut File, data_len: u64) -> io::Result<u64> {
    w.write_all(head)?;
    io::copy(data, &mut w)?; // copy_file_range on Linux
    if data_len % 2 == 1 {
        w.write_all(b"\n")?;
    }
    w.seek(io::SeekFrom::End(0))
}

fn check_spec(spec: &DebSpec) -> Result<(), DebWriteError> {
    if spec.mtime > MAX_MTIME {
        return Err(DebWriteError::Mtime { mtime: spec.mtime });
    }
    for (field, value) in &spec.control {
        let bad = |problem| DebWriteError::Control {
            field: field.clone(),
            problem,
        };
        if field.is_empty()
            || field.starts_with(['#', '-'])
            || !field.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        {
            return Err(bad(
                "a field name is printable ASCII without `:`, not starting with `#` or `-`",
            ));
        }
        if field.eq_ignore_ascii_case("Installed-Size") {
            return Err(bad("the writer computes it; leave it out"));
        }
        if value
            .split('\n')
            .skip(1)
            .any(|l| !l.starts_with([' ', '\t']) || l.trim().is_empty())
        {
            return Err(bad(
                "continuation lines must start with a space and must not be empty (use ` .`)",
            ));
        }
    }
    for (i, (name, body)) in spec.scripts.iter().enumerate() {
        let bad = |problem| DebWriteError::Script {
            name: name.clone(),
            problem,
        };
        if !SCRIPTS.contains(&name.as_str()) {
            return Err(bad(
                "only preinst, postinst, prerm and postrm are supported",
            ));
        }
        if spec.scripts[..i].iter().any(|(n, _)| n == name) {
            return Err(bad("given twice"));
        }
        if !body.starts_with(b"#!") {
            return Err(bad("must start with `#!` (dpkg executes it)"));
        }
    }
    Ok(())
}

enum Kind {
    Dir,
    File(u64, PathBuf),
    Symlink(Vec<u8>),
}

/// One `data.tar` entry; `path` is `.` or `./a/b`, without a trailing `/`.
struct Entry {
    path: Vec<u8>,
    kind: Kind,
    mode: u32,
    mtime: u64,
    /// A parent directory of an install path, not from a tree.
    made_up: bool,
}

/// The installed path of an entry: `./a/b` is `/a/b`.
fn installed(path: &[u8]) -> String {
    String::from_utf8_lossy(if path == b"." { b"/" } else { &path[1..] }).into_owned()
}

/// Every entry of every tree plus the parents of each install path, sorted
/// by path; a made-up parent gives way to a real directory of the same path.
fn scan(spec: &DebSpec) -> Result<Vec<Entry>, DebWriteError> {
    let mut entries = Vec::new();
    for dir in &spec.data {
        let bad = |problem| DebWriteError::BadPath {
            path: dir.install_path.clone(),
            problem,
        };
        let mut comps = dir.install_path.components();
        if comps.next() != Some(Component::RootDir) {
            return Err(bad("an install path must be absolute"));
        }
        let mut base = b".".to_vec();
        for comp in comps {
            let Component::Normal(name) = comp else {
                return Err(bad("an install path must not hold `.` or `..`"));
            };
            entries.push(Entry {
                path: base.clone(),
                kind: Kind::Dir,
                mode: 0o755,
                mtime: spec.mtime,
                made_up: true,
            });
            base.extend([b'/'].iter().chain(name.as_bytes()));
        }
        for item in walkdir::WalkDir::new(&dir.source).follow_links(false) {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&dir.source).to_path_buf();
                read_err(&path, e.into())
            })?;
            let e = entry(&item, &dir.source, &base, spec.mtime)?;
            if item.depth() == 0 && !matches!(e.kind, Kind::Dir) {
                return Err(DebWriteError::BadPath {
                    path: dir.source.clone(),
                    problem: "a data source must be a directory",
                });
            }
            entries.push(e);
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sorted: Vec<Entry> = Vec::with_capacity(entries.len());
    for e in entries {
        match sorted.last_mut() {
            Some(last) if last.path == e.path => match (&last.kind, &e.kind) {
                (Kind::Dir, Kind::Dir) if e.made_up => {}
                (Kind::Dir, Kind::Dir) if last.made_up => *last = e,
                _ => {
                    return Err(DebWriteError::Duplicate {
                        path: installed(&e.path),
                    })
                }
            },
            _ => sorted.push(e),
        }
    }
    Ok(sorted)
}

/// The entry for `item` of the tree at `root`, installed under `base`.
fn entry(
    item: &walkdir::DirEntry,
    root: &Path,
    base: &[u8],
    clamp: u64,
) -> Result<Entry, DebWriteError> {
    let source = item.path();
    // Not followed, except for the root itself (walkdir's `follow_root_links`).
    let meta = item.metadata().map_err(|e| read_err(source, e.into()))?;
    let special = |kind| DebWriteError::SpecialFile {
        path: source.to_path_buf(),
        kind,
    };
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File(meta.len(), source.to_path_buf())
    } else if ft.is_symlink() {
        Kind::Symlink(
            fs::read_link(source)
                .map_err(|e| read_err(source, e))?
                .into_os_string()
                .into_vec(),
        )
    } else if ft.is_fifo() {
        return Err(special("named pipe (fifo)"));
    } else if ft.is_socket() {
        return Err(special("socket"));
    } else {
        return Err(special("device file"));
    };
    let mut path = base.to_vec();
    for comp in source
        .strip_prefix(root)
        .unwrap_or(Path::new(""))
        .components()
    {
        path.extend([b'/'].iter().chain(comp.as_os_str().as_bytes()));
    }
    if path.contains(&b'\n') {
        return Err(DebWriteError::BadPath {
            path: source.to_path_buf(),
            problem: "a newline in a file name cannot be listed in md5sums",
        });
    }
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0).min(clamp);
    Ok(Entry {
        path,
        kind,
        mode: meta.mode() & 0o7777,
        mtime,
        made_up: false,
    })
}

/// What writing `data.tar` learned for the control member and the stats.
struct DataSummary {
    md5sums: Vec<u8>,
    installed_kib: u64,
    files: u64,
    elf: Vec<String>,
}

fn write_data(
    spec: &DebSpec,
    entries: &[Entry],
    file: File,
    tmp: &Path,
    gzip_chunk: usize,
    xz_block: u64,
) -> Result<DataSummary, DebWriteError> {
    let threads = match spec.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let setup = |e: String| write_err(tmp, io::Error::other(e));
    let buffered = BufWriter::with_capacity(1 << 20, file);
    let (summary, finished) = match spec.compression {
        Compression::Gzip => {
            let mut z = ParCompressBuilder::<Gzip>::new()
                .num_threads(threads)
                .and_then(|b| b.buffer_size(gzip_chunk))
                .map_err(|e| setup(e.to_string()))?
                .compression_level(gzp::Compression::new(GZIP_LEVEL))
                .from_writer(buffered);
            let summary = write_data_tar(entries, &mut z, tmp);
            // Always finish: dropping an unfinished ParCompress panics on write errors.
            let finished = z.finish().map_err(io::Error::other);
            (summary, finished.and_then(|mut w| w.flush()))
        }
        Compression::Xz => {
            let stream = MtStreamBuilder::new()
                .threads(u32::try_from(threads).unwrap_or(u32::MAX))
                .block_size(xz_block)
                .preset(XZ_PRESET)
                .check(Check::Crc64)
                .encoder()
                .map_err(|e| setup(e.to_string()))?;
            let mut z = XzEncoder::new_stream(buffered, stream);
            let summary = write_data_tar(entries, &mut z, tmp);
            (summary, z.finish().and_then(|mut w| w.flush()))
        }
    };
    let summary = summary?;
    finished.map_err(|source| write_err(tmp, source))?;
    Ok(summary)
}

fn write_data_tar<W: Write>(
    entries: &[Entry],
    w: &mut W,
    tmp: &Path,
) -> Result<DataSummary, DebWriteError> {
    let mut sum = DataSummary {
        md5sums: Vec::new(),
        installed_kib: 0,
        files: 0,
        elf: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 20];
    let werr = |source| write_err(tmp, source);
    for e in entries {
        let mut name = e.path.clone();
        if matches!(e.kind, Kind::Dir) {
            name.push(b'/');
        }
        match &e.kind {
            Kind::File(size, source) => {
                tar_header(w, &name, b"", EntryType::Regular, e.mode, *size, e.mtime)
                    .map_err(werr)?;
                let (md5, head) = copy_file(source, *size, w, &mut buf, tmp)?;
                pad(w, *size).map_err(werr)?;
                sum.md5sums.extend(
                    format!("{}  ", hex::encode(md5))
                        .bytes()
                        .chain(e.path[2..].iter().copied()),
                );
                sum.md5sums.push(b'\n');
                sum.installed_kib += size.div_ceil(1024).max(1);
                sum.files += 1;
                if head == *b"\x7fELF" {
                    sum.elf.push(installed(&e.path));
                }
            }
            Kind::Symlink(target) => {
                tar_header(w, &name, target, EntryType::Symlink, e.mode, 0, e.mtime)
                    .map_err(werr)?;
                sum.installed_kib += (target.len() as u64).div_ceil(1024).max(1);
            }
            Kind::Dir => {
                tar_header(w, &name, b"", EntryType::Directory, e.mode, 0, e.mtime)
                    .map_err(werr)?;
                sum.installed_kib += 1;
            }
        }
    }
    w.write_all(&[0; 1024]).map_err(werr)?;
    // Entries are sorted, so md5sums lines are too (same order after `./`).
    Ok(sum)
}

/// Streams `size` bytes of `source` into `w`; returns their MD5 and first 4 bytes.
fn copy_file<W: Write>(
    source: &Path,
    size: u64,
    w: &mut W,
    buf: &mut [u8],
    tmp: &Path,
) -> Result<([u8; 16], [u8; 4]), DebWriteError> {
    let mut f = File::open(source).map_err(|e| read_err(source, e))?;
    let (mut md5, mut head, mut done) = (Md5::new(), [0u8; 4], 0u64);
    loop {
        let n = match f.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(source, e)),
        };
        if n == 0 {
            break;
        }
        if done + n as u64 > size {
            return Err(DebWriteError::Changed {
                path: source.to_path_buf(),
            });
        }
        if done < 4 {
            let k = (4 - done as usize).min(n);
            head[done as usize..done as usize + k].copy_from_slice(&buf[..k]);
        }
        md5.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| write_err(tmp, e))?;
        done += n as u64;
    }
    if done != size {
        return Err(DebWriteError::Changed {
            path: source.to_path_buf(),
        });
    }
    Ok((md5.finalize().into(), head))
}

/// One GNU tar header, preceded by `././@LongLink` entries ('L' for the
/// name, 'K' for the link target) when either is over 100 bytes, as GNU tar
/// does. The name bytes are written as given (the tar crate's `set_path`
/// would drop the `./` prefix of short names but not of long ones).
fn tar_header(
    w: &mut impl Write,
    name: &[u8],
    link: &[u8],
    kind: EntryType,
    mode: u32,
    size: u64,
    mtime: u64,
) -> io::Result<()> {
    for (long, flag) in [(name, b'L'), (link, b'K')] {
        if long.len() > 100 {
            let data = [long, b"\0"].concat();
            tar_header(
                w,
                b"././@LongLink",
                b"",
                EntryType::new(flag),
                0o644,
                data.len() as u64,
                0,
            )?;
            w.write_all(&data)?;
            pad(w, data.len() as u64)?;
        }
    }
    let mut h = Header::new_gnu();
    let old = h.as_old_mut();
    old.name[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    old.linkname[..link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    w.write_all(h.as_bytes())
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rest = (512 - len % 512) % 512;
    w.write_all(&[0; 512][..rest as usize])
}

/// `control.tar.gz`: `./`, `./control`, `./md5sums` and the scripts, sorted.
fn control_tar_gz(spec: &DebSpec, sum: &DataSummary) -> io::Result<Vec<u8>> {
    let size = sum.installed_kib.to_string();
    let mut fields: Vec<(&str, &str)> = spec
        .control
        .iter()
        .map(|(f, v)| (f.as_str(), v.as_str()))
        .collect();
    let at = fields
        .iter()
        .position(|(f, _)| {
            AFTER_INSTALLED_SIZE
                .split_whitespace()
                .any(|a| a.eq_ignore_ascii_case(f))
        })
        .unwrap_or(fields.len());
    fields.insert(at, ("Installed-Size", &size));
    let control: String = fields.iter().map(|(f, v)| format!("{f}: {v}\n")).collect();
    let mut members: Vec<(&str, &[u8], u32)> = vec![
        ("control", control.as_bytes(), 0o644),
        ("md5sums", &sum.md5sums, 0o644),
    ];
    members.extend(
        spec.scripts
            .iter()
            .map(|(n, body)| (n.as_str(), body.as_slice(), 0o755)),
    );
    members.sort_by_key(|m| m.0);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    tar_header(
        &mut gz,
        b"./",
        b"",
        EntryType::Directory,
        0o755,
        0,
        spec.mtime,
    )?;
    for (name, body, mode) in members {
        let name = format!("./{name}");
        tar_header(
            &mut gz,
            name.as_bytes(),
            b"",
            EntryType::Regular,
            mode,
            body.len() as u64,
            spec.mtime,
        )?;
        gz.write_all(body)?;
        pad(&mut gz, body.len() as u64)?;
    }
    gz.write_all(&[0; 1024])?;
    gz.finish()
}

/// An ar member header as dpkg-deb writes it: uid/gid 0, mode 100644.
fn ar_header(name: &str, mtime: u64, size: u64) -> Vec<u8> {
    format!(
        "{name:<16}{mtime:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
        0, 0, 100644
    )
    .into_bytes()
}

fn ar_member(out: &mut Vec<u8>, name: &str, mtime: u64, data: &[u8]) {
    out.extend(ar_header(name, mtime, data.len() as u64));
    out.extend(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
}

fn read_err(path: &Path, source: io::Error) -> DebWriteError {
    DebWriteError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path, source: io::Error) -> DebWriteError {
    DebWriteError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary file beside the output, removed on drop unless renamed away.
struct Scratch(PathBuf);

impl Scratch {
    fn beside(out: &Path, what: &str) -> Result<(Scratch, File), DebWriteError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = out.file_name().ok_or_else(|| DebWriteError::BadPath {
            path: out.to_path_buf(),
            problem: "the output path names no file",
        })?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = format!(
            ".{}.{what}.{}-{seq}.tmp",
            name.to_string_lossy(),
            std::process::id()
        );
        let path = out.with_file_name(tmp);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path);
        let file = file.map_err(|source| write_err(&path, source))?;
        Ok((Scratch(path), file))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0); // already gone once renamed
    }
}
