//! `warden.toml`: the server's configuration, with `WARDEN_<SECTION>__<KEY>` environment
//! overrides, secrets from `*_file` paths, and validation that says what is wrong and how to fix
//! it.
//!
//! # Design
//!
//! [`Config::load`] merges, in order of increasing precedence, the built-in defaults, the TOML
//! file and the environment (figment). Every section rejects unknown keys, so a typo is an
//! error rather than a silently ignored setting. [`Config::validate`] then checks what serde
//! cannot (ranges, CORS origins, the JWT secret length) and reads the secret files; the result
//! is a [`Config`] whose values can be used as they are.
//!
//! # Limitations
//!
//! Environment values are parsed like TOML values (`WARDEN_CORS__ALLOWED_ORIGINS='["https://a"]'`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use warden_sandbox::Layer;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "WARDEN_";

/// Shortest HS256 secret accepted, in bytes (RFC 7518 section 3.2: a key of the same size as
/// the hash output, 256 bits, or larger).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment value does not parse, or names an unknown key. The message
    /// is figment's, whole; it is not also the error's `source`, which printed it twice.
    #[error("configuration: {0}")]
    Parse(Box<figment::Error>),
    /// A value is out of range or inconsistent.
    #[error("configuration: `{key}` {problem}")]
    Invalid {
        /// The key, as `section.key`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A secret file cannot be read.
    #[error("configuration: cannot read `{key}` file {path}")]
    SecretFile {
        /// The key naming the file.
        key: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        ConfigError::Parse(e)
    }
}

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: listening, TLS, data directory, request limits.
    pub server: ServerConfig,
    /// `[auth]`: JWT verification (API keys live in the store).
    pub auth: AuthConfig,
    /// `[cors]`: cross-origin access.
    pub cors: CorsConfig,
    /// `[rate_limit]`: per-principal and per-client request rates.
    pub rate_limit: RateLimitConfig,
    /// `[sandbox]`: concurrency, queue and the maxima requests are capped by.
    pub sandbox: SandboxConfig,
    /// `[languages.NAME]`: language profiles. Empty means the built-in four (python, bash, sh,
    /// node); a non-empty table replaces them.
    pub languages: BTreeMap<String, LanguageConfig>,
    /// `[egress]`: the policy `POST /v1/fetch` uses.
    pub egress: EgressConfig,
    /// `[audit]`: the tamper-evident audit log.
    pub audit: AuditConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    pub listen: String,
    /// Directory of the SQLite store (`warden.db`); must be writable.
    pub data_dir: PathBuf,
    /// The operator states that a TLS-terminating proxy is in front: plain HTTP may then listen
    /// beyond loopback.
    pub behind_tls_proxy: bool,
    /// Reverse proxies (CIDRs, or single addresses) whose `X-Forwarded-For` names the client:
    /// for a request from one of them, the client is the rightmost address in that header that
    /// is not itself a trusted proxy, and rate limits and audit events use it. Empty (the
    /// default): the socket peer is the client and the header is ignored. Behind a TLS proxy,
    /// without this every client shares the proxy's rate limit.
    pub trusted_proxies: Vec<String>,
    /// `Host` header values accepted (with or without port); empty accepts any.
    pub allowed_hosts: Vec<String>,
    /// Seconds a request may take in total (queue wait and execution included).
    pub request_timeout_s: u64,
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Seconds running executions get to finish after SIGTERM before they are killed.
    pub shutdown_grace_s: u64,
    /// `[server.tls]`: serve HTTPS with these files.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("/var/lib/warden"),
            behind_tls_proxy: false,
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            request_timeout_s: 60,
            max_body_bytes: 10 << 20,
            shutdown_grace_s: 30,
            tls: None,
        }
    }
}

/// `[server.tls]`: PEM certificate chain and private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// JWT signature algorithms the server can be pinned to (RFC 7518 section 3.1, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

