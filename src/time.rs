//! Dates as mail wants them (RFC 5322 3.3), without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// The months as mail (RFC 5322 3.3), syslog (RFC 3164) and HTTP
/// (RFC 9110 5.6.7) dates name them.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the Unix epoch; 0 for a clock set before it.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When this binary was built (seconds since the Unix epoch), as build.rs
/// found it: `SOURCE_DATE_EPOCH`, else the time of the git commit built.
/// A clock before it is certainly wrong.
pub fn build_time() -> Option<u64> {
    option_env!("TINYMTA_BUILD_TIME").and_then(|secs| secs.parse().ok())
}

/// `Sun, 22 Nov 2026 16:36:47 +0000` for a Unix time, in UTC.
pub fn rfc5322_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = unix_secs / 86400;
    let secs = unix_secs % 86400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-12-03T10:06:52.451815Z`: an RFC 3339 (5.6) time in UTC, to the
/// microsecond, for log records; a clock before 1970 reads as 1970.
pub fn rfc3339_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs % 86400 / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_micros()
    )
}

/// `Nov 22 16:36:47`: the RFC 3164 timestamp, in UTC.
pub fn syslog_timestamp(unix_secs: u64) -> String {
    let (_, month, day) = civil_from_days((unix_secs / 86400) as i64);
    let secs = unix_secs % 86400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 -> (year, month 1-12, day 1-31), proleptic Gregorian
/// (the era-based method of H. Hinnant's "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month 1-12, day 1-31) -> days since 1970-01-01, proleptic
/// Gregorian: the inverse of [`civil_from_days`] (H. Hinnant's
/// days_from_civil).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_undoes_civil_from_days() {
        for days in [-719_468, -1, 0, 59, 60, 10_956, 20_790, 2_932_896] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month.into(), day.into()), days);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_364_407),
            "Sun, 22 Nov 2026 16:20:07 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(4_133_980_799),
            "Fri, 31 Dec 2100 23:59:59 +0000"
        );
    }
}
