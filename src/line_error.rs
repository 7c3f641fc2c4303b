//! The error of every line-based file tinymta reads (the config, the users
//! file, the aliases file, a queue envelope): which file, which line, which
//! key, and what is wrong there; and [`ValueError`], what a value parser
//! says is wrong with one value before the line's place is put to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem at one line of a file, printed `file:line: key: message`.
///
/// Without a key, `key: ` is left out. Line 0 is the file as a whole (it
/// cannot be read, or something is missing from it) and prints `file: `.
/// Text parsed without a file (an envelope, whose caller names the queue
/// file itself) prints `line N: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Empty when the text was parsed without a file.
    pub file: PathBuf,
    /// 1 for the first line; 0 for the file as a whole.
    pub line: usize,
    /// The config key the line sets; empty in files without keys.
    pub key: String,
    pub message: String,
}

impl LineError {
    /// An error at `line` of text parsed without a file or key.
    pub fn new(line: usize, message: impl Into<String>) -> LineError {
        LineError {
            file: PathBuf::new(),
            line,
            key: String::new(),
            message: message.into(),
        }
    }

    /// The same error, in `file`.
    pub fn in_file(self, file: &Path) -> LineError {
        LineError {
            file: file.to_path_buf(),
            ..self
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.as_os_str().is_empty() {
            write!(f, "line {}: ", self.line)?;
        } else if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}: ", self.file.display(), self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LineError {}

/// What is wrong with one value: the `message` of the [`LineError`] it
/// becomes at once, when the caller puts the file, line and key to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// Not of the form the key takes: `expected {what}, found "{found}"`.
    Expected { what: &'static str, found: String },
    /// A count that must be at least 1 was 0.
    Zero,
    /// Anything else, in words that name the part at fault (`priority:
    /// ...`, `unknown transport "sms" (...)`): these texts are documented
    /// and tested, so they are kept whole rather than rebuilt from parts.
    Invalid(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Expected { what, found } => write!(f, "expected {what}, found {found:?}"),
            ValueError::Zero => f.write_str("must be at least 1"),
            ValueError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ValueError {}

impl ValueError {
    /// `expected {what}, found "{found}"`.
    pub fn expected(what: &'static str, found: &str) -> ValueError {
        ValueError::Expected {
            what,
            found: found.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_it_prints() {
        let error = LineError {
            key: "listen".to_string(),
            ..LineError::new(3, "no listener").in_file(Path::new("t.conf"))
        };
        assert_eq!(error.to_string(), "t.conf:3: listen: no listener");
        let users = Path::new("/etc/users");
        assert_eq!(
            LineError::new(2, "expected name:hash")
                .in_file(users)
                .to_string(),
            "/etc/users:2: expected name:hash"
        );
        assert_eq!(
            LineError::new(0, "No such file").in_file(users).to_string(),
            "/etc/users: No such file"
        );
        assert_eq!(
            LineError::new(0, "not UTF-8").to_string(),
            "line 0: not UTF-8"
        );
    }
}
