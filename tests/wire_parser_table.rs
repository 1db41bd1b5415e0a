//! Table-driven tests of the wire codec: odd-but-legal responses, hostile datagrams, the encoder's exact
//! output, and a round trip.

use proptest::prelude::*;
use sip_failover::core::wire::*;
use sip_failover::core::Transport;

/// What a legal response must parse to.
#[derive(Debug, Clone, Copy)]
struct Expect {
    status: u16,
    reason: &'static [u8],
    branch: &'static [u8],
    call_id: &'static [u8],
    cseq: u32,
    method: &'static [u8],
    retry_after: Option<u32>,
    body: &'static [u8],
}

const BASE: Expect = Expect {
    status: 200,
    reason: b"OK",
    branch: b"z9hG4bKabc123",
    call_id: b"cid-1@192.0.2.10",
    cseq: 7,
    method: b"OPTIONS",
    retry_after: None,
    body: b"",
};

/// A plain, well-formed 200 with an empty body.
const PLAIN: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport=5062;received=192.0.2.10\r\n\
From: <sip:probe@192.0.2.10:5062>;tag=ft1\r\n\
To: <sip:pbx.example>;tag=tt9\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\
\r\n";

fn legal() -> Vec<(&'static str, &'static [u8], Expect)> {
    vec![
        ("plain", PLAIN, BASE),
        (
            "compact headers, with ignored compact m and c",
            b"SIP/2.0 200 OK\r\n\
v: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123\r\n\
f: <sip:probe@192.0.2.10>;tag=1\r\n\
t: <sip:pbx.example>;tag=2\r\n\
i: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
m: <sip:pbx@192.0.2.1>\r\n\
c: application/sdp\r\n\
l: 0\r\n\
\r\n",
            BASE,
        ),
        (
            "folded Via before a parameter",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060\r\n ;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "Via folded everywhere LWS may be",
            b"SIP/2.0 200 OK\r\n\
Via:\r\n SIP\r\n /\r\n\t2.0/\r\n UDP\r\n 10.0.0.1\r\n :\r\n 5060\r\n ;\r\n branch\r\n =\r\n z9hG4bKabc123\r\n ;rport\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "folded Call-ID",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID:\r\n\tcid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "folded CSeq, twice",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq:\r\n 7\r\n\t OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "tabs and spaces around : ; = / and after values",
            b"SIP/2.0 200 OK\r\n\
Via \t:\t SIP / 2.0 / UDP  10.0.0.1 : 5060 \t; rport ;\tbranch \t= \tz9hG4bKabc123 \t\r\n\
Call-ID\t:  cid-1@192.0.2.10 \t\r\n\
CSeq :\t7\t\tOPTIONS \r\n\
Content-Length\t: \t0\t\r\n\
\r\n",
            BASE,
        ),
        (
            "mixed-case names, version and param",
            b"sip/2.0 200 OK\r\n\
vIA: SIP/2.0/UDP 10.0.0.1;BrAnCh=z9hG4bKabc123\r\n\
cALL-iD: cid-1@192.0.2.10\r\n\
cseq: 7 OPTIONS\r\n\
CONTENT-LENGTH: 0\r\n\
\r\n",
            BASE,
        ),
        (
            "IPv6 Via host with received and rport",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP [2001:db8::1]:5060;received=[2001:db8::99];rport=5062;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "LF-only line ends",
            b"SIP/2.0 200 OK\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\n\
Call-ID: cid-1@192.0.2.10\n\
CSeq: 7 OPTIONS\n\
Content-Length: 2\n\
\n\
ok",
            Expect { body: b"ok", ..BASE },
        ),
        (
            "LF-only with a folded Via",
            b"SIP/2.0 200 OK\n\
Via: SIP/2.0/UDP 10.0.0.1\n\t;branch=z9hG4bKabc123\n\
Call-ID: cid-1@192.0.2.10\n\
CSeq: 7 OPTIONS\n\
\n",
            BASE,
        ),
        (
            "CRLF and LF mixed",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\n\
\r\n",
            BASE,
        ),
        (
            "non-UTF-8 and NUL bytes in ignored headers",
            b"SIP/2.0 200 OK\r\n\
Server: caf\xe9 \xff\xfe\x80\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
X-Junk: \xc3\x28 a\0b\r\n\
Subject:\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "non-UTF-8 reason phrase",
            b"SIP/2.0 200 \xe9t\xe9\tfine \xff\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                reason: b"\xe9t\xe9\tfine \xff",
                ..BASE
            },
        ),
        (
            "several Vias in one header: the first counts",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123 , SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond,SIP/2.0/TCP x\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "two Via headers: the first counts",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKsecond\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            BASE,
        ),
        (
            "Via params with quoted string, maddr, ttl, and branch case preserved",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP pbx.example;maddr=224.0.1.75;ttl=16;x=\"a;b,\\\"c\\\"\";branch=z9hG4bK.AbC-x~1\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                branch: b"z9hG4bK.AbC-x~1",
                ..BASE
            },
        ),
        (
            "Content-Length with body",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 14\r\n\
\r\n\
v=0\r\no=- 1 1\r\n",
            Expect {
                body: b"v=0\r\no=- 1 1\r\n",
                ..BASE
            },
        ),
        (
            "bytes beyond Content-Length are discarded",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
l: 3\r\n\
\r\n\
abcdef",
            Expect { body: b"abc", ..BASE },
        ),
        (
            "l: 0 with trailing bytes",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
l: 0\r\n\
\r\n\
\r\n",
            BASE,
        ),
        (
            "no Content-Length: the body is the rest of the datagram",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n\
rest\r\nof it",
            Expect {
                body: b"rest\r\nof it",
                ..BASE
            },
        ),
        (
            "two Content-Length headers that agree",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 1\r\n\
l: 01\r\n\
\r\n\
xy",
            Expect { body: b"x", ..BASE },
        ),
        (
            "503 with Retry-After comment and params",
            b"SIP/2.0 503 Service Unavailable\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
Retry-After: 18000 (maintenance);duration=3600\r\n\
Content-Length: 0\r\n\
\r\n",
            Expect {
                status: 503,
                reason: b"Service Unavailable",
                retry_after: Some(18000),
                ..BASE
            },
        ),
        (
            "folded, spaced Retry-After; a second one ignored",
            b"SIP/2.0 503 Busy\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
RETRY-AFTER :\r\n\t120 ; duration = 60\r\n\
Retry-After: 5\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                status: 503,
                reason: b"Busy",
                retry_after: Some(120),
                ..BASE
            },
        ),
        (
            "malformed Retry-After is ignored",
            b"SIP/2.0 503 Busy\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Retry-After: tomorrow\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                status: 503,
                reason: b"Busy",
                retry_after: None,
                ..BASE
            },
        ),
        (
            "100 Trying with empty reason after the space",
            b"SIP/2.0 100 \r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                status: 100,
                reason: b"",
                ..BASE
            },
        ),
        (
            "699 with no reason and no space",
            b"SIP/2.0 699\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
\r\n",
            Expect {
                status: 699,
                reason: b"",
                ..BASE
            },
        ),
        (
            "duplicate Call-ID and CSeq: the first ones count",
            b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
i: other@elsewhere\r\n\
CSeq: not even valid\r\n\
\r\n",
            BASE,
        ),
        (
            "headers in any order, CSeq of another method, large CSeq",
            b"SIP/2.0 486 Busy Here\r\n\
CSeq: 4294967295 INVITE\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
Via: SIP/2.0/TLS [::1];branch=z9hG4bKabc123\r\n\
\r\n",
            Expect {
                status: 486,
                reason: b"Busy Here",
                cseq: u32::MAX,
                method: b"INVITE",
                ..BASE
            },
        ),
        (
            "no headers besides the required ones, no blank line body",
            b"SIP/2.0 404 Not Found\r\nv:SIP/2.0/UDP h;branch=z9hG4bKabc123\r\ni:cid-1@192.0.2.10\r\nCSeq:7 OPTIONS\r\n\r\n",
            Expect {
                status: 404,
                reason: b"Not Found",
                ..BASE
            },
        ),
    ]
}

