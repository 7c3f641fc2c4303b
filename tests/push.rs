//! Push routes against the services as their documentation has them:
//! http_server.py over HTTPS on loopback (push.test, the test CA), with
//! push_contracts.py checking each request as the service does and
//! answering as it does. Mail comes in as it does on a box: a LAN client
//! speaking SMTP (Python's smtplib), or sendmail.

mod support;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::peers::{free_port_on, HttpServer, SilentServers, TestCa};
use support::{python, run_tinymta, run_with_input, running_as_root, tinymta_command, Server};
use tinymta::sys::Signal;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A push service on loopback and the files tinymta needs to reach it.
struct Service {
    name: String,
    ca: TestCa,
    http: HttpServer,
    files: tempfile::TempDir,
}

impl Service {
    /// `service` as push_contracts.py has it, with `secrets` (JSON);
    /// `answers` as http_server.py takes them.
    fn start(service: &str, secrets: &str, answers: &str) -> Service {
        let ca = TestCa::new(&["push.test"]);
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), free_port_on("127.0.0.1"));
        let http = HttpServer::start_service(addr, &ca, service, secrets, answers);
        let files = support::test_dir();
        fs::write(
            files.path().join("hosts"),
            "127.0.0.1 localhost\n127.0.0.1 push.test\n",
        )
        .unwrap();
        Service {
            name: service.to_string(),
            ca,
            http,
            files,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://push.test:{}{path}", self.http.addr.port())
    }

    /// tinymta's config to reach it: push.test from the hosts file, the
    /// test CA, and retries a test can wait for.
    fn config(&self, routes: &str) -> String {
        format!(
            "hosts_file = {}\ntls_ca_file = {}\nhttp_timeout = 3s\nretry_min = 1s\n\
             retry_max = 4s\nrelay_networks = 127.0.0.1/32\n{routes}\n",
            self.files.path().join("hosts").display(),
            self.ca.ca().display()
        )
    }

    /// A file holding `secret`, mode 0600, as a token file should be.
    fn secret(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.files.path().join(name);
        fs::write(&path, format!("{secret}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// ntfy answering as the service does to the Bearer `token`, and the
    /// token file (mode 0600) that gives it.
    fn ntfy(token: &str) -> (Service, PathBuf) {
        let service = Service::start(
            "ntfy",
            &format!(r#"{{"token": "{token}"}}"#),
            r#"[{"as_service": true}]"#,
        );
        let file = service.secret("ntfy-token", token);
        (service, file)
    }

    /// The requests received, each as `(head, body)`.
    fn wait_for(&self, count: usize) -> Vec<(String, String)> {
        self.http
            .wait_for(count)
            .into_iter()
            .map(|request| {
                let (head, body) = request.split_once("\r\n\r\n").unwrap();
                (head.to_string(), body.to_string())
            })
            .collect()
    }
}

/// With `PUSH_REQUESTS_DIR` set, each service's requests are kept there
/// as `SERVICE-N.req`, as the server received them (for the issue's
/// closing note).
impl Drop for Service {
    fn drop(&mut self) {
        let Some(dir) = std::env::var_os("PUSH_REQUESTS_DIR") else {
            return;
        };
        let name = self.name.clone();
        for (n, request) in self.http.requests().iter().enumerate() {
            let _ = fs::write(PathBuf::from(&dir).join(format!("{name}-{n}.req")), request);
        }
    }
}

/// A LAN device (127.0.0.2, outside relay_networks) sends `message` to
/// `to` by SMTP with Python's smtplib; the queue id.
fn send_from_lan(server: &Server, to: &str, message: &str) -> String {
    let out = python(&format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {}, source_address=('127.0.0.2', 0))\n\
         s.ehlo('nas.lan')\n\
         s.mail('nas@lan.example')\n\
         s.rcpt('{to}')\n\
         code, reply = s.data({message:?}.encode())\n\
         s.quit()\n\
         print(code, reply.decode())\n",
        server.port
    ));
    out.trim().to_string()
}

/// Queues `message` with sendmail, as the box's own tools do; the queue id.
fn sendmail(server: &Server, args: &[&str], message: &str) -> String {
    let mut command = tinymta_command();
    command
        .arg("sendmail")
        .arg("-C")
        .arg(server.config_path())
        .args(args);
    let (code, _, err) = run_with_input(command, message.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    let before = Instant::now();
    loop {
        if let Some(id) = server.queue_files().first() {
            return id.trim_end_matches(".msg").to_string();
        }
        assert!(before.elapsed() < support::WAIT, "nothing queued");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the delivery log line of `id` to `rcpt` that ends with
/// `outcome` (`relay=ntfy delay=...s status=sent (HTTP 200)`); the delay
/// is left out, as the queue is watched each second.
fn wait_for_outcome(server: &Server, id: &str, rcpt: &str, relay: &str, outcome: &str) {
    let deadline = Instant::now() + support::WAIT;
    let start = format!("{id}: to=<{rcpt}> relay={relay} delay=");
    loop {
        let log = server.log();
        let found = log.lines().any(|line| {
            line.split_once(&start)
                .is_some_and(|(_, rest)| rest.split_once("s ").is_some_and(|(_, r)| r == outcome))
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "log never had {start}...s {outcome}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The head tinymta sends for a POST of `length` octets to `path` with
/// these header fields.
fn head(service: &Service, path: &str, fields: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: push.test:{}\r\nUser-Agent: tinymta/{VERSION}\r\n\
         {fields}Content-Length: {length}\r\nConnection: close",
        service.http.addr.port()
    )
}

const ALERT: &str = "From: NAS <nas@lan.example>\r\nTo: nas@push\r\n\
    Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <a1@lan.example>\r\n\
    Subject: =?UTF-8?Q?RAID_md0_d=C3=A9grad=C3=A9?=\r\nX-Priority: 1 (Highest)\r\n\r\n\
    md0 lost sdb1.\r\nRebuild needed.\r\n";

#[test]
fn ntfy_from_a_lan_device_by_smtp() {
    let (service, token) = Service::ntfy("tk_3cr3t");
    let server = Server::start(&service.config(&format!(
        "route = nas@push ntfy url={} token_file={}",
        service.url("/box-alerts"),
        token.display()
    )));
    let reply = send_from_lan(&server, "nas@push", ALERT);
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();
    let requests = service.wait_for(1);
    let body = "md0 lost sdb1.\nRebuild needed.";
    assert_eq!(
        requests[0].0,
        head(
            &service,
            "/box-alerts",
            "Title: =?UTF-8?B?UkFJRCBtZDAgZMOpZ3JhZMOp?=\r\nPriority: 5\r\nTags: email\r\n\
             Authorization: Bearer tk_3cr3t\r\nContent-Type: text/plain; charset=utf-8\r\n",
            body.len()
        )
    );
    assert_eq!(requests[0].1, body);
    wait_for_outcome(&server, &id, "nas@push", "ntfy", "status=sent (HTTP 200)");
    server.wait_for_empty_queue();
    // The token is never logged.
    assert!(!server.log().contains("tk_3cr3t"), "{}", server.log());
}

#[test]
fn gotify_429_with_retry_after_is_honoured() {
    let service = Service::start(
        "gotify",
        r#"{"token": "AppTok.1"}"#,
        r#"[{"status": 429, "headers": [["Retry-After", "3"], ["Content-Type", "application/json"]],
             "body": "{\"error\":\"Too Many Requests\",\"errorCode\":429}"},
            {"as_service": true}]"#,
    );
    let token = service.secret("gotify-token", "AppTok.1");
    let server = Server::start(&service.config(&format!(
        "route = *@push gotify url={} token_file={} priority=high",
        service.url("/"),
        token.display()
    )));
    let id = sendmail(
        &server,
        &["-i", "ops@push"],
        "Subject: backup done\n\nnightly backup: 12 GB\n",
    );
    wait_for_outcome(
        &server,
        &id,
        "ops@push",
        "gotify",
        "status=deferred (4.4.0 HTTP 429: {\"error\":\"Too Many Requests\",\"errorCode\":429})",
    );
    let first = Instant::now();
    let requests = service.wait_for(2);
    // retry_min is 1s: the server's 3s were waited for.
    assert!(
        first.elapsed() >= Duration::from_secs(2),
        "{:?}",
        first.elapsed()
    );
    let body = r#"{"title":"backup done","message":"nightly backup: 12 GB","priority":7}"#;
    for (head_text, sent) in &requests {
        assert_eq!(
            *head_text,
            head(
                &service,
                "/message",
                "X-Gotify-Key: AppTok.1\r\nContent-Type: application/json\r\n",
                body.len()
            )
        );
        assert_eq!(sent, body);
    }
    wait_for_outcome(&server, &id, "ops@push", "gotify", "status=sent (HTTP 200)");
    server.wait_for_empty_queue();
}

#[test]
fn telegram_500_then_200_chunked_and_an_html_only_message_as_text() {
    let service = Service::start(
        "telegram",
        r#"{"token": "123456:ABC-def", "chat_id": "-1001234"}"#,
        r#"[{"status": 500, "headers": [["Content-Type", "application/json"]],
             "body": "{\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"}"},
            {"as_service": true, "framing": "chunked"}]"#,
    );
    let token = service.secret("bot", "123456:ABC-def");
    let server = Server::start(&service.config(&format!(
        "route = phone@push telegram url={} token_file={} chat_id=-1001234",
        service.url(""),
        token.display()
    )));
    // A NAS's alert: HTML only, quoted-printable in Latin-1, and a log.
    let message = "From: root@nas.lan\nTo: phone@push\nSubject: SMART: sda\n\
        MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\n\
        --XX\nContent-Type: text/html; charset=iso-8859-1\n\
        Content-Transfer-Encoding: quoted-printable\n\n\
        <html><body><p>Disk <b>sda</b>: 5 reallocated sectors</p>\
        <p>Temp&eacute;rature 41&deg;C<br>Action: remplacer le disque</p></body></html>\n\
        --XX\nContent-Type: text/plain; name=smart.log\n\
        Content-Disposition: attachment; filename=smart.log\n\n\
        ID# ATTRIBUTE_NAME\n--XX--\n";
    let id = sendmail(&server, &["-i", "phone@push"], message);
    wait_for_outcome(
        &server,
        &id,
        "phone@push",
        "telegram",
        "status=deferred (4.4.0 HTTP 500: \
         {\"ok\":false,\"error_code\":500,\"description\":\"Internal Server Error\"})",
    );
    let requests = service.wait_for(2);
    let body = "{\"chat_id\":\"-1001234\",\"text\":\"SMART: sda\\n\\n\
        Disk sda: 5 reallocated sectors\\nTempérature 41°C\\nAction: remplacer le disque\
        \\n\\n[1 attachment not sent]\"}";
    assert_eq!(requests[1].1, body);
    assert_eq!(
        requests[1].0,
        head(
            &service,
            "/bot123456:ABC-def/sendMessage",
            "Content-Type: application/json\r\n",
            body.len()
        )
    );
    assert_eq!(requests[0], requests[1]);
    wait_for_outcome(
        &server,
        &id,
        "phone@push",
        "telegram",
        "status=sent (HTTP 200)",
    );
    server.wait_for_empty_queue();
}

#[test]
fn discord_refusing_for_good_sends_the_message_as_mail_to_the_fallback() {
    let service = Service::start(
        "discord",
        r#"{"token": "1234/hook-tok"}"#,
        r#"[{"as_service": true}]"#,
    );
    // The webhook URL is itself the secret.
    let url = service.secret("discord-url", &service.url("/api/webhooks/1234/hook-tok"));
    let server = Server::start(&service.config(&format!(
        "route = nas@push discord url_file={} fallback=owner@mx.test",
        url.display()
    )));
    // No subject and no text: Discord will not take an empty message.
    let message = "From: nas@lan.example\r\nTo: nas@push\r\n\r\n";
    let id = sendmail(
        &server,
        &["-i", "-f", "nas@lan.example", "nas@push"],
        message,
    );
    let requests = service.wait_for(1);
    let body = r#"{"content":"","allowed_mentions":{"parse":[]}}"#;
    assert_eq!(
        requests[0],
        (
            head(
                &service,
                "/api/webhooks/1234/hook-tok",
                "Content-Type: application/json\r\n",
                body.len()
            ),
            body.to_string()
        )
    );
    let mail = server.wait_for_mail("owner", 1);
    let text = String::from_utf8(mail[0].clone()).unwrap();
    assert!(
        text.starts_with("Return-Path: <nas@lan.example>\nDelivered-To: owner@mx.test\n"),
        "{text}"
    );
    // The original message, as sendmail queued it (its id in it).
    let (_, original) = text.split_once("Delivered-To: owner@mx.test\n").unwrap();
    assert!(
        original.starts_with(&format!(
            "Received: by mx.test (tinymta, from userid {})\n\tid {id}; ",
            tinymta::sys::real_uid()
        )),
        "{text}"
    );
    assert!(
        original.ends_with(&format!(
            "\nFrom: nas@lan.example\nTo: nas@push\nDate: {}\nMessage-ID: <{id}@mx.test>\n\n",
            original
                .split("Date: ")
                .nth(1)
                .unwrap()
                .split('\n')
                .next()
                .unwrap()
        )),
        "{text}"
    );
    let log = server.log();
    let forwarded = log
        .lines()
        .find(|line| line.contains(&format!("{id}: to=<nas@push> relay=discord")))
        .unwrap();
    assert!(
        forwarded.contains(
            "status=forwarded (5.6.0 HTTP 400: {\"message\": \"Cannot send an empty message\", \
             \"code\": 50006}; sent as mail to owner@mx.test ("
        ),
        "{forwarded}"
    );
    server.wait_for_empty_queue();
    // No bounce: the message reached someone.
    assert!(!server.log().contains("non-delivery"), "{}", server.log());
    // A message with text: Discord's 204 No Content is delivered.
    let id = sendmail(
        &server,
        &["-i", "nas@push"],
        "Subject: @everyone disk sda\n\n5 reallocated sectors\n",
    );
    let requests = service.wait_for(2);
    assert_eq!(
        requests[1].1,
        "{\"content\":\"@everyone disk sda\\n\\n5 reallocated sectors\",\
         \"allowed_mentions\":{\"parse\":[]}}"
    );
    wait_for_outcome(
        &server,
        &id,
        "nas@push",
        "discord",
        "status=sent (HTTP 204)",
    );
    server.wait_for_empty_queue();
    // The URL's secret part is never logged.
    assert!(!server.log().contains("hook-tok"), "{}", server.log());
}

#[test]
fn slack_400_without_a_fallback_bounces_and_never_for_a_null_sender() {
    let service = Service::start(
        "slack",
        r#"{"token": "T0/B0/XyZ"}"#,
        r#"[{"as_service": true},
            {"status": 400, "headers": [["Content-Type", "text/plain"]], "body": "invalid_payload"}]"#,
    );
    let url = service.secret("slack-url", &service.url("/services/T0/B0/XyZ"));
    let server = Server::start(&service.config(&format!(
        "route = team@push slack url_file={}",
        url.display()
    )));
    // Slack takes the first, with its markup characters escaped.
    let id = sendmail(
        &server,
        &["-i", "-f", "alice@mx.test", "team@push"],
        "Subject: <disk> & more\n\nsda full\n",
    );
    let requests = service.wait_for(1);
    let body = r#"{"text":"&lt;disk&gt; &amp; more\n\nsda full"}"#;
    assert_eq!(
        requests[0],
        (
            head(
                &service,
                "/services/T0/B0/XyZ",
                "Content-Type: application/json\r\n",
                body.len()
            ),
            body.to_string()
        )
    );
    wait_for_outcome(&server, &id, "team@push", "slack", "status=sent (HTTP 200)");
    server.wait_for_empty_queue();
    // Then refuses: a bounce to the sender.
    let id = sendmail(
        &server,
        &["-i", "-f", "alice@mx.test", "team@push"],
        "Subject: again\n\nsda full\n",
    );
    let refused = |id: &str| {
        let outcome = "status=bounced (5.6.0 HTTP 400: invalid_payload)";
        wait_for_outcome(&server, id, "team@push", "slack", outcome)
    };
    refused(&id);
    let bounce = String::from_utf8(server.wait_for_mail("alice", 1).remove(0)).unwrap();
    assert!(bounce.contains("team@push"), "{bounce}");
    assert!(
        bounce.contains("5.6.0 HTTP 400: invalid_payload"),
        "{bounce}"
    );
    server.wait_for_empty_queue();
    // A null sender gets no bounce.
    let id = sendmail(
        &server,
        &["-i", "-f", "<>", "team@push"],
        "Subject: x\n\ny\n",
    );
    refused(&id);
    server.wait_for_log(&format!(
        "{id}: undeliverable bounce (null sender), dropped"
    ));
    server.wait_for_empty_queue();
    assert_eq!(server.mail_count("alice"), 1);
}

#[test]
fn pushover_that_never_answers_is_deferred_shown_by_mailq_and_test_send() {
    let service = Service::start(
        "pushover",
        r#"{"token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "user": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"}"#,
        r#"[{"silent": true}, {"as_service": true}]"#,
    );
    let token = service.secret("pushover-token", "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
    let user = service.secret("pushover-user", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    let config = service.config(&format!(
        "route = alerts@push pushover url={} token_file={} user_key_file={}",
        service.url(""),
        token.display(),
        user.display()
    ));
    // Long enough to see the deferral in mailq before the retry.
    let server = Server::start(&config.replace("retry_min = 1s", "retry_min = 3s"));
    let id = sendmail(
        &server,
        &["-i", "alerts@push"],
        "Subject: UPS on battery\nImportance: high\n\nmains lost at 12:00\n",
    );
    wait_for_outcome(
        &server,
        &id,
        "alerts@push",
        "pushover",
        "status=deferred (4.4.2 pushover: timeout after 3s waiting for the response)",
    );
    // The log line comes as the attempt ends, the envelope a moment later,
    // when the worker reports the job: mailq reads the envelope.
    server.wait_for_envelope_containing(
        &id,
        "error: 4.4.2 pushover: timeout after 3s waiting for the response",
    );
    let (code, out, _) = run_tinymta(&["mailq", "-C", &server.config_path().display().to_string()]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(
            "<alerts@push> via pushover queued, 1 attempt: 4.4.2 pushover: timeout after 3s \
             waiting for the response (next attempt in "
        ),
        "{out}"
    );
    let requests = service.wait_for(2);
    let body = "token=azGDORePK8gMaC0QOYAMyEEuzJnyUi&user=uQiRzpo4DXghDmr9QzzfQu27cmVRsG\
                &title=UPS+on+battery&message=mains+lost+at+12%3A00&priority=1";
    for request in &requests {
        assert_eq!(request.1, body);
        assert_eq!(
            request.0,
            head(
                &service,
                "/1/messages.json",
                "Content-Type: application/x-www-form-urlencoded\r\n",
                body.len()
            )
        );
    }
    wait_for_outcome(
        &server,
        &id,
        "alerts@push",
        "pushover",
        "status=sent (HTTP 200)",
    );
    server.wait_for_empty_queue();
    // test-send shows the request with its secrets masked, the status and
    // the response's start.
    let (code, out, err) = run_tinymta(&[
        "test-send",
        "-C",
        &server.config_path().display().to_string(),
        "alerts@push",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("azGDORePK8gMaC0QOYAMyEEuzJnyUi"), "{out}");
    assert!(!out.contains("uQiRzpo4DXghDmr9QzzfQu27cmVRsG"), "{out}");
    support::assert_in_order(
        &out,
        &[
            "alerts@push: route: push route alerts@push (pushover)".to_string(),
            format!("> POST {}/1/messages.json", service.url("")),
            "> Content-Type: application/x-www-form-urlencoded".to_string(),
            "> token=***&user=***&title=tinymta+test+message+from+mx.test".to_string(),
            "< HTTP 200 {\"status\": 1, \"request\": \"5f2c9d3e-1b7a-4c41-9a55-2b8d4f0e6a17\"}"
                .to_string(),
            "relay=pushover".to_string(),
            "status=sent (HTTP 200)".to_string(),
            "alerts@push: result: delivered (HTTP 200)".to_string(),
        ],
    );
}

#[test]
fn a_push_queued_before_a_kill_9_is_made_after_the_restart() {
    let service = Service::start(
        "webhook",
        r#"{"token": "hook-bearer"}"#,
        r#"[{"silent": true}, {"as_service": true}]"#,
    );
    let token = service.secret("hook-token", "hook-bearer");
    // The service holds the request longer than this test takes.
    let config = service.config(&format!(
        "route = *@hooks.lan webhook url={} token_file={} priority=low",
        service.url("/in?source=box"),
        token.display()
    ));
    let mut server = Server::start(&config.replace("http_timeout = 3s", "http_timeout = 60s"));
    let id = sendmail(
        &server,
        &["-i", "-f", "cron@mx.test", "ops@hooks.lan"],
        "From: Cron Daemon <cron@mx.test>\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n\
         Message-ID: <c1@mx.test>\nSubject: \"job\" failed\nPriority: non-urgent\n\n\
         exit 1\n",
    );
    // The service has the request and has not answered: no 2xx yet.
    let first = service.wait_for(1);
    server.kill();
    assert!(server
        .envelope(&id)
        .contains("recipient: queued attempts=0"));
    server.restart();
    let requests = service.wait_for(2);
    assert_eq!(requests[0], first[0]);
    assert_eq!(requests[0], requests[1]);
    let body =
        "{\"from\":\"cron@mx.test\",\"to\":\"ops@hooks.lan\",\"subject\":\"\\\"job\\\" failed\",\
                \"date\":\"Thu, 03 Dec 2026 12:00:00 +0000\",\"message_id\":\"c1@mx.test\",\
                \"priority\":2,\"text\":\"exit 1\"}";
    assert_eq!(
        requests[1],
        (
            head(
                &service,
                "/in?source=box",
                "Content-Type: application/json\r\nAuthorization: Bearer hook-bearer\r\n",
                body.len()
            ),
            body.to_string()
        )
    );
    wait_for_outcome(
        &server,
        &id,
        "ops@hooks.lan",
        "webhook",
        "status=sent (HTTP 200)",
    );
    server.wait_for_empty_queue();
}

#[test]
fn route_lines_and_secret_files_are_checked_at_start_up() {
    let dir = support::test_dir();
    let conf = dir.path().join("tinymta.conf");
    // Each config is refused (exit 1) with an error that names the line.
    let refused = |text: &str, error: &str| {
        fs::write(&conf, text).unwrap();
        let (code, out, err) = run_tinymta(&["-t", "-c", &conf.display().to_string()]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains(error), "{err}");
    };
    refused(
        "user = nobody\n\nroute = phone@push telegram token_file=/x\n",
        &format!("{}:3: route: telegram needs chat_id=", conf.display()),
    );
    refused(
        "route = nas@push sms url=https://x.example/\n",
        &format!(
            "{}:1: route: unknown transport \"sms\" (ntfy, gotify, telegram, discord, slack, \
             pushover, webhook)",
            conf.display()
        ),
    );
    // A secret file that cannot be read; the words are libc's, the errno ours.
    let missing = dir.path().join("missing-token");
    refused(
        &format!(
            "route = nas@push ntfy url=https://ntfy.example/t token_file={}\n",
            missing.display()
        ),
        &format!("route: {}: ", missing.display()),
    );
    refused(
        &format!(
            "route = nas@push ntfy url=https://ntfy.example/t token_file={}\n",
            missing.display()
        ),
        "(os error 2)",
    );
}

#[test]
fn a_token_file_others_can_read_is_warned_about() {
    let service = Service::start("ntfy", "{}", r#"[{"as_service": true}]"#);
    let token = service.secret("token", "tk_open");
    fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&service.config(&format!(
        "route = nas@push ntfy url={} token_file={}",
        service.url("/t"),
        token.display()
    )));
    server.wait_for_log(&format!(
        "[WARN] route {} is readable by every user",
        token.display()
    ));
    assert!(!server.log().contains("tk_open"));
}

/// A LAN device's alert to nas@push by SMTP: the ntfy route posts it to
/// `topic` with `Authorization: Bearer {token}`, and it is sent.
fn ups_alert_reaches_ntfy(server: &Server, service: &Service, topic: &str, token: &str) {
    let reply = send_from_lan(
        server,
        "nas@push",
        "From: nas@lan.example\r\nTo: nas@push\r\nSubject: UPS on battery\r\n\r\nmains lost\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let id = reply.rsplit(' ').next().unwrap().to_string();
    let requests = service.wait_for(1);
    let body = "mains lost";
    let fields = format!(
        "Title: UPS on battery\r\nPriority: 3\r\nTags: email\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n"
    );
    assert_eq!(
        requests[0],
        (head(service, topic, &fields, body.len()), body.to_string())
    );
    wait_for_outcome(server, &id, "nas@push", "ntfy", "status=sent (HTTP 200)");
}

#[test]
fn a_reload_keeps_the_push_secrets_read_before_the_privilege_drop() {
    if !running_as_root() {
        support::skip("not running as root: no privilege drop, every file stays readable");
        return;
    }
    let (service, token) = Service::ntfy("tk_kept");
    // Root's alone: once the daemon is nobody, it cannot read it again.
    std::os::unix::fs::chown(&token, Some(0), Some(0)).unwrap();
    let route = |topic: &str| {
        format!(
            "route = nas@push ntfy url={} token_file={}",
            service.url(topic),
            token.display()
        )
    };
    let server = Server::start(&service.config(&route("/before")));
    // The reloaded config moves the route to another topic (so the request
    // shows that the new config is the one in use) with the same token file.
    let config = fs::read_to_string(server.config_path()).unwrap();
    fs::write(
        server.config_path(),
        config.replace(&route("/before"), &route("/after")),
    )
    .unwrap();
    server.signal(Signal::Reload);
    server.wait_for_log("reloaded ");
    let log = server.log();
    assert!(
        log.contains(&format!(
            "[INFO] reload: {} may be read only before the privilege drop: the push route \
             secrets read at start-up is kept (said once)\n",
            token.display()
        )),
        "{log}"
    );
    assert!(!log.contains("[WARN] reload"), "{log}");
    assert!(!log.contains("[ERROR]"), "{log}");
    ups_alert_reaches_ntfy(&server, &service, "/after", "tk_kept");
    server.wait_for_empty_queue();
    assert!(!server.log().contains("tk_kept"), "{}", server.log());
}

#[test]
fn a_hanging_smarthost_leaves_a_worker_for_the_phone() {
    let (service, token) = Service::ntfy("tk_phone");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let smarthost_addr = listener.local_addr().unwrap();
    let smarthost = SilentServers::start(vec![listener]);
    // A worker on the smarthost waits a minute for its greeting: far
    // longer than this test, so none of its jobs ends while it runs.
    let server = Server::start(&service.config(&format!(
        "route = nas@push ntfy url={} token_file={}\nsmarthost = {}\ndelivery_workers = 2\n\
         connect_timeout = 60s\nsmtp_helo_timeout = 60s",
        service.url("/phone"),
        token.display(),
        smarthost_addr
    )));
    let mut client = server.greeted();
    let mut relay = |n: usize| {
        client.send_message(
            "cron@mx.test",
            &["owner@far.test"],
            format!("Subject: backup {n}\r\n\r\nok\r\n.\r\n").as_bytes(),
        )
    };
    let mut relayed = vec![relay(1)];
    let deadline = Instant::now() + support::WAIT;
    while smarthost.accepted_on(smarthost_addr.ip()) == 0 {
        assert!(Instant::now() < deadline, "no connection to the smarthost");
        std::thread::sleep(Duration::from_millis(10));
    }
    // More messages for the smarthost than there are workers, each its
    // own job.
    for n in 2..=3 {
        relayed.push(relay(n));
        // Were the smarthost to take the second worker, it would have it
        // before the alert is queued.
        std::thread::sleep(Duration::from_millis(200));
    }
    ups_alert_reaches_ntfy(&server, &service, "/phone", "tk_phone");
    // The alert is done; the smarthost's messages are all still queued,
    // untried, and it has had one worker, never two.
    let mut files: Vec<String> = relayed.iter().map(|id| format!("{id}.msg")).collect();
    files.sort();
    let deadline = Instant::now() + support::WAIT;
    while server.queue_files() != files {
        assert!(
            Instant::now() < deadline,
            "{:?} != {files:?}",
            server.queue_files()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(smarthost.accepted_on(smarthost_addr.ip()), 1);
    let (code, out, err) =
        run_tinymta(&["mailq", "-C", &server.config_path().display().to_string()]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    assert_eq!(
        out.matches("<owner@far.test> queued, 0 attempts\n").count(),
        3,
        "{out}"
    );
    assert!(out.ends_with("-- 3 messages in the queue\n"), "{out}");
}
