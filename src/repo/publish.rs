//! Publishing: turning the catalog into the signed tree under `public/dists/`.
//!
//! Phases, per dist whose content changed:
//! 1. **Render** every changed index into a fresh generation directory
//!    `public/.generations/<dist>/<N>/`; unchanged indices are hard links to
//!    the files of the generation being served.
//! 2. **Keep history reachable**: `by-hash/` links for this generation and the
//!    two before it, so a client holding an older InRelease still finds what
//!    it names.
//! 3. **Sign** `Release` into `InRelease` and `Release.gpg`, fsync everything.
//! 4. **Switch** `public/dists/<dist>`, a symlink, to the new generation with
//!    one atomic rename. Before it, clients see the old tree; after it, the
//!    new one; never a mix. A crash at any point leaves one of the two.
//! 5. **Prune** generations older than the last three.
//!
//! Owns the served tree's layout under `dists/`. It reads the catalog but
//! never changes it; the caller clears the dirty marks after a switch.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::durable;
use super::index::{self, ChunkCache, IndexError, IndexTarget};
use super::release::{Release, ReleaseFields};
use crate::config::Config;
use crate::deb::inspect::Checksums;
use crate::signing::Signer;

/// Generations kept on disk, and whose by-hash files stay reachable.
const KEEP_GENERATIONS: u64 = 3;
/// A Release is never dated more than this ahead of the clock (apt refuses
/// one more than 10 s in the future).
const MAX_DATE_AHEAD_SECS: i64 = 5;
const HASH_DIRS: [&str; 3] = ["MD5Sum", "SHA1", "SHA256"];

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot publish {dist}: {action} {path}")]
    Io {
        dist: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot publish {dist}: repoctl.toml sets {field} to {configured:?}, but {dist} was published with {published:?}")]
    IdentityChanged {
        dist: String,
        field: &'static str,
        published: String,
        configured: String,
    },
    #[error("cannot publish {dist}: the served Release is dated {ahead} s ahead of this machine's clock")]
    ClockBehind { dist: String, ahead: i64 },
    #[error("cannot publish {dist}: the served Release at {path} is unreadable: {problem}")]
    ServedRelease {
        dist: String,
        path: PathBuf,
        problem: String,
    },
    #[error("cannot publish {dist}: {path} is not a symlink to a generation")]
    NotAGenerationLink { dist: String, path: PathBuf },
    #[error("cannot publish {dist}")]
    Index {
        dist: String,
        #[source]
        source: IndexError,
    },
    #[error("cannot publish {dist}: signing failed")]
    Signing {
        dist: String,
        #[source]
        source: crate::signing::SigningError,
    },
    #[error("cannot publish: the catalog failed")]
    Catalog(#[from] rusqlite::Error),
}

impl PublishError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PublishError::IdentityChanged { field, published, .. } => Some(format!(
                "apt refuses a repository whose {field} changes; set it back to {published:?} in repoctl.toml, or publish under a new dist name"
            )),
            PublishError::ClockBehind { .. } => Some(
                "apt ignores a Release older than the one it holds; fix the clock (NTP) or wait until it has caught up".into(),
            ),
            PublishError::NotAGenerationLink { .. } => Some(
                "move that directory away; repoctl publishes each dist as a symlink to public/.generations/<dist>/<N>".into(),
            ),
            _ => None,
        }
    }
}

/// What one dist's publish did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DistPublished {
    pub dist: String,
    pub generation: u64,
    pub date: i64,
    /// Indices rendered anew (the others were linked unchanged).
    pub indices_written: Vec<String>,
}

/// The generation currently served for a dist.
struct Served {
    generation: u64,
    dir: PathBuf,
    release: Release,
}

pub struct Publisher<'a> {
    pub public: &'a Path,
    /// `state/`: render threads open their own catalog and cache connections.
    pub state: &'a Path,
    pub config: &'a Config,
    pub signer: &'a Signer,
    pub now: i64,
}

