//! Alarms through a second channel: when mail to one destination (a
//! [`Route`](super::route::Route), named by [`Route::describe`]) has been
//! deferred without a single success for `alarm_after`, one alarm goes to
//! `alarm_to` through another destination, and one "delivering again"
//! notice when mail to it is delivered again; at most one alarm per
//! destination per `alarm_repeat`.
//!
//! [`Alarms`] is the state machine, without I/O: the queue runner feeds it
//! each recipient's outcome and the wall-clock time, and queues the notices
//! it gives. "Deferred since" survives a restart without a file of its
//! own: a recipient that had failed before is taken to be failing since its
//! message arrived (the envelope keeps both), so the first attempts after a
//! restart find the old age again. When each destination's last alarm was
//! queued, and whether its recovery notice is still owed, cannot be found
//! in the queue (a delivered alarm leaves nothing there): [`Alarms::to_text`]
//! gives the small `spool_dir/alarms` file the runner writes durably after
//! each notice, and [`Alarms::parse`] reads it at start-up.
//!
//! [`Route::describe`]: super::route::Route::describe

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::random::random_u64;
use crate::time::rfc5322_date;

/// The name of the state file in `spool_dir`.
pub const STATE_FILE: &str = "alarms";

/// The first line of the state file.
const STATE_FORMAT_LINE: &str = "tinymta-alarms: 1";

/// The config's `alarm_after` and `alarm_repeat`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmPolicy {
    pub after: u64,
    pub repeat: u64,
}

/// What the runner is to queue to `alarm_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Mail to `destination` has been deferred since `since`, with no
    /// success after it.
    Stuck {
        destination: String,
        /// Messages deferred there now.
        messages: usize,
        since: u64,
        last_error: String,
    },
    /// Mail to `destination`, stuck since `since`, is delivered again.
    Recovered { destination: String, since: u64 },
}

impl Notice {
    pub fn destination(&self) -> &str {
        match self {
            Notice::Stuck { destination, .. } | Notice::Recovered { destination, .. } => {
                destination
            }
        }
    }
}

/// What is known of one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Watch {
    /// Since when it has failed with no success after (Unix seconds).
    failing_since: Option<u64>,
    /// Its last success in this process.
    last_success: Option<u64>,
    /// The messages deferred there now, by queue id.
    deferred: BTreeSet<String>,
    last_error: String,
    /// When its last alarm was queued (kept in the state file).
    alarmed_at: Option<u64>,
    /// The `since` of an alarm whose recovery notice is still owed (kept
    /// in the state file).
    open_since: Option<u64>,
    /// Its alarm could not be sent, as `alarm_to` goes through it; said once.
    refusal_said: bool,
}

impl Watch {
    /// Its last alarm still holds back another at `now` (queued less than
    /// `repeat` before), or still owes its recovery notice.
    fn alarm_holds(&self, now: u64, repeat: u64) -> bool {
        self.open_since.is_some()
            || self
                .alarmed_at
                .is_some_and(|at| now.saturating_sub(at) < repeat)
    }
}

/// Every destination's watch, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alarms {
    watches: BTreeMap<String, Watch>,
}

impl Alarms {
    /// A recipient of message `id` was deferred at `destination`. `failing_since`
    /// is the earliest this failure can be known to have begun: its message's
    /// arrival when the recipient had failed before, else now. A success
    /// seen since then moves it up to that success.
    pub fn deferred(&mut self, destination: &str, id: &str, failing_since: u64, error: &str) {
        let watch = self.watches.entry(destination.to_string()).or_default();
        let since = failing_since.max(watch.last_success.unwrap_or(0));
        if watch.failing_since.is_none() {
            // Stuck anew: a refused alarm is worth a word again.
            watch.refusal_said = false;
        }
        watch.failing_since = Some(watch.failing_since.map_or(since, |s| s.min(since)));
        watch.deferred.insert(id.to_string());
        watch.last_error = error.to_string();
    }

    /// A recipient of message `id` was delivered at `destination`: it works.
    /// The recovery notice, when an alarm about it was sent.
    pub fn delivered(&mut self, destination: &str, id: &str, now: u64) -> Option<Notice> {
        let watch = self.watches.entry(destination.to_string()).or_default();
        watch.failing_since = None;
        watch.last_success = Some(now);
        watch.deferred.remove(id);
        watch.open_since.map(|since| Notice::Recovered {
            destination: destination.to_string(),
            since,
        })
    }

