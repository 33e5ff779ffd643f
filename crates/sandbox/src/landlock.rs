//! L9: landlock, as far as the running kernel's ABI allows.
//!
//! # Design
//!
//! The ruleset handles every access right the kernel's ABI knows (kernel doc
//! `Documentation/userspace-api/landlock.rst`), then grants:
//!
//! | where | rights |
//! |---|---|
//! | `/` (the sandbox's own tmpfs root, already read-only) | read files, list directories |
//! | runtime paths (`/usr`, `/bin`, …) and [`crate::WORKDIR`] | also execute |
//! | `/tmp`, `/dev/shm`, [`crate::WORKDIR`] | all file-system rights but execute (workdir: with execute) |
//! | `/dev` | write files (`/dev/null`, …) |
//!
//! From ABI 4 TCP `bind` and `connect` are handled with no port allowed, except `connect` to
//! the port of [`crate::Spec::loopback_listener`] when one is set; from ABI 6 signals
//! and abstract unix sockets are scoped to the sandbox's own landlock domain.
//!
//! # Limitations
//!
//! Landlock only restricts; it cannot hide paths (the mount namespace does that). UDP and
//! other socket kinds are not covered by landlock's network rights; the network namespace is
//! what contains them.

use std::path::PathBuf;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, NetPort, RestrictionStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};

use crate::{sys, WORKDIR};

/// Errors while enforcing landlock.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The kernel has no landlock (`ENOSYS`) or it is disabled (`EOPNOTSUPP`, not in `lsm=`).
    #[error("landlock is unavailable on this kernel: {0}")]
    Unavailable(#[source] std::io::Error),
    /// Building or applying the ruleset failed.
    #[error("landlock ruleset: {0}")]
    Ruleset(#[from] RulesetError),
    /// The kernel accepted the ruleset but enforces none of it.
    #[error("landlock ruleset is not enforced by this kernel")]
    NotEnforced,
}

/// The crate's ABI enum for a kernel ABI number (capped at the newest the crate knows).
fn crate_abi(version: u32) -> ABI {
    match version {
        0 | 1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        7 => ABI::V7,
        8 => ABI::V8,
        _ => ABI::V9,
    }
}

/// The running kernel's landlock ABI version.
///
/// # Errors
///
/// [`LandlockError::Unavailable`] with the kernel's reason.
pub fn kernel_abi() -> Result<u32, LandlockError> {
    sys::landlock_abi_version().map_err(LandlockError::Unavailable)
}

/// Restricts the calling process (and its future children) to the sandbox's file-system view,
/// denies TCP bind and connect (but connect to `connect_port`, the sandbox's loopback
/// listener, when given) and scopes signals and abstract unix sockets. Requires
/// `no_new_privs` or `CAP_SYS_ADMIN`. Returns the ABI version enforced.
///
/// # Errors
///
/// [`LandlockError`] when the kernel lacks landlock or does not enforce the ruleset: callers
/// must treat that as the layer missing, never run on silently.
pub fn restrict_self(
    runtime_paths: &[PathBuf],
    connect_port: Option<u16>,
) -> Result<u32, LandlockError> {
    let version = kernel_abi()?;
    let abi = crate_abi(version);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let read_exec = read | AccessFs::Execute;
    let scratch = AccessFs::from_all(abi) & !AccessFs::Execute;

    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
    if version >= 4 {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if version >= 6 {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    let mut created = ruleset.create()?;
    if let (Some(port), true) = (connect_port, version >= 4) {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    let status: RestrictionStatus = created
        .add_rules(path_beneath_rules(["/"], read))?
        .add_rules(path_beneath_rules(runtime_paths, read_exec))?
        .add_rules(path_beneath_rules(["/tmp", "/dev/shm"], scratch))?
        .add_rules(path_beneath_rules([WORKDIR], AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(["/dev"], read | AccessFs::WriteFile))?
        .restrict_self()?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(LandlockError::NotEnforced),
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_mapping_caps_at_newest_known() {
        assert_eq!(crate_abi(1), ABI::V1);
        assert_eq!(crate_abi(7), ABI::V7);
        assert_eq!(crate_abi(42), ABI::V9);
    }
}
