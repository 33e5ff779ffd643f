//! Proxy throughput: one HTTP/1.1 download of `WARDEN_BENCH_MB` MiB (default 100) from a
//! loopback hyper server, directly, through the proxy in absolute-form, and through a
//! `CONNECT` tunnel, in the same process and run, `WARDEN_BENCH_ROUNDS` rounds (default 15)
//! interleaved, each round in another order. Prints the median MB/s of each; the median over
//! rounds of its ratio to the direct download of the same round (paired, so that a host whose
//! speed drifts between rounds, as a shared VM's does, disturbs it less than the ratio of the
//! medians); and the CPU time the whole process (origin, proxy and client together) spent per
//! download.
//!
//! Target (brief): proxied transfer at least 80 % of direct.
//!
//! Run: `cargo bench -p warden-egress --bench proxy_throughput`

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use warden_egress::proxy::{serve, ProxyConfig};
use warden_egress::{Resolver, UrlPolicy};

type BoxError = Box<dyn Error + Send + Sync>;

/// `left` bytes, sent as slices of one shared 1 MiB buffer (no allocation per chunk).
struct Repeat {
    chunk: Bytes,
    left: u64,
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        let data = self.chunk.slice(..usize::try_from(n).unwrap_or(0));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

async fn origin(size: u64) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<hyper::body::Incoming>| {
                    let body = Repeat {
                        chunk: chunk.clone(),
                        left: size,
                    };
                    async move { Ok::<_, Infallible>(Response::new(body)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn proxy(origin: SocketAddr) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut policy = UrlPolicy::default();
    policy.address.allow.push("127.0.0.1/32".parse()?);
    policy.ports = vec![origin.port()];
    let config = Arc::new(ProxyConfig::new(
        policy,
        Resolver::default().overrides_only(),
    ));
    tokio::spawn(serve(
        listener,
        config,
        Arc::new(|_| {}),
        std::future::pending(),
    ));
    Ok(addr)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Direct,
    Absolute,
    Tunnel,
}

/// One download; returns the bytes received and the time taken.
async fn download(
    mode: Mode,
    origin: SocketAddr,
    proxy: SocketAddr,
) -> Result<(u64, Duration), BoxError> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(if mode == Mode::Direct { origin } else { proxy }).await?;
    stream.set_nodelay(true)?;
    if mode == Mode::Tunnel {
        stream
            .write_all(format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes())
            .await?;
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        if !line.starts_with("HTTP/1.1 200") {
            return Err(format!("CONNECT refused: {line}").into());
        }
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).await?;
        }
    }
    let uri = if mode == Mode::Absolute {
        format!("http://{origin}/big")
    } else {
        "/big".to_string()
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = Request::get(uri)
        .header("host", origin.to_string())
        .body(http_body_util::Empty::<Bytes>::new())?;
    let mut body = sender.send_request(request).await?.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            received += data.len() as u64;
        }
    }
    Ok((received, start.elapsed()))
}

/// CPU time of this process so far (user + system), in seconds, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s, the USER_HZ of mainstream Linux ports).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), BoxError> {
    let mib = env_number("WARDEN_BENCH_MB", 100);
    let rounds = env_number("WARDEN_BENCH_ROUNDS", 15).max(1);
    let size = mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let origin = origin(size).await?;
        let proxy = proxy(origin).await?;
        let modes = [
            (Mode::Direct, "direct"),
            (Mode::Absolute, "proxy, absolute-form"),
            (Mode::Tunnel, "proxy, CONNECT tunnel"),
        ];
        // One warm-up download each.
        for (mode, _) in modes {
            download(mode, origin, proxy).await?;
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut cpu = vec![0.0f64; modes.len()];
        for round in 0..rounds {
            // Each round starts with another mode, so no mode always follows the same one.
            for k in 0..modes.len() {
                let i = (k + round as usize) % modes.len();
                let mode = &modes[i].0;
                let before = cpu_seconds();
                let (bytes, took) = download(*mode, origin, proxy).await?;
                cpu[i] += cpu_seconds() - before;
                if bytes != size {
                    return Err(format!("received {bytes} bytes, expected {size}").into());
                }
                rates[i].push(bytes as f64 / 1e6 / took.as_secs_f64());
            }
        }
        let paired: Vec<Vec<f64>> = rates
            .iter()
            .map(|mode| mode.iter().zip(&rates[0]).map(|(r, d)| r / d).collect())
            .collect();
        println!(
            "proxy throughput: {mib} MiB per download, median of {rounds} rounds, {} CPUs",
            std::thread::available_parallelism().map_or(0, usize::from)
        );
        for (i, (_, name)) in modes.iter().enumerate() {
            let rate = median(&mut rates[i]);
            println!(
                "  {name:<24} {rate:>9.1} MB/s   {:>5.1} % of direct (paired)   CPU {:>6.0} ms/download",
                median(&mut paired[i].clone()) * 100.0,
                cpu[i] / rounds as f64 * 1e3
            );
        }
        Ok(())
    })
}
