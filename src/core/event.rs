//! What the agent reports: every probe, reply, timeout, state change and switch.

use super::config::Side;
use super::flow::{FlowError, TlsError};
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
    /// Over TCP or TLS: the last attempt ended when its flow failed (refused or reset, a TLS
    /// failure, closed by the peer, a stream that could not be framed).
    Flow(FlowError),
}

/// A server's result in one probe cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CycleResult {
    /// It answered with a status the alive policy counts as alive.
    Alive,
    /// It failed the cycle.
    Failed(DownReason),
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
    /// The active server announced maintenance (`503` with `Retry-After`, to a probe or to one of
    /// the phone's own transactions) and the phone was idle.
    Maintenance,
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
    /// An attempt ended at once: its send was refused by the network (with fast detection), or its
    /// stream flow failed (see the [`Event::FlowDown`] before it).
    AttemptRefused {
        /// Which server.
        server: Side,
        /// Which attempt.
        attempt: u8,
    },
    /// A server's result in this probe cycle, once per server and cycle: alive, or failed and why.
    /// [`Event::ServerUp`] and [`Event::ServerDown`] follow when it changes the server's state.
    CycleResult {
        /// Which server.
        server: Side,
        /// Its result.
        result: CycleResult,
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
    /// A stream flow to `server` connected (for TLS: its certificate verified).
    FlowUp {
        /// Which server.
        server: Side,
    },
    /// A stream flow to `server` failed, or the agent closed it.
    FlowDown {
        /// Which server.
        server: Side,
        /// Why.
        reason: FlowError,
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
            Event::CycleResult { .. } => "cycle_result",
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
            Event::FlowUp { .. } => "flow_up",
            Event::FlowDown { .. } => "flow_down",
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
            SwitchReason::Maintenance => "maintenance",
        }
    }
}

/// The longest packed event: length, kind, flags, attempt, status, round-trip time, Retry-After.
const MAX_RECORD: usize = 18;

/// Whether the event in a record of this kind only reports traffic (a probe sent, a reply, a timeout,
/// a refusal, an ignored datagram) and may give way to one that carries state.
fn is_traffic(kind: u8) -> bool {
    matches!(kind, KIND_PROBE | KIND_REPLY | KIND_TIMEOUT | KIND_REFUSED | KIND_IGNORED)
}

const KIND_PROBE: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_TIMEOUT: u8 = 2;
const KIND_REFUSED: u8 = 3;
const KIND_IGNORED: u8 = 13;

/// A fixed-capacity queue of events packed into `N` bytes, each event taking 1 to 18 bytes plus a
/// length byte, in order.
///
/// Events that carry state (a cycle's result, a server up or down, a switch, applied, apply failed,
/// no server reachable, held, paused, resumed) come before traffic (probes, replies, timeouts,
/// refusals, ignored datagrams): when a new event does not fit, the oldest traffic record is removed
/// to make room, and a new traffic record that could only fit by removing state is not stored. A
/// flood of forged datagrams between two drains therefore never pushes out a switch. State records
/// give way, oldest first, only to newer state once the queue holds nothing else (many probe cycles
/// without a drain). Every removal is counted.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue<const N: usize> {
    buf: [u8; N],
    /// Where the oldest record starts.
    head: u16,
    /// Bytes in use.
    used: u16,
    /// Events not delivered: removed or refused for room.
    pub(crate) dropped: u32,
    /// Of those, events that carried state.
    pub(crate) state_dropped: u32,
}

impl<const N: usize> EventQueue<N> {
    const FITS: () = assert!(N >= MAX_RECORD && N <= u16::MAX as usize);

