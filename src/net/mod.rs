//! The agent on a real network: the tokio driver around [`core::Agent`](crate::core::Agent), with DNS,
//! the switch hook, the control socket and the crash-safe state file. No failover logic lives here.
//!
//! - [`driver`]: the loop, which feeds the agent and drains it into the adapters below.
//! - [`adapter`]: what the loop shares with its adapters ([`adapter::Ctx`]), the adapter and sink
//!   traits, and the inputs tasks report back.
//! - [`flows`]: per-server connected UDP sockets (ICMP port-unreachable seen as `ECONNREFUSED`),
//!   following the agent's next hops.
//! - [`streams`]: the TCP and TLS flows to servers probed over a stream, opened and closed as the
//!   agent asks, framed into messages for it.
//! - [`tls`]: trust roots, the RFC 5922 certificate check, client certificates, TLS failure reasons.
//! - [`names`]: the next hops' lookups at start, on TTL expiry and when a named server fails.
//! - [`maintenance`]: the notice feed and schedule handed to the agent, the bell, due rebuilds.
//! - [`statuspage`]: a status page polled for scheduled maintenances, conditionally, with backoff.
//! - [`calendar`]: a maintenance calendar (iCalendar) polled over HTTP the same way.
//! - [`http`]: one conditional, bounded HTTP/1.1 GET for both, over rustls for `https://`.
//! - [`events`]: events as JSON lines and `tracing` logs.
//! - [`dns`]: RFC 3263 (NAPTR, SRV, A/AAAA) on the system's resolver configuration, with TTLs.
//! - [`hook`]: `--on-switch CMD`, whose exit status acknowledges the switch.
//! - [`control`]: the Unix control socket and its client.
//! - [`state`]: the state file that lets the agent resume after a crash.

pub mod adapter;
pub mod calendar;
pub mod control;
pub mod dns;
pub mod driver;
mod entropy;
pub mod events;
pub mod flows;
pub mod hook;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod names;
pub mod socket;
pub mod state;
pub mod statuspage;
pub mod streams;
pub mod syslog;
pub mod tls;

pub use driver::{run, Overrides, RunError, RunOptions};
