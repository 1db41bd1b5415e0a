//! The core allocates nothing: a counting global allocator watches a simulated 24 hours with outages,
//! failovers and failbacks. The harness here is allocation-free too (stack buffers only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sip_failover::core::{Agent, Command, Config, Event, Instant, Side};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Writes a 200/503 response to `req` into `out` by copying its Via, From, To, Call-ID and CSeq lines.
fn respond(req: &[u8], status: &[u8], out: &mut [u8; 1500]) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8], n: &mut usize| {
        out[*n..*n + b.len()].copy_from_slice(b);
        *n += b.len();
    };
    put(b"SIP/2.0 ", &mut n);
    put(status, &mut n);
    put(b" X\r\n", &mut n);
    for line in req.split(|&b| b == b'\n') {
        if [&b"Via:"[..], b"From:", b"To:", b"Call-ID:", b"CSeq:"].iter().any(|p| line.starts_with(p)) {
            put(line, &mut n);
            put(b"\n", &mut n);
        }
    }
    put(b"Content-Length: 0\r\n\r\n", &mut n);
    n
}

#[test]
fn a_simulated_day_allocates_nothing() {
    let p: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let b: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let config = Config::new(p, "pbx-a.example").with_backup(b, "pbx-b.example");
    let mut agent = Agent::new(config, Instant::ZERO, 5).unwrap();
    let mut buf = [0u8; 1500];
    let mut resp = [0u8; 1500];
    // At most a few datagrams in flight: (deliver at µs, side, len, bytes).
    let mut inflight: [(u64, Side, usize, [u8; 1500]); 4] = [(u64::MAX, Side::Primary, 0, [0; 1500]); 4];
    let mut switches = 0u32;
    let mut failbacks = 0u32;
    let day = 24 * 3600 * 1_000_000u64;
    let mut now = Instant::ZERO;

    COUNTING.store(true, Ordering::SeqCst);
    let mut steps = 0u64;
    while now.as_micros() < day && steps < 10_000_000 {
        steps += 1;
        let minute = now.as_micros() / 60_000_000;
        // Every hour the primary is down for 5 minutes; every 6 hours the backup for 3.
        let primary_up = minute % 60 >= 5;
        let backup_up = minute % 360 < 200 || minute % 360 >= 203;
        if minute % 90 == 30 {
            let _ = agent.handle_command(now, Command::InCall(true));
        } else if minute % 90 == 33 {
            let _ = agent.handle_command(now, Command::InCall(false));
        }
        while let Some(t) = agent.poll_transmit(now, &mut buf).unwrap() {
            let up = if t.server == Side::Primary { primary_up } else { backup_up };
            if up {
                if let Some(slot) = inflight.iter_mut().find(|s| s.0 == u64::MAX) {
                    let len = respond(&buf[..t.len], b"200", &mut resp);
                    slot.3[..len].copy_from_slice(&resp[..len]);
                    *slot = (now.as_micros() + 7_000, t.server, len, slot.3);
                }
            }
        }
        while let Some(e) = agent.poll_event() {
            if let Event::Switch { generation, to, .. } = e {
                switches += 1;
                if to == Side::Primary {
                    failbacks += 1;
                }
                agent.handle_command(now, Command::Applied { generation }).unwrap();
            }
        }
        let next_delivery = inflight.iter().map(|s| s.0).min().unwrap_or(u64::MAX);
        let next_timer = agent.poll_timeout().map(|t| t.as_micros()).unwrap_or(u64::MAX);
        if next_delivery <= next_timer {
            now = Instant::from_micros(next_delivery);
            let i = inflight.iter().position(|s| s.0 == next_delivery).unwrap();
            let (_, side, len, bytes) = inflight[i];
            inflight[i].0 = u64::MAX;
            agent.handle_datagram(now, if side == Side::Primary { p } else { b }, &bytes[..len]);
        } else {
            now = Instant::from_micros(next_timer);
            agent.handle_timeout(now);
        }
    }
    COUNTING.store(false, Ordering::SeqCst);

    assert!(now.as_micros() >= day, "simulation stopped early at {now:?}");
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "the core allocated on the heap");
    // 24 outages of the primary: a failover and a failback each.
    assert!(switches >= 48, "only {switches} switches");
    assert!(failbacks >= 24, "only {failbacks} failbacks");
}
