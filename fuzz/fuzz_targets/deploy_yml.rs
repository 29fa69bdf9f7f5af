//! `deploy.yml` parsing: never a panic, a hang or runaway memory (YAML
//! aliases, deep nesting); what parses yields a usable package name and
//! install path.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use repoctl_formats::deploy::Deploy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Deploy::parse(text, Path::new("deploy.yml")) {
        Ok(deploy) => {
            assert!(deploy.package_name().starts_with("vrmd-"));
            assert!(deploy.install_path().is_absolute());
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint());
        }
    }
});
