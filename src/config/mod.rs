//! The phone's configuration file: the Redundancy template of seed 003 in TOML, validated into the
//! core's [`Config`](crate::core::Config) and the per-side service bundle.
//!
//! Every field is checked; an error names the file, the line and column, and the field, and nothing
//! that was running changes (a file is parsed and validated whole before anything uses it).
//!
//! ```toml
//! [redundancy]
//! primary_server = "pbx-a.example.com"   # IP address or FQDN
//! primary_port = 5060                    # omit with an FQDN to use DNS SRV
//! backup_destination = true
//! backup_destination_address = "pbx-b.example.com"
//! backup_destination_port = 5060
//! outbound_proxy = "sbc-a.example.com"
//! outbound_proxy_port = 5060
//! backup_outbound_proxy = "sbc-b.example.com"
//! backup_outbound_proxy_port = 5060
//! sip_keep_alive_mode = true
//! sip_keep_alive_interval = 15           # seconds
//! ```

pub mod apply;
pub mod telemetry;
pub mod uri;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU8;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::core::{self, AliveCodes, Duration, FailbackMode, InlineStr, Ladder, Side, Transport, MAX_ATTEMPTS};
use crate::files::{line_col, FileError, FileErrorKind, TomlText};
use crate::maintenance::calendar::{self, RecurringWindow};
use crate::maintenance::notice::NoticeFeed;
use crate::maintenance::schedule::Schedule;
use crate::maintenance::upgrade::UpgradeWindow;

/// A server or proxy address as written: an IP literal or a host name, with an optional port and
/// the transport its URI names (see [`uri`]: `sips:` is TLS, `;transport=tcp` TCP, a bare
/// `host[:port]` UDP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// An IP literal (IPv6 without brackets) or a fully qualified domain name. Over TLS, the name the
    /// server's certificate must carry (RFC 5922: the SIP domain, not an SRV target).
    pub host: String,
    /// The port; `None` means "look up SRV records" for a name, the transport's default port (5060,
    /// 5061 for TLS) for an IP literal.
    pub port: Option<u16>,
    /// UDP, TCP or TLS.
    pub transport: Transport,
}

impl Endpoint {
    /// `host` and `port` over UDP.
    pub fn new(host: impl Into<String>, port: Option<u16>) -> Endpoint {
        Endpoint { host: host.into(), port, transport: Transport::Udp }
    }
    /// The same endpoint over `transport`.
    pub fn over(mut self, transport: Transport) -> Endpoint {
        self.transport = transport;
        self
    }
    /// The IP address, if the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
    /// The socket address, if the host is a literal (default port 5060, 5061 over TLS).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port.unwrap_or(self.transport.default_port())))
    }
}

/// `host[:port]` over UDP (IPv6 in brackets); `sip:host[:port];transport=tcp` over TCP;
/// `sips:host[:port]` over TLS.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Udp => {}
            Transport::Tcp => f.write_str("sip:")?,
            Transport::Tls => f.write_str("sips:")?,
        }
        let bracket = self.host.contains(':');
        match (bracket, self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host)?,
            (true, None) => write!(f, "[{}]", self.host)?,
            (false, Some(p)) => write!(f, "{}:{p}", self.host)?,
            (false, None) => f.write_str(&self.host)?,
        }
        if self.transport == Transport::Tcp {
            f.write_str(";transport=tcp")?;
        }
        Ok(())
    }
}

/// One side's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideConfig {
    /// The PBX (Request-URI host and port).
    pub server: Endpoint,
    /// The outbound proxy, when SIP traffic goes through one; probes go there too.
    pub outbound_proxy: Option<Endpoint>,
    /// The VPN endpoint the phone uses with this side.
    pub vpn_endpoint: Option<String>,
    /// The operator cluster (or region) this server belongs to, for maintenance notices.
    pub cluster: Option<String>,
}

impl SideConfig {
    /// Where probes and SIP traffic go first: the outbound proxy if set, else the server.
    pub fn next_hop(&self) -> &Endpoint {
        self.outbound_proxy.as_ref().unwrap_or(&self.server)
    }
}

/// A phone-app URL with its primary and backup forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUrl {
    /// The app's name.
    pub name: String,
    /// The URL used with the primary.
    pub primary: String,
    /// The URL used with the backup.
    pub backup: String,
}

/// Everything that moves together on a switch, for one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Which side.
    pub side: Side,
    /// The SIP server (registrations, calls, BLF).
    pub sip_server: Endpoint,
    /// The outbound proxy, if any.
    pub outbound_proxy: Option<Endpoint>,
    /// Every phone-app URL, in this side's form: (name, url).
    pub apps: Vec<(String, String)>,
    /// The VPN endpoint, if any.
    pub vpn_endpoint: Option<String>,
}

/// Driver settings that are not failover policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The local address to bind probe sockets to (`0.0.0.0` by default, `::` for IPv6).
    pub bind: Option<IpAddr>,
    /// DSCP value for signalling (0..=63; default 26, AF31).
    pub dscp: u8,
    /// The resolver for FQDNs (`host:port`), replacing resolv.conf's nameservers; the system's
    /// nameservers when unset.
    pub dns_server: Option<SocketAddr>,
    /// Another resolv.conf than `/etc/resolv.conf` (search domains, options, nameservers).
    pub resolv_conf: Option<PathBuf>,
    /// Another hosts file than `/etc/hosts`.
    pub hosts_file: Option<PathBuf>,
    /// The control socket path.
    pub control_socket: Option<PathBuf>,
    /// Where the crash-safe state file lives.
    pub state_dir: Option<PathBuf>,
    /// The remote syslog collector, if any.
    pub syslog: Option<telemetry::SyslogConfig>,
    /// Where Prometheus scrapes `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// How servers reached over TLS are verified, and the client certificate, if any.
    pub tls: TlsConfig,
}

