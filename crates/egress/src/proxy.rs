//! An HTTP forward proxy that lets through only what the egress policy allows.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//!
//! use warden_egress::proxy::{serve, ProxyConfig};
//! use warden_egress::{Resolver, UrlPolicy};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3128").await?;
//! let config = Arc::new(ProxyConfig::new(UrlPolicy::default(), Resolver::default()));
//! let log = Arc::new(|line: warden_egress::proxy::ConnectionLog| {
//!     println!("{}", serde_json::to_string(&line).unwrap_or_default());
//! });
//! // Serves until the future given as `shutdown` completes; this one never does.
//! serve(listener, config, log, std::future::pending()).await
//! # }
//! ```
//!
//! # Design
//!
//! - **Two request forms** (RFC 9112 section 3.2): `CONNECT host:port` (authority-form) is
//!   judged as `https://host:port/` and, when allowed, answered `200` and tunnelled byte for
//!   byte; an absolute-form request (`GET http://host/path`) is judged as its URL and forwarded
//!   in origin-form over a fresh connection, its response streamed back. Origin-form requests
//!   (the proxy is not a web server) and `https://` in absolute form (the client must tunnel
//!   TLS with `CONNECT`) are answered `400`.
//! - **Same policy as everywhere.** Every request goes through [`UrlPolicy::check_async`]:
//!   blocked names, domain lists, ports, literal addresses, and every address the name resolves
//!   to ([`Resolver::resolve_async`], hickory-resolver). The connection then goes *only* to an
//!   address that was judged, tried in answer order within `connect_timeout`; the name is never
//!   resolved again, so DNS rebinding between check and connect cannot reach anything else.
//! - **Answers say why.** Denied: `403` with `X-Warden-Deny-Reason: <rule>: <reason>`
//!   (the [`Denial::rule`] name and its text, one header-safe line). Unresolvable: `502`;
//!   connection refused: `502`; connect timeout: `504`; over `max_connections`: `503`. Errors
//!   carry `X-Warden-Error: <rule>: <reason>`. Every request and tunnel is one
//!   [`ConnectionLog`] line, written when it ends.
//! - **Hop by hop.** Forwarded requests and responses lose `Connection` and the headers it
//!   names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade` (RFC 9110
//!   section 7.6.1), `Proxy-Authorization` and `Proxy-Authenticate` (RFC 9110 section 11.7:
//!   meant for this proxy), and `Expect` (the proxy already answered `100 Continue` to its
//!   client); `Host` is rewritten from the request target (RFC 9112 section 3.2.2) and `Via`
//!   is added (RFC 9110 section 7.6.3). Redirects are passed to the client, never followed: the
//!   client's next request is judged like any other.
//! - **Bounded.** At most `max_connections` client connections (a tunnel counts as its client
//!   connection) are served; the next ones get `503` (and beyond as many again, are closed
//!   unanswered). Bodies are streamed with back-pressure, never buffered whole; a connection or
//!   tunnel on which no byte moved in either direction for `idle_timeout` is closed.
//! - **Fast path.** A tunnel moves bytes between the two raw TCP sockets (hyper's upgraded
//!   stream is unwrapped) with `splice(2)` through a pipe per direction, never through
//!   userspace (Linux; elsewhere, or without file descriptors for the pipes, a copy loop with
//!   256 KiB buffers). So does the response body of a bodyless absolute-form request (a
//!   `GET`, in practice) that opens its connection: its head is peeked and parsed with
//!   `httparse`, judged like any other, forwarded with `Connection: close`, and the answer
//!   spliced back until the destination closes (the `fast` module; same rewriting, answers and
//!   log line as hyper's path). Other absolute-form requests (with bodies, HTTP/1.0, or not
//!   the first on their connection) are streamed by hyper, the upstream connection driven
//!   from the client connection's task. Per chunk the proxy adds a relaxed atomic add and a
//!   clock read (idle timer, byte counts).
//!
//! # Limitations
//!
//! - HTTP/1.1 (and 1.0) to the proxy only; no HTTP/2 between client and proxy. Upstream
//!   requests are HTTP/1.1 over a new connection for each request (no pooling: each request
//!   is judged and pinned on its own).
//! - Plain-HTTP upgrades (WebSocket over `ws://` through an absolute-form request) do not work,
//!   since `Upgrade` is hop-by-hop; `wss://` through `CONNECT` does.
//! - Inside a tunnel the proxy sees only bytes: it cannot judge the TLS SNI or the `Host` the
//!   client sends inside, which may name another virtual host on the same allowed address.
//! - No proxy authentication: whoever can reach the listener may use it (the sandbox's
//!   listener lives inside its own network namespace).
//! - `bytes_up`/`bytes_down` count the upstream connection (request and response heads
//!   included for absolute-form requests).
//! - A bodyless absolute-form request on the fast path ends its client connection
//!   (`Connection: close`); the client's next request opens a new one. Bytes the client
//!   pipelined after it are discarded, never forwarded.
//! - Throughput is CPU-bound on loopback. Spliced bodies cost no userspace copy, but each
//!   byte still crosses a second TCP connection in the kernel (receive, pipe, transmit), about
//!   as much CPU again as the copies the endpoints themselves make; bodies hyper streams cost
//!   two userspace copies on top. On a 2-CPU VM, `benches/proxy_throughput.rs` (21 rounds,
//!   paired ratios) measured 100 MiB at 65 to 73 % of a direct transfer for a spliced
//!   absolute-form request, 66 to 81 % for a tunnel, and 57 to 66 % on hyper's path (the
//!   build before the fast path): short of an 80 % target.
//! - A tunnel uses two pipes (four file descriptors, up to 256 KiB of kernel memory each) on
//!   top of its two sockets: serving `max_connections` tunnels needs about
//!   `6 × max_connections` descriptors (`RLIMIT_NOFILE`); without them a tunnel falls back to
//!   the copy loop.
//! - The idle timer is per client connection: a request waiting longer than `idle_timeout` for
//!   DNS, connect or the destination's first byte is cut too.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, EXPECT, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRANSFER_ENCODING, UPGRADE, VIA,
};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::url_policy::{Denial, Resolver, Target, UrlPolicy};

