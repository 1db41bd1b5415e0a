//! Where the agent's telemetry goes: a remote syslog collector (RFC 5424) and a Prometheus scrape
//! address. Both come from `[network]` in the file or from `run --syslog` / `--metrics`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyslogTransport {
    /// One message per datagram (RFC 5426), default port 514.
    Udp,
    /// Octet-counted frames on a TCP connection (RFC 6587 3.4.1), default port 601.
    Tcp,
    /// Octet-counted frames over TLS (RFC 5425), default port 6514.
    Tls,
}

impl SyslogTransport {
    /// `udp`, `tcp` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        }
    }

    /// The transport's registered port.
    pub fn default_port(self) -> u16 {
        match self {
            SyslogTransport::Udp => 514,
            SyslogTransport::Tcp => 601,
            SyslogTransport::Tls => 6514,
        }
    }
}

/// A collector: `udp://host[:port]`, `tcp://host[:port]` or `tls://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// How messages travel.
    pub transport: SyslogTransport,
    /// An IP literal (without brackets) or a host name; TLS verifies the certificate against it.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.transport.as_str(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.transport.as_str(), self.host, self.port)
        }
    }
}

impl FromStr for SyslogTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` is not a syslog URL (udp://, tcp:// or tls://HOST[:PORT])"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => SyslogTransport::Udp,
            "tcp" => SyslogTransport::Tcp,
            "tls" => SyslogTransport::Tls,
            other => return Err(format!("unknown syslog transport `{other}` (udp, tcp or tls)")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let bad_port = |p: &str| format!("bad port `{p}` in `{s}`");
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| format!("missing `]` in `{s}`"))?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| format!("`{h}` is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad_port(p))?.parse::<u16>().map_err(|_| bad_port(p))?),
            };
            (h, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(format!("write an IPv6 collector as [ADDR] or [ADDR]:PORT in `{s}`"))
                }
                Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad_port(p))?)),
                None => (rest, None),
            }
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !valid {
            return Err(format!("`{host}` is not an IP address or host name in `{s}`"));
        }
        let port = port.unwrap_or(transport.default_port());
        if port == 0 {
            return Err(format!("port 0 in `{s}`"));
        }
        Ok(SyslogTarget { transport, host: host.to_string(), port })
    }
}

/// The remote syslog sink's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// The collector.
    pub target: SyslogTarget,
    /// The facility code (0-23; default 16, local0).
    pub facility: u8,
    /// The CA certificates (PEM) a TLS collector must chain to; the system's trust store when unset.
    pub ca_file: Option<PathBuf>,
    /// How many messages may wait for the collector before new ones are dropped (default 1024).
    pub queue: usize,
}

impl SyslogConfig {
    /// A collector with the default facility (local0) and the system's trust store.
    pub fn new(target: SyslogTarget) -> Self {
        SyslogConfig { target, facility: 16, ca_file: None, queue: 1024 }
    }
}

/// Parses a facility name (`local0`..`local7`, `user`, `daemon`, ...) or its code 0-23.
pub fn parse_facility(s: &str) -> Result<u8, String> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
        "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    let l = s.trim().to_ascii_lowercase();
    if let Some(i) = NAMES.iter().position(|n| *n == l) {
        return Ok(i as u8);
    }
    l.parse::<u8>()
        .ok()
        .filter(|c| *c <= 23)
        .ok_or_else(|| format!("`{s}` is not a syslog facility (local0-local7, user, daemon, ... or 0-23)"))
}

/// Parses the metrics listening address, `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| format!("`{s}` is not ADDR:PORT (127.0.0.1:9464, [::1]:9464)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_urls_parse_with_default_ports() {
        let t = |s: &str| s.parse::<SyslogTarget>();
        assert_eq!(
            t("udp://10.0.0.5"),
            Ok(SyslogTarget { transport: SyslogTransport::Udp, host: "10.0.0.5".into(), port: 514 })
        );
        assert_eq!(t("tcp://logs.example.com").map(|x| x.port), Ok(601));
        assert_eq!(t("tls://logs.example.com:10514").map(|x| x.port), Ok(10514));
        assert_eq!(t("TLS://[::1]").map(|x| (x.host, x.port)), Ok(("::1".into(), 6514)));
        assert_eq!(t("udp://[::1]:5514").unwrap().to_string(), "udp://[::1]:5514");
        for bad in
            ["", "10.0.0.5", "http://x", "udp://", "udp://h:0", "udp://h:x", "udp://::1", "udp://[::1", "udp://a b"]
        {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn facilities_by_name_and_code() {
        assert_eq!(parse_facility("local0"), Ok(16));
        assert_eq!(parse_facility("LOCAL7"), Ok(23));
        assert_eq!(parse_facility("daemon"), Ok(3));
        assert_eq!(parse_facility("20"), Ok(20));
        assert!(parse_facility("24").is_err());
        assert!(parse_facility("local8").is_err());
    }

    #[test]
    fn metrics_addresses() {
        assert_eq!(parse_metrics_addr("127.0.0.1:9464").unwrap().port(), 9464);
        assert!(parse_metrics_addr("[::1]:9464").is_ok());
        for bad in ["", "9464", "localhost:9464", "127.0.0.1", "127.0.0.1:99999"] {
            assert!(parse_metrics_addr(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod file_tests {
    use crate::config::PhoneConfig;

    const BASE: &str = "[redundancy]\nprimary_server = \"127.0.0.1\"\nbackup_destination = false\n\n[network]\n";

    #[test]
    fn the_file_names_a_collector_facility_ca_file_and_metrics_address() {
        let text = format!(
            "{BASE}syslog = \"tls://logs.example.com\"\nsyslog_facility = \"local3\"\nsyslog_ca_file = \"ca.pem\"\n\
             metrics = \"127.0.0.1:9464\"\n"
        );
        let c = PhoneConfig::parse(&text, "/etc/sf/phone.toml").unwrap();
        let s = c.network.syslog.unwrap();
        assert_eq!(s.target.to_string(), "tls://logs.example.com:6514");
        assert_eq!(s.facility, 19);
        assert_eq!(s.ca_file.as_deref(), Some(std::path::Path::new("/etc/sf/ca.pem")));
        assert_eq!(c.network.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn a_bad_collector_or_address_names_the_field_and_line() {
        for (line, field) in [
            ("syslog = \"smtp://x\"", "network.syslog"),
            ("syslog = \"udp://x\"\nsyslog_facility = \"local9\"", "network.syslog_facility"),
            ("syslog_facility = \"local1\"", "network.syslog_facility"),
            ("metrics = \"9464\"", "network.metrics"),
        ] {
            let e = PhoneConfig::parse(&format!("{BASE}{line}\n"), "p.toml").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("p.toml:"), "{line}: {e}");
        }
    }
}
