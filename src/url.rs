//! `http` and `https` URLs (RFC 3986, RFC 9110 4.2), split as a request
//! needs them: the config checks a push route's URL with it, and the HTTP
//! client sends to it.

use std::fmt;
use std::net::Ipv6Addr;

/// Why a text is not a URL the HTTP client can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad URL: {}", self.0)
    }
}

impl std::error::Error for UrlError {}

/// An `http` or `https` URL, split as a request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// A lower-case name, an IPv4 address, or an IPv6 address without
    /// its brackets.
    pub host: String,
    pub port: u16,
    /// The request target (RFC 9112 3.2.1, origin-form): `/` at least.
    pub path_and_query: String,
}

impl Url {
    /// `http://` or `https://`, a host (a name, an IPv4 address or an IPv6
    /// one in brackets), an optional port, then the path and query; the
    /// fragment is dropped (RFC 9110 4.2.5: it is never sent). User info
    /// (`user:password@`) is refused: RFC 9110 4.2.4 deprecates it, and a
    /// secret belongs in a file, not in the config.
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let bad = |message: &str| UrlError(format!("{message}: {text:?}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected http:// or https://"))?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(bad("only http and https URLs are supported"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(bad("user info (user:password@) in a URL is refused"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // RFC 3986 3.2.2: IP-literal = "[" IPv6address "]".
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address without its closing ]"))?;
            let ip: Ipv6Addr = literal
                .parse()
                .map_err(|_| bad("not an IPv6 address in brackets"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after the IPv6 address"))?,
                ),
            };
            (ip.to_string(), port)
        } else {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
            if name.is_empty() || !name.chars().all(valid) {
                return Err(bad("expected a host name or IP address"));
            }
            (name.to_ascii_lowercase(), port)
        };
        let default_port = if https { 443 } else { 80 };
        let port = match port {
            // RFC 3986 3.2.3: an empty port is the scheme's default.
            None | Some("") => default_port,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        // The target goes into the request line as it is: it must already
        // be percent-encoded (RFC 3986 2.1), without spaces or controls.
        if let Some(c) = target.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(bad(&format!(
                "{c:?} must be percent-encoded in the path or query"
            )));
        }
        let path_and_query = match target.strip_prefix('?') {
            Some(_) => format!("/{target}"),
            None if target.is_empty() => "/".to_string(),
            None => target.to_string(),
        };
        Ok(Url {
            https,
            host,
            port,
            path_and_query,
        })
    }

    /// This URL with `path` appended to its path (one `/` between them,
    /// the query kept at the end): `https://gotify.example/` and
    /// `message` make `https://gotify.example/message`.
    pub fn join(&self, path: &str) -> Url {
        let (base, query) = match self.path_and_query.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.path_and_query.as_str(), None),
        };
        let mut joined = base.trim_end_matches('/').to_string();
        joined.push('/');
        joined.push_str(path.trim_start_matches('/'));
        if let Some(query) = query {
            joined.push('?');
            joined.push_str(query);
        }
        Url {
            path_and_query: joined,
            ..self.clone()
        }
    }

    /// The Host field's value (RFC 9110 7.2): the host, in brackets for
    /// IPv6, and the port unless it is the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn url_error(text: &str) -> String {
        Url::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn urls_are_split_as_a_request_needs_them() {
        assert_eq!(
            url("https://ntfy.sh/alerts"),
            Url {
                https: true,
                host: "ntfy.sh".to_string(),
                port: 443,
                path_and_query: "/alerts".to_string(),
            }
        );
        assert_eq!(
            url("HTTP://Push.Example:8080?a=b#frag"),
            Url {
                https: false,
                host: "push.example".to_string(),
                port: 8080,
                path_and_query: "/?a=b".to_string(),
            }
        );
        let v6 = url("https://[::1]:8443/x");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.authority(), "[::1]:8443");
        assert_eq!(v6.to_string(), "https://[::1]:8443/x");
        let v6 = url("http://[2001:DB8::1]");
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 80));
        assert_eq!(v6.path_and_query, "/");
        assert_eq!(url("https://127.0.0.1:/").port, 443);
        let telegram = url("https://api.telegram.org/bot123:AB-c_d/sendMessage");
        assert_eq!(telegram.path_and_query, "/bot123:AB-c_d/sendMessage");
        assert_eq!(telegram.authority(), "api.telegram.org");
    }

    #[test]
    fn unusable_urls_are_refused_saying_why() {
        let cases = [
            ("ftp://x.example/", "only http and https URLs are supported"),
            ("ntfy.sh/alerts", "expected http:// or https://"),
            ("https://user:pw@x.example/", "user info (user:password@)"),
            ("https:///path", "expected a host name or IP address"),
            ("https://x y.example/", "expected a host name or IP address"),
            (
                "https://x.example:0/",
                "the port must be a number from 1 to 65535",
            ),
            ("https://x.example:65536/", "the port must be a number"),
            ("https://x.example:+80/", "the port must be a number"),
            ("https://[::1/", "without its closing ]"),
            ("https://[fe80::1%eth0]/", "not an IPv6 address in brackets"),
            ("https://[::1]x/", "expected :PORT after the IPv6 address"),
            ("https://x.example/a b", "' ' must be percent-encoded"),
            ("https://x.example/é", "'é' must be percent-encoded"),
        ];
        for (text, words) in cases {
            let error = url_error(text);
            assert!(error.contains(words), "{text}: {error}");
            assert!(error.starts_with("bad URL: "), "{error}");
        }
    }

    #[test]
    fn join_appends_to_the_path_and_keeps_the_query() {
        let joined = |base: &str, path: &str| url(base).join(path).path_and_query;
        assert_eq!(joined("https://g.example", "message"), "/message");
        assert_eq!(joined("https://g.example/", "/message"), "/message");
        assert_eq!(
            joined("https://g.example/gotify", "message"),
            "/gotify/message"
        );
        assert_eq!(
            joined("https://g.example/a/?k=v", "1/messages.json"),
            "/a/1/messages.json?k=v"
        );
        assert_eq!(
            url("https://[::1]:8443/").join("x").to_string(),
            "https://[::1]:8443/x"
        );
    }
}
