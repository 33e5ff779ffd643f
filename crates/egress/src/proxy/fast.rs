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
//!    except that the framing (`Transfer-Encoding`, or one `Content-Length`) is kept, since
//!    the body passes unchanged; the client is told `Connection: close`. A `101` (never asked
//!    for: `Upgrade` is not forwarded) is answered `502`.
//! 5. The body moves as its framing (RFC 9112 section 6.3) delimits it, and not one byte
//!    further, so a destination cannot append a forged second answer: none after `HEAD`,
//!    `204` and `304`; exactly `Content-Length` bytes, spliced; a chunked body chunk by chunk,
//!    each size line and the trailers parsed with `httparse` and re-serialized, each chunk's
//!    data spliced; otherwise until the destination closes. `Transfer-Encoding` goes on as
//!    one field listing the codings the framing was decided on (empty list items dropped, as
//!    clients drop them). Once a head with a body is out, any end but the body's own (the
//!    destination failing or breaking the framing, the idle timeout, the client leaving)
//!    resets the client connection, so that the client cannot take a cut body for a whole
//!    one.
//! 6. The connection then ends. The client's next request comes on a new connection, where it
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

/// Longest request head the fast path reads, in bytes; a longer one takes the hyper path.
const MAX_REQUEST_HEAD: usize = 64 << 10;

/// Longest response head (and trailer section), in bytes; a longer one is answered `502`.
/// hyper's default read buffer limit, so that both paths take the same answers.
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;

/// Longest chunk-size line (with extensions), in bytes.
const MAX_CHUNK_LINE: usize = 4096;

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
    let mut peeked = vec![0u8; MAX_REQUEST_HEAD];
    let n = tokio::select! {
        n = client.peek(&mut peeked) => match n {
            Ok(n) => n,
            Err(_) => return First::Hyper(None),
        },
        () = conn.shared.cancel.cancelled() => return First::Done,
    };
    if n > 0 {
        // A head arriving is activity, as hyper's reading it is on the hyper path.
        conn.activity.touch();
    }
    let Some(head) = qualifying_request(&peeked[..n]) else {
        return First::Hyper(None);
    };
    drop(peeked);
    let Ok(pipe) = Pipe::new() else {
        return First::Hyper(None);
    };

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
        guard.client_left();
        return First::Done;
    }
    let client: &TcpStream = client;
    let result = tokio::select! {
        result = exchange(client, &mut upstream, &head, &target, &pipe, conn, &counters) => result,
        // A client that closes its side is gone (hyper's path treats it so too).
        () = client_gone(client) => Err(Failure::Client),
    };
    match result {
        Ok(status) => {
            guard.entry.status = status.as_u16();
            reset_on_close(client, false);
        }
        Err(Failure::Upstream(reason)) => {
            let answer = guard.error(StatusCode::BAD_GATEWAY, "upstream", reason);
            if let Some(bytes) = serialized(answer, head.method == Method::HEAD).await {
                let _ = write_all(client, &bytes).await;
            }
        }
        Err(Failure::Truncated(status, reason)) => {
            guard.entry.decision = super::Decision::Error;
            guard.record(status, "upstream", &reason);
            // Closed with a reset (set when the head went out): the client must not take the
            // cut body for a whole one.
            return First::Done;
        }
        Err(Failure::Client) => {
            guard.client_left();
            // No half-close: it would end the body cleanly; closing resets.
            return First::Done;
        }
    }
    // The exchange is over: log it now, not after the client has closed (its next request,
    // on a new connection, may be logged meanwhile, and the lingering is not the exchange's).
    drop(guard);
    linger(client).await;
    First::Done
}

/// Why an exchange stopped early.
enum Failure {
    /// The destination failed before its final response head went out: answer `502` with
    /// this reason.
    Upstream(String),
    /// The destination failed, or broke the body's framing, after its final head with this
    /// status went out.
    Truncated(StatusCode, String),
    /// The client went away.
    Client,
}

/// How a response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, PartialEq)]
enum Framing {
    /// No body: an answer to `HEAD`, a `1xx`, `204` or `304` (item 1).
    Empty,
    /// `Transfer-Encoding` ending in `chunked` (item 4).
    Chunked,
    /// `Content-Length` bytes (item 6).
    Length(u64),
    /// Until the destination closes: another `Transfer-Encoding`, or no framing field (items
    /// 4 and 8).
    UntilClose,
}

