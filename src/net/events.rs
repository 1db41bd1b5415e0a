//! Events as JSON lines (`--events json`) and as `tracing` logs.
//!
//! Every line is one JSON object with at least `event` (a snake_case name), `t_ms` (whole milliseconds
//! since the agent started, on the monotonic clock) and `utc` (RFC 3339 wall-clock time), plus the
//! fields of its kind. The schema is documented in the README.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::adapter::Sink;
use crate::core::{CycleResult, DownReason, Event, HoldReason, IgnoreReason, Instant, Side};

/// The fields of a core event, without `event`, `t_ms` and `utc`.
pub fn event_fields(ev: &Event) -> Map<String, Value> {
    let v = match *ev {
        Event::ProbeSent { server, attempt, cseq } => {
            json!({"server": server.as_str(), "attempt": attempt, "cseq": cseq})
        }
        Event::Reply { server, attempt, status, rtt, retry_after } => json!({
            "server": server.as_str(),
            "attempt": attempt,
            "status": status,
            "rtt_ms": rtt.as_micros() as f64 / 1000.0,
            "retry_after": retry_after,
        }),
        Event::AttemptTimedOut { server, attempt } | Event::AttemptRefused { server, attempt } => {
            json!({"server": server.as_str(), "attempt": attempt})
        }
        Event::ServerUp { server } => json!({"server": server.as_str()}),
        Event::ServerDown { server, reason } => down_fields(json!({"server": server.as_str()}), reason),
        Event::CycleResult { server, result: CycleResult::Alive } => {
            json!({"server": server.as_str(), "alive": true})
        }
        Event::CycleResult { server, result: CycleResult::Failed(reason) } => {
            down_fields(json!({"server": server.as_str(), "alive": false}), reason)
        }
        Event::Switch { from, to, reason, generation } => {
            json!({"from": from.as_str(), "to": to.as_str(), "reason": reason.as_str(), "generation": generation})
        }
        Event::Applied { side, generation } => json!({"side": side.as_str(), "generation": generation}),
        Event::ApplyFailed { side, generation, kept } => {
            json!({"side": side.as_str(), "generation": generation, "kept": kept.as_str()})
        }
        Event::Held { to, reason } => json!({"to": to.as_str(), "reason": hold_reason(&reason)}),
        Event::Ignored { reason } => {
            let mut m = json!({"reason": reason.as_str()});
            if let IgnoreReason::Malformed(e) = reason {
                m["detail"] = json!(e.to_string());
            }
            m
        }
        Event::NoServerReachable | Event::ProbingPaused | Event::ProbingResumed => json!({}),
        Event::FlowUp { server } => json!({"server": server.as_str()}),
        Event::FlowDown { server, reason } => {
            json!({"server": server.as_str(), "reason": reason.as_str(), "tls": reason.is_tls()})
        }
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `reason`, and for a status its code and Retry-After, added to `m`.
fn down_fields(mut m: Value, reason: DownReason) -> Value {
    m["reason"] = json!(down_reason(&reason));
    if let DownReason::Status { code, retry_after } = reason {
        m["status"] = json!(code);
        m["retry_after"] = json!(retry_after);
    }
    if let DownReason::Flow(e) = reason {
        m["flow"] = json!(e.as_str());
    }
    m
}

/// `"timeout"`, `"status"`, `"refused"` or `"flow"`.
pub fn down_reason(r: &DownReason) -> &'static str {
    match r {
        DownReason::Timeout => "timeout",
        DownReason::Status { .. } => "status",
        DownReason::Refused => "refused",
        DownReason::Flow(_) => "flow",
    }
}

fn hold_reason(r: &HoldReason) -> &'static str {
    match r {
        HoldReason::CallInProgress => "call_in_progress",
    }
}

/// One JSON line (without the newline): `event`, `t_ms` (and `t_us`, the same time in
/// microseconds, as the lab's lines have it), `utc`, then `fields`.
pub fn line(name: &str, t: Instant, utc: jiff::Timestamp, fields: Map<String, Value>) -> String {
    let mut m = Map::with_capacity(fields.len() + 4);
    m.insert("event".into(), json!(name));
    m.insert("t_ms".into(), json!(t.as_millis()));
    m.insert("t_us".into(), json!(t.as_micros()));
    m.insert("utc".into(), json!(utc_millis(utc)));
    m.extend(fields);
    Value::Object(m).to_string()
}

