//! Control paragraph parsing: never a panic; a parsed paragraph renders to
//! text that parses back to the same paragraph, and no value can start a
//! line of its own in the rendered text (no smuggled fields).

#![no_main]

use libfuzzer_sys::fuzz_target;
use repoctl_formats::deb::control::Paragraph;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut paragraph) = Paragraph::parse(text) else {
        return;
    };
    let rendered = paragraph.to_string();
    assert_eq!(Paragraph::parse(&rendered).as_ref(), Ok(&paragraph));
    let names: Vec<&str> = paragraph.fields().map(|(name, _)| name).collect();
    for line in rendered.lines() {
        if !line.starts_with([' ', '\t']) {
            let name = line.split_once(':').map(|(name, _)| name);
            assert!(
                name.is_some_and(|n| names.contains(&n)),
                "line {line:?} is not one of the fields {names:?}"
            );
        }
    }
    for name in &names {
        assert!(paragraph.get(&name.to_ascii_uppercase()).is_some());
    }
    paragraph.sort_like_dpkg_index();
});
