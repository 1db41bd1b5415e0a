//! The Prometheus sink: counters, gauges and histograms kept from the events, served as the text
//! exposition on `GET /metrics` at `run --metrics ADDR:PORT` (or `network.metrics`).
//!
//! Labels are the server (`primary`, `backup`), a status class, or a reason: never one series per
//! probe or per phone. The sink only adds to atomics; the scrape is answered by a task of its own,
//! so a slow or stuck scraper never holds the loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::adapter::Sink;
use super::events::down_reason;
use crate::core::{CycleResult, Event, Instant, Side};

/// A label set: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// The round-trip-time buckets in seconds: around the ladder's 400 and 800 ms waits.
const RTT_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.2, 1.6];

/// The metrics, registered once; clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    probes: Family<Labels, Counter>,
    replies: Family<Labels, Counter>,
    rtt: Family<Labels, Histogram>,
    timeouts: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    cycles: Family<Labels, Counter>,
    up: Family<Labels, Gauge>,
    switches: Family<Labels, Counter>,
    active: Family<Labels, Gauge>,
    generation: Gauge,
    apply_failed: Counter,
    ignored: Family<Labels, Counter>,
    no_server: Counter,
    bell: Gauge,
    flows_opened: Family<Labels, Counter>,
    flows_up: Family<Labels, Counter>,
    flows_closed: Family<Labels, Counter>,
    flow_open: Family<Labels, Gauge>,
    /// A lab fleet's phones per side (`None` for one agent, whose side is `active`).
    fleet: Option<Family<Labels, Gauge>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series the agent exports, under the `sip_failover` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("sip_failover");
        let probes = Family::<Labels, Counter>::default();
        r.register("probes_sent", "OPTIONS probes sent, by server", probes.clone());
        let replies = Family::<Labels, Counter>::default();
        r.register("replies", "Matching replies, by server and status class (2xx..6xx)", replies.clone());
        let rtt = Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(RTT_BUCKETS));
        r.register("rtt_seconds", "Round-trip time of matching replies, by server", rtt.clone());
        let timeouts = Family::<Labels, Counter>::default();
        r.register("attempts_timed_out", "Attempts that got no reply in their wait, by server", timeouts.clone());
        let refused = Family::<Labels, Counter>::default();
        r.register("attempts_refused", "Attempts ended by a refusal (ICMP unreachable), by server", refused.clone());
        let cycles = Family::<Labels, Counter>::default();
        r.register("cycles", "Probe cycles, by server and result (alive, timeout, status, refused)", cycles.clone());
        let up = Family::<Labels, Gauge>::default();
        r.register("server_up", "1 while the server is up, 0 once it went down, by server", up.clone());
        let switches = Family::<Labels, Counter>::default();
        r.register("switches", "Switches of the service bundle, by reason", switches.clone());
        let active = Family::<Labels, Gauge>::default();
        r.register("active", "1 for the side whose bundle is in force, by side", active.clone());
        let generation = Gauge::default();
        r.register("generation", "The generation of the bundle in force", generation.clone());
        let apply_failed = Counter::default();
        r.register(
            "apply_failed",
            "Switches whose application failed (the previous bundle stayed)",
            apply_failed.clone(),
        );
        let ignored = Family::<Labels, Counter>::default();
        r.register("ignored_datagrams", "Datagrams ignored, by reason", ignored.clone());
        let no_server = Counter::default();
        r.register("no_server_reachable", "Cycles that ended with neither server reachable", no_server.clone());
        let bell = Gauge::default();
        r.register("bell", "The maintenance notices the phone's bell counts", bell.clone());
        let flows_opened = Family::<Labels, Counter>::default();
        r.register(
            "flows_opened",
            "TCP and TLS flows opened (connects begun), by server and transport",
            flows_opened.clone(),
        );
        let flows_up = Family::<Labels, Counter>::default();
        r.register("flows_up", "Flows connected (for TLS: the certificate verified), by server", flows_up.clone());
        let flows_closed = Family::<Labels, Counter>::default();
        r.register(
            "flows_closed",
            "Flows that failed or were closed, by server and reason (refused, closed, the TLS reasons, attempt_timed_out, ...)",
            flows_closed.clone(),
        );
        let flow_open = Family::<Labels, Gauge>::default();
        r.register("flow_up", "1 while the server's flow is connected, by server", flow_open.clone());
        Metrics {
            registry: Arc::new(r),
            probes,
            replies,
            rtt,
            timeouts,
            refused,
            cycles,
            up,
            switches,
            active,
            generation,
            apply_failed,
            ignored,
            no_server,
            bell,
            flows_opened,
            flows_up,
            flows_closed,
            flow_open,
            fleet: None,
        }
    }

    /// The series of a lab fleet of `phones` phones: the same counters summed over the phones
    /// (labels by server and reason, never by phone), and `phones{side}` (how many head to each
    /// side) instead of `active` and `generation`, which are one phone's.
    pub fn for_fleet(phones: usize) -> Self {
        let mut m = Self::new();
        let family = Family::<Labels, Gauge>::default();
        if let Some(r) = Arc::get_mut(&mut m.registry) {
            r.register("phones", "Lab fleet: phones heading to each side (switched there)", family.clone());
        }
        family.get_or_create(&side_label(Side::Primary)).set(i64::try_from(phones).unwrap_or(i64::MAX));
        family.get_or_create(&side_label(Side::Backup)).set(0);
        m.fleet = Some(family);
        m
    }

    /// The OpenMetrics text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The same in the Prometheus text format 0.0.4, for scrapers (and `promtool`) that do not ask
    /// for OpenMetrics.
    pub fn encode_prometheus(&self) -> String {
        prometheus_text(&self.encode())
    }

    fn set_active(&self, side: Side, generation: u64) {
        for s in [Side::Primary, Side::Backup] {
            self.active.get_or_create(&side_label(s)).set(i64::from(s == side));
        }
        self.generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Counts a core event.
    pub fn core(&self, ev: &Event) {
        match *ev {
            Event::ProbeSent { server, .. } => {
                self.probes.get_or_create(&server_label(server)).inc();
            }
            Event::Reply { server, status, rtt, .. } => {
                let mut l = server_label(server);
                l.push(("class", format!("{}xx", status / 100)));
                self.replies.get_or_create(&l).inc();
                self.rtt.get_or_create(&server_label(server)).observe(rtt.as_micros() as f64 / 1e6);
            }
            Event::AttemptTimedOut { server, .. } => {
                self.timeouts.get_or_create(&server_label(server)).inc();
            }
            Event::AttemptRefused { server, .. } => {
                self.refused.get_or_create(&server_label(server)).inc();
            }
            Event::CycleResult { server, result } => {
                let mut l = server_label(server);
                l.push((
                    "result",
                    match result {
                        CycleResult::Alive => "alive".into(),
                        CycleResult::Failed(r) => down_reason(&r).into(),
                    },
                ));
                self.cycles.get_or_create(&l).inc();
            }
            Event::ServerUp { server } => {
                self.up.get_or_create(&server_label(server)).set(1);
            }
            Event::ServerDown { server, .. } => {
                self.up.get_or_create(&server_label(server)).set(0);
            }
            Event::Switch { reason, from, to, .. } => {
                self.switches.get_or_create(&vec![("reason", reason.as_str().to_string())]).inc();
                if let Some(f) = &self.fleet {
                    f.get_or_create(&side_label(from)).dec();
                    f.get_or_create(&side_label(to)).inc();
                }
            }
            Event::Applied { side, generation } if self.fleet.is_none() => {
                self.set_active(side, u64::from(generation));
            }
            Event::ApplyFailed { .. } => {
                self.apply_failed.inc();
            }
            Event::Ignored { reason } => {
                self.ignored.get_or_create(&vec![("reason", reason.as_str().to_string())]).inc();
            }
            Event::NoServerReachable => {
                self.no_server.inc();
            }
            Event::FlowUp { server } => {
                self.flows_up.get_or_create(&server_label(server)).inc();
                self.flow_open.get_or_create(&server_label(server)).set(1);
            }
            Event::FlowDown { server, reason } => {
                let mut l = server_label(server);
                l.push(("reason", reason.as_str().to_string()));
                self.flows_closed.get_or_create(&l).inc();
                self.flow_open.get_or_create(&server_label(server)).set(0);
            }
            _ => {}
        }
    }

    /// Takes what a driver event says: the side in force at start and after a restore, the bell.
    pub fn driver(&self, name: &str, fields: &Map<String, Value>) {
        match name {
            "started" | "stopped" => {
                let side = fields.get("active").and_then(Value::as_str).and_then(super::events::parse_side);
                let generation = fields.get("generation").and_then(Value::as_u64);
                if let (Some(s), Some(g)) = (side, generation) {
                    self.set_active(s, g);
                }
            }
            "bell" => {
                if let Some(c) = fields.get("count").and_then(Value::as_i64) {
                    self.bell.set(c);
                }
            }
            "flow_open" => {
                let side = fields.get("server").and_then(Value::as_str).and_then(super::events::parse_side);
                let transport = fields.get("transport").and_then(Value::as_str).unwrap_or("tcp");
                if let Some(s) = side {
                    let mut l = server_label(s);
                    l.push(("transport", transport.to_string()));
                    self.flows_opened.get_or_create(&l).inc();
                }
            }
            _ => {}
        }
    }
}

