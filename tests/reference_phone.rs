//! The reference phone (`examples/phone/phone.c`, a libre user agent with the agent in its event
//! loop) against two real registrars: Kamailio instances on loopback running
//! `tests/kamailio/registrar.cfg` (registrar and usrloc in memory, SUBSCRIBE answered). Where the
//! phone is registered and subscribed is read from the registrars (`kamcmd ul.dump`, `kamcmd
//! htable.dump`), never from the phone's own words; the phone's output (one `key=value` line per
//! event, with microsecond timestamps) is only what the test synchronises on.
//!
//! "Black-holed" is SIGSTOP on every process of the primary Kamailio (it answers nothing, and what was
//! sent to it waits in its socket) and SIGCONT brings it back.
//!
//! Needs gcc, libre's headers and library (Debian `libre-dev`), Kamailio with kamcmd (`kamailio`) and,
//! for the call, SIPp (`sip-tester`); without them the tests print why they skip, unless
//! `REQUIRE_PEERS=1`, where they fail. Built with `--features ffi` only (`required-features` in
//! Cargo.toml; `tests/feature_gated.rs` reports it as skipped otherwise). `scripts/reference-phone.sh`
//! runs it and prints the measured times.

mod interop_common;
mod staticlib;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use interop_common::*;
use staticlib::build_staticlib;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---- peers ----------------------------------------------------------------------------------------

fn libre_available() -> bool {
    skip::need(
        Path::new("/usr/include/re/re.h").is_file(),
        "libre (headers in /usr/include/re)",
        "install the Debian package `libre-dev` (scripts/ci-net.sh) to build examples/phone",
    )
}

fn available(with_sipp: bool) -> bool {
    skip::need(have("gcc"), "gcc", "install gcc to build examples/phone")
        && libre_available()
        && peer_available("kamailio", "kamailio")
        && peer_available("kamcmd", "kamailio")
        && (!with_sipp || peer_available("sipp", "sip-tester"))
}

/// A Kamailio registrar on a free loopback port.
struct Registrar {
    peer: Peer,
    ctl: PathBuf,
}

impl Registrar {
    fn start(dir: &TempDir, name: &str, defines: &[&str]) -> Registrar {
        let run = dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ctl = run.join("ctl");
        let cfg = root().join("tests/kamailio/registrar.cfg");
        let defines: Vec<String> = defines.iter().map(|d| d.to_string()).collect();
        let args = kamailio_args(&cfg, &run, &format!("udp:{addr}"), &ctl, &defines, "registrar.so");
        let peer = Peer::start(name, "kamailio", &args, addr, &run, true);
        Registrar { peer, ctl }
    }

    fn addr(&self) -> SocketAddr {
        self.peer.addr
    }

    fn rpc(&self, args: &[&str]) -> String {
        let out = Command::new(which("kamcmd").expect("kamcmd"))
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kamcmd");
        assert!(out.status.success(), "kamcmd {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The contacts the phone of `user` bound (contact users `<user>-N`), from `ul.dump`.
    fn bindings(&self, user: &str) -> Vec<String> {
        let dump = self.rpc(&["ul.dump"]);
        dump.lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("Address: "))
            .filter(|a| a.trim_start_matches('<').starts_with(&format!("sip:{user}-")))
            .map(str::to_string)
            .collect()
    }

    /// The value of `key` in the in-memory table `table` (`htable.dump`): for `regs`, when the latest
    /// binding REGISTER arrived; for `subs`, when the subscription did (seconds.microseconds).
    fn table(&self, table: &str, key: &str) -> Option<String> {
        let dump = self.rpc(&["htable.dump", table]);
        let mut lines = dump.lines().map(str::trim);
        while let Some(l) = lines.next() {
            if l == format!("name: {key}") {
                return lines.next().and_then(|v| v.strip_prefix("value: ")).map(str::to_string);
            }
        }
        None
    }

    /// [`Registrar::table`] as microseconds on the real-time clock.
    fn table_us(&self, table: &str, key: &str) -> Option<u64> {
        let v = self.table(table, key)?;
        let (s, us) = v.split_once('.')?;
        Some(s.parse::<u64>().ok()? * 1_000_000 + format!("{us:0<6}").get(..6)?.parse::<u64>().ok()?)
    }

    fn set_reg(&self, code: u16) {
        self.rpc(&["pv.shvSet", "reg", "int", &code.to_string()]);
    }

    /// The instance's processes: the main one and its children.
    fn pids(&self) -> Vec<u32> {
        let main = self.peer.child.id();
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(&self, sig: &str) {
        for pid in self.pids() {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        }
    }

    /// Black-holes the registrar: it answers nothing until [`Registrar::resume`].
    fn pause(&self) {
        self.signal("STOP");
    }

    fn resume(&self) {
        self.signal("CONT");
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        // A stopped process would not act on the TERM the peer's drop sends.
        self.resume();
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; whether it held.
fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wall_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

// ---- the phone ------------------------------------------------------------------------------------

/// Compiles examples/phone/phone.c against the static library and libre, once per test binary.
fn phone_exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let lib = build_staticlib();
        let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-interface").join("phone");
        let out = Command::new("gcc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"])
            .args(["-DHAVE_INTTYPES_H", "-DHAVE_STDBOOL_H", "-I", "/usr/include/re", "-I"])
            .arg(root().join("include"))
            .arg(root().join("examples/phone/phone.c"))
            .arg(&lib)
            .args(["-lre", "-lssl", "-lcrypto", "-lz", "-lpthread", "-lm", "-ldl", "-o"])
            .arg(&exe)
            .output()
            .expect("gcc runs");
        assert!(out.status.success(), "gcc failed on phone.c:\n{}", String::from_utf8_lossy(&out.stderr));
        exe
    })
    .clone()
}

