//! What the `lab` and `pbx-sim` subcommands call.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::core::{Duration, Event, Instant, Side};
use crate::sim::scenario::{shipped, Scenario, StepAction, Target, SHIPPED};
use crate::sim::summary::{render, secs};
use crate::sim::timeline::{is_shown, live_line, Record, What};
use crate::sim::{fleet, r#virtual, realtime, udp, Live, RunOutput, SimError};

/// Which live lines `lab` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum Lines {
    /// Every probe, reply, timeout, state change and switch.
    All,
    /// Faults, servers going down or up, switches.
    Changes,
    /// Only the summary.
    None,
}

/// `sip-failover lab`: run the agent against a simulated PBX pair under a fault scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// A scenario file (TOML), or the name of a shipped one (`lab --list`); the built-in
    /// primary-blackholed scenario when omitted.
    pub scenario: Option<PathBuf>,
    /// List the shipped scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Run on virtual time: as fast as the CPU allows, seeded and exact.
    #[arg(long = "virtual")]
    pub virtual_time: bool,
    /// How many phones to run in this one process against the pair.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub phones: u32,
    /// Seed of every random source (agents' branches and tags, the pair's losses).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write `timeline.svg`, `timeline.jsonl`, `summary.txt` and `summary.json`.
    #[arg(long, default_value = "target/lab")]
    pub out: PathBuf,
    /// Which live lines to print (default: all for one phone, changes for fleets).
    #[arg(long, value_enum)]
    pub lines: Option<Lines>,
    /// Serve the run's Prometheus metrics on `http://ADDR:PORT/metrics` while it runs in real time:
    /// the agent's series summed over the phones, and the phones on each side.
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::config::telemetry::parse_metrics_addr)]
    pub metrics: Option<SocketAddr>,
    /// Leave the fleet's loop on the ordinary scheduler instead of asking for real-time
    /// scheduling (SCHED_FIFO, granted to root or with CAP_SYS_NICE or an rtprio limit).
    #[arg(long)]
    pub no_realtime: bool,
    /// Keep the machine's CPUs polling when idle while a fleet runs, instead of halting (a PM QoS
    /// request on /dev/cpu_dma_latency, granted to root): a timer is then served without waking a
    /// CPU first; the idle CPUs spin meanwhile.
    #[arg(long)]
    pub idle_poll: bool,
    /// Fleets boot their phones in groups of this many, the groups spread evenly over one interval
    /// (1: each phone at its own time); a group's timers come due together.
    #[arg(long, value_name = "N", default_value_t = crate::sim::fleet::DEFAULT_BOOT_GROUP, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub boot_group: usize,
    /// Run a fleet's phones in this many loops, each on a thread of its own with its own sockets
    /// and its own simulated pair (boot groups dealt round them): 2 puts both cores of a 2-core
    /// machine to work.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub shards: usize,
}

/// Serves `m` on `addr` from a thread of its own for the rest of the process; the bound address, or
/// why it could not be bound.
fn serve_metrics(addr: SocketAddr, m: crate::net::metrics::Metrics) -> std::io::Result<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let bound = crate::net::metrics::serve(addr, m).await;
            let ok = bound.is_ok();
            let _ = tx.send(bound);
            if ok {
                std::future::pending::<()>().await;
            }
        });
    });
    rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("the metrics thread ended")))
}

/// `sip-failover pbx-sim`: run the simulated pair alone until Ctrl-C.
#[derive(Debug, Clone, clap::Args)]
pub struct PbxSimArgs {
    /// The primary's address.
    #[arg(long, default_value = "127.0.0.1:25060")]
    pub primary: SocketAddr,
    /// The backup's address.
    #[arg(long, default_value = "127.0.0.1:25062")]
    pub backup: SocketAddr,
    /// A scenario whose fault script the pair plays (its phone settings are ignored); healthy forever
    /// when omitted.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seed of the pair's random losses.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print every request received, not only the faults and a count every 10 s.
    #[arg(long)]
    pub verbose: bool,
    /// Where to write the lab CA's certificate when a server is TLS (the phone's `tls_ca_file`).
    #[arg(long, default_value = "target/lab/pbx-sim-ca.pem")]
    pub ca_file: PathBuf,
}

/// `println!` that ignores a closed stdout (`lab | head` must not panic).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

