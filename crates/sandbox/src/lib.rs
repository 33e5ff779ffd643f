//! Run one untrusted program under layered Linux isolation and report what happened.
//!
//! ```no_run
//! use warden_sandbox::{Sandbox, Spec};
//!
//! let sandbox = Sandbox::new(std::env::current_exe()?)?;
//! let outcome = sandbox.run(&Spec::new("python3", ["-c", "print(6 * 7)"]))?;
//! assert_eq!(outcome.stdout, "42\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The binary passed to [`Sandbox::new`] must call [`init::main`] when it is started with
//! [`INIT_ARG`] as its first argument (the `warden` binary does): the sandbox's child side is a
//! fresh exec of that binary, never code running between `fork` and `exec` of the (usually
//! multithreaded) caller.
//!
//! # Design
//!
//! The supervisor ([`Sandbox::run`]) creates a cgroup, starts the init binary, writes the user
//! namespace maps, runs the seccomp user-notification loop, captures output with byte caps,
//! enforces the wall-clock timeout and tears everything down. The init side ([`init`]) unshares
//! the namespaces, becomes PID 1 of a new PID namespace, builds the filesystem and `pivot_root`s
//! into it, then forks the program process, which applies rlimits, closes fds, drops
//! credentials and capabilities, sets `no_new_privs`, restricts itself with landlock, installs
//! the seccomp filter (last) and `execve`s the program. Layer order is DESIGN.md's.
//!
//! # Limitations
//!
//! Everything shares the host kernel: a kernel bug reachable through the allowed syscalls is out
//! of scope (a microVM backend is the answer there). `RLIMIT_NPROC`, the fallback when the pids
//! cgroup controller is missing, counts processes per host uid, so concurrent sandboxes share it.

#![deny(unsafe_code)]

pub mod cgroup;
pub mod host;
pub mod init;
pub mod landlock;
mod proto;
pub mod seccomp;
mod size;
mod supervisor;
#[allow(unsafe_code)]
mod sys;

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use size::{format_size, parse_size, SizeError};
pub use supervisor::{
    CancelFlag, ListenerHandler, RunIo, Sandbox, DEFAULT_UID_BASE, DEFAULT_UID_COUNT,
    MAX_INPUT_BYTES, MAX_INPUT_FILES,
};

/// First argument that makes the `warden` binary (or any binary that embeds this crate) run
/// [`init::main`] instead of its normal entry point (the supervisor's pid is in the environment,
/// [`init::SUPERVISOR_PID_ENV`]).
pub const INIT_ARG: &str = "__warden-sandbox-init";

/// Largest per-stream output cap ([`Limits::output_bytes`]), in bytes: the kept output lives in
/// the supervisor's memory, outside the sandbox's memory cgroup, so an untrusted program must
/// not be able to make it arbitrarily large.
pub const MAX_OUTPUT_BYTES: u64 = 256 << 20;

/// Uid and gid the program runs as inside the sandbox.
pub const SANDBOX_UID: u32 = 1000;

/// Working directory of the program inside the sandbox (a size-limited tmpfs).
pub const WORKDIR: &str = "/work";

/// An input file's path relative to [`WORKDIR`]: `/work/a` and `a` are both `a`.
pub(crate) fn workdir_relative(path: &str) -> &std::path::Path {
    let path = std::path::Path::new(path);
    path.strip_prefix(WORKDIR).unwrap_or(path)
}

/// One isolation layer, named as in DESIGN.md's layer table (L1–L9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// L1: new network namespace with only `lo`.
    Network,
    /// L2: seccomp-BPF allowlist with per-run violation reports.
    Seccomp,
    /// L3: mount namespace, `pivot_root` into a tmpfs root, read-only runtime.
    Filesystem,
    /// L4: all capability sets emptied, securebits locked.
    Capabilities,
    /// L5: cgroup `pids.max` (falls back to `RLIMIT_NPROC`).
    Pids,
    /// L6: cgroup memory and CPU limits (fall back to `RLIMIT_AS` / `RLIMIT_CPU`).
    Memory,
    /// L7: user namespace mapping sandbox root to an unprivileged host uid.
    Userns,
    /// L8: `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// L9: landlock filesystem, network and scope restrictions.
    Landlock,
}

