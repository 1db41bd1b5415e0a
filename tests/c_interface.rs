//! The C interface: the committed header is what cbindgen makes of `src/ffi.rs`; the C example
//! (`examples/c/failover.c`), compiled with gcc against the static library, runs a whole failover on a
//! fake clock; its TCP variant (`examples/c/failover_tcp.c`) probes real responders on loopback TCP
//! through the flow functions, and fails over when the primary's port refuses connections.
//!
//! Without gcc the C test is skipped with a message, unless `REQUIRE_PEERS=1` is set, in which case it
//! fails. `UPDATE_HEADER=1` rewrites `include/sip_failover.h` instead of comparing it. Built with
//! `--features ffi` only (`required-features` in Cargo.toml; `tests/feature_gated.rs` reports it as
//! skipped otherwise).

mod common;
mod skip;
mod staticlib;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use common::response_to;
use sip_failover::core::{frame, Frame};
use staticlib::build_staticlib;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate_header() -> String {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root().join("src/ffi.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_current() {
    let path = root().join("include/sip_failover.h");
    let fresh = generate_header();
    if std::env::var_os("UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/sip_failover.h is stale: regenerate it with\n  UPDATE_HEADER=1 cargo test --features ffi --test c_interface header_is_current"
    );
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Compiles `examples/c/<name>.c` with gcc, strictly, against the static library; returns the program.
/// Once per name for the whole test binary: tests running at once share the program, so none runs
/// it while another's linker is writing it.
fn compile(name: &str) -> PathBuf {
    static COMPILED: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, exe)) = compiled.iter().find(|(n, _)| n == name) {
        return exe.clone();
    }
    let lib = build_staticlib();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-interface").join(name);
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-I"])
        .arg(root().join("include"))
        .arg(root().join(format!("examples/c/{name}.c")))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("gcc runs");
    assert!(out.status.success(), "gcc failed on {name}.c:\n{}", String::from_utf8_lossy(&out.stderr));
    compiled.push((name.to_string(), exe.clone()));
    exe
}

#[test]
fn c_example_runs_a_failover_through_the_c_interface() {
    if !skip::need(have("gcc"), "gcc", "install gcc to compile and run examples/c/failover.c") {
        return;
    }
    let exe = compile("failover");
    let run = Command::new(&exe).output().expect("the C example runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the C example failed ({}):\n{stdout}\n{stderr}", run.status);

    let lines: Vec<&str> = stdout.lines().collect();
    let has = |l: &str| lines.contains(&l);
    // The primary never answers: attempts at 0, 800 and 1200 ms, failed at 1600 ms. The backup answers
    // every probe, so the switch comes at exactly 1600 ms, generation 1, and is acknowledged.
    for want in [
        "t=0 probe primary attempt=1",
        "t=0 probe backup attempt=1",
        "t=800 probe primary attempt=2",
        "t=1200 probe primary attempt=3",
        "t=1600 server_down primary reason=timeout",
        "t=1600 switch primary->backup reason=failover generation=1",
        "t=1600 applied backup generation=1",
        "state active=backup generation=1 pending=0",
        "resumed active=backup generation=1",
        "bad-arguments ok",
        "OK failover at 1600 ms",
    ] {
        assert!(has(want), "missing line {want:?} in the C example's output:\n{stdout}");
    }
    assert!(
        lines.contains(&"t=20 reply backup attempt=1 status=200 rtt_us=20000"),
        "no reply from the backup:\n{stdout}"
    );
    // Nothing switches before 1600 ms, and only once.
    assert_eq!(lines.iter().filter(|l| l.contains(" switch ")).count(), 1, "{stdout}");
}

/// A SIP server on loopback TCP: answers every request read on a connection with a 200 OK echoing its
/// Via, From, To, Call-ID and CSeq, framed by Content-Length, and keeps what it read.
struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Each request with the address of the connection it came on; a stream that could not be
    /// framed is kept as an error line.
    requests: Arc<Mutex<Vec<(SocketAddr, String)>>>,
    accept: JoinHandle<()>,
}

impl Responder {
    fn start() -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let accept = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            // Ends when `finish` sets the flag and connects once to wake it.
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let requests = requests2.clone();
                handlers.push(std::thread::spawn(move || serve(conn, &requests)));
            }
            for h in handlers {
                h.join().unwrap();
            }
        });
        Responder { addr, stop, requests, accept }
    }

    /// Stops accepting, waits for the connections to end (the C program closed them when it exited)
    /// and returns what was read.
    fn finish(self) -> Vec<(SocketAddr, String)> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        self.accept.join().unwrap();
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// One connection: read until the peer closes, answering each whole request as the crate frames it.
fn serve(mut conn: TcpStream, requests: &Mutex<Vec<(SocketAddr, String)>>) {
    let peer = conn.peer_addr().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Each round consumes a unit of at least two bytes.
        loop {
            match frame(&buf) {
                Ok(Some(Frame::Message(len))) => {
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    let _ = conn.write_all(response_to(&text, 200).as_bytes());
                    requests.lock().unwrap().push((peer, text));
                    buf.drain(..len);
                }
                Ok(Some(Frame::Pong(len))) => {
                    buf.drain(..len);
                }
                Ok(None) => break,
                Err(e) => {
                    requests.lock().unwrap().push((peer, format!("unframed stream: {e}")));
                    return;
                }
            }
        }
    }
}

