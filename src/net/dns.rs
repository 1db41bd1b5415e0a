//! A small DNS client over UDP: A, AAAA and SRV with their TTLs, and the RFC 3263 choice of a SIP
//! server's address.
//!
//! The message format is written here rather than taken from a crate: the agent asks three record
//! types of one resolver and reads three answer types, which is a few hundred lines; a full DNS
//! library would bring more code than the rest of the driver. Every read is bounds-checked and a
//! malformed answer is an error, never a panic.
//!
//! RFC 3263 for a name without a port: `_sip._udp.<name>` SRV records are ordered by priority, then by
//! weighted random within a priority (RFC 2782); each target is resolved with A/AAAA. When there is no
//! SRV record, the name itself is resolved with A/AAAA on port 5060.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::config::Endpoint;
use crate::core::rng::Rng;

/// The SIP port used when neither the configuration nor SRV gives one.
pub const SIP_PORT: u16 = 5060;
/// The shortest TTL the agent honours: a record with a TTL of 0 is looked up again after this.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// The longest TTL the agent honours.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

const MAX_NAME: usize = 255;
const MAX_RECORDS: usize = 64;

/// A record type the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    Aaaa,
    /// A service location (RFC 2782).
    Srv,
}

impl RecordType {
    /// The type's number on the wire.
    pub const fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
            RecordType::Srv => 33,
        }
    }
}

const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

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

/// The records of one answer that matter to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// Addresses (A or AAAA).
    pub addrs: Vec<IpAddr>,
    /// SRV records.
    pub srv: Vec<Srv>,
    /// The smallest TTL among the records used, when there was one.
    pub ttl: Option<Duration>,
}

/// Why a lookup failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no record of the type asked for.
    NoRecords,
    /// The server answered with an error code (RCODE).
    Server(u8),
    /// No answer within the timeout, after every retry.
    Timeout,
    /// The answer could not be parsed.
    Malformed(&'static str),
    /// The name cannot be put in a query.
    BadName,
    /// No resolver is configured and none was found in `/etc/resolv.conf`.
    NoResolver,
    /// A socket error.
    Io(io::Error),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NxDomain => f.write_str("no such name"),
            DnsError::NoRecords => f.write_str("no record of that type"),
            DnsError::Server(rc) => write!(f, "resolver answered with error code {rc}"),
            DnsError::Timeout => f.write_str("no answer from the resolver"),
            DnsError::Malformed(why) => write!(f, "malformed answer: {why}"),
            DnsError::BadName => f.write_str("name cannot be looked up"),
            DnsError::NoResolver => f.write_str("no resolver configured or found in /etc/resolv.conf"),
            DnsError::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

impl std::error::Error for DnsError {}

impl From<io::Error> for DnsError {
    fn from(e: io::Error) -> Self {
        DnsError::Io(e)
    }
}

/// Which address families to look up, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// A, then AAAA.
    #[default]
    V4First,
    /// AAAA, then A.
    V6First,
    /// A only (an IPv4 bind address).
    V4Only,
    /// AAAA only (an IPv6 bind address that is not `::`).
    V6Only,
}

impl Family {
    /// The family fitting a bind address: none or `::` takes both, IPv4-first; a specific address
    /// only its own.
    pub fn for_bind(bind: Option<IpAddr>) -> Family {
        match bind {
            None => Family::V4First,
            Some(IpAddr::V6(a)) if a.is_unspecified() => Family::V4First,
            Some(IpAddr::V6(_)) => Family::V6Only,
            Some(IpAddr::V4(_)) => Family::V4Only,
        }
    }
    fn types(self) -> &'static [RecordType] {
        match self {
            Family::V4First => &[RecordType::A, RecordType::Aaaa],
            Family::V6First => &[RecordType::Aaaa, RecordType::A],
            Family::V4Only => &[RecordType::A],
            Family::V6Only => &[RecordType::Aaaa],
        }
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
}

/// An async DNS client for one resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    server: SocketAddr,
    timeout: Duration,
    tries: u8,
    rng: Arc<Mutex<Rng>>,
}

