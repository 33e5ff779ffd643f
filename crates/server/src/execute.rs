//! The execution path: a request becomes a sandbox [`Spec`], runs under the queue, and comes
//! back as an Outcome.
//!
//! # Design
//!
//! [`build_spec`] turns a validated request and a language profile into a [`Spec`], capping
//! limits at the server's maxima. [`network_plan`] is the one place that decides how the
//! sandbox's network is set up from the requested mode. [`run`] runs the spec on a blocking
//! thread with a cancel flag that is set on lockdown, on shutdown, and when the request is
//! dropped (client gone, request timeout, MCP cancellation). Each admitted execution runs in a
//! task tracked by [`Running`], so that shutdown waits until it is recorded.
//!
//! # Limitations
//!
//! With `network.mode = "proxy"` the egress proxy's requests are judged by the server's
//! `[egress]` policy narrowed to the requested domains; names resolve through the system's
//! DNS (there is no per-server resolve override yet).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rmcp::schemars;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warden_egress::UrlPolicy;
use warden_sandbox::{CancelFlag, InputFile, Layer, Outcome, RunIo, Sandbox, Spec, Stdin};

use crate::config::{Config, LanguageConfig};
use crate::problem::{Kind, Problem};

/// Default wall-clock limit when a request gives none, in seconds (capped by the maximum).
pub const DEFAULT_TIMEOUT_S: f64 = 30.0;

/// How long shutdown waits, after cancelling the running executions, for their sandboxes to be
/// torn down and their records written, in seconds (a cancelled sandbox is normally gone in
/// well under one).
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// Default memory limit when a request gives none, in MiB (capped by the maximum).
pub const DEFAULT_MEMORY_MB: u64 = 512;

/// `POST /v1/executions` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionRequest {
    /// Language profile name (`python`, `bash`, `sh`, `node`, or as configured).
    pub language: String,
    /// Source code, written to the profile's file in `/work`.
    pub code: String,
    /// Standard input (UTF-8 text); none means end-of-file at once.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Extra files copied into `/work`.
    #[serde(default)]
    pub files: Vec<FileInput>,
    /// Wall-clock limit in seconds (default 30, capped at `sandbox.max_timeout_s`).
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// Memory limit in MiB (default 512, capped at `sandbox.max_memory_mb`).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Network access (default: none).
    #[serde(default)]
    pub network: Option<NetworkRequest>,
}

/// A file to put in `/work`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Path relative to `/work` (no `..`).
    pub path: String,
    /// Contents, standard base64.
    pub content_base64: String,
}

/// Requested network access.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// `none` (no network at all) or `proxy` (HTTP(S) through the egress policy).
    pub mode: NetworkMode,
    /// With `proxy`: domains this execution may reach (within the server's egress policy).
    #[serde(default)]
    pub allow_domains: Vec<String>,
}

/// Network modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Only loopback inside the sandbox.
    None,
    /// HTTP(S) through the egress proxy.
    Proxy,
}

/// How the sandbox's network will be set up.
#[derive(Debug, Clone)]
pub enum NetworkPlan {
    /// A network namespace with only `lo` (the sandbox's default).
    Isolated,
    /// The same namespace plus the egress proxy on `127.0.0.1:3128` inside it
    /// ([`warden_egress::SANDBOX_PROXY_PORT`]), judging every request by this policy: the
    /// server's `[egress]` policy with its domain allow list narrowed to the requested domains.
    Proxy(Box<UrlPolicy>),
}

