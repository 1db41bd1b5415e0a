//! Maintenance calendars (RFC 5545) read into notices: weekly series in Europe/London and
//! America/New_York across both clock changes of 2026 checked to the exact UTC instant (the spring
//! gap moves a start later, the autumn fold takes the earlier instant, DTEND gives an exact length),
//! EXDATE, COUNT, UNTIL, a monthly first Friday, a cancelled event, the cluster named by SUMMARY or
//! CATEGORIES, and calendars that must be refused whole with an error saying where.

use jiff::Timestamp;
use sip_failover::maintenance::icalendar::{self, notices, to_ical, Horizon, MAX_BODY};
use sip_failover::maintenance::notice::{Impact, Notice, NoticeFeed};

const LONDON: &str = include_str!("fixtures/icalendar/london.ics");
const NEW_YORK: &str = include_str!("fixtures/icalendar/new_york.ics");

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn horizon(from: &str, to: &str) -> Horizon {
    Horizon { from: ts(from), to: ts(to) }
}

/// (id, start, end) in UTC.
fn windows(n: &[Notice]) -> Vec<(String, String, String)> {
    n.iter().map(|n| (n.id.clone(), n.start.to_string(), n.end.to_string())).collect()
}

fn w(id: &str, start: &str, end: &str) -> (String, String, String) {
    (id.to_owned(), start.to_owned(), end.to_owned())
}

#[test]
fn london_weekends_across_the_spring_gap() {
    let got =
        notices(LONDON, "london.ics", &["cx-eu-2"], horizon("2026-03-27T00:00:00Z", "2026-04-06T00:00:00Z")).unwrap();
    let id = |s: &str| format!("lon-weekend@ops.example/{s}");
    assert_eq!(
        windows(&got),
        [
            // Saturday 28 March, GMT: 01:30-03:30 local is 01:30-03:30 UTC.
            w(&id("20260328T013000Z"), "2026-03-28T01:30:00Z", "2026-03-28T03:30:00Z"),
            // Sunday 29 March: 01:30 does not exist (01:00 GMT -> 02:00 BST); compatible moves it an
            // hour later, to 02:30 BST = 01:30 UTC. DTEND gives two exact hours: 03:30 UTC.
            w(&id("20260329T013000Z"), "2026-03-29T01:30:00Z", "2026-03-29T03:30:00Z"),
            // BST from now on: 01:30 local is 00:30 UTC.
            w(&id("20260404T003000Z"), "2026-04-04T00:30:00Z", "2026-04-04T02:30:00Z"),
            w(&id("20260405T003000Z"), "2026-04-05T00:30:00Z", "2026-04-05T02:30:00Z"),
        ]
    );
    let first = &got[0];
    assert_eq!(first.cluster, "cx-eu-2");
    assert_eq!(first.title.as_deref(), Some("cx-eu-2: weekend platform upgrade, rolling"));
    assert_eq!(first.impact, Impact::Minimal);
    // Published no earlier than the end of the occurrence before (Sunday 22 March, 03:30 UTC), so the
    // bell counts the series' next window only.
    assert_eq!(first.published, ts("2026-03-22T03:30:00Z"));
    assert_eq!(got[1].published, ts("2026-03-28T03:30:00Z"));
    let feed = NoticeFeed::new(got).unwrap();
    assert_eq!(feed.bell_count(ts("2026-03-28T04:00:00Z"), &["cx-eu-2"]), 1);
}

#[test]
fn london_weekends_across_the_autumn_fold() {
    let got =
        notices(LONDON, "london.ics", &["cx-eu-2"], horizon("2026-10-24T00:00:00Z", "2026-11-01T00:00:00Z")).unwrap();
    let id = |s: &str| format!("lon-weekend@ops.example/{s}");
    assert_eq!(
        windows(&got),
        [
            w(&id("20261024T003000Z"), "2026-10-24T00:30:00Z", "2026-10-24T02:30:00Z"),
            // Sunday 25 October: 01:30 happens twice (02:00 BST -> 01:00 GMT); compatible takes the
            // earlier, BST, 00:30 UTC; two exact hours later is 02:30 UTC (02:30 GMT on the wall).
            w(&id("20261025T003000Z"), "2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z"),
            // GMT again.
            w(&id("20261031T013000Z"), "2026-10-31T01:30:00Z", "2026-10-31T03:30:00Z"),
        ]
    );
}

