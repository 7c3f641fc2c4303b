//! Starts the real tinymta binary on a free loopback port with a temporary
//! config and spool, and stops it when the test ends (also when it fails).
#![allow(dead_code)]

pub mod load;
pub mod peers;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the server to do something before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The binary under test: `TINYMTA_BIN` (for a cross-built one run under
/// qemu), else the one cargo built for this test run.
pub fn binary() -> PathBuf {
    std::env::var_os("TINYMTA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tinymta")))
}

/// A command that runs `program` (the binary, or a link to it), through
/// `TINYMTA_RUNNER` when set: `qemu-aarch64-static` for a cross-built one.
pub fn tinymta_command_for(program: &Path) -> Command {
    match std::env::var_os("TINYMTA_RUNNER") {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A command that runs the binary under test.
pub fn tinymta_command() -> Command {
    tinymta_command_for(&binary())
}

/// A command that runs the binary under test through `wrapper` (a program
/// and its arguments that end by exec'ing the rest of its command line:
/// `faketime`, `unshare`), or as [`tinymta_command`] when it is empty.
pub fn tinymta_command_through(wrapper: &[String]) -> Command {
    let Some((program, args)) = wrapper.split_first() else {
        return tinymta_command();
    };
    let mut command = Command::new(program);
    command.args(args);
    command.args(std::env::var_os("TINYMTA_RUNNER"));
    command.arg(binary());
    command
}

/// Runs the binary once with `args` (not as a server) and returns (exit code, stdout, stderr).
pub fn run_tinymta<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = tinymta_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tinymta");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The loopback address it listens on.
    pub ip: String,
    pub extra_config: String,
    /// What the server is started through (see [`tinymta_command_through`]).
    pub wrapper: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts tinymta with the test defaults plus `extra_config` lines.
    pub fn start(extra_config: &str) -> Server {
        Server::start_through(&[], extra_config)
    }

    /// Starts tinymta listening on another loopback address (`127.0.0.4`),
    /// as an upstream server for another tinymta.
    pub fn start_at(ip: &str, extra_config: &str) -> Server {
        Server::launch_new(ip, &[], extra_config)
    }

    /// Starts tinymta through `wrapper` (see [`tinymta_command_through`]):
    /// under a faked clock, in a mount namespace.
    pub fn start_through(wrapper: &[String], extra_config: &str) -> Server {
        Server::launch_new("127.0.0.1", wrapper, extra_config)
    }

    fn launch_new(ip: &str, wrapper: &[String], extra_config: &str) -> Server {
        let mut server = Server {
            dir: test_dir(),
            port: 0,
            ip: ip.to_string(),
            extra_config: extra_config.to_string(),
            wrapper: wrapper.to_vec(),
            child: None,
        };
        server.launch_on_free_port();
        server
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tinymta.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinymta.log")
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn mailboxes(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The test defaults, each left out where `extra_config` sets the key.
    /// DNS goes to a closed loopback port unless a test brings dnsmasq:
    /// no test ever asks the machine's own resolver.
    fn write_config(&self) {
        let hosts = self.dir.path().join("hosts");
        fs::write(&hosts, "127.0.0.1 localhost\n").expect("write hosts");
        let defaults = [
            ("hostname", "mx.test".to_string()),
            ("spool_dir", self.spool().display().to_string()),
            ("mailbox_dir", self.mailboxes().display().to_string()),
            ("local_domains", "mx.test, localhost".to_string()),
            ("log", self.log_path().display().to_string()),
            ("log_level", "debug".to_string()),
            ("dns_servers", "127.0.0.1:9".to_string()),
            ("hosts_file", hosts.display().to_string()),
            ("dns_timeout", "1s".to_string()),
            ("connect_timeout", "5s".to_string()),
            ("mx_port", free_port().to_string()),
            // The tests' MX hosts are on loopback addresses.
            ("deliver_to_loopback", "yes".to_string()),
            ("retry_min", "1h".to_string()),
            ("retry_max", "1h".to_string()),
            // Started as root (as in CI), tinymta becomes nobody; it must
            // reach its directories inside the test's (see test_dir).
            ("user", "nobody".to_string()),
        ];
        let given: Vec<&str> = self
            .extra_config
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        let mut config = format!("listen = {}:{}\n", self.ip, self.port);
        for (key, value) in defaults {
            if !given.contains(&key) {
                config.push_str(&format!("{key} = {value}\n"));
            }
        }
        config.push_str(&self.extra_config);
        config.push('\n');
        fs::write(self.config_path(), config).expect("write config");
    }

    /// Picks a port, starts the server, and waits for its greeting; another
    /// test may take the port between our probe and the server's bind, so a
    /// failed start is retried on a new port.
    fn launch_on_free_port(&mut self) {
        for _ in 0..5 {
            self.port = peers::free_port_on(&self.ip);
            if self.launch() {
                return;
            }
        }
        panic!("tinymta did not start; log:\n{}", self.log());
    }

    /// Starts the server on `self.port`; false if it exited at once.
    fn launch(&mut self) -> bool {
        self.write_config();
        let child = tinymta_command_through(&self.wrapper)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinymta");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("tinymta exited at start: {status}");
                self.child = None;
                return false;
            }
            if let Ok(stream) = TcpStream::connect((self.ip.as_str(), self.port)) {
                let mut client = Client::from_stream(stream);
                // A read that fails (the server may be going down as it
                // starts) is no answer yet; the loop sees whether it exited.
                if client.try_read_reply().is_ok_and(|r| r.starts_with("220 ")) {
                    client.send("QUIT");
                    // Let the probe's session end before the test begins.
                    let _ = client.closed();
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tinymta did not answer on port {}", self.port);
    }

    /// Waits for the server to exit by itself; its exit code.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: tinymta::sys::Signal) {
        tinymta::sys::send_signal(self.pid(), signal).expect("signal");
    }

    /// Waits until the log has `text` in it.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "log never had {text:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the server gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, spool and mailboxes.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.launch(), "restart failed; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn connect(&self) -> Client {
        Client::from_stream(TcpStream::connect((self.ip.as_str(), self.port)).expect("connect"))
    }

    /// A client that has read the greeting and said EHLO.
    pub fn greeted(&self) -> Client {
        let mut client = self.connect();
        assert_eq!(client.reply(), "220 mx.test ESMTP\r\n");
        client.send("EHLO client.test");
        assert!(client.reply().starts_with("250-mx.test\r\n"));
        client
    }

    /// Names of the files in `spool_dir/new` (sorted).
    pub fn queue_files(&self) -> Vec<String> {
        list_dir(&self.spool().join("new"))
    }

    /// The id of the first entry in the queue (its `.msg` file), as one
    /// queued without an SMTP reply to name it (sendmail) is found.
    pub fn first_queue_id(&self) -> String {
        let files = self.queue_files();
        files
            .iter()
            .find_map(|f| f.strip_suffix(".msg"))
            .unwrap_or_else(|| panic!("no queue entry: {files:?}"))
            .to_string()
    }

    pub fn tmp_files(&self) -> Vec<String> {
        list_dir(&self.spool().join("tmp"))
    }

    /// The messages in a local user's Maildir `new/`, waiting until there
    /// are `count` of them; sorted by content.
    pub fn wait_for_mail(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        let dir = self.mailboxes().join(user).join("new");
        let deadline = Instant::now() + WAIT;
        loop {
            let names = list_dir(&dir);
            if names.len() >= count {
                assert_eq!(names.len(), count, "too many messages for {user}");
                let mut messages: Vec<Vec<u8>> = names
                    .iter()
                    .map(|n| fs::read(dir.join(n)).unwrap())
                    .collect();
                messages.sort();
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{count} message(s) for {user} did not arrive; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Messages in a user's Maildir now, without waiting.
    pub fn mail_count(&self, user: &str) -> usize {
        list_dir(&self.mailboxes().join(user).join("new")).len()
    }

    /// A queue entry's message and the envelope it was queued with, read
    /// from `new/<id>.msg` (see [`split_queue_file`]).
    pub fn stored(&self, id: &str) -> (Vec<u8>, String) {
        let file = fs::read(self.spool().join(format!("new/{id}.msg"))).unwrap();
        let (message, envelope) = split_queue_file(&file);
        (message.to_vec(), envelope.to_string())
    }

    /// A queue entry's envelope as it is now: `new/<id>.env` once delivery
    /// has rewritten it, else the one stored with the message; empty when
    /// the entry is gone.
    pub fn envelope(&self, id: &str) -> String {
        let new = self.spool().join("new");
        if let Ok(text) = fs::read_to_string(new.join(format!("{id}.env"))) {
            return text;
        }
        match fs::read(new.join(format!("{id}.msg"))) {
            Ok(file) => split_queue_file(&file).1.to_string(),
            Err(_) => String::new(),
        }
    }

    /// The envelope of a queue entry, once it contains every one of `lines`
    /// (whole lines); the runner rewrites it as outcomes come in.
    pub fn wait_for_envelope(&self, id: &str, lines: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.envelope(id);
            if lines.iter().all(|l| text.lines().any(|t| t == *l)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "envelope {id} never had {lines:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The envelope of a queue entry, once its text contains `text`.
    pub fn wait_for_envelope_containing(&self, id: &str, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let envelope = self.envelope(id);
            if envelope.contains(text) {
                return envelope;
            }
            assert!(
                Instant::now() < deadline,
                "envelope {id} never had {text:?}:\n{envelope}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the queue is empty (everything delivered).
    pub fn wait_for_empty_queue(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.queue_files().is_empty() {
            assert!(
                Instant::now() < deadline,
                "queue not emptied: {:?}",
                self.queue_files()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- tinymta log ---\n{}", self.log());
        }
    }
}

/// Lets this test process hold a few thousand sockets.
pub fn raise_fd_limit(wanted: u64) {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Runs a Python script (the tests' smtplib client); its standard output,
/// failing the test on an error.
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command` with `input` on its stdin: (exit code, stdout, stderr).
/// A child that refuses early and does not read its input is no error here.
pub fn run_with_input(mut command: Command, input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that each of `pieces` is in `out`, in this order (a command's
/// steps, with lines between them that the test does not pin down).
pub fn assert_in_order(out: &str, pieces: &[String]) {
    let mut rest = out;
    for piece in pieces {
        let at = rest
            .find(piece.as_str())
            .unwrap_or_else(|| panic!("missing or out of order: {piece:?}\n{out}"));
        rest = &rest[at + piece.len()..];
    }
}

/// A temporary directory that a server running as nobody can enter.
pub fn test_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temporary directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Debian's `mail` group: tinymta's default `submit_group`.
pub const MAIL_GID: u32 = 8;

/// A copy of tinymta in `dir`, set-group-id `mail` as README's install
/// makes it (needs root).
pub fn setgid_binary(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let setgid = dir.join("tinymta");
    fs::copy(binary(), &setgid).unwrap();
    std::os::unix::fs::chown(&setgid, Some(0), Some(MAIL_GID)).unwrap();
    fs::set_permissions(&setgid, fs::Permissions::from_mode(0o2755)).unwrap();
    setgid
}

/// Says that the calling test cannot run here, and why; the test returns
/// after it. A skip must not pass unseen: it is appended as one line,
/// `[RUNNER ]BINARY TEST: WHY`, to the file `TINYMTA_SKIP_LOG` names (`make
/// test` counts and lists them at its end; libtest runs tests in threads
/// and in one process per test file, and a single O_APPEND write keeps
/// their lines whole). With `TINYMTA_REQUIRE_ALL=1` (CI: root, on a
/// machine with every peer) the skip fails the test instead, with `why`.
/// The test's name is its thread's, which libtest names after the test.
pub fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("(unnamed test thread)");
    assert!(
        std::env::var_os("TINYMTA_REQUIRE_ALL").is_none_or(|v| v != "1"),
        "{test}: {why}; TINYMTA_REQUIRE_ALL=1 lets no test skip"
    );
    eprintln!("{why}; skipped");
    let Some(log) = std::env::var_os("TINYMTA_SKIP_LOG") else {
        return;
    };
    // The test file's name: cargo's `deps/NAME-HASH`.
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    let binary = stem.rsplit_once('-').map_or(&*stem, |(name, _)| name);
    let runner = std::env::var("TINYMTA_RUNNER").map_or(String::new(), |r| format!("[{r}] "));
    let line = format!("{runner}{binary} {test}: {why}\n");
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .unwrap_or_else(|e| {
            panic!(
                "cannot record the skip in {}: {e}",
                Path::new(&log).display()
            )
        });
}

/// Writes at `path` a script that runs the binary under test through
/// `TINYMTA_RUNNER`, for a program that execs tinymta itself (an init
/// script's DAEMON, an alert tool's /usr/sbin/sendmail): the kernel cannot
/// exec a foreign binary without binfmt_misc, and this machine has none.
/// The runner gets the name the script was called by as argv[0] (`-0`), as
/// tinymta picks its mode by that name (`sendmail`). False, and nothing
/// written, without a runner: the binary is exec'd as it is.
pub fn runner_script(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(runner) = std::env::var_os("TINYMTA_RUNNER") else {
        return false;
    };
    let quoted = |p: &std::ffi::OsStr| format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"));
    let script = format!(
        "#!/bin/sh\nexec {} -0 \"$0\" {} \"$@\"\n",
        quoted(&runner),
        quoted(binary().as_os_str())
    );
    fs::write(path, script).expect("write the runner script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    true
}

/// Whether the tests run as root (then tinymta drops its privileges).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A raw SMTP client for exact replies and malformed input.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// Connects from the loopback address `source` (another client host).
    pub fn connect_from(source: &str, server: &Server) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let local: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
        socket.bind(&local.into()).expect("bind the client address");
        let remote: std::net::SocketAddr =
            format!("{}:{}", server.ip, server.port).parse().unwrap();
        socket.connect(&remote.into()).expect("connect");
        Client::from_stream(socket.into())
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Sends one command line with CRLF.
    pub fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends bytes; an error (the server closed) is returned, not a panic.
    pub fn send_raw_checked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// A reply if one is already there, without waiting.
    pub fn try_reply(&mut self) -> Option<String> {
        let stream = self.reader.get_ref();
        stream.set_nonblocking(true).unwrap();
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        self.reader.get_ref().set_nonblocking(false).unwrap();
        match got {
            Ok(n) if n > 0 => Some(line),
            _ => None,
        }
    }

    /// One whole reply, or the error that stopped reading it.
    pub fn try_read_reply(&mut self) -> std::io::Result<String> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(reply);
            }
        }
    }

    /// One whole reply, all its lines, as received.
    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; got so far: {reply:?}");
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return reply;
            }
        }
    }

    /// Sends a command and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// Whether the server closed the connection (reads to end of stream).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(_) => false,
        }
    }

    pub fn shutdown(&self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }

    /// MAIL, RCPTs and DATA, each accepted: the message text comes next.
    pub fn begin_data(&mut self, from: &str, to: &[&str]) {
        assert_eq!(
            self.command(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Ok\r\n"
        );
        for rcpt in to {
            assert_eq!(
                self.command(&format!("RCPT TO:<{rcpt}>")),
                "250 2.1.5 Ok\r\n"
            );
        }
        assert_eq!(
            self.command("DATA"),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
    }

    /// MAIL, RCPTs, DATA and the message; returns the queue id from the 250.
    pub fn send_message(&mut self, from: &str, to: &[&str], data: &[u8]) -> String {
        self.begin_data(from, to);
        self.send_raw(data);
        let reply = self.reply();
        queue_id(&reply)
    }
}

/// The id in `250 2.0.0 Ok: queued as ID`.
pub fn queue_id(reply: &str) -> String {
    reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"))
        .to_string()
}

/// A queue file as the spool documents it: the message, its envelope,
/// then `tinymta-envelope-at: ` and 20 digits giving where the envelope
/// starts. Checks that form exactly, and that the envelope's `size:` says
/// the same; returns (message, envelope).
pub fn split_queue_file(file: &[u8]) -> (&[u8], &str) {
    let trailer_len = "tinymta-envelope-at: ".len() + 20 + 1;
    assert!(file.len() >= trailer_len, "queue file too short");
    let (body, trailer) = file.split_at(file.len() - trailer_len);
    let trailer = std::str::from_utf8(trailer).unwrap();
    let digits = trailer
        .strip_prefix("tinymta-envelope-at: ")
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("bad trailer {trailer:?}"));
    assert_eq!(digits.len(), 20, "{trailer:?}");
    let start: usize = digits.parse().unwrap();
    let (message, envelope) = body.split_at(start);
    let envelope = std::str::from_utf8(envelope).unwrap();
    assert!(envelope.starts_with("tinymta-envelope: 1\n"), "{envelope}");
    assert!(
        envelope.contains(&format!("\nsize: {start}\n")),
        "{envelope}"
    );
    (message, envelope)
}

/// The `Received:` header tinymta writes, for a client at 127.0.0.1 that said
/// `EHLO client.test`, with the date left out: returns (header, rest of message).
pub fn split_received(stored: &[u8]) -> (String, Vec<u8>) {
    let text = String::from_utf8_lossy(stored);
    let end = ["+0000\r\n", "+0000\n"]
        .iter()
        .find_map(|marker| text.find(marker).map(|at| at + marker.len()))
        .expect("Received: header with a date");
    (text[..end].to_string(), stored[end..].to_vec())
}

/// dnsmasq on a free loopback port, answering only from its command line:
/// no upstream servers, no /etc/hosts, authoritative for `.test` (so an
/// unknown name there is NXDOMAIN, and nothing ever leaves the machine).
pub struct Dnsmasq {
    pub port: u16,
    child: Child,
}

impl Dnsmasq {
    /// `records` are dnsmasq options such as `--mx-host=a.test,mx.a.test,10`.
    pub fn start(records: &[&str]) -> Dnsmasq {
        for _ in 0..5 {
            let port = free_udp_port();
            let mut child = Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--conf-file=/dev/null",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--user=root",
                    "--group=root",
                    "--pid-file=",
                    "--local=/test/",
                    "--log-facility=-",
                    "--quiet-dhcp",
                ])
                .arg(format!("--port={port}"))
                .args(records)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq (apt-get install dnsmasq-base)");
            // It answers once it has bound; it exits at once if the port was taken.
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if dns_answers(port) {
                    return Dnsmasq { port, child };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }

    /// The `dns_servers` config line for tinymta.
    pub fn config_line(&self) -> String {
        format!("dns_servers = 127.0.0.1:{}", self.port)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// Whether a DNS server on the loopback port answers a query at all.
fn dns_answers(port: u16) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let query = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'p', b'r', b'o', b'b', b'e', 4, b't', b'e',
        b's', b't', 0, 0, 1, 0, 1,
    ];
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    socket.recv(&mut buf).is_ok()
}

/// `text` with each system error's words left out, keeping its number:
/// `...: Address already in use (os error 98)` becomes `...: (os error 98)`.
/// glibc and musl word the same errno differently, and the binary under
/// test may be a musl one under qemu.
pub fn errno_words_left_out(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        let words_start = rest[..at].rfind(": ").map_or(0, |colon| colon + 2);
        out.push_str(&rest[..words_start]);
        out.push_str("(os error ");
        rest = &rest[at + " (os error ".len()..];
    }
    out.push_str(rest);
    out
}
