//! A small HTTP/1.1 client over std::net and rustls, for push services:
//! one request per connection (`Connection: close`), no redirects, no
//! compression, no proxies.
//!
//! The response is read by [`ResponseParser`], a state machine over bytes
//! without I/O (unit-tested and fuzzed with plain byte strings); the
//! connection around it ([`HttpClient::send`]) resolves the host through
//! tinymta's own resolver, connects within `connect_timeout`, checks the
//! certificate against the URL's host as delivery does (`tls_ca_file`,
//! webpki-roots), and gives the server `http_timeout` for the whole
//! response.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::deliver::DeliverySettings;
use crate::dns::resolver::{DnsError, Resolver};
use crate::tls::{self, MaybeTls, TlsError};

/// The most octets of a response head (status line and header fields,
/// interim 1xx responses included) and of a chunked body's size lines and
/// trailers together: a push service's answer is a few hundred.
pub const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The most octets of a response body kept; the response is complete with
/// them, and the rest is not read (the connection is closed anyway).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What the client says it is (RFC 9110 10.1.5).
const USER_AGENT: &str = concat!("tinymta/", env!("CARGO_PKG_VERSION"));

/// Octets read from the connection at a time.
const READ_BUFFER: usize = 8 * 1024;

/// Why a request got no response.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL cannot be used: what is wrong with it.
    Url(String),
    /// The request cannot be sent as it is (a header value with a line
    /// break, a header the client writes itself).
    Request(String),
    /// The host's name did not resolve.
    Dns { host: String, error: DnsError },
    /// No address of the host took the connection: the last failure.
    Connect(String),
    /// The TLS handshake failed, the certificate was refused among others.
    Tls(TlsError),
    /// The server did not answer in time: what was waited for.
    Timeout(String),
    /// The connection broke while the request was sent or the response read.
    Io(String),
    /// The server's answer is not HTTP/1.1 as RFC 9112 writes it.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Url(message) => write!(f, "bad URL: {message}"),
            HttpError::Request(message) => write!(f, "bad request: {message}"),
            HttpError::Dns { host, error } => write!(f, "cannot resolve {host}: {error}"),
            HttpError::Connect(message) => f.write_str(message),
            HttpError::Tls(error) => error.fmt(f),
            HttpError::Timeout(message) => write!(f, "timeout {message}"),
            HttpError::Io(message) => write!(f, "connection broken: {message}"),
            HttpError::Protocol(message) => write!(f, "bad HTTP response: {message}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    /// Whether the same request may succeed later: everything but a
    /// request that cannot be made as it is (the URL, a header). A name
    /// that does not resolve is taken as the smarthost's is: DNS may not
    /// be up yet at boot, and the name is the owner's to mend.
    pub fn is_temporary(&self) -> bool {
        !matches!(self, HttpError::Url(_) | HttpError::Request(_))
    }
}

/// An `http` or `https` URL, split as a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// A lower-case name, an IPv4 address, or an IPv6 address without
    /// its brackets.
    pub host: String,
    pub port: u16,
    /// The request target (RFC 9112 3.2.1, origin-form): `/` at least.
    pub path_and_query: String,
}

