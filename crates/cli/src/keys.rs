//! `warden keys`, `warden audit` and `warden secrets`: local administration of the server's
//! store and secrets.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use warden_server::audit::{Decision, NewEvent};
use warden_server::auth::Scopes;
use warden_server::store::unix_now;
use warden_server::Store;

use crate::serve::load_config;

/// Where the store is: the same configuration `warden serve` uses.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Configuration file (warden.toml); its server.data_dir holds the store.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<Store> {
        let config = load_config(self.config.as_deref(), None)?;
        Ok(Store::open(&config.server.data_dir).await?)
    }
}

/// `warden keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key; prints it once on stdout (only its hash is stored).
    Create {
        /// A name saying who or what uses the key.
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated: execute, fetch, admin.
        #[arg(long, value_name = "SCOPES")]
        scope: String,
        /// Lifetime, for example 30d, 12h, 90min (default: never expires).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List keys (never the keys themselves).
    List {
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
    /// Revoke key ID (the hex id shown by `list`, or the whole key).
    Revoke {
        /// Key id.
        id: String,
    },
}

/// `warden audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 0 when intact, 1 naming the first broken event.
    Verify,
    /// Show the newest events, one JSON object per line.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
}

/// `warden secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write a .env file (mode 0600) with a fresh HS256 JWT secret, for development.
    Generate {
        /// File to write.
        #[arg(long, default_value = ".env")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

fn run<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(f: F) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(f));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn cli_event(action: &str) -> NewEvent {
    let mut event = NewEvent::new(action, Decision::Allow);
    event.principal = Some(format!(
        "cli:{}",
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into())
    ));
    event
}

/// 9999-12-31T23:59:59Z in Unix seconds: the last instant RFC 3339 (and humantime) can write.
const LAST_RFC3339_SECOND: i64 = 253_402_300_799;

/// Runs `warden keys …`.
pub fn keys_main(store: StoreArgs, command: KeysCommand) -> ExitCode {
    run(async move {
        match command {
            KeysCommand::Create {
                name,
                scope,
                expires,
            } => {
                let scopes: Scopes = scope
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--scope {scope}: {e}"))?;
                let expires_at = match &expires {
                    Some(text) => {
                        let d = humantime::parse_duration(text).with_context(|| {
                            format!(
                                "--expires {text}: expected a duration such as 30d, 12h or 90min"
                            )
                        })?;
                        if d.as_secs() == 0 {
                            anyhow::bail!(
                                "--expires {text}: the key would be expired at once; give at least 1s"
                            );
                        }
                        let at = unix_now()
                            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                        if at > LAST_RFC3339_SECOND {
                            anyhow::bail!(
                                "--expires {text}: past the year 9999; leave --expires out for a key that does not expire"
                            );
                        }
                        Some(at)
                    }
                    None => None,
                };
                if name.trim().is_empty() {
                    anyhow::bail!("--name must not be empty");
                }
                let store = store.open().await?;
                let (info, key) = store.create_key(&name, &scopes, expires_at).await?;
                store
                    .append_audit(cli_event("key.create").details(serde_json::json!({
                        "id": info.id, "name": info.name, "scopes": info.scopes.to_string(), "expires_at": info.expires_at,
                    })))
                    .await?;
                store.close().await;
                outln!("{key}").with_context(|| {
                    format!(
                        "cannot write the new key {} to stdout; revoke it (`warden keys revoke {}`) and create another",
                        info.id, info.id
                    )
                })?;
                eprintln!(
                    "created key {} ({}) with scopes {}; it is shown only this once, store it now",
                    info.id, info.name, info.scopes
                );
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::List { json } => {
                let store = store.open().await?;
                let keys = store.list_keys().await?;
                store.close().await;
                let now = unix_now();
                for key in keys {
                    let state = if key.revoked_at.is_some() {
                        "revoked"
                    } else if key.expires_at.is_some_and(|t| t <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    if json {
                        let mut v = serde_json::to_value(&key)?;
                        v["state"] = state.into();
                        outln!("{v}").context("write to stdout")?;
                    } else {
                        let time = |t: i64| {
                            // Display fails (and to_string would panic) past the year 9999,
                            // which a store written by an older version may hold.
                            let mut text = String::new();
                            let stamp = humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH
                                    + std::time::Duration::from_secs(t.max(0) as u64),
                            );
                            match std::fmt::Write::write_fmt(&mut text, format_args!("{stamp}")) {
                                Ok(()) => text,
                                Err(_) => format!("@{t}"),
                            }
                        };
                        outln!(
                            "{}  {:8}  {:22}  created {}  expires {}  {}",
                            key.id,
                            state,
                            key.scopes.to_string(),
                            time(key.created_at),
                            key.expires_at.map_or_else(|| "never".to_string(), time),
                            key.name
                        )
                        .context("write to stdout")?;
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Revoke { id } => {
                // Accept the whole key too: wdn_<id>_<secret>.
                let id = id
                    .strip_prefix(warden_server::auth::KEY_PREFIX)
                    .and_then(|rest| rest.split_once('_').map(|(i, _)| i.to_string()))
                    .unwrap_or(id);
                let store = store.open().await?;
                let revoked = store.revoke_key(&id).await?;
                if revoked {
                    store
                        .append_audit(
                            cli_event("key.revoke").details(serde_json::json!({"id": id})),
                        )
                        .await?;
                }
                store.close().await;
                if revoked {
                    eprintln!("revoked key {id}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("warden: error: no active key {id} (see `warden keys list`)");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    })
}

/// Runs `warden audit …`.
pub fn audit_main(store: StoreArgs, command: AuditCommand) -> ExitCode {
    run(async move {
        let store = store.open().await?;
        let code = match command {
            AuditCommand::Verify => match store.verify_audit().await? {
                Ok(head) => {
                    outln!(
                        "audit log intact: {} events; head seq {} hash {}",
                        head.events,
                        head.last_seq,
                        head.last_hash
                    )
                    .context("write to stdout")?;
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    outln!("audit log BROKEN: {broken}").context("write to stdout")?;
                    ExitCode::FAILURE
                }
            },
            AuditCommand::Tail { lines } => {
                let mut out = std::io::stdout().lock();
                for event in store.audit_tail(lines.max(0)).await? {
                    writeln!(out, "{}", serde_json::to_string(&event)?)?;
                }
                ExitCode::SUCCESS
            }
        };
        store.close().await;
        Ok(code)
    })
}

/// Runs `warden secrets …`.
pub fn secrets_main(command: SecretsCommand) -> ExitCode {
    let SecretsCommand::Generate { output, force } = command;
    let result = (|| -> anyhow::Result<()> {
        let secret = warden_server::auth::random_hex(32)
            .map_err(|e| anyhow::anyhow!("random number generator: {e}"))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).mode(0o600);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(&output).with_context(|| {
            format!(
                "cannot create {} (pass --force to overwrite an existing file)",
                output.display()
            )
        })?;
        // Mode 0600 also when --force reused an existing file.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        writeln!(file, "# Generated by `warden secrets generate`. Development only; keep it out of version control.")?;
        writeln!(file, "WARDEN_AUTH__JWT_ALGORITHM=HS256")?;
        writeln!(file, "WARDEN_AUTH__JWT_SECRET={secret}")?;
        eprintln!(
            "wrote {} (mode 0600); use it with `warden serve --env-file {}`",
            output.display(),
            output.display()
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
