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
         rolling_restart, headers, reset, hang, stall_handshake, bad_certificate; did you mean `blackhole`?"
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

#[test]
fn a_transport_is_one_of_udp_tcp_tls_scenario_wide_or_per_server() {
    assert_eq!(
        err("transport = \"tsl\"\n"),
        "s.toml:3:13: transport: `tsl` is not one of udp, tcp, tls; did you mean `tls`?"
    );
    assert_eq!(
        err("transport = \"tls\"\n[backup]\ntransport = \"sctp\"\n"),
        "s.toml:5:13: backup.transport: `sctp` is not one of udp, tcp, tls"
    );
    assert_eq!(
        err("[primary]\ntransprt = \"tcp\"\n"),
        "s.toml:4:1: primary.transprt: unknown key; did you mean `transport`?"
    );
    let s =
        Scenario::parse(&format!("{HEAD}transport = \"tls\"\n[backup]\ntransport = \"udp\"\n"), Path::new("s.toml"))
            .unwrap();
    use sip_failover::core::Transport;
    assert_eq!(s.phone.transports, [Transport::Tls, Transport::Udp]);
}

#[test]
fn connection_faults_need_a_server_that_has_connections() {
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"reset\"\n"),
        "s.toml:5:10: at[0].action: action `reset` needs a tcp or tls server, and the primary is udp (set `transport` \
         or `[primary] transport`)"
    );
    assert_eq!(
        err("transport = \"tcp\"\n[[at]]\nt = \"1s\"\nserver = \"both\"\naction = \"stall_handshake\"\n"),
        "s.toml:7:10: at[0].action: action `stall_handshake` needs a tls server, and the primary is tcp (set \
         `transport` or `[primary] transport`)"
    );
    assert_eq!(
        err("transport = \"tls\"\n[backup]\ntransport = \"tcp\"\n[[at]]\nt = \"1s\"\nserver = \"both\"\n\
             action = \"bad_certificate\"\nkind = \"expired\"\n"),
        "s.toml:9:10: at[0].action: action `bad_certificate` needs a tls server, and the backup is tcp (set \
         `transport` or `[backup] transport`)"
    );
}

#[test]
fn a_bad_certificate_names_its_kind() {
    let tls = "transport = \"tls\"\n[[at]]\nt = \"1s\"\naction = \"bad_certificate\"\n";
    assert_eq!(err(tls), "s.toml:6:10: at[0].kind: action `bad_certificate` needs `kind`");
    assert_eq!(
        err(&format!("{tls}kind = \"expird\"\n")),
        "s.toml:7:8: at[0].kind: `expird` is not one of expired, wrong_name, wildcard, unknown_ca; did you mean \
         `expired`?"
    );
    assert_eq!(
        err("transport = \"tls\"\n[[at]]\nt = \"1s\"\naction = \"hang\"\nkind = \"expired\"\n"),
        "s.toml:7:8: at[0].kind: action `hang` takes no `kind`"
    );
}

#[test]
fn a_phone_step_scripts_the_call_and_is_checked() {
    let call = |t: &str, state: &str| format!("[[at]]\nt = \"{t}\"\nphone = \"call\"\nstate = \"{state}\"\n");
    let s =
        Scenario::parse(&format!("{HEAD}{}{}", call("0s", "start"), call("4s", "end")), Path::new("s.toml")).unwrap();
    use sip_failover::core::Duration;
    use sip_failover::sim::scenario::CallStep;
    assert_eq!(
        s.calls,
        [CallStep { at: Duration::ZERO, in_call: true }, CallStep { at: Duration::from_secs(4), in_call: false }]
    );
    assert!(s.steps.is_empty());
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nserver = \"primary\"\nphone = \"call\"\nstate = \"start\"\n"),
        "s.toml:5:10: at[0].server: a step has either `server` or `phone`, never both"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"blackhole\"\nphone = \"call\"\nstate = \"start\"\n"),
        "s.toml:6:9: at[0].phone: a step has only one of `action`, `phone` and `notice`; this one has `action` and \
         `phone`"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\n"),
        "s.toml:3:1: at[0]: a step needs `action` (a change of the servers), `phone` (the phone's call) or `notice` \
         (a maintenance notice published)"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nphone = \"cal\"\nstate = \"start\"\n"),
        "s.toml:5:9: at[0].phone: `cal` is not one of call; did you mean `call`?"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nphone = \"call\"\nstate = \"stop\"\n"),
        "s.toml:6:9: at[0].state: `stop` is not one of start, end"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nphone = \"call\"\n"),
        "s.toml:5:9: at[0].state: `phone = \"call\"` needs `state` (start or end)"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nphone = \"call\"\nstate = \"start\"\nms = 5\n"),
        "s.toml:7:6: at[0].ms: a phone step takes no `ms`"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\naction = \"blackhole\"\nstate = \"start\"\n"),
        "s.toml:6:9: at[0].state: action `blackhole` takes no `state` (a phone step's)"
    );
    assert_eq!(
        err(&format!("{}[[at]]\nt = \"11s\"\nphone = \"call\"\nstate = \"end\"\n", call("1s", "start"))),
        "s.toml:8:5: at[1].t: must not be after `duration`"
    );
}

