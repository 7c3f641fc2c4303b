//! TLS with rustls and its ring provider: the server side (STARTTLS and
//! implicit TLS with `tls_cert` and `tls_key`) and client configs for
//! upstream servers. The public roots come from webpki-roots; `tls_ca_file`
//! adds a private CA, or a server's self-signed certificate;
//! `smarthost_fingerprint` pins the smarthost's. A refused certificate is
//! told in words, with the fix ([`CertificateRefused`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, ConnectionCommon, DigitallySignedStruct,
    InvalidMessage, OtherError, RootCertStore, ServerConfig, ServerConnection, SideData,
    SignatureScheme, StreamOwned,
};

use crate::time::rfc5322_date;

#[derive(Debug)]
pub enum TlsError {
    /// The server's certificate or key file is unusable.
    ServerCertificate(String),
    /// A CA file that cannot be read or holds no certificate.
    CaFile { path: String, message: String },
    /// A host name that cannot be a TLS server name.
    ServerName(String),
    /// The server's certificate was refused: why, and what to do, in words.
    Certificate(CertificateRefused),
    /// The server answered the ClientHello with something that is not TLS
    /// at all: clear text, an SMTP greeting most likely.
    NotTls,
    /// The handshake failed otherwise: no common protocol, I/O.
    Handshake(String),
    /// The socket could not be handed to TLS (duplicating it failed: no
    /// file descriptor left); said as the system says it.
    Socket(io::Error),
    /// This connection cannot have TLS at all (standard input and output).
    Unavailable(&'static str),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::ServerCertificate(message) => f.write_str(message),
            TlsError::CaFile { path, message } => write!(f, "{path}: {message}"),
            TlsError::ServerName(name) => write!(f, "not a valid TLS server name: {name}"),
            TlsError::Certificate(refused) => write!(f, "TLS handshake failed: {refused}"),
            TlsError::NotTls => {
                f.write_str("TLS handshake failed: the server answered in clear text, not TLS")
            }
            TlsError::Handshake(message) => write!(f, "TLS handshake failed: {message}"),
            TlsError::Socket(error) => write!(f, "{error}"),
            TlsError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TlsError {}

impl TlsError {
    /// What a failed client handshake's I/O error means: a certificate our
    /// verifier refused, a peer that does not speak TLS, or rustls' words.
    fn from_handshake(error: io::Error) -> TlsError {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls_error {
            Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
                match other.0.downcast_ref::<CertificateRefused>() {
                    Some(refused) => TlsError::Certificate(refused.clone()),
                    None => TlsError::Handshake(error.to_string()),
                }
            }
            // A record whose type or version byte is no TLS one: "220 ..."
            // read as a record header, for one.
            Some(rustls::Error::InvalidMessage(
                InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
            )) => TlsError::NotTls,
            _ => TlsError::Handshake(error.to_string()),
        }
    }
}

/// The SHA-256 fingerprint of a certificate (its DER), written as msmtp's
/// `tls_fingerprint` and `openssl x509 -fingerprint -sha256` write it:
/// `sha256:` and colon-separated upper-case hex pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(certificate: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
        let mut octets = [0; 32];
        octets.copy_from_slice(digest.as_ref());
        Fingerprint(octets)
    }

    /// `sha256:` and 64 hex digits, in either case, with a colon allowed
    /// between any two pairs (`AB:CD...`, `abcd...`).
    pub fn parse(value: &str) -> Result<Fingerprint, FingerprintError> {
        let error = |problem| FingerprintError {
            value: value.to_string(),
            problem,
        };
        let expected = || error(FingerprintProblem::NotSha256);
        let (algorithm, hex) = value.split_once(':').ok_or_else(expected)?;
        if !algorithm.eq_ignore_ascii_case("sha256") {
            return Err(expected());
        }
        let mut digits = Vec::with_capacity(64);
        for group in hex.split(':') {
            if group.is_empty() || group.len() % 2 != 0 {
                return Err(error(FingerprintProblem::MisplacedColon));
            }
            for c in group.chars() {
                let digit = c
                    .to_digit(16)
                    .ok_or_else(|| error(FingerprintProblem::NotHex(c)))?;
                digits.push(digit as u8);
            }
        }
        if digits.len() != 64 {
            return Err(error(FingerprintProblem::Digits(digits.len())));
        }
        let mut octets = [0; 32];
        for (octet, pair) in octets.iter_mut().zip(digits.chunks(2)) {
            *octet = pair[0] << 4 | pair[1];
        }
        Ok(Fingerprint(octets))
    }
}

/// Why a value is not a fingerprint ([`Fingerprint::parse`]); the config
/// says it at the `smarthost_fingerprint` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintError {
    /// The value as written.
    pub value: String,
    pub problem: FingerprintProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerprintProblem {
    /// Not `sha256:` and hex digits at all (md5:, no algorithm).
    NotSha256,
    /// A colon at the start or end, doubled, or within a pair.
    MisplacedColon,
    NotHex(char),
    /// This many hex digits, not 64.
    Digits(usize),
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = &self.value;
        match self.problem {
            FingerprintProblem::NotSha256 => {
                write!(f, "expected sha256: and 64 hex digits, found {value:?}")
            }
            FingerprintProblem::MisplacedColon => {
                write!(f, "{value:?}: a colon may only stand between two hex pairs")
            }
            FingerprintProblem::NotHex(c) => write!(f, "{value:?}: {c:?} is not a hex digit"),
            FingerprintProblem::Digits(n) => {
                write!(f, "{value:?}: {n} hex digits; a SHA-256 fingerprint has 64")
            }
        }
    }
}

