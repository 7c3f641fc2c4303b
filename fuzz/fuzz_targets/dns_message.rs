//! Any datagram as a DNS response: parsed or refused, never a panic, a
//! loop or a read past the packet.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|packet: &[u8]| {
    if let Ok(response) = tinymta::dns::wire::parse_response(packet) {
        for record in response.answers.iter().chain(&response.authority) {
            assert!(record.name.len() <= 255 * 4);
        }
    }
});