impl Layer {
    /// Every layer, in DESIGN.md's order.
    pub const ALL: [Layer; 9] = [
        Layer::Network,
        Layer::Seccomp,
        Layer::Filesystem,
        Layer::Capabilities,
        Layer::Pids,
        Layer::Memory,
        Layer::Userns,
        Layer::NoNewPrivs,
        Layer::Landlock,
    ];

    /// The kebab-case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Network => "network",
            Layer::Seccomp => "seccomp",
            Layer::Filesystem => "filesystem",
            Layer::Capabilities => "capabilities",
            Layer::Pids => "pids",
            Layer::Memory => "memory",
            Layer::Userns => "userns",
            Layer::NoNewPrivs => "no-new-privs",
            Layer::Landlock => "landlock",
        }
    }

    /// Whether Warden can run without this layer when the operator allows it.
    ///
    /// Network, filesystem, capabilities and no_new_privs are plain kernel features present on
    /// every kernel Warden supports; there is no weaker mode for them.
    pub fn can_be_missing(self) -> bool {
        matches!(
            self,
            Layer::Seccomp | Layer::Pids | Layer::Memory | Layer::Userns | Layer::Landlock
        )
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown layer name.
#[derive(Debug, thiserror::Error)]
#[error("unknown layer `{0}`; expected one of: network, seccomp, filesystem, capabilities, pids, memory, userns, no-new-privs, landlock")]
pub struct UnknownLayer(pub String);

impl std::str::FromStr for Layer {
    type Err = UnknownLayer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s || l.name().replace('-', "_") == s)
            .ok_or_else(|| UnknownLayer(s.to_string()))
    }
}

/// Resource limits of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock limit; the whole sandbox is SIGKILLed when it passes.
    pub timeout: Duration,
    /// Memory limit in bytes (cgroup `memory.max` / `memory.limit_in_bytes`), swap disabled.
    pub memory_bytes: u64,
    /// Maximum number of processes and threads of the program (cgroup `pids.max`, plus
    /// Warden's two init processes).
    pub pids: u64,
    /// CPU bandwidth in CPUs (cgroup `cpu.max` / CFS quota); 1.5 means 150 ms per 100 ms.
    pub cpus: f64,
    /// Size of the `/tmp` (and `/dev/shm`) tmpfs in bytes.
    pub tmpfs_bytes: u64,
    /// Size of the working directory tmpfs ([`WORKDIR`]) in bytes.
    pub workdir_bytes: u64,
    /// Bytes kept per output stream (stdout, stderr), at most [`MAX_OUTPUT_BYTES`]; the rest is
    /// drained and counted.
    pub output_bytes: u64,
    /// Maximum number of open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 512 << 20,
            pids: 256,
            cpus: 1.0,
            tmpfs_bytes: 64 << 20,
            workdir_bytes: 64 << 20,
            output_bytes: 1 << 20,
            open_files: 1024,
        }
    }
}

/// Error for limits that cannot be enforced.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitsError {
    /// A limit is zero, negative or out of range.
    #[error("{field} must be {expected}, got {got}")]
    OutOfRange {
        /// The field, as named on the command line.
        field: &'static str,
        /// What is accepted.
        expected: &'static str,
        /// What was given.
        got: String,
    },
}