/// The TLS client settings of the flows to servers over TLS (`sips:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// The CA certificates (PEM) servers must chain to, as the phone is provisioned; the system's
    /// trust store when unset. The syslog sink uses it too when it has no CA file of its own.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM) for mutual TLS, with [`TlsConfig::client_key`].
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
    /// Accept a certificate that names the server's SIP domain only through a wildcard (RFC 5922
    /// forbids it: off by default).
    pub allow_wildcard: bool,
}

/// A validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The primary side.
    pub primary: SideConfig,
    /// The backup side, when Backup Destination is enabled.
    pub backup: Option<SideConfig>,
    /// The phone-app URLs.
    pub apps: Vec<AppUrl>,
    /// SIP Keep Alive Mode.
    pub keep_alive: bool,
    /// SIP Keep Alive Interval.
    pub interval: Duration,
    /// The retry ladder.
    pub ladder: Ladder,
    /// The alive-code policy.
    pub alive_codes: AliveCodes,
    /// The failback policy.
    pub failback: core::Failback,
    /// Optional faster detection.
    pub fast: core::FastDetection,
    /// How long before a planned window the phone may leave.
    pub planned_lead: Duration,
    /// The From user of probes.
    pub user: String,
    /// Keep-alive of idle TCP and TLS flows (RFC 5626 CRLF ping); zero for none.
    pub flow_keepalive: Duration,
    /// Driver settings.
    pub network: NetworkConfig,
    /// Planned maintenance settings.
    pub maintenance: MaintenanceConfig,
}

/// Planned maintenance settings: where the notices are and the recurring windows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MaintenanceConfig {
    /// The notice feed file (relative paths are taken from the configuration file's folder).
    pub notices: Option<PathBuf>,
    /// Recurring windows of the primary's server.
    pub primary_windows: Vec<RecurringWindow>,
    /// Recurring windows of the backup's server.
    pub backup_windows: Vec<RecurringWindow>,
    /// The phone's own upgrade window, in its local time zone (seed 004).
    pub upgrade: Option<UpgradeWindow>,
    /// A status page (Statuspage v2) whose scheduled maintenances are notices too.
    pub statuspage: Option<StatusPage>,
    /// A maintenance calendar (iCalendar) whose events are notices too.
    pub calendar: Option<CalendarFeed>,
}

/// Where a maintenance calendar is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarSource {
    /// A file, read again whenever it changes.
    File(PathBuf),
    /// An `http://` or `https://` URL, polled.
    Url(crate::maintenance::icalendar::CalendarUrl),
}

impl CalendarSource {
    /// `text` as a URL when it starts with `http://` or `https://`, else as a path (taken from `base`
    /// when relative and `base` is given). The error says what is wrong.
    pub fn parse(text: &str, base: Option<&std::path::Path>) -> Result<CalendarSource, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty: expected a file path or an http(s):// URL".into());
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return crate::maintenance::icalendar::CalendarUrl::parse(t).map(CalendarSource::Url);
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(format!("`{t}`: the scheme must be https or http, not `{scheme}` (or give a file path)"));
        }
        let p = PathBuf::from(t);
        Ok(CalendarSource::File(match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        }))
    }
}

impl fmt::Display for CalendarSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarSource::File(p) => write!(f, "{}", p.display()),
            CalendarSource::Url(u) => u.fmt(f),
        }
    }
}

/// A maintenance calendar to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarFeed {
    /// The file or URL.
    pub source: CalendarSource,
    /// How often a URL is polled (default 300 s, at least 1 s); a file is looked at with the notice file.
    pub poll: std::time::Duration,
    /// The CA certificates an `https://` calendar must chain to; the system's store when absent.
    pub ca_file: Option<PathBuf>,
}

impl CalendarFeed {
    /// The poll interval of a URL when none is configured.
    pub const DEFAULT_POLL: std::time::Duration = std::time::Duration::from_secs(300);
}

/// A status page to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPage {
    /// The page's base URL.
    pub url: crate::maintenance::statuspage::PageUrl,
    /// How often to poll it (default 60 s, at least 1 s).
    pub poll: std::time::Duration,
    /// The CA certificates an `https://` page must chain to; the system's store when absent.
    pub ca_file: Option<PathBuf>,
}

