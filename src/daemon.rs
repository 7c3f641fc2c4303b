//! The daemon: start-up (the account, its directories, listeners, files
//! read while still root, the privilege drop), then the signals: SIGTERM
//! stops, SIGHUP reloads, SIGUSR1 runs the queue.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aliases::Aliases;
use crate::auth::Users;
use crate::config::{Config, ConfigError, LogTarget};
use crate::deliver::runner;
use crate::deliver::{DeliverySettings, SettingsError};
use crate::line_error::LineError;
use crate::live::Live;
use crate::log::LogHandle;
use crate::server::connection::ServerContext;
use crate::server::listener;
use crate::spool::Spool;
use crate::startup::{
    self, find_account, may_create, ownership_problems, submit_group, writable_by, StartError,
};
use crate::sys::{self, Signal};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the daemon did not start, and whether the log target (a file,
/// syslog) has it already; the caller says it on standard error.
#[derive(Debug)]
pub struct NotStarted {
    pub error: StartError,
    pub logged: bool,
}

impl NotStarted {
    fn unlogged(error: StartError) -> NotStarted {
        NotStarted {
            error,
            logged: false,
        }
    }
}

/// The config and the files it names that the server reads at start-up,
/// each read by its owner; an unusable one is a config error naming its
/// key's line, found before anything starts rather than at the first
/// STARTTLS or AUTH.
pub struct Loaded {
    pub config: Config,
    pub aliases: Option<Arc<Aliases>>,
    pub users: Option<Arc<Users>>,
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
}

/// Reads the config at `path` and the aliases, the certificate and key and
/// the users file it names.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let config = Config::load(path)?;
    let aliases = crate::aliases::load_configured(&config)?;
    let server_tls = load_server_tls(&config)?;
    let users = load_users(&config).map_err(|e| config.error_at("auth_users", &e.to_string()))?;
    Ok(Loaded {
        config,
        aliases,
        users,
        server_tls,
    })
}

/// Runs the server in the foreground (busybox init or another supervisor
/// keeps it running); returns only when it cannot start.
pub fn run(loaded: Loaded, config_path: PathBuf) -> Result<Infallible, NotStarted> {
    let config = &loaded.config;
    // What the daemon creates (queue files, Maildirs, mail) is its own.
    sys::set_umask(0o077);
    // As root: the user to become.
    let account = if sys::is_root() {
        Some(find_account(config).map_err(NotStarted::unlogged)?)
    } else {
        None
    };
    let log = open_log(config, account.as_ref()).map_err(NotStarted::unlogged)?;
    let logs_elsewhere = config.log != LogTarget::Stderr;
    match serve(loaded, config_path, account, log) {
        Ok(never) => match never {},
        Err(error) => {
            // Standard error has it from the caller; the log target too.
            if logs_elsewhere {
                ::log::error!("{error}");
            }
            Err(NotStarted {
                error,
                logged: logs_elsewhere,
            })
        }
    }
}

