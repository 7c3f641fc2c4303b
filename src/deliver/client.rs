//! The SMTP client (RFC 5321) that hands messages to the next server:
//! EHLO (HELO if refused), STARTTLS (RFC 3207) or implicit TLS (RFC 8314),
//! AUTH PLAIN or LOGIN (RFC 4954), then MAIL, one RCPT per recipient with
//! its own outcome, DATA with dot-stuffing and CRLF line ends, QUIT.
//! The session runs over any [`ConnectTls`] stream: a TCP connection in
//! production, a scripted server in the tests.

use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use super::Outcome;
use crate::log::Escaped;
use crate::smtp::base64;
use crate::smtp::status::Status;
use crate::spool::queue::Failure;
use crate::stream::ConnectTls;
use crate::tls::{MaybeTls, TlsError, TlsSession};

/// RFC 5321 4.5.3.2: how long to wait for each reply. The greeting and the
/// EHLO/HELO reply wait `ClientOptions::helo_timeout` instead (the config's
/// `smtp_helo_timeout`): a server that accepts connections and never speaks
/// must not hold a delivery worker for the RFC's five minutes per address.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DATA_INIT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
const DATA_END_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest reply line read from a server, and the most lines per reply.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

/// A reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl ServerReply {
    /// The reply on one line, as logged and stored: `550 5.1.1 no such user`.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// How the connection is secured.
#[derive(Clone)]
pub enum TlsMode {
    /// Clear text; STARTTLS is not tried.
    None,
    /// STARTTLS when offered; without it, clear text. The caller retries in
    /// clear text when the handshake fails ([`TlsMode::falls_back_to_clear`]).
    Opportunistic(Arc<ClientConfig>),
    /// STARTTLS, or no delivery.
    Required(Arc<ClientConfig>),
    /// TLS from the first byte (RFC 8314).
    Implicit(Arc<ClientConfig>),
}

impl TlsMode {
    /// Whether a server that failed with `error` in this mode is to be
    /// tried again at once in clear text: only when TLS was opportunistic
    /// and TLS itself failed (STARTTLS refused, a failed handshake), as
    /// opportunistic security would rather send in clear than not at all
    /// (RFC 7435 3).
    pub fn falls_back_to_clear(&self, error: &HostError) -> bool {
        matches!(self, TlsMode::Opportunistic(_)) && matches!(error, HostError::Tls(_))
    }
}

/// Everything needed to open a session with one server.
#[derive(Clone)]
pub struct ClientOptions {
    /// Our name in EHLO.
    pub helo_name: String,
    pub connect_timeout: Duration,
    /// How long to wait for the greeting (and an implicit TLS handshake
    /// before it) and for the reply to each EHLO or HELO.
    pub helo_timeout: Duration,
    pub tls: TlsMode,
    /// User and password for AUTH (only ever sent over TLS, unless `tls` is `None`).
    pub auth: Option<(String, String)>,
    /// The server is the smarthost, whose TLS `smarthost_tls` chooses:
    /// errors that a wrong choice explains name that key.
    pub smarthost: bool,
}

/// Why a server could not be used; the caller tries the next one. The text
/// shown (`greeting: 554 5.7.1 go away`, `timed out`) goes into the logs and
/// the deferral reason stored with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The connection failed: refused, closed by the server.
    Connect(String),
    /// No connection to `relay` (`name[ip]:port`) within `connect_timeout`.
    ConnectTimedOut { relay: String },
    /// The server did not answer, or take what we wrote, in the time
    /// allowed (the greeting's, a command's).
    TimedOut,
    /// No TLS could be had: the handshake failed, the server refused
    /// STARTTLS, or did not offer it when it was required. An opportunistic
    /// sender may retry in clear text.
    Tls(String),
    /// The server refused at `stage` (`greeting`, `EHLO`, `AUTH LOGIN`,
    /// `MAIL` with 421...).
    Refused {
        stage: &'static str,
        reply: ServerReply,
    },
    /// The server refused `user`'s credentials (RFC 4954 6: 535; Gmail's
    /// 534 5.7.9 wants an app password).
    AuthRefused { user: String, reply: ServerReply },
    /// The server broke the protocol (a malformed or overlong reply, data
    /// after its STARTTLS reply), or the session cannot go on as configured
    /// (no usable AUTH mechanism, AUTH over clear text).
    Protocol(String),
    /// A failure on our side, such as a message that cannot be read from
    /// the spool.
    Local(String),
}

impl HostError {
    fn refused(stage: &'static str, reply: ServerReply) -> HostError {
        HostError::Refused { stage, reply }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Connect(text)
            | HostError::Tls(text)
            | HostError::Protocol(text)
            | HostError::Local(text) => f.write_str(text),
            HostError::ConnectTimedOut { relay } => write!(f, "connect to {relay}: timed out"),
            HostError::TimedOut => f.write_str("timed out"),
            HostError::Refused { stage, reply } => write!(f, "{stage}: {}", reply.text()),
            HostError::AuthRefused { user, reply } => write!(
                f,
                "AUTH: the server refused user {user:?} with the password of \
                 smarthost_password_file ({}): put the right password in that file, \
                 which tinymta reads at start-up and on SIGHUP (reload it after a \
                 change); Gmail and other providers with two-step verification want an \
                 app password there, not the account's",
                reply.text()
            ),
        }
    }
}

impl std::error::Error for HostError {}

impl From<io::Error> for HostError {
    fn from(e: io::Error) -> HostError {
        match e.kind() {
            // A socket read timeout is WouldBlock on Linux, TimedOut elsewhere.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HostError::TimedOut,
            io::ErrorKind::UnexpectedEof => {
                HostError::Connect("connection closed by server".to_string())
            }
            _ => HostError::Connect(e.to_string()),
        }
    }
}

