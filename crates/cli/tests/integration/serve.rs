//! `warden serve`: real HTTP against a `warden serve` child on 127.0.0.1 (port 0), which is also
//! the sandbox's init binary. Keys come from `warden keys create`; JWTs are signed here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use crate::warden;

/// Test-only RSA key pair (generated with openssl for these tests).
const RSA_PRIVATE: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC9VwNK7n0aNes4
387BVDJFnFqi9Fe7nBag2Ir66LUYNy0hO9sVX1Aaa+8toYE49YvdOo72Pv0ggSFD
6C1iFXO77AgHWuluEev+hXcu3yedwGICvwjgh6yPojd9Y8BANtpMDbJN5WCLeEWs
lBmPwmlNTSd7zBzygHrHQwnaRO+XylLXAgmVnnP079HJxhFATXE2x/bflpIS0Yh8
5wQXRy3BQ2a8RButdrXlNp3uxoaexBFItsyNi8lWAnfIUIdeQ49Bcjmf1HPNSiL3
qxGq9Tyf1b+XH2YA3WawLlmalf3PSFlNSnV3zlEyJZkOMhv6J2GyaOcD61qajmqy
gGXavAtnAgMBAAECggEAJ6nvvaXCPVhoQ0zXQjbCJUUA07w+GMY1E1LponBXZ5A/
ewPP/GUwIajUvQllSapet2SKCFnfqwyCDHi58R8vVIG4mNnZpr5IYtRQyFflM63W
ml6snGSvqJNB7pmT75/OETqZTKotlGoIpoOL60q9xnzQNaXntoFltxJ7IOdqDbDv
D9ExDLilhoVd0STBJZMv4kezWglpda+vpqIKh9ZLlVTQ7kDZsPvNxsnYZx8qYFgS
9a92paSCgQBmrn1PHP76rJl2A7QeNin31ioBNBHxtlLLwKiK6kYUnw8rNWBufFqg
IgNvyR3y4VhYeWf50CskPkSSZtcdpVljxyfULYGkOQKBgQDxlGPVActf5nkx4yp3
HaNJtPJYbtUh9iqsvp0YhLfAuugWt7eh9lq19aHPfsEoJGGY+JO5umNJ4S11Z8VT
dvisaBp0pb1GRrTQxThD2YzWXpJzJ3Z5XgNHgzWNuL3H8Z3Z2+NyRwjAuJURW7L7
CMxIriTDVucV60wjeA7MBLYK/QKBgQDIpFclO5zi9OtiOg9DDKMBDI4BAvfu0Gvo
9TV6/Hn+NvYJpNuv/7EMBsjmzzOaff5jPy3mquWqXxeCWefdi4yaZVusfaPn4Avu
tvRfbaoAoCo3p8McurOBqithO1Yr0b+r3bXRJrUeOKa92g5xXPdxOfQO4IvgW13t
yesiNiG3MwKBgGnr9UXM7p4S0KrV/qWRoinMI8IwflTQuW9aeEjq0CK6EM79KI/k
E2va0mLHIev237ARtbvmhGg9ShBDOprY/Dmjv43Lqcypbdhn0L63IXBQsQe6ktCu
LuPpHM8R5GxJfTurlPNjP+w4QmwE99nnxqJLcKURcmsC6zRWDK7ZlfQFAoGAH2YY
fSsnEh1h+K09VjDUEYX1cxMT2bukJ4C4Ldb1AGN5fWjfOFu7STaGmhgy6ypsdPue
I0r7Rf47n5qSPoloJ4FVJ1lCHTdipqja9VQkFpT6BluqnQRasx/+SekPQyw/4pV/
rotwLJqQ/YTyXas+zelT2EAro6Cowl2m/mOaQyECgYAkMfog+jWoV3xm3URh6hrp
GPEFFKo3jz58ut55EUICtmUGFK4ovr3puvsUMIGsOjodBRJ3T6YyMsMt4yKr9zKO
fR5FW1uyWFSJRrFU9CFQgeCwBseIn53TQB1+9Sh5sC9VDvptkQ8Zi7tmJ2h/RxnM
+qSVITuqFXRPmPwKyVyiUg==
-----END PRIVATE KEY-----
";
const RSA_PUBLIC: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvVcDSu59GjXrON/OwVQy
RZxaovRXu5wWoNiK+ui1GDctITvbFV9QGmvvLaGBOPWL3TqO9j79IIEhQ+gtYhVz
u+wIB1rpbhHr/oV3Lt8nncBiAr8I4Iesj6I3fWPAQDbaTA2yTeVgi3hFrJQZj8Jp
TU0ne8wc8oB6x0MJ2kTvl8pS1wIJlZ5z9O/RycYRQE1xNsf235aSEtGIfOcEF0ct
wUNmvEQbrXa15Tad7saGnsQRSLbMjYvJVgJ3yFCHXkOPQXI5n9RzzUoi96sRqvU8
n9W/lx9mAN1msC5ZmpX9z0hZTUp1d85RMiWZDjIb+idhsmjnA+tamo5qsoBl2rwL
ZwIDAQAB
-----END PUBLIC KEY-----
";

