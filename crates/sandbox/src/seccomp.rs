//! L2: the seccomp-BPF syscall allowlist, and the supervisor side that counts what it denies.
//!
//! # Design
//!
//! The policy is data ([`ALLOWED`], [`MUST_DENY`], in `seccomp_policy.rs`): one
//! [`SyscallRule`] per allowed syscall, each with the reason it is allowed. [`build_filter`]
//! (`seccomp_rules.rs`) compiles it with libseccomp, at build time: `build.rs` writes the BPF
//! program for the target architecture and the binary embeds it ([`embedded`]); a unit test
//! checks that it equals a fresh [`compile`]. The filter:
//!
//! - default action: user notification (`SCMP_ACT_NOTIFY`). Every call the policy does not allow
//!   blocks until the supervisor answers it; [`serve_notifications`] answers each with `EPERM`
//!   and counts it by name, which becomes the Outcome's `seccomp_violations`;
//! - allowlisted calls: `ALLOW`, or `ALLOW` only when an argument rule matches (`clone` without
//!   namespace flags, `socket` families/types, `personality` values). A call whose arguments
//!   do not match falls to the default: denied and counted;
//! - `clone3`: `ENOSYS` straight from the kernel, not counted. Its flags are in memory where
//!   BPF cannot read them; glibc then falls back to `clone(2)`, whose flags it can check;
//! - bad architecture: the process is killed (`SCMP_ACT_KILL_PROCESS`). The filter is for the
//!   native ABI only. On x86_64, libseccomp's generated program checks `seccomp_data.arch` first,
//!   so i386 calls (`int 0x80`, AUDIT_ARCH_I386) take the bad-arch action, and for the x86_64
//!   arch it also sends any number with the x32 bit (`0x40000000`) to the bad-arch action. So
//!   32-bit and x32 entry points cannot be used to reach syscalls under other numbers.
//!
//! [`install`] loads the program into the calling thread with one `seccomp(2)` call
//! (`SECCOMP_FILTER_FLAG_NEW_LISTENER`; the thread must be the only one and `no_new_privs` set)
//! and returns the listener fd, which the init hands to the supervisor before `execve`. Whatever
//! the caller does after loading must itself be allowed: nobody could answer a notification
//! yet. The unit test that installs the filter for real would hang (and fail on its deadline)
//! if it did not.
//!
//! Every denied call is reported, including those a runtime makes routinely and tolerates;
//! there is no per-name silencing, so the count is what the program tried.
//!
//! # Limitations
//!
//! - Seccomp sees syscall numbers and register arguments, never memory: `clone3`'s flags,
//!   paths, socket addresses, `struct timex` are invisible. That is why `clone3` gets `ENOSYS`,
//!   `adjtimex`/`clock_adjtime` are denied outright, and paths are left to the mount namespace
//!   and landlock. Pointer arguments can also change between a check and their use (TOCTOU), so
//!   a supervisor must never *allow* a call based on memory it read (this one only denies).
//! - Argument rules compare the full 64-bit register, while the kernel reads `int` arguments as
//!   32 bits. The rules therefore only allow on (masked) equality, never on `!=` or ranges, so
//!   junk in the upper half can only turn an allowed call into a denied one, never the reverse.
//! - Notification needs the supervisor: a denied call blocks until answered. If the supervisor
//!   dies or closes the listener, pending and later denied calls fail with `ENOSYS` instead of
//!   `EPERM` (still denied, no longer counted). The listener is `O_CLOEXEC`.
//! - Syscalls newer than the linked libseccomp's table cannot be named; they stay denied (EPERM,
//!   counted as `syscall_<nr>`), so a newer libc that expects `ENOSYS` before falling back may
//!   see `EPERM` instead. The table names them (for example `mseal`) for when libseccomp knows
//!   them.
//! - Kernel: user notification exists since Linux 5.0, but the libseccomp bindings only use it
//!   at libseccomp API level 6, which libseccomp 2.5 grants from Linux 5.7. [`kernel_support`] checks the actions; older kernels fail `install`
//!   with an error rather than run unfiltered.
//! - Allowed calls are still kernel attack surface. `ioctl`, `prctl` and `kill` are allowed whole
//!   and rely on the other layers (no terminal, no capabilities, PID namespace, landlock).