impl Outcome {
    /// What a server's reply means for a recipient (RFC 5321 4.2.1): 2yz
    /// delivered, 5yz failed for good, anything else tried again; with the
    /// enhanced status code the reply gives (RFC 2034 3), else X.0.0.
    pub(crate) fn from_reply(reply: &ServerReply) -> Outcome {
        let failure = || Failure {
            status: reply
                .lines
                .first()
                .and_then(|line| Status::of_reply_text(line))
                .unwrap_or(Status::undefined(reply.code >= 500)),
            text: reply.text(),
        };
        match reply.code {
            200..=299 => Outcome::Delivered(reply.text()),
            500..=599 => Outcome::Failed(failure()),
            _ => Outcome::Deferred(failure()),
        }
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Default, Clone)]
struct Extensions {
    starttls: bool,
    pipelining: bool,
    eight_bit_mime: bool,
    /// RFC 1870 SIZE; 0 means no stated limit.
    size: Option<u64>,
    auth: Vec<String>,
}

impl Extensions {
    fn from_ehlo(reply: &ServerReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => ext.starttls = true,
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "AUTH" => ext.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        ext
    }
}

/// The envelope of a message to send, and its size for SIZE= (RFC 1870);
/// its text comes apart, as a reader (`outgoing::OutgoingText`).
pub struct OutgoingEnvelope<'a> {
    /// Empty for the null reverse-path.
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// The client said BODY=8BITMIME when it gave us the message.
    pub eight_bit: bool,
    pub size: u64,
}

/// An open session with a server, ready for MAIL.
pub struct SmtpClient<S = MaybeTls> {
    stream: S,
    input: Vec<u8>,
    ext: Extensions,
    /// The TLS session; `None` for clear text.
    pub tls: Option<TlsSession>,
    /// The server, for logs: `name[ip]:port`.
    pub relay: String,
}

impl SmtpClient {
    /// Connects to `addr` (the server `host_name`) and opens the session
    /// there ([`SmtpClient::start`]).
    pub fn connect(
        addr: SocketAddr,
        host_name: &str,
        options: &ClientOptions,
    ) -> Result<SmtpClient, HostError> {
        let tcp = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
            let relay = relay_name(host_name, addr);
            match HostError::from(e) {
                HostError::TimedOut => HostError::ConnectTimedOut { relay },
                other => HostError::Connect(format!("connect to {relay}: {other}")),
            }
        })?;
        let _ = tcp.set_nodelay(true);
        SmtpClient::start(MaybeTls::Plain(tcp), host_name, addr, options)
    }
}

impl<S: ConnectTls> SmtpClient<S> {
    /// Opens a session over `stream`, connected to the server `host_name`
    /// at `addr`: TLS first if `options.tls` is implicit, then reads the
    /// greeting, says EHLO, secures the connection as `options.tls` asks,
    /// and authenticates.
    pub fn start(
        mut stream: S,
        host_name: &str,
        addr: SocketAddr,
        options: &ClientOptions,
    ) -> Result<SmtpClient<S>, HostError> {
        let mut tls = None;
        if let TlsMode::Implicit(config) = &options.tls {
            // RFC 8314 3.3: TLS from the first byte, before the greeting.
            stream.set_read_timeout(options.helo_timeout)?;
            stream.set_write_timeout(options.helo_timeout)?;
            tls = Some(stream.connect_tls(config, host_name).map_err(|e| match e {
                TlsError::NotTls => HostError::Tls(format!(
                    "port {} speaks STARTTLS, not implicit TLS (it answered in clear \
                     text): set smarthost_tls = starttls",
                    addr.port()
                )),
                other => HostError::Tls(other.to_string()),
            })?);
        }
        let mut client = SmtpClient {
            stream,
            input: Vec::new(),
            ext: Extensions::default(),
            tls,
            relay: relay_name(host_name, addr),
        };
        let greeting = client
            .read_reply(options.helo_timeout)
            .map_err(|e| no_greeting(e, addr, options))?;
        if greeting.code != 220 {
            return Err(HostError::refused("greeting", greeting));
        }
        client.ehlo(options)?;
        let starttls_config = match &options.tls {
            TlsMode::Required(config) => {
                if !client.ext.starttls {
                    return Err(HostError::Tls(
                        "STARTTLS required but not offered".to_string(),
                    ));
                }
                Some(config)
            }
            TlsMode::Opportunistic(config) if client.ext.starttls => Some(config),
            _ => None,
        };
        if let Some(config) = starttls_config {
            client.starttls(config, host_name)?;
            // RFC 3207 4.2: what the server offered before TLS is forgotten.
            client.ehlo(options)?;
        }
        if let Some((user, password)) = &options.auth {
            if client.tls.is_none() && !matches!(options.tls, TlsMode::None) {
                return Err(HostError::Protocol(
                    "refusing to send AUTH over a clear-text connection".to_string(),
                ));
            }
            client.authenticate(user, password)?;
        }
        Ok(client)
    }

    fn ehlo(&mut self, options: &ClientOptions) -> Result<(), HostError> {
        let name = &options.helo_name;
        let reply = self.command(&format!("EHLO {name}"), options.helo_timeout)?;
        if reply.code == 250 {
            self.ext = Extensions::from_ehlo(&reply);
            return Ok(());
        }
        if reply.code == 421 {
            return Err(HostError::refused("EHLO", reply));
        }
        // RFC 5321 3.2: a server that does not know EHLO gets HELO.
        let reply = self.command(&format!("HELO {name}"), options.helo_timeout)?;
        if reply.code != 250 {
            return Err(HostError::refused("HELO", reply));
        }
        self.ext = Extensions::default();
        Ok(())
    }

    fn starttls(&mut self, config: &Arc<ClientConfig>, host_name: &str) -> Result<(), HostError> {
        let reply = self.command("STARTTLS", COMMAND_TIMEOUT)?;
        if reply.code != 220 {
            return Err(HostError::Tls(format!("STARTTLS: {}", reply.text())));
        }
        if !self.input.is_empty() {
            // RFC 3207 5: nothing may come between the 220 and the handshake.
            return Err(HostError::Protocol(
                "server sent data after its STARTTLS reply".to_string(),
            ));
        }
        let session = self
            .stream
            .connect_tls(config, host_name)
            .map_err(|e| HostError::Tls(e.to_string()))?;
        self.tls = Some(session);
        Ok(())
    }

