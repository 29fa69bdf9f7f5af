//! Debian package versions (`[epoch:]upstream[-revision]`): parsing and ordering
//! exactly as dpkg does them.
//!
//! This module owns the syntax check of dpkg's `parseversion()`
//! (`lib/dpkg/parsehelp.c`) and the order of `dpkg_version_compare()` /
//! `verrevcmp()` (`lib/dpkg/version.c`). It does not know about packages,
//! suites or which version a repository should keep; that is policy for `repo`.
//!
//! Two deliberate choices, both stricter than `dpkg --compare-versions`:
//!
//! - dpkg only *warns* about "version number does not start with digit" and
//!   invalid characters; a repository must not carry such versions, so
//!   [`Version::parse`] refuses them like the hard errors.
//! - dpkg reads the epoch with `strtol()`, which also accepts a sign and leading
//!   `\n`, `\r`, `\v` or `\f` (`+1:2`, `-0:2`). apt compares epochs as strings
//!   and would disagree, so an epoch here must be ASCII digits only; anything
//!   else that dpkg would let through is refused as "epoch in version is not
//!   number". Leading zeros (`01:2`) are accepted, as both tools read them the
//!   same way.
//!
//! Every message is dpkg's reason word for word, so an error can be compared
//! with (and searched like) what `dpkg` prints.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A parsed Debian version.
///
/// Equality follows dpkg's order, not the text: `1.0 == 1.00`, `0:1 == 1`,
/// `1.0 == 1.0-0`. [`Hash`] agrees with that equality. Use [`Version::as_str`]
/// when the exact text matters (file names, index fields).
#[derive(Debug, Clone)]
pub struct Version {
    /// The input without dpkg's ignored leading and trailing blanks.
    text: String,
    epoch: u32,
    upstream: String,
    revision: String,
}

impl Version {
    /// Parses `[epoch:]upstream[-revision]` with dpkg's rules: leading and
    /// trailing blanks (space, tab) are ignored, the epoch ends at the first
    /// colon and the revision starts after the last hyphen.
    pub fn parse(input: &str) -> Result<Version, VersionError> {
        parse_parts(input)
            .map(|(text, epoch, upstream, revision)| Version {
                text: text.to_owned(),
                epoch,
                upstream: upstream.to_owned(),
                revision: revision.to_owned(),
            })
            .map_err(|kind| VersionError {
                version: input.to_owned(),
                kind,
            })
    }

    /// The version as written (less ignored surrounding blanks); `Display`
    /// prints the same text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The epoch; 0 when the version has none.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream part: after the epoch's colon, before the last hyphen.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision: after the last hyphen; empty when there is none.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The text after the epoch's colon (the whole text when there is no
    /// epoch): the form Debian puts in pool file names, `hello_2.10-3_amd64.deb`
    /// for `1:2.10-3`.
    pub fn without_epoch(&self) -> &str {
        match self.text.split_once(':') {
            Some((_, rest)) => rest,
            None => &self.text,
        }
    }

    /// The value when the whole version is a plain decimal integer such as
    /// `42`: no epoch, no revision, no dots, no letters.
    ///
    /// Leading zeros do not count (`007` and `00` give `None`, `0` gives
    /// `Some(0)`), so `n.to_string()` always gives back the exact text and the
    /// next version `n + 1` can never be spelt two ways. Values beyond `u64`
    /// give `None`.
    pub fn as_plain_integer(&self) -> Option<u64> {
        let text = self.text.as_bytes();
        let all_digits = text.iter().all(u8::is_ascii_digit);
        let leading_zero = text.len() > 1 && text.first() == Some(&b'0');
        if !all_digits || leading_zero {
            return None;
        }
        self.text.parse().ok()
    }
}

