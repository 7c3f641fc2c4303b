//! RFC 3463 enhanced status codes (`class.subject.detail`), as delivery
//! records them for each failed recipient and as bounces report them.

use std::fmt;

/// An enhanced status code: `5.1.1` is class 5 (permanent), subject 1
/// (addressing), detail 1 (no such mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Status {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// `4.0.0` or `5.0.0`: what a reply that says no more than its basic
    /// code means (RFC 3463 3.1, "other undefined status").
    pub fn undefined(permanent: bool) -> Status {
        Status::new(if permanent { 5 } else { 4 }, 0, 0)
    }

    /// One word such as `5.1.10`: class 2, 4 or 5, then subject and detail
    /// of one to three digits each (RFC 3463 2).
    pub fn parse(word: &str) -> Option<Status> {
        let mut parts = word.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !matches!(class, "2" | "4" | "5") {
            return None;
        }
        let number = |part: &str| {
            let digits = (1..=3).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| part.parse::<u16>().ok()).flatten()
        };
        Some(Status::new(
            class.parse().ok()?,
            number(subject)?,
            number(detail)?,
        ))
    }

    /// The code that starts a server's reply text (RFC 2034 3: it follows the
    /// basic code, `550 5.1.1 no such user`), if the server gave one.
    pub fn of_reply_text(text: &str) -> Option<Status> {
        text.split_ascii_whitespace().next().and_then(Status::parse)
    }

    /// The first code anywhere in a text: how the status of a failure was
    /// read from its text before envelopes stored it (see queue.rs).
    pub fn find_in(text: &str) -> Option<Status> {
        text.split_ascii_whitespace().find_map(Status::parse)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_and_written() {
        assert_eq!(Status::parse("5.1.10"), Some(Status::new(5, 1, 10)));
        assert_eq!(Status::new(5, 1, 10).to_string(), "5.1.10");
        assert_eq!(Status::parse("4.4.7").unwrap().to_string(), "4.4.7");
        for bad in [
            "3.1.1", "5.1", "5.1.1.1", "5.1234.1", "5..1", "x.1.1", "550",
        ] {
            assert_eq!(Status::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Status::of_reply_text("5.7.1 go away"),
            Some(Status::new(5, 7, 1))
        );
        assert_eq!(Status::of_reply_text("see 5.7.1"), None);
        assert_eq!(
            Status::find_in("mx[1.2.3.4]:25 said: 550 5.1.1 no"),
            Some(Status::new(5, 1, 1))
        );
        assert_eq!(Status::find_in("connection refused 1.2.3.4"), None);
        assert_eq!(Status::undefined(true).to_string(), "5.0.0");
        assert_eq!(Status::undefined(false).to_string(), "4.0.0");
    }
}