/// One output line of the phone: its fields.
#[derive(Clone, Debug)]
struct Line(HashMap<String, String>, String);

impl Line {
    fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
    fn t_us(&self) -> u64 {
        self.get("t_us").parse().unwrap()
    }
    fn is(&self, event: &str) -> bool {
        self.get("event") == event
    }
}

struct Phone {
    child: Child,
    rx: Receiver<String>,
    lines: Vec<Line>,
    sip_port: u16,
}

impl Phone {
    fn start(p: &Registrar, b: &Registrar, extra: &[&str]) -> Phone {
        let sip_port = free_port();
        let mut child = Command::new(phone_exe())
            .args(["--primary", &p.addr().to_string(), "--backup", &b.addr().to_string()])
            .args(["--sip-port", &sip_port.to_string(), "--interval-ms", "2000", "--expires", "60"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the phone");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Phone { child, rx, lines: Vec::new(), sip_port }
    }

    fn parse(raw: &str) -> Line {
        let map = raw
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Line(map, raw.to_string())
    }

    /// Waits (bounded) for the next line, after those seen, that `pred` accepts; returns its index.
    fn wait_for(&mut self, timeout: Duration, what: &str, pred: impl Fn(&Line) -> bool) -> usize {
        let deadline = Instant::now() + timeout;
        let start = self.lines.len();
        if let Some(i) = self.lines[start..].iter().position(&pred) {
            return start + i;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(raw) => {
                    let line = Self::parse(&raw);
                    self.lines.push(line);
                    if pred(self.lines.last().unwrap()) {
                        return self.lines.len() - 1;
                    }
                }
                Err(_) => panic!("no {what} within {timeout:?}; the phone said:\n{}", self.dump()),
            }
        }
    }

    /// Waits for a line with `event=<event>`, the other `fields` equal.
    fn wait_event(&mut self, timeout: Duration, event: &str, fields: &[(&str, &str)]) -> usize {
        let what = format!("event={event} {fields:?}");
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let event = event.to_string();
        self.wait_for(timeout, &what, move |l| l.is(&event) && fields.iter().all(|(k, v)| l.get(k) == v))
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.1);
            s.push('\n');
        }
        s
    }

    /// The index of the first line from `from` on with `event=<event>` and `fields`.
    fn find(&self, from: usize, event: &str, fields: &[(&str, &str)]) -> Option<usize> {
        (from..self.lines.len()).find(|&i| {
            let l = &self.lines[i];
            l.is(event) && fields.iter().all(|(k, v)| l.get(k) == *v)
        })
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// One summary line on the real standard error (past the harness's capture).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

const USER: &str = "alice";

// ---- the story ------------------------------------------------------------------------------------

#[test]
fn the_bundle_moves_to_the_backup_and_back_as_the_registrars_see_it() {
    if !available(true) {
        return;
    }
    let dir = TempDir::new("phone-story");
    let p = Registrar::start(&dir, "primary", &[]);
    let b = Registrar::start(&dir, "backup", &[]);
    let mut phone = Phone::start(&p, &b, &[]);

    // Both up: registered and subscribed on the primary, nothing on the backup.
    phone.wait_event(Duration::from_secs(10), "ready_on", &[("side", "primary")]);
    assert_eq!(p.bindings(USER).len(), 1, "the primary holds one binding for {USER}");
    assert!(p.table("subs", USER).is_some(), "the primary holds the BLF subscription");
    assert!(b.bindings(USER).is_empty(), "the backup holds no binding yet");

    // The primary black-holed: the switch, then the whole bundle of the backup in one generation.
    let outage_us = wall_us();
    p.pause();
    let sw = phone.wait_event(Duration::from_secs(15), "switch", &[("to", "backup")]);
    let generation = phone.lines[sw].get("generation").to_string();
    let ack = phone.wait_for(Duration::from_secs(10), "the acknowledgement", |l| l.is("ack"));
    let ackl = phone.lines[ack].clone();
    assert_eq!(
        (ackl.get("result"), ackl.get("side"), ackl.get("generation")),
        ("applied", "backup", generation.as_str()),
        "{}",
        phone.dump()
    );
    phone.wait_event(Duration::from_secs(5), "applied", &[("side", "backup"), ("generation", &generation)]);
    // The defined order: register, subscribe, URLs and VPN, leave the old side, acknowledge.
    let order: Vec<usize> =
        [("registered", "backup"), ("subscribed", "backup"), ("bundle", "backup"), ("left", "primary")]
            .iter()
            .map(|(e, s)| phone.find(sw, e, &[("side", s)]).unwrap_or_else(|| panic!("no {e} {s}:\n{}", phone.dump())))
            .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]) && order[3] < ack, "apply order {order:?}:\n{}", phone.dump());
    assert!(phone.lines[order[2]].get("vpn").starts_with("vpn-b"), "{}", phone.dump());
    assert_eq!(phone.lines[sw + 1..ack].iter().filter(|l| l.is("switch")).count(), 0, "one generation");

    // The registrar's own view: a binding and the subscription on the backup, and when they came.
    assert_eq!(b.bindings(USER).len(), 1, "the backup holds the binding");
    let switch_us = phone.lines[sw].t_us();
    let reg_us = b.table_us("regs", USER).expect("the backup recorded the REGISTER");
    let sub_us = b.table_us("subs", USER).expect("the backup recorded the SUBSCRIBE");
    let to_registered = reg_us as i64 - switch_us as i64;
    let to_subscribed = sub_us as i64 - switch_us as i64;
    assert!(
        (0..=100_000).contains(&to_registered),
        "the backup bound the phone {to_registered} us after the switch (at most 100 ms)"
    );
    // The ladder: from the first unanswered probe of the cycle that failed to the switch.
    let first_probe = (0..sw).rev().find(|&i| {
        let l = &phone.lines[i];
        l.is("probe") && l.get("side") == "primary" && l.get("attempt") == "1"
    });
    let ladder_us = first_probe.map(|i| switch_us - phone.lines[i].t_us()).unwrap_or(0);

    // A call offered by SIPp and answered by the phone, then the primary back: failback waits for idle.
    let sipp_port = free_port();
    let sipp = Command::new(which("sipp").unwrap())
        .args(["-sn", "uac", "-m", "1", "-d", "8000", "-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-s", USER, "-nostdin", "-timeout", "40s", "-timeout_error"])
        .arg(format!("127.0.0.1:{}", phone.sip_port))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    let mut sipp = KillOnDrop(sipp);
    phone.wait_event(Duration::from_secs(10), "call", &[("state", "answered")]);
    p.resume();
    let resumed_us = wall_us();
    phone.wait_event(Duration::from_secs(20), "held", &[("to", "primary")]);

    // The primary answers again: the binding and the subscription the phone left are gone there.
    assert!(
        poll_until(Duration::from_secs(10), || p.bindings(USER).is_empty() && p.table("subs", USER).is_none()),
        "the primary, answering again, still holds {:?} / {:?}",
        p.bindings(USER),
        p.table("subs", USER)
    );

    let closed = phone.wait_event(Duration::from_secs(20), "call", &[("state", "closed")]);
    assert!(phone.find(sw + 1, "switch", &[]).is_none_or(|i| i > closed), "no failback during the call");
    let back = phone.wait_event(Duration::from_secs(15), "switch", &[("to", "primary")]);
    assert!(back > closed);
    let back_generation = phone.lines[back].get("generation").to_string();
    let ack2 = phone.wait_for(Duration::from_secs(10), "the failback acknowledgement", |l| l.is("ack"));
    assert_eq!(
        (phone.lines[ack2].get("result"), phone.lines[ack2].get("generation")),
        ("applied", back_generation.as_str()),
        "{}",
        phone.dump()
    );
    assert!(
        poll_until(Duration::from_secs(5), || p.bindings(USER).len() == 1 && b.bindings(USER).is_empty()),
        "after failback: primary {:?}, backup {:?}",
        p.bindings(USER),
        b.bindings(USER)
    );
    assert!(b.table("subs", USER).is_none(), "the backup still holds the subscription");
    let back_us = phone.lines[back].t_us();
    let back_reg_us = p.table_us("regs", USER).expect("the primary recorded the REGISTER");
    let st = sipp.0.wait().expect("sipp ends");
    assert!(st.success(), "the SIPp call failed ({st})");

    report(&format!(
        "reference phone: outage->switch {} ms (ladder {} ms), switch->registered on backup {:.1} ms, \
         switch->re-subscribed {:.1} ms (registrar clocks); primary back->failback {} ms (call end->failback {} ms), \
         failback->registered on primary {:.1} ms",
        (switch_us - outage_us) / 1000,
        ladder_us / 1000,
        to_registered as f64 / 1000.0,
        to_subscribed as f64 / 1000.0,
        (back_us - resumed_us) / 1000,
        (back_us - phone.lines[closed].t_us()) / 1000,
        (back_reg_us as f64 - back_us as f64) / 1000.0,
    ));
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_backup_refusing_the_registration_keeps_the_previous_bundle() {
    if !available(false) {
        return;
    }
    let dir = TempDir::new("phone-403");
    let p = Registrar::start(&dir, "primary", &[]);
    let b = Registrar::start(&dir, "backup", &[]);
    b.set_reg(403);
    let mut phone = Phone::start(&p, &b, &[]);
    phone.wait_event(Duration::from_secs(10), "ready_on", &[("side", "primary")]);

    p.pause();
    let sw = phone.wait_event(Duration::from_secs(15), "switch", &[("to", "backup")]);
    let generation = phone.lines[sw].get("generation").to_string();
    let ack = phone.wait_for(Duration::from_secs(10), "the acknowledgement", |l| l.is("ack"));
    let l = phone.lines[ack].clone();
    assert_eq!(
        (l.get("result"), l.get("generation"), l.get("step"), l.get("status"), l.get("kept")),
        ("failed", generation.as_str(), "register", "403", "primary"),
        "{}",
        phone.dump()
    );
    phone.wait_event(Duration::from_secs(5), "apply_failed", &[("generation", &generation)]);
    assert!(phone.find(sw, "bundle", &[]).is_none(), "no URL or VPN swap on a failed apply");
    assert!(b.bindings(USER).is_empty() && b.table("subs", USER).is_none(), "nothing left on the backup");

    // The primary back: it still holds the binding and the subscription the phone kept.
    p.resume();
    assert!(wait_until_answers(p.addr(), Duration::from_secs(5)).is_some());
    assert_eq!(p.bindings(USER).len(), 1, "the previous binding stays");
    assert!(p.table("subs", USER).is_some(), "the previous subscription stays");
}

