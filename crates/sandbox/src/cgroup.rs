//! L5/L6: cgroup v1 and v2 resource limits (pids, memory, CPU), accounting and teardown.
//!
//! ```no_run
//! use warden_sandbox::cgroup::{Cgroup, CgroupHost, CgroupLimits, DEFAULT_PARENT};
//!
//! let host = CgroupHost::detect()?.ok_or("no usable cgroup hierarchy")?;
//! let limits = CgroupLimits { memory_bytes: 512 << 20, pids: 256, cpus: 1.5 };
//! let cgroup = Cgroup::create(&host, DEFAULT_PARENT, "run-1", &limits)?;
//! let mut child = std::process::Command::new("sleep").arg("1").spawn()?;
//! cgroup.add_process(child.id())?;
//! child.wait()?;
//! let stats = cgroup.stats();
//! cgroup.kill_all()?;
//! cgroup.remove()?;
//! # let _ = stats;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! [`CgroupHost`] says which hierarchy to use and where it is mounted. [`CgroupHost::detect`]
//! reads `/proc/self/mountinfo`; the parsing itself ([`CgroupHost::from_mountinfo`]) and the
//! explicit constructors take paths as parameters, so every file written below is unit-tested
//! against temp dirs laid out like cgroupfs. cgroup v2 is preferred only when its mount really
//! offers the controllers Warden needs (`memory`, `pids`, `cpu` in the root
//! `cgroup.controllers`): hybrid hosts mount an empty cgroup2 next to the v1 hierarchies, and
//! there v1 is used.
//!
//! [`Cgroup::create`] makes `<hierarchy>/<parent>/<name>` (one directory per v1 hierarchy) and
//! writes the limits. Files used, per version:
//!
//! | what | v2 (`Documentation/admin-guide/cgroup-v2.rst`) | v1 |
//! |---|---|---|
//! | enable controllers | `cgroup.subtree_control` of the root and of each parent level: `+memory +pids +cpu` | — (each controller is its own hierarchy) |
//! | memory limit | `memory.max` | `memory.limit_in_bytes` (`Documentation/admin-guide/cgroup-v1/memory.rst`) |
//! | no swap | `memory.swap.max` = `0`, when present | `memory.memsw.limit_in_bytes` = the memory limit, written after `memory.limit_in_bytes` (memsw may never be below it), when present |
//! | pids limit | `pids.max` | `pids.max` (`Documentation/admin-guide/cgroup-v1/pids.rst`) |
//! | CPU bandwidth | `cpu.max` = `<quota> 100000` | `cpu.cfs_period_us` = `100000`, then `cpu.cfs_quota_us` (`Documentation/scheduler/sched-bwc.rst`) |
//! | join | `cgroup.procs` | `cgroup.procs` of every hierarchy |
//! | peak memory | `memory.peak` (5.19+), else `memory.current` | `memory.max_usage_in_bytes` |
//! | OOM kills | `oom_kill` in `memory.events` | `oom_kill` in `memory.oom_control` (4.13+) |
//! | CPU time | `usage_usec` in `cpu.stat` | `cpuacct.usage` (ns), else `usage_usec` in `cpu.stat` |
//! | kill all | `cgroup.kill` (5.14+), else SIGKILL each pid | `freezer.state` FROZEN, SIGKILL each pid, THAWED |
//!
//! The quota is `cpus × 100 ms` per 100 ms period, at least 1 ms (the kernel's minimum). On v1
//! a frozen task does not die of SIGKILL until it is thawed, which is why the freezer is thawed
//! after signalling: freezing first stops a fork bomb from outrunning the kill loop. Only the
//! controllers the host offers are used; the caller reads [`CgroupHost::controllers`] to decide
//! which layers are missing and which rlimit fallbacks to apply.
//!
//! # Limitations
//!
//! - cgroup v2's "no internal processes" rule: a non-root cgroup that holds processes cannot
//!   enable controllers for its children. When the hierarchy Warden sees is rooted in such a
//!   cgroup (typically a container with a cgroup namespace, where Warden itself sits in the
//!   namespace root), enabling fails with `EBUSY` and [`CgroupError::NoInternalProcesses`]
//!   tells the operator to move Warden into a leaf cgroup or to delegate an empty cgroup and
//!   pass it as the parent.
//! - Rootless use needs a cgroup delegated to Warden's user (systemd `Delegate=yes`, for example
//!   `systemd-run --user --scope -p Delegate=yes`) and the parent set to a path inside it,
//!   relative to the hierarchy root; otherwise `mkdir` fails and
//!   [`CgroupError::PermissionDenied`] says so. Warden's own process must then sit in a leaf
//!   of that delegated tree, not in its top, for the rule above.
//! - Executions' cgroups live under `<hierarchy root>/<parent>`, not under Warden's own
//!   cgroup: a limit placed on Warden's cgroup does not cover them (theirs apply instead).
//! - The parent directory (and on v2 the controllers enabled in the root's
//!   `cgroup.subtree_control`) are shared by all executions and left in place.
//! - A supervisor killed before its teardown (SIGKILL) leaves its executions' cgroups behind
//!   until [`Cgroup::sweep_orphans`] (which the supervisor runs once, before its first
//!   execution) finds their owner, named in the cgroup's name ([`owner_tag`]), gone.
//! - Memory a process allocated before [`Cgroup::add_process`] stays charged to its old cgroup
//!   (v2 never moves charges; v1 only with `memory.move_charge_at_immigrate`), so callers add
//!   the process before it runs untrusted code.
//! - v1 `memory.max_usage_in_bytes` and v2 `memory.peak` include page cache, not just RSS.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// Parent cgroup (relative to each hierarchy's root) used when the operator sets none.
pub const DEFAULT_PARENT: &str = "warden";

/// CFS period written on both versions, in microseconds (the kernel default).
const CPU_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;
/// How long [`Cgroup::kill_all`] keeps signalling before giving up.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `rmdir` is retried on `EBUSY` (tasks are released asynchronously after exit).
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a v1 freeze may stay `FREEZING` before the kill goes ahead anyway.
const FREEZE_TIMEOUT: Duration = Duration::from_millis(200);
/// Poll interval of the loops above.
const POLL: Duration = Duration::from_millis(5);

/// v1 controllers Warden uses, in the order hierarchies are created and described.
const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// Errors from cgroup setup and teardown.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing or reading a cgroup file or directory failed.
    #[error("cgroup {op} `{path}`")]
    Io {
        /// What was being done (`mkdir`, `write`, `read`, `rmdir`).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A cgroup name or parent path that could escape or confuse the hierarchy.
    #[error("invalid cgroup {what} `{value}`: {reason}")]
    InvalidName {
        /// `name` or `parent`.
        what: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A limit that cannot be written to the kernel.
    #[error("invalid cgroup limit {field} = {value}: {expected}")]
    InvalidLimit {
        /// The [`CgroupLimits`] field.
        field: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The cgroup directory could not be created for lack of permission.
    #[error("cannot create cgroup `{path}`: Warden needs root, or a cgroup delegated to its user (systemd `Delegate=yes`) with the cgroup parent set to a path inside it")]
    PermissionDenied {
        /// The directory.
        path: PathBuf,
        /// The cause (`EACCES`, `EPERM` or `EROFS`).
        #[source]
        source: io::Error,
    },
    /// cgroup v2 refused to enable controllers because the cgroup holds processes.
    #[error("cannot enable cgroup v2 controllers in `{path}`: it holds processes (Warden runs in `{own_cgroup}`), and cgroup v2 lets only a cgroup without processes of its own hand controllers to its children (the \"no internal processes\" rule); move Warden into a leaf cgroup, or delegate an empty cgroup to Warden and set the cgroup parent to it")]
    NoInternalProcesses {
        /// The `cgroup.subtree_control` file that was written.
        path: PathBuf,
        /// Warden's own cgroup from `/proc/self/cgroup`, or `unknown`.
        own_cgroup: String,
        /// The cause (`EBUSY`).
        #[source]
        source: io::Error,
    },
    /// Processes survived [`Cgroup::kill_all`].
    #[error("processes {pids:?} are still in cgroup `{path}` after SIGKILL")]
    KillTimeout {
        /// The cgroup (first hierarchy on v1).
        path: PathBuf,
        /// Pids still inside.
        pids: Vec<u32>,
    },
}

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy: one hierarchy per controller.
    V1,
    /// Unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`, as in the Outcome's `cgroup` field.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits applied to one execution's cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupLimits {
    /// Bytes; swap is disabled where the host allows it.
    pub memory_bytes: u64,
    /// Maximum tasks.
    pub pids: u64,
    /// CPUs of bandwidth (CFS quota / period).
    pub cpus: f64,
}

/// Accounting read at the end of an execution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// Total CPU time.
    pub cpu_time: Duration,
    /// Peak memory in bytes.
    pub peak_memory_bytes: u64,
    /// OOM kills in this cgroup.
    pub oom_kills: u64,
}

/// Which of the controllers Warden limits with are usable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controllers {
    /// `memory`: memory limit, swap off, peak and OOM accounting.
    pub memory: bool,
    /// `pids`: process/thread limit.
    pub pids: bool,
    /// `cpu`: CFS bandwidth limit.
    pub cpu: bool,
}

impl Controllers {
    /// Whether all three are usable.
    pub fn all(self) -> bool {
        self.memory && self.pids && self.cpu
    }

    fn count(self) -> usize {
        usize::from(self.memory) + usize::from(self.pids) + usize::from(self.cpu)
    }

