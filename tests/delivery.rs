//! Delivery onward, against real servers on loopback: dnsmasq for DNS,
//! Postfix's smtp-sink, aiosmtpd (STARTTLS, implicit TLS, AUTH) and a second
//! tinymta as upstream servers.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use support::peers::{free_port_on, SelfSigned, SmtpSink, TestCa, Upstream};
use support::{Dnsmasq, Server};
use tinymta::time::{rfc5322_date, unix_now};

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// A port free on every loopback address a test uses.
fn shared_port(ips: &[&str]) -> u16 {
    loop {
        let port = free_port_on(ips[0]);
        if ips
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
}

/// A tinymta that sends by MX through `dns`, to port `mx_port`, retrying fast.
fn mx_server(dns: &Dnsmasq, mx_port: u16, extra: &str) -> Server {
    Server::start(&format!(
        "{}\nmx_port = {mx_port}\nretry_min = 1s\nretry_max = 2s\n{extra}",
        dns.config_line()
    ))
}

/// The message text after tinymta's own Received: header (LF line ends,
/// as the upstream servers store it).
fn after_our_received(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text).replace("\r\n", "\n");
    let start = text
        .find("Received: from client.test")
        .expect("our Received: header");
    let end = text[start..].find("+0000\n").expect("its date") + start + "+0000\n".len();
    text[end..].to_string()
}

#[test]
fn mx_preference_order_and_fallback_to_the_second_mx() {
    let port = shared_port(&["127.0.0.1", "127.0.0.2"]);
    let dns = Dnsmasq::start(&[
        "--mx-host=two.test,mx1.two.test,10",
        "--mx-host=two.test,mx2.two.test,20",
        "--host-record=mx1.two.test,127.0.0.1",
        "--host-record=mx2.two.test,127.0.0.2",
    ]);
    let server = mx_server(&dns, port, "");
    // The first MX is down: the second takes the message.
    let mx2 = SmtpSink::start(addr("127.0.0.2", port), &[]);
    let mut c = server.greeted();
    let id = c.send_message(
        "alice@mx.test",
        &["bob@two.test"],
        b"Subject: first\r\n\r\n..dot line\r\nbody\r\n.\r\n",
    );
    let got = mx2.wait_for(1);
    assert_eq!(got[0].mail_from, "<alice@mx.test>");
    assert_eq!(got[0].rcpt_to, ["<bob@two.test>"]);
    assert_eq!(
        after_our_received(&got[0].text),
        "Subject: first\n\n.dot line\nbody\n"
    );
    server.wait_for_empty_queue();
    let log = server.log();
    assert!(
        log.contains(&format!(
            "{id}: to=<bob@two.test> relay=mx2.two.test[127.0.0.2]:{port} tls=no delay="
        )),
        "{log}"
    );
    // A first MX that answers 421 to MAIL: the second takes the message.
    let busy = SmtpSink::start(addr("127.0.0.1", port), &["-Q", "MAIL"]);
    c.send_message(
        "alice@mx.test",
        &["bob@two.test"],
        b"Subject: busy\r\n\r\nx\r\n.\r\n",
    );
    let got = mx2.wait_for(2);
    assert!(got
        .iter()
        .any(|m| after_our_received(&m.text).starts_with("Subject: busy\n")));
    server.wait_for_empty_queue();
    busy.stop();
    // With both up, the preferred one gets the next message.
    let mx1 = SmtpSink::start(addr("127.0.0.1", port), &[]);
    c.send_message(
        "alice@mx.test",
        &["bob@two.test"],
        b"Subject: second\r\n\r\nx\r\n.\r\n",
    );
    let got = mx1.wait_for(1);
    assert!(after_our_received(&got[0].text).starts_with("Subject: second\n"));
    server.wait_for_empty_queue();
    assert_eq!(mx2.messages().len(), 2);
}

