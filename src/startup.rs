//! The checks before start: what `tinymta -t` says beyond the config
//! itself (the account, the directories and files the daemon reads or
//! makes), and the warnings the daemon logs once at start-up about mail at
//! risk on a router and about settings that weaken security. The warnings
//! are made from values handed in (the spool's file system, the clock, the
//! secret files), so that each can be tested without the machine that
//! would give it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, LogTarget};
use crate::deliver::{DeliverySettings, SettingsError};
use crate::log::LogError;
use crate::server::ServerError;
use crate::spool::SpoolError;
use crate::sys::{self, PrivilegeError};

/// Why the daemon cannot start: printed after `tinymta: ` (and logged
/// where the log has a target of its own); `-t` prints the same texts.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// `user` names no account (and tinymta will not run as root).
    NoUser(String),
    /// The user or group database could not be asked about `name`.
    LookUp {
        what: &'static str,
        name: String,
        error: io::Error,
    },
    /// A config error found only at start-up (`submit_group` is the
    /// user's own group).
    Config(ConfigError),
    /// The file a key names (`log`, `pid_file`) cannot be opened or written.
    File {
        key: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// That file is missing and its directory is not writable.
    CannotMake {
        key: &'static str,
        path: PathBuf,
    },
    /// A step on a directory failed: `{doing}{path}: {error}`, `doing`
    /// being `cannot create ` and the like, or empty.
    Io {
        doing: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// lchown failed: `cannot give {what}{path} to {user}`, `what` being
    /// empty or `the log file `.
    GiveAway {
        what: &'static str,
        path: PathBuf,
        user: String,
        error: io::Error,
    },
    /// What should be a directory of the spool is not (a symlink?).
    NotADirectory(PathBuf),
    /// Directories that belong to another user, each said in words.
    Ownership(Vec<String>),
    Spool(SpoolError),
    Delivery(SettingsError),
    Log(LogError),
    Privileges(PrivilegeError),
    /// A `listen` address could not be bound.
    Bind(ServerError),
    /// A thread could not be started: `cannot start the {what}`.
    Thread {
        what: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NoUser(user) => write!(
                f,
                "user {user:?} does not exist: create it, or name another in `user` (tinymta will not run as root)"
            ),
            StartError::LookUp { what, name, error } => {
                write!(f, "cannot look up {what} {name:?}: {error}")
            }
            StartError::Config(error) => error.fmt(f),
            StartError::File { key, path, error } => {
                write!(f, "{key} {}: {error}", path.display())
            }
            StartError::CannotMake { key, path } => write!(
                f,
                "{key} {} cannot be made: its directory is not writable",
                path.display()
            ),
            StartError::Io { doing, path, error } => {
                write!(f, "{doing}{}: {error}", path.display())
            }
            StartError::GiveAway {
                what,
                path,
                user,
                error,
            } => write!(f, "cannot give {what}{} to {user}: {error}", path.display()),
            StartError::NotADirectory(path) => {
                write!(f, "{} is not a directory (a symlink?)", path.display())
            }
            StartError::Ownership(problems) => f.write_str(&problems.join("; ")),
            StartError::Spool(error) => write!(f, "spool: {error}"),
            StartError::Delivery(error) => error.fmt(f),
            StartError::Log(error) => error.fmt(f),
            StartError::Privileges(error) => error.fmt(f),
            StartError::Bind(error) => error.fmt(f),
            StartError::Thread { what, error } => write!(f, "cannot start the {what}: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<SettingsError> for StartError {
    fn from(error: SettingsError) -> StartError {
        StartError::Delivery(error)
    }
}

impl From<LogError> for StartError {
    fn from(error: LogError) -> StartError {
        StartError::Log(error)
    }
}

impl From<PrivilegeError> for StartError {
    fn from(error: PrivilegeError) -> StartError {
        StartError::Privileges(error)
    }
}

/// What `-t` says beyond the config itself (which loaded the certificate,
/// the users file and the aliases): everything else the daemon reads or
/// makes at start-up. As root, the user must exist and own the
/// directories; otherwise they must belong to whoever runs it.
pub fn startup_problems(config: &Config) -> Vec<String> {
    let mut problems = if sys::is_root() {
        match find_account(config) {
            Ok(account) => {
                let mut problems = ownership_problems(config, account.uid);
                problems.extend(submit_group(config, &account).err().map(|e| e.to_string()));
                problems
            }
            Err(e) => vec![e.to_string()],
        }
    } else {
        ownership_problems(config, sys::effective_uid())
    };
    // tls_ca_file and the smarthost password.
    problems.extend(
        DeliverySettings::load(config, None)
            .err()
            .map(|e| e.to_string()),
    );
    if !config.spool_dir.exists() && !may_create(&config.spool_dir, None) {
        problems.push(format!(
            "spool_dir {} cannot be made: its parent directory is not writable",
            config.spool_dir.display()
        ));
    }
    if let LogTarget::File(path) = &config.log {
        problems.extend(file_problem("log", path, true).err().map(|e| e.to_string()));
    }
    if let Some(path) = &config.pid_file {
        problems.extend(
            file_problem("pid_file", path, false)
                .err()
                .map(|e| e.to_string()),
        );
    }
    problems
}

/// Whether the file the daemon writes at start-up (the log, appended to,
/// or the pid file) can be opened, or made where it is missing; nothing
/// is made or changed.
fn file_problem(key: &'static str, path: &Path, append: bool) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::symlink_metadata(path).is_ok() {
        let mut options = std::fs::OpenOptions::new();
        if append {
            options.append(true).custom_flags(sys::O_NOFOLLOW);
        } else {
            options.write(true);
        }
        return options
            .open(path)
            .map(drop)
            .map_err(|error| StartError::File {
                key,
                path: path.to_path_buf(),
                error,
            });
    }
    if may_create(path, None) {
        Ok(())
    } else {
        Err(StartError::CannotMake {
            key,
            path: path.to_path_buf(),
        })
    }
}

/// The account named by `user`, which must exist when started as root.
pub fn find_account(config: &Config) -> Result<sys::Account, StartError> {
    match sys::find_user(&config.user) {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(StartError::NoUser(config.user.clone())),
        Err(error) => Err(StartError::LookUp {
            what: "user",
            name: config.user.clone(),
            error,
        }),
    }
}

/// The gid of `submit_group`; `None` where no such group exists (then only
/// root and the daemon's user can queue). It must not be the daemon's own
/// group: the daemon reads the maildrop's files as "other" (mode 0604), so
/// that the group that submits can read none of them.
pub(crate) fn submit_group(
    config: &Config,
    account: &sys::Account,
) -> Result<Option<u32>, StartError> {
    match sys::find_group(&config.submit_group) {
        Ok(Some(gid)) if gid == account.gid => Err(StartError::Config(config.error_at(
            "submit_group",
            &format!(
                "{} is the group of user {}: choose a group of its own for the set-group-id binary",
                config.submit_group, account.name
            ),
        ))),
        Ok(Some(gid)) => Ok(Some(gid)),
        Ok(None) => {
            ::log::info!(
                "no group {:?}: only root and {} can queue mail",
                config.submit_group,
                account.name
            );
            Ok(None)
        }
        Err(error) => Err(StartError::LookUp {
            what: "group",
            name: config.submit_group.clone(),
            error,
        }),
    }
}

/// Directories that exist and do not belong to `uid`.
pub(crate) fn ownership_problems(config: &Config, uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut problems = Vec::new();
    for (key, dir) in [
        ("spool_dir", &config.spool_dir),
        ("mailbox_dir", &config.mailbox_dir),
    ] {
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.uid() != uid {
                problems.push(format!(
                    "{key} {} belongs to uid {}, not to uid {uid}",
                    dir.display(),
                    meta.uid()
                ));
            }
        }
    }
    problems
}

/// Whether `who` may make files in `dir`; `None` is this process. For
/// another user, its owner, group and other bits are read as they apply
/// to it after the privilege drop (its own group, no others).
pub(crate) fn writable_by(dir: &Path, who: Option<&sys::Account>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(account) = who else {
        return dir.is_dir() && sys::may_write_dir(dir);
    };
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let bits = if account.uid == meta.uid() {
        meta.mode() >> 6
    } else if account.gid == meta.gid() {
        meta.mode() >> 3
    } else {
        meta.mode()
    };
    meta.is_dir() && (account.uid == 0 || bits & 0o3 == 0o3)
}

/// Whether `who` may make `path` and any missing directories above it:
/// the nearest one that exists must be writable by it.
pub(crate) fn may_create(path: &Path, who: Option<&sys::Account>) -> bool {
    path.ancestors()
        .skip(1)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .find(|dir| dir.exists())
        .is_some_and(|dir| writable_by(dir, who))
}

/// What a router or appliance may get wrong without noticing, said once at
/// start-up: a spool in memory (OpenWrt's /var is tmpfs), and a clock
/// before this build (no battery-backed clock, NTP not yet there).
/// `spool_fs` is what `sys::memory_file_system` says of `spool_dir`.
pub fn mail_at_risk(
    spool_dir: &Path,
    spool_fs: io::Result<Option<&str>>,
    now: u64,
    built: Option<u64>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match spool_fs {
        Ok(Some(kind)) => warnings.push(format!(
            "spool_dir {} is on {kind}: queued mail will be lost at reboot; put spool_dir on \
             persistent storage",
            spool_dir.display()
        )),
        Ok(None) => {}
        Err(e) => warnings.push(format!("spool_dir {}: {e}", spool_dir.display())),
    }
    if let Some(built) = built.filter(|&built| now < built) {
        warnings.push(format!(
            "the clock says {}, before this tinymta was built ({}): TLS certificates will look \
             not yet valid, and delivery that checks them defers (it never bounces) until the \
             clock is set (NTP)",
            crate::time::rfc5322_date(now),
            crate::time::rfc5322_date(built)
        ));
    }
    warnings
}

/// Settings that work but weaken security, said once at start-up:
/// `tls_verify = no`, and secret files (the smarthost password,
/// `push_secret_files`: those of the push routes) that every user may read.
pub fn risky_settings(config: &Config, push_secret_files: &[PathBuf]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut warnings = Vec::new();
    if !config.tls_verify {
        warnings.push("tls_verify = no: upstream certificates are not checked".to_string());
    }
    let secrets = config
        .smarthost_password_file
        .iter()
        .map(|file| ("smarthost_password_file", file))
        .chain(push_secret_files.iter().map(|file| ("route", file)));
    for (key, file) in secrets {
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o004 != 0 => warnings.push(format!(
                "{key} {} is readable by every user",
                file.display()
            )),
            Ok(_) => {}
            Err(e) => warnings.push(format!("{key} {}: {e}", file.display())),
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The problem's text, as `-t` prints it.
    fn file_problem(key: &'static str, path: &Path, append: bool) -> Result<(), String> {
        super::file_problem(key, path, append).map_err(|e| e.to_string())
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn files_written_at_start_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // Missing, in a directory that can be written (or made): fine.
        assert_eq!(
            file_problem("pid_file", &dir.join("tinymta.pid"), false),
            Ok(())
        );
        assert_eq!(
            file_problem("log", &dir.join("new/sub/tinymta.log"), true),
            Ok(())
        );
        // There and writable: fine.
        let log = dir.join("tinymta.log");
        std::fs::write(&log, "").unwrap();
        assert_eq!(file_problem("log", &log, true), Ok(()));
        // Missing, and its directory cannot be made: a file stands there.
        let blocked = dir.join("tinymta.log/tinymta.pid");
        assert_eq!(
            file_problem("pid_file", &blocked, false),
            Err(format!(
                "pid_file {} cannot be made: its directory is not writable",
                blocked.display()
            ))
        );
        // There, and cannot be opened for writing: a directory, and (for
        // the log, opened as the log is) a symbolic link, which root too
        // is refused.
        assert_eq!(
            file_problem("pid_file", dir, false),
            Err(format!(
                "pid_file {}: Is a directory (os error 21)",
                dir.display()
            ))
        );
        let link = dir.join("link.log");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let refused = file_problem("log", &link, true).unwrap_err();
        assert!(
            refused.starts_with(&format!("log {}: ", link.display())),
            "{refused}"
        );
        // Mode 0000: only root may still open it.
        set_mode(&log, 0o000);
        let opened = file_problem("log", &log, true);
        if sys::is_root() {
            assert_eq!(opened, Ok(()));
        } else {
            assert_eq!(
                opened,
                Err(format!(
                    "log {}: Permission denied (os error 13)",
                    log.display()
                ))
            );
        }
    }

    #[test]
    fn startup_problems_name_the_spool_the_log_and_the_pid_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let config = Config {
            spool_dir: file.join("spool"),
            log: LogTarget::File(tmp.path().to_path_buf()),
            pid_file: Some(file.join("tinymta.pid")),
            ..Config::default()
        };
        let problems = startup_problems(&config);
        for expected in [
            format!(
                "spool_dir {} cannot be made: its parent directory is not writable",
                config.spool_dir.display()
            ),
            format!("log {}: Is a directory (os error 21)", tmp.path().display()),
            format!(
                "pid_file {} cannot be made: its directory is not writable",
                file.join("tinymta.pid").display()
            ),
        ] {
            assert!(
                problems.contains(&expected),
                "{expected:?} not in {problems:?}"
            );
        }
        let fine = Config {
            spool_dir: tmp.path().join("spool"),
            log: LogTarget::Stderr,
            pid_file: Some(tmp.path().join("tinymta.pid")),
            ..Config::default()
        };
        let problems = startup_problems(&fine);
        assert!(
            !problems
                .iter()
                .any(|p| p.starts_with("spool_dir") || p.starts_with("pid_file")),
            "{problems:?}"
        );
    }

    #[test]
    fn directories_of_another_user() {
        let tmp = tempfile::tempdir().unwrap();
        let me = sys::effective_uid();
        let config = Config {
            spool_dir: tmp.path().to_path_buf(),
            mailbox_dir: tmp.path().join("missing"),
            ..Config::default()
        };
        assert!(ownership_problems(&config, me).is_empty());
        assert_eq!(
            ownership_problems(&config, me + 1),
            [format!(
                "spool_dir {} belongs to uid {me}, not to uid {}",
                tmp.path().display(),
                me + 1
            )]
        );
    }

    #[test]
    fn who_may_make_files_where() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o750);
        let meta = std::fs::metadata(&dir).unwrap();
        let account = |uid: u32, gid: u32| sys::Account {
            name: "someone".to_string(),
            uid,
            gid,
        };
        let (uid, gid) = (meta.uid(), meta.gid());
        let stranger = (uid + 1000, gid + 1000);
        // The owner's bits for the owner, the group's for the group.
        assert!(writable_by(&dir, Some(&account(uid, gid))));
        assert!(!writable_by(&dir, Some(&account(stranger.0, gid))));
        set_mode(&dir, 0o770);
        assert!(writable_by(&dir, Some(&account(stranger.0, gid))));
        assert!(!writable_by(&dir, Some(&account(stranger.0, stranger.1))));
        // Root may, whatever the bits; nobody makes files in a file.
        set_mode(&dir, 0o500);
        assert!(writable_by(&dir, Some(&account(0, 0))));
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(!writable_by(&file, Some(&account(0, 0))));
        // The nearest directory that exists decides.
        set_mode(&dir, 0o700);
        assert!(may_create(&dir.join("a/b/c"), Some(&account(uid, gid))));
        assert!(!may_create(
            &dir.join("a/b/c"),
            Some(&account(stranger.0, gid))
        ));
        assert!(!may_create(&file.join("a"), None));
    }

    #[test]
    fn mail_at_risk_on_a_router() {
        let spool = Path::new("/var/spool/tinymta");
        let built = 1_800_000_000;
        assert!(mail_at_risk(spool, Ok(None), built + 1, Some(built)).is_empty());
        assert!(mail_at_risk(spool, Ok(None), 0, None).is_empty());
        assert_eq!(
            mail_at_risk(spool, Ok(Some("tmpfs")), built, Some(built)),
            [
                "spool_dir /var/spool/tinymta is on tmpfs: queued mail will be lost at reboot; \
              put spool_dir on persistent storage"
            ]
        );
        let unknown = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(
            mail_at_risk(spool, Err(unknown), built, None),
            ["spool_dir /var/spool/tinymta: entity not found"]
        );
        // A clock before the build: 25 years back, as libfaketime sets it
        // in tests/router_warnings.rs.
        assert_eq!(
            mail_at_risk(spool, Ok(None), 1_000_000_000, Some(built)),
            [
                "the clock says Sun, 9 Sep 2001 01:46:40 +0000, before this tinymta was built \
              (Fri, 15 Jan 2027 08:00:00 +0000): TLS certificates will look not yet valid, and \
              delivery that checks them defers (it never bounces) until the clock is set (NTP)"
            ]
        );
    }

    #[test]
    fn risky_settings_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let password = tmp.path().join("password");
        std::fs::write(&password, "secret").unwrap();
        set_mode(&password, 0o600);
        let token = tmp.path().join("token");
        std::fs::write(&token, "secret").unwrap();
        set_mode(&token, 0o644);
        let missing = tmp.path().join("missing");
        let safe = Config {
            smarthost_password_file: Some(password.clone()),
            ..Config::default()
        };
        assert!(risky_settings(&safe, &[]).is_empty());
        let risky = Config {
            tls_verify: false,
            ..safe
        };
        assert_eq!(
            risky_settings(&risky, &[token.clone(), missing.clone()]),
            [
                "tls_verify = no: upstream certificates are not checked".to_string(),
                format!("route {} is readable by every user", token.display()),
                format!(
                    "route {}: No such file or directory (os error 2)",
                    missing.display()
                ),
            ]
        );
    }
}