    /// RFC 4954: PLAIN if offered, else LOGIN. A refusal (535) is not the
    /// message's fault: the caller defers rather than bounces.
    fn authenticate(&mut self, user: &str, password: &str) -> Result<(), HostError> {
        let reply = if self.ext.auth.iter().any(|m| m == "PLAIN") {
            let token = base64::encode(format!("\0{user}\0{password}").as_bytes());
            self.command_secret(&format!("AUTH PLAIN {token}"), "AUTH PLAIN <secret>")?
        } else if self.ext.auth.iter().any(|m| m == "LOGIN") {
            let reply = self.command("AUTH LOGIN", COMMAND_TIMEOUT)?;
            if reply.code != 334 {
                return Err(HostError::refused("AUTH LOGIN", reply));
            }
            let reply = self.command_secret(&base64::encode(user.as_bytes()), "<user>")?;
            if reply.code != 334 {
                return Err(HostError::refused("AUTH LOGIN", reply));
            }
            self.command_secret(&base64::encode(password.as_bytes()), "<secret>")?
        } else {
            return Err(HostError::Protocol(
                "server offers no AUTH PLAIN or LOGIN".to_string(),
            ));
        };
        match reply.code {
            235 => Ok(()),
            534 | 535 => Err(HostError::AuthRefused {
                user: user.to_string(),
                reply,
            }),
            _ => Err(HostError::refused("AUTH", reply)),
        }
    }

    /// Sends one message. `Err` means the connection is no longer usable and
    /// no outcome is known for this message: the caller tries another server.
    pub fn send(
        &mut self,
        envelope: &OutgoingEnvelope<'_>,
        text: &mut impl Read,
    ) -> Result<Vec<Outcome>, HostError> {
        let every = |outcome: Outcome| vec![outcome; envelope.recipients.len()];
        if let Some(limit) = self.ext.size.filter(|&limit| limit > 0) {
            if envelope.size > limit {
                // RFC 1870 6.2, RFC 3463 5.3.4: too big for this server.
                return Ok(every(Outcome::Failed(Failure {
                    status: Status::new(5, 3, 4),
                    text: format!(
                        "552 5.3.4 message of {} octets exceeds the server's limit of {limit}",
                        envelope.size
                    ),
                })));
            }
        }
        let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", envelope.size));
        }
        if envelope.eight_bit && self.ext.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        let reply = self.command(&mail, COMMAND_TIMEOUT)?;
        if reply.code == 421 {
            return Err(HostError::refused("MAIL", reply));
        }
        if reply.code != 250 {
            let outcome = Outcome::from_reply(&reply);
            self.reset()?;
            return Ok(every(outcome));
        }
        let mut outcomes = Vec::with_capacity(envelope.recipients.len());
        for recipient in envelope.recipients {
            let reply = self.command(&format!("RCPT TO:<{recipient}>"), COMMAND_TIMEOUT)?;
            if reply.code == 421 {
                return Err(HostError::refused("RCPT", reply));
            }
            outcomes.push(if reply.code == 250 || reply.code == 251 {
                None
            } else {
                Some(Outcome::from_reply(&reply))
            });
        }
        if outcomes.iter().all(Option::is_some) {
            self.reset()?;
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let reply = self.command("DATA", DATA_INIT_TIMEOUT)?;
        if reply.code != 354 {
            if reply.code == 421 {
                return Err(HostError::refused("DATA", reply));
            }
            let outcome = Outcome::from_reply(&reply);
            self.reset()?;
            return Ok(outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| outcome.clone()))
                .collect());
        }
        self.stream.set_write_timeout(DATA_BLOCK_TIMEOUT)?;
        {
            let mut out = BufWriter::with_capacity(64 * 1024, &mut self.stream);
            write_dot_stuffed(text, &mut out)?;
            out.flush()?;
        }
        let reply = self.read_reply(DATA_END_TIMEOUT)?;
        if reply.code == 421 {
            return Err(HostError::refused("end of data", reply));
        }
        let outcome = Outcome::from_reply(&reply);
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| outcome.clone()))
            .collect())
    }

    /// RSET after a transaction that was refused, so the next can start.
    fn reset(&mut self) -> Result<(), HostError> {
        let reply = self.command("RSET", COMMAND_TIMEOUT)?;
        if reply.code == 250 {
            Ok(())
        } else {
            Err(HostError::refused("RSET", reply))
        }
    }

    /// Ends the session politely; errors do not matter any more.
    pub fn quit(mut self) {
        let _ = self.command("QUIT", Duration::from_secs(10));
        self.stream.close();
    }

    fn command(&mut self, line: &str, timeout: Duration) -> Result<ServerReply, HostError> {
        self.command_logged(line, line, timeout)
    }

    fn command_secret(&mut self, line: &str, shown: &str) -> Result<ServerReply, HostError> {
        self.command_logged(line, shown, COMMAND_TIMEOUT)
    }

    fn command_logged(
        &mut self,
        line: &str,
        shown: &str,
        timeout: Duration,
    ) -> Result<ServerReply, HostError> {
        log::trace!("{} <- {}", self.relay, Escaped(shown));
        self.stream.set_write_timeout(timeout)?;
        self.stream.write_all(format!("{line}\r\n").as_bytes())?;
        self.stream.flush()?;
        self.read_reply(timeout)
    }

    /// One reply, all its lines (RFC 5321 4.2.1).
    fn read_reply(&mut self, timeout: Duration) -> Result<ServerReply, HostError> {
        self.stream.set_read_timeout(timeout)?;
        let mut lines = Vec::new();
        loop {
            let line = self.read_line()?;
            let bad = || {
                HostError::Protocol(format!(
                    "malformed reply from {}: {:?}",
                    self.relay,
                    String::from_utf8_lossy(&line)
                ))
            };
            if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let code: u16 = std::str::from_utf8(&line[..3])
                .map_err(|_| bad())?
                .parse()
                .map_err(|_| bad())?;
            if !(200..600).contains(&code) {
                return Err(bad());
            }
            let last = match line.get(3) {
                None | Some(b' ') => true,
                Some(b'-') => false,
                Some(_) => return Err(bad()),
            };
            let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default())
                .trim_end()
                .to_string();
            lines.push(text);
            if last {
                log::trace!("{} -> {code} {}", self.relay, Escaped(&lines.join(" | ")));
                return Ok(ServerReply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(HostError::Protocol("reply with too many lines".to_string()));
            }
        }
    }

    /// A line without its CRLF; bytes after it stay in `input`.
    fn read_line(&mut self) -> Result<Vec<u8>, HostError> {
        loop {
            if let Some(pos) = self.input.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.input.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.input.len() > MAX_REPLY_LINE {
                return Err(HostError::Protocol("reply line too long".to_string()));
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(HostError::Connect(
                    "connection closed by server".to_string(),
                ));
            }
            self.input.extend_from_slice(&buf[..n]);
        }
    }
}

