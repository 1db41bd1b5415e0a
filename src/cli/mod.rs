//! The `sip-failover` command line: all of it, above every other folder.
//!
//! Each subcommand is one enum variant and one match arm calling a function of a submodule that
//! returns the exit code; the logic lives in the library's folders, not here.
//!
//! - [`run`](crate::cli::run): `run`, `check-config` and the control clients.
//! - [`apply`](crate::cli::apply): `apply --mode save|rebuild|force`.
//! - [`maintenance`](crate::cli::maintenance): `upgrade-window` and `plan`.
//! - [`lab`](crate::cli::lab): `lab` and `pbx-sim`.

pub mod apply;
pub mod lab;
pub mod maintenance;
pub mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::net::control::Request;
use run::{CallArg, ClientArgs, RunArgs, SideArg};

/// Redundancy module of a SIP desk phone: OPTIONS probing, failover and failback of the whole service
/// bundle, planned maintenance.
#[derive(Debug, Parser)]
#[command(name = "sip-failover", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Probe the primary and backup PBX over UDP and move the bundle when one fails.
    Run(Box<RunArgs>),
    /// Validate a configuration file and show what it says.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
    /// Show a running agent's state.
    Status(ClientArgs),
    /// Pin a running agent to one side.
    Force {
        /// The side to move to and stay on.
        side: SideArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// End a force: the automatic policy applies again.
    Release(ClientArgs),
    /// Return to the primary now (manual failback).
    Failback(ClientArgs),
    /// Stop probing.
    Pause(ClientArgs),
    /// Resume probing.
    Resume(ClientArgs),
    /// Report the phone's call state (failback waits for idle).
    Call {
        /// `start` when a call begins, `end` when the phone is idle again.
        state: CallArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Report a failed SIP transaction (with fast detection, a probe cycle starts at once).
    TransactionFailed(ClientArgs),
    /// Report a SIP transaction answered 503 with Retry-After: the server announced maintenance, and
    /// the phone leaves it at an idle moment until the Retry-After has passed.
    Maintenance {
        /// The server that answered.
        side: SideArg,
        /// Its Retry-After, in seconds.
        #[arg(long = "retry-after", value_name = "SECONDS")]
        retry_after: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Apply a configuration file live to a running agent (force mode).
    Reload {
        /// The new configuration file.
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run the agent against a simulated PBX pair under a fault scenario; show and measure it.
    Lab(Box<lab::LabArgs>),
    /// Run the simulated PBX pair alone, for other phones or agents to probe.
    PbxSim(lab::PbxSimArgs),
    /// When a change that needs a reboot is applied: the phone's upgrade window after the buffer.
    UpgradeWindow(maintenance::UpgradeWindowArgs),
    /// Plan an intervention into a maintenance notice feed, one cluster a week.
    Plan(maintenance::PlanArgs),
    /// Apply a configuration file: save, rebuild (for the upgrade window) or force (live).
    Apply(apply::ApplyArgs),
}

/// Parses the process's arguments and runs the subcommand; the process exit code.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Run(args) => run::run(&args),
        Cmd::CheckConfig { file } => run::check_config(&file),
        Cmd::Status(c) => run::client(&c, Request::Status),
        Cmd::Force { side, client } => run::client(&client, Request::Force(side.into())),
        Cmd::Release(c) => run::client(&c, Request::Release),
        Cmd::Failback(c) => run::client(&c, Request::Failback),
        Cmd::Pause(c) => run::client(&c, Request::Pause),
        Cmd::Resume(c) => run::client(&c, Request::Resume),
        Cmd::Call { state, client } => run::client(&client, Request::Call(state == CallArg::Start)),
        Cmd::TransactionFailed(c) => run::client(&c, Request::TransactionFailed),
        Cmd::Maintenance { side, retry_after, client } => {
            run::client(&client, Request::Maintenance(side.into(), retry_after))
        }
        Cmd::Reload { file, client } => run::reload(&client, &file),
        Cmd::Lab(args) => lab::lab(&args),
        Cmd::PbxSim(args) => lab::pbx_sim(&args),
        Cmd::UpgradeWindow(a) => maintenance::upgrade_window(&a),
        Cmd::Plan(a) => maintenance::plan(&a),
        Cmd::Apply(a) => apply::apply(&a),
    }
}
