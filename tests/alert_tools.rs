//! The alert tools' own sendmail calls (issue 13 item 1): the exact command
//! lines and header blocks of busybox crond, cronie, mdadm and apt's tools,
//! on a box that only forwards (its own name is no local domain), with
//! root's mail aliased to its owner and sent through a smarthost (Postfix's
//! smtp-sink), which shows what left the box.

mod support;

use support::peers::{free_port_on, Received, SmtpSink};
use support::Server;

/// A forwarding box: `qualify_domain = box.lan`, which is not among its
/// local domains, `root` aliased to its owner, everything else relayed.
struct ForwardingBox {
    server: Server,
    sink: SmtpSink,
    _dir: tempfile::TempDir,
}

impl ForwardingBox {
    fn start(ip: &str) -> ForwardingBox {
        let port = free_port_on(ip);
        let sink = SmtpSink::start(format!("{ip}:{port}").parse().unwrap(), &[]);
        let dir = support::test_dir();
        let aliases = dir.path().join("aliases");
        std::fs::write(&aliases, "root: owner@real.example\n").unwrap();
        let server = Server::start(&format!(
            "qualify_domain = box.lan\nsmarthost = {ip}:{port}\nsmarthost_tls = none\n\
             aliases = {}",
            aliases.display()
        ));
        ForwardingBox {
            server,
            sink,
            _dir: dir,
        }
    }

    /// `sendmail ARGS` as the tool calls it, with `input` on stdin; the
    /// message as the smarthost received it.
    fn send(&self, args: &[&str], input: &[u8]) -> Received {
        let config = self.server.config_path();
        let mut command = support::tinymta_command();
        command.args(["sendmail", "-C"]).arg(&config).args(args);
        let (code, out, err) = support::run_with_input(command, input);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(0), "", ""),
            "{args:?}"
        );
        let before = self.sink.messages().len();
        self.sink.wait_for(before + 1).pop().unwrap()
    }
}

fn headers(received: &Received) -> String {
    let text = String::from_utf8_lossy(&received.text).into_owned();
    let end = text.find("\r\n\r\n").or_else(|| text.find("\n\n")).unwrap();
    text[..end].to_string()
}

#[test]
fn busybox_crond_sendmail_ti_with_a_bare_mailto() {
    let forwarding = ForwardingBox::start("127.0.0.21");
    // busybox crond: execlp("sendmail", "sendmail", "-ti"), then
    // "To: MAILTO\nSubject: cron: CMD\n\n" and the job's output.
    let got = forwarding.send(
        &["-ti"],
        b"To: root\nSubject: cron: /usr/local/bin/backup\n\nbackup failed: disk full\n",
    );
    assert_eq!(got.mail_from, "<root@box.lan>");
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
    let headers = headers(&got);
    assert!(
        headers.contains(
            "\nTo: root@box.lan\nSubject: cron: /usr/local/bin/backup\nFrom: root@box.lan\n"
        ),
        "{headers}"
    );
    // smtp-sink stores the message with LF line ends.
    assert!(String::from_utf8_lossy(&got.text).ends_with("\n\nbackup failed: disk full\n"));
}

#[test]
fn cronie_debian_cron_mdadm_and_apt_calls() {
    let forwarding = ForwardingBox::start("127.0.0.22");
    // cronie / Debian cron.
    let got = forwarding.send(
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@box> /usr/sbin/logrotate\n\
          MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
          Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\
          X-Cron-Env: <HOME=/root>\nAuto-Submitted: auto-generated\nPrecedence: bulk\n\n\
          error: skipping \"/var/log/x\"\n",
    );
    assert_eq!(got.mail_from, "<root@box.lan>");
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
    let cron = headers(&got);
    for line in [
        "\nFrom: root@box.lan (Cron Daemon)\nTo: root@box.lan\n",
        "Subject: Cron <root@box> /usr/sbin/logrotate",
        "X-Cron-Env: <HOME=/root>",
        "Auto-Submitted: auto-generated",
        "Precedence: bulk",
    ] {
        assert!(cron.contains(line), "{line}: {cron}");
    }
    // mdadm --monitor: sendmail -t, with its From and To.
    let got = forwarding.send(
        &["-t"],
        b"From: mdadm monitoring <root>\nTo: root\nSubject: Fail event on /dev/md0:box\n\n\
          This is an automatically generated mail message from mdadm\n",
    );
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
    let mdadm = headers(&got);
    assert!(
        mdadm.contains("\nFrom: mdadm monitoring <root@box.lan>\nTo: root@box.lan\n"),
        "{mdadm}"
    );
    // unattended-upgrades and apt-listchanges: sendmail -oi -t.
    let got = forwarding.send(
        &["-oi", "-t"],
        b"To: root\nSubject: unattended-upgrades result for box: SUCCESS\n\nAll upgrades installed\n.\n",
    );
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
    assert!(String::from_utf8_lossy(&got.text).ends_with("installed\n.\n"));
    // Several bare names, and one in angle brackets with a phrase.
    let got = forwarding.send(
        &["-t"],
        b"To: root, admin\nCc: \"Cron\" <ops>\nSubject: two\n\nx\n",
    );
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["<admin@box.lan>", "<ops@box.lan>", "<owner@real.example>"]
    );
    forwarding.server.wait_for_empty_queue();
}

