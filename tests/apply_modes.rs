//! Save, rebuild and force: what each writes, when a rebuild takes effect, and that a bad file
//! changes nothing.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use sip_failover::config::apply::{ApplyError, Store};

const GOOD: &str = r#"
[redundancy]
primary_server = "10.0.0.1"
backup_destination = true
backup_destination_address = "10.0.0.2"

[maintenance]
upgrade_window = "Sun 01:00-03:00"
upgrade_time_zone = "Asia/Tokyo"
"#;

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("sf-apply-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default())
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn save_stores_and_nothing_else() {
    let t = Tmp::new("save");
    let store = Store::new(t.0.join("store"));
    store.save(&t.file("phone.toml", GOOD)).unwrap();
    let files: Vec<String> = listing(store.dir()).into_iter().map(|f| f.0).collect();
    assert_eq!(files, vec!["saved.toml"]);
    assert!(store.pending_rebuild().unwrap().is_none());
    assert!(store.active().unwrap().is_none());
}

#[test]
fn rebuild_waits_for_the_upgrade_window_and_survives_a_restart() {
    let t = Tmp::new("rebuild");
    let store = Store::new(t.0.join("store"));
    // Seed 004: released Friday 3 March 2023 18:00 in Tokyo, window Sunday 01:00-03:00: the next
    // Sunday is less than 48 h away, so it waits for Sunday 12 March.
    let p = store.rebuild(&t.file("phone.toml", GOOD), ts("2023-03-03T09:00:00Z")).unwrap();
    assert_eq!(p.apply_at, Some(ts("2023-03-11T16:00:00Z")));
    // A restart: a new store over the same folder still knows the pending rebuild.
    let store = Store::new(t.0.join("store"));
    assert_eq!(store.pending_rebuild().unwrap(), Some(p));
    // A restart before the window leaves it pending.
    assert!(store.take_due_rebuild(ts("2023-03-05T16:00:00Z")).unwrap().is_none());
    assert!(store.pending_rebuild().unwrap().is_some());
    // The restart in the window applies it.
    let cfg = store.take_due_rebuild(ts("2023-03-11T16:00:00Z")).unwrap().unwrap();
    assert_eq!(cfg.primary.server.host, "10.0.0.1");
    assert!(store.pending_rebuild().unwrap().is_none());
    assert_eq!(store.active().unwrap().unwrap().primary.server.host, "10.0.0.1");
}

#[test]
fn a_bad_file_is_rejected_whole_in_every_mode() {
    let t = Tmp::new("bad");
    let store = Store::new(t.0.join("store"));
    store.rebuild(&t.file("phone.toml", GOOD), ts("2023-03-03T09:00:00Z")).unwrap();
    let before = listing(store.dir());
    let bad = t.file("bad.toml", &GOOD.replace("\"10.0.0.1\"", "\"10.0.0.1\"\nprimary_port = 99999"));
    for r in [
        store.save(&bad).map(|_| ()),
        store.rebuild(&bad, ts("2023-03-04T00:00:00Z")).map(|_| ()),
        store.force(&bad).map(|_| ()),
    ] {
        match r {
            Err(ApplyError::Invalid(e)) => {
                let msg = e.to_string();
                assert!(msg.contains("bad.toml:4") && msg.contains("primary_port"), "{msg}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    assert_eq!(listing(store.dir()), before, "the store changed");
}

#[test]
fn force_makes_it_the_phones_configuration_at_once() {
    let t = Tmp::new("force");
    let store = Store::new(t.0.join("store"));
    store.force(&t.file("phone.toml", GOOD)).unwrap();
    assert_eq!(store.active().unwrap().unwrap().backup.unwrap().server.host, "10.0.0.2");
}

#[test]
fn without_an_upgrade_window_a_rebuild_takes_effect_at_the_next_restart() {
    let t = Tmp::new("nowindow");
    let store = Store::new(t.0.join("store"));
    let text = GOOD.split("[maintenance]").next().unwrap();
    let p = store.rebuild(&t.file("phone.toml", text), ts("2023-03-03T09:00:00Z")).unwrap();
    assert_eq!(p.apply_at, None);
    assert!(store.take_due_rebuild(ts("2023-03-03T09:00:01Z")).unwrap().is_some());
}
