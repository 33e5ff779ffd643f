//! The forward proxy and hickory resolution against real sockets on 127.0.0.1 only: loopback
//! test servers the tests explicitly allow (127.0.0.1/32 or 127.0.0.2/32 and their ports),
//! names given by overrides or by a tiny DNS server on 127.0.0.1:0. Public addresses appear
//! only in DNS answers that are judged and denied before any connection.
//!
//! Clients: reqwest with `Proxy::all` (absolute-form), raw TCP for `CONNECT` and for malformed
//! requests.

// Test code: a broken fixture should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{RData, Record, RecordType};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use warden_egress::proxy::{serve, ConnectionLog, Decision, ProxyConfig};
use warden_egress::{Denial, Resolver, UrlPolicy};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A hyper HTTP/1.1 server: `/hello` names the server, `/headers` returns the request target and
/// headers it received, `/echo` streams the request body back, `/redirect` points at the
/// metadata address. Counts the connections it accepted.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn upstream_on(bind: SocketAddr, name: &'static str) -> std::io::Result<Upstream> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| async move {
                    Ok::<_, Infallible>(route(request, name).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Upstream { addr, accepted })
}

async fn upstream() -> Upstream {
    upstream_on("127.0.0.1:0".parse().unwrap(), "upstream")
        .await
        .unwrap()
}

async fn route(
    request: Request<Incoming>,
    name: &'static str,
) -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    let full = |text: String| {
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed()
    };
    match request.uri().path() {
        "/hello" => Response::new(full(format!("hello from {name}"))),
        "/headers" => {
            let mut text = format!("target: {}\n", request.uri());
            for (k, v) in request.headers() {
                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        "/echo" => Response::new(request.into_body().boxed()),
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "http://169.254.169.254/latest/meta-data/")
            .body(full(String::new()))
            .unwrap(),
        _ => Response::builder()
            .status(404)
            .body(full(String::new()))
            .unwrap(),
    }
}

/// A running proxy with its log lines.
struct Proxy {
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<ConnectionLog>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    async fn start(config: ProxyConfig) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Arc::new(config),
            Arc::new(move |line: ConnectionLog| sink.lock().unwrap().push(line)),
            async move {
                let _ = stopped.await;
            },
        ));
        Proxy {
            addr,
            logs,
            stop: Some(stop),
            task,
        }
    }

    /// The first log line for `method` whose `requested` contains `needle`; waits for it
    /// (lines are written when an exchange ends, which can be just after the client has its
    /// last byte).
    async fn log_for(&self, method: &str, needle: &str) -> ConnectionLog {
        for _ in 0..1000 {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.method == method && l.requested.contains(needle))
            {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no {method} log line for {needle}; have {:?}",
            self.logs.lock().unwrap()
        );
    }

    fn reqwest(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", self.addr)).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
    }
}

/// Only the test servers: 127.0.0.1/32 and `ports` (plus 80), names from overrides.
fn lab_policy(ports: &[u16]) -> UrlPolicy {
    let mut policy = UrlPolicy::default();
    policy.address.allow.push("127.0.0.1/32".parse().unwrap());
    policy.ports = ports.iter().copied().chain([80]).collect();
    policy
}

fn lab_resolver() -> Resolver {
    Resolver::default()
        .overrides_only()
        .with_override("allowed.test=127.0.0.1")
        .unwrap()
        .with_override("other.test=127.0.0.1")
        .unwrap()
        .with_override("private.test=10.0.0.1")
        .unwrap()
}

async fn lab_proxy(port: u16) -> Proxy {
    Proxy::start(ProxyConfig::new(lab_policy(&[port]), lab_resolver())).await
}

