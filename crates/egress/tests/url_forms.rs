//! URL forms that target denied destinations, and public ones at the edges of every range
//! that must stay reachable. Resolution uses overrides only: nothing leaves this machine.

// Test code: a broken fixture should panic with its message.
#![allow(clippy::unwrap_used)]

use warden_egress::{redact_url, Denial, Resolver, UrlPolicy};

fn resolver() -> Resolver {
    [
        "public.example=93.184.215.14",
        "internal.example=10.0.0.5",
        "rebind.example=127.0.0.1",
        "multi.example=93.184.215.14",
        "multi.example=169.254.169.254",
        "v6loop.example=::1",
        "mapped.example=::ffff:10.0.0.1",
        "nat64.example=64:ff9b::a9fe:a9fe",
        "example.com=93.184.215.14",
        "api.example.com=93.184.215.14",
        "evilexample.com=93.184.215.14",
        "evil.com=93.184.215.14",
        "sub.evil.com=93.184.215.14",
        "xn--r8jz45g.jp=93.184.215.14",
    ]
    .iter()
    .fold(Resolver::default().overrides_only(), |r, spec| {
        r.with_override(spec).unwrap()
    })
}

/// Every one of these must be denied by the default policy.
const DENIED: &[&str] = &[
    // IPv4 loopback in every spelling the WHATWG parser accepts.
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://0177.0.0.1/",
    "http://0177.0000.0000.0001/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://%31%32%37.0.0.1/",
    "http://127.0.0.1:80/",
    "https://127.0.0.1:443/",
    "HTTP://127.0.0.1/",
    // Other special-purpose IPv4.
    "http://0.0.0.0/",
    "http://0/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://2852039166/",
    "http://169.254.169.254.:80/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    // IPv6 and IPv4 embedded in IPv6.
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://[fec0::1]/",
    // Names refused before lookup (IDNA-mapped and trailing-dot forms included).
    "http://localhost/",
    "http://LOCALHOST/",
    "http://localhost./",
    "http://foo.localhost/",
    "http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://printer.local/",
    // Userinfo and backslash tricks.
    "http://user:pass@public.example/",
    "http://public.example@127.0.0.1/",
    "http://127.0.0.1\\@public.example/",
    // Schemes other than http and https.
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_stats",
    "ftp://public.example/",
    "dict://127.0.0.1:11211/",
    "javascript:alert(1)",
    "data:text/plain,hi",
    // Ports not allowed.
    "http://public.example:22/",
    "http://public.example:6379/",
    // Names that resolve (by override) to denied addresses.
    "http://internal.example/",
    "http://rebind.example/",
    "http://multi.example/",
    "http://v6loop.example/",
    "http://mapped.example/",
    "http://nat64.example/",
    // Names nothing resolves.
    "http://unresolvable.example/",
];

/// Public destinations at the edges of the special-purpose ranges: must be allowed.
const ALLOWED: &[&str] = &[
    "http://1.1.1.1/",
    "https://8.8.8.8/",
    "http://9.255.255.255/",
    "http://11.0.0.0/",
    "http://100.63.255.255/",
    "http://100.128.0.0/",
    "http://126.255.255.255/",
    "http://128.0.0.0/",
    "http://169.253.255.255/",
    "http://169.255.0.0/",
    "http://172.15.255.255/",
    "http://172.32.0.0/",
    "http://192.167.255.255/",
    "http://192.169.0.0/",
    "http://198.17.255.255/",
    "http://198.20.0.0/",
    "http://223.255.255.255/",
    "http://[2606:4700::1111]/",
    "http://[2001:4860:4860::8888]/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://public.example/",
    "https://public.example/path?q=1#frag",
    "http://PUBLIC.example./",
    "https://\u{4f8b}\u{3048}.jp/",
];

#[test]
fn denied_forms_are_denied() {
    let policy = UrlPolicy::default();
    let resolver = resolver();
    assert!(DENIED.len() >= 60, "{} forms", DENIED.len());
    for url in DENIED {
        match policy.check(url, &resolver) {
            Ok(target) => panic!("{url} was allowed: {target}"),
            Err(Denial::Parse { reason }) => {
                panic!("{url} did not parse ({reason}); a parse failure is not a policy test")
            }
            Err(_) => {}
        }
    }
}

