//! Delivery over SMTP to the smarthost or to a domain's MX hosts: hosts in
//! order, each of their addresses in turn, until one takes the messages.
//! A connection failure or 421 moves on to the next host; replies to MAIL,
//! RCPT and DATA are outcomes for the recipients.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::client::{ClientOptions, HostError, OutgoingEnvelope, SmtpClient, TlsMode};
use super::outgoing::{self, SendAs};
use super::route::Route;
use super::{log_outcome, DeliverySettings, ItemResult, Job, JobItem, Outcome, Reporter};
use crate::config::{MxTls, SmarthostTls};
use crate::dns::resolver::DnsError;
use crate::log::Escaped;
use crate::smtp::status::Status;
use crate::spool::queue::Failure;
use crate::spool::Spool;

/// A job on the smarthost or MX route, with the settings it started with.
pub struct RemoteDelivery<'a> {
    pub settings: &'a DeliverySettings,
    pub spool: &'a Spool,
}

/// A server to try: its name (for TLS and logs) and address.
struct Target {
    name: String,
    addr: SocketAddr,
}

impl RemoteDelivery<'_> {
    /// Delivers a job's messages; `more` hands over further jobs for the same
    /// route while the connection is open.
    pub fn deliver(
        &self,
        job: Job,
        reporter: &mut Reporter,
        more: &mut dyn FnMut() -> Option<Job>,
    ) {
        let route = job.route.clone();
        let mut pending: std::collections::VecDeque<JobItem> = job.items.into();
        let targets = match self.targets(&route) {
            Ok(targets) => targets,
            // The smarthost's own name not resolving is this box's trouble
            // (DNS not up yet at boot, a typo to mend), never the message's:
            // its mail waits, whatever DNS said.
            Err(e) if route == Route::Smarthost => {
                let outcome = Outcome::Deferred(Failure::ours(
                    Status::new(4, 4, 3),
                    format_args!("smarthost: {e}"),
                ));
                return self.settle_all(pending, reporter, "-", &outcome);
            }
            Err(e) => {
                let outcome = match e {
                    // RFC 7505 4.1: 5.1.10, the recipient's domain has a null MX.
                    DnsError::NullMx(_) => Outcome::Failed(Failure::ours(Status::new(5, 1, 10), e)),
                    // RFC 3463 5.1.2: bad destination system address.
                    DnsError::Permanent(_) => {
                        Outcome::Failed(Failure::ours(Status::new(5, 1, 2), e))
                    }
                    // RFC 3463 4.4.3: directory server failure.
                    DnsError::Temporary(_) => {
                        Outcome::Deferred(Failure::ours(Status::new(4, 4, 3), e))
                    }
                };
                return self.settle_all(pending, reporter, "-", &outcome);
            }
        };
        let (looping, targets): (Vec<Target>, Vec<Target>) = targets
            .into_iter()
            .partition(|target| self.loops_back(target.addr, &route));
        for target in &looping {
            log::info!(
                "{}[{}]: not tried: that is this server",
                target.name,
                target.addr
            );
        }
        if targets.is_empty() && !looping.is_empty() {
            // RFC 3463 X.4.6: routing loop detected. For a domain, its
            // mail can never leave (Postfix's words); a smarthost that is
            // this server is a mistake in the config, which may be mended:
            // its mail waits.
            let outcome = match &route {
                Route::Smarthost => Outcome::Deferred(Failure::ours(
                    Status::new(4, 4, 6),
                    format_args!("smarthost {} loops back to myself", looping[0].name),
                )),
                Route::Mx(domain) => Outcome::Failed(Failure::ours(
                    Status::new(5, 4, 6),
                    format_args!("mail for {domain} loops back to myself"),
                )),
                Route::Local | Route::Push(_) => unreachable!("not sent over SMTP"),
            };
            return self.settle_all(pending, reporter, "-", &outcome);
        }
        // RFC 3463 4.4.1: no answer from host.
        let mut last_error = Failure::ours(Status::new(4, 4, 1), "no server could be reached");
        for target in &targets {
            let mut client = match self.connect(target, &route) {
                Ok(client) => {
                    log::debug!(
                        "connected to {} (TLS: {})",
                        client.relay,
                        self.tls_description(&client, target, &route)
                    );
                    client
                }
                Err(e) => {
                    log::info!(
                        "{}[{}]:{}: {}",
                        target.name,
                        target.addr.ip(),
                        target.addr.port(),
                        Escaped(&e.to_string())
                    );
                    last_error = Failure::ours(Status::new(4, 4, 1), &e);
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
                            log::info!("{}: {}", client.relay, Escaped(&e.to_string()));
                            // RFC 3463 4.4.2: bad connection.
                            last_error = Failure::ours(
                                Status::new(4, 4, 2),
                                format_args!("{} : {e}", client.relay),
                            );
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

    /// `TLSv1.3, certificate sha256:AB:... verified for relay.example.net`,
    /// for the logs; test-send shows it, so the owner can copy the
    /// fingerprint into `smarthost_fingerprint`.
    fn tls_description(&self, client: &SmtpClient, target: &Target, route: &Route) -> String {
        let Some(tls) = &client.tls else {
            return "no".to_string();
        };
        let certificate = match tls.certificate {
            Some(fingerprint) => format!("certificate {fingerprint}"),
            None => "no certificate".to_string(),
        };
        let config = &self.settings.config;
        let smarthost = *route == Route::Smarthost;
        let version = &tls.version;
        if smarthost && config.smarthost_fingerprint.is_some() {
            format!("{version}, {certificate} matches smarthost_fingerprint")
        } else if config.tls_verify && (smarthost || config.mx_tls == MxTls::Require) {
            format!("{version}, {certificate} verified for {}", target.name)
        } else {
            format!("{version}, {certificate} not checked")
        }
    }

    /// Whether sending to `addr` would be sending to this server itself.
    fn loops_back(&self, addr: SocketAddr, route: &Route) -> bool {
        let config = &self.settings.config;
        let listening: Vec<SocketAddr> = config.listen.iter().map(|l| l.addr).collect();
        let loopback_allowed = config.deliver_to_loopback || *route == Route::Smarthost;
        is_myself(addr, &listening, loopback_allowed, &|| {
            crate::sys::local_addresses().unwrap_or_default()
        })
    }

    /// The servers for a route, best first, at most `mx_address_limit`.
    fn targets(&self, route: &Route) -> Result<Vec<Target>, DnsError> {
        let config = &self.settings.config;
        let resolver = &self.settings.resolver;
        let mut targets = Vec::new();
        match route {
            Route::Smarthost => {
                let smarthost = config.smarthost.as_ref().expect("smarthost route");
                for ip in resolver.resolve_host(&smarthost.host)? {
                    targets.push(Target {
                        name: smarthost.host.clone(),
                        addr: SocketAddr::new(ip, smarthost.port),
                    });
                }
            }
            Route::Mx(domain) => {
                for host in resolver.resolve_mx(domain)? {
                    for ip in host.addresses {
                        targets.push(Target {
                            name: host.name.clone(),
                            addr: SocketAddr::new(ip, config.mx_port),
                        });
                    }
                }
            }
            Route::Local | Route::Push(_) => unreachable!("not sent over SMTP"),
        }
        // A domain with 20 MX hosts that accept and never speak would
        // otherwise hold a worker for 20 helo timeouts per attempt; the
        // best `mx_address_limit` addresses are tried, the rest not.
        if targets.len() > config.mx_address_limit {
            log::debug!(
                "{route:?}: trying {} of {} addresses (mx_address_limit)",
                config.mx_address_limit,
                targets.len()
            );
            targets.truncate(config.mx_address_limit);
        }
        Ok(targets)
    }

    /// Opens a session as the route's TLS policy says; an opportunistic
    /// STARTTLS that fails is retried in clear text, and that is logged.
    fn connect(&self, target: &Target, route: &Route) -> Result<SmtpClient, HostError> {
        let config = &self.settings.config;
        let tls = &self.settings.tls;
        let mut options = ClientOptions {
            helo_name: config.hostname.clone(),
            connect_timeout: config.connect_timeout,
            helo_timeout: config.smtp_helo_timeout,
            tls: TlsMode::None,
            auth: None,
            smarthost: *route == Route::Smarthost,
        };
        if *route == Route::Smarthost {
            options.tls = match config.smarthost_tls.for_port(target.addr.port()) {
                SmarthostTls::StartTls | SmarthostTls::Auto => {
                    TlsMode::Required(Arc::clone(&tls.smarthost))
                }
                SmarthostTls::Tls => TlsMode::Implicit(Arc::clone(&tls.smarthost)),
                SmarthostTls::None => TlsMode::None,
            };
            // Read at start-up, while the file could still be root's alone.
            if let (Some(user), Some(password)) =
                (&config.smarthost_user, &self.settings.smarthost_password)
            {
                options.auth = Some((user.clone(), password.clone()));
            }
            return SmtpClient::connect(target.addr, &target.name, &options);
        }
        options.tls = match config.mx_tls {
            MxTls::Opportunistic => TlsMode::Opportunistic(Arc::clone(&tls.unverified)),
            MxTls::Require => TlsMode::Required(Arc::clone(&tls.verified)),
        };
        match SmtpClient::connect(target.addr, &target.name, &options) {
            Err(e) if options.tls.falls_back_to_clear(&e) => {
                log::warn!(
                    "{}[{}]:{}: {}; sending in clear text",
                    target.name,
                    target.addr.ip(),
                    target.addr.port(),
                    Escaped(&e.to_string())
                );
                options.tls = TlsMode::None;
                SmtpClient::connect(target.addr, &target.name, &options)
            }
            other => other,
        }
    }

    /// Sends one message as it leaves the box (`send_as`, long lines:
    /// [`outgoing`]), read from the spool file once to plan it, once to
    /// count it for SIZE= when it changed, and once to send it.
    fn send(&self, client: &mut SmtpClient, item: &JobItem) -> Result<Vec<Outcome>, HostError> {
        let config = &self.settings.config;
        let local = |e: &dyn std::fmt::Display| HostError::Local(format!("{}: {e}", item.id));
        let open = || {
            self.spool
                .open_message(&item.id, item.size)
                .map_err(|e| local(&e))
        };
        let send_as = SendAs::from_config(config);
        let plan = outgoing::plan(
            open()?,
            config.max_header_size,
            send_as.as_ref(),
            &item.sender,
        )
        .map_err(|e| local(&e))?;
        let size = if plan.is_unchanged() {
            item.size
        } else {
            plan.size(open()?).map_err(|e| local(&e))?
        };
        let sender = match &send_as {
            Some(send_as) => send_as.envelope_sender(&item.sender),
            None => item.sender.clone(),
        };
        let recipients: Vec<String> = item.recipients.iter().map(|(_, r)| r.to_string()).collect();
        let envelope = OutgoingEnvelope {
            sender: &sender,
            recipients: &recipients,
            eight_bit: item.eight_bit,
            size,
        };
        client.send(&envelope, &mut plan.text(open()?))
    }

    /// Reports a message's outcomes, with the relay in each error text.
    fn settle(
        &self,
        item: &JobItem,
        outcomes: Vec<Outcome>,
        reporter: &mut Reporter,
        client: &SmtpClient,
    ) {
        let tls = client.tls.as_ref().map_or("no", |tls| tls.version.as_str());
        let outcomes = item
            .recipients
            .iter()
            .zip(outcomes)
            .map(|((index, rcpt), outcome)| {
                let said = |failure: Failure| Failure {
                    text: format!("{} said: {}", client.relay, failure.text),
                    ..failure
                };
                let outcome = match outcome {
                    Outcome::Delivered(text) => Outcome::Delivered(text),
                    Outcome::Deferred(failure) => Outcome::Deferred(said(failure)),
                    Outcome::Postponed(failure, wait) => Outcome::Postponed(said(failure), wait),
                    Outcome::Forwarded(text) => Outcome::Forwarded(text),
                    Outcome::Failed(failure) => Outcome::Failed(said(failure)),
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

/// Whether `addr` is this server: an address and port it listens on (or,
/// where it listens on all addresses, one of this box's `local` addresses
/// at that port), an unspecified address (0.0.0.0, ::, which connect to
/// this box), or a loopback address unless `loopback_allowed`.
fn is_myself(
    addr: SocketAddr,
    listening: &[SocketAddr],
    loopback_allowed: bool,
    local: &dyn Fn() -> Vec<IpAddr>,
) -> bool {
    let ip = addr.ip().to_canonical();
    if ip.is_unspecified() || (ip.is_loopback() && !loopback_allowed) {
        return true;
    }
    listening.iter().any(|listener| {
        listener.port() == addr.port()
            && (listener.ip().to_canonical() == ip
                || (listener.ip().is_unspecified() && (ip.is_loopback() || local().contains(&ip))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_this_server() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        let box_ip: IpAddr = "192.0.2.7".parse().unwrap();
        let local = || vec![box_ip];
        let on_25 = [addr("127.0.0.1:25"), addr("[::1]:25")];
        let myself = |target: &str, listening: &[SocketAddr], loopback| {
            is_myself(addr(target), listening, loopback, &local)
        };
        // Loopback, unless allowed; an allowed one is still this server
        // where it is an address and port it listens on.
        assert!(myself("127.0.0.5:2525", &on_25, false));
        assert!(!myself("127.0.0.5:2525", &on_25, true));
        assert!(myself("127.0.0.1:25", &on_25, true));
        assert!(myself("[::1]:25", &on_25, true));
        assert!(myself("[::ffff:127.0.0.1]:25", &on_25, true));
        assert!(myself("0.0.0.0:25", &on_25, true));
        assert!(myself("[::]:2525", &on_25, true));
        // Listening on all addresses: this box's own address at that port.
        let everywhere = [addr("0.0.0.0:25")];
        assert!(myself("192.0.2.7:25", &everywhere, true));
        assert!(!myself("192.0.2.7:587", &everywhere, true));
        assert!(!myself("192.0.2.8:25", &everywhere, true));
        assert!(!myself("192.0.2.7:25", &on_25, true));
    }
}