// ---- what bad registrars get -------------------------------------------------------------------------

#[test]
fn registrars_asking_for_digest_credentials_and_a_longer_expiry_are_served() {
    if !available(false) {
        return;
    }
    let dir = TempDir::new("phone-auth");
    let defines = ["WITH_AUTH", "PASSWORD=\"s3cret\"", "MIN_EXPIRES=120"];
    let p = Registrar::start(&dir, "primary", &defines);
    let b = Registrar::start(&dir, "backup", &defines);
    let mut phone = Phone::start(&p, &b, &["--password", "s3cret"]);

    // 401 with a digest challenge, then 423 Min-Expires: 120; libre answers both and the phone is in.
    phone.wait_event(Duration::from_secs(10), "ready_on", &[("side", "primary")]);
    let on_primary = phone.find(0, "registered", &[("side", "primary")]).unwrap();
    assert_eq!(phone.lines[on_primary].get("expires"), "120", "{}", phone.dump());
    assert_eq!(p.bindings(USER).len(), 1, "the primary holds the authenticated binding");
    assert!(p.table("subs", USER).is_some(), "the authenticated subscription");

    // The same on the backup after the switch.
    p.pause();
    phone.wait_event(Duration::from_secs(15), "switch", &[("to", "backup")]);
    let ack = phone.wait_for(Duration::from_secs(10), "the acknowledgement", |l| l.is("ack"));
    assert_eq!(phone.lines[ack].get("result"), "applied", "{}", phone.dump());
    assert_eq!(b.bindings(USER).len(), 1, "the backup holds the authenticated binding");
    assert!(b.table("subs", USER).is_some());
}

