//! HTTP/1.1 message heads read in place with httparse, and the facts forwarding needs
//! from them: how the body is framed, whether the connection stays open, whether the
//! client asks for an upgrade.

use std::mem::MaybeUninit;

use httparse::Header;

use crate::headers::{Lines, Role, role, tokens, trim_ows};

/// The most header lines a message may carry (nginx and hyper allow about 100).
pub(crate) const MAX_HEADERS: usize = 128;
/// The largest head weir reads; bigger ones get 431 (nginx allows 4 x 8 KiB lines,
/// Envoy 60 KiB in all).
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Where a parsed head's header lines and their roles are kept: on the parser's
/// stack, so a head costs no allocation. Each line is classified once, by the parser,
/// and the header policy reads the role from here.
pub(crate) struct HeadStorage<'b> {
    headers: [MaybeUninit<Header<'b>>; MAX_HEADERS],
    roles: [Role; MAX_HEADERS],
}

pub(crate) fn header_storage<'b>() -> HeadStorage<'b> {
    HeadStorage {
        headers: [const { MaybeUninit::uninit() }; MAX_HEADERS],
        roles: [Role::EndToEnd; MAX_HEADERS],
    }
}

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Only responses: the body runs until the upstream closes the connection.
    UntilClose,
}

/// Why a head cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("{0}")]
    Invalid(&'static str),
    /// A request weir understands but does not support (501).
    #[error("{0}")]
    NotImplemented(&'static str),
}

/// The facts all heads share, gathered in one pass over the header lines.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Facts<'b> {
    pub content_length: Option<u64>,
    /// `Some(true)` when `Transfer-Encoding` ends with `chunked`.
    pub chunked: Option<bool>,
    /// Transfer codings named, over every `Transfer-Encoding` line.
    pub transfer_codings: u8,
    /// `Host` lines.
    pub hosts: u8,
    /// The first protocol an `Upgrade` header names (`websocket`).
    pub upgrade: Option<&'b [u8]>,
    pub close: bool,
    pub keep_alive: bool,
    pub connection_upgrade: bool,
    pub has_upgrade: bool,
    pub expect_continue: bool,
    pub host: Option<&'b str>,
    pub grpc: bool,
    /// `Connection` names headers to drop (other than its options).
    pub listed: bool,
}

/// Classifies every line into `roles` and gathers the facts.
fn facts<'b>(headers: &[Header<'b>], roles: &mut [Role]) -> Result<Facts<'b>, HeadError> {
    let mut f = Facts::default();
    for (h, slot) in headers.iter().zip(roles.iter_mut()) {
        let role = role(h.name);
        *slot = role;
        match role {
            Role::ContentLength => {
                let n = content_length(h.value)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::Invalid("conflicting content-length headers"));
                }
                f.content_length = Some(n);
            }
            Role::TransferEncoding => {
                for coding in tokens(h.value) {
                    f.transfer_codings = f.transfer_codings.saturating_add(1);
                    f.chunked = Some(coding.eq_ignore_ascii_case(b"chunked"));
                }
                // An empty value names no coding, but is no body length either.
                f.chunked.get_or_insert(false);
            }
            Role::Connection => {
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        f.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        f.connection_upgrade = true;
                    } else if !token.eq_ignore_ascii_case(b"te") {
                        f.listed = true;
                    }
                }
            }
            Role::Upgrade => {
                f.has_upgrade = true;
                f.upgrade = f.upgrade.or_else(|| tokens(h.value).next());
            }
            Role::Expect => f.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue"),
            Role::Host => {
                f.hosts = f.hosts.saturating_add(1);
                if !crate::headers::valid_host(h.value) {
                    return Err(HeadError::Invalid("invalid host header"));
                }
                if f.host.is_none() {
                    // Valid hosts are ASCII: this never fails.
                    f.host = std::str::from_utf8(h.value).ok();
                }
            }
            Role::ContentType => f.grpc = h.value.starts_with(b"application/grpc"),
            // `Content_Length` and `Transfer_Encoding` are other headers to weir, but
            // servers that map `_` to `-` read them as framing: a request carrying one
            // would be framed two ways.
            Role::EndToEnd if matches!(h.name.len(), 14 | 17) && h.name.contains('_') => {
                let dashed = h.name.replace('_', "-");
                if matches!(
                    crate::headers::role(&dashed),
                    Role::ContentLength | Role::TransferEncoding
                ) {
                    return Err(HeadError::Invalid(
                        "a framing header name spelt with underscores is refused",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(f)
}

/// `Content-Length`: digits, or a list of equal values (RFC 9110 §8.6).
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::Invalid("invalid content-length"));
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if result.is_some_and(|prev| prev != n) {
            return Err(HeadError::Invalid("conflicting content-length values"));
        }
        result = Some(n);
    }
    result.ok_or(HeadError::Invalid("invalid content-length"))
}

