//! The application: shared state, the axum [`Router`] and its tower layers.
//!
//! # Design
//!
//! Request flow (DESIGN.md, flow 2), outermost layer first: security headers → request id and
//! log span → metrics → problem rewriting → CORS → `Host` allowlist → request timeout → body
//! limit; then on `/v1`: per-client rate limit → authentication → per-principal rate limit →
//! per-route scope → handler. `/healthz`, `/readyz`, `/metrics` and `/openapi.json` need no
//! credentials. [`app`] returns the router so tests can call it without a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;
use warden_egress::{Resolver, UrlPolicy};
use warden_sandbox::{Layer, Sandbox, Spec};

use crate::audit::{Decision, NewEvent};
use crate::auth::{Authenticator, JwtVerifier, Principal, Reason, Scope};
use crate::config::{Config, Secrets};
use crate::execute::{self, Language, Running};
use crate::limits::{Queue, RateLimits};
use crate::metrics::{HttpLabels, LimiterLabel, MethodLabel, Metrics, RouteLabel};
use crate::problem::{problemify, Kind, Problem};
use crate::store::Store;
use crate::{api, ServerError};

/// Header carrying the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; longer or non-printable ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What the embedding program provides besides the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// The binary started as the sandbox's init (normally `std::env::current_exe()` of
    /// `warden`; it must call `warden_sandbox::init::main` when given `INIT_ARG`).
    pub init_exe: std::path::PathBuf,
    /// Resolver for `/v1/fetch` (default: the system resolver).
    pub resolver: Resolver,
}

impl Options {
    /// Options with `init_exe` and the system resolver.
    pub fn new(init_exe: impl Into<std::path::PathBuf>) -> Self {
        Options {
            init_exe: init_exe.into(),
            resolver: Resolver::default(),
        }
    }
}

/// Self-test states.
const SELF_TEST_PENDING: u8 = 0;
const SELF_TEST_PASSED: u8 = 1;
const SELF_TEST_FAILED: u8 = 2;

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// Credential checks.
    pub auth: Authenticator,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiters.
    pub limits: RateLimits,
    /// The sandbox queue.
    pub queue: Queue,
    /// The sandbox, or why it cannot be created.
    pub sandbox: Result<Sandbox, String>,
    /// Layers allowed to be missing.
    pub allow_missing: Vec<Layer>,
    /// Language profiles with their runtimes.
    pub languages: BTreeMap<String, Language>,
    /// Lockdown switch.
    pub lockdown: AtomicBool,
    /// Running executions' cancel flags.
    pub running: Arc<Running>,
    /// Egress policy of `/v1/fetch`.
    pub egress: UrlPolicy,
    /// Resolver of `/v1/fetch`.
    pub resolver: Resolver,
    self_test: AtomicU8,
    self_test_detail: Mutex<String>,
    /// The last store write check and when it ran (see [`STORE_CHECK_TTL`]).
    store_check: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// Whether responses are served over TLS (for HSTS).
    pub tls: bool,
    /// `server.trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How long a store write check stands for `/readyz`.
const STORE_CHECK_TTL: Duration = Duration::from_secs(1);

/// [`STORE_CHECK_TTL`]; an hour in this crate's unit tests, so that they do not depend on how
/// fast the machine runs them.
fn store_check_ttl() -> Duration {
    if cfg!(test) {
        Duration::from_secs(3600)
    } else {
        STORE_CHECK_TTL
    }
}

/// Per-request facts every handler and audit event needs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `X-Request-Id`.
    pub request_id: String,
    /// Client address.
    pub client: Option<SocketAddr>,
}

