//! `warden run [OPTIONS] -- PROGRAM [ARGS...]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use warden_egress::proxy::{ConnectionLog, Decision, ProxyConfig};
use warden_egress::session::{proxy_env, ProxySession, SANDBOX_PROXY_PORT};
use warden_sandbox::{format_size, parse_size, InputFile, Layer, Limits, Sandbox, Spec, Stdin};

use crate::url::PolicyArgs;

/// Exit status when Warden itself failed (as `docker run`).
pub const EXIT_WARDEN_FAILED: u8 = 125;

/// Options of `warden run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: the program's own; 128+N when killed by signal N (137 after a timeout or OOM kill); 125 when Warden failed; 126 when the program cannot be executed; 127 when it is not found in the sandbox."
)]
pub struct RunArgs {
    /// Wall-clock limit in seconds (fractions allowed); the sandbox is killed when it passes.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_timeout)]
    timeout: Duration,
    /// Memory limit (K/M/G suffixes, binary), swap disabled.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size_arg)]
    memory: u64,
    /// Maximum number of the program's processes and threads.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pids: u64,
    /// CPU bandwidth in CPUs (for example 0.5, 2).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    cpus: f64,
    /// Size of the /tmp (and /dev/shm) tmpfs.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size_arg)]
    tmpfs_size: u64,
    /// Size of the working directory (/work) tmpfs.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size_arg)]
    workdir_size: u64,
    /// Bytes kept per output stream (stdout, stderr); the rest is discarded and reported.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size_arg)]
    output_limit: u64,
    /// Environment variable for the program (repeatable); the sandbox otherwise gets a minimal environment.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Copy a host file into the working directory (repeatable); SANDBOX_PATH is relative to /work.
    #[arg(long = "file", value_name = "HOST_PATH:SANDBOX_PATH", value_parser = parse_file)]
    files: Vec<(PathBuf, String)>,
    /// Print one JSON object (the Outcome) as the last line of stdout instead of the program's output.
    #[arg(long)]
    json: bool,
    /// Run although this host lacks LAYER (repeatable); reported in the Outcome. One of:
    /// seccomp, pids, memory, userns, landlock.
    #[arg(long = "allow-missing", value_name = "LAYER", value_parser = parse_layer)]
    allow_missing: Vec<Layer>,
    /// cgroup, relative to each hierarchy's root (no leading `/`), under which each execution's cgroup is created.
    #[arg(long, value_name = "PATH", default_value = "warden")]
    cgroup_parent: String,
    /// Do not forward standard input (the program reads end-of-file).
    #[arg(long)]
    no_stdin: bool,
    /// Network of the sandbox: `none` (its own namespace with only loopback) or `proxy` (the
    /// same, plus Warden's egress proxy on 127.0.0.1:3128 inside it, in HTTP_PROXY and
    /// HTTPS_PROXY; only what the policy flags allow gets through, and --allow-domain is required).
    #[arg(long, value_enum, value_name = "MODE", default_value = "none")]
    network: NetworkMode,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Program to run (a path inside the sandbox or a name on its PATH), then its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]..."
    )]
    command: Vec<String>,
}

/// `--network` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// No network: the sandbox's own namespace with only loopback.
    None,
    /// HTTP(S) through Warden's egress proxy, judged by the policy flags.
    Proxy,
}

