//! `run`, `check-config` and the control clients (`status`, `force`, `release`, `failback`, `pause`,
//! `resume`, `call`, `reload`): the command-line side of the network driver.
//!
//! Each function here is what one subcommand calls; each returns the process exit code.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::config::telemetry::{parse_facility, parse_metrics_addr, SyslogTarget};
use crate::config::{Endpoint, PhoneConfig};
use crate::core::Side;
use crate::maintenance::statuspage::PageUrl;
use crate::net::control::{self, Request};
use crate::net::driver::{self, Overrides, RunOptions};
use crate::net::hook::HookOptions;

/// The control socket clients use when `--socket` is not given.
pub const DEFAULT_SOCKET: &str = "/run/sip-failover.sock";

/// How events are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EventsFormat {
    /// Not at all (logs still go to stderr).
    #[default]
    None,
    /// One JSON object per line.
    Json,
}

/// `sip-failover run`: probe and fail over on the real network.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The phone's configuration file (TOML). Without it, `--primary` is required.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The primary server: HOST[:PORT] over UDP (an IP literal, [IPv6]:PORT, or an FQDN; no port on
    /// an FQDN means DNS SRV), or a SIP URI: `sip:HOST[:PORT];transport=tcp`, `sips:HOST[:PORT]`
    /// (TLS). Overrides the file and drops its outbound proxy.
    #[arg(long, value_name = "URI", value_parser = parse_endpoint)]
    pub primary: Option<Endpoint>,
    /// The backup server, in the same forms; enables the backup destination.
    #[arg(long, value_name = "URI", value_parser = parse_endpoint)]
    pub backup: Option<Endpoint>,
    /// Print events on stdout: `json` for one JSON object per line.
    #[arg(long, value_enum, default_value_t = EventsFormat::None)]
    pub events: EventsFormat,
    /// The keep-alive interval in seconds (overrides the file; fractions allowed, at least 1 and at
    /// least the ladder's total).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub interval: Option<Duration>,
    /// An ICMP port-unreachable ends an attempt at once (fast detection).
    #[arg(long)]
    pub fast_refused: bool,
    /// A SIP transaction failure reported over the control socket starts a probe cycle at once.
    #[arg(long)]
    pub fast_transaction: bool,
    /// The local address probe sockets bind to; `::` gives dual-stack sockets.
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// DSCP marking for the probes: `cs3`, `af31`, `none` or a number 0-63 (default: the file's, 26).
    #[arg(long, value_name = "DSCP", value_parser = parse_dscp)]
    pub dscp: Option<u8>,
    /// The DNS resolver, IP[:PORT]; replaces the nameservers of resolv.conf, whose search domains
    /// and options still apply (default: the file's, else resolv.conf's nameservers).
    #[arg(long, value_name = "IP[:PORT]", value_parser = parse_resolver)]
    pub resolver: Option<SocketAddr>,
    /// Another resolv.conf than /etc/resolv.conf: nameservers, search domains, ndots, timeout, attempts.
    #[arg(long, value_name = "PATH")]
    pub resolv_conf: Option<PathBuf>,
    /// Another hosts file than /etc/hosts, consulted before DNS.
    #[arg(long, value_name = "PATH")]
    pub hosts: Option<PathBuf>,
    /// The control socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Where the crash-safe state file lives.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A shell command run on every switch, the new bundle in `SF_*` environment variables; exit 0
    /// acknowledges the switch, anything else rolls it back.
    #[arg(long, value_name = "CMD")]
    pub on_switch: Option<String>,
    /// How long the switch hook may run, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    pub hook_timeout: Duration,
    /// Send every event to a syslog collector (RFC 5424): `udp://HOST[:514]`, `tcp://HOST[:601]`
    /// (octet counting) or `tls://HOST[:6514]`. Overrides the file's `network.syslog`.
    #[arg(long, value_name = "URL", value_parser = parse_syslog)]
    pub syslog: Option<SyslogTarget>,
    /// The syslog facility: `local0` (the default) to `local7`, `user`, `daemon`, ... or 0-23.
    #[arg(long, value_name = "FACILITY", value_parser = parse_facility)]
    pub syslog_facility: Option<u8>,
    /// The CA certificates (PEM) a `tls://` collector must chain to (default: the system's store).
    #[arg(long, value_name = "FILE")]
    pub syslog_ca_file: Option<PathBuf>,
    /// The CA certificates (PEM) servers reached over TLS must chain to (default: the file's
    /// `network.tls_ca_file`, else the system's store).
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for mutual TLS; needs `--tls-client-key`.
    #[arg(long, value_name = "FILE", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// Accept a server certificate that names the SIP domain only through a wildcard.
    #[arg(long)]
    pub tls_allow_wildcard: bool,
    /// Keep-alive of idle TCP and TLS flows every SECONDS (RFC 5626 CRLF ping; 0 for none).
    #[arg(long, value_name = "SECONDS")]
    pub flow_keepalive: Option<u32>,
    /// Serve Prometheus metrics on `http://ADDR:PORT/metrics` (overrides the file's
    /// `network.metrics`).
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_addr)]
    pub metrics: Option<SocketAddr>,
    /// A status page (Statuspage v2) to poll for scheduled maintenances: its base URL,
    /// `https://...` (`http://` for loopback tests and the lab). Overrides the file's
    /// `maintenance.statuspage`.
    #[arg(long, value_name = "URL", value_parser = parse_page_url)]
    pub statuspage: Option<PageUrl>,
    /// How often the status page is polled, in whole seconds (default 60, at least 1).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub statuspage_poll: Option<u64>,
    /// A maintenance calendar (iCalendar, RFC 5545) whose events are notices: a file (read again
    /// whenever it changes) or an `https://` URL (`http://` for loopback tests and the lab), polled.
    /// Overrides the file's `maintenance.calendar`.
    #[arg(long, value_name = "PATH|URL", value_parser = parse_calendar)]
    pub calendar: Option<crate::config::CalendarSource>,
    /// How often a calendar URL is polled, in whole seconds (default 300, at least 1).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub calendar_poll: Option<u64>,
    /// How many syslog messages may wait for the collector before new ones are dropped (tests).
    #[arg(long, hide = true, value_name = "N")]
    pub syslog_queue: Option<usize>,
    /// A fixed seed for branches and tags (tests only; the default draws from the system).
    #[arg(long, hide = true)]
    pub seed: Option<u64>,
}

