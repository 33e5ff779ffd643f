//! MCP: the official MCP Python SDK (a client this project did not write) drives `warden mcp`
//! over stdio and `/mcp` on a `warden serve` child (127.0.0.1, port 0).
//!
//! The client script is `crates/cli/tests/mcp/client.py`; it records what the server answered
//! as JSON and the assertions are here. It runs with the Python of [`PYTHON_ENV`] (default
//! [`DEFAULT_PYTHON`], the venv `.ci/run` creates). Without it these tests fail and say how
//! to create it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::serve::Server;
use crate::warden;

/// Environment variable naming a Python that has the `mcp` package.
const PYTHON_ENV: &str = "WARDEN_MCP_PYTHON";
/// Where `.ci/run` installs it.
const DEFAULT_PYTHON: &str = "/opt/warden-ci/mcp-venv/bin/python";
/// The SDK version `.ci/run` pins.
const MCP_VERSION: &str = "2.3.0";

/// The Python with the MCP SDK, or a failure saying how to get one.
fn python() -> PathBuf {
    let python = std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    let ok = Command::new(&python)
        .args(["-c", "import mcp, httpx2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the MCP tests need a Python with the official MCP SDK at {} (or set {PYTHON_ENV}); \
         create it with:\n  python3 -m venv /opt/warden-ci/mcp-venv && \
         /opt/warden-ci/mcp-venv/bin/pip install mcp=={MCP_VERSION}\n(on Debian first: \
         apt-get install python3-venv; `.ci/run` does all of this)",
        python.display()
    );
    python
}

/// Runs `client.py ARGS` and returns its JSON report.
fn sdk_client(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py {args:?} failed ({:?})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client.py printed no JSON report ({e})\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The checks every authorized session must pass, whichever transport.
fn assert_full_session(report: &Value) {
    assert!(report.get("refused").is_none(), "{report}");
    assert_eq!(report["server_name"], "warden");
    let instructions = report["instructions"].as_str().unwrap();
    for needle in ["python", "NO network", "timeout_s", "fetch_url"] {
        assert!(instructions.contains(needle), "{needle}: {instructions}");
    }

    // Tools: names, input schemas, output schemas, annotations.
    let tools = report["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["fetch_url", "run_code", "run_command"]);
    let run_code = &tools["run_code"];
    assert_eq!(run_code["input_schema"]["type"], "object");
    assert_eq!(
        run_code["input_schema"]["required"],
        json!(["language", "code"])
    );
    for field in ["stdin", "timeout_s", "memory_mb"] {
        assert!(
            run_code["input_schema"]["properties"].get(field).is_some(),
            "{field}"
        );
    }
    assert_eq!(run_code["input_schema"]["additionalProperties"], false);
    assert!(run_code["output_schema"]["properties"]
        .get("timed_out")
        .is_some());
    assert_eq!(run_code["annotations"]["read_only_hint"], false);
    assert_eq!(run_code["annotations"]["open_world_hint"], false);
    let run_command = &tools["run_command"];
    assert_eq!(run_command["input_schema"]["required"], json!(["argv"]));
    assert_eq!(
        run_command["input_schema"]["properties"]["argv"]["type"],
        "array"
    );
    assert!(run_command["input_schema"]["properties"]
        .get("files")
        .is_some());
    assert_eq!(run_command["annotations"]["open_world_hint"], false);
    let fetch = &tools["fetch_url"];
    assert_eq!(fetch["input_schema"]["required"], json!(["url"]));
    for field in ["method", "headers", "body"] {
        assert!(
            fetch["input_schema"]["properties"].get(field).is_some(),
            "{field}"
        );
    }
    assert_eq!(fetch["annotations"]["open_world_hint"], true);
    assert_eq!(fetch["annotations"]["read_only_hint"], false);

    // Python ran in the sandbox, read its stdin, and its output came back both ways.
    let py = &report["python"];
    assert_eq!(py["is_error"], false, "{py}");
    assert_eq!(py["structured"]["exit_code"], 0, "{py}");
    assert_eq!(py["structured"]["stdout"], "sum 45\nFROM STDIN\n", "{py}");
    assert_eq!(py["structured"]["timed_out"], false);
    assert!(py["text"].as_str().unwrap().contains("sum 45"), "{py}");

    // The endless loop: a timeout Outcome (not a tool error), killed by signal 9.
    let lp = &report["loop"];
    assert_eq!(lp["is_error"], false, "{lp}");
    assert_eq!(lp["structured"]["timed_out"], true, "{lp}");
    assert_eq!(lp["structured"]["signal"], 9, "{lp}");
    assert_eq!(lp["structured"]["exit_code"], Value::Null, "{lp}");
    assert_eq!(lp["structured"]["limits"]["timeout_s"], 1.0, "{lp}");
    assert!(lp["text"].as_str().unwrap().contains("TIMED OUT"), "{lp}");

    // run_command: argv passed unparsed (quote and `$(id)` arrive as they are), file placed.
    let cmd = &report["command"];
    assert_eq!(cmd["is_error"], false, "{cmd}");
    assert_eq!(cmd["structured"]["exit_code"], 0, "{cmd}");
    assert_eq!(
        cmd["structured"]["stdout"], "file contents\nin.txt|it's $(id)|",
        "{cmd}"
    );

    // The cloud metadata address: a tool error that names the rule.
    let meta = &report["metadata"];
    assert_eq!(meta["is_error"], true, "{meta}");
    assert_eq!(meta["structured"]["rule"], "address", "{meta}");
    let text = meta["text"].as_str().unwrap();
    assert!(
        text.contains("egress rule `address`") && text.contains("169.254.0.0/16"),
        "{text}"
    );

    // A bad argument the model can fix: a tool error listing what exists.
    let unknown = &report["unknown_language"];
    assert_eq!(unknown["is_error"], true, "{unknown}");
    assert!(
        unknown["text"].as_str().unwrap().contains("python"),
        "{unknown}"
    );
}

/// Audit events of the store behind `config`.
fn audit_events(config: &Path) -> Vec<Value> {
    let out = warden()
        .args(["audit", "tail", "-n", "1000", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verify = warden()
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit chain broken: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Asserts `principal` has the session's audit trail: three executions (ok, timeout, ok) and
/// the denied fetch with its rule.
fn assert_audited(events: &[Value], principal: &str) {
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["principal"] == principal)
        .collect();
    let outcomes: Vec<&str> = mine
        .iter()
        .filter(|e| e["action"] == "execution" && e["decision"] == "allow")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "timeout", "ok"], "{events:?}");
    let fetch = mine
        .iter()
        .find(|e| e["action"] == "fetch")
        .unwrap_or_else(|| panic!("no fetch event for {principal}: {events:?}"));
    assert_eq!(fetch["decision"], "deny");
    let details: Value = serde_json::from_str(fetch["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["rule"], "address");
}

/// A `warden.toml` with a loopback listener and a data directory in `dir`.
fn write_config(dir: &Path) -> PathBuf {
    crate::serve::write_config(dir, "")
}

#[test]
fn stdio_serves_the_official_python_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let report = sdk_client(&[
        "stdio",
        env!("CARGO_BIN_EXE_warden"),
        config.to_str().unwrap(),
    ]);
    assert_full_session(&report);
    // Audited in the store of the same warden.toml, as the local operator.
    assert_audited(&audit_events(&config), "local:mcp-stdio");
}

/// `warden mcp --config <config>` with piped stdin and stdout (debug logging on `stderr`).
fn stdio_server(config: &Path, stderr: Stdio) -> Child {
    warden()
        .arg("mcp")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The JSON-RPC `initialize` request, id 1, of a raw client.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
}

#[test]
fn stdio_stdout_carries_only_protocol_messages() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut child = stdio_server(&config, Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        initialize(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_code", "arguments": {"language": "sh", "code": "echo hi; echo oops >&2"}}}),
    ];
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answers = Vec::new();
    for message in &messages {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
        if message.get("id").is_some() {
            let line = lines.next().unwrap().unwrap();
            answers.push(
                serde_json::from_str::<Value>(&line).unwrap_or_else(|e| {
                    panic!("stdout line is not a JSON-RPC message ({e}): {line}")
                }),
            );
        }
    }
    drop(stdin);
    // After stdin closes the server exits; nothing else was written to stdout.
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.is_empty(), "{rest:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("serving on stdio"), "{stderr}");

    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"]["serverInfo"]["name"], "warden");
    assert_eq!(answers[1]["id"], 2);
    let result = &answers[1]["result"];
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["stdout"], "hi\n");
    assert_eq!(result["structuredContent"]["stderr"], "oops\n");
}

/// Waits up to `limit` for `done`.
fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A `warden mcp` (stdio) child whose `run_code` call (request id 2) runs the shell command
/// `marker`, a `sleep` that can be found among the host's processes, once its sandbox has
/// started.
struct RunningCall {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    config: PathBuf,
    marker: &'static str,
    _dir: tempfile::TempDir,
}

impl RunningCall {
    fn start(marker: &'static str) -> RunningCall {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path());
        let mut child = stdio_server(&config, Stdio::null());
        let mut call = RunningCall {
            stdin: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            config,
            marker,
            _dir: dir,
        };
        call.send(initialize());
        let initialized: Value =
            serde_json::from_str(&call.lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(initialized["id"], 1, "{initialized}");
        call.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        call.send(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_code",
            "arguments": {"language": "sh", "code": marker, "timeout_s": 60}}}),
        );
        assert!(
            wait_for(Duration::from_secs(10), || call.sandbox_runs()),
            "the sandbox did not start"
        );
        call
    }

    fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn sandbox_runs(&self) -> bool {
        !crate::host_processes_with(self.marker).is_empty()
    }

    /// Closes the server's stdin, reads whatever it still answers, and waits for it to end
    /// (successfully); returns its audit events.
    fn end(self) -> Vec<Value> {
        let RunningCall {
            mut child,
            stdin,
            lines,
            config,
            ..
        } = self;
        drop(stdin);
        let _ = lines.count();
        assert!(child.wait().unwrap().success());
        audit_events(&config)
    }
}

/// `notifications/cancelled` for a running `run_code` call stops its sandbox, and the
/// execution is still recorded, as cancelled.
#[test]
fn stdio_cancellation_stops_the_sandbox() {
    let mut call = RunningCall::start("sleep 4848.4848");
    call.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "user pressed stop"}}),
    );
    assert!(
        wait_for(Duration::from_secs(5), || !call.sandbox_runs()),
        "the sandbox outlived the cancellation"
    );
    // Whatever was answered to the cancelled call, the server then ends with its stdin.
    crate::assert_recorded_as_cancelled(&call.end());
}

