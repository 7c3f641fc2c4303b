//! A message as it leaves the box over SMTP (to the smarthost or an MX
//! host): the queue keeps it as it was accepted, and these changes are made
//! on the way out, at every attempt, streaming from the spool file.
//!
//! - `send_as` (Postfix's smtp_generic_maps, msmtp's `set_from_header`, dma's
//!   `MASQUERADE`): the envelope sender and the From: address become
//!   `send_as`; the original address goes into the display name, and into
//!   a `Reply-To:` where replies to it could reach someone.
//! - Lines over 998 octets (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6), which
//!   servers refuse (`500 Line too long`): a single-part body that is not
//!   encoded is sent as quoted-printable (RFC 2045 6.7), which decodes to
//!   exactly the original octets; any other body has its long lines broken
//!   with CRLF and a space, as Postfix's smtp_line_length_limit does; long
//!   header lines are folded at white space (RFC 5322 2.2.3).
//!
//! Why on the way out and not at acceptance: local delivery keeps the
//! original (the admin reading root's mail here sees who wrote it), one
//! place covers every way into the queue (sendmail, `mail`, SMTP clients on
//! the LAN, the maildrop, bounces), mail already queued follows a changed
//! config, and bounces of the box's own still go to the original sender.
//!
//! [`plan`] reads the header section (bounded) and surveys the body; the
//! [`Plan`] then gives the rewritten text as a reader over a fresh copy of
//! the spool file, as often as needed (once to count its size for SIZE=,
//! once to send it). Memory stays bounded by the header section.

use std::io::{self, BufRead, BufReader, Read};

use crate::config::Config;
use crate::message::encoded_word::is_encoded_word;
use crate::message::header::{
    elements, fields, is_field_start, is_named, quoted_string, tokens, unescaped, unfolded_value,
    Kind, Token,
};
use crate::smtp::address::{parse_mailbox, Mailbox};

/// RFC 5322 2.1.1 (and RFC 5321 4.5.3.1.6): a line has at most 998 octets
/// before its CRLF.
const MAX_LINE: usize = 998;

/// RFC 2045 6.7 (5): an encoded line has at most 76 characters, the `=` of
/// a soft line break included.
const QP_LINE: usize = 76;

/// What the header section may hold beyond `max_header_size`: the trace and
/// origin fields this server adds at acceptance (Received:, and sendmail's
/// From:, Date: and Message-ID:), which that limit does not count.
const ADDED_HEADER_ALLOWANCE: u64 = 8 * 1024;

/// How much of the spool file is read at a time.
const CHUNK: usize = 64 * 1024;

/// The `send_as` rewriting, with what it needs to know of this box.
pub struct SendAs<'a> {
    pub address: &'a Mailbox,
    /// Domains of this box (hostname, qualify_domain, local_domains): replies
    /// to an address there cannot reach it from outside.
    own_domains: Vec<&'a str>,
}

impl<'a> SendAs<'a> {
    /// The config's `send_as`, if set.
    pub fn from_config(config: &'a Config) -> Option<SendAs<'a>> {
        let address = config.send_as.as_ref()?;
        let mut own_domains = vec![config.hostname.as_str(), config.qualify_domain.as_str()];
        own_domains.extend(config.local_domains.iter().map(String::as_str));
        Some(SendAs {
            address,
            own_domains,
        })
    }

    /// The envelope sender to send with: `send_as`, but a null sender (a
    /// bounce) stays null (RFC 5321 4.5.5).
    pub fn envelope_sender(&self, sender: &str) -> String {
        if sender.is_empty() {
            String::new()
        } else {
            self.address.to_string()
        }
    }

    /// Whether a reply to `address` could reach someone: it has a domain
    /// with a dot (a single-label name is this LAN's at best, RFC 7085),
    /// not an address literal, not one of this box's own domains (replies
    /// would go to the provider's view of them, never here), and not under
    /// a name reserved for private networks (RFC 6761 6.3 and 6.4, RFC 6762
    /// `local`, RFC 8375 `home.arpa`, ICANN's `internal`; `lan` and
    /// `localdomain` by common use on home routers and Linux boxes).
    pub fn is_reachable_from_outside(&self, address: &Mailbox) -> bool {
        const PRIVATE: [&str; 7] = [
            "localhost",
            "invalid",
            "local",
            "home.arpa",
            "internal",
            "lan",
            "localdomain",
        ];
        let domain = address.domain.trim_end_matches('.').to_ascii_lowercase();
        let under = |suffix: &str| domain == suffix || domain.ends_with(&format!(".{suffix}"));
        domain.contains('.')
            && !domain.starts_with('[')
            && !self
                .own_domains
                .iter()
                .any(|own| own.eq_ignore_ascii_case(&domain))
            && !PRIVATE.iter().any(|suffix| under(suffix))
    }
}

/// How the body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEncoding {
    /// As stored, lines over 998 octets broken (none: the octets as stored).
    Folded,
    /// Quoted-printable (RFC 2045 6.7).
    QuotedPrintable,
}

