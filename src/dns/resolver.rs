//! A stub resolver over UDP (TCP when the answer is truncated), for what
//! mail needs: MX hosts and their addresses (RFC 5321 5.1).
//!
//! Each query goes from a fresh ephemeral port with a random id from the
//! system's cryptographic source; an answer counts only if it comes from the
//! server asked (a connected socket), carries the same id and repeats the
//! question. A timeout or SERVFAIL moves on to the next server.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::wire::{
    build_query, parse_response, RData, Record, Response, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_A,
    TYPE_AAAA, TYPE_CNAME, TYPE_MX,
};
use crate::random::random_u64;

/// Rounds over the server list before giving up (resolv.conf's `attempts`).
const ATTEMPTS: usize = 2;
/// CNAMEs followed for one lookup.
const MAX_CNAME_CHAIN: usize = 8;
/// Answers kept in the cache; when full, expired ones go, then all.
const CACHE_ENTRIES: usize = 512;
/// The longest a cached answer is trusted, whatever its TTL.
const MAX_CACHE_TTL: u32 = 86_400;
/// How long "no such domain" is cached when the server gives no SOA.
const DEFAULT_NEGATIVE_TTL: u32 = 60;
/// Largest UDP answer read (no EDNS0 is sent, so servers keep to 512).
const UDP_BUFFER: usize = 4096;

/// Why a lookup failed: permanent failures bounce, temporary ones are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN, a host without addresses.
    Permanent(String),
    /// The domain (named here) publishes a null MX: it accepts no mail
    /// (RFC 7505 3, which bounces say as 5.1.10).
    NullMx(String),
    /// Timeouts, SERVFAIL, unreadable answers.
    Temporary(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::Permanent(text) | DnsError::Temporary(text) => f.write_str(text),
            DnsError::NullMx(domain) => {
                write!(f, "domain {domain} accepts no mail (null MX, RFC 7505)")
            }
        }
    }
}

impl std::error::Error for DnsError {}

/// One MX host, in the order to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
    pub addresses: Vec<IpAddr>,
}

type CacheKey = (String, u16);

struct CacheEntry {
    expires: Instant,
    /// The records of the wanted type, or `None` for "no such domain".
    records: Option<Vec<Record>>,
}

pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    hosts: HashMap<String, Vec<IpAddr>>,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl Resolver {
    /// Asks `servers`, else those of the `resolv_conf` file when there are
    /// none; answers the names of the `hosts_file` first.
    pub fn load(
        servers: &[SocketAddr],
        resolv_conf: &Path,
        hosts_file: &Path,
        timeout: Duration,
    ) -> Resolver {
        let servers = if servers.is_empty() {
            read_resolv_conf(resolv_conf)
        } else {
            servers.to_vec()
        };
        Resolver::new(servers, timeout, read_hosts(hosts_file))
    }

    pub fn new(
        servers: Vec<SocketAddr>,
        timeout: Duration,
        hosts: HashMap<String, Vec<IpAddr>>,
    ) -> Resolver {
        Resolver {
            servers,
            timeout,
            hosts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The hosts to try for mail to `domain`, best first (RFC 5321 5.1).
    pub fn resolve_mx(&self, domain: &str) -> Result<Vec<MxHost>, DnsError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = address_literal(&domain) {
            return Ok(vec![single_host(&domain, vec![ip])]);
        }
        not_a_literal(&domain)?;
        if let Some(addresses) = self.hosts.get(&domain) {
            return Ok(vec![single_host(&domain, addresses.clone())]);
        }
        let records = self
            .lookup(&domain, TYPE_MX)?
            .ok_or_else(|| DnsError::Permanent(format!("domain {domain} not found (NXDOMAIN)")))?;
        let mut exchanges: Vec<(u16, String)> = records
            .into_iter()
            .filter_map(|r| match r.data {
                RData::Mx {
                    preference,
                    exchange,
                } => Some((preference, exchange)),
                _ => None,
            })
            .collect();
        if exchanges.iter().any(|(_, exchange)| exchange.is_empty()) {
            return Err(DnsError::NullMx(domain));
        }
        if exchanges.is_empty() {
            // RFC 5321 5.1: no MX means the domain itself, as if MX 0.
            let addresses = self.resolve_host(&domain)?;
            return Ok(vec![single_host(&domain, addresses)]);
        }
        // Equal preferences in random order (RFC 5321 5.1), then by preference.
        shuffle(&mut exchanges);
        exchanges.sort_by_key(|(preference, _)| *preference);
        let mut hosts = Vec::new();
        let mut last_error = None;
        for (preference, name) in exchanges {
            match self.resolve_host(&name) {
                Ok(addresses) => hosts.push(MxHost {
                    name,
                    preference,
                    addresses,
                }),
                Err(e) => last_error = Some(e),
            }
        }
        match (hosts.is_empty(), last_error) {
            (false, _) => Ok(hosts),
            (true, Some(e)) => Err(e),
            (true, None) => Err(DnsError::Temporary(format!("no MX host for {domain}"))),
        }
    }

    /// The addresses of a host: an IP literal, the hosts file, then A and AAAA.
    pub fn resolve_host(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = address_literal(&name) {
            return Ok(vec![ip]);
        }
        not_a_literal(&name)?;
        if let Some(addresses) = self.hosts.get(&name) {
            return Ok(addresses.clone());
        }
        let mut addresses = Vec::new();
        let mut temporary = None;
        // IPv4 first: many small boxes have no IPv6 route.
        for qtype in [TYPE_A, TYPE_AAAA] {
            match self.lookup(&name, qtype) {
                Ok(Some(records)) => {
                    addresses.extend(records.iter().filter_map(|r| match r.data {
                        RData::A(ip) => Some(IpAddr::V4(ip)),
                        RData::Aaaa(ip) => Some(IpAddr::V6(ip)),
                        _ => None,
                    }))
                }
                Ok(None) => {
                    return Err(DnsError::Permanent(format!(
                        "host {name} not found (NXDOMAIN)"
                    )))
                }
                Err(e) => temporary = Some(e),
            }
        }
        match (addresses.is_empty(), temporary) {
            (false, _) => Ok(addresses),
            (true, Some(e)) => Err(e),
            (true, None) => Err(DnsError::Permanent(format!("host {name} has no address"))),
        }
    }

    /// Records of `qtype` for `name`, following CNAMEs: `Ok(None)` for
    /// NXDOMAIN, `Ok(Some(empty))` when the name exists without such records.
    pub fn lookup(&self, name: &str, qtype: u16) -> Result<Option<Vec<Record>>, DnsError> {
        let key = (name.to_string(), qtype);
        if let Some(records) = self.cached(&key) {
            return Ok(records);
        }
        let mut current = name.to_string();
        for _ in 0..MAX_CNAME_CHAIN {
            let response = self.query(&current, qtype)?;
            if response.rcode == RCODE_NXDOMAIN {
                let ttl = negative_ttl(&response);
                self.remember(key, None, ttl);
                return Ok(None);
            }
            // Walk the chain inside this answer.
            let mut owner = current.clone();
            let mut hops = 0;
            loop {
                let found: Vec<Record> = response
                    .answers
                    .iter()
                    .filter(|r| r.rtype == qtype && r.name == owner)
                    .cloned()
                    .collect();
                if !found.is_empty() {
                    let ttl = found.iter().map(|r| r.ttl).min().unwrap_or(0);
                    self.remember(key, Some(found.clone()), ttl);
                    return Ok(Some(found));
                }
                let cname = response.answers.iter().find_map(|r| match &r.data {
                    RData::Cname(target) if r.rtype == TYPE_CNAME && r.name == owner => {
                        Some(target.clone())
                    }
                    _ => None,
                });
                match cname {
                    Some(target) if hops < MAX_CNAME_CHAIN => {
                        owner = target;
                        hops += 1;
                    }
                    Some(_) => {
                        return Err(DnsError::Temporary(format!(
                            "CNAME chain too long at {name}"
                        )))
                    }
                    None => break,
                }
            }
            if owner == current {
                // The name exists and has no such records (NODATA).
                let ttl = negative_ttl(&response);
                self.remember(key, Some(Vec::new()), ttl);
                return Ok(Some(Vec::new()));
            }
            // The chain leaves this answer: ask for its end.
            current = owner;
        }
        Err(DnsError::Temporary(format!(
            "CNAME chain too long at {name}"
        )))
    }

    fn cached(&self, key: &CacheKey) -> Option<Option<Vec<Record>>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|entry| entry.expires > Instant::now())
            .map(|entry| entry.records.clone())
    }

    fn remember(&self, key: CacheKey, records: Option<Vec<Record>>, ttl: u32) {
        if ttl == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, entry| entry.expires > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        let ttl = Duration::from_secs(u64::from(ttl.min(MAX_CACHE_TTL)));
        cache.insert(
            key,
            CacheEntry {
                expires: now + ttl,
                records,
            },
        );
    }

    /// One question, asked of each server in turn until one answers.
    fn query(&self, name: &str, qtype: u16) -> Result<Response, DnsError> {
        if self.servers.is_empty() {
            return Err(DnsError::Temporary("no DNS servers configured".to_string()));
        }
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            for &server in &self.servers {
                match self.ask(server, name, qtype) {
                    Ok(response) if response.rcode == RCODE_NOERROR => return Ok(response),
                    Ok(response) if response.rcode == RCODE_NXDOMAIN => return Ok(response),
                    Ok(response) => {
                        last = format!(
                            "DNS server {server} answered rcode {} for {name}",
                            response.rcode
                        )
                    }
                    Err(e) => last = format!("DNS server {server} for {name}: {e}"),
                }
            }
        }
        Err(DnsError::Temporary(last))
    }

    /// One exchange with one server: UDP, then TCP if the answer was truncated.
    fn ask(&self, server: SocketAddr, name: &str, qtype: u16) -> io::Result<Response> {
        let id = random_u64() as u16;
        let query = build_query(id, name, qtype)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let response = self.ask_udp(server, &query, id, name, qtype)?;
        if response.truncated {
            return self.ask_tcp(server, &query, id, name, qtype);
        }
        Ok(response)
    }

    fn ask_udp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
        name: &str,
        qtype: u16,
    ) -> io::Result<Response> {
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        // A new socket is a new ephemeral port; connecting it makes the
        // kernel drop datagrams from any other source.
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        socket.send(query)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; UDP_BUFFER];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            socket.set_read_timeout(Some(left))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into())
                }
                Err(e) => return Err(e),
            };
            match parse_response(&buf[..n]) {
                Ok(response) if answers(&response, id, name, qtype) => return Ok(response),
                // Not the answer to our question: a stray or forged datagram.
                Ok(_) => log::debug!("DNS: ignored a non-matching answer from {server}"),
                Err(e) => log::debug!("DNS: ignored an unreadable answer from {server}: {e}"),
            }
        }
    }

    fn ask_tcp(
        &self,
        server: SocketAddr,
        query: &[u8],
        id: u16,
        name: &str,
        qtype: u16,
    ) -> io::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&server, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        // RFC 1035 4.2.2: a two-octet length before each message.
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf)?;
        let response = parse_response(&buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if answers(&response, id, name, qtype) {
            Ok(response)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TCP answer does not match the question",
            ))
        }
    }
}

