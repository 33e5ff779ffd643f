//! Containment claims: each test is an attack run inside the sandbox, asserted to fail.

use std::io::Read;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::Command;
use std::time::Duration;

use crate::{python, sh};

#[test]
fn cannot_read_etc_shadow() {
    let r = sh(&[], "cat /etc/shadow; echo rc=$?");
    assert!(r.stdout().contains("rc=1"), "{}", r.stdout());
    assert!(r.stderr().contains("No such file"), "{}", r.stderr());
}

#[test]
fn cannot_see_host_home_directories() {
    let r = sh(&[], "ls /root /home; echo rc=$?; cat /root/.bash_history");
    assert!(!r.stdout().contains("rc=0"), "{}", r.stdout());
    assert!(r.stderr().contains("No such file"), "{}", r.stderr());
}

#[test]
fn cannot_write_under_usr() {
    let r = sh(
        &[],
        "echo pwned > /usr/pwned; echo rc=$?; touch /usr/bin/pwned; mkdir /usr/lib/pwned",
    );
    assert!(r.stdout().contains("rc=2"), "{}", r.stdout());
    assert!(
        r.stderr().contains("Read-only file system"),
        "{}",
        r.stderr()
    );
    assert!(!std::path::Path::new("/usr/pwned").exists());
    assert!(!std::path::Path::new("/usr/bin/pwned").exists());
}

#[test]
fn cannot_write_to_root_or_etc() {
    let r = sh(&[], "touch /pwned /etc/passwd 2>&1; echo rc=$?");
    assert!(
        r.stdout().contains("Read-only file system"),
        "{}",
        r.stdout()
    );
    assert!(!r.stdout().contains("rc=0"));
}

#[test]
fn cannot_write_proc_sys() {
    // The UTS namespace is the sandbox's own, so only the read-only mount stops this write.
    let r = sh(
        &[],
        "echo pwned > /proc/sys/kernel/hostname; echo rc=$?; hostname",
    );
    assert_eq!(r.stdout(), "rc=2\nwarden\n", "{}", r.stderr());
    assert!(
        r.stderr().contains("Read-only file system"),
        "{}",
        r.stderr()
    );
}

#[test]
fn kernel_memory_files_are_masked() {
    // Whichever of these the kernel has must read as empty (bind-mounted /dev/null), and the
    // hardware directories must list nothing (an empty tmpfs). The review of session 5 read
    // the host's kernel command line through /proc/cmdline.
    let r = sh(&[], "for f in kcore keys timer_list timer_stats latency_stats sched_debug sysrq-trigger cmdline config.gz interrupts; do [ -e /proc/$f ] && echo $f $(head -c 64 /proc/$f | wc -c); done; for d in acpi asound scsi; do [ -d /proc/$d ] && echo $d $(ls -A /proc/$d | wc -l); done; true");
    assert!(r.stdout().contains("keys 0"), "{}", r.stdout());
    assert!(r.stdout().contains("cmdline 0"), "{}", r.stdout());
    for line in r.stdout().lines() {
        assert!(line.ends_with(" 0"), "not masked: {line}");
    }
    let host_acpi = std::fs::read_dir("/proc/acpi").map_or(0, |d| d.count());
    if host_acpi > 0 {
        assert!(r.stdout().contains("acpi 0"), "{}", r.stdout());
    }
}

/// Review (session 5): PID 1's command line, readable by the program, showed the warden
/// binary's path on the host, then the supervisor's host pid.
#[test]
fn init_command_line_does_not_show_the_host_binary_path() {
    let r = sh(&[], "tr '\\0' ' ' < /proc/1/cmdline");
    let exe = env!("CARGO_BIN_EXE_warden");
    // Nor the supervisor's host pid (review, session 5): the init's arguments are fixed.
    assert_eq!(
        r.stdout(),
        "warden-init __warden-sandbox-init ",
        "{}",
        r.stderr()
    );
    assert!(!r.stdout().contains(exe), "{}", r.stdout());
}