#[test]
fn a_domain_with_only_an_a_record_and_a_server_without_ehlo() {
    let port = free_port_on("127.0.0.3");
    let dns = Dnsmasq::start(&["--host-record=aonly.test,127.0.0.3"]);
    let server = mx_server(&dns, port, "");
    // -e: the server answers EHLO with 500; tinymta says HELO instead.
    let sink = SmtpSink::start(addr("127.0.0.3", port), &["-e"]);
    server.greeted().send_message(
        "a@mx.test",
        &["ops@aonly.test"],
        b"Subject: a\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(sink.wait_for(1)[0].rcpt_to, ["<ops@aonly.test>"]);
    server.wait_for_empty_queue();
}

#[test]
fn null_mx_and_nxdomain_bounce_once_to_the_local_sender() {
    let dns = Dnsmasq::start(&["--dns-rr=nullmx.test,15,000000"]);
    let server = mx_server(&dns, free_port_on("127.0.0.1"), "");
    let mut c = server.greeted();
    let id = c.send_message(
        "alice@mx.test",
        &["x@nullmx.test", "y@nx.test"],
        b"Subject: doomed\r\nMessage-ID: <doomed@client.test>\r\n\r\nsecret\r\n.\r\n",
    );
    let bounce = server.wait_for_mail("alice", 1);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.starts_with("Return-Path: <>\nDelivered-To: alice@mx.test\n"),
        "{text}"
    );
    assert!(text.contains("\nFrom: Mail Delivery System <MAILER-DAEMON@mx.test>\n"));
    assert!(text.contains("\nContent-Type: multipart/report; report-type=delivery-status;\n"));
    assert!(text.contains(&format!("\nX-Tinymta-Queue-ID: {id}\n")));
    assert!(text.contains(
        "\nFinal-Recipient: rfc822; x@nullmx.test\nAction: failed\nStatus: 5.1.10\n\
         Diagnostic-Code: X-tinymta; 5.1.10 domain nullmx.test accepts no mail (null MX, RFC 7505)\n"
    ));
    assert!(text.contains(
        "\nFinal-Recipient: rfc822; y@nx.test\nAction: failed\nStatus: 5.1.2\n\
         Diagnostic-Code: X-tinymta; 5.1.2 domain nx.test not found (NXDOMAIN)\n"
    ));
    assert!(text.contains("\nContent-Type: text/rfc822-headers\n\nReceived: from client.test"));
    assert!(text.contains("\nMessage-ID: <doomed@client.test>\n"));
    assert!(!text.contains("secret"));
    server.wait_for_empty_queue();
    // One bounce for the two recipients, and no more later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.mail_count("alice"), 1);
}

#[test]
fn a_null_sender_is_never_bounced() {
    let dns = Dnsmasq::start(&[]);
    let server = mx_server(&dns, free_port_on("127.0.0.1"), "");
    let id = server.greeted().send_message(
        "",
        &["y@nx.test"],
        b"Subject: bounce of a bounce\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_empty_queue();
    assert!(server.log().contains(&format!(
        "{id}: undeliverable bounce (null sender), dropped"
    )));
    assert!(!server.mailboxes().exists() || support::list_dir(&server.mailboxes()).is_empty());
}

#[test]
fn a_4xx_upstream_that_later_accepts_gets_the_message_exactly_once() {
    let port = free_port_on("127.0.0.5");
    let dns = Dnsmasq::start(&["--host-record=soft.test,127.0.0.5"]);
    let server = mx_server(&dns, port, "");
    let refusing = SmtpSink::start(addr("127.0.0.5", port), &["-r", "RCPT"]);
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@soft.test"],
        b"Subject: retry me\r\n\r\nx\r\n.\r\n",
    );
    let envelope = server.wait_for_envelope_containing(&id, "error: soft.test[127.0.0.5]:");
    assert!(
        envelope.contains("recipient: queued attempts="),
        "{envelope}"
    );
    assert!(envelope.contains(" said: 450 4.3.0"), "{envelope}");
    assert!(refusing.messages().is_empty());
    refusing.stop();
    let accepting = SmtpSink::start(addr("127.0.0.5", port), &[]);
    accepting.wait_for(1);
    server.wait_for_empty_queue();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(accepting.messages().len(), 1);
    assert!(server.log().contains(&format!(
        "{id}: to=<ops@soft.test> relay=soft.test[127.0.0.5]"
    )));
}

