//! The core's configuration: what to probe, how, and the failover and failback policy. Plain data with
//! no heap; the std side builds it from the phone's configuration files.

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::num::NonZeroU8;

use super::time::Duration;

/// The most attempts a ladder may have.
pub const MAX_ATTEMPTS: usize = 5;
/// The longest host name the core stores, in bytes.
pub const MAX_HOST_LEN: usize = 64;
/// The longest From user part the core stores, in bytes.
pub const MAX_USER_LEN: usize = 32;

/// Which of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Side {
    /// The primary PBX.
    Primary = 0,
    /// The backup PBX (the "Backup Destination").
    Backup = 1,
}

impl Side {
    /// The other side.
    pub const fn other(self) -> Side {
        match self {
            Side::Primary => Side::Backup,
            Side::Backup => Side::Primary,
        }
    }
    /// `0` for the primary, `1` for the backup.
    pub const fn index(self) -> usize {
        self as usize
    }
    /// `"primary"` or `"backup"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Backup => "backup",
        }
    }
    /// Both sides, primary first.
    pub const BOTH: [Side; 2] = [Side::Primary, Side::Backup];
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short ASCII string stored inline (host names, user parts).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    /// The empty string.
    pub const EMPTY: Self = InlineStr { len: 0, bytes: [0; N] };

    /// Copies `s`, or returns `None` if it is longer than `N` bytes or holds a character that cannot
    /// appear unescaped in a SIP URI host or user part.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() > N || b.len() > u8::MAX as usize {
            return None;
        }
        if !b.iter().all(|&c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:%".contains(&c)) {
            return None;
        }
        let mut bytes = [0u8; N];
        for (dst, src) in bytes.iter_mut().zip(b) {
            *dst = *src;
        }
        Some(InlineStr { len: b.len() as u8, bytes })
    }
    /// The stored string.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail; an empty string is the safe fallback.
        core::str::from_utf8(self.bytes.get(..self.len as usize).unwrap_or(&[])).unwrap_or("")
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A host name or address literal as written in a Request-URI.
pub type HostName = InlineStr<MAX_HOST_LEN>;

/// How probes reach one server: datagrams, or a stream flow (TCP, or TLS over TCP) that the caller
/// opens when the agent asks for it (see [`Agent::poll_flow`](super::Agent::poll_flow)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Transport {
    /// SIP over UDP: one datagram per probe.
    #[default]
    Udp = 0,
    /// SIP over TCP: one persistent flow per server.
    Tcp = 1,
    /// SIP over TLS (a `sips:` URI or `transport=tls`): one persistent flow per server.
    Tls = 2,
}

impl Transport {
    /// Whether probes travel on a flow the caller opens (TCP, TLS).
    pub const fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// `"udp"`, `"tcp"` or `"tls"`: the URI `transport` parameter and the name in events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
    /// The port a URI without one means: 5061 for TLS, 5060 otherwise (RFC 3261 19.1.2).
    pub const fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where the OPTIONS goes: the outbound proxy when one is configured for this side, else the server.
    pub next_hop: SocketAddr,
    /// The Request-URI host: the server's configured name or address.
    pub uri_host: HostName,
    /// The Request-URI port, when one is configured.
    pub uri_port: Option<u16>,
    /// The local address the probe leaves from (Via and Contact); the driver updates it once bound.
    pub local: SocketAddr,
    /// UDP, TCP or TLS. The Via names it; with TLS the Request-URI is a `sips:` URI, with TCP it
    /// carries `;transport=tcp`.
    pub transport: Transport,
    /// Further addresses of the same server, in order (its next SRV targets, RFC 3263 4.3), up to
    /// the first `None`: a cycle's attempt that goes unanswered hands the next attempt to the next
    /// address, an answer counts from any of the server's addresses, and a cycle starts at the
    /// address that answered last. Empty (all `None`) for a server at one address, whose ladder is
    /// the same as ever.
    pub alternates: [Option<SocketAddr>; MAX_ALTERNATES],
}

/// How many further addresses a server may have besides its next hop: with the next hop, one per
/// attempt of the seed's three-attempt ladder.
pub const MAX_ALTERNATES: usize = 2;

