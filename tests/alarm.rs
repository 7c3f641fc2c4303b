//! Alarms through a second channel (`alarm_to`, `alarm_after`,
//! `alarm_repeat`): a smarthost (aiosmtpd) that refuses tinymta's AUTH with
//! `535 5.7.8` longer than `alarm_after` brings one alarm into a local
//! Maildir, a restart brings no second one, the smarthost taking the
//! password again brings one "delivering again" notice, and being stuck
//! again within `alarm_repeat` brings nothing.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::peers::{free_port_on, TestCa, Upstream};
use support::{Server, WAIT};
use tinymta::time::{rfc5322_date, unix_now};

const IP: &str = "127.0.0.11";

/// What the smarthost says to the wrong password, as tinymta words it.
const AUTH_ERROR: &str = "4.4.1 AUTH: the server refused user \"box\" with the password of \
    smarthost_password_file (535 5.7.8 Authentication credentials invalid): put the right \
    password in that file, which tinymta reads at start-up and on SIGHUP (reload it after a \
    change); Gmail and other providers with two-step verification want an app password there, \
    not the account's";

/// A smarthost that wants user `box` with `password`, on `port`.
fn smarthost(ca: &TestCa, port: u16, password: &str) -> Upstream {
    let mut options = ca.server_options();
    options.extend(["--auth".to_string(), format!("box:{password}")]);
    let addr: SocketAddr = format!("{IP}:{port}").parse().unwrap();
    Upstream::start(addr, &options)
}

/// A smarthost refusing the password of a tinymta that relays through it,
/// retries every second and raises alarms to `alarm_to`; one message queued.
struct Stuck {
    ca: TestCa,
    port: u16,
    refusing: Upstream,
    server: Server,
    /// The queued message.
    id: String,
    _files: tempfile::TempDir,
}

impl Stuck {
    fn start(alarm_to: &str) -> Stuck {
        let ca = TestCa::new(&["smarthost.test"]);
        let files = tempfile::tempdir().unwrap();
        let port = free_port_on(IP);
        let refusing = smarthost(&ca, port, "other");
        let file = |name: &str, text: &str| {
            let path = files.path().join(name);
            fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let server = Server::start(&format!(
            "smarthost = smarthost.test:{port}\nhosts_file = {}\ntls_ca_file = {}\n\
             smarthost_user = box\nsmarthost_password_file = {}\n\
             retry_min = 1s\nretry_max = 1s\nalarm_to = {alarm_to}\nalarm_after = 2s",
            file("hosts", &format!("{IP} smarthost.test\n")),
            ca.ca().display(),
            file("password", "s3cret\n"),
        ));
        let id = send(&server, "disk failing");
        Stuck {
            ca,
            port,
            refusing,
            server,
            id,
            _files: files,
        }
    }
}

/// Queues a message to ops@far.test; its id.
fn send(server: &Server, subject: &str) -> String {
    server.greeted().send_message(
        "a@mx.test",
        &["ops@far.test"],
        format!("Subject: {subject}\r\n\r\nsda\r\n.\r\n").as_bytes(),
    )
}

/// The Unix time that `date` (as tinymta writes it) stands for, at or after
/// `from` and not after now.
fn unix_time_of(date: &str, from: u64) -> u64 {
    (from..=unix_now())
        .find(|t| rfc5322_date(*t) == date)
        .unwrap_or_else(|| panic!("{date:?} is not a time since {from}"))
}

/// The value of the first line starting with `name` (a header or a line of
/// the body).
fn value_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in {text}"))
}

/// A notice as local delivery stored it, with the parts that change from
/// run to run (the times, the Message-ID) taken from the notice itself
/// and checked for their form; the rest must be exactly `expected`, which
/// gets `{DATE}`, `{ID}`, `{SINCE}` and `{AGE}` filled in.
fn assert_notice(stored: &[u8], expected: &str, arrival: u64) {
    let text = String::from_utf8(stored.to_vec()).unwrap();
    let date = value_of(&text, "Date: ");
    let now = unix_time_of(date, arrival);
    let id = value_of(&text, "Message-ID: ");
    assert!(
        id.starts_with(&format!("<{now}.")) && id.ends_with(".alarm@mx.test>"),
        "{id}"
    );
    let since_line = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Deferred since: ")
                .or_else(|| l.strip_prefix("It had been deferred since "))
        })
        .expect("since when");
    let since_date = since_line.split(" (").next().unwrap();
    let since = unix_time_of(since_date, arrival);
    // The first attempt was made as the message came.
    assert!(since <= arrival + 1, "since {since}, arrival {arrival}");
    let age = now - since;
    let expected = expected
        .replace("{DATE}", date)
        .replace("{ID}", id)
        .replace("{SINCE}", since_date)
        .replace("{AGE}", &format!("{age}s"))
        .replace("{REPEAT_END}", &rfc5322_date(now + 86400));
    assert_eq!(text, expected);
}

