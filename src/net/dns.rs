//! Name resolution for SIP servers (RFC 3263) on the `hickory-resolver` stub resolver.
//!
//! The resolver is configured the way the system resolves names: the nameservers, search domains,
//! `ndots`, timeout and attempts of `/etc/resolv.conf`, and `/etc/hosts` before DNS. A resolver
//! given explicitly (`--resolver`, `network.dns_server`) replaces the nameservers only; another
//! resolv.conf or hosts file can be named (`--resolv-conf`, `--hosts`). A truncated UDP answer is
//! asked again over TCP, and answers are cached for their TTL.
//!
//! RFC 3263 for a name:
//! - an IP literal is used as is (port 5060 unless given);
//! - a name with a port: its A/AAAA records;
//! - a name without a port: the NAPTR records of the server's transport (`SIP+D2U` for UDP,
//!   `SIP+D2T` for `;transport=tcp`, `SIPS+D2T` for `sips:`), by order then preference, lead to SRV
//!   records; without NAPTR, the transport's SRV name (`_sip._udp`, `_sip._tcp`, `_sips._tcp`);
//!   SRV records are ordered by priority, then by weighted random choice within a priority
//!   (RFC 2782, [`order_srv`]), and each target is resolved with A/AAAA; without SRV, the name's
//!   own A/AAAA on the transport's port (5060, 5061 for TLS).
//!
//! Addresses follow the family of the probe sockets' bind address ([`Family`]). The transport is
//! the one the server's URI names: a NAPTR set that offers SIP only over other transports is an
//! error naming what was offered ([`DnsError::UnsupportedTransport`]), never a silent fallback.
//! Over TLS the certificate is verified against the name looked up (the SIP domain), never an SRV
//! target (RFC 5922).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{Hosts, Name, ResolveError, TokioResolver};

use crate::config::Endpoint;
use crate::core::rng::Rng;

/// The SIP port used when neither the configuration nor SRV gives one.
pub const SIP_PORT: u16 = 5060;
/// The shortest TTL the agent honours: a record with a TTL of 0 is looked up again after this.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest TTL the agent honours.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The system's resolver configuration.
pub const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";
/// The system's hosts file.
pub const SYSTEM_HOSTS: &str = "/etc/hosts";
/// How many CNAME records the agent follows when it looks for a loop.
const MAX_CNAME_CHAIN: usize = 16;

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The target host name (lower case, no trailing dot); `"."` means "no service".
    pub target: String,
}

/// A SIP transport: the one a server's URI names (`sips:` TLS, `;transport=tcp` TCP, else UDP).
pub use crate::core::Transport;

/// The NAPTR service field of `t` (RFC 3263 section 4.1): `SIP+D2U`, `SIP+D2T` or `SIPS+D2T`.
pub const fn naptr_service(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls => "SIPS+D2T",
    }
}

/// The SRV prefix of `t`: `_sip._udp`, `_sip._tcp` or `_sips._tcp`.
pub const fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

fn from_naptr_service(s: &[u8]) -> Option<Transport> {
    [Transport::Udp, Transport::Tcp, Transport::Tls]
        .into_iter()
        .find(|t| s.eq_ignore_ascii_case(naptr_service(*t).as_bytes()))
}