const HS_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A `warden serve` child process with its own data directory.
pub(crate) struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    stdout_log: PathBuf,
}

impl Server {
    /// Starts `warden serve` with `listen = 127.0.0.1:0`, a fresh data dir and `extra` TOML
    /// (which may use `{dir}` for the temp dir), and waits for its `listening on` line.
    pub(crate) fn start(extra: &str) -> Server {
        Server::start_with(extra, &[])
    }

    fn start_with(extra: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), extra);
        let stdout_log = dir.path().join("stdout.log");
        let mut child = warden()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(std::fs::File::create(&stdout_log).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("warden serve exited before listening; stderr:\n{seen}");
            };
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_string();
            }
            seen.push_str(&line);
            seen.push('\n');
        };
        std::thread::spawn(move || for _ in lines {});
        let server = Server {
            child,
            base,
            dir,
            config,
            stdout_log,
        };
        server.wait_ready();
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Polls `/readyz` until the sandbox self-test has run (a wait, not a timing assertion).
    fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(r) = client().get(self.url("/readyz")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server never became ready");
    }

    /// `warden keys create` against this server's store.
    pub(crate) fn key(&self, scopes: &str, extra: &[&str]) -> String {
        let out = warden()
            .args(["keys", "create", "--config"])
            .arg(&self.config)
            .args(["--name", "test", "--scope", scopes])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = warden()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Response {
        client()
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    fn get(&self, path: &str, token: &str) -> Response {
        client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// The value of the metric line starting with `prefix` (0 when absent).
    fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn audit_tail(&self) -> Vec<Value> {
        let (code, out, err) = self.cli(&["audit", "tail", "-n", "1000"]);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("warden.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}",
        dir.join("data").display(),
        extra.replace("{dir}", &dir.display().to_string())
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .unwrap()
}

fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })),
    )
}

/// Asserts a problem+json response of `status` and `type` slug; returns the body.
fn problem(response: Response, status: u16, slug: &str) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (got, body) = json_of(response);
    assert_eq!(got, status, "{body}");
    assert_eq!(body["type"], format!("urn:warden:problem:{slug}"), "{body}");
    assert_eq!(body["status"], status);
    body
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn python(code: &str) -> Value {
    json!({"language": "python", "code": code})
}

#[test]
fn executions_run_python_and_records_are_private_to_their_owner() {
    let server = Server::start("");
    let alice = server.key("execute", &[]);
    let bob = server.key("execute", &[]);
    let admin = server.key("admin", &[]);

    let (status, outcome) = json_of(server.post(
        "/v1/executions",
        &alice,
        json!({"language": "python", "code": "import sys\nprint(sum(range(10)), sys.stdin.read())", "stdin": "hi",
               "files": [{"path": "data.txt", "content_base64": "aGVsbG8="}]}),
    ));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["stdout"], "45 hi\n");
    assert_eq!(outcome["exit_code"], 0);
    assert_eq!(outcome["seccomp_violations"], json!([]));
    let id = outcome["id"].as_str().unwrap().to_string();

    let (status, outcome) = json_of(server.post(
        "/v1/executions",
        &alice,
        json!({"language": "sh", "code": "cat data.txt; exit 3", "files": [{"path": "data.txt", "content_base64": "aGVsbG8="}]}),
    ));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        (outcome["stdout"].as_str(), outcome["exit_code"].as_i64()),
        (Some("hello"), Some(3))
    );

    let (status, record) = json_of(server.get(&format!("/v1/executions/{id}"), &alice));
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["result"]["stdout"], "45 hi\n");
    assert_eq!(record["language"], "python");
    problem(
        server.get(&format!("/v1/executions/{id}"), &bob),
        404,
        "not-found",
    );
    let (status, record) = json_of(server.get(&format!("/v1/executions/{id}"), &admin));
    assert_eq!((status, record["id"].as_str()), (200, Some(id.as_str())));
}

#[test]
fn timeouts_and_oom_kills_come_back_as_outcomes() {
    let server = Server::start("[sandbox]\nmax_timeout_s = 2\n");
    let key = server.key("execute", &[]);
    let (status, outcome) = json_of(server.post(
        "/v1/executions",
        &key,
        json!({"language": "python", "code": "import time\ntime.sleep(30)", "timeout_s": 600}),
    ));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["timed_out"], true);
    assert_eq!(
        outcome["limits"]["timeout_s"], 2.0,
        "capped at the server maximum"
    );

    let (status, outcome) = json_of(server.post(
        "/v1/executions",
        &key,
        json!({"language": "python", "code": "b = []\nwhile True: b.append(bytearray(16 << 20))", "memory_mb": 64}),
    ));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["oom_killed"], true, "{outcome}");
    assert_eq!(outcome["signal"], 9);
    assert!(
        server.metric("warden_executions_total{language=\"python\",outcome=\"timeout\"}") >= 1.0
    );
    assert!(server.metric("warden_executions_total{language=\"python\",outcome=\"oom\"}") >= 1.0);
}

