//! `warden doctor`: which isolation layers this host offers and what Warden does about each
//! missing one; with `--config`, also the deployment posture ([`crate::posture`]).

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use warden_sandbox::host::{self, LayerStatus};

use crate::posture::{self, Item, Status, StoreFacts};

/// Options of `warden doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also judge this warden.toml's deployment posture (credentials, JWT secret, CORS, TLS,
    /// headers, rate limits, audit log, file permissions, secrets outside git, egress ranges).
    #[arg(long, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    layers: &'a [LayerStatus],
    cgroup: Option<String>,
    landlock_abi: Option<u32>,
    advisories: &'a [String],
    all_available: bool,
    /// A real sandbox of `true` ran (the probe alone can be fooled, e.g. by a container's
    /// seccomp profile that blocks `unshare`); `Err` carries the reason it did not.
    self_test: SelfTest,
    #[serde(skip_serializing_if = "Option::is_none")]
    posture: Option<&'a [Item]>,
    /// `"passed/total"` over the posture items.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<String>,
}

/// The self-test's result in the JSON report.
#[derive(Serialize)]
struct SelfTest {
    passed: bool,
    error: Option<String>,
}

/// Runs `true` in a real sandbox with every layer the probe found (missing ones allowed, as
/// they are already reported), because a probe can say yes where setup then fails.
fn self_test(report: &host::HostReport) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the warden binary: {e}"))?;
    let sandbox = warden_sandbox::Sandbox::new(exe).map_err(|e| e.to_string())?;
    let mut spec = warden_sandbox::Spec::new("true", Vec::<String>::new());
    spec.allow_missing = report
        .layers
        .iter()
        .filter(|l| !l.available && l.layer.can_be_missing())
        .map(|l| l.layer)
        .collect();
    match sandbox.run(&spec) {
        Ok(outcome) if outcome.exit_code == Some(0) => Ok(()),
        Ok(outcome) => Err(format!(
            "`true` ended with {:?}/{:?}: {}",
            outcome.exit_code,
            outcome.signal,
            outcome.exec_error.unwrap_or_default()
        )),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// Reads what the posture needs from the store, without creating one.
fn store_facts(config: &warden_server::Config) -> anyhow::Result<Option<StoreFacts>> {
    if !config.server.data_dir.join("warden.db").exists() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = warden_server::Store::open(&config.server.data_dir).await?;
        let active_keys = store.active_keys().await?;
        let audit = match store.verify_audit().await? {
            Ok(head) => Ok(head.events),
            Err(broken) => Err(broken.to_string()),
        };
        store.close().await;
        Ok(Some(StoreFacts { active_keys, audit }))
    })
}

/// What Warden does when `status` is missing.
fn consequence(status: &LayerStatus) -> String {
    if status.layer.can_be_missing() {
        format!("Warden refuses to run unless started with --allow-missing {}, and then reports it in every Outcome", status.layer)
    } else {
        "Warden refuses to run (this layer cannot be skipped)".to_string()
    }
}

/// Runs `warden doctor`; exit status 1 when any layer is missing or any posture item fails,
/// 2 when the configuration cannot be read.
pub fn main(args: DoctorArgs) -> ExitCode {
    let report = host::probe();
    let all_available = report.layers.iter().all(|l| l.available);
    let posture = match &args.config {
        None => None,
        Some(path) => {
            let assessed = warden_server::Config::load(Some(path))
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    let facts = store_facts(&config)?;
                    Ok(posture::assess(&config, &report, facts.as_ref()))
                });
            match assessed {
                Ok(items) => Some(items),
                Err(e) => {
                    eprintln!("warden: error: {e:#}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let self_test = self_test(&report);
    let score = posture.as_deref().map(posture::score);
    let posture_failed = score.is_some_and(|(_, _, failed)| failed);
    if args.json {
        let out = Report {
            layers: &report.layers,
            cgroup: report.cgroup.as_ref().map(|c| c.describe()),
            landlock_abi: report.landlock_abi,
            advisories: &report.advisories,
            all_available,
            self_test: SelfTest {
                passed: self_test.is_ok(),
                error: self_test.as_ref().err().cloned(),
            },
            posture: posture.as_deref(),
            score: score.map(|(p, t, _)| format!("{p}/{t}")),
        };
        match serde_json::to_string_pretty(&out) {
            Ok(text) => {
                if let Err(e) = outln!("{text}") {
                    return crate::broken_stdout(&e);
                }
            }
            Err(e) => {
                eprintln!("warden: error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut lines = vec!["Isolation layers on this host:".to_string()];
        for status in &report.layers {
            let mark = if status.available {
                "ok     "
            } else {
                "MISSING"
            };
            lines.push(format!(
                "  {mark} {:<13} {}",
                status.layer.name(),
                status.detail
            ));
            if !status.available {
                if let Some(remedy) = &status.remedy {
                    lines.push(format!("          why/fix: {remedy}"));
                }
                lines.push(format!("          Warden:  {}", consequence(status)));
            }
        }
        if all_available {
            lines.push("All layers available.".to_string());
        }
        match &self_test {
            Ok(()) => lines.push(
                "Self-test: a real sandbox ran `true` under every available layer.".to_string(),
            ),
            Err(e) => lines.push(format!("Self-test FAILED: {e}")),
        }
        for advice in &report.advisories {
            lines.push(format!("Advice (speed, not safety): {advice}"));
        }
        if let (Some(items), Some((passed, total, _))) = (&posture, score) {
            lines.push("Deployment posture:".to_string());
            for i in items {
                let mark = match i.status {
                    Status::Pass => "pass",
                    Status::Warn => "WARN",
                    Status::Fail => "FAIL",
                };
                lines.push(format!("  {mark} {:<22} {}", i.id, i.detail));
                if let Some(fix) = &i.fix {
                    lines.push(format!("       fix: {fix}"));
                }
            }
            lines.push(format!("Score: {passed}/{total} passed"));
        }
        if let Err(e) = outln!("{}", lines.join("\n")) {
            return crate::broken_stdout(&e);
        }
    }
    if all_available && self_test.is_ok() && !posture_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