/// A client that closes stdin while a `run_code` call runs ends the server; the sandbox is
/// stopped and the execution still recorded (as cancelled) before the store closes.
#[test]
fn stdio_end_of_input_stops_and_records_the_running_sandbox() {
    let marker = "sleep 4747.4747";
    let events = RunningCall::start(marker).end();
    assert!(
        crate::host_processes_with(marker).is_empty(),
        "the sandbox outlived the server"
    );
    crate::assert_recorded_as_cancelled(&events);
}

/// `warden keys create --scope SCOPES` against `server`'s store; returns (key, principal id).
fn key_and_principal(server: &Server, scopes: &str) -> (String, String) {
    let key = server.key(scopes, &[]);
    let id = key
        .strip_prefix("wdn_")
        .and_then(|rest| rest.split('_').next())
        .unwrap()
        .to_string();
    (key, format!("key:{id}"))
}

fn mcp_url(server: &Server) -> String {
    server.url("/mcp")
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .unwrap()
}

#[test]
fn http_endpoint_serves_the_official_python_sdk_with_a_valid_key() {
    let server = Server::start("");
    let (key, principal) = key_and_principal(&server, "execute,fetch");
    let report = sdk_client(&["http", &mcp_url(&server), &key]);
    assert_full_session(&report);
    assert_audited(&audit_events(&server.config), &principal);
}

