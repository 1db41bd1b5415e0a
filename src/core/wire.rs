//! The wire: an OPTIONS encoder that writes into the caller's buffer, and a zero-copy response parser.
//!
//! Both halves are allocation-free and never panic, whatever the input: no indexing that can go out of
//! bounds, no unchecked arithmetic (the lints denied on the [core](super) hold the module to that).
//!
//! ## Encoder
//!
//! [`encode_options`] writes the request with CRLF line ends. The local address is written as
//! `host:port`, IPv6 in brackets (`[::1]:5062`); an IPv6 scope id is not part of a SIP host and is not
//! written. A Request-URI host containing `:` is an IPv6 literal and is bracketed, unless the caller
//! already bracketed it. [`encoded_len`] runs the same code path with a byte counter, so the two always
//! agree.
//!
//! ## Parser
//!
//! [`parse_response`] accepts what RFC 3261 allows in a UDP response: CRLF or bare LF line ends, header
//! folding, compact header names (`v`, `i`, `l`), case-insensitive names, LWS around `:`, `/`, `;`, `=`
//! and `,`, IPv6 Via hosts, several Vias in one header, and bytes that are not UTF-8 in the reason
//! phrase and in headers it does not look at. The headers are read in one pass.
//!
//! Choices where the RFC leaves room:
//! - A duplicate Call-ID, CSeq or Retry-After header is ignored: the first one counts, later ones are
//!   not even looked at. Only the topmost Via (first value of the first Via header) is parsed.
//! - Several Content-Length headers are accepted only when they agree; otherwise
//!   [`ParseError::BadContentLength`].
//! - Without Content-Length the body is the rest of the datagram; with it, bytes beyond the announced
//!   length are discarded (RFC 3261 18.3).
//! - A Retry-After that does not start with digits (followed by the end, LWS, a comment or a parameter)
//!   is ignored; a delay beyond `u32::MAX` seconds saturates.
//! - An empty datagram, and any proper prefix of a response, is [`ParseError::Truncated`].
//! - The status line may end right after the code (`SIP/2.0 200`): the reason is then empty. A
//!   reason phrase holding control characters other than HTAB is a [`ParseError::BadStatusLine`].
//! - A Call-ID that is empty or holds whitespace or control characters is a [`ParseError::BadHeader`].

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::config::Transport;

/// The largest response the parser accepts, in bytes.
pub const MAX_MESSAGE: usize = 8192;

/// RFC 3261 magic cookie that starts every branch this crate generates.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// What one OPTIONS request says. Every field is borrowed; nothing is copied until encoding.
#[derive(Debug, Clone, Copy)]
pub struct OptionsRequest<'a> {
    /// Request-URI host: a name, an IPv4 literal, or an IPv6 literal without brackets.
    pub uri_host: &'a str,
    /// Request-URI port, if one is written.
    pub uri_port: Option<u16>,
    /// The local address of the socket the request leaves from (Via sent-by and Contact).
    pub local: SocketAddr,
    /// The user part of From and Contact.
    pub user: &'a str,
    /// The Via branch after the magic cookie (ASCII alphanumerics).
    pub branch: &'a [u8],
    /// The Call-ID (ASCII token characters).
    pub call_id: &'a [u8],
    /// The From tag (ASCII alphanumerics).
    pub from_tag: &'a [u8],
    /// The CSeq number.
    pub cseq: u32,
    /// The User-Agent value.
    pub user_agent: &'a str,
    /// The transport the request travels on: named in the Via; TLS makes the Request-URI a `sips:`
    /// URI, TCP adds `;transport=tcp` to it.
    pub transport: Transport,
}

/// The buffer given to the encoder was too small; it was left untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// The size the encoding needs, in bytes.
    pub needed: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes needed", self.needed)
    }
}

impl core::error::Error for BufferTooSmall {}

/// The exact length of `req` once encoded.
pub fn encoded_len(req: &OptionsRequest<'_>) -> usize {
    let parts = Parts::new(req);
    let mut counter = Counter(0);
    emit(req, &parts, &mut counter);
    counter.0
}

/// Writes `req` into `buf` and returns the number of bytes written. When `buf` is too small, returns
/// the size needed and leaves `buf` untouched.
pub fn encode_options(req: &OptionsRequest<'_>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let parts = Parts::new(req);
    let mut counter = Counter(0);
    emit(req, &parts, &mut counter);
    let needed = counter.0;
    let Some(dst) = buf.get_mut(..needed) else {
        return Err(BufferTooSmall { needed });
    };
    let mut writer = SliceWriter { rest: dst, ok: true };
    emit(req, &parts, &mut writer);
    if writer.ok && writer.rest.is_empty() {
        Ok(needed)
    } else {
        // Cannot happen: counting and writing run the same code. Reported rather than trusted.
        Err(BufferTooSmall { needed })
    }
}

/// Where [`emit`] puts the request's bytes.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Counts the bytes instead of writing them.
struct Counter(usize);

impl Sink for Counter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len());
    }
}

/// Writes into a slice; remembers (instead of panicking) when it runs out of room.
struct SliceWriter<'b> {
    rest: &'b mut [u8],
    ok: bool,
}

impl Sink for SliceWriter<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match core::mem::take(&mut self.rest).split_at_mut_checked(bytes.len()) {
            Some((dst, rest)) => {
                dst.copy_from_slice(bytes);
                self.rest = rest;
            }
            None => self.ok = false,
        }
    }
}

