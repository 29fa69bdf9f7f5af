//! Compression of index files (`Packages.gz`, `Packages.xz`) from cacheable chunks.
//!
//! Owns: turning chunks of index text into independently compressed pieces
//! ([`GzipMember`], [`XzBlock`]), their on-disk cache encoding, and the writers
//! that join pieces into one file apt can read ([`GzipWriter`], [`XzStreamWriter`]).
//! Does not own: choosing chunk boundaries, the cache's location or keys (a
//! chunk's SHA256), or hashing the output for `Release`; the caller does those.
//!
//! Why pieces: recompressing a 25 MB `Packages` with xz takes seconds, so each
//! chunk is compressed once, cached, and joined on every publish.
//!
//! - gzip: concatenated gzip members form a valid multi-member file (RFC 1952
//!   §2.2); zlib's `gzread`, which apt uses, `gzip -dc` and `zcat` read them all.
//! - xz: apt opens `.xz` with `lzma_auto_decoder(.., 0)` (no
//!   `LZMA_CONCATENATED`), so it reads only the first stream. Chunks therefore
//!   become *blocks* of one stream, and [`XzStreamWriter`] writes the stream
//!   header, index and footer itself (.xz file format 1.2.x). Each block carries
//!   both its sizes in the block header and a CRC64 check (xz's default, so an
//!   empty file is byte-identical to `xz </dev/null`: a stream with no block).
//!
//! Output is deterministic: the same chunk gives the same bytes (gzip mtime 0,
//! no name, OS byte 3; xz single-threaded raw LZMA2 encoder).

use std::fmt;
use std::io::Write;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use liblzma::stream::{Action, Filters, LzmaOptions, Status, Stream};

/// gzip level. On real `Packages` text in 160 KB chunks, level 9 took 20%
/// longer than 6 for 0.1% smaller output.
pub const GZIP_LEVEL: u32 = 6;

/// xz preset (as `xz -6`, the default), with the dictionary cut down to the
/// chunk size (see [`XzBlock::encode`]).
pub const XZ_PRESET: u32 = 6;

/// Largest LZMA2 dictionary used: the one of preset 6 (8 MiB).
const XZ_MAX_DICT: u32 = 8 << 20;
/// liblzma's smallest dictionary (`LZMA_DICT_SIZE_MIN`).
const XZ_MIN_DICT: u32 = 4096;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// gzip OS byte: 3 (Unix), what `gzip -n` writes on Linux.
const GZIP_OS_UNIX: u8 = 3;

const XZ_HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const XZ_FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
/// Stream flags: first byte reserved (0), second the check type (4 = CRC64).
const XZ_STREAM_FLAGS: [u8; 2] = [0x00, 0x04];
const XZ_CHECK_SIZE: u64 = 8;
const XZ_FILTER_LZMA2: u64 = 0x21;
/// Block flags: one filter, compressed size and uncompressed size present.
const XZ_BLOCK_FLAGS: u8 = 0x40 | 0x80;

/// Cache entries: an 8-byte tag, the payload, a CRC32 of tag and payload. The
/// tag holds the format version and the encoder settings, so an entry written
/// with other settings is refused (and recompressed) instead of mixing outputs.
const CACHE_GZIP_TAG: [u8; 8] = cache_tag(b"rcgz", GZIP_LEVEL, 0);
const CACHE_XZ_TAG: [u8; 8] = cache_tag(b"rcxz", XZ_PRESET, XZ_STREAM_FLAGS[1]);
/// Bump when the cache entry layout or the encoding of a piece changes.
const CACHE_FORMAT_VERSION: u8 = 1;

const fn cache_tag(kind: &[u8; 4], level: u32, check: u8) -> [u8; 8] {
    let [a, b, c, d] = *kind;
    [a, b, c, d, CACHE_FORMAT_VERSION, level as u8, check, 0]
}

/// The two compressed formats of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Xz,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Gzip => "gzip",
            Format::Xz => "xz",
        })
    }
}