/// How one message is sent: its rewritten header section, where its body
/// starts in the spool file, and how the body is encoded.
#[derive(Debug)]
pub struct Plan {
    header: Vec<u8>,
    /// Octets of the stored message the header section replaces.
    skip: u64,
    body: BodyEncoding,
    /// Whether the text is the stored message octet for octet.
    unchanged: bool,
}

/// Reads the header section of `message`, the stored message from its
/// start, and surveys its body. A header section larger than `max_header_size` (and what this
/// server adds) is not held in memory: the message then goes as stored,
/// long lines broken.
pub fn plan(
    message: impl Read,
    max_header_size: u64,
    send_as: Option<&SendAs>,
    sender: &str,
) -> io::Result<Plan> {
    let limit = max_header_size + ADDED_HEADER_ALLOWANCE;
    let mut reader = BufReader::with_capacity(CHUNK, message);
    let mut section = Vec::new();
    let mut blank_line = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let room = limit.saturating_sub(section.len() as u64) + 1;
        let n = (&mut reader).take(room).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if section.len() + n > limit as usize {
            log::warn!("header section over {limit} octets: sent as stored");
            section.extend_from_slice(&line);
            let survey = survey_body(&section, reader)?;
            return Ok(Plan {
                header: Vec::new(),
                skip: 0,
                body: BodyEncoding::Folded,
                unchanged: survey.longest_line <= MAX_LINE,
            });
        }
        if line == b"\r\n" || line == b"\n" {
            blank_line = true;
            break;
        }
        let continues = !section.is_empty() && (line.starts_with(b" ") || line.starts_with(b"\t"));
        if !continues && !is_field_start(&line) {
            // No empty line: the body starts here (RFC 5322 2.1 wants one;
            // it is put in when the header section changes).
            let survey = survey_body(&line, reader)?;
            return Ok(build(section, false, survey, send_as, sender));
        }
        section.extend_from_slice(&line);
    }
    let skip = section.len() + if blank_line { line.len() } else { 0 };
    let survey = survey_body(b"", reader)?;
    let mut plan = build(section, blank_line, survey, send_as, sender);
    plan.skip = skip as u64;
    Ok(plan)
}

/// What the body holds, as far as its encoding is concerned.
#[derive(Debug, Default)]
struct BodySurvey {
    /// Octets of the longest line, without its line end.
    longest_line: usize,
    /// Whether any octet is over 127.
    eight_bit: bool,
    /// Whether there is a body at all (after the header section).
    any: bool,
}

fn survey_body(first: &[u8], mut reader: impl BufRead) -> io::Result<BodySurvey> {
    let mut survey = BodySurvey::default();
    let mut line = 0usize;
    let mut look = |bytes: &[u8], survey: &mut BodySurvey| {
        survey.any |= !bytes.is_empty();
        for &b in bytes {
            match b {
                b'\n' => line = 0,
                b'\r' => {}
                _ => {
                    line += 1;
                    survey.longest_line = survey.longest_line.max(line);
                    survey.eight_bit |= b > 127;
                }
            }
        }
    };
    look(first, &mut survey);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(survey);
        }
        let n = buf.len();
        look(buf, &mut survey);
        reader.consume(n);
    }
}

