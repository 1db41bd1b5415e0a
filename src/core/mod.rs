//! The `no_std`, allocation-free failover core: time, the probe ladder, the failover decision, the
//! bundle and its generation, the OPTIONS encoder and response parser, the [`Agent`] and its events.

pub mod time;
pub mod wire;

pub use time::{Duration, Instant};
