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
//! `threads`. Entries are in tree order (a directory, then its contents,
//! names compared byte-wise), owned by root:root, and their mtimes clamped
//! to `mtime`; gzip input is cut into [`GZIP_CHUNK`] pieces, each
//! compressed alone with the previous 32 KiB as dictionary (pigz's scheme),
//! and xz input into equal blocks of at most [`XZ_BLOCK`] whose size follows
//! from the trees alone ([`xz_block`]), so thread count never moves a
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
use liblzma::stream::{Check, Filters, LzmaOptions, MtStreamBuilder};
use liblzma::write::XzEncoder;
use md5::{Digest, Md5};
use tar::{EntryType as T, Header};
use walkdir::{DirEntry, WalkDir};

/// gzip level of both members: dpkg-deb's default for gzip.
pub const GZIP_LEVEL: u32 = 9;
/// xz preset: dpkg-deb's and xz's default, the base of our LZMA2 options.
pub const XZ_PRESET: u32 = 6;
/// Two changes to preset 6, measured with `xz -T2` on the 183 MB tar of a
/// venv (numpy, pandas) in 22.9 MB blocks: the match length at which the
/// encoder stops looking for a longer one, 32 instead of 64, takes 22% less
/// CPU for 1.5% more bytes; a 16 MiB dictionary (preset 7's) instead of
/// 8 MiB wins back all but 0.3% for 3% of CPU. Together: 19% less CPU,
/// 0.3% larger than preset 6, and still smaller than dpkg-deb's xz -6
/// with its 24 MiB blocks (bench/deb_writer.rs measures both). The cost is
/// memory: about 190 MiB per compression thread instead of 94 MiB; dpkg
/// needs 16 MiB to unpack.
pub const XZ_NICE_LEN: u32 = 32;
pub const XZ_DICT_SIZE: u32 = 16 << 20;
/// Bytes of tar per gzip piece. On a 183 MB venv tar, 4 MiB pieces came out
/// 0.002% smaller than one zlib stream (1 MiB: 0.006% larger).
pub const GZIP_CHUNK: usize = 4 << 20;
/// Most bytes of tar per xz block. Larger blocks compress better (on a 183
/// MB venv tar, 32 MiB came out 1.2% smaller than liblzma's default for
/// preset 6, 24 MiB, which dpkg-deb uses) but leave fewer to share out.
pub const XZ_BLOCK: u64 = 32 << 20;
const SCRIPTS: [&str; 4] = ["preinst", "postinst", "prerm", "postrm"];
/// Fields dpkg places after `Installed-Size` (dpkg's `Dpkg::Control::FieldsCore` order).
const AFTER_INSTALLED_SIZE: &str = "Pre-Depends Depends Recommends Suggests Enhances Conflicts \
    Breaks Replaces Provides Built-Using Section Priority Multi-Arch Homepage Description Tag Task";
const HINT_PATH: &str = "a .deb holds files, directories and symlinks, each at one path; \
    fix the tree (or create the rest in postinst), then build again";
/// Largest mtime both headers hold: 11 octal digits (tar) fit in 12 decimal ones (ar).
const MAX_MTIME: u64 = 0o777_7777_7777;

/// How `data.tar` is compressed (`control.tar` is always gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Something in a tree, an install path or the output path.
    #[error("cannot package {path}: {problem}")]
    Path {
        path: PathBuf,
        problem: &'static str,
    },
    /// A control field, a maintainer script, the mtime or a size limit.
    #[error("{what}: {problem}")]
    Spec { what: String, problem: &'static str },
}

impl DebWriteError {
    /// How to fix it, for the user.
    pub fn hint(&self) -> Option<String> {
        match self {
            DebWriteError::Path { .. } => Some(HINT_PATH.into()),
            DebWriteError::Spec { .. } => {
                Some("fix deploy.yml or the scripts in debian/, then build again".into())
            }
            DebWriteError::Read { .. } | DebWriteError::Write { .. } => None,
        }
    }

