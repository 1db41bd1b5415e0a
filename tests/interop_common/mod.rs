//! Helpers for the tests that run the built `sip-failover` binary on loopback: the agent as a child
//! process with its JSON events read line by line, small SIP responders, temporary directories, and the
//! rule for tests that need peer software (SIPp, Kamailio) or IPv6 ([`skip`]).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../skip/mod.rs"]
pub mod skip;

pub const BIN: &str = env!("CARGO_BIN_EXE_sip-failover");

/// A number not handed out before in this process.
pub fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A fresh, empty directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p =
            std::env::temp_dir().join(format!("sf-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running agent: its events as they arrive, its stderr kept in a file shown if the test fails.
pub struct AgentProc {
    pub child: Child,
    lines: Receiver<Value>,
    pub events: Vec<Value>,
    stderr_path: PathBuf,
    _reader: JoinHandle<()>,
}

impl AgentProc {
    /// Starts `sip-failover run <args> --events json`.
    pub fn start(args: &[&str], stderr_dir: &Path) -> AgentProc {
        let stderr_path = stderr_dir.join(format!("agent-{}.log", unique()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(BIN)
            .arg("run")
            .args(args)
            .args(["--events", "json"])
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start sip-failover");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        AgentProc { child, lines: rx, events: Vec::new(), stderr_path, _reader: reader }
    }

    /// Waits up to `timeout` for an event matching `pred` (events before it are kept in `events`).
    pub fn wait_for(&mut self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.events.iter().find(|e| pred(e)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.events.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} within {timeout:?}; events so far:\n{}", self.dump()),
            }
        }
    }

    /// Waits for the `n`-th (1-based) event named `name` matching `pred`.
    pub fn wait_nth(&mut self, timeout: Duration, name: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Value {
        let count = |evs: &[Value]| evs.iter().filter(|e| e["event"] == name && pred(e)).count();
        let deadline = Instant::now() + timeout;
        while count(&self.events) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.events.push(v),
                Err(_) => panic!("fewer than {n} `{name}` events within {timeout:?}; events:\n{}", self.dump()),
            }
        }
        self.events.iter().filter(|e| e["event"] == name && pred(e)).nth(n - 1).cloned().unwrap()
    }

    /// The events named `name` seen so far.
    pub fn named(&self, name: &str) -> Vec<Value> {
        self.events.iter().filter(|e| e["event"] == name).cloned().collect()
    }

    pub fn dump(&self) -> String {
        let mut s: String = self.events.iter().map(|e| format!("{e}\n")).collect();
        let mut log = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut log);
        }
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        s.push_str("--- agent stderr (tail) ---\n");
        for l in tail.iter().rev() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited by itself.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        false
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The `t_ms` of an event.
pub fn t(v: &Value) -> u64 {
    v["t_ms"].as_u64().unwrap_or_else(|| panic!("no t_ms in {v}"))
}

/// What a responder does with each OPTIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer with this status at once.
    Answer(u16),
    /// Do not answer.
    Drop,
    /// Answer 200 after this many milliseconds.
    Delay(u64),
}

/// A SIP responder on a loopback UDP port, in a thread, until dropped.
pub struct Responder {
    pub addr: SocketAddr,
    pub mode: Arc<Mutex<Mode>>,
    /// When each request arrived.
    pub received: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    pub fn start(mode: Mode) -> Responder {
        Self::start_on("127.0.0.1:0", mode)
    }

    pub fn start_on(bind: &str, mode: Mode) -> Responder {
        let sock = UdpSocket::bind(bind).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, r, s) = (mode.clone(), received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                r.lock().unwrap().push((Instant::now(), req.clone()));
                let mode = *m.lock().unwrap();
                match mode {
                    Mode::Drop => {}
                    Mode::Answer(code) => {
                        let _ = sock.send_to(sip_response(&req, code).as_bytes(), from);
                    }
                    Mode::Delay(ms) => {
                        let sock = sock.try_clone().unwrap();
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(ms));
                            let _ = sock.send_to(sip_response(&req, 200).as_bytes(), from);
                        });
                    }
                }
            }
        });
        Responder { addr, mode, received, stop, thread: Some(thread) }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response to `req` with `code`: Via, From, Call-ID and CSeq copied, a tag added to To.
