//! An HTML part as plain text, for a phone: tags dropped, the content of
//! `head`, `style`, `script`, `title` and `template` left out, white space
//! collapsed as a browser does, block ends and `<br>` as line breaks, and
//! character references decoded (numeric ones all, named ones of Latin-1
//! and the usual typography). mail-parser has its own, whose table of all
//! 2231 HTML5 names costs the binary 52 KiB; NAS and router alerts use a
//! handful of them.

/// The Latin-1 names (HTML 4 `HTMLlat1`), for U+00A0 to U+00FF in order.
const LATIN1_NAMES: &str = "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo \
    not shy reg macr deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 \
    frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc \
    Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave \
    Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil \
    egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml \
    divide oslash ugrave uacute ucirc uuml yacute thorn yuml";

/// Elements whose start or end begins a new line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "tr",
    "li",
    "ul",
    "ol",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
];

/// Elements whose content is not text to show.
const HIDDEN: &[&str] = &["head", "style", "script", "title", "template"];

pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    // Collapsed white space is written when the next text comes.
    let mut space = false;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(comment) = rest.strip_prefix("<!--") {
                rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
                continue;
            }
            let end = rest.find('>').map_or(rest.len(), |end| end + 1);
            let tag = &rest[1..end.saturating_sub(1).max(1)];
            rest = &rest[end..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if !closing && HIDDEN.contains(&name.as_str()) {
                let close = format!("</{name}");
                rest = rest
                    .to_ascii_lowercase()
                    .find(&close)
                    .map_or("", |at| &rest[at..]);
            } else if name == "br" {
                out.push('\n');
                space = false;
            } else if BLOCKS.contains(&name.as_str()) {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                space = false;
            }
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        space = false;
        if c == '&' {
            if let Some((decoded, after)) = reference(rest) {
                out.push(decoded);
                rest = after;
                continue;
            }
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// A character reference after its `&` (`amp;`, `#233;`, `#xE9;`): the
/// character and what follows the `;`.
fn reference(text: &str) -> Option<(char, &str)> {
    let end = text.find(';').filter(|&end| end <= 32)?;
    let name = &text[..end];
    let decoded = if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        char::from_u32(code).unwrap_or('\u{fffd}')
    } else {
        named(name)?
    };
    Some((decoded, &text[end + 1..]))
}

fn named(name: &str) -> Option<char> {
    let typographic = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "bull" => '•',
        "euro" => '€',
        "trade" => '™',
        _ => {
            let at = LATIN1_NAMES.split(' ').position(|n| n == name)?;
            return char::from_u32(0xA0 + at as u32);
        }
    };
    Some(typographic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_dropped_blocks_and_breaks_kept() {
        assert_eq!(
            html_to_text(
                "<html><head><title>t</title><style>p{color:red}</style></head>\
                 <body><!-- a <p> comment --><p>Array <b>md0</b>\n   degraded</p>\
                 <p>Temp&eacute;rature&nbsp;&lt;ok&gt;<br>caf&#233; &#x263A; &euro;</p>\
                 <script>alert(1)</script><div>end</div></body></html>"
            ),
            "Array md0 degraded\nTempérature\u{a0}<ok>\ncafé ☺ €\nend"
        );
    }

    #[test]
    fn references_that_are_none_stay_as_written() {
        assert_eq!(
            html_to_text("a & b &bogus; &#xZZ; AT&T"),
            "a & b &bogus; &#xZZ; AT&T"
        );
        assert_eq!(named("nbsp"), Some('\u{a0}'));
        assert_eq!(named("yuml"), Some('ÿ'));
        assert_eq!(named("Eacute"), Some('É'));
        assert_eq!(html_to_text("<p>unclosed <b"), "unclosed");
    }
}
