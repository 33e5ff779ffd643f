//! The supervisor side: [`Sandbox::run`].
//!
//! It owns the cgroup, the user-namespace maps, the seccomp notification loop, output capture
//! with byte caps, the wall-clock timeout and teardown. When `run` returns, no process, mount,
//! cgroup or temporary file of the execution is left: every sandbox process lives in a PID
//! namespace whose init dies with the execution (the kernel then kills the rest), mounts live
//! only in the sandbox's mount namespace, and the cgroup is removed after it is empty.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cgroup::{Cgroup, CgroupLimits};
use crate::host::{self, HostReport};
use crate::proto::{self, InitConfig, Msg, Receiver};
use crate::{sys, Error, Layer, Outcome, Spec, Stdin, Violation, INIT_ARG, SANDBOX_UID};

/// Set from another thread (or a signal handler) to stop an execution early; the sandbox is
/// killed and torn down as after a timeout.
pub type CancelFlag = Arc<AtomicBool>;

/// Environment variable listing layers (comma-separated) that [`Sandbox::new`] treats as
/// missing on this host. For tests of the fail-closed path; it never adds a layer.
pub const PRETEND_MISSING_ENV: &str = "WARDEN_PRETEND_MISSING";

/// First host uid of the uids the sandbox's user namespace maps (sandbox uid 0 → this).
pub const DEFAULT_UID_BASE: u32 = 1_000_000_000;

/// Number of uids (and gids) the sandbox's user namespace maps by default.
pub const DEFAULT_UID_COUNT: u32 = 65_536;

/// Largest total of input files one execution accepts (they travel in the control channel).
pub const MAX_INPUT_BYTES: u64 = 128 << 20;

/// Most input files one execution accepts.
pub const MAX_INPUT_FILES: usize = 1000;

/// Warden's own processes inside an execution's cgroup: stage 1 and the sandbox's PID 1.
const INIT_PROCESSES: u64 = 2;

/// argv\[0\] of the init (stage 1 and PID 1), instead of the binary's host path.
const INIT_ARGV0: &std::ffi::CStr = c"warden-init";

/// How often the supervisor checks the cancel flag while it waits, in milliseconds.
const CANCEL_POLL_MS: i32 = 50;

/// Runs programs in sandboxes. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Sandbox {
    init_exe: PathBuf,
    host: HostReport,
    cgroup_parent: String,
    uid_base: u32,
    uid_count: u32,
    /// Suffix of execution cgroup names ([`crate::cgroup::owner_tag`]).
    owner: Option<String>,
    /// Orphaned execution cgroups under the parent are swept once, before the first run.
    swept: Arc<Once>,
}

/// Optional live sinks for the program's output (in addition to capture) and a cancel flag.
#[derive(Default)]
pub struct RunIo {
    /// Receives stdout as it arrives, up to the output cap.
    pub stdout: Option<Box<dyn Write + Send>>,
    /// Receives stderr as it arrives, up to the output cap.
    pub stderr: Option<Box<dyn Write + Send>>,
    /// Stops the execution when set.
    pub cancel: Option<CancelFlag>,
    /// Receives the listening socket of [`Spec::loopback_listener`] (created inside the
    /// sandbox's network namespace, already listening) before the program starts; called once,
    /// from the supervising thread, so it should hand the socket to a server and return.
    /// Required when the spec asks for a listener.
    pub on_listener: Option<ListenerHandler>,
}

/// Takes the sandbox's loopback listener (see [`RunIo::on_listener`]).
pub type ListenerHandler = Box<dyn FnOnce(std::net::TcpListener) + Send>;

impl Sandbox {
    /// A sandbox whose init side is `init_exe` started with [`INIT_ARG`] (normally the
    /// `warden` binary itself). Probes the host once.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when `init_exe` does not exist.
    pub fn new(init_exe: impl Into<PathBuf>) -> Result<Self, Error> {
        let init_exe = init_exe.into();
        std::fs::metadata(&init_exe).map_err(|source| Error::Spawn {
            path: init_exe.clone(),
            source,
        })?;
        let mut host = host::probe();
        if let Err(e) = crate::seccomp::embedded() {
            host.mark_unavailable(
                Layer::Seccomp,
                format!("the embedded filter is unusable: {e}"),
            );
        }
        // Test hook: pretend layers are missing, to exercise the fail-closed path and the
        // rlimit fallbacks on a host that has everything. It can only take layers away, and a
        // missing layer still needs --allow-missing to run.
        if let Ok(names) = std::env::var(PRETEND_MISSING_ENV) {
            for layer in names
                .split(',')
                .filter_map(|n| n.trim().parse::<Layer>().ok())
            {
                host.mark_unavailable(layer, format!("pretended missing ({PRETEND_MISSING_ENV})"));
            }
        }
        Ok(Sandbox {
            init_exe,
            host,
            cgroup_parent: "warden".into(),
            uid_base: DEFAULT_UID_BASE,
            uid_count: DEFAULT_UID_COUNT,
            owner: crate::cgroup::owner_tag(),
            swept: Arc::new(Once::new()),
        })
    }

