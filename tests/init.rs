//! The busybox init script, driven with the real busybox applets
//! (`busybox sh`, `busybox start-stop-daemon`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::Server;

struct Script {
    pid_file: PathBuf,
    config: PathBuf,
    /// The script's DAEMON: the binary, or a script that runs it through
    /// the runner (support::runner_script).
    daemon: PathBuf,
}

impl Script {
    fn run(&self, action: &str) -> (Option<i32>, String) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/init.d/S50tinymta");
        let out = Command::new("busybox")
            .args(["sh", script, action])
            .env("DAEMON", &self.daemon)
            .env("CONFIG", &self.config)
            .env("PIDFILE", &self.pid_file)
            .env("SSD", "busybox start-stop-daemon")
            .output()
            .expect("busybox (apt-get install busybox)");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Script {
    /// Whatever happened in the test, the daemon does not outlive it.
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = tinymta::sys::send_signal(pid, tinymta::sys::Signal::Terminate);
        }
    }
}

/// The daemon started in the background answers once it has bound its port.
fn wait_for_greeting(server: &Server) {
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", server.port)) {
            let mut c = support::Client::from_stream(stream);
            assert_eq!(c.reply(), "220 mx.test ESMTP\r\n");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `text` as the test compares it: as it is for the native (glibc) binary;
/// under a runner, where the binary is a musl one (`Address in use` for
/// glibc's `Address already in use`), with each system error's words left
/// out and its number kept.
fn errno_words(text: &str) -> String {
    if std::env::var_os("TINYMTA_RUNNER").is_some() {
        support::errno_words_left_out(text)
    } else {
        text.to_string()
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The script with a config and directories from the harness, whose own
/// server is gone. The script starts the binary itself: under a runner, its
/// DAEMON is a script that starts it through the runner (qemu-user runs
/// the guest in its own process, so the pid, the signals and the listening
/// socket the script looks for are the daemon's).
fn harness_script() -> (Server, Script) {
    let mut server = Server::start("");
    server.kill();
    let through_runner = server.dir.path().join("tinymta");
    let daemon = if support::runner_script(&through_runner) {
        through_runner
    } else {
        support::binary()
    };
    let script = Script {
        pid_file: server.dir.path().join("tinymta.pid"),
        config: server.config_path(),
        daemon,
    };
    (server, script)
}

#[test]
fn start_reload_restart_and_stop_with_busybox() {
    let (server, script) = harness_script();
    assert_eq!(
        script.run("start"),
        (Some(0), "Starting tinymta: OK\n".to_string())
    );
    let pid = script.pid().expect("a pid file");
    assert!(alive(pid));
    wait_for_greeting(&server);
    assert_eq!(
        script.run("start"),
        (Some(0), "Starting tinymta: already running\n".to_string())
    );
    assert_eq!(
        script.run("reload"),
        (Some(0), "Reloading tinymta: OK\n".to_string())
    );
    server.wait_for_log("reloaded ");
    assert_eq!(
        script.run("restart"),
        (
            Some(0),
            "Stopping tinymta: OK\nStarting tinymta: OK\n".to_string()
        )
    );
    let new_pid = script.pid().expect("a pid file");
    assert_ne!(pid, new_pid);
    assert!(!alive(pid));
    wait_for_greeting(&server);
    assert_eq!(
        script.run("stop"),
        (Some(0), "Stopping tinymta: OK\n".to_string())
    );
    assert!(!alive(new_pid));
    assert!(!script.pid_file.exists());
    assert!(server.log().contains("stopped"));
    assert_eq!(
        script.run("stop"),
        (Some(0), "Stopping tinymta: not running\n".to_string())
    );
    // A broken config is said at start, not hidden in the background.
    std::fs::write(&script.config, "bogus = 1\n").unwrap();
    let (code, out) = script.run("start");
    assert_eq!(code, Some(1));
    assert!(
        out.starts_with("Starting tinymta: FAIL (config)\n"),
        "{out}"
    );
    assert!(out.contains(":1: bogus: unknown key\n"), "{out}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(script.pid().is_none());
}

#[test]
fn a_daemon_that_does_not_come_up_is_a_fail_with_its_reason() {
    // Issue 13.6: `Starting tinymta: OK` was printed over a dead daemon.
    let (server, script) = harness_script();
    // An error from a start before is not this start's reason.
    std::fs::write(
        server.log_path(),
        "2026-01-01T00:00:00Z [ERROR] an old error\n",
    )
    .unwrap();
    // -t passes; the port is taken when the daemon binds it.
    let taken = std::net::TcpListener::bind(("127.0.0.1", server.port)).unwrap();
    let (code, out) = script.run("start");
    assert_eq!(
        (code, errno_words(&out)),
        (
            Some(1),
            errno_words(&format!(
                "Starting tinymta: FAIL (cannot listen on 127.0.0.1:{}: Address already in use \
                 (os error 98))\n",
                server.port
            ))
        )
    );
    assert!(!script.pid_file.exists());
    // Once the port is free it starts, and says so only once it listens.
    drop(taken);
    assert_eq!(
        script.run("start"),
        (Some(0), "Starting tinymta: OK\n".to_string())
    );
    assert!(alive(script.pid().expect("a pid file")));
    // Listening already: the first connection is answered.
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("listening");
    let mut client = support::Client::from_stream(stream);
    assert_eq!(client.reply(), "220 mx.test ESMTP\r\n");
}

#[test]
fn with_log_to_standard_error_the_reason_comes_from_syslog() {
    // Issue 13.6: with `log = stderr`, start-stop-daemon -b gives the daemon
    // /dev/null, and its start-up error was recorded nowhere. It goes to
    // syslog now, and the script finds it with busybox logread. busybox
    // syslogd listens on /dev/log only: it runs in a mount namespace of its
    // own whose /dev is a tmpfs (and an IPC namespace, for logread's buffer).
    if !support::running_as_root() {
        support::skip("needs root for a private /dev");
        return;
    }
    let (server, script) = harness_script();
    let config = std::fs::read_to_string(&script.config).unwrap();
    let config: String = config
        .lines()
        .filter(|line| !line.starts_with("log ="))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&script.config, format!("{config}log = stderr\n")).unwrap();
    let taken = std::net::TcpListener::bind(("127.0.0.1", server.port)).unwrap();
    let old_dev = server.dir.path().join("old-dev");
    std::fs::create_dir(&old_dev).unwrap();
    let init_script = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/init.d/S50tinymta");
    let out = Command::new("unshare")
        .args(["-m", "-i", "--propagation", "private", "sh", "-c"])
        .arg(
            "set -e; mount --bind /dev \"$OLD_DEV\"; mount -t tmpfs tmpfs /dev; \
             touch /dev/null; mount --bind \"$OLD_DEV/null\" /dev/null; \
             busybox syslogd -n -C64 & syslogd=$!; \
             while [ ! -S /dev/log ]; do sleep 0.05; done; \
             set +e; busybox sh \"$INIT_SCRIPT\" start; code=$?; \
             kill $syslogd; exit $code",
        )
        .env("OLD_DEV", &old_dev)
        .env("INIT_SCRIPT", init_script)
        .env("DAEMON", &script.daemon)
        .env("CONFIG", &script.config)
        .env("PIDFILE", &script.pid_file)
        .env("SSD", "busybox start-stop-daemon")
        .output()
        .unwrap();
    drop(taken);
    assert_eq!(
        (
            out.status.code(),
            errno_words(&String::from_utf8_lossy(&out.stdout)),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            errno_words(&format!(
                "Starting tinymta: FAIL (cannot listen on 127.0.0.1:{}: Address already in use \
                 (os error 98))\n",
                server.port
            )),
            String::new()
        )
    );
}
