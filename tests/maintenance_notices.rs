//! The notice feed: reading and writing the TOML file, errors with file/line/field, and the bell count.

use jiff::Timestamp;
use sip_failover::files::FileErrorKind;
use sip_failover::maintenance::notice::{Impact, Notice, NoticeFeed};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

const FEED: &str = r#"# Maintenance notices for the lab.
[[notice]]
id = "CX-2024-031"
cluster = "cx-eu-2"
start = "2024-03-15T07:00:00Z"
end = "2024-03-15T08:00:00Z"
impact = "minimal"
published = "2024-03-11T13:00:00Z"
title = "Version upgrade \"7.2\""

[[notice]]
id = "CX-2024-032"
cluster = "cx-us-1"
start = 2024-03-22T06:00:00Z
end = 2024-03-22T09:00:00Z
impact = "high"
published = 2024-03-18T13:00:00Z

[[notice]]
id = "EU-REGION-7"
cluster = "EU"
start = "2024-03-17T04:00:00+02:00"
end = "2024-03-17T06:00:00+02:00"
impact = "none"
published = "2024-03-11T09:00:00Z"
"#;

fn feed() -> NoticeFeed {
    NoticeFeed::parse(FEED, "notices.toml").expect("test feed")
}

fn err(text: &str) -> (FileErrorKind, Option<u32>, Option<String>, String) {
    let e = NoticeFeed::parse(text, "notices.toml").unwrap_err();
    let msg = e.to_string();
    (e.kind, e.line, e.field, msg)
}

fn field(f: &str) -> Option<String> {
    Some(f.to_string())
}

const TIME: &str = "an RFC 3339 time with an offset, such as \"2024-03-15T07:00:00Z\"";

#[test]
fn parses_the_feed() {
    let f = feed();
    assert_eq!(f.len(), 3);
    assert_eq!(
        f.notices()[0],
        Notice {
            id: "CX-2024-031".into(),
            cluster: "cx-eu-2".into(),
            start: ts("2024-03-15T07:00:00Z"),
            end: ts("2024-03-15T08:00:00Z"),
            impact: Impact::Minimal,
            published: ts("2024-03-11T13:00:00Z"),
            title: Some("Version upgrade \"7.2\"".into()),
        }
    );
    // TOML offset date-times work as well as strings.
    assert_eq!(f.notices()[1].start, ts("2024-03-22T06:00:00Z"));
    assert_eq!(f.notices()[1].impact, Impact::High);
    assert_eq!(f.notices()[1].title, None);
    // Offsets are honoured.
    assert_eq!(f.notices()[2].start, ts("2024-03-17T02:00:00Z"));
    assert_eq!(f.notices()[2].impact, Impact::None);
    assert!(NoticeFeed::parse("", "empty.toml").unwrap().is_empty());
    assert!(NoticeFeed::parse("# nothing yet\n", "empty.toml").unwrap().is_empty());
}

#[test]
fn writes_and_reads_back() {
    let f = feed();
    let text = f.to_toml();
    assert_eq!(NoticeFeed::parse(&text, "out.toml").unwrap(), f);
    assert!(text.starts_with(
        "[[notice]]\nid = \"CX-2024-031\"\ncluster = \"cx-eu-2\"\nstart = \"2024-03-15T07:00:00Z\"\n\
         end = \"2024-03-15T08:00:00Z\"\nimpact = \"minimal\"\npublished = \"2024-03-11T13:00:00Z\"\n"
    ));
    assert_eq!(NoticeFeed::default().to_toml(), "");
}

#[test]
fn bad_timestamp_names_file_line_and_field() {
    let text = FEED.replacen("\"2024-03-15T07:00:00Z\"", "\"2024-03-15 7am\"", 1);
    let (kind, line, field, msg) = err(&text);
    assert_eq!(kind, FileErrorKind::Invalid { value: "2024-03-15 7am".into(), expected: TIME.into() });
    assert_eq!(line, Some(5));
    assert_eq!(field, self::field("notice[0].start"));
    assert!(msg.starts_with("notices.toml:5:9: notice[0].start: "), "{msg}");
    assert!(msg.contains("2024-03-15 7am"), "{msg}");
}

#[test]
fn time_without_offset_is_rejected() {
    let text = FEED.replacen("end = 2024-03-22T09:00:00Z", "end = 2024-03-22T09:00:00", 1);
    let (kind, line, field, msg) = err(&text);
    assert!(matches!(kind, FileErrorKind::Invalid { .. }), "{kind:?}");
    assert_eq!((line, field), (Some(15), self::field("notice[1].end")));
    assert!(msg.contains("notices.toml:15"), "{msg}");
}

