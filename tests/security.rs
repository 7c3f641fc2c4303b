//! What a local user can and cannot do with tinymta (issue 12): the
//! set-group-id binary only submits, through a maildrop the submitting group
//! can add to and nothing more; the queue and the mailboxes are the daemon
//! user's alone.

mod support;

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use support::{setgid_binary, Server, MAIL_GID};

/// Whether the test is skipped (counted: support::skip) for want of root
/// to set up users and a set-group-id binary, or of a native binary: the
/// kernel gives a program its set-group-id bit's group only when it execs
/// that file, and qemu-user reads the guest binary, never execs it.
fn skip_unless_root() -> bool {
    if !support::running_as_root() || std::env::var_os("TINYMTA_RUNNER").is_some() {
        support::skip("needs root to set up users and a setgid binary, and a native binary");
        return true;
    }
    false
}

/// Runs `program args` as the ordinary user `daemon` (uid 1), with
/// `config` at /etc/tinymta.conf (where the set-group-id binary looks, as
/// it takes no -C from ordinary users): /etc is an overlay in a private
/// mount namespace, so the machine's own /etc is untouched.
fn as_daemon(
    dir: &Path,
    config: &Path,
    program: &Path,
    args: &[&str],
    input: &[u8],
) -> (Option<i32>, String, String) {
    let upper = dir.join("etc-upper");
    let work = dir.join("etc-work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let etc_config = upper.join("tinymta.conf");
    std::fs::copy(config, &etc_config).unwrap();
    std::fs::set_permissions(&etc_config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && \
             exec setpriv --reuid=daemon --regid=daemon --clear-groups \"$@\"",
            upper.display(),
            work.display()
        ))
        .arg("sh")
        .arg(program)
        .args(args);
    support::run_with_input(command, input)
}