impl Url {
    /// `http://` or `https://`, a host (a name, an IPv4 address or an IPv6
    /// one in brackets), an optional port, then the path and query; the
    /// fragment is dropped (RFC 9110 4.2.5: it is never sent). User info
    /// (`user:password@`) is refused: RFC 9110 4.2.4 deprecates it, and a
    /// secret belongs in a file, not in the config.
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let bad = |message: &str| HttpError::Url(format!("{message}: {text:?}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected http:// or https://"))?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(bad("only http and https URLs are supported"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(bad("user info (user:password@) in a URL is refused"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // RFC 3986 3.2.2: IP-literal = "[" IPv6address "]".
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address without its closing ]"))?;
            let ip: Ipv6Addr = literal
                .parse()
                .map_err(|_| bad("not an IPv6 address in brackets"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after the IPv6 address"))?,
                ),
            };
            (ip.to_string(), port)
        } else {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if name.is_empty() || !name.chars().all(valid) {
                return Err(bad("expected a host name or IP address"));
            }
            (name.to_ascii_lowercase(), port)
        };
        let default_port = if https { 443 } else { 80 };
        let port = match port {
            // RFC 3986 3.2.3: an empty port is the scheme's default.
            None | Some("") => default_port,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        // The target goes into the request line as it is: it must already
        // be percent-encoded (RFC 3986 2.1), without spaces or controls.
        if let Some(c) = target.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(bad(&format!(
                "{c:?} must be percent-encoded in the path or query"
            )));
        }
        let path_and_query = match target.strip_prefix('?') {
            Some(_) => format!("/{target}"),
            None if target.is_empty() => "/".to_string(),
            None => target.to_string(),
        };
        Ok(Url {
            https,
            host,
            port,
            path_and_query,
        })
    }

    /// This URL with `path` appended to its path (one `/` between them,
    /// the query kept at the end): `https://gotify.example/` and
    /// `message` make `https://gotify.example/message`.
    pub fn join(&self, path: &str) -> Url {
        let (base, query) = match self.path_and_query.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.path_and_query.as_str(), None),
        };
        let mut joined = base.trim_end_matches('/').to_string();
        joined.push('/');
        joined.push_str(path.trim_start_matches('/'));
        if let Some(query) = query {
            joined.push('?');
            joined.push_str(query);
        }
        Url {
            path_and_query: joined,
            ..self.clone()
        }
    }

    /// The Host field's value (RFC 9110 7.2): the host, in brackets for
    /// IPv6, and the port unless it is the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

/// A request to send. The client adds Host, User-Agent (unless given),
/// Content-Length and `Connection: close` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Header fields only the client writes: they frame the message.
const FRAMING_FIELDS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

impl Request {
    /// The request as it goes on the wire (RFC 9112 3, 5, 6): request
    /// line, header fields, an empty line, the body.
    pub fn to_bytes(&self) -> Result<Vec<u8>, HttpError> {
        if !is_token(self.method) {
            return Err(HttpError::Request(format!(
                "not a method name: {:?}",
                self.method
            )));
        }
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method,
            self.url.path_and_query,
            self.url.authority()
        );
        let has_user_agent = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"));
        if !has_user_agent {
            head.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        for (name, value) in &self.headers {
            if !is_token(name) {
                return Err(HttpError::Request(format!(
                    "not a header field name: {name:?}"
                )));
            }
            if FRAMING_FIELDS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(HttpError::Request(format!(
                    "{name} is the client's to write"
                )));
            }
            // RFC 9110 5.5: no CR, LF or NUL in a field value; a line
            // break would end the field and start one of the sender's own.
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(HttpError::Request(format!(
                    "the value of {name} holds a line break or NUL"
                )));
            }
            head.push_str(&format!("{name}: {}\r\n", value.trim()));
        }
        // RFC 9110 8.6: a request without content and whose method expects
        // none carries no Content-Length.
        let expects_content = matches!(self.method, "POST" | "PUT" | "PATCH");
        if expects_content || !self.body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        Ok(bytes)
    }
}

/// RFC 9110 5.6.2: token = 1*tchar.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A final response (1xx interim ones are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received; obsolete line folding made spaces.
    pub headers: Vec<(String, String)>,
    /// At most [`MAX_RESPONSE_BODY`] octets; the rest was not read.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of the header field `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// How long the server asks to wait (RFC 9110 10.2.3): delay-seconds,
    /// or an HTTP-date counted from `now_unix` (a date in the past is no
    /// wait). `None` without the field or with a value of neither form.
    pub fn retry_after(&self, now_unix: u64) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // Digits beyond u64 are a wait longer than any bound.
            let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
            return Some(Duration::from_secs(seconds));
        }
        let date = parse_http_date(value)?;
        Some(Duration::from_secs(date.saturating_sub(now_unix)))
    }
}

