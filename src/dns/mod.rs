//! DNS, written by hand (RFC 1035): the wire format and a stub resolver.

pub mod resolver;
pub mod wire;
