//! URL policy: which URLs may be fetched, judged on the WHATWG-parsed URL, never the string.
//!
//! # Design
//!
//! [`UrlPolicy::check_url`] parses with the `url` crate (the WHATWG URL Standard, the parser
//! browsers use), so every spelling of a host (`0x7f.1`, `2130706433`, `%31%32%37.0.0.1`,
//! IDNA-mapped names, a trailing dot) is judged in its canonical form, and then checks, in
//! order: scheme (http, https), userinfo (refused), port (80 and 443 unless configured),
//! names refused before any lookup (`localhost` and the other names in [`BLOCKED_NAMES`]),
//! the domain deny list, the domain allow list (`*.example.com` wildcards), and for a literal
//! IP host the [`AddressPolicy`]. [`UrlPolicy::check_addresses`] then judges *every* address a
//! name resolved to: one denied address denies the destination, and the [`Target`] carries the
//! judged addresses, the only ones a caller may connect to (pinning).
//!
//! # Limitations
//!
//! Resolution ([`Resolver`]) is explicit overrides, a caller's hook, or DNS through
//! hickory-resolver (the name servers and hosts file of the system configuration, or explicit
//! name servers) with a timeout; it is not the system's getaddrinfo, so NSS sources other than
//! DNS and `/etc/hosts` (mDNS, LDAP, systemd-resolved's own names) are not consulted. A caller
//! that connects must use [`Target::addresses`] and never resolve the name again. HTTP
//! redirects are new URLs and must be checked again.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use serde::Serialize;
use url::{Host, Url};

use crate::address::{AddressDecision, AddressPolicy};

/// Names refused before any lookup, as `(pattern, why)`; `*.` matches any subdomain.
pub const BLOCKED_NAMES: &[(&str, &str)] = &[
    ("localhost", "loopback name (RFC 6761 section 6.3)"),
    ("*.localhost", "loopback names (RFC 6761 section 6.3)"),
    (
        "localhost.localdomain",
        "loopback alias in many /etc/hosts files",
    ),
    ("*.local", "multicast DNS, the local link (RFC 6762)"),
    ("*.internal", "reserved for private use (ICANN, 2024)"),
    ("*.home.arpa", "residential networks (RFC 8375)"),
    ("metadata", "cloud metadata service short name (GCE)"),
    ("metadata.google.internal", "GCE metadata service"),
    ("metadata.goog", "GCE metadata service"),
    ("instance-data", "EC2 metadata short name"),
    ("instance-data.ec2.internal", "EC2 metadata service"),
];

/// Why a destination is denied (or could not be judged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Denial {
    /// The input is not a URL.
    #[error("not a URL: {reason}")]
    Parse {
        /// The parser's reason.
        reason: String,
    },
    /// Only http and https may be fetched.
    #[error("scheme `{scheme}` is not allowed (only http and https)")]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// Credentials in the URL are refused (they leak, and `user@host` confuses readers).
    #[error("URLs with userinfo (user:password@) are refused")]
    Userinfo,
    /// The URL has no host.
    #[error("URL has no host")]
    NoHost,
    /// The port is not in the allowed list.
    #[error("port {port} is not allowed (allowed: {allowed})")]
    Port {
        /// The port.
        port: u16,
        /// The allowed ports, comma-separated.
        allowed: String,
    },
    /// The name has an empty label (`evil.com..`, `a..b`): the WHATWG parser keeps them, a
    /// resolver takes `evil.com..` for `evil.com.`, but no domain pattern would match it.
    /// Only one trailing dot (the root label of a fully qualified name) is accepted.
    #[error("host `{host}` has an empty label (only one trailing dot is allowed)")]
    EmptyLabel {
        /// The host as parsed.
        host: String,
    },
    /// The name is refused before any lookup.
    #[error("host `{host}` is refused before lookup: matches `{pattern}` ({why})")]
    BlockedName {
        /// The host.
        host: String,
        /// The matching pattern.
        pattern: &'static str,
        /// Why such names are refused.
        why: &'static str,
    },
    /// The domain matches the operator's deny list.
    #[error("domain `{host}` is denied by `{pattern}`")]
    DomainDenied {
        /// The host.
        host: String,
        /// The matching pattern.
        pattern: String,
    },
    /// An allow list is configured and the domain is not on it.
    #[error("domain `{host}` is not on the allow list")]
    DomainNotAllowed {
        /// The host.
        host: String,
    },
    /// A domain allow list is set and the URL's host is an address literal outside every
    /// `--allow-cidr`: an allow list of names would mean nothing if any public address could
    /// be named directly.
    #[error("address literal `{host}` is not allowed while a domain allow list is set; allow its range with --allow-cidr to reach it")]
    LiteralNotAllowed {
        /// The address, canonical form.
        host: String,
    },
    /// An address of the destination is denied by the address policy.
    #[error("{}", address_reason(host, *address, decision))]
    Address {
        /// The host as written in the URL (canonical form).
        host: String,
        /// The denied address.
        address: IpAddr,
        /// The address policy's decision for the denied address (boxed: it is large and
        /// denials travel in `Result`s).
        decision: Box<AddressDecision>,
    },
    /// The name did not resolve (or resolved to nothing).
    #[error("cannot resolve `{host}`: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
}

