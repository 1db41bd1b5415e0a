//! Scenario files: every error names the file, line, column and field, type errors say what the field
//! takes, and a misspelt key or word gets the one meant.

use std::path::Path;

use sip_failover::files::FileErrorKind;
use sip_failover::sim::scenario::Scenario;

const HEAD: &str = "name = \"x\"\nduration = \"10s\"\n";

fn err(body: &str) -> String {
    Scenario::parse(&format!("{HEAD}{body}"), Path::new("s.toml")).unwrap_err().to_string()
}

#[test]
fn a_type_error_names_the_field_and_what_it_takes() {
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"delay\"\nms = \"50\"\n"),
        "s.toml:6:6: at[0].ms: expected an integer number of milliseconds, found a string \"50\""
    );
    assert_eq!(
        err("[phone]\nladder_ms = [800, 400.5]\n"),
        "s.toml:4:19: phone.ladder_ms[1]: expected an integer number of milliseconds, found a number 400.5"
    );
    assert_eq!(
        Scenario::parse("name = \"x\"\nduration = 50\n", Path::new("s.toml")).unwrap_err().to_string(),
        "s.toml:2:12: duration: expected a duration such as \"50s\", found an integer 50"
    );
}

#[test]
fn an_unknown_key_suggests_the_closest_known_one() {
    assert_eq!(
        err("[phone]\nfailbak = \"auto\"\n"),
        "s.toml:4:1: phone.failbak: unknown key; did you mean `failback`?"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"loss\"\nshare = 0.5\n[[at]]\nt = \"2s\"\naction = \"loss\"\nshar = 0\n"),
        "s.toml:10:1: at[1].shar: unknown key; did you mean `share`?"
    );
    let e = Scenario::parse(&format!("{HEAD}tilte = \"y\"\n"), Path::new("s.toml")).unwrap_err();
    assert_eq!(e.kind, FileErrorKind::UnknownKey { suggestion: None });
    assert_eq!(e.field.as_deref(), Some("tilte"));
}

#[test]
fn a_misspelt_word_suggests_the_one_meant() {
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"blackhol\"\n"),
        "s.toml:5:10: at[0].action: `blackhol` is not one of answer, blackhole, refuse, delay, loss, status, flap, \
         rolling_restart, headers; did you mean `blackhole`?"
    );
}

#[test]
fn a_window_rule_is_reported_at_its_token() {
    let body = "[maintenance]\nstarts_at = \"2024-03-15T00:00:00Z\"\ntime_zone = \"Europe/Paris\"\n\
                primary_windows = [\"Sat 17:00-22:00\", \"Fri 02:00-26:00\"]\n";
    assert_eq!(
        err(body),
        "s.toml:6:50: maintenance.primary_windows[1]: expected an end time HH:MM on a 24-hour clock \
         (00:00..24:00), found \"26:00\""
    );
}

#[test]
fn a_missing_file_is_named() {
    let e = Scenario::load("/nonexistent/scenario.toml").unwrap_err();
    assert_eq!(e.to_string(), "/nonexistent/scenario.toml: cannot read the file: there is no such file");
}