impl Publisher<'_> {
    /// Publishes `dist` if anything it serves would change (or `force`).
    /// Returns `None` when there was nothing to do; nothing is written then.
    pub fn publish_dist(
        &self,
        dist: &str,
        dirty: &[(String, String)],
        force: bool,
    ) -> Result<Option<DistPublished>, PublishError> {
        let served = self.served(dist)?;
        let fields = self.release_fields(dist);
        if let Some(served) = &served {
            check_identity(dist, &served.release.fields, &fields)?;
        }
        let has_work = force || !dirty.is_empty() || self.needs_publish(served.as_ref(), &fields);
        if !has_work {
            return Ok(None);
        }

        let date = self.release_date(dist, served.as_ref())?;
        let generation = self.next_generation(dist, served.as_ref())?;
        let gen_dir = self.generations_dir(dist).join(generation.to_string());
        let io_err = |action: &'static str, path: &Path| {
            let (dist, path) = (dist.to_string(), path.to_path_buf());
            move |source| PublishError::Io {
                dist,
                action,
                path,
                source,
            }
        };
        fs::create_dir_all(&gen_dir).map_err(io_err("cannot create", &gen_dir))?;

        // Decide per index: link the served files, or render anew.
        let mut files = BTreeMap::new();
        let mut to_render = Vec::new();
        let repo = &self.config.repository;
        for component in &repo.components {
            for arch in &repo.architectures {
                let rel = format!("{component}/binary-{arch}");
                let is_dirty = dirty.iter().any(|(c, a)| c == component && a == arch);
                let reuse = served
                    .as_ref()
                    .filter(|_| !force && !is_dirty)
                    .and_then(|s| self.reusable(s, &rel).map(|sums| (s, sums)));
                match reuse {
                    Some((served, sums)) => {
                        let dir = gen_dir.join(&rel);
                        fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
                        for name in self.index_file_names() {
                            let to = dir.join(name);
                            fs::hard_link(served.dir.join(&rel).join(name), &to)
                                .map_err(io_err("cannot link", &to))?;
                        }
                        insert_index_sums(&mut files, &rel, sums);
                    }
                    None => to_render.push((component.as_str(), arch.as_str(), rel)),
                }
            }
        }
        let started = std::time::Instant::now();
        let cache_err = |source| PublishError::Index {
            dist: dist.to_string(),
            source: IndexError::Cache(source),
        };
        // Created (WAL, tables) here, before render threads open it at once:
        // switching a new database to WAL from two connections can fail busy.
        let mut cache =
            ChunkCache::open(&self.state.join(super::INDEX_CACHE_FILE)).map_err(cache_err)?;
        let rendered = self.render_indices(dist, &gen_dir, &to_render)?;
        cache.expire(self.now).map_err(cache_err)?;
        tracing::debug!(dist, indices = to_render.len(), elapsed = ?started.elapsed(), "rendered");
        for ((_, _, rel), sums) in to_render.iter().zip(rendered) {
            insert_index_sums(&mut files, rel, sums);
        }
        for component in &repo.components {
            for arch in &repo.architectures {
                let rel = format!("{component}/binary-{arch}");
                let dir = gen_dir.join(&rel);
                self.link_by_hash(&dir, &files, &rel)
                    .map_err(io_err("cannot link by-hash files in", &dir))?;
            }
        }
        let written: Vec<String> = to_render.into_iter().map(|(_, _, rel)| rel).collect();
        self.keep_older_by_hash(dist, &gen_dir, served.as_ref())
            .map_err(io_err("cannot link older by-hash files into", &gen_dir))?;

        let release = Release {
            fields: ReleaseFields {
                date,
                valid_until: self
                    .config
                    .publish
                    .valid_for_days
                    .map(|days| date + i64::from(days) * 86_400),
                ..fields
            },
            files,
        };
        self.write_signed_release(dist, &gen_dir, &release)?;
        self.stamp_new_files(&gen_dir, &written, date)
            .map_err(io_err("cannot set file times in", &gen_dir))?;
        tracing::debug!(dist, elapsed = ?started.elapsed(), "signed");
        sync_tree(&gen_dir).map_err(io_err("cannot fsync", &gen_dir))?;
        tracing::debug!(dist, elapsed = ?started.elapsed(), "synced");
        self.switch(dist, generation)
            .map_err(io_err("cannot switch the served link to", &gen_dir))?;
        self.prune_generations(dist, generation).map_err(io_err(
            "cannot prune old generations of",
            &self.generations_dir(dist),
        ))?;
        Ok(Some(DistPublished {
            dist: dist.to_string(),
            generation,
            date,
            indices_written: written,
        }))
    }

    /// Renders the given indices, one thread per core: each index streams
    /// its own rows and hashes its own text, so they parallelise cleanly.
    fn render_indices(
        &self,
        dist: &str,
        gen_dir: &Path,
        jobs: &[(&str, &str, String)],
    ) -> Result<Vec<[Checksums; 3]>, PublishError> {
        let index_err = |source| PublishError::Index {
            dist: dist.to_string(),
            source,
        };
        let render = |(component, arch, rel): &(&str, &str, String)| {
            let catalog = super::catalog::open(&self.state.join(super::CATALOG_FILE))
                .map_err(IndexError::Cache)?;
            // A streaming scan gains nothing from a page cache; keep memory flat.
            catalog
                .pragma_update(None, "cache_size", -1024)
                .map_err(IndexError::Cache)?;
            let mut cache = ChunkCache::open(&self.state.join(super::INDEX_CACHE_FILE))?;
            let target = IndexTarget {
                dist,
                component,
                architecture: arch,
                dir: &gen_dir.join(rel),
                write_plain: self.config.publish.write_uncompressed,
            };
            let sums = index::write_index(&catalog, &mut cache, &target)?;
            cache.settle(self.now)?;
            Ok::<_, IndexError>([sums.plain, sums.gzip, sums.xz])
        };
        super::workers::map(jobs, super::workers::cores(), render)
            .into_iter()
            .map(|r| r.map_err(index_err))
            .collect()
    }

    fn release_fields(&self, dist: &str) -> ReleaseFields {
        let repo = &self.config.repository;
        ReleaseFields {
            origin: repo.origin.clone(),
            label: repo.label.clone(),
            suite: dist.to_string(),
            codename: dist.to_string(),
            date: 0,
            valid_until: None,
            architectures: repo.architectures.clone(),
            components: repo.components.clone(),
            description: repo.description.clone(),
        }
    }

    /// Without dirty indices a dist is republished only if what it would say
    /// differs: new components or architectures, another description, the
    /// uncompressed index switched on or off, or a Valid-Until due for renewal.
    fn needs_publish(&self, served: Option<&Served>, fields: &ReleaseFields) -> bool {
        let Some(served) = served else {
            return true;
        };
        let old = &served.release.fields;
        if old.architectures != fields.architectures
            || old.components != fields.components
            || old.description != fields.description
        {
            return true;
        }
        let plain_on_disk = |rel: &str| served.dir.join(rel).join("Packages").exists();
        for component in &fields.components {
            for arch in &fields.architectures {
                let rel = format!("{component}/binary-{arch}");
                if self.reusable(served, &rel).is_none()
                    || plain_on_disk(&rel) != self.config.publish.write_uncompressed
                {
                    return true;
                }
            }
        }
        match (self.config.publish.valid_for_days, old.valid_until) {
            (None, None) => false,
            (Some(days), Some(until)) => until - self.now < i64::from(days) * 86_400 / 2,
            _ => true,
        }
    }

    /// The checksums of an index the served generation already has, if all
    /// its files are listed and present.
    fn reusable(&self, served: &Served, rel: &str) -> Option<[Checksums; 3]> {
        let get = |name: &str| served.release.files.get(&format!("{rel}/{name}")).cloned();
        let sums = [get("Packages")?, get("Packages.gz")?, get("Packages.xz")?];
        let present = self
            .index_file_names()
            .iter()
            .all(|name| served.dir.join(rel).join(name).exists());
        present.then_some(sums)
    }

    fn index_file_names(&self) -> &'static [&'static str] {
        if self.config.publish.write_uncompressed {
            &["Packages", "Packages.gz", "Packages.xz"]
        } else {
            &["Packages.gz", "Packages.xz"]
        }
    }

    /// Later than the served Date by at least a second, never more than a
    /// few seconds ahead of the clock.
    ///
    /// Strictly later because the new files carry the Date as their mtime,
    /// and HTTP's `If-Modified-Since` has one-second resolution: two
    /// publishes in one second would let a client keep the older index on a
    /// 304. So a dist is published at most once per second; a publish that
    /// comes sooner waits for the next second rather than dating ahead.
    fn release_date(&self, dist: &str, served: Option<&Served>) -> Result<i64, PublishError> {
        let previous = served.map_or(i64::MIN, |s| s.release.fields.date);
        let date = self.now.max(previous.saturating_add(1));
        if date > self.now + MAX_DATE_AHEAD_SECS {
            return Err(PublishError::ClockBehind {
                dist: dist.to_string(),
                ahead: date - self.now,
            });
        }
        if date == self.now + 1 && !super::clock_is_frozen() {
            wait_until(date);
        }
        Ok(date)
    }

    /// Gives the files this publish wrote (not the linked, unchanged ones)
    /// the Release Date as their mtime, which servers send as Last-Modified.
    fn stamp_new_files(&self, gen_dir: &Path, written: &[String], date: i64) -> io::Result<()> {
        let when = UNIX_EPOCH + Duration::from_secs(date.max(0) as u64);
        let indices = written.iter().flat_map(|rel| {
            self.index_file_names()
                .iter()
                .map(move |name| gen_dir.join(rel).join(name))
        });
        let signed = ["Release", "Release.gpg", "InRelease"].map(|name| gen_dir.join(name));
        for path in indices.chain(signed) {
            fs::File::open(&path)?.set_modified(when)?;
        }
        Ok(())
    }

    fn generations_dir(&self, dist: &str) -> PathBuf {
        self.public.join(".generations").join(dist)
    }

    fn dist_link(&self, dist: &str) -> PathBuf {
        self.public.join("dists").join(dist)
    }

    fn served(&self, dist: &str) -> Result<Option<Served>, PublishError> {
        let link = self.dist_link(dist);
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => {
                return Err(PublishError::NotAGenerationLink {
                    dist: dist.to_string(),
                    path: link,
                })
            }
        };
        let generation = target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| PublishError::NotAGenerationLink {
                dist: dist.to_string(),
                path: link.clone(),
            })?;
        let dir = self.generations_dir(dist).join(generation.to_string());
        let path = dir.join("Release");
        let text = fs::read_to_string(&path).map_err(|e| PublishError::ServedRelease {
            dist: dist.to_string(),
            path: path.clone(),
            problem: e.to_string(),
        })?;
        let release = Release::parse(&text).map_err(|problem| PublishError::ServedRelease {
            dist: dist.to_string(),
            path,
            problem,
        })?;
        Ok(Some(Served {
            generation,
            dir,
            release,
        }))
    }

    /// One past both the served generation and any leftover directory of an
    /// interrupted publish (never served; pruned with the old generations).
    fn next_generation(&self, dist: &str, served: Option<&Served>) -> Result<u64, PublishError> {
        let mut highest = served.map_or(0, |s| s.generation);
        let dir = self.generations_dir(dist);
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if let Some(n) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    highest = highest.max(n);
                }
            }
        }
        Ok(highest + 1)
    }

    /// Links each index file of `rel` under `by-hash/<algorithm>/<digest>`.
    fn link_by_hash(
        &self,
        dir: &Path,
        files: &BTreeMap<String, Checksums>,
        rel: &str,
    ) -> io::Result<()> {
        for name in self.index_file_names() {
            let Some(sums) = files.get(&format!("{rel}/{name}")) else {
                continue;
            };
            for (algorithm, digest) in HASH_DIRS.iter().zip([&sums.md5, &sums.sha1, &sums.sha256]) {
                let by_hash = dir.join("by-hash").join(algorithm);
                fs::create_dir_all(&by_hash)?;
                let link = by_hash.join(digest);
                if !link.exists() {
                    fs::hard_link(dir.join(name), link)?;
                }
            }
        }
        Ok(())
    }

    /// Links the indices that the last generations served into this one's
    /// `by-hash/`, so a client that fetched an older InRelease can still
    /// fetch what it names. Only what each old Release lists is carried, so
    /// nothing older than `KEEP_GENERATIONS` survives.
    fn keep_older_by_hash(
        &self,
        dist: &str,
        gen_dir: &Path,
        served: Option<&Served>,
    ) -> io::Result<()> {
        let Some(served) = served else { return Ok(()) };
        let oldest = served
            .generation
            .saturating_sub(KEEP_GENERATIONS - 2)
            .max(1);
        for generation in oldest..=served.generation {
            let old_dir = self.generations_dir(dist).join(generation.to_string());
            let release = if generation == served.generation {
                served.release.clone()
            } else {
                match fs::read_to_string(old_dir.join("Release"))
                    .ok()
                    .and_then(|text| Release::parse(&text).ok())
                {
                    Some(release) => release,
                    None => continue,
                }
            };
            for (path, sums) in &release.files {
                let source = old_dir.join(path);
                let Some(index_dir) = Path::new(path).parent() else {
                    continue;
                };
                if !source.is_file() {
                    continue;
                }
                for (algorithm, digest) in
                    HASH_DIRS.iter().zip([&sums.md5, &sums.sha1, &sums.sha256])
                {
                    let by_hash = gen_dir.join(index_dir).join("by-hash").join(algorithm);
                    let dest = by_hash.join(digest);
                    if dest.exists() {
                        continue;
                    }
                    fs::create_dir_all(&by_hash)?;
                    fs::hard_link(&source, &dest)?;
                }
            }
        }
        Ok(())
    }

    fn write_signed_release(
        &self,
        dist: &str,
        gen_dir: &Path,
        release: &Release,
    ) -> Result<(), PublishError> {
        let text = release.render();
        let when = UNIX_EPOCH + Duration::from_secs(release.fields.date.max(0) as u64);
        let signing = |source| PublishError::Signing {
            dist: dist.to_string(),
            source,
        };
        let inline = self
            .signer
            .clearsign_at(text.as_bytes(), when)
            .map_err(signing)?;
        let detached = self
            .signer
            .detached_at(text.as_bytes(), when)
            .map_err(signing)?;
        for (name, bytes) in [
            ("Release", text.as_bytes()),
            ("Release.gpg", &detached[..]),
            ("InRelease", &inline[..]),
        ] {
            let path = gen_dir.join(name);
            fs::write(&path, bytes).map_err(|source| PublishError::Io {
                dist: dist.to_string(),
                action: "cannot write",
                path,
                source,
            })?;
        }
        Ok(())
    }

    /// Points `public/dists/<dist>` at the generation with one rename.
    fn switch(&self, dist: &str, generation: u64) -> io::Result<()> {
        let link = self.dist_link(dist);
        let dists = self.public.join("dists");
        fs::create_dir_all(&dists)?;
        let temp = dists.join(format!("{}{dist}", durable::TEMP_PREFIX));
        let _ = fs::remove_file(&temp);
        let target = Path::new("..")
            .join(".generations")
            .join(dist)
            .join(generation.to_string());
        std::os::unix::fs::symlink(&target, &temp)?;
        fs::rename(&temp, &link)?;
        durable::sync_dir(&dists)
    }

    fn prune_generations(&self, dist: &str, current: u64) -> io::Result<()> {
        let dir = self.generations_dir(dist);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n + KEEP_GENERATIONS <= current {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

fn insert_index_sums(files: &mut BTreeMap<String, Checksums>, rel: &str, sums: [Checksums; 3]) {
    for (name, sums) in ["Packages", "Packages.gz", "Packages.xz"].iter().zip(sums) {
        files.insert(format!("{rel}/{name}"), sums);
    }
}

fn check_identity(
    dist: &str,
    published: &ReleaseFields,
    configured: &ReleaseFields,
) -> Result<(), PublishError> {
    for (field, old, new) in [
        ("Origin", &published.origin, &configured.origin),
        ("Label", &published.label, &configured.label),
        ("Codename", &published.codename, &configured.codename),
    ] {
        if old != new {
            return Err(PublishError::IdentityChanged {
                dist: dist.to_string(),
                field,
                published: old.clone(),
                configured: new.clone(),
            });
        }
    }
    Ok(())
}

/// Makes a freshly written generation durable before it is switched in:
/// every regular file and directory of it.
fn sync_tree(dir: &Path) -> io::Result<()> {
    let mut paths = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(io::Error::other)?;
        let kind = entry.file_type();
        if kind.is_dir() || kind.is_file() {
            paths.push(entry.into_path());
        }
    }
    durable::sync_all(&paths)
}

/// Sleeps until the wall clock has reached `unix_secs` (at most a second
/// here: see `release_date`).
fn wait_until(unix_secs: i64) {
    let target = UNIX_EPOCH + Duration::from_secs(unix_secs.max(0) as u64);
    if let Ok(left) = target.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(left);
    }
}