#[cfg(target_os = "linux")]
mod fast;
#[cfg(target_os = "linux")]
mod splice;

/// How the proxy decides and how long it waits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The policy every request is judged by.
    pub policy: UrlPolicy,
    /// Resolves names; its answers are judged by `policy` before any connection.
    pub resolver: Resolver,
    /// Time allowed to connect to the destination, all judged addresses together; 10 s by
    /// default. Running out answers `504`.
    pub connect_timeout: Duration,
    /// A client connection or tunnel on which no byte moved for this long is closed; also the
    /// time a client has to send a request head. 60 s by default.
    pub idle_timeout: Duration,
    /// Client connections (tunnels included) served at once; 256 by default. Further
    /// connections are answered `503 Service Unavailable`.
    pub max_connections: usize,
}

impl ProxyConfig {
    /// A configuration with the defaults: 10 s connect timeout, 60 s idle timeout, 256
    /// connections.
    pub fn new(policy: UrlPolicy, resolver: Resolver) -> Self {
        ProxyConfig {
            policy,
            resolver,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Allowed and forwarded (whatever the destination answered).
    Allow,
    /// Refused by the policy (`403`).
    Deny,
    /// Not forwarded for another reason: malformed request, unresolvable name, connection
    /// failure, proxy over capacity.
    Error,
}

/// One log line per proxied request or tunnel, emitted when it ends.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionLog {
    /// The client's address.
    pub client: SocketAddr,
    /// The request method (`CONNECT`, `GET`, …).
    pub method: String,
    /// The request target as sent, `host:port` for `CONNECT`, the URL for absolute-form, with
    /// any userinfo and query replaced by `***`: they often carry credentials (passwords,
    /// tokens, signed-URL signatures) that do not belong in logs.
    pub requested: String,
    /// The destination host (canonical when it was judged; empty when there is none).
    pub host: String,
    /// The destination port (0 when there is none).
    pub port: u16,
    /// The address connected to, when a connection was made.
    pub connected: Option<SocketAddr>,
    /// `allow`, `deny` or `error`.
    pub decision: Decision,
    /// Why it was denied or failed, one line.
    pub reason: Option<String>,
    /// The rule: a [`Denial::rule`] name, or `bad_request`, `connect`, `connect_timeout`,
    /// `upstream`, `over_capacity`, `client` (the client went away), `no_answer` (nothing was
    /// answered), `cut` (the answer stopped after its head).
    pub rule: Option<String>,
    /// The status the proxy answered (for a forwarded request, the destination's status), or
    /// [`NO_ANSWER_STATUS`] when no answer went out.
    pub status: u16,
    /// Bytes sent toward the destination (for absolute-form requests, request heads included).
    pub bytes_up: u64,
    /// Bytes read from the destination (for absolute-form requests, response heads included).
    pub bytes_down: u64,
    /// Time from the request head to the end of the exchange or tunnel, in milliseconds.
    pub duration_ms: f64,
}

/// Where [`serve`] sends its [`ConnectionLog`] lines.
pub type LogSink = Arc<dyn Fn(ConnectionLog) + Send + Sync>;

/// Copy buffer per direction of a tunnel, in bytes.
const TUNNEL_BUFFER: usize = 256 << 10;

/// Longest reason text sent in a header, in bytes.
const MAX_REASON_HEADER: usize = 512;

/// Serves the proxy on `listener` until `shutdown` completes.
///
/// On shutdown the proxy stops accepting, lets each HTTP exchange in flight finish (bounded by
/// the idle timeout), closes tunnels, and returns when every connection is gone.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] when `connect_timeout` or `idle_timeout` is zero (nothing
/// could connect, or every connection would be closed at once); an error of `accept` that is
/// neither about one connection (reset, aborted) nor about running out of resources (file
/// descriptors, buffers, memory; those pause accepting for 100 ms and are retried).
pub async fn serve(
    listener: TcpListener,
    config: Arc<ProxyConfig>,
    log: LogSink,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    for (name, value) in [
        ("connect_timeout", config.connect_timeout),
        ("idle_timeout", config.idle_timeout),
    ] {
        if value.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("proxy {name} is 0: give it a duration above zero, such as 10 s"),
            ));
        }
    }
    let max_connections = config.max_connections.min(Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared {
        config,
        log,
        tracker: TaskTracker::new(),
        cancel: CancellationToken::new(),
    });
    let permits = Arc::new(Semaphore::new(max_connections));
    let overflow = Arc::new(Semaphore::new(max_connections.max(16)));
    tokio::pin!(shutdown);
    let result = loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(pair) => pair,
            Err(e) if per_connection(&e) => continue,
            Err(e) if out_of_resources(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => break Err(e),
        };
        let _ = stream.set_nodelay(true);
        if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
            let conn = Arc::new(Conn {
                shared: Arc::clone(&shared),
                client,
                activity: Activity::new(),
                _permit: permit,
            });
            shared.tracker.spawn(serve_client(stream, conn));
        } else if let Ok(permit) = Arc::clone(&overflow).try_acquire_owned() {
            shared
                .tracker
                .spawn(refuse_client(stream, client, Arc::clone(&shared), permit));
        }
        // Else: drop the stream unanswered; answering costs too.
    };
    shared.cancel.cancel();
    shared.tracker.close();
    shared.tracker.wait().await;
    result
}

