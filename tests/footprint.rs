//! The firmware footprint: the agent's size (budget: 1224 bytes, what the C storage holds besides its
//! marker) and the stack a whole failover uses,
//! measured on this host by painting the stack. `scripts/footprint.sh` runs this in release and adds the
//! code size for thumbv7em-none-eabihf; lines starting with `footprint:` are the report.

mod skip;

use std::hint::black_box;
use std::net::SocketAddr;

use sip_failover::core::drive::{self, Ack, Io, Sent};
use sip_failover::core::{Agent, Command, Config, Event, Instant, Side, Transmit};

/// The agent's budget. It was under 1024 bytes until stream flows: each server's flow state, flow id,
/// pending close and keep-alive timer take 20 bytes (1016 to 1056); each server's two alternate
/// addresses (its next SRV targets, tried by the ladder's later attempts) take 64 more (1072 to 1200).
/// The budget is what the C storage (`SF_AGENT_STORAGE_SIZE`, 1232 bytes) holds besides its 8-byte
/// marker, so that C code compiled against the header keeps working while the agent stays within it.
const AGENT_BUDGET: usize = 1224;

#[test]
fn the_agent_fits_its_budget() {
    let size = std::mem::size_of::<Agent>();
    println!("footprint: size_of::<Agent>() = {size} bytes (align {})", std::mem::align_of::<Agent>());
    assert!(size <= AGENT_BUDGET, "the agent is {size} bytes; the firmware budget is {AGENT_BUDGET}");
}

#[cfg(not(feature = "ffi"))]
#[test]
fn the_c_storage_holds_the_agent() {
    skip::say_skipped("the C storage size needs --features ffi (scripts/footprint.sh, scripts/ci-ffi.sh)");
}

#[cfg(feature = "ffi")]
#[test]
fn the_c_storage_holds_the_agent() {
    use sip_failover::ffi;
    let need = ffi::sf_agent_size();
    println!("footprint: sf_agent_size() = {need} bytes (SF_AGENT_STORAGE_SIZE = {})", ffi::SF_AGENT_STORAGE_SIZE);
    assert!(need <= ffi::SF_AGENT_STORAGE_SIZE);
    assert_eq!(AGENT_BUDGET + 8, ffi::SF_AGENT_STORAGE_SIZE, "the budget is the storage less its marker");
    assert!(ffi::sf_agent_align() <= std::mem::align_of::<ffi::sf_agent_storage>());
}

/// A 200 OK echoing the request's Via, From, To, Call-ID and CSeq.
fn ok_reply(request: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via:", "From:", "To:", "Call-ID:", "CSeq:"] {
        if let Some(line) = text.lines().find(|l| l.starts_with(name)) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The phone's side of a drain: the primary is silent for the first cycle, the backup always
/// answers; switches are applied and their times kept.
struct Phone<'a> {
    inflight: &'a mut Vec<(u64, SocketAddr, Vec<u8>)>,
    over: &'a mut u64,
    back: &'a mut u64,
}

impl Io for Phone<'_> {
    fn transmit(&mut self, now: Instant, tx: &Transmit, bytes: &[u8]) -> Sent {
        let now = now.as_micros();
        if tx.server == Side::Backup || now >= 15_000_000 {
            self.inflight.push((now + 20_000, tx.destination, ok_reply(bytes)));
        }
        Sent::Sent
    }
    fn event(&mut self, now: Instant, e: &Event) -> Ack {
        let Event::Switch { to, .. } = e else { return Ack::None };
        *(if *to == Side::Backup { &mut *self.over } else { &mut *self.back }) = now.as_micros();
        Ack::Applied
    }
}

/// A failover and a failback through the whole API, with all buffers on the stack: the primary is
/// silent for the first cycle, the backup always answers. Returns when the agent switched and back.
#[inline(never)]
fn failover_and_back() -> (u64, u64) {
    let primary: SocketAddr = "192.0.2.10:5060".parse().unwrap();
    let backup: SocketAddr = "192.0.2.20:5060".parse().unwrap();
    let config = Config::new(primary, "pbx-a.example").with_backup(backup, "pbx-b.example");
    let mut agent = Agent::new(black_box(config), Instant::ZERO, black_box(7)).unwrap();
    let mut buf = [0u8; 1472];
    let mut inflight: Vec<(u64, SocketAddr, Vec<u8>)> = Vec::new();
    let mut now = 0u64;
    let (mut over, mut back) = (0, 0);
    while now < 60_000_000 {
        let mut io = Phone { inflight: &mut inflight, over: &mut over, back: &mut back };
        drive::drain(&mut agent, Instant::from_micros(now), &mut buf, &mut io);
        let deadline = agent.poll_timeout().map_or(u64::MAX, |t| t.as_micros());
        let next = inflight.iter().map(|d| d.0).min().unwrap_or(u64::MAX);
        now = now.max(deadline.min(next));
        if next <= deadline {
            let i = inflight.iter().position(|d| d.0 == next).unwrap();
            let (_, from, bytes) = inflight.swap_remove(i);
            agent.handle_datagram(Instant::from_micros(now), from, &bytes);
        } else {
            agent.handle_timeout(Instant::from_micros(now));
        }
    }
    agent.update_config(Instant::from_micros(now), config).unwrap();
    let _ = agent.handle_command(Instant::from_micros(now), Command::Pause);
    black_box(agent.snapshot());
    (over, back)
}

/// The stack `f` uses on a fresh thread, measured by painting: a large frame fills the stack below the
/// caller with a pattern, `f` runs, and the deepest byte no longer holding the pattern marks its
/// high-water mark (including the frames of the calls that run and measure it, a few hundred bytes).
#[allow(unsafe_code)]
fn stack_high_water<T: Send + 'static>(f: fn() -> T) -> (usize, T) {
    const SPAN: usize = 256 * 1024;
    const PATTERN: u8 = 0xA5;

    #[inline(never)]
    fn paint() {
        let mut area = [PATTERN; SPAN];
        black_box(&mut area);
    }

    #[inline(never)]
    fn lowest_touched(top: usize) -> usize {
        let bottom = top - SPAN + 4096;
        (bottom..top)
            // SAFETY: the addresses lie in this thread's stack, within the area painted a moment ago
            // (the thread's stack is far larger than SPAN), so they are mapped and readable.
            .find(|a| unsafe { std::ptr::read_volatile(*a as *const u8) } != PATTERN)
            .unwrap_or(top)
    }

    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let anchor = 0u8;
            let top = black_box(&anchor) as *const u8 as usize;
            paint();
            let out = f();
            let low = lowest_touched(top);
            (top - low, out)
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn stack_high_water_mark_of_a_failover_on_this_host() {
    let (used, (over, back)) = stack_high_water(failover_and_back);
    assert_eq!(over, 1_600_000, "the switch to the backup");
    assert!(back > over, "the failback");
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "footprint: stack high-water mark of a failover and failback = {used} bytes ({} {build} build, \
         painted stack, includes the agent value on the stack)",
        std::env::consts::ARCH
    );
    // Far above what a release build uses; a guard against recursion or a large array on the stack.
    assert!(used < 64 * 1024, "{used} bytes of stack");
}
