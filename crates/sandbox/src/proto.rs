//! The control channel between the supervisor and the sandbox init.
//!
//! A `SOCK_STREAM` unix socket carrying frames of a 4-byte little-endian length followed by a
//! JSON [`Msg`]. File descriptors travel as `SCM_RIGHTS` on the first byte of the frame that
//! announces them ([`Msg::Pid1`], [`Msg::Listener`], [`Msg::SeccompListener`]) and are queued in arrival order.
//! The sandboxed program never holds this socket: it is close-on-exec in the init.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::{sys, Spec};

/// Largest frame accepted (input files travel inside the spec).
const MAX_FRAME: usize = 256 << 20;

/// What the supervisor decided for this run, sent to the init with the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub spec: Spec,
    /// Create a user namespace (the supervisor writes the id maps).
    pub userns: bool,
    /// Install the seccomp filter (the program embedded in the binary, `seccomp::embedded`).
    pub seccomp: bool,
    /// Apply landlock.
    pub landlock: bool,
    /// The pids cgroup controller enforces `limits.pids` (else `RLIMIT_NPROC`).
    pub cgroup_pids: bool,
    /// The memory cgroup controller enforces `limits.memory_bytes` (else `RLIMIT_AS`).
    pub cgroup_memory: bool,
    /// The cpu cgroup controller enforces `limits.cpus` (else `RLIMIT_CPU` ≈ timeout).
    pub cgroup_cpu: bool,
    /// Uid/gid the program runs as, as seen inside the sandbox.
    pub run_uid: u32,
    /// Unprivileged host uid/gid that owns the user namespace (and that sandbox uid 0 maps to).
    pub host_uid: u32,
}

/// One control message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Msg {
    /// Supervisor → init: what to run.
    Config(Box<InitConfig>),
    /// Init → supervisor: namespaces created; write the id maps now.
    Unshared,
    /// Supervisor → init: id maps written and cgroup joined; the init may fork now.
    Mapped,
    /// Init → supervisor: host pid of the sandbox's PID 1; carries its pidfd.
    Pid1 { host_pid: i32 },
    /// Program process → supervisor: seccomp filter installed; carries the listener fd.
    SeccompListener,
    /// PID 1 → supervisor: the TCP listener of `spec.loopback_listener`, created inside the
    /// sandbox's network namespace; carries the socket fd.
    Listener,
    /// Program process → supervisor: landlock enforced with this ABI (or not at all).
    Landlock { abi: Option<u32> },
    /// Program process → supervisor: `execve` failed.
    ExecFailed { not_found: bool, message: String },
    /// Any init stage → supervisor: a setup step failed; nothing ran.
    SetupFailed { step: String, error: String },
    /// PID 1 → supervisor: how the program ended.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Writes one frame, with `fds` attached to its first byte.
pub(crate) fn send(sock: &impl AsFd, msg: &Msg, fds: &[RawFd]) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    let mut sent = sys::send_with_fds(sock.as_fd(), &frame, fds)?;
    while sent < frame.len() {
        sent += sys::send_with_fds(sock.as_fd(), &frame[sent..], &[])?;
    }
    Ok(())
}

/// Bytes asked for per read from the control socket. Frames are mostly well under 1 KiB; a
/// config with input files is read in several pieces.
const READ_CHUNK: usize = 16 << 10;

/// Reads frames from the control socket, buffering partial ones.
pub(crate) struct Receiver {
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    eof: bool,
}

impl Receiver {
    pub(crate) fn new() -> Self {
        Receiver {
            buf: Vec::new(),
            fds: VecDeque::new(),
            eof: false,
        }
    }

    /// A receiver whose stream has ended, with nothing buffered.
    pub(crate) fn eof() -> Self {
        Receiver {
            eof: true,
            ..Receiver::new()
        }
    }

    /// True once the peer closed the socket and every buffered frame was taken.
    pub(crate) fn is_eof(&self) -> bool {
        self.eof && self.buf.is_empty()
    }

    /// Takes the next received fd (for a message that announces one).
    pub(crate) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }

    /// Returns a complete buffered frame, if any.
    pub(crate) fn next_buffered(&mut self) -> io::Result<Option<Msg>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "control frame too large",
            ));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&self.buf[4..4 + len])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }

    /// Performs one read from the socket (blocking if it is blocking). Returns false at EOF.
    pub(crate) fn fill(&mut self, sock: &impl AsFd) -> io::Result<bool> {
        // Received straight into the buffer's tail: its capacity stays between calls, so a
        // process touches (page-faults in) these bytes once, not once per message.
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let mut fds = Vec::new();
        let received = sys::recv_with_fds(sock.as_fd(), &mut self.buf[start..], &mut fds);
        let n = match received {
            Ok(n) => n,
            // The peer died with data of ours unread (a sandbox killed mid-handshake): the
            // stream has ended all the same.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        self.fds.extend(fds);
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Blocks until a whole frame is available; `None` at end of stream.
    pub(crate) fn recv(&mut self, sock: &impl AsFd) -> io::Result<Option<Msg>> {
        loop {
            if let Some(msg) = self.next_buffered()? {
                return Ok(Some(msg));
            }
            if self.eof || !self.fill(sock)? {
                return Ok(None);
            }
        }
    }
}

/// Serde adapter: bytes as a base64 string (standard alphabet, padded).
pub(crate) mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn frames_and_fds_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        send(&a, &Msg::Unshared, &[]).unwrap();
        send(&a, &Msg::Mapped, &[]).unwrap();
        send(&a, &Msg::Pid1 { host_pid: 42 }, &[file.as_raw_fd()]).unwrap();
        let mut spec = Spec::new("python3", ["-c", "pass"]);
        spec.stdin = crate::Stdin::Bytes(vec![0, 255, 10]);
        let cfg = InitConfig {
            spec: spec.clone(),
            userns: true,
            seccomp: true,
            landlock: true,
            cgroup_pids: true,
            cgroup_memory: true,
            cgroup_cpu: true,
            run_uid: 1000,
            host_uid: 1_000_000_000,
        };
        send(&a, &Msg::Config(Box::new(cfg)), &[]).unwrap();
        drop(a);
        let mut rx = Receiver::new();
        assert!(matches!(rx.recv(&b).unwrap(), Some(Msg::Unshared)));
        assert!(matches!(rx.recv(&b).unwrap(), Some(Msg::Mapped)));
        assert!(matches!(
            rx.recv(&b).unwrap(),
            Some(Msg::Pid1 { host_pid: 42 })
        ));
        assert!(rx.take_fd().is_some());
        match rx.recv(&b).unwrap() {
            Some(Msg::Config(cfg)) => assert_eq!(cfg.spec, spec),
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.recv(&b).unwrap().is_none());
        assert!(rx.is_eof());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut rx = Receiver::new();
        rx.buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(rx.next_buffered().is_err());
    }
}
