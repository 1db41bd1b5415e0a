//! The wire: an OPTIONS encoder that writes into the caller's buffer, and a zero-copy response parser.
//!
//! (Interface fixed; implementation in progress.)

use core::fmt;
use core::net::SocketAddr;

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

/// The exact length of `req` once encoded.
pub fn encoded_len(req: &OptionsRequest<'_>) -> usize {
    let _ = req;
    0
}

/// Writes `req` into `buf` and returns the number of bytes written. When `buf` is too small, returns
/// the size needed and leaves `buf` untouched.
pub fn encode_options(req: &OptionsRequest<'_>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let _ = (req, buf);
    Err(BufferTooSmall { needed: 0 })
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

/// Parses one datagram as a SIP response, borrowing from it.
pub fn parse_response(bytes: &[u8]) -> Result<Response<'_>, ParseError> {
    let _ = bytes;
    Err(ParseError::NotAResponse)
}
