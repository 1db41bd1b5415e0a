//! The fleet picture of `lab --phones N`: on virtual time, a fleet whose primary is black-holed moves
//! every phone to the backup and back; the series of phones on the backup climbs to the whole fleet
//! and falls to zero, and the picture draws both sides and both distributions.

use sip_failover::core::Instant;
use sip_failover::sim::fleet_svg::fleet_svg;
use sip_failover::sim::r#virtual::{run, VirtualOptions};
use sip_failover::sim::scenario::shipped;

#[test]
fn the_fleet_moves_to_the_backup_and_back_and_the_picture_shows_it() {
    let scenario = shipped("primary-blackholed").unwrap().unwrap();
    let phones = 300;
    let opts = VirtualOptions { phones, seed: 3, extend: scenario.phone.interval, ..Default::default() };
    let out = run(&scenario, &opts, &mut |_| {}).unwrap();
    let series = out.tracker.backup_series();
    let peak = series.iter().map(|p| p.1).max().unwrap();
    assert_eq!(peak as usize, phones, "every phone failed over");
    assert_eq!(series.last().unwrap().1, 0, "and every phone came back");
    assert!(series.windows(2).all(|w| w[1].0 > w[0].0), "one point per instant, in order");
    // Points are at least 100 ms apart: a fleet's series stays small.
    assert!(series.windows(2).all(|w| (w[1].0 - w[0].0).as_micros() >= 100_000));
    let failovers = out.tracker.outages.iter().filter(|o| o.fault_to_switch().is_some()).count();
    assert_eq!(failovers, phones);

    let svg = fleet_svg(&scenario.name, &out.tracker, phones, out.end - Instant::ZERO);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("(300 phones)"), "{svg}");
    assert_eq!(svg.matches("<path ").count(), 2, "a line for each side");
    assert!(svg.contains("fault to switch (phones)") && svg.contains("end of fault to failback (phones)"));
    // The two histograms hold every phone once each.
    let bars: Vec<u32> =
        svg.split("<title>").skip(1).filter_map(|t| t.split("</title>").next()?.parse().ok()).collect();
    assert_eq!(bars.iter().sum::<u32>() as usize, 2 * phones, "{bars:?}");
    assert!(svg.contains("primary faulty"), "the black-hole is shaded");
}
