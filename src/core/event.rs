//! What the agent reports: every probe, reply, timeout, state change and switch.

use super::config::Side;
use super::time::Duration;
use super::wire::ParseError;

/// Why a server failed a probe cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// No matching reply before the ladder ran out.
    Timeout,
    /// The server answered with a status the alive policy counts as a failure (408, 5xx, 6xx by
    /// default). `retry_after` is set when a 503 announces the server's own maintenance.
    Status {
        /// The final status code.
        code: u16,
        /// The Retry-After delay in seconds, when given.
        retry_after: Option<u32>,
    },
    /// Every remaining attempt was refused by the network (ICMP port unreachable); only with fast
    /// detection.
    Refused,
}

/// Why the bundle moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchReason {
    /// The active server failed a cycle in which the other answered.
    Failover,
    /// The primary was alive long enough and the phone idle (automatic failback).
    Failback,
    /// A [`Command::Failback`](super::Command::Failback) in manual mode.
    ManualFailback,
    /// A [`Command::Force`](super::Command::Force).
    Forced,
    /// A planned maintenance window on the active server is near.
    Planned,
    /// A new configuration removed the active side.
    Reconfigured,
}

/// What held back a switch the policy wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldReason {
    /// A call is in progress; the switch happens when the phone is idle.
    CallInProgress,
}

/// Why a datagram was not taken as a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// Not a well-formed SIP response.
    Malformed(ParseError),
    /// From an address and port no probe went to.
    UnknownSource,
    /// The Call-ID is not this cycle's.
    CallIdMismatch,
    /// The CSeq number is not one of this cycle's attempts.
    CSeqMismatch,
    /// The CSeq method is not OPTIONS.
    MethodMismatch,
    /// The Via branch is not the one sent with that CSeq.
    BranchMismatch,
    /// No probe to that server is waiting for an answer (late or duplicate).
    NotWaiting,
    /// A provisional (1xx) response: not an answer.
    Provisional,
}

impl IgnoreReason {
    /// How many kinds there are (for counters).
    pub const COUNT: usize = 8;
    /// A dense index for counters.
    pub const fn index(&self) -> usize {
        match self {
            IgnoreReason::Malformed(_) => 0,
            IgnoreReason::UnknownSource => 1,
            IgnoreReason::CallIdMismatch => 2,
            IgnoreReason::CSeqMismatch => 3,
            IgnoreReason::MethodMismatch => 4,
            IgnoreReason::BranchMismatch => 5,
            IgnoreReason::NotWaiting => 6,
            IgnoreReason::Provisional => 7,
        }
    }
    /// A snake_case name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            IgnoreReason::Malformed(_) => "malformed",
            IgnoreReason::UnknownSource => "unknown_source",
            IgnoreReason::CallIdMismatch => "call_id_mismatch",
            IgnoreReason::CSeqMismatch => "cseq_mismatch",
            IgnoreReason::MethodMismatch => "method_mismatch",
            IgnoreReason::BranchMismatch => "branch_mismatch",
            IgnoreReason::NotWaiting => "not_waiting",
            IgnoreReason::Provisional => "provisional",
        }
    }
}