/// The formatted pieces of a request: made once, then counted and written.
struct Parts {
    /// `host:port` of the local socket.
    local: Stack<48>,
    /// `:port` after the Request-URI host, or nothing.
    uri_port: Stack<6>,
    /// Whether the Request-URI host is a bare IPv6 literal, to be bracketed.
    bracket: bool,
    cseq: Stack<10>,
}

impl Parts {
    fn new(req: &OptionsRequest<'_>) -> Self {
        let host = req.uri_host.as_bytes();
        let mut uri_port = Stack::new();
        if let Some(port) = req.uri_port {
            uri_port.push(b':');
            uri_port.push_decimal(u32::from(port));
        }
        let mut cseq = Stack::new();
        cseq.push_decimal(req.cseq);
        Parts {
            local: host_port(&req.local),
            uri_port,
            bracket: host.contains(&b':') && host.first() != Some(&b'['),
            cseq,
        }
    }
}

/// The whole request, piece by piece. Used both to count and to write.
#[inline]
fn emit<S: Sink>(req: &OptionsRequest<'_>, parts: &Parts, s: &mut S) {
    let local = parts.local.as_bytes();
    s.put(b"OPTIONS ");
    emit_uri(req, parts, s);
    s.put(match req.transport {
        Transport::Udp => b" SIP/2.0\r\nVia: SIP/2.0/UDP ",
        Transport::Tcp => b" SIP/2.0\r\nVia: SIP/2.0/TCP ",
        Transport::Tls => b" SIP/2.0\r\nVia: SIP/2.0/TLS ",
    });
    s.put(local);
    s.put(b";branch=");
    s.put(BRANCH_COOKIE.as_bytes());
    s.put(req.branch);
    s.put(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:");
    s.put(req.user.as_bytes());
    s.put(b"@");
    s.put(local);
    s.put(b">;tag=");
    s.put(req.from_tag);
    s.put(b"\r\nTo: <");
    emit_uri(req, parts, s);
    s.put(b">\r\nCall-ID: ");
    s.put(req.call_id);
    s.put(b"\r\nCSeq: ");
    s.put(parts.cseq.as_bytes());
    s.put(b" OPTIONS\r\nContact: <sip:");
    s.put(req.user.as_bytes());
    s.put(b"@");
    s.put(local);
    s.put(match req.transport {
        Transport::Udp => b"",
        Transport::Tcp => b";transport=tcp",
        Transport::Tls => b";transport=tls",
    });
    s.put(b">\r\nAccept: application/sdp\r\nUser-Agent: ");
    s.put(req.user_agent.as_bytes());
    s.put(b"\r\nContent-Length: 0\r\n\r\n");
}

/// `sip:host[:port]` (`sips:` over TLS, `;transport=tcp` over TCP), the host bracketed when it is a
/// bare IPv6 literal.
#[inline]
fn emit_uri<S: Sink>(req: &OptionsRequest<'_>, parts: &Parts, s: &mut S) {
    s.put(if req.transport == Transport::Tls { b"sips:" } else { b"sip:" });
    if parts.bracket {
        s.put(b"[");
    }
    s.put(req.uri_host.as_bytes());
    if parts.bracket {
        s.put(b"]");
    }
    s.put(parts.uri_port.as_bytes());
    if req.transport == Transport::Tcp {
        s.put(b";transport=tcp");
    }
}

/// A few bytes on the stack. Pushing past the capacity is ignored; the capacities are chosen so it
/// never happens.
struct Stack<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Stack<N> {
    fn new() -> Self {
        Stack { buf: [0; N], len: 0 }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    #[inline]
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len = self.len.saturating_add(1);
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    /// `n` in decimal.
    fn push_decimal(&mut self, n: u32) {
        let mut width = 1usize;
        let mut rest = n;
        while rest >= 10 {
            rest /= 10;
            width = width.saturating_add(1);
        }
        let Some(end) = self.len.checked_add(width) else {
            return;
        };
        let Some(dst) = self.buf.get_mut(self.len..end) else {
            return;
        };
        let mut rest = n;
        for slot in dst.iter_mut().rev() {
            // A digit: below 10, so `|` adds it to `'0'` exactly.
            *slot = b'0' | (rest % 10) as u8;
            rest /= 10;
        }
        self.len = end;
    }

    /// An IPv4 octet in decimal; the three digits are worked out independently.
    #[inline]
    fn push_octet(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' | (n / 100));
        }
        if n >= 10 {
            self.push(b'0' | (n / 10 % 10));
        }
        self.push(b'0' | (n % 10));
    }

    /// `n` in lowercase hexadecimal, without leading zeros.
    fn push_hex(&mut self, n: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12u32, 8, 4, 0] {
            let digit = n.checked_shr(shift).unwrap_or(0) & 0xf;
            if digit != 0 || started || shift == 0 {
                started = true;
                self.push(HEX.get(usize::from(digit)).copied().unwrap_or(b'0'));
            }
        }
    }

    fn push_ipv4(&mut self, ip: Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.push_octet(octet);
        }
    }

    /// RFC 5952 text, the same as `Display`: the longest run (the first of equals) of two or more
    /// zero groups becomes `::`, an IPv4-mapped address ends in dotted quad.
    fn push_ipv6(&mut self, ip: Ipv6Addr) {
        if let Some(v4) = ip.to_ipv4_mapped() {
            self.push_all(b"::ffff:");
            self.push_ipv4(v4);
            return;
        }
        let groups = ip.segments();
        let (mut best_start, mut best_len, mut run_start, mut run_len) = (0usize, 0usize, 0usize, 0usize);
        for (i, &g) in groups.iter().enumerate() {
            if g == 0 {
                if run_len == 0 {
                    run_start = i;
                }
                run_len = run_len.saturating_add(1);
                if run_len > best_len {
                    (best_start, best_len) = (run_start, run_len);
                }
            } else {
                run_len = 0;
            }
        }
        if best_len > 1 {
            self.push_groups(groups.get(..best_start).unwrap_or_default());
            self.push_all(b"::");
            self.push_groups(groups.get(best_start.saturating_add(best_len)..).unwrap_or_default());
        } else {
            self.push_groups(&groups);
        }
    }

    /// IPv6 groups separated by `:`.
    fn push_groups(&mut self, groups: &[u16]) {
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                self.push(b':');
            }
            self.push_hex(g);
        }
    }
}

