//! `Packages` indices: rendering one dist/component/architecture from the
//! catalog into `Packages`, `Packages.gz` and `Packages.xz`, streamed.
//!
//! The text is cut into chunks at package-name boundaries chosen by a hash of
//! the name, so adding one package changes one chunk. Each chunk is compressed
//! once (a gzip member and an xz block) and cached by the SHA256 of its text in
//! `state/index-cache.sqlite`; an index file is the concatenation of its
//! chunks (multi-member gzip; one xz stream of several blocks, because apt
//! reads only the first xz stream). The cache is disposable: deleting it only
//! costs one slower publish.
//!
//! Owns the index byte format and the chunk cache. It does not decide which
//! indices to write (that is `publish`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::catalog::{self, IndexQueryError};
use super::compress::{CompressError, GzipMember, GzipWriter, XzBlock, XzStreamWriter};
use crate::deb::inspect::{Checksums, HashingWriter, MultiHasher};
use crate::deb::version::Version;

/// A chunk never closes before this size, so small stanzas still compress well.
const MIN_CHUNK: usize = 48 << 10;
/// A chunk always closes past this size, whatever the names hash to.
const MAX_CHUNK: usize = 1 << 20;
/// After `MIN_CHUNK`, one name in this many starts a new chunk.
const BOUNDARY_ONE_IN: u64 = 16;
/// Cached chunks unused for this long are dropped.
const CACHE_TTL_SECS: i64 = 30 * 24 * 3600;

