//! The sandbox's child side: a fresh exec of the warden binary in init mode.
//!
//! Three processes, each single-threaded, so `fork` and credential changes are sound:
//!
//! 1. **stage 1** (started by the supervisor, already in the execution's cgroup) unshares the
//!    namespaces, waits for the supervisor to write the user-namespace id maps, forks PID 1
//!    and waits for it;
//! 2. **PID 1** of the new PID namespace builds the filesystem, `pivot_root`s into it, sets the
//!    hostname and brings up `lo`, forks the program process, reaps orphans, forwards signals
//!    and reports the program's status; when it exits the kernel kills everything left in the
//!    namespace;
//! 3. the **program process** applies rlimits, closes fds, resets the environment, drops
//!    credentials and capabilities, sets `no_new_privs`, enforces landlock, installs seccomp
//!    (last) and `execve`s the program.
//!
//! Every failure is reported to the supervisor as a `SetupFailed` message naming the step; the
//! program never starts with a layer half-applied.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::proto::{self, InitConfig, Msg, Receiver};
use crate::sys::{self, Fork, WaitStatus};
use crate::WORKDIR;

/// Fd number of the control socket in the init process.
pub const CONTROL_FD: RawFd = 3;

/// Where the new root is assembled before `pivot_root`. Mounting over it is only visible in
/// the sandbox's private mount namespace.
const STAGING: &str = "/tmp";

/// Host `/etc` entries exposed read-only (when present): what the dynamic loader, TLS, time
/// zones and language runtimes read. Everything else in `/etc` (shadow, host keys, …) is absent.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "protocols",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
    "services",
    "ssl",
    "timezone",
];

/// Environment variable in which the supervisor passes its pid to the init (the init's only
/// environment entry; the program gets a fresh environment).
pub const SUPERVISOR_PID_ENV: &str = "WARDEN_SUPERVISOR_PID";

/// Host device nodes bind-mounted into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// `/proc` files hidden behind `/dev/null`: container runtimes' list (runc's default
/// `maskedPaths`, with `interrupts` as newer runc releases have it), plus the host's kernel
/// command line and build configuration, which say more about the host than a program needs.
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "timer_stats",
    "latency_stats",
    "sched_debug",
    "sysrq-trigger",
    "cmdline",
    "config.gz",
    "interrupts",
];

/// `/proc` directories hidden under an empty read-only tmpfs (runc's default `maskedPaths`):
/// host hardware details.
const PROC_MASKED_DIRS: &[&str] = &["acpi", "asound", "scsi"];

/// `/proc` directories made read-only.
const PROC_READ_ONLY: &[&str] = &["sys", "bus", "fs", "irq"];

/// Signals PID 1 forwards to the program.
const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A failed setup step: which step, and the OS error.
struct StepError {
    step: String,
    error: io::Error,
}

type Step<T = ()> = Result<T, StepError>;

/// Attaches the step name to an `io::Result`.
trait StepContext<T> {
    fn step(self, step: impl Into<String>) -> Step<T>;
}

impl<T> StepContext<T> for io::Result<T> {
    fn step(self, step: impl Into<String>) -> Step<T> {
        self.map_err(|error| StepError {
            step: step.into(),
            error,
        })
    }
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A failed step whose cause is a library error: its message and every `source` below it.
fn library_failure(step: &str, e: &dyn std::error::Error) -> StepError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    StepError {
        step: step.to_string(),
        error: io::Error::other(text),
    }
}

/// A failed step that has no OS error of its own.
fn failure(step: impl Into<String>, what: &str) -> StepError {
    StepError {
        step: step.into(),
        error: protocol_error(what),
    }
}

/// Entry point of init mode; never returns. Call it first thing in `main` when
/// `std::env::args().nth(1) == Some(INIT_ARG)`; the supervisor passes its pid in
/// [`SUPERVISOR_PID_ENV`].
pub fn main() -> ! {
    // Before anything else: a group signal meant for the supervisor may be pending (see
    // `sys::GROUP_SIGNALS`); drop it, then run with nothing blocked.
    if sys::discard_group_signals_and_unblock().is_err() {
        sys::exit_now(125);
    }
    // The supervisor placed the control socket at CONTROL_FD (dup2 before exec).
    let control = match take_control_fd() {
        Ok(fd) => fd,
        Err(_) => sys::exit_now(125),
    };

    // The supervisor's pid, the parent to watch.
    let supervisor = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let code = match supervisor
        .ok_or_else(|| failure("start", "no supervisor pid in the environment"))
        .and_then(|supervisor| stage1(&control, supervisor))
    {
        Ok(code) => code,
        Err(e) => {
            report_failure(&control, &e);
            125
        }
    };
    sys::exit_now(code)
}