/// Decides the network setup for `request` under the server's egress policy `server`, whose
/// configured domain allow list is `server_allow` (empty: any public domain).
///
/// A proxy request must name at least one domain (nothing is reachable by default, as with
/// `warden run --network proxy`); when the server has an allow list, each requested name must
/// be allowed by it and each requested wildcard must appear in it verbatim.
///
/// # Errors
///
/// 400 naming `network.allow_domains` for an empty list, a pattern that does not parse, or a
/// domain outside the server's policy.
pub fn network_plan(
    server: &UrlPolicy,
    server_allow: &[String],
    request: Option<&NetworkRequest>,
) -> Result<NetworkPlan, Problem> {
    let bad = |detail: String| {
        Problem::new(Kind::BadRequest, detail).with("field", "network.allow_domains")
    };
    match request.map_or(NetworkMode::None, |n| n.mode) {
        NetworkMode::None => {
            if request.is_some_and(|n| !n.allow_domains.is_empty()) {
                return Err(bad(
                    "network.allow_domains needs network.mode = \"proxy\"".into()
                ));
            }
            Ok(NetworkPlan::Isolated)
        }
        NetworkMode::Proxy => {
            let wanted = request
                .map(|n| n.allow_domains.as_slice())
                .unwrap_or_default();
            if wanted.is_empty() {
                return Err(bad("network.mode \"proxy\" needs at least one domain in network.allow_domains (for example [\"pypi.org\"]): nothing is reachable by default".into()));
            }
            for domain in wanted {
                let within = if let Some(suffix) = domain.strip_prefix("*.") {
                    server_allow.is_empty() && !suffix.is_empty()
                        || server_allow.iter().any(|s| s.eq_ignore_ascii_case(domain))
                } else {
                    match server.check_url(&format!("http://{domain}/")) {
                        Ok(_) => true,
                        // The port rule is about the probe URL, not the domain.
                        Err(warden_egress::Denial::Port { .. }) => true,
                        Err(_) => false,
                    }
                };
                if !within {
                    return Err(bad(format!(
                        "`{domain}` is outside this server's egress policy ([egress] allow_domains / deny_domains)"
                    )));
                }
            }
            let policy = server
                .clone()
                .with_allow_domains(wanted)
                .map_err(|e| bad(e.to_string()))?;
            Ok(NetworkPlan::Proxy(Box::new(policy)))
        }
    }
}

/// A language profile and where its runtime was found on the host.
#[derive(Debug, Clone)]
pub struct Language {
    /// The profile.
    pub profile: LanguageConfig,
    /// The runtime's path, when found.
    pub runtime: Option<PathBuf>,
}

/// The directories the sandbox searches for a program name (its `PATH`).
pub const SANDBOX_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// Finds `program` as the sandbox will: a path as given, or a name in [`SANDBOX_PATH`]; the
/// runtime must be an executable file.
pub fn find_runtime(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    SANDBOX_PATH
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| executable(p))
}

/// The configured languages with their runtimes looked up.
pub fn languages(config: &Config) -> BTreeMap<String, Language> {
    config
        .language_profiles()
        .into_iter()
        .map(|(name, profile)| {
            let runtime = find_runtime(&profile.program);
            (name, Language { profile, runtime })
        })
        .collect()
}

/// Limits actually applied to an execution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema, schemars::JsonSchema)]
pub struct AppliedLimits {
    /// Seconds.
    pub timeout_s: f64,
    /// MiB.
    pub memory_mb: u64,
}

fn bad_field(field: &str, problem: impl std::fmt::Display) -> Problem {
    Problem::new(Kind::InvalidBody, format!("{field}: {problem}")).with("field", field)
}

