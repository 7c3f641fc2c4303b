//! The SMTP protocol, without I/O.

pub mod address;
pub mod base64;
pub mod command;
pub mod data;
pub mod policy;
pub mod reply;
pub mod session;
pub mod status;