impl ServerConfig {
    /// The local address before the driver has bound a socket (`0.0.0.0:5060`).
    pub const UNBOUND: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5060));

    /// A server reached directly at `addr`, named `host` in the Request-URI.
    ///
    /// A host that does not fit [`HostName`] falls back to the address literal.
    pub fn new(addr: SocketAddr, host: &str) -> Self {
        ServerConfig {
            next_hop: addr,
            uri_host: HostName::new(host).unwrap_or_else(|| ip_host(addr)),
            uri_port: Some(addr.port()),
            local: ServerConfig::UNBOUND,
            transport: Transport::Udp,
            alternates: [None; MAX_ALTERNATES],
        }
    }

    /// How many addresses the server has: its next hop and the alternates up to the first `None`.
    pub fn hop_count(&self) -> usize {
        let more = self.alternates.iter().take_while(|a| a.is_some()).count();
        more.saturating_add(1)
    }

    /// Address `i` of the server, counted from the next hop (0) and round again past the last.
    pub fn hop(&self, i: usize) -> SocketAddr {
        match i.checked_rem(self.hop_count()).and_then(|i| i.checked_sub(1)) {
            Some(j) => self.alternates.get(j).copied().flatten().unwrap_or(self.next_hop),
            None => self.next_hop,
        }
    }

    /// Which of the server's addresses `addr` is.
    pub fn hop_index(&self, addr: SocketAddr) -> Option<usize> {
        (0..self.hop_count()).find(|i| self.hop(*i) == addr)
    }

    /// The same server reached over `transport`.
    pub const fn over(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }
}

fn ip_host(addr: SocketAddr) -> HostName {
    // The wire encoder's formatter writes the same text as `Display` without pulling in `core::fmt`
    // (about 3 KiB of code on a Cortex-M).
    let mut buf = [0u8; 48];
    let len = super::wire::write_ip(addr.ip(), &mut buf);
    core::str::from_utf8(buf.get(..len).unwrap_or(&[])).ok().and_then(HostName::new).unwrap_or(HostName::EMPTY)
}

/// The retry ladder of one probe cycle: how long to wait after each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    waits: [Duration; MAX_ATTEMPTS],
    attempts: u8,
}

impl Ladder {
    /// The seed's ladder: wait 800 ms, then 400 ms, then 400 ms.
    pub const DEFAULT: Ladder = Ladder {
        waits: [
            Duration::from_millis(800),
            Duration::from_millis(400),
            Duration::from_millis(400),
            Duration::ZERO,
            Duration::ZERO,
        ],
        attempts: 3,
    };

    /// A ladder with one attempt per entry of `waits`; `None` if empty, longer than [`MAX_ATTEMPTS`]
    /// or holding a zero wait.
    pub fn new(waits: &[Duration]) -> Option<Ladder> {
        if waits.is_empty() || waits.len() > MAX_ATTEMPTS || waits.contains(&Duration::ZERO) {
            return None;
        }
        let mut l = Ladder { waits: [Duration::ZERO; MAX_ATTEMPTS], attempts: waits.len() as u8 };
        for (slot, w) in l.waits.iter_mut().zip(waits) {
            *slot = *w;
        }
        Some(l)
    }
    /// How many attempts a cycle makes.
    pub const fn attempts(&self) -> u8 {
        self.attempts
    }
    /// The wait after attempt `n` (1-based); zero outside the ladder.
    pub fn wait(&self, n: u8) -> Duration {
        n.checked_sub(1)
            .and_then(|i| self.waits.get(i as usize))
            .copied()
            .filter(|_| n <= self.attempts)
            .unwrap_or(Duration::ZERO)
    }
    /// The waits in order.
    pub fn waits(&self) -> &[Duration] {
        // Never the fallback: `new` keeps `attempts` at most MAX_ATTEMPTS.
        self.waits.get(..usize::from(self.attempts)).unwrap_or(&[])
    }
    /// From the first attempt to the moment the server has failed the cycle.
    pub fn total(&self) -> Duration {
        // At most five waits of at most `Duration::MAX`: it can only saturate with absurd waits.
        self.waits().iter().fold(Duration::ZERO, |a, w| a.saturating_add(*w))
    }
}

/// Which final status codes mean "alive": a set over 100..=699 (anchor: Kamailio's
/// `ds_ping_reply_codes`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AliveCodes {
    bits: [u64; 10],
}

impl AliveCodes {
    /// The default: every 2xx, 3xx and 4xx except 408.
    // Evaluated at compile time: an index out of bounds would fail the build, not the firmware.
    #[allow(clippy::indexing_slicing)]
    pub const DEFAULT: AliveCodes = {
        let mut s = AliveCodes { bits: [0; 10] };
        let mut c = 200;
        while c < 500 {
            if c != 408 {
                let i = (c - 100) as usize;
                s.bits[i / 64] |= 1 << (i % 64);
            }
            c += 1;
        }
        s
    };
    /// No code is alive.
    pub const NONE: AliveCodes = AliveCodes { bits: [0; 10] };

