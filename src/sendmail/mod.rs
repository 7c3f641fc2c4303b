//! The sendmail-compatible entry point: what cron, smartd and scripts call
//! as /usr/sbin/sendmail. It reads one message from standard input and
//! queues it into the spool with the same durable write as the server, so it
//! works while the daemon is stopped; the daemon notices the new entry.
//!
//! - `args`: the command lines of `sendmail` and `mail`
//! - `headers`: the header fields as a submission agent mends them
//! - `submit`: reading the message and queueing it
//! - `mailq`: the queue listing

mod args;
mod headers;
mod mailq;
mod submit;

pub use args::{parse_args, parse_mail_args, Mode, Options, UsageError};
pub use mailq::list_queue;
pub use submit::{qualify, submit, SubmitError, Submitter};