#[test]
fn a_5xx_for_one_of_two_recipients_bounces_only_that_one() {
    // The upstream is a second tinymta, authoritative for b.test, which
    // refuses a mailbox name it cannot store.
    let upstream = Server::start_at(
        "127.0.0.4",
        "hostname = mx.b.test\nlocal_domains = b.test\nrelay_networks = 10.0.0.0/8",
    );
    let dns = Dnsmasq::start(&[
        "--mx-host=b.test,mx.b.test,10",
        "--host-record=mx.b.test,127.0.0.4",
    ]);
    let server = mx_server(&dns, upstream.port, "");
    server.greeted().send_message(
        "alice@mx.test",
        &["good@b.test", "\"bad/name\"@b.test"],
        b"Subject: half\r\n\r\nbody\r\n.\r\n",
    );
    let good = upstream.wait_for_mail("good", 1);
    assert!(String::from_utf8_lossy(&good[0]).contains("\nSubject: half\n\nbody\n"));
    let bounce = server.wait_for_mail("alice", 1);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.contains(
        "\nFinal-Recipient: rfc822; \"bad/name\"@b.test\nAction: failed\nStatus: 5.1.3\n\
         Remote-MTA: dns; mx.b.test\nDiagnostic-Code: smtp; 550 5.1.3 Error: invalid mailbox name\n"
    ),
        "{text}"
    );
    assert!(!text.contains("Final-Recipient: rfc822; good@b.test"));
    server.wait_for_empty_queue();
    assert_eq!(upstream.mail_count("good"), 1);
}