#[test]
fn a_call_starts_and_ends_in_turn() {
    let call = |t: &str, state: &str| format!("[[at]]\nt = \"{t}\"\nphone = \"call\"\nstate = \"{state}\"\n");
    assert_eq!(err(&call("1s", "end")), "s.toml:6:9: at[0].state: the phone is not in a call (no call started before)");
    // Checked in time order, whatever the order written.
    assert_eq!(
        err(&format!("{}{}", call("5s", "end"), call("2s", "start") + &call("3s", "start"))),
        "s.toml:14:9: at[2].state: the phone is already in a call (since 2.000 s)"
    );
}

#[test]
fn a_notice_step_is_checked_field_by_field() {
    let notice = |fields: &str| format!("[[at]]\nt = \"1s\"\nnotice = {{ {fields} }}\n");
    let s = Scenario::parse(
        &format!("{HEAD}{}", notice("id = \"N-1\", server = \"backup\", starts_in = \"2s\", lasts = \"3s\"")),
        Path::new("s.toml"),
    )
    .unwrap();
    use sip_failover::core::{Duration, Side};
    let n = &s.notices[0];
    assert_eq!(
        (n.at, n.side, n.start, n.end),
        (Duration::from_secs(1), Side::Backup, Duration::from_secs(3), Duration::from_secs(6))
    );
    assert_eq!(n.title, None);
    assert_eq!(
        err(&notice("id = \"N\", start_in = \"1s\", lasts = \"1s\"")),
        "s.toml:5:22: at[0].notice.start_in: unknown key; did you mean `starts_in`?"
    );
    assert_eq!(
        err(&notice("id = \"N\", lasts = \"1s\"")),
        "s.toml:5:10: at[0].notice.starts_in: missing, and it is required"
    );
    assert_eq!(
        err(&notice("id = \"N\", server = \"both\", starts_in = \"1s\", lasts = \"1s\"")),
        "s.toml:5:31: at[0].notice.server: `both` is not one of primary, backup"
    );
    assert_eq!(
        err(&notice("id = \"N\", starts_in = \"1s\", lasts = \"0s\"")),
        "s.toml:5:48: at[0].notice.lasts: 0s is outside 1ms..=7d"
    );
    assert_eq!(
        err(&notice("id = \"N\", starts_in = 10, lasts = \"1s\"")),
        "s.toml:5:34: at[0].notice.starts_in: expected a duration such as \"10m\", found an integer 10"
    );
    assert_eq!(
        err(&notice("id = \" \", starts_in = \"1s\", lasts = \"1s\"")),
        "s.toml:5:17: at[0].notice.id: must not be empty"
    );
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nnotice = \"N\"\n"),
        "s.toml:5:10: at[0].notice: expected a table such as { id = \"N-1\", starts_in = \"1m\", lasts = \"2m\" }, found \
         a string \"N\""
    );
    let one = notice("id = \"N\", starts_in = \"1s\", lasts = \"1s\"");
    assert_eq!(err(&format!("{one}{one}")), "s.toml:8:17: at[1].notice.id: `N` is given twice (first on line 5)");
    assert_eq!(
        err("[[at]]\nt = \"1s\"\nserver = \"backup\"\nnotice = { id = \"N\", starts_in = \"1s\", lasts = \"1s\" }\n"),
        "s.toml:5:10: at[0].server: a notice names its server inside it: `notice = { server = \"...\", ... }`"
    );
    assert_eq!(err(&format!("{one}state = \"start\"\n")), "s.toml:6:9: at[0].state: a notice step takes no `state`");
}

#[test]
fn a_run_holds_at_most_four_planned_windows() {
    let five: String = (0..5)
        .map(|i| format!("[[at]]\nt = \"1s\"\nnotice = {{ id = \"N{i}\", starts_in = \"1s\", lasts = \"1s\" }}\n"))
        .collect();
    assert_eq!(
        err(&five),
        "s.toml:17:10: at[4].notice: more than 4 planned windows in one run: the phone holds at most 4"
    );
}

#[test]
fn the_planned_lead_is_given_once() {
    assert_eq!(
        err("[phone]\nplanned_lead = \"1m\"\n[maintenance]\nstarts_at = \"2024-03-15T00:00:00Z\"\n\
             time_zone = \"Europe/Paris\"\nplanned_lead = \"2m\"\n"),
        "s.toml:8:16: maintenance.planned_lead: `planned_lead` is given in `[phone]` too: give it once"
    );
    assert_eq!(
        err("[phone]\nplanned_lead = 60\n"),
        "s.toml:4:16: phone.planned_lead: expected a duration such as \"15m\", found an integer 60"
    );
}