/// A server as the logs name it: `name[ip]:port`.
fn relay_name(host_name: &str, addr: SocketAddr) -> String {
    format!("{host_name}[{}]:{}", addr.ip(), addr.port())
}

/// The error for a greeting that did not come. A smarthost port that
/// speaks implicit TLS (465) waits in silence for the client's TLS, while
/// a client that expects STARTTLS or clear text waits for the greeting:
/// a wait until the timeout, which the owner mends with `smarthost_tls`.
fn no_greeting(error: HostError, addr: SocketAddr, options: &ClientOptions) -> HostError {
    let timed_out = matches!(error, HostError::TimedOut);
    if !timed_out || !options.smarthost || matches!(options.tls, TlsMode::Implicit(_)) {
        return error;
    }
    HostError::Connect(format!(
        "no greeting within {}s: if port {} speaks implicit TLS (as 465 does, waiting \
         for the client to begin), set smarthost_tls = tls",
        options.helo_timeout.as_secs(),
        addr.port()
    ))
}

/// Writes a message for DATA: a dot doubled at the start of a line
/// (RFC 5321 4.5.2), every line ending in CRLF (a bare CR or LF in the text
/// becomes CRLF: RFC 5321 2.3.8 allows no other), then the final `.`.
pub fn write_dot_stuffed(text: &mut impl Read, out: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at_line_start = true;
    let mut pending_cr = false;
    loop {
        let n = text.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if pending_cr {
                pending_cr = false;
                out.write_all(b"\r\n")?;
                at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => pending_cr = true,
                b'\n' => {
                    out.write_all(b"\r\n")?;
                    at_line_start = true;
                }
                _ => {
                    if at_line_start && b == b'.' {
                        out.write_all(b".")?;
                    }
                    out.write_all(&[b])?;
                    at_line_start = false;
                }
            }
        }
    }
    if pending_cr || !at_line_start {
        out.write_all(b"\r\n")?;
    }
    out.write_all(b".\r\n")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::stream::Connection;

    /// An outcome with the status the reply's text gives.
    fn failed(status: &str, text: &str) -> Outcome {
        Outcome::Failed(Failure {
            status: Status::parse(status).unwrap(),
            text: text.into(),
        })
    }

    fn deferred(status: &str, text: &str) -> Outcome {
        Outcome::Deferred(Failure {
            status: Status::parse(status).unwrap(),
            text: text.into(),
        })
    }

    #[test]
    fn a_reply_without_an_enhanced_code_is_x_0_0() {
        let reply = |code: u16, text: &str| ServerReply {
            code,
            lines: vec![text.to_string()],
        };
        assert_eq!(
            Outcome::from_reply(&reply(550, "no such user")),
            failed("5.0.0", "550 no such user")
        );
        assert_eq!(
            Outcome::from_reply(&reply(451, "busy, 5.1.1 not meant")),
            deferred("4.0.0", "451 busy, 5.1.1 not meant")
        );
        assert_eq!(
            Outcome::from_reply(&reply(550, "5.7.1 go away")),
            failed("5.7.1", "550 5.7.1 go away")
        );
        assert_eq!(
            Outcome::from_reply(&reply(250, "2.0.0 Ok")),
            Outcome::Delivered("250 2.0.0 Ok".into())
        );
    }

    fn stuffed(text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_dot_stuffed(&mut &text[..], &mut out).unwrap();
        out
    }

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(stuffed(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(stuffed(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(stuffed(b""), b".\r\n");
        assert_eq!(stuffed(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(stuffed(b"bare\nlf\rcr\r"), b"bare\r\nlf\r\ncr\r\n.\r\n");
        assert_eq!(stuffed(b"x\n.\n"), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn ehlo_keywords() {
        let reply = ServerReply {
            code: 250,
            lines: vec![
                "mx.example".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "8bitmime".into(),
                "STARTTLS".into(),
                "AUTH login PLAIN".into(),
            ],
        };
        let ext = Extensions::from_ehlo(&reply);
        assert!(ext.starttls && ext.pipelining && ext.eight_bit_mime);
        assert_eq!(ext.size, Some(1000));
        assert_eq!(ext.auth, ["LOGIN", "PLAIN"]);
    }

    // The session against a scripted server, in the manner of chasquid's
    // courier/fakeserver_test.go: a table of what the client must send,
    // line by line, and what the server answers.

    /// One step of a script.
    #[derive(Debug)]
    enum Step {
        /// The client sends exactly this line (without its CRLF).
        Sends(String),
        /// The server answers with these octets, all in one read.
        Replies(Vec<u8>),
        /// The client starts TLS here and the handshake succeeds; the script
        /// goes on in clear text so that it can be read.
        Tls,
        /// The client starts TLS here and the handshake fails.
        TlsFails,
        /// The client starts TLS here and the server answers in clear text.
        TlsAnsweredInClear,
        /// The server says nothing until the client's read times out.
        Silent,
        /// The client closes the connection.
        Closes,
    }

    fn sends(line: &str) -> Step {
        Step::Sends(line.to_string())
    }

    fn replies(octets: &str) -> Step {
        Step::Replies(octets.as_bytes().to_vec())
    }

    /// A server that follows a script. A client that strays from it panics
    /// the test at once; one that stops early panics it when the stream is
    /// dropped. After the last step the server has closed the connection.
    struct Scripted {
        steps: VecDeque<Step>,
        /// What the client wrote that is not a whole line yet.
        written: Vec<u8>,
        /// Each read timeout the client set, in order.
        read_timeouts: std::cell::RefCell<Vec<Duration>>,
    }

    impl Scripted {
        fn new(steps: Vec<Step>) -> Scripted {
            Scripted {
                steps: steps.into(),
                written: Vec::new(),
                read_timeouts: Default::default(),
            }
        }
    }

    impl Drop for Scripted {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                assert!(
                    self.steps.is_empty(),
                    "the client stopped before {:?}",
                    self.steps
                );
                assert!(
                    self.written.is_empty(),
                    "the client left a part line: {:?}",
                    String::from_utf8_lossy(&self.written)
                );
            }
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.steps.front_mut() {
                None => Ok(0),
                Some(Step::Silent) => {
                    self.steps.pop_front();
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Some(Step::Replies(octets)) => {
                    let n = octets.len().min(buf.len());
                    buf[..n].copy_from_slice(&octets[..n]);
                    octets.drain(..n);
                    if octets.is_empty() {
                        self.steps.pop_front();
                    }
                    Ok(n)
                }
                Some(step) => panic!("the client waits for a reply; the script expects {step:?}"),
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            while let Some(pos) = self.written.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.written.drain(..pos + 2).collect();
                let line = String::from_utf8_lossy(&line[..pos]).into_owned();
                match self.steps.pop_front() {
                    Some(Step::Sends(expected)) => assert_eq!(line, expected),
                    step => panic!("the client sent {line:?}; the script expects {step:?}"),
                }
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for Scripted {
        fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
            self.read_timeouts.borrow_mut().push(timeout);
            Ok(())
        }

        fn set_write_timeout(&self, _timeout: Duration) -> io::Result<()> {
            Ok(())
        }

        fn close(&mut self) {
            match self.steps.pop_front() {
                Some(Step::Closes) => {}
                step => panic!("the client closes; the script expects {step:?}"),
            }
        }
    }

    impl ConnectTls for Scripted {
        fn connect_tls(
            &mut self,
            _config: &Arc<ClientConfig>,
            host_name: &str,
        ) -> Result<TlsSession, TlsError> {
            assert_eq!(host_name, "mx.example");
            match self.steps.pop_front() {
                Some(Step::Tls) => Ok(TlsSession {
                    version: "TLSv1.3".to_string(),
                    certificate: None,
                }),
                Some(Step::TlsFails) => Err(TlsError::Handshake("no common protocol".to_string())),
                Some(Step::TlsAnsweredInClear) => Err(TlsError::NotTls),
                step => panic!("the client starts TLS; the script expects {step:?}"),
            }
        }
    }

    const RELAY: &str = "mx.example[192.0.2.1]:25";
    const ADDR: &str = "192.0.2.1:25";

    /// Unlike every other timeout, so that the tests can tell it apart.
    const HELO_TIMEOUT: Duration = Duration::from_secs(7);

    fn tls_config() -> Arc<ClientConfig> {
        crate::tls::ClientConfigs::new(None, false, None)
            .expect("an unverified config needs no files")
            .unverified
    }

    fn options(tls: TlsMode, auth: Option<(&str, &str)>) -> ClientOptions {
        ClientOptions {
            helo_name: "me.example".to_string(),
            connect_timeout: Duration::from_secs(1),
            helo_timeout: HELO_TIMEOUT,
            tls,
            auth: auth.map(|(user, password)| (user.to_string(), password.to_string())),
            smarthost: false,
        }
    }

    fn start(steps: Vec<Step>, options: &ClientOptions) -> Result<SmtpClient<Scripted>, HostError> {
        SmtpClient::start(
            Scripted::new(steps),
            "mx.example",
            ADDR.parse().unwrap(),
            options,
        )
    }

    /// A session in clear text, ready for MAIL, after the script's greeting
    /// and an EHLO answered with `ehlo_reply`.
    fn started(ehlo_reply: &str, then: Vec<Step>) -> SmtpClient<Scripted> {
        let mut steps = vec![
            replies("220 mx.example ESMTP\r\n"),
            sends("EHLO me.example"),
            replies(ehlo_reply),
        ];
        steps.extend(then);
        start(steps, &options(TlsMode::None, None)).unwrap()
    }

    fn send(
        client: &mut SmtpClient<Scripted>,
        recipients: &[&str],
        size: u64,
        text: &[u8],
    ) -> Result<Vec<Outcome>, HostError> {
        let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        let envelope = OutgoingEnvelope {
            sender: "me@here.example",
            recipients: &recipients,
            eight_bit: false,
            size,
        };
        client.send(&envelope, &mut &text[..])
    }

    fn reply(code: u16, lines: &[&str]) -> ServerReply {
        ServerReply {
            code,
            lines: lines.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn greeting_421_and_554_are_refusals_told_apart_by_their_reply() {
        let none = options(TlsMode::None, None);
        for (code, text) in [(421, "4.3.2 busy"), (554, "5.7.1 go away")] {
            let greeting = format!("{code} {text}\r\n");
            let error = start(vec![replies(&greeting)], &none).err().unwrap();
            assert_eq!(
                error,
                HostError::Refused {
                    stage: "greeting",
                    reply: reply(code, &[text]),
                }
            );
            assert_eq!(error.to_string(), format!("greeting: {code} {text}"));
        }
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo_with_no_extensions() {
        let mut client = started(
            "502 5.5.2 what?\r\n",
            vec![
                // RFC 5321 3.2: a server that does not know EHLO gets HELO.
                sends("HELO me.example"),
                replies("250 mx.example\r\n"),
                // No SIZE parameter: after HELO there are no extensions.
                sends("MAIL FROM:<me@here.example>"),
                replies("250 ok\r\n"),
                sends("RCPT TO:<you@there.example>"),
                replies("250 ok\r\n"),
                sends("DATA"),
                replies("354 go on\r\n"),
                sends("hi"),
                sends("."),
                replies("250 2.0.0 queued\r\n"),
            ],
        );
        let outcomes = send(&mut client, &["you@there.example"], 4, b"hi\r\n").unwrap();
        assert_eq!(outcomes, [Outcome::Delivered("250 2.0.0 queued".into())]);
        assert_eq!(client.tls, None);
    }

    #[test]
    fn ehlo_421_and_helo_refused_end_the_session() {
        let none = options(TlsMode::None, None);
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("421 4.3.2 shutting down\r\n"),
        ];
        assert_eq!(
            start(steps, &none).err().unwrap().to_string(),
            "EHLO: 421 4.3.2 shutting down"
        );
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("500 5.5.1 no\r\n"),
            sends("HELO me.example"),
            replies("550 5.7.1 not you\r\n"),
        ];
        assert_eq!(
            start(steps, &none).err().unwrap(),
            HostError::Refused {
                stage: "HELO",
                reply: reply(550, &["5.7.1 not you"]),
            }
        );
    }

    #[test]
    fn a_partly_refused_recipient_list_gets_one_outcome_each() {
        let mut client = started(
            "250-mx.example\r\n250 8BITMIME\r\n",
            vec![
                sends("MAIL FROM:<me@here.example>"),
                replies("250 2.1.0 ok\r\n"),
                sends("RCPT TO:<a@there.example>"),
                replies("250 2.1.5 ok\r\n"),
                sends("RCPT TO:<b@there.example>"),
                replies("550 5.1.1 no such user\r\n"),
                sends("RCPT TO:<c@there.example>"),
                replies("450 4.2.1 try later\r\n"),
                sends("RCPT TO:<d@there.example>"),
                replies("251 2.1.5 will forward\r\n"),
                sends("DATA"),
                replies("354 go on\r\n"),
                sends("Subject: x"),
                sends(""),
                sends("body"),
                sends("."),
                replies("250 2.0.0 queued as 42\r\n"),
                sends("QUIT"),
                replies("221 2.0.0 bye\r\n"),
                Step::Closes,
            ],
        );
        let outcomes = send(
            &mut client,
            &[
                "a@there.example",
                "b@there.example",
                "c@there.example",
                "d@there.example",
            ],
            20,
            b"Subject: x\r\n\r\nbody\r\n",
        )
        .unwrap();
        let delivered = Outcome::Delivered("250 2.0.0 queued as 42".into());
        assert_eq!(
            outcomes,
            [
                delivered.clone(),
                failed("5.1.1", "550 5.1.1 no such user"),
                deferred("4.2.1", "450 4.2.1 try later"),
                delivered,
            ]
        );
        client.quit();
    }

    #[test]
    fn every_recipient_refused_sends_no_data_but_rset() {
        let mut client = started(
            "250 mx.example\r\n",
            vec![
                sends("MAIL FROM:<me@here.example>"),
                replies("250 ok\r\n"),
                sends("RCPT TO:<a@there.example>"),
                replies("550 5.1.1 no\r\n"),
                sends("RCPT TO:<b@there.example>"),
                replies("452 4.5.3 too many\r\n"),
                sends("RSET"),
                replies("250 ok\r\n"),
            ],
        );
        let outcomes = send(
            &mut client,
            &["a@there.example", "b@there.example"],
            1,
            b"x",
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                failed("5.1.1", "550 5.1.1 no"),
                deferred("4.5.3", "452 4.5.3 too many"),
            ]
        );
    }

    #[test]
    fn with_pipelining_offered_commands_still_go_one_at_a_time() {
        // The client does not pipeline (RFC 2920 allows, does not require
        // it): each command waits for its reply. A client that sent RCPT
        // before the reply to MAIL would stray from this script.
        let mut client = started(
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 0\r\n",
            vec![
                sends("MAIL FROM:<me@here.example> SIZE=3"),
                replies("250 ok\r\n"),
                sends("RCPT TO:<a@there.example>"),
                replies("250 ok\r\n"),
                sends("RCPT TO:<b@there.example>"),
                replies("250 ok\r\n"),
                sends("DATA"),
                replies("354 go on\r\n"),
                sends("x"),
                sends("."),
                replies("250 ok\r\n"),
            ],
        );
        assert!(client.ext.pipelining);
        let outcomes = send(
            &mut client,
            &["a@there.example", "b@there.example"],
            3,
            b"x\r\n",
        );
        assert_eq!(
            outcomes.unwrap(),
            vec![Outcome::Delivered("250 ok".into()); 2]
        );
    }

    #[test]
    fn starttls_required_but_not_offered() {
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 PIPELINING\r\n"),
        ];
        let required = options(TlsMode::Required(tls_config()), None);
        let error = start(steps, &required).err().unwrap();
        assert_eq!(
            error,
            HostError::Tls("STARTTLS required but not offered".into())
        );
        assert!(!required.tls.falls_back_to_clear(&error));
    }

    /// A server that offers STARTTLS, up to the client's STARTTLS command.
    fn until_starttls() -> Vec<Step> {
        vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 STARTTLS\r\n"),
            sends("STARTTLS"),
        ]
    }

    #[test]
    fn greeting_and_each_ehlo_wait_the_helo_timeout() {
        let mut steps = until_starttls();
        steps.extend([
            replies("220 2.0.0 go ahead\r\n"),
            Step::Tls,
            sends("EHLO me.example"),
            replies("250 mx.example\r\n"),
            sends("MAIL FROM:<me@here.example>"),
            replies("250 ok\r\n"),
            sends("RCPT TO:<you@there.example>"),
            replies("550 5.1.1 no\r\n"),
            sends("RSET"),
            replies("250 ok\r\n"),
        ]);
        let mut client =
            start(steps, &options(TlsMode::Opportunistic(tls_config()), None)).unwrap();
        send(&mut client, &["you@there.example"], 4, b"hi\r\n").unwrap();
        // Greeting, EHLO, STARTTLS, EHLO over TLS, MAIL, RCPT, RSET.
        let helo = HELO_TIMEOUT;
        let command = COMMAND_TIMEOUT;
        assert_eq!(
            *client.stream.read_timeouts.borrow(),
            [helo, helo, command, helo, command, command, command]
        );
        // Implicit TLS: the handshake before the greeting waits as long.
        let client = start(
            vec![
                Step::Tls,
                replies("220 hi\r\n"),
                sends("EHLO me.example"),
                replies("250 mx.example\r\n"),
            ],
            &options(TlsMode::Implicit(tls_config()), None),
        )
        .unwrap();
        assert_eq!(*client.stream.read_timeouts.borrow(), [helo, helo, helo]);
    }

    #[test]
    fn starttls_then_ehlo_again() {
        let mut steps = until_starttls();
        steps.extend([
            replies("220 2.0.0 go ahead\r\n"),
            Step::Tls,
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 SIZE 5000\r\n"),
        ]);
        let client = start(steps, &options(TlsMode::Opportunistic(tls_config()), None)).unwrap();
        assert_eq!(client.tls.unwrap().version, "TLSv1.3");
        // RFC 3207 4.2: the extensions are those offered over TLS.
        assert!(!client.ext.starttls);
        assert_eq!(client.ext.size, Some(5000));
    }

    #[test]
    fn implicit_tls_comes_before_the_greeting() {
        let steps = vec![
            Step::Tls,
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250 mx.example\r\n"),
        ];
        let client = start(steps, &options(TlsMode::Implicit(tls_config()), None)).unwrap();
        assert_eq!(client.tls.unwrap().version, "TLSv1.3");
    }

    #[test]
    fn implicit_tls_to_a_port_that_answers_in_clear_text() {
        let steps = vec![Step::TlsAnsweredInClear];
        let error = start(steps, &options(TlsMode::Implicit(tls_config()), None))
            .err()
            .unwrap();
        assert_eq!(
            error,
            HostError::Tls(
                "port 25 speaks STARTTLS, not implicit TLS (it answered in clear text): \
                 set smarthost_tls = starttls"
                    .into()
            )
        );
    }

    #[test]
    fn no_greeting_from_the_smarthost_suggests_implicit_tls() {
        let mut smarthost = options(TlsMode::Required(tls_config()), None);
        smarthost.smarthost = true;
        let error = start(vec![Step::Silent], &smarthost).err().unwrap();
        assert_eq!(
            error.to_string(),
            "no greeting within 7s: if port 25 speaks implicit TLS (as 465 does, waiting \
             for the client to begin), set smarthost_tls = tls"
        );
        // An MX host that stays silent is only that.
        let mx = options(TlsMode::Required(tls_config()), None);
        let error = start(vec![Step::Silent], &mx).err().unwrap();
        assert_eq!(error, HostError::TimedOut);
        assert_eq!(error.to_string(), "timed out");
    }

    #[test]
    fn timeouts_are_told_by_their_kind_and_said_as_before() {
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
            assert_eq!(HostError::from(io::Error::from(kind)), HostError::TimedOut);
        }
        let refused = HostError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(refused, HostError::Connect(_)), "{refused:?}");
        let connect = HostError::ConnectTimedOut {
            relay: RELAY.to_string(),
        };
        assert_eq!(
            connect.to_string(),
            "connect to mx.example[192.0.2.1]:25: timed out"
        );
    }

    #[test]
    fn starttls_refused_when_opportunistic_falls_back_to_clear_text() {
        let offered = || {
            vec![
                replies("220 hi\r\n"),
                sends("EHLO me.example"),
                replies("250-mx.example\r\n250 STARTTLS\r\n"),
            ]
        };
        let mut steps = offered();
        steps.extend([
            sends("STARTTLS"),
            replies("454 4.7.0 TLS not available\r\n"),
        ]);
        let mut opportunistic = options(TlsMode::Opportunistic(tls_config()), None);
        let error = start(steps, &opportunistic).err().unwrap();
        assert_eq!(
            error,
            HostError::Tls("STARTTLS: 454 4.7.0 TLS not available".into())
        );
        assert_eq!(error.to_string(), "STARTTLS: 454 4.7.0 TLS not available");
        assert!(opportunistic.tls.falls_back_to_clear(&error));
        // What remote.rs does next: the same server in clear text, where
        // STARTTLS, though offered, is not tried.
        opportunistic.tls = TlsMode::None;
        let client = start(offered(), &opportunistic).unwrap();
        assert_eq!(client.tls, None);
    }

    #[test]
    fn only_tls_failures_of_opportunistic_tls_fall_back_to_clear_text() {
        let failed = HostError::Tls("TLS handshake failed: no common protocol".into());
        let refused = HostError::Refused {
            stage: "greeting",
            reply: reply(421, &["busy"]),
        };
        let opportunistic = TlsMode::Opportunistic(tls_config());
        assert!(opportunistic.falls_back_to_clear(&failed));
        assert!(!opportunistic.falls_back_to_clear(&refused));
        assert!(!opportunistic.falls_back_to_clear(&HostError::TimedOut));
        assert!(!TlsMode::Required(tls_config()).falls_back_to_clear(&failed));
        assert!(!TlsMode::Implicit(tls_config()).falls_back_to_clear(&failed));
        assert!(!TlsMode::None.falls_back_to_clear(&failed));
    }

    #[test]
    fn a_failed_handshake_and_data_after_the_starttls_reply() {
        let opportunistic = options(TlsMode::Opportunistic(tls_config()), None);
        let mut steps = until_starttls();
        steps.extend([replies("220 go ahead\r\n"), Step::TlsFails]);
        let error = start(steps, &opportunistic).err().unwrap();
        assert_eq!(
            error,
            HostError::Tls("TLS handshake failed: no common protocol".into())
        );
        assert!(opportunistic.tls.falls_back_to_clear(&error));
        // RFC 3207 5: nothing may come between the 220 and the handshake.
        let mut steps = until_starttls();
        steps.push(replies("220 go ahead\r\n250 injected\r\n"));
        let error = start(steps, &opportunistic).err().unwrap();
        assert_eq!(
            error,
            HostError::Protocol("server sent data after its STARTTLS reply".into())
        );
        assert!(!opportunistic.tls.falls_back_to_clear(&error));
    }

    #[test]
    fn auth_plain_when_offered_after_starttls() {
        let mut steps = until_starttls();
        steps.extend([
            replies("220 go ahead\r\n"),
            Step::Tls,
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH LOGIN PLAIN\r\n"),
            sends("AUTH PLAIN AHVzZXIAcGFzcw=="),
            replies("235 2.7.0 ok\r\n"),
        ]);
        let required = options(TlsMode::Required(tls_config()), Some(("user", "pass")));
        start(steps, &required).unwrap();
    }

    #[test]
    fn auth_login_when_only_login_is_offered() {
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH LOGIN\r\n"),
            sends("AUTH LOGIN"),
            replies("334 VXNlcm5hbWU6\r\n"),
            sends("dXNlcg=="),
            replies("334 UGFzc3dvcmQ6\r\n"),
            sends("cGFzcw=="),
            replies("235 2.7.0 ok\r\n"),
        ];
        start(steps, &options(TlsMode::None, Some(("user", "pass")))).unwrap();
    }

    #[test]
    fn auth_refused_or_impossible() {
        let with_auth = options(TlsMode::None, Some(("user", "pass")));
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH PLAIN\r\n"),
            sends("AUTH PLAIN AHVzZXIAcGFzcw=="),
            replies("535 5.7.8 bad credentials\r\n"),
        ];
        let error = start(steps, &with_auth).err().unwrap();
        assert_eq!(
            error,
            HostError::AuthRefused {
                user: "user".into(),
                reply: reply(535, &["5.7.8 bad credentials"]),
            }
        );
        assert_eq!(
            error.to_string(),
            "AUTH: the server refused user \"user\" with the password of \
             smarthost_password_file (535 5.7.8 bad credentials): put the right password \
             in that file, which tinymta reads at start-up and on SIGHUP (reload it after \
             a change); Gmail and other providers with two-step verification want an app \
             password there, not the account's"
        );
        // Gmail's answer to an account password where an app password is due.
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH PLAIN\r\n"),
            sends("AUTH PLAIN AHVzZXIAcGFzcw=="),
            replies(
                "534-5.7.9 Application-specific password required.\r\n534 5.7.9 Learn more\r\n",
            ),
        ];
        assert!(matches!(
            start(steps, &with_auth).err().unwrap(),
            HostError::AuthRefused { reply, .. } if reply.code == 534
        ));
        // Any other refusal is the server's words.
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH PLAIN\r\n"),
            sends("AUTH PLAIN AHVzZXIAcGFzcw=="),
            replies("454 4.7.0 try later\r\n"),
        ];
        assert_eq!(
            start(steps, &with_auth).err().unwrap().to_string(),
            "AUTH: 454 4.7.0 try later"
        );
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH CRAM-MD5\r\n"),
        ];
        assert_eq!(
            start(steps, &with_auth).err().unwrap(),
            HostError::Protocol("server offers no AUTH PLAIN or LOGIN".into())
        );
        // Opportunistic TLS that did not happen: no password in clear text.
        let steps = vec![
            replies("220 hi\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.example\r\n250 AUTH PLAIN\r\n"),
        ];
        let opportunistic = options(TlsMode::Opportunistic(tls_config()), Some(("u", "p")));
        assert_eq!(
            start(steps, &opportunistic).err().unwrap(),
            HostError::Protocol("refusing to send AUTH over a clear-text connection".into())
        );
    }

    #[test]
    fn a_message_over_the_size_limit_fails_without_mail() {
        // RFC 1870 6: the limit is known, so MAIL is not even tried.
        let mut client = started("250-mx.example\r\n250 SIZE 1000\r\n", vec![]);
        let outcomes = send(
            &mut client,
            &["a@there.example", "b@there.example"],
            2000,
            b"x",
        );
        assert_eq!(
            outcomes.unwrap(),
            vec![
                failed(
                    "5.3.4",
                    "552 5.3.4 message of 2000 octets exceeds the server's limit of 1000"
                );
                2
            ]
        );
    }

    #[test]
    fn mail_refused_for_size_and_mail_421() {
        let mut client = started(
            "250-mx.example\r\n250 SIZE 1000\r\n",
            vec![
                sends("MAIL FROM:<me@here.example> SIZE=500"),
                replies("552 5.3.4 too big for me today\r\n"),
                sends("RSET"),
                replies("250 ok\r\n"),
                sends("MAIL FROM:<me@here.example> SIZE=10"),
                replies("421 4.3.2 going down\r\n"),
            ],
        );
        let outcomes = send(&mut client, &["a@there.example"], 500, b"x");
        assert_eq!(
            outcomes.unwrap(),
            [failed("5.3.4", "552 5.3.4 too big for me today")]
        );
        let error = send(&mut client, &["a@there.example"], 10, b"x").unwrap_err();
        assert_eq!(
            error,
            HostError::Refused {
                stage: "MAIL",
                reply: reply(421, &["4.3.2 going down"]),
            }
        );
    }

    #[test]
    fn replies_split_across_reads() {
        let steps = vec![
            replies("22"),
            replies("0 mx.example\r\n"),
            sends("EHLO me.example"),
            replies("250-mx.exa"),
            replies("mple\r\n250-SIZE 10"),
            replies("00\r"),
            replies("\n250 8BITMIME\r\n"),
        ];
        let client = start(steps, &options(TlsMode::None, None)).unwrap();
        assert_eq!(client.ext.size, Some(1000));
        assert!(client.ext.eight_bit_mime);
    }

    #[test]
    fn bad_replies_and_a_closed_connection() {
        let none = options(TlsMode::None, None);
        assert_eq!(
            start(vec![replies("hello\r\n")], &none).err().unwrap(),
            HostError::Protocol(format!("malformed reply from {RELAY}: \"hello\""))
        );
        assert_eq!(
            start(vec![replies("220 hi\r\n"), sends("EHLO me.example")], &none)
                .err()
                .unwrap(),
            HostError::Connect("connection closed by server".into())
        );
        let long = format!("220 {}", "x".repeat(MAX_REPLY_LINE + 1));
        assert_eq!(
            start(vec![replies(&long)], &none).err().unwrap(),
            HostError::Protocol("reply line too long".into())
        );
    }

    #[test]
    fn data_is_dot_stuffed() {
        let mut client = started(
            "250 mx.example\r\n",
            vec![
                sends("MAIL FROM:<me@here.example>"),
                replies("250 ok\r\n"),
                sends("RCPT TO:<a@there.example>"),
                replies("250 ok\r\n"),
                sends("DATA"),
                replies("354 go on\r\n"),
                sends("Subject: dots"),
                sends(""),
                sends("..leading dot"),
                sends("..."),
                sends("a.b"),
                sends("bare lf"),
                sends("no end"),
                sends("."),
                replies("250 ok\r\n"),
            ],
        );
        let text = b"Subject: dots\r\n\r\n.leading dot\r\n..\r\na.b\r\nbare lf\nno end";
        let outcomes = send(&mut client, &["a@there.example"], 1, text);
        assert_eq!(outcomes.unwrap(), [Outcome::Delivered("250 ok".into())]);
    }
}