/// Whether `response` answers our query: same id, a response to a standard
/// query, and the same question (names compare without case, RFC 4343).
fn answers(response: &Response, id: u16, name: &str, qtype: u16) -> bool {
    response.id == id
        && response.is_response
        && response.opcode == 0
        && response.question.as_ref().is_some_and(|q| {
            q.qtype == qtype && q.name == name.trim_end_matches('.').to_ascii_lowercase()
        })
}

/// RFC 2308 5: negative answers are cached for the SOA's MINIMUM (or its TTL).
fn negative_ttl(response: &Response) -> u32 {
    response
        .authority
        .iter()
        .find_map(|r| match r.data {
            RData::Soa { minimum } => Some(minimum.min(r.ttl)),
            _ => None,
        })
        .unwrap_or(DEFAULT_NEGATIVE_TTL)
}

fn single_host(name: &str, addresses: Vec<IpAddr>) -> MxHost {
    MxHost {
        name: name.to_string(),
        preference: 0,
        addresses,
    }
}

/// A bracketed name that is no IP address literal (RFC 5321 4.1.3's
/// General-address-literal, `[tag:text]`) names nothing DNS could find: it
/// is never sent as a query.
fn not_a_literal(name: &str) -> Result<(), DnsError> {
    if name.starts_with('[') {
        return Err(DnsError::Permanent(format!(
            "address literal {name} is not an IP address"
        )));
    }
    Ok(())
}

