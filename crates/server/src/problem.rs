//! Errors as RFC 9457 problem details (`application/problem+json`), one stable `type` URI per
//! kind of error.
//!
//! # Design
//!
//! Handlers and middleware return [`Problem`]; its [`Kind`] fixes the status and the `type`
//! URI (`urn:warden:problem:<slug>`; an identifier, not a link). Internal failures carry a
//! generic `detail`: the real cause goes to the log, never to the client. Responses that
//! tower layers or axum itself produce without a body (404, 405, 408, 413) are rewritten into
//! problems by [`problemify`].

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of problem details (RFC 9457 section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type` URI.
pub const TYPE_PREFIX: &str = "urn:warden:problem:";

/// Every kind of error the API returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400: the request is malformed (bad JSON, bad base64, unknown language, bad Host).
    BadRequest,
    /// 422: the JSON is well-formed but a field has the wrong type or value.
    InvalidBody,
    /// 401: missing or invalid credentials (never says which).
    Unauthorized,
    /// 403: valid credentials without the needed scope.
    Forbidden,
    /// 403: the egress policy denies the destination.
    EgressDenied,
    /// 404: no such resource (or not yours).
    NotFound,
    /// 405: method not allowed on this route.
    MethodNotAllowed,
    /// 408: the request took longer than `server.request_timeout_s`.
    Timeout,
    /// 413: the body is larger than `server.max_body_bytes`.
    PayloadTooLarge,
    /// 429: a rate limit was hit; `Retry-After` says when to come back.
    RateLimited,
    /// 503: the execution queue is full; `Retry-After` says when to come back.
    QueueFull,
    /// 503: the server is in lockdown.
    Lockdown,
    /// 503: the language's runtime is missing on this host.
    RuntimeUnavailable,
    /// 502: the upstream of a fetch failed.
    UpstreamFailed,
    /// 500: Warden itself failed; the detail is in the log.
    Internal,
}

impl Kind {
    /// The slug after [`TYPE_PREFIX`].
    pub fn slug(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad-request",
            Kind::InvalidBody => "invalid-body",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "insufficient-scope",
            Kind::EgressDenied => "egress-denied",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::Timeout => "request-timeout",
            Kind::PayloadTooLarge => "payload-too-large",
            Kind::RateLimited => "rate-limited",
            Kind::QueueFull => "queue-full",
            Kind::Lockdown => "lockdown",
            Kind::RuntimeUnavailable => "runtime-unavailable",
            Kind::UpstreamFailed => "upstream-failed",
            Kind::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::InvalidBody => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden | Kind::EgressDenied => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::QueueFull | Kind::Lockdown | Kind::RuntimeUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Kind::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Bad request",
            Kind::InvalidBody => "Invalid request body",
            Kind::Unauthorized => "Unauthorized",
            Kind::Forbidden => "Insufficient scope",
            Kind::EgressDenied => "Destination denied by the egress policy",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::Timeout => "Request timeout",
            Kind::PayloadTooLarge => "Request body too large",
            Kind::RateLimited => "Too many requests",
            Kind::QueueFull => "Execution queue full",
            Kind::Lockdown => "Server in lockdown",
            Kind::RuntimeUnavailable => "Language runtime unavailable",
            Kind::UpstreamFailed => "Upstream request failed",
            Kind::Internal => "Internal server error",
        }
    }

    /// The kind answering with `status`, for responses produced outside the handlers.
    fn for_status(status: StatusCode) -> Kind {
        match status {
            StatusCode::NOT_FOUND => Kind::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Kind::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Kind::Timeout,
            StatusCode::PAYLOAD_TOO_LARGE => Kind::PayloadTooLarge,
            StatusCode::UNPROCESSABLE_ENTITY => Kind::InvalidBody,
            StatusCode::UNAUTHORIZED => Kind::Unauthorized,
            StatusCode::TOO_MANY_REQUESTS => Kind::RateLimited,
            s if s.is_client_error() => Kind::BadRequest,
            _ => Kind::Internal,
        }
    }
}

/// An RFC 9457 problem document and the headers that go with it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:warden:problem:<kind>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short human summary of the kind.
    pub title: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence (generic for 401 and 5xx).
    pub detail: String,
    /// Extension members (for example the egress `rule`).
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Seconds for `Retry-After` (429, 503).
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
    /// The kind.
    #[serde(skip)]
    pub kind: Option<Kind>,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: format!("{TYPE_PREFIX}{}", kind.slug()),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
            retry_after_s: None,
            kind: Some(kind),
        }
    }

    /// The generic 500: the cause is logged here, not returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Problem::new(
            Kind::Internal,
            "the server failed to handle this request; the cause is in its log",
        )
    }

    /// The generic 401.
    pub fn unauthorized() -> Self {
        Problem::new(
            Kind::Unauthorized,
            "missing or invalid credentials; send `Authorization: Bearer <API key or JWT>`",
        )
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_string(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_s {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.kind == Some(Kind::Unauthorized) {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Longest plain-text client-error body [`problemify`] keeps as the problem's `detail`, in
/// bytes.
const PLAIN_DETAIL_MAX: usize = 1024;

/// Middleware: an error response that is not already a problem (axum's 404/405, tower-http's
/// 408 and 413, rmcp's plain-text refusals on `/mcp`) becomes one, keeping its status and
/// headers; a short plain-text client-error body becomes its `detail`.
pub async fn problemify(request: Request<Body>, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Only bodies without a type or plain text (axum's and tower-http's own); problems and
    // JSON reports such as a 503 from /readyz stay as they are.
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let kind = Kind::for_status(status);
    let (mut parts, body) = response.into_parts();
    // A client error's own text (rmcp's on /mcp: "expected JSON-RPC", a missing Accept, an
    // unknown protocol version) says what to fix; keep it when it is short. Server errors'
    // texts stay out of responses.
    let own_text = if status.is_client_error() {
        axum::body::to_bytes(body, PLAIN_DETAIL_MAX)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let detail = match kind {
        Kind::NotFound => "no such route".to_string(),
        Kind::MethodNotAllowed => "this route does not accept that method".to_string(),
        Kind::Timeout => "the request took longer than the server's request timeout".to_string(),
        Kind::PayloadTooLarge => {
            "the request body is larger than the server accepts (server.max_body_bytes)".to_string()
        }
        _ => own_text.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        }),
    };
    let mut problem = Problem::new(kind, detail);
    problem.status = status.as_u16();
    let fresh = problem.into_response();
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, fresh.into_body())
}
