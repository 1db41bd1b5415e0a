//! Name resolution for the servers' next hops: at start (retrying until each name resolves), again
//! when the records' TTL runs out, and at once when a named server fails a cycle (the next candidate
//! of its SRV or address records, RFC 3263 section 4.3). A lookup runs in a task; its result comes
//! back to the loop as an [`Input::Lookup`], and a new next hop asks the loop to reconfigure the
//! agent. A failed lookup keeps the last next hop, is reported as `resolve_failed` (host, reason,
//! error code) and is retried with backoff; the other server's probing never waits for a lookup.

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use tokio::time::Instant as TInstant;

use super::adapter::{report_to, Action, Adapter, Ctx, Input, Sink};
use super::dns::{DnsError, Family, Resolved, Resolver, ResolverSettings};
use crate::config::{Endpoint, PhoneConfig};
use crate::core::{CycleResult, Event, Side, MAX_ALTERNATES};

/// Why a name is being looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The agent is starting or a configuration is being loaded.
    Startup,
    /// The records' TTL ran out.
    Ttl,
    /// The server failed a cycle: take the next candidate.
    ServerFailed,
    /// The last lookup failed: asked again after its backoff.
    Retry,
}

impl Refresh {
    fn as_str(self) -> &'static str {
        match self {
            Refresh::Startup => "startup",
            Refresh::Ttl => "ttl",
            Refresh::ServerFailed => "server_failed",
            Refresh::Retry => "retry",
        }
    }
}

/// A finished lookup.
#[derive(Debug)]
pub struct Lookup {
    side: Side,
    reason: Refresh,
    host: String,
    result: Result<Resolved, DnsError>,
}

#[derive(Debug, Default, Clone, Copy)]
struct SideName {
    /// The resolved next hop.
    addr: Option<SocketAddr>,
    /// The addresses after it in the lookup's order, for the ladder's later attempts.
    alternates: [Option<SocketAddr>; MAX_ALTERNATES],
    /// When its records run out.
    refresh_at: Option<TInstant>,
    /// A lookup is running.
    resolving: bool,
    /// Lookups that failed in a row (for the backoff).
    failures: u32,
}

/// The first retry after a failed lookup; each further failure doubles it up to [`RETRY_MAX`].
pub const RETRY_FIRST: StdDuration = StdDuration::from_secs(1);
/// The longest wait between lookups of a name that does not resolve.
pub const RETRY_MAX: StdDuration = StdDuration::from_secs(60);

fn retry_after(failures: u32) -> StdDuration {
    RETRY_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(6)).min(RETRY_MAX)
}

/// The next hops of both servers and their lookups.
#[derive(Debug)]
pub struct Names {
    resolver: Option<Resolver>,
    settings: ResolverSettings,
    family: Family,
    sides: [SideName; 2],
}

/// Where `cfg`'s resolver takes its configuration from.
pub fn settings_for(cfg: &PhoneConfig) -> ResolverSettings {
    ResolverSettings {
        server: cfg.network.dns_server,
        resolv_conf: cfg.network.resolv_conf.clone(),
        hosts: cfg.network.hosts_file.clone(),
    }
}

/// The resolver `cfg` asks for when a name needs one (the system's, with `cfg`'s overrides), or none.
pub fn resolver_for(cfg: &PhoneConfig) -> Result<Option<Resolver>, DnsError> {
    let needs_dns = Side::BOTH.iter().filter_map(|s| cfg.side(*s)).any(|s| s.next_hop().ip().is_none());
    if needs_dns {
        Resolver::from_settings(&settings_for(cfg)).map(Some)
    } else {
        Ok(None)
    }
}

impl Names {
    /// Resolves both next hops of `cfg`, retrying each name with backoff until it resolves: the core
    /// needs an address for each server before it can start.
    pub async fn start(
        cfg: &PhoneConfig,
        resolver: Option<Resolver>,
        sinks: &mut [Box<dyn Sink>],
        start: TInstant,
    ) -> Names {
        let family = Family::for_bind(cfg.network.bind);
        let mut sides = [SideName::default(); 2];
        // Both names at once: one that fails must not hold up the other.
        let lookups = Side::BOTH.map(|side| {
            let ep = cfg.side(side).map(|sc| sc.next_hop().clone());
            let resolver = resolver.clone();
            async move {
                match ep {
                    Some(ep) => Some((resolve(resolver.as_ref(), &ep, family).await, ep)),
                    None => None,
                }
            }
        });
        let [p, b] = lookups;
        let results = tokio::join!(p, b);
        for (side, result) in Side::BOTH.into_iter().zip([results.0, results.1]) {
            let Some((result, ep)) = result else { continue };
            let t = super::adapter::to_core(start, TInstant::now());
            sides[side.index()] = match result {
                Ok(r) => {
                    let chosen = choose(&r, None, Refresh::Startup);
                    report_to(sinks, t, "resolved", resolved_fields(side, &ep.host, chosen, &r, Refresh::Startup));
                    SideName {
                        addr: chosen,
                        alternates: alternates(&r, chosen),
                        refresh_at: r.ttl.map(|d| TInstant::now() + d),
                        resolving: false,
                        failures: 0,
                    }
                }
                Err(e) => {
                    // The agent starts without this server's address: it fails its cycles (nothing is
                    // sent to it) while the other server is probed, and the name is looked up again.
                    let retry = retry_after(1);
                    report_to(sinks, t, "resolve_failed", failed_fields(side, &ep.host, &e, Refresh::Startup, retry));
                    SideName {
                        addr: None,
                        alternates: [None; MAX_ALTERNATES],
                        refresh_at: Some(TInstant::now() + retry),
                        resolving: false,
                        failures: 1,
                    }
                }
            };
        }
        Names { resolver, settings: settings_for(cfg), family, sides }
    }

