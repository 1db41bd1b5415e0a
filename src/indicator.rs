//! A status LED for phone hardware, on the embedded-hal 1.0 traits, driven from the core's events.
//!
//! One LED tells which side's bundle is in force and how many maintenance notices concern the phone (the
//! "bell" number). The pattern repeats frame after frame:
//!
//! 1. the notice count, when there are notices: an off gap, one short pulse per notice (at most
//!    [`Timing::max_pulses`]), another off gap;
//! 2. the side, for [`Timing::period_ms`]: steady on on the primary, a slow blink on the backup, a fast
//!    blink while a switch is being applied, a short flash when no server answers.
//!
//! [`Indicator`] is non-blocking: feed it every [`Event`] from [`Agent::poll_event`] with
//! [`Indicator::on_event`], the notice count with [`Indicator::set_notice_count`], and call
//! [`Indicator::tick`] at the instant it returns (or any time sooner); it writes the pin only when the
//! level changes. Firmware with a simple blocking loop can play one frame at a time with
//! [`Indicator::play_frame`] and a [`DelayNs`], or blink a count with [`blink_count`].
//!
//! ```
//! # use core::convert::Infallible;
//! # struct Led(bool);
//! # impl embedded_hal::digital::ErrorType for Led { type Error = Infallible; }
//! # impl embedded_hal::digital::OutputPin for Led {
//! #     fn set_low(&mut self) -> Result<(), Infallible> { self.0 = false; Ok(()) }
//! #     fn set_high(&mut self) -> Result<(), Infallible> { self.0 = true; Ok(()) }
//! # }
//! use sip_failover::core::{Event, Instant, Side, SwitchReason};
//! use sip_failover::indicator::{Indicator, Mode};
//!
//! let mut led = Indicator::new(Led(false));
//! led.tick(Instant::ZERO).unwrap();
//! assert_eq!(led.mode(), Mode::Primary);
//! led.on_event(&Event::Switch { from: Side::Primary, to: Side::Backup, reason: SwitchReason::Failover, generation: 1 });
//! assert_eq!(led.mode(), Mode::Switching);
//! led.on_event(&Event::Applied { side: Side::Backup, generation: 1 });
//! assert_eq!(led.mode(), Mode::Backup);
//! led.set_notice_count(2);
//! // The next change is due when the first off gap ends.
//! assert_eq!(led.tick(Instant::from_millis(5)).unwrap(), Instant::from_millis(405));
//! ```
//!
//! [`Agent::poll_event`]: crate::core::Agent::poll_event

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;

use crate::core::{Duration, Event, Instant, Side};

/// What the side part of the pattern shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// The primary's bundle is in force: steady on.
    Primary,
    /// The backup's bundle is in force: slow blink.
    Backup,
    /// A switch was handed out and is not acknowledged yet: fast blink.
    Switching,
    /// The active server failed and the other did not answer either: a short flash each period.
    NoServer,
}

/// The pattern's timings, in milliseconds. A zero length leaves that part out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The length of the side part of a frame.
    pub period_ms: u32,
    /// On the backup: how long the LED is on in each period.
    pub slow_on_ms: u32,
    /// While switching: the length of each on and each off.
    pub fast_ms: u32,
    /// With no server: how long the flash lasts in each period.
    pub flash_ms: u32,
    /// The off gap before and after the notice pulses.
    pub gap_ms: u32,
    /// How long each notice pulse is on.
    pub pulse_on_ms: u32,
    /// How long the LED is off after each notice pulse.
    pub pulse_off_ms: u32,
    /// The most pulses shown; larger counts show this many.
    pub max_pulses: u8,
}

impl Timing {
    /// A 2 s period, a 1 s on / 1 s off slow blink, a 100 ms fast blink and flash, 400 ms gaps and
    /// 150 ms / 150 ms pulses, at most 9 of them.
    pub const DEFAULT: Timing = Timing {
        period_ms: 2000,
        slow_on_ms: 1000,
        fast_ms: 100,
        flash_ms: 100,
        gap_ms: 400,
        pulse_on_ms: 150,
        pulse_off_ms: 150,
        max_pulses: 9,
    };
}

