//! `repoctl history`: who changed what, when, through which door.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::Problem;
use crate::repo::Repository;

/// Every change in order: add, copy, move, remove, prune, rollback, restore,
/// publish, gc, token changes; with time (UTC), door (cli, http, incoming),
/// user or token name, and what changed.
///
/// Examples:
///   repoctl history vrmd-whois
///   repoctl history --since 2026-11-01 --json
///   repoctl history --since 2h
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only changes of this package.
    package: Option<String>,
    /// Only changes at or after T: a date (2026-11-29), a UTC time
    /// (2026-11-29T14:00:00Z), Unix seconds, or an age (30m, 2h, 7d).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// At most this many (the newest ones).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Print a JSON array of {id, at, door, actor, action, package, version,
    /// architecture, dist, component, detail}, oldest first.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let repo = Repository::open(root)?;
    let mut rows = repo.history(args.package.as_deref(), since, args.limit)?;
    rows.reverse();
    if args.json {
        super::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        let when = httpdate_utc(row.at);
        let what = match (&row.package, &row.version) {
            (Some(p), Some(v)) => format!("{p}={v}"),
            (Some(p), None) => p.clone(),
            _ => "-".into(),
        };
        let place = match (&row.dist, &row.component) {
            (Some(d), Some(c)) => format!("{d}/{c}"),
            (Some(d), None) => d.clone(),
            _ => "-".into(),
        };
        println!(
            "{when}\t{}\t{}\t{}\t{what}\t{}\t{place}\t{}",
            row.door,
            row.actor,
            row.action,
            row.architecture.as_deref().unwrap_or("-"),
            row.detail
        );
    }
    if rows.is_empty() {
        eprintln!("no changes match");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: a date, a UTC time, Unix seconds, or an age before now.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    let bad = || {
        Problem::new(
            format!("--since {text:?} is not a time"),
            "give 2026-11-29, 2026-11-29T14:00:00Z, Unix seconds, or an age such as 30m, 2h, 7d",
        )
    };
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    if let Some((number, unit)) = text.split_at_checked(text.len().saturating_sub(1)) {
        if let (Ok(n), Some(scale)) = (
            number.parse::<i64>(),
            match unit {
                "s" => Some(1),
                "m" => Some(60),
                "h" => Some(3600),
                "d" => Some(86_400),
                _ => None,
            },
        ) {
            return Ok(crate::repo::now() - n * scale);
        }
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    parse_rfc3339_utc(&full).ok_or_else(|| bad().into())
}

/// `YYYY-MM-DDTHH:MM:SSZ` to Unix seconds (days from the civil calendar).
fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn httpdate_utc(at: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64);
    httpdate::fmt_http_date(time).replace("GMT", "UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_dates_times_seconds_and_ages() {
        assert_eq!(parse_since("2026-11-29").unwrap(), 1_795_910_400);
        assert_eq!(parse_since("1970-01-02T00:00:01Z").unwrap(), 86_401);
        assert_eq!(parse_since("12345").unwrap(), 12_345);
        let two_hours_ago = parse_since("2h").unwrap();
        assert!((crate::repo::now() - two_hours_ago - 7200).abs() <= 1);
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }
}