#[test]
fn a_new_registrar_refusing_with_503_or_saying_nothing_is_a_failed_apply() {
    if !available(false) {
        return;
    }
    let dir = TempDir::new("phone-refusals");
    let p = Registrar::start(&dir, "primary", &[]);
    let b = Registrar::start(&dir, "backup", &[]);
    let mut phone = Phone::start(&p, &b, &["--apply-timeout-ms", "3000"]);
    phone.wait_event(Duration::from_secs(10), "ready_on", &[("side", "primary")]);

    // 503 with Retry-After: the apply fails at once, the previous bundle is kept.
    b.set_reg(503);
    p.pause();
    let ack = phone.wait_for(Duration::from_secs(15), "the first acknowledgement", |l| l.is("ack"));
    let l = phone.lines[ack].clone();
    assert_eq!(
        (l.get("result"), l.get("step"), l.get("status"), l.get("kept")),
        ("failed", "register", "503", "primary"),
        "{}",
        phone.dump()
    );
    let failed_at = ack;
    assert!(b.bindings(USER).is_empty() && b.table("subs", USER).is_none());

    // No answer at all: the apply times out, and is reported failed.
    b.set_reg(1);
    let ack = phone.wait_for(Duration::from_secs(15), "the second acknowledgement", |l| l.is("ack"));
    let l = phone.lines[ack].clone();
    assert_eq!((l.get("result"), l.get("step"), l.get("kept")), ("failed", "timeout", "primary"), "{}", phone.dump());
    assert!(phone.find(failed_at, "bundle", &[]).is_none(), "no URL or VPN swap on a failed apply");
    assert!(b.bindings(USER).is_empty() && b.table("subs", USER).is_none());

    // The registrar answers again: the next switch is applied whole.
    b.set_reg(0);
    let ack = phone.wait_for(Duration::from_secs(15), "the third acknowledgement", |l| l.is("ack"));
    assert_eq!(phone.lines[ack].get("result"), "applied", "{}", phone.dump());
    // Late answers to the abandoned REGISTERs leave nothing behind: one binding, the phone's.
    assert!(poll_until(Duration::from_secs(10), || b.bindings(USER).len() == 1), "{:?}", b.bindings(USER));
    assert!(b.table("subs", USER).is_some());
}

