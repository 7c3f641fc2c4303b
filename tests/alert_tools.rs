//! The alert tools' own sendmail calls (issue 13 item 1): the exact command
//! lines and header blocks of busybox crond, cronie, mdadm and apt's tools,
//! on a box that only forwards (its own name is no local domain), with
//! root's mail aliased to its owner and sent through a smarthost (Postfix's
//! smtp-sink), which shows what left the box. Then the real tools (busybox
//! crond, mdadm, bsd-mailx, s-nail, monit), run as Debian installs them on
//! a box where tinymta is installed as README says.
//!
//! `TINYMTA_SHOW_RECEIVED=1 cargo test --test alert_tools -- --nocapture`
//! prints each tool's message as the smarthost received it.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// The header lines (continuations joined on) whose field names are among
/// `names`, in the order the message has them.
fn header_lines(received: &Received, names: &[&str]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in headers(received).lines() {
        match fields.last_mut() {
            Some(field) if line.starts_with([' ', '\t']) => {
                field.push('\n');
                field.push_str(line);
            }
            _ => fields.push(line.to_string()),
        }
    }
    fields.retain(|f| {
        names
            .iter()
            .any(|n| f.split_once(':').is_some_and(|(k, _)| k == *n))
    });
    fields
}

/// The body, after the blank line that ends the header section.
fn body(received: &Received) -> String {
    let text = String::from_utf8_lossy(&received.text).into_owned();
    let start = text.find("\n\n").unwrap() + 2;
    text[start..].to_string()
}

/// With `TINYMTA_SHOW_RECEIVED` set, prints the envelope and header block
/// `tool`'s message reached the smarthost with (the closing note of issue 13).
fn show(tool: &str, received: &Received) {
    if std::env::var_os("TINYMTA_SHOW_RECEIVED").is_some() {
        eprintln!(
            "=== {tool}\nMAIL FROM:{}\n{}\n{}\n",
            received.mail_from,
            received
                .rcpt_to
                .iter()
                .map(|r| format!("RCPT TO:{r}"))
                .collect::<Vec<_>>()
                .join("\n"),
            headers(received)
        );
    }
}

