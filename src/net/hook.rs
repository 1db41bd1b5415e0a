//! The switch hook (`--on-switch CMD`), after keepalived's notify scripts: run on every switch with the
//! new bundle in its environment; its exit status is the apply acknowledgement.
//!
//! The command runs as `sh -c CMD`, with standard input closed and its standard output sent to the
//! agent's standard error (standard output carries the JSON events). Exit status 0 within the timeout
//! acknowledges the switch ([`Command::Applied`](crate::core::Command::Applied)); anything else (a
//! non-zero status, a signal, the timeout, a command that cannot start) rolls it back
//! ([`Command::ApplyFailed`](crate::core::Command::ApplyFailed)). On a timeout the command's whole
//! process group is killed.

use std::fmt;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use super::adapter::{Adapter, Ctx, Input};
use crate::config::{Bundle, PhoneConfig};
use crate::core::{Command, Event, Side, SwitchReason};

/// The default time a hook has to finish.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The hook command and its time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOptions {
    /// The shell command line.
    pub command: String,
    /// How long it may run.
    pub timeout: Duration,
}

/// How a hook run ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum HookOutcome {
    /// Exit status 0 within the timeout.
    Success,
    /// A non-zero exit status.
    Exit(i32),
    /// Ended by a signal.
    Signal,
    /// Still running at the timeout; killed.
    Timeout,
    /// The command could not be started.
    Spawn(std::io::Error),
}

impl HookOutcome {
    /// Whether the switch is acknowledged.
    pub fn is_success(&self) -> bool {
        matches!(self, HookOutcome::Success)
    }
    /// A snake_case name for events.
    pub fn as_str(&self) -> &'static str {
        match self {
            HookOutcome::Success => "ok",
            HookOutcome::Exit(_) => "exit",
            HookOutcome::Signal => "signal",
            HookOutcome::Timeout => "timeout",
            HookOutcome::Spawn(_) => "spawn_error",
        }
    }
}

impl fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookOutcome::Success => f.write_str("exited with status 0"),
            HookOutcome::Exit(c) => write!(f, "exited with status {c}"),
            HookOutcome::Signal => f.write_str("killed by a signal"),
            HookOutcome::Timeout => f.write_str("did not finish in time and was killed"),
            HookOutcome::Spawn(e) => write!(f, "could not be started: {e}"),
        }
    }
}

/// What a switch hands the hook.
#[derive(Debug, Clone)]
pub struct SwitchInfo {
    /// The side in force (or being applied) until now.
    pub from: Side,
    /// The side to apply.
    pub to: Side,
    /// Why.
    pub reason: SwitchReason,
    /// The new bundle's generation.
    pub generation: u32,
    /// The new side's bundle.
    pub bundle: Bundle,
    /// Where the new side's SIP traffic goes (its resolved next hop).
    pub next_hop: Option<SocketAddr>,
}

/// The environment the hook sees: `SF_FROM`, `SF_TO`, `SF_REASON`, `SF_GENERATION`, `SF_SIP_SERVER`,
/// `SF_SIP_SERVER_HOST`, `SF_SIP_SERVER_PORT`, `SF_OUTBOUND_PROXY`, `SF_NEXT_HOP`, `SF_VPN_ENDPOINT`,
/// `SF_APPS` (names, space-separated) and `SF_APP_<NAME>` for each app URL. Unset values are empty.
pub fn env_vars(s: &SwitchInfo) -> Vec<(String, String)> {
    let b = &s.bundle;
    let mut v = vec![
        ("SF_FROM".to_string(), s.from.as_str().to_string()),
        ("SF_TO".to_string(), s.to.as_str().to_string()),
        ("SF_REASON".to_string(), s.reason.as_str().to_string()),
        ("SF_GENERATION".to_string(), s.generation.to_string()),
        ("SF_SIP_SERVER".to_string(), b.sip_server.to_string()),
        ("SF_SIP_SERVER_HOST".to_string(), b.sip_server.host.clone()),
        ("SF_SIP_SERVER_PORT".to_string(), b.sip_server.port.map(|p| p.to_string()).unwrap_or_default()),
        ("SF_OUTBOUND_PROXY".to_string(), b.outbound_proxy.as_ref().map(|p| p.to_string()).unwrap_or_default()),
        ("SF_NEXT_HOP".to_string(), s.next_hop.map(|a| a.to_string()).unwrap_or_default()),
        ("SF_VPN_ENDPOINT".to_string(), b.vpn_endpoint.clone().unwrap_or_default()),
    ];
    let mut names = Vec::new();
    for (name, url) in &b.apps {
        let key: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        names.push(name.clone());
        v.push((format!("SF_APP_{key}"), url.clone()));
    }
    v.push(("SF_APPS".to_string(), names.join(" ")));
    v
}

