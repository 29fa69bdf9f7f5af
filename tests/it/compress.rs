//! `repo::compress` against the real readers: `xz`, `gzip`, `zcat`, Python's
//! `lzma`/`gzip` modules and liblzma opened the way apt opens an `.xz` index.
//! A missing tool fails the test (CI installs xz-utils, gzip and python3).

use std::path::Path;
use std::process::{Command, Output};

use liblzma::stream::{Action, Status, Stream};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use repoctl::repo::compress::{self, GzipMember, GzipWriter, XzBlock, XzStreamWriter};

/// A `Packages` index of `count` stanzas, the same for the same seed.
fn packages_text(seed: u64, count: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hex = |len: usize| -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
            .collect()
    };
    let mut text = String::new();
    for i in 0..count {
        let name = format!("vrmd-app{}", i / 3);
        let version = 40 + i % 3;
        let (md5, sha1, sha256) = (hex(32), hex(40), hex(64));
        text.push_str(&format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: Platform Team <platform@example.com>\nInstalled-Size: {}\n\
             Depends: python3 (>= 3.8), libc6 (>= 2.15), libssl1.1 | libssl3\n\
             Filename: pool/main/v/{name}/{name}_{version}_amd64.deb\nSize: {}\n\
             MD5sum: {md5}\nSHA1: {sha1}\nSHA256: {sha256}\n\
             Description: Branch: main Commit: {}\n\n",
            20_000 + i * 13,
            4_000_000 + i * 977,
            &sha1[..7],
        ));
    }
    text.into_bytes()
}

/// Cuts `text` after the stanza that crosses each multiple of `target` bytes,
/// as the publisher's content-defined chunker does.
fn chunks(text: &[u8], target: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let from = (start + target).min(text.len());
        let end = text[from..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(text.len(), |p| from + p + 2);
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn xz_file(chunks: &[&[u8]]) -> Vec<u8> {
    let mut writer = XzStreamWriter::new(Vec::new()).expect("stream header");
    for chunk in chunks {
        let block = XzBlock::encode(chunk).expect("encode block");
        writer.write_block(&block).expect("write block");
    }
    writer.finish().expect("index and footer")
}

fn gz_file(chunks: &[&[u8]]) -> Vec<u8> {
    let mut writer = GzipWriter::new(Vec::new());
    for chunk in chunks {
        let member = GzipMember::encode(chunk).expect("encode member");
        writer.write_member(&member).expect("write member");
    }
    writer.finish().expect("finish")
}

/// Runs a real tool; fails the test if it is missing or exits non-zero.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{program}`: {e}\nhint: install it (apt-get install xz-utils gzip python3)")
    });
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// `xz --robot --list`: (streams, blocks, check) from its `file` line.
fn xz_list(path: &Path) -> (u64, u64, String) {
    let output = run("xz", &["--robot", "--list", path_str(path)]);
    let text = String::from_utf8(output.stdout).expect("xz prints UTF-8");
    let line = text
        .lines()
        .find(|l| l.starts_with("file\t"))
        .unwrap_or_else(|| panic!("no `file` line in xz --robot --list:\n{text}"));
    let cols: Vec<&str> = line.split('\t').collect();
    (
        cols[1].parse().expect("stream count"),
        cols[2].parse().expect("block count"),
        cols[6].to_string(),
    )
}

/// Decodes like apt's `FileFd` for `.xz`: `lzma_auto_decoder(.., UINT64_MAX, 0)`,
/// which stops at the end of the first stream.
fn liblzma_first_stream(file: &[u8]) -> (Vec<u8>, usize) {
    let mut decoder = Stream::new_auto_decoder(u64::MAX, 0).expect("decoder");
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let consumed = usize::try_from(decoder.total_in()).expect("fits");
        let status = decoder
            .process_vec(&file[consumed..], &mut out, Action::Run)
            .expect("liblzma decodes the stream");
        match status {
            Status::StreamEnd => break,
            Status::Ok => {}
            other => assert!(
                out.len() == out.capacity(),
                "liblzma stopped early ({other:?}) after {consumed} of {} bytes",
                file.len()
            ),
        }
    }
    let consumed = usize::try_from(decoder.total_in()).expect("fits");
    (out, consumed)
}

/// Decodes with Python's `lzma` as ONE stream (like apt), refusing anything
/// after it, and returns the content.
fn python_lzma_one_stream(path: &Path) -> Vec<u8> {
    let script = "import lzma, sys\n\
        data = open(sys.argv[1], 'rb').read()\n\
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)\n\
        out = d.decompress(data)\n\
        assert d.eof, 'stream not finished'\n\
        assert d.unused_data == b'', 'bytes after the first stream'\n\
        sys.stdout.buffer.write(out)\n";
    run("python3", &["-c", script, path_str(path)]).stdout
}

