//! What tinymta says at start-up about what a router gets wrong without
//! noticing: a spool in memory (OpenWrt's /var is tmpfs), and a clock
//! before the build (no battery-backed clock, NTP not there yet), with
//! what such a clock does to delivery through TLS: it defers, and the
//! mail leaves once the clock is set.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::peers::{free_port_on, TestCa, Upstream};
use support::Server;
use tinymta::time::{build_time, rfc5322_date, unix_now};

/// The start-up line that has `text` in it.
fn log_line(server: &Server, text: &str) -> String {
    server.wait_for_log(text);
    let log = server.log();
    log.lines()
        .find(|line| line.contains(text))
        .unwrap()
        .to_string()
}

/// Whether a test that needs root for `why` is skipped (counted: support::skip).
fn skipped_without_root(why: &str) -> bool {
    let skipped = !support::running_as_root();
    if skipped {
        support::skip(&format!("needs root {why}"));
    }
    skipped
}

#[test]
fn a_spool_on_tmpfs_is_said_to_lose_queued_mail_at_reboot() {
    if skipped_without_root("to mount a tmpfs (in a private mount namespace)") {
        return;
    }
    let mnt = support::test_dir();
    let spool = mnt.path().join("spool");
    // The spool is a tmpfs mounted in the server's own mount namespace:
    // the machine's mounts are untouched, and it goes when the server ends.
    let wrapper: Vec<String> = [
        "unshare",
        "-m",
        "sh",
        "-c",
        "mkdir -p \"$0\" && mount -t tmpfs -o mode=0755 tmpfs \"$0\" && exec \"$@\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([spool.display().to_string()])
    .collect();
    let server = Server::start_through(&wrapper, &format!("spool_dir = {}", spool.display()));
    let line = log_line(&server, "spool_dir");
    assert!(
        line.ends_with(&format!(
            "[WARN] spool_dir {} is on tmpfs: queued mail will be lost at reboot; put spool_dir \
             on persistent storage",
            spool.display()
        )),
        "{line}"
    );
    // The same spool on the disk: no word about it.
    let on_disk = Server::start("");
    on_disk.wait_for_log(" started: ");
    assert!(!on_disk.log().contains("is on tmpfs"), "{}", on_disk.log());
}

#[test]
fn a_spool_dir_below_a_missing_directory_is_reached_by_the_user() {
    if skipped_without_root("to start as root and become nobody") {
        return;
    }
    // As /etc/tinymta/spool on OpenWrt, where /etc/tinymta does not exist:
    // root makes it 0755 (not 0700, as its umask 077 would), so that the
    // user reaches the queue.
    let dir = support::test_dir();
    let spool = dir.path().join("etc/tinymta/spool");
    let server = Server::start(&format!("spool_dir = {}", spool.display()));
    for made in [dir.path().join("etc"), dir.path().join("etc/tinymta")] {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::metadata(&made).unwrap();
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o7777),
            (0, 0o755),
            "{}",
            made.display()
        );
    }
    server.greeted().send_message(
        "root@mx.test",
        &["postmaster@mx.test"],
        b"Subject: up\r\n\r\nthe queue is reached\r\n.\r\n",
    );
    server.wait_for_mail("postmaster", 1);
    assert!(!server.log().contains("[ERROR]"), "{}", server.log());
}

/// libfaketime, preloaded into the (dynamic, native) binary.
fn libfaketime() -> Option<PathBuf> {
    let lib = fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    lib.or_else(|| {
        let p = Path::new("/usr/lib/faketime/libfaketimeMT.so.1");
        p.exists().then(|| p.to_path_buf())
    })
}

/// How far back the faked clock is: about 25 years, as a router's clock
/// that starts at its firmware's date (or at 1970) may be.
const DAYS_BACK: u64 = 9000;

#[test]
fn a_clock_before_the_build_is_said_and_tls_delivery_defers_until_it_is_set() {
    if std::env::var_os("TINYMTA_RUNNER").is_some() {
        support::skip("libfaketime cannot be preloaded into a static binary under qemu");
        return;
    }
    let built = build_time().expect("build.rs embeds the commit time (a git checkout)");
    let lib = libfaketime().expect("libfaketime (Debian's faketime; tests/peers/install)");
    // The faked time is read again at every call from this file, so the
    // test can set the clock, as NTP does, while the daemon runs.
    let clock = support::test_dir();
    let clock_file = clock.path().join("faketime");
    fs::write(&clock_file, format!("-{DAYS_BACK}d\n")).unwrap();
    let wrapper = vec![
        "env".to_string(),
        format!("LD_PRELOAD={}", lib.display()),
        format!("FAKETIME_TIMESTAMP_FILE={}", clock_file.display()),
        "FAKETIME_NO_CACHE=1".to_string(),
        // Timeouts and retries run on the monotonic clock, which is right.
        "FAKETIME_DONT_FAKE_MONOTONIC=1".to_string(),
    ];

    // A smarthost whose certificate is valid from now: not yet, for a
    // clock 25 years back.
    let ca = TestCa::new(&["smarthost.test"]);
    let ip = "127.0.0.45";
    let port = free_port_on(ip);
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let upstream = Upstream::start(addr, &ca.server_options());
    let hosts = clock.path().join("hosts");
    fs::write(&hosts, format!("{ip} smarthost.test\n")).unwrap();
    let before = unix_now() - DAYS_BACK * 86400;
    let server = Server::start_through(
        &wrapper,
        &format!(
            "smarthost = smarthost.test:{port}\ntls_ca_file = {}\nhosts_file = {}\n\
             retry_min = 1s\nretry_max = 1s\nqueue_lifetime = 1d",
            ca.ca().display(),
            hosts.display()
        ),
    );
    let after = unix_now() - DAYS_BACK * 86400;
    let line = log_line(&server, "the clock says");
    let said_at = |now: u64| {
        format!(
            "[WARN] the clock says {}, before this tinymta was built ({}): TLS certificates will \
             look not yet valid, and delivery that checks them defers (it never bounces) until \
             the clock is set (NTP)",
            rfc5322_date(now),
            rfc5322_date(built)
        )
    };
    assert!(
        (before..=after).any(|now| line.ends_with(&said_at(now))),
        "{line}\nexpected {}",
        said_at(before)
    );

    // Mail through the smarthost is deferred with the reason, not bounced.
    let id = server.greeted().send_message(
        "root@mx.test",
        &["ops@far.test"],
        b"Subject: disk\r\n\r\nfull\r\n.\r\n",
    );
    let envelope = server.wait_for_envelope_containing(&id, "valid only from");
    assert!(envelope.contains("recipient: queued"), "{envelope}");
    assert!(envelope.contains("this box's clock says"), "{envelope}");
    assert!(upstream.messages().is_empty());

    // NTP sets the clock, 25 years on: far past queue_lifetime, and still
    // the message leaves (expiry needs the attempts to agree), unbounced.
    fs::write(&clock_file, "+0\n").unwrap();
    server.signal(tinymta::sys::Signal::RunQueue);
    let received = upstream.wait_for(1);
    assert_eq!(received[0].rcpt_to, vec!["<ops@far.test>".to_string()]);
    server.wait_for_empty_queue();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.mail_count("root"), 0, "a bounce was delivered");
    assert!(server.queue_files().is_empty());
}