/// Errors of this module. The caller adds the file or cache path.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("deflate failed on a chunk of {len} bytes")]
    GzipEncode {
        len: usize,
        #[source]
        source: flate2::CompressError,
    },
    #[error("LZMA2 encoder failed on a chunk of {len} bytes")]
    XzEncode {
        len: usize,
        #[source]
        source: liblzma::stream::Error,
    },
    #[error("inflate failed on a gzip member")]
    GzipDecode {
        #[source]
        source: flate2::DecompressError,
    },
    #[error("LZMA2 decoder failed on an xz block")]
    XzDecode {
        #[source]
        source: liblzma::stream::Error,
    },
    /// A cache entry that is damaged, truncated or from other encoder
    /// settings; treat it as a cache miss and compress the chunk again.
    #[error("{format} cache entry is not valid at byte {offset}: {reason}")]
    InvalidCacheEntry {
        format: Format,
        offset: usize,
        reason: &'static str,
    },
    /// Compressed data whose content does not match its own sizes or check.
    #[error("{format} data is corrupt: {reason}")]
    Corrupt {
        format: Format,
        reason: &'static str,
    },
    #[error("{blocks} xz blocks do not fit in one stream index")]
    TooManyBlocks { blocks: u64 },
    #[error("writing the {format} output failed")]
    Write {
        format: Format,
        #[source]
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------- gzip

/// One gzip member (RFC 1952) holding one chunk; cacheable and deterministic:
/// mtime 0, no file name, XFL 0, OS 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipMember {
    bytes: Vec<u8>,
}

impl GzipMember {
    /// Compresses `chunk` at [`GZIP_LEVEL`]. An empty chunk gives a valid
    /// member that decompresses to nothing.
    pub fn encode(chunk: &[u8]) -> Result<GzipMember, CompressError> {
        let mut bytes = Vec::with_capacity(chunk.len() / 3 + 64);
        bytes.extend_from_slice(&gzip_header());
        let mut deflate = Compress::new(Compression::new(GZIP_LEVEL), false);
        loop {
            let consumed = usize_of(deflate.total_in());
            if bytes.len() == bytes.capacity() {
                bytes.reserve(bytes.capacity() / 2 + 64);
            }
            let status = deflate
                .compress_vec(&chunk[consumed..], &mut bytes, FlushCompress::Finish)
                .map_err(|source| CompressError::GzipEncode {
                    len: chunk.len(),
                    source,
                })?;
            match status {
                flate2::Status::StreamEnd => break,
                flate2::Status::Ok => {}
                // No room to make progress: grow the output.
                flate2::Status::BufError => bytes.reserve(bytes.capacity() + 64),
            }
        }
        bytes.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
        // ISIZE is the size modulo 2^32 (RFC 1952).
        bytes.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        Ok(GzipMember { bytes })
    }

    /// The member as it goes into the `.gz` file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The entry to store in the cache: the member, framed with a tag and a CRC32.
    pub fn to_cache_bytes(&self) -> Vec<u8> {
        frame_cache_entry(CACHE_GZIP_TAG, &self.bytes)
    }

    /// Reads a cache entry back. Checks the frame's CRC32 (catches damage and
    /// truncation on disk without inflating) and the member's header and
    /// trailer layout. [`GzipMember::decompress`] checks the content too.
    pub fn from_cache_bytes(entry: &[u8]) -> Result<GzipMember, CompressError> {
        let bytes = unframe_cache_entry(Format::Gzip, CACHE_GZIP_TAG, entry)?;
        let invalid = |offset, reason| CompressError::InvalidCacheEntry {
            format: Format::Gzip,
            offset: offset + CACHE_GZIP_TAG.len(),
            reason,
        };
        // Our header (10 bytes), at least 2 bytes of deflate, the 8-byte trailer.
        if bytes.len() < 20 {
            return Err(invalid(0, "too short for a gzip member"));
        }
        if bytes[..10] != gzip_header() {
            return Err(invalid(0, "not the gzip header this module writes"));
        }
        Ok(GzipMember {
            bytes: bytes.to_vec(),
        })
    }