    fn path(path: &Path, problem: &'static str) -> Self {
        let path = path.to_path_buf();
        DebWriteError::Path { path, problem }
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> DebWriteError + '_ {
    |source| DebWriteError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> DebWriteError + '_ {
    |source| DebWriteError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the package to a temporary file beside `out`, then renames it to
/// `out`. Phases: check the spec; scan the trees (sorted, special files
/// refused); write `data.tar`, compressed, to a second temporary file,
/// hashing files as they stream; build `control.tar.gz`; assemble the ar
/// archive. On error nothing is left at `out` or beside it. No fsync: the
/// rename is for atomic visibility, and the file can be rebuilt.
pub fn write_deb(spec: &DebSpec, out: &Path) -> Result<DebStats, DebWriteError> {
    write_deb_reporting(spec, out, &mut |_| {})
}

/// [`write_deb`], telling `progress` how far the data member is after each file.
pub fn write_deb_reporting(
    spec: &DebSpec,
    out: &Path,
    progress: Progress,
) -> Result<DebStats, DebWriteError> {
    write_deb_in(spec, out, (GZIP_CHUNK, XZ_BLOCK), progress)
}

/// How far the data member is: bytes of file content written (and thus
/// handed to the compressor), out of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProgress {
    pub done: u64,
    pub total: u64,
}

pub type Progress<'a> = &'a mut dyn FnMut(DataProgress);

/// [`write_deb`] with the gzip chunk and xz block sizes given (tests make them small).
fn write_deb_in(
    spec: &DebSpec,
    out: &Path,
    sizes: (usize, u64),
    progress: Progress,
) -> Result<DebStats, DebWriteError> {
    check_spec(spec)?;
    let entries = scan(spec)?;
    let data = Scratch::beside(out, "data")?;
    let (mut stats, md5sums) = write_data(spec, &entries, &data.0, sizes, progress)?;
    let deb = Scratch::beside(out, "deb")?;
    let control = control_tar_gz(spec, stats.installed_size_kib, &md5sums);
    let control = control.map_err(write_err(&deb.0))?;
    stats.size = assemble(spec, &control, &data.0, &deb.0)?;
    fs::rename(&deb.0, out).map_err(write_err(out))?;
    Ok(stats)
}

fn check_spec(spec: &DebSpec) -> Result<(), DebWriteError> {
    let bad = |what: String, problem| Err(DebWriteError::Spec { what, problem });
    if spec.mtime > MAX_MTIME {
        return bad(format!("mtime {}", spec.mtime), "past the year 2242");
    }
    for (field, value) in &spec.control {
        let what = || format!("control field `{field}`");
        let graphic = field.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if field.is_empty() || field.starts_with(['#', '-']) || !graphic {
            return bad(what(), "not a valid field name");
        }
        if field.eq_ignore_ascii_case("Installed-Size") {
            return bad(what(), "the writer computes it; leave it out");
        }
        let mut rest = value.split('\n').skip(1);
        if rest.any(|l| !l.starts_with([' ', '\t']) || l.trim().is_empty()) {
            return bad(
                what(),
                "continuation lines start with a space, blank ones are ` .`",
            );
        }
    }
    for (i, (name, body)) in spec.scripts.iter().enumerate() {
        let what = || format!("maintainer script `{name}`");
        if !SCRIPTS.contains(&name.as_str()) {
            return bad(what(), "not preinst, postinst, prerm or postrm");
        }
        if spec.scripts[..i].iter().any(|(n, _)| n == name) {
            return bad(what(), "given twice");
        }
        if !body.starts_with(b"#!") {
            return bad(what(), "dpkg executes it, so it must start with `#!`");
        }
    }
    Ok(())
}

enum Kind {
    Dir,
    File(u64, PathBuf),
    Symlink(Vec<u8>),
}

impl Kind {
    /// Bytes of content (what progress counts).
    fn size(&self) -> u64 {
        match self {
            Kind::File(size, _) => *size,
            Kind::Dir | Kind::Symlink(_) => 0,
        }
    }
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

impl Entry {
    fn new(path: Vec<u8>, kind: Kind, mode: u32, mtime: u64) -> Entry {
        let made_up = false;
        Entry {
            path,
            kind,
            mode,
            mtime,
            made_up,
        }
    }