    /// `(name, usable)` in the order they are enabled and described.
    fn named(self) -> [(&'static str, bool); 3] {
        [
            ("memory", self.memory),
            ("pids", self.pids),
            ("cpu", self.cpu),
        ]
    }

    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Controllers {
        let mut c = Controllers::default();
        for name in names {
            match name {
                "memory" => c.memory = true,
                "pids" => c.pids = true,
                "cpu" => c.cpu = true,
                _ => {}
            }
        }
        c
    }
}

/// Where the host's cgroup hierarchies are and which version Warden uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHost {
    layout: Layout,
    /// Warden's own v2 cgroup (the `0::` line of `/proc/self/cgroup`), for error messages.
    own_cgroup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// Controller name (one of [`V1_CONTROLLERS`]) and mount point, in that order; co-mounted
    /// controllers (`cpu,cpuacct`) share a mount point.
    V1 {
        mounts: Vec<(&'static str, PathBuf)>,
    },
    /// Mount point and the controllers its root `cgroup.controllers` lists.
    V2 {
        root: PathBuf,
        available: Controllers,
    },
}

/// One hierarchy a cgroup lives in: its root and the controllers used through it.
struct Hierarchy {
    root: PathBuf,
    controllers: Vec<&'static str>,
}

impl CgroupHost {
    /// Reads `/proc/self/mountinfo` (and `/proc/self/cgroup` for Warden's own cgroup).
    ///
    /// Returns `Ok(None)` when no mounted hierarchy offers any of `memory`, `pids`, `cpu`.
    ///
    /// # Errors
    ///
    /// [`CgroupError::Io`] when `/proc/self/mountinfo` cannot be read.
    pub fn detect() -> Result<Option<CgroupHost>, CgroupError> {
        let mountinfo = read_file(Path::new("/proc/self/mountinfo"))?;
        Ok(CgroupHost::detect_from(&mountinfo))
    }

    /// [`CgroupHost::detect`] from `mountinfo` text the caller already read (the host probe
    /// reads `/proc/self/mountinfo` once for several checks).
    pub fn detect_from(mountinfo: &str) -> Option<CgroupHost> {
        let mut host = CgroupHost::from_mountinfo(mountinfo)?;
        if let Ok(own) = fs::read_to_string("/proc/self/cgroup") {
            host.own_cgroup = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(str::to_string);
        }
        Some(host)
    }

    /// Chooses a hierarchy from the text of a `mountinfo` file.
    ///
    /// For a `cgroup2` mount, the root's `cgroup.controllers` is read from disk at the mount
    /// point. v2 is chosen when it offers `memory`, `pids` and `cpu`, or at least as many of
    /// them as the v1 hierarchies do; otherwise v1. `None` when neither offers any.
    pub fn from_mountinfo(mountinfo: &str) -> Option<CgroupHost> {
        let mut v1: Vec<(String, PathBuf)> = Vec::new();
        let mut v2_root: Option<PathBuf> = None;
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // id parent major:minor root mount-point options [optional...] - fstype source super
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mount_point), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            match *fstype {
                "cgroup2" if v2_root.is_none() => v2_root = Some(mount_point),
                "cgroup" => {
                    let options = fields.get(sep + 3).copied().unwrap_or_default();
                    for option in options.split(',') {
                        v1.push((option.to_string(), mount_point.clone()));
                    }
                }
                _ => {}
            }
        }
        let v1 = CgroupHost::v1(v1);
        let v2 = v2_root.map(CgroupHost::v2);
        let v1_count = v1.controllers().count();
        match v2 {
            Some(v2) if v2.controllers().all() => Some(v2),
            Some(v2) if v2.controllers().count() >= v1_count.max(1) => Some(v2),
            _ if v1_count > 0 => Some(v1),
            _ => None,
        }
    }

    /// A v1 host from `(controller, mount point)` pairs; co-mounted controllers repeat the
    /// mount point. Controllers Warden does not use are ignored; the first mount of each wins.
    pub fn v1(mounts: impl IntoIterator<Item = (String, PathBuf)>) -> CgroupHost {
        let mut found: Vec<(&'static str, PathBuf)> = Vec::new();
        for (controller, path) in mounts {
            if let Some(known) = V1_CONTROLLERS.iter().find(|k| **k == controller) {
                if !found.iter().any(|(c, _)| c == known) {
                    found.push((known, path));
                }
            }
        }
        found.sort_by_key(|(c, _)| V1_CONTROLLERS.iter().position(|k| k == c));
        CgroupHost {
            layout: Layout::V1 { mounts: found },
            own_cgroup: None,
        }
    }

    /// A v2 host mounted at `root`; reads `root/cgroup.controllers` now (unreadable: none).
    pub fn v2(root: PathBuf) -> CgroupHost {
        let listed = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let available = Controllers::from_names(listed.split_whitespace());
        CgroupHost {
            layout: Layout::V2 { root, available },
            own_cgroup: None,
        }
    }

    /// The mount points this host's hierarchies use that `mountinfo` shows mounted read-only
    /// (the per-mount `ro` option, field 6 of proc(5)'s mountinfo): unprivileged Docker and
    /// Kubernetes containers mount `/sys/fs/cgroup` so, and no cgroup can be made there.
    pub fn read_only_mounts(&self, mountinfo: &str) -> Vec<PathBuf> {
        let used: Vec<&Path> = match &self.layout {
            Layout::V1 { mounts } => mounts.iter().map(|(_, p)| p.as_path()).collect(),
            Layout::V2 { root, .. } => vec![root.as_path()],
        };
        let mut read_only: Vec<PathBuf> = Vec::new();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(5)) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            if options.split(',').any(|o| o == "ro")
                && used.contains(&mount_point.as_path())
                && !read_only.contains(&mount_point)
            {
                read_only.push(mount_point);
            }
        }
        read_only
    }

    /// The version in use.
    pub fn version(&self) -> CgroupVersion {
        match self.layout {
            Layout::V1 { .. } => CgroupVersion::V1,
            Layout::V2 { .. } => CgroupVersion::V2,
        }
    }

    /// Which of `memory`, `pids`, `cpu` are usable: v2, listed in the root's
    /// `cgroup.controllers`; v1, the hierarchy is mounted.
    pub fn controllers(&self) -> Controllers {
        match &self.layout {
            Layout::V1 { mounts } => Controllers::from_names(mounts.iter().map(|(c, _)| *c)),
            Layout::V2 { available, .. } => *available,
        }
    }

    /// One line for `warden doctor`, for example
    /// `cgroup v1 (memory, pids, cpu, cpuacct, freezer)` or
    /// `cgroup v2 at /sys/fs/cgroup (memory, pids; missing cpu)`.
    pub fn describe(&self) -> String {
        let (head, present): (String, Vec<&str>) = match &self.layout {
            Layout::V1 { mounts } => (
                "cgroup v1".to_string(),
                mounts.iter().map(|(c, _)| *c).collect(),
            ),
            Layout::V2 { root, available } => (
                format!("cgroup v2 at {}", root.display()),
                available
                    .named()
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| n)
                    .collect(),
            ),
        };
        let missing: Vec<&str> = self
            .controllers()
            .named()
            .into_iter()
            .filter(|(_, on)| !on)
            .map(|(n, _)| n)
            .collect();
        let mut text = format!("{head} ({}", present.join(", "));
        if !missing.is_empty() {
            if !present.is_empty() {
                text.push_str("; ");
            }
            text.push_str("missing ");
            text.push_str(&missing.join(", "));
        }
        text.push(')');
        text
    }

    /// The hierarchies a cgroup is created in, with the controllers used through each.
    fn hierarchies(&self) -> Vec<Hierarchy> {
        match &self.layout {
            Layout::V1 { mounts } => {
                let mut out: Vec<Hierarchy> = Vec::new();
                for (controller, root) in mounts {
                    match out.iter_mut().find(|h| h.root == *root) {
                        Some(h) => h.controllers.push(controller),
                        None => out.push(Hierarchy {
                            root: root.clone(),
                            controllers: vec![controller],
                        }),
                    }
                }
                out
            }
            Layout::V2 { root, available } => vec![Hierarchy {
                root: root.clone(),
                controllers: available
                    .named()
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(n, _)| n)
                    .collect(),
            }],
        }
    }
}

/// Undoes the escaping of spaces, tabs, newlines and backslashes (`\040` …) in mountinfo.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One directory of a created cgroup and the controllers used through it.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    controllers: Vec<&'static str>,
}

/// One execution's cgroup: a directory per hierarchy (v2: exactly one).
///
/// Dropping it without [`Cgroup::remove`] kills whatever is inside and removes the
/// directories, best effort.
#[derive(Debug)]
pub struct Cgroup {
    version: CgroupVersion,
    dirs: Vec<Dir>,
    enforced: Controllers,
    removed: bool,
}

