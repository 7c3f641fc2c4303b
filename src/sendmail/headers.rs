//! The header fields of a submitted message, mended as a submission
//! agent may (RFC 6409 8): addresses without a domain qualified, local
//! domains masqueraded in From:, a display name quoted; and the -t
//! recipients read from To:, Cc: and Bcc:.

use crate::config::Config;
use crate::message::header::{self, Kind};

/// A command-line value for a header: control characters (a line end that
/// would start a header of its own) become spaces.
pub(super) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A whole header field (`To: root, "Cron" <admin>\r\n`) with every
/// address in it that has no domain given `@domain`: bare names, names in
/// angle brackets, names before a comment (`root (Cron Daemon)`). Quoted
/// strings, comments and group names are left as they are, and so is all
/// the rest of the text, white space and line folds included.
pub(super) fn qualify_header(field: &str, domain: &str) -> String {
    let Some((name, value)) = field.split_once(':') else {
        return field.to_string();
    };
    let mut out = format!("{name}:");
    let flush_word = |word: &mut String, out: &mut String, is_address: bool| {
        if is_address && is_local_name(word) {
            word.push('@');
            word.push_str(domain);
        }
        out.push_str(word);
        word.clear();
    };
    let tokens = header::tokens(value);
    for (i, element) in header::elements(&tokens).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // A lone word is a whole address (RFC 5322 3.4 `addr-spec`, given
        // without its domain): the element has one word and no `<`
        // anywhere (a `<` even in a quoted name or comment makes it a
        // name-addr, whose address is what stands in the brackets).
        let lone = !element.iter().any(|t| t.written.contains('<')) && words(element) == 1;
        // The word being read: what stands in angle brackets, or what
        // stands between white space, commas and comments outside them (a
        // quoted local part and its `@domain` are one word).
        let mut word = String::new();
        let mut in_angle = false;
        for token in element {
            match token.kind {
                Kind::Special('<') => {
                    out.push_str(&word);
                    word.clear();
                    in_angle = true;
                    out.push('<');
                }
                Kind::Special('>') if in_angle => {
                    flush_word(&mut word, &mut out, true);
                    in_angle = false;
                    out.push('>');
                }
                Kind::Comment { .. } => {
                    flush_word(&mut word, &mut out, lone);
                    out.push_str(token.written);
                }
                Kind::Space if !in_angle => {
                    flush_word(&mut word, &mut out, lone);
                    out.push_str(token.written);
                }
                _ => word.push_str(token.written),
            }
        }
        flush_word(&mut word, &mut out, lone && !in_angle);
    }
    out
}

/// How many words an address-list element without angle brackets has
/// outside quotes and comments; a group's `name:` (RFC 5322 3.4 `group`)
/// counts as more than one, so that its name is never taken for an
/// address.
fn words(element: &[header::Token]) -> usize {
    let (mut words, mut in_word) = (0, false);
    for token in element {
        match token.kind {
            Kind::Space | Kind::Comment { .. } | Kind::Special(',') => in_word = false,
            Kind::Special(':' | ';') => words += 2,
            // A stray `>` neither starts a word nor ends one.
            Kind::Special('>' | '<') => {}
            Kind::Atom | Kind::Quoted | Kind::Special(_) => {
                if !in_word {
                    words += 1;
                    in_word = true;
                }
            }
        }
    }
    words
}

/// The From: header with local domains masqueraded.
pub(super) fn masquerade_text(text: &str, config: &Config) -> String {
    let Some(domain) = &config.masquerade_domain else {
        return text.to_string();
    };
    let mut out = text.to_string();
    let mut locals: Vec<&String> = config.local_domains.iter().collect();
    locals.push(&config.qualify_domain);
    for local in locals {
        for end in ['>', ' ', ',', '\r'] {
            let from = format!("@{local}{end}");
            let to = format!("@{domain}{end}");
            out = replace_ignore_case(&out, &from, &to);
        }
    }
    out
}

