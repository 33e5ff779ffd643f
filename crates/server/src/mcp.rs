//! Warden as a Model Context Protocol server: the tools `run_code`, `run_command` and
//! `fetch_url`, over stdio (`warden mcp`) or MCP's Streamable HTTP transport at `/mcp` on
//! `warden serve`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rmcp::ServiceExt;
//! use warden_server::mcp::WardenMcp;
//! use warden_server::{AppState, Config, Options};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(Some("warden.toml".as_ref()))?;
//! let secrets = config.validate()?;
//! let state = AppState::new(config, secrets, Options::new(std::env::current_exe()?)).await?;
//! let service = WardenMcp::local(state).serve(rmcp::transport::stdio()).await?;
//! service.waiting().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! Protocol: MCP (<https://modelcontextprotocol.io/specification>) through the official Rust
//! SDK `rmcp`. The tools do not run anything themselves: each call becomes the body of the
//! HTTP API's own handler ([`api::create_execution`], [`api::fetch`]) and is passed to it
//! directly, so language profiles, limit caps, lockdown, the sandbox queue, metrics, stored
//! execution records and audit events are the API's, unchanged. `run_command` is the `sh`
//! profile running `set -- ARGV; exec "$@"` (the arguments single-quoted), so it too is an
//! ordinary execution.
//!
//! Who is calling:
//! - stdio ([`WardenMcp::local`]): the local operator who started `warden mcp`, principal
//!   [`LOCAL_PRINCIPAL`] with the `execute` and `fetch` scopes; the per-principal rate limit
//!   is applied per tool call.
//! - HTTP ([`http_service`], mounted by [`crate::app::app`] behind the API's authentication and
//!   per-client and per-principal rate limits): the principal the `authenticate` layer put
//!   in the request's extensions. Each tool call checks its scope (`execute` for `run_*`,
//!   `fetch` for `fetch_url`); a missing scope is audited like the API's 403 and answered
//!   as a tool error.
//!
//! Failures the model can act on (policy denial, unknown language, bad field, queue full,
//! lockdown) are tool results with `isError: true` whose text names the reason and whose
//! structured content is the API's RFC 9457 problem document. Arguments that do not match a
//! tool's schema are tool errors too (rmcp's "failed to deserialize parameters: …"); a
//! protocol error (-32602) is kept for a call that cannot be routed (an unknown tool).
//!
//! # Limitations
//!
//! - The Streamable HTTP endpoint is stateless (no `Mcp-Session-Id`, JSON responses, no
//!   server-initiated stream on `GET`): every call is one authenticated POST, so the request
//!   timeout and rate limits apply per call.
//! - No progress notifications. MCP `notifications/cancelled` for a `run_code` or
//!   `run_command` call stops its sandbox (the execution is recorded as cancelled), as do an
//!   HTTP client that disconnects mid-call, lockdown and shutdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use base64::Engine;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext as McpContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};

use crate::api::{self, ApiJson, FetchBody};
use crate::app::{scope_denied, AppState, RequestContext};
use crate::auth::{Method, Principal, Scope, Scopes};
use crate::execute::ExecutionRequest;
use crate::problem::{Kind, Problem};

/// Principal id of the local operator of `warden mcp` (stdio).
pub const LOCAL_PRINCIPAL: &str = "local:mcp-stdio";

/// Bytes of response body `fetch_url` returns when the call gives no `max_bytes` (64 KiB;
/// capped at `egress.max_response_bytes`). Smaller than the API's default: the text goes into
/// a model's context.
pub const DEFAULT_FETCH_BYTES: u64 = 64 << 10;

/// Bytes of stdout and of stderr repeated in a tool result's text content (the structured
/// content carries the whole capture, up to `sandbox.max_output_bytes`).
pub const TEXT_EXCERPT_BYTES: usize = 32 << 10;

/// The language profile `run_command` runs its script with.
pub const COMMAND_LANGUAGE: &str = "sh";

/// `run_code` arguments.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCodeInput {
    /// Language profile name, one of the languages listed in the server instructions
    /// (by default `python`, `bash`, `sh`, `node`).
    pub language: String,
    /// Source code; written to the profile's file in `/work` (the working directory) and run.
    pub code: String,
    /// Standard input as UTF-8 text; without it the program reads end-of-file at once.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Wall-clock limit in seconds (default 30; capped at the server's maximum).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Memory limit in MiB (default 512, at least 4; capped at the server's maximum).
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

