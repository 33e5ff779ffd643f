//! `fetch` against loopback test servers that the tests explicitly allow (127.0.0.1/32 and
//! their ports): redirects to denied addresses are stopped at the hop, credentials do not
//! cross origins, bodies are capped, DNS answers are pinned.

// Test code: a broken fixture should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use warden_egress::{fetch, Denial, FetchError, FetchRequest, Resolver, UrlPolicy};

/// A canned answer: status, headers, body.
type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A one-thread HTTP/1.1 server on 127.0.0.1:0 answering from `route(path, port)`; records the
/// request heads it saw.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

fn serve(route: fn(&str, u16) -> Reply) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(head.clone());
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, headers, body) = route(&path, addr.port());
            let mut response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                response.push_str(&format!("{k}: {v}\r\n"));
            }
            response.push_str("\r\n");
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    Server { addr, seen }
}

fn redirect(to: String) -> Reply {
    (302, vec![("Location".into(), to)], Vec::new())
}

fn routes(path: &str, port: u16) -> Reply {
    match path {
        "/ok" => (200, vec![], b"hello".to_vec()),
        "/big" => (200, vec![], vec![b'x'; 2 << 20]),
        "/to-other-loopback" => redirect(format!("http://127.0.0.2:{port}/ok")),
        "/to-metadata" => redirect("http://169.254.169.254/latest/meta-data/".into()),
        "/same-origin" => redirect("/echo".into()),
        "/loop" => redirect("/loop".into()),
        "/see-other" => (303, vec![("Location".into(), "/echo".into())], Vec::new()),
        "/rebind" => redirect(format!("http://rebind.test:{port}/ok")),
        "/to-dotted" => redirect(format!("http://dotted.test.:{port}/ok")),
        _ => (200, vec![], Vec::new()),
    }
}

/// A policy that allows only the test servers: 127.0.0.1/32 and their ports (plus 80).
fn policy(ports: &[u16]) -> UrlPolicy {
    let mut policy = UrlPolicy::default();
    policy.address.allow.push("127.0.0.1/32".parse().unwrap());
    policy.ports = ports.iter().copied().chain([80]).collect();
    policy
}

fn offline() -> Resolver {
    Resolver::default().overrides_only()
}

#[test]
fn fetches_from_an_allowed_server_and_reports_the_address() {
    let s = serve(routes);
    let r = fetch(
        &policy(&[s.addr.port()]),
        &offline(),
        &FetchRequest::get(format!("http://127.0.0.1:{}/ok", s.addr.port())),
    )
    .unwrap();
    assert_eq!(
        (r.status, r.body.as_slice(), r.truncated),
        (200, &b"hello"[..], false)
    );
    assert_eq!(r.connected_address, Some(s.addr));
    assert!(r.redirects.is_empty());
}

#[test]
fn redirect_to_another_loopback_address_is_stopped_at_the_hop() {
    let s = serve(routes);
    let err = fetch(
        &policy(&[s.addr.port()]),
        &offline(),
        &FetchRequest::get(format!(
            "http://127.0.0.1:{}/to-other-loopback",
            s.addr.port()
        )),
    )
    .unwrap_err();
    match err {
        FetchError::Denied {
            url,
            denial: Denial::Address { .. },
        } => assert!(url.starts_with("http://127.0.0.2:"), "{url}"),
        other => panic!("expected an address denial, got {other}"),
    }
    assert_eq!(
        s.seen.lock().unwrap().len(),
        1,
        "only the first hop may be requested"
    );
}

#[test]
fn redirect_to_cloud_metadata_is_stopped_at_the_hop() {
    let s = serve(routes);
    let err = fetch(
        &policy(&[s.addr.port()]),
        &offline(),
        &FetchRequest::get(format!("http://127.0.0.1:{}/to-metadata", s.addr.port())),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::Denied { .. }) && text.contains("169.254.0.0/16"),
        "{text}"
    );
}

#[test]
fn credentials_are_dropped_across_origins_and_kept_within_one() {
    let a = serve(routes);
    let b = serve(routes);
    let policy = policy(&[a.addr.port(), b.addr.port()]);
    let mut request = FetchRequest::get(format!("http://127.0.0.1:{}/same-origin", a.addr.port()));
    request.headers = vec![
        ("Authorization".into(), "Bearer secret".into()),
        ("Cookie".into(), "session=1".into()),
    ];
    fetch(&policy, &offline(), &request).unwrap();
    let echo = a.seen.lock().unwrap()[1].to_ascii_lowercase();
    assert!(
        echo.contains("authorization: bearer secret") && echo.contains("cookie: session=1"),
        "{echo}"
    );

    // Cross-origin (another port): a redirect from A to B's /echo.
    let location = format!("http://127.0.0.1:{}/echo", b.addr.port());
    let c = serve_redirect_to(location);
    let policy = self::policy(&[b.addr.port(), c.addr.port()]);
    request.url = format!("http://127.0.0.1:{}/", c.addr.port());
    let r = fetch(&policy, &offline(), &request).unwrap();
    assert_eq!(r.redirects.len(), 1);
    let echo = b.seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        !echo.contains("authorization") && !echo.contains("cookie"),
        "{echo}"
    );
}

