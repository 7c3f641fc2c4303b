//! The I/O around the SMTP state machine.

use std::fmt;
use std::io;
use std::net::SocketAddr;

pub mod auth_failures;
pub mod connection;
pub mod listener;
pub mod policy;
pub mod pool;

/// Why the server could not start serving.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// A configured `listen` address could not be bound: in use, not this
    /// box's, or a port below 1024 without root.
    Listen { addr: SocketAddr, error: io::Error },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Listen { error, .. } => Some(error),
        }
    }
}