#[test]
fn killing_tinymta_mid_queue_delivers_everything_exactly_once() {
    let port = free_port_on("127.0.0.6");
    // Each RCPT waits a second: a kill then falls before the upstream has
    // accepted anything of the message in hand.
    let upstream = Upstream::start(
        addr("127.0.0.6", port),
        &["--rcpt-delay".into(), "1".into()],
    );
    let mut server = Server::start(&format!(
        "smarthost = 127.0.0.6:{port}\nsmarthost_tls = none\ndelivery_workers = 1\n\
         retry_min = 1s\nretry_max = 1s"
    ));
    let mut c = server.greeted();
    for n in 0..6 {
        c.send_message(
            "a@mx.test",
            &["ops@far.test"],
            format!("Subject: m{n}\r\n\r\nx\r\n.\r\n").as_bytes(),
        );
    }
    upstream.wait_for(2);
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    let before = upstream.messages().len();
    assert!(before < 6, "all delivered before the kill");
    server.restart();
    let got = upstream.wait_for(6);
    let mut subjects: Vec<String> = got
        .iter()
        .map(|m| {
            String::from_utf8_lossy(&m.text)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap()
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    server.wait_for_empty_queue();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(upstream.messages().len(), 6);
}

#[test]
fn starttls_to_a_smarthost_with_a_private_ca_and_a_name_mismatch() {
    let port = free_port_on("127.0.0.7");
    let ca = TestCa::new(&["smarthost.test"]);
    let upstream = Upstream::start(addr("127.0.0.7", port), &ca.server_options());
    let hosts = tempfile::NamedTempFile::new().unwrap();
    fs::write(hosts.path(), "127.0.0.7 smarthost.test wrong.test\n").unwrap();
    let base = format!(
        "hosts_file = {}\ntls_ca_file = {}\nretry_min = 1s\nretry_max = 1s",
        hosts.path().display(),
        ca.ca().display()
    );
    let server = Server::start(&format!("smarthost = smarthost.test:{port}\n{base}"));
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: tls\r\n\r\nx\r\n.\r\n",
    );
    let got = upstream.wait_for(1);
    assert_eq!(got[0].tls, "TLSv1.3");
    server.wait_for_empty_queue();
    assert!(server.log().contains(&format!(
        "{id}: to=<ops@far.test> relay=smarthost.test[127.0.0.7]:{port} tls=TLSv1.3 delay="
    )));
    // The same server under a name its certificate does not carry.
    let wrong = Server::start(&format!("smarthost = wrong.test:{port}\n{base}"));
    let id = wrong.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: mitm\r\n\r\nx\r\n.\r\n",
    );
    let refusal = format!(
        "TLS handshake failed: the certificate of wrong.test ({}) is for smarthost.test, \
         not wrong.test: set smarthost to one of them",
        ca.fingerprint()
    );
    wrong.wait_for_envelope_containing(&id, &format!("error: 4.4.1 {refusal}\n"));
    wrong.wait_for_log(&format!("wrong.test[127.0.0.7]:{port}: {refusal}\n"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        upstream.messages().len(),
        1,
        "nothing is sent without a valid certificate"
    );
    assert_eq!(wrong.queue_files().len(), 2);
}

#[test]
fn auth_plain_and_login_to_a_smarthost_that_requires_them() {
    let ca = TestCa::new(&["smarthost.test"]);
    let hosts = tempfile::NamedTempFile::new().unwrap();
    fs::write(hosts.path(), "127.0.0.8 smarthost.test\n").unwrap();
    let password = tempfile::NamedTempFile::new().unwrap();
    fs::write(password.path(), "s3cret\n").unwrap();
    // An aiosmtpd with STARTTLS that wants `credentials`, and a tinymta that
    // has sent it one message as user box.
    let attempt = |credentials: &str, login_only: bool| {
        let port = free_port_on("127.0.0.8");
        let mut options = ca.server_options();
        options.extend(["--auth".to_string(), credentials.to_string()]);
        if login_only {
            options.push("--no-plain".to_string());
        }
        let upstream = Upstream::start(addr("127.0.0.8", port), &options);
        let server = Server::start(&format!(
            "smarthost = smarthost.test:{port}\nhosts_file = {}\ntls_ca_file = {}\n\
             smarthost_user = box\nsmarthost_password_file = {}",
            hosts.path().display(),
            ca.ca().display(),
            password.path().display()
        ));
        let id = server.greeted().send_message(
            "a@mx.test",
            &["ops@far.test"],
            b"Subject: auth\r\n\r\nx\r\n.\r\n",
        );
        (upstream, server, id)
    };
    for login_only in [false, true] {
        let (upstream, server, _) = attempt("box:s3cret", login_only);
        let got = upstream.wait_for(1);
        assert_eq!(
            (got[0].auth.as_str(), got[0].tls.as_str()),
            ("box", "TLSv1.3")
        );
        server.wait_for_empty_queue();
        assert!(!server.log().contains("s3cret"));
    }
    // A wrong password defers: the message is not bounced for it. The
    // reason says whose password, where it comes from, and Gmail's rule.
    let (upstream, server, id) = attempt("box:other", false);
    let envelope = server.wait_for_envelope_containing(
        &id,
        "error: 4.4.1 AUTH: the server refused user \"box\" with the password of \
         smarthost_password_file (535 5.7.8 Authentication credentials invalid): put the \
         right password in that file, which tinymta reads at start-up and on SIGHUP (reload \
         it after a change); Gmail and other providers with two-step verification want an \
         app password there, not the account's\n",
    );
    assert!(
        envelope.contains("recipient: queued attempts=1"),
        "{envelope}"
    );
    assert!(upstream.messages().is_empty());
}

#[test]
fn implicit_tls_to_a_smarthost() {
    let port = free_port_on("127.0.0.9");
    support::peers::implicit_tls_smarthost_takes_a_message(
        "127.0.0.9",
        port,
        "smarthost_tls = tls",
    );
}

#[test]
fn opportunistic_starttls_to_mx_falls_back_to_clear_text() {
    let ca = TestCa::new(&["mx.tls.test"]);
    // An MX with a certificate nobody vouches for: encrypted all the same.
    let port = free_port_on("127.0.0.10");
    let dns = Dnsmasq::start(&["--host-record=tls.test,127.0.0.10"]);
    let upstream = Upstream::start(addr("127.0.0.10", port), &ca.server_options());
    let server = mx_server(&dns, port, "");
    server.greeted().send_message(
        "a@mx.test",
        &["ops@tls.test"],
        b"Subject: may\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(upstream.wait_for(1)[0].tls, "TLSv1.3");
    server.wait_for_empty_queue();
    drop(upstream);
    // An MX whose TLS cannot be agreed on: the handshake fails, clear text follows.
    let mut options = ca.server_options();
    options.extend(["--max-tls".to_string(), "TLSv1_1".to_string()]);
    let old = Upstream::start(addr("127.0.0.10", port), &options);
    server.greeted().send_message(
        "a@mx.test",
        &["ops@tls.test"],
        b"Subject: old\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(old.wait_for(1)[0].tls, "none");
    server.wait_for_empty_queue();
    assert!(
        server.log().contains("sending in clear text"),
        "{}",
        server.log()
    );
}

#[test]
fn mx_tls_require_refuses_clear_text() {
    let port = free_port_on("127.0.0.11");
    let dns = Dnsmasq::start(&["--host-record=plain.test,127.0.0.11"]);
    let sink = SmtpSink::start(addr("127.0.0.11", port), &[]);
    let server = mx_server(&dns, port, "mx_tls = require");
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@plain.test"],
        b"Subject: must\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_envelope_containing(&id, "STARTTLS required but not offered");
    assert!(sink.messages().is_empty());
}

#[test]
fn expired_messages_bounce_with_4_4_7() {
    let port = free_port_on("127.0.0.12");
    let dns = Dnsmasq::start(&["--host-record=slow.test,127.0.0.12"]);
    let _refusing = SmtpSink::start(addr("127.0.0.12", port), &["-r", "RCPT"]);
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\nretry_min = 1s\nretry_max = 1s\nqueue_lifetime = 2s",
        dns.config_line()
    ));
    server.greeted().send_message(
        "alice@mx.test",
        &["ops@slow.test"],
        b"Subject: late\r\n\r\nx\r\n.\r\n",
    );
    let bounce = server.wait_for_mail("alice", 1);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.contains("\nFinal-Recipient: rfc822; ops@slow.test\nAction: failed\nStatus: 4.4.7\n"),
        "{text}"
    );
    assert!(
        text.contains("message expired after 3 attempts; last error: slow.test[127.0.0.12]"),
        "{text}"
    );
    server.wait_for_empty_queue();
}

