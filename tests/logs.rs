//! The log cannot be forged (issue 12, item 5): what a client sends reaches
//! the log escaped, and every record is one line of tinymta's own.

mod support;

use support::Server;

/// The start of every record: `2026-12-03T10:06:52.451815081Z [INFO] `.
fn has_record_prefix(line: &str) -> bool {
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    let time = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        time.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let date_ok = time.len() >= 20
        && digits(0..4)
        && time[4] == b'-'
        && digits(5..7)
        && time[7] == b'-'
        && digits(8..10)
        && time[10] == b'T'
        && digits(11..13)
        && time[13] == b':'
        && digits(14..16)
        && time[16] == b':'
        && digits(17..19)
        && time.ends_with(b"Z");
    let level_ok = ["[ERROR] ", "[WARN] ", "[INFO] ", "[DEBUG] ", "[TRACE] "]
        .iter()
        .any(|level| rest.starts_with(level));
    date_ok && level_ok
}

fn base64(bytes: &[u8]) -> String {
    tinymta::smtp::base64::encode(bytes)
}

#[test]
fn client_text_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, tinymta::auth::hash_line("box", b"s3cret", 1)).unwrap();
    let server = Server::start(&format!("auth_users = {}", users.display()));
    let mut c = server.greeted();
    // A name with a Unicode line separator, a NEL (C1), a tab, and a
    // backslash, which is escaped too so that `\x1b` is not ESC.
    assert!(c
        .command("EHLO evil.test\u{2028}forged: ehlo\u{85}nel\tx\\x1b")
        .starts_with("250-"));
    // AUTH LOGIN with a user name that is a whole log line of its own.
    assert_eq!(c.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.command(&base64(b"x\r\nforged: line")),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        c.command(&base64(b"wrong")),
        "535 5.7.8 Error: authentication failed\r\n"
    );
    // A Message-ID folded over two lines, the second line made to look like
    // a record, with an ESC sequence (clear screen, red) in it.
    c.begin_data("a@mx.test", &["root@mx.test"]);
    c.send_raw(
        b"Message-ID: <id1@mx.test\r\n forged: id\x1b[2J\x1b[31m>\r\nSubject: hi\r\n\r\nbody\r\n.\r\n",
    );
    let reply = c.reply();
    let id = support::queue_id(&reply);
    server.wait_for_log(&format!("{id}: accepted from="));
    c.command("QUIT");

    let log = server.log();
    // The daemon goes on logging (the delivery); a record being written
    // as the file is read is not yet a line.
    let log = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
    for line in log.lines() {
        assert!(
            has_record_prefix(line),
            "a line that is no record: {line:?}\nlog:\n{log}"
        );
    }
    assert!(!log.contains('\x1b'), "a raw ESC in the log:\n{log}");
    assert!(!log.contains('\r'), "a raw CR in the log:\n{log}");
    assert!(!log.contains('\u{85}'), "a raw NEL in the log:\n{log}");
    assert!(!log.contains('\u{2028}'), "a raw U+2028 in the log:\n{log}");
    assert!(
        log.contains("[WARN] AUTH as x\\r\\nforged: line from 127.0.0.1: failed (1 of 3)"),
        "{log}"
    );
    let accepted = log
        .lines()
        .find(|l| l.contains(&format!("{id}: accepted from=")))
        .unwrap();
    assert!(
        accepted.contains("helo=evil.test\\u{2028}forged: ehlo\\x85nel\\tx\\\\x1b "),
        "{accepted}"
    );
    assert!(accepted.contains("\\x1b[2J\\x1b[31m>"), "{accepted}");
    assert!(accepted.contains("message-id=<id1@mx.test"), "{accepted}");
}