/// The body decision and the new header section.
fn build(
    section: Vec<u8>,
    blank_line: bool,
    survey: BodySurvey,
    send_as: Option<&SendAs>,
    sender: &str,
) -> Plan {
    let fields = fields(&section);
    let value_of = |name: &str| {
        fields
            .iter()
            .find(|f| is_named(f, name))
            .map(|f| unfolded_value(f).to_ascii_lowercase())
    };
    // RFC 2045 6.4: a multipart or message entity is never encoded itself;
    // an encoded body (base64, quoted-printable) already says how it is.
    let composite = value_of("Content-Type")
        .is_some_and(|t| t.starts_with("multipart/") || t.starts_with("message/"));
    let plain = value_of("Content-Transfer-Encoding")
        .is_none_or(|cte| matches!(cte.as_str(), "7bit" | "8bit"));
    let body = if survey.longest_line > MAX_LINE && plain && !composite {
        BodyEncoding::QuotedPrintable
    } else {
        BodyEncoding::Folded
    };
    let mut header = Vec::with_capacity(section.len() + 256);
    let mut original_from: Option<Mailbox> = None;
    let (mut has_from, mut has_reply_to, mut has_mime_version, mut has_type) =
        (false, false, false, false);
    let qp = body == BodyEncoding::QuotedPrintable;
    for field in &fields {
        has_reply_to |= is_named(field, "Reply-To");
        has_mime_version |= is_named(field, "MIME-Version");
        has_type |= is_named(field, "Content-Type");
        if qp && is_named(field, "Content-Transfer-Encoding") {
            continue;
        }
        match send_as {
            Some(send_as) if is_named(field, "From") => {
                has_from = true;
                let (rewritten, original) = rewrite_from(&unfolded_value(field), send_as.address);
                match rewritten {
                    Some(text) => {
                        header.extend(fold_long_lines(format!("From: {text}\r\n").as_bytes()))
                    }
                    None => header.extend(fold_long_lines(field)),
                }
                if original_from.is_none() {
                    original_from = original;
                }
            }
            _ => header.extend(fold_long_lines(field)),
        }
        // A last field cut off at the end of the message: what is added
        // after it goes on a line of its own.
        if !header.ends_with(b"\n") {
            header.extend(b"\r\n");
        }
    }
    if let Some(send_as) = send_as {
        if !has_from {
            // RFC 5322 3.6 wants a From:; the envelope's sender wrote it.
            let original = parse_mailbox(sender).ok();
            let from = match &original {
                Some(original) if original != send_as.address => format!(
                    "From: {} <{}>\r\n",
                    quoted_string(&original.to_string()),
                    send_as.address
                ),
                _ => format!("From: {}\r\n", send_as.address),
            };
            header.extend(from.as_bytes());
            original_from = original.filter(|o| o != send_as.address);
        }
        if let Some(original) = original_from.filter(|o| send_as.is_reachable_from_outside(o)) {
            if !has_reply_to {
                header.extend(format!("Reply-To: {original}\r\n").as_bytes());
            }
        }
    }
    if qp {
        if !has_mime_version {
            header.extend(b"MIME-Version: 1.0\r\n");
        }
        if !has_type {
            // RFC 2045 5.2 would make it us-ascii; 8-bit text from a Linux
            // box's tools is UTF-8 (what their locales write), so that is
            // what it is said to be.
            let charset = if survey.eight_bit {
                "utf-8"
            } else {
                "us-ascii"
            };
            header.extend(format!("Content-Type: text/plain; charset={charset}\r\n").as_bytes());
        }
        header.extend(b"Content-Transfer-Encoding: quoted-printable\r\n");
    }
    let changed_header = header != section;
    if blank_line || (changed_header && survey.any) {
        header.extend(b"\r\n");
    }
    let unchanged = !changed_header && survey.longest_line <= MAX_LINE;
    Plan {
        skip: section.len() as u64,
        header,
        body,
        unchanged,
    }
}

impl Plan {
    /// Whether the text is the stored message unchanged (its size is the
    /// stored size).
    pub fn is_unchanged(&self) -> bool {
        self.unchanged
    }

    /// The message to send, read from `message`, a fresh reader of the
    /// stored message from its start.
    pub fn text<R: Read>(&self, message: R) -> OutgoingText<'_, R> {
        OutgoingText {
            plan: self,
            source: message,
            skipped: false,
            ready: self.header.clone(),
            at: 0,
            encoder: BodyEncoder::new(self.body),
            chunk: vec![0; CHUNK],
            done: false,
        }
    }

    /// The octets [`Plan::text`] gives for this message.
    pub fn size<R: Read>(&self, message: R) -> io::Result<u64> {
        io::copy(&mut self.text(message), &mut io::sink())
    }
}

/// The text of a message as it leaves (rewritten as the [`Plan`] says),
/// read as it is made; its envelope goes beside it
/// (`client::OutgoingEnvelope`).
pub struct OutgoingText<'a, R> {
    plan: &'a Plan,
    source: R,
    skipped: bool,
    ready: Vec<u8>,
    at: usize,
    encoder: BodyEncoder,
    chunk: Vec<u8>,
    done: bool,
}

