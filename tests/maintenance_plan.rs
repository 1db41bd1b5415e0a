//! Operator planning: slots by policy in US Eastern time, Monday pre-notices, weekly rollout.

use jiff::Timestamp;
use sip_failover::maintenance::notice::{Impact, NoticeFeed};
use sip_failover::maintenance::plan::{Intervention, PlanError, Slot};
use sip_failover::maintenance::plan_feed;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

const CLUSTERS: [&str; 3] = ["cx-eu-1", "cx-eu-2", "cx-us-1"];

fn intervention(minutes: u32, impact: Impact) -> Intervention {
    Intervention {
        duration_minutes: minutes,
        impact,
        clusters: CLUSTERS.iter().map(|c| (*c).to_owned()).collect(),
        not_before: ts("2024-03-01T00:00:00Z"),
        id_prefix: "CX-2024-031".into(),
        title: "Platform upgrade".into(),
    }
}

/// (id, cluster, start, end, published) of every notice.
fn rows(feed: &NoticeFeed) -> Vec<(String, String, String, String, String)> {
    feed.notices()
        .iter()
        .map(|n| (n.id.clone(), n.cluster.clone(), n.start.to_string(), n.end.to_string(), n.published.to_string()))
        .collect()
}

fn row(id: &str, cluster: &str, start: &str, end: &str, published: &str) -> (String, String, String, String, String) {
    (id.into(), cluster.into(), start.into(), end.into(), published.into())
}

#[test]
fn short_minimal_intervention_goes_on_friday_0500() {
    let i = intervention(45, Impact::Minimal);
    assert_eq!(i.slot(), Ok(Slot::ShortFriday));
    let feed = i.plan().unwrap();
    // Not before Thursday 2024-02-29 19:00 EST: Monday 2024-02-26 is too early, so the first pre-notice
    // is Monday 2024-03-04 09:00 EST and the first slot Friday 2024-03-08 05:00 EST. The US changes to
    // EDT on 2024-03-10, so the later clusters are an hour earlier in UTC.
    assert_eq!(
        rows(&feed),
        vec![
            row("CX-2024-031-1", "cx-eu-1", "2024-03-08T10:00:00Z", "2024-03-08T10:45:00Z", "2024-03-04T14:00:00Z"),
            row("CX-2024-031-2", "cx-eu-2", "2024-03-15T09:00:00Z", "2024-03-15T09:45:00Z", "2024-03-11T13:00:00Z"),
            row("CX-2024-031-3", "cx-us-1", "2024-03-22T09:00:00Z", "2024-03-22T09:45:00Z", "2024-03-18T13:00:00Z"),
        ]
    );
    assert!(feed.notices().iter().all(|n| n.impact == Impact::Minimal));
    assert!(feed.notices().iter().all(|n| n.title.as_deref() == Some("Platform upgrade")));
}

#[test]
fn long_minimal_intervention_goes_on_friday_0200() {
    let i = intervention(180, Impact::Minimal);
    assert_eq!(i.slot(), Ok(Slot::LongFriday));
    assert_eq!(
        rows(&i.plan().unwrap()),
        vec![
            row("CX-2024-031-1", "cx-eu-1", "2024-03-08T07:00:00Z", "2024-03-08T10:00:00Z", "2024-03-04T14:00:00Z"),
            row("CX-2024-031-2", "cx-eu-2", "2024-03-15T06:00:00Z", "2024-03-15T09:00:00Z", "2024-03-11T13:00:00Z"),
            row("CX-2024-031-3", "cx-us-1", "2024-03-22T06:00:00Z", "2024-03-22T09:00:00Z", "2024-03-18T13:00:00Z"),
        ]
    );
}

#[test]
fn high_impact_intervention_goes_on_sunday_0200() {
    let i = intervention(180, Impact::High);
    assert_eq!(i.slot(), Ok(Slot::HighImpactSunday));
    // The first Sunday is 2024-03-10, the US spring-forward day: 02:00 does not exist, so the slot
    // starts at 03:00 EDT (07:00Z) and the three hours end at 06:00 EDT.
    assert_eq!(
        rows(&i.plan().unwrap()),
        vec![
            row("CX-2024-031-1", "cx-eu-1", "2024-03-10T07:00:00Z", "2024-03-10T10:00:00Z", "2024-03-04T14:00:00Z"),
            row("CX-2024-031-2", "cx-eu-2", "2024-03-17T06:00:00Z", "2024-03-17T09:00:00Z", "2024-03-11T13:00:00Z"),
            row("CX-2024-031-3", "cx-us-1", "2024-03-24T06:00:00Z", "2024-03-24T09:00:00Z", "2024-03-18T13:00:00Z"),
        ]
    );
}