/// One public key for RS256/ES256/EdDSA, selected by the token's `kid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtPublicKey {
    /// Key id, matched against the token header's `kid`.
    pub kid: String,
    /// PEM file of the public key.
    pub file: PathBuf,
}

/// `[auth]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The only algorithm tokens may use; absent disables JWT authentication.
    pub jwt_algorithm: Option<JwtAlgorithm>,
    /// File holding the HS256 secret (at least 32 bytes; surrounding whitespace is trimmed).
    pub jwt_secret_file: Option<PathBuf>,
    /// The HS256 secret itself, for development (`WARDEN_AUTH__JWT_SECRET` from `.env`);
    /// prefer `jwt_secret_file`. Never logged.
    #[serde(skip_serializing)]
    pub jwt_secret: Option<Hidden>,
    /// Public keys for RS256/ES256/EdDSA.
    pub jwt_public_keys: Vec<JwtPublicKey>,
    /// Required `iss` claim, when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated for `exp` and `nbf`, in seconds.
    pub jwt_leeway_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_algorithm: None,
            jwt_secret_file: None,
            jwt_secret: None,
            jwt_public_keys: Vec::new(),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_s: 30,
        }
    }
}

/// `[cors]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`https://app.example.com`) allowed to call the API from a browser; empty means
    /// none. `*` is refused: the API takes credentials.
    pub allowed_origins: Vec<String>,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per minute one authenticated principal may make.
    pub per_principal_per_minute: u32,
    /// Requests per minute one client address may make (authenticated or not).
    pub per_client_per_minute: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_principal_per_minute: 120,
            per_client_per_minute: 300,
            burst: 20,
        }
    }
}

/// `[sandbox]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Sandboxes running at once.
    pub max_concurrent: usize,
    /// Executions waiting for a free sandbox; beyond it, 503 with `Retry-After`.
    pub queue_depth: usize,
    /// Largest `timeout_s` a request gets, in seconds (larger requests are capped).
    pub max_timeout_s: u64,
    /// Largest `memory_mb` a request gets, in MiB (larger requests are capped).
    pub max_memory_mb: u64,
    /// Bytes of stdout and of stderr kept per execution.
    pub max_output_bytes: u64,
    /// cgroup under which execution cgroups are created.
    pub cgroup_parent: String,
    /// Isolation layers allowed to be missing on this host (reported in every Outcome).
    pub allow_missing: Vec<String>,
    /// First uid (and gid) of Warden's own user namespace that sandbox uid 0 maps to
    /// (user_namespaces(7)); the default keeps sandboxes far from real users. Inside a pod with
    /// `hostUsers: false` (65536 ids mapped) use 0: see deploy/README.md.
    pub uid_base: u32,
    /// Number of uids (and gids) mapped into each sandbox; more than 1000 (the program runs as
    /// sandbox uid 1000).
    pub uid_count: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_concurrent: 4,
            queue_depth: 16,
            max_timeout_s: 60,
            max_memory_mb: 1024,
            max_output_bytes: 1 << 20,
            cgroup_parent: "warden".into(),
            allow_missing: Vec::new(),
            uid_base: warden_sandbox::DEFAULT_UID_BASE,
            uid_count: warden_sandbox::DEFAULT_UID_COUNT,
        }
    }
}

/// `[languages.NAME]`: how code in one language is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    /// Program: a path, or a name looked up in the sandbox's `PATH` (`/usr/local/bin:/usr/bin:/bin`).
    pub program: String,
    /// Arguments before the code file's path.
    #[serde(default)]
    pub args: Vec<String>,
    /// Name of the code file in the sandbox's working directory.
    pub file: String,
}

impl LanguageConfig {
    fn new(program: &str, file: &str) -> Self {
        LanguageConfig {
            program: program.into(),
            args: Vec::new(),
            file: file.into(),
        }
    }
}

