//! Listening: plain HTTP on loopback (or behind a stated TLS proxy), HTTPS with rustls from
//! PEM files, graceful shutdown on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use crate::app::{app, AppState, Options};
use crate::audit::{Decision, NewEvent};
use crate::config::{Config, Secrets};
use crate::ServerError;

/// How often idle rate-limiter keys are forgotten.
const LIMITER_SHRINK_EVERY: Duration = Duration::from_secs(60);

/// Serves the API until SIGTERM or SIGINT, then shuts down gracefully: stop accepting, give
/// running executions `server.shutdown_grace_s` to finish, cancel the rest, close the store.
/// `on_listening` gets the bound address (useful with port 0).
///
/// # Errors
///
/// [`ServerError`] when the store, the listener, TLS or the configuration's safety rules fail.
pub async fn serve(
    config: Config,
    secrets: Secrets,
    options: Options,
    on_listening: impl FnOnce(SocketAddr, bool),
) -> Result<(), ServerError> {
    let listen = config.listen_addr()?;
    let tls_files = config.server.tls.clone();
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let state = AppState::new(config, secrets, options).await?;

    // Refuse to be reachable beyond loopback with no way to authenticate.
    if !listen.ip().is_loopback()
        && !state.auth.jwt_enabled()
        && state.store.active_keys().await? == 0
    {
        return Err(ServerError::NoCredentials);
    }

    let self_test = Arc::clone(&state);
    tokio::spawn(async move { self_test.self_test().await });
    let limiter_state = Arc::clone(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIMITER_SHRINK_EVERY);
        loop {
            tick.tick().await;
            limiter_state.limits.shrink();
        }
    });

    let listener = std::net::TcpListener::bind(listen).map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;

    let handle = Handle::new();
    let shutdown_handle = handle.clone();
    let shutdown_state = Arc::clone(&state);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            grace_s = grace.as_secs(),
            "shutting down: no new connections; running executions get the grace period"
        );
        shutdown_handle.graceful_shutdown(Some(grace + Duration::from_secs(5)));
        tokio::time::sleep(grace).await;
        let cancelled = shutdown_state.running.cancel_all();
        if cancelled > 0 {
            tracing::warn!(cancelled, "grace period over: cancelled running executions");
        }
    });

    let router = app(Arc::clone(&state));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    state
        .audit_event(
            NewEvent::new("server.start", Decision::Allow).details(
                serde_json::json!({"listen": bound.to_string(), "tls": tls_files.is_some()}),
            ),
        )
        .await;
    let result = match tls_files {
        Some(tls) => {
            // One process-wide rustls provider (ring); an earlier install is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rustls = RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
                .await
                .map_err(|source| ServerError::Tls {
                    cert: tls.cert_file.clone(),
                    key: tls.key_file.clone(),
                    source,
                })?;
            let server = axum_server::from_tcp_rustls(listener, rustls).map_err(|source| {
                ServerError::Bind {
                    addr: listen,
                    source,
                }
            })?;
            on_listening(bound, true);
            server.handle(handle).serve(service).await
        }
        None => {
            let server = axum_server::from_tcp(listener).map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
            on_listening(bound, false);
            server.handle(handle).serve(service).await
        }
    };
    state.stop_executions().await;
    state
        .audit_event(NewEvent::new("server.stop", Decision::Allow))
        .await;
    state.store.close().await;
    result.map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers, never shut down on our own.
            std::future::pending::<()>().await;
        }
    }
}