    /// A recipient of message `id` at `destination` failed for good: the
    /// message no longer waits there, and the destination did answer.
    pub fn failed(&mut self, destination: &str, id: &str) {
        if let Some(watch) = self.watches.get_mut(destination) {
            watch.deferred.remove(id);
        }
    }

    /// Message `id` left the queue (or was never seen in it again).
    pub fn forget(&mut self, id: &str) {
        for watch in self.watches.values_mut() {
            watch.deferred.remove(id);
        }
    }

    /// Keeps only the messages still queued, and only the destinations
    /// that still matter at `now`: with messages waiting, or with an alarm
    /// that holds back another or owes its notice. So the table stays as
    /// small as the queue, however many domains mail went to.
    pub fn prune(&mut self, queued: impl Fn(&str) -> bool, now: u64, repeat: u64) {
        self.watches.retain(|_, watch| {
            watch.deferred.retain(|id| queued(id));
            !watch.deferred.is_empty() || watch.alarm_holds(now, repeat)
        });
    }

    /// The alarm about `destination` that is due at `now`: deferred with no
    /// success for `policy.after`, messages still waiting, and no alarm
    /// about it in the last `policy.repeat`.
    pub fn due(&self, destination: &str, now: u64, policy: AlarmPolicy) -> Option<Notice> {
        let watch = self.watches.get(destination)?;
        let since = watch.failing_since?;
        let stuck_long = now.saturating_sub(since) >= policy.after;
        let repeat_over = watch
            .alarmed_at
            .is_none_or(|at| now.saturating_sub(at) >= policy.repeat);
        (stuck_long && repeat_over && !watch.deferred.is_empty()).then(|| Notice::Stuck {
            destination: destination.to_string(),
            messages: watch.deferred.len(),
            since,
            last_error: watch.last_error.clone(),
        })
    }

    /// `notice` was queued at `now`.
    pub fn sent(&mut self, notice: &Notice, now: u64) {
        let watch = self
            .watches
            .entry(notice.destination().to_string())
            .or_default();
        match notice {
            Notice::Stuck { since, .. } => {
                watch.alarmed_at = Some(now);
                watch.open_since = Some(*since);
            }
            Notice::Recovered { .. } => watch.open_since = None,
        }
    }

    /// `notice` cannot be sent: every recipient of `alarm_to` goes through
    /// the destination it is about (`alarm_to` changed since its alarm,
    /// for a recovery notice, which is then dropped). True the first time
    /// in this stuck spell, to say so once.
    pub fn refused(&mut self, notice: &Notice) -> bool {
        let watch = self
            .watches
            .entry(notice.destination().to_string())
            .or_default();
        if let Notice::Recovered { .. } = notice {
            watch.open_since = None;
        }
        !std::mem::replace(&mut watch.refusal_said, true)
    }

    /// The state file: one line per destination whose alarm still holds
    /// back another (queued less than `repeat` before `now`) or still owes
    /// its recovery notice:
    /// `alarm: ALARMED_AT OPEN_SINCE|- DESTINATION`.
    pub fn to_text(&self, now: u64, repeat: u64) -> String {
        let mut out = format!("{STATE_FORMAT_LINE}\n");
        for (destination, watch) in &self.watches {
            let Some(alarmed_at) = watch.alarmed_at.filter(|_| watch.alarm_holds(now, repeat))
            else {
                continue;
            };
            let open = watch
                .open_since
                .map_or("-".to_string(), |since| since.to_string());
            let _ = writeln!(out, "alarm: {alarmed_at} {open} {destination}");
        }
        out
    }

    /// Reads the state file. A line that cannot be read is skipped and
    /// named in the second value (a damaged file costs at most an alarm
    /// more, never the queue).
    pub fn parse(text: &str) -> (Alarms, Vec<usize>) {
        let mut alarms = Alarms::default();
        let mut bad = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if index == 0 && line == STATE_FORMAT_LINE {
                continue;
            }
            match parse_state_line(line) {
                Some((destination, alarmed_at, open_since)) => {
                    let watch = alarms.watches.entry(destination).or_default();
                    watch.alarmed_at = Some(alarmed_at);
                    watch.open_since = open_since;
                }
                None => bad.push(index + 1),
            }
        }
        (alarms, bad)
    }
}