impl Default for Timing {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A status LED on one output pin. See the [module docs](self).
#[derive(Debug)]
pub struct Indicator<P> {
    pin: P,
    timing: Timing,
    active_low: bool,
    active: Side,
    switching: bool,
    no_server: bool,
    notices: u16,
    /// When the current frame started; `None` restarts it at the next tick.
    frame_start: Option<Instant>,
    /// The level last written to the pin (`true` = lit).
    lit: Option<bool>,
}

impl<P: OutputPin> Indicator<P> {
    /// An indicator on `pin` (high = lit) with the default timings, showing the primary in force.
    pub fn new(pin: P) -> Self {
        Self::with_timing(pin, Timing::DEFAULT)
    }

    /// The same with other timings.
    pub fn with_timing(pin: P, timing: Timing) -> Self {
        Indicator {
            pin,
            timing,
            active_low: false,
            active: Side::Primary,
            switching: false,
            no_server: false,
            notices: 0,
            frame_start: None,
            lit: None,
        }
    }

    /// For an LED wired so that a low pin lights it.
    pub fn active_low(mut self) -> Self {
        self.active_low = true;
        self.lit = None;
        self
    }

    /// Takes the side in force as the agent reports it (after a resume, say), without an event.
    pub fn set_active(&mut self, side: Side) {
        if self.active != side || self.switching {
            self.active = side;
            self.switching = false;
            self.restart();
        }
    }

    /// Takes one event from the agent; events that do not change the LED are ignored.
    pub fn on_event(&mut self, event: &Event) {
        let before = (self.mode(), self.active);
        match *event {
            Event::Switch { .. } => self.switching = true,
            Event::Applied { side, .. } => {
                self.active = side;
                self.switching = false;
                self.no_server = false;
            }
            Event::ApplyFailed { kept, .. } => {
                self.active = kept;
                self.switching = false;
            }
            Event::NoServerReachable => self.no_server = true,
            Event::ServerUp { server } if server == self.active => self.no_server = false,
            _ => {}
        }
        if before != (self.mode(), self.active) {
            self.restart();
        }
    }

    /// The number of maintenance notices that affect the phone (the bell number).
    pub fn set_notice_count(&mut self, count: u16) {
        if count != self.notices {
            self.notices = count;
            self.restart();
        }
    }

    /// The notice count last set.
    pub fn notice_count(&self) -> u16 {
        self.notices
    }

    /// The side in force, as far as the events told.
    pub fn active(&self) -> Side {
        self.active
    }

    /// What the side part of the pattern shows now.
    pub fn mode(&self) -> Mode {
        if self.switching {
            Mode::Switching
        } else if self.no_server {
            Mode::NoServer
        } else if self.active == Side::Primary {
            Mode::Primary
        } else {
            Mode::Backup
        }
    }

    /// The length of one frame.
    pub fn frame_len(&self) -> Duration {
        Duration::from_millis(self.runs().map(|(_, ms)| u64::from(ms)).sum())
    }

    /// Whether the LED is lit `offset` into a frame (wrapping round whole frames).
    pub fn lit_at(&self, offset: Duration) -> bool {
        self.locate(offset).0
    }

    /// Sets the pin for `now` and returns when the level next changes: call again then (or sooner, after
    /// new events). The pin is written only when the level changes. A change of mode or notice count
    /// restarts the frame at the next tick.
    pub fn tick(&mut self, now: Instant) -> Result<Instant, P::Error> {
        let start = *self.frame_start.get_or_insert(now);
        let (lit, until) = self.locate(now - start);
        self.write(lit)?;
        Ok(now.saturating_add(until))
    }

    /// Plays one whole frame from its start, blocking with `delay` (one `delay_ms` per run of equal
    /// level), and leaves the LED at the frame's last level. The next [`Indicator::tick`] starts a new
    /// frame.
    pub fn play_frame<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), P::Error> {
        for (lit, ms) in self.runs() {
            self.write(lit)?;
            delay.delay_ms(ms);
        }
        self.restart();
        Ok(())
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }

    fn restart(&mut self) {
        self.frame_start = None;
    }

    fn write(&mut self, lit: bool) -> Result<(), P::Error> {
        if self.lit != Some(lit) {
            if lit != self.active_low {
                self.pin.set_high()?;
            } else {
                self.pin.set_low()?;
            }
            self.lit = Some(lit);
        }
        Ok(())
    }