impl Denial {
    /// The rule's name, as in the JSON form's `rule` field: `parse`, `scheme`, `userinfo`,
    /// `no_host`, `port`, `blocked_name`, `domain_denied`, `domain_not_allowed`, `address` or
    /// `resolve`.
    pub fn rule(&self) -> &'static str {
        match self {
            Denial::Parse { .. } => "parse",
            Denial::Scheme { .. } => "scheme",
            Denial::Userinfo => "userinfo",
            Denial::NoHost => "no_host",
            Denial::EmptyLabel { .. } => "empty_label",
            Denial::Port { .. } => "port",
            Denial::BlockedName { .. } => "blocked_name",
            Denial::DomainDenied { .. } => "domain_denied",
            Denial::DomainNotAllowed { .. } => "domain_not_allowed",
            Denial::LiteralNotAllowed { .. } => "literal_not_allowed",
            Denial::Address { .. } => "address",
            Denial::Resolve { .. } => "resolve",
        }
    }
}

/// `10.0.0.5 is in 10.0.0.0/8 (…)`, prefixed with `NAME: ` when a name resolved to it.
fn address_reason(host: &str, address: IpAddr, decision: &AddressDecision) -> String {
    let text = decision.explain(address).to_string();
    let text = text.strip_prefix("denied: ").unwrap_or(&text).to_string();
    if host == address.to_string() {
        text
    } else {
        format!("{host}: {text}")
    }
}

/// A [`Denial::Resolve`] for `host`.
fn unresolved(host: impl Into<String>, reason: impl Into<String>) -> Denial {
    Denial::Resolve {
        host: host.into(),
        reason: reason.into(),
    }
}

/// A destination that passed the URL checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The canonical URL.
    pub url: String,
    /// The canonical host (ASCII, lowercase, no trailing dot; IPv6 without brackets).
    pub host: String,
    /// The port to connect to.
    pub port: u16,
    /// Addresses judged and allowed: the only ones a connection may use. For a name, empty
    /// until [`UrlPolicy::check_addresses`] fills it.
    pub addresses: Vec<IpAddr>,
    /// Whether the host is a name that still needs resolving.
    pub needs_resolution: bool,
}

/// Error for a domain pattern that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid domain pattern `{0}`: expected a name like example.com or *.example.com")]
pub struct BadPattern(pub String);

/// A normalised domain pattern: exact name, or `*.` + suffix (subdomains only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DomainPattern {
    text: String,
    wildcard: bool,
    name: String,
}

impl DomainPattern {
    fn parse(text: &str) -> Result<Self, BadPattern> {
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        match Host::parse(rest) {
            Ok(Host::Domain(d)) => match normalise(&d) {
                Some(name) => Ok(DomainPattern {
                    text: text.to_string(),
                    wildcard,
                    name: name.to_string(),
                }),
                None => Err(BadPattern(text.to_string())),
            },
            _ => Err(BadPattern(text.to_string())),
        }
    }

    fn matches(&self, host: &str) -> bool {
        if self.wildcard {
            is_subdomain(host, &self.name)
        } else {
            host == self.name
        }
    }
}

fn parse_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<DomainPattern>, BadPattern> {
    patterns
        .iter()
        .map(|p| DomainPattern::parse(p.as_ref()))
        .collect()
}