#[path = "seccomp_rules.rs"]
mod rules;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpFilterContext, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags,
};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

pub use rules::{build_filter, ArgCmp, ArgRule, BuildError, SyscallRule, ALLOWED, MUST_DENY};

use crate::Violation;

/// Where the kernel lists the seccomp actions it supports (input of [`kernel_support`]).
pub const ACTIONS_AVAIL_PATH: &str = "/proc/sys/kernel/seccomp/actions_avail";

/// How long [`serve_notifications`] waits in `poll` before checking its stop flag again.
const POLL_TICK: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Consecutive failed receives after which [`serve_notifications`] gives up on the listener
/// (the kernel then answers pending calls with `ENOSYS`). A receive fails on its own only when
/// the calling task was killed between `poll` and `receive`.
const MAX_RECEIVE_FAILURES: u32 = 1000;

/// Upper bound of notifications answered after the stop flag is set.
const MAX_DRAIN: usize = 4096;

/// Why the seccomp filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built from the policy.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The filter could not be loaded into the kernel.
    #[error("cannot load the seccomp filter")]
    Load(#[source] io::Error),
    /// The compiled program could not be exported from libseccomp.
    #[error("cannot export the seccomp BPF program")]
    Export(#[source] io::Error),
    /// A compiled program of this many bytes is not a valid BPF program.
    #[error("invalid seccomp BPF program of {0} bytes")]
    BadProgram(usize),
}

/// A compiled filter: the classic-BPF program of [`build_filter`] for the native
/// architecture, ready to load without libseccomp. Compile it once (it takes a few
/// milliseconds) and load it in every sandbox.
#[derive(Debug, Clone)]
pub struct CompiledFilter(Vec<libc::sock_filter>);

impl CompiledFilter {
    /// The BPF instructions (`struct sock_filter`, 8 bytes each).
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.0
    }

    /// The program as bytes in native byte order, for sending to the init.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 8);
        for ins in &self.0 {
            out.extend_from_slice(&ins.code.to_ne_bytes());
            out.push(ins.jt);
            out.push(ins.jf);
            out.extend_from_slice(&ins.k.to_ne_bytes());
        }
        out
    }

    /// Parses [`CompiledFilter::to_bytes`] output.
    ///
    /// # Errors
    ///
    /// [`SeccompError::BadProgram`] when the length is not a positive multiple of 8 or exceeds
    /// the kernel's `BPF_MAXINSNS` (4096).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SeccompError> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > 4096 {
            return Err(SeccompError::BadProgram(bytes.len()));
        }
        Ok(CompiledFilter(
            bytes
                .chunks_exact(8)
                .map(|c| libc::sock_filter {
                    code: u16::from_ne_bytes([c[0], c[1]]),
                    jt: c[2],
                    jf: c[3],
                    k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                })
                .collect(),
        ))
    }
}

/// The policy compiled to BPF by `build.rs` for the target architecture.
static EMBEDDED_BPF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf"));

/// The filter compiled when this binary was built (see `build.rs`): what every sandbox loads.
///
/// # Errors
///
/// [`SeccompError::BadProgram`] if the embedded program is malformed (a build defect).
pub fn embedded() -> Result<CompiledFilter, SeccompError> {
    CompiledFilter::from_bytes(EMBEDDED_BPF)
}

/// Builds the filter ([`build_filter`]) at run time and exports its BPF program; the tests use
/// it to check that [`embedded`] is the current policy.
///
/// # Errors
///
/// Building or exporting failed.
pub fn compile() -> Result<CompiledFilter, SeccompError> {
    let filter = build_filter(ScmpArch::native())?;
    // libseccomp 2.5 exports to an fd only; the program (a few KiB) fits a pipe's buffer.
    // Close-on-exec: the supervisor starts sandboxes concurrently, and a child holding the
    // write end would keep this read from ever seeing end-of-file.
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| SeccompError::Export(e.into()))?;
    filter
        .export_bpf(&write)
        .map_err(|e| SeccompError::Export(io::Error::other(e)))?;
    drop(write);
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut std::fs::File::from(read), &mut bytes)
        .map_err(SeccompError::Export)?;
    CompiledFilter::from_bytes(&bytes)
}