impl<R: Read> Read for OutgoingText<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.ready.len() {
                let n = buf.len().min(self.ready.len() - self.at);
                buf[..n].copy_from_slice(&self.ready[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            if !self.skipped {
                // The stored header section, which `header` replaces.
                io::copy(
                    &mut (&mut self.source).take(self.plan.skip),
                    &mut io::sink(),
                )?;
                self.skipped = true;
            }
            self.ready.clear();
            self.at = 0;
            let n = self.source.read(&mut self.chunk)?;
            if n == 0 {
                self.encoder.finish(&mut self.ready);
                self.done = true;
            } else {
                self.encoder.encode(&self.chunk[..n], &mut self.ready);
            }
        }
    }
}

/// The body encoder, fed the stored body piece by piece (CRLF line ends).
struct BodyEncoder {
    encoding: BodyEncoding,
    /// Octets (Folded) or characters (QuotedPrintable) on the output line.
    column: usize,
    /// A CR not yet known to end a line.
    pending_cr: bool,
    /// A space or tab not yet known to be trailing (RFC 2045 6.7 (3): it
    /// must then be encoded).
    pending_space: Option<u8>,
}

impl BodyEncoder {
    fn new(encoding: BodyEncoding) -> BodyEncoder {
        BodyEncoder {
            encoding,
            column: 0,
            pending_cr: false,
            pending_space: None,
        }
    }

    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.line_end(out);
                    continue;
                }
                self.content(b'\r', out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.line_end(out),
                _ => self.content(b, out),
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            self.content(b'\r', out);
        }
        if let Some(space) = self.pending_space.take() {
            self.qp_token(&hex_escape(space), out);
        }
    }

    fn line_end(&mut self, out: &mut Vec<u8>) {
        if let Some(space) = self.pending_space.take() {
            self.qp_token(&hex_escape(space), out);
        }
        out.extend_from_slice(b"\r\n");
        self.column = 0;
    }

    fn content(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.encoding {
            BodyEncoding::Folded => {
                // As Postfix's smtp_line_length_limit: CRLF and a space, so
                // the rest can never pass for a MIME boundary or a header.
                if self.column == MAX_LINE {
                    out.extend_from_slice(b"\r\n ");
                    self.column = 1;
                }
                out.push(b);
                self.column += 1;
            }
            BodyEncoding::QuotedPrintable => {
                if let Some(space) = self.pending_space.take() {
                    self.qp_token(&[space], out);
                }
                match b {
                    b' ' | b'\t' => self.pending_space = Some(b),
                    // RFC 2045 6.7 (2): literal representation.
                    33..=60 | 62..=126 => self.qp_token(&[b], out),
                    _ => self.qp_token(&hex_escape(b), out),
                }
            }
        }
    }

    /// One encoded character or `=XX`, after a soft line break (RFC 2045
    /// 6.7 (5)) if the line would otherwise be longer than 76 characters.
    fn qp_token(&mut self, token: &[u8], out: &mut Vec<u8>) {
        if self.column + token.len() > QP_LINE - 1 {
            out.extend_from_slice(b"=\r\n");
            self.column = 0;
        }
        out.extend_from_slice(token);
        self.column += token.len();
    }
}

/// RFC 2045 6.7 (1): `=XX`, upper-case hexadecimal.
fn hex_escape(b: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

/// A header field with every line over 998 octets folded (RFC 5322 2.2.3):
/// before the last white space that leaves at most 998 octets; a line with
/// no white space there is broken with CRLF and a space at 998 octets, as
/// Postfix does (the value gains a space, the message is not refused).
fn fold_long_lines(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    for line in field.split_inclusive(|&b| b == b'\n') {
        let content_len = line.len()
            - line
                .iter()
                .rev()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
        let (mut content, end) = line.split_at(content_len);
        // What the output line may still take: a line begun with the space
        // of a break has one octet less.
        let mut room = MAX_LINE;
        while content.len() > room {
            match content[1..=room]
                .iter()
                .rposition(|&b| b == b' ' || b == b'\t')
            {
                Some(at) => {
                    // The white space starts the continuation line.
                    out.extend_from_slice(&content[..at + 1]);
                    out.extend_from_slice(b"\r\n");
                    content = &content[at + 1..];
                    room = MAX_LINE;
                }
                None => {
                    out.extend_from_slice(&content[..room]);
                    out.extend_from_slice(b"\r\n ");
                    content = &content[room..];
                    room = MAX_LINE - 1;
                }
            }
        }
        out.extend_from_slice(content);
        out.extend_from_slice(end);
    }
    out
}

/// The words of a From: value: its tokens without the white space, an
/// atom cut at any white space (a no-break space too, as this code always
/// has: the name is written again with plain spaces).
fn words(value: &str) -> Vec<Token<'_>> {
    let mut words = Vec::new();
    for token in tokens(value) {
        match token.kind {
            Kind::Space => {}
            Kind::Atom => words.extend(
                token
                    .written
                    .split(char::is_whitespace)
                    .filter(|w| !w.is_empty())
                    .map(|written| Token { written, ..token }),
            ),
            _ => words.push(token),
        }
    }
    words
}

