//! What `next-version --from-index` reads, after the signature check:
//! `Release` and `Packages` text. Never a panic; a parsed Release renders
//! to text that parses back to the same Release.

#![no_main]

use libfuzzer_sys::fuzz_target;
use repoctl_formats::packages::{index_location, stanzas, versions_of};
use repoctl_formats::release::Release;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(release) = Release::parse(&text) {
        for path in release.files.keys() {
            let _ = index_location(path);
        }
        let rendered = release.render();
        assert_eq!(Release::parse(&rendered).as_ref(), Ok(&release));
    }
    let wanted = text
        .lines()
        .find_map(|line| line.strip_prefix("Package:"))
        .map_or("hello", str::trim);
    let _ = versions_of(&text, wanted);
    let _ = stanzas(&text);
});
