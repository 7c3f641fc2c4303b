//! A push job: each message's notification sent to the route's service,
//! and the HTTP outcome made a delivery outcome, as the issue's delivery
//! semantics have it:
//! - 2xx: delivered;
//! - 408, 429, 5xx, and no answer (connection, TLS, timeout): deferred,
//!   after the server's `Retry-After` where it gives one (RFC 9110 10.2.3;
//!   the runner bounds it by `retry_max`);
//! - any other status, a 3xx among them (no redirect is followed): the
//!   service refuses the message for good. It goes to the route's
//!   `fallback` address as mail, a new queue entry with the original
//!   message; without a fallback the recipient has failed and the sender
//!   gets a bounce (never a null sender: see the runner).

use std::io::Read;
use std::time::Duration;

use super::notification::{read_notification, Notification};
use super::service::{build_request, secrets_of};
use crate::config::route::PushRoute;
use crate::deliver::{log_outcome, DeliverySettings, ItemResult, Job, JobItem, Outcome, Reporter};
use crate::http::{HttpClient, HttpError, Request, Response};
use crate::log::Escaped;
use crate::smtp::address::{parse_mailbox, Mailbox};
use crate::smtp::command::Body;
use crate::smtp::status::Status;
use crate::spool::queue::Failure;
use crate::spool::{NewEntry, Spool, SpoolError};
use crate::time::unix_now;

/// How much of a response's body its outcome quotes: the start says why
/// (`{"error":"invalid token"}`), and a log line has room for no more.
const QUOTED_RESPONSE: usize = 200;

/// The piece of a message copied at a time to the fallback's entry.
const COPY_PIECE: usize = 64 * 1024;

/// Sends a job on the push route whose pattern is `pattern`.
pub fn deliver_job(
    settings: &DeliverySettings,
    spool: &Spool,
    pattern: &str,
    job: Job,
    reporter: &mut Reporter,
) {
    let config = &settings.config;
    let route = config
        .route
        .iter()
        .find(|route| route.pattern.to_string() == pattern);
    let client = settings.http_client();
    for item in job.items {
        let mut outcomes = Vec::new();
        let notification = spool
            .open_message(&item.id, item.size)
            .map_err(|e| e.to_string())
            .and_then(|message| read_notification(message).map_err(|e| e.to_string()));
        for (index, rcpt) in &item.recipients {
            let (relay, outcome) = match (route, &notification) {
                // A reload took the route away: its mail waits for the
                // config to name it again (or to expire).
                (None, _) => (
                    "-",
                    Outcome::Deferred(Failure::ours(
                        Status::new(4, 3, 5),
                        format_args!("no push route {pattern} in the config any more"),
                    )),
                ),
                (Some(route), Err(e)) => (
                    route.transport.name(),
                    Outcome::Deferred(Failure::ours(Status::new(4, 3, 0), e)),
                ),
                (Some(route), Ok(notification)) => (
                    route.transport.name(),
                    push_one(settings, spool, &client, route, &item, rcpt, notification),
                ),
            };
            log_outcome(&item, rcpt, relay, None, &outcome);
            outcomes.push((*index, outcome));
        }
        reporter.report(ItemResult {
            id: item.id,
            outcomes,
        });
    }
}

/// One notification to one recipient.
fn push_one(
    settings: &DeliverySettings,
    spool: &Spool,
    client: &HttpClient,
    route: &PushRoute,
    item: &JobItem,
    rcpt: &Mailbox,
    notification: &Notification,
) -> Outcome {
    let request = match build_request(route, &settings.push_secrets, notification, rcpt) {
        Ok(request) => request,
        // RFC 3463 4.3.5: system incorrectly configured; it may be mended.
        Err(e) => return Outcome::Deferred(Failure::ours(Status::new(4, 3, 5), e)),
    };
    show_request(&request, &secrets_of(route, &settings.push_secrets));
    let response = match client.send(&request) {
        Ok(response) => response,
        Err(e) => return no_response(route, &e),
    };
    log::debug!(
        "< HTTP {} {}",
        response.status,
        Escaped(&quoted_body(&response))
    );
    match judge(&response, unix_now()) {
        Judgement::Delivered(text) => Outcome::Delivered(text),
        Judgement::Deferred(failure, None) => Outcome::Deferred(failure),
        Judgement::Deferred(failure, Some(wait)) => Outcome::Postponed(failure, wait),
        Judgement::Refused(failure) => match &route.fallback {
            Some(fallback) => forward(settings, spool, item, fallback, failure),
            None => Outcome::Failed(failure),
        },
    }
}

/// The request, for `tinymta test-send` (at debug level, which the daemon
/// does not log by default): one line each, secrets masked.
fn show_request(request: &Request, secrets: &[String]) {
    let mask = |text: &str| {
        secrets
            .iter()
            .fold(text.to_string(), |text, secret| text.replace(secret, "***"))
    };
    log::debug!("> {} {}", request.method, mask(&request.url.to_string()));
    for (name, value) in &request.headers {
        log::debug!("> {name}: {}", mask(value));
    }
    log::debug!(
        "> {}",
        Escaped(&mask(&String::from_utf8_lossy(&request.body)))
    );
}

/// No response: a request that cannot be made waits for the config to be
/// mended; the rest is the network's or the service's trouble, for now.
fn no_response(route: &PushRoute, e: &HttpError) -> Outcome {
    let text = format_args!("{}: {e}", route.transport);
    if !e.is_temporary() {
        return Outcome::Deferred(Failure::ours(Status::new(4, 3, 5), text));
    }
    let status = match e {
        // RFC 3463 4.4.3: directory server failure; 4.4.2: bad connection;
        // 4.4.1: no answer from host.
        HttpError::Dns { .. } => Status::new(4, 4, 3),
        HttpError::Timeout(_) | HttpError::Io(_) | HttpError::Protocol(_) => Status::new(4, 4, 2),
        _ => Status::new(4, 4, 1),
    };
    Outcome::Deferred(Failure::ours(status, text))
}

