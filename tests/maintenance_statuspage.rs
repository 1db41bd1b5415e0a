//! Status-page documents (the public Statuspage v2 schema) read into notices: fixtures shaped like
//! the API's `upcoming.json` and `active.json`, the cluster match by component name or id, the
//! status and impact rules, and documents that must be refused whole with an error saying where.

use jiff::Timestamp;
use sip_failover::maintenance::notice::{Impact, NoticeFeed};
use sip_failover::maintenance::statuspage::{self, merge, notices};

const UPCOMING: &str = include_str!("fixtures/statuspage/upcoming.json");
const ACTIVE: &str = include_str!("fixtures/statuspage/active.json");

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_maintenance_on_the_phones_component_becomes_a_notice() {
    let got = notices(UPCOMING, "https://trust.example/upcoming.json", &["cx-eu-2"]).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(n.id, "w1zdr745wmfy");
    assert_eq!(n.cluster, "cx-eu-2");
    // Offsets are honoured: 03:00-04:00 EDT is 07:00-08:00 UTC.
    assert_eq!((n.start, n.end), (ts("2026-03-15T07:00:00Z"), ts("2026-03-15T08:00:00Z")));
    assert_eq!(n.published, ts("2026-03-11T17:00:00Z"));
    assert_eq!(n.impact, Impact::Minimal);
    assert_eq!(n.title.as_deref(), Some("Version upgrade"));
    // It counts in the bell from its publication until its window ends.
    let feed = NoticeFeed::new(got).unwrap();
    assert_eq!(feed.bell_count(ts("2026-03-11T16:59:59Z"), &["cx-eu-2"]), 0);
    assert_eq!(feed.bell_count(ts("2026-03-11T17:00:00Z"), &["cx-eu-2"]), 1);
    assert_eq!(feed.bell_count(ts("2026-03-15T08:00:00Z"), &["cx-eu-2"]), 0);
}

#[test]
fn components_match_by_id_or_name_and_completed_maintenances_are_gone() {
    let by_id = notices(UPCOMING, "u", &["cx-us-1"]).unwrap();
    assert_eq!(by_id.iter().map(|n| (n.id.as_str(), n.impact)).collect::<Vec<_>>(), [("k7sdyq3d1yfq", Impact::High)]);
    let by_other_id = notices(UPCOMING, "u", &["B13YZ5G2CW10"]).unwrap();
    assert_eq!(by_other_id.len(), 1, "the component id, compared ignoring case");
    // The maintenance touching both of a phone's clusters gives one notice for each.
    let both = notices(UPCOMING, "u", &["cx-eu-2", "portal"]).unwrap();
    let ids: Vec<_> = both.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["w1zdr745wmfy@cx-eu-2", "w1zdr745wmfy@portal"]);
    NoticeFeed::new(both).unwrap();
    assert!(notices(UPCOMING, "u", &["cx-elsewhere"]).unwrap().is_empty());
}

#[test]
fn a_maintenance_in_both_documents_is_one_notice() {
    let up = notices(UPCOMING, "u", &["cx-eu-2"]).unwrap();
    let active = notices(ACTIVE, "a", &["cx-eu-2"]).unwrap();
    let all = merge(up, active);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].published, ts("2026-03-11T17:00:00Z"));
}

#[test]
fn bad_documents_are_refused_whole_saying_where() {
    let cases: &[(&str, &str)] = &[
        ("{\"scheduled_maintenances\": [", "s.json:1:"),
        ("[]", "s.json:1:2: invalid length 0, expected struct Document with 1 element"),
        ("{}", "missing field `scheduled_maintenances`"),
        (
            r#"{"scheduled_maintenances":[{"id":"a","status":"scheduled","scheduled_for":"2026-03-15T08:00:00Z","scheduled_until":"2026-03-15T07:00:00Z","components":[]}]}"#,
            "s.json: scheduled_maintenances[0].scheduled_until: must be after `scheduled_for`",
        ),
        (
            r#"{"scheduled_maintenances":[{"id":"a","scheduled_until":"2026-03-15T07:00:00Z"}]}"#,
            "s.json: scheduled_maintenances[0].scheduled_for: missing",
        ),
        (
            r#"{"scheduled_maintenances":[{"id":"a","scheduled_for":"tomorrow","scheduled_until":"2026-03-15T07:00:00Z"}]}"#,
            "scheduled_maintenances[0].scheduled_for: expected an ISO 8601 time with an offset, found \"tomorrow\"",
        ),
        (
            r#"{"scheduled_maintenances":[{"scheduled_for":"2026-03-15T06:00:00Z","scheduled_until":"2026-03-15T07:00:00Z"}]}"#,
            "scheduled_maintenances[0].id: missing",
        ),
        (
            r#"{"scheduled_maintenances":[{"id":"a","status":"postponed","scheduled_for":"2026-03-15T06:00:00Z","scheduled_until":"2026-03-15T07:00:00Z"}]}"#,
            "scheduled_maintenances[0].status: `postponed` is not one of scheduled, in_progress, verifying, completed",
        ),
        (
            r#"{"scheduled_maintenances":[{"id":"a","impact":"huge","scheduled_for":"2026-03-15T06:00:00Z","scheduled_until":"2026-03-15T07:00:00Z"}]}"#,
            "scheduled_maintenances[0].impact: `huge` is not one of",
        ),
    ];
    for (body, want) in cases {
        let err = notices(body, "s.json", &["cx-eu-2"]).unwrap_err().to_string();
        assert!(err.contains(want), "{body}\n got: {err}\nwant: {want}");
        assert!(!err.contains(" at line "), "the place is said once: {err}");
    }
    let huge = " ".repeat(statuspage::MAX_BODY + 1);
    let err = notices(&huge, "s.json", &["x"]).unwrap_err().to_string();
    assert!(err.contains("is outside at most 1048576 bytes"), "{err}");
}

#[test]
fn notices_written_as_a_status_page_read_back_the_same() {
    let feed = notices(UPCOMING, "u", &["cx-eu-2", "cx-us-1"]).unwrap();
    let page = statuspage::to_json(&feed, "lab");
    let again = notices(&page, "lab", &["cx-eu-2", "cx-us-1"]).unwrap();
    assert_eq!(again, feed);
}