/// A parsed HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (head, then a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut BufReader<TcpStream>) -> Raw {
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await.unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no status line: {status_line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    Raw {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `request` (raw bytes) to the proxy and reads one response; returns the connection too.
async fn raw(proxy: SocketAddr, request: &str) -> (Raw, BufReader<TcpStream>) {
    let mut stream = BufReader::new(TcpStream::connect(proxy).await.unwrap());
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    (response, stream)
}

/// `CONNECT target`, and the proxy's answer.
async fn connect(proxy: SocketAddr, target: &str) -> (Raw, BufReader<TcpStream>) {
    raw(
        proxy,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    )
    .await
}

/// Through an open tunnel: `GET path` with `Connection: close`, the whole answer as text.
async fn get_through(tunnel: &mut BufReader<TcpStream>, path: &str) -> String {
    tunnel
        .get_mut()
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    tunnel.read_to_string(&mut answer).await.unwrap();
    answer
}

// ---------------------------------------------------------------------------------------------
// Allowed traffic
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connect_tunnels_to_an_allowed_server_by_address_and_by_name() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let port = up.addr.port();

    for target in [format!("127.0.0.1:{port}"), format!("allowed.test:{port}")] {
        let (answer, mut tunnel) = connect(proxy.addr, &target).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let text = get_through(&mut tunnel, "/hello").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hello from upstream"), "{text}");
        drop(tunnel);

        let line = proxy.log_for("CONNECT", &target).await;
        assert_eq!(line.method, "CONNECT");
        assert_eq!(line.decision, Decision::Allow);
        assert_eq!(line.host, target.split(':').next().unwrap());
        assert_eq!(line.port, port);
        assert_eq!(line.connected, Some(up.addr));
        assert_eq!(line.status, 200);
        assert!(line.bytes_up > 0 && line.bytes_down > 0, "{line:?}");
        assert!(line.rule.is_none() && line.reason.is_none());
    }
    proxy.shutdown().await.unwrap();
}

/// A TCP echo server: sends back what it reads, and closes after the client's end-of-stream.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_tunnel_carries_megabytes_intact_and_passes_half_closes_on() {
    let echo = echo_server().await;
    let proxy = lab_proxy(echo.port()).await;
    let target = echo.to_string();
    let (answer, tunnel) = connect(proxy.addr, &target).await;
    assert_eq!(answer.status, 200);

    let sent: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let (mut read, mut write) = tunnel.into_inner().into_split();
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            write.write_all(&sent).await.unwrap();
            // Half-close: the echo server only ends after seeing this end-of-stream, so the
            // proxy must pass it on while still carrying the echo back.
            write.shutdown().await.unwrap();
            write
        })
    };
    let mut back = Vec::new();
    // The outer timeout only keeps a proxy that loses the half-close from hanging the test.
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut back))
        .await
        .expect("the tunnel did not pass the end-of-stream on")
        .unwrap();
    drop(writer.await.unwrap());
    assert!(back == sent, "echo differs: {} bytes back", back.len());

    let line = proxy.log_for("CONNECT", &target).await;
    assert_eq!((line.bytes_up, line.bytes_down), (8 << 20, 8 << 20));
}

#[tokio::test]
async fn bytes_sent_right_after_the_connect_head_reach_the_destination() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let target = format!("127.0.0.1:{}", up.addr.port());
    // The CONNECT head and the tunnelled request in one write: hyper reads both at once and
    // the proxy must hand the extra bytes on.
    let (answer, mut tunnel) = raw(
        proxy.addr,
        &format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n\
             GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    let mut text = String::new();
    tunnel.read_to_string(&mut text).await.unwrap();
    assert!(text.ends_with("hello from upstream"), "{text}");
}

/// A destination that reads one request head, writes `answer` and half-closes, then keeps
/// reading until the proxy closes; returns its address and every byte each connection sent it.
async fn scripted_server(answer: Vec<u8>) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = answer.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut got = Vec::new();
                read_head(&mut stream, &mut got).await;
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
                let mut chunk = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&chunk[..n]);
                    }
                })
                .await;
                record.lock().unwrap().push(got);
            });
        }
    });
    (addr, seen)
}

/// Sends `request` (raw bytes) to the proxy and reads everything until the proxy closes.
async fn exchange_raw(proxy: SocketAddr, request: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy did not close the connection after the answer")
        .unwrap();
    answer
}

