//! Failed AUTH attempts per client address, across sessions (as Postfix's
//! anvil counts them for smtpd_client_auth_rate_limit): a session allows
//! three tries, but a guesser simply opens the next session. The table is
//! bounded: past `capacity` addresses, the one whose window started first is
//! forgotten. Time is passed in, so the rules are tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Config;

/// One address's failures within its current window.
#[derive(Debug, Clone, Copy)]
struct Tally {
    /// The first failure of the window.
    since: Instant,
    failures: usize,
}

#[derive(Debug)]
pub struct AuthFailures {
    /// Failures within `window` after which AUTH is refused.
    limit: usize,
    window: Duration,
    /// Addresses remembered at most.
    capacity: usize,
    by_client: HashMap<IpAddr, Tally>,
}

impl AuthFailures {
    pub fn new(limit: usize, window: Duration, capacity: usize) -> AuthFailures {
        AuthFailures {
            limit,
            window,
            capacity: capacity.max(1),
            by_client: HashMap::new(),
        }
    }

    /// The limits of `auth_failure_limit`, `auth_failure_window` and
    /// `auth_failure_addresses`.
    pub fn from_config(config: &Config) -> AuthFailures {
        AuthFailures::new(
            config.auth_failure_limit,
            config.auth_failure_window,
            config.auth_failure_addresses,
        )
    }

    /// Whether AUTH from `ip` is refused at `now`: it has failed `limit`
    /// times in a window that has not passed yet.
    pub fn refuses(&self, ip: IpAddr, now: Instant) -> bool {
        self.by_client
            .get(&ip)
            .is_some_and(|tally| tally.failures >= self.limit && !self.expired(tally, now))
    }

    /// Counts a failed attempt from `ip` at `now`.
    pub fn record(&mut self, ip: IpAddr, now: Instant) {
        if let Some(tally) = self.by_client.get_mut(&ip) {
            if now.saturating_duration_since(tally.since) < self.window {
                tally.failures += 1;
                return;
            }
        } else if self.by_client.len() >= self.capacity {
            self.make_room(now);
        }
        self.by_client.insert(
            ip,
            Tally {
                since: now,
                failures: 1,
            },
        );
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    fn expired(&self, tally: &Tally, now: Instant) -> bool {
        now.saturating_duration_since(tally.since) >= self.window
    }

    /// Forgets every address whose window has passed, or, when none has,
    /// the one whose window started first.
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.by_client
            .retain(|_, tally| now.saturating_duration_since(tally.since) < window);
        if self.by_client.len() < self.capacity {
            return;
        }
        let oldest = self
            .by_client
            .iter()
            .min_by_key(|(_, tally)| tally.since)
            .map(|(ip, _)| *ip);
        if let Some(ip) = oldest {
            self.by_client.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn the_limit_holds_until_the_window_has_passed() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(3, Duration::from_secs(60), 10);
        for n in 0..3 {
            assert!(!failures.refuses(ip(1), start + Duration::from_secs(n)));
            failures.record(ip(1), start + Duration::from_secs(n));
        }
        assert!(failures.refuses(ip(1), start + Duration::from_secs(3)));
        assert!(failures.refuses(ip(1), start + Duration::from_secs(59)));
        // Another address is not affected.
        assert!(!failures.refuses(ip(2), start + Duration::from_secs(3)));
        // The window began at the first failure; once it has passed, the
        // address starts afresh, with a new window.
        let later = start + Duration::from_secs(60);
        assert!(!failures.refuses(ip(1), later));
        failures.record(ip(1), later);
        assert!(!failures.refuses(ip(1), later));
        failures.record(ip(1), later + Duration::from_secs(1));
        failures.record(ip(1), later + Duration::from_secs(2));
        assert!(failures.refuses(ip(1), later + Duration::from_secs(2)));
        assert!(!failures.refuses(ip(1), later + Duration::from_secs(60)));
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_add_up() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(2, Duration::from_secs(10), 10);
        for n in 0..10 {
            let now = start + Duration::from_secs(n * 10);
            failures.record(ip(1), now);
            assert!(!failures.refuses(ip(1), now));
        }
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let start = Instant::now();
        let mut failures = AuthFailures::new(1, Duration::from_secs(60), 3);
        for n in 1..=3 {
            failures.record(ip(n), start + Duration::from_secs(n as u64));
        }
        assert_eq!(failures.len(), 3);
        // A fourth address: the first (oldest window) is forgotten.
        failures.record(ip(4), start + Duration::from_secs(4));
        assert_eq!(failures.len(), 3);
        let now = start + Duration::from_secs(5);
        assert!(!failures.refuses(ip(1), now));
        for n in 2..=4 {
            assert!(failures.refuses(ip(n), now), "{n}");
        }
        // A known address does not evict anyone.
        failures.record(ip(3), now);
        assert_eq!(failures.len(), 3);
        assert!(failures.refuses(ip(2), now));
        // Once windows have passed, a newcomer clears them all out.
        let much_later = start + Duration::from_secs(200);
        failures.record(ip(9), much_later);
        assert_eq!(failures.len(), 1);
        assert!(failures.refuses(ip(9), much_later));
    }
}