    /// Adds codes `from..=to` (clamped to 100..=699).
    pub fn with_range(mut self, from: u16, to: u16) -> Self {
        for c in from.max(100)..=to.min(699) {
            self.set(c, true);
        }
        self
    }
    /// Removes code `code`.
    pub fn without(mut self, code: u16) -> Self {
        self.set(code, false);
        self
    }
    /// The word of `bits` that holds `code`, and its bit there; `None` outside 100..=699.
    fn bit(code: u16) -> Option<(usize, u64)> {
        let i = code.checked_sub(100).filter(|i| *i < 600)?;
        Some((usize::from(i / 64), 1 << (i % 64)))
    }
    fn set(&mut self, code: u16, on: bool) {
        let Some((word, bit)) = Self::bit(code) else { return };
        if let Some(w) = self.bits.get_mut(word) {
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
    /// Whether a final response with `code` means the server is alive.
    pub fn is_alive(&self, code: u16) -> bool {
        Self::bit(code).is_some_and(|(word, bit)| self.bits.get(word).is_some_and(|w| w & bit != 0))
    }
}

impl Default for AliveCodes {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Debug for AliveCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        // Runs of alive codes as `from-to`; 700 is never alive and closes the last run.
        let mut start = None;
        for c in 100..=700u16 {
            match (start, self.is_alive(c)) {
                (None, true) => start = Some(c),
                (Some(from), false) => {
                    l.entry(&format_args!("{from}-{}", c.saturating_sub(1)));
                    start = None;
                }
                _ => {}
            }
        }
        l.finish()
    }
}

/// When to return to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailbackMode {
    /// Return once the primary has been alive long enough and the phone is idle.
    Auto,
    /// Return only on [`Command::Failback`](super::Command::Failback) or a force.
    Manual,
    /// Stay on the backup until it fails.
    Never,
}

/// The failback policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failback {
    /// Auto, manual or never.
    pub mode: FailbackMode,
    /// Consecutive alive cycles of the primary before returning.
    pub after_cycles: NonZeroU8,
    /// The longest per-device delay before returning; each device draws its own delay in `0..=spread`
    /// so a fleet does not return all at once.
    pub spread: Duration,
}

impl Failback {
    /// Auto, after 2 cycles, no spread.
    pub const DEFAULT: Failback = Failback {
        mode: FailbackMode::Auto,
        after_cycles: match NonZeroU8::new(2) {
            Some(n) => n,
            None => NonZeroU8::MIN,
        },
        spread: Duration::ZERO,
    };
}

/// Optional faster detection, off by default so the seed's timing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastDetection {
    /// A send refused by the network (ICMP port unreachable) ends the attempt at once.
    pub refused_ends_attempt: bool,
    /// A SIP transaction failure reported by the firmware starts a probe cycle at once.
    pub transaction_failure_probes: bool,
}

impl FastDetection {
    /// Both off.
    pub const DEFAULT: FastDetection = FastDetection { refused_ends_attempt: false, transaction_failure_probes: false };
}

impl Default for FastDetection {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything the core needs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The primary server.
    pub primary: ServerConfig,
    /// The backup server; `None` when Backup Destination is disabled (probe the primary only, never
    /// switch).
    pub backup: Option<ServerConfig>,
    /// SIP Keep Alive Mode: when off, the agent sends no probes.
    pub keep_alive: bool,
    /// Keep Alive Interval: the time between cycle starts (default 15 s).
    pub interval: Duration,
    /// The retry ladder.
    pub ladder: Ladder,
    /// Which final status codes mean "alive".
    pub alive_codes: AliveCodes,
    /// The failback policy.
    pub failback: Failback,
    /// Optional faster detection.
    pub fast: FastDetection,
    /// How long before a planned maintenance window the phone may leave the affected server.
    pub planned_lead: Duration,
    /// The user part of From and Contact in probes.
    pub user: InlineStr<MAX_USER_LEN>,
    /// Keep-alive of idle stream flows (RFC 5626 CRLF ping and pong): the interval between pings,
    /// each drawn at 80 to 100 % of it; a pong missing after [`PONG_WAIT`](super::flow::PONG_WAIT)
    /// closes the flow and starts a probe cycle. Zero (the default) sends none.
    pub flow_keepalive: Duration,
}

impl Config {
    /// The Keep Alive Interval when none is configured: the seed's 15 s.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
    /// How long before a planned maintenance window the phone may leave, when not configured: 15 min.
    pub const DEFAULT_PLANNED_LEAD: Duration = Duration::from_secs(15 * 60);
    /// The From user of probes when none is configured.
    pub const DEFAULT_USER: &'static str = "keepalive";

