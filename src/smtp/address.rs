//! RFC 5321 4.1.2 paths and mailboxes, ASCII only (SMTPUTF8 is not offered).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 4.5.3.1.1: the longest local part.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 4.5.3.1.2: the longest domain.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 4.5.3.1.3: the longest path, with its angle brackets.
const MAX_PATH: usize = 256;

/// `local@domain`, with the local part kept exactly as it was written
/// (a quoted one keeps its quotes) so it can be passed on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    /// A domain name, or an address literal with its brackets.
    pub domain: String,
}

impl Mailbox {
    /// The Maildir folder name of a local recipient: the local part without
    /// quoting, lower-cased; `None` when it could name anything outside
    /// `mailbox_dir` or is not a plain printable name.
    pub fn mailbox_name(&self) -> Option<String> {
        let name = self.local_unquoted().to_ascii_lowercase();
        let safe = !name.is_empty()
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
        safe.then_some(name)
    }

    /// The local part with quoting removed: `"a\"b"` is `a"b`.
    pub fn local_unquoted(&self) -> String {
        let Some(inner) = self
            .local
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        else {
            return self.local.clone();
        };
        let mut out = String::with_capacity(inner.len());
        let mut escaped = false;
        for c in inner.chars() {
            if escaped || c != '\\' {
                out.push(c);
                escaped = false;
            } else {
                escaped = true;
            }
        }
        out
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Why a path or mailbox is refused; its text follows "Bad sender address
/// syntax: " in a 501 reply, so each variant's wording is part of the
/// protocol the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// `<` without its `>`.
    Unclosed,
    /// Longer than RFC 5321 4.5.3.1.3 allows.
    PathTooLong,
    /// Nothing where the address should be.
    Empty,
    /// Something other than a space after the path.
    TextAfter,
    /// `@a,@b:` not followed by a mailbox, or a hop without `@`.
    BadSourceRoute,
    /// Longer than RFC 5321 4.5.3.1.1 allows.
    LocalPartTooLong,
    UnterminatedQuote,
    BadQuotedPair,
    BadQuotedCharacter,
    /// A quoted local part followed by something other than `@`.
    NoAtAfterQuote,
    /// No `@domain` at all.
    NoDomain,
    /// A Dot-string local part with an empty atom or a character outside atext.
    BadLocalPart(String),
    EmptyDomain,
    /// Longer than RFC 5321 4.5.3.1.2 allows.
    DomainTooLong,
    BadDomain(String),
    BadAddressLiteral(String),
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Unclosed => f.write_str("missing closing '>'"),
            AddressError::PathTooLong => f.write_str("path too long"),
            AddressError::Empty => f.write_str("empty address"),
            AddressError::TextAfter => f.write_str("unexpected text after the address"),
            AddressError::BadSourceRoute => f.write_str("bad source route"),
            AddressError::LocalPartTooLong => f.write_str("local part longer than 64 octets"),
            AddressError::UnterminatedQuote => f.write_str("unterminated quoted string"),
            AddressError::BadQuotedPair => f.write_str("bad quoted pair"),
            AddressError::BadQuotedCharacter => f.write_str("bad character in quoted string"),
            AddressError::NoAtAfterQuote => f.write_str("missing '@' after the quoted local part"),
            AddressError::NoDomain => f.write_str("missing '@domain'"),
            AddressError::BadLocalPart(local) => write!(f, "bad local part {local:?}"),
            AddressError::EmptyDomain => f.write_str("empty domain"),
            AddressError::DomainTooLong => f.write_str("domain longer than 255 octets"),
            AddressError::BadDomain(domain) => write!(f, "bad domain {domain:?}"),
            AddressError::BadAddressLiteral(literal) => {
                write!(f, "bad address literal {literal:?}")
            }
        }
    }
}

impl std::error::Error for AddressError {}

/// What stands in a MAIL FROM or RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`: the null reverse-path of bounces (RFC 5321 4.5.5).
    Null,
    /// `<postmaster>` without a domain, allowed in RCPT TO (RFC 5321 4.1.1.3).
    Postmaster,
    Mailbox(Mailbox),
}

