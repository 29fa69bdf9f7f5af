//! `deb::version` against the real `dpkg --compare-versions`: the order of
//! 10,000 generated pairs, and the accept/refuse verdict and reason text for
//! a table of bad versions and for 3,000 generated strings.
//!
//! dpkg is a required peer: without it these tests fail, they do not skip.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::thread;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use repoctl::deb::version::{Version, VersionErrorKind};

const PAIRS: usize = 10_000;
const FUZZED_STRINGS: usize = 3_000;

/// Runs `dpkg --compare-versions -- a relation b` in the C locale, so that
/// its messages are the untranslated reasons.
fn dpkg_compare(a: &str, relation: &str, b: &str) -> Output {
    Command::new("dpkg")
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .args(["--compare-versions", "--", a, relation, b])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `dpkg --compare-versions` (these tests need dpkg installed): {e}")
        })
}

/// Maps `work` over `items` on a few threads, keeping the order: each item
/// costs a dpkg process of a millisecond or more.
fn par_map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let chunk = items.len().div_ceil(threads).max(1);
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&work).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("worker thread panicked"))
            .collect()
    })
}

fn relation(order: Ordering) -> &'static str {
    match order {
        Ordering::Less => "lt",
        Ordering::Equal => "eq",
        Ordering::Greater => "gt",
    }
}

/// What dpkg says of `a` against `b`, asked relation by relation; for
/// reporting a disagreement.
fn dpkg_order(a: &str, b: &str) -> String {
    for order in [Ordering::Less, Ordering::Equal, Ordering::Greater] {
        let output = dpkg_compare(a, relation(order), b);
        if output.status.code() == Some(0) {
            return relation(order).to_owned();
        }
        if output.status.code() != Some(1) {
            return format!("{:?}", String::from_utf8_lossy(&output.stderr));
        }
    }
    "none of lt, eq, gt".to_owned()
}

/// A valid version built from parts, so that mutations keep it valid: the
/// upstream starts with a digit, holds `:` only under an epoch and `-` only
/// before a revision; the revision is non-empty and has no `-`.
#[derive(Clone, Debug)]
struct Parts {
    epoch: Option<String>,
    upstream: String,
    revision: Option<String>,
}

impl Parts {
    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(epoch) = &self.epoch {
            text.push_str(epoch);
            text.push(':');
        }
        text.push_str(&self.upstream);
        if let Some(revision) = &self.revision {
            text.push('-');
            text.push_str(revision);
        }
        text
    }

    fn random(rng: &mut StdRng) -> Parts {
        let epoch = rng.gen_bool(0.3).then(|| random_epoch(rng));
        let revision = rng.gen_bool(0.6).then(|| random_revision(rng));
        let upstream = random_upstream(rng, epoch.is_some(), revision.is_some());
        Parts {
            epoch,
            upstream,
            revision,
        }
    }

    /// A near neighbour of `self`: the pairs where an ordering bug would hide.
    fn mutate(&self, rng: &mut StdRng) -> Parts {
        let mut next = self.clone();
        for _ in 0..rng.gen_range(1..=2) {
            match rng.gen_range(0..9) {
                0 => next.upstream.push_str(pick(rng, TAILS)),
                1 => match &mut next.revision {
                    Some(revision) => revision.push_str(pick(rng, TAILS)),
                    None => next.revision = Some(pick(rng, &["0", "00", "1", "~1"]).to_owned()),
                },
                2 => next.epoch = pick_epoch(rng),
                3 => next.upstream = add_leading_zero(rng, &next.upstream),
                4 => {
                    if let Some(revision) = &next.revision {
                        next.revision = Some(add_leading_zero(rng, revision));
                    }
                }
                5 => next.upstream = replace_one(rng, &next),
                6 => {
                    let cut = rng.gen_range(1..=next.upstream.len());
                    let upstream = next.upstream[..cut].to_owned();
                    if next.revision.is_some() || !upstream.contains('-') {
                        next.upstream = upstream;
                    }
                }
                7 => {
                    if !next.upstream.contains('-') {
                        next.revision = None;
                    }
                }
                _ => {
                    let last = next.upstream.pop();
                    let bump = match last.and_then(|c| c.to_digit(10)) {
                        Some(d) => char::from_digit((d + 1) % 10, 10).unwrap_or('0'),
                        None => last.unwrap_or('0'),
                    };
                    next.upstream.push(bump);
                }
            }
        }
        if next.epoch.is_none() {
            next.upstream = next.upstream.replace(':', ".");
        }
        next
    }
}

