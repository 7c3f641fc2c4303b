//! The sendmail entry point, aliases, mailq and flush, as alert tools and
//! admins use them.

mod support;

use std::path::Path;

use support::peers::{free_port_on, SmtpSink};
use support::{Dnsmasq, Server};

/// Runs `program args` with `input` on stdin: (exit code, stdout, stderr).
fn run(program: &Path, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let mut command = support::tinymta_command_for(program);
    command.args(args);
    support::run_with_input(command, input)
}

/// `tinymta sendmail -C <server's config> args...`
fn sendmail(server: &Server, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    let config = server.config_path();
    let mut all = vec!["sendmail", "-C", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&support::binary(), &all, input)
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn queued_while_the_daemon_is_stopped_with_the_missing_headers_added() {
    let mut server = Server::start("qualify_domain = box.lan\nlocal_domains = mx.test, box.lan");
    server.kill();
    let (code, out, err) = sendmail(
        &server,
        &["-oi", "root"],
        b"Subject: disk 91% full\n\n/dev/sda1 is nearly full\n.\nthe dot above stays\n",
    );
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    let files = server.queue_files();
    assert_eq!(files.len(), 1, "one entry queued: {files:?}");
    let (_, envelope) = server.stored(files[0].strip_suffix(".msg").unwrap());
    assert!(
        envelope.contains("\nclient: local\n")
            && envelope.ends_with("\nrecipient: queued attempts=0 next=0 <root@box.lan>\n"),
        "{envelope}"
    );
    server.restart();
    let mail = server.wait_for_mail("root", 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(text.starts_with("Return-Path: <root@box.lan>\nDelivered-To: root@box.lan\nReceived: by mx.test (tinymta, from userid "), "{text}");
    assert_eq!(header(&text, "From"), Some("root@box.lan"));
    assert!(
        header(&text, "Date").is_some_and(|d| d.ends_with(" +0000")),
        "{text}"
    );
    assert!(
        header(&text, "Message-ID").is_some_and(|m| m.ends_with("@mx.test>")),
        "{text}"
    );
    assert!(
        text.ends_with("\n\n/dev/sda1 is nearly full\n.\nthe dot above stays\n"),
        "{text}"
    );
}

#[test]
fn recipients_from_the_headers_and_bcc_removed() {
    let server = Server::start("");
    let (code, _, err) = sendmail(
        &server,
        &["-t", "-f", "cron@mx.test", "-F", "Cron Daemon", "extra"],
        b"To: Alice <alice@mx.test>\nCc: bob@mx.test, \"Carol C.\" <carol@mx.test>\nBcc: hidden@mx.test\n\
          Subject: nightly\n\nall good\n.\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    for user in ["alice", "bob", "carol", "hidden", "extra"] {
        let mail = server.wait_for_mail(user, 1);
        let text = String::from_utf8_lossy(&mail[0]).into_owned();
        assert!(text.starts_with("Return-Path: <cron@mx.test>\n"), "{text}");
        assert_eq!(
            header(&text, "Bcc"),
            None,
            "Bcc: is not shown to {user}:\n{text}"
        );
        if user != "hidden" {
            assert!(!text.contains("hidden@"), "{text}");
        }
        assert_eq!(header(&text, "From"), Some("Cron Daemon <cron@mx.test>"));
        // The lone dot ended the message (no -i).
        assert!(text.ends_with("\n\nall good\n"), "{text}");
    }
}

#[test]
fn a_running_daemon_delivers_what_sendmail_queued() {
    let server = Server::start("");
    // Called through a symlink named sendmail, as /usr/sbin/sendmail is.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(support::binary(), &link).unwrap();
    let config = server.config_path();
    let (code, _, err) = run(
        &link,
        &["-C", config.to_str().unwrap(), "ops@mx.test"],
        b"Subject: hello\n\nfrom a script\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let mail = server.wait_for_mail("ops", 1);
    assert!(String::from_utf8_lossy(&mail[0]).ends_with("from a script\n"));
    server.wait_for_empty_queue();
}

#[test]
fn masquerading_and_a_forced_sender() {
    let server = Server::start(
        "qualify_domain = router.lan\nlocal_domains = mx.test, router.lan\nmasquerade_domain = example.org",
    );
    let (code, _, _) = sendmail(
        &server,
        &["-f", "watchdog", "ops@mx.test"],
        b"From: watchdog@router.lan (Watchdog)\nSubject: reboot\n\nrebooted\n",
    );
    assert_eq!(code, Some(0));
    let text = String::from_utf8_lossy(&server.wait_for_mail("ops", 1)[0]).into_owned();
    assert!(
        text.starts_with("Return-Path: <watchdog@example.org>\n"),
        "{text}"
    );
    assert_eq!(
        header(&text, "From"),
        Some("watchdog@example.org (Watchdog)")
    );
    // force_sender, the old name of send_as, applies to mail that leaves
    // the box (tests/send_as.rs): a local mailbox keeps the real sender.
    let forced = Server::start("force_sender = alerts@example.org");
    let (code, _, _) = sendmail(
        &forced,
        &["-f", "someone@else.test", "ops@mx.test"],
        b"Subject: x\n\ny\n",
    );
    assert_eq!(code, Some(0));
    let text = String::from_utf8_lossy(&forced.wait_for_mail("ops", 1)[0]).into_owned();
    assert!(
        text.starts_with("Return-Path: <someone@else.test>\n"),
        "{text}"
    );
}

#[test]
fn aliases_reach_a_real_mailbox_through_loops_and_the_catch_all() {
    let port = free_port_on("127.0.0.17");
    let dns = Dnsmasq::start(&["--host-record=alerts.test,127.0.0.17"]);
    let sink = SmtpSink::start(format!("127.0.0.17:{port}").parse().unwrap(), &[]);
    let dir = support::test_dir();
    let aliases = dir.path().join("aliases");
    std::fs::write(
        &aliases,
        "# who reads what\nroot: admin,\n  ops@alerts.test\nadmin: admin, root\npostmaster: root\n*: catchall\n",
    )
    .unwrap();
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\naliases = {}",
        dns.config_line(),
        aliases.display()
    ));
    let (code, _, err) = sendmail(&server, &["root"], b"Subject: smartd\n\nsda failing\n");
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_to, ["<ops@alerts.test>"]);
    server.wait_for_mail("admin", 1);
    // SMTP mail to a local name goes through the same table.
    server.greeted().send_message(
        "a@far.test",
        &["nosuchuser@mx.test"],
        b"Subject: who\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_mail("catchall", 1);
    server.wait_for_empty_queue();
    assert_eq!(server.mail_count("root"), 0);
    // A broken aliases file is a config error with its line.
    std::fs::write(&aliases, "root: ops@alerts.test\nthis is not an alias\n").unwrap();
    let (code, _, err) =
        support::run_tinymta(&["-t", "-c", server.config_path().to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "aliases: {}:2: expected `name: target, ...`",
            aliases.display()
        )),
        "{err}"
    );
}

