//! The flat config file: `key = value` lines, `#` comments, blank lines.
//!
//! Every key and its default is declared once, in [`Config::default`] and the
//! `apply` match below; README.md documents the same list. A list key given twice
//! adds to the list; any other key given twice is an error. Every error names
//! `file:line` and the key, and the process does not start.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use crate::aliases::Aliases;
use crate::net::Cidr;

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
    /// STARTTLS (RFC 3207), required.
    StartTls,
    /// Implicit TLS from the first byte (RFC 8314), usually port 465.
    Tls,
    /// Clear text (and AUTH in clear text, if configured).
    None,
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

#[derive(Debug, Clone)]
pub struct Config {
    /// The name this server gives in its greeting, EHLO reply and Received: headers.
    pub hostname: String,
    pub listen: Vec<Listener>,
    pub spool_dir: PathBuf,
    pub mailbox_dir: PathBuf,
    /// Lower-case domains whose recipients are delivered into `mailbox_dir`.
    pub local_domains: Vec<String>,
    /// Clients allowed to send to non-local recipients.
    pub relay_networks: Vec<Cidr>,
    pub max_connections: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Sessions at once from one client address (relay_networks are exempt).
    pub max_connections_per_ip: usize,
    /// Error replies in one session before it is closed with 421.
    pub max_errors: usize,
    /// The longest a whole session may last.
    pub max_session_time: Duration,
    /// The largest header section of a message.
    pub max_header_size: u64,
    /// Time for a whole command line (also against a client that sends one
    /// byte at a time).
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// How often the queue runner rescans the spool when nothing wakes it.
    pub queue_interval: Duration,
    /// Threads that deliver at the same time.
    pub delivery_workers: usize,
    /// Every non-local recipient goes here when set; else to the domain's MX.
    pub smarthost: Option<HostPort>,
    /// The port of MX hosts.
    pub mx_port: u16,
    /// Nameservers (port 53 unless given); empty means those of `resolv_conf`.
    pub dns_servers: Vec<SocketAddr>,
    /// Where nameservers are read from when `dns_servers` is not given.
    pub resolv_conf: PathBuf,
    /// Names answered before DNS is asked, as the system resolver does.
    pub hosts_file: PathBuf,
    /// How long to wait for one DNS server's answer.
    pub dns_timeout: Duration,
    pub mx_tls: MxTls,
    pub smarthost_tls: SmarthostTls,
    /// PEM file of CA certificates trusted besides the public ones.
    pub tls_ca_file: Option<PathBuf>,
    /// `false` accepts any certificate: an explicit, logged opt-out.
    pub tls_verify: bool,
    pub smarthost_user: Option<String>,
    pub smarthost_password_file: Option<PathBuf>,
    /// How long to wait for a TCP connection to an upstream server.
    pub connect_timeout: Duration,
    /// The first retry delay, doubled at each attempt up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// A message not delivered after this long is bounced.
    pub queue_lifetime: Duration,
    /// The aliases file (aliases(5) format), and its table once loaded.
    pub aliases: Option<PathBuf>,
    pub alias_table: Option<Arc<Aliases>>,
    /// The domain added to unqualified addresses (`root`) of local mail.
    pub qualify_domain: String,
    /// Local senders' domain, in the envelope and From:, becomes this one.
    pub masquerade_domain: Option<String>,
    /// The envelope sender of all mail submitted on the box.
    pub force_sender: Option<String>,
    /// The daemon writes its pid here (for `tinymta flush` and init scripts).
    pub pid_file: Option<PathBuf>,
    /// Where `log = syslog` sends its datagrams.
    pub syslog_socket: PathBuf,
    /// Started as root, tinymta binds its listeners and then becomes this user.
    pub user: String,
    /// On SIGTERM, how long sessions may go on before they are closed.
    pub shutdown_grace: Duration,
    /// The users file for SMTP AUTH; AUTH is offered only with one.
    pub auth_users: Option<PathBuf>,
    /// PEM certificate chain and key for STARTTLS and implicit TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub log: LogTarget,
    pub log_level: log::LevelFilter,
    /// Where each key was set, for errors found after parsing (file:line).
    pub key_lines: Vec<(&'static str, usize)>,
    /// The file the config was read from.
    pub file: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        let hostname = system_hostname();
        Config {
            local_domains: vec![hostname.clone(), "localhost".to_string()],
            hostname,
            listen: vec![Listener {
                addr: SocketAddr::from(([127, 0, 0, 1], 25)),
                implicit_tls: false,
                submission: false,
            }],
            spool_dir: PathBuf::from("/var/spool/tinymta"),
            mailbox_dir: PathBuf::from("/var/mail"),
            relay_networks: vec![
                "127.0.0.0/8".parse().expect("valid literal"),
                "::1/128".parse().expect("valid literal"),
            ],
            max_connections: 16,
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_connections_per_ip: 4,
            max_errors: 10,
            max_session_time: Duration::from_secs(3600),
            max_header_size: 100 * 1024,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            queue_interval: Duration::from_secs(5 * 60),
            delivery_workers: 2,
            smarthost: None,
            mx_port: 25,
            dns_servers: Vec::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            hosts_file: PathBuf::from("/etc/hosts"),
            dns_timeout: Duration::from_secs(5),
            mx_tls: MxTls::Opportunistic,
            smarthost_tls: SmarthostTls::StartTls,
            tls_ca_file: None,
            tls_verify: true,
            smarthost_user: None,
            smarthost_password_file: None,
            connect_timeout: Duration::from_secs(30),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            queue_lifetime: Duration::from_secs(5 * 86400),
            aliases: None,
            alias_table: None,
            qualify_domain: String::new(),
            masquerade_domain: None,
            force_sender: None,
            pid_file: None,
            syslog_socket: PathBuf::from("/dev/log"),
            user: "tinymta".to_string(),
            shutdown_grace: Duration::from_secs(5),
            auth_users: None,
            tls_cert: None,
            tls_key: None,
            log: LogTarget::Stderr,
            log_level: log::LevelFilter::Info,
            key_lines: Vec::new(),
            file: PathBuf::new(),
        }
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
    Line {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, error } => {
                write!(f, "{}: cannot read config: {}", file.display(), error)
            }
            ConfigError::Line {
                file,
                line,
                key,
                message,
            } => {
                if key.is_empty() {
                    write!(f, "{}:{}: {}", file.display(), line, message)
                } else {
                    write!(f, "{}:{}: {}: {}", file.display(), line, key, message)
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        let text = String::from_utf8_lossy(&text);
        let config = Config::parse(&text, path)?;
        // A certificate that cannot be used is a config error, found now
        // rather than at the first STARTTLS.
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            crate::tls::server_config(cert, key)
                .map_err(|e| config.error_at("tls_cert", &e.to_string()))?;
        }
        if let Some(users) = &config.auth_users {
            crate::auth::Users::load(users).map_err(|e| config.error_at("auth_users", &e))?;
        }
        let mut config = config;
        if let Some(path) = &config.aliases {
            let table = Aliases::load(path).map_err(|e| config.error_at("aliases", &e))?;
            config.alias_table = Some(Arc::new(table));
        }
        Ok(config)
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
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |key: &str, message: String| ConfigError::Line {
                file: file.to_path_buf(),
                line: line_no,
                key: key.to_string(),
                message,
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(error("", format!("expected `key = value`, found {raw:?}")));
            };
            let key = key.trim();
            let value = value.trim();
            let Some(&name) = KEYS.iter().find(|&&name| name == key) else {
                return Err(error(key, "unknown key".to_string()));
            };
            let first_time = !seen.contains(&name);
            if !first_time && !LIST_KEYS.contains(&name) {
                return Err(error(key, "given twice (it is not a list)".to_string()));
            }
            seen.push(name);
            config.key_lines.push((name, line_no));
            if value.is_empty() {
                return Err(error(key, "empty value".to_string()));
            }
            config
                .apply(name, value, first_time)
                .map_err(|message| error(key, message))?;
        }
        if config.qualify_domain.is_empty() {
            config.qualify_domain = config.hostname.clone();
        }
        // RFC 5321 4.5.1: the server's own name is always one of its domains.
        if !seen.contains(&"local_domains") {
            config.local_domains = vec![config.hostname.clone(), "localhost".to_string()];
        }
        if config.retry_min > config.retry_max {
            return Err(ConfigError::Line {
                file: file.to_path_buf(),
                line: 0,
                key: "retry_min".to_string(),
                message: "larger than retry_max".to_string(),
            });
        }
        if config.smarthost_user.is_some() != config.smarthost_password_file.is_some() {
            return Err(ConfigError::Line {
                file: file.to_path_buf(),
                line: 0,
                key: "smarthost_user".to_string(),
                message: "smarthost_user and smarthost_password_file go together".to_string(),
            });
        }
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(config.error_at("tls_cert", "tls_cert and tls_key go together"));
        }
        if config.tls_cert.is_none() && config.listen.iter().any(|l| l.implicit_tls) {
            return Err(config.error_at("listen", "a tls listener needs tls_cert and tls_key"));
        }
        if config.listen.is_empty() {
            return Err(ConfigError::Line {
                file: file.to_path_buf(),
                line: 0,
                key: "listen".to_string(),
                message: "no listener".to_string(),
            });
        }
        Ok(config)
    }

    fn apply(&mut self, key: &str, value: &str, first_time: bool) -> Result<(), String> {
        match key {
            "hostname" => self.hostname = parse_hostname(value)?,
            "listen" => {
                if first_time {
                    self.listen.clear();
                }
                self.listen.push(parse_listener(value)?);
            }
            "spool_dir" => self.spool_dir = PathBuf::from(value),
            "mailbox_dir" => self.mailbox_dir = PathBuf::from(value),
            "local_domains" => {
                if first_time {
                    self.local_domains.clear();
                }
                for domain in split_list(value) {
                    self.local_domains.push(parse_hostname(domain)?);
                }
                if self.local_domains.is_empty() {
                    return Err("no domain given".to_string());
                }
            }
            "relay_networks" => {
                if first_time {
                    self.relay_networks.clear();
                }
                for net in split_list(value) {
                    self.relay_networks.push(net.parse()?);
                }
            }
            "max_connections" => self.max_connections = parse_count(value)?,
            "max_message_size" => self.max_message_size = parse_size(value)?,
            "max_recipients" => self.max_recipients = parse_count(value)?,
            "max_connections_per_ip" => self.max_connections_per_ip = parse_count(value)?,
            "max_errors" => self.max_errors = parse_count(value)?,
            "max_session_time" => self.max_session_time = parse_duration(value)?,
            "max_header_size" => self.max_header_size = parse_size(value)?,
            "command_timeout" => self.command_timeout = parse_duration(value)?,
            "data_timeout" => self.data_timeout = parse_duration(value)?,
            "queue_interval" => self.queue_interval = parse_duration(value)?,
            "delivery_workers" => self.delivery_workers = parse_count(value)?,
            "smarthost" => self.smarthost = Some(parse_host_port(value)?),
            "mx_port" => self.mx_port = parse_port(value)?,
            "dns_servers" => {
                if first_time {
                    self.dns_servers.clear();
                }
                for server in split_list(value) {
                    self.dns_servers.push(parse_dns_server(server)?);
                }
            }
            "resolv_conf" => self.resolv_conf = PathBuf::from(value),
            "hosts_file" => self.hosts_file = PathBuf::from(value),
            "dns_timeout" => self.dns_timeout = parse_duration(value)?,
            "mx_tls" => {
                self.mx_tls = match value {
                    "opportunistic" => MxTls::Opportunistic,
                    "require" => MxTls::Require,
                    _ => {
                        return Err(format!(
                            "expected opportunistic or require, found {value:?}"
                        ))
                    }
                }
            }
            "smarthost_tls" => {
                self.smarthost_tls = match value {
                    "starttls" => SmarthostTls::StartTls,
                    "tls" => SmarthostTls::Tls,
                    "none" => SmarthostTls::None,
                    _ => return Err(format!("expected starttls, tls or none, found {value:?}")),
                }
            }
            "tls_ca_file" => self.tls_ca_file = Some(PathBuf::from(value)),
            "tls_verify" => self.tls_verify = parse_bool(value)?,
            "smarthost_user" => self.smarthost_user = Some(value.to_string()),
            "smarthost_password_file" => self.smarthost_password_file = Some(PathBuf::from(value)),
            "connect_timeout" => self.connect_timeout = parse_duration(value)?,
            "retry_min" => self.retry_min = parse_duration(value)?,
            "retry_max" => self.retry_max = parse_duration(value)?,
            "queue_lifetime" => self.queue_lifetime = parse_duration(value)?,
            "auth_users" => self.auth_users = Some(PathBuf::from(value)),
            "aliases" => self.aliases = Some(PathBuf::from(value)),
            "qualify_domain" => self.qualify_domain = parse_hostname(value)?,
            "masquerade_domain" => self.masquerade_domain = Some(parse_hostname(value)?),
            "force_sender" => {
                crate::smtp::address::parse_mailbox(value)
                    .map_err(|e| format!("not an address: {e}"))?;
                self.force_sender = Some(value.to_string());
            }
            "pid_file" => self.pid_file = Some(PathBuf::from(value)),
            "syslog_socket" => self.syslog_socket = PathBuf::from(value),
            "user" => self.user = value.to_string(),
            "shutdown_grace" => self.shutdown_grace = parse_duration(value)?,
            "tls_cert" => self.tls_cert = Some(PathBuf::from(value)),
            "tls_key" => self.tls_key = Some(PathBuf::from(value)),
            "log" => {
                self.log = if value == "stderr" {
                    LogTarget::Stderr
                } else if value == "syslog" {
                    LogTarget::Syslog
                } else if value.starts_with('/') || value.starts_with('.') {
                    LogTarget::File(PathBuf::from(value))
                } else {
                    return Err(format!(
                        "expected `stderr`, `syslog` or a file path (starting with / or .), found {value:?}"
                    ));
                }
            }
            "log_level" => {
                self.log_level = match value.to_ascii_lowercase().as_str() {
                    "off" => log::LevelFilter::Off,
                    "error" => log::LevelFilter::Error,
                    "warn" => log::LevelFilter::Warn,
                    "info" => log::LevelFilter::Info,
                    "debug" => log::LevelFilter::Debug,
                    "trace" => log::LevelFilter::Trace,
                    _ => {
                        return Err(format!(
                            "expected off, error, warn, info, debug or trace, found {value:?}"
                        ))
                    }
                }
            }
            _ => unreachable!("every key in KEYS is handled"),
        }
        Ok(())
    }

    /// An error about `key`, at the line where it was (last) set.
    pub fn error_at(&self, key: &str, message: &str) -> ConfigError {
        let line = self
            .key_lines
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, line)| *line);
        ConfigError::Line {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// Whether `domain` (any case) is one this server delivers locally.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|local| local.eq_ignore_ascii_case(domain))
    }

    /// Whether a client at `ip` may send to non-local recipients.
    pub fn may_relay(&self, ip: IpAddr) -> bool {
        self.relay_networks.iter().any(|net| net.contains(ip))
    }
}

