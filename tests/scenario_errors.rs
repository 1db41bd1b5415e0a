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
