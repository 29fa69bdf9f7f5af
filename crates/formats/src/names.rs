//! Names that repoctl puts into paths of the served tree and into Release
//! lines: dists, components and architectures.
//!
//! Owns the one rule for such names; `repoctl.toml` and `deploy.yml` both
//! check theirs with it.

/// A dist, component or architecture name: safe in a path and a Release line.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_path_are_refused() {
        for bad in ["", "..", "a/b", "Main", "-x", ".hidden", "a b"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name("trusty-backports"));
    }
}