/// Every key, in the order README.md lists them.
const KEYS: &[&str] = &[
    "hostname",
    "listen",
    "spool_dir",
    "mailbox_dir",
    "local_domains",
    "relay_networks",
    "max_connections",
    "max_message_size",
    "max_recipients",
    "max_connections_per_ip",
    "max_errors",
    "max_session_time",
    "max_header_size",
    "command_timeout",
    "data_timeout",
    "queue_interval",
    "delivery_workers",
    "smarthost",
    "mx_port",
    "dns_servers",
    "resolv_conf",
    "hosts_file",
    "dns_timeout",
    "mx_tls",
    "smarthost_tls",
    "tls_ca_file",
    "tls_verify",
    "smarthost_user",
    "smarthost_password_file",
    "connect_timeout",
    "retry_min",
    "retry_max",
    "queue_lifetime",
    "tls_cert",
    "tls_key",
    "auth_users",
    "aliases",
    "qualify_domain",
    "masquerade_domain",
    "force_sender",
    "pid_file",
    "syslog_socket",
    "user",
    "shutdown_grace",
    "log",
    "log_level",
];

/// Keys that may be given more than once; each line adds to the list.
const LIST_KEYS: &[&str] = &["listen", "local_domains", "relay_networks", "dns_servers"];

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
fn parse_hostname(value: &str) -> Result<String, String> {
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
        Err(format!("not a valid host name: {value:?}"))
    }
}

