//! RFC 5322 header sections, read once for everyone who reads one: the
//! sendmail entry point (qualifying addresses without a domain) and the
//! outgoing rewriting (`send_as`, the MIME fields that decide a body's
//! encoding). Reading only: each caller writes its changes itself, and
//! what it does not change it copies as written, octet for octet, so the
//! tokens here keep their text as written.

/// Whether `line` starts a header field: a field name of printable ASCII
/// but the colon, then the colon (RFC 5322 2.2, 3.6.8 `ftext`).
pub fn is_field_start(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) => colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        None => false,
    }
}

/// The fields of a header section, each with its continuation lines (a
/// line that starts with white space continues the field before it, RFC
/// 5322 2.2.3), line ends as written.
pub fn fields(section: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < section.len() {
        let end = section[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(section.len(), |p| at + p + 1);
        if at > start && !matches!(section[at], b' ' | b'\t') {
            fields.push(&section[start..at]);
            start = at;
        }
        at = end;
    }
    if start < section.len() {
        fields.push(&section[start..]);
    }
    fields
}

/// Whether `field` is named `name`; field names are compared without
/// regard to case (RFC 5322 1.2.2).
pub fn is_named(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field[name.len()] == b':'
        && field[..name.len()].eq_ignore_ascii_case(name.as_bytes())
}

/// A field's value, unfolded (RFC 5322 2.2.3: a line end before white
/// space is removed) and without the white space around it.
pub fn unfolded_value(field: &[u8]) -> String {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

/// What a piece of a structured field value is (RFC 5322 3.2, 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything up to white space, a quote, a comment or one of the
    /// specials below: an atom or dot-atom (RFC 5322 3.2.3), and whatever
    /// else a tool wrote there (a stray `)`, a backslash, 8-bit text).
    Atom,
    /// A quoted-string (RFC 5322 3.2.4), to its closing quote or the end.
    Quoted,
    /// A comment (RFC 5322 3.2.2), comments nested in it included;
    /// `closed` unless the value ended inside it.
    Comment { closed: bool },
    /// One of `<`, `>`, `@`, `,`, `:`, `;`: the specials that give an
    /// address list its structure (RFC 5322 3.4).
    Special(char),
    /// White space and line ends (RFC 5322 3.2.2 FWS).
    Space,
}

/// A piece of a field value and its text as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    pub written: &'a str,
}

impl<'a> Token<'a> {
    /// A comment's text without its parentheses (quoted-pairs as written).
    pub fn comment_text(&self) -> &'a str {
        let inner = self.written.strip_prefix('(').unwrap_or(self.written);
        match self.kind {
            Kind::Comment { closed: true } => inner.strip_suffix(')').unwrap_or(inner),
            _ => inner,
        }
    }
}

/// FWS (RFC 5322 3.2.2): WSP and the CR LF of a folded line.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

const SPECIALS: [char; 6] = ['<', '>', '@', ',', ':', ';'];

/// A field value as tokens; their written texts, put together, are the
/// value again. A backslash is a quoted-pair only inside a quoted-string
/// or a comment (RFC 5322 3.2.1, 3.2.2, 3.2.4).
pub fn tokens(value: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        let (kind, len) = match c {
            c if is_space(c) => (
                Kind::Space,
                rest.find(|c| !is_space(c)).unwrap_or(rest.len()),
            ),
            '"' => (Kind::Quoted, quoted_len(rest)),
            '(' => {
                let (len, closed) = comment_len(rest);
                (Kind::Comment { closed }, len)
            }
            c if SPECIALS.contains(&c) => (Kind::Special(c), c.len_utf8()),
            _ => (
                Kind::Atom,
                rest.find(|c| is_space(c) || c == '"' || c == '(' || SPECIALS.contains(&c))
                    .unwrap_or(rest.len()),
            ),
        };
        tokens.push(Token {
            kind,
            written: &rest[..len],
        });
        rest = &rest[len..];
    }
    tokens
}

/// The length of the quoted-string `text` starts with, its quotes included.
fn quoted_len(text: &str) -> usize {
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return at + 1,
            _ => {}
        }
    }
    text.len()
}

/// The length of the comment `text` starts with, its parentheses and
/// those of nested comments included, and whether it is closed.
fn comment_len(text: &str) -> (usize, bool) {
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (at + 1, true);
                }
            }
            _ => {}
        }
    }
    (text.len(), false)
}