fn parse_page_url(s: &str) -> Result<PageUrl, String> {
    PageUrl::parse(s)
}

fn parse_calendar(s: &str) -> Result<crate::config::CalendarSource, String> {
    crate::config::CalendarSource::parse(s, None)
}

/// Where a control client finds the agent.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The agent's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// How long to wait for the answer, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "5")]
    pub timeout: Duration,
}

/// A side on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    /// The primary server.
    Primary,
    /// The backup server.
    Backup,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Side {
        match s {
            SideArg::Primary => Side::Primary,
            SideArg::Backup => Side::Backup,
        }
    }
}

/// A call state on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallArg {
    /// A call started.
    Start,
    /// The phone is idle again.
    End,
}

/// Parses a server as the configuration file writes it: `HOST[:PORT]` (UDP; IPv6 as `[ADDR]:PORT`
/// or bare), `sip:HOST[:PORT][;transport=udp|tcp|tls]` or `sips:HOST[:PORT]` (TLS).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    crate::config::uri::parse(s).map(|w| w.endpoint).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_syslog(s: &str) -> Result<SyslogTarget, String> {
    s.parse()
}

/// Parses seconds with an optional fraction (`2`, `0.5`).
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses a DSCP: `cs3` (24), `af31` (26), `ef` (46), `none` (0) or a number 0-63.
pub fn parse_dscp(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "none" | "off" => Ok(0),
        "cs3" => Ok(24),
        "af31" => Ok(26),
        "ef" => Ok(46),
        n => n.parse::<u8>().ok().filter(|v| *v <= 63).ok_or_else(|| format!("`{s}` is not a DSCP (cs3, af31, 0-63)")),
    }
}

