//! The operator lifecycle: copy (promote), move, remove, prune, rollback and
//! restore. None of them deletes a package file; gc does that, later.
//!
//! Every command is a plan and its application: the plan is computed from
//! the catalog, `--dry-run` prints it, the real run computes the same plan
//! inside its write transaction and applies it, records each change in the
//! history, marks the touched indices dirty and publishes.

use std::collections::BTreeSet;

use rusqlite::Connection;
use serde::Serialize;

use super::catalog::lifecycle::{self as sql, Placed};
use super::catalog::{self, Event};
use super::publish::DistPublished;
use super::{now, Actor, RepoError, Repository};
use crate::config::Target;
use crate::deb::version::Version;

/// `NAME=VERSION` as operators write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub version: String,
}

impl PackageSpec {
    pub fn parse(text: &str) -> Result<PackageSpec, LifecycleError> {
        match text.split_once('=') {
            Some((name, version)) if !name.is_empty() && Version::parse(version).is_ok() => {
                Ok(PackageSpec {
                    name: name.to_string(),
                    version: version.to_string(),
                })
            }
            _ => Err(LifecycleError::BadSpec {
                spec: text.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.version)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{spec:?} is not NAME=VERSION")]
    BadSpec { spec: String },
    #[error("{what} is not published in {target}")]
    NotPublished { what: String, target: Target },
    #[error("{spec} is not withdrawn from {target}")]
    NotWithdrawn { spec: String, target: Target },
    #[error("{package} has no version below {version} in {target} to roll back to")]
    NothingBelow {
        package: String,
        version: String,
        target: Target,
    },
}

impl LifecycleError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            LifecycleError::BadSpec { .. } => "write the package as NAME=VERSION, e.g. vrmd-whois=42".into(),
            LifecycleError::NotPublished { target, .. } => {
                format!("see what is there with `repoctl list --dist {} --component {}`", target.dist, target.component)
            }
            LifecycleError::NotWithdrawn { .. } => {
                "restore brings back what a rollback withdrew; see `repoctl history` for what was, and `repoctl copy` to publish it anew".into()
            }
            LifecycleError::NothingBelow { .. } => {
                "remove the version instead (repoctl remove NAME=VERSION --from DIST/COMPONENT)".into()
            }
        })
    }
}

/// What a change does to one file in one dist/component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Into the index (copy, restore).
    Publish,
    /// Out of the index (remove, prune, the source of a move).
    Unpublish,
    /// Out of the index but kept for `restore` (rollback).
    Withdraw,
    /// Back into the index from a rollback.
    Restore,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub effect: Effect,
    /// The file, with the dist/component the change is made in.
    #[serde(flatten)]
    pub file: Placed,
}

/// What a lifecycle command did (or, with --dry-run, would do).
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: &'static str,
    pub dry_run: bool,
    pub changes: Vec<Change>,
    pub published: Vec<DistPublished>,
}

