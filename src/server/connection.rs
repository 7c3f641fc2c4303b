//! One client connection: reads command lines with a length limit, writes
//! replies (buffered while the client pipelines, RFC 2920), and streams the
//! DATA octets through the decoder into the spool. All protocol decisions are
//! the session's ([`crate::smtp::session`]); this module only does the I/O.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use crate::aliases::Aliases;
use crate::auth::Users;
use crate::config::{Config, Listener};
use crate::live::Live;
use crate::log::Escaped;
use crate::server::auth_failures::AuthFailures;
use crate::server::policy::{session_settings, ServerPolicy};
use crate::smtp::data::DataDecoder;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Action, Envelope, Session};
use crate::spool::waker::QueueWaker;
use crate::spool::{IncomingMessage, NewEntry, Spool, SpoolError};
use crate::stream::{AcceptTls, Connection};
use crate::time::{rfc5322_date, unix_now};
use crate::tls::{self, MaybeTls, TlsError};

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
const MAX_COMMAND_LINE: usize = 512;
/// Octets read from the client at a time.
const READ_BUFFER: usize = 16 * 1024;
/// How long, and how much, a closing session reads and drops (see `linger`).
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_MAX_OCTETS: usize = 64 * 1024;
/// The start of a message kept to read its Message-ID for the log.
const HEADER_CAPTURE: usize = 16 * 1024;

/// What every session shares. The `Live` parts may be replaced by SIGHUP;
/// a session keeps what it started with.
pub struct ServerContext {
    pub config: Live<Config>,
    pub spool: Arc<Spool>,
    pub waker: QueueWaker,
    /// The server's TLS config, when `tls_cert` and `tls_key` are set.
    pub tls: Live<Option<Arc<ServerConfig>>>,
    /// Who may authenticate, when `auth_users` is set.
    pub users: Live<Option<Arc<Users>>>,
    /// The table of the `aliases` file, when it is set.
    pub aliases: Live<Option<Arc<Aliases>>>,
    /// Set on SIGTERM: a session that ends now says 421 4.3.2.
    pub stopping: AtomicBool,
    /// The sockets of running sessions, so that shutdown can end them.
    sessions: Mutex<HashMap<usize, TcpStream>>,
    /// usize, not u64: 32-bit MIPS has no 64-bit atomics. A number comes
    /// back only after 2^32 sessions, long after its session ended.
    next_session: AtomicUsize,
    /// How many sessions run, and when that is stress.
    pub load: Load,
    /// Failed AUTH attempts per client address, across sessions.
    auth_failures: Mutex<AuthFailures>,
}

/// Sessions running now, and from how many on the server is under stress:
/// `max_connections - reserved_connections` of the config it started with
/// (see [`Config::outsider_connections`]).
pub struct Load {
    running: AtomicUsize,
    stress_from: usize,
}

impl Load {
    pub fn under_stress(&self) -> bool {
        self.running.load(Ordering::SeqCst) >= self.stress_from
    }
}

impl ServerContext {
    pub fn new(
        config: Config,
        spool: Arc<Spool>,
        waker: QueueWaker,
        tls: Option<Arc<ServerConfig>>,
        users: Option<Arc<Users>>,
        aliases: Option<Arc<Aliases>>,
    ) -> ServerContext {
        ServerContext {
            load: Load {
                running: AtomicUsize::new(0),
                stress_from: config.outsider_connections(),
            },
            auth_failures: Mutex::new(AuthFailures::from_config(&config)),
            config: Live::new(config),
            spool,
            waker,
            tls: Live::new(tls),
            users: Live::new(users),
            aliases: Live::new(aliases),
            stopping: AtomicBool::new(false),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicUsize::new(0),
        }
    }

