//! Any command line: a Command or an error reply, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Err(reply) = tinymta::smtp::command::parse_command(line) {
        assert!((400..600).contains(&reply.code));
        let _ = reply.to_wire();
    }
});
