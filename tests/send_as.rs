//! Mail as it leaves the box (issue 13 items 3 and 4): `send_as` in the
//! envelope and From:, Reply-To: where replies can arrive, and lines over
//! 998 octets, through a smarthost that refuses them as the did
//! (aiosmtpd: `500 Line too long`). The message is sent with the real
//! sendmail entry point and with Python's smtplib; the smarthost's copy is
//! checked octet for octet, and decoded with Python's email and quopri.

mod support;

use std::os::unix::fs::MetadataExt;

use support::peers::{free_port_on, Received, Upstream};
use support::Server;

/// A box on `qualify_domain = box.lan` that relays through aiosmtpd as
/// `box@example.com`.
struct Box {
    server: Server,
    smarthost: Upstream,
}

impl Box {
    fn start(ip: &str) -> Box {
        let port = free_port_on(ip);
        let smarthost = Upstream::start(format!("{ip}:{port}").parse().unwrap(), &[]);
        let server = Server::start(&format!(
            "qualify_domain = box.lan\nsmarthost = {ip}:{port}\nsmarthost_tls = none\n\
             send_as = box@example.com"
        ));
        Box { server, smarthost }
    }

    /// `sendmail ARGS < input` (or `mail`), as a tool runs it.
    fn sendmail(&self, args: &[&str], input: &[u8]) {
        self.submit("sendmail", args, input);
    }

    fn submit(&self, entry_point: &str, args: &[&str], input: &[u8]) {
        let mut command = support::tinymta_command();
        command
            .args([entry_point, "-C"])
            .arg(self.server.config_path())
            .args(args);
        let (code, out, err) = support::run_with_input(command, input);
        assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    }

    /// The next message the smarthost gets (upstream.py numbers its files).
    fn next(&self) -> Received {
        let before = self.smarthost.messages().len();
        self.smarthost.wait_for(before + 1).pop().unwrap()
    }

    /// Every message has left and nothing bounced.
    fn all_sent(&self, count: usize) {
        self.server.wait_for_empty_queue();
        assert_eq!(self.smarthost.messages().len(), count);
        let log = self.server.log();
        assert!(!log.contains("status=bounced"), "{log}");
        assert!(!log.contains("status=deferred"), "{log}");
    }
}

/// The header section without the Received: field tinymta put first (its
/// id and date vary), which must be `received`'s first line.
fn header_after_received<'a>(text: &'a str, received: &str) -> &'a str {
    let (header, _) = text.split_once("\r\n\r\n").expect("a header section");
    assert!(header.starts_with(received), "{header}");
    let mut rest = &header[received.len()..];
    while rest.starts_with([' ', '\t']) {
        rest = rest.split_once("\r\n").map_or("", |(_, next)| next);
    }
    rest
}

/// The decoded body, as Python's email package decodes it, and as quopri
/// decodes the body section on its own.
fn python_decoded(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message");
    std::fs::write(&path, message).unwrap();
    let out = support::python(&format!(
        "import email, quopri\n\
         raw = open({path:?}, 'rb').read()\n\
         print(email.message_from_bytes(raw).get_payload(decode=True).hex())\n\
         print(quopri.decodestring(raw.split(b'\\r\\n\\r\\n', 1)[1]).hex())\n",
        path = path.display().to_string()
    ));
    let mut lines = out.lines().map(|hex| {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    });
    (lines.next().unwrap(), lines.next().unwrap())
}