/// A file `run_command` puts in `/work` before the command starts.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    /// Path relative to `/work`, without `..` (for example `data/input.csv`).
    pub path: String,
    /// Contents as UTF-8 text. Give this or `content_base64`, not both.
    #[serde(default)]
    pub content: Option<String>,
    /// Contents as standard base64 (for binary files). Give this or `content`, not both.
    #[serde(default)]
    pub content_base64: Option<String>,
}

/// `run_command` arguments.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCommandInput {
    /// The program and its arguments, for example `["ls", "-la"]`; the program is a path or a
    /// name looked up in `/usr/local/bin:/usr/bin:/bin` inside the sandbox. No shell parses
    /// these: each element is passed as it is.
    pub argv: Vec<String>,
    /// Files put in `/work` (the working directory) first.
    #[serde(default)]
    pub files: Vec<CommandFile>,
    /// Standard input as UTF-8 text; without it the program reads end-of-file at once.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Wall-clock limit in seconds (default 30; capped at the server's maximum).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Memory limit in MiB (default 512, at least 4; capped at the server's maximum).
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

/// `fetch_url` arguments.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchUrlInput {
    /// `http` or `https` URL.
    pub url: String,
    /// HTTP method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers, name to value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body as UTF-8 text.
    #[serde(default)]
    pub body: Option<String>,
    /// Bytes of response body to return (default 65536; capped at the server's maximum).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// One response header of `fetch_url`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FetchHeader {
    /// Name (lowercase).
    pub name: String,
    /// Value (lossy UTF-8).
    pub value: String,
}

/// Structured result of `fetch_url`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FetchUrlOutput {
    /// Final HTTP status.
    pub status: u16,
    /// Final response headers.
    pub headers: Vec<FetchHeader>,
    /// Response body as text (invalid UTF-8 replaced by U+FFFD), at most `max_bytes` bytes
    /// of the body.
    pub body: String,
    /// Bytes of body returned (before UTF-8 replacement).
    pub body_bytes: u64,
    /// The body was not valid UTF-8 (`body` shows replacement characters).
    pub body_lossy: bool,
    /// The body was cut at `max_bytes`.
    pub truncated: bool,
    /// URL of the final response (after redirects).
    pub final_url: String,
    /// Address the final response came from.
    pub connected_address: Option<String>,
    /// Redirects followed, in order.
    pub redirects: Vec<serde_json::Value>,
}

/// Where calls come from, and so who the principal is.
#[derive(Debug, Clone)]
enum Caller {
    /// `warden mcp`: the local operator.
    Local(Principal),
    /// `/mcp`: the principal the authentication layer found.
    Http,
}

/// The MCP server: the three tools over one [`AppState`].
#[derive(Debug, Clone)]
pub struct WardenMcp {
    state: Arc<AppState>,
    caller: Caller,
}

/// A tool call's principal and request context, or the tool error that ends it.
type Who = Result<(Principal, RequestContext), CallToolResult>;

impl WardenMcp {
    /// The stdio server: calls run as [`LOCAL_PRINCIPAL`] with the `execute` and `fetch`
    /// scopes, under the per-principal rate limit.
    pub fn local(state: Arc<AppState>) -> Self {
        let principal = Principal {
            id: LOCAL_PRINCIPAL.to_string(),
            method: Method::Local,
            scopes: Scopes([Scope::Execute, Scope::Fetch].into_iter().collect()),
        };
        WardenMcp {
            state,
            caller: Caller::Local(principal),
        }
    }

    /// The server behind `/mcp`: each call's principal comes from its HTTP request.
    pub fn http(state: Arc<AppState>) -> Self {
        WardenMcp {
            state,
            caller: Caller::Http,
        }
    }