#[test]
fn http_endpoint_refuses_missing_and_bad_keys() {
    let server = Server::start("");
    let (key, _) = key_and_principal(&server, "execute,fetch");
    let id = key.rsplit_once('_').unwrap().0;
    let bad = format!("{id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    for args in [
        vec!["http", mcp_url(&server).as_str()],
        vec!["http", mcp_url(&server).as_str(), bad.as_str()],
        vec!["http", mcp_url(&server).as_str(), "not-a-key"],
    ] {
        let report = sdk_client(&args);
        assert!(report.get("tools").is_none(), "{report}");
        assert!(report["refused"].is_string(), "{report}");
        let statuses = report["statuses"].as_array().unwrap();
        assert!(!statuses.is_empty(), "{report}");
        assert!(statuses.iter().all(|s| s == 401), "{report}");
    }

    // The same at the HTTP level: 401 problem with a Bearer challenge, nothing run.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    for token in [None, Some(bad.as_str())] {
        let mut request = http()
            .post(mcp_url(&server))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let events = audit_events(&server.config);
    let refusals = events
        .iter()
        .filter(|e| e["action"] == "auth" && e["decision"] == "deny")
        .count();
    assert!(refusals >= 5, "{events:?}");
    assert!(!events
        .iter()
        .any(|e| e["action"] == "execution" || e["action"] == "fetch"));
}

