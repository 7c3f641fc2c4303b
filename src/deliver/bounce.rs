//! Delivery status notifications (RFC 3464): one multipart/report per
//! message whose recipients failed, sent to the envelope sender with the null
//! reverse-path, holding the report and the original message's headers
//! (RFC 6522 text/rfc822-headers).

use std::io::Read;

use crate::random::random_u64;
use crate::smtp::status::Status;
use crate::spool::queue::{QueueEnvelope, Recipient, RecipientState};
use crate::time::rfc5322_date;

/// The most of the original header section quoted in a bounce.
pub const MAX_QUOTED_HEADERS: usize = 64 * 1024;

/// The text of a bounce for the failed recipients of `envelope`, with CRLF
/// line ends. `original` reads the original message.
pub fn build_bounce(
    hostname: &str,
    envelope: &QueueEnvelope,
    original: &mut impl Read,
    now: u64,
) -> Vec<u8> {
    let failed: Vec<&Recipient> = envelope
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Failed)
        .collect();
    let boundary = format!("{:016x}/{hostname}", random_u64());
    let sender = envelope.sender_text();
    let mut text = String::new();
    let mut line = |l: &str| {
        text.push_str(l);
        text.push_str("\r\n");
    };
    line(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>"
    ));
    line(&format!("To: <{sender}>"));
    line("Subject: Undelivered Mail Returned to Sender");
    line(&format!("Date: {}", rfc5322_date(now)));
    line(&format!("Message-ID: <{}.bounce@{hostname}>", envelope.id));
    // RFC 3834 5: an automatic reply, which others must not answer.
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
    ));
    line("");
    line("This is a MIME-encapsulated message.");
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=us-ascii");
    line("");
    line(&format!("This is the mail system at host {hostname}."));
    line("");
    line("Your message could not be delivered to one or more recipients.");
    line("The reasons are given below.");
    line("");
    for r in &failed {
        line(&format!("<{}>: {}", r.address, error_text(r)));
    }
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("");
    line(&format!("Reporting-MTA: dns; {hostname}"));
    line(&format!("X-Tinymta-Queue-ID: {}", envelope.id));
    line(&format!("X-Tinymta-Sender: rfc822; {sender}"));
    line(&format!("Arrival-Date: {}", rfc5322_date(envelope.arrival)));
    for r in &failed {
        let error = error_text(r);
        // RFC 3464 2.3.4: the status of the last attempt; 5.0.0 where none
        // was recorded.
        let status = r
            .last_error
            .as_ref()
            .map_or(Status::undefined(true), |e| e.status);
        line("");
        line(&format!("Final-Recipient: rfc822; {}", r.address));
        line("Action: failed");
        line(&format!("Status: {status}"));
        // `host[ip]:port said: reply` when a server refused; anything else is ours.
        match error
            .split_once(" said: ")
            .filter(|(relay, _)| !relay.contains(' '))
        {
            Some((relay, reply)) => {
                let host = relay.split('[').next().unwrap_or(relay);
                line(&format!("Remote-MTA: dns; {host}"));
                line(&format!("Diagnostic-Code: smtp; {reply}"));
            }
            None => line(&format!("Diagnostic-Code: X-tinymta; {error}")),
        }
    }
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/rfc822-headers");
    line("");
    let mut out = text.into_bytes();
    out.extend_from_slice(&header_section(original));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Why a recipient failed, as the bounce says it.
fn error_text(r: &Recipient) -> &str {
    r.last_error
        .as_ref()
        .map_or("delivery failed", |e| e.text.as_str())
}