impl Resolver {
    /// A client of the resolver at `server`, waiting 1 s per try, 3 tries.
    pub fn new(server: SocketAddr) -> Self {
        Resolver {
            server,
            timeout: Duration::from_secs(1),
            tries: 3,
            rng: Arc::new(Mutex::new(Rng::from_key(super::entropy::key()))),
        }
    }

    /// A client of the first `nameserver` in `/etc/resolv.conf`.
    pub fn from_system() -> Result<Self, DnsError> {
        system_nameserver(Path::new("/etc/resolv.conf")).map(Resolver::new).ok_or(DnsError::NoResolver)
    }

    /// The same client with another per-try timeout and number of tries (at least 1).
    pub fn with_timeout(mut self, timeout: Duration, tries: u8) -> Self {
        self.timeout = timeout;
        self.tries = tries.max(1);
        self
    }

    /// The resolver's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    fn next_u32(&self) -> u32 {
        match self.rng.lock() {
            Ok(mut r) => r.next_u32(),
            Err(p) => p.into_inner().next_u32(),
        }
    }

    /// One query: the records of `rtype` for `name`, following CNAMEs inside the answer.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
        let name = normalize(name).ok_or(DnsError::BadName)?;
        let id = (self.next_u32() & 0xffff) as u16;
        let msg = encode_query(id, &name, rtype)?;
        let bind: SocketAddr = match self.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(self.server).await?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..self.tries {
            sock.send(&msg).await?;
            let deadline = tokio::time::Instant::now() + self.timeout;
            // Skip answers that are not ours (wrong id or question) until the try's deadline.
            for _ in 0..16 {
                let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    Ok(Err(e)) => return Err(e.into()),
                    Ok(Ok(n)) => n,
                };
                match decode_answer(&buf[..n], id, &name, rtype) {
                    Err(DnsError::Malformed("not our query")) => continue,
                    other => return other,
                }
            }
        }
        Err(DnsError::Timeout)
    }

    /// The addresses of `name` in the order `family` asks; an error only if every type failed.
    pub async fn lookup_ip(&self, name: &str, family: Family) -> Result<Answer, DnsError> {
        let mut out = Answer::default();
        let mut last_err = None;
        for &t in family.types() {
            match self.query(name, t).await {
                Ok(a) if !a.addrs.is_empty() => {
                    out.addrs.extend(a.addrs);
                    out.ttl = min_ttl(out.ttl, a.ttl);
                }
                Ok(_) => last_err = last_err.or(Some(DnsError::NoRecords)),
                Err(e) => last_err = Some(e),
            }
        }
        if out.addrs.is_empty() {
            Err(last_err.unwrap_or(DnsError::NoRecords))
        } else {
            Ok(out)
        }
    }

    /// Where to send SIP for `ep` (RFC 3263): an IP literal as is; a name with a port through A/AAAA;
    /// a name without a port through `_sip._udp` SRV first, falling back to A/AAAA on port 5060.
    pub async fn resolve(&self, ep: &Endpoint, family: Family) -> Result<Resolved, DnsError> {
        if let Some(ip) = ep.ip() {
            return Ok(Resolved {
                candidates: vec![SocketAddr::new(ip, ep.port.unwrap_or(SIP_PORT))],
                ttl: None,
                via_srv: false,
            });
        }
        if let Some(port) = ep.port {
            let a = self.lookup_ip(&ep.host, family).await?;
            return Ok(Resolved {
                candidates: a.addrs.into_iter().map(|ip| SocketAddr::new(ip, port)).collect(),
                ttl: Some(clamp_ttl(a.ttl)),
                via_srv: false,
            });
        }
        let srv_name = format!("_sip._udp.{}", ep.host.trim_end_matches('.'));
        match self.query(&srv_name, RecordType::Srv).await {
            Ok(ans) if !ans.srv.is_empty() => {
                let ordered = order_srv(ans.srv, |n| self.next_u32() % n);
                let mut candidates = Vec::new();
                let mut ttl = ans.ttl;
                let mut last_err = None;
                for srv in ordered.iter().filter(|s| s.target != ".") {
                    match self.lookup_ip(&srv.target, family).await {
                        Ok(a) => {
                            ttl = min_ttl(ttl, a.ttl);
                            candidates.extend(a.addrs.into_iter().map(|ip| SocketAddr::new(ip, srv.port)));
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                if candidates.is_empty() {
                    return Err(last_err.unwrap_or(DnsError::NoRecords));
                }
                Ok(Resolved { candidates, ttl: Some(clamp_ttl(ttl)), via_srv: true })
            }
            Ok(_) | Err(DnsError::NxDomain) | Err(DnsError::NoRecords) => {
                let a = self.lookup_ip(&ep.host, family).await?;
                Ok(Resolved {
                    candidates: a.addrs.into_iter().map(|ip| SocketAddr::new(ip, SIP_PORT)).collect(),
                    ttl: Some(clamp_ttl(a.ttl)),
                    via_srv: false,
                })
            }
            Err(e) => Err(e),
        }
    }
}

fn min_ttl(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn clamp_ttl(t: Option<Duration>) -> Duration {
    t.unwrap_or(MIN_TTL).clamp(MIN_TTL, MAX_TTL)
}

/// The first `nameserver` line of a resolv.conf file, on port 53.
pub fn system_nameserver(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // A scoped IPv6 address (fe80::1%eth0) loses its scope: the agent cannot use it.
        let w = words.next()?;
        let ip: IpAddr = w.split('%').next()?.parse().ok()?;
        Some(SocketAddr::new(ip, 53))
    })
}

/// RFC 2782 order: by priority, and within a priority by weighted random selection, records of weight
/// 0 having a small chance. `pick(n)` returns a random number in `0..n`.
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

/// A lower-case name without its trailing dot, if it fits in a query.
fn normalize(name: &str) -> Option<String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() < MAX_NAME
        && n.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_graphic()));
    ok.then_some(n)
}

