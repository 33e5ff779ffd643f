//! The egress proxy of one sandbox (`warden run --network proxy`).
//!
//! # Design
//!
//! The sandbox's PID 1 creates a listening TCP socket on `127.0.0.1` inside the sandbox's
//! own network namespace and hands it to the supervisor (`warden_sandbox::RunIo::on_listener`).
//! A [`ProxySession`] serves [`crate::proxy::serve`] on that socket from the host side, on a
//! tokio runtime the caller owns, so every connection the program asks for is judged by the
//! same [`crate::UrlPolicy`] and made from the host's namespace; the program itself still has
//! no route anywhere. The session keeps the [`ConnectionLog`] of every request (the execution's
//! egress decisions) up to [`MAX_LOGGED`], counting the rest.
//!
//! # Limitations
//!
//! Only programs that honour `HTTP_PROXY`/`HTTPS_PROXY` (or are pointed at the proxy) get
//! through; anything else fails to connect, which is the point.

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::proxy::{serve, ConnectionLog, LogSink, ProxyConfig};

/// Port of the egress proxy inside a sandbox's network namespace (Squid's customary port).
pub const SANDBOX_PROXY_PORT: u16 = 3128;

/// Connection logs kept per session; later ones are only counted.
pub const MAX_LOGGED: usize = 1000;

/// Environment variables that point a program at the sandbox's proxy on `port` (both cases:
/// curl and Python read the lowercase names, many others the uppercase ones). `NO_PROXY` is
/// cleared so nothing bypasses it.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((name.to_string(), url.clone()));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        env.push((name.to_string(), String::new()));
    }
    env
}

#[derive(Default)]
struct Logs {
    kept: Vec<ConnectionLog>,
    dropped: u64,
}

/// What a session saw, returned by [`ProxySession::finish`].
#[derive(Debug, Clone, Default)]
pub struct SessionReport {
    /// Every request or tunnel, in the order they ended (at most [`MAX_LOGGED`]).
    pub connections: Vec<ConnectionLog>,
    /// Requests beyond [`MAX_LOGGED`], not kept.
    pub dropped: u64,
    /// The proxy failed (its accept loop returned an error), with the reason.
    pub error: Option<String>,
}

/// The serving task and the sender that stops it.
type Running = (JoinHandle<std::io::Result<()>>, oneshot::Sender<()>);

/// A proxy serving one sandbox's listener; see the module docs.
pub struct ProxySession {
    handle: Handle,
    config: Arc<ProxyConfig>,
    logs: Arc<Mutex<Logs>>,
    extra: Option<LogSink>,
    task: Arc<Mutex<Option<Running>>>,
}

impl ProxySession {
    /// A session that will serve on `handle`'s runtime with `config`.
    pub fn new(handle: Handle, config: Arc<ProxyConfig>) -> Self {
        ProxySession {
            handle,
            config,
            logs: Arc::default(),
            extra: None,
            task: Arc::default(),
        }
    }

    /// Also sends every log line to `sink` (metrics, audit, live log), as it happens.
    pub fn with_sink(mut self, sink: LogSink) -> Self {
        self.extra = Some(sink);
        self
    }

    /// The callback for `RunIo::on_listener`: starts serving on the listener it receives.
    pub fn listener_handler(&self) -> impl FnOnce(StdListener) + Send + 'static {
        let handle = self.handle.clone();
        let config = Arc::clone(&self.config);
        let logs = Arc::clone(&self.logs);
        let extra = self.extra.clone();
        let task = Arc::clone(&self.task);
        move |listener: StdListener| {
            let sink: LogSink = Arc::new(move |line: ConnectionLog| {
                if let Some(extra) = &extra {
                    extra(line.clone());
                }
                let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
                if logs.kept.len() < MAX_LOGGED {
                    logs.kept.push(line);
                } else {
                    logs.dropped += 1;
                }
            });
            let (stop, stopped) = oneshot::channel::<()>();
            let join = handle.spawn(async move {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve(listener, config, sink, async {
                    let _ = stopped.await;
                })
                .await
            });
            *task.lock().unwrap_or_else(PoisonError::into_inner) = Some((join, stop));
        }
    }

    /// Stops the proxy (connections still open get at most `grace` to end) and returns what
    /// it saw. Call it after the sandbox run returned, from outside the runtime's worker
    /// threads (a plain thread or `spawn_blocking`): it blocks.
    pub fn finish(self, grace: Duration) -> SessionReport {
        let running = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut error = None;
        if let Some((join, stop)) = running {
            let _ = stop.send(());
            let abort = join.abort_handle();
            match self
                .handle
                .block_on(async { tokio::time::timeout(grace, join).await })
            {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => error = Some(format!("egress proxy failed: {e}")),
                Ok(Err(e)) => error = Some(format!("egress proxy task failed: {e}")),
                Err(_) => abort.abort(),
            }
        }
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        SessionReport {
            connections: std::mem::take(&mut logs.kept),
            dropped: logs.dropped,
            error,
        }
    }
}