/// Why a lookup failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no address record.
    NoRecords,
    /// The resolver answered with an error code (SERVFAIL, REFUSED, ...).
    Server(ResponseCode),
    /// No usable answer within the timeout, after every attempt: silence, or only datagrams that do
    /// not parse, carry another ID or answer another question (the library drops those as possible
    /// forgeries and waits on).
    Timeout,
    /// SRV records were found but none of their targets has an address (or all are `.`).
    TargetsPointNowhere,
    /// The name's CNAME chain comes back to a name it passed through.
    CnameLoop(String),
    /// NAPTR records offer SIP, but not over the transport the server's URI names.
    UnsupportedTransport {
        /// What the records offer, in their order.
        offered: Vec<Transport>,
        /// What the URI names.
        wanted: Transport,
    },
    /// The name cannot be put in a query.
    BadName(String),
    /// No resolver is configured and none was found in resolv.conf.
    NoResolver,
    /// A resolv.conf or hosts file could not be read.
    File(PathBuf, String),
    /// Anything else the resolver reported (a socket error, a TCP connection closed early).
    Other(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NxDomain => f.write_str("no such name"),
            DnsError::NoRecords => f.write_str("no address record"),
            DnsError::Server(rc) => write!(f, "resolver answered {rc}"),
            DnsError::Timeout => f.write_str("no usable answer from the resolver"),
            DnsError::TargetsPointNowhere => f.write_str("SRV targets have no address"),
            DnsError::CnameLoop(n) => write!(f, "CNAME loop at `{n}`"),
            DnsError::UnsupportedTransport { offered, wanted } => {
                let names: Vec<&str> = offered.iter().map(|t| t.as_str()).collect();
                write!(f, "NAPTR offers SIP only over {} (the server is configured for {wanted})", names.join(", "))
            }
            DnsError::BadName(n) => write!(f, "`{n}` cannot be looked up"),
            DnsError::NoResolver => f.write_str("no resolver configured or found in resolv.conf"),
            DnsError::File(p, e) => write!(f, "{}: {e}", p.display()),
            DnsError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for DnsError {}

impl From<ResolveError> for DnsError {
    fn from(e: ResolveError) -> Self {
        let Some(p) = e.proto() else { return DnsError::Other(e.to_string()) };
        match p.kind() {
            ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NXDomain, .. } => DnsError::NxDomain,
            ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NoError, .. } => DnsError::NoRecords,
            ProtoErrorKind::NoRecordsFound { response_code, .. } => DnsError::Server(*response_code),
            ProtoErrorKind::Timeout => DnsError::Timeout,
            ProtoErrorKind::NoConnections => DnsError::NoResolver,
            _ => DnsError::Other(p.to_string()),
        }
    }
}

impl DnsError {
    /// A short code for events: `nxdomain`, `no_records`, `servfail`, `timeout`, ...
    pub fn code(&self) -> &'static str {
        match self {
            DnsError::NxDomain => "nxdomain",
            DnsError::NoRecords => "no_records",
            DnsError::Server(ResponseCode::ServFail) => "servfail",
            DnsError::Server(ResponseCode::Refused) => "refused",
            DnsError::Server(_) => "server_error",
            DnsError::Timeout => "timeout",
            DnsError::TargetsPointNowhere => "targets_point_nowhere",
            DnsError::CnameLoop(_) => "cname_loop",
            DnsError::UnsupportedTransport { .. } => "unsupported_transport",
            DnsError::BadName(_) => "bad_name",
            DnsError::NoResolver => "no_resolver",
            DnsError::File(..) => "file",
            DnsError::Other(_) => "other",
        }
    }

    /// Whether the name or record type simply is not there (RFC 3263 goes on to the next step).
    fn is_absent(&self) -> bool {
        matches!(self, DnsError::NxDomain | DnsError::NoRecords)
    }
}

/// Which address families to look up, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 addresses first, then IPv6.
    #[default]
    V4First,
    /// IPv6 addresses first, then IPv4.
    V6First,
    /// IPv4 only (an IPv4 bind address).
    V4Only,
    /// IPv6 only (an IPv6 bind address that is not `::`).
    V6Only,
}

impl Family {
    /// The family fitting a bind address: none or `::` takes both, IPv4 first; a specific address
    /// only its own.
    pub fn for_bind(bind: Option<IpAddr>) -> Family {
        match bind {
            None => Family::V4First,
            Some(IpAddr::V6(a)) if a.is_unspecified() => Family::V4First,
            Some(IpAddr::V6(_)) => Family::V6Only,
            Some(IpAddr::V4(_)) => Family::V4Only,
        }
    }

    /// The address record types to ask for, in order.
    fn types(self) -> &'static [RecordType] {
        match self {
            Family::V4First => &[RecordType::A, RecordType::AAAA],
            Family::V6First => &[RecordType::AAAA, RecordType::A],
            Family::V4Only => &[RecordType::A],
            Family::V6Only => &[RecordType::AAAA],
        }
    }

    /// `addrs` filtered and ordered for this family (stable within a family).
    pub fn arrange(self, mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
        match self {
            Family::V4Only => addrs.retain(IpAddr::is_ipv4),
            Family::V6Only => addrs.retain(IpAddr::is_ipv6),
            Family::V4First => addrs.sort_by_key(IpAddr::is_ipv6),
            Family::V6First => addrs.sort_by_key(IpAddr::is_ipv4),
        }
        addrs
    }
}

