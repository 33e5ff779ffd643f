//! Integration tests: the real `warden` binary runs real programs on this machine.
//!
//! - `attacks`: each containment claim, tried from inside the sandbox and asserted to fail.
//! - `programs`: ordinary programs that must keep working under every layer.
//! - `cli`: flags, exit statuses and the JSON contract.
//! - `egress`: `warden url check` against the egress policy.
//! - `proxy`: `warden proxy` and `warden run --network proxy`.
//! - `mcp`: `warden mcp` and `/mcp` driven by the official MCP Python SDK.
//! - `network`: the loopback listener the egress proxy is served on.
//! - `serve`: `warden serve` over real HTTP: auth, limits, audit, metrics, fetch.
//! - `teardown`: nothing of an execution is left on the host afterwards.

// Test code: a failed setup step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attacks;
mod cli;
mod egress;
mod mcp;
mod network;
mod programs;
mod proxy;
mod serve;
mod teardown;

use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The binary under test.
pub fn warden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.stdin(Stdio::null());
    cmd
}

/// Result of `warden run --json`.
pub struct Run {
    pub outcome: Value,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> &str {
        self.outcome["stdout"].as_str().unwrap_or_default()
    }
    pub fn stderr(&self) -> &str {
        self.outcome["stderr"].as_str().unwrap_or_default()
    }
    pub fn exit_code(&self) -> Option<i64> {
        self.outcome["exit_code"].as_i64()
    }
    /// Asserts the program made no call the seccomp policy denies.
    pub fn assert_no_violations(&self) {
        assert_eq!(
            self.outcome["seccomp_violations"],
            serde_json::json!([]),
            "{}",
            self.outcome
        );
    }

    /// Count of denials of `syscall` in `seccomp_violations`.
    pub fn violations(&self, syscall: &str) -> u64 {
        self.outcome["seccomp_violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["syscall"] == syscall)
            .map(|v| v["count"].as_u64().unwrap_or(0))
            .sum()
    }
}

/// Runs `warden run --json OPTIONS -- PROGRAM…` and parses the Outcome (last stdout line).
pub fn run_json(options: &[&str], program: &[&str]) -> Run {
    let output = warden()
        .arg("run")
        .arg("--json")
        .args(options)
        .arg("--")
        .args(program)
        .output()
        .expect("start warden");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let outcome: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "no Outcome JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run { outcome, output }
}

/// Runs a Python program in the sandbox (Debian's /usr/bin/python3).
pub fn python(options: &[&str], code: &str) -> Run {
    run_json(options, &["/usr/bin/python3", "-c", code])
}

/// Runs a shell script in the sandbox.
pub fn sh(options: &[&str], script: &str) -> Run {
    run_json(options, &["/bin/sh", "-c", script])
}

/// Host pids whose command line starts with `marker` (not warden's or a shell's mentioning it).
pub fn host_processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.starts_with(marker) {
                found.push(pid);
            }
        }
    }
    found
}

/// Asserts that the audit `events` hold an execution recorded as cancelled.
pub fn assert_recorded_as_cancelled(events: &[Value]) {
    let execution = events
        .iter()
        .find(|e| e["action"] == "execution")
        .unwrap_or_else(|| panic!("no execution recorded: {events:?}"));
    let details: Value = serde_json::from_str(execution["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["cancelled"], true, "{execution}");
}