impl Limits {
    /// Checks that every limit can be enforced.
    ///
    /// # Errors
    ///
    /// [`LimitsError::OutOfRange`] naming the first impossible value.
    pub fn validate(&self) -> Result<(), LimitsError> {
        fn bad(field: &'static str, expected: &'static str, got: impl fmt::Display) -> LimitsError {
            LimitsError::OutOfRange {
                field,
                expected,
                got: got.to_string(),
            }
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(24 * 3600)
        {
            return Err(bad(
                "timeout",
                "between 1 ms and 86400 s",
                format!("{:?}", self.timeout),
            ));
        }
        if self.memory_bytes < (4 << 20) {
            return Err(bad("memory", "at least 4M", self.memory_bytes));
        }
        // pids.max takes at most PID_MAX_LIMIT (2^22), and the cgroup also holds Warden's two
        // init processes (stage 1 and PID 1).
        if self.pids < 1 || self.pids > (1 << 22) - 2 {
            return Err(bad("pids", "between 1 and 4194302", self.pids));
        }
        if !self.cpus.is_finite() || self.cpus < 0.01 || self.cpus > 1024.0 {
            return Err(bad("cpus", "between 0.01 and 1024", self.cpus));
        }
        if self.tmpfs_bytes < 4096 {
            return Err(bad("tmpfs-size", "at least 4K", self.tmpfs_bytes));
        }
        if self.workdir_bytes < 4096 {
            return Err(bad("workdir-size", "at least 4K", self.workdir_bytes));
        }
        if self.output_bytes == 0 || self.output_bytes > MAX_OUTPUT_BYTES {
            return Err(bad(
                "output-limit",
                "between 1 byte and 256M",
                self.output_bytes,
            ));
        }
        if self.open_files < 16 {
            return Err(bad("open-files", "at least 16", self.open_files));
        }
        Ok(())
    }
}

/// A file copied into the sandbox's working directory before the program starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// Path inside the sandbox: relative to [`WORKDIR`], or absolute under it.
    pub path: String,
    /// File contents.
    #[serde(with = "proto::base64_bytes")]
    pub contents: Vec<u8>,
    /// Permission bits (for example `0o644`, `0o755`).
    pub mode: u32,
}

/// Where the program's standard input comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Stdin {
    /// `/dev/null`-like: the program reads end-of-file at once.
    #[default]
    Null,
    /// These bytes, then end-of-file.
    Bytes(#[serde(with = "proto::base64_bytes")] Vec<u8>),
    /// Forward the supervisor's own standard input (read until EOF). Never the host fd itself:
    /// a terminal handed to the sandbox would allow `TIOCSTI` injection.
    Forward,
}

/// What to run and under which limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Program: a path inside the sandbox, or a name looked up in the sandbox's `PATH`.
    pub program: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Extra environment variables; the sandbox starts from a minimal environment.
    pub env: Vec<(String, String)>,
    /// Files copied into the working directory.
    pub files: Vec<InputFile>,
    /// Standard input.
    pub stdin: Stdin,
    /// Resource limits.
    pub limits: Limits,
    /// Layers the operator allows to be missing on this host (reported in the Outcome).
    pub allow_missing: BTreeSet<Layer>,
    /// Host directories bind-mounted read-only at the same path (runtime: `/usr`, `/lib`, …).
    /// Missing ones are skipped; symlinks (merged-`/usr` hosts) are recreated as symlinks.
    pub ro_paths: Vec<PathBuf>,
    /// A TCP port on `127.0.0.1` *inside* the sandbox's network namespace where the sandbox's
    /// PID 1 listens before the program starts. The listening socket is handed to
    /// [`RunIo::on_listener`], whose owner serves it from the host side (Warden's egress proxy
    /// does). Landlock lets the program connect to this TCP port and no other. `None`
    /// (the default): the network namespace has only `lo` and nothing listens on it.
    #[serde(default)]
    pub loopback_listener: Option<u16>,
}

/// Host directories exposed read-only by default: what python3, sh/bash, node and coreutils
/// need on Debian-like hosts.
pub const DEFAULT_RO_PATHS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

impl Spec {
    /// A spec with default limits, no stdin, no files and the default runtime paths.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Spec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            files: Vec::new(),
            stdin: Stdin::Null,
            limits: Limits::default(),
            allow_missing: BTreeSet::new(),
            ro_paths: DEFAULT_RO_PATHS.iter().map(PathBuf::from).collect(),
            loopback_listener: None,
        }
    }
}

/// Number of times one syscall was denied by the seccomp filter during an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Syscall name for the host architecture (for example `ptrace`), or `syscall_N`.
    pub syscall: String,
    /// How many times it was attempted.
    pub count: u64,
}

