//! Each push service's request, as its documentation gives it: a pure
//! function from a notification and a route's settings to the HTTP
//! request, so that the exact bytes are unit-tested here.
//!
//! - ntfy (docs.ntfy.sh/publish): `POST <topic URL>`, the text as the body,
//!   `Title`, `Priority` (1-5), `Tags`; a token as `Authorization: Bearer`.
//!   Non-ASCII titles as RFC 2047 encoded words, which ntfy decodes.
//!   Messages over 4096 bytes become an attachment: cut to 4096 bytes.
//! - Gotify (gotify.net/api-docs, `POST /message`): JSON `title`, `message`,
//!   `priority` (0-10), the application token in `X-Gotify-Key`.
//! - Telegram Bot API (`POST /bot<token>/sendMessage`): JSON `chat_id`,
//!   `text` (1-4096 characters, counted in UTF-16), `disable_notification`.
//! - Discord webhooks (`POST <webhook URL>`): JSON `content` (up to 2000
//!   characters); `allowed_mentions` with no `parse` so that no mail can
//!   ping `@everyone`.
//! - Slack incoming webhooks: JSON `text`, with `&`, `<` and `>` escaped as
//!   Slack's formatting requires; Slack advises at most 4000 characters.
//! - Pushover (`POST /1/messages.json`): form fields `token`, `user`,
//!   `title` (250 characters), `message` (1024 characters), `priority`
//!   (-2 to 2).
//! - webhook: `POST <URL>`, a JSON object with `from`, `to`, `subject`,
//!   `date`, `message_id`, `priority` (1-5) and `text`.

use std::fmt::{self, Write as _};

use super::notification::{fit, Limit, Notification};
use super::PushSecrets;
use crate::config::route::{Endpoint, Priority, PushRoute, Transport};
use crate::http::Request;
use crate::smtp::address::Mailbox;
use crate::url::{Url, UrlError};

/// A service without a documented limit still gets a bounded text.
const UNDOCUMENTED_LIMIT: Limit = Limit::Bytes(64 * 1024);