impl AppState {
    /// Builds the state: opens the store, builds the verifier, probes the sandbox host and
    /// the language runtimes.
    ///
    /// # Errors
    ///
    /// [`ServerError`] for a store or key problem.
    pub async fn new(
        config: Config,
        secrets: Secrets,
        options: Options,
    ) -> Result<Arc<AppState>, ServerError> {
        let store = Store::open(&config.server.data_dir).await?;
        let jwt = JwtVerifier::new(&config.auth, &secrets)?;
        let auth = Authenticator::new(store.clone(), jwt);
        let allow_missing = config.allowed_missing_layers()?;
        let egress = config.egress_policy()?;
        let trusted_proxies = config.trusted_proxies()?;
        let sandbox = Sandbox::new(&options.init_exe)
            .map(|s| s.with_cgroup_parent(config.sandbox.cgroup_parent.clone()))
            .and_then(|s| s.with_uid_range(config.sandbox.uid_base, config.sandbox.uid_count))
            .map_err(|e| format!("{e}"));
        let state = AppState {
            store,
            auth,
            metrics: Metrics::new(),
            limits: RateLimits::new(&config.rate_limit),
            queue: Queue::new(&config.sandbox),
            sandbox,
            allow_missing,
            languages: execute::languages(&config),
            lockdown: AtomicBool::new(false),
            running: Arc::new(Running::default()),
            egress,
            resolver: options.resolver,
            self_test: AtomicU8::new(SELF_TEST_PENDING),
            self_test_detail: Mutex::new("not run yet".into()),
            store_check: tokio::sync::Mutex::new(None),
            tls: config.server.tls.is_some() || config.server.behind_tls_proxy,
            trusted_proxies,
            config,
        };
        Ok(Arc::new(state))
    }