    fn made_up(path: Vec<u8>, mtime: u64) -> Entry {
        let made_up = true;
        Entry {
            made_up,
            ..Entry::new(path, Kind::Dir, 0o755, mtime)
        }
    }
}

/// The installed path of an entry: `./a/b` is `/a/b`.
fn installed(path: &[u8]) -> String {
    String::from_utf8_lossy(if path == b"." { b"/" } else { &path[1..] }).into_owned()
}

/// Every entry of every tree plus the parents of each install path, in
/// tree order; a made-up parent gives way to a real directory of the same
/// path.
fn scan(spec: &DebSpec) -> Result<Vec<Entry>, DebWriteError> {
    let mut entries = Vec::new();
    for dir in &spec.data {
        let bad = || DebWriteError::path(&dir.install_path, "not absolute and normal");
        let mut comps = dir.install_path.components();
        if comps.next() != Some(Component::RootDir) {
            return Err(bad());
        }
        let mut base = b".".to_vec();
        for comp in comps {
            let Component::Normal(name) = comp else {
                return Err(bad());
            };
            entries.push(Entry::made_up(base.clone(), spec.mtime));
            base.extend([b'/'].iter().chain(name.as_bytes()));
        }
        for item in WalkDir::new(&dir.source).follow_links(false) {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&dir.source).to_path_buf();
                read_err(&path)(e.into())
            })?;
            entries.push(entry(&item, &dir.source, &base, spec.mtime)?);
        }
    }
    // Tree order, as dpkg-deb and `tar --sort=name` write: a directory, then
    // its contents, names compared byte-wise. Sorting whole paths put
    // `numpy-2.4.6.dist-info/` (`-` sorts before `/`) ahead of `numpy/`
    // and came out 0.4-0.6% larger with xz on two venv trees.
    entries.sort_by(|a, b| components(&a.path).cmp(components(&b.path)));
    let mut sorted: Vec<Entry> = Vec::with_capacity(entries.len());
    for e in entries {
        match sorted.last_mut() {
            Some(last) if last.path == e.path => {
                let dirs = matches!((&last.kind, &e.kind), (Kind::Dir, Kind::Dir));
                if !dirs || !(last.made_up || e.made_up) {
                    let path = PathBuf::from(installed(&e.path));
                    return Err(DebWriteError::path(&path, "two data directories hold it"));
                }
                if last.made_up {
                    *last = e;
                }
            }
            _ => sorted.push(e),
        }
    }
    Ok(sorted)
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
}

/// The entry for `item` of the tree at `root`, installed under `base`.
fn entry(item: &DirEntry, root: &Path, base: &[u8], clamp: u64) -> Result<Entry, DebWriteError> {
    let source = item.path();
    let bad = |problem| Err(DebWriteError::path(source, problem));
    // lstat, except for the root itself: walkdir follows a root symlink.
    let meta = item.metadata().map_err(|e| read_err(source)(e.into()))?;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if item.depth() == 0 {
        return bad("a data source must be a directory");
    } else if ft.is_file() {
        Kind::File(meta.len(), source.to_path_buf())
    } else if ft.is_symlink() {
        let target = fs::read_link(source).map_err(read_err(source))?;
        Kind::Symlink(target.into_os_string().into_vec())
    } else if ft.is_fifo() {
        return bad("it is a named pipe (fifo)");
    } else if ft.is_socket() {
        return bad("it is a socket");
    } else {
        return bad("it is a device file");
    };
    let rel = source.strip_prefix(root).unwrap_or(Path::new(""));
    let rel = rel.as_os_str().as_bytes();
    let mut path = base.to_vec();
    if !rel.is_empty() {
        path.extend([b'/'].iter().chain(rel));
    }
    if path.contains(&b'\n') {
        return bad("md5sums cannot list a name with a newline");
    }
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0).min(clamp);
    Ok(Entry::new(path, kind, meta.mode() & 0o7777, mtime))
}

/// The xz block size for these entries: the tar cut into a multiple of four
/// equal blocks of at most `most` bytes, so that 1, 2 or 4 threads finish
/// together instead of one compressing the last block alone (with 32 MiB
/// blocks, a 183 MB tar left one of two cores idle for 3 of 96 MiB each).
/// Never below a quarter of `most` (8 MiB: smaller blocks compress worse), and
/// counted from the entries, not the threads, so the output stays the same.
fn xz_block(entries: &[Entry], most: u64) -> u64 {
    let tar: u64 = entries
        .iter()
        .map(|e| 512 + e.kind.size().next_multiple_of(512))
        .sum();
    let blocks = tar.div_ceil(4 * most) * 4;
    tar.div_ceil(blocks).clamp(most / 4, most)
}

