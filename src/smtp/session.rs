//! The server side of an SMTP session (RFC 5321 4.1.4, 4.3.2) as a state
//! machine without I/O: a command line goes in, a reply and an action come out.
//! The connection driver does the reading and writing, streams the DATA
//! octets through [`super::data::DataDecoder`] into the spool, and calls
//! [`Session::take_envelope`] when the final dot has arrived.

use std::net::IpAddr;

use super::address::{literal_ip, Mailbox, Path};
use super::base64;
use super::command::{parse_command, Body, Command};
use super::policy::{AuthOutcome, Domain, Policy};
use super::reply::{self, Reply};

/// Failed AUTH attempts before the session is closed. Across sessions,
/// `auth_failure_limit` bounds them per address (the driver keeps that count
/// and passes its verdict in: [`Session::set_auth_refused`]).
const MAX_AUTH_FAILURES: usize = 3;

/// An AUTH exchange waiting for the client's next line (RFC 4954 4).
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthPending {
    /// PLAIN without an initial response: the response comes next.
    Plain,
    /// LOGIN: the user name comes next.
    LoginUser,
    /// LOGIN: the password comes next.
    LoginPassword(String),
}

/// What the driver must do after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the next command.
    Continue,
    /// The reply was 354: read the message.
    ReceiveData,
    /// The reply was 221 (or 421): close the connection.
    Close,
    /// The reply was 220 to STARTTLS: run the TLS handshake, then call
    /// [`Session::tls_started`]. Nothing the client sent after STARTTLS may
    /// be read as a command (RFC 3207 5, CVE-2011-0411).
    StartTls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub reply: Reply,
    pub action: Action,
}

impl Step {
    fn reply(reply: Reply) -> Step {
        Step {
            reply,
            action: Action::Continue,
        }
    }
}

/// One mail transaction: MAIL FROM, the accepted RCPT TOs, the body type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `None` is the null reverse-path `<>`.
    pub sender: Option<Mailbox>,
    pub recipients: Vec<Mailbox>,
    pub body: Option<Body>,
}

/// The client's greeting: its name and whether it spoke ESMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub name: String,
    pub extended: bool,
}

/// What the session says and enforces itself, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The name in the greeting, the EHLO reply and Received: headers.
    pub hostname: String,
    /// Error replies before the session is closed (`max_errors`).
    pub max_errors: usize,
    /// SIZE and the largest message (`max_message_size`).
    pub max_message_size: u64,
    /// Recipients of one transaction (`max_recipients`).
    pub max_recipients: usize,
}

pub struct Session {
    settings: Settings,
    /// What the server decides: relaying, domains, aliases, passwords.
    policy: Box<dyn Policy>,
    client_ip: IpAddr,
    greeting: Option<Greeting>,
    envelope: Option<Envelope>,
    /// Error replies so far; past `max_errors` the session is closed.
    errors: usize,
    /// A certificate is configured, so STARTTLS can be offered.
    tls_available: bool,
    /// The connection is encrypted.
    tls_active: bool,
    /// A submission listener (RFC 6409): AUTH before MAIL, TLS before AUTH.
    submission: bool,
    /// `sendmail -bs`: mail submitted on the box itself, which may relay.
    local_submission: bool,
    auth_pending: Option<AuthPending>,
    /// The user this session authenticated as.
    authenticated: Option<String>,
    auth_failures: usize,
    /// This address has failed AUTH too often lately, in any session.
    auth_refused: bool,
}

impl Session {
    pub fn new(settings: Settings, policy: Box<dyn Policy>, client_ip: IpAddr) -> Session {
        Session {
            settings,
            policy,
            // An IPv4 client of an IPv6 socket is shown as the IPv4 address.
            client_ip: client_ip.to_canonical(),
            greeting: None,
            envelope: None,
            errors: 0,
            tls_available: false,
            tls_active: false,
            submission: false,
            local_submission: false,
            auth_pending: None,
            authenticated: None,
            auth_failures: 0,
            auth_refused: false,
        }
    }

    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Failed AUTH attempts in this session so far, for the driver to count
    /// across sessions.
    pub fn auth_failures(&self) -> usize {
        self.auth_failures
    }

    /// Whether AUTH from this client's address is refused now, because it
    /// has failed `auth_failure_limit` times within `auth_failure_window`
    /// across its sessions. The driver says so before each line.
    pub fn set_auth_refused(&mut self, refused: bool) {
        self.auth_refused = refused;
    }

    /// AUTH is offered over TLS, or in clear text to a client on this very
    /// box (not on a submission listener, which wants TLS first).
    fn auth_offered(&self) -> bool {
        self.policy.auth_configured()
            && (self.tls_active || (!self.submission && self.client_ip.is_loopback()))
    }

    /// A session on standard input and output of `sendmail -bs`.
    pub fn local_submission(mut self) -> Session {
        self.local_submission = true;
        self
    }

