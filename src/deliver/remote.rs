//! Delivery over SMTP to the smarthost or to a domain's MX hosts: hosts in
//! order, each of their addresses in turn, until one takes the messages.
//! A connection failure or 421 moves on to the next host; replies to MAIL,
//! RCPT and DATA are outcomes for the recipients.

use std::net::SocketAddr;
use std::sync::Arc;

use super::client::{ClientOptions, HostError, Outcome, Outgoing, SmtpClient, TlsMode};
use super::{log_outcome, Destination, ItemResult, Job, JobItem, Reporter};
use crate::config::{Config, MxTls, SmarthostTls};
use crate::dns::resolver::{DnsError, Resolver};
use crate::spool::Spool;
use crate::tls::ClientConfigs;

pub struct RemoteDelivery {
    pub config: Arc<Config>,
    pub spool: Arc<Spool>,
    pub resolver: Arc<Resolver>,
    pub tls: Arc<ClientConfigs>,
    pub smarthost_password: Option<String>,
}

/// A server to try: its name (for TLS and logs) and address.
struct Target {
    name: String,
    addr: SocketAddr,
}

impl RemoteDelivery {
    /// Delivers a job's messages; `more` hands over further jobs for the same
    /// destination while the connection is open.
    pub fn deliver(
        &self,
        job: Job,
        reporter: &mut Reporter,
        more: &mut dyn FnMut() -> Option<Job>,
    ) {
        let destination = job.destination.clone();
        let mut pending: std::collections::VecDeque<JobItem> = job.items.into();
        let targets = match self.targets(&destination) {
            Ok(targets) => targets,
            Err(DnsError::Permanent(text)) => {
                let code = if text.contains("null MX") {
                    "5.1.10"
                } else {
                    "5.1.2"
                };
                return self.settle_all(
                    pending,
                    reporter,
                    "-",
                    &Outcome::Failed(format!("{code} {text}")),
                );
            }
            Err(DnsError::Temporary(text)) => {
                return self.settle_all(
                    pending,
                    reporter,
                    "-",
                    &Outcome::Deferred(format!("4.4.3 {text}")),
                );
            }
        };
        let mut last_error = String::from("4.4.1 no server could be reached");
        for target in &targets {
            let mut client = match self.connect(target, &destination) {
                Ok(client) => {
                    log::debug!(
                        "connected to {} (TLS: {})",
                        client.relay,
                        self.tls_description(&client, target, &destination)
                    );
                    client
                }
                Err(e) => {
                    log::info!(
                        "{}[{}]:{}: {}",
                        target.name,
                        target.addr.ip(),
                        target.addr.port(),
                        e
                    );
                    last_error = format!("4.4.1 {e}");
                    continue;
                }
            };
            loop {
                while let Some(item) = pending.front() {
                    match self.send(&mut client, item) {
                        Ok(outcomes) => {
                            let item = pending.pop_front().expect("front exists");
                            self.settle(&item, outcomes, reporter, &client);
                        }
                        Err(e) => {
                            log::info!("{}: {}", client.relay, e);
                            last_error = format!("4.4.2 {} : {e}", client.relay);
                            break;
                        }
                    }
                }
                if !pending.is_empty() {
                    break;
                }
                // Reuse the connection for more mail to the same place.
                match more() {
                    Some(job) => {
                        reporter.took(&job);
                        pending.extend(job.items);
                    }
                    None => {
                        client.quit();
                        return;
                    }
                }
            }
        }
        self.settle_all(pending, reporter, "-", &Outcome::Deferred(last_error));
    }

    /// `TLSv1.3, certificate verified for relay.example.net`, for the logs.
    fn tls_description(
        &self,
        client: &SmtpClient,
        target: &Target,
        destination: &Destination,
    ) -> String {
        let Some(version) = &client.tls_version else {
            return "no".to_string();
        };
        let checked = self.config.tls_verify
            && (*destination == Destination::Smarthost || self.config.mx_tls == MxTls::Require);
        if checked {
            format!("{version}, certificate verified for {}", target.name)
        } else {
            format!("{version}, certificate not checked")
        }
    }

