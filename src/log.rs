//! Logging targets: standard error (for a supervisor that captures it), a
//! file, which SIGHUP reopens (after logrotate moved it away), or syslog
//! (one datagram per record to /dev/log, so busybox `logread` shows it).
//!
//! A record is one line in every target, and nobody but tinymta writes its
//! lines. Text that came from a client or an upstream server (an EHLO name,
//! an address, an AUTH name, a Message-ID, a reply text) goes into a record
//! through [`Escaped`]: control characters escaped, backslash too, so the
//! escaping can be undone, and the length capped. Each target then cleans
//! the whole record once more ([`clean_record`]), so that text a caller
//! forgot to escape can still not start a line of its own.

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The log file, if logging goes to one, for reopening.
#[derive(Clone, Default)]
pub struct LogHandle {
    file: Option<Arc<LogFile>>,
}

struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogHandle {
    /// Opens the log file anew; on failure the old one stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        if let Some(log) = &self.file {
            let file = open_append(&log.path)?;
            *log.file.lock().unwrap_or_else(|p| p.into_inner()) = file;
        }
        Ok(())
    }

    /// The log file's path, when logging goes to one.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|log| log.path.as_path())
    }

    /// Gives the open log file to the user the daemon becomes, so that it
    /// can still open it after the privilege drop (SIGHUP reopens it). Only
    /// a plain file with one name is given away: never a device (`log =
    /// /dev/console`), nor a hard link someone made to a file of root's.
    pub fn give_to(&self, uid: u32, gid: u32) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(log) = &self.file else {
            return Ok(());
        };
        let file = log.file.lock().unwrap_or_else(|p| p.into_inner());
        let meta = file.metadata()?;
        if !meta.is_file() || (meta.uid() == uid && meta.gid() == gid) {
            return Ok(());
        }
        if meta.nlink() != 1 {
            return Err(io::Error::other(format!(
                "{} has {} names (hard links): not given to uid {uid}",
                log.path.display(),
                meta.nlink()
            )));
        }
        std::os::unix::fs::fchown(&*file, Some(uid), Some(gid))
    }
}

/// Records as lines, `2026-12-03T10:06:52.451815Z [INFO] text`, to standard
/// error or the log file. Each record is written whole, in one write(2): a
/// reader (`tail -f`, a log shipper) never sees half a line, and a second
/// process appending to the same file (sendmail beside the daemon) cannot
/// put its record in the middle of ours, as O_APPEND puts each write at
/// the end in one piece.
struct Lines {
    target: LineTarget,
}

enum LineTarget {
    Stderr,
    File(Arc<LogFile>),
}

impl Lines {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        match &self.target {
            LineTarget::Stderr => io::stderr().lock().write_all(line),
            LineTarget::File(log) => log
                .file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line),
        }
    }
}

impl log::Log for Lines {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = record_line(
            std::time::SystemTime::now(),
            record.level(),
            &record.args().to_string(),
        );
        // Logging never stops mail: a full disk loses the record.
        let _ = self.write_line(line.as_bytes());
    }

    fn flush(&self) {}
}

/// One record as a line of the log file or standard error, its text
/// cleaned ([`clean_record`]) so that it stays one line.
fn record_line(now: std::time::SystemTime, level: log::Level, message: &str) -> String {
    format!(
        "{} [{level}] {}\n",
        crate::time::rfc3339_timestamp(now),
        clean_record(message, MAX_LOG_RECORD)
    )
}

/// Opens the log file to append to, made if missing; never through a
/// symlink: root opens it at start-up in a directory the daemon's user may
/// write, where a symlink could point it at any file.
fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(crate::sys::O_NOFOLLOW)
        .open(path)
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stderr,
    /// Appended to this file, which SIGHUP reopens.
    File(PathBuf),
    /// Datagrams to this syslog socket, facility mail.
    Syslog(PathBuf),
}

