//! TLS with rustls and its ring provider: the server side (STARTTLS and
//! implicit TLS with `tls_cert` and `tls_key`) and client configs for
//! upstream servers. The public roots come from webpki-roots; `tls_ca_file`
//! adds a private CA.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, DigitallySignedStruct, RootCertStore,
    ServerConfig, ServerConnection, SideData, SignatureScheme, StreamOwned,
};

#[derive(Debug)]
pub enum TlsError {
    /// The server's certificate or key file is unusable.
    ServerCertificate(String),
    /// A CA file that cannot be read or holds no certificate.
    CaFile { path: String, message: String },
    /// A host name that cannot be a TLS server name.
    ServerName(String),
    /// The handshake failed: bad certificate, no common protocol, I/O.
    Handshake(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::ServerCertificate(message) => f.write_str(message),
            TlsError::CaFile { path, message } => write!(f, "{path}: {message}"),
            TlsError::ServerName(name) => write!(f, "not a valid TLS server name: {name}"),
            TlsError::Handshake(message) => write!(f, "TLS handshake failed: {message}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The two client configs delivery needs: one that checks certificates
/// (smarthost, `mx_tls = require`) and one that only encrypts
/// (opportunistic STARTTLS to MX hosts, where most certificates would fail
/// a check and clear text is the alternative).
pub struct ClientConfigs {
    pub verified: Arc<ClientConfig>,
    pub unverified: Arc<ClientConfig>,
}

impl ClientConfigs {
    /// `tls_verify = no` makes the "verified" config accept any certificate too.
    pub fn new(ca_file: Option<&Path>, verify: bool) -> Result<ClientConfigs, TlsError> {
        let unverified = unverified_config();
        let verified = if verify {
            verified_config(ca_file)?
        } else {
            Arc::clone(&unverified)
        };
        Ok(ClientConfigs {
            verified,
            unverified,
        })
    }
}

fn verified_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |message: String| TlsError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no certificate in file".to_string()));
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn unverified_config() -> Arc<ClientConfig> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// Checks the handshake signatures but not who signed the certificate: for
/// encryption without authentication, and the explicit `tls_verify = no`.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server side's config from PEM files: a certificate chain (leaf first)
/// and its private key. Errors name the file.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let error = |path: &Path, message: String| {
        TlsError::ServerCertificate(format!("{}: {message}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| error(cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| error(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(error(cert_file, "no certificate in file".to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| error(key_file, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error(key_file, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Runs the server side of a handshake on `tcp`, within `timeout`.
pub fn accept(
    config: &Arc<ServerConfig>,
    mut tcp: TcpStream,
    timeout: Duration,
) -> Result<(Box<ServerTlsStream>, String), TlsError> {
    let mut conn = ServerConnection::new(Arc::clone(config))
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
    }
    let version = version_name(&conn);
    Ok((Box::new(StreamOwned::new(conn, tcp)), version))
}

/// `TLSv1.3` and the like.
fn version_name<S: SideData>(conn: &ConnectionCommon<S>) -> String {
    conn.protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        .replace('_', ".")
}

/// A TLS client stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;
/// A TLS server stream over TCP.
pub type ServerTlsStream = StreamOwned<ServerConnection, TcpStream>;

/// Runs the TLS handshake on `tcp` as a client of `host` (a name for SNI and
/// the certificate check, or an IP address). Returns the stream and the
/// protocol version, e.g. `TLSv1.3`.
pub fn connect(
    config: &Arc<ClientConfig>,
    host: &str,
    mut tcp: TcpStream,
) -> Result<(TlsStream, String), TlsError> {
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|_| TlsError::ServerName(host.to_string()))?;
    let mut conn = ClientConnection::new(Arc::clone(config), server_name)
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
    }
    let version = version_name(&conn);
    Ok((StreamOwned::new(conn, tcp), version))
}

/// A connection that is plain TCP or TLS, read and written the same way:
/// `MaybeTls` on the client side, `MaybeTls<ServerConnection>` on the server's.
pub enum MaybeTls<C = ClientConnection> {
    Plain(TcpStream),
    Tls(Box<StreamOwned<C, TcpStream>>),
}

impl<C> MaybeTls<C> {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(tcp) => tcp,
            MaybeTls::Tls(tls) => &tls.sock,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

impl<C, S> MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// Ends a TLS session properly (close_notify), so the peer can tell the
    /// end from a cut connection; nothing for clear text.
    pub fn close(&mut self) {
        if let MaybeTls::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}

impl<C, S> Read for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(tcp) => tcp.read(buf),
            MaybeTls::Tls(tls) => tls.read(buf),
        }
    }
}

impl<C, S> Write for MaybeTls<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(tcp) => tcp.write(buf),
            MaybeTls::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(tcp) => tcp.flush(),
            MaybeTls::Tls(tls) => tls.flush(),
        }
    }
}
