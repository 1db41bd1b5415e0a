//! The failover core and its status LED on a Cortex-M4F (`thumbv7em-none-eabihf`): `no_std`, no heap,
//! the agent on the stack of the main loop.
//!
//! The loop is the one the core documents: drain the flows to open or close (none here: both servers
//! are reached over UDP), the transmits, then the events, sleep until the next deadline, feed in what
//! woke it. Real firmware sends through its UDP stack, sleeps with WFI until a
//! timer or network interrupt and reads a hardware clock; to link on any Cortex-M4F without a board
//! crate, this example has a loopback network in which the backup PBX answers and the primary is
//! black-holed, and a clock that jumps to the next deadline. The agent fails over to the backup at
//! 1.6 s and the LED follows it.
//!
//! Build: `cargo build --release` in this directory (the target is set in `.cargo/config.toml`).
//! Without the default `agent` feature the same start-up code and loop are built without the agent:
//! the baseline `scripts/footprint.sh` subtracts to get the core's code size. With the `qemu` feature
//! it runs under `qemu-system-arm -M mps2-an386` (a Cortex-M4), stops after 20 s of agent time and
//! prints the switch and the stack's high-water mark through semihosting.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use embedded_hal::digital::{ErrorType, OutputPin};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    // The core is written not to panic; should it, stop here (a watchdog resets the phone).
    loop {
        core::hint::spin_loop();
    }
}

/// The status LED. On a board this writes a GPIO output register; here the level is only kept.
#[allow(dead_code)]
struct Led {
    lit: bool,
}

impl ErrorType for Led {
    type Error = Infallible;
}

impl OutputPin for Led {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.lit = black_box(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.lit = black_box(true);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    #[cfg(feature = "agent")]
    firmware::run();
    #[cfg(not(feature = "agent"))]
    baseline();
}

/// The same start-up and pin without the agent.
#[cfg(not(feature = "agent"))]
fn baseline() -> ! {
    let mut led = Led { lit: false };
    loop {
        if black_box(led.lit) {
            let _ = led.set_low();
        } else {
            let _ = led.set_high();
        }
    }
}

#[cfg(feature = "agent")]
mod firmware {
    use core::hint::black_box;
    use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    use sip_failover::core::{Agent, Command, Config, Event, FlowEvent, Frame, Instant, Side, Transmit};
    #[cfg(feature = "led")]
    use sip_failover::indicator::Indicator;

    #[cfg(feature = "led")]
    use super::Led;

    const MTU: usize = 1472;