/// `ip` as text (IPv6 in RFC 5952 form, without brackets), the same as its `Display`, written at the
/// start of `out`; returns the length (at most 45), or 0 if `out` is too short.
pub(crate) fn write_ip(ip: core::net::IpAddr, out: &mut [u8]) -> usize {
    let mut s: Stack<48> = Stack::new();
    match ip {
        core::net::IpAddr::V4(v4) => s.push_ipv4(v4),
        core::net::IpAddr::V6(v6) => s.push_ipv6(v6),
    }
    let text = s.as_bytes();
    match out.get_mut(..text.len()) {
        Some(dst) => {
            dst.copy_from_slice(text);
            text.len()
        }
        None => 0,
    }
}

/// A socket address as `host:port`, IPv6 in brackets (longest: `[` + 39 + `]:65535` = 47 bytes).
/// The IPv6 scope id is not part of a SIP host and is left out.
fn host_port(addr: &SocketAddr) -> Stack<48> {
    let mut hp = Stack::new();
    match addr {
        SocketAddr::V4(a) => hp.push_ipv4(*a.ip()),
        SocketAddr::V6(a) => {
            hp.push(b'[');
            hp.push_ipv6(*a.ip());
            hp.push(b']');
        }
    }
    hp.push(b':');
    hp.push_decimal(u32::from(addr.port()));
    hp
}

/// A parsed SIP response: slices into the datagram, nothing copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// The status code (100..=699).
    pub status: u16,
    /// The reason phrase, as received.
    pub reason: &'a [u8],
    /// The `branch` parameter of the topmost Via, including its magic cookie.
    pub branch: &'a [u8],
    /// The Call-ID value.
    pub call_id: &'a [u8],
    /// The CSeq number.
    pub cseq: u32,
    /// The CSeq method.
    pub cseq_method: &'a [u8],
    /// The Retry-After delay in seconds, when present.
    pub retry_after: Option<u32>,
    /// The body, exactly Content-Length bytes (empty when there is none).
    pub body: &'a [u8],
}

/// Why a datagram is not an acceptable SIP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE`].
    TooLarge,
    /// Ends before the header section does, or before the body Content-Length announces.
    Truncated,
    /// Not a SIP/2.0 response (a request, another protocol, garbage).
    NotAResponse,
    /// The status line is malformed.
    BadStatusLine,
    /// A header line is malformed.
    BadHeader,
    /// No Via header.
    MissingVia,
    /// The topmost Via has no branch parameter.
    MissingBranch,
    /// No Call-ID header.
    MissingCallId,
    /// No CSeq header.
    MissingCSeq,
    /// The CSeq header is malformed.
    BadCSeq,
    /// The Content-Length header is malformed or larger than the message allows.
    BadContentLength,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::TooLarge => "message larger than the maximum accepted",
            ParseError::Truncated => "message truncated",
            ParseError::NotAResponse => "not a SIP/2.0 response",
            ParseError::BadStatusLine => "malformed status line",
            ParseError::BadHeader => "malformed header line",
            ParseError::MissingVia => "no Via header",
            ParseError::MissingBranch => "topmost Via has no branch",
            ParseError::MissingCallId => "no Call-ID header",
            ParseError::MissingCSeq => "no CSeq header",
            ParseError::BadCSeq => "malformed CSeq header",
            ParseError::BadContentLength => "malformed or oversized Content-Length",
        })
    }
}

impl core::error::Error for ParseError {}

/// Parses one datagram as a SIP response, borrowing from it.
pub fn parse_response(bytes: &[u8]) -> Result<Response<'_>, ParseError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let (status, reason, mut rest) = status_line(bytes)?;

    // One pass over the header section, a line at a time: the name byte by byte, the rest of the
    // line word by word.
    let mut fields = Fields::default();
    let body = loop {
        let (name, value_start) = match rest {
            [] | [b'\r'] => return Err(ParseError::Truncated),
            // The empty line that ends the header section.
            [b'\n', body @ ..] | [b'\r', b'\n', body @ ..] => break body,
            // A bare CR where a name should start, or a continuation line with nothing to continue
            // (folded lines are taken in with the header they continue, below).
            [b'\r' | b' ' | b'\t', ..] => return Err(ParseError::BadHeader),
            _ => header_name(rest)?,
        };
        // The value runs to the end of the line, and on over any continuation lines: the line breaks
        // inside count as whitespace.
        let mut line_start = value_start;
        let value = loop {
            let lf = find_lf(line_start).ok_or(ParseError::Truncated)?;
            let (line, after) = line_start.split_at_checked(lf).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let next = after.get(1..).unwrap_or_default();
            match next.first() {
                Some(b' ' | b'\t') => line_start = next,
                // The header section goes on, but not necessarily with a new header: cut here, it
                // could still have been a continuation line.
                None => return Err(ParseError::Truncated),
                Some(_) => {
                    rest = next;
                    let len = value_start.len().saturating_sub(line_start.len()).saturating_add(line.len());
                    break value_start.get(..len).unwrap_or_default();
                }
            }
        };
        let known = classify(name);
        if !matches!(known, Known::Other) {
            fields.header(known, value)?;
        }
    };

    let branch = fields.branch.ok_or(ParseError::MissingVia)?;
    let call_id = fields.call_id.ok_or(ParseError::MissingCallId)?;
    let (cseq, cseq_method) = fields.cseq.ok_or(ParseError::MissingCSeq)?;
    let body = match fields.content_length {
        Some(len) => body.get(..len).ok_or(ParseError::Truncated)?,
        None => body,
    };
    Ok(Response { status, reason, branch, call_id, cseq, cseq_method, retry_after: fields.retry_after.flatten(), body })
}

