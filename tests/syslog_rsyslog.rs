//! The syslog sink against real rsyslog (Debian packages `rsyslog` and `rsyslog-gnutls`): one
//! `rsyslogd -n` per test on loopback ports, with `imudp`, `imtcp` and `imtcp` over TLS (the `gtls`
//! driver, a certificate made with `openssl` for the test), `mmpstrucdata` to parse the structured
//! data, and a JSON template writing each message to a file the test reads.
//!
//! Agents run against loopback responders; their JSON events on stdout are compared with what the
//! collector wrote. Every wait is bounded and on content (events, lines in the file).
//!
//! Without `rsyslogd` (or `openssl` for TLS) the tests say SKIPPED and pass, unless
//! `REQUIRE_PEERS=1`, where they fail.

mod interop_common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interop_common::*;
use serde_json::Value;

/// How long to wait for what should come: the sender's reconnect backoff doubles up to 30 s, so a
/// collector restarted late may wait that long for the agent's next try.
const WAIT: Duration = Duration::from_secs(60);

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA certificate, and a certificate for `localhost` / 127.0.0.1 it signed with its key, made
/// with openssl: (CA, certificate, key). (rustls does not take a self-signed CA as the server's own.)
fn make_cert(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key, cert, key, csr, ext) = (
        dir.join("ca.pem"),
        dir.join("ca-key.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("cert.csr"),
        dir.join("ext.cnf"),
    );
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let run = |args: Vec<&std::ffi::OsStr>| {
        let ok = Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "openssl could not make the test certificates");
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run(vec![
        os("req"),
        os("-x509"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-days"),
        os("2"),
        os("-subj"),
        os("/CN=sip-failover test CA"),
        os("-keyout"),
        ca_key.as_os_str(),
        os("-out"),
        ca.as_os_str(),
    ]);
    run(vec![
        os("req"),
        os("-newkey"),
        os("rsa:2048"),
        os("-nodes"),
        os("-subj"),
        os("/CN=localhost"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ]);
    run(vec![
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("2"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    (ca, cert, key)
}

/// rsyslogd in the foreground with its own configuration, killed on drop.
struct Rsyslog {
    child: Child,
    conf: PathBuf,
    pidfile: PathBuf,
    out: PathBuf,
    log: PathBuf,
    tcp_port: u16,
}

struct Ports {
    udp: u16,
    tcp: u16,
    tls: Option<u16>,
}

impl Rsyslog {
    fn configure(dir: &TempDir, ports: &Ports, cert: Option<&(PathBuf, PathBuf, PathBuf)>) -> PathBuf {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("out.json");
        let tls_global = match cert {
            Some((ca, c, k)) => format!(
                " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                ca.display(),
                c.display(),
                k.display()
            ),
            None => String::new(),
        };
        let tls_input = match ports.tls {
            Some(p) => format!(
                "input(type=\"imtcp\" name=\"tls\" address=\"127.0.0.1\" port=\"{p}\" streamDriver.name=\"gtls\" \
                 streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n"
            ),
            None => String::new(),
        };
        let conf = format!(
            r#"global(workDirectory="{work}"{tls_global})
module(load="imudp")
module(load="imtcp" maxSessions="20")
module(load="mmpstrucdata")
input(type="imudp" name="udp" address="127.0.0.1" port="{udp}")
input(type="imtcp" name="tcp" address="127.0.0.1" port="{tcp}")
{tls_input}template(name="j" type="list" option.jsonf="on") {{
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="input" name="inputname" format="jsonf")
  property(outname="sd" name="$!" format="jsonf")
}}
action(type="mmpstrucdata" sd_name.lowercase="off")
action(type="omfile" file="{out}" template="j")
"#,
            work = work.display(),
            udp = ports.udp,
            tcp = ports.tcp,
            out = out.display(),
        );
        let p = dir.join("rsyslog.conf");
        std::fs::write(&p, conf).unwrap();
        p
    }

    fn start(dir: &TempDir, conf: &Path, tcp_port: u16) -> Rsyslog {
        let log = dir.join(&format!("rsyslogd-{}.log", unique()));
        let pidfile = dir.join("rsyslogd.pid");
        let _ = std::fs::remove_file(&pidfile);
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(which("rsyslogd").unwrap())
            .arg("-n")
            .arg("-f")
            .arg(conf)
            .arg("-i")
            .arg(&pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start rsyslogd");
        let mut r = Rsyslog { child, conf: conf.to_path_buf(), pidfile, out: dir.join("out.json"), log, tcp_port };
        // Ready when its TCP input accepts (the inputs start together).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", tcp_port)).is_err() {
            if let Ok(Some(st)) = r.child.try_wait() {
                panic!("rsyslogd exited ({st}):\n{}", r.log_text());
            }
            assert!(Instant::now() < deadline, "rsyslogd never listened:\n{}", r.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages written so far, each with its structured data parsed.
    fn messages(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|mut v| {
                // `$!` comes out as JSON text: the SD-ELEMENTs by SD-ID, their PARAMs by name.
                let sd = v["sd"].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()).unwrap_or(Value::Null);
                v["sd"] = sd["rfc5424-sd"].clone();
                v
            })
            .collect()
    }

    /// Waits until the messages satisfy `pred`.
    fn wait(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.messages();
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog never had {what}; it wrote:\n{}\nits log:\n{}",
                m.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: rsyslog writes what it received, closes its connections and exits.
    fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

fn params(m: &Value) -> &Value {
    &m["sd"]["sipfailover@32473"]
}

fn seq(m: &Value) -> u64 {
    m["sd"]["meta"]["sequenceId"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Over each transport: every event kind the agent printed up to its switch arrives, with its
/// fields as parsed structured data, the header fields right and the sequence counting up.
#[test]
fn every_event_kind_reaches_rsyslog_over_udp_tcp_and_tls() {
    if !peer_available("rsyslogd", "rsyslog") {
        return;
    }
    let tls = peer_available("openssl", "openssl");
    let dir = TempDir::new("syslog");
    let cert = tls.then(|| make_cert(&dir));
    let ports = Ports { udp: free_port(), tcp: free_tcp_port(), tls: tls.then(free_tcp_port) };
    let conf = Rsyslog::configure(&dir, &ports, cert.as_ref());
    let rs = Rsyslog::start(&dir, &conf, ports.tcp);

    let mut urls =
        vec![("udp", format!("udp://127.0.0.1:{}", ports.udp)), ("tcp", format!("tcp://127.0.0.1:{}", ports.tcp))];
    if let Some(p) = ports.tls {
        urls.push(("tls", format!("tls://localhost:{p}")));
    }
    let mut runs = Vec::new();
    for (input, url) in &urls {
        let (p, b) = (Responder::start(Mode::Answer(200)), Responder::start(Mode::Answer(200)));
        let cfg = write_config(&dir, &format!("{input}.toml"), p.addr, b.addr, "");
        let mut args = vec!["--config", cfg.to_str().unwrap(), "--syslog", url.as_str()];
        let ca = cert.as_ref().map(|(ca, _, _)| ca.to_string_lossy().into_owned());
        if *input == "tls" {
            args.extend(["--syslog-ca-file", ca.as_deref().unwrap()]);
        }
        let agent = AgentProc::start(&args, dir.path());
        runs.push((*input, agent, p, b));
    }
    for (_, agent, p, _) in &mut runs {
        agent.wait_for(WAIT, "a reply", |e| e["event"] == "reply");
        p.set(Mode::Drop);
    }
    for (input, agent, _, _) in &mut runs {
        agent.wait_for(WAIT, "the switch's application", |e| e["event"] == "applied" && e["side"] == "backup");
        let kinds: BTreeSet<String> =
            agent.events.iter().filter_map(|e| e["event"].as_str().map(str::to_string)).collect();
        let of_agent = |m: &Value| m["input"] == *input && m["sd"].is_object() && m["app"] == "sip-failover";
        // Over UDP a datagram sent before rsyslog's input was up may be gone; the kinds recur except
        // `started`, which a stream carries from the first connection.
        let expect: BTreeSet<String> =
            kinds.iter().filter(|k| *input != "udp" || k.as_str() != "started").cloned().collect();
        let msgs = rs.wait(&format!("every event kind of the {input} agent ({expect:?})"), |ms| {
            let got: BTreeSet<String> =
                ms.iter().filter(|m| of_agent(m)).filter_map(|m| m["msgid"].as_str().map(str::to_string)).collect();
            expect.is_subset(&got)
        });
        let mine: Vec<&Value> = msgs.iter().filter(|m| of_agent(m)).collect();
        for m in &mine {
            assert_eq!(m["facility"], "16", "local0: {m}");
            assert!(seq(m) >= 1, "a sequenceId: {m}");
            assert!(params(m)["t_ms"].as_str().is_some_and(|t| t.parse::<u64>().is_ok()), "t_ms: {m}");
        }
        let seqs: Vec<u64> = mine.iter().map(|m| seq(m)).collect();
        if *input != "udp" {
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{input}: sequenceIds count up by one: {seqs:?}");
        }
        let switch = mine.iter().find(|m| m["msgid"] == "switch").unwrap();
        assert_eq!(params(switch)["from"], "primary", "{switch}");
        assert_eq!(params(switch)["to"], "backup", "{switch}");
        assert_eq!(params(switch)["reason"], "failover", "{switch}");
        assert_eq!(switch["severity"], "4", "a switch is a warning: {switch}");
        let reply = mine.iter().find(|m| m["msgid"] == "reply").unwrap();
        assert_eq!(params(reply)["status"], "200", "{reply}");
        assert!(params(reply)["rtt_ms"].as_str().is_some_and(|r| r.parse::<f64>().is_ok()), "{reply}");
        let down = mine.iter().find(|m| m["msgid"] == "cycle_result" && params(m)["alive"] == "false").unwrap();
        assert_eq!(params(down)["reason"], "timeout", "{down}");
        // The agent's own event and the message carry the same t_ms.
        let ev_switch = agent.events.iter().find(|e| e["event"] == "switch").unwrap();
        assert_eq!(params(switch)["t_ms"], ev_switch["t_ms"].to_string(), "{switch}");
    }
}

/// A collector killed and restarted mid-run: the messages that did not fit the queue are counted and
/// reported in a `syslog_dropped` message once it is back; everything else arrives. Over TCP the one
/// message written after the collector closed and before its reset is seen is lost without a count
/// (the kernel accepted it; a second may follow before the reset arrives), so the test allows up to
/// two more gaps than the count says.
#[test]
fn a_restarted_collector_gets_the_queue_and_the_count_of_what_was_dropped() {
    if !peer_available("rsyslogd", "rsyslog") {
        return;
    }
    let dir = TempDir::new("syslog-restart");
    let ports = Ports { udp: free_port(), tcp: free_tcp_port(), tls: None };
    let conf = Rsyslog::configure(&dir, &ports, None);
    let mut rs = Rsyslog::start(&dir, &conf, ports.tcp);
    let (p, b) = (Responder::start(Mode::Answer(200)), Responder::start(Mode::Answer(200)));
    let cfg = write_config(&dir, "restart.toml", p.addr, b.addr, "");
    let url = format!("tcp://127.0.0.1:{}", ports.tcp);
    let queue = 4usize;
    let mut agent =
        AgentProc::start(&["--config", cfg.to_str().unwrap(), "--syslog", &url, "--syslog-queue", "4"], dir.path());
    rs.wait("the first cycle", |ms| ms.iter().any(|m| m["msgid"] == "cycle_result"));

    rs.terminate();
    // On SIGTERM rsyslog writes all it received, so what the agent printed after the last t_ms in the
    // file never reached it. Two more cycles past that (about ten events each, more than the queue
    // holds) before the collector comes back.
    let last = rs.messages().iter().filter_map(|m| params(m)["t_ms"].as_str()?.parse::<u64>().ok()).max().unwrap();
    agent.wait_for(WAIT, "two cycles past the collector's last message", |e| {
        // `write_config` probes every 2 s.
        e["event"] == "cycle_result" && t(e) >= last + 2 * 2000
    });
    let rs2 = Rsyslog::start(&dir, &rs.conf, rs.tcp_port);
    let msgs = rs2.wait("a syslog_dropped report", |ms| ms.iter().any(|m| m["msgid"] == "syslog_dropped"));
    let report = msgs.iter().find(|m| m["msgid"] == "syslog_dropped").unwrap();
    let count: u64 = params(report)["count"].as_str().unwrap().parse().unwrap();
    assert_eq!(params(report)["queue"], queue.to_string(), "{report}");
    assert_eq!(report["severity"], "3", "{report}");
    assert!(count >= 1, "{report}");
    // After the report, the queue's messages and the one being written when the collector went.
    let after = rs2.wait("the queue after the report", |ms| {
        let i = ms.iter().position(|m| m["msgid"] == "syslog_dropped").unwrap();
        ms.len() > i + queue
    });
    let seqs: BTreeSet<u64> = after.iter().map(seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    let missing = (lo..=hi).filter(|s| !seqs.contains(s)).count() as u64;
    assert!(
        missing >= count && missing <= count + 2,
        "{missing} messages missing, {count} reported dropped; sequenceIds {seqs:?}"
    );
}
