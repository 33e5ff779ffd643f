//! `warden proxy` and `warden run --network proxy`: the egress policy as a forward proxy, from
//! a client on the host and from inside a sandbox.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::egress::serve_once_each;
use crate::{run_json, warden};

const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

/// A `warden proxy` child on 127.0.0.1 port 0, and the address it reports.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(policy: &[&str]) -> Proxy {
        let mut child = warden()
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .args(policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(line.contains("listening on"), "{line}");
        Proxy { child, addr }
    }

    /// Sends `request` (raw HTTP) and returns everything the proxy answers until it closes.
    fn exchange(&self, request: &str) -> String {
        let mut conn = TcpStream::connect(&self.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Stops the proxy and returns its JSON log lines.
    fn stop(self) -> Vec<Value> {
        // SIGTERM: the proxy finishes in-flight connections and exits.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn proxy_forwards_allowed_requests_and_tunnels() {
    let port = serve_once_each(HELLO);
    let p = port.to_string();
    let proxy = Proxy::start(&[
        "--allow-cidr",
        "127.0.0.1/32",
        "--allow-port",
        &p,
        "--resolve",
        "app.test=127.0.0.1",
    ]);
    // Absolute-form HTTP, by name (resolved by the override, then judged).
    let answer = proxy.exchange(&format!(
        "GET http://app.test:{port}/x?token=hunter2 HTTP/1.1\r\nHost: app.test:{port}\r\nConnection: close\r\n\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    // CONNECT, then HTTP through the tunnel.
    let answer = proxy.exchange(&format!(
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    let logs = proxy.stop();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for log in &logs {
        assert_eq!(log["decision"], "allow", "{log}");
        assert_eq!(log["connected"], format!("127.0.0.1:{port}"), "{log}");
        assert!(log["bytes_down"].as_u64().unwrap() >= 5, "{log}");
    }
    assert_eq!(logs[0]["method"], "GET");
    // The query (here a token) is not logged.
    assert_eq!(
        logs[0]["requested"],
        format!("http://app.test:{port}/x?***")
    );
    assert_eq!(logs[1]["method"], "CONNECT");
    assert_eq!(logs[1]["requested"], format!("127.0.0.1:{port}"));
}

#[test]
fn proxy_denies_with_403_and_a_reason_header() {
    let port = serve_once_each(HELLO);
    let proxy = Proxy::start(&["--resolve", "internal.test=10.0.0.1"]);
    let denied = [
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"
            .to_string(),
        "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
        "CONNECT internal.test:443 HTTP/1.1\r\nHost: internal.test\r\n\r\n".to_string(),
        "CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
    ];
    for request in &denied {
        // Ask the proxy to close after answering, so the exchange ends with the answer.
        let request = request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
        let answer = proxy.exchange(&request);
        assert!(answer.starts_with("HTTP/1.1 403"), "{request}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-warden-deny-reason:"),
            "{answer}"
        );
    }
    let logs = proxy.stop();
    assert_eq!(logs.len(), denied.len(), "{logs:?}");
    for log in &logs {
        assert_eq!(log["decision"], "deny", "{log}");
        assert_eq!(log["connected"], Value::Null, "{log}");
        assert!(
            log["rule"].is_string() && log["reason"].is_string(),
            "{log}"
        );
    }
}

/// Review (session 5): with its stdout gone, the proxy panicked writing each log line, in the
/// connection's task, and every client got a reset instead of its answer.
#[test]
fn proxy_keeps_answering_when_its_log_cannot_be_written() {
    let mut proxy = Proxy::start(&[]);
    drop(proxy.child.stdout.take());
    for _ in 0..3 {
        let answer = proxy.exchange(
            "GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    let mut stderr = String::new();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status();
    proxy
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = proxy.child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status:?} {stderr}");
}

#[test]
fn proxy_takes_its_policy_from_a_config_file() {
    let port = serve_once_each(HELLO);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!("[egress]\nallow_cidrs = [\"127.0.0.1/32\"]\nports = [{port}]\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let proxy = Proxy::start(&["--config", &config]);
    let ok = proxy.exchange(&format!(
        "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let denied =
        proxy.exchange("GET http://127.0.0.2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert_eq!(proxy.stop().len(), 2);
}

#[test]
fn proxy_refuses_bad_flags() {
    let out = warden()
        .args(["proxy", "--listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// Python in a `--network proxy` sandbox: fetches `urls` with urllib (which honours
/// HTTP_PROXY), then tries a direct connection, and prints one line per attempt.
const FETCHER: &str = r#"
import sys, urllib.request, urllib.error, socket
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            print(url, r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(url, e.code, e.headers.get("X-Warden-Deny-Reason", "").split(":")[0])
    except Exception as e:
        print(url, "error", type(e).__name__)
port = int(sys.argv[1].rsplit(":", 1)[1].split("/")[0])
try:
    socket.create_connection(("127.0.0.1", port), timeout=5)
    print("direct connected")
except OSError as e:
    print("direct", type(e).__name__)
"#;

#[test]
fn sandbox_reaches_the_allowed_server_through_its_proxy_and_nothing_else() {
    let port = serve_once_each(HELLO);
    let p = port.to_string();
    let allowed = format!("http://app.test:{port}/");
    let other = format!("http://other.test:{port}/");
    let metadata = "http://169.254.169.254/latest/meta-data/".to_string();
    let run = run_json(
        &[
            "--network",
            "proxy",
            "--allow-domain",
            "app.test",
            "--resolve",
            "app.test=127.0.0.1",
            "--resolve",
            "other.test=127.0.0.1",
            "--allow-cidr",
            "127.0.0.1/32",
            "--allow-port",
            &p,
            "--allow-port",
            "80",
        ],
        &["python3", "-c", FETCHER, &allowed, &other, &metadata],
    );
    assert_eq!(run.exit_code(), Some(0), "{}", run.outcome);
    let lines: Vec<&str> = run.stdout().lines().collect();
    assert_eq!(
        lines,
        [
            format!("{allowed} 200 hello").as_str(),
            format!("{other} 403 domain_not_allowed").as_str(),
            format!("{metadata} 403 address").as_str(),
            // No route: landlock refuses TCP connect to anything but the proxy port.
            "direct PermissionError",
        ],
        "{}",
        run.outcome
    );
    let egress = run.outcome["egress"].as_array().unwrap();
    let decisions: Vec<(&str, &str)> = egress
        .iter()
        .map(|e| {
            (
                e["requested"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (allowed.as_str(), "allow"),
            (other.as_str(), "deny"),
            (metadata.as_str(), "deny")
        ],
        "{}",
        run.outcome
    );
    assert_eq!(egress[0]["connected"], format!("127.0.0.1:{port}"));
}

#[test]
fn network_proxy_needs_an_allow_list_and_policy_flags_need_the_proxy() {
    let out = warden()
        .args(["run", "--network", "proxy", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-domain"));
    let out = warden()
        .args(["run", "--allow-domain", "example.com", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--network proxy"));
}
