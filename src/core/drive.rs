//! The drain step of the run loop, written once for every caller: after an input, hand every
//! datagram to send to the caller, then every event, acknowledging each switch as the caller says,
//! and repeat until the agent has nothing more to say.
//!
//! ```
//! use sip_failover::core::drive::{self, Ack, Io, Sent};
//! use sip_failover::core::{Agent, Config, Event, Instant, Transmit};
//!
//! struct Phone { sent: usize }
//! impl Io for Phone {
//!     fn transmit(&mut self, _now: Instant, _t: &Transmit, _bytes: &[u8]) -> Sent {
//!         self.sent += 1;
//!         Sent::Sent
//!     }
//!     fn event(&mut self, _now: Instant, e: &Event) -> Ack {
//!         // Apply the bundle of a switch here, then acknowledge it.
//!         if matches!(e, Event::Switch { .. }) { Ack::Applied } else { Ack::None }
//!     }
//! }
//!
//! let config = Config::new("127.0.0.1:5060".parse().unwrap(), "pbx-a.example")
//!     .with_backup("127.0.0.2:5060".parse().unwrap(), "pbx-b.example");
//! let mut agent = Agent::new(config, Instant::ZERO, 1).unwrap();
//! let mut phone = Phone { sent: 0 };
//! drive::drain(&mut agent, Instant::ZERO, &mut [0u8; 1500], &mut phone);
//! assert_eq!(phone.sent, 2);
//! ```

use super::agent::{Agent, Command, Transmit};
use super::config::Side;
use super::event::Event;
use super::flow::{frame, FlowCommand, FlowEvent, Frame, FrameError};
use super::time::Instant;

/// How the caller answers an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Nothing to acknowledge (not a switch, or the switch is being applied elsewhere and will be
    /// acknowledged later with [`Command::Applied`] or [`Command::ApplyFailed`]).
    None,
    /// The switch's bundle was applied.
    Applied,
    /// The switch's bundle could not be applied; the agent keeps the previous one.
    Failed,
}

/// What became of a datagram handed to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Sent, or lost: the attempt's wait runs.
    Sent,
    /// Refused by the network at once (ICMP port unreachable reported on the send); fed to the agent
    /// with [`Agent::handle_refused`].
    Refused,
}

/// What the caller does with the agent's outputs.
pub trait Io {
    /// Sends the datagram `bytes` as `t` describes.
    fn transmit(&mut self, now: Instant, t: &Transmit, bytes: &[u8]) -> Sent;
    /// Takes an event; for a [`Event::Switch`], says whether its bundle was applied.
    fn event(&mut self, now: Instant, e: &Event) -> Ack;
    /// Opens or closes a stream flow (TCP or TLS). The outcome of an open comes back later through
    /// [`Agent::handle_flow`]. A caller whose servers are all UDP never receives one and may keep
    /// this default, which drops it.
    fn flow(&mut self, now: Instant, cmd: &FlowCommand) {
        let _ = (now, cmd);
    }
}

/// How many rounds of transmits and events one drain takes at most: an acknowledgement can lead to
/// another switch only through the policy, which settles in a round or two.
const MAX_ROUNDS: usize = 16;

/// Drains `agent` at `now`, in the documented order: every flow to open or close, every transmit
/// (encoded into `buf`), then every event, acknowledging switches as `io` answers; repeats until a
/// round has nothing. A probe that does not fit `buf` stays queued (its wait runs, so the ladder
/// stays bounded).
pub fn drain(agent: &mut Agent, now: Instant, buf: &mut [u8], io: &mut impl Io) {
    for _ in 0..MAX_ROUNDS {
        let mut progressed = false;
        while let Some(cmd) = agent.poll_flow() {
            progressed = true;
            io.flow(now, &cmd);
        }
        while let Ok(Some(t)) = agent.poll_transmit(now, buf) {
            progressed = true;
            if io.transmit(now, &t, buf.get(..t.len).unwrap_or(&[])) == Sent::Refused {
                agent.handle_refused(now, t.server);
            }
        }
        while let Some(e) = agent.poll_event() {
            progressed = true;
            let Event::Switch { generation, .. } = e else {
                let _ = io.event(now, &e);
                continue;
            };
            let ack = match io.event(now, &e) {
                Ack::None => None,
                Ack::Applied => Some(Command::Applied { generation }),
                Ack::Failed => Some(Command::ApplyFailed { generation }),
            };
            if let Some(cmd) = ack {
                // Only a stale generation is refused: a newer switch came first and is the one in play.
                let _ = agent.handle_command(now, cmd);
            }
        }
        if !progressed {
            return;
        }
    }
}

/// Hands the agent every whole unit at the start of `bytes`, read on stream flow `id` to `side`: a
/// SIP message to [`Agent::handle_message`], a keep-alive pong as [`FlowEvent::Pong`]. Returns how
/// many bytes the units took (what follows is an unfinished unit, kept for more bytes), or the
/// framing error that ends the flow: the caller closes it and reports
/// [`FlowError::Framing`](super::FlowError::Framing) (the units before the error were handed on).
pub fn feed_stream(agent: &mut Agent, now: Instant, side: Side, id: u16, bytes: &[u8]) -> Result<usize, FrameError> {
    let mut rest = bytes;
    // Bounded: each unit takes at least two bytes (and never more than are there).
    while let Some(unit) = frame(rest)? {
        let (head, tail) = rest.split_at_checked(unit.len()).unwrap_or((rest, &[]));
        match unit {
            Frame::Message(_) => agent.handle_message(now, side, head),
            Frame::Pong(_) => agent.handle_flow(now, side, id, FlowEvent::Pong),
        }
        rest = tail;
    }
    Ok(bytes.len().saturating_sub(rest.len()))
}

/// The next instant a virtual clock should jump to: the agent's next deadline or `other` (the
/// next delivery of a simulated network, say), whichever is first.
pub fn next_wake(agent: &Agent, other: Option<Instant>) -> Option<Instant> {
    match (agent.poll_timeout(), other) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
