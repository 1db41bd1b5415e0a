//! Servers and proxies as SIP URIs (RFC 3261 19.1), as the configuration file and the command line
//! write them:
//!
//! | written | transport | port when none is given |
//! | --- | --- | --- |
//! | `pbx.example.com`, `192.0.2.10:5060`, `[2001:db8::1]:5060`, `2001:db8::1` | UDP | 5060, or DNS SRV for a name |
//! | `sip:pbx.example.com`, `sip:192.0.2.10:5060;transport=udp` | UDP | 5060, or DNS SRV |
//! | `sip:pbx.example.com;transport=tcp` | TCP | 5060, or DNS SRV (`_sip._tcp`) |
//! | `sips:pbx.example.com`, `sips:...;transport=tcp`, `sip:...;transport=tls` | TLS | 5061, or DNS SRV (`_sips._tcp`) |
//!
//! The scheme and the `transport` value are case-insensitive; other URI parameters (`lr`) are
//! accepted and ignored. A user part, headers, a `sips:` URI over UDP, an unbracketed IPv6 address
//! in a URI, or an unknown transport are errors, each at the column of the part at fault.

use std::net::{IpAddr, Ipv6Addr};

use super::Endpoint;
use crate::core::{Transport, MAX_HOST_LEN};
use crate::files::FileErrorKind;

/// A server written in one of the forms above, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The host, port and transport.
    pub endpoint: Endpoint,
    /// Whether it was written as a URI (`sip:` or `sips:`); a bare `host[:port]` was not.
    pub uri: bool,
}

/// Why a server cannot be parsed, and where: the 1-based column (in characters) of the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError {
    /// 1-based column in characters within the text as given.
    pub column: usize,
    /// What is wrong.
    pub kind: FileErrorKind,
}

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.kind)
    }
}

impl std::error::Error for UriError {}

