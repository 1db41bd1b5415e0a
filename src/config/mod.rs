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
pub mod cli;
pub mod telemetry;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::core::{self, AliveCodes, Duration, FailbackMode, InlineStr, Ladder, Side, MAX_ATTEMPTS};
use crate::maintenance::calendar::{self, RecurringWindow};
use crate::maintenance::notice::{FeedError, NoticeFeed};
use crate::maintenance::schedule::Schedule;
use crate::maintenance::upgrade::UpgradeWindow;

/// A configuration file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when the error has a place in the file.
    pub line: Option<usize>,
    /// 1-based column, with `line`.
    pub column: Option<usize>,
    /// The field (dotted path such as `redundancy.primary_port`), when one is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigFileError {}

/// A server or proxy address as written: an IP literal or a host name, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// An IP literal (IPv6 without brackets) or a fully qualified domain name.
    pub host: String,
    /// The port; `None` means "look up SRV records" for a name, 5060 for an IP literal.
    pub port: Option<u16>,
}

impl Endpoint {
    /// The IP address, if the host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
    /// The socket address, if the host is a literal (default port 5060).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = self.host.contains(':');
        match (bracket, self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (true, None) => write!(f, "[{}]", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (false, None) => f.write_str(&self.host),
        }
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
    /// The resolver for FQDNs (`host:port`); the system's first name server when unset.
    pub dns_server: Option<SocketAddr>,
    /// The control socket path.
    pub control_socket: Option<PathBuf>,
    /// Where the crash-safe state file lives.
    pub state_dir: Option<PathBuf>,
    /// The remote syslog collector, if any.
    pub syslog: Option<telemetry::SyslogConfig>,
    /// Where Prometheus scrapes `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
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
    primary_windows: Option<Spanned<Vec<String>>>,
    backup_windows: Option<Spanned<Vec<String>>>,
    upgrade_window: Option<Spanned<String>>,
    upgrade_time_zone: Option<Spanned<String>>,
    upgrade_buffer_h: Option<Spanned<i64>>,
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
    ladder_ms: Option<Spanned<Vec<i64>>>,
    alive_codes: Option<Spanned<Vec<String>>>,
    failback: Option<Spanned<String>>,
    failback_after: Option<Spanned<i64>>,
    failback_spread_s: Option<Spanned<i64>>,
    fast_refused: Option<Spanned<bool>>,
    fast_transaction_failure: Option<Spanned<bool>>,
    planned_lead_s: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
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
}

/// Turns byte spans into the error's place.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, field: &str, message: impl Into<String>) -> ConfigFileError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigFileError {
            path: self.path.to_path_buf(),
            line,
            column,
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
        }
    }
    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> ConfigFileError {
        self.err(Some(v.span()), field, message)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl PhoneConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<PhoneConfig, ConfigFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<PhoneConfig, ConfigFileError> {
        let cx = Ctx { path: path.as_ref(), text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            let field = field_from_message(&msg);
            cx.err(e.span(), &field, msg)
        })?;
        Self::from_raw(raw, &cx)
    }

    fn from_raw(raw: RawFile, cx: &Ctx<'_>) -> Result<PhoneConfig, ConfigFileError> {
        let r = raw.redundancy.into_inner();
        let primary_server = endpoint(cx, &r.primary_server, r.primary_port.as_ref(), "redundancy.primary_server")?;
        let outbound_proxy =
            opt_endpoint(cx, r.outbound_proxy.as_ref(), r.outbound_proxy_port.as_ref(), "redundancy.outbound_proxy")?;
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
                cx.err(
                    r.backup_destination.as_ref().map(|b| b.span()),
                    "redundancy.backup_destination_address",
                    "Backup Destination is enabled but has no address",
                )
            })?;
            Some(SideConfig {
                server: endpoint(
                    cx,
                    addr,
                    r.backup_destination_port.as_ref(),
                    "redundancy.backup_destination_address",
                )?,
                outbound_proxy: opt_endpoint(
                    cx,
                    r.backup_outbound_proxy.as_ref(),
                    r.backup_outbound_proxy_port.as_ref(),
                    "redundancy.backup_outbound_proxy",
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
        let interval_s = int_in(cx, r.sip_keep_alive_interval.as_ref(), "redundancy.sip_keep_alive_interval", 1, 3600)?
            .unwrap_or(15);
        let interval = Duration::from_secs(interval_s as u64);

        let mut apps: Vec<AppUrl> = Vec::new();
        for a in &raw.app {
            let a = a.get_ref();
            let name = a.name.get_ref().trim();
            if name.is_empty() {
                return Err(cx.at(&a.name, "app.name", "must not be empty"));
            }
            if apps.iter().any(|x| x.name == name) {
                return Err(cx.at(&a.name, "app.name", format!("app `{name}` is defined twice")));
            }
            for (u, f) in [(&a.primary, "app.primary"), (&a.backup, "app.backup")] {
                check_url(cx, u, f)?;
            }
            apps.push(AppUrl {
                name: name.to_string(),
                primary: a.primary.get_ref().clone(),
                backup: a.backup.get_ref().clone(),
            });
        }

        let adv = raw.advanced.map(Spanned::into_inner);
        let mut ladder = Ladder::DEFAULT;
        let mut alive_codes = AliveCodes::DEFAULT;
        let mut failback = core::Failback::DEFAULT;
        let mut fast = core::FastDetection::default();
        let mut planned_lead = Duration::from_secs(15 * 60);
        let mut user = "keepalive".to_string();
        if let Some(a) = &adv {
            if let Some(l) = &a.ladder_ms {
                let waits = l.get_ref();
                if waits.is_empty() || waits.len() > MAX_ATTEMPTS {
                    return Err(cx.at(l, "advanced.ladder_ms", format!("must list 1 to {MAX_ATTEMPTS} waits")));
                }
                if let Some(w) = waits.iter().find(|w| !(1..=60_000).contains(*w)) {
                    return Err(cx.at(l, "advanced.ladder_ms", format!("wait {w} ms is outside 1..=60000")));
                }
                let waits: Vec<Duration> = waits.iter().map(|w| Duration::from_millis(*w as u64)).collect();
                ladder = Ladder::new(&waits).ok_or_else(|| cx.at(l, "advanced.ladder_ms", "invalid ladder"))?;
            }
            if let Some(codes) = &a.alive_codes {
                alive_codes =
                    parse_alive_codes(codes.get_ref()).map_err(|m| cx.at(codes, "advanced.alive_codes", m))?;
            }
            if let Some(m) = &a.failback {
                failback.mode = match m.get_ref().as_str() {
                    "auto" => FailbackMode::Auto,
                    "manual" => FailbackMode::Manual,
                    "never" => FailbackMode::Never,
                    other => {
                        return Err(cx.at(
                            m,
                            "advanced.failback",
                            format!("`{other}` is not one of auto, manual, never"),
                        ))
                    }
                };
            }
            if let Some(n) = int_in(cx, a.failback_after.as_ref(), "advanced.failback_after", 1, 100)? {
                failback.after_cycles = n as u8;
            }
            if let Some(s) = int_in(cx, a.failback_spread_s.as_ref(), "advanced.failback_spread_s", 0, 86_400)? {
                failback.spread = Duration::from_secs(s as u64);
            }
            fast.refused_ends_attempt = a.fast_refused.as_ref().is_some_and(|v| *v.get_ref());
            fast.transaction_failure_probes = a.fast_transaction_failure.as_ref().is_some_and(|v| *v.get_ref());
            if let Some(s) = int_in(cx, a.planned_lead_s.as_ref(), "advanced.planned_lead_s", 0, 7 * 86_400)? {
                planned_lead = Duration::from_secs(s as u64);
            }
            if let Some(u) = &a.user {
                if InlineStr::<{ core::config::MAX_USER_LEN }>::new(u.get_ref()).is_none() || u.get_ref().is_empty() {
                    return Err(cx.at(u, "advanced.user", "must be 1-32 characters allowed in a SIP user part"));
                }
                user = u.get_ref().clone();
            }
        }
        if ladder.total() > interval {
            let span = adv.as_ref().and_then(|a| a.ladder_ms.as_ref()).map(|l| l.span());
            let span = span.or_else(|| r.sip_keep_alive_interval.as_ref().map(|s| s.span()));
            return Err(cx.err(
                span,
                "advanced.ladder_ms",
                format!(
                    "the ladder's waits ({}) add up to more than the keep-alive interval ({interval})",
                    ladder.total()
                ),
            ));
        }

        let net = raw.network.map(Spanned::into_inner);
        let mut network = NetworkConfig {
            bind: None,
            dscp: 26,
            dns_server: None,
            control_socket: None,
            state_dir: None,
            syslog: None,
            metrics: None,
        };
        if let Some(n) = &net {
            if let Some(b) = &n.bind {
                network.bind = Some(b.get_ref().parse().map_err(|_| cx.at(b, "network.bind", "not an IP address"))?);
            }
            if let Some(d) = int_in(cx, n.dscp.as_ref(), "network.dscp", 0, 63)? {
                network.dscp = d as u8;
            }
            if let Some(d) = &n.dns_server {
                let s = d.get_ref();
                let parsed =
                    s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)));
                network.dns_server =
                    Some(parsed.ok_or_else(|| cx.at(d, "network.dns_server", "not an IP address or IP:port"))?);
            }
            network.control_socket = n.control_socket.as_ref().map(|s| PathBuf::from(s.get_ref()));
            network.state_dir = n.state_dir.as_ref().map(|s| PathBuf::from(s.get_ref()));
            network.syslog = syslog_config(cx, n)?;
            if let Some(m) = &n.metrics {
                network.metrics =
                    Some(telemetry::parse_metrics_addr(m.get_ref()).map_err(|e| cx.at(m, "network.metrics", e))?);
            }
        }

        let maintenance = match raw.maintenance.map(Spanned::into_inner) {
            Some(m) => maintenance_config(cx, &m)?,
            None => MaintenanceConfig::default(),
        };

        Ok(PhoneConfig {
            path: cx.path.to_path_buf(),
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
            network,
        })
    }

    /// The planned-maintenance schedule: the clusters of both sides, the notice feed (read now) and
    /// the recurring windows.
    pub fn schedule(&self) -> Result<Schedule, FeedError> {
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
            let mut c = core::ServerConfig::new(hop, &s.server.host);
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

fn maintenance_config(cx: &Ctx<'_>, m: &RawMaintenance) -> Result<MaintenanceConfig, ConfigFileError> {
    let tz = m.time_zone.as_ref();
    let tz_name = tz.map_or("UTC", |t| t.get_ref().as_str());
    if let Some(t) = tz {
        calendar::time_zone(tz_name).map_err(|e| cx.at(t, "maintenance.time_zone", e.to_string()))?;
    }
    let windows = |v: Option<&Spanned<Vec<String>>>, field: &str| -> Result<Vec<RecurringWindow>, ConfigFileError> {
        let Some(v) = v else { return Ok(Vec::new()) };
        v.get_ref()
            .iter()
            .map(|w| RecurringWindow::parse(w, tz_name).map_err(|e| cx.at(v, field, format!("`{w}`: {e}"))))
            .collect()
    };
    let primary_windows = windows(m.primary_windows.as_ref(), "maintenance.primary_windows")?;
    let backup_windows = windows(m.backup_windows.as_ref(), "maintenance.backup_windows")?;
    let upgrade = match &m.upgrade_window {
        None => None,
        Some(w) => {
            let utz = m.upgrade_time_zone.as_ref().ok_or_else(|| {
                cx.at(w, "maintenance.upgrade_time_zone", "an upgrade window needs the phone's local time zone")
            })?;
            let rw = RecurringWindow::parse(w.get_ref(), utz.get_ref())
                .map_err(|e| cx.at(w, "maintenance.upgrade_window", e.to_string()))?;
            let mut up = UpgradeWindow::new(rw);
            if let Some(h) = int_in(cx, m.upgrade_buffer_h.as_ref(), "maintenance.upgrade_buffer_h", 0, 24 * 366)? {
                up = up.with_buffer(jiff::SignedDuration::from_hours(h)).map_err(|e| {
                    cx.err(m.upgrade_buffer_h.as_ref().map(|b| b.span()), "maintenance.upgrade_buffer_h", e.to_string())
                })?;
            }
            Some(up)
        }
    };
    let notices = match &m.notices {
        None => None,
        Some(n) if n.get_ref().trim().is_empty() => return Err(cx.at(n, "maintenance.notices", "must not be empty")),
        Some(n) => {
            let p = PathBuf::from(n.get_ref());
            Some(if p.is_relative() { cx.path.parent().map_or(p.clone(), |d| d.join(&p)) } else { p })
        }
    };
    Ok(MaintenanceConfig { notices, primary_windows, backup_windows, upgrade })
}

/// `network.syslog` with its facility and CA file (relative to the file's folder).
fn syslog_config(cx: &Ctx, n: &RawNetwork) -> Result<Option<telemetry::SyslogConfig>, ConfigFileError> {
    let Some(url) = &n.syslog else {
        for (v, f) in [(&n.syslog_facility, "network.syslog_facility"), (&n.syslog_ca_file, "network.syslog_ca_file")] {
            if let Some(v) = v {
                return Err(cx.at(v, f, "needs network.syslog"));
            }
        }
        return Ok(None);
    };
    let target = url.get_ref().parse().map_err(|e: String| cx.at(url, "network.syslog", e))?;
    let mut c = telemetry::SyslogConfig::new(target);
    if let Some(f) = &n.syslog_facility {
        c.facility = telemetry::parse_facility(f.get_ref()).map_err(|e| cx.at(f, "network.syslog_facility", e))?;
    }
    if let Some(ca) = &n.syslog_ca_file {
        if ca.get_ref().trim().is_empty() {
            return Err(cx.at(ca, "network.syslog_ca_file", "must not be empty"));
        }
        let p = PathBuf::from(ca.get_ref());
        c.ca_file = Some(if p.is_relative() { cx.path.parent().map_or(p.clone(), |d| d.join(&p)) } else { p });
    }
    Ok(Some(c))
}

/// Guesses the field from a serde message such as "unknown field `x`" or "missing field `y`".
fn field_from_message(msg: &str) -> String {
    let mut parts = msg.split('`');
    match (parts.next(), parts.next()) {
        (Some(pre), Some(name)) if pre.contains("field") => name.to_string(),
        _ => String::new(),
    }
}

fn int_in(
    cx: &Ctx<'_>,
    v: Option<&Spanned<i64>>,
    field: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ConfigFileError> {
    match v {
        None => Ok(None),
        Some(s) if (min..=max).contains(s.get_ref()) => Ok(Some(*s.get_ref())),
        Some(s) => Err(cx.at(s, field, format!("{} is outside {min}..={max}", s.get_ref()))),
    }
}

fn opt_text(cx: &Ctx<'_>, v: Option<&Spanned<String>>, field: &str) -> Result<Option<String>, ConfigFileError> {
    match v {
        None => Ok(None),
        Some(s) if s.get_ref().trim().is_empty() => Err(cx.at(s, field, "must not be empty")),
        Some(s) if s.get_ref().chars().any(char::is_control) => {
            Err(cx.at(s, field, "must not hold control characters"))
        }
        Some(s) => Ok(Some(s.get_ref().trim().to_string())),
    }
}

fn endpoint(
    cx: &Ctx<'_>,
    host: &Spanned<String>,
    port: Option<&Spanned<i64>>,
    field: &str,
) -> Result<Endpoint, ConfigFileError> {
    let h = host.get_ref().trim();
    let h = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(h);
    if h.parse::<IpAddr>().is_err() && !is_hostname(h) {
        return Err(cx.at(host, field, format!("`{}` is neither an IP address nor a host name", host.get_ref())));
    }
    if h.len() > core::MAX_HOST_LEN {
        return Err(cx.at(host, field, format!("longer than {} characters", core::MAX_HOST_LEN)));
    }
    let port_field = if let Some(f) = field.strip_suffix("_server") {
        format!("{f}_port")
    } else if let Some(f) = field.strip_suffix("_address") {
        format!("{f}_port")
    } else {
        format!("{field}_port")
    };
    let port = int_in(cx, port, &port_field, 1, 65_535)?.map(|p| p as u16);
    Ok(Endpoint { host: h.to_string(), port })
}

fn opt_endpoint(
    cx: &Ctx<'_>,
    host: Option<&Spanned<String>>,
    port: Option<&Spanned<i64>>,
    field: &str,
) -> Result<Option<Endpoint>, ConfigFileError> {
    match host {
        Some(h) if !h.get_ref().trim().is_empty() => endpoint(cx, h, port, field).map(Some),
        _ => {
            if let Some(p) = port {
                return Err(cx.at(p, &format!("{field}_port"), format!("a port is given but `{field}` is not")));
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

fn check_url(cx: &Ctx<'_>, u: &Spanned<String>, field: &str) -> Result<(), ConfigFileError> {
    let s = u.get_ref();
    let ok = ["http://", "https://", "sip:", "sips:"].iter().any(|p| s.starts_with(p))
        && s.len() > 8
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(cx.at(u, field, format!("`{s}` is not an http(s) or sip URL")))
    }
}

/// Parses an alive-code policy: entries such as `"200-499"`, `"503"` to add and `"!408"` to remove,
/// applied in order to an empty set.
pub fn parse_alive_codes(items: &[String]) -> Result<AliveCodes, String> {
    let mut set = AliveCodes::NONE;
    for item in items {
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
            return Err(format!("`{item}` is not a status code or range within 100-699"));
        };
        if from > to {
            return Err(format!("`{item}` is an empty range"));
        }
        for c in from..=to {
            set = if neg { set.without(c) } else { set.with_range(c, c) };
        }
    }
    Ok(set)
}