    pub fn run() -> ! {
        let primary = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 5060));
        let backup = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 20), 5060));
        let config = Config::new(primary, "pbx-a.example").with_backup(backup, "pbx-b.example");
        // In a product: 32 bytes from the MCU's random number generator, with Agent::with_key.
        let seed = black_box(0x5eed_1234_abcd_0001);
        let Ok(mut agent) = Agent::new(config, Instant::ZERO, seed) else { halt() };
        #[cfg(feature = "led")]
        let mut led = Indicator::new(Led { lit: false });
        let mut net = Loopback::new(backup);
        let mut tx_buf = [0u8; MTU];
        let mut rx_buf = [0u8; MTU];
        let mut now = Instant::ZERO;
        #[cfg(feature = "qemu")]
        let frame = qemu::depth_here();
        #[cfg(feature = "qemu")]
        let mut switched = None;

        loop {
            // Outputs, in the documented order: flows to open or close (only for servers reached over
            // TCP or TLS, so never here), every transmit, then every event.
            while let Some(cmd) = agent.poll_flow() {
                // A product connects (or closes) its TCP or TLS socket here and reports the outcome
                // with `handle_flow`.
                black_box(cmd);
            }
            while let Ok(Some(tx)) = agent.poll_transmit(now, &mut tx_buf) {
                net.send(now, &tx, tx_buf.get(..tx.len).unwrap_or(&[]));
            }
            while let Some(event) = agent.poll_event() {
                #[cfg(feature = "led")]
                led.on_event(&event);
                #[cfg(feature = "qemu")]
                if let Event::Switch { to, generation, .. } = event {
                    switched = Some((now, to, generation));
                }
                if let Event::Switch { generation, .. } = event {
                    // Apply the whole bundle here (SIP registrations, app URLs, VPN), then acknowledge.
                    let _ = agent.handle_command(now, Command::Applied { generation });
                    // Persist what a reboot must not lose.
                    black_box(agent.snapshot());
                }
            }
            #[cfg(feature = "led")]
            let led_wake = led.tick(now).unwrap_or(Instant::MAX);
            #[cfg(not(feature = "led"))]
            let led_wake = Instant::MAX;

            #[cfg(feature = "qemu")]
            if now >= Instant::from_secs(20) {
                qemu::finish(&agent, frame, switched);
            }

            // Sleep until the agent's deadline, the LED's next change or a datagram (WFI in a product).
            let wake = agent.poll_timeout().unwrap_or(Instant::MAX).min(led_wake).min(net.next_delivery());
            now = now.max(wake);

            // Inputs.
            if let Some((from, len)) = net.receive(now, &mut rx_buf) {
                agent.handle_datagram(now, from, rx_buf.get(..len).unwrap_or(&[]));
            } else {
                agent.handle_timeout(now);
            }
            if black_box(false) {
                // The rest of the API, reached from the firmware's own events.
                agent.handle_refused(now, Side::Primary);
                // Over TCP or TLS: a flow's news, and each whole message framed in its read buffer.
                agent.handle_flow(now, Side::Primary, black_box(1), FlowEvent::Connected);
                if let Ok(Some(Frame::Message(len))) = sip_failover::core::frame(&rx_buf) {
                    agent.handle_message(now, Side::Primary, rx_buf.get(..len).unwrap_or(&[]));
                }
                let _ = agent.handle_command(now, Command::InCall(black_box(true)));
                let _ = agent.update_config(now, config);
                if let Ok(resumed) = Agent::resume(config, now, seed, agent.snapshot()) {
                    agent = resumed;
                }
                #[cfg(feature = "led")]
                led.set_notice_count(black_box(2));
            }
        }
    }

    #[cfg(feature = "qemu")]
    mod qemu {
        use cortex_m_semihosting::{debug, hprintln};
        use sip_failover::core::{Agent, Instant, Side};

        extern "C" {
            static _stack_start: u32;
            static _stack_end: u32;
        }

        fn top() -> usize {
            core::ptr::addr_of!(_stack_start) as usize
        }

        /// How deep the stack is here: the caller's frame and everything above it.
        #[inline(never)]
        pub fn depth_here() -> usize {
            let marker = 0u8;
            top() - core::hint::black_box(&marker) as *const u8 as usize
        }

        /// Reports the deepest stack use since reset and leaves QEMU.
        pub fn finish(agent: &Agent, frame: usize, switched: Option<(Instant, Side, u32)>) -> ! {
            // SAFETY: the words between the linker's stack bounds are RAM that cortex-m-rt painted with
            // STACK_PAINT_VALUE at reset; they are only read.
            let used = unsafe {
                let mut p = core::ptr::addr_of!(_stack_end) as usize;
                while p < top() && core::ptr::read_volatile(p as *const u32) == cortex_m_rt::STACK_PAINT_VALUE {
                    p += 4;
                }
                top() - p
            };
            if let Some((at, to, generation)) = switched {
                hprintln!("t={} ms switch to {} generation={}", at.as_millis(), to, generation);
            }
            hprintln!("active={} generation={}", agent.active(), agent.generation());
            hprintln!("size_of::<Agent>() = {} bytes", core::mem::size_of::<Agent>());
            hprintln!("stack high-water mark = {} bytes", used);
            hprintln!("main loop frame (agent, buffers, LED) = {} bytes", frame);
            hprintln!("deepest call below the main loop = {} bytes", used.saturating_sub(frame));
            debug::exit(debug::EXIT_SUCCESS);
            super::halt()
        }
    }

    fn halt() -> ! {
        loop {
            core::hint::spin_loop();
        }
    }

    /// A network in which `answering` replies 20 ms after each probe and every other server is silent.
    struct Loopback {
        answering: SocketAddr,
        pending: Option<(Instant, usize)>,
        reply: [u8; MTU],
    }

    impl Loopback {
        fn new(answering: SocketAddr) -> Self {
            Loopback { answering, pending: None, reply: [0; MTU] }
        }

        fn send(&mut self, now: Instant, tx: &Transmit, request: &[u8]) {
            if tx.destination == self.answering && self.pending.is_none() {
                let len = echo_reply(request, &mut self.reply);
                self.pending = Some((Instant::from_micros(now.as_micros().saturating_add(20_000)), len));
            }
        }

        fn next_delivery(&self) -> Instant {
            self.pending.map_or(Instant::MAX, |(at, _)| at)
        }

        fn receive(&mut self, now: Instant, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
            let (at, len) = self.pending?;
            if at > now {
                return None;
            }
            self.pending = None;
            out.get_mut(..len)?.copy_from_slice(self.reply.get(..len)?);
            Some((self.answering, len))
        }
    }

    /// A 200 OK echoing the request's Via, From, To, Call-ID and CSeq lines.
    fn echo_reply(request: &[u8], out: &mut [u8]) -> usize {
        let mut w = Writer { out, len: 0 };
        w.put(b"SIP/2.0 200 OK\r\n");
        for name in [&b"Via:"[..], b"From:", b"To:", b"Call-ID:", b"CSeq:"] {
            if let Some(line) = request.split(|b| *b == b'\n').find(|l| l.starts_with(name)) {
                w.put(line);
                w.put(b"\n");
            }
        }
        w.put(b"Content-Length: 0\r\n\r\n");
        w.len
    }

    struct Writer<'a> {
        out: &'a mut [u8],
        len: usize,
    }

    impl Writer<'_> {
        fn put(&mut self, bytes: &[u8]) {
            let end = self.len.saturating_add(bytes.len());
            if let Some(dst) = self.out.get_mut(self.len..end) {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
        }
    }
}