#[test]
fn mailq_shows_a_deferred_message_and_flush_sends_it() {
    let port = free_port_on("127.0.0.18");
    let dns = Dnsmasq::start(&["--host-record=later.test,127.0.0.18"]);
    let dir = support::test_dir();
    let pid_file = dir.path().join("tinymta.pid");
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\npid_file = {}",
        dns.config_line(),
        pid_file.display()
    ));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", server.pid())
    );
    let (code, _, _) = sendmail(
        &server,
        &["-f", "cron@mx.test", "ops@later.test"],
        b"Subject: later\n\nx\n",
    );
    assert_eq!(code, Some(0));
    let id = server.first_queue_id();
    server.wait_for_envelope_containing(&id, "recipient: queued attempts=1");
    let config = server.config_path();
    let (code, out, _) = run(
        &support::binary(),
        &["mailq", "-C", config.to_str().unwrap()],
        b"",
    );
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Queue ID            Size    Age     Sender / recipients"
    );
    assert!(lines[1].starts_with(&format!("{id:<19} ")), "{out}");
    assert!(lines[1].ends_with(" <cron@mx.test>"), "{out}");
    assert!(
        lines[2].trim_start().starts_with(&format!(
            "<ops@later.test> queued, 1 attempt: 4.4.1 connect to later.test[127.0.0.18]:{port}: "
        )),
        "{out}"
    );
    assert_eq!(lines[3], "-- 1 message in the queue");
    // The same as `mailq`, a link to the binary; -C still names the config.
    let link_dir = tempfile::tempdir().unwrap();
    let mailq = link_dir.path().join("mailq");
    std::os::unix::fs::symlink(support::binary(), &mailq).unwrap();
    let (code, linked, _) = run(&mailq, &["-C", config.to_str().unwrap()], b"");
    assert_eq!((code, linked.lines().count()), (Some(0), 4));
    assert_eq!(linked.lines().nth(2), lines.get(2).copied());
    // The upstream comes back; flush instead of waiting an hour.
    let sink = SmtpSink::start(format!("127.0.0.18:{port}").parse().unwrap(), &[]);
    let (code, out, err) = run(
        &support::binary(),
        &["flush", "-C", config.to_str().unwrap()],
        b"",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        out,
        format!(
            "tinymta flush: asked the daemon (pid {}) to try every queued message now\n",
            server.pid()
        )
    );
    sink.wait_for(1);
    server.wait_for_empty_queue();
    let (_, out, _) = sendmail(&server, &["-bp"], b"");
    assert_eq!(out, "Mail queue is empty\n");
}