/// The elements of an address list (RFC 5322 3.4 `address-list`): the
/// tokens between the commas that stand outside angle brackets, the
/// commas left out. A comma inside a quoted-string or comment is part of
/// that token already.
pub fn elements<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<&'t [Token<'a>]> {
    let mut elements = Vec::new();
    let (mut start, mut in_angle) = (0, false);
    for (at, token) in tokens.iter().enumerate() {
        match token.kind {
            Kind::Special('<') => in_angle = true,
            Kind::Special('>') => in_angle = false,
            Kind::Special(',') if !in_angle => {
                elements.push(&tokens[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    elements.push(&tokens[start..]);
    elements
}

/// RFC 5322 3.2.4: `text` as a quoted-string, a backslash and a quote
/// made quoted-pairs.
pub fn quoted_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The text of a quoted-string or comment: quoted-pairs undone (RFC 5322
/// 3.2.1).
pub fn unescaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(value: &str) -> Vec<(Kind, &str)> {
        tokens(value).iter().map(|t| (t.kind, t.written)).collect()
    }

    #[test]
    fn a_header_section_in_fields() {
        let section = b"Received: by box\r\n\tid 1\r\nFrom: root\r\nX-Cut: end";
        assert_eq!(
            fields(section),
            [
                &b"Received: by box\r\n\tid 1\r\n"[..],
                b"From: root\r\n",
                b"X-Cut: end"
            ]
        );
        assert!(fields(b"").is_empty());
        assert!(is_field_start(b"Subject: x\r\n"));
        assert!(is_field_start(b"X-A:"));
        assert!(!is_field_start(b": x"));
        assert!(!is_field_start(b"not a field\r\n"));
        assert!(!is_field_start(b"Bad Name: x"));
        assert!(is_named(b"content-type: text/plain", "Content-Type"));
        assert!(!is_named(b"Content-Type-X: y", "Content-Type"));
        assert!(!is_named(b"From", "From"));
        assert_eq!(
            unfolded_value(b"From: root (Cron\r\n Daemon)\r\n"),
            "root (Cron Daemon)"
        );
    }

    #[test]
    fn tokens_keep_the_text_as_written() {
        use Kind::*;
        assert_eq!(
            kinds("\"Doe, \\\"J\\\"\" <jd@x> (a (b) \\) c),root"),
            [
                (Quoted, "\"Doe, \\\"J\\\"\""),
                (Space, " "),
                (Special('<'), "<"),
                (Atom, "jd"),
                (Special('@'), "@"),
                (Atom, "x"),
                (Special('>'), ">"),
                (Space, " "),
                (Comment { closed: true }, "(a (b) \\) c)"),
                (Special(','), ","),
                (Atom, "root"),
            ]
        );
        // Cut off: to the end of the value.
        assert_eq!(kinds("\"open \\\""), [(Quoted, "\"open \\\"")]);
        assert_eq!(
            kinds("(open (x)"),
            [(Comment { closed: false }, "(open (x)")]
        );
        // Outside quotes and comments a backslash and a `)` are text.
        assert_eq!(
            kinds("a\\\"b\")"),
            [(Atom, "a\\"), (Quoted, "\"b\""), (Atom, ")")]
        );
        assert_eq!(kinds(" \r\n\t"), [(Space, " \r\n\t")]);
        let value = "=?UTF-8?B?w4k=?= <é@x>,\r\n\t(c) g: a;";
        assert_eq!(
            tokens(value).iter().map(|t| t.written).collect::<String>(),
            value
        );
        let comment = tokens("(a \\) b)")[0];
        assert_eq!(comment.comment_text(), "a \\) b");
        assert_eq!(tokens("(open")[0].comment_text(), "open");
    }

    #[test]
    fn an_address_list_in_elements() {
        let list = tokens("\"a, b\" <x@y, z>, (c, d) root,g: a, b;");
        let written: Vec<String> = elements(&list)
            .iter()
            .map(|e| e.iter().map(|t| t.written).collect())
            .collect();
        assert_eq!(
            written,
            ["\"a, b\" <x@y, z>", " (c, d) root", "g: a", " b;"]
        );
        assert_eq!(elements(&[]).len(), 1);
    }

    #[test]
    fn quoted_strings_both_ways() {
        assert_eq!(
            quoted_string("say \"hi\" \\o/"),
            "\"say \\\"hi\\\" \\\\o/\""
        );
        assert_eq!(unescaped("say \\\"hi\\\" \\\\o/"), "say \"hi\" \\o/");
        assert_eq!(unescaped("end\\"), "end");
    }
}
