//! The stream framing of SIP over TCP and TLS (`core::flow::frame`) on arbitrary bytes: the first two
//! bytes (little-endian) choose where the stream is cut in two, the rest is the stream.
//!
//! - no panic;
//! - a unit is at least 2 bytes, at most the buffer and at most `MAX_MESSAGE`;
//! - a buffer of `MAX_MESSAGE` bytes or more always gets an answer (a unit or an error), so a caller's
//!   buffer of that size never fills up undecided;
//! - a unit's own bytes, framed again, give the same unit; the same bytes give the same answer;
//! - read in two chunks (consuming each unit as it completes, as a caller does), the stream gives the
//!   same units and ends the same way (waiting for the same number of bytes, or the same error) as
//!   read at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::core::wire::MAX_MESSAGE;
use sip_failover::core::{frame, Frame, FrameError};

/// How a caller's reading ends: bytes left waiting for more, or the error that closed the flow.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Waiting(Vec<u8>),
    Error(FrameError),
}

/// Consumes every whole unit at the start of `buf` into `units`; `Some(error)` if the stream broke.
fn consume(buf: &mut Vec<u8>, units: &mut Vec<Frame>) -> Option<FrameError> {
    // Each round removes at least two bytes (checked), so this ends.
    loop {
        match frame(buf) {
            Ok(None) => return None,
            Ok(Some(f)) => {
                check_unit(buf, f);
                units.push(f);
                buf.drain(..f.len());
            }
            Err(e) => {
                let _ = e.to_string();
                return Some(e);
            }
        }
    }
}

fn check_unit(buf: &[u8], f: Frame) {
    let n = f.len();
    assert!(n >= 2 && !f.is_empty(), "{f:?}");
    assert!(n <= buf.len() && n <= MAX_MESSAGE, "{f:?} from {} bytes", buf.len());
    assert_eq!(frame(&buf[..n]), Ok(Some(f)), "the unit's own bytes frame differently");
    if let Frame::Pong(_) = f {
        assert_eq!(&buf[..n], b"\r\n");
    }
}

fn read(chunks: &[&[u8]]) -> (Vec<Frame>, End) {
    let mut buf = Vec::new();
    let mut units = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        if let Some(e) = consume(&mut buf, &mut units) {
            return (units, End::Error(e));
        }
    }
    (units, End::Waiting(buf))
}

fuzz_target!(|data: &[u8]| {
    let (cut, stream) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let first = frame(stream);
    assert_eq!(frame(stream), first, "the same bytes framed differently");
    if stream.len() >= MAX_MESSAGE {
        assert_ne!(first, Ok(None), "{} bytes and still no answer", stream.len());
    }
    if let Ok(Some(f)) = first {
        check_unit(stream, f);
    }
    let at_once = read(&[stream]);
    let (a, b) = stream.split_at(cut % (stream.len() + 1));
    assert_eq!(read(&[a, b]), at_once, "cut at {}", a.len());
});