#[test]
fn bad_requests_are_problems_naming_the_field() {
    let server = Server::start("");
    let key = server.key("execute", &[]);
    let body = problem(
        client()
            .post(server.url("/v1/executions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{\"language\": ")
            .send()
            .unwrap(),
        400,
        "bad-request",
    );
    assert!(body["detail"].as_str().unwrap().contains("JSON"), "{body}");
    let body = problem(
        server.post("/v1/executions", &key, json!({"language": 1, "code": "x"})),
        422,
        "invalid-body",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("language"),
        "{body}"
    );
    let body = problem(
        server.post(
            "/v1/executions",
            &key,
            json!({"language": "python", "code": "", "timeout_s": "soon"}),
        ),
        422,
        "invalid-body",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("timeout_s"),
        "{body}"
    );
    let body = problem(
        server.post(
            "/v1/executions",
            &key,
            json!({"language": "cobol", "code": ""}),
        ),
        400,
        "bad-request",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("python"),
        "{body}"
    );
    let body = problem(
        server.post("/v1/executions", &key, json!({"language": "python", "code": "", "files": [{"path": "../x", "content_base64": ""}]})),
        422,
        "invalid-body",
    );
    assert_eq!(body["field"], "files[0].path");
    // The proxy network mode needs domains: nothing is reachable by default.
    let body = problem(
        server.post(
            "/v1/executions",
            &key,
            json!({"language": "python", "code": "", "network": {"mode": "proxy"}}),
        ),
        400,
        "bad-request",
    );
    assert_eq!(body["field"], "network.allow_domains", "{body}");
}

#[test]
fn execution_with_network_proxy_reaches_only_what_the_policy_allows() {
    let port = upstream("hello through the proxy");
    let server = Server::start(&format!(
        "[egress]\nallow_cidrs = [\"127.0.0.1/32\"]\nports = [80, {port}]\n"
    ));
    let key = server.key("execute", &[]);
    let code = format!(
        r#"
import urllib.request, urllib.error, socket
for url in ["http://127.0.0.1:{port}/x", "http://127.0.0.2:{port}/", "http://other.example/"]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.headers.get("X-Warden-Deny-Reason", "").split(":")[0])
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5)
    print("direct connected")
except OSError as e:
    print("direct", type(e).__name__)
"#
    );
    let (status, outcome) = json_of(server.post(
        "/v1/executions",
        &key,
        json!({"language": "python", "code": code, "network": {"mode": "proxy", "allow_domains": ["example.com"]}}),
    ));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        outcome["stdout"],
        "200 hello through the proxy\n403 address\n403 domain_not_allowed\ndirect PermissionError\n",
        "{outcome}"
    );
    let decisions: Vec<&str> = outcome["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny"], "{outcome}");
    // A domain outside the server's policy cannot be asked for.
    let body = problem(
        server.post(
            "/v1/executions",
            &key,
            json!({"language": "python", "code": "", "network": {"mode": "proxy", "allow_domains": ["localhost"]}}),
        ),
        400,
        "bad-request",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("outside"),
        "{body}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("warden_egress_decisions_total{decision=\"deny\",rule=\"address\"} 1"),
        "{metrics}"
    );
}

#[test]
fn api_key_failures_are_401_with_a_generic_body_and_audited_with_the_reason() {
    let server = Server::start("");
    let good = server.key("execute", &[]);
    let revoked = server.key("execute", &[]);
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    let (code, _, err) = server.cli(&["keys", "revoke", &revoked_id]);
    assert_eq!(code, 0, "{err}");
    let expired = server.key("execute", &["--expires", "1s"]);
    let fetch_only = server.key("fetch", &[]);
    let (_, listing, _) = server.cli(&["keys", "list"]);
    assert!(
        listing.contains("revoked") && listing.contains("active"),
        "{listing}"
    );
    assert!(
        !listing.contains(good.splitn(3, '_').nth(2).unwrap()),
        "keys list shows a secret"
    );

    let mut wrong_secret = good.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'A' { 'B' } else { 'A' });
    // Wait out the 1 s lifetime of the expiring key (a wait, not a timing assertion).
    std::thread::sleep(Duration::from_millis(2100));

    let cases: Vec<(Option<(&str, String)>, &str)> = vec![
        (None, "missing"),
        (
            Some(("authorization", "Basic dXNlcjpwYXNz".into())),
            "malformed",
        ),
        (
            Some(("authorization", "Bearer not-a-token".into())),
            "malformed",
        ),
        (
            Some((
                "authorization",
                format!("Bearer wdn_{}_{}", "0".repeat(16), "A".repeat(43)),
            )),
            "unknown_key",
        ),
        (
            Some(("authorization", format!("Bearer {wrong_secret}"))),
            "unknown_key",
        ),
        (
            Some(("authorization", format!("Bearer {revoked}"))),
            "revoked",
        ),
        (Some(("x-api-key", expired.clone())), "expired"),
    ];
    let mut bodies = Vec::new();
    for (header, reason) in &cases {
        let mut request = client()
            .post(server.url("/v1/executions"))
            .json(&python("print(1)"));
        if let Some((name, value)) = header {
            request = request.header(*name, value);
        }
        let response = request.send().unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{reason}");
        let body = problem(response, 401, "unauthorized");
        bodies.push(body.to_string());
        assert!(
            server.metric(&format!(
                "warden_auth_failures_total{{reason=\"{reason}\"}}"
            )) >= 1.0,
            "{reason}"
        );
    }
    // One generic body for every failure: nothing tells an attacker which check failed.
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "{bodies:?}");

    // Valid key without the scope: 403, also counted and audited.
    problem(
        server.post("/v1/executions", &fetch_only, python("print(1)")),
        403,
        "insufficient-scope",
    );
    assert!(server.metric("warden_auth_failures_total{reason=\"insufficient_scope\"}") >= 1.0);
    // X-API-Key works for a good key.
    let response = client()
        .post(server.url("/v1/executions"))
        .header("x-api-key", &good)
        .json(&python("print(1)"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.metric("warden_auth_attempts_total{method=\"api_key\"}") >= 1.0);

    let events = server.audit_tail();
    for (_, reason) in &cases {
        assert!(
            events.iter().any(|e| e["action"] == "auth"
                && e["decision"] == "deny"
                && e["reason"] == *reason),
            "no audit event for {reason}"
        );
    }
    assert!(events
        .iter()
        .any(|e| e["action"] == "scope" && e["reason"] == "insufficient_scope"));
    assert!(events.iter().any(|e| e["action"] == "key.revoke"));
    assert!(events
        .iter()
        .any(|e| e["action"] == "execution" && e["decision"] == "allow"));
    // The credentials themselves never reach the audit log.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(good.splitn(3, '_').nth(2).unwrap()));
}