/// `line` broken as Postfix's smtp_line_length_limit breaks it: 998
/// octets, then CRLF, a space and 997 more, and so on.
fn broken(line: &str) -> String {
    let (first, mut rest) = line.split_at(998);
    let mut out = first.to_string();
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(rest.len().min(997));
        out.push_str("\r\n ");
        out.push_str(piece);
        rest = after;
    }
    out
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn cron_output_with_a_3000_character_line_leaves_as_send_as_in_quoted_printable() {
    let relay = Box::start("127.0.0.31");
    let json = format!(
        "{{\"disks\": [{}], \"note\": \"température = 41°C \"}}",
        "{\"name\": \"sda\", \"ok\": true}, ".repeat(120)
    );
    assert!(json.len() > 3000);
    let body = format!("backup report \n{json}\n\tend\t\n.\n");
    // cronie's call and header block.
    relay.sendmail(
        &[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "ops@real.example",
        ],
        format!(
            "From: root (Cron Daemon)\nTo: ops@real.example\nSubject: Cron <root@box> report\n\
             Date: Thu, 3 Dec 2026 10:00:00 +0000\nMessage-ID: <1@box.lan>\n\
             MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\
             Content-Transfer-Encoding: 8bit\n\n{body}"
        )
        .as_bytes(),
    );
    let got = relay.next();
    assert_eq!(got.mail_from, "<box@example.com>");
    assert_eq!(got.rcpt_to, ["<ops@real.example>"]);
    let text = String::from_utf8(got.text.clone()).unwrap();
    let received = format!("Received: by mx.test (tinymta, from userid {})\r\n", uid());
    // root@box.lan cannot be answered from outside: no Reply-To:.
    assert_eq!(
        header_after_received(&text, &received),
        "From: \"Cron Daemon (root@box.lan)\" <box@example.com>\r\nTo: ops@real.example\r\n\
         Subject: Cron <root@box> report\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <1@box.lan>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\
         Content-Transfer-Encoding: quoted-printable"
    );
    let (_, encoded) = text.split_once("\r\n\r\n").unwrap();
    for line in encoded.split("\r\n") {
        assert!(line.len() <= 76, "{line}");
    }
    let original = body.replace('\n', "\r\n").into_bytes();
    assert_eq!(python_decoded(&got.text), (original.clone(), original));
    relay.all_sent(1);
}

#[test]
fn smtp_clients_on_the_lan_are_rewritten_and_local_mail_is_not() {
    let relay = Box::start("127.0.0.32");
    let port = relay.server.port;
    support::python(&format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.sendmail('alice@real.example', ['ops@real.example', 'alice@mx.test'],\n\
         b'From: =?UTF-8?Q?Alice_M=C3=BCller?= <alice@real.example>\\r\\n'\n\
         b'To: ops@real.example\\r\\nSubject: from the NAS\\r\\n\\r\\nhello\\r\\n')\n\
         s.sendmail('', ['ops@real.example'],\n\
         b'From: Mail Delivery System <MAILER-DAEMON@mx.test>\\r\\nReply-To: ops@real.example\\r\\n'\n\
         b'Subject: a bounce\\r\\n\\r\\nreport\\r\\n')\n\
         s.quit()\n"
    ));
    let mut got = relay.smarthost.wait_for(2);
    got.sort_by(|a, b| a.mail_from.cmp(&b.mail_from));
    // The null sender stays null; the author gets the replies she could.
    // aiosmtpd's null reverse-path is `<>`, which upstream.py brackets.
    assert_eq!(got[0].mail_from, "<<>>");
    assert_eq!(got[1].mail_from, "<box@example.com>");
    assert_eq!(got[1].rcpt_to, ["<ops@real.example>"]);
    let text = String::from_utf8(got[1].text.clone()).unwrap();
    let (header, body) = text.split_once("\r\n\r\n").unwrap();
    let fields = header.split_once("\r\nFrom: ").unwrap().1;
    assert_eq!(
        fields,
        "=?UTF-8?Q?Alice_M=C3=BCller?= \"(alice@real.example)\" <box@example.com>\r\n\
         To: ops@real.example\r\nSubject: from the NAS\r\nReply-To: alice@real.example"
    );
    assert_eq!(body, "hello\r\n");
    let bounce = String::from_utf8(got[0].text.clone()).unwrap();
    assert!(
        bounce.contains(
            "\r\nFrom: \"Mail Delivery System (MAILER-DAEMON@mx.test)\" <box@example.com>\r\n\
             Reply-To: ops@real.example\r\nSubject: a bounce\r\n\r\nreport\r\n"
        ),
        "{bounce}"
    );
    // The box's own mailbox keeps who wrote.
    let local = String::from_utf8(relay.server.wait_for_mail("alice", 1).remove(0)).unwrap();
    assert!(
        local.starts_with("Return-Path: <alice@real.example>\n"),
        "{local}"
    );
    assert!(
        local.contains("\nFrom: =?UTF-8?Q?Alice_M=C3=BCller?= <alice@real.example>\nTo: "),
        "{local}"
    );
    relay.all_sent(2);
}

