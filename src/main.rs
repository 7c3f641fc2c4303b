//! The `tinymta` command: parse the options, pick the mode, map errors to
//! exit codes. The modes live in the library: the daemon in daemon.rs,
//! sendmail and mailq in sendmail/, test-send in test_send.rs.

// `unsafe` lives in the library's sys.rs alone.
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tinymta::config::{Config, DEFAULT_CONFIG_PATH};
use tinymta::server::connection::ServerContext;
use tinymta::spool::Spool;
use tinymta::sys::{self, Signal};
use tinymta::sysexits;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a set-group-id caller gets for anything but queueing a message,
/// before any file is read.
fn refuse_privileged() -> ExitCode {
    eprintln!(
        "tinymta: run set-group-id, tinymta only queues a message (sendmail without -C, -bp, -bs or -q); \
         run this as root or as the mail user"
    );
    ExitCode::from(sysexits::NOPERM)
}

fn main() -> ExitCode {
    // Before any thread exists: the signals go to the main thread's sigwait.
    if let Err(e) = sys::block_signals() {
        eprintln!("tinymta: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let args = match utf8_args() {
        Ok(args) => args,
        Err(arg) => {
            eprintln!("tinymta: argument {arg:?} is not UTF-8");
            return ExitCode::from(sysexits::USAGE);
        }
    };
    // Run set-group-id (or set-user-id), tinymta only queues a message: the
    // ids it was given open the maildrop and nothing else. Root gives them
    // up and may do anything; anyone else gets the sendmail entry point's
    // message submission alone (see `sendmail`).
    if sys::privileged() && sys::real_uid() == 0 {
        if let Err(e) = sys::drop_set_ids() {
            eprintln!("tinymta: cannot give up the set-id privileges: {e}");
            return ExitCode::from(sysexits::NOPERM);
        }
    }
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
    let mode = args.get(1).map(String::as_str);
    let submits = matches!(program.as_str(), "sendmail" | "mail" | "mailx")
        || (program != "mailq" && matches!(mode, Some("sendmail" | "mail")));
    if sys::privileged() && !submits {
        return refuse_privileged();
    }
    match (program.as_str(), mode) {
        ("sendmail", _) => return sendmail(&args[1..]),
        ("mail" | "mailx", _) => return mail(&args[1..]),
        (_, Some("mail")) => return mail(&args[2..]),
        ("mailq", _) => return sendmail(&with_config(&args[1..], "-bp")),
        (_, Some("sendmail")) => return sendmail(&args[2..]),
        (_, Some("mailq")) => return sendmail(&with_config(&args[2..], "-bp")),
        (_, Some("flush")) => return sendmail(&with_config(&args[2..], "-q")),
        (_, Some("passwd")) => return passwd(&args[2..]),
        (_, Some("test-send")) => return ExitCode::from(tinymta::test_send::run(&args[2..])),
        _ => {}
    }
    // The options are described in `usage` below, written out rather than
    // by getopts' usage(), whose layout code (with unicode-width's tables)
    // is 10 KB of every binary.
    let mut options = getopts::Options::new();
    options
        .optopt("c", "", "", "FILE")
        .optflag("t", "", "")
        .optflag("V", "", "")
        .optflag("h", "", "");
    let usage = format!(
        "Usage: tinymta [-c FILE] [-t] [-V] [-h]        the daemon, in the foreground\n\
         \x20      tinymta sendmail [sendmail options] [recipients]   queue a message from standard input\n\
         \x20                                                         (also as a `sendmail` link)\n\
         \x20      tinymta mail [-s SUBJECT] [-r FROM] [-c CC] [-b BCC] ADDRESS...\n\
         \x20                          queue standard input as the body (also as `mail`, `mailx`)\n\
         \x20      tinymta mailq [-c FILE]              list the queue (also as a `mailq` link)\n\
         \x20      tinymta flush [-c FILE]              ask the daemon to try the queue now\n\
         \x20      tinymta test-send [-c FILE] ADDRESS  send a test message, printing each step\n\
         \x20      tinymta passwd NAME                  a users-file line (password on standard input)\n\n\
         Options:\n\
         \x20   -c FILE             config file (default {DEFAULT_CONFIG_PATH})\n\
         \x20   -t                  check the config, print what is wrong or `config ok`\n\
         \x20   -V                  print the version\n\
         \x20   -h                  print this help\n"
    );
    let matches = match options.parse(&args[1..]) {
        Ok(matches) => matches,
        Err(e) => {
            eprintln!("tinymta: {e}\n{usage}");
            return ExitCode::from(sysexits::USAGE);
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
        return ExitCode::from(sysexits::USAGE);
    }
    let config_path = PathBuf::from(
        matches
            .opt_str("c")
            .unwrap_or_else(|| DEFAULT_CONFIG_PATH.to_string()),
    );
    let loaded = match tinymta::daemon::load(&config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("tinymta: {e}");
            return ExitCode::FAILURE;
        }
    };
    if matches.opt_present("t") {
        let problems = tinymta::startup::startup_problems(&loaded.config);
        if problems.is_empty() {
            println!("config ok");
            return ExitCode::SUCCESS;
        }
        for problem in problems {
            eprintln!("tinymta: {problem}");
        }
        return ExitCode::FAILURE;
    }
    let syslog_socket = loaded.config.syslog_socket.clone();
    match tinymta::daemon::run(loaded, config_path) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("tinymta: {}", e.error);
            // Under `start-stop-daemon -b` standard error is /dev/null: where
            // the log target does not have the error either, syslog keeps it.
            if !e.logged && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let _ = tinymta::log::error_to_syslog(&syslog_socket, &e.error.to_string());
            }
            ExitCode::FAILURE
        }
    }
}

