//! The server's defences: relay control, per-address and error limits,
//! slow clients, session and header limits.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::peers::{free_port_on, SmtpSink};
use support::{Client, Dnsmasq, Server};

/// A server that lets only 127.0.0.1 relay; tests connect from 127.0.0.2.
fn strict_server(extra: &str) -> Server {
    Server::start(&format!("relay_networks = 127.0.0.1/32\n{extra}"))
}

fn greeted_from(source: &str, server: &Server) -> Client {
    let mut c = Client::connect_from(source, server);
    assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    assert!(c.command("EHLO outside.test").starts_with("250-"));
    c
}

#[test]
fn no_message_from_an_outsider_reaches_a_non_local_recipient() {
    // far.test has a real MX here: anything relayed would arrive at it.
    let port = free_port_on("127.0.0.15");
    let dns = Dnsmasq::start(&["--host-record=far.test,127.0.0.15"]);
    let sink = SmtpSink::start(format!("127.0.0.15:{port}").parse().unwrap(), &[]);
    let server = strict_server(&format!(
        "{}\nmx_port = {port}\nmax_errors = 50",
        dns.config_line()
    ));
    let mut c = greeted_from("127.0.0.2", &server);
    assert_eq!(
        c.command("MAIL FROM:<spammer@far.test>"),
        "250 2.1.0 Ok\r\n"
    );
    let denied = "550 5.7.1 Error: relaying denied\r\n";
    for trick in [
        "victim@far.test",
        "victim@FAR.TEST",
        "postmaster@far.test",
        "victim%far.test@mx.test",
        "far.test!victim@mx.test",
        "\"victim@far.test\"@mx.test",
        "\"victim%far.test\"@mx.test",
        "@mx.test:victim@far.test",
        "@mx.test,@localhost:victim@far.test",
        "victim@[127.0.0.15]",
        "victim@[IPv6:::1]",
    ] {
        assert_eq!(c.command(&format!("RCPT TO:<{trick}>")), denied, "{trick}");
    }
    // Names that are not names at all are refused as syntax.
    for bad in ["victim@far.test.", "victim@far..test", "<victim@far.test>"] {
        assert!(
            c.command(&format!("RCPT TO:<{bad}>"))
                .starts_with("501 5.1.3 "),
            "{bad}"
        );
    }
    // Local mail is fine, and the message goes nowhere else.
    assert_eq!(c.command("RCPT TO:<root@mx.test>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send_raw(b"Subject: relay?\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as "));
    server.wait_for_mail("root", 1);
    server.wait_for_empty_queue();
    // The same tricks from the relay network are relaying, and allowed.
    let mut inside = server.greeted();
    assert_eq!(
        inside.command("MAIL FROM:<box@mx.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(inside.command("RCPT TO:<ops@far.test>"), "250 2.1.5 Ok\r\n");
    std::thread::sleep(Duration::from_millis(500));
    assert!(sink.messages().is_empty());
}

#[test]
fn per_address_limit_spares_the_relay_network() {
    let server = strict_server("max_connections_per_ip = 2");
    let mut first = greeted_from("127.0.0.2", &server);
    let _second = greeted_from("127.0.0.2", &server);
    let mut third = Client::connect_from("127.0.0.2", &server);
    assert_eq!(
        third.reply(),
        "421 4.7.0 mx.test Error: too many connections from your address\r\n"
    );
    assert!(third.closed());
    // Another address is not affected, and neither is the relay network.
    let _other = greeted_from("127.0.0.3", &server);
    let locals: Vec<Client> = (0..4).map(|_| server.greeted()).collect();
    assert_eq!(locals.len(), 4);
    // A place comes back when a client leaves.
    assert_eq!(first.command("QUIT"), "221 2.0.0 Bye\r\n");
    assert!(first.closed());
    let deadline = Instant::now() + support::WAIT;
    loop {
        let mut again = Client::connect_from("127.0.0.2", &server);
        if again.reply() == "220 mx.test ESMTP\r\n" {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn too_many_errors_end_the_session() {
    let server = Server::start("max_errors = 3");
    let mut c = server.greeted();
    for _ in 0..3 {
        assert_eq!(
            c.command("BOGUS"),
            "500 5.5.1 Error: command not recognized\r\n"
        );
    }
    assert_eq!(c.command("MAIL FROM:<a@b.test>"), "250 2.1.0 Ok\r\n");
    assert_eq!(
        c.command(&format!("NOOP {}", "x".repeat(600))),
        "421 4.7.0 mx.test Error: too many errors\r\n"
    );
    assert!(c.closed());
}

/// Sends `bytes` one every 200 ms; returns the reply that ends it, if any.
fn drip(c: &mut Client, bytes: &[u8]) -> String {
    for byte in bytes {
        if c.send_raw_checked(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if let Some(reply) = c.try_reply() {
            return reply;
        }
    }
    String::new()
}

#[test]
fn a_client_sending_one_byte_at_a_time_is_cut_off() {
    let server = Server::start("command_timeout = 2s\ndata_timeout = 2s");
    let mut c = server.greeted();
    let started = Instant::now();
    // A byte every 200 ms never finishes a line within the 2 s allowed.
    let line = [&b"NOOP "[..], &b"x".repeat(100)].concat();
    assert_eq!(
        drip(&mut c, &line),
        "421 4.4.2 mx.test Error: timeout exceeded\r\n"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The same inside DATA: the message must be complete within data_timeout
    // (commands have all the time they need here).
    let server = Server::start("command_timeout = 60s\ndata_timeout = 2s");
    let mut c = server.greeted();
    c.begin_data("a@mx.test", &["root@mx.test"]);
    assert_eq!(
        drip(&mut c, &b"y".repeat(100)),
        "421 4.4.2 mx.test Error: timeout exceeded\r\n"
    );
    assert!(server.queue_files().is_empty());
    assert!(server.tmp_files().is_empty());
}

#[test]
fn a_session_has_a_time_limit() {
    let server = Server::start("max_session_time = 2s");
    let mut c = server.greeted();
    let mut last = String::new();
    for _ in 0..50 {
        last = c.command("NOOP");
        if !last.starts_with("250") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        last,
        "421 4.4.2 mx.test Error: session time limit exceeded\r\n"
    );
    assert!(c.closed());
}

#[test]
fn the_header_section_has_a_size_limit() {
    let server = Server::start("max_header_size = 1k");
    let mut c = server.greeted();
    c.begin_data("a@mx.test", &["root@mx.test"]);
    let mut big = "X-Filler: 123456789012345678901234567890\r\n".repeat(30);
    big.push_str("\r\nbody\r\n.\r\n");
    c.send_raw(big.as_bytes());
    assert_eq!(
        c.reply(),
        "552 5.3.4 Error: message header size exceeds limit\r\n"
    );
    // The same amount of text in the body is fine.
    let mut body = "Subject: small\r\n\r\n".to_string();
    body.push_str(&"X-Filler: 123456789012345678901234567890\r\n".repeat(30));
    body.push_str(".\r\n");
    c.send_message("a@mx.test", &["root@mx.test"], body.as_bytes());
    server.wait_for_mail("root", 1);
    let _ = std::io::stdout().flush();
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_flood_of_1000_connections_leaves_memory_bounded() {
    support::raise_fd_limit(4096);
    let server = Server::start("max_connections = 16\ncommand_timeout = 30s");
    let (idle_rss, _) = memory_kib(server.pid());
    let mut flood = Vec::new();
    for _ in 0..1000 {
        let stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        flood.push(Client::from_stream(stream));
    }
    let (flood_rss, _) = memory_kib(server.pid());
    // Each got an answer at once: a session, or 421 and the door.
    let mut sessions = 0;
    let mut refused = 0;
    for client in &mut flood {
        let reply = client.reply();
        if reply == "220 mx.test ESMTP\r\n" {
            sessions += 1;
        } else {
            assert_eq!(
                reply,
                "421 4.3.2 mx.test Error: too many connections, try again later\r\n"
            );
            refused += 1;
        }
    }
    assert_eq!(sessions + refused, 1000);
    assert!(sessions <= 16, "{sessions} sessions");
    drop(flood);
    // Once the flood is gone, new clients are served.
    let deadline = Instant::now() + support::WAIT;
    loop {
        let mut c = server.connect();
        if c.reply() == "220 mx.test ESMTP\r\n" {
            assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
            break;
        }
        assert!(Instant::now() < deadline, "not served after the flood");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (after_rss, peak_rss) = memory_kib(server.pid());
    eprintln!(
        "flood of 1000: {sessions} sessions, {refused} refused; RSS idle {idle_rss} KiB, \
         during {flood_rss} KiB, after {after_rss} KiB, peak {peak_rss} KiB"
    );
    // Bounded: a pool of 16 sessions, not 1000 of anything.
    assert!(peak_rss < 32 * 1024, "peak RSS {peak_rss} KiB");
}

/// Issue 12, item 4: strangers' slow sessions (4 from each of 127.0.0.2 to
/// 127.0.0.9, each at max_connections_per_ip) once took every place and the
/// box's own 127.0.0.1 got 421 4.3.2. With the defaults (16 places, a
/// quarter reserved for relay_networks) they get 12, and the box still
/// gets in and sends its alert.
#[test]
fn strangers_cannot_take_the_places_reserved_for_the_relay_network() {
    let server = strict_server("");
    let mut held = Vec::new();
    let mut refused = 0;
    for n in 2..=9 {
        for _ in 0..4 {
            let mut c = Client::connect_from(&format!("127.0.0.{n}"), &server);
            let reply = c.reply();
            if reply == "220 mx.test ESMTP\r\n" {
                held.push(c);
            } else {
                assert_eq!(
                    reply,
                    "421 4.3.2 mx.test Error: too many connections, try again later\r\n"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (12, 20));
    // The 4 reserved places are the relay network's, all of them.
    let mut alerts: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for c in &mut alerts {
        assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
    }
    let c = &mut alerts[0];
    assert!(c.command("EHLO box.test").starts_with("250-mx.test\r\n"));
    c.send_message(
        "smartd@mx.test",
        &["root@mx.test"],
        b"Subject: disk failing\r\n\r\nsda\r\n.\r\n",
    );
    server.wait_for_mail("root", 1);
    // The strangers still hold their places and are served.
    assert_eq!(held[0].command("NOOP"), "250 2.0.0 Ok\r\n");
}

/// Postfix's stress mode: while max_connections - reserved_connections
/// sessions run, outsiders get stress_command_timeout for a command, those
/// already waiting when stress begins too; the relay network keeps
/// command_timeout, and so do outsiders when there is no stress.
#[test]
fn under_stress_outsiders_get_the_short_command_timeout() {
    let server = strict_server(
        "max_connections = 6\nreserved_connections = 2\nstress_command_timeout = 1s\n\
         command_timeout = 30s",
    );
    // One outsider alone is no stress: it may idle past the short timeout.
    let mut first = greeted_from("127.0.0.2", &server);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(first.command("NOOP"), "250 2.0.0 Ok\r\n");
    // Four outsiders (and a relay client): stress.
    let started = Instant::now();
    let mut others: Vec<Client> = (3..=5)
        .map(|n| greeted_from(&format!("127.0.0.{n}"), &server))
        .collect();
    let mut local = server.greeted();
    let timeout = "421 4.4.2 mx.test Error: timeout exceeded\r\n";
    for c in std::iter::once(&mut first).chain(others.iter_mut()) {
        assert_eq!(c.reply(), timeout);
        assert!(c.closed());
    }
    // Dropped after the stress timeout (looked at every second), long
    // before command_timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(server
        .log()
        .contains("timeout under stress from 127.0.0.2:"));
    // The relay client waited as long, and is still served.
    assert_eq!(local.command("NOOP"), "250 2.0.0 Ok\r\n");
    // The stress is over once their sessions have closed: a new outsider
    // may take its time again.
    drop(first);
    drop(others);
    let deadline = Instant::now() + support::WAIT;
    let mut later = loop {
        let mut c = Client::connect_from("127.0.0.6", &server);
        if c.reply() == "220 mx.test ESMTP\r\n" {
            break c;
        }
        assert!(Instant::now() < deadline, "no place after the stress");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(later.command("NOOP"), "250 2.0.0 Ok\r\n");
}