#[test]
fn structural_errors_have_lines() {
    // Unknown key (a misspelling), with the key meant.
    let (kind, line, field, msg) = err(&FEED.replacen("title =", "titel =", 1));
    assert_eq!(kind, FileErrorKind::UnknownKey { suggestion: Some("title".into()) });
    assert_eq!((line, field), (Some(9), self::field("notice[0].titel")));
    assert_eq!(msg, "notices.toml:9:1: notice[0].titel: unknown key; did you mean `title`?");
    // Missing key: reported at the notice's table.
    let (kind, line, field, msg) = err(&FEED.replacen("impact = \"high\"\n", "", 1));
    assert_eq!(kind, FileErrorKind::MissingKey);
    assert!(line.is_some_and(|l| (11..=17).contains(&l)), "{msg}");
    assert_eq!(field, self::field("notice[1].impact"));
    // Not TOML at all.
    let (kind, line, _, msg) = err("[[notice]]\nid = \"x\"\ncluster = cx\n");
    assert!(matches!(kind, FileErrorKind::Syntax(_)));
    assert_eq!(line, Some(3), "{msg}");
    // A value of the wrong type.
    let (kind, line, field, msg) = err(&FEED.replacen("impact = \"none\"", "impact = 0", 1));
    assert_eq!(kind, FileErrorKind::WrongType { expected: "a string".into(), found: "an integer 0".into() });
    assert_eq!((line, field), (Some(24), self::field("notice[2].impact")));
    assert_eq!(msg, "notices.toml:24:10: notice[2].impact: expected a string, found an integer 0");
    let (kind, _, field, _) = err(&FEED.replacen("end = 2024-03-22T09:00:00Z", "end = 7", 1));
    assert_eq!(kind, FileErrorKind::WrongType { expected: TIME.into(), found: "an integer 7".into() });
    assert_eq!(field, self::field("notice[1].end"));
}

#[test]
fn value_errors_name_the_field() {
    let (kind, line, field, msg) = err(&FEED.replacen("\"minimal\"", "\"medium\"", 1));
    assert!(matches!(kind, FileErrorKind::NotOneOf { ref value, .. } if value == "medium"), "{kind:?}");
    assert_eq!((line, field), (Some(7), self::field("notice[0].impact")));
    assert!(msg.contains("none, minimal, high"), "{msg}");

    let (kind, line, field, _) = err(&FEED.replacen("cluster = \"cx-us-1\"", "cluster = \"  \"", 1));
    assert_eq!((kind, line, field), (FileErrorKind::Empty, Some(13), self::field("notice[1].cluster")));

    let (kind, line, field, _) = err(&FEED.replacen("\"2024-03-15T08:00:00Z\"", "\"2024-03-15T07:00:00Z\"", 1));
    assert_eq!(
        (kind, line, field),
        (FileErrorKind::MustBeAfter { other: "start" }, Some(6), self::field("notice[0].end"))
    );

    let (kind, line, field, msg) =
        err(&FEED.replacen("published = \"2024-03-11T13:00:00Z\"", "published = \"2024-03-15T08:00:01Z\"", 1));
    assert_eq!(
        (kind, line, field),
        (FileErrorKind::MustNotBeAfter { other: "end" }, Some(8), self::field("notice[0].published"))
    );
    assert_eq!(msg, "notices.toml:8:13: notice[0].published: must not be after `end`");

    let (kind, line, field, msg) = err(&FEED.replacen("EU-REGION-7", "cx-2024-031", 1).replacen(
        "id = \"cx-2024-031\"",
        "id = \"CX-2024-031\"",
        1,
    ));
    assert_eq!(kind, FileErrorKind::Duplicate { value: "CX-2024-031".into(), first_line: Some(3) });
    assert_eq!((line, field), (Some(20), self::field("notice[2].id")));
    assert!(msg.contains("first on line 3"), "{msg}");
}

#[test]
fn new_validates_a_list() {
    let mut notices = feed().notices().to_vec();
    assert!(NoticeFeed::new(notices.clone()).is_ok());
    notices[1].end = notices[1].start;
    let e = NoticeFeed::new(notices).unwrap_err();
    assert_eq!(e.path, None);
    assert_eq!(e.field.as_deref(), Some("notice[1].end"));
    assert_eq!(e.to_string(), "notice[1].end: must be after `start`");
}

