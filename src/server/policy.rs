//! The server's answers to what a session asks (smtp::policy), for one
//! client: relay_networks, the local and push domains, the aliases and the
//! users file, as the config and the files read with it say.

use std::net::IpAddr;
use std::sync::Arc;

use crate::aliases::{add_recipient, Aliases};
use crate::auth::Users;
use crate::config::route::find_route;
use crate::config::Config;
use crate::log::Escaped;
use crate::smtp::address::Mailbox;
use crate::smtp::policy::{AuthOutcome, Domain, Policy};
use crate::smtp::session::Settings;

/// What the session says and enforces itself, from the config.
pub fn session_settings(config: &Config) -> Settings {
    Settings {
        hostname: config.hostname.clone(),
        max_errors: config.max_errors,
        max_message_size: config.max_message_size,
        max_recipients: config.max_recipients,
    }
}

/// The policy of one session, built by the connection driver when the
/// client connects, from the settings in force then.
pub struct ServerPolicy {
    config: Arc<Config>,
    aliases: Option<Arc<Aliases>>,
    /// `None` also when the users file has no users: no AUTH then.
    users: Option<Arc<Users>>,
    client_ip: IpAddr,
    /// The client's address is in relay_networks: decided once.
    relay_network: bool,
}

impl ServerPolicy {
    pub fn new(
        config: Arc<Config>,
        aliases: Option<Arc<Aliases>>,
        users: Option<Arc<Users>>,
        client_ip: IpAddr,
    ) -> ServerPolicy {
        // An IPv4 client of an IPv6 socket is the IPv4 address.
        let client_ip = client_ip.to_canonical();
        ServerPolicy {
            relay_network: config.may_relay(client_ip),
            config,
            aliases,
            users: users.filter(|u| !u.is_empty()),
            client_ip,
        }
    }
}

impl Policy for ServerPolicy {
    fn client_may_relay(&self) -> bool {
        self.relay_network
    }

    fn domain(&self, domain: &str) -> Domain {
        if self.config.is_local_domain(domain) {
            Domain::Local
        } else if self.config.is_push_domain(domain) {
            Domain::Push
        } else {
            Domain::Other
        }
    }

    fn push_route_takes(&self, recipient: &Mailbox) -> bool {
        find_route(&self.config.route, recipient).is_some()
    }

    fn postmaster_domain(&self) -> &str {
        &self.config.local_domains[0]
    }

    fn add_recipient(&self, recipients: &mut Vec<Mailbox>, recipient: Mailbox) {
        add_recipient(&self.config, self.aliases.as_deref(), recipients, recipient);
    }

    fn auth_configured(&self) -> bool {
        self.users.is_some()
    }

    fn password_matches(&self, user: &str, password: &[u8]) -> bool {
        self.users
            .as_ref()
            .is_some_and(|users| users.check(user, password))
    }

    fn auth_ended(&self, outcome: AuthOutcome<'_>) {
        let ip = self.client_ip;
        match outcome {
            AuthOutcome::Accepted { user } => {
                log::info!("AUTH as {} from {ip}: ok", Escaped(user));
            }
            AuthOutcome::Failed {
                user,
                failures,
                limit,
            } => log::warn!(
                "AUTH as {} from {ip}: failed ({failures} of {limit})",
                Escaped(user)
            ),
            AuthOutcome::Refused { user: None } => {
                log::warn!("AUTH from {ip}: refused, too many failures from the address");
            }
            AuthOutcome::Refused { user: Some(user) } => log::warn!(
                "AUTH as {} from {ip}: refused, too many failures from the address",
                Escaped(user)
            ),
        }
    }
}
