//! TLS on the server side: STARTTLS (RFC 3207) and implicit TLS (RFC 8314),
//! driven by Python's smtplib and `openssl s_client`.

mod support;

use std::process::{Command, Stdio};

use support::peers::{free_port_on, TestCa};
use support::{run_tinymta, Server};

fn tls_server(ca: &TestCa, extra: &str) -> Server {
    Server::start(&format!("{}{extra}", ca.tinymta_config()))
}

#[test]
fn starttls_with_smtplib_checks_the_certificate_and_resets_the_session() {
    let ca = TestCa::new(&["mx.test", "127.0.0.1"]);
    let server = tls_server(&ca, "");
    let out = support::python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="client.test")
s.ehlo()
print("offered:", s.has_extn("starttls"))
code, _ = s.starttls(context=ctx)
print("starttls:", code, s.sock.version())
# Nothing said before the handshake counts: MAIL needs a new EHLO.
print("mail before ehlo:", s.docmd("MAIL FROM:<a@mx.test>")[0])
s.ehlo()
print("offered again:", s.has_extn("starttls"))
print("refused:", s.sendmail("a@mx.test", ["root@mx.test"], b"Subject: secret\r\n\r\nover TLS\r\n"))
s.quit()
"#,
        ca = ca.ca().display(),
        port = server.port
    ));
    assert_eq!(
        out,
        "offered: True\nstarttls: 220 TLSv1.3\nmail before ehlo: 503\noffered again: False\nrefused: {}\n"
    );
    let mail = server.wait_for_mail("root", 1);
    let text = String::from_utf8_lossy(&mail[0]);
    assert!(
        text.contains("\tby mx.test (tinymta) with ESMTPS id "),
        "{text}"
    );
    assert!(text.ends_with("Subject: secret\n\nover TLS\n"), "{text}");
}

#[test]
fn openssl_s_client_verifies_the_starttls_certificate() {
    let ca = TestCa::new(&["mx.test"]);
    let server = tls_server(&ca, "");
    let mut child = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port))
        .args(["-verify_hostname", "mx.test", "-verify_return_error"])
        .args(["-brief", "-ign_eof", "-CAfile"])
        .arg(ca.ca())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    // s_client sends its own EHLO; ours goes over TLS.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"EHLO openssl.test\r\nQUIT\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let text = format!("{text}{}", String::from_utf8_lossy(&out.stderr)).replace("\r\n", "\n");
    assert!(
        text.contains("Verification: OK\nVerified peername: mx.test\n"),
        "{text}"
    );
    assert!(text.contains("Protocol version: TLSv1.3\n"), "{text}");
    // Our EHLO over TLS: no STARTTLS offered any more.
    assert!(
        text.contains("250-mx.test\n250-PIPELINING\n250-SIZE 10485760\n250-8BITMIME\n250 ENHANCEDSTATUSCODES\n221 2.0.0 Bye\n"),
        "{text}"
    );
    // The session ends with a TLS close_notify, not a cut connection.
    assert!(!text.contains("unexpected eof"), "{text}");
}

#[test]
fn implicit_tls_listener() {
    let ca = TestCa::new(&["mx.test", "127.0.0.1"]);
    let tls_port = free_port_on("127.0.0.1");
    let server = tls_server(&ca, &format!("listen = 127.0.0.1:{tls_port} tls"));
    let out = support::python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP_SSL("127.0.0.1", {tls_port}, local_hostname="client.test", context=ctx)
code, _ = s.ehlo()
print(code, s.sock.version(), s.has_extn("starttls"))
print(s.sendmail("a@mx.test", ["root@mx.test"], b"Subject: 465\r\n\r\nimplicit\r\n"))
s.quit()
"#,
        ca = ca.ca().display(),
    ));
    assert_eq!(out, "250 TLSv1.3 False\n{}\n");
    let mail = server.wait_for_mail("root", 1);
    assert!(String::from_utf8_lossy(&mail[0]).contains("with ESMTPS id "));
}

#[test]
fn commands_pipelined_after_starttls_are_refused() {
    let ca = TestCa::new(&["mx.test"]);
    let server = tls_server(&ca, "");
    let mut c = server.greeted();
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
    assert_eq!(
        c.reply(),
        "554 5.5.1 Error: commands pipelined after STARTTLS\r\n"
    );
    assert!(c.closed());
    assert!(server.log().contains("commands pipelined after STARTTLS"));
}

#[test]
fn a_bad_certificate_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("t.conf");
    let missing = dir.path().join("missing.pem");
    std::fs::write(
        &conf,
        format!(
            "hostname = mx.test\ntls_cert = {}\ntls_key = {}\n",
            missing.display(),
            missing.display()
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_tinymta(&["-t", "-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!(
            "tinymta: {}:2: tls_cert: {}: ",
            conf.display(),
            missing.display()
        )),
        "{stderr}"
    );
    // A certificate with the key of another.
    let one = TestCa::new(&["mx.test"]);
    let other = TestCa::new(&["mx.test"]);
    std::fs::write(
        &conf,
        format!(
            "tls_cert = {}\ntls_key = {}\n",
            one.dir.path().join("cert.pem").display(),
            other.dir.path().join("key.pem").display()
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_tinymta(&["-t", "-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(":1: tls_cert: "), "{stderr}");
    assert!(stderr.contains("does not fit the certificate"), "{stderr}");
}
