//! `warden doctor --config FILE`: the deployment posture a deploy checklist asks for, each item
//! pass / warn / fail with how to fix it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use warden_egress::AddressPolicy;
use warden_sandbox::host::HostReport;
use warden_server::Config;

/// How one item fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Pass,
    /// Acceptable in some setups; read the detail.
    Warn,
    /// Unsafe: fix before exposing Warden.
    Fail,
}

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable identifier (`tls`, `cors`, `audit`, …).
    pub id: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warn and fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn item(id: &'static str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Item {
    Item {
        id,
        status,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET: usize = 32;

/// Values found in examples and tutorials; a secret that contains one is a default.
const DEFAULT_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "example",
    "secret",
    "password",
    "integration-test",
];

/// Store facts for the posture (`None` when there is no store yet).
pub struct StoreFacts {
    /// Active (unrevoked, unexpired) API keys.
    pub active_keys: i64,
    /// `Ok(events)` when the audit chain verifies, `Err(first break)` otherwise.
    pub audit: Result<u64, String>,
}

/// Judges `config` (already loaded), the host layers and the store.
pub fn assess(config: &Config, host: &HostReport, store: Option<&StoreFacts>) -> Vec<Item> {
    let mut items = Vec::new();

    // Isolation layers.
    let missing: Vec<&str> = host
        .layers
        .iter()
        .filter(|l| !l.available)
        .map(|l| l.layer.name())
        .collect();
    items.push(if missing.is_empty() {
        item("isolation_layers", Status::Pass, "every isolation layer is available", None)
    } else if missing
        .iter()
        .all(|m| config.sandbox.allow_missing.iter().any(|a| a == m))
    {
        item("isolation_layers", Status::Warn, format!("missing but allowed by [sandbox] allow_missing: {}", missing.join(", ")), Some("fix the host (see the layer report above) and remove them from allow_missing"))
    } else {
        item("isolation_layers", Status::Fail, format!("missing: {}", missing.join(", ")), Some("fix the host (see the layer report above); warden serve refuses executions until then"))
    });

    // Credentials.
    let jwt = config.auth.jwt_algorithm.is_some();
    let keys = store.map_or(0, |s| s.active_keys);
    items.push(if jwt || keys > 0 {
        item(
            "credentials",
            Status::Pass,
            format!(
                "{keys} active API key(s); JWT {}",
                if jwt { "configured" } else { "off" }
            ),
            None,
        )
    } else {
        item(
            "credentials",
            Status::Fail,
            "no active API key and no JWT configuration: nobody can use the API",
            Some("warden keys create --name NAME --scope execute,fetch, or configure [auth]"),
        )
    });

    // JWT secret: length and not a default.
    if let Some(secret) = jwt_secret(config) {
        match secret {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
                let default = DEFAULT_SECRETS.iter().find(|d| text.contains(*d));
                items.push(if let Some(d) = default {
                    item(
                        "jwt_secret",
                        Status::Fail,
                        format!("the HS256 secret contains `{d}`: a default or example value"),
                        Some("warden secrets generate, or 64 random bytes from a secret manager"),
                    )
                } else if bytes.len() < MIN_SECRET {
                    item(
                        "jwt_secret",
                        Status::Fail,
                        format!(
                            "the HS256 secret is {} bytes, fewer than {MIN_SECRET}",
                            bytes.len()
                        ),
                        Some("use at least 32 random bytes (warden secrets generate)"),
                    )
                } else {
                    item(
                        "jwt_secret",
                        Status::Pass,
                        format!("HS256 secret of {} bytes", bytes.len()),
                        None,
                    )
                });
            }
            Err(e) => items.push(item(
                "jwt_secret",
                Status::Fail,
                e,
                Some("make auth.jwt_secret_file readable by warden"),
            )),
        }
    }

    // CORS.
    let origins = &config.cors.allowed_origins;
    items.push(if origins.is_empty() {
        item("cors", Status::Pass, "no cross-origin access", None)
    } else if origins.iter().any(|o| o.trim() == "*") {
        item(
            "cors",
            Status::Fail,
            "`*` is allowed",
            Some("list the exact origins in [cors] allowed_origins"),
        )
    } else if origins
        .iter()
        .any(|o| o.starts_with("http://") && !is_local_origin(o))
    {
        item(
            "cors",
            Status::Warn,
            format!("plain-http origins allowed: {}", origins.join(", ")),
            Some("allow only https:// origins"),
        )
    } else {
        item(
            "cors",
            Status::Pass,
            format!("allowed origins: {}", origins.join(", ")),
            None,
        )
    });

    // TLS.
    let loopback = config
        .listen_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    items.push(if config.server.tls.is_some() {
        item("tls", Status::Pass, "TLS with rustls ([server.tls])", None)
    } else if config.server.behind_tls_proxy {
        item("tls", Status::Pass, "plain HTTP behind a declared TLS-terminating proxy", None)
    } else if loopback {
        item("tls", Status::Warn, "plain HTTP on loopback: fine for one machine, not for a network", Some("set [server.tls] or behind_tls_proxy = true before listening beyond loopback"))
    } else {
        item("tls", Status::Fail, "plain HTTP beyond loopback", Some("set [server.tls] cert_file/key_file, or behind_tls_proxy = true if a TLS proxy is in front"))
    });

    // Security headers are not configurable: always on.
    items.push(item("security_headers", Status::Pass, "nosniff, X-Frame-Options DENY, Referrer-Policy no-referrer, CSP on every response; HSTS with TLS", None));

    // Rate limits.
    let rl = &config.rate_limit;
    items.push(
        if rl.per_principal_per_minute > 10_000 || rl.per_client_per_minute > 10_000 {
            item(
                "rate_limits",
                Status::Warn,
                format!(
                    "{} per principal and {} per client per minute: effectively off",
                    rl.per_principal_per_minute, rl.per_client_per_minute
                ),
                Some("lower [rate_limit] to what agents need (defaults: 120 and 300)"),
            )
        } else {
            item(
                "rate_limits",
                Status::Pass,
                format!(
                    "{} per principal, {} per client per minute, burst {}",
                    rl.per_principal_per_minute, rl.per_client_per_minute, rl.burst
                ),
                None,
            )
        },
    );

    // Audit log.
    items.push(match (config.audit.enabled, store.map(|s| &s.audit)) {
        (false, _) => item(
            "audit",
            Status::Fail,
            "the audit log is off",
            Some("[audit] enabled = true"),
        ),
        (true, None) => item(
            "audit",
            Status::Warn,
            "no store yet: nothing to verify",
            Some("start warden serve once, then run doctor again"),
        ),
        (true, Some(Ok(events))) => item(
            "audit",
            Status::Pass,
            format!("on; the hash chain of {events} events verifies"),
            None,
        ),
        (true, Some(Err(broken))) => item(
            "audit",
            Status::Fail,
            format!("the hash chain is broken: {broken}"),
            Some("treat as an incident: see docs/operations.md, `warden audit verify`"),
        ),
    });

    // Data directory and secret files: not world-readable.
    let mut exposed = Vec::new();
    let data = &config.server.data_dir;
    for path in [data.clone(), data.join("warden.db")]
        .into_iter()
        .chain(secret_files(config))
    {
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.permissions().mode() & 0o004 != 0 {
                exposed.push(path.display().to_string());
            }
        }
    }
    items.push(if exposed.is_empty() {
        item(
            "file_permissions",
            Status::Pass,
            "data directory, store and secret files are not world-readable",
            None,
        )
    } else {
        item(
            "file_permissions",
            Status::Fail,
            format!("world-readable: {}", exposed.join(", ")),
            Some("chmod o-rwx on each (data dir 0700, files 0600)"),
        )
    });

    // Secrets inside a git work tree end up committed.
    let in_git: Vec<String> = secret_files(config)
        .filter(|p| inside_git_work_tree(p))
        .map(|p| p.display().to_string())
        .collect();
    items.push(if in_git.is_empty() {
        item(
            "secrets_outside_git",
            Status::Pass,
            "no secret file inside a git work tree",
            None,
        )
    } else {
        item(
            "secrets_outside_git",
            Status::Fail,
            format!("inside a git work tree: {}", in_git.join(", ")),
            Some(
                "move them out of the repository (e.g. /etc/warden/secrets) or to a secret manager",
            ),
        )
    });

    // Egress: no operator allow into special-purpose (private, loopback, metadata…) ranges.
    let table = AddressPolicy::default();
    let opened: Vec<String> = config
        .egress
        .allow_cidrs
        .iter()
        .filter(|c| {
            c.parse::<ipnet::IpNet>()
                .map(|net| {
                    !table.check(net.network()).is_allowed()
                        || !table.check(net.broadcast()).is_allowed()
                })
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    items.push(if opened.is_empty() {
        item("egress_private_ranges", Status::Pass, "the egress policy reaches no special-purpose range", None)
    } else {
        item("egress_private_ranges", Status::Fail, format!("[egress] allow_cidrs opens special-purpose ranges: {}", opened.join(", ")), Some("remove them unless an internal service must be reachable from sandboxes, and then allow its single address"))
    });
    items
}

fn is_local_origin(origin: &str) -> bool {
    ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|p| origin == *p || origin.starts_with(&format!("{p}:")))
}

