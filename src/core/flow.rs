//! Stream flows (SIP over TCP and TLS): what the agent asks of the caller, what the caller reports
//! back, and the framing of a byte stream into SIP messages.
//!
//! A server whose [`Transport`] is a stream is probed over one persistent flow that the caller opens
//! when [`Agent::poll_flow`](super::Agent::poll_flow) says so, and reports on with
//! [`Agent::handle_flow`](super::Agent::handle_flow). Bytes read from the flow go into the caller's
//! own buffer; [`frame`] says where the first whole message (or keep-alive pong) in it ends, and the
//! message is handed to [`Agent::handle_message`](super::Agent::handle_message). The agent itself
//! holds no stream buffer, so it stays small.
//!
//! The rules, on every transport with the same ladder timing:
//! - a refused or reset connect, a TLS failure or a flow closed under a waiting probe ends the
//!   attempt at once (a definite answer, unlike a lost datagram); the next attempt opens a new flow;
//! - an attempt that times out closes its flow ([`FlowError::AttemptTimedOut`]), so a connection
//!   that neither answers nor closes costs one rung, not the ladder;
//! - nothing but a matching response read from the server's own flow counts as alive: a TLS
//!   failure never does, nor a datagram claiming to come from a stream server.

use core::fmt;
use core::net::SocketAddr;

use super::config::{Side, Transport};
use super::wire::MAX_MESSAGE;

/// Why a TLS handshake failed, as the caller maps its TLS library's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate has expired or is not yet valid.
    Expired,
    /// The certificate does not name the server's SIP domain (RFC 5922).
    NameMismatch,
    /// The certificate names the domain only through a wildcard, and wildcards are not allowed.
    WildcardRefused,
    /// The handshake did not finish in time (the caller's own handshake timer).
    HandshakeTimeout,
    /// Any other handshake failure (protocol version, alert from the peer, bad message).
    Other,
}

impl TlsError {
    /// A snake_case name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            TlsError::UnknownIssuer => "unknown_issuer",
            TlsError::Expired => "expired",
            TlsError::NameMismatch => "name_mismatch",
            TlsError::WildcardRefused => "wildcard_refused",
            TlsError::HandshakeTimeout => "handshake_timeout",
            TlsError::Other => "tls_other",
        }
    }
}

/// Why a flow failed or was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowError {
    /// The connect was refused, or the connection reset (reported by the caller).
    Refused,
    /// The connect did not complete in the caller's own connect timer (reported by the caller).
    ConnectTimeout,
    /// The TLS handshake failed (reported by the caller).
    Tls(TlsError),
    /// The peer closed the flow (reported by the caller).
    Closed,
    /// The stream could not be framed ([`frame`] returned an error) and the caller closed it.
    Framing,
    /// Closed by the agent: a probe attempt on it timed out.
    AttemptTimedOut,
    /// Closed by the agent: no keep-alive pong within [`PONG_WAIT`].
    KeepAliveLost,
    /// Closed by the agent: the server's address or transport changed.
    Reconfigured,
}

impl FlowError {
    /// A snake_case name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FlowError::Refused => "refused",
            FlowError::ConnectTimeout => "connect_timeout",
            FlowError::Tls(t) => t.as_str(),
            FlowError::Closed => "closed",
            FlowError::Framing => "framing",
            FlowError::AttemptTimedOut => "attempt_timed_out",
            FlowError::KeepAliveLost => "keepalive_lost",
            FlowError::Reconfigured => "reconfigured",
        }
    }
    /// Whether the TLS handshake failed.
    pub const fn is_tls(&self) -> bool {
        matches!(self, FlowError::Tls(_))
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller reports about a flow the agent asked for, with the flow's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowEvent {
    /// Connected (for TLS: the handshake completed and the certificate verified).
    Connected,
    /// The flow failed or was closed; the caller has dropped it.
    Failed(FlowError),
    /// A keep-alive pong (a CRLF, [`Frame::Pong`]) arrived on it.
    Pong,
}