    /// The level `offset` into the frame (wrapping), and how long it lasts from there.
    fn locate(&self, offset: Duration) -> (bool, Duration) {
        let frame = self.frame_len().as_micros();
        if frame == 0 {
            // Every part left out: the side's steady level, for good.
            return (self.mode() == Mode::Primary, Duration::MAX);
        }
        let mut at = offset.as_micros() % frame;
        for (lit, ms) in self.runs() {
            let len = u64::from(ms).saturating_mul(1000);
            if at < len {
                return (lit, Duration::from_micros(len - at));
            }
            at -= len;
        }
        (false, Duration::from_micros(1))
    }

    /// The frame as runs of one level, adjacent runs of the same level merged, none empty.
    fn runs(&self) -> Runs {
        Runs { raw: RawSegments::new(self.mode(), self.notices, self.timing), peeked: None }
    }
}

/// Blinks `count` times on `pin` (high = lit), `on_ms` on and `off_ms` off each, blocking with `delay`.
pub fn blink_count<P: OutputPin, D: DelayNs>(
    pin: &mut P,
    delay: &mut D,
    count: u8,
    on_ms: u32,
    off_ms: u32,
) -> Result<(), P::Error> {
    for _ in 0..count {
        pin.set_high()?;
        delay.delay_ms(on_ms);
        pin.set_low()?;
        delay.delay_ms(off_ms);
    }
    Ok(())
}

/// The segments of one frame in order, before merging.
#[derive(Debug, Clone, Copy)]
struct RawSegments {
    timing: Timing,
    mode: Mode,
    pulses: u32,
    /// The next segment's index.
    i: u32,
}

impl RawSegments {
    fn new(mode: Mode, notices: u16, timing: Timing) -> Self {
        let pulses = u32::from(notices.min(u16::from(timing.max_pulses)));
        RawSegments { timing, mode, pulses, i: 0 }
    }

    /// Segments in the notice part: gap, (pulse, pause) per notice, gap; none without notices.
    fn notice_len(&self) -> u32 {
        if self.pulses == 0 {
            0
        } else {
            2 + 2 * self.pulses
        }
    }

    fn side_len(&self) -> u32 {
        let t = &self.timing;
        match self.mode {
            Mode::Primary => 1,
            Mode::Backup | Mode::NoServer => 2,
            Mode::Switching => {
                if t.fast_ms == 0 {
                    0
                } else {
                    2 * (t.period_ms / t.fast_ms.saturating_mul(2)).max(1)
                }
            }
        }
    }

    fn segment(&self, i: u32) -> Option<(bool, u32)> {
        let t = &self.timing;
        let n = self.notice_len();
        if i < n {
            return Some(if i == 0 || i == n - 1 {
                (false, t.gap_ms)
            } else if (i - 1) % 2 == 0 {
                (true, t.pulse_on_ms)
            } else {
                (false, t.pulse_off_ms)
            });
        }
        let j = i - n;
        if j >= self.side_len() {
            return None;
        }
        let rest = |on: u32| t.period_ms.saturating_sub(on);
        Some(match self.mode {
            Mode::Primary => (true, t.period_ms),
            Mode::Backup if j == 0 => (true, t.slow_on_ms.min(t.period_ms)),
            Mode::Backup => (false, rest(t.slow_on_ms)),
            Mode::NoServer if j == 0 => (true, t.flash_ms.min(t.period_ms)),
            Mode::NoServer => (false, rest(t.flash_ms)),
            Mode::Switching => (j % 2 == 0, t.fast_ms),
        })
    }
}

impl Iterator for RawSegments {
    type Item = (bool, u32);
    fn next(&mut self) -> Option<(bool, u32)> {
        let s = self.segment(self.i)?;
        self.i += 1;
        Some(s)
    }
}

/// Merges adjacent segments of one level and drops empty ones.
#[derive(Debug, Clone, Copy)]
struct Runs {
    raw: RawSegments,
    peeked: Option<(bool, u32)>,
}

impl Iterator for Runs {
    type Item = (bool, u32);
    fn next(&mut self) -> Option<(bool, u32)> {
        let mut cur = match self.peeked.take() {
            Some(s) => s,
            None => loop {
                let s = self.raw.next()?;
                if s.1 != 0 {
                    break s;
                }
            },
        };
        for s in self.raw.by_ref() {
            if s.1 == 0 {
                continue;
            }
            if s.0 == cur.0 {
                cur.1 = cur.1.saturating_add(s.1);
            } else {
                self.peeked = Some(s);
                break;
            }
        }
        Some(cur)
    }
}