const LETTERS: &[&str] = &["a", "b", "z", "A", "Z", "rc", "dfsg", "ubuntu", "bpo"];
const TAILS: &[&str] = &[
    "~", "~~", "0", "00", "1", "a", "A", ".0", ".", "+", "~a", "+b1",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or("")
}

fn random_digits(rng: &mut StdRng) -> String {
    let mut digits = String::new();
    if rng.gen_bool(0.2) {
        digits.push_str(&"0".repeat(rng.gen_range(1..=2)));
    }
    let len = rng.gen_range(1..=3);
    for _ in 0..len {
        digits.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    digits
}

fn random_epoch(rng: &mut StdRng) -> String {
    pick(rng, &["0", "1", "1", "2", "10", "01", "00", "2147483647"]).to_owned()
}

fn pick_epoch(rng: &mut StdRng) -> Option<String> {
    rng.gen_bool(0.5).then(|| random_epoch(rng))
}

fn random_upstream(rng: &mut StdRng, epoch: bool, revision: bool) -> String {
    let mut upstream = random_digits(rng);
    for _ in 0..rng.gen_range(0..=6) {
        match rng.gen_range(0..10) {
            0..=2 => upstream.push_str(&random_digits(rng)),
            3 | 4 => upstream.push_str(pick(rng, LETTERS)),
            5 | 6 => upstream.push('.'),
            7 => upstream.push(if rng.gen_bool(0.5) { '~' } else { '+' }),
            8 if revision => upstream.push('-'),
            9 if epoch => upstream.push(':'),
            _ => upstream.push('.'),
        }
    }
    upstream
}

fn random_revision(rng: &mut StdRng) -> String {
    let mut revision = String::new();
    for _ in 0..rng.gen_range(1..=4) {
        match rng.gen_range(0..6) {
            0 | 1 => revision.push_str(&random_digits(rng)),
            2 => revision.push_str(pick(rng, LETTERS)),
            3 => revision.push('.'),
            4 => revision.push('+'),
            _ => revision.push('~'),
        }
    }
    revision
}

fn add_leading_zero(rng: &mut StdRng, text: &str) -> String {
    let starts: Vec<usize> = (0..text.len())
        .filter(|&i| {
            text.as_bytes()[i].is_ascii_digit()
                && (i == 0 || !text.as_bytes()[i - 1].is_ascii_digit())
        })
        .collect();
    match starts.choose(rng) {
        Some(&i) => format!("{}0{}", &text[..i], &text[i..]),
        None => text.to_owned(),
    }
}

/// Replaces one upstream character after the first with another allowed one.
fn replace_one(rng: &mut StdRng, parts: &Parts) -> String {
    let mut bytes = parts.upstream.clone().into_bytes();
    if bytes.len() < 2 {
        return parts.upstream.clone();
    }
    let at = rng.gen_range(1..bytes.len());
    let mut choices: Vec<u8> = b"0159aAzZ.+~".to_vec();
    if parts.revision.is_some() {
        choices.push(b'-');
    }
    if parts.epoch.is_some() {
        choices.push(b':');
    }
    bytes[at] = choices.choose(rng).copied().unwrap_or(b'.');
    String::from_utf8(bytes).expect("ASCII in, ASCII out")
}

fn generated_pairs() -> Vec<(String, String)> {
    let mut rng = StdRng::seed_from_u64(0x0dec_0de5_1e55_7e57);
    (0..PAIRS)
        .map(|_| {
            let a = Parts::random(&mut rng);
            let b = if rng.gen_bool(0.25) {
                Parts::random(&mut rng)
            } else {
                a.mutate(&mut rng)
            };
            let (a, b) = (a.render(), b.render());
            if rng.gen_bool(0.5) {
                (a, b)
            } else {
                (b, a)
            }
        })
        .collect()
}

fn parse(text: &str) -> Version {
    Version::parse(text).unwrap_or_else(|e| panic!("generated an invalid version: {e}"))
}

#[test]
fn ordering_agrees_with_dpkg_on_10000_generated_pairs() {
    let pairs = generated_pairs();
    let ours: Vec<Ordering> = pairs.iter().map(|(a, b)| parse(a).cmp(&parse(b))).collect();

    let mut counts = BTreeMap::new();
    for ((a, b), order) in pairs.iter().zip(&ours) {
        *counts.entry(relation(*order)).or_insert(0usize) += 1;
        if order.is_eq() && a != b {
            *counts.entry("eq, spelt differently").or_insert(0) += 1;
        }
    }
    eprintln!("generated pairs: {counts:?}");
    for relation in ["lt", "eq", "gt", "eq, spelt differently"] {
        let count = counts.get(relation).copied().unwrap_or(0);
        assert!(
            count >= PAIRS / 10,
            "the generator is lopsided: {counts:?} (want each kind >= 10%)"
        );
    }

    let checks: Vec<(&(String, String), Ordering)> = pairs.iter().zip(ours).collect();
    // One dpkg run per pair: exit 0 on our relation means dpkg's order is ours.
    let disagreements: Vec<String> = par_map(&checks, |((a, b), order)| {
        let output = dpkg_compare(a, relation(*order), b);
        let clean = output.status.code() == Some(0) && output.stderr.is_empty();
        (!clean).then(|| {
            format!(
                "{a:?} vs {b:?}: we say {}, dpkg says {}",
                relation(*order),
                dpkg_order(a, b)
            )
        })
    })
    .into_iter()
    .flatten()
    .collect();

    assert!(
        disagreements.is_empty(),
        "{} of {PAIRS} pairs disagree with dpkg; the first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(10)].join("\n")
    );
}

/// What dpkg made of one version given as the first argument.
#[derive(Debug, PartialEq, Eq)]
enum DpkgSyntax {
    Fine,
    Warning(String),
    Error(String),
}

fn dpkg_syntax(version: &str) -> DpkgSyntax {
    dpkg_syntax_and_eq_zero(version).0
}

/// Runs `dpkg --compare-versions -- version eq 0`: what dpkg made of
/// `version`, and whether it found it equal to `0`.
fn dpkg_syntax_and_eq_zero(version: &str) -> (DpkgSyntax, bool) {
    let output = dpkg_compare(version, "eq", "0");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = |severity: &str| {
        let prefix = format!("dpkg: {severity}: version '{version}' has bad syntax: ");
        stderr
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix('\n'))
            .map(str::to_owned)
    };
    let syntax = match (output.status.code(), reason("warning"), reason("error")) {
        (Some(0 | 1), None, None) if stderr.is_empty() => DpkgSyntax::Fine,
        (Some(0 | 1), Some(reason), None) => DpkgSyntax::Warning(reason),
        (Some(2), None, Some(reason)) => DpkgSyntax::Error(reason),
        (code, _, _) => panic!("dpkg on {version:?}: unexpected exit {code:?}, stderr {stderr:?}"),
    };
    (syntax, output.status.code() == Some(0))
}

