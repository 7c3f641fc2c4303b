//! A recipient's route, decided once: [`route`] says where a recipient's
//! mail goes, and `deliver::run_job` sends a job along it. The queue runner
//! and `tinymta test-send` call exactly these two, so that test-send shows
//! what the daemon would do.

use crate::config::Config;
use crate::smtp::address::Mailbox;

/// Where a recipient's mail goes: one variant per kind of destination.
/// Recipients with the same route share a job, and the messages of a job
/// share a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// A Maildir under `mailbox_dir`.
    Local,
    /// The configured `smarthost`.
    Smarthost,
    /// The MX hosts of this domain (lower case).
    Mx(String),
    /// The push route with this pattern (`nas@push`, `*@push`), as the
    /// config names it: a reload that reorders the routes keeps the job's.
    Push(String),
}

impl Route {
    /// The destination in words, for alarms (deliver::alarm) and their
    /// state file: `smarthost relay.example.net:587`, `domain example.org`,
    /// `local mailboxes`. It names the smarthost, so that another smarthost
    /// after a reload is another destination.
    pub fn describe(&self, config: &Config) -> String {
        match self {
            Route::Local => "local mailboxes".to_string(),
            Route::Smarthost => match &config.smarthost {
                Some(host) => format!("smarthost {host}"),
                None => "smarthost".to_string(),
            },
            Route::Mx(domain) => format!("domain {domain}"),
            Route::Push(pattern) => format!("push route {pattern}"),
        }
    }
}

/// The route of one recipient: a push route's recipients go to its
/// service (an exact address wins over `*@domain`: see config::route::find_route);
/// local domains are delivered here; the rest goes to the smarthost when
/// one is set, else to its domain's MX hosts. Aliases were expanded when
/// the message was queued, so this applies to their targets.
pub fn route(config: &Config, recipient: &Mailbox) -> Route {
    if let Some(push) = crate::config::route::find_route(&config.route, recipient) {
        Route::Push(push.pattern.to_string())
    } else if config.is_local_domain(&recipient.domain) {
        Route::Local
    } else if config.smarthost.is_some() {
        Route::Smarthost
    } else {
        Route::Mx(recipient.domain.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_mailbox;
    use std::path::Path;

    fn route_in(config: &str, address: &str) -> Route {
        let config = Config::parse(config, Path::new("t.conf")).unwrap();
        route(&config, &parse_mailbox(address).unwrap())
    }

    #[test]
    fn local_then_smarthost_then_mx() {
        let local = "hostname = box.lan\nlocal_domains = box.lan\n";
        assert_eq!(route_in(local, "root@BOX.lan"), Route::Local);
        assert_eq!(
            route_in(local, "ops@Example.ORG"),
            Route::Mx("example.org".into())
        );
        let relayed = format!("{local}smarthost = relay.example.net:587\n");
        assert_eq!(route_in(&relayed, "ops@example.org"), Route::Smarthost);
        assert_eq!(route_in(&relayed, "root@box.lan"), Route::Local);
        let config = Config::parse(&relayed, Path::new("t.conf")).unwrap();
        let described: Vec<String> = [
            Route::Local,
            Route::Smarthost,
            Route::Mx("a.test".into()),
            Route::Push("*@push".into()),
        ]
        .iter()
        .map(|r| r.describe(&config))
        .collect();
        assert_eq!(
            described,
            [
                "local mailboxes",
                "smarthost relay.example.net:587",
                "domain a.test",
                "push route *@push"
            ]
        );
        // A push route wins over the local domain it names an address of.
        let pushed = format!(
            "{relayed}route = root@box.lan ntfy url=https://ntfy.example/root\n\
             route = *@push ntfy url=https://ntfy.example/all\n"
        );
        assert_eq!(
            route_in(&pushed, "root@box.lan"),
            Route::Push("root@box.lan".into())
        );
        assert_eq!(route_in(&pushed, "nas@push"), Route::Push("*@push".into()));
        assert_eq!(route_in(&pushed, "admin@box.lan"), Route::Local);
    }
}