/// Start-up after the log, then the signals.
fn serve(
    loaded: Loaded,
    config_path: PathBuf,
    account: Option<sys::Account>,
    log: LogHandle,
) -> Result<Infallible, StartError> {
    let Loaded {
        config,
        aliases,
        users,
        server_tls,
    } = loaded;
    if let Some(account) = &account {
        prepare_directories(&config, account)?;
    }
    let spool = Spool::open(&config.spool_dir).map_err(StartError::Spool)?;
    spool.recover().map_err(StartError::Spool)?;
    let spool = Arc::new(spool);
    // Everything that reads files is built now, while root may still read them.
    let delivery = Arc::new(Live::new(DeliverySettings::load(&config, aliases.clone())?));
    let risky = startup::risky_settings(&config, &push_secret_files(&config));
    let at_risk = startup::mail_at_risk(
        &config.spool_dir,
        sys::memory_file_system(&config.spool_dir),
        crate::time::unix_now(),
        crate::time::build_time(),
    );
    for warning in risky.into_iter().chain(at_risk) {
        ::log::warn!("{warning}");
    }
    note_missing_mailbox_dir(&config, account.as_ref());
    // Bound last, so that a daemon that listens has passed every check
    // (the init script takes listening for started).
    let listeners = listener::bind_all(&config.listen).map_err(StartError::Bind)?;
    if let Some(pid_file) = &config.pid_file {
        use std::os::unix::fs::PermissionsExt;
        // Readable by all, as pid files are (init scripts, `tinymta flush`).
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .and_then(|()| {
                std::fs::set_permissions(pid_file, std::fs::Permissions::from_mode(0o644))
            })
            .map_err(|error| StartError::File {
                key: "pid_file",
                path: pid_file.clone(),
                error,
            })?;
    }
    if let Some(account) = &account {
        sys::drop_privileges(account)?;
    }
    let waker = runner::start(Arc::clone(&delivery), Arc::clone(&spool)).map_err(|error| {
        StartError::Thread {
            what: "queue runner",
            error,
        }
    })?;
    let addresses: Vec<String> = listeners
        .iter()
        .map(|l| {
            l.socket
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        })
        .collect();
    let ctx = Arc::new(ServerContext::new(
        config.clone(),
        spool,
        waker.clone(),
        server_tls,
        users,
        aliases,
    ));
    let pool =
        listener::start(listeners, Arc::clone(&ctx)).map_err(|error| StartError::Thread {
            what: "listeners",
            error,
        })?;
    let user = account.map_or_else(|| "the starting user".to_string(), |a| a.name);
    ::log::info!(
        "tinymta {VERSION} started: hostname {}, listening on {}, spool {}, mailboxes {}, running as {user}",
        config.hostname,
        addresses.join(", "),
        config.spool_dir.display(),
        config.mailbox_dir.display()
    );
    let mut kept = KeptFiles::default();
    loop {
        match sys::wait_for_signal() {
            Signal::Terminate => shut_down(&ctx, &pool),
            Signal::Reload => reload(&config_path, &ctx, &delivery, &log, &mut kept),
            Signal::RunQueue => waker.flush(),
        }
    }
}

/// The log, set up as root for the user the daemon becomes, so that SIGHUP
/// can reopen the file after logrotate moved it (Postfix restarts its
/// postlogd, which opens the file as root; tinymta keeps no root to do
/// that): a missing directory of the log file is made for the user
/// (`/var/log/tinymta/`, where it may make a new file), the file is given
/// to it, and a directory it cannot write is said (there only a file
/// logrotate makes, with `create`, can be reopened).
fn open_log(config: &Config, account: Option<&sys::Account>) -> Result<LogHandle, StartError> {
    if let LogTarget::File(path) = &config.log {
        let dir = parent_dir(path);
        if !dir.exists() {
            crate::spool::durable::create_dir_durably(dir).map_err(|error| StartError::Io {
                doing: "cannot make the log directory ",
                path: dir.to_path_buf(),
                error,
            })?;
            if let Some(account) = account {
                std::os::unix::fs::lchown(dir, Some(account.uid), Some(account.gid)).map_err(
                    |error| StartError::GiveAway {
                        what: "",
                        path: dir.to_path_buf(),
                        user: account.name.clone(),
                        error,
                    },
                )?;
            }
            set_mode(dir, 0o755)?;
        }
    }
    let log = crate::log::init(&log_target(config), config.log_level)?;
    if let (Some(account), Some(path)) = (account, log.file_path()) {
        log.give_to(account.uid, account.gid)
            .map_err(|error| StartError::GiveAway {
                what: "the log file ",
                path: path.to_path_buf(),
                user: account.name.clone(),
                error,
            })?;
        let dir = parent_dir(path);
        if !writable_by(dir, Some(account)) {
            ::log::warn!(
                "log file {}: {} may not make files in {}, so after logrotate moves the file \
                 away SIGHUP can only reopen one logrotate makes (`create 0600 {}`); or put \
                 the log in a directory of its own (log = {}/tinymta/tinymta.log)",
                path.display(),
                account.name,
                dir.display(),
                account.name,
                dir.display()
            );
        }
    }
    Ok(log)
}