fn take_control_fd() -> io::Result<OwnedFd> {
    // Close-on-exec first: the program must never inherit the control socket.
    sys::set_cloexec(CONTROL_FD, true)?;
    // Any other fd the caller leaked to us (one without close-on-exec) goes now: none may
    // reach the sandbox, and holding one could keep a pipe of the caller's open.
    sys::close_from(CONTROL_FD + 1)?;
    Ok(sys::adopt_fd(CONTROL_FD))
}

fn report_failure(control: &OwnedFd, e: &StepError) {
    let msg = Msg::SetupFailed {
        step: e.step.clone(),
        error: e.error.to_string(),
    };
    let _ = proto::send(control, &msg, &[]);
}

/// Stage 1: namespaces, id maps, fork PID 1, wait for it. `supervisor` is the pid of the
/// process that spawned us.
fn stage1(control: &OwnedFd, supervisor: u32) -> Step<i32> {
    // If the supervisor dies, so do we (and PID 1 follows us, and the namespace follows it).
    arm_parent_death_signal(supervisor)?;
    let mut rx = Receiver::new();
    let cfg = match rx.recv(control).step("receive config")? {
        Some(Msg::Config(cfg)) => *cfg,
        _ => return Err(failure("receive config", "expected config")),
    };
    // Drop the host's supplementary groups (host gid 0 would otherwise stay in effect).
    sys::clear_groups().step("clear supplementary groups")?;

    if cfg.userns {
        // Create the user namespace as its dedicated unprivileged host uid, not as root: the
        // kernel charges per-user counters of everything inside (pending signals, inotify
        // instances, message queues, processes) to the namespace owner too, so the sandbox
        // must never be able to exhaust host root's.
        sys::set_ids(cfg.host_uid, cfg.host_uid).step("drop to the sandbox's host uid")?;
        // A credential change clears the parent-death signal (prctl(2)).
        arm_parent_death_signal(supervisor)?;
    }

    // Namespaces first (DESIGN: layer order). With CLONE_NEWUSER in the same call the kernel
    // creates the user namespace first and makes it own the others, so PID 1 can mount proc
    // and tmpfs without any host privilege. CLONE_NEWPID applies to our children.
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWPID;
    if cfg.userns {
        flags |= libc::CLONE_NEWUSER;
    }
    sys::unshare(flags).step("unshare namespaces")?;

    // The supervisor joins us to the execution's cgroup meanwhile, and writes the id maps: only
    // a process in the parent user namespace with CAP_SETUID may map more than its own uid
    // (user_namespaces(7)). Nothing is forked before it says so.
    proto::send(control, &Msg::Unshared, &[]).step("report unshare")?;
    match rx.recv(control).step("receive id maps")? {
        Some(Msg::Mapped) => {}
        _ => return Err(failure("receive id maps", "expected mapped")),
    }
    if cfg.userns {
        // Root of the new user namespace (the unprivileged host uid above), with the
        // namespace's capabilities, which PID 1 needs for its mounts.
        sys::set_ids(0, 0).step("become namespace root")?;
        sys::clear_groups().step("clear supplementary groups")?;
        arm_parent_death_signal(supervisor)?;
    }
    // Now inside the execution's cgroup: make it the root of a new cgroup namespace.
    sys::unshare(libc::CLONE_NEWCGROUP).step("unshare cgroup namespace")?;

    match sys::fork().step("fork pid 1")? {
        Fork::Child => {
            let code = match pid1(control, &cfg) {
                Ok(code) => code,
                Err(e) => {
                    report_failure(control, &e);
                    125
                }
            };
            sys::exit_now(code)
        }
        Fork::Parent(pid) => {
            // The pidfd lets the supervisor kill PID 1 without any pid-reuse race.
            let pidfd = sys::pidfd_open(pid).step("pidfd_open pid 1")?;
            proto::send(control, &Msg::Pid1 { host_pid: pid }, &[pidfd.as_raw_fd()])
                .step("report pid 1")?;
            drop(pidfd);
            match sys::wait4(pid, 0).step("wait for pid 1")? {
                Some((_, WaitStatus::Exited(code), _)) => Ok(code),
                Some((_, WaitStatus::Signaled(sig), _)) => Ok(128 + sig),
                None => Ok(125),
            }
        }
    }
}