    pub(crate) const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        EventQueue { buf: [0; N], head: 0, used: 0, dropped: 0, state_dropped: 0 }
    }

    pub(crate) fn push(&mut self, e: Event) {
        let (record, len) = encode(&e);
        let traffic = is_traffic(record[1]);
        // `used` never exceeds N, so the room left is exact.
        while N.saturating_sub(usize::from(self.used)) < len {
            if let Some((offset, old)) = self.first_traffic() {
                self.remove(offset, old);
            } else if traffic {
                self.dropped = self.dropped.saturating_add(1);
                return;
            } else if self.skip().is_some() {
                self.state_dropped = self.state_dropped.saturating_add(1);
            } else {
                return;
            }
            self.dropped = self.dropped.saturating_add(1);
        }
        // The free bytes start at `end` and wrap around to the start of `buf`.
        let end = self.slot(usize::from(self.used));
        if let Some((before, after)) = self.buf.split_at_mut_checked(end) {
            for (slot, b) in after.iter_mut().chain(before).zip(record.iter().take(len)) {
                *slot = *b;
            }
        }
        // The loop above made room: `used + len` is at most N, itself at most `u16::MAX`.
        self.used = self.used.wrapping_add(len as u16);
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        let mut record = [0u8; MAX_RECORD];
        let len = self.peek_len()?;
        for (i, b) in record.iter_mut().take(len).enumerate() {
            *b = self.at(i);
        }
        self.skip()?;
        decode(record.get(1..len)?)
    }

    fn peek_len(&self) -> Option<usize> {
        if self.used == 0 {
            return None;
        }
        let len = usize::from(*self.buf.get(usize::from(self.head))?);
        (len > 0 && len <= usize::from(self.used) && len <= MAX_RECORD).then_some(len)
    }

    /// Where the byte `offset` bytes after the start of the oldest record sits in `buf`.
    fn slot(&self, offset: usize) -> usize {
        // `head` is below N and offsets below 2 N, so the sum never wraps; the remainder is by N, never
        // zero (`FITS`).
        usize::from(self.head).wrapping_add(offset).checked_rem(N).unwrap_or(0)
    }

    /// The byte at `offset` from the oldest record.
    fn at(&self, offset: usize) -> u8 {
        self.buf.get(self.slot(offset)).copied().unwrap_or(0)
    }

    /// Where the oldest traffic record starts (bytes from the head) and its length.
    fn first_traffic(&self) -> Option<(usize, usize)> {
        let mut offset = 0;
        while offset < usize::from(self.used) {
            let len = usize::from(self.at(offset));
            if len == 0 {
                return None;
            }
            // Offsets stay below `used` plus one record, far from wrapping.
            if is_traffic(self.at(offset.wrapping_add(1))) {
                return Some((offset, len));
            }
            offset = offset.wrapping_add(len);
        }
        None
    }

    /// Removes the record of `len` bytes at `offset`, moving the newer ones up to close the gap.
    fn remove(&mut self, offset: usize, len: usize) {
        let used = usize::from(self.used);
        for i in offset..used.saturating_sub(len) {
            let b = self.at(i.wrapping_add(len));
            let at = self.slot(i);
            if let Some(slot) = self.buf.get_mut(at) {
                *slot = b;
            }
        }
        self.used = used.saturating_sub(len) as u16;
    }

    /// Drops the oldest record.
    fn skip(&mut self) -> Option<()> {
        let Some(len) = self.peek_len() else {
            // Nothing stored, or (never, by construction) a broken record: start afresh.
            self.head = 0;
            self.used = 0;
            return None;
        };
        // A slot is below N, itself at most `u16::MAX`; `len` is at most `used` (`peek_len`).
        self.head = self.slot(len) as u16;
        self.used = self.used.wrapping_sub(len as u16);
        Some(())
    }
}

struct Writer {
    buf: [u8; MAX_RECORD],
    len: usize,
}

