//! The L2 syscall policy as reviewed data: every allowed syscall with the reason it is allowed,
//! and the syscalls that must never be allowed.
//!
//! Base: Docker/moby's default profile (`profiles/seccomp/default.json`) for a container without
//! capabilities, minus everything Warden's issue requires to be denied (io_uring, ptrace and
//! process_vm_*, name_to_handle_at, clock/adjtimex, …) and a few Docker allows that nothing we
//! support needs (`modify_ldt`, `fanotify_mark`, `remap_file_pages`, …), plus what the supported
//! runtimes need and Docker gates behind CAP_SYS_NICE (`get_mempolicy`, `mbind`,
//! `set_mempolicy`: numpy's OpenBLAS) and newer calls (`fchmodat2`, futex2, `map_shadow_stack`,
//! `mseal`). 32-bit compat names (`chown32`, `fcntl64`, …) are left out: the filter kills
//! non-native ABIs.
//!
//! Reviewing a change: an entry needs a `why` that says what breaks without it, and why allowing
//! it gives the program nothing it could not do otherwise (or what else confines it). Names that
//! libseccomp or the running architecture does not know are skipped when the filter is built.

use super::{ArgCmp, ArgRule, SyscallRule};

/// Namespace-creating `clone` flags: a program may fork and start threads, never enter new
/// namespaces (CLONE_NEWTIME only exists for `clone3`/`unshare`, both denied).
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

const AF_UNIX: u64 = libc::AF_UNIX as u64;
const AF_INET: u64 = libc::AF_INET as u64;
const AF_INET6: u64 = libc::AF_INET6 as u64;
const AF_NETLINK: u64 = libc::AF_NETLINK as u64;
const NETLINK_ROUTE: u64 = libc::NETLINK_ROUTE as u64;
/// `socket(2)`'s type argument carries SOCK_NONBLOCK / SOCK_CLOEXEC above the low nibble.
const SOCK_TYPE_MASK: u64 = 0xf;
const SOCK_STREAM: u64 = libc::SOCK_STREAM as u64;
const SOCK_DGRAM: u64 = libc::SOCK_DGRAM as u64;
const IPPROTO_IP: u64 = libc::IPPROTO_IP as u64;
const IPPROTO_TCP: u64 = libc::IPPROTO_TCP as u64;
const IPPROTO_UDP: u64 = libc::IPPROTO_UDP as u64;

/// `socket(family, type, protocol)` alternatives that are allowed (any one of them).
///
/// Internet sockets are limited to TCP and UDP with the protocol left to the kernel (0) or named
/// (getaddrinfo returns 6/17 and Python passes them on). Other protocols of the same types
/// (SCTP, MPTCP, UDP-Lite, ICMP "ping" sockets) are denied: nothing supported needs them, and
/// SCTP and friends make the kernel autoload rarely used protocol modules, a recurring source
/// of kernel bugs. Each alternative compares each argument at most once: libseccomp rejects two
/// comparisons of one argument in one rule.
const SOCKET_ALTERNATIVES: &[&[ArgCmp]] = &[
    &[ArgCmp::eq(0, AF_UNIX)],
    &[
        ArgCmp::eq(0, AF_INET),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_STREAM),
        ArgCmp::eq(2, IPPROTO_IP),
    ],
    &[
        ArgCmp::eq(0, AF_INET),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_STREAM),
        ArgCmp::eq(2, IPPROTO_TCP),
    ],
    &[
        ArgCmp::eq(0, AF_INET),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_DGRAM),
        ArgCmp::eq(2, IPPROTO_IP),
    ],
    &[
        ArgCmp::eq(0, AF_INET),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_DGRAM),
        ArgCmp::eq(2, IPPROTO_UDP),
    ],
    &[
        ArgCmp::eq(0, AF_INET6),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_STREAM),
        ArgCmp::eq(2, IPPROTO_IP),
    ],
    &[
        ArgCmp::eq(0, AF_INET6),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_STREAM),
        ArgCmp::eq(2, IPPROTO_TCP),
    ],
    &[
        ArgCmp::eq(0, AF_INET6),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_DGRAM),
        ArgCmp::eq(2, IPPROTO_IP),
    ],
    &[
        ArgCmp::eq(0, AF_INET6),
        ArgCmp::masked_eq(1, SOCK_TYPE_MASK, SOCK_DGRAM),
        ArgCmp::eq(2, IPPROTO_UDP),
    ],
    &[ArgCmp::eq(0, AF_NETLINK), ArgCmp::eq(2, NETLINK_ROUTE)],
];

