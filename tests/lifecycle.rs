//! The daemon's life: the privilege drop, signals (TERM, HUP, USR1), and
//! what -t says about users and directories.

mod support;

use std::fs;
use std::time::Duration;

use support::peers::{free_port_on, SmtpSink};
use support::{running_as_root, Dnsmasq, Server};
use tinymta::sys::Signal;

/// The `Uid:` or `Gid:` line of a process: real, effective, saved, fs.
fn ids(pid: u32, which: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(which))
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

fn nobody() -> (u32, u32) {
    let account = tinymta::sys::find_user("nobody")
        .unwrap()
        .expect("user nobody");
    (account.uid, account.gid)
}

#[test]
fn started_as_root_it_becomes_the_configured_user() {
    if !running_as_root() {
        eprintln!("not running as root: nothing to drop; skipped");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = nobody();
    let server = Server::start("");
    assert_eq!(ids(server.pid(), "Uid:"), vec![uid; 4]);
    assert_eq!(ids(server.pid(), "Gid:"), vec![gid; 4]);
    let groups = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let groups = groups
        .lines()
        .find(|l| l.starts_with("Groups:"))
        .unwrap()
        .to_string();
    assert_eq!(
        groups.split_whitespace().skip(1).collect::<Vec<_>>(),
        [gid.to_string()]
    );
    for dir in [
        server.spool(),
        server.spool().join("new"),
        server.spool().join("tmp"),
    ] {
        assert_eq!(fs::metadata(&dir).unwrap().uid(), uid, "{}", dir.display());
    }
    assert!(server.log().contains("running as nobody"));
    // It still works as nobody: mail is delivered into a Maildir of its own.
    server.greeted().send_message(
        "a@mx.test",
        &["root@mx.test"],
        b"Subject: x\r\n\r\ny\r\n.\r\n",
    );
    server.wait_for_mail("root", 1);
    assert_eq!(
        fs::metadata(server.mailboxes().join("root/new"))
            .unwrap()
            .uid(),
        uid
    );
}

#[test]
fn a_missing_user_or_foreign_directories_stop_it_as_root() {
    if !running_as_root() {
        eprintln!("not running as root; skipped");
        return;
    }
    let dir = support::test_dir();
    let conf = dir.path().join("t.conf");
    let spool = dir.path().join("spool");
    fs::write(
        &conf,
        format!(
            "user = no-such-user-here\nspool_dir = {}\nmailbox_dir = {}\nlisten = 127.0.0.1:{}\n",
            spool.display(),
            dir.path().join("mail").display(),
            support::free_port()
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let expected =
        "tinymta: user \"no-such-user-here\" does not exist: create it, or name another in \
                    `user` (tinymta will not run as root)\n";
    assert_eq!(
        support::run_tinymta(&["-t", "-c", conf]),
        (Some(1), String::new(), expected.to_string())
    );
    assert_eq!(
        support::run_tinymta(&["-c", conf]),
        (Some(1), String::new(), expected.to_string())
    );
    // A spool that belongs to root, not to the user.
    let text = fs::read_to_string(conf)
        .unwrap()
        .replace("no-such-user-here", "nobody");
    fs::write(conf, text).unwrap();
    fs::create_dir(&spool).unwrap();
    let (uid, _) = nobody();
    let (code, _, stderr) = support::run_tinymta(&["-t", "-c", conf]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "tinymta: spool_dir {} belongs to uid 0, not to uid {uid}\n",
            spool.display()
        )
    );
}

#[test]
fn sigterm_ends_a_session_in_data_with_421_and_leaves_no_partial_file() {
    let mut server = Server::start("shutdown_grace = 1s");
    let mut c = server.greeted();
    c.begin_data("a@mx.test", &["root@mx.test"]);
    c.send_raw(b"Subject: half\r\n\r\nthe first half of a message\r\n");
    // The message file exists in tmp/ while the data comes in.
    let deadline = std::time::Instant::now() + support::WAIT;
    while server.tmp_files().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal(Signal::Terminate);
    assert_eq!(c.reply(), "421 4.3.2 mx.test Service shutting down\r\n");
    assert!(c.closed());
    assert_eq!(server.wait_for_exit(support::WAIT), Some(0));
    assert!(server.tmp_files().is_empty(), "{:?}", server.tmp_files());
    assert!(server.queue_files().is_empty());
    assert!(server.log().contains("shutting down"));
    assert!(server.log().contains("stopped"));
}

#[test]
fn sigterm_lets_a_quick_session_finish() {
    let mut server = Server::start("shutdown_grace = 10s");
    let mut c = server.greeted();
    c.begin_data("a@mx.test", &["root@mx.test"]);
    server.signal(Signal::Terminate);
    server.wait_for_log("shutting down");
    // Within the grace time the transaction completes normally.
    c.send_raw(b"Subject: done\r\n\r\nin time\r\n.\r\n");
    let id = support::queue_id(&c.reply());
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    assert_eq!(server.wait_for_exit(support::WAIT), Some(0));
    let files = server.queue_files();
    assert!(
        files.contains(&format!("{id}.msg")) || server.mail_count("root") == 1,
        "the acknowledged message is queued or delivered: {files:?}"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_running_and_a_good_one_takes_effect() {
    let server = Server::start("");
    let good = fs::read_to_string(server.config_path()).unwrap();
    fs::write(server.config_path(), format!("{good}\nbogus_key = 1\n")).unwrap();
    server.signal(Signal::Reload);
    server.wait_for_log("reload: ");
    assert!(server
        .log()
        .contains("bogus_key: unknown key; keeping the running config"));
    let mut c = server.connect();
    assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    // A good config with another name: new sessions use it.
    fs::write(
        server.config_path(),
        good.replace("hostname = mx.test", "hostname = renamed.test"),
    )
    .unwrap();
    server.signal(Signal::Reload);
    server.wait_for_log("reloaded ");
    let mut c = server.connect();
    assert_eq!(c.reply(), "220 renamed.test ESMTP\r\n");
}

#[test]
fn sighup_reopens_the_log_file() {
    let server = Server::start("");
    let log = server.log_path();
    let rotated = log.with_extension("1");
    // The server may run as nobody: let it create the new file.
    if running_as_root() {
        let (uid, gid) = nobody();
        std::os::unix::fs::chown(log.parent().unwrap(), Some(uid), Some(gid)).unwrap();
    }
    fs::rename(&log, &rotated).unwrap();
    server.signal(Signal::Reload);
    server.wait_for_log("reloaded ");
    assert!(fs::read_to_string(&rotated).unwrap().contains("started"));
    assert!(!fs::read_to_string(&log).unwrap().contains("started"));
}

#[test]
fn sigusr1_runs_deferred_mail_now() {
    let port = free_port_on("127.0.0.16");
    let dns = Dnsmasq::start(&["--host-record=later.test,127.0.0.16"]);
    // The next attempt would be in an hour.
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\nretry_min = 1h\nretry_max = 1h",
        dns.config_line()
    ));
    let id = server.greeted().send_message(
        "a@mx.test",
        &["ops@later.test"],
        b"Subject: soon\r\n\r\nx\r\n.\r\n",
    );
    server.wait_for_envelope_containing(&id, "recipient: queued attempts=1");
    let sink = SmtpSink::start(format!("127.0.0.16:{port}").parse().unwrap(), &[]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty(), "not before the flush");
    server.signal(Signal::RunQueue);
    sink.wait_for(1);
    server.wait_for_empty_queue();
    assert!(server.log().contains("flushing the queue"));
}

#[test]
fn syslog_records_reach_the_socket_with_facility_mail() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let dir = support::test_dir();
    let path = dir.path().join("log.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    // Like /dev/log: anyone may write (the server may run as nobody).
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    socket.set_read_timeout(Some(support::WAIT)).unwrap();
    let server = Server::start(&format!(
        "log = syslog\nsyslog_socket = {}\nlog_level = info",
        path.display()
    ));
    let mut records = Vec::new();
    let read_until = |needle: &str, records: &mut Vec<String>| loop {
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf).expect("a syslog datagram");
        let record = String::from_utf8_lossy(&buf[..n]).into_owned();
        records.push(record.clone());
        if record.contains(needle) {
            return record;
        }
    };
    let started = read_until("started", &mut records);
    // <PRI> is facility mail (2) * 8 + info (6) = 22.
    let prefix = format!(
        " tinymta[{}]: tinymta {} started: ",
        server.pid(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(started.starts_with("<22>"), "{started}");
    assert_eq!(
        &started[4..7],
        &tinymta::time::syslog_timestamp(0)[..3].replace("Jan", &started[4..7])
    );
    assert!(started[19..].starts_with(&prefix), "{started}");
    let id = server.greeted().send_message(
        "a@mx.test",
        &["root@mx.test"],
        b"Subject: s\r\n\r\nx\r\n.\r\n",
    );
    let accepted = read_until(&format!("{id}: accepted"), &mut records);
    assert!(accepted.starts_with("<22>"), "{accepted}");
    assert!(!accepted.contains('\n'));
    assert!(
        !records
            .iter()
            .any(|r| r.contains("DEBUG") || r.starts_with("<23>")),
        "log_level = info"
    );
}
