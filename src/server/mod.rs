//! The I/O around the SMTP state machine.

pub mod auth_failures;
pub mod connection;
pub mod listener;
pub mod policy;
pub mod pool;
