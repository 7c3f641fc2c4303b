//! The flat config file: `key = value` lines, `#` comments, blank lines.
//!
//! Every key is declared once, with its default and how its value is read, in
//! the `config_keys!` table below; README.md documents the same list, in the
//! same order. A list key given twice adds to the list; any other key given
//! twice is an error. Every error names `file:line` and the key, and the
//! process does not start.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod route;

use crate::line_error::{LineError, ValueError};
use crate::net::Cidr;
use crate::smtp::address::Mailbox;
use crate::tls::Fingerprint;
use route::PushRoute;

/// Where tinymta looks for its config when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tinymta.conf";

/// A listening address and what it speaks: `listen = ADDR:PORT [tls] [submission]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// TLS from the first byte (RFC 8314, port 465); else STARTTLS is offered
    /// when a certificate is configured.
    pub implicit_tls: bool,
    /// Message submission (RFC 6409, port 587): AUTH before MAIL, TLS before AUTH.
    pub submission: bool,
}

/// TLS towards the MX hosts of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MxTls {
    /// STARTTLS whenever offered, without checking the certificate (most MX
    /// certificates would fail a check); clear text if TLS fails.
    Opportunistic,
    /// STARTTLS with a certificate valid for the MX host name, or no delivery.
    Require,
}

/// TLS towards the smarthost: always required when not `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmarthostTls {
    /// Implicit TLS on port 465 (RFC 8314 3.3, the submissions port), else
    /// STARTTLS: what the port says, as mail clients do.
    Auto,
    /// STARTTLS (RFC 3207), required.
    StartTls,
    /// Implicit TLS from the first byte (RFC 8314), usually port 465.
    Tls,
    /// Clear text (and AUTH in clear text, if configured).
    None,
}

impl SmarthostTls {
    /// What this setting means for a smarthost on `port`: `Auto` is decided
    /// here, the others are themselves.
    pub fn for_port(self, port: u16) -> SmarthostTls {
        match self {
            SmarthostTls::Auto if port == 465 => SmarthostTls::Tls,
            SmarthostTls::Auto => SmarthostTls::StartTls,
            other => other,
        }
    }
}

/// A host and port: a name, or an IP address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
    /// Datagrams to `syslog_socket`, facility mail.
    Syslog,
}

/// Declares each key once: its doc comment, field, type, default and how its
/// value is read. From that come the [`Config`] struct, its `Default` and
/// `KEYS`, the table `Config::parse` reads each line through, in the order
/// README.md lists the keys.
///
/// How a value is read: `value(parse)` sets the field to `parse(value)?`;
/// `optional(parse)` sets it to `Some(parse(value)?)`; `list(add)` empties
/// the default at the key's first line, then `add(&mut list, value)` adds
/// each line's items. The `derived` fields are not keys: they are filled in
/// after parsing.
macro_rules! config_keys {
    (
        keys {
            $(
                $(#[$doc:meta])*
                $key:ident: $ty:ty = $default:expr => $how:ident($read:expr);
            )*
        }
        derived {
            $(
                $(#[$derived_doc:meta])*
                $derived:ident: $derived_ty:ty = $derived_default:expr;
            )*
        }
    ) => {
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[$doc])* pub $key: $ty, )*
            $( $(#[$derived_doc])* pub $derived: $derived_ty, )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    $( $key: $default, )*
                    $( $derived: $derived_default, )*
                }
            }
        }

        const KEYS: &[Key] = &[
            $(
                Key {
                    name: stringify!($key),
                    list: config_keys!(@is_list $how),
                    apply: |config, value, first_time| {
                        config_keys!(@apply $how, config.$key, $read, value, first_time)
                    },
                },
            )*
        ];
    };
    (@is_list list) => { true };
    (@is_list $how:ident) => { false };
    (@apply value, $field:expr, $read:expr, $value:ident, $first_time:ident) => {{
        let _ = $first_time;
        $field = ($read)($value)?;
        Ok(())
    }};
    (@apply optional, $field:expr, $read:expr, $value:ident, $first_time:ident) => {{
        let _ = $first_time;
        $field = Some(($read)($value)?);
        Ok(())
    }};
    (@apply list, $field:expr, $read:expr, $value:ident, $first_time:ident) => {{
        if $first_time {
            $field.clear();
        }
        ($read)(&mut $field, $value)
    }};
}

/// A key of the config file and how its value is applied.
struct Key {
    name: &'static str,
    /// May be given more than once: each line adds to the list.
    list: bool,
    /// Reads `value` into the config; `true` at the key's first line.
    apply: fn(&mut Config, &str, bool) -> Result<(), ValueError>,
}