/// Loads `filter` into the calling thread with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and returns
/// the notification listener (`O_CLOEXEC`).
///
/// Call it last before `execve`, from the only thread of the process, after
/// `PR_SET_NO_NEW_PRIVS`. Hand the listener to the supervisor (over a unix socket with
/// `SCM_RIGHTS`) and close it before `execve`: a program holding its own listener could answer
/// its own notifications. Between this call and `execve`, any syscall the policy denies blocks
/// until the supervisor answers it, so the caller must only make allowed calls (sendmsg,
/// close, execve).
///
/// # Errors
///
/// [`SeccompError::Load`] with the kernel's error; nothing was installed.
pub fn install(filter: &CompiledFilter) -> Result<OwnedFd, SeccompError> {
    crate::sys::seccomp_load_with_listener(filter.instructions()).map_err(SeccompError::Load)
}

/// Supervisor side: answers every notification on `listener` with `EPERM` and counts it by
/// syscall name, until no process uses the filter any more.
///
/// Names come from libseccomp for the notification's architecture, `syscall_<nr>` when
/// unknown. Returns the counts sorted by name. The loop waits in `poll` with a 100 ms timeout,
/// so it never spins; once the last filtered process has exited and been reaped the kernel
/// reports `POLLHUP` and this returns. Dropping the listener (when this returns) makes any
/// later denied call fail with `ENOSYS`. See [`serve_notifications_until`] to also bound it
/// with a flag.
pub fn serve_notifications(listener: OwnedFd) -> Vec<Violation> {
    serve_notifications_until(listener, &AtomicBool::new(false))
}

/// [`serve_notifications`] that also returns when `stop` is set (checked at least every
/// 100 ms), for a supervisor that must not wait on a process it cannot reap. After `stop`,
/// notifications already pending are still answered and counted.
pub fn serve_notifications_until(listener: OwnedFd, stop: &AtomicBool) -> Vec<Violation> {
    // libseccomp refuses to receive or respond until it has probed this process's kernel for
    // user notification, and a global reset (as `install` does) forgets the probe. Creating a
    // context with the notify action probes again; the context itself is not needed.
    drop(ScmpFilterContext::new(ScmpAction::Notify));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            drain(&listener, &mut counts);
            break;
        }
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        match poll(&mut fds, Some(&POLL_TICK)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        let revents = fds[0].revents();
        if revents.contains(PollFlags::IN) {
            match answer_one(listener.as_raw_fd()) {
                Some(name) => {
                    count(&mut counts, name);
                    failures = 0;
                }
                None => {
                    failures += 1;
                    if failures >= MAX_RECEIVE_FAILURES {
                        break;
                    }
                }
            }
        } else if revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
            break;
        }
    }
    counts
        .into_iter()
        .map(|(syscall, count)| Violation { syscall, count })
        .collect()
}

/// Answers what is already pending without waiting, after `stop` was set.
fn drain(listener: &OwnedFd, counts: &mut BTreeMap<String, u64>) {
    for _ in 0..MAX_DRAIN {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let ready =
            matches!(poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0);
        if !ready || !fds[0].revents().contains(PollFlags::IN) {
            return;
        }
        if let Some(name) = answer_one(listener.as_raw_fd()) {
            count(counts, name);
        }
    }
}

/// Receives one notification, denies it with `EPERM` and returns the syscall's name; `None`
/// when nothing could be received (the caller was killed after `poll` saw it).
/// Most distinct names kept per execution; further ones are counted under [`OTHER_SYSCALLS`].
/// A program calling thousands of unnamed syscall numbers must not grow the Outcome (or the
/// supervisor's memory) without bound.
pub const MAX_DISTINCT_VIOLATIONS: usize = 256;

