//! The status LED: which side is in force, the notice count as pulses, driven from the agent's events,
//! checked against embedded-hal-mock pin and delay expectations. Built with `--features indicator` only
//! (`required-features` in Cargo.toml; `tests/feature_gated.rs` reports it as skipped otherwise).

mod common;

use common::*;
use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as Delay};
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
use sip_failover::core::{DownReason, Duration, Event, Instant, Side, SwitchReason};
use sip_failover::indicator::{blink_count, Indicator, Mode, Timing};

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn high() -> Pin {
    Pin::set(State::High)
}
fn low() -> Pin {
    Pin::set(State::Low)
}

fn switch_to(to: Side, generation: u32) -> Event {
    Event::Switch { from: to.other(), to, reason: SwitchReason::Failover, generation }
}

/// Ticks at every instant the indicator asks for, until `end_ms`; returns those instants in ms.
fn follow(led: &mut Indicator<PinMock>, from_ms: u64, end_ms: u64) -> Vec<u64> {
    let mut t = ms(from_ms);
    let mut wakes = vec![];
    while t < ms(end_ms) {
        t = led.tick(t).unwrap();
        wakes.push(t.as_millis());
    }
    wakes
}

#[test]
fn primary_is_steady_on_and_the_pin_is_written_once() {
    let mut pin = PinMock::new(&[high()]);
    let mut led = Indicator::new(pin.clone());
    assert_eq!(led.mode(), Mode::Primary);
    // One run of 2 s per frame: the LED is asked to wake each period but never changes.
    assert_eq!(follow(&mut led, 0, 6000), vec![2000, 4000, 6000]);
    pin.done();
}

#[test]
fn a_failover_blinks_fast_until_applied_then_slowly_on_the_backup() {
    let mut pin = PinMock::new(&[high(), low(), high(), low(), high(), low(), high()]);
    let mut led = Indicator::new(pin.clone());
    led.tick(ms(0)).unwrap(); // steady on (primary)

    led.on_event(&switch_to(Side::Backup, 1));
    assert_eq!(led.mode(), Mode::Switching);
    // Restarted at the next tick: on 100 ms, off 100 ms, ...
    assert_eq!(led.tick(ms(1600)).unwrap(), ms(1700)); // already high: not written again
    assert_eq!(led.tick(ms(1700)).unwrap(), ms(1800)); // low
    assert_eq!(led.tick(ms(1800)).unwrap(), ms(1900)); // high
    assert_eq!(led.tick(ms(1850)).unwrap(), ms(1900)); // early tick: no write

    led.on_event(&Event::Applied { side: Side::Backup, generation: 1 });
    assert_eq!(led.mode(), Mode::Backup);
    assert_eq!(led.active(), Side::Backup);
    // Slow blink from the next tick: on 1 s, off 1 s.
    assert_eq!(led.tick(ms(1900)).unwrap(), ms(2900)); // high already
    assert_eq!(follow(&mut led, 2900, 6900), vec![3900, 4900, 5900, 6900]);
    pin.done();
}

#[test]
fn notices_are_counted_in_pulses_between_off_gaps() {
    // Three notices over the primary: gap 400, (on 150, off 150) x3 with the last off merged with the
    // closing gap (150 + 400), then the 2 s steady part.
    let mut pin = PinMock::new(&[low(), high(), low(), high(), low(), high(), low(), high(), low()]);
    let mut led = Indicator::new(pin.clone());
    led.set_notice_count(3);
    assert_eq!(led.frame_len(), Duration::from_millis(400 + 6 * 150 + 400 + 2000));
    assert_eq!(follow(&mut led, 0, 3700), vec![400, 550, 700, 850, 1000, 1150, 1700, 3700]);
    // The next frame starts with the gap again.
    assert_eq!(led.tick(ms(3700)).unwrap(), ms(4100));
    assert!(!led.lit_at(Duration::from_millis(3700)));
    assert!(led.lit_at(Duration::from_millis(3700 + 400)));
    pin.done();
}

#[test]
fn notice_pulses_are_capped() {
    let timing = Timing { max_pulses: 2, ..Timing::DEFAULT };
    let led = Indicator::with_timing(PinMock::new(&[]), timing);
    let mut led = led;
    led.set_notice_count(40);
    assert_eq!(led.notice_count(), 40);
    assert_eq!(led.frame_len(), Duration::from_millis(400 + 4 * 150 + 400 + 2000));
    led.release().done();
}