    /// Inflates the member and checks its CRC32 and size against the trailer.
    pub fn decompress(&self) -> Result<Vec<u8>, CompressError> {
        let corrupt = |reason| CompressError::Corrupt {
            format: Format::Gzip,
            reason,
        };
        let b = &self.bytes;
        if b.len() < 18 || b[..10] != gzip_header() {
            return Err(corrupt("bad gzip header"));
        }
        let data = &b[10..b.len() - 8];
        let crc = le_u32(&b[b.len() - 8..]);
        let isize = le_u32(&b[b.len() - 4..]);
        // Sizes come from the data: allocate up front only what deflate can
        // reach (at most 1032:1), and grow from there.
        let first = usize_of(u64::from(isize)).min(data.len().saturating_mul(1032));
        let mut out = Vec::with_capacity(first.max(64));
        let mut inflate = Decompress::new(false);
        loop {
            let consumed = usize_of(inflate.total_in());
            if out.len() == out.capacity() {
                out.reserve(out.capacity() + 64);
            }
            let status = inflate
                .decompress_vec(&data[consumed..], &mut out, FlushDecompress::Finish)
                .map_err(|source| CompressError::GzipDecode { source })?;
            match status {
                flate2::Status::StreamEnd => break,
                flate2::Status::Ok => {}
                // Room in the output but no progress: the input ran out.
                flate2::Status::BufError => return Err(corrupt("deflate data ends early")),
            }
        }
        if usize_of(inflate.total_in()) != data.len() {
            return Err(corrupt("bytes after the end of the deflate data"));
        }
        if crc32fast::hash(&out) != crc || out.len() as u32 != isize {
            return Err(corrupt(
                "CRC32 or size in the trailer does not match the content",
            ));
        }
        Ok(out)
    }
}

fn gzip_header() -> [u8; 10] {
    // XFL: 2 = maximum compression, 4 = fastest, 0 otherwise (as gzip writes it).
    let xfl = match GZIP_LEVEL {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let [m0, m1] = GZIP_MAGIC;
    [m0, m1, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNIX]
}

/// Writes a multi-member `.gz` file: one member per chunk, in order.
///
/// A file with no member is not valid gzip, so [`GzipWriter::finish`] writes
/// one empty member when none was written: an empty `Packages` still gives a
/// `.gz` that decompresses to nothing.
pub struct GzipWriter<W: Write> {
    out: W,
    members: u64,
}

impl<W: Write> GzipWriter<W> {
    pub fn new(out: W) -> GzipWriter<W> {
        GzipWriter { out, members: 0 }
    }

    /// Appends `member`.
    pub fn write_member(&mut self, member: &GzipMember) -> Result<(), CompressError> {
        self.out.write_all(&member.bytes).map_err(gzip_write)?;
        self.members += 1;
        Ok(())
    }

    /// Ends the file, flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, CompressError> {
        if self.members == 0 {
            let empty = GzipMember::encode(&[])?;
            self.write_member(&empty)?;
        }
        self.out.flush().map_err(gzip_write)?;
        Ok(self.out)
    }
}

fn gzip_write(source: std::io::Error) -> CompressError {
    CompressError::Write {
        format: Format::Gzip,
        source,
    }
}

/// Compresses a whole buffer as a one-member `.gz` file (for small indices).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, CompressError> {
    Ok(GzipMember::encode(data)?.bytes)
}

// ---------------------------------------------------------------- xz

/// One xz block holding one chunk, cacheable: block header (with both sizes
/// and the LZMA2 filter), LZMA2 data, block padding, CRC64 of the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XzBlock {
    bytes: Vec<u8>,
    unpadded_size: u64,
    uncompressed_size: u64,
}