fn our_reason(version: &str) -> Option<VersionErrorKind> {
    Version::parse(version).err().map(|e| e.kind)
}

#[test]
fn bad_versions_are_refused_with_dpkgs_reason() {
    use VersionErrorKind::*;
    // (input, our reason, whether dpkg only warns)
    let cases = [
        (" ", Empty, false),
        ("\t \t", Empty, false),
        ("1 0", EmbeddedSpaces, false),
        ("1.0-1 b", EmbeddedSpaces, false),
        (":1", EpochEmpty, false),
        ("a:1", EpochEmpty, false),
        ("+:1", EpochEmpty, false),
        ("-:1", EpochEmpty, false),
        ("1a:1", EpochNotNumber, false),
        ("0x1:2", EpochNotNumber, false),
        ("1.0-2:3", EpochNotNumber, false),
        ("-1:1", EpochNegative, false),
        ("-99999999999999999999:1", EpochNegative, false),
        ("2147483648:1", EpochTooBig, false),
        ("99999999999999999999:1", EpochTooBig, false),
        ("1:", NothingAfterColon, false),
        ("0:", NothingAfterColon, false),
        ("1: ", UpstreamEmpty, false),
        ("1:-1", UpstreamEmpty, false),
        ("-1", UpstreamEmpty, false),
        ("1.0-", RevisionEmpty, false),
        ("1--", RevisionEmpty, false),
        ("1:1.0-a-", RevisionEmpty, false),
        ("a1", UpstreamStartsWithNonDigit, true),
        ("~1", UpstreamStartsWithNonDigit, true),
        ("1:.5", UpstreamStartsWithNonDigit, true),
        ("1_0", InvalidCharInUpstream, true),
        ("1.0\n", InvalidCharInUpstream, true),
        ("1ä", InvalidCharInUpstream, true),
        ("1/2", InvalidCharInUpstream, true),
        ("1.0-a_b", InvalidCharInRevision, true),
        ("1.0-a\r", InvalidCharInRevision, true),
        ("1:1.0-ä", InvalidCharInRevision, true),
    ];
    for (input, kind, warning_only) in cases {
        assert_eq!(our_reason(input), Some(kind), "our verdict on {input:?}");
        let reason = kind.to_string();
        let expected = if warning_only {
            DpkgSyntax::Warning(reason)
        } else {
            DpkgSyntax::Error(reason)
        };
        assert_eq!(dpkg_syntax(input), expected, "dpkg's verdict on {input:?}");
    }
    let shown = Version::parse("1:").err().map(|e| e.to_string());
    assert_eq!(
        shown.as_deref(),
        Some("invalid version '1:': nothing after colon in version number")
    );
}