    /// Maps sandbox uids/gids `0..count` to host ids `base..base+count` instead of the
    /// default ([`DEFAULT_UID_BASE`], [`DEFAULT_UID_COUNT`]). Inside a container that runs in
    /// its own user namespace (a Kubernetes pod with `hostUsers: false` maps 65536 ids), pick a
    /// range that namespace maps, away from ids its files use, e.g. base 10000, count 2000.
    ///
    /// # Errors
    ///
    /// [`Error::UidRange`] when `count` does not cover the sandbox user ([`SANDBOX_UID`]),
    /// `base` is 0 (root), the range overflows, or this process's own user namespace does not
    /// map every id of it (`/proc/self/uid_map` and `gid_map`, user_namespaces(7)).
    pub fn with_uid_range(mut self, base: u32, count: u32) -> Result<Self, Error> {
        let end = u64::from(base) + u64::from(count);
        let bad = |reason: String| Error::UidRange { base, end, reason };
        if count <= SANDBOX_UID {
            return Err(bad(format!(
                "the count must exceed the sandbox user's uid {SANDBOX_UID}"
            )));
        }
        if base == 0 && in_initial_user_namespace() {
            return Err(bad("sandbox root must not be host root: use a base above 0 (0 is accepted only when Warden itself runs in a user namespace, as in a pod with hostUsers: false)".into()));
        }
        if end > u64::from(u32::MAX) {
            return Err(bad("the range ends past the largest uid".into()));
        }
        for file in ["/proc/self/uid_map", "/proc/self/gid_map"] {
            let map = std::fs::read_to_string(file)
                .map_err(|e| bad(format!("cannot read {file}: {e}")))?;
            if !id_map_covers(&map, base, count) {
                return Err(bad(format!(
                    "{file} does not map every id of it; choose a range inside what it maps"
                )));
            }
        }
        self.uid_base = base;
        self.uid_count = count;
        Ok(self)
    }

    /// The host probe this sandbox decides layers from.
    pub fn host(&self) -> &HostReport {
        &self.host
    }

    /// Sets the cgroup under which each execution's cgroup is created (default `warden`,
    /// relative to the hierarchy root).
    pub fn with_cgroup_parent(mut self, parent: impl Into<String>) -> Self {
        self.cgroup_parent = parent.into();
        self
    }

    /// Runs `spec` and captures its output.
    ///
    /// # Errors
    ///
    /// [`Error`] when Warden itself failed (bad limits, missing layer, setup failure); the
    /// program's own failures (exit codes, signals, timeouts, OOM kills) are in the [`Outcome`].
    pub fn run(&self, spec: &Spec) -> Result<Outcome, Error> {
        self.run_with(spec, RunIo::default())
    }