/// Runs the hook for one switch and reports how it ended. Dropping the future kills the command.
pub async fn run(opts: &HookOptions, info: &SwitchInfo) -> HookOutcome {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(&opts.command).envs(env_vars(info)).stdin(Stdio::null()).kill_on_drop(true).process_group(0);
    cmd.stdout(Stdio::from(std::io::stderr()));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookOutcome::Spawn(e),
    };
    let pid = child.id();
    match tokio::time::timeout(opts.timeout, child.wait()).await {
        Ok(Ok(status)) => match status.code() {
            Some(0) => HookOutcome::Success,
            Some(c) => HookOutcome::Exit(c),
            None => HookOutcome::Signal,
        },
        Ok(Err(e)) => HookOutcome::Spawn(e),
        Err(_) => {
            kill_group(pid).await;
            let _ = child.kill().await;
            HookOutcome::Timeout
        }
    }
}

/// Kills the process group the hook leads, so that commands it started die with it.
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = tokio::process::Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{pid}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

/// A hook run finished.
#[derive(Debug)]
pub struct HookDone {
    generation: u32,
    outcome: HookOutcome,
    elapsed: Duration,
}

/// The switch adapter: on every switch, runs the hook (a newer switch kills a hook still running)
/// and acknowledges the switch with its exit status; without a hook, acknowledges it at once.
#[derive(Debug, Default)]
pub struct Switcher {
    hook: Option<HookOptions>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Switcher {
    /// Switches applied by `hook`, or at once when `None`.
    pub fn new(hook: Option<HookOptions>) -> Switcher {
        Switcher { hook, task: None }
    }

    /// A hook finished: report it and acknowledge its switch.
    pub fn on_input(&mut self, ctx: &mut Ctx, done: HookDone) {
        let HookDone { generation, outcome, elapsed } = done;
        let code = match &outcome {
            HookOutcome::Exit(c) => Some(*c),
            HookOutcome::Success => Some(0),
            _ => None,
        };
        ctx.report(
            "hook",
            serde_json::json!({
                "generation": generation,
                "result": outcome.as_str(),
                "exit_code": code,
                "detail": outcome.to_string(),
                "elapsed_ms": elapsed.as_millis() as u64,
            }),
        );
        let cmd =
            if outcome.is_success() { Command::Applied { generation } } else { Command::ApplyFailed { generation } };
        let now = ctx.now();
        if let Err(e) = ctx.agent.handle_command(now, cmd) {
            tracing::debug!("hook result for generation {generation}: {e}");
        }
    }
}

impl Adapter for Switcher {
    fn on_event(&mut self, ctx: &mut Ctx, cfg: &PhoneConfig, ev: &Event) {
        let Event::Switch { from, to, reason, generation } = *ev else { return };
        let Some(h) = self.hook.clone() else {
            let now = ctx.now();
            if let Err(e) = ctx.agent.handle_command(now, Command::Applied { generation }) {
                tracing::debug!("applying generation {generation}: {e}");
            }
            return;
        };
        if let Some(old) = self.task.take() {
            // A newer switch supersedes a hook still running; its command is killed.
            old.abort();
        }
        let info = SwitchInfo {
            from,
            to,
            reason,
            generation,
            bundle: cfg.bundle(to),
            next_hop: ctx.agent.config().server(to).map(|s| s.next_hop),
        };
        let tx = ctx.tx.clone();
        self.task = Some(tokio::spawn(async move {
            let began = std::time::Instant::now();
            let outcome = run(&h, &info).await;
            let _ = tx.send(Input::Hook(HookDone { generation, outcome, elapsed: began.elapsed() }));
        }));
    }
}
