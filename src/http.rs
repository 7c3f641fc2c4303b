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
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::dns::resolver::{DnsError, Resolver};
use crate::stream::Connection;
use crate::tls::{self, MaybeTls, TlsError};
use crate::url::{Url, UrlError};

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
    Url(UrlError),
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
            HttpError::Url(error) => error.fmt(f),
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

impl From<UrlError> for HttpError {
    fn from(error: UrlError) -> HttpError {
        HttpError::Url(error)
    }
}

impl HttpError {
    /// Whether the same request may succeed later: everything but a
    /// request that cannot be made as it is (the URL, a header). A name
    /// that does not resolve is taken as the smarthost's is: DNS may not
    /// be up yet at boot, and the name is the owner's to mend.
    pub fn is_temporary(&self) -> bool {
        !matches!(self, HttpError::Url(_) | HttpError::Request(_))
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
    let month = crate::time::MONTHS.iter().position(|m| *m == month)? as i64 + 1;
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
    let days = crate::time::days_from_civil(year, month, day);
    u64::try_from(days * 86400 + hour * 3600 + minute * 60 + second).ok()
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
    /// The start of `pending` searched for a line end in vain.
    line_scanned: usize,
    /// Octets of heads, chunk-size lines and trailers so far, against
    /// [`MAX_RESPONSE_HEAD`].
    head_octets: usize,
    /// The request was HEAD: its response has no body (RFC 9110 9.3.2).
    head_request: bool,
    /// The status of the head being read; 0 before its status line.
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
            line_scanned: 0,
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
        self.line_scanned = 0;
        available as u64
    }