    /// Like [`Sandbox::run`], with live output sinks and a cancel flag.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::run`].
    pub fn run_with(&self, spec: &Spec, io: RunIo) -> Result<Outcome, Error> {
        spec.limits.validate()?;
        if spec.files.len() > MAX_INPUT_FILES {
            return Err(Error::TooManyInputFiles {
                count: spec.files.len(),
                max: MAX_INPUT_FILES,
            });
        }
        let mut input_bytes = 0u64;
        for file in &spec.files {
            check_input_path(&file.path)?;
            input_bytes = input_bytes.saturating_add(file.contents.len() as u64);
        }
        check_input_paths_distinct(&spec.files)?;
        let input_limit = spec.limits.workdir_bytes.min(MAX_INPUT_BYTES);
        if input_bytes > input_limit {
            return Err(Error::InputTooLarge {
                bytes: input_bytes,
                limit: input_limit,
            });
        }
        if spec.loopback_listener.is_some() && io.on_listener.is_none() {
            return Err(Error::ListenerWithoutServer);
        }
        let missing = self.missing_layers(&spec.allow_missing)?;
        let has = |l: Layer| !missing.contains(&l);
        if has(Layer::Userns) && rustix::process::geteuid().as_raw() != 0 {
            return Err(Error::LayerUnavailable {
                layer: Layer::Userns,
                reason: "rootless mode is not supported yet".into(),
            });
        }
        self.check_privileges(has(Layer::Userns))?;

        let start = Instant::now();
        let controllers = self.host.cgroup.as_ref().map(|h| h.controllers());
        let cgroup_host = self
            .host
            .cgroup
            .as_ref()
            .filter(|_| has(Layer::Pids) || has(Layer::Memory));
        let limits = CgroupLimits {
            memory_bytes: spec.limits.memory_bytes,
            // Stage 1 and the sandbox's PID 1 live in the cgroup too; `pids` is what the
            // program itself may use.
            pids: spec.limits.pids.saturating_add(INIT_PROCESSES),
            cpus: spec.limits.cpus,
        };
        if cgroup_host.is_some() {
            // The caller's mistakes are refused before anything is spawned.
            crate::cgroup::validate_parent(&self.cgroup_parent)?;
            crate::cgroup::validate_limits(&limits)?;
        }
        // Made by `Run::start` once stage 1 is spawned, while its exec and start-up run.
        let make_cgroup = || -> Result<Option<Cgroup>, Error> {
            let Some(host) = cgroup_host else {
                return Ok(None);
            };
            // What a supervisor killed before its teardown left behind (see DESIGN's "nothing
            // left behind"): its sandbox died with it (parent-death signals), its cgroup did
            // not.
            self.swept.call_once(|| {
                Cgroup::sweep_orphans(host, &self.cgroup_parent);
            });
            let name = crate::cgroup::execution_name(self.owner.as_deref());
            Ok(Some(Cgroup::create(
                host,
                &self.cgroup_parent,
                &name,
                &limits,
            )?))
        };
        let in_cgroup = cgroup_host.is_some();
        let cfg = InitConfig {
            spec: spec.clone(),
            userns: has(Layer::Userns),
            seccomp: has(Layer::Seccomp),
            landlock: has(Layer::Landlock),
            cgroup_pids: in_cgroup && has(Layer::Pids),
            cgroup_memory: in_cgroup && has(Layer::Memory),
            cgroup_cpu: in_cgroup && has(Layer::Memory) && controllers.is_some_and(|c| c.cpu),
            run_uid: if has(Layer::Userns) {
                SANDBOX_UID
            } else {
                self.uid_base + SANDBOX_UID
            },
            host_uid: self.uid_base,
        };

        let cgroup_version = cgroup_host.map(|h| h.version().to_string());
        let ids = (self.uid_base, self.uid_count);
        let mut run = Run::start(&self.init_exe, make_cgroup, &cfg, io, ids)?;
        let result = run.supervise(start + spec.limits.timeout);
        run.finish(start, result, missing, cgroup_version)
    }

    /// Fails closed when the supervisor could not do its part: write the id maps
    /// (`CAP_SETUID`/`CAP_SETGID`) and signal the sandbox's processes, which run as another
    /// uid (`CAP_KILL`; without it a timeout could not stop anything). Containers that drop
    /// capabilities hit this.
    fn check_privileges(&self, userns: bool) -> Result<(), Error> {
        use rustix::thread::CapabilitySet as Cap;
        let effective = rustix::thread::capabilities(None)
            .map_err(|e| sys_err("capget")(e.into()))?
            .effective;
        let euid = rustix::process::geteuid().as_raw();
        let mut needed = Vec::new();
        if userns && !effective.contains(Cap::SETUID | Cap::SETGID) {
            needed.push("CAP_SETUID and CAP_SETGID (to write the user namespace's id maps)");
        }
        if self.uid_base != euid && !effective.contains(Cap::KILL) {
            needed.push("CAP_KILL (the sandbox runs as another uid; without it a timeout could not kill it)");
        }
        if needed.is_empty() {
            Ok(())
        } else {
            Err(Error::Privileges(format!(
                "the supervisor lacks {}; grant them to warden's container or service",
                needed.join(" and ")
            )))
        }
    }

    /// Layers this host lacks; an error for the first one not allowed to be missing.
    fn missing_layers(&self, allowed: &BTreeSet<Layer>) -> Result<Vec<Layer>, Error> {
        let mut missing = Vec::new();
        for status in &self.host.layers {
            if status.available {
                continue;
            }
            if allowed.contains(&status.layer) && status.layer.can_be_missing() {
                missing.push(status.layer);
            } else {
                return Err(Error::LayerUnavailable {
                    layer: status.layer,
                    reason: status.detail.clone(),
                });
            }
        }
        Ok(missing)
    }
}

/// Whether this process runs in the initial user namespace (its uid map is the identity over
/// every uid), where uid 0 is real root.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(true)
}