impl StatusPage {
    /// The poll interval when none is configured.
    pub const DEFAULT_POLL: std::time::Duration = std::time::Duration::from_secs(60);
}

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    redundancy: Spanned<RawRedundancy>,
    #[serde(default)]
    primary: Option<Spanned<RawSide>>,
    #[serde(default)]
    backup: Option<Spanned<RawSide>>,
    #[serde(default)]
    app: Vec<Spanned<RawApp>>,
    #[serde(default)]
    advanced: Option<Spanned<RawAdvanced>>,
    #[serde(default)]
    network: Option<Spanned<RawNetwork>>,
    #[serde(default)]
    maintenance: Option<Spanned<RawMaintenance>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    notices: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    primary_windows: Option<Vec<Spanned<String>>>,
    backup_windows: Option<Vec<Spanned<String>>>,
    upgrade_window: Option<Spanned<String>>,
    upgrade_time_zone: Option<Spanned<String>>,
    upgrade_buffer_h: Option<Spanned<i64>>,
    statuspage: Option<Spanned<String>>,
    statuspage_poll: Option<Spanned<i64>>,
    statuspage_ca_file: Option<Spanned<String>>,
    calendar: Option<Spanned<String>>,
    calendar_poll: Option<Spanned<i64>>,
    calendar_ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedundancy {
    primary_server: Spanned<String>,
    primary_port: Option<Spanned<i64>>,
    #[serde(default)]
    backup_destination: Option<Spanned<bool>>,
    backup_destination_address: Option<Spanned<String>>,
    backup_destination_port: Option<Spanned<i64>>,
    outbound_proxy: Option<Spanned<String>>,
    outbound_proxy_port: Option<Spanned<i64>>,
    backup_outbound_proxy: Option<Spanned<String>>,
    backup_outbound_proxy_port: Option<Spanned<i64>>,
    sip_keep_alive_mode: Option<Spanned<bool>>,
    sip_keep_alive_interval: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSide {
    vpn_endpoint: Option<Spanned<String>>,
    cluster: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Spanned<String>,
    primary: Spanned<String>,
    backup: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvanced {
    ladder_ms: Option<Spanned<Vec<Spanned<i64>>>>,
    alive_codes: Option<Vec<Spanned<String>>>,
    failback: Option<Spanned<String>>,
    failback_after: Option<Spanned<i64>>,
    failback_spread_s: Option<Spanned<i64>>,
    fast_refused: Option<Spanned<bool>>,
    fast_transaction_failure: Option<Spanned<bool>>,
    planned_lead_s: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    flow_keepalive: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    bind: Option<Spanned<String>>,
    dscp: Option<Spanned<i64>>,
    dns_server: Option<Spanned<String>>,
    control_socket: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    syslog: Option<Spanned<String>>,
    syslog_facility: Option<Spanned<String>>,
    syslog_ca_file: Option<Spanned<String>>,
    metrics: Option<Spanned<String>>,
    tls_ca_file: Option<Spanned<String>>,
    tls_client_cert: Option<Spanned<String>>,
    tls_client_key: Option<Spanned<String>>,
    tls_allow_wildcard: Option<Spanned<bool>>,
}

/// Fields whose type is better said with its unit, for type errors.
const TYPES: &[(&str, &str)] = &[
    ("redundancy.primary_port", "an integer port number"),
    ("redundancy.backup_destination_port", "an integer port number"),
    ("redundancy.outbound_proxy_port", "an integer port number"),
    ("redundancy.backup_outbound_proxy_port", "an integer port number"),
    ("redundancy.sip_keep_alive_interval", "an integer number of seconds"),
    ("advanced.ladder_ms", "an array of waits in milliseconds"),
    ("advanced.ladder_ms[]", "an integer number of milliseconds"),
    ("advanced.alive_codes", "an array of status codes and ranges such as \"200-499\" or \"!408\""),
    ("advanced.failback_after", "an integer number of cycles"),
    ("advanced.failback_spread_s", "an integer number of seconds"),
    ("advanced.planned_lead_s", "an integer number of seconds"),
    ("advanced.flow_keepalive", "an integer number of seconds (0 for none)"),
    ("network.dscp", "an integer DSCP value"),
    ("maintenance.primary_windows", "an array of windows such as \"Sat 17:00-22:00\""),
    ("maintenance.backup_windows", "an array of windows such as \"Sat 17:00-22:00\""),
    ("maintenance.upgrade_buffer_h", "an integer number of hours"),
    ("maintenance.statuspage_poll", "an integer number of seconds"),
    ("maintenance.calendar_poll", "an integer number of seconds"),
];

const FAILBACK_MODES: &[&str] = &["auto", "manual", "never"];

impl PhoneConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<PhoneConfig, FileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, &e))?;
        Self::parse(&text, path)
    }

    /// Validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<PhoneConfig, FileError> {
        let cx = TomlText::new(path.as_ref(), text).with_types(TYPES);
        Self::from_raw(cx.deserialize()?, &cx)
    }

    fn from_raw(raw: RawFile, cx: &TomlText<'_>) -> Result<PhoneConfig, FileError> {
        let r = raw.redundancy.into_inner();
        let primary_server =
            endpoint(cx, &r.primary_server, r.primary_port.as_ref(), "redundancy.primary_server")?.endpoint;
        let outbound_proxy = opt_endpoint(
            cx,
            r.outbound_proxy.as_ref(),
            r.outbound_proxy_port.as_ref(),
            "redundancy.outbound_proxy",
            primary_server.transport,
        )?;
        let backup_on = r.backup_destination.as_ref().is_some_and(|b| *b.get_ref());
        let (p_side, b_side) = (raw.primary.map(Spanned::into_inner), raw.backup.map(Spanned::into_inner));
        let primary = SideConfig {
            server: primary_server,
            outbound_proxy,
            vpn_endpoint: opt_text(cx, p_side.as_ref().and_then(|s| s.vpn_endpoint.as_ref()), "primary.vpn_endpoint")?,
            cluster: opt_text(cx, p_side.as_ref().and_then(|s| s.cluster.as_ref()), "primary.cluster")?,
        };
        let backup = if backup_on {
            let addr = r.backup_destination_address.as_ref().ok_or_else(|| {
                cx.error(
                    r.backup_destination.as_ref().map(|b| b.span()),
                    "redundancy.backup_destination_address",
                    FileErrorKind::Conflict("Backup Destination is enabled but has no address".into()),
                )
            })?;
            let server =
                endpoint(cx, addr, r.backup_destination_port.as_ref(), "redundancy.backup_destination_address")?
                    .endpoint;
            let transport = server.transport;
            Some(SideConfig {
                server,
                outbound_proxy: opt_endpoint(
                    cx,
                    r.backup_outbound_proxy.as_ref(),
                    r.backup_outbound_proxy_port.as_ref(),
                    "redundancy.backup_outbound_proxy",
                    transport,
                )?,
                vpn_endpoint: opt_text(
                    cx,
                    b_side.as_ref().and_then(|s| s.vpn_endpoint.as_ref()),
                    "backup.vpn_endpoint",
                )?,
                cluster: opt_text(cx, b_side.as_ref().and_then(|s| s.cluster.as_ref()), "backup.cluster")?,
            })
        } else {
            None
        };
        let keep_alive = r.sip_keep_alive_mode.as_ref().is_none_or(|v| *v.get_ref());
        let interval = int_in(cx, r.sip_keep_alive_interval.as_ref(), "redundancy.sip_keep_alive_interval", 1, 3600)?
            .map_or(core::Config::DEFAULT_INTERVAL, |s| Duration::from_secs(s as u64));

        let mut apps: Vec<AppUrl> = Vec::new();
        let mut app_lines: Vec<usize> = Vec::new();
        for (i, a) in raw.app.iter().enumerate() {
            let a = a.get_ref();
            let field = |f: &str| format!("app[{i}].{f}");
            let name = a.name.get_ref().trim();
            if name.is_empty() {
                return Err(cx.at(&a.name, &field("name"), FileErrorKind::Empty));
            }
            if let Some(first) = apps.iter().position(|x| x.name == name) {
                let kind =
                    FileErrorKind::Duplicate { value: name.to_string(), first_line: app_lines.get(first).copied() };
                return Err(cx.at(&a.name, &field("name"), kind));
            }
            check_url(cx, &a.primary, &field("primary"))?;
            check_url(cx, &a.backup, &field("backup"))?;
            app_lines.push(line_col(cx.text(), a.name.span().start).0);
            apps.push(AppUrl {
                name: name.to_string(),
                primary: a.primary.get_ref().clone(),
                backup: a.backup.get_ref().clone(),
            });
        }

        let adv = raw.advanced.map(Spanned::into_inner);
        // Everything not in the file keeps the core's default.
        let mut ladder = Ladder::DEFAULT;
        let mut alive_codes = AliveCodes::DEFAULT;
        let mut failback = core::Failback::DEFAULT;
        let mut fast = core::FastDetection::DEFAULT;
        let mut planned_lead = core::Config::DEFAULT_PLANNED_LEAD;
        let mut user = core::Config::DEFAULT_USER.to_string();
        let mut flow_keepalive = Duration::ZERO;
        if let Some(a) = &adv {
            if let Some(l) = &a.ladder_ms {
                let waits = l.get_ref();
                if waits.is_empty() || waits.len() > MAX_ATTEMPTS {
                    let kind = FileErrorKind::OutOfRange {
                        value: format!("{} waits", waits.len()),
                        allowed: format!("1..={MAX_ATTEMPTS} waits"),
                    };
                    return Err(cx.at(l, "advanced.ladder_ms", kind));
                }
                let mut ms = Vec::with_capacity(waits.len());
                for (i, w) in waits.iter().enumerate() {
                    let field = format!("advanced.ladder_ms[{i}]");
                    let v = int_in(cx, Some(w), &field, 1, 60_000)?.unwrap_or(1);
                    ms.push(Duration::from_millis(v as u64));
                }
                // Every wait is at least 1 ms and there are 1 to MAX_ATTEMPTS of them.
                ladder = Ladder::new(&ms).unwrap_or(ladder);
            }
            if let Some(codes) = &a.alive_codes {
                let items: Vec<String> = codes.iter().map(|c| c.get_ref().clone()).collect();
                alive_codes = parse_alive_codes(&items).map_err(|(i, kind)| {
                    let at = codes.get(i).map(|c| c.span());
                    cx.error(at, &format!("advanced.alive_codes[{i}]"), kind)
                })?;
            }
            if let Some(m) = &a.failback {
                failback.mode = match m.get_ref().as_str() {
                    "auto" => FailbackMode::Auto,
                    "manual" => FailbackMode::Manual,
                    "never" => FailbackMode::Never,
                    other => {
                        let kind = FileErrorKind::NotOneOf { value: other.to_string(), allowed: FAILBACK_MODES };
                        return Err(cx.at(m, "advanced.failback", kind));
                    }
                };
            }
            let after = int_in(cx, a.failback_after.as_ref(), "advanced.failback_after", 1, 100)?;
            if let Some(n) = after.and_then(|n| u8::try_from(n).ok()).and_then(NonZeroU8::new) {
                failback.after_cycles = n;
            }
            if let Some(s) = int_in(cx, a.failback_spread_s.as_ref(), "advanced.failback_spread_s", 0, 86_400)? {
                failback.spread = Duration::from_secs(s as u64);
            }
            fast.refused_ends_attempt = a.fast_refused.as_ref().is_some_and(|v| *v.get_ref());
            fast.transaction_failure_probes = a.fast_transaction_failure.as_ref().is_some_and(|v| *v.get_ref());
            if let Some(s) = int_in(cx, a.planned_lead_s.as_ref(), "advanced.planned_lead_s", 0, 7 * 86_400)? {
                planned_lead = Duration::from_secs(s as u64);
            }
            if let Some(s) = int_in(cx, a.flow_keepalive.as_ref(), "advanced.flow_keepalive", 0, 3600)? {
                flow_keepalive = Duration::from_secs(s as u64);
            }
            if let Some(u) = &a.user {
                if InlineStr::<{ core::config::MAX_USER_LEN }>::new(u.get_ref()).is_none() || u.get_ref().is_empty() {
                    let kind = FileErrorKind::Invalid {
                        value: u.get_ref().clone(),
                        expected: "1-32 characters allowed in a SIP user part".into(),
                    };
                    return Err(cx.at(u, "advanced.user", kind));
                }
                user = u.get_ref().clone();
            }
        }
        if ladder.total() > interval {
            let span = adv.as_ref().and_then(|a| a.ladder_ms.as_ref()).map(|l| l.span());
            let span = span.or_else(|| r.sip_keep_alive_interval.as_ref().map(|s| s.span()));
            return Err(cx.error(
                span,
                "advanced.ladder_ms",
                FileErrorKind::Conflict(format!(
                    "the ladder's waits ({}) add up to more than the keep-alive interval ({interval})",
                    ladder.total()
                )),
            ));
        }

        let net = raw.network.map(Spanned::into_inner);
        let mut network = NetworkConfig {
            bind: None,
            dscp: 26,
            dns_server: None,
            resolv_conf: None,
            hosts_file: None,
            control_socket: None,
            state_dir: None,
            syslog: None,
            metrics: None,
            tls: TlsConfig::default(),
        };
        if let Some(n) = &net {
            if let Some(b) = &n.bind {
                network.bind = Some(b.get_ref().parse().map_err(|_| invalid(cx, b, "network.bind", "an IP address"))?);
            }
            if let Some(d) = int_in(cx, n.dscp.as_ref(), "network.dscp", 0, 63)? {
                network.dscp = d as u8;
            }
            if let Some(d) = &n.dns_server {
                let s = d.get_ref();
                let parsed =
                    s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)));
                network.dns_server =
                    Some(parsed.ok_or_else(|| invalid(cx, d, "network.dns_server", "an IP address or IP:port"))?);
            }
            network.control_socket = n.control_socket.as_ref().map(|s| PathBuf::from(s.get_ref()));
            network.state_dir = n.state_dir.as_ref().map(|s| PathBuf::from(s.get_ref()));
            network.syslog = syslog_config(cx, n)?;
            network.tls = tls_config(cx, n)?;
            if let Some(m) = &n.metrics {
                network.metrics = Some(
                    telemetry::parse_metrics_addr(m.get_ref())
                        .map_err(|_| invalid(cx, m, "network.metrics", "ADDR:PORT"))?,
                );
            }
        }

        let maintenance = match raw.maintenance.map(Spanned::into_inner) {
            Some(m) => maintenance_config(cx, &m)?,
            None => MaintenanceConfig::default(),
        };

        Ok(PhoneConfig {
            path: cx.path().to_path_buf(),
            maintenance,
            primary,
            backup,
            apps,
            keep_alive,
            interval,
            ladder,
            alive_codes,
            failback,
            fast,
            planned_lead,
            user,
            flow_keepalive,
            network,
        })
    }

    /// The planned-maintenance schedule: the clusters of both sides, the notice feed (read now) and
    /// the recurring windows.
    pub fn schedule(&self) -> Result<Schedule, FileError> {
        let feed = match &self.maintenance.notices {
            Some(p) => NoticeFeed::load(p)?,
            None => NoticeFeed::default(),
        };
        Ok(Schedule {
            primary_cluster: self.primary.cluster.clone(),
            backup_cluster: self.backup.as_ref().and_then(|b| b.cluster.clone()),
            feed,
            primary_windows: self.maintenance.primary_windows.clone(),
            backup_windows: self.maintenance.backup_windows.clone(),
        })
    }

    /// The settings of `side`, if it is configured.
    pub fn side(&self, side: Side) -> Option<&SideConfig> {
        match side {
            Side::Primary => Some(&self.primary),
            Side::Backup => self.backup.as_ref(),
        }
    }

    /// The bundle the phone applies when `side` is in force. For the backup without a backup
    /// destination, the primary's.
    pub fn bundle(&self, side: Side) -> Bundle {
        let s = self.side(side).unwrap_or(&self.primary);
        let side = if self.backup.is_some() { side } else { Side::Primary };
        Bundle {
            side,
            sip_server: s.server.clone(),
            outbound_proxy: s.outbound_proxy.clone(),
            apps: self
                .apps
                .iter()
                .map(|a| (a.name.clone(), if side == Side::Primary { a.primary.clone() } else { a.backup.clone() }))
                .collect(),
            vpn_endpoint: s.vpn_endpoint.clone(),
        }
    }

    /// The core's configuration, given where each side's next hop resolved to (the driver resolves
    /// names; IP literals can be taken from [`Endpoint::socket_addr`]).
    pub fn core_config(&self, primary_hop: SocketAddr, backup_hop: Option<SocketAddr>) -> core::Config {
        let server = |s: &SideConfig, hop: SocketAddr| {
            let mut c = core::ServerConfig::new(hop, &s.server.host).over(s.next_hop().transport);
            c.uri_port = s.server.port;
            c
        };
        let mut c = core::Config::new(primary_hop, &self.primary.server.host);
        c.primary = server(&self.primary, primary_hop);
        c.backup = match (&self.backup, backup_hop) {
            (Some(b), Some(hop)) => Some(server(b, hop)),
            _ => None,
        };
        c.keep_alive = self.keep_alive;
        c.interval = self.interval;
        c.ladder = self.ladder;
        c.alive_codes = self.alive_codes;
        c.failback = self.failback;
        c.fast = self.fast;
        c.planned_lead = self.planned_lead;
        c.user = InlineStr::new(&self.user).unwrap_or(c.user);
        c.flow_keepalive = self.flow_keepalive;
        c
    }

    /// The core's configuration when every next hop is an IP literal; `None` if a name needs DNS.
    pub fn core_config_literal(&self) -> Option<core::Config> {
        let p = self.primary.next_hop().socket_addr()?;
        let b = match &self.backup {
            Some(b) => Some(b.next_hop().socket_addr()?),
            None => None,
        };
        Some(self.core_config(p, b))
    }
}

