//! Ordinary programs keep working under every layer.

use std::io::Write;

use crate::{python, run_json, sh};

#[test]
fn python_computes_and_prints() {
    let r = python(&[], "print(sum(range(10)), 2 ** 100)");
    assert_eq!(r.stdout(), "45 1267650600228229401496703205376\n");
    assert_eq!(r.exit_code(), Some(0));
    r.assert_no_violations();
}

#[test]
fn numpy_computes() {
    let r = python(&[], "import numpy as np\na = np.random.default_rng(0).random((200, 200))\nprint(round(float(np.abs(np.linalg.inv(a) @ a - np.eye(200)).max()), 6))");
    assert_eq!(r.stdout().trim(), "0.0", "{}", r.stderr());
    r.assert_no_violations();
}

#[test]
fn pandas_computes() {
    let r = python(&[], "import pandas as pd\ndf = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\nprint(df.groupby('k').v.sum().to_dict())");
    assert_eq!(r.stdout().trim(), "{'a': 4, 'b': 2}", "{}", r.stderr());
    r.assert_no_violations();
}

#[test]
fn threads_subprocess_multiprocessing_and_uuid1() {
    let code = "import threading, subprocess, multiprocessing, uuid, concurrent.futures as cf\n\
out = []\n\
ts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n\
[t.start() for t in ts]; [t.join() for t in ts]\n\
print(sorted(out))\n\
print(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip())\n\
with multiprocessing.Pool(2) as p: print(p.map(abs, [-1, -2, -3]))\n\
with cf.ProcessPoolExecutor(2) as ex: print(list(ex.map(abs, [-4])))\n\
q = multiprocessing.Queue(); pr = multiprocessing.Process(target=q.put, args=('mp',)); pr.start(); print(q.get()); pr.join()\n\
print(uuid.uuid1().version, uuid.uuid4().version)";
    let r = python(&[], code);
    assert_eq!(
        r.stdout(),
        "[0, 1, 2, 3, 4, 5, 6, 7]\nsub\n[1, 2, 3]\n[4]\nmp\n1 4\n",
        "{}",
        r.stderr()
    );
    r.assert_no_violations();
}

#[test]
fn shell_pipeline_and_coreutils() {
    let r = sh(&[], "seq 1 1000 | sort -rn | head -3 | tr '\\n' ' '; printf 'b\\na\\n' | sort | sha256sum | cut -c1-8; ls / | wc -l");
    let lines: Vec<&str> = r.stdout().lines().collect();
    assert_eq!(lines[0], "1000 999 998 911169dd", "{}", r.stderr());
    assert_eq!(r.exit_code(), Some(0));
}

#[test]
fn bash_and_node_run() {
    let r = run_json(
        &[],
        &[
            "bash",
            "-c",
            "arr=(a b c); echo ${#arr[@]} $BASH_VERSION | cut -c1-3",
        ],
    );
    assert_eq!(r.stdout().trim(), "3 5");
    let r = run_json(&[], &["node", "-e", "const os = require('os'); console.log(JSON.stringify([1,2].map(x => x * 21)), os.cpus().length > 0)"]);
    assert_eq!(r.stdout().trim(), "[21,42] true", "{}", r.stderr());
    r.assert_no_violations();
}

#[test]
fn reads_a_file_input() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "a,b\n1,2\n3,4").unwrap();
    let arg = format!("{}:data/input.csv", f.path().display());
    let r = run_json(
        &["--file", &arg],
        &[
            "sh",
            "-c",
            "pwd; cat data/input.csv | tail -1; stat -c %U data/input.csv",
        ],
    );
    assert_eq!(r.stdout(), "/work\n3,4\nsandbox\n", "{}", r.stderr());
}

#[test]
fn stdin_is_forwarded() {
    let mut child = crate::warden()
        .args(["run", "--", "sh", "-c", "tr a-z A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello sandbox\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO SANDBOX\n");
    assert!(out.status.success());
}

#[test]
fn writes_to_dev_stdout_and_tmp_work() {
    let r = sh(&[], "echo out > /dev/stdout; echo err > /dev/stderr; echo t > /tmp/t; cat /tmp/t; echo w > w; cat w; echo x > /dev/null");
    assert_eq!(r.stdout(), "out\nt\nw\n", "{}", r.stderr());
    assert_eq!(r.stderr(), "err\n");
}

#[test]
fn environment_is_minimal_plus_requested() {
    let r = run_json(
        &["--env", "GREETING=hi there", "--env", "PATH=/usr/bin:/bin"],
        &["env"],
    );
    let mut vars: Vec<&str> = r
        .stdout()
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    vars.sort();
    assert_eq!(
        vars,
        ["GREETING", "HOME", "LANG", "LOGNAME", "PATH", "PWD", "TMPDIR", "USER"]
    );
    assert!(r.stdout().contains("GREETING=hi there\n"));
}

#[test]
fn program_starts_with_no_blocked_or_ignored_signal() {
    // As a freshly started process would: an inherited ignored disposition (glibc's spawn
    // leaves its internal signals 32 and 33 ignored) or mask would survive execve.
    let r = run_json(&[], &["cat", "/proc/self/status"]);
    let field = |name: &str| {
        r.stdout()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("SigBlk:"), "0000000000000000", "{}", r.stdout());
    assert_eq!(field("SigIgn:"), "0000000000000000", "{}", r.stdout());
    r.assert_no_violations();
}

/// Review (session 5): the init took a parent pid of 1 for "the supervisor is gone", so every
/// run failed (exit 125, "parent is gone") when warden itself was PID 1 of its PID namespace,
/// as it is as a container's entrypoint. It now compares with the supervisor's own pid.
#[test]
fn runs_when_warden_is_pid_1_of_its_namespace() {
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--no-stdin", "--", "sh", "-c", "echo hello"])
        .output()
        .expect("unshare (util-linux) runs");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "hello\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