/// Reads a header name and the `HCOLON` after it: returns the name and what follows the colon.
#[inline]
fn header_name(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let (name, after) = line.split_at_checked(token_len(line)).unwrap_or_default();
    if let [b':', value @ ..] = after {
        if !name.is_empty() {
            return Ok((name, value));
        }
    }
    // HCOLON = *( SP / HTAB ) ":" SWS
    let wsp = after.iter().position(|&b| b != b' ' && b != b'\t').ok_or(ParseError::Truncated)?;
    match after.get(wsp..) {
        Some([b':', value @ ..]) if !name.is_empty() => Ok((name, value)),
        _ => Err(ParseError::BadHeader),
    }
}

/// The protocol version that starts a status line; compared case-insensitively.
const VERSION: &[u8] = b"SIP/2.0";

/// Reads the status line: returns the code, the reason phrase and what follows the line.
fn status_line(bytes: &[u8]) -> Result<(u16, &[u8], &[u8]), ParseError> {
    match bytes.split_at_checked(VERSION.len()) {
        Some((version, _)) if version.eq_ignore_ascii_case(VERSION) => {}
        Some(_) => return Err(ParseError::NotAResponse),
        None => {
            // Shorter than the version: a cut-off response, or something else altogether.
            let prefix = VERSION.get(..bytes.len()).unwrap_or_default();
            return Err(if prefix.eq_ignore_ascii_case(bytes) {
                ParseError::Truncated
            } else {
                ParseError::NotAResponse
            });
        }
    }
    let lf = find_lf(bytes).ok_or(ParseError::Truncated)?;
    let line = bytes.get(..lf).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let after_version = line.get(VERSION.len()..).unwrap_or_default();

    let Some((b' ', rest)) = after_version.split_first() else {
        return Err(ParseError::BadStatusLine);
    };
    let (code, reason) = match rest.split_at_checked(3) {
        Some((code, tail)) => match tail.split_first() {
            None => (code, tail),
            Some((b' ', reason)) => (code, reason),
            Some(_) => return Err(ParseError::BadStatusLine),
        },
        None => return Err(ParseError::BadStatusLine),
    };
    let status = code.iter().try_fold(0u16, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u16::from(d))
    });
    let status = match status {
        Some(s @ 100..=699) => s,
        _ => return Err(ParseError::BadStatusLine),
    };
    if reason.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ParseError::BadStatusLine);
    }
    Ok((status, reason, bytes.get(lf.saturating_add(1)..).unwrap_or_default()))
}

/// The headers the parser cares about, as they are found.
#[derive(Default)]
struct Fields<'a> {
    /// The topmost Via's branch; set by the first Via header.
    branch: Option<&'a [u8]>,
    call_id: Option<&'a [u8]>,
    cseq: Option<(u32, &'a [u8])>,
    /// Outer `Some` once a Retry-After has been seen; inner `None` when it was malformed.
    retry_after: Option<Option<u32>>,
    content_length: Option<usize>,
}

/// The headers the parser reads.
enum Known {
    Via,
    CallId,
    CSeq,
    ContentLength,
    RetryAfter,
    Other,
}

fn classify(name: &[u8]) -> Known {
    let is = |full: &[u8]| name.eq_ignore_ascii_case(full);
    match name.len() {
        1 => match name.first().map(u8::to_ascii_lowercase) {
            Some(b'v') => Known::Via,
            Some(b'i') => Known::CallId,
            Some(b'l') => Known::ContentLength,
            _ => Known::Other,
        },
        3 if is(b"via") => Known::Via,
        4 if is(b"cseq") => Known::CSeq,
        7 if is(b"call-id") => Known::CallId,
        11 if is(b"retry-after") => Known::RetryAfter,
        14 if is(b"content-length") => Known::ContentLength,
        _ => Known::Other,
    }
}