#[test]
fn play_frame_blocks_with_one_delay_per_run() {
    // Two notices on the backup: off 400, on 150, off 150, on 150, off 550, on 1000, off 1000.
    let mut pin = PinMock::new(&[low(), high(), low(), high(), low(), high(), low()]);
    let mut delay = CheckedDelay::new(&[
        Delay::delay_ms(400),
        Delay::delay_ms(150),
        Delay::delay_ms(150),
        Delay::delay_ms(150),
        Delay::delay_ms(550),
        Delay::delay_ms(1000),
        Delay::delay_ms(1000),
    ]);
    let mut led = Indicator::new(pin.clone());
    led.on_event(&Event::Applied { side: Side::Backup, generation: 1 });
    led.set_notice_count(2);
    led.play_frame(&mut delay).unwrap();
    pin.done();
    delay.done();
}

#[test]
fn blink_count_blinks_with_delays() {
    let mut pin = PinMock::new(&[high(), low(), high(), low(), high(), low()]);
    let mut delay = CheckedDelay::new(&[
        Delay::delay_ms(200),
        Delay::delay_ms(300),
        Delay::delay_ms(200),
        Delay::delay_ms(300),
        Delay::delay_ms(200),
        Delay::delay_ms(300),
    ]);
    blink_count(&mut pin, &mut delay, 3, 200, 300).unwrap();
    blink_count(&mut pin, &mut delay, 0, 200, 300).unwrap();
    pin.done();
    delay.done();
}

#[test]
fn active_low_inverts_the_pin() {
    let mut pin = PinMock::new(&[low(), high()]);
    let mut led = Indicator::new(pin.clone()).active_low();
    led.on_event(&Event::Applied { side: Side::Backup, generation: 1 });
    assert_eq!(led.tick(ms(0)).unwrap(), ms(1000)); // lit: pin low
    assert_eq!(led.tick(ms(1000)).unwrap(), ms(2000)); // dark: pin high
    pin.done();
}

#[test]
fn no_server_flashes_until_the_active_server_answers() {
    let mut pin = PinMock::new(&[high(), low(), high()]);
    let mut led = Indicator::new(pin.clone());
    led.on_event(&Event::ServerDown { server: Side::Primary, reason: DownReason::Timeout });
    assert_eq!(led.mode(), Mode::Primary);
    led.on_event(&Event::NoServerReachable);
    assert_eq!(led.mode(), Mode::NoServer);
    assert_eq!(led.tick(ms(0)).unwrap(), ms(100));
    assert_eq!(led.tick(ms(100)).unwrap(), ms(2000));
    // The backup answering does not clear it; the primary (in force) does.
    led.on_event(&Event::ServerUp { server: Side::Backup });
    assert_eq!(led.mode(), Mode::NoServer);
    led.on_event(&Event::ServerUp { server: Side::Primary });
    assert_eq!(led.mode(), Mode::Primary);
    assert_eq!(led.tick(ms(150)).unwrap(), ms(2150));
    pin.done();
}

#[test]
fn a_failed_apply_keeps_the_previous_side() {
    let mut led = Indicator::new(PinMock::new(&[]));
    led.on_event(&switch_to(Side::Backup, 1));
    led.on_event(&Event::ApplyFailed { side: Side::Backup, generation: 1, kept: Side::Primary });
    assert_eq!(led.mode(), Mode::Primary);
    led.set_active(Side::Backup);
    assert_eq!(led.mode(), Mode::Backup);
    led.release().done();
}

#[test]
fn pin_errors_are_returned() {
    use embedded_hal_mock::eh1::MockError;
    let mut pin = PinMock::new(&[high().with_error(MockError::Io(std::io::ErrorKind::Other))]);
    let mut led = Indicator::new(pin.clone());
    assert!(led.tick(ms(0)).is_err());
    pin.done();
}

#[test]
fn driven_by_the_agent_through_a_failover() {
    // The primary black-holed, the backup answering: the LED follows the agent's events to the backup.
    let mut lab = Lab::new(config(), |_, side, _| if side == Side::Primary { Answer::Drop } else { OK });
    lab.run_until(1599);
    let mut led = Indicator::new(PinMock::new(&[high(), low()]));
    for (_, e) in &lab.events {
        led.on_event(e);
    }
    assert_eq!(led.mode(), Mode::Primary);
    led.tick(ms(1599)).unwrap();
    lab.run_until(3000);
    let mut modes = vec![];
    for (t, e) in lab.events.iter().filter(|(t, _)| *t >= 1600) {
        let before = led.mode();
        led.on_event(e);
        if led.mode() != before {
            modes.push((*t, led.mode()));
        }
    }
    // The harness acknowledges switches at once: switching, then the backup, both at 1600 ms.
    assert_eq!(modes, vec![(1600, Mode::Switching), (1600, Mode::Backup)]);
    assert_eq!(led.active(), lab.agent.active());
    assert_eq!(led.tick(ms(1600)).unwrap(), ms(2600));
    assert_eq!(led.tick(ms(2600)).unwrap(), ms(3600));
    led.release().done();
}
