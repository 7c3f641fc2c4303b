//! The HTTP client (src/http.rs) against Python's http.server over TLS on
//! loopback, with a test CA: as delivery will use it, made from a config
//! (`hosts_file`, `tls_ca_file`, `connect_timeout`, `http_timeout`).

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::peers::{free_port_on, HttpServer, TestCa};
use tinymta::config::Config;
use tinymta::deliver::DeliverySettings;
use tinymta::http::{HttpClient, HttpError, Request, Response};
use tinymta::time::unix_now;
use tinymta::url::Url;

/// A client as delivery makes it, from a config in `dir` whose hosts file
/// names push.test (127.0.0.1) and push6.test (::1); the nameserver it
/// names is never asked.
fn client(dir: &Path, ca: &TestCa, http_timeout: &str) -> HttpClient {
    fs::write(dir.join("hosts"), "127.0.0.1 push.test\n::1 push6.test\n").unwrap();
    let text = format!(
        "hosts_file = {}\ndns_servers = 127.0.0.1:9\ntls_ca_file = {}\n\
         connect_timeout = 2s\nhttp_timeout = {http_timeout}\n",
        dir.join("hosts").display(),
        ca.ca().display()
    );
    let config = Config::parse(&text, &dir.join("tinymta.conf")).unwrap();
    DeliverySettings::load(&config, None).unwrap().http_client()
}

fn server_at(ip: &str, ca: &TestCa, answers: &str) -> HttpServer {
    let addr: SocketAddr = SocketAddr::new(ip.parse().unwrap(), free_port_on(ip));
    HttpServer::start(addr, Some(ca), answers)
}

fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Request {
    Request {
        method: "POST",
        url: Url::parse(url).unwrap(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// The response's fields but Server and Date, which http.server adds.
fn own_headers(response: &Response) -> Vec<(&str, &str)> {
    response
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .filter(|(name, _)| *name != "Server" && *name != "Date")
        .collect()
}

#[test]
fn a_post_over_https_to_a_name_from_the_hosts_file() {
    let dir = support::test_dir();
    let ca = TestCa::new(&["push.test"]);
    let answer = r#"[{"status": 200, "headers": [["Content-Type", "application/json"]],
                      "body": "{\"id\":\"x1\",\"event\":\"message\"}"}]"#;
    let server = server_at("127.0.0.1", &ca, answer);
    let port = server.addr.port();
    let request = post(
        &format!("https://push.test:{port}/alerts"),
        &[("Title", "disk full"), ("Priority", "5")],
        "sda1 at 99%",
    );
    let response = client(dir.path(), &ca, "5s").send(&request).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        own_headers(&response),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", "29"),
            ("Connection", "close")
        ]
    );
    assert_eq!(response.body, br#"{"id":"x1","event":"message"}"#);
    assert!(response.header("server").unwrap().starts_with("BaseHTTP/"));
    let requests = server.wait_for(1);
    assert_eq!(
        requests[0],
        format!(
            "POST /alerts HTTP/1.1\r\nHost: push.test:{port}\r\nUser-Agent: tinymta/{}\r\n\
             Title: disk full\r\nPriority: 5\r\nContent-Length: 11\r\nConnection: close\r\n\
             \r\nsda1 at 99%",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn chunked_and_close_delimited_bodies_after_an_interim_response() {
    let dir = support::test_dir();
    let ca = TestCa::new(&["push.test"]);
    let answers = r#"[{"status": 202, "framing": "chunked", "interim": true, "body": "queued for delivery"},
                      {"status": 500, "framing": "close", "body": "upstream broke\n"}]"#;
    let server = server_at("127.0.0.1", &ca, answers);
    let url = format!("https://push.test:{}/m", server.addr.port());
    let client = client(dir.path(), &ca, "5s");
    let chunked = client.send(&post(&url, &[], "one")).unwrap();
    assert_eq!(chunked.status, 202);
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.body, b"queued for delivery");
    let closed = client.send(&post(&url, &[], "two")).unwrap();
    assert_eq!(closed.status, 500);
    assert_eq!(own_headers(&closed), [("Connection", "close")]);
    assert_eq!(closed.body, b"upstream broke\n");
    server.wait_for(2);
}

#[test]
fn a_429_with_retry_after_and_a_redirect_not_followed() {
    let dir = support::test_dir();
    let ca = TestCa::new(&["push.test"]);
    let answers = r#"[{"status": 429, "headers": [["Retry-After", "30"]], "body": "slow down"},
                      {"status": 301, "headers": [["Location", "https://push.test:1/elsewhere"]]}]"#;
    let server = server_at("127.0.0.1", &ca, answers);
    let url = format!("https://push.test:{}/m", server.addr.port());
    let client = client(dir.path(), &ca, "5s");
    let limited = client.send(&post(&url, &[], "")).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.retry_after(unix_now()),
        Some(Duration::from_secs(30))
    );
    let moved = client.send(&post(&url, &[], "")).unwrap();
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("location"),
        Some("https://push.test:1/elsewhere")
    );
    // Two requests, both to the URL asked for: the redirect was not followed.
    let requests = server.wait_for(2);
    assert!(requests
        .iter()
        .all(|r| r.starts_with("POST /m HTTP/1.1\r\n")));
}