/// The name under which violations beyond [`MAX_DISTINCT_VIOLATIONS`] are counted.
pub const OTHER_SYSCALLS: &str = "other";

/// Adds one denial of `name`, folding new names into [`OTHER_SYSCALLS`] once the map is full.
fn count(counts: &mut BTreeMap<String, u64>, name: String) {
    if let Some(n) = counts.get_mut(&name) {
        *n += 1;
    } else if counts.len() < MAX_DISTINCT_VIOLATIONS {
        counts.insert(name, 1);
    } else {
        *counts.entry(OTHER_SYSCALLS.to_string()).or_default() += 1;
    }
}

fn answer_one(listener: RawFd) -> Option<String> {
    let req = ScmpNotifReq::receive(listener).ok()?;
    let syscall = req.data.syscall;
    let name = syscall
        .get_name_by_arch(req.data.arch)
        .unwrap_or_else(|_| format!("syscall_{}", syscall.as_raw_syscall()));
    // Fails only when the caller died meanwhile; the attempt still counts.
    let _ = ScmpNotifResp::new_error(req.id, -libc::EPERM, ScmpNotifRespFlags::empty())
        .respond(listener);
    Some(name)
}

/// Seccomp actions the filter uses, with what each is needed for.
const REQUIRED_ACTIONS: &[(&str, &str)] = &[
    ("allow", "allowlisted calls"),
    ("errno", "the clone3 ENOSYS rule"),
    (
        "user_notif",
        "counting denied calls (Linux 5.0+; 5.7+ for libseccomp to use it)",
    ),
    ("kill_process", "killing non-native ABIs (Linux 4.14+)"),
];