    /// Records a session's socket until the returned guard is dropped.
    pub fn register(&self, stream: TcpStream) -> Registration<'_> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.lock_sessions().insert(id, stream);
        self.load.running.fetch_add(1, Ordering::SeqCst);
        Registration { ctx: self, id }
    }

    /// Whether AUTH from `ip` is refused now, after too many failures
    /// (`auth_failure_limit` within `auth_failure_window`).
    pub fn auth_refused(&self, ip: IpAddr) -> bool {
        self.lock_auth_failures().refuses(ip, Instant::now())
    }

    /// Counts a failed AUTH attempt from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        self.lock_auth_failures().record(ip, Instant::now());
    }

    fn lock_auth_failures(&self) -> MutexGuard<'_, AuthFailures> {
        self.auth_failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every running session: their reads see the end of the stream,
    /// and each answers 421 4.3.2 (through its own TLS, if any) and closes.
    pub fn end_sessions(&self) {
        for stream in self.lock_sessions().values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }

    fn lock_sessions(&self) -> MutexGuard<'_, HashMap<usize, TcpStream>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running session's entry in [`ServerContext`]; removed when dropped.
pub struct Registration<'a> {
    ctx: &'a ServerContext,
    id: usize,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.ctx.lock_sessions().remove(&self.id);
        self.ctx.load.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A line from the client.
enum Line<'a> {
    Text(&'a [u8]),
    TooLong,
}

/// The client's connection: plain TCP, or TLS after STARTTLS or on a tls listener.
pub type ServerStream = MaybeTls<ServerConnection>;

/// One client connection: the stream, what was read from it and not used
/// yet, and the replies not sent yet. Reads run against a deadline: a client
/// sending one byte a minute gets no more time than one sending at once.
struct Conn<'a, S> {
    stream: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    deadline: Option<Instant>,
    /// The stress rule, for a client outside relay_networks.
    stress: Option<StressRule<'a>>,
    /// While a command is read under the stress rule: when the server's
    /// load is looked at next.
    stress_check: Option<Instant>,
    /// The read ended because the server was under stress.
    cut_by_stress: bool,
    /// Replies wait here while the client pipelines (RFC 2920).
    out: Vec<u8>,
}

/// Postfix's stress mode: while the server is under stress, a client outside
/// relay_networks gets `stress_command_timeout` for a command instead of
/// `command_timeout`. A read that is already waiting when stress begins is
/// not told, so the load is looked at every `limit` while the client is
/// silent or slow; the client is cut off at the first look that finds
/// stress.
struct StressRule<'a> {
    load: &'a Load,
    limit: Duration,
}

impl<S: Connection> Conn<'_, S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            deadline: None,
            stress: None,
            stress_check: None,
            cut_by_stress: false,
            out: Vec::new(),
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn has_line(&self) -> bool {
        self.buffered().contains(&b'\n')
    }

    fn send(&mut self, reply: &Reply) {
        self.out.extend_from_slice(reply.to_wire().as_bytes());
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        self.stream.flush()
    }

    /// Reads more from the client into the buffer; an error at end of stream.
    fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = loop {
            if let Some(deadline) = self.deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                let until = match self.next_stress_check(now)? {
                    Some(check) => check.min(deadline),
                    None => deadline,
                };
                self.stream.set_read_timeout(until - now)?;
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                // Time to look at the load (or a hair before the deadline).
                Err(e) if is_timeout(&e) && self.stress_check.is_some() => continue,
                read => break read?,
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// When the server's load is to be looked at next; an error when it is
    /// under stress and the time for this command has run out.
    fn next_stress_check(&mut self, now: Instant) -> io::Result<Option<Instant>> {
        let (Some(check), Some(rule)) = (self.stress_check, &self.stress) else {
            return Ok(None);
        };
        if now < check {
            return Ok(Some(check));
        }
        if rule.load.under_stress() {
            self.cut_by_stress = true;
            return Err(io::ErrorKind::TimedOut.into());
        }
        let next = now + rule.limit;
        self.stress_check = Some(next);
        Ok(Some(next))
    }

    /// The next line without its line end (CRLF, or a bare LF, tolerated in
    /// commands as Postfix does). A line longer than `max` octets is read to
    /// its end and reported as too long, so the session stays in step.
    fn read_line(&mut self, max: usize) -> io::Result<Line<'_>> {
        let mut too_long = false;
        loop {
            if let Some(pos) = self.buffered().iter().position(|&b| b == b'\n') {
                let line_start = self.start;
                let newline = self.start + pos;
                self.start = newline + 1;
                if too_long || newline + 1 - line_start > max {
                    return Ok(Line::TooLong);
                }
                let mut text_end = newline;
                if text_end > line_start && self.buf[text_end - 1] == b'\r' {
                    text_end -= 1;
                }
                return Ok(Line::Text(&self.buf[line_start..text_end]));
            }
            if self.end - self.start > max {
                // No line end within the limit: drop what we have, read on.
                too_long = true;
                self.start = 0;
                self.end = 0;
            }
            self.fill()?;
        }
    }
}

