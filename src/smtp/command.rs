//! One SMTP command line (RFC 5321 4.1.1) -> [`Command`], or the reply that
//! tells the client what is wrong with it.

use super::address::{parse_path, Path};
use super::reply::{self, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: Path,
        /// RFC 1870 SIZE= declared by the client.
        size: Option<u64>,
        /// RFC 6152 BODY=.
        body: Option<Body>,
    },
    Rcpt {
        to: Path,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// RFC 4954: a mechanism and maybe an initial response (base64).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// Parses one command line, without its line end.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(reply::syntax("Error: 8-bit characters in command"));
    };
    if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(reply::syntax("Error: control characters in command"));
    }
    let (verb, arg) = match line.find(' ') {
        Some(space) => (&line[..space], line[space + 1..].trim()),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "EHLO" | "HELO" => {
            if arg.is_empty() {
                return Err(reply::syntax(&format!("Syntax: {verb} hostname")));
            }
            let name = arg.to_string();
            Ok(if verb == "EHLO" {
                Command::Ehlo(name)
            } else {
                Command::Helo(name)
            })
        }
        "MAIL" => parse_mail(arg),
        "RCPT" => parse_rcpt(arg),
        "DATA" => no_argument(arg, "DATA", Command::Data),
        "RSET" => no_argument(arg, "RSET", Command::Rset),
        "QUIT" => no_argument(arg, "QUIT", Command::Quit),
        // RFC 5321 4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "AUTH" => {
            let mut words = arg.split_ascii_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(mechanism), initial, None) => Ok(Command::Auth {
                    mechanism: mechanism.to_ascii_uppercase(),
                    initial: initial.map(str::to_string),
                }),
                _ => Err(reply::syntax("Syntax: AUTH mechanism [initial-response]")),
            }
        }
        // RFC 3207 4: STARTTLS takes no parameters.
        "STARTTLS" => no_argument(arg, "STARTTLS", Command::StartTls),
        "VRFY" => {
            if arg.is_empty() {
                Err(reply::syntax("Syntax: VRFY address"))
            } else {
                Ok(Command::Vrfy)
            }
        }
        // Known verbs this server does not implement (RFC 5321 4.2.4).
        "EXPN" | "TURN" | "ETRN" | "BDAT" => Err(reply::not_implemented(&verb)),
        _ => Err(reply::unknown_command()),
    }
}

fn no_argument(arg: &str, verb: &str, command: Command) -> Result<Command, Reply> {
    if arg.is_empty() {
        Ok(command)
    } else {
        Err(reply::syntax(&format!("Syntax: {verb}")))
    }
}

/// `arg` without the case-insensitive `keyword`, and any spaces after it.
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        // Lenient like Postfix: `MAIL FROM: <a@b>` with a space is common.
        Some(arg[keyword.len()..].trim_start())
    } else {
        None
    }
}

fn parse_mail(arg: &str) -> Result<Command, Reply> {
    let Some(rest) = strip_keyword(arg, "FROM:") else {
        return Err(reply::syntax("Syntax: MAIL FROM:<address>"));
    };
    let (from, params) = parse_path(rest).map_err(|e| reply::bad_sender(&e.to_string()))?;
    if from == Path::Postmaster {
        // A bare `postmaster` is only allowed as a recipient (RFC 5321 4.1.1.3).
        return Err(reply::bad_sender("missing '@domain'"));
    }
    let mut size = None;
    let mut body = None;
    for param in params.split_ascii_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            // RFC 1870 3: size-value ::= 1*20DIGIT
            "SIZE" => {
                let valid = !value.is_empty() && value.len() <= 20;
                size = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|_| valid)
                        .ok_or_else(|| reply::syntax("Error: bad SIZE= value"))?,
                );
            }
            // RFC 4954 5: the authenticated sender of a relayed message; accepted
            // and not used.
            "AUTH" if !value.is_empty() => {}
            "BODY" => {
                body = Some(match value.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    _ => return Err(reply::syntax("Error: BODY= must be 7BIT or 8BITMIME")),
                })
            }
            _ => return Err(reply::unknown_parameter(param)),
        }
    }
    Ok(Command::Mail { from, size, body })
}