/// Whether the kernel supports what the filter needs, from the text of
/// [`ACTIONS_AVAIL_PATH`]; the error is a human reason.
///
/// # Errors
///
/// A sentence naming what is missing.
pub fn kernel_support(actions_avail: &str) -> Result<(), String> {
    let avail: Vec<&str> = actions_avail.split_whitespace().collect();
    if avail.is_empty() {
        return Err(
            "the kernel lists no seccomp actions (built without CONFIG_SECCOMP_FILTER?)"
                .to_string(),
        );
    }
    let missing: Vec<String> = REQUIRED_ACTIONS
        .iter()
        .filter(|(action, _)| !avail.contains(action))
        .map(|(action, purpose)| format!("{action} (for {purpose})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the kernel lacks seccomp actions: {}",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// libseccomp keeps process-global state (probe results, the listener); tests in this
    /// process that touch it take this lock so they do not race on it.
    static LIBSECCOMP: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn libseccomp_lock() -> std::sync::MutexGuard<'static, ()> {
        LIBSECCOMP
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[test]
    fn must_deny_is_never_allowed() {
        let allowed: BTreeSet<&str> = ALLOWED.iter().map(|r| r.name).collect();
        let both: Vec<&&str> = MUST_DENY.iter().filter(|n| allowed.contains(*n)).collect();
        assert!(both.is_empty(), "allowed and must-deny: {both:?}");
    }

    #[test]
    fn allowed_names_are_unique_and_explained() {
        let mut seen = BTreeSet::new();
        for rule in ALLOWED {
            assert!(seen.insert(rule.name), "`{}` listed twice", rule.name);
            assert!(!rule.why.trim().is_empty(), "`{}` has no why", rule.name);
        }
        let mut seen = BTreeSet::new();
        for name in MUST_DENY {
            assert!(seen.insert(*name), "`{name}` listed twice in MUST_DENY");
        }
    }

    #[test]
    fn argument_alternatives_compare_each_argument_once() {
        for rule in ALLOWED {
            if let ArgRule::Only(alternatives) = rule.args {
                assert!(!alternatives.is_empty(), "`{}` allows nothing", rule.name);
                for alternative in alternatives {
                    let args: BTreeSet<u32> = alternative.iter().map(|c| c.arg).collect();
                    assert_eq!(
                        args.len(),
                        alternative.len(),
                        "`{}`: {alternative:?}",
                        rule.name
                    );
                    assert!(
                        args.iter().all(|a| *a < 6),
                        "`{}`: {alternative:?}",
                        rule.name
                    );
                }
            }
        }
    }

    #[test]
    fn distinct_violation_names_are_capped() {
        let mut counts = BTreeMap::new();
        for nr in 0..10_000 {
            count(&mut counts, format!("syscall_{nr}"));
        }
        count(&mut counts, "syscall_0".to_string());
        assert!(counts.len() <= MAX_DISTINCT_VIOLATIONS + 1);
        assert_eq!(counts["syscall_0"], 2);
        assert_eq!(counts.values().sum::<u64>(), 10_001);
        assert!(counts[OTHER_SYSCALLS] > 9_000);
    }

    #[test]
    fn embedded_program_is_the_current_policy() {
        let _guard = libseccomp_lock();
        assert_eq!(
            embedded().expect("embedded").to_bytes(),
            compile().expect("compile").to_bytes()
        );
    }

    #[test]
    fn compiled_program_round_trips_through_bytes() {
        let _guard = libseccomp_lock();
        let filter = compile().expect("compile");
        let again = CompiledFilter::from_bytes(&filter.to_bytes()).expect("parse");
        assert_eq!(again.to_bytes(), filter.to_bytes());
        assert!(filter.instructions().len() > 100);
        assert!(CompiledFilter::from_bytes(&[0; 7]).is_err());
        assert!(CompiledFilter::from_bytes(&[]).is_err());
    }

    #[test]
    fn build_filter_succeeds() {
        let _guard = libseccomp_lock();
        build_filter(ScmpArch::native()).expect("filter builds");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn must_deny_names_resolve_on_x86_64() {
        let _guard = libseccomp_lock();
        // Present in every x86_64 syscall table libseccomp 2.5.4 knows; a typo would make the
        // denial vacuous.
        for name in MUST_DENY {
            assert!(
                rules::resolve(name, ScmpArch::native()).is_some(),
                "`{name}` does not resolve on x86_64"
            );
        }
        for name in [
            "clone",
            "clone3",
            "socket",
            "personality",
            "execve",
            "read",
            "ioctl",
        ] {
            assert!(
                rules::resolve(name, ScmpArch::native()).is_some(),
                "`{name}` does not resolve on x86_64"
            );
        }
        assert!(rules::resolve("no_such_syscall", ScmpArch::native()).is_none());
        assert!(
            rules::resolve("socketcall", ScmpArch::native()).is_none(),
            "multiplexer absent on x86_64 must be skipped"
        );
    }

    #[test]
    fn clone_rule_masks_every_namespace_flag() {
        let rule = ALLOWED
            .iter()
            .find(|r| r.name == "clone")
            .expect("clone listed");
        let ArgRule::Only([[cmp]]) = rule.args else {
            panic!("clone rule shape: {rule:?}")
        };
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
        ] {
            assert_ne!(cmp.mask & flag as u64, 0, "flag {flag:#x} not masked");
        }
        assert_eq!(cmp.value, 0);
        let thread_flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(
            thread_flags & cmp.mask,
            0,
            "thread creation must stay allowed"
        );
    }

    #[test]
    fn kernel_support_accepts_modern_kernels() {
        let modern = "kill_process kill_thread trap errno user_notif trace log allow\n";
        assert_eq!(kernel_support(modern), Ok(()));
    }

    #[test]
    fn kernel_support_names_what_is_missing() {
        // Linux 4.14–4.19: no user notification.
        let old = "kill_process kill_thread trap errno trace log allow";
        let err = kernel_support(old).expect_err("user_notif missing");
        assert!(err.contains("user_notif"), "{err}");
        assert!(!err.contains("errno"), "{err}");
        let err = kernel_support("").expect_err("nothing available");
        assert!(err.contains("CONFIG_SECCOMP_FILTER"), "{err}");
        let err = kernel_support("allow user_notif").expect_err("errno, kill_process missing");
        assert!(
            err.contains("errno") && err.contains("kill_process"),
            "{err}"
        );
    }

    #[test]
    fn serve_notifications_returns_on_stop() {
        let _guard = libseccomp_lock();
        // A listener nobody notifies: the stop flag alone must end the loop promptly. Any fd
        // works for poll; an eventfd never becomes readable here.
        let fd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).expect("eventfd");
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert!(serve_notifications_until(fd, &stop).is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// Env var that makes [`child_entry`] run (set only by [`installed_filter_denies_and_counts`]).
    const CHILD_ENV: &str = "WARDEN_SECCOMP_CHILD";

    /// Runs [`child_entry`] in a fresh process (only that test, so libseccomp's global state and
    /// the filter touch nothing else) and checks it passed within a deadline.
    #[test]
    fn installed_filter_denies_and_counts() {
        let avail = std::fs::read_to_string(ACTIONS_AVAIL_PATH).unwrap_or_default();
        if let Err(reason) = kernel_support(&avail) {
            eprintln!("skipping: {reason}");
            return;
        }
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "seccomp::tests::child_entry",
                "--ignored",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn test child");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait child").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("child output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stdout.contains("1 passed"),
            "child test did not run:\n{stdout}\n{stderr}"
        );
    }

    fn errno_of<T>(r: rustix::io::Result<T>) -> i32 {
        match r {
            Ok(_) => 0,
            Err(e) => e.raw_os_error(),
        }
    }

    /// What the filtered thread tried: (what, 0 for success or the errno).
    fn sandboxed_attempts(filter: &CompiledFilter) -> Vec<(&'static str, i32)> {
        use rustix::net::{ipproto, netlink, socket_with, AddressFamily, SocketFlags, SocketType};

        let sock = |af, ty, proto| errno_of(socket_with(af, ty, SocketFlags::CLOEXEC, proto));
        let mut results = vec![
            // Allowed.
            (
                "sched_getaffinity",
                errno_of(rustix::thread::sched_getaffinity(None)),
            ),
            (
                "socket unix stream",
                sock(AddressFamily::UNIX, SocketType::STREAM, None),
            ),
            (
                "socket inet stream",
                sock(AddressFamily::INET, SocketType::STREAM, None),
            ),
            (
                "socket inet stream tcp",
                sock(AddressFamily::INET, SocketType::STREAM, Some(ipproto::TCP)),
            ),
            (
                "socket inet6 dgram",
                sock(AddressFamily::INET6, SocketType::DGRAM, None),
            ),
            (
                "socket netlink route",
                sock(AddressFamily::NETLINK, SocketType::RAW, None),
            ),
        ];
        // A thread: glibc tries clone3 (ENOSYS, not counted), then clone without namespace
        // flags.
        let thread_ok = std::thread::spawn(|| 7).join().is_ok_and(|v| v == 7);
        results.push(("thread via clone fallback", i32::from(!thread_ok)));
        // Denied (EPERM, counted). Arguments are chosen to fail harmlessly should the filter
        // let a call through (this runs as root in CI): unshare(CLONE_NEWUSER) is EINVAL in a
        // multithreaded process, the paths do not exist, setns joins our own namespace.
        results.extend([
            (
                "socket inet raw",
                sock(AddressFamily::INET, SocketType::RAW, None),
            ),
            (
                "socket packet raw",
                sock(AddressFamily::PACKET, SocketType::RAW, None),
            ),
            (
                "socket inet stream sctp",
                sock(AddressFamily::INET, SocketType::STREAM, Some(ipproto::SCTP)),
            ),
            (
                "socket netlink audit",
                sock(
                    AddressFamily::NETLINK,
                    SocketType::RAW,
                    Some(netlink::AUDIT),
                ),
            ),
        ]);
        #[allow(deprecated)] // unshare is only unsafe with CLONE_FILES.
        results.push((
            "unshare",
            errno_of(rustix::thread::unshare(
                rustix::thread::UnshareFlags::NEWUSER,
            )),
        ));
        let uts = std::fs::File::open("/proc/thread-self/ns/uts").expect("open own uts ns");
        results.push((
            "setns",
            errno_of(rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&uts),
                Some(rustix::thread::LinkNameSpaceType::HostNameAndNISDomainName),
            )),
        ));
        results.push((
            "chroot",
            errno_of(rustix::process::chroot("/nonexistent-warden")),
        ));
        results.push((
            "pivot_root",
            errno_of(rustix::process::pivot_root(
                "/nonexistent-warden",
                "/nonexistent-warden",
            )),
        ));
        results.push((
            "umount2",
            errno_of(rustix::mount::unmount(
                "/nonexistent-warden",
                rustix::mount::UnmountFlags::empty(),
            )),
        ));
        // A program cannot stack a filter with its own listener (the kernel refuses a second
        // listener in one filter chain), so it can never answer, and bypass, our notifications.
        let second = install(filter);
        results.push((
            "second listener",
            i32::from(!matches!(second, Err(SeccompError::Load(_)))),
        ));
        results
    }

    /// The body of [`installed_filter_denies_and_counts`], in its own process. Not a test on
    /// its own (ignored, and a no-op without [`CHILD_ENV`]).
    #[test]
    #[ignore = "run by installed_filter_denies_and_counts in a fresh process"]
    fn child_entry() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        // Compiled before any thread is filtered (compiling makes calls the policy denies).
        let filter = embedded().expect("embedded filter");
        let (send_listener, recv_listener) = mpsc::channel::<OwnedFd>();
        let stop = AtomicBool::new(false);
        let (violations, results, returned_on_hup) = std::thread::scope(|scope| {
            // The supervisor: started before any filter exists, so it is never filtered.
            let stop = &stop;
            let server = scope.spawn(move || {
                let listener = recv_listener.recv().expect("listener");
                serve_notifications_until(listener, stop)
            });
            // The sandboxed thread: the filter applies to it (and threads it starts) only. If
            // install made a denied call after loading, nobody could answer it yet and the
            // parent's deadline would fail the test.
            let sandboxed = scope.spawn(move || {
                rustix::thread::set_no_new_privs(true).expect("no_new_privs");
                let listener = install(&filter).expect("install");
                send_listener.send(listener).expect("send listener");
                sandboxed_attempts(&filter)
            });
            let results = sandboxed.join().expect("sandboxed thread");
            // The sandboxed thread has exited: the kernel reports POLLHUP and the server
            // returns without the stop flag, which is only a safety net here.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !server.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let returned_on_hup = server.is_finished();
            stop.store(true, Ordering::SeqCst);
            (
                server.join().expect("server thread"),
                results,
                returned_on_hup,
            )
        });
        println!("results: {results:?}");
        println!("violations: {violations:?}");
        assert!(
            returned_on_hup,
            "serve_notifications did not end on POLLHUP"
        );

        let eperm = libc::EPERM;
        let expect = [
            ("sched_getaffinity", 0),
            ("socket unix stream", 0),
            ("socket inet stream", 0),
            ("socket inet stream tcp", 0),
            ("socket inet6 dgram", 0),
            ("socket netlink route", 0),
            ("thread via clone fallback", 0),
            ("socket inet raw", eperm),
            ("socket packet raw", eperm),
            ("socket inet stream sctp", eperm),
            ("socket netlink audit", eperm),
            ("unshare", eperm),
            ("setns", eperm),
            ("chroot", eperm),
            ("pivot_root", eperm),
            ("umount2", eperm),
            ("second listener", 0),
        ];
        assert_eq!(results, expect);
        let counted: BTreeMap<&str, u64> = violations
            .iter()
            .map(|v| (v.syscall.as_str(), v.count))
            .collect();
        let wanted: BTreeMap<&str, u64> = [
            ("chroot", 1),
            ("pivot_root", 1),
            ("setns", 1),
            ("socket", 4),
            ("umount2", 1),
            ("unshare", 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            counted, wanted,
            "clone3 must not be counted; nothing else may be denied"
        );
        let names: Vec<&str> = violations.iter().map(|v| v.syscall.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "violations sorted by name");
    }
}
