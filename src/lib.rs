//! tinymta: a minimal mail transfer agent for embedded Linux.
//!
//! The map of the modules, one concern each (as dma.h is dma's table of
//! contents). Dependence runs one way, down this list: a module uses those
//! below it, never one above it (tests/imports.rs checks that against the
//! code), so that each can be read and tested alone.
//!
//! ```text
//! main.rs (bin)   the command: parse options, pick the mode, exit codes
//! test_send       `tinymta test-send`: one message along its real route
//! daemon          start-up (the config and the files it names, each read
//!                 by its owner), privilege drop, signals, reload
//! startup         the checks before start (`-t`), the start-up warnings, unit-tested;
//!                 StartError, why the daemon does not start
//! sendmail/       the sendmail/mailq entry point: one message from stdin
//!   args            the command lines of `sendmail` and `mail`
//!   headers         header fields mended as a submission agent may (RFC 6409 8)
//!   submit          reading the message and queueing it
//!   mailq           the queue listing
//! server/         the I/O around the state machine
//!   listener        accept loop, per-address limits, reserved places, 421 when full
//!   pool            the bounded pool of session threads
//!   connection      one client: line reading with limits, DATA streaming, STARTTLS
//!   policy          what a session asks, answered from the config: relaying,
//!                   local and push domains, aliases, the users file
//!   auth_failures   failed AUTHs per client address, across sessions (Postfix's anvil)
//! deliver/        delivery from the queue; run_job sends a job along its route
//!   runner          what is due, retries with backoff, jobs for the workers
//!   route           a recipient -> its route, decided once
//!   local           delivery into a Maildir
//!   remote          SMTP to the smarthost or the MX hosts, host after host
//!   outgoing        a message as it leaves: send_as, long lines (QP, folding)
//!   client          the SMTP client, over any stream (tested against a script)
//!   push/           push services as destinations; the secrets routes name
//!     job             a push job: HTTP outcomes -> delivered, deferred, fallback
//!     notification    a queued message -> title, text, priority
//!     html            an HTML part as plain text
//!     service         a notification -> each service's documented request
//!   bounce          RFC 3464 delivery status notifications
//!   alarm           a destination stuck for alarm_after: one alarm to alarm_to
//!                   through another, one notice when it works again
//! spool/          the queue: one file per entry, one way in (IncomingMessage::commit);
//!                 the maildrop of set-group-id submitters, picked up into it
//!   queue           an entry's envelope and each recipient's state
//!   durable         tmp/, fsync, rename, directory fsync
//!   waker           the queue announces new entries; the runner listens
//! aliases         the aliases file; a recipient expanded through it
//! http            a small HTTP/1.1 client over rustls, given its resolver,
//!                 TLS config and timeouts: a leaf
//! dns/            DNS wire format and the stub resolver (MX, A, AAAA), given
//!                 its servers
//! config/         the flat config file -> Config, plain data, each key
//!                 declared once
//!   route           `route` lines: which recipients go to which push service
//! message/        message text, once for everyone
//!   header          RFC 5322 header fields and address-list tokens, as written
//!   encoded_word    RFC 2047 encoded words for header text that is not ASCII
//! smtp/           the protocol without I/O or policy: it uses nothing outside smtp/
//!   session         the server state machine: line in, reply and action out
//!   policy          what the session asks of the server (a trait)
//!   command         a command line -> Command, or the reply to a bad one
//!   address         RFC 5321 paths and mailboxes
//!   reply           every reply the server sends
//!   status          RFC 3463 enhanced status codes
//!   data            DATA: dot-unstuffing, end of data, the checks on a message
//!   base64          RFC 4648 base64, both ways (AUTH on either side)
//! url             http and https URLs, split as a request needs them
//! stream          a connection: timeouts, close, the upgrade to TLS of
//!                 either side; for TCP/TLS, stdin/stdout and test scripts
//! tls             rustls server and client configs; certificate checks, pins
//!                 (smarthost_fingerprint), refusals in words
//! auth            SMTP AUTH on the server side, the users file
//! log             stderr, file or syslog; one line a record, untrusted text Escaped
//! line_error      file:line errors of the config, users, aliases and envelope files;
//!                 ValueError, what a value parser says before the line is put to it
//! live            settings that SIGHUP replaces
//! net             CIDR blocks
//! random          random numbers from the system
//! time            dates as mail writes them; when this binary was built (build.rs)
//! sysexits        the exit codes of sysexits.h
//! sys             the only `unsafe`: signals, setuid/setgid, accounts, statfs
//! ```

// `unsafe` lives in sys.rs alone, behind safe wrappers.
#![deny(unsafe_code)]

pub mod aliases;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod dns;
pub mod http;
pub mod line_error;
pub mod live;
pub mod log;
pub mod message;
pub mod net;
pub mod random;
pub mod sendmail;
pub mod server;
pub mod smtp;
pub mod spool;
pub mod startup;
pub mod stream;
pub mod sys;
pub mod sysexits;
pub mod test_send;
pub mod time;
pub mod tls;
pub mod url;
