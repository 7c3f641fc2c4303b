//! The command lines of `sendmail` and `mail`, as cron, smartd, mdadm,
//! ZFS zed, apcupsd and vendor scripts write them.

use std::path::PathBuf;

use super::headers::one_line;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Read a message and queue it (`-bm`, the default).
    Deliver,
    /// List the queue (`-bp`, `mailq`).
    ListQueue,
    /// Run the queue now (`-q`).
    RunQueue,
    /// Speak SMTP on standard input and output (`-bs`).
    Smtp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    pub recipients: Vec<String>,
    /// `-t`: recipients from To:, Cc: and Bcc: (Bcc: is then removed).
    pub from_headers: bool,
    /// `-i`, `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f ADDR`, `-r ADDR`: the envelope sender.
    pub sender: Option<String>,
    /// `-F NAME`: the full name for a From: header we add.
    pub full_name: Option<String>,
    /// `-C FILE`: another config file.
    pub config: Option<PathBuf>,
}

/// A command line `sendmail` or `mail` cannot run: printed after the
/// program's name, and the exit is EX_USAGE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// A flag that takes a value came last, without one.
    NeedsValue(char),
    /// `-b` with a mode other than m, p, s, i or I (the whole word after `-b`).
    UnsupportedMode(String),
    /// The whole word, as given.
    UnknownOption(String),
    /// `mail -a`, which two `mail`s read in two ways.
    MailAttachment,
    /// `mail` with neither To:, Cc: nor Bcc: recipients.
    NoRecipients,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::NeedsValue(flag) => write!(f, "option -{flag} needs a value"),
            UsageError::UnsupportedMode(mode) => write!(f, "unsupported mode -b{mode}"),
            UsageError::UnknownOption(arg) => write!(f, "unknown option {arg}"),
            UsageError::MailAttachment => f.write_str(
                "-a is not supported: bsd-mailx reads it as a header, GNU mailutils as an \
                 attachment; put headers in the message and send it with sendmail -t",
            ),
            UsageError::NoRecipients => f.write_str("no recipients given"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses sendmail's command line (without the program name).
pub fn parse_args(args: &[String]) -> Result<Options, UsageError> {
    let mut options = Options {
        mode: Mode::Deliver,
        recipients: Vec::new(),
        from_headers: false,
        ignore_dots: false,
        sender: None,
        full_name: None,
        config: None,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            options.recipients.extend(args[i..].iter().cloned());
            break;
        }
        let Some((mut flag, mut attached)) = split_flag(arg) else {
            options.recipients.push(arg.clone());
            continue;
        };
        // Flags without a value may be grouped, as getopt(3) allows and
        // busybox crond calls it (`-ti`); a flag with a value takes the rest
        // of the word (`-FCronDaemon`, `-oem`) or, without one, the next.
        loop {
            let value = |i: &mut usize| -> Result<String, UsageError> {
                if !attached.is_empty() {
                    return Ok(attached.to_string());
                }
                let next = args.get(*i).ok_or(UsageError::NeedsValue(flag))?;
                *i += 1;
                Ok(next.clone())
            };
            match flag {
                // -t, -i, and verbose, me too, no aliasing, initial
                // submission, errors mode: flags without a value.
                't' | 'i' | 'v' | 'm' | 'n' | 'U' | 'e' | 'G' => {
                    match flag {
                        't' => options.from_headers = true,
                        'i' => options.ignore_dots = true,
                        _ => {}
                    }
                    let mut rest = attached.chars();
                    match rest.next() {
                        Some(next) => {
                            flag = next;
                            attached = rest.as_str();
                            continue;
                        }
                        None => break,
                    }
                }
                'f' | 'r' => options.sender = Some(value(&mut i)?),
                'F' => options.full_name = Some(value(&mut i)?),
                'C' => options.config = Some(PathBuf::from(value(&mut i)?)),
                'b' => {
                    options.mode = match attached {
                        "m" => Mode::Deliver,
                        "p" => Mode::ListQueue,
                        "s" => Mode::Smtp,
                        // newaliases: tinymta reads the aliases file itself.
                        "i" | "I" => Mode::Deliver,
                        _ => return Err(UsageError::UnsupportedMode(attached.to_string())),
                    }
                }
                // -q, -q15m, -qR...: run the queue.
                'q' => options.mode = Mode::RunQueue,
                'o' if attached == "i" => options.ignore_dots = true,
                // Delivery, error and other -o options (-odi, -oem): no
                // meaning here.
                'o' => {}
                // Flags of the same family that take a value: accepted, ignored.
                'B' | 'N' | 'R' | 'V' | 'L' | 'X' | 'h' | 'O' => {
                    value(&mut i)?;
                }
                _ => return Err(UsageError::UnknownOption(arg.clone())),
            }
            break;
        }
    }
    Ok(options)
}