/// Makes the kernel SIGKILL us when our parent dies, and fails if it already has: the parent
/// is no longer `supervisor` (we were reparented to a reaper). Comparing with the supervisor's
/// pid, not with 1, keeps a supervisor that is itself PID 1 of its container working. Re-armed
/// after every credential change, which clears it.
fn arm_parent_death_signal(supervisor: u32) -> Step {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0)
        .step("set parent-death signal")?;
    if std::os::unix::process::parent_id() != supervisor {
        return Err(failure("start", "parent is gone"));
    }
    Ok(())
}

/// PID 1 of the sandbox: filesystem, hostname, loopback, then supervise the program.
fn pid1(control: &OwnedFd, cfg: &InitConfig) -> Step<i32> {
    // Die with stage 1 (which dies with the supervisor).
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0)
        .step("set parent-death signal")?;

    // L3: build the root and pivot into it. Proc must be mounted before the old root is
    // detached: the kernel only allows a new proc mount in a user namespace while a fully
    // visible one exists in the mount namespace.
    build_root(cfg)?;
    pivot_into(STAGING)?;

    // UTS and network namespaces are ours: a neutral hostname, loopback up (nothing else).
    sys::sethostname("warden").step("sethostname")?;
    sys::loopback_up().step("bring up lo")?;
    if let Some(port) = cfg.spec.loopback_listener {
        // Created here, so it belongs to the sandbox's network namespace; the supervisor's
        // side accepts on it and makes the real connections from the host's namespace.
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .step("listen on the loopback listener port")?;
        proto::send(control, &Msg::Listener, &[listener.as_raw_fd()])
            .step("send the loopback listener")?;
    }

    // Block the signals we handle synchronously before forking, so none is lost.
    let mut waited = vec![libc::SIGCHLD];
    waited.extend_from_slice(FORWARDED);
    let old_mask = sys::block_signals(&waited).step("block signals")?;

    let program = match sys::fork().step("fork program")? {
        Fork::Child => {
            let err = match sys::set_signal_mask(&old_mask).step("restore signal mask") {
                Ok(()) => program_process(control, cfg),
                Err(e) => e,
            };
            report_failure(control, &err);
            sys::exit_now(125)
        }
        Fork::Parent(pid) => pid,
    };

    // Reap everything (we are the namespace's init), forward signals to the program, and stop
    // when the program itself ends. Our exit makes the kernel SIGKILL whatever is left.
    loop {
        let sig = sys::wait_signal(&waited).step("wait for signals")?;
        if sig != libc::SIGCHLD {
            let _ = sys::kill(program, sig);
            continue;
        }
        while let Some((pid, status, _)) = sys::wait4(-1, libc::WNOHANG).step("reap")? {
            if pid == program {
                let (code, signal) = match status {
                    WaitStatus::Exited(c) => (Some(c), None),
                    WaitStatus::Signaled(s) => (None, Some(s)),
                };
                proto::send(control, &Msg::Exit { code, signal }, &[]).step("report exit")?;
                return Ok(0);
            }
        }
    }
}

/// Joins `path` (absolute inside the sandbox) under the staging root.
fn staged(path: impl AsRef<Path>) -> String {
    let rel = path.as_ref().strip_prefix("/").unwrap_or(path.as_ref());
    Path::new(STAGING).join(rel).to_string_lossy().into_owned()
}

fn mkdir_p(path: &str) -> Step {
    fs::create_dir_all(path).step(format!("mkdir {path}"))
}