/// Parses `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`.
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{s}` is not IP[:PORT]"))
}

/// The configuration `run` starts from: the file, or (without one) the template's defaults.
pub fn base_config(path: Option<&Path>) -> Result<PhoneConfig, String> {
    match path {
        Some(p) => PhoneConfig::load(p).map_err(|e| e.to_string()),
        None => PhoneConfig::parse(
            "[redundancy]\nprimary_server = \"127.0.0.1\"\nbackup_destination = false\n",
            "<command line>",
        )
        .map_err(|e| e.to_string()),
    }
}

impl RunArgs {
    /// The overrides these flags make to a configuration file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            primary: self.primary.clone(),
            backup: self.backup.clone(),
            interval: self.interval.map(crate::core::Duration::from),
            fast_refused: self.fast_refused.then_some(true),
            fast_transaction: self.fast_transaction.then_some(true),
            bind: self.bind,
            dscp: self.dscp,
            resolver: self.resolver,
            resolv_conf: self.resolv_conf.clone(),
            hosts: self.hosts.clone(),
            control: self.control.clone(),
            state_dir: self.state_dir.clone(),
            syslog: self.syslog.clone(),
            syslog_facility: self.syslog_facility,
            syslog_ca_file: self.syslog_ca_file.clone(),
            syslog_queue: self.syslog_queue,
            metrics: self.metrics,
            statuspage: self.statuspage.clone(),
            statuspage_poll: self.statuspage_poll.map(Duration::from_secs),
            calendar: self.calendar.clone(),
            calendar_poll: self.calendar_poll.map(Duration::from_secs),
            tls_ca_file: self.tls_ca_file.clone(),
            tls_client: self.tls_client_cert.clone().zip(self.tls_client_key.clone()),
            tls_allow_wildcard: self.tls_allow_wildcard.then_some(true),
            flow_keepalive: self.flow_keepalive.map(|s| crate::core::Duration::from_secs(u64::from(s))),
        }
    }

    /// The options `run` starts with.
    pub fn options(&self) -> Result<RunOptions, String> {
        if self.config.is_none() && self.primary.is_none() {
            return Err("give a configuration file (--config) or at least --primary".into());
        }
        let mut config = base_config(self.config.as_deref())?;
        let overrides = self.overrides();
        overrides.apply(&mut config);
        Ok(RunOptions {
            config,
            overrides,
            events_json: self.events == EventsFormat::Json,
            hook: self.on_switch.clone().map(|command| HookOptions { command, timeout: self.hook_timeout }),
            seed: self.seed,
        })
    }
}

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `sip-failover run`.
pub fn run(args: &RunArgs) -> ExitCode {
    init_logging();
    let opts = match args.options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sip-failover: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sip-failover: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(driver::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sip-failover: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sip-failover check-config FILE`: validates a file and prints what it says, or where it is wrong.
pub fn check_config(path: &Path) -> ExitCode {
    match PhoneConfig::load(path) {
        Ok(c) => {
            println!("{}: ok", path.display());
            println!("  primary: {}", c.primary.server);
            if let Some(p) = &c.primary.outbound_proxy {
                println!("    via outbound proxy {p}");
            }
            match &c.backup {
                Some(b) => {
                    println!("  backup: {}", b.server);
                    if let Some(p) = &b.outbound_proxy {
                        println!("    via outbound proxy {p}");
                    }
                }
                None => println!("  backup: disabled"),
            }
            println!("  keep-alive: {} every {}", if c.keep_alive { "on" } else { "off" }, c.interval);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A control client subcommand: sends `req` and prints the answer's status as JSON.
pub fn client(args: &ClientArgs, req: Request) -> ExitCode {
    match control::request(&args.socket, &req, args.timeout) {
        Ok(v) => {
            let shown = v.get("status").cloned().unwrap_or(v);
            println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sip-failover: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sip-failover reload FILE`: the file's path as the agent must see it (absolute).
pub fn reload(args: &ClientArgs, file: &Path) -> ExitCode {
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    client(args, Request::ApplyConfig(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_in_every_form() {
        let e = |h: &str, p: Option<u16>| Endpoint::new(h, p);
        assert_eq!(parse_endpoint("127.0.0.1:5070"), Ok(e("127.0.0.1", Some(5070))));
        assert_eq!(parse_endpoint("127.0.0.1"), Ok(e("127.0.0.1", None)));
        assert_eq!(parse_endpoint("[::1]:5070"), Ok(e("::1", Some(5070))));
        assert_eq!(parse_endpoint("::1"), Ok(e("::1", None)));
        assert_eq!(parse_endpoint("[::1]"), Ok(e("::1", None)));
        assert_eq!(parse_endpoint("pbx.example.com"), Ok(e("pbx.example.com", None)));
        assert_eq!(parse_endpoint("pbx.example.com:5080"), Ok(e("pbx.example.com", Some(5080))));
        assert_eq!(
            parse_endpoint("sips:pbx.example.com"),
            Ok(e("pbx.example.com", None).over(crate::core::Transport::Tls))
        );
        assert_eq!(
            parse_endpoint("sip:127.0.0.1:5070;transport=tcp"),
            Ok(e("127.0.0.1", Some(5070)).over(crate::core::Transport::Tcp))
        );
        for bad in ["", "a:b", "1::2:5060x", "[::1", "[::1]5060", "host:0", "bad host", "sips:x;transport=udp"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_endpoint("sip:pbx.example:70000").unwrap_err(),
            "`sip:pbx.example:70000`: column 17: 70000 is outside 1..=65535"
        );
    }

    #[test]
    fn dscp_names_and_numbers() {
        assert_eq!(parse_dscp("cs3"), Ok(24));
        assert_eq!(parse_dscp("AF31"), Ok(26));
        assert_eq!(parse_dscp("0"), Ok(0));
        assert!(parse_dscp("64").is_err());
    }
}
