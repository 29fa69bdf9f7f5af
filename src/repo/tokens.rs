//! API tokens: who may upload where, and who may operate the repository.
//!
//! A token is 32 random bytes shown once, at creation; the catalog keeps
//! only its SHA-256, so a copy of the catalog grants nothing. Checking a
//! presented token hashes it and compares it with every live token's hash in
//! constant time, so neither the comparison nor the lookup tells an attacker
//! how close a guess was.
//!
//! Owns the token format, scopes and the `tokens` table's rows; the HTTP
//! server asks `authenticate` and decides what the grant allows.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{catalog, now, Actor, RepoError, Repository};
use crate::config::Target;

/// Every token starts with this, so secret scanners and people recognise one.
const PREFIX: &str = "repoctl_";

/// A token as `token list` shows it (never the token itself).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    /// `dist/component` pairs this token may upload to.
    pub uploads: Vec<String>,
    /// May run operator actions (copy, move, remove, prune, rollback, ...)
    /// and upload anywhere.
    pub operator: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What a presented token allows.
#[derive(Debug, Clone)]
pub struct Grant {
    pub name: String,
    pub uploads: Vec<Target>,
    pub operator: bool,
}

impl Grant {
    pub fn may_upload(&self, target: &Target) -> bool {
        self.operator || self.uploads.contains(target)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("a token named {name} already exists{}", if *.revoked { " (revoked)" } else { "" })]
    Exists { name: String, revoked: bool },
    #[error("no token is named {name}")]
    Unknown { name: String },
    #[error("invalid upload scope {scope:?}: {reason}")]
    BadScope { scope: String, reason: String },
    #[error("cannot create a token: the system's random source failed: {0}")]
    Random(String),
}

impl TokenError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            TokenError::BadName { .. } => {
                "use letters, digits, '-', '_' and '.' (e.g. the build host's name)".into()
            }
            TokenError::Exists { .. } => {
                "pick another name; names stay taken after a revoke so the history stays unambiguous".into()
            }
            TokenError::Unknown { .. } => "see `repoctl token list` for the names".into(),
            TokenError::BadScope { .. } => {
                "give DIST/COMPONENT pairs from repoctl.toml, comma-separated, e.g. --upload trusty/dev,precise/dev".into()
            }
            TokenError::Random(_) => return None,
        })
    }
}

impl Repository {
    /// Creates a token and returns it with its record. The token is not
    /// stored and cannot be shown again.
    pub fn create_token(
        &mut self,
        name: &str,
        uploads: &[String],
        operator: bool,
        actor: &Actor,
    ) -> Result<(String, TokenInfo), RepoError> {
        check_name(name)?;
        for scope in uploads {
            self.check_scope(scope)?;
        }
        let token = new_token()?;
        let info = TokenInfo {
            name: name.to_string(),
            uploads: uploads.to_vec(),
            operator,
            created_at: now(),
            revoked_at: None,
        };
        catalog::write(&mut self.catalog, |tx| -> Result<(), RepoError> {
            if let Some(existing) = token_row(tx, name)? {
                return Err(TokenError::Exists {
                    name: name.to_string(),
                    revoked: existing.revoked_at.is_some(),
                }
                .into());
            }
            tx.execute(
                "INSERT INTO tokens (name, sha256, uploads, operator, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, digest(&token), info.uploads.join(","), operator, info.created_at],
            )?;
            record(tx, actor, "token-create", &info)?;
            Ok(())
        })?;
        Ok((token, info))
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, RepoError> {
        let mut stmt = self.catalog.prepare(
            "SELECT name, uploads, operator, created_at, revoked_at FROM tokens ORDER BY name",
        )?;
        let rows = stmt.query_map([], info_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token at once: the next request that presents it gets 401.
    pub fn revoke_token(&mut self, name: &str, actor: &Actor) -> Result<TokenInfo, RepoError> {
        catalog::write(&mut self.catalog, |tx| -> Result<TokenInfo, RepoError> {
            let Some(mut info) = token_row(tx, name)? else {
                return Err(TokenError::Unknown {
                    name: name.to_string(),
                }
                .into());
            };
            if info.revoked_at.is_none() {
                let at = now();
                tx.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1",
                    params![name, at],
                )?;
                info.revoked_at = Some(at);
                record(tx, actor, "token-revoke", &info)?;
            }
            Ok(info)
        })
    }

    /// The grant of a live token, or `None` for a wrong or revoked one.
    pub fn authenticate(&self, presented: &str) -> Result<Option<Grant>, RepoError> {
        let presented = digest(presented);
        let mut stmt = self.catalog.prepare_cached(
            "SELECT name, uploads, operator, sha256 FROM tokens WHERE revoked_at IS NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut found = None;
        // Compare with every row, never stopping early.
        while let Some(row) = rows.next()? {
            let stored: String = row.get(3)?;
            if bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(Grant {
                    name: row.get(0)?,
                    uploads: parse_scopes(&row.get::<_, String>(1)?),
                    operator: row.get(2)?,
                });
            }
        }
        Ok(found)
    }

    fn check_scope(&self, scope: &str) -> Result<(), RepoError> {
        let bad = |reason: String| TokenError::BadScope {
            scope: scope.to_string(),
            reason,
        };
        let Some((dist, component)) = scope.split_once('/') else {
            return Err(bad("expected DIST/COMPONENT".into()).into());
        };
        if !self.config.has_target(dist, component) {
            let repo = &self.config.repository;
            return Err(bad(format!(
                "this repository publishes dists {} and components {}",
                repo.dists.join(", "),
                repo.components.join(", ")
            ))
            .into());
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let reason = if name.is_empty() || name.len() > 64 {
        Some("must be 1 to 64 characters long")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("has a character other than letters, digits, '-', '_' and '.'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TokenError::BadName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn new_token() -> Result<String, TokenError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("{PREFIX}{}", hex::encode(secret)))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn parse_scopes(text: &str) -> Vec<Target> {
    text.split(',')
        .filter_map(|scope| scope.split_once('/'))
        .map(|(dist, component)| Target {
            dist: dist.to_string(),
            component: component.to_string(),
        })
        .collect()
}

fn token_row(conn: &Connection, name: &str) -> Result<Option<TokenInfo>, catalog::SqlError> {
    conn.query_row(
        "SELECT name, uploads, operator, created_at, revoked_at FROM tokens WHERE name = ?1",
        [name],
        info_from_row,
    )
    .optional()
}

fn info_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    let uploads: String = row.get(1)?;
    Ok(TokenInfo {
        name: row.get(0)?,
        uploads: uploads
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        operator: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

/// Token changes are in the history like every other change (never the token).
fn record(
    tx: &Connection,
    actor: &Actor,
    action: &str,
    info: &TokenInfo,
) -> Result<(), catalog::SqlError> {
    catalog::record(
        tx,
        &catalog::Event {
            at: info.revoked_at.unwrap_or(info.created_at),
            door: actor.door.as_str(),
            actor: &actor.name,
            action,
            package: None,
            version: None,
            architecture: None,
            dist: None,
            component: None,
            detail: serde_json::json!({
                "token": info.name,
                "uploads": info.uploads,
                "operator": info.operator,
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognisable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert_ne!(a, b);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("build-host.example_1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name("a/b").is_err());
    }

    #[test]
    fn scopes_parse_from_their_stored_form() {
        let scopes = parse_scopes("trusty/dev,precise/main");
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[1].to_string(), "precise/main");
        assert!(parse_scopes("").is_empty());
    }
}
