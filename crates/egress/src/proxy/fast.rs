//! Fast path for the common absolute-form request (Linux): the destination's response body
//! moves to the client with `splice(2)`, never through userspace, as a tunnel's bytes do.
//!
//! A request qualifies when it is the first on its connection, arrives whole in the first
//! segments the client sends, parses (`httparse`, hyper's own parser) as HTTP/1.1 with an
//! `http://` absolute-form target, a method other than `CONNECT`, and no body
//! (no `Content-Length`, `Transfer-Encoding` or `Expect`): a `GET` or `HEAD`, in practice.
//!
//! 1. The client's first request head is *peeked*, not consumed. A head that does not qualify
//!    takes the hyper path untouched.
//! 2. A qualifying request is judged and connected exactly as on the hyper path
//!    ([`super::reach`]). A denial or a failed connection is handed to the hyper path as the
//!    prepared answer to its first request: hyper reads the same head again and sends it, so
//!    the client gets the same `403`/`502`/`504`, and the log one line.
//! 3. Otherwise the head is consumed and written to the destination in origin-form with the
//!    same rewriting as the hyper path (hop-by-hop fields and proxy credentials removed, `Host`
//!    from the judged target, `Via` added) plus `Connection: close`.
//! 4. The response head (and any interim `1xx` heads) is read and rewritten the same way,
//!    except that `Content-Length` and `Transfer-Encoding` stay as they are, since the body
//!    passes unchanged; the client is told `Connection: close`.
//! 5. The body is spliced from the destination to the client until the destination closes;
//!    then the connection ends. The client's next request comes on a new connection, where it
//!    is judged on its own. Whatever the client sends after the head (a pipelined request) is
//!    read and discarded, never forwarded; its end of stream means the client is gone and
//!    ends the exchange (as on the hyper path).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING,
};
use hyper::{Method, Response, StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::splice::{self, Pipe};
use super::{
    add_via, host_header, reach, strip_hop_by_hop, Conn, Counters, LogGuard, Metered, ProxyBody,
};
use crate::url_policy::Target;

/// Longest head the fast path reads, in bytes: a longer request head takes the hyper path; a
/// longer response head is answered `502`.
const MAX_HEAD: usize = 64 << 10;

/// Most header fields in a head (hyper's default limit too).
const MAX_HEADERS: usize = 100;

/// How long a finished connection waits for the client to close its side, so that closing
/// ours does not reset a connection whose client has not read the whole answer yet.
const LINGER: Duration = Duration::from_secs(2);

/// What the fast path did with a connection's first request.
pub(super) enum First {
    /// Answered here; the connection is finished.
    Done,
    /// For the hyper path, nothing consumed; with the answer for the first request when the
    /// fast path already decided it (denied, unreachable).
    Hyper(Option<Box<Response<ProxyBody>>>),
}

/// A qualifying request head.
struct RequestHead {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// Length of the head in bytes, blank line included.
    len: usize,
}

/// Serves the first request of `client` on the fast path when it qualifies (see the module
/// documentation). Returns when the request head arrived and was either answered here or left
/// for the hyper path, or when the proxy shuts down before a head arrives.
pub(super) async fn first_request(client: &mut TcpStream, conn: &Arc<Conn>) -> First {
    let Ok(pipe) = Pipe::new() else {
        return First::Hyper(None);
    };
    let mut peeked = vec![0u8; MAX_HEAD];
    let n = tokio::select! {
        n = client.peek(&mut peeked) => match n {
            Ok(n) => n,
            Err(_) => return First::Hyper(None),
        },
        () = conn.shared.cancel.cancelled() => return First::Done,
    };
    let Some(head) = qualifying_request(&peeked[..n]) else {
        return First::Hyper(None);
    };
    drop(peeked);

    let counters = Arc::new(Counters::default());
    let mut guard = LogGuard::start(
        Arc::clone(&conn.shared.log),
        conn.client,
        head.method.as_str(),
        &head.uri,
        Some(Arc::clone(&counters)),
    );
    if let Some(authority) = head.uri.authority() {
        guard.entry.host = authority.host().to_string();
        guard.entry.port = authority.port_u16().unwrap_or(80);
    }
    let (mut upstream, target) = match reach(&head.uri.to_string(), conn, &mut guard).await {
        Ok(reached) => reached,
        Err(answer) => return First::Hyper(Some(Box::new(answer))),
    };
    // The head is in the socket's receive queue (it was peeked): take it off.
    let mut consumed = vec![0u8; head.len];
    if client.read_exact(&mut consumed).await.is_err() {
        guard.record(StatusCode::BAD_REQUEST, "client", "the client went away");
        return First::Done;
    }
    match exchange(client, &mut upstream, &head, &target, pipe, conn, &counters).await {
        Ok(status) => guard.entry.status = status.as_u16(),
        Err(Failure::Upstream(reason)) => {
            let answer = guard.error(StatusCode::BAD_GATEWAY, "upstream", reason);
            if let Some(bytes) = serialized(answer).await {
                let _ = client.write_all(&bytes).await;
            }
        }
        Err(Failure::Client(status)) => {
            guard.record(status, "client", "the client went away mid-answer");
        }
    }
    linger(client).await;
    First::Done
}

/// Why an exchange stopped early.
enum Failure {
    /// The destination failed before its response head was through: answer `502` with this.
    Upstream(String),
    /// The client went away, or the destination after its head (the client has the status).
    Client(StatusCode),
}

/// Forwards the request head, the response head(s) and the spliced body; returns the final
/// status.
async fn exchange(
    client: &TcpStream,
    upstream: &mut Metered<TcpStream>,
    head: &RequestHead,
    target: &Target,
    pipe: Pipe,
    conn: &Conn,
    counters: &Counters,
) -> Result<StatusCode, Failure> {
    let request = origin_form(head, target);
    upstream
        .write_all(&request)
        .await
        .map_err(|e| Failure::Upstream(format!("cannot send the request: {e}")))?;

    let mut buffered = Vec::with_capacity(16 << 10);
    let status = loop {
        let (status, headers, len) = read_response_head(upstream, &mut buffered).await?;
        let last = !status.is_informational() || status == StatusCode::SWITCHING_PROTOCOLS;
        let answer = response_head(status, headers, last).map_err(Failure::Upstream)?;
        buffered.drain(..len);
        write_all(client, &answer)
            .await
            .map_err(|_| Failure::Client(status))?;
        if last {
            break status;
        }
    };
    // Body bytes that came with the head, then the rest straight from socket to socket.
    write_all(client, &buffered)
        .await
        .map_err(|_| Failure::Client(status))?;
    let moved = |n: u64| {
        counters.read.fetch_add(n, Ordering::Relaxed);
    };
    tokio::select! {
        result = splice::one_way(&upstream.inner, client, pipe, &conn.activity, moved) => {
            result.map_err(|_| Failure::Client(status))?;
        }
        () = client_gone(client) => return Err(Failure::Client(status)),
    }
    Ok(status)
}

/// The request head as forwarded: origin-form target, hop-by-hop fields and `Expect` removed,
/// `Host` from the judged target, `Via` added, `Connection: close`.
fn origin_form(head: &RequestHead, target: &Target) -> Vec<u8> {
    let mut headers = head.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(EXPECT);
    if let Ok(host) = HeaderValue::from_str(&host_header(target)) {
        headers.insert(HOST, host);
    }
    add_via(&mut headers);
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    serialize_head(&format!("{} {path} HTTP/1.1", head.method), &headers)
}

/// A response head as forwarded: hop-by-hop fields removed but the framing kept, `Via` added,
/// and on the final head `Connection: close`. The framing follows RFC 9112 section 6.3:
/// `Transfer-Encoding` is kept as received and overrides `Content-Length`, which is then
/// dropped (item 3); otherwise every `Content-Length` value must be the same number, sent on
/// as one field (item 5).
///
/// # Errors
///
/// The reason, for a `502`, when the `Content-Length` values are not one number.
fn response_head(
    status: StatusCode,
    mut headers: HeaderMap,
    last: bool,
) -> Result<Vec<u8>, String> {
    let chunked: Vec<HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().cloned().collect();
    let length = if chunked.is_empty() {
        content_length(&headers)?
    } else {
        None
    };
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    for value in chunked {
        headers.append(TRANSFER_ENCODING, value);
    }
    if let Some(length) = length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    add_via(&mut headers);
    if last {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let reason = status.canonical_reason().unwrap_or("");
    Ok(serialize_head(
        &format!("HTTP/1.1 {} {reason}", status.as_u16()),
        &headers,
    ))
}

/// The one length all `Content-Length` fields (and comma-separated values) of `headers`
/// give, if any.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let item = item.trim_ascii();
            let n = std::str::from_utf8(item)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("the destination sent an invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("the destination sent conflicting Content-Length values".into());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// `start` and `headers` as an HTTP/1.1 head. Names and values are those of `http`'s types,
/// which hold no CR, LF or NUL, so nothing can be smuggled into another line.
fn serialize_head(start: &str, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(start.len() + 32 * headers.len() + 4);
    out.extend_from_slice(start.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The head at the start of `bytes` when it qualifies for the fast path.
fn qualifying_request(bytes: &[u8]) -> Option<RequestHead> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(len) = request.parse(bytes).ok()? else {
        return None;
    };
    if request.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(request.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let uri: Uri = request.path?.parse().ok()?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return None;
    }
    let headers = header_map(request.headers)?;
    if [CONTENT_LENGTH, TRANSFER_ENCODING, EXPECT]
        .iter()
        .any(|name| headers.contains_key(name))
    {
        return None;
    }
    Some(RequestHead {
        method,
        uri,
        headers,
        len,
    })
}

/// Parsed fields as a [`HeaderMap`]; `None` when a name or value is not valid for `http`.
fn header_map(fields: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        map.append(
            HeaderName::from_bytes(field.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(field.value).ok()?,
        );
    }
    Some(map)
}

/// Reads from `upstream` into `buffered` until it holds a whole response head; returns its
/// status, fields and length. `buffered` keeps what follows the head.
async fn read_response_head(
    upstream: &mut Metered<TcpStream>,
    buffered: &mut Vec<u8>,
) -> Result<(StatusCode, HeaderMap, usize), Failure> {
    loop {
        if !buffered.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut fields);
            match response.parse(buffered) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response
                        .code
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .ok_or_else(|| bad_head("status code out of range"))?;
                    let headers = header_map(response.headers)
                        .ok_or_else(|| bad_head("a header field is not valid"))?;
                    return Ok((status, headers, len));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(bad_head(&e.to_string())),
            }
        }
        if buffered.len() >= MAX_HEAD {
            return Err(bad_head("longer than 64 KiB"));
        }
        buffered.reserve(16 << 10);
        match upstream.read_buf(buffered).await {
            Ok(0) => {
                return Err(Failure::Upstream(
                    "the destination closed the connection without a complete answer".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::Upstream(format!("reading the answer: {e}"))),
        }
    }
}

fn bad_head(what: &str) -> Failure {
    Failure::Upstream(format!(
        "the destination's response head is malformed: {what}"
    ))
}

/// Writes all of `bytes` to `stream`.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Completes when the client has closed its side (or its connection failed); discards
/// whatever it sends meanwhile.
async fn client_gone(client: &TcpStream) {
    let mut scratch = [0u8; 4096];
    loop {
        if client.readable().await.is_err() {
            return;
        }
        match client.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Half-closes our side and waits (at most [`LINGER`]) for the client to close its own,
/// discarding what it sends: closing a socket with unread input resets the connection, which
/// can destroy answer bytes the client has not read yet.
async fn linger(client: &TcpStream) {
    let _ = rustix::net::shutdown(client, rustix::net::Shutdown::Write);
    let _ = tokio::time::timeout(LINGER, client_gone(client)).await;
}

/// A short answer (status, fields, body) as bytes, with `Connection: close`.
async fn serialized(answer: Response<ProxyBody>) -> Option<Vec<u8>> {
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    let mut headers = parts.headers;
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let reason = parts.status.canonical_reason().unwrap_or("");
    let mut bytes = serialize_head(
        &format!("HTTP/1.1 {} {reason}", parts.status.as_u16()),
        &headers,
    );
    bytes.extend_from_slice(&body);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16) -> Target {
        Target {
            url: format!("http://{host}:{port}/"),
            host: host.to_string(),
            port,
            addresses: vec!["127.0.0.1".parse().unwrap()],
            needs_resolution: false,
        }
    }

    #[test]
    fn only_whole_bodyless_http11_absolute_form_heads_qualify() {
        let ok = "GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\n\r\nrest";
        let head = qualifying_request(ok.as_bytes());
        assert!(matches!(&head, Some(h) if h.len == ok.len() - 4 && h.method == Method::GET));
        for no in [
            "GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n",
            "GET http://a.test/ HTTP/1.0\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "GET https://a.test/ HTTP/1.1\r\n\r\n",
            "GET ftp://a.test/ HTTP/1.1\r\n\r\n",
            "CONNECT a.test:443 HTTP/1.1\r\n\r\n",
            "POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "GARBAGE\r\n\r\n",
        ] {
            assert!(qualifying_request(no.as_bytes()).is_none(), "{no:?}");
        }
    }

    #[test]
    fn forwarded_request_heads_are_origin_form_without_hop_by_hop_fields() {
        let raw = "GET http://a.test:8080/p?q=1 HTTP/1.1\r\nHost: evil.test\r\n\
                   Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Authorization: Basic x\r\n\
                   Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n";
        let head = qualifying_request(raw.as_bytes()).unwrap();
        let text = String::from_utf8(origin_form(&head, &target("a.test", 8080))).unwrap();
        assert!(text.starts_with("GET /p?q=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        for kept in [
            "host: a.test:8080\r\n",
            "accept: */*\r\n",
            "via: 1.1 warden\r\n",
            "connection: close\r\n",
        ] {
            assert!(text.contains(kept), "{kept} missing: {text}");
        }
        for gone in [
            "x-hop",
            "proxy-authorization",
            "keep-alive",
            "te:",
            "upgrade",
            "evil",
        ] {
            assert!(!text.contains(gone), "{gone} forwarded: {text}");
        }
    }

    #[test]
    fn content_length_must_be_one_number() {
        let head = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
            }
            response_head(StatusCode::OK, headers, true).map(|h| String::from_utf8(h).unwrap())
        };
        for same in [&["7"][..], &["7", "7"], &["7, 7"]] {
            let text = head(same).unwrap();
            assert_eq!(text.matches("content-length: 7\r\n").count(), 1, "{text}");
        }
        for bad in [
            &["7", "8"][..],
            &["7, 8"],
            &["-1"],
            &["0x10"],
            &["7 bytes"],
            &[""],
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_heads_keep_their_framing_and_say_close() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("transfer-encoding", "chunked"),
            ("content-length", "5"),
            ("connection", "keep-alive, transfer-encoding, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("content-type", "text/plain"),
        ] {
            headers.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let text =
            String::from_utf8(response_head(StatusCode::OK, headers, true).unwrap()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        for kept in [
            "transfer-encoding: chunked\r\n",
            "content-type: text/plain\r\n",
            "via: 1.1 warden\r\n",
            "connection: close\r\n",
        ] {
            assert!(text.contains(kept), "{kept} missing: {text}");
        }
        for gone in ["keep-alive", "x-hop", "content-length"] {
            assert!(!text.contains(gone), "{gone} forwarded: {text}");
        }
        let interim =
            response_head(StatusCode::from_u16(103).unwrap(), HeaderMap::new(), false).unwrap();
        assert_eq!(
            String::from_utf8(interim).unwrap(),
            "HTTP/1.1 103 Early Hints\r\nvia: 1.1 warden\r\n\r\n"
        );
    }
}
