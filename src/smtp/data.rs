//! The DATA phase (RFC 5321 4.1.1.4): dot-unstuffing and the end-of-data line,
//! with the checks that decide, after the final dot, whether the message is
//! stored. No I/O: bytes in, message octets out.
//!
//! The message ends only at `CRLF.CRLF` (the DATA command's own CRLF counts as
//! the first one). A bare CR or LF anywhere is remembered and the whole message
//! refused after the final dot, so a second message hidden behind `LF.CRLF` or
//! `LF.LF` is never split off: it is just more text of a refused message. This is
//! the defence against SMTP smuggling (CVE-2023-51764); RFC 5321 2.3.8 allows
//! CR and LF only as a CRLF pair.

use super::reply::{self, Reply};

/// RFC 5321 4.5.3.1.6: 1000 octets with the CRLF, so 998 before it.
const MAX_TEXT_LINE: usize = 998;
/// More `Received:` headers than this is taken for a mail loop (RFC 5321 6.3).
pub const MAX_RECEIVED_HEADERS: usize = 30;

const RECEIVED: &[u8] = b"received:";

/// What the current line is, as far as it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    /// Not known yet: the start of a line in the header section.
    Unknown,
    /// A header field (`Name: value`) or its continuation (RFC 5322 2.2).
    Header,
    /// Anything else: the body has begun.
    Body,
}

#[derive(Debug)]
pub struct DataDecoder {
    max_size: u64,
    max_header_size: u64,
    /// Octets of the header section so far.
    header_size: u64,
    /// Octets of the message so far, after unstuffing, with line ends.
    size: u64,
    /// Octets of the current line as sent, the stuffing dot included.
    line_len: usize,
    /// The current line began with a dot, which was removed.
    leading_dot: bool,
    /// The previous octet was a CR whose LF has not come yet.
    pending_cr: bool,
    /// How much of `received:` the current line has matched; `None` once it differs.
    received_match: Option<usize>,
    /// Still in the header section: every line so far was a header field.
    /// It ends at the empty line, or at the first line that is not a field
    /// (as Postfix ends it), so a message with no header at all has none.
    in_header: bool,
    line_kind: LineKind,
    /// Octets of the current line that could be a field name.
    name_len: usize,
    received_count: usize,
    bare_line_end: bool,
    /// A NUL octet: RFC 2045 2.7 and 2.8 allow none in 7bit or 8bit text
    /// (RFC 6152 likewise), and some readers cut the message there.
    nul: bool,
    line_too_long: bool,
}

impl DataDecoder {
    pub fn new(max_size: u64, max_header_size: u64) -> DataDecoder {
        DataDecoder {
            max_size,
            max_header_size,
            header_size: 0,
            size: 0,
            line_len: 0,
            leading_dot: false,
            pending_cr: false,
            received_match: Some(0),
            in_header: true,
            line_kind: LineKind::Unknown,
            name_len: 0,
            received_count: 0,
            bare_line_end: false,
            nul: false,
            line_too_long: false,
        }
    }