config_keys! {
    keys {
        /// The name this server gives in its greeting, EHLO reply and Received: headers.
        hostname: String = system_hostname() => value(parse_hostname);
        listen: Vec<Listener> = vec![Listener {
            addr: SocketAddr::from(([127, 0, 0, 1], 25)),
            implicit_tls: false,
            submission: false,
        }] => list(add_listener);
        /// The users file for SMTP AUTH; AUTH is offered only with one.
        auth_users: Option<PathBuf> = None => optional(parse_path);
        /// Failed AUTH attempts from one client address, across its sessions,
        /// within `auth_failure_window`; then its AUTH gets 454 until the
        /// window has passed (Postfix's anvil, smtpd_client_auth_rate_limit).
        auth_failure_limit: usize = 10 => value(parse_count);
        /// The window starts at an address's first failure.
        auth_failure_window: Duration = Duration::from_secs(10 * 60) => value(parse_duration);
        /// Client addresses whose failures are remembered; when the table is
        /// full, the one whose window started first is forgotten.
        auth_failure_addresses: usize = 1000 => value(parse_count);
        /// PEM certificate chain and key for STARTTLS and implicit TLS.
        tls_cert: Option<PathBuf> = None => optional(parse_path);
        tls_key: Option<PathBuf> = None => optional(parse_path);
        spool_dir: PathBuf = PathBuf::from("/var/spool/tinymta") => value(parse_path);
        mailbox_dir: PathBuf = PathBuf::from("/var/mail") => value(parse_path);
        /// Lower-case domains whose recipients are delivered into `mailbox_dir`.
        local_domains: Vec<String> =
            vec![system_hostname(), "localhost".to_string()] => list(add_domains);
        /// Clients allowed to send to non-local recipients.
        relay_networks: Vec<Cidr> = vec![
            "127.0.0.0/8".parse().expect("valid literal"),
            "::1/128".parse().expect("valid literal"),
        ] => list(add_networks);
        max_connections: usize = 16 => value(parse_count);
        /// Of `max_connections`, the places only clients in relay_networks may
        /// take. Unless set: a quarter of max_connections (filled in after
        /// parsing, so the table's 0 is only a placeholder).
        reserved_connections: usize = 0 => value(parse_number);
        max_message_size: u64 = 10 * 1024 * 1024 => value(parse_size);
        max_recipients: usize = 100 => value(parse_count);
        /// Sessions at once from one client address (relay_networks are exempt).
        max_connections_per_ip: usize = 4 => value(parse_count);
        /// Error replies in one session before it is closed with 421.
        max_errors: usize = 10 => value(parse_count);
        /// The longest a whole session may last.
        max_session_time: Duration = Duration::from_secs(3600) => value(parse_duration);
        /// The largest header section of a message.
        max_header_size: u64 = 100 * 1024 => value(parse_size);
        /// Time for a whole command line (also against a client that sends one
        /// byte at a time).
        command_timeout: Duration = Duration::from_secs(5 * 60) => value(parse_duration);
        /// `command_timeout` for clients outside relay_networks while the
        /// server is under stress (see [`Config::outsider_connections`]).
        stress_command_timeout: Duration = Duration::from_secs(10) => value(parse_duration);
        data_timeout: Duration = Duration::from_secs(10 * 60) => value(parse_duration);
        /// How often the queue runner rescans the spool when nothing wakes it.
        queue_interval: Duration = Duration::from_secs(5 * 60) => value(parse_duration);
        /// Threads that deliver at the same time.
        delivery_workers: usize = 2 => value(parse_count);
        /// Every non-local recipient goes here when set; else to the domain's MX.
        smarthost: Option<HostPort> = None => optional(parse_host_port);
        /// The port of MX hosts.
        mx_port: u16 = 25 => value(parse_port);
        /// Whether mail may go to MX hosts or address literals on loopback
        /// addresses; off, such a destination loops back to this box.
        deliver_to_loopback: bool = false => value(parse_bool);
        /// The most addresses tried in one delivery attempt, over all MX hosts
        /// (or the smarthost's addresses), as Postfix's smtp_mx_address_limit.
        mx_address_limit: usize = 5 => value(parse_count);
        /// Nameservers (port 53 unless given); empty means those of `resolv_conf`.
        dns_servers: Vec<SocketAddr> = Vec::new() => list(add_dns_servers);
        /// Where nameservers are read from when `dns_servers` is not given.
        resolv_conf: PathBuf = PathBuf::from("/etc/resolv.conf") => value(parse_path);
        /// Names answered before DNS is asked, as the system resolver does.
        hosts_file: PathBuf = PathBuf::from("/etc/hosts") => value(parse_path);
        /// How long to wait for one DNS server's answer.
        dns_timeout: Duration = Duration::from_secs(5) => value(parse_duration);
        mx_tls: MxTls = MxTls::Opportunistic => value(parse_mx_tls);
        smarthost_tls: SmarthostTls = SmarthostTls::Auto => value(parse_smarthost_tls);
        /// PEM file of CA certificates trusted besides the public ones.
        tls_ca_file: Option<PathBuf> = None => optional(parse_path);
        /// `false` accepts any certificate: an explicit, logged opt-out.
        tls_verify: bool = true => value(parse_bool);
        /// Pins the smarthost's certificate (msmtp's tls_fingerprint): only
        /// the one with this SHA-256 fingerprint is accepted, chain and name
        /// not checked.
        smarthost_fingerprint: Option<Fingerprint> = None => optional(parse_fingerprint);
        smarthost_user: Option<String> = None => optional(parse_string);
        smarthost_password_file: Option<PathBuf> = None => optional(parse_path);
        /// How long to wait for a TCP connection to an upstream server.
        connect_timeout: Duration = Duration::from_secs(30) => value(parse_duration);
        /// How long an HTTP server (a push service) has for the whole
        /// response, from the request's first octet to the body's last.
        http_timeout: Duration = Duration::from_secs(30) => value(parse_duration);
        /// How long to wait for an upstream server's greeting and for its
        /// reply to EHLO or HELO, as Postfix's smtp_helo_timeout.
        smtp_helo_timeout: Duration = Duration::from_secs(60) => value(parse_duration);
        /// The first retry delay, doubled at each attempt up to `retry_max`.
        retry_min: Duration = Duration::from_secs(60) => value(parse_duration);
        retry_max: Duration = Duration::from_secs(3600) => value(parse_duration);
        /// A message not delivered after this long is bounced.
        queue_lifetime: Duration = Duration::from_secs(5 * 86400) => value(parse_duration);
        /// Where an alarm goes when mail to one destination has been stuck
        /// for `alarm_after` (see deliver::alarm); none: no alarms.
        alarm_to: Option<Mailbox> = None => optional(parse_address);
        /// How long a destination may defer without a single success
        /// before the alarm.
        alarm_after: Duration = Duration::from_secs(30 * 60) => value(parse_duration);
        /// At most one alarm per destination in this time.
        alarm_repeat: Duration = Duration::from_secs(86400) => value(parse_duration);
        /// Push routes: `route = PATTERN TRANSPORT key=value ...` (see push).
        route: Vec<PushRoute> = Vec::new() => list(add_route);
        /// The aliases file (aliases(5) format).
        aliases: Option<PathBuf> = None => optional(parse_path);
        /// The domain added to unqualified addresses (`root`) of local mail.
        qualify_domain: String = String::new() => value(parse_hostname);
        /// Local senders' domain, in the envelope and From:, becomes this one.
        masquerade_domain: Option<String> = None => optional(parse_hostname);
        /// The address mail leaves the box as (envelope sender and From:),
        /// on the way to the smarthost or MX hosts; see deliver::outgoing.
        send_as: Option<Mailbox> = None => optional(parse_address);
        /// The old name of `send_as`, which it became (see [`Config::parse`]).
        force_sender: Option<Mailbox> = None => optional(parse_address);
        /// The daemon writes its pid here (for `tinymta flush` and init scripts).
        pid_file: Option<PathBuf> = None => optional(parse_path);
        /// Started as root, tinymta binds its listeners and then becomes this user.
        user: String = "tinymta".to_string() => value(parse_string);
        /// The group of the set-group-id `tinymta` binary: it may put new
        /// messages into the spool's maildrop/ and do nothing else there.
        submit_group: String = "mail".to_string() => value(parse_string);
        /// On SIGTERM, how long sessions may go on before they are closed.
        shutdown_grace: Duration = Duration::from_secs(5) => value(parse_duration);
        log: LogTarget = LogTarget::Stderr => value(parse_log);
        /// Where `log = syslog` sends its datagrams.
        syslog_socket: PathBuf = PathBuf::from("/dev/log") => value(parse_path);
        log_level: log::LevelFilter = log::LevelFilter::Info => value(parse_log_level);
    }
    derived {
        /// Where each key was set, for errors found after parsing (file:line).
        key_lines: Vec<(&'static str, usize)> = Vec::new();
        /// The file the config was read from.
        file: PathBuf = PathBuf::new();
    }
}

/// A config problem, with the place it was found.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read at all.
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// A line is wrong: `file:line: key: message`.
    Line(LineError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read config: {}", file.display(), error)
            }
            ConfigError::Line(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses a config file. The files it names are read by
    /// their owners (tls, auth, aliases, the push transports), whose errors
    /// name the key's line through [`Config::error_at`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        let text = String::from_utf8_lossy(&text);
        Config::parse(&text, path)
    }

    /// Parses config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config = Config {
            file: file.to_path_buf(),
            ..Config::default()
        };
        let mut seen: Vec<&'static str> = Vec::new();
        // List keys start from their default and are replaced by the first
        // occurrence in the file, then extended by later ones.
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let error = |key: &str, message: String| {
                ConfigError::Line(LineError {
                    file: file.to_path_buf(),
                    line: line_no,
                    key: key.to_string(),
                    message,
                })
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(error("", format!("expected `key = value`, found {raw:?}")));
            };
            let key = key.trim();
            let value = value.trim();
            let Some(entry) = KEYS.iter().find(|entry| entry.name == key) else {
                return Err(error(key, "unknown key".to_string()));
            };
            let name = entry.name;
            let first_time = !seen.contains(&name);
            if !first_time && !entry.list {
                return Err(error(key, "given twice (it is not a list)".to_string()));
            }
            seen.push(name);
            config.key_lines.push((name, line_no));
            if value.is_empty() {
                return Err(error(key, "empty value".to_string()));
            }
            (entry.apply)(&mut config, value, first_time)
                .map_err(|problem| error(key, problem.to_string()))?;
        }
        if config.qualify_domain.is_empty() {
            config.qualify_domain = config.hostname.clone();
        }
        // RFC 5321 4.5.1: the server's own name is always one of its domains.
        if !seen.contains(&"local_domains") {
            config.local_domains = vec![config.hostname.clone(), "localhost".to_string()];
        }
        // An error between two keys names the one the file set (the first
        // when it set both), at its line.
        if config.retry_min > config.retry_max {
            return Err(if config.was_set("retry_min") {
                config.error_at("retry_min", "larger than retry_max")
            } else {
                config.error_at("retry_max", "smaller than retry_min")
            });
        }
        // force_sender set the envelope sender of sendmail's mail only, and
        // providers still refused the From: it left; send_as does what it
        // was for, for all mail that leaves. One behaviour, so the old name
        // is the new key (an old config keeps working); both is an error.
        if let Some(old) = config.force_sender.take() {
            if config.send_as.is_some() {
                return Err(
                    config.error_at("force_sender", "the old name of send_as: give send_as only")
                );
            }
            config.send_as = Some(old);
        }
        if config.smarthost_user.is_some() != config.smarthost_password_file.is_some() {
            let key = if config.smarthost_user.is_some() {
                "smarthost_user"
            } else {
                "smarthost_password_file"
            };
            return Err(config.error_at(
                key,
                "smarthost_user and smarthost_password_file go together",
            ));
        }
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            let key = if config.tls_cert.is_some() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(config.error_at(key, "tls_cert and tls_key go together"));
        }
        if config.tls_cert.is_none() && config.listen.iter().any(|l| l.implicit_tls) {
            return Err(config.error_at("listen", "a tls listener needs tls_cert and tls_key"));
        }
        if config.listen.is_empty() {
            return Err(config.error_at("listen", "no listener"));
        }
        // Clients outside relay_networks keep at least one place.
        if !config.was_set("reserved_connections") {
            config.reserved_connections = config.max_connections / 4;
        } else if config.reserved_connections >= config.max_connections {
            return Err(
                config.error_at("reserved_connections", "must be less than max_connections")
            );
        }
        Ok(config)
    }

    /// Whether the file set `key`.
    fn was_set(&self, key: &str) -> bool {
        self.key_lines.iter().any(|(k, _)| *k == key)
    }

    /// An error about `key`, at the line where it was (last) set; about the
    /// file as a whole (line 0) when the file did not set it.
    pub fn error_at(&self, key: &str, message: &str) -> ConfigError {
        let line = self
            .key_lines
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, line)| *line);
        ConfigError::Line(LineError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.to_string(),
        })
    }

    /// Whether `domain` (any case) is one this server delivers locally.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|local| local.eq_ignore_ascii_case(domain))
    }

    /// Whether `domain` (any case) is that of a push route: it counts as
    /// local for relay control, so that a LAN device may send to `nas@push`.
    pub fn is_push_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.route
            .iter()
            .any(|route| route.pattern.domain().eq_ignore_ascii_case(domain))
    }

    /// Sessions at once from clients outside relay_networks; it is also the
    /// number of running sessions from which the server is under stress:
    /// outsiders hold every place open to them, or the box is as busy
    /// anyway. Under stress, outsiders get `stress_command_timeout`.
    pub fn outsider_connections(&self) -> usize {
        self.max_connections - self.reserved_connections
    }

    /// Whether a client at `ip` may send to non-local recipients.
    pub fn may_relay(&self, ip: IpAddr) -> bool {
        self.relay_networks.iter().any(|net| net.contains(ip))
    }
}