#[test]
fn load_from_a_file() {
    let path = std::env::temp_dir().join(format!("maintenance_notices_{}.toml", std::process::id()));
    std::fs::write(&path, FEED).unwrap();
    let loaded = NoticeFeed::load(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded.unwrap(), feed());
    let e = NoticeFeed::load(std::path::Path::new("/nonexistent/notices.toml")).unwrap_err();
    assert_eq!(e.kind, FileErrorKind::Io(std::io::ErrorKind::NotFound));
    assert!(e.to_string().starts_with("/nonexistent/notices.toml: "));
}

#[test]
fn bell_rises_at_publication_and_falls_at_the_end() {
    let f = feed();
    let phone = ["cx-eu-2"];
    assert_eq!(f.bell_count(ts("2024-03-11T12:59:59Z"), &phone), 0);
    assert_eq!(f.bell_count(ts("2024-03-11T13:00:00Z"), &phone), 1);
    assert_eq!(f.bell_count(ts("2024-03-15T07:30:00Z"), &phone), 1);
    assert_eq!(f.bell_count(ts("2024-03-15T07:59:59Z"), &phone), 1);
    assert_eq!(f.bell_count(ts("2024-03-15T08:00:00Z"), &phone), 0);
    let ids: Vec<&str> = f.affecting(ts("2024-03-12T00:00:00Z"), &phone).map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["CX-2024-031"]);
}

#[test]
fn notices_for_other_clusters_never_count() {
    let f = feed();
    let phone = ["cx-ap-1"];
    let mut t = ts("2024-03-01T00:00:00Z");
    while t < ts("2024-04-01T00:00:00Z") {
        assert_eq!(f.bell_count(t, &phone), 0, "{t}");
        t = t.checked_add(jiff::SignedDuration::from_mins(30)).unwrap();
    }
    assert_eq!(f.next_change(ts("2024-03-01T00:00:00Z"), &phone), None);
    assert_eq!(f.bell_count(ts("2024-03-12T00:00:00Z"), &[]), 0);
}

#[test]
fn names_match_ignoring_case_and_regions_count_when_listed() {
    let f = feed();
    assert_eq!(f.bell_count(ts("2024-03-12T00:00:00Z"), &["CX-EU-2"]), 1);
    // The phone's primary is in cx-eu-2, its backup in cx-us-1, and it is in region eu.
    let phone = ["cx-eu-2", "cx-us-1", "eu"];
    assert_eq!(f.bell_count(ts("2024-03-12T00:00:00Z"), &phone), 2);
    assert_eq!(f.bell_count(ts("2024-03-19T00:00:00Z"), &phone), 1);
    assert_eq!(f.for_clusters(&phone).count(), 3);
}

#[test]
fn next_change_walks_every_change_of_the_bell() {
    let f = feed();
    let phone = ["cx-eu-2", "cx-us-1", "eu"];
    let mut now = ts("2024-03-01T00:00:00Z");
    let mut seen = vec![(now, f.bell_count(now, &phone))];
    while let Some(t) = f.next_change(now, &phone) {
        assert!(t > now);
        now = t;
        seen.push((now, f.bell_count(now, &phone)));
    }
    assert_eq!(
        seen,
        vec![
            (ts("2024-03-01T00:00:00Z"), 0),
            (ts("2024-03-11T09:00:00Z"), 1), // EU-REGION-7 published
            (ts("2024-03-11T13:00:00Z"), 2), // CX-2024-031 published
            (ts("2024-03-15T08:00:00Z"), 1), // CX-2024-031 ended
            (ts("2024-03-17T04:00:00Z"), 0), // EU-REGION-7 ended
            (ts("2024-03-18T13:00:00Z"), 1), // CX-2024-032 published
            (ts("2024-03-22T09:00:00Z"), 0), // CX-2024-032 ended
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics_on_garbage(text in "\\PC{0,200}") {
            let _ = NoticeFeed::parse(&text, "notices.toml");
        }

        #[test]
        fn parser_never_panics_on_damaged_feeds(cut in 0..FEED.len(), insert in "[\"=\\[\\]\n a-z0-9:TZ.-]{0,12}") {
            let mut text = FEED.as_bytes()[..cut].to_vec();
            text.extend_from_slice(insert.as_bytes());
            text.extend_from_slice(&FEED.as_bytes()[cut..]);
            if let Ok(text) = String::from_utf8(text) {
                match NoticeFeed::parse(&text, "notices.toml") {
                    Ok(f) => prop_assert_eq!(NoticeFeed::parse(&f.to_toml(), "again.toml").unwrap(), f),
                    Err(e) => prop_assert!(e.to_string().starts_with("notices.toml:")),
                }
            }
        }
    }
}