/// What the agent asks the caller to do with a stream flow, from
/// [`Agent::poll_flow`](super::Agent::poll_flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowCommand {
    /// Open a flow to `destination` over `transport` (TCP, or TLS verified against the server's SIP
    /// domain), and report its outcome with [`FlowEvent`] and this `id`.
    Open {
        /// The server it is for.
        server: Side,
        /// The flow's id: reports about an older flow of the same server are ignored.
        id: u16,
        /// Where to connect.
        destination: SocketAddr,
        /// TCP or TLS.
        transport: Transport,
    },
    /// Close the flow `id` of `server` and forget it; its later reports are ignored.
    Close {
        /// The server it is for.
        server: Side,
        /// The flow's id.
        id: u16,
        /// Why.
        reason: FlowError,
    },
}

/// How long the agent waits for the pong of a keep-alive ping before closing the flow (RFC 5626
/// 4.4.1 allows 10 s).
pub const PONG_WAIT: super::Duration = super::Duration::from_secs(10);

/// The keep-alive ping: a double CRLF (RFC 5626 3.5.1).
pub const PING: &[u8; 4] = b"\r\n\r\n";

/// The first unit at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message of this many bytes (headers and body): hand it to
    /// [`Agent::handle_message`](super::Agent::handle_message), then consume it.
    Message(usize),
    /// A keep-alive pong (CRLF) of this many bytes: report [`FlowEvent::Pong`], then consume it.
    Pong(usize),
}

impl Frame {
    /// How many bytes to consume from the buffer.
    pub const fn len(&self) -> usize {
        match self {
            Frame::Message(n) | Frame::Pong(n) => *n,
        }
    }
    /// Whether the unit is empty (never: both kinds have at least two bytes).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a stream cannot be framed. The caller closes the flow and reports
/// [`FlowError::Framing`]; nothing more is read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes do not start a SIP message (garbage between messages).
    Garbage,
    /// The header block ended without a Content-Length (mandatory on streams, RFC 3261 18.3).
    NoContentLength,
    /// A Content-Length that is not a number, or two that disagree.
    BadContentLength,
    /// The message (or its header block, not yet ended) is larger than [`MAX_MESSAGE`].
    TooLarge,
}

impl FrameError {
    /// A snake_case name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            FrameError::Garbage => "garbage",
            FrameError::NoContentLength => "no_content_length",
            FrameError::BadContentLength => "bad_content_length",
            FrameError::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Garbage => "the stream does not start a SIP message",
            FrameError::NoContentLength => "a message on a stream without Content-Length",
            FrameError::BadContentLength => "a Content-Length that is not one number",
            FrameError::TooLarge => "a message larger than 8192 bytes",
        })
    }
}

