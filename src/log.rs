//! Logging targets: standard error (for a supervisor that captures it), a
//! file, which SIGHUP reopens (after logrotate moved it away), or syslog
//! (one datagram per record to /dev/log, so busybox `logread` shows it).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};

use crate::config::{Config, LogTarget};

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
}

/// What the logger writes to: the current log file.
struct Shared(Arc<LogFile>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Sets up the global logger from the config; an error names the log file.
pub fn init(config: &Config) -> Result<LogHandle, String> {
    let format = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    // The logger lets everything through; log::set_max_level filters, so
    // that SIGHUP can change the level.
    if config.log == LogTarget::Syslog {
        let logger = Syslog {
            socket: UnixDatagram::unbound().map_err(|e| format!("syslog: {e}"))?,
            path: config.syslog_socket.clone(),
            pid: std::process::id(),
        };
        log::set_boxed_logger(Box::new(logger))
            .map_err(|e| format!("cannot set up logging: {e}"))?;
        log::set_max_level(config.log_level);
        return Ok(LogHandle::default());
    }
    let (result, handle) = match &config.log {
        LogTarget::Syslog => unreachable!("handled above"),
        LogTarget::Stderr => (
            WriteLogger::init(LevelFilter::Trace, format, io::stderr()),
            LogHandle::default(),
        ),
        LogTarget::File(path) => {
            let file = open_append(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            let log = Arc::new(LogFile {
                path: path.clone(),
                file: Mutex::new(file),
            });
            (
                WriteLogger::init(LevelFilter::Trace, format, Shared(Arc::clone(&log))),
                LogHandle { file: Some(log) },
            )
        }
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))?;
    log::set_max_level(config.log_level);
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
        let severity = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let mut message = record.args().to_string();
        if message.len() > MAX_SYSLOG_MESSAGE {
            let mut cut = MAX_SYSLOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let line = format!(
            "<{}>{} tinymta[{}]: {}",
            FACILITY_MAIL * 8 + severity,
            crate::time::syslog_timestamp(crate::time::unix_now()),
            self.pid,
            message.replace('\n', " ")
        );
        let _ = self.socket.send_to(line.as_bytes(), &self.path);
    }

    fn flush(&self) {}
}