impl Repository {
    /// Publishes `spec` (every architecture) from `from` in each of `to`;
    /// with `moving`, also takes it out of `from`. The pool keeps one file.
    pub fn copy(
        &mut self,
        spec: &PackageSpec,
        from: &Target,
        to: &[Target],
        moving: bool,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome, RepoError> {
        for target in std::iter::once(from).chain(to) {
            self.check_target(target)?;
        }
        let command = if moving { "move" } else { "copy" };
        self.carry_out(command, actor, dry_run, |conn| {
            let files = published_or_fail(conn, spec, from)?;
            let mut changes = Vec::new();
            for target in to.iter().filter(|t| *t != from) {
                let there = sql::published(
                    conn,
                    Some(&target.dist),
                    Some(&target.component),
                    Some(&spec.name),
                    Some(&spec.version),
                )?;
                for file in files
                    .iter()
                    .filter(|f| !there.iter().any(|t| t.file_id == f.file_id))
                {
                    changes.push(change(Effect::Publish, file, target));
                }
            }
            if moving && to.iter().any(|t| t != from) {
                changes.extend(files.iter().map(|f| change(Effect::Unpublish, f, from)));
            }
            Ok(changes)
        })
    }

    /// Takes `spec` out of `from` (published or withdrawn there).
    pub fn remove(
        &mut self,
        spec: &PackageSpec,
        from: &Target,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome, RepoError> {
        self.check_target(from)?;
        self.carry_out("remove", actor, dry_run, |conn| {
            let (d, c) = (Some(from.dist.as_str()), Some(from.component.as_str()));
            let mut files = sql::published(conn, d, c, Some(&spec.name), Some(&spec.version))?;
            files.extend(sql::withdrawn(
                conn,
                d,
                c,
                Some(&spec.name),
                Some(&spec.version),
            )?);
            if files.is_empty() {
                return Err(not_published(spec.to_string(), from));
            }
            Ok(files
                .iter()
                .map(|f| change(Effect::Unpublish, f, from))
                .collect())
        })
    }

    /// Keeps the `keep` highest versions (dpkg order) per package, dist,
    /// component and architecture; takes the others out of their index.
    pub fn prune(
        &mut self,
        package: Option<&str>,
        keep: usize,
        dist: Option<&str>,
        component: Option<&str>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome, RepoError> {
        self.check_filters(dist, component)?;
        self.carry_out("prune", actor, dry_run, |conn| {
            Ok(prune_plan(conn, package, keep, dist, component)?)
        })
    }

    /// Withdraws from `target` every version of `package` above `to`
    /// (default: the newest version), so "latest" is the older one again.
    pub fn rollback(
        &mut self,
        package: &str,
        target: &Target,
        to: Option<&str>,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome, RepoError> {
        self.check_target(target)?;
        self.carry_out("rollback", actor, dry_run, |conn| {
            let files = sql::published(
                conn,
                Some(&target.dist),
                Some(&target.component),
                Some(package),
                None,
            )?;
            let mut versions: Vec<Version> = files
                .iter()
                .filter_map(|f| Version::parse(&f.version).ok())
                .collect();
            versions.sort();
            versions.dedup();
            let Some(newest) = versions.last().cloned() else {
                return Err(not_published(package.to_string(), target));
            };
            let keep_up_to = match to {
                Some(to) => {
                    let to = Version::parse(to).map_err(|_| LifecycleError::BadSpec {
                        spec: format!("{package}={to}"),
                    })?;
                    if !versions.contains(&to) {
                        return Err(not_published(format!("{package}={to}"), target));
                    }
                    to
                }
                None => match versions.iter().rev().nth(1) {
                    Some(below) => below.clone(),
                    None => {
                        return Err(LifecycleError::NothingBelow {
                            package: package.to_string(),
                            version: newest.to_string(),
                            target: target.clone(),
                        }
                        .into())
                    }
                },
            };
            Ok(files
                .iter()
                .filter(|f| Version::parse(&f.version).is_ok_and(|v| v > keep_up_to))
                .map(|f| change(Effect::Withdraw, f, target))
                .collect())
        })
    }

    /// Brings back `spec` into `target`, where a rollback withdrew it.
    pub fn restore(
        &mut self,
        spec: &PackageSpec,
        target: &Target,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome, RepoError> {
        self.check_target(target)?;
        self.carry_out("restore", actor, dry_run, |conn| {
            let files = sql::withdrawn(
                conn,
                Some(&target.dist),
                Some(&target.component),
                Some(&spec.name),
                Some(&spec.version),
            )?;
            if files.is_empty() {
                return Err(LifecycleError::NotWithdrawn {
                    spec: spec.to_string(),
                    target: target.clone(),
                }
                .into());
            }
            Ok(files
                .iter()
                .map(|f| change(Effect::Restore, f, target))
                .collect())
        })
    }

    /// The one path of every lifecycle command: plan; then, unless a dry
    /// run, plan again under the writer lock, apply, record and publish.
    fn carry_out(
        &mut self,
        command: &'static str,
        actor: &Actor,
        dry_run: bool,
        plan: impl Fn(&Connection) -> Result<Vec<Change>, RepoError>,
    ) -> Result<Outcome, RepoError> {
        if dry_run {
            return Ok(Outcome {
                command,
                dry_run,
                changes: plan(&self.catalog)?,
                published: Vec::new(),
            });
        }
        let _lock = self.lock()?;
        let now = now();
        let architectures = self.config.repository.architectures.clone();
        let changes = catalog::write(&mut self.catalog, |tx| -> Result<_, RepoError> {
            let changes = plan(tx)?;
            for change in &changes {
                apply(tx, command, actor, now, change, &architectures)?;
            }
            Ok(changes)
        })?;
        let published = if changes.is_empty() {
            Vec::new()
        } else {
            self.publish_locked(false, actor.door)?
        };
        Ok(Outcome {
            command,
            dry_run,
            changes,
            published,
        })
    }

    /// `[retention]` of repoctl.toml: a prune per component, run by every
    /// publish (with the writer lock held) before it renders, recorded as
    /// actor `retention` at the door the publish came through.
    pub(super) fn apply_retention_locked(&mut self, door: super::Door) -> Result<usize, RepoError> {
        if self.config.retention.is_empty() {
            return Ok(0);
        }
        let actor = Actor {
            door,
            name: "retention".into(),
        };
        let retention = self.config.retention.clone();
        let architectures = self.config.repository.architectures.clone();
        let now = now();
        catalog::write(&mut self.catalog, |tx| -> Result<usize, RepoError> {
            let mut pruned = 0;
            for (component, keep) in &retention {
                for change in prune_plan(tx, None, *keep, None, Some(component))? {
                    apply(tx, "prune", &actor, now, &change, &architectures)?;
                    pruned += 1;
                }
            }
            Ok(pruned)
        })
    }

    fn check_filters(&self, dist: Option<&str>, component: Option<&str>) -> Result<(), RepoError> {
        let repo = &self.config.repository;
        let known = |v: &str, all: &[String]| all.iter().any(|k| k == v);
        match (dist, component) {
            (Some(d), _) if !known(d, &repo.dists) => {
                Err(self.unknown_target(d, component.unwrap_or("*")))
            }
            (_, Some(c)) if !known(c, &repo.components) => {
                Err(self.unknown_target(dist.unwrap_or("*"), c))
            }
            _ => Ok(()),
        }
    }
}

fn change(effect: Effect, file: &Placed, target: &Target) -> Change {
    Change {
        effect,
        file: Placed {
            dist: target.dist.clone(),
            component: target.component.clone(),
            ..file.clone()
        },
    }
}

fn not_published(what: String, target: &Target) -> RepoError {
    LifecycleError::NotPublished {
        what,
        target: target.clone(),
    }
    .into()
}

fn published_or_fail(
    conn: &Connection,
    spec: &PackageSpec,
    from: &Target,
) -> Result<Vec<Placed>, RepoError> {
    let files = sql::published(
        conn,
        Some(&from.dist),
        Some(&from.component),
        Some(&spec.name),
        Some(&spec.version),
    )?;
    if files.is_empty() {
        return Err(not_published(spec.to_string(), from));
    }
    Ok(files)
}

/// Every published file below the `keep` highest versions of its package,
/// dist, component and architecture.
pub(super) fn prune_plan(
    conn: &Connection,
    package: Option<&str>,
    keep: usize,
    dist: Option<&str>,
    component: Option<&str>,
) -> Result<Vec<Change>, catalog::SqlError> {
    let mut files = sql::published(conn, dist, component, package, None)?;
    // Group order (already sorted by name, dist, component, arch), then
    // newest first within a group.
    files.sort_by(|a, b| {
        (&a.package, &a.dist, &a.component, &a.architecture)
            .cmp(&(&b.package, &b.dist, &b.component, &b.architecture))
            .then_with(|| compare(&b.version, &a.version))
    });
    let mut changes = Vec::new();
    let mut kept = 0;
    let mut group: Option<(String, String, String, String)> = None;
    for file in files {
        let key = (
            file.package.clone(),
            file.dist.clone(),
            file.component.clone(),
            file.architecture.clone(),
        );
        if group.as_ref() != Some(&key) {
            group = Some(key);
            kept = 0;
        }
        if kept < keep {
            kept += 1;
        } else {
            let target = Target {
                dist: file.dist.clone(),
                component: file.component.clone(),
            };
            changes.push(change(Effect::Unpublish, &file, &target));
        }
    }
    Ok(changes)
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Applies one change in `tx`: the catalog, the dirty marks, the history.
fn apply(
    tx: &Connection,
    command: &str,
    actor: &Actor,
    now: i64,
    change: &Change,
    architectures: &[String],
) -> Result<(), RepoError> {
    let f = &change.file;
    match change.effect {
        Effect::Publish | Effect::Restore => {
            sql::list_again(tx, &f.dist, &f.component, f.file_id, now)?
        }
        Effect::Unpublish => {
            sql::unlist(tx, &f.dist, &f.component, f.file_id)?;
            sql::mark_unlisted_if_orphan(tx, f.file_id, now)?;
        }
        Effect::Withdraw => sql::withdraw(tx, &f.dist, &f.component, f.file_id, now)?,
    }
    let archs: BTreeSet<&str> = if f.architecture == "all" {
        architectures.iter().map(String::as_str).collect()
    } else {
        BTreeSet::from([f.architecture.as_str()])
    };
    catalog::mark_dirty(
        tx,
        &f.dist,
        &f.component,
        &archs.into_iter().collect::<Vec<_>>(),
    )?;
    catalog::record(
        tx,
        &Event {
            at: now,
            door: actor.door.as_str(),
            actor: &actor.name,
            action: command,
            package: Some(&f.package),
            version: Some(&f.version),
            architecture: Some(&f.architecture),
            dist: Some(&f.dist),
            component: Some(&f.component),
            detail: serde_json::json!({ "effect": change.effect, "filename": f.filename }),
        },
    )?;
    Ok(())
}