/// Whether `host` is a proper subdomain of `suffix` (`a.example.com` of `example.com`).
fn is_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len()
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// A parsed (lowercase ASCII) domain without its one optional trailing dot (`example.com.` is
/// `example.com`); `None` when a label is empty (`example.com..`, `a..b`, `.a`), which no
/// pattern could then be matched against reliably.
fn normalise(domain: &str) -> Option<&str> {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    (!name.is_empty() && name.split('.').all(|label| !label.is_empty())).then_some(name)
}

/// Longest redacted URL kept by [`redact_url`], in bytes; longer ones are cut there.
pub const REDACTED_URL_MAX: usize = 1024;

/// `text` as it may be written to a log or an audit trail: an http(s) URL with any
/// `user:password@` replaced by `***@`, any query by `?***` and the fragment dropped
/// (credentials are refused by the policy, and queries carry tokens and signed-URL
/// signatures), cut to [`REDACTED_URL_MAX`] bytes; another scheme becomes `scheme:(N bytes)`
/// and text that is not a URL `(not a URL, N bytes)`. Secrets in the path (`/bot<token>/`)
/// are kept: a path is what identifies the resource.
pub fn redact_url(text: &str) -> String {
    let Ok(mut url) = Url::parse(text) else {
        return format!("(not a URL, {} bytes)", text.len());
    };
    // Only http(s) URLs are ever fetched; anything else (`mailto:`, `data:`, `javascript:`,
    // opaque paths that may hold anything) keeps only its scheme.
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return format!("{}:({} bytes)", url.scheme(), text.len());
    }
    let had_userinfo = !url.username().is_empty() || url.password().is_some();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        url.set_query(Some("***"));
    }
    url.set_fragment(None);
    let mut out = url.to_string();
    if had_userinfo {
        let at = out.find("://").map_or(0, |i| i + 3);
        out.insert_str(at, "***@");
    }
    if out.len() > REDACTED_URL_MAX {
        let mut cut = REDACTED_URL_MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// Does `host` match the blocked-name pattern?
fn matches_blocked(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => is_subdomain(host, suffix),
        None => host == pattern,
    }
}

/// The URL policy. `Default` is the safe one: http/https, ports 80 and 443, any public domain.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// The address policy every literal or resolved address goes through.
    pub address: AddressPolicy,
    /// Ports that may be connected to.
    pub ports: Vec<u16>,
    allow_domains: Vec<DomainPattern>,
    deny_domains: Vec<DomainPattern>,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy {
            address: AddressPolicy::default(),
            ports: vec![80, 443],
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
        }
    }
}

impl UrlPolicy {
    /// Restricts names to those matching `patterns` (`example.com` or `*.example.com`,
    /// IDNA-normalised). An empty list allows any name the other rules allow.
    ///
    /// # Errors
    ///
    /// [`BadPattern`] for a pattern that is not a domain name.
    pub fn with_allow_domains<S: AsRef<str>>(mut self, patterns: &[S]) -> Result<Self, BadPattern> {
        self.allow_domains = parse_patterns(patterns)?;
        Ok(self)
    }

    /// Denies names matching `patterns`; deny wins over allow.
    ///
    /// # Errors
    ///
    /// [`BadPattern`] for a pattern that is not a domain name.
    pub fn with_deny_domains<S: AsRef<str>>(mut self, patterns: &[S]) -> Result<Self, BadPattern> {
        self.deny_domains = parse_patterns(patterns)?;
        Ok(self)
    }