#[test]
fn new_york_sundays_with_an_exdate_and_both_changes() {
    let got =
        notices(NEW_YORK, "ny.ics", &["cx-us-1"], horizon("2026-02-28T00:00:00Z", "2026-03-29T00:00:00Z")).unwrap();
    let sundays: Vec<_> = windows(&got).into_iter().filter(|(id, ..)| id.starts_with("nyc-sunday/")).collect();
    assert_eq!(
        sundays,
        [
            w("nyc-sunday/20260301T063000Z", "2026-03-01T06:30:00Z", "2026-03-01T08:30:00Z"),
            // 8 March: 01:30 EST is before the 02:00 gap; the window crosses it and still lasts two
            // exact hours (to 04:30 EDT on the wall).
            w("nyc-sunday/20260308T063000Z", "2026-03-08T06:30:00Z", "2026-03-08T08:30:00Z"),
            // 15 March is the EXDATE.
            w("nyc-sunday/20260322T053000Z", "2026-03-22T05:30:00Z", "2026-03-22T07:30:00Z"),
        ]
    );
    // Matched by CATEGORIES (case ignored); PRIORITY 3 is high.
    assert!(got.iter().all(|n| n.cluster == "cx-us-1"));
    assert_eq!(got.iter().find(|n| n.id.starts_with("nyc-sunday/")).unwrap().impact, Impact::High);

    // The autumn fold: 1 November 01:30 is taken in EDT (05:30 UTC); UNTIL (9 November) ends the series.
    let got =
        notices(NEW_YORK, "ny.ics", &["cx-us-1"], horizon("2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z")).unwrap();
    assert_eq!(
        windows(&got),
        [
            w("nyc-sunday/20261101T053000Z", "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z"),
            w("nyc-sunday/20261108T063000Z", "2026-11-08T06:30:00Z", "2026-11-08T08:30:00Z"),
        ]
    );
}

#[test]
fn count_stops_a_series_and_a_duration_starting_in_the_gap_moves_later() {
    let got =
        notices(NEW_YORK, "ny.ics", &["cx-us-1"], horizon("2026-02-28T00:00:00Z", "2026-06-01T00:00:00Z")).unwrap();
    let gap: Vec<_> = windows(&got).into_iter().filter(|(id, ..)| id.starts_with("nyc-gap/")).collect();
    assert_eq!(
        gap,
        [
            w("nyc-gap/20260301T073000Z", "2026-03-01T07:30:00Z", "2026-03-01T09:30:00Z"),
            // 02:30 on 8 March does not exist in New York: 03:30 EDT.
            w("nyc-gap/20260308T073000Z", "2026-03-08T07:30:00Z", "2026-03-08T09:30:00Z"),
            w("nyc-gap/20260315T063000Z", "2026-03-15T06:30:00Z", "2026-03-15T08:30:00Z"),
            // COUNT=3: nothing after.
        ]
    );
}

#[test]
fn the_first_friday_until_june_from_x_impact() {
    let got =
        notices(NEW_YORK, "ny.ics", &["cx-us-1"], horizon("2025-12-01T00:00:00Z", "2026-12-31T00:00:00Z")).unwrap();
    let fridays: Vec<_> = got.iter().filter(|n| n.id.starts_with("nyc-first-friday/")).collect();
    let starts: Vec<String> = fridays.iter().map(|n| n.start.to_string()).collect();
    // 22:00 New York on the first Friday: EST (+5 h) until March, EDT (+4 h) from April; UNTIL is
    // 1 June, so 5 June is not one.
    assert_eq!(
        starts,
        [
            "2026-01-03T03:00:00Z",
            "2026-02-07T03:00:00Z",
            "2026-03-07T03:00:00Z",
            "2026-04-04T02:00:00Z",
            "2026-05-02T02:00:00Z"
        ]
    );
    assert!(fridays.iter().all(|n| n.impact == Impact::High && n.end.duration_since(n.start).as_hours() == 4));
    // The cluster as a word of the SUMMARY; the cancelled event and cx-us-10's give nothing.
    assert!(!got.iter().any(|n| n.id.starts_with("nyc-cancelled") || n.id.starts_with("other-cluster")));
    let other =
        notices(NEW_YORK, "ny.ics", &["cx-us-10"], horizon("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")).unwrap();
    assert_eq!(windows(&other), [w("other-cluster", "2026-03-10T15:00:00Z", "2026-03-10T16:00:00Z")]);
}