/// `personality(2)` values allowed: PER_LINUX (0), PER_LINUX32 (8) and 0xffffffff (query only),
/// the list. Docker also allows UNAME26 (0x20000) and PER_LINUX32|UNAME26 (0x20008),
/// which only change what `uname` reports; they are left out until something needs them.
/// ADDR_NO_RANDOMIZE (0x40000), READ_IMPLIES_EXEC and the other flags that weaken the process
/// stay denied.
/// `MAP_HUGETLB` (mmap(2)), `MFD_HUGETLB` (memfd_create(2)) and `SHM_HUGETLB` (shmget(2)):
/// hugetlb pages come from the host's reserved pool (`vm.nr_hugepages`) and are not charged to
/// a v1 memory cgroup, so a sandbox limited to 16 MiB could hold the whole pool (measured: 128
/// MiB) and leave the host's databases or DPDK without it. The mask tests the flag bit only.
const MAP_HUGETLB: u64 = libc::MAP_HUGETLB as u64;
const MFD_HUGETLB: u64 = libc::MFD_HUGETLB as u64;
const SHM_HUGETLB: u64 = libc::SHM_HUGETLB as u64;

const PERSONALITY_ALTERNATIVES: &[&[ArgCmp]] = &[
    &[ArgCmp::eq(0, 0x0)],
    &[ArgCmp::eq(0, 0x8)],
    &[ArgCmp::eq(0, 0xffff_ffff)],
];

const fn any(name: &'static str, why: &'static str) -> SyscallRule {
    SyscallRule {
        name,
        why,
        args: ArgRule::Any,
    }
}