/// A line without its comment: from a `#` at its start or after white
/// space (`max_errors = 5   # per session`) to its end. A `#` inside a
/// value (`/var/spool/mail#1`) is the value's.
fn strip_comment(line: &str) -> &str {
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        if c == '#' && previous.is_whitespace() {
            return &line[..at];
        }
        previous = c;
    }
    line
}

/// `a, b c` -> `a`, `b`, `c`: list values may be separated by commas or spaces.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|item| !item.is_empty())
}

/// The machine's own name, as the kernel has it; `localhost` when unknown.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|name| parse_hostname(name.trim()).ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A DNS name (RFC 1035 2.3.1, letters, digits, hyphens, dots) or an address
/// literal in brackets; stored lower-case without a trailing dot.
fn parse_hostname(value: &str) -> Result<String, ValueError> {
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    if name.starts_with('[') && name.ends_with(']') {
        return Ok(name);
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(name)
    } else {
        Err(ValueError::Invalid(format!(
            "not a valid host name: {value:?}"
        )))
    }
}

/// `ADDR:PORT [tls] [submission]`, IPv6 as `[::1]:25`.
fn parse_listener(value: &str) -> Result<Listener, ValueError> {
    let mut words = value.split_ascii_whitespace();
    let addr_text = words.next().unwrap_or_default();
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|_| ValueError::expected("ADDR:PORT (IPv6 as [ADDR]:PORT)", addr_text))?;
    let mut listener = Listener {
        addr,
        implicit_tls: false,
        submission: false,
    };
    for option in words {
        match option {
            "tls" => listener.implicit_tls = true,
            "submission" => listener.submission = true,
            _ => {
                return Err(ValueError::Invalid(format!(
                    "unknown listener option {option:?} (tls, submission)"
                )))
            }
        }
    }
    Ok(listener)
}

