//! `make stress`: kill -9 under load. Clients record every message that got
//! a 250; after each kill tinymta is restarted; at the end every promised
//! message is in the Maildir exactly once and whole, and none is there twice.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Client, Server};

/// Sends messages until the connection fails; records the subjects acknowledged.
fn client_loop(port: u16, tag: String, stop: Arc<AtomicBool>, promised: Arc<Mutex<Vec<String>>>) {
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
                || !step(&mut c, "RCPT TO:<root@mx.test>", "250")
                || !step(&mut c, "DATA", "354")
            {
                return;
            }
            let body = format!(
                "Subject: {subject}\r\n\r\n{}end of {subject}\r\n.",
                format!("{}\r\n", "z".repeat(98)).repeat(20)
            );
            if !step(&mut c, &body, "250 ") {
                return;
            }
            promised.lock().unwrap().push(subject);
        }
        let _ = c.send_raw_checked(b"QUIT\r\n");
    }
}

#[test]
#[ignore]
fn kill_9_under_load_loses_nothing_and_delivers_nothing_twice() {
    let rounds: usize = std::env::var("STRESS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut server = Server::start("max_connections = 32\nlog_level = info");
    let promised = Arc::new(Mutex::new(Vec::new()));
    // A small xorshift for the kill moments; the seed is printed to replay.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("stress seed {seed}, {rounds} rounds");
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (stop, promised) = (Arc::clone(&stop), Arc::clone(&promised));
                let port = server.port;
                std::thread::spawn(move || {
                    client_loop(port, format!("r{round}t{t}"), stop, promised)
                })
            })
            .collect();
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
    for name in support::list_dir(&dir) {
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
}