/// An atom or quoted-string of a phrase, as written.
fn phrase_word(token: &Token) -> Option<String> {
    matches!(token.kind, Kind::Atom | Kind::Quoted).then(|| token.written.to_string())
}

/// The new value of a From: field for `send_as`, and the original address:
/// `"Cron Daemon (root@box.lan)" <box@example.com>`. The display name (a
/// phrase, or the comment after a bare address as cron writes it) is kept
/// and the original address shown in it. A name with encoded words keeps
/// them as atoms and gets the address as a quoted word of its own:
/// `=?UTF-8?B?...?= "(root@box.lan)" <box@example.com>`. `None` when the
/// From: is `send_as` already. Of a list of authors, the first is taken.
fn rewrite_from(value: &str, send_as: &Mailbox) -> (Option<String>, Option<Mailbox>) {
    let words = words(value);
    // The first mailbox: the first element of the list.
    let first = elements(&words)[0];
    let angle = first.iter().position(|t| t.kind == Kind::Special('<'));
    // A group (`undisclosed: a@b;`) names no one author.
    let group = first
        .iter()
        .any(|t| matches!(t.kind, Kind::Special(':' | ';')));
    let spelled = |tokens: &[Token]| {
        tokens
            .iter()
            .filter_map(|t| match t.kind {
                Kind::Atom | Kind::Quoted | Kind::Special('@') => Some(t.written),
                _ => None,
            })
            .collect::<String>()
    };
    let (phrase, address): (Vec<String>, String) = match angle {
        Some(at) => {
            let close = first[at..]
                .iter()
                .position(|t| t.kind == Kind::Special('>'))
                .map_or(first.len(), |p| at + p);
            let phrase = first[..at].iter().filter_map(phrase_word).collect();
            (phrase, spelled(&first[at + 1..close]))
        }
        None => {
            // `root@box (Cron Daemon)`: the last comment is the name.
            let comment = first.iter().rev().find_map(|t| match t.kind {
                Kind::Comment { .. } => Some(t.comment_text()),
                _ => None,
            });
            let phrase = comment.map_or(Vec::new(), |text| {
                let words: Vec<&str> = text.split_whitespace().collect();
                if words.iter().any(|w| is_encoded_word(w)) {
                    words.into_iter().map(String::from).collect()
                } else {
                    vec![quoted_string(&unescaped(text))]
                }
            });
            (phrase, spelled(first))
        }
    };
    let original = (!group).then(|| parse_mailbox(&address).ok()).flatten();
    // No address (`From: Joe Bloggs`, a group): its words are the name.
    let phrase = if original.is_none() && phrase.is_empty() {
        first
            .iter()
            .take_while(|t| t.kind != Kind::Special(':'))
            .filter_map(phrase_word)
            .collect()
    } else {
        phrase
    };
    if original
        .as_ref()
        .is_some_and(|o| o.local == send_as.local && o.domain.eq_ignore_ascii_case(&send_as.domain))
    {
        return (None, None);
    }
    let shown = original.as_ref().map(Mailbox::to_string);
    let name = if phrase.iter().any(|w| is_encoded_word(w)) {
        let mut words = phrase;
        words.extend(shown.map(|s| quoted_string(&format!("({s})"))));
        words.join(" ")
    } else {
        let text: Vec<String> = phrase
            .iter()
            .map(
                |w| match w.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                    Some(inner) => unescaped(inner),
                    None => w.clone(),
                },
            )
            .collect();
        let text = text.join(" ");
        match (text.is_empty(), shown) {
            (true, None) => String::new(),
            (true, Some(shown)) => quoted_string(&shown),
            (false, None) => quoted_string(&text),
            (false, Some(shown)) => quoted_string(&format!("{text} ({shown})")),
        }
    };
    let value = if name.is_empty() {
        send_as.to_string()
    } else {
        format!("{name} <{send_as}>")
    };
    (Some(value), original)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "hostname = box.lan\nqualify_domain = box.lan\nlocal_domains = box.lan, nas.example.net\n\
             send_as = box@example.com",
            std::path::Path::new("test.conf"),
        )
        .unwrap()
    }

    /// The message as it would be sent, and whether it is unchanged.
    fn outgoing(config: &Config, sender: &str, stored: &str) -> (String, bool) {
        let send_as = SendAs::from_config(config);
        let plan = plan(stored.as_bytes(), 1024, send_as.as_ref(), sender).unwrap();
        let mut text = Vec::new();
        plan.text(stored.as_bytes()).read_to_end(&mut text).unwrap();
        assert_eq!(plan.size(stored.as_bytes()).unwrap(), text.len() as u64);
        (String::from_utf8(text).unwrap(), plan.is_unchanged())
    }

    /// RFC 2045 6.7 decoding, for the tests (Python's email and quopri are
    /// the independent decoders in tests/send_as.rs): white space at the
    /// end of an encoded line is deleted (rule 3), as decoders do.
    fn decode_qp(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lines = text.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            let line = line.trim_end_matches([' ', '\t']).as_bytes();
            let (line, soft) = match line.strip_suffix(b"=") {
                Some(line) => (line, true),
                None => (line, false),
            };
            let mut i = 0;
            while i < line.len() {
                if line[i] == b'=' {
                    let hex = std::str::from_utf8(&line[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                } else {
                    out.push(line[i]);
                    i += 1;
                }
            }
            if !soft && lines.peek().is_some() {
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    #[test]
    fn the_author_is_kept_in_the_display_name() {
        let send_as = parse_mailbox("box@example.com").unwrap();
        let from = |value: &str| {
            let (text, original) = rewrite_from(value, &send_as);
            (text, original.map(|o| o.to_string()))
        };
        let some =
            |text: &str, original: &str| (Some(text.to_string()), Some(original.to_string()));
        assert_eq!(
            from("root@box.lan (Cron Daemon)"),
            some(
                "\"Cron Daemon (root@box.lan)\" <box@example.com>",
                "root@box.lan"
            )
        );
        assert_eq!(
            from("mdadm monitoring <root@box.lan>"),
            some(
                "\"mdadm monitoring (root@box.lan)\" <box@example.com>",
                "root@box.lan"
            )
        );
        assert_eq!(
            from("\"Doe, John\" <jd@real.example>"),
            some(
                "\"Doe, John (jd@real.example)\" <box@example.com>",
                "jd@real.example"
            )
        );
        assert_eq!(
            from("\"say \\\"hi\\\"\" <a@real.example>"),
            some(
                "\"say \\\"hi\\\" (a@real.example)\" <box@example.com>",
                "a@real.example"
            )
        );
        // RFC 2047 5 (3): an encoded word stays an atom, never quoted.
        assert_eq!(
            from("=?UTF-8?B?w4lsb2TDqWU=?= <alice@real.example>"),
            some(
                "=?UTF-8?B?w4lsb2TDqWU=?= \"(alice@real.example)\" <box@example.com>",
                "alice@real.example"
            )
        );
        assert_eq!(
            from("x@real.example (=?UTF-8?Q?caf=C3=A9?= bot)"),
            some(
                "=?UTF-8?Q?caf=C3=A9?= bot \"(x@real.example)\" <box@example.com>",
                "x@real.example"
            )
        );
        assert_eq!(
            from("root@box.lan"),
            some("\"root@box.lan\" <box@example.com>", "root@box.lan")
        );
        assert_eq!(
            from("a (nested (comment) here) <a@real.example>, b@real.example"),
            some("\"a (a@real.example)\" <box@example.com>", "a@real.example")
        );
        assert_eq!(
            from("Joe Bloggs"),
            (Some("\"Joe Bloggs\" <box@example.com>".to_string()), None)
        );
        assert_eq!(
            from("undisclosed: a@real.example;"),
            (Some("\"undisclosed\" <box@example.com>".to_string()), None)
        );
        assert_eq!(from("Box <box@EXAMPLE.com>"), (None, None));
    }

    #[test]
    fn replies_go_only_where_they_can_arrive() {
        let config = config();
        let send_as = SendAs::from_config(&config).unwrap();
        let reachable = |a: &str| send_as.is_reachable_from_outside(&parse_mailbox(a).unwrap());
        assert!(reachable("alice@real.example"));
        assert!(reachable("ops@mail.example.org"));
        for own in [
            "root@box.lan",
            "root@BOX.LAN",
            "root@nas.example.net",
            "root@box",
            "root@[192.168.1.5]",
            "root@nas.home.arpa",
            "root@router.local",
            "root@vm.localdomain",
            "root@x.internal",
            "root@lan",
        ] {
            assert!(!reachable(own), "{own}");
        }
    }

    #[test]
    fn send_as_rewrites_from_and_adds_reply_to() {
        let config = config();
        let (text, unchanged) = outgoing(
            &config,
            "root@box.lan",
            "Received: by box.lan\r\n\tid 1\r\nFrom: root@box.lan (Cron\r\n Daemon)\r\nTo: a@real.example\r\n\r\nbody\r\n",
        );
        assert!(!unchanged);
        assert_eq!(
            text,
            "Received: by box.lan\r\n\tid 1\r\nFrom: \"Cron Daemon (root@box.lan)\" <box@example.com>\r\n\
             To: a@real.example\r\n\r\nbody\r\n"
        );
        // A reachable author gets the replies, unless the message says where.
        let (text, _) = outgoing(
            &config,
            "alice@real.example",
            "From: Alice <alice@real.example>\r\nSubject: x\r\n\r\nbody\r\n",
        );
        assert_eq!(
            text,
            "From: \"Alice (alice@real.example)\" <box@example.com>\r\nSubject: x\r\n\
             Reply-To: alice@real.example\r\n\r\nbody\r\n"
        );
        let stored =
            "From: Alice <alice@real.example>\r\nreply-to: list@real.example\r\n\r\nbody\r\n";
        let (text, _) = outgoing(&config, "", stored);
        assert_eq!(
            text,
            "From: \"Alice (alice@real.example)\" <box@example.com>\r\nreply-to: list@real.example\r\n\r\nbody\r\n"
        );
        // No From: at all: the envelope's sender is the author.
        let (text, _) = outgoing(&config, "alice@real.example", "Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            text,
            "Subject: x\r\nFrom: \"alice@real.example\" <box@example.com>\r\n\
             Reply-To: alice@real.example\r\n\r\nbody\r\n"
        );
        // Already send_as: nothing to do, octet for octet.
        let stored = "From: Box <box@example.com>\r\n\r\nbody\r\n";
        assert_eq!(
            outgoing(&config, "box@example.com", stored),
            (stored.to_string(), true)
        );
        // Without send_as, the header stays.
        let plain = Config::default();
        let stored = "From: root@box.lan\r\n\r\nbody\r\n";
        assert_eq!(
            outgoing(&plain, "root@box.lan", stored),
            (stored.to_string(), true)
        );
    }

    #[test]
    fn a_long_line_in_plain_text_goes_quoted_printable_and_decodes_to_itself() {
        let plain = Config::default();
        let json = format!(
            "{{\"items\": [{}], \"note\": \"caf\u{e9} = 100%\"}}",
            "\"x\", ".repeat(500)
        );
        let body = format!("first line \r\n{json}\r\n\tindented\t\r\n.leading dot\r\nend");
        let stored = format!(
            "From: root@box.lan\r\nContent-Type: text/plain; charset=UTF-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
        );
        let (text, unchanged) = outgoing(&plain, "root@box.lan", &stored);
        assert!(!unchanged);
        let (header, encoded) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            header,
            "From: root@box.lan\r\nContent-Type: text/plain; charset=UTF-8\r\n\
             MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable"
        );
        for line in encoded.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
            assert!(!line.ends_with(' ') && !line.ends_with('\t'), "{line:?}");
        }
        assert!(encoded.starts_with("first line=20\r\n"), "{encoded}");
        assert_eq!(decode_qp(encoded), body.as_bytes());
        // Nothing said about the type, 8-bit text: UTF-8.
        let stored = format!("Subject: x\r\n\r\n{json}\r\n");
        let (text, _) = outgoing(&plain, "", &stored);
        assert!(text.starts_with(
            "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ));
        let ascii = format!("Subject: x\r\n\r\n{}\r\n", "a".repeat(2000));
        let (text, _) = outgoing(&plain, "", &ascii);
        assert!(text.contains("Content-Type: text/plain; charset=us-ascii\r\n"));
    }

    #[test]
    fn any_body_survives_quoted_printable_and_folding() {
        // Bodies of every octet but bare CR and LF (the spool holds none),
        // lines of every length around the limits, in pieces of every size.
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for round in 0..200 {
            let mut body = Vec::new();
            for _ in 0..(next() % 6 + 1) {
                let len = [0, 1, 75, 76, 77, 997, 998, 999, 3000][next() as usize % 9];
                body.extend((0..len).map(|_| match (next() % 256) as u8 {
                    b'\r' | b'\n' => b' ',
                    b => b,
                }));
                body.extend_from_slice(b"\r\n");
            }
            if round % 2 == 1 {
                // The last line without its line end.
                body.truncate(body.len() - 2);
            }
            for encoding in [BodyEncoding::QuotedPrintable, BodyEncoding::Folded] {
                let mut encoder = BodyEncoder::new(encoding);
                let mut out = Vec::new();
                for piece in body.chunks(next() as usize % 100 + 1) {
                    encoder.encode(piece, &mut out);
                }
                encoder.finish(&mut out);
                let text = String::from_utf8_lossy(&out);
                for line in out.split(|&b| b == b'\n') {
                    let limit = if encoding == BodyEncoding::Folded {
                        999
                    } else {
                        77
                    };
                    assert!(line.len() <= limit, "{round} {encoding:?}");
                }
                if encoding == BodyEncoding::QuotedPrintable {
                    assert!(out.is_ascii());
                    assert_eq!(decode_qp(&text), body, "{round}");
                } else {
                    // Each line over 998 octets broken every 997 after the
                    // first 998, nothing else changed.
                    let breaks: usize = body
                        .split(|&b| b == b'\n')
                        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
                        .map(|len| len.saturating_sub(MAX_LINE).div_ceil(MAX_LINE - 1))
                        .sum();
                    assert_eq!(out.len(), body.len() + 3 * breaks, "{round}");
                    if breaks == 0 {
                        assert_eq!(out, body);
                    }
                }
            }
        }
    }

    #[test]
    fn long_lines_of_composite_or_encoded_bodies_are_broken() {
        let plain = Config::default();
        let long = "y".repeat(2500);
        for header in [
            "Content-Type: multipart/mixed; boundary=b\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "Content-Type: message/rfc822\r\n",
        ] {
            let stored = format!("{header}\r\n--b\r\n{long}\r\nend\r\n");
            let (text, _) = outgoing(&plain, "", &stored);
            let folded = format!(
                "{header}\r\n--b\r\n{}\r\n {}\r\n {}\r\nend\r\n",
                &long[..998],
                &long[998..1995],
                &long[1995..]
            );
            assert_eq!(text, folded);
        }
    }

    #[test]
    fn long_header_lines_are_folded_at_white_space() {
        let plain = Config::default();
        let words = vec!["word"; 400].join(" ");
        let token = "t".repeat(1200);
        let stored = format!("Subject: {words}\r\nX-Token: {token}\r\n\r\nbody\r\n");
        let (text, _) = outgoing(&plain, "", &stored);
        let lines: Vec<&str> = text.split("\r\n").collect();
        // 2008 octets of Subject: three lines, each continuation starting
        // with the white space it was folded before; X-Token: folded at its
        // one space, then broken at 998 octets with CRLF and a space.
        let lengths: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert_eq!(lengths, [998, 995, 15, 8, 998, 204, 0, 4, 0]);
        assert!(lines[1].starts_with(' ') && lines[2].starts_with(' '));
        // Unfolding gives the value back (RFC 5322 2.2.3).
        assert_eq!(lines[..3].concat(), format!("Subject: {words}"));
        assert_eq!(
            lines[3..6].concat(),
            format!("X-Token: {} {}", &token[..997], &token[997..])
        );
        assert_eq!(lines[6..], ["", "body", ""]);
        // Broken twice without white space: a line begun with the break's
        // space holds 997 octets more (found by fuzz/fuzz_targets/outgoing.rs).
        let stored = format!("Subject: w {}\r\n\r\n", "x".repeat(2500));
        let (text, _) = outgoing(&plain, "", &stored);
        let lengths: Vec<usize> = text.split("\r\n").map(str::len).collect();
        assert_eq!(lengths, [10, 998, 998, 507, 0, 0]);
    }

    #[test]
    fn a_message_without_an_empty_line_gets_one_only_if_its_header_changes() {
        let config = config();
        let stored = "From: root@box.lan\r\nnot a field\r\n";
        let (text, _) = outgoing(&config, "", stored);
        assert_eq!(
            text,
            "From: \"root@box.lan\" <box@example.com>\r\n\r\nnot a field\r\n"
        );
        let plain = Config::default();
        assert_eq!(outgoing(&plain, "", stored), (stored.to_string(), true));
        let only_header = "Subject: x\r\n";
        assert_eq!(
            outgoing(&plain, "", only_header),
            (only_header.to_string(), true)
        );
        // No line end at all (found by fuzz/fuzz_targets/outgoing.rs): the
        // added From: is a field of its own.
        let (text, unchanged) = outgoing(&config, "root@box.lan", "Subject: x");
        assert_eq!(
            (text.as_str(), unchanged),
            (
                "Subject: x\r\nFrom: \"root@box.lan\" <box@example.com>\r\n",
                false
            )
        );
    }
}