/// Builds the sandbox spec for `request` in `language`.
///
/// # Errors
///
/// 422 naming the field for bad values (base64, paths, limits).
pub fn build_spec(
    config: &Config,
    allow_missing: &[Layer],
    language: &Language,
    request: &ExecutionRequest,
    network: &NetworkPlan,
) -> Result<(Spec, AppliedLimits), Problem> {
    let sb = &config.sandbox;
    let timeout_s = request.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if !timeout_s.is_finite() || timeout_s <= 0.0 {
        return Err(bad_field(
            "timeout_s",
            "must be a number of seconds greater than 0",
        ));
    }
    let timeout_s = timeout_s.min(sb.max_timeout_s as f64);
    let memory_mb = request.memory_mb.unwrap_or(DEFAULT_MEMORY_MB);
    if memory_mb < 4 {
        return Err(bad_field("memory_mb", "must be at least 4 (MiB)"));
    }
    let memory_mb = memory_mb.min(sb.max_memory_mb);

    let profile = &language.profile;
    let code_path = format!("{}/{}", warden_sandbox::WORKDIR, profile.file);
    let mut files = vec![InputFile {
        path: profile.file.clone(),
        contents: request.code.clone().into_bytes(),
        mode: 0o644,
    }];
    for (i, file) in request.files.iter().enumerate() {
        let field = format!("files[{i}]");
        let contents = base64::engine::general_purpose::STANDARD
            .decode(file.content_base64.trim())
            .map_err(|e| {
                bad_field(
                    &format!("{field}.content_base64"),
                    format!("not base64: {e}"),
                )
            })?;
        let path = file.path.trim_start_matches("./");
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(bad_field(
                &format!("{field}.path"),
                "must be a relative path under /work without `..` or empty components",
            ));
        }
        if path == profile.file {
            return Err(bad_field(
                &format!("{field}.path"),
                format!("`{path}` is where the code goes; pick another name"),
            ));
        }
        files.push(InputFile {
            path: path.to_string(),
            contents,
            mode: 0o644,
        });
    }
    let program = language
        .runtime
        .as_ref()
        .map_or_else(|| profile.program.clone(), |p| p.display().to_string());
    let mut args = profile.args.clone();
    args.push(code_path);
    let mut spec = Spec::new(program, args);
    spec.files = files;
    spec.stdin = match &request.stdin {
        Some(text) => Stdin::Bytes(text.clone().into_bytes()),
        None => Stdin::Null,
    };
    spec.limits.timeout = Duration::from_secs_f64(timeout_s);
    spec.limits.memory_bytes = memory_mb << 20;
    spec.limits.output_bytes = sb.max_output_bytes;
    spec.allow_missing = allow_missing.iter().copied().collect();
    if let NetworkPlan::Proxy(_) = network {
        spec.loopback_listener = Some(warden_egress::SANDBOX_PROXY_PORT);
        spec.env
            .extend(warden_egress::proxy_env(warden_egress::SANDBOX_PROXY_PORT));
    }
    Ok((
        spec,
        AppliedLimits {
            timeout_s,
            memory_mb,
        },
    ))
}

/// The `outcome` label: `ok`, `nonzero_exit`, `timeout`, `oom`, `signal` or `error`.
pub fn outcome_class(outcome: &Outcome) -> &'static str {
    if outcome.exec_error.is_some() {
        "error"
    } else if outcome.timed_out {
        "timeout"
    } else if outcome.oom_killed {
        "oom"
    } else if outcome.signal.is_some() {
        "signal"
    } else if outcome.exit_code == Some(0) {
        "ok"
    } else {
        "nonzero_exit"
    }
}

