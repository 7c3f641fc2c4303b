//! Any config text: a Config or an error naming a line, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = tinymta::config::Config::parse(text, std::path::Path::new("fuzz.conf")) {
        assert!(e.to_string().starts_with("fuzz.conf:"));
    }
});
