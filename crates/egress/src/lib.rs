//! Decide whether a network destination may be reached, before any connection is made.
//!
//! ```
//! use warden_egress::{AddressPolicy, UrlPolicy};
//!
//! let policy = UrlPolicy::default();
//! let target = policy.check_url("http://169.254.169.254/latest/meta-data/").unwrap_err();
//! assert!(target.to_string().contains("link-local"));
//! # let _ = AddressPolicy::default();
//! ```
//!
//! # Design
//!
//! Two pure decisions, each with table tests: [`AddressPolicy`] judges an IP address against
//! the IANA special-purpose registries (plus operator allow/deny CIDRs), unwrapping IPv4
//! addresses embedded in IPv6; [`UrlPolicy`] parses with the WHATWG URL parser (the `url`
//! crate) and judges the parsed host, scheme, port and userinfo, never the string.
//! [`Resolver`] answers names (overrides, a caller's hook, or DNS through hickory-resolver with
//! a timeout); every address of the answer is judged, and only judged addresses may be
//! connected to (pinning), so DNS rebinding between check and connect cannot happen.
//!
//! Two users of the policy reach destinations: [`fetch()`] makes one request (blocking, each
//! redirect judged), and [`proxy::serve`] is an HTTP forward proxy (`CONNECT` tunnels and
//! absolute-form requests, async) for programs that speak `HTTP_PROXY`.
//!
//! # Limitations
//!
//! [`fetch()`] makes one request through the policy; [`proxy::serve`] is the same policy as
//! a forward proxy, and [`session::ProxySession`] serves it on one sandbox's loopback
//! listener (`warden run --network proxy`).
//! See each module for its own limits.

#![forbid(unsafe_code)]

pub mod address;
pub mod fetch;
pub mod proxy;
pub mod session;
pub mod url_policy;

pub use address::{AddressDecision, AddressPolicy, SpecialRange};
pub use fetch::{fetch, FetchError, FetchRequest, FetchResponse, Hop};
pub use proxy::{serve, ConnectionLog, Decision, LogSink, ProxyConfig};
pub use session::{proxy_env, ProxySession, SessionReport, SANDBOX_PROXY_PORT};
pub use url_policy::{
    redact_url, BadOverride, BadPattern, CustomResolve, Denial, Resolver, Target, UrlPolicy,
    BLOCKED_NAMES,
};