#[test]
fn a_message_over_the_upstream_size_limit_bounces_without_being_sent() {
    let upstream = Server::start_at(
        "127.0.0.13",
        "hostname = mx.small.test\nlocal_domains = small.test\nmax_message_size = 1k",
    );
    let dns = Dnsmasq::start(&["--host-record=small.test,127.0.0.13"]);
    let server = mx_server(&dns, upstream.port, "");
    // About 1.2 KiB: more than the upstream's SIZE 1024.
    let body = format!("Subject: big\r\n\r\n{}.\r\n", "y\r\n".repeat(400));
    server
        .greeted()
        .send_message("alice@mx.test", &["ops@small.test"], body.as_bytes());
    let bounce = server.wait_for_mail("alice", 1);
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.contains("\nFinal-Recipient: rfc822; ops@small.test\nAction: failed\nStatus: 5.3.4\n"),
        "{text}"
    );
    assert!(
        text.contains("exceeds the server's limit of 1024"),
        "{text}"
    );
    assert_eq!(upstream.mail_count("ops"), 0);
    // The upstream never saw a MAIL command for it.
    assert!(!upstream.log().contains("accepted from="));
}

#[test]
fn auth_is_never_sent_in_clear_text() {
    // A smarthost that wants AUTH but offers no STARTTLS.
    let port = free_port_on("127.0.0.14");
    let upstream = Upstream::start(
        addr("127.0.0.14", port),
        &["--auth".to_string(), "box:s3cret".to_string()],
    );
    let password = tempfile::NamedTempFile::new().unwrap();
    fs::write(password.path(), "s3cret\n").unwrap();
    // Readable by everyone: tinymta says so at start-up.
    let mut mode = fs::metadata(password.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o644);
    fs::set_permissions(password.path(), mode).unwrap();
    let server = Server::start(&format!(
        "smarthost = 127.0.0.14:{port}\nsmarthost_user = box\nsmarthost_password_file = {}",
        password.path().display()
    ));
    assert!(server.log().contains(&format!(
        "smarthost_password_file {} is readable by every user",
        password.path().display()
    )));
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: auth\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_envelope_containing(&id, "STARTTLS required but not offered");
    assert!(upstream.messages().is_empty());
    assert!(!server.log().contains("AUTH PLAIN"));
}

