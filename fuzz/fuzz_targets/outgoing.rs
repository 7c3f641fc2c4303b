//! Any stored message, as it would leave the box with `send_as` set: no
//! panic, no line over 998 octets, and the size counted for SIZE= is the
//! size sent.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tinymta::config::Config;
use tinymta::deliver::outgoing::{plan, SendAs};

fuzz_target!(|message: &[u8]| {
    let config = Config::parse(
        "hostname = box.lan\nsend_as = box@example.com",
        std::path::Path::new("fuzz.conf"),
    )
    .expect("a valid config");
    let send_as = SendAs::from_config(&config);
    let plan = plan(message, 4096, send_as.as_ref(), "root@box.lan").expect("read from memory");
    let mut text = Vec::new();
    plan.text(message).read_to_end(&mut text).expect("read from memory");
    assert_eq!(plan.size(message).expect("read from memory"), text.len() as u64);
    // On the wire a bare CR or LF ends a line too (client::write_dot_stuffed).
    for line in text.split(|&b| b == b'\n' || b == b'\r') {
        assert!(line.len() <= 998, "a line of {} octets", line.len());
    }
});