fn load(path: Option<&Path>) -> Result<Scenario, ExitCode> {
    let fail = |e: crate::files::FileError| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    match path {
        None => Ok(Scenario::builtin()),
        Some(p) if !p.exists() => match p.to_str().and_then(shipped) {
            Some(r) => r.map_err(fail),
            None => {
                eprintln!("error: {}: no such file, nor a shipped scenario (see `lab --list`)", p.display());
                Err(ExitCode::from(2))
            }
        },
        Some(p) => Scenario::load(p).map_err(fail),
    }
}

fn list() -> ExitCode {
    say!("shipped scenarios (run one with `lab NAME`, or give a file):");
    for (name, _) in SHIPPED {
        match shipped(name) {
            Some(Ok(s)) => say!("  {name:<27} {:>10}  {}", secs(s.duration), s.description),
            _ => say!("  {name}"),
        }
    }
    ExitCode::SUCCESS
}

/// Prints live lines, with a progress status line on stderr when it is a terminal.
struct Printer {
    duration: Duration,
    lines: Lines,
    status: bool,
    shown: bool,
    active: Side,
}

impl Printer {
    fn record(&mut self, r: &Record) {
        if let What::Agent(Event::Applied { side, .. }) = r.what {
            self.active = side;
        }
        let show = match self.lines {
            Lines::All => is_shown(r),
            Lines::Changes => matches!(
                r.what,
                What::Fault(_)
                    | What::Call(_)
                    | What::NoticePublished { .. }
                    | What::Windows(_)
                    | What::PageError(_)
                    | What::Agent(
                        Event::ServerDown { .. }
                            | Event::ServerUp { .. }
                            | Event::Switch { .. }
                            | Event::NoServerReachable
                            | Event::FlowDown { .. }
                            | Event::Held { .. }
                    )
            ),
            Lines::None => false,
        };
        if show {
            self.clear();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", live_line(r, self.duration));
        }
    }

