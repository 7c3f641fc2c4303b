//! No slow destination stalls delivery (issue 12): domains whose MX hosts
//! accept TCP connections and never speak, next to a healthy domain served
//! by Postfix's smtp-sink and a local recipient, with DNS from dnsmasq.

mod support;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use support::peers::{free_port_on, SilentServers, SmtpSink};
use support::{Dnsmasq, Server};

/// MX hosts per slow domain, as in the report.
const SLOW_HOSTS: u8 = 20;

/// The healthy domain's MX host.
const HEALTHY_IP: &str = "127.0.3.1";

/// The address of the `n`-th (from 1) MX host of the `domain`-th slow domain
/// (from 1): 127.0.1.n, 127.0.2.n...
fn slow_ip(domain: u8, n: u8) -> IpAddr {
    IpAddr::from([127, 0, domain, n])
}

/// What the slow domains' silent MX hosts saw.
impl SilentServers {
    /// Connections accepted on the MX hosts of the `domain`-th slow domain.
    fn accepted(&self, domain: u8) -> usize {
        (1..=SLOW_HOSTS)
            .map(|n| self.accepted_on(slow_ip(domain, n)))
            .sum()
    }

    /// Addresses of the `domain`-th slow domain that had a connection.
    fn hosts_tried(&self, domain: u8) -> Vec<u8> {
        (1..=SLOW_HOSTS)
            .filter(|&n| self.accepted_on(slow_ip(domain, n)) > 0)
            .collect()
    }