/// Whether an id map (the text of `/proc/PID/uid_map`: lines of `inside outside count`)
/// maps every id of `base..base+count` of that namespace.
fn id_map_covers(map: &str, base: u32, count: u32) -> bool {
    let mut ranges: Vec<(u64, u64)> = map
        .lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(inside)), Some(Ok(_)), Some(Ok(n))) => Some((inside, inside + n)),
                _ => None,
            }
        })
        .collect();
    ranges.sort_unstable();
    let mut next = u64::from(base);
    let end = u64::from(base) + u64::from(count);
    for (start, stop) in ranges {
        if start <= next && stop > next {
            next = stop;
        }
        if next >= end {
            return true;
        }
    }
    next >= end
}

/// Rejects two input files at one path, or a file that another's path would need as a
/// directory (`a` and `a/b`): the init could only fail on them half-way through the setup.
/// Paths must already have passed [`check_input_path`]. Linear in the paths' total length:
/// each file's path and each of its ancestors go into a set once.
fn check_input_paths_distinct(files: &[crate::InputFile]) -> Result<(), Error> {
    use std::collections::HashMap;
    // Path → the input that is a file there; directory → the first input that needs it.
    let mut file_at: HashMap<&Path, &str> = HashMap::new();
    let mut dir_at: HashMap<&Path, &str> = HashMap::new();
    let conflict = |first: &str, second: &str| Error::ConflictingInputPaths {
        first: first.to_string(),
        second: second.to_string(),
    };
    for file in files {
        let rel = crate::workdir_relative(&file.path);
        if let Some(first) = file_at.get(rel).or_else(|| dir_at.get(rel)) {
            return Err(conflict(first, &file.path));
        }
        for dir in rel.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            if let Some(first) = file_at.get(dir) {
                return Err(conflict(first, &file.path));
            }
            if dir_at.contains_key(dir) {
                // Seen before, and so were its ancestors.
                break;
            }
            dir_at.insert(dir, &file.path);
        }
        file_at.insert(rel, &file.path);
    }
    Ok(())
}

/// Rejects input paths that are absolute outside the working directory or contain `..`.
fn check_input_path(path: &str) -> Result<(), Error> {
    let rel = crate::workdir_relative(path);
    let ok = !path.is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next().is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::BadInputPath(path.to_string()))
    }
}

fn sys_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Sys { op, source }
}

/// Captured bytes of one stream.
#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

/// Reads `from` to EOF, keeping at most `cap` bytes and forwarding them to `sink`; the rest is
/// drained and counted so the program never blocks on a full pipe and memory stays bounded.
fn capture(
    mut from: impl Read + Send + 'static,
    cap: u64,
    mut sink: Option<Box<dyn Write + Send>>,
) -> JoinHandle<Captured> {
    std::thread::spawn(move || {
        let mut out = Captured::default();
        // 16 KiB per read: calloc clears a thread arena's memory itself, so a larger buffer
        // costs page faults in every run and buys nothing for the usual small output.
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let room = cap.saturating_sub(out.kept.len() as u64) as usize;
            let keep = &buf[..n.min(room)];
            if !keep.is_empty() {
                out.kept.extend_from_slice(keep);
                if let Some(s) = sink.as_mut() {
                    if s.write_all(keep).and_then(|()| s.flush()).is_err() {
                        sink = None;
                    }
                }
            }
            out.total += n as u64;
        }
        out
    })
}

/// One execution in progress.
struct Run {
    stage1_pid: libc::pid_t,
    stage1_pidfd: OwnedFd,
    control: UnixStream,
    rx: Receiver,
    pid1: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    stdout: Option<JoinHandle<Captured>>,
    stderr: Option<JoinHandle<Captured>>,
    notify: Option<JoinHandle<Vec<Violation>>>,
    cancel: Option<CancelFlag>,
    on_listener: Option<ListenerHandler>,
    exit: Option<(Option<i32>, Option<i32>)>,
    exec_error: Option<String>,
    setup_error: Option<String>,
    landlock_abi: Option<u32>,
    timed_out: bool,
}