/// What keeps a route's request from being made; the push job defers the
/// message with it (4.3.5: the configuration may be mended).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// A secret file the route names, not among those read at start-up.
    NotRead(std::path::PathBuf),
    /// The route's URL, or the one its `url_file` holds.
    Url(UrlError),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotRead(file) => write!(f, "{} was not read at start-up", file.display()),
            RequestError::Url(error) => write!(f, "url: {error}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// A route's request for one message to one recipient, or what keeps it
/// from being made (a secret missing, a URL that is none).
pub fn build_request(
    route: &PushRoute,
    secrets: &PushSecrets,
    notification: &Notification,
    recipient: &Mailbox,
) -> Result<Request, RequestError> {
    let secret = |file: &Option<std::path::PathBuf>| -> Result<Option<&str>, RequestError> {
        match file {
            None => Ok(None),
            Some(file) => secrets
                .get(file)
                .map(Some)
                .ok_or_else(|| RequestError::NotRead(file.clone())),
        }
    };
    let url = match &route.endpoint {
        Endpoint::Url(url) => Url::parse(url),
        Endpoint::File(file) => Url::parse(secret(&Some(file.clone()))?.unwrap_or_default()),
    }
    .map_err(RequestError::Url)?;
    let token = secret(&route.token_file)?;
    let priority = notification.priority.max(route.priority);
    let n = notification;
    let request = match route.transport {
        Transport::Ntfy => {
            let mut headers = Vec::new();
            if !n.title.is_empty() {
                headers.push(header("Title", &encoded_words(&n.title)));
            }
            headers.push(header("Priority", &priority.level().to_string()));
            headers.push(header("Tags", "email"));
            if let Some(token) = token {
                headers.push(header("Authorization", &format!("Bearer {token}")));
            }
            headers.push(header("Content-Type", "text/plain; charset=utf-8"));
            post(url, headers, n.text_within(Limit::Bytes(4096)).into_bytes())
        }
        Transport::Gotify => {
            let body = json_object(&[
                ("title", Json::Text(&n.title)),
                ("message", Json::Text(&n.text_within(UNDOCUMENTED_LIMIT))),
                ("priority", Json::Number(gotify_priority(priority))),
            ]);
            let mut headers = vec![header("X-Gotify-Key", token.unwrap_or_default())];
            headers.push(json_type());
            post(url.join("/message"), headers, body)
        }
        Transport::Telegram => {
            let chat_id = route.chat_id.as_deref().unwrap_or_default();
            let text = n.titled_text_within(Limit::Utf16(4096));
            let mut fields = vec![
                ("chat_id", Json::Text(chat_id)),
                ("text", Json::Text(&text)),
            ];
            // Low priority arrives without a sound (Bot API sendMessage).
            if priority <= Priority::LOW {
                fields.push(("disable_notification", Json::True));
            }
            let path = format!("/bot{}/sendMessage", token.unwrap_or_default());
            post(url.join(&path), vec![json_type()], json_object(&fields))
        }
        Transport::Discord => {
            let text = n.titled_text_within(Limit::Chars(2000));
            let body = json_object(&[
                ("content", Json::Text(&text)),
                ("allowed_mentions", Json::Raw("{\"parse\":[]}")),
            ]);
            post(url, vec![json_type()], body)
        }
        Transport::Slack => {
            let text = slack_escape(&n.titled_text_within(Limit::Chars(4000)));
            post(
                url,
                vec![json_type()],
                json_object(&[("text", Json::Text(&text))]),
            )
        }
        Transport::Pushover => {
            let user = secret(&route.user_key_file)?.unwrap_or_default();
            let title = fit("", &n.title, "", Limit::Chars(250));
            let body = form(&[
                ("token", token.unwrap_or_default()),
                ("user", user),
                ("title", &title),
                ("message", &n.text_within(Limit::Chars(1024))),
                ("priority", &pushover_priority(priority).to_string()),
            ]);
            let content_type = header("Content-Type", "application/x-www-form-urlencoded");
            post(url.join("/1/messages.json"), vec![content_type], body)
        }
        Transport::Webhook => {
            let to = recipient.to_string();
            let body = json_object(&[
                ("from", Json::Text(&n.from)),
                ("to", Json::Text(&to)),
                ("subject", Json::Text(&n.title)),
                ("date", Json::Text(&n.date)),
                ("message_id", Json::Text(&n.message_id)),
                ("priority", Json::Number(i64::from(priority.level()))),
                ("text", Json::Text(&n.text_within(UNDOCUMENTED_LIMIT))),
            ]);
            let mut headers = vec![json_type()];
            if let Some(token) = token {
                headers.push(header("Authorization", &format!("Bearer {token}")));
            }
            post(url, headers, body)
        }
    };
    Ok(request)
}

/// The secrets in a route's requests, for `tinymta test-send` to mask:
/// tokens, user keys, and the path of a URL read from a file.
pub fn secrets_of(route: &PushRoute, secrets: &PushSecrets) -> Vec<String> {
    let mut out: Vec<String> = [&route.token_file, &route.user_key_file]
        .into_iter()
        .flatten()
        .filter_map(|file| secrets.get(file))
        .map(str::to_string)
        .collect();
    if let Endpoint::File(file) = &route.endpoint {
        if let Some(url) = secrets.get(file).and_then(|text| Url::parse(text).ok()) {
            out.push(url.path_and_query);
        }
    }
    out.retain(|s| !s.is_empty() && s != "/");
    out
}

/// Gotify's 0-10: 0 shows nothing, 1-3 a silent notification, 4-7 one
/// with sound, 8-10 a pop-up (the Android app).
fn gotify_priority(priority: Priority) -> i64 {
    match priority.level() {
        1 => 0,
        2 => 2,
        3 => 5,
        4 => 7,
        _ => 10,
    }
}

/// Pushover's -2 (no alert) to 1 (high, past quiet hours). 2, an
/// emergency, repeats until acknowledged and needs `retry` and `expire`:
/// no mail header asks for that, so max is high.
fn pushover_priority(priority: Priority) -> i64 {
    match priority.level() {
        1 => -2,
        2 => -1,
        3 => 0,
        _ => 1,
    }
}

fn post(url: Url, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
    Request {
        method: "POST",
        url,
        headers,
        body,
    }
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn json_type() -> (String, String) {
    header("Content-Type", "application/json")
}

/// A JSON value in a request.
enum Json<'a> {
    Text(&'a str),
    Number(i64),
    True,
    /// Already JSON.
    Raw(&'a str),
}

/// `{"key":value,...}` (RFC 8259).
fn json_object(fields: &[(&str, Json)]) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, key);
        out.push(':');
        match value {
            Json::Text(text) => json_string(&mut out, text),
            Json::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Json::True => out.push_str("true"),
            Json::Raw(raw) => out.push_str(raw),
        }
    }
    out.push('}');
    out.into_bytes()
}