/// Mount flags of an existing mount that must be kept on a read-only remount: in a user
/// namespace the kernel refuses to clear nosuid/nodev/noexec/atime flags it locked.
fn locked_flags(path: &str) -> Step<libc::c_ulong> {
    let st = sys::statvfs_flags(path).step(format!("statvfs {path}"))?;
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    for (st_flag, ms_flag) in [
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Bind-mounts `source` at `target` and makes the bind read-only.
fn bind_read_only(source: &str, target: &str) -> Step {
    let bind = sys::mount(Some(source), target, None, libc::MS_BIND, None);
    if let Err(e) = bind {
        // A mount with locked submounts may only be bound recursively in a user namespace.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e).step(format!("bind {source}"));
        }
        sys::mount(
            Some(source),
            target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .step(format!("bind {source}"))?;
    }
    let flags = locked_flags(target)?;
    sys::mount(
        None,
        target,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
        None,
    )
    .step(format!("remount {target} read-only"))
}

/// Largest host file copied into the new root instead of bind-mounted (bytes).
const COPY_MAX: u64 = 1 << 20;

/// Exposes one host path read-only at the same place in the new root: directories are
/// bind-mounted, symlinks (merged-/usr) recreated, and small regular files copied into the
/// root tmpfs, which is remounted read-only at the end (a copy costs less than a bind mount
/// and its read-only remount).
fn expose(host: &Path) -> Step {
    let meta = match fs::symlink_metadata(host) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let target = staged(host);
    if let Some(parent) = Path::new(&target).parent() {
        mkdir_p(&parent.to_string_lossy())?;
    }
    let host_str = host.to_string_lossy();
    if meta.file_type().is_symlink() {
        let link = fs::read_link(host).step(format!("readlink {host_str}"))?;
        symlink(&link, &target).step(format!("symlink {target}"))
    } else if meta.is_dir() {
        mkdir_p(&target)?;
        bind_read_only(&host_str, &target)
    } else if meta.is_file() && meta.len() <= COPY_MAX {
        match fs::copy(host, &target) {
            Ok(_) => {}
            // Not readable by the sandbox's host uid: the program could not read it either.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return fs::remove_file(&target).step(format!("skip {host_str}"));
            }
            Err(e) => return Err(e).step(format!("copy {host_str}")),
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644))
            .step(format!("chmod {target}"))
    } else {
        fs::write(&target, b"").step(format!("create {target}"))?;
        bind_read_only(&host_str, &target)
    }
}

fn mount_tmpfs(target: &str, flags: libc::c_ulong, options: &str) -> Step {
    mkdir_p(target)?;
    sys::mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options))
        .step(format!("mount tmpfs {target}"))
}

/// Builds the sandbox root under [`STAGING`]: a small tmpfs with the read-only runtime, a
/// minimal `/etc`, size-limited `/tmp`, `/dev/shm` and working directory, a minimal `/dev`
/// and a fresh `/proc` whose `/proc/sys` is read-only.
fn build_root(cfg: &InitConfig) -> Step {
    let spec = &cfg.spec;
    let uid = cfg.run_uid;
    // Stop mount events from propagating back to the host, then mount the new root.
    sys::mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None).step("make / private")?;
    sys::mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=4m,mode=0755"),
    )
    .step("mount root tmpfs")?;

    // Runtime, read-only.
    for path in &spec.ro_paths {
        expose(path)?;
    }

    // /etc: selected host entries plus synthetic identity files.
    mkdir_p(&staged("/etc"))?;
    for entry in ETC_ENTRIES {
        expose(&Path::new("/etc").join(entry))?;
    }
    let write =
        |path: &str, text: &str| fs::write(staged(path), text).step(format!("write {path}"));
    write("/etc/passwd", &format!("root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{uid}:sandbox:{WORKDIR}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"))?;
    write(
        "/etc/group",
        &format!("root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n"),
    )?;
    write("/etc/hostname", "warden\n")?;
    write(
        "/etc/hosts",
        "127.0.0.1 localhost warden\n::1 localhost ip6-localhost ip6-loopback\n",
    )?;
    write("/etc/resolv.conf", "")?;

    // Scratch space: size-limited tmpfs, never executable except the working directory.
    let scratch = libc::MS_NOSUID | libc::MS_NODEV;
    let tmp_size = spec.limits.tmpfs_bytes;
    mount_tmpfs(
        &staged("/tmp"),
        scratch | libc::MS_NOEXEC,
        &format!("size={tmp_size},mode=1777"),
    )?;
    let work_size = spec.limits.workdir_bytes;
    mount_tmpfs(
        &staged(WORKDIR),
        scratch,
        &format!("size={work_size},mode=0755,uid={uid},gid={uid}"),
    )?;
    for file in &spec.files {
        write_input(&staged(WORKDIR), file, uid)?;
    }

    // /dev: a few host device nodes (bind mounts: a user namespace cannot mknod).
    let dev = staged("/dev");
    mount_tmpfs(
        &dev,
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "size=64k,mode=0755",
    )?;
    for node in DEVICES {
        let target = format!("{dev}/{node}");
        fs::write(&target, b"").step(format!("create {target}"))?;
        sys::mount(
            Some(&format!("/dev/{node}")),
            &target,
            None,
            libc::MS_BIND,
            None,
        )
        .step(format!("bind /dev/{node}"))?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, format!("{dev}/{name}")).step(format!("symlink /dev/{name}"))?;
    }
    mount_tmpfs(
        &format!("{dev}/shm"),
        scratch | libc::MS_NOEXEC,
        &format!("size={tmp_size},mode=1777"),
    )?;

    // /proc of the new PID namespace, with the kernel-wide knobs read-only or hidden.
    let proc_dir = staged("/proc");
    mkdir_p(&proc_dir)?;
    sys::mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .step("mount proc")?;
    for dir in PROC_READ_ONLY {
        let path = format!("{proc_dir}/{dir}");
        if Path::new(&path).exists() {
            bind_read_only(&path, &path)?;
        }
    }
    for file in PROC_MASKED {
        let path = format!("{proc_dir}/{file}");
        if Path::new(&path).exists() {
            sys::mount(
                Some(&format!("{dev}/null")),
                &path,
                None,
                libc::MS_BIND,
                None,
            )
            .step(format!("mask /proc/{file}"))?;
        }
    }
    for dir in PROC_MASKED_DIRS {
        let path = format!("{proc_dir}/{dir}");
        if Path::new(&path).is_dir() {
            sys::mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=4k,mode=0555"),
            )
            .step(format!("mask /proc/{dir}"))?;
        }
    }
    Ok(())
}