/// Writes `data.tar` compressed to `tmp`; returns the stats so far and `md5sums`.
fn write_data(
    spec: &DebSpec,
    entries: &[Entry],
    tmp: &Path,
    sizes: (usize, u64),
    progress: Progress,
) -> DataResult {
    let threads = match spec.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let setup = |e: String| write_err(tmp)(io::Error::other(e));
    let file = BufWriter::with_capacity(1 << 20, File::create(tmp).map_err(write_err(tmp))?);
    let (summary, finished) = match spec.compression {
        Compression::Gzip => {
            let mut z = ParCompressBuilder::<Gzip>::new()
                .num_threads(threads)
                .and_then(|b| b.buffer_size(sizes.0))
                .map_err(|e| setup(e.to_string()))?
                .compression_level(gzp::Compression::new(GZIP_LEVEL))
                .from_writer(file);
            let summary = write_data_tar(entries, &mut z, tmp, progress);
            // Always finish: dropping an unfinished ParCompress panics after a write error.
            let finished = z.finish().map_err(io::Error::other);
            (summary, finished.and_then(|mut w| w.flush()))
        }
        Compression::Xz => {
            let mut lzma2 = LzmaOptions::new_preset(XZ_PRESET).map_err(|e| setup(e.to_string()))?;
            lzma2.nice_len(XZ_NICE_LEN).dict_size(XZ_DICT_SIZE);
            let mut filters = Filters::new();
            filters.lzma2(&lzma2);
            let stream = MtStreamBuilder::new()
                .threads(u32::try_from(threads).unwrap_or(u32::MAX))
                .block_size(xz_block(entries, sizes.1))
                .filters(filters)
                .check(Check::Crc64)
                .encoder()
                .map_err(|e| setup(e.to_string()))?;
            let mut z = XzEncoder::new_stream(file, stream);
            let summary = write_data_tar(entries, &mut z, tmp, progress);
            (summary, z.finish().and_then(|mut w| w.flush()))
        }
    };
    let summary = summary?;
    finished.map_err(write_err(tmp))?;
    Ok(summary)
}

type Copied = Result<([u8; 16], [u8; 4]), DebWriteError>;
type DataResult = Result<(DebStats, Vec<u8>), DebWriteError>;

fn write_data_tar(
    entries: &[Entry],
    w: &mut impl Write,
    tmp: &Path,
    progress: Progress,
) -> DataResult {
    let (mut sum, mut md5sums) = (DebStats::default(), Vec::new());
    let total = entries.iter().map(|e| e.kind.size()).sum();
    let mut done = DataProgress { done: 0, total };
    let mut buf = vec![0u8; 1 << 20];
    for e in entries {
        let (kind, name, link, size) = match &e.kind {
            Kind::Dir => (T::Directory, [&e.path[..], b"/"].concat(), &b""[..], 0),
            Kind::File(size, _) => (T::Regular, e.path.clone(), &b""[..], *size),
            Kind::Symlink(target) => (T::Symlink, e.path.clone(), &target[..], 0),
        };
        tar_header(w, &name, link, kind, e.mode, size, e.mtime).map_err(write_err(tmp))?;
        sum.installed_size_kib += match &e.kind {
            Kind::Dir => 1,
            Kind::Symlink(target) => (target.len() as u64).div_ceil(1024).max(1),
            Kind::File(size, source) => {
                let (md5, head) = copy_file(source, *size, w, &mut buf, tmp)?;
                pad(w, *size).map_err(write_err(tmp))?;
                // Sorted like the entries: every path shares the `./` prefix.
                md5sums.extend(format!("{}  ", hex::encode(md5)).as_bytes());
                md5sums.extend(&e.path[2..]);
                md5sums.push(b'\n');
                sum.files += 1;
                if head == *b"\x7fELF" {
                    sum.elf_files.push(installed(&e.path));
                }
                done.done += size;
                progress(done);
                size.div_ceil(1024).max(1)
            }
        };
    }
    w.write_all(&[0; 1024]).map_err(write_err(tmp))?;
    Ok((sum, md5sums))
}