fn parse_state_line(line: &str) -> Option<(String, u64, Option<u64>)> {
    let mut fields = line.strip_prefix("alarm: ")?.splitn(3, ' ');
    let alarmed_at = fields.next()?.parse().ok()?;
    let open_since = match fields.next()? {
        "-" => None,
        since => Some(since.parse().ok()?),
    };
    let destination = fields.next().filter(|d| !d.is_empty())?;
    Some((destination.to_string(), alarmed_at, open_since))
}

/// `42m`, `3h5m`, `2d4h`: how long, at the precision that matters.
pub fn format_age(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{minutes}m"),
        3600..86400 if minutes == 0 => format!("{hours}h"),
        3600..86400 => format!("{hours}h{minutes}m"),
        _ if hours == 0 => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

/// The Subject of a notice queued at `now`.
pub fn subject(notice: &Notice, now: u64) -> String {
    match notice {
        Notice::Stuck {
            destination, since, ..
        } => format!(
            "tinymta: mail to {destination} stuck for {}",
            format_age(now.saturating_sub(*since))
        ),
        Notice::Recovered { destination, .. } => {
            format!("tinymta: mail to {destination} delivering again")
        }
    }
}

/// The text of a notice (CRLF line ends), from `MAILER-DAEMON@hostname` as
/// bounces are, to `to`.
pub fn build_notice(
    hostname: &str,
    to: &str,
    notice: &Notice,
    now: u64,
    policy: AlarmPolicy,
) -> Vec<u8> {
    let lines = match notice {
        Notice::Stuck {
            destination,
            messages,
            since,
            last_error,
        } => {
            // The error text is one line of the envelope; nothing in it may
            // start a line of its own here.
            let error: String = last_error
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            vec![
                format!("Mail to {destination} has been deferred without a single success"),
                format!("for {}.", format_age(now.saturating_sub(*since))),
                String::new(),
                format!("Stuck: mail to {destination}"),
                format!("Messages waiting: {messages}"),
                format!("Deferred since: {}", rfc5322_date(*since)),
                format!("Last error: {error}"),
                String::new(),
                format!(
                    "tinymta keeps retrying; `tinymta mailq` shows the queue. No other alarm \
                     about this destination is sent before {}; a notice follows when mail to \
                     it is delivered again.",
                    rfc5322_date(now.saturating_add(policy.repeat))
                ),
            ]
        }
        Notice::Recovered { destination, since } => vec![
            format!("Mail to {destination} is delivered again."),
            String::new(),
            format!(
                "It had been deferred since {} ({}).",
                rfc5322_date(*since),
                format_age(now.saturating_sub(*since))
            ),
        ],
    };
    let body = lines.join("\r\n");
    let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
    // RFC 3834 5: Auto-Submitted, made by the system and not a reply, so
    // that no one answers it.
    let head = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: {}\r\n\
         Date: {}\r\n\
         Message-ID: <{now}.{:016x}.alarm@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {encoding}\r\n",
        subject(notice, now),
        rfc5322_date(now),
        random_u64()
    );
    format!("{head}\r\n{body}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMARTHOST: &str = "smarthost relay.example.net:587";
    const POLICY: AlarmPolicy = AlarmPolicy {
        after: 30 * 60,
        repeat: 86400,
    };
    const T0: u64 = 1_795_364_407;
    const AUTH: &str = "535 5.7.8 bad credentials";

    #[test]
    fn the_alarm_is_due_after_alarm_after_without_a_success() {
        let mut alarms = Alarms::default();
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        assert_eq!(alarms.due(SMARTHOST, T0 + 29 * 60, POLICY), None);
        alarms.deferred(SMARTHOST, "B", T0 + 60, "451 4.3.0 later");
        alarms.deferred(SMARTHOST, "A", T0 + 120, AUTH);
        let due = alarms.due(SMARTHOST, T0 + 30 * 60, POLICY);
        assert_eq!(
            due,
            Some(Notice::Stuck {
                destination: SMARTHOST.to_string(),
                messages: 2,
                since: T0,
                last_error: AUTH.to_string(),
            })
        );
        assert_eq!(
            subject(&due.unwrap(), T0 + 42 * 60),
            "tinymta: mail to smarthost relay.example.net:587 stuck for 42m"
        );
        // Other destinations know nothing of it.
        assert_eq!(alarms.due("domain example.org", T0 + 3600, POLICY), None);
    }

    #[test]
    fn a_success_starts_the_count_again() {
        let mut alarms = Alarms::default();
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        assert_eq!(alarms.delivered(SMARTHOST, "B", T0 + 20 * 60), None);
        // A, which arrived before that success, fails again: the
        // destination has been failing only since the success.
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        assert_eq!(alarms.due(SMARTHOST, T0 + 40 * 60, POLICY), None);
        assert!(alarms.due(SMARTHOST, T0 + 50 * 60, POLICY).is_some());
        // Nothing waiting (A failed for good): nothing to raise.
        alarms.failed(SMARTHOST, "A");
        assert_eq!(alarms.due(SMARTHOST, T0 + 50 * 60, POLICY), None);
    }

    #[test]
    fn one_alarm_per_repeat_window_and_one_recovery_notice() {
        let mut alarms = Alarms::default();
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        let alarm = alarms.due(SMARTHOST, T0 + 1800, POLICY).unwrap();
        alarms.sent(&alarm, T0 + 1800);
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        assert_eq!(alarms.due(SMARTHOST, T0 + 1800 + 86399, POLICY), None);
        // Still stuck a whole window later: one more.
        assert!(alarms.due(SMARTHOST, T0 + 1800 + 86400, POLICY).is_some());
        let recovered = alarms.delivered(SMARTHOST, "A", T0 + 7200);
        assert_eq!(
            recovered,
            Some(Notice::Recovered {
                destination: SMARTHOST.to_string(),
                since: T0
            })
        );
        alarms.sent(&recovered.unwrap(), T0 + 7200);
        assert_eq!(alarms.delivered(SMARTHOST, "B", T0 + 7300), None);
        // Stuck again within the window: no second alarm, so no notice.
        alarms.deferred(SMARTHOST, "C", T0 + 8000, AUTH);
        assert_eq!(alarms.due(SMARTHOST, T0 + 20000, POLICY), None);
        assert_eq!(alarms.delivered(SMARTHOST, "C", T0 + 20001), None);
    }

    #[test]
    fn a_restart_keeps_the_window_and_the_owed_notice() {
        let mut alarms = Alarms::default();
        alarms.deferred(SMARTHOST, "A", T0, AUTH);
        alarms.deferred("domain example.org", "B", T0, "421 4.3.2 busy");
        let alarm = alarms.due(SMARTHOST, T0 + 1800, POLICY).unwrap();
        alarms.sent(&alarm, T0 + 1800);
        let text = alarms.to_text(T0 + 1900, POLICY.repeat);
        assert_eq!(
            text,
            format!(
                "tinymta-alarms: 1\nalarm: {} {T0} smarthost relay.example.net:587\n",
                T0 + 1800
            )
        );
        let (mut restarted, bad) = Alarms::parse(&text);
        assert!(bad.is_empty());
        // After the restart the message had failed before: since its arrival.
        restarted.deferred(SMARTHOST, "A", T0, AUTH);
        assert_eq!(restarted.due(SMARTHOST, T0 + 2000, POLICY), None);
        assert!(restarted.delivered(SMARTHOST, "A", T0 + 2100).is_some());
        // A closed alarm is kept while it holds back another, then dropped.
        let mut closed = Alarms::parse(&text).0;
        closed.sent(
            &Notice::Recovered {
                destination: SMARTHOST.into(),
                since: T0,
            },
            T0 + 2000,
        );
        assert!(closed
            .to_text(T0 + 2000, POLICY.repeat)
            .ends_with(" - smarthost relay.example.net:587\n"));
        assert_eq!(
            closed.to_text(T0 + 1800 + 86400, POLICY.repeat),
            "tinymta-alarms: 1\n"
        );
    }

    #[test]
    fn a_damaged_state_file_loses_only_its_bad_lines() {
        let (alarms, bad) = Alarms::parse(
            "tinymta-alarms: 1\nalarm: x - a\nalarm: 5 - smarthost h:25\nalarm: 5 -\ngarbage\n",
        );
        assert_eq!(bad, [2, 4, 5]);
        assert_eq!(
            alarms.to_text(6, 10),
            "tinymta-alarms: 1\nalarm: 5 - smarthost h:25\n"
        );
    }

    #[test]
    fn a_refusal_is_said_once_per_stuck_spell() {
        let mut alarms = Alarms::default();
        let local = "local mailboxes";
        alarms.deferred(local, "A", T0, "4.3.0 disk full");
        let alarm = alarms.due(local, T0 + 1800, POLICY).unwrap();
        assert!(alarms.refused(&alarm));
        alarms.deferred(local, "A", T0, "4.3.0 disk full");
        assert!(!alarms.refused(&alarm));
        assert_eq!(alarms.delivered(local, "A", T0 + 1900), None);
        alarms.deferred(local, "B", T0 + 2000, "4.3.0 disk full");
        assert!(alarms.refused(&alarm));
        // A recovery notice that cannot be sent is dropped, not owed forever.
        alarms.sent(&alarm, T0 + 2000);
        let notice = alarms.delivered(local, "B", T0 + 2100).unwrap();
        alarms.refused(&notice);
        assert_eq!(alarms.delivered(local, "B", T0 + 2200), None);
    }

    #[test]
    fn forgotten_messages_are_not_counted() {
        let mut alarms = Alarms::default();
        for id in ["A", "B", "C"] {
            alarms.deferred(SMARTHOST, id, T0, AUTH);
        }
        alarms.deferred("domain example.org", "D", T0, "421 4.3.2 busy");
        alarms.forget("A");
        alarms.prune(|id| id != "B" && id != "D", T0 + 10, POLICY.repeat);
        let Some(Notice::Stuck { messages, .. }) = alarms.due(SMARTHOST, T0 + 1800, POLICY) else {
            panic!("no alarm");
        };
        assert_eq!(messages, 1);
        // A destination with nothing waiting and no alarm is forgotten.
        assert_eq!(alarms.watches.keys().collect::<Vec<_>>(), [SMARTHOST]);
    }

    #[test]
    fn ages() {
        let ages: Vec<String> = [0, 59, 60, 2519, 3600, 3900, 86400, 90000 + 3600]
            .into_iter()
            .map(format_age)
            .collect();
        assert_eq!(ages, ["0s", "59s", "1m", "41m", "1h", "1h5m", "1d", "1d2h"]);
    }

    #[test]
    fn the_alarm_message() {
        let notice = Notice::Stuck {
            destination: SMARTHOST.to_string(),
            messages: 3,
            since: T0,
            last_error: format!("{AUTH}\r\nBcc: x"),
        };
        let text = String::from_utf8(build_notice(
            "box.lan",
            "phone@push",
            &notice,
            T0 + 42 * 60,
            POLICY,
        ))
        .unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(
            "From: Mail Delivery System <MAILER-DAEMON@box.lan>\r\nTo: <phone@push>\r\n\
             Subject: tinymta: mail to smarthost relay.example.net:587 stuck for 42m\r\n"
        ));
        assert!(head.contains("\r\nAuto-Submitted: auto-generated\r\n"));
        assert!(head.ends_with("Content-Transfer-Encoding: 7bit"));
        assert!(body.contains(
            "Messages waiting: 3\r\nDeferred since: Sun, 22 Nov 2026 16:20:07 +0000\r\n\
             Last error: 535 5.7.8 bad credentials  Bcc: x\r\n"
        ));
        let recovered = Notice::Recovered {
            destination: SMARTHOST.to_string(),
            since: T0,
        };
        let text =
            String::from_utf8(build_notice("box.lan", "a@b", &recovered, T0 + 60, POLICY)).unwrap();
        assert!(text.contains(
            "Subject: tinymta: mail to smarthost relay.example.net:587 delivering again\r\n"
        ));
        assert!(text.ends_with(
            "\r\n\r\nMail to smarthost relay.example.net:587 is delivered again.\r\n\r\n\
             It had been deferred since Sun, 22 Nov 2026 16:20:07 +0000 (1m).\r\n"
        ));
    }
}