/// Parses a path at the start of `input` and returns it with the rest of the
/// line (the ESMTP parameters). A source route `<@a,@b:user@c>` is accepted
/// and dropped, as RFC 5321 4.1.1.3 and appendix C require.
pub fn parse_path(input: &str) -> Result<(Path, &str), AddressError> {
    let (inner, rest) = if let Some(after) = input.strip_prefix('<') {
        let end = find_closing_bracket(after).ok_or(AddressError::Unclosed)?;
        if end + 2 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        (&after[..end], &after[end + 1..])
    } else {
        // Lenient like Postfix (strict_rfc821_envelopes = no): a bare address.
        let end = input.find(' ').unwrap_or(input.len());
        if end == 0 {
            return Err(AddressError::Empty);
        }
        if end + 2 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        (&input[..end], &input[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddressError::TextAfter);
    }
    if inner.is_empty() {
        return Ok((Path::Null, rest));
    }
    let mailbox_text = strip_source_route(inner)?;
    if mailbox_text.eq_ignore_ascii_case("postmaster") {
        return Ok((Path::Postmaster, rest));
    }
    Ok((Path::Mailbox(parse_mailbox(mailbox_text)?), rest))
}

/// The index of the `>` closing the path, skipping quoted strings.
fn find_closing_bracket(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// `@a,@b:user@c` -> `user@c`, after checking the route's domains.
fn strip_source_route(text: &str) -> Result<&str, AddressError> {
    if !text.starts_with('@') {
        return Ok(text);
    }
    let (route, mailbox) = text.split_once(':').ok_or(AddressError::BadSourceRoute)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::BadSourceRoute)?;
        check_domain(domain)?;
    }
    Ok(mailbox)
}

/// `Local-part "@" ( Domain / address-literal )`.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, AddressError> {
    let at = split_local_part(text)?;
    let local = &text[..at];
    let domain = &text[at + 1..];
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    if domain.starts_with('[') {
        check_address_literal(domain)?;
    } else {
        check_domain(domain)?;
    }
    Ok(Mailbox {
        local: local.to_string(),
        domain: domain.to_ascii_lowercase(),
    })
}

/// Checks the local part (Dot-string or Quoted-string) and returns the index
/// of the `@` after it.
fn split_local_part(text: &str) -> Result<usize, AddressError> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match bytes.get(i) {
                None => return Err(AddressError::UnterminatedQuote),
                Some(b'"') => break,
                // quoted-pairSMTP = %d92 %d32-126
                Some(b'\\') => match bytes.get(i + 1) {
                    Some(32..=126) => i += 2,
                    _ => return Err(AddressError::BadQuotedPair),
                },
                // qtextSMTP = %d32-33 / %d35-91 / %d93-126
                Some(32..=126) => i += 1,
                Some(_) => return Err(AddressError::BadQuotedCharacter),
            }
        }
        return match bytes.get(i + 1) {
            Some(b'@') => Ok(i + 1),
            _ => Err(AddressError::NoAtAfterQuote),
        };
    }
    let at = text.rfind('@').ok_or(AddressError::NoDomain)?;
    let local = &text[..at];
    let atoms_ok = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    if atoms_ok {
        Ok(at)
    } else {
        Err(AddressError::BadLocalPart(local.to_string()))
    }
}

/// RFC 5322 3.2.3 atext.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// `sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`.
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    let ok = domain.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(AddressError::BadDomain(domain.to_string()))
    }
}