    /// Runs the sandbox self-test (`/bin/sh -c 'exit 0'` under every layer); `/readyz` stays
    /// 503 until it passes.
    pub async fn self_test(self: &Arc<Self>) {
        let result = match &self.sandbox {
            Err(e) => Err(e.clone()),
            Ok(sandbox) => {
                let mut spec = Spec::new("/bin/sh", ["-c", "exit 0"]);
                spec.allow_missing = self.allow_missing.iter().copied().collect();
                spec.limits.timeout = Duration::from_secs(30);
                let sandbox = sandbox.clone();
                match tokio::task::spawn_blocking(move || sandbox.run(&spec)).await {
                    Ok(Ok(o)) if o.exit_code == Some(0) => Ok(()),
                    Ok(Ok(o)) => Err(format!(
                        "self-test program ended with exit {:?} signal {:?}: {}",
                        o.exit_code, o.signal, o.stderr
                    )),
                    Ok(Err(e)) => Err(format!("{e}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        let (state, detail) = match result {
            Ok(()) => (SELF_TEST_PASSED, "passed".to_string()),
            Err(e) => {
                tracing::error!(error = %e, "sandbox self-test failed");
                (SELF_TEST_FAILED, e)
            }
        };
        if let Ok(mut d) = self.self_test_detail.lock() {
            *d = detail;
        }
        self.self_test.store(state, Ordering::SeqCst);
        // Sets `warden_ready` without waiting for the first /readyz.
        self.readiness().await;
    }

    /// The readiness report (`/readyz`).
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        // One write per STORE_CHECK_TTL however often /readyz is called: it is open to anyone,
        // and each check is an SQLite write (review, session 5). Concurrent calls wait for the
        // one check in flight.
        let store = {
            let mut last = self.store_check.lock().await;
            match last.as_ref() {
                Some((at, result)) if at.elapsed() < store_check_ttl() => result.clone(),
                _ => {
                    let result = self.store.check_writable().await.map_err(|e| {
                        tracing::error!(error = %e, "store is not writable");
                        "store is not writable (see the log)".to_string()
                    });
                    *last = Some((Instant::now(), result.clone()));
                    result
                }
            }
        };
        let self_test = self.self_test.load(Ordering::SeqCst);
        let self_test_detail = self
            .self_test_detail
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        let runtimes: serde_json::Map<String, serde_json::Value> = self
            .languages
            .iter()
            .map(|(name, lang)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "program": lang.profile.program,
                        "found": lang.runtime.is_some(),
                        "path": lang.runtime.as_ref().map(|p| p.display().to_string()),
                    }),
                )
            })
            .collect();
        let runtimes_ok = self.languages.values().all(|l| l.runtime.is_some());
        let ready = store.is_ok() && self_test == SELF_TEST_PASSED && runtimes_ok;
        self.metrics.ready.set(i64::from(ready));
        let report = serde_json::json!({
            "ready": ready,
            "checks": {
                "store_writable": {"ok": store.is_ok(), "detail": store.err()},
                "sandbox_self_test": {"ok": self_test == SELF_TEST_PASSED, "detail": self_test_detail},
                "runtimes": {"ok": runtimes_ok, "languages": runtimes},
            },
            "lockdown": self.lockdown.load(Ordering::SeqCst),
        });
        (ready, report)
    }

    /// Records an audit event (when auditing is on) and counts it; a store failure is logged,
    /// not returned: the request's own result stands.
    pub async fn audit(&self, ctx: &RequestContext, principal: Option<&str>, event: NewEvent) {
        self.audit_event(attribute(event, ctx, principal)).await;
    }

    /// Records one request refused by the `limiter` rate limit (`client` or `principal`):
    /// counts it in `warden_rate_limit_hits_total{limiter}` and audits it when it is the
    /// first denial of its key this minute ([`RateLimits::audit_denial`]). The key is the
    /// principal when there is one, else the client's rate-limit key.
    pub async fn rate_limit_denied(
        &self,
        ctx: &RequestContext,
        principal: Option<&str>,
        limiter: &'static str,
    ) {
        self.metrics
            .rate_limit_hits
            .get_or_create(&LimiterLabel { limiter })
            .inc();
        let key = match (principal, ctx.client) {
            (Some(principal), _) => format!("principal:{principal}"),
            (None, Some(client)) => format!("client:{}", crate::limits::client_key(client.ip())),
            (None, None) => "client:unknown".to_string(),
        };
        if self.limits.audit_denial(&key) {
            let event = NewEvent::new("rate_limit", Decision::Deny)
                .reason(format!("{limiter} rate limit"))
                .details(serde_json::json!({"sampled": SAMPLED_NOTE}));
            self.audit(ctx, principal, event).await;
        }
    }

    /// Stores an execution record and, when auditing is on, its audit event, in one store
    /// transaction. Failures are logged, not returned, as in [`AppState::audit`].
    pub async fn record_execution(
        &self,
        ctx: &RequestContext,
        principal: &str,
        row: &crate::store::ExecutionRow,
        event: NewEvent,
    ) {
        let event = attribute(event, ctx, Some(principal));
        self.observe_audit_event(&event);
        let stored = if self.config.audit.enabled {
            self.store
                .insert_execution_audited(row, event)
                .await
                .map(drop)
        } else {
            self.store.insert_execution(row).await
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store the execution record and its audit event");
        }
    }

    /// Counts and logs an audit event (before it is stored).
    fn observe_audit_event(&self, event: &NewEvent) {
        self.metrics
            .audit_events
            .get_or_create(&crate::metrics::ActionLabel {
                action: event.action.clone(),
            })
            .inc();
        tracing::info!(
            target: "warden::audit",
            action = %event.action,
            decision = event.decision,
            principal = event.principal.as_deref().unwrap_or("-"),
            reason = event.reason.as_deref().unwrap_or(""),
            "audit"
        );
    }

    /// Cancels the executions still running and waits (at most [`execute::STOP_WAIT`]) until each
    /// is torn down and recorded, so that the store is closed after the last record.
    pub async fn stop_executions(&self) {
        let (cancelled, finished) = self.running.stop_all(execute::STOP_WAIT).await;
        if cancelled > 0 {
            tracing::warn!(cancelled, "stopping: cancelled running executions");
        }
        if !finished {
            tracing::error!(
                wait_s = execute::STOP_WAIT.as_secs(),
                "stopping: executions still unrecorded after the wait; their records are lost"
            );
        }
    }

    /// Records an event that is not tied to a request.
    pub async fn audit_event(&self, event: NewEvent) {
        self.observe_audit_event(&event);
        if !self.config.audit.enabled {
            return;
        }
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }

    /// Turns lockdown on or off; on: cancels running executions. Returns how many.
    pub fn set_lockdown(&self, enabled: bool) -> usize {
        self.lockdown.store(enabled, Ordering::SeqCst);
        self.metrics.lockdown_enabled.set(i64::from(enabled));
        if enabled {
            self.running.cancel_all()
        } else {
            0
        }
    }

    /// Whether the server is in lockdown.
    pub fn locked_down(&self) -> bool {
        self.lockdown.load(Ordering::SeqCst)
    }
}