/// Where the config says records go.
fn log_target(config: &Config) -> crate::log::Target {
    match &config.log {
        LogTarget::Stderr => crate::log::Target::Stderr,
        LogTarget::File(path) => crate::log::Target::File(path.clone()),
        LogTarget::Syslog => crate::log::Target::Syslog(config.syslog_socket.clone()),
    }
}

/// The directory a file is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|error| {
        StartError::Io {
            doing: "cannot set the mode of ",
            path: path.to_path_buf(),
            error,
        }
    })
}

/// `mailbox_dir` is made at the first local delivery that needs it (a box
/// that only forwards needs none); where the user could not make it then
/// (nor root now: its parent is missing too), that is said now.
fn note_missing_mailbox_dir(config: &Config, account: Option<&sys::Account>) {
    let dir = &config.mailbox_dir;
    if dir.exists() {
        return;
    }
    if may_create(dir, account) {
        ::log::info!(
            "mailbox_dir {} does not exist yet: it is made at the first local delivery",
            dir.display()
        );
    } else {
        let user = account.map_or("this user", |a| a.name.as_str());
        ::log::warn!(
            "mailbox_dir {} does not exist and {user} may not make it: local mail is deferred \
             until it exists (make it for {user}, mode 0700); mail that leaves the box is not \
             affected",
            dir.display()
        );
    }
}

/// SIGTERM, SIGINT: accept no one new, give sessions `shutdown_grace` to
/// finish, then end them with 421 4.3.2 and exit. A message whose DATA was
/// cut off is removed from tmp/; nothing half-written enters the queue.
fn shut_down(ctx: &ServerContext, pool: &crate::server::pool::Pool) -> ! {
    ::log::info!("shutting down");
    ctx.stopping.store(true, Ordering::SeqCst);
    let grace = ctx.config.get().shutdown_grace;
    wait_for_sessions(pool, grace);
    if pool.busy() > 0 {
        ::log::info!("closing {} session(s) with 421", pool.busy());
        ctx.end_sessions();
        wait_for_sessions(pool, SESSION_CLOSE_WAIT);
    }
    ::log::info!("stopped");
    std::process::exit(0);
}

/// How long sessions get to say 421 and clean up once told to end.
const SESSION_CLOSE_WAIT: Duration = Duration::from_secs(3);

