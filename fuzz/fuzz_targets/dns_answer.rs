//! The DNS client's answer decoder on arbitrary datagrams (what a resolver, or anyone spoofing one,
//! can send): no panic, and what it accepts holds records of the type asked for with bounded TTLs.
//!
//! The first byte picks the question (A, AAAA or SRV, for a plain name or its `_sip._udp` SRV name);
//! the rest is the datagram. The query id is taken from the datagram itself so that the fuzzer does
//! not have to guess it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::net::dns::{decode_answer, encode_query, RecordType};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, msg)) = data.split_first() else { return };
    let (name, rtype) = match pick % 3 {
        0 => ("pbx-a.example.com", RecordType::A),
        1 => ("pbx-a.example.com", RecordType::Aaaa),
        _ => ("_sip._udp.pbx-a.example.com", RecordType::Srv),
    };
    let id = msg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    // The query we would have sent is well formed.
    assert!(encode_query(id, name, rtype).is_ok());
    match decode_answer(msg, id, name, rtype) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(a) => {
            assert!(!a.addrs.is_empty() || !a.srv.is_empty());
            match rtype {
                RecordType::A => assert!(a.srv.is_empty() && a.addrs.iter().all(|ip| ip.is_ipv4())),
                RecordType::Aaaa => assert!(a.srv.is_empty() && a.addrs.iter().all(|ip| ip.is_ipv6())),
                _ => assert!(a.addrs.is_empty()),
            }
            assert!(a.addrs.len() + a.srv.len() <= 64);
            if let Some(ttl) = a.ttl {
                assert!(ttl.as_secs() <= 0x7fff_ffff);
            }
        }
    }
});
