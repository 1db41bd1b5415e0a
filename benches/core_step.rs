//! One step of the core: a timer firing a probe cycle (two probes encoded) and a reply handled, each
//! with its outputs drained, on an agent cloned fresh for every iteration.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sip_failover::core::drive::{self, Ack, Io, Sent};
use sip_failover::core::{Agent, Config, Event, Instant, Transmit};
use sip_failover::sim::model::{respond, HeaderForm};

/// Counts what a drain hands out: bytes sent and events.
struct Count(usize);

impl Io for Count {
    fn transmit(&mut self, _: Instant, t: &Transmit, _: &[u8]) -> Sent {
        self.0 += t.len;
        Sent::Sent
    }
    fn event(&mut self, _: Instant, _: &Event) -> Ack {
        self.0 += 1;
        Ack::None
    }
}

fn drain(a: &mut Agent, now: Instant, buf: &mut [u8; 1500]) -> usize {
    let mut n = Count(0);
    drive::drain(a, now, buf, &mut n);
    n.0
}

fn benches(c: &mut Criterion) {
    let primary: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let cfg =
        Config::new(primary, "pbx-a.example.com").with_backup("127.0.0.2:5060".parse().unwrap(), "pbx-b.example.com");
    let mut agent = Agent::new(cfg, Instant::ZERO, 11).unwrap();
    let mut buf = [0u8; 1500];
    // Settle the first cycle: both servers answer.
    let mut probes = vec![];
    while let Ok(Some(t)) = agent.poll_transmit(Instant::ZERO, &mut buf) {
        probes.push((t.destination, buf[..t.len].to_vec()));
    }
    for (to, p) in &probes {
        agent.handle_datagram(Instant::from_millis(1), *to, &respond(p, 200, None, HeaderForm::Normal, "t").unwrap());
    }
    drain(&mut agent, Instant::from_millis(1), &mut buf);
    let before_cycle = agent.clone();
    let cycle_at = agent.poll_timeout().unwrap();

    let mut g = c.benchmark_group("core_step");
    g.bench_function("handle_timeout_cycle_start", |b| {
        b.iter_batched_ref(
            || before_cycle.clone(),
            |a| {
                a.handle_timeout(black_box(cycle_at));
                drain(a, cycle_at, &mut buf)
            },
            BatchSize::SmallInput,
        )
    });
    // The next cycle's probe to the primary and its reply.
    let mut waiting = before_cycle.clone();
    waiting.handle_timeout(cycle_at);
    let t = waiting.poll_transmit(cycle_at, &mut buf).unwrap().unwrap();
    let reply = respond(&buf[..t.len], 200, None, HeaderForm::Normal, "t").unwrap();
    let mut rest = [0u8; 1500];
    drain(&mut waiting, cycle_at, &mut rest);
    let at = cycle_at + sip_failover::core::Duration::from_millis(2);
    g.bench_function("handle_datagram_reply", |b| {
        b.iter_batched_ref(
            || waiting.clone(),
            |a| {
                a.handle_datagram(at, t.destination, black_box(&reply));
                drain(a, at, &mut buf)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("handle_timeout_nothing_due", |b| {
        b.iter_batched_ref(
            || waiting.clone(),
            |a| {
                a.handle_timeout(black_box(cycle_at));
                drain(a, cycle_at, &mut buf)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = core_step;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(core_step);