fn parse_rcpt(arg: &str) -> Result<Command, Reply> {
    let Some(rest) = strip_keyword(arg, "TO:") else {
        return Err(reply::syntax("Syntax: RCPT TO:<address>"));
    };
    let (to, params) = parse_path(rest).map_err(|e| reply::bad_recipient(&e.to_string()))?;
    if to == Path::Null {
        return Err(reply::bad_recipient("null recipient"));
    }
    if let Some(param) = params.split_ascii_whitespace().next() {
        return Err(reply::unknown_parameter(param));
    }
    Ok(Command::Rcpt { to })
}

#[cfg(test)]
mod tests {
    use super::super::address::Mailbox;
    use super::*;

    fn code(line: &str) -> (u16, &'static str) {
        let r = parse_command(line.as_bytes()).unwrap_err();
        (r.code, r.enhanced.unwrap())
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(parse_command(b"HELO x"), Ok(Command::Helo("x".into())));
        assert_eq!(parse_command(b"data"), Ok(Command::Data));
        assert_eq!(parse_command(b"NOOP hello"), Ok(Command::Noop));
        assert_eq!(parse_command(b"HELP MAIL"), Ok(Command::Help));
        assert_eq!(parse_command(b"VRFY root"), Ok(Command::Vrfy));
        assert_eq!(parse_command(b"QUIT"), Ok(Command::Quit));
        assert_eq!(parse_command(b"rset"), Ok(Command::Rset));
    }

    #[test]
    fn mail_with_parameters() {
        let mailbox = Mailbox {
            local: "a".into(),
            domain: "b.org".into(),
        };
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: Path::Mailbox(mailbox.clone()),
                size: Some(1000),
                body: Some(Body::EightBitMime),
            })
        );
        assert_eq!(
            parse_command(b"mail from: <a@b.org> body=7bit"),
            Ok(Command::Mail {
                from: Path::Mailbox(mailbox),
                size: None,
                body: Some(Body::SevenBit),
            })
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<>"),
            Ok(Command::Mail {
                from: Path::Null,
                size: None,
                body: None
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(code("FOO"), (500, "5.5.1"));
        assert_eq!(code("EHLO"), (501, "5.5.4"));
        assert_eq!(code("MAIL TO:<a@b.org>"), (501, "5.5.4"));
        assert_eq!(code("MAIL FROM:<a@>"), (501, "5.1.7"));
        assert_eq!(code("MAIL FROM:<postmaster>"), (501, "5.1.7"));
        assert_eq!(code("RCPT TO:<a b@c.org>"), (501, "5.1.3"));
        assert_eq!(code("RCPT TO:<>"), (501, "5.1.3"));
        assert_eq!(code("MAIL FROM:<a@b.org> SMTPUTF8"), (555, "5.5.4"));
        assert_eq!(code("MAIL FROM:<a@b.org> SIZE=x"), (501, "5.5.4"));
        assert_eq!(
            code("MAIL FROM:<a@b.org> SIZE=123456789012345678901"),
            (501, "5.5.4")
        );
        assert_eq!(code("MAIL FROM:<a@b.org> BODY=BINARYMIME"), (501, "5.5.4"));
        assert_eq!(code("RCPT TO:<a@b.org> NOTIFY=NEVER"), (555, "5.5.4"));
        assert_eq!(code("DATA now"), (501, "5.5.4"));
        assert_eq!(code("VRFY"), (501, "5.5.4"));
        assert_eq!(code("EXPN list"), (502, "5.5.1"));
        assert_eq!(code("STARTTLS now"), (501, "5.5.4"));
        assert_eq!(code("AUTH"), (501, "5.5.4"));
        assert_eq!(code("AUTH PLAIN a b"), (501, "5.5.4"));
        assert_eq!(
            parse_command(b"auth plain AGJveABz"),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGJveABz".into())
            })
        );
        assert!(parse_command(b"MAIL FROM:<a@b.org> AUTH=<>").is_ok());
        assert_eq!(parse_command(b"starttls"), Ok(Command::StartTls));
        assert_eq!(code("NOOP \u{1}"), (501, "5.5.4"));
        assert_eq!(
            parse_command(b"MAIL FROM:<\xff@b.org>").unwrap_err().code,
            501
        );
    }
}