#[test]
fn cannot_connect_to_host_loopback_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = python(
        &[],
        &format!(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')\nexcept OSError as e:\n    print('denied', e.errno)"
        ),
    );
    assert!(r.stdout().starts_with("denied"), "{}", r.stdout());
    assert!(
        listener.accept().is_err(),
        "the host listener accepted a connection"
    );
}

#[test]
fn cannot_reach_an_external_address() {
    // TEST-NET-1 (RFC 5737): nothing is there; the sandbox has no route anyway.
    let r = python(
        &[],
        "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=2); print('CONNECTED')\nexcept OSError as e:\n    print('denied', e.errno)",
    );
    assert!(r.stdout().starts_with("denied"), "{}", r.stdout());
    let r = sh(
        &[],
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    );
    assert_eq!(r.stdout().trim(), "lo", "only loopback may exist");
}

#[test]
fn cannot_reach_host_abstract_unix_socket() {
    let name = format!("warden-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let r = python(
        &[],
        &format!("import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect('\\0{name}'); print('CONNECTED')\nexcept OSError as e:\n    print('denied', e.errno)"),
    );
    assert!(r.stdout().starts_with("denied"), "{}", r.stdout());
    assert!(
        listener.accept().is_err(),
        "host abstract socket accepted a connection"
    );
}

