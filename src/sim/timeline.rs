//! The timeline of one watched phone and the pair: recorded as it happens, printed as live text
//! lines, written as JSON lines and drawn as an SVG picture (a lane per server with probe, reply and
//! timeout marks, shaded fault intervals, the phone's TCP and TLS flows from opening to closing,
//! switch markers, switches held by a call, the phone's calls, published notices with their
//! windows, and the active side as a band).

use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::model::{FaultChange, Health};
use super::summary::{millis, secs};
use crate::core::{DownReason, Duration, Event, Instant, PlannedWindow, Side, Transport};
use crate::net::events::event_fields;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum What {
    /// The watched phone's agent reported an event.
    Agent(Event),
    /// A server of the pair changed health.
    Fault(FaultChange),
    /// The watched phone began opening a flow (TCP connect, then for TLS the handshake) as its agent
    /// asked; the agent's `FlowUp` and `FlowDown` events say what became of it.
    FlowOpen {
        /// To which server.
        server: Side,
        /// The agent's id of the flow.
        id: u16,
        /// TCP or TLS.
        transport: Transport,
    },
    /// The phone's call started (`true`) or ended (`false`), as the scenario scripts it.
    Call(bool),
    /// A maintenance notice was published (on the lab's status page, in real time).
    NoticePublished {
        /// Its id.
        id: String,
        /// The server it affects.
        server: Side,
        /// Its window's start, on the run's clock.
        start: Instant,
        /// Its window's end.
        end: Instant,
    },
    /// The watched phone took these planned windows (all it holds), from the notices it learnt of:
    /// on virtual time as each is published, in real time when its status page poll brings them.
    Windows(Vec<PlannedWindow>),
    /// The watched phone's poll of the status page failed; the notices it had stay.
    PageError(String),
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When, on the run's clock.
    pub t: Instant,
    /// What.
    pub what: What,
}

/// The recorded run of the watched phone.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// The scenario's name.
    pub name: String,
    /// How long the run lasts.
    pub duration: Duration,
    /// Every record, in order.
    pub records: Vec<Record>,
}

impl Timeline {
    /// An empty timeline for scenario `name` lasting `duration`.
    pub fn new(name: &str, duration: Duration) -> Self {
        Timeline { name: name.to_string(), duration, records: Vec::new() }
    }

    /// Appends a record.
    pub fn push(&mut self, t: Instant, what: What) {
        self.records.push(Record { t, what });
    }

    /// The records as JSON lines (`event`, `t_ms`, `t_us`, then the event's fields, as `run --events
    /// json` writes them; fault changes as `event: "fault"` with `server`, `health`, `fault`).
    pub fn write_jsonl(&self, mut out: impl Write) -> io::Result<()> {
        for r in &self.records {
            writeln!(out, "{}", json_line(r))?;
        }
        Ok(())
    }

    /// The picture as an SVG document.
    pub fn svg(&self) -> String {
        svg(self)
    }
}

/// One record as a JSON object.
pub fn json_line(r: &Record) -> Value {
    let mut m = Map::new();
    let (name, fields) = match &r.what {
        What::Agent(e) => (e.name(), event_fields(e)),
        What::Fault(f) => {
            let mut fm = Map::new();
            fm.insert("server".into(), json!(f.server.as_str()));
            fm.insert("health".into(), json!(f.health.as_str()));
            fm.insert("fault".into(), json!(f.label));
            ("fault", fm)
        }
        What::FlowOpen { server, id, transport } => {
            let mut fm = Map::new();
            fm.insert("server".into(), json!(server.as_str()));
            fm.insert("flow".into(), json!(id));
            fm.insert("transport".into(), json!(transport.as_str()));
            ("flow_open", fm)
        }
        What::Call(active) => {
            let mut fm = Map::new();
            fm.insert("state".into(), json!(if *active { "start" } else { "end" }));
            ("call", fm)
        }
        What::NoticePublished { id, server, start, end } => {
            let mut fm = Map::new();
            fm.insert("id".into(), json!(id));
            fm.insert("server".into(), json!(server.as_str()));
            fm.insert("start_us".into(), json!(start.as_micros()));
            fm.insert("end_us".into(), json!(end.as_micros()));
            ("notice_published", fm)
        }
        What::Windows(windows) => {
            let mut fm = Map::new();
            let list: Vec<Value> = windows
                .iter()
                .map(|w| json!({"server": w.side.as_str(), "start_us": w.start.as_micros(), "end_us": w.end.as_micros()}))
                .collect();
            fm.insert("windows".into(), json!(list));
            ("planned_windows", fm)
        }
        What::PageError(e) => {
            let mut fm = Map::new();
            fm.insert("error".into(), json!(e));
            ("statuspage_error", fm)
        }
    };
    m.insert("event".into(), json!(name));
    m.insert("t_ms".into(), json!(r.t.as_millis()));
    m.insert("t_us".into(), json!(r.t.as_micros()));
    m.extend(fields);
    Value::Object(m)
}

