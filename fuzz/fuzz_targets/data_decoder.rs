//! The DATA decoder in arbitrary chunkings: the same end and verdict for
//! every chunking, and the same message when it is accepted (a refused one
//! is thrown away, so where its output stops does not matter); the end
//! found only at CRLF.CRLF; no bare CR or LF in an accepted message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinymta::smtp::data::DataDecoder;

fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, Option<u16>) {
    let mut decoder = DataDecoder::new(4096, 1024);
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let end = (offset + chunk).min(input.len());
        if let Some(n) = decoder.decode(&input[offset..end], &mut out) {
            return (out, Some(offset + n), decoder.verdict().err().map(|r| r.code));
        }
        offset = end;
    }
    (out, None, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole = run(input, input.len().max(1));
    let pieces = run(input, usize::from(chunk % 16) + 1);
    assert_eq!((whole.1, whole.2), (pieces.1, pieces.2));
    if whole.1.is_some() && whole.2.is_none() {
        assert_eq!(whole.0, pieces.0);
    }
    if let (message, Some(end), None) = &whole {
        // The end of data is CRLF.CRLF (the DATA command's CRLF counts first).
        assert!(input[..*end].ends_with(b".\r\n"));
        assert!(*end == 3 || input[..*end].ends_with(b"\r\n.\r\n"));
        // An accepted message has only CRLF pairs.
        for (i, &b) in message.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(message[i - 1], b'\r');
            }
            if b == b'\r' {
                assert_eq!(message.get(i + 1), Some(&b'\n'));
            }
        }
    }
});