#[test]
fn cannot_signal_a_host_process() {
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = victim.id();
    let r = sh(
        &[],
        &format!("kill -9 {pid}; echo rc=$?; ls /proc | grep -c '^[0-9]'"),
    );
    assert!(r.stdout().contains("rc=1"), "{}", r.stdout());
    assert!(
        victim.try_wait().unwrap().is_none(),
        "host process was killed"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn host_processes_are_invisible() {
    let r = sh(&[], "ls /proc | grep '^[0-9]' | sort -n | tr '\\n' ' '");
    let pids: Vec<u32> = r
        .stdout()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // The sandbox's init, the shell and the pipeline's processes: nothing else.
    assert!(
        pids.len() <= 7 && pids.iter().all(|&p| p <= 16),
        "sandbox sees {pids:?}"
    );
    assert!(pids.contains(&1));
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn no_capabilities_and_no_new_privs() {
    let r = sh(
        &[],
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    let text = r.stdout();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            text.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty:\n{text}"
        );
    }
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(
        text.contains("Seccomp:\t2"),
        "seccomp filter mode expected:\n{text}"
    );
}

#[test]
fn sandbox_root_is_an_unprivileged_host_uid() {
    let r = sh(&[], "id -u; cat /proc/self/uid_map");
    let fields: Vec<&str> = r.stdout().split_whitespace().collect();
    assert_eq!(fields[0], "1000");
    assert_eq!(fields[1], "0", "map starts at sandbox uid 0");
    let host_base: u64 = fields[2].parse().unwrap();
    assert!(
        host_base >= 65536,
        "sandbox root must not be a low host uid: {host_base}"
    );
}

#[test]
fn setuid_root_binaries_give_nothing() {
    // The runtime is the host's /usr: su/mount are setuid root there, and must not help.
    let r = sh(&[], "ls -l /usr/bin/su /bin/mount 2>&1; su -c id root </dev/null; echo su=$?; mount -t tmpfs x /tmp; echo mount=$?; id -u");
    assert!(!r.stdout().contains("su=0"), "{}", r.stdout());
    assert!(!r.stdout().contains("mount=0"), "{}", r.stdout());
    assert!(r.stdout().trim_end().ends_with("1000"));
}

#[test]
fn cannot_execute_from_tmp() {
    let r = sh(
        &[],
        "cp /bin/true /tmp/t && chmod +x /tmp/t && /tmp/t; echo rc=$?",
    );
    assert!(
        r.stdout().contains("rc=126"),
        "{} {}",
        r.stdout(),
        r.stderr()
    );
}

#[test]
fn cannot_bind_tcp_inside_the_sandbox() {
    let r = python(&[], "import socket\ntry:\n    socket.socket().bind(('127.0.0.1', 8080)); print('BOUND')\nexcept OSError as e:\n    print('denied', e.errno)");
    assert!(r.stdout().starts_with("denied"), "{}", r.stdout());
}

#[test]
fn fork_bomb_is_stopped_by_pids_limit() {
    let code = "import os, time, errno\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(n, errno.errorcode[e.errno], flush=True)\n";
    let r = python(&["--pids", "16", "--timeout", "10"], code);
    let fields: Vec<&str> = r.stdout().split_whitespace().collect();
    let forked: u32 = fields[0].parse().unwrap();
    assert!(forked < 16, "forked {forked} processes under --pids 16");
    assert_eq!(fields[1], "EAGAIN");
    assert_eq!(
        r.outcome["timed_out"], false,
        "the program ends; its children die with it"
    );
}

#[test]
fn shell_fork_bomb_is_contained() {
    // The bomb exhausts pids.max; the shell then either cannot fork its `sleep` and exits, or
    // sleeps until the timeout. Either way the run ends promptly and takes every bomb process
    // with it (the teardown tests check the host side).
    let r = sh(
        &["--pids", "32", "--timeout", "2"],
        "b() { b | b & }; b; sleep 5",
    );
    let wall = r.outcome["wall_time_ms"].as_f64().unwrap();
    assert!(wall < 4000.0, "wall {wall} ms");
    assert!(
        r.stderr().contains("fork"),
        "the bomb never hit the pids limit: {}",
        r.outcome
    );
}

#[test]
fn memory_bomb_is_oom_killed() {
    let r = python(
        &["--memory", "64M"],
        "b = []\nwhile True: b.append(bytearray(16 << 20))",
    );
    assert_eq!(r.outcome["oom_killed"], true, "{}", r.outcome);
    assert_eq!(r.outcome["signal"], 9);
    // The kernel force-charges a dying OOM victim a little past the limit (memcg try_charge);
    // the bomb itself, unbounded, never gets far.
    let peak = r.outcome["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak > 16 << 20 && peak < 96 << 20, "peak {peak}");
}

#[test]
fn cpu_loop_is_killed_at_the_timeout() {
    let r = python(&["--timeout", "1"], "while True: pass");
    assert_eq!(r.outcome["timed_out"], true);
    assert_eq!(r.outcome["signal"], 9);
    // Not a timing test: the loop never ends by itself, so any end is the kill; the bound
    // only proves the kill came from the 1 s limit and not the 30 s default.
    let wall = r.outcome["wall_time_ms"].as_f64().unwrap();
    assert!((1000.0..20_000.0).contains(&wall), "wall {wall} ms");
    assert!(r.outcome["cpu_time_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn cpu_limit_throttles() {
    // Four busy threads under --cpus 0.5 for 1 s of wall time get about 0.5 s of CPU.
    let code = "import threading, time\nend = time.time() + 1.0\ndef spin():\n    while time.time() < end: pass\nts = [threading.Thread(target=spin) for _ in range(4)]\n[t.start() for t in ts]\n[t.join() for t in ts]";
    let r = python(&["--cpus", "0.5"], code);
    let cpu = r.outcome["cpu_time_ms"].as_f64().unwrap();
    // Unthrottled, this is about 2000 ms on two cores.
    assert!(cpu < 1200.0, "cpu {cpu} ms in 1 s under --cpus 0.5");
}

#[test]
fn filling_tmp_hits_enospc_and_spares_the_host() {
    let r = sh(
        &["--tmpfs-size", "8M"],
        "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1; echo rc=$?; du -k /tmp/fill | cut -f1",
    );
    assert!(
        r.stdout().contains("No space left on device"),
        "{}",
        r.stdout()
    );
    let kib: u64 = r.stdout().lines().last().unwrap().trim().parse().unwrap();
    assert!(kib <= 8 * 1024);
    assert!(
        !std::path::Path::new("/tmp/fill").exists(),
        "file landed on the host"
    );
}

#[test]
fn filling_workdir_hits_enospc() {
    let r = sh(
        &["--workdir-size", "4M"],
        "head -c 10000000 /dev/zero > big; echo rc=$?",
    );
    assert!(
        r.stderr().contains("No space left on device"),
        "{}",
        r.stderr()
    );
}

#[test]
fn huge_output_is_truncated_with_bounded_memory() {
    let mut child = crate::warden()
        .args([
            "run",
            "--json",
            "--output-limit",
            "1M",
            "--",
            "head",
            "-c",
            "200000000",
            "/dev/zero",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut hwm_kib = 0u64;
    let mut stdout = String::new();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        out.read_to_string(&mut stdout).unwrap();
        stdout
    });
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(v) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                hwm_kib = hwm_kib.max(v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let stdout = reader.join().unwrap();
    let outcome: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(outcome["stdout_truncated"], true);
    assert_eq!(outcome["stdout_bytes"], 200_000_000u64);
    assert_eq!(outcome["stdout"].as_str().unwrap().len(), 1 << 20);
    assert!(
        hwm_kib > 0 && hwm_kib < 64 * 1024,
        "warden peak RSS {hwm_kib} KiB for 200 MB of output"
    );
}

#[test]
fn warden_secrets_do_not_reach_the_sandbox() {
    let output = crate::warden()
        .env("WARDEN_TEST_SECRET", "hunter2-do-not-leak")
        .args([
            "run",
            "--json",
            "--",
            "sh",
            "-c",
            "env; cat /proc/1/environ; cat /proc/*/environ",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("PATH="), "{text}");
    assert!(!text.contains("hunter2"), "secret leaked: {text}");
}

#[test]
fn only_fds_0_to_2_are_open() {
    let r = python(&[], "import os\nopen_fds = []\nfor fd in range(0, 4096):\n    try:\n        os.fstat(fd); open_fds.append(fd)\n    except OSError: pass\nprint(open_fds)");
    assert_eq!(r.stdout().trim(), "[0, 1, 2]");
}

#[test]
fn cannot_create_nested_namespaces() {
    let r = sh(&[], "unshare -Ur id; echo rc=$?");
    assert!(!r.stdout().contains("rc=0"), "{}", r.stdout());
    assert!(r.violations("unshare") >= 1, "{}", r.outcome);
}

#[test]
fn clone_with_namespace_flags_is_denied() {
    // clone(CLONE_NEWUSER | SIGCHLD) straight through libc: the argument filter must refuse it.
    let code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)\nif r == 0: os._exit(0)\nprint(r, ctypes.get_errno())";
    let r = python(&[], code);
    assert_eq!(r.stdout().trim(), "-1 1", "{}", r.stdout());
    assert!(r.violations("clone") >= 1, "{}", r.outcome);
}

#[test]
fn raw_sockets_are_denied() {
    let code = "import socket\nfor fam, kind, proto in [(socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_INET6, socket.SOCK_RAW, 58), (socket.AF_PACKET, socket.SOCK_RAW, 0)]:\n    try:\n        socket.socket(fam, kind, proto); print('OPENED')\n    except OSError as e:\n        print('denied', e.errno)";
    let r = python(&[], code);
    assert_eq!(r.stdout().matches("denied 1").count(), 3, "{}", r.stdout());
    assert!(r.violations("socket") >= 3, "{}", r.outcome);
}

/// Review (session 5): hugetlb pages are not charged to a v1 memory cgroup, so a sandbox with
/// `--memory 16M` held the host's whole hugepage pool. Each way of asking for them must fail
/// with EPERM and be counted, whether or not this host has reserved any (without the rule, the
/// memfd succeeds and the mappings fail with ENOMEM, not EPERM).
#[test]
fn hugetlb_pages_are_denied() {
    let code = "import ctypes, mmap, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.mmap.restype = ctypes.c_void_p\nlibc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]\nr = libc.mmap(None, 2 << 20, 3, 0x22 | 0x40000, -1, 0)\nprint('mmap', r == ctypes.c_void_p(-1).value, ctypes.get_errno())\nr = libc.memfd_create(b'h', 4)\nprint('memfd', r, ctypes.get_errno())\nr = libc.shmget(0, 2 << 20, 0o1000 | 0o600 | 0o4000)\nprint('shmget', r, ctypes.get_errno())\nm = mmap.mmap(-1, 1 << 20)\nm[0] = 1\nfd = os.memfd_create('plain')\nprint('plain ok', fd > 2)";
    let r = python(&[], code);
    assert_eq!(
        r.stdout(),
        "mmap True 1\nmemfd -1 1\nshmget -1 1\nplain ok True\n",
        "{}",
        r.stderr()
    );
    for name in ["mmap", "memfd_create", "shmget"] {
        assert_eq!(r.violations(name), 1, "{name}: {}", r.outcome);
    }
}

/// Review (session 5): native AIO contexts are limited only by the host-wide `fs.aio-max-nr`;
/// a sandbox that took them all left the host's AIO users with EAGAIN. `io_setup` answers
/// ENOSYS (libaio users fall back), uncounted, as `clone3` does.
#[test]
fn native_aio_contexts_cannot_be_created() {
    let code = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nctx = ctypes.c_ulong(0)\nr = libc.syscall(206, 4096, ctypes.byref(ctx))\nprint(r, ctypes.get_errno(), ctx.value)";
    let r = python(&[], code);
    assert_eq!(r.stdout().trim(), "-1 38 0", "{}", r.stderr());
    r.assert_no_violations();
}

/// Review (session 5): `sync` and `syncfs` wrote back every host file system (`syncfs` on the
/// read-only `/usr` bind flushes the host's root) in uninterruptible sleep, past the timeout.
/// They are answered 0 by the filter: the program sees success and the kernel never runs them,
/// so a host file's dirty pages are still dirty afterwards (cachestat(2)). Without the rule the
/// sandbox's `sync` wrote them back.
#[test]
fn sync_and_syncfs_succeed_without_flushing_the_host() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut file = std::fs::File::create(dir.path().join("dirty")).unwrap();
    std::io::Write::write_all(&mut file, &vec![7u8; 1 << 20]).unwrap();
    let Some(before) = dirty_pages(&file) else {
        panic!("cachestat(2) is missing (Linux 6.5+): cannot tell whether the host was flushed");
    };
    assert!(before > 0, "the host file should start dirty");
    let code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nos.sync()\nfd = os.open('/usr', os.O_RDONLY)\nprint(libc.syncfs(fd), libc.syscall(162))";
    let r = python(&[], code);
    assert_eq!(r.stdout().trim(), "0 0", "{}", r.stderr());
    r.assert_no_violations();
    // Periodic writeback only takes pages dirty for 30 s (vm.dirty_expire_centisecs).
    let after = dirty_pages(&file);
    assert!(
        after.is_some_and(|n| n > 0),
        "the sandbox flushed the host's file: {before} dirty pages before, {after:?} after"
    );
}

/// Pages of `file` dirty in the host's page cache, from cachestat(2) (Linux 6.5+, syscall 451
/// on every architecture); `None` when the kernel lacks the call.
fn dirty_pages(file: &std::fs::File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `struct cachestat_range`: the whole file when `len` is 0.
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    /// `struct cachestat`, in pages.
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: 0, len: 0 };
    let mut stat = Stat::default();
    // SAFETY: cachestat(2) reads `range` and writes `stat`, both live, correctly laid out
    // `repr(C)` values, and only queries the page cache of an fd we own.
    let r = unsafe {
        libc::syscall(
            451,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0,
        )
    };
    (r == 0).then_some(stat.nr_dirty)
}

/// Calls syscall `nr` with zero arguments through ctypes; prints `ret errno`.
fn raw_syscall(nr: u32) -> crate::Run {
    python(&[], &format!("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall({nr}, 0, 0, 0, 0, 0, 0)\nprint(r, ctypes.get_errno())"))
}

/// Each must-deny syscall fails with EPERM and shows in `seccomp_violations`.
macro_rules! denied_syscalls {
    ($($test:ident: $name:literal = $nr:literal,)*) => {$(
        #[test]
        #[cfg(target_arch = "x86_64")]
        fn $test() {
            let r = raw_syscall($nr);
            assert_eq!(r.stdout().trim(), "-1 1", "{} must fail with EPERM: {} {}", $name, r.stdout(), r.stderr());
            assert_eq!(r.violations($name), 1, "{} not reported: {}", $name, r.outcome["seccomp_violations"]);
        }
    )*};
}

denied_syscalls! {
    denies_ptrace: "ptrace" = 101,
    denies_mount: "mount" = 165,
    denies_umount2: "umount2" = 166,
    denies_pivot_root: "pivot_root" = 155,
    denies_chroot: "chroot" = 161,
    denies_unshare: "unshare" = 272,
    denies_setns: "setns" = 308,
    denies_keyctl: "keyctl" = 250,
    denies_add_key: "add_key" = 248,
    denies_request_key: "request_key" = 249,
    denies_bpf: "bpf" = 321,
    denies_perf_event_open: "perf_event_open" = 298,
    denies_userfaultfd: "userfaultfd" = 323,
    denies_io_uring_setup: "io_uring_setup" = 425,
    denies_io_uring_enter: "io_uring_enter" = 426,
    denies_io_uring_register: "io_uring_register" = 427,
    denies_kexec_load: "kexec_load" = 246,
    denies_kexec_file_load: "kexec_file_load" = 320,
    denies_init_module: "init_module" = 175,
    denies_finit_module: "finit_module" = 313,
    denies_delete_module: "delete_module" = 176,
    denies_reboot: "reboot" = 169,
    denies_swapon: "swapon" = 167,
    denies_swapoff: "swapoff" = 168,
    denies_acct: "acct" = 163,
    denies_settimeofday: "settimeofday" = 164,
    denies_clock_settime: "clock_settime" = 227,
    denies_open_by_handle_at: "open_by_handle_at" = 304,
    denies_process_vm_readv: "process_vm_readv" = 310,
    denies_process_vm_writev: "process_vm_writev" = 311,
    // Red-team review 2: a watch on the shared read-only runtime saw other executions' opens.
    denies_inotify_init: "inotify_init" = 253,
    denies_inotify_init1: "inotify_init1" = 294,
    denies_inotify_add_watch: "inotify_add_watch" = 254,
}

/// Regression (red-team F1): the sandbox's per-user kernel counters were charged to host root,
/// so a program could fill root's pending-signal queue and inotify instances for the run.
#[test]
fn regression_host_root_per_user_limits_are_not_exhausted() {
    let code = "import ctypes, os, signal, sys, time\n\
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
n = 0\n\
while libc.sigqueue(os.getpid(), signal.SIGRTMIN, 0) == 0: n += 1\n\
fds = [libc.inotify_init() for _ in range(200)]\n\
print(n, sum(f >= 0 for f in fds), flush=True)\n\
time.sleep(3)\n";
    let mut child = crate::warden()
        .args(["run", "--", "/usr/bin/python3", "-c", code])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let counts: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(counts[0] <= 4096, "queued {} signals", counts[0]);
    // While the sandbox holds its signals and inotify instances, host root still gets both.
    let host = Command::new("/usr/bin/python3")
        .args(["-c", "import ctypes, os, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])\nl = ctypes.CDLL(None)\nprint(l.sigqueue(os.getpid(), signal.SIGRTMIN, 0), l.inotify_init() >= 0)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout).trim(), "0 True");
    child.wait().unwrap();
}

/// Regression (red-team F2): each unnamed syscall number became its own violation entry, so a
/// program could grow the Outcome and the supervisor's memory without bound.
#[test]
fn regression_violation_list_is_bounded() {
    let r = python(
        &[],
        "import ctypes\nl = ctypes.CDLL(None)\nfor nr in range(1000, 6000): l.syscall(nr)",
    );
    let list = r.outcome["seccomp_violations"].as_array().unwrap();
    assert!(list.len() <= 257, "{} entries", list.len());
    let total: u64 = list.iter().map(|v| v["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 5000);
    assert!(list.iter().any(|v| v["syscall"] == "other"));
}