fn maintenance_config(cx: &TomlText<'_>, m: &RawMaintenance) -> Result<MaintenanceConfig, FileError> {
    // A time zone in the file is checked where it is written, before the rules that use it.
    let zone = |t: &Spanned<String>, field: &str| {
        calendar::time_zone(t.get_ref()).map(|_| ()).map_err(|e| cx.at(t, field, e.in_file().0))
    };
    let tz = m.time_zone.as_ref();
    if let Some(t) = tz {
        zone(t, "maintenance.time_zone")?;
    }
    let tz_name = tz.map_or("UTC", |t| t.get_ref().as_str());
    let windows = |v: Option<&Vec<Spanned<String>>>, field: &str| -> Result<Vec<RecurringWindow>, FileError> {
        v.map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
            .map(|(i, w)| window(cx, w, tz_name, &format!("{field}[{i}]")))
            .collect()
    };
    let primary_windows = windows(m.primary_windows.as_ref(), "maintenance.primary_windows")?;
    let backup_windows = windows(m.backup_windows.as_ref(), "maintenance.backup_windows")?;
    let upgrade = match &m.upgrade_window {
        None => None,
        Some(w) => {
            let utz = m.upgrade_time_zone.as_ref().ok_or_else(|| {
                let why = "an upgrade window needs the phone's local time zone";
                cx.at(w, "maintenance.upgrade_time_zone", FileErrorKind::Conflict(why.into()))
            })?;
            zone(utz, "maintenance.upgrade_time_zone")?;
            let mut up = UpgradeWindow::new(window(cx, w, utz.get_ref(), "maintenance.upgrade_window")?);
            if let Some(h) = int_in(cx, m.upgrade_buffer_h.as_ref(), "maintenance.upgrade_buffer_h", 0, 24 * 366)? {
                up = up.with_buffer(jiff::SignedDuration::from_hours(h)).map_err(|e| {
                    let span = m.upgrade_buffer_h.as_ref().map(|b| b.span());
                    cx.error(span, "maintenance.upgrade_buffer_h", FileErrorKind::Conflict(e.to_string()))
                })?;
            }
            Some(up)
        }
    };
    let file = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<PathBuf>, FileError> {
        match v {
            None => Ok(None),
            Some(n) if n.get_ref().trim().is_empty() => Err(cx.at(n, field, FileErrorKind::Empty)),
            Some(n) => {
                let p = PathBuf::from(n.get_ref());
                Ok(Some(if p.is_relative() { cx.path().parent().map_or(p.clone(), |d| d.join(&p)) } else { p }))
            }
        }
    };
    let notices = file(&m.notices, "maintenance.notices")?;
    let statuspage = match &m.statuspage {
        None => {
            for (v, f) in [
                (m.statuspage_poll.as_ref().map(|v| v.span()), "maintenance.statuspage_poll"),
                (m.statuspage_ca_file.as_ref().map(|v| v.span()), "maintenance.statuspage_ca_file"),
            ] {
                if let Some(span) = v {
                    return Err(cx.error(
                        Some(span),
                        f,
                        FileErrorKind::Conflict("needs maintenance.statuspage".into()),
                    ));
                }
            }
            None
        }
        Some(u) => {
            let url = crate::maintenance::statuspage::PageUrl::parse(u.get_ref()).map_err(|why| {
                cx.at(
                    u,
                    "maintenance.statuspage",
                    FileErrorKind::Invalid {
                        value: u.get_ref().clone(),
                        expected: format!("a status page's https:// URL ({why})"),
                    },
                )
            })?;
            let poll = int_in(cx, m.statuspage_poll.as_ref(), "maintenance.statuspage_poll", 1, 24 * 3600)?
                .map_or(StatusPage::DEFAULT_POLL, |s| std::time::Duration::from_secs(s as u64));
            Some(StatusPage { url, poll, ca_file: file(&m.statuspage_ca_file, "maintenance.statuspage_ca_file")? })
        }
    };
    let calendar = match &m.calendar {
        None => {
            if let Some(v) = &m.calendar_poll {
                return Err(cx.at(
                    v,
                    "maintenance.calendar_poll",
                    FileErrorKind::Conflict("needs maintenance.calendar".into()),
                ));
            }
            if let Some(v) = &m.calendar_ca_file {
                return Err(cx.at(
                    v,
                    "maintenance.calendar_ca_file",
                    FileErrorKind::Conflict("needs maintenance.calendar".into()),
                ));
            }
            None
        }
        Some(c) => {
            let source = CalendarSource::parse(c.get_ref(), cx.path().parent()).map_err(|why| {
                let kind = FileErrorKind::Invalid {
                    value: c.get_ref().clone(),
                    expected: format!("a calendar file's path or an https:// URL ({why})"),
                };
                cx.at(c, "maintenance.calendar", kind)
            })?;
            if let CalendarSource::File(_) = source {
                let why = "only for a calendar at an http(s):// URL; a file is read again when it changes";
                if let Some(v) = &m.calendar_poll {
                    return Err(cx.at(v, "maintenance.calendar_poll", FileErrorKind::Conflict(why.into())));
                }
                if let Some(v) = &m.calendar_ca_file {
                    return Err(cx.at(v, "maintenance.calendar_ca_file", FileErrorKind::Conflict(why.into())));
                }
            }
            let poll = int_in(cx, m.calendar_poll.as_ref(), "maintenance.calendar_poll", 1, 24 * 3600)?
                .map_or(CalendarFeed::DEFAULT_POLL, |s| std::time::Duration::from_secs(s as u64));
            Some(CalendarFeed { source, poll, ca_file: file(&m.calendar_ca_file, "maintenance.calendar_ca_file")? })
        }
    };
    Ok(MaintenanceConfig { notices, primary_windows, backup_windows, upgrade, statuspage, calendar })
}