/// Compares two version strings as `dpkg --compare-versions` would, failing
/// on the first one that does not parse.
pub fn compare_strings(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    /// dpkg's `dpkg_version_compare()`: epoch, then upstream, then revision.
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    /// Hashes what `verrevcmp` looks at, so equal versions hash alike: the
    /// non-digit runs as written and the digit runs without leading zeros.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        hash_fragments(self.upstream.as_bytes(), state);
        // 0xFD..=0xFF never occur in a valid version: they mark the boundaries.
        state.write_u8(0xFD);
        hash_fragments(self.revision.as_bytes(), state);
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A version string that dpkg (or this stricter reading of it) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version '{version}': {kind}")]
pub struct VersionError {
    /// The string as it was given, blanks included.
    pub version: String,
    /// Why it was refused.
    pub kind: VersionErrorKind,
}

/// Why a version was refused; `Display` gives dpkg's own reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionErrorKind {
    /// Nothing but blanks.
    Empty,
    /// A blank between two non-blank characters.
    EmbeddedSpaces,
    /// A colon with no digits before it (`:1`, `a:1`).
    EpochEmpty,
    /// Something other than digits before the colon (`1a:1`; also `+1:1`,
    /// which dpkg lets through, reported only when nothing else is wrong).
    EpochNotNumber,
    /// A minus sign and a non-zero number before the colon.
    EpochNegative,
    /// An epoch above 2147483647 (dpkg's `INT_MAX`).
    EpochTooBig,
    /// The version ends at the epoch's colon (`1:`).
    NothingAfterColon,
    /// The version ends at the revision's hyphen (`1.0-`).
    RevisionEmpty,
    /// No upstream part between the epoch and the revision (`1:-1`, `-1`).
    UpstreamEmpty,
    /// The upstream part starts with something other than a digit. A warning
    /// for dpkg.
    UpstreamStartsWithNonDigit,
    /// The upstream part holds a character outside `A-Za-z0-9.+~-:`. A warning
    /// for dpkg.
    InvalidCharInUpstream,
    /// The revision holds a character outside `A-Za-z0-9.+~`. A warning for
    /// dpkg.
    InvalidCharInRevision,
}

impl VersionErrorKind {
    /// dpkg's reason, word for word (`dpkg: error: version '1:' has bad
    /// syntax: nothing after colon in version number`).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionErrorKind::Empty => "version string is empty",
            VersionErrorKind::EmbeddedSpaces => "version string has embedded spaces",
            VersionErrorKind::EpochEmpty => "epoch in version is empty",
            VersionErrorKind::EpochNotNumber => "epoch in version is not number",
            VersionErrorKind::EpochNegative => "epoch in version is negative",
            VersionErrorKind::EpochTooBig => "epoch in version is too big",
            VersionErrorKind::NothingAfterColon => "nothing after colon in version number",
            VersionErrorKind::RevisionEmpty => "revision number is empty",
            VersionErrorKind::UpstreamEmpty => "version number is empty",
            VersionErrorKind::UpstreamStartsWithNonDigit => {
                "version number does not start with digit"
            }
            VersionErrorKind::InvalidCharInUpstream => "invalid character in version number",
            VersionErrorKind::InvalidCharInRevision => "invalid character in revision number",
        }
    }
}

impl fmt::Display for VersionErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// dpkg's `c_isblank()`: the only characters `parseversion()` trims.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `parseversion()`, check for check and in the same order, returning the
/// trimmed text, epoch, upstream and revision.
fn parse_parts(input: &str) -> Result<(&str, u32, &str, &str), VersionErrorKind> {
    let string = input.trim_start_matches([' ', '\t']);
    if string.is_empty() {
        return Err(VersionErrorKind::Empty);
    }
    let bytes = string.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| is_blank(b))
        .unwrap_or(bytes.len());
    if !bytes[end..].iter().all(|&b| is_blank(b)) {
        return Err(VersionErrorKind::EmbeddedSpaces);
    }
    let text = &string[..end];

    let (epoch, epoch_is_digits, version) = match string.find(':') {
        Some(colon) => {
            let field = &string[..colon];
            let epoch = parse_epoch(field)?;
            // dpkg looks at the character after the colon before trimming the
            // end, so `1: ` gets past this check and fails as an empty upstream.
            if colon + 1 == string.len() {
                return Err(VersionErrorKind::NothingAfterColon);
            }
            let is_digits = field.bytes().all(|b| b.is_ascii_digit());
            // The colon comes before any blank, or the string had embedded spaces.
            (epoch, is_digits, &string[colon + 1..end])
        }
        None => (0, true, text),
    };

    let (upstream, revision) = match version.rsplit_once('-') {
        Some((_, "")) => return Err(VersionErrorKind::RevisionEmpty),
        Some((upstream, revision)) => (upstream, revision),
        None => (version, ""),
    };
    match upstream.as_bytes().first() {
        None => return Err(VersionErrorKind::UpstreamEmpty),
        Some(b) if !b.is_ascii_digit() => return Err(VersionErrorKind::UpstreamStartsWithNonDigit),
        Some(_) => {}
    }
    if !upstream
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
    {
        return Err(VersionErrorKind::InvalidCharInUpstream);
    }
    if !revision
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
    {
        return Err(VersionErrorKind::InvalidCharInRevision);
    }
    // Stricter than dpkg, and checked last so that whatever dpkg refuses is
    // refused with dpkg's reason: no sign, no leading whitespace in the epoch.
    if !epoch_is_digits {
        return Err(VersionErrorKind::EpochNotNumber);
    }
    Ok((text, epoch, upstream, revision))
}

