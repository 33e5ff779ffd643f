//! Zero-copy tunnel between two TCP sockets with `splice(2)` through a pipe (Linux).
//!
//! The data of each direction moves socket → pipe → socket inside the kernel, never through a
//! userspace buffer: on a 2-CPU host a userspace copy loop halves loopback throughput, since
//! the proxy's two copies compete with the endpoints' for CPU.
//!
//! Readiness: a non-blocking `splice` from a socket into a pipe fails with `EAGAIN` both when
//! the socket is empty and when the pipe is full, and clearing the socket's readiness on the
//! wrong one would stall the tunnel. So a direction only reads into an *empty* pipe (then
//! `EAGAIN` can only mean "socket empty") and drains the pipe completely before reading again.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use rustix::net::Shutdown;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Activity, Counters};

/// Pipe capacity asked for, in bytes (the kernel may grant less; that is fine). At most this
/// much per direction sits in a pipe when the receiver is slower than the sender; 1 MiB pipes
/// measured no faster on loopback.
const PIPE_SIZE: usize = 256 << 10;

/// One direction's pipe.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A non-blocking pipe, enlarged to [`PIPE_SIZE`] when the kernel allows.
    ///
    /// # Errors
    ///
    /// `pipe2` failing (out of file descriptors).
    pub(super) fn new() -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))
            .unwrap_or(1 << 16);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }
}

/// Both directions until each has seen end-of-stream (each end is half-closed in turn), or
/// the first error.
pub(super) async fn both_ways(
    client: &TcpStream,
    upstream: &TcpStream,
    pipes: (Pipe, Pipe),
    activity: &Activity,
    counters: Option<&Counters>,
) -> io::Result<()> {
    let up = one_way(client, upstream, pipes.0, activity, |n| {
        if let Some(c) = counters {
            c.written.fetch_add(n, Ordering::Relaxed);
        }
    });
    let down = one_way(upstream, client, pipes.1, activity, |n| {
        if let Some(c) = counters {
            c.read.fetch_add(n, Ordering::Relaxed);
        }
    });
    tokio::try_join!(up, down).map(|_| ())
}

/// Moves bytes from `from` to `to` until `from` ends, then half-closes `to`; `moved` gets
/// the byte count of each transfer out of `from`.
async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    pipe: Pipe,
    activity: &Activity,
    moved: impl Fn(u64),
) -> io::Result<()> {
    transfer(from, to, &pipe, None, activity, moved)
        .await
        .map_err(|e| match e {
            TransferError::Read(e) | TransferError::Write(e) => e,
        })?;
    // End of stream from `from`: pass the half-close on. `to` may already be gone.
    let _ = rustix::net::shutdown(to, Shutdown::Write);
    Ok(())
}

/// Which side of a [`transfer`] failed.
#[derive(Debug)]
pub(super) enum TransferError {
    /// Reading from the source failed.
    Read(io::Error),
    /// Writing to the destination failed (it is gone, or closed for reading).
    Write(io::Error),
}

/// Moves bytes from `from` to `to` through `pipe` until `limit` bytes have moved (when given)
/// or `from` reaches end of stream; returns how many moved. `read` gets the byte count of each
/// read from `from`. The pipe is empty again when this returns `Ok`.
pub(super) async fn transfer(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    limit: Option<u64>,
    activity: &Activity,
    read: impl Fn(u64),
) -> Result<u64, TransferError> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut total = 0u64;
    loop {
        let want = match limit {
            Some(limit) if total >= limit => return Ok(total),
            Some(limit) => {
                usize::try_from(limit - total).map_or(pipe.capacity, |left| left.min(pipe.capacity))
            }
            None => pipe.capacity,
        };
        // The pipe is empty here, so EAGAIN can only mean that `from` has nothing to read.
        let filled = loop {
            from.readable().await.map_err(TransferError::Read)?;
            match from.try_io(Interest::READABLE, || {
                Ok(rustix::pipe::splice(
                    from,
                    None,
                    &pipe.write,
                    None,
                    want,
                    flags,
                )?)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(TransferError::Read(e)),
            }
        };
        if filled == 0 {
            return Ok(total);
        }
        read(filled as u64);
        activity.touch();
        // The pipe holds data here, so EAGAIN can only mean that `to` is full.
        let mut left = filled;
        while left > 0 {
            to.writable().await.map_err(TransferError::Write)?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(rustix::pipe::splice(
                    &pipe.read, None, to, None, left, flags,
                )?)
            }) {
                Ok(0) => return Err(TransferError::Write(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    left -= n;
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(TransferError::Write(e)),
            }
        }
        total += filled as u64;
    }
}
