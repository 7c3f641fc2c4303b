//! Push services as one more kind of destination: a `route` line sends the
//! mail of an address (or of a whole domain) to ntfy, Gotify, Telegram,
//! Discord, Slack, Pushover or a generic webhook, through the same queue,
//! retries and bounces as mail.
//!
//! ```text
//! mod.rs           the secrets a route names, read at start-up
//! notification     a queued message -> title, text, priority (mail-parser)
//! html             an HTML part as plain text
//! service          a notification -> the HTTP request one service documents
//! job              a push job: request, HTTP outcome -> delivered, deferred,
//!                  fallback mail or bounce
//! ```

pub mod html;
pub mod job;
pub mod notification;
pub mod service;

use std::fmt;
use std::path::{Path, PathBuf};

use super::SettingsError;
use crate::config::route::{Endpoint, PushRoute};

/// The secrets of the push routes, read from their files at start-up
/// (before the privilege drop: the files may be root's alone). Never
/// logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PushSecrets {
    by_file: Vec<(PathBuf, String)>,
}

impl fmt::Debug for PushSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PushSecrets({} files)", self.by_file.len())
    }
}

impl PushSecrets {
    /// Reads the first line of each secret file the routes name.
    /// A `url_file` must hold a URL: that is checked here, at start-up.
    pub fn read(routes: &[PushRoute]) -> Result<PushSecrets, SettingsError> {
        let mut by_file: Vec<(PathBuf, String)> = Vec::new();
        for route in routes {
            for file in route.secret_files() {
                if by_file.iter().any(|(f, _)| f == file) {
                    continue;
                }
                let text =
                    std::fs::read_to_string(file).map_err(|error| SettingsError::SecretFile {
                        path: file.to_path_buf(),
                        error,
                    })?;
                let secret = text.lines().next().unwrap_or_default().trim().to_string();
                if secret.is_empty() {
                    return Err(SettingsError::EmptySecret(file.to_path_buf()));
                }
                if route.endpoint == Endpoint::File(file.to_path_buf()) {
                    // The URL itself is the secret: not in the error.
                    crate::url::Url::parse(&secret)
                        .map_err(|_| SettingsError::SecretNotUrl(file.to_path_buf()))?;
                }
                by_file.push((file.to_path_buf(), secret));
            }
        }
        Ok(PushSecrets { by_file })
    }

    /// Secrets given as they are, by file.
    pub fn from_pairs(by_file: Vec<(PathBuf, String)>) -> PushSecrets {
        PushSecrets { by_file }
    }

    /// Every file a secret was read from.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.by_file.iter().map(|(file, _)| file.as_path())
    }

    /// The secret read from `file`.
    pub fn get(&self, file: &Path) -> Option<&str> {
        self.by_file
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, secret)| secret.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::route::PushRoute;

    fn route(value: &str) -> PushRoute {
        PushRoute::parse(value).unwrap()
    }

    #[test]
    fn secrets_come_from_the_first_line_of_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tk_secret \nsecond line\n").unwrap();
        let routes = vec![route(&format!(
            "nas@push ntfy url=https://h/x token_file={}",
            token.display()
        ))];
        let secrets = PushSecrets::read(&routes).unwrap();
        assert_eq!(secrets.get(&token), Some("tk_secret"));
        assert_eq!(format!("{secrets:?}"), "PushSecrets(1 files)");
        std::fs::write(&token, "\n").unwrap();
        assert_eq!(
            PushSecrets::read(&routes).unwrap_err().to_string(),
            format!("route: {}: empty", token.display())
        );
    }
}