    /// The caller of this tool call, its scope checked (`needed`), its context built.
    async fn who(&self, context: &McpContext<RoleServer>, needed: Scope, tool: &str) -> Who {
        match &self.caller {
            Caller::Local(principal) => {
                let ctx = RequestContext {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    client: None,
                };
                if let Err(wait) = self.state.limits.check_principal(&principal.id) {
                    self.state
                        .rate_limit_denied(&ctx, Some(&principal.id), "principal")
                        .await;
                    return Err(problem_result(
                        &Problem::new(Kind::RateLimited, "too many calls for this principal")
                            .retry_after(wait),
                    ));
                }
                Ok((principal.clone(), ctx))
            }
            Caller::Http => {
                let parts = context.extensions.get::<axum::http::request::Parts>();
                let principal = parts.and_then(|p| p.extensions.get::<Principal>()).cloned();
                let ctx = parts
                    .and_then(|p| p.extensions.get::<RequestContext>())
                    .cloned()
                    .unwrap_or_else(|| RequestContext {
                        request_id: uuid::Uuid::new_v4().to_string(),
                        client: None,
                    });
                let Some(principal) = principal else {
                    // Only reachable if the route were mounted without authentication.
                    return Err(problem_result(&Problem::unauthorized()));
                };
                if !principal.scopes.has(needed) {
                    // Audited and counted like the API's 403.
                    let route = format!("/mcp tools/call {tool}");
                    let _ =
                        scope_denied(&self.state, &ctx, &principal, needed.as_str(), &route).await;
                    return Err(problem_result(&Problem::new(
                        Kind::Forbidden,
                        format!(
                            "the tool `{tool}` needs the `{}` scope, which this credential lacks",
                            needed.as_str()
                        ),
                    )));
                }
                Ok((principal, ctx))
            }
        }
    }

    /// Runs an execution request through the API's handler.
    async fn execute(
        &self,
        principal: Principal,
        ctx: RequestContext,
        request: serde_json::Value,
        title: &str,
    ) -> CallToolResult {
        let request: ExecutionRequest = match serde_json::from_value(request) {
            Ok(r) => r,
            Err(e) => {
                return problem_result(&Problem::new(Kind::InvalidBody, e.to_string()));
            }
        };
        if let (Caller::Local(_), Err(reason)) = (&self.caller, &self.state.sandbox) {
            // The local operator may see why; over HTTP the API's generic 500 stands.
            return problem_result(&Problem::new(
                Kind::Internal,
                format!("the sandbox is unavailable on this host: {reason} (see `warden doctor`)"),
            ));
        }
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(ctx);
        let response = api::create_execution(
            State(Arc::clone(&self.state)),
            Extension(principal),
            extensions,
            ApiJson(request),
        )
        .await;
        let response = match response {
            Ok(r) => r,
            Err(problem) => return problem_result(&problem),
        };
        let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(b) => b,
            Err(e) => return problem_result(&Problem::internal(&e)),
        };
        let value: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return problem_result(&Problem::internal(&e)),
        };
        let mut result = CallToolResult::structured(value.clone());
        result.content = vec![ContentBlock::text(outcome_text(title, &value))];
        result
    }
}

