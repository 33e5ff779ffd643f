//! `warden mcp`: Warden's tools (`run_code`, `run_command`, `fetch_url`) as an MCP server on
//! stdin/stdout, for agent hosts that start it as a subprocess (see the `warden-server`
//! crate's `mcp` module).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rmcp::ServiceExt;
use warden_server::mcp::{init_stderr_logging, WardenMcp};
use warden_server::{AppState, Options};

/// Options of `warden mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Configuration file (warden.toml, the same as `warden serve`); without it, built-in
    /// defaults and WARDEN_* variables.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Read KEY=VALUE lines into the environment before loading the configuration.
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
}

/// Serves MCP on stdio until the client closes stdin; exit 1 with the reason (on stderr) when
/// it cannot start.
pub fn main(args: McpArgs) -> ExitCode {
    init_stderr_logging();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &McpArgs) -> anyhow::Result<()> {
    let config = crate::serve::load_config(args.config.as_deref(), args.env_file.as_deref())?;
    let secrets = config.validate()?;
    let init_exe =
        std::env::current_exe().context("cannot find the warden binary (the sandbox init)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let state = AppState::new(config, secrets, Options::new(init_exe))
            .await
            .context("cannot set up the sandbox and the store (server.data_dir)")?;
        if let Err(reason) = &state.sandbox {
            tracing::error!(%reason, "the sandbox is unavailable: run_code and run_command will fail");
        }
        let service = WardenMcp::local(std::sync::Arc::clone(&state))
            .serve(rmcp::transport::stdio())
            .await
            .context("MCP initialization failed")?;
        tracing::info!("warden mcp: serving on stdio");
        let reason = service.waiting().await.context("the MCP service failed")?;
        tracing::info!(?reason, "warden mcp: client closed the connection");
        state.stop_executions().await;
        state.store.close().await;
        anyhow::Ok(())
    });
    // Stdin may still be read by a blocking thread; do not wait for it.
    runtime.shutdown_background();
    result
}
