//! The endpoints and the OpenAPI document that describes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Extensions, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use warden_egress::{redact_url, FetchError, FetchRequest};

use crate::app::{ctx_of, scope_denied, AppState};
use crate::audit::{Decision, NewEvent};
use crate::auth::{Principal, Scope};
use crate::execute::{self, AppliedLimits, ExecutionRequest};
use crate::metrics::{EgressLabels, ExecutionLabels, LanguageLabel, SyscallLabel};
use crate::problem::{Kind, Problem};
use crate::store::{rfc3339_now, ExecutionRow};
use rmcp::schemars;

/// A JSON body whose rejections are problems naming the field (400 for syntax, 422 for types
/// and values, 413 for size, 415 for the content type).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let status = rejection.status();
                let kind = match status {
                    StatusCode::UNPROCESSABLE_ENTITY => Kind::InvalidBody,
                    StatusCode::PAYLOAD_TOO_LARGE => Kind::PayloadTooLarge,
                    _ => Kind::BadRequest,
                };
                let mut problem = Problem::new(kind, rejection.body_text());
                problem.status = status.as_u16();
                Err(problem)
            }
        }
    }
}

/// One denied system call in an [`ExecutionResponse`].
#[derive(Debug, Clone, Serialize, ToSchema, schemars::JsonSchema)]
pub struct SeccompViolation {
    /// System call name (`ptrace`).
    pub syscall: String,
    /// Times it was denied.
    pub count: u64,
}

/// `POST /v1/executions` answer: the Outcome of `warden run --json` plus the execution id.
/// (Documentation of the contract, for the OpenAPI document and the MCP tools' output schema;
/// the response is built from `warden_sandbox::Outcome`.)
#[derive(Debug, Serialize, ToSchema, schemars::JsonSchema)]
pub struct ExecutionResponse {
    /// Execution id (for `GET /v1/executions/{id}`).
    pub id: String,
    /// The execution was cancelled (lockdown, shutdown); it then shows signal 9.
    pub cancelled: bool,
    /// The limits applied after capping.
    pub limits: AppliedLimits,
    /// Exit status when the program exited normally.
    pub exit_code: Option<i32>,
    /// Signal number when it was killed (9 after a timeout, OOM kill or cancel).
    pub signal: Option<i32>,
    /// The wall-clock limit was reached.
    pub timed_out: bool,
    /// The OOM killer killed a process of the execution.
    pub oom_killed: bool,
    /// Wall time, milliseconds.
    pub wall_time_ms: f64,
    /// CPU time, milliseconds.
    pub cpu_time_ms: f64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// Captured stdout (lossy UTF-8, capped).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8, capped).
    pub stderr: String,
    /// stdout was longer than the cap.
    pub stdout_truncated: bool,
    /// stderr was longer than the cap.
    pub stderr_truncated: bool,
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
    /// Denied syscalls: `[{"syscall": "ptrace", "count": 1}]`.
    pub seccomp_violations: Vec<SeccompViolation>,
    /// Why the program could not be started.
    pub exec_error: Option<String>,
    /// Isolation layers missing on this host (allowed by configuration).
    pub missing_layers: Vec<String>,
    /// cgroup version used.
    pub cgroup: Option<String>,
    /// Landlock ABI enforced.
    pub landlock_abi: Option<u32>,
}

/// A stored execution (`GET /v1/executions/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionRecord {
    /// Execution id.
    pub id: String,
    /// Who ran it (`key:<id>`, `jwt:<sub>`).
    pub principal: String,
    /// Language profile.
    pub language: String,
    /// Request id of the run.
    pub request_id: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Outcome class: ok, nonzero_exit, timeout, oom, signal, error.
    pub outcome_class: String,
    /// The response the run returned.
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
}