impl std::error::Error for FingerprintError {}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, octet) in self.0.iter().enumerate() {
            let colon = if i == 0 { "" } else { ":" };
            write!(f, "{colon}{octet:02X}")?;
        }
        Ok(())
    }
}

/// A server certificate refused by our verifier, with what the owner
/// needs to mend it: the certificate's fingerprint, its dates or names
/// where they are the trouble, and our clock.
#[derive(Debug, Clone)]
pub struct CertificateRefused {
    /// The name the certificate was checked for.
    pub host: String,
    pub fingerprint: Fingerprint,
    pub problem: CertificateProblem,
    /// Our clock at the check.
    pub now: UnixTime,
    /// The server is the smarthost, which `smarthost_fingerprint` can pin.
    pub pinnable: bool,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// No trusted CA signed it.
    UnknownIssuer,
    /// A CA certificate (CA:TRUE) presented as the server's own, and not
    /// itself in tls_ca_file: what `openssl req -x509` makes.
    CaUsedAsEndEntity,
    Expired {
        not_after: UnixTime,
    },
    NotValidYet {
        not_before: UnixTime,
    },
    /// Valid for these names (its subjectAltName), not the host's.
    NameMismatch {
        presented: Vec<String>,
    },
    /// `smarthost_fingerprint` pins another certificate.
    PinMismatch {
        pin: Fingerprint,
    },
    /// Anything else, in rustls' words.
    Other(String),
}

impl CertificateProblem {
    /// What webpki's verdict (as rustls gives it) says.
    fn of(error: &rustls::Error) -> CertificateProblem {
        let rustls::Error::InvalidCertificate(error) = error else {
            return CertificateProblem::Other(error.to_string());
        };
        match error {
            CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
            CertificateError::ExpiredContext { not_after, .. } => CertificateProblem::Expired {
                not_after: *not_after,
            },
            CertificateError::NotValidYetContext { not_before, .. } => {
                CertificateProblem::NotValidYet {
                    not_before: *not_before,
                }
            }
            CertificateError::NotValidForNameContext { presented, .. } => {
                CertificateProblem::NameMismatch {
                    presented: presented.iter().map(|name| plain_name(name)).collect(),
                }
            }
            // rustls has no variant of its own for this one: it hands on
            // webpki's error value inside `Other`.
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                CertificateProblem::CaUsedAsEndEntity
            }
            other => CertificateProblem::Other(other.to_string()),
        }
    }

    /// A name mismatch with the names read from `certificate` itself (its
    /// subjectAltName), not from webpki's text of them, which is its
    /// `Debug` output and may change with any release; that text is kept
    /// only where the extension cannot be read.
    fn with_names_of(self, certificate: &[u8]) -> CertificateProblem {
        match self {
            CertificateProblem::NameMismatch { presented } => CertificateProblem::NameMismatch {
                presented: subject_alt_names(certificate).unwrap_or(presented),
            },
            other => other,
        }
    }
}

/// The DNS names and IP addresses of a certificate's subjectAltName (RFC
/// 5280 4.2.1.6), in their order; none without one. `None` where the DER
/// (X.690) cannot be read so far.
fn subject_alt_names(certificate: &[u8]) -> Option<Vec<String>> {
    // RFC 5280 4.1: Certificate ::= SEQUENCE { tbsCertificate, ... }; the
    // extensions are the [3] at the end of tbsCertificate.
    let (_, certificate, _) = der_item(certificate)?;
    let (_, mut fields, _) = der_item(certificate)?;
    let mut extensions = None;
    while !fields.is_empty() {
        let (tag, content, rest) = der_item(fields)?;
        if tag == 0xa3 {
            extensions = Some(der_item(content)?.1);
        }
        fields = rest;
    }
    let mut names = Vec::new();
    let Some(mut extensions) = extensions else {
        return Some(names);
    };
    // id-ce-subjectAltName, 2.5.29.17.
    const SAN: &[u8] = &[0x55, 0x1d, 0x11];
    while !extensions.is_empty() {
        let (_, extension, rest) = der_item(extensions)?;
        extensions = rest;
        let (_, id, mut rest) = der_item(extension)?;
        if id != SAN {
            continue;
        }
        let mut value = None;
        while !rest.is_empty() {
            // `critical BOOLEAN DEFAULT FALSE`, then the OCTET STRING.
            let (tag, content, more) = der_item(rest)?;
            if tag == 0x04 {
                value = Some(content);
            }
            rest = more;
        }
        let (_, mut general_names, _) = der_item(value?)?;
        while !general_names.is_empty() {
            let (tag, content, more) = der_item(general_names)?;
            general_names = more;
            match (tag, content.len()) {
                // [2] dNSName (IA5String), as webpki shows it.
                (0x82, _) => names.push(String::from_utf8_lossy(content).into_owned()),
                // [7] iPAddress: 4 or 16 octets (RFC 5280 4.2.1.6).
                (0x87, 4) => {
                    let octets: [u8; 4] = content.try_into().ok()?;
                    names.push(std::net::Ipv4Addr::from(octets).to_string());
                }
                (0x87, 16) => {
                    let octets: [u8; 16] = content.try_into().ok()?;
                    names.push(std::net::Ipv6Addr::from(octets).to_string());
                }
                // Other kinds of names name no host to connect to.
                _ => {}
            }
        }
    }
    Some(names)
}

