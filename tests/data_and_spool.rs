//! What is stored, byte for byte; what must never be stored; and what
//! survives a crash.

mod support;

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use support::{split_received, Server};

/// A server that keeps non-local mail queued (forwarding is not configured),
/// so the spool copy can be read.
fn relay_server(extra: &str) -> Server {
    Server::start(&format!("relay_networks = 127.0.0.0/8\n{extra}"))
}

#[test]
fn spool_copy_and_envelope_are_exact() {
    let server = relay_server("");
    let mut c = server.greeted();
    let data: &[u8] = b"From: a@example.org\r\nSubject: =?utf-8?q?x?=\r\n\r\n\
        ..leading dot\r\n...two dots\r\n. \r\n\xc3\xa4\xc3\xb6\xc3\xbc 8-bit \xff\xfe\r\n\
        \tindent\r\n\r\n\r\n";
    assert_eq!(
        c.command("MAIL FROM:<a@example.org> BODY=8BITMIME SIZE=200"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<b@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(data);
    c.send_raw(b".\r\n");
    let id = support::queue_id(&c.reply());
    // One file, and an `.env` beside it once the first attempt ends.
    let files = server.queue_files();
    assert!(
        files == [format!("{id}.msg")] || files == [format!("{id}.env"), format!("{id}.msg")],
        "{files:?}"
    );
    let (stored, envelope) = server.stored(&id);
    let (received, rest) = split_received(&stored);
    assert_eq!(
        rest,
        b"From: a@example.org\r\nSubject: =?utf-8?q?x?=\r\n\r\n\
        .leading dot\r\n..two dots\r\n \r\n\xc3\xa4\xc3\xb6\xc3\xbc 8-bit \xff\xfe\r\n\
        \tindent\r\n\r\n\r\n"
    );
    let prefix = format!(
        "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (tinymta) with ESMTP id {id}\r\n\
         \tfor <b@example.net>;\r\n\t"
    );
    assert!(received.starts_with(&prefix), "{received}");
    let arrival = envelope
        .lines()
        .find_map(|l| l.strip_prefix("arrival: "))
        .unwrap();
    let header = format!(
        "tinymta-envelope: 1\nid: {id}\narrival: {arrival}\nclient: 127.0.0.1\n\
         helo: client.test\nsender: <a@example.org>\nbody: 8BITMIME\nsize: {}\n",
        stored.len()
    );
    assert!(envelope.starts_with(&header), "{envelope}");
    // Then the recipient, as accepted: the queue file is never rewritten.
    assert_eq!(
        &envelope[header.len()..],
        "recipient: queued attempts=0 next=0 <b@example.net>\n"
    );
    // The first attempt (no DNS: a deferral) writes the envelope beside it,
    // through tmp/, where nothing is left.
    let updated = server.wait_for_envelope_containing(&id, "recipient: queued attempts=1");
    assert!(updated.starts_with(&header), "{updated}");
    assert_eq!(
        server.queue_files(),
        [format!("{id}.env"), format!("{id}.msg")]
    );
    assert_eq!(server.stored(&id), (stored, envelope));
    assert!(server.tmp_files().is_empty());
}

#[test]
fn local_delivery_is_exact() {
    let server = Server::start("");
    let mut c = server.greeted();
    let id = c.send_message(
        "Alice@Example.org",
        &["Root@MX.test"],
        b"Subject: alert\r\n\r\n..dot\r\nline\r\n.\r\n",
    );
    let mail = server.wait_for_mail("root", 1);
    let (received, rest) = split_received(&mail[0]);
    assert!(
        received.starts_with(&format!(
            "Return-Path: <Alice@example.org>\nDelivered-To: root@mx.test\n\
             Received: from client.test ([127.0.0.1])\n\tby mx.test (tinymta) with ESMTP id {id}\n\
             \tfor <Root@mx.test>;\n\t"
        )),
        "{received}"
    );
    assert_eq!(rest, b"Subject: alert\n\n.dot\nline\n");
    // Delivered to everyone: the entry leaves the queue.
    server.wait_for_empty_queue();
    // The Maildir is a standard one.
    for sub in ["tmp", "new", "cur"] {
        assert!(server.mailboxes().join("root").join(sub).is_dir());
    }
    let name = &support::list_dir(&server.mailboxes().join("root/new"))[0];
    assert!(name.ends_with(".mx.test"), "{name}");
    assert!(server.log().contains(&format!(
        "{id}: accepted from=<Alice@example.org> client=127.0.0.1 helo=client.test nrcpt=1"
    )));
    assert!(server
        .log()
        .contains(&format!("{id}: to=<Root@mx.test> relay=local")));
}

#[test]
fn smuggled_messages_are_never_created() {
    let server = Server::start("");
    let mut c = server.greeted();
    let smuggled_endings: [&[u8]; 4] = [b"\n.\r\n", b"\n.\n", b"\r\n.\n", b"\r.\r"];
    for ending in smuggled_endings {
        c.begin_data("a@example.org", &["root@mx.test"]);
        let mut data = b"Subject: outer\r\n\r\nouter".to_vec();
        data.extend_from_slice(ending);
        data.extend_from_slice(
            b"MAIL FROM:<admin@mx.test>\r\nRCPT TO:<victim@mx.test>\r\nDATA\r\n\
              Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n",
        );
        c.send_raw(&data);
        assert_eq!(
            c.reply(),
            "550 5.6.0 Error: bare <CR> or <LF> in message; use <CR><LF> line endings\r\n",
            "ending {ending:?}"
        );
        // The session is in step: the hidden commands were never commands.
        assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
    }
    // A clean message afterwards goes through, and is the only one stored.
    c.send_message(
        "a@example.org",
        &["root@mx.test"],
        b"Subject: clean\r\n\r\nok\r\n.\r\n",
    );
    let mail = server.wait_for_mail("root", 1);
    assert!(String::from_utf8_lossy(&mail[0]).contains("Subject: clean"));
    assert_eq!(server.mail_count("victim"), 0);
    assert!(server.tmp_files().is_empty());
}

#[test]
fn long_text_lines_and_mail_loops_are_refused() {
    let server = Server::start("");
    let mut c = server.greeted();
    c.begin_data("a@example.org", &["root@mx.test"]);
    c.send_raw(format!("Subject: x\r\n\r\n{}\r\n.\r\n", "y".repeat(999)).as_bytes());
    assert_eq!(
        c.reply(),
        "500 5.5.2 Error: message line longer than 1000 octets\r\n"
    );
    c.begin_data("a@example.org", &["root@mx.test"]);
    let mut looping = "Received: from a by b; Sun, 22 Nov 2026 00:00:00 +0000\r\n".repeat(31);
    looping.push_str("Subject: loop\r\n\r\nbody\r\n.\r\n");
    c.send_raw(looping.as_bytes());
    assert_eq!(
        c.reply(),
        "554 5.4.6 Error: too many Received: headers, mail loop\r\n"
    );
    // 30 is still fine, and a 998-octet line too.
    let mut ok = "Received: from a by b; Sun, 22 Nov 2026 00:00:00 +0000\r\n".repeat(30);
    ok.push_str(&format!(
        "Subject: fine\r\n\r\n{}\r\n.\r\n",
        "y".repeat(998)
    ));
    c.send_message("a@example.org", &["root@mx.test"], ok.as_bytes());
    let mail = server.wait_for_mail("root", 1);
    assert!(String::from_utf8_lossy(&mail[0]).contains("Subject: fine"));
}

#[test]
fn a_50_mb_message_is_streamed_to_disk_and_stored_exactly() {
    let server = relay_server("max_message_size = 60M");
    let mut c = server.greeted();
    let before = server.peak_rss_kib();
    assert_eq!(
        c.command("MAIL FROM:<a@example.org> SIZE=52428800"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<big@example.net>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    // 50 MiB of numbered 100-octet lines, some starting with a dot.
    let mut expected = Vec::with_capacity(52_428_800);
    let mut block = Vec::with_capacity(1 << 20);
    for n in 0..524_288u32 {
        let line = format!("{:08} {}\r\n", n, "z".repeat(89));
        let line = if n % 1000 == 0 {
            format!(".{}", &line[1..])
        } else {
            line
        };
        expected.extend_from_slice(line.as_bytes());
        if line.starts_with('.') {
            block.push(b'.');
        }
        block.extend_from_slice(line.as_bytes());
        if block.len() >= 1 << 20 {
            c.send_raw(&block);
            block.clear();
        }
    }
    block.extend_from_slice(b".\r\n");
    c.send_raw(&block);
    let id = support::queue_id(&c.reply());
    let after = server.peak_rss_kib();
    let (stored, _) = server.stored(&id);
    let (_, body) = split_received(&stored);
    assert_eq!(body.len(), expected.len());
    assert!(body == expected, "stored message differs");
    // Streamed: the process did not grow by anything like the message size.
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn lettre_sends_through_tinymta() {
    use lettre::address::Envelope;
    use lettre::{SmtpTransport, Transport};
    let server = Server::start("");
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port)
        .build();
    let envelope = Envelope::new(
        Some("cron@example.org".parse().unwrap()),
        vec![
            "root@mx.test".parse().unwrap(),
            "ops@localhost".parse().unwrap(),
        ],
    )
    .unwrap();
    // lettre ends the data with CRLF.CRLF itself, so the text has no final CRLF.
    let raw = b"From: cron@example.org\r\nTo: root@mx.test\r\nSubject: disk full\r\n\r\n\
        .hidden dot\r\n/dev/sda1 100% \xe2\x9c\x97";
    let response = mailer.send_raw(&envelope, raw).expect("lettre send");
    assert_eq!(response.code().to_string(), "250");
    let text: Vec<&str> = response.message().collect();
    let id = text[0]
        .strip_prefix("2.0.0 Ok: queued as ")
        .expect("queued");
    let root = server.wait_for_mail("root", 1);
    let ops = server.wait_for_mail("ops", 1);
    for (mail, rcpt) in [(&root[0], "root@mx.test"), (&ops[0], "ops@localhost")] {
        let (received, rest) = split_received(mail);
        assert!(
            received.starts_with(&format!(
                "Return-Path: <cron@example.org>\nDelivered-To: {rcpt}\nReceived: from "
            )),
            "{received}"
        );
        assert!(
            received.contains(&format!("with ESMTP id {id};\n")),
            "{received}"
        );
        assert_eq!(
            rest,
            b"From: cron@example.org\nTo: root@mx.test\nSubject: disk full\n\n\
              .hidden dot\n/dev/sda1 100% \xe2\x9c\x97\n"
        );
    }
}

#[test]
fn python_smtplib_sends_through_tinymta() {
    let server = Server::start("");
    let script = format!(
        r#"
import smtplib
with smtplib.SMTP("127.0.0.1", {port}, local_hostname="py.test") as s:
    code, _ = s.ehlo()
    assert code == 250
    refused = s.sendmail("smartd@example.org", ["root@mx.test"],
        b"Subject: SMART error\r\n\r\n.sda: reallocated sectors\r\n\xc3\xa9\r\n")
    assert refused == {{}}, refused
    code, msg = s.docmd("VRFY", "root")
    print(code, msg.decode())
"#,
        port = server.port
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\n"
    );
    let mail = server.wait_for_mail("root", 1);
    let (received, rest) = split_received(&mail[0]);
    assert!(
        received.contains("Received: from py.test ([127.0.0.1])"),
        "{received}"
    );
    assert_eq!(
        rest,
        b"Subject: SMART error\n\n.sda: reallocated sectors\n\xc3\xa9\n"
    );
}

#[test]
fn full_pool_answers_421_at_once() {
    let server = Server::start("max_connections = 2");
    // The pool frees a place just after a session closes its socket, so a
    // place that was in use a moment ago may still be taken: retry for it.
    let take_a_place = || {
        let deadline = Instant::now() + support::WAIT;
        loop {
            let mut client = server.connect();
            let reply = client.reply();
            if reply == "220 mx.test ESMTP\r\n" {
                return client;
            }
            assert!(reply.starts_with("421 4.3.2 "), "{reply}");
            assert!(Instant::now() < deadline, "no free place");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut first = take_a_place();
    let mut second = take_a_place();
    let started = Instant::now();
    let mut third = server.connect();
    assert_eq!(
        third.reply(),
        "421 4.3.2 mx.test Error: too many connections, try again later\r\n"
    );
    assert!(third.closed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 421 was not at once"
    );
    // A place frees up when a client leaves.
    assert_eq!(first.command("QUIT"), "221 2.0.0 Bye\r\n");
    assert!(first.closed());
    let mut next = take_a_place();
    assert_eq!(next.command("NOOP"), "250 2.0.0 Ok\r\n");
    assert_eq!(second.command("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn idle_client_is_closed_with_421() {
    let server = Server::start("command_timeout = 1s");
    let mut c = server.greeted();
    // No command: the server gives up on us.
    assert_eq!(c.reply(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    assert!(c.closed());
}

#[test]
fn stalled_data_is_closed_with_421_and_nothing_stored() {
    let server = Server::start("data_timeout = 1s");
    let mut c = server.greeted();
    c.begin_data("a@example.org", &["root@mx.test"]);
    c.send_raw(b"Subject: half\r\n\r\npart of a message");
    assert_eq!(c.reply(), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    assert!(c.closed());
    assert!(server.tmp_files().is_empty());
    assert!(server.queue_files().is_empty());
    assert_eq!(server.mail_count("root"), 0);
}

#[test]
fn kill_9_during_data_and_after_250() {
    let mut server = relay_server("");
    // Killed in the middle of DATA: that message must not exist afterwards.
    let mut c = server.greeted();
    c.begin_data("a@example.org", &["first@example.net"]);
    c.send_raw(&format!("Subject: first\r\n\r\n{}", "line\r\n".repeat(20_000)).into_bytes());
    let deadline = Instant::now() + support::WAIT;
    while server.tmp_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no tmp file for the message being received"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    drop(c);
    assert!(
        !server.tmp_files().is_empty(),
        "the torn write is there before restart"
    );
    server.restart();
    assert!(
        server.tmp_files().is_empty(),
        "tmp/ was cleaned at start-up"
    );
    assert!(server.queue_files().is_empty());
    // Killed right after the 250: that message must exist afterwards.
    let mut c = server.greeted();
    let id = c.send_message(
        "a@example.org",
        &["second@example.net", "root@mx.test"],
        b"Subject: second\r\n\r\nacknowledged\r\n.\r\n",
    );
    server.kill();
    server.restart();
    assert!(server.queue_files().contains(&format!("{id}.msg")));
    let (stored, _) = server.stored(&id);
    assert_eq!(
        split_received(&stored).1,
        b"Subject: second\r\n\r\nacknowledged\r\n"
    );
    // The restarted server resumes the queue: the local recipient gets it once.
    let mail = server.wait_for_mail("root", 1);
    assert!(String::from_utf8_lossy(&mail[0]).contains("Subject: second"));
    server.wait_for_envelope(
        &id,
        &["recipient: delivered attempts=1 next=0 <root@mx.test>"],
    );
    // The remote recipient's failed attempt is saved when it ends, which may
    // be after the local delivery was.
    let envelope = server.wait_for_envelope_containing(&id, "recipient: queued attempts=1 next=");
    assert!(envelope.contains(" <second@example.net>\n"), "{envelope}");
    assert!(envelope.contains("delivered attempts=1 next=0 <root@mx.test>"));
    assert!(!server.log().contains("first@example.net"));
}

#[test]
fn concurrent_messages_never_share_a_name() {
    let server = Server::start("max_connections = 8");
    let port = server.port;
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = support::Client::connect(port);
                c.reply();
                c.command("EHLO client.test");
                (0..10)
                    .map(|n| {
                        let body = format!("Subject: {t}-{n}\r\n\r\nmessage {t}-{n}\r\n.\r\n");
                        c.send_message("a@example.org", &["root@mx.test"], body.as_bytes())
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    let mail = server.wait_for_mail("root", 60);
    let mut subjects: Vec<String> = mail
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 60);
    let _ = std::io::stdout().flush();
}

#[test]
fn a_corrupt_queue_entry_is_set_aside_once() {
    let mut server = Server::start("");
    server.kill();
    let new = server.spool().join("new");
    fs::write(
        new.join("6B0000000000000001.msg"),
        "Subject: kept\r\n\r\nbody\r\n",
    )
    .unwrap();
    fs::write(
        new.join("6B0000000000000001.env"),
        "tinymta-envelope: 1\nid: x\n",
    )
    .unwrap();
    // A queue file without the envelope line at its end.
    fs::write(new.join("6B0000000000000002.msg"), "Subject: cut\r\n").unwrap();
    server.restart();
    server.wait_for_log("6B0000000000000002.msg: bad envelope");
    server.wait_for_log("6B0000000000000001.env: bad envelope");
    let corrupt = server.spool().join("corrupt");
    assert_eq!(
        support::list_dir(&corrupt),
        [
            "6B0000000000000001.env",
            "6B0000000000000001.msg",
            "6B0000000000000002.msg"
        ]
    );
    assert_eq!(
        fs::read(corrupt.join("6B0000000000000001.msg")).unwrap(),
        b"Subject: kept\r\n\r\nbody\r\n"
    );
    assert!(server.queue_files().is_empty());
    // The queue goes on: a new message is delivered, and the corrupt one is
    // not tried (or logged) again.
    let mut c = server.greeted();
    c.send_message(
        "a@example.org",
        &["root@mx.test"],
        b"Subject: after\r\n\r\nfine\r\n.\r\n",
    );
    server.wait_for_mail("root", 1);
    server.wait_for_empty_queue();
    assert_eq!(server.log().matches("bad envelope").count(), 2);
}