    /// The defaults, with the primary at `addr` named `host` and no backup. These are the only
    /// defaults: the configuration file and the lab's scenarios start from the same constants
    /// ([`Config::DEFAULT_INTERVAL`], [`Ladder::DEFAULT`], [`AliveCodes::DEFAULT`],
    /// [`Failback::DEFAULT`], [`FastDetection::DEFAULT`], [`Config::DEFAULT_PLANNED_LEAD`],
    /// [`Config::DEFAULT_USER`]).
    pub fn new(addr: SocketAddr, host: &str) -> Self {
        Config {
            primary: ServerConfig::new(addr, host),
            backup: None,
            keep_alive: true,
            interval: Self::DEFAULT_INTERVAL,
            ladder: Ladder::DEFAULT,
            alive_codes: AliveCodes::DEFAULT,
            failback: Failback::DEFAULT,
            fast: FastDetection::DEFAULT,
            planned_lead: Self::DEFAULT_PLANNED_LEAD,
            user: InlineStr::new(Self::DEFAULT_USER).unwrap_or(InlineStr::EMPTY),
            flow_keepalive: Duration::ZERO,
        }
    }

    /// The same, with a backup at `addr` named `host`.
    pub fn with_backup(mut self, addr: SocketAddr, host: &str) -> Self {
        self.backup = Some(ServerConfig::new(addr, host));
        self
    }

    /// The server on `side`, if configured.
    pub fn server(&self, side: Side) -> Option<&ServerConfig> {
        match side {
            Side::Primary => Some(&self.primary),
            Side::Backup => self.backup.as_ref(),
        }
    }

    /// Checks the values that cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Duration::from_secs(1) {
            return Err(ConfigError::IntervalTooShort);
        }
        if self.ladder.total() > self.interval {
            return Err(ConfigError::LadderLongerThanInterval);
        }
        if self.flow_keepalive != Duration::ZERO && self.flow_keepalive < Duration::from_secs(1) {
            return Err(ConfigError::KeepAliveTooShort);
        }
        for s in Side::BOTH {
            if let Some(server) = self.server(s) {
                if (0..server.hop_count()).any(|i| server.hop(i).port() == 0) {
                    return Err(ConfigError::ZeroPort(s));
                }
                if server.uri_host.as_str().is_empty() {
                    return Err(ConfigError::EmptyHost(s));
                }
            }
        }
        Ok(())
    }
}

/// Why a [`Config`] cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The keep-alive interval is under one second.
    IntervalTooShort,
    /// The ladder's waits add up to more than the keep-alive interval, so cycles would overlap.
    LadderLongerThanInterval,
    /// A server's next hop or one of its alternates has port 0.
    ZeroPort(Side),
    /// A server's Request-URI host is empty.
    EmptyHost(Side),
    /// The flow keep-alive interval is set but under one second.
    KeepAliveTooShort,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::IntervalTooShort => f.write_str("keep-alive interval must be at least 1 s"),
            ConfigError::LadderLongerThanInterval => {
                f.write_str("the ladder's waits add up to more than the keep-alive interval")
            }
            ConfigError::ZeroPort(s) => write!(f, "{s} server port must not be 0"),
            ConfigError::EmptyHost(s) => write!(f, "{s} server host must not be empty"),
            ConfigError::KeepAliveTooShort => f.write_str("flow keep-alive interval must be 0 (off) or at least 1 s"),
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    #[test]
    fn a_host_that_does_not_fit_falls_back_to_the_address_as_display_writes_it() {
        let long = "h".repeat(MAX_HOST_LEN + 1);
        for addr in [
            "192.0.2.10:5060",
            "0.0.0.0:1",
            "255.255.255.255:65535",
            "[::1]:5060",
            "[::]:5060",
            "[2001:db8::7]:5060",
            "[2001:db8:0:0:1:0:0:1]:5060",
            "[fe80::1:2:3:4]:5060",
            "[1:2:3:4:5:6:7:8]:5060",
            "[::ffff:192.0.2.1]:5060",
            "[64:ff9b::c000:201]:5060",
        ] {
            let a: SocketAddr = addr.parse().unwrap();
            assert_eq!(ServerConfig::new(a, &long).uri_host.as_str(), a.ip().to_string(), "{addr}");
            assert_eq!(ServerConfig::new(a, "with space").uri_host.as_str(), a.ip().to_string(), "{addr}");
        }
    }
}
