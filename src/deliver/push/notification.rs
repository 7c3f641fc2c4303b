//! A queued message as a notification: its title is the decoded Subject
//! (RFC 2047), its text the text/plain part or the HTML part made plain
//! (mail-parser decodes transfer encodings and charsets to UTF-8), its
//! attachments counted, not sent, and its priority read from the headers
//! that mail clients and alert tools set.

use std::io::Read;

use mail_parser::{HeaderName, MessageParser, PartType};

use crate::config::route::Priority;

/// The most of a message read for a notification: the longest text any
/// service takes is a few KiB, and an alert with a large attachment must
/// not make the daemon hold all of it. A message cut here still gives its
/// headers and first part; a later part is simply not seen.
pub const MAX_NOTIFIED_MESSAGE: u64 = 1024 * 1024;

/// What a message says, as every service is given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The decoded Subject; empty when there is none.
    pub title: String,
    /// The text body, plain; without trailing white space.
    pub text: String,
    /// Parts that are neither the text nor the HTML body.
    pub attachments: usize,
    /// From the message's headers (see [`priority_of`]).
    pub priority: Priority,
    /// The From: address, as the message gives it.
    pub from: String,
    /// The Date: header, as the message gives it.
    pub date: String,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
}

/// How a service measures its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Unicode characters (Telegram, Discord, Slack, Pushover).
    Chars(usize),
    /// Octets of UTF-8 (ntfy).
    Bytes(usize),
    /// UTF-16 code units, as Telegram counts its 4096 (an emoji outside
    /// the BMP is two).
    Utf16(usize),
}

impl Limit {
    fn unit(self) -> &'static str {
        match self {
            Limit::Chars(_) | Limit::Utf16(_) => "characters",
            Limit::Bytes(_) => "bytes",
        }
    }

    fn size(self, text: &str) -> usize {
        match self {
            Limit::Chars(_) => text.chars().count(),
            Limit::Bytes(_) => text.len(),
            Limit::Utf16(_) => text.encode_utf16().count(),
        }
    }

    /// How much of `text` a marker reports: characters, or bytes where
    /// the limit is in bytes.
    fn counted(self, text: &str) -> usize {
        match self {
            Limit::Bytes(_) => text.len(),
            Limit::Chars(_) | Limit::Utf16(_) => text.chars().count(),
        }
    }

    fn max(self) -> usize {
        match self {
            Limit::Chars(n) | Limit::Bytes(n) | Limit::Utf16(n) => n,
        }
    }
}

/// Reads a notification from a queued message, at most
/// [`MAX_NOTIFIED_MESSAGE`] of it. A panic in the parser (it reads
/// whatever a sender wrote) is caught: the message gets a notification
/// that says it could not be read, and the daemon goes on.
pub fn read_notification(message: impl Read) -> std::io::Result<Notification> {
    let mut raw = Vec::new();
    message.take(MAX_NOTIFIED_MESSAGE).read_to_end(&mut raw)?;
    let parsed = std::panic::catch_unwind(|| parse_notification(&raw));
    Ok(parsed.unwrap_or_else(|_| {
        log::error!("the message parser panicked; the notification says so");
        Notification {
            title: String::new(),
            text: "(tinymta could not read this message; it is in the queue log)".to_string(),
            attachments: 0,
            priority: Priority::DEFAULT,
            from: String::new(),
            date: String::new(),
            message_id: String::new(),
        }
    }))
}

/// A notification from a whole message.
pub fn parse_notification(raw: &[u8]) -> Notification {
    // Only what the notification needs is parsed (MIME structure, the
    // Subject's encoded words); From, Date and Message-ID are taken raw.
    // Each parser named here is code in the binary, which must stay small.
    let parser = MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject);
    let Some(message) = parser.parse(raw) else {
        // Not even a header section: the octets are the text.
        return Notification {
            title: String::new(),
            text: String::from_utf8_lossy(raw).trim_end().to_string(),
            attachments: 0,
            priority: Priority::DEFAULT,
            from: String::new(),
            date: String::new(),
            message_id: String::new(),
        };
    };
    let raw_header =
        |name: &'static str| message.header_raw(name).map(str::trim).unwrap_or_default();
    // The first text body: text/plain as it is, HTML made plain here.
    let text = match message.text_bodies().next().map(|part| &part.body) {
        Some(PartType::Text(text)) => text.replace("\r\n", "\n"),
        Some(PartType::Html(html)) => super::html::html_to_text(html),
        _ => String::new(),
    };
    Notification {
        title: one_line(message.subject().unwrap_or_default()),
        text: text.trim_end().to_string(),
        attachments: message.attachment_count(),
        priority: priority_of(
            raw_header("X-Priority"),
            raw_header("Importance"),
            raw_header("Priority"),
        ),
        from: first_address(raw_header("From")),
        date: one_line(raw_header("Date")),
        message_id: one_line(raw_header("Message-ID").trim_matches(['<', '>'])),
    }
}