/// `ADDR:PORT [tls] [submission]`, IPv6 as `[::1]:25`.
fn parse_listener(value: &str) -> Result<Listener, String> {
    let mut words = value.split_ascii_whitespace();
    let addr_text = words.next().unwrap_or_default();
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|_| format!("expected ADDR:PORT (IPv6 as [ADDR]:PORT), found {addr_text:?}"))?;
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
                return Err(format!(
                    "unknown listener option {option:?} (tls, submission)"
                ))
            }
        }
    }
    Ok(listener)
}

/// `HOST:PORT`, with an IPv6 literal in brackets: `[2001:db8::1]:587`.
fn parse_host_port(value: &str) -> Result<HostPort, String> {
    let bad = || format!("expected HOST:PORT (IPv6 as [ADDR]:PORT), found {value:?}");
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

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("expected a port from 1 to 65535, found {value:?}")),
        Ok(port) => Ok(port),
    }
}

/// `IP` (port 53) or `IP:PORT`, IPv6 with a port as `[ADDR]:PORT`.
fn parse_dns_server(value: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    value
        .parse::<SocketAddr>()
        .map_err(|_| format!("expected IP or IP:PORT, found {value:?}"))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("expected yes or no, found {value:?}")),
    }
}

fn parse_count(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number, found {value:?}")),
    }
}

/// Bytes, with an optional `k` (KiB) or `M` (MiB) suffix.
pub fn parse_size(value: &str) -> Result<u64, String> {
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
        .ok_or_else(|| format!("expected a size such as 512k or 10M, found {value:?}"))
}

/// Seconds, with an optional `s`, `m`, `h` or `d` suffix.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
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
        .ok_or_else(|| format!("expected a duration such as 30s, 5m, 1h or 2d, found {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.conf")).map_err(|e| e.to_string())
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
            "t.conf:0: smarthost_user: smarthost_user and smarthost_password_file go together"
        );
        assert_eq!(
            parse("retry_min = 2h\n").unwrap_err(),
            "t.conf:0: retry_min: larger than retry_max"
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
