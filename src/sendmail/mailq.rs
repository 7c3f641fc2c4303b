//! `mailq`, `sendmail -bp`: the queue as a list.

use super::submit::SubmitError;
use crate::config::Config;
use crate::spool::Spool;
use crate::time::unix_now;

/// `mailq`, `sendmail -bp`: one entry per message with its id, size, age and
/// sender, then each recipient with its state, attempts and last error.
pub fn list_queue(config: &Config) -> Result<String, SubmitError> {
    let spool = Spool::open_existing(&config.spool_dir)?;
    let ids = spool.list()?;
    let now = unix_now();
    let mut out = String::new();
    if ids.is_empty() {
        out.push_str("Mail queue is empty\n");
        return Ok(out);
    }
    out.push_str("Queue ID            Size    Age     Sender / recipients\n");
    let mut count = 0;
    for id in &ids {
        let envelope = match spool.read_envelope(id) {
            Ok(envelope) => envelope,
            Err(e) => {
                out.push_str(&format!("{id:<19} (unreadable: {e})\n"));
                continue;
            }
        };
        count += 1;
        out.push_str(&format!(
            "{:<19} {:<7} {:<7} <{}>\n",
            envelope.id,
            envelope.size,
            age(now.saturating_sub(envelope.arrival)),
            envelope.sender_text()
        ));
        for r in &envelope.recipients {
            let state = match r.state {
                crate::spool::queue::RecipientState::Queued => "queued",
                crate::spool::queue::RecipientState::Delivered => "delivered",
                crate::spool::queue::RecipientState::Failed => "failed",
            };
            // A push recipient says which service it goes to.
            let via = crate::config::route::find_route(&config.route, &r.address)
                .map(|route| format!(" via {}", route.transport))
                .unwrap_or_default();
            out.push_str(&format!(
                "                                    <{}>{via} {state}, {} attempt{}",
                r.address,
                r.attempts,
                if r.attempts == 1 { "" } else { "s" }
            ));
            if let Some(error) = &r.last_error {
                out.push_str(&format!(": {}", error.text));
            }
            // The wall clock's idea of the next attempt (the daemon keeps
            // its own schedule on the monotonic clock; see queue.rs).
            if r.state == crate::spool::queue::RecipientState::Queued && r.next_attempt > 0 {
                match r.next_attempt.checked_sub(now) {
                    Some(wait) if wait > 0 => {
                        out.push_str(&format!(" (next attempt in {})", age(wait)))
                    }
                    _ => out.push_str(" (next attempt due now)"),
                }
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "-- {count} message{} in the queue\n",
        if count == 1 { "" } else { "s" }
    ));
    Ok(out)
}

/// `90` -> `1m`, `7200` -> `2h`: the age of a message at a glance.
fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}