/// A JSON string: `"` and `\` escaped, control characters as `\n`, `\r`,
/// `\t` or `\u00XX` (RFC 8259 7); everything else as UTF-8.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `application/x-www-form-urlencoded` (the WHATWG URL standard's
/// serializer): letters, digits and `*-._` as they are, space as `+`,
/// every other octet of UTF-8 as `%XX`.
fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, text) in [key, value].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            for b in text.bytes() {
                match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                        out.push(char::from(b))
                    }
                    b' ' => out.push('+'),
                    b => {
                        let _ = write!(out, "%{b:02X}");
                    }
                }
            }
        }
    }
    out.into_bytes()
}

/// Slack reads `&`, `<` and `>` as its own markup: they are sent as
/// `&amp;`, `&lt;` and `&gt;` (Slack, "Formatting text for app surfaces").
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A header value: ASCII as it is, anything else as RFC 2047 `B` encoded
/// words of UTF-8, which ntfy decodes; on one line, as an HTTP header is.
fn encoded_words(text: &str) -> String {
    crate::message::encoded_word::encode(text, " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::address::parse_mailbox;
    use std::path::Path;

    fn notification() -> Notification {
        Notification {
            title: "Disk \"sda\" überhitzt".to_string(),
            text: "sda: 61 C\n<warn> & more\ttab".to_string(),
            attachments: 0,
            priority: Priority::DEFAULT,
            from: "nas@box.lan".to_string(),
            date: "Thu, 3 Dec 2026 12:00:00 +0000".to_string(),
            message_id: "1@box.lan".to_string(),
        }
    }

    /// The route of `line`, with each secret file's secret its own name
    /// (`/tok` reads `tok`).
    fn request(line: &str, n: &Notification) -> Request {
        let route = PushRoute::parse(line).unwrap();
        let files: Vec<_> = route.secret_files().map(Path::to_path_buf).collect();
        let secrets = test_secrets(&files);
        let to = parse_mailbox("nas@push").unwrap();
        build_request(&route, &secrets, n, &to).unwrap()
    }

    /// Each file's secret is its own name (`/tk_abc` holds `tk_abc`),
    /// but `/slack` holds a webhook URL.
    fn test_secrets(files: &[std::path::PathBuf]) -> PushSecrets {
        PushSecrets::from_pairs(
            files
                .iter()
                .map(|file| {
                    let name = file.to_string_lossy().trim_start_matches('/').to_string();
                    let secret = match name.as_str() {
                        "slack" => "https://hooks.slack.example/services/T0/B0/XyZ".to_string(),
                        _ => name,
                    };
                    (file.clone(), secret)
                })
                .collect(),
        )
    }

    fn shown(request: &Request) -> String {
        let mut out = format!("{} {}\n", request.method, request.url);
        for (name, value) in &request.headers {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&request.body));
        out
    }

    #[test]
    fn ntfy() {
        let r = request(
            "nas@push ntfy url=https://ntfy.example/alerts token_file=/tk_abc priority=high",
            &notification(),
        );
        assert_eq!(
            shown(&r),
            "POST https://ntfy.example/alerts\n\
             Title: =?UTF-8?B?RGlzayAic2RhIiDDvGJlcmhpdHp0?=\nPriority: 4\nTags: email\n\
             Authorization: Bearer tk_abc\nContent-Type: text/plain; charset=utf-8\n\n\
             sda: 61 C\n<warn> & more\ttab"
        );
        let mut plain = notification();
        plain.title = "Disk".into();
        plain.priority = Priority::MAX;
        let r = request("nas@push ntfy url=http://[::1]:8080/t", &plain);
        assert_eq!(
            shown(&r),
            "POST http://[::1]:8080/t\nTitle: Disk\nPriority: 5\nTags: email\n\
             Content-Type: text/plain; charset=utf-8\n\nsda: 61 C\n<warn> & more\ttab"
        );
    }

    #[test]
    fn gotify() {
        let r = request(
            "nas@push gotify url=https://gotify.example token_file=/AppTok",
            &notification(),
        );
        assert_eq!(
            shown(&r),
            "POST https://gotify.example/message\nX-Gotify-Key: AppTok\n\
             Content-Type: application/json\n\n\
             {\"title\":\"Disk \\\"sda\\\" überhitzt\",\"message\":\"sda: 61 C\\n<warn> & more\\ttab\",\
             \"priority\":5}"
        );
    }

    #[test]
    fn telegram() {
        let mut n = notification();
        n.priority = Priority::LOW;
        let r = request("nas@push telegram token_file=/123:ABC chat_id=-1001", &n);
        assert_eq!(
            shown(&r),
            "POST https://api.telegram.org/bot123:ABC/sendMessage\n\
             Content-Type: application/json\n\n\
             {\"chat_id\":\"-1001\",\"text\":\"Disk \\\"sda\\\" überhitzt\\n\\nsda: 61 C\\n\
             <warn> & more\\ttab\",\"disable_notification\":true}"
        );
    }

    #[test]
    fn discord_and_slack() {
        let r = request(
            "nas@push discord url=https://discord.example/api/webhooks/1/x",
            &notification(),
        );
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "{\"content\":\"Disk \\\"sda\\\" überhitzt\\n\\nsda: 61 C\\n<warn> & more\\ttab\",\
             \"allowed_mentions\":{\"parse\":[]}}"
        );
        let line = "nas@push slack url_file=/slack";
        let r = request(line, &{
            let mut n = notification();
            n.title = String::new();
            n
        });
        assert_eq!(r.url.host, "hooks.slack.example");
        assert_eq!(r.url.path_and_query, "/services/T0/B0/XyZ");
        let route = PushRoute::parse(line).unwrap();
        let secrets = test_secrets(&[std::path::PathBuf::from("/slack")]);
        assert_eq!(secrets_of(&route, &secrets), ["/services/T0/B0/XyZ"]);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "{\"text\":\"sda: 61 C\\n&lt;warn&gt; &amp; more\\ttab\"}"
        );
    }

    #[test]
    fn pushover() {
        let r = request(
            "nas@push pushover token_file=/azGD user_key_file=/uQiR",
            &notification(),
        );
        assert_eq!(
            shown(&r),
            "POST https://api.pushover.net/1/messages.json\n\
             Content-Type: application/x-www-form-urlencoded\n\n\
             token=azGD&user=uQiR&title=Disk+%22sda%22+%C3%BCberhitzt\
             &message=sda%3A+61+C%0A%3Cwarn%3E+%26+more%09tab&priority=0"
        );
    }

    #[test]
    fn webhook() {
        let r = request(
            "nas@push webhook url=https://hook.example/in",
            &notification(),
        );
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "{\"from\":\"nas@box.lan\",\"to\":\"nas@push\",\"subject\":\"Disk \\\"sda\\\" überhitzt\",\
             \"date\":\"Thu, 3 Dec 2026 12:00:00 +0000\",\"message_id\":\"1@box.lan\",\
             \"priority\":3,\"text\":\"sda: 61 C\\n<warn> & more\\ttab\"}"
        );
    }

    #[test]
    fn json_escapes_control_characters() {
        let mut out = String::new();
        json_string(&mut out, "a\u{1}b\u{7f}\"\\");
        assert_eq!(out, "\"a\\u0001b\u{7f}\\\"\\\\\"");
    }

    #[test]
    fn long_titles_are_several_encoded_words() {
        let words = encoded_words(&"ü".repeat(30));
        assert_eq!(words.split(' ').count(), 2);
        assert!(words.split(' ').all(|w| w.len() <= 75), "{words}");
    }

    #[test]
    fn secrets_to_mask() {
        let route =
            PushRoute::parse("nas@push pushover token_file=/azGD user_key_file=/uQiR").unwrap();
        let files: Vec<_> = route.secret_files().map(Path::to_path_buf).collect();
        let secrets = test_secrets(&files);
        assert_eq!(secrets_of(&route, &secrets), ["azGD", "uQiR"]);
    }
}