#[test]
fn legal_forms_parse_exactly() {
    let table = legal();
    assert!(table.len() >= 20);
    for (name, msg, want) in table {
        let got = parse_response(msg).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got.status, want.status, "{name}: status");
        assert_eq!(got.reason, want.reason, "{name}: reason");
        assert_eq!(got.branch, want.branch, "{name}: branch");
        assert_eq!(got.call_id, want.call_id, "{name}: call_id");
        assert_eq!(got.cseq, want.cseq, "{name}: cseq");
        assert_eq!(got.cseq_method, want.method, "{name}: method");
        assert_eq!(got.retry_after, want.retry_after, "{name}: retry_after");
        assert_eq!(got.body, want.body, "{name}: body");
    }
}

#[test]
fn largest_message_is_accepted() {
    // Without Content-Length the body is the rest of the datagram: fill it up to the maximum.
    let head = std::str::from_utf8(PLAIN).unwrap().replace("Content-Length: 0\r\n", "");
    let mut msg = head.clone().into_bytes();
    msg.resize(MAX_MESSAGE, b'x');
    let r = parse_response(&msg).unwrap();
    assert_eq!(r.body.len(), MAX_MESSAGE - head.len());
    msg.push(b'x');
    assert_eq!(parse_response(&msg), Err(ParseError::TooLarge));
}

