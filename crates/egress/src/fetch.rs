//! `fetch`: one HTTP(S) request through the egress policy.
//!
//! # Design
//!
//! Every hop is judged by [`UrlPolicy::check`] first; the HTTP client (reqwest) then connects
//! only to the addresses that were judged (`resolve_to_addrs` pins the name, so a DNS answer
//! that changes between check and connect is never used). Any other name the client might look
//! up fails: its resolver is [`Unpinned`], never the system's. Redirects are followed by Warden,
//! not the client: each `Location` is a new URL judged again, at most [`FetchRequest`]'s
//! `max_redirects` hops, and `Authorization`, `Cookie` and `Proxy-Authorization` are dropped
//! when the origin changes (as browsers and curl do). Environment proxies are ignored. The body
//! is read through the client's decompression and capped at `max_bytes` *after*
//! decompression; connect and total timeouts bound the whole exchange.
//!
//! # Limitations
//!
//! HTTP/1.1 and HTTP/2 over TCP only. The total timeout covers all hops together.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::redirect::Policy as RedirectPolicy;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use url::Url;

use crate::url_policy::{redact_url, Denial, Resolver, UrlPolicy};

/// One request to make.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The URL.
    pub url: String,
    /// HTTP method (`GET` by default).
    pub method: Method,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<Vec<u8>>,
    /// Bytes of (decompressed) body kept; the response is cut there and marked truncated.
    pub max_bytes: u64,
    /// Time allowed to establish each connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole fetch, all redirects included.
    pub timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