impl XzBlock {
    /// Compresses `chunk` with LZMA2 at [`XZ_PRESET`], with the dictionary cut
    /// down to the chunk size (rounded up to a size the header can state, at
    /// least 4 KiB, at most 8 MiB). A smaller dictionary loses nothing, as no
    /// match can reach back further than the chunk, and it lowers the memory
    /// of both encoder (about 94 MiB at preset 6 otherwise) and decoder.
    pub fn encode(chunk: &[u8]) -> Result<XzBlock, CompressError> {
        let encode_error = |source| CompressError::XzEncode {
            len: chunk.len(),
            source,
        };
        let (dict_size, dict_byte) = lzma2_dict(chunk.len());
        let mut options = LzmaOptions::new_preset(XZ_PRESET).map_err(encode_error)?;
        options.dict_size(dict_size);
        let mut filters = Filters::new();
        filters.lzma2(&options);
        let mut encoder = Stream::new_raw_encoder(&filters).map_err(encode_error)?;
        let mut data = Vec::with_capacity(chunk.len() / 4 + 64);
        loop {
            let consumed = usize_of(encoder.total_in());
            if data.len() == data.capacity() {
                data.reserve(data.capacity() / 2 + 64);
            }
            let status = encoder
                .process_vec(&chunk[consumed..], &mut data, Action::Finish)
                .map_err(encode_error)?;
            match status {
                Status::StreamEnd => break,
                Status::Ok => {}
                Status::GetCheck | Status::MemNeeded => {
                    return Err(encode_error(liblzma::stream::Error::Program))
                }
            }
        }

        let compressed_size = data.len() as u64;
        let uncompressed_size = chunk.len() as u64;
        let header = xz_block_header(compressed_size, uncompressed_size, dict_byte);
        let unpadded_size = header.len() as u64 + compressed_size + XZ_CHECK_SIZE;
        let mut bytes = Vec::with_capacity(header.len() + data.len() + 3 + 8);
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&data);
        bytes.resize(bytes.len() + padding4(bytes.len() as u64), 0);
        bytes.extend_from_slice(&crc64(chunk).to_le_bytes());
        Ok(XzBlock {
            bytes,
            unpadded_size,
            uncompressed_size,
        })
    }

    /// The block as it goes into the `.xz` stream (header to check, padded).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Size without the block padding, as the stream index records it.
    pub fn unpadded_size(&self) -> u64 {
        self.unpadded_size
    }

    /// Size of the chunk this block decompresses to.
    pub fn uncompressed_size(&self) -> u64 {
        self.uncompressed_size
    }

    /// The entry to store in the cache: the block, framed with a tag and a CRC32.
    pub fn to_cache_bytes(&self) -> Vec<u8> {
        frame_cache_entry(CACHE_XZ_TAG, &self.bytes)
    }

    /// Reads a cache entry back. Checks the frame's CRC32 (catches damage and
    /// truncation on disk without decoding) and the whole block layout: header
    /// CRC32, flags, filter, sizes against the entry's length, zero padding.
    /// [`XzBlock::decompress`] checks the content too.
    pub fn from_cache_bytes(entry: &[u8]) -> Result<XzBlock, CompressError> {
        let bytes = unframe_cache_entry(Format::Xz, CACHE_XZ_TAG, entry)?;
        let layout = XzBlockLayout::parse(bytes).map_err(|(offset, reason)| {
            CompressError::InvalidCacheEntry {
                format: Format::Xz,
                offset: offset + CACHE_XZ_TAG.len(),
                reason,
            }
        })?;
        Ok(XzBlock {
            bytes: bytes.to_vec(),
            unpadded_size: layout.unpadded_size(),
            uncompressed_size: layout.uncompressed_size,
        })
    }

    /// Decodes the block and checks its size and CRC64 against the content.
    pub fn decompress(&self) -> Result<Vec<u8>, CompressError> {
        let corrupt = |reason| CompressError::Corrupt {
            format: Format::Xz,
            reason,
        };
        let decode_error = |source| CompressError::XzDecode { source };
        let layout = XzBlockLayout::parse(&self.bytes).map_err(|(_, reason)| corrupt(reason))?;
        let start = layout.header_size;
        let data = &self.bytes[start..start + usize_of(layout.compressed_size)];
        let mut filters = Filters::new();
        filters
            .lzma2_properties(&[layout.dict_byte])
            .map_err(decode_error)?;
        let mut decoder = Stream::new_raw_decoder(&filters).map_err(decode_error)?;
        let expected = usize_of(layout.uncompressed_size);
        // The stated size comes from the data: do not allocate it blindly.
        let mut out = Vec::with_capacity(expected.min(1 << 20) + 1);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len());
            }
            let consumed = usize_of(decoder.total_in());
            let status = decoder
                .process_vec(&data[consumed..], &mut out, Action::Run)
                .map_err(decode_error)?;
            if out.len() > expected {
                return Err(corrupt("decodes to more than the block header states"));
            }
            match status {
                Status::StreamEnd => break,
                Status::Ok => {}
                // Room in the output but no progress: the input ran out.
                Status::MemNeeded | Status::GetCheck => {
                    return Err(corrupt("LZMA2 data ends early"))
                }
            }
        }
        if decoder.total_in() != layout.compressed_size {
            return Err(corrupt("bytes after the end of the LZMA2 data"));
        }
        if out.len() != expected {
            return Err(corrupt("decoded size differs from the block header"));
        }
        let check_at = self.bytes.len() - XZ_CHECK_SIZE as usize;
        if crc64(&out).to_le_bytes() != self.bytes[check_at..] {
            return Err(corrupt(
                "CRC64 of the content does not match the block check",
            ));
        }
        Ok(out)
    }
}

/// Where the parts of a block are, after the layout was checked.
struct XzBlockLayout {
    header_size: usize,
    compressed_size: u64,
    uncompressed_size: u64,
    dict_byte: u8,
}