/// Running executions: their cancel flags, by id (for lockdown and shutdown), and the tasks
/// that run and record them (so that shutdown can wait until each is recorded).
#[derive(Debug, Default)]
pub struct Running {
    flags: Mutex<HashMap<String, CancelFlag>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Running {
    /// Spawns `task`, an admitted execution that runs its sandbox and records the result, on
    /// the current runtime; [`Running::stop_all`] waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Shutdown: cancels every running execution, then waits up to `within` for the tasks of
    /// all of them to finish (their sandboxes torn down, their records and audit events
    /// written). Executions admitted later are still tracked; call this once the server takes
    /// no more requests. Returns how many were cancelled, and whether all tasks finished in
    /// time.
    pub async fn stop_all(&self, within: Duration) -> (usize, bool) {
        let cancelled = self.cancel_all();
        self.tasks.close();
        let finished = tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok();
        (cancelled, finished)
    }

    /// Registers execution `id`; the guard cancels it when dropped early and unregisters it.
    pub fn register(self: &Arc<Self>, id: &str) -> RunGuard {
        let flag: CancelFlag = Arc::new(AtomicBool::new(false));
        if let Ok(mut map) = self.flags.lock() {
            map.insert(id.to_string(), Arc::clone(&flag));
        }
        RunGuard {
            running: Arc::clone(self),
            id: id.to_string(),
            flag,
        }
    }

    /// Sets every running execution's cancel flag; returns how many.
    pub fn cancel_all(&self) -> usize {
        self.flags.lock().map_or(0, |map| {
            for flag in map.values() {
                flag.store(true, Ordering::SeqCst);
            }
            map.len()
        })
    }

    /// Executions running now.
    pub fn count(&self) -> usize {
        self.flags.lock().map_or(0, |m| m.len())
    }
}

/// Sets a cancel flag when dropped: held by a request whose execution runs in a task of its
/// own, so that the request going away (a client that disconnects, an MCP cancellation)
/// stops the sandbox.
#[derive(Debug)]
pub struct CancelOnDrop(CancelFlag);

impl CancelOnDrop {
    /// Guards `flag`.
    pub fn new(flag: CancelFlag) -> Self {
        CancelOnDrop(flag)
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A registered execution; dropping it unregisters it and sets its cancel flag (so a dropped
/// request does not leave its sandbox running).
#[derive(Debug)]
pub struct RunGuard {
    running: Arc<Running>,
    id: String,
    flag: CancelFlag,
}

impl RunGuard {
    /// The cancel flag to hand to the sandbox.
    pub fn flag(&self) -> CancelFlag {
        Arc::clone(&self.flag)
    }

    /// Whether the execution was cancelled.
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(mut map) = self.running.flags.lock() {
            map.remove(&self.id);
        }
    }
}

/// What one run produced: the sandbox's result and, with [`NetworkPlan::Proxy`], what its
/// egress proxy saw.
pub type RunResult = (
    Result<Outcome, warden_sandbox::Error>,
    Option<warden_egress::SessionReport>,
);

/// Runs `spec` in `sandbox` on a blocking thread with `cancel`; with [`NetworkPlan::Proxy`]
/// the egress proxy serves the sandbox's listener on the current runtime, resolving names
/// with `resolver`, and is stopped (2 s grace) when the sandbox ends.
///
/// # Errors
///
/// A join error as text (the sandbox's own errors are inside [`RunResult`]).
pub async fn run(
    sandbox: Sandbox,
    spec: Spec,
    cancel: CancelFlag,
    network: &NetworkPlan,
    resolver: &warden_egress::Resolver,
) -> Result<RunResult, String> {
    let session = match network {
        NetworkPlan::Isolated => None,
        NetworkPlan::Proxy(policy) => Some(warden_egress::ProxySession::new(
            tokio::runtime::Handle::current(),
            std::sync::Arc::new(warden_egress::ProxyConfig::new(
                (**policy).clone(),
                resolver.clone(),
            )),
        )),
    };
    tokio::task::spawn_blocking(move || {
        let on_listener = session
            .as_ref()
            .map(|s| Box::new(s.listener_handler()) as warden_sandbox::ListenerHandler);
        let result = sandbox.run_with(
            &spec,
            RunIo {
                cancel: Some(cancel),
                on_listener,
                ..RunIo::default()
            },
        );
        // Blocks on the runtime from this blocking-pool thread, which is allowed.
        let report = session.map(|s| s.finish(Duration::from_secs(2)));
        (result, report)
    })
    .await
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(json: serde_json::Value) -> ExecutionRequest {
        serde_json::from_value(json).unwrap()
    }

    fn python() -> Language {
        Language {
            profile: LanguageConfig {
                program: "python3".into(),
                args: vec!["-u".into()],
                file: "main.py".into(),
            },
            runtime: Some("/usr/bin/python3".into()),
        }
    }

    #[test]
    fn limits_are_capped_at_the_server_maxima() {
        let config = Config::default();
        let (spec, applied) = build_spec(
            &config,
            &[],
            &python(),
            &request(serde_json::json!({"language": "python", "code": "print(1)", "timeout_s": 9999, "memory_mb": 999999})),
            &NetworkPlan::Isolated,
        )
        .unwrap();
        assert_eq!(applied.timeout_s, 60.0);
        assert_eq!(applied.memory_mb, 1024);
        assert_eq!(spec.limits.memory_bytes, 1024 << 20);
        assert_eq!(spec.program, "/usr/bin/python3");
        assert_eq!(spec.args, ["-u", "/work/main.py"]);
        assert_eq!(spec.files[0].contents, b"print(1)");
    }

    #[test]
    fn bad_fields_are_named() {
        let config = Config::default();
        let err = |json| {
            build_spec(
                &config,
                &[],
                &python(),
                &request(json),
                &NetworkPlan::Isolated,
            )
            .unwrap_err()
            .detail
        };
        assert!(
            err(serde_json::json!({"language": "python", "code": "", "timeout_s": -1}))
                .starts_with("timeout_s")
        );
        assert!(err(serde_json::json!({"language": "python", "code": "", "files": [{"path": "a", "content_base64": "!!"}]})).starts_with("files[0].content_base64"));
        assert!(err(serde_json::json!({"language": "python", "code": "", "files": [{"path": "../etc/x", "content_base64": ""}]})).starts_with("files[0].path"));
        assert!(err(serde_json::json!({"language": "python", "code": "", "files": [{"path": "main.py", "content_base64": ""}]})).contains("where the code goes"));
    }

    fn network(json: serde_json::Value) -> NetworkRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn proxy_mode_needs_domains_within_the_server_policy() {
        let open = UrlPolicy::default();
        assert!(matches!(
            network_plan(&open, &[], None).unwrap(),
            NetworkPlan::Isolated
        ));
        // No domains: refused, nothing is reachable by default.
        let empty = network(serde_json::json!({"mode": "proxy"}));
        let err = network_plan(&open, &[], Some(&empty)).unwrap_err();
        assert_eq!(err.kind, Some(Kind::BadRequest));
        assert!(err.detail.contains("at least one domain"), "{}", err.detail);
        // Domains without proxy mode: refused.
        let none = network(serde_json::json!({"mode": "none", "allow_domains": ["a.com"]}));
        assert!(network_plan(&open, &[], Some(&none)).is_err());
        // An open server policy narrows to the requested domains.
        let wanted = network(
            serde_json::json!({"mode": "proxy", "allow_domains": ["pypi.org", "*.pythonhosted.org"]}),
        );
        let NetworkPlan::Proxy(policy) = network_plan(&open, &[], Some(&wanted)).unwrap() else {
            panic!("expected the proxy plan");
        };
        assert!(policy.check_url("https://pypi.org/simple/").is_ok());
        assert!(policy.check_url("https://files.pythonhosted.org/x").is_ok());
        assert!(matches!(
            policy.check_url("https://example.com/"),
            Err(warden_egress::Denial::DomainNotAllowed { .. })
        ));
        // A server allow list bounds what a request may ask for.
        let server_allow = vec!["pypi.org".to_string(), "*.pythonhosted.org".to_string()];
        let server = UrlPolicy::default()
            .with_allow_domains(&server_allow)
            .unwrap()
            .with_deny_domains(&["evil.pypi.org"])
            .unwrap();
        assert!(network_plan(&server, &server_allow, Some(&wanted)).is_ok());
        for outside in ["example.com", "*.org", "localhost", "evil.pypi.org"] {
            let req = network(serde_json::json!({"mode": "proxy", "allow_domains": [outside]}));
            let err = network_plan(&server, &server_allow, Some(&req)).unwrap_err();
            assert!(err.detail.contains("outside"), "{outside}: {}", err.detail);
        }
    }

    #[test]
    fn outcomes_are_classified() {
        let base = Outcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            oom_killed: false,
            wall_time_ms: 1.0,
            cpu_time_ms: 1.0,
            peak_memory_bytes: 0,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 0,
            stderr_bytes: 0,
            seccomp_violations: vec![],
            exec_error: None,
            missing_layers: vec![],
            cgroup: None,
            landlock_abi: None,
        };
        assert_eq!(outcome_class(&base), "ok");
        assert_eq!(
            outcome_class(&Outcome {
                exit_code: Some(3),
                ..base.clone()
            }),
            "nonzero_exit"
        );
        assert_eq!(
            outcome_class(&Outcome {
                exit_code: None,
                signal: Some(9),
                timed_out: true,
                ..base.clone()
            }),
            "timeout"
        );
        assert_eq!(
            outcome_class(&Outcome {
                exit_code: None,
                signal: Some(9),
                oom_killed: true,
                ..base.clone()
            }),
            "oom"
        );
        assert_eq!(
            outcome_class(&Outcome {
                exit_code: None,
                signal: Some(11),
                ..base.clone()
            }),
            "signal"
        );
        assert_eq!(
            outcome_class(&Outcome {
                exec_error: Some("not found".into()),
                ..base
            }),
            "error"
        );
    }

    #[test]
    fn runtimes_are_found_like_the_sandbox_finds_them() {
        let sh = find_runtime("sh").unwrap();
        assert!(
            SANDBOX_PATH.iter().any(|d| sh == Path::new(d).join("sh")),
            "{sh:?}"
        );
        assert_eq!(find_runtime("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_runtime("no-such-runtime-here").is_none());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(
            find_runtime(plain.to_str().unwrap()).is_none(),
            "not executable"
        );
    }
}