/// Review (session 5): rmcp's own reason for refusing a request (bad JSON, a missing
/// `Accept`) was replaced by the bare status phrase; it is the problem's detail now.
#[test]
fn http_endpoint_says_why_it_refuses_a_malformed_request() {
    let server = Server::start("");
    let (key, _) = key_and_principal(&server, "execute");
    let response = http()
        .post(mcp_url(&server))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .unwrap();
    let status = response.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().unwrap();
    let detail = body["detail"].as_str().unwrap();
    let phrase = reqwest::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    assert_ne!(detail, phrase, "only the status phrase: {body}");
}

#[test]
fn http_tool_calls_need_their_scope() {
    let server = Server::start("");
    // fetch only: every run_* call is refused, fetch_url reaches the egress policy.
    let (fetch_key, fetch_principal) = key_and_principal(&server, "fetch");
    let report = sdk_client(&["http", &mcp_url(&server), &fetch_key]);
    for call in ["python", "loop", "command"] {
        let result = &report[call];
        assert_eq!(result["is_error"], true, "{call}: {result}");
        assert!(
            result["text"]
                .as_str()
                .unwrap()
                .contains("needs the `execute` scope"),
            "{call}: {result}"
        );
    }
    assert_eq!(report["metadata"]["structured"]["rule"], "address");

    // execute only: fetch_url is refused before any policy decision; code runs.
    let (exec_key, _) = key_and_principal(&server, "execute");
    let report = sdk_client(&["http", &mcp_url(&server), &exec_key]);
    let meta = &report["metadata"];
    assert_eq!(meta["is_error"], true);
    assert!(
        meta["text"]
            .as_str()
            .unwrap()
            .contains("needs the `fetch` scope"),
        "{meta}"
    );
    assert_eq!(report["python"]["structured"]["exit_code"], 0);

    // Every refusal is audited like the API's 403; nothing ran for the fetch-only key.
    let events = audit_events(&server.config);
    let scope_denials: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "scope" && e["decision"] == "deny")
        .collect();
    assert_eq!(scope_denials.len(), 5, "{events:?}");
    assert!(scope_denials
        .iter()
        .filter(|e| e["principal"] == fetch_principal.as_str())
        .all(|e| e["details"].as_str().unwrap().contains("execute")));
    assert!(!events
        .iter()
        .any(|e| e["principal"] == fetch_principal.as_str() && e["action"] == "execution"));
}