fn hostile() -> Vec<(&'static str, Vec<u8>, ParseError)> {
    use ParseError::*;
    let plain = |from: &str, to: &str| -> Vec<u8> {
        let s = std::str::from_utf8(PLAIN).unwrap();
        assert!(s.contains(from), "{from}");
        s.replacen(from, to, 1).into_bytes()
    };
    vec![
        ("empty", Vec::new(), Truncated),
        (
            "oversized",
            {
                let mut m = PLAIN.to_vec();
                m.resize(MAX_MESSAGE + 1, b' ');
                m
            },
            TooLarge,
        ),
        ("far oversized", vec![0; 65_536], TooLarge),
        ("request line", plain("SIP/2.0 200 OK", "OPTIONS sip:pbx.example SIP/2.0"), NotAResponse),
        ("HTTP response", plain("SIP/2.0", "HTTP/1.1"), NotAResponse),
        ("SIP/3.0", plain("SIP/2.0 200", "SIP/3.0 200"), NotAResponse),
        ("keep-alive CRLFs", b"\r\n\r\n".to_vec(), NotAResponse),
        ("all NULs", vec![0; 64], NotAResponse),
        ("garbage text", b"hello, world\r\n\r\n".to_vec(), NotAResponse),
        ("status 99999", plain("SIP/2.0 200 OK", "SIP/2.0 99999 OK"), BadStatusLine),
        ("status 099", plain("SIP/2.0 200 OK", "SIP/2.0 099 OK"), BadStatusLine),
        ("status 700", plain("SIP/2.0 200 OK", "SIP/2.0 700 OK"), BadStatusLine),
        ("status not digits", plain("SIP/2.0 200 OK", "SIP/2.0 2x0 OK"), BadStatusLine),
        ("tab instead of space", plain("SIP/2.0 200 OK", "SIP/2.0\t200 OK"), BadStatusLine),
        ("NUL in reason", plain("200 OK", "200 O\0K"), BadStatusLine),
        ("NUL in header name", plain("Call-ID", "Call\0ID"), BadHeader),
        ("bare CR in header name", plain("Call-ID", "Call\rID"), BadHeader),
        ("space inside header name", plain("Call-ID", "Call ID"), BadHeader),
        ("header line without colon", plain("To: <sip:pbx.example>;tag=tt9", "To <sip:pbx.example>"), BadHeader),
        ("empty header name", plain("To:", ":"), BadHeader),
        ("folded first header line", plain("Via:", " Via:"), BadHeader),
        ("topmost Via garbage", plain("SIP/2.0/UDP 192.0.2.10:5062", "garbage"), BadHeader),
        ("empty Call-ID", plain("Call-ID: cid-1@192.0.2.10", "Call-ID: \t"), BadHeader),
        ("Call-ID with inner space", plain("cid-1@192.0.2.10", "cid 1@192.0.2.10"), BadHeader),
        ("no blank line", PLAIN[..PLAIN.len() - 2].to_vec(), Truncated),
        (
            "missing Via",
            plain("Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc123;rport=5062;received=192.0.2.10\r\n", ""),
            MissingVia,
        ),
        ("missing branch", plain("branch=z9hG4bKabc123;", ""), MissingBranch),
        ("branch without value", plain("branch=z9hG4bKabc123", "branch"), MissingBranch),
        (
            "branch only in the second Via",
            {
                let m = String::from_utf8(plain("branch=z9hG4bKabc123;", "")).unwrap();
                m.replacen("From:", "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKlater\r\nFrom:", 1).into_bytes()
            },
            MissingBranch,
        ),
        ("missing Call-ID", plain("Call-ID: cid-1@192.0.2.10\r\n", ""), MissingCallId),
        ("missing CSeq", plain("CSeq: 7 OPTIONS\r\n", ""), MissingCSeq),
        ("CSeq overflow", plain("CSeq: 7", "CSeq: 4294967296"), BadCSeq),
        ("CSeq not digits", plain("CSeq: 7", "CSeq: seven"), BadCSeq),
        ("CSeq without method", plain("CSeq: 7 OPTIONS", "CSeq: 7"), BadCSeq),
        ("CSeq glued", plain("CSeq: 7 OPTIONS", "CSeq: 7OPTIONS"), BadCSeq),
        ("huge l", plain("Content-Length: 0", "l: 99999999999999999999"), BadContentLength),
        ("Content-Length beyond the maximum", plain("Content-Length: 0", "Content-Length: 8193"), BadContentLength),
        ("Content-Length not digits", plain("Content-Length: 0", "Content-Length: zero"), BadContentLength),
        ("Content-Length empty", plain("Content-Length: 0", "Content-Length:"), BadContentLength),
        ("Content-Length negative", plain("Content-Length: 0", "Content-Length: -1"), BadContentLength),
        ("Content-Lengths disagree", plain("Content-Length: 0", "Content-Length: 0\r\nl: 1"), BadContentLength),
        (
            "Content-Length larger than remaining",
            {
                let mut m = plain("Content-Length: 0", "Content-Length: 10");
                m.extend_from_slice(b"123456789");
                m
            },
            Truncated,
        ),
    ]
}