#[test]
fn an_ipv6_literal_and_an_ipv6_name() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        support::skip("no IPv6 loopback here");
        return;
    }
    let dir = support::test_dir();
    let ca = TestCa::new(&["::1", "push6.test"]);
    let server = server_at("::1", &ca, r#"[{"status": 204}]"#);
    let port = server.addr.port();
    let client = client(dir.path(), &ca, "5s");
    for url in [
        format!("https://[::1]:{port}/v6"),
        format!("https://push6.test:{port}/v6"),
    ] {
        let response = client.send(&post(&url, &[], "x")).unwrap();
        assert_eq!((response.status, response.body.len()), (204, 0), "{url}");
    }
    let requests = server.wait_for(2);
    assert!(requests[0].contains(&format!("\r\nHost: [::1]:{port}\r\n")));
    assert!(requests[1].contains(&format!("\r\nHost: push6.test:{port}\r\n")));
}

#[test]
fn a_certificate_for_another_name_or_from_another_ca_is_refused() {
    let dir = support::test_dir();
    let ca = TestCa::new(&["push.test"]);
    let other_name = TestCa::new(&["other.test"]);
    let server = server_at("127.0.0.1", &ca, r#"[{"status": 200}]"#);
    let url = format!("https://push.test:{}/m", server.addr.port());
    // The server's CA is not the one the client trusts (both test CAs
    // have one name: webpki finds the other's signature wrong).
    let error = client(dir.path(), &other_name, "5s")
        .send(&post(&url, &[], ""))
        .unwrap_err();
    assert!(matches!(error, HttpError::Tls(_)), "{error:?}");
    let words = error.to_string();
    assert!(
        words.starts_with(&format!(
            "TLS handshake failed: the certificate of push.test ({})",
            ca.fingerprint()
        )) && words.ends_with(" was refused: BadSignature"),
        "{words}"
    );
    assert!(error.is_temporary());
    // A certificate from the trusted CA, for another name.
    let server = server_at("127.0.0.1", &other_name, r#"[{"status": 200}]"#);
    let url = format!("https://push.test:{}/m", server.addr.port());
    let error = client(dir.path(), &other_name, "5s")
        .send(&post(&url, &[], ""))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is for other.test, not push.test: it is not valid for this host"),
        "{error}"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_service_that_never_answers_times_out_after_http_timeout() {
    let dir = support::test_dir();
    let ca = TestCa::new(&["push.test"]);
    let server = server_at("127.0.0.1", &ca, r#"[{"silent": true}]"#);
    let url = format!("https://push.test:{}/m", server.addr.port());
    let started = Instant::now();
    let error = client(dir.path(), &ca, "1s")
        .send(&post(&url, &[], "hello"))
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(
        error.to_string(),
        "timeout after 1s waiting for the response"
    );
    assert!(error.is_temporary());
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // It got the request all the same.
    assert!(server.wait_for(1)[0].ends_with("\r\n\r\nhello"));
}
