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
        support::skip("not running as root: nothing to drop");
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
        support::skip("not running as root");
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

/// The text of `path` once it contains `text`.
fn wait_for_text(path: &std::path::Path, text: &str) -> String {
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let now = fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never had {text:?}:\n{now}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn after_the_privilege_drop_sighup_reopens_a_log_file_logrotate_moved() {
    // Issue 13.7: the log file was root's, and every SIGHUP said
    // `cannot reopen the log file: Permission denied`.
    if !running_as_root() {
        support::skip("not running as root: no privilege drop");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (uid, gid) = nobody();
    let owner = |path: &std::path::Path| {
        let meta = fs::metadata(path).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    };
    // A directory of its own that does not exist yet: made for the user,
    // which may then make a new file there (logrotate without `create`).
    let logs = support::test_dir();
    let own_dir = logs.path().join("tinymta");
    let log = own_dir.join("tinymta.log");
    let server = Server::start(&format!("log = {}", log.display()));
    assert_eq!(owner(&own_dir), (uid, gid, 0o755));
    assert_eq!(owner(&log), (uid, gid, 0o600));
    fs::rename(&log, own_dir.join("tinymta.log.1")).unwrap();
    server.signal(Signal::Reload);
    let new = wait_for_text(&log, "reloaded ");
    assert!(!new.contains("started") && !new.contains("cannot"), "{new}");
    let old = fs::read_to_string(own_dir.join("tinymta.log.1")).unwrap();
    assert!(
        old.contains("started") && !old.contains("reloaded"),
        "{old}"
    );
    assert_eq!(owner(&log), (uid, gid, 0o600));
    drop(server);

    // In a directory of root's, a log file an older version left to root:
    // given to the user at start-up, and the directory is said.
    let server = Server::start("");
    let log = server.log_path();
    assert_eq!(owner(&log), (uid, gid, 0o600));
    let dir = server.dir.path();
    assert!(
        server.log().contains(&format!(
            "[WARN] log file {}: nobody may not make files in {}, so after logrotate moves the \
             file away SIGHUP can only reopen one logrotate makes (`create 0600 nobody`); or put \
             the log in a directory of its own (log = {}/tinymta/tinymta.log)\n",
            log.display(),
            dir.display(),
            dir.display()
        )),
        "{}",
        server.log()
    );
    // logrotate with `create 0600 nobody`: the new file is there already.
    fs::rename(&log, dir.join("tinymta.log.1")).unwrap();
    fs::write(&log, "").unwrap();
    std::os::unix::fs::chown(&log, Some(uid), None).unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o600)).unwrap();
    server.signal(Signal::Reload);
    let new = wait_for_text(&log, "reloaded ");
    assert!(!new.contains("cannot"), "{new}");
    // Without `create`, the user cannot make the file: the error and what to
    // do go to the file still open.
    fs::rename(&log, dir.join("tinymta.log.2")).unwrap();
    server.signal(Signal::Reload);
    let old = wait_for_text(&dir.join("tinymta.log.2"), "cannot reopen");
    assert!(
        old.contains(
            "[ERROR] cannot reopen the log file: Permission denied (os error 13) (this user may \
             not make a file there: have logrotate make it with `create`, or put the log in a \
             directory of its own)\n"
        ),
        "{old}"
    );
    assert!(!log.exists());
}

