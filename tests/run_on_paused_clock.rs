//! `run`, the tokio driver, on tokio's paused clock: it keeps the core's timing exactly. The driver runs
//! in this process against in-test UDP servers on loopback; the clock moves only when the test
//! advances it (a blocking task holds it still, so tokio never jumps ahead on its own while a datagram
//! is on its way), and every check is made at an exact virtual millisecond: probes on the wire at 0,
//! 800 and 1200 ms, the switch at 1600 ms and not at 1599, cycles on the 2 s grid, a refused primary
//! left at once, nothing sent while paused, a hook killed at its timeout to the millisecond.
//!
//! The loopback tests that run the binary (`run_over_udp.rs`, `control_socket.rs`, `switch_hook.rs`,
//! ...) check the plumbing and wait for events; the timing is asserted here and on the core harness.
//! Real time bounds only the waits for the driver to react, so that a broken driver fails the test
//! instead of hanging it.

mod interop_common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use interop_common::{closed_port, sip_response, write_config, TempDir};
use serde_json::{json, Value};
use sip_failover::config::PhoneConfig;
use sip_failover::net::hook::HookOptions;
use sip_failover::net::{run, Overrides, RunOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UdpSocket, UnixStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Real time a whole test may take before it fails (only a guard against a driver that hangs).
const GUARD: Duration = Duration::from_secs(30);

thread_local! {
    /// Set to `true` when the running test's [`GUARD`] has passed.
    static EXPIRED: std::cell::RefCell<Option<watch::Receiver<bool>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on a current-thread runtime whose clock starts paused, with a real-time guard that
/// [`within`] watches.
fn paused<F: Future>(f: F) -> F::Output {
    let (tx, rx) = watch::channel(false);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < GUARD {
            if d.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = tx.send(true);
    });
    EXPIRED.with(|e| *e.borrow_mut() = Some(rx));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let out = rt.block_on(f);
    rt.shutdown_background();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    out
}

/// While it lives, the paused clock moves only by [`tokio::time::advance`]: a running blocking task
/// keeps tokio from jumping to the next timer whenever the runtime is idle.
struct ClockHold(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl ClockHold {
    fn new() -> ClockHold {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            // Returns when the sender is dropped.
            let _ = rx.recv();
        });
        ClockHold(tx)
    }
}

/// Awaits `fut`, failing the test once its real-time [`GUARD`] has passed.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let mut expired = EXPIRED.with(|e| e.borrow().clone()).expect("inside paused()");
    tokio::select! {
        biased;
        v = fut => v,
        _ = expired.wait_for(|e| *e) => panic!("still waiting for {what} after {GUARD:?} of real time"),
    }
}

/// Lets a little real time pass without blocking the runtime (while the driver waits for something
/// outside its clock); the paused clock does not move.
async fn real_pause() {
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))).await.unwrap();
}

/// Virtual milliseconds since `t0`.
fn ms_since(t0: Instant) -> u64 {
    Instant::now().duration_since(t0).as_millis() as u64
}

/// Moves the paused clock to `t0 + ms`.
async fn advance_to(t0: Instant, ms: u64) {
    let target = t0 + Duration::from_millis(ms);
    let now = Instant::now();
    assert!(target >= now, "the clock is already past {ms} ms");
    tokio::time::advance(target - now).await;
}

/// Moves the paused clock through each of `stops` (ms since `t0`), letting the agent handle what is due
/// at each: a jump over a deadline would wake the driver late, which the core handles by moving its
/// ladder later.
async fn step_through(t0: Instant, ctl: &mut Control, stops: &[u64]) -> Value {
    let mut last = Value::Null;
    for &ms in stops {
        advance_to(t0, ms).await;
        last = ctl.settled().await;
    }
    last
}

/// A SIP server on a loopback UDP port, as a task on the test's runtime: it notes the virtual time of
/// every request and answers 200 or nothing.
struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<u64>>>,
    count: watch::Receiver<usize>,
}

impl Server {
    async fn start(t0: Instant, answers: bool) -> Server {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0usize);
        let l = log.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            // Bounded: far more requests than any test here makes; the task ends with the runtime.
            for _ in 0..100_000 {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let n = {
                    let mut l = l.lock().unwrap();
                    l.push(ms_since(t0));
                    l.len()
                };
                if answers {
                    let _ = sock.send_to(sip_response(&req, 200).as_bytes(), from).await;
                }
                let _ = tx.send(n);
            }
        });
        Server { addr, log, count }
    }

    /// The virtual times (ms) of the requests so far.
    fn times(&self) -> Vec<u64> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the `n`-th request; returns the times of all so far.
    async fn wait_for_requests(&mut self, n: usize) -> Vec<u64> {
        let what = format!("request {n} at {}", self.addr);
        within(&what, self.count.wait_for(|c| *c >= n)).await.unwrap();
        self.times()
    }
}