/// Why logging could not be set up; the daemon does not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// No datagram socket for syslog.
    Syslog(io::Error),
    /// A logger was set already.
    Logger(log::SetLoggerError),
    OpenFile {
        path: PathBuf,
        error: io::Error,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Syslog(error) => write!(f, "syslog: {error}"),
            LogError::Logger(error) => write!(f, "cannot set up logging: {error}"),
            LogError::OpenFile { path, error } => {
                write!(f, "cannot open log file {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LogError {}

/// Sets up the global logger, records up to `level` going to `target`; an
/// error names the log file.
pub fn init(target: &Target, level: log::LevelFilter) -> Result<LogHandle, LogError> {
    // The logger lets everything through; log::set_max_level filters, so
    // that SIGHUP can change the level.
    let (target, handle) = match target {
        Target::Syslog(socket) => {
            let logger = Syslog {
                socket: UnixDatagram::unbound().map_err(LogError::Syslog)?,
                path: socket.clone(),
                pid: std::process::id(),
            };
            log::set_boxed_logger(Box::new(logger)).map_err(LogError::Logger)?;
            log::set_max_level(level);
            return Ok(LogHandle::default());
        }
        Target::Stderr => (LineTarget::Stderr, LogHandle::default()),
        Target::File(path) => {
            let file = open_append(path).map_err(|error| LogError::OpenFile {
                path: path.clone(),
                error,
            })?;
            let log = Arc::new(LogFile {
                path: path.clone(),
                file: Mutex::new(file),
            });
            (
                LineTarget::File(Arc::clone(&log)),
                LogHandle { file: Some(log) },
            )
        }
    };
    log::set_boxed_logger(Box::new(Lines { target })).map_err(LogError::Logger)?;
    log::set_max_level(level);
    Ok(handle)
}

/// RFC 3164 records to the local syslog socket: facility mail (2),
/// `<PRI>Mmm dd hh:mm:ss tinymta[PID]: message`. A record that cannot be
/// sent (no syslogd) is dropped: logging never stops mail.
struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    pid: u32,
}

/// RFC 5424 6.2.1 facility mail.
const FACILITY_MAIL: u8 = 2;
/// Longest message sent in one datagram (syslogd's line limit is 1024).
const MAX_SYSLOG_MESSAGE: usize = 1000;

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let datagram = syslog_datagram(record.level(), self.pid, &message);
        let _ = self.socket.send_to(datagram.as_bytes(), &self.path);
    }

    fn flush(&self) {}
}

/// One record as an RFC 3164 datagram.
fn syslog_datagram(level: log::Level, pid: u32, message: &str) -> String {
    let severity = match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    format!(
        "<{}>{} tinymta[{pid}]: {}",
        FACILITY_MAIL * 8 + severity,
        crate::time::syslog_timestamp(crate::time::unix_now()),
        clean_record(message, MAX_SYSLOG_MESSAGE)
    )
}

/// Sends one error record to the syslog socket, whatever the log target:
/// for the error that stops the daemon at start-up where nothing else
/// would keep it (standard error not a terminal, as under
/// `start-stop-daemon -b`, or a log file that could not be opened).
pub fn error_to_syslog(socket: &Path, message: &str) -> io::Result<()> {
    let datagram = syslog_datagram(log::Level::Error, std::process::id(), message);
    UnixDatagram::unbound()?
        .send_to(datagram.as_bytes(), socket)
        .map(|_| ())
}

/// Longest record written to a log file or standard error; a longer one is
/// cut and marked (a runaway error text must not fill the disk).
pub const MAX_LOG_RECORD: usize = 4096;

/// Longest piece of client or upstream text in a record, counted escaped:
/// an SMTP command line's length (RFC 5321 4.5.3.1.4), so a whole EHLO
/// name or reply line fits. Past it the text is cut and marked.
pub const MAX_LOGGED_TEXT: usize = 512;

/// Untrusted text for a log record: `\r`, `\n`, `\t` and `\\` as such,
/// other control characters (C0, DEL, C1) as `\xNN`, Unicode line
/// separators and bidirectional controls as `\u{NNNN}`, and at most
/// [`MAX_LOGGED_TEXT`] bytes of that, then `...[N bytes cut]`.
///
/// `log::info!("AUTH as {} from {ip}", Escaped(&user))`
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, Backslash::Escape, MAX_LOGGED_TEXT)
    }
}