/// The command line as text. `std::env::args` panics on an argument that
/// is not UTF-8; here the program name is taken as it can be read, and any
/// other such argument is returned as the usage error.
fn utf8_args() -> Result<Vec<String>, std::ffi::OsString> {
    let mut os_args = std::env::args_os();
    let program = os_args
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut args = vec![program];
    for arg in os_args {
        args.push(arg.into_string()?);
    }
    Ok(args)
}

/// `tinymta mailq [-C FILE]` as `sendmail -bp [-C FILE]`, and so on; `-c
/// FILE` as the daemon's option is `-C FILE` here too.
fn with_config(args: &[String], mode: &str) -> Vec<String> {
    let mut out = vec![mode.to_string()];
    out.extend(args.iter().map(|a| {
        if a == "-c" {
            "-C".to_string()
        } else {
            a.clone()
        }
    }));
    out
}

/// The sendmail entry point: queue a message, list the queue, run it.
fn sendmail(args: &[String]) -> ExitCode {
    match tinymta::sendmail::parse_args(args) {
        Ok(options) => run_sendmail("sendmail", &options, ""),
        Err(e) => {
            eprintln!("sendmail: {e}");
            ExitCode::from(sysexits::USAGE)
        }
    }
}

/// The `mail` entry point: `mail -s SUBJECT ADDRESS < body` queues through
/// the same path as sendmail.
fn mail(args: &[String]) -> ExitCode {
    match tinymta::sendmail::parse_mail_args(args) {
        Ok((options, header)) => run_sendmail("mail", &options, &header),
        Err(e) => {
            eprintln!("mail: {e}");
            ExitCode::from(sysexits::USAGE)
        }
    }
}

/// Runs what sendmail's options ask for; a message to queue is `head`
/// followed by standard input.
fn run_sendmail(name: &str, options: &tinymta::sendmail::Options, head: &str) -> ExitCode {
    use std::io::Read;
    use tinymta::sendmail::{list_queue, submit, Mode, Submitter};
    use tinymta::sysexits as exit;
    let path = options
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    // Set-group-id, an ordinary user may not choose the config (it says
    // where the spool is), nor do more than queue a message (Postfix's
    // postdrop likewise).
    if sys::privileged() && (options.config.is_some() || options.mode != Mode::Deliver) {
        return refuse_privileged();
    }
    // All that queueing a message needs: never the TLS key or the users
    // file, which may be root's alone while an ordinary user queues.
    let loaded = Config::load(&path)
        .and_then(|config| tinymta::aliases::load_configured(&config).map(|a| (config, a)));
    let (config, aliases) = match loaded {
        Ok(loaded) => loaded,
        // An error quotes the file: not one the real user could not read.
        Err(_) if sys::privileged() && !sys::real_user_can_read(&path) => {
            eprintln!(
                "{name}: {} is not a usable config (what is wrong is not shown: you may not read it)",
                path.display()
            );
            return ExitCode::from(exit::CONFIG);
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let result = match options.mode {
        Mode::Deliver => {
            let (login, uid) = sys::real_user();
            let submitter = Submitter { login, uid };
            let stdin = std::io::stdin();
            let mut input = std::io::BufReader::new(head.as_bytes().chain(stdin.lock()));
            submit(&config, aliases.as_deref(), options, &submitter, &mut input).map(|_| ())
        }
        Mode::ListQueue => list_queue(&config).map(|text| print!("{text}")),
        Mode::RunQueue => return flush(&config),
        Mode::Smtp => {
            let spool = match Spool::for_submission(&config.spool_dir) {
                Ok(spool) => Arc::new(spool),
                Err(e) => {
                    eprintln!("{name}: {e}");
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
                tinymta::spool::waker::QueueWaker::detached(),
                None,
                users,
                aliases,
            );
            tinymta::server::connection::serve_stdio(&ctx);
            return ExitCode::from(exit::OK);
        }
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// `tinymta flush`, `sendmail -q`: asks the running daemon (its pid is in
/// `pid_file`) to run the queue now.
fn flush(config: &Config) -> ExitCode {
    let Some(pid_file) = &config.pid_file else {
        eprintln!("tinymta flush: no pid_file in the config, so the daemon cannot be found");
        return ExitCode::from(sysexits::CONFIG);
    };
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    let Some(pid) = pid else {
        eprintln!("tinymta flush: no daemon pid in {}", pid_file.display());
        return ExitCode::from(sysexits::TEMPFAIL);
    };
    match sys::send_signal(pid, Signal::RunQueue) {
        Ok(()) => {
            println!("tinymta flush: asked the daemon (pid {pid}) to try every queued message now");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tinymta flush: cannot signal the daemon (pid {pid}): {e}");
            ExitCode::from(sysexits::TEMPFAIL)
        }
    }
}

/// `tinymta passwd NAME`: reads a password from standard input (its first
/// line) and prints the line for the `auth_users` file.
fn passwd(args: &[String]) -> ExitCode {
    let [name] = args else {
        eprintln!("Usage: tinymta passwd NAME   (the password is read from standard input)");
        return ExitCode::from(sysexits::USAGE);
    };
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        eprintln!("tinymta passwd: a user name has no ':' and no spaces");
        return ExitCode::from(sysexits::USAGE);
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
