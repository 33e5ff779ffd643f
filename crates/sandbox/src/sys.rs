//! Every raw system call of the crate, each wrapped once.
//!
//! This is the only module with `unsafe`. Each wrapper is a small function that returns
//! `io::Result` and carries a `SAFETY:` comment; callers name the operation in their own error.
//! Functions marked *child side* are only called in the single-threaded init process (a fresh
//! exec of the warden binary, see [`crate::init`]), where `fork` and credential changes are sound.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// Converts a `-1`-on-error libc return into `io::Result`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains NUL"))
}

/// `unshare(2)` with `CLONE_NEW*` flags. *Child side.*
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes a plain integer and touches no caller memory.
    check(unsafe { libc::unshare(flags) }.into()).map(drop)
}

/// `mount(2)`. `source`, `fstype` and `data` may be absent. *Child side.*
pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstring).transpose()?;
    let target = cstring(target)?;
    let fstype = fstype.map(cstring).transpose()?;
    let data = data.map(cstring).transpose()?;
    let opt = |c: &Option<CString>| c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::mount(
            opt(&source),
            target.as_ptr(),
            opt(&fstype),
            flags,
            opt(&data).cast(),
        )
    };
    check(ret.into()).map(drop)
}

/// `umount2(2)`. *Child side.*
pub fn umount2(target: &str, flags: libc::c_int) -> io::Result<()> {
    let target = cstring(target)?;
    // SAFETY: target is a valid NUL-terminated string for the duration of the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }.into()).map(drop)
}

/// `pivot_root(2)` (no libc wrapper exists). *Child side.*
pub fn pivot_root(new_root: &str, put_old: &str) -> io::Result<()> {
    let new_root = cstring(new_root)?;
    let put_old = cstring(put_old)?;
    // SAFETY: both arguments are valid NUL-terminated strings for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// `statvfs(3)` mount flags (`ST_RDONLY`, `ST_NOSUID`, …) of the file system holding `path`.
pub fn statvfs_flags(path: &str) -> io::Result<libc::c_ulong> {
    let path = cstring(path)?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: path is NUL-terminated and buf points to writable memory of the right size.
    check(unsafe { libc::statvfs(path.as_ptr(), buf.as_mut_ptr()) }.into())?;
    // SAFETY: statvfs succeeded, so it initialised the whole struct (and it was zeroed before).
    Ok(unsafe { buf.assume_init() }.f_flag)
}

/// `sethostname(2)` in the current UTS namespace. *Child side.*
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`, valid for the call.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into()).map(drop)
}

/// Sets `IFF_UP` on the loopback interface of the current network namespace through
/// `SIOCSIFFLAGS` (netdevice(7)). *Child side.*
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket takes integers only.
    let fd = check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }.into(),
    )?;
    // SAFETY: fd was just returned by socket and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru of the valid ifreq we own.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) }.into())?;
    // SAFETY: the kernel filled ifru_flags in the previous call; the union field is a c_short.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the valid ifreq we own.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }.into()).map(drop)
}

/// `setgroups(2)` with an empty list: drops every supplementary group. *Child side.*
pub fn clear_groups() -> io::Result<()> {
    // SAFETY: size 0 with a null list is the documented way to clear the groups.
    check(unsafe { libc::setgroups(0, ptr::null()) }.into()).map(drop)
}

/// `setresgid(2)` then `setresuid(2)` to one id. *Child side* (single-threaded, so the
/// glibc per-thread broadcast is not involved).
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresgid(gid, gid, gid) }.into())?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setresuid(uid, uid, uid) }.into()).map(drop)
}

/// `prctl(2)` with integer arguments.
pub fn prctl(
    option: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
) -> io::Result<libc::c_int> {
    // SAFETY: the options used by this crate take integer arguments only.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(ret.into()).map(|r| r as libc::c_int)
}

/// Empties the effective, permitted and inheritable capability sets with `capset(2)`
/// (`_LINUX_CAPABILITY_VERSION_3`). *Child side.*
pub fn clear_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data structs are the layout capset(2) expects for version 3.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) }).map(drop)
}

/// `setrlimit(2)` with soft = hard = `value`. *Child side.*
pub fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: limit is a valid rlimit struct for the duration of the call.
    check(unsafe { libc::setrlimit(resource, &limit) }.into()).map(drop)
}

/// `close_range(2)`: closes every fd from `first` up. *Child side.*
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments only; no fd owned by Rust objects above `first` is used again.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    })
    .map(drop)
}

/// Sets or clears `FD_CLOEXEC` on a raw fd.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer argument.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) }.into())? as libc::c_int;
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: F_SETFD takes an integer argument.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }.into()).map(drop)
}

/// Result of [`fork`].
pub enum Fork {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `fork(2)`. *Child side only*: the init process is single-threaded, so the child may do
/// anything afterwards (no lock can be held by a thread that does not exist in the child).
pub fn fork() -> io::Result<Fork> {
    // SAFETY: called only from the single-threaded init process (see module docs).
    match check(unsafe { libc::fork() }.into())? {
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as libc::pid_t)),
    }
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(ptr::null());
    // SAFETY: path and every element are NUL-terminated strings that outlive the call, and both
    // arrays are null-terminated.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `_exit(2)`: leaves without running destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// `wait4(2)` on `pid` (or -1 for any child), blocking, retrying on EINTR. Returns the pid and
/// status, plus the resource usage of the child and its waited-for descendants.
pub fn wait4(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<(libc::pid_t, WaitStatus, libc::rusage)>> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain old data; all-zero is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and usage point to writable memory we own.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if ret == 0 {
            return Ok(None);
        }
        let ws = if libc::WIFEXITED(status) {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return Ok(Some((ret, ws, usage)));
    }
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signals the exact process the pidfd refers to (no pid reuse race).
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer and null-pointer arguments only; the fd is borrowed for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

/// `poll(2)` on fds for `POLLIN`; returns the `revents` of each, or all zero on timeout.
pub fn poll_in(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<libc::c_short>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pollfd of the length passed.
    let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if ret == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![0; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds.iter().map(|p| p.revents).collect())
}

/// Blocks `signals` for the calling thread and returns the previous mask.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise and modify it in place.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(old)
    }
}

/// Restores a signal mask saved by [`block_signals`].
pub fn set_signal_mask(mask: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: mask is a valid sigset_t; the old-mask pointer may be null.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// `sigwaitinfo(2)` on `signals` (which must be blocked); returns the signal number.
pub fn wait_signal(signals: &[libc::c_int]) -> io::Result<libc::c_int> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; siginfo may be null.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        loop {
            let ret = libc::sigwaitinfo(&set, ptr::null_mut());
            if ret == -1 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            return Ok(ret);
        }
    }
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::kill(pid, signal) }.into()).map(drop)
}

/// Landlock ABI version of the running kernel (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`), or the error (ENOSYS: not built, EOPNOTSUPP: disabled).
pub fn landlock_abi_version() -> io::Result<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: a null attr with size 0 and the VERSION flag is the documented ABI query.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })?;
    Ok(ret as u32)
}