impl Cgroup {
    /// Creates `<hierarchy>/<parent>/<name>` in every hierarchy and writes the limits.
    ///
    /// `parent` is relative to each hierarchy's root (for example [`DEFAULT_PARENT`] or
    /// `warden/team-a`) and its missing levels are created; on v2 the available controllers
    /// are enabled in the `cgroup.subtree_control` of the root and of every parent level. Only
    /// the controllers the host offers are limited (see [`Cgroup::controllers`]). On failure
    /// everything this call created is removed again.
    ///
    /// # Errors
    ///
    /// [`CgroupError::InvalidName`], [`CgroupError::InvalidLimit`],
    /// [`CgroupError::PermissionDenied`], [`CgroupError::NoInternalProcesses`], or
    /// [`CgroupError::Io`] for the `mkdir` or `write` that failed (`EEXIST` when the cgroup
    /// already exists).
    pub fn create(
        host: &CgroupHost,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Cgroup, CgroupError> {
        validate_parent(parent)?;
        validate_name(name)?;
        let quota_us = validate_limits(limits)?;
        let mut created = Vec::new();
        let result = Cgroup::create_in(host, parent, name, limits, quota_us, &mut created);
        if result.is_err() {
            // Leaves first, then the parent levels this call made; a level another execution
            // has started using is not empty and stays (rmdir fails with EBUSY).
            for dir in created.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn create_in(
        host: &CgroupHost,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
        quota_us: u64,
        created: &mut Vec<PathBuf>,
    ) -> Result<Cgroup, CgroupError> {
        let version = host.version();
        let enable_v2 = version == CgroupVersion::V2;
        let own = host.own_cgroup.as_deref().unwrap_or("unknown");
        // Every directory is made before any limit is written, so a failure part-way leaves
        // only empty directories to remove.
        let mut dirs = Vec::new();
        for hierarchy in host.hierarchies() {
            let controllers = if enable_v2 {
                hierarchy.controllers.as_slice()
            } else {
                &[]
            };
            let path = make_leaf(&hierarchy.root, parent, name, controllers, own, created)?;
            dirs.push(Dir {
                path,
                controllers: hierarchy.controllers,
            });
        }
        let mut cgroup = Cgroup {
            version,
            dirs,
            enforced: host.controllers(),
            // Dropped on failure without teardown: `create` removes everything in `created`.
            removed: true,
        };
        cgroup.apply_limits(limits, quota_us)?;
        cgroup.removed = false;
        Ok(cgroup)
    }

    /// Writes the limits into the existing directories, in the order the kernel requires.
    fn apply_limits(&self, limits: &CgroupLimits, quota_us: u64) -> Result<(), CgroupError> {
        let memory = limits.memory_bytes.to_string();
        match self.version {
            CgroupVersion::V2 => {
                let Some(dir) = self.dirs.first() else {
                    return Ok(());
                };
                let dir = &dir.path;
                if self.enforced.memory {
                    write_file(&dir.join("memory.max"), &memory)?;
                    write_if_present(&dir.join("memory.swap.max"), "0")?;
                }
                if self.enforced.pids {
                    write_file(&dir.join("pids.max"), &limits.pids.to_string())?;
                }
                if self.enforced.cpu {
                    write_file(&dir.join("cpu.max"), &format!("{quota_us} {CPU_PERIOD_US}"))?;
                }
            }
            CgroupVersion::V1 => {
                if let Some(dir) = self.dir_for("memory") {
                    // memsw (memory + swap) may never be below the memory limit: limit first.
                    write_file(&dir.join("memory.limit_in_bytes"), &memory)?;
                    write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &memory)?;
                }
                if let Some(dir) = self.dir_for("pids") {
                    write_file(&dir.join("pids.max"), &limits.pids.to_string())?;
                }
                if let Some(dir) = self.dir_for("cpu") {
                    write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write_file(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// The version this cgroup uses.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The controllers whose limits were written.
    pub fn controllers(&self) -> Controllers {
        self.enforced
    }

    /// Moves a process (all its threads) in: `cgroup.procs` of every hierarchy.
    ///
    /// # Errors
    ///
    /// [`CgroupError::Io`] for the first `cgroup.procs` that refused it (`ESRCH` when the
    /// process is gone); it may then be in some v1 hierarchies already.
    pub fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    /// Pids currently inside, sorted (the union over hierarchies).
    ///
    /// # Errors
    ///
    /// [`CgroupError::Io`] when a `cgroup.procs` exists but cannot be read.
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let mut pids = BTreeSet::new();
        for dir in &self.dirs {
            let path = dir.path.join("cgroup.procs");
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CgroupError::Io {
                        op: "read",
                        path,
                        source,
                    })
                }
            };
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        Ok(pids.into_iter().collect())
    }

    /// CPU time, peak memory and OOM kills; a file that is missing or unparsable gives zero
    /// for its field.
    pub fn stats(&self) -> CgroupStats {
        let mut stats = CgroupStats::default();
        match self.version {
            CgroupVersion::V2 => {
                let Some(dir) = self.dirs.first() else {
                    return stats;
                };
                let dir = &dir.path;
                stats.peak_memory_bytes = read_u64(&dir.join("memory.peak"))
                    .or_else(|| read_u64(&dir.join("memory.current")))
                    .unwrap_or(0);
                stats.oom_kills = read_keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0);
                let usec = read_keyed(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0);
                stats.cpu_time = Duration::from_micros(usec);
            }
            CgroupVersion::V1 => {
                if let Some(dir) = self.dir_for("memory") {
                    stats.peak_memory_bytes =
                        read_u64(&dir.join("memory.max_usage_in_bytes")).unwrap_or(0);
                    stats.oom_kills =
                        read_keyed(&dir.join("memory.oom_control"), "oom_kill").unwrap_or(0);
                }
                if let Some(ns) = self
                    .dir_for("cpuacct")
                    .and_then(|d| read_u64(&d.join("cpuacct.usage")))
                {
                    stats.cpu_time = Duration::from_nanos(ns);
                } else if let Some(usec) = self
                    .dir_for("cpu")
                    .and_then(|d| read_keyed(&d.join("cpu.stat"), "usage_usec"))
                {
                    stats.cpu_time = Duration::from_micros(usec);
                }
            }
        }
        stats
    }

    /// Kills every process inside and waits (up to about 2 s) until the cgroup is empty.
    ///
    /// v2 writes `1` to `cgroup.kill` when the kernel has it (5.14+), else SIGKILLs each pid;
    /// v1 freezes the cgroup first when the freezer hierarchy is mounted, SIGKILLs each pid and
    /// thaws it (frozen tasks die only once thawed); repeated until empty. Warden's own pid is
    /// never signalled, and a cgroup holding it is never frozen nor `cgroup.kill`ed.
    ///
    /// # Errors
    ///
    /// [`CgroupError::KillTimeout`] when processes remain, [`CgroupError::Io`] when
    /// `cgroup.procs`, `cgroup.kill` or `freezer.state` cannot be used.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + KILL_TIMEOUT;
        let me = std::process::id();
        loop {
            let all = self.pids()?;
            let holds_me = all.contains(&me);
            let pids: Vec<u32> = all.into_iter().filter(|p| *p != me).collect();
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::KillTimeout {
                    path: self.first_path(),
                    pids,
                });
            }
            match self.version {
                CgroupVersion::V2 => {
                    let kill = self.dirs.first().map(|d| d.path.join("cgroup.kill"));
                    match kill {
                        Some(kill) if !holds_me && kill.exists() => write_file(&kill, "1")?,
                        _ => signal_all(&pids),
                    }
                }
                CgroupVersion::V1 => match self.dir_for("freezer").filter(|_| !holds_me) {
                    Some(freezer) => {
                        let state = freezer.join("freezer.state");
                        // Best effort: a failed freeze still leaves the plain kill.
                        let frozen = freeze(&state);
                        signal_all(&pids);
                        if frozen {
                            write_file(&state, "THAWED")?;
                        }
                    }
                    None => signal_all(&pids),
                },
            }
            thread::sleep(POLL);
        }
    }

    /// Removes the cgroup directories, retrying `rmdir` on `EBUSY` for about a second (the
    /// kernel releases exited tasks asynchronously). The parent is left for other executions.
    /// Call [`Cgroup::kill_all`] first: a cgroup with live processes cannot be removed.
    ///
    /// # Errors
    ///
    /// [`CgroupError::Io`] for the first directory that could not be removed; the others are
    /// still attempted, and dropping the value then retries after [`Cgroup::kill_all`].
    pub fn remove(mut self) -> Result<(), CgroupError> {
        remove_dirs(&self.dirs)?;
        self.removed = true;
        Ok(())
    }

    /// The cgroup's directories, one per hierarchy, for diagnostics.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controllers.contains(&controller))
            .map(|d| d.path.as_path())
    }

    fn first_path(&self) -> PathBuf {
        self.dirs
            .first()
            .map(|d| d.path.clone())
            .unwrap_or_default()
    }
}

/// The calling process as the owner of the cgroups it creates: `<pid namespace>-<pid>-<start
/// time>`: the inode of `/proc/self/ns/pid`, the pid, and the start time in clock ticks after
/// boot (field 22 of `/proc/<pid>/stat`, proc(5)). No two processes of one PID namespace share
/// a pid and a start time, so [`Cgroup::sweep_orphans`] can tell a live owner from a recycled
/// pid; owners in other PID namespaces (another container sharing the hierarchy) are never
/// judged. `None` when `/proc` cannot be read.
pub fn owner_tag() -> Option<String> {
    let pid = std::process::id();
    Some(format!("{}-{pid}-{}", pid_namespace()?, start_time(pid)?))
}

/// A new execution cgroup name: 32 random hex digits (a UUID), then `-<owner>` when the
/// owner is known ([`owner_tag`]); [`Cgroup::sweep_orphans`] reads the owner back.
pub fn execution_name(owner: Option<&str>) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match owner {
        Some(owner) => format!("{id}-{owner}"),
        None => id,
    }
}