#[test]
fn an_event_for_two_of_the_phones_clusters_gives_one_notice_each() {
    let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20260310T150000Z\nDURATION:PT1H\n\
                SUMMARY:cx-eu-1 and cx-eu-2 switch swap\nEND:VEVENT\nEND:VCALENDAR\n";
    let got = notices(text, "t.ics", &["cx-eu-1", "cx-eu-2"], horizon("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"))
        .unwrap();
    assert_eq!(got.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["x@cx-eu-1", "x@cx-eu-2"]);
    // Published at its start when neither CREATED nor DTSTAMP is given.
    assert_eq!(got[0].published, ts("2026-03-10T15:00:00Z"));
    NoticeFeed::new(got).unwrap();
}

#[test]
fn a_moved_occurrence_replaces_its_original() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20260301T010000Z\r\nDTEND:20260301T020000Z\r\n\
                RRULE:FREQ=DAILY;COUNT=3\r\nCATEGORIES:c1\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s\r\n\
                RECURRENCE-ID:20260302T010000Z\r\nDTSTART:20260302T050000Z\r\nDTEND:20260302T060000Z\r\n\
                CATEGORIES:c1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let got = notices(text, "t.ics", &["c1"], horizon("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z")).unwrap();
    assert_eq!(
        windows(&got),
        [
            w("s/20260301T010000Z", "2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"),
            w("s/20260302T010000Z", "2026-03-02T05:00:00Z", "2026-03-02T06:00:00Z"),
            w("s/20260303T010000Z", "2026-03-03T01:00:00Z", "2026-03-03T02:00:00Z"),
        ]
    );
}

#[test]
fn a_moved_occurrence_with_a_rule_of_its_own_is_still_one_occurrence() {
    // Found by the `icalendar` fuzz target: the override's RRULE gave every occurrence the same id.
    let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:s\nDTSTART:20260301T010000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3\n\
                CATEGORIES:c1\nEND:VEVENT\nBEGIN:VEVENT\nUID:s\nRECURRENCE-ID:20260302T010000Z\nDTSTART:20260302T050000Z\n\
                DURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=5\nRDATE:20260310T010000Z\nCATEGORIES:c1\nEND:VEVENT\nEND:VCALENDAR\n";
    let got = notices(text, "t.ics", &["c1"], horizon("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z")).unwrap();
    let ids: Vec<_> = got.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["s/20260301T010000Z", "s/20260302T010000Z", "s/20260303T010000Z"]);
    assert_eq!(got[1].start, ts("2026-03-02T05:00:00Z"));
}