/// `mail ARGS` (through a link named `mail`, as scripts call it) with `input`.
fn mail(forwarding: &ForwardingBox, args: &[&str], input: &[u8]) -> (Option<i32>, String) {
    let dir = support::test_dir();
    let link = dir.path().join("mail");
    std::os::unix::fs::symlink(support::binary(), &link).unwrap();
    let mut command = support::tinymta_command_for(&link);
    command
        .arg("-C")
        .arg(forwarding.server.config_path())
        .args(args);
    let (code, _, err) = support::run_with_input(command, input);
    (code, err)
}

#[test]
fn mail_as_smartd_zed_and_vendor_scripts_call_it() {
    let forwarding = ForwardingBox::start("127.0.0.23");
    // smartd's warning script: mail -s SUBJECT ADDRESS < message.
    let (code, err) = mail(
        &forwarding,
        &[
            "-s",
            "SMART error (ATA error count increased) detected on host: box",
            "root",
        ],
        b"This message was generated by the smartd daemon.\n.\nDevice: /dev/sda\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let got = forwarding.sink.wait_for(1).pop().unwrap();
    assert_eq!(got.mail_from, "<root@box.lan>");
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
    let text = String::from_utf8_lossy(&got.text).into_owned();
    for line in [
        "\nTo: root@box.lan\n",
        "\nSubject: SMART error (ATA error count increased) detected on host: box\n",
        "\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
         Content-Transfer-Encoding: 8bit\n",
        "\nFrom: root@box.lan\n",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    // The body as the script wrote it, a lone dot too.
    assert!(
        text.ends_with(
            "\n\nThis message was generated by the smartd daemon.\n.\nDevice: /dev/sda\n"
        ),
        "{text}"
    );
    // A sender, copies, a subject that is not ASCII, and a line end in it.
    let (code, err) = mail(
        &forwarding,
        &[
            "-r",
            "alerts@example.org",
            "-c",
            "ops@example.net",
            "-b",
            "audit@example.net",
            "-s",
            "Température: 91 °C\nBcc: eve@evil.test",
            "owner@real.example",
        ],
        "la carte mère chauffe\n".as_bytes(),
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let got = forwarding
        .sink
        .wait_for(2)
        .into_iter()
        .find(|m| m.mail_from.contains("alerts"))
        .unwrap();
    assert_eq!(got.mail_from, "<alerts@example.org>");
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            "<audit@example.net>",
            "<ops@example.net>",
            "<owner@real.example>"
        ]
    );
    let text = String::from_utf8_lossy(&got.text).into_owned();
    assert!(text.contains("\nCc: ops@example.net\n"), "{text}");
    assert!(
        !text.contains("audit@") && !text.contains("\nBcc:"),
        "{text}"
    );
    // RFC 2047: "Température: 91 °C Bcc: eve@evil.test" as UTF-8 words.
    assert!(
        text.contains(
            "\nSubject: =?UTF-8?B?VGVtcMOpcmF0dXJlOiA5MSDCsEMgQmNjOiBldmVAZXZpbC50ZXN0?=\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("\n\nla carte mère chauffe\n"), "{text}");
    // -a means a header to one mail and an attachment to another: refused.
    let (code, err) = mail(
        &forwarding,
        &["-a", "report.txt", "-s", "x", "root"],
        b"y\n",
    );
    assert_eq!(
        (code, err.as_str()),
        (
            Some(64),
            "mail: -a is not supported: bsd-mailx reads it as a header, GNU mailutils as an \
             attachment; put headers in the message and send it with sendmail -t\n"
        )
    );
    let (code, err) = mail(&forwarding, &["-s", "nobody"], b"y\n");
    assert_eq!(
        (code, err.as_str()),
        (Some(64), "mail: no recipients given\n")
    );
}

#[test]
fn a_smarthost_name_that_does_not_resolve_defers_and_never_bounces() {
    // DNS not up yet at boot, or a typo: dnsmasq knows no such name.
    let dns = support::Dnsmasq::start(&[]);
    let server = Server::start(&format!(
        "{}\nsmarthost = relay.nowhere.test:587\nsmarthost_tls = none\nqualify_domain = box.lan",
        dns.config_line()
    ));
    let id = server.greeted().send_message(
        "root@box.lan",
        &["owner@real.example"],
        b"Subject: disk\r\n\r\nfull\r\n.\r\n",
    );
    let envelope = server.wait_for_envelope_containing(&id, "recipient: queued attempts=1");
    assert!(
        envelope.contains("\nerror: 4.4.3 smarthost: ") && envelope.ends_with("\nstatus: 4.4.3\n"),
        "{envelope}"
    );
    assert!(!server.log().contains("sender non-delivery notification"));
}

#[test]
fn a_bounce_to_a_local_sender_goes_through_the_aliases() {
    // root@box.lan's mail to a domain that refuses it for good: the bounce
    // reaches root's owner, not a Maildir on the box's flash.
    let port = free_port_on("127.0.0.24");
    let dns = support::Dnsmasq::start(&[
        "--host-record=refusing.test,127.0.0.24",
        "--host-record=owner.test,127.0.0.25",
    ]);
    let _refusing = SmtpSink::start(
        format!("127.0.0.24:{port}").parse().unwrap(),
        &["-f", "RCPT"],
    );
    let owner = SmtpSink::start(format!("127.0.0.25:{port}").parse().unwrap(), &[]);
    let dir = support::test_dir();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "root: owner@owner.test\n").unwrap();
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\nqualify_domain = box.lan\naliases = {}",
        dns.config_line(),
        aliases.display()
    ));
    server.greeted().send_message(
        "root@box.lan",
        &["ops@refusing.test"],
        b"Subject: x\r\n\r\ny\r\n.\r\n",
    );
    let bounce = owner.wait_for(1).pop().unwrap();
    assert_eq!(
        (bounce.mail_from.as_str(), bounce.rcpt_to.as_slice()),
        ("<>", &["<owner@owner.test>".to_string()][..])
    );
    let text = String::from_utf8_lossy(&bounce.text).into_owned();
    assert!(text.contains("\nTo: <root@box.lan>\n"), "{text}");
    assert!(text.contains("\nStatus: 5."), "{text}");
    server.wait_for_empty_queue();
    assert!(!server.mailboxes().join("root").exists());
}