impl XzBlockLayout {
    /// Checks a block as this module writes it; errors carry the offset.
    fn parse(b: &[u8]) -> Result<XzBlockLayout, (usize, &'static str)> {
        let size_byte = *b.first().ok_or((0, "empty block"))?;
        if size_byte == 0 {
            return Err((0, "an index indicator where a block header belongs"));
        }
        let header_size = (usize::from(size_byte) + 1) * 4;
        if b.len() < header_size {
            return Err((0, "shorter than its block header"));
        }
        let crc_at = header_size - 4;
        if crc32fast::hash(&b[..crc_at]) != le_u32(&b[crc_at..]) {
            return Err((crc_at, "block header CRC32 does not match"));
        }
        if b[1] != XZ_BLOCK_FLAGS {
            return Err((1, "block flags are not: one filter, both sizes present"));
        }
        let mut at = 2;
        let compressed_size = read_vli(&b[..crc_at], &mut at)?;
        let uncompressed_size = read_vli(&b[..crc_at], &mut at)?;
        let filter_at = at;
        if read_vli(&b[..crc_at], &mut at)? != XZ_FILTER_LZMA2 {
            return Err((filter_at, "filter is not LZMA2"));
        }
        if read_vli(&b[..crc_at], &mut at)? != 1 {
            return Err((filter_at, "LZMA2 properties are not one byte"));
        }
        let dict_byte = *b[..crc_at]
            .get(at)
            .ok_or((at, "header ends in the filter"))?;
        if dict_byte > 40 {
            return Err((at, "LZMA2 dictionary size byte out of range"));
        }
        at += 1;
        if let Some(pos) = b[at..crc_at].iter().position(|&x| x != 0) {
            return Err((at + pos, "block header padding is not zero"));
        }
        let data_end = (header_size as u64)
            .checked_add(compressed_size)
            .ok_or((2, "compressed size overflows"))?;
        let total = data_end + padding4(data_end) as u64 + XZ_CHECK_SIZE;
        if b.len() as u64 != total {
            return Err((2, "compressed size does not match the entry length"));
        }
        // LZMA2 data is at least its end marker, a zero byte.
        if compressed_size == 0 || b[usize_of(data_end) - 1] != 0 {
            return Err((
                usize_of(data_end),
                "LZMA2 data does not end with its end marker",
            ));
        }
        let check_at = b.len() - XZ_CHECK_SIZE as usize;
        if let Some(pos) = b[usize_of(data_end)..check_at].iter().position(|&x| x != 0) {
            return Err((usize_of(data_end) + pos, "block padding is not zero"));
        }
        Ok(XzBlockLayout {
            header_size,
            compressed_size,
            uncompressed_size,
            dict_byte,
        })
    }

    fn unpadded_size(&self) -> u64 {
        self.header_size as u64 + self.compressed_size + XZ_CHECK_SIZE
    }
}

/// Writes one `.xz` stream of several blocks to `out` as they come: `new`
/// writes the stream header, [`XzStreamWriter::write_block`] each block,
/// [`XzStreamWriter::finish`] the index and stream footer. Only the index
/// records (a few bytes per block) are kept in memory.
///
/// Blocks that hold no data are left out, so an empty `Packages` gives the
/// same 32 bytes as `xz </dev/null`: a stream with no block.
pub struct XzStreamWriter<W: Write> {
    out: W,
    blocks: u64,
    /// The index records so far: unpadded size and uncompressed size, as VLIs.
    records: Vec<u8>,
}

impl<W: Write> XzStreamWriter<W> {
    /// Starts the stream by writing its header.
    pub fn new(mut out: W) -> Result<XzStreamWriter<W>, CompressError> {
        let mut header = [0u8; 12];
        header[..6].copy_from_slice(&XZ_HEADER_MAGIC);
        header[6..8].copy_from_slice(&XZ_STREAM_FLAGS);
        header[8..].copy_from_slice(&crc32fast::hash(&XZ_STREAM_FLAGS).to_le_bytes());
        out.write_all(&header).map_err(xz_write)?;
        Ok(XzStreamWriter {
            out,
            blocks: 0,
            records: Vec::new(),
        })
    }

    /// Appends `block` and records it for the index.
    pub fn write_block(&mut self, block: &XzBlock) -> Result<(), CompressError> {
        if block.uncompressed_size == 0 {
            return Ok(());
        }
        self.out.write_all(&block.bytes).map_err(xz_write)?;
        push_vli(&mut self.records, block.unpadded_size);
        push_vli(&mut self.records, block.uncompressed_size);
        self.blocks += 1;
        Ok(())
    }