/// The HS256 secret when one is configured: `Err` when its file cannot be read.
fn jwt_secret(config: &Config) -> Option<Result<Vec<u8>, String>> {
    if let Some(hidden) = &config.auth.jwt_secret {
        return Some(Ok(hidden.0.trim().as_bytes().to_vec()));
    }
    config.auth.jwt_secret_file.as_ref().map(|path| {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).trim().as_bytes().to_vec())
            .map_err(|e| format!("cannot read auth.jwt_secret_file {}: {e}", path.display()))
    })
}

/// Files holding secrets: the HS256 secret and the TLS private key.
fn secret_files(config: &Config) -> impl Iterator<Item = PathBuf> + '_ {
    config
        .auth
        .jwt_secret_file
        .iter()
        .cloned()
        .chain(config.server.tls.iter().map(|t| t.key_file.clone()))
}

/// Whether `path` lies inside a git work tree (a parent directory holds `.git`).
fn inside_git_work_tree(path: &Path) -> bool {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .skip(1)
        .any(|dir| dir.join(".git").exists())
}

/// `passed/total` over the items, and whether any failed.
pub fn score(items: &[Item]) -> (usize, usize, bool) {
    let passed = items.iter().filter(|i| i.status == Status::Pass).count();
    let failed = items.iter().any(|i| i.status == Status::Fail);
    (passed, items.len(), failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use warden_sandbox::host::LayerStatus;
    use warden_sandbox::Layer;

    fn host(missing: &[Layer]) -> HostReport {
        HostReport {
            layers: Layer::ALL
                .iter()
                .map(|&layer| LayerStatus {
                    layer,
                    available: !missing.contains(&layer),
                    detail: String::new(),
                    remedy: None,
                })
                .collect(),
            cgroup: None,
            landlock_abi: Some(7),
            advisories: Vec::new(),
        }
    }

    fn status_of(items: &[Item], id: &str) -> Status {
        items.iter().find(|i| i.id == id).unwrap().status
    }

    fn facts() -> StoreFacts {
        StoreFacts {
            active_keys: 1,
            audit: Ok(3),
        }
    }

    #[test]
    fn a_careful_config_passes_every_item() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.server.behind_tls_proxy = true;
        let items = assess(&config, &host(&[]), Some(&facts()));
        for i in &items {
            assert_eq!(i.status, Status::Pass, "{i:?}");
        }
        assert_eq!(score(&items), (items.len(), items.len(), false));
    }

    #[test]
    fn unsafe_settings_fail_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // A secret file inside a git work tree, world-readable, with an example value.
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let secret = dir.path().join("jwt-secret");
        std::fs::write(&secret, "change-me-change-me-change-me-change-me").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.server.listen = "0.0.0.0:8080".into();
        config.auth.jwt_secret_file = Some(secret);
        config.cors.allowed_origins = vec!["*".into()];
        config.audit.enabled = false;
        config.egress.allow_cidrs = vec!["10.0.0.0/8".into(), "93.184.215.0/24".into()];
        let store = StoreFacts {
            active_keys: 0,
            audit: Err("event 3 edited".into()),
        };
        let items = assess(&config, &host(&[Layer::Landlock]), Some(&store));
        for id in [
            "isolation_layers",
            "jwt_secret",
            "cors",
            "tls",
            "audit",
            "file_permissions",
            "secrets_outside_git",
            "egress_private_ranges",
        ] {
            assert_eq!(status_of(&items, id), Status::Fail, "{id}: {items:?}");
            assert!(
                items.iter().find(|i| i.id == id).unwrap().fix.is_some(),
                "{id}"
            );
        }
        let egress = items
            .iter()
            .find(|i| i.id == "egress_private_ranges")
            .unwrap();
        assert!(egress.detail.contains("10.0.0.0/8") && !egress.detail.contains("93.184"));
        assert!(score(&items).2);
    }

    #[test]
    fn short_secrets_and_missing_credentials_fail_and_loopback_http_warns() {
        let mut config = Config::default();
        config.auth.jwt_secret = Some(warden_server::config::Hidden("x7Gq".into()));
        let items = assess(&config, &host(&[]), None);
        assert_eq!(status_of(&items, "jwt_secret"), Status::Fail);
        assert_eq!(status_of(&items, "tls"), Status::Warn);
        assert_eq!(status_of(&items, "audit"), Status::Warn);
        // No key and no JWT algorithm: nobody can use the API.
        assert_eq!(status_of(&items, "credentials"), Status::Fail);
        config.sandbox.allow_missing = vec!["landlock".into()];
        let items = assess(&config, &host(&[Layer::Landlock]), None);
        assert_eq!(status_of(&items, "isolation_layers"), Status::Warn);
    }
}