/// `event` attributed to the request: its id, the client address and the principal.
fn attribute(mut event: NewEvent, ctx: &RequestContext, principal: Option<&str>) -> NewEvent {
    event.request_id = Some(ctx.request_id.clone());
    event.client = ctx.client.map(|c| c.to_string());
    event.principal = principal.map(str::to_string);
    event
}

/// The router with every layer. Serve it with connect info (`SocketAddr`) so rate limits and
/// audit events see the client address.
pub fn app(state: Arc<AppState>) -> Router {
    let scope =
        |needed: Scope| middleware::from_fn_with_state((Arc::clone(&state), needed), require_scope);
    let v1 = Router::new()
        .route(
            "/v1/executions",
            post(api::create_execution).route_layer(scope(Scope::Execute)),
        )
        .route("/v1/executions/{id}", get(api::get_execution))
        .route(
            "/v1/fetch",
            post(api::fetch).route_layer(scope(Scope::Fetch)),
        )
        .route(
            "/v1/admin/lockdown",
            post(api::lockdown).route_layer(scope(Scope::Admin)),
        )
        // MCP (Streamable HTTP): scopes are checked per tool call (crate::mcp).
        .route_service("/mcp", crate::mcp::http_service(Arc::clone(&state)))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            client_rate_limit,
        ));

    let open = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi));

    let config = &state.config;
    let mut router = v1
        .merge(open)
        .route_layer(middleware::from_fn(remember_route))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.server.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.server.request_timeout_s),
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            host_allowlist,
        ));
    if let Some(cors) = cors_layer(&config.cors.allowed_origins) {
        router = router.layer(cors);
    }
    router = router
        .layer(middleware::from_fn(problemify))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe));
    router = security_headers(router, state.tls);
    router.with_state(state)
}

fn security_headers(router: Router<Arc<AppState>>, tls: bool) -> Router<Arc<AppState>> {
    let fixed: [(&str, &str); 5] = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        ("cache-control", "no-store"),
    ];
    let mut router = router;
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    if tls {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ));
    }
    router
}

/// CORS for the listed origins only; `None` (no CORS headers at all) when none are listed.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(crate::auth::API_KEY_HEADER),
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The route template, carried from inside the router to [`observe`] on the response.
#[derive(Debug, Clone)]
struct RouteName(String);

async fn remember_route(path: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = path.map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteName(route));
    }
    response
}

/// A usable request id from the client, or a fresh UUID.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// The client of a request from `peer`: `peer` itself, unless it is a trusted proxy; then the
/// rightmost `X-Forwarded-For` address that is not a trusted proxy (each proxy appends the
/// address it received from, so everything left of that is the client's own say), with port 0.
/// When every listed address is trusted, the leftmost of them; when an entry does not parse,
/// the trusted address to its right (the header is not believed beyond it).
fn forwarded_client(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> SocketAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<std::net::IpAddr>() else {
            break;
        };
        client = SocketAddr::new(ip, 0);
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Outermost own layer: request id, log span, HTTP metrics, `X-Request-Id` on the response.
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&request);
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| forwarded_client(c.0, request.headers(), &state.trusted_proxies));
    let method = request.method().clone();
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    request.extensions_mut().insert(RequestContext {
        request_id: id.clone(),
        client,
    });
    // Both are client-chosen: the method as its metric label, the path cut short.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method_label(&method),
        path = %crate::audit::clip(request.uri().path(), 256)
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let route = response
        .extensions()
        .get::<RouteName>()
        .map_or_else(|| "unmatched".to_string(), |r| r.0.clone());
    let status = response.status();
    let elapsed = start.elapsed();
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method: method_label(&method),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabel { route })
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request done"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn context(request: &Request) -> RequestContext {
    request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_else(|| RequestContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            client: None,
        })
}