/// Whether a record is worth a live line (ignored datagrams and acknowledgements are not).
pub fn is_shown(r: &Record) -> bool {
    !matches!(r.what, What::Agent(Event::Ignored { .. }) | What::Agent(Event::Applied { .. }))
}

fn side_col(s: Side) -> &'static str {
    match s {
        Side::Primary => "primary",
        Side::Backup => "backup ",
    }
}

/// The text of a live line, without the time prefix.
pub fn describe(r: &Record) -> String {
    match &r.what {
        What::FlowOpen { server, id, transport } => {
            format!("{}  =. opening {} flow {id}", side_col(*server), transport.as_str())
        }
        What::Call(true) => "phone    ~~ call started".to_string(),
        What::Call(false) => "phone    ~~ call ended".to_string(),
        What::NoticePublished { id, server, start, end } => format!(
            "{}  ## notice {id} published: maintenance from {} to {}",
            side_col(*server),
            secs(*start - Instant::ZERO),
            secs(*end - Instant::ZERO)
        ),
        What::Windows(windows) if windows.is_empty() => "    planned windows: none".to_string(),
        What::Windows(windows) => {
            let list: Vec<String> = windows
                .iter()
                .map(|w| format!("{} {} to {}", w.side, secs(w.start - Instant::ZERO), secs(w.end - Instant::ZERO)))
                .collect();
            format!("    planned windows taken: {}", list.join(", "))
        }
        What::PageError(e) => format!("!!! status page: {e}"),
        What::Fault(f) => match f.health {
            Health::Normal => format!("{}  ** recovered: answering normally", side_col(f.server)),
            _ => format!("{}  ** fault: {} ({})", side_col(f.server), f.label, f.health.as_str()),
        },
        What::Agent(e) => match *e {
            Event::ProbeSent { server, attempt, cseq } => {
                format!("{}  -> OPTIONS attempt {attempt} (CSeq {cseq})", side_col(server))
            }
            Event::Reply { server, attempt, status, rtt, retry_after } => format!(
                "{}  <- {status} to attempt {attempt}, rtt {}{}",
                side_col(server),
                millis(rtt),
                retry_after.map_or(String::new(), |r| format!(", Retry-After {r}"))
            ),
            Event::AttemptTimedOut { server, attempt } => {
                format!("{}  .. no reply to attempt {attempt}", side_col(server))
            }
            Event::AttemptRefused { server, attempt } => {
                format!("{}  xx attempt {attempt} refused (port unreachable, or its flow failed)", side_col(server))
            }
            Event::ServerUp { server } => format!("{}  UP", side_col(server)),
            Event::ServerDown { server, reason } => format!(
                "{}  DOWN ({})",
                side_col(server),
                match reason {
                    DownReason::Timeout => "no reply within the ladder".to_string(),
                    DownReason::Refused => "refused".to_string(),
                    DownReason::Flow(e) => format!("flow failed: {e}"),
                    DownReason::Status { code, retry_after: Some(r) } => format!("status {code}, Retry-After {r}"),
                    DownReason::Status { code, retry_after: None } => format!("status {code}"),
                }
            ),
            Event::Switch { from, to, reason, generation } => {
                format!(">>> SWITCH {from} -> {to} ({}, generation {generation})", reason.as_str())
            }
            Event::Applied { side, generation } => format!("    applied {side} (generation {generation})"),
            Event::NoServerReachable => "!!! no server reachable: staying put".to_string(),
            Event::Held { to, .. } => format!("    switch to {to} held: call in progress"),
            Event::Ignored { reason } => format!("    ignored a datagram ({})", reason.as_str()),
            Event::FlowUp { server } => format!("{}  == flow up", side_col(server)),
            Event::FlowDown { server, reason } => format!("{}  =/ flow closed ({reason})", side_col(server)),
            other => format!("    {}", other.name()),
        },
    }
}