fn wait_for_sessions(pool: &crate::server::pool::Pool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pool.busy() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGHUP: reopen the log file and re-read the config. A config that does
/// not load is logged and the old one kept. New sessions and delivery jobs
/// use the new one; listeners, the spool, the user and the number of
/// threads need a restart.
fn reload(
    path: &Path,
    ctx: &ServerContext,
    delivery: &Live<DeliverySettings>,
    log: &LogHandle,
    kept: &mut KeptFiles,
) {
    if let Err(e) = log.reopen() {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (this user may not make a file there: have logrotate make it with `create`, \
             or put the log in a directory of its own)"
        } else {
            ""
        };
        ::log::error!("cannot reopen the log file: {e}{hint}");
    }
    // The files only root may read (the TLS key, the users file, the
    // smarthost password) were read at start-up, before the privilege drop:
    // where the config still names the same file and it cannot be read
    // now, the copy read before is kept and the rest of the config applies.
    let (config, aliases) = match Config::load(path)
        .and_then(|config| crate::aliases::load_configured(&config).map(|a| (config, a)))
    {
        Ok(loaded) => loaded,
        Err(e) => {
            ::log::error!("reload: {e}; keeping the running config");
            return;
        }
    };
    let old = ctx.config.get();
    let loaded = (|| {
        let current = delivery.get();
        let password = kept.reload_or_keep(
            "smarthost password",
            config.smarthost_password_file.iter(),
            config.smarthost_password_file == old.smarthost_password_file,
            crate::deliver::read_smarthost_password(&config),
            || current.smarthost_password.clone(),
        )?;
        let secret_files = push_secret_files(&config);
        let push_secrets = kept.reload_or_keep(
            "push route secrets",
            secret_files.iter(),
            secret_files == push_secret_files(&old),
            crate::deliver::push::PushSecrets::read(&config.route),
            || current.push_secrets.clone(),
        )?;
        let settings =
            DeliverySettings::with_secrets(&config, aliases.clone(), password, push_secrets)?;
        let users = kept
            .reload_or_keep(
                "users file",
                config.auth_users.iter(),
                config.auth_users == old.auth_users,
                load_users(&config),
                || (*ctx.users.get()).clone(),
            )
            .map_err(ReloadError::Users)?;
        let server_tls = kept
            .reload_or_keep(
                "TLS certificate and key",
                config.tls_cert.iter().chain(&config.tls_key),
                (&config.tls_cert, &config.tls_key) == (&old.tls_cert, &old.tls_key),
                load_server_tls(&config),
                || (*ctx.tls.get()).clone(),
            )
            .map_err(ReloadError::Tls)?;
        Ok::<_, ReloadError>((settings, users, server_tls))
    })();
    let (settings, users, server_tls) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            ::log::error!("reload: {e}; keeping the running config");
            return;
        }
    };
    if old.listen != config.listen || old.spool_dir != config.spool_dir || old.user != config.user {
        ::log::warn!("reload: listen, spool_dir and user take effect at the next restart");
    }
    ::log::set_max_level(config.log_level);
    delivery.set(settings);
    ctx.users.set(users);
    ctx.tls.set(server_tls);
    ctx.aliases.set(aliases);
    ctx.config.set(config);
    ::log::info!("reloaded {}", path.display());
}

/// Why a reload keeps the running config: logged, never fatal.
#[derive(Debug)]
enum ReloadError {
    /// tls_ca_file, the smarthost password or a push secret.
    Delivery(SettingsError),
    /// The users file.
    Users(LineError),
    /// The server's certificate and key.
    Tls(ConfigError),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Delivery(error) => error.fmt(f),
            ReloadError::Users(error) => error.fmt(f),
            ReloadError::Tls(error) => error.fmt(f),
        }
    }
}

impl From<SettingsError> for ReloadError {
    fn from(error: SettingsError) -> ReloadError {
        ReloadError::Delivery(error)
    }
}

/// Files that a reload after the privilege drop may not read and keeps
/// from start-up. For a file only root may read, that is how it is meant
/// to be (README, Signals): said once, not at every SIGHUP. Any other
/// failure (a missing or broken file) is a warning each time.
#[derive(Default)]
struct KeptFiles {
    said: Vec<PathBuf>,
}

impl KeptFiles {
    /// `loaded` as it is, or, where it failed and the config names the
    /// same `files` as the running one, `current()` (the copy read before).
    fn reload_or_keep<'a, T, E: fmt::Display>(
        &mut self,
        what: &str,
        files: impl IntoIterator<Item = &'a PathBuf>,
        same_files: bool,
        loaded: Result<T, E>,
        current: impl FnOnce() -> T,
    ) -> Result<T, E> {
        let error = match loaded {
            Err(error) if same_files => error,
            other => return other,
        };
        let unreadable = files.into_iter().find(|file| {
            std::fs::File::open(file)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        });
        match unreadable {
            Some(file) if self.said.iter().any(|said| said == file) => {}
            Some(file) => {
                ::log::info!(
                    "reload: {} may be read only before the privilege drop: the {what} read \
                     at start-up is kept (said once)",
                    file.display()
                );
                self.said.push(file.to_path_buf());
            }
            None => ::log::warn!("reload: {error}; keeping the {what} read before"),
        }
        Ok(current())
    }
}

/// The files the push routes read their secrets from.
fn push_secret_files(config: &Config) -> Vec<PathBuf> {
    config
        .route
        .iter()
        .flat_map(crate::config::route::PushRoute::secret_files)
        .map(Path::to_path_buf)
        .collect()
}