/// An `accept` error that concerns only the connection being accepted.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// An `accept` error that says the process or host is out of something that comes back.
fn out_of_resources(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::OutOfMemory
        || matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
}

/// State shared by every connection of one [`serve`].
struct Shared {
    config: Arc<ProxyConfig>,
    log: LogSink,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// One client connection; holds its connection permit until the last task using it ends
/// (a tunnel outlives the HTTP connection it was upgraded from).
struct Conn {
    shared: Arc<Shared>,
    client: SocketAddr,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

/// Serves one client connection: HTTP/1.1 requests until the client closes, the connection
/// idles, or it is upgraded to a tunnel (which then runs in its own task).
async fn serve_client(mut stream: TcpStream, conn: Arc<Conn>) {
    let idle = conn.shared.config.idle_timeout;
    // The first request may be served on the fast path (see `fast`); if not, hyper serves the
    // connection from its first byte, with the answer to the first request when the fast path
    // already decided it.
    #[cfg(target_os = "linux")]
    let first_answer = tokio::select! {
        first = fast::first_request(&mut stream, &conn) => match first {
            fast::First::Done => return,
            // The connection ends with the prepared answer, so that it is never cut by a
            // shutdown in between and needs no more waiting for.
            fast::First::Hyper(answer) => answer.map(|a| {
                let mut a = *a;
                a.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                a
            }),
        },
        () = conn.activity.idle_for(idle) => return,
    };
    #[cfg(not(target_os = "linux"))]
    let first_answer: Option<Response<ProxyBody>> = None;
    let prepared_first = first_answer.is_some();
    let first_answer = Arc::new(std::sync::Mutex::new(first_answer));

    let io = TokioIo::new(Metered::new(stream, Arc::clone(&conn.activity), None));
    let service_conn = Arc::clone(&conn);
    let service = service_fn(move |request| {
        let conn = Arc::clone(&service_conn);
        let prepared = first_answer.lock().ok().and_then(|mut a| a.take());
        async move {
            Ok::<_, Infallible>(match prepared {
                Some(answer) => answer,
                None => handle(request, conn).await,
            })
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(http);
    // A prepared answer is for a request that already arrived: a graceful shutdown would drop
    // it unsent (hyper closes a connection that has not read yet), so shutdown waits for it
    // (the connection closes after it).
    let shutdown = async {
        if !prepared_first {
            conn.shared.cancel.cancelled().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = http.as_mut() => return,
        () = conn.activity.idle_for(idle) => return,
        () = shutdown => http.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = http => {}
        () = conn.activity.idle_for(idle) => {}
    }
}

/// Answers every request on a connection over the limit with `503`, within a short time.
async fn refuse_client(
    stream: TcpStream,
    client: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let patience = shared.config.idle_timeout.min(Duration::from_secs(5));
    let log = Arc::clone(&shared.log);
    let service = service_fn(move |request: Request<Incoming>| {
        let mut guard = LogGuard::new(Arc::clone(&log), client, &request, None);
        let response = guard.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "over_capacity",
            "the proxy serves its maximum number of connections; retry later".into(),
        );
        async move { Ok::<_, Infallible>(response) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(patience)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(patience * 2, http).await;
}

/// The body of a proxy answer: a short text, or the destination's streamed body.
type ProxyBody = Either<Full<Bytes>, Forwarded>;

/// Decides one request and answers it.
async fn handle(mut request: Request<Incoming>, conn: Arc<Conn>) -> Response<ProxyBody> {
    let mut guard = LogGuard::new(
        Arc::clone(&conn.shared.log),
        conn.client,
        &request,
        Some(Arc::new(Counters::default())),
    );
    if request.method() == Method::CONNECT {
        let Some(authority) = authority_form(request.uri()) else {
            return guard.error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "CONNECT needs a target of the form host:port".into(),
            );
        };
        guard.entry.host = authority.host().to_string();
        guard.entry.port = authority.port_u16().unwrap_or(0);
        let url = format!("https://{authority}/");
        let upgrade = hyper::upgrade::on(&mut request);
        let (upstream, _target) = match reach(&url, &conn, &mut guard).await {
            Ok(reached) => reached,
            Err(response) => return response,
        };
        guard.entry.status = StatusCode::OK.as_u16();
        let tunnel_conn = Arc::clone(&conn);
        conn.shared.tracker.spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                tunnel(upgraded, upstream, &tunnel_conn).await;
            }
            drop(guard);
        });
        return text(StatusCode::OK, "");
    }
    match request.uri().scheme_str() {
        None => guard.error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "this is a forward proxy: send absolute-form requests (GET http://host/path) or \
             CONNECT host:port"
                .into(),
        ),
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => guard.error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "https:// URLs go through a tunnel: send CONNECT host:443 and speak TLS inside it"
                .into(),
        ),
        Some(_) => {
            if let Some(authority) = request.uri().authority() {
                guard.entry.host = authority.host().to_string();
                guard.entry.port = authority.port_u16().unwrap_or(80);
            }
            let url = request.uri().to_string();
            let (upstream, target) = match reach(&url, &conn, &mut guard).await {
                Ok(reached) => reached,
                Err(response) => return response,
            };
            forward(request, upstream, &target, guard).await
        }
    }
}

/// The authority of a `CONNECT` target, which must be exactly `host:port` (RFC 9110 section
/// 9.3.6).
fn authority_form(uri: &Uri) -> Option<&hyper::http::uri::Authority> {
    let authority = uri.authority()?;
    let bare = uri.scheme().is_none() && uri.path_and_query().is_none();
    (bare && authority.port_u16().is_some()).then_some(authority)
}

/// Judges `url`, then connects to one of its judged addresses.
async fn reach(
    url: &str,
    conn: &Conn,
    guard: &mut LogGuard,
) -> Result<(Metered<TcpStream>, Target), Response<ProxyBody>> {
    let config = &conn.shared.config;
    let target = match config.policy.check_async(url, &config.resolver).await {
        Ok(target) => target,
        Err(denial) => return Err(guard.denied(&denial)),
    };
    guard.entry.host.clone_from(&target.host);
    guard.entry.port = target.port;
    match connect(&target.addresses, target.port, config.connect_timeout).await {
        Ok((stream, address)) => {
            guard.entry.connected = Some(address);
            guard.entry.decision = Decision::Allow;
            let counters = guard.counters.clone();
            Ok((
                Metered::new(stream, Arc::clone(&conn.activity), counters),
                target,
            ))
        }
        Err(ConnectError::Timeout) => Err(guard.error(
            StatusCode::GATEWAY_TIMEOUT,
            "connect_timeout",
            format!(
                "no connection to {} port {} within {} ms",
                target.host,
                target.port,
                config.connect_timeout.as_millis()
            ),
        )),
        Err(ConnectError::Failed(e)) => Err(guard.error(
            StatusCode::BAD_GATEWAY,
            "connect",
            format!(
                "cannot connect to {} port {}: {e}",
                target.host, target.port
            ),
        )),
    }
}

/// Why no connection was made.
enum ConnectError {
    /// The connect timeout ran out.
    Timeout,
    /// Every address refused or failed; the last error.
    Failed(io::Error),
}

/// Connects to the first of `addresses` (all judged) that answers, in order, all within
/// `timeout`; each attempt gets an equal share of the time left.
async fn connect(
    addresses: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let deadline = Instant::now() + timeout;
    let mut last = ConnectError::Failed(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no judged address to connect to",
    ));
    for (i, ip) in addresses.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnectError::Timeout);
        }
        let share = left / u32::try_from(addresses.len() - i).unwrap_or(u32::MAX);
        let address = SocketAddr::new(*ip, port);
        match tokio::time::timeout(share, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, address));
            }
            Ok(Err(e)) => last = ConnectError::Failed(e),
            Err(_) => last = ConnectError::Timeout,
        }
    }
    Err(last)
}

