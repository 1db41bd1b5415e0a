//! The `no_std`, allocation-free failover core: time, the probe ladder, the failover decision, the
//! bundle and its generation, the OPTIONS encoder and response parser, the [`Agent`] and its events.
//!
//! # The bundle
//!
//! Everything the phone moves on a switch (SIP destination and outbound proxy, registrations, calls,
//! BLF subscriptions, every phone-app URL, the VPN endpoint) is selected by one value: the [`Side`] in
//! force, with its generation number. The firmware keeps the two forms of each item and applies the
//! side named in [`Event::Switch`] as one unit, then acknowledges it. A half-switched phone cannot be
//! represented: there is no per-item state to get out of step.
//!
//! # Panic-freedom
//!
//! The core runs on phone firmware, where a panic resets the phone. The lints below hold every module
//! of it to code that cannot panic, whatever the input: no indexing or slicing that can go out of
//! bounds, no arithmetic that can overflow, no `unwrap`, `expect` or `panic!`. Where an `allow` reads
//! better, the invariant that makes it safe is written beside it.
#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

pub mod agent;
pub mod config;
pub mod drive;
pub mod event;
pub mod flow;
pub mod rng;
pub mod time;
pub mod wire;

pub use agent::{Agent, Command, CommandError, PlannedWindow, Snapshot, Stats, Transmit, MAX_WINDOWS};
pub use config::{
    AliveCodes, Config, ConfigError, Failback, FailbackMode, FastDetection, HostName, InlineStr, Ladder, ServerConfig,
    Side, Transport, MAX_ALTERNATES, MAX_ATTEMPTS, MAX_HOST_LEN,
};
pub use event::{CycleResult, DownReason, Event, HoldReason, IgnoreReason, SwitchReason};
pub use flow::{frame, FlowCommand, FlowError, FlowEvent, Frame, FrameError, TlsError};
pub use time::{Duration, Instant};
