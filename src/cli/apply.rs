//! `sip-failover apply --mode save|rebuild|force FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::run::ClientArgs;
use crate::config::apply::{Mode, Store};
use crate::config::PhoneConfig;
use crate::net::control::{self, Request};

/// Where the apply command keeps saved and rebuilt configurations by default.
pub const DEFAULT_STORE: &str = "/var/lib/sip-failover/config";

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// save: validate and store; rebuild: store for the restart in the upgrade window; force: apply
    /// to the running agent now.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Mode,
    /// The configuration file.
    pub file: PathBuf,
    /// The folder of saved and rebuilt configurations.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// The running agent, for force.
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

/// Runs `apply`. A bad file is rejected whole in every mode: nothing is stored and the running agent
/// keeps its configuration.
pub fn apply(args: &ApplyArgs) -> ExitCode {
    let store = Store::new(&args.store);
    let result = match args.mode {
        Mode::Save => store.save(&args.file).map(|_| format!("saved {}", args.file.display())),
        Mode::Rebuild => store.rebuild(&args.file, jiff::Timestamp::now()).map(|p| match p.apply_at {
            Some(t) => format!("rebuild scheduled for the upgrade window starting {t}"),
            None => "rebuild stored; it takes effect at the next restart (no upgrade window configured)".to_string(),
        }),
        Mode::Force => {
            // Validate first, hand it to the agent, and store it only once the agent took it.
            if let Err(e) = PhoneConfig::load(&args.file) {
                eprintln!("sip-failover: {e}");
                return ExitCode::FAILURE;
            }
            let path = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
            if let Err(e) = control::request(&args.client.socket, &Request::ApplyConfig(path), args.client.timeout) {
                eprintln!("sip-failover: the running agent did not take the configuration: {e}");
                return ExitCode::FAILURE;
            }
            store.force(&args.file).map(|_| format!("applied {} to the running agent", args.file.display()))
        }
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sip-failover: {e}");
            ExitCode::FAILURE
        }
    }
}