fn map_parse_error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => HeadError::Invalid("unsupported HTTP version"),
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            HeadError::Invalid("invalid header line")
        }
        _ => HeadError::Invalid("malformed request line or head"),
    }
}

/// A client's request head, borrowed from the connection's buffer.
#[derive(Debug)]
pub(crate) struct RequestHead<'h, 'b> {
    pub method: &'b str,
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: &'h [Header<'b>],
    roles: &'h [Role],
    /// The head as received (its header lines are copied from here in runs).
    bytes: &'b [u8],
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    /// An HTTP/1.1 `Connection: upgrade` request with an `Upgrade` header.
    pub upgrade: bool,
    pub facts: Facts<'b>,
}

impl<'h, 'b> RequestHead<'h, 'b> {
    /// The header fields with their roles, for the header policy.
    pub(crate) fn fields(&self) -> Lines<'h, 'b> {
        Lines {
            headers: self.headers,
            roles: self.roles,
            listed: self.facts.listed,
            bytes: self.bytes,
        }
    }
}

/// Parses a request head; `None` when `buf` does not hold all of it yet.
pub(crate) fn parse_request<'h, 'b>(
    buf: &'b [u8],
    storage: &'h mut HeadStorage<'b>,
) -> Result<Option<RequestHead<'h, 'b>>, HeadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let HeadStorage { headers, roles } = storage;
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Invalid("malformed request line"));
    };
    let headers: &'h [Header<'b>] = req.headers;
    let roles = &mut roles[..headers.len()];
    let f = facts(headers, roles)?;
    let roles: &'h [Role] = roles;
    // A request names its host once; HTTP/1.1 must name it (RFC 9112 §3.2).
    if f.hosts > 1 {
        return Err(HeadError::Invalid("more than one host header"));
    }
    if minor == 1 && f.hosts == 0 {
        return Err(HeadError::Invalid("missing host header"));
    }
    let framing = match (f.chunked, f.content_length) {
        (Some(_), Some(_)) => {
            return Err(HeadError::Invalid(
                "both content-length and transfer-encoding are present",
            ));
        }
        (Some(true), None) if minor == 1 && f.transfer_codings == 1 => Framing::Chunked,
        (Some(true), None) if minor == 1 => {
            return Err(HeadError::NotImplemented(
                "transfer codings other than chunked are not supported",
            ));
        }
        (Some(_), None) => {
            return Err(HeadError::Invalid(
                "transfer-encoding must end with chunked (and needs HTTP/1.1)",
            ));
        }
        (None, Some(0) | None) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    };
    let keep_alive = if minor == 1 {
        !f.close
    } else {
        f.keep_alive && !f.close
    };
    Ok(Some(RequestHead {
        method,
        target,
        minor,
        headers,
        roles,
        bytes: &buf[..len],
        len,
        framing,
        keep_alive,
        upgrade: minor == 1 && f.has_upgrade && f.connection_upgrade,
        facts: f,
    }))
}