    /// Decodes `input` and appends the message octets to `out` (nothing more
    /// once the message is sure to be refused). Returns `Some(n)` when the
    /// end-of-data line was found: the first `n` octets of `input` were the
    /// message's, the rest is the client's next command.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            // Fast path: the middle of a line, copied up to the next CR or LF.
            if self.line_len > 0
                && !self.pending_cr
                && self.received_match.is_none()
                && self.line_kind != LineKind::Unknown
            {
                let span = input[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                if span > 0 {
                    self.content(&input[i..i + span], out);
                    i += span;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    if self.leading_dot && self.line_len == 1 {
                        return Some(i);
                    }
                    self.end_line(out);
                    continue;
                }
                // A CR not followed by LF.
                self.bare_line_end = true;
                self.content(b"\r", out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.bare_line_end = true;
                    self.content(b"\n", out);
                }
                b'.' if self.line_len == 0 && !self.leading_dot => {
                    // RFC 5321 4.5.2: the first dot of a line is removed.
                    self.leading_dot = true;
                    self.line_len = 1;
                }
                _ => self.content(&[b], out),
            }
        }
        None
    }

    /// Octets of a line, none of them CR or LF (unless the line end was bare).
    fn content(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if bytes.contains(&0) {
            self.nul = true;
        }
        for &b in bytes {
            if self.line_kind != LineKind::Unknown {
                break;
            }
            if self.name_len == 0 && (b == b' ' || b == b'\t') {
                self.line_kind = LineKind::Header; // a continuation line
            } else if b == b':' && self.name_len > 0 {
                self.line_kind = LineKind::Header;
            } else if (33..=126).contains(&b) {
                self.name_len += 1; // RFC 5322 2.2: ftext
            } else {
                self.line_kind = LineKind::Body;
            }
        }
        if let Some(matched) = self.received_match {
            let mut matched = matched;
            for &b in bytes {
                if matched < RECEIVED.len() && b.to_ascii_lowercase() == RECEIVED[matched] {
                    matched += 1;
                    if matched == RECEIVED.len() {
                        if self.in_header && !self.leading_dot {
                            self.received_count += 1;
                        }
                        break;
                    }
                } else {
                    self.received_match = None;
                    break;
                }
            }
            if self.received_match.is_some() {
                self.received_match = if matched == RECEIVED.len() {
                    None
                } else {
                    Some(matched)
                };
            }
        }
        self.line_len += bytes.len();
        if self.line_len > MAX_TEXT_LINE {
            self.line_too_long = true;
        }
        self.emit(bytes, out);
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.in_header {
            if self.line_kind == LineKind::Header {
                self.header_size += self.line_len as u64 + 2;
            } else {
                self.in_header = false;
            }
        }
        self.emit(b"\r\n", out);
        self.line_len = 0;
        self.leading_dot = false;
        self.received_match = Some(0);
        self.name_len = 0;
        self.line_kind = if self.in_header {
            LineKind::Unknown
        } else {
            LineKind::Body
        };
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.size += bytes.len() as u64;
        if !self.refused() {
            out.extend_from_slice(bytes);
        }
    }

    /// Whether the message will be refused whatever follows.
    pub fn refused(&self) -> bool {
        self.bare_line_end
            || self.nul
            || self.line_too_long
            || self.size > self.max_size
            || self.header_size > self.max_header_size
    }

    /// Octets of the message (unstuffed, with CRLFs) seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// After the end-of-data line: `Ok` if the message may be stored, or the
    /// reply that refuses it.
    pub fn verdict(&self) -> Result<(), Reply> {
        if self.bare_line_end {
            Err(reply::bare_line_end())
        } else if self.line_too_long {
            Err(reply::data_line_too_long())
        } else if self.nul {
            Err(reply::nul_in_message())
        } else if self.size > self.max_size {
            Err(reply::message_too_big())
        } else if self.header_size > self.max_header_size {
            Err(reply::header_too_big())
        } else if self.received_count > MAX_RECEIVED_HEADERS {
            Err(reply::mail_loop())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `chunk` octets; returns (message, rest, verdict code).
    fn run(input: &[u8], chunk: usize, max: u64) -> (Vec<u8>, Vec<u8>, Option<u16>) {
        run_with(input, chunk, max, max)
    }

    fn run_with(
        input: &[u8],
        chunk: usize,
        max: u64,
        max_header: u64,
    ) -> (Vec<u8>, Vec<u8>, Option<u16>) {
        let mut decoder = DataDecoder::new(max, max_header);
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < input.len() {
            let end = (offset + chunk).min(input.len());
            if let Some(n) = decoder.decode(&input[offset..end], &mut out) {
                let rest = input[offset + n..].to_vec();
                let code = decoder.verdict().err().map(|r| r.code);
                if code.is_some() {
                    out.clear();
                }
                return (out, rest, code);
            }
            offset = end;
        }
        panic!("no end of data in {:?}", String::from_utf8_lossy(input));
    }

    /// The verdict code with a header limit that does not get in the way.
    fn run_big_header(input: &[u8]) -> Option<u16> {
        let mut decoder = DataDecoder::new(100_000, 100_000);
        let mut out = Vec::new();
        decoder.decode(input, &mut out).expect("end of data");
        decoder.verdict().err().map(|r| r.code)
    }

    fn every_chunking(input: &[u8], max: u64) -> (Vec<u8>, Vec<u8>, Option<u16>) {
        let whole = run(input, input.len(), max);
        for chunk in 1..8 {
            assert_eq!(run(input, chunk, max), whole, "chunk size {chunk}");
        }
        whole
    }

    #[test]
    fn plain_message_and_pipelined_rest() {
        let (msg, rest, code) = every_chunking(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 1000);
        assert_eq!(msg, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
        assert_eq!(code, None);
    }

    #[test]
    fn a_nul_anywhere_refuses_the_message() {
        for input in [
            &b"\0\r\n.\r\nQUIT\r\n"[..],
            b"Subject: a\0b\r\n\r\nx\r\n.\r\nQUIT\r\n",
            b"Subject: a\r\n\r\nlong body line \0 here\r\n.\r\nQUIT\r\n",
        ] {
            let (msg, rest, code) = every_chunking(input, 1000);
            assert_eq!(
                (msg.as_slice(), rest.as_slice(), code),
                (&b""[..], &b"QUIT\r\n"[..], Some(550))
            );
        }
    }

    #[test]
    fn empty_message() {
        assert_eq!(every_chunking(b".\r\n", 10), (vec![], vec![], None));
    }

    #[test]
    fn dot_unstuffing() {
        let (msg, _, code) = every_chunking(b"..\r\n...x\r\n.y\r\na.b\r\n.\r\n", 1000);
        assert_eq!(msg, b".\r\n..x\r\ny\r\na.b\r\n");
        assert_eq!(code, None);
    }

    #[test]
    fn eight_bit_is_kept() {
        let (msg, _, _) = every_chunking("Grüße \u{1F600}\r\n.\r\n".as_bytes(), 1000);
        assert_eq!(msg, "Grüße \u{1F600}\r\n".as_bytes());
    }

    #[test]
    fn smuggling_is_refused_and_does_not_end_the_message() {
        for hidden in [
            &b"a\r\n\n.\r\nMAIL FROM:<x@y.org>\r\n.\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y.org>\r\n.\r\n",
            b"a\n.\nMAIL FROM:<x@y.org>\r\n.\r\n",
            b"a\r.\rMAIL FROM:<x@y.org>\r\n.\r\n",
            b"a\n.\r\nMAIL FROM:<x@y.org>\r\n.\r\n",
            b"a\r\n.\r\r\nMAIL FROM:<x@y.org>\r\n.\r\n",
        ] {
            let (msg, rest, code) = every_chunking(hidden, 1000);
            assert_eq!(code, Some(550), "{:?}", String::from_utf8_lossy(hidden));
            assert!(msg.is_empty());
            assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(hidden));
        }
    }

    #[test]
    fn size_limit() {
        let (_, _, code) = every_chunking(b"12345678\r\n.\r\n", 10);
        assert_eq!(code, None);
        let (_, _, code) = every_chunking(b"123456789\r\n.\r\n", 10);
        assert_eq!(code, Some(552));
    }

    #[test]
    fn a_refused_line_gives_the_same_verdict_in_any_chunking() {
        // From the fuzzer: one long line of odd octets, then the end.
        let mut input = vec![0u8];
        input.extend(std::iter::repeat_n(0xe4, 1500));
        input.extend_from_slice(b"\r\n.\r\n");
        let verdicts: Vec<_> = [1, 2, 7, input.len()]
            .iter()
            .map(|&chunk| {
                let (_, rest, code) = run(&input, chunk, 100_000);
                (rest, code)
            })
            .collect();
        assert!(
            verdicts.iter().all(|v| *v == (vec![], Some(500))),
            "{verdicts:?}"
        );
    }

    #[test]
    fn long_lines() {
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(every_chunking(&ok, 100_000).2, None);
        let mut stuffed = vec![b'.'; 999];
        stuffed.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(every_chunking(&stuffed, 100_000).2, Some(500));
    }

    #[test]
    fn header_size_limit() {
        // Twenty header lines of 10 octets: exactly the limit of 200.
        let mut message = b"X-Head: \r\n".repeat(20);
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(&b"body line\r\n".repeat(100));
        message.extend_from_slice(b".\r\n");
        for chunk in [1, 3, message.len()] {
            assert_eq!(run_with(&message, chunk, 100_000, 200).2, None);
        }
        let mut message = b"X-Head: \r\n".repeat(21);
        message.extend_from_slice(b"\r\nbody\r\n.\r\n");
        for chunk in [1, 3, message.len()] {
            assert_eq!(run_with(&message, chunk, 100_000, 200).2, Some(552));
        }
        // Continuation lines are header; a line that is no field ends it.
        let mut folded = b"Subject: a\r\n".to_vec();
        folded.extend_from_slice(&b" more\r\n".repeat(30));
        folded.extend_from_slice(b".\r\n");
        assert_eq!(run_with(&folded, 5, 100_000, 200).2, Some(552));
        let mut no_header = b"just text, no fields\r\n".to_vec();
        no_header.extend_from_slice(&b"X-Head: \r\n".repeat(30));
        no_header.extend_from_slice(b".\r\n");
        assert_eq!(run_with(&no_header, 5, 100_000, 200).2, None);
    }

    #[test]
    fn received_headers_count_only_in_the_header() {
        let mut message = b"Received: a\r\n".repeat(30);
        message.extend_from_slice(b"\r\nReceived: in body\r\n.\r\n");
        assert_eq!(run_big_header(&message), None);
        let mut message = b"RECEIVED: a\r\n".repeat(31);
        message.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run_big_header(&message), Some(554));
        let mut message = b"Received-SPF: a\r\nX-Received: b\r\n".repeat(31);
        message.extend_from_slice(b".\r\n");
        assert_eq!(run_big_header(&message), None);
        // After a line that is no header field, Received: lines are body.
        let mut message = b"Received: a\r\nnot a field\r\n".to_vec();
        message.extend_from_slice(&b"Received: b\r\n".repeat(31));
        message.extend_from_slice(b".\r\n");
        assert_eq!(run_big_header(&message), None);
    }
}