/// Copies bytes both ways between the client and the destination until both sides have
/// closed, the tunnel idles, or the proxy shuts down.
async fn tunnel(upgraded: hyper::upgrade::Upgraded, mut upstream: Metered<TcpStream>, conn: &Conn) {
    let idle = conn.shared.config.idle_timeout;
    let pump = async {
        match upgraded.downcast::<TokioIo<Metered<TcpStream>>>() {
            Ok(parts) => {
                // Bytes the client sent after the CONNECT head, already read by hyper.
                upstream.write_all(&parts.read_buf).await?;
                let mut client = parts.io.into_inner();
                #[cfg(target_os = "linux")]
                if let (Ok(up), Ok(down)) = (splice::Pipe::new(), splice::Pipe::new()) {
                    return splice::both_ways(
                        &client.inner,
                        &upstream.inner,
                        (up, down),
                        &conn.activity,
                        upstream.counters.as_deref(),
                    )
                    .await;
                }
                // No pipes (out of file descriptors) or not Linux: copy through userspace.
                tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut upstream,
                    TUNNEL_BUFFER,
                    TUNNEL_BUFFER,
                )
                .await
                .map(|_| ())
            }
            Err(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut upstream,
                    TUNNEL_BUFFER,
                    TUNNEL_BUFFER,
                )
                .await
                .map(|_| ())
            }
        }
    };
    tokio::select! {
        _ = pump => {}
        () = conn.activity.idle_for(idle) => {}
        () = conn.shared.cancel.cancelled() => {}
    }
}