/// Streams `size` bytes of `source` into `w`; returns their MD5 and first 4 bytes.
fn copy_file(source: &Path, size: u64, w: &mut impl Write, buf: &mut [u8], tmp: &Path) -> Copied {
    let changed = || Err(DebWriteError::path(source, "it changed while being read"));
    let mut f = File::open(source).map_err(read_err(source))?;
    let (mut md5, mut head, mut done) = (Md5::new(), [0u8; 4], 0usize);
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(source)(e)),
        };
        if (done + n) as u64 > size {
            return changed();
        }
        if done < 4 {
            let k = (4 - done).min(n);
            head[done..done + k].copy_from_slice(&buf[..k]);
        }
        md5.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(write_err(tmp))?;
        done += n;
    }
    if done as u64 != size {
        return changed();
    }
    Ok((md5.finalize().into(), head))
}

/// One GNU tar header, root:root, preceded by a `././@LongLink` entry ('L'
/// for the name, 'K' for the link target) for each over 100 bytes, as GNU
/// tar does. Names are written as given: the tar crate's `set_path` drops
/// the `./` of short names (but not of long ones), and dpkg-deb keeps it.
fn tar_header(
    w: &mut impl Write,
    name: &[u8],
    link: &[u8],
    kind: T,
    mode: u32,
    size: u64,
    mtime: u64,
) -> io::Result<()> {
    for (long, kind) in [(name, T::GNULongName), (link, T::GNULongLink)] {
        if long.len() > 100 {
            let data = [long, b"\0"].concat();
            let len = data.len() as u64;
            tar_header(w, b"././@LongLink", b"", kind, 0o644, len, 0)?;
            w.write_all(&data)?;
            pad(w, len)?;
        }
    }
    let mut h = Header::new_gnu();
    let (n, l) = (name.len().min(100), link.len().min(100));
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
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
    w.write_all(&[0; 512][..((512 - len % 512) % 512) as usize])
}

/// `control.tar.gz`: `./`, `./control`, `./md5sums` and the scripts, sorted.
fn control_tar_gz(spec: &DebSpec, kib: u64, md5sums: &[u8]) -> io::Result<Vec<u8>> {
    let mut control = String::new();
    let after = |f: &str| {
        AFTER_INSTALLED_SIZE
            .split(' ')
            .any(|a| a.eq_ignore_ascii_case(f))
    };
    let at = spec.control.iter().position(|(f, _)| after(f));
    for (i, (field, value)) in spec.control.iter().enumerate() {
        if at == Some(i) {
            control.push_str(&format!("Installed-Size: {kib}\n"));
        }
        control.push_str(&format!("{field}: {value}\n"));
    }
    if at.is_none() {
        control.push_str(&format!("Installed-Size: {kib}\n"));
    }
    let mut members = vec![
        ("control", control.as_bytes(), 0o644),
        ("md5sums", md5sums, 0o644),
    ];
    members.extend(
        spec.scripts
            .iter()
            .map(|(n, b)| (n.as_str(), &b[..], 0o755)),
    );
    members.sort_by_key(|m| m.0);

    let (mtime, level) = (spec.mtime, flate2::Compression::new(GZIP_LEVEL));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
    tar_header(&mut gz, b"./", b"", T::Directory, 0o755, 0, mtime)?;
    for (name, body, mode) in members {
        let (name, len) = (format!("./{name}"), body.len() as u64);
        tar_header(&mut gz, name.as_bytes(), b"", T::Regular, mode, len, mtime)?;
        gz.write_all(body)?;
        pad(&mut gz, len)?;
    }
    gz.write_all(&[0; 1024])?;
    gz.finish()
}

/// The ar archive as dpkg-deb writes it: `debian-binary`, `control.tar.gz`,
/// the data member; headers with the mtime, uid/gid 0, mode 100644.
fn assemble(spec: &DebSpec, control: &[u8], data: &Path, deb: &Path) -> Result<u64, DebWriteError> {
    let mut data_file = File::open(data).map_err(read_err(data))?;
    let data_len = data_file.metadata().map_err(read_err(data))?.len();
    if data_len > 9_999_999_999 {
        let what = format!("data.tar of {data_len} bytes");
        return Err(DebWriteError::Spec {
            what,
            problem: "too large",
        });
    }
    let mtime = spec.mtime;
    let ar_header =
        |name: &str, size: u64| format!("{name:<16}{mtime:<12}0     0     100644  {size:<10}`\n");
    let mut head = b"!<arch>\n".to_vec();
    for (name, body) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar.gz", control),
    ] {
        head.extend(ar_header(name, body.len() as u64).as_bytes());
        head.extend(body);
        head.extend(&b"\n"[..body.len() % 2]);
    }
    let member = match spec.compression {
        Compression::Gzip => "data.tar.gz",
        Compression::Xz => "data.tar.xz",
    };
    head.extend(ar_header(member, data_len).as_bytes());
    let mut write = || -> io::Result<u64> {
        let mut w = File::create(deb)?;
        w.write_all(&head)?;
        io::copy(&mut data_file, &mut w)?; // copy_file_range on Linux
        w.write_all(&b"\n"[..(data_len % 2) as usize])?;
        w.stream_position()
    };
    write().map_err(write_err(deb))
}