/// The allowlist. Everything not listed (and every listed call whose argument rule does not
/// match) goes to the filter's default action: user notification, answered EPERM and counted.
#[rustfmt::skip]
pub static ALLOWED: &[SyscallRule] = &[
    // --- Argument-filtered rules ---------------------------------------------------------
    SyscallRule {
        name: "clone",
        why: "fork, vfork-style spawn and threads; any namespace flag is denied (no nested namespaces)",
        args: ArgRule::Only(&[&[ArgCmp::masked_eq(0, CLONE_NS_FLAGS, 0)]]),
    },
    SyscallRule {
        name: "clone3",
        why: "flags are in memory and cannot be checked: ENOSYS (not counted) makes glibc fall back to clone(2), as Docker does",
        args: ArgRule::Errno(libc::ENOSYS),
    },
    SyscallRule {
        name: "socket",
        why: "unix sockets; TCP/UDP over IPv4/IPv6 (the netns has only lo); NETLINK_ROUTE for getaddrinfo/getifaddrs; no raw or packet sockets",
        args: ArgRule::Only(SOCKET_ALTERNATIVES),
    },
    SyscallRule {
        name: "personality",
        why: "queried by runtimes and setarch; only PER_LINUX, PER_LINUX32 and the query, never ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC",
        args: ArgRule::Only(PERSONALITY_ALTERNATIVES),
    },

    // --- Process lifecycle ---------------------------------------------------------------
    any("execve", "run programs (the sandbox's whole point; the filter and no_new_privs persist across exec)"),
    any("execveat", "fexecve(3) and exec of an fd; same as execve"),
    any("fork", "process creation without flags; same as clone without namespace flags"),
    any("vfork", "posix_spawn/subprocess fast path; no namespace flags possible"),
    any("exit", "thread exit"),
    any("exit_group", "process exit"),
    any("wait4", "reap children (shells, subprocess, multiprocessing)"),
    any("waitid", "reap children (Python os.waitid, libuv)"),
    any("set_tid_address", "glibc thread startup"),
    any("set_robust_list", "glibc thread startup (robust futexes)"),
    any("rseq", "glibc 2.35+ registers restartable sequences on every thread"),
    any("arch_prctl", "x86_64 thread-local storage (FS/GS base) set up by every program"),
    any("prctl", "thread names, PR_SET_PDEATHSIG, PR_GET_* queries; the dangerous options need capabilities (all dropped) or only restrict further (no_new_privs is set and cannot be cleared)"),
    any("seccomp", "a program may add stricter filters; a second NEW_LISTENER filter fails with EBUSY because ours has a listener, so it cannot answer (and bypass) our notifications"),
    any("landlock_create_ruleset", "a program may restrict itself further (landlock only ever narrows access)"),
    any("landlock_add_rule", "a program may restrict itself further (landlock only ever narrows access)"),
    any("landlock_restrict_self", "a program may restrict itself further (landlock only ever narrows access)"),
    any("capget", "libcap and Python/Node query capabilities (all empty)"),
    any("capset", "can only drop capabilities, and there are none left to drop"),

    // --- Identity and process attributes -------------------------------------------------
    any("getpid", "process identity"),
    any("getppid", "process identity"),
    any("gettid", "thread identity (glibc, OpenBLAS, V8)"),
    any("getuid", "identity queries"),
    any("geteuid", "identity queries"),
    any("getgid", "identity queries"),
    any("getegid", "identity queries"),
    any("getresuid", "identity queries"),
    any("getresgid", "identity queries"),
    any("getgroups", "identity queries"),
    any("setuid", "without capabilities only switches among the process's own ids"),
    any("setgid", "without capabilities only switches among the process's own ids"),
    any("setreuid", "without capabilities only switches among the process's own ids"),
    any("setregid", "without capabilities only switches among the process's own ids"),
    any("setresuid", "without capabilities only switches among the process's own ids"),
    any("setresgid", "without capabilities only switches among the process's own ids"),
    any("setfsuid", "without capabilities only switches among the process's own ids"),
    any("setfsgid", "without capabilities only switches among the process's own ids"),
    any("setgroups", "needs CAP_SETGID (dropped); allowed so callers get the kernel's EPERM, not a violation"),
    any("getpgid", "job control (bash)"),
    any("getpgrp", "job control (bash)"),
    any("setpgid", "job control (bash, subprocess process_group)"),
    any("getsid", "session queries"),
    any("setsid", "daemon-style children, subprocess start_new_session"),
    any("getpriority", "nice value queries"),
    any("setpriority", "can only lower priority without CAP_SYS_NICE"),
    any("ioprio_get", "I/O priority queries"),
    any("ioprio_set", "can only lower I/O priority of own processes without capabilities"),
    any("getrlimit", "resource limit queries"),
    any("setrlimit", "can only lower limits without CAP_SYS_RESOURCE"),
    any("prlimit64", "glibc's getrlimit/setrlimit; raising still needs CAP_SYS_RESOURCE"),
    any("getrusage", "resource usage (time, resource module)"),
    any("times", "process times"),
    any("umask", "file creation mask"),
    any("uname", "system identification (hostname is the sandbox's own UTS namespace)"),
    any("sysinfo", "memory/uptime queries (Node os.totalmem, Python os.sysconf fallbacks)"),
    any("getcpu", "current CPU (glibc sched_getcpu, OpenBLAS)"),
    any("getrandom", "entropy for hashing seeds, uuid, TLS"),

    // --- Scheduling ----------------------------------------------------------------------
    any("sched_yield", "spin-then-yield loops (OpenBLAS, V8)"),
    any("sched_getaffinity", "CPU count (os.cpu_count alternatives, OpenBLAS, libuv); the cgroup bounds real usage"),
    any("sched_setaffinity", "thread pinning by OpenBLAS/numpy; limited to the cgroup's cpuset"),
    any("sched_getparam", "scheduler queries"),
    any("sched_setparam", "real-time priorities need CAP_SYS_NICE/RLIMIT_RTPRIO (both zero)"),
    any("sched_getscheduler", "scheduler queries"),
    any("sched_setscheduler", "real-time policies need CAP_SYS_NICE/RLIMIT_RTPRIO (both zero)"),
    any("sched_getattr", "scheduler queries"),
    any("sched_setattr", "real-time policies need CAP_SYS_NICE/RLIMIT_RTPRIO (both zero)"),
    any("sched_get_priority_max", "scheduler queries"),
    any("sched_get_priority_min", "scheduler queries"),
    any("sched_rr_get_interval", "scheduler queries"),

    // --- Signals -------------------------------------------------------------------------
    any("rt_sigaction", "signal handlers"),
    any("rt_sigprocmask", "signal masks"),
    any("rt_sigreturn", "return from signal handlers"),
    any("rt_sigpending", "pending signal queries"),
    any("rt_sigsuspend", "wait for signals (bash)"),
    any("rt_sigtimedwait", "wait for signals (Python signal.sigtimedwait, libuv)"),
    any("rt_sigqueueinfo", "queued signals; confined like kill"),
    any("rt_tgsigqueueinfo", "queued signals to threads; confined like kill"),
    any("sigaltstack", "alternate signal stacks (Python faulthandler, V8, Rust runtime)"),
    any("kill", "signal processes; the PID namespace and landlock signal scoping confine the targets to the sandbox"),
    any("tkill", "signal threads; confined like kill"),
    any("tgkill", "signal threads (raise, pthread_kill); confined like kill"),
    any("pidfd_send_signal", "signal via pidfd; confined like kill"),
    any("pidfd_open", "pidfds for waiting and signalling (Python os.pidfd_open, subprocess); confined by the PID namespace"),
    any("pause", "wait for a signal"),
    any("alarm", "SIGALRM timers (Python signal.alarm, timeouts in shell scripts)"),
    any("signalfd", "signals as fds"),
    any("signalfd4", "signals as fds (libuv, systemd-style loops)"),
    any("restart_syscall", "kernel-internal restart of interrupted sleeps"),

    // --- Memory --------------------------------------------------------------------------
    any("brk", "heap"),
    SyscallRule {
        name: "mmap",
        why: "memory mappings (allocators, loader, shared memory); not MAP_HUGETLB, whose pages escape the memory cgroup",
        args: ArgRule::Only(&[&[ArgCmp::masked_eq(3, MAP_HUGETLB, 0)]]),
    },
    any("munmap", "memory mappings"),
    any("mremap", "memory mappings (realloc of large blocks)"),
    any("mprotect", "loader and JITs (V8) change page protections"),
    any("madvise", "allocator hints (glibc, jemalloc, V8)"),
    any("mincore", "page residency queries (allocators); only the caller's own mappings"),
    any("msync", "flush file mappings"),
    any("mlock", "bounded by RLIMIT_MEMLOCK and the memory cgroup"),
    any("mlock2", "bounded by RLIMIT_MEMLOCK and the memory cgroup"),
    any("munlock", "undo mlock"),
    any("mlockall", "bounded by RLIMIT_MEMLOCK and the memory cgroup"),
    any("munlockall", "undo mlockall"),
    any("membarrier", "process-wide memory barriers (V8, userspace RCU)"),
    SyscallRule {
        name: "memfd_create",
        why: "anonymous files (V8, Python os.memfd_create, multiprocessing on some setups); not MFD_HUGETLB (see mmap)",
        args: ArgRule::Only(&[&[ArgCmp::masked_eq(1, MFD_HUGETLB, 0)]]),
    },
    any("pkey_alloc", "memory protection keys for the caller's own pages (V8 uses them when the CPU has PKU)"),
    any("pkey_free", "memory protection keys"),
    any("pkey_mprotect", "memory protection keys"),
    any("get_mempolicy", "NUMA policy queries by OpenBLAS/numpy and libnuma; read-only (Docker gates it behind CAP_SYS_NICE)"),
    any("mbind", "NUMA placement of the caller's own mappings (OpenBLAS binds its buffers, twice per numpy import); moving other processes' pages needs CAP_SYS_NICE"),
    any("set_mempolicy", "NUMA policy of the calling thread (libnuma, OpenBLAS); bounded by the cgroup's cpuset.mems"),
    any("map_shadow_stack", "CET shadow stacks for new threads when glibc enables them; maps only the caller's memory"),
    any("mseal", "seals the caller's own mappings (newer glibc); only ever restricts"),

    // --- Synchronisation and event loops -------------------------------------------------
    any("futex", "locks, condition variables, thread joins"),
    any("futex_waitv", "vectored futex wait"),
    any("futex_wake", "futex2 API"),
    any("futex_wait", "futex2 API"),
    any("futex_requeue", "futex2 API"),
    any("poll", "event loops"),
    any("ppoll", "event loops"),
    any("select", "event loops"),
    any("pselect6", "event loops"),
    any("epoll_create", "event loops (libuv, asyncio)"),
    any("epoll_create1", "event loops (libuv, asyncio)"),
    any("epoll_ctl", "event loops (libuv, asyncio)"),
    any("epoll_wait", "event loops (libuv, asyncio)"),
    any("epoll_pwait", "event loops (libuv, asyncio)"),
    any("epoll_pwait2", "event loops with ns timeouts"),
    any("eventfd", "event notification fds"),
    any("eventfd2", "event notification fds (libuv, V8 platform)"),

    // --- Time ----------------------------------------------------------------------------
    any("clock_gettime", "time queries (vDSO fallback)"),
    any("clock_getres", "clock resolution (Python time.get_clock_info)"),
    any("clock_nanosleep", "sleeping"),
    any("nanosleep", "sleeping"),
    any("gettimeofday", "time queries (vDSO fallback)"),
    any("time", "time queries (vDSO fallback)"),
    any("getitimer", "interval timers"),
    any("setitimer", "interval timers (Python signal.setitimer)"),
    any("timer_create", "POSIX timers"),
    any("timer_settime", "POSIX timers"),
    any("timer_gettime", "POSIX timers"),
    any("timer_getoverrun", "POSIX timers"),
    any("timer_delete", "POSIX timers"),
    any("timerfd_create", "timers as fds (libuv, systemd-style loops)"),
    any("timerfd_settime", "timers as fds"),
    any("timerfd_gettime", "timers as fds"),

    // --- File descriptors and I/O --------------------------------------------------------
    any("read", "I/O"),
    any("write", "I/O"),
    any("readv", "I/O"),
    any("writev", "I/O"),
    any("pread64", "I/O"),
    any("pwrite64", "I/O"),
    any("preadv", "I/O"),
    any("pwritev", "I/O"),
    any("preadv2", "I/O"),
    any("pwritev2", "I/O"),
    any("open", "open files; the mount namespace and landlock decide what is reachable"),
    any("openat", "open files; the mount namespace and landlock decide what is reachable"),
    any("openat2", "open files with RESOLVE_* restrictions; only narrows openat"),
    any("creat", "create files"),
    any("close", "close fds"),
    any("close_range", "close inherited fds (Python subprocess, systemd-style spawners)"),
    any("dup", "fd duplication"),
    any("dup2", "fd duplication (shell redirections)"),
    any("dup3", "fd duplication"),
    any("fcntl", "fd flags, locks, pipe sizes"),
    any("flock", "advisory locks (pip, sqlite, libuuid's clock file)"),
    any("ioctl", "terminal and fd controls (FIONREAD, TCGETS on pipes, FICLONE); no terminal is handed to the sandbox, so TIOCSTI has no target"),
    any("lseek", "file offsets"),
    any("pipe", "pipes (shell pipelines)"),
    any("pipe2", "pipes (subprocess, multiprocessing)"),
    any("splice", "zero-copy pipe I/O (coreutils cat, Node)"),
    any("tee", "zero-copy pipe I/O"),
    any("vmsplice", "zero-copy pipe I/O"),
    any("sendfile", "zero-copy file I/O (coreutils, Node)"),
    any("copy_file_range", "in-kernel file copies (coreutils cp, Python shutil)"),
    any("fsync", "durability"),
    any("fdatasync", "durability"),
    SyscallRule {
        name: "sync",
        why: "a no-op that succeeds (ERRNO 0, the kernel never runs the call): sync(2) writes back every file system of the host and sleeps uninterruptibly meanwhile, past the wall-clock timeout (measured: 1.5 s against a 0.3 s limit with 1.5 GB dirty); the sandbox's own writes are on tmpfs, where it means nothing",
        args: ArgRule::Errno(0),
    },
    SyscallRule {
        name: "syncfs",
        why: "a no-op that succeeds, as sync: on the read-only /usr bind it flushes the host's root file system",
        args: ArgRule::Errno(0),
    },
    any("sync_file_range", "durability hints"),
    any("fallocate", "preallocation; bounded by the tmpfs sizes"),
    any("ftruncate", "file size changes"),
    any("truncate", "file size changes"),
    any("fadvise64", "readahead hints"),
    any("readahead", "readahead hints"),
    SyscallRule {
        name: "io_setup",
        why: "ENOSYS (not counted), as for clone3: AIO contexts are bounded only by the host-wide fs.aio-max-nr, which one sandbox could use up for every host AIO user (databases, QEMU); libaio users fall back to threads",
        args: ArgRule::Errno(libc::ENOSYS),
    },
    any("io_destroy", "Linux native AIO; without io_setup there is no context to use (EINVAL)"),
    any("io_submit", "Linux native AIO; without io_setup there is no context to use (EINVAL)"),
    any("io_cancel", "Linux native AIO; without io_setup there is no context to use (EINVAL)"),
    any("io_getevents", "Linux native AIO; without io_setup there is no context to use (EINVAL)"),
    any("io_pgetevents", "Linux native AIO; without io_setup there is no context to use (EINVAL)"),

    // --- File system metadata ------------------------------------------------------------
    any("stat", "metadata"),
    any("fstat", "metadata"),
    any("lstat", "metadata"),
    any("newfstatat", "metadata"),
    any("statx", "metadata (coreutils, Node)"),
    any("statfs", "file system info (df, Python os.statvfs)"),
    any("fstatfs", "file system info (glibc, Node)"),
    any("access", "permission checks"),
    any("faccessat", "permission checks"),
    any("faccessat2", "permission checks (glibc 2.33+, bash test -x)"),
    any("readlink", "symlinks"),
    any("readlinkat", "symlinks"),
    any("getdents", "directory listing"),
    any("getdents64", "directory listing"),
    any("getcwd", "working directory"),
    any("chdir", "working directory"),
    any("fchdir", "working directory"),
    any("mkdir", "create directories"),
    any("mkdirat", "create directories"),
    any("rmdir", "remove directories"),
    any("rename", "rename files"),
    any("renameat", "rename files"),
    any("renameat2", "rename files (mv, Python os.replace)"),
    any("link", "hard links"),
    any("linkat", "hard links"),
    any("symlink", "symlinks"),
    any("symlinkat", "symlinks"),
    any("unlink", "remove files"),
    any("unlinkat", "remove files"),
    any("chmod", "permissions of own files"),
    any("fchmod", "permissions of own files"),
    any("fchmodat", "permissions of own files"),
    any("fchmodat2", "permissions of own files (glibc 2.39+ lchmod/fchmodat)"),
    any("chown", "without CAP_CHOWN only to the owner's own groups"),
    any("fchown", "without CAP_CHOWN only to the owner's own groups"),
    any("lchown", "without CAP_CHOWN only to the owner's own groups"),
    any("fchownat", "without CAP_CHOWN only to the owner's own groups"),
    any("utime", "timestamps"),
    any("utimes", "timestamps"),
    any("utimensat", "timestamps (touch, Python os.utime)"),
    any("futimesat", "timestamps"),
    any("mknod", "FIFOs and sockets; device nodes need CAP_MKNOD (dropped)"),
    any("mknodat", "FIFOs (mkfifo) and sockets; device nodes need CAP_MKNOD (dropped)"),
    any("getxattr", "extended attributes (ls -l ACL marker, Python os.getxattr)"),
    any("lgetxattr", "extended attributes (ls -l ACL marker)"),
    any("fgetxattr", "extended attributes"),
    any("listxattr", "extended attributes"),
    any("llistxattr", "extended attributes"),
    any("flistxattr", "extended attributes"),
    any("setxattr", "user.* extended attributes on own files; trusted/security need capabilities"),
    any("lsetxattr", "user.* extended attributes on own files"),
    any("fsetxattr", "user.* extended attributes on own files"),
    any("removexattr", "extended attributes on own files"),
    any("lremovexattr", "extended attributes on own files"),
    any("fremovexattr", "extended attributes on own files"),

    // --- Sockets (socket itself is argument-filtered above) ------------------------------
    any("socketpair", "connected unix socket pairs (multiprocessing, libuv, subprocess)"),
    any("bind", "servers on lo or unix sockets; landlock and the empty netns confine TCP"),
    any("listen", "servers on lo or unix sockets"),
    any("accept", "servers on lo or unix sockets"),
    any("accept4", "servers on lo or unix sockets"),
    any("connect", "clients; the netns has only lo (or the policy proxy)"),
    any("getsockname", "socket addresses"),
    any("getpeername", "socket addresses"),
    any("getsockopt", "socket options"),
    any("setsockopt", "socket options; privileged ones need CAP_NET_ADMIN/CAP_NET_RAW (dropped)"),
    any("sendto", "socket I/O"),
    any("recvfrom", "socket I/O"),
    any("sendmsg", "socket I/O (fd passing in multiprocessing)"),
    any("recvmsg", "socket I/O (netlink replies, fd passing)"),
    any("sendmmsg", "socket I/O (glibc resolver sends A and AAAA queries together)"),
    any("recvmmsg", "socket I/O"),
    any("shutdown", "socket half-close"),

    // --- IPC (confined by the sandbox's IPC namespace) -----------------------------------
    SyscallRule {
        name: "shmget",
        why: "System V shared memory, private to the IPC namespace; not SHM_HUGETLB (see mmap)",
        args: ArgRule::Only(&[&[ArgCmp::masked_eq(2, SHM_HUGETLB, 0)]]),
    },
    any("shmat", "System V shared memory, private to the IPC namespace"),
    any("shmdt", "System V shared memory, private to the IPC namespace"),
    any("shmctl", "System V shared memory, private to the IPC namespace"),
    any("semget", "System V semaphores, private to the IPC namespace"),
    any("semop", "System V semaphores, private to the IPC namespace"),
    any("semtimedop", "System V semaphores, private to the IPC namespace"),
    any("semctl", "System V semaphores, private to the IPC namespace"),
    any("msgget", "System V message queues, private to the IPC namespace"),
    any("msgsnd", "System V message queues, private to the IPC namespace"),
    any("msgrcv", "System V message queues, private to the IPC namespace"),
    any("msgctl", "System V message queues, private to the IPC namespace"),
    any("mq_open", "POSIX message queues, private to the IPC namespace"),
    any("mq_unlink", "POSIX message queues, private to the IPC namespace"),
    any("mq_timedsend", "POSIX message queues, private to the IPC namespace"),
    any("mq_timedreceive", "POSIX message queues, private to the IPC namespace"),
    any("mq_notify", "POSIX message queues, private to the IPC namespace"),
    any("mq_getsetattr", "POSIX message queues, private to the IPC namespace"),
];