    fn tick(&mut self, now: Instant) {
        if !self.status {
            return;
        }
        let total = self.duration.as_micros().max(1);
        let done = (now.as_micros().min(total) * 30 / total) as usize;
        let _ = write!(
            std::io::stderr(),
            "\r[{}{}] {:>6.1}s / {}s   active: {}   ",
            "#".repeat(done),
            ".".repeat(30 - done),
            now.as_micros() as f64 / 1e6,
            total.div_ceil(1_000_000),
            self.active
        );
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

fn describe(s: &Scenario) -> String {
    let mut out = format!(
        "scenario {}: {}\n  phone: interval {}, ladder {:?} ms, failback {:?} after {} cycles{}\n",
        s.name,
        s.description,
        secs(s.phone.interval),
        s.phone.ladder.waits().iter().map(|w| w.as_millis()).collect::<Vec<_>>(),
        s.phone.failback,
        s.phone.failback_after,
        if s.phone.fast_refused { ", refusals end attempts at once" } else { "" }
    );
    for w in &s.windows {
        out.push_str(&format!(
            "  planned window on the {} from {} to {} (the phone may leave {} before)\n",
            w.side,
            secs(w.start),
            secs(w.end),
            secs(s.phone.planned_lead)
        ));
    }
    let mut lines: Vec<(Duration, String, String)> = Vec::new();
    for st in &s.steps {
        let who = match st.target {
            Target::One(side) => side.as_str().to_string(),
            _ => "both".to_string(),
        };
        let what = match st.action {
            StepAction::Set(a) => a.to_string(),
            StepAction::Flap { period } => format!("flap every {}", secs(period)),
            StepAction::RollingRestart { down_for, gap } => {
                format!("rolling restart: each down {}, {} apart", secs(down_for), secs(gap))
            }
        };
        lines.push((st.at, who, what));
    }
    for c in &s.calls {
        lines.push((c.at, "phone".into(), if c.in_call { "call starts" } else { "call ends" }.into()));
    }
    for n in &s.notices {
        let what = format!(
            "notice {} published: the {}'s maintenance from {} to {}",
            n.id,
            n.side,
            secs(n.start),
            secs(n.end)
        );
        lines.push((n.at, "page".into(), what));
    }
    // In time order; at the same time, in the order above.
    lines.sort_by_key(|l| l.0);
    for (at, who, what) in lines {
        out.push_str(&format!("  at {:>9}  {who:<7}  {what}\n", secs(at)));
    }
    out
}

/// `lab`: runs the scenario, prints the live timeline and the summary, writes the picture and the
/// JSON lines. Exit code 0, or 2 for a bad scenario, 1 for a failed run.
pub fn lab(args: &LabArgs) -> ExitCode {
    if args.list {
        return list();
    }
    let scenario = match load(args.scenario.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let phones = args.phones as usize;
    let fleet_extend = if phones > 1 { scenario.phone.interval } else { Duration::ZERO };
    let duration = scenario.duration + fleet_extend;
    let transports = scenario.phone.transports;
    let over = if transports[0] == transports[1] {
        transports[0].as_str().to_uppercase()
    } else {
        format!("{} and {}", transports[0].as_str().to_uppercase(), transports[1].as_str().to_uppercase())
    };
    let mode = if args.virtual_time { "virtual time".to_string() } else { format!("real time over loopback {over}") };
    say!("{}", describe(&scenario));
    say!("running {} phone{} on {mode}, seed {}\n", phones, if phones == 1 { "" } else { "s" }, args.seed);
    let lines = args.lines.unwrap_or(if phones > 1 { Lines::Changes } else { Lines::All });
    let mut printer = Printer {
        duration,
        lines,
        status: !args.virtual_time && std::io::stderr().is_terminal(),
        shown: false,
        active: Side::Primary,
    };
    let metrics = match args.metrics {
        Some(_) if args.virtual_time => {
            eprintln!("error: --metrics serves a run in real time; a --virtual run is over before a scrape");
            return ExitCode::from(2);
        }
        Some(addr) => {
            let m = crate::net::metrics::Metrics::for_fleet(phones);
            match serve_metrics(addr, m.clone()) {
                Ok(bound) => say!("metrics on http://{bound}/metrics"),
                Err(e) => {
                    eprintln!("error: --metrics {addr}: {e}");
                    return ExitCode::from(1);
                }
            }
            Some(m)
        }
        None => None,
    };
    let count = |l: &Live<'_>| {
        if let (Some(m), Live::Event { event, .. }) = (&metrics, l) {
            m.core(event);
        }
    };
    let started = std::time::Instant::now();
    let result: Result<RunOutput, SimError> = if args.virtual_time {
        let opts = r#virtual::VirtualOptions { phones, seed: args.seed, extend: fleet_extend, ..Default::default() };
        r#virtual::run(&scenario, &opts, &mut |r| printer.record(r))
    } else if phones > 1 {
        fleet::run(
            &scenario,
            &fleet::FleetOptions {
                phones,
                seed: args.seed,
                extend: fleet_extend,
                realtime: !args.no_realtime,
                idle_poll: args.idle_poll,
                boot_group: args.boot_group,
                shards: args.shards,
            },
            &mut |l| match l {
                Live::Record(r) => printer.record(r),
                Live::Tick(now) => printer.tick(now),
                l => count(&l),
            },
        )
    } else {
        realtime::run(&scenario, args.seed, &mut |l| match l {
            Live::Record(r) => printer.record(r),
            Live::Tick(now) => printer.tick(now),
            l => count(&l),
        })
    };
    printer.clear();
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let wall = started.elapsed();
    let summary = out.tracker.summary(out.pair.peak());
    let text = render(&out.tracker, &summary);
    let mut text = format!("{text}{}", pair_line(&out));
    for w in scenario.windows.iter().copied().chain(scenario.notices.iter().map(|n| n.span())) {
        let inside = crate::sim::summary::in_force_inside(&out.tracker, &w);
        text.push_str(&format!(
            "planned window on the {} from {} to {}: the {} was in force inside it for {}{}\n",
            w.side,
            secs(w.start),
            secs(w.end),
            w.side,
            secs(inside),
            if inside == Duration::ZERO { " (no call traffic went to it)" } else { "" }
        ));
    }
    say!("\n{text}");
    say!(
        "ran {} of {} in {:.2} s of wall-clock time",
        secs(out.end - Instant::ZERO),
        if args.virtual_time { "virtual time" } else { "real time" },
        wall.as_secs_f64()
    );
    let mut json = crate::sim::summary::to_json(&out.tracker, &summary);
    json["scenario"] = serde_json::json!(scenario.name);
    json["seed"] = serde_json::json!(args.seed);
    json["virtual"] = serde_json::json!(args.virtual_time);
    let fleet = (summary.phones > 1).then_some((scenario.name.as_str(), summary.phones));
    match write_outputs(&args.out, &out, &text, &json, fleet) {
        Ok(()) => {
            say!(
                "wrote {}, {}, {} and {}{}",
                args.out.join("timeline.svg").display(),
                args.out.join("timeline.jsonl").display(),
                args.out.join("summary.txt").display(),
                args.out.join("summary.json").display(),
                if fleet.is_some() { format!(", and {}", args.out.join("fleet.svg").display()) } else { String::new() }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing to {}: {e}", args.out.display());
            ExitCode::from(1)
        }
    }
}

fn pair_line(out: &RunOutput) -> String {
    let mut s = String::new();
    for (side, st) in Side::BOTH.iter().zip(out.pair.servers.iter()) {
        s.push_str(&format!(
            "pair {side}: {} requests, {} answered, {} unanswered, {} refused, {} malformed{}\n",
            st.requests,
            st.answered,
            st.dropped,
            st.refused,
            st.malformed,
            if st.connects > 0 {
                format!(", {} connections ({} completed)", st.connects, st.connected)
            } else {
                String::new()
            }
        ));
    }
    if !out.phones_busy.is_zero() {
        let probes = out.tracker.probes.max(1);
        s.push_str(&format!(
            "busy time: phones {:.3} s ({:.2} µs per probe), pair {:.3} s ({:.2} µs per request)\n",
            out.phones_busy.as_secs_f64(),
            out.phones_busy.as_secs_f64() * 1e6 / probes as f64,
            out.pair.busy.as_secs_f64(),
            out.pair.busy.as_secs_f64() * 1e6
                / (out.pair.servers[0].requests + out.pair.servers[1].requests).max(1) as f64
        ));
        let requests = (out.pair.servers[0].requests + out.pair.servers[1].requests).max(1) as f64;
        s.push_str(&format!(
            "whole-process CPU (every thread, getrusage): user {:.3} s + system {:.3} s = {:.2} µs per request at the pair\n",
            out.cpu.user.as_secs_f64(),
            out.cpu.system.as_secs_f64(),
            out.cpu.total().as_secs_f64() * 1e6 / requests
        ));
        s.push_str("phones' loop: ");
        if out.phones_loops > 1 {
            s.push_str(&format!("{} loops (shards), each ", out.phones_loops));
        }
        if let Some(sched) = &out.phones_scheduling {
            s.push_str(&format!("scheduled {sched}; "));
        }
        if let Some(idle) = &out.phones_idle {
            s.push_str(&format!("{idle}; "));
        }
        s.push_str(&format!("longest pass {:.3} ms", out.phones_longest_pass.as_secs_f64() * 1e3));
        for (what, d) in [
            ("woke after its timer", out.phones_wake_lag),
            ("timers handled after their deadline", out.phones_timer_lag),
        ] {
            if let Some(d) = d {
                s.push_str(&format!(
                    "; {what} p50 / p99 / max {} / {} / {}",
                    crate::sim::summary::millis(d.p50),
                    crate::sim::summary::millis(d.p99),
                    crate::sim::summary::millis(d.max)
                ));
            }
        }
        s.push('\n');
    }
    s
}

/// Writes the run's files into `dir`; with `fleet` (the scenario's name and the number of phones),
/// the fleet picture too.
fn write_outputs(
    dir: &Path,
    out: &RunOutput,
    summary: &str,
    json: &serde_json::Value,
    fleet: Option<(&str, usize)>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("timeline.svg"), out.timeline.svg())?;
    if let Some((name, phones)) = fleet {
        let svg = crate::sim::fleet_svg::fleet_svg(name, &out.tracker, phones, out.end - Instant::ZERO);
        std::fs::write(dir.join("fleet.svg"), svg)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("timeline.jsonl"))?);
    out.timeline.write_jsonl(&mut f)?;
    f.flush()?;
    std::fs::write(dir.join("summary.txt"), summary)?;
    std::fs::write(dir.join("summary.json"), format!("{json:#}\n"))
}

/// `pbx-sim`: runs the pair on `--primary` and `--backup` until Ctrl-C.
pub fn pbx_sim(args: &PbxSimArgs) -> ExitCode {
    let scenario = match args.scenario.as_deref() {
        None => None,
        Some(p) => match load(Some(p)) {
            Ok(s) => Some(s),
            Err(code) => return code,
        },
    };
    match udp::serve_until_ctrl_c(args.primary, args.backup, scenario.as_ref(), args.seed, args.verbose, &args.ca_file)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