#[test]
fn public_edges_are_allowed() {
    let policy = UrlPolicy::default();
    let resolver = resolver();
    for url in ALLOWED {
        if let Err(denial) = policy.check(url, &resolver) {
            panic!("{url} was denied: {denial}");
        }
    }
}

#[test]
fn denials_name_the_rule() {
    let policy = UrlPolicy::default();
    let resolver = resolver();
    let reason = |url: &str| policy.check(url, &resolver).unwrap_err();
    assert!(matches!(
        reason("file:///etc/passwd"),
        Denial::Scheme { .. }
    ));
    assert!(matches!(
        reason("http://u:p@public.example/"),
        Denial::Userinfo
    ));
    assert!(matches!(
        reason("http://public.example:8080/"),
        Denial::Port { port: 8080, .. }
    ));
    assert!(matches!(
        reason("http://localhost./"),
        Denial::BlockedName {
            pattern: "localhost",
            ..
        }
    ));
    assert!(matches!(
        reason("http://internal.example/"),
        Denial::Address { .. }
    ));
    assert!(matches!(
        reason("http://unresolvable.example/"),
        Denial::Resolve { .. }
    ));
    assert!(matches!(reason("http://[::1/"), Denial::Parse { .. }));
    assert!(matches!(reason("not a url"), Denial::Parse { .. }));
    let text = reason("http://169.254.169.254/").to_string();
    assert!(text.contains("169.254.0.0/16"), "{text}");
}