/// The framing of an answer with `status` and `headers` to a `method` request.
///
/// # Errors
///
/// The reason, for a `502`, when the `Content-Length` values are not one number.
fn framing(method: &Method, status: StatusCode, headers: &HeaderMap) -> Result<Framing, String> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(last) = codings(headers).last() {
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Forwards the request head, the response head(s) and the body, as its framing delimits it;
/// returns the final status, which is also stored in `counters.answered` once its head went
/// out.
async fn exchange(
    client: &TcpStream,
    upstream: &mut Metered<TcpStream>,
    head: &RequestHead,
    target: &Target,
    pipe: &Pipe,
    conn: &Conn,
    counters: &Counters,
) -> Result<StatusCode, Failure> {
    let request = origin_form(head, target);
    upstream
        .write_all(&request)
        .await
        .map_err(|e| Failure::Upstream(format!("cannot send the request: {e}")))?;

    let mut buffered = Vec::with_capacity(16 << 10);
    let (status, framing) = loop {
        let (status, headers, len) = read_response_head(upstream, &mut buffered).await?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Failure::Upstream(
                "the destination switched protocols, which this proxy never asks for".into(),
            ));
        }
        let last = !status.is_informational();
        let framing = framing(&head.method, status, &headers).map_err(Failure::Upstream)?;
        let answer = response_head(status, headers, last).map_err(Failure::Upstream)?;
        buffered.drain(..len);
        write_all(client, &answer)
            .await
            .map_err(|_| Failure::Client)?;
        if last {
            counters.answered.store(status.as_u16(), Ordering::Relaxed);
            break (status, framing);
        }
    };
    if framing != Framing::Empty {
        // From here until the body is through, the connection closing any other way (idle
        // timeout, client gone, destination failing) resets it: a clean end could pass a cut
        // body for a whole one where the body runs until the connection closes.
        reset_on_close(client, true);
    }
    let mut body = Body {
        client,
        upstream,
        buffered,
        pipe,
        conn,
        counters,
        status,
    };
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => body.exactly(n).await?,
        Framing::UntilClose => body.until_close().await?,
        Framing::Chunked => body.chunked().await?,
    }
    Ok(status)
}

/// A response body on its way to the client: bytes already read (after the head) go from
/// `buffered`, the rest is spliced.
struct Body<'a> {
    client: &'a TcpStream,
    upstream: &'a mut Metered<TcpStream>,
    buffered: Vec<u8>,
    pipe: &'a Pipe,
    conn: &'a Conn,
    counters: &'a Counters,
    status: StatusCode,
}

