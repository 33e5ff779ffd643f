//! Warden's HTTP API: executions and fetches behind authentication, scopes, rate limits, a
//! bounded queue, an audit log and metrics.
//!
//! ```no_run
//! use warden_server::{serve, Config, Options};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(Some("warden.toml".as_ref()))?;
//! let secrets = config.validate()?;
//! let options = Options::new(std::env::current_exe()?);
//! serve(config, secrets, options, |addr, tls| {
//!     eprintln!("listening on {}://{addr}", if tls { "https" } else { "http" });
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! DESIGN.md flow 2: request → request id → auth (API key or JWT) → scope check → rate limit
//! → body validation → sandbox (or egress) → Outcome → audit event + metrics → response.
//! Cross-cutting concerns are tower layers ([`app`]); handlers ([`api`]) only validate and
//! call the libraries: the sandbox runs on a blocking thread (`spawn_blocking`) with a cancel
//! flag, the egress fetch likewise. The store ([`store`]) is SQLite through sqlx with portable
//! SQL, so PostgreSQL can follow. Errors are RFC 9457 problems ([`problem`]).
//!
//! # Limitations
//!
//! - Rate limits are per process (per replica).
//! - Behind a proxy, the client address is the proxy's: `X-Forwarded-For` is not trusted.
//! - `/healthz`, `/readyz`, `/metrics` and `/openapi.json` need no credentials.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod execute;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod problem;
mod serve;
pub mod store;
#[cfg(test)]
mod testkeys;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use app::{app, AppState, Options};
pub use config::{Config, ConfigError, Secrets};
pub use serve::serve;
pub use store::{Store, StoreError};

/// Why the server cannot start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A JWT public key is unusable.
    #[error(transparent)]
    PublicKey(#[from] auth::BadPublicKey),
    /// The listener cannot be bound or failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be loaded.
    #[error("cannot load TLS certificate {cert} / key {key}")]
    Tls {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Listening beyond loopback with no API key and no JWT configuration.
    #[error("refusing to listen beyond loopback with no credentials configured: create an API key with `warden keys create` or configure [auth] jwt_algorithm")]
    NoCredentials,
}
