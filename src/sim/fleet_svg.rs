//! The fleet picture (`target/lab/fleet.svg` of `lab --phones N`): how many phones are on each side
//! over the run, with the servers' faults shaded, and the distributions of fault-to-switch and
//! failback times, so a failback spread shows at a glance.

use std::fmt::Write;

use super::model::Health;
use super::summary::Tracker;
use crate::core::{Duration, Instant, Side};

const W: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const CHART_H: f64 = 200.0;
const HIST_H: f64 = 140.0;
/// Bars of each histogram.
const BINS: usize = 40;

/// The picture of a fleet run of `phones` phones lasting `duration`, named `name`.
pub fn fleet_svg(name: &str, tracker: &Tracker, phones: usize, duration: Duration) -> String {
    let plot = W - LEFT - RIGHT;
    let span = duration.as_micros().max(1) as f64;
    let x = |t: Instant| LEFT + plot * (t.as_micros() as f64 / span).min(1.0);
    let top = 60.0;
    let y = |n: u32| top + CHART_H - CHART_H * f64::from(n) / phones.max(1) as f64;
    let hist_top = top + CHART_H + 70.0;
    let h = hist_top + 2.0 * (HIST_H + 60.0) + 10.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(o, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">sip-failover lab fleet: {} ({phones} phones)</text>"#,
        esc(name)
    );
    let _ = writeln!(
        o,
        r##"<rect x="{LEFT}" y="{top}" width="{plot}" height="{CHART_H}" fill="#f6f8fa" stroke="#d0d7de"/>"##
    );
    // The servers' faults, shaded over the whole chart (primary above, backup below).
    let mut open: [Option<Instant>; 2] = [None, None];
    let end = Instant::ZERO.saturating_add(duration);
    let shade = |o: &mut String, s: Side, from: Instant, to: Instant| {
        let (x0, x1) = (x(from), x(to));
        let half = CHART_H / 2.0;
        let y0 = top + s.index() as f64 * half;
        let _ = writeln!(
            o,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{half:.1}" fill="#ff8182" fill-opacity="0.25"><title>{s} faulty</title></rect>"##,
            (x1 - x0).max(1.0)
        );
    };
    for f in &tracker.faults {
        let i = f.server.index();
        let faulty = f.health != Health::Normal;
        match (open[i], faulty) {
            (None, true) => open[i] = Some(f.at),
            (Some(from), false) => {
                shade(&mut o, f.server, from, f.at);
                open[i] = None;
            }
            _ => {}
        }
    }
    for s in Side::BOTH {
        if let Some(from) = open[s.index()] {
            shade(&mut o, s, from, end);
        }
    }
    // Phones on each side: step lines from the series of phones on the backup.
    let series = tracker.backup_series();
    for (side, colour) in [(Side::Primary, "#0969da"), (Side::Backup, "#bf3989")] {
        let count = |on_backup: u32| match side {
            Side::Primary => u32::try_from(phones).unwrap_or(u32::MAX).saturating_sub(on_backup),
            Side::Backup => on_backup,
        };
        let mut d = format!("M{:.1},{:.1}", x(Instant::ZERO), y(count(0)));
        let mut last = count(0);
        for &(t, on_backup) in series {
            let n = count(on_backup);
            let _ = write!(d, " L{:.1},{:.1} L{:.1},{:.1}", x(t), y(last), x(t), y(n));
            last = n;
        }
        let _ = write!(d, " L{:.1},{:.1}", x(end), y(last));
        let _ = writeln!(o, r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>"#);
    }
    // Axes and legend.
    let _ = writeln!(o, r#"<text x="{}" y="{}" text-anchor="end">{phones}</text>"#, LEFT - 6.0, top + 4.0);
    let _ = writeln!(o, r#"<text x="{}" y="{}" text-anchor="end">0</text>"#, LEFT - 6.0, top + CHART_H + 4.0);
    let secs = duration.as_micros() as f64 / 1e6;
    let step = tick_step(secs);
    let mut s = 0.0;
    while s <= secs + 1e-9 {
        let xs = LEFT + plot * (s / secs.max(1e-9));
        let _ = writeln!(
            o,
            r#"<text x="{xs:.1}" y="{}" text-anchor="middle" font-size="10">{s:.0}s</text>"#,
            top + CHART_H + 14.0
        );
        s += step;
    }
    let _ = writeln!(
        o,
        r##"<text x="{LEFT}" y="{}"><tspan fill="#0969da">&#9632; on the primary</tspan>  <tspan fill="#bf3989">&#9632; on the backup</tspan>  <tspan fill="#cf222e">&#9632; server faulty</tspan></text>"##,
        top + CHART_H + 34.0
    );
    // The distributions.
    let fault_to_switch: Vec<Duration> = tracker.outages.iter().filter_map(|o| o.fault_to_switch()).collect();
    let failback: Vec<Duration> = tracker.outages.iter().filter_map(|o| o.failback_time()).collect();
    histogram(&mut o, hist_top, "fault to switch (phones)", "#cf222e", &fault_to_switch);
    histogram(&mut o, hist_top + HIST_H + 60.0, "end of fault to failback (phones)", "#1a7f37", &failback);
    o.push_str("</svg>\n");
    o
}

/// A histogram of `values` in [`BINS`] bars from 0 to their maximum, under a title.
fn histogram(o: &mut String, top: f64, title: &str, colour: &str, values: &[Duration]) {
    let plot = W - LEFT - RIGHT;
    let _ = writeln!(o, r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#, top - 8.0, esc(title));
    let _ = writeln!(
        o,
        r##"<rect x="{LEFT}" y="{top}" width="{plot}" height="{HIST_H}" fill="#f6f8fa" stroke="#d0d7de"/>"##
    );
    let Some(max) = values.iter().max().map(|d| d.as_micros().max(1)) else {
        let _ = writeln!(o, r#"<text x="{}" y="{}">none in this run</text>"#, LEFT + 10.0, top + HIST_H / 2.0);
        return;
    };
    let mut bins = [0u32; BINS];
    for v in values {
        let i = ((v.as_micros() as f64 / max as f64) * (BINS as f64 - 1.0)).round() as usize;
        if let Some(b) = bins.get_mut(i.min(BINS - 1)) {
            *b += 1;
        }
    }
    let top_count = bins.iter().copied().max().unwrap_or(1).max(1);
    let bar_w = plot / BINS as f64;
    for (i, n) in bins.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let bh = HIST_H * f64::from(*n) / f64::from(top_count);
        let _ = writeln!(
            o,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{colour}"><title>{n}</title></rect>"#,
            LEFT + i as f64 * bar_w + 1.0,
            top + HIST_H - bh,
            (bar_w - 2.0).max(1.0)
        );
    }
    let max_s = max as f64 / 1e6;
    let _ = writeln!(o, r#"<text x="{LEFT}" y="{}" font-size="10">0 s</text>"#, top + HIST_H + 14.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{max_s:.3} s</text>"#,
        W - RIGHT,
        top + HIST_H + 14.0
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{top_count} phones</text>"#,
        LEFT - 6.0,
        top + 10.0
    );
}

fn tick_step(secs: f64) -> f64 {
    [1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0, 600.0, 3600.0].into_iter().find(|s| secs / s <= 14.0).unwrap_or(7200.0)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