/// `HOST:PORT`, with an IPv6 literal in brackets: `[2001:db8::1]:587`.
fn parse_host_port(value: &str) -> Result<HostPort, ValueError> {
    let bad = || ValueError::expected("HOST:PORT (IPv6 as [ADDR]:PORT)", value);
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (addr, port) = rest.split_once("]:").ok_or_else(bad)?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        (addr.to_string(), port)
    } else {
        let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
        if host.parse::<IpAddr>().is_err() {
            parse_hostname(host)?;
        }
        (host.to_ascii_lowercase(), port)
    };
    Ok(HostPort {
        host,
        port: parse_port(port)?,
    })
}

fn parse_port(value: &str) -> Result<u16, ValueError> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(ValueError::expected("a port from 1 to 65535", value)),
        Ok(port) => Ok(port),
    }
}

/// `IP` (port 53) or `IP:PORT`, IPv6 with a port as `[ADDR]:PORT`.
fn parse_dns_server(value: &str) -> Result<SocketAddr, ValueError> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    value
        .parse::<SocketAddr>()
        .map_err(|_| ValueError::expected("IP or IP:PORT", value))
}

fn parse_bool(value: &str) -> Result<bool, ValueError> {
    match value {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(ValueError::expected("yes or no", value)),
    }
}