/// A smarthost config for `name` (resolved to `ip` through a hosts file
/// in `dir`) at `port`, with `extra` lines.
fn smarthost_config(dir: &tempfile::TempDir, ip: &str, port: u16, extra: &str) -> String {
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, format!("{ip} smarthost.test wrong.test\n")).unwrap();
    format!(
        "smarthost = smarthost.test:{port}\nhosts_file = {}\nretry_min = 1s\nretry_max = 1s\n{extra}",
        hosts.display()
    )
}

/// `tinymta test-send` with the config of `server` plus `extra` lines:
/// (exit code, standard output).
fn test_send(server: &Server, extra: &str) -> (Option<i32>, String) {
    let config = server
        .dir
        .path()
        .join(format!("test-send-{}.conf", unix_now()));
    let base = fs::read_to_string(server.config_path()).unwrap();
    fs::write(&config, format!("{base}{extra}\n")).unwrap();
    let (code, out, err) =
        support::run_tinymta(&["test-send", "-C", config.to_str().unwrap(), "ops@far.test"]);
    assert_eq!(err, "", "{out}");
    (code, out)
}

#[test]
fn a_self_signed_smarthost_certificate_listed_in_tls_ca_file_is_trusted_for_its_name() {
    let port = free_port_on("127.0.0.40");
    // As a guide would have the smarthost's owner make it: CA:TRUE.
    let cert = SelfSigned::new(&["smarthost.test"]);
    let fp = cert.fingerprint();
    let upstream = Upstream::start(addr("127.0.0.40", port), &cert.server_options());
    let dir = support::test_dir();
    let listed = format!("tls_ca_file = {}", cert.cert().display());
    let server = Server::start(&smarthost_config(&dir, "127.0.0.40", port, &listed));
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: self-signed\r\n\r\n..dot\r\nbody\r\n.\r\n",
    );
    let got = upstream.wait_for(1);
    assert_eq!(got[0].tls, "TLSv1.3");
    assert_eq!(
        after_our_received(&got[0].text),
        "Subject: self-signed\n\n.dot\nbody\n"
    );
    server.wait_for_empty_queue();
    let log = server.log();
    assert!(
        log.contains(&format!(
            "connected to smarthost.test[127.0.0.40]:{port} (TLS: TLSv1.3, certificate {fp} \
             verified for smarthost.test)\n"
        )),
        "{log}"
    );
    assert!(log.contains(&format!(
        "{id}: to=<ops@far.test> relay=smarthost.test[127.0.0.40]:{port} tls=TLSv1.3 delay="
    )));
    // The name still counts: the same server as wrong.test is refused,
    // with the names its certificate holds.
    let (code, out) = test_send(&server, "");
    assert_eq!(code, Some(0), "{out}");
    let wrong_dir = support::test_dir();
    let wrong = Server::start(
        &smarthost_config(&wrong_dir, "127.0.0.40", port, &listed)
            .replace("smarthost = smarthost.test", "smarthost = wrong.test"),
    );
    let (code, out) = test_send(&wrong, "");
    assert_eq!(code, Some(75), "{out}");
    assert!(
        out.ends_with(&format!(
            "result: temporary failure: 4.4.1 TLS handshake failed: the certificate of \
             wrong.test ({fp}) is for smarthost.test, not wrong.test: set smarthost to one of \
             them\n"
        )),
        "{out}"
    );
    // Not listed, it is refused for what it is, with both ways out.
    let unlisted_dir = support::test_dir();
    let unlisted = Server::start(&smarthost_config(&unlisted_dir, "127.0.0.40", port, ""));
    let id = unlisted.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: unlisted\r\n\r\nx\r\n.\r\n",
    );
    let refusal = format!(
        "TLS handshake failed: the certificate of smarthost.test is a CA certificate (CA:TRUE, \
         as `openssl req -x509` makes them) that is not in tls_ca_file: add this very \
         certificate to tls_ca_file, or pin it with smarthost_fingerprint = {fp}"
    );
    unlisted.wait_for_envelope_containing(&id, &format!("error: 4.4.1 {refusal}\n"));
    unlisted.wait_for_log(&format!("smarthost.test[127.0.0.40]:{port}: {refusal}\n"));
    unlisted.wait_for_log(&format!("{id}: to=<ops@far.test> relay=- tls=no delay="));
    // Two by this server (tinymta's and test-send's), none by the others.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(upstream.messages().len(), 2);
}

