//! # sip-failover
//!
//! The redundancy module of a SIP desk phone. It watches a primary and a backup PBX with SIP OPTIONS
//! probes and moves the phone's whole service bundle (SIP, phone-app URLs, VPN endpoint) to the backup
//! when the primary stops answering, and back again.
//!
//! The heart is [`core::Agent`], a sans-IO state machine: it never reads a clock, never allocates, never
//! blocks and never touches a socket. Time and input are handed to it; it hands back what to send, when
//! to wake it, and what happened.
//!
//! ## The run loop
//!
//! After every `handle_*` call, drain the outputs in this order:
//! [`poll_transmit`](core::Agent::poll_transmit) until `None`, then
//! [`poll_event`](core::Agent::poll_event) until `None`, then sleep until
//! [`poll_timeout`](core::Agent::poll_timeout), a datagram or a command arrives, and feed it in.
//!
//! ```
//! use sip_failover::core::{Agent, Config, Instant, Side};
//!
//! let config = Config::new("127.0.0.1:5060".parse().unwrap(), "pbx-a.example")
//!     .with_backup("127.0.0.2:5060".parse().unwrap(), "pbx-b.example");
//! let mut agent = Agent::new(config, Instant::ZERO, 42).unwrap();
//! let mut buf = [0u8; 1024];
//! // The first cycle starts at once: one OPTIONS to each server.
//! let a = agent.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
//! let b = agent.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
//! assert_ne!(a.destination, b.destination);
//! assert_eq!(agent.active(), Side::Primary);
//! // The next wake-up is the end of the first attempt's 800 ms wait.
//! assert_eq!(agent.poll_timeout(), Some(Instant::from_millis(800)));
//! ```
//!
//! ## Feature flags
//!
//! - `std` (default): the standard-library side. Without it the crate is `#![no_std]` and has no
//!   allocator requirement: only [`core`] is built.
//! - `ffi`: the C interface in the `ffi` module, with its cbindgen header `include/sip_failover.h`;
//!   works with or without `std`.
//! - `indicator`: a status LED driven from the core's events, in the `indicator` module, on
//!   the embedded-hal 1.0 traits; `no_std`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod core;

#[cfg(feature = "ffi")]
#[allow(unsafe_code)]
pub mod ffi;

#[cfg(feature = "indicator")]
pub mod indicator;

/// Helpers below every folder that touches files: the crash-safe write and places in a text.
#[cfg(feature = "std")]
pub mod files;

/// The phone's configuration file: the Redundancy template in TOML, validated.
#[cfg(feature = "std")]
pub mod config;

/// Planned maintenance: recurring windows, upgrade windows, notice feeds and operator planning.
#[cfg(feature = "std")]
pub mod maintenance;

/// The agent on a real network: tokio driver, DNS, switch hook, control socket, state file.
#[cfg(feature = "std")]
pub mod net;

/// The lab: a simulated PBX pair, fault scenarios, fleets, timelines, virtual and real time.
#[cfg(feature = "std")]
pub mod sim;

/// The command line: every subcommand's arguments and what it calls, above every other folder.
#[cfg(feature = "std")]
pub mod cli;