/// Where a server's name led: the addresses to try, best first, and how long that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Addresses with ports, in the order RFC 3263 says to try them.
    pub candidates: Vec<SocketAddr>,
    /// When to look again (the smallest TTL involved, clamped to [`MIN_TTL`]..=[`MAX_TTL`]); `None`
    /// for an IP literal, which never needs it.
    pub ttl: Option<Duration>,
    /// Whether the port came from SRV records.
    pub via_srv: bool,
    /// Whether NAPTR records chose the transport.
    pub via_naptr: bool,
    /// The transport chosen.
    pub transport: Transport,
}

impl Resolved {
    /// An IP literal's address over `transport`: one candidate, no TTL.
    pub fn literal(addr: SocketAddr, transport: Transport) -> Resolved {
        Resolved { candidates: vec![addr], ttl: None, via_srv: false, via_naptr: false, transport }
    }
}

/// Where the resolver's configuration comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverSettings {
    /// Replaces the nameservers of resolv.conf.
    pub server: Option<SocketAddr>,
    /// Another resolv.conf than `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// Another hosts file than `/etc/hosts`.
    pub hosts: Option<PathBuf>,
}

/// A stub resolver, cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    hosts: Option<Arc<Hosts>>,
    rng: Arc<Mutex<Rng>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").field("servers", &self.inner.config().name_servers().len()).finish()
    }
}

impl Resolver {
    /// A resolver asking `server` (UDP, TCP for truncated answers), with the system's search
    /// domains, options and hosts file when they can be read.
    pub fn new(server: SocketAddr) -> Self {
        let settings = ResolverSettings { server: Some(server), ..ResolverSettings::default() };
        Resolver::from_settings(&settings).unwrap_or_else(|_| {
            let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
            Resolver::build(ResolverConfig::from_parts(None, vec![], group), ResolverOpts::default(), None)
        })
    }

    /// The system's resolver: `/etc/resolv.conf` and `/etc/hosts`.
    pub fn from_system() -> Result<Self, DnsError> {
        Resolver::from_settings(&ResolverSettings::default())
    }

    /// A resolver configured by `s`: resolv.conf (the system's or another), its nameservers replaced
    /// by `s.server` when set, and the hosts file (the system's or another) before DNS.
    pub fn from_settings(s: &ResolverSettings) -> Result<Self, DnsError> {
        let conf_path = s.resolv_conf.clone().unwrap_or_else(|| PathBuf::from(SYSTEM_RESOLV_CONF));
        let text = match std::fs::read(&conf_path) {
            Ok(t) => t,
            // No system resolv.conf: an explicit server with default options still works.
            Err(e) if s.resolv_conf.is_none() && e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(DnsError::File(conf_path, e.to_string())),
        };
        let (config, opts) = parse_resolv_conf(&text, s.server).map_err(|e| DnsError::File(conf_path, e))?;
        if config.name_servers().is_empty() && s.hosts.is_none() && !Path::new(SYSTEM_HOSTS).exists() {
            return Err(DnsError::NoResolver);
        }
        let hosts_path = s.hosts.clone().unwrap_or_else(|| PathBuf::from(SYSTEM_HOSTS));
        let hosts = match std::fs::File::open(&hosts_path) {
            Ok(f) => {
                let mut h = Hosts::default();
                h.read_hosts_conf(f).map_err(|e| DnsError::File(hosts_path.clone(), e.to_string()))?;
                Some(h)
            }
            Err(e) if s.hosts.is_none() && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(DnsError::File(hosts_path, e.to_string())),
        };
        Ok(Resolver::build(config, opts, hosts))
    }