impl<'a> Fields<'a> {
    /// Takes in one complete header (value still holding its surrounding and folding LWS).
    // Kept out of line: inlined into the line loop, it slows the loop down for every header.
    #[inline(never)]
    fn header(&mut self, known: Known, value: &'a [u8]) -> Result<(), ParseError> {
        match known {
            Known::Via if self.branch.is_none() => self.branch = Some(topmost_branch(value)?),
            Known::CallId if self.call_id.is_none() => self.call_id = Some(call_id(value)?),
            Known::CSeq if self.cseq.is_none() => self.cseq = Some(cseq(value)?),
            Known::RetryAfter if self.retry_after.is_none() => {
                self.retry_after = Some(retry_after(value));
            }
            Known::ContentLength => {
                let len = content_length(value)?;
                match self.content_length {
                    Some(earlier) if earlier != len => return Err(ParseError::BadContentLength),
                    _ => self.content_length = Some(len),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// SP, HTAB, and the CR and LF of a folded line.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters: alphanumerics and `-.!%*_+`'~`, one entry per byte value.
static TOKEN: [bool; 256] = token_table();

// Evaluated at compile time: an index out of bounds would fail the build, not the firmware.
#[allow(clippy::indexing_slicing)]
const fn token_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b: u8 = 0;
    loop {
        table[b as usize] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        if b == u8::MAX {
            return table;
        }
        b = b.wrapping_add(1);
    }
}

/// Whether `b` is an RFC 3261 `token` character.
#[inline]
fn is_token(b: u8) -> bool {
    // Never `None`: the table has an entry for every byte.
    TOKEN.get(usize::from(b)).copied().unwrap_or(false)
}

/// The length of the run of `token` characters that starts `s`.
#[inline]
fn token_len(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_token(b)).unwrap_or(s.len())
}

/// The index of the first LF in `s`, eight bytes at a time.
#[inline]
fn find_lf(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut rest = s;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let x = u64::from_le_bytes(*word) ^ LFS;
        // Flags the bytes of `x` that are zero; a flag can be spurious only above a real one, so the
        // lowest flag is the first LF.
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            let at = s.len().saturating_sub(rest.len());
            return Some(at.saturating_add((found.trailing_zeros() / 8) as usize));
        }
        rest = tail;
    }
    let at = s.len().saturating_sub(rest.len());
    rest.iter().position(|&b| b == b'\n').map(|i| at.saturating_add(i))
}

/// Decimal digits to `u32`; `None` when empty, not all digits, or too large.
fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u32::from(d))
    })
}

/// A cursor over a header value: what is left of it.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { rest: s }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    #[inline]
    fn bump(&mut self) {
        if let [_, rest @ ..] = self.rest {
            self.rest = rest;
        }
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        match self.rest {
            [first, rest @ ..] if *first == b => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// Takes the longest run of bytes matching `f` (possibly empty).
    #[inline]
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let n = self.rest.iter().position(|&b| !f(b)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at_checked(n).unwrap_or((self.rest, &[]));
        self.rest = rest;
        taken
    }

    /// Takes the longest run of `token` characters (possibly empty).
    #[inline]
    fn take_token(&mut self) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at_checked(token_len(self.rest)).unwrap_or((self.rest, &[]));
        self.rest = rest;
        taken
    }

    /// Skips LWS; returns whether there was any.
    #[inline]
    fn skip_lws(&mut self) -> bool {
        let before = self.rest.len();
        while let [b, rest @ ..] = self.rest {
            if !is_lws(*b) {
                break;
            }
            self.rest = rest;
        }
        self.rest.len() != before
    }

    /// What was consumed since `mark`, an earlier `rest`.
    fn since(&self, mark: &'a [u8]) -> &'a [u8] {
        mark.get(..mark.len().saturating_sub(self.rest.len())).unwrap_or_default()
    }
}

/// The `branch` of the first via-parm of a Via header value.
///
/// `via-parm = sent-protocol LWS sent-by *( SEMI via-params )`, with SWS allowed around `/`, `:`,
/// `;` and `=`. Parsing stops at the `,` that starts the next via-parm.
fn topmost_branch(value: &[u8]) -> Result<&[u8], ParseError> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    // sent-protocol: name / version / transport.
    for part in 0..3 {
        if part > 0 {
            c.skip_lws();
            if !c.eat(b'/') {
                return Err(ParseError::BadHeader);
            }
            c.skip_lws();
        }
        if c.take_token().is_empty() {
            return Err(ParseError::BadHeader);
        }
    }
    if !c.skip_lws() {
        return Err(ParseError::BadHeader);
    }
    // sent-by: host [ ":" port ].
    if c.peek() == Some(b'[') {
        ipv6_reference(&mut c)?;
    } else if c.take_token().is_empty() {
        return Err(ParseError::BadHeader);
    }
    c.skip_lws();
    if c.eat(b':') {
        c.skip_lws();
        if c.take_while(|b| b.is_ascii_digit()).is_empty() {
            return Err(ParseError::BadHeader);
        }
    }
    // via-params.
    let mut branch: Option<Option<&[u8]>> = None;
    loop {
        c.skip_lws();
        match c.peek() {
            None | Some(b',') => break,
            Some(b';') => {
                c.eat(b';');
                c.skip_lws();
                let name = c.take_token();
                if name.is_empty() {
                    return Err(ParseError::BadHeader);
                }
                c.skip_lws();
                let value = if c.eat(b'=') {
                    c.skip_lws();
                    Some(param_value(&mut c)?)
                } else {
                    None
                };
                if branch.is_none() && name.eq_ignore_ascii_case(b"branch") {
                    // The branch is a token: not a quoted string, not an IPv6 reference.
                    if value.is_some_and(|v| matches!(v.first(), Some(b'"' | b'['))) {
                        return Err(ParseError::BadHeader);
                    }
                    branch = Some(value);
                }
            }
            Some(_) => return Err(ParseError::BadHeader),
        }
    }
    branch.flatten().ok_or(ParseError::MissingBranch)
}

/// `"[" IPv6address "]"`, loosely: hex digits, `:` and `.` between brackets.
fn ipv6_reference<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], ParseError> {
    let mark = c.rest;
    if !c.eat(b'[') {
        return Err(ParseError::BadHeader);
    }
    let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if inner.is_empty() || !c.eat(b']') {
        return Err(ParseError::BadHeader);
    }
    Ok(c.since(mark))
}