/// Size and digests of the three files of one index.
#[derive(Debug, Clone)]
pub struct IndexSums {
    /// The uncompressed text, listed in Release whether or not it is on disk.
    pub plain: Checksums,
    pub gzip: Checksums,
    pub xz: Checksums,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot write index file {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the catalog could not be read for {index}")]
    Catalog {
        index: String,
        #[source]
        source: IndexQueryError,
    },
    #[error("the index chunk cache failed")]
    Cache(#[from] rusqlite::Error),
    #[error("cannot write index file {path}")]
    Compress {
        path: String,
        #[source]
        source: CompressError,
    },
}

/// The compressed-chunk cache (`state/index-cache.sqlite`).
pub struct ChunkCache {
    conn: Connection,
    used: Vec<[u8; 32]>,
}

impl ChunkCache {
    pub fn open(path: &Path) -> Result<ChunkCache, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A lost cache entry costs a recompression, never correctness.
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "cache_size", -256)?;
        conn.execute_batch(
            // The blobs never change; last use lives in its own small table
            // because SQLite rewrites a whole row (blobs included) on UPDATE.
            "CREATE TABLE IF NOT EXISTS chunks (
                 sha256  BLOB PRIMARY KEY,
                 gzip    BLOB NOT NULL,
                 xz      BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS chunk_use (
                 sha256  BLOB PRIMARY KEY,
                 used_at INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(ChunkCache {
            conn,
            used: Vec::new(),
        })
    }

    /// The gzip member and xz block for `text`, from the cache or fresh.
    /// A damaged cache entry is a miss: the chunk is compressed again.
    fn compressed(&mut self, text: &[u8]) -> Result<(GzipMember, XzBlock), CompressError> {
        let key: [u8; 32] = Sha256::digest(text).into();
        self.used.push(key);
        let cached: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT gzip, xz FROM chunks WHERE sha256 = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([&key[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .unwrap_or(None);
        if let Some((gzip, xz)) = cached {
            if let (Ok(member), Ok(block)) = (
                GzipMember::from_cache_bytes(&gzip),
                XzBlock::from_cache_bytes(&xz),
            ) {
                return Ok((member, block));
            }
        }
        let member = GzipMember::encode(text)?;
        let block = XzBlock::encode(text)?;
        // A failed cache write only costs a later recompression.
        let _ = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO chunks (sha256, gzip, xz) VALUES (?1, ?2, ?3)")
            .and_then(|mut stmt| {
                stmt.execute(params![
                    &key[..],
                    member.to_cache_bytes(),
                    block.to_cache_bytes()
                ])
            });
        Ok((member, block))
    }

    /// Marks the chunks this cache handed out as used at `now`.
    pub fn settle(&mut self, now: i64) -> Result<(), rusqlite::Error> {
        // Immediate: render threads settle concurrently, and a deferred
        // transaction that upgrades to a write fails at once when busy.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut touch = tx.prepare_cached(
                "INSERT OR REPLACE INTO chunk_use (sha256, used_at) VALUES (?1, ?2)",
            )?;
            for key in &self.used {
                touch.execute(params![&key[..], now])?;
            }
        }
        tx.commit()?;
        self.used.clear();
        Ok(())
    }

    /// Drops chunks no publish used for `CACHE_TTL_SECS`. Run once after a
    /// publish's render threads have all settled, so no thread drops what
    /// another just inserted.
    pub fn expire(&mut self, now: i64) -> Result<(), rusqlite::Error> {
        let expired = now - CACHE_TTL_SECS;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM chunks WHERE sha256 NOT IN (SELECT sha256 FROM chunk_use WHERE used_at >= ?1)",
            [expired],
        )?;
        tx.execute("DELETE FROM chunk_use WHERE used_at < ?1", [expired])?;
        tx.commit()
    }
}

/// Where one index's files go, and whether the plain `Packages` is written.
pub struct IndexTarget<'a> {
    pub dist: &'a str,
    pub component: &'a str,
    pub architecture: &'a str,
    pub dir: &'a Path,
    pub write_plain: bool,
}

/// Writes `Packages.gz`, `Packages.xz` (and `Packages` if asked) for one
/// index into `target.dir`, fsynced, and returns their sizes and digests.
pub fn write_index(
    catalog: &Connection,
    cache: &mut ChunkCache,
    target: &IndexTarget<'_>,
) -> Result<IndexSums, IndexError> {
    let mut out = IndexWriter::create(target, cache)?;
    let mut group: Vec<(Version, String)> = Vec::new();
    let mut group_name = String::new();
    let label = format!(
        "{}/{}/binary-{}",
        target.dist, target.component, target.architecture
    );

    let mut chunk: Vec<u8> = Vec::with_capacity(MIN_CHUNK * 2);
    let flush_group = |group: &mut Vec<(Version, String)>,
                       chunk: &mut Vec<u8>,
                       out: &mut IndexWriter<'_>,
                       next_name: Option<&str>|
     -> Result<(), IndexError> {
        group.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (_, stanza) in group.drain(..) {
            chunk.extend_from_slice(stanza.as_bytes());
            chunk.push(b'\n');
        }
        let boundary = match next_name {
            None => true,
            Some(name) => {
                chunk.len() >= MAX_CHUNK
                    || (chunk.len() >= MIN_CHUNK
                        && fnv1a(name.as_bytes()).is_multiple_of(BOUNDARY_ONE_IN))
            }
        };
        if boundary && !chunk.is_empty() {
            out.push_chunk(chunk)?;
            chunk.clear();
        }
        Ok(())
    };

    let mut pending_error: Option<IndexError> = None;
    let result = catalog::for_each_stanza(
        catalog,
        target.dist,
        target.component,
        target.architecture,
        |name, version, stanza| {
            if name != group_name && !group.is_empty() {
                if let Err(e) = flush_group(&mut group, &mut chunk, &mut out, Some(name)) {
                    pending_error = Some(e);
                    return Err(io::Error::other("index write failed"));
                }
            }
            if name != group_name {
                group_name = name.to_string();
            }
            // The catalog only holds versions that parsed; keep the text order
            // as a fallback so a bad row never aborts a publish.
            let parsed = Version::parse(version)
                .unwrap_or_else(|_| Version::parse("0").expect("0 is a valid version"));
            group.push((parsed, stanza.to_string()));
            Ok(())
        },
    );
    if let Some(e) = pending_error {
        return Err(e);
    }
    result.map_err(|source| IndexError::Catalog {
        index: label,
        source,
    })?;
    flush_group(&mut group, &mut chunk, &mut out, None)?;
    out.finish()
}

/// Accumulates chunks into the index files, hashing everything it writes.
struct IndexWriter<'c> {
    cache: &'c mut ChunkCache,
    dir: std::path::PathBuf,
    plain_hash: MultiHasher,
    plain: Option<HashingWriter<BufWriter<File>>>,
    gzip: GzipWriter<HashingWriter<BufWriter<File>>>,
    xz: XzStreamWriter<HashingWriter<BufWriter<File>>>,
}