#[test]
fn the_small_things_of_the_command_line() {
    let dir = support::test_dir();
    // `-t` checks what the daemon reads at start-up: tls_ca_file too.
    let config = dir.path().join("t.conf");
    std::fs::write(
        &config,
        format!(
            "hostname = box.lan   # the name in the greeting\nspool_dir = {}/spool#1\n\
             mailbox_dir = {}/mail\ntls_ca_file = {}/no-such-ca.pem\n",
            dir.path().display(),
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let (code, out, err) = support::run_tinymta(&["-t", "-c", config.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(err.contains("tls_ca_file: "), "{err}");
    // A comment after a value is a comment; a # inside one is the value's.
    let conf = tinymta::config::Config::parse(&std::fs::read_to_string(&config).unwrap(), &config)
        .unwrap();
    assert_eq!(conf.hostname, "box.lan");
    assert!(conf.spool_dir.ends_with("spool#1"));
    // -h names every subcommand.
    let (code, help, _) = support::run_tinymta(&["-h"]);
    assert_eq!(code, Some(0));
    for mode in ["sendmail", "mail", "mailq", "flush", "test-send", "passwd"] {
        assert!(
            help.contains(&format!("\n       tinymta {mode} ")),
            "{mode}: {help}"
        );
    }
    // mailq takes -c as the daemon does, and shows when a deferred message
    // is tried next.
    let server = Server::start("");
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@later.test"],
        b"Subject: x\r\n\r\ny\r\n.\r\n",
    );
    server.wait_for_envelope_containing(&id, "recipient: queued attempts=1");
    let config = server.config_path();
    let (code, out, err) = support::run_tinymta(&["mailq", "-c", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let line = out.lines().nth(2).unwrap();
    assert!(
        line.trim_start()
            .starts_with("<ops@later.test> queued, 1 attempt: 4.4.3 ")
            && (line.ends_with(" (next attempt in 59m)")
                || line.ends_with(" (next attempt in 1h)")),
        "{out}"
    );
}

#[test]
fn a_smarthost_on_port_465_gets_implicit_tls_without_being_told() {
    use support::peers::{TestCa, Upstream};
    if !support::running_as_root() {
        eprintln!("needs root to listen on port 465; skipped");
        return;
    }
    let ca = TestCa::new(&["smarthost.test"]);
    let mut options = ca.server_options();
    options.push("--implicit-tls".to_string());
    let upstream = Upstream::start("127.0.0.26:465".parse().unwrap(), &options);
    let dir = support::test_dir();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.26 smarthost.test\n").unwrap();
    // No smarthost_tls: `auto` says TLS from the first byte on 465.
    let server = Server::start(&format!(
        "smarthost = smarthost.test:465\nhosts_file = {}\ntls_ca_file = {}",
        hosts.display(),
        ca.ca().display()
    ));
    server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: 465\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(upstream.wait_for(1)[0].tls, "TLSv1.3");
    server.wait_for_empty_queue();
}
