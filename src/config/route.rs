//! `route = PATTERN TRANSPORT key=value ...` lines: which recipients go to
//! which push service, and how it is reached. Plain data, read with the
//! rest of the config; the push transports (deliver::push) read the secret
//! files a route names and send the notifications.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::line_error::ValueError;
use crate::smtp::address::{parse_mailbox, Mailbox};

/// The push services tinymta speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Ntfy,
    Gotify,
    Telegram,
    Discord,
    Slack,
    Pushover,
    Webhook,
}

impl Transport {
    const ALL: [Transport; 7] = [
        Transport::Ntfy,
        Transport::Gotify,
        Transport::Telegram,
        Transport::Discord,
        Transport::Slack,
        Transport::Pushover,
        Transport::Webhook,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Ntfy => "ntfy",
            Transport::Gotify => "gotify",
            Transport::Telegram => "telegram",
            Transport::Discord => "discord",
            Transport::Slack => "slack",
            Transport::Pushover => "pushover",
            Transport::Webhook => "webhook",
        }
    }

    /// The service's public endpoint, where there is one: a self-hosted
    /// service (ntfy topics, Gotify) and webhooks have none.
    fn default_url(self) -> Option<&'static str> {
        match self {
            Transport::Telegram => Some("https://api.telegram.org"),
            Transport::Pushover => Some("https://api.pushover.net"),
            _ => None,
        }
    }

    /// The keys a route of this transport must have besides its URL.
    fn required_keys(self) -> &'static [&'static str] {
        match self {
            Transport::Gotify => &["token_file"],
            Transport::Telegram => &["token_file", "chat_id"],
            Transport::Pushover => &["token_file", "user_key_file"],
            _ => &[],
        }
    }

    /// The keys a route of this transport may have.
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            Transport::Telegram => &["url", "token_file", "chat_id", "priority", "fallback"],
            Transport::Pushover => &["url", "token_file", "user_key_file", "priority", "fallback"],
            Transport::Discord | Transport::Slack => &["url", "url_file", "priority", "fallback"],
            Transport::Ntfy | Transport::Gotify | Transport::Webhook => {
                &["url", "url_file", "token_file", "priority", "fallback"]
            }
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How urgent a notification is, on ntfy's scale: 1 (min), 2 (low),
/// 3 (default), 4 (high), 5 (max); each service maps it to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    pub const MIN: Priority = Priority(1);
    pub const LOW: Priority = Priority(2);
    pub const DEFAULT: Priority = Priority(3);
    pub const HIGH: Priority = Priority(4);
    pub const MAX: Priority = Priority(5);

    /// 1 to 5.
    pub fn level(self) -> u8 {
        self.0
    }

    /// `1`..`5` or ntfy's names (`min`, `low`, `default`, `high`, `max`,
    /// `urgent`).
    fn parse(value: &str) -> Result<Priority, ValueError> {
        match value.to_ascii_lowercase().as_str() {
            "1" | "min" => Ok(Priority::MIN),
            "2" | "low" => Ok(Priority::LOW),
            "3" | "default" => Ok(Priority::DEFAULT),
            "4" | "high" => Ok(Priority::HIGH),
            "5" | "max" | "urgent" => Ok(Priority::MAX),
            _ => Err(ValueError::Invalid(format!(
                "priority: expected 1 to 5, min, low, default, high or max, found {value:?}"
            ))),
        }
    }
}

/// Which recipients a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// One address.
    Address(Mailbox),
    /// `*@domain`: every address at this (lower-case) domain.
    Domain(String),
}

impl Pattern {
    fn parse(value: &str) -> Result<Pattern, ValueError> {
        if let Some(domain) = value.strip_prefix("*@") {
            // The domain part of an address is checked as an address's.
            let probe = parse_mailbox(&format!("x@{domain}"))
                .map_err(|e| ValueError::Invalid(format!("{value:?} is no `*@domain`: {e}")))?;
            return Ok(Pattern::Domain(probe.domain.to_ascii_lowercase()));
        }
        parse_mailbox(value)
            .map(Pattern::Address)
            .map_err(|e| ValueError::Invalid(format!("{value:?} is no address or `*@domain`: {e}")))
    }

    pub fn domain(&self) -> &str {
        match self {
            Pattern::Address(mailbox) => &mailbox.domain,
            Pattern::Domain(domain) => domain,
        }
    }

    fn matches(&self, recipient: &Mailbox) -> bool {
        match self {
            Pattern::Address(mailbox) => {
                mailbox.local.eq_ignore_ascii_case(&recipient.local)
                    && mailbox.domain.eq_ignore_ascii_case(&recipient.domain)
            }
            Pattern::Domain(domain) => domain.eq_ignore_ascii_case(&recipient.domain),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Address(mailbox) => write!(f, "{mailbox}"),
            Pattern::Domain(domain) => write!(f, "*@{domain}"),
        }
    }
}

