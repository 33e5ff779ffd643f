//! `warden serve`: the HTTP API (see the `warden-server` crate).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use warden_server::logging::{self, LogFormat};
use warden_server::{Config, Options};

/// Options of `warden serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (warden.toml); without it, built-in defaults and WARDEN_* variables.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log line format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// Read KEY=VALUE lines (for example from `warden secrets generate`) into the environment
    /// before loading the configuration. For development; use *_file settings in production.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Loads the configuration the way every server-side command does: `--env-file`, then the
/// file, then `WARDEN_*` variables.
pub fn load_config(
    config: Option<&std::path::Path>,
    env_file: Option<&std::path::Path>,
) -> anyhow::Result<Config> {
    if let Some(path) = env_file {
        dotenvy::from_path(path)
            .with_context(|| format!("cannot read --env-file {}", path.display()))?;
    }
    Ok(Config::load(config)?)
}

/// Runs `warden serve` until SIGTERM/SIGINT; exit 1 with the reason when it cannot start.
pub fn main(args: ServeArgs) -> ExitCode {
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    logging::init(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let config = load_config(args.config.as_deref(), args.env_file.as_deref())?;
    let secrets = config.validate()?;
    let init_exe =
        std::env::current_exe().context("cannot find the warden binary (the sandbox init)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(warden_server::serve(
        config,
        secrets,
        Options::new(init_exe),
        |addr, tls| {
            let scheme = if tls { "https" } else { "http" };
            eprintln!("listening on {scheme}://{addr}");
        },
    ))?;
    Ok(())
}