/// `network.syslog` with its facility and CA file (relative to the file's folder).
fn syslog_config(cx: &TomlText<'_>, n: &RawNetwork) -> Result<Option<telemetry::SyslogConfig>, FileError> {
    let Some(url) = &n.syslog else {
        for (v, f) in [(&n.syslog_facility, "network.syslog_facility"), (&n.syslog_ca_file, "network.syslog_ca_file")] {
            if let Some(v) = v {
                return Err(cx.at(v, f, FileErrorKind::Conflict("needs network.syslog".into())));
            }
        }
        return Ok(None);
    };
    let target = url
        .get_ref()
        .parse()
        .map_err(|_: String| invalid(cx, url, "network.syslog", "udp://, tcp:// or tls://HOST[:PORT]"))?;
    let mut c = telemetry::SyslogConfig::new(target);
    if let Some(f) = &n.syslog_facility {
        c.facility = telemetry::parse_facility(f.get_ref())
            .map_err(|_| invalid(cx, f, "network.syslog_facility", "local0-local7, user, daemon, ... or 0-23"))?;
    }
    if let Some(ca) = &n.syslog_ca_file {
        c.ca_file = Some(file_path(cx, ca, "network.syslog_ca_file")?);
    }
    Ok(Some(c))
}

/// A path written in the file, taken from the file's folder when relative; an empty one is an error.
fn file_path(cx: &TomlText<'_>, v: &Spanned<String>, field: &str) -> Result<PathBuf, FileError> {
    if v.get_ref().trim().is_empty() {
        return Err(cx.at(v, field, FileErrorKind::Empty));
    }
    let p = PathBuf::from(v.get_ref());
    Ok(if p.is_relative() { cx.path().parent().map_or(p.clone(), |d| d.join(&p)) } else { p })
}

