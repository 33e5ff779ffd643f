//! Flags, exit statuses and the `--json` contract of `warden run`.

use crate::{run_json, warden};

fn status_of(args: &[&str]) -> (i32, String, String) {
    let out = warden().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_outcome_has_the_contract_fields() {
    let r = run_json(&[], &["true"]);
    let obj = r.outcome.as_object().unwrap();
    for field in [
        "exit_code",
        "signal",
        "timed_out",
        "oom_killed",
        "wall_time_ms",
        "cpu_time_ms",
        "peak_memory_bytes",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "seccomp_violations",
    ] {
        assert!(obj.contains_key(field), "missing {field}: {}", r.outcome);
    }
    assert_eq!(r.outcome["exit_code"], 0);
    assert!(r.outcome["signal"].is_null());
    assert!(r.outcome["wall_time_ms"].is_f64());
    assert!(r.outcome["seccomp_violations"].is_array());
    assert_eq!(
        r.outcome["missing_layers"],
        serde_json::json!([]),
        "this host has every layer"
    );
    assert_eq!(
        r.output.status.code(),
        Some(0),
        "--json exits with the program's status"
    );
}

#[test]
fn json_violation_entries_are_syscall_and_count() {
    let r = run_json(&[], &["/usr/bin/python3", "-c", "import ctypes; l = ctypes.CDLL(None); l.syscall(101, 0, 0, 0, 0); l.syscall(101, 0, 0, 0, 0)"]);
    assert_eq!(
        r.outcome["seccomp_violations"],
        serde_json::json!([{"syscall": "ptrace", "count": 2}])
    );
}

#[test]
fn exit_codes_pass_through() {
    assert_eq!(status_of(&["run", "--", "sh", "-c", "exit 42"]).0, 42);
    assert_eq!(status_of(&["run", "--", "true"]).0, 0);
    assert_eq!(status_of(&["run", "--", "false"]).0, 1);
}

#[test]
fn signals_become_128_plus_n() {
    assert_eq!(
        status_of(&["run", "--", "sh", "-c", "kill -TERM $$"]).0,
        143
    );
    assert_eq!(
        status_of(&["run", "--", "sh", "-c", "kill -SEGV $$"]).0,
        139
    );
    let r = run_json(&[], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(r.outcome["signal"], 9);
    assert!(r.outcome["exit_code"].is_null());
}

#[test]
fn not_found_is_127_and_not_executable_is_126() {
    let (code, _, err) = status_of(&["run", "--", "no-such-program"]);
    assert_eq!(code, 127);
    assert!(err.contains("not found: no-such-program"), "{err}");
    let (code, _, err) = status_of(&["run", "--", "/etc/passwd"]);
    assert_eq!(code, 126);
    assert!(err.contains("cannot execute"), "{err}");
}

#[test]
fn timeout_exit_status_is_137() {
    let (code, _, err) = status_of(&["run", "--timeout", "0.5", "--", "sleep", "10"]);
    assert_eq!(code, 137);
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    for (args, needle) in [
        (vec!["run", "--memory", "0", "--", "true"], "--memory"),
        (vec!["run", "--memory", "lots", "--", "true"], "--memory"),
        (vec!["run", "--timeout", "-1", "--", "true"], "--timeout"),
        (vec!["run", "--timeout", "0", "--", "true"], "--timeout"),
        (vec!["run", "--pids", "0", "--", "true"], "pids"),
        (vec!["run", "--cpus", "0", "--", "true"], "cpus"),
        (
            vec!["run", "--allow-missing", "bogus", "--", "true"],
            "--allow-missing",
        ),
        (
            vec!["run", "--allow-missing", "network", "--", "true"],
            "cannot be missing",
        ),
        (vec!["run", "--env", "NOEQUALS", "--", "true"], "--env"),
        (
            vec!["run", "--file", "/nonexistent:x", "--", "true"],
            "--file",
        ),
        (
            vec!["run", "--file", "/etc/hostname:../escape", "--", "true"],
            "escape",
        ),
        (
            vec!["run", "--cgroup-parent", "../x", "--", "true"],
            "invalid cgroup parent",
        ),
        (vec!["run", "--bogus-flag", "--", "true"], "--bogus-flag"),
        // Review (session 5): no upper bound (the kept output is in warden's own memory),
        // sub-millisecond timeouts, colliding input paths.
        (
            vec!["run", "--output-limit", "300M", "--", "true"],
            "output-limit",
        ),
        (vec!["run", "--pids", "4194303", "--", "true"], "--pids"),
        (
            vec!["run", "--timeout", "0.0000001", "--", "true"],
            "timeout",
        ),
        (
            vec![
                "run",
                "--file",
                "/etc/hostname:a",
                "--file",
                "/etc/hostname:a/b",
                "--",
                "true",
            ],
            "collide",
        ),
        (vec!["run"], "PROGRAM"),
    ] {
        let (code, out, err) = status_of(&args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
    }
}

#[test]
fn doctor_reports_every_layer() {
    let (code, out, _) = status_of(&["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "network",
            "seccomp",
            "filesystem",
            "capabilities",
            "pids",
            "memory",
            "userns",
            "no-new-privs",
            "landlock"
        ]
    );
    assert_eq!(report["all_available"], true, "{out}");
    assert_eq!(code, 0);
    assert!(report["landlock_abi"].as_u64().unwrap() >= 1);
    let (_, text, _) = status_of(&["doctor"]);
    assert!(
        text.contains("landlock") && text.contains("cgroup v"),
        "{text}"
    );
}

/// `warden run` as if this host lacked `layers`.
fn run_pretending(layers: &str, args: &[&str]) -> std::process::Output {
    warden()
        .env("WARDEN_PRETEND_MISSING", layers)
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn missing_layer_is_refused_unless_allowed() {
    for layer in ["landlock", "seccomp", "pids", "memory", "userns"] {
        let out = run_pretending(layer, &["--", "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{layer}: {err}");
        assert!(
            err.contains(&format!("`{layer}` is unavailable"))
                && err.contains(&format!("--allow-missing {layer}")),
            "{err}"
        );
    }
}

#[test]
fn allowed_missing_layers_are_reported_and_skipped() {
    let out = run_pretending(
        "landlock,seccomp",
        &[
            "--json",
            "--allow-missing",
            "landlock",
            "--allow-missing",
            "seccomp",
            "--",
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status",
        ],
    );
    let outcome: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(
        outcome["missing_layers"],
        serde_json::json!(["seccomp", "landlock"])
    );
    assert!(outcome["landlock_abi"].is_null());
    assert_eq!(outcome["stdout"], "Seccomp:\t0\n");
    let out = run_pretending("landlock", &["--allow-missing", "landlock", "--", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ran without isolation layers: landlock"));
}

#[test]
fn without_cgroups_rlimits_still_bound_memory_and_processes() {
    let args = [
        "--json",
        "--allow-missing",
        "pids",
        "--allow-missing",
        "memory",
        "--memory",
        "128M",
        "--pids",
        "16",
        "--",
    ];
    let code = "import os, errno\ntry:\n    b = bytearray(512 << 20); print('ALLOCATED')\nexcept MemoryError:\n    print('MemoryError')\nn = 0\ntry:\n    while n < 100:\n        if os.fork() == 0:\n            import time; time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(n < 16, errno.errorcode[e.errno])";
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["/usr/bin/python3", "-c", code]);
    let out = run_pretending("pids,memory", &all);
    let outcome: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(outcome["stdout"], "MemoryError\nTrue EAGAIN\n", "{outcome}");
    assert!(outcome["cgroup"].is_null());
    assert_eq!(
        outcome["missing_layers"],
        serde_json::json!(["pids", "memory"])
    );
}

/// Regression (red-team review 2): a timeout during setup killed the init with a message
/// unread, and the supervisor reported the reset connection as its own failure (125).
#[test]
fn regression_timeout_during_setup_is_an_outcome() {
    for _ in 0..10 {
        let r = run_json(&["--timeout", "0.001"], &["echo", "hi"]);
        assert_eq!(
            r.output.status.code(),
            Some(137),
            "{}",
            String::from_utf8_lossy(&r.output.stderr)
        );
        assert_eq!(r.outcome["timed_out"], true);
    }
}

/// Regression (red-team review 2): a terminal's SIGINT to warden's process group reached the
/// half-built sandbox and broke the handshake (125 instead of 130).
#[test]
fn regression_group_sigint_during_setup_is_130() {
    for _ in 0..5 {
        let out = std::process::Command::new("timeout")
            .args([
                "--preserve-status",
                "-s",
                "INT",
                "0.004",
                env!("CARGO_BIN_EXE_warden"),
                "run",
                "--",
                "sleep",
                "1",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Regression (red-team review 2): `--file` read a device or any size into memory.
#[test]
fn regression_file_inputs_are_regular_and_bounded() {
    let (code, _, err) = status_of(&["run", "--file", "/dev/zero:x", "--", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("not a regular file"), "{err}");
    let mut big = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut big, &vec![0u8; 5 << 20]).unwrap();
    let arg = format!("{}:big", big.path().display());
    let (code, _, err) = status_of(&["run", "--workdir-size", "4M", "--file", &arg, "--", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("--workdir-size"), "{err}");
}

#[test]
fn pids_counts_only_the_programs_processes_and_empty_program_is_not_found() {
    assert_eq!(status_of(&["run", "--pids", "1", "--", "true"]).0, 0);
    let (code, _, err) = status_of(&["run", "--", ""]);
    assert_eq!(code, 127, "{err}");
}

#[test]
fn a_supervisor_without_the_capabilities_it_needs_fails_closed() {
    // Root with CAP_KILL (or CAP_SETUID/CAP_SETGID) taken out of the bounding set, as a
    // container that drops capabilities would run it: refuse to start rather than run a
    // sandbox that a timeout could not kill (or whose id maps could not be written).
    for (drop, names) in [
        ("-kill", "CAP_KILL"),
        ("-setuid,-setgid", "CAP_SETUID and CAP_SETGID"),
    ] {
        let out = std::process::Command::new("setpriv")
            .args(["--bounding-set", drop, env!("CARGO_BIN_EXE_warden")])
            .args(["run", "--", "true"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(err.contains(names), "{err}");
    }
}

#[test]
fn doctor_judges_a_configs_posture_and_fails_on_unsafe_items() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\ndata_dir = \"{}\"\n[egress]\nallow_cidrs = [\"169.254.169.254/32\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let out = warden()
        .args(["doctor", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |id: &str| {
        report["posture"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("tls"), "fail");
    assert_eq!(status("egress_private_ranges"), "fail");
    assert_eq!(status("cors"), "pass");
    assert!(report["score"].as_str().unwrap().contains('/'));
    // Doctor only looks: it created no store.
    assert!(!data.exists());
    // A configuration that does not parse is exit 2 with the reason.
    std::fs::write(&config, "[server]\nlisten = 5\n").unwrap();
    let out = warden()
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn doctor_runs_a_real_sandbox_and_reports_when_it_cannot() {
    let out = warden().args(["doctor", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["self_test"]["passed"], true, "{report}");
    assert_eq!(out.status.code(), Some(0));
    // Without CAP_KILL every layer still probes as present, but no sandbox can start: doctor
    // must say so instead of "all available".
    let out = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-kill", env!("CARGO_BIN_EXE_warden")])
        .args(["doctor", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["self_test"]["passed"], false, "{report}");
    assert!(report["self_test"]["error"]
        .as_str()
        .unwrap()
        .contains("CAP_KILL"));
    assert_eq!(out.status.code(), Some(1));
}

/// Review (session 5): a stdout that cannot be written made `println!` panic (exit 101).
#[test]
fn a_failing_stdout_is_an_error_not_a_panic() {
    let out = warden()
        .args(["url", "check", "--json", "http://127.0.0.1/"])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Review (session 5): `--file` on a FIFO blocked in open(2) for ever. (`fetch --data @FIFO`
/// reads the pipe, as `--data @/dev/stdin` must.)
#[test]
fn a_fifo_input_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap();
    for args in [vec![
        "run".to_string(),
        "--file".into(),
        format!("{fifo}:x"),
        "--".into(),
        "true".into(),
    ]] {
        let mut child = warden()
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} waited on the FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("not a regular file"), "{args:?}: {stderr}");
    }
}

/// Review (session 5): `warden run --json` printed nothing on stdout when Warden itself failed,
/// so a caller reading the last line had nothing to parse.
#[test]
fn run_json_reports_a_warden_failure_as_json() {
    let out = warden()
        .args(["run", "--json", "--file", "/nonexistent:x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(last["warden_failed"], true, "{last}");
    assert!(last["error"].as_str().unwrap().contains("--file"), "{last}");
}