    /// Writes the index and the stream footer, flushes and returns the writer.
    pub fn finish(mut self) -> Result<W, CompressError> {
        let mut index = vec![0x00]; // index indicator
        push_vli(&mut index, self.blocks);
        index.extend_from_slice(&self.records);
        index.resize(index.len() + padding4(index.len() as u64), 0);
        let crc = crc32fast::hash(&index);
        index.extend_from_slice(&crc.to_le_bytes());

        // Backward size: the index size in 4-byte units, minus one, in 32 bits.
        // Each record takes at most 18 bytes, so it fits up to ~900 million blocks.
        let backward =
            u32::try_from(index.len() / 4 - 1).map_err(|_| CompressError::TooManyBlocks {
                blocks: self.blocks,
            })?;
        let mut footer = [0u8; 12];
        footer[4..8].copy_from_slice(&backward.to_le_bytes());
        footer[8..10].copy_from_slice(&XZ_STREAM_FLAGS);
        footer[10..].copy_from_slice(&XZ_FOOTER_MAGIC);
        let footer_crc = crc32fast::hash(&footer[4..10]);
        footer[..4].copy_from_slice(&footer_crc.to_le_bytes());

        self.out.write_all(&index).map_err(xz_write)?;
        self.out.write_all(&footer).map_err(xz_write)?;
        self.out.flush().map_err(xz_write)?;
        Ok(self.out)
    }
}

fn xz_write(source: std::io::Error) -> CompressError {
    CompressError::Write {
        format: Format::Xz,
        source,
    }
}

/// Compresses a whole buffer as a one-stream, one-block `.xz` file (for
/// small indices); an empty buffer gives a stream with no block.
pub fn xz(data: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut writer = XzStreamWriter::new(Vec::new())?;
    writer.write_block(&XzBlock::encode(data)?)?;
    writer.finish()
}

/// Block header: size byte, flags, compressed and uncompressed size, the
/// LZMA2 filter flags, zero padding to a multiple of 4, CRC32.
fn xz_block_header(compressed_size: u64, uncompressed_size: u64, dict_byte: u8) -> Vec<u8> {
    let mut h = vec![0x00, XZ_BLOCK_FLAGS];
    push_vli(&mut h, compressed_size);
    push_vli(&mut h, uncompressed_size);
    push_vli(&mut h, XZ_FILTER_LZMA2);
    push_vli(&mut h, 1); // size of the filter properties
    h.push(dict_byte);
    h.resize(h.len() + padding4(h.len() as u64 + 4), 0);
    // Real header size is (size byte + 1) * 4: at most 2 + 9 + 9 + 3, padded, + 4 = 28 bytes.
    h[0] = ((h.len() + 4) / 4 - 1) as u8;
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// The LZMA2 dictionary for a chunk of `len` bytes, and the property byte
/// that states it: the smallest size of the form 2^n or 3 * 2^(n-1) that
/// holds the chunk, between 4 KiB and 8 MiB, so header and encoder agree.
fn lzma2_dict(len: usize) -> (u32, u8) {
    let wanted = u32::try_from(len)
        .unwrap_or(u32::MAX)
        .clamp(XZ_MIN_DICT, XZ_MAX_DICT);
    let mut byte = 0u8;
    loop {
        let size = (2 | u32::from(byte & 1)) << (byte / 2 + 11);
        if size >= wanted {
            return (size, byte);
        }
        byte += 1;
    }
}

/// Appends `value` as an xz variable-length integer (7 bits a byte, low first).
fn push_vli(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an xz variable-length integer at `*at` in `b`, at most 9 bytes,
/// refusing the non-minimal forms the spec forbids.
fn read_vli(b: &[u8], at: &mut usize) -> Result<u64, (usize, &'static str)> {
    let start = *at;
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *b
            .get(start + i)
            .ok_or((start, "header ends inside a number"))?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err((start, "number not in its shortest form"));
            }
            *at = start + i + 1;
            return Ok(value);
        }
    }
    Err((start, "number longer than 9 bytes"))
}

