//! `.deb` inspection of arbitrary bytes: never a panic, a hang or an
//! allocation beyond the control limits; when it succeeds, the checksums
//! cover every byte and the control paragraph renders back to itself.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use repoctl_formats::deb::control::Paragraph;
use repoctl_formats::deb::inspect::inspect_reader;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = inspect_reader(data, Path::new("fuzz.deb")) else {
        return;
    };
    assert_eq!(info.checksums.size, data.len() as u64);
    let rendered = info.control.to_string();
    assert_eq!(Paragraph::parse(&rendered).as_ref(), Ok(&info.control));
});
