//! Header rewriting between the client and the upstream: hop-by-hop headers out,
//! forwarding headers in, and the request line adapted to the upstream's HTTP version.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{Version, request, response};

use crate::config::Protocol;
use crate::routing::random;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Is this one of the headers that describe a connection, not the message?
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRAILER
        || name == header::PROXY_AUTHENTICATE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Headers that describe one connection (RFC 9110 §7.6.1), never the message.
/// `te` is handled apart: `te: trailers` must reach gRPC servers.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds the few present; most messages carry none, and a
    // removal attempt per possible name would hash each of them every time.
    let mut present: [Option<HeaderName>; 8] = Default::default();
    let mut count = 0;
    for name in headers.keys() {
        if is_hop_by_hop(name) && count < present.len() {
            present[count] = Some(name.clone());
            count += 1;
        }
    }
    for name in present.iter().flatten() {
        if name == header::CONNECTION {
            strip_listed(headers, keep_upgrade);
            headers.remove(header::CONNECTION);
        } else if name == header::TE {
            if headers
                .get(header::TE)
                .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
            {
                headers.remove(header::TE);
            }
        } else if name != header::UPGRADE || !keep_upgrade {
            headers.remove(name);
        }
    }
}

/// Removes the headers that `Connection` names (RFC 9110 §7.6.1). The usual tokens
/// (`keep-alive`, `close`, `upgrade`) are options, or headers handled anyway.
fn strip_listed(headers: &mut HeaderMap, keep_upgrade: bool) {
    let mut extra: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("te")
                || (keep_upgrade && token.eq_ignore_ascii_case("upgrade"))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                extra.push(name);
            }
        }
    }
    for name in extra {
        headers.remove(name);
    }
}

/// Is this an HTTP/1.1 Upgrade request (WebSocket and the like)?
pub fn is_upgrade(parts: &request::Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.headers.contains_key(header::UPGRADE)
        && parts.headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// What the downstream connection contributes to forwarding headers.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The client's IP, as it goes into `x-forwarded-for`.
    pub client_ip: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
}

/// Rewrites a client request for the upstream.
pub fn prepare_request(
    parts: &mut request::Parts,
    fwd: &Forwarding,
    upstream: Protocol,
    upgrade: bool,
) {
    let from_h2 = parts.version == Version::HTTP_2;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    // x-forwarded-for: append this hop's client. Several field lines are one list
    // (RFC 9110 §5.3), so all of them are kept, in order.
    let mut v = Vec::new();
    for prev in parts.headers.get_all(&X_FORWARDED_FOR) {
        v.extend_from_slice(prev.as_bytes());
        v.extend_from_slice(b", ");
    }
    let xff = if v.is_empty() {
        fwd.client_ip.clone()
    } else {
        v.extend_from_slice(fwd.client_ip.as_bytes());
        HeaderValue::from_bytes(&v).unwrap_or_else(|_| fwd.client_ip.clone())
    };
    parts.headers.insert(X_FORWARDED_FOR.clone(), xff);
    parts
        .headers
        .insert(X_FORWARDED_PROTO.clone(), fwd.proto.clone());
    if !parts.headers.contains_key(&X_REQUEST_ID) {
        parts.headers.insert(X_REQUEST_ID.clone(), new_request_id());
    }

    match upstream {
        Protocol::Http1 => to_http1(parts, from_h2),
        Protocol::Http2 => to_http2(parts),
    }
}

/// HTTP/1.1 upstream: origin-form target, a `Host` header, one `Cookie` header.
fn to_http1(parts: &mut request::Parts, from_h2: bool) {
    if parts.uri.authority().is_some() {
        if !parts.headers.contains_key(header::HOST)
            && let Some(auth) = parts.uri.authority()
            && let Ok(host) = HeaderValue::from_str(auth.as_str())
        {
            parts.headers.insert(header::HOST, host);
        }
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(path);
    }
    if from_h2 {
        // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        let mut cookies = parts.headers.get_all(header::COOKIE).iter();
        if let (Some(first), Some(_)) = (cookies.next(), cookies.next()) {
            let mut joined = first.as_bytes().to_vec();
            for c in parts.headers.get_all(header::COOKIE).iter().skip(1) {
                joined.extend_from_slice(b"; ");
                joined.extend_from_slice(c.as_bytes());
            }
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                parts.headers.insert(header::COOKIE, v);
            }
        }
    }
    parts.version = Version::HTTP_11;
}

