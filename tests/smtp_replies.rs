//! Exact reply codes for every part of the dialogue, with a raw TCP client.

mod support;

use support::{Client, Server};

#[test]
fn greeting_ehlo_helo_and_simple_commands() {
    let server = Server::start("");
    let mut c = server.connect();
    assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    assert_eq!(
        c.command("EHLO client.test"),
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n\
         250 ENHANCEDSTATUSCODES\r\n"
    );
    assert_eq!(c.command("HELO client.test"), "250 mx.test\r\n");
    assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.command("noop anything"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
    assert_eq!(
        c.command("VRFY root"),
        "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n"
    );
    assert_eq!(
        c.command("HELP"),
        "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n\
         214 2.0.0 See RFC 5321\r\n"
    );
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    assert!(c.closed());
}

#[test]
fn sequencing_and_syntax_errors() {
    let server = Server::start("max_errors = 100");
    let mut c = server.connect();
    c.reply();
    let cases = [
        (
            "MAIL FROM:<a@example.org>",
            "503 5.5.1 Error: send HELO/EHLO first",
        ),
        (
            "RCPT TO:<root@mx.test>",
            "503 5.5.1 Error: need MAIL command",
        ),
        ("DATA", "503 5.5.1 Error: need MAIL command"),
        ("EHLO", "501 5.5.4 Syntax: EHLO hostname"),
        ("EHLO client.test", ""),
        (
            "RCPT TO:<root@mx.test>",
            "503 5.5.1 Error: need MAIL command",
        ),
        (
            "MAIL FROM:a@example.org>",
            "501 5.1.7 Bad sender address syntax: bad domain \"example.org>\"",
        ),
        (
            "MAIL FROM:<a@example.org>x",
            "501 5.1.7 Bad sender address syntax: unexpected text after the address",
        ),
        (
            "MAIL FROM:<a@@example.org>",
            "501 5.1.7 Bad sender address syntax: bad local part \"a@\"",
        ),
        (
            "MAIL FROM:<a@example.org",
            "501 5.1.7 Bad sender address syntax: missing closing '>'",
        ),
        (
            "MAIL FROMM:<a@example.org>",
            "501 5.5.4 Syntax: MAIL FROM:<address>",
        ),
        (
            "MAIL FROM:<a@example.org> SMTPUTF8",
            "555 5.5.4 Unsupported option: SMTPUTF8",
        ),
        (
            "MAIL FROM:<a@example.org> BODY=BINARYMIME",
            "501 5.5.4 Error: BODY= must be 7BIT or 8BITMIME",
        ),
        ("MAIL FROM:<a@example.org>", "250 2.1.0 Ok"),
        (
            "MAIL FROM:<a@example.org>",
            "503 5.5.1 Error: nested MAIL command",
        ),
        ("DATA", "554 5.5.1 Error: no valid recipients"),
        (
            "RCPT TO:<>",
            "501 5.1.3 Bad recipient address syntax: null recipient",
        ),
        (
            "RCPT TO:<root@>",
            "501 5.1.3 Bad recipient address syntax: empty domain",
        ),
        (
            "RCPT TO:<a b@mx.test>",
            "501 5.1.3 Bad recipient address syntax: bad local part \"a b\"",
        ),
        (
            "RCPT TO:<root@mx.test> NOTIFY=NEVER",
            "555 5.5.4 Unsupported option: NOTIFY=NEVER",
        ),
        (
            "RCPT FROM:<root@mx.test>",
            "501 5.5.4 Syntax: RCPT TO:<address>",
        ),
        ("DATA now", "501 5.5.4 Syntax: DATA"),
        ("EXPN staff", "502 5.5.1 Error: EXPN not implemented"),
        ("STARTTLS", "502 5.5.1 Error: STARTTLS not available"),
        ("FOO", "500 5.5.1 Error: command not recognized"),
        ("RSET", "250 2.0.0 Ok"),
        (
            "RCPT TO:<root@mx.test>",
            "503 5.5.1 Error: need MAIL command",
        ),
    ];
    for (command, expected) in cases {
        let reply = c.command(command);
        if expected.is_empty() {
            assert!(reply.starts_with("250-"), "{command}: {reply:?}");
        } else {
            assert_eq!(reply, format!("{expected}\r\n"), "after {command:?}");
        }
    }
}

#[test]
fn overlong_command_line_keeps_the_session_in_step() {
    let server = Server::start("");
    let mut c = server.greeted();
    // 510 octets + CRLF = 512: the longest allowed command line.
    let longest = format!("NOOP {}", "x".repeat(505));
    assert_eq!(c.command(&longest), "250 2.0.0 Ok\r\n");
    let too_long = format!("NOOP {}", "x".repeat(506));
    assert_eq!(c.command(&too_long), "500 5.5.2 Error: line too long\r\n");
    let huge = format!("MAIL FROM:<{}@example.org>", "a".repeat(100_000));
    assert_eq!(c.command(&huge), "500 5.5.2 Error: line too long\r\n");
    assert_eq!(c.command("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok\r\n");
}

#[test]
fn size_limits_at_mail_and_after_the_final_dot() {
    let server = Server::start("max_message_size = 1k\nrelay_networks = 127.0.0.0/8");
    let mut c = server.greeted();
    assert_eq!(
        c.command("MAIL FROM:<a@example.org> SIZE=1025"),
        "552 5.3.4 Error: message size exceeds fixed limit\r\n"
    );
    assert_eq!(
        c.command("MAIL FROM:<a@example.org> SIZE=1024"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<x@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    for _ in 0..11 {
        c.send_raw(format!("{}\r\n", "b".repeat(98)).as_bytes());
    }
    c.send_raw(b".\r\n");
    assert_eq!(
        c.reply(),
        "552 5.3.4 Error: message size exceeds fixed limit\r\n"
    );
    assert!(server.queue_files().is_empty());
    assert!(server.tmp_files().is_empty());
    // Exactly the limit (ten lines of 100 octets, one of 24) is fine.
    let data = format!(
        "{}{}\r\n.\r\n",
        format!("{}\r\n", "c".repeat(98)).repeat(10),
        "d".repeat(22)
    );
    let id = c.send_message("a@example.org", &["x@example.net"], data.as_bytes());
    let (stored, _) = server.stored(&id);
    assert_eq!(support::split_received(&stored).1.len(), 1024);
}

#[test]
fn recipient_limit() {
    let server = Server::start("max_recipients = 3");
    let mut c = server.greeted();
    assert_eq!(c.command("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok\r\n");
    for n in 0..3 {
        assert_eq!(
            c.command(&format!("RCPT TO:<u{n}@mx.test>")),
            "250 2.1.5 Ok\r\n"
        );
    }
    assert_eq!(
        c.command("RCPT TO:<u4@mx.test>"),
        "452 4.5.3 Error: too many recipients\r\n"
    );
}

#[test]
fn null_sender_quoted_local_parts_literals_and_postmaster() {
    let server = Server::start("relay_networks = 127.0.0.0/8");
    let mut c = server.greeted();
    assert_eq!(c.command("MAIL FROM:<>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<Postmaster>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.command("RCPT TO:<\"john.doe\"@mx.test>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(
        c.command("RCPT TO:<\"john doe\"@example.net>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<ops@[127.0.0.1]>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<ops@[IPv6:::1]>"), "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.command("RCPT TO:<@relay.example:ops@example.net>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: bounce\r\n\r\nbody\r\n.\r\n");
    let id = support::queue_id(&c.reply());
    // The local recipients are delivered; the others stay queued.
    let postmaster = server.wait_for_mail("postmaster", 1);
    assert!(postmaster[0].starts_with(b"Return-Path: <>\nDelivered-To: postmaster@mx.test\n"));
    let john = server.wait_for_mail("john.doe", 1);
    assert!(john[0].starts_with(b"Return-Path: <>\nDelivered-To: \"john.doe\"@mx.test\n"));
    // Local ones are delivered; the others wait for their servers, which
    // are not there (a closed loopback port, no DNS).
    let envelope = server.wait_for_envelope(
        &id,
        &[
            "sender: <>",
            "recipient: delivered attempts=1 next=0 <postmaster@mx.test>",
        ],
    );
    for remote in [
        "<\"john doe\"@example.net>",
        "<ops@[127.0.0.1]>",
        "<ops@[ipv6:::1]>",
        "<ops@example.net>",
    ] {
        let line = envelope
            .lines()
            .find(|l| l.ends_with(remote))
            .unwrap_or_else(|| panic!("{remote} in {envelope}"));
        assert!(line.starts_with("recipient: queued attempts="), "{line}");
    }
}

#[test]
fn relaying_is_denied_outside_relay_networks() {
    let server = Server::start("relay_networks = 10.0.0.0/8");
    let mut c = server.greeted();
    assert_eq!(c.command("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        c.command("RCPT TO:<victim@example.net>"),
        "550 5.7.1 Error: relaying denied\r\n"
    );
    assert_eq!(
        c.command("RCPT TO:<postmaster@example.net>"),
        "550 5.7.1 Error: relaying denied\r\n"
    );
    assert_eq!(c.command("RCPT TO:<root@MX.TEST>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<postmaster>"), "250 2.1.5 Ok\r\n");
}

#[test]
fn local_parts_cannot_escape_the_mailbox_directory() {
    let server = Server::start("");
    let mut c = server.greeted();
    assert_eq!(c.command("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok\r\n");
    for evil in [
        "\"../etc\"@mx.test",
        "\"..\"@mx.test",
        "\"a/b\"@mx.test",
        "a/b@mx.test",
        "\"/etc/passwd\"@mx.test",
        "\".ssh\"@mx.test",
        "\"a\\\tb\"@mx.test",
    ] {
        let reply = c.command(&format!("RCPT TO:<{evil}>"));
        assert!(
            reply == "550 5.1.3 Error: invalid mailbox name\r\n" || reply.starts_with("501 5.1.3 "),
            "{evil}: {reply}"
        );
    }
    assert_eq!(
        c.command("RCPT TO:<\"a\\\u{0}b\"@mx.test>").get(..9),
        Some("501 5.5.4")
    );
    assert_eq!(
        c.command("DATA"),
        "554 5.5.1 Error: no valid recipients\r\n"
    );
    assert!(!server.dir.path().join("etc").exists());
}

#[test]
fn pipelined_commands_get_their_replies_in_order() {
    let server = Server::start("");
    let mut c = server.greeted();
    c.send_raw(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@mx.test>\r\nRCPT TO:<bad@>\r\n\
          RCPT TO:<ops@mx.test>\r\nDATA\r\n",
    );
    assert_eq!(c.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.reply(),
        "501 5.1.3 Bad recipient address syntax: empty domain\r\n"
    );
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    assert_eq!(c.reply(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    // The message, the next transaction and QUIT in one write.
    c.send_raw(
        b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<b@example.org>\r\n\
          RCPT TO:<root@mx.test>\r\nDATA\r\n",
    );
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(c.reply(), "250 2.1.0 Ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Ok\r\n");
    assert_eq!(c.reply(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(c.reply(), "221 2.0.0 Bye\r\n");
    assert_eq!(server.wait_for_mail("root", 2).len(), 2);
    assert_eq!(server.wait_for_mail("ops", 1).len(), 1);
}

#[test]
fn bad_config_is_refused_with_file_and_line() {
    use support::run_tinymta;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.conf");
    let bad_path = bad.to_str().unwrap();
    std::fs::write(&bad, "# ok\nhostname = a.test\nbogus = 1\n").unwrap();
    assert_eq!(
        run_tinymta(&["-t", "-c", bad_path]),
        (
            Some(1),
            String::new(),
            format!("tinymta: {bad_path}:3: bogus: unknown key\n")
        )
    );
    // The daemon does not start with it either.
    assert_eq!(
        run_tinymta(&["-c", bad_path]),
        (
            Some(1),
            String::new(),
            format!("tinymta: {bad_path}:3: bogus: unknown key\n")
        )
    );
    std::fs::write(&bad, "max_message_size = 10 M\n").unwrap();
    assert_eq!(
        run_tinymta(&["-t", "-c", bad_path]),
        (
            Some(1),
            String::new(),
            format!(
                "tinymta: {bad_path}:1: max_message_size: expected a size such as 512k or 10M, \
                 found \"10 M\"\n"
            )
        )
    );
    let missing = dir.path().join("missing.conf");
    let (code, _, stderr) = run_tinymta(&["-t", "-c", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("missing.conf: cannot read config"),
        "{stderr}"
    );
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/tinymta.conf");
    assert_eq!(
        run_tinymta(&["-t", "-c", shipped]),
        (Some(0), "config ok\n".to_string(), String::new())
    );
    assert_eq!(run_tinymta(&["-x"]).0, Some(64));
    assert_eq!(
        run_tinymta(&["-V"]),
        (
            Some(0),
            format!("tinymta {}\n", env!("CARGO_PKG_VERSION")),
            String::new()
        )
    );
}

#[test]
fn ipv6_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        support::skip("no IPv6 loopback here");
        return;
    }
    let port = support::free_port();
    let server = Server::start(&format!("listen = [::1]:{port}"));
    let stream = std::net::TcpStream::connect(("::1", port)).unwrap();
    let mut c = Client::from_stream(stream);
    assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    assert_eq!(
        c.command("EHLO v6.test").lines().next(),
        Some("250-mx.test")
    );
    let id = c.send_message(
        "a@example.org",
        &["root@mx.test"],
        b"Subject: v6\r\n\r\nx\r\n.\r\n",
    );
    let mail = server.wait_for_mail("root", 1);
    let text = String::from_utf8_lossy(&mail[0]);
    assert!(
        text.contains(&format!(
            "Received: from v6.test ([IPv6:::1])\n\tby mx.test (tinymta) with ESMTP id {id}\n"
        )),
        "{text}"
    );
}
