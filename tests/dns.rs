//! The hand-written resolver against a real DNS server (dnsmasq on loopback).

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use support::Dnsmasq;
use tinymta::dns::resolver::{DnsError, MxHost, Resolver};

fn test_zone() -> Dnsmasq {
    Dnsmasq::start(&[
        "--mx-host=two.test,mx1.two.test,10",
        "--mx-host=two.test,mx2.two.test,20",
        "--host-record=mx1.two.test,127.0.0.1",
        "--host-record=mx2.two.test,127.0.0.2,::1",
        "--host-record=aonly.test,127.0.0.3",
        "--dns-rr=nullmx.test,15,000000",
        "--cname=alias.test,aonly.test",
        "--mx-host=viacname.test,alias.test,5",
    ])
}

fn resolver(dns: &Dnsmasq) -> Resolver {
    let server = format!("127.0.0.1:{}", dns.port).parse().unwrap();
    Resolver::new(vec![server], Duration::from_secs(2), HashMap::new())
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn mx_records_in_preference_order_with_addresses() {
    let dns = test_zone();
    let r = resolver(&dns);
    assert_eq!(
        r.resolve_mx("two.test").unwrap(),
        vec![
            MxHost {
                name: "mx1.two.test".into(),
                preference: 10,
                addresses: vec![ip("127.0.0.1")]
            },
            MxHost {
                name: "mx2.two.test".into(),
                preference: 20,
                addresses: vec![ip("127.0.0.2"), ip("::1")]
            },
        ]
    );
}

#[test]
fn a_only_domain_null_mx_nxdomain_and_cnames() {
    let dns = test_zone();
    let r = resolver(&dns);
    assert_eq!(
        r.resolve_mx("aonly.test").unwrap(),
        vec![MxHost {
            name: "aonly.test".into(),
            preference: 0,
            addresses: vec![ip("127.0.0.3")]
        }]
    );
    match r.resolve_mx("nullmx.test") {
        Err(e @ DnsError::NullMx(_)) => {
            assert_eq!(
                e.to_string(),
                "domain nullmx.test accepts no mail (null MX, RFC 7505)"
            )
        }
        other => panic!("{other:?}"),
    }
    match r.resolve_mx("nx.test") {
        Err(DnsError::Permanent(text)) => assert_eq!(text, "domain nx.test not found (NXDOMAIN)"),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.resolve_host("alias.test").unwrap(), vec![ip("127.0.0.3")]);
    assert_eq!(
        r.resolve_mx("viacname.test").unwrap()[0].addresses,
        vec![ip("127.0.0.3")]
    );
}

#[test]
fn a_dead_server_is_a_temporary_failure() {
    let dns = test_zone();
    let port = dns.port;
    drop(dns);
    let server = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Resolver::new(vec![server], Duration::from_millis(300), HashMap::new());
    assert!(matches!(
        r.resolve_mx("two.test"),
        Err(DnsError::Temporary(_))
    ));
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    // Forty addresses do not fit a 512-octet UDP answer: dnsmasq sets TC.
    let records: Vec<String> = (1..=40)
        .map(|n| format!("--host-record=many.test,127.0.1.{n}"))
        .collect();
    let args: Vec<&str> = records.iter().map(String::as_str).collect();
    let dns = Dnsmasq::start(&args);
    let r = resolver(&dns);
    let mut addresses = r.resolve_host("many.test").unwrap();
    addresses.sort();
    let expected: Vec<IpAddr> = (1..=40).map(|n| ip(&format!("127.0.1.{n}"))).collect();
    assert_eq!(addresses, expected);
}