/// The IP address of an address literal, `[192.0.2.1]` or
/// `[IPv6:2001:db8::1]` (RFC 5321 4.1.3); `None` for a domain name or a
/// General-address-literal (`[tag:text]`), which names no address.
pub fn literal_ip(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// `[1.2.3.4]`, `[IPv6:...]` or a General-address-literal `[tag:text]`.
fn check_address_literal(literal: &str) -> Result<(), AddressError> {
    let bad = || AddressError::BadAddressLiteral(literal.to_string());
    let inner = literal
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(bad)?;
    if inner.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let (tag, content) = inner.split_once(':').ok_or_else(bad)?;
    if tag.eq_ignore_ascii_case("IPv6") {
        return content.parse::<Ipv6Addr>().map(|_| ()).map_err(|_| bad());
    }
    // RFC 5321 4.1.3: Standardized-tag ":" 1*dcontent
    let tag_ok = check_domain(tag).is_ok();
    let content_ok =
        !content.is_empty() && content.bytes().all(|b| matches!(b, 33..=90 | 94..=126));
    if tag_ok && content_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(address: &str) -> Option<String> {
        parse_mailbox(address).unwrap().mailbox_name()
    }

    #[test]
    fn mailbox_names() {
        assert_eq!(name("Bob@x.org").as_deref(), Some("bob"));
        assert_eq!(name("\"Bob\"@x.org").as_deref(), Some("bob"));
        assert_eq!(name("a.b+c@x.org").as_deref(), Some("a.b+c"));
        for bad in [
            "\"..\"@x.org",
            "\".\"@x.org",
            "\"../etc\"@x.org",
            "\"a/b\"@x.org",
            "\"a b\"@x.org",
            "\"\"@x.org",
            "\".hidden\"@x.org",
            "a/b@x.org",
        ] {
            assert_eq!(name(bad), None, "{bad}");
        }
    }

    fn mailbox(text: &str) -> Mailbox {
        match parse_path(text) {
            Ok((Path::Mailbox(m), "")) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn ordinary_paths() {
        let m = mailbox("<Alice.B+tag@Example.ORG>");
        assert_eq!(m.local, "Alice.B+tag");
        assert_eq!(m.domain, "example.org");
        assert_eq!(m.to_string(), "Alice.B+tag@example.org");
        assert_eq!(parse_path("<>"), Ok((Path::Null, "")));
        assert_eq!(parse_path("<> SIZE=10"), Ok((Path::Null, " SIZE=10")));
        assert_eq!(parse_path("<Postmaster>"), Ok((Path::Postmaster, "")));
        assert_eq!(mailbox("bare@example.org").local, "bare");
    }

    #[test]
    fn quoted_local_parts_and_literals() {
        let m = mailbox("<\"john \\\"j\\\" doe\"@example.org>");
        assert_eq!(m.local, "\"john \\\"j\\\" doe\"");
        assert_eq!(m.local_unquoted(), "john \"j\" doe");
        assert_eq!(mailbox("<\"a>b\"@x.org>").local_unquoted(), "a>b");
        assert_eq!(mailbox("<u@[192.0.2.1]>").domain, "[192.0.2.1]");
        assert_eq!(
            mailbox("<u@[IPv6:2001:db8::1]>").domain,
            "[ipv6:2001:db8::1]"
        );
        assert_eq!(mailbox("<u@[x-tag:abc]>").domain, "[x-tag:abc]");
    }

    #[test]
    fn source_routes_are_dropped() {
        assert_eq!(mailbox("<@a.org,@b.org:user@c.org>").domain, "c.org");
        assert!(parse_path("<@a.org,b.org:user@c.org>").is_err());
    }

    #[test]
    fn bad_paths() {
        for bad in [
            "<user>",
            "<@example.org>",
            "<user@>",
            "<user@exa mple.org>",
            "<user@-bad.org>",
            "<user@bad-.org>",
            "<user@a..org>",
            "<us..er@example.org>",
            "<.user@example.org>",
            "<user.@example.org>",
            "<us(er@example.org>",
            "<\"unterminated@example.org>",
            "<\"a\"b@example.org>",
            "<user@example.org",
            "<user@example.org>junk",
            "<u@[300.1.1.1]>",
            "<u@[IPv6:zz]>",
            "<u@[]>",
            "<\u{e9}@example.org>",
            "<\"a\u{1}\"@example.org>",
        ] {
            assert!(parse_path(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn length_limits() {
        let local = "a".repeat(65);
        assert!(parse_path(&format!("<{local}@x.org>")).is_err());
        let local = "a".repeat(64);
        assert!(parse_path(&format!("<{local}@x.org>")).is_ok());
        let label = "b".repeat(64);
        assert!(parse_path(&format!("<u@{label}.org>")).is_err());
        let long = format!("<u@{}x.org>", "a.".repeat(130));
        assert!(parse_path(&long).is_err());
    }
}