    /// Which configured sides have no address yet (their names did not resolve).
    pub fn unresolved(&self, cfg: &PhoneConfig) -> [bool; 2] {
        Side::BOTH.map(|s| cfg.side(s).is_some() && self.sides[s.index()].addr.is_none())
    }

    /// The address the agent is given for a server whose name did not resolve yet: the unspecified
    /// address of the probes' family, never sent to (the flows skip unresolved sides).
    pub fn placeholder(&self, cfg: &PhoneConfig, side: Side) -> SocketAddr {
        let port = cfg.side(side).map_or(5060, |s| s.next_hop().port.unwrap_or(s.next_hop().transport.default_port()));
        match self.family {
            Family::V6Only => SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), port),
            _ => SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port),
        }
    }

    /// Both next hops.
    pub fn hops(&self) -> [Option<SocketAddr>; 2] {
        self.sides.map(|s| s.addr)
    }

    /// `side`'s next hop.
    pub fn addr(&self, side: Side) -> Option<SocketAddr> {
        self.sides[side.index()].addr
    }

    /// `side`'s further addresses, after its next hop.
    pub fn alternates(&self, side: Side) -> [Option<SocketAddr>; MAX_ALTERNATES] {
        self.sides[side.index()].alternates
    }

    /// Takes the next hops of a configuration applied live; named servers are looked up again at once
    /// (the load had no TTL bookkeeping).
    pub fn replace(&mut self, cfg: &PhoneConfig, hops: [Option<SocketAddr>; 2]) {
        for side in Side::BOTH {
            let n = &mut self.sides[side.index()];
            n.addr = hops[side.index()];
            n.alternates = [None; MAX_ALTERNATES];
            n.refresh_at = None;
            if needs_dns(cfg, side) && !n.resolving {
                n.refresh_at = Some(TInstant::now());
            }
        }
    }

    /// Loads and resolves `cfg`'s next hops in the background of a live reload: with its own resolver,
    /// else this one, else the system's.
    pub fn resolve_all(
        &self,
        cfg: &PhoneConfig,
    ) -> impl std::future::Future<Output = Result<[Option<SocketAddr>; 2], String>> + 'static {
        let settings = settings_for(cfg);
        let resolver = match &self.resolver {
            Some(r) if settings == self.settings => Some(r.clone()),
            _ => Resolver::from_settings(&settings).ok(),
        };
        let family = self.family;
        let eps: Vec<(Side, Endpoint)> =
            Side::BOTH.iter().filter_map(|s| cfg.side(*s).map(|sc| (*s, sc.next_hop().clone()))).collect();
        async move {
            let mut hops = [None, None];
            for (side, ep) in eps {
                let r = resolve(resolver.as_ref(), &ep, family).await.map_err(|e| format!("{}: {e}", ep.host))?;
                hops[side.index()] = choose(&r, None, Refresh::Startup);
            }
            Ok(hops)
        }
    }

    fn lookup(&mut self, ctx: &Ctx, cfg: &PhoneConfig, side: Side, reason: Refresh) {
        let Some(sc) = cfg.side(side) else { return };
        let ep = sc.next_hop().clone();
        let n = &mut self.sides[side.index()];
        n.resolving = true;
        n.refresh_at = None;
        let resolver = self.resolver.clone();
        let family = self.family;
        let tx = ctx.tx.clone();
        tokio::spawn(async move {
            let result = resolve(resolver.as_ref(), &ep, family).await;
            let _ = tx.send(Input::Lookup(Lookup { side, reason, host: ep.host, result }));
        });
    }

    /// A lookup finished; asks for a reconfiguration when the next hop moved.
    pub fn on_input(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig, l: Lookup) -> Option<Action> {
        let Lookup { side, reason, host, result } = l;
        let n = &mut self.sides[side.index()];
        n.resolving = false;
        match result {
            Err(e) => {
                n.failures = n.failures.saturating_add(1);
                let retry = retry_after(n.failures);
                n.refresh_at = Some(TInstant::now() + retry);
                ctx.report("resolve_failed", failed_fields(side, &host, &e, reason, retry));
                None
            }
            Ok(r) => {
                n.failures = 0;
                n.refresh_at = r.ttl.map(|d| TInstant::now() + d);
                let current = n.addr;
                let chosen = choose(&r, current, reason);
                ctx.report("resolved", resolved_fields(side, &host, chosen, &r, reason));
                let still_named = cfg.side(side).is_some_and(|s| s.next_hop().host == host);
                let further = alternates(&r, chosen);
                let n = &mut self.sides[side.index()];
                if still_named && chosen.is_some() && (chosen != current || further != n.alternates) {
                    n.addr = chosen;
                    n.alternates = further;
                    return Some(Action::Reconfigure);
                }
                None
            }
        }
    }
}

