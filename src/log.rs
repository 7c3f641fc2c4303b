//! Logging targets: standard error (for a supervisor that captures it) or a file.

use std::fs::OpenOptions;

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};

use crate::config::{Config, LogTarget};

/// Sets up the global logger from the config; an error names the log file.
pub fn init(config: &Config) -> Result<(), String> {
    let format = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    let result = match &config.log {
        LogTarget::Stderr => WriteLogger::init(config.log_level, format, std::io::stderr()),
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            WriteLogger::init(config.log_level, format, file)
        }
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}