/// Shows `tool`'s message and checks its envelope: from `sender` at the
/// box's domain, to root's owner (through the aliases).
fn check_envelope(tool: &str, received: &Received, sender: &str) {
    show(tool, received);
    assert_eq!(received.mail_from, format!("<{sender}@box.lan>"), "{tool}");
    assert_eq!(received.rcpt_to, ["<owner@real.example>"], "{tool}");
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
    check_envelope("busybox crond's call: sendmail -ti", &got, "root");
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
    show(
        "cronie's call: sendmail -FCronDaemon -i -B8BITMIME -oem root",
        &got,
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
    show("mdadm's call: sendmail -t", &got);
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
    show("unattended-upgrades' call: sendmail -oi -t", &got);
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
    if !support::running_as_root() {
        support::skip("needs root to listen on port 465");
        return;
    }
    // No smarthost_tls: `auto` says TLS from the first byte on 465.
    support::peers::implicit_tls_smarthost_takes_a_message("127.0.0.26", 465, "");
}

/// The directories a test lays its own files over, in the tool's private
/// mount namespace: what a tool writes anywhere a package manager or a
/// daemon writes (crond's `crond.reboot` in /run, unattended-upgrades'
/// locks and logs in /var) stays in the test's layer too.
const OVERLAID: [&str; 4] = ["/etc", "/usr", "/var", "/run"];

/// The forwarding box with tinymta installed as README says, as the real
/// tools see it: in a private mount and UTS namespace of overlays, so
/// nothing outside the tool's process changes, `/usr/sbin/sendmail` is tinymta,
/// `/etc/tinymta.conf` the box's config, the host name is `box` (`box.lan`
/// in /etc/hosts) and host names are looked up in /etc/hosts alone, so no
/// tool asks the machine's DNS.
struct InstalledBox {
    forwarding: ForwardingBox,
    /// The upper and work layers of the overlays, and HOME (a mail
    /// client's dead.letter would go there).
    layers: tempfile::TempDir,
}

impl InstalledBox {
    /// None, saying why (support::skip), where the tests cannot build one:
    /// mounts need root. The tools exec /usr/sbin/sendmail themselves: under
    /// a runner it is a script that runs the binary through it.
    fn start(ip: &str) -> Option<InstalledBox> {
        if !support::running_as_root() {
            support::skip("needs root for a mount namespace");
            return None;
        }
        let forwarding = ForwardingBox::start(ip);
        let installed = InstalledBox {
            layers: support::test_dir(),
            forwarding,
        };
        let config = fs::read(installed.forwarding.server.config_path()).unwrap();
        installed.put("/etc/tinymta.conf", &config);
        installed.put(
            "/etc/hosts",
            b"127.0.0.1 localhost\n127.0.1.1 box.lan box\n",
        );
        installed.put(
            "/etc/nsswitch.conf",
            b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
        );
        let sendmail = installed.upper("/usr/sbin/sendmail");
        if !support::runner_script(&sendmail) {
            symlink(support::binary(), sendmail).unwrap();
        }
        Some(installed)
    }

    /// As [`InstalledBox::start`], for a test that installs the binary
    /// set-group-id too (set_group_id): that needs the binary itself, as
    /// the kernel gives a program its set-group-id bit's group only when it
    /// execs that file, and qemu-user reads the guest binary, never execs it.
    fn start_native(ip: &str) -> Option<InstalledBox> {
        if std::env::var_os("TINYMTA_RUNNER").is_some() {
            support::skip(
                "the set-group-id install needs a native binary, not one run by qemu-user",
            );
            return None;
        }
        InstalledBox::start(ip)
    }

    /// Installs as README says for ordinary users too: /usr/sbin/tinymta
    /// set-group-id `mail`, and sendmail a link to it.
    fn set_group_id(&self) {
        let sbin = self.upper("/usr/sbin/sendmail");
        fs::remove_file(&sbin).unwrap();
        support::setgid_binary(sbin.parent().unwrap());
        symlink("tinymta", &sbin).unwrap();
    }

    /// Where `path` is in the upper layer over its directory.
    fn upper(&self, path: &str) -> PathBuf {
        let (dir, rest) = OVERLAID
            .iter()
            .find_map(|d| Some((*d, path.strip_prefix(d)?.strip_prefix('/')?)))
            .expect("a path under an overlaid directory");
        let file = self.layer(dir, "upper").join(rest);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        file
    }

    fn layer(&self, dir: &str, layer: &str) -> PathBuf {
        self.layers
            .path()
            .join(layer)
            .join(dir.trim_start_matches('/'))
    }

    /// Puts a file at `path`, for the namespace's eyes only.
    fn put(&self, path: &str, content: &[u8]) {
        fs::write(self.upper(path), content).unwrap();
    }

    /// `program args` in the namespace, with the PATH of a box.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut mounts = String::new();
        for dir in OVERLAID {
            let (upper, work) = (self.layer(dir, "upper"), self.layer(dir, "work"));
            fs::create_dir_all(&upper).unwrap();
            fs::create_dir_all(&work).unwrap();
            mounts.push_str(&format!(
                "mount -t overlay overlay -o lowerdir={dir},upperdir={},workdir={} {dir} && ",
                upper.display(),
                work.display()
            ));
        }
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--uts", "sh", "-c"])
            .arg(format!("{mounts}hostname box && exec \"$@\""))
            .arg("sh")
            .arg(program)
            .args(args)
            .env("HOME", self.layers.path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command
    }

    /// Runs a tool that should end by itself, with `input` on its stdin:
    /// (exit code, stdout, stderr). One that hangs is stopped after
    /// `support::WAIT` and exits 124.
    fn run(&self, program: &str, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
        let limit = support::WAIT.as_secs().to_string();
        let mut timed = vec![limit.as_str(), program];
        timed.extend(args);
        support::run_with_input(self.command("timeout", &timed), input)
    }

    /// Runs a tool that should queue its message, exit 0 and say nothing.
    fn run_quietly(&self, program: &str, args: &[&str], input: &[u8]) {
        let (code, out, err) = self.run(program, args, input);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(0), "", ""),
            "{program} {args:?}"
        );
    }

    /// The one message the smarthost gets, waiting up to `limit`.
    fn wait_for_one(&self, limit: Duration) -> Received {
        self.wait_for(1, limit).pop().unwrap()
    }

    /// The smarthost's messages, once there are `count`, waiting up to `limit`.
    fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.forwarding.sink.messages();
            if messages.len() >= count {
                assert_eq!(messages.len(), count, "{messages:?}");
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "the smarthost got {} of {count} messages in {limit:?}; tinymta's log:\n{}",
                messages.len(),
                self.forwarding.server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The key lines of a message from a tool: who sent it, to whom, what about.
const KEY_HEADERS: [&str; 3] = ["From", "To", "Subject"];

#[test]
fn busybox_crond_mails_a_jobs_output_from_root_and_from_a_user() {
    let Some(installed) = InstalledBox::start_native("127.0.0.41") else {
        return;
    };
    installed.set_group_id();
    // Debian's busybox-static (the dynamic busybox has no crond), with the
    // crontabs where it looks by default; this crond mails a job's output
    // only where the crontab sets MAILTO. It wakes at each full minute to
    // start the jobs due, and mails a job's output when it sees the job
    // ended, looking again every 10 seconds while one runs: at most about
    // 80 seconds from now.
    // (@reboot would be sooner, and this busybox, 1.35, crashes on it.) A
    // user's job mails as that user, through the set-group-id install.
    installed.put(
        "/var/spool/cron/crontabs/root",
        b"MAILTO=root\n* * * * * echo \"backup failed: disk full\"\n",
    );
    installed.put(
        "/var/spool/cron/crontabs/daemon",
        b"MAILTO=root\n* * * * * echo checking; ls /no/such/file\n",
    );
    let log = installed.layers.path().join("crond.log");
    let mut crond = installed
        .command(
            "busybox",
            &["crond", "-f", "-l", "8", "-L", log.to_str().unwrap()],
        )
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // crond execs in place of unshare and sh: this is crond.
    let mut messages = installed.wait_for(2, Duration::from_secs(100));
    let _ = crond.kill();
    let _ = crond.wait();
    messages.sort_by(|a, b| a.mail_from.cmp(&b.mail_from));
    let (daemon, root) = (&messages[0], &messages[1]);
    check_envelope("busybox crond, root's crontab (real run)", root, "root");
    assert_eq!(
        header_lines(root, &KEY_HEADERS),
        [
            "To: root@box.lan",
            "Subject: cron: echo \"backup failed: disk full\"",
            "From: root@box.lan"
        ]
    );
    assert_eq!(body(root), "backup failed: disk full\n");
    check_envelope(
        "busybox crond, daemon's crontab (real run)",
        daemon,
        "daemon",
    );
    assert_eq!(
        header_lines(daemon, &KEY_HEADERS),
        [
            "To: root@box.lan",
            "Subject: cron: echo checking; ls /no/such/file",
            "From: daemon@box.lan"
        ]
    );
    assert_eq!(
        body(daemon),
        "checking\nls: cannot access '/no/such/file': No such file or directory\n"
    );
    installed.forwarding.server.wait_for_empty_queue();
}

#[test]
fn mdadm_monitor_test_mails_with_sendmail_t() {
    let Some(installed) = InstalledBox::start("127.0.0.42") else {
        return;
    };
    // No md driver is needed: --test mails a TestMessage for each array.
    let config = installed.layers.path().join("mdadm.conf");
    fs::write(
        &config,
        "ARRAY /dev/md0 UUID=3aaa0122:29827cfa:5331ad66:ca767371\n\
         MAILADDR root\nMAILFROM mdadm on box <root>\n",
    )
    .unwrap();
    let config = format!("--config={}", config.display());
    installed.run_quietly(
        "mdadm",
        &["--monitor", "--scan", "--oneshot", "--test", &config],
        b"",
    );
    let got = installed.wait_for_one(support::WAIT);
    check_envelope("mdadm --monitor --test (real run)", &got, "root");
    assert_eq!(
        header_lines(&got, &KEY_HEADERS),
        [
            "From: mdadm on box <root@box.lan>",
            "To: root@box.lan",
            "Subject: TestMessage event on /dev/md0:box"
        ]
    );
    assert_eq!(
        body(&got),
        "This is an automatically generated mail message from mdadm\nrunning on box\n\n\
         A TestMessage event had been detected on md device /dev/md0.\n\n\
         Faithfully yours, etc.\n"
    );
}

#[test]
fn bsd_mailx_mails_through_usr_sbin_sendmail() {
    let Some(installed) = InstalledBox::start("127.0.0.43") else {
        return;
    };
    // bsd-mailx has no setting for its MTA: /usr/sbin/sendmail -i -t.
    installed.run_quietly(
        "bsd-mailx",
        &["-s", "disk alert on box", "root"],
        b"/ is 100% full\n.\nand so is /var\n",
    );
    let got = installed.wait_for_one(support::WAIT);
    check_envelope("bsd-mailx (real run)", &got, "root");
    assert_eq!(
        header_lines(&got, &KEY_HEADERS),
        [
            "To: root@box.lan",
            "Subject: disk alert on box",
            "From: root@box.lan"
        ]
    );
    assert_eq!(body(&got), "/ is 100% full\n.\nand so is /var\n");
}

#[test]
fn s_nail_under_umask_077_as_root_and_as_an_ordinary_user() {
    let Some(mut installed) = InstalledBox::start_native("127.0.0.44") else {
        return;
    };
    // s-nail runs its MTA under umask 077: neither that nor the caller
    // decides whether the daemon, running as its own user (nobody), can
    // read the entry. With the daemon stopped, the entries wait.
    installed.forwarding.server.kill();
    let as_daemon = "setpriv --reuid=daemon --regid=daemon --clear-groups";
    let s_nail = |user: &str, subject: &str| {
        let script =
            format!("umask 077; exec {user} s-nail -Smta=/usr/sbin/sendmail -s '{subject}' root");
        installed.run("sh", &["-c", &script], b"the disk is full\n")
    };
    // Without the set-group-id install an ordinary user cannot queue, and
    // is told so: sendmail fails, and s-nail says the message was not sent
    // (exit 4) and keeps it in dead.letter, where it can.
    let (code, out, err) = s_nail(as_daemon, "not sent");
    assert_eq!((code, out.as_str()), (Some(4), ""), "{err}");
    assert!(
        err.contains(
            "\nordinary users queue mail through the set-group-id install: chgrp mail \
             tinymta && chmod 2755 tinymta (README: Security)\n"
        ) && err.ends_with("s-nail: ... message not sent\n"),
        "{err}"
    );
    let spool = installed.forwarding.server.spool();
    assert!(support::list_dir(&spool.join("maildrop")).is_empty());
    installed.set_group_id();
    for (user, subject) in [("", "as root"), (as_daemon, "as daemon")] {
        let (code, out, err) = s_nail(user, subject);
        assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    }
    // Root's entry went into the queue, given to the daemon's user; the
    // ordinary user's into the maildrop, its own and readable by others
    // (the daemon), not by the group.
    let nobody = 65534;
    for (dir, owner, group, mode) in [
        ("new", nobody, nobody, 0o600),
        ("maildrop", 1, support::MAIL_GID, 0o604),
    ] {
        let names = support::list_dir(&spool.join(dir));
        assert_eq!(names.len(), 1, "{dir}: {names:?}");
        let meta = fs::metadata(spool.join(dir).join(&names[0])).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
            (owner, group, mode),
            "{dir}/{}",
            names[0]
        );
    }
    installed.forwarding.server.restart();
    let mut messages = installed.wait_for(2, support::WAIT);
    messages.sort_by(|a, b| a.mail_from.cmp(&b.mail_from));
    let (daemon, root) = (&messages[0], &messages[1]);
    for (got, user, tool) in [
        (root, "root", "s-nail as root, umask 077 (real run)"),
        (
            daemon,
            "daemon",
            "s-nail as the ordinary user daemon, umask 077 (real run)",
        ),
    ] {
        check_envelope(tool, got, user);
        assert_eq!(
            header_lines(got, &KEY_HEADERS),
            [
                "To: root@box.lan".to_string(),
                format!("Subject: as {user}"),
                format!("From: {user}@box.lan")
            ]
        );
        assert_eq!(body(got), "the disk is full\n");
    }
    installed.forwarding.server.wait_for_empty_queue();
    assert!(!installed
        .forwarding
        .server
        .log()
        .contains("Permission denied"));
}