/// Sends `request` to the destination in origin-form and streams its answer back.
async fn forward(
    request: Request<Incoming>,
    upstream: Metered<TcpStream>,
    target: &Target,
    mut guard: LogGuard,
) -> Response<ProxyBody> {
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
            Ok(pair) => pair,
            Err(e) => {
                return guard.error(StatusCode::BAD_GATEWAY, "upstream", e.to_string());
            }
        };
    // The upstream connection is driven from this task (here, then from the response body),
    // not a task of its own: each chunk then passes between futures of one task, without a
    // cross-thread wake-up, and it ends with the client connection (idle timeout included).
    let mut connection = Some(Box::pin(connection));
    let (mut parts, body) = request.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(p) => Uri::from(p.clone()),
        None => Uri::from_static("/"),
    };
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(EXPECT);
    if let Ok(host) = HeaderValue::from_str(&host_header(target)) {
        parts.headers.insert(HOST, host);
    }
    add_via(&mut parts.headers);
    let mut sent = std::pin::pin!(sender.send_request(Request::from_parts(parts, body)));
    let answer = std::future::poll_fn(|cx| {
        drive(&mut connection, cx);
        sent.as_mut().poll(cx)
    })
    .await;
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            return guard.error(StatusCode::BAD_GATEWAY, "upstream", e.to_string());
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    add_via(&mut parts.headers);
    guard.entry.status = parts.status.as_u16();
    Response::from_parts(
        parts,
        Either::Right(Forwarded {
            inner: body,
            connection,
            _guard: guard,
        }),
    )
}