#[tool_router]
impl WardenMcp {
    /// Runs code in a fresh sandbox.
    #[tool(
        name = "run_code",
        description = "Run a program written in one of the configured languages in a fresh, isolated Linux sandbox (no network, a private /work directory that is discarded afterwards, CPU/memory/time limits). Returns the Outcome: stdout, stderr, exit_code, signal, timed_out, oom_killed, seccomp_violations, wall and CPU time, peak memory. A program that fails, times out or is killed is a normal result, not a tool error.",
        annotations(
            title = "Run code in a sandbox",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<api::ExecutionResponse>()
    )]
    async fn run_code(
        &self,
        Parameters(input): Parameters<RunCodeInput>,
        context: McpContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (principal, ctx) = match self.who(&context, Scope::Execute, "run_code").await {
            Ok(w) => w,
            Err(result) => return Ok(result),
        };
        let request = serde_json::json!({
            "language": input.language,
            "code": input.code,
            "stdin": input.stdin,
            "timeout_s": input.timeout_s,
            "memory_mb": input.memory_mb,
        });
        let title = format!("{} program", input.language);
        let call = self.execute(principal, ctx, request, &title);
        Ok(unless_cancelled(&context.ct, call).await)
    }

    /// Runs a command in a fresh sandbox.
    #[tool(
        name = "run_command",
        description = "Run one command (argv, no shell parsing) in a fresh, isolated Linux sandbox, optionally with files placed in its working directory /work first. Same isolation, limits and Outcome as run_code. Only programs installed on the host under /usr/local/bin, /usr/bin or /bin (or given by path) exist inside.",
        annotations(
            title = "Run a command in a sandbox",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<api::ExecutionResponse>()
    )]
    async fn run_command(
        &self,
        Parameters(input): Parameters<RunCommandInput>,
        context: McpContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (principal, ctx) = match self.who(&context, Scope::Execute, "run_command").await {
            Ok(w) => w,
            Err(result) => return Ok(result),
        };
        let script = match command_script(&input.argv) {
            Ok(s) => s,
            Err(problem) => return Ok(problem_result(&problem)),
        };
        let files = match command_files(&input.files) {
            Ok(f) => f,
            Err(problem) => return Ok(problem_result(&problem)),
        };
        if !self.state.languages.contains_key(COMMAND_LANGUAGE) {
            return Ok(problem_result(&Problem::new(
                Kind::BadRequest,
                format!(
                    "run_command needs the `{COMMAND_LANGUAGE}` language profile, which this server does not configure; use run_code, or add [languages.{COMMAND_LANGUAGE}] program = \"sh\", file = \"main.sh\""
                ),
            )));
        }
        let request = serde_json::json!({
            "language": COMMAND_LANGUAGE,
            "code": script,
            "stdin": input.stdin,
            "files": files,
            "timeout_s": input.timeout_s,
            "memory_mb": input.memory_mb,
        });
        let title = format!("command `{}`", input.argv.join(" "));
        let call = self.execute(principal, ctx, request, &title);
        Ok(unless_cancelled(&context.ct, call).await)
    }

    /// Fetches a URL through the egress policy.
    #[tool(
        name = "fetch_url",
        description = "Fetch an http(s) URL from the Warden host through its egress policy: private, loopback, link-local and cloud-metadata addresses are refused, every redirect is judged again, and the body is capped. A refused URL is a tool error naming the rule. GET and HEAD only read; other methods (POST, PUT, DELETE ...) may change state on the remote server.",
        annotations(
            title = "Fetch a URL",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<FetchUrlOutput>()
    )]
    async fn fetch_url(
        &self,
        Parameters(input): Parameters<FetchUrlInput>,
        context: McpContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (principal, ctx) = match self.who(&context, Scope::Fetch, "fetch_url").await {
            Ok(w) => w,
            Err(result) => return Ok(result),
        };
        let body = serde_json::json!({
            "url": input.url,
            "method": input.method,
            "headers": input.headers,
            "body_base64": input.body.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            "max_bytes": input.max_bytes.unwrap_or(DEFAULT_FETCH_BYTES),
        });
        let body: FetchBody = match serde_json::from_value(body) {
            Ok(b) => b,
            Err(e) => {
                return Ok(problem_result(&Problem::new(
                    Kind::InvalidBody,
                    e.to_string(),
                )))
            }
        };
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(ctx);
        let result = api::fetch(
            State(Arc::clone(&self.state)),
            Extension(principal),
            extensions,
            ApiJson(body),
        )
        .await;
        let fetched = match result {
            Ok(axum::Json(f)) => f,
            Err(problem) => return Ok(problem_result(&problem)),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&fetched.body_base64)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let output = FetchUrlOutput {
            status: fetched.status,
            headers: fetched
                .headers
                .into_iter()
                .map(|h| FetchHeader {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
            body_lossy: matches!(text, std::borrow::Cow::Owned(_)),
            body: text.into_owned(),
            body_bytes: bytes.len() as u64,
            truncated: fetched.truncated,
            final_url: fetched.final_url,
            connected_address: fetched.connected_address,
            redirects: fetched
                .redirects
                .into_iter()
                .map(
                    |h| serde_json::json!({"url": h.url, "status": h.status, "address": h.address}),
                )
                .collect(),
        };
        let mut summary = format!(
            "HTTP {} from {} ({} bytes of body{})",
            output.status,
            output.final_url,
            output.body_bytes,
            if output.truncated {
                ", truncated at max_bytes"
            } else {
                ""
            }
        );
        if !output.redirects.is_empty() {
            let _ = write!(summary, " after {} redirect(s)", output.redirects.len());
        }
        summary.push_str("\n\n");
        summary.push_str(excerpt(&output.body));
        let value = serde_json::to_value(&output).unwrap_or_default();
        let mut result = CallToolResult::structured(value);
        result.content = vec![ContentBlock::text(summary)];
        Ok(result)
    }
}

#[tool_handler]
impl ServerHandler for WardenMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions(&self.state))
    }
}