/// `-fme` -> ('f', "me"); None for a word that is no option (`root`, `-`).
/// The flag is the character after the dash, whatever its length in bytes:
/// `-é` is an unknown option, not a cut through a character.
fn split_flag(arg: &str) -> Option<(char, &str)> {
    let mut chars = arg.strip_prefix('-')?.chars();
    let flag = chars.next()?;
    Some((flag, chars.as_str()))
}

/// The `mail` entry point (`mail -s SUBJECT ADDRESS < body`, as smartd's
/// warning script, ZFS zed, apcupsd and vendor scripts call it): the
/// sendmail options it stands for, and the header block it writes before
/// the body, which is standard input as it is (a lone dot ends nothing).
///
/// `-s SUBJECT`, `-r FROM`, `-c CC`, `-b BCC` and recipients, as bsd-mailx,
/// s-nail and GNU mailutils take them; `-C FILE` as sendmail's. `-a` is
/// refused: bsd-mailx reads it as a header and mailutils as an attachment,
/// so a script that uses it means one or the other.
pub fn parse_mail_args(args: &[String]) -> Result<(Options, String), UsageError> {
    let mut options = Options {
        mode: Mode::Deliver,
        recipients: Vec::new(),
        from_headers: false,
        ignore_dots: true,
        sender: None,
        full_name: None,
        config: None,
    };
    let (mut to, mut cc, mut subject) = (Vec::new(), Vec::new(), None);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            to.extend(args[i..].iter().cloned());
            break;
        }
        let Some((flag, attached)) = split_flag(arg) else {
            to.push(arg.clone());
            continue;
        };
        let mut value = || -> Result<String, UsageError> {
            if !attached.is_empty() {
                return Ok(attached.to_string());
            }
            let next = args.get(i).ok_or(UsageError::NeedsValue(flag))?;
            i += 1;
            Ok(next.clone())
        };
        match flag {
            's' => subject = Some(value()?),
            'r' => options.sender = Some(value()?),
            'c' => cc.push(value()?),
            'b' => options.recipients.push(value()?),
            'C' => options.config = Some(PathBuf::from(value()?)),
            'a' => return Err(UsageError::MailAttachment),
            // Do not read mail.rc; verbose; no interactive prompts.
            'n' | 'v' | 'N' | 'E' => {}
            _ => return Err(UsageError::UnknownOption(arg.clone())),
        }
    }
    if to.is_empty() && cc.is_empty() && options.recipients.is_empty() {
        return Err(UsageError::NoRecipients);
    }
    let mut header = String::new();
    let list = |addresses: &[String]| {
        addresses
            .iter()
            .map(|a| one_line(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !to.is_empty() {
        header.push_str(&format!("To: {}\n", list(&to)));
    }
    if !cc.is_empty() {
        header.push_str(&format!("Cc: {}\n", list(&cc)));
    }
    if let Some(subject) = subject {
        header.push_str(&format!(
            "Subject: {}\n",
            encode_header_text(&one_line(&subject))
        ));
    }
    // The body is what the script printed: UTF-8 text, 8 bits as they are.
    header.push_str(
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
         Content-Transfer-Encoding: 8bit\n\n",
    );
    options.recipients.splice(0..0, to.into_iter().chain(cc));
    Ok((options, header))
}

/// Header text as RFC 2047 encoded words where it is not ASCII, each
/// folded onto a line of its own (RFC 5322 2.2.3): the `mail` header block
/// has `\n` line ends, made CRLF as it is queued.
fn encode_header_text(text: &str) -> String {
    crate::message::encoded_word::encode(text, "\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, String> {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_args(&words).map_err(|e| e.to_string())
    }

    #[test]
    fn alert_tool_command_lines() {
        let o = args("-oi -t").unwrap();
        assert!(o.ignore_dots && o.from_headers && o.recipients.is_empty());
        let o = args("-i -f cron@box -F Cron root ops@example.org").unwrap();
        assert_eq!(o.sender.as_deref(), Some("cron@box"));
        assert_eq!(o.full_name.as_deref(), Some("Cron"));
        assert_eq!(o.recipients, ["root", "ops@example.org"]);
        let o = args("-fsmartd@box -odi -oem -v -- -weird").unwrap();
        assert_eq!(o.sender.as_deref(), Some("smartd@box"));
        assert_eq!(o.recipients, ["-weird"]);
        assert_eq!(args("-bp").unwrap().mode, Mode::ListQueue);
        assert_eq!(args("-q").unwrap().mode, Mode::RunQueue);
        assert_eq!(args("-q15m").unwrap().mode, Mode::RunQueue);
        assert_eq!(args("-bs").unwrap().mode, Mode::Smtp);
        assert_eq!(
            args("-B 8BITMIME -N never root").unwrap().recipients,
            ["root"]
        );
        // Grouped flags and attached values, as the tools call it.
        let o = args("-ti").unwrap();
        assert!(o.from_headers && o.ignore_dots);
        let o = args("-FCronDaemon -i -B8BITMIME -oem root").unwrap();
        assert_eq!(o.full_name.as_deref(), Some("CronDaemon"));
        assert!(o.ignore_dots && !o.from_headers);
        assert_eq!(o.recipients, ["root"]);
        let o = args("-itv -odi -fcron@box").unwrap();
        assert!(o.ignore_dots && o.from_headers);
        assert_eq!(o.sender.as_deref(), Some("cron@box"));
        assert_eq!(args("-tz").unwrap_err(), "unknown option -tz");
        assert_eq!(args("-x root").unwrap_err(), "unknown option -x");
        assert_eq!(args("-bd").unwrap_err(), "unsupported mode -bd");
        assert_eq!(args("-f").unwrap_err(), "option -f needs a value");
    }

    #[test]
    fn no_command_line_panics() {
        // Issue 12, item 9a: `-é` cut through the é and panicked.
        assert_eq!(args("-é").unwrap_err(), "unknown option -é");
        assert_eq!(args("-é root").unwrap_err(), "unknown option -é");
        let o = args("-Fé -féé@box -bm -- -é").unwrap();
        assert_eq!(o.full_name.as_deref(), Some("é"));
        assert_eq!(o.sender.as_deref(), Some("éé@box"));
        assert_eq!(o.recipients, ["-é"]);
        assert_eq!(args("-b€").unwrap_err(), "unsupported mode -b€");
        assert_eq!(args("-t€").unwrap_err(), "unknown option -t€");
        assert_eq!(args("-€ -").unwrap_err(), "unknown option -€");
        assert_eq!(args("- root").unwrap().recipients, ["-", "root"]);
        let odd = [
            "",
            "-",
            "--",
            "---",
            "-\u{0}",
            "-\u{10ffff}x",
            "-F",
            "-C",
            "\u{85}",
        ];
        for word in odd {
            let _ = parse_args(&[word.to_string()]);
            let _ = parse_args(&[word.to_string(), word.to_string()]);
        }
    }

    #[test]
    fn a_long_subject_is_encoded_words_of_at_most_75_characters() {
        let subject = "Température du disque élevée ".repeat(5);
        let encoded = encode_header_text(&subject);
        let mut decoded = Vec::new();
        for word in encoded.split("\n ") {
            assert!(word.len() <= 75, "{word}");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            decoded.extend(crate::smtp::base64::decode(inner).unwrap());
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
        assert_eq!(encode_header_text("plain"), "plain");
    }
}
