//! `sip-failover upgrade-window` and `sip-failover plan`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::maintenance::{plan_feed, upgrade_window_answer};

/// Arguments of `upgrade-window`.
#[derive(Debug, Args)]
pub struct UpgradeWindowArgs {
    /// The weekly window in the site's local time, e.g. "Sun 01:00-03:00".
    #[arg(long)]
    pub window: String,
    /// The site's IANA time zone, e.g. Asia/Tokyo.
    #[arg(long)]
    pub tz: String,
    /// When the change was released (RFC 3339, or a local time read in the site's zone).
    #[arg(long)]
    pub released: String,
    /// The notification buffer in hours.
    #[arg(long, default_value_t = 48)]
    pub buffer_hours: i64,
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Expected duration in minutes.
    #[arg(long)]
    pub duration: u32,
    /// Impact: none, minimal or high.
    #[arg(long)]
    pub impact: String,
    /// The clusters in rollout order, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub clusters: Vec<String>,
    /// The earliest day for the first pre-notice (RFC 3339 or a date).
    #[arg(long)]
    pub not_before: String,
    /// Notice id prefix.
    #[arg(long, default_value = "MAINT")]
    pub id_prefix: String,
    /// Notice title.
    #[arg(long, default_value = "Planned maintenance")]
    pub title: String,
    /// Write the notice feed here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The form written: the agent's notice file (toml), a Statuspage v2 `scheduled-maintenances`
    /// document (statuspage) or an iCalendar calendar (ical), so lab testers can serve realistic
    /// notices to the agent.
    #[arg(long, value_enum, default_value_t = PlanFormat::Toml)]
    pub format: PlanFormat,
}

/// What `plan` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// The notice file (`maintenance.notices`).
    Toml,
    /// A Statuspage v2 `scheduled-maintenances` JSON document (`upcoming.json`).
    Statuspage,
    /// An RFC 5545 iCalendar calendar (`maintenance.calendar`).
    Ical,
}

/// Runs `upgrade-window`: prints the chosen window start.
pub fn upgrade_window(a: &UpgradeWindowArgs) -> ExitCode {
    match upgrade_window_answer(&a.window, &a.tz, &a.released, Some(a.buffer_hours)) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sip-failover: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `plan`: writes the notice feed.
pub fn plan(a: &PlanArgs) -> ExitCode {
    let clusters: Vec<&str> = a.clusters.iter().map(String::as_str).collect();
    let feed = match plan_feed(a.duration, &a.impact, &clusters, &a.not_before, &a.id_prefix, &a.title) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sip-failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match a.format {
        PlanFormat::Toml => feed.to_toml(),
        PlanFormat::Statuspage => crate::maintenance::statuspage::to_json(feed.notices(), &a.id_prefix) + "\n",
        PlanFormat::Ical => crate::maintenance::icalendar::to_ical(feed.notices()),
    };
    match &a.out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(p) => match crate::files::write_atomic(p, text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sip-failover: {}: {e}", p.display());
                ExitCode::FAILURE
            }
        },
    }
}