#[test]
fn a_refresh_answered_503_with_retry_after_moves_the_phone_as_announced_maintenance() {
    if !available(false) {
        return;
    }
    let dir = TempDir::new("phone-503-refresh");
    // Short registrations (5 s, refreshed after 4.5 s) so that a refresh comes during the test.
    let p = Registrar::start(&dir, "primary", &["MIN_EXPIRES=1"]);
    let b = Registrar::start(&dir, "backup", &["MIN_EXPIRES=1"]);
    let mut phone = Phone::start(&p, &b, &["--expires", "5"]);
    phone.wait_event(Duration::from_secs(10), "ready_on", &[("side", "primary")]);

    // The primary answers OPTIONS but refuses the refresh with 503 and Retry-After: the phone reports
    // the announced maintenance, and the agent moves it while idle.
    p.set_reg(503);
    let refused = phone.wait_event(
        Duration::from_secs(10),
        "register_failed",
        &[("side", "primary"), ("status", "503"), ("retry_after", "30")],
    );
    let sw = phone.wait_event(Duration::from_secs(10), "switch", &[("to", "backup")]);
    assert!(sw > refused);
    assert_eq!(phone.lines[sw].get("reason"), "6", "the switch is for maintenance:\n{}", phone.dump());
    let ack = phone.wait_for(Duration::from_secs(10), "the acknowledgement", |l| l.is("ack"));
    assert_eq!(phone.lines[ack].get("result"), "applied", "{}", phone.dump());
    assert_eq!(b.bindings(USER).len(), 1, "the backup holds the binding");
}