pub fn sip_response(req: &str, code: u16) -> String {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        408 => "Request Timeout",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            out.push_str(";tag=resp1\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// A loopback UDP port nothing listens on (bound, then released).
pub fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

/// A free loopback UDP port for a peer program to take.
pub fn free_port() -> u16 {
    closed_port().port()
}

/// A free loopback TCP port for a peer program to take (bound, then released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A hosts file naming `names` on 127.0.0.1 in `dir`, and the `run` options that resolve through it
/// (a resolv.conf without servers and a resolver that is never asked).
pub fn hosts_args(dir: &TempDir, names: &[&str]) -> Vec<String> {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 {}\n", names.join(" "))).unwrap();
    let conf = dir.join("resolv.conf");
    std::fs::write(&conf, "options timeout:1 attempts:1\n").unwrap();
    ["--hosts", hosts.to_str().unwrap(), "--resolv-conf", conf.to_str().unwrap(), "--resolver", "127.0.0.1:9"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Sends a raw OPTIONS to `addr` and waits up to `wait` for any SIP answer; returns its status code.
pub fn raw_options(addr: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind(if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let local = sock.local_addr().ok()?;
    let host = match addr {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    let lhost = match local {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    let branch = format!("z9hG4bKprobe{}x{}", std::process::id(), unique());
    let req = format!(
        "OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {lhost};branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{lhost}>;tag=p1\r\nTo: <sip:{host}:{port}>\r\nCall-ID: readiness-{branch}\r\nCSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{lhost}>\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        port = addr.port()
    );
    sock.send_to(req.as_bytes(), addr).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Polls `addr` with raw OPTIONS until it answers anything (up to `timeout`); whether it did.
pub fn wait_until_answers(addr: SocketAddr, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(code) = raw_options(addr, Duration::from_millis(1500)) {
            return Some(code);
        }
    }
    None
}

/// Where `program` is: on PATH, or in the sbin directories a non-root PATH may lack.
pub fn which(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(program)).find(|p| p.is_file())
}

/// Whether `program` can be found.
pub fn have(program: &str) -> bool {
    which(program).is_some()
}

/// For tests that need peer software: `true` to go on; `false` (after saying why) to skip. With
/// `REQUIRE_PEERS=1` a missing program fails the test instead.
pub fn peer_available(program: &str, package: &str) -> bool {
    skip::need(
        have(program),
        &format!("`{program}`"),
        &format!("install the Debian package `{package}` (scripts/ci-net.sh) to run this test"),
    )
}

/// The directory holding Kamailio's modules (one with `module`, e.g. `sl.so`), where it is in a
/// usual place.
pub fn kamailio_module_dir(module: &str) -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/kamailio/modules"),
        "/usr/lib/kamailio/modules".to_string(),
        "/usr/lib64/kamailio/modules".to_string(),
        "/usr/local/lib64/kamailio/modules".to_string(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|d| d.join(module).is_file())
}

/// The arguments of a Kamailio instance in the foreground (logging to stderr) running `cfg`, with
/// its runtime and working directory `run`, listening on `listen` (`udp:127.0.0.1:5060`), its
/// control socket at `ctl`, 32 MB of shared memory, each of `defines` as `-A`, and the module
/// directory holding `module` where there is one.
pub fn kamailio_args(
    cfg: &Path,
    run: &Path,
    listen: &str,
    ctl: &Path,
    defines: &[String],
    module: &str,
) -> Vec<String> {
    let run = run.to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "-DD".into(),
        "-E".into(),
        "-f".into(),
        cfg.to_string_lossy().into_owned(),
        "-Y".into(),
        run.clone(),
        "-w".into(),
        run,
        "-l".into(),
        listen.into(),
        "-A".into(),
        format!("CTL_SOCK=\"unix:{}\"", ctl.display()),
        "-m".into(),
        "32".into(),
    ];
    for d in defines {
        args.push("-A".into());
        args.push(d.clone());
    }
    if let Some(m) = kamailio_module_dir(module) {
        args.push("-L".into());
        args.push(m.to_string_lossy().into_owned());
    }
    args
}

/// The primary's probes as (t_ms, attempt) from the agent's events, starting at the first attempt 1
/// at or after `from_ms`.
pub fn attempts(events: &[Value], server: &str, from_ms: u64) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter(|e| e["event"] == "probe" && e["server"] == server && t(e) >= from_ms)
        .map(|e| (t(e), e["attempt"].as_u64().unwrap()))
        .collect()
}

/// Runs a control client subcommand (`status`, `force backup`, ...) against `socket`; returns the
/// exit success, the parsed stdout (JSON, or Null) and stderr.
pub fn ctl(socket: &Path, args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("run the control client");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits (bounded) until the control socket answers `status`.
pub fn wait_for_socket(socket: &Path, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (ok, v, err) = ctl(socket, &["status"]);
        if ok {
            return v;
        }
        if Instant::now() > deadline {
            panic!("control socket {} never answered: {err}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a stream peer serving the primary was stopped: the phone fails over to the backup, and the
/// primary is down because its flow's connects are refused.
pub fn fails_over_on_refused_flows(agent: &mut AgentProc) {
    let sw = agent.wait_for(Duration::from_secs(8), "failover", |e| e["event"] == "switch");
    assert_eq!(
        (sw["from"].as_str(), sw["to"].as_str(), sw["reason"].as_str()),
        (Some("primary"), Some("backup"), Some("failover"))
    );
    let down = agent.wait_for(Duration::from_secs(1), "server_down", |e| e["event"] == "server_down");
    assert_eq!(
        (down["server"].as_str(), down["reason"].as_str(), down["flow"].as_str()),
        (Some("primary"), Some("flow"), Some("refused"))
    );
}

/// A configuration file with both servers on loopback, a VPN endpoint and an app URL per side.
pub fn write_config(dir: &TempDir, name: &str, primary: SocketAddr, backup: SocketAddr, extra: &str) -> PathBuf {
    let text = format!(
        "[redundancy]\nprimary_server = \"{}\"\nprimary_port = {}\nbackup_destination = true\n\
         backup_destination_address = \"{}\"\nbackup_destination_port = {}\nsip_keep_alive_mode = true\n\
         sip_keep_alive_interval = 2\n\n[primary]\nvpn_endpoint = \"vpn-a.test:1194\"\n\n[backup]\n\
         vpn_endpoint = \"vpn-b.test:1194\"\n\n[[app]]\nname = \"directory\"\n\
         primary = \"http://a.test/dir.xml\"\nbackup = \"http://b.test/dir.xml\"\n{extra}",
        primary.ip(),
        primary.port(),
        backup.ip(),
        backup.port()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Whether a UDP port on 127.0.0.1 is taken (a peer has bound it).
pub fn port_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// A peer program (SIPp, Kamailio) started by a test, killed on drop.
pub struct Peer {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Peer {
    /// Starts `program args` with stdout and stderr in `dir/<name>.log`, then waits (bounded) until
    /// its UDP port is bound and, if `answers`, until it answers a raw OPTIONS.
    pub fn start(name: &str, program: &str, args: &[String], addr: SocketAddr, dir: &Path, answers: bool) -> Peer {
        let peer = Self::spawn(name, program, args, addr, dir, "bound to", || port_taken(addr.port()));
        if answers {
            let code = wait_until_answers(addr, Duration::from_secs(10));
            assert!(code.is_some(), "{name} on {addr} never answered OPTIONS:\n{}", peer.log_text());
        }
        peer
    }

    /// Starts `program args` like [`Peer::start`], for a peer that listens on TCP (or TLS over it):
    /// waits (bounded) until it accepts connections on `addr`.
    pub fn start_stream(name: &str, program: &str, args: &[String], addr: SocketAddr, dir: &Path) -> Peer {
        Self::spawn(name, program, args, addr, dir, "listening on", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    /// Starts the peer and waits (10 s at most) until `ready`; `doing` says what it waits for.
    fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        addr: SocketAddr,
        dir: &Path,
        doing: &str,
        ready: impl Fn() -> bool,
    ) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(which(program).unwrap_or_else(|| PathBuf::from(program)))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut peer = Peer { name: name.into(), child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            if let Ok(Some(st)) = peer.child.try_wait() {
                panic!("{name} exited ({st}) before it was {doing} {addr}:\n{}", peer.log_text());
            }
            assert!(Instant::now() < deadline, "{name} not {doing} {addr} after 10 s:\n{}", peer.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        peer
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a child process: SIGTERM, up to 3 s to exit, then SIGKILL.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The probe cycles of `server` seen in `events`: for each attempt 1, the times (relative to it) of the
/// attempts that followed in the same cycle.
pub fn cycles(events: &[Value], server: &str) -> Vec<Vec<(u64, u64)>> {
    let mut out: Vec<Vec<(u64, u64)>> = Vec::new();
    for (t_ms, attempt) in attempts(events, server, 0) {
        if attempt == 1 {
            out.push(vec![(t_ms, 1)]);
        } else if let Some(c) = out.last_mut() {
            c.push((t_ms, attempt));
        }
    }
    out
}

/// `server`'s events split into probe cycles: each segment starts at a probe of its attempt 1 and runs
/// to the next one. Only its probes, replies and timeouts, and the switches, are kept.
pub fn event_cycles(events: &[Value], server: &str) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    for e in events {
        let own = e["server"] == server && ["probe", "reply", "timeout"].contains(&e["event"].as_str().unwrap_or(""));
        if !(own || e["event"] == "switch") {
            continue;
        }
        if own && e["event"] == "probe" && e["attempt"] == 1 {
            out.push(Vec::new());
        }
        if let Some(c) = out.last_mut() {
            c.push(e.clone());
        }
    }
    out
}

/// One cycle of [`event_cycles`] as (event, attempt) pairs, `("switch", 0)` for a switch.
pub fn steps(cycle: &[Value]) -> Vec<(&str, u64)> {
    cycle.iter().map(|e| (e["event"].as_str().unwrap_or(""), e["attempt"].as_u64().unwrap_or(0))).collect()
}

/// One `[[notice]]` of a notice feed file.
pub fn notice(
    id: &str,
    cluster: &str,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    published: jiff::Timestamp,
) -> String {
    format!(
        "[[notice]]\nid = \"{id}\"\ncluster = \"{cluster}\"\nstart = \"{start}\"\nend = \"{end}\"\n\
         impact = \"minimal\"\npublished = \"{published}\"\n\n"
    )
}

/// Writes `phone.toml` in `dir` for a primary `p` in cluster `cx-eu-1` and a backup `b` in `cx-eu-2`
/// on 127.0.0.1, probed every `interval_s`, with a planned lead of `lead_s`, failback after one
/// cycle and the notice feed `notices.toml` beside it; returns its path as a string.
pub fn write_maintenance_config(dir: &TempDir, p: SocketAddr, b: SocketAddr, interval_s: u64, lead_s: u64) -> String {
    let config = dir.join("phone.toml");
    std::fs::write(
        &config,
        format!(
            "[redundancy]\nprimary_server = \"127.0.0.1\"\nprimary_port = {}\nbackup_destination = true\n\
             backup_destination_address = \"127.0.0.1\"\nbackup_destination_port = {}\n\
             sip_keep_alive_interval = {interval_s}\n\n\
             [primary]\ncluster = \"cx-eu-1\"\n[backup]\ncluster = \"cx-eu-2\"\n\n\
             [advanced]\nplanned_lead_s = {lead_s}\nfailback_after = 1\n\n[maintenance]\nnotices = \"notices.toml\"\n",
            p.port(),
            b.port()
        ),
    )
    .unwrap();
    config.to_string_lossy().into_owned()
}

/// A loopback HTTP/1.1 server for the feed tests (a calendar, a status page): `route` gives each
/// request's status and body from the shared state and the path; a body's ETag is its length and byte
/// sum, and a request naming the current one in `If-None-Match` gets `304 Not Modified` (counted).
pub struct HttpFixture<S> {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<S>>,
    pub not_modified: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: Send + 'static> HttpFixture<S> {
    pub fn start(state: S, content_type: &'static str, route: fn(&S, &str) -> (u16, String)) -> Self {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let not_modified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, nm) = (state.clone(), not_modified.clone());
        std::thread::spawn(move || {
            // Bounded: a test run makes far fewer requests.
            for stream in listener.incoming().take(10_000) {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut if_none_match = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("if-none-match: ").or_else(|| h.strip_prefix("If-None-Match: ")) {
                        if_none_match = Some(v.trim().to_owned());
                    }
                }
                let (status, body) = route(&st.lock().unwrap(), &path);
                let etag = format!("\"{}-{}\"", body.len(), body.bytes().map(u64::from).sum::<u64>());
                let response = if status == 200 && if_none_match.as_deref() == Some(etag.as_str()) {
                    nm.fetch_add(1, Ordering::SeqCst);
                    format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n")
                } else {
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
                let _ = reader.read(&mut [0u8; 1]);
            }
        });
        HttpFixture { addr, state, not_modified }
    }

    /// Changes what is served from the next request on.
    pub fn set(&self, f: impl FnOnce(&mut S)) {
        f(&mut self.state.lock().unwrap());
    }

    /// How many requests got `304 Not Modified`.
    pub fn not_modified(&self) -> usize {
        self.not_modified.load(Ordering::SeqCst)
    }
}