/// `network.tls_*`: the CA file, the client certificate and its key (both or neither), wildcards.
fn tls_config(cx: &TomlText<'_>, n: &RawNetwork) -> Result<TlsConfig, FileError> {
    let path = |v: &Option<Spanned<String>>, f: &str| v.as_ref().map(|v| file_path(cx, v, f)).transpose();
    let tls = TlsConfig {
        ca_file: path(&n.tls_ca_file, "network.tls_ca_file")?,
        client_cert: path(&n.tls_client_cert, "network.tls_client_cert")?,
        client_key: path(&n.tls_client_key, "network.tls_client_key")?,
        allow_wildcard: n.tls_allow_wildcard.as_ref().is_some_and(|v| *v.get_ref()),
    };
    match (&n.tls_client_cert, &n.tls_client_key) {
        (Some(c), None) => Err(cx.at(
            c,
            "network.tls_client_key",
            FileErrorKind::Conflict("a client certificate needs its key".into()),
        )),
        (None, Some(k)) => Err(cx.at(
            k,
            "network.tls_client_cert",
            FileErrorKind::Conflict("a client key needs its certificate".into()),
        )),
        _ => Ok(tls),
    }
}

/// A recurring window written as a string in the file, in the time zone named `tz`; an error points at
/// the token at fault inside the string.
fn window(cx: &TomlText<'_>, w: &Spanned<String>, tz: &str, field: &str) -> Result<RecurringWindow, FileError> {
    RecurringWindow::parse(w.get_ref(), tz).map_err(|e| match e.in_file() {
        (kind, Some(column)) => cx.in_string(w, column, field, kind),
        (kind, None) => cx.at(w, field, kind),
    })
}