fn parse_path(value: &str) -> Result<PathBuf, ValueError> {
    Ok(PathBuf::from(value))
}

fn parse_string(value: &str) -> Result<String, ValueError> {
    Ok(value.to_string())
}

/// One `listen` line: one listener.
fn add_listener(listen: &mut Vec<Listener>, value: &str) -> Result<(), ValueError> {
    listen.push(parse_listener(value)?);
    Ok(())
}

fn add_domains(domains: &mut Vec<String>, value: &str) -> Result<(), ValueError> {
    for domain in split_list(value) {
        domains.push(parse_hostname(domain)?);
    }
    if domains.is_empty() {
        return Err(ValueError::Invalid("no domain given".to_string()));
    }
    Ok(())
}

/// One `route` line: one push route.
fn add_route(routes: &mut Vec<PushRoute>, value: &str) -> Result<(), ValueError> {
    routes.push(PushRoute::parse(value)?);
    Ok(())
}

fn add_networks(networks: &mut Vec<Cidr>, value: &str) -> Result<(), ValueError> {
    for net in split_list(value) {
        networks.push(net.parse()?);
    }
    Ok(())
}

fn add_dns_servers(servers: &mut Vec<SocketAddr>, value: &str) -> Result<(), ValueError> {
    for server in split_list(value) {
        servers.push(parse_dns_server(server)?);
    }
    Ok(())
}

fn parse_mx_tls(value: &str) -> Result<MxTls, ValueError> {
    match value {
        "opportunistic" => Ok(MxTls::Opportunistic),
        "require" => Ok(MxTls::Require),
        _ => Err(ValueError::expected("opportunistic or require", value)),
    }
}

fn parse_smarthost_tls(value: &str) -> Result<SmarthostTls, ValueError> {
    match value {
        "auto" => Ok(SmarthostTls::Auto),
        "starttls" => Ok(SmarthostTls::StartTls),
        "tls" => Ok(SmarthostTls::Tls),
        "none" => Ok(SmarthostTls::None),
        _ => Err(ValueError::expected("auto, starttls, tls or none", value)),
    }
}

/// `sha256:` and 64 hex digits (see tls::Fingerprint).
fn parse_fingerprint(value: &str) -> Result<Fingerprint, ValueError> {
    Fingerprint::parse(value).map_err(|e| ValueError::Invalid(e.to_string()))
}

/// A mailbox, `local@domain`.
fn parse_address(value: &str) -> Result<Mailbox, ValueError> {
    crate::smtp::address::parse_mailbox(value)
        .map_err(|e| ValueError::Invalid(format!("not an address: {e}")))
}