#[test]
fn bad_calendars_are_refused_whole_saying_where() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "unterminated.ics",
            include_str!("fixtures/icalendar/bad/unterminated.ics"),
            "unterminated.ics:8: BEGIN: BEGIN:VEVENT is never ended: the text stops before END:VEVENT",
        ),
        (
            "mismatched_end.ics",
            include_str!("fixtures/icalendar/bad/mismatched_end.ics"),
            "mismatched_end.ics:11: END: END:VCALENDAR where END:VEVENT (begun on line 8) was expected",
        ),
        (
            "bad_dtstart.ics",
            include_str!("fixtures/icalendar/bad/bad_dtstart.ics"),
            "bad_dtstart.ics:6: DTSTART: expected a date-time YYYYMMDDTHHMMSS (with Z for UTC) or a date YYYYMMDD, found \"2026-03-07 01:30\"",
        ),
        (
            // The folded DTEND starts on line 7.
            "end_before_start.ics",
            include_str!("fixtures/icalendar/bad/end_before_start.ics"),
            "end_before_start.ics:7: DTEND: must be after `DTSTART`",
        ),
        (
            "unknown_tzid.ics",
            include_str!("fixtures/icalendar/bad/unknown_tzid.ics"),
            "unknown_tzid.ics:8: DTSTART: expected an IANA time zone name as TZID, such as \"Europe/London\" (VTIMEZONE rules are not read), found \"W. Europe Standard Time\"",
        ),
        (
            "unsupported_freq.ics",
            include_str!("fixtures/icalendar/bad/unsupported_freq.ics"),
            "unsupported_freq.ics:7: RRULE: FREQ=SECONDLY is not supported: FREQ must be DAILY, WEEKLY or MONTHLY",
        ),
        (
            "unsupported_bysetpos.ics",
            include_str!("fixtures/icalendar/bad/unsupported_bysetpos.ics"),
            "unsupported_bysetpos.ics:7: RRULE: BYSETPOS is not supported",
        ),
        (
            "not_a_content_line.ics",
            include_str!("fixtures/icalendar/bad/not_a_content_line.ics"),
            "not_a_content_line.ics:7: expected a content line NAME[;PARAM=VALUE]:VALUE, found \"this line has no colon\"",
        ),
        ("empty.ics", "", "empty.ics:1: no BEGIN:VCALENDAR: not an iCalendar text"),
        ("json.ics", "{\"scheduled_maintenances\": []}", "json.ics:1: expected a content line"),
        (
            "no_end.ics",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20260307T013000Z\nEND:VEVENT\nEND:VCALENDAR\n",
            "no_end.ics:4: DTSTART: a maintenance window needs DTEND or DURATION",
        ),
        (
            "no_uid.ics",
            "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nDTSTART:20260307T013000Z\nDURATION:PT1H\nEND:VEVENT\nEND:VCALENDAR\n",
            "no_uid.ics:3: UID: missing",
        ),
        (
            "two_uids.ics",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20260307T013000Z\nDURATION:PT1H\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:a\nDTSTART:20260308T013000Z\nDURATION:PT1H\nEND:VEVENT\nEND:VCALENDAR\n",
            "two_uids.ics:8: UID: `a` is given twice (first on line 3)",
        ),
        (
            "spelt_id.ics",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20260307T013000Z\nDURATION:PT1H\nRDATE:20260308T013000Z\nCATEGORIES:cx-eu-2\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:a/20260308T013000Z\nDTSTART:20260308T013000Z\nDURATION:PT1H\nCATEGORIES:cx-eu-2\nEND:VEVENT\nEND:VCALENDAR\n",
            "spelt_id.ics:10: UID: `a/20260308T013000Z` is given twice (first on line 3)",
        ),
        (
            "ordinal.ics",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20260307T013000Z\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;BYDAY=1SA\nEND:VEVENT\nEND:VCALENDAR\n",
            "ordinal.ics:6: RRULE: a BYDAY ordinal is not supported: only with FREQ=MONTHLY",
        ),
    ];
    for (name, text, want) in cases {
        let err = notices(text, name, &["cx-eu-2"], Horizon::around(ts("2026-03-01T00:00:00Z"))).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with(want), "{name}\n got: {shown}\nwant: {want}");
    }
    // A huge body is refused before it is read.
    let huge = format!("BEGIN:VCALENDAR\n{}END:VCALENDAR\n", "X-PAD:0123456789\n".repeat(MAX_BODY / 17 + 1));
    let err = notices(&huge, "huge.ics", &["x"], Horizon::around(ts("2026-03-01T00:00:00Z"))).unwrap_err().to_string();
    assert!(err.starts_with("huge.ics: ") && err.ends_with("bytes is outside at most 1048576 bytes"), "{err}");
}

#[test]
fn a_calendar_file_is_read_with_its_path_in_errors() {
    let dir = std::env::temp_dir().join(format!("ical-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("feed.ics");
    std::fs::write(&path, LONDON).unwrap();
    let got = icalendar::load(&path, &["cx-eu-2"], horizon("2026-03-27T00:00:00Z", "2026-03-29T00:00:00Z")).unwrap();
    assert_eq!(got.len(), 1);
    std::fs::write(&path, &LONDON[..LONDON.find("BEGIN:VALARM").unwrap()]).unwrap();
    let err = icalendar::load(&path, &["cx-eu-2"], Horizon::around(ts("2026-03-01T00:00:00Z"))).unwrap_err();
    assert_eq!(err.path.as_deref(), Some(path.as_path()));
    assert!(
        err.to_string().ends_with("feed.ics:21: BEGIN: BEGIN:VEVENT is never ended: the text stops before END:VEVENT"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn notices_written_as_a_calendar_read_back_the_same() {
    let mut feed =
        notices(NEW_YORK, "ny.ics", &["cx-us-1"], horizon("2026-02-28T00:00:00Z", "2026-06-01T00:00:00Z")).unwrap();
    feed.push(Notice {
        id: "weird, id; with\\ escapes".into(),
        cluster: "cx-us-1".into(),
        start: ts("2026-04-10T10:00:00Z"),
        end: ts("2026-04-10T11:00:00Z"),
        impact: Impact::None,
        published: ts("2026-04-01T00:00:00Z"),
        title: Some(format!("a long title that must be folded, {}", "é".repeat(80))),
    });
    feed.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    let text = to_ical(&feed);
    assert!(text.lines().all(|l| l.len() <= 76), "folded at 75 octets plus CR");
    let again =
        notices(&text, "out.ics", &["cx-us-1"], horizon("2026-02-28T00:00:00Z", "2026-06-01T00:00:00Z")).unwrap();
    assert_eq!(again, feed);
}