/// `utc` in the one format of the event lines: RFC 3339 in UTC, always with three digits of
/// milliseconds (`2026-11-21T06:03:11.070Z`), rounded to the nearest millisecond.
pub fn utc_millis(utc: jiff::Timestamp) -> String {
    let rounded = utc.round(jiff::Unit::Millisecond).unwrap_or(utc);
    format!("{rounded:.3}")
}

/// Where events go: JSON lines on stdout when asked, and always `tracing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLog {
    json: bool,
}

impl EventLog {
    /// A log that prints JSON lines on stdout when `json` is set.
    pub fn new(json: bool) -> Self {
        EventLog { json }
    }

    /// Reports a core event at `t` with its JSON `fields`.
    pub fn core(&self, t: Instant, ev: &Event, fields: Map<String, Value>) {
        let text = Value::Object(fields.clone()).to_string();
        let (name, t_ms) = (ev.name(), t.as_millis());
        match ev {
            Event::Switch { .. } | Event::ApplyFailed { .. } | Event::NoServerReachable => {
                tracing::warn!(event = name, t_ms, "{text}")
            }
            Event::ServerUp { .. } | Event::ServerDown { .. } | Event::Applied { .. } | Event::Held { .. } => {
                tracing::info!(event = name, t_ms, "{text}")
            }
            _ => tracing::debug!(event = name, t_ms, "{text}"),
        }
        self.emit(ev.name(), t, fields);
    }

    /// Reports a driver event (`started`, `resolved`, `hook`, ...).
    pub fn driver(&self, t: Instant, name: &str, fields: Value) {
        let fields = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let text = Value::Object(fields.clone()).to_string();
        tracing::info!(event = name, t_ms = t.as_millis(), "{text}");
        self.emit(name, t, fields);
    }

    fn emit(&self, name: &str, t: Instant, fields: Map<String, Value>) {
        if !self.json {
            return;
        }
        let l = line(name, t, jiff::Timestamp::now(), fields);
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) must not stop the agent.
        let _ = writeln!(out, "{l}");
        let _ = out.flush();
    }
}

impl Sink for EventLog {
    fn core(&mut self, t: Instant, ev: &Event, fields: &Map<String, Value>) {
        EventLog::core(self, t, ev, fields.clone());
    }

    fn driver(&mut self, t: Instant, name: &str, fields: &Map<String, Value>) {
        EventLog::driver(self, t, name, Value::Object(fields.clone()));
    }
}

/// `"primary"` / `"backup"` back to a side.
pub fn parse_side(s: &str) -> Option<Side> {
    match s {
        "primary" => Some(Side::Primary),
        "backup" => Some(Side::Backup),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Duration, SwitchReason};

    #[test]
    fn a_switch_line_has_the_documented_keys() {
        let ev = Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Failover, generation: 3 };
        let l = line(ev.name(), Instant::from_micros(1_600_400), jiff::Timestamp::UNIX_EPOCH, event_fields(&ev));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["event"], "switch");
        assert_eq!(v["t_ms"], 1600);
        assert_eq!(v["utc"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["from"], "primary");
        assert_eq!(v["to"], "backup");
        assert_eq!(v["reason"], "failover");
        assert_eq!(v["generation"], 3);
    }

    #[test]
    fn utc_always_has_three_digits_of_milliseconds() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(utc_millis(at("2026-11-21T06:03:11.07Z")), "2026-11-21T06:03:11.070Z");
        assert_eq!(utc_millis(at("2026-11-21T06:03:11Z")), "2026-11-21T06:03:11.000Z");
        assert_eq!(utc_millis(at("2026-11-21T06:03:11.266Z")), "2026-11-21T06:03:11.266Z");
        // Rounded to the nearest millisecond, carrying into the second.
        assert_eq!(utc_millis(at("2026-11-21T06:03:11.9996Z")), "2026-11-21T06:03:12.000Z");
        assert_eq!(utc_millis(at("2026-11-21T06:03:11.2664999Z")), "2026-11-21T06:03:11.266Z");
        for ms in [0u32, 1, 10, 100, 999] {
            let l = utc_millis(jiff::Timestamp::from_millisecond(i64::from(ms)).unwrap());
            assert_eq!(l.len(), "1970-01-01T00:00:00.000Z".len(), "{l}");
        }
    }

    #[test]
    fn a_reply_line_carries_the_round_trip_time() {
        let ev = Event::Reply {
            server: Side::Backup,
            attempt: 2,
            status: 503,
            rtt: Duration::from_micros(1500),
            retry_after: Some(60),
        };
        let v = Value::Object(event_fields(&ev));
        assert_eq!(v["rtt_ms"], 1.5);
        assert_eq!(v["retry_after"], 60);
        assert_eq!(v["server"], "backup");
    }
}
