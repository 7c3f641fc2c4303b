//! The delivering side: the queue runner, its jobs, and the two ways a
//! recipient is reached: a local Maildir, or SMTP to another server.

pub mod alarm;
pub mod bounce;
pub mod client;
pub mod local;
pub mod outgoing;
pub mod push;
pub mod remote;
pub mod route;
pub mod runner;

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::aliases::Aliases;
use crate::config::Config;
use crate::dns::resolver::Resolver;
use crate::http::HttpClient;
use crate::log::Escaped;
use crate::smtp::address::Mailbox;
use crate::smtp::status::Status;
use crate::spool::queue::Failure;
use crate::spool::waker::QueueNews;
use crate::spool::Spool;
use crate::time::unix_now;
use crate::tls::{ClientConfigs, TlsError};
use push::PushSecrets;
use route::Route;

/// Why delivery's settings could not be made from the config: a file it
/// names, read at start-up (while still root) and at reload. Each text
/// names the key or the file, as `tinymta -t` and the reload log say it.
#[derive(Debug)]
#[non_exhaustive]
pub enum SettingsError {
    /// `tls_ca_file` unreadable or without a certificate.
    TlsCaFile(TlsError),
    PasswordFile {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A secret file a push route names (token, user key, URL).
    SecretFile {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Its first line is blank.
    EmptySecret(PathBuf),
    /// A `url_file` whose line is no URL; the URL itself is the secret, so
    /// only the file is named.
    SecretNotUrl(PathBuf),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::TlsCaFile(error) => write!(f, "tls_ca_file: {error}"),
            SettingsError::PasswordFile { path, error } => {
                write!(f, "smarthost_password_file {}: {error}", path.display())
            }
            SettingsError::SecretFile { path, error } => {
                write!(f, "route: {}: {error}", path.display())
            }
            SettingsError::EmptySecret(path) => write!(f, "route: {}: empty", path.display()),
            SettingsError::SecretNotUrl(path) => {
                write!(f, "route: {}: not an http or https URL", path.display())
            }
        }
    }
}

impl std::error::Error for SettingsError {}

/// What delivery works with, replaced as a whole when SIGHUP re-reads the
/// config; a job keeps the settings it started with.
pub struct DeliverySettings {
    pub config: Arc<Config>,
    /// The table of the `aliases` file, for the mail delivery makes
    /// (bounces, alarms, push fallbacks).
    pub aliases: Option<Arc<Aliases>>,
    pub resolver: Arc<Resolver>,
    pub tls: Arc<ClientConfigs>,
    /// Read at start-up (while still root), so the file may stay root's.
    pub smarthost_password: Option<String>,
    /// The push routes' tokens, keys and secret URLs, read as the password is.
    pub push_secrets: PushSecrets,
}

impl DeliverySettings {
    /// What delivery works with; the smarthost password is read from its
    /// file (at start-up, while still root).
    pub fn load(
        config: &Config,
        aliases: Option<Arc<Aliases>>,
    ) -> Result<DeliverySettings, SettingsError> {
        let password = read_smarthost_password(config)?;
        let push_secrets = PushSecrets::read(&config.route)?;
        DeliverySettings::with_secrets(config, aliases, password, push_secrets)
    }

    /// What delivery works with, given the smarthost password and the push
    /// secrets: a reload after the privilege drop passes those read at
    /// start-up where the files are root's alone.
    pub fn with_secrets(
        config: &Config,
        aliases: Option<Arc<Aliases>>,
        smarthost_password: Option<String>,
        push_secrets: PushSecrets,
    ) -> Result<DeliverySettings, SettingsError> {
        let tls = ClientConfigs::new(
            config.tls_ca_file.as_deref(),
            config.tls_verify,
            config.smarthost_fingerprint,
        )
        .map_err(SettingsError::TlsCaFile)?;
        Ok(DeliverySettings {
            config: Arc::new(config.clone()),
            aliases,
            resolver: Arc::new(Resolver::load(
                &config.dns_servers,
                &config.resolv_conf,
                &config.hosts_file,
                config.dns_timeout,
            )),
            tls: Arc::new(tls),
            smarthost_password,
            push_secrets,
        })
    }
}

impl DeliverySettings {
    /// The HTTP client of push routes: delivery's resolver, its certificate
    /// check (`ClientConfigs::verified`: webpki-roots, `tls_ca_file`,
    /// `tls_verify`), `connect_timeout`, `http_timeout` for the response
    /// and `mx_address_limit` for a host's addresses.
    pub fn http_client(&self) -> HttpClient {
        HttpClient::new(
            Arc::clone(&self.resolver),
            Arc::clone(&self.tls.verified),
            self.config.connect_timeout,
            self.config.http_timeout,
            self.config.mx_address_limit,
        )
    }
}

/// Delivers a job along its route, reporting every recipient's outcome;
/// `more` hands over further jobs for the same route while a connection
/// is open.
pub fn run_job(
    settings: &DeliverySettings,
    spool: &Spool,
    job: Job,
    reporter: &mut Reporter,
    more: &mut dyn FnMut() -> Option<Job>,
) {
    match job.route {
        Route::Local => local::deliver_job(&settings.config, spool, job, reporter),
        Route::Smarthost | Route::Mx(_) => {
            remote::RemoteDelivery { settings, spool }.deliver(job, reporter, more)
        }
        Route::Push(ref pattern) => {
            let pattern = pattern.clone();
            push::job::deliver_job(settings, spool, &pattern, job, reporter)
        }
    }
}

