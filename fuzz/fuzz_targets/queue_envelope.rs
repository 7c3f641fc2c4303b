//! Any envelope text, as a damaged disk may leave one in a queue file or an
//! `.env`: parsing never panics, and an envelope that parses is written
//! back as text that reads back the same (addresses, errors and all).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinymta::spool::queue::QueueEnvelope;

fuzz_target!(|text: &str| {
    let Ok(envelope) = QueueEnvelope::parse(text) else { return };
    let written = envelope.to_text();
    let again = QueueEnvelope::parse(&written).expect("a written envelope parses");
    assert_eq!(again.to_text(), written);
});