/// A record's text as the targets write it: one line, with no control
/// characters, at most `max` bytes (then marked as cut). It escapes what
/// [`Escaped`] escapes but the backslash, so that text escaped before is
/// left as it is; it is the last line of defence, not the escaping.
pub fn clean_record(message: &str, max: usize) -> Cow<'_, str> {
    if message.len() <= max
        && message
            .chars()
            .all(|c| escape(c, Backslash::Keep).is_none())
    {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(max) + 24);
    let _ = write_escaped(&mut out, message, Backslash::Keep, max);
    Cow::Owned(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backslash {
    Escape,
    Keep,
}

/// How one character is written, when not as itself.
enum CharEscape {
    Short(&'static str),
    Hex(u32),
    Unicode(u32),
}

impl CharEscape {
    fn len(&self) -> usize {
        match self {
            CharEscape::Short(s) => s.len(),
            CharEscape::Hex(_) => 4,
            CharEscape::Unicode(c) => format_len_hex(*c) + 4,
        }
    }
}

impl fmt::Display for CharEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CharEscape::Short(s) => f.write_str(s),
            CharEscape::Hex(c) => write!(f, "\\x{c:02x}"),
            CharEscape::Unicode(c) => write!(f, "\\u{{{c:x}}}"),
        }
    }
}

fn format_len_hex(c: u32) -> usize {
    (32 - c.leading_zeros()).div_ceil(4).max(1) as usize
}

fn escape(c: char, backslash: Backslash) -> Option<CharEscape> {
    match c {
        '\r' => Some(CharEscape::Short("\\r")),
        '\n' => Some(CharEscape::Short("\\n")),
        '\t' => Some(CharEscape::Short("\\t")),
        '\\' if backslash == Backslash::Escape => Some(CharEscape::Short("\\\\")),
        // C0, DEL and C1 (U+0080 to U+009F, NEL among them).
        c if c.is_control() => Some(CharEscape::Hex(u32::from(c))),
        // Line and paragraph separators, which some viewers break lines at,
        // and the bidirectional controls, which reorder what a reader sees.
        '\u{2028}'
        | '\u{2029}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Some(CharEscape::Unicode(u32::from(c))),
        _ => None,
    }
}