#[test]
fn monit_speaks_smtp_to_the_listener() {
    let Some(installed) = InstalledBox::start("127.0.0.45") else {
        return;
    };
    let server = &installed.forwarding.server;
    let dir = installed.layers.path();
    // monit refuses a bare `set alert root` (a syntax error): its
    // recipient is root at the box's own domain, which the aliases take.
    let rc = dir.join("monitrc");
    fs::write(
        &rc,
        format!(
            "set daemon 1\nset logfile {dir}/monit.log\nset idfile {dir}/monit.id\n\
             set statefile {dir}/monit.state\nset pidfile {dir}/monit.pid\n\
             set mailserver {} port {}\n\
             set alert root@box.lan but not on {{ instance }}\n\
             check program backup with path /bin/false\n    if status != 0 then alert\n",
            server.ip,
            server.port,
            dir = dir.display()
        ),
    )
    .unwrap();
    // monit wants its control file private.
    fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
    let mut monit = installed
        .command("monit", &["-I", "-c", rc.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = installed.wait_for_one(support::WAIT);
    tinymta::sys::send_signal(monit.id(), tinymta::sys::Signal::Terminate).unwrap();
    assert_eq!(monit.wait().unwrap().code(), Some(0));
    check_envelope("monit (real run, SMTP to the listener)", &got, "monit");
    assert_eq!(
        header_lines(&got, &KEY_HEADERS),
        [
            "From: monit@box.lan",
            "To: root@box.lan",
            "Subject: monit alert --  Status failed backup"
        ]
    );
    assert!(
        body(&got).contains("\tDescription: status failed (1) -- no output\n"),
        "{}",
        body(&got)
    );
}

#[test]
fn unattended_upgrades_mails_its_report() {
    let Some(installed) = InstalledBox::start("127.0.0.46") else {
        return;
    };
    // A real run (a dry run mails nothing) that can upgrade nothing: apt
    // sees no package lists, so no package has a newer candidate, and its
    // locks, logs and stamps go into the namespace's layers.
    let lists = installed.layers.path().join("no-lists");
    fs::create_dir_all(lists.join("partial")).unwrap();
    let apt_config = installed.layers.path().join("apt.conf");
    fs::write(
        &apt_config,
        format!(
            "Dir::State::lists \"{}/\";\nUnattended-Upgrade::Mail \"root\";\n\
             Unattended-Upgrade::MailReport \"always\";\n",
            lists.display()
        ),
    )
    .unwrap();
    let apt_config = format!("APT_CONFIG={}", apt_config.display());
    installed.run_quietly("env", &[&apt_config, "unattended-upgrade"], b"");
    let got = installed.wait_for_one(support::WAIT);
    check_envelope("unattended-upgrades (real run)", &got, "root");
    // It names the box by its fully qualified name.
    assert_eq!(
        header_lines(&got, &KEY_HEADERS),
        [
            "Subject: unattended-upgrades result for box.lan: SUCCESS",
            "From: root@box.lan",
            "To: root@box.lan"
        ]
    );
    assert!(
        body(&got).starts_with(
            "Unattended upgrade result: No packages found that can be upgraded\n \
             unattended and no pending auto-removals\n\n"
        ),
        "{}",
        body(&got)
    );
}
