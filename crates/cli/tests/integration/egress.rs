//! `warden url check`: the egress policy from the command line (no network: overrides only).

use crate::warden;

fn check(args: &[&str]) -> (i32, String, String) {
    let out = warden()
        .arg("url")
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn allowed_destination_exits_0_with_its_addresses() {
    let (code, out, _) = check(&[
        "--resolve",
        "example.com=93.184.215.14",
        "https://example.com/x",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("93.184.215.14") && out.contains("443"),
        "{out}"
    );
}

#[test]
fn denied_destination_exits_3_naming_rule_and_range() {
    let (code, out, _) = check(&["http://169.254.169.254/latest/meta-data/"]);
    assert_eq!(code, 3);
    assert!(
        out.starts_with("denied:") && out.contains("169.254.0.0/16"),
        "{out}"
    );
    let (code, out, _) = check(&["--resolve", "evil.example=10.1.2.3", "http://evil.example/"]);
    assert_eq!(code, 3);
    assert!(out.contains("10.0.0.0/8"), "{out}");
    let (code, out, _) = check(&["http://localhost:80/"]);
    assert_eq!(code, 3);
    assert!(out.contains("localhost"), "{out}");
}

#[test]
fn unparsable_url_exits_2() {
    let (code, _, err) = check(&["http://[::1"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a URL"), "{err}");
}

#[test]
fn allow_cidr_opens_a_denied_range_and_json_reports_it() {
    let (code, out, _) = check(&["--json", "--allow-cidr", "127.0.0.0/8", "http://127.0.0.1/"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["allowed"], true);
    assert_eq!(
        report["target"]["addresses"],
        serde_json::json!(["127.0.0.1"])
    );
    let (code, out, _) = check(&["--json", "http://[::ffff:127.0.0.1]/"]);
    assert_eq!(code, 3);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["allowed"], false);
    assert_eq!(report["denial"]["rule"], "address");
    assert!(
        report["reason"].as_str().unwrap().contains("127.0.0.0/8"),
        "{out}"
    );
}

#[test]
fn bad_policy_flags_exit_2() {
    assert_eq!(check(&["--allow-cidr", "bogus", "http://x.example/"]).0, 2);
    assert_eq!(check(&["--resolve", "noequals", "http://x.example/"]).0, 2);
    assert_eq!(
        check(&["--allow-domain", "not a domain!", "http://x.example/"]).0,
        2
    );
}

/// A loopback server answering every request with `response` (raw HTTP/1.1).
pub fn serve_once_each(response: &'static str) -> u16 {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn fetch(args: &[&str]) -> (i32, String, String) {
    let out = warden().arg("fetch").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fetch_prints_the_body_of_an_allowed_server() {
    let port =
        serve_once_each("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    let p = port.to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let (code, out, err) = fetch(&["--allow-cidr", "127.0.0.1/32", "--allow-port", &p, &url]);
    assert_eq!((code, out.as_str()), (0, "hello"), "{err}");
    let (code, out, _) = fetch(&[
        "--json",
        "--allow-cidr",
        "127.0.0.1/32",
        "--allow-port",
        &p,
        &url,
    ]);
    assert_eq!(code, 0);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["status"], 200);
    assert_eq!(summary["body"], "hello");
    assert_eq!(summary["connected_address"], format!("127.0.0.1:{port}"));
    // Without the explicit allow, loopback is denied before anything connects.
    assert_eq!(fetch(&["--allow-port", &p, &url]).0, 3);
}

#[test]
fn fetch_stops_a_redirect_to_metadata_with_exit_3() {
    let port = serve_once_each("HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let p = port.to_string();
    let (code, _, err) = fetch(&[
        "--allow-cidr",
        "127.0.0.1/32",
        "--allow-port",
        &p,
        "--allow-port",
        "80",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("169.254.0.0/16"), "{err}");
}
