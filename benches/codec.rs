//! The codec: encoding an OPTIONS, parsing a response, and the full encode + parse + match through
//! the agent, side by side with the same work done with rsip (build the request, parse the response,
//! pick out and compare branch, Call-ID and CSeq).
//!
//! Before the measurements it counts heap allocations of one round of each, with a counting global
//! allocator, and prints them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rsip::prelude::*;
use sip_failover::core::wire::{encode_options, parse_response, OptionsRequest};
use sip_failover::core::{Agent, Config, Event, Instant, Transport};
use sip_failover::sim::model::{respond, HeaderForm};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PRIMARY: &str = "127.0.0.1:5060";

fn request() -> OptionsRequest<'static> {
    OptionsRequest {
        uri_host: "pbx-a.example.com",
        uri_port: Some(5060),
        local: "192.0.2.33:5060".parse().unwrap(),
        user: "keepalive",
        branch: b"3f2a9c41d07be85512aa90cc",
        call_id: b"9b1c44e0a7d25f3c881e02b4c6d7e8f9",
        from_tag: b"a1b2c3d4e5f60718",
        cseq: 42,
        user_agent: "sip-failover/0.1.0",
        transport: Transport::Udp,
    }
}

/// An agent with its first probe queued, the response the lab's PBX (rsip) builds for it, and the
/// server address.
fn setup() -> (Agent, Vec<u8>, SocketAddr) {
    let from: SocketAddr = PRIMARY.parse().unwrap();
    let cfg =
        Config::new(from, "pbx-a.example.com").with_backup("127.0.0.2:5060".parse().unwrap(), "pbx-b.example.com");
    let agent = Agent::new(cfg, Instant::ZERO, 7).unwrap();
    let mut probe = agent.clone();
    let mut buf = [0u8; 1500];
    let t = probe.poll_transmit(Instant::ZERO, &mut buf).unwrap().unwrap();
    let resp = respond(&buf[..t.len], 200, None, HeaderForm::Normal, "srv1").unwrap();
    (agent, resp, from)
}

/// Ours: encode the probe, parse and match the reply, drain the events. Returns the reply status.
fn ours(agent: &mut Agent, resp: &[u8], from: SocketAddr, buf: &mut [u8; 1500]) -> u16 {
    let t = agent.poll_transmit(Instant::ZERO, buf).unwrap().unwrap();
    black_box(&buf[..t.len]);
    agent.handle_datagram(Instant::from_millis(1), from, resp);
    let mut status = 0;
    while let Some(e) = agent.poll_event() {
        if let Event::Reply { status: s, .. } = e {
            status = s;
        }
    }
    status
}

/// The same with rsip: build the request, serialize it, parse the response, compare its branch,
/// Call-ID and CSeq with the request's.
fn with_rsip(resp: &[u8]) -> u16 {
    let r = request();
    let branch = format!("z9hG4bK{}", std::str::from_utf8(r.branch).unwrap());
    let call_id = std::str::from_utf8(r.call_id).unwrap();
    let headers: Vec<rsip::Header> = vec![
        rsip::headers::Via::new(format!("SIP/2.0/UDP {};branch={branch};rport", r.local)).into(),
        rsip::headers::MaxForwards::new("70").into(),
        rsip::headers::From::new(format!(
            "<sip:{}@{}>;tag={}",
            r.user,
            r.local,
            std::str::from_utf8(r.from_tag).unwrap()
        ))
        .into(),
        rsip::headers::To::new("<sip:pbx-a.example.com:5060>").into(),
        rsip::headers::CallId::new(call_id).into(),
        rsip::headers::CSeq::new(format!("{} OPTIONS", r.cseq)).into(),
        rsip::headers::Contact::new(format!("<sip:{}@{}>", r.user, r.local)).into(),
        rsip::headers::Accept::new("application/sdp").into(),
        rsip::headers::UserAgent::new(r.user_agent).into(),
        rsip::headers::ContentLength::new("0").into(),
    ];
    let req = rsip::Request {
        method: rsip::Method::Options,
        uri: rsip::Uri::try_from("sip:pbx-a.example.com:5060").unwrap(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: vec![],
    };
    let bytes = req.to_string().into_bytes();
    black_box(&bytes);
    let resp = rsip::Response::try_from(resp).unwrap();
    let via = resp.via_header().unwrap().typed().unwrap();
    let ok_branch = via.branch().map(|b| b.to_string()) == Some(branch);
    let ok_call = resp.call_id_header().unwrap().value() == call_id;
    let cseq = resp.cseq_header().unwrap().typed().unwrap();
    let ok_cseq = cseq.seq == r.cseq && cseq.method == rsip::Method::Options;
    black_box((ok_branch, ok_call, ok_cseq));
    u16::from(resp.status_code)
}

/// The codec alone, the same work as [`with_rsip`]: encode the request, parse the response, compare
/// its branch, Call-ID and CSeq with the request's (what the agent's match does, without the agent's
/// random source and event queue).
fn codec_only(resp: &[u8], buf: &mut [u8; 1500]) -> u16 {
    let r = request();
    let n = encode_options(&r, buf).unwrap();
    black_box(&buf[..n]);
    let p = parse_response(resp).unwrap();
    let ok_branch = p.branch.strip_prefix(b"z9hG4bK") == Some(r.branch);
    let ok_call = p.call_id == r.call_id;
    let ok_cseq = p.cseq == r.cseq && p.cseq_method == b"OPTIONS";
    assert!(ok_branch && ok_call && ok_cseq);
    p.status
}

fn allocations_of(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

fn report_allocations() {
    let (agent, resp, from) = setup();
    let mut a = agent.clone();
    let mut buf = [0u8; 1500];
    let ours_n = allocations_of(|| {
        assert_eq!(ours(&mut a, &resp, from, &mut buf), 200);
    });
    // rsip answers a response of its own with the same request's fields.
    let theirs_resp = rsip_response();
    let theirs_n = allocations_of(|| {
        assert_eq!(with_rsip(&theirs_resp), 200);
    });
    let codec_n = allocations_of(|| {
        assert_eq!(codec_only(&theirs_resp, &mut buf), 200);
    });
    println!("heap allocations per encode + parse + match: codec {codec_n}, agent {ours_n}, rsip {theirs_n}");
    assert_eq!(ours_n + codec_n, 0, "the core must not allocate");
}

/// A response to `request()` built by the lab's PBX.
fn rsip_response() -> Vec<u8> {
    let mut buf = [0u8; 1500];
    let n = encode_options(&request(), &mut buf).unwrap();
    respond(&buf[..n], 200, None, HeaderForm::Normal, "srv1").unwrap()
}

fn benches(c: &mut Criterion) {
    report_allocations();
    let mut buf = [0u8; 1500];
    c.bench_function("encode_options", |b| {
        let r = request();
        b.iter(|| encode_options(black_box(&r), &mut buf).unwrap())
    });
    let resp = rsip_response();
    c.bench_function("parse_response", |b| b.iter(|| parse_response(black_box(&resp)).unwrap().status));

    let mut g = c.benchmark_group("encode_parse_match");
    g.bench_function("codec", |b| b.iter(|| codec_only(black_box(&resp), &mut buf)));
    let (agent, agent_resp, from) = setup();
    g.bench_function("agent", |b| {
        b.iter_batched_ref(|| agent.clone(), |a| ours(a, black_box(&agent_resp), from, &mut buf), BatchSize::SmallInput)
    });
    g.bench_function("rsip", |b| b.iter(|| with_rsip(black_box(&resp))));
    g.finish();
}

criterion_group! {
    name = codec;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(codec);