#[test]
fn backslash_is_a_path_separator_so_the_judged_host_is_the_real_one() {
    // WHATWG: in special schemes `\` is `/`, so the host is public.example and the rest is path;
    // Warden connects where it judged, not where a naive reader of the string would.
    let target = UrlPolicy::default()
        .check("http://public.example\\@127.0.0.1/", &resolver())
        .unwrap();
    assert_eq!(target.host, "public.example");
    assert_eq!(
        target.addresses,
        vec!["93.184.215.14".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn domain_allow_and_deny_lists() {
    let resolver = resolver();
    let policy = UrlPolicy::default()
        .with_allow_domains(&["*.example.com"])
        .unwrap();
    assert!(policy.check("https://api.example.com/", &resolver).is_ok());
    assert!(matches!(
        policy.check("https://example.com/", &resolver),
        Err(Denial::DomainNotAllowed { .. })
    ));
    assert!(matches!(
        policy.check("https://evilexample.com/", &resolver),
        Err(Denial::DomainNotAllowed { .. })
    ));
    // An allowed domain still goes through the address policy.
    let policy = UrlPolicy::default()
        .with_allow_domains(&["internal.example"])
        .unwrap();
    assert!(matches!(
        policy.check("http://internal.example/", &resolver),
        Err(Denial::Address { .. })
    ));
    // Deny wins over allow; patterns are IDNA-normalised.
    let policy = UrlPolicy::default()
        .with_allow_domains(&["*.evil.com", "evil.com", "例え.jp"])
        .unwrap()
        .with_deny_domains(&["*.evil.com"])
        .unwrap();
    assert!(policy.check("http://evil.com/", &resolver).is_ok());
    assert!(matches!(
        policy.check("http://sub.evil.com/", &resolver),
        Err(Denial::DomainDenied { .. })
    ));
    assert!(policy.check("https://xn--r8jz45g.jp/", &resolver).is_ok());
    assert!(UrlPolicy::default()
        .with_allow_domains(&["not a domain!"])
        .is_err());
}

/// Review (session 5): the parser keeps empty labels, and only one trailing dot was stripped,
/// so `evil.com..` was judged as `evil.com.`, which no pattern matched, while the resolver
/// took it for `evil.com`. Names with an empty label are refused; one trailing dot is the
/// same name, judged and sent without it.
#[test]
fn empty_labels_cannot_dodge_deny_lists_and_blocked_names() {
    let resolver = resolver();
    let policy = UrlPolicy::default()
        .with_deny_domains(&["evil.com", "*.evil.com"])
        .unwrap();
    for url in [
        "http://evil.com../",
        "http://evil.com.%2e/",
        "http://evil.com\u{3002}\u{3002}/",
        "http://sub.evil.com../",
        "http://evil..com/",
        "http://metadata.google.internal../",
        "http://printer.local../",
        "http://localhost../",
    ] {
        match policy.check(url, &resolver) {
            Err(e @ Denial::EmptyLabel { .. }) => assert_eq!(e.rule(), "empty_label"),
            other => panic!("{url}: expected empty_label, got {other:?}"),
        }
    }
    for url in ["http://evil.com./", "http://sub.evil.com./"] {
        assert!(
            matches!(
                policy.check(url, &resolver),
                Err(Denial::DomainDenied { .. })
            ),
            "{url}"
        );
    }
    let target = UrlPolicy::default()
        .check("http://PUBLIC.example.:80/a?b", &resolver)
        .unwrap();
    assert_eq!(target.host, "public.example");
    assert_eq!(target.url, "http://public.example/a?b", "sent as judged");
    assert!(UrlPolicy::default()
        .with_deny_domains(&["evil..com"])
        .is_err());
    assert!(Resolver::default().with_override("a..b=192.0.2.1").is_err());
}

#[test]
fn an_allow_list_of_names_also_closes_public_address_literals() {
    let resolver = resolver();
    let open = UrlPolicy::default();
    let listed = UrlPolicy::default()
        .with_allow_domains(&["api.example.com"])
        .unwrap();
    for url in [
        "http://93.184.215.14/",
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
        "http://1572395790/",
    ] {
        assert!(open.check(url, &resolver).is_ok(), "{url}");
        match listed.check(url, &resolver) {
            Err(e @ Denial::LiteralNotAllowed { .. }) => {
                assert_eq!(e.rule(), "literal_not_allowed");
                assert!(e.to_string().contains("--allow-cidr"), "{e}");
            }
            other => panic!("{url}: expected literal_not_allowed, got {other:?}"),
        }
    }
    // A special-purpose literal is still denied by the address table first.
    assert!(matches!(
        listed.check("http://169.254.169.254/", &resolver),
        Err(Denial::Address { .. })
    ));
    // An explicit --allow-cidr admits literals inside it, and only those.
    let mut with_cidr = listed.clone();
    with_cidr
        .address
        .allow
        .push("93.184.215.0/24".parse().unwrap());
    assert!(with_cidr.check("http://93.184.215.14/", &resolver).is_ok());
    assert!(with_cidr.check("http://93.184.216.14/", &resolver).is_err());
}

#[test]
fn operator_allow_cidr_is_the_only_way_into_a_denied_range() {
    let mut policy = UrlPolicy::default();
    policy.address.allow.push("127.0.0.0/8".parse().unwrap());
    let resolver = resolver();
    assert!(policy.check("http://127.0.0.1/", &resolver).is_ok());
    assert!(policy.check("http://rebind.example/", &resolver).is_ok());
    assert!(policy.check("http://10.0.0.1/", &resolver).is_err());
    assert!(
        policy.check("http://localhost/", &resolver).is_err(),
        "names are refused before lookup regardless"
    );
}

#[test]
fn urls_are_redacted_for_logs() {
    assert_eq!(
        redact_url("https://u:pw@example.com:8443/a/b?token=t&x=1#frag"),
        "https://***@example.com:8443/a/b?***"
    );
    assert_eq!(
        redact_url("http://example.com/plain"),
        "http://example.com/plain"
    );
    assert_eq!(redact_url("not a url"), "(not a URL, 9 bytes)");
    assert_eq!(redact_url("mailto:secret@example.com"), "mailto:(25 bytes)");
    assert_eq!(redact_url("data:text/plain,SECRET"), "data:(22 bytes)");
    assert_eq!(redact_url("foo://u:secret@host/"), "foo:(20 bytes)");
    let long = format!("http://example.com/{}", "a".repeat(5000));
    assert!(redact_url(&long).len() <= warden_egress::url_policy::REDACTED_URL_MAX + 3);
}