/// Writes `text` escaped, at most `max` bytes of it, then a mark saying
/// how many bytes of `text` were left out.
fn write_escaped(
    out: &mut impl fmt::Write,
    text: &str,
    backslash: Backslash,
    max: usize,
) -> fmt::Result {
    let mut written = 0;
    for (i, c) in text.char_indices() {
        let escaped = escape(c, backslash);
        let len = escaped.as_ref().map_or(c.len_utf8(), CharEscape::len);
        if written + len > max {
            return write!(out, "...[{} bytes cut]", text.len() - i);
        }
        match escaped {
            Some(escaped) => write!(out, "{escaped}")?,
            None => out.write_char(c)?,
        }
        written += len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        Escaped(text).to_string()
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escaped("mail.example.org"), "mail.example.org");
        assert_eq!(
            escaped("<a.b+c@example.org> ünïcode"),
            "<a.b+c@example.org> ünïcode"
        );
        assert!(matches!(
            clean_record("a\\b ok", MAX_LOG_RECORD),
            Cow::Borrowed("a\\b ok")
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escaped("x\r\nforged: line"), "x\\r\\nforged: line");
        assert_eq!(escaped("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escaped("\0\x07\x7f\t"), "\\x00\\x07\\x7f\\t");
        // C1 controls: NEL and CSI.
        assert_eq!(escaped("a\u{85}b\u{9b}"), "a\\x85b\\x9b");
        assert_eq!(escaped("a\u{2028}b\u{202e}c"), "a\\u{2028}b\\u{202e}c");
    }

    #[test]
    fn no_character_comes_out_raw_if_it_could_break_a_line() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            for out in [escaped(&text), clean_record(&text, 64).into_owned()] {
                assert!(
                    out.chars()
                        .all(|o| !o.is_control() && escape(o, Backslash::Keep).is_none()),
                    "{c:?} -> {out:?}"
                );
            }
        }
    }

    #[test]
    fn the_backslash_is_escaped_so_the_escaping_is_unambiguous() {
        // A client that sends the four characters `\x1b` is told apart from
        // one that sends ESC.
        assert_eq!(escaped("\\x1b"), "\\\\x1b");
        assert_eq!(escaped("\x1b"), "\\x1b");
        assert_eq!(escaped("a\\r\r"), "a\\\\r\\r");
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let long = "a".repeat(MAX_LOGGED_TEXT + 100);
        let shown = escaped(&long);
        assert_eq!(
            shown,
            format!("{}...[100 bytes cut]", "a".repeat(MAX_LOGGED_TEXT))
        );
        // The cap counts the escaped form, and never splits an escape or a
        // character.
        let controls = "\n".repeat(MAX_LOGGED_TEXT);
        let shown = escaped(&controls);
        assert!(shown.starts_with(&"\\n".repeat(MAX_LOGGED_TEXT / 2)));
        assert!(shown.ends_with(&format!("...[{} bytes cut]", MAX_LOGGED_TEXT / 2)));
        let wide = "é".repeat(MAX_LOGGED_TEXT);
        let shown = escaped(&wide);
        assert!(shown.starts_with(&"é".repeat(MAX_LOGGED_TEXT / 2)));
        assert_eq!(escaped(&"a".repeat(MAX_LOGGED_TEXT)).len(), MAX_LOGGED_TEXT);
    }

    #[test]
    fn a_record_is_one_line_whatever_the_caller_forgot() {
        let record = format!("AUTH as {} from ::1", "x\r\nforged: line\x1b[2J");
        let cleaned = clean_record(&record, MAX_LOG_RECORD);
        assert_eq!(cleaned, "AUTH as x\\r\\nforged: line\\x1b[2J from ::1");
        // Text escaped before is not escaped twice.
        let once = format!("AUTH as {} from ::1", Escaped("x\r\n\\"));
        assert_eq!(clean_record(&once, MAX_LOG_RECORD), once);
        let long = "b".repeat(MAX_SYSLOG_MESSAGE + 1);
        assert_eq!(
            clean_record(&long, MAX_SYSLOG_MESSAGE),
            format!("{}...[1 bytes cut]", "b".repeat(MAX_SYSLOG_MESSAGE))
        );
    }

    #[test]
    fn the_file_target_writes_one_line_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let logger = Lines {
            target: LineTarget::File(Arc::new(LogFile {
                path: path.clone(),
                file: Mutex::new(open_append(&path).unwrap()),
            })),
        };
        log::set_max_level(log::LevelFilter::Trace);
        for (level, text) in [(log::Level::Info, "first"), (log::Level::Warn, "second")] {
            log::Log::log(
                &logger,
                &log::Record::builder()
                    .level(level)
                    .args(format_args!(
                        "{text} from {}: x\r\nforged: line",
                        "c\x1b]0;t\x07"
                    ))
                    .build(),
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(
            lines[0].ends_with("Z [INFO] first from c\\x1b]0;t\\x07: x\\r\\nforged: line"),
            "{text:?}"
        );
        assert!(lines[1].contains("Z [WARN] second from"), "{text:?}");
    }

    #[test]
    fn a_record_line_has_the_time_the_level_and_the_cleaned_text() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(1_796_292_412, 451_815_081);
        assert_eq!(
            record_line(at, log::Level::Info, "accepted\nforged"),
            "2026-12-03T10:06:52.451815Z [INFO] accepted\\nforged\n"
        );
        assert_eq!(
            record_line(std::time::UNIX_EPOCH, log::Level::Error, "x"),
            "1970-01-01T00:00:00.000000Z [ERROR] x\n"
        );
    }
}
