//! The `tinymta` command: parse the options, pick the mode, map errors to
//! exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tinymta::config::{Config, DEFAULT_CONFIG_PATH};
use tinymta::deliver::runner::QueueRunner;
use tinymta::dns::resolver::Resolver;
use tinymta::server::connection::ServerContext;
use tinymta::server::listener;
use tinymta::spool::Spool;
use tinymta::tls::ClientConfigs;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// sysexits.h EX_USAGE.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("passwd") {
        return passwd(&args[2..]);
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
        "Usage: tinymta [-c FILE] [-t] [-V] [-h]\n       tinymta passwd NAME   (password on standard input)",
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
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    match run_daemon(config) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("tinymta: {e}");
            ::log::error!("{e}");
            ExitCode::FAILURE
        }
    }
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
fn run_daemon(config: Config) -> Result<std::convert::Infallible, String> {
    tinymta::log::init(&config)?;
    let config = Arc::new(config);
    let spool = Spool::open(&config.spool_dir).map_err(|e| format!("spool: {e}"))?;
    spool.recover().map_err(|e| format!("spool: {e}"))?;
    let spool = Arc::new(spool);
    let tls = ClientConfigs::new(config.tls_ca_file.as_deref(), config.tls_verify)
        .map_err(|e| format!("tls_ca_file: {e}"))?;
    warn_about_risky_settings(&config);
    let resolver = Resolver::from_config(&config);
    let listeners = listener::bind_all(&config.listen)?;
    let waker = QueueRunner::new(
        Arc::clone(&config),
        Arc::clone(&spool),
        Arc::new(resolver),
        Arc::new(tls),
    )
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
    let users = match &config.auth_users {
        Some(path) => Some(Arc::new(tinymta::auth::Users::load(path)?)),
        None => None,
    };
    let server_tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            tinymta::tls::server_config(cert, key)
                .map_err(|e| config.error_at("tls_cert", &e.to_string()).to_string())?,
        ),
        _ => None,
    };
    listener::start(
        listeners,
        ServerContext {
            config: Arc::clone(&config),
            spool,
            waker,
            tls: server_tls,
            users,
        },
    )
    .map_err(|e| format!("cannot start the listeners: {e}"))?;
    ::log::info!(
        "tinymta {VERSION} started: hostname {}, listening on {}, spool {}, mailboxes {}",
        config.hostname,
        addresses.join(", "),
        config.spool_dir.display(),
        config.mailbox_dir.display()
    );
    loop {
        std::thread::park();
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