/// One DER item (X.690 8.1.1): its tag, its contents and what follows it.
/// Tags of one octet and definite lengths, as DER has them for X.509.
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // X.690 8.1.3.5: the long form, its octet count first.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A name as webpki presents it (`DnsName("a.example")`,
/// `IpAddress(192.0.2.1)`), as the owner would write it: the names of a
/// refusal that has no certificate to read them from.
fn plain_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        });
    inner.unwrap_or(presented).to_string()
}

/// The most names of a certificate a refusal lists.
const MAX_NAMES_SHOWN: usize = 10;

impl fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CertificateRefused {
            host,
            fingerprint,
            problem,
            now,
            pinnable,
        } = self;
        let date = |time: &UnixTime| rfc5322_date(time.as_secs());
        let or_pin = if *pinnable {
            format!(", or pin it with smarthost_fingerprint = {fingerprint}")
        } else {
            String::new()
        };
        let the_certificate = format!("the certificate of {host} ({fingerprint})");
        // Where the sentence ends with the pin, the fingerprint is said there
        // only: a log line keeps 512 bytes of it.
        let unless_pinned = if *pinnable {
            format!("the certificate of {host}")
        } else {
            the_certificate.clone()
        };
        match problem {
            CertificateProblem::UnknownIssuer => write!(
                f,
                "{unless_pinned} is not signed by a CA tinymta trusts: add that CA, \
                 or the certificate itself, to tls_ca_file{or_pin}"
            ),
            CertificateProblem::CaUsedAsEndEntity => write!(
                f,
                "{unless_pinned} is a CA certificate (CA:TRUE, as `openssl req -x509` \
                 makes them) that is not in tls_ca_file: add this very certificate to \
                 tls_ca_file{or_pin}"
            ),
            CertificateProblem::Expired { not_after } => write!(
                f,
                "{the_certificate} expired on {}, and this box's clock says {}: if the \
                 clock is right, the server needs a new certificate; a box without a \
                 battery-backed clock or NTP may be far off, so check the clock first",
                date(not_after),
                date(now)
            ),
            CertificateProblem::NotValidYet { not_before } => write!(
                f,
                "{the_certificate} is valid only from {}, and this box's clock says {}: \
                 the clock is probably wrong (a box without a battery-backed clock or \
                 NTP starts in the past); set it, with NTP",
                date(not_before),
                date(now)
            ),
            CertificateProblem::NameMismatch { presented } if presented.is_empty() => write!(
                f,
                "{the_certificate} names no host in a subjectAltName (its CN is not \
                 read): it needs one for {host}"
            ),
            CertificateProblem::NameMismatch { presented } => {
                let mut names = presented[..presented.len().min(MAX_NAMES_SHOWN)].join(", ");
                if presented.len() > MAX_NAMES_SHOWN {
                    names.push_str(&format!(" and {} more", presented.len() - MAX_NAMES_SHOWN));
                }
                let fix = if *pinnable {
                    "set smarthost to one of them"
                } else {
                    "it is not valid for this host"
                };
                write!(f, "{the_certificate} is for {names}, not {host}: {fix}")
            }
            CertificateProblem::PinMismatch { pin } => write!(
                f,
                "the certificate of {host} is {fingerprint}, not smarthost_fingerprint \
                 {pin}: if the smarthost has a new certificate, set \
                 smarthost_fingerprint = {fingerprint}"
            ),
            CertificateProblem::Other(words) => {
                write!(f, "{the_certificate} was refused: {words}")
            }
        }
    }
}

impl std::error::Error for CertificateRefused {}

impl CertificateRefused {
    /// A refusal as the verifier hands it to rustls: an error of its own,
    /// which [`TlsError::from_handshake`] finds again.
    fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

/// ring's provider without ChaCha20-Poly1305, for size: its assembly is
/// 51 KB of the x86_64 binary (9 KB of C on MIPS). Every TLS 1.3 peer has
/// TLS_AES_128_GCM_SHA256 (RFC 8446 section 9.1: MUST implement), and TLS
/// 1.2 peers the ECDHE AES-GCM suites (RFC 5289). rustls' own
/// `default_provider()` would link every suite however its list is cut
/// afterwards, so the provider is put together here from ring's parts:
/// the key exchange groups and the signature algorithms are all of them.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, ALL_KX_GROUPS};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: ALL_KX_GROUPS.to_vec(),
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &RingParts,
        key_provider: &RingParts,
    })
}

