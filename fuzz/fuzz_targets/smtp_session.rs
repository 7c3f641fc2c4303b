//! The session state machine fed arbitrary lines: every reply is well
//! formed, and nothing panics.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tinymta::aliases::Aliases;
use tinymta::config::Config;
use tinymta::server::policy::{session_settings, ServerPolicy};
use tinymta::smtp::session::{Action, Session};

fn config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let config = Config::parse(
            "hostname = mx.test\nlocal_domains = mx.test\nmax_recipients = 5\nmax_errors = 1000\n",
            std::path::Path::new("fuzz.conf"),
        )
        .unwrap();
        Arc::new(config)
    }))
}

fn aliases() -> Arc<Aliases> {
    static ALIASES: OnceLock<Arc<Aliases>> = OnceLock::new();
    Arc::clone(ALIASES.get_or_init(|| {
        Arc::new(Aliases::parse("root: admin, ops@far.test\nadmin: admin\n*: catch\n").unwrap())
    }))
}

fuzz_target!(|data: &[u8]| {
    let users = tinymta::auth::Users::parse(&tinymta::auth::hash_line("box", b"pw", 1)).ok().map(Arc::new);
    let ip = if data.first().is_some_and(|b| b & 1 == 1) { "192.0.2.1" } else { "127.0.0.1" };
    let ip = ip.parse().unwrap();
    let policy = ServerPolicy::new(config(), Some(aliases()), users, ip);
    let mut session = Session::new(session_settings(&config()), Box::new(policy), ip)
        .with_listener(true, data.len() % 3 == 0, data.len() % 5 == 0);
    for line in data.split(|&b| b == b'\n') {
        let step = session.handle_line(line);
        let wire = step.reply.to_wire();
        assert!(wire.ends_with("\r\n"));
        assert!((200..600).contains(&step.reply.code));
        match step.action {
            Action::Close => return,
            Action::ReceiveData => {
                let _ = session.received_header("ID", "date");
                let _ = session.take_envelope().expect("DATA within a transaction");
            }
            Action::StartTls => session.tls_started(),
            Action::Continue => {}
        }
    }
});