/// The priority the headers give, the highest where several do; the
/// default where none does.
/// - `X-Priority: 1 (Highest)` to `5 (Lowest)` (Outlook, mutt, PHPMailer):
///   1 is max, 5 min;
/// - `Importance: high | normal | low` (RFC 2156 5.3);
/// - `Priority: urgent | normal | non-urgent` (RFC 2156 5.3).
pub fn priority_of(x_priority: &str, importance: &str, priority: &str) -> Priority {
    let from_x_priority = match x_priority.trim_start().bytes().next() {
        Some(b'1') => Some(Priority::MAX),
        Some(b'2') => Some(Priority::HIGH),
        Some(b'3') => Some(Priority::DEFAULT),
        Some(b'4') => Some(Priority::LOW),
        Some(b'5') => Some(Priority::MIN),
        _ => None,
    };
    let from_importance = match importance.to_ascii_lowercase().as_str() {
        "high" => Some(Priority::HIGH),
        "normal" => Some(Priority::DEFAULT),
        "low" => Some(Priority::LOW),
        _ => None,
    };
    let from_priority = match priority.to_ascii_lowercase().as_str() {
        "urgent" => Some(Priority::MAX),
        "normal" => Some(Priority::DEFAULT),
        "non-urgent" => Some(Priority::LOW),
        _ => None,
    };
    [from_x_priority, from_importance, from_priority]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Priority::DEFAULT)
}

impl Notification {
    /// The text as a service shows it: the attachments said at the end,
    /// and cut to `limit` with a marker saying how much was cut.
    pub fn text_within(&self, limit: Limit) -> String {
        fit("", &self.text, &self.attachment_note(), limit)
    }

    /// The title, a blank line and the text, for services without a
    /// title of their own (Telegram, Discord, Slack), within `limit`.
    pub fn titled_text_within(&self, limit: Limit) -> String {
        let heading = if self.title.is_empty() {
            String::new()
        } else {
            format!("{}\n\n", self.title)
        };
        fit(&heading, &self.text, &self.attachment_note(), limit)
    }

    fn attachment_note(&self) -> String {
        match self.attachments {
            0 => String::new(),
            1 => "\n\n[1 attachment not sent]".to_string(),
            n => format!("\n\n[{n} attachments not sent]"),
        }
    }
}

/// `head`, `text` and `tail` within `limit`: where they do not fit, the
/// end of the text is cut and a marker says how much (the marker counts
/// towards the limit). A tiny limit cuts the head too.
pub fn fit(head: &str, text: &str, tail: &str, limit: Limit) -> String {
    let whole = format!("{head}{text}{tail}");
    if limit.size(&whole) <= limit.max() {
        return whole;
    }
    // The marker's own length depends on the number in it; one that
    // allows for the whole text's number is never too short.
    let marker_for = |cut: usize| format!("\n[... {cut} {} cut]", limit.unit());
    let reserve =
        limit.size(head) + limit.size(tail) + limit.size(&marker_for(limit.counted(text)));
    let keep = limit.max().saturating_sub(reserve);
    let kept = prefix(text, keep, limit);
    let cut = limit.counted(&text[kept.len()..]);
    let out = format!("{head}{kept}{}{tail}", marker_for(cut));
    if limit.size(&out) <= limit.max() {
        out
    } else {
        prefix(&out, limit.max(), limit).to_string()
    }
}

/// The longest start of `text` of at most `size` (characters or bytes),
/// on a character boundary.
fn prefix(text: &str, size: usize, limit: Limit) -> &str {
    let end = match limit {
        Limit::Chars(_) => text
            .char_indices()
            .nth(size)
            .map_or(text.len(), |(at, _)| at),
        Limit::Bytes(_) => {
            let mut end = size.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            end
        }
        Limit::Utf16(_) => {
            let mut units = 0;
            text.char_indices()
                .find(|(_, c)| {
                    units += c.len_utf16();
                    units > size
                })
                .map_or(text.len(), |(at, _)| at)
        }
    };
    &text[..end]
}

/// The address of a From: field (RFC 5322 3.4): the one in angle
/// brackets, else the field as it is (`root@box (Cron Daemon)` keeps its
/// comment out).
fn first_address(field: &str) -> String {
    let address = match (field.find('<'), field.find('>')) {
        (Some(open), Some(close)) if open < close => &field[open + 1..close],
        _ => field.split(['(', ',']).next().unwrap_or_default(),
    };
    one_line(address)
}