/// A client of the agent's control socket.
struct Control {
    lines: Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
}

impl Control {
    async fn connect(path: &Path) -> Control {
        let s = within("the control socket", UnixStream::connect(path)).await.unwrap();
        let (r, w) = s.into_split();
        Control { lines: BufReader::new(r).lines(), w }
    }

    async fn call(&mut self, req: Value) -> Value {
        self.w.write_all(format!("{req}\n").as_bytes()).await.unwrap();
        let line = within("a control answer", self.lines.next_line()).await.unwrap().expect("an answer line");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true, "{req} -> {v}");
        v["status"].clone()
    }

    /// The agent's status once it has handled everything due at the current virtual time. The loop
    /// answers a request and, in the same turn, handles any timer that was due with it; so the second
    /// of two requests sees all of it.
    async fn settled(&mut self) -> Value {
        self.call(json!({"cmd": "status"})).await;
        self.call(json!({"cmd": "status"})).await
    }

    /// Asks for the status until `pred` holds (the driver waits for something outside its clock: an
    /// ICMP error, a process), with a bounded number of requests.
    async fn status_until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..20_000 {
            last = self.call(json!({"cmd": "status"})).await;
            if pred(&last) {
                return last;
            }
            real_pause().await;
        }
        panic!("the agent never reached {what}; last status {last}");
    }
}

/// The agent started in this runtime on a configuration with both servers, a 2 s interval and a
/// control socket; returns the control client once the first probes are out.
struct Agent {
    _dir: TempDir,
    ctl: Control,
}

async fn start_agent(p: SocketAddr, b: &mut Server, fast_refused: bool, hook: Option<HookOptions>) -> Agent {
    let dir = TempDir::new("paused");
    let socket = dir.join("ctl.sock");
    let cfg_path = write_config(&dir, "phone.toml", p, b.addr, "");
    let config = PhoneConfig::load(&cfg_path).unwrap();
    let overrides =
        Overrides { control: Some(socket.clone()), fast_refused: Some(fast_refused), ..Overrides::default() };
    let mut config = config;
    overrides.apply(&mut config);
    let opts = RunOptions { config, overrides, events_json: false, hook, seed: Some(9) };
    tokio::spawn(async move {
        if let Err(e) = run(opts).await {
            panic!("run failed: {e}");
        }
    });
    // The control socket is bound before the first probes go out.
    b.wait_for_requests(1).await;
    let ctl = Control::connect(&socket).await;
    Agent { _dir: dir, ctl }
}

#[test]
fn the_ladder_and_the_switch_leave_on_the_core_deadlines() {
    paused(async {
        let _hold = ClockHold::new();
        let t0 = Instant::now();
        let mut p = Server::start(t0, false).await;
        let mut b = Server::start(t0, true).await;
        let mut agent = start_agent(p.addr, &mut b, false, None).await;
        let ctl = &mut agent.ctl;
        assert_eq!(p.wait_for_requests(1).await, [0]);
        assert_eq!(b.times(), [0]);

        advance_to(t0, 799).await;
        let s = ctl.settled().await;
        assert_eq!((s["uptime_ms"].as_u64(), p.times()), (Some(799), vec![0]), "attempt 2 not before 800 ms");
        advance_to(t0, 800).await;
        assert_eq!(p.wait_for_requests(2).await, [0, 800]);

        advance_to(t0, 1199).await;
        ctl.settled().await;
        assert_eq!(p.times(), [0, 800]);
        advance_to(t0, 1200).await;
        assert_eq!(p.wait_for_requests(3).await, [0, 800, 1200]);

        advance_to(t0, 1599).await;
        let s = ctl.settled().await;
        assert_eq!((s["active"].as_str(), s["pending"].is_null()), (Some("primary"), true), "{s}");
        advance_to(t0, 1600).await;
        let s = ctl.settled().await;
        assert_eq!(s["uptime_ms"], 1600);
        assert_eq!((s["active"].as_str(), s["generation"].as_u64()), (Some("backup"), Some(1)), "{s}");
        assert_eq!(b.times(), [0], "the backup answered its first attempt");

        // The next cycles start on the 2 s grid, to both servers.
        advance_to(t0, 1999).await;
        ctl.settled().await;
        assert_eq!((p.times().len(), b.times().len()), (3, 1));
        advance_to(t0, 2000).await;
        assert_eq!(p.wait_for_requests(4).await[3], 2000);
        assert_eq!(b.wait_for_requests(2).await, [0, 2000]);
        advance_to(t0, 3999).await;
        ctl.settled().await;
        assert_eq!(b.times(), [0, 2000]);
        advance_to(t0, 4000).await;
        assert_eq!(b.wait_for_requests(3).await, [0, 2000, 4000]);
    });
}

