//! The smoke run for each build target (issue 15): one daemon takes a
//! message by SMTP, which goes into a Maildir, and one by `sendmail`, which
//! waits in the queue (`mailq` shows it) until the smarthost (aiosmtpd with
//! STARTTLS and AUTH) is there and goes through it; then SIGTERM stops the
//! daemon. Quick enough to run under qemu-user for every target
//! (`make test-smoke TARGET=...`): one daemon start, one sendmail, one mailq.

mod support;

use std::fs;

use support::peers::{free_port_on, TestCa, Upstream};
use support::{errno_words_left_out, Server};
use tinymta::sys::Signal;
use tinymta::time::{rfc5322_date, unix_now};

/// The loopback address the smarthost listens on (no other test uses it).
const SMARTHOST_IP: &str = "127.0.0.50";

/// Whether `actual` is `expected` with `{date}` replaced by the RFC 5322
/// date of some second from `since` to now (the message's arrival).
fn is_with_date_since(actual: &[u8], expected: &str, since: u64) -> bool {
    (since..=unix_now())
        .any(|now| actual == expected.replace("{date}", &rfc5322_date(now)).as_bytes())
}

#[test]
fn daemon_smtp_sendmail_maildir_smarthost_mailq_and_sigterm() {
    let ca = TestCa::new(&["smarthost.test"]);
    let port = free_port_on(SMARTHOST_IP);
    let dir = support::test_dir();
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, format!("{SMARTHOST_IP} smarthost.test\n")).unwrap();
    // Mode 0600, as tempfile makes it: one every user can read is warned of.
    let password = tempfile::NamedTempFile::new().unwrap();
    fs::write(password.path(), "s3cret\n").unwrap();
    let mut server = Server::start(&format!(
        "smarthost = smarthost.test:{port}\nhosts_file = {}\ntls_ca_file = {}\n\
         smarthost_user = box\nsmarthost_password_file = {}",
        hosts.display(),
        ca.ca().display(),
        password.path().display()
    ));
    let config = server.config_path();
    let config = config.to_str().unwrap();

    // sendmail, as an alert tool calls it; the smarthost is not up yet, so
    // the message is deferred and stays in the queue.
    let before_sendmail = unix_now();
    let input = "From: cron@mx.test\nTo: ops@far.test\nSubject: nightly\n\
                 Date: Thu, 3 Dec 2026 12:00:00 +0000\nMessage-ID: <nightly@mx.test>\n\n\
                 all good\n..\n";
    let mut sendmail = support::tinymta_command();
    sendmail.args([
        "sendmail",
        "-C",
        config,
        "-f",
        "cron@mx.test",
        "ops@far.test",
    ]);
    let (code, out, err) = support::run_with_input(sendmail, input.as_bytes());
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    let id = server.first_queue_id();
    let refused = format!("4.4.1 connect to smarthost.test[{SMARTHOST_IP}]:{port}: ");
    server.wait_for_envelope_containing(&id, &format!("error: {refused}"));
    // Queued as given (sendmail adds only its trace line, the message
    // already has From:, Date: and Message-ID:), with CRLF line ends; the
    // lone `..` is a line of two dots (no -i: only a lone `.` ends input).
    let (stored, _) = server.stored(&id);
    let queued = format!(
        "Received: by mx.test (tinymta, from userid {})\r\n\tid {id}; {{date}}\r\n{}",
        tinymta::sys::real_uid(),
        input.replace('\n', "\r\n")
    );
    assert!(
        is_with_date_since(&stored, &queued, before_sendmail),
        "{}",
        String::from_utf8_lossy(&stored)
    );

    // mailq lists it with the reason it waits.
    let (code, out, err) = support::run_tinymta(&["mailq", "-C", config]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let out = errno_words_left_out(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0],
        "Queue ID            Size    Age     Sender / recipients"
    );
    let age = lines[1]
        .strip_prefix(&format!("{id:<19} {:<7} ", stored.len()))
        .and_then(|rest| rest.strip_suffix(" <cron@mx.test>"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        age.trim_end()
            .strip_suffix('s')
            .is_some_and(|secs| secs.parse::<u64>().is_ok()),
        "{out}"
    );
    // ECONNREFUSED is 111, but 146 on MIPS; retry_min = 1h (the test
    // default): the next attempt is an hour after the first, less the
    // seconds gone since.
    let recipient = format!(
        "{}<ops@far.test> queued, 1 attempt: {refused}",
        " ".repeat(36)
    );
    let expected: Vec<String> = ["111", "146"]
        .iter()
        .flat_map(|errno| {
            ["1h", "59m"]
                .map(|wait| format!("{recipient}(os error {errno}) (next attempt in {wait})"))
        })
        .collect();
    assert!(expected.contains(&lines[2].to_string()), "{out}");
    assert_eq!(lines[3], "-- 1 message in the queue");

    // SMTP, for a local user: into the Maildir.
    let before_smtp = unix_now();
    let mut client = server.greeted();
    let local_id = client.send_message(
        "a@mx.test",
        &["ops@mx.test"],
        b"Subject: by SMTP\r\n\r\n..dot\r\nline\r\n.\r\n",
    );
    assert_eq!(client.command("QUIT"), "221 2.0.0 Bye\r\n");
    let mail = server.wait_for_mail("ops", 1);
    let delivered = format!(
        "Return-Path: <a@mx.test>\nDelivered-To: ops@mx.test\n\
         Received: from client.test ([127.0.0.1])\n\tby mx.test (tinymta) with ESMTP id {local_id}\n\
         \tfor <ops@mx.test>;\n\t{{date}}\nSubject: by SMTP\n\n.dot\nline\n"
    );
    assert!(
        is_with_date_since(&mail[0], &delivered, before_smtp),
        "{}",
        String::from_utf8_lossy(&mail[0])
    );

    // The smarthost comes up; SIGUSR1 runs the queue without waiting the
    // hour: the message goes over STARTTLS, after AUTH as box.
    let mut options = ca.server_options();
    options.extend(["--auth".to_string(), "box:s3cret".to_string()]);
    let upstream = Upstream::start(format!("{SMARTHOST_IP}:{port}").parse().unwrap(), &options);
    server.signal(Signal::RunQueue);
    let got = upstream.wait_for(1);
    assert_eq!(got[0].mail_from, "<cron@mx.test>");
    assert_eq!(got[0].rcpt_to, ["<ops@far.test>"]);
    assert_eq!(
        (got[0].tls.as_str(), got[0].auth.as_str()),
        ("TLSv1.3", "box")
    );
    // Byte for byte as queued: the `..` line was dot-stuffed on the wire
    // (RFC 5321 4.5.2) and unstuffed by the smarthost.
    assert!(
        got[0].text == stored,
        "{}",
        String::from_utf8_lossy(&got[0].text)
    );
    server.wait_for_empty_queue();
    server.wait_for_log(&format!(
        "{id}: to=<ops@far.test> relay=smarthost.test[{SMARTHOST_IP}]:{port} tls=TLSv1.3 delay="
    ));

    // SIGTERM: exit 0, and the process is gone.
    let pid = server.pid();
    server.signal(Signal::Terminate);
    assert_eq!(server.wait_for_exit(support::WAIT), Some(0));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(server.log().ends_with(" stopped\n"), "{}", server.log());
}
