//! SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463, RFC 2034).
//!
//! Every reply the server sends is built here, so that the whole set of codes
//! can be read in one place: `Reply::new` and `Reply::plain` are private to
//! this module.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 class.subject.detail; `None` for the greeting, the HELO/EHLO
    /// replies and 354, which RFC 2034 3 exempts.
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply with no enhanced status code.
    fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// The reply as sent: `250-first`, ..., `250 last`, each ending in CRLF.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            match self.enhanced {
                Some(enhanced) => {
                    let _ = write!(out, "{}{}{} {}\r\n", self.code, sep, enhanced, line);
                }
                None => {
                    let _ = write!(out, "{}{}{}\r\n", self.code, sep, line);
                }
            }
        }
        if self.lines.is_empty() {
            let _ = write!(out, "{}\r\n", self.code);
        }
        out
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

// The replies the server sends, by meaning. Texts follow Postfix where it has one.

pub fn greeting(hostname: &str) -> Reply {
    Reply::plain(220, vec![format!("{hostname} ESMTP")])
}
/// RFC 5321 4.1.1.1: the EHLO reply, our name and then the extensions.
pub fn ehlo(lines: Vec<String>) -> Reply {
    Reply::plain(250, lines)
}
pub fn helo(hostname: &str) -> Reply {
    Reply::plain(250, vec![hostname.to_string()])
}
pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "Ok")
}
pub fn ok_sender() -> Reply {
    Reply::new(250, "2.1.0", "Ok")
}
pub fn ok_recipient() -> Reply {
    Reply::new(250, "2.1.5", "Ok")
}
pub fn queued(id: &str) -> Reply {
    Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))
}
pub fn bye() -> Reply {
    Reply::new(221, "2.0.0", "Bye")
}
pub fn start_data() -> Reply {
    Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".to_string()])
}
pub fn cannot_vrfy() -> Reply {
    // RFC 5321 3.5.3: 252 when the server will not verify but will accept.
    Reply::new(
        252,
        "2.5.2",
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}
pub fn help() -> Reply {
    Reply {
        code: 214,
        enhanced: Some("2.0.0"),
        lines: vec![
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP".to_string(),
            "See RFC 5321".to_string(),
        ],
    }
}
pub fn out_of_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}
pub fn no_valid_recipients() -> Reply {
    // RFC 2920 3.1: DATA after only failed RCPTs.
    Reply::new(554, "5.5.1", "Error: no valid recipients")
}
pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.1", "Error: command not recognized")
}
pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Error: line too long")
}
pub fn syntax(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}
pub fn bad_sender(text: &str) -> Reply {
    Reply::new(501, "5.1.7", format!("Bad sender address syntax: {text}"))
}
pub fn bad_recipient(text: &str) -> Reply {
    Reply::new(
        501,
        "5.1.3",
        format!("Bad recipient address syntax: {text}"),
    )
}
pub fn unusable_address_literal() -> Reply {
    Reply::new(
        501,
        "5.1.3",
        "Error: an address literal must be an IP address",
    )
}
pub fn bad_mailbox_name() -> Reply {
    Reply::new(550, "5.1.3", "Error: invalid mailbox name")
}
pub fn unknown_parameter(param: &str) -> Reply {
    // RFC 5321 4.1.1.11
    Reply::new(555, "5.5.4", format!("Unsupported option: {param}"))
}
pub fn message_too_big() -> Reply {
    Reply::new(552, "5.3.4", "Error: message size exceeds fixed limit")
}
pub fn too_many_recipients() -> Reply {
    // RFC 5321 4.5.3.1.10
    Reply::new(452, "4.5.3", "Error: too many recipients")
}
pub fn relay_denied() -> Reply {
    Reply::new(550, "5.7.1", "Error: relaying denied")
}
/// RFC 3463 5.1.1: an address at a push route's domain that no route takes.
pub fn unknown_push_address() -> Reply {
    Reply::new(550, "5.1.1", "Error: no push route for this address")
}
pub fn bare_line_end() -> Reply {
    // CVE-2023-51764 (SMTP smuggling): RFC 5321 2.3.8 allows only CRLF.
    Reply::new(
        550,
        "5.6.0",
        "Error: bare <CR> or <LF> in message; use <CR><LF> line endings",
    )
}
/// A NUL is refused, not removed: the client is told, and can say so
/// (RFC 2045 2.7/2.8, RFC 6152: no NUL in 7bit or 8bit text; Postfix's
/// message_reject_characters).
pub fn nul_in_message() -> Reply {
    Reply::new(550, "5.6.0", "Error: NUL character in message")
}
pub fn data_line_too_long() -> Reply {
    // RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
    Reply::new(500, "5.5.2", "Error: message line longer than 1000 octets")
}
pub fn mail_loop() -> Reply {
    Reply::new(554, "5.4.6", "Error: too many Received: headers, mail loop")
}
pub fn storage_failure() -> Reply {
    Reply::new(451, "4.3.0", "Error: queue file write error")
}
pub fn insufficient_storage() -> Reply {
    Reply::new(452, "4.3.1", "Error: insufficient system storage")
}
pub fn too_many_connections(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.3.2",
        format!("{hostname} Error: too many connections, try again later"),
    )
}
pub fn too_many_connections_from_ip(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{hostname} Error: too many connections from your address"),
    )
}
pub fn too_many_errors(hostname: &str) -> Reply {
    Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
}
pub fn session_too_long(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.4.2",
        format!("{hostname} Error: session time limit exceeded"),
    )
}
pub fn header_too_big() -> Reply {
    Reply::new(552, "5.3.4", "Error: message header size exceeds limit")
}
pub fn auth_challenge(text: &str) -> Reply {
    Reply::plain(334, vec![text.to_string()])
}
pub fn auth_ok() -> Reply {
    Reply::new(235, "2.7.0", "Authentication successful")
}
pub fn auth_failed() -> Reply {
    Reply::new(535, "5.7.8", "Error: authentication failed")
}
pub fn auth_cancelled() -> Reply {
    Reply::new(501, "5.7.0", "Error: authentication aborted")
}
pub fn auth_bad_response() -> Reply {
    Reply::new(501, "5.5.2", "Error: cannot decode the response")
}
pub fn auth_line_too_long() -> Reply {
    // RFC 4954 6
    Reply::new(
        500,
        "5.5.6",
        "Error: authentication exchange line is too long",
    )
}
pub fn auth_needs_tls() -> Reply {
    // RFC 4954 6
    Reply::new(
        538,
        "5.7.11",
        "Error: encryption required for requested authentication mechanism",
    )
}
pub fn auth_required() -> Reply {
    // RFC 4954 6, RFC 6409 4.3
    Reply::new(530, "5.7.0", "Error: authentication required")
}
pub fn too_many_auth_failures(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{hostname} Error: too many failed authentication attempts"),
    )
}
/// RFC 4954 6: 454 4.7.0, a temporary authentication failure. The address
/// has failed `auth_failure_limit` times within `auth_failure_window`.
pub fn auth_failures_from_address() -> Reply {
    Reply::new(
        454,
        "4.7.0",
        "Error: too many failed authentication attempts, try again later",
    )
}
pub fn timeout(hostname: &str) -> Reply {
    Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
}
/// RFC 5321 3.8: a server that must stop says 421 first.
pub fn shutting_down(hostname: &str) -> Reply {
    Reply::new(421, "4.3.2", format!("{hostname} Service shutting down"))
}
/// RFC 5321 4.2.4: a known verb this server does not implement.
pub fn not_implemented(verb: &str) -> Reply {
    Reply::new(502, "5.5.1", format!("Error: {verb} not implemented"))
}
pub fn starttls_not_available() -> Reply {
    Reply::new(502, "5.5.1", "Error: STARTTLS not available")
}
pub fn ready_for_tls() -> Reply {
    Reply::new(220, "2.0.0", "Ready to start TLS")
}
/// RFC 3207 5: commands sent before the handshake would be taken as sent
/// over TLS (CVE-2011-0411).
pub fn pipelined_after_starttls() -> Reply {
    Reply::new(554, "5.5.1", "Error: commands pipelined after STARTTLS")
}
pub fn auth_not_enabled() -> Reply {
    Reply::new(502, "5.5.1", "Error: authentication not enabled")
}
pub fn auth_unsupported_mechanism() -> Reply {
    Reply::new(504, "5.5.4", "Error: unsupported authentication mechanism")
}
pub fn internal_error(hostname: &str) -> Reply {
    Reply::new(
        421,
        "4.3.0",
        format!("{hostname} Error: internal error, closing connection"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        assert_eq!(ok().to_wire(), "250 2.0.0 Ok\r\n");
        assert_eq!(greeting("mx.example").to_wire(), "220 mx.example ESMTP\r\n");
        assert_eq!(
            help().to_wire(),
            "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n\
             214 2.0.0 See RFC 5321\r\n"
        );
        assert_eq!(
            Reply::plain(250, vec!["a".into(), "b".into()]).to_wire(),
            "250-a\r\n250 b\r\n"
        );
    }
}
