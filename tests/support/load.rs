//! SMTP clients that keep sending, and the kill -9 rounds run under them:
//! the short round of `make test` (tests/faults.rs) and the long one of
//! `make stress` (tests/stress.rs) are this one function with a number of
//! rounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Client, Server, WAIT};

/// The body of the message with `subject`: 20 lines of 98 octets, then a
/// last line that names it, so a message cut short is seen.
fn body_of(subject: &str) -> String {
    format!(
        "{}end of {subject}\r\n",
        format!("{}\r\n", "z".repeat(98)).repeat(20)
    )
}

/// Sends messages to `rcpt` until the connection fails or `stop` is set;
/// records the subjects acknowledged.
pub fn client_loop(
    port: u16,
    tag: String,
    rcpt: &str,
    stop: Arc<AtomicBool>,
    promised: Arc<Mutex<Vec<String>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let mut c = Client::from_stream(stream);
        let step = |c: &mut Client, line: &str, want: &str| -> bool {
            if !line.is_empty()
                && c.send_raw_checked(format!("{line}\r\n").as_bytes())
                    .is_err()
            {
                return false;
            }
            let reply = c.try_read_reply();
            if std::env::var_os("STRESS_DEBUG").is_some() {
                eprintln!("{line:.20} -> {reply:?}");
            }
            reply.is_ok_and(|r| r.starts_with(want))
        };
        if !step(&mut c, "", "220") || !step(&mut c, "EHLO stress.test", "250") {
            return;
        }
        for _ in 0..5 {
            let subject = format!("{tag}-{n}");
            n += 1;
            if !step(&mut c, "MAIL FROM:<load@mx.test>", "250")
                || !step(&mut c, &format!("RCPT TO:<{rcpt}>"), "250")
                || !step(&mut c, "DATA", "354")
            {
                return;
            }
            let body = format!("Subject: {subject}\r\n\r\n{}.", body_of(&subject));
            if !step(&mut c, &body, "250 ") {
                return;
            }
            promised.lock().unwrap().push(subject);
        }
        let _ = c.send_raw_checked(b"QUIT\r\n");
    }
}

/// Four client_loop threads, tagged `{tag}t0` to `{tag}t3`.
pub fn start_clients(
    port: u16,
    tag: &str,
    rcpt: &'static str,
    stop: &Arc<AtomicBool>,
    promised: &Arc<Mutex<Vec<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|t| {
            let (stop, promised) = (Arc::clone(stop), Arc::clone(promised));
            let tag = format!("{tag}t{t}");
            std::thread::spawn(move || client_loop(port, tag, rcpt, stop, promised))
        })
        .collect()
}

/// What [`kill_9_under_load`] saw.
pub struct Kill9Outcome {
    /// Messages that got a 250.
    pub acknowledged: usize,
    /// Messages delivered, each exactly once: those, and the ones stored
    /// whose 250 the kill cut off.
    pub delivered: usize,
    /// The octets of the delivered messages' bodies, each checked whole.
    pub body_octets: usize,
}

/// `rounds` times: four clients send to root@mx.test, tinymta is killed
/// with SIGKILL at a moment drawn from `seed` (xorshift; print it to
/// replay), and restarted on the same spool. Then every acknowledged
/// message must be in the Maildir exactly once and whole, and none twice.
/// Each round waits (up to support::WAIT) for its first 250 before the
/// kill's pause begins, so every kill comes under load, however slowly the
/// binary runs (qemu). Bounded throughout: a client ends when its
/// connection fails, a read waits at most support::WAIT.
pub fn kill_9_under_load(rounds: usize, mut seed: u64) -> Kill9Outcome {
    let mut server = Server::start("max_connections = 32\nlog_level = info");
    let promised = Arc::new(Mutex::new(Vec::new()));
    seed |= 1;
    eprintln!("stress seed {seed}, {rounds} rounds");
    for round in 0..rounds {
        let before = promised.lock().unwrap().len();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = start_clients(
            server.port,
            &format!("r{round}"),
            "root@mx.test",
            &stop,
            &promised,
        );
        let deadline = Instant::now() + WAIT;
        while promised.lock().unwrap().len() == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: no message acknowledged; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 450));
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for thread in threads {
            thread.join().unwrap();
        }
        server.restart();
    }
    let promised = promised.lock().unwrap().clone();
    eprintln!(
        "{} messages acknowledged over {rounds} kills",
        promised.len()
    );
    assert!(!promised.is_empty());
    // Everything queued gets delivered; then count what arrived.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.queue_files().is_empty() {
        assert!(Instant::now() < deadline, "queue not emptied");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = server.mailboxes().join("root/new");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut body_octets = 0;
    for name in super::list_dir(&dir) {
        let text = String::from_utf8(std::fs::read(dir.join(&name)).unwrap()).unwrap();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .expect("a Subject: line")
            .to_string();
        assert!(
            text.ends_with(&format!("\nend of {subject}\n")),
            "message {name} is cut short"
        );
        // The whole body, octet for octet, as the client sent it (the
        // Maildir has LF line ends).
        let body = &text[text.find("\n\n").expect("a header block") + 2..];
        assert_eq!(body, body_of(&subject).replace("\r\n", "\n"), "{name}");
        body_octets += body.len();
        *seen.entry(subject).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let lost: Vec<_> = promised.iter().filter(|s| !seen.contains_key(*s)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "all {} acknowledged messages delivered once; {} more were stored but their 250 was cut off",
        promised.len(),
        seen.len() - promised.len()
    );
    Kill9Outcome {
        acknowledged: promised.len(),
        delivered: seen.len(),
        body_octets,
    }
}