fn parse_log(value: &str) -> Result<LogTarget, ValueError> {
    if value == "stderr" {
        Ok(LogTarget::Stderr)
    } else if value == "syslog" {
        Ok(LogTarget::Syslog)
    } else if value.starts_with('/') || value.starts_with('.') {
        Ok(LogTarget::File(PathBuf::from(value)))
    } else {
        Err(ValueError::expected(
            "`stderr`, `syslog` or a file path (starting with / or .)",
            value,
        ))
    }
}

fn parse_log_level(value: &str) -> Result<log::LevelFilter, ValueError> {
    match value.to_ascii_lowercase().as_str() {
        "off" => Ok(log::LevelFilter::Off),
        "error" => Ok(log::LevelFilter::Error),
        "warn" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        _ => Err(ValueError::expected(
            "off, error, warn, info, debug or trace",
            value,
        )),
    }
}

/// A whole number, 0 included.
fn parse_number(value: &str) -> Result<usize, ValueError> {
    value
        .parse::<usize>()
        .map_err(|_| ValueError::expected("a whole number", value))
}

fn parse_count(value: &str) -> Result<usize, ValueError> {
    match value.parse::<usize>() {
        Ok(0) => Err(ValueError::Zero),
        Ok(n) => Ok(n),
        Err(_) => Err(ValueError::expected("a whole number", value)),
    }
}