/// A recursive query for `name`/`rtype` with id `id`.
pub fn encode_query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, DnsError> {
    let name = normalize(name).ok_or(DnsError::BadName)?;
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&rtype.code().to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, DnsError> {
        let b = *self.msg.get(self.pos).ok_or(DnsError::Malformed("truncated"))?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, DnsError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, DnsError> {
        Ok(u32::from_be_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Malformed("truncated"))?;
        let b = self.msg.get(self.pos..end).ok_or(DnsError::Malformed("truncated"))?;
        self.pos = end;
        Ok(b)
    }
    /// A possibly compressed name, lower case, without the trailing dot.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        for _ in 0..128 {
            let len = *self.msg.get(pos).ok_or(DnsError::Malformed("truncated name"))?;
            match len {
                0 => {
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    if out.is_empty() {
                        out.push('.');
                    }
                    return Ok(out);
                }
                l if l & 0xc0 == 0xc0 => {
                    let lo = *self.msg.get(pos + 1).ok_or(DnsError::Malformed("truncated pointer"))?;
                    if !jumped {
                        self.pos = pos + 2;
                    }
                    jumped = true;
                    pos = (usize::from(l & 0x3f) << 8) | usize::from(lo);
                }
                l if l & 0xc0 != 0 => return Err(DnsError::Malformed("bad label type")),
                l => {
                    let label = self
                        .msg
                        .get(pos + 1..pos + 1 + usize::from(l))
                        .ok_or(DnsError::Malformed("truncated label"))?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
                    if out.len() > MAX_NAME {
                        return Err(DnsError::Malformed("name too long"));
                    }
                    pos += 1 + usize::from(l);
                }
            }
        }
        Err(DnsError::Malformed("name pointer loop"))
    }
}