/// `gen-value = token / host / quoted-string` (a token covers hostnames and IPv4 literals).
fn param_value<'a>(c: &mut Cursor<'a>) -> Result<&'a [u8], ParseError> {
    match c.peek() {
        Some(b'[') => ipv6_reference(c),
        Some(b'"') => {
            let mark = c.rest;
            c.bump();
            loop {
                match c.peek() {
                    None => return Err(ParseError::BadHeader),
                    Some(b'"') => {
                        c.bump();
                        break;
                    }
                    // quoted-pair: the escaped byte is taken whatever it is.
                    Some(b'\\') => {
                        c.bump();
                        if c.at_end() {
                            return Err(ParseError::BadHeader);
                        }
                        c.bump();
                    }
                    Some(_) => c.bump(),
                }
            }
            Ok(c.since(mark))
        }
        _ => {
            let token = c.take_token();
            if token.is_empty() {
                Err(ParseError::BadHeader)
            } else {
                Ok(token)
            }
        }
    }
}

/// The Call-ID value, trimmed: one non-empty run of visible characters.
fn call_id(value: &[u8]) -> Result<&[u8], ParseError> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let id = c.take_while(|b| b > b' ' && b != 0x7f);
    c.skip_lws();
    if id.is_empty() || !c.at_end() {
        return Err(ParseError::BadHeader);
    }
    Ok(id)
}

/// `CSeq = 1*DIGIT LWS Method`.
fn cseq(value: &[u8]) -> Result<(u32, &[u8]), ParseError> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let number = parse_u32(c.take_while(|b| b.is_ascii_digit())).ok_or(ParseError::BadCSeq)?;
    if !c.skip_lws() {
        return Err(ParseError::BadCSeq);
    }
    let method = c.take_token();
    c.skip_lws();
    if method.is_empty() || !c.at_end() {
        return Err(ParseError::BadCSeq);
    }
    Ok((number, method))
}

/// `Retry-After = delta-seconds [ comment ] *( SEMI retry-param )`: the seconds, or `None` when the
/// value does not start with them.
fn retry_after(value: &[u8]) -> Option<u32> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    if digits.is_empty() {
        return None;
    }
    match c.peek() {
        None | Some(b'(' | b';') => {}
        Some(b) if is_lws(b) => {}
        Some(_) => return None,
    }
    Some(digits.iter().fold(0u32, |n, &b| n.saturating_mul(10).saturating_add(u32::from(b.saturating_sub(b'0')))))
}

