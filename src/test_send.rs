//! `tinymta test-send [-C FILE] ADDRESS`: sends a short test message to
//! ADDRESS the way the daemon would, and prints each step: the route, the
//! DNS answers, each connection, TLS and its certificate check, AUTH, the
//! replies. The route is decided and the job run by the daemon's own
//! functions ([`route`], [`run_job`]); the message goes through a private
//! temporary spool, not the live queue. A bare name is taken as sendmail
//! takes it (`root@qualify_domain`) and goes through the aliases; run as
//! root, it delivers as the daemon's user.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;

use crate::aliases::add_recipient;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::deliver::route::{route, Route};
use crate::deliver::run_job;
use crate::deliver::{DeliverySettings, Job, JobItem, Outcome, Reporter, RunnerEvent};
use crate::log::{clean_record, Escaped, MAX_LOG_RECORD};
use crate::smtp::address::{parse_mailbox, AddressError, Mailbox};
use crate::spool::{NewEntry, Spool, SpoolError};
use crate::sys;
use crate::sysexits as exit;
use crate::time::{rfc5322_date, unix_now};

/// Runs test-send with its arguments; returns the exit code (sysexits.h).
pub fn run(args: &[String]) -> u8 {
    let (config_path, address) = match args {
        [address] => (PathBuf::from(DEFAULT_CONFIG_PATH), address),
        [flag, path, address] if flag == "-C" || flag == "-c" => (PathBuf::from(path), address),
        _ => {
            eprintln!("Usage: tinymta test-send [-C FILE] ADDRESS");
            return exit::USAGE;
        }
    };
    // As the daemon loads it: the files it names are checked too.
    let (config, aliases) = match crate::daemon::load(&config_path) {
        Ok(loaded) => (loaded.config, loaded.aliases),
        Err(e) => {
            eprintln!("test-send: {e}");
            return exit::CONFIG;
        }
    };
    // `root` is root@qualify_domain, as sendmail takes it.
    let recipient = match crate::sendmail::qualify(address, &config) {
        Ok(mailbox) => mailbox,
        Err(e) => {
            eprintln!("test-send: bad address {address:?}: {e}");
            return exit::NOUSER;
        }
    };
    // Every step tinymta logs, on standard output.
    let _ = log::set_boxed_logger(Box::new(StepPrinter));
    log::set_max_level(log::LevelFilter::Trace);
    // Read as the daemon reads it: at start-up, while still root.
    let settings = match DeliverySettings::load(&config, aliases.clone()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("test-send: {e}");
            return exit::CONFIG;
        }
    };
    // Then as the daemon's user, as the daemon delivers: what a local
    // delivery makes (mailbox_dir, a Maildir, the message) is its own,
    // never a file of root's that the daemon could not write to later.
    sys::set_umask(0o077);
    if sys::is_root() {
        let dropped = crate::startup::find_account(&config).and_then(|account| {
            sys::drop_privileges(&account)
                .map(|()| account)
                .map_err(crate::startup::StartError::from)
        });
        match dropped {
            Ok(account) => println!("running as {}, as the daemon does", account.name),
            Err(e) => {
                eprintln!("test-send: {e}");
                return exit::CONFIG;
            }
        }
    }
    // The recipients the queue would hold: through the aliases.
    let mut recipients = Vec::new();
    add_recipient(
        &config,
        aliases.as_deref(),
        &mut recipients,
        recipient.clone(),
    );
    if recipients != [recipient.clone()] {
        let targets: Vec<String> = recipients.iter().map(Mailbox::to_string).collect();
        println!("{recipient}: the aliases give {}", targets.join(", "));
    }
    // A new directory of an unguessable name: never one someone made (or
    // symlinked) in the shared temporary directory beforehand.
    let scratch = std::env::temp_dir().join(format!(
        "tinymta-test-send-{}-{:016x}",
        std::process::id(),
        crate::random::random_u64()
    ));
    if let Err(e) = std::fs::create_dir(&scratch) {
        eprintln!("test-send: {}: {e}", scratch.display());
        return exit::TEMPFAIL;
    }
    let mut code = exit::OK;
    for rcpt in &recipients {
        let route = route(&config, rcpt);
        show_route(&settings, &route, rcpt);
        let outcome = send(&settings, &scratch, route, rcpt);
        // A permanent failure of any recipient says most; then a temporary one.
        match show_outcome(rcpt, outcome) {
            exit::OK => {}
            this if code == exit::OK || this == exit::NOUSER => code = this,
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    code
}

/// Prints one recipient's outcome; its exit code.
fn show_outcome(rcpt: &Mailbox, outcome: Result<Vec<Outcome>, SendError>) -> u8 {
    match outcome {
        Ok(outcomes) => match outcomes.first() {
            // The texts are the upstream server's replies.
            Some(Outcome::Delivered(text)) => {
                println!("{rcpt}: result: delivered ({})", Escaped(text));
                exit::OK
            }
            Some(Outcome::Forwarded(text)) => {
                println!(
                    "{rcpt}: result: refused; forwarded as mail (in test-send's scratch queue, \
                     which is removed): {}",
                    Escaped(text)
                );
                exit::NOUSER
            }
            Some(Outcome::Deferred(failure) | Outcome::Postponed(failure, _)) => {
                println!(
                    "{rcpt}: result: temporary failure: {}",
                    Escaped(&failure.text)
                );
                exit::TEMPFAIL
            }
            Some(Outcome::Failed(failure)) => {
                println!(
                    "{rcpt}: result: permanent failure: {}",
                    Escaped(&failure.text)
                );
                exit::NOUSER
            }
            None => {
                println!("{rcpt}: result: no outcome");
                exit::SOFTWARE
            }
        },
        Err(e) => {
            eprintln!("test-send: {e}");
            exit::TEMPFAIL
        }
    }
}

/// Prints the route and what DNS says of its hosts.
fn show_route(settings: &DeliverySettings, route: &Route, recipient: &Mailbox) {
    let config = &settings.config;
    match route {
        Route::Local => println!(
            "{recipient}: route: local, into a Maildir in {}",
            config.mailbox_dir.display()
        ),
        Route::Smarthost => {
            let smarthost = config.smarthost.as_ref().expect("smarthost route");
            println!("{recipient}: route: smarthost {smarthost}");
            match settings.resolver.resolve_host(&smarthost.host) {
                Ok(addresses) => println!("DNS: {} has {addresses:?}", smarthost.host),
                Err(e) => println!("DNS: {}: {e}", smarthost.host),
            }
        }
        Route::Push(pattern) => {
            let transport = crate::config::route::find_route(&config.route, recipient)
                .map_or("?", |route| route.transport.name());
            println!("{recipient}: route: push route {pattern} ({transport})");
        }
        Route::Mx(domain) => {
            println!("{recipient}: route: the MX hosts of {}", recipient.domain);
            match settings.resolver.resolve_mx(domain) {
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
        }
    }
}

/// Why the test message could not be queued in the scratch spool.
#[derive(Debug)]
enum SendError {
    Spool(SpoolError),
    /// `send_as`, or postmaster at `qualify_domain`, is no address.
    Sender(AddressError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Spool(error) => error.fmt(f),
            SendError::Sender(error) => error.fmt(f),
        }
    }
}

impl From<SpoolError> for SendError {
    fn from(error: SpoolError) -> SendError {
        SendError::Spool(error)
    }
}

/// Queues the test message in a scratch spool and runs its job on `route`;
/// returns the recipient's outcomes.
fn send(
    settings: &DeliverySettings,
    scratch: &Path,
    route: Route,
    recipient: &Mailbox,
) -> Result<Vec<Outcome>, SendError> {
    let config = &settings.config;
    let spool = Spool::open(scratch)?;
    let sender = config.send_as.as_ref().map_or_else(
        || format!("postmaster@{}", config.qualify_domain),
        Mailbox::to_string,
    );
    let sender_box = parse_mailbox(&sender).map_err(SendError::Sender)?;
    let now = unix_now();
    let mut message = spool.begin()?;
    let text = format!(
        "From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: tinymta test message from {}\r\n\
         Date: {}\r\nMessage-ID: <{}@{}>\r\n\r\nThis is a test message sent by `tinymta test-send`.\r\n",
        config.hostname,
        rfc5322_date(now),
        message.id,
        config.hostname
    );
    message.write(text.as_bytes())?;
    let entry = NewEntry::local(
        &config.hostname,
        Some(sender_box),
        vec![recipient.clone()],
        text.as_bytes(),
    );
    let size = message.size();
    let id = message.commit(&entry)?;
    let job = Job {
        route,
        items: vec![JobItem {
            id,
            sender,
            eight_bit: false,
            size,
            arrival: entry.arrival,
            recipients: vec![(0, recipient.clone())],
            first_attempt: true,
        }],
    };
    let (results, received) = channel();
    {
        let mut reporter = Reporter::new(results);
        reporter.took(&job);
        run_job(settings, &spool, job, &mut reporter, &mut || None);
    }
    let mut outcomes = Vec::new();
    while let Ok(RunnerEvent::Done(result)) = received.try_recv() {
        outcomes.extend(result.outcomes.into_iter().map(|(_, o)| o));
    }
    Ok(outcomes)
}

/// test-send's logger: tinymta's own records, as steps on standard output,
/// each one line without control characters, as in the other log targets.
struct StepPrinter;

impl log::Log for StepPrinter {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("tinymta")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            println!("  {}", clean_record(&message, MAX_LOG_RECORD));
        }
    }

    fn flush(&self) {}
}