    /// Checks a URL without resolving it: everything but the addresses of a name.
    ///
    /// # Errors
    ///
    /// The first rule the URL breaks, as a [`Denial`]; [`Denial::Parse`] when it is not a URL.
    pub fn check_url(&self, input: &str) -> Result<Target, Denial> {
        let url = Url::parse(input).map_err(|e| Denial::Parse {
            reason: e.to_string(),
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Denial::Scheme {
                scheme: url.scheme().to_string(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Denial::Userinfo);
        }
        let port = url.port_or_known_default().ok_or(Denial::NoHost)?;
        if !self.ports.contains(&port) {
            let allowed = self
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Denial::Port { port, allowed });
        }
        let mut url = url;
        if let Some(Host::Domain(domain)) = url.host() {
            let Some(name) = normalise(domain).map(str::to_string) else {
                return Err(Denial::EmptyLabel {
                    host: domain.to_string(),
                });
            };
            // The URL to send names the host exactly as judged and pinned: an HTTP client
            // looks up the URL's own spelling, and `name.` would miss a pin made for `name`
            // and be resolved again (review, session 5: DNS rebinding through a trailing dot).
            if name.len() != domain.len() {
                url.set_host(Some(&name)).map_err(|e| Denial::Parse {
                    reason: e.to_string(),
                })?;
            }
        }
        let target = |host: String, addresses: Vec<IpAddr>, needs_resolution| Target {
            url: url.to_string(),
            host,
            port,
            addresses,
            needs_resolution,
        };
        match url.host() {
            None => Err(Denial::NoHost),
            Some(Host::Ipv4(v4)) => self
                .judge_literal(IpAddr::V4(v4))
                .map(|a| target(v4.to_string(), vec![a], false)),
            Some(Host::Ipv6(v6)) => self
                .judge_literal(IpAddr::V6(v6))
                .map(|a| target(v6.to_string(), vec![a], false)),
            Some(Host::Domain(domain)) => {
                let host = domain.to_string();
                self.judge_name(&host)?;
                Ok(target(host, Vec::new(), true))
            }
        }
    }

    fn judge_literal(&self, address: IpAddr) -> Result<IpAddr, Denial> {
        let decision = self.address.check(address);
        if decision.is_allowed() {
            let explicitly_allowed = self.address.allow.iter().any(|net| net.contains(&address));
            if !self.allow_domains.is_empty() && !explicitly_allowed {
                return Err(Denial::LiteralNotAllowed {
                    host: address.to_string(),
                });
            }
            Ok(address)
        } else {
            Err(Denial::Address {
                host: address.to_string(),
                address,
                decision: Box::new(decision),
            })
        }
    }

    fn judge_name(&self, host: &str) -> Result<(), Denial> {
        if let Some((pattern, why)) = BLOCKED_NAMES.iter().find(|(p, _)| matches_blocked(p, host)) {
            return Err(Denial::BlockedName {
                host: host.to_string(),
                pattern,
                why,
            });
        }
        if let Some(p) = self.deny_domains.iter().find(|p| p.matches(host)) {
            return Err(Denial::DomainDenied {
                host: host.to_string(),
                pattern: p.text.clone(),
            });
        }
        if !self.allow_domains.is_empty() && !self.allow_domains.iter().any(|p| p.matches(host)) {
            return Err(Denial::DomainNotAllowed {
                host: host.to_string(),
            });
        }
        Ok(())
    }

    /// Judges every address `target`'s name resolved to. One denied address denies the
    /// destination (a name that answers with a private address is not trusted with the rest);
    /// otherwise the target's addresses are the judged ones, the only ones to connect to.
    ///
    /// # Errors
    ///
    /// [`Denial::Address`] for the first denied address, [`Denial::Resolve`] when `addresses`
    /// is empty.
    pub fn check_addresses(
        &self,
        mut target: Target,
        addresses: &[IpAddr],
    ) -> Result<Target, Denial> {
        if addresses.is_empty() {
            return Err(unresolved(target.host, "no addresses"));
        }
        for &address in addresses {
            let decision = self.address.check(address);
            if !decision.is_allowed() {
                return Err(Denial::Address {
                    host: target.host,
                    address,
                    decision: Box::new(decision),
                });
            }
        }
        target.addresses = addresses.to_vec();
        target.needs_resolution = false;
        Ok(target)
    }
}

/// Resolves names: explicit overrides first (`--resolve HOST=ADDR`), then a caller's hook if
/// one is set, then DNS through hickory-resolver (the name servers of `/etc/resolv.conf` and the
/// hosts file, or explicit name servers), within a timeout. Every answer, overrides included,
/// is still judged by the address policy; only judged addresses may be connected to.
///
/// Two entry points: [`Resolver::resolve_async`] for async callers (the forward proxy) and
/// [`Resolver::resolve`], a blocking call that is safe from any thread, including a tokio
/// worker (it runs the lookup on a thread of its own and blocks the caller until it ends).
#[derive(Clone)]
pub struct Resolver {
    overrides: Vec<(String, IpAddr)>,
    timeout: Duration,
    system: bool,
    custom: Option<CustomResolve>,
    nameservers: Option<Vec<SocketAddr>>,
    /// The DNS client of [`Resolver::resolve_async`], built on first use and kept (with its
    /// cache) for the tokio runtime it was built in; shared by clones.
    dns: Arc<Mutex<Option<(tokio::runtime::Id, TokioResolver)>>>,
}

/// A caller-supplied resolution function (host, port) → addresses, used instead of DNS
/// (embedding, tests). It is called inline, also from async code, so it must not block long.
pub type CustomResolve =
    std::sync::Arc<dyn Fn(&str, u16) -> Result<Vec<IpAddr>, String> + Send + Sync>;

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("timeout", &self.timeout)
            .field("system", &self.system)
            .field("custom", &self.custom.is_some())
            .field("nameservers", &self.nameservers)
            .finish()
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            overrides: Vec::new(),
            timeout: Duration::from_secs(5),
            system: true,
            custom: None,
            nameservers: None,
            dns: Arc::default(),
        }
    }
}