/// Sends `data` and `fds` (as one `SCM_RIGHTS` control message) on a unix socket.
pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds) as libc::c_uint;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut control = vec![0u8; if fds.is_empty() { 0 } else { space }];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points to a zeroed buffer of CMSG_SPACE(fd_bytes) bytes, so the
        // first header and its data (CMSG_LEN(fd_bytes)) fit; we write exactly that much.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
            ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: msg references iov, data and control, all alive for the call.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(ret as usize);
    }
}

/// Receives into `buf` on a unix socket, collecting any `SCM_RIGHTS` fds (at most 4 per call)
/// as owned, close-on-exec fds. Returns the byte count (0 at end of stream).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    const MAX_FDS: usize = 4;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as libc::c_uint) }
            as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg references buffers we own that stay alive for the call.
        let ret = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        break ret as usize;
    };
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR walk within it,
    // and each SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fds that are now ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n)
}

/// Takes ownership of an inherited fd. Only for fds placed by our own supervisor before exec
/// (the control socket), after checking they are open (`set_cloexec` succeeded on them).
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller passes an open fd that no other object owns in this fresh process.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Resets every catchable signal to its default disposition and unblocks all signals, so an
/// `SIG_IGN` inherited from the warden binary (SIGPIPE) does not survive into the program.
///
/// Uses the raw `rt_sigaction(2)` system call: glibc's `sigaction` refuses its internal
/// signals 32 and 33 (EINVAL), which `posix_spawn` leaves ignored in the init.
pub fn reset_signal_dispositions() -> io::Result<()> {
    // The kernel's `struct sigaction` (handler, flags, restorer, 64-bit mask; x86_64 and
    // arm64): all zero is SIG_DFL with no flags and an empty mask.
    let default = [0u64; 4];
    // The kernel's signal numbers: 1..=64 (_NSIG).
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel sigaction for the whole call; the old action
        // is not requested; the mask size is the kernel's (8 bytes). Errors cannot happen
        // for these numbers and are ignored.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    // SAFETY: an all-empty set unblocks everything; the old-mask pointer may be null.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        let ret = libc::pthread_sigmask(libc::SIG_SETMASK, &set, ptr::null_mut());
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
    }
    Ok(())
}