/// The Streamable HTTP service for `/mcp`: stateless, JSON responses, one [`WardenMcp::http`]
/// per request. Mount it behind the API's authentication (see [`crate::app::app`]): the tools
/// read the [`Principal`] from the request's extensions and refuse calls without one. `Host`
/// checking is left to the API's `server.allowed_hosts` layer; the body limit is
/// `server.max_body_bytes`.
pub fn http_service(state: Arc<AppState>) -> StreamableHttpService<WardenMcp, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.config.server.max_body_bytes);
    StreamableHttpService::new(
        move || Ok(WardenMcp::http(Arc::clone(&state))),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// What the model is told about this sandbox at `initialize`.
pub fn instructions(state: &AppState) -> String {
    let config = &state.config;
    let sb = &config.sandbox;
    let languages: Vec<String> = state
        .languages
        .iter()
        .map(|(name, lang)| match &lang.runtime {
            Some(_) => format!(
                "{name} ({}, file /work/{})",
                lang.profile.program, lang.profile.file
            ),
            None => format!(
                "{name} (runtime `{}` not installed: unavailable)",
                lang.profile.program
            ),
        })
        .collect();
    let egress = &config.egress;
    let domains = if egress.allow_domains.is_empty() {
        "any public host name".to_string()
    } else {
        format!("only {}", egress.allow_domains.join(", "))
    };
    let ports: Vec<String> = egress.ports.iter().map(u16::to_string).collect();
    format!(
        "Warden runs untrusted code in a fresh, isolated Linux sandbox per call and fetches URLs \
         through an egress policy.\n\
         - run_code: languages {languages}. The code is written to /work (the working directory, \
         discarded afterwards) and run.\n\
         - run_command: one argv (no shell) with optional files in /work; programs are those \
         installed on the host (/usr/local/bin, /usr/bin, /bin).\n\
         - Limits per run: timeout_s default {def_t} s, at most {max_t} s; memory_mb default \
         {def_m} MiB, at most {max_m} MiB; stdout and stderr kept up to {out} bytes each; \
         {conc} sandboxes at once, {queue} more may wait.\n\
         - The sandbox has NO network (only its own loopback): code cannot download packages or \
         call APIs. Use fetch_url for web content instead.\n\
         - fetch_url: http/https from the Warden host to {domains} on ports {ports}; private, \
         loopback, link-local and metadata addresses are refused (the error names the rule); \
         at most {max_body} bytes of body, {fetch_t} s per fetch.\n\
         - A program that fails, times out (timed_out) or is killed for memory (oom_killed) is a \
         normal result; read exit_code, stdout and stderr.",
        languages = languages.join(", "),
        def_t = crate::execute::DEFAULT_TIMEOUT_S,
        max_t = sb.max_timeout_s,
        def_m = crate::execute::DEFAULT_MEMORY_MB,
        max_m = sb.max_memory_mb,
        out = sb.max_output_bytes,
        conc = sb.max_concurrent,
        queue = sb.queue_depth,
        ports = ports.join(", "),
        max_body = egress.max_response_bytes,
        fetch_t = egress.timeout_s,
    )
}

/// The `sh` script that runs `argv` without any shell parsing of its elements: `set --` with
/// each element single-quoted (POSIX shell, "Quoting"), then `exec "$@"`.
///
/// # Errors
///
/// A problem naming `argv` when it is empty, when an element holds a NUL byte (it cannot be
/// passed to `execve`), or when the program name starts with `-` (`exec` would read it as an
/// option).
pub fn command_script(argv: &[String]) -> Result<String, Problem> {
    let Some(program) = argv.first() else {
        return Err(field_problem(
            "argv",
            "must name a program, for example [\"ls\", \"-la\"]",
        ));
    };
    if program.is_empty() || program.starts_with('-') {
        return Err(field_problem(
            "argv[0]",
            "must be a program name or path (not empty, not starting with `-`)",
        ));
    }
    if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        return Err(field_problem(
            &format!("argv[{i}]"),
            "contains a NUL byte, which no program argument can hold",
        ));
    }
    let quoted: Vec<String> = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    Ok(format!("set -- {}\nexec \"$@\"\n", quoted.join(" ")))
}

