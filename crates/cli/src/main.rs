//! `warden`: the command-line interface. A thin clap layer over the libraries; no isolation or
//! policy logic lives here.

#![forbid(unsafe_code)]

/// `println!` that returns the write's `io::Result` instead of panicking when stdout is closed
/// or failing (a pipe whose reader left, a full disk): `warden url check … | head -0` must
/// still exit with its documented code, and a proxy whose log is gone must keep answering.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod doctor;
mod keys;
mod mcp;
mod posture;
mod proxy;
mod run;
mod serve;
mod url;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Warden runs untrusted, model-written programs under layered Linux isolation.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run PROGRAM inside a fresh sandbox; exits with the program's status (docker-run style).
    Run(run::RunArgs),
    /// Report which isolation layers this host offers and what Warden does about missing ones.
    Doctor(doctor::DoctorArgs),
    /// Fetch URL through the egress policy (each redirect judged again); prints the body.
    Fetch(url::FetchArgs),
    /// Forward proxy (HTTP CONNECT and absolute-form HTTP) that applies the egress policy.
    Proxy(proxy::ProxyArgs),
    /// Egress policy: judge URLs before anything connects to them.
    #[command(subcommand)]
    Url(url::UrlCommand),
    /// Serve the authenticated HTTP API (executions, fetches) per --config.
    Serve(serve::ServeArgs),
    /// Serve Warden's tools (run_code, run_command, fetch_url) over MCP on stdin/stdout.
    Mcp(mcp::McpArgs),
    /// Manage the server's API keys.
    Keys {
        #[command(flatten)]
        store: keys::StoreArgs,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Check (`verify`) or show (`tail`) the server's audit log.
    Audit {
        #[command(flatten)]
        store: keys::StoreArgs,
        #[command(subcommand)]
        command: keys::AuditCommand,
    },
    /// Generate development secrets.
    #[command(subcommand)]
    Secrets(keys::SecretsCommand),
}

/// Exit status 1 after stdout failed, saying so on stderr (itself allowed to fail).
fn broken_stdout(e: &std::io::Error) -> ExitCode {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "warden: cannot write to stdout: {e}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == warden_sandbox::INIT_ARG)
    {
        warden_sandbox::init::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                // `warden run` follows `docker run`: 125 when Warden itself fails, bad flags included.
                _ if std::env::args().nth(1).as_deref() == Some("run") => {
                    ExitCode::from(run::EXIT_WARDEN_FAILED)
                }
                _ => ExitCode::from(2),
            };
        }
    };
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Doctor(args) => doctor::main(args),
        Command::Url(command) => url::main(command),
        Command::Fetch(args) => url::fetch_main(args),
        Command::Proxy(args) => proxy::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Mcp(args) => mcp::main(args),
        Command::Keys { store, command } => keys::keys_main(store, command),
        Command::Audit { store, command } => keys::audit_main(store, command),
        Command::Secrets(command) => keys::secrets_main(command),
    }
}