#[test]
fn bad_command_lines_get_sendmail_exit_codes() {
    let server = Server::start("");
    let (code, _, err) = sendmail(&server, &["-Z", "root"], b"x\n");
    assert_eq!(
        (code, err.as_str()),
        (Some(64), "sendmail: unknown option -Z\n")
    );
    let (code, _, err) = sendmail(&server, &[], b"Subject: x\n\ny\n");
    assert_eq!(
        (code, err.as_str()),
        (Some(64), "sendmail: no recipients given\n")
    );
    let (code, _, err) = sendmail(&server, &["bad address@"], b"Subject: x\n\ny\n");
    assert_eq!(code, Some(67), "{err}");
    let (code, _, err) = run(
        &support::binary(),
        &["sendmail", "-C", "/nonexistent.conf", "root"],
        b"",
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(server.queue_files().is_empty());
}

#[test]
fn no_command_line_panics() {
    use std::os::unix::ffi::OsStrExt;
    // Issue 12, item 9a: `-é` was cut through its é (exit 101).
    let server = Server::start("");
    let (code, _, err) = sendmail(&server, &["-é", "root"], b"x\n");
    assert_eq!(
        (code, err.as_str()),
        (Some(64), "sendmail: unknown option -é\n")
    );
    // An argument that is not UTF-8, in each mode.
    let not_utf8 = std::ffi::OsStr::from_bytes(b"-\xff");
    for mode in [&["sendmail"][..], &["passwd"], &["test-send"], &[]] {
        let mut command = support::tinymta_command();
        command.args(mode).arg(not_utf8);
        let (code, _, err) = support::run_with_input(command, b"");
        assert_eq!(
            (code, err.as_str()),
            (Some(64), "tinymta: argument \"-\\xFF\" is not UTF-8\n"),
            "{mode:?}"
        );
    }
    assert!(server.queue_files().is_empty());
}

#[test]
fn test_send_shows_each_step_of_a_delivery() {
    use support::peers::{TestCa, Upstream};
    let port = free_port_on("127.0.0.19");
    let ca = TestCa::new(&["smarthost.test"]);
    let mut options = ca.server_options();
    options.extend(["--auth".to_string(), "box:s3cret".to_string()]);
    let upstream = Upstream::start(format!("127.0.0.19:{port}").parse().unwrap(), &options);
    let dir = support::test_dir();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.19 smarthost.test\n").unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let server = Server::start(&format!(
        "smarthost = smarthost.test:{port}\nhosts_file = {}\ntls_ca_file = {}\n\
         smarthost_user = box\nsmarthost_password_file = {}",
        hosts.display(),
        ca.ca().display(),
        password.display()
    ));
    let config = server.config_path();
    let (code, out, err) = run(
        &support::binary(),
        &["test-send", "-C", config.to_str().unwrap(), "ops@far.test"],
        b"",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    let expected_in_order = [
        format!("route: smarthost smarthost.test:{port}"),
        "DNS: smarthost.test has [127.0.0.19]".to_string(),
        format!("  smarthost.test[127.0.0.19]:{port} <- STARTTLS"),
        format!("  smarthost.test[127.0.0.19]:{port} <- AUTH PLAIN <secret>"),
        format!("  smarthost.test[127.0.0.19]:{port} -> 235 2.7.0 Authentication successful"),
        format!(
            "  connected to smarthost.test[127.0.0.19]:{port} (TLS: TLSv1.3, certificate {} \
             verified for smarthost.test)",
            ca.fingerprint()
        ),
        format!("  smarthost.test[127.0.0.19]:{port} <- RCPT TO:<ops@far.test>"),
        "result: delivered (250 2.0.0 stored)".to_string(),
    ];
    support::assert_in_order(&out, &expected_in_order);
    assert!(!out.contains("s3cret"), "{out}");
    let got = upstream.wait_for(1);
    assert_eq!(got[0].auth, "box");
    // The live queue was not used.
    assert!(server.queue_files().is_empty());
}

#[test]
fn sendmail_bs_speaks_smtp_on_standard_input_and_output() {
    let server = Server::start("relay_networks = 10.0.0.0/8");
    let (code, out, err) = sendmail(
        &server,
        &["-bs"],
        b"EHLO script.test\r\nMAIL FROM:<cron@mx.test>\r\nRCPT TO:<root@mx.test>\r\n\
          RCPT TO:<ops@far.test>\r\nDATA\r\nSubject: via -bs\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[0], "220 mx.test ESMTP");
    assert_eq!(lines[1], "250-mx.test");
    let rest: Vec<&str> = lines
        .iter()
        .skip(1)
        .skip_while(|l| l.starts_with("250-"))
        .copied()
        .collect();
    assert_eq!(rest[0], "250 ENHANCEDSTATUSCODES");
    assert_eq!(
        &rest[1..5],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>"
        ]
    );
    assert!(rest[5].starts_with("250 2.0.0 Ok: queued as "), "{out}");
    assert_eq!(rest[6], "221 2.0.0 Bye");
    // The running daemon picks it up; far.test may be relayed from the box.
    let mail = server.wait_for_mail("root", 1);
    assert!(String::from_utf8_lossy(&mail[0]).ends_with("Subject: via -bs\n\n.dot\n"));
}
