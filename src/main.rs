//! The `sip-failover` command line.
//!
//! Each subcommand is one enum variant and one match arm calling a library function that returns the
//! exit code; the logic lives in the library modules, not here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sip_failover::net::cli::{self, CallArg, ClientArgs, RunArgs, SideArg};
use sip_failover::net::control::Request;

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
    /// Apply a configuration file live to a running agent (force mode).
    Reload {
        /// The new configuration file.
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    // ---- added by other modules: one variant here and one arm in `main` ----
    /// Run the agent against a simulated PBX pair under a fault scenario; show and measure it.
    Lab(Box<sip_failover::sim::cli::LabArgs>),
    /// Run the simulated PBX pair alone, for other phones or agents to probe.
    PbxSim(sip_failover::sim::cli::PbxSimArgs),
    /// When a change that needs a reboot is applied: the phone's upgrade window after the buffer.
    UpgradeWindow(sip_failover::maintenance::cli::UpgradeWindowArgs),
    /// Plan an intervention into a maintenance notice feed, one cluster a week.
    Plan(sip_failover::maintenance::cli::PlanArgs),
    /// Apply a configuration file: save, rebuild (for the upgrade window) or force (live).
    Apply(sip_failover::config::cli::ApplyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run(args) => cli::run(&args),
        Cmd::CheckConfig { file } => cli::check_config(&file),
        Cmd::Status(c) => cli::client(&c, Request::Status),
        Cmd::Force { side, client } => cli::client(&client, Request::Force(side.into())),
        Cmd::Release(c) => cli::client(&c, Request::Release),
        Cmd::Failback(c) => cli::client(&c, Request::Failback),
        Cmd::Pause(c) => cli::client(&c, Request::Pause),
        Cmd::Resume(c) => cli::client(&c, Request::Resume),
        Cmd::Call { state, client } => cli::client(&client, Request::Call(state == CallArg::Start)),
        Cmd::TransactionFailed(c) => cli::client(&c, Request::TransactionFailed),
        Cmd::Reload { file, client } => cli::reload(&client, &file),
        Cmd::Lab(args) => sip_failover::sim::cli::lab(&args),
        Cmd::PbxSim(args) => sip_failover::sim::cli::pbx_sim(&args),
        Cmd::UpgradeWindow(a) => sip_failover::maintenance::cli::upgrade_window(&a),
        Cmd::Plan(a) => sip_failover::maintenance::cli::plan(&a),
        Cmd::Apply(a) => sip_failover::config::cli::apply(&a),
    }
}