fn replace_ignore_case(text: &str, from: &str, to: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = from.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(pos) = lower[rest..].find(&needle) {
        out.push_str(&text[rest..rest + pos]);
        out.push_str(to);
        rest += pos + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// RFC 5322 3.2.5: a display name with specials is quoted. A line end or
/// any other control character (a `-F` value is anyone's) becomes a space,
/// so that no name can add a header line.
pub(super) fn quote_phrase(name: &str) -> String {
    let name = one_line(name);
    let name = name.as_str();
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c))
    {
        name.to_string()
    } else {
        header::quoted_string(name)
    }
}

/// Addresses in To:, Cc: and Bcc:, read with mail-parser. A panic there
/// (crafted headers have made it panic before) costs this submission only.
pub(super) fn header_recipients(raw_headers: &[u8]) -> Vec<String> {
    let parsed = std::panic::catch_unwind(|| {
        let mut found = Vec::new();
        if let Some(message) = mail_parser::MessageParser::new().parse_headers(raw_headers) {
            for list in [message.to(), message.cc(), message.bcc()]
                .into_iter()
                .flatten()
            {
                for address in list.iter() {
                    match (address.address(), address.name()) {
                        (Some(email), _) => found.push(email.to_string()),
                        // `To: root`, `To: root, admin` (cron, mdadm): a
                        // bare local name, qualified by the caller. A
                        // phrase of several words is no address.
                        (None, Some(name)) if is_local_name(name) => found.push(name.to_string()),
                        _ => {}
                    }
                }
            }
        }
        found
    });
    parsed.unwrap_or_default()
}

/// A bare local part such as `root` or `smart-alerts` (RFC 5322 dot-atom).
fn is_local_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_domain_in_headers_get_one() {
        for (field, expected) in [
            ("To: root\r\n", "To: root@box.lan\r\n"),
            ("To: root, admin\r\n", "To: root@box.lan, admin@box.lan\r\n"),
            (
                "From: root (Cron Daemon)\r\n",
                "From: root@box.lan (Cron Daemon)\r\n",
            ),
            (
                "From: mdadm monitoring <root>\r\n",
                "From: mdadm monitoring <root@box.lan>\r\n",
            ),
            ("To: \"Cron\" <root>\r\n", "To: \"Cron\" <root@box.lan>\r\n"),
            ("To: a@b.example\r\n", "To: a@b.example\r\n"),
            ("To: <a@b.example>\r\n", "To: <a@b.example>\r\n"),
            ("To: Joe Bloggs\r\n", "To: Joe Bloggs\r\n"),
            (
                "To: undisclosed-recipients:;\r\n",
                "To: undisclosed-recipients:;\r\n",
            ),
            (
                "Cc: \"Doe, John\" <jd>, root\r\n",
                "Cc: \"Doe, John\" <jd@box.lan>, root@box.lan\r\n",
            ),
            (
                "To: root,\r\n\tadmin\r\n",
                "To: root@box.lan,\r\n\tadmin@box.lan\r\n",
            ),
            (
                "From: root (a (nested) comment)\r\n",
                "From: root@box.lan (a (nested) comment)\r\n",
            ),
            (
                "Reply-To: \"x\\\" y\" <ops>\r\n",
                "Reply-To: \"x\\\" y\" <ops@box.lan>\r\n",
            ),
        ] {
            assert_eq!(qualify_header(field, "box.lan"), expected, "{field:?}");
        }
    }

    #[test]
    fn bare_local_names_in_to_and_cc_are_recipients() {
        let found = header_recipients(
            b"To: root, admin\r\nCc: \"Cron\" <ops>, Joe Bloggs, a@b.example\r\n\
              Bcc: undisclosed-recipients:;\r\n",
        );
        assert_eq!(found, ["root", "admin", "ops", "a@b.example"]);
    }

    #[test]
    fn phrases_are_quoted_when_needed() {
        assert_eq!(quote_phrase("Cron Daemon"), "Cron Daemon");
        assert_eq!(quote_phrase("Doe, John"), "\"Doe, John\"");
        // No name adds a header line.
        assert_eq!(
            quote_phrase("Eve\nReply-To: attacker@evil.test"),
            "\"Eve Reply-To: attacker@evil.test\""
        );
        assert_eq!(quote_phrase("a\r\n\tb"), "a   b");
    }
}
