//! The daemon: start-up (the account, its directories, listeners, files
//! read while still root, the privilege drop), then the signals: SIGTERM
//! stops, SIGHUP reloads, SIGUSR1 runs the queue.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::deliver::runner::QueueRunner;
use crate::deliver::DeliverySettings;
use crate::live::Live;
use crate::log::LogHandle;
use crate::server::connection::ServerContext;
use crate::server::listener;
use crate::spool::Spool;
use crate::sys::{self, Signal};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the server in the foreground (busybox init or another supervisor
/// keeps it running); returns only when it cannot start.
pub fn run(config: Config, config_path: PathBuf) -> Result<Infallible, String> {
    // What the daemon creates (queue files, Maildirs, mail) is its own.
    sys::set_umask(0o077);
    let log = crate::log::init(&config)?;
    // As root: the user to become, and directories that belong to it.
    let account = if sys::is_root() {
        let account = find_account(&config)?;
        prepare_directories(&config, &account)?;
        Some(account)
    } else {
        None
    };
    let spool = Spool::open(&config.spool_dir).map_err(|e| format!("spool: {e}"))?;
    crate::spool::durable::create_dir_durably(&config.mailbox_dir)
        .map_err(|e| format!("mailbox_dir {}: {e}", config.mailbox_dir.display()))?;
    spool.recover().map_err(|e| format!("spool: {e}"))?;
    let spool = Arc::new(spool);
    let listeners = listener::bind_all(&config.listen)?;
    // Everything that reads files is built now, while root may still read them.
    let delivery = Arc::new(Live::new(DeliverySettings::load(&config, None)?));
    let users = load_users(&config)?;
    let server_tls = load_server_tls(&config)?;
    warn_about_risky_settings(&config);
    if let Some(pid_file) = &config.pid_file {
        use std::os::unix::fs::PermissionsExt;
        // Readable by all, as pid files are (init scripts, `tinymta flush`).
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .and_then(|()| {
                std::fs::set_permissions(pid_file, std::fs::Permissions::from_mode(0o644))
            })
            .map_err(|e| format!("pid_file {}: {e}", pid_file.display()))?;
    }
    if let Some(account) = &account {
        sys::drop_privileges(account)?;
    }
    let waker = QueueRunner::new(Arc::clone(&delivery), Arc::clone(&spool))
        .start()
        .map_err(|e| format!("cannot start the queue runner: {e}"))?;
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
    ));
    let pool = listener::start(listeners, Arc::clone(&ctx))
        .map_err(|e| format!("cannot start the listeners: {e}"))?;
    let user = account.map_or_else(|| "the starting user".to_string(), |a| a.name);
    ::log::info!(
        "tinymta {VERSION} started: hostname {}, listening on {}, spool {}, mailboxes {}, running as {user}",
        config.hostname,
        addresses.join(", "),
        config.spool_dir.display(),
        config.mailbox_dir.display()
    );
    loop {
        match sys::wait_for_signal() {
            Signal::Terminate => shut_down(&ctx, &pool),
            Signal::Reload => reload(&config_path, &ctx, &delivery, &log),
            Signal::RunQueue => waker.flush(),
        }
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
fn reload(path: &Path, ctx: &ServerContext, delivery: &Live<DeliverySettings>, log: &LogHandle) {
    if let Err(e) = log.reopen() {
        ::log::error!("cannot reopen the log file: {e}");
    }
    // The files only root may read (the TLS key, the users file, the
    // smarthost password) were read at start-up, before the privilege drop:
    // where the config still names the same file and it cannot be read
    // now, the copy read before is kept and the rest of the config applies.
    let config = match Config::load_for_queueing(path) {
        Ok(config) => config,
        Err(e) => {
            ::log::error!("reload: {e}; keeping the running config");
            return;
        }
    };
    let old = ctx.config.get();
    let keep = |what: &str, e: String| ::log::warn!("reload: {e}; keeping the {what} read before");
    let loaded = (|| {
        let current = delivery.get();
        let settings = DeliverySettings::load(&config, current.smarthost_password.clone())?;
        let users = match load_users(&config) {
            Err(e) if config.auth_users == old.auth_users => {
                keep("users file", e);
                (*ctx.users.get()).clone()
            }
            other => other?,
        };
        let same_tls = (&config.tls_cert, &config.tls_key) == (&old.tls_cert, &old.tls_key);
        let server_tls = match load_server_tls(&config) {
            Err(e) if same_tls => {
                keep("TLS certificate and key", e);
                (*ctx.tls.get()).clone()
            }
            other => other?,
        };
        Ok::<_, String>((settings, users, server_tls))
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
    ctx.config.set(config);
    ::log::info!("reloaded {}", path.display());
}

fn load_users(config: &Config) -> Result<Option<Arc<crate::auth::Users>>, String> {
    match &config.auth_users {
        Some(path) => crate::auth::Users::load(path)
            .map(|users| Some(Arc::new(users)))
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

fn load_server_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => crate::tls::server_config(cert, key)
            .map(Some)
            .map_err(|e| config.error_at("tls_cert", &e.to_string()).to_string()),
        _ => Ok(None),
    }
}

/// The account named by `user`, which must exist when started as root.
fn find_account(config: &Config) -> Result<sys::Account, String> {
    match sys::find_user(&config.user) {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(format!(
            "user {:?} does not exist: create it, or name another in `user` (tinymta will not run as root)",
            config.user
        )),
        Err(e) => Err(format!("cannot look up user {:?}: {e}", config.user)),
    }
}

/// The spool and mailbox directories, created for `account` where missing;
/// existing ones must already belong to it. The spool's own directories get
/// their modes at every start (an older install's group-writable tmp/ and
/// new/ are closed): `tmp/`, `new/` 0700; the maildrop 3730 and the spool
/// 0710 for `submit_group`, which may add to the maildrop and nothing else.
fn prepare_directories(config: &Config, account: &sys::Account) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let submit = submit_group(config, account)?;
    let (spool_group, spool_mode, drop_mode) = match submit {
        Some(gid) => (gid, 0o710, 0o3730),
        None => (account.gid, 0o700, 0o700),
    };
    let spool = &config.spool_dir;
    let dirs = [
        (spool.clone(), spool_group, spool_mode),
        (spool.join("tmp"), account.gid, 0o700),
        (spool.join("new"), account.gid, 0o700),
        (spool.join(crate::spool::MAILDROP), spool_group, drop_mode),
        (config.mailbox_dir.clone(), account.gid, 0o700),
    ];
    for (dir, gid, mode) in &dirs {
        let created = !dir.exists();
        if created {
            crate::spool::durable::create_dir_durably(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        } else if *dir == config.mailbox_dir {
            continue;
        }
        // Never through a symlink: root would give away what it points at.
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a directory (a symlink?)", dir.display()));
        }
        std::os::unix::fs::lchown(dir, Some(account.uid), Some(*gid))
            .map_err(|e| format!("cannot give {} to {}: {e}", dir.display(), account.name))?;
        // The queue and the mailboxes hold everyone's mail: for the mail
        // user alone, but for the maildrop's drop box.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| format!("cannot protect {}: {e}", dir.display()))?;
    }
    let problems = ownership_problems(config, account.uid);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The gid of `submit_group`; `None` where no such group exists (then only
/// root and the daemon's user can queue). It must not be the daemon's own
/// group: the daemon reads the maildrop's files as "other" (mode 0604), so
/// that the group that submits can read none of them.
fn submit_group(config: &Config, account: &sys::Account) -> Result<Option<u32>, String> {
    match sys::find_group(&config.submit_group) {
        Ok(Some(gid)) if gid == account.gid => Err(config
            .error_at(
                "submit_group",
                &format!(
                    "{} is the group of user {}: choose a group of its own for the set-group-id binary",
                    config.submit_group, account.name
                ),
            )
            .to_string()),
        Ok(Some(gid)) => Ok(Some(gid)),
        Ok(None) => {
            ::log::info!(
                "no group {:?}: only root and {} can queue mail",
                config.submit_group,
                account.name
            );
            Ok(None)
        }
        Err(e) => Err(format!("cannot look up group {:?}: {e}", config.submit_group)),
    }
}

/// Directories that exist and do not belong to `uid`.
fn ownership_problems(config: &Config, uid: u32) -> Vec<String> {
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

/// What `-t` says beyond the config itself: as root, the user must exist
/// and own the directories; otherwise they must belong to whoever runs it.
pub fn privilege_problems(config: &Config) -> Vec<String> {
    if sys::is_root() {
        match find_account(config) {
            Ok(account) => {
                let mut problems = ownership_problems(config, account.uid);
                problems.extend(submit_group(config, &account).err());
                problems
            }
            Err(e) => vec![e],
        }
    } else {
        ownership_problems(config, sys::effective_uid())
    }
}

/// Settings that work but weaken security are said once, at start-up.
fn warn_about_risky_settings(config: &Config) {
    use std::os::unix::fs::PermissionsExt;
    if !config.tls_verify {
        ::log::warn!("tls_verify = no: upstream certificates are not checked");
    }
    if let Some(file) = &config.smarthost_password_file {
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o004 != 0 => ::log::warn!(
                "smarthost_password_file {} is readable by every user",
                file.display()
            ),
            Ok(_) => {}
            Err(e) => ::log::warn!("smarthost_password_file {}: {e}", file.display()),
        }
    }
}