/// Parses a server or proxy as written (see the module docs).
pub fn parse(text: &str) -> Result<Written, UriError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    // Byte offset in `text` to a 1-based character column.
    let col = |byte: usize| text.get(..byte.min(text.len())).map_or(1, |s| s.chars().count() + 1);
    let err = |byte: usize, kind: FileErrorKind| UriError { column: col(byte), kind };
    let invalid = |byte: usize, value: &str, expected: &str| {
        err(byte, FileErrorKind::Invalid { value: value.to_string(), expected: expected.to_string() })
    };
    if t.is_empty() {
        return Err(err(0, FileErrorKind::Empty));
    }
    if let Some((i, c)) = t.char_indices().find(|(_, c)| c.is_whitespace() || c.is_control()) {
        if c.is_control() && !c.is_whitespace() {
            return Err(err(lead + i, FileErrorKind::ControlCharacters));
        }
        return Err(invalid(lead + i, t, "an IP address or a host name, or a SIP URI, without white space"));
    }
    // A bare IPv6 address (no scheme, no brackets, no port).
    if let Ok(v6) = t.parse::<Ipv6Addr>() {
        return Ok(Written { endpoint: Endpoint::new(v6.to_string(), None), uri: false });
    }
    let lower = t.to_ascii_lowercase();
    let (scheme, body_at) = if lower.starts_with("sips:") {
        (Some(Transport::Tls), 5)
    } else if lower.starts_with("sip:") {
        (Some(Transport::Udp), 4)
    } else {
        // `word:` followed by something that is not a port is another scheme (`tel:`, `http://`).
        if let Some((word, rest)) = t.split_once(':') {
            let schemeish = word.bytes().all(|b| b.is_ascii_alphabetic())
                && !rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
            if schemeish {
                return Err(invalid(lead, &format!("{word}:"), "a `sip:` or `sips:` URI, or HOST[:PORT]"));
            }
        }
        (None, 0)
    };
    let body = &t[body_at..];
    let at = lead + body_at; // byte offset of `body` in `text`
    if let Some(i) = body.find('@') {
        return Err(invalid(at, &body[..i + 1], "a server URI without a user part (sip:HOST[:PORT])"));
    }
    if let Some(i) = body.find('?') {
        return Err(invalid(at + i, &body[i..], "a server URI without headers"));
    }
    let (hostport, params) = match body.find(';') {
        Some(i) => (&body[..i], Some((&body[i + 1..], at + i + 1))),
        None => (body, None),
    };
    if scheme.is_none() && params.is_some() {
        let i = hostport.len();
        return Err(invalid(at + i, &body[i..], "no `;` parameters on a bare HOST[:PORT] (write a sip: URI)"));
    }
    // host and port
    let (host, port_text, port_at) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(invalid(at, hostport, "an IPv6 address closed by `]`"));
        };
        let h = &rest[..close];
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(invalid(at + 1, h, "an IPv6 address"));
        }
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(invalid(at + close + 2, after, "`:PORT` after `]`")),
        };
        (h, port, at + close + 3)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) if p.contains(':') || h.parse::<Ipv6Addr>().is_ok() => {
                return Err(invalid(at, hostport, "an IPv6 address in brackets ([ADDR] or [ADDR]:PORT)"));
            }
            Some((h, p)) => (h, Some(p), at + h.len() + 1),
            None => (hostport, None, at + hostport.len()),
        }
    };
    let ip = host.parse::<IpAddr>().is_ok();
    if host.is_empty() {
        return Err(invalid(at, "", "a host name or an IP address"));
    }
    if !ip && !super::is_hostname(host) {
        return Err(invalid(at, host, "a host name or an IP address"));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(invalid(at, host, &format!("a host name of at most {MAX_HOST_LEN} characters")));
    }
    let port = match port_text {
        None => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n @ 1..=65_535) if p.bytes().all(|b| b.is_ascii_digit()) => Some(n as u16),
            Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(err(
                    port_at,
                    FileErrorKind::OutOfRange { value: n.to_string(), allowed: "1..=65535".into() },
                ))
            }
            _ => return Err(invalid(port_at, p, "a port number 1-65535")),
        },
    };
    // parameters
    let mut transport = scheme.unwrap_or(Transport::Udp);
    let mut given: Option<usize> = None;
    if let Some((params, mut p_at)) = params {
        for param in params.split(';') {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            let token =
                |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'%+".contains(&b));
            if !token(name) || value.is_some_and(|v| !token(v) && !v.starts_with('[')) {
                return Err(invalid(p_at, param, "a URI parameter NAME or NAME=VALUE"));
            }
            if name.eq_ignore_ascii_case("transport") {
                let v_at = p_at + name.len() + 1;
                if let Some(first) = given {
                    let why = format!("`transport` is given twice (first at column {})", col(first));
                    return Err(err(p_at, FileErrorKind::Conflict(why)));
                }
                given = Some(p_at);
                let v = value.unwrap_or("").to_ascii_lowercase();
                transport = match (scheme, v.as_str()) {
                    (_, "tls") => Transport::Tls,
                    (Some(Transport::Tls), "tcp") => Transport::Tls,
                    (Some(Transport::Tls), "udp") => {
                        let why = "a `sips:` URI needs TLS; `transport=udp` cannot carry it".to_string();
                        return Err(err(v_at, FileErrorKind::Conflict(why)));
                    }
                    (_, "tcp") => Transport::Tcp,
                    (_, "udp") => Transport::Udp,
                    _ => {
                        return Err(err(
                            v_at,
                            FileErrorKind::NotOneOf {
                                value: value.unwrap_or("").to_string(),
                                allowed: &["udp", "tcp", "tls"],
                            },
                        ))
                    }
                };
            }
            p_at += param.len() + 1;
        }
    }
    let endpoint = Endpoint { host: host.to_string(), port, transport };
    Ok(Written { endpoint, uri: scheme.is_some() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, Option<u16>, Transport, bool) {
        let w = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (w.endpoint.host, w.endpoint.port, w.endpoint.transport, w.uri)
    }

    fn bad(s: &str) -> (usize, String) {
        let e = parse(s).expect_err(s);
        (e.column, e.kind.to_string())
    }

    #[test]
    fn every_form_parses() {
        use Transport::*;
        let h = |s: &str| s.to_string();
        assert_eq!(ok("pbx.example.com"), (h("pbx.example.com"), None, Udp, false));
        assert_eq!(ok("192.0.2.10:5060"), (h("192.0.2.10"), Some(5060), Udp, false));
        assert_eq!(ok("[2001:db8::1]"), (h("2001:db8::1"), None, Udp, false));
        assert_eq!(ok("[2001:db8::1]:5070"), (h("2001:db8::1"), Some(5070), Udp, false));
        assert_eq!(ok("2001:db8::1"), (h("2001:db8::1"), None, Udp, false));
        assert_eq!(ok("  pbx.example.com  "), (h("pbx.example.com"), None, Udp, false));
        assert_eq!(ok("sip:pbx.example.com"), (h("pbx.example.com"), None, Udp, true));
        assert_eq!(ok("SIP:pbx.example.com;transport=UDP"), (h("pbx.example.com"), None, Udp, true));
        assert_eq!(ok("sip:192.0.2.10:5060;transport=tcp"), (h("192.0.2.10"), Some(5060), Tcp, true));
        assert_eq!(ok("sip:[2001:db8::1]:5060;transport=tcp;lr"), (h("2001:db8::1"), Some(5060), Tcp, true));
        assert_eq!(ok("sips:pbx.example.com"), (h("pbx.example.com"), None, Tls, true));
        assert_eq!(ok("sips:[2001:db8::1]"), (h("2001:db8::1"), None, Tls, true));
        assert_eq!(ok("sips:pbx.example.com:5071;transport=tcp"), (h("pbx.example.com"), Some(5071), Tls, true));
        assert_eq!(ok("sip:pbx.example.com;transport=tls"), (h("pbx.example.com"), None, Tls, true));
        assert_eq!(ok("sip:pbx.example.com;lr;maddr=x"), (h("pbx.example.com"), None, Udp, true));
    }

    #[test]
    fn default_ports_follow_the_transport() {
        let e = parse("sips:192.0.2.1").unwrap().endpoint;
        assert_eq!(e.socket_addr(), Some("192.0.2.1:5061".parse().unwrap()));
        let e = parse("sip:192.0.2.1;transport=tcp").unwrap().endpoint;
        assert_eq!(e.socket_addr(), Some("192.0.2.1:5060".parse().unwrap()));
        assert_eq!(e.to_string(), "sip:192.0.2.1;transport=tcp");
        assert_eq!(parse("sips:[::1]:5071").unwrap().endpoint.to_string(), "sips:[::1]:5071");
        assert_eq!(parse("sip:pbx.example;transport=udp").unwrap().endpoint.to_string(), "pbx.example");
    }

    #[test]
    fn errors_point_at_the_part_at_fault() {
        assert_eq!(bad(""), (1, "must not be empty".into()));
        assert_eq!(
            bad("http://pbx.example"),
            (1, "expected a `sip:` or `sips:` URI, or HOST[:PORT], found \"http:\"".into())
        );
        assert_eq!(bad("sip:pbx.example:99999"), (17, "99999 is outside 1..=65535".into()));
        assert_eq!(bad("sip:pbx.example:50x"), (17, "expected a port number 1-65535, found \"50x\"".into()));
        assert_eq!(bad("sip:pbx.example:0"), (17, "0 is outside 1..=65535".into()));
        assert_eq!(bad("sip:pbx.example;transport=sctp"), (27, "`sctp` is not one of udp, tcp, tls".into()));
        assert_eq!(
            bad("sips:pbx.example;transport=udp"),
            (28, "a `sips:` URI needs TLS; `transport=udp` cannot carry it".into())
        );
        assert_eq!(
            bad("sip:x.example;transport=tcp;transport=tls"),
            (29, "`transport` is given twice (first at column 15)".into())
        );
        assert_eq!(
            bad("sip:alice@pbx.example"),
            (5, "expected a server URI without a user part (sip:HOST[:PORT]), found \"alice@\"".into())
        );
        assert_eq!(bad("sip:pbx.example?x=1"), (16, "expected a server URI without headers, found \"?x=1\"".into()));
        assert_eq!(
            bad("sip:2001:db8::1"),
            (5, "expected an IPv6 address in brackets ([ADDR] or [ADDR]:PORT), found \"2001:db8::1\"".into())
        );
        assert_eq!(
            bad("sip:[2001:db8::1"),
            (5, "expected an IPv6 address closed by `]`, found \"[2001:db8::1\"".into())
        );
        assert_eq!(bad("sip:[zz::1]"), (6, "expected an IPv6 address, found \"zz::1\"".into()));
        assert_eq!(bad("sip:bad_host"), (5, "expected a host name or an IP address, found \"bad_host\"".into()));
        assert_eq!(bad("sip:"), (5, "expected a host name or an IP address, found nothing".into()));
        assert_eq!(
            bad("pbx.example;transport=tcp"),
            (
                12,
                "expected no `;` parameters on a bare HOST[:PORT] (write a sip: URI), found \";transport=tcp\"".into()
            )
        );
        assert_eq!(
            bad("sip:pbx.example;;lr"),
            (17, "expected a URI parameter NAME or NAME=VALUE, found nothing".into())
        );
        assert_eq!(
            bad("sip:pbx example"),
            (
                8,
                "expected an IP address or a host name, or a SIP URI, without white space, found \"sip:pbx example\""
                    .into()
            )
        );
        assert_eq!(bad("sip:pbx\u{7}x"), (8, "must not hold control characters".into()));
        assert_eq!(bad("  sip:pbx.example:x"), (19, "expected a port number 1-65535, found \"x\"".into()));
    }
}