/// Where the endpoint of a route comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Given in the config (or the service's public default).
    Url(String),
    /// The first line of a file: a webhook URL is itself a secret.
    File(PathBuf),
}

/// One `route = PATTERN TRANSPORT key=value ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRoute {
    pub pattern: Pattern,
    pub transport: Transport,
    pub endpoint: Endpoint,
    /// The service's token (ntfy and webhook: a Bearer token; Gotify: the
    /// application token; Telegram: the bot token; Pushover: the
    /// application's API token).
    pub token_file: Option<PathBuf>,
    /// Pushover's user (or group) key.
    pub user_key_file: Option<PathBuf>,
    /// Telegram's chat: a number or `@channelname`.
    pub chat_id: Option<String>,
    /// The lowest priority its notifications get.
    pub priority: Priority,
    /// Where the message goes as mail when the service refuses it for good.
    pub fallback: Option<Mailbox>,
}

impl PushRoute {
    /// `PATTERN TRANSPORT key=value ...`; errors say what is wrong (the
    /// config adds `file:line: route:`).
    pub fn parse(value: &str) -> Result<PushRoute, ValueError> {
        let mut words = value.split_ascii_whitespace();
        let pattern = Pattern::parse(words.next().unwrap_or_default())?;
        let transport_name = words.next().ok_or_else(|| {
            ValueError::Invalid(
                "expected PATTERN TRANSPORT key=value ...: no transport".to_string(),
            )
        })?;
        let transport = Transport::ALL
            .into_iter()
            .find(|t| t.name() == transport_name)
            .ok_or_else(|| {
                let names: Vec<&str> = Transport::ALL.iter().map(|t| t.name()).collect();
                ValueError::Invalid(format!(
                    "unknown transport {transport_name:?} ({})",
                    names.join(", ")
                ))
            })?;
        let mut settings: Vec<(&str, &str)> = Vec::new();
        for word in words {
            let (key, setting) = word
                .split_once('=')
                .ok_or_else(|| ValueError::expected("key=value", word))?;
            if !transport.allowed_keys().contains(&key) {
                return Err(ValueError::Invalid(format!(
                    "{transport} takes no {key:?} (it takes {})",
                    transport.allowed_keys().join(", ")
                )));
            }
            if setting.is_empty() {
                return Err(ValueError::Invalid(format!("{key}: empty value")));
            }
            if settings.iter().any(|(k, _)| *k == key) {
                return Err(ValueError::Invalid(format!("{key} given twice")));
            }
            settings.push((key, setting));
        }
        let get = |key: &str| settings.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        for key in transport.required_keys() {
            if get(key).is_none() {
                return Err(ValueError::Invalid(format!("{transport} needs {key}=")));
            }
        }
        let endpoint = match (get("url"), get("url_file"), transport.default_url()) {
            (Some(_), Some(_), _) => {
                return Err(ValueError::Invalid(
                    "url and url_file: give one".to_string(),
                ))
            }
            (Some(url), None, _) => Endpoint::Url(check_url(url)?),
            (None, Some(file), _) => Endpoint::File(PathBuf::from(file)),
            (None, None, Some(url)) => Endpoint::Url(url.to_string()),
            (None, None, None) => {
                return Err(ValueError::Invalid(format!(
                    "{transport} needs url= or url_file="
                )))
            }
        };
        let fallback = get("fallback")
            .map(|address| {
                parse_mailbox(address)
                    .map_err(|e| ValueError::Invalid(format!("fallback: not an address: {e}")))
            })
            .transpose()?;
        Ok(PushRoute {
            pattern,
            transport,
            endpoint,
            token_file: get("token_file").map(PathBuf::from),
            user_key_file: get("user_key_file").map(PathBuf::from),
            chat_id: get("chat_id").map(str::to_string),
            priority: get("priority").map_or(Ok(Priority::MIN), Priority::parse)?,
            fallback,
        })
    }

    /// The files of its secrets, read at start-up.
    pub fn secret_files(&self) -> impl Iterator<Item = &Path> {
        let url_file = match &self.endpoint {
            Endpoint::File(file) => Some(file.as_path()),
            Endpoint::Url(_) => None,
        };
        url_file
            .into_iter()
            .chain(self.token_file.as_deref())
            .chain(self.user_key_file.as_deref())
    }
}

