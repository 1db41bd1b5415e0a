//! One set of defaults: a configuration file and a scenario that say nothing about the policy give the
//! core's own `Config::new` values.

use std::path::Path;

use sip_failover::config::PhoneConfig;
use sip_failover::core::Config;
use sip_failover::sim::scenario::Scenario;

/// The policy fields, without the servers.
fn policy(c: &Config) -> impl PartialEq + std::fmt::Debug {
    (c.keep_alive, c.interval, c.ladder, c.alive_codes, c.failback, c.fast, c.planned_lead, c.user)
}

#[test]
fn a_file_without_policy_gives_the_cores_defaults() {
    let file = PhoneConfig::parse("[redundancy]\nprimary_server = \"192.0.2.1\"\n", "phone.toml").unwrap();
    let from_file = file.core_config_literal().unwrap();
    let core = Config::new("192.0.2.1:5060".parse().unwrap(), "192.0.2.1");
    assert_eq!(policy(&from_file), policy(&core));
}

#[test]
fn a_scenario_without_phone_settings_gives_the_cores_defaults() {
    let s = Scenario::parse("name = \"x\"\nduration = \"10s\"\n", Path::new("s.toml")).unwrap();
    let (a, b) = ("127.0.0.1:5060".parse().unwrap(), "127.0.0.2:5060".parse().unwrap());
    let mut lab = sip_failover::sim::phone_config(&s.phone, a, b, 0);
    let core = Config::new(a, "pbx-a.lab");
    // The lab names each phone's user after its number; everything else is the core's.
    lab.user = core.user;
    assert_eq!(policy(&lab), policy(&core));
}