fn server_label(s: Side) -> Labels {
    vec![("server", s.as_str().to_string())]
}

fn side_label(s: Side) -> Labels {
    vec![("side", s.as_str().to_string())]
}

/// OpenMetrics text as Prometheus text 0.0.4: a counter's HELP and TYPE name its `_total` samples,
/// and no `# EOF`.
pub fn prometheus_text(om: &str) -> String {
    let counters: Vec<&str> = om.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len() + 16 * counters.len());
    for l in om.lines() {
        if l == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|pre| {
            let rest = l.strip_prefix(pre)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{pre}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(l));
        out.push('\n');
    }
    out
}

/// The sink the driver feeds.
pub struct MetricsSink(pub Metrics);

impl Sink for MetricsSink {
    fn core(&mut self, _t: Instant, ev: &Event, _fields: &Map<String, Value>) {
        self.0.core(ev);
    }

    fn driver(&mut self, _t: Instant, name: &str, fields: &Map<String, Value>) {
        self.0.driver(name, fields);
    }
}

/// Binds `addr` now (so a malformed or taken address is an error at start) and serves `metrics` on
/// it in a task; must be called inside the tokio runtime.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let m = metrics.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &m)).await;
            });
        }
    });
    Ok(local)
}

/// Answers one HTTP/1.x request: `GET /metrics` (or `HEAD`) in OpenMetrics when the `Accept` header
/// asks for it (as Prometheus does), else in the Prometheus text format; 404 for other paths, 405 for other
/// methods; then closes.
async fn answer(mut s: TcpStream, m: &Metrics) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let line = head.lines().next().unwrap_or_default();
    let openmetrics = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") if openmetrics => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", m.encode())
        }
        ("GET" | "HEAD", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", m.encode_prometheus()),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain; charset=utf-8", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        s.write_all(body.as_bytes()).await?;
    }
    s.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Duration as CoreDuration, IgnoreReason, SwitchReason};

    #[test]
    fn events_become_labelled_series() {
        let m = Metrics::new();
        m.core(&Event::ProbeSent { server: Side::Primary, attempt: 1, cseq: 1 });
        m.core(&Event::Reply {
            server: Side::Primary,
            attempt: 1,
            status: 503,
            rtt: CoreDuration::from_micros(2_000),
            retry_after: None,
        });
        m.core(&Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Failover, generation: 1 });
        m.core(&Event::Applied { side: Side::Backup, generation: 1 });
        m.core(&Event::Ignored { reason: IgnoreReason::UnknownSource });
        let text = m.encode();
        let prom = prometheus_text(&text);
        assert!(prom.contains("# TYPE sip_failover_switches_total counter\n"), "{prom}");
        assert!(prom.contains("# HELP sip_failover_switches_total Switches"), "{prom}");
        assert!(prom.contains("# TYPE sip_failover_generation gauge\n"), "{prom}");
        assert!(!prom.contains("# EOF"), "{prom}");
        for want in [
            "sip_failover_probes_sent_total{server=\"primary\"} 1",
            "sip_failover_replies_total{server=\"primary\",class=\"5xx\"} 1",
            "sip_failover_rtt_seconds_bucket{le=\"0.0025\",server=\"primary\"} 1",
            "sip_failover_switches_total{reason=\"failover\"} 1",
            "sip_failover_active{side=\"backup\"} 1",
            "sip_failover_active{side=\"primary\"} 0",
            "sip_failover_generation 1",
            "sip_failover_ignored_datagrams_total{reason=\"unknown_source\"} 1",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
    }
}