#[test]
fn hostile_datagrams_are_rejected_precisely() {
    let table = hostile();
    assert!(table.len() >= 15);
    for (name, msg, want) in table {
        assert_eq!(parse_response(&msg), Err(want), "{name}");
    }
}

#[test]
fn every_truncation_is_reported() {
    let msg: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060\r\n ;branch=z9hG4bKabc123\r\n\
Call-ID: cid-1@192.0.2.10\r\n\
CSeq: 7 OPTIONS\r\n\
Retry-After: 30\r\n\
Content-Length: 4\r\n\
\r\n\
body";
    assert!(parse_response(msg).is_ok());
    for len in 0..msg.len() {
        assert_eq!(
            parse_response(&msg[..len]),
            Err(ParseError::Truncated),
            "cut at {len}: {:?}",
            String::from_utf8_lossy(&msg[..len])
        );
    }
    let lf_only: Vec<u8> = msg.iter().copied().filter(|&b| b != b'\r').collect();
    assert!(parse_response(&lf_only).is_ok());
    for len in 0..lf_only.len() {
        assert_eq!(parse_response(&lf_only[..len]), Err(ParseError::Truncated), "LF cut at {len}");
    }
}

#[test]
fn random_garbage_is_not_a_response() {
    // A fixed xorshift stream: reproducible garbage.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..2_000 {
        let len = (round % 300) + 1;
        let mut msg = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            msg.push(x as u8);
        }
        if msg[0] == b'S' || msg[0] == b's' {
            msg[0] = b'#';
        }
        assert_eq!(parse_response(&msg), Err(ParseError::NotAResponse), "round {round}");
    }
}

