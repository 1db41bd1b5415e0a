//! Configuration files: the shipped examples load; every kind of bad input gets an error naming the
//! file, line and field.

use std::path::Path;

use sip_failover::config::{Endpoint, PhoneConfig};
use sip_failover::core::{Duration, FailbackMode, Side};

const GOOD: &str = r#"
[redundancy]
primary_server = "10.0.0.1"
primary_port = 5060
backup_destination = true
backup_destination_address = "pbx-b.example.com"
backup_destination_port = 5070
sip_keep_alive_interval = 20

[[app]]
name = "dir"
primary = "https://a.example/dir"
backup = "https://b.example/dir"
"#;

fn err(text: &str) -> String {
    PhoneConfig::parse(text, "phone.toml").unwrap_err().to_string()
}

#[test]
fn shipped_examples_load() {
    for f in ["firmware-config/phone.toml", "firmware-config/lab.toml"] {
        let c = PhoneConfig::load(Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.backup.is_some(), "{f}");
    }
    let lab = PhoneConfig::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/lab.toml")).unwrap();
    let core = lab.core_config_literal().unwrap();
    assert_eq!(core.primary.next_hop, "127.0.0.1:25060".parse().unwrap());
    assert_eq!(core.backup.unwrap().next_hop, "127.0.0.1:25062".parse().unwrap());
    assert!(core.validate().is_ok());
}

#[test]
fn a_good_file_gives_the_fields_and_the_bundles() {
    let c = PhoneConfig::parse(GOOD, "phone.toml").unwrap();
    assert_eq!(c.primary.server, Endpoint::new("10.0.0.1", Some(5060)));
    assert_eq!(c.backup.as_ref().unwrap().server.host, "pbx-b.example.com");
    assert_eq!(c.interval, Duration::from_secs(20));
    assert_eq!(c.failback.mode, FailbackMode::Auto);
    let b = c.bundle(Side::Backup);
    assert_eq!(b.apps, vec![("dir".to_string(), "https://b.example/dir".to_string())]);
    assert_eq!(b.sip_server.port, Some(5070));
    // The backup is a name: the core config needs the resolved address.
    assert!(c.core_config_literal().is_none());
    let core = c.core_config("10.0.0.1:5060".parse().unwrap(), Some("192.0.2.7:5070".parse().unwrap()));
    assert_eq!(core.backup.unwrap().uri_host.as_str(), "pbx-b.example.com");
}

#[test]
fn outbound_proxy_is_the_next_hop() {
    let text = GOOD.replace(
        "sip_keep_alive_interval = 20",
        "sip_keep_alive_interval = 20\noutbound_proxy = \"10.0.0.9\"\noutbound_proxy_port = 5080",
    );
    let c = PhoneConfig::parse(&text, "phone.toml").unwrap();
    assert_eq!(c.primary.next_hop().socket_addr(), Some("10.0.0.9:5080".parse().unwrap()));
    assert_eq!(c.primary.server.host, "10.0.0.1");
}