fn int_in(
    cx: &TomlText<'_>,
    v: Option<&Spanned<i64>>,
    field: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, FileError> {
    match v {
        None => Ok(None),
        Some(s) if (min..=max).contains(s.get_ref()) => Ok(Some(*s.get_ref())),
        Some(s) => Err(cx.at(
            s,
            field,
            FileErrorKind::OutOfRange { value: s.get_ref().to_string(), allowed: format!("{min}..={max}") },
        )),
    }
}

fn invalid(cx: &TomlText<'_>, v: &Spanned<String>, field: &str, expected: &str) -> FileError {
    cx.at(v, field, FileErrorKind::Invalid { value: v.get_ref().clone(), expected: expected.to_string() })
}

fn opt_text(cx: &TomlText<'_>, v: Option<&Spanned<String>>, field: &str) -> Result<Option<String>, FileError> {
    match v {
        None => Ok(None),
        Some(s) if s.get_ref().trim().is_empty() => Err(cx.at(s, field, FileErrorKind::Empty)),
        Some(s) if s.get_ref().chars().any(char::is_control) => Err(cx.at(s, field, FileErrorKind::ControlCharacters)),
        Some(s) => Ok(Some(s.get_ref().trim().to_string())),
    }
}

/// A server or proxy (`host[:port]` or a SIP URI, see [`uri`]) and its separate port field; an error
/// points at the part of the string at fault.
fn endpoint(
    cx: &TomlText<'_>,
    host: &Spanned<String>,
    port: Option<&Spanned<i64>>,
    field: &str,
) -> Result<uri::Written, FileError> {
    let mut w = uri::parse(host.get_ref()).map_err(|e| cx.in_string(host, e.column, field, e.kind))?;
    let port_field = if let Some(f) = field.strip_suffix("_server") {
        format!("{f}_port")
    } else if let Some(f) = field.strip_suffix("_address") {
        format!("{f}_port")
    } else {
        format!("{field}_port")
    };
    if let Some(p) = int_in(cx, port, &port_field, 1, 65_535)?.map(|p| p as u16) {
        if let (Some(spanned), Some(given)) = (port, w.endpoint.port.filter(|g| *g != p)) {
            let why = format!("`{field}` gives the port {given} already");
            return Err(cx.at(spanned, &port_field, FileErrorKind::Conflict(why)));
        }
        w.endpoint.port = Some(p);
    }
    Ok(w)
}

/// An outbound proxy for a server reached over `transport`: a proxy written as a bare
/// `host[:port]` takes the server's transport, one written as a URI keeps its own.
fn opt_endpoint(
    cx: &TomlText<'_>,
    host: Option<&Spanned<String>>,
    port: Option<&Spanned<i64>>,
    field: &str,
    transport: Transport,
) -> Result<Option<Endpoint>, FileError> {
    match host {
        Some(h) if !h.get_ref().trim().is_empty() => {
            let w = endpoint(cx, h, port, field)?;
            Ok(Some(if w.uri { w.endpoint } else { w.endpoint.over(transport) }))
        }
        _ => {
            if let Some(p) = port {
                let why = format!("a port is given but `{field}` is not");
                return Err(cx.at(p, &format!("{field}_port"), FileErrorKind::Conflict(why)));
            }
            Ok(None)
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 253
/// characters, not all-numeric at the top.
fn is_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && !h.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

fn check_url(cx: &TomlText<'_>, u: &Spanned<String>, field: &str) -> Result<(), FileError> {
    let s = u.get_ref();
    let ok = ["http://", "https://", "sip:", "sips:"].iter().any(|p| s.starts_with(p))
        && s.len() > 8
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(cx, u, field, "an http(s) or sip URL"))
    }
}

/// Parses an alive-code policy: entries such as `"200-499"`, `"503"` to add and `"!408"` to remove,
/// applied in order to an empty set. An error gives the index of the entry at fault and what is wrong.
pub fn parse_alive_codes(items: &[String]) -> Result<AliveCodes, (usize, FileErrorKind)> {
    let mut set = AliveCodes::NONE;
    for (i, item) in items.iter().enumerate() {
        let t = item.trim();
        let (neg, body) = match t.strip_prefix('!') {
            Some(b) => (true, b.trim()),
            None => (false, t),
        };
        let (from, to) = match body.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (body, body),
        };
        let parse = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=699).contains(c));
        let (Some(from), Some(to)) = (parse(from), parse(to)) else {
            let expected = "a status code or range within 100-699, such as \"503\", \"200-499\" or \"!408\"";
            return Err((i, FileErrorKind::Invalid { value: item.clone(), expected: expected.into() }));
        };
        if from > to {
            return Err((i, FileErrorKind::Conflict(format!("`{item}` is an empty range"))));
        }
        for c in from..=to {
            set = if neg { set.without(c) } else { set.with_range(c, c) };
        }
    }
    Ok(set)
}
