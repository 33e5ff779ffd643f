//! Prometheus metrics (prometheus-client), served as text at `/metrics`.
//!
//! Names are the shared contract with the deployment manifests and alert rules; counters get
//! their `_total` suffix from the encoder.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `warden_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/v1/executions/{id}`), or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// A single `route` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route template.
    pub route: String,
}

/// A single `method` label (`api_key`, `jwt`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// Credential type.
    pub method: &'static str,
}

/// A single `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Failure reason.
    pub reason: &'static str,
}

/// A single `limiter` label (`principal`, `client`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimiterLabel {
    /// Which limiter.
    pub limiter: &'static str,
}

/// Labels of `warden_executions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecutionLabels {
    /// Language profile.
    pub language: String,
    /// `ok`, `nonzero_exit`, `timeout`, `oom`, `signal`, `error`.
    pub outcome: &'static str,
}

/// A single `language` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LanguageLabel {
    /// Language profile.
    pub language: String,
}

/// A single `syscall` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyscallLabel {
    /// Syscall name.
    pub syscall: String,
}

/// Labels of `warden_egress_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EgressLabels {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The deciding rule (`address`, `port`, `scheme`, …; `allowed` for allows).
    pub rule: String,
}

/// A single `action` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// Audit action.
    pub action: String,
}

type GaugeI64 = Gauge<i64, AtomicI64>;

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `warden_http_requests_total{route,method,status}`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `warden_http_request_duration_seconds{route}`.
    pub http_duration: Family<RouteLabel, Histogram>,
    /// `warden_auth_attempts_total{method}`.
    pub auth_attempts: Family<MethodLabel, Counter>,
    /// `warden_auth_failures_total{reason}`.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// `warden_rate_limit_hits_total{limiter}`.
    pub rate_limit_hits: Family<LimiterLabel, Counter>,
    /// `warden_queue_rejections_total`.
    pub queue_rejections: Counter,
    /// `warden_executions_total{language,outcome}`.
    pub executions: Family<ExecutionLabels, Counter>,
    /// `warden_execution_duration_seconds{language}`.
    pub execution_duration: Family<LanguageLabel, Histogram>,
    /// `warden_seccomp_violations_total{syscall}`.
    pub seccomp_violations: Family<SyscallLabel, Counter>,
    /// `warden_egress_decisions_total{decision,rule}`.
    pub egress_decisions: Family<EgressLabels, Counter>,
    /// `warden_sandboxes_running`.
    pub sandboxes_running: GaugeI64,
    /// `warden_lockdown_enabled` (0/1).
    pub lockdown_enabled: GaugeI64,
    /// `warden_ready` (1 when `/readyz` would answer 200).
    pub ready: GaugeI64,
    /// `warden_audit_events_total{action}`.
    pub audit_events: Family<ActionLabel, Counter>,
}

fn http_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn execution_histogram() -> Histogram {
    // 5 ms … ~160 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram),
            auth_attempts: Family::default(),
            auth_failures: Family::default(),
            rate_limit_hits: Family::default(),
            queue_rejections: Counter::default(),
            executions: Family::default(),
            execution_duration: Family::new_with_constructor(execution_histogram),
            seccomp_violations: Family::default(),
            egress_decisions: Family::default(),
            sandboxes_running: GaugeI64::default(),
            lockdown_enabled: GaugeI64::default(),
            ready: GaugeI64::default(),
            audit_events: Family::default(),
        };
        registry.register(
            "warden_http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "warden_http_request_duration_seconds",
            "HTTP request duration in seconds by route",
            m.http_duration.clone(),
        );
        registry.register(
            "warden_auth_attempts",
            "Authentication attempts by credential type",
            m.auth_attempts.clone(),
        );
        registry.register(
            "warden_auth_failures",
            "Authentication and authorisation failures by reason",
            m.auth_failures.clone(),
        );
        registry.register(
            "warden_rate_limit_hits",
            "Requests refused by a rate limiter",
            m.rate_limit_hits.clone(),
        );
        registry.register(
            "warden_queue_rejections",
            "Executions refused because the queue was full",
            m.queue_rejections.clone(),
        );
        registry.register(
            "warden_executions",
            "Executions by language and outcome",
            m.executions.clone(),
        );
        registry.register(
            "warden_execution_duration_seconds",
            "Execution wall time in seconds by language",
            m.execution_duration.clone(),
        );
        registry.register(
            "warden_seccomp_violations",
            "Syscalls denied by the seccomp policy",
            m.seccomp_violations.clone(),
        );
        registry.register(
            "warden_egress_decisions",
            "Egress policy decisions by decision and rule",
            m.egress_decisions.clone(),
        );
        registry.register(
            "warden_sandboxes_running",
            "Sandboxes running now",
            m.sandboxes_running.clone(),
        );
        registry.register(
            "warden_lockdown_enabled",
            "1 while the server is in lockdown",
            m.lockdown_enabled.clone(),
        );
        registry.register(
            "warden_ready",
            "1 when /readyz answers 200",
            m.ready.clone(),
        );
        registry.register(
            "warden_audit_events",
            "Audit events recorded by action",
            m.audit_events.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts an authentication failure.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn contract_names_are_exported() {
        let m = Metrics::new();
        m.auth_failure("expired");
        m.queue_rejections.inc();
        m.executions
            .get_or_create(&ExecutionLabels {
                language: "python".into(),
                outcome: "ok",
            })
            .inc();
        m.http_duration
            .get_or_create(&RouteLabel {
                route: "/healthz".into(),
            })
            .observe(0.001);
        let text = m.encode();
        for name in [
            "warden_auth_failures_total{reason=\"expired\"} 1",
            "warden_queue_rejections_total 1",
            "warden_executions_total{language=\"python\",outcome=\"ok\"} 1",
            "warden_http_request_duration_seconds_bucket",
            "warden_sandboxes_running 0",
            "warden_lockdown_enabled 0",
            "warden_ready 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
