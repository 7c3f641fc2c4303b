//! Upstream servers nobody here wrote, started on loopback for the delivery
//! tests: Postfix's smtp-sink and an aiosmtpd server (tests/peers/upstream.py),
//! Python's http.server as a push service (tests/peers/http_server.py), and a
//! test CA made with the openssl command.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{list_dir, Client, WAIT};

/// Servers that accept connections and then hold them without a word (a
/// hanging MX host or smarthost): a client waits there for the greeting
/// until its own timeout, or until these are dropped.
pub struct SilentServers {
    /// Connections accepted so far, by the address they came to.
    accepted: Arc<Mutex<HashMap<IpAddr, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServers {
    pub fn start(listeners: Vec<TcpListener>) -> SilentServers {
        for listener in &listeners {
            listener.set_nonblocking(true).unwrap();
        }
        let accepted = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let accepted = Arc::clone(&accepted);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for listener in &listeners {
                        while let Ok((stream, _)) = listener.accept() {
                            let ip = listener.local_addr().unwrap().ip();
                            *accepted.lock().unwrap().entry(ip).or_insert(0) += 1;
                            held.push(stream);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        SilentServers {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far on `ip`.
    pub fn accepted_on(&self, ip: IpAddr) -> usize {
        self.accepted.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for SilentServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A free TCP port on a loopback address other than 127.0.0.1.
pub fn free_port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something answers `220` on `addr`.
fn wait_for_greeting(addr: SocketAddr, child: &mut Child, what: &str) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited at start: {status}");
        }
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let mut client = Client::from_stream(stream);
            if client.reply().starts_with("220") {
                client.send("QUIT");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not answer on {addr}");
}

/// A message as an upstream server stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// `X-TLS:` (aiosmtpd only): the TLS version, or `none`.
    pub tls: String,
    /// `X-Auth:` (aiosmtpd only): the authenticated user, or `none`.
    pub auth: String,
    /// The message text after the server's own additions.
    pub text: Vec<u8>,
}

/// Postfix's smtp-sink, dumping each transaction into a directory.
pub struct SmtpSink {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    /// `options` go before the address, e.g. `["-r", "RCPT"]`.
    pub fn start(addr: SocketAddr, options: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let template = format!("{}/%Y%m%d%H%M%S.", dir.path().display());
        let mut child = Command::new(sink_binary())
            .args(["-u", "root", "-h", "sink.test", "-d", &template])
            .args(options)
            .arg(addr.to_string())
            .arg("64")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (apt-get install postfix)");
        wait_for_greeting(addr, &mut child, "smtp-sink");
        SmtpSink { addr, dir, child }
    }

    /// The complete transactions received so far.
    pub fn messages(&self) -> Vec<Received> {
        let mut messages: Vec<Received> = list_dir(self.dir.path())
            .iter()
            .filter_map(|name| parse_sink_dump(&fs::read(self.dir.path().join(name)).ok()?))
            .collect();
        messages.sort_by(|a, b| a.text.cmp(&b.text));
        messages
    }

    pub fn wait_for(&self, count: usize) -> Vec<Received> {
        wait_for_count(|| self.messages(), count, "smtp-sink")
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sink_binary() -> &'static str {
    if Path::new("/usr/sbin/smtp-sink").exists() {
        "/usr/sbin/smtp-sink"
    } else {
        "smtp-sink"
    }
}

/// smtp-sink's dump: `X-Mail-Args:`, `X-Rcpt-Args:` and other `X-` lines,
/// its own `Received:` header (three lines), then the message with LF line
/// ends. A transaction that did not end with a message has no text after
/// the `Received:` header and is not counted.
fn parse_sink_dump(dump: &[u8]) -> Option<Received> {
    let text = String::from_utf8_lossy(dump);
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            mail_from = v.trim_end().to_string();
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpt_to.push(v.trim_end().to_string());
        } else if !line.starts_with("X-") {
            break;
        }
        offset += line.len();
    }
    let rest = &dump[offset..];
    // Skip the sink's Received: header and its two continuation lines.
    let mut lines = rest.split_inclusive(|&b| b == b'\n');
    let mut skipped = 0;
    if rest.starts_with(b"Received: ") {
        for _ in 0..3 {
            skipped += lines.next().map_or(0, |l| l.len());
        }
    }
    let mut message = &rest[skipped..];
    if message.is_empty() {
        return None;
    }
    // smtp-sink ends each dump with one newline of its own.
    if message.ends_with(b"\n\n") {
        message = &message[..message.len() - 1];
    }
    Some(Received {
        mail_from,
        rcpt_to,
        tls: "none".to_string(),
        auth: "none".to_string(),
        text: message.to_vec(),
    })
}

/// aiosmtpd, with STARTTLS, implicit TLS, AUTH or refusals as asked.
pub struct Upstream {
    pub addr: SocketAddr,
    peer: PythonPeer,
}

impl Upstream {
    /// `options` are upstream.py's, e.g. `["--auth", "box:secret"]`.
    pub fn start(addr: SocketAddr, options: &[String]) -> Upstream {
        let peer = PythonPeer::start("upstream.py", addr, options, "aiosmtpd");
        Upstream { addr, peer }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.peer
            .files(".msg")
            .iter()
            .filter_map(|file| parse_upstream_file(file))
            .collect()
    }

    pub fn wait_for(&self, count: usize) -> Vec<Received> {
        wait_for_count(|| self.messages(), count, "upstream")
    }
}

/// A Python peer (tests/peers/SCRIPT) and the directory it writes into;
/// stopped when dropped.
struct PythonPeer {
    out: tempfile::TempDir,
    child: Child,
}

impl PythonPeer {
    /// Starts the script on `addr` and waits for its READY line; `needs`
    /// names what it needs beyond python3.
    fn start(script: &str, addr: SocketAddr, options: &[String], needs: &str) -> PythonPeer {
        let out = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/peers")
            .join(script);
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                "--host",
                &addr.ip().to_string(),
                "--port",
                &addr.port().to_string(),
            ])
            .arg("--out")
            .arg(out.path())
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 with {needs}: {e}"));
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "READY", "{} did not start", script.display());
        PythonPeer { out, child }
    }

    /// The files it has written whose names end with `suffix`, by name.
    fn files(&self, suffix: &str) -> Vec<Vec<u8>> {
        list_dir(self.out.path())
            .iter()
            .filter(|name| name.ends_with(suffix))
            .filter_map(|name| fs::read(self.out.path().join(name)).ok())
            .collect()
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python's http.server over TLS (or clear text) on loopback
/// (tests/peers/http_server.py): it keeps each request and answers as its
/// script says.
pub struct HttpServer {
    pub addr: SocketAddr,
    peer: PythonPeer,
}

impl HttpServer {
    /// HTTPS with `ca`'s server certificate, or HTTP without; `answers` is
    /// http_server.py's JSON list, one answer per request in turn.
    pub fn start(addr: SocketAddr, ca: Option<&TestCa>, answers: &str) -> HttpServer {
        HttpServer::start_with(addr, ca, answers, &[])
    }

    /// The push service `service` over HTTPS, as push_contracts.py has it:
    /// an answer `{"as_service": true}` checks the request against the
    /// service's documented contract (with `secrets`, JSON: token, user,
    /// chat_id) and answers as the service does.
    pub fn start_service(
        addr: SocketAddr,
        ca: &TestCa,
        service: &str,
        secrets: &str,
        answers: &str,
    ) -> HttpServer {
        HttpServer::start_with(
            addr,
            Some(ca),
            answers,
            &["--service", service, "--secrets", secrets],
        )
    }

    fn start_with(
        addr: SocketAddr,
        ca: Option<&TestCa>,
        answers: &str,
        more: &[&str],
    ) -> HttpServer {
        let mut options = ca.map(TestCa::server_options).unwrap_or_default();
        options.extend(["--answers".to_string(), answers.to_string()]);
        options.extend(more.iter().map(|option| option.to_string()));
        let peer = PythonPeer::start("http_server.py", addr, &options, "http.server");
        HttpServer { addr, peer }
    }

    /// The requests received so far, in order, each as http_server.py
    /// wrote it: request line, header fields, empty line, body.
    pub fn requests(&self) -> Vec<String> {
        self.peer
            .files(".req")
            .iter()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .collect()
    }

    /// Waits for exactly `count` requests.
    pub fn wait_for(&self, count: usize) -> Vec<String> {
        wait_for_count(|| self.requests(), count, "http_server.py")
    }
}

fn parse_upstream_file(file: &[u8]) -> Option<Received> {
    let split = file.windows(2).position(|w| w == b"\n\n")?;
    let head = String::from_utf8_lossy(&file[..split]);
    let mut received = Received {
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        tls: String::new(),
        auth: String::new(),
        text: file[split + 2..].to_vec(),
    };
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("X-Mail-From: ") {
            received.mail_from = v.to_string();
        } else if let Some(v) = line.strip_prefix("X-Rcpt-To: ") {
            received.rcpt_to.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("X-TLS: ") {
            received.tls = v.to_string();
        } else if let Some(v) = line.strip_prefix("X-Auth: ") {
            received.auth = v.to_string();
        }
    }
    Some(received)
}

fn wait_for_count<T: std::fmt::Debug>(
    read: impl Fn() -> Vec<T>,
    count: usize,
    what: &str,
) -> Vec<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        let messages = read();
        if messages.len() >= count {
            assert_eq!(
                messages.len(),
                count,
                "{what} got more than {count}: {messages:?}"
            );
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{what} got {} of {count}",
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the openssl command in `dir`, failing the test if it fails; its output.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// openssl's options for a new P-256 key, unencrypted.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// The subjectAltName value for `names` (DNS names or IP addresses).
fn subject_alt_name(names: &[&str]) -> String {
    let san: Vec<String> = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(_) => format!("IP:{n}"),
            Err(_) => format!("DNS:{n}"),
        })
        .collect();
    format!("subjectAltName={}", san.join(","))
}

/// A certificate's SHA-256 fingerprint as openssl computes it, in the form
/// tinymta writes it: `sha256:AB:CD:...`.
pub fn openssl_fingerprint(cert: &Path) -> String {
    let out = openssl(
        Path::new("/"),
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            cert.to_str().unwrap(),
        ],
    );
    let hex = out
        .trim()
        .strip_prefix("sha256 Fingerprint=")
        .unwrap_or_else(|| panic!("openssl fingerprint: {out:?}"));
    format!("sha256:{hex}")
}

/// A self-signed server certificate made as guides make them, with
/// `openssl req -x509`: openssl marks it CA:TRUE.
pub struct SelfSigned {
    pub dir: tempfile::TempDir,
}

impl SelfSigned {
    pub fn new(names: &[&str]) -> SelfSigned {
        let dir = tempfile::tempdir().unwrap();
        let subject = format!("/CN={}", names[0]);
        let san = subject_alt_name(names);
        let mut req = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        req.extend(EC_KEY);
        req.extend(["-keyout", "key.pem", "-out", "cert.pem", "-addext", &san]);
        openssl(dir.path(), &req);
        let text = openssl(dir.path(), &["x509", "-noout", "-text", "-in", "cert.pem"]);
        assert!(text.contains("CA:TRUE"), "{text}");
        SelfSigned { dir }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn fingerprint(&self) -> String {
        openssl_fingerprint(&self.cert())
    }

    /// upstream.py options for this certificate.
    pub fn server_options(&self) -> Vec<String> {
        server_options(self.dir.path())
    }
}

/// upstream.py's options for the `cert.pem` and `key.pem` in `dir`.
fn server_options(dir: &Path) -> Vec<String> {
    vec![
        "--cert".to_string(),
        dir.join("cert.pem").display().to_string(),
        "--key".to_string(),
        dir.join("key.pem").display().to_string(),
    ]
}

/// A private CA and a server certificate signed by it, made with openssl.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    /// A CA and a certificate for `names` (DNS names, or IP addresses, in
    /// the subjectAltName).
    pub fn new(names: &[&str]) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            openssl(d, args);
        };
        let ec = EC_KEY;
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=tinymta test CA"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let subject = format!("/CN={}", names[0]);
        let mut req = vec!["req", "-subj", subject.as_str()];
        req.extend(ec);
        req.extend(["-keyout", "key.pem", "-out", "req.csr"]);
        run(&req);
        fs::write(
            d.join("ext.cnf"),
            format!(
                "{}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                subject_alt_name(names)
            ),
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "ext.cnf",
        ]);
        TestCa { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// tinymta's config lines serving this certificate.
    pub fn tinymta_config(&self) -> String {
        format!(
            "tls_cert = {}\ntls_key = {}\n",
            self.dir.path().join("cert.pem").display(),
            self.dir.path().join("key.pem").display()
        )
    }

    /// upstream.py options for this certificate.
    pub fn server_options(&self) -> Vec<String> {
        server_options(self.dir.path())
    }

    pub fn fingerprint(&self) -> String {
        openssl_fingerprint(&self.dir.path().join("cert.pem"))
    }

    /// Another certificate for `name` from this CA, valid only from `start`
    /// to `end` (`YYYYMMDDHHMMSSZ`), signed with `openssl ca`, which takes
    /// dates in the past; upstream.py options for it, and its fingerprint.
    pub fn dated_certificate(&self, name: &str, start: &str, end: &str) -> (Vec<String>, String) {
        let dir = self.dir.path().join(start);
        fs::create_dir(&dir).unwrap();
        let ca = self.dir.path();
        fs::write(dir.join("index.txt"), "").unwrap();
        fs::write(dir.join("serial"), "01\n").unwrap();
        fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = dated\n[dated]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n",
        )
        .unwrap();
        fs::write(dir.join("ext.cnf"), subject_alt_name(&[name]) + "\n").unwrap();
        let subject = format!("/CN={name}");
        let mut req = vec!["req", "-subj", &subject];
        req.extend(EC_KEY);
        req.extend(["-keyout", "key.pem", "-out", "req.csr"]);
        openssl(&dir, &req);
        let (ca_cert, ca_key) = (ca.join("ca.pem"), ca.join("ca.key"));
        openssl(
            &dir,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                ca_cert.to_str().unwrap(),
                "-keyfile",
                ca_key.to_str().unwrap(),
                "-in",
                "req.csr",
                "-startdate",
                start,
                "-enddate",
                end,
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ],
        );
        (
            server_options(&dir),
            openssl_fingerprint(&dir.join("cert.pem")),
        )
    }
}

/// A smarthost speaking implicit TLS on `ip:port` (aiosmtpd with a test
/// CA's certificate for `smarthost.test`), and a tinymta told of it with
/// `config` besides `smarthost`, `hosts_file` and `tls_ca_file`: a message
/// is relayed over TLSv1.3 and leaves the queue.
pub fn implicit_tls_smarthost_takes_a_message(ip: &str, port: u16, config: &str) {
    let ca = TestCa::new(&["smarthost.test"]);
    let mut options = ca.server_options();
    options.push("--implicit-tls".to_string());
    let upstream = Upstream::start(format!("{ip}:{port}").parse().unwrap(), &options);
    let dir = super::test_dir();
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, format!("{ip} smarthost.test\n")).unwrap();
    let server = super::Server::start(&format!(
        "smarthost = smarthost.test:{port}\nhosts_file = {}\ntls_ca_file = {}\n{config}",
        hosts.display(),
        ca.ca().display()
    ));
    server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        b"Subject: 465\r\n\r\nx\r\n.\r\n",
    );
    assert_eq!(upstream.wait_for(1)[0].tls, "TLSv1.3");
    server.wait_for_empty_queue();
}