/// Bytes, with an optional `k` (KiB) or `M` (MiB) suffix.
pub fn parse_size(value: &str) -> Result<u64, ValueError> {
    let (digits, unit) = match value.as_bytes().last() {
        Some(b'k') | Some(b'K') => (&value[..value.len() - 1], 1024),
        Some(b'M') => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .ok_or_else(|| ValueError::expected("a size such as 512k or 10M", value))
}

/// Seconds, with an optional `s`, `m`, `h` or `d` suffix.
pub fn parse_duration(value: &str) -> Result<Duration, ValueError> {
    let (digits, unit) = match value.as_bytes().last() {
        Some(b's') => (&value[..value.len() - 1], 1),
        Some(b'm') => (&value[..value.len() - 1], 60),
        Some(b'h') => (&value[..value.len() - 1], 3600),
        Some(b'd') => (&value[..value.len() - 1], 86400),
        _ => (value, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| ValueError::expected("a duration such as 30s, 5m, 1h or 2d", value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.conf")).map_err(|e| e.to_string())
    }

    #[test]
    fn force_sender_is_the_old_name_of_send_as() {
        let address = crate::smtp::address::parse_mailbox("box@example.com").unwrap();
        let config = parse("send_as = box@example.com").unwrap();
        assert_eq!(config.send_as, Some(address.clone()));
        let config = parse("force_sender = box@example.com").unwrap();
        assert_eq!((config.send_as, config.force_sender), (Some(address), None));
        assert_eq!(
            parse("send_as = a@example.com\nforce_sender = b@example.com").unwrap_err(),
            "t.conf:2: force_sender: the old name of send_as: give send_as only"
        );
        assert_eq!(
            parse("send_as = root").unwrap_err(),
            "t.conf:1: send_as: not an address: missing '@domain'"
        );
        assert_eq!(parse("").unwrap().send_as, None);
    }

    #[test]
    fn defaults_apply_when_the_file_is_empty() {
        let config = parse("# nothing\n\n").unwrap();
        assert_eq!(config.max_connections, 16);
        assert_eq!(config.max_message_size, 10 * 1024 * 1024);
        assert_eq!(config.max_recipients, 100);
        assert_eq!(config.command_timeout, Duration::from_secs(300));
        assert_eq!(config.data_timeout, Duration::from_secs(600));
        assert!(config.may_relay("127.0.0.1".parse().unwrap()));
        assert!(config.may_relay("::1".parse().unwrap()));
        assert!(!config.may_relay("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn keys_are_read() {
        let config = parse(
            "hostname = mx.Example.ORG.\nlisten = 127.0.0.1:2525\nlisten = [::1]:2525\n\
             local_domains = example.org, example.net\nlocal_domains = example.com\n\
             relay_networks = 10.0.0.0/8\nmax_message_size = 512k\ncommand_timeout = 2m\n\
             data_timeout = 1h\nlog = ./var/log\nlog_level = DEBUG\n",
        )
        .unwrap();
        assert_eq!(config.hostname, "mx.example.org");
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.listen[1].addr, "[::1]:2525".parse().unwrap());
        assert_eq!(
            config.local_domains,
            ["example.org", "example.net", "example.com"]
        );
        assert!(config.is_local_domain("EXAMPLE.com."));
        assert!(config.may_relay("10.1.2.3".parse().unwrap()));
        assert!(!config.may_relay("127.0.0.1".parse().unwrap()));
        assert_eq!(config.max_message_size, 512 * 1024);
        assert_eq!(config.command_timeout, Duration::from_secs(120));
        assert_eq!(config.data_timeout, Duration::from_secs(3600));
        assert_eq!(config.log, LogTarget::File("./var/log".into()));
        assert_eq!(config.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        assert_eq!(
            parse("\n\nbogus = 1\n").unwrap_err(),
            "t.conf:3: bogus: unknown key"
        );
        assert_eq!(
            parse("max_recipients = 5\nmax_recipients = 6\n").unwrap_err(),
            "t.conf:2: max_recipients: given twice (it is not a list)"
        );
        assert!(parse("max_message_size = 10G\n")
            .unwrap_err()
            .starts_with("t.conf:1: max_message_size: expected a size"));
        assert!(parse("command_timeout = 5x\n")
            .unwrap_err()
            .starts_with("t.conf:1: command_timeout: expected a duration"));
        assert!(parse("listen = localhost:25\n")
            .unwrap_err()
            .starts_with("t.conf:1: listen: expected ADDR:PORT"));
        assert!(parse("relay_networks = 10.0.0.0/33\n")
            .unwrap_err()
            .starts_with("t.conf:1: relay_networks:"));
        assert_eq!(
            parse("just words\n").unwrap_err(),
            "t.conf:1: expected `key = value`, found \"just words\""
        );
        assert_eq!(
            parse("hostname =\n").unwrap_err(),
            "t.conf:1: hostname: empty value"
        );
        assert_eq!(
            parse("max_connections = 0\n").unwrap_err(),
            "t.conf:1: max_connections: must be at least 1"
        );
    }

    #[test]
    fn reserved_places_and_stress_keys() {
        let config = parse("").unwrap();
        assert_eq!(config.reserved_connections, 4);
        assert_eq!(config.outsider_connections(), 12);
        assert_eq!(config.stress_command_timeout, Duration::from_secs(10));
        // Unless set, a quarter of max_connections.
        let config = parse("max_connections = 40\n").unwrap();
        assert_eq!(config.reserved_connections, 10);
        assert_eq!(
            parse("max_connections = 2\n").unwrap().reserved_connections,
            0
        );
        let config = parse("reserved_connections = 0\nstress_command_timeout = 3s\n").unwrap();
        assert_eq!(config.outsider_connections(), 16);
        assert_eq!(config.stress_command_timeout, Duration::from_secs(3));
        assert_eq!(
            parse("\nreserved_connections = 8\nmax_connections = 8\n").unwrap_err(),
            "t.conf:2: reserved_connections: must be less than max_connections"
        );
        assert_eq!(
            parse("reserved_connections = x\n").unwrap_err(),
            "t.conf:1: reserved_connections: expected a whole number, found \"x\""
        );
    }

    #[test]
    fn auth_failure_keys() {
        let config = parse("").unwrap();
        assert_eq!(config.auth_failure_limit, 10);
        assert_eq!(config.auth_failure_window, Duration::from_secs(600));
        assert_eq!(config.auth_failure_addresses, 1000);
        let config = parse(
            "auth_failure_limit = 3\nauth_failure_window = 1h\nauth_failure_addresses = 50\n",
        )
        .unwrap();
        assert_eq!(
            (
                config.auth_failure_limit,
                config.auth_failure_window,
                config.auth_failure_addresses
            ),
            (3, Duration::from_secs(3600), 50)
        );
        assert_eq!(
            parse("auth_failure_limit = 0\n").unwrap_err(),
            "t.conf:1: auth_failure_limit: must be at least 1"
        );
    }

    #[test]
    fn smarthost_fingerprint_pins_a_certificate() {
        assert_eq!(parse("").unwrap().smarthost_fingerprint, None);
        let hex = "ec864d7a10e843dcc0d52868452c469ab456ae453bd74033771a97fa9956de42";
        let config = parse(&format!("smarthost_fingerprint = sha256:{hex}\n")).unwrap();
        assert_eq!(
            config.smarthost_fingerprint.unwrap().to_string(),
            "sha256:EC:86:4D:7A:10:E8:43:DC:C0:D5:28:68:45:2C:46:9A:B4:56:AE:45:3B:D7:40:33:\
             77:1A:97:FA:99:56:DE:42"
        );
        assert_eq!(
            parse("\nsmarthost_fingerprint = sha1:00\n").unwrap_err(),
            "t.conf:2: smarthost_fingerprint: expected sha256: and 64 hex digits, found \"sha1:00\""
        );
        assert_eq!(
            parse("smarthost_fingerprint = sha256:EC:86\n").unwrap_err(),
            "t.conf:1: smarthost_fingerprint: \"sha256:EC:86\": 4 hex digits; a SHA-256 \
             fingerprint has 64"
        );
    }

    #[test]
    fn delivery_keys() {
        let config = parse(
            "smarthost = [2001:db8::1]:587\nmx_port = 2526\ndns_servers = 127.0.0.1:5353, ::1\n\
             dns_servers = 10.0.0.1\nmx_tls = require\nsmarthost_tls = tls\ntls_verify = no\n\
             smarthost_user = box\nsmarthost_password_file = /etc/pw\nretry_min = 10s\n",
        )
        .unwrap();
        let smarthost = config.smarthost.unwrap();
        assert_eq!(
            (smarthost.host.as_str(), smarthost.port),
            ("2001:db8::1", 587)
        );
        assert_eq!(smarthost.to_string(), "[2001:db8::1]:587");
        assert_eq!(config.mx_port, 2526);
        assert_eq!(
            config.dns_servers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "10.0.0.1:53".parse().unwrap()
            ]
        );
        assert_eq!(config.mx_tls, MxTls::Require);
        assert_eq!(config.smarthost_tls, SmarthostTls::Tls);
        // `auto`, the default: the port decides (RFC 8314 3.3).
        let auto = parse("smarthost = relay.example.net:465\n").unwrap();
        assert_eq!(auto.smarthost_tls, SmarthostTls::Auto);
        assert_eq!(auto.smarthost_tls.for_port(465), SmarthostTls::Tls);
        assert_eq!(auto.smarthost_tls.for_port(587), SmarthostTls::StartTls);
        assert_eq!(auto.smarthost_tls.for_port(25), SmarthostTls::StartTls);
        assert_eq!(SmarthostTls::None.for_port(465), SmarthostTls::None);
        assert_eq!(SmarthostTls::StartTls.for_port(465), SmarthostTls::StartTls);
        assert!(!config.tls_verify);
        assert_eq!(config.retry_min, Duration::from_secs(10));
        let relay = parse("smarthost = Relay.Example.net:465\n")
            .unwrap()
            .smarthost
            .unwrap();
        assert_eq!(relay.to_string(), "relay.example.net:465");
        assert!(parse("smarthost = relay.example.net\n").is_err());
        assert!(parse("smarthost = relay.example.net:0\n").is_err());
        assert!(parse("mx_tls = maybe\n").is_err());
        assert_eq!(
            parse("smarthost_user = a\n").unwrap_err(),
            "t.conf:1: smarthost_user: smarthost_user and smarthost_password_file go together"
        );
        assert_eq!(
            parse("\nsmarthost_password_file = /etc/pw\n").unwrap_err(),
            "t.conf:2: smarthost_password_file: smarthost_user and smarthost_password_file go together"
        );
        assert_eq!(
            parse("retry_min = 2h\n").unwrap_err(),
            "t.conf:1: retry_min: larger than retry_max"
        );
        assert_eq!(
            parse("retry_max = 1h\nretry_min = 2h\n").unwrap_err(),
            "t.conf:2: retry_min: larger than retry_max"
        );
        assert_eq!(
            parse("\nretry_max = 10s\n").unwrap_err(),
            "t.conf:2: retry_max: smaller than retry_min"
        );
    }

    #[test]
    fn listeners_and_tls_keys() {
        let config = parse(
            "tls_cert = /c.pem\ntls_key = /k.pem\nlisten = 127.0.0.1:25\n\
             listen = 127.0.0.1:465 tls\nlisten = [::1]:587 submission\n",
        )
        .unwrap();
        assert!(!config.listen[0].implicit_tls && !config.listen[0].submission);
        assert!(config.listen[1].implicit_tls);
        assert!(config.listen[2].submission);
        assert_eq!(
            parse("\nlisten = 127.0.0.1:465 tls\n").unwrap_err(),
            "t.conf:2: listen: a tls listener needs tls_cert and tls_key"
        );
        assert_eq!(
            parse("listen = 127.0.0.1:465 starttls\n").unwrap_err(),
            "t.conf:1: listen: unknown listener option \"starttls\" (tls, submission)"
        );
        assert_eq!(
            parse("tls_cert = /c.pem\n").unwrap_err(),
            "t.conf:1: tls_cert: tls_cert and tls_key go together"
        );
        assert_eq!(
            parse("\ntls_key = /k.pem\n").unwrap_err(),
            "t.conf:2: tls_key: tls_cert and tls_key go together"
        );
    }

    #[test]
    fn push_routes() {
        let config = parse(
            "route = nas@push ntfy url=https://ntfy.sh/box\n\
             route = *@phone.lan telegram token_file=/t chat_id=1\n",
        )
        .unwrap();
        assert_eq!(config.route.len(), 2);
        assert!(config.is_push_domain("PUSH"));
        assert!(config.is_push_domain("phone.lan."));
        assert!(!config.is_push_domain("example.com"));
        assert_eq!(
            parse("\nroute = nas@push telegram token_file=/t\n").unwrap_err(),
            "t.conf:2: route: telegram needs chat_id="
        );
    }

    #[test]
    fn keys_are_those_readme_lists_in_its_order() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("README.md has a Configuration section");
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|row| row.split(" |").next())
            .flat_map(|cell| cell.split(", "))
            .filter_map(|name| name.trim_start_matches('`').split('`').next())
            .collect();
        let keys: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
        assert_eq!(keys, documented);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10M"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999999999M").is_err());
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("m").is_err());
    }
}