/// The signature algorithms certificates and handshakes are checked with:
/// webpki's ring implementations of every scheme rustls knows, as rustls'
/// ring provider has them. For TLS 1.2 an ECDSA scheme does not fix the
/// curve (RFC 5246 section 7.4.1.4.1), hence two for each.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (
                SignatureScheme::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                &[alg::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA384,
                &[alg::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                &[alg::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    }
};

/// Random numbers and private keys for rustls, from ring as rustls' ring
/// provider takes them (that one's are private to it).
#[derive(Debug)]
struct RingParts;

impl rustls::crypto::SecureRandom for RingParts {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl rustls::crypto::KeyProvider for RingParts {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_supported_type(&key_der)
    }
}

/// The client configs delivery needs: one that checks certificates
/// (`mx_tls = require`), one for the smarthost (checked the same way, or
/// against `smarthost_fingerprint`), and one that only encrypts
/// (opportunistic STARTTLS to MX hosts, where most certificates would fail
/// a check and clear text is the alternative).
pub struct ClientConfigs {
    pub verified: Arc<ClientConfig>,
    pub smarthost: Arc<ClientConfig>,
    pub unverified: Arc<ClientConfig>,
}

impl ClientConfigs {
    /// `tls_verify = no` makes the "verified" configs accept any
    /// certificate too; a `pin` still holds for the smarthost.
    pub fn new(
        ca_file: Option<&Path>,
        verify: bool,
        pin: Option<Fingerprint>,
    ) -> Result<ClientConfigs, TlsError> {
        let unverified = client_config(CertificateCheck::Any);
        let (verified, smarthost) = if verify {
            let trust = Trust::load(ca_file)?;
            (
                client_config(trust.check(false)),
                client_config(trust.check(true)),
            )
        } else {
            (Arc::clone(&unverified), Arc::clone(&unverified))
        };
        let smarthost = match pin {
            Some(pin) => client_config(CertificateCheck::Pin(pin)),
            None => smarthost,
        };
        Ok(ClientConfigs {
            verified,
            smarthost,
            unverified,
        })
    }
}

/// What a verified config trusts: the public roots, and tls_ca_file.
struct Trust {
    roots: Arc<RootCertStore>,
    /// The certificates of tls_ca_file, for servers that present one of
    /// them as their own (self-signed).
    ca_file: Vec<CertificateDer<'static>>,
}

impl Trust {
    fn load(ca_file: Option<&Path>) -> Result<Trust, TlsError> {
        let Some(path) = ca_file else {
            return Ok(Trust::with(Vec::new()).expect("the public roots are valid"));
        };
        let ca_error = |message: String| TlsError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let listed: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if listed.is_empty() {
            return Err(ca_error("no certificate in file".to_string()));
        }
        Trust::with(listed).map_err(|e| ca_error(e.to_string()))
    }

    /// The public roots and the `listed` certificates of tls_ca_file.
    fn with(listed: Vec<CertificateDer<'static>>) -> Result<Trust, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &listed {
            roots.add(cert.clone())?;
        }
        Ok(Trust {
            roots: Arc::new(roots),
            ca_file: listed,
        })
    }

    /// How certificates are checked against this trust; `pinnable`: for
    /// the smarthost, whose errors suggest `smarthost_fingerprint`.
    fn check(&self, pinnable: bool) -> CertificateCheck {
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&self.roots), provider())
                .build()
                .expect("the public roots are never empty");
        CertificateCheck::Trust {
            webpki,
            ca_file: self.ca_file.clone(),
            pinnable,
        }
    }
}

/// How a server's certificate is checked. Handshake signatures are
/// checked in every case: the server holds the key of the certificate it
/// shows.
#[derive(Debug)]
enum CertificateCheck {
    /// Any certificate: encryption without authentication (opportunistic
    /// STARTTLS), and the explicit `tls_verify = no`.
    Any,
    /// Only the one with this fingerprint (`smarthost_fingerprint`, as
    /// msmtp's tls_fingerprint): issuer, name and dates are not asked.
    Pin(Fingerprint),
    /// webpki's check, and OpenSSL's acceptance of a self-signed server
    /// certificate that is itself in tls_ca_file: `openssl req -x509`
    /// marks every certificate it makes CA:TRUE, which webpki refuses as a
    /// server's own (CaUsedAsEndEntity) even where the owner listed it.
    Trust {
        webpki: Arc<WebPkiServerVerifier>,
        ca_file: Vec<CertificateDer<'static>>,
        /// For the smarthost: errors suggest `smarthost_fingerprint`.
        pinnable: bool,
    },
}

#[derive(Debug)]
struct SmtpVerifier {
    provider: Arc<CryptoProvider>,
    check: CertificateCheck,
}

/// A client config whose certificates are checked as `check` says.
fn client_config(check: CertificateCheck) -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = SmtpVerifier {
        provider: Arc::clone(&provider),
        check,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

impl ServerCertVerifier for SmtpVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = |problem: CertificateProblem, pinnable: bool| {
            CertificateRefused {
                host: server_name.to_str().into_owned(),
                fingerprint: Fingerprint::of(end_entity),
                problem,
                now,
                pinnable,
            }
            .into_rustls()
        };
        let (webpki, ca_file, pinnable) = match &self.check {
            CertificateCheck::Any => return Ok(ServerCertVerified::assertion()),
            CertificateCheck::Pin(pin) if *pin == Fingerprint::of(end_entity) => {
                return Ok(ServerCertVerified::assertion())
            }
            CertificateCheck::Pin(pin) => {
                return Err(refused(CertificateProblem::PinMismatch { pin: *pin }, true))
            }
            CertificateCheck::Trust {
                webpki,
                ca_file,
                pinnable,
            } => (webpki, ca_file, *pinnable),
        };
        let verdict =
            webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        let problem = match verdict {
            Ok(verified) => return Ok(verified),
            Err(error) => CertificateProblem::of(&error).with_names_of(end_entity),
        };
        if problem == CertificateProblem::CaUsedAsEndEntity
            && ca_file.iter().any(|listed| listed == end_entity)
        {
            // The owner trusts this very certificate. webpki has checked
            // its dates already: it looks at an end entity's validity
            // before its basic constraints (a unit test holds it to that).
            // The name is still checked, as OpenSSL's host check would.
            let parsed = ParsedCertificate::try_from(end_entity)?;
            return verify_server_name(&parsed, server_name)
                .map(|()| ServerCertVerified::assertion())
                .map_err(|error| {
                    refused(
                        CertificateProblem::of(&error).with_names_of(end_entity),
                        pinnable,
                    )
                });
        }
        Err(refused(problem, pinnable))
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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

/// A TLS session as the client sees it once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// The protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// The server's certificate, as a pin would name it.
    pub certificate: Option<Fingerprint>,
}