impl Writer {
    fn put(&mut self, bytes: &[u8]) {
        for b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = *b;
                // Below MAX_RECORD here, so it never saturates.
                self.len = self.len.saturating_add(1);
            }
        }
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const K: usize>(&mut self) -> Option<[u8; K]> {
        let (head, rest) = self.bytes.split_first_chunk::<K>()?;
        self.bytes = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

fn side(bits: u8) -> Side {
    if bits & 1 == 0 {
        Side::Primary
    } else {
        Side::Backup
    }
}

const SWITCH_REASONS: [SwitchReason; 7] = [
    SwitchReason::Failover,
    SwitchReason::Failback,
    SwitchReason::ManualFailback,
    SwitchReason::Forced,
    SwitchReason::Planned,
    SwitchReason::Reconfigured,
    SwitchReason::Maintenance,
];

/// The index of `r` in [`SWITCH_REASONS`]; exhaustive, so a new reason must be given its place.
const fn switch_reason_index(r: SwitchReason) -> u8 {
    match r {
        SwitchReason::Failover => 0,
        SwitchReason::Failback => 1,
        SwitchReason::ManualFailback => 2,
        SwitchReason::Forced => 3,
        SwitchReason::Planned => 4,
        SwitchReason::Reconfigured => 5,
        SwitchReason::Maintenance => 6,
    }
}

/// The index of `p` in [`PARSE_ERRORS`]; exhaustive, so a new error must be given its place.
const fn parse_error_index(p: ParseError) -> u8 {
    match p {
        ParseError::TooLarge => 0,
        ParseError::Truncated => 1,
        ParseError::NotAResponse => 2,
        ParseError::BadStatusLine => 3,
        ParseError::BadHeader => 4,
        ParseError::MissingVia => 5,
        ParseError::MissingBranch => 6,
        ParseError::MissingCallId => 7,
        ParseError::MissingCSeq => 8,
        ParseError::BadCSeq => 9,
        ParseError::BadContentLength => 10,
    }
}

const PARSE_ERRORS: [ParseError; 11] = [
    ParseError::TooLarge,
    ParseError::Truncated,
    ParseError::NotAResponse,
    ParseError::BadStatusLine,
    ParseError::BadHeader,
    ParseError::MissingVia,
    ParseError::MissingBranch,
    ParseError::MissingCallId,
    ParseError::MissingCSeq,
    ParseError::BadCSeq,
    ParseError::BadContentLength,
];

const IGNORE_REASONS: [IgnoreReason; IgnoreReason::COUNT] = [
    IgnoreReason::Malformed(ParseError::TooLarge),
    IgnoreReason::UnknownSource,
    IgnoreReason::CallIdMismatch,
    IgnoreReason::CSeqMismatch,
    IgnoreReason::MethodMismatch,
    IgnoreReason::BranchMismatch,
    IgnoreReason::NotWaiting,
    IgnoreReason::Provisional,
];

/// The event as a record: its length, then the event.
fn encode(e: &Event) -> ([u8; MAX_RECORD], usize) {
    let mut w = Writer { buf: [0; MAX_RECORD], len: 1 };
    let retry = |w: &mut Writer, r: Option<u32>| {
        if let Some(r) = r {
            w.put(&r.to_le_bytes());
        }
    };
    match *e {
        Event::ProbeSent { server, attempt, cseq } => {
            w.put(&[KIND_PROBE, server as u8, attempt]);
            w.put(&cseq.to_le_bytes());
        }
        Event::Reply { server, attempt, status, rtt, retry_after } => {
            w.put(&[KIND_REPLY, server as u8 | (u8::from(retry_after.is_some()) << 1), attempt]);
            w.put(&status.to_le_bytes());
            w.put(&rtt.as_micros().to_le_bytes());
            retry(&mut w, retry_after);
        }
        Event::AttemptTimedOut { server, attempt } => w.put(&[KIND_TIMEOUT, server as u8, attempt]),
        Event::AttemptRefused { server, attempt } => w.put(&[KIND_REFUSED, server as u8, attempt]),
        Event::ServerUp { server } => w.put(&[4, server as u8]),
        Event::ServerDown { server, reason } => {
            w.put(&[5, server as u8]);
            put_down_reason(&mut w, reason);
        }
        Event::CycleResult { server, result: CycleResult::Alive } => w.put(&[14, server as u8 | 2]),
        Event::CycleResult { server, result: CycleResult::Failed(reason) } => {
            w.put(&[14, server as u8]);
            put_down_reason(&mut w, reason);
        }
        Event::Switch { from, to, reason, generation } => {
            let r = switch_reason_index(reason);
            w.put(&[6, from as u8 | ((to as u8) << 1), r]);
            w.put(&generation.to_le_bytes());
        }
        Event::Applied { side, generation } => {
            w.put(&[7, side as u8]);
            w.put(&generation.to_le_bytes());
        }
        Event::ApplyFailed { side, generation, kept } => {
            w.put(&[8, side as u8 | ((kept as u8) << 1)]);
            w.put(&generation.to_le_bytes());
        }
        Event::NoServerReachable => w.u8(9),
        Event::Held { to, reason: HoldReason::CallInProgress } => w.put(&[10, to as u8, 0]),
        Event::ProbingPaused => w.u8(11),
        Event::ProbingResumed => w.u8(12),
        Event::Ignored { reason } => {
            w.put(&[KIND_IGNORED, reason.index() as u8]);
            if let IgnoreReason::Malformed(p) = reason {
                w.u8(parse_error_index(p));
            }
        }
        Event::FlowUp { server } => w.put(&[15, server as u8]),
        Event::FlowDown { server, reason } => w.put(&[16, server as u8, flow_error_code(reason)]),
    }
    let len = w.len;
    w.buf[0] = len as u8;
    (w.buf, len)
}

const TLS_ERRORS: [TlsError; 6] = [
    TlsError::UnknownIssuer,
    TlsError::Expired,
    TlsError::NameMismatch,
    TlsError::WildcardRefused,
    TlsError::HandshakeTimeout,
    TlsError::Other,
];

const FLOW_ERRORS: [FlowError; 7] = [
    FlowError::Refused,
    FlowError::ConnectTimeout,
    FlowError::Closed,
    FlowError::Framing,
    FlowError::AttemptTimedOut,
    FlowError::KeepAliveLost,
    FlowError::Reconfigured,
];

/// A flow error in one byte: its index in [`FLOW_ERRORS`], or 0x10 plus the index of a TLS error
/// in [`TLS_ERRORS`]; exhaustive, so a new error must be given its place.
const fn flow_error_code(e: FlowError) -> u8 {
    match e {
        FlowError::Refused => 0,
        FlowError::ConnectTimeout => 1,
        FlowError::Closed => 2,
        FlowError::Framing => 3,
        FlowError::AttemptTimedOut => 4,
        FlowError::KeepAliveLost => 5,
        FlowError::Reconfigured => 6,
        FlowError::Tls(t) => {
            0x10 | match t {
                TlsError::UnknownIssuer => 0,
                TlsError::Expired => 1,
                TlsError::NameMismatch => 2,
                TlsError::WildcardRefused => 3,
                TlsError::HandshakeTimeout => 4,
                TlsError::Other => 5,
            }
        }
    }
}

fn flow_error(code: u8) -> Option<FlowError> {
    if code & 0x10 != 0 {
        TLS_ERRORS.get(usize::from(code & 0x0f)).map(|t| FlowError::Tls(*t))
    } else {
        FLOW_ERRORS.get(usize::from(code)).copied()
    }
}

fn put_down_reason(w: &mut Writer, reason: DownReason) {
    match reason {
        DownReason::Timeout => w.u8(0),
        DownReason::Refused => w.u8(1),
        DownReason::Flow(e) => w.put(&[3, flow_error_code(e)]),
        DownReason::Status { code, retry_after } => {
            w.u8(2 | (u8::from(retry_after.is_some()) << 4));
            w.put(&code.to_le_bytes());
            if let Some(r) = retry_after {
                w.put(&r.to_le_bytes());
            }
        }
    }
}

fn down_reason(r: &mut Reader<'_>) -> Option<DownReason> {
    let kind = r.u8()?;
    Some(match kind & 0x0f {
        0 => DownReason::Timeout,
        1 => DownReason::Refused,
        3 => DownReason::Flow(flow_error(r.u8()?)?),
        _ => DownReason::Status { code: r.u16()?, retry_after: if kind & 0x10 != 0 { Some(r.u32()?) } else { None } },
    })
}

/// The event of a record (without its length byte).
fn decode(bytes: &[u8]) -> Option<Event> {
    let mut r = Reader { bytes };
    let retry = |r: &mut Reader<'_>, present: bool| if present { r.u32().map(Some) } else { Some(None) };
    Some(match r.u8()? {
        KIND_PROBE => Event::ProbeSent { server: side(r.u8()?), attempt: r.u8()?, cseq: r.u32()? },
        KIND_REPLY => {
            let flags = r.u8()?;
            let attempt = r.u8()?;
            let status = r.u16()?;
            let rtt = Duration::from_micros(r.u64()?);
            let retry_after = retry(&mut r, flags & 2 != 0)?;
            Event::Reply { server: side(flags), attempt, status, rtt, retry_after }
        }
        KIND_TIMEOUT => Event::AttemptTimedOut { server: side(r.u8()?), attempt: r.u8()? },
        KIND_REFUSED => Event::AttemptRefused { server: side(r.u8()?), attempt: r.u8()? },
        4 => Event::ServerUp { server: side(r.u8()?) },
        5 => {
            let server = side(r.u8()?);
            Event::ServerDown { server, reason: down_reason(&mut r)? }
        }
        14 => {
            let flags = r.u8()?;
            let result = if flags & 2 != 0 { CycleResult::Alive } else { CycleResult::Failed(down_reason(&mut r)?) };
            Event::CycleResult { server: side(flags), result }
        }
        6 => {
            let sides = r.u8()?;
            let reason = *SWITCH_REASONS.get(usize::from(r.u8()?))?;
            Event::Switch { from: side(sides), to: side(sides >> 1), reason, generation: r.u32()? }
        }
        7 => Event::Applied { side: side(r.u8()?), generation: r.u32()? },
        8 => {
            let sides = r.u8()?;
            Event::ApplyFailed { side: side(sides), generation: r.u32()?, kept: side(sides >> 1) }
        }
        9 => Event::NoServerReachable,
        10 => Event::Held { to: side(r.u8()?), reason: HoldReason::CallInProgress },
        11 => Event::ProbingPaused,
        12 => Event::ProbingResumed,
        KIND_IGNORED => {
            let reason = match *IGNORE_REASONS.get(usize::from(r.u8()?))? {
                IgnoreReason::Malformed(_) => IgnoreReason::Malformed(*PARSE_ERRORS.get(usize::from(r.u8()?))?),
                other => other,
            };
            Event::Ignored { reason }
        }
        15 => Event::FlowUp { server: side(r.u8()?) },
        16 => Event::FlowDown { server: side(r.u8()?), reason: flow_error(r.u8()?)? },
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    extern crate std;

    use super::*;

    fn samples() -> [Event; 27] {
        [
            Event::FlowUp { server: Side::Backup },
            Event::FlowDown { server: Side::Primary, reason: FlowError::Tls(TlsError::WildcardRefused) },
            Event::FlowDown { server: Side::Backup, reason: FlowError::Reconfigured },
            Event::ServerDown { server: Side::Backup, reason: DownReason::Flow(FlowError::Tls(TlsError::Expired)) },
            Event::CycleResult { server: Side::Backup, result: CycleResult::Alive },
            Event::CycleResult { server: Side::Primary, result: CycleResult::Failed(DownReason::Timeout) },
            Event::CycleResult {
                server: Side::Backup,
                result: CycleResult::Failed(DownReason::Status { code: 503, retry_after: Some(300) }),
            },
            Event::ProbeSent { server: Side::Backup, attempt: 3, cseq: 0x7fff_fff0 },
            Event::Reply {
                server: Side::Primary,
                attempt: 2,
                status: 503,
                rtt: Duration::from_micros(u64::MAX),
                retry_after: Some(u32::MAX),
            },
            Event::Reply {
                server: Side::Backup,
                attempt: 1,
                status: 200,
                rtt: Duration::from_millis(20),
                retry_after: None,
            },
            Event::AttemptTimedOut { server: Side::Backup, attempt: 5 },
            Event::AttemptRefused { server: Side::Primary, attempt: 1 },
            Event::ServerUp { server: Side::Backup },
            Event::ServerDown { server: Side::Primary, reason: DownReason::Timeout },
            Event::ServerDown { server: Side::Backup, reason: DownReason::Refused },
            Event::ServerDown {
                server: Side::Backup,
                reason: DownReason::Status { code: 503, retry_after: Some(120) },
            },
            Event::ServerDown { server: Side::Primary, reason: DownReason::Status { code: 408, retry_after: None } },
            Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Reconfigured, generation: 9 },
            Event::Switch {
                from: Side::Backup,
                to: Side::Primary,
                reason: SwitchReason::Failover,
                generation: u32::MAX,
            },
            Event::Applied { side: Side::Backup, generation: 7 },
            Event::ApplyFailed { side: Side::Backup, generation: 2, kept: Side::Primary },
            Event::NoServerReachable,
            Event::Held { to: Side::Primary, reason: HoldReason::CallInProgress },
            Event::ProbingPaused,
            Event::ProbingResumed,
            Event::Ignored { reason: IgnoreReason::Malformed(ParseError::BadContentLength) },
            Event::Ignored { reason: IgnoreReason::Provisional },
        ]
    }

    #[test]
    fn every_event_round_trips() {
        for e in samples() {
            let (record, len) = encode(&e);
            assert!(len <= MAX_RECORD);
            assert_eq!(usize::from(record[0]), len);
            assert_eq!(decode(&record[1..len]), Some(e));
        }
        for (i, r) in SWITCH_REASONS.iter().enumerate() {
            assert_eq!(usize::from(switch_reason_index(*r)), i);
        }
        for (i, p) in PARSE_ERRORS.iter().enumerate() {
            assert_eq!(usize::from(parse_error_index(*p)), i);
        }
        for r in SWITCH_REASONS {
            let e = Event::Switch { from: Side::Primary, to: Side::Backup, reason: r, generation: 1 };
            assert_eq!(decode(&encode(&e).0[1..]), Some(e));
        }
        for p in PARSE_ERRORS {
            let e = Event::Ignored { reason: IgnoreReason::Malformed(p) };
            assert_eq!(decode(&encode(&e).0[1..]), Some(e));
        }
        for (i, r) in IGNORE_REASONS.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for e in FLOW_ERRORS.into_iter().chain(TLS_ERRORS.map(FlowError::Tls)) {
            assert_eq!(flow_error(flow_error_code(e)), Some(e));
            let d = Event::CycleResult { server: Side::Primary, result: CycleResult::Failed(DownReason::Flow(e)) };
            assert_eq!(decode(&encode(&d).0[1..]), Some(d));
        }
    }

    #[test]
    fn the_queue_keeps_order_wraps_and_gives_traffic_way_first() {
        let mut q = EventQueue::<40>::new();
        let all = samples();
        let traffic = |e: &Event| is_traffic(encode(e).0[1]);
        let size = |v: &std::collections::VecDeque<Event>| v.iter().map(|x| encode(x).1).sum::<usize>();
        let mut expected = std::collections::VecDeque::new();
        let (mut dropped, mut state_dropped) = (0u32, 0u32);
        for round in 0..200 {
            for e in all.iter().skip(round * 3 % all.len()).take(1 + round % 4) {
                q.push(*e);
                // Mirror the queue: the oldest traffic gives way first; new traffic never pushes out
                // state; state gives way to newer state, oldest first.
                let len = encode(e).1;
                let mut keep = true;
                while size(&expected) + len > 40 {
                    dropped += 1;
                    if let Some(i) = expected.iter().position(traffic) {
                        expected.remove(i);
                    } else if traffic(e) {
                        keep = false;
                        break;
                    } else {
                        expected.pop_front();
                        state_dropped += 1;
                    }
                }
                if keep {
                    expected.push_back(*e);
                }
            }
            for _ in 0..(round % 3) {
                assert_eq!(q.pop(), expected.pop_front());
            }
            assert_eq!((q.dropped, q.state_dropped), (dropped, state_dropped));
        }
        assert!(state_dropped > 0 && dropped > state_dropped, "the mix exercises both rules");
        while let Some(e) = expected.pop_front() {
            assert_eq!(q.pop(), Some(e));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_flood_of_traffic_never_pushes_out_a_switch() {
        let mut q = EventQueue::<116>::new();
        let switch =
            Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Failover, generation: 1 };
        let down = Event::ServerDown { server: Side::Primary, reason: DownReason::Timeout };
        q.push(Event::AttemptTimedOut { server: Side::Primary, attempt: 3 });
        q.push(down);
        q.push(switch);
        for _ in 0..10_000 {
            q.push(Event::Ignored { reason: IgnoreReason::BranchMismatch });
        }
        let drained: std::vec::Vec<Event> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(drained.iter().filter(|e| **e == switch).count(), 1);
        assert_eq!(drained.iter().position(|e| *e == down), Some(0), "the state comes in order: {drained:?}");
        assert_eq!(drained.get(1), Some(&switch));
        assert_eq!(q.state_dropped, 0);
    }
}
