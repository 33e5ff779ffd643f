//! The seccomp policy's types and how it is compiled to a filter, shared by the library and
//! by `build.rs`, which compiles the policy to BPF at build time and embeds it (as firecracker
//! does): no execution pays for compiling it, and the program the kernel loads is fixed when
//! the binary is built. Only libseccomp and libc are used here, so that `build.rs` can include
//! this file.

use libseccomp::error::SeccompError as LibError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

#[path = "seccomp_policy.rs"]
mod policy;

pub use policy::{ALLOWED, MUST_DENY};

/// One allowlist entry: reviewed data with the reason it is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallRule {
    /// Syscall name as libseccomp knows it (skipped when unknown on the running architecture).
    pub name: &'static str,
    /// Why the sandbox allows it: what breaks without it, or what else confines it.
    pub why: &'static str,
    /// Which arguments are allowed.
    pub args: ArgRule,
}

/// The argument part of a [`SyscallRule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRule {
    /// Allowed whatever the arguments.
    Any,
    /// Allowed when at least one alternative matches; an alternative matches when all its
    /// comparisons hold. Each alternative becomes one libseccomp rule (rules are ORed), and may
    /// compare each argument at most once (libseccomp rejects two comparisons of one argument).
    Only(&'static [&'static [ArgCmp]]),
    /// Not allowed, but answered by the kernel with this errno without a notification (so not
    /// counted). For calls a libc probes and falls back from, like `clone3`.
    Errno(i32),
}

/// One comparison of a syscall argument: `(args[arg] & mask) == value` on the 64-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// Argument index, 0 to 5.
    pub arg: u32,
    /// Bits of the argument that are compared.
    pub mask: u64,
    /// Value the masked argument must equal.
    pub value: u64,
}

impl ArgCmp {
    /// `args[arg] == value`.
    pub const fn eq(arg: u32, value: u64) -> Self {
        ArgCmp {
            arg,
            mask: u64::MAX,
            value,
        }
    }

    /// `(args[arg] & mask) == value`.
    pub const fn masked_eq(arg: u32, mask: u64, value: u64) -> Self {
        ArgCmp { arg, mask, value }
    }

    /// The libseccomp comparison.
    pub fn to_libseccomp(self) -> ScmpArgCompare {
        if self.mask == u64::MAX {
            ScmpArgCompare::new(self.arg, ScmpCompareOp::Equal, self.value)
        } else {
            ScmpArgCompare::new(self.arg, ScmpCompareOp::MaskedEqual(self.mask), self.value)
        }
    }
}

/// Why the policy could not be compiled.
#[derive(Debug)]
pub enum BuildError {
    /// The allowlist names a syscall that [`MUST_DENY`] lists.
    PolicyConflict(&'static str),
    /// libseccomp could not create a filter context.
    NewFilter(LibError),
    /// A filter attribute could not be set.
    SetAttribute {
        /// Which attribute.
        attr: &'static str,
        /// The cause.
        source: LibError,
    },
    /// The architecture could not be added to or removed from the filter.
    Arch(LibError),
    /// A rule could not be added.
    AddRule {
        /// The syscall.
        syscall: &'static str,
        /// The cause.
        source: LibError,
    },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::PolicyConflict(name) => {
                write!(f, "seccomp policy allows `{name}`, which it must deny")
            }
            BuildError::NewFilter(_) => write!(f, "cannot create a seccomp filter context"),
            BuildError::SetAttribute { attr, .. } => {
                write!(f, "cannot set the seccomp filter's {attr}")
            }
            BuildError::Arch(_) => write!(f, "cannot set the seccomp filter's architecture"),
            BuildError::AddRule { syscall, .. } => {
                write!(f, "cannot add the seccomp rule for `{syscall}`")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::PolicyConflict(_) => None,
            BuildError::NewFilter(e) | BuildError::Arch(e) => Some(e),
            BuildError::SetAttribute { source, .. } | BuildError::AddRule { source, .. } => {
                Some(source)
            }
        }
    }
}

/// Builds the filter for `arch` from [`ALLOWED`]: default action user notification, bad-arch
/// action kill process, allowlisted calls allowed (or matched on their arguments), `Errno`
/// rules answered by the kernel. Names unknown to libseccomp or absent on `arch` are skipped.
///
/// # Errors
///
/// [`BuildError::PolicyConflict`] if the table allows a [`MUST_DENY`] name; libseccomp failures
/// as the variant of the failing step.
pub fn build_filter(arch: ScmpArch) -> Result<ScmpFilterContext, BuildError> {
    if let Some(rule) = ALLOWED.iter().find(|r| MUST_DENY.contains(&r.name)) {
        return Err(BuildError::PolicyConflict(rule.name));
    }
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(BuildError::NewFilter)?;
    let native = ScmpArch::native();
    if arch != native {
        ctx.add_arch(arch).map_err(BuildError::Arch)?;
        ctx.remove_arch(native).map_err(BuildError::Arch)?;
    }
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .map_err(|source| BuildError::SetAttribute {
            attr: "bad-arch action",
            source,
        })?;
    // Binary-tree dispatch: a few hundred rules would otherwise be a linear scan per syscall.
    ctx.set_ctl_optimize(2)
        .map_err(|source| BuildError::SetAttribute {
            attr: "optimize",
            source,
        })?;
    for rule in ALLOWED {
        let Some(syscall) = resolve(rule.name, arch) else {
            continue;
        };
        let add = |ctx: &mut ScmpFilterContext, action, cmps: &[ScmpArgCompare]| {
            let added = if cmps.is_empty() {
                ctx.add_rule(action, syscall)
            } else {
                ctx.add_rule_conditional(action, syscall, cmps)
            };
            added.map(drop).map_err(|source| BuildError::AddRule {
                syscall: rule.name,
                source,
            })
        };
        match rule.args {
            ArgRule::Any => add(&mut ctx, ScmpAction::Allow, &[])?,
            ArgRule::Errno(errno) => add(&mut ctx, ScmpAction::Errno(errno), &[])?,
            ArgRule::Only(alternatives) => {
                for alternative in alternatives {
                    let cmps: Vec<ScmpArgCompare> =
                        alternative.iter().map(|c| c.to_libseccomp()).collect();
                    add(&mut ctx, ScmpAction::Allow, &cmps)?;
                }
            }
        }
    }
    Ok(ctx)
}

/// The syscall for `name` on `arch`, or `None` when libseccomp does not know the name or it
/// does not exist there (libseccomp gives negative pseudo-numbers for those).
pub fn resolve(name: &str, arch: ScmpArch) -> Option<ScmpSyscall> {
    let syscall = ScmpSyscall::from_name_by_arch(name, arch).ok()?;
    (syscall.as_raw_syscall() >= 0).then_some(syscall)
}