/// Runs the TLS handshake on `tcp` as a client of `host` (a name for SNI and
/// the certificate check, or an IP address).
pub fn connect(
    config: &Arc<ClientConfig>,
    host: &str,
    mut tcp: TcpStream,
) -> Result<(TlsStream, TlsSession), TlsError> {
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|_| TlsError::ServerName(host.to_string()))?;
    let mut conn = ClientConnection::new(Arc::clone(config), server_name)
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(TlsError::from_handshake)?;
    }
    let session = TlsSession {
        version: version_name(&conn),
        certificate: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|end_entity| Fingerprint::of(end_entity)),
    };
    Ok((StreamOwned::new(conn, tcp), session))
}

/// A connection that is plain TCP or TLS, read and written the same way:
/// `MaybeTls` on the client side, `MaybeTls<ServerConnection>` on the server's.
/// Its timeouts, its close and its upgrade to TLS are those of a
/// `stream::Connection` (stream.rs, above this module).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The provider is rustls' ring provider less ChaCha20-Poly1305: the
    /// same key exchange groups and signature algorithms, should a rustls
    /// update change those.
    #[test]
    fn the_provider_is_rings_without_chacha20() {
        let ours = provider();
        let rings = rustls::crypto::ring::default_provider();
        let suites = |p: &CryptoProvider| -> Vec<String> {
            p.cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        let without_chacha: Vec<String> = suites(&rings)
            .into_iter()
            .filter(|s| !s.contains("CHACHA20"))
            .collect();
        assert_eq!(suites(&ours), without_chacha);
        assert_eq!(without_chacha.len(), 6);
        let groups = |p: &CryptoProvider| -> Vec<String> {
            p.kx_groups
                .iter()
                .map(|g| format!("{:?}", g.name()))
                .collect()
        };
        assert_eq!(groups(&ours), groups(&rings));
        let (ours, rings) = (
            ours.signature_verification_algorithms,
            rings.signature_verification_algorithms,
        );
        assert_eq!(format!("{:?}", ours.all), format!("{:?}", rings.all));
        assert_eq!(
            format!("{:?}", ours.mapping),
            format!("{:?}", rings.mapping)
        );
    }

    /// Made with `openssl req -x509 -newkey ec -pkeyopt
    /// ec_paramgen_curve:prime256v1 -nodes -days 36500 -subj
    /// /CN=smarthost.test -addext subjectAltName=DNS:smarthost.test`:
    /// CA:TRUE, as that command makes every certificate; valid from
    /// 1796297376 (3 Dec 2026 11:29:36) to 4949897376 (9 Nov 2126).
    const SELF_SIGNED: &str = "-----BEGIN CERTIFICATE-----
MIIBozCCAUqgAwIBAgIUO5BxuH0k2YxZyG9u12jmrYScKl8wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOc21hcnRob3N0LnRlc3QwIBcNMjYxMjAzMTEyOTM2WhgPMjEy
NjExMDkxMTI5MzZaMBkxFzAVBgNVBAMMDnNtYXJ0aG9zdC50ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEuibweWCbKMu8pUuRAbycMU3ePq1MKwCmzlwolBpB
iMIvtb8vVxaMXuY/DZM59lKNwRoRT6m6YXB1a8JZD93TRKNuMGwwHQYDVR0OBBYE
FF3dIYLX1ZFWlLo0r15yjgFcO7+SMB8GA1UdIwQYMBaAFF3dIYLX1ZFWlLo0r15y
jgFcO7+SMA8GA1UdEwEB/wQFMAMBAf8wGQYDVR0RBBIwEIIOc21hcnRob3N0LnRl
c3QwCgYIKoZIzj0EAwIDRwAwRAIgOrLOnb7a6tdqP138YGWjWwOUnNgWLdVTE4Ff
Tf99L+MCIHt17KzB5Z8x1MlxhybZaUCIsxlaXUR73wnWYum+IkAk
-----END CERTIFICATE-----
";
    /// `openssl x509 -noout -fingerprint -sha256` of it.
    const SELF_SIGNED_SHA256: &str = "sha256:EC:86:4D:7A:10:E8:43:DC:C0:D5:28:68:45:2C:46:9A:\
                                      B4:56:AE:45:3B:D7:40:33:77:1A:97:FA:99:56:DE:42";
    const NOT_BEFORE: u64 = 1_796_297_376;
    const NOT_AFTER: u64 = 4_949_897_376;
    /// A moment in its validity.
    const VALID: u64 = NOT_BEFORE + 86400;

    fn self_signed() -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(SELF_SIGNED.as_bytes()).unwrap()
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    /// The refusal inside a verifier's error.
    fn refusal(error: rustls::Error) -> CertificateRefused {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
                .0
                .downcast_ref::<CertificateRefused>()
                .expect("our refusal")
                .clone(),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    fn verifier(check: CertificateCheck) -> SmtpVerifier {
        SmtpVerifier {
            provider: provider(),
            check,
        }
    }

    /// The test certificate checked by `verifier` for `host` at `now`.
    fn check(verifier: &SmtpVerifier, host: &str, now: u64) -> Result<(), CertificateRefused> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        verifier
            .verify_server_cert(&self_signed(), &[], &name, &[], at(now))
            .map(|_| ())
            .map_err(refusal)
    }

    #[test]
    fn fingerprints_as_openssl_writes_them() {
        let fingerprint = Fingerprint::of(&self_signed());
        assert_eq!(fingerprint.to_string(), SELF_SIGNED_SHA256);
        let hex = SELF_SIGNED_SHA256["sha256:".len()..].replace(':', "");
        let lower_without_colons = format!("SHA256:{}", hex.to_ascii_lowercase());
        // Colons between some pairs only.
        let mixed = format!("sha256:{}:{}", &hex[..10], &hex[10..]);
        for written in [SELF_SIGNED_SHA256, &lower_without_colons, &mixed] {
            assert_eq!(Fingerprint::parse(written), Ok(fingerprint), "{written}");
        }
        let bad = |value: &str| Fingerprint::parse(value).unwrap_err().to_string();
        assert_eq!(
            bad("md5:00"),
            "expected sha256: and 64 hex digits, found \"md5:00\""
        );
        assert_eq!(
            bad(&hex),
            format!("expected sha256: and 64 hex digits, found {hex:?}")
        );
        for odd in ["sha256:ABC", "sha256:AB::CD", "sha256:", "sha256:AB:"] {
            assert_eq!(
                bad(odd),
                format!("{odd:?}: a colon may only stand between two hex pairs")
            );
        }
        assert_eq!(
            bad("sha256:ABCG"),
            "\"sha256:ABCG\": 'G' is not a hex digit"
        );
        assert_eq!(
            bad("sha256:ABCD"),
            "\"sha256:ABCD\": 4 hex digits; a SHA-256 fingerprint has 64"
        );
        assert_eq!(
            bad(&format!("sha256:{hex}00")),
            format!("\"sha256:{hex}00\": 66 hex digits; a SHA-256 fingerprint has 64")
        );
    }

    #[test]
    fn a_self_signed_ca_certificate_in_tls_ca_file_is_trusted_for_its_name_and_dates() {
        let listed = verifier(Trust::with(vec![self_signed()]).unwrap().check(true));
        assert!(check(&listed, "smarthost.test", VALID).is_ok());
        // The name still counts, as OpenSSL's host check would have it.
        let wrong = check(&listed, "other.test", VALID).unwrap_err();
        assert_eq!(
            wrong.problem,
            CertificateProblem::NameMismatch {
                presented: vec!["smarthost.test".to_string()]
            }
        );
        // And the dates: webpki reads them before it sees CA:TRUE.
        let late = check(&listed, "smarthost.test", NOT_AFTER + 1).unwrap_err();
        assert_eq!(
            late.problem,
            CertificateProblem::Expired {
                not_after: at(NOT_AFTER)
            }
        );
        let early = check(&listed, "smarthost.test", NOT_BEFORE - 1).unwrap_err();
        assert_eq!(
            early.problem,
            CertificateProblem::NotValidYet {
                not_before: at(NOT_BEFORE)
            }
        );
        // Not listed, it is what webpki says it is.
        let unlisted = verifier(Trust::with(Vec::new()).unwrap().check(true));
        let refused = check(&unlisted, "smarthost.test", VALID).unwrap_err();
        assert_eq!(refused.problem, CertificateProblem::CaUsedAsEndEntity);
        assert_eq!(refused.fingerprint.to_string(), SELF_SIGNED_SHA256);
        assert_eq!(refused.host, "smarthost.test");
        assert!(refused.pinnable);
    }

    #[test]
    fn a_pin_accepts_its_certificate_and_nothing_else() {
        let fingerprint = Fingerprint::of(&self_signed());
        // Name and dates are not checked, as msmtp's tls_fingerprint.
        let pinned = verifier(CertificateCheck::Pin(fingerprint));
        assert!(check(&pinned, "any.test", NOT_AFTER + 1).is_ok());
        let other = Fingerprint([7; 32]);
        let refused = check(
            &verifier(CertificateCheck::Pin(other)),
            "smarthost.test",
            VALID,
        );
        assert_eq!(
            refused.unwrap_err().problem,
            CertificateProblem::PinMismatch { pin: other }
        );
        assert!(check(&verifier(CertificateCheck::Any), "any.test", 0).is_ok());
    }

    /// The words of a refusal of the test certificate for smarthost.test.
    fn refused(problem: CertificateProblem, pinnable: bool) -> String {
        CertificateRefused {
            host: "smarthost.test".to_string(),
            fingerprint: Fingerprint::of(&self_signed()),
            problem,
            now: at(1_000_000_000),
            pinnable,
        }
        .to_string()
    }

    #[test]
    fn each_refusal_in_words_with_its_fix() {
        let fp = SELF_SIGNED_SHA256;
        assert_eq!(
            refused(CertificateProblem::UnknownIssuer, true),
            format!(
                "the certificate of smarthost.test is not signed by a CA tinymta trusts: add \
                 that CA, or the certificate itself, to tls_ca_file, or pin it with \
                 smarthost_fingerprint = {fp}"
            )
        );
        // An MX host (mx_tls = require) cannot be pinned.
        assert_eq!(
            refused(CertificateProblem::UnknownIssuer, false),
            format!(
                "the certificate of smarthost.test ({fp}) is not signed by a CA tinymta \
                 trusts: add that CA, or the certificate itself, to tls_ca_file"
            )
        );
        assert_eq!(
            refused(CertificateProblem::CaUsedAsEndEntity, true),
            format!(
                "the certificate of smarthost.test is a CA certificate (CA:TRUE, as `openssl \
                 req -x509` makes them) that is not in tls_ca_file: add this very certificate \
                 to tls_ca_file, or pin it with smarthost_fingerprint = {fp}"
            )
        );
        assert_eq!(
            refused(CertificateProblem::CaUsedAsEndEntity, false),
            format!(
                "the certificate of smarthost.test ({fp}) is a CA certificate (CA:TRUE, as \
                 `openssl req -x509` makes them) that is not in tls_ca_file: add this very \
                 certificate to tls_ca_file"
            )
        );
        assert_eq!(
            refused(
                CertificateProblem::Expired {
                    not_after: at(999_000_000)
                },
                true
            ),
            format!(
                "the certificate of smarthost.test ({fp}) expired on Tue, 28 Aug 2001 \
                 12:00:00 +0000, and this box's clock says Sun, 9 Sep 2001 01:46:40 +0000: \
                 if the clock is right, the server needs a new certificate; a box without a \
                 battery-backed clock or NTP may be far off, so check the clock first"
            )
        );
        assert_eq!(
            refused(
                CertificateProblem::NotValidYet {
                    not_before: at(NOT_BEFORE)
                },
                true
            ),
            format!(
                "the certificate of smarthost.test ({fp}) is valid only from Thu, 3 Dec 2026 \
                 11:29:36 +0000, and this box's clock says Sun, 9 Sep 2001 01:46:40 +0000: \
                 the clock is probably wrong (a box without a battery-backed clock or NTP \
                 starts in the past); set it, with NTP"
            )
        );
        assert_eq!(
            refused(
                CertificateProblem::NameMismatch {
                    presented: vec!["mail.example.net".into(), "*.example.net".into()]
                },
                true
            ),
            format!(
                "the certificate of smarthost.test ({fp}) is for mail.example.net, \
                 *.example.net, not smarthost.test: set smarthost to one of them"
            )
        );
        let many = "abcdefghijkl"
            .chars()
            .map(|c| format!("{c}.test"))
            .collect();
        assert_eq!(
            refused(CertificateProblem::NameMismatch { presented: many }, false),
            format!(
                "the certificate of smarthost.test ({fp}) is for a.test, b.test, c.test, d.test, \
                 e.test, f.test, g.test, h.test, i.test, j.test and 2 more, not smarthost.test: \
                 it is not valid for this host"
            )
        );
        assert_eq!(
            refused(
                CertificateProblem::NameMismatch { presented: vec![] },
                false
            ),
            format!(
                "the certificate of smarthost.test ({fp}) names no host in a subjectAltName \
                 (its CN is not read): it needs one for smarthost.test"
            )
        );
        let pin = Fingerprint([0xAB; 32]);
        assert_eq!(
            refused(CertificateProblem::PinMismatch { pin }, true),
            format!(
                "the certificate of smarthost.test is {fp}, not smarthost_fingerprint {pin}: \
                 if the smarthost has a new certificate, set smarthost_fingerprint = {fp}"
            )
        );
        assert_eq!(
            refused(CertificateProblem::Other("BadSignature".into()), false),
            format!("the certificate of smarthost.test ({fp}) was refused: BadSignature")
        );
    }

    /// The text a user is told for a rustls verdict on the self-signed
    /// test certificate: from the error values, never their `Debug` text.
    fn told(error: CertificateError, pinnable: bool) -> String {
        let problem = CertificateProblem::of(&rustls::Error::InvalidCertificate(error))
            .with_names_of(&self_signed());
        refused(problem, pinnable)
    }

    #[test]
    fn an_unknown_issuer_is_told_from_the_error_value() {
        let fp = SELF_SIGNED_SHA256;
        assert_eq!(
            told(CertificateError::UnknownIssuer, false),
            format!(
                "the certificate of smarthost.test ({fp}) is not signed by a CA tinymta \
                 trusts: add that CA, or the certificate itself, to tls_ca_file"
            )
        );
    }

    #[test]
    fn a_ca_certificate_is_told_from_webpkis_error_value() {
        // As rustls hands it on: webpki's own value inside `Other`.
        let ca = CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )));
        assert_eq!(
            told(ca, true),
            format!(
                "the certificate of smarthost.test is a CA certificate (CA:TRUE, as `openssl \
                 req -x509` makes them) that is not in tls_ca_file: add this very certificate \
                 to tls_ca_file, or pin it with smarthost_fingerprint = {SELF_SIGNED_SHA256}"
            )
        );
        // Another webpki error in `Other` is no CA refusal, whatever its text.
        let other = CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::EndEntityUsedAsCa,
        )));
        assert!(matches!(
            CertificateProblem::of(&rustls::Error::InvalidCertificate(other)),
            CertificateProblem::Other(_)
        ));
    }

    #[test]
    fn dates_are_told_from_the_error_values() {
        let fp = SELF_SIGNED_SHA256;
        let expired = CertificateError::ExpiredContext {
            time: at(1_000_000_000),
            not_after: at(NOT_AFTER),
        };
        assert_eq!(
            told(expired, false),
            format!(
                "the certificate of smarthost.test ({fp}) expired on Sat, 9 Nov 2126 \
                 11:29:36 +0000, and this box's clock says Sun, 9 Sep 2001 01:46:40 +0000: if \
                 the clock is right, the server needs a new certificate; a box without a \
                 battery-backed clock or NTP may be far off, so check the clock first"
            )
        );
        let early = CertificateError::NotValidYetContext {
            time: at(1_000_000_000),
            not_before: at(NOT_BEFORE),
        };
        assert_eq!(
            told(early, true),
            format!(
                "the certificate of smarthost.test ({fp}) is valid only from Thu, 3 Dec 2026 \
                 11:29:36 +0000, and this box's clock says Sun, 9 Sep 2001 01:46:40 +0000: \
                 the clock is probably wrong (a box without a battery-backed clock or NTP \
                 starts in the past); set it, with NTP"
            )
        );
    }

    #[test]
    fn the_names_are_told_from_the_certificate_not_webpkis_text() {
        // Whatever webpki's text of the names, they are read from the
        // certificate's subjectAltName.
        let mismatch = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("smarthost.test").unwrap(),
            presented: vec!["Dns(smarthost.test) in a new form".into()],
        };
        assert_eq!(
            told(mismatch, true),
            format!(
                "the certificate of smarthost.test ({SELF_SIGNED_SHA256}) is for \
                 smarthost.test, not smarthost.test: set smarthost to one of them"
            )
        );
        // Without a certificate to read, webpki's text stands.
        assert_eq!(
            CertificateProblem::NameMismatch {
                presented: vec!["kept".into()]
            }
            .with_names_of(b"not DER"),
            CertificateProblem::NameMismatch {
                presented: vec!["kept".into()]
            }
        );
    }

    /// A DER item with a short length (X.690 8.1.3.4).
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 128);
        [&[tag, content.len() as u8][..], content].concat()
    }

    #[test]
    fn subject_alt_names_of_a_certificate() {
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let names = der(
            0x30,
            &[
                der(0x82, b"mail.example.net"),
                der(0x87, &[192, 0, 2, 1]),
                der(0x87, &v6),
                der(0x86, b"https://example.net/"),
                der(0x82, b"*.example.net"),
            ]
            .concat(),
        );
        let san = der(
            0x30,
            &[
                der(0x06, &[0x55, 0x1d, 0x11]),
                der(0x01, &[0xff]),
                der(0x04, &names),
            ]
            .concat(),
        );
        let key_usage = der(
            0x30,
            &[
                der(0x06, &[0x55, 0x1d, 0x0f]),
                der(0x04, &der(0x03, &[5, 0xa0])),
            ]
            .concat(),
        );
        let extensions = der(0xa3, &der(0x30, &[key_usage, san].concat()));
        let tbs = der(
            0x30,
            &[
                der(0xa0, &der(0x02, &[2])),
                der(0x02, &[1]),
                der(0x30, &[]),
                extensions,
            ]
            .concat(),
        );
        let certificate = der(
            0x30,
            &[tbs.clone(), der(0x30, &[]), der(0x03, &[0])].concat(),
        );
        assert_eq!(
            subject_alt_names(&certificate).unwrap(),
            [
                "mail.example.net",
                "192.0.2.1",
                "2001:db8::1",
                "*.example.net"
            ]
        );
        // No extensions: no names; cut short: not read.
        let bare = der(
            0x30,
            &der(0x30, &[der(0x02, &[1]), der(0x30, &[])].concat()),
        );
        assert_eq!(subject_alt_names(&bare), Some(Vec::new()));
        assert_eq!(
            subject_alt_names(&certificate[..certificate.len() - 1]),
            None
        );
        assert_eq!(
            subject_alt_names(&self_signed()).unwrap(),
            ["smarthost.test"]
        );
        // The long form of a length (X.690 8.1.3.5).
        assert_eq!(
            der_item(&[0x04, 0x81, 2, 7, 8, 9]),
            Some((0x04, &[7u8, 8][..], &[9u8][..]))
        );
        assert_eq!(der_item(&[0x04, 0x80]), None);
    }

    #[test]
    fn webpki_verdicts_as_problems() {
        let problem = |error: CertificateError| {
            CertificateProblem::of(&rustls::Error::InvalidCertificate(error))
        };
        assert_eq!(
            problem(CertificateError::UnknownIssuer),
            CertificateProblem::UnknownIssuer
        );
        assert_eq!(
            problem(CertificateError::ExpiredContext {
                time: at(2),
                not_after: at(1)
            }),
            CertificateProblem::Expired { not_after: at(1) }
        );
        assert_eq!(
            problem(CertificateError::NotValidYetContext {
                time: at(1),
                not_before: at(2)
            }),
            CertificateProblem::NotValidYet { not_before: at(2) }
        );
        assert_eq!(
            problem(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("a.test").unwrap(),
                presented: vec!["DnsName(\"b.test\")".into(), "IpAddress(192.0.2.1)".into()]
            }),
            CertificateProblem::NameMismatch {
                presented: vec!["b.test".into(), "192.0.2.1".into()]
            }
        );
        assert_eq!(
            problem(CertificateError::BadSignature),
            CertificateProblem::Other("BadSignature".into())
        );
        assert_eq!(plain_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn clear_text_read_as_tls_and_other_handshake_failures() {
        let io_error = |error: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, error);
        for invalid in [
            InvalidMessage::InvalidContentType,
            InvalidMessage::UnknownProtocolVersion,
        ] {
            let error = TlsError::from_handshake(io_error(rustls::Error::InvalidMessage(invalid)));
            assert!(matches!(error, TlsError::NotTls), "{error:?}");
        }
        let refusal = CertificateRefused {
            host: "smarthost.test".to_string(),
            fingerprint: Fingerprint([0; 32]),
            problem: CertificateProblem::UnknownIssuer,
            now: at(0),
            pinnable: false,
        };
        let error = TlsError::from_handshake(io_error(refusal.clone().into_rustls()));
        assert_eq!(
            error.to_string(),
            format!("TLS handshake failed: {refusal}")
        );
        let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed connection");
        assert_eq!(
            TlsError::from_handshake(closed).to_string(),
            "TLS handshake failed: peer closed connection"
        );
    }
}
