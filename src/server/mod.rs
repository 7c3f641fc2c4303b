//! The I/O around the SMTP state machine.

pub mod connection;
pub mod listener;
pub mod pool;