/// Refuses requests whose `Host` is not in `server.allowed_hosts` (when the list is set).
async fn host_allowlist(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = &state.config.server.allowed_hosts;
    if allowed.is_empty() {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bare = strip_port(&host).to_string();
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == host || a == bare
    });
    if ok {
        next.run(request).await
    } else {
        Problem::new(
            Kind::BadRequest,
            "the Host header is not one this server answers to",
        )
        .into_response()
    }
}

/// `host` without a `:port` suffix (`[::1]:80` → `[::1]`).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

/// The `method` label of the HTTP metrics: one of RFC 9110's methods (plus PATCH), else
/// `OTHER`. hyper accepts any token as a method, and a label taken from it unchecked would let
/// unauthenticated clients add a series per request (review, session 5: 200 requests grew
/// `/metrics` to 12 MB).
fn method_label(method: &axum::http::Method) -> String {
    use axum::http::Method;
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    if KNOWN.contains(method) {
        method.as_str().to_string()
    } else {
        "OTHER".to_string()
    }
}

/// What a sampled rate-limit audit event says about the denials it stands for.
const SAMPLED_NOTE: &str =
    "first denial in this minute; later ones are counted in warden_rate_limit_hits_total";

/// Per-client-address rate limit, before authentication (it also slows credential guessing).
async fn client_rate_limit(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let ctx = context(&request);
    if let Some(client) = ctx.client {
        if let Err(wait) = state.limits.check_client(client.ip()) {
            state.rate_limit_denied(&ctx, None, "client").await;
            return Problem::new(Kind::RateLimited, "too many requests from this address")
                .retry_after(wait)
                .into_response();
        }
    }
    next.run(request).await
}

/// Authenticates, then applies the per-principal rate limit; puts the [`Principal`] in the
/// request's extensions.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ctx = context(&request);
    let result = match state.auth.authenticate(request.headers()).await {
        Ok(r) => r,
        Err(e) => return Problem::internal(&e).into_response(),
    };
    let principal = match result {
        Ok(p) => {
            state
                .metrics
                .auth_attempts
                .get_or_create(&MethodLabel {
                    method: p.method.as_str(),
                })
                .inc();
            p
        }
        Err(failure) => {
            if let Some(method) = failure.method {
                state
                    .metrics
                    .auth_attempts
                    .get_or_create(&MethodLabel {
                        method: method.as_str(),
                    })
                    .inc();
            }
            state.metrics.auth_failure(failure.reason.as_str());
            let event = NewEvent::new("auth", Decision::Deny)
                .reason(failure.reason.as_str())
                .details(serde_json::json!({
                    "method": failure.method.map(|m| m.as_str()),
                    "detail": failure.detail,
                    // The route's template, not the raw path: a path is up to the client
                    // (review, session 5: 65 KB paths went into the chain, 2.6 MB per 20
                    // requests).
                    "route": request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |m| m.as_str()),
                }));
            state.audit(&ctx, None, event).await;
            return Problem::unauthorized().into_response();
        }
    };
    if let Err(wait) = state.limits.check_principal(&principal.id) {
        state
            .rate_limit_denied(&ctx, Some(&principal.id), "principal")
            .await;
        return Problem::new(Kind::RateLimited, "too many requests for this principal")
            .retry_after(wait)
            .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Requires the scope in the state on the principal (403 `insufficient-scope` otherwise).
async fn require_scope(
    State((state, needed)): State<(Arc<AppState>, Scope)>,
    request: Request,
    next: Next,
) -> Response {
    let principal = request.extensions().get::<Principal>().cloned();
    match principal {
        Some(p) if p.scopes.has(needed) => next.run(request).await,
        Some(p) => {
            let ctx = context(&request);
            scope_denied(&state, &ctx, &p, needed.as_str(), request.uri().path())
                .await
                .into_response()
        }
        None => Problem::unauthorized().into_response(),
    }
}

/// Pulls the request context out of a handler's extensions.
pub(crate) fn ctx_of(ext: &axum::http::Extensions) -> RequestContext {
    ext.get::<RequestContext>()
        .cloned()
        .unwrap_or_else(|| RequestContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            client: None,
        })
}

