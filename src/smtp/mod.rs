//! The SMTP protocol, without I/O.

pub mod address;
pub mod command;
pub mod data;
pub mod reply;
pub mod session;
pub mod status;