/// A temporary file beside the output, removed on drop (a no-op once renamed).
struct Scratch(PathBuf);

impl Scratch {
    fn beside(out: &Path, what: &str) -> Result<Scratch, DebWriteError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let Some(name) = out.file_name() else {
            return Err(DebWriteError::path(out, "the output path names no file"));
        };
        let (pid, seq) = (std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let name = format!(".{}.{what}.{pid}-{seq}.tmp", name.to_string_lossy());
        let path = out.with_file_name(name);
        let created = File::options().write(true).create_new(true).open(&path);
        created.map_err(write_err(&path))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::process::Command;

    const MTIME: u64 = 1_700_000_000; // 2023-11-14 22:13 UTC

    /// Files, an executable, an ELF file, symlinks (one with a 118-byte
    /// target), an empty dir, a 130-byte path, 1.5 MB of random bytes.
    fn tree(root: &Path) -> String {
        let long = "long-directory-name-".repeat(5);
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join(format!("lib/{long}"))).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        let files: [(&str, &[u8], u32); 4] = [
            ("README", b"hello\n", 0o644),
            ("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
            ("lib/fake.so", b"\x7fELF\x02\x01\x01 not really", 0o600),
            (&format!("lib/{long}/module.py"), b"x = 1\n", 0o644),
        ];
        for (name, body, mode) in files {
            fs::write(root.join(name), body).unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        let mut big = vec![0u8; 1_500_000];
        rand::thread_rng().fill_bytes(&mut big);
        fs::write(root.join("big.bin"), big).unwrap();
        symlink("tool", root.join("bin/python")).unwrap();
        symlink(format!("../lib/{long}/module.py"), root.join("bin/long")).unwrap();
        long
    }

    fn spec(source: &Path, compression: Compression, threads: usize) -> DebSpec {
        let control = [
            ("Package", "vrmd-test"),
            ("Version", "7"),
            ("Architecture", "all"),
            ("Maintainer", "Ops <ops@example.com>"),
            ("Depends", "python3"),
            ("Description", "Branch: main Commit: abc1234\n second line"),
        ];
        let control = control
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .to_vec();
        let scripts = vec![("postinst".into(), b"#!/bin/sh\nexit 0\n".to_vec())];
        let (source, install_path) = (source.into(), "/vrmd/test".into());
        let data = vec![DataDir {
            source,
            install_path,
        }];
        DebSpec {
            control,
            scripts,
            data,
            mtime: MTIME,
            compression,
            threads,
        }
    }

    fn run(args: &[&str]) -> Vec<u8> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("TZ", "UTC")
            .output();
        let out = out.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        out.stdout
    }

    fn text(args: &[&str]) -> String {
        String::from_utf8(run(args)).unwrap()
    }

    #[test]
    fn dpkg_deb_reads_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let long = tree(&src);
        // dpkg-gencontrol's sum, counted here from the tree: ./ and ./vrmd/ are 1 each.
        let mut kib = 2;
        for e in WalkDir::new(&src) {
            let meta = e.unwrap().metadata().unwrap();
            let blocks = meta.len().div_ceil(1024).max(1);
            kib += if meta.is_dir() { 1 } else { blocks };
        }
        for (compression, member) in [
            (Compression::Gzip, "data.tar.gz"),
            (Compression::Xz, "data.tar.xz"),
        ] {
            let deb = dir.path().join(format!("{compression:?}.deb"));
            let stats = write_deb(&spec(&src, compression, 2), &deb).unwrap();
            let d = deb.to_str().unwrap();
            let bytes = fs::read(&deb).unwrap();
            let ar = b"!<arch>\ndebian-binary   1700000000  0     0     100644  4         `\n2.0\n";
            assert!(bytes.starts_with(ar));
            let member = format!("{member:<16}1700000000  0     0     100644  ");
            assert!(bytes.windows(member.len()).any(|w| w == member.as_bytes()));
            assert_eq!(stats.size, bytes.len() as u64);
            assert_eq!((stats.installed_size_kib, stats.files), (kib, 5));
            assert_eq!(stats.elf_files, ["/vrmd/test/lib/fake.so"]);

            let info = text(&["dpkg-deb", "--info", d]);
            assert!(
                info.contains(" Package: vrmd-test\n") && info.contains(" *  postinst "),
                "{info}"
            );
            let fields = text(&["dpkg-deb", "--field", d]);
            let expect =
                format!("Ops <ops@example.com>\nInstalled-Size: {kib}\nDepends: python3\n");
            assert!(fields.contains(&expect), "{fields}");
            assert_eq!(
                text(&["dpkg-deb", "--field", d, "Installed-Size"]),
                format!("{kib}\n")
            );

            let listing = text(&["dpkg-deb", "--contents", d]);
            let mut names = Vec::new();
            for line in listing.lines() {
                let (meta, name) = line.split_once(" 2023-11-14 22:13 ").unwrap();
                assert!(meta.contains(" root/root "), "{line}");
                names.push(name.split(" -> ").next().unwrap().trim_end_matches('/'));
            }
            let tree_order = |w: &[&str]| w[0].split('/').lt(w[1].split('/'));
            assert!(names.windows(2).all(tree_order), "{listing}");
            assert_eq!(
                names[..4],
                [".", "./vrmd", "./vrmd/test", "./vrmd/test/README"]
            );
            for want in [
                "-rwxr-xr-x root/root        18 2023-11-14 22:13 ./vrmd/test/bin/tool\n",
                "-rw------- root/root        18 2023-11-14 22:13 ./vrmd/test/lib/fake.so\n",
                "lrwxrwxrwx root/root         0 2023-11-14 22:13 ./vrmd/test/bin/python -> tool\n",
                "drwxr-xr-x root/root         0 2023-11-14 22:13 ./vrmd/test/empty/\n",
                &format!(" ./vrmd/test/bin/long -> ../lib/{long}/module.py\n"),
                &format!(" ./vrmd/test/lib/{long}/module.py\n"),
            ] {
                assert!(listing.contains(want), "{want} not in\n{listing}");
            }

            // Raw tar: GNU headers only, long names as 'L'/'K' entries, never PAX.
            let tar = run(&["dpkg-deb", "--fsys-tarfile", d]);
            let (mut at, mut flags) = (0, String::new());
            while tar[at..at + 512].iter().any(|b| *b != 0) {
                let h = &tar[at..at + 512];
                assert_eq!(&h[257..265], b"ustar  \0");
                flags.push(h[156] as char);
                let size =
                    u64::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
                at += 512 + size.div_ceil(512) as usize * 512;
            }
            assert_eq!(flags.matches('L').count(), 2, "{flags}"); // the dir and the file
            assert_eq!(flags.matches('K').count(), 1, "{flags}");
            assert!(flags.chars().all(|c| "025LK".contains(c)), "{flags}");

            let x = dir.path().join(format!("x-{compression:?}"));
            text(&["dpkg-deb", "-x", d, x.to_str().unwrap()]);
            text(&["dpkg-deb", "-e", d, x.join("DEBIAN").to_str().unwrap()]);
            for e in WalkDir::new(&src) {
                let e = e.unwrap();
                let got = x
                    .join("vrmd/test")
                    .join(e.path().strip_prefix(&src).unwrap());
                let (want, meta) = (e.metadata().unwrap(), fs::symlink_metadata(&got).unwrap());
                assert_eq!(want.mode(), meta.mode(), "{}", got.display());
                if want.is_symlink() {
                    assert_eq!(
                        fs::read_link(e.path()).unwrap(),
                        fs::read_link(&got).unwrap()
                    );
                } else if want.is_file() {
                    assert_eq!(fs::read(e.path()).unwrap(), fs::read(&got).unwrap());
                }
            }
            let md5sums = fs::read_to_string(x.join("DEBIAN/md5sums")).unwrap();
            let lines: Vec<_> = md5sums.lines().collect();
            assert_eq!(lines.len(), 5);
            assert!(
                lines.windows(2).all(|w| w[0][34..] < w[1][34..]),
                "{md5sums}"
            );
            for line in lines {
                let (sum, path) = line.split_once("  ").unwrap();
                assert!(path.starts_with("vrmd/test/"), "{line}");
                assert_eq!(
                    sum,
                    hex::encode(Md5::digest(fs::read(x.join(path)).unwrap()))
                );
            }
            let postinst = fs::metadata(x.join("DEBIAN/postinst")).unwrap();
            assert_eq!(postinst.mode() & 0o777, 0o755);
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let entries = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
        entries.map(|n| n.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn entries_are_in_tree_order_like_dpkg_deb() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for file in ["pkg/mod.py", "pkg-1.0.dist-info/RECORD", "pkg.py"] {
            fs::create_dir_all(src.join(file).parent().unwrap()).unwrap();
            fs::write(src.join(file), "x = 1\n").unwrap();
        }
        let entries = scan(&spec(&src, Compression::Gzip, 1)).unwrap();
        let paths: Vec<_> = entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path))
            .collect();
        // Whole paths sorted would put `pkg-1.0.dist-info` and `pkg.py`
        // (`-` and `.` sort before `/`) between `pkg` and `pkg/mod.py`.
        assert_eq!(
            paths,
            [
                ".",
                "./vrmd",
                "./vrmd/test",
                "./vrmd/test/pkg",
                "./vrmd/test/pkg/mod.py",
                "./vrmd/test/pkg-1.0.dist-info",
                "./vrmd/test/pkg-1.0.dist-info/RECORD",
                "./vrmd/test/pkg.py",
            ]
        );
    }

