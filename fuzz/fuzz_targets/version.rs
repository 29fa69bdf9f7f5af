//! Version parsing and ordering: never a panic. Input is two versions, one
//! per line. A parsed version parses back from its text as itself; the
//! order is antisymmetric and agrees with equality and hashing; a plain
//! integer has only one spelling.

#![no_main]

use std::cmp::Ordering;
use std::hash::{DefaultHasher, Hash, Hasher};

use libfuzzer_sys::fuzz_target;
use repoctl_formats::deb::version::{compare_strings, Version};

fn hash_of(version: &Version) -> u64 {
    let mut hasher = DefaultHasher::new();
    version.hash(&mut hasher);
    hasher.finish()
}

fn check_one(version: &Version) {
    let again = Version::parse(version.as_str()).expect("a version's text parses");
    assert_eq!(again.as_str(), version.as_str());
    assert_eq!(again.cmp(version), Ordering::Equal);
    assert_eq!(version.to_string(), version.as_str());
    if let Some(n) = version.as_plain_integer() {
        assert_eq!(n.to_string(), version.as_str());
    }
    assert!(version.without_epoch().len() <= version.as_str().len());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    let (va, vb) = (Version::parse(a), Version::parse(b));
    if let Ok(v) = &va {
        check_one(v);
    }
    if let Ok(v) = &vb {
        check_one(v);
    }
    if let (Ok(va), Ok(vb)) = (&va, &vb) {
        let order = va.cmp(vb);
        assert_eq!(vb.cmp(va), order.reverse());
        assert_eq!(va == vb, order == Ordering::Equal);
        if va == vb {
            assert_eq!(hash_of(va), hash_of(vb), "{a:?} == {b:?}");
        }
        assert_eq!(compare_strings(a, b), Ok(order));
    }
});
