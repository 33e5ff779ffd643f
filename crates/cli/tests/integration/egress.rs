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
