//! The AUTH users file and base64 responses: parsed or refused, no panic.
//! (Checking a password is ring's PBKDF2, whose cost is the file's to set.)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = tinymta::smtp::base64::decode(text);
    let _ = tinymta::auth::Users::parse(text);
});