/// Audits and answers an insufficient scope from inside a handler.
pub(crate) async fn scope_denied(
    state: &AppState,
    ctx: &RequestContext,
    principal: &Principal,
    needed: &str,
    route: &str,
) -> Problem {
    state
        .metrics
        .auth_failure(Reason::InsufficientScope.as_str());
    state
        .audit(
            ctx,
            Some(&principal.id),
            NewEvent::new("scope", Decision::Deny)
                .reason(Reason::InsufficientScope.as_str())
                .details(serde_json::json!({"needed": needed, "route": route})),
        )
        .await;
    Problem::new(
        Kind::Forbidden,
        format!("this route needs the `{needed}` scope"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies_is_the_rightmost_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let client = |xff: &[&str], peer: SocketAddr| {
            let mut headers = HeaderMap::new();
            for value in xff {
                headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            forwarded_client(peer, &headers, &trusted).to_string()
        };
        // The client's own entries (left) are not believed: the proxy appended the real one.
        assert_eq!(client(&["6.6.6.6, 192.0.2.7"], peer), "192.0.2.7:0");
        assert_eq!(
            client(&["6.6.6.6", "192.0.2.7, 10.9.9.9"], peer),
            "192.0.2.7:0"
        );
        assert_eq!(client(&["2001:db8::5"], peer), "[2001:db8::5]:0");
        // Nothing forwarded, only proxies, or garbage: no further than the trusted hops.
        assert_eq!(client(&[], peer), "10.1.2.3:5555");
        assert_eq!(client(&["10.0.0.9, 127.0.0.1"], peer), "10.0.0.9:0");
        assert_eq!(client(&["192.0.2.7, junk, 10.0.0.9"], peer), "10.0.0.9:0");
        // An untrusted peer's header is ignored.
        let direct: SocketAddr = "203.0.113.9:4444".parse().unwrap();
        assert_eq!(client(&["192.0.2.7"], direct), "203.0.113.9:4444");
    }

    async fn router(dir: &std::path::Path) -> (Router, Arc<AppState>) {
        let config = Config::from_toml(&format!(
            "[server]\ndata_dir = \"{}\"\nallowed_hosts = [\"api.test\"]\n",
            dir.display()
        ))
        .unwrap();
        let secrets = config.validate().unwrap();
        // No init binary: the sandbox is unavailable, which /readyz must report.
        let options = Options::new(dir.join("no-such-init"));
        let state = AppState::new(config, secrets, options).await.unwrap();
        (app(Arc::clone(&state)), state)
    }

    async fn call(router: &Router, uri: &str, host: &str) -> Response {
        router
            .clone()
            .oneshot(
                Request::get(uri)
                    .header("host", host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn readyz_reports_an_unavailable_sandbox_as_json_503() {
        let dir = tempfile::tempdir().unwrap();
        let (router, state) = router(dir.path()).await;
        state.self_test().await;
        let response = call(&router, "/readyz", "api.test").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(report["ready"], false);
        assert_eq!(report["checks"]["sandbox_self_test"]["ok"], false);
        assert_eq!(report["checks"]["store_writable"]["ok"], true);
        assert!(state.metrics.encode().contains("warden_ready 0"));
        // Calls within STORE_CHECK_TTL reuse the check: no write each (the row's time stays).
        let checked = state.store.readiness_checked_at().await;
        assert!(checked.is_some());
        for _ in 0..5 {
            // Past the timestamp's millisecond: a write would show.
            tokio::time::sleep(Duration::from_millis(3)).await;
            call(&router, "/readyz", "api.test").await;
        }
        assert_eq!(state.store.readiness_checked_at().await, checked);
    }

    #[tokio::test]
    async fn host_allowlist_and_unknown_routes_answer_with_problems() {
        let dir = tempfile::tempdir().unwrap();
        let (router, _) = router(dir.path()).await;
        assert_eq!(
            call(&router, "/healthz", "api.test:8080").await.status(),
            StatusCode::OK
        );
        let response = call(&router, "/healthz", "evil.test").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let response = call(&router, "/nope", "api.test").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert!(response.headers().contains_key("x-request-id"));
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("api.test:8080"), "api.test");
        assert_eq!(strip_port("api.test"), "api.test");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
