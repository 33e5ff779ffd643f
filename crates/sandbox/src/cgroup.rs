//! L5/L6: cgroup v1 and v2 resource limits (pids, memory, CPU) and accounting.
//! PLACEHOLDER: being written by a helper; interface below is the contract.

use std::path::PathBuf;
use std::time::Duration;

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
        source: std::io::Error,
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
// TEMPORARY SHIM
#[derive(Debug, Clone)]
pub struct CgroupHost;
#[derive(Debug, Clone, Copy)]
pub struct Controllers {
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
}
impl CgroupHost {
    pub fn detect() -> Result<Option<CgroupHost>, CgroupError> {
        Ok(None)
    }
    pub fn controllers(&self) -> Controllers {
        Controllers {
            memory: false,
            pids: false,
            cpu: false,
        }
    }
    pub fn describe(&self) -> String {
        String::new()
    }
    pub fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }
}
#[derive(Debug)]
pub struct Cgroup;
impl Cgroup {
    pub fn create(
        _h: &CgroupHost,
        _p: &str,
        _n: &str,
        _l: &CgroupLimits,
    ) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup)
    }
    pub fn add_process(&self, _pid: u32) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        Ok(vec![])
    }
    pub fn stats(&self) -> CgroupStats {
        CgroupStats::default()
    }
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn remove(self) -> Result<(), CgroupError> {
        Ok(())
    }
}