/// An upstream's response head, borrowed from the upstream buffer.
#[derive(Debug)]
pub(crate) struct ResponseHead<'h, 'b> {
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [Header<'b>],
    roles: &'h [Role],
    listed: bool,
    /// The head as received (its header lines are copied from here in runs).
    bytes: &'b [u8],
    pub len: usize,
    pub framing: Framing,
    /// The upstream keeps the connection open after this response.
    pub reusable: bool,
}

impl<'h, 'b> ResponseHead<'h, 'b> {
    /// The header fields with their roles, for the header policy.
    pub(crate) fn fields(&self) -> Lines<'h, 'b> {
        Lines {
            headers: self.headers,
            roles: self.roles,
            listed: self.listed,
            bytes: self.bytes,
        }
    }
}

/// Parses a response head; `None` when `buf` does not hold all of it yet. The body's
/// framing depends on the request: a response to HEAD has none.
pub(crate) fn parse_response<'h, 'b>(
    buf: &'b [u8],
    storage: &'h mut HeadStorage<'b>,
    head_request: bool,
) -> Result<Option<ResponseHead<'h, 'b>>, HeadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let HeadStorage { headers, roles } = storage;
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response_with_uninit_headers(&mut resp, buf, headers)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Invalid("malformed status line"));
    };
    let headers: &'h [Header<'b>] = resp.headers;
    let roles = &mut roles[..headers.len()];
    let f = facts(headers, roles)?;
    let roles: &'h [Role] = roles;
    if f.transfer_codings > 1 || (f.transfer_codings == 1 && f.chunked != Some(true)) {
        // Passed on, they would need the client to decode them, which HTTP/2 cannot
        // ask for; decoding them here is not worth a body transform.
        return Err(HeadError::Invalid(
            "the upstream used a transfer coding other than chunked",
        ));
    }
    let framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (f.chunked, f.content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let keep_alive = if minor == 1 {
        !f.close
    } else {
        f.keep_alive && !f.close
    };
    Ok(Some(ResponseHead {
        status,
        reason: resp.reason.unwrap_or(""),
        headers,
        roles,
        listed: f.listed,
        bytes: &buf[..len],
        len,
        framing,
        reusable: keep_alive && framing != Framing::UntilClose,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_framing_keep_alive_and_upgrade() {
        let mut s = header_storage();
        let raw = b"POST /a HTTP/1.1\r\nHost: shop:80\r\nContent-Length: 5\r\nConnection: keep-alive, X-Secret\r\n\r\nhello";
        let r = parse_request(raw, &mut s).unwrap().unwrap();
        assert_eq!((r.method, r.target, r.minor), ("POST", "/a", 1));
        assert_eq!(r.framing, Framing::Length(5));
        assert_eq!(r.len, raw.len() - 5);
        assert!(r.keep_alive && !r.upgrade);
        assert_eq!(r.facts.host, Some("shop:80"));

        let mut s = header_storage();
        let raw =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(parse_request(raw, &mut s).unwrap().unwrap().upgrade);

        let mut s = header_storage();
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        assert!(!parse_request(raw, &mut s).unwrap().unwrap().keep_alive);

        let mut s = header_storage();
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut s)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn request_smuggling_shapes_are_refused() {
        for (raw, why) in [
            (
                &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                "both content-length and transfer-encoding are present",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "conflicting content-length headers",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                "invalid content-length",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "transfer-encoding must end with chunked (and needs HTTP/1.1)",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "transfer-encoding must end with chunked (and needs HTTP/1.1)",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "transfer codings other than chunked are not supported",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n",
                "a framing header name spelt with underscores is refused",
            ),
            (b"GET / HTTP/1.1\r\n\r\n", "missing host header"),
            (
                b"GET / HTTP/1.1\r\nHost: evil@shop\r\n\r\n",
                "invalid host header",
            ),
            (
                b"GET / HTTP/1.0\r\nHost: shop evil\r\n\r\n",
                "invalid host header",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
                "more than one host header",
            ),
        ] {
            let mut s = header_storage();
            let got = parse_request(raw, &mut s).map(|_| ()).unwrap_err();
            assert_eq!(got.to_string(), why, "{}", String::from_utf8_lossy(raw));
        }
        let mut s = header_storage();
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n";
        assert_eq!(
            parse_request(raw, &mut s).unwrap().unwrap().framing,
            Framing::Length(7)
        );
    }

    #[test]
    fn response_framing() {
        let cases: [(&[u8], bool, Framing, bool); 6] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                Framing::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                false,
                Framing::Empty,
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Framing::Empty,
                false,
            ),
        ];
        for (raw, head, framing, reusable) in cases {
            let mut s = header_storage();
            let r = parse_response(raw, &mut s, head).unwrap().unwrap();
            assert_eq!(
                (r.framing, r.reusable),
                (framing, reusable),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