/// The signals a terminal or `timeout` sends to a whole process group. [`spawn_init`] starts
/// the init with them blocked, and the init discards them
/// ([`discard_group_signals_and_unblock`]): one sent to the supervisor's group in the instant
/// before the child's `setsid` would otherwise stay pending and kill the half-built sandbox
/// when glibc unblocks signals before `execve`, instead of reaching only the supervisor.
pub const GROUP_SIGNALS: [libc::c_int; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Discards any pending [`GROUP_SIGNALS`] (setting a pending signal's action to `SIG_IGN`
/// discards it: sigaction(2), POSIX), restores their default action, and unblocks every
/// signal. *Child side*: first thing in the init.
pub fn discard_group_signals_and_unblock() -> io::Result<()> {
    for sig in GROUP_SIGNALS {
        // SAFETY: SIG_IGN and SIG_DFL are valid dispositions for these catchable signals.
        unsafe {
            if libc::signal(sig, libc::SIG_IGN) == libc::SIG_ERR
                || libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR
            {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let empty: libc::sigset_t = empty_sigset();
    set_signal_mask(&empty)
}

fn empty_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set it is given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// Starts `path` with the arguments `argv` (argv\[0\] first), the environment `envp`
/// (`NAME=value` entries; nothing else is inherited), `fds[i]` as its fd
/// `i` (stdin, stdout, stderr, the control socket at 3), in a new session (`setsid`), with
/// every signal at its default disposition and only [`GROUP_SIGNALS`] blocked; returns its
/// pid.
///
/// `posix_spawn(3)` (glibc: `clone(CLONE_VM | CLONE_VFORK)`, then `execve`) instead of
/// `fork`: the parent's page tables are not copied, and its memory is not left copy-on-write
/// for its other threads to fault on afterwards. That is the point: the supervisor may be a
/// large, multithreaded server. Nothing but glibc's own spawn code runs in the child.
///
/// # Errors
///
/// `fcntl(F_DUPFD_CLOEXEC)` failing (out of file descriptors), or the error `posix_spawn`
/// returns, which includes `execve`'s (`ENOENT`, `EACCES`, ...).
pub fn spawn_init(
    path: &CStr,
    argv: &[&CStr],
    envp: &[&CStr],
    fds: [BorrowedFd<'_>; 4],
) -> io::Result<libc::pid_t> {
    // Fresh close-on-exec copies above the target range: a source that already is one of
    // 0..=3 can then never be overwritten by an earlier dup2 before its own dup2 runs.
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: F_DUPFD_CLOEXEC on a borrowed, open fd; the result is a new fd we own.
        let dup = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) }.into())?;
        // SAFETY: `dup` was just returned by fcntl and is owned by nobody else.
        high.push(unsafe { OwnedFd::from_raw_fd(dup as RawFd) });
    }
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = envp
        .iter()
        .map(|e| e.as_ptr())
        .chain([ptr::null()])
        .collect();
    // SAFETY: the attribute and file-action objects are initialised before use and destroyed
    // on every path; argv and envp are NULL-terminated arrays of NUL-terminated strings that
    // outlive the call; `high` keeps the dup2 sources open until posix_spawn has returned
    // (CLONE_VFORK: the child has exec'd or exited by then).
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let ret = libc::posix_spawn_file_actions_init(&mut actions);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        let ret = libc::posix_spawnattr_init(&mut attr);
        if ret != 0 {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(io::Error::from_raw_os_error(ret));
        }
        let mut ret = 0;
        for (target, fd) in high.iter().enumerate() {
            if ret == 0 {
                ret = libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    fd.as_raw_fd(),
                    target as libc::c_int,
                );
            }
        }
        let mut blocked = empty_sigset();
        for sig in GROUP_SIGNALS {
            libc::sigaddset(&mut blocked, sig);
        }
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        if ret == 0 {
            ret = libc::posix_spawnattr_setsigmask(&mut attr, &blocked);
        }
        if ret == 0 {
            ret = libc::posix_spawnattr_setsigdefault(&mut attr, &all);
        }
        if ret == 0 {
            let flags = libc::POSIX_SPAWN_SETSID
                | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
                | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short;
            ret = libc::posix_spawnattr_setflags(&mut attr, flags);
        }
        let mut pid: libc::pid_t = 0;
        if ret == 0 {
            ret = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr().cast::<*mut libc::c_char>(),
                envp.as_ptr().cast::<*mut libc::c_char>(),
            );
        }
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        drop(high);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(pid)
    }
}