#[test]
fn xz_stream_of_several_blocks_decompresses_with_xz_tools() {
    let text = packages_text(1, 1500);
    let parts = chunks(&text, 100_000);
    assert!(parts.len() >= 4, "want several blocks, got {}", parts.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Packages.xz");
    std::fs::write(&path, xz_file(&parts)).expect("write");

    assert_eq!(run("xz", &["-dc", path_str(&path)]).stdout, text);
    run("xz", &["-t", path_str(&path)]);
    assert_eq!(xz_list(&path), (1, parts.len() as u64, "CRC64".to_string()));
}

#[test]
fn xz_stream_is_read_whole_by_liblzma_opened_as_apt_opens_it() {
    let text = packages_text(2, 1200);
    let parts = chunks(&text, 64_000);
    let file = xz_file(&parts);
    let (content, consumed) = liblzma_first_stream(&file);
    assert_eq!(content, text, "the first stream holds the whole index");
    assert_eq!(consumed, file.len(), "nothing after the first stream");
}

#[test]
fn xz_stream_decompresses_with_python_lzma_as_one_stream() {
    let text = packages_text(3, 1000);
    let parts = chunks(&text, 80_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Packages.xz");
    std::fs::write(&path, xz_file(&parts)).expect("write");
    assert_eq!(python_lzma_one_stream(&path), text);
}

#[test]
fn incompressible_chunks_round_trip_through_xz() {
    // LZMA2 stores such data in uncompressed chunks: a different path in the encoder.
    let mut rng = StdRng::seed_from_u64(4);
    let noise: Vec<u8> = (0..300_000).map(|_| rng.gen()).collect();
    let parts: Vec<&[u8]> = noise.chunks(70_000).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("noise.xz");
    std::fs::write(&path, xz_file(&parts)).expect("write");
    assert_eq!(run("xz", &["-dc", path_str(&path)]).stdout, noise);
    assert_eq!(xz_list(&path).1, parts.len() as u64);
}

#[test]
fn multi_member_gzip_decompresses_with_gzip_zcat_and_python() {
    let text = packages_text(5, 1500);
    let parts = chunks(&text, 100_000);
    assert!(
        parts.len() >= 4,
        "want several members, got {}",
        parts.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("Packages.gz");
    std::fs::write(&path, gz_file(&parts)).expect("write");

    assert_eq!(run("gzip", &["-dc", path_str(&path)]).stdout, text);
    assert_eq!(run("zcat", &[path_str(&path)]).stdout, text);
    run("gzip", &["-t", path_str(&path)]);
    let script = "import gzip, sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())";
    assert_eq!(
        run("python3", &["-c", script, path_str(&path)]).stdout,
        text
    );
}

#[test]
fn empty_index_gives_valid_gz_and_xz_that_decompress_to_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xz_path = dir.path().join("Packages.xz");
    let gz_path = dir.path().join("Packages.gz");
    let no_chunks: [&[u8]; 0] = [];
    let xz = xz_file(&no_chunks);
    assert_eq!(xz, compress::xz(b"").expect("xz of nothing"));
    std::fs::write(&xz_path, &xz).expect("write");
    std::fs::write(&gz_path, gz_file(&no_chunks)).expect("write");

    // The same bytes `xz` itself writes for empty input: a stream with no block.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(run("xz", &["-c", path_str(&empty)]).stdout, xz);
    assert_eq!(run("xz", &["-dc", path_str(&xz_path)]).stdout, b"");
    run("xz", &["-t", path_str(&xz_path)]);
    assert_eq!(xz_list(&xz_path), (1, 0, "CRC64".to_string()));
    assert_eq!(python_lzma_one_stream(&xz_path), b"");
    assert_eq!(liblzma_first_stream(&xz), (Vec::new(), xz.len()));

    assert_eq!(run("gzip", &["-dc", path_str(&gz_path)]).stdout, b"");
    assert_eq!(run("zcat", &[path_str(&gz_path)]).stdout, b"");
    run("gzip", &["-t", path_str(&gz_path)]);
}

#[test]
fn whole_buffer_helpers_round_trip() {
    let text = packages_text(6, 300);
    let dir = tempfile::tempdir().expect("tempdir");
    let xz_path = dir.path().join("Packages.xz");
    let gz_path = dir.path().join("Packages.gz");
    std::fs::write(&xz_path, compress::xz(&text).expect("xz")).expect("write");
    std::fs::write(&gz_path, compress::gzip(&text).expect("gzip")).expect("write");
    assert_eq!(run("xz", &["-dc", path_str(&xz_path)]).stdout, text);
    assert_eq!(xz_list(&xz_path), (1, 1, "CRC64".to_string()));
    assert_eq!(run("gzip", &["-dc", path_str(&gz_path)]).stdout, text);
}

#[test]
fn same_input_gives_same_bytes() {
    let text = packages_text(7, 800);
    let parts = chunks(&text, 50_000);
    let (xz_a, gz_a) = (xz_file(&parts), gz_file(&parts));
    // Again, on other threads: no state is shared between encodings.
    let (xz_b, gz_b) = std::thread::scope(|s| {
        let xz = s.spawn(|| xz_file(&parts));
        let gz = s.spawn(|| gz_file(&parts));
        (xz.join().expect("xz thread"), gz.join().expect("gz thread"))
    });
    assert_eq!(xz_a, xz_b);
    assert_eq!(gz_a, gz_b);
    // The gzip header holds no time and no name.
    assert_eq!(gz_a[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
}

#[test]
fn cached_pieces_from_disk_give_the_same_files_as_fresh_ones() {
    let text = packages_text(8, 900);
    let parts = chunks(&text, 60_000);
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, chunk) in parts.iter().enumerate() {
        let block = XzBlock::encode(chunk).expect("encode");
        let member = GzipMember::encode(chunk).expect("encode");
        std::fs::write(dir.path().join(format!("{i}.xz")), block.to_cache_bytes()).expect("write");
        std::fs::write(dir.path().join(format!("{i}.gz")), member.to_cache_bytes()).expect("write");
    }

    let mut xz = XzStreamWriter::new(Vec::new()).expect("header");
    let mut gz = GzipWriter::new(Vec::new());
    for (i, chunk) in parts.iter().enumerate() {
        let entry = std::fs::read(dir.path().join(format!("{i}.xz"))).expect("read");
        let block = XzBlock::from_cache_bytes(&entry).expect("valid xz entry");
        assert_eq!(block.uncompressed_size(), chunk.len() as u64);
        assert_eq!(block.decompress().expect("decode"), *chunk);
        xz.write_block(&block).expect("write");
        let entry = std::fs::read(dir.path().join(format!("{i}.gz"))).expect("read");
        let member = GzipMember::from_cache_bytes(&entry).expect("valid gzip entry");
        assert_eq!(member.decompress().expect("inflate"), *chunk);
        gz.write_member(&member).expect("write");
    }
    assert_eq!(xz.finish().expect("finish"), xz_file(&parts));
    assert_eq!(gz.finish().expect("finish"), gz_file(&parts));
}

#[test]
fn damaged_cache_files_are_refused() {
    let text = packages_text(9, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let xz_entry = XzBlock::encode(&text).expect("encode").to_cache_bytes();
    let gz_entry = GzipMember::encode(&text).expect("encode").to_cache_bytes();
    let mut rng = StdRng::seed_from_u64(10);
    for round in 0..200 {
        for (entry, is_xz) in [(&xz_entry, true), (&gz_entry, false)] {
            let mut bad = entry.clone();
            match round % 3 {
                0 => {
                    let at = rng.gen_range(0..bad.len());
                    bad[at] ^= 1 << rng.gen_range(0..8);
                }
                1 => bad.truncate(rng.gen_range(0..bad.len())),
                _ => bad.insert(rng.gen_range(0..=bad.len()), rng.gen()),
            }
            let path = dir.path().join("entry");
            std::fs::write(&path, &bad).expect("write");
            let read = std::fs::read(&path).expect("read");
            let refused = if is_xz {
                XzBlock::from_cache_bytes(&read).err()
            } else {
                GzipMember::from_cache_bytes(&read).err()
            };
            let err = refused.unwrap_or_else(|| panic!("round {round}: damaged entry accepted"));
            assert!(err.to_string().contains("cache entry"), "{err}");
        }
    }
}

#[test]
fn gzip_entry_is_not_taken_for_an_xz_entry() {
    let gz_entry = GzipMember::encode(b"Package: a\n")
        .expect("encode")
        .to_cache_bytes();
    let xz_entry = XzBlock::encode(b"Package: a\n")
        .expect("encode")
        .to_cache_bytes();
    assert!(XzBlock::from_cache_bytes(&gz_entry).is_err());
    assert!(GzipMember::from_cache_bytes(&xz_entry).is_err());
}
