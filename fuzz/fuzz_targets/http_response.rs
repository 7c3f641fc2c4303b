//! Any octets as an HTTP response, pushed whole and in pieces: the same
//! outcome either way, never a panic, a final status (200-599), at most
//! MAX_RESPONSE_BODY octets of body kept.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinymta::http::{HttpError, Response, ResponseParser, MAX_RESPONSE_BODY};

/// The response read from `input` in pieces of `piece` octets, then the end
/// of the connection.
fn parse(input: &[u8], piece: usize) -> Result<Response, HttpError> {
    let mut parser = ResponseParser::new("POST");
    for part in input.chunks(piece) {
        if parser.push(part)? {
            break;
        }
    }
    parser.finish()
}

fuzz_target!(|data: &[u8]| {
    // The first octet says how the rest arrives.
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let whole = parse(input, input.len().max(1));
    let pieces = parse(input, usize::from(piece).max(1));
    assert_eq!(format!("{whole:?}"), format!("{pieces:?}"));
    if let Ok(response) = whole {
        assert!((200..600).contains(&response.status));
        assert!(response.body.len() <= MAX_RESPONSE_BODY);
    }
});