/// Runs the TCP example to `until` against the two addresses; returns its output lines.
fn run_tcp_example(exe: &Path, primary: SocketAddr, backup: SocketAddr, until: &str) -> Vec<String> {
    // The program stops by itself once `until` is reached, or fails after 10 s of its own clock.
    let run = Command::new(exe)
        .args([primary.to_string(), backup.to_string(), until.to_string()])
        .output()
        .expect("the C example runs");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "failover_tcp {until} failed ({}):\n{stdout}\n{stderr}", run.status);
    stdout.lines().map(str::to_string).collect()
}

fn assert_lines(lines: &[String], want: &[&str]) {
    for w in want {
        assert!(lines.iter().any(|l| l == w), "missing line {w:?} in the output:\n{}", lines.join("\n"));
    }
}

/// The requests a responder read: each an OPTIONS over TCP, its Via naming the connection's own
/// address (the program reports each flow's local address with `SF_COMMAND_LOCAL_ADDR`).
fn assert_tcp_options(requests: &[(SocketAddr, String)], host: &str) {
    for (peer, text) in requests {
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("OPTIONS sip:{host}")), "{text}");
        assert!(first.contains(";transport=tcp"), "{text}");
        assert!(text.contains(&format!("\r\nVia: SIP/2.0/TCP {peer};branch=z9hG4bK")), "{text}");
    }
}

#[test]
fn c_tcp_example_probes_both_servers_over_real_tcp_flows() {
    if !skip::need(have("gcc"), "gcc", "install gcc to compile and run examples/c/failover_tcp.c") {
        return;
    }
    let exe = compile("failover_tcp");
    let (primary, backup) = (Responder::start(), Responder::start());
    let lines = run_tcp_example(&exe, primary.addr, backup.addr, "replies");
    let (at_primary, at_backup) = (primary.finish(), backup.finish());

    assert_lines(
        &lines,
        &[
            "open primary flow=1 tcp",
            "connected primary flow=1",
            "flow_up primary",
            "reply primary attempt=1 status=200",
            "server_up primary",
            "open backup flow=1 tcp",
            "connected backup flow=1",
            "flow_up backup",
            "reply backup attempt=1 status=200",
            "server_up backup",
            "OK both servers answered over tcp",
        ],
    );
    for side in ["primary", "backup"] {
        let sent = format!("send {side} attempt=1 tcp via=SIP/2.0/TCP 127.0.0.1:");
        assert!(lines.iter().any(|l| l.starts_with(&sent)), "no probe to the {side} over tcp:\n{}", lines.join("\n"));
    }
    // One probe each in the first cycle (the next starts at 15 s), on the flow the agent asked for.
    assert_eq!(at_primary.len(), 1, "{at_primary:?}");
    assert_eq!(at_backup.len(), 1, "{at_backup:?}");
    assert_tcp_options(&at_primary, "pbx-a.example");
    assert_tcp_options(&at_backup, "pbx-b.example");
}

#[test]
fn c_tcp_example_fails_over_when_the_primary_refuses_connections() {
    if !skip::need(have("gcc"), "gcc", "install gcc to compile and run examples/c/failover_tcp.c") {
        return;
    }
    let exe = compile("failover_tcp");
    // A loopback port nothing listens on: connecting to it is refused at once.
    let refusing = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let backup = Responder::start();
    let lines = run_tcp_example(&exe, refusing, backup.addr, "switch");
    let at_backup = backup.finish();

    assert_lines(
        &lines,
        &[
            "refused primary flow=1",
            "flow_down primary reason=refused",
            "attempt_ended primary attempt=1",
            "refused primary flow=3",
            "attempt_ended primary attempt=3",
            "server_down primary reason=flow flow_error=refused",
            "reply backup attempt=1 status=200",
            "switch primary->backup generation=1",
            "applied backup generation=1",
            "OK active=backup generation=1",
        ],
    );
    // Each attempt of the ladder opened a new flow, refused at once; none was written to.
    let opens = lines.iter().filter(|l| l.starts_with("open primary ")).count();
    assert_eq!(opens, 3, "{}", lines.join("\n"));
    assert!(!lines.iter().any(|l| l.starts_with("send primary")), "{}", lines.join("\n"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("switch ")).count(), 1);
    assert_eq!(at_backup.len(), 1, "{at_backup:?}");
    assert_tcp_options(&at_backup, "pbx-b.example");
}
