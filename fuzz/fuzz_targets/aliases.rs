//! Any aliases text, and expanding every name in it: no panic, no endless
//! recursion, and never an empty expansion.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinymta::aliases::Aliases;

fuzz_target!(|text: &str| {
    let Ok(aliases) = Aliases::parse(text) else { return };
    let is_local = |domain: &str| domain == "local.test";
    for line in text.lines() {
        if let Some((name, _)) = line.split_once(':') {
            assert!(!aliases.expand(name.trim(), &is_local).is_empty());
        }
    }
    assert!(!aliases.expand("nobody-in-particular", &is_local).is_empty());
});