/// An HTTP/1.1 client connection to a destination, forwarding a client's request body.
type Upstream = hyper::client::conn::http1::Connection<TokioIo<Metered<TcpStream>>, Incoming>;

/// Polls the upstream connection once, forgetting it when it has ended (its errors reach the
/// request and response futures).
fn drive(connection: &mut Option<Pin<Box<Upstream>>>, cx: &mut Context<'_>) {
    if let Some(c) = connection {
        if c.as_mut().poll(cx).is_ready() {
            *connection = None;
        }
    }
}

/// `Host` for `target`: the host (IPv6 in brackets) and the port unless it is 80.
fn host_header(target: &Target) -> String {
    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    if target.port == 80 {
        host
    } else {
        format!("{host}:{}", target.port)
    }
}

/// Removes the hop-by-hop fields of RFC 9110 section 7.6.1 (and the `Proxy-` credentials and
/// challenges, which are for this proxy) from `headers`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        TE,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

/// Appends this proxy to `Via` (RFC 9110 section 7.6.3).
fn add_via(headers: &mut HeaderMap) {
    headers.append(VIA, HeaderValue::from_static("1.1 warden"));
}

/// A short text answer.
fn text(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

/// `text` as a header value: printable ASCII only (others become `?`), at most
/// [`MAX_REASON_HEADER`] bytes.
fn header_safe(text: &str) -> HeaderValue {
    let line: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(MAX_REASON_HEADER)
        .collect();
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// `uri` as text with any `user:password@` replaced by `***@` and any query by `?***`:
/// credentials are refused by the policy and must not reach the log either, and queries carry
/// tokens and signed-URL signatures.
fn loggable_target(uri: &Uri) -> String {
    let text = uri.to_string();
    let text = match uri.authority().and_then(|a| a.as_str().rsplit_once('@')) {
        Some((userinfo, _)) => text.replacen(userinfo, "***", 1),
        None => text,
    };
    // Neither scheme, authority nor path may contain `?` (RFC 3986 section 3): the first one
    // starts the query.
    match text.split_once('?') {
        Some((before, _)) => format!("{before}?***"),
        None => text,
    }
}

/// [`ConnectionLog::status`] of an exchange that ended before any answer went out: 499,
/// nginx's "client closed request" (not an IANA-registered code; it is never sent).
pub const NO_ANSWER_STATUS: u16 = 499;

/// Writes the [`ConnectionLog`] of one request when dropped, whatever path it took.
struct LogGuard {
    entry: ConnectionLog,
    start: Instant,
    counters: Option<Arc<Counters>>,
    log: LogSink,
}

impl LogGuard {
    fn new(
        log: LogSink,
        client: SocketAddr,
        request: &Request<Incoming>,
        counters: Option<Arc<Counters>>,
    ) -> Self {
        Self::start(
            log,
            client,
            request.method().as_str(),
            request.uri(),
            counters,
        )
    }

    /// The guard of a request for `target` with `method`.
    fn start(
        log: LogSink,
        client: SocketAddr,
        method: &str,
        target: &Uri,
        counters: Option<Arc<Counters>>,
    ) -> Self {
        LogGuard {
            entry: ConnectionLog {
                client,
                method: method.to_string(),
                requested: loggable_target(target),
                host: String::new(),
                port: 0,
                connected: None,
                decision: Decision::Error,
                reason: None,
                rule: None,
                // 0 until an answer is recorded (see Drop).
                status: 0,
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0.0,
            },
            start: Instant::now(),
            counters,
            log,
        }
    }

    /// Records a denial and answers it: `403` with `X-Warden-Deny-Reason`, or `502` for a
    /// name that does not resolve.
    fn denied(&mut self, denial: &Denial) -> Response<ProxyBody> {
        if let Denial::Resolve { .. } = denial {
            return self.error(StatusCode::BAD_GATEWAY, denial.rule(), denial.to_string());
        }
        let reason = denial.to_string();
        self.entry.decision = Decision::Deny;
        self.record(StatusCode::FORBIDDEN, denial.rule(), &reason);
        let mut response = text(
            StatusCode::FORBIDDEN,
            &format!("warden: denied by egress policy: {reason}\n"),
        );
        response.headers_mut().insert(
            "x-warden-deny-reason",
            header_safe(&format!("{}: {reason}", denial.rule())),
        );
        response
    }

    /// Records a failure and answers it with `status` and `X-Warden-Error`.
    fn error(&mut self, status: StatusCode, rule: &str, reason: String) -> Response<ProxyBody> {
        self.entry.decision = Decision::Error;
        self.record(status, rule, &reason);
        let mut response = text(status, &format!("warden: {reason}\n"));
        response
            .headers_mut()
            .insert("x-warden-error", header_safe(&format!("{rule}: {reason}")));
        response
    }

    /// The final status once its head went out to the client, where the exchange keeps it in
    /// [`Counters::answered`] (the fast path); 0 before, or elsewhere.
    fn answered(&self) -> u16 {
        self.counters
            .as_ref()
            .map_or(0, |c| c.answered.load(Ordering::Relaxed))
    }

    /// Records that the client went away: with the status that went out, or
    /// [`NO_ANSWER_STATUS`] before any.
    fn client_left(&mut self) {
        let (status, reason) = match self.answered() {
            0 => (NO_ANSWER_STATUS, "the client went away before the answer"),
            status => (status, "the client went away before the whole answer"),
        };
        self.entry.status = status;
        self.entry.rule = Some("client".into());
        self.entry.reason = Some(reason.into());
    }

    fn record(&mut self, status: StatusCode, rule: &str, reason: &str) {
        self.entry.status = status.as_u16();
        self.entry.rule = Some(rule.to_string());
        self.entry.reason = Some(reason.to_string());
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let mut entry = self.entry.clone();
        if entry.status == 0 {
            // Dropped with nothing recorded (every record sets a status): the connection
            // ended, or the proxy stopped, in the middle of the exchange.
            let (rule, reason) = match self.answered() {
                0 => {
                    entry.status = NO_ANSWER_STATUS;
                    (
                        "no_answer",
                        "the exchange ended before an answer went out: the client went away, \
                         the destination stayed silent past the idle timeout, or the proxy \
                         stopped",
                    )
                }
                answered => {
                    entry.status = answered;
                    // A cut answer failed, as a truncated one does.
                    entry.decision = Decision::Error;
                    (
                        "cut",
                        "the answer was cut after its head: the destination stayed silent past \
                         the idle timeout, or the proxy stopped",
                    )
                }
            };
            entry.rule = Some(rule.into());
            entry.reason = Some(reason.into());
        }
        entry.duration_ms = self.start.elapsed().as_secs_f64() * 1e3;
        if let Some(counters) = &self.counters {
            entry.bytes_up = counters.written.load(Ordering::Relaxed);
            entry.bytes_down = counters.read.load(Ordering::Relaxed);
        }
        (self.log)(entry);
    }
}

/// A destination's response body on its way to the client; logs the exchange when dropped
/// (after its last byte, or when the client goes away).
struct Forwarded {
    inner: Incoming,
    connection: Option<Pin<Box<Upstream>>>,
    _guard: LogGuard,
}

impl Body for Forwarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        drive(&mut self.connection, cx);
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarded").finish_non_exhaustive()
    }
}