/// Error for a `--resolve` value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid resolve override `{0}`: expected HOST=ADDR, for example example.com=93.184.215.14"
)]
pub struct BadOverride(pub String);

impl Resolver {
    /// Adds an override from `HOST=ADDR` (IPv6 with or without brackets).
    ///
    /// # Errors
    ///
    /// [`BadOverride`] when the host is not a domain or the address not an IP address.
    pub fn with_override(mut self, spec: &str) -> Result<Self, BadOverride> {
        let bad = || BadOverride(spec.to_string());
        let (host, addr) = spec.split_once('=').ok_or_else(bad)?;
        let host = match Host::parse(host).map_err(|_| bad())? {
            Host::Domain(d) => normalise(&d).ok_or_else(bad)?.to_string(),
            _ => return Err(bad()),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        self.overrides.push((host, addr));
        Ok(self)
    }

    /// Uses only overrides: names without one do not resolve (for tests and offline use).
    pub fn overrides_only(mut self) -> Self {
        self.system = false;
        self
    }

    /// Resolves names without an override through `resolve` instead of DNS.
    pub fn with_custom(mut self, resolve: CustomResolve) -> Self {
        self.custom = Some(resolve);
        self
    }

    /// Asks these name servers (UDP, falling back to TCP for truncated answers) instead of
    /// those of `/etc/resolv.conf`, with no search domains and without the hosts file. Port 53
    /// is the usual one; tests run a server on `127.0.0.1:0`.
    pub fn with_nameservers(mut self, servers: Vec<SocketAddr>) -> Self {
        self.nameservers = Some(servers);
        self.system = true;
        self.dns = Arc::default();
        self
    }

    /// Bounds one resolution (all DNS queries and retries of it) to `timeout`; 5 s by default.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.dns = Arc::default();
        self
    }

    /// The override or custom answer for `host`, when there is one; `None` when DNS must answer.
    fn resolve_locally(&self, host: &str, port: u16) -> Option<Result<Vec<IpAddr>, Denial>> {
        let overridden: Vec<IpAddr> = self
            .overrides
            .iter()
            .filter(|(h, _)| h == host)
            .map(|(_, a)| *a)
            .collect();
        if !overridden.is_empty() {
            return Some(Ok(overridden));
        }
        if let Some(custom) = &self.custom {
            return Some(match custom(host, port) {
                Ok(addrs) if !addrs.is_empty() => Ok(addrs),
                Ok(_) => Err(unresolved(host, "no addresses")),
                Err(reason) => Err(unresolved(host, reason)),
            });
        }
        if !self.system {
            return Some(Err(unresolved(host, "no override for this name")));
        }
        None
    }

