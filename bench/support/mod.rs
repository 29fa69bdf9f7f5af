//! What the benchmark programs share: running a command, the load average,
//! saving a result file, and small .debs made in memory. Each bench is its
//! own crate and uses a part, hence `dead_code`.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use flate2::{write::GzEncoder, Compression};

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews
/// every figure.
pub fn load_average() -> String {
    let l = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Writes `text` to bench/results/`name`-YYYY-MM-DD.txt (the date of
/// `date`, an RFC 3339 time), replacing that day's earlier run.
pub fn save(name: &str, date: &str, text: &str) -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}-{}.txt", &date[..10]));
    fs::write(&path, text)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Fixed mtime of every member and entry of the .debs made here.
pub const MTIME: u64 = 1_700_000_000;

/// A gzipped tar of `./`-prefixed entries (directories when `body` is
/// None), owned by root.
pub fn targz(entries: &[(&str, Option<&[u8]>)], level: Compression) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), level));
    for &(path, body) in entries {
        let mut h = tar::Header::new_gnu();
        // By hand: `set_path` drops the leading "./" that dpkg-deb writes.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        let (kind, mode) = match body {
            Some(_) => (tar::EntryType::Regular, 0o644),
            None => (tar::EntryType::Directory, 0o755),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(body.map_or(0, |b| b.len() as u64));
        h.set_mtime(MTIME);
        h.set_username("root")?;
        h.set_groupname("root")?;
        h.set_cksum();
        tar.append(&h, body.unwrap_or_default())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

/// A .deb of `control` (the control file's text) and the data entries
/// (as [`targz`] takes them, data compressed at `level`).
pub fn deb(control: &str, data: &[(&str, Option<&[u8]>)], level: Compression) -> Result<Vec<u8>> {
    let control_tgz = targz(
        &[("./", None), ("./control", Some(control.as_bytes()))],
        Compression::default(),
    )?;
    let data_tgz = targz(data, level)?;
    let mut ar = ar::Builder::new(Vec::new());
    let members: [(&str, &[u8]); 3] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &control_tgz),
        ("data.tar.gz", &data_tgz),
    ];
    for (id, body) in members {
        let mut h = ar::Header::new(id.as_bytes().to_vec(), body.len() as u64);
        h.set_mode(0o100644);
        h.set_mtime(MTIME);
        ar.append(&h, body)?;
    }
    Ok(ar.into_inner()?)
}