#[test]
fn rollout_across_the_autumn_change() {
    let mut i = intervention(60, Impact::High);
    i.not_before = ts("2024-10-21T00:00:00Z");
    // Sundays 02:00: Oct 27 (EDT), Nov 3 and Nov 10 (EST; 02:00 is after the fold).
    assert_eq!(
        rows(&i.plan().unwrap()),
        vec![
            row("CX-2024-031-1", "cx-eu-1", "2024-10-27T06:00:00Z", "2024-10-27T07:00:00Z", "2024-10-21T13:00:00Z"),
            row("CX-2024-031-2", "cx-eu-2", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z", "2024-10-28T13:00:00Z"),
            row("CX-2024-031-3", "cx-us-1", "2024-11-10T07:00:00Z", "2024-11-10T08:00:00Z", "2024-11-04T14:00:00Z"),
        ]
    );
}

#[test]
fn pre_notice_may_be_exactly_at_not_before() {
    let mut i = intervention(30, Impact::None);
    i.not_before = ts("2024-03-04T14:00:00Z");
    assert_eq!(i.plan().unwrap().notices()[0].start, ts("2024-03-08T10:00:00Z"));
    i.not_before = ts("2024-03-04T14:00:01Z");
    assert_eq!(i.plan().unwrap().notices()[0].start, ts("2024-03-15T09:00:00Z"));
}

#[test]
fn slot_boundaries() {
    assert_eq!(intervention(60, Impact::Minimal).slot(), Ok(Slot::ShortFriday));
    assert_eq!(intervention(61, Impact::Minimal).slot(), Ok(Slot::LongFriday));
    assert_eq!(intervention(240, Impact::High).slot(), Ok(Slot::HighImpactSunday));
    assert_eq!(
        intervention(241, Impact::High).plan(),
        Err(PlanError::TooLong { minutes: 241, max: 240, impact: Impact::High })
    );
    assert_eq!(intervention(0, Impact::Minimal).plan(), Err(PlanError::ZeroDuration));
    let e = intervention(300, Impact::High).plan().unwrap_err();
    assert_eq!(e.to_string(), "a high-impact intervention of 300 minutes is too long: at most 240 minutes");
}

#[test]
fn cluster_and_prefix_errors() {
    let mut i = intervention(45, Impact::Minimal);
    i.clusters.clear();
    assert_eq!(i.plan(), Err(PlanError::NoClusters));
    i.clusters = vec!["cx-eu-1".into(), " ".into()];
    assert_eq!(i.plan(), Err(PlanError::EmptyCluster { position: 2 }));
    i.clusters = vec!["cx-eu-1".into(), "CX-EU-1".into()];
    assert_eq!(i.plan(), Err(PlanError::DuplicateCluster { name: "CX-EU-1".into() }));
    let mut i = intervention(45, Impact::Minimal);
    i.id_prefix = String::new();
    assert_eq!(i.plan(), Err(PlanError::EmptyIdPrefix));
}

#[test]
fn planned_feed_round_trips_and_rings_the_bell() {
    let feed = intervention(180, Impact::High).plan().unwrap();
    let text = feed.to_toml();
    assert_eq!(NoticeFeed::parse(&text, "plan.toml").unwrap(), feed);
    // The second cluster's phones see the notice from its Monday until the end of its Sunday window.
    let phone = ["cx-eu-2"];
    assert_eq!(feed.bell_count(ts("2024-03-11T12:59:59Z"), &phone), 0);
    assert_eq!(feed.bell_count(ts("2024-03-11T13:00:00Z"), &phone), 1);
    assert_eq!(feed.bell_count(ts("2024-03-17T09:00:00Z"), &phone), 0);
    assert_eq!(feed.next_change(ts("2024-03-01T00:00:00Z"), &phone), Some(ts("2024-03-11T13:00:00Z")));
}

#[test]
fn plan_feed_for_the_command_line() {
    let feed = plan_feed(45, "minimal", &CLUSTERS, "2024-03-01T00:00:00Z", "CX-2024-031", "Platform upgrade").unwrap();
    assert_eq!(feed, intervention(45, Impact::Minimal).plan().unwrap());
    // A bare date is midnight US Eastern (05:00Z): the same plan.
    assert_eq!(plan_feed(45, "Minimal", &CLUSTERS, "2024-03-01", "CX-2024-031", "Platform upgrade").unwrap(), feed);
    // A local date and time is US Eastern too: Monday 2024-03-04 09:00 EST is allowed, 09:01 is not.
    let first = |nb: &str| plan_feed(45, "none", &["a"], nb, "N", "").unwrap().notices()[0].clone();
    assert_eq!(first("2024-03-04T09:00").start, ts("2024-03-08T10:00:00Z"));
    assert_eq!(first("2024-03-04T09:01").start, ts("2024-03-15T09:00:00Z"));
    assert_eq!(first("2024-03-04T09:00").title, None);
    assert_eq!(first("2024-03-04T09:00").id, "N-1");

    let e = plan_feed(45, "medium", &CLUSTERS, "2024-03-01", "X", "").unwrap_err();
    assert!(matches!(e, PlanError::Impact(_)));
    assert!(e.to_string().contains("medium"));
    let e = plan_feed(45, "high", &CLUSTERS, "March 1st", "X", "").unwrap_err();
    assert_eq!(e, PlanError::BadNotBefore { text: "March 1st".into() });
    assert!(e.to_string().contains("March 1st"));
    assert_eq!(plan_feed(45, "high", &CLUSTERS, "9999-12-30T00:00:00Z", "X", ""), Err(PlanError::OutOfRange));
}