/// `[192.0.2.1]`, `[ipv6:2001:db8::1]`, or a bare IP address.
fn address_literal(text: &str) -> Option<IpAddr> {
    crate::smtp::address::literal_ip(text).or_else(|| text.parse().ok())
}

/// Fisher-Yates with the system's random source.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (random_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// `nameserver` lines of resolv.conf(5); none means the local resolver.
pub fn read_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(ip)) => {
                    // A link-local address may carry a zone: fe80::1%eth0.
                    ip.split('%').next()?.parse::<IpAddr>().ok()
                }
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    servers
}

/// hosts(5): `ADDRESS NAME [ALIAS...]`; `localhost` is always known.
pub fn read_hosts(path: &Path) -> HashMap<String, Vec<IpAddr>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_ascii_whitespace();
        let Some(Ok(ip)) = words.next().map(|w| w.parse::<IpAddr>()) else {
            continue;
        };
        for name in words {
            let entry = hosts
                .entry(name.trim_end_matches('.').to_ascii_lowercase())
                .or_default();
            if !entry.contains(&ip) {
                entry.push(ip);
            }
        }
    }
    hosts
        .entry("localhost".to_string())
        .or_insert_with(|| vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()]);
    hosts
}

#[cfg(test)]
mod tests {
    use super::super::wire::tests::{encode_name, header, record_to_question};
    use super::super::wire::TYPE_SOA;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;