/// An endpoint from the config: an http or https URL.
fn check_url(url: &str) -> Result<String, ValueError> {
    crate::url::Url::parse(url).map_err(|e| ValueError::Invalid(format!("url: {e}")))?;
    Ok(url.to_string())
}

/// The route of a recipient, if a push route takes it: an exact address
/// wins over `*@domain`; among equals, the first line.
pub fn find_route<'a>(routes: &'a [PushRoute], recipient: &Mailbox) -> Option<&'a PushRoute> {
    let exact = routes
        .iter()
        .find(|r| matches!(r.pattern, Pattern::Address(_)) && r.pattern.matches(recipient));
    exact.or_else(|| {
        routes
            .iter()
            .find(|r| matches!(r.pattern, Pattern::Domain(_)) && r.pattern.matches(recipient))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(value: &str) -> PushRoute {
        PushRoute::parse(value).unwrap()
    }

    #[test]
    fn route_lines_are_read() {
        let ntfy = route("nas@push ntfy url=https://ntfy.sh/box-alerts priority=high");
        assert_eq!(ntfy.transport, Transport::Ntfy);
        assert_eq!(
            ntfy.endpoint,
            Endpoint::Url("https://ntfy.sh/box-alerts".into())
        );
        assert_eq!(ntfy.priority, Priority::HIGH);
        assert_eq!(ntfy.fallback, None);
        let telegram = route(
            "*@Phone telegram token_file=/etc/tinymta/bot chat_id=-100123 \
             fallback=owner@example.com",
        );
        assert_eq!(telegram.pattern, Pattern::Domain("phone".into()));
        assert_eq!(
            telegram.endpoint,
            Endpoint::Url("https://api.telegram.org".into())
        );
        assert_eq!(telegram.chat_id.as_deref(), Some("-100123"));
        assert_eq!(telegram.priority, Priority::MIN);
        assert_eq!(telegram.fallback.unwrap().to_string(), "owner@example.com");
        let discord = route("ops@push discord url_file=/etc/tinymta/discord");
        assert_eq!(
            discord.secret_files().collect::<Vec<_>>(),
            [Path::new("/etc/tinymta/discord")]
        );
    }

    #[test]
    fn bad_route_lines_say_what_is_wrong() {
        let error = |value: &str| PushRoute::parse(value).unwrap_err().to_string();
        assert_eq!(
            error("nas@push"),
            "expected PATTERN TRANSPORT key=value ...: no transport"
        );
        assert_eq!(
            error("nas@push sms"),
            "unknown transport \"sms\" (ntfy, gotify, telegram, discord, slack, pushover, webhook)"
        );
        assert_eq!(
            error("nas@push telegram token_file=/t"),
            "telegram needs chat_id="
        );
        assert_eq!(
            error("nas@push gotify url=https://g.lan"),
            "gotify needs token_file="
        );
        assert_eq!(
            error("nas@push pushover token_file=/t"),
            "pushover needs user_key_file="
        );
        assert_eq!(error("nas@push slack"), "slack needs url= or url_file=");
        assert_eq!(
            error("nas@push slack url=https://h/x url_file=/f"),
            "url and url_file: give one"
        );
        assert_eq!(
            error("nas@push slack url_file=/f chat_id=1"),
            "slack takes no \"chat_id\" (it takes url, url_file, priority, fallback)"
        );
        assert_eq!(
            error("nas@push ntfy url=https://h/x url=https://h/y"),
            "url given twice"
        );
        assert_eq!(
            error("nas@push ntfy url=https://h/x priority=11"),
            "priority: expected 1 to 5, min, low, default, high or max, found \"11\""
        );
        assert_eq!(
            error("nas@push ntfy url=https://h/x token"),
            "expected key=value, found \"token\""
        );
        assert!(error("nas@push ntfy url=ftp://h/x").starts_with("url: "));
        assert!(
            error("nas ntfy url=https://h/x").starts_with("\"nas\" is no address or `*@domain`")
        );
        assert!(error("nas@push ntfy url=https://h/x fallback=root")
            .starts_with("fallback: not an address"));
    }

    #[test]
    fn an_exact_address_wins_then_the_first_line() {
        let routes = vec![
            route("*@push ntfy url=https://h/all"),
            route("nas@push ntfy url=https://h/nas"),
            route("NAS@push ntfy url=https://h/second"),
        ];
        let url = |address: &str| {
            find_route(&routes, &parse_mailbox(address).unwrap()).map(|r| r.endpoint.clone())
        };
        assert_eq!(url("nas@PUSH"), Some(Endpoint::Url("https://h/nas".into())));
        assert_eq!(
            url("other@push"),
            Some(Endpoint::Url("https://h/all".into()))
        );
        assert_eq!(url("nas@example.com"), None);
    }
}