impl Run {
    /// Spawns stage 1, sends it the config, then makes the execution's cgroup with
    /// `make_cgroup` while stage 1 starts up, and completes the handshake. On any failure
    /// stage 1 is killed and reaped before the error returns.
    fn start(
        init_exe: &Path,
        make_cgroup: impl FnOnce() -> Result<Option<Cgroup>, Error>,
        cfg: &InitConfig,
        io: RunIo,
        ids: (u32, u32),
    ) -> Result<Run, Error> {
        let (control, child_end) = UnixStream::pair().map_err(sys_err("socketpair"))?;
        let (stdin_read, stdin_write) = sys::pipe().map_err(sys_err("pipe"))?;
        let (stdout_read, stdout_write) = sys::pipe().map_err(sys_err("pipe"))?;
        let (stderr_read, stderr_write) = sys::pipe().map_err(sys_err("pipe"))?;
        // Pipes are created 0600 by us (host root); the program reopens them through
        // /proc/self/fd (`/dev/stdout`) as the sandbox user, which checks the pipe inode's mode.
        for fd in [&stdin_write, &stdout_read, &stderr_read] {
            rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(0o666)).map_err(|e| {
                Error::Sys {
                    op: "fchmod pipe",
                    source: e.into(),
                }
            })?;
        }
        let spawn_error = |source| Error::Spawn {
            path: init_exe.to_path_buf(),
            source,
        };
        let exe = std::ffi::CString::new(init_exe.as_os_str().as_encoded_bytes())
            .map_err(|_| spawn_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let arg = std::ffi::CString::new(INIT_ARG)
            .map_err(|_| spawn_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // Stage 1 checks that its parent is still this process (see `init::main`). In the
        // environment, not argv: PID 1's command line is readable in the sandbox, its
        // environment is not (ptrace access), and a host pid is not the sandbox's to know.
        let parent = std::ffi::CString::new(format!(
            "{}={}",
            crate::init::SUPERVISOR_PID_ENV,
            std::process::id()
        ))
        .map_err(|_| spawn_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // Control socket at fd 3, an empty environment, and a new session: no controlling
        // terminal reaches the sandbox, and a terminal's Ctrl-C (or `timeout`) signals only
        // warden's own process group, so the supervisor, not the half-built sandbox, decides
        // how to tear down. argv[0] is a fixed name: PID 1's `/proc/1/cmdline` is readable in
        // the sandbox and must not show where the binary lives on the host.
        let stage1_pid = sys::spawn_init(
            &exe,
            &[INIT_ARGV0, &arg],
            &[&parent],
            [
                stdin_read.as_fd(),
                stdout_write.as_fd(),
                stderr_write.as_fd(),
                child_end.as_fd(),
            ],
        )
        .map_err(spawn_error)?;
        drop((child_end, stdin_read, stdout_write, stderr_write));
        // Not yet waited for, so the pid cannot have been reused.
        let stage1_pidfd = match sys::pidfd_open(stage1_pid) {
            Ok(fd) => fd,
            Err(e) => {
                // Still our unreaped child: kill and reap it rather than leave it waiting.
                let _ = sys::kill(stage1_pid, libc::SIGKILL);
                let _ = sys::wait4(stage1_pid, 0);
                return Err(sys_err("pidfd_open")(e));
            }
        };
        // The config goes out first, so stage 1 can start on it while the output threads are
        // being started (each costs a clone and a stack); a failure is handled by the
        // handshake below, which also kills stage 1.
        let config_sent = proto::send(&control, &Msg::Config(Box::new(cfg.clone())), &[]);

        let stdout = Some(capture(
            std::fs::File::from(stdout_read),
            cfg.spec.limits.output_bytes,
            io.stdout,
        ));
        let stderr = Some(capture(
            std::fs::File::from(stderr_read),
            cfg.spec.limits.output_bytes,
            io.stderr,
        ));
        let stdin = Some(std::fs::File::from(stdin_write));
        if let Some(mut stdin) = stdin {
            match &cfg.spec.stdin {
                Stdin::Null => drop(stdin),
                Stdin::Bytes(bytes) => {
                    let bytes = bytes.clone();
                    // Detached: ends with EPIPE at the latest when the sandbox is gone.
                    std::thread::spawn(move || {
                        let _ = stdin.write_all(&bytes);
                    });
                }
                Stdin::Forward => {
                    std::thread::spawn(move || {
                        let _ = io::copy(&mut io::stdin().lock(), &mut stdin);
                    });
                }
            }
        }

        let mut run = Run {
            stage1_pid,
            stage1_pidfd,
            control,
            rx: Receiver::new(),
            pid1: None,
            cgroup: None,
            stdout,
            stderr,
            notify: None,
            cancel: io.cancel,
            on_listener: io.on_listener,
            exit: None,
            exec_error: None,
            setup_error: None,
            landlock_abi: None,
            timed_out: false,
        };
        let prepared = config_sent.map_err(sys_err("send config")).and_then(|()| {
            run.cgroup = make_cgroup()?;
            run.handshake(cfg, ids)
        });
        if let Err(e) = prepared {
            run.kill();
            // Stage 1 waits on the control socket until the handshake completes: closing it
            // ends stage 1 even if the kill was refused, so the wait below cannot hang.
            let _ = run.control.shutdown(std::net::Shutdown::Both);
            let _ = sys::wait4(run.stage1_pid, 0);
            return Err(run.setup_error.take().map(Error::Setup).unwrap_or(e));
        }
        Ok(run)
    }

    /// Cgroup membership and (with a user namespace) the id maps, once the config is sent.
    ///
    /// The init unshares every namespace but the cgroup one as soon as it has the config, then
    /// waits for [`Msg::Mapped`] before it unshares the cgroup namespace and forks. Joining the
    /// cgroup (on cgroup v1 a process's first migration waits for an RCU grace period, several
    /// milliseconds) thus overlaps with the init's start-up, and nothing of the sandbox runs
    /// outside the cgroup; the cgroup namespace's root is the execution's own cgroup.
    fn handshake(
        &mut self,
        cfg: &InitConfig,
        (uid_base, uid_count): (u32, u32),
    ) -> Result<(), Error> {
        if let Some(cg) = &self.cgroup {
            cg.add_process(self.stage1_pid as u32)?;
        }
        match self
            .rx
            .recv(&self.control)
            .map_err(sys_err("receive from init"))?
        {
            Some(Msg::Unshared) => {}
            Some(Msg::SetupFailed { step, error }) => {
                self.setup_error = Some(format!("{step}: {error}"));
                return Err(Error::Setup(format!("{step}: {error}")));
            }
            other => return Err(Error::Protocol(format!("expected Unshared, got {other:?}"))),
        }
        if cfg.userns {
            // Sandbox uids 0..uid_count map to host uids uid_base.. (user_namespaces(7)); the
            // supervisor, root in the parent namespace, may write any range.
            let map = format!("0 {uid_base} {uid_count}\n");
            for file in ["uid_map", "gid_map"] {
                let path = format!("/proc/{}/{file}", self.stage1_pid);
                std::fs::write(&path, &map).map_err(sys_err("write id map"))?;
            }
        }
        proto::send(&self.control, &Msg::Mapped, &[]).map_err(sys_err("send mapped"))
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Pid1 { .. } => self.pid1 = self.rx.take_fd(),
            Msg::SeccompListener => {
                if let Some(fd) = self.rx.take_fd() {
                    self.notify = Some(std::thread::spawn(move || {
                        crate::seccomp::serve_notifications(fd)
                    }));
                }
            }
            Msg::Listener => {
                if let (Some(fd), Some(serve)) = (self.rx.take_fd(), self.on_listener.take()) {
                    serve(std::net::TcpListener::from(fd));
                }
            }
            Msg::Landlock { abi } => self.landlock_abi = abi,
            Msg::ExecFailed { message, .. } => self.exec_error = Some(message),
            Msg::SetupFailed { step, error } => {
                if self.setup_error.is_none() {
                    self.setup_error = Some(format!("{step}: {error}"));
                }
            }
            Msg::Exit { code, signal } => self.exit = Some((code, signal)),
            Msg::Config(_) | Msg::Unshared | Msg::Mapped => {}
        }
    }

    /// Drains whatever complete frames can be read without blocking past EOF.
    /// One read from the control socket (the caller polled it readable), then every complete
    /// frame received so far is handled; at end of stream only the buffered frames remain.
    fn pump_control(&mut self) -> io::Result<()> {
        self.rx.fill(&self.control)?;
        while let Some(msg) = self.rx.next_buffered()? {
            self.handle(msg);
        }
        Ok(())
    }

    /// SIGKILLs the sandbox's PID 1 (the kernel then kills every process of the PID
    /// namespace), or stage 1 before PID 1 exists.
    fn kill(&mut self) {
        match &self.pid1 {
            Some(fd) => {
                let _ = sys::pidfd_kill(fd.as_fd(), libc::SIGKILL);
            }
            None => {
                let _ = sys::pidfd_kill(self.stage1_pidfd.as_fd(), libc::SIGKILL);
            }
        }
    }

    /// Waits for stage 1 to exit while serving control messages, the timeout and cancel.
    fn supervise(&mut self, deadline: Instant) -> Result<(), Error> {
        let mut killed = false;
        loop {
            let now = Instant::now();
            if !killed && now >= deadline {
                self.timed_out = true;
                self.kill();
                killed = true;
            }
            if !killed
                && self
                    .cancel
                    .as_ref()
                    .is_some_and(|c| c.load(Ordering::SeqCst))
            {
                self.kill();
                killed = true;
            }
            let mut wait_ms = if killed {
                1000
            } else {
                deadline
                    .saturating_duration_since(now)
                    .as_millis()
                    .min(i32::MAX as u128 - 1) as i32
                    + 1
            };
            if self.cancel.is_some() {
                wait_ms = wait_ms.min(CANCEL_POLL_MS);
            }
            let revents = if self.rx.is_eof() {
                let r =
                    sys::poll_in(&[self.stage1_pidfd.as_fd()], wait_ms).map_err(sys_err("poll"))?;
                vec![r[0], 0]
            } else {
                sys::poll_in(&[self.stage1_pidfd.as_fd(), self.control.as_fd()], wait_ms)
                    .map_err(sys_err("poll"))?
            };
            if revents[1] != 0 {
                match self.pump_control() {
                    Ok(()) => {}
                    // After a kill, a broken control stream is expected, not Warden's failure.
                    Err(_) if killed => self.rx = Receiver::eof(),
                    Err(e) => return Err(sys_err("receive from init")(e)),
                }
            }
            if revents[0] != 0 {
                return Ok(());
            }
        }
    }

    fn finish(
        mut self,
        start: Instant,
        result: Result<(), Error>,
        missing: Vec<Layer>,
        cgroup_version: Option<String>,
    ) -> Result<Outcome, Error> {
        // Stage 1 has exited (or supervision failed): make sure PID 1, and with it the whole
        // PID namespace, is gone, then reap stage 1.
        self.kill();
        let usage = sys::wait4(self.stage1_pid, 0)
            .ok()
            .flatten()
            .map(|(_, _, u)| u);
        // Every writer of the control socket is gone now: read it to the end.
        while !self.rx.is_eof() {
            match self.rx.recv(&self.control) {
                Ok(Some(msg)) => self.handle(msg),
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(cg) = &self.cgroup {
            // Belt and braces: nothing can survive its PID namespace, but the cgroup knows.
            if cg.pids().map(|p| !p.is_empty()).unwrap_or(false) {
                let _ = cg.kill_all();
            }
        }
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let violations = self
            .notify
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stats = self.cgroup.as_ref().map(|c| c.stats());
        if let Some(cg) = self.cgroup.take() {
            cg.remove()?;
        }
        result?;
        if let Some(err) = self.setup_error.take() {
            return Err(Error::Setup(err));
        }
        let wall = start.elapsed();
        let (rusage_cpu, rusage_rss) = usage
            .map(|u| {
                let tv = |t: libc::timeval| {
                    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
                };
                (tv(u.ru_utime) + tv(u.ru_stime), (u.ru_maxrss as u64) * 1024)
            })
            .unwrap_or_default();
        let (exit_code, signal) = match self.exit {
            Some(status) if !self.timed_out => status,
            // Killed (timeout, cancel, OOM kill of PID 1): SIGKILL, as `docker run` reports.
            _ => (None, Some(libc::SIGKILL)),
        };
        let oom_killed = stats.as_ref().is_some_and(|s| s.oom_kills > 0);
        Ok(Outcome {
            exit_code,
            signal,
            timed_out: self.timed_out,
            oom_killed,
            wall_time_ms: wall.as_secs_f64() * 1000.0,
            cpu_time_ms: stats
                .as_ref()
                .map_or(rusage_cpu, |s| s.cpu_time.max(rusage_cpu))
                .as_secs_f64()
                * 1000.0,
            peak_memory_bytes: stats
                .as_ref()
                .map_or(rusage_rss, |s| s.peak_memory_bytes.max(rusage_rss)),
            stdout_truncated: stdout.total > stdout.kept.len() as u64,
            stderr_truncated: stderr.total > stderr.kept.len() as u64,
            stdout_bytes: stdout.total,
            stderr_bytes: stderr.total,
            stdout: String::from_utf8_lossy(&stdout.kept).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.kept).into_owned(),
            seccomp_violations: violations,
            exec_error: self.exec_error.take(),
            missing_layers: missing,
            cgroup: cgroup_version,
            landlock_abi: self.landlock_abi,
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // On any early return, leave nothing running.
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LayerStatus;

    fn sandbox_with(missing: &[Layer]) -> Sandbox {
        let layers = Layer::ALL
            .iter()
            .map(|&layer| LayerStatus {
                layer,
                available: !missing.contains(&layer),
                detail: format!("{layer} test"),
                remedy: None,
            })
            .collect();
        Sandbox {
            init_exe: PathBuf::from("/bin/true"),
            host: HostReport {
                layers,
                cgroup: None,
                landlock_abi: None,
                advisories: Vec::new(),
            },
            cgroup_parent: "warden".into(),
            uid_base: DEFAULT_UID_BASE,
            uid_count: DEFAULT_UID_COUNT,
            owner: None,
            swept: Arc::new(Once::new()),
        }
    }

    #[test]
    fn id_map_coverage() {
        let host = "         0          0 4294967295\n";
        assert!(id_map_covers(host, DEFAULT_UID_BASE, DEFAULT_UID_COUNT));
        // A Kubernetes pod with hostUsers: false maps 65536 ids.
        let pod = "         0 1879048192      65536\n";
        assert!(id_map_covers(pod, 10_000, 2_000));
        assert!(id_map_covers(pod, 1, 65_535));
        assert!(!id_map_covers(pod, DEFAULT_UID_BASE, DEFAULT_UID_COUNT));
        assert!(!id_map_covers(pod, 60_000, 6_000));
        // Adjacent ranges join; a gap does not.
        let split = "0 100000 1000\n1000 200000 1000\n3000 300000 10\n";
        assert!(id_map_covers(split, 500, 1_500));
        assert!(!id_map_covers(split, 500, 2_600));
        assert!(!id_map_covers("", 1, 1));
        assert!(!id_map_covers("garbage\n", 1, 1));
    }

    #[test]
    fn uid_range_is_validated() {
        let sb = sandbox_with(&[]);
        // Base 0 is refused here: the tests run in the initial user namespace.
        for (base, count) in [(0, 65_536), (10_000, SANDBOX_UID), (u32::MAX - 10, 2_000)] {
            assert!(
                matches!(
                    sb.clone().with_uid_range(base, count),
                    Err(Error::UidRange { .. })
                ),
                "{base} {count}"
            );
        }
        // This test process runs in the initial user namespace, which maps every id.
        let sb = sb.with_uid_range(10_000, 2_000).unwrap();
        assert_eq!((sb.uid_base, sb.uid_count), (10_000, 2_000));
    }

    #[test]
    fn missing_layer_is_an_error_unless_allowed() {
        let sb = sandbox_with(&[Layer::Landlock, Layer::Pids]);
        match sb.missing_layers(&BTreeSet::new()) {
            Err(Error::LayerUnavailable {
                layer: Layer::Pids, ..
            }) => {}
            other => panic!("expected pids unavailable, got {other:?}"),
        }
        let only_landlock: BTreeSet<_> = [Layer::Landlock].into();
        assert!(matches!(
            sb.missing_layers(&only_landlock),
            Err(Error::LayerUnavailable {
                layer: Layer::Pids,
                ..
            })
        ));
        let both: BTreeSet<_> = [Layer::Landlock, Layer::Pids].into();
        assert_eq!(
            sb.missing_layers(&both).unwrap(),
            vec![Layer::Pids, Layer::Landlock]
        );
    }

    #[test]
    fn layers_without_a_weaker_mode_cannot_be_allowed_missing() {
        let sb = sandbox_with(&[Layer::Network]);
        let allowed: BTreeSet<_> = [Layer::Network].into();
        assert!(matches!(
            sb.missing_layers(&allowed),
            Err(Error::LayerUnavailable {
                layer: Layer::Network,
                ..
            })
        ));
    }

    #[test]
    fn allowing_an_available_layer_changes_nothing() {
        let sb = sandbox_with(&[]);
        let allowed: BTreeSet<_> = [Layer::Seccomp].into();
        assert!(sb.missing_layers(&allowed).unwrap().is_empty());
    }

    /// Review (session 5): `a` and `a/b`, or one path twice, reached the init, which failed
    /// half-way ("Not a directory") or kept the last copy silently.
    #[test]
    fn input_paths_must_not_collide() {
        let file = |path: &str| crate::InputFile {
            path: path.to_string(),
            contents: Vec::new(),
            mode: 0o644,
        };
        for (a, b) in [
            ("a", "a"),
            ("a", "a/b"),
            ("x/y/z", "x/y"),
            ("/work/a", "a"),
            ("p/q/r", "p"),
        ] {
            assert!(
                matches!(
                    check_input_paths_distinct(&[file("ok"), file(a), file(b)]),
                    Err(Error::ConflictingInputPaths { .. })
                ),
                "{a} {b}"
            );
        }
        check_input_paths_distinct(&[
            file("a"),
            file("ab"),
            file("b/a"),
            file("b/c/d"),
            file("b/c/e"),
            file("a.txt"),
        ])
        .unwrap();
    }

    #[test]
    fn input_paths_stay_under_the_workdir() {
        for ok in ["a.txt", "dir/a.txt", "/work/a.txt"] {
            assert!(check_input_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../a",
            "/etc/passwd",
            "a/../../b",
            "/work",
            "/work/../etc/x",
            "./a",
        ] {
            assert!(check_input_path(bad).is_err(), "{bad}");
        }
    }
}
