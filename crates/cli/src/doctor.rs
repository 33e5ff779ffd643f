//! `warden doctor`: which isolation layers this host offers and what Warden does about each
//! missing one.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use warden_sandbox::host::{self, LayerStatus};

/// Options of `warden doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    layers: &'a [LayerStatus],
    cgroup: Option<String>,
    landlock_abi: Option<u32>,
    advisories: &'a [String],
    all_available: bool,
}

/// What Warden does when `status` is missing.
fn consequence(status: &LayerStatus) -> String {
    if status.layer.can_be_missing() {
        format!("Warden refuses to run unless started with --allow-missing {}, and then reports it in every Outcome", status.layer)
    } else {
        "Warden refuses to run (this layer cannot be skipped)".to_string()
    }
}

/// Runs `warden doctor`; exit status 1 when any layer is missing.
pub fn main(args: DoctorArgs) -> ExitCode {
    let report = host::probe();
    let all_available = report.layers.iter().all(|l| l.available);
    if args.json {
        let out = Report {
            layers: &report.layers,
            cgroup: report.cgroup.as_ref().map(|c| c.describe()),
            landlock_abi: report.landlock_abi,
            advisories: &report.advisories,
            all_available,
        };
        match serde_json::to_string_pretty(&out) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("warden: error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("Isolation layers on this host:");
        for status in &report.layers {
            let mark = if status.available {
                "ok     "
            } else {
                "MISSING"
            };
            println!("  {mark} {:<13} {}", status.layer.name(), status.detail);
            if !status.available {
                if let Some(remedy) = &status.remedy {
                    println!("          why/fix: {remedy}");
                }
                println!("          Warden:  {}", consequence(status));
            }
        }
        if all_available {
            println!("All layers available.");
        }
        for advice in &report.advisories {
            println!("Advice (speed, not safety): {advice}");
        }
    }
    if all_available {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