/// An HTTP-date (RFC 9110 5.6.7) as Unix seconds, in any of the three forms
/// a recipient must accept: `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate),
/// `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850) and
/// `Sun Nov  6 08:49:37 1994` (asctime).
pub fn parse_http_date(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            // RFC 9110 5.6.7: a two-digit year more than 50 years in the
            // future is in the past century; from 1970 that is 70-99.
            let year = year.parse::<i64>().ok()?;
            let year = if year >= 70 { 1900 + year } else { 2000 + year };
            (day, month, year, *time)
        }
        [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let mut clock = time.split(':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some()
        || !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86400 + hour * 3600 + minute * 60 + second).ok()
}

/// (year, month 1-12, day 1-31) -> days since 1970-01-01, proleptic
/// Gregorian (H. Hinnant's days_from_civil, the inverse of
/// `time::civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How the body of a response ends (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many octets are still to come.
    Length(u64),
    /// Chunked (RFC 9112 7.1), at this point of a chunk.
    Chunked(ChunkState),
    /// At the end of the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Waiting for a chunk-size line.
    Size,
    /// This many octets of chunk-data are still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section after the last chunk, up to an empty line.
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a status line and header fields.
    Head,
    Body(Framing),
    /// The response is complete (or its body full): nothing more is read.
    Done,
}

/// A response read from bytes as they arrive, without I/O:
/// [`push`](ResponseParser::push) what the connection gave until it says
/// the response is complete, or until the connection ends, then
/// [`finish`](ResponseParser::finish).
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// Received and not yet parsed.
    pending: Vec<u8>,
    /// Octets of heads, chunk-size lines and trailers so far, against
    /// [`MAX_RESPONSE_HEAD`].
    head_octets: usize,
    /// The request was HEAD: its response has no body (RFC 9110 9.3.2).
    head_request: bool,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Anything at all arrived.
    received: bool,
}

impl ResponseParser {
    /// A parser for the response to a request made with `method`.
    pub fn new(method: &str) -> ResponseParser {
        ResponseParser {
            state: State::Head,
            pending: Vec::new(),
            head_octets: 0,
            head_request: method == "HEAD",
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            received: false,
        }
    }

    /// Takes the next octets of the connection; `Ok(true)` once the
    /// response is complete, when the rest need not be read.
    pub fn push(&mut self, octets: &[u8]) -> Result<bool, HttpError> {
        self.received |= !octets.is_empty();
        if self.state != State::Done {
            self.pending.extend_from_slice(octets);
            self.advance()?;
        }
        Ok(self.state == State::Done)
    }