fn sample_request(local: &str, uri_host: &'static str, uri_port: Option<u16>) -> OptionsRequest<'static> {
    OptionsRequest {
        uri_host,
        uri_port,
        local: local.parse().unwrap(),
        user: "probe",
        branch: b"4f2a9c",
        call_id: b"8d1e6b@phone",
        from_tag: b"77ab",
        cseq: 4711,
        user_agent: "DeskPhone/3.1",
        transport: Transport::Udp,
    }
}

#[test]
fn encodes_ipv4_byte_for_byte() {
    let req = sample_request("192.168.1.20:5062", "pbx.example.com", Some(5060));
    let want: &[u8] = b"OPTIONS sip:pbx.example.com:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK4f2a9c;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@192.168.1.20:5062>;tag=77ab\r\n\
To: <sip:pbx.example.com:5060>\r\n\
Call-ID: 8d1e6b@phone\r\n\
CSeq: 4711 OPTIONS\r\n\
Contact: <sip:probe@192.168.1.20:5062>\r\n\
Accept: application/sdp\r\n\
User-Agent: DeskPhone/3.1\r\n\
Content-Length: 0\r\n\
\r\n";
    assert_eq!(encoded_len(&req), want.len());
    let mut buf = [0u8; 1024];
    let n = encode_options(&req, &mut buf).unwrap();
    assert_eq!(&buf[..n], want, "{}", String::from_utf8_lossy(&buf[..n]));
    // An exactly-sized buffer is enough.
    let mut exact = vec![0u8; want.len()];
    assert_eq!(encode_options(&req, &mut exact), Ok(want.len()));
    assert_eq!(exact, want);
}

#[test]
fn encodes_ipv6_byte_for_byte() {
    let req = sample_request("[::1]:5062", "2001:db8::10", None);
    let want: &[u8] = b"OPTIONS sip:[2001:db8::10] SIP/2.0\r\n\
Via: SIP/2.0/UDP [::1]:5062;branch=z9hG4bK4f2a9c;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@[::1]:5062>;tag=77ab\r\n\
To: <sip:[2001:db8::10]>\r\n\
Call-ID: 8d1e6b@phone\r\n\
CSeq: 4711 OPTIONS\r\n\
Contact: <sip:probe@[::1]:5062>\r\n\
Accept: application/sdp\r\n\
User-Agent: DeskPhone/3.1\r\n\
Content-Length: 0\r\n\
\r\n";
    assert_eq!(encoded_len(&req), want.len());
    let mut buf = [0u8; 1024];
    let n = encode_options(&req, &mut buf).unwrap();
    assert_eq!(&buf[..n], want, "{}", String::from_utf8_lossy(&buf[..n]));

    let req = sample_request("[2001:db8:0:1:2:3:4:5]:65535", "2001:db8::10", Some(5061));
    let n = encode_options(&req, &mut buf).unwrap();
    assert!(buf[..n].starts_with(
        b"OPTIONS sip:[2001:db8::10]:5061 SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8:0:1:2:3:4:5]:65535;branch="
    ));
    assert_eq!(n, encoded_len(&req));
}

#[test]
fn too_small_buffers_are_untouched() {
    for req in [
        sample_request("192.168.1.20:5062", "pbx.example.com", Some(5060)),
        sample_request("[fe80::1:2]:5060", "fe80::9", None),
    ] {
        let needed = encoded_len(&req);
        for size in [0, 1, needed / 2, needed - 1] {
            let mut buf = vec![0xA5u8; size];
            assert_eq!(encode_options(&req, &mut buf), Err(BufferTooSmall { needed }));
            assert!(buf.iter().all(|&b| b == 0xA5), "size {size} was written to");
        }
        let mut buf = vec![0xA5u8; needed + 10];
        assert_eq!(encode_options(&req, &mut buf), Ok(needed));
        assert!(buf[needed..].iter().all(|&b| b == 0xA5), "wrote past the end");
    }
}

/// The request turned into a response by replacing its request line.
fn as_response(request: &[u8], status_line: &[u8]) -> Vec<u8> {
    let eol = request.iter().position(|&b| b == b'\n').unwrap();
    let mut response = status_line.to_vec();
    response.extend_from_slice(&request[eol + 1..]);
    response
}

#[test]
fn round_trip() {
    for req in [
        sample_request("192.168.1.20:5062", "pbx.example.com", Some(5060)),
        sample_request("[2001:db8::20]:5062", "2001:db8::10", None),
    ] {
        let mut buf = [0u8; 1024];
        let n = encode_options(&req, &mut buf).unwrap();
        let response = as_response(&buf[..n], b"SIP/2.0 200 OK\r\n");
        let r = parse_response(&response).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, b"OK");
        assert_eq!(r.branch, b"z9hG4bK4f2a9c");
        assert_eq!(r.call_id, req.call_id);
        assert_eq!((r.cseq, r.cseq_method), (req.cseq, &b"OPTIONS"[..]));
        assert_eq!(r.retry_after, None);
        assert_eq!(r.body, b"");
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = parse_response(&bytes);
    }

    #[test]
    fn never_panics_on_mutated_responses(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
        cut in any::<usize>(),
    ) {
        let table = legal();
        let mut msg = table[cut % table.len()].1.to_vec();
        for (at, byte, op) in edits {
            let at = at % (msg.len() + 1);
            match op {
                0 if at < msg.len() => msg[at] = byte,
                1 => msg.insert(at, byte),
                2 if at < msg.len() => { msg.remove(at); }
                _ => msg.truncate(at),
            }
        }
        if let Ok(r) = parse_response(&msg) {
            // Whatever is accepted honours the invariants.
            prop_assert!((100..=699).contains(&r.status));
            prop_assert!(!r.branch.is_empty() && !r.call_id.is_empty() && !r.cseq_method.is_empty());
            prop_assert!(r.body.len() <= msg.len());
        }
    }

    #[test]
    fn encoder_output_parses_back(
        branch in "[a-zA-Z0-9]{1,32}",
        call_id in "[a-zA-Z0-9.!%*_+`'~-]{1,40}(@[a-z0-9.-]{1,20})?",
        cseq in any::<u32>(),
        v6 in any::<bool>(),
        port in any::<u16>(),
    ) {
        let local = if v6 { format!("[2001:db8::{:x}]:{port}", cseq % 0xffff) } else { format!("10.1.2.3:{port}") };
        let req = OptionsRequest {
            uri_host: "pbx.example",
            uri_port: Some(port),
            local: local.parse().unwrap(),
            user: "probe",
            branch: branch.as_bytes(),
            call_id: call_id.as_bytes(),
            from_tag: b"t",
            cseq,
            user_agent: "ua",
            transport: Transport::Udp,
        };
        let mut buf = [0u8; 1024];
        let n = encode_options(&req, &mut buf).unwrap();
        prop_assert_eq!(n, encoded_len(&req));
        let response = as_response(&buf[..n], b"SIP/2.0 503 Down\r\n");
        let r = parse_response(&response).unwrap();
        prop_assert_eq!(r.branch, [BRANCH_COOKIE.as_bytes(), branch.as_bytes()].concat());
        prop_assert_eq!(r.call_id, call_id.as_bytes());
        prop_assert_eq!(r.cseq, cseq);
    }
}