/// Run code in a sandbox.
#[utoipa::path(
    post, path = "/v1/executions", request_body = ExecutionRequest,
    responses(
        (status = 200, description = "The Outcome (also for timeouts and OOM kills)", body = ExecutionResponse),
        (status = 400, description = "Bad request (unknown language, unavailable network mode)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No `execute` scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field has the wrong type or value", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Queue full (Retry-After), lockdown, or runtime missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn create_execution(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    extensions: Extensions,
    ApiJson(request): ApiJson<ExecutionRequest>,
) -> Result<Response, Problem> {
    let ctx = ctx_of(&extensions);
    let deny = |reason: &str| {
        NewEvent::new("execution", Decision::Deny)
            .reason(reason)
            .details(serde_json::json!({"language": request.language}))
    };
    if state.locked_down() {
        state
            .audit(&ctx, Some(&principal.id), deny("lockdown"))
            .await;
        return Err(Problem::new(
            Kind::Lockdown,
            "the server is in lockdown: no new executions",
        )
        .retry_after(60));
    }
    let Some(language) = state.languages.get(&request.language) else {
        let names: Vec<&str> = state.languages.keys().map(String::as_str).collect();
        return Err(Problem::new(
            Kind::BadRequest,
            format!(
                "unknown language `{}`; this server offers: {}",
                request.language,
                names.join(", ")
            ),
        )
        .with("field", "language"));
    };
    if language.runtime.is_none() {
        state
            .audit(&ctx, Some(&principal.id), deny("runtime missing"))
            .await;
        return Err(Problem::new(
            Kind::RuntimeUnavailable,
            format!(
                "the runtime of `{}` (`{}`) is not installed on this host; see /readyz",
                request.language, language.profile.program
            ),
        ));
    }
    let sandbox = match &state.sandbox {
        Ok(s) => s.clone(),
        Err(e) => return Err(Problem::internal(e)),
    };
    let plan = execute::network_plan(
        &state.egress,
        &state.config.egress.allow_domains,
        request.network.as_ref(),
    )?;
    let (spec, limits) = execute::build_spec(
        &state.config,
        &state.allow_missing,
        language,
        &request,
        &plan,
    )?;

    let Some(ticket) = state.queue.admit() else {
        state.metrics.queue_rejections.inc();
        state
            .audit(&ctx, Some(&principal.id), deny("queue full"))
            .await;
        return Err(Problem::new(
            Kind::QueueFull,
            "every sandbox is busy and the queue is full; retry later",
        )
        .retry_after(1));
    };
    let Some(slot) = ticket.wait().await else {
        return Err(Problem::internal(&"the sandbox queue is closed"));
    };
    if state.locked_down() {
        state
            .audit(&ctx, Some(&principal.id), deny("lockdown"))
            .await;
        return Err(Problem::new(
            Kind::Lockdown,
            "the server is in lockdown: no new executions",
        )
        .retry_after(60));
    }

    let id = uuid::Uuid::new_v4().to_string();
    let guard = state.running.register(&id);
    // The run and its record happen in a task of their own. If this request goes away (the
    // client disconnects, an MCP client cancels the tool call), dropping `_stop` stops the
    // sandbox, and the task still records the execution, as cancelled, keeps the queue slot
    // until the sandbox is gone, and balances the running gauge.
    let _stop = execute::CancelOnDrop::new(guard.flag());
    let run = Run {
        state: Arc::clone(&state),
        principal,
        ctx,
        lang: request.language.clone(),
        id,
        guard,
        _slot: slot,
        sandbox,
        spec,
        plan,
        limits,
    };
    let task = state.running.spawn(run.execute());
    task.await.unwrap_or_else(|e| Err(Problem::internal(&e)))
}

/// One admitted execution, run and recorded by [`Run::execute`].
struct Run {
    state: Arc<AppState>,
    principal: Principal,
    ctx: crate::app::RequestContext,
    lang: String,
    id: String,
    guard: execute::RunGuard,
    _slot: crate::limits::Slot,
    sandbox: warden_sandbox::Sandbox,
    spec: warden_sandbox::Spec,
    plan: execute::NetworkPlan,
    limits: execute::AppliedLimits,
}

impl Run {
    /// Runs `spec`, then updates the metrics, records the execution with its audit event and
    /// returns the response body.
    async fn execute(self) -> Result<Response, Problem> {
        let Run {
            state,
            principal,
            ctx,
            lang,
            id,
            guard,
            _slot,
            sandbox,
            spec,
            plan,
            limits,
        } = self;
        state.metrics.sandboxes_running.inc();
        let started = Instant::now();
        let result = execute::run(sandbox, spec, guard.flag(), &plan, &state.resolver).await;
        state.metrics.sandboxes_running.dec();
        let cancelled = guard.cancelled();
        drop(guard);
        let (result, egress) = match result {
            Ok((result, egress)) => (Ok(result), egress),
            Err(e) => (Err(e), None),
        };
        for line in egress.iter().flat_map(|r| &r.connections) {
            let decision = match line.decision {
                warden_egress::Decision::Allow => "allow",
                _ => "deny",
            };
            let rule = line.rule.clone().unwrap_or_else(|| "allowed".into());
            state
                .metrics
                .egress_decisions
                .get_or_create(&EgressLabels { decision, rule })
                .inc();
        }
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                let user_error = matches!(
                    e,
                    warden_sandbox::Error::Limits(_)
                        | warden_sandbox::Error::InputTooLarge { .. }
                        | warden_sandbox::Error::BadInputPath(_)
                        | warden_sandbox::Error::ConflictingInputPaths { .. }
                        | warden_sandbox::Error::TooManyInputFiles { .. }
                );
                state
                    .metrics
                    .executions
                    .get_or_create(&ExecutionLabels {
                        language: lang.clone(),
                        outcome: "error",
                    })
                    .inc();
                let event = NewEvent::new("execution", Decision::Error)
                    .reason(e.to_string())
                    .details(serde_json::json!({"language": lang, "id": id}));
                state.audit(&ctx, Some(&principal.id), event).await;
                return Err(if user_error {
                    Problem::new(Kind::InvalidBody, e.to_string())
                } else {
                    Problem::internal(&e)
                });
            }
            Err(e) => return Err(Problem::internal(&e)),
        };
        let class = execute::outcome_class(&outcome);
        state
            .metrics
            .executions
            .get_or_create(&ExecutionLabels {
                language: lang.clone(),
                outcome: class,
            })
            .inc();
        state
            .metrics
            .execution_duration
            .get_or_create(&LanguageLabel {
                language: lang.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        for v in &outcome.seccomp_violations {
            state
                .metrics
                .seccomp_violations
                .get_or_create(&SyscallLabel {
                    syscall: syscall_label(&v.syscall),
                })
                .inc_by(v.count);
        }
        let mut body = serde_json::to_value(&outcome).map_err(|e| Problem::internal(&e))?;
        if let Some(map) = body.as_object_mut() {
            map.insert("id".into(), id.clone().into());
            map.insert("cancelled".into(), cancelled.into());
            if let Some(report) = &egress {
                map.insert(
                    "egress".into(),
                    serde_json::to_value(&report.connections).unwrap_or_default(),
                );
                map.insert("egress_dropped".into(), report.dropped.into());
            }
            map.insert(
                "limits".into(),
                serde_json::to_value(limits).unwrap_or_default(),
            );
        }
        let row = ExecutionRow {
            id: id.clone(),
            principal: principal.id.clone(),
            language: lang.clone(),
            request_id: ctx.request_id.clone(),
            created_at: rfc3339_now(),
            outcome: class.to_string(),
            record: body.clone(),
        };
        let event = NewEvent::new("execution", Decision::Allow)
            .reason(class)
            .details(serde_json::json!({
                "id": id,
                "language": lang,
                "outcome": class,
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "cancelled": cancelled,
                "wall_time_ms": outcome.wall_time_ms,
                "seccomp_violations": outcome.seccomp_violations.iter().map(|v| v.count).sum::<u64>(),
            }));
        state
            .record_execution(&ctx, &principal.id, &row, event)
            .await;
        Ok(Json(body).into_response())
    }
}

/// Read a stored execution: your own, or any with the `admin` scope.
#[utoipa::path(
    get, path = "/v1/executions/{id}",
    params(("id" = String, Path, description = "Execution id")),
    responses(
        (status = 200, body = ExecutionRecord),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither `execute` nor `admin` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution, or not yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn get_execution(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    extensions: Extensions,
    Path(id): Path<String>,
) -> Result<Json<ExecutionRecord>, Problem> {
    let ctx = ctx_of(&extensions);
    let admin = principal.scopes.has(Scope::Admin);
    if !admin && !principal.scopes.has(Scope::Execute) {
        return Err(scope_denied(&state, &ctx, &principal, "execute", "/v1/executions/{id}").await);
    }
    let row = state
        .store
        .get_execution(&id)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let visible = row.filter(|r| admin || r.principal == principal.id);
    let decision = if visible.is_some() {
        Decision::Allow
    } else {
        Decision::Deny
    };
    state
        .audit(
            &ctx,
            Some(&principal.id),
            NewEvent::new("execution.read", decision).details(serde_json::json!({"id": id})),
        )
        .await;
    let row = visible.ok_or_else(|| Problem::new(Kind::NotFound, "no such execution"))?;
    Ok(Json(ExecutionRecord {
        id: row.id,
        principal: row.principal,
        language: row.language,
        request_id: row.request_id,
        created_at: row.created_at,
        outcome_class: row.outcome,
        result: row.record,
    }))
}

/// `POST /v1/fetch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchBody {
    /// http or https URL.
    pub url: String,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, standard base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Bytes of response body kept (capped at `egress.max_response_bytes`).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// One response header.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderPair {
    /// Name (lowercase).
    pub name: String,
    /// Value (lossy UTF-8).
    pub value: String,
}

/// One redirect followed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedirectHop {
    /// URL requested.
    pub url: String,
    /// Redirect status.
    pub status: u16,
    /// Address connected to.
    pub address: Option<String>,
}

/// `POST /v1/fetch` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct FetchResult {
    /// Final HTTP status.
    pub status: u16,
    /// Final response headers.
    pub headers: Vec<HeaderPair>,
    /// Body, standard base64.
    pub body_base64: String,
    /// The body was cut at `max_bytes`.
    pub truncated: bool,
    /// URL of the final response.
    pub final_url: String,
    /// Address the final response came from.
    pub connected_address: Option<String>,
    /// Redirects followed, in order.
    pub redirects: Vec<RedirectHop>,
}