/// What a response means for the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// 2xx: the text for the log (`HTTP 200`).
    Delivered(String),
    /// 408, 429, 5xx: try again, after the wait the server asked for.
    Deferred(Failure, Option<Duration>),
    /// Any other status: the service will not take it.
    Refused(Failure),
}

/// A response's meaning (see the module's comment); `now_unix` for a
/// Retry-After given as a date.
pub fn judge(response: &Response, now_unix: u64) -> Judgement {
    let status = response.status;
    let quoted = quoted_body(response);
    let text = if quoted.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {quoted}")
    };
    match status {
        200..=299 => Judgement::Delivered(format!("HTTP {status}")),
        // RFC 9110 15.5.9 (408), RFC 6585 4 (429), 15.6 (5xx): not now.
        408 | 429 | 500..=599 => Judgement::Deferred(
            Failure::ours(Status::new(4, 4, 0), text),
            response.retry_after(now_unix),
        ),
        _ => {
            // RFC 3463: 5.7.0 refused credentials, 5.1.1 no such
            // destination, 5.3.4 too big, 5.4.0 a redirect (not followed),
            // 5.6.0 a message the service will not take.
            let enhanced = match status {
                401 | 403 => Status::new(5, 7, 0),
                404 | 410 => Status::new(5, 1, 1),
                413 => Status::new(5, 3, 4),
                300..=399 => Status::new(5, 4, 0),
                _ => Status::new(5, 6, 0),
            };
            Judgement::Refused(Failure::ours(enhanced, text))
        }
    }
}

/// The start of a response's body on one line.
fn quoted_body(response: &Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    let line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTED_RESPONSE)
        .collect();
    line.trim().to_string()
}

/// The service refused the message for good: it goes to `fallback` as
/// mail, a new queue entry with the original message, through the one way
/// into the queue (`IncomingMessage::commit`). Where that cannot be
/// written, the push is tried again.
fn forward(
    settings: &DeliverySettings,
    spool: &Spool,
    item: &JobItem,
    fallback: &Mailbox,
    refusal: Failure,
) -> Outcome {
    let config = &settings.config;
    // The fallback address is any mail's recipient: `root` through the
    // aliases too. Its bounces go to the original sender.
    let mut recipients = Vec::new();
    crate::aliases::add_recipient(
        config,
        settings.aliases.as_deref(),
        &mut recipients,
        fallback.clone(),
    );
    let entry = NewEntry {
        // RFC 6152: the body is what it was declared as.
        body: Some(if item.eight_bit {
            Body::EightBitMime
        } else {
            Body::SevenBit
        }),
        ..NewEntry::local(
            &config.hostname,
            parse_mailbox(&item.sender).ok(),
            recipients,
            b"",
        )
    };
    // Copied a piece at a time: a large message is never held whole.
    let queued = (|| -> Result<String, SpoolError> {
        let mut original = spool.open_message(&item.id, item.size)?;
        let mut copy = spool.begin()?;
        let mut piece = vec![0; COPY_PIECE];
        loop {
            // The open message file's read error, as the spool's errors
            // that name no path print: the error alone.
            let read = original.read(&mut piece).map_err(|error| SpoolError::Io {
                path: std::path::PathBuf::new(),
                error,
            })?;
            if read == 0 {
                break;
            }
            copy.write(&piece[..read])?;
        }
        copy.commit(&entry)
    })();
    match queued {
        Ok(id) => Outcome::Forwarded(format!(
            "{}; sent as mail to {fallback} ({id})",
            refusal.text
        )),
        Err(e) => Outcome::Deferred(Failure::ours(
            Status::new(4, 3, 0),
            format_args!("{}; cannot queue it for {fallback}: {e}", refusal.text),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn responses_are_judged_as_the_issue_says() {
        assert_eq!(
            judge(&response(200, &[], "{\"id\":\"x\"}"), 0),
            Judgement::Delivered("HTTP 200".into())
        );
        assert_eq!(
            judge(&response(204, &[], ""), 0),
            Judgement::Delivered("HTTP 204".into())
        );
        assert_eq!(
            judge(&response(429, &[("Retry-After", "120")], "slow down\n"), 0),
            Judgement::Deferred(
                Failure::ours(Status::new(4, 4, 0), "HTTP 429: slow down"),
                Some(Duration::from_secs(120))
            )
        );
        assert_eq!(
            judge(&response(503, &[], ""), 0),
            Judgement::Deferred(Failure::ours(Status::new(4, 4, 0), "HTTP 503"), None)
        );
        assert!(matches!(
            judge(&response(408, &[], ""), 0),
            Judgement::Deferred(..)
        ));
        assert_eq!(
            judge(
                &response(400, &[], "{\"ok\":false,\"description\":\"Bad Request\"}"),
                0
            ),
            Judgement::Refused(Failure::ours(
                Status::new(5, 6, 0),
                "HTTP 400: {\"ok\":false,\"description\":\"Bad Request\"}"
            ))
        );
        let refused = |status| match judge(&response(status, &[], ""), 0) {
            Judgement::Refused(failure) => failure.text,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(401), "5.7.0 HTTP 401");
        assert_eq!(refused(404), "5.1.1 HTTP 404");
        assert_eq!(refused(301), "5.4.0 HTTP 301");
        assert_eq!(refused(413), "5.3.4 HTTP 413");
    }
}