    /// Waits until the `domain`-th slow domain has had a connection.
    fn wait_for_connection(&self, domain: u8) {
        let deadline = Instant::now() + support::WAIT;
        while self.accepted(domain) == 0 {
            assert!(
                Instant::now() < deadline,
                "no connection to slow domain {domain}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `domains` slow domains (slow1.test...) with SLOW_HOSTS silent MX hosts
/// each, healthy.test on an smtp-sink, all on one port, and dnsmasq saying
/// so.
fn start_peers(domains: u8) -> (SilentServers, SmtpSink, Dnsmasq, u16) {
    let (port, listeners) = 'found: loop {
        let port = free_port_on(HEALTHY_IP);
        let mut listeners = Vec::new();
        for domain in 1..=domains {
            for n in 1..=SLOW_HOSTS {
                match TcpListener::bind((slow_ip(domain, n), port)) {
                    Ok(listener) => listeners.push(listener),
                    Err(_) => continue 'found,
                }
            }
        }
        if TcpListener::bind((HEALTHY_IP, port)).is_ok() {
            break (port, listeners);
        }
    };
    let silent = SilentServers::start(listeners);
    let sink = SmtpSink::start(SocketAddr::new(HEALTHY_IP.parse().unwrap(), port), &[]);
    let mut records = vec![
        "--mx-host=healthy.test,mx.healthy.test,10".to_string(),
        format!("--host-record=mx.healthy.test,{HEALTHY_IP}"),
    ];
    for domain in 1..=domains {
        for n in 1..=SLOW_HOSTS {
            records.push(format!(
                "--mx-host=slow{domain}.test,mx{n}.slow{domain}.test,{}",
                u16::from(n) * 10
            ));
            records.push(format!(
                "--host-record=mx{n}.slow{domain}.test,{}",
                slow_ip(domain, n)
            ));
        }
    }
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = Dnsmasq::start(&records);
    (silent, sink, dns, port)
}

/// Waits until `done`, at most `limit` after `since`; how long after
/// `since` it was done.
fn time_until(
    since: Instant,
    limit: Duration,
    what: &str,
    server: &Server,
    done: impl Fn() -> bool,
) -> Duration {
    while !done() {
        assert!(
            since.elapsed() < limit,
            "{what} not done {limit:?} after it was sent; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    since.elapsed()
}

/// The report's case: two domains whose 20 MX hosts each accept and never
/// speak, two delivery workers. Each slow attempt tries `mx_address_limit`
/// (5) addresses for `smtp_helo_timeout` (1s) each, so the healthy message
/// waits at most one such attempt, and the local one not at all.
#[test]
fn two_silent_domains_hold_neither_local_nor_healthy_mail() {
    let (silent, sink, dns, port) = start_peers(2);
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\ndelivery_workers = 2\nsmtp_helo_timeout = 1s\n",
        dns.config_line()
    ));
    let mut c = server.greeted();
    let slow1 = c.send_message(
        "alice@mx.test",
        &["ops@slow1.test"],
        b"Subject: slow 1\r\n\r\nx\r\n.\r\n",
    );
    silent.wait_for_connection(1);
    let slow2 = c.send_message(
        "alice@mx.test",
        &["ops@slow2.test"],
        b"Subject: slow 2\r\n\r\nx\r\n.\r\n",
    );
    silent.wait_for_connection(2);
    // Both remote workers are now waiting for a greeting.
    let sent = Instant::now();
    c.send_message(
        "alice@mx.test",
        &["ops@healthy.test"],
        b"Subject: healthy\r\n\r\nx\r\n.\r\n",
    );
    c.send_message(
        "alice@mx.test",
        &["root@mx.test"],
        b"Subject: local\r\n\r\nx\r\n.\r\n",
    );
    let local = time_until(sent, Duration::from_secs(3), "local", &server, || {
        server.mail_count("root") == 1
    });
    let healthy = time_until(sent, Duration::from_secs(10), "healthy", &server, || {
        sink.messages().len() == 1
    });
    eprintln!("local delivered after {local:?}, healthy.test after {healthy:?}");
    assert_eq!(sink.messages()[0].rcpt_to, ["<ops@healthy.test>"]);
    // The slow ones are deferred after one attempt each, on their first
    // five MX hosts (in preference order), and still queued.
    for (domain, id) in [(1, &slow1), (2, &slow2)] {
        let envelope = server.wait_for_envelope_containing(id, "recipient: queued attempts=1");
        assert!(envelope.contains("error: 4.4.1 timed out"), "{envelope}");
        assert_eq!(silent.hosts_tried(domain), [1, 2, 3, 4, 5]);
        assert_eq!(silent.accepted(domain), 5);
    }
    let queue = server.queue_files();
    assert!(queue.contains(&format!("{slow1}.msg")), "{queue:?}");
    assert!(queue.contains(&format!("{slow2}.msg")), "{queue:?}");
}

/// One silent domain with two messages due (two jobs) and two workers: the
/// second worker leaves the silent domain's second job and takes the
/// healthy one, long before the silent attempt is over.
#[test]
fn one_silent_domain_never_holds_both_workers() {
    let (silent, sink, dns, port) = start_peers(1);
    let server = Server::start(&format!(
        "{}\nmx_port = {port}\ndelivery_workers = 2\nsmtp_helo_timeout = 30s\n",
        dns.config_line()
    ));
    let mut c = server.greeted();
    let first = c.send_message(
        "alice@mx.test",
        &["ops@slow1.test"],
        b"Subject: slow 1\r\n\r\nx\r\n.\r\n",
    );
    silent.wait_for_connection(1);
    let second = c.send_message(
        "alice@mx.test",
        &["ops@slow1.test"],
        b"Subject: slow 2\r\n\r\nx\r\n.\r\n",
    );
    // A job of its own (the first is taken), queued before the healthy
    // one: taken first in queue order, where a worker may take it.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    c.send_message(
        "alice@mx.test",
        &["ops@healthy.test"],
        b"Subject: healthy\r\n\r\nx\r\n.\r\n",
    );
    let healthy = time_until(sent, Duration::from_secs(5), "healthy", &server, || {
        sink.messages().len() == 1
    });
    eprintln!("healthy.test delivered after {healthy:?}");
    // One worker still waits for the first silent host's greeting; one
    // connection only, and both messages still queued, untried.
    assert!(sent.elapsed() < Duration::from_secs(30));
    assert_eq!(silent.accepted(1), 1);
    for id in [&first, &second] {
        assert!(
            server
                .envelope(id)
                .contains("recipient: queued attempts=0 next=0 <ops@slow1.test>"),
            "{}",
            server.envelope(id)
        );
    }
}