#[test]
fn each_kind_of_bad_input_is_named_with_file_line_and_field() {
    let cases: &[(&str, &str, &[&str])] = &[
        // (what to replace in GOOD, with what, expected pieces of the message)
        ("primary_port = 5060", "primary_port = 0", &["phone.toml:4:", "redundancy.primary_port", "outside 1..=65535"]),
        (
            "primary_port = 5060",
            "primary_port = \"x\"",
            &["phone.toml:4:", "redundancy.primary_port", "expected an integer port number, found a string \"x\""],
        ),
        (
            "primary_server = \"10.0.0.1\"",
            "primary_server = \"bad host!\"",
            &["phone.toml:3:", "redundancy.primary_server", "expected an IP address or a host name"],
        ),
        (
            "primary_port = 5060",
            "primary_port = 5060\nprimary_prot = 5",
            &["phone.toml:5:", "redundancy.primary_prot", "unknown key; did you mean `primary_port`?"],
        ),
        (
            "sip_keep_alive_interval = 20",
            "sip_keep_alive_interval = 0",
            &["phone.toml:8:", "redundancy.sip_keep_alive_interval"],
        ),
        (
            "backup_destination_address = \"pbx-b.example.com\"\n",
            "",
            &["phone.toml:5:", "redundancy.backup_destination_address", "no address"],
        ),
        (
            "primary = \"https://a.example/dir\"",
            "primary = \"ftp:/x\"",
            &["phone.toml:12:", "app[0].primary", "expected an http(s) or sip URL"],
        ),
        (
            "[[app]]",
            "[advanced]\nfailback = \"sometimes\"\n[[app]]",
            &["phone.toml:11:", "advanced.failback", "auto, manual, never"],
        ),
        (
            "[[app]]",
            "[advanced]\nladder_ms = [8000, 8000, 8000]\n[[app]]",
            &["phone.toml:11:", "advanced.ladder_ms", "more than the keep-alive interval"],
        ),
        (
            "[[app]]",
            "[advanced]\nalive_codes = [\"200-299\", \"!7x\"]\n[[app]]",
            &["phone.toml:11:", "advanced.alive_codes[1]", "\"!7x\""],
        ),
        ("[[app]]", "[network]\ndscp = 64\n[[app]]", &["phone.toml:11:", "network.dscp", "outside 0..=63"]),
        (
            "[[app]]",
            "[[app]]\nname = \"dir\"\nprimary = \"http://x.example/\"\nbackup = \"http://y.example/\"\n[[app]]",
            &["phone.toml:15:", "app[1].name", "given twice (first on line 11)"],
        ),
        ("primary_port = 5060", "primary_port = 5060 oops", &["phone.toml:4:"]),
        // Servers as SIP URIs: the error points inside the string, at the part at fault.
        (
            "primary_server = \"10.0.0.1\"\nprimary_port = 5060",
            "primary_server = \"sip:10.0.0.1:70000\"",
            &["phone.toml:3:32: redundancy.primary_server: 70000 is outside 1..=65535"],
        ),
        (
            "backup_destination_address = \"pbx-b.example.com\"",
            "backup_destination_address = \"sips:pbx-b.example.com;transport=udp\"",
            &["phone.toml:6:64: redundancy.backup_destination_address: a `sips:` URI needs TLS"],
        ),
        (
            "primary_server = \"10.0.0.1\"",
            "primary_server = \"sip:10.0.0.1;transport=sctp\"",
            &["phone.toml:3:42: redundancy.primary_server: `sctp` is not one of udp, tcp, tls"],
        ),
        (
            "primary_server = \"10.0.0.1\"",
            "primary_server = \"http://10.0.0.1\"",
            &["phone.toml:3:19: redundancy.primary_server: expected a `sip:` or `sips:` URI"],
        ),
        (
            "primary_server = \"10.0.0.1\"",
            "primary_server = \"sip:10.0.0.1:5062\"",
            &["phone.toml:4:16: redundancy.primary_port: `redundancy.primary_server` gives the port 5062 already"],
        ),
        (
            "[[app]]",
            "[network]\ntls_client_cert = \"c.pem\"\n[[app]]",
            &["phone.toml:11:19: network.tls_client_key: a client certificate needs its key"],
        ),
        (
            "[[app]]",
            "[advanced]\nflow_keepalive = -1\n[[app]]",
            &["phone.toml:11:", "advanced.flow_keepalive: -1 is outside 0..=3600"],
        ),
        ("[redundancy]", "[redundancy", &["phone.toml:2:"]),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let msg = err(&GOOD.replacen(from, to, 1));
        for w in *want {
            assert!(msg.contains(w), "for `{to}`: `{msg}` lacks `{w}`");
        }
    }
}