/// The built-in language profiles: python, bash, sh, node.
pub fn default_languages() -> BTreeMap<String, LanguageConfig> {
    [
        ("python", LanguageConfig::new("python3", "main.py")),
        ("bash", LanguageConfig::new("bash", "main.sh")),
        ("sh", LanguageConfig::new("sh", "main.sh")),
        ("node", LanguageConfig::new("node", "main.js")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `[egress]`: the policy of `POST /v1/fetch` (see `warden_egress::UrlPolicy`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Only these domains (`example.com`, `*.example.com`); empty allows any public name.
    pub allow_domains: Vec<String>,
    /// Never these domains; wins over `allow_domains`.
    pub deny_domains: Vec<String>,
    /// CIDRs the special-purpose table denies that may be reached anyway.
    pub allow_cidrs: Vec<String>,
    /// CIDRs never reached; win over everything.
    pub deny_cidrs: Vec<String>,
    /// Ports that may be connected to.
    pub ports: Vec<u16>,
    /// Largest response body returned by `/v1/fetch`, in bytes.
    pub max_response_bytes: u64,
    /// Seconds a fetch may take, redirects included.
    pub timeout_s: u64,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            allow_cidrs: Vec::new(),
            deny_cidrs: Vec::new(),
            ports: vec![80, 443],
            max_response_bytes: 10 << 20,
            timeout_s: 30,
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record audit events (turning this off is for benchmarks, not production).
    pub enabled: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { enabled: true }
    }
}

/// A secret string from the configuration; `Debug` prints `<hidden>`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Secrets read from files during validation. Never logged (`Debug` hides them).
#[derive(Clone, Default)]
pub struct Secrets {
    /// The HS256 secret.
    pub jwt_secret: Option<Vec<u8>>,
    /// PEM public keys by `kid`.
    pub jwt_public_keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<hidden>"))
            .field(
                "jwt_public_keys",
                &self
                    .jwt_public_keys
                    .iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Config {
    /// Loads defaults, then the TOML file at `path` (when given), then `WARDEN_*` environment
    /// overrides (`WARDEN_SERVER__LISTEN=…` sets `server.listen`; only variables with a `__`
    /// are read, so `WARDEN_LOG` and the like are left alone).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for a missing or malformed file, an unknown key or a value of the
    /// wrong type, naming the key.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.exists() {
                return Err(invalid(
                    "--config",
                    format!(
                        "file {} does not exist; pass the path of a warden.toml",
                        path.display()
                    ),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        figment
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    /// Parses a TOML string only (no environment), for tests and embedding.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))
    }

    /// The language profiles in effect: the configured ones, or the built-in four.
    pub fn language_profiles(&self) -> BTreeMap<String, LanguageConfig> {
        if self.languages.is_empty() {
            default_languages()
        } else {
            self.languages.clone()
        }
    }

    /// The listen address, parsed.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when it is not `IP:PORT`.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        SocketAddr::from_str(&self.server.listen).map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "`{}` is not IP:PORT; use for example 127.0.0.1:8080 or [::1]:8080",
                    self.server.listen
                ),
            )
        })
    }

    /// Layers allowed to be missing, parsed.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for an unknown layer name.
    pub fn allowed_missing_layers(&self) -> Result<Vec<Layer>, ConfigError> {
        self.sandbox
            .allow_missing
            .iter()
            .map(|name| {
                let layer = Layer::from_str(name)
                    .map_err(|e| invalid("sandbox.allow_missing", e.to_string()))?;
                if layer.can_be_missing() {
                    Ok(layer)
                } else {
                    Err(invalid(
                        "sandbox.allow_missing",
                        format!("layer `{layer}` cannot be missing; only seccomp, pids, memory, userns and landlock can"),
                    ))
                }
            })
            .collect()
    }

    /// `server.trusted_proxies` parsed: a plain address is its own /32 or /128.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `server.trusted_proxies` and the entry that is not a CIDR.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "server.trusted_proxies",
                            format!("`{entry}` is not an address or a CIDR such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect()
    }

    /// Checks every value serde cannot and reads the secret files.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the key and saying how to fix it.
    pub fn validate(&self) -> Result<Secrets, ConfigError> {
        let listen = self.listen_addr()?;
        self.trusted_proxies()?;
        if self.server.tls.is_none() && !self.server.behind_tls_proxy && !listen.ip().is_loopback()
        {
            return Err(invalid(
                "server.listen",
                format!(
                    "{listen} is beyond loopback without TLS; configure [server.tls] cert_file and key_file, \
                     or set server.behind_tls_proxy = true when a TLS-terminating proxy is in front"
                ),
            ));
        }
        if self.server.request_timeout_s == 0 {
            return Err(invalid(
                "server.request_timeout_s",
                "must be at least 1 second",
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be at least 1024 bytes",
            ));
        }
        for host in &self.server.allowed_hosts {
            if host.is_empty() || host.contains(['/', ' ', '*']) {
                return Err(invalid(
                    "server.allowed_hosts",
                    format!("`{host}` is not a host name (host or host:port, no wildcards)"),
                ));
            }
        }
        for origin in &self.cors.allowed_origins {
            check_origin(origin)?;
        }
        let rl = &self.rate_limit;
        for (key, value) in [
            (
                "rate_limit.per_principal_per_minute",
                rl.per_principal_per_minute,
            ),
            ("rate_limit.per_client_per_minute", rl.per_client_per_minute),
            ("rate_limit.burst", rl.burst),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let sb = &self.sandbox;
        if sb.max_concurrent == 0 {
            return Err(invalid("sandbox.max_concurrent", "must be at least 1"));
        }
        if sb.max_timeout_s == 0 || sb.max_timeout_s > 86_400 {
            return Err(invalid(
                "sandbox.max_timeout_s",
                "must be between 1 and 86400 seconds",
            ));
        }
        if sb.max_memory_mb < 4 {
            return Err(invalid("sandbox.max_memory_mb", "must be at least 4 (MiB)"));
        }
        if sb.max_output_bytes == 0 || sb.max_output_bytes > warden_sandbox::MAX_OUTPUT_BYTES {
            return Err(invalid(
                "sandbox.max_output_bytes",
                format!(
                    "must be between 1 and {} bytes (output is kept in the server's memory)",
                    warden_sandbox::MAX_OUTPUT_BYTES
                ),
            ));
        }
        if sb.cgroup_parent.is_empty() || sb.cgroup_parent.split('/').any(|c| c == "..") {
            return Err(invalid(
                "sandbox.cgroup_parent",
                "must be a relative cgroup path without `..`",
            ));
        }
        self.allowed_missing_layers()?;
        for (name, lang) in &self.language_profiles() {
            let key = format!("languages.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    &key,
                    "language names are ASCII letters, digits, `-` and `_`",
                ));
            }
            if lang.program.is_empty() {
                return Err(invalid(&format!("{key}.program"), "must name a program"));
            }
            if lang.file.is_empty() || lang.file.contains('/') || lang.file == ".." {
                return Err(invalid(
                    &format!("{key}.file"),
                    "must be a plain file name such as main.py",
                ));
            }
        }
        self.egress_policy()?;
        if self.egress.ports.is_empty() {
            return Err(invalid("egress.ports", "must list at least one port"));
        }
        self.read_secrets()
    }

    /// The egress URL policy this configuration describes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a domain pattern or CIDR that does not parse.
    pub fn egress_policy(&self) -> Result<warden_egress::UrlPolicy, ConfigError> {
        let e = &self.egress;
        let mut policy = warden_egress::UrlPolicy::default()
            .with_allow_domains(&e.allow_domains)
            .map_err(|err| invalid("egress.allow_domains", err.to_string()))?
            .with_deny_domains(&e.deny_domains)
            .map_err(|err| invalid("egress.deny_domains", err.to_string()))?;
        let cidrs = |key: &str, list: &[String]| -> Result<Vec<ipnet::IpNet>, ConfigError> {
            list.iter()
                .map(|c| {
                    c.parse::<ipnet::IpNet>().map_err(|_| {
                        invalid(
                            key,
                            format!("`{c}` is not a CIDR such as 10.0.0.0/8 or fd00::/8"),
                        )
                    })
                })
                .collect()
        };
        policy.address.allow = cidrs("egress.allow_cidrs", &e.allow_cidrs)?;
        policy.address.deny = cidrs("egress.deny_cidrs", &e.deny_cidrs)?;
        policy.ports = e.ports.clone();
        Ok(policy)
    }

    fn read_secrets(&self) -> Result<Secrets, ConfigError> {
        let auth = &self.auth;
        let mut secrets = Secrets::default();
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|source| ConfigError::SecretFile {
                key: key.to_string(),
                path: path.to_path_buf(),
                source,
            })
        };
        match auth.jwt_algorithm {
            None => {
                if auth.jwt_secret_file.is_some()
                    || auth.jwt_secret.is_some()
                    || !auth.jwt_public_keys.is_empty()
                {
                    return Err(invalid(
                        "auth.jwt_algorithm",
                        "is not set but JWT keys are; set it (HS256, RS256, ES256 or EdDSA) to enable JWTs",
                    ));
                }
            }
            Some(JwtAlgorithm::HS256) => {
                if !auth.jwt_public_keys.is_empty() {
                    return Err(invalid(
                        "auth.jwt_public_keys",
                        "are for RS256/ES256/EdDSA; HS256 uses jwt_secret_file",
                    ));
                }
                let secret = match (&auth.jwt_secret_file, &auth.jwt_secret) {
                    (Some(path), _) => {
                        let bytes = read("auth.jwt_secret_file", path)?;
                        trim_ascii(&bytes).to_vec()
                    }
                    (None, Some(inline)) => inline.0.trim().as_bytes().to_vec(),
                    (None, None) => {
                        return Err(invalid(
                            "auth.jwt_secret_file",
                            "is required with jwt_algorithm = \"HS256\" (or WARDEN_AUTH__JWT_SECRET in development)",
                        ))
                    }
                };
                if secret.len() < MIN_JWT_SECRET_BYTES {
                    return Err(invalid(
                        "auth.jwt_secret_file",
                        format!(
                            "holds {} bytes; an HS256 secret needs at least {MIN_JWT_SECRET_BYTES} (generate one with `warden secrets generate`)",
                            secret.len()
                        ),
                    ));
                }
                secrets.jwt_secret = Some(secret);
            }
            Some(_) => {
                if auth.jwt_secret_file.is_some() || auth.jwt_secret.is_some() {
                    return Err(invalid(
                        "auth.jwt_secret_file",
                        "is for HS256 only; RS256/ES256/EdDSA verify with jwt_public_keys",
                    ));
                }
                if auth.jwt_public_keys.is_empty() {
                    return Err(invalid(
                        "auth.jwt_public_keys",
                        "must list at least one { kid, file } for RS256/ES256/EdDSA",
                    ));
                }
                for key in &auth.jwt_public_keys {
                    if key.kid.is_empty() {
                        return Err(invalid(
                            "auth.jwt_public_keys",
                            "every key needs a non-empty kid",
                        ));
                    }
                    if secrets.jwt_public_keys.iter().any(|(k, _)| *k == key.kid) {
                        return Err(invalid(
                            "auth.jwt_public_keys",
                            format!("kid `{}` is listed twice", key.kid),
                        ));
                    }
                    let pem = read("auth.jwt_public_keys", &key.file)?;
                    secrets.jwt_public_keys.push((key.kid.clone(), pem));
                }
            }
        }
        Ok(secrets)
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// An origin is `scheme://host[:port]` exactly (RFC 6454 section 6.1), never `*`.
fn check_origin(origin: &str) -> Result<(), ConfigError> {
    const KEY: &str = "cors.allowed_origins";
    if origin.trim() == "*" {
        return Err(invalid(
            KEY,
            "`*` is refused: the API takes credentials, so list each origin (https://app.example.com)",
        ));
    }
    let url = url::Url::parse(origin).map_err(|_| {
        invalid(
            KEY,
            format!("`{origin}` is not an origin such as https://app.example.com"),
        )
    })?;
    let serialized = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || serialized != origin {
        return Err(invalid(
            KEY,
            format!("`{origin}` is not an origin: write scheme://host[:port] with no path or trailing slash (here: {serialized})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_shipped_configs_load() {
        // deploy/ ships configs written against these keys; an unknown key would stop the pod.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for file in ["deploy/warden.toml", "deploy/kubernetes/base/warden.toml"] {
            let config =
                Config::load(Some(&root.join(file))).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(config.egress_policy().is_ok(), "{file}");
        }
        let k8s = Config::load(Some(&root.join("deploy/kubernetes/base/warden.toml"))).unwrap();
        assert_eq!((k8s.sandbox.uid_base, k8s.sandbox.uid_count), (0, 65536));
    }

    fn error_of(toml: &str) -> String {
        match Config::from_toml(toml).and_then(|c| c.validate().map(|_| c)) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let c = Config::from_toml("").unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.sandbox.max_concurrent, 4);
        assert_eq!(c.sandbox.queue_depth, 16);
        assert_eq!(c.rate_limit.burst, 20);
        assert!(c.audit.enabled);
        let langs = c.language_profiles();
        assert_eq!(langs["python"].program, "python3");
        assert_eq!(langs["node"].file, "main.js");
        assert_eq!(langs.len(), 4);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = error_of("[server]\nlisten_addr = \"127.0.0.1:1\"\n");
        assert!(e.contains("listen_addr"), "{e}");
        let e = error_of("[sandbox]\nmax_concurrent = \"four\"\n");
        assert!(e.contains("max_concurrent"), "{e}");
    }

    #[test]
    fn plain_http_beyond_loopback_is_refused_unless_behind_a_tls_proxy() {
        let e = error_of("[server]\nlisten = \"0.0.0.0:8080\"\n");
        assert!(
            e.contains("server.listen") && e.contains("behind_tls_proxy"),
            "{e}"
        );
        let c = Config::from_toml("[server]\nlisten = \"0.0.0.0:8080\"\nbehind_tls_proxy = true\n")
            .unwrap();
        c.validate().unwrap();
        let c = Config::from_toml("[server]\nlisten = \"[::1]:0\"\n").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn bad_listen_address_is_explained() {
        let e = error_of("[server]\nlisten = \"localhost:80\"\n");
        assert!(e.contains("is not IP:PORT"), "{e}");
    }

    #[test]
    fn cors_wildcard_and_non_origins_are_refused() {
        let e = error_of("[cors]\nallowed_origins = [\"*\"]\n");
        assert!(e.contains("`*` is refused"), "{e}");
        let e = error_of("[cors]\nallowed_origins = [\"https://a.example/\"]\n");
        assert!(e.contains("trailing slash"), "{e}");
        let e = error_of("[cors]\nallowed_origins = [\"ftp://a.example\"]\n");
        assert!(e.contains("not an origin"), "{e}");
        Config::from_toml(
            "[cors]\nallowed_origins = [\"https://a.example\", \"http://127.0.0.1:3000\"]\n",
        )
        .unwrap()
        .validate()
        .unwrap();
    }

    #[test]
    fn jwt_secret_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "too-short\n").unwrap();
        let e = error_of(&format!(
            "[auth]\njwt_algorithm = \"HS256\"\njwt_secret_file = \"{}\"\n",
            short.display()
        ));
        assert!(e.contains("at least 32"), "{e}");
        let long = dir.path().join("long");
        std::fs::write(&long, format!("{}\n", "k".repeat(32))).unwrap();
        let c = Config::from_toml(&format!(
            "[auth]\njwt_algorithm = \"HS256\"\njwt_secret_file = \"{}\"\n",
            long.display()
        ))
        .unwrap();
        assert_eq!(c.validate().unwrap().jwt_secret.unwrap().len(), 32);
    }

    #[test]
    fn jwt_settings_must_be_consistent() {
        let e = error_of("[auth]\njwt_algorithm = \"HS256\"\n");
        assert!(
            e.contains("jwt_secret_file") && e.contains("required"),
            "{e}"
        );
        let e = error_of("[auth]\njwt_algorithm = \"RS256\"\n");
        assert!(e.contains("jwt_public_keys"), "{e}");
        let e = error_of("[auth]\njwt_algorithm = \"none\"\n");
        assert!(e.contains("jwt_algorithm") || e.contains("none"), "{e}");
        let e = error_of("[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n");
        assert!(e.contains("jwt_algorithm"), "{e}");
        let e = error_of(
            "[auth]\njwt_algorithm = \"RS256\"\njwt_public_keys = [{ kid = \"a\", file = \"/nonexistent/k.pem\" }]\n",
        );
        assert!(e.contains("/nonexistent/k.pem"), "{e}");
    }

    #[test]
    fn limits_and_policies_are_checked() {
        assert!(error_of("[sandbox]\nmax_concurrent = 0\n").contains("sandbox.max_concurrent"));
        assert!(error_of("[sandbox]\nmax_memory_mb = 1\n").contains("sandbox.max_memory_mb"));
        assert!(error_of("[rate_limit]\nburst = 0\n").contains("rate_limit.burst"));
        assert!(
            error_of("[sandbox]\nallow_missing = [\"network\"]\n").contains("cannot be missing")
        );
        assert!(error_of("[sandbox]\nallow_missing = [\"bogus\"]\n").contains("unknown layer"));
        assert!(
            error_of("[egress]\nallow_cidrs = [\"10.0.0.0/33\"]\n").contains("egress.allow_cidrs")
        );
        assert!(error_of("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n")
            .contains("server.trusted_proxies"));
        let c = Config::from_toml("[server]\ntrusted_proxies = [\"10.0.0.1\", \"fd00::/8\"]\n")
            .unwrap();
        assert_eq!(c.trusted_proxies().unwrap().len(), 2);
        assert!(error_of("[egress]\nallow_domains = [\"exa mple.com\"]\n")
            .contains("egress.allow_domains"));
        assert!(
            error_of("[languages.py]\nprogram = \"python3\"\nfile = \"../x.py\"\n")
                .contains("languages.py.file")
        );
        let c =
            Config::from_toml("[languages.py]\nprogram = \"python3\"\nfile = \"x.py\"\n").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.language_profiles().len(),
            1,
            "a languages table replaces the defaults"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's own Jail API
    fn environment_overrides_keys_and_ignores_other_warden_variables() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("warden.toml", "[server]\nlisten = \"127.0.0.1:1\"\n")?;
            jail.set_env("WARDEN_SERVER__LISTEN", "127.0.0.1:2");
            jail.set_env("WARDEN_SANDBOX__MAX_CONCURRENT", "7");
            jail.set_env("WARDEN_PRETEND_MISSING", "seccomp");
            let c = Config::load(Some(Path::new("warden.toml"))).unwrap();
            assert_eq!(c.server.listen, "127.0.0.1:2");
            assert_eq!(c.sandbox.max_concurrent, 7);
            Ok(())
        });
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let s = Secrets {
            jwt_secret: Some(b"super-secret-value-super-secret-value".to_vec()),
            jwt_public_keys: vec![],
        };
        assert!(!format!("{s:?}").contains("super-secret"));
    }
}