/// The epoch checks of `parseversion()` on `field`, the text before the first
/// colon. dpkg reads it with `strtol(string, &end, 10)` and wants `end` to be
/// the colon; `strtol` stops at the colon at the latest, so `field` is all it
/// can see.
fn parse_epoch(field: &str) -> Result<u32, VersionErrorKind> {
    let bytes = field.as_bytes();
    // strtol: optional C `isspace()`, optional sign, then decimal digits.
    let mut i = bytes
        .iter()
        .position(|b| !b" \t\n\x0b\x0c\r".contains(b))
        .unwrap_or(bytes.len());
    let negative = bytes.get(i) == Some(&b'-');
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits_start = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        match magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(d - b'0')))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        // No conversion: strtol sets `end` back to the start of the string.
        return Err(VersionErrorKind::EpochEmpty);
    }
    if i != field.len() {
        return Err(VersionErrorKind::EpochNotNumber);
    }
    if negative && (magnitude != 0 || overflow) {
        return Err(VersionErrorKind::EpochNegative);
    }
    let epoch = match u32::try_from(magnitude) {
        Ok(epoch) if !overflow && epoch <= i32::MAX as u32 => epoch,
        _ => return Err(VersionErrorKind::EpochTooBig),
    };
    Ok(epoch)
}