    /// A fake DNS server on loopback that answers with `respond(query)`;
    /// counts the queries it got.
    fn fake_server<F>(respond: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                seen.fetch_add(1, Ordering::SeqCst);
                for packet in respond(&buf[..n]) {
                    let _ = socket.send_to(&packet, from);
                }
            }
        });
        (addr, count)
    }

    /// An answer to `query` (same id and question) with `records` appended.
    fn answer(query: &[u8], rcode: u16, an: u16, ns: u16, records: &[Vec<u8>]) -> Vec<u8> {
        let id = u16::from_be_bytes([query[0], query[1]]);
        let mut p = header(id, 0x8180 | rcode, 1, an, ns);
        p.extend_from_slice(&query[12..]);
        for r in records {
            p.extend_from_slice(r);
        }
        p
    }

    fn resolver(servers: Vec<SocketAddr>) -> Resolver {
        Resolver::new(servers, Duration::from_millis(300), HashMap::new())
    }

    #[test]
    fn a_general_address_literal_is_never_a_query() {
        // No server at all: a query would fail as temporary, not this way.
        let r = resolver(vec![]);
        for name in ["[x-tag:abc]", "[ipv6:nonsense]", "[300.1.1.1]"] {
            assert_eq!(
                r.resolve_mx(name),
                Err(DnsError::Permanent(format!(
                    "address literal {name} is not an IP address"
                )))
            );
            assert!(matches!(r.resolve_host(name), Err(DnsError::Permanent(_))));
        }
        assert_eq!(
            r.resolve_host("[IPv6:::1]").unwrap(),
            vec![IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])]
        );
    }

    #[test]
    fn mx_hosts_sorted_with_addresses() {
        let (server, _) = fake_server(|q| {
            let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
            let name_len = q.len() - 12 - 4;
            let name = String::from_utf8_lossy(&q[12..12 + name_len]).to_string();
            let reply = match qtype {
                TYPE_MX => {
                    let mut low = vec![0, 20];
                    low.extend(encode_name("mx2.two.test"));
                    let mut high = vec![0, 10];
                    high.extend(encode_name("mx1.two.test"));
                    answer(
                        q,
                        0,
                        2,
                        0,
                        &[
                            record_to_question(TYPE_MX, 300, &low),
                            record_to_question(TYPE_MX, 300, &high),
                        ],
                    )
                }
                TYPE_A if name.contains("mx1") => answer(
                    q,
                    0,
                    1,
                    0,
                    &[record_to_question(TYPE_A, 300, &[127, 0, 0, 1])],
                ),
                TYPE_A => answer(
                    q,
                    0,
                    1,
                    0,
                    &[record_to_question(TYPE_A, 300, &[127, 0, 0, 2])],
                ),
                _ => answer(q, 0, 0, 0, &[]),
            };
            vec![reply]
        });
        let r = resolver(vec![server]);
        let hosts = r.resolve_mx("Two.Test.").unwrap();
        assert_eq!(
            hosts,
            vec![
                MxHost {
                    name: "mx1.two.test".into(),
                    preference: 10,
                    addresses: vec!["127.0.0.1".parse().unwrap()]
                },
                MxHost {
                    name: "mx2.two.test".into(),
                    preference: 20,
                    addresses: vec!["127.0.0.2".parse().unwrap()]
                },
            ]
        );
    }

    #[test]
    fn forged_and_mismatched_answers_are_ignored() {
        let (server, _) = fake_server(|q| {
            let mut wrong_id = answer(q, 0, 1, 0, &[record_to_question(TYPE_A, 9, &[6, 6, 6, 6])]);
            wrong_id[0] ^= 0xff;
            // Same id, another question.
            let mut other = header(u16::from_be_bytes([q[0], q[1]]), 0x8180, 1, 1, 0);
            other.extend(encode_name("evil.test"));
            other.extend_from_slice(&[0, 1, 0, 1]);
            other.extend(record_to_question(TYPE_A, 9, &[6, 6, 6, 6]));
            let garbage = vec![0xff; 7];
            let good = answer(
                q,
                0,
                1,
                0,
                &[record_to_question(TYPE_A, 9, &[192, 0, 2, 1])],
            );
            vec![wrong_id, other, garbage, good]
        });
        let r = resolver(vec![server]);
        assert_eq!(
            r.resolve_host("host.test").unwrap(),
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn nxdomain_is_permanent_servfail_and_silence_temporary() {
        let (nx, _) = fake_server(|q| vec![answer(q, 3, 0, 0, &[])]);
        assert!(matches!(
            resolver(vec![nx]).resolve_mx("nx.test"),
            Err(DnsError::Permanent(_))
        ));
        let (servfail, asked) = fake_server(|q| vec![answer(q, 2, 0, 0, &[])]);
        assert!(matches!(
            resolver(vec![servfail]).resolve_mx("sf.test"),
            Err(DnsError::Temporary(_))
        ));
        assert_eq!(asked.load(Ordering::SeqCst), ATTEMPTS);
        let (silent, _) = fake_server(|_| vec![]);
        assert!(matches!(
            resolver(vec![silent]).resolve_mx("quiet.test"),
            Err(DnsError::Temporary(_))
        ));
    }

    #[test]
    fn a_silent_server_moves_on_to_the_next() {
        let (silent, _) = fake_server(|_| vec![]);
        let (good, _) = fake_server(|q| {
            vec![answer(
                q,
                0,
                1,
                0,
                &[record_to_question(TYPE_A, 9, &[192, 0, 2, 9])],
            )]
        });
        let r = resolver(vec![silent, good]);
        assert_eq!(
            r.resolve_host("x.test").unwrap(),
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn null_mx_and_implicit_mx() {
        let (server, _) = fake_server(|q| {
            let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
            let is_null = q.windows(7).any(|w| w == b"\x06nullmx");
            vec![match (qtype, is_null) {
                (TYPE_MX, true) => {
                    answer(q, 0, 1, 0, &[record_to_question(TYPE_MX, 9, &[0, 0, 0])])
                }
                (TYPE_A, false) => answer(
                    q,
                    0,
                    1,
                    0,
                    &[record_to_question(TYPE_A, 9, &[127, 0, 0, 3])],
                ),
                _ => {
                    let mut soa = encode_name("test");
                    soa.extend(encode_name("hostmaster.test"));
                    soa.extend_from_slice(&[0; 16]);
                    soa.extend_from_slice(&30u32.to_be_bytes());
                    answer(q, 0, 0, 1, &[record_to_question(TYPE_SOA, 60, &soa)])
                }
            }]
        });
        let r = resolver(vec![server]);
        match r.resolve_mx("nullmx.test") {
            Err(e @ DnsError::NullMx(_)) => assert!(e.to_string().contains("null MX"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.resolve_mx("aonly.test").unwrap(),
            vec![MxHost {
                name: "aonly.test".into(),
                preference: 0,
                addresses: vec!["127.0.0.3".parse().unwrap()]
            }]
        );
    }

    #[test]
    fn answers_are_cached_for_their_ttl() {
        let (server, asked) = fake_server(|q| {
            vec![answer(
                q,
                0,
                1,
                0,
                &[record_to_question(TYPE_A, 300, &[192, 0, 2, 7])],
            )]
        });
        let r = resolver(vec![server]);
        for _ in 0..3 {
            assert_eq!(r.lookup("c.test", TYPE_A).unwrap().unwrap().len(), 1);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        let (zero, asked) = fake_server(|q| {
            vec![answer(
                q,
                0,
                1,
                0,
                &[record_to_question(TYPE_A, 0, &[192, 0, 2, 7])],
            )]
        });
        let r = resolver(vec![zero]);
        r.lookup("z.test", TYPE_A).unwrap();
        r.lookup("z.test", TYPE_A).unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn literals_hosts_and_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let hosts_path = dir.path().join("hosts");
        std::fs::write(
            &hosts_path,
            "# comment\n10.0.0.5 nas.lan nas # the NAS\n::1 v6.lan\nbogus line\n",
        )
        .unwrap();
        let hosts = read_hosts(&hosts_path);
        assert_eq!(hosts["nas"], vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(hosts["localhost"].len(), 2);
        let r = Resolver::new(vec![], Duration::from_millis(100), hosts);
        assert_eq!(
            r.resolve_host("NAS.lan").unwrap()[0].to_string(),
            "10.0.0.5"
        );
        assert_eq!(
            r.resolve_host("192.0.2.4").unwrap()[0].to_string(),
            "192.0.2.4"
        );
        assert_eq!(
            r.resolve_mx("[ipv6:2001:db8::2]").unwrap()[0].addresses[0].to_string(),
            "2001:db8::2"
        );
        assert_eq!(r.resolve_mx("nas.lan").unwrap()[0].name, "nas.lan");
        assert!(matches!(
            r.resolve_host("far.test"),
            Err(DnsError::Temporary(_))
        ));
        let conf = dir.path().join("resolv.conf");
        std::fs::write(
            &conf,
            "search lan\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n",
        )
        .unwrap();
        assert_eq!(
            read_resolv_conf(&conf),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            read_resolv_conf(&dir.path().join("none")),
            vec!["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
