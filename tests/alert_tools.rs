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
        headers.contains("\nSubject: cron: /usr/local/bin/backup"),
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
    let headers = headers(&got);
    for line in [
        "Subject: Cron <root@box> /usr/sbin/logrotate",
        "X-Cron-Env: <HOME=/root>",
        "Auto-Submitted: auto-generated",
        "Precedence: bulk",
    ] {
        assert!(headers.contains(line), "{line}: {headers}");
    }
    // mdadm --monitor: sendmail -t, with its From and To.
    let got = forwarding.send(
        &["-t"],
        b"From: mdadm monitoring <root>\nTo: root\nSubject: Fail event on /dev/md0:box\n\n\
          This is an automatically generated mail message from mdadm\n",
    );
    assert_eq!(got.rcpt_to, ["<owner@real.example>"]);
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