/// Writes one input file under the working directory, owned by the sandbox user.
fn write_input(workdir: &str, file: &crate::InputFile, uid: u32) -> Step {
    let rel = crate::workdir_relative(&file.path);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(failure(
            format!("input file {}", file.path),
            "path escapes the working directory",
        ));
    }
    let target = PathBuf::from(workdir).join(rel);
    let step = format!("input file {}", file.path);
    let mut dir = PathBuf::from(workdir);
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).step(step.clone())?;
                std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).step(step.clone())?;
            }
        }
    }
    fs::write(&target, &file.contents).step(step.clone())?;
    fs::set_permissions(&target, fs::Permissions::from_mode(file.mode & 0o777))
        .step(step.clone())?;
    std::os::unix::fs::chown(&target, Some(uid), Some(uid)).step(step)
}

/// `pivot_root` into `new_root` and detach the host's root entirely.
fn pivot_into(new_root: &str) -> Step {
    std::env::set_current_dir(new_root).step("chdir new root")?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    // detaches it, with no directory for it left behind (pivot_root(2), NOTES).
    sys::pivot_root(".", ".").step("pivot_root")?;
    sys::umount2(".", libc::MNT_DETACH).step("detach old root")?;
    std::env::set_current_dir("/").step("chdir /")?;
    let flags = locked_flags("/")?;
    sys::mount(
        None,
        "/",
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
        None,
    )
    .step("remount / read-only")
}

/// The program process: rlimits → fds and environment → credentials and capabilities →
/// no_new_privs → landlock → seccomp → execve. Returns only on failure.
fn program_process(control: &OwnedFd, cfg: &InitConfig) -> StepError {
    match prepare_program(control, cfg) {
        Ok(exec) => exec_program(control, &exec),
        Err(e) => e,
    }
}

struct Exec {
    program: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
    path: Vec<String>,
}

fn cstring(s: &str, what: &str) -> Step<CString> {
    CString::new(s).map_err(|_| StepError {
        step: what.to_string(),
        error: protocol_error("contains a NUL byte"),
    })
}