#[test]
fn a_refused_primary_is_left_at_once_with_fast_detection_and_after_the_ladder_without() {
    paused(async {
        let _hold = ClockHold::new();
        let t0 = Instant::now();
        let mut b = Server::start(t0, true).await;
        let mut agent = start_agent(closed_port(), &mut b, true, None).await;
        // Every attempt comes back as ICMP port unreachable: the ladder ends without the clock moving.
        let s = agent.ctl.status_until("the backup", |s| s["active"] == "backup").await;
        assert_eq!((s["uptime_ms"].as_u64(), s["generation"].as_u64()), (Some(0), Some(1)), "{s}");
        assert_eq!(s["primary"]["up"], false);
    });
    paused(async {
        let _hold = ClockHold::new();
        let t0 = Instant::now();
        let mut b = Server::start(t0, true).await;
        let mut agent = start_agent(closed_port(), &mut b, false, None).await;
        // Without fast detection the refusals are ignored and the ladder's waits run out.
        let s = step_through(t0, &mut agent.ctl, &[800, 1200, 1599]).await;
        assert_eq!((s["active"].as_str(), s["primary"]["up"].is_null()), (Some("primary"), true), "{s}");
        advance_to(t0, 1600).await;
        let s = agent.ctl.settled().await;
        assert_eq!((s["active"].as_str(), s["generation"].as_u64()), (Some("backup"), Some(1)), "{s}");
    });
}

#[test]
fn nothing_is_sent_while_paused_and_resume_probes_at_once() {
    paused(async {
        let _hold = ClockHold::new();
        let t0 = Instant::now();
        let mut p = Server::start(t0, true).await;
        let mut b = Server::start(t0, true).await;
        let mut agent = start_agent(p.addr, &mut b, false, None).await;
        assert_eq!(p.wait_for_requests(1).await, [0]);
        let ctl = &mut agent.ctl;

        advance_to(t0, 500).await;
        let s = ctl.call(json!({"cmd": "pause"})).await;
        assert_eq!((s["paused"].as_bool(), s["next_cycle_ms"].is_null()), (Some(true), true), "{s}");
        // A minute on the clock: no cycle starts.
        advance_to(t0, 60_500).await;
        ctl.settled().await;
        assert_eq!((p.times(), b.times()), (vec![0], vec![0]));

        let s = ctl.call(json!({"cmd": "resume"})).await;
        assert_eq!(s["paused"], false);
        assert_eq!(p.wait_for_requests(2).await, [0, 60_500], "a cycle starts at the resume");
        assert_eq!(b.wait_for_requests(2).await, [0, 60_500]);
        let s = ctl.settled().await;
        assert_eq!(s["next_cycle_ms"], 62_500, "the grid restarts from the resume");
        advance_to(t0, 62_500).await;
        assert_eq!(p.wait_for_requests(3).await, [0, 60_500, 62_500]);
    });
}

#[test]
fn a_hook_still_running_at_its_timeout_is_rolled_back_at_that_millisecond() {
    paused(async {
        let _hold = ClockHold::new();
        let t0 = Instant::now();
        let p = Server::start(t0, false).await;
        let mut b = Server::start(t0, true).await;
        let hook = HookOptions { command: "sleep 300".into(), timeout: Duration::from_millis(500) };
        let mut agent = start_agent(p.addr, &mut b, false, Some(hook)).await;
        let ctl = &mut agent.ctl;

        let s = step_through(t0, ctl, &[800, 1200, 1600]).await;
        assert_eq!(s["pending"], json!({"side": "backup", "generation": 1}), "the hook runs: {s}");
        assert_eq!(s["active"], "primary");
        advance_to(t0, 2099).await;
        let s = ctl.settled().await;
        assert_eq!(s["pending"]["generation"], 1, "not killed before its 500 ms: {s}");
        advance_to(t0, 2100).await;
        // The kill itself takes real time (a `kill` process, the hook's exit); the clock stays put.
        let s = ctl.status_until("the rollback", |s| s["pending"].is_null()).await;
        assert_eq!(s["uptime_ms"], 2100);
        assert_eq!((s["active"].as_str(), s["generation"].as_u64()), (Some("primary"), Some(0)), "{s}");
    });
}