impl<S: AcceptTls> Conn<'_, S> {
    /// The STARTTLS handshake. Nothing may wait in the buffer: the caller
    /// has checked that the client pipelined nothing after STARTTLS.
    fn upgrade(
        &mut self,
        config: &Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<String, TlsError> {
        self.stream.accept_tls(config, timeout)
    }
}

/// Standard input and output, for `sendmail -bs`: no timeouts, no TLS.
pub struct Stdio {
    stdin: io::Stdin,
    stdout: io::Stdout,
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdin.read(buf)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdout.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

impl Connection for Stdio {
    fn set_read_timeout(&self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }

    fn set_write_timeout(&self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }

    /// Standard output is flushed with the last reply; the pipes are the
    /// caller's to close.
    fn close(&mut self) {}
}

impl AcceptTls for Stdio {
    fn accept_tls(
        &mut self,
        _config: &Arc<ServerConfig>,
        _timeout: Duration,
    ) -> Result<String, TlsError> {
        Err(TlsError::Unavailable("no TLS on standard input"))
    }
}

/// A session for a client at `ip`, with the policy of the settings in
/// force now (`config` and the files read with it).
fn new_session(ctx: &ServerContext, config: &Arc<Config>, ip: IpAddr) -> Session {
    let policy = ServerPolicy::new(
        Arc::clone(config),
        ctx.aliases.get().as_ref().clone(),
        ctx.users.get().as_ref().clone(),
        ip,
    );
    Session::new(session_settings(config), Box::new(policy), ip)
}

/// `sendmail -bs`: one SMTP session on standard input and output, as a
/// local submission (it may relay, like a loopback client).
pub fn serve_stdio(ctx: &ServerContext) {
    let config = ctx.config.get();
    let mut session = new_session(ctx, &config, IpAddr::from([127, 0, 0, 1])).local_submission();
    let mut conn = Conn::new(Stdio {
        stdin: io::stdin(),
        stdout: io::stdout(),
    });
    let settings = SessionSettings {
        config: &config,
        tls: None,
        session_end: Instant::now() + config.max_session_time,
    };
    if let Err(e) = run_session(&mut session, &mut conn, ctx, &settings) {
        log::debug!("sendmail -bs session ended: {e}");
    }
    let _ = conn.flush();
}

/// Serves one client until it quits, times out or goes away.
pub fn serve(tcp: TcpStream, listener: &Listener, ctx: &ServerContext) {
    let peer = match tcp.peer_addr() {
        Ok(peer) => peer,
        Err(_) => return,
    };
    let config = ctx.config.get();
    let tls = ctx.tls.get();
    let _ = tcp.set_write_timeout(Some(config.command_timeout));
    let stream = match (tls.as_ref(), listener.implicit_tls) {
        (Some(tls_config), true) => match tls::accept(tls_config, tcp, config.command_timeout) {
            Ok((tls, version)) => {
                log::debug!("connect from {peer} with {version}");
                MaybeTls::Tls(tls)
            }
            Err(e) => {
                log::info!("TLS with {peer} failed: {}", Escaped(&e.to_string()));
                return;
            }
        },
        _ => MaybeTls::Plain(tcp),
    };
    let mut session = new_session(ctx, &config, peer.ip()).with_listener(
        tls.is_some(),
        stream.is_tls(),
        listener.submission,
    );
    let mut conn = Conn::new(stream);
    if !config.may_relay(session.client_ip()) {
        conn.stress = Some(StressRule {
            load: &ctx.load,
            limit: config.stress_command_timeout,
        });
    }
    let session_end = Instant::now() + config.max_session_time;
    log::debug!("connect from {peer}");
    let settings = SessionSettings {
        config: &config,
        tls: tls.as_ref().as_ref(),
        session_end,
    };
    let farewell = match run_session(&mut session, &mut conn, ctx, &settings) {
        Ok(()) => {
            log::debug!("disconnect from {peer}");
            None
        }
        // RFC 5321 3.8: a server that must stop says 421 first.
        Err(_) if ctx.stopping.load(Ordering::SeqCst) => {
            Some(reply::shutting_down(&config.hostname))
        }
        Err(e) if is_timeout(&e) && conn.cut_by_stress => {
            log::info!("timeout under stress from {peer}");
            Some(reply::timeout(&config.hostname))
        }
        Err(e) if is_timeout(&e) => {
            // Which limit ran out: the session's own, when it was the
            // deadline of the read (a socket timeout may fire a hair early,
            // so the clock alone cannot tell).
            if conn.deadline == Some(session_end) || Instant::now() >= session_end {
                log::info!("session time limit from {peer}");
                Some(reply::session_too_long(&config.hostname))
            } else {
                log::info!("timeout from {peer}");
                Some(reply::timeout(&config.hostname))
            }
        }
        Err(e) => {
            log::debug!("connection from {peer} ended: {e}");
            None
        }
    };
    if let Some(reply) = &farewell {
        conn.send(reply);
        let _ = conn.flush();
    }
    conn.stream.close();
    if farewell.is_some() {
        linger(conn.stream.tcp());
    }
}

/// Closing a socket with unread input makes the kernel send a reset, which
/// may destroy our last reply before the client reads it. So after a 421
/// the write side is shut and what the client still sends is read and
/// dropped, for a moment and a bounded amount, before the close.
fn linger(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(LINGER_TIME));
    let mut scratch = [0u8; 4096];
    let mut drained = 0;
    let mut reader = tcp;
    while drained < LINGER_MAX_OCTETS {
        match reader.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a session runs with, fixed when it starts.
struct SessionSettings<'a> {
    config: &'a Config,
    tls: Option<&'a Arc<ServerConfig>>,
    session_end: Instant,
}

/// The earlier of `now + limit` and the end of the session.
fn deadline(limit: Duration, session_end: Instant) -> Instant {
    (Instant::now() + limit).min(session_end)
}

fn run_session<S: AcceptTls>(
    session: &mut Session,
    conn: &mut Conn<'_, S>,
    ctx: &ServerContext,
    settings: &SessionSettings<'_>,
) -> io::Result<()> {
    let config = settings.config;
    let session_end = settings.session_end;
    let client = session.client_ip();
    let mut auth_failures = session.auth_failures();
    conn.send(&session.greeting());
    loop {
        // Replies wait in the buffer while the client has pipelined more
        // commands; they go out before we would wait for the client.
        if !conn.has_line() {
            conn.flush()?;
        }
        conn.deadline = Some(deadline(config.command_timeout, session_end));
        // An authenticated client is known: the stress rule spares it.
        conn.stress_check = match &conn.stress {
            Some(rule) if session.authenticated().is_none() => Some(Instant::now() + rule.limit),
            _ => None,
        };
        let mut step = match conn.read_line(MAX_COMMAND_LINE)? {
            Line::Text(line) => {
                // The verdict as of this line (a lock and a lookup, cheap
                // beside the read): other sessions from the address may
                // have failed meanwhile, and a line may answer a 334.
                session.set_auth_refused(ctx.auth_refused(client));
                session.handle_line(line)
            }
            Line::TooLong => session.line_too_long(),
        };
        // Counted for every address, relay_networks too: a password guessed
        // from the LAN is still guessed, and the box's own tools that fail
        // get a 454, which they retry, not a bounce.
        if session.auth_failures() > auth_failures {
            auth_failures = session.auth_failures();
            ctx.auth_failed(client);
        }
        match step.action {
            Action::ReceiveData => {
                conn.send(&step.reply);
                conn.flush()?;
                conn.deadline = Some(deadline(config.data_timeout, session_end));
                conn.stress_check = None;
                let reply = receive_message(session, conn, ctx, config)?;
                step = session.data_reply(reply);
            }
            Action::StartTls => {
                if !conn.buffered().is_empty() {
                    // Commands sent before the handshake would be taken as
                    // sent over TLS: refuse them, and the connection.
                    log::warn!(
                        "commands pipelined after STARTTLS from {}",
                        session.client_ip()
                    );
                    conn.send(&reply::pipelined_after_starttls());
                    return conn.flush();
                }
                conn.send(&step.reply);
                conn.flush()?;
                let tls_config = settings
                    .tls
                    .expect("STARTTLS is offered with a certificate");
                match conn.upgrade(tls_config, config.command_timeout) {
                    Ok(version) => {
                        log::debug!("STARTTLS with {}: {version}", session.client_ip());
                        session.tls_started();
                    }
                    Err(e) => {
                        log::info!(
                            "STARTTLS with {} failed: {}",
                            session.client_ip(),
                            Escaped(&e.to_string())
                        );
                        return Ok(());
                    }
                }
                continue;
            }
            Action::Continue | Action::Close => {}
        }
        conn.send(&step.reply);
        if step.action == Action::Close {
            return conn.flush();
        }
    }
}

/// Reads a message after the 354 up to its final dot, stores it, and returns
/// the reply for the client. An I/O error from the client ends the session;
/// the partial message is then removed (`IncomingMessage`'s Drop).
fn receive_message<S: Connection>(
    session: &mut Session,
    input: &mut Conn<'_, S>,
    ctx: &ServerContext,
    config: &Config,
) -> io::Result<Reply> {
    let arrival = unix_now();
    // The message being stored, or the reply that says why it cannot be.
    let mut incoming = ctx.spool.begin().map_err(|e| {
        log::error!("cannot create a queue file: {e}");
        storage_failure(&e)
    });
    if let Ok(message) = &mut incoming {
        let header = session.received_header(&message.id, &rfc5322_date(arrival));
        store(&mut incoming, header.as_bytes());
    }
    let mut decoder = DataDecoder::new(config.max_message_size, config.max_header_size);
    let mut decoded = Vec::with_capacity(READ_BUFFER + 2);
    let mut head = Vec::new();
    loop {
        if input.buffered().is_empty() {
            input.fill()?;
        }
        let chunk = input.buffered();
        let end = decoder.decode(chunk, &mut decoded);
        input.start += end.unwrap_or(chunk.len());
        if head.len() < HEADER_CAPTURE {
            let room = HEADER_CAPTURE - head.len();
            head.extend_from_slice(&decoded[..decoded.len().min(room)]);
        }
        if decoder.refused() {
            // Nothing of a refused message is kept; its file goes now.
            incoming = Err(reply::storage_failure());
        } else {
            store(&mut incoming, &decoded);
        }
        decoded.clear();
        if end.is_some() {
            break;
        }
    }
    let envelope = session
        .take_envelope()
        .expect("DATA is accepted only within a transaction");
    let client = session.client_ip();
    if let Err(refusal) = decoder.verdict() {
        log::info!(
            "refused message from {client}: {} ({})",
            refusal.code,
            refusal.lines.join(" ")
        );
        return Ok(refusal);
    }
    let message = match incoming {
        Ok(message) => message,
        Err(reply) => return Ok(reply),
    };
    Ok(commit(
        session, message, envelope, arrival, client, &head, ctx,
    ))
}

/// Writes to the queue file; on a write error the file is given up (and
/// removed), and the client will get a 4xx after the final dot.
fn store(incoming: &mut Result<IncomingMessage<'_>, Reply>, data: &[u8]) {
    if let Ok(message) = incoming {
        if let Err(e) = message.write(data) {
            log::error!("{}: cannot write the queue file: {e}", message.id);
            *incoming = Err(storage_failure(&e));
        }
    }
}

/// The reply for a message the spool could not take: a full disk is said
/// as such (RFC 3463 X.3.1), so the client knows to come back later.
fn storage_failure(error: &SpoolError) -> Reply {
    if error.is_storage_full() {
        reply::insufficient_storage()
    } else {
        reply::storage_failure()
    }
}

fn commit(
    session: &Session,
    message: IncomingMessage<'_>,
    envelope: Envelope,
    arrival: u64,
    client: IpAddr,
    head: &[u8],
    ctx: &ServerContext,
) -> Reply {
    let id = message.id.clone();
    let entry = NewEntry {
        arrival,
        client: client.to_string(),
        helo: session
            .client_greeting()
            .map(|g| g.name.clone())
            .unwrap_or_default(),
        sender: envelope.sender,
        body: envelope.body,
        recipients: envelope.recipients,
    };
    let size = message.size();
    if let Err(e) = message.commit(&entry) {
        log::error!("{id}: cannot queue the message: {e}");
        return storage_failure(&e);
    }
    let message_id = message_id(head).unwrap_or_else(|| "none".to_string());
    entry.log_accepted(&id, size, &format!(" message-id={}", Escaped(&message_id)));
    ctx.waker.queued(&id);
    reply::queued(&id)
}

/// The Message-ID of a message whose first octets are `head`, for the log.
/// mail-parser has panicked on crafted headers before: a panic here costs
/// the log field, not the message.
fn message_id(head: &[u8]) -> Option<String> {
    std::panic::catch_unwind(|| {
        mail_parser::MessageParser::new()
            .parse_headers(head)
            .and_then(|m| m.message_id().map(|id| format!("<{id}>")))
    })
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client stream made of bytes, for the line reader.
    struct Bytes(io::Cursor<Vec<u8>>);

    impl Read for Bytes {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Bytes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for Bytes {
        fn set_read_timeout(&self, _timeout: Duration) -> io::Result<()> {
            Ok(())
        }

        fn set_write_timeout(&self, _timeout: Duration) -> io::Result<()> {
            Ok(())
        }

        fn close(&mut self) {}
    }

    fn lines(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = Conn::new(Bytes(io::Cursor::new(input.to_vec())));
        let mut out = Vec::new();
        loop {
            match reader.read_line(max) {
                Ok(Line::Text(t)) => out.push(Some(t.to_vec())),
                Ok(Line::TooLong) => out.push(None),
                Err(_) => return out,
            }
        }
    }

    #[test]
    fn lines_and_limits() {
        assert_eq!(
            lines(b"EHLO a\r\nNOOP\nQUIT\r\n", 512),
            vec![
                Some(b"EHLO a".to_vec()),
                Some(b"NOOP".to_vec()),
                Some(b"QUIT".to_vec())
            ]
        );
        let mut long = vec![b'x'; 510];
        long.extend_from_slice(b"\r\n");
        assert_eq!(lines(&long, 512).len(), 1);
        assert!(lines(&long, 512)[0].is_some());
        let mut too_long = vec![b'x'; 40_000];
        too_long.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(lines(&too_long, 512), vec![None, Some(b"NOOP".to_vec())]);
    }

    #[test]
    fn a_full_disk_is_452() {
        let full = SpoolError::Io {
            path: "x".into(),
            error: io::ErrorKind::StorageFull.into(),
        };
        assert_eq!(
            storage_failure(&full).to_wire(),
            "452 4.3.1 Error: insufficient system storage\r\n"
        );
        let other = SpoolError::Io {
            path: "x".into(),
            error: io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(
            storage_failure(&other).to_wire(),
            "451 4.3.0 Error: queue file write error\r\n"
        );
    }

    #[test]
    fn message_ids() {
        assert_eq!(
            message_id(b"Subject: a\r\nMessage-ID: <x@y.org>\r\n\r\nbody"),
            Some("<x@y.org>".to_string())
        );
        assert_eq!(message_id(b"Subject: a\r\n"), None);
    }
}