    /// Resolves `host` (canonical form) for `port`, blocking the calling thread.
    ///
    /// Safe to call from any thread, also from inside a tokio runtime: the DNS lookup runs on
    /// a thread of its own with a fresh single-threaded runtime and DNS client (no cache is kept
    /// between calls). Async code should prefer [`Resolver::resolve_async`], which does not
    /// block a worker thread and keeps a cache.
    ///
    /// # Errors
    ///
    /// [`Denial::Resolve`] when the name does not resolve, resolves to nothing, or nothing
    /// answers within the timeout.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, Denial> {
        if let Some(answer) = self.resolve_locally(host, port) {
            return answer;
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| unresolved(host, format!("cannot start a DNS client: {e}")))?;
                    runtime.block_on(async {
                        let dns = self
                            .build_dns()
                            .map_err(|reason| unresolved(host, reason))?;
                        self.lookup(&dns, host).await
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(unresolved(host, "the DNS lookup thread panicked")))
        })
    }

    /// Resolves `host` (canonical form) for `port` without blocking: overrides, then the custom
    /// hook, then DNS through hickory-resolver within the timeout.
    ///
    /// The DNS client (and its cache, which honours the answers' TTLs) is built on first use
    /// and kept for the tokio runtime it was built in; a call from another runtime builds a new
    /// one.
    ///
    /// # Errors
    ///
    /// [`Denial::Resolve`] when the name does not resolve, resolves to nothing, or nothing
    /// answers within the timeout.
    pub async fn resolve_async(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, Denial> {
        if let Some(answer) = self.resolve_locally(host, port) {
            return answer;
        }
        let dns = self
            .cached_dns()
            .map_err(|reason| unresolved(host, reason))?;
        self.lookup(&dns, host).await
    }

    /// The DNS client for the current tokio runtime, built when there is none for it yet.
    fn cached_dns(&self) -> Result<TokioResolver, String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| format!("resolve_async needs a tokio runtime: {e}"))?
            .id();
        let mut slot = self
            .dns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((id, dns)) = slot.as_ref() {
            if *id == runtime {
                return Ok(dns.clone());
            }
        }
        let dns = self.build_dns()?;
        *slot = Some((runtime, dns.clone()));
        Ok(dns)
    }

    /// A hickory resolver: the system configuration (`/etc/resolv.conf`, hosts file) or the
    /// explicit name servers, asking for A and AAAA records together (every address of both
    /// answers is judged), each query given at most half of our timeout so that one retry
    /// fits in it.
    fn build_dns(&self) -> Result<TokioResolver, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match &self.nameservers {
            None => TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
            Some(servers) => {
                let config = ResolverConfig::from_name_servers(
                    servers.iter().map(|s| name_server(*s)).collect(),
                );
                let mut builder = TokioResolver::builder_with_config(config, provider);
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = options.timeout.min(self.timeout / 2);
        options.try_tcp_on_error = true;
        builder
            .build()
            .map_err(|e| format!("cannot start a DNS client: {e}"))
    }

    /// One A+AAAA lookup of `host` through `dns`, bounded by the timeout.
    async fn lookup(&self, dns: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, Denial> {
        match tokio::time::timeout(self.timeout, dns.lookup_ip(host)).await {
            Err(_) => Err(unresolved(
                host,
                format!("no answer within {:?}", self.timeout),
            )),
            Ok(Err(e)) => Err(unresolved(host, e.to_string())),
            Ok(Ok(answer)) => {
                let mut addresses: Vec<IpAddr> = Vec::new();
                for address in answer.iter() {
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
                if addresses.is_empty() {
                    Err(unresolved(host, "no addresses"))
                } else {
                    Ok(addresses)
                }
            }
        }
    }
}

/// A name server at `address`, asked over UDP first and TCP when the answer is truncated.
fn name_server(address: SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(address.ip());
    for connection in &mut config.connections {
        connection.port = address.port();
    }
    config
}

impl UrlPolicy {
    /// Checks `input` completely: URL rules, then resolution with `resolver`, then every
    /// resolved address.
    ///
    /// # Errors
    ///
    /// The [`Denial`] of the first rule broken.
    pub fn check(&self, input: &str, resolver: &Resolver) -> Result<Target, Denial> {
        let target = self.check_url(input)?;
        if !target.needs_resolution {
            return Ok(target);
        }
        let addresses = resolver.resolve(&target.host, target.port)?;
        self.check_addresses(target, &addresses)
    }

    /// [`UrlPolicy::check`] for async callers: resolution goes through
    /// [`Resolver::resolve_async`].
    ///
    /// # Errors
    ///
    /// The [`Denial`] of the first rule broken.
    pub async fn check_async(&self, input: &str, resolver: &Resolver) -> Result<Target, Denial> {
        let target = self.check_url(input)?;
        if !target.needs_resolution {
            return Ok(target);
        }
        let addresses = resolver.resolve_async(&target.host, target.port).await?;
        self.check_addresses(target, &addresses)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addrs: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        write!(
            f,
            "allowed: {} -> {} port {}",
            self.url,
            addrs.join(", "),
            self.port
        )
    }
}