    /// The next line of a head, chunk-size line or trailer, without its
    /// line end; `None` until it is whole. RFC 9112 2.2: a bare LF ends a
    /// line too (a preceding CR is dropped). Every such line counts
    /// against [`MAX_RESPONSE_HEAD`], so a line that never ends cannot
    /// grow without bound.
    fn take_line(&mut self) -> Result<Option<String>, HttpError> {
        // Only what came since the last look is searched: a line that
        // arrives one octet at a time costs no more than one that does not.
        let found = self.pending[self.line_scanned..]
            .iter()
            .position(|&b| b == b'\n');
        let Some(end) = found.map(|at| self.line_scanned + at) else {
            self.line_scanned = self.pending.len();
            if self.head_octets + self.pending.len() > MAX_RESPONSE_HEAD {
                return Err(self.head_too_large());
            }
            return Ok(None);
        };
        self.line_scanned = 0;
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

    /// Reads the next line of a head: the status line (while `status` is
    /// 0), a header field, or the empty line that ends it; true if a line
    /// was read.
    fn parse_head(&mut self) -> Result<bool, HttpError> {
        let Some(line) = self.take_line()? else {
            return Ok(false);
        };
        if self.status == 0 {
            self.status = parse_status_line(&line)?;
            return Ok(true);
        }
        if line.starts_with([' ', '\t']) {
            // RFC 9112 5.2: obsolete line folding; a user agent replaces
            // it with spaces.
            let (_, value) = self.headers.last_mut().ok_or_else(|| {
                HttpError::Protocol("a folded line before any header field".to_string())
            })?;
            value.push(' ');
            value.push_str(line.trim());
            return Ok(true);
        }
        if !line.is_empty() {
            self.headers.push(parse_field_line(&line)?);
            return Ok(true);
        }
        // The empty line: the head is whole.
        match self.status {
            101 => Err(HttpError::Protocol(
                "101 Switching Protocols, which no request asked for".to_string(),
            )),
            100..=199 => {
                // RFC 9110 15.2: an interim response is skipped; the
                // final one follows.
                self.status = 0;
                self.headers.clear();
                Ok(true)
            }
            status => {
                self.state = State::Body(framing(status, &self.headers, self.head_request)?);
                Ok(true)
            }
        }
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

/// Sends requests, one connection each.
pub struct HttpClient {
    resolver: Arc<Resolver>,
    /// Checks certificates as `tls_ca_file` and `tls_verify` say.
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
    /// For the request to be written and the whole response read.
    response_timeout: Duration,
    /// The most addresses of a host tried (`mx_address_limit`).
    address_limit: usize,
}

impl HttpClient {
    /// A client that resolves names with `resolver`, checks certificates
    /// with `tls`, waits `connect_timeout` for a connection and
    /// `response_timeout` for the whole response, and tries at most
    /// `address_limit` addresses of a host.
    pub fn new(
        resolver: Arc<Resolver>,
        tls: Arc<ClientConfig>,
        connect_timeout: Duration,
        response_timeout: Duration,
        address_limit: usize,
    ) -> HttpClient {
        HttpClient {
            resolver,
            tls,
            connect_timeout,
            response_timeout,
            address_limit,
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
        // A name with 50 addresses that never answer would otherwise hold
        // a delivery worker for 50 connect timeouts.
        for ip in addresses.into_iter().take(self.address_limit) {
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
    stream: &mut impl Connection,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::io::{Read, Write};

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn a_bad_url_is_not_temporary() {
        for text in [
            "ftp://x.example/",
            "https://x.example:0/",
            "https://x.example/a b",
        ] {
            let error = HttpError::from(Url::parse(text).unwrap_err());
            assert!(error.to_string().starts_with("bad URL: "), "{error}");
            assert!(!error.is_temporary());
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn post(url_text: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST",
            url: url(url_text),
            headers: fields(headers),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_request_as_it_goes_on_the_wire() {
        let request = post(
            "https://ntfy.example:8443/alerts?x=1",
            &[("Title", " disk full "), ("Priority", "5")],
            "sda1 at 99%",
        );
        let expected = format!(
            "POST /alerts?x=1 HTTP/1.1\r\nHost: ntfy.example:8443\r\n\
             User-Agent: tinymta/{}\r\nTitle: disk full\r\nPriority: 5\r\n\
             Content-Length: 11\r\nConnection: close\r\n\r\nsda1 at 99%",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            String::from_utf8(request.to_bytes().unwrap()).unwrap(),
            expected
        );
        // A GET without a body says no Content-Length; a User-Agent given
        // replaces the client's own.
        let get = Request {
            method: "GET",
            ..post("http://[::1]/", &[("user-agent", "probe")], "")
        };
        assert_eq!(
            String::from_utf8(get.to_bytes().unwrap()).unwrap(),
            "GET / HTTP/1.1\r\nHost: [::1]\r\nuser-agent: probe\r\nConnection: close\r\n\r\n"
        );
        // POST with an empty body: Content-Length: 0 (RFC 9110 8.6).
        let empty = post("http://a.example/", &[("User-Agent", "x")], "");
        assert!(String::from_utf8(empty.to_bytes().unwrap())
            .unwrap()
            .contains("\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn requests_that_would_break_the_framing_are_refused() {
        let cases = [
            (
                ("Title", "a\r\nX-Injected: 1"),
                "the value of Title holds a line break or NUL",
            ),
            (
                ("Title", "a\nb"),
                "the value of Title holds a line break or NUL",
            ),
            (
                ("Title", "a\0b"),
                "the value of Title holds a line break or NUL",
            ),
            (("Bad Name", "v"), "not a header field name: \"Bad Name\""),
            (("", "v"), "not a header field name: \"\""),
            (
                ("content-length", "5"),
                "content-length is the client's to write",
            ),
            (("Host", "evil"), "Host is the client's to write"),
            (
                ("Transfer-Encoding", "chunked"),
                "Transfer-Encoding is the client's to write",
            ),
            (
                ("Connection", "keep-alive"),
                "Connection is the client's to write",
            ),
        ];
        for ((name, value), words) in cases {
            let error = post("https://a.example/", &[(name, value)], "x")
                .to_bytes()
                .unwrap_err();
            assert_eq!(error.to_string(), format!("bad request: {words}"), "{name}");
            assert!(!error.is_temporary());
        }
        let bad_method = Request {
            method: "PO ST",
            ..post("https://a.example/", &[], "")
        };
        assert!(bad_method.to_bytes().is_err());
    }

    /// The response to `method` read from `input` pushed in pieces of
    /// `piece` octets, then the end of the connection.
    fn parse_in_pieces(method: &str, input: &[u8], piece: usize) -> Result<Response, HttpError> {
        let mut parser = ResponseParser::new(method);
        for part in input.chunks(piece) {
            if parser.push(part)? {
                break;
            }
        }
        parser.finish()
    }

    /// The same response, whatever the pieces it arrives in.
    fn parse(input: &str) -> Result<Response, HttpError> {
        let whole = parse_in_pieces("POST", input.as_bytes(), input.len().max(1));
        for piece in [1, 2, 3, 7] {
            let pieces = parse_in_pieces("POST", input.as_bytes(), piece);
            assert_eq!(
                format!("{pieces:?}"),
                format!("{whole:?}"),
                "pieces of {piece}"
            );
        }
        whole
    }

    fn parse_error(input: &str) -> String {
        parse(input).unwrap_err().to_string()
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: fields(headers),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_body_framed_by_content_length() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"id\":\"a\"}\n";
        assert_eq!(
            parse(text).unwrap(),
            response(
                200,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Length", "11")
                ],
                "{\"id\":\"a\"}\n"
            )
        );
        // Complete as soon as the length is there: what follows is not read.
        let mut parser = ResponseParser::new("POST");
        assert!(!parser
            .push(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
            .unwrap());
        assert!(parser.push(b"kGARBAGE").unwrap());
        assert_eq!(parser.finish().unwrap().body, b"ok");
        // Repeated equal lengths are one (RFC 9112 6.3 item 5).
        let twice = "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse(twice).unwrap().body, b"ok");
        let no_body = "HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse(no_body).unwrap(),
            response(201, &[("Content-Length", "0")], "")
        );
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 99\r\n\r\n\
                    5;name=value\r\nhello\r\n1 ; x\r\n,\r\nA\r\n world and\r\n\
                    0;last\r\nX-Trailer: skipped\r\n\r\nNOT READ";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.body, b"hello, world and");
        assert_eq!(parsed.header("x-trailer"), None);
        // Bare LF line ends (RFC 9112 2.2), and upper-case hex.
        let lf = "HTTP/1.1 429 Too Many Requests\nTransfer-Encoding: chunked\n\n1F\n0123456789012345678901234567890\n0\n\n";
        let parsed = parse(lf).unwrap();
        assert_eq!((parsed.status, parsed.body.len()), (429, 31));
    }

    #[test]
    fn bad_chunks_are_protocol_errors() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases = [
            ("zz\r\n", "bad chunk size line: \"zz\""),
            ("\r\n", "bad chunk size line: \"\""),
            ("-1\r\n", "bad chunk size line"),
            ("11111111111111111\r\n", "bad chunk size line"),
            ("2\r\nabc\r\n", "chunk data longer than its size"),
            ("5\r\nab", "the connection ended before the last chunk"),
            (
                "0\r\nTrailer: x\r\n",
                "the connection ended before the last chunk",
            ),
        ];
        for (chunks, words) in cases {
            let error = parse_error(&format!("{head}{chunks}"));
            assert!(error.contains(words), "{chunks:?}: {error}");
        }
        let gzip = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            parse_error(gzip),
            "bad HTTP response: unsupported transfer coding: gzip, chunked"
        );
    }

    #[test]
    fn a_body_until_the_connection_closes() {
        let text = "HTTP/1.0 500 Internal Server Error\r\nServer: x\r\n\r\nall of it\r\nand more";
        assert_eq!(
            parse(text).unwrap(),
            response(500, &[("Server", "x")], "all of it\r\nand more")
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                    HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nyes";
        assert_eq!(
            parse(text).unwrap(),
            response(202, &[("Content-Length", "3")], "yes")
        );
        let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n";
        assert!(parse_error(switching).contains("101 Switching Protocols"));
    }

    #[test]
    fn responses_without_a_body() {
        for status in ["204 No Content", "304 Not Modified"] {
            let text = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n");
            let mut parser = ResponseParser::new("POST");
            assert!(parser.push(text.as_bytes()).unwrap(), "{status}");
            assert!(parser.finish().unwrap().body.is_empty());
        }
        let mut parser = ResponseParser::new("HEAD");
        assert!(parser
            .push(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            .unwrap());
        assert!(parser.finish().unwrap().body.is_empty());
    }

    #[test]
    fn a_redirect_is_a_response_like_any_other() {
        let text = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere.example/\r\nContent-Length: 0\r\n\r\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.status, 301);
        assert_eq!(
            parsed.header("LOCATION"),
            Some("https://elsewhere.example/")
        );
    }

    #[test]
    fn header_fields_folded_spaced_and_looked_up_in_any_case() {
        let text = "HTTP/1.1 200 OK\r\nX-Long: one\r\n \t two\r\nEmpty:\r\nSpaced:  \t v  \r\nX-Long: second\r\nContent-Length: 0\r\n\r\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.header("x-long"), Some("one two"));
        assert_eq!(parsed.header("EMPTY"), Some(""));
        assert_eq!(parsed.header("spaced"), Some("v"));
        assert_eq!(parsed.header("missing"), None);
        // The reason phrase may be empty or missing altogether.
        assert_eq!(parse("HTTP/1.1 200 \r\n\r\n").unwrap().status, 200);
        assert_eq!(parse("HTTP/1.1 200\r\n\r\n").unwrap().status, 200);
    }

    #[test]
    fn malformed_heads_are_protocol_errors() {
        let cases = [
            (
                "SMTP/1.1 200 OK\r\n\r\n",
                "not an HTTP/1.x status line: \"SMTP/1.1 200 OK\"",
            ),
            (
                "220 mx.example ESMTP\r\n\r\n",
                "not an HTTP/1.x status line",
            ),
            ("HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.1 99 Low\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.1 600 High\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.1 +20 OK\r\n\r\n", "not an HTTP/1.x status line"),
            ("HTTP/1.11 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
            (
                "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
                "not a header field: \"No colon\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
                "not a header field: \"Name : v\"",
            ),
            (
                "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
                "a folded line before any header field",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "bad Content-Length: \"2\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length: \"-1\"",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "bad Content-Length",
            ),
            ("", "the connection ended without a response"),
            (
                "HTTP/1.1 200 OK\r\nContent-",
                "the connection ended in the response head",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                "the connection ended 2 octets before the end of the body",
            ),
        ];
        for (text, words) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.to_string(), error.to_string());
            assert!(error.to_string().contains(words), "{text:?}: {error}");
            assert!(matches!(error, HttpError::Protocol(_)));
            assert!(error.is_temporary());
        }
    }

    #[test]
    fn the_head_is_bounded() {
        let limit = "the response head or chunk lines exceed 16384 octets";
        // One endless line, many small fields, and 1xx responses without end.
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-A: b\r\n".repeat(3000));
        let interim = "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
        for text in [&endless, &many, &interim] {
            let mut parser = ResponseParser::new("POST");
            let error = text
                .as_bytes()
                .chunks(1000)
                .find_map(|part| parser.push(part).err())
                .expect("refused before the end");
            assert_eq!(error.to_string(), format!("bad HTTP response: {limit}"));
        }
        // Just under the bound is fine.
        let field = format!("X: {}\r\n", "a".repeat(MAX_RESPONSE_HEAD - 60));
        let text = format!("HTTP/1.1 200 OK\r\n{field}Content-Length: 0\r\n\r\n");
        assert!(text.len() <= MAX_RESPONSE_HEAD);
        assert_eq!(parse(&text).unwrap().status, 200);
        // Chunk-size lines and trailers count too.
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let long_extension = format!("{head}1;{}\r\n", "e".repeat(MAX_RESPONSE_HEAD));
        assert!(parse_error(&long_extension).contains(limit));
        let trailers = format!("{head}0\r\n{}", "T: x\r\n".repeat(3000));
        assert!(parse_error(&trailers).contains(limit));
    }

    #[test]
    fn the_body_is_kept_up_to_its_bound_and_the_rest_not_read() {
        let big = "b".repeat(MAX_RESPONSE_BODY + 10_000);
        let framings = [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}",
                big.len()
            ),
            format!("HTTP/1.1 200 OK\r\n\r\n{big}"),
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
                big.len()
            ),
        ];
        for text in framings {
            let mut parser = ResponseParser::new("POST");
            let mut done_after = None;
            for (i, part) in text.as_bytes().chunks(4096).enumerate() {
                if parser.push(part).unwrap() {
                    done_after = Some((i + 1) * 4096);
                    break;
                }
            }
            // Complete once the body is full, before the rest has come.
            assert!(done_after.unwrap() < text.len());
            let parsed = parser.finish().unwrap();
            assert_eq!(parsed.body.len(), MAX_RESPONSE_BODY);
        }
        // A body of 2^64-1 octets announced: still bounded, never allocated.
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\nabc", u64::MAX);
        let mut parser = ResponseParser::new("POST");
        assert!(!parser.push(huge.as_bytes()).unwrap());
        assert!(parser
            .finish()
            .unwrap_err()
            .to_string()
            .contains("octets before the end"));
    }

    fn with_retry_after(value: &str) -> Response {
        response(429, &[("Retry-After", value)], "")
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        // 1994-11-06 08:49:37 UTC, RFC 9110 5.6.7's example.
        let date = 784_111_777;
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(with_retry_after("120").retry_after(date), secs(120));
        assert_eq!(with_retry_after(" 0 ").retry_after(date), secs(0));
        assert_eq!(
            with_retry_after("99999999999999999999999").retry_after(0),
            secs(u64::MAX)
        );
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(form), Some(date), "{form}");
            assert_eq!(
                with_retry_after(form).retry_after(date - 90),
                secs(90),
                "{form}"
            );
            // A date already past: no wait.
            assert_eq!(
                with_retry_after(form).retry_after(date + 5),
                secs(0),
                "{form}"
            );
        }
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        assert_eq!(
            parse_http_date("Friday, 31-Dec-49 23:59:59 GMT"),
            Some(2_524_607_999)
        );
        for bad in [
            "",
            "soon",
            "-5",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
        ] {
            assert_eq!(with_retry_after(bad).retry_after(date), None, "{bad:?}");
        }
        assert_eq!(response(503, &[], "").retry_after(date), None);
    }

    // The exchange against a scripted server, as the SMTP client's tests
    // do it (chasquid's courier/fakeserver_test.go).

    #[derive(Debug)]
    enum Step {
        /// The server answers with these octets, all in one read.
        Replies(Vec<u8>),
        /// Nothing comes until the client's read times out.
        Silent,
        /// The connection is cut (RST).
        Resets,
        /// Each read waits this long, then gives one octet of these.
        Trickles(Duration, Vec<u8>),
    }

    struct Scripted {
        steps: VecDeque<Step>,
        written: Vec<u8>,
        /// Each timeout the client set, in order.
        timeouts: std::cell::RefCell<Vec<Duration>>,
    }

    impl Scripted {
        fn new(steps: Vec<Step>) -> Scripted {
            Scripted {
                steps: steps.into(),
                written: Vec::new(),
                timeouts: Default::default(),
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(step) = self.steps.pop_front() else {
                return Ok(0);
            };
            match step {
                Step::Replies(octets) => {
                    // The script's replies are smaller than the client's buffer.
                    buf[..octets.len()].copy_from_slice(&octets);
                    Ok(octets.len())
                }
                Step::Silent => Err(io::ErrorKind::WouldBlock.into()),
                Step::Resets => Err(io::ErrorKind::ConnectionReset.into()),
                Step::Trickles(pause, octets) => {
                    std::thread::sleep(pause);
                    buf[0] = octets[0];
                    if octets.len() > 1 {
                        let rest = octets[1..].to_vec();
                        self.steps.push_front(Step::Trickles(pause, rest));
                    }
                    Ok(1)
                }
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for Scripted {
        fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
            self.timeouts.borrow_mut().push(timeout);
            Ok(())
        }

        fn set_write_timeout(&self, _timeout: Duration) -> io::Result<()> {
            Ok(())
        }

        fn close(&mut self) {}
    }

    fn replies(octets: &str) -> Step {
        Step::Replies(octets.as_bytes().to_vec())
    }

    const TIMEOUT: Duration = Duration::from_secs(7);

    fn exchange_with(steps: Vec<Step>) -> (Result<Response, HttpError>, Scripted) {
        let mut server = Scripted::new(steps);
        let request = post("https://ntfy.example/t", &[("Title", "hi")], "body");
        let result = exchange(&mut server, &request.to_bytes().unwrap(), "POST", TIMEOUT);
        (result, server)
    }

    #[test]
    fn the_request_is_written_and_the_response_read_in_pieces() {
        let (result, server) = exchange_with(vec![
            replies("HTTP/1.1 200 OK\r\nTransfer-"),
            replies("Encoding: chunked\r\n\r\n2\r\n{}"),
            replies("\r\n0\r\n\r\n"),
        ]);
        assert_eq!(
            result.unwrap(),
            response(200, &[("Transfer-Encoding", "chunked")], "{}")
        );
        let expected = format!(
            "POST /t HTTP/1.1\r\nHost: ntfy.example\r\nUser-Agent: tinymta/{}\r\nTitle: hi\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\nbody",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8_lossy(&server.written), expected);
        // Every read is given what is left of the one timeout.
        let timeouts = server.timeouts.borrow();
        assert_eq!(timeouts[0], TIMEOUT);
        assert!(timeouts.windows(2).all(|w| w[1] <= w[0]), "{timeouts:?}");
        assert!(timeouts.len() >= 4, "{timeouts:?}");
    }

    #[test]
    fn a_silent_server_times_out_and_a_cut_one_is_a_broken_connection() {
        let (result, _) = exchange_with(vec![Step::Silent]);
        let error = result.unwrap_err();
        assert_eq!(
            error.to_string(),
            "timeout after 7s waiting for the response"
        );
        assert!(error.is_temporary());
        let (result, _) = exchange_with(vec![replies("HTTP/1.1 200 OK\r\n"), Step::Resets]);
        let error = result.unwrap_err();
        assert!(matches!(error, HttpError::Io(_)), "{error:?}");
        assert!(error.is_temporary());
        let (result, _) = exchange_with(vec![]);
        assert_eq!(
            result.unwrap_err().to_string(),
            "bad HTTP response: the connection ended without a response"
        );
    }

    #[test]
    fn a_server_that_trickles_gets_one_timeout_for_the_whole_response() {
        let mut server = Scripted::new(vec![Step::Trickles(
            Duration::from_millis(30),
            b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        )]);
        let started = Instant::now();
        let error = exchange(
            &mut server,
            b"GET / HTTP/1.1\r\n\r\n",
            "GET",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(error, HttpError::Timeout(_)), "{error:?}");
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    /// A client whose names resolve through a hosts table only: no DNS.
    fn client_with_hosts(hosts: &[(&str, IpAddr)], timeout: Duration) -> HttpClient {
        let hosts: HashMap<String, Vec<IpAddr>> = hosts
            .iter()
            .map(|(name, ip)| (name.to_string(), vec![*ip]))
            .collect();
        // A nameserver that is never asked: the names are all in the table.
        let resolver = Resolver::new(vec!["127.0.0.1:9".parse().unwrap()], timeout, hosts);
        HttpClient {
            resolver: Arc::new(resolver),
            tls: crate::tls::ClientConfigs::new(None, true, None)
                .unwrap()
                .verified,
            connect_timeout: timeout,
            response_timeout: timeout,
            address_limit: 5,
        }
    }

    /// A plain HTTP server on `ip` that answers one connection with
    /// `answer` and hands back what it read.
    fn one_shot_server(ip: &str, answer: &'static str) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"body") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
            request
        });
        (port, server)
    }

    #[test]
    fn over_tcp_to_a_name_from_the_hosts_table_and_to_an_ipv6_literal() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let client = client_with_hosts(
            &[("push.test", "127.0.0.1".parse().unwrap())],
            Duration::from_secs(5),
        );
        let (port, server) = one_shot_server("127.0.0.1", answer);
        let request = post(&format!("http://push.test:{port}/x"), &[], "body");
        assert_eq!(client.send(&request).unwrap().body, b"ok");
        let written = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            written.starts_with(&format!("POST /x HTTP/1.1\r\nHost: push.test:{port}\r\n")),
            "{written}"
        );
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let (port, server) = one_shot_server("::1", answer);
            let request = post(&format!("http://[::1]:{port}/v6"), &[], "body");
            assert_eq!(client.send(&request).unwrap().status, 200);
            let written = String::from_utf8(server.join().unwrap()).unwrap();
            assert!(
                written.contains(&format!("\r\nHost: [::1]:{port}\r\n")),
                "{written}"
            );
        }
    }

    #[test]
    fn the_addresses_of_a_name_in_turn_up_to_the_limit() {
        // The server is on 127.0.0.3; on 127.0.0.2 nothing listens at its
        // port, which refuses the connection.
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (port, server) = one_shot_server("127.0.0.3", answer);
        let mut client = client_with_hosts(&[], Duration::from_secs(5));
        let addresses = ["127.0.0.2", "127.0.0.3"].map(|ip| ip.parse().unwrap());
        let hosts = HashMap::from([("two.test".to_string(), addresses.to_vec())]);
        client.resolver = Arc::new(Resolver::new(Vec::new(), Duration::from_secs(1), hosts));
        let request = post(&format!("http://two.test:{port}/"), &[], "body");
        client.address_limit = 1;
        let error = client.send(&request).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("connect to two.test[127.0.0.2]:{port}: ")),
            "{error}"
        );
        client.address_limit = 2;
        assert_eq!(client.send(&request).unwrap().status, 200);
        server.join().unwrap();
    }

    #[test]
    fn connection_failures_and_unknown_names_are_temporary_errors() {
        let client = client_with_hosts(&[], Duration::from_millis(300));
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = client
            .send(&post(&format!("http://127.0.0.1:{port}/"), &[], ""))
            .unwrap_err();
        assert!(matches!(error, HttpError::Connect(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("connect to 127.0.0.1[127.0.0.1]:{port}: ")),
            "{error}"
        );
        assert!(error.is_temporary());
        // Not in the table, and the nameserver does not answer.
        let error = client
            .send(&post("https://nowhere.test/", &[], ""))
            .unwrap_err();
        assert!(matches!(error, HttpError::Dns { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("cannot resolve nowhere.test: "),
            "{error}"
        );
        assert!(error.is_temporary());
    }
}