/// The Content-Length: digits, at most [`MAX_MESSAGE`].
fn content_length(value: &[u8]) -> Result<usize, ParseError> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    let digits = c.take_while(|b| b.is_ascii_digit());
    c.skip_lws();
    if digits.is_empty() || !c.at_end() {
        return Err(ParseError::BadContentLength);
    }
    digits
        .iter()
        .try_fold(0usize, |n, &b| {
            let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
            n.checked_mul(10)?.checked_add(usize::from(d)).filter(|n| *n <= MAX_MESSAGE)
        })
        .ok_or(ParseError::BadContentLength)
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    extern crate std;

    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::string::ToString;

    #[test]
    fn decimal_formats_the_whole_range() {
        for n in [0, 1, 9, 10, 99, 100, 65535, 1_000_000, u32::MAX] {
            let mut d = Stack::<10>::new();
            d.push_decimal(n);
            assert_eq!(d.as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn host_port_matches_display() {
        let v4: [SocketAddr; 3] = [
            SocketAddrV4::new(Ipv4Addr::new(0, 0, 0, 0), 0).into(),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 255), 5060).into(),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 65535).into(),
        ];
        for a in v4 {
            assert_eq!(host_port(&a).as_bytes(), a.to_string().as_bytes());
        }
        let v6 = [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            "::ffff:255.255.255.255".parse().unwrap(),
            "fe80::1:2:3:4".parse().unwrap(),
        ];
        for ip in v6 {
            let a = SocketAddr::V6(SocketAddrV6::new(ip, 65535, 0, 0));
            assert_eq!(host_port(&a).as_bytes(), a.to_string().as_bytes());
        }
        // The scope id is not part of a SIP host.
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 5060, 7, 3));
        assert_eq!(host_port(&scoped).as_bytes(), b"[::1]:5060");
    }

    #[test]
    fn hex_groups() {
        for n in [0u16, 1, 0xf, 0x10, 0xabc, 0x1000, 0xffff] {
            let mut h = Stack::<4>::new();
            h.push_hex(n);
            assert_eq!(h.as_bytes(), std::format!("{n:x}").as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn host_port_matches_display_for_any_ipv6(
            groups in proptest::array::uniform8(proptest::prop_oneof![
                proptest::strategy::Just(0u16),
                proptest::strategy::Just(0xffffu16),
                proptest::prelude::any::<u16>()
            ]),
            port: u16,
        ) {
            let a = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(groups), port, 0, 0));
            let (got, want) = (host_port(&a), a.to_string());
            proptest::prop_assert_eq!(got.as_bytes(), want.as_bytes());
        }

        #[test]
        fn host_port_matches_display_for_any_ipv4(octets: [u8; 4], port: u16) {
            let a = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(octets), port));
            let (got, want) = (host_port(&a), a.to_string());
            proptest::prop_assert_eq!(got.as_bytes(), want.as_bytes());
        }
    }

    #[test]
    fn uri_host_bracketing() {
        let mut req = OptionsRequest {
            uri_host: "2001:db8::5",
            uri_port: None,
            local: "10.0.0.1:5060".parse().unwrap(),
            user: "u",
            branch: b"b",
            call_id: b"c",
            from_tag: b"t",
            cseq: 1,
            user_agent: "ua",
            transport: Transport::Udp,
        };
        let mut buf = [0u8; 512];
        let n = encode_options(&req, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"OPTIONS sip:[2001:db8::5] SIP/2.0\r\n"));
        req.uri_host = "[2001:db8::5]";
        let n = encode_options(&req, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"OPTIONS sip:[2001:db8::5] SIP/2.0\r\n"));
        req.uri_host = "pbx.example";
        req.uri_port = Some(0);
        let n = encode_options(&req, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"OPTIONS sip:pbx.example:0 SIP/2.0\r\n"));
        assert_eq!(encoded_len(&req), n);
    }

    #[test]
    fn token_mask_matches_the_grammar() {
        for b in 0..=255u8 {
            let grammar = b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
            assert_eq!(is_token(b), grammar, "{b:#x}");
        }
    }

    #[test]
    fn token_runs() {
        let s = b"Call-ID.x!%*_+`'~9:rest";
        for len in 0..=s.len() {
            let want = s[..len].iter().position(|&b| !is_token(b)).unwrap_or(len);
            assert_eq!(token_len(&s[..len]), want, "len {len}");
        }
        for stop in [0u8, b' ', b':', b'\r', b'\n', 0x80, 0xff, b'"', b'/'] {
            for at in 0..20 {
                let mut v = [b'a'; 20];
                v[at] = stop;
                assert_eq!(token_len(&v), at);
            }
        }
    }

    #[test]
    fn finds_the_first_lf() {
        let mut s = [b'a'; 40];
        assert_eq!(find_lf(&s), None);
        assert_eq!(find_lf(b""), None);
        for first in 0..s.len() {
            s = [b'a'; 40];
            s[first] = b'\n';
            if first + 3 < s.len() {
                s[first + 3] = b'\n';
            }
            // Bytes that fool a sloppy zero-byte test: 0x0b right after, 0x8a and 0x0a ^ 0x80.
            if first > 0 {
                s[first - 1] = 0x8a;
            }
            for len in 0..=s.len() {
                let want = s[..len].iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(&s[..len]), want, "lf at {first}, len {len}");
            }
        }
        let tricky = [0x0b, 0x8a, 0x0b, 0x0a, 0x0b, 0x0a, 0, 0, 0x0a];
        assert_eq!(find_lf(&tricky), Some(3));
    }

    #[test]
    fn u32_digits() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"0004294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"1a"), None);
    }

    #[test]
    fn via_branches() {
        let ok: [(&[u8], &[u8]); 8] = [
            (b"SIP/2.0/UDP h;branch=z9hG4bKa", b"z9hG4bKa"),
            (b" SIP / 2.0 / UDP  h : 5060 ; BRANCH = z9hG4bKb ", b"z9hG4bKb"),
            (b"SIP/2.0/UDP [2001:db8::1]:5060;rport;branch=x", b"x"),
            (b"SIP/2.0/UDP h;received=[::1];rport=9;branch=y", b"y"),
            (b"SIP/2.0/UDP h;x=\"a;b,\\\"c\";branch=q,SIP/2.0/UDP g", b"q"),
            (b"SIP/2.0/UDP h\r\n ;branch=f", b"f"),
            (b"SIP/2.0/UDP h;branch=1;branch=2", b"1"),
            (b"SIP/2.0/TLS h:1;branch=Mixed.Case-~", b"Mixed.Case-~"),
        ];
        for (value, branch) in ok {
            assert_eq!(topmost_branch(value), Ok(branch), "{value:?}");
        }
        let missing: [&[u8]; 4] = [
            b"SIP/2.0/UDP h",
            b"SIP/2.0/UDP h;rport",
            b"SIP/2.0/UDP h;branch",
            b"SIP/2.0/UDP h, SIP/2.0/UDP g;branch=z",
        ];
        for value in missing {
            assert_eq!(topmost_branch(value), Err(ParseError::MissingBranch));
        }
        let bad: [&[u8]; 10] = [
            b"",
            b"SIP/2.0 h;branch=a",
            b"SIP/2.0/UDPh;branch=a",
            b"SIP/2.0/UDP ;branch=a",
            b"SIP/2.0/UDP [::1;branch=a",
            b"SIP/2.0/UDP h:;branch=a",
            b"SIP/2.0/UDP h;branch=\"q\"",
            b"SIP/2.0/UDP h;=a",
            b"SIP/2.0/UDP h;x=\"open",
            b"SIP/2.0/UDP h junk;branch=a",
        ];
        for value in bad {
            assert_eq!(topmost_branch(value), Err(ParseError::BadHeader), "{value:?}");
        }
    }

    #[test]
    fn cseq_values() {
        assert_eq!(cseq(b" 1 OPTIONS"), Ok((1, &b"OPTIONS"[..])));
        assert_eq!(cseq(b"\r\n 42\r\n\tINVITE \t"), Ok((42, &b"INVITE"[..])));
        assert_eq!(cseq(b"4294967295 X"), Ok((u32::MAX, &b"X"[..])));
        for bad in [&b"4294967296 OPTIONS"[..], b"1OPTIONS", b"1", b"OPTIONS", b"-1 OPTIONS", b"1 OPTIONS extra", b""] {
            assert_eq!(cseq(bad), Err(ParseError::BadCSeq), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after(b" 18000 (maintenance);duration=3600"), Some(18000));
        assert_eq!(retry_after(b"120"), Some(120));
        assert_eq!(retry_after(b"120;duration=1"), Some(120));
        assert_eq!(retry_after(b"99999999999999"), Some(u32::MAX));
        assert_eq!(retry_after(b"soon"), None);
        assert_eq!(retry_after(b"12x"), None);
        assert_eq!(retry_after(b""), None);
    }

    #[test]
    fn content_lengths() {
        assert_eq!(content_length(b" 0 "), Ok(0));
        assert_eq!(content_length(b"8192"), Ok(MAX_MESSAGE));
        assert_eq!(content_length(b"8193"), Err(ParseError::BadContentLength));
        assert_eq!(content_length(b"99999999999999999999999999"), Err(ParseError::BadContentLength));
        assert_eq!(content_length(b""), Err(ParseError::BadContentLength));
        assert_eq!(content_length(b"1 2"), Err(ParseError::BadContentLength));
        assert_eq!(content_length(b"+1"), Err(ParseError::BadContentLength));
    }

    #[test]
    fn status_lines() {
        let (s, r, rest) = status_line(b"SIP/2.0 200 OK\r\nX").unwrap();
        assert_eq!((s, r, rest), (200, &b"OK"[..], &b"X"[..]));
        let (s, r, _) = status_line(b"sip/2.0 699 \n").unwrap();
        assert_eq!((s, r), (699, &b""[..]));
        let (s, r, _) = status_line(b"SIP/2.0 100\r\n").unwrap();
        assert_eq!((s, r), (100, &b""[..]));
        assert_eq!(status_line(b""), Err(ParseError::Truncated));
        assert_eq!(status_line(b"sip/"), Err(ParseError::Truncated));
        assert_eq!(status_line(b"SIP/2.0 200 OK"), Err(ParseError::Truncated));
        assert_eq!(status_line(b"SIP/3"), Err(ParseError::NotAResponse));
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\n"), Err(ParseError::NotAResponse));
        for bad in [
            &b"SIP/2.0 099 Low\r\n"[..],
            b"SIP/2.0 700 High\r\n",
            b"SIP/2.0 2000 OK\r\n",
            b"SIP/2.0  200 OK\r\n",
            b"SIP/2.0 20 OK\r\n",
            b"SIP/2.0\r\n",
            b"SIP/2.00 200 OK\r\n",
            b"SIP/2.0 200 O\0K\r\n",
            b"SIP/2.0 200 O\rK\r\n",
        ] {
            assert_eq!(status_line(bad), Err(ParseError::BadStatusLine), "{bad:?}");
        }
    }

    #[test]
    fn encode_then_parse() {
        let req = OptionsRequest {
            uri_host: "pbx.example",
            uri_port: Some(5060),
            local: "[2001:db8::7]:5062".parse().unwrap(),
            user: "probe",
            branch: b"abc123",
            call_id: b"cid@x",
            from_tag: b"t1",
            cseq: 7,
            user_agent: "phone/1",
            transport: Transport::Udp,
        };
        let mut buf = [0u8; 600];
        let n = encode_options(&req, &mut buf).unwrap();
        assert_eq!(n, encoded_len(&req));
        let text = &buf[..n];
        let eol = text.iter().position(|&b| b == b'\n').unwrap();
        let mut response = std::vec::Vec::from(&b"SIP/2.0 200 OK\r\n"[..]);
        response.extend_from_slice(&text[eol + 1..]);
        let r = parse_response(&response).unwrap();
        assert_eq!(r.branch, b"z9hG4bKabc123");
        assert_eq!(r.call_id, b"cid@x");
        assert_eq!((r.cseq, r.cseq_method), (7, &b"OPTIONS"[..]));
        assert_eq!(r.body, b"");
    }

    #[test]
    fn the_transport_shows_in_the_via_the_request_uri_and_the_contact() {
        let mut buf = [0u8; 600];
        for (transport, line, via, to, contact) in [
            (
                Transport::Udp,
                "OPTIONS sip:pbx.example:5060 SIP/2.0",
                "SIP/2.0/UDP ",
                "<sip:pbx.example:5060>",
                "@10.0.0.1:5062>",
            ),
            (
                Transport::Tcp,
                "OPTIONS sip:pbx.example:5060;transport=tcp SIP/2.0",
                "SIP/2.0/TCP ",
                "<sip:pbx.example:5060;transport=tcp>",
                "@10.0.0.1:5062;transport=tcp>",
            ),
            (
                Transport::Tls,
                "OPTIONS sips:pbx.example:5060 SIP/2.0",
                "SIP/2.0/TLS ",
                "<sips:pbx.example:5060>",
                "@10.0.0.1:5062;transport=tls>",
            ),
        ] {
            let req = OptionsRequest {
                uri_host: "pbx.example",
                uri_port: Some(5060),
                local: "10.0.0.1:5062".parse().unwrap(),
                user: "probe",
                branch: b"abc123",
                call_id: b"cid",
                from_tag: b"t1",
                cseq: 7,
                user_agent: "phone/1",
                transport,
            };
            let n = encode_options(&req, &mut buf).unwrap();
            assert_eq!(n, encoded_len(&req));
            let text = core::str::from_utf8(&buf[..n]).unwrap();
            assert!(text.starts_with(&std::format!("{line}\r\nVia: {via}10.0.0.1:5062;")), "{text}");
            assert!(text.contains(&std::format!("\r\nTo: {to}\r\n")), "{text}");
            assert!(text.contains(&std::format!("\r\nContact: <sip:probe{contact}\r\n")), "{text}");
        }
    }
}