/// The `syscall` label of `warden_seccomp_violations_total` for a violation's name: a number
/// libseccomp cannot name (`syscall_<nr>`) is the program's choice, so all of them share the
/// label `unknown` and /metrics stays bounded (review, session 5: each execution could add
/// 256 series).
fn syscall_label(name: &str) -> String {
    if name.starts_with("syscall_") {
        "unknown".to_string()
    } else {
        name.to_string()
    }
}

/// Longest `url` a fetch accepts, in bytes (browsers and CDNs cap URLs around 8 KiB too); a
/// longer one would also carry its host, unabridged, into denial messages and the audit log.
pub const MAX_FETCH_URL_BYTES: usize = 8 << 10;

/// Fetch a URL through the egress policy (every redirect judged again).
#[utoipa::path(
    post, path = "/v1/fetch", request_body = FetchBody,
    responses(
        (status = 200, body = FetchResult),
        (status = 422, description = "Invalid body: a `url` over 8 KiB, a bad method or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No `fetch` scope, or the egress policy denies a hop (`rule` says which)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The upstream exchange failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Lockdown", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn fetch(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    extensions: Extensions,
    ApiJson(body): ApiJson<FetchBody>,
) -> Result<Json<FetchResult>, Problem> {
    let ctx = ctx_of(&extensions);
    if body.url.len() > MAX_FETCH_URL_BYTES {
        return Err(Problem::new(
            Kind::InvalidBody,
            format!(
                "url: {} bytes; at most {MAX_FETCH_URL_BYTES} are accepted",
                body.url.len()
            ),
        )
        .with("field", "url"));
    }
    if state.locked_down() {
        let event = NewEvent::new("fetch", Decision::Deny)
            .reason("lockdown")
            .details(serde_json::json!({"url": redact_url(&body.url)}));
        state.audit(&ctx, Some(&principal.id), event).await;
        return Err(
            Problem::new(Kind::Lockdown, "the server is in lockdown: no new fetches")
                .retry_after(60),
        );
    }
    let mut request = FetchRequest::get(body.url.clone());
    if let Some(method) = &body.method {
        request.method = method.to_ascii_uppercase().parse().map_err(|_| {
            Problem::new(
                Kind::InvalidBody,
                format!("method: `{method}` is not an HTTP method"),
            )
            .with("field", "method")
        })?;
    }
    request.headers = body.headers.clone().into_iter().collect();
    if let Some(b64) = &body.body_base64 {
        request.body = Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    Problem::new(Kind::InvalidBody, format!("body_base64: not base64: {e}"))
                        .with("field", "body_base64")
                })?,
        );
    }
    let egress = &state.config.egress;
    request.max_bytes = body
        .max_bytes
        .unwrap_or(egress.max_response_bytes)
        .min(egress.max_response_bytes);
    request.timeout = std::time::Duration::from_secs(egress.timeout_s.max(1));
    let policy = state.egress.clone();
    let resolver = state.resolver.clone();
    let result =
        tokio::task::spawn_blocking(move || warden_egress::fetch(&policy, &resolver, &request))
            .await
            .map_err(|e| Problem::internal(&e))?;
    let decision = |decision: &'static str, rule: String| {
        state
            .metrics
            .egress_decisions
            .get_or_create(&EgressLabels { decision, rule })
            .inc();
    };
    match result {
        Ok(response) => {
            decision("allow", "allowed".into());
            let event = NewEvent::new("fetch", Decision::Allow).details(serde_json::json!({
                "url": redact_url(&body.url),
                "final_url": redact_url(&response.final_url),
                "status": response.status,
                "connected_address": response.connected_address.map(|a| a.to_string()),
                "redirects": response.redirects.len(),
            }));
            state.audit(&ctx, Some(&principal.id), event).await;
            Ok(Json(FetchResult {
                status: response.status,
                headers: response
                    .headers
                    .into_iter()
                    .map(|(name, value)| HeaderPair { name, value })
                    .collect(),
                body_base64: base64::engine::general_purpose::STANDARD.encode(&response.body),
                truncated: response.truncated,
                final_url: response.final_url,
                connected_address: response.connected_address.map(|a| a.to_string()),
                redirects: response
                    .redirects
                    .into_iter()
                    .map(|h| RedirectHop {
                        url: h.url,
                        status: h.status,
                        address: h.address.map(|a| a.to_string()),
                    })
                    .collect(),
            }))
        }
        Err(FetchError::Denied { url, denial }) => {
            let rule = serde_json::to_value(&denial)
                .ok()
                .and_then(|v| v.get("rule").and_then(|r| r.as_str()).map(str::to_string))
                .unwrap_or_else(|| "unknown".into());
            decision("deny", rule.clone());
            let event = NewEvent::new("fetch", Decision::Deny)
                .reason(denial.to_string())
                .details(serde_json::json!({
                    "url": redact_url(&body.url),
                    "denied_url": redact_url(&url),
                    "rule": rule
                }));
            state.audit(&ctx, Some(&principal.id), event).await;
            Err(
                Problem::new(Kind::EgressDenied, format!("denied: {denial}"))
                    .with("rule", rule)
                    .with("url", url),
            )
        }
        Err(e @ FetchError::BadHeader(_)) => {
            Err(Problem::new(Kind::InvalidBody, e.to_string()).with("field", "headers"))
        }
        Err(e) => {
            // Audited and answered without the URLs' credentials and queries (review, session
            // 5: the audit chain, which cannot be redacted later, kept them).
            let text = e.redacted_message();
            let event = NewEvent::new("fetch", Decision::Error)
                .reason(text.clone())
                .details(serde_json::json!({"url": redact_url(&body.url)}));
            state.audit(&ctx, Some(&principal.id), event).await;
            Err(Problem::new(Kind::UpstreamFailed, text))
        }
    }
}