impl<'c> IndexWriter<'c> {
    fn create(
        target: &IndexTarget<'_>,
        cache: &'c mut ChunkCache,
    ) -> Result<IndexWriter<'c>, IndexError> {
        let dir = target.dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| IndexError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let open = |name: &str| -> Result<HashingWriter<BufWriter<File>>, IndexError> {
            let path = dir.join(name);
            let file = File::create(&path).map_err(|source| IndexError::Write {
                path: path.display().to_string(),
                source,
            })?;
            Ok(HashingWriter::new(BufWriter::with_capacity(1 << 16, file)))
        };
        let plain = if target.write_plain {
            Some(open("Packages")?)
        } else {
            None
        };
        let gzip = GzipWriter::new(open("Packages.gz")?);
        let xz =
            XzStreamWriter::new(open("Packages.xz")?).map_err(|source| IndexError::Compress {
                path: dir.join("Packages.xz").display().to_string(),
                source,
            })?;
        Ok(IndexWriter {
            cache,
            dir,
            plain_hash: MultiHasher::default(),
            plain,
            gzip,
            xz,
        })
    }

    fn write_err(&self, name: &str) -> impl FnOnce(io::Error) -> IndexError {
        let path = self.dir.join(name).display().to_string();
        move |source| IndexError::Write { path, source }
    }

    fn compress_err(&self, name: &str) -> impl FnOnce(CompressError) -> IndexError {
        let path = self.dir.join(name).display().to_string();
        move |source| IndexError::Compress { path, source }
    }

    fn push_chunk(&mut self, chunk: &[u8]) -> Result<(), IndexError> {
        self.plain_hash.update(chunk);
        if let Some(plain) = self.plain.as_mut() {
            let err = {
                let path = self.dir.join("Packages").display().to_string();
                move |source| IndexError::Write { path, source }
            };
            plain.write_all(chunk).map_err(err)?;
        }
        let (member, block) = self
            .cache
            .compressed(chunk)
            .map_err(self.compress_err("Packages.gz"))?;
        self.gzip
            .write_member(&member)
            .map_err(self.compress_err("Packages.gz"))?;
        self.xz
            .write_block(&block)
            .map_err(self.compress_err("Packages.xz"))?;
        Ok(())
    }

    fn finish(self) -> Result<IndexSums, IndexError> {
        let gzip_err = self.compress_err("Packages.gz");
        let xz_err = self.compress_err("Packages.xz");
        let (gz_write, xz_write, plain_write) = (
            self.write_err("Packages.gz"),
            self.write_err("Packages.xz"),
            self.write_err("Packages"),
        );
        // An index without chunks still gets one empty gzip member and an
        // xz stream without blocks: both valid, both decompress to nothing.
        let gzip = finish_file(self.gzip.finish().map_err(gzip_err)?).map_err(gz_write)?;
        let xz = finish_file(self.xz.finish().map_err(xz_err)?).map_err(xz_write)?;
        if let Some(plain) = self.plain {
            finish_file(plain).map_err(plain_write)?;
        }
        Ok(IndexSums {
            plain: self.plain_hash.finish(),
            gzip,
            xz,
        })
    }
}

fn finish_file(writer: HashingWriter<BufWriter<File>>) -> io::Result<Checksums> {
    let (buffered, sums) = writer.finish();
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(sums)
}

/// FNV-1a: a fixed, fast hash so chunk boundaries are the same on every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
