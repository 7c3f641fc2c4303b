//! tinymta: a minimal mail transfer agent for embedded Linux.
//!
//! The SMTP protocol lives in [`smtp`] without any I/O; [`server`] does the
//! network side around it, [`spool`] the durable queue, [`deliver`] the
//! delivery from the queue.

pub mod aliases;
pub mod auth;
pub mod base64;
pub mod config;
pub mod deliver;
pub mod dns;
pub mod live;
pub mod log;
pub mod net;
pub mod sendmail;
pub mod server;
pub mod smtp;
pub mod spool;
pub mod sys;
pub mod time;
pub mod tls;