/// `POST /v1/admin/lockdown` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockdownBody {
    /// On: new executions and fetches get 503 and running sandboxes are killed.
    pub enabled: bool,
}

/// `POST /v1/admin/lockdown` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockdownResult {
    /// The switch's new state.
    pub enabled: bool,
    /// Running executions cancelled by this call.
    pub cancelled: usize,
}

/// Incident switch (needs `admin`).
#[utoipa::path(
    post, path = "/v1/admin/lockdown", request_body = LockdownBody,
    responses(
        (status = 200, body = LockdownResult),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No `admin` scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub async fn lockdown(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    extensions: Extensions,
    ApiJson(body): ApiJson<LockdownBody>,
) -> Json<LockdownResult> {
    let ctx = ctx_of(&extensions);
    let cancelled = state.set_lockdown(body.enabled);
    tracing::warn!(enabled = body.enabled, cancelled, principal = %principal.id, "lockdown switched");
    let event = NewEvent::new("lockdown", Decision::Allow)
        .reason(if body.enabled { "enabled" } else { "disabled" })
        .details(serde_json::json!({"enabled": body.enabled, "cancelled": cancelled}));
    state.audit(&ctx, Some(&principal.id), event).await;
    Json(LockdownResult {
        enabled: body.enabled,
        cancelled,
    })
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: store writable, sandbox self-test passed, every language runtime found.
#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready"), (status = 503, description = "Not ready; the body says why")))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (ready, report) = state.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state
        .metrics
        .sandboxes_running
        .set(state.running.count() as i64);
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (wdn_…) or a JWT"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Warden API", description = "Hardened execution and egress gateway for AI agents. Errors are RFC 9457 problem details."),
    paths(create_execution, get_execution, fetch, lockdown, healthz, readyz, metrics, openapi),
    components(schemas(ExecutionRequest, ExecutionResponse, ExecutionRecord, FetchBody, FetchResult, LockdownBody, LockdownResult, Problem)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_syscalls_share_one_metric_label() {
        assert_eq!(syscall_label("ptrace"), "ptrace");
        assert_eq!(syscall_label("syscall_1000"), "unknown");
        assert_eq!(syscall_label("syscall_1001"), "unknown");
    }
}