#[test]
fn smarthost_fingerprint_pins_the_certificate_test_send_shows() {
    let port = free_port_on("127.0.0.41");
    // Signed by a CA tinymta is not told of.
    let ca = TestCa::new(&["smarthost.test"]);
    let fp = ca.fingerprint();
    let upstream = Upstream::start(addr("127.0.0.41", port), &ca.server_options());
    let dir = support::test_dir();
    let server = Server::start(&smarthost_config(&dir, "127.0.0.41", port, ""));
    let (code, out) = test_send(&server, "");
    assert_eq!(code, Some(75), "{out}");
    let refusal = format!(
        "TLS handshake failed: the certificate of smarthost.test is not signed by a CA \
         tinymta trusts: add that CA, or the certificate itself, to tls_ca_file, or pin it \
         with smarthost_fingerprint = {fp}"
    );
    assert!(
        out.contains(&format!("  smarthost.test[127.0.0.41]:{port}: {refusal}\n")),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("result: temporary failure: 4.4.1 {refusal}\n")),
        "{out}"
    );
    assert!(upstream.messages().is_empty());
    // The fingerprint given, as openssl writes it: accepted, name and
    // issuer unasked.
    let (code, out) = test_send(&server, &format!("smarthost_fingerprint = {fp}"));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "  connected to smarthost.test[127.0.0.41]:{port} (TLS: TLSv1.3, certificate {fp} \
             matches smarthost_fingerprint)\n"
        )),
        "{out}"
    );
    assert!(
        out.ends_with("result: delivered (250 2.0.0 stored)\n"),
        "{out}"
    );
    assert_eq!(upstream.wait_for(1)[0].tls, "TLSv1.3");
    // Any other pin, in lower case without colons: nothing else is
    // accepted, the CA's own word included.
    let other = support::peers::openssl_fingerprint(&ca.ca());
    let written = other
        .to_ascii_lowercase()
        .replace(':', "")
        .replacen("sha256", "sha256:", 1);
    let config = format!(
        "smarthost_fingerprint = {written}\ntls_ca_file = {}",
        ca.ca().display()
    );
    let (code, out) = test_send(&server, &config);
    assert_eq!(code, Some(75), "{out}");
    assert!(
        out.ends_with(&format!(
            "result: temporary failure: 4.4.1 TLS handshake failed: the certificate of \
             smarthost.test is {fp}, not smarthost_fingerprint {other}: if the smarthost has a \
             new certificate, set smarthost_fingerprint = {fp}\n"
        )),
        "{out}"
    );
    assert_eq!(upstream.messages().len(), 1);
    // A value of another form is a config error naming file and line.
    let bad = dir.path().join("bad.conf");
    let base = fs::read_to_string(server.config_path()).unwrap();
    fs::write(
        &bad,
        format!("{base}smarthost_fingerprint = sha1:{written}\n"),
    )
    .unwrap();
    let (code, out, err) = support::run_tinymta(&["-t", "-c", bad.to_str().unwrap()]);
    let line = base.lines().count() + 1;
    assert_eq!(
        (code, out.as_str(), err),
        (
            Some(1),
            "",
            format!(
                "tinymta: {}:{line}: smarthost_fingerprint: expected sha256: and 64 hex digits, \
                 found \"sha1:{written}\"\n",
                bad.display()
            )
        )
    );
}

