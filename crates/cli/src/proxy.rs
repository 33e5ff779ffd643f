//! `warden proxy`: the egress policy as a forward proxy (HTTP CONNECT and absolute-form HTTP).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use warden_egress::proxy::{serve, ConnectionLog, ProxyConfig};

use crate::run::parse_timeout;
use crate::url::PolicyArgs;

/// Options of `warden proxy`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each request or tunnel is judged by the egress policy (the same as `warden url check`); denied ones get 403 with an X-Warden-Deny-Reason header. One JSON line per request goes to stdout: client, requested, host, port, connected, decision, reason, rule, status, bytes_up, bytes_down, duration_ms."
)]
pub struct ProxyArgs {
    /// Address to listen on. Anything but loopback makes the proxy reachable from the network:
    /// put it behind a firewall or a NetworkPolicy.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3128")]
    listen: SocketAddr,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Take the policy from this warden.toml's [egress] section instead of the policy flags
    /// (--resolve still applies).
    #[arg(long, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Seconds allowed to connect to a destination.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    connect_timeout: Duration,
    /// Seconds after which a connection or tunnel with no traffic is closed.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_timeout)]
    idle_timeout: Duration,
    /// Client connections and tunnels served at once; more get 503.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_connections: u32,
}

/// Runs `warden proxy` until SIGINT or SIGTERM.
pub fn main(args: ProxyArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &ProxyArgs) -> anyhow::Result<()> {
    let (mut policy, resolver) = args.policy.build()?;
    if let Some(path) = &args.config {
        if args.policy.has_policy_rules() {
            anyhow::bail!("--config takes the policy from the file's [egress] section: drop --allow-domain/--deny-domain/--allow-cidr/--deny-cidr/--allow-port, or drop --config");
        }
        policy = warden_server::Config::load(Some(path))?.egress_policy()?;
    }
    let mut config = ProxyConfig::new(policy, resolver);
    config.connect_timeout = args.connect_timeout;
    config.idle_timeout = args.idle_timeout;
    config.max_connections = args.max_connections as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
        let local = listener.local_addr().context("listening address")?;
        eprintln!("warden proxy: listening on {local}");
        // A log line that cannot be written (stdout closed or full) is dropped: the proxy
        // keeps answering (println! would panic in the connection's task and reset it).
        let log = Arc::new(|line: ConnectionLog| {
            if let Ok(json) = serde_json::to_string(&line) {
                let _ = outln!("{json}");
            }
        });
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            eprintln!("warden proxy: shutting down");
        };
        serve(listener, Arc::new(config), log, shutdown)
            .await
            .context("proxy")
    })
}
