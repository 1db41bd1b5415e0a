//! The lab's PBX model and the agent understand each other, and an independent SIP implementation
//! (rsip) agrees: rsip parses the agent's OPTIONS, and the agent accepts every response the model
//! builds with rsip, in normal, compact and folded header forms.

use std::net::SocketAddr;

use rsip::prelude::*;
use sip_failover::core::{Agent, Config, Event, IgnoreReason, Instant, Side};
use sip_failover::sim::model::{respond, Action, HeaderForm, Reply, ServerModel};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn agent() -> Agent {
    let mut c = Config::new(addr("127.0.0.1:5060"), "pbx-a.lab").with_backup(addr("[::1]:5062"), "pbx-b.lab");
    c.user = sip_failover::core::InlineStr::new("p42").unwrap();
    Agent::new(c, Instant::ZERO, 99).unwrap()
}

/// The first probe to each server: (side, bytes).
fn probes(a: &mut Agent) -> Vec<(Side, Vec<u8>)> {
    let mut buf = [0u8; 1500];
    let mut out = vec![];
    while let Some(t) = a.poll_transmit(Instant::ZERO, &mut buf).unwrap() {
        out.push((t.server, buf[..t.len].to_vec()));
    }
    while a.poll_event().is_some() {}
    out
}

#[test]
fn rsip_parses_the_agents_options() {
    let mut a = agent();
    for (side, bytes) in probes(&mut a) {
        let req = rsip::Request::try_from(bytes.as_slice()).unwrap_or_else(|e| panic!("{side}: {e}"));
        assert_eq!(req.method, rsip::Method::Options);
        let via = req.via_header().unwrap().typed().unwrap();
        let branch = via.branch().unwrap().to_string();
        assert!(branch.starts_with("z9hG4bK") && branch.len() >= 7 + 16, "{branch}");
        let cseq = req.cseq_header().unwrap().typed().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, rsip::Method::Options));
        let from = req.from_header().unwrap().typed().unwrap();
        assert_eq!(from.uri.user(), Some("p42"));
        assert!(from.tag().is_some());
        assert!(req.to_header().unwrap().tag().unwrap().is_none());
        assert!(!req.call_id_header().unwrap().value().is_empty());
        let host = req.uri.host_with_port.to_string();
        assert!(host == "pbx-a.lab:5060" || host == "pbx-b.lab:5062", "{host}");
    }
}

fn replies_of(a: &mut Agent) -> Vec<Event> {
    let mut v = vec![];
    while let Some(e) = a.poll_event() {
        v.push(e);
    }
    v
}

#[test]
fn the_agent_accepts_every_form_and_status_the_model_builds() {
    let cases: [(u16, Option<u32>); 5] = [(200, None), (404, None), (408, None), (503, Some(120)), (603, None)];
    for form in [HeaderForm::Normal, HeaderForm::Compact, HeaderForm::Folded] {
        for (status, retry_after) in cases {
            let mut a = agent();
            for (side, bytes) in probes(&mut a) {
                let from = a.config().server(side).unwrap().next_hop;
                let resp = respond(&bytes, status, retry_after, form, "srv7").unwrap();
                a.handle_datagram(Instant::from_millis(3), from, &resp);
                let events = replies_of(&mut a);
                let got = events.iter().find_map(|e| match *e {
                    Event::Reply { server, status, retry_after, .. } => Some((server, status, retry_after)),
                    _ => None,
                });
                assert_eq!(
                    got,
                    Some((side, status, retry_after)),
                    "{form:?} {status}: {events:?}\n{}",
                    String::from_utf8_lossy(&resp)
                );
                assert!(!events.iter().any(|e| matches!(e, Event::Ignored { .. })), "{events:?}");
                // And rsip reads its own response back.
                let parsed = rsip::Response::try_from(resp.as_slice());
                if form == HeaderForm::Normal {
                    let r = parsed.unwrap();
                    assert_eq!(u16::from(r.status_code), status);
                }
            }
        }
    }
}

#[test]
fn a_replayed_response_is_ignored_and_a_server_model_follows_its_faults() {
    let mut a = agent();
    let (side, bytes) = probes(&mut a).remove(0);
    let from = a.config().server(side).unwrap().next_hop;
    let mut s = ServerModel::new(side, 1);
    let Reply::Send { at, bytes: resp } = s.on_request(Instant::ZERO, &bytes) else { panic!("no reply") };
    assert_eq!(at, Instant::ZERO);
    a.handle_datagram(Instant::from_millis(1), from, &resp);
    a.handle_datagram(Instant::from_millis(2), from, &resp);
    let ev = replies_of(&mut a);
    assert!(ev.iter().any(|e| matches!(e, Event::Ignored { reason: IgnoreReason::NotWaiting })), "{ev:?}");

    s.apply(Action::Delay(sip_failover::core::Duration::from_millis(900)));
    assert!(
        matches!(s.on_request(Instant::from_secs(1), &bytes), Reply::Send { at, .. } if at == Instant::from_millis(1900))
    );
    s.apply(Action::Blackhole);
    assert_eq!(s.on_request(Instant::ZERO, &bytes), Reply::Silent);
    s.apply(Action::Refuse);
    assert_eq!(s.on_request(Instant::ZERO, &bytes), Reply::Refused);
    s.apply(Action::Answer);
    assert!(matches!(s.on_request(Instant::ZERO, &bytes), Reply::Send { .. }));
    assert_eq!(s.on_request(Instant::ZERO, b"garbage"), Reply::Silent);
    let st = s.stats();
    assert_eq!((st.requests, st.answered, st.dropped, st.refused, st.malformed), (6, 3, 1, 1, 1));
}