/// What happened to one execution: the JSON contract of `warden run --json` (DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Exit status when the program exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when the program was killed by a signal (9 after a timeout or OOM kill).
    pub signal: Option<i32>,
    /// The wall-clock limit was reached and the sandbox was killed.
    pub timed_out: bool,
    /// The memory cgroup's OOM killer killed a process of this execution.
    pub oom_killed: bool,
    /// Wall-clock time from start to teardown, in milliseconds.
    pub wall_time_ms: f64,
    /// User + system CPU time of every process of the execution, in milliseconds.
    pub cpu_time_ms: f64,
    /// Peak memory of the execution's cgroup (or largest RSS without one), in bytes.
    pub peak_memory_bytes: u64,
    /// Captured standard output (lossy UTF-8), at most `output_bytes`.
    pub stdout: String,
    /// Captured standard error (lossy UTF-8), at most `output_bytes`.
    pub stderr: String,
    /// Standard output was longer than the cap.
    pub stdout_truncated: bool,
    /// Standard error was longer than the cap.
    pub stderr_truncated: bool,
    /// Total bytes the program wrote to stdout (kept or not).
    pub stdout_bytes: u64,
    /// Total bytes the program wrote to stderr (kept or not).
    pub stderr_bytes: u64,
    /// Denied syscalls, counted by name, sorted by name.
    pub seccomp_violations: Vec<Violation>,
    /// Why the program could not be started (for example `not found`), when it could not.
    pub exec_error: Option<String>,
    /// Layers that were missing on this host and allowed to be (never silent).
    pub missing_layers: Vec<Layer>,
    /// cgroup version used (`v1`, `v2`) or `null` when limits fell back to rlimits.
    pub cgroup: Option<String>,
    /// Landlock ABI version enforced, or `null`.
    pub landlock_abi: Option<u32>,
}

impl Outcome {
    /// The exit status `warden run` gives, following `docker run`: the program's own status,
    /// 128+N when killed by signal N, 126 when the program could not be invoked, 127 when it
    /// was not found.
    pub fn exit_status(&self) -> i32 {
        if let Some(err) = &self.exec_error {
            return if err.starts_with("not found") {
                127
            } else {
                126
            };
        }
        match (self.exit_code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 125,
        }
    }
}

/// Why an execution could not be carried out. Never a property of the program itself: a
/// program that crashes, times out or is OOM-killed still yields an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The limits cannot be enforced.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// A required layer is not available on this host and was not allowed to be missing.
    #[error("isolation layer `{layer}` is unavailable: {reason}; fix the host (see `warden doctor`) or pass --allow-missing {layer}")]
    LayerUnavailable {
        /// The layer.
        layer: Layer,
        /// Why it is unavailable.
        reason: String,
    },
    /// The input files are larger than the working directory (or [`supervisor::MAX_INPUT_BYTES`]).
    #[error("input files total {bytes} bytes, more than the {limit}-byte limit (the working directory size, at most 128M)")]
    InputTooLarge {
        /// Total size of the input files.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// An input file is not a path under the working directory.
    #[error("input file path `{0}` must be relative to {WORKDIR} without `..`")]
    BadInputPath(String),
    /// More input files than [`MAX_INPUT_FILES`].
    #[error("{count} input files; at most {max} are accepted")]
    TooManyInputFiles {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two input files name the same path, or one would be a directory of the other.
    #[error("input files `{first}` and `{second}` collide: each path may be given once, and a file cannot also be a directory of another")]
    ConflictingInputPaths {
        /// The path given first.
        first: String,
        /// The path that collides with it.
        second: String,
    },
    /// The init binary could not be started.
    #[error("cannot start the sandbox init `{path}`")]
    Spawn {
        /// Path of the init binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// cgroup setup failed.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    /// A supervisor-side system call failed.
    #[error("{op} failed")]
    Sys {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The sandbox init reported a setup failure before the program started.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The control channel to the sandbox init broke.
    #[error("sandbox control channel: {0}")]
    Protocol(String),
    /// [`Spec::loopback_listener`] is set but [`RunIo::on_listener`] is not: nothing would
    /// serve the connections the program makes.
    #[error("spec.loopback_listener is set but no RunIo::on_listener receives the listener")]
    ListenerWithoutServer,
    /// The supervisor lacks a privilege it needs to contain the sandbox.
    #[error("{0}")]
    Privileges(String),
    /// A uid range for the sandbox's user namespace that this host cannot map.
    #[error("uid range {base}..{end} cannot be used: {reason}")]
    UidRange {
        /// First host uid.
        base: u32,
        /// One past the last host uid.
        end: u64,
        /// Why.
        reason: String,
    },
}