/// A server whose every answer is a redirect to `location`.
fn serve_redirect_to(location: String) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // Read the request head up to its blank line.
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(stream, "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    Server {
        addr,
        seen: Arc::new(Mutex::new(Vec::new())),
    }
}

#[test]
fn body_is_capped() {
    let s = serve(routes);
    let mut request = FetchRequest::get(format!("http://127.0.0.1:{}/big", s.addr.port()));
    request.max_bytes = 1000;
    let r = fetch(&policy(&[s.addr.port()]), &offline(), &request).unwrap();
    assert!(r.truncated);
    assert_eq!(r.body.len(), 1000);
}

#[test]
fn redirect_loops_stop_after_five_hops() {
    let s = serve(routes);
    let err = fetch(
        &policy(&[s.addr.port()]),
        &offline(),
        &FetchRequest::get(format!("http://127.0.0.1:{}/loop", s.addr.port())),
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects(5)), "{err}");
    assert_eq!(s.seen.lock().unwrap().len(), 6);
}

#[test]
fn see_other_turns_a_post_into_a_get_without_body() {
    let s = serve(routes);
    let mut request = FetchRequest::get(format!("http://127.0.0.1:{}/see-other", s.addr.port()));
    request.method = reqwest::Method::POST;
    request.body = Some(b"payload".to_vec());
    fetch(&policy(&[s.addr.port()]), &offline(), &request).unwrap();
    let seen = s.seen.lock().unwrap();
    assert!(seen[0].starts_with("POST /see-other"));
    assert!(seen[1].starts_with("GET /echo"), "{}", seen[1]);
}

/// DNS rebinding: the resolver answers an allowed address first and a denied one after.
/// The connection goes to the address that was judged, and the next lookup is judged anew.
#[test]
fn dns_rebinding_cannot_reach_a_denied_address() {
    let s = serve(routes);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let resolver = Resolver::default().with_custom(Arc::new(move |_host: &str, _port: u16| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        let ip: IpAddr = if first {
            "127.0.0.1".parse().unwrap()
        } else {
            "169.254.169.254".parse().unwrap()
        };
        Ok(vec![ip])
    }));
    let policy = policy(&[s.addr.port()]);
    let err = fetch(
        &policy,
        &resolver,
        &FetchRequest::get(format!("http://rebind.test:{}/rebind", s.addr.port())),
    )
    .unwrap_err();
    // Hop 1 resolved once, to 127.0.0.1, and was served; hop 2 resolved to the metadata
    // address and was denied before any connection.
    assert!(
        matches!(
            err,
            FetchError::Denied {
                denial: Denial::Address { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(s.seen.lock().unwrap().len(), 1);
}

/// Review (session 5): the pin was made for `dotted.test` while the request went to
/// `dotted.test.`, so the HTTP client missed the pin and resolved the name again through the
/// system resolver (DNS rebinding past the check). The request now names the host as judged,
/// and a name without a pin does not resolve at all. Here the system resolver cannot answer
/// for `dotted.test`, so the fetch fails unless the pin is used, also after a redirect.
#[test]
fn a_trailing_dot_still_connects_only_to_the_pinned_address() {
    let s = serve(routes);
    let resolver = offline().with_override("dotted.test=127.0.0.1").unwrap();
    let policy = policy(&[s.addr.port()]);
    let port = s.addr.port();
    let r = fetch(
        &policy,
        &resolver,
        &FetchRequest::get(format!("http://dotted.test.:{port}/ok")),
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(r.connected_address, Some(s.addr));
    assert_eq!(r.final_url, format!("http://dotted.test:{port}/ok"));
    let r = fetch(
        &policy,
        &resolver,
        &FetchRequest::get(format!("http://127.0.0.1:{port}/to-dotted")),
    )
    .unwrap();
    assert_eq!((r.status, r.redirects.len()), (200, 1));
    assert_eq!(r.connected_address, Some(s.addr));
    let seen = s.seen.lock().unwrap();
    assert!(
        seen.last()
            .unwrap()
            .contains(&format!("host: dotted.test:{port}"))
            || seen
                .last()
                .unwrap()
                .contains(&format!("Host: dotted.test:{port}")),
        "{seen:?}"
    );
}
