//! Logging targets: standard error (for a supervisor that captures it) or a
//! file, which SIGHUP reopens (after logrotate moved it away).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
    let (result, handle) = match &config.log {
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