/// test-send through a smarthost at `ip` (aiosmtpd with `options`) with
/// `extra` config lines, which must fail for now (exit 75, nothing
/// arrives): (the smarthost's port, test-send's output, the clock before
/// it ran).
fn test_send_fails(ip: &str, options: &[String], extra: &str) -> (u16, String, u64) {
    let port = free_port_on(ip);
    let upstream = Upstream::start(addr(ip, port), options);
    let dir = support::test_dir();
    let server = Server::start(&smarthost_config(&dir, ip, port, extra));
    let before = unix_now();
    let (code, out) = test_send(&server, "");
    assert_eq!(code, Some(75), "{out}");
    assert!(upstream.messages().is_empty());
    (port, out, before)
}

/// Whether test-send's `out` ends with `result: temporary failure: 4.4.1`
/// and `expected`, with this box's clock during the run where `{now}` stands.
fn assert_result_at_now(out: &str, before: u64, expected: &str) {
    let matches = (before..=unix_now()).any(|now| {
        let text = expected.replace("{now}", &rfc5322_date(now));
        out.ends_with(&format!("result: temporary failure: 4.4.1 {text}\n"))
    });
    assert!(matches, "expected {expected:?}:\n{out}");
}

#[test]
fn certificates_out_of_their_dates_say_the_dates_and_our_clock() {
    let ca = TestCa::new(&["smarthost.test"]);
    let trusted = format!("tls_ca_file = {}", ca.ca().display());
    let (expired, fp) =
        ca.dated_certificate("smarthost.test", "20200101000000Z", "20200102000000Z");
    let (_, out, before) = test_send_fails("127.0.0.42", &expired, &trusted);
    assert_result_at_now(
        &out,
        before,
        &format!(
            "TLS handshake failed: the certificate of smarthost.test ({fp}) expired on \
             Thu, 2 Jan 2020 00:00:00 +0000, and this box's clock says {{now}}: if the clock is \
             right, the server needs a new certificate; a box without a battery-backed clock or \
             NTP may be far off, so check the clock first"
        ),
    );
    // What a router whose clock starts in the past sees.
    let (future, fp) = ca.dated_certificate("smarthost.test", "21000101000000Z", "21000102000000Z");
    let (_, out, before) = test_send_fails("127.0.0.42", &future, &trusted);
    assert_result_at_now(
        &out,
        before,
        &format!(
            "TLS handshake failed: the certificate of smarthost.test ({fp}) is valid only \
             from Fri, 1 Jan 2100 00:00:00 +0000, and this box's clock says {{now}}: the clock is \
             probably wrong (a box without a battery-backed clock or NTP starts in the past); \
             set it, with NTP"
        ),
    );
}

#[test]
fn implicit_tls_and_starttls_mixed_up_say_which_to_set() {
    let ca = TestCa::new(&["smarthost.test"]);
    let trusted = format!("tls_ca_file = {}", ca.ca().display());
    // Implicit TLS to a port that speaks STARTTLS: its greeting comes back
    // where a TLS record should.
    let (port, out, _) = test_send_fails(
        "127.0.0.43",
        &ca.server_options(),
        &format!("{trusted}\nsmarthost_tls = tls"),
    );
    assert!(
        out.ends_with(&format!(
            "result: temporary failure: 4.4.1 port {port} speaks STARTTLS, not implicit TLS (it \
             answered in clear text): set smarthost_tls = starttls\n"
        )),
        "{out}"
    );
    // STARTTLS to a port that speaks implicit TLS: it waits in silence.
    let mut implicit = ca.server_options();
    implicit.push("--implicit-tls".to_string());
    let (port, out, _) = test_send_fails(
        "127.0.0.44",
        &implicit,
        &format!("{trusted}\nsmarthost_tls = starttls\nsmtp_helo_timeout = 1s"),
    );
    assert!(
        out.ends_with(&format!(
            "result: temporary failure: 4.4.1 no greeting within 1s: if port {port} speaks \
             implicit TLS (as 465 does, waiting for the client to begin), set smarthost_tls = \
             tls\n"
        )),
        "{out}"
    );
}