/// HTTP/2 upstream: the authority moves from `Host` into `:authority`.
fn to_http2(parts: &mut request::Parts) {
    if parts.uri.authority().is_none() {
        let authority = parts
            .headers
            .get(header::HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok());
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(authority.unwrap_or_else(|| Authority::from_static("localhost")));
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = Uri::from_parts(uri).unwrap_or_default();
    }
    parts.headers.remove(header::HOST);
    parts.version = Version::HTTP_2;
}

/// Rewrites an upstream response for the client.
pub fn prepare_response(parts: &mut response::Parts, upgrade: bool) {
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// A random (version 4) UUID, as Envoy generates for `x-request-id`.
pub fn new_request_id() -> HeaderValue {
    HeaderValue::from_bytes(&request_id_bytes()).expect("hex and dashes are valid header bytes")
}

/// A random (version 4) UUID in its 36-character text form.
pub fn request_id_bytes() -> [u8; 36] {
    let hi = random::next_u64();
    let lo = random::next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(b >> 4) as usize];
        out[o + 1] = HEX[(b & 0xf) as usize];
        o += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd() -> Forwarding {
        Forwarding {
            client_ip: HeaderValue::from_static("10.0.0.7"),
            proto: HeaderValue::from_static("http"),
        }
    }

    #[test]
    fn strips_hop_by_hop_and_adds_forwarding() {
        let req = http::Request::get("/x")
            .header("host", "shop")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("te", "gzip")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-request-id", "abc")
            .body(())
            .unwrap();
        let (mut parts, _) = req.into_parts();
        prepare_request(&mut parts, &fwd(), Protocol::Http1, false);
        let h = &parts.headers;
        assert!(h.get("connection").is_none());
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("te").is_none());
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-request-id"], "abc");
        assert_eq!(h["host"], "shop");
    }

    #[test]
    fn keeps_te_trailers_and_generates_request_ids() {
        let (mut parts, _) = http::Request::get("/x")
            .header("te", "trailers")
            .body(())
            .unwrap()
            .into_parts();
        prepare_request(&mut parts, &fwd(), Protocol::Http2, false);
        assert_eq!(parts.headers["te"], "trailers");
        let id = parts.headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn h2_to_h1_moves_authority_to_host() {
        let (mut parts, _) = http::Request::get("http://shop.example/a?b=1")
            .version(Version::HTTP_2)
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(())
            .unwrap()
            .into_parts();
        prepare_request(&mut parts, &fwd(), Protocol::Http1, false);
        assert_eq!(parts.uri, "/a?b=1");
        assert_eq!(parts.headers["host"], "shop.example");
        assert_eq!(parts.headers["cookie"], "a=1; b=2");
        assert_eq!(parts.version, Version::HTTP_11);
    }

    #[test]
    fn h1_to_h2_moves_host_to_authority() {
        let (mut parts, _) = http::Request::get("/a")
            .header("host", "shop:8080")
            .body(())
            .unwrap()
            .into_parts();
        prepare_request(&mut parts, &fwd(), Protocol::Http2, false);
        assert_eq!(parts.uri, "http://shop:8080/a");
        assert!(parts.headers.get("host").is_none());
    }

    #[test]
    fn upgrade_keeps_upgrade_headers() {
        let (mut parts, _) = http::Request::get("/ws")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap()
            .into_parts();
        assert!(is_upgrade(&parts));
        prepare_request(&mut parts, &fwd(), Protocol::Http1, true);
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert_eq!(parts.headers["connection"], "upgrade");
    }
}
