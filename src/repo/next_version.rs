//! The next version of a package: the highest plain-integer version it was
//! ever published with, plus one, and never a number someone reserved.
//!
//! Owns the rule (one function for every source of versions: the local
//! catalog or a remote repository's indices) and reservations. A highest
//! version that is not a plain integer (an epoch, dots, a revision) is an
//! error that names it: guessing would hand out a number that sorts below it
//! and that apt would never install.

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use super::catalog::{self, Reservation, SqlError};
use super::Actor;
use crate::deb::version::Version;

/// One published version and where it is (`trusty/dev amd64`, or `pool` for
/// a file in no index).
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: Version,
    pub place: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextVersion {
    pub package: String,
    /// The number to build next.
    pub next: u64,
    /// The highest version seen (dpkg order), if any.
    pub highest: Option<String>,
    /// The highest live reservation, which `next` is above.
    pub reserved_up_to: Option<u64>,
    /// Set when this call reserved `next`.
    pub reservation: Option<Reservation>,
}

#[derive(Debug, thiserror::Error)]
pub enum NextVersionError {
    #[error("the highest version of {package} is {version} ({places}), which is not a plain integer, so there is no \"next\" integer above it")]
    NotInteger {
        package: String,
        version: String,
        places: String,
    },
    #[error("{package} {version} ({place}) has an invalid version: {reason}")]
    Invalid {
        package: String,
        version: String,
        place: String,
        reason: String,
    },
    #[error("the next version of {package} would overflow")]
    Overflow { package: String },
    #[error("the catalog failed")]
    Catalog(#[from] SqlError),
}

impl NextVersionError {
    pub fn hint(&self) -> Option<String> {
        match self {
            NextVersionError::NotInteger { .. } => Some(
                "build with an explicit version that sorts above it (e.g. `repoctl build --force-version`), or remove that version from the repository".into(),
            ),
            NextVersionError::Invalid { .. } => {
                Some("remove or fix that package in the repository it came from".into())
            }
            _ => None,
        }
    }
}

/// The rule itself: the highest version (dpkg order) must be a plain
/// integer N, and the answer is N + 1 (or 1 when nothing was seen), raised
/// above every live reservation.
pub fn next_from(
    package: &str,
    seen: &[Seen],
    reserved_up_to: Option<u64>,
) -> Result<NextVersion, NextVersionError> {
    let highest = seen.iter().map(|s| &s.version).max();
    let base = match highest {
        None => 0,
        Some(version) => version.as_plain_integer().ok_or_else(|| {
            let mut places: Vec<&str> = seen
                .iter()
                .filter(|s| &s.version == version)
                .map(|s| s.place.as_str())
                .collect();
            places.sort_unstable();
            places.dedup();
            NextVersionError::NotInteger {
                package: package.to_string(),
                version: version.to_string(),
                places: places.join(", "),
            }
        })?,
    };
    let floor = base.max(reserved_up_to.unwrap_or(0));
    let next = floor
        .checked_add(1)
        .ok_or_else(|| NextVersionError::Overflow {
            package: package.to_string(),
        })?;
    Ok(NextVersion {
        package: package.to_string(),
        next,
        highest: highest.map(ToString::to_string),
        reserved_up_to,
        reservation: None,
    })
}

/// What the catalog knows of `package`, in the shape [`next_from`] takes.
pub fn seen_in_catalog(
    conn: &Connection,
    package: &str,
    dist: Option<&str>,
    component: Option<&str>,
) -> Result<Vec<Seen>, NextVersionError> {
    catalog::version_places(conn, package, dist, component)?
        .into_iter()
        .map(|row| {
            let place = match (&row.dist, &row.component) {
                (Some(d), Some(c)) => format!("{d}/{c} {}", row.architecture),
                _ => format!("pool {}", row.architecture),
            };
            let version = Version::parse(&row.version).map_err(|e| NextVersionError::Invalid {
                package: package.to_string(),
                version: row.version.clone(),
                place: place.clone(),
                reason: e.kind.to_string(),
            })?;
            Ok(Seen { version, place })
        })
        .collect()
}

/// The next version from the local catalog; with `reserve`, the number is
/// also recorded for its holder until `expires_at`, atomically: concurrent
/// callers serialise on the catalog's write lock and get distinct numbers.
/// The history names who reserved (door and token or user), and the holder.
pub fn next_in_catalog(
    conn: &mut Connection,
    package: &str,
    dist: Option<&str>,
    component: Option<&str>,
    reserve: Option<(&str, &Actor, i64)>,
    now: i64,
) -> Result<NextVersion, NextVersionError> {
    let Some((holder, by, ttl)) = reserve else {
        let seen = seen_in_catalog(conn, package, dist, component)?;
        let reserved = catalog::highest_reservation(conn, package, now)?;
        return next_from(package, &seen, reserved);
    };
    // Reservations are repository-wide: a number is never handed out twice
    // anywhere, whatever dist or component the caller asked about.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let seen = seen_in_catalog(&tx, package, None, None)?;
    let reserved = catalog::highest_reservation(&tx, package, now)?;
    let mut answer = next_from(package, &seen, reserved)?;
    let reservation = Reservation {
        package: package.to_string(),
        version: answer.next,
        holder: holder.to_string(),
        created_at: now,
        expires_at: now + ttl,
    };
    catalog::insert_reservation(&tx, &reservation)?;
    catalog::record(
        &tx,
        &catalog::Event {
            at: now,
            door: by.door.as_str(),
            actor: &by.name,
            action: "reserve",
            package: Some(package),
            version: Some(&answer.next.to_string()),
            architecture: None,
            dist: None,
            component: None,
            detail: serde_json::json!({
                "holder": holder,
                "expires_at": reservation.expires_at,
            }),
        },
    )?;
    tx.commit()?;
    answer.reservation = Some(reservation);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(versions: &[&str]) -> Vec<Seen> {
        versions
            .iter()
            .map(|v| Seen {
                version: Version::parse(v).unwrap(),
                place: "trusty/dev all".into(),
            })
            .collect()
    }

    #[test]
    fn a_new_package_starts_at_one() {
        assert_eq!(next_from("p", &[], None).unwrap().next, 1);
    }

    #[test]
    fn integers_compare_as_numbers_not_strings() {
        let versions: Vec<String> = (1..=12).map(|n| n.to_string()).collect();
        let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
        assert_eq!(next_from("p", &seen(&refs), None).unwrap().next, 13);
    }

    #[test]
    fn reservations_push_the_answer_up() {
        assert_eq!(next_from("p", &seen(&["4"]), Some(9)).unwrap().next, 10);
        assert_eq!(next_from("p", &seen(&["12"]), Some(9)).unwrap().next, 13);
    }

    #[test]
    fn a_highest_version_that_is_not_an_integer_is_named() {
        for highest in ["1:5", "12.0-1", "13a"] {
            let err = next_from("p", &seen(&["12", highest]), None).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(highest) && text.contains("trusty/dev all"),
                "{text}"
            );
        }
        // A non-integer below the highest integer does not matter.
        assert_eq!(next_from("p", &seen(&["1.5", "7"]), None).unwrap().next, 8);
    }
}