/// Reads the answer to query `id` for `name`/`rtype`. An answer to another query is reported as
/// `Malformed("not our query")`.
pub fn decode_answer(msg: &[u8], id: u16, name: &str, rtype: RecordType) -> Result<Answer, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let got_id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    let an = r.u16()?;
    let _ns = r.u16()?;
    let _ar = r.u16()?;
    if got_id != id || flags & 0x8000 == 0 || qd != 1 {
        return Err(DnsError::Malformed("not our query"));
    }
    let qname = r.name()?;
    let qtype = r.u16()?;
    let _qclass = r.u16()?;
    if qname != name || qtype != rtype.code() {
        return Err(DnsError::Malformed("not our query"));
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Err(DnsError::NxDomain),
        rc => return Err(DnsError::Server(rc)),
    }
    // Follow CNAMEs within the answer: records count only for the name or an alias it leads to.
    let mut owners = vec![qname];
    let mut out = Answer::default();
    for _ in 0..usize::from(an).min(MAX_RECORDS) {
        let owner = r.name()?;
        let t = r.u16()?;
        let class = r.u16()?;
        let ttl = Duration::from_secs(u64::from(r.u32()? & 0x7fff_ffff));
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let data = r.bytes(len)?;
        if class != CLASS_IN || !owners.contains(&owner) {
            continue;
        }
        match t {
            TYPE_CNAME => {
                let mut sub = Reader { msg, pos: start };
                let alias = sub.name()?;
                if owners.len() < 8 {
                    owners.push(alias);
                }
                out.ttl = min_ttl(out.ttl, Some(ttl));
                continue;
            }
            1 if rtype == RecordType::A => {
                let b: [u8; 4] = data.try_into().map_err(|_| DnsError::Malformed("bad A record"))?;
                out.addrs.push(IpAddr::V4(Ipv4Addr::from(b)));
            }
            28 if rtype == RecordType::Aaaa => {
                let b: [u8; 16] = data.try_into().map_err(|_| DnsError::Malformed("bad AAAA record"))?;
                out.addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            33 if rtype == RecordType::Srv => {
                let mut sub = Reader { msg, pos: start };
                let priority = sub.u16()?;
                let weight = sub.u16()?;
                let port = sub.u16()?;
                let target = sub.name()?;
                if sub.pos > start + len {
                    return Err(DnsError::Malformed("bad SRV record"));
                }
                out.srv.push(Srv { priority, weight, port, target });
            }
            _ => continue,
        }
        out.ttl = min_ttl(out.ttl, Some(ttl));
    }
    if out.addrs.is_empty() && out.srv.is_empty() {
        return Err(DnsError::NoRecords);
    }
    Ok(out)
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
    fn query_round_trips_through_a_hand_made_answer() {
        let q = encode_query(0x1234, "pbx.Example.", RecordType::A).unwrap();
        let mut a = q.clone();
        a[2] |= 0x80; // QR
        a[7] = 2; // ANCOUNT
                  // CNAME pbx.example -> real.example, then A for real.example.
        a.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 30, 0, 7, 4, b'r', b'e', b'a', b'l', 0xc0, 16]);
        a.extend_from_slice(&[4, b'r', b'e', b'a', b'l', 0xc0, 16, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 127, 0, 0, 9]);
        let ans = decode_answer(&a, 0x1234, "pbx.example", RecordType::A).unwrap();
        assert_eq!(ans.addrs, vec![IpAddr::from([127, 0, 0, 9])]);
        assert_eq!(ans.ttl, Some(Duration::from_secs(10)));
    }

    #[test]
    fn hostile_answers_are_errors_not_panics() {
        let q = encode_query(1, "a.example", RecordType::Srv).unwrap();
        for cut in 0..q.len() {
            let mut m = q[..cut].to_vec();
            if m.len() > 2 {
                m[2] |= 0x80;
            }
            assert!(decode_answer(&m, 1, "a.example", RecordType::Srv).is_err());
        }
        // A pointer loop in the answer's owner name.
        let mut m = q.clone();
        m[2] |= 0x80;
        m[7] = 1;
        let at = m.len();
        m.extend_from_slice(&[0xc0, at as u8, 0, 33, 0, 1, 0, 0, 0, 1, 0, 0]);
        assert!(decode_answer(&m, 1, "a.example", RecordType::Srv).is_err());
    }
}