/// Inode number of the calling process's PID namespace.
fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Start time of `pid` in clock ticks after boot, if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may itself contain spaces and `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The owner `(pid namespace, pid, start time)` in an execution cgroup's name
/// `<32 hex digits>-<owner tag>`; `None` for any other name.
fn owner_of(name: &str) -> Option<(u64, u32, u64)> {
    let mut parts = name.splitn(4, '-');
    let (id, ns, pid, start) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !hex(id) || !decimal(ns) || !decimal(pid) || !decimal(start) {
        return None;
    }
    Some((ns.parse().ok()?, pid.parse().ok()?, start.parse().ok()?))
}

impl Cgroup {
    /// Removes the execution cgroups under `parent` that a supervisor left behind when it died
    /// without tearing down (SIGKILL, a crash): directories named `<32 hex digits>-<owner tag>`
    /// ([`owner_tag`]) whose owner process no longer exists. Anything still inside is killed
    /// first ([`Cgroup::kill_all`], which also thaws a v1 cgroup frozen mid-kill). Returns the
    /// directories removed.
    ///
    /// Best effort, never an error: a cgroup that cannot be emptied or removed stays for a
    /// later sweep. Cgroups of live owners and directories with other names are not touched.
    pub fn sweep_orphans(host: &CgroupHost, parent: &str) -> Vec<PathBuf> {
        match pid_namespace() {
            Some(ns) => Cgroup::sweep_orphans_with(host, parent, ns, |pid, start| {
                start_time(pid) == Some(start)
            }),
            None => Vec::new(),
        }
    }

    /// [`Cgroup::sweep_orphans`] for owners in PID namespace `our_ns`, `alive` telling whether
    /// `(pid, start time)` still runs.
    fn sweep_orphans_with(
        host: &CgroupHost,
        parent: &str,
        our_ns: u64,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Vec<PathBuf> {
        if validate_parent(parent).is_err() {
            return Vec::new();
        }
        let hierarchies = host.hierarchies();
        let mut orphans = BTreeSet::new();
        for hierarchy in &hierarchies {
            let Ok(entries) = fs::read_dir(hierarchy.root.join(parent)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some((ns, pid, start)) = owner_of(name) {
                    if ns == our_ns && !alive(pid, start) {
                        orphans.insert(name.to_string());
                    }
                }
            }
        }
        let mut removed = Vec::new();
        for name in orphans {
            let dirs: Vec<Dir> = hierarchies
                .iter()
                .map(|h| Dir {
                    path: h.root.join(parent).join(&name),
                    controllers: h.controllers.clone(),
                })
                .filter(|d| d.path.is_dir())
                .collect();
            let orphan = Cgroup {
                version: host.version(),
                dirs,
                enforced: host.controllers(),
                // Not retried on drop: a failure here is left for the next sweep.
                removed: true,
            };
            if orphan.kill_all().is_ok() && remove_dirs(&orphan.dirs).is_ok() {
                removed.extend(orphan.paths());
            }
        }
        removed
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.kill_all();
            let _ = remove_dirs(&self.dirs);
        }
    }
}

/// Creates the missing levels of `root/parent` (enabling `controllers` in each level's
/// `cgroup.subtree_control` on v2, the root's included), then `root/parent/name`. Every
/// directory made is pushed to `created`.
fn make_leaf(
    root: &Path,
    parent: &str,
    name: &str,
    controllers: &[&str],
    own_cgroup: &str,
    created: &mut Vec<PathBuf>,
) -> Result<PathBuf, CgroupError> {
    let leaf = root.join(parent).join(name);
    // A concurrent failing `create` may remove a parent level it made between our ensuring it
    // and our use of it (mkdir of the next level or the leaf, or the write to its
    // `cgroup.subtree_control`: ENOENT): make the levels again, a few times.
    let mut attempts = 3;
    loop {
        let attempt = (|| {
            let mut dir = root.to_path_buf();
            enable_controllers(&dir, controllers, own_cgroup)?;
            for level in parent.split('/') {
                dir.push(level);
                match fs::create_dir(&dir) {
                    Ok(()) => created.push(dir.clone()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(mkdir_error(&dir, e)),
                }
                enable_controllers(&dir, controllers, own_cgroup)?;
            }
            fs::create_dir(&leaf).map_err(|e| mkdir_error(&leaf, e))?;
            created.push(leaf.clone());
            Ok(leaf.clone())
        })();
        match attempt {
            Err(CgroupError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound && attempts > 1 =>
            {
                attempts -= 1;
            }
            other => return other,
        }
    }
}

/// Enables the v2 controllers that `dir/cgroup.subtree_control` does not list yet.
fn enable_controllers(dir: &Path, wanted: &[&str], own_cgroup: &str) -> Result<(), CgroupError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let path = dir.join("cgroup.subtree_control");
    let current = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(CgroupError::Io {
                op: "read",
                path,
                source,
            })
        }
    };
    let enabled: Vec<&str> = current
        .split_whitespace()
        .map(|c| c.trim_start_matches('+'))
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    match write_file(&path, &missing.join(" ")) {
        Err(CgroupError::Io { path, source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            Err(CgroupError::NoInternalProcesses {
                path,
                own_cgroup: own_cgroup.to_string(),
                source,
            })
        }
        other => other,
    }
}

fn mkdir_error(path: &Path, source: io::Error) -> CgroupError {
    let denied = matches!(
        source.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    );
    if denied {
        CgroupError::PermissionDenied {
            path: path.to_owned(),
            source,
        }
    } else {
        CgroupError::Io {
            op: "mkdir",
            path: path.to_owned(),
            source,
        }
    }
}

/// Writes one value to a cgroup file (created when missing, which only happens off cgroupfs:
/// the kernel refuses to create files there).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Io {
        op: "write",
        path: path.to_owned(),
        source,
    })
}

/// Writes an optional interface file (swap limits exist only with swap accounting). A file
/// that exists but refuses the value is an error: silently allowing swap would let the memory
/// limit be exceeded.
fn write_if_present(path: &Path, value: &str) -> Result<(), CgroupError> {
    if path.exists() {
        write_file(path, value)
    } else {
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Io {
        op: "read",
        path: path.to_owned(),
        source,
    })
}

/// A file holding one number; `None` when missing or unparsable.
fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`key value` per line); `None` when absent.
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    parse_keyed(&fs::read_to_string(path).ok()?, key)
}

fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// Sends SIGKILL to each pid, ignoring processes already gone. Pids 0 and 1 are never
/// signalled (a bogus `cgroup.procs` must not take the host down).
fn signal_all(pids: &[u32]) {
    for &pid in pids {
        let pid = i32::try_from(pid)
            .ok()
            .filter(|p| *p > 1)
            .and_then(Pid::from_raw);
        if let Some(pid) = pid {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

/// Freezes a v1 freezer cgroup and waits briefly for `FROZEN`; whether it got there.
fn freeze(state: &Path) -> bool {
    if write_file(state, "FROZEN").is_err() {
        return false;
    }
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        match fs::read_to_string(state) {
            Ok(s) if s.trim() == "FROZEN" => return true,
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
            // Still FREEZING (or unreadable): it must be thawed all the same.
            _ => return true,
        }
    }
}

fn remove_dirs(dirs: &[Dir]) -> Result<(), CgroupError> {
    let mut first_error = None;
    for dir in dirs {
        if let Err(e) = rmdir_retrying(&dir.path) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn rmdir_retrying(path: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(POLL);
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "rmdir",
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}

/// A cgroup directory name: one path component that cannot be `.`/`..`, hidden, or collide
/// with an interface file's shape in a surprising way.
fn check_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("empty path component");
    }
    if component.len() > 255 {
        return Err("longer than 255 bytes");
    }
    if component.starts_with('.') {
        return Err("a component may not start with `.` (no `.` or `..`)");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':');
    if !component.chars().all(allowed) {
        return Err("only ASCII letters, digits and `-_.@:` are allowed");
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), CgroupError> {
    let bad = |reason| CgroupError::InvalidName {
        what: "name",
        value: name.to_string(),
        reason,
    };
    if name.contains('/') {
        return Err(bad("must be a single path component without `/`"));
    }
    check_component(name).map_err(bad)
}

/// Checks a parent path: relative to the hierarchy root, `/`-separated components of at most
/// 255 bytes of ASCII letters, digits and `-_.@:`, none empty or starting with `.`.
pub(crate) fn validate_parent(parent: &str) -> Result<(), CgroupError> {
    let bad = |reason| CgroupError::InvalidName {
        what: "parent",
        value: parent.to_string(),
        reason,
    };
    if parent.is_empty() {
        return Err(bad("must not be empty (the default is `warden`)"));
    }
    if parent.starts_with('/') {
        return Err(bad(
            "must be relative to the cgroup hierarchy root, without a leading `/`",
        ));
    }
    parent.split('/').try_for_each(check_component).map_err(bad)
}

/// Checks the limits and returns the CFS quota in microseconds.
pub(crate) fn validate_limits(limits: &CgroupLimits) -> Result<u64, CgroupError> {
    let bad = |field, value: String, expected| CgroupError::InvalidLimit {
        field,
        value,
        expected,
    };
    if limits.memory_bytes == 0 {
        return Err(bad("memory_bytes", "0".into(), "at least 1 byte"));
    }
    if limits.pids == 0 {
        return Err(bad("pids", "0".into(), "at least 1"));
    }
    if !(limits.cpus.is_finite() && limits.cpus > 0.0 && limits.cpus <= 1_000_000.0) {
        return Err(bad(
            "cpus",
            limits.cpus.to_string(),
            "a number of CPUs above 0",
        ));
    }
    // Bounded above by the check: 1e6 CPUs × 1e5 µs fits in u64.
    let quota = (limits.cpus * CPU_PERIOD_US as f64).round() as u64;
    Ok(quota.max(CPU_MIN_QUOTA_US))
}

#[cfg(test)]
mod tests {
    //! Unit tests against temp dirs laid out like cgroupfs. Off cgroupfs, `mkdir` makes an
    //! empty directory and writes create plain files, so tests read back what `create` wrote;
    //! `rmdir` of a directory holding files fails, so tests that remove delete the files first.
    //! Only Warden's own pid (never signalled) or a child the test spawned ever appears in a
    //! fake `cgroup.procs`.

    use std::process::{Command, Stdio};

    use super::*;

    /// `/proc/self/mountinfo` cgroup lines of a v1 host with a controller-less cgroup2 (this
    /// test machine), the cgroup2 mount point replaced by `{v2}`.
    const V1_HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / {v2} rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd v1 host: optional `shared:N` fields, `cpu,cpuacct` co-mounted.
    const V1_SYSTEMD: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
31 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
32 26 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
33 26 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
34 26 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
";

    /// A pure v2 host (Debian 12, Fedora, Ubuntu 22.04+).
    const V2_ONLY: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / {v2} rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const NO_CGROUP: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
";

    fn limits() -> CgroupLimits {
        limits_of(512 << 20, 256, 1.5)
    }

    /// Limits with `memory_bytes`, `pids` and `cpus`.
    pub(super) fn limits_of(memory_bytes: u64, pids: u64, cpus: f64) -> CgroupLimits {
        CgroupLimits {
            memory_bytes,
            pids,
            cpus,
        }
    }

    fn read(path: impl AsRef<Path>) -> String {
        fs::read_to_string(path.as_ref())
            .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
    }

    /// A temp dir holding a cgroup2 root whose `cgroup.controllers` lists `controllers`.
    fn v2_root(controllers: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cgroup");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("cgroup.controllers"), controllers).unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        (tmp, root)
    }

    /// A temp dir with this machine's v1 layout (separate cpu and cpuacct hierarchies).
    fn v1_host() -> (tempfile::TempDir, CgroupHost) {
        let tmp = tempfile::tempdir().unwrap();
        let mut mounts = Vec::new();
        for c in ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"] {
            fs::create_dir(tmp.path().join(c)).unwrap();
            mounts.push((c.to_string(), tmp.path().join(c)));
        }
        (tmp, CgroupHost::v1(mounts))
    }

    /// Deletes the plain files `create` wrote, so `rmdir` works off cgroupfs.
    fn delete_files(dirs: &[PathBuf]) {
        for dir in dirs {
            for entry in fs::read_dir(dir).unwrap() {
                fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
    }

    /// Review (session 5): a read-only cgroup mount (an unprivileged container's) was
    /// reported usable, and every run then failed creating its cgroup.
    #[test]
    fn read_only_cgroup_mounts_are_found() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let v2 = root.to_str().unwrap();
        let writable = format!("41 31 0:38 / {v2} rw,nosuid,relatime - cgroup2 cgroup2 rw\n");
        let host = CgroupHost::from_mountinfo(&writable).unwrap();
        assert_eq!(host.version(), CgroupVersion::V2);
        assert!(host.read_only_mounts(&writable).is_empty());
        let read_only = format!("41 31 0:38 / {v2} ro,nosuid,relatime - cgroup2 cgroup2 rw\n");
        assert_eq!(host.read_only_mounts(&read_only), vec![root.clone()]);
        // v1: only the hierarchies Warden uses count (blkio is not one of them).
        let (_tmp2, other) = v2_root("hugetlb\n");
        let mountinfo = V1_HYBRID
            .replace("{v2}", other.to_str().unwrap())
            .replace("/sys/fs/cgroup/blkio rw,", "/sys/fs/cgroup/blkio ro,");
        let v1 = CgroupHost::from_mountinfo(&mountinfo).unwrap();
        assert!(v1.read_only_mounts(&mountinfo).is_empty());
        let mountinfo = mountinfo.replace("/sys/fs/cgroup/pids rw,", "/sys/fs/cgroup/pids ro,");
        assert_eq!(
            v1.read_only_mounts(&mountinfo),
            vec![PathBuf::from("/sys/fs/cgroup/pids")]
        );
    }

    #[test]
    fn mountinfo_of_this_v1_host_with_controllerless_cgroup2_chooses_v1() {
        let (_tmp, root) = v2_root("hugetlb\n");
        let mountinfo = V1_HYBRID.replace("{v2}", root.to_str().unwrap());
        let host = CgroupHost::from_mountinfo(&mountinfo).unwrap();
        assert_eq!(host.version(), CgroupVersion::V1);
        assert_eq!(
            host.controllers(),
            Controllers {
                memory: true,
                pids: true,
                cpu: true
            }
        );
        assert_eq!(
            host.describe(),
            "cgroup v1 (memory, pids, cpu, cpuacct, freezer)"
        );
        let roots: Vec<_> = host
            .hierarchies()
            .into_iter()
            .map(|h| (h.root, h.controllers))
            .collect();
        let cg = Path::new("/sys/fs/cgroup");
        assert_eq!(
            roots,
            vec![
                (cg.join("memory"), vec!["memory"]),
                (cg.join("pids"), vec!["pids"]),
                (cg.join("cpu"), vec!["cpu"]),
                (cg.join("cpuacct"), vec!["cpuacct"]),
                (cg.join("freezer"), vec!["freezer"]),
            ]
        );
    }

    #[test]
    fn mountinfo_hybrid_with_empty_cgroup2_chooses_v1() {
        let (_tmp, root) = v2_root("");
        let mountinfo = V1_HYBRID.replace("{v2}", root.to_str().unwrap());
        assert_eq!(
            CgroupHost::from_mountinfo(&mountinfo).unwrap().version(),
            CgroupVersion::V1
        );
    }

    #[test]
    fn mountinfo_systemd_v1_co_mounts_cpu_and_cpuacct() {
        let host = CgroupHost::from_mountinfo(V1_SYSTEMD).unwrap();
        assert_eq!(host.version(), CgroupVersion::V1);
        assert!(host.controllers().all());
        let hierarchies = host.hierarchies();
        assert_eq!(hierarchies.len(), 4);
        let cpu = hierarchies
            .iter()
            .find(|h| h.controllers.contains(&"cpu"))
            .unwrap();
        assert_eq!(cpu.root, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn mountinfo_pure_v2_chooses_v2() {
        let (_tmp, root) = v2_root("cpuset cpu io memory hugetlb pids rdma misc\n");
        let host =
            CgroupHost::from_mountinfo(&V2_ONLY.replace("{v2}", root.to_str().unwrap())).unwrap();
        assert_eq!(host.version(), CgroupVersion::V2);
        assert!(host.controllers().all());
        assert_eq!(
            host.describe(),
            format!("cgroup v2 at {} (memory, pids, cpu)", root.display())
        );
    }

    #[test]
    fn mountinfo_v2_without_cpu_still_chooses_v2_and_reports_it_missing() {
        let (_tmp, root) = v2_root("memory pids\n");
        let host =
            CgroupHost::from_mountinfo(&V2_ONLY.replace("{v2}", root.to_str().unwrap())).unwrap();
        assert_eq!(host.version(), CgroupVersion::V2);
        assert_eq!(
            host.controllers(),
            Controllers {
                memory: true,
                pids: true,
                cpu: false
            }
        );
        assert!(
            host.describe().ends_with("(memory, pids; missing cpu)"),
            "{}",
            host.describe()
        );
    }

    #[test]
    fn mountinfo_without_usable_cgroup_is_none() {
        assert_eq!(CgroupHost::from_mountinfo(NO_CGROUP), None);
        assert_eq!(CgroupHost::from_mountinfo(""), None);
        // cgroup2 with no controllers and no v1 hierarchy: nothing to limit with.
        let (_tmp, root) = v2_root("");
        assert_eq!(
            CgroupHost::from_mountinfo(&V2_ONLY.replace("{v2}", root.to_str().unwrap())),
            None
        );
        // Only a named v1 hierarchy.
        let named = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
        assert_eq!(CgroupHost::from_mountinfo(named), None);
    }

    #[test]
    fn mountinfo_mount_points_are_unescaped() {
        let line = "32 31 0:29 / /mnt/cgroup\\040v1/memory rw - cgroup cgroup rw,memory\n";
        let host = CgroupHost::from_mountinfo(line).unwrap();
        assert_eq!(
            host.hierarchies()[0].root,
            Path::new("/mnt/cgroup v1/memory")
        );
        assert_eq!(unescape_mountinfo("a\\134b\\011c\\9"), "a\\b\tc\\9");
    }

    #[test]
    fn v1_constructor_ignores_unknown_and_duplicate_controllers() {
        let host = CgroupHost::v1([
            ("name=systemd".to_string(), PathBuf::from("/s")),
            ("memory".to_string(), PathBuf::from("/m")),
            ("memory".to_string(), PathBuf::from("/m2")),
            ("cpuset".to_string(), PathBuf::from("/cs")),
        ]);
        assert_eq!(
            host.controllers(),
            Controllers {
                memory: true,
                pids: false,
                cpu: false
            }
        );
        assert_eq!(host.describe(), "cgroup v1 (memory; missing pids, cpu)");
        assert_eq!(host.hierarchies().len(), 1);
        assert_eq!(host.hierarchies()[0].root, Path::new("/m"));
    }

    #[test]
    fn v2_create_enables_controllers_and_writes_limits() {
        let (_tmp, root) = v2_root("cpuset cpu io memory pids\n");
        let host = CgroupHost::v2(root.clone());
        let cg = Cgroup::create(&host, "warden", "run-1", &limits()).unwrap();
        let dir = root.join("warden/run-1");
        assert_eq!(cg.paths(), vec![dir.clone()]);
        assert_eq!(cg.version(), CgroupVersion::V2);
        assert_eq!(
            read(root.join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(
            read(root.join("warden/cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(read(dir.join("memory.max")), "536870912");
        assert_eq!(read(dir.join("pids.max")), "256");
        assert_eq!(read(dir.join("cpu.max")), "150000 100000");
        // The leaf enables nothing (it holds the processes), and no swap file was invented.
        assert!(!dir.join("cgroup.subtree_control").exists());
        assert!(!dir.join("memory.swap.max").exists());
    }

    #[test]
    fn v2_create_with_nested_parent_enables_every_level_once() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        // As the kernel shows it: names without `+`. Already enabled: not written again.
        fs::write(root.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        let host = CgroupHost::v2(root.clone());
        let cg = Cgroup::create(&host, "warden/team-a", "run-1", &limits()).unwrap();
        assert_eq!(
            read(root.join("cgroup.subtree_control")),
            "cpu memory pids\n"
        );
        assert_eq!(
            read(root.join("warden/cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(
            read(root.join("warden/team-a/cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(cg.paths(), vec![root.join("warden/team-a/run-1")]);
    }

    #[test]
    fn v2_create_enables_and_limits_only_available_controllers() {
        let (_tmp, root) = v2_root("memory pids\n");
        let host = CgroupHost::v2(root.clone());
        let cg = Cgroup::create(&host, "warden", "run-1", &limits()).unwrap();
        assert_eq!(read(root.join("cgroup.subtree_control")), "+memory +pids");
        assert!(!root.join("warden/run-1/cpu.max").exists());
        assert_eq!(
            cg.controllers(),
            Controllers {
                memory: true,
                pids: true,
                cpu: false
            }
        );
    }

    #[test]
    fn v2_apply_limits_disables_swap_when_the_file_exists() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let cg = Cgroup::create(&CgroupHost::v2(root.clone()), "warden", "x", &limits()).unwrap();
        let dir = root.join("warden/x");
        fs::write(dir.join("memory.swap.max"), "max\n").unwrap();
        cg.apply_limits(&limits_of(64 << 20, 8, 0.001), 1000)
            .unwrap();
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert_eq!(read(dir.join("cpu.max")), "1000 100000");
    }

    #[test]
    fn v1_create_writes_limits_in_each_hierarchy() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "run-1", &limits()).unwrap();
        let t = tmp.path();
        let leaf = |h: &str| t.join(h).join("warden/run-1");
        let expected: Vec<PathBuf> = ["memory", "pids", "cpu", "cpuacct", "freezer"]
            .iter()
            .map(|h| leaf(h))
            .collect();
        assert_eq!(cg.paths(), expected);
        assert!(
            !t.join("devices/warden").exists(),
            "unused hierarchies are left alone"
        );
        assert_eq!(
            read(leaf("memory").join("memory.limit_in_bytes")),
            "536870912"
        );
        assert!(!leaf("memory").join("memory.memsw.limit_in_bytes").exists());
        assert_eq!(read(leaf("pids").join("pids.max")), "256");
        assert_eq!(read(leaf("cpu").join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(leaf("cpu").join("cpu.cfs_quota_us")), "150000");
        // v1 has no subtree_control: nothing but the limits is written.
        assert_eq!(fs::read_dir(leaf("cpuacct")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(leaf("freezer")).unwrap().count(), 0);
        assert!(!t.join("memory/cgroup.subtree_control").exists());
    }

    #[test]
    fn v1_co_mounted_cpu_cpuacct_is_one_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let both = tmp.path().join("cpu,cpuacct");
        fs::create_dir(&both).unwrap();
        let host = CgroupHost::v1([
            ("cpu".into(), both.clone()),
            ("cpuacct".into(), both.clone()),
        ]);
        let cg = Cgroup::create(&host, "warden", "run-1", &limits()).unwrap();
        let dir = both.join("warden/run-1");
        assert_eq!(cg.paths(), vec![dir.clone()]);
        assert_eq!(read(dir.join("cpu.cfs_quota_us")), "150000");
        fs::write(dir.join("cpuacct.usage"), "2500000000\n").unwrap();
        assert_eq!(cg.stats().cpu_time, Duration::from_millis(2500));
    }

    #[test]
    fn v1_apply_limits_sets_memsw_after_the_memory_limit_when_present() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "x", &limits()).unwrap();
        let memsw = tmp
            .path()
            .join("memory/warden/x/memory.memsw.limit_in_bytes");
        fs::write(&memsw, "9223372036854771712\n").unwrap();
        cg.apply_limits(&limits_of(32 << 20, 8, 2.0), 200_000)
            .unwrap();
        assert_eq!(read(&memsw), "33554432");
        assert_eq!(
            read(tmp.path().join("memory/warden/x/memory.limit_in_bytes")),
            "33554432"
        );
        assert_eq!(
            read(tmp.path().join("cpu/warden/x/cpu.cfs_quota_us")),
            "200000"
        );
    }

    #[test]
    fn create_twice_with_the_same_name_fails_and_keeps_the_first() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let host = CgroupHost::v2(root.clone());
        let _first = Cgroup::create(&host, "warden", "same", &limits()).unwrap();
        let err = Cgroup::create(&host, "warden", "same", &limits()).unwrap_err();
        match err {
            CgroupError::Io {
                op: "mkdir",
                source,
                ..
            } => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(read(root.join("warden/same/memory.max")), "536870912");
    }

    #[test]
    fn failed_create_removes_everything_it_made() {
        let tmp = tempfile::tempdir().unwrap();
        let memory = tmp.path().join("memory");
        fs::create_dir(&memory).unwrap();
        // pids "hierarchy" is not mounted: its mkdir fails after memory's succeeded.
        let host = CgroupHost::v1([
            ("memory".into(), memory.clone()),
            ("pids".into(), tmp.path().join("absent")),
        ]);
        let err = Cgroup::create(&host, "warden/team", "run-1", &limits()).unwrap_err();
        assert!(
            matches!(err, CgroupError::Io { op: "mkdir", .. }),
            "{err:?}"
        );
        assert_eq!(
            fs::read_dir(&memory).unwrap().count(),
            0,
            "leaf and parents removed"
        );

        // A parent that existed before is kept.
        fs::create_dir(memory.join("warden")).unwrap();
        Cgroup::create(&host, "warden", "run-1", &limits()).unwrap_err();
        assert!(memory.join("warden").is_dir());
        assert_eq!(fs::read_dir(memory.join("warden")).unwrap().count(), 0);
    }

    #[test]
    fn subtree_control_errors_are_reported_with_a_hint_for_ebusy() {
        // EBUSY cannot be produced off cgroupfs: an unreadable subtree_control (a directory)
        // stays a plain I/O error, and the EBUSY variant's message is checked on its own.
        let (_tmp, root) = v2_root("memory\n");
        fs::remove_file(root.join("cgroup.subtree_control")).unwrap();
        fs::create_dir(root.join("cgroup.subtree_control")).unwrap();
        let host = CgroupHost {
            own_cgroup: Some("/init.scope".into()),
            ..CgroupHost::v2(root)
        };
        let err = Cgroup::create(&host, "warden", "x", &limits()).unwrap_err();
        assert!(matches!(err, CgroupError::Io { op: "read", .. }), "{err:?}");

        let busy = CgroupError::NoInternalProcesses {
            path: PathBuf::from("/sys/fs/cgroup/cgroup.subtree_control"),
            own_cgroup: "/init.scope".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        let text = busy.to_string();
        assert!(
            text.contains("no internal processes") && text.contains("/init.scope"),
            "{text}"
        );
        assert!(text.contains("delegate an empty cgroup"), "{text}");
    }

    #[test]
    fn names_and_parents_are_validated() {
        let (_tmp, root) = v2_root("memory\n");
        let host = CgroupHost::v2(root.clone());
        let bad_names = [
            "", ".", "..", "a/b", "../x", ".hidden", "a b", "a\nb", "x\0",
        ];
        for name in bad_names {
            let err = Cgroup::create(&host, "warden", name, &limits()).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidName { what: "name", .. }),
                "{name:?}"
            );
        }
        let bad_parents = [
            "",
            "/warden",
            "warden/",
            "warden//x",
            "..",
            "warden/../x",
            "a/./b",
            "a b",
        ];
        for parent in bad_parents {
            let err = Cgroup::create(&host, parent, "x", &limits()).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidName { what: "parent", .. }),
                "{parent:?}"
            );
        }
        assert!(
            !root.join("warden").exists(),
            "nothing created for invalid names"
        );
        for name in ["run-1", "0f8e5b2c-1d2e-4f3a-9b8c-7d6e5f4a3b2c", "a_b.c@d:e"] {
            validate_name(name).unwrap();
        }
        for parent in [
            "warden",
            "warden/team-a",
            "user.slice/user@1000.service/app.slice",
        ] {
            validate_parent(parent).unwrap();
        }
        let err = validate_name("../etc").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid cgroup name `../etc`: must be a single path component without `/`"
        );
    }

    #[test]
    fn limits_are_validated_and_quota_rounded() {
        let quota = |cpus| validate_limits(&CgroupLimits { cpus, ..limits() });
        assert_eq!(quota(1.5).unwrap(), 150_000);
        assert_eq!(quota(0.333_333).unwrap(), 33_333);
        assert_eq!(quota(0.001).unwrap(), 1_000, "kernel minimum quota is 1 ms");
        assert_eq!(quota(64.0).unwrap(), 6_400_000);
        for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(matches!(
                quota(cpus),
                Err(CgroupError::InvalidLimit { field: "cpus", .. })
            ));
        }
        let zero_mem = CgroupLimits {
            memory_bytes: 0,
            ..limits()
        };
        assert!(matches!(
            validate_limits(&zero_mem),
            Err(CgroupError::InvalidLimit { .. })
        ));
        let zero_pids = CgroupLimits {
            pids: 0,
            ..limits()
        };
        assert!(matches!(
            validate_limits(&zero_pids),
            Err(CgroupError::InvalidLimit { .. })
        ));
    }

    #[test]
    fn v2_stats_parse_kernel_files() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let cg = Cgroup::create(&CgroupHost::v2(root.clone()), "warden", "x", &limits()).unwrap();
        let dir = root.join("warden/x");
        assert_eq!(
            cg.stats(),
            CgroupStats::default(),
            "missing files give zeros"
        );
        fs::write(dir.join("memory.current"), "4096\n").unwrap();
        assert_eq!(
            cg.stats().peak_memory_bytes,
            4096,
            "memory.current before 5.19"
        );
        fs::write(dir.join("memory.peak"), "33554432\n").unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 1342\noom 2\noom_kill 2\noom_group_kill 0\n",
        )
        .unwrap();
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 12\n\
             nr_throttled 3\nthrottled_usec 40000\nnr_bursts 0\nburst_usec 0\n",
        )
        .unwrap();
        let stats = cg.stats();
        assert_eq!(
            stats,
            CgroupStats {
                cpu_time: Duration::from_micros(1_234_567),
                peak_memory_bytes: 33_554_432,
                oom_kills: 2,
            }
        );
        fs::write(dir.join("memory.events"), "oom_kill garbage\n").unwrap();
        assert_eq!(cg.stats().oom_kills, 0);
    }

    #[test]
    fn v1_stats_parse_kernel_files() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "x", &limits()).unwrap();
        assert_eq!(cg.stats(), CgroupStats::default());
        let t = tmp.path();
        fs::write(
            t.join("memory/warden/x/memory.max_usage_in_bytes"),
            "33488896\n",
        )
        .unwrap();
        fs::write(
            t.join("memory/warden/x/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        fs::write(t.join("cpuacct/warden/x/cpuacct.usage"), "152409123\n").unwrap();
        assert_eq!(
            cg.stats(),
            CgroupStats {
                cpu_time: Duration::from_nanos(152_409_123),
                peak_memory_bytes: 33_488_896,
                oom_kills: 1,
            }
        );
    }

    #[test]
    fn v1_stats_fall_back_to_cpu_stat_without_cpuacct() {
        let tmp = tempfile::tempdir().unwrap();
        let cpu = tmp.path().join("cpu");
        fs::create_dir(&cpu).unwrap();
        let cg = Cgroup::create(
            &CgroupHost::v1([("cpu".into(), cpu.clone())]),
            "w",
            "x",
            &limits(),
        )
        .unwrap();
        fs::write(cpu.join("w/x/cpu.stat"), "nr_periods 0\nusage_usec 5000\n").unwrap();
        assert_eq!(cg.stats().cpu_time, Duration::from_millis(5));
    }

    #[test]
    fn add_process_writes_every_hierarchy_and_pids_is_the_union() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "x", &limits()).unwrap();
        let me = std::process::id();
        cg.add_process(me).unwrap();
        for path in cg.paths() {
            assert_eq!(read(path.join("cgroup.procs")), me.to_string());
        }
        fs::write(
            tmp.path().join("pids/warden/x/cgroup.procs"),
            format!("{me}\n1\n"),
        )
        .unwrap();
        assert_eq!(cg.pids().unwrap(), vec![1, me]);
        // Only Warden's own pid left: kill_all has nothing to do, and never freezes itself.
        fs::write(
            tmp.path().join("pids/warden/x/cgroup.procs"),
            format!("{me}\n"),
        )
        .unwrap();
        cg.kill_all().unwrap();
        assert!(!tmp.path().join("freezer/warden/x/freezer.state").exists());
    }

    #[test]
    fn v1_kill_all_freezes_signals_and_thaws() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "x", &limits()).unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        cg.add_process(child.id()).unwrap();
        // Off cgroupfs the pid never leaves cgroup.procs: kill_all signals it, then times out.
        let err = cg.kill_all().unwrap_err();
        assert!(
            matches!(&err, CgroupError::KillTimeout { pids, .. } if *pids == vec![child.id()]),
            "{err:?}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert_eq!(
            read(tmp.path().join("freezer/warden/x/freezer.state")),
            "THAWED"
        );
        for path in cg.paths() {
            fs::write(path.join("cgroup.procs"), "").unwrap();
        }
    }

    #[test]
    fn v2_kill_all_uses_cgroup_kill_when_present() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let cg = Cgroup::create(&CgroupHost::v2(root.clone()), "warden", "x", &limits()).unwrap();
        let dir = root.join("warden/x");
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        fs::write(dir.join("cgroup.kill"), "").unwrap();
        cg.add_process(child.id()).unwrap();
        // A plain file does not kill: the child survives, proving no per-pid SIGKILL was sent.
        assert!(matches!(
            cg.kill_all(),
            Err(CgroupError::KillTimeout { .. })
        ));
        assert_eq!(read(dir.join("cgroup.kill")), "1");
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        fs::write(dir.join("cgroup.procs"), "").unwrap();
    }

    #[test]
    fn remove_deletes_the_leaves_and_keeps_the_parent() {
        let (tmp, host) = v1_host();
        let cg = Cgroup::create(&host, "warden", "x", &limits()).unwrap();
        let paths = cg.paths();
        delete_files(&paths);
        cg.remove().unwrap();
        for path in &paths {
            assert!(!path.exists(), "{}", path.display());
            assert!(path.parent().unwrap().is_dir());
        }
        assert!(tmp.path().join("memory/warden").is_dir());
    }

    #[test]
    fn remove_reports_a_directory_it_cannot_delete() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let cg = Cgroup::create(&CgroupHost::v2(root.clone()), "warden", "x", &limits()).unwrap();
        // Off cgroupfs the limit files make rmdir fail (ENOTEMPTY), without retrying.
        let started = Instant::now();
        let err = cg.remove().unwrap_err();
        assert!(
            matches!(err, CgroupError::Io { op: "rmdir", .. }),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn drop_removes_what_remove_was_not_called_for() {
        let (_tmp, root) = v2_root("memory pids cpu\n");
        let cg = Cgroup::create(&CgroupHost::v2(root.clone()), "warden", "x", &limits()).unwrap();
        delete_files(&cg.paths());
        drop(cg);
        assert!(!root.join("warden/x").exists());
    }

    #[test]
    fn owner_is_parsed_only_from_execution_names() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            owner_of(&format!("{id}-4026531836-42-1234")),
            Some((4026531836, 42, 1234))
        );
        for name in [
            id.to_string(),                             // no owner (older versions)
            format!("{id}-4026531836-42"),              // no start time
            format!("{id}-4026531836-+42-1234"),        // sign
            format!("{id}-4026531836-42-1234-5"),       // extra part
            format!("{}-1-42-1234", id.to_uppercase()), // not lower-case hex
            format!("{}-1-42-1234", &id[1..]),          // 31 digits
            "warden-test-x-1-2-3".to_string(),
            "cgroup.procs".to_string(),
        ] {
            assert_eq!(owner_of(&name), None, "{name}");
        }
    }

    #[test]
    fn owner_tag_names_this_process() {
        let tag = owner_tag().unwrap();
        let (ns, pid, start) = owner_of(&execution_name(Some(&tag))).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(ns), pid_namespace());
        assert_eq!(Some(start), start_time(pid));
        // A process that has exited is gone; pid 0 never names one.
        assert_eq!(start_time(0), None);
    }

    /// Only cgroups of dead owners in our PID namespace go; on v1 in every hierarchy.
    #[test]
    fn sweep_removes_only_cgroups_of_dead_owners_in_our_pid_namespace() {
        let (_tmp, host) = v1_host();
        let id = |c: char| c.to_string().repeat(32);
        let dead = format!("{}-7-100-5", id('a'));
        let live = format!("{}-7-200-5", id('b'));
        let recycled = format!("{}-7-200-6", id('c')); // pid 200 now has another start time
        let other_namespace = format!("{}-8-100-5", id('d'));
        let unowned = id('e');
        let names = [&dead, &live, &recycled, &other_namespace, &unowned];
        let roots: Vec<PathBuf> = host.hierarchies().into_iter().map(|h| h.root).collect();
        for root in &roots {
            for name in names {
                fs::create_dir_all(root.join("warden").join(name)).unwrap();
            }
        }
        let alive = |pid, start| (pid, start) == (200, 5);
        let mut removed = Cgroup::sweep_orphans_with(&host, "warden", 7, alive);
        removed.sort();
        let mut expected: Vec<PathBuf> = roots
            .iter()
            .flat_map(|r| {
                [
                    r.join("warden").join(&dead),
                    r.join("warden").join(&recycled),
                ]
            })
            .collect();
        expected.sort();
        assert_eq!(removed, expected);
        for root in &roots {
            for name in [&live, &other_namespace, &unowned] {
                assert!(root.join("warden").join(name).is_dir(), "{name} swept");
            }
        }
        // A bad parent sweeps nothing.
        assert!(Cgroup::sweep_orphans_with(&host, "../x", 7, |_, _| false).is_empty());
    }

    #[test]
    fn version_names() {
        assert_eq!(CgroupVersion::V1.to_string(), "v1");
        assert_eq!(CgroupVersion::V2.as_str(), "v2");
    }
}

#[cfg(test)]
mod real {
    //! Tests against this host's real cgroups. They need a writable `/sys/fs/cgroup` (root, or
    //! a delegated v2 tree mounted there) and skip, saying so, only when it is not writable.
    //! Each test uses its own parent directory and removes it at the end.

    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};

    use super::tests::limits_of;
    use super::*;

    fn real_host() -> Option<CgroupHost> {
        if rustix::fs::access("/sys/fs/cgroup", rustix::fs::Access::WRITE_OK).is_err() {
            eprintln!("skipping: /sys/fs/cgroup is not writable");
            return None;
        }
        let host = CgroupHost::detect().unwrap();
        Some(host.expect("/sys/fs/cgroup is writable but no usable cgroup hierarchy was detected"))
    }

    fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// Removes the per-test parent of `paths` and checks that nothing is left.
    fn remove_parents(paths: &[PathBuf]) {
        for path in paths {
            assert!(!path.exists(), "{} left behind", path.display());
            let parent = path.parent().unwrap();
            fs::remove_dir(parent).unwrap();
            assert!(!parent.exists());
        }
    }

    fn read(path: impl AsRef<Path>) -> String {
        let text = fs::read_to_string(path.as_ref())
            .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()));
        text.trim().to_string()
    }

    /// `sh` that waits for a line on stdin before exec'ing `script`, so the test can move it
    /// into the cgroup before it allocates or forks.
    /// Kills everything in `cg`, checks `child` died of SIGKILL and the cgroup is empty, then
    /// removes the cgroup and its test parents.
    fn kill_reap_and_remove(cg: Cgroup, child: &mut Child) {
        cg.kill_all().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(cg.pids().unwrap().is_empty());
        let paths = cg.paths();
        cg.remove().unwrap();
        remove_parents(&paths);
    }

    fn gated(script: &str) -> Child {
        Command::new("/bin/sh")
            .args(["-c", &format!("read x; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn open_gate(child: &mut Child) {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }

    fn dir_for<'a>(cg: &'a Cgroup, controller: &str) -> &'a Path {
        cg.dir_for(controller)
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
    }

    #[test]
    fn detect_finds_this_host() {
        let Some(host) = real_host() else { return };
        eprintln!("{}", host.describe());
        assert!(host.controllers().memory, "{}", host.describe());
    }

    #[test]
    fn limits_join_kill_remove() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 0.5);
        let cg = Cgroup::create(&host, &parent, "run", &limits).unwrap();

        // The kernel reads back the limits.
        match host.version() {
            CgroupVersion::V1 => {
                let mem = dir_for(&cg, "memory");
                assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    assert_eq!(read(memsw), "67108864");
                }
                assert_eq!(read(dir_for(&cg, "pids").join("pids.max")), "8");
                assert_eq!(
                    read(dir_for(&cg, "cpu").join("cpu.cfs_period_us")),
                    "100000"
                );
                assert_eq!(read(dir_for(&cg, "cpu").join("cpu.cfs_quota_us")), "50000");
            }
            CgroupVersion::V2 => {
                let dir = &cg.paths()[0];
                assert_eq!(read(dir.join("memory.max")), "67108864");
                if dir.join("memory.swap.max").exists() {
                    assert_eq!(read(dir.join("memory.swap.max")), "0");
                }
                assert_eq!(read(dir.join("pids.max")), "8");
                assert_eq!(read(dir.join("cpu.max")), "50000 100000");
            }
        }

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        cg.add_process(child.id()).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![child.id()]);
        let own = read(format!("/proc/{}/cgroup", child.id()));
        assert!(own.contains(&format!("/{parent}/run")), "{own}");

        kill_reap_and_remove(cg, &mut child);
    }

    #[test]
    fn pids_limit_stops_a_fork_loop_and_kill_all_empties_it() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 1.0);
        let cg = Cgroup::create(&host, &parent, "run", &limits).unwrap();
        // Forks 16 sleepers, counting the forks that succeed, then sleeps itself.
        let script = "exec /usr/bin/python3 -c '
import os, sys, time
n = 0
for _ in range(16):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    except OSError:
        pass
print(n, flush=True)
time.sleep(30)
'";
        let mut child = Command::new("/bin/sh")
            .args(["-c", &format!("read x; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        cg.add_process(child.id()).unwrap();
        open_gate(&mut child);
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line.trim(), "7", "pids.max = 8: the parent and 7 children");
        assert_eq!(cg.pids().unwrap().len(), 8);

        kill_reap_and_remove(cg, &mut child);
    }

    #[test]
    fn memory_hog_is_oom_killed_and_counted() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test");
        let limits = limits_of(32 << 20, 16, 1.0);
        let cg = Cgroup::create(&host, &parent, "run", &limits).unwrap();
        let mut child = gated("exec /usr/bin/python3 -c 'b = bytearray(200 * 1024 * 1024)'");
        cg.add_process(child.id()).unwrap();
        open_gate(&mut child);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        let stats = cg.stats();
        eprintln!("{stats:?}");
        assert!(stats.oom_kills >= 1, "{stats:?}");
        assert!(stats.peak_memory_bytes > 16 << 20, "{stats:?}");
        assert!(stats.peak_memory_bytes <= 33 << 20, "{stats:?}");
        assert!(stats.cpu_time > Duration::ZERO, "{stats:?}");
        cg.kill_all().unwrap();
        let paths = cg.paths();
        cg.remove().unwrap();
        remove_parents(&paths);
    }

    #[test]
    fn cpu_quota_throttles_and_is_accounted() {
        let Some(host) = real_host() else { return };
        if !host.controllers().cpu {
            eprintln!("skipping: no cpu controller on this host");
            return;
        }
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 0.2);
        let cg = Cgroup::create(&host, &parent, "run", &limits).unwrap();
        // Spins for 1 s of wall time; at 0.2 CPU it can get about 0.2 s of CPU.
        let mut child = gated(
            "exec /usr/bin/python3 -c 'import time\nt = time.time()\nwhile time.time() - t < 1: pass'",
        );
        cg.add_process(child.id()).unwrap();
        open_gate(&mut child);
        assert!(child.wait().unwrap().success());
        let cpu = cg.stats().cpu_time;
        eprintln!("cpu time at 0.2 CPU for 1 s: {cpu:?}");
        assert!(cpu > Duration::from_millis(20), "{cpu:?}");
        assert!(cpu < Duration::from_millis(500), "{cpu:?}");
        let paths = cg.paths();
        cg.remove().unwrap();
        remove_parents(&paths);
    }

    #[test]
    fn drop_kills_and_removes() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 1.0);
        let cg = Cgroup::create(&host, &parent, "run", &limits).unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        cg.add_process(child.id()).unwrap();
        let paths = cg.paths();
        drop(cg);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        remove_parents(&paths);
    }

    #[test]
    fn failed_create_leaves_nothing_on_the_host() {
        let Some(host) = real_host() else { return };
        let Layout::V1 { mounts } = &host.layout else {
            eprintln!("skipping: v1-only scenario (a hierarchy that is not mounted)");
            return;
        };
        let mut broken: Vec<(String, PathBuf)> = mounts
            .iter()
            .map(|(c, p)| (c.to_string(), p.clone()))
            .collect();
        // The last hierarchy is "mounted" nowhere: its mkdir fails after the others succeeded.
        if let Some(last) = broken.last_mut() {
            last.1 = PathBuf::from("/nonexistent-warden-test");
        }
        let broken = CgroupHost::v1(broken);
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 1.0);
        let err = Cgroup::create(&broken, &format!("{parent}/nested"), "run", &limits).unwrap_err();
        assert!(
            matches!(err, CgroupError::Io { op: "mkdir", .. }),
            "{err:?}"
        );
        for (_, root) in mounts {
            assert!(
                !root.join(&parent).exists(),
                "{} left behind",
                root.join(&parent).display()
            );
        }
    }

    #[test]
    fn existing_name_is_refused_without_touching_the_first() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test");
        let limits = limits_of(64 << 20, 8, 1.0);
        let first = Cgroup::create(&host, &parent, "run", &limits).unwrap();
        let err = Cgroup::create(&host, &parent, "run", &limits).unwrap_err();
        assert!(
            matches!(err, CgroupError::Io { op: "mkdir", .. }),
            "{err:?}"
        );
        let paths = first.paths();
        assert!(paths.iter().all(|p| p.is_dir()));
        first.remove().unwrap();
        remove_parents(&paths);
    }

    /// A cgroup whose owner has exited is emptied and removed; one of a live owner stays.
    #[test]
    fn sweep_kills_and_removes_a_dead_owners_cgroup_and_keeps_a_live_ones() {
        let Some(host) = real_host() else { return };
        let parent = unique("warden-test-sweep");
        // An owner that has exited: a child's pid and start time (read while it is a zombie).
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_start = start_time(gone.id()).unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let ns = pid_namespace().unwrap();
        let limits = limits_of(64 << 20, 16, 1.0);
        let dead_owner = format!("{ns}-{gone_pid}-{gone_start}");
        let mut orphan =
            Cgroup::create(&host, &parent, &execution_name(Some(&dead_owner)), &limits).unwrap();
        let live_owner = owner_tag().unwrap();
        let live =
            Cgroup::create(&host, &parent, &execution_name(Some(&live_owner)), &limits).unwrap();
        let mut survivor = Command::new("sleep").arg("100").spawn().unwrap();
        orphan.add_process(survivor.id()).unwrap();
        // What a SIGKILLed supervisor leaves: no teardown.
        let mut orphan_paths = orphan.paths();
        orphan.removed = true;
        drop(orphan);

        let mut removed = Cgroup::sweep_orphans(&host, &parent);
        removed.sort();
        orphan_paths.sort();
        assert_eq!(removed, orphan_paths);
        assert_eq!(survivor.wait().unwrap().signal(), Some(libc::SIGKILL));
        let live_paths = live.paths();
        assert!(live_paths.iter().all(|p| p.is_dir()));
        live.remove().unwrap();
        remove_parents(&live_paths);
    }
}