/// Waits until `seen` holds `n` connections' bytes.
async fn connections(seen: &Mutex<Vec<Vec<u8>>>, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let got = seen.lock().unwrap().clone();
        if got.len() >= n {
            return got
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the destination saw fewer than {n} connections");
}

#[tokio::test]
async fn bodyless_requests_are_forwarded_once_with_interim_and_chunked_answers_intact() {
    let answer = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\n\
        X-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (addr, seen) = scripted_server(answer.to_vec()).await;
    let proxy = lab_proxy(addr.port()).await;
    let port = addr.port();
    // Two requests in one write: only the first may reach the destination; the second is
    // the client's to send again on a new connection (the answer says `Connection: close`).
    let got = exchange_raw(
        proxy.addr,
        &format!(
            "GET http://allowed.test:{port}/a?k=v HTTP/1.1\r\nHost: evil.test\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\nAccept: */*\r\n\r\n\
             GET http://allowed.test:{port}/b HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
    )
    .await;
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 103 early hints\r\n"), "{text}");
    assert!(text.contains("link: </s.css>\r\n"), "{text}");
    let last = &text[text.find("http/1.1 200 ok\r\n").expect("no final head")..];
    for kept in [
        "transfer-encoding: chunked\r\n",
        "x-kept: yes\r\n",
        "via: 1.1 warden\r\n",
        "connection: close\r\n",
    ] {
        assert!(last.contains(kept), "{kept} missing: {text}");
    }
    for gone in ["x-hop", "keep-alive"] {
        assert!(!last.contains(gone), "{gone} forwarded: {text}");
    }
    assert!(last.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{text}");

    let sent = connections(&seen, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let request = sent[0].to_ascii_lowercase();
    assert!(request.starts_with("get /a?k=v http/1.1\r\n"), "{request}");
    for kept in [
        format!("host: allowed.test:{port}\r\n"),
        "accept: */*\r\n".to_string(),
        "via: 1.1 warden\r\n".to_string(),
        "connection: close\r\n".to_string(),
    ] {
        assert!(request.contains(&kept), "{kept} missing: {request}");
    }
    assert!(request.ends_with("\r\n\r\n"), "{request}");
    for gone in ["proxy-authorization", "evil", "/b"] {
        assert!(!request.contains(gone), "{gone} forwarded: {request}");
    }

    let line = proxy.log_for("GET", "/a").await;
    assert_eq!((line.decision, line.status), (Decision::Allow, 200));
    assert_eq!(line.requested, format!("http://allowed.test:{port}/a?***"));
    assert_eq!(line.bytes_down, answer.len() as u64, "{line:?}");
    assert_eq!(proxy.logs.lock().unwrap().len(), 1);
}

/// Connects to the proxy and sends a bodyless `method` request for `target` on the loopback
/// destination at `port`.
async fn send_bodyless(proxy: SocketAddr, method: &str, port: u16, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let head = format!("{method} http://127.0.0.1:{port}{target} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Sends one `method` request for `target` (a path and query on the scripted destination)
/// through a fresh proxy to a destination that answers `answer`; returns what the client read
/// (or how reading failed), what the destination received, and the log line.
async fn through(
    method: &str,
    target: &str,
    answer: &[u8],
) -> (std::io::Result<Vec<u8>>, String, ConnectionLog) {
    let (addr, seen) = scripted_server(answer.to_vec()).await;
    let proxy = lab_proxy(addr.port()).await;
    let mut stream = send_bodyless(proxy.addr, method, addr.port(), target).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the proxy did not end the answer");
    drop(stream);
    let sent = connections(&seen, 1).await.remove(0);
    let line = proxy.log_for(method, "127.0.0.1").await;
    (read.map(|_| got), sent, line)
}

fn text(bytes: &std::io::Result<Vec<u8>>) -> String {
    String::from_utf8_lossy(bytes.as_ref().expect("the answer ended cleanly")).into_owned()
}

#[tokio::test]
async fn nothing_after_the_framed_body_reaches_the_client() {
    let forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged";
    // Content-Length: exactly that many bytes.
    let (got, _, line) = through(
        "GET",
        "/",
        format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi{forged}").as_bytes(),
    )
    .await;
    let got = text(&got);
    assert!(got.ends_with("\r\n\r\nhi"), "{got}");
    assert_eq!(line.status, 200);
    // Chunked: up to the last chunk; extensions dropped, trailers kept.
    let (got, _, _) = through(
        "GET",
        "/",
        format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             2;name=value\r\nhi\r\n1\r\n!\r\n0\r\nX-Sum: 3\r\n\r\n{forged}"
        )
        .as_bytes(),
    )
    .await;
    let got = text(&got);
    assert!(
        got.ends_with("\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\nx-sum: 3\r\n\r\n"),
        "{got}"
    );
    // Empty list items in Transfer-Encoding are ignored (RFC 9110 section 5.6.1), as clients
    // ignore them: the body is chunked, and the field goes on normalized.
    let (got, _, _) = through(
        "GET",
        "/",
        format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\nTransfer-Encoding:\r\n\r\n\
             0\r\n\r\n{forged}"
        )
        .as_bytes(),
    )
    .await;
    let got = text(&got);
    assert!(got.contains("transfer-encoding: chunked\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\n0\r\n\r\n"), "{got}");
    // HEAD, 204 and 304 have no body, whatever follows.
    for (method, status) in [
        ("HEAD", "200 OK"),
        ("GET", "204 No Content"),
        ("GET", "304 Not Modified"),
    ] {
        let (got, _, _) = through(
            method,
            "/",
            format!("HTTP/1.1 {status}\r\nContent-Length: 6\r\n\r\n{forged}").as_bytes(),
        )
        .await;
        let got = text(&got);
        assert!(got.ends_with("\r\n\r\n"), "{method} {status}: {got}");
        assert!(!got.contains("forged"), "{method} {status}: {got}");
    }
}

#[tokio::test]
async fn a_body_cut_short_resets_the_client_connection() {
    for answer in [
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly ten b",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a size",
        // An empty size line is not a last chunk.
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\r\n\r\n",
    ] {
        let (got, _, line) = through("GET", "/", answer.as_bytes()).await;
        assert_eq!(
            got.as_ref().map_err(std::io::Error::kind).err(),
            Some(std::io::ErrorKind::ConnectionReset),
            "{answer:?}: {got:?}"
        );
        assert_eq!(
            (line.decision, line.rule.as_deref()),
            (Decision::Error, Some("upstream")),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn a_body_cut_by_the_idle_timeout_resets_the_client_connection() {
    // A destination that sends a head and part of a body delimited by its closing, then
    // falls silent without closing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = stream.read(&mut head).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\n\r\npartial")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut config = ProxyConfig::new(lab_policy(&[addr.port()]), lab_resolver());
    config.idle_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config).await;
    let mut stream = send_bodyless(proxy.addr, "GET", addr.port(), "/").await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("the idle timeout did not end the connection");
    assert_eq!(
        read.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Logged with the status that went out, as cut.
    let line = proxy.log_for("GET", "127.0.0.1").await;
    assert_eq!(
        (line.status, line.decision, line.rule.as_deref()),
        (200, Decision::Error, Some("cut")),
        "{line:?}"
    );
}

#[tokio::test]
async fn a_destination_answering_499_is_logged_as_an_answer() {
    // 499 also marks "no answer" in the log; a real one must not look like that.
    let answer = b"HTTP/1.1 499 Client Closed Request\r\nContent-Length: 0\r\n\r\n";
    let (got, _, line) = through("GET", "/", answer).await;
    assert!(text(&got).starts_with("HTTP/1.1 499"), "{}", text(&got));
    assert_eq!(
        (line.status, line.decision, line.rule.as_deref()),
        (499, Decision::Allow, None),
        "{line:?}"
    );
}

#[tokio::test]
async fn odd_answers_and_targets() {
    // A query-only target is sent as `/?query`.
    let (got, sent, _) = through(
        "GET",
        "?x=1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(sent.starts_with("GET /?x=1 HTTP/1.1\r\n"), "{sent}");
    assert!(text(&got).starts_with("HTTP/1.1 200 OK\r\n"));
    // A switch of protocols that was never asked for is a bad gateway.
    let (got, _, line) = through(
        "GET",
        "/",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw bytes",
    )
    .await;
    assert!(
        text(&got).starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{got:?}"
    );
    assert_eq!(line.rule.as_deref(), Some("upstream"));
    // A HEAD request's 502 has a length but no body.
    let (got, _, _) = through("HEAD", "/", b"").await;
    let got = text(&got);
    assert!(got.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\n"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("content-length: "),
        "{got}"
    );
}

/// Reads from `stream` into `got` until it holds a whole request head; false when the stream
/// ended (or failed) first.
async fn read_head(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// A destination that reads a request head, tells `got_request`, and never answers.
async fn silent_server() -> (SocketAddr, tokio::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_request, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let got_request = got_request.clone();
            tokio::spawn(async move {
                if !read_head(&mut stream, &mut Vec::new()).await {
                    return;
                }
                let _ = got_request.send(()).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_logged_as_unanswered() {
    // GET goes the fast path, a POST with a body through hyper.
    for (method, extra) in [("GET", ""), ("POST", "Content-Length: 2\r\n\r\nhi")] {
        let (addr, mut got_request) = silent_server().await;
        let proxy = lab_proxy(addr.port()).await;
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!(
            "{method} http://127.0.0.1:{}/wait HTTP/1.1\r\nHost: x\r\n{}",
            addr.port(),
            if extra.is_empty() { "\r\n" } else { extra }
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), got_request.recv())
            .await
            .expect("the request did not reach the destination");
        drop(stream);
        let line = proxy.log_for(method, "/wait").await;
        assert_eq!(
            line.status,
            warden_egress::proxy::NO_ANSWER_STATUS,
            "{method}: {line:?}"
        );
        assert_eq!(line.decision, Decision::Allow, "{method}: {line:?}");
        assert!(
            matches!(line.rule.as_deref(), Some("client" | "no_answer")),
            "{method}: {line:?}"
        );
    }
}

#[tokio::test]
async fn a_large_answer_arrives_intact_and_is_counted() {
    let body: Vec<u8> = (0..8u32 << 20).map(|i| (i * 13 % 251) as u8).collect();
    let mut answer =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    answer.extend_from_slice(&body);
    let (addr, _) = scripted_server(answer.clone()).await;
    let proxy = lab_proxy(addr.port()).await;
    let response = proxy
        .reqwest()
        .get(format!("http://127.0.0.1:{}/big", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["connection"], "close");
    assert!(response.bytes().await.unwrap() == body);
    let line = proxy.log_for("GET", "/big").await;
    assert_eq!(line.bytes_down, answer.len() as u64, "{line:?}");
}

#[tokio::test]
async fn a_destination_that_answers_garbage_is_502() {
    let (addr, _) = scripted_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()).await;
    let proxy = lab_proxy(addr.port()).await;
    let (answer, _) = raw(
        proxy.addr,
        &format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\n\r\n",
            addr.port()
        ),
    )
    .await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(
        answer
            .header("x-warden-error")
            .unwrap()
            .starts_with("upstream: "),
        "{answer:?}"
    );
    let line = proxy.log_for("GET", "127.0.0.1").await;
    assert_eq!((line.decision, line.status), (Decision::Error, 502));
    assert_eq!(line.rule.as_deref(), Some("upstream"));
}

#[tokio::test]
async fn reqwest_gets_an_allowed_server_through_the_proxy() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let url = format!("http://allowed.test:{}/hello", up.addr.port());

    let response = proxy.reqwest().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("via").unwrap().to_str().unwrap(),
        "1.1 warden"
    );
    assert_eq!(response.text().await.unwrap(), "hello from upstream");

    let line = proxy.log_for("GET", &url).await;
    assert_eq!(
        (line.method.as_str(), line.decision, line.status),
        ("GET", Decision::Allow, 200)
    );
    assert_eq!(
        (line.host.as_str(), line.port),
        ("allowed.test", up.addr.port())
    );
    assert_eq!(line.connected, Some(up.addr));
    assert!(line.bytes_up > 0 && line.bytes_down > 0, "{line:?}");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_bodies_stream_both_ways() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let body: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let response = proxy
        .reqwest()
        .post(format!("http://127.0.0.1:{}/echo", up.addr.port()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap() == body);
    let line = proxy.log_for("POST", "/echo").await;
    assert!(
        line.bytes_up > 4 << 20 && line.bytes_down > 4 << 20,
        "{line:?}"
    );
}

#[tokio::test]
async fn forwarded_requests_lose_hop_by_hop_fields_and_proxy_credentials() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let port = up.addr.port();
    let (answer, _) = raw(
        proxy.addr,
        &format!(
            "GET http://allowed.test:{port}/headers?q=1 HTTP/1.1\r\n\
             Host: attacker.example\r\n\
             Connection: close, X-Hop\r\n\
             X-Hop: secret\r\n\
             Keep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
             Upgrade: websocket\r\n\
             TE: trailers\r\n\
             X-End-To-End: kept\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = answer.body.to_ascii_lowercase();
    assert!(seen.starts_with("target: /headers?q=1\n"), "{seen}");
    assert!(
        seen.contains(&format!("host: allowed.test:{port}\n")),
        "{seen}"
    );
    assert!(seen.contains("x-end-to-end: kept\n"), "{seen}");
    assert!(seen.contains("via: 1.1 warden\n"), "{seen}");
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
        "te:",
        "attacker",
    ] {
        assert!(!seen.contains(gone), "{gone} was forwarded: {seen}");
    }
}

#[tokio::test]
async fn redirects_go_back_to_the_client_and_the_next_hop_is_judged() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let url = format!("http://127.0.0.1:{}/redirect", up.addr.port());

    // Not followed by the proxy: the client sees the 302.
    let response = proxy.reqwest().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 302);

    // A client that follows it asks the proxy for the metadata address, which is denied.
    let following = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", proxy.addr)).unwrap())
        .build()
        .unwrap();
    let response = following.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let line = proxy.log_for("GET", "169.254.169.254").await;
    assert_eq!(line.decision, Decision::Deny);
    assert_eq!(line.rule.as_deref(), Some("address"));
}

// ---------------------------------------------------------------------------------------------
// Denied traffic
// ---------------------------------------------------------------------------------------------

/// One denied destination, asked for both as absolute-form (reqwest) and `CONNECT` (raw):
/// `403`, `X-Warden-Deny-Reason` starting with `rule`, a deny log line with that rule, and no
/// connection to the upstream.
async fn assert_denied(proxy: &Proxy, up: &Upstream, authority: &str, rule: &str, says: &str) {
    let before = up.accepted.load(Ordering::SeqCst);
    let url = format!("http://{authority}/hello");
    let response = proxy.reqwest().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 403, "{url}");
    let reason = response.headers()["x-warden-deny-reason"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with(&format!("{rule}: ")), "{url}: {reason}");
    assert!(reason.contains(says), "{url}: {reason}");
    assert!(response.text().await.unwrap().contains(says));
    let sent = url::Url::parse(&url).unwrap().to_string();
    let line = proxy.log_for("GET", &sent).await;
    assert_eq!(line.decision, Decision::Deny, "{line:?}");
    assert_eq!(line.rule.as_deref(), Some(rule));
    assert_eq!((line.status, line.connected), (403, None));
    assert!(line.reason.unwrap().contains(says));

    let target = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let (answer, _) = connect(proxy.addr, &target).await;
    assert_eq!(answer.status, 403, "CONNECT {target}");
    let reason = answer.header("x-warden-deny-reason").unwrap();
    assert!(
        reason.starts_with(&format!("{rule}: ")),
        "{target}: {reason}"
    );
    let line = proxy.log_for("CONNECT", &target).await;
    assert_eq!(
        (line.method.as_str(), line.decision),
        ("CONNECT", Decision::Deny)
    );
    assert_eq!(line.rule.as_deref(), Some(rule));

    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        before,
        "{url} reached upstream"
    );
}

#[tokio::test]
async fn loopback_is_denied_unless_the_operator_allows_it() {
    let up = upstream().await;
    let mut policy = lab_policy(&[up.addr.port()]);
    policy.address.allow.clear();
    let proxy = Proxy::start(ProxyConfig::new(policy, lab_resolver())).await;
    let port = up.addr.port();
    assert_denied(
        &proxy,
        &up,
        &format!("127.0.0.1:{port}"),
        "address",
        "loopback",
    )
    .await;
    // Other spellings of the same address.
    assert_denied(
        &proxy,
        &up,
        &format!("[::ffff:127.0.0.1]:{port}"),
        "address",
        "IPv4-mapped",
    )
    .await;
    assert_denied(
        &proxy,
        &up,
        &format!("allowed.test:{port}"),
        "address",
        "loopback",
    )
    .await;
}

#[tokio::test]
async fn metadata_localhost_private_names_and_other_ports_are_denied() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let port = up.addr.port();
    assert_denied(&proxy, &up, "169.254.169.254", "address", "link-local").await;
    assert_denied(
        &proxy,
        &up,
        &format!("localhost:{port}"),
        "blocked_name",
        "RFC 6761",
    )
    .await;
    assert_denied(
        &proxy,
        &up,
        &format!("private.test:{port}"),
        "address",
        "10.0.0.1",
    )
    .await;
    assert_denied(
        &proxy,
        &up,
        "allowed.test:1",
        "port",
        "port 1 is not allowed",
    )
    .await;
}

#[tokio::test]
async fn a_domain_allow_list_admits_only_its_names() {
    let up = upstream().await;
    let port = up.addr.port();
    let policy = lab_policy(&[port])
        .with_allow_domains(&["allowed.test"])
        .unwrap();
    let proxy = Proxy::start(ProxyConfig::new(policy, lab_resolver())).await;

    // other.test resolves to the same allowed address, but the name is not on the list.
    assert_denied(
        &proxy,
        &up,
        &format!("other.test:{port}"),
        "domain_not_allowed",
        "other.test",
    )
    .await;
    let response = proxy
        .reqwest()
        .get(format!("http://allowed.test:{port}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (answer, _) = connect(proxy.addr, &format!("allowed.test:{port}")).await;
    assert_eq!(answer.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Malformed requests and failures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn requests_that_are_not_proxy_requests_are_400() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let port = up.addr.port();

    let (origin_form, _) = raw(
        proxy.addr,
        &format!("GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .await;
    assert_eq!(origin_form.status, 400);
    assert!(
        origin_form.body.contains("forward proxy"),
        "{origin_form:?}"
    );
    assert!(origin_form
        .header("x-warden-error")
        .unwrap()
        .starts_with("bad_request: "));

    let (https, _) = raw(
        proxy.addr,
        &format!("GET https://127.0.0.1:{port}/hello HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(https.status, 400);
    assert!(https.body.contains("CONNECT"), "{https:?}");

    let (no_port, _) = connect(proxy.addr, "allowed.test").await;
    assert_eq!(no_port.status, 400);

    let line = proxy.log_for("GET", "/hello").await;
    assert_eq!(line.requested, "/hello");
    assert_eq!((line.decision, line.status), (Decision::Error, 400));
    assert_eq!(line.rule.as_deref(), Some("bad_request"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn credentials_in_the_url_are_denied_and_kept_out_of_the_log() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let port = up.addr.port();
    let (answer, _) = raw(
        proxy.addr,
        &format!("GET http://user:hunter2@127.0.0.1:{port}/hello HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(answer
        .header("x-warden-deny-reason")
        .unwrap()
        .starts_with("userinfo: "));
    let line = proxy.log_for("GET", "/hello").await;
    assert_eq!(line.requested, format!("http://***@127.0.0.1:{port}/hello"));
    assert!(!format!("{line:?}").contains("hunter2"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn other_schemes_in_absolute_form_are_denied() {
    let proxy = lab_proxy(21).await;
    let (answer, _) = raw(
        proxy.addr,
        "GET ftp://127.0.0.1:21/file HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(answer
        .header("x-warden-deny-reason")
        .unwrap()
        .starts_with("scheme: "));
}

#[tokio::test]
async fn unresolvable_names_and_refused_connections_are_502() {
    // A port with nothing listening: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = lab_proxy(port).await;

    let response = proxy
        .reqwest()
        .get(format!("http://nowhere.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.headers()["x-warden-error"]
        .to_str()
        .unwrap()
        .starts_with("resolve: "));
    let line = proxy.log_for("GET", "nowhere.test").await;
    assert_eq!(
        (line.decision, line.rule.as_deref(), line.status),
        (Decision::Error, Some("resolve"), 502)
    );

    let (answer, _) = connect(proxy.addr, &format!("127.0.0.1:{port}")).await;
    assert_eq!(answer.status, 502);
    let line = proxy.log_for("CONNECT", &format!("127.0.0.1:{port}")).await;
    assert_eq!(line.rule.as_deref(), Some("connect"));
    assert!(line.reason.unwrap().contains("refused"));
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_over_the_limit_get_503_until_one_ends() {
    let up = upstream().await;
    let port = up.addr.port();
    let mut config = ProxyConfig::new(lab_policy(&[port]), lab_resolver());
    config.max_connections = 1;
    let proxy = Proxy::start(config).await;

    let (answer, tunnel) = connect(proxy.addr, &format!("127.0.0.1:{port}")).await;
    assert_eq!(answer.status, 200);

    let url = format!("http://127.0.0.1:{port}/hello");
    let (refused, _) = raw(
        proxy.addr,
        &format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused
        .header("x-warden-error")
        .unwrap()
        .starts_with("over_capacity: "));
    let line = proxy.log_for("GET", &url).await;
    assert_eq!(
        (line.decision, line.rule.as_deref(), line.status),
        (Decision::Error, Some("over_capacity"), 503)
    );

    // Closing the tunnel frees its place (the proxy notices the close asynchronously).
    drop(tunnel);
    let mut status = 0;
    for _ in 0..500 {
        status = proxy
            .reqwest()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_after_the_idle_timeout() {
    // A destination that accepts and then says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let (stream, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    });
    let mut config = ProxyConfig::new(lab_policy(&[port]), lab_resolver());
    config.idle_timeout = Duration::from_millis(300);
    let proxy = Proxy::start(config).await;

    let target = format!("127.0.0.1:{port}");
    let (answer, mut tunnel) = connect(proxy.addr, &target).await;
    assert_eq!(answer.status, 200);
    // Nobody speaks: the proxy closes the tunnel, and the client reads end-of-stream (the
    // outer timeout only keeps a broken proxy from hanging the test).
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tunnel.read_to_end(&mut rest))
        .await
        .expect("the idle tunnel was not closed");
    assert_eq!((read.unwrap(), rest.len()), (0, 0));
    let line = proxy.log_for("CONNECT", &target).await;
    assert_eq!(
        (line.decision, line.bytes_up, line.bytes_down),
        (Decision::Allow, 0, 0)
    );
    held.abort();
}

#[tokio::test]
async fn zero_timeouts_are_refused_with_a_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = ProxyConfig::new(UrlPolicy::default(), Resolver::default());
    config.idle_timeout = Duration::ZERO;
    let err = serve(
        listener,
        Arc::new(config),
        Arc::new(|_| {}),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("idle_timeout"), "{err}");
}

#[tokio::test]
async fn shutdown_closes_tunnels_and_returns() {
    let up = upstream().await;
    let proxy = lab_proxy(up.addr.port()).await;
    let (answer, mut tunnel) = connect(proxy.addr, &format!("127.0.0.1:{}", up.addr.port())).await;
    assert_eq!(answer.status, 200);
    proxy.shutdown().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(tunnel.read_to_end(&mut rest).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// DNS through hickory-resolver
// ---------------------------------------------------------------------------------------------

/// A UDP DNS server on 127.0.0.1:0 (on a thread of its own, so blocking and async tests can
/// use it) answering from `answer(name, type, n)`, where `n` counts earlier A queries for any
/// name. Answers carry TTL 0, so a resolver must ask again each time.
struct Dns {
    addr: SocketAddr,
    a_queries: Arc<AtomicUsize>,
}

fn dns_server(answer: impl Fn(&str, RecordType, usize) -> Vec<IpAddr> + Send + 'static) -> Dns {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let a_queries = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&a_queries);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
            reply.metadata.message_type = MessageType::Response;
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.metadata.authoritative = true;
            for q in &query.queries {
                let name = q
                    .name()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                let seen = if q.query_type() == RecordType::A {
                    count.fetch_add(1, Ordering::SeqCst)
                } else {
                    count.load(Ordering::SeqCst)
                };
                for ip in answer(&name, q.query_type(), seen) {
                    let wanted = matches!(
                        (ip, q.query_type()),
                        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
                    );
                    if wanted {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 0, RData::from(ip)));
                    }
                }
            }
            reply.add_queries(query.queries.clone());
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
        }
    });
    Dns { addr, a_queries }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Public addresses for `good.test` (never connected to: the tests only judge them),
/// one private address among public ones for `mixed.test`, nothing for anything else.
fn zone(name: &str, _: RecordType, _: usize) -> Vec<IpAddr> {
    match name {
        "good.test" => ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]),
        "mixed.test" => ips(&["93.184.215.14", "10.0.0.1", "8.8.8.8"]),
        _ => vec![],
    }
}

#[test]
fn blocking_resolve_asks_the_configured_name_server() {
    let dns = dns_server(zone);
    let resolver = Resolver::default().with_nameservers(vec![dns.addr]);
    let mut found = resolver.resolve("good.test", 443).unwrap();
    found.sort();
    assert_eq!(
        found,
        ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    );
    let target = UrlPolicy::default()
        .check("https://good.test/", &resolver)
        .unwrap();
    assert_eq!(target.addresses.len(), 2);
    assert!(matches!(
        resolver.resolve("missing.test", 443),
        Err(Denial::Resolve { .. })
    ));
}

#[tokio::test]
async fn async_and_blocking_resolve_work_inside_a_runtime() {
    let dns = dns_server(zone);
    let resolver = Resolver::default().with_nameservers(vec![dns.addr]);
    let target = UrlPolicy::default()
        .check_async("https://good.test/", &resolver)
        .await
        .unwrap();
    assert_eq!(target.addresses.len(), 2);
    // The blocking call from a runtime thread must not panic or deadlock.
    assert_eq!(resolver.resolve("good.test", 443).unwrap().len(), 2);
}

#[tokio::test]
async fn one_private_address_among_public_ones_denies_the_name() {
    let dns = dns_server(zone);
    let resolver = Resolver::default().with_nameservers(vec![dns.addr]);
    let denial = UrlPolicy::default()
        .check_async("http://mixed.test/", &resolver)
        .await
        .unwrap_err();
    assert!(
        matches!(&denial, Denial::Address { address, .. } if address.to_string() == "10.0.0.1"),
        "{denial:?}"
    );

    // Through the proxy: denied before any connection (no address of the answer is used).
    let proxy = Proxy::start(ProxyConfig::new(UrlPolicy::default(), resolver)).await;
    let response = proxy
        .reqwest()
        .get("http://mixed.test/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let reason = response.headers()["x-warden-deny-reason"].to_str().unwrap();
    assert!(
        reason.starts_with("address: mixed.test: 10.0.0.1 is in 10.0.0.0/8"),
        "{reason}"
    );
    let line = proxy.log_for("GET", "mixed.test").await;
    assert_eq!((line.decision, line.connected), (Decision::Deny, None));
}

#[tokio::test]
async fn a_name_server_that_does_not_answer_times_out() {
    let mute = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = Resolver::default()
        .with_nameservers(vec![mute.local_addr().unwrap()])
        .with_timeout(Duration::from_millis(300));
    let denial = resolver.resolve_async("good.test", 443).await.unwrap_err();
    assert!(
        matches!(&denial, Denial::Resolve { host, .. } if host == "good.test"),
        "{denial:?}"
    );
}

#[tokio::test]
async fn overrides_and_the_custom_hook_come_before_dns() {
    let dns = dns_server(zone);
    let custom: warden_egress::CustomResolve = Arc::new(|_: &str, _| Ok(ips(&["198.51.100.7"])));
    let resolver = Resolver::default()
        .with_nameservers(vec![dns.addr])
        .with_override("good.test=127.0.0.9")
        .unwrap();
    assert_eq!(
        resolver.resolve_async("good.test", 80).await.unwrap(),
        ips(&["127.0.0.9"])
    );
    let resolver = resolver.with_custom(custom);
    assert_eq!(
        resolver.resolve_async("mixed.test", 80).await.unwrap(),
        ips(&["198.51.100.7"])
    );
    assert_eq!(dns.a_queries.load(Ordering::SeqCst), 0);
}

/// A rebinding name server answers the first A query for `rebind.test` with 127.0.0.2 (the
/// only address this policy allows, standing in for a public one) and every later one with
/// 127.0.0.1, where a "private" server listens on the same port. A proxy that resolved twice
/// (once to check, once to connect) would reach it.
#[tokio::test]
async fn a_rebinding_name_server_cannot_make_the_proxy_reach_the_private_address() {
    let public = upstream_on("127.0.0.2:0".parse().unwrap(), "public")
        .await
        .unwrap();
    let port = public.addr.port();
    let private = upstream_on(SocketAddr::from(([127, 0, 0, 1], port)), "private")
        .await
        .unwrap();
    let dns = dns_server(|name, _, seen| match (name, seen) {
        ("rebind.test", 0) => ips(&["127.0.0.2"]),
        ("rebind.test", _) => ips(&["127.0.0.1"]),
        _ => vec![],
    });
    let mut policy = UrlPolicy::default();
    policy.address.allow.push("127.0.0.2/32".parse().unwrap());
    policy.ports = vec![port];
    let resolver = Resolver::default().with_nameservers(vec![dns.addr]);
    let proxy = Proxy::start(ProxyConfig::new(policy, resolver)).await;
    let url = format!("http://rebind.test:{port}/hello");

    // First request: one lookup (127.0.0.2), judged, and the connection goes there.
    let response = proxy.reqwest().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello from public");
    assert_eq!(
        proxy.log_for("GET", &url).await.connected,
        Some(public.addr)
    );

    // Every later lookup says 127.0.0.1: judged and denied, by absolute-form and CONNECT.
    let response = proxy.reqwest().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let (answer, _) = connect(proxy.addr, &format!("rebind.test:{port}")).await;
    assert_eq!(answer.status, 403);
    assert!(answer
        .header("x-warden-deny-reason")
        .unwrap()
        .contains("127.0.0.1 is in 127.0.0.0/8 (loopback"));

    assert!(
        dns.a_queries.load(Ordering::SeqCst) >= 3,
        "the DNS cache hid the rebinding"
    );
    assert_eq!(public.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(
        private.accepted.load(Ordering::SeqCst),
        0,
        "rebinding reached 127.0.0.1"
    );
}
