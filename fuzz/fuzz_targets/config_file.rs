//! The phone's configuration file on arbitrary text: parsing never panics, every error formats, and
//! a file that validates gives a core configuration the agent accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_failover::config::PhoneConfig;
use sip_failover::core::{Agent, Instant, Side};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match PhoneConfig::parse(text, "fuzz.toml") {
        Err(e) => {
            let _ = e.to_string();
            if let Some(line) = e.line {
                let lines = u32::try_from(text.lines().count().max(1) + 1).unwrap_or(u32::MAX);
                assert!(line >= 1 && line <= lines, "line {line} out of the text");
            }
        }
        Ok(cfg) => {
            let _ = cfg.bundle(Side::Primary);
            let _ = cfg.bundle(Side::Backup);
            if cfg.maintenance.notices.is_none() {
                // With a notice file this would read the disk; without, it only assembles.
                let _ = cfg.schedule();
            }
            // Whatever the names resolve to, the validated file makes a configuration the core runs.
            let hop_a = "192.0.2.1:5060".parse().unwrap();
            let hop_b = "[2001:db8::2]:5070".parse().unwrap();
            let core = cfg.core_config(hop_a, cfg.backup.as_ref().map(|_| hop_b));
            assert_eq!(core.validate(), Ok(()), "validated file, invalid core config: {core:?}");
            assert!(Agent::new(core, Instant::ZERO, 1).is_ok());
            if let Some(lit) = cfg.core_config_literal() {
                assert_eq!(lit.validate(), Ok(()), "validated file, invalid literal config: {lit:?}");
            }
        }
    }
});