/// Syscalls the policy must never allow: each reaches kernel attack surface or host state that
/// the other layers are not meant to be the only guard for. They fall to the default action
/// (EPERM, counted). The first part is the list; the rest are the same kinds of call
/// (mount API, fd theft, time, hardware, logs) that Docker also gates behind capabilities.
pub static MUST_DENY: &[&str] = &[
    // inotify: the read-only runtime is the host's /usr, so a watch there sees which files
    // other executions (and the host) open, and instances count against the host uid all
    // sandboxes share (red-team review). Programs that watch files get EPERM.
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    // Debugging other processes.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // Mounts and roots.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    // Namespaces (clone with namespace flags is denied by its argument rule).
    "unshare",
    "setns",
    // Kernel keyrings.
    "keyctl",
    "add_key",
    "request_key",
    // Kernel programmability and profiling.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Kernel and modules.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    // Host-wide state.
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    // Their arguments are in memory (struct timex), so a read-only call cannot be told apart.
    "clock_adjtime",
    "adjtimex",
    // File handles bypass path-based confinement.
    "open_by_handle_at",
    "name_to_handle_at",
    // Beyond the list: the new mount API.
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    // Beyond the list: fd theft and process comparison (ptrace-class).
    "pidfd_getfd",
    "kcmp",
    "process_madvise",
    // Beyond the list: hardware, logs, quotas, host names, terminals.
    "iopl",
    "ioperm",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "sethostname",
    "setdomainname",
    "vhangup",
    "lookup_dcookie",
    "fanotify_init",
];