#[test]
fn servers_written_as_sip_uris_set_the_transport_of_each_side() {
    use sip_failover::core::Transport;
    let text = GOOD
        .replace("primary_server = \"10.0.0.1\"\nprimary_port = 5060", "primary_server = \"sips:pbx-a.example.com\"")
        .replace("backup_destination_address = \"pbx-b.example.com\"", "backup_destination_address = \"sip:10.0.0.2;transport=tcp\"")
        .replace("[[app]]", "outbound_proxy = \"sbc-a.example.com\"\n\n[advanced]\nflow_keepalive = 30\n\n[network]\ntls_ca_file = \"ca.pem\"\ntls_allow_wildcard = true\n\n[[app]]");
    let c = PhoneConfig::parse(&text, "/etc/phone/phone.toml").unwrap();
    assert_eq!(c.primary.server, Endpoint::new("pbx-a.example.com", None).over(Transport::Tls));
    // A bare proxy takes its server's transport.
    assert_eq!(c.primary.outbound_proxy, Some(Endpoint::new("sbc-a.example.com", None).over(Transport::Tls)));
    let b = c.backup.as_ref().unwrap();
    assert_eq!(b.server, Endpoint::new("10.0.0.2", Some(5070)).over(Transport::Tcp));
    assert_eq!(c.network.tls.ca_file.as_deref(), Some(std::path::Path::new("/etc/phone/ca.pem")));
    assert!(c.network.tls.allow_wildcard);
    let core = c.core_config("192.0.2.1:5061".parse().unwrap(), Some("10.0.0.2:5070".parse().unwrap()));
    assert_eq!(core.primary.transport, Transport::Tls);
    assert_eq!(core.backup.unwrap().transport, Transport::Tcp);
    assert_eq!(core.flow_keepalive, sip_failover::core::Duration::from_secs(30));
}

#[test]
fn a_type_error_names_the_field_and_what_it_takes() {
    let text = GOOD.replace("sip_keep_alive_interval = 20", "sip_keep_alive_interval = \"x\"");
    assert_eq!(
        err(&text),
        "phone.toml:8:27: redundancy.sip_keep_alive_interval: expected an integer number of seconds, \
         found a string \"x\""
    );
    let text = GOOD.replace("backup_destination = true", "backup_destination = \"yes\"");
    assert_eq!(
        err(&text),
        "phone.toml:5:22: redundancy.backup_destination: expected a boolean, found a string \"yes\""
    );
    let text = GOOD.replace("[[app]]", "[advanced]\nladder_ms = [800, \"400\"]\n[[app]]");
    assert_eq!(
        err(&text),
        "phone.toml:11:19: advanced.ladder_ms[1]: expected an integer number of milliseconds, found a string \"400\""
    );
}

#[test]
fn an_unknown_key_suggests_the_closest_known_one() {
    let text = GOOD.replace("backup_destination = true", "bakup_destination = true");
    assert_eq!(
        err(&text),
        "phone.toml:5:1: redundancy.bakup_destination: unknown key; did you mean `backup_destination`?"
    );
    let text = GOOD.replace("[[app]]", "[netwrok]\ndscp = 26\n[[app]]");
    assert_eq!(err(&text), "phone.toml:10:2: netwrok: unknown key; did you mean `network`?");
    // Nothing close: no guess.
    let text = GOOD.replace("backup_destination = true", "colour = true\nbackup_destination = true");
    assert_eq!(err(&text), "phone.toml:5:1: redundancy.colour: unknown key");
}

#[test]
fn a_missing_key_is_named() {
    let text = GOOD.replace("primary_server = \"10.0.0.1\"\n", "");
    assert_eq!(err(&text), "phone.toml:2:1: redundancy.primary_server: missing, and it is required");
}

#[test]
fn a_missing_section_or_file_is_reported() {
    assert!(err("").contains("redundancy"));
    let e = PhoneConfig::load("/nonexistent/phone.toml").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/phone.toml") && e.contains("cannot read"), "{e}");
}

#[test]
fn ipv6_literals_are_accepted() {
    let text = GOOD.replace("\"10.0.0.1\"", "\"[2001:db8::1]\"");
    let c = PhoneConfig::parse(&text, "phone.toml").unwrap();
    assert_eq!(c.primary.server.host, "2001:db8::1");
    assert_eq!(c.primary.server.to_string(), "[2001:db8::1]:5060");
}