/// Something that happened, drained with [`Agent::poll_event`](super::Agent::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An OPTIONS left for `server` (reported when the caller took the transmit).
    ProbeSent {
        /// To which server.
        server: Side,
        /// Attempt number in this cycle, from 1.
        attempt: u8,
        /// Its CSeq.
        cseq: u32,
    },
    /// A matching final reply arrived.
    Reply {
        /// From which server.
        server: Side,
        /// The attempt it answers.
        attempt: u8,
        /// Its status code.
        status: u16,
        /// From that attempt's send to the reply.
        rtt: Duration,
        /// Its Retry-After, if any.
        retry_after: Option<u32>,
    },
    /// An attempt's wait ran out with no reply.
    AttemptTimedOut {
        /// Which server.
        server: Side,
        /// Which attempt.
        attempt: u8,
    },
    /// An attempt's send was refused by the network and, with fast detection, ended at once.
    AttemptRefused {
        /// Which server.
        server: Side,
        /// Which attempt.
        attempt: u8,
    },
    /// A server answered after being down or unknown.
    ServerUp {
        /// Which server.
        server: Side,
    },
    /// A server failed a cycle after being up or unknown.
    ServerDown {
        /// Which server.
        server: Side,
        /// Why.
        reason: DownReason,
    },
    /// The bundle is to move; apply it and acknowledge with
    /// [`Command::Applied`](super::Command::Applied) or
    /// [`Command::ApplyFailed`](super::Command::ApplyFailed).
    Switch {
        /// The side in force (or being applied) until now.
        from: Side,
        /// The side to move to.
        to: Side,
        /// Why.
        reason: SwitchReason,
        /// The new bundle's generation.
        generation: u32,
    },
    /// The firmware applied the bundle of `generation`; it is now in force.
    Applied {
        /// The side now in force.
        side: Side,
        /// Its generation.
        generation: u32,
    },
    /// The firmware could not apply the bundle of `generation`; the previous one stays in force.
    ApplyFailed {
        /// The side that was not applied.
        side: Side,
        /// Its generation.
        generation: u32,
        /// The side still in force.
        kept: Side,
    },
    /// The active server failed and the other did not answer either; probing goes on.
    NoServerReachable,
    /// A switch the policy wants is waiting.
    Held {
        /// The side it would move to.
        to: Side,
        /// What it waits for.
        reason: HoldReason,
    },
    /// Probing was paused by command.
    ProbingPaused,
    /// Probing resumed.
    ProbingResumed,
    /// A datagram was not taken as a reply.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
}

impl Event {
    /// A snake_case name for logs and JSON.
    pub const fn name(&self) -> &'static str {
        match self {
            Event::ProbeSent { .. } => "probe",
            Event::Reply { .. } => "reply",
            Event::AttemptTimedOut { .. } => "timeout",
            Event::AttemptRefused { .. } => "refused",
            Event::ServerUp { .. } => "server_up",
            Event::ServerDown { .. } => "server_down",
            Event::Switch { .. } => "switch",
            Event::Applied { .. } => "applied",
            Event::ApplyFailed { .. } => "apply_failed",
            Event::NoServerReachable => "no_server_reachable",
            Event::Held { .. } => "held",
            Event::ProbingPaused => "paused",
            Event::ProbingResumed => "resumed",
            Event::Ignored { .. } => "ignored",
        }
    }
}

impl SwitchReason {
    /// A snake_case name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            SwitchReason::Failover => "failover",
            SwitchReason::Failback => "failback",
            SwitchReason::ManualFailback => "manual_failback",
            SwitchReason::Forced => "forced",
            SwitchReason::Planned => "planned",
            SwitchReason::Reconfigured => "reconfigured",
        }
    }
}

/// A fixed-capacity queue of events; the oldest is dropped (and counted) if the caller does not drain.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue<const N: usize> {
    items: [Option<Event>; N],
    head: u8,
    len: u8,
    pub(crate) dropped: u32,
}

impl<const N: usize> EventQueue<N> {
    pub(crate) const fn new() -> Self {
        EventQueue { items: [None; N], head: 0, len: 0, dropped: 0 }
    }
    pub(crate) fn push(&mut self, e: Event) {
        if self.len as usize == N {
            self.pop();
            self.dropped = self.dropped.saturating_add(1);
        }
        let i = (self.head as usize + self.len as usize) % N;
        self.items[i] = Some(e);
        self.len += 1;
    }
    pub(crate) fn pop(&mut self) -> Option<Event> {
        if self.len == 0 {
            return None;
        }
        let e = self.items[self.head as usize].take();
        self.head = ((self.head as usize + 1) % N) as u8;
        self.len -= 1;
        e
    }
}
