//! Nothing of an execution is left on the host when `warden run` returns.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{host_processes_with, run_json, warden};

/// Where a test's parent cgroup can be: the v2 root or a v1 hierarchy.
const CGROUP_ROOTS: [&str; 6] = [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/freezer",
];

/// Every cgroup directory named like an execution under the `warden-test-…` parent.
fn leftover_cgroups(parent: &str) -> Vec<String> {
    let mut left = Vec::new();
    for root in CGROUP_ROOTS {
        let dir = Path::new(root).join(parent);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    left.push(e.path().display().to_string());
                }
            }
        }
    }
    left
}

/// A `--cgroup-parent` of the test's own, removed when the test ends (also on failure).
struct TestParent(String);

impl TestParent {
    fn new(what: &str) -> Self {
        TestParent(format!("warden-test-{what}-{}", std::process::id()))
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        for root in CGROUP_ROOTS {
            let _ = std::fs::remove_dir(Path::new(root).join(&self.0));
        }
    }
}

fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn setsid_daemon_is_gone_when_run_returns() {
    let marker = "4242.4242";
    let guard = TestParent::new("daemon");
    let parent = guard.0.clone();
    let r = run_json(&["--cgroup-parent", &parent], &["sh", "-c", &format!("setsid sh -c 'sleep {marker} & sleep {marker}' </dev/null >/dev/null 2>&1 & sleep 0.2; echo started")]);
    assert_eq!(r.outcome["exit_code"], 0);
    assert_eq!(r.stdout(), "started\n");
    assert!(
        host_processes_with(&format!("sleep {marker}")).is_empty(),
        "daemon survived"
    );
    assert!(
        leftover_cgroups(&parent).is_empty(),
        "cgroup left: {:?}",
        leftover_cgroups(&parent)
    );
}

#[test]
fn nothing_left_after_timeout_or_oom() {
    let marker = "4343.4343";
    let guard = TestParent::new("timeout");
    let parent = guard.0.clone();
    let mounts = mount_count();
    let r = run_json(
        &["--timeout", "1", "--cgroup-parent", &parent],
        &["sh", "-c", &format!("(sleep {marker} &); sleep {marker}")],
    );
    assert_eq!(r.outcome["timed_out"], true);
    let r2 = run_json(
        &["--memory", "32M", "--cgroup-parent", &parent],
        &["/usr/bin/python3", "-c", "b = bytearray(1 << 30)"],
    );
    assert_eq!(r2.outcome["oom_killed"], true, "{}", r2.outcome);
    assert!(host_processes_with(&format!("sleep {marker}")).is_empty());
    assert!(
        leftover_cgroups(&parent).is_empty(),
        "{:?}",
        leftover_cgroups(&parent)
    );
    assert_eq!(mount_count(), mounts, "host mount table changed");
}

#[test]
fn files_do_not_persist_between_runs() {
    let r = run_json(&[], &["sh", "-c", "echo secret > /tmp/x; echo secret > /work/x; echo secret > /dev/shm/x; ls /tmp/x /work/x /dev/shm/x"]);
    assert_eq!(r.outcome["exit_code"], 0, "{}", r.stderr());
    let r = run_json(
        &[],
        &["sh", "-c", "ls /tmp /work /dev/shm | grep -c x; cat /tmp/x"],
    );
    assert_eq!(r.stdout().trim(), "0");
}

#[test]
fn sigterm_to_warden_tears_everything_down() {
    for (signal, expected) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let marker = format!("{}.4545", 4545 + signal);
        let guard = TestParent::new(&format!("signal-{signal}"));
        let parent = guard.0.clone();
        let mut child = warden()
            .args([
                "run",
                "--cgroup-parent",
                &parent,
                "--",
                "sh",
                "-c",
                &format!("(setsid sleep {marker} &); sleep {marker}"),
            ])
            .spawn()
            .unwrap();
        let start = Instant::now();
        while host_processes_with(&format!("sleep {marker}")).len() < 2
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            host_processes_with(&format!("sleep {marker}")).len(),
            2,
            "sandbox did not start"
        );
        let rc = send_signal(child.id(), signal);
        assert_eq!(rc, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(expected));
        assert!(
            host_processes_with(&format!("sleep {marker}")).is_empty(),
            "processes survived signal {signal}"
        );
        assert!(leftover_cgroups(&parent).is_empty());
    }
}

/// Signals a host process through kill(1).
fn send_signal(pid: u32, signal: i32) -> i32 {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

/// SIGKILL cannot be caught: the sandbox dies with `warden run` (parent-death signals), but its
/// cgroup stays until the next execution under the same parent sweeps it.
#[test]
fn cgroup_left_by_a_sigkilled_warden_is_swept_by_the_next_run() {
    let marker = "4646.4646";
    let guard = TestParent::new("sigkill");
    let parent = guard.0.clone();
    let mut child = warden()
        .args(["run", "--cgroup-parent", &parent, "--", "sleep", marker])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while host_processes_with(&format!("sleep {marker}")).is_empty()
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !host_processes_with(&format!("sleep {marker}")).is_empty(),
        "sandbox did not start"
    );
    assert_eq!(send_signal(child.id(), libc::SIGKILL), 0);
    let _ = child.wait().unwrap();
    let start = Instant::now();
    while !host_processes_with(&format!("sleep {marker}")).is_empty()
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        host_processes_with(&format!("sleep {marker}")).is_empty(),
        "the sandbox outlived a SIGKILLed warden"
    );
    let left = leftover_cgroups(&parent);
    assert!(!left.is_empty(), "SIGKILL left no cgroup: nothing to sweep");

    let r = run_json(&["--cgroup-parent", &parent], &["true"]);
    assert_eq!(r.exit_code(), Some(0), "{}", r.outcome);
    assert!(
        leftover_cgroups(&parent).is_empty(),
        "the next run did not sweep {left:?}: {:?}",
        leftover_cgroups(&parent)
    );
}
