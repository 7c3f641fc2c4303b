//! RFC 2047 encoded words: header text that is not ASCII, as UTF-8 in
//! base64 (`=?UTF-8?B?...?=`), the one form every reader decodes.

/// Octets of text in one word: 45 octets are 60 base64 characters, 72
/// with `=?UTF-8?B?` and `?=`, within the 75 that RFC 2047 2 allows a word.
const OCTETS_PER_WORD: usize = 45;

/// `text` as it may stand in an unstructured header field (RFC 5322
/// 3.2.5): printable ASCII and spaces as they are; anything else, control
/// characters too (so that none can end or break the line the value stands
/// in), as `B` encoded words of UTF-8, each cut between characters so that
/// each decodes alone (RFC 2047 5 (3): a word holds whole characters), and
/// joined with `separator`: `"\n "` folds each onto a line of its own
/// (RFC 5322 2.2.3), `" "` keeps them on one line (RFC 2047 6.2: the white
/// space between two encoded words is not shown).
pub fn encode(text: &str, separator: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(OCTETS_PER_WORD);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            crate::smtp::base64::encode(&rest.as_bytes()[..end])
        ));
        rest = &rest[end..];
    }
    words.join(separator)
}

/// Whether `word` is an encoded word (RFC 2047 2: `=?charset?encoding?
/// text?=`), which may stand as an atom in a phrase but never inside a
/// quoted-string (RFC 2047 5 (3)).
pub fn is_encoded_word(word: &str) -> bool {
    word.starts_with("=?") && word.ends_with("?=") && word.len() > 4
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of words written by [`encode`], decoded.
    fn decoded(encoded: &str, separator: &str) -> String {
        let mut octets = Vec::new();
        for word in encoded.split(separator) {
            assert!(word.len() <= 75, "{word}");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let part = crate::smtp::base64::decode(inner).unwrap();
            // Each word decodes to whole characters of its own.
            assert!(std::str::from_utf8(&part).is_ok(), "{word}");
            octets.extend(part);
        }
        String::from_utf8(octets).unwrap()
    }

    #[test]
    fn printable_ascii_stays_as_it_is() {
        assert_eq!(
            encode("Disk /dev/sda: 55 °C", " "),
            "=?UTF-8?B?RGlzayAvZGV2L3NkYTogNTUgwrBD?="
        );
        assert_eq!(
            encode("plain text, ~all~ of it!", "\n "),
            "plain text, ~all~ of it!"
        );
        assert_eq!(encode("", " "), "");
        // A control character is no printable text: encoded, not passed on.
        assert_eq!(encode("a\tb", " "), "=?UTF-8?B?YQli?=");
    }

    #[test]
    fn long_text_is_cut_between_characters() {
        for text in [
            "Température du disque élevée ".repeat(5),
            "ü".repeat(30),
            "€".repeat(40),
            "x".repeat(44) + "€€",
        ] {
            for separator in [" ", "\n "] {
                assert_eq!(decoded(&encode(&text, separator), separator), text);
            }
        }
        assert_eq!(encode(&"ü".repeat(30), " ").split(' ').count(), 2);
    }
}