#[test]
fn dpkg_accepts_signed_and_space_led_epochs_which_we_refuse() {
    for input in ["+1:2", "-0:2", "\n1:2", "\x0b+7:2"] {
        assert_eq!(dpkg_syntax(input), DpkgSyntax::Fine, "dpkg on {input:?}");
        assert_eq!(
            our_reason(input),
            Some(VersionErrorKind::EpochNotNumber),
            "ours on {input:?}"
        );
    }
    // And blanks around a version are ignored by both.
    assert_eq!(dpkg_syntax(" \t1:2.0-1\t "), DpkgSyntax::Fine);
    assert_eq!(
        Version::parse(" \t1:2.0-1\t ").map(|v| v.to_string()),
        Ok("1:2.0-1".to_owned())
    );
}

/// Is `text` one that dpkg's `strtol` epoch takes and our digits-only rule
/// does not (a sign, or leading `\n\v\f\r`, before the epoch's digits)?
fn is_lenient_epoch(text: &str) -> bool {
    let text = text.trim_start_matches([' ', '\t']);
    text.split_once(':')
        .is_some_and(|(epoch, _)| !epoch.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn generated_strings_are_judged_like_dpkg_judges_them() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "9",
        "00",
        "12",
        "2147483648",
        "a",
        "Z",
        ".",
        "+",
        "~",
        "-",
        "-",
        ":",
        ":",
        " ",
        "\t",
        "_",
        "\n",
        "ä",
        "-0",
        "+1",
    ];
    let mut rng = StdRng::seed_from_u64(0x005e_ed0f_bad5);
    let strings: Vec<String> = (0..FUZZED_STRINGS)
        .map(|_| {
            (0..rng.gen_range(1..=6))
                .map(|_| pick(&mut rng, PIECES))
                .collect()
        })
        .collect();

    let verdicts = par_map(&strings, |text| dpkg_syntax_and_eq_zero(text));
    let zero = parse("0");
    let mut seen = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (text, (dpkg, dpkg_eq_zero)) in strings.iter().zip(verdicts) {
        let ours = Version::parse(text);
        let agree = match (&ours, &dpkg) {
            (Ok(version), DpkgSyntax::Fine) => (*version == zero) == dpkg_eq_zero,
            (Err(e), DpkgSyntax::Warning(reason) | DpkgSyntax::Error(reason)) => {
                e.kind.as_str() == reason
            }
            (Err(e), DpkgSyntax::Fine) => {
                e.kind == VersionErrorKind::EpochNotNumber && is_lenient_epoch(text)
            }
            (Ok(_), _) => false,
        };
        let key = match &ours {
            Ok(_) => "accepted",
            Err(e) => e.kind.as_str(),
        };
        *seen.entry(key).or_insert(0usize) += 1;
        if !agree {
            disagreements.push(format!("{text:?}: ours {ours:?}, dpkg {dpkg:?}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {FUZZED_STRINGS} strings judged differently; the first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(10)].join("\n")
    );
    eprintln!("verdicts on generated strings: {seen:#?}");
    assert_eq!(
        seen.len(),
        13,
        "the generator misses verdicts (want all 12 reasons and some accepted): {seen:#?}"
    );
}
