//! Writing heads: the request weir sends upstream (the client's head with the proxy's
//! edits, header lines otherwise copied byte for byte), the response head it sends the
//! client, and its own short answers.

use std::ops::Range;

use super::head::{Framing, RequestHead, ResponseHead, Role, role};
use crate::proxy::headers::{Forwarding, request_id_bytes};

/// Writes the head weir sends upstream for `req` into `out` (emptied first) and returns
/// where the `x-request-id` value sits in it, for the access log.
pub(super) fn request_head(
    out: &mut Vec<u8>,
    req: &RequestHead<'_, '_>,
    fwd: &Forwarding,
) -> Range<usize> {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    let mut request_id = 0..0;
    let absolute = !req.target.starts_with('/') && req.target != "*";
    match absolute
        .then(|| http::Uri::try_from(req.target).ok())
        .flatten()
    {
        // Absolute form (`GET http://host/path`): origin form upstream, with the
        // authority as `Host` when the client sent none.
        Some(uri) => {
            out.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\n");
            if req.facts.host.is_none()
                && let Some(authority) = uri.authority()
            {
                line(out, b"host", authority.as_str().as_bytes());
            }
        }
        None => {
            out.extend_from_slice(req.target.as_bytes());
            out.extend_from_slice(b" HTTP/1.1\r\n");
        }
    }
    let mut forwarded_for = false;
    for h in req.headers {
        let keep = match role(h.name) {
            Role::EndToEnd => req.facts.listed.is_empty() || !req.facts.listed.contains(h.name),
            Role::Host | Role::ContentLength | Role::ContentType => true,
            Role::XRequestId => {
                request_id =
                    out.len() + h.name.len() + 2..out.len() + h.name.len() + 2 + h.value.len();
                true
            }
            Role::Te => h.value.eq_ignore_ascii_case(b"trailers"),
            Role::Upgrade => req.upgrade,
            // weir answers `100-continue` itself (as Envoy does by default).
            Role::Expect => !req.facts.expect_continue,
            Role::XForwardedFor => {
                forwarded_for = true;
                false
            }
            Role::Connection | Role::HopByHop | Role::TransferEncoding | Role::XForwardedProto => {
                false
            }
        };
        if keep {
            line(out, h.name.as_bytes(), h.value);
        }
    }
    if req.framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if req.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    // x-forwarded-for: this hop's client appended; several field lines are one list
    // (RFC 9110 §5.3), so all of them are kept, in order.
    out.extend_from_slice(b"x-forwarded-for: ");
    if forwarded_for {
        for h in req
            .headers
            .iter()
            .filter(|h| role(h.name) == Role::XForwardedFor)
        {
            out.extend_from_slice(h.value);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.client_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(fwd.proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !req.facts.has_request_id {
        out.extend_from_slice(b"x-request-id: ");
        request_id = out.len()..out.len() + 36;
        out.extend_from_slice(&request_id_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    request_id
}

/// What the `Connection` header of a response to the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnectionHeader {
    /// Nothing: the HTTP/1.1 default (the connection stays open).
    Default,
    Close,
    /// An HTTP/1.0 client's connection stays open.
    KeepAlive,
    Upgrade,
}

impl ConnectionHeader {
    pub(super) fn line(self) -> &'static [u8] {
        match self {
            ConnectionHeader::Default => b"",
            ConnectionHeader::Close => b"connection: close\r\n",
            ConnectionHeader::KeepAlive => b"connection: keep-alive\r\n",
            ConnectionHeader::Upgrade => b"connection: upgrade\r\n",
        }
    }
}

/// Writes the head of the response to the client into `out` (emptied first):
/// hop-by-hop headers out; `chunked` says the body passes through chunked.
pub(super) fn response_head(
    out: &mut Vec<u8>,
    resp: &ResponseHead<'_, '_>,
    chunked: bool,
    connection: ConnectionHeader,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    status_code(out, resp.status);
    out.push(b' ');
    out.extend_from_slice(resp.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers {
        let keep = match role(h.name) {
            Role::EndToEnd => resp.listed.is_empty() || !resp.listed.contains(h.name),
            Role::Upgrade => resp.status == 101,
            // A chunked body's length is its framing's business (RFC 9112 §6.3).
            Role::ContentLength => resp.framing != Framing::Chunked,
            Role::Connection | Role::HopByHop | Role::TransferEncoding | Role::Te => false,
            _ => true,
        };
        if keep {
            line(out, h.name.as_bytes(), h.value);
        }
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(connection.line());
    out.extend_from_slice(b"\r\n");
}

/// Writes one of weir's own answers (a short text body) into `out` (emptied first).
pub(super) fn local_reply(
    out: &mut Vec<u8>,
    status: u16,
    flag: Option<&str>,
    message: &str,
    connection: ConnectionHeader,
    head_request: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    status_code(out, status);
    out.push(b' ');
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\n");
    line(out, b"date", crate::civil::http_date_now().as_bytes());
    if let Some(flag) = flag {
        line(out, b"x-weir-response-flags", flag.as_bytes());
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(connection.line());
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(message.as_bytes());
    }
}

/// One header line.
pub(super) fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A status code as three digits (httparse accepts only three-digit codes).
fn status_code(out: &mut Vec<u8>, status: u16) {
    let s = status.min(999);
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::head::{header_storage, parse_request, parse_response};
    use super::*;

    fn fwd() -> Forwarding {
        Forwarding {
            client_ip: HeaderValue::from_static("10.0.0.7"),
            proto: HeaderValue::from_static("http"),
        }
    }

    #[test]
    fn request_head_strips_hop_by_hop_and_adds_forwarding() {
        let raw = b"GET /x?y=1 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n";
        let mut s = header_storage();
        let req = parse_request(raw, &mut s).unwrap().unwrap();
        let mut out = Vec::new();
        let id = request_head(&mut out, &req, &fwd());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n"),
            "{text}"
        );
        for gone in ["Connection", "X-Secret", "Keep-Alive", "TE:", "https"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(
            text.contains("x-forwarded-for: 1.2.3.4, 5.6.7.8, 10.0.0.7\r\n"),
            "{text}"
        );
        assert!(text.contains("x-forwarded-proto: http\r\n"));
        assert_eq!(out[id].len(), 36);
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn request_head_absolute_form_and_kept_request_id() {
        let raw =
            b"GET http://shop.example:8080/a HTTP/1.1\r\nX-Request-Id: abc\r\nTE: trailers\r\n\r\n";
        let mut s = header_storage();
        let req = parse_request(raw, &mut s).unwrap().unwrap();
        let mut out = Vec::new();
        let id = request_head(&mut out, &req, &fwd());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("GET /a HTTP/1.1\r\nhost: shop.example:8080\r\n"),
            "{text}"
        );
        assert!(text.contains("TE: trailers\r\n"));
        assert_eq!(&out[id], b"abc");
    }

    #[test]
    fn response_head_and_local_reply() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut s = header_storage();
        let resp = parse_response(raw, &mut s, false).unwrap().unwrap();
        let mut out = Vec::new();
        response_head(&mut out, &resp, true, ConnectionHeader::Close);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        local_reply(
            &mut out,
            503,
            Some("UF"),
            "down\n",
            ConnectionHeader::Default,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        let (head, date_and_rest) = text.split_once("date: ").unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        );
        let (date, rest) = date_and_rest.split_once("\r\n").unwrap();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        assert_eq!(
            rest,
            "x-weir-response-flags: UF\r\ncontent-length: 5\r\n\r\ndown\n"
        );
    }
}
