//! What the session leaves to the server: the protocol decides the order of
//! commands and every reply; who may relay, which domains are this box's
//! own, what a recipient expands to and whose password is right are
//! policy, which the connection driver hands in as a [`Policy`] built for
//! one session (server::policy), and a test as one made for it.

use super::address::Mailbox;

/// What a recipient's domain is to this server, as RCPT TO needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Delivered here, into a mailbox (`local_domains`).
    Local,
    /// A push route's domain: it counts as local for relay control (a LAN
    /// device may send to `nas@push`), and its addresses are the routes'.
    Push,
    /// Anywhere else: relaying.
    Other,
}

/// How an AUTH exchange ended, for the server to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome<'a> {
    Accepted {
        user: &'a str,
    },
    /// The password was wrong: the session's `failures` so far, of the
    /// `limit` that closes it.
    Failed {
        user: &'a str,
        failures: usize,
        limit: usize,
    },
    /// Refused without looking at a password: the client's address has
    /// failed too often lately (`auth_failure_limit`). The user, when the
    /// exchange had got as far as naming one.
    Refused {
        user: Option<&'a str>,
    },
}

/// The questions a session asks about its client and its recipients.
pub trait Policy {
    /// Whether the client's address may send to other domains
    /// (`relay_networks`); an authenticated client and a local submission
    /// may anyway.
    fn client_may_relay(&self) -> bool;

    /// What `domain` (any case, a trailing dot allowed) is to this server.
    fn domain(&self, domain: &str) -> Domain;

    /// Whether a push route takes this address of a [`Domain::Push`].
    fn push_route_takes(&self, recipient: &Mailbox) -> bool;

    /// The domain of `postmaster` given without one (RFC 5321 4.5.1).
    fn postmaster_domain(&self) -> &str;

    /// Adds an accepted recipient to the transaction's list, as every
    /// producer of mail does (through the aliases, each mailbox once).
    fn add_recipient(&self, recipients: &mut Vec<Mailbox>, recipient: Mailbox);

    /// Whether SMTP AUTH is configured, with at least one user.
    fn auth_configured(&self) -> bool;

    /// Whether `password` is `user`'s.
    fn password_matches(&self, user: &str, password: &[u8]) -> bool;

    /// An AUTH exchange ended so; the server logs it.
    fn auth_ended(&self, outcome: AuthOutcome<'_>);
}