impl Body<'_> {
    fn truncated(&self, what: &str) -> Failure {
        Failure::Truncated(self.status, what.to_string())
    }

    /// Sends `bytes` (not from the destination) to the client.
    async fn send(&self, bytes: &[u8]) -> Result<(), Failure> {
        write_all(self.client, bytes)
            .await
            .map_err(|_| Failure::Client)
    }

    /// Moves `n` body bytes: the buffered ones first, then spliced.
    async fn exactly(&mut self, n: u64) -> Result<(), Failure> {
        let from_buffer = self
            .buffered
            .len()
            .min(usize::try_from(n).unwrap_or(usize::MAX));
        self.send(&self.buffered[..from_buffer]).await?;
        self.buffered.drain(..from_buffer);
        let rest = n - from_buffer as u64;
        if rest == 0 {
            return Ok(());
        }
        let moved = self.splice(Some(rest)).await?;
        if moved < rest {
            return Err(self.truncated("the destination closed the connection mid-body"));
        }
        Ok(())
    }

    /// Moves everything until the destination closes.
    async fn until_close(&mut self) -> Result<(), Failure> {
        self.send(&self.buffered).await?;
        self.buffered.clear();
        self.splice(None).await.map(|_| ())
    }

    /// Moves a chunked body chunk by chunk: each size line (extensions dropped) and the
    /// trailer section are parsed with `httparse` and sent on re-serialized, each chunk's data
    /// spliced; nothing after the last chunk is forwarded.
    async fn chunked(&mut self) -> Result<(), Failure> {
        loop {
            let (line, size) = loop {
                // httparse takes a line without digits for size 0; the grammar needs one
                // (RFC 9112 section 7.1: chunk-size = 1*HEXDIG).
                if self
                    .buffered
                    .first()
                    .is_some_and(|b| !b.is_ascii_hexdigit())
                {
                    return Err(self.truncated("the destination sent an invalid chunk size"));
                }
                match httparse::parse_chunk_size(&self.buffered) {
                    Ok(httparse::Status::Complete(found)) => break found,
                    Ok(httparse::Status::Partial) if self.buffered.len() < MAX_CHUNK_LINE => {
                        self.fill().await?;
                    }
                    _ => return Err(self.truncated("the destination sent an invalid chunk size")),
                }
            };
            self.buffered.drain(..line);
            if size == 0 {
                return self.trailers().await;
            }
            self.send(format!("{size:x}\r\n").as_bytes()).await?;
            self.exactly(size).await?;
            while self.buffered.len() < 2 {
                self.fill().await?;
            }
            if &self.buffered[..2] != b"\r\n" {
                return Err(self.truncated("the destination sent a chunk longer than its size"));
            }
            self.buffered.drain(..2);
            self.send(b"\r\n").await?;
        }
    }

    /// After the last chunk: the trailer fields and the blank line that ends the body.
    async fn trailers(&mut self) -> Result<(), Failure> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(&self.buffered, &mut fields) {
                Ok(httparse::Status::Complete((len, fields))) => {
                    let trailers = header_map(fields)
                        .ok_or_else(|| self.truncated("a trailer field is not valid"))?;
                    // The last chunk, the trailer fields, the blank line that ends the body.
                    let end = serialize_head("0", &trailers);
                    self.buffered.drain(..len);
                    return self.send(&end).await;
                }
                Ok(httparse::Status::Partial) if self.buffered.len() < MAX_RESPONSE_HEAD => {
                    self.fill().await?;
                }
                _ => return Err(self.truncated("the destination sent invalid trailer fields")),
            }
        }
    }

    /// Reads more of the body into `buffered`; the destination closing here is a truncation.
    async fn fill(&mut self) -> Result<(), Failure> {
        self.buffered.reserve(4 << 10);
        match self.upstream.read_buf(&mut self.buffered).await {
            Ok(0) => Err(self.truncated("the destination closed the connection mid-body")),
            Ok(_) => Ok(()),
            Err(e) => Err(self.truncated(&format!("reading the body: {e}"))),
        }
    }

    /// Splices up to `limit` bytes (or until the destination closes) to the client.
    async fn splice(&mut self, limit: Option<u64>) -> Result<u64, Failure> {
        let counters = self.counters;
        let read = |n: u64| {
            counters.read.fetch_add(n, Ordering::Relaxed);
        };
        splice::transfer(
            &self.upstream.inner,
            self.client,
            self.pipe,
            limit,
            &self.conn.activity,
            read,
        )
        .await
        .map_err(|e| match e {
            splice::TransferError::Read(e) => self.truncated(&format!("reading the body: {e}")),
            splice::TransferError::Write(_) => Failure::Client,
        })
    }
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
    // `PathAndQuery`'s Display (not `as_str`) gives `/?q` for a query-only target.
    let path = head
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), ToString::to_string);
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
    // One normalized `Transfer-Encoding`: the codings `framing` decided on, so that the client
    // cannot read the body's end elsewhere than this proxy does.
    let listed = codings(&headers).join(&b", "[..]);
    let transfer_encoding = HeaderValue::from_bytes(&listed)
        .ok()
        .filter(|_| !listed.is_empty());
    let length = if transfer_encoding.is_none() {
        content_length(&headers)?
    } else {
        None
    };
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    if let Some(value) = transfer_encoding {
        headers.insert(TRANSFER_ENCODING, value);
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

/// The transfer codings of `headers`, in order, empty list items left out (RFC 9110 section
/// 5.6.1: a recipient ignores them, and so must the framing this proxy decides on).
fn codings(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect()
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
        if buffered.len() >= MAX_RESPONSE_HEAD {
            return Err(bad_head("longer than 400 KiB"));
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

/// Makes closing `client` reset the connection (`SO_LINGER` 0) or, with `reset` false, end
/// it normally again.
fn reset_on_close(client: &TcpStream, reset: bool) {
    let _ = rustix::net::sockopt::set_socket_linger(client, reset.then_some(Duration::ZERO));
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

/// A short answer (status, fields, body) as bytes, with `Connection: close`; without the body
/// (but with its length) when it answers a `HEAD` request.
async fn serialized(answer: Response<ProxyBody>, head_request: bool) -> Option<Vec<u8>> {
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
    if !head_request {
        bytes.extend_from_slice(&body);
    }
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
    fn framing_follows_rfc_9112_section_6_3() {
        let with = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (k, v) in pairs {
                headers.append(
                    HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            headers
        };
        let get = |status: u16, headers: &HeaderMap| {
            framing(&Method::GET, StatusCode::from_u16(status).unwrap(), headers).unwrap()
        };
        let length = with(&[("content-length", "5")]);
        assert_eq!(
            framing(&Method::HEAD, StatusCode::OK, &length).unwrap(),
            Framing::Empty
        );
        for status in [103, 204, 304] {
            assert_eq!(get(status, &length), Framing::Empty, "{status}");
        }
        assert_eq!(get(200, &length), Framing::Length(5));
        assert_eq!(get(200, &HeaderMap::new()), Framing::UntilClose);
        let te = |v: &str| {
            get(
                200,
                &with(&[("transfer-encoding", v), ("content-length", "5")]),
            )
        };
        assert_eq!(te("chunked"), Framing::Chunked);
        assert_eq!(te("gzip, Chunked"), Framing::Chunked);
        assert_eq!(te("chunked, gzip"), Framing::UntilClose);
        assert!(framing(
            &Method::GET,
            StatusCode::OK,
            &with(&[("content-length", "x")])
        )
        .is_err());
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