impl Adapter for Names {
    fn wake_at(&self) -> Option<TInstant> {
        self.sides.iter().filter(|n| !n.resolving).filter_map(|n| n.refresh_at).min()
    }

    fn on_wake(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig) -> Option<Action> {
        let t = TInstant::now();
        for side in Side::BOTH {
            let n = &self.sides[side.index()];
            if !n.resolving && n.refresh_at.is_some_and(|r| r <= t) {
                let reason = if n.failures > 0 { Refresh::Retry } else { Refresh::Ttl };
                self.lookup(ctx, cfg, side, reason);
            }
        }
        None
    }

    fn on_event(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig, ev: &Event) {
        if let Event::CycleResult { server, result: CycleResult::Failed(_) } = *ev {
            // A name without an address yet is asked again on its own backoff, not every cycle.
            let n = &self.sides[server.index()];
            if !n.resolving && n.addr.is_some() && needs_dns(cfg, server) {
                self.lookup(ctx, cfg, server, Refresh::ServerFailed);
            }
        }
    }
}

/// Whether `side`'s next hop is a name (not an address literal).
pub fn needs_dns(cfg: &PhoneConfig, side: Side) -> bool {
    cfg.side(side).is_some_and(|s| s.next_hop().ip().is_none())
}

async fn resolve(resolver: Option<&Resolver>, ep: &Endpoint, family: Family) -> Result<Resolved, DnsError> {
    if let Some(a) = ep.socket_addr() {
        return Ok(Resolved::literal(a, ep.transport));
    }
    resolver.ok_or(DnsError::NoResolver)?.resolve(ep, family).await
}

/// The address to use from a lookup: after a failure, the next candidate; otherwise the current one
/// while it is still listed (no needless moves), else the best.
fn choose(r: &Resolved, current: Option<SocketAddr>, reason: Refresh) -> Option<SocketAddr> {
    match reason {
        Refresh::ServerFailed => r.candidates.iter().copied().find(|c| Some(*c) != current).or(current),
        _ => current.filter(|c| r.candidates.contains(c)).or_else(|| r.candidates.first().copied()),
    }
}

/// The addresses after `chosen` in the lookup's order (round from the first), for the ladder's later
/// attempts: with SRV records, the next targets.
fn alternates(r: &Resolved, chosen: Option<SocketAddr>) -> [Option<SocketAddr>; MAX_ALTERNATES] {
    let mut out = [None; MAX_ALTERNATES];
    let Some(chosen) = chosen else { return out };
    let at = r.candidates.iter().position(|c| *c == chosen).unwrap_or(0);
    let after = r.candidates.iter().cycle().skip(at + 1).take(r.candidates.len()).filter(|c| **c != chosen);
    for (slot, c) in out.iter_mut().zip(after) {
        *slot = Some(*c);
    }
    out
}

fn resolved_fields(side: Side, host: &str, chosen: Option<SocketAddr>, r: &Resolved, reason: Refresh) -> Value {
    json!({
        "server": side.as_str(),
        "host": host,
        "next_hop": chosen.map(|a| a.to_string()),
        "alternates": alternates(r, chosen).iter().flatten().map(|a| a.to_string()).collect::<Vec<_>>(),
        "candidates": r.candidates.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "ttl_s": r.ttl.map(|t| t.as_secs_f64()),
        "via_srv": r.via_srv,
        "via_naptr": r.via_naptr,
        "transport": r.transport.as_str(),
        "reason": reason.as_str(),
    })
}

fn failed_fields(side: Side, host: &str, e: &DnsError, reason: Refresh, retry: StdDuration) -> Value {
    json!({
        "server": side.as_str(),
        "host": host,
        "error": e.to_string(),
        "code": e.code(),
        "reason": reason.as_str(),
        "retry_s": retry.as_secs_f64(),
    })
}