    /// Clients in relay_networks, authenticated ones, and local submission
    /// may relay.
    fn may_relay(&self) -> bool {
        self.local_submission || self.authenticated.is_some() || self.policy.client_may_relay()
    }

    /// What the listener offers: STARTTLS (a certificate is configured), TLS
    /// already on (an implicit TLS listener), submission rules.
    pub fn with_listener(
        mut self,
        tls_available: bool,
        tls_active: bool,
        submission: bool,
    ) -> Session {
        self.tls_available = tls_available;
        self.tls_active = tls_active;
        self.submission = submission;
        self
    }

    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The handshake after STARTTLS succeeded: everything known before it is
    /// forgotten, and the client must say EHLO again (RFC 3207 4.2).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.greeting = None;
        self.envelope = None;
    }

    /// The 220 banner sent when the client connects.
    pub fn greeting(&self) -> Reply {
        reply::greeting(&self.settings.hostname)
    }

    pub fn client_greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    /// Handles one command line, given without its line end.
    pub fn handle_line(&mut self, line: &[u8]) -> Step {
        if let Some(pending) = self.auth_pending.take() {
            return self.auth_response(pending, line);
        }
        let step = match parse_command(line) {
            Ok(command) => self.handle(command),
            Err(reply) => Step::reply(reply),
        };
        self.count_errors(step)
    }

    /// A command line over 512 octets was read and dropped. In an AUTH
    /// exchange it was the answer to the 334: the exchange fails, and the
    /// next line is a command again (RFC 4954 4, 6: 500 5.5.6), not taken
    /// as a user name or a password.
    pub fn line_too_long(&mut self) -> Step {
        if self.auth_pending.take().is_some() {
            return self.count_errors(Step::reply(reply::auth_line_too_long()));
        }
        self.count_errors(Step::reply(reply::line_too_long()))
    }

    /// The reply after a message's final dot, counted like any other.
    pub fn data_reply(&mut self, reply: Reply) -> Step {
        self.count_errors(Step::reply(reply))
    }

    /// A client that keeps making errors is probing or broken: after
    /// `max_errors` error replies the next one closes the session (as
    /// Postfix's smtpd_hard_error_limit does).
    fn count_errors(&mut self, step: Step) -> Step {
        if step.reply.code < 400 {
            return step;
        }
        self.errors += 1;
        if self.errors > self.settings.max_errors {
            return Step {
                reply: reply::too_many_errors(&self.settings.hostname),
                action: Action::Close,
            };
        }
        step
    }

    fn handle(&mut self, command: Command) -> Step {
        match command {
            Command::Ehlo(name) => {
                self.greet(name, true);
                let mut lines = vec![
                    self.settings.hostname.clone(),
                    "PIPELINING".to_string(),
                    format!("SIZE {}", self.settings.max_message_size),
                    "8BITMIME".to_string(),
                ];
                if self.tls_available && !self.tls_active {
                    lines.push("STARTTLS".to_string());
                }
                if self.auth_offered() && self.authenticated.is_none() {
                    lines.push("AUTH PLAIN LOGIN".to_string());
                }
                lines.push("ENHANCEDSTATUSCODES".to_string());
                Step::reply(reply::ehlo(lines))
            }
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
            Command::StartTls => {
                if self.tls_active {
                    Step::reply(reply::out_of_sequence("Error: TLS already active"))
                } else if !self.tls_available {
                    Step::reply(reply::starttls_not_available())
                } else {
                    Step {
                        reply: reply::ready_for_tls(),
                        action: Action::StartTls,
                    }
                }
            }
            Command::Helo(name) => {
                self.greet(name, false);
                Step::reply(reply::helo(&self.settings.hostname))
            }
            Command::Mail { from, size, body } => Step::reply(self.mail(from, size, body)),
            Command::Rcpt { to } => Step::reply(self.rcpt(to)),
            Command::Data => match &self.envelope {
                None => Step::reply(reply::out_of_sequence("Error: need MAIL command")),
                Some(envelope) if envelope.recipients.is_empty() => {
                    Step::reply(reply::no_valid_recipients())
                }
                Some(_) => Step {
                    reply: reply::start_data(),
                    action: Action::ReceiveData,
                },
            },
            Command::Rset => {
                self.envelope = None;
                Step::reply(reply::ok())
            }
            Command::Noop => Step::reply(reply::ok()),
            Command::Vrfy => Step::reply(reply::cannot_vrfy()),
            Command::Help => Step::reply(reply::help()),
            Command::Quit => Step {
                reply: reply::bye(),
                action: Action::Close,
            },
        }
    }

    /// EHLO and HELO start afresh (RFC 5321 4.1.4).
    fn greet(&mut self, name: String, extended: bool) {
        self.envelope = None;
        self.greeting = Some(Greeting { name, extended });
    }

    fn mail(&mut self, from: Path, size: Option<u64>, body: Option<Body>) -> Reply {
        if self.greeting.is_none() {
            return reply::out_of_sequence("Error: send HELO/EHLO first");
        }
        if self.envelope.is_some() {
            return reply::out_of_sequence("Error: nested MAIL command");
        }
        if self.submission && self.authenticated.is_none() {
            return reply::auth_required();
        }
        // RFC 1870 6.1: refuse at MAIL a message declared too big.
        if size.is_some_and(|size| size > self.settings.max_message_size) {
            return reply::message_too_big();
        }
        let sender = match from {
            Path::Mailbox(mailbox) => Some(mailbox),
            Path::Null | Path::Postmaster => None,
        };
        self.envelope = Some(Envelope {
            sender,
            recipients: Vec::new(),
            body,
        });
        reply::ok_sender()
    }

    fn rcpt(&mut self, to: Path) -> Reply {
        let may_relay = self.may_relay();
        let Some(envelope) = &mut self.envelope else {
            return reply::out_of_sequence("Error: need MAIL command");
        };
        if envelope.recipients.len() >= self.settings.max_recipients {
            return reply::too_many_recipients();
        }
        let recipient = match to {
            Path::Mailbox(mailbox) => mailbox,
            // RFC 5321 4.5.1: postmaster is always accepted, without a domain
            // too; it is delivered as postmaster of the first local domain.
            Path::Postmaster | Path::Null => Mailbox {
                local: "postmaster".to_string(),
                domain: self.policy.postmaster_domain().to_string(),
            },
        };
        // RFC 5321 4.1.3: a General-address-literal names no address this
        // server could deliver to; it is refused here, never looked up.
        if recipient.domain.starts_with('[') && literal_ip(&recipient.domain).is_none() {
            return reply::unusable_address_literal();
        }
        match self.policy.domain(&recipient.domain) {
            Domain::Local => {
                // `user%other@local`, `other!user@local` and
                // `"user@other"@local` ask a local domain to pass mail on:
                // relaying by another name.
                let local = recipient.local_unquoted();
                if !may_relay && local.contains(['%', '!', '@']) {
                    return reply::relay_denied();
                }
                if recipient.mailbox_name().is_none() {
                    return reply::bad_mailbox_name();
                }
            }
            // A push route's domain counts as local for relay control (a
            // LAN device may send to nas@push); its addresses are those of
            // the routes.
            Domain::Push => {
                if !self.policy.push_route_takes(&recipient) {
                    return reply::unknown_push_address();
                }
            }
            Domain::Other if !may_relay => return reply::relay_denied(),
            Domain::Other => {}
        }
        self.policy
            .add_recipient(&mut envelope.recipients, recipient);
        reply::ok_recipient()
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Step {
        if !self.policy.auth_configured() {
            return Step::reply(reply::auth_not_enabled());
        }
        if !self.greeting.as_ref().is_some_and(|g| g.extended) {
            return Step::reply(reply::out_of_sequence("Error: send EHLO first"));
        }
        if self.authenticated.is_some() {
            return Step::reply(reply::out_of_sequence("Error: already authenticated"));
        }
        if self.envelope.is_some() {
            return Step::reply(reply::out_of_sequence(
                "Error: MAIL transaction in progress",
            ));
        }
        if !self.auth_offered() {
            return Step::reply(reply::auth_needs_tls());
        }
        if self.auth_refused {
            self.policy.auth_ended(AuthOutcome::Refused { user: None });
            return Step::reply(reply::auth_failures_from_address());
        }
        match (mechanism, initial) {
            ("PLAIN", None) => self.challenge(AuthPending::Plain, ""),
            ("PLAIN", Some(response)) => {
                self.auth_response(AuthPending::Plain, response.as_bytes())
            }
            ("LOGIN", None) => self.challenge(AuthPending::LoginUser, "VXNlcm5hbWU6"),
            ("LOGIN", Some(user)) => self.auth_response(AuthPending::LoginUser, user.as_bytes()),
            _ => Step::reply(reply::auth_unsupported_mechanism()),
        }
    }

    /// A 334 and what the next line will answer.
    fn challenge(&mut self, pending: AuthPending, text: &str) -> Step {
        self.auth_pending = Some(pending);
        Step::reply(reply::auth_challenge(text))
    }

    /// A line answering a 334 (or an initial response).
    fn auth_response(&mut self, pending: AuthPending, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text == "*" {
            return self.count_errors(Step::reply(reply::auth_cancelled()));
        }
        // "=" is an empty initial response (RFC 4954 4).
        let decoded = if text == "=" {
            Some(Vec::new())
        } else {
            base64::decode(text)
        };
        let Some(decoded) = decoded else {
            return self.count_errors(Step::reply(reply::auth_bad_response()));
        };
        match pending {
            AuthPending::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                self.challenge(AuthPending::LoginPassword(user), "UGFzc3dvcmQ6")
            }
            AuthPending::LoginPassword(user) => self.verify(&user, &decoded),
            AuthPending::Plain => {
                // RFC 4616 2: authzid NUL authcid NUL passwd.
                let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
                match parts.as_slice() {
                    [authzid, authcid, password] if authzid.is_empty() || authzid == authcid => {
                        let user = String::from_utf8_lossy(authcid).into_owned();
                        self.verify(&user, password)
                    }
                    _ => self.count_errors(Step::reply(reply::auth_bad_response())),
                }
            }
        }
    }

    fn verify(&mut self, user: &str, password: &[u8]) -> Step {
        // The limit may have been reached in another session since this
        // exchange began: the password is not even looked at.
        if self.auth_refused {
            self.policy
                .auth_ended(AuthOutcome::Refused { user: Some(user) });
            return self.count_errors(Step::reply(reply::auth_failures_from_address()));
        }
        if self.policy.password_matches(user, password) {
            self.policy.auth_ended(AuthOutcome::Accepted { user });
            self.authenticated = Some(user.to_string());
            return Step::reply(reply::auth_ok());
        }
        self.auth_failures += 1;
        self.policy.auth_ended(AuthOutcome::Failed {
            user,
            failures: self.auth_failures,
            limit: MAX_AUTH_FAILURES,
        });
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return Step {
                reply: reply::too_many_auth_failures(&self.settings.hostname),
                action: Action::Close,
            };
        }
        self.count_errors(Step::reply(reply::auth_failed()))
    }

    /// Ends the transaction after the final dot, whatever its outcome
    /// (RFC 5321 4.1.1.4), and hands over what was collected.
    pub fn take_envelope(&mut self) -> Option<Envelope> {
        self.envelope.take()
    }

    /// The `Received:` trace header (RFC 5321 4.4) for a message being
    /// received in this session, with its CRLF line ends.
    pub fn received_header(&self, queue_id: &str, date: &str) -> String {
        // RFC 3848: ESMTPS for a TLS session.
        let (helo, extended) = match &self.greeting {
            Some(g) => (g.name.as_str(), g.extended),
            None => ("unknown", false),
        };
        // RFC 3848: S for TLS, A for an authenticated client.
        let protocol = match (extended, self.tls_active, self.authenticated.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        // RFC 5321 4.1.3 address literals.
        let literal = match self.client_ip {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let mut header = format!(
            "Received: from {helo} ({literal})\r\n\tby {} (tinymta) with {protocol} id {queue_id}",
            self.settings.hostname
        );
        // Name the recipient only when there is one, so that one recipient of
        // many does not learn of the others.
        if let Some(envelope) = &self.envelope {
            if let [only] = envelope.recipients.as_slice() {
                header.push_str(&format!("\r\n\tfor <{only}>"));
            }
        }
        header.push_str(&format!(";\r\n\t{date}\r\n"));
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_mailbox;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A policy made for the tests: example.org is local, clients on
    /// loopback may relay (as relay_networks' default), a few push
    /// addresses and aliases; what it was told about AUTH is kept.
    #[derive(Default)]
    struct TestPolicy {
        local: Vec<&'static str>,
        relay: bool,
        /// Addresses, or `*@domain`.
        push: Vec<&'static str>,
        /// Name -> its targets, at a local domain.
        aliases: Vec<(&'static str, Vec<&'static str>)>,
        users: Vec<(&'static str, &'static [u8])>,
        said: Rc<RefCell<Vec<String>>>,
    }

    impl Policy for TestPolicy {
        fn client_may_relay(&self) -> bool {
            self.relay
        }
        fn domain(&self, domain: &str) -> Domain {
            let domain = domain.trim_end_matches('.');
            let push_domain = |p: &&str| p.rsplit('@').next().unwrap().eq_ignore_ascii_case(domain);
            if self.local.iter().any(|l| l.eq_ignore_ascii_case(domain)) {
                Domain::Local
            } else if self.push.iter().any(push_domain) {
                Domain::Push
            } else {
                Domain::Other
            }
        }
        fn push_route_takes(&self, recipient: &Mailbox) -> bool {
            let address = recipient.to_string().to_ascii_lowercase();
            let domain = format!("*@{}", recipient.domain.to_ascii_lowercase());
            self.push
                .iter()
                .any(|p| p.to_ascii_lowercase() == address || p.to_ascii_lowercase() == domain)
        }
        fn postmaster_domain(&self) -> &str {
            self.local[0]
        }
        fn add_recipient(&self, recipients: &mut Vec<Mailbox>, recipient: Mailbox) {
            let name = recipient.local.to_ascii_lowercase();
            let expanded = match self.aliases.iter().find(|(n, _)| *n == name) {
                Some((_, targets)) => targets
                    .iter()
                    .map(|t| match t.contains('@') {
                        true => parse_mailbox(t).unwrap(),
                        false => Mailbox {
                            local: t.to_string(),
                            domain: recipient.domain.clone(),
                        },
                    })
                    .collect(),
                None => vec![recipient],
            };
            for mailbox in expanded {
                if !recipients.contains(&mailbox) {
                    recipients.push(mailbox);
                }
            }
        }
        fn auth_configured(&self) -> bool {
            !self.users.is_empty()
        }
        fn password_matches(&self, user: &str, password: &[u8]) -> bool {
            self.users.iter().any(|(u, p)| *u == user && *p == password)
        }
        fn auth_ended(&self, outcome: AuthOutcome<'_>) {
            self.said.borrow_mut().push(format!("{outcome:?}"));
        }
    }

    fn settings() -> Settings {
        Settings {
            hostname: "mx.example.org".to_string(),
            max_errors: 10,
            max_message_size: 1000,
            max_recipients: 3,
        }
    }

    /// The policy of a client at `ip`: example.org is local, loopback
    /// clients may relay.
    fn policy_for(ip: &str) -> TestPolicy {
        let ip: IpAddr = ip.parse().unwrap();
        TestPolicy {
            local: vec!["example.org"],
            relay: ip.to_canonical().is_loopback(),
            ..TestPolicy::default()
        }
    }

    fn session_from(ip: &str) -> Session {
        Session::new(settings(), Box::new(policy_for(ip)), ip.parse().unwrap())
    }

    /// Runs a dialogue of `command => "code enhanced"` pairs.
    fn dialogue(session: &mut Session, steps: &[(&str, &str)]) {
        for (command, expected) in steps {
            let step = session.handle_line(command.as_bytes());
            let got = match step.reply.enhanced {
                Some(e) => format!("{} {}", step.reply.code, e),
                None => step.reply.code.to_string(),
            };
            assert_eq!(&got, expected, "after {command:?}: {:?}", step.reply);
        }
    }

    #[test]
    fn a_whole_transaction() {
        let mut s = session_from("192.0.2.7");
        assert_eq!(s.greeting().to_wire(), "220 mx.example.org ESMTP\r\n");
        let ehlo = s.handle_line(b"EHLO client.example");
        assert_eq!(
            ehlo.reply.to_wire(),
            "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
             250 ENHANCEDSTATUSCODES\r\n"
        );
        dialogue(
            &mut s,
            &[
                ("MAIL FROM:<a@remote.example> SIZE=999", "250 2.1.0"),
                ("RCPT TO:<Bob@Example.ORG>", "250 2.1.5"),
                ("RCPT TO:<postmaster>", "250 2.1.5"),
            ],
        );
        let data = s.handle_line(b"DATA");
        assert_eq!(data.action, Action::ReceiveData);
        assert_eq!(
            data.reply.to_wire(),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        let envelope = s.take_envelope().unwrap();
        assert_eq!(envelope.recipients[0].to_string(), "Bob@example.org");
        assert_eq!(envelope.recipients[1].to_string(), "postmaster@example.org");
        assert_eq!(envelope.sender.unwrap().to_string(), "a@remote.example");
        // The transaction is over: a new MAIL is allowed, DATA is not.
        dialogue(
            &mut s,
            &[("DATA", "503 5.5.1"), ("MAIL FROM:<>", "250 2.1.0")],
        );
        let quit = s.handle_line(b"QUIT");
        assert_eq!(quit.action, Action::Close);
        assert_eq!(quit.reply.to_wire(), "221 2.0.0 Bye\r\n");
    }

    #[test]
    fn sequencing_errors() {
        let mut s = session_from("127.0.0.1");
        dialogue(
            &mut s,
            &[
                ("MAIL FROM:<a@b.org>", "503 5.5.1"),
                ("RCPT TO:<a@example.org>", "503 5.5.1"),
                ("DATA", "503 5.5.1"),
                ("HELO c", "250"),
                ("RCPT TO:<a@example.org>", "503 5.5.1"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("MAIL FROM:<a@b.org>", "503 5.5.1"),
                ("DATA", "554 5.5.1"),
                ("RSET", "250 2.0.0"),
                ("RCPT TO:<a@example.org>", "503 5.5.1"),
                ("NOOP", "250 2.0.0"),
                ("VRFY root", "252 2.5.2"),
                ("HELP", "214 2.0.0"),
                ("BOGUS", "500 5.5.1"),
            ],
        );
    }

    #[test]
    fn relay_tricks_are_refused_outside_relay_networks() {
        let mut s = session_from("192.0.2.7");
        dialogue(
            &mut s,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<user%other.example@example.org>", "550 5.7.1"),
                ("RCPT TO:<other.example!user@example.org>", "550 5.7.1"),
                ("RCPT TO:<\"user@other.example\"@example.org>", "550 5.7.1"),
                ("RCPT TO:<@example.org:user@other.example>", "550 5.7.1"),
                ("RCPT TO:<user@other.example.>", "501 5.1.3"),
                ("RCPT TO:<user@[192.0.2.1]>", "550 5.7.1"),
                ("RCPT TO:<@other.example:user@example.org>", "250 2.1.5"),
            ],
        );
        let mut relay = session_from("127.0.0.1");
        dialogue(
            &mut relay,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<user%other.example@example.org>", "250 2.1.5"),
            ],
        );
    }

    #[test]
    fn a_push_routes_domain_counts_as_local_for_relay_control() {
        let policy = TestPolicy {
            push: vec!["nas@push", "*@phone.example"],
            ..policy_for("192.0.2.7")
        };
        let mut s = Session::new(settings(), Box::new(policy), "192.0.2.7".parse().unwrap());
        dialogue(
            &mut s,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<nas@push>", "250 2.1.5"),
                ("RCPT TO:<Anyone@Phone.example>", "250 2.1.5"),
                ("RCPT TO:<other@push>", "550 5.1.1"),
                ("RCPT TO:<user@other.example>", "550 5.7.1"),
            ],
        );
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let three = || Settings {
            max_errors: 3,
            ..settings()
        };
        let loopback = || Box::new(policy_for("127.0.0.1"));
        let mut s = Session::new(three(), loopback(), "127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            dialogue(&mut s, &[("BOGUS", "500 5.5.1")]);
        }
        // Successes do not count; the fourth error closes.
        dialogue(&mut s, &[("NOOP", "250 2.0.0"), ("BOGUS", "421 4.7.0")]);
        let mut s = Session::new(three(), loopback(), "127.0.0.1".parse().unwrap());
        dialogue(&mut s, &[("NOOP", "250 2.0.0")]);
        for _ in 0..3 {
            assert_eq!(s.line_too_long().reply.code, 500);
        }
        let last = s.data_reply(reply::bare_line_end());
        assert_eq!((last.reply.code, last.action), (421, Action::Close));
    }

    #[test]
    fn starttls_is_offered_once_and_resets_the_session() {
        let mut s = session_from("192.0.2.7").with_listener(true, false, false);
        let ehlo = s.handle_line(b"EHLO c");
        assert!(ehlo.reply.lines.contains(&"STARTTLS".to_string()));
        dialogue(&mut s, &[("MAIL FROM:<a@b.org>", "250 2.1.0")]);
        let start = s.handle_line(b"STARTTLS");
        assert_eq!(start.action, Action::StartTls);
        assert_eq!(start.reply.to_wire(), "220 2.0.0 Ready to start TLS\r\n");
        s.tls_started();
        // The client must greet again; the old transaction is gone.
        dialogue(
            &mut s,
            &[("MAIL FROM:<a@b.org>", "503 5.5.1"), ("EHLO c", "250")],
        );
        assert!(!s
            .handle_line(b"EHLO c")
            .reply
            .lines
            .contains(&"STARTTLS".to_string()));
        dialogue(
            &mut s,
            &[
                ("STARTTLS", "503 5.5.1"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
            ],
        );
        dialogue(&mut s, &[("RCPT TO:<x@example.org>", "250 2.1.5")]);
        assert!(s.received_header("I", "d").contains("with ESMTPS id I"));
        let mut plain = session_from("192.0.2.7");
        dialogue(&mut plain, &[("STARTTLS", "502 5.5.1")]);
        assert!(!plain
            .handle_line(b"EHLO c")
            .reply
            .lines
            .contains(&"STARTTLS".to_string()));
    }

    /// The session with AUTH configured, for user box with password s3cret.
    fn with_user(mut session: Session) -> Session {
        let ip = session.client_ip.to_string();
        session.policy = Box::new(TestPolicy {
            users: vec![("box", b"s3cret")],
            ..policy_for(&ip)
        });
        session
    }

    #[test]
    fn auth_plain_and_login() {
        // From the box itself, in clear text.
        let mut s = with_user(session_from("127.0.0.1"));
        let ehlo = s.handle_line(b"EHLO c");
        assert!(ehlo.reply.lines.contains(&"AUTH PLAIN LOGIN".to_string()));
        let plain = base64::encode(b"\0box\0s3cret");
        let step = s.handle_line(format!("AUTH PLAIN {plain}").as_bytes());
        assert_eq!(
            step.reply.to_wire(),
            "235 2.7.0 Authentication successful\r\n"
        );
        assert_eq!(s.authenticated(), Some("box"));
        dialogue(&mut s, &[("AUTH PLAIN", "503 5.5.1")]);
        // LOGIN in three steps, PLAIN with an empty challenge.
        let mut s = with_user(session_from("127.0.0.1"));
        dialogue(&mut s, &[("EHLO c", "250")]);
        assert_eq!(
            s.handle_line(b"AUTH LOGIN").reply.to_wire(),
            "334 VXNlcm5hbWU6\r\n"
        );
        assert_eq!(
            s.handle_line(base64::encode(b"box").as_bytes())
                .reply
                .to_wire(),
            "334 UGFzc3dvcmQ6\r\n"
        );
        assert_eq!(
            s.handle_line(base64::encode(b"s3cret").as_bytes())
                .reply
                .code,
            235
        );
        let mut s = with_user(session_from("127.0.0.1"));
        dialogue(&mut s, &[("EHLO c", "250")]);
        assert_eq!(s.handle_line(b"AUTH PLAIN").reply.to_wire(), "334 \r\n");
        assert_eq!(s.handle_line(plain.as_bytes()).reply.code, 235);
        // Cancelled, undecodable, unknown mechanism.
        let mut s = with_user(session_from("127.0.0.1"));
        dialogue(&mut s, &[("EHLO c", "250")]);
        s.handle_line(b"AUTH LOGIN");
        dialogue(
            &mut s,
            &[("*", "501 5.7.0"), ("AUTH PLAIN !!!!", "501 5.5.2")],
        );
        dialogue(&mut s, &[("AUTH CRAM-MD5", "504 5.5.4")]);
    }

    #[test]
    fn an_over_long_auth_line_ends_the_exchange() {
        // Issue 12, item 9b: the next command was taken as the answer.
        for (mechanism, answered) in [("AUTH LOGIN", 0), ("AUTH LOGIN", 1), ("AUTH PLAIN", 0)] {
            let mut s = with_user(session_from("127.0.0.1"));
            dialogue(&mut s, &[("EHLO c", "250"), (mechanism, "334")]);
            if answered == 1 {
                dialogue(&mut s, &[("Ym94", "334")]);
            }
            let step = s.line_too_long();
            assert_eq!(
                step.reply.to_wire(),
                "500 5.5.6 Error: authentication exchange line is too long\r\n"
            );
            assert_eq!(step.action, Action::Continue);
            // The next line is a command, and AUTH may start again.
            dialogue(
                &mut s,
                &[
                    ("NOOP", "250 2.0.0"),
                    ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                    ("RSET", "250 2.0.0"),
                ],
            );
            let plain = format!("AUTH PLAIN {}", base64::encode(b"\0box\0s3cret"));
            dialogue(&mut s, &[(plain.as_str(), "235 2.7.0")]);
        }
        // Outside an exchange, an over-long line is the usual 500 5.5.2.
        let mut s = with_user(session_from("127.0.0.1"));
        assert_eq!(
            s.line_too_long().reply.to_wire(),
            "500 5.5.2 Error: line too long\r\n"
        );
    }

    #[test]
    fn three_failures_close_the_session() {
        let mut s = with_user(session_from("127.0.0.1"));
        dialogue(&mut s, &[("EHLO c", "250")]);
        let wrong = format!("AUTH PLAIN {}", base64::encode(b"\0box\0guess"));
        dialogue(
            &mut s,
            &[(wrong.as_str(), "535 5.7.8"), (wrong.as_str(), "535 5.7.8")],
        );
        let third = s.handle_line(wrong.as_bytes());
        assert_eq!((third.reply.code, third.action), (421, Action::Close));
    }

    #[test]
    fn auth_is_refused_while_the_address_is_over_its_limit() {
        let mut s = with_user(session_from("127.0.0.1"));
        dialogue(&mut s, &[("EHLO c", "250")]);
        let right = format!("AUTH PLAIN {}", base64::encode(b"\0box\0s3cret"));
        s.set_auth_refused(true);
        assert_eq!(
            s.handle_line(right.as_bytes()).reply.to_wire(),
            "454 4.7.0 Error: too many failed authentication attempts, try again later\r\n"
        );
        dialogue(&mut s, &[("AUTH LOGIN", "454 4.7.0")]);
        // The verdict can change during an exchange: the password is then
        // not checked, and nothing counts as a failure.
        s.set_auth_refused(false);
        dialogue(&mut s, &[("AUTH LOGIN", "334")]);
        dialogue(&mut s, &[(base64::encode(b"box").as_str(), "334")]);
        s.set_auth_refused(true);
        dialogue(&mut s, &[(base64::encode(b"s3cret").as_str(), "454 4.7.0")]);
        assert_eq!((s.auth_failures(), s.authenticated()), (0, None));
        // Failures are counted for the driver to pass on.
        s.set_auth_refused(false);
        let wrong = format!("AUTH PLAIN {}", base64::encode(b"\0box\0guess"));
        dialogue(&mut s, &[(wrong.as_str(), "535 5.7.8")]);
        assert_eq!(s.auth_failures(), 1);
        dialogue(&mut s, &[(right.as_str(), "235 2.7.0")]);
    }

    #[test]
    fn auth_wants_tls_except_from_the_box_itself() {
        let mut remote = with_user(session_from("192.0.2.7"));
        let ehlo = remote.handle_line(b"EHLO c");
        assert!(!ehlo.reply.lines.iter().any(|l| l.starts_with("AUTH")));
        dialogue(
            &mut remote,
            &[("AUTH PLAIN AGJveABzM2NyZXQ=", "538 5.7.11")],
        );
        // Over TLS it works, and then the client may relay.
        let mut remote = with_user(session_from("192.0.2.7")).with_listener(true, true, false);
        dialogue(&mut remote, &[("EHLO c", "250")]);
        let plain = format!("AUTH PLAIN {}", base64::encode(b"\0box\0s3cret"));
        dialogue(
            &mut remote,
            &[
                (plain.as_str(), "235 2.7.0"),
                ("MAIL FROM:<a@b.org> AUTH=<>", "250 2.1.0"),
                ("RCPT TO:<x@elsewhere.example>", "250 2.1.5"),
            ],
        );
        assert!(remote
            .received_header("I", "d")
            .contains("with ESMTPSA id I"));
        // Submission: no MAIL before AUTH, no AUTH before TLS, even from loopback.
        let mut submission = with_user(session_from("127.0.0.1")).with_listener(true, false, true);
        dialogue(
            &mut submission,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "530 5.7.0"),
                (plain.as_str(), "538 5.7.11"),
            ],
        );
    }

    #[test]
    fn local_recipients_go_through_the_aliases() {
        let policy = TestPolicy {
            local: vec!["box.lan"],
            relay: true,
            aliases: vec![("root", vec!["ops@example.org", "admin"])],
            ..TestPolicy::default()
        };
        let mut s = Session::new(settings(), Box::new(policy), "127.0.0.1".parse().unwrap());
        dialogue(
            &mut s,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<cron@box.lan>", "250 2.1.0"),
                ("RCPT TO:<root@box.lan>", "250 2.1.5"),
                ("RCPT TO:<admin@box.lan>", "250 2.1.5"),
            ],
        );
        let envelope = s.take_envelope().unwrap();
        let got: Vec<String> = envelope.recipients.iter().map(|r| r.to_string()).collect();
        assert_eq!(got, ["ops@example.org", "admin@box.lan"]);
    }

    #[test]
    fn ehlo_resets_the_transaction() {
        let mut s = session_from("127.0.0.1");
        dialogue(
            &mut s,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<x@example.org>", "250 2.1.5"),
                ("EHLO c", "250"),
                ("DATA", "503 5.5.1"),
            ],
        );
    }

    #[test]
    fn limits_and_relaying() {
        let mut s = session_from("192.0.2.7");
        dialogue(
            &mut s,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org> SIZE=1001", "552 5.3.4"),
                ("MAIL FROM:<a@b.org> SIZE=1000", "250 2.1.0"),
                ("RCPT TO:<x@elsewhere.example>", "550 5.7.1"),
                ("RCPT TO:<postmaster@elsewhere.example>", "550 5.7.1"),
                ("RCPT TO:<\"../etc\"@example.org>", "550 5.1.3"),
                ("RCPT TO:<\"a/b\"@example.org>", "550 5.1.3"),
                ("RCPT TO:<\"..\"@example.org>", "550 5.1.3"),
                ("RCPT TO:<x1@example.org>", "250 2.1.5"),
                ("RCPT TO:<x2@example.org>", "250 2.1.5"),
                ("RCPT TO:<x3@example.org>", "250 2.1.5"),
                ("RCPT TO:<x4@example.org>", "452 4.5.3"),
            ],
        );
        let mut relay = session_from("127.0.0.1");
        dialogue(
            &mut relay,
            &[
                ("EHLO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<x@elsewhere.example>", "250 2.1.5"),
            ],
        );
    }

    #[test]
    fn received_header() {
        let mut s = session_from("::1");
        dialogue(
            &mut s,
            &[
                ("EHLO client.example", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<x@example.org>", "250 2.1.5"),
            ],
        );
        assert_eq!(
            s.received_header("ID1", "Sun, 22 Nov 2026 16:36:47 +0000"),
            "Received: from client.example ([IPv6:::1])\r\n\tby mx.example.org (tinymta) \
             with ESMTP id ID1\r\n\tfor <x@example.org>;\r\n\tSun, 22 Nov 2026 16:36:47 +0000\r\n"
        );
        dialogue(&mut s, &[("RCPT TO:<y@example.org>", "250 2.1.5")]);
        assert!(!s.received_header("ID1", "d").contains("for <"));
        // An IPv4 client seen through an IPv6 socket is an IPv4 client.
        let mut mapped = session_from("::ffff:192.0.2.7");
        dialogue(
            &mut mapped,
            &[
                ("HELO c", "250"),
                ("MAIL FROM:<a@b.org>", "250 2.1.0"),
                ("RCPT TO:<x@elsewhere.example>", "550 5.7.1"),
            ],
        );
        assert!(mapped.received_header("ID2", "d").starts_with(
            "Received: from c ([192.0.2.7])\r\n\tby mx.example.org (tinymta) with SMTP id ID2;"
        ));
    }
}