/// Zero bytes needed after `len` bytes to reach a multiple of 4.
fn padding4(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

fn frame_cache_entry(tag: [u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(tag.len() + payload.len() + 4);
    entry.extend_from_slice(&tag);
    entry.extend_from_slice(payload);
    let crc = crc32fast::hash(&entry);
    entry.extend_from_slice(&crc.to_le_bytes());
    entry
}

fn unframe_cache_entry(format: Format, tag: [u8; 8], entry: &[u8]) -> Result<&[u8], CompressError> {
    let invalid = |offset, reason| CompressError::InvalidCacheEntry {
        format,
        offset,
        reason,
    };
    if entry.len() < tag.len() + 4 {
        return Err(invalid(0, "too short"));
    }
    if entry[..4] != tag[..4] {
        return Err(invalid(0, "not a cache entry of this format"));
    }
    if entry[4..8] != tag[4..] {
        return Err(invalid(
            4,
            "written by another format version or encoder setting",
        ));
    }
    let crc_at = entry.len() - 4;
    if crc32fast::hash(&entry[..crc_at]) != le_u32(&entry[crc_at..]) {
        return Err(invalid(
            crc_at,
            "CRC32 does not match: damaged or truncated",
        ));
    }
    Ok(&entry[tag.len()..crc_at])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Sizes here always describe data held in memory, so they fit in `usize`.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// CRC64 as xz uses it (ECMA-182 polynomial, reflected, init and xorout all ones).
fn crc64(data: &[u8]) -> u64 {
    let mut crc = !0u64;
    for &byte in data {
        crc = CRC64_TABLE[usize::from(crc as u8 ^ byte)] ^ (crc >> 8);
    }
    !crc
}

const CRC64_TABLE: [u64; 256] = {
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_the_xz_check_value() {
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn vli_round_trips_and_refuses_bad_forms() {
        for value in [0, 1, 127, 128, 300, 1 << 35, (1 << 63) - 1] {
            let mut b = Vec::new();
            push_vli(&mut b, value);
            let mut at = 0;
            assert_eq!(read_vli(&b, &mut at), Ok(value));
            assert_eq!(at, b.len());
        }
        let mut at = 0;
        assert!(read_vli(&[0x80, 0x00], &mut at).is_err(), "non-minimal");
        assert!(read_vli(&[0xff; 10], &mut at).is_err(), "too long");
        assert!(read_vli(&[0x80], &mut at).is_err(), "truncated");
    }

    #[test]
    fn lzma2_dictionary_holds_the_chunk_and_matches_its_byte() {
        assert_eq!(lzma2_dict(0), (4096, 0));
        assert_eq!(lzma2_dict(4097), (6144, 1));
        assert_eq!(lzma2_dict(160_000), (192 << 10, 11));
        assert_eq!(lzma2_dict(1 << 20), (1 << 20, 16));
        assert_eq!(lzma2_dict(100 << 20), (8 << 20, 22));
    }

    #[test]
    fn empty_stream_is_what_xz_writes_for_empty_input() {
        // `xz -c </dev/null | xxd` with xz 5.4.
        let expected: [u8; 32] = [
            0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46, 0x00, 0x00,
            0x00, 0x00, 0x1c, 0xdf, 0x44, 0x21, 0x1f, 0xb6, 0xf3, 0x7d, 0x01, 0x00, 0x00, 0x00,
            0x00, 0x04, 0x59, 0x5a,
        ];
        assert_eq!(xz(b"").expect("xz of nothing"), expected);
    }

    #[test]
    fn empty_gzip_is_what_gzip_n_writes_for_empty_input() {
        // `gzip -cn </dev/null | xxd`.
        let expected: [u8; 20] = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(gzip(b"").expect("gzip of nothing"), expected);
        let file = GzipWriter::new(Vec::new()).finish().expect("no member");
        assert_eq!(file, expected);
    }

    fn sample() -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..400u32 {
            text.extend_from_slice(
                format!(
                    "Package: vrmd-app{i}\nVersion: {i}\nArchitecture: amd64\n\
                     Filename: pool/main/v/vrmd-app{i}/vrmd-app{i}_{i}_amd64.deb\n\
                     Size: {}\nSHA256: {:064x}\n\n",
                    1000 + i * 7,
                    u64::from(crc32fast::hash(&i.to_le_bytes())) * 0x9E37_79B9
                )
                .as_bytes(),
            );
        }
        text
    }

    #[test]
    fn blocks_and_members_decode_to_their_chunk() {
        let chunk = sample();
        let block = XzBlock::encode(&chunk).expect("encode");
        assert_eq!(block.uncompressed_size(), chunk.len() as u64);
        assert_eq!(block.as_bytes().len() % 4, 0);
        assert!(block.unpadded_size() <= block.as_bytes().len() as u64);
        assert_eq!(block.decompress().expect("decode"), chunk);
        let member = GzipMember::encode(&chunk).expect("encode");
        assert_eq!(member.decompress().expect("inflate"), chunk);
    }

    #[test]
    fn cache_entries_round_trip() {
        let chunk = sample();
        let block = XzBlock::encode(&chunk).expect("encode");
        assert_eq!(
            XzBlock::from_cache_bytes(&block.to_cache_bytes()).expect("read"),
            block
        );
        let member = GzipMember::encode(&chunk).expect("encode");
        assert_eq!(
            GzipMember::from_cache_bytes(&member.to_cache_bytes()).expect("read"),
            member
        );
    }

    #[test]
    fn every_damaged_byte_of_a_cache_entry_is_refused() {
        let chunk = &sample()[..3000];
        let entry = XzBlock::encode(chunk).expect("encode").to_cache_bytes();
        for i in 0..entry.len() {
            let mut bad = entry.clone();
            bad[i] ^= 0x10;
            assert!(
                XzBlock::from_cache_bytes(&bad).is_err(),
                "xz byte {i} flipped"
            );
        }
        let entry = GzipMember::encode(chunk).expect("encode").to_cache_bytes();
        for i in 0..entry.len() {
            let mut bad = entry.clone();
            bad[i] ^= 0x10;
            assert!(
                GzipMember::from_cache_bytes(&bad).is_err(),
                "gzip byte {i} flipped"
            );
        }
        for len in 0..entry.len() {
            assert!(
                GzipMember::from_cache_bytes(&entry[..len]).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn layout_check_refuses_a_block_with_a_valid_frame_but_wrong_sizes() {
        // A frame re-sealed around a damaged block: only the layout check can see it.
        let block = XzBlock::encode(b"Package: a\n").expect("encode");
        let mut bytes = block.as_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        let entry = frame_cache_entry(CACHE_XZ_TAG, &bytes);
        let err = XzBlock::from_cache_bytes(&entry).expect_err("longer than stated");
        assert!(err.to_string().contains("compressed size"), "{err}");
    }

    #[test]
    fn decompress_refuses_a_header_that_overstates_the_size() {
        // A header with a valid CRC32 that claims 2^60 bytes: refused, not allocated.
        let chunk = b"Package: a\n";
        let block = XzBlock::encode(chunk).expect("encode");
        let layout = XzBlockLayout::parse(block.as_bytes()).expect("layout");
        let header = xz_block_header(layout.compressed_size, 1 << 60, layout.dict_byte);
        let mut bytes = header.clone();
        bytes.extend_from_slice(&block.as_bytes()[layout.header_size..]);
        let lying = XzBlock {
            bytes,
            unpadded_size: block.unpadded_size() + header.len() as u64 - layout.header_size as u64,
            uncompressed_size: 1 << 60,
        };
        let err = lying.decompress().expect_err("size differs");
        assert!(err.to_string().contains("size differs"), "{err}");
    }

    #[test]
    fn decompress_notices_a_wrong_check() {
        let block = XzBlock::encode(&sample()).expect("encode");
        let mut damaged = block.clone();
        let last = damaged.bytes.len() - 1;
        damaged.bytes[last] ^= 1;
        let err = damaged.decompress().expect_err("check differs");
        assert!(err.to_string().contains("CRC64"), "{err}");
    }

    #[test]
    fn entries_from_other_settings_are_refused() {
        let mut entry = XzBlock::encode(b"x").expect("encode").to_cache_bytes();
        entry[5] = 9; // preset 9
        let crc_at = entry.len() - 4;
        let crc = crc32fast::hash(&entry[..crc_at]);
        entry[crc_at..].copy_from_slice(&crc.to_le_bytes());
        let err = XzBlock::from_cache_bytes(&entry).expect_err("other preset");
        assert!(err.to_string().contains("encoder setting"), "{err}");
    }

    #[test]
    fn empty_blocks_are_left_out_of_the_stream() {
        let mut writer = XzStreamWriter::new(Vec::new()).expect("header");
        writer
            .write_block(&XzBlock::encode(b"").expect("encode"))
            .expect("write");
        assert_eq!(writer.finish().expect("finish"), xz(b"").expect("xz"));
    }
}