/// The original message's header section, up to its empty line, at most
/// [`MAX_QUOTED_HEADERS`] octets, ending in CRLF.
fn header_section(original: &mut impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let _ = original
        .take(MAX_QUOTED_HEADERS as u64)
        .read_to_end(&mut head);
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(head.len());
    head.truncate(end);
    // A cut line would leave a torn header: keep whole lines only.
    if !head.ends_with(b"\r\n") {
        let last = head
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |p| p + 2);
        head.truncate(last);
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_mailbox;
    use crate::spool::queue::{Failure, Recipient};

    #[test]
    fn a_report_for_the_failed_recipients_only() {
        let mut failed = Recipient::new(parse_mailbox("bad@example.net").unwrap());
        failed.state = RecipientState::Failed;
        failed.last_error = Some(Failure {
            status: Status::new(5, 1, 1),
            text: "mx.example.net[192.0.2.1]:25 said: 550 5.1.1 no such user".to_string(),
        });
        let mut dns = Recipient::new(parse_mailbox("x@nx.test").unwrap());
        dns.state = RecipientState::Failed;
        dns.last_error = Some(Failure::ours(
            Status::new(5, 1, 2),
            "domain nx.test not found (NXDOMAIN)",
        ));
        let mut ok = Recipient::new(parse_mailbox("good@example.net").unwrap());
        ok.state = RecipientState::Delivered;
        let envelope = QueueEnvelope {
            id: "ABC".into(),
            arrival: 0,
            client: "127.0.0.1".into(),
            helo: "h".into(),
            sender: Some(parse_mailbox("alice@example.org").unwrap()),
            body: None,
            size: 10,
            recipients: vec![failed, ok, dns],
        };
        let original = b"Subject: hello\r\nFrom: alice@example.org\r\n\r\nsecret body\r\n";
        let bounce = build_bounce("mx.test", &envelope, &mut &original[..], 86400);
        let text = String::from_utf8(bounce).unwrap();
        assert!(text.contains(
            "\r\nFinal-Recipient: rfc822; bad@example.net\r\nAction: failed\r\n\
            Status: 5.1.1\r\nRemote-MTA: dns; mx.example.net\r\n\
            Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        ));
        assert!(text.contains("\r\nFinal-Recipient: rfc822; x@nx.test\r\nAction: failed\r\n\
            Status: 5.1.2\r\nDiagnostic-Code: X-tinymta; 5.1.2 domain nx.test not found (NXDOMAIN)\r\n"));
        assert!(!text.contains("good@example.net"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: alice@example.org\r\n\r\n--"));
        assert!(!text.contains("secret body"));
        assert!(text.starts_with(
            "From: Mail Delivery System <MAILER-DAEMON@mx.test>\r\nTo: <alice@example.org>\r\n"
        ));
        assert!(text.contains("Date: Fri, 2 Jan 1970 00:00:00 +0000\r\n"));
        assert!(text.ends_with("--\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'));
        // An error of ours that quotes a server's is not the server's.
        let mut expired = Recipient::new(parse_mailbox("late@example.net").unwrap());
        expired.state = RecipientState::Failed;
        expired.last_error = Some(Failure::ours(
            Status::new(4, 4, 7),
            "message expired after 3 attempts; last error: mx[192.0.2.1]:25 said: 451 4.3.0 busy",
        ));
        let late = QueueEnvelope {
            recipients: vec![expired],
            ..envelope.clone()
        };
        let text =
            String::from_utf8(build_bounce("mx.test", &late, &mut &original[..], 0)).unwrap();
        assert!(text.contains(
            "\r\nStatus: 4.4.7\r\nDiagnostic-Code: X-tinymta; 4.4.7 message expired after 3 attempts;"
        ));
        assert!(!text.contains("Remote-MTA"));
    }

    #[test]
    fn quoted_headers_are_bounded() {
        let mut big = b"X-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 100));
        big.extend_from_slice(b"\r\n");
        let many = big.repeat(2000);
        let head = header_section(&mut &many[..]);
        assert!(head.len() <= MAX_QUOTED_HEADERS);
        assert!(head.ends_with(b"\r\n"));
        assert_eq!(head.len() % big.len(), 0);
    }
}