    /// The response, once the connection has ended (or [`push`] said it is
    /// complete); an error if it ended too early.
    ///
    /// [`push`]: ResponseParser::push
    pub fn finish(self) -> Result<Response, HttpError> {
        let incomplete = |what: String| {
            Err(HttpError::Protocol(format!(
                "the connection ended {what} (RFC 9112 8: an incomplete response)"
            )))
        };
        match self.state {
            State::Head if !self.received => {
                return Err(HttpError::Protocol(
                    "the connection ended without a response".to_string(),
                ))
            }
            State::Head => return incomplete("in the response head".to_string()),
            State::Body(Framing::Length(missing)) => {
                return incomplete(format!("{missing} octets before the end of the body"))
            }
            State::Body(Framing::Chunked(_)) => {
                return incomplete("before the last chunk".to_string())
            }
            State::Body(Framing::UntilClose) | State::Done => {}
        }
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
        })
    }

    /// Parses as far as the pending octets go.
    fn advance(&mut self) -> Result<(), HttpError> {
        loop {
            let progressed = match self.state {
                State::Head => self.parse_head()?,
                State::Body(Framing::Length(missing)) => {
                    let taken = self.take_body(missing);
                    self.state = match missing - taken {
                        0 => State::Done,
                        left => State::Body(Framing::Length(left)),
                    };
                    taken > 0
                }
                State::Body(Framing::UntilClose) => {
                    self.take_body(u64::MAX);
                    false
                }
                State::Body(Framing::Chunked(chunk)) => self.parse_chunked(chunk)?,
                State::Done => return Ok(()),
            };
            if self.body.len() >= MAX_RESPONSE_BODY {
                self.state = State::Done;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Moves up to `limit` pending octets into the body (at most to
    /// [`MAX_RESPONSE_BODY`]); how many were consumed.
    fn take_body(&mut self, limit: u64) -> u64 {
        let available = self
            .pending
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        let room = MAX_RESPONSE_BODY - self.body.len();
        let kept = available.min(room);
        self.body.extend_from_slice(&self.pending[..kept]);
        self.pending.drain(..available);
        available as u64
    }

    /// The next line of a head, chunk-size line or trailer, without its
    /// line end; `None` until it is whole. RFC 9112 2.2: a bare LF ends a
    /// line too (a preceding CR is dropped). Every such line counts
    /// against [`MAX_RESPONSE_HEAD`], so a line that never ends cannot
    /// grow without bound.
    fn take_line(&mut self) -> Result<Option<String>, HttpError> {
        let Some(end) = self.pending.iter().position(|&b| b == b'\n') else {
            if self.head_octets + self.pending.len() > MAX_RESPONSE_HEAD {
                return Err(self.head_too_large());
            }
            return Ok(None);
        };
        self.head_octets += end + 1;
        if self.head_octets > MAX_RESPONSE_HEAD {
            return Err(self.head_too_large());
        }
        let mut line: Vec<u8> = self.pending.drain(..end + 1).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        // Field values are ASCII in practice (RFC 9110 5.5); other octets
        // are kept as the replacement character rather than refused.
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    fn head_too_large(&self) -> HttpError {
        HttpError::Protocol(format!(
            "the response head or chunk lines exceed {MAX_RESPONSE_HEAD} octets"
        ))
    }

    /// Reads the status line and the header fields; true once the head is
    /// whole (and the state has moved on).
    fn parse_head(&mut self) -> Result<bool, HttpError> {
        // Whole lines only: wait for the empty line that ends the head.
        let ends = self.pending.windows(2).any(|w| w == b"\n\n")
            || self.pending.windows(3).any(|w| w == b"\n\r\n");
        if !ends {
            if self.head_octets + self.pending.len() > MAX_RESPONSE_HEAD {
                return Err(self.head_too_large());
            }
            return Ok(false);
        }
        let status_line = self.take_line()?.unwrap_or_default();
        let status = parse_status_line(&status_line)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        while let Some(line) = self.take_line()? {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                // RFC 9112 5.2: obsolete line folding; a user agent
                // replaces it with spaces.
                let (_, value) = headers.last_mut().ok_or_else(|| {
                    HttpError::Protocol("a folded line before any header field".to_string())
                })?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            headers.push(parse_field_line(&line)?);
        }
        if (100..200).contains(&status) {
            if status == 101 {
                return Err(HttpError::Protocol(
                    "101 Switching Protocols, which no request asked for".to_string(),
                ));
            }
            // RFC 9110 15.2: interim responses are skipped; the final
            // one follows.
            return Ok(true);
        }
        self.status = status;
        self.state = State::Body(framing(status, &headers, self.head_request)?);
        self.headers = headers;
        Ok(true)
    }

    /// One step through a chunked body (RFC 9112 7.1); true if it moved.
    fn parse_chunked(&mut self, chunk: ChunkState) -> Result<bool, HttpError> {
        let next = match chunk {
            ChunkState::Size => {
                let Some(line) = self.take_line()? else {
                    return Ok(false);
                };
                match parse_chunk_size(&line)? {
                    0 => ChunkState::Trailers,
                    size => ChunkState::Data(size),
                }
            }
            ChunkState::Data(missing) => {
                if self.pending.is_empty() {
                    return Ok(false);
                }
                match missing - self.take_body(missing) {
                    0 => ChunkState::DataEnd,
                    left => ChunkState::Data(left),
                }
            }
            ChunkState::DataEnd => {
                let Some(line) = self.take_line()? else {
                    return Ok(false);
                };
                if !line.is_empty() {
                    return Err(HttpError::Protocol(
                        "chunk data longer than its size".to_string(),
                    ));
                }
                ChunkState::Size
            }
            ChunkState::Trailers => {
                // RFC 9112 7.1.2: trailer fields are not needed; skipped.
                let Some(line) = self.take_line()? else {
                    return Ok(false);
                };
                if line.is_empty() {
                    self.state = State::Done;
                    return Ok(true);
                }
                ChunkState::Trailers
            }
        };
        self.state = State::Body(Framing::Chunked(next));
        Ok(true)
    }
}

/// `HTTP/1.1 200 OK` -> 200 (RFC 9112 4); the reason phrase is not read.
fn parse_status_line(line: &str) -> Result<u16, HttpError> {
    let bad = || HttpError::Protocol(format!("not an HTTP/1.x status line: {line:.80?}"));
    let rest = line.strip_prefix("HTTP/1.").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next().ok_or_else(bad)?;
    let code = parts.next().ok_or_else(bad)?;
    if minor.len() != 1 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // RFC 9110 15: a three-digit status code from 100 to 599.
    match code.parse::<u16>() {
        Ok(status) if code.len() == 3 && (100..600).contains(&status) => Ok(status),
        _ => Err(bad()),
    }
}

/// `Name: value` -> (name, value without surrounding white space)
/// (RFC 9112 5: no white space before the colon).
fn parse_field_line(line: &str) -> Result<(String, String), HttpError> {
    let bad = || HttpError::Protocol(format!("not a header field: {line:.80?}"));
    let (name, value) = line.split_once(':').ok_or_else(bad)?;
    if !is_token(name) {
        return Err(bad());
    }
    Ok((
        name.to_string(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

/// How a response's body is framed (RFC 9112 6.3, for responses).
fn framing(
    status: u16,
    headers: &[(String, String)],
    head_request: bool,
) -> Result<Framing, HttpError> {
    // Item 1: responses to HEAD, 204 and 304 end with their head.
    if head_request || status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    // Items 3 and 4: Transfer-Encoding overrides Content-Length. Only
    // chunked is understood: no request asked for another coding.
    let codings: Vec<&str> = list_values(headers, "transfer-encoding").collect();
    if !codings.is_empty() {
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => {
                Ok(Framing::Chunked(ChunkState::Size))
            }
            _ => Err(HttpError::Protocol(format!(
                "unsupported transfer coding: {}",
                codings.join(", ")
            ))),
        };
    }
    // Item 5: a list of equal values is one length; differing or
    // malformed ones are an unrecoverable error.
    let mut length = None;
    for value in list_values(headers, "content-length") {
        let parsed = value
            .parse::<u64>()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()));
        match (parsed, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(earlier)) if n == earlier => {}
            _ => {
                return Err(HttpError::Protocol(format!(
                    "bad Content-Length: {value:.40?}"
                )))
            }
        }
    }
    // Item 8: otherwise the body lasts until the connection closes.
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// The items of every `name` field, as a list field's values are
/// combined (RFC 9110 5.3), empty ones skipped (5.6.1).
fn list_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(','))
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
}

/// A chunk-size line (RFC 9112 7.1): hex digits, then perhaps chunk
/// extensions after `;`, which are skipped (7.1.1).
fn parse_chunk_size(line: &str) -> Result<u64, HttpError> {
    let digits = line
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_end_matches([' ', '\t']);
    let bad = || HttpError::Protocol(format!("bad chunk size line: {line:.40?}"));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad())
}

/// A connection that can be given a deadline for its next read: TCP or
/// TLS, or a scripted one in tests.
trait HttpStream: Read + Write {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()>;
}

impl HttpStream for MaybeTls {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_read_timeout(Some(timeout))?;
        self.tcp().set_write_timeout(Some(timeout))
    }
}

/// Sends requests, one connection each.
pub struct HttpClient {
    resolver: Arc<Resolver>,
    /// Checks certificates as `tls_ca_file` and `tls_verify` say.
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
    /// For the request to be written and the whole response read.
    response_timeout: Duration,
}

impl HttpClient {
    /// A client with delivery's resolver, certificate check
    /// (`ClientConfigs::verified`: webpki-roots, `tls_ca_file`,
    /// `tls_verify`), `connect_timeout` and `http_timeout`.
    pub fn from_settings(settings: &DeliverySettings) -> HttpClient {
        HttpClient::new(
            Arc::clone(&settings.resolver),
            Arc::clone(&settings.tls.verified),
            settings.config.connect_timeout,
            settings.config.http_timeout,
        )
    }

    pub fn new(
        resolver: Arc<Resolver>,
        tls: Arc<ClientConfig>,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> HttpClient {
        HttpClient {
            resolver,
            tls,
            connect_timeout,
            response_timeout,
        }
    }

    /// Sends `request` and reads the response to it; a 3xx is returned as
    /// it is (no redirect is followed).
    pub fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let bytes = request.to_bytes()?;
        let url = &request.url;
        let mut stream = self.connect(url)?;
        let result = exchange(&mut stream, &bytes, request.method, self.response_timeout);
        // close_notify, so the server sees an orderly end.
        stream.close();
        result
    }

    /// A connection to the URL's host, tried at each of its addresses in
    /// turn; TLS for https, the certificate checked for the host.
    fn connect(&self, url: &Url) -> Result<MaybeTls, HttpError> {
        // An IP literal is not looked up; a name goes through hosts_file
        // and DNS (A, then AAAA).
        let addresses = match url.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .resolver
                .resolve_host(&url.host)
                .map_err(|error| HttpError::Dns {
                    host: url.host.clone(),
                    error,
                })?,
        };
        let mut last_error = HttpError::Connect(format!("{} has no address", url.host));
        for ip in addresses {
            let addr = SocketAddr::new(ip, url.port);
            let tcp = match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(tcp) => tcp,
                Err(e) => {
                    last_error = HttpError::Connect(format!(
                        "connect to {}[{ip}]:{}: {}",
                        url.host,
                        url.port,
                        connect_words(&e)
                    ));
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if !url.https {
                return Ok(MaybeTls::Plain(tcp));
            }
            // The handshake waits as long as a response may.
            let _ = tcp.set_read_timeout(Some(self.response_timeout));
            let _ = tcp.set_write_timeout(Some(self.response_timeout));
            let (tls, _session) =
                tls::connect(&self.tls, &url.host, tcp).map_err(HttpError::Tls)?;
            return Ok(MaybeTls::Tls(Box::new(tls)));
        }
        Err(last_error)
    }
}

/// A connection error in words: "timed out" rather than an errno.
fn connect_words(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_string(),
        _ => error.to_string(),
    }
}

/// Writes the request and reads the response within `timeout` in all,
/// against a server that trickles one octet at a time too.
fn exchange(
    stream: &mut impl HttpStream,
    request: &[u8],
    method: &str,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let broken = |what: &str, error: io::Error| match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            HttpError::Timeout(format!("after {}s {what}", timeout.as_secs()))
        }
        _ => HttpError::Io(format!("{what}: {error}")),
    };
    stream
        .set_timeouts(timeout)
        .map_err(|e| broken("sending the request", e))?;
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| broken("sending the request", e))?;
    let mut parser = ResponseParser::new(method);
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(broken(
                "waiting for the response",
                io::ErrorKind::TimedOut.into(),
            ));
        }
        stream
            .set_timeouts(left)
            .map_err(|e| broken("waiting for the response", e))?;
        let n = match stream.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A TLS peer that closes without close_notify: the framing
            // (Content-Length, chunked) tells a cut body all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(broken("waiting for the response", e)),
        };
        if n == 0 || parser.push(&buffer[..n])? {
            return parser.finish();
        }
    }
}