    /// The servers for a destination, best first.
    fn targets(&self, destination: &Destination) -> Result<Vec<Target>, DnsError> {
        let mut targets = Vec::new();
        match destination {
            Destination::Smarthost => {
                let smarthost = self.config.smarthost.as_ref().expect("smarthost route");
                for ip in self.resolver.resolve_host(&smarthost.host)? {
                    targets.push(Target {
                        name: smarthost.host.clone(),
                        addr: SocketAddr::new(ip, smarthost.port),
                    });
                }
            }
            Destination::Domain(domain) => {
                for host in self.resolver.resolve_mx(domain)? {
                    for ip in host.addresses {
                        targets.push(Target {
                            name: host.name.clone(),
                            addr: SocketAddr::new(ip, self.config.mx_port),
                        });
                    }
                }
            }
            Destination::Local => unreachable!("local mail is not sent over SMTP"),
        }
        Ok(targets)
    }

    /// Opens a session as the route's TLS policy says; an opportunistic
    /// STARTTLS that fails is retried in clear text, and that is logged.
    fn connect(&self, target: &Target, destination: &Destination) -> Result<SmtpClient, HostError> {
        let config = &self.config;
        let mut options = ClientOptions {
            helo_name: config.hostname.clone(),
            connect_timeout: config.connect_timeout,
            tls: TlsMode::None,
            auth: None,
        };
        if *destination == Destination::Smarthost {
            options.tls = match config.smarthost_tls {
                SmarthostTls::StartTls => TlsMode::Required(Arc::clone(&self.tls.verified)),
                SmarthostTls::Tls => TlsMode::Implicit(Arc::clone(&self.tls.verified)),
                SmarthostTls::None => TlsMode::None,
            };
            // Read at start-up, while the file could still be root's alone.
            if let (Some(user), Some(password)) = (&config.smarthost_user, &self.smarthost_password)
            {
                options.auth = Some((user.clone(), password.clone()));
            }
            return SmtpClient::connect(target.addr, &target.name, &options);
        }
        options.tls = match config.mx_tls {
            MxTls::Opportunistic => TlsMode::Opportunistic(Arc::clone(&self.tls.unverified)),
            MxTls::Require => TlsMode::Required(Arc::clone(&self.tls.verified)),
        };
        match SmtpClient::connect(target.addr, &target.name, &options) {
            Err(e) if options.tls.falls_back_to_clear(&e) => {
                log::warn!(
                    "{}[{}]:{}: {}; sending in clear text",
                    target.name,
                    target.addr.ip(),
                    target.addr.port(),
                    e
                );
                options.tls = TlsMode::None;
                SmtpClient::connect(target.addr, &target.name, &options)
            }
            other => other,
        }
    }

    fn send(&self, client: &mut SmtpClient, item: &JobItem) -> Result<Vec<Outcome>, HostError> {
        let mut text = self
            .spool
            .open_message(&item.id, item.size)
            .map_err(|e| HostError::Local(e.to_string()))?;
        let recipients: Vec<String> = item.recipients.iter().map(|(_, r)| r.to_string()).collect();
        let message = Outgoing {
            sender: &item.sender,
            recipients: &recipients,
            eight_bit: item.eight_bit,
            size: item.size,
        };
        client.send(&message, &mut text)
    }

    /// Reports a message's outcomes, with the relay in each error text.
    fn settle(
        &self,
        item: &JobItem,
        outcomes: Vec<Outcome>,
        reporter: &mut Reporter,
        client: &SmtpClient,
    ) {
        let tls = client.tls_version.as_deref().unwrap_or("no");
        let outcomes = item
            .recipients
            .iter()
            .zip(outcomes)
            .map(|((index, rcpt), outcome)| {
                let outcome = match outcome {
                    Outcome::Delivered(text) => Outcome::Delivered(text),
                    Outcome::Deferred(text) => {
                        Outcome::Deferred(format!("{} said: {text}", client.relay))
                    }
                    Outcome::Failed(text) => {
                        Outcome::Failed(format!("{} said: {text}", client.relay))
                    }
                };
                log_outcome(item, rcpt, &client.relay, Some(tls), &outcome);
                (*index, outcome)
            })
            .collect();
        reporter.report(ItemResult {
            id: item.id.clone(),
            outcomes,
        });
    }

    /// The same outcome for every recipient of every item (DNS failures,
    /// no server reachable).
    fn settle_all(
        &self,
        items: impl IntoIterator<Item = JobItem>,
        reporter: &mut Reporter,
        relay: &str,
        outcome: &Outcome,
    ) {
        for item in items {
            let outcomes = item
                .recipients
                .iter()
                .map(|(index, rcpt)| {
                    log_outcome(&item, rcpt, relay, Some("no"), outcome);
                    (*index, outcome.clone())
                })
                .collect();
            reporter.report(ItemResult {
                id: item.id.clone(),
                outcomes,
            });
        }
    }
}