/// Whether `args` fails as another ordinary user (`bin`) holding the group
/// `mail`: what the set-group-id binary's group would let a process do to
/// an entry someone else submitted.
fn denied_to_the_group(args: &[&str]) -> bool {
    !Command::new("setpriv")
        .args(["--reuid=bin", "--regid=bin", "--groups=mail"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn an_ordinary_user_queues_through_the_maildrop_and_reads_no_one_elses_mail() {
    if skip_unless_root() {
        return;
    }
    let mut server = Server::start("");
    // Someone's mail is already there.
    server.greeted().send_message(
        "a@mx.test",
        &["alice@mx.test"],
        b"Subject: private\r\n\r\nfor alice\r\n.\r\n",
    );
    server.wait_for_mail("alice", 1);
    let spool = server.spool();
    let maildrop = spool.join("maildrop");
    // The daemon (started as root, running as nobody) made the spool so.
    let nobody = 65534;
    for (dir, expected_mode, gid) in [
        (&spool, 0o710, MAIL_GID),
        (&spool.join("tmp"), 0o700, nobody),
        (&spool.join("new"), 0o700, nobody),
        (&maildrop, 0o3730, MAIL_GID),
    ] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!(
            (mode(dir), meta.uid(), meta.gid()),
            (expected_mode, nobody, gid),
            "{}",
            dir.display()
        );
    }
    let alice = server.mailboxes().join("alice");
    assert_eq!(mode(&alice), 0o700);
    let delivered = support::list_dir(&alice.join("new"));
    assert_eq!(mode(&alice.join("new").join(&delivered[0])), 0o600);

    let dir = support::test_dir();
    let setgid = setgid_binary(dir.path());
    let plain = dir.path().join("tinymta-plain");
    std::fs::copy(support::binary(), &plain).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = server.config_path();
    let submit = |program: &Path, input: &[u8]| {
        as_daemon(
            dir.path(),
            &config,
            program,
            &["sendmail", "-oi", "root"],
            input,
        )
    };
    // Without the set-group-id bit the user cannot reach the spool...
    let (code, _, err) = submit(&plain, b"Subject: no\n\nx\n");
    assert_eq!(code, Some(75), "{err}");
    assert!(
        err.ends_with(
            ": Permission denied (os error 13)\nordinary users queue mail through the \
             set-group-id install: chgrp mail tinymta && chmod 2755 tinymta (README: Security)\n"
        ),
        "{err}"
    );
    // ...with it, the message is queued and delivered.
    let (code, out, err) = submit(&setgid, b"Subject: from daemon\n\nhello\n");
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    let mail = server.wait_for_mail("root", 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(
        text.starts_with("Return-Path: <daemon@mx.test>\n"),
        "{text}"
    );
    assert!(text.contains("(tinymta, from userid 1)"), "{text}");
    assert!(server
        .log()
        .contains(": picked up from the maildrop, submitted by uid 1"));

    // While the daemon is stopped, a submission waits in the maildrop, where
    // the group can neither list, read, rename nor remove it.
    server.kill();
    let (code, _, err) = submit(&setgid, b"Subject: second\n\nagain\n");
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let waiting = support::list_dir(&maildrop);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let entry = maildrop.join(&waiting[0]);
    assert!(waiting[0].ends_with(".msg"), "{waiting:?}");
    let meta = std::fs::metadata(&entry).unwrap();
    assert_eq!((mode(&entry), meta.uid(), meta.gid()), (0o604, 1, MAIL_GID));
    let entry_text = entry.to_str().unwrap();
    let moved = maildrop.join("moved");
    assert!(denied_to_the_group(&["ls", maildrop.to_str().unwrap()]));
    assert!(denied_to_the_group(&["cat", entry_text]));
    assert!(denied_to_the_group(&[
        "mv",
        entry_text,
        moved.to_str().unwrap()
    ]));
    assert!(denied_to_the_group(&["rm", "-f", entry_text]));
    assert!(denied_to_the_group(&[
        "ls",
        spool.join("new").to_str().unwrap()
    ]));
    assert!(denied_to_the_group(&[
        "ls",
        alice.join("new").to_str().unwrap()
    ]));
    assert!(entry.exists());
    // Picked up when the daemon is back.
    server.restart();
    server.wait_for_mail("root", 2);
    server.wait_for_empty_queue();
    assert!(support::list_dir(&maildrop).is_empty());
}

#[test]
fn the_setgid_binary_only_submits_and_reads_no_file_of_the_users_choice() {
    if skip_unless_root() {
        return;
    }
    let server = Server::start("");
    // A queue file the user cannot read: its first line must never show.
    let mut server = server;
    server.kill();
    let (code, _, err) = support::run_with_input(
        {
            let mut c = support::tinymta_command();
            c.args(["sendmail", "-C"])
                .arg(server.config_path())
                .args(["-oi", "root"]);
            c
        },
        b"Subject: secret subject\n\nsecret\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let queued = server.queue_files();
    let queue_file = server.spool().join("new").join(&queued[0]);
    // Root's submission belongs to the daemon's user, whatever root's umask.
    let meta = std::fs::metadata(&queue_file).unwrap();
    assert_eq!((mode(&queue_file), meta.uid()), (0o600, 65534));
    let queue_file = queue_file.to_str().unwrap().to_string();

    let dir = support::test_dir();
    let setgid = setgid_binary(dir.path());
    let own_config = dir.path().join("own.conf");
    std::fs::write(&own_config, std::fs::read(server.config_path()).unwrap()).unwrap();
    std::fs::set_permissions(&own_config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let own = own_config.to_str().unwrap();
    let refused = "tinymta: run set-group-id, tinymta only queues a message (sendmail without -C, \
                   -bp, -bs or -q); run this as root or as the mail user\n";
    for args in [
        vec!["-c", &queue_file],
        vec![],
        vec!["-t"],
        vec!["test-send", "-C", &queue_file, "x@mx.test"],
        vec!["mailq"],
        vec!["mailq", "-C", own],
        vec!["flush"],
        vec!["passwd", "eve"],
        vec!["sendmail", "-C", &queue_file, "root"],
        vec!["sendmail", "-C", own, "root"],
        vec!["sendmail", "-bp"],
        vec!["sendmail", "-bs"],
        vec!["sendmail", "-q"],
    ] {
        let (code, out, err) = as_daemon(
            dir.path(),
            &server.config_path(),
            &setgid,
            &args,
            b"Subject: x\n\ny\n",
        );
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(77), "", refused),
            "{args:?}"
        );
    }
    // As a `mailq` link too.
    let mailq = dir.path().join("mailq");
    std::os::unix::fs::symlink(&setgid, &mailq).unwrap();
    let (code, _, err) = as_daemon(dir.path(), &server.config_path(), &mailq, &[], b"");
    assert_eq!((code, err.as_str()), (Some(77), refused));
    // Root running the set-group-id binary gives the group up and may do
    // anything: here, list the queue.
    let output = Command::new(&setgid)
        .args(["mailq", "-C"])
        .arg(server.config_path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("<root@mx.test> queued"));
}

#[test]
fn a_symlinked_maildir_defers_the_delivery_and_writes_nothing_elsewhere() {
    let server = Server::start("");
    let elsewhere = support::test_dir();
    let bob = server.mailboxes().join("bob");
    std::os::unix::fs::symlink(elsewhere.path(), &bob).unwrap();
    let id = server.greeted().send_message(
        "a@example.net",
        &["bob@mx.test"],
        b"Subject: for bob\r\n\r\nhello\r\n.\r\n",
    );
    let refusal = format!(
        "4.3.0 local delivery: {}: a symbolic link: not followed",
        bob.display()
    );
    let envelope = server.wait_for_envelope_containing(&id, &format!("error: {refusal}\n"));
    assert!(envelope.contains("\nstatus: 4.3.0\n"), "{envelope}");
    assert!(
        server.log().contains("to=<bob@mx.test> relay=local delay="),
        "{}",
        server.log()
    );
    assert!(server
        .log()
        .contains(&format!("status=deferred ({refusal})")));
    assert!(support::list_dir(elsewhere.path()).is_empty());
}

#[test]
fn root_only_files_stop_neither_an_ordinary_users_sendmail_nor_a_reload() {
    if skip_unless_root() {
        return;
    }
    let ca = support::peers::TestCa::new(&["mx.test"]);
    let secrets = support::test_dir();
    let password = secrets.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&format!(
        "{}\nsmarthost = 127.0.0.1:9\nsmarthost_user = box\nsmarthost_password_file = {}",
        ca.tinymta_config(),
        password.display()
    ));
    let key = ca.ca().with_file_name("key.pem");
    chown(&key, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // sendmail needs no TLS key: an ordinary user's alert is queued.
    let dir = support::test_dir();
    let setgid = setgid_binary(dir.path());
    let (code, _, err) = as_daemon(
        dir.path(),
        &server.config_path(),
        &setgid,
        &["sendmail", "-oi", "root"],
        b"Subject: smart\n\nsda failing\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    server.wait_for_mail("root", 1);
    // The daemon (now nobody) cannot read the key again: a reload keeps the
    // one it read at start-up and applies the rest, and says so once, not
    // at every SIGHUP (issue 13.7).
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        config.replace("hostname = mx.test", "hostname = renamed.test"),
    )
    .unwrap();
    for reloads in 1..=3 {
        server.signal(tinymta::sys::Signal::Reload);
        let deadline = std::time::Instant::now() + support::WAIT;
        while server.log().matches("reloaded ").count() < reloads {
            assert!(std::time::Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let log = server.log();
    let kept = format!(
        "[INFO] reload: {} may be read only before the privilege drop: the TLS certificate \
         and key read at start-up is kept (said once)\n",
        key.display()
    );
    assert_eq!(log.matches(&kept).count(), 1, "{log}");
    let kept = format!(
        "[INFO] reload: {} may be read only before the privilege drop: the smarthost password \
         read at start-up is kept (said once)\n",
        password.display()
    );
    assert_eq!(log.matches(&kept).count(), 1, "{log}");
    assert!(!log.contains("[WARN] reload"), "{log}");
    let mut client = server.connect();
    assert_eq!(client.reply(), "220 renamed.test ESMTP\r\n");
    let ehlo = client.command("EHLO client.test");
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
}

#[test]
fn no_header_line_from_the_command_line_and_no_bare_cr_or_nul_passes_on() {
    let server = Server::start("");
    let mut sendmail = support::tinymta_command();
    sendmail
        .args(["sendmail", "-C"])
        .arg(server.config_path())
        .args(["-F", "Eve\nReply-To: attacker@evil.test", "-oi", "root"]);
    let (code, _, err) = support::run_with_input(
        sendmail,
        b"Subject: disk\rfull\0 now\nX-Tool: a\0b\n\ncopying... 10%\r20%\r100%\nend\0\n",
    );
    assert_eq!((code, err.as_str()), (Some(0), ""));
    let mail = server.wait_for_mail("root", 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    let header_end = text.find("\n\n").unwrap();
    let (headers, body) = text.split_at(header_end);
    assert!(!headers.contains("\nReply-To:"), "{headers}");
    assert!(
        headers.contains("\nFrom: \"Eve Reply-To: attacker@evil.test\" <root@mx.test>\n"),
        "{headers}"
    );
    assert!(headers.contains("\nSubject: disk full now\n"), "{headers}");
    assert!(headers.contains("\nX-Tool: ab\n"), "{headers}");
    // The cron output's progress bar is delivered, its CRs as spaces.
    assert_eq!(body, "\n\ncopying... 10% 20% 100%\nend\n");
    assert!(!mail[0].contains(&b'\r') && !mail[0].contains(&0));
    // By SMTP, a NUL refuses the message (the client is told).
    let mut client = server.greeted();
    client.command("MAIL FROM:<a@example.net>");
    client.command("RCPT TO:<root@mx.test>");
    assert_eq!(
        client.command("DATA"),
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    client.send_raw(b"Subject: x\r\n\r\n\0\r\n.\r\n");
    assert_eq!(
        client.reply(),
        "550 5.6.0 Error: NUL character in message\r\n"
    );
}

/// Sends a@mx.test's message to `to` and returns the one bounce `a` gets.
fn bounce_of(server: &Server, to: &str) -> String {
    let id = server.greeted().send_message(
        "a@mx.test",
        &[to],
        b"Subject: round and round\r\n\r\nx\r\n.\r\n",
    );
    let bounce = server.wait_for_mail("a", 1);
    server.wait_for_empty_queue();
    assert_eq!(server.mail_count("a"), 1);
    assert!(server
        .log()
        .contains(&format!("{id}: sender non-delivery notification")));
    String::from_utf8_lossy(&bounce[0]).into_owned()
}

#[test]
fn mail_for_this_server_itself_bounces_once_and_no_copy_is_made() {
    // Loopback destinations are a loop unless deliver_to_loopback says so.
    let server = Server::start("deliver_to_loopback = no");
    let text = bounce_of(&server, "v@[127.0.0.1]");
    assert!(
        text.contains("\nStatus: 5.4.6\n")
            && text.contains("<v@[127.0.0.1]>: 5.4.6 mail for [127.0.0.1] loops back to myself\n"),
        "{text}"
    );
    // An address and port it listens on is a loop in any case.
    let mut server = Server::start("");
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    let mx_port = config
        .lines()
        .find_map(|l| l.strip_prefix("mx_port = "))
        .unwrap()
        .to_string();
    std::fs::write(
        server.config_path(),
        config.replace(
            &format!("mx_port = {mx_port}"),
            &format!("mx_port = {}", server.port),
        ),
    )
    .unwrap();
    server.signal(tinymta::sys::Signal::Reload);
    server.wait_for_log("reloaded ");
    let text = bounce_of(&server, "v@[127.0.0.1]");
    assert!(text.contains("loops back to myself\n"), "{text}");
    server.kill();
    assert_eq!(
        server.log().matches("accepted from=").count(),
        1,
        "{}",
        server.log()
    );
}

#[test]
fn a_general_address_literal_is_refused_at_rcpt() {
    let server = Server::start("");
    let mut client = server.greeted();
    assert_eq!(client.command("MAIL FROM:<a@mx.test>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        client.command("RCPT TO:<v@[x-tag:abc]>"),
        "501 5.1.3 Error: an address literal must be an IP address\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<v@[192.0.2.1]>"),
        "250 2.1.5 Ok\r\n"
    );
}

#[test]
fn neither_sendmail_nor_mailq_makes_a_directory() {
    let dir = support::test_dir();
    let spool = dir.path().join("victim");
    let config = dir.path().join("c.conf");
    std::fs::write(
        &config,
        format!(
            "hostname = mx.test\nspool_dir = {}\nmailbox_dir = {}\n",
            spool.display(),
            dir.path().join("mail").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (args, input) in [
        (vec!["mailq", "-C", config], &b""[..]),
        (vec!["sendmail", "-C", config, "root"], b"Subject: x\n\ny\n"),
    ] {
        let mut command = support::tinymta_command();
        command.args(&args);
        let (code, _, err) = support::run_with_input(command, input);
        assert_eq!(code, Some(75), "{args:?}: {err}");
        assert!(err.contains("No such file or directory"), "{err}");
    }
    assert!(!spool.exists());
}

#[test]
fn test_send_as_root_follows_the_aliases_and_delivers_as_the_daemons_user() {
    // Issue 13.8: run as root, test-send left a Maildir of root's, and the
    // daemon then deferred that user's mail with `Permission denied`.
    // Root is all it needs: no set-group-id binary, so a runner will do.
    if !support::running_as_root() {
        support::skip("needs root to run test-send as root");
        return;
    }
    use support::peers::{free_port_on, SmtpSink};
    let port = free_port_on("127.0.0.23");
    let sink = SmtpSink::start(format!("127.0.0.23:{port}").parse().unwrap(), &[]);
    let dir = support::test_dir();
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "root: alice, ops@far.test\n").unwrap();
    let server = Server::start(&format!(
        "aliases = {}\nsmarthost = 127.0.0.23:{port}\nsmarthost_tls = none",
        aliases.display()
    ));
    let mail = server.mailboxes();
    let mut test_send = support::tinymta_command();
    test_send
        .args(["test-send", "-C"])
        .arg(server.config_path())
        .arg("root");
    let (code, out, err) = support::run_with_input(test_send, b"");
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    let expected_in_order = [
        "running as nobody, as the daemon does\n".to_string(),
        "root@mx.test: the aliases give alice@mx.test, ops@far.test\n".to_string(),
        format!(
            "alice@mx.test: route: local, into a Maildir in {}\n",
            mail.display()
        ),
        format!(
            "alice@mx.test: result: delivered (delivered to {}/alice/new/",
            mail.display()
        ),
        format!("ops@far.test: route: smarthost 127.0.0.23:{port}\n"),
        "ops@far.test: result: delivered (250 ".to_string(),
    ];
    support::assert_in_order(&out, &expected_in_order);
    let got = sink.wait_for(1);
    assert_eq!(got[0].rcpt_to, ["<ops@far.test>"]);
    // Everything test-send made in mailbox_dir is the daemon's user's.
    let nobody = 65534;
    let alice = mail.join("alice");
    let delivered = support::list_dir(&alice.join("new"));
    assert_eq!(delivered.len(), 1);
    for path in [
        alice.clone(),
        alice.join("tmp"),
        alice.join("new"),
        alice.join("cur"),
        alice.join("new").join(&delivered[0]),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), nobody, "{}", path.display());
    }
    // So the daemon delivers there after it.
    server.greeted().send_message(
        "a@mx.test",
        &["alice@mx.test"],
        b"Subject: after\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_mail("alice", 2);
}