/// `run_command` files as the API's `files` (base64 contents).
///
/// # Errors
///
/// A problem naming `files[i]` when it gives both `content` and `content_base64`. (An entry
/// with neither is an empty file.)
pub fn command_files(files: &[CommandFile]) -> Result<Vec<serde_json::Value>, Problem> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let content_base64 = match (&f.content, &f.content_base64) {
                (Some(_), Some(_)) => {
                    return Err(field_problem(
                        &format!("files[{i}]"),
                        "give either `content` (text) or `content_base64`, not both",
                    ))
                }
                (Some(text), None) => base64::engine::general_purpose::STANDARD.encode(text),
                (None, Some(b64)) => b64.clone(),
                (None, None) => String::new(),
            };
            Ok(serde_json::json!({"path": f.path, "content_base64": content_base64}))
        })
        .collect()
}

fn field_problem(field: &str, what: &str) -> Problem {
    Problem::new(Kind::InvalidBody, format!("{field}: {what}")).with("field", field)
}

/// Awaits `call` unless the client cancels the tool call first (MCP `notifications/cancelled`,
/// which rmcp turns into the request's cancellation token while it keeps polling the handler).
/// Dropping `call` stops its sandbox (the API's cancel-on-drop guard); the execution is still
/// recorded, as cancelled. The client ignores whatever is answered to a cancelled request.
async fn unless_cancelled(
    ct: &tokio_util::sync::CancellationToken,
    call: impl std::future::Future<Output = CallToolResult>,
) -> CallToolResult {
    tokio::select! {
        result = call => result,
        () = ct.cancelled() => {
            CallToolResult::error(vec![ContentBlock::text("the client cancelled this tool call")])
        }
    }
}

/// A problem as a tool error: the text says what happened (and for an egress denial, which
/// rule); the structured content is the problem document.
pub fn problem_result(problem: &Problem) -> CallToolResult {
    let mut text = match problem.extensions.get("rule").and_then(|r| r.as_str()) {
        Some(rule) => format!(
            "{} (egress rule `{rule}`): {}",
            problem.title, problem.detail
        ),
        None => format!("{}: {}", problem.title, problem.detail),
    };
    if let Some(s) = problem.retry_after_s {
        let _ = write!(text, " (retry after {s} s)");
    }
    let value = serde_json::to_value(problem).unwrap_or_default();
    let mut result = CallToolResult::structured_error(value);
    result.content = vec![ContentBlock::text(text)];
    result
}

/// At most [`TEXT_EXCERPT_BYTES`] of `text`, cut at a character boundary.
fn excerpt(text: &str) -> &str {
    crate::audit::prefix(text, TEXT_EXCERPT_BYTES)
}

/// The readable summary of an execution response.
pub fn outcome_text(title: &str, outcome: &serde_json::Value) -> String {
    let num = |k: &str| outcome[k].as_f64().unwrap_or(0.0);
    let mut text = String::new();
    let status = if let Some(err) = outcome["exec_error"].as_str() {
        format!("could not start: {err}")
    } else if outcome["timed_out"] == true {
        format!(
            "TIMED OUT at the {} s limit and was killed",
            outcome["limits"]["timeout_s"]
        )
    } else if outcome["oom_killed"] == true {
        format!(
            "was KILLED for exceeding the {} MiB memory limit",
            outcome["limits"]["memory_mb"]
        )
    } else if outcome["cancelled"] == true {
        "was cancelled (server lockdown or shutdown)".to_string()
    } else if let Some(sig) = outcome["signal"].as_i64() {
        format!("was killed by signal {sig}")
    } else {
        format!("exited with code {}", outcome["exit_code"])
    };
    let _ = writeln!(
        text,
        "{title} {status} (wall {:.0} ms, CPU {:.0} ms, peak memory {:.1} MiB)",
        num("wall_time_ms"),
        num("cpu_time_ms"),
        num("peak_memory_bytes") / f64::from(1 << 20),
    );
    if let Some(v) = outcome["seccomp_violations"]
        .as_array()
        .filter(|v| !v.is_empty())
    {
        let calls: Vec<String> = v
            .iter()
            .map(|x| format!("{} x{}", x["syscall"].as_str().unwrap_or("?"), x["count"]))
            .collect();
        let _ = writeln!(text, "denied system calls: {}", calls.join(", "));
    }
    for stream in ["stdout", "stderr"] {
        let body = outcome[stream].as_str().unwrap_or_default();
        if body.is_empty() {
            let _ = writeln!(text, "--- {stream}: (empty)");
            continue;
        }
        let cut = excerpt(body);
        let _ = writeln!(text, "--- {stream} ---\n{cut}");
        if cut.len() < body.len() {
            let _ = writeln!(
                text,
                "[{stream} shown up to {TEXT_EXCERPT_BYTES} bytes; the structured result has all {} kept bytes]",
                body.len()
            );
        }
        if outcome[format!("{stream}_truncated")] == true {
            let _ = writeln!(
                text,
                "[{stream} was cut at the server's limit: {} bytes were written]",
                outcome[format!("{stream}_bytes")]
            );
        }
    }
    text
}