/// How often `id`'s queued recipient has been tried, by its envelope.
fn attempts_of(server: &Server, id: &str) -> u32 {
    server
        .envelope(id)
        .lines()
        .find_map(|l| l.strip_prefix("recipient: queued attempts="))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until `id` has been tried at least `attempts` times.
fn wait_for_attempts(server: &Server, id: &str, attempts: u32) {
    let deadline = Instant::now() + WAIT;
    while attempts_of(server, id) < attempts {
        assert!(
            Instant::now() < deadline,
            "{id} not tried {attempts} times:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The arrival time in a queue entry's envelope.
fn arrival_of(server: &Server, id: &str) -> u64 {
    value_of(&server.envelope(id), "arrival: ").parse().unwrap()
}

#[test]
fn one_alarm_while_the_smarthost_refuses_auth_and_one_notice_when_it_takes_it() {
    let Stuck {
        ca,
        port,
        refusing,
        mut server,
        id,
        _files,
    } = Stuck::start("alarm@mx.test");
    let arrival = arrival_of(&server, &id);
    let alarm = server.wait_for_mail("alarm", 1);
    let destination = format!("smarthost smarthost.test:{port}");
    assert_notice(
        &alarm[0],
        &format!(
            "Return-Path: <>\nDelivered-To: alarm@mx.test\n\
             From: Mail Delivery System <MAILER-DAEMON@mx.test>\nTo: <alarm@mx.test>\n\
             Subject: tinymta: mail to {destination} stuck for {{AGE}}\nDate: {{DATE}}\n\
             Message-ID: {{ID}}\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n\
             Mail to {destination} has been deferred without a single success\n\
             for {{AGE}}.\n\nStuck: mail to {destination}\nMessages waiting: 1\n\
             Deferred since: {{SINCE}}\nLast error: {AUTH_ERROR}\n\n\
             tinymta keeps retrying; `tinymta mailq` shows the queue. No other alarm about \
             this destination is sent before {{REPEAT_END}}; a notice follows when mail to it \
             is delivered again.\n"
        ),
        arrival,
    );
    let subject = value_of(std::str::from_utf8(&alarm[0]).unwrap(), "Subject: ");
    let age = subject.rsplit(' ').next().unwrap();
    assert!(["2s", "3s"].contains(&age), "{subject}");

    // Stuck on after a restart: still one alarm, as the state file says
    // when it was sent.
    let state = fs::read_to_string(server.spool().join("alarms")).unwrap();
    assert!(
        state.starts_with("tinymta-alarms: 1\nalarm: ")
            && state.ends_with(&format!(" {destination}\n")),
        "{state}"
    );
    server.restart();
    let tried = attempts_of(&server, &id);
    wait_for_attempts(&server, &id, tried + 3);
    assert_eq!(server.mail_count("alarm"), 1, "{}", server.log());
    assert!(refusing.messages().is_empty());

    // The smarthost takes the password: the message, then one notice.
    drop(refusing);
    let accepting = smarthost(&ca, port, "s3cret");
    assert_eq!(accepting.wait_for(1)[0].rcpt_to, ["<ops@far.test>"]);
    let mail = server.wait_for_mail("alarm", 2);
    let notice = mail
        .iter()
        .find(|m| !m.windows(6).any(|w| w == b"stuck "))
        .expect("the notice");
    assert_notice(
        notice,
        &format!(
            "Return-Path: <>\nDelivered-To: alarm@mx.test\n\
             From: Mail Delivery System <MAILER-DAEMON@mx.test>\nTo: <alarm@mx.test>\n\
             Subject: tinymta: mail to {destination} delivering again\nDate: {{DATE}}\n\
             Message-ID: {{ID}}\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n\
             Mail to {destination} is delivered again.\n\n\
             It had been deferred since {{SINCE}} ({{AGE}}).\n"
        ),
        arrival,
    );
    server.wait_for_empty_queue();
    let state = fs::read_to_string(server.spool().join("alarms")).unwrap();
    assert!(state.ends_with(&format!(" - {destination}\n")), "{state}");

    // Stuck again within alarm_repeat: no alarm, so no notice either.
    drop(accepting);
    let refusing = smarthost(&ca, port, "other");
    let again = send(&server, "disk failed");
    wait_for_attempts(&server, &again, 5);
    drop(refusing);
    let accepting = smarthost(&ca, port, "s3cret");
    accepting.wait_for(1);
    server.wait_for_empty_queue();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.mail_count("alarm"), 2, "{}", server.log());
    assert_eq!(
        server.log().matches(": alarm to <alarm@mx.test>: ").count(),
        2
    );
}

#[test]
fn no_alarm_through_the_destination_it_reports_on() {
    // alarm_to is reached through the stuck smarthost itself. Held whole:
    // the refusing smarthost lives as long as `stuck`.
    let stuck = Stuck::start("phone@far.test");
    let (server, id, port) = (&stuck.server, &stuck.id, stuck.port);
    let refusal = format!(
        "no alarm about mail to smarthost smarthost.test:{port}: alarm_to <phone@far.test> \
         goes there too\n"
    );
    server.wait_for_log(&refusal);
    wait_for_attempts(server, id, 6);
    assert!(server
        .envelope(id)
        .contains(&format!("error: {AUTH_ERROR}\n")));
    // Said once; nothing queued but the message.
    assert_eq!(server.log().matches(&refusal).count(), 1);
    assert_eq!(
        server.queue_files(),
        [format!("{id}.env"), format!("{id}.msg")]
    );
    assert!(!server.spool().join("alarms").exists());
}