/// dpkg's `order()`: the weight of a non-digit character in `verrevcmp`.
/// `~` sorts before everything, even the end of the string (weight 0), and
/// letters before all other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp()`: alternately compares a run of non-digits character
/// by character with [`order`], then a run of digits as a number (leading
/// zeros ignored, an empty run counting as 0).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let non_digit = |s: &[u8], k: usize| s.get(k).is_some_and(|c| !c.is_ascii_digit());
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while non_digit(a, i) || non_digit(b, j) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Feeds `state` the fragments [`verrevcmp`] compares: each non-digit run as
/// written, each digit run without its leading zeros. A fragment with both
/// parts empty (`0` at the start) is skipped, as it equals the end of string.
fn hash_fragments<H: Hasher>(s: &[u8], state: &mut H) {
    let mut rest = s;
    while !rest.is_empty() {
        let letters = rest.iter().take_while(|b| !b.is_ascii_digit()).count();
        let (non_digits, tail) = rest.split_at(letters);
        let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, tail) = tail.split_at(digits);
        let zeros = number.iter().take_while(|&&b| b == b'0').count();
        let number = &number[zeros..];
        if !non_digits.is_empty() || !number.is_empty() {
            state.write(non_digits);
            state.write_u8(0xFF);
            state.write(number);
            state.write_u8(0xFE);
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn v(s: &str) -> Version {
        match Version::parse(s) {
            Ok(version) => version,
            Err(e) => panic!("{e}"),
        }
    }

    fn kind(s: &str) -> VersionErrorKind {
        match Version::parse(s) {
            Ok(version) => panic!("{s:?} parsed as {version:?}"),
            Err(e) => e.kind,
        }
    }

    fn hash_of(version: &Version) -> u64 {
        let mut hasher = DefaultHasher::new();
        version.hash(&mut hasher);
        hasher.finish()
    }

    /// Asserts that `list` is strictly increasing, pair by pair and in reverse.
    fn assert_increasing(list: &[&str]) {
        for pair in list.windows(2) {
            let (a, b) = (v(pair[0]), v(pair[1]));
            assert_eq!(a.cmp(&b), Ordering::Less, "{a} < {b}");
            assert_eq!(b.cmp(&a), Ordering::Greater, "{b} > {a}");
            assert_ne!(a, b);
        }
    }

    fn assert_equal(a: &str, b: &str) {
        let (a, b) = (v(a), v(b));
        assert_eq!(a.cmp(&b), Ordering::Equal, "{a} == {b}");
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b), "hash({a}) == hash({b})");
    }

    #[test]
    fn tilde_sorts_before_the_end_and_letters_before_other_characters() {
        assert_increasing(&[
            "1.0~~", "1.0~~a", "1.0~", "1.0~a", "1.0", "1.0A", "1.0Z", "1.0a", "1.0z", "1.0+",
            "1.0.",
        ]);
        // Among non-letters, ASCII order: `+` < `-` < `.` < `:` (the last two
        // need an epoch, the hyphen a revision).
        assert_increasing(&["1:1.0+", "1:1.0--1", "1:1.0.", "1:1.0:"]);
        assert_increasing(&["1.0~rc1", "1.0~rc2", "1.0", "1.0+b1", "1.0.1"]);
        assert_increasing(&["1-1~bpo1", "1-1", "1-1+b1", "1-1.1"]);
    }

    #[test]
    fn digit_runs_compare_as_numbers() {
        assert_increasing(&["1.2", "1.9", "1.10", "1.100", "2"]);
        assert_increasing(&["9", "10", "0010a", "11"]);
        assert_increasing(&["1.99999999999999999999", "1.100000000000000000000"]);
    }

    #[test]
    fn leading_zeros_and_missing_numbers_are_equal() {
        assert_equal("1.0", "1.00");
        assert_equal("1.01", "1.1");
        assert_equal("1a", "1a0");
        assert_equal("1.0", "1.0-0");
        assert_equal("0:1", "1");
        assert_equal("01:2", "1:2");
        assert_equal("1:2:3", "1:2:03");
        assert_equal("000", "0");
        // A digit ends a non-digit run, so here `0` weighs less than `a`.
        assert_increasing(&["1.0a", "1.a"]);
    }

    #[test]
    fn epoch_wins_over_everything_else() {
        assert_increasing(&["99999-9", "1:0", "1:0.1", "2:0~", "10:0"]);
    }

    #[test]
    fn revision_starts_after_the_last_hyphen() {
        let version = v("1:2-3-4");
        assert_eq!(version.epoch(), 1);
        assert_eq!(version.upstream(), "2-3");
        assert_eq!(version.revision(), "4");
        // Upstream first: "2-3" vs "2-4" decides before the revisions.
        assert_increasing(&["2-3-9", "2-4-1"]);
        // Hyphens in upstream sort like any other non-letter.
        assert_increasing(&["1+2-1", "1-2-1", "1.2-1"]);
        let colon = v("2:1.0:rc1-0ubuntu1");
        assert_eq!(colon.upstream(), "1.0:rc1");
        assert_eq!(colon.revision(), "0ubuntu1");
        assert_eq!(v("1.0").revision(), "");
    }

    #[test]
    fn accessors_and_display_keep_the_text() {
        let version = v(" \t1:2.10-3+deb12u1 ");
        assert_eq!(version.to_string(), "1:2.10-3+deb12u1");
        assert_eq!(version.as_str(), "1:2.10-3+deb12u1");
        assert_eq!(version.without_epoch(), "2.10-3+deb12u1");
        assert_eq!(v("0:1.0").to_string(), "0:1.0");
        assert_eq!(v("0:1.0").without_epoch(), "1.0");
        assert_eq!(v("1:2:3").without_epoch(), "2:3");
        assert_eq!(v("2.10").without_epoch(), "2.10");
        assert_eq!("7.1-2".parse::<Version>(), Ok(v("7.1-2")));
    }

    #[test]
    fn plain_integers_have_exactly_one_spelling() {
        assert_eq!(v("42").as_plain_integer(), Some(42));
        assert_eq!(v("0").as_plain_integer(), Some(0));
        assert_eq!(v("18446744073709551615").as_plain_integer(), Some(u64::MAX));
        for not_plain in [
            "007",
            "00",
            "18446744073709551616",
            "1.0",
            "0:42",
            "42-1",
            "42a",
            "42~",
        ] {
            assert_eq!(v(not_plain).as_plain_integer(), None, "{not_plain}");
        }
    }

    #[test]
    fn errors_give_dpkgs_reason_and_the_input() {
        let error = Version::parse("1:").err();
        assert_eq!(
            error.as_ref().map(ToString::to_string).as_deref(),
            Some("invalid version '1:': nothing after colon in version number")
        );
        assert_eq!(error.map(|e| e.version).as_deref(), Some("1:"));
        assert_eq!(
            compare_strings("1.0", "x").map_err(|e| e.kind),
            Err(VersionErrorKind::UpstreamStartsWithNonDigit)
        );
        assert_eq!(compare_strings("1.0~", "1.0"), Ok(Ordering::Less));
    }

    #[test]
    fn refuses_what_dpkg_refuses_in_dpkgs_order() {
        use VersionErrorKind::*;
        let cases = [
            ("", Empty),
            (" \t ", Empty),
            ("1 0", EmbeddedSpaces),
            ("1:2 -3", EmbeddedSpaces),
            (":1", EpochEmpty),
            ("a:1", EpochEmpty),
            ("+:1", EpochEmpty),
            ("1a:1", EpochNotNumber),
            ("1.0-2:3", EpochNotNumber),
            ("0x1:2", EpochNotNumber),
            ("-1:1", EpochNegative),
            ("-99999999999999999999:1", EpochNegative),
            ("2147483648:1", EpochTooBig),
            ("99999999999999999999:1", EpochTooBig),
            ("1:", NothingAfterColon),
            ("1: ", UpstreamEmpty),
            ("1:-1", UpstreamEmpty),
            ("-1", UpstreamEmpty),
            ("1.0-", RevisionEmpty),
            ("1--", RevisionEmpty),
            ("a1", UpstreamStartsWithNonDigit),
            ("~1", UpstreamStartsWithNonDigit),
            ("1_0", InvalidCharInUpstream),
            ("1.0\n", InvalidCharInUpstream),
            ("1ä", InvalidCharInUpstream),
            ("1.0-a_b", InvalidCharInRevision),
            ("1.0-a:b", EpochNotNumber),
            ("1:1.0-ä", InvalidCharInRevision),
        ];
        for (input, expected) in cases {
            assert_eq!(kind(input), expected, "{input:?}");
        }
        assert_eq!(v("2147483647:1").epoch(), 2_147_483_647);
    }

    #[test]
    fn epoch_is_stricter_than_strtol() {
        // dpkg accepts all of these (strtol skips a sign and `\n`); apt does not.
        for input in ["+1:2", "-0:2", "\n1:2", "\r1:2", " +1:2"] {
            assert_eq!(kind(input), VersionErrorKind::EpochNotNumber, "{input:?}");
        }
        // What dpkg refuses for another reason keeps dpkg's reason.
        assert_eq!(kind("+1:"), VersionErrorKind::NothingAfterColon);
        assert_eq!(kind("-0:a"), VersionErrorKind::UpstreamStartsWithNonDigit);
    }

    #[test]
    fn hash_agrees_with_equality() {
        let versions = [
            "0", "00", "0:0", "0-0", "1", "01", "1.0", "1.00", "1.000", "1.0-0", "1a", "1a0",
            "1a00", "0a", "1:1", "1:01", "1.0~", "1.0~0",
        ];
        for a in versions {
            for b in versions {
                let (a, b) = (v(a), v(b));
                if a == b {
                    assert_eq!(hash_of(&a), hash_of(&b), "{a} == {b}");
                }
            }
        }
    }

    #[test]
    fn serde_uses_the_text_and_checks_it() {
        let version = v("1:2.0-1");
        assert_eq!(
            serde_json::to_string(&version).ok().as_deref(),
            Some(r#""1:2.0-1""#)
        );
        let back: Result<Version, _> = serde_json::from_str(r#""1:2.0-1""#);
        assert_eq!(back.ok().map(|v| v.text), Some("1:2.0-1".to_owned()));
        let bad: Result<Version, _> = serde_json::from_str(r#""1:""#);
        assert!(bad
            .err()
            .is_some_and(|e| e.to_string().contains("nothing after colon")));
    }
}
