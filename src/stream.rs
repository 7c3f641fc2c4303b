//! A connection as the SMTP server, the SMTP client and the HTTP client use
//! it: read and written, given timeouts, closed, and on either side
//! upgraded to TLS. [`MaybeTls`] (TCP, or TLS over it) is one; standard
//! input and output for `sendmail -bs` (server/connection.rs) and the
//! scripted peers of the tests are the others.

use std::io::{self, Read, Write};
use std::mem;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection, SideData,
};

use crate::tls::{self, MaybeTls, TlsError, TlsSession};

/// A connection that can be given read and write timeouts and closed.
pub trait Connection: Read + Write {
    /// How long each read may wait from now on.
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()>;
    /// How long each write may wait from now on.
    fn set_write_timeout(&self, timeout: Duration) -> io::Result<()>;
    /// Ends the connection: a TLS close_notify, so that the peer can tell
    /// the end from a cut connection; nothing for clear text.
    fn close(&mut self);

    /// The same time for reads and writes.
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

// The upgrade to TLS is two traits, one a side, not one method: the server
// takes a server config and a time for the handshake and learns only the
// version; the client takes a client config and the host name that the
// certificate must be for, and learns the certificate (for pins and the
// log). And a server stream (`MaybeTls<ServerConnection>`) can only accept
// and a client stream only connect: one trait for both would give each a
// method that can only fail.

/// A connection on which the server can run the STARTTLS handshake
/// (RFC 3207).
pub trait AcceptTls: Connection {
    /// The server side of the handshake, within `timeout`; the TLS version
    /// (`TLSv1.3`) on success.
    fn accept_tls(
        &mut self,
        config: &Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<String, TlsError>;
}

/// A connection on which the client can start TLS: after STARTTLS, or
/// first of all for implicit TLS (RFC 8314).
pub trait ConnectTls: Connection {
    /// The client side of the handshake, with a server that must prove to
    /// be `host_name`.
    fn connect_tls(
        &mut self,
        config: &Arc<ClientConfig>,
        host_name: &str,
    ) -> Result<TlsSession, TlsError>;
}

impl<C, S> Connection for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_read_timeout(Some(timeout))
    }

    fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_write_timeout(Some(timeout))
    }

    fn close(&mut self) {
        if let MaybeTls::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}

impl AcceptTls for MaybeTls<ServerConnection> {
    fn accept_tls(
        &mut self,
        config: &Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<String, TlsError> {
        let tcp = self.tcp().try_clone().map_err(TlsError::Socket)?;
        let (tls, version) = tls::accept(config, tcp, timeout)?;
        *self = MaybeTls::Tls(tls);
        Ok(version)
    }
}

impl ConnectTls for MaybeTls<ClientConnection> {
    fn connect_tls(
        &mut self,
        config: &Arc<ClientConfig>,
        host_name: &str,
    ) -> Result<TlsSession, TlsError> {
        if self.is_tls() {
            return Err(TlsError::Handshake(
                "STARTTLS on a TLS connection".to_string(),
            ));
        }
        // The TCP socket moves into the TLS stream; a duplicate of it holds
        // its place until then.
        let duplicate = self
            .tcp()
            .try_clone()
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        let MaybeTls::Plain(tcp) = mem::replace(self, MaybeTls::Plain(duplicate)) else {
            unreachable!("checked above: not TLS yet");
        };
        let (tls, session) = tls::connect(config, host_name, tcp)?;
        *self = MaybeTls::Tls(Box::new(tls));
        Ok(session)
    }
}