/// A header's text on one line: control characters (a decoded encoded
/// word may hold a line end) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_message() {
        let n = parse_notification(
            b"From: NAS <nas@box.lan>\r\nTo: nas@push\r\nDate: Thu, 3 Dec 2026 12:00:00 +0000\r\n\
              Message-ID: <1@box.lan>\r\nSubject: =?UTF-8?Q?Disk_=C3=BCberhitzt?=\r\n\
              X-Priority: 2 (High)\r\n\r\nsda: 61 C\r\nsdb: 40 C\r\n\r\n",
        );
        assert_eq!(n.title, "Disk überhitzt");
        assert_eq!(n.text, "sda: 61 C\nsdb: 40 C");
        assert_eq!(n.priority, Priority::HIGH);
        assert_eq!(n.from, "nas@box.lan");
        assert_eq!(n.date, "Thu, 3 Dec 2026 12:00:00 +0000");
        assert_eq!(n.message_id, "1@box.lan");
        assert_eq!(n.attachments, 0);
        assert_eq!(first_address("root@box (Cron Daemon)"), "root@box");
        assert_eq!(first_address(" \"A, B\" <a@b.example>"), "a@b.example");
    }

    #[test]
    fn html_only_becomes_readable_text_and_attachments_are_counted() {
        let n = parse_notification(
            b"Subject: RAID\r\nMIME-Version: 1.0\r\n\
              Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
              --b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\
              Content-Transfer-Encoding: quoted-printable\r\n\r\n\
              <html><head><style>p{}</style></head><body><p>Array <b>md0</b> degraded</p>\
              <p>Temp&eacute;rature&nbsp;&lt;ok&gt;<br>caf=E9</p></body></html>\r\n\
              --b\r\nContent-Type: application/octet-stream\r\n\
              Content-Disposition: attachment; filename=log.txt\r\n\r\nxyz\r\n--b--\r\n",
        );
        assert_eq!(n.title, "RAID");
        assert_eq!(n.text, "Array md0 degraded\nTempérature\u{a0}<ok>\ncafé");
        assert_eq!(n.attachments, 1);
        assert_eq!(
            n.text_within(Limit::Chars(4096)),
            "Array md0 degraded\nTempérature\u{a0}<ok>\ncafé\n\n[1 attachment not sent]"
        );
    }

    #[test]
    fn priorities_from_headers() {
        assert_eq!(priority_of("", "", ""), Priority::DEFAULT);
        assert_eq!(priority_of("1 (Highest)", "", ""), Priority::MAX);
        assert_eq!(priority_of("5", "", ""), Priority::MIN);
        assert_eq!(priority_of("", "High", ""), Priority::HIGH);
        assert_eq!(priority_of("", "low", ""), Priority::LOW);
        assert_eq!(priority_of("", "", "urgent"), Priority::MAX);
        assert_eq!(priority_of("", "", "non-urgent"), Priority::LOW);
        assert_eq!(priority_of("4", "high", ""), Priority::HIGH);
        assert_eq!(priority_of("x", "very", "now"), Priority::DEFAULT);
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let text = "é".repeat(5000);
        let cut = fit("", &text, "", Limit::Chars(4096));
        // The marker was reserved for a four-digit number: one under.
        assert_eq!(cut.chars().count(), 4095);
        assert!(cut.ends_with("é\n[... 930 characters cut]"), "{cut}");
        let cut = fit("", &text, "", Limit::Bytes(4096));
        assert_eq!(cut.len(), 4095);
        assert!(cut.ends_with("é\n[... 5926 bytes cut]"), "{cut}");
        // The head and the attachment note stay.
        let cut = fit(
            "T\n\n",
            &"x".repeat(100),
            "\n\n[2 attachments not sent]",
            Limit::Chars(60),
        );
        assert_eq!(
            cut,
            "T\n\nxxxxxx\n[... 94 characters cut]\n\n[2 attachments not sent]"
        );
        assert_eq!(fit("", "short", "", Limit::Chars(5)), "short");
        // Telegram counts UTF-16: an emoji outside the BMP is two.
        let cut = fit("", &"🔥".repeat(20), "", Limit::Utf16(30));
        assert_eq!(cut, "🔥".repeat(3) + "\n[... 17 characters cut]");
        assert_eq!(fit("", "too long", "", Limit::Chars(3)).chars().count(), 3);
    }

    #[test]
    fn no_header_section_and_a_bounded_read() {
        let n = parse_notification(b"");
        assert_eq!((n.title.as_str(), n.text.as_str()), ("", ""));
        let big = vec![b'a'; (MAX_NOTIFIED_MESSAGE + 10) as usize];
        let n = read_notification(&big[..]).unwrap();
        assert!(n.text.len() as u64 <= MAX_NOTIFIED_MESSAGE);
    }
}
