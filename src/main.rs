//! The `tinymta` command: parse the options, pick the mode, map errors to
//! exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tinymta::config::{Config, LogTarget, DEFAULT_CONFIG_PATH};
use tinymta::deliver::runner::QueueRunner;
use tinymta::deliver::DeliverySettings;
use tinymta::dns::resolver::Resolver;
use tinymta::live::Live;
use tinymta::log::LogHandle;
use tinymta::server::connection::ServerContext;
use tinymta::server::listener;
use tinymta::spool::Spool;
use tinymta::sys::{self, Signal};
use tinymta::tls::ClientConfigs;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// sysexits.h EX_USAGE.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    // Before any thread exists: the signals go to the main thread's sigwait.
    if let Err(e) = sys::block_signals() {
        eprintln!("tinymta: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().collect();
    // Called as sendmail or mailq (a symlink), or with a subcommand.
    let program = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    match (program.as_str(), args.get(1).map(String::as_str)) {
        ("sendmail", _) => return sendmail(&args[1..]),
        ("mailq", _) => return sendmail(&with_config(&args[1..], "-bp")),
        (_, Some("sendmail")) => return sendmail(&args[2..]),
        (_, Some("mailq")) => return sendmail(&with_config(&args[2..], "-bp")),
        (_, Some("flush")) => return sendmail(&with_config(&args[2..], "-q")),
        (_, Some("passwd")) => return passwd(&args[2..]),
        (_, Some("test-send")) => return test_send(&args[2..]),
        _ => {}
    }
    let mut options = getopts::Options::new();
    options
        .optopt(
            "c",
            "",
            &format!("config file (default {DEFAULT_CONFIG_PATH})"),
            "FILE",
        )
        .optflag(
            "t",
            "",
            "check the config, print what is wrong or `config ok`",
        )
        .optflag("V", "", "print the version")
        .optflag("h", "", "print this help");
    let usage = options.usage(
        "Usage: tinymta [-c FILE] [-t] [-V] [-h]\n\
         \x20      tinymta sendmail [sendmail options] [recipients]   (also as a `sendmail` link)\n\
         \x20      tinymta mailq [-C FILE]     tinymta flush [-C FILE]\n\
         \x20      tinymta passwd NAME   (password on standard input)",
    );
    let matches = match options.parse(&args[1..]) {
        Ok(matches) => matches,
        Err(e) => {
            eprintln!("tinymta: {e}\n{usage}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if matches.opt_present("h") {
        print!("{usage}");
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("V") {
        println!("tinymta {VERSION}");
        return ExitCode::SUCCESS;
    }
    if !matches.free.is_empty() {
        eprintln!(
            "tinymta: unexpected argument {:?}\n{usage}",
            matches.free[0]
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let config_path = PathBuf::from(
        matches
            .opt_str("c")
            .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string()),
    );
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tinymta: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches.opt_present("t") {
        let problems = privilege_problems(&config);
        if problems.is_empty() {
            println!("config ok");
            return ExitCode::SUCCESS;
        }
        for problem in problems {
            eprintln!("tinymta: {problem}");
        }
        return ExitCode::FAILURE;
    }
    // Said on stderr; a log file gets it too (stderr logging would repeat it).
    let log_to_file = matches!(config.log, LogTarget::File(_));
    match run_daemon(config, config_path) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("tinymta: {e}");
            if log_to_file {
                ::log::error!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `tinymta mailq [-C FILE]` as `sendmail -bp [-C FILE]`, and so on.
fn with_config(args: &[String], mode: &str) -> Vec<String> {
    let mut out = vec![mode.to_string()];
    out.extend(args.iter().cloned());
    out
}

/// The sendmail entry point: queue a message, list the queue, run it.
fn sendmail(args: &[String]) -> ExitCode {
    use tinymta::sendmail::{exit, list_queue, parse_args, submit, Mode, Submitter};
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let path = options
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    // Set-group-id, a config file is read with the mail group's rights; one
    // the real user could not read might leak through the error messages.
    if options.config.is_some() && sys::running_setgid() && !sys::real_user_can_read(&path) {
        eprintln!("sendmail: -C {}: not readable by you", path.display());
        return ExitCode::from(exit::USAGE);
    }
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let result = match options.mode {
        Mode::Deliver => {
            let (login, uid) = sys::real_user();
            let submitter = Submitter { login, uid };
            let stdin = std::io::stdin();
            submit(&config, &options, &submitter, &mut stdin.lock()).map(|_| ())
        }
        Mode::ListQueue => list_queue(&config).map(|text| print!("{text}")),
        Mode::RunQueue => return flush(&config),
        Mode::Smtp => {
            let spool = match Spool::open(&config.spool_dir) {
                Ok(spool) => Arc::new(spool),
                Err(e) => {
                    eprintln!("sendmail: {e}");
                    return ExitCode::from(exit::TEMPFAIL);
                }
            };
            let users = config
                .auth_users
                .as_ref()
                .and_then(|path| tinymta::auth::Users::load(path).ok())
                .map(Arc::new);
            let ctx = ServerContext::new(
                config,
                spool,
                tinymta::deliver::runner::QueueWaker::detached(),
                None,
                users,
            );
            tinymta::server::connection::serve_stdio(&ctx);
            return ExitCode::from(exit::OK);
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("sendmail: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// `tinymta flush`, `sendmail -q`: asks the running daemon (its pid is in
/// `pid_file`) to run the queue now.
fn flush(config: &Config) -> ExitCode {
    let Some(pid_file) = &config.pid_file else {
        eprintln!("tinymta flush: no pid_file in the config, so the daemon cannot be found");
        return ExitCode::from(tinymta::sendmail::exit::CONFIG);
    };
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    let Some(pid) = pid else {
        eprintln!("tinymta flush: no daemon pid in {}", pid_file.display());
        return ExitCode::from(tinymta::sendmail::exit::TEMPFAIL);
    };
    match sys::send_signal(pid, Signal::RunQueue) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tinymta flush: cannot signal the daemon (pid {pid}): {e}");
            ExitCode::from(tinymta::sendmail::exit::TEMPFAIL)
        }
    }
}

/// `tinymta test-send [-C FILE] ADDR`: sends a short test message to ADDR
/// the way the daemon would, and prints each step: the DNS answers, each
/// connection, TLS and its certificate check, AUTH, the replies. The message
/// goes through a private temporary spool, not the live queue.
fn test_send(args: &[String]) -> ExitCode {
    use tinymta::deliver::client::Outcome;
    use tinymta::deliver::{Destination, Job, JobItem, Reporter, RunnerEvent};
    use tinymta::sendmail::exit;
    let (config_path, address) = match args {
        [address] => (PathBuf::from(DEFAULT_CONFIG_PATH), address),
        [flag, path, address] if flag == "-C" => (PathBuf::from(path), address),
        _ => {
            eprintln!("Usage: tinymta test-send [-C FILE] ADDRESS");
            return ExitCode::from(exit::USAGE);
        }
    };
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("test-send: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let recipient = match tinymta::smtp::address::parse_mailbox(address) {
        Ok(mailbox) => mailbox,
        Err(e) => {
            eprintln!("test-send: bad address {address:?}: {e}");
            return ExitCode::from(exit::NOUSER);
        }
    };
    // Every step tinymta logs, on standard output.
    let _ = ::log::set_boxed_logger(Box::new(StepPrinter));
    ::log::set_max_level(::log::LevelFilter::Trace);
    let settings = match delivery_settings(&config, None) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("test-send: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let destination = if config.is_local_domain(&recipient.domain) {
        println!(
            "{recipient} is local: delivered into {}",
            config.mailbox_dir.display()
        );
        Destination::Local
    } else if let Some(smarthost) = &config.smarthost {
        println!("route: smarthost {smarthost}");
        match settings.resolver.resolve_host(&smarthost.host) {
            Ok(addresses) => println!("DNS: {} has {addresses:?}", smarthost.host),
            Err(e) => println!("DNS: {}: {e}", smarthost.host),
        }
        Destination::Smarthost
    } else {
        println!("route: the MX hosts of {}", recipient.domain);
        match settings.resolver.resolve_mx(&recipient.domain) {
            Ok(hosts) => {
                for host in hosts {
                    println!(
                        "DNS: MX {} {} has {:?}",
                        host.preference, host.name, host.addresses
                    );
                }
            }
            Err(e) => println!("DNS: {e}"),
        }
        Destination::Domain(recipient.domain.clone())
    };
    let scratch = std::env::temp_dir().join(format!("tinymta-test-send-{}", std::process::id()));
    let outcome = (|| -> Result<Vec<Outcome>, String> {
        let spool = Arc::new(Spool::open(&scratch).map_err(|e| e.to_string())?);
        let sender = config
            .force_sender
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", config.qualify_domain));
        let now = tinymta::time::unix_now();
        let mut message = spool.begin().map_err(|e| e.to_string())?;
        let text = format!(
            "From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: tinymta test message from {}\r\n\
             Date: {}\r\nMessage-ID: <{}@{}>\r\n\r\nThis is a test message sent by `tinymta test-send`.\r\n",
            config.hostname,
            tinymta::time::rfc5322_date(now),
            message.id,
            config.hostname
        );
        message.write(text.as_bytes()).map_err(|e| e.to_string())?;
        let id = message.id.clone();
        let sender_box =
            tinymta::smtp::address::parse_mailbox(&sender).map_err(|e| e.to_string())?;
        let envelope = tinymta::spool::queue::QueueEnvelope {
            id: id.clone(),
            arrival: now,
            client: "local".to_string(),
            helo: config.hostname.clone(),
            sender: Some(sender_box),
            body: "7BIT".to_string(),
            size: message.size(),
            recipients: vec![tinymta::spool::queue::Recipient::new(recipient.clone())],
        };
        message.commit(&envelope).map_err(|e| e.to_string())?;
        let item = JobItem {
            id,
            sender,
            eight_bit: false,
            size: envelope.size,
            arrival: now,
            recipients: vec![(0, recipient.clone())],
            first_attempt: true,
        };
        let job = Job {
            destination: destination.clone(),
            items: vec![item],
        };
        let (results, received) = std::sync::mpsc::channel();
        {
            let mut reporter = Reporter::new(results);
            reporter.took(&job);
            if destination == Destination::Local {
                tinymta::deliver::local::deliver_job(&config, &spool, job, &mut reporter);
            } else {
                let remote = tinymta::deliver::remote::RemoteDelivery {
                    config: Arc::clone(&settings.config),
                    spool: Arc::clone(&spool),
                    resolver: Arc::clone(&settings.resolver),
                    tls: Arc::clone(&settings.tls),
                    smarthost_password: settings.smarthost_password.clone(),
                };
                remote.deliver(job, &mut reporter, &mut || None);
            }
        }
        let mut outcomes = Vec::new();
        while let Ok(RunnerEvent::Done(result)) = received.try_recv() {
            outcomes.extend(result.outcomes.into_iter().map(|(_, o)| o));
        }
        Ok(outcomes)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    match outcome {
        Ok(outcomes) => match outcomes.first() {
            Some(Outcome::Delivered(text)) => {
                println!("result: delivered ({text})");
                ExitCode::SUCCESS
            }
            Some(Outcome::Deferred(text)) => {
                println!("result: temporary failure: {text}");
                ExitCode::from(exit::TEMPFAIL)
            }
            Some(Outcome::Failed(text)) => {
                println!("result: permanent failure: {text}");
                ExitCode::from(exit::NOUSER)
            }
            None => {
                println!("result: no outcome");
                ExitCode::from(exit::SOFTWARE)
            }
        },
        Err(e) => {
            eprintln!("test-send: {e}");
            ExitCode::from(exit::TEMPFAIL)
        }
    }
}

/// test-send's logger: tinymta's own records, as steps on standard output.
struct StepPrinter;

impl ::log::Log for StepPrinter {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.target().starts_with("tinymta")
    }

    fn log(&self, record: &::log::Record<'_>) {
        if self.enabled(record.metadata()) {
            println!("  {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// `tinymta passwd NAME`: reads a password from standard input (its first
/// line) and prints the line for the `auth_users` file.
fn passwd(args: &[String]) -> ExitCode {
    let [name] = args else {
        eprintln!("Usage: tinymta passwd NAME   (the password is read from standard input)");
        return ExitCode::from(EXIT_USAGE);
    };
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        eprintln!("tinymta passwd: a user name has no ':' and no spaces");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut password = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut password) {
        eprintln!("tinymta passwd: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("tinymta passwd: empty password");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        tinymta::auth::hash_line(name, password.as_bytes(), tinymta::auth::DEFAULT_ITERATIONS)
    );
    ExitCode::SUCCESS
}

/// Runs the server in the foreground (busybox init or another supervisor
/// keeps it running); returns only when it cannot start.
fn run_daemon(config: Config, config_path: PathBuf) -> Result<std::convert::Infallible, String> {
    let log = tinymta::log::init(&config)?;
    // As root: the user to become, and directories that belong to it.
    let account = if sys::is_root() {
        let account = find_account(&config)?;
        prepare_directories(&config, &account)?;
        Some(account)
    } else {
        None
    };
    let spool = Spool::open(&config.spool_dir).map_err(|e| format!("spool: {e}"))?;
    spool.recover().map_err(|e| format!("spool: {e}"))?;
    let spool = Arc::new(spool);
    let listeners = listener::bind_all(&config.listen)?;
    // Everything that reads files is built now, while root may still read them.
    let delivery = Arc::new(Live::new(delivery_settings(&config, None)?));
    let users = load_users(&config)?;
    let server_tls = load_server_tls(&config)?;
    warn_about_risky_settings(&config);
    if let Some(pid_file) = &config.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
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
fn shut_down(ctx: &ServerContext, pool: &tinymta::server::pool::Pool) -> ! {
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

fn wait_for_sessions(pool: &tinymta::server::pool::Pool, limit: Duration) {
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
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            ::log::error!("reload: {e}; keeping the running config");
            return;
        }
    };
    let loaded = (|| {
        let current = delivery.get();
        Ok::<_, String>((
            delivery_settings(&config, current.smarthost_password.clone())?,
            load_users(&config)?,
            load_server_tls(&config)?,
        ))
    })();
    let (settings, users, server_tls) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            ::log::error!("reload: {e}; keeping the running config");
            return;
        }
    };
    let old = ctx.config.get();
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

/// What delivery works with. The smarthost password is read from its file;
/// where that fails after privileges were dropped, `keep` is used instead.
fn delivery_settings(config: &Config, keep: Option<String>) -> Result<DeliverySettings, String> {
    let tls = ClientConfigs::new(config.tls_ca_file.as_deref(), config.tls_verify)
        .map_err(|e| format!("tls_ca_file: {e}"))?;
    let smarthost_password = match &config.smarthost_password_file {
        None => None,
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => Some(text.lines().next().unwrap_or_default().to_string()),
            Err(e) if keep.is_some() => {
                ::log::warn!("{}: {e}; keeping the password read before", file.display());
                keep
            }
            Err(e) => return Err(format!("smarthost_password_file {}: {e}", file.display())),
        },
    };
    Ok(DeliverySettings {
        config: Arc::new(config.clone()),
        resolver: Arc::new(Resolver::from_config(config)),
        tls: Arc::new(tls),
        smarthost_password,
    })
}

fn load_users(config: &Config) -> Result<Option<Arc<tinymta::auth::Users>>, String> {
    match &config.auth_users {
        Some(path) => tinymta::auth::Users::load(path)
            .map(|users| Some(Arc::new(users)))
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

fn load_server_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => tinymta::tls::server_config(cert, key)
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
/// existing ones must already belong to it.
fn prepare_directories(config: &Config, account: &sys::Account) -> Result<(), String> {
    let dirs = [
        config.spool_dir.clone(),
        config.spool_dir.join("tmp"),
        config.spool_dir.join("new"),
        config.mailbox_dir.clone(),
    ];
    for dir in &dirs {
        if !dir.exists() {
            tinymta::spool::maildir::create_dir_durably(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            std::os::unix::fs::chown(dir, Some(account.uid), Some(account.gid))
                .map_err(|e| format!("cannot give {} to {}: {e}", dir.display(), account.name))?;
            // The queue and the mailboxes hold everyone's mail: for the mail
            // user alone (README: how to let ordinary users queue mail).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot protect {}: {e}", dir.display()))?;
        }
    }
    let problems = ownership_problems(config, account.uid);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
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
fn privilege_problems(config: &Config) -> Vec<String> {
    if sys::is_root() {
        match find_account(config) {
            Ok(account) => ownership_problems(config, account.uid),
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