/// Logging for `warden mcp`: `tracing` to stderr (stdout carries the protocol), level from
/// `RUST_LOG` (default `info`). Calling it twice leaves the first subscriber in place.
pub fn init_stderr_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn command_scripts_quote_every_argument() {
        let argv: Vec<String> = ["printf", "%s|", "it's", "$(id)", "a b", "-n"]
            .map(String::from)
            .to_vec();
        let script = command_script(&argv).unwrap();
        assert_eq!(
            script,
            "set -- 'printf' '%s|' 'it'\\''s' '$(id)' 'a b' '-n'\nexec \"$@\"\n"
        );
        // The shell really passes each element unchanged.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's|$(id)|a b|-n|");
    }

    #[test]
    fn bad_argv_is_refused_with_the_field_named() {
        let err = |argv: &[&str]| {
            command_script(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap_err()
                .detail
        };
        assert!(err(&[]).starts_with("argv:"));
        assert!(err(&["-rf"]).starts_with("argv[0]:"));
        assert!(err(&["ls", "a\0b"]).starts_with("argv[1]:"));
    }

    #[test]
    fn files_take_text_or_base64_but_not_both() {
        let files = command_files(&[
            CommandFile {
                path: "a.txt".into(),
                content: Some("hi".into()),
                content_base64: None,
            },
            CommandFile {
                path: "b.bin".into(),
                content: None,
                content_base64: Some("AAE=".into()),
            },
        ])
        .unwrap();
        assert_eq!(files[0]["content_base64"], "aGk=");
        assert_eq!(files[1]["content_base64"], "AAE=");
        let err = command_files(&[CommandFile {
            path: "c".into(),
            content: Some("x".into()),
            content_base64: Some("eA==".into()),
        }])
        .unwrap_err();
        assert!(err.detail.starts_with("files[0]:"), "{}", err.detail);
    }

    #[test]
    fn denials_become_tool_errors_naming_the_rule() {
        let problem = Problem::new(Kind::EgressDenied, "denied: 169.254.169.254 is link-local")
            .with("rule", "special_purpose_address");
        let result = problem_result(&problem);
        assert_eq!(result.is_error, Some(true));
        let text = result.content[0].as_text().unwrap().text.clone();
        assert!(text.contains("special_purpose_address"), "{text}");
        assert_eq!(
            result.structured_content.unwrap()["rule"],
            "special_purpose_address"
        );
    }

    #[test]
    fn timeouts_read_as_timeouts() {
        let outcome = serde_json::json!({
            "exit_code": null, "signal": 9, "timed_out": true, "oom_killed": false,
            "cancelled": false, "limits": {"timeout_s": 1.0, "memory_mb": 512},
            "wall_time_ms": 1003.0, "cpu_time_ms": 990.0, "peak_memory_bytes": 1048576,
            "stdout": "", "stderr": "", "seccomp_violations": [],
        });
        let text = outcome_text("python program", &outcome);
        assert!(
            text.starts_with("python program TIMED OUT at the 1.0 s limit"),
            "{text}"
        );
    }

    #[test]
    fn output_schemas_describe_what_the_api_returns() {
        // The API's execution response must satisfy the schema's required fields.
        let schema = schema_for_output::<api::ExecutionResponse>();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in ["id", "exit_code", "timed_out", "stdout", "stderr", "limits"] {
            assert!(required.contains(&field), "{field} in {required:?}");
        }
    }
}