/// The users file, if the config names one.
fn load_users(config: &Config) -> Result<Option<Arc<Users>>, LineError> {
    match &config.auth_users {
        Some(path) => Users::load(path).map(|users| Some(Arc::new(users))),
        None => Ok(None),
    }
}

/// The server's certificate and key, if the config names them: a
/// certificate that cannot be used is found now, not at the first STARTTLS.
fn load_server_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => crate::tls::server_config(cert, key)
            .map(Some)
            .map_err(|e| config.error_at("tls_cert", &e.to_string())),
        _ => Ok(None),
    }
}

/// The spool's directories, created for `account` where missing; existing
/// ones (and an existing `mailbox_dir`) must already belong to it.
/// `mailbox_dir` is made here only where the user could not make it at
/// the first local delivery and its parent exists. The spool's own directories get
/// their modes at every start (an older install's group-writable tmp/ and
/// new/ are closed): `tmp/`, `new/` 0700; the maildrop 3730 and the spool
/// 0710 for `submit_group`, which may add to the maildrop and nothing else.
fn prepare_directories(config: &Config, account: &sys::Account) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    let submit = submit_group(config, account)?;
    let (spool_group, spool_mode, drop_mode) = match submit {
        Some(gid) => (gid, 0o710, 0o3730),
        None => (account.gid, 0o700, 0o700),
    };
    let spool = &config.spool_dir;
    let mut dirs = vec![
        (spool.clone(), spool_group, spool_mode),
        (spool.join("tmp"), account.gid, 0o700),
        (spool.join("new"), account.gid, 0o700),
        (spool.join(crate::spool::MAILDROP), spool_group, drop_mode),
    ];
    // mailbox_dir is made by the first local delivery, after the drop; in
    // a directory of root's (/var, for /var/mail), the user could not.
    let mailbox_dir = &config.mailbox_dir;
    if !mailbox_dir.exists()
        && !may_create(mailbox_dir, Some(account))
        && parent_dir(mailbox_dir).is_dir()
    {
        dirs.push((mailbox_dir.clone(), account.gid, 0o700));
    }
    for (dir, gid, mode) in &dirs {
        if !dir.exists() {
            make_missing_parents(dir)?;
            crate::spool::durable::create_dir_durably(dir).map_err(|error| StartError::Io {
                doing: "cannot create ",
                path: dir.clone(),
                error,
            })?;
        }
        // Never through a symlink: root would give away what it points at.
        let meta = std::fs::symlink_metadata(dir).map_err(|error| StartError::Io {
            doing: "",
            path: dir.clone(),
            error,
        })?;
        if !meta.is_dir() {
            return Err(StartError::NotADirectory(dir.clone()));
        }
        std::os::unix::fs::lchown(dir, Some(account.uid), Some(*gid)).map_err(|error| {
            StartError::GiveAway {
                what: "",
                path: dir.clone(),
                user: account.name.clone(),
                error,
            }
        })?;
        // The queue and the mailboxes hold everyone's mail: for the mail
        // user alone, but for the maildrop's drop box.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode)).map_err(|error| {
            StartError::Io {
                doing: "cannot protect ",
                path: dir.clone(),
                error,
            }
        })?;
    }
    let problems = ownership_problems(config, account.uid);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StartError::Ownership(problems))
    }
}

/// Makes the missing directories above `dir` (`/etc/tinymta` for
/// `/etc/tinymta/spool`) root's and mode 0755, as `mkdir -p` does: made
/// under the daemon's umask 077 they would be 0700, and the user it
/// becomes could not pass through them to its spool.
fn make_missing_parents(dir: &Path) -> Result<(), StartError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|parent| !parent.as_os_str().is_empty() && !parent.exists())
        .collect();
    for parent in missing.into_iter().rev() {
        crate::spool::durable::create_dir_durably(parent).map_err(|error| StartError::Io {
            doing: "cannot create ",
            path: parent.to_path_buf(),
            error,
        })?;
        set_mode(parent, 0o755)?;
    }
    Ok(())
}