fn prepare_program(control: &OwnedFd, cfg: &InitConfig) -> Step<Exec> {
    let spec = &cfg.spec;
    let limits = &spec.limits;
    std::env::set_current_dir(WORKDIR).step("chdir workdir")?;

    // L5/L6 fallbacks and hygiene: rlimits before the privilege drop (raising is impossible after).
    sys::set_rlimit(libc::RLIMIT_CORE, 0).step("RLIMIT_CORE")?;
    sys::set_rlimit(libc::RLIMIT_NOFILE, limits.open_files).step("RLIMIT_NOFILE")?;
    // Per-user kernel counters are charged up the user-namespace chain: keep the sandbox's
    // share small (queued signals, POSIX message-queue bytes).
    sys::set_rlimit(libc::RLIMIT_SIGPENDING, 4096).step("RLIMIT_SIGPENDING")?;
    sys::set_rlimit(libc::RLIMIT_MSGQUEUE, 256 << 10).step("RLIMIT_MSGQUEUE")?;
    if !cfg.cgroup_pids {
        sys::set_rlimit(libc::RLIMIT_NPROC, limits.pids).step("RLIMIT_NPROC")?;
    }
    if !cfg.cgroup_memory {
        sys::set_rlimit(libc::RLIMIT_AS, limits.memory_bytes).step("RLIMIT_AS")?;
    }
    if !cfg.cgroup_cpu {
        sys::set_rlimit(libc::RLIMIT_CPU, limits.timeout.as_secs().max(1)).step("RLIMIT_CPU")?;
    }

    // Only fds 0-2 reach the program (the control socket is close-on-exec), and signal
    // dispositions are reset (the warden binary ignores SIGPIPE; ignoring survives execve).
    sys::close_from(CONTROL_FD + 1).step("close fds")?;
    sys::reset_signal_dispositions().step("reset signals")?;

    // Environment reset: a minimal one plus what the caller asked for.
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), WORKDIR.into()),
        ("PWD".into(), WORKDIR.into()),
        ("TMPDIR".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("USER".into(), "sandbox".into()),
        ("LOGNAME".into(), "sandbox".into()),
    ];
    for (k, v) in &spec.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| {
            v.split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let envp = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}"), "environment"))
        .collect::<Step<Vec<_>>>()?;
    let mut argv = vec![cstring(&spec.program, "program")?];
    for a in &spec.args {
        argv.push(cstring(a, "arguments")?);
    }

    // L4: lock securebits (no root magic on exec or setuid, no ambient raise), empty the
    // bounding and ambient sets, drop to the sandbox uid/gid, then empty the remaining sets.
    // Securebits need CAP_SETPCAP, so they come first.
    let securebits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, securebits, 0).step("lock securebits")?;
    let last_cap: u64 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    for cap in 0..=last_cap {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e).step("drop bounding set"),
        }
    }
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .step("clear ambient capabilities")?;
    sys::clear_groups().step("clear supplementary groups")?;
    sys::set_ids(cfg.run_uid, cfg.run_uid).step("drop uid/gid")?;
    sys::clear_capabilities().step("clear capabilities")?;

    // L8: no_new_privs: setuid/setcap binaries give nothing from here on (also required by
    // landlock and seccomp for unprivileged processes).
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).step("no_new_privs")?;

    // L9: landlock.
    let abi = if cfg.landlock {
        Some(
            crate::landlock::restrict_self(&spec.ro_paths, spec.loopback_listener)
                .map_err(|e| library_failure("landlock", &e))?,
        )
    } else {
        None
    };
    proto::send(control, &Msg::Landlock { abi }, &[]).step("report landlock")?;

    // L2: seccomp, last: everything above needed syscalls the filter denies.
    if cfg.seccomp {
        let listener = crate::seccomp::embedded()
            .and_then(|filter| crate::seccomp::install(&filter))
            .map_err(|e| library_failure("seccomp", &e))?;
        proto::send(control, &Msg::SeccompListener, &[listener.as_raw_fd()])
            .step("send seccomp listener")?;
        // Never let the program hold its own listener: it could answer its own notifications.
        drop(listener);
    }
    Ok(Exec {
        program: spec.program.clone(),
        argv,
        envp,
        path,
    })
}

/// `execve` with a `PATH` search like execvp(3); reports why nothing could be executed.
fn exec_program(control: &OwnedFd, exec: &Exec) -> StepError {
    let candidates: Vec<String> = if exec.program.is_empty() {
        Vec::new()
    } else if exec.program.contains('/') {
        vec![exec.program.clone()]
    } else {
        exec.path
            .iter()
            .map(|dir| format!("{dir}/{}", exec.program))
            .collect()
    };
    let mut denied: Option<io::Error> = None;
    for candidate in candidates {
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        let err = sys::execve(&path, &exec.argv, &exec.envp);
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
            _ => {
                if denied.is_none() {
                    denied = Some(err);
                }
            }
        }
    }
    let (not_found, message) = match &denied {
        None => (true, format!("not found: {}", exec.program)),
        Some(e) => (false, format!("cannot execute {}: {e}", exec.program)),
    };
    let _ = proto::send(control, &Msg::ExecFailed { not_found, message }, &[]);
    sys::exit_now(if not_found { 127 } else { 126 })
}

// Securebits (linux/securebits.h).
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;