/// Seconds for a time limit flag: greater than 0, at most 86400 (a day), fractions allowed.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (for example 30 or 2.5)"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!(
            "`{s}`: expected seconds greater than 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    let n = parse_size(s).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err(format!("`{s}`: must be greater than zero"));
    }
    Ok(n)
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}`: expected KEY=VALUE with a non-empty KEY")),
    }
}

fn parse_file(s: &str) -> Result<(PathBuf, String), String> {
    match s.rsplit_once(':') {
        Some((host, sandbox)) if !host.is_empty() && !sandbox.is_empty() => {
            Ok((PathBuf::from(host), sandbox.to_string()))
        }
        _ => Err(format!(
            "`{s}`: expected HOST_PATH:SANDBOX_PATH, for example ./data.csv:data.csv"
        )),
    }
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    let layer: Layer = s
        .parse()
        .map_err(|e: warden_sandbox::UnknownLayer| e.to_string())?;
    if !layer.can_be_missing() {
        return Err(format!("layer `{s}` cannot be missing; layers that can: seccomp, pids, memory, userns, landlock"));
    }
    Ok(layer)
}

/// Builds the spec from validated arguments (reads `--file` inputs from the host).
fn spec_from(args: &RunArgs) -> anyhow::Result<Spec> {
    let (program, rest) = match args.command.split_first() {
        Some(split) => split,
        None => bail!("missing PROGRAM: usage `warden run [OPTIONS] -- PROGRAM [ARGS...]`"),
    };
    if program.starts_with('-') {
        bail!("unknown option `{program}`: see `warden run --help`; options go before `--`, the program after it");
    }
    let mut spec = Spec::new(program.clone(), rest.iter().cloned());
    spec.limits = Limits {
        timeout: args.timeout,
        memory_bytes: args.memory,
        pids: args.pids,
        cpus: args.cpus,
        tmpfs_bytes: args.tmpfs_size,
        workdir_bytes: args.workdir_size,
        output_bytes: args.output_limit,
        ..Limits::default()
    };
    spec.limits
        .validate()
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    spec.env = args.env.clone();
    let input_limit = args.workdir_size.min(warden_sandbox::MAX_INPUT_BYTES);
    let mut input_total = 0u64;
    for (host, sandbox_path) in &args.files {
        let (contents, mode) = read_input(host, input_limit.saturating_sub(input_total))?;
        input_total += contents.len() as u64;
        spec.files.push(InputFile {
            path: sandbox_path.clone(),
            contents,
            mode: mode | 0o400,
        });
    }
    match args.network {
        NetworkMode::None if !args.policy.is_empty() => bail!(
            "egress policy flags (--allow-domain, --resolve, --allow-cidr, …) need --network proxy"
        ),
        NetworkMode::None => {}
        NetworkMode::Proxy => {
            if !args.policy.has_allow_domain() {
                bail!("--network proxy needs at least one --allow-domain DOMAIN (for example --allow-domain pypi.org --allow-domain '*.pythonhosted.org'): nothing is reachable by default");
            }
            spec.loopback_listener = Some(SANDBOX_PROXY_PORT);
            spec.env.extend(proxy_env(SANDBOX_PROXY_PORT));
        }
    }
    spec.allow_missing = args.allow_missing.iter().copied().collect();
    spec.stdin = if args.no_stdin {
        Stdin::Null
    } else {
        Stdin::Forward
    };
    Ok(spec)
}

/// Reads one `--file` input and its permission bits: a regular file of at most `room` bytes
/// (what is left of the working directory), never reading more, so a device or a huge file
/// cannot exhaust Warden's memory.
fn read_input(host: &std::path::Path, room: u64) -> anyhow::Result<(Vec<u8>, u32)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let context = || format!("--file {}: cannot read host file", host.display());
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever;
    // the type check below then refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(host)
        .with_context(context)?;
    let meta = file.metadata().with_context(context)?;
    if !meta.is_file() {
        bail!("--file {}: not a regular file", host.display());
    }
    // Blocking again for the read: a FUSE file system may honour O_NONBLOCK with EAGAIN.
    let flags = rustix::fs::fcntl_getfl(&file).with_context(context)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK).with_context(context)?;
    let mut contents = Vec::new();
    file.take(room.saturating_add(1))
        .read_to_end(&mut contents)
        .with_context(context)?;
    if contents.len() as u64 > room {
        bail!(
            "--file {}: the input files do not fit the working directory ({} left); raise --workdir-size (inputs are limited to {} in all)",
            host.display(),
            format_size(room),
            format_size(warden_sandbox::MAX_INPUT_BYTES)
        );
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o755;
    Ok((contents, mode))
}

/// Runs `warden run`; returns the exit status.
pub fn main(args: RunArgs) -> ExitCode {
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            if args.json {
                // No Outcome exists; a caller reading the last line of stdout still gets one
                // JSON object, which says so (exit status 125 as without --json).
                let line = serde_json::json!({
                    "error": format!("{e:#}"),
                    "exit_code": null,
                    "warden_failed": true,
                });
                let _ = outln!("{line}");
            }
            ExitCode::from(EXIT_WARDEN_FAILED)
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<u8> {
    let spec = spec_from(args)?;
    let exe = std::env::current_exe()
        .context("cannot find the warden binary (needed as the sandbox init)")?;
    let sandbox = Sandbox::new(exe)?.with_cgroup_parent(args.cgroup_parent.clone());

    // SIGINT/SIGTERM/SIGHUP to warden: kill and tear down the sandbox, then exit 128+N.
    let cancel = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&cancel)).context("install signal handler")?;
        signal_hook::flag::register_usize(sig, Arc::clone(&received), sig as usize)
            .context("install signal handler")?;
    }
    // The egress proxy runs on its own small runtime for the length of the run.
    let proxy = match args.network {
        NetworkMode::None => None,
        NetworkMode::Proxy => {
            let (policy, resolver) = args.policy.build()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start the egress proxy runtime")?;
            let session = ProxySession::new(
                runtime.handle().clone(),
                Arc::new(ProxyConfig::new(policy, resolver)),
            );
            Some((runtime, session))
        }
    };
    let io = warden_sandbox::RunIo {
        stdout: (!args.json).then(|| Box::new(std::io::stdout()) as Box<dyn Write + Send>),
        stderr: (!args.json).then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>),
        cancel: Some(Arc::clone(&cancel)),
        on_listener: proxy.as_ref().map(|(_, session)| {
            Box::new(session.listener_handler()) as warden_sandbox::ListenerHandler
        }),
    };
    let result = sandbox.run_with(&spec, io);
    let egress = proxy.map(|(runtime, session)| {
        let report = session.finish(Duration::from_secs(2));
        runtime.shutdown_timeout(Duration::from_secs(1));
        report
    });
    let outcome = result?;
    let signal = received.load(Ordering::SeqCst);

    if args.json {
        let report = Report {
            outcome: &outcome,
            egress: egress.as_ref().map(|r| r.connections.as_slice()),
            egress_dropped: egress.as_ref().map(|r| r.dropped),
            egress_error: egress.as_ref().and_then(|r| r.error.as_deref()),
        };
        let line = serde_json::to_string(&report).context("serialize outcome")?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").context("write outcome")?;
    } else {
        let limit = format_size(args.output_limit);
        if outcome.stdout_truncated {
            eprintln!(
                "warden: stdout truncated: {} bytes written, {limit} kept (--output-limit)",
                outcome.stdout_bytes
            );
        }
        if outcome.stderr_truncated {
            eprintln!(
                "warden: stderr truncated: {} bytes written, {limit} kept (--output-limit)",
                outcome.stderr_bytes
            );
        }
        if outcome.timed_out {
            eprintln!(
                "warden: timed out after {:.3} s (--timeout)",
                args.timeout.as_secs_f64()
            );
        }
        if outcome.oom_killed {
            eprintln!(
                "warden: out of memory: killed at the {} limit (--memory)",
                format_size(args.memory)
            );
        }
        if let Some(err) = &outcome.exec_error {
            eprintln!("warden: {err}");
        }
        for v in &outcome.seccomp_violations {
            eprintln!("warden: seccomp denied {} ({}x)", v.syscall, v.count);
        }
        if let Some(report) = &egress {
            for c in report
                .connections
                .iter()
                .filter(|c| c.decision != Decision::Allow)
            {
                eprintln!(
                    "warden: egress {}: {} {}: {}",
                    if c.decision == Decision::Deny {
                        "denied"
                    } else {
                        "failed"
                    },
                    c.method,
                    c.requested,
                    c.reason.as_deref().unwrap_or("no reason given")
                );
            }
            if let Some(e) = &report.error {
                eprintln!("warden: {e}");
            }
        }
        if !outcome.missing_layers.is_empty() {
            let names: Vec<&str> = outcome.missing_layers.iter().map(|l| l.name()).collect();
            eprintln!(
                "warden: warning: ran without isolation layers: {}",
                names.join(", ")
            );
        }
    }
    if signal != 0 {
        return Ok(128u8.saturating_add(signal as u8));
    }
    Ok(u8::try_from(outcome.exit_status() & 0xff).unwrap_or(EXIT_WARDEN_FAILED))
}

/// `warden run --json`'s line: the Outcome, plus the egress decisions with `--network proxy`.
#[derive(serde::Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    outcome: &'a warden_sandbox::Outcome,
    /// Every request the program made through the egress proxy, in the order they ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<&'a [ConnectionLog]>,
    /// Requests beyond the logged maximum (only counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    egress_dropped: Option<u64>,
    /// The egress proxy itself failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    egress_error: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_accepts_fractions_and_refuses_nonsense() {
        assert_eq!(parse_timeout("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["0", "-1", "abc", "inf", "NaN", "100000"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_refuse_zero() {
        assert!(parse_size_arg("0").is_err());
        assert_eq!(parse_size_arg("512M"), Ok(512 << 20));
    }

    #[test]
    fn env_and_file_forms() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
        assert_eq!(
            parse_file("/a/b.csv:in/b.csv"),
            Ok((PathBuf::from("/a/b.csv"), "in/b.csv".into()))
        );
        assert!(parse_file("nocolon").is_err());
    }

    #[test]
    fn layers_that_cannot_be_missing_are_refused() {
        assert_eq!(parse_layer("landlock"), Ok(Layer::Landlock));
        assert!(parse_layer("network").is_err());
        assert!(parse_layer("bogus").is_err());
    }
}