impl FetchRequest {
    /// A GET of `url` with the defaults: 10 MiB, 10 s connect, 30 s total, 5 redirects.
    pub fn get(url: impl Into<String>) -> Self {
        FetchRequest {
            url: url.into(),
            method: Method::GET,
            headers: Vec::new(),
            body: None,
            max_bytes: 10 << 20,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

/// One redirect followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The URL requested.
    pub url: String,
    /// The redirect status it answered with.
    pub status: u16,
    /// The address connected to.
    pub address: Option<SocketAddr>,
}

/// What came back.
#[derive(Debug, Clone, Serialize)]
pub struct FetchResponse {
    /// HTTP status of the final response.
    pub status: u16,
    /// Response headers (values that are not UTF-8 are replaced lossily).
    pub headers: Vec<(String, String)>,
    /// The body, at most `max_bytes`.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// The body was longer than `max_bytes`.
    pub truncated: bool,
    /// The URL of the final response.
    pub final_url: String,
    /// The address the final response came from.
    pub connected_address: Option<SocketAddr>,
    /// Redirects followed, in order.
    pub redirects: Vec<Hop>,
}

/// Why a fetch did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The egress policy denies this hop.
    #[error("denied: {denial}")]
    Denied {
        /// The URL denied (the original or a redirect target).
        url: String,
        /// Which rule.
        denial: Denial,
    },
    /// A request header is not valid HTTP.
    #[error("invalid header `{0}`: expected NAME:VALUE with a valid header name")]
    BadHeader(String),
    /// More redirects than allowed.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect's `Location` is not a URL.
    #[error("redirect to an invalid location `{0}`")]
    BadRedirect(String),
    /// The whole fetch took longer than its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The HTTP exchange failed (connect, TLS, protocol, read).
    #[error("request to {url} failed")]
    Http {
        /// The URL of the failing hop.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Reading the body failed.
    #[error("reading the body of {url} failed")]
    Body {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// The message and its causes (`message: cause: cause`), with every URL in it passed
    /// through [`redact_url`]: what an audit trail or a log may keep.
    pub fn redacted_message(&self) -> String {
        // The variant's own message, with the URL it quotes (if any) replaced: `Denied` names
        // only the rule and host, not its URL.
        let quoted = match self {
            FetchError::BadRedirect(url)
            | FetchError::Http { url, .. }
            | FetchError::Body { url, .. } => Some(url).filter(|u| !u.is_empty()),
            _ => None,
        };
        let mut text = self.to_string();
        if let Some(url) = quoted {
            text = text.replace(url.as_str(), &redact_url(url));
        }
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = || FetchError::BadHeader(format!("{name}:{value}"));
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        map.append(name, value);
    }
    Ok(map)
}

/// The HTTP client's resolver for every name that is not pinned: refuses it. reqwest asks its
/// pins (`resolve_to_addrs`) first; without this it would fall back to getaddrinfo, and a name
/// spelt differently from the pinned one would be resolved again, unchecked.
struct Unpinned;

impl reqwest::dns::Resolve for Unpinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!(
            "`{}` was not judged by the egress policy, so it is not resolved",
            name.as_str()
        );
        Box::pin(async move { Err(message.into()) })
    }
}

/// Performs `request` under `policy`, resolving names with `resolver`.
///
/// # Errors
///
/// [`FetchError::Denied`] when a hop is denied (nothing was sent to it), or the failure.
pub fn fetch(
    policy: &UrlPolicy,
    resolver: &Resolver,
    request: &FetchRequest,
) -> Result<FetchResponse, FetchError> {
    let deadline = Instant::now() + request.timeout;
    let mut url = request.url.clone();
    let mut method = request.method.clone();
    let mut body = request.body.clone();
    let mut headers = header_map(&request.headers)?;
    let mut redirects = Vec::new();
    loop {
        let target = policy
            .check(&url, resolver)
            .map_err(|denial| FetchError::Denied {
                url: url.clone(),
                denial,
            })?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FetchError::Timeout(request.timeout));
        }
        let pinned: Vec<SocketAddr> = target
            .addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, target.port))
            .collect();
        // The URL is in the variant; reqwest's error would carry it again.
        let http = |source: reqwest::Error| FetchError::Http {
            url: target.url.clone(),
            source: source.without_url(),
        };
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(RedirectPolicy::none())
            .connect_timeout(request.connect_timeout.min(remaining))
            .timeout(remaining)
            .dns_resolver(Arc::new(Unpinned))
            .resolve_to_addrs(&target.host, &pinned)
            .build()
            .map_err(http)?;
        let mut builder = client
            .request(method.clone(), &target.url)
            .headers(headers.clone());
        if let Some(b) = &body {
            builder = builder.body(b.clone());
        }
        let response = builder.send().map_err(http)?;
        let status = response.status();
        let address = response.remote_addr();
        if status.is_redirection() {
            if let Some(location) = response.headers().get(LOCATION) {
                if redirects.len() >= request.max_redirects {
                    return Err(FetchError::TooManyRedirects(request.max_redirects));
                }
                let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                let current = Url::parse(&target.url)
                    .map_err(|_| FetchError::BadRedirect(target.url.clone()))?;
                let next = current
                    .join(&location)
                    .map_err(|_| FetchError::BadRedirect(location.clone()))?;
                if !same_origin(&current, &next) {
                    for secret in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                        headers.remove(secret);
                    }
                }
                // 303, and 301/302 after a POST, continue as a GET without body (RFC 9110 15.4).
                if status == StatusCode::SEE_OTHER
                    || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                        && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                    headers.remove(reqwest::header::CONTENT_TYPE);
                    headers.remove(reqwest::header::CONTENT_LENGTH);
                }
                redirects.push(Hop {
                    url: target.url.clone(),
                    status: status.as_u16(),
                    address,
                });
                url = next.to_string();
                continue;
            }
        }
        let final_url = response.url().to_string();
        let response_headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut kept = Vec::new();
        response
            .take(request.max_bytes.saturating_add(1))
            .read_to_end(&mut kept)
            .map_err(|source| FetchError::Body {
                url: final_url.clone(),
                source,
            })?;
        let truncated = kept.len() as u64 > request.max_bytes;
        kept.truncate(request.max_bytes as usize);
        return Ok(FetchResponse {
            status: status.as_u16(),
            headers: response_headers,
            body: kept,
            truncated,
            final_url,
            connected_address: address,
            redirects,
        });
    }
}
