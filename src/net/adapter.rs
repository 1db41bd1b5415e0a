//! What the driver's loop shares with its adapters.
//!
//! The loop owns one [`Ctx`]: the agent, the clock's origin, the event sinks and the sending half of
//! the loop's input channel. Each adapter has one job (the flows to the servers, name resolution,
//! the switch hook, the maintenance planner, the state file) and meets the loop through
//! [`Adapter`]: a wake-up time of its own, what to do when it comes, and what to do with each core
//! event. Work that finishes in a task comes back as an [`Input`] for the adapter that started it.
//! Adding a transport, a feed or a sink adds an adapter (or a [`Sink`]); the loop does not change.

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TInstant;

use super::flows::FlowInput;
use super::hook::HookDone;
use super::names::Lookup;
use crate::config::PhoneConfig;
use crate::core::{Agent, Event, Instant};

/// Where events go: JSON lines, `tracing`, and later collectors.
pub trait Sink: Send {
    /// A core event at `t`; `fields` are its JSON fields (a probe's `destination` included).
    fn core(&mut self, t: Instant, ev: &Event, fields: &Map<String, Value>);
    /// A driver event (`started`, `resolved`, `hook`, ...) at `t`.
    fn driver(&mut self, t: Instant, name: &str, fields: &Map<String, Value>);
}

/// The agent and what every adapter may use with it.
pub struct Ctx {
    /// The failover core.
    pub agent: Agent,
    /// The tokio instant that is the core's [`Instant::ZERO`].
    pub start: TInstant,
    /// The loop's input channel, for tasks to report back.
    pub tx: mpsc::UnboundedSender<Input>,
    sinks: Vec<Box<dyn Sink>>,
}

impl Ctx {
    /// A context around `agent`, whose clock started at `start`.
    pub fn new(agent: Agent, start: TInstant, tx: mpsc::UnboundedSender<Input>, sinks: Vec<Box<dyn Sink>>) -> Ctx {
        Ctx { agent, start, tx, sinks }
    }

    /// The core's time now.
    pub fn now(&self) -> Instant {
        to_core(self.start, TInstant::now())
    }

    /// The core's time `t`.
    pub fn core_time(&self, t: TInstant) -> Instant {
        to_core(self.start, t)
    }

    /// The tokio instant of the core's `i` (at most a year ahead).
    pub fn to_tokio(&self, i: Instant) -> TInstant {
        let far = self.start + StdDuration::from_secs(365 * 24 * 3600);
        self.start.checked_add(StdDuration::from_micros(i.as_micros())).map(|t| t.min(far)).unwrap_or(far)
    }

    /// Reports a driver event to every sink.
    pub fn report(&mut self, name: &str, fields: Value) {
        let t = self.now();
        report_to(&mut self.sinks, t, name, fields);
    }

    /// Reports a core event to every sink.
    pub fn report_core(&mut self, ev: &Event, fields: &Map<String, Value>) {
        let t = self.now();
        for s in &mut self.sinks {
            s.core(t, ev, fields);
        }
    }
}

/// Reports a driver event at `t` to `sinks` (before the loop's [`Ctx`] exists).
pub fn report_to(sinks: &mut [Box<dyn Sink>], t: Instant, name: &str, fields: Value) {
    let fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for s in sinks {
        s.driver(t, name, &fields);
    }
}

/// The core's time of the tokio instant `t`, for a clock that started at `start`.
pub fn to_core(start: TInstant, t: TInstant) -> Instant {
    Instant::from_micros(u64::try_from(t.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX))
}

/// What an adapter asks of the loop that only the loop can do, as it concerns several adapters.
#[derive(Debug)]
pub enum Action {
    /// A server's next hop changed: hand the agent the new configuration and follow with the flows.
    Reconfigure,
    /// Load this configuration file and apply it live (a rebuild whose upgrade window came).
    LoadConfig(PathBuf),
}

/// One job of the driver, as the loop sees it.
pub trait Adapter {
    /// When it wants to be woken without input; `None` for never.
    fn wake_at(&self) -> Option<TInstant> {
        None
    }
    /// Its wake-up time came.
    fn on_wake(&mut self, _ctx: &mut Ctx, _cfg: &PhoneConfig) -> Option<Action> {
        None
    }
    /// A core event, after the sinks saw it.
    fn on_event(&mut self, _ctx: &mut Ctx, _cfg: &PhoneConfig, _ev: &Event) {}
}

/// A result reported back to the loop by a task an adapter started.
#[derive(Debug)]
pub enum Input {
    /// From a UDP flow to a server.
    Flow(FlowInput),
    /// From a TCP or TLS flow to a server.
    Stream(super::streams::StreamInput),
    /// A switch hook finished.
    Hook(HookDone),
    /// A name lookup finished.
    Lookup(Lookup),
    /// A configuration file was loaded and its names resolved in the background.
    Config(ConfigLoaded),
    /// A status-page poll finished.
    Page(super::statuspage::PageFetch),
    /// A calendar poll finished.
    Calendar(super::calendar::CalendarFetch),
}

/// A configuration loaded for live application, and where to answer.
#[derive(Debug)]
pub struct ConfigLoaded {
    /// The configuration and its resolved next hops, or why it cannot be used.
    pub result: Result<(Box<PhoneConfig>, [Option<std::net::SocketAddr>; 2]), String>,
    /// Where the answer to the control request goes.
    pub reply: oneshot::Sender<Value>,
}