/// Where the first unit of a stream buffer ends: `Ok(None)` until it is complete, then its kind and
/// length. The caller keeps its own buffer (at least [`MAX_MESSAGE`] bytes), appends what it reads,
/// calls this until it returns `Ok(None)`, consuming each unit, and closes the flow on an error.
///
/// A CRLF before a message is a keep-alive pong (RFC 5626); a message is its header block up to the
/// blank line plus `Content-Length` bytes of body (`Content-Length` or its compact form `l`). The
/// work done is bounded by the buffer's first [`MAX_MESSAGE`] bytes whatever the caller's buffer
/// holds, and an error comes as soon as the bytes seen prove one: a start that is not a SIP start
/// line, a header block or message longer than [`MAX_MESSAGE`].
pub fn frame(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    match buf {
        [] | [b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => return Ok(Some(Frame::Pong(2))),
        [b'\r', _, ..] => return Err(FrameError::Garbage),
        _ => {}
    }
    check_start(buf)?;
    let window = buf.get(..MAX_MESSAGE).unwrap_or(buf);
    let Some(head_end) = find_blank_line(window) else {
        return if buf.len() >= MAX_MESSAGE { Err(FrameError::TooLarge) } else { Ok(None) };
    };
    let length = content_length(window.get(..head_end).unwrap_or(&[]))?;
    let total = head_end.checked_add(4).and_then(|h| h.checked_add(length)).ok_or(FrameError::TooLarge)?;
    if total > MAX_MESSAGE {
        return Err(FrameError::TooLarge);
    }
    Ok((buf.len() >= total).then_some(Frame::Message(total)))
}

/// A SIP start line begins with `SIP/` (a response) or an upper-case method and a space (a
/// request). Checks the bytes there are, so garbage is refused before a header block accumulates.
fn check_start(buf: &[u8]) -> Result<(), FrameError> {
    const SIP: &[u8] = b"SIP/";
    let n = buf.len().min(SIP.len());
    if buf.get(..n) == SIP.get(..n) {
        return Ok(());
    }
    // A request: METHOD SP ... (methods are tokens; the ones in use are upper-case letters).
    for (i, b) in buf.iter().enumerate().take(32) {
        match b {
            b'A'..=b'Z' | b'-' | b'_' | b'.' | b'!' | b'%' | b'*' | b'+' | b'`' | b'\'' | b'~' => {}
            b' ' if i > 0 => return Ok(()),
            _ => return Err(FrameError::Garbage),
        }
    }
    if buf.len() >= 32 {
        Err(FrameError::Garbage)
    } else {
        Ok(())
    }
}

/// Where the blank line after the header block starts (the index of its `\r\n\r\n`).
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The Content-Length of a header block (without its blank line), folded lines included.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    // Skip the start line.
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = line.split_at_checked(colon).unwrap_or((line, &[]));
        let name = trim(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = trim(value.get(1..).unwrap_or(&[]));
        if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength);
        }
        // At most nine digits: below 10^9, no overflow.
        let n = value.iter().fold(0usize, |n, d| n.wrapping_mul(10).wrapping_add(usize::from(d.wrapping_sub(b'0'))));
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(n);
    }
    found.ok_or(FrameError::NoContentLength)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    const OK: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_message_is_framed_by_its_content_length_whatever_the_reads() {
        let body = b"SIP/2.0 200 OK\r\nl: 5\r\n\r\nhello";
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OK);
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\r\n");
        // Split at every byte: feed one byte at a time, consume each unit as it completes.
        let mut buf = Vec::new();
        let mut units = Vec::new();
        for b in &stream {
            buf.push(*b);
            while let Some(f) = frame(&buf).unwrap() {
                units.push(f);
                buf.drain(..f.len());
            }
        }
        assert!(buf.is_empty());
        assert_eq!(units, [Frame::Pong(2), Frame::Message(OK.len()), Frame::Message(body.len()), Frame::Pong(2)]);
    }

    #[test]
    fn bad_streams_are_errors() {
        assert_eq!(frame(b"\x16\x03\x01garbage"), Err(FrameError::Garbage));
        assert_eq!(frame(b"\rX"), Err(FrameError::Garbage));
        assert_eq!(frame(b"sip/2.0 200"), Err(FrameError::Garbage));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"), Err(FrameError::NoContentLength));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n"), Err(FrameError::BadContentLength));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\n"), Err(FrameError::BadContentLength));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n"), Err(FrameError::TooLarge));
        assert_eq!(frame(b"SIP/2.0 200 OK\r\nContent-Length: 9999999999\r\n\r\n"), Err(FrameError::BadContentLength));
        let mut endless = b"SIP/2.0 200 OK\r\nX: ".to_vec();
        endless.resize(MAX_MESSAGE, b'a');
        assert_eq!(frame(&endless), Err(FrameError::TooLarge));
        endless.truncate(MAX_MESSAGE - 1);
        assert_eq!(frame(&endless), Ok(None));
    }

    #[test]
    fn partial_starts_wait_and_requests_are_framed() {
        for prefix in [&b"S"[..], b"SI", b"SIP", b"SIP/2.0 2", b"\r", b"OPT", b"OPTIONS sip:x SIP/2.0\r\n"] {
            assert_eq!(frame(prefix), Ok(None), "{prefix:?}");
        }
        let req = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(req), Ok(Some(Frame::Message(req.len()))));
    }

    #[test]
    fn the_largest_message_fits_and_one_more_byte_does_not() {
        let head = b"SIP/2.0 200 OK\r\nContent-Length: ";
        let build = |body: usize| {
            let mut m = head.to_vec();
            m.extend_from_slice(std::format!("{body}\r\n\r\n").as_bytes());
            let h = m.len();
            m.resize(h + body, b'x');
            m
        };
        let fits = build(MAX_MESSAGE - head.len() - 8);
        assert_eq!(fits.len(), MAX_MESSAGE);
        assert_eq!(frame(&fits), Ok(Some(Frame::Message(MAX_MESSAGE))));
        assert_eq!(frame(&build(MAX_MESSAGE - head.len() - 7)), Err(FrameError::TooLarge));
    }
}