/// When bytes last moved on a client connection (or any connection made for it).
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read or write that moved bytes.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= timeout {
                return;
            }
            tokio::time::sleep(timeout - quiet).await;
        }
    }
}

/// Bytes read from and written to one connection.
#[derive(Debug, Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
    /// The final status once its head went out to the client (0 before), where the exchange
    /// knows it apart from the log entry (the fast path).
    answered: AtomicU16,
}

/// A stream that records activity and, optionally, counts bytes.
struct Metered<S> {
    inner: S,
    activity: Arc<Activity>,
    counters: Option<Arc<Counters>>,
}

impl<S> Metered<S> {
    fn new(inner: S, activity: Arc<Activity>, counters: Option<Arc<Counters>>) -> Self {
        Metered {
            inner,
            activity,
            counters,
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.activity.touch();
            if let Some(c) = &self.counters {
                c.written.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.touch();
            if let Some(c) = &self.counters {
                c.read.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.wrote(n);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            self.wrote(n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_the_ones_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
            ("content-length", "3"),
        ] {
            headers.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn reason_headers_are_one_printable_line() {
        let value = header_safe("a\r\nX-Injected: 1\u{e9}\t");
        assert_eq!(value.to_str().unwrap(), "a??X-Injected: 1??");
        assert_eq!(header_safe(&"x".repeat(5000)).len(), MAX_REASON_HEADER);
    }

    #[test]
    fn logged_targets_lose_their_credentials_and_queries() {
        for (target, logged) in [
            (
                "http://user:hunter2@example.com/a?b=c",
                "http://***@example.com/a?***",
            ),
            (
                "http://example.com/dl?X-Amz-Signature=abc&token=t",
                "http://example.com/dl?***",
            ),
            ("http://example.com/a/b", "http://example.com/a/b"),
            ("http://example.com/?", "http://example.com/?***"),
            ("example.com:443", "example.com:443"),
        ] {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(loggable_target(&uri), logged, "{target}");
        }
    }

    #[test]
    fn host_header_brackets_ipv6_and_omits_port_80() {
        let target = |host: &str, port| Target {
            url: String::new(),
            host: host.into(),
            port,
            addresses: vec![],
            needs_resolution: false,
        };
        assert_eq!(host_header(&target("example.com", 80)), "example.com");
        assert_eq!(
            host_header(&target("example.com", 8080)),
            "example.com:8080"
        );
        assert_eq!(host_header(&target("::1", 8080)), "[::1]:8080");
    }

    #[test]
    fn connect_targets_must_be_host_and_port() {
        let ok = |s: &str| authority_form(&s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(ok("example.com:443").as_deref(), Some("example.com:443"));
        assert_eq!(ok("[::1]:443").as_deref(), Some("[::1]:443"));
        assert_eq!(ok("example.com"), None);
        assert_eq!(ok("http://example.com:443/"), None);
        assert_eq!(ok("/path"), None);
    }
}