fn hs_token(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A request that needs only a valid credential with `execute`: 404 when authenticated.
fn authenticated(server: &Server, token: &str) -> u16 {
    server.get("/v1/executions/none", token).status().as_u16()
}

#[test]
fn jwt_hs256_checks_exp_nbf_iss_aud_and_rejects_none_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt-secret");
    std::fs::write(&secret, HS_SECRET).unwrap();
    let server = Server::start(&format!(
        "[auth]\njwt_algorithm = \"HS256\"\njwt_secret_file = \"{}\"\njwt_issuer = \"https://auth.test/\"\njwt_audience = \"warden\"\njwt_leeway_s = 5\n",
        secret.display()
    ));
    let claims = |extra: Value| {
        let mut c = json!({"sub": "agent-7", "iss": "https://auth.test/", "aud": "warden", "exp": now() + 300, "scope": "execute fetch"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let good = hs_token(claims(json!({})));
    assert_eq!(authenticated(&server, &good), 404);
    let (status, outcome) = json_of(server.post("/v1/executions", &good, python("print('jwt')")));
    assert_eq!(
        (status, outcome["stdout"].as_str()),
        (200, Some("jwt\n")),
        "{outcome}"
    );
    let (_, array_scope) = (0, hs_token(claims(json!({"scope": ["execute"]}))));
    assert_eq!(authenticated(&server, &array_scope), 404);

    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        (hs_token(claims(json!({"exp": now() - 600}))), "expired"),
        (hs_token(claims(json!({"nbf": now() + 600}))), "bad_claims"),
        (
            hs_token(claims(json!({"aud": "someone-else"}))),
            "bad_claims",
        ),
        (
            hs_token(claims(json!({"iss": "https://evil.test/"}))),
            "bad_claims",
        ),
        (
            hs_token(json!({"sub": "a", "iss": "https://auth.test/", "aud": "warden"})),
            "bad_claims",
        ),
        (
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "typ": "JWT"})),
                b64(claims(json!({"scope": "admin"})))
            ),
            "malformed",
        ),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                b64(claims(json!({"scope": "admin execute"}))),
                parts[2]
            ),
            "bad_signature",
        ),
    ];
    for (token, reason) in &cases {
        assert_eq!(authenticated(&server, token), 401, "{reason}: {token}");
        assert!(
            server.metric(&format!(
                "warden_auth_failures_total{{reason=\"{reason}\"}}"
            )) >= 1.0,
            "{reason}"
        );
    }
    assert!(server.metric("warden_auth_attempts_total{method=\"jwt\"}") >= 1.0);
    let events = server.audit_tail();
    assert!(events
        .iter()
        .any(|e| e["principal"] == "jwt:agent-7" && e["action"] == "execution"));
}

#[test]
fn jwt_rs256_rejects_hs256_signed_with_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("k1.pem");
    std::fs::write(&public, RSA_PUBLIC).unwrap();
    let server = Server::start(&format!(
        "[auth]\njwt_algorithm = \"RS256\"\njwt_public_keys = [{{ kid = \"k1\", file = \"{}\" }}]\n",
        public.display()
    ));
    let claims = json!({"sub": "svc", "exp": now() + 300, "scope": "execute"});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let good = encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(authenticated(&server, &good), 404);

    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert_eq!(authenticated(&server, &confused), 401);
    assert!(server.metric("warden_auth_failures_total{reason=\"algorithm\"}") >= 1.0);
    let events = server.audit_tail();
    assert!(events
        .iter()
        .any(|e| e["action"] == "auth" && e["reason"] == "algorithm"));
}

