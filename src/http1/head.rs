//! HTTP/1.1 message heads read in place with httparse, and the facts forwarding needs
//! from them: how the body is framed, whether the connection stays open, whether the
//! client asks for an upgrade, and which headers are hop-by-hop.

use std::mem::MaybeUninit;

pub(super) use httparse::Header;

/// The most header lines a message may carry (nginx and hyper allow about 100).
pub(super) const MAX_HEADERS: usize = 128;
/// The largest head weir reads; bigger ones get 431 (nginx allows 4 x 8 KiB lines,
/// Envoy 60 KiB in all).
pub(super) const MAX_HEAD: usize = 64 * 1024;

pub(super) type HeaderStorage<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS];

pub(super) fn header_storage<'b>() -> HeaderStorage<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Only responses: the body runs until the upstream closes the connection.
    UntilClose,
}

/// What a header means to a proxy. Everything not named here is end-to-end and passes
/// through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    EndToEnd,
    Connection,
    /// `keep-alive`, `proxy-connection`, `trailer`, `proxy-authenticate`: hop-by-hop
    /// headers (RFC 9110 §7.6.1) that are simply dropped.
    HopByHop,
    TransferEncoding,
    Te,
    Upgrade,
    ContentLength,
    Host,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XRequestId,
    ContentType,
}

/// The role of a header, by its name in any case.
pub(super) fn role(name: &str) -> Role {
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    match name.len() {
        2 if is("te") => Role::Te,
        4 if is("host") => Role::Host,
        6 if is("expect") => Role::Expect,
        7 if is("upgrade") => Role::Upgrade,
        7 if is("trailer") => Role::HopByHop,
        10 if is("connection") => Role::Connection,
        10 if is("keep-alive") => Role::HopByHop,
        12 if is("x-request-id") => Role::XRequestId,
        12 if is("content-type") => Role::ContentType,
        14 if is("content-length") => Role::ContentLength,
        15 if is("x-forwarded-for") => Role::XForwardedFor,
        16 if is("proxy-connection") => Role::HopByHop,
        17 if is("transfer-encoding") => Role::TransferEncoding,
        17 if is("x-forwarded-proto") => Role::XForwardedProto,
        18 if is("proxy-authenticate") => Role::HopByHop,
        _ => Role::EndToEnd,
    }
}

/// Header names a `Connection` header lists, which are hop-by-hop for this message.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Listed<'b> {
    names: [&'b str; 8],
    len: usize,
}

impl<'b> Listed<'b> {
    fn push(&mut self, name: &'b str) {
        if self.len < self.names.len() {
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a head cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeadError {
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("{0}")]
    Invalid(&'static str),
}

/// The facts all heads share, gathered in one pass over the header lines.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Facts<'b> {
    pub content_length: Option<u64>,
    /// `Some(true)` when `Transfer-Encoding` ends with `chunked`.
    pub chunked: Option<bool>,
    pub close: bool,
    pub keep_alive: bool,
    pub connection_upgrade: bool,
    pub has_upgrade: bool,
    pub expect_continue: bool,
    pub host: Option<&'b str>,
    pub grpc: bool,
    pub has_request_id: bool,
    pub listed: Listed<'b>,
}

fn facts<'b>(headers: &[Header<'b>]) -> Result<Facts<'b>, HeadError> {
    let mut f = Facts::default();
    for h in headers {
        match role(h.name) {
            Role::ContentLength => {
                let n = content_length(h.value)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::Invalid("conflicting content-length headers"));
                }
                f.content_length = Some(n);
            }
            Role::TransferEncoding => {
                let last = tokens(h.value).last().unwrap_or("");
                f.chunked = Some(last.eq_ignore_ascii_case("chunked"));
            }
            Role::Connection => {
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case("close") {
                        f.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        f.keep_alive = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        f.connection_upgrade = true;
                    } else if !token.eq_ignore_ascii_case("te") {
                        // `te` is kept apart: `te: trailers` must reach gRPC servers.
                        f.listed.push(token);
                    }
                }
            }
            Role::Upgrade => f.has_upgrade = true,
            Role::Expect => f.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue"),
            Role::Host if f.host.is_none() => f.host = std::str::from_utf8(h.value).ok(),
            Role::ContentType => f.grpc = h.value.starts_with(b"application/grpc"),
            Role::XRequestId => f.has_request_id = true,
            _ => {}
        }
    }
    Ok(f)
}

/// The comma-separated tokens of a list header, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `Content-Length`: digits, or a list of equal values (RFC 9110 §8.6).
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
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
pub(super) struct RequestHead<'h, 'b> {
    pub method: &'b str,
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: &'h [Header<'b>],
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: Framing,
    pub keep_alive: bool,
    /// An HTTP/1.1 `Connection: upgrade` request with an `Upgrade` header.
    pub upgrade: bool,
    pub facts: Facts<'b>,
}

/// Parses a request head; `None` when `buf` does not hold all of it yet.
pub(super) fn parse_request<'h, 'b>(
    buf: &'b [u8],
    storage: &'h mut HeaderStorage<'b>,
) -> Result<Option<RequestHead<'h, 'b>>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, storage) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Invalid("malformed request line"));
    };
    let headers: &'h [Header<'b>] = req.headers;
    let f = facts(headers)?;
    let framing = match (f.chunked, f.content_length) {
        (Some(_), Some(_)) => {
            return Err(HeadError::Invalid(
                "both content-length and transfer-encoding are present",
            ));
        }
        (Some(true), None) if minor == 1 => Framing::Chunked,
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
        len,
        framing,
        keep_alive,
        upgrade: minor == 1 && f.has_upgrade && f.connection_upgrade,
        facts: f,
    }))
}

/// An upstream's response head, borrowed from the upstream buffer.
#[derive(Debug)]
pub(super) struct ResponseHead<'h, 'b> {
    pub status: u16,
    pub reason: &'b str,
    pub headers: &'h [Header<'b>],
    pub len: usize,
    pub framing: Framing,
    /// The upstream keeps the connection open after this response.
    pub reusable: bool,
    pub listed: Listed<'b>,
}

/// Parses a response head; `None` when `buf` does not hold all of it yet. The body's
/// framing depends on the request: a response to HEAD has none.
pub(super) fn parse_response<'h, 'b>(
    buf: &'b [u8],
    storage: &'h mut HeaderStorage<'b>,
    head_request: bool,
) -> Result<Option<ResponseHead<'h, 'b>>, HeadError> {
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response_with_uninit_headers(&mut resp, buf, storage)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Invalid("malformed status line"));
    };
    let headers: &'h [Header<'b>] = resp.headers;
    let f = facts(headers)?;
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
        len,
        framing,
        reusable: keep_alive && framing != Framing::UntilClose,
        listed: f.listed,
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
        assert!(r.facts.listed.contains("x-secret"));

        let mut s = header_storage();
        let raw = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
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
        for raw in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut s = header_storage();
            assert!(
                parse_request(raw, &mut s).is_err(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut s = header_storage();
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n";
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