#[test]
fn long_lines_in_a_multipart_message_and_its_header_are_broken_not_bounced() {
    let relay = Box::start("127.0.0.33");
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 % 256) as u8).collect();
    let encoded = tinymta::smtp::base64::encode(&data);
    assert!(encoded.len() > 998);
    let subject = vec!["disk"; 300].join(" ");
    let text_line = "t".repeat(1200);
    relay.sendmail(
        &["-t"],
        format!(
            "From: smartd <root>\nTo: ops@real.example\nSubject: {subject}\n\
             MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n\
             --b\nContent-Type: text/plain\n\n{text_line}\n\
             --b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n\
             {encoded}\n--b--\n"
        )
        .as_bytes(),
    );
    let got = relay.next();
    assert_eq!(got.mail_from, "<box@example.com>");
    let text = String::from_utf8(got.text.clone()).unwrap();
    for line in text.split("\r\n") {
        assert!(line.len() <= 998, "{}", line.len());
    }
    let (header, body) = text.split_once("\r\n\r\n").unwrap();
    // The Subject: folded before white space: unfolded, it is whole.
    assert!(
        header
            .replace("\r\n ", " ")
            .contains(&format!("\r\nSubject: {subject}\r\n")),
        "{header}"
    );
    // Body lines broken with CRLF and a space, as Postfix does.
    assert_eq!(
        body,
        format!(
            "--b\r\nContent-Type: text/plain\r\n\r\n{}\r\n\
             --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {}\r\n--b--\r\n",
            broken(&text_line),
            broken(&encoded),
        )
    );
    // The attachment decodes to its octets (base64 decoders skip the break).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message");
    std::fs::write(&path, &got.text).unwrap();
    let hex = support::python(&format!(
        "import email\n\
         m = email.message_from_bytes(open({:?}, 'rb').read())\n\
         print(m.get_payload()[1].get_payload(decode=True).hex())\n",
        path.display().to_string()
    ));
    let expected: String = data.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex.trim(), expected);
    relay.all_sent(1);
}

#[test]
fn the_mail_front_end_is_rewritten_alike() {
    let relay = Box::start("127.0.0.34");
    let line = "x".repeat(1500);
    relay.submit(
        "mail",
        &["-s", "zfs scrub", "ops@real.example"],
        format!("{line}\n").as_bytes(),
    );
    let got = relay.next();
    assert_eq!(got.mail_from, "<box@example.com>");
    let text = String::from_utf8(got.text.clone()).unwrap();
    let received = format!("Received: by mx.test (tinymta, from userid {})\r\n", uid());
    let header = header_after_received(&text, &received);
    // mail's header block, then sendmail's From:, Date: and Message-ID:.
    let (mail_fields, added) = header.split_once("\r\nFrom: ").unwrap();
    assert_eq!(
        mail_fields,
        "To: ops@real.example\r\nSubject: zfs scrub\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8"
    );
    let login = support::python("import pwd, os; print(pwd.getpwuid(os.getuid()).pw_name)");
    assert!(
        added.starts_with(&format!(
            "\"{}@box.lan\" <box@example.com>\r\nDate: ",
            login.trim()
        )),
        "{added}"
    );
    assert!(added.ends_with("@mx.test>\r\nContent-Transfer-Encoding: quoted-printable"));
    let original = format!("{line}\r\n").into_bytes();
    assert_eq!(python_decoded(&got.text), (original.clone(), original));
    relay.all_sent(1);
}