#[test]
fn a_start_up_error_reaches_syslog_when_standard_error_is_no_terminal() {
    // Issue 13.6: under `start-stop-daemon -b`, standard error is /dev/null.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let dir = support::test_dir();
    let path = dir.path().join("log.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    socket.set_read_timeout(Some(support::WAIT)).unwrap();
    // The port is taken: the daemon cannot listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let conf = dir.path().join("t.conf");
    fs::write(
        &conf,
        format!(
            "listen = 127.0.0.1:{port}\nspool_dir = {}\nmailbox_dir = {}\nuser = nobody\n\
             log = stderr\nsyslog_socket = {}\n",
            dir.path().join("spool").display(),
            dir.path().join("mail").display(),
            path.display()
        ),
    )
    .unwrap();
    let reason = format!("cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)");
    let (code, out, err) = support::run_tinymta(&["-c", conf.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str(), support::errno_words_left_out(&err)),
        (
            Some(1),
            "",
            support::errno_words_left_out(&format!("tinymta: {reason}\n"))
        )
    );
    let mut buf = [0u8; 2048];
    let n = socket
        .recv(&mut buf)
        .expect("the error, on the syslog socket");
    let record = String::from_utf8_lossy(&buf[..n]).into_owned();
    // <19>: facility mail (2) * 8 + error (3).
    assert!(record.starts_with("<19>"), "{record}");
    assert!(
        support::errno_words_left_out(&record)
            .ends_with(&support::errno_words_left_out(&format!("]: {reason}"))),
        "{record}"
    );
    assert!(record[19..].starts_with(" tinymta["), "{record}");
}

#[test]
fn dash_t_checks_the_files_and_directories_the_daemon_makes() {
    // Issue 13.6: -t said `config ok` for what then stopped the daemon.
    let dir = support::test_dir();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let conf = dir.path().join("t.conf");
    fs::write(
        &conf,
        format!(
            "listen = 127.0.0.1:{}\nspool_dir = {f}/spool\nmailbox_dir = {d}/mail\n\
             user = nobody\nlog = {f}/tinymta.log\npid_file = {f}/tinymta.pid\n",
            support::free_port(),
            f = file.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let f = file.display();
    assert_eq!(
        support::run_tinymta(&["-t", "-c", conf.to_str().unwrap()]),
        (
            Some(1),
            String::new(),
            format!(
                "tinymta: spool_dir {f}/spool cannot be made: its parent directory is not writable\n\
                 tinymta: log {f}/tinymta.log cannot be made: its directory is not writable\n\
                 tinymta: pid_file {f}/tinymta.pid cannot be made: its directory is not writable\n"
            )
        )
    );
    // A log file that is a symlink is never opened (root gives it away).
    let text = fs::read_to_string(&conf).unwrap();
    let log = dir.path().join("tinymta.log");
    std::os::unix::fs::symlink(&file, &log).unwrap();
    fs::write(
        &conf,
        text.replace(
            &format!("{f}/spool"),
            &format!("{}/spool", dir.path().display()),
        )
        .replace(&format!("{f}/tinymta.log"), &log.display().to_string())
        .replace(
            &format!("{f}/tinymta.pid"),
            &format!("{}/pid", dir.path().display()),
        ),
    )
    .unwrap();
    let (code, out, err) = support::run_tinymta(&["-t", "-c", conf.to_str().unwrap()]);
    assert_eq!(
        (code, out, support::errno_words_left_out(&err)),
        (
            Some(1),
            String::new(),
            format!("tinymta: log {}: (os error 40)\n", log.display())
        )
    );
    fs::remove_file(&log).unwrap();
    assert_eq!(
        support::run_tinymta(&["-t", "-c", conf.to_str().unwrap()]),
        (Some(0), "config ok\n".to_string(), String::new())
    );
    // -t made nothing.
    assert_eq!(
        support::list_dir(dir.path()),
        ["a-file", "t.conf"].map(String::from)
    );
}

#[test]
fn mailbox_dir_is_made_by_the_first_local_delivery_and_a_box_that_only_forwards_needs_none() {
    // Issue 13.8: a box that only forwards would not start without a
    // mailbox_dir it never uses.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let port = free_port_on("127.0.0.24");
    let sink = SmtpSink::start(format!("127.0.0.24:{port}").parse().unwrap(), &[]);
    let parents = support::test_dir();
    let forward_only = |mailbox_dir: &std::path::Path| {
        Server::start(&format!(
            "mailbox_dir = {}\nsmarthost = 127.0.0.24:{port}\nsmarthost_tls = none",
            mailbox_dir.display()
        ))
    };
    // Its parent missing too: it starts and forwards.
    let missing = parents.path().join("none").join("mail");
    let server = forward_only(&missing);
    server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: out\r\n\r\nx\r\n.\r\n",
    );
    sink.wait_for(1);
    server.wait_for_empty_queue();
    assert!(!parents.path().join("none").exists());
    if running_as_root() {
        // nobody may not make it in a directory of root's: said at start,
        // and local mail waits with the reason.
        assert!(server.log().contains(&format!(
            "[WARN] mailbox_dir {} does not exist and nobody may not make it: local mail is \
             deferred until it exists (make it for nobody, mode 0700); mail that leaves the box \
             is not affected\n",
            missing.display()
        )));
        let id = server.greeted().send_message(
            "a@mx.test",
            &["root@mx.test"],
            b"Subject: local\r\n\r\nx\r\n.\r\n",
        );
        server.wait_for_envelope_containing(
            &id,
            &format!(
                "local delivery: cannot make mailbox_dir {}: Permission denied (os error 13)",
                missing.display()
            ),
        );
    }
    drop(server);
    // In a directory the user may write: made by the first local delivery,
    // as the user, mode 0700.
    let own = parents.path().join("own");
    fs::create_dir(&own).unwrap();
    let (uid, gid) = if running_as_root() {
        nobody()
    } else {
        (tinymta::sys::effective_uid(), 0)
    };
    if running_as_root() {
        std::os::unix::fs::chown(&own, Some(uid), Some(gid)).unwrap();
    }
    let mailbox_dir = own.join("mail");
    let server = forward_only(&mailbox_dir);
    assert!(server.log().contains(&format!(
        "[INFO] mailbox_dir {} does not exist yet: it is made at the first local delivery\n",
        mailbox_dir.display()
    )));
    assert!(!mailbox_dir.exists());
    server.greeted().send_message(
        "a@mx.test",
        &["root@mx.test"],
        b"Subject: local\r\n\r\nx\r\n.\r\n",
    );
    let deadline = std::time::Instant::now() + support::WAIT;
    while support::list_dir(&mailbox_dir.join("root/new")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let meta = fs::metadata(&mailbox_dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o7777),
        (uid, 0o700)
    );
}