    fn build(config: ResolverConfig, mut opts: ResolverOpts, hosts: Option<Hosts>) -> Resolver {
        // The hosts file is read here (so another one can be named); the library must not read its own.
        opts.use_hosts_file = ResolveHosts::Never;
        // resolv.conf's `attempts` counts tries; the library's counts retries after the first.
        opts.attempts = opts.attempts.max(1) - 1;
        let mut inner =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).with_options(opts).build();
        let hosts = hosts.map(Arc::new);
        if let Some(h) = &hosts {
            inner.set_hosts(h.clone());
        }
        Resolver { inner, hosts, rng: Arc::new(Mutex::new(Rng::from_key(super::entropy::key()))) }
    }

    /// The same resolver with another per-try timeout and number of tries (at least 1).
    pub fn with_timeout(self, timeout: Duration, attempts: u8) -> Self {
        let mut opts = self.inner.options().clone();
        opts.timeout = timeout;
        opts.attempts = usize::from(attempts.max(1)) - 1;
        let config = self.inner.config().clone();
        let mut inner =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).with_options(opts).build();
        if let Some(h) = &self.hosts {
            inner.set_hosts(h.clone());
        }
        Resolver { inner, hosts: self.hosts, rng: self.rng }
    }

    fn next_u32(&self) -> u32 {
        match self.rng.lock() {
            Ok(mut r) => r.next_u32(),
            Err(p) => p.into_inner().next_u32(),
        }
    }

    /// The addresses of `name` (hosts file first, then DNS with the search list), in `family`'s
    /// order (only the record types it asks for are queried), and when they run out. An error only
    /// when every type failed: the last error that is not mere absence, else the last one; "no
    /// address record" becomes [`DnsError::CnameLoop`] when the name's CNAME chain loops (the library
    /// gives up on such a chain after a few steps and reports no records).
    pub async fn lookup_ip(&self, name: &str, family: Family) -> Result<(Vec<IpAddr>, Instant), DnsError> {
        let n = parse_name(name)?;
        let mut addrs = Vec::new();
        let mut until: Option<Instant> = None;
        let mut err: Option<DnsError> = None;
        for t in family.types() {
            let l = match self.inner.lookup(n.clone(), *t).await {
                Ok(l) => l,
                Err(e) => {
                    let e = DnsError::from(e);
                    if err.as_ref().is_none_or(DnsError::is_absent) {
                        err = Some(e);
                    }
                    continue;
                }
            };
            let before = addrs.len();
            addrs.extend(l.iter().filter_map(|r| match r {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            }));
            if addrs.len() > before {
                until = Some(until.map_or(l.valid_until(), |u| u.min(l.valid_until())));
            }
        }
        match until {
            Some(u) if !addrs.is_empty() => Ok((addrs, u)),
            _ => match err.unwrap_or(DnsError::NoRecords) {
                DnsError::NoRecords => match self.cname_loop(&n).await {
                    Some(at) => Err(DnsError::CnameLoop(at)),
                    None => Err(DnsError::NoRecords),
                },
                e => Err(e),
            },
        }
    }

    /// Follows `name`'s CNAME records (one CNAME query per step, at most [`MAX_CNAME_CHAIN`] steps)
    /// and returns the first name met twice, if the chain loops. Any failure on the way: `None`.
    async fn cname_loop(&self, name: &Name) -> Option<String> {
        let mut passed = vec![name_text(name)];
        let mut next = name.clone();
        for _ in 0..MAX_CNAME_CHAIN {
            let l = self.inner.lookup(next, RecordType::CNAME).await.ok()?;
            let target = l.iter().find_map(|r| match r {
                RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            })?;
            let text = name_text(&target);
            if passed.contains(&text) {
                return Some(text);
            }
            passed.push(text);
            next = target;
        }
        None
    }

    /// The SRV records of `name`, in RFC 2782 order, and when they run out.
    pub async fn lookup_srv(&self, name: &str) -> Result<(Vec<Srv>, Instant), DnsError> {
        let l = self.inner.lookup(parse_name(name)?, RecordType::SRV).await?;
        let recs: Vec<Srv> = l
            .iter()
            .filter_map(|r| match r {
                RData::SRV(s) => Some(Srv {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: name_text(s.target()),
                }),
                _ => None,
            })
            .collect();
        if recs.is_empty() {
            return Err(DnsError::NoRecords);
        }
        Ok((order_srv(recs, |n| self.next_u32() % n), l.valid_until()))
    }

    /// The NAPTR records of `name` for SIP (flag `S`, a known service), by order then preference, as
    /// (transport, SRV name), and when they run out.
    pub async fn lookup_naptr(&self, name: &str) -> Result<(Vec<(Transport, String)>, Instant), DnsError> {
        let l = self.inner.lookup(parse_name(name)?, RecordType::NAPTR).await?;
        let mut recs: Vec<(u16, u16, Transport, String)> = l
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) if n.flags().eq_ignore_ascii_case(b"s") => {
                    let t = from_naptr_service(n.services())?;
                    Some((n.order(), n.preference(), t, name_text(n.replacement())))
                }
                _ => None,
            })
            .collect();
        recs.sort_by_key(|r| (r.0, r.1));
        Ok((recs.into_iter().map(|(_, _, t, n)| (t, n)).collect(), l.valid_until()))
    }

    /// Where to send SIP for `ep` over its transport (RFC 3263; see the module docs).
    pub async fn resolve(&self, ep: &Endpoint, family: Family) -> Result<Resolved, DnsError> {
        let transport = ep.transport;
        if let Some(a) = ep.socket_addr() {
            return Ok(Resolved::literal(a, transport));
        }
        let host = ep.host.trim_end_matches('.');
        let mut until = far_future();
        if let Some(port) = ep.port {
            let (addrs, u) = self.lookup_ip(host, family).await?;
            return Ok(Resolved {
                candidates: addrs.into_iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                ttl: Some(ttl_until(u)),
                via_srv: false,
                via_naptr: false,
                transport,
            });
        }
        // NAPTR: which transports the domain offers, and the SRV name of each.
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        let mut via_naptr = false;
        match self.lookup_naptr(host).await {
            Ok((recs, u)) if !recs.is_empty() => {
                until = until.min(u);
                let offered: Vec<Transport> = recs.iter().map(|r| r.0).collect();
                srv_names = recs.into_iter().filter(|(t, _)| *t == transport).collect();
                if srv_names.is_empty() {
                    let mut offered = offered;
                    offered.dedup();
                    return Err(DnsError::UnsupportedTransport { offered, wanted: transport });
                }
                via_naptr = true;
            }
            Ok(_) => {}
            Err(e) if e.is_absent() => {}
            Err(e) => return Err(e),
        }
        if srv_names.is_empty() {
            srv_names = vec![(transport, format!("{}.{host}", srv_prefix(transport)))];
        }
        // SRV: the first NAPTR (or transport) whose SRV records exist.
        for (transport, srv_name) in &srv_names {
            let (records, u) = match self.lookup_srv(srv_name).await {
                Ok(x) => x,
                Err(e) if e.is_absent() => continue,
                Err(e) => return Err(e),
            };
            until = until.min(u);
            let mut candidates = Vec::new();
            let mut last_err = None;
            for srv in records.iter().filter(|s| s.target != ".") {
                match self.lookup_ip(&srv.target, family).await {
                    Ok((addrs, u)) => {
                        until = until.min(u);
                        candidates.extend(addrs.into_iter().map(|ip| SocketAddr::new(ip, srv.port)));
                    }
                    Err(e) if e.is_absent() => {}
                    Err(e) => last_err = Some(e),
                }
            }
            if candidates.is_empty() {
                return Err(last_err.unwrap_or(DnsError::TargetsPointNowhere));
            }
            candidates.dedup();
            return Ok(Resolved {
                candidates,
                ttl: Some(ttl_until(until)),
                via_srv: true,
                via_naptr,
                transport: *transport,
            });
        }
        if via_naptr {
            // NAPTR pointed at SRV names that do not exist.
            return Err(DnsError::TargetsPointNowhere);
        }
        // No SRV: the name's own addresses on the transport's port, 5060 or 5061 for TLS (RFC 3263
        // section 4.2).
        let (addrs, u) = self.lookup_ip(host, family).await?;
        Ok(Resolved {
            candidates: addrs.into_iter().map(|ip| SocketAddr::new(ip, transport.default_port())).collect(),
            ttl: Some(ttl_until(until.min(u))),
            via_srv: false,
            via_naptr: false,
            transport,
        })
    }
}