/// A live line: `[  16.600s /  50s ]` then the description.
pub fn live_line(r: &Record, duration: Duration) -> String {
    let t = r.t.as_millis();
    format!("[{:>4}.{:03}s / {}s ] {}", t / 1000, t % 1000, duration.as_millis().div_ceil(1000), describe(r))
}

// ---- the picture ----

const W: f64 = 1200.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const LANE_H: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn svg(tl: &Timeline) -> String {
    let span = tl.duration.as_micros().max(1) as f64;
    let plot = W - LEFT - RIGHT;
    let x = |t: Instant| LEFT + plot * (t.as_micros() as f64 / span).min(1.0);
    let lane_top = |s: Side| 60.0 + s.index() as f64 * (LANE_H + 20.0);
    let band_top = 60.0 + 2.0 * (LANE_H + 20.0);
    let axis_y = band_top + 34.0;
    let h = axis_y + 86.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">sip-failover lab: {}</text>"#,
        esc(&tl.name)
    );
    // Lanes.
    for s in Side::BOTH {
        let y = lane_top(s);
        let _ = writeln!(
            o,
            r##"<rect x="{LEFT}" y="{y}" width="{plot}" height="{LANE_H}" fill="#f6f8fa" stroke="#d0d7de"/>"##
        );
        let _ = writeln!(o, r#"<text x="10" y="{}" font-weight="bold">{s}</text>"#, y + LANE_H / 2.0 + 4.0);
    }
    // Fault intervals.
    let mut open: [Option<(Instant, Health, String)>; 2] = [None, None];
    let shade = |o: &mut String, s: Side, from: Instant, to: Instant, health: Health, label: &str| {
        let (x0, x1) = (x(from), x(to));
        let fill = if health == Health::Down { "#ff8182" } else { "#f2cc60" };
        let y = lane_top(s);
        let _ = writeln!(
            o,
            r#"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="{LANE_H}" fill="{fill}" fill-opacity="0.35"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            esc(label)
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{}" font-size="10" fill="#82071e">{}</text>"##,
            x0 + 2.0,
            y + 10.0,
            esc(label)
        );
    };
    for r in &tl.records {
        if let What::Fault(f) = &r.what {
            let i = f.server.index();
            if let Some((from, health, label)) = open[i].take() {
                shade(&mut o, f.server, from, r.t, health, &label);
            }
            if f.health != Health::Normal {
                open[i] = Some((r.t, f.health, f.label.clone()));
            }
        }
    }
    for s in Side::BOTH {
        if let Some((from, health, label)) = open[s.index()].take() {
            shade(&mut o, s, from, Instant::ZERO + tl.duration, health, &label);
        }
    }
    // Published notices: a mark in the server's lane when published, the window shaded.
    for r in &tl.records {
        if let What::NoticePublished { id, server, start, end } = &r.what {
            let y = lane_top(*server);
            let (x0, x1) = (x(*start), x(*end));
            let _ = writeln!(
                o,
                r##"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="{LANE_H}" fill="#0969da" fill-opacity="0.12" stroke="#0969da" stroke-dasharray="3,3"><title>planned window {} ({} to {} ms)</title></rect>"##,
                (x1 - x0).max(1.0),
                esc(id),
                start.as_millis(),
                end.as_millis()
            );
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{}" font-size="10" fill="#0969da">planned {}</text>"##,
                x0 + 2.0,
                y + LANE_H - 12.0,
                esc(id)
            );
            let t = x(r.t);
            let _ = writeln!(
                o,
                r##"<path d="M{:.1},{y} l5,-7 l-10,0 z" fill="#0969da"><title>notice {} published at {} ms</title></path>"##,
                t,
                esc(id),
                r.t.as_millis()
            );
        }
    }
    // Probe, reply, timeout marks.
    for r in &tl.records {
        let What::Agent(e) = &r.what else { continue };
        let t = x(r.t);
        match *e {
            Event::ProbeSent { server, attempt, .. } => {
                let y = lane_top(server) + 4.0;
                let len = 8.0 + 4.0 * f64::from(attempt);
                let _ = writeln!(
                    o,
                    r##"<line x1="{t:.1}" y1="{y}" x2="{t:.1}" y2="{}" stroke="#57606a" stroke-width="1"><title>probe attempt {attempt} at {} ms</title></line>"##,
                    y + len,
                    r.t.as_millis()
                );
            }
            Event::Reply { server, status, rtt, attempt, .. } => {
                let y = lane_top(server) + 34.0;
                let fill = if (200..500).contains(&status) && status != 408 { "#1a7f37" } else { "#bc4c00" };
                let _ = writeln!(
                    o,
                    r#"<circle cx="{t:.1}" cy="{y}" r="3.5" fill="{fill}"><title>{status} to attempt {attempt}, rtt {}</title></circle>"#,
                    millis(rtt)
                );
            }
            Event::AttemptTimedOut { server, attempt } => {
                let y = lane_top(server) + 48.0;
                let _ = writeln!(
                    o,
                    r##"<path d="M{:.1},{} l6,6 m0,-6 l-6,6" stroke="#cf222e" stroke-width="1.5"><title>no reply to attempt {attempt}</title></path>"##,
                    t - 3.0,
                    y - 3.0
                );
            }
            Event::AttemptRefused { server, attempt } => {
                let y = lane_top(server) + 48.0;
                let _ = writeln!(
                    o,
                    r##"<rect x="{:.1}" y="{}" width="6" height="6" fill="#cf222e"><title>attempt {attempt} refused</title></rect>"##,
                    t - 3.0,
                    y - 3.0
                );
            }
            _ => {}
        }
    }
    // Flows: a thin bar near the bottom of the lane, dashed while opening, solid while up, ended by
    // a tick with the reason.
    let mut flow: [Option<(Instant, bool)>; 2] = [None, None];
    let bar = |o: &mut String, s: Side, from: Instant, to: Instant, up: bool| {
        let y = lane_top(s) + LANE_H - 5.0;
        let (stroke, dash, what) =
            if up { ("#1a7f37", "", "flow up") } else { ("#57606a", r#" stroke-dasharray="2,2""#, "flow opening") };
        let _ = writeln!(
            o,
            r#"<line x1="{:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{stroke}" stroke-width="3"{dash}><title>{what} from {} ms</title></line>"#,
            x(from),
            x(to).max(x(from) + 0.5),
            from.as_millis()
        );
    };
    for r in &tl.records {
        match &r.what {
            What::FlowOpen { server, .. } => {
                if let Some((from, up)) = flow[server.index()].take() {
                    bar(&mut o, *server, from, r.t, up);
                }
                flow[server.index()] = Some((r.t, false));
            }
            What::Agent(Event::FlowUp { server }) => {
                if let Some((from, up)) = flow[server.index()].take() {
                    bar(&mut o, *server, from, r.t, up);
                }
                flow[server.index()] = Some((r.t, true));
            }
            What::Agent(Event::FlowDown { server, reason }) => {
                if let Some((from, up)) = flow[server.index()].take() {
                    bar(&mut o, *server, from, r.t, up);
                }
                let (t, y) = (x(r.t), lane_top(*server) + LANE_H - 9.0);
                let _ = writeln!(
                    o,
                    r##"<line x1="{t:.1}" y1="{y}" x2="{t:.1}" y2="{}" stroke="#cf222e" stroke-width="1.5"><title>flow closed at {} ms: {reason}</title></line>"##,
                    y + 8.0,
                    r.t.as_millis()
                );
            }
            _ => {}
        }
    }
    for s in Side::BOTH {
        if let Some((from, up)) = flow[s.index()].take() {
            bar(&mut o, s, from, Instant::ZERO + tl.duration, up);
        }
    }
    // The active side as a band, from the applied switches.
    let _ = writeln!(o, r#"<text x="10" y="{}" font-weight="bold">active</text>"#, band_top + 13.0);
    let mut active = (Instant::ZERO, Side::Primary);
    let band = |o: &mut String, from: Instant, to: Instant, s: Side| {
        let fill = if s == Side::Primary { "#0969da" } else { "#8250df" };
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{band_top}" width="{:.1}" height="18" fill="{fill}"><title>{s}</title></rect>"#,
            x(from),
            (x(to) - x(from)).max(0.5)
        );
    };
    for r in &tl.records {
        if let What::Agent(Event::Applied { side, .. }) = r.what {
            if side != active.1 {
                band(&mut o, active.0, r.t, active.1);
                active = (r.t, side);
            }
        }
    }
    band(&mut o, active.0, Instant::ZERO + tl.duration, active.1);
    // The phone's calls, as a thin bar under the active side.
    let calls = tl.records.iter().any(|r| matches!(r.what, What::Call(_)));
    if calls {
        let _ = writeln!(o, r#"<text x="10" y="{}" font-size="10">call</text>"#, band_top + 28.0);
        let mut since: Option<Instant> = None;
        let call = |o: &mut String, from: Instant, to: Instant| {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{}" width="{:.1}" height="6" fill="#bf8700"><title>in a call from {} ms</title></rect>"##,
                x(from),
                band_top + 22.0,
                (x(to) - x(from)).max(0.5),
                from.as_millis()
            );
        };
        for r in &tl.records {
            match r.what {
                What::Call(true) => {
                    since.get_or_insert(r.t);
                }
                What::Call(false) => {
                    if let Some(from) = since.take() {
                        call(&mut o, from, r.t);
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = since {
            call(&mut o, from, Instant::ZERO + tl.duration);
        }
    }
    // Switches held by a call.
    for r in &tl.records {
        if let What::Agent(Event::Held { to, .. }) = r.what {
            let t = x(r.t);
            let _ = writeln!(
                o,
                r##"<path d="M{t:.1},50 l5,6 l-5,6 l-5,-6 z" fill="#bf8700"><title>switch to {to} held at {} ms: call in progress</title></path>"##,
                r.t.as_millis()
            );
        }
    }
    // Switch markers.
    for r in &tl.records {
        if let What::Agent(Event::Switch { from, to, reason, .. }) = r.what {
            let t = x(r.t);
            let _ = writeln!(
                o,
                r##"<line x1="{t:.1}" y1="50" x2="{t:.1}" y2="{}" stroke="#24292f" stroke-width="1.5" stroke-dasharray="4,3"/>"##,
                band_top + 18.0
            );
            let ms = r.t.as_millis();
            // Near the right edge the label goes to the left of its line.
            let (lx, anchor) = if t > W - 230.0 { (t - 3.0, "end") } else { (t + 3.0, "start") };
            let _ = writeln!(
                o,
                r##"<text x="{lx:.1}" y="46" font-size="11" fill="#24292f" text-anchor="{anchor}">{} {from}→{to} {}.{:03}s</text>"##,
                reason.as_str(),
                ms / 1000,
                ms % 1000
            );
        }
    }
    // Time axis.
    let total_s = tl.duration.as_millis() as f64 / 1000.0;
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]
        .into_iter()
        .find(|s| total_s / s <= 14.0)
        .unwrap_or(7200.0);
    let _ = writeln!(o, r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#24292f"/>"##, W - RIGHT);
    let mut s = 0.0;
    while s <= total_s + 1e-9 {
        let t = Instant::from_millis((s * 1000.0) as u64);
        let _ = writeln!(
            o,
            r##"<line x1="{0:.1}" y1="{axis_y}" x2="{0:.1}" y2="{1}" stroke="#24292f"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}s</text>"##,
            x(t),
            axis_y + 5.0,
            axis_y + 18.0,
            s
        );
        s += step;
    }
    // Legend.
    let ly = axis_y + 45.0;
    let _ = writeln!(
        o,
        r##"<g font-size="11"><line x1="{LEFT}" y1="{0}" x2="{LEFT}" y2="{1}" stroke="#57606a"/><text x="{2}" y="{1}">probe (taller: later attempt)</text><circle cx="{3}" cy="{4}" r="3.5" fill="#1a7f37"/><text x="{5}" y="{1}">alive reply</text><circle cx="{6}" cy="{4}" r="3.5" fill="#bc4c00"/><text x="{7}" y="{1}">failure status</text><path d="M{8},{0} l6,6 m0,-6 l-6,6" stroke="#cf222e"/><text x="{9}" y="{1}">no reply</text><rect x="{10}" y="{0}" width="14" height="10" fill="#ff8182" fill-opacity="0.35"/><text x="{11}" y="{1}">server down</text><rect x="{12}" y="{0}" width="14" height="10" fill="#f2cc60" fill-opacity="0.35"/><text x="{13}" y="{1}">degraded</text><rect x="{14}" y="{0}" width="14" height="10" fill="#0969da"/><rect x="{15}" y="{0}" width="14" height="10" fill="#8250df"/><text x="{16}" y="{1}">active: primary / backup</text></g>"##,
        ly - 9.0,
        ly,
        LEFT + 6.0,
        LEFT + 220.0,
        ly - 4.0,
        LEFT + 228.0,
        LEFT + 320.0,
        LEFT + 328.0,
        LEFT + 440.0,
        LEFT + 452.0,
        LEFT + 520.0,
        LEFT + 538.0,
        LEFT + 630.0,
        LEFT + 648.0,
        LEFT + 730.0,
        LEFT + 746.0,
        LEFT + 764.0,
    );
    if tl.records.iter().any(|r| matches!(r.what, What::FlowOpen { .. })) {
        let fy = ly + 16.0;
        let _ = writeln!(
            o,
            r##"<g font-size="11"><line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#57606a" stroke-width="3" stroke-dasharray="2,2"/><text x="{2}" y="{3}">flow opening</text><line x1="{4}" y1="{0}" x2="{5}" y2="{0}" stroke="#1a7f37" stroke-width="3"/><text x="{6}" y="{3}">flow up</text><line x1="{7}" y1="{8}" x2="{7}" y2="{9}" stroke="#cf222e" stroke-width="1.5"/><text x="{10}" y="{3}">flow closed (hover: why)</text></g>"##,
            fy - 4.0,
            LEFT + 14.0,
            LEFT + 20.0,
            fy,
            LEFT + 120.0,
            LEFT + 134.0,
            LEFT + 140.0,
            LEFT + 220.0,
            fy - 9.0,
            fy,
            LEFT + 226.0,
        );
    }
    let notices = tl.records.iter().any(|r| matches!(r.what, What::NoticePublished { .. }));
    let held = tl.records.iter().any(|r| matches!(r.what, What::Agent(Event::Held { .. })));
    if calls || notices || held {
        let flows = tl.records.iter().any(|r| matches!(r.what, What::FlowOpen { .. }));
        let my = ly + if flows { 32.0 } else { 16.0 };
        let _ = writeln!(
            o,
            r##"<g font-size="11"><rect x="{LEFT}" y="{0}" width="14" height="6" fill="#bf8700"/><text x="{1}" y="{2}">in a call</text><path d="M{3},{4} l5,6 l-5,6 l-5,-6 z" fill="#bf8700"/><text x="{5}" y="{2}">switch held: call in progress</text><rect x="{6}" y="{7}" width="14" height="10" fill="#0969da" fill-opacity="0.12" stroke="#0969da" stroke-dasharray="3,3"/><path d="M{8},{2} l5,-7 l-10,0 z" fill="#0969da"/><text x="{9}" y="{2}">notice published, its planned window</text></g>"##,
            my - 6.0,
            LEFT + 20.0,
            my,
            LEFT + 110.0,
            my - 10.0,
            LEFT + 122.0,
            LEFT + 330.0,
            my - 9.0,
            LEFT + 356.0,
            LEFT + 366.0,
        );
    }
    o.push_str("</svg>\n");
    o
}