/// A pipe whose both ends are close-on-exec: `(read, write)`.
///
/// # Errors
///
/// `pipe2(2)` failing (out of file descriptors).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog)`: installs a
/// classic-BPF filter on the calling thread and returns its user-notification listener
/// (seccomp(2); the fd is close-on-exec). Requires no_new_privs or CAP_SYS_ADMIN.
pub fn seccomp_load_with_listener(program: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prog points to `len` valid sock_filter instructions that outlive the call; the
    // kernel copies the program before returning.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog,
        )
    })?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::*;

    /// Runs `program arg` through [`spawn_init`] with `input` on stdin and a fresh pipe at
    /// fd 3, from a thread that blocks SIGUSR1; returns its stdout and the fd-3 pipe's inode.
    fn spawned(program: &str, arg: &str, input: &[u8]) -> (String, u64) {
        let (stdin_read, stdin_write) = pipe().unwrap();
        let (stdout_read, stdout_write) = pipe().unwrap();
        let (_control_read, control_write) = pipe().unwrap();
        let inode = rustix::fs::fstat(&control_write).unwrap().st_ino;
        let old = block_signals(&[libc::SIGUSR1]).unwrap();
        let program = CString::new(program).unwrap();
        let pid = spawn_init(
            &program,
            &[&program, &CString::new(arg).unwrap()],
            &[],
            [
                stdin_read.as_fd(),
                stdout_write.as_fd(),
                stdout_write.as_fd(),
                control_write.as_fd(),
            ],
        )
        .unwrap();
        set_signal_mask(&old).unwrap();
        drop((stdin_read, stdout_write, control_write));
        std::fs::File::from(stdin_write).write_all(input).unwrap();
        let mut out = String::new();
        std::fs::File::from(stdout_read)
            .read_to_string(&mut out)
            .unwrap();
        wait4(pid, 0).unwrap();
        (out, inode)
    }

    /// The spawned process leads its own session, has exactly the group signals blocked and no
    /// ignored signal but glibc's own (whatever the spawning thread had: it blocks SIGUSR1, and
    /// the harness ignores SIGPIPE), an empty environment, and
    /// exactly the given fds at 0, 1 and 3.
    #[test]
    fn spawn_init_sets_up_session_signals_environment_and_fds() {
        let (status, _) = spawned("/bin/cat", "/proc/self/status", b"");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(field("Pid:"), field("NSsid:"), "{status}");
        let group = GROUP_SIGNALS
            .iter()
            .fold(0u64, |mask, &sig| mask | 1 << (sig - 1));
        assert_eq!(
            u64::from_str_radix(&field("SigBlk:"), 16).unwrap(),
            group,
            "{status}"
        );
        // glibc leaves its internal signals 32 and 33 ignored; the init resets them.
        assert_eq!(
            u64::from_str_radix(&field("SigIgn:"), 16).unwrap() & !0x1_8000_0000,
            0,
            "{status}"
        );

        let (environ, _) = spawned("/bin/cat", "/proc/self/environ", b"");
        assert_eq!(environ, "");

        let (fd3, inode) = spawned("/bin/readlink", "/proc/self/fd/3", b"");
        assert_eq!(fd3.trim(), format!("pipe:[{inode}]"));

        let (echoed, _) = spawned("/bin/cat", "-", b"from stdin\n");
        assert_eq!(echoed, "from stdin\n");
    }

    #[test]
    fn spawn_init_reports_a_missing_program() {
        let (a, b) = pipe().unwrap();
        let missing = CString::new("/nonexistent-warden-init").unwrap();
        let err = spawn_init(
            &missing,
            &[&missing],
            &[],
            [a.as_fd(), b.as_fd(), b.as_fd(), b.as_fd()],
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