fn far_future() -> Instant {
    Instant::now() + MAX_TTL
}

/// The time left until `until`, to the nearest second (the cache counts from when the answer came).
fn ttl_until(until: Instant) -> Duration {
    let left = until.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
    Duration::from_secs(left.as_secs()).clamp(MIN_TTL, MAX_TTL)
}

fn parse_name(name: &str) -> Result<Name, DnsError> {
    Name::from_utf8(name).map_err(|_| DnsError::BadName(name.to_string()))
}

/// A name as text: lower case, without the trailing dot (`.` for the root).
fn name_text(n: &Name) -> String {
    let s = n.to_lowercase().to_utf8();
    match s.trim_end_matches('.') {
        "" => ".".to_string(),
        t => t.to_string(),
    }
}

/// The resolver configuration in resolv.conf text `data` (empty: no nameservers, default options),
/// its nameservers replaced by `server` when given.
fn parse_resolv_conf(data: &[u8], server: Option<SocketAddr>) -> Result<(ResolverConfig, ResolverOpts), String> {
    let (config, opts) = if data.iter().all(u8::is_ascii_whitespace) {
        (ResolverConfig::from_parts(None, vec![], vec![]), ResolverOpts::default())
    } else {
        match hickory_resolver::system_conf::parse_resolv_conf(data) {
            Ok(x) => x,
            // A file with search domains and options but no nameserver is fine with an explicit one.
            Err(_) if server.is_some() => {
                let mut with_ns = data.to_vec();
                with_ns.extend_from_slice(b"\nnameserver 127.0.0.1\n");
                hickory_resolver::system_conf::parse_resolv_conf(&with_ns).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let Some(server) = server else { return Ok((config, opts)) };
    let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
    Ok((ResolverConfig::from_parts(config.domain().cloned(), config.search().to_vec(), group), opts))
}

/// RFC 2782 order: by priority, and within a priority by weighted random selection, records of weight
/// 0 having a small chance. `pick(n)` returns a random number in `0..n`. (The resolver library returns
/// SRV records in the order of the answer.)
pub fn order_srv(mut records: Vec<Srv>, mut pick: impl FnMut(u32) -> u32) -> Vec<Srv> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_mut_slice();
    while let Some(first) = rest.first() {
        let prio = first.priority;
        let n = rest.iter().take_while(|r| r.priority == prio).count();
        let (group, tail) = rest.split_at_mut(n);
        let mut group: Vec<Srv> = group.to_vec();
        // Weight-0 records first, as the RFC's selection loop expects.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let r = pick(total.saturating_add(1));
            let mut sum = 0u32;
            let i = group
                .iter()
                .position(|rec| {
                    sum += u32::from(rec.weight);
                    sum >= r
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16) -> Srv {
        Srv { priority, weight, port, target: format!("t{port}.example") }
    }

    #[test]
    fn srv_order_is_by_priority_first() {
        let recs = vec![srv(20, 100, 2), srv(10, 0, 1), srv(30, 5, 3)];
        let mut x = 7u32;
        let out = order_srv(recs, |n| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            x % n
        });
        assert_eq!(out.iter().map(|s| s.port).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn srv_weights_share_the_first_place() {
        let mut rng = Rng::from_seed(3);
        let mut first = [0u32; 3];
        for _ in 0..3000 {
            let recs = vec![srv(10, 10, 0), srv(10, 30, 1), srv(10, 60, 2)];
            let out = order_srv(recs, |n| rng.next_u32() % n);
            assert_eq!(out.len(), 3);
            first[usize::from(out[0].port)] += 1;
        }
        // Expected shares 10 %, 30 %, 60 % (plus the one-in-101 draw of zero going to the first).
        assert!((200..=420).contains(&first[0]), "{first:?}");
        assert!((750..=1050).contains(&first[1]), "{first:?}");
        assert!((1600..=2000).contains(&first[2]), "{first:?}");
    }

    #[test]
    fn family_arranges_and_filters() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(Family::V4First.arrange(vec![v6, v4]), vec![v4, v6]);
        assert_eq!(Family::V6First.arrange(vec![v4, v6]), vec![v6, v4]);
        assert_eq!(Family::V4Only.arrange(vec![v6, v4]), vec![v4]);
        assert_eq!(Family::V6Only.arrange(vec![v6, v4]), vec![v6]);
    }

    #[test]
    fn resolv_conf_keeps_search_and_options_when_the_server_is_replaced() {
        let text = b"search lab.test\noptions ndots:2 timeout:1 attempts:1\n";
        let server: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let (c, o) = parse_resolv_conf(text, Some(server)).unwrap();
        assert_eq!(c.search().len(), 1);
        assert!(c.name_servers().iter().all(|n| n.socket_addr == server));
        assert_eq!((o.ndots, o.timeout, o.attempts), (2, Duration::from_secs(1), 1));
        assert!(parse_resolv_conf(b"search lab.test\n", None).is_err(), "no nameserver and none given");
    }
}