    #[test]
    fn same_input_gives_same_bytes_with_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        for compression in [Compression::Gzip, Compression::Xz] {
            let deb = |threads, small: bool| {
                let out = dir
                    .path()
                    .join(format!("{compression:?}-{threads}-{small}.deb"));
                let spec = spec(&src, compression, threads);
                // Small pieces: 1.5 MB spans 23 gzip chunks and 8 xz blocks.
                let sizes = if small {
                    (64 << 10, 256 << 10)
                } else {
                    (GZIP_CHUNK, XZ_BLOCK)
                };
                write_deb_in(&spec, &out, sizes, &mut |_| {}).unwrap();
                fs::read(&out).unwrap()
            };
            let one = deb(1, true);
            assert!(
                one == deb(4, true) && one == deb(1, true),
                "{compression:?}"
            );
            assert!(deb(0, false) == deb(3, false), "{compression:?}");
        }
        assert!(names(dir.path()).iter().all(|n| !n.ends_with(".tmp")));
    }

    #[test]
    fn progress_counts_file_bytes_up_to_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        let mut seen = Vec::new();
        let spec = spec(&src, Compression::Gzip, 1);
        write_deb_reporting(&spec, &dir.path().join("out.deb"), &mut |p| seen.push(p)).unwrap();
        let total = seen[0].total;
        assert!(total > 1_500_000, "{total}");
        assert!(seen
            .windows(2)
            .all(|w| w[0].done <= w[1].done && w[1].total == total));
        assert_eq!(seen.last().unwrap().done, total);
    }

    #[test]
    fn refusals_name_the_culprit_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("src"), dir.path().join("out.deb"));
        tree(&src);
        let socket = src.join("bin/agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = write_deb(&spec(&src, Compression::Gzip, 1), &out).unwrap_err();
        let want = format!("cannot package {}: it is a socket", socket.display());
        assert_eq!(err.to_string(), want);
        assert_eq!(names(dir.path()), ["src"]);

        let mut s = spec(&src, Compression::Xz, 1);
        s.control.push(("Installed-Size".into(), "1".into()));
        let err = write_deb(&s, &out).unwrap_err().to_string();
        assert!(err.starts_with("control field `Installed-Size`"), "{err}");
        s.control.pop();
        s.scripts.push(("control".into(), b"#!/bin/sh\n".to_vec()));
        let err = write_deb(&s, &out).unwrap_err().to_string();
        assert!(err.starts_with("maintainer script `control`"), "{err}");
    }
}