#[test]
fn a_burst_beyond_the_principal_rate_limit_gets_429_with_retry_after() {
    // The client limiter refills every 10 ms; requests 50 ms apart only meet the principal's.
    let server = Server::start(
        "[rate_limit]\nper_principal_per_minute = 1\nper_client_per_minute = 6000\nburst = 3\n",
    );
    let key = server.key("execute", &[]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(50));
        let response = server.get("/v1/executions/none", &key);
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            problem(response, 429, "rate-limited");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429, 429]);
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert_eq!(
        server.metric("warden_rate_limit_hits_total{limiter=\"principal\"}"),
        3.0
    );
    // Another principal is not affected.
    let other = server.key("execute", &[]);
    assert_eq!(server.get("/v1/executions/none", &other).status(), 404);
    let audited = server
        .audit_tail()
        .iter()
        .filter(|e| e["action"] == "rate_limit" && e["reason"] == "principal rate limit")
        .count();
    assert_eq!(audited, 1, "three denials in a minute, one audit event");
}

#[test]
fn the_client_rate_limit_applies_before_authentication() {
    let server = Server::start(
        "[rate_limit]\nper_principal_per_minute = 1000\nper_client_per_minute = 1\nburst = 2\n",
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            server
                .get("/v1/executions/none", "wdn_guess")
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(
        statuses,
        [401, 401, 429, 429],
        "credential guessing is throttled too"
    );
    assert_eq!(
        server.metric("warden_rate_limit_hits_total{limiter=\"client\"}"),
        2.0
    );
    // Two denials, one audit event (review, session 5: every 429 wrote a chained row).
    let audited = server
        .audit_tail()
        .iter()
        .filter(|e| e["action"] == "rate_limit" && e["reason"] == "client rate limit")
        .count();
    assert_eq!(audited, 1);
    // Health checks are not rate limited.
    for _ in 0..5 {
        assert_eq!(
            client()
                .get(server.url("/healthz"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
}

/// Review (session 5): behind a TLS proxy every client had the proxy's address, so one
/// client could use up everyone's allowance. With `trusted_proxies`, the client is the address
/// the proxy forwarded; without it, `X-Forwarded-For` is ignored.
#[test]
fn clients_behind_a_trusted_proxy_are_limited_one_by_one() {
    let limits =
        "[rate_limit]\nper_principal_per_minute = 1000\nper_client_per_minute = 1\nburst = 1\n";
    let guess = |server: &Server, forwarded: &str| {
        client()
            .get(server.url("/v1/executions/none"))
            .bearer_auth("wdn_guess")
            .header("x-forwarded-for", forwarded)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let server = Server::start(&format!("trusted_proxies = [\"127.0.0.1\"]\n{limits}"));
    assert_eq!(guess(&server, "192.0.2.1"), 401);
    assert_eq!(guess(&server, "192.0.2.1"), 429);
    assert_eq!(guess(&server, "6.6.6.6, 192.0.2.2"), 401, "another client");
    let events = server.audit_tail();
    assert!(
        events.iter().any(|e| e["client"] == "192.0.2.2:0"),
        "{events:?}"
    );

    let server = Server::start(limits);
    assert_eq!(guess(&server, "192.0.2.1"), 401);
    assert_eq!(
        guess(&server, "192.0.2.2"),
        429,
        "the header is not trusted"
    );
}

#[test]
fn full_queue_gets_503_and_lockdown_kills_running_sandboxes() {
    let server = Server::start("[sandbox]\nmax_concurrent = 1\nqueue_depth = 0\n");
    let key = server.key("execute,fetch,admin", &[]);
    let user = server.key("execute", &[]);
    let base = server.base.clone();
    let sleeper_key = key.clone();
    let sleeper = std::thread::spawn(move || {
        let response = client()
            .post(format!("{base}/v1/executions"))
            .bearer_auth(&sleeper_key)
            .json(&json!({"language": "python", "code": "import time\ntime.sleep(50)", "timeout_s": 55}))
            .send()
            .unwrap();
        json_of(response)
    });
    // Wait until the sleeper holds the only sandbox.
    let mut running = false;
    for _ in 0..400 {
        if server.metric("warden_sandboxes_running") >= 1.0 {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(running, "the sleeper never started");

    let response = server.post("/v1/executions", &user, python("print(1)"));
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    problem(response, 503, "queue-full");
    assert!(server.metric("warden_queue_rejections_total") >= 1.0);

    // Only admin may switch lockdown.
    problem(
        server.post("/v1/admin/lockdown", &user, json!({"enabled": true})),
        403,
        "insufficient-scope",
    );
    let (status, result) =
        json_of(server.post("/v1/admin/lockdown", &key, json!({"enabled": true})));
    assert_eq!(
        (status, result["cancelled"].as_u64()),
        (200, Some(1)),
        "{result}"
    );
    let (status, outcome) = sleeper.join().unwrap();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["cancelled"], true, "{outcome}");
    assert_eq!(outcome["signal"], 9);
    assert_eq!(outcome["timed_out"], false);
    assert_eq!(server.metric("warden_lockdown_enabled"), 1.0);

    problem(
        server.post("/v1/executions", &key, python("print(1)")),
        503,
        "lockdown",
    );
    problem(
        server.post("/v1/fetch", &key, json!({"url": "http://127.0.0.1/"})),
        503,
        "lockdown",
    );
    let (status, _) = json_of(server.post("/v1/admin/lockdown", &key, json!({"enabled": false})));
    assert_eq!(status, 200);
    let (status, outcome) = json_of(server.post("/v1/executions", &key, python("print(2)")));
    assert_eq!((status, outcome["stdout"].as_str()), (200, Some("2\n")));
    let events = server.audit_tail();
    assert!(events
        .iter()
        .any(|e| e["action"] == "lockdown" && e["reason"] == "enabled"));
    assert!(events
        .iter()
        .any(|e| e["action"] == "execution" && e["reason"] == "queue full"));
}

/// A client that gives up on a running execution (closes its connection) stops the sandbox;
/// the execution is still recorded, as cancelled, and the running gauge returns to 0.
#[test]
fn a_client_that_disconnects_stops_its_sandbox() {
    let marker = "sleep 4949.4949";
    let server = Server::start("");
    let key = server.key("execute", &[]);
    let impatient = Client::builder()
        .timeout(Duration::from_millis(1500))
        .no_proxy()
        .build()
        .unwrap();
    let url = server.url("/v1/executions");
    let body = json!({"language": "sh", "code": marker, "timeout_s": 60});
    let gave_up = std::thread::spawn(move || {
        impatient
            .post(url)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .map(|r| r.status().as_u16())
    });
    let mut started = false;
    for _ in 0..400 {
        if !crate::host_processes_with(marker).is_empty() {
            started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(started, "the sandbox never started");
    let answer = gave_up.join().unwrap();
    assert!(answer.as_ref().is_err_and(|e| e.is_timeout()), "{answer:?}");
    let mut gone = false;
    for _ in 0..200 {
        if crate::host_processes_with(marker).is_empty()
            && server.metric("warden_sandboxes_running") == 0.0
        {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        gone,
        "the sandbox outlived its client, or the gauge did not return to 0"
    );
    let events = server.audit_tail();
    crate::assert_recorded_as_cancelled(&events);
}

#[test]
fn body_limit_cors_security_headers_request_ids_and_openapi() {
    let server = Server::start_with(
        "max_body_bytes = 4096\n[cors]\nallowed_origins = [\"https://app.example\"]\n",
        &["--log-format", "json"],
    );
    let key = server.key("execute", &[]);

    let big = "x".repeat(8192);
    problem(
        server.post("/v1/executions", &key, python(&big)),
        413,
        "payload-too-large",
    );

    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, server.url("/v1/executions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .unwrap()
    };
    let listed = preflight("https://app.example");
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let unlisted = preflight("https://evil.example");
    assert!(unlisted
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let responses = [
        client().get(server.url("/healthz")).send().unwrap(),
        client().get(server.url("/no-such-route")).send().unwrap(),
        client().post(server.url("/v1/executions")).send().unwrap(),
        server.post("/v1/executions", &key, python("print(1)")),
    ];
    for response in &responses {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
        assert!(h.contains_key("x-request-id"));
    }
    assert_eq!(responses[1].status(), 404);
    assert_eq!(
        responses[1].headers()["content-type"],
        "application/problem+json"
    );

    // A client's request id is echoed, and carried by the JSON log lines and the audit event.
    let response = client()
        .post(server.url("/v1/executions"))
        .header("x-request-id", "it-req-12345")
        .json(&python("print(1)"))
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "it-req-12345");
    assert!(server
        .audit_tail()
        .iter()
        .any(|e| e["request_id"] == "it-req-12345"));
    let logs = std::fs::read_to_string(&server.stdout_log).unwrap();
    let tagged: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.to_string().contains("it-req-12345"))
        .collect();
    assert!(tagged.len() >= 2, "{logs}");
    assert!(
        tagged
            .iter()
            .all(|l| l["span"]["request_id"] == "it-req-12345"),
        "{tagged:?}"
    );

    let (status, doc) = json_of(client().get(server.url("/openapi.json")).send().unwrap());
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/executions",
        "/v1/executions/{id}",
        "/v1/fetch",
        "/v1/admin/lockdown",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(
        server
            .metric("warden_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}")
            >= 1.0
    );
}

/// Review (session 5): without credentials, a client grew `/metrics` (a label per made-up
/// method) and the audit chain (the raw path of each failed authentication) without bound.
#[test]
fn unauthenticated_requests_cannot_grow_metrics_or_audit_rows() {
    let server = Server::start("");
    for i in 0..5 {
        let method =
            reqwest::Method::from_bytes(format!("M{i}{}", "X".repeat(2000)).as_bytes()).unwrap();
        let status = client()
            .request(method, server.url("/healthz"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 405);
    }
    let metrics = server.metrics();
    assert!(!metrics.contains("XXXX"), "a made-up method became a label");
    assert!(
        server.metric(
            "warden_http_requests_total{route=\"/healthz\",method=\"OTHER\",status=\"405\"}"
        ) >= 5.0,
        "{metrics}"
    );
    let long = format!("/v1/executions/{}", "A".repeat(8000));
    assert_eq!(server.get(&long, "wdn_guess").status(), 401);
    let events = server.audit_tail();
    let auth = events
        .iter()
        .rfind(|e| e["action"] == "auth")
        .expect("the failure is audited");
    let details: Value = serde_json::from_str(auth["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["route"], "/v1/executions/{id}", "{auth}");
    assert!(auth.to_string().len() < 2000, "{auth}");
}

/// A one-thread HTTP server on 127.0.0.1:0 that answers every request with `body`.
fn upstream(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Upstream: yes\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn fetch_goes_through_the_egress_policy() {
    let port = upstream("hello from upstream");
    let server = Server::start(&format!(
        "[egress]\nallow_cidrs = [\"127.0.0.1/32\"]\nports = [80, {port}]\n"
    ));
    let key = server.key("fetch", &[]);
    let (status, result) = json_of(server.post(
        "/v1/fetch",
        &key,
        json!({"url": format!("http://127.0.0.1:{port}/x")}),
    ));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], 200);
    let body = base64::engine::general_purpose::STANDARD
        .decode(result["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, b"hello from upstream");
    assert_eq!(result["connected_address"], format!("127.0.0.1:{port}"));
    assert!(result["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "x-upstream"));

    let body = problem(
        server.post(
            "/v1/fetch",
            &key,
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
        ),
        403,
        "egress-denied",
    );
    assert_eq!(body["rule"], "address");
    assert!(
        body["detail"].as_str().unwrap().contains("169.254.0.0/16"),
        "{body}"
    );
    // Loopback beyond the one allowed address, and other ports, stay denied.
    let body = problem(
        server.post("/v1/fetch", &key, json!({"url": "http://127.0.0.2:80/"})),
        403,
        "egress-denied",
    );
    assert_eq!(body["rule"], "address");
    let body = problem(
        server.post(
            "/v1/fetch",
            &key,
            json!({"url": format!("http://127.0.0.1:{}/", port.wrapping_add(1))}),
        ),
        403,
        "egress-denied",
    );
    assert_eq!(body["rule"], "port");

    assert!(server.metric("warden_egress_decisions_total{decision=\"allow\"") >= 1.0);
    assert!(
        server.metric("warden_egress_decisions_total{decision=\"deny\",rule=\"address\"}") >= 2.0
    );
    let events = server.audit_tail();
    assert!(events
        .iter()
        .any(|e| e["action"] == "fetch" && e["decision"] == "deny"));
    assert!(events
        .iter()
        .any(|e| e["action"] == "fetch" && e["decision"] == "allow"));
}

/// Review (session 5): fetch URLs went into the audit chain verbatim, passwords and tokens
/// included, where they cannot be redacted later without breaking `audit verify`.
#[test]
fn fetch_audit_events_keep_no_credentials_or_query_values() {
    let port = upstream("ok");
    let server = Server::start(&format!(
        "[egress]\nallow_cidrs = [\"127.0.0.1/32\"]\nports = [80, {port}]\n"
    ));
    let key = server.key("fetch", &[]);
    let secrets = ["Sup3rSecret", "tok_live_abc123", "sig_zzz"];
    let urls = [
        // Denied (userinfo), allowed, and failing (nothing listens on port 80 here).
        "http://svc:Sup3rSecret@127.0.0.1/data?access_token=tok_live_abc123".to_string(),
        format!("http://127.0.0.1:{port}/x?access_token=tok_live_abc123#sig_zzz"),
        "http://127.0.0.1:80/x?signature=sig_zzz".to_string(),
    ];
    for url in &urls {
        let status = server.post("/v1/fetch", &key, json!({"url": url})).status();
        assert!(
            [200, 403, 502].contains(&status.as_u16()),
            "{url}: {status}"
        );
    }
    let events: Vec<Value> = server
        .audit_tail()
        .into_iter()
        .filter(|e| e["action"] == "fetch")
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        let text = event.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // A URL longer than 8 KiB is refused before anything (its host would reach the audit
    // log whole through the denial message).
    let long = format!("http://{}.com/", "a".repeat(9000));
    let body = problem(
        server.post("/v1/fetch", &key, json!({"url": long})),
        422,
        "invalid-body",
    );
    assert_eq!(body["field"], "url");
    let all = events.iter().map(Value::to_string).collect::<String>();
    assert!(all.contains("?***"), "{all}");
    assert!(all.contains("***@127.0.0.1"), "{all}");
}

/// Review (session 5): `--expires 8000y` was stored, and every later `keys list` panicked
/// formatting a date past the year 9999; `--expires 0s` made a key that was expired at once.
#[test]
fn key_expiries_must_be_writable_dates_in_the_future() {
    let server = Server::start("");
    for (expires, says) in [("8000y", "9999"), ("0s", "at least 1s")] {
        let (code, _, err) = server.cli(&[
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "fetch",
            "--expires",
            expires,
        ]);
        assert_ne!(code, 0, "--expires {expires} accepted");
        assert!(err.contains("--expires") && err.contains(says), "{err}");
    }
    let (code, _, err) = server.cli(&[
        "keys",
        "create",
        "--name",
        "far",
        "--scope",
        "fetch",
        "--expires",
        "7000y",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.cli(&["keys", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("far"), "{out}");
}

#[test]
fn audit_verify_passes_then_detects_an_edited_and_a_deleted_event() {
    let mut server = Server::start("");
    let key = server.key("execute", &[]);
    for _ in 0..3 {
        assert_eq!(server.get("/v1/executions/none", &key).status(), 404);
        assert_eq!(server.get("/v1/executions/none", "wdn_bogus").status(), 401);
    }
    server.stop();
    let (code, out, err) = server.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact"), "{out}");

    let db = server.dir.path().join("data").join("warden.db");
    let sql = |statement: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::ConnectOptions;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .connect()
                .await
                .unwrap();
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        });
    };
    sql("UPDATE audit_events SET decision = 'allow' WHERE seq = 3");
    let (code, out, _) = server.cli(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("event 3") && out.contains("edited"), "{out}");

    sql("UPDATE audit_events SET decision = 'deny' WHERE seq = 3");
    let (code, _, _) = server.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "restoring the row restores the chain");
    sql("DELETE FROM audit_events WHERE seq = 4");
    let (code, out, _) = server.cli(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("event 5") && out.contains("missing"), "{out}");
}

#[test]
fn sigterm_shuts_down_gracefully_and_cancels_what_outlives_the_grace_period() {
    let mut server = Server::start("shutdown_grace_s = 1\n");
    let key = server.key("execute", &[]);
    let base = server.base.clone();
    let sleeper = std::thread::spawn(move || {
        json_of(
            client()
                .post(format!("{base}/v1/executions"))
                .bearer_auth(&key)
                .json(&json!({"language": "python", "code": "import time\ntime.sleep(50)", "timeout_s": 55}))
                .send()
                .unwrap(),
        )
    });
    let mut running = false;
    for _ in 0..400 {
        if server.metric("warden_sandboxes_running") >= 1.0 {
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(running, "the sleeper never started");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The running execution still gets its answer: cancelled after the grace period.
    let (status, outcome) = sleeper.join().unwrap();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["cancelled"], true, "{outcome}");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let events = server.audit_tail();
    assert!(
        events.iter().any(|e| e["action"] == "server.stop"),
        "the store was flushed on the way out"
    );
    crate::assert_recorded_as_cancelled(&events);
    let (code, out, _) = server.cli(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn unsafe_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &str| {
        let config = write_config(dir.path(), extra);
        let out = warden()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("[cors]\nallowed_origins = [\"*\"]\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("`*` is refused"), "{err}");
    let short = dir.path().join("short");
    std::fs::write(&short, "short").unwrap();
    let (code, err) = run(&format!(
        "[auth]\njwt_algorithm = \"HS256\"\njwt_secret_file = \"{}\"\n",
        short.display()
    ));
    assert_eq!(code, Some(1));
    assert!(err.contains("at least 32"), "{err}");
    // Beyond loopback: plain HTTP refused; behind a stated TLS proxy, still no start without
    // any credential.
    std::fs::write(
        dir.path().join("w.toml"),
        format!(
            "[server]\nlisten = \"0.0.0.0:0\"\ndata_dir = \"{}\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let out = warden()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("w.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("behind_tls_proxy"));
    std::fs::write(
        dir.path().join("w.toml"),
        format!(
            "[server]\nlisten = \"0.0.0.0:0\"\nbehind_tls_proxy = true\ndata_dir = \"{}\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let out = warden()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("w.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials configured"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_generate_writes_a_private_env_file_that_serve_can_use() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let out = warden()
        .args(["secrets", "generate", "--output"])
        .arg(&env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = warden()
        .args(["secrets", "generate", "--output"])
        .arg(&env)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing file is not overwritten without --force"
    );
    let text = std::fs::read_to_string(&env).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("WARDEN_AUTH__JWT_SECRET="))
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 64);

    let server = Server::start_with("", &["--env-file", env.to_str().unwrap()]);
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "dev", "exp": now() + 60, "scope": "execute"}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(authenticated(&server, &token), 404);
    assert_eq!(
        authenticated(
            &server,
            &hs_token(json!({"sub": "dev", "exp": now() + 60, "scope": "execute"}))
        ),
        401
    );
}

#[test]
fn tls_serves_https_with_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "openssl could not make a test certificate"
    );
    let dir_text = dir.path().display().to_string();
    let child_config = format!(
        "[server.tls]\ncert_file = \"{dir_text}/tls.crt\"\nkey_file = \"{dir_text}/tls.key\"\n"
    );
    let dir2 = tempfile::tempdir().unwrap();
    let config = write_config(dir2.path(), &child_config);
    let mut child = warden()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        .expect("no listening line");
    std::thread::spawn(move || for _ in lines {});
    assert!(base.starts_with("https://"), "{base}");
    let pem = std::fs::read(&cert).unwrap();
    let https = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let response = https.get(format!("{base}/healthz")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = client()
        .get(base.replacen("https://", "http://", 1) + "/healthz")
        .send();
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    let _ = child.kill();
    let _ = child.wait();
}