/// The first line of `smarthost_password_file`, if the config names one.
pub fn read_smarthost_password(config: &Config) -> Result<Option<String>, SettingsError> {
    match &config.smarthost_password_file {
        None => Ok(None),
        Some(file) => std::fs::read_to_string(file)
            .map(|text| Some(text.lines().next().unwrap_or_default().to_string()))
            .map_err(|error| SettingsError::PasswordFile {
                path: file.clone(),
                error,
            }),
    }
}

/// One message's recipients for one route.
#[derive(Debug, Clone)]
pub struct JobItem {
    pub id: String,
    /// Empty for the null reverse-path.
    pub sender: String,
    pub eight_bit: bool,
    pub size: u64,
    /// Unix seconds of arrival, for the delay in logs.
    pub arrival: u64,
    /// (index in the envelope, address)
    pub recipients: Vec<(usize, Mailbox)>,
    /// No earlier attempt can have delivered these recipients: this
    /// process queued the message and has not tried them yet. Local
    /// delivery then need not look for an earlier copy among the messages
    /// of a mailbox (its `cur/` may hold thousands).
    pub first_attempt: bool,
}

/// Messages for one route, delivered by one worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub route: Route,
    pub items: Vec<JobItem>,
}

/// What became of one message's recipients in one job.
#[derive(Debug, Clone)]
pub struct ItemResult {
    pub id: String,
    pub outcomes: Vec<(usize, Outcome)>,
}

/// The outcome for one recipient of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; the text says where (the server's reply, the Maildir file).
    Delivered(String),
    /// Tried again later.
    Deferred(Failure),
    /// Tried again later, not before this wait: the server said so (a
    /// push service's `Retry-After`); the runner bounds it by `retry_max`.
    Postponed(Failure, std::time::Duration),
    /// Refused for good by a push service, and sent as mail to its
    /// route's fallback address instead: done, without a bounce. The text
    /// says why and where.
    Forwarded(String),
    /// Failed for good: the sender gets a bounce.
    Failed(Failure),
}

/// What wakes the queue runner's scheduler.
pub enum RunnerEvent {
    /// The queue's news: an entry this process queued, or a flush.
    News(QueueNews),
    /// A worker has outcomes for one message.
    Done(ItemResult),
}

/// Hands results to the runner. Every item a worker took is answered
/// exactly once: what is still unanswered when the reporter is dropped
/// (a panic in delivery) is reported as deferred, so nothing is stuck.
pub struct Reporter {
    results: Sender<RunnerEvent>,
    unanswered: Vec<(String, Vec<usize>)>,
}

impl Reporter {
    pub fn new(results: Sender<RunnerEvent>) -> Reporter {
        Reporter {
            results,
            unanswered: Vec::new(),
        }
    }

    /// Records that the worker now holds these items.
    pub fn took(&mut self, job: &Job) {
        for item in &job.items {
            let indexes = item.recipients.iter().map(|(i, _)| *i).collect();
            self.unanswered.push((item.id.clone(), indexes));
        }
    }

    pub fn report(&mut self, result: ItemResult) {
        if let Some(pos) = self.unanswered.iter().position(|(id, _)| *id == result.id) {
            self.unanswered.swap_remove(pos);
        }
        let _ = self.results.send(RunnerEvent::Done(result));
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        for (id, indexes) in self.unanswered.drain(..) {
            let outcomes = indexes
                .into_iter()
                .map(|i| {
                    (
                        i,
                        Outcome::Deferred(Failure::ours(
                            Status::new(4, 3, 0),
                            "internal error in delivery",
                        )),
                    )
                })
                .collect();
            let _ = self
                .results
                .send(RunnerEvent::Done(ItemResult { id, outcomes }));
        }
    }
}

/// One log line per recipient and attempt: queue id, recipient, relay (and
/// TLS version for SMTP), delay, outcome and the reply or reason. The relay
/// needs no escaping: a name from DNS comes as printable ASCII
/// (`dns::wire`), the others from the config.
pub fn log_outcome(
    item: &JobItem,
    rcpt: &Mailbox,
    relay: &str,
    tls: Option<&str>,
    outcome: &Outcome,
) {
    let delay = unix_now().saturating_sub(item.arrival);
    let (status, text) = match outcome {
        Outcome::Delivered(text) => ("sent", text),
        Outcome::Forwarded(text) => ("forwarded", text),
        Outcome::Deferred(failure) | Outcome::Postponed(failure, _) => ("deferred", &failure.text),
        Outcome::Failed(failure) => ("bounced", &failure.text),
    };
    let tls = tls.map(|t| format!(" tls={t}")).unwrap_or_default();
    log::info!(
        "{}: to=<{}> relay={relay}{tls} delay={delay}s status={status} ({})",
        item.id,
        Escaped(&rcpt.to_string()),
        Escaped(text)
    );
}
