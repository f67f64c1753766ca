//! What each HTTP header means to a proxy, and the one policy weir applies to the header
//! fields it forwards, in both directions, whatever the protocols on either side.
//!
//! A header section is read from a [`HeaderSource`] (the lines of an HTTP/1.1 head
//! parsed in place, or hyper's map for HTTP/2) and written to a [`HeaderSink`] (the
//! bytes of an HTTP/1.1 head, or a map for hyper). Both codecs and both upstream
//! protocols go through [`forward_request`] and [`forward_response`], so what is
//! removed, kept and added is decided in one place, driven by one table ([`role`]).

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::routing::random;

/// What a header means to a proxy. Everything not named here is end-to-end and passes
/// through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
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
    Cookie,
}

/// The role of a header, by its name in any case: the one table of header roles.
#[inline]
pub fn role(name: &str) -> Role {
    let name = name.as_bytes();
    let is = |known: &[u8]| lowercase_eq(name, known);
    match name.len() {
        2 if is(b"te") => Role::Te,
        4 if is(b"host") => Role::Host,
        6 if is(b"expect") => Role::Expect,
        6 if is(b"cookie") => Role::Cookie,
        7 if is(b"upgrade") => Role::Upgrade,
        7 if is(b"trailer") => Role::HopByHop,
        10 if is(b"connection") => Role::Connection,
        10 if is(b"keep-alive") => Role::HopByHop,
        12 if is(b"x-request-id") => Role::XRequestId,
        12 if is(b"content-type") => Role::ContentType,
        14 if is(b"content-length") => Role::ContentLength,
        15 if is(b"x-forwarded-for") => Role::XForwardedFor,
        16 if is(b"proxy-connection") => Role::HopByHop,
        17 if is(b"transfer-encoding") => Role::TransferEncoding,
        17 if is(b"x-forwarded-proto") => Role::XForwardedProto,
        18 if is(b"proxy-authenticate") => Role::HopByHop,
        _ => Role::EndToEnd,
    }
}

/// Whether the header name `name` is `known` (lowercase letters and `-`, of the same
/// length) in any case. Every line's name is classified, so names are compared a word
/// at a time, not byte by byte: setting bit 0x20 lowercases ASCII letters, and among the
/// bytes of a token only letters and `-` itself end up as letters or `-`.
#[inline(always)]
fn lowercase_eq(name: &[u8], known: &[u8]) -> bool {
    debug_assert!(known.len() <= 24);
    debug_assert!(known.iter().all(|b| b.is_ascii_lowercase() || *b == b'-'));
    let len = name.len();
    if len != known.len() {
        return false;
    }
    let word =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let half =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default());
    match len {
        // Two overlapping or adjacent pieces cover the name; three for the longest.
        16.. => {
            (word(name, 0) | 0x2020_2020_2020_2020) == word(known, 0)
                && (word(name, 8) | 0x2020_2020_2020_2020) == word(known, 8)
                && (word(name, len - 8) | 0x2020_2020_2020_2020) == word(known, len - 8)
        }
        8.. => {
            (word(name, 0) | 0x2020_2020_2020_2020) == word(known, 0)
                && (word(name, len - 8) | 0x2020_2020_2020_2020) == word(known, len - 8)
        }
        4.. => {
            (half(name, 0) | 0x2020_2020) == half(known, 0)
                && (half(name, len - 4) | 0x2020_2020) == half(known, len - 4)
        }
        _ => name.iter().zip(known).all(|(a, b)| (a | 0x20) == *b),
    }
}

/// The comma-separated tokens of a list header, trimmed of optional whitespace, empty
/// ones skipped.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Trims optional whitespace: spaces and tabs only (RFC 9110 §5.6.3), so that
/// `chunked` followed by a no-break space, say, is not `chunked`.
pub fn trim_ows(t: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = t.iter().position(|b| !ows(b)).unwrap_or(t.len());
    let end = t.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &t[start..end]
}

/// Whether `value` is a `Host` (or `:authority`, or absolute-form authority) that
/// names a host and nothing else: `uri-host [ ":" port ]` (RFC 9110 §7.2,
/// RFC 3986 §3.2.2). No user information (`user@host` would be read as a host by
/// some servers and as credentials by others), no spaces, no second host.
/// Hand-written: `http::uri::Authority` accepts user information.
pub fn valid_host(value: &[u8]) -> bool {
    let port = match value.first() {
        // An empty value is allowed (RFC 9112 §3.2: a target without an authority).
        None => return true,
        Some(b'[') => {
            let Some(end) = value.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &value[1..end];
            let ip = |b: &u8| b.is_ascii_hexdigit() || matches!(b, b':' | b'.');
            if literal.is_empty() || !literal.iter().all(ip) {
                return false;
            }
            match &value[end + 1..] {
                [] => return true,
                [b':', port @ ..] => port,
                _ => return false,
            }
        }
        // One pass over the name (`:80` names no host).
        Some(_) => match value.iter().position(|&b| !REG_NAME[b as usize]) {
            None => return true,
            Some(0) => return false,
            Some(at) if value[at] == b':' => &value[at + 1..],
            Some(_) => return false,
        },
    };
    port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

/// The bytes of a host name (RFC 3986 `reg-name`: unreserved, sub-delims and `%`), as
/// a table: a host is checked on every request.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'%')
            || matches!(
                c,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        b += 1;
    }
    table
};

/// Tokens of `Connection` that are options rather than the names of headers to drop:
/// `keep-alive`, `close`, `upgrade` (handled on their own) and `te` (`te: trailers`
/// must reach gRPC servers).
fn is_connection_option(token: &[u8]) -> bool {
    [&b"keep-alive"[..], b"close", b"upgrade", b"te"]
        .iter()
        .any(|o| token.eq_ignore_ascii_case(o))
}

// === HeaderSource ===

/// A header section to read.
pub trait HeaderSource {
    /// Every field with its role, in order, repeated names included.
    fn fields(&self) -> impl Iterator<Item = (&str, &[u8], Role)>;

    /// Whether a `Connection` field names headers to drop (besides its options).
    fn listed(&self) -> bool;

    /// Where a field's whole line is in the source (start and end), when it is exactly
    /// what an HTTP/1.1 sink writes for it (`name: value` and CRLF) and can be copied
    /// as it is.
    fn line(&self, _name: &str, _value: &[u8]) -> Option<(usize, usize)> {
        None
    }

    /// The source's bytes from `start` to `end`: lines from [`HeaderSource::line`].
    fn span(&self, _start: usize, _end: usize) -> &[u8] {
        &[]
    }

    /// Whether a `Connection` field names `name` (however many it names).
    fn connection_lists(&self, name: &str) -> bool {
        self.fields()
            .filter(|(_, _, role)| *role == Role::Connection)
            .flat_map(|(_, v, _)| tokens(v))
            .any(|t| !is_connection_option(t) && t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// The fields of an HTTP/1.1 head parsed in place, classified once by the parser.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'h, 'b> {
    pub headers: &'h [httparse::Header<'b>],
    /// The role of each line, in order.
    pub roles: &'h [Role],
    /// `Connection` names headers to drop.
    pub listed: bool,
    /// The head the lines were parsed from (empty: none to copy lines from).
    pub bytes: &'b [u8],
}

impl HeaderSource for Lines<'_, '_> {
    #[inline]
    fn fields(&self) -> impl Iterator<Item = (&str, &[u8], Role)> {
        self.headers
            .iter()
            .zip(self.roles)
            .map(|(h, role)| (h.name, h.value, *role))
    }

    fn listed(&self) -> bool {
        self.listed
    }

    #[inline(always)]
    fn line(&self, name: &str, value: &[u8]) -> Option<(usize, usize)> {
        let bytes = self.bytes;
        let start = (name.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
        let colon = start.wrapping_add(name.len());
        let end = colon.wrapping_add(value.len() + 4);
        // Exactly `name: value CRLF`, the value where the parser found it, so the line
        // is what a sink would write field by field.
        let canonical = start < bytes.len()
            && end <= bytes.len()
            && colon < end
            && value.as_ptr() as usize == bytes.as_ptr() as usize + colon + 2
            && bytes[colon..colon + 2] == *b": "
            && bytes[end - 2..end] == *b"\r\n";
        canonical.then_some((start, end))
    }

    fn span(&self, start: usize, end: usize) -> &[u8] {
        &self.bytes[start..end]
    }
}

impl HeaderSource for HeaderMap {
    fn fields(&self) -> impl Iterator<Item = (&str, &[u8], Role)> {
        self.iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes(), role(n.as_str())))
    }

    fn listed(&self) -> bool {
        // HTTP/2 forbids `connection` (hyper's maps from HTTP/2 never have one).
        self.get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|v| tokens(v.as_bytes()))
            .any(|t| !is_connection_option(t))
    }
}

// === HeaderSink ===

/// A header section to write.
pub trait HeaderSink {
    /// The sink takes whole HTTP/1.1 lines ([`HeaderSink::lines`]).
    const LINES: bool = false;

    fn field(&mut self, name: &str, value: &[u8]);
    /// Whole header lines, CRLFs included (only when [`HeaderSink::LINES`]).
    fn lines(&mut self, _lines: &[u8]) {
        unreachable!("a sink that takes lines says so")
    }
    /// Starts a field whose value comes in pieces ([`HeaderSink::append`]), ended by
    /// [`HeaderSink::end`].
    fn begin(&mut self, name: &str);
    fn append(&mut self, piece: &[u8]);
    fn end(&mut self);
}

/// The header lines of an HTTP/1.1 head, written as bytes.
#[derive(Debug)]
pub struct Http1Lines<'a>(pub &'a mut Vec<u8>);

impl HeaderSink for Http1Lines<'_> {
    const LINES: bool = true;

    #[inline]
    fn field(&mut self, name: &str, value: &[u8]) {
        line(self.0, name.as_bytes(), value);
    }

    #[inline]
    fn lines(&mut self, lines: &[u8]) {
        self.0.extend_from_slice(lines);
    }

    fn begin(&mut self, name: &str) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
    }

    fn append(&mut self, piece: &[u8]) {
        self.0.extend_from_slice(piece);
    }

    fn end(&mut self) {
        self.0.extend_from_slice(b"\r\n");
    }
}

/// One HTTP/1.1 header line.
#[inline]
pub fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A header map for hyper; fields that are not valid for it are skipped (HTTP/1.1
/// lines weir parsed are valid names and values already).
#[derive(Debug)]
pub struct MapSink<'a> {
    pub map: &'a mut HeaderMap,
    pending: Option<(HeaderName, Vec<u8>)>,
}

impl<'a> MapSink<'a> {
    pub fn new(map: &'a mut HeaderMap) -> Self {
        MapSink { map, pending: None }
    }
}

impl HeaderSink for MapSink<'_> {
    fn field(&mut self, name: &str, value: &[u8]) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.map.append(name, value);
        }
    }

    fn begin(&mut self, name: &str) {
        self.pending = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .map(|n| (n, Vec::new()));
    }

    fn append(&mut self, piece: &[u8]) {
        if let Some((_, value)) = &mut self.pending {
            value.extend_from_slice(piece);
        }
    }

    fn end(&mut self) {
        if let Some((name, value)) = self.pending.take()
            && let Ok(value) = HeaderValue::from_bytes(&value)
        {
            self.map.append(name, value);
        }
    }
}

/// Writes the fields a policy keeps, in order. Into an HTTP/1.1 head from an HTTP/1.1
/// head, lines that follow one another unchanged in the source are copied as one piece
/// (most of a head is passed on as it came): one copy instead of four per field.
struct Kept<'s, S: ?Sized, K> {
    source: &'s S,
    sink: &'s mut K,
    /// The run of lines not yet written (`start == end`: none).
    run: (usize, usize),
}

impl<'s, S: HeaderSource + ?Sized, K: HeaderSink> Kept<'s, S, K> {
    fn new(source: &'s S, sink: &'s mut K) -> Self {
        Kept {
            source,
            sink,
            run: (0, 0),
        }
    }

    // Always inlined: a call costs more than the rest (it runs for every field).
    #[inline(always)]
    fn field(&mut self, name: &str, value: &[u8]) {
        if K::LINES
            && let Some((start, end)) = self.source.line(name, value)
        {
            if start != self.run.1 {
                self.flush();
                self.run.0 = start;
            }
            self.run.1 = end;
            return;
        }
        self.flush();
        self.sink.field(name, value);
    }

    /// Writes the run of lines so far; before anything else is written.
    #[inline]
    fn flush(&mut self) -> &mut K {
        let (start, end) = std::mem::take(&mut self.run);
        if start != end {
            self.sink.lines(self.source.span(start, end));
        }
        self.sink
    }
}

// === The policy ===

/// What the client connection contributes to the forwarding headers.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The client's IP, as it goes into `x-forwarded-for`.
    pub client_ip: HeaderValue,
    /// `http` or `https`.
    pub proto: HeaderValue,
}

/// How one request's header section is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct RequestEdits<'a> {
    pub forwarding: &'a Forwarding,
    /// The upstream speaks HTTP/2: the host travels as `:authority`, not as a field.
    pub to_http2: bool,
    /// The client spoke HTTP/2 and the upstream speaks HTTP/1.1: split `cookie` fields
    /// become one (RFC 9113 §8.2.3).
    pub join_cookies: bool,
    /// What becomes of `host` (for HTTP/2 upstreams it is always dropped: the
    /// authority travels as `:authority`).
    pub host: HostEdit<'a>,
    /// The one `content-length` to send instead of the client's field lines (which
    /// may repeat it, or list it twice in one line).
    pub content_length: Option<u64>,
    /// An HTTP/1.1 upgrade (WebSocket) is being forwarded: `upgrade` stays.
    pub upgrade: bool,
    /// weir answers `expect: 100-continue` itself (as Envoy does), so it is not sent.
    pub expect_continue: bool,
    /// The body goes upstream with chunked framing.
    pub chunked: bool,
    /// Return the `x-request-id` sent (for the access log).
    pub want_request_id: bool,
}

/// What becomes of a request's `host` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEdit<'a> {
    Keep,
    /// This host when the source has none (HTTP/2's `:authority`; the endpoint for
    /// HTTP/1.0 without a host).
    AddIfMissing(&'a str),
    /// This host instead of the source's (an absolute-form target's authority, which
    /// wins over `Host`: RFC 9112 §3.2.2).
    Replace(&'a str),
}

/// Writes the forwarded request's header fields: hop-by-hop fields and the ones
/// `Connection` names out; `x-forwarded-for` appended with the client; `x-forwarded-proto`
/// set; `x-request-id` kept or generated (returned when asked for).
pub fn forward_request<S: HeaderSource + ?Sized>(
    source: &S,
    edits: &RequestEdits<'_>,
    sink: &mut impl HeaderSink,
) -> Option<HeaderValue> {
    let listed = source.listed();
    let (mut host, mut forwarded_for, mut cookies) = (false, false, 0usize);
    let (mut has_request_id, mut request_id) = (false, None);
    let mut kept = Kept::new(source, sink);
    for (name, value, role) in source.fields() {
        let keep = match role {
            Role::EndToEnd => !listed || !source.connection_lists(name),
            Role::ContentType => true,
            Role::ContentLength => edits.content_length.is_none(),
            Role::Host => {
                host = true;
                !edits.to_http2 && !matches!(edits.host, HostEdit::Replace(_))
            }
            Role::Cookie if edits.join_cookies => {
                cookies += 1;
                false
            }
            Role::Cookie => true,
            Role::XRequestId => {
                if !has_request_id && edits.want_request_id {
                    request_id = HeaderValue::from_bytes(value).ok();
                }
                has_request_id = true;
                true
            }
            Role::Te => value.eq_ignore_ascii_case(b"trailers"),
            Role::Upgrade => edits.upgrade,
            Role::Expect => !(edits.expect_continue && value.eq_ignore_ascii_case(b"100-continue")),
            Role::XForwardedFor => {
                forwarded_for = true;
                false
            }
            Role::Connection | Role::HopByHop | Role::TransferEncoding | Role::XForwardedProto => {
                false
            }
        };
        if keep {
            kept.field(name, value);
        }
    }
    let sink = kept.flush();
    match edits.host {
        _ if edits.to_http2 => {}
        HostEdit::Replace(authority) => sink.field("host", authority.as_bytes()),
        HostEdit::AddIfMissing(authority) if !host => sink.field("host", authority.as_bytes()),
        _ => {}
    }
    if let Some(length) = edits.content_length {
        sink.field("content-length", length.to_string().as_bytes());
    }
    if cookies > 0 {
        sink.begin("cookie");
        let all = source.fields().filter(|(_, _, role)| *role == Role::Cookie);
        for (i, (_, value, _)) in all.enumerate() {
            if i > 0 {
                sink.append(b"; ");
            }
            sink.append(value);
        }
        sink.end();
    }
    if edits.chunked {
        sink.field("transfer-encoding", b"chunked");
    }
    if edits.upgrade {
        sink.field("connection", b"upgrade");
    }
    // x-forwarded-for: this hop's client appended; several field lines are one list
    // (RFC 9110 §5.3), so all of them are kept, in order.
    sink.begin("x-forwarded-for");
    if forwarded_for {
        let all = source
            .fields()
            .filter(|(_, _, role)| *role == Role::XForwardedFor);
        for (_, value, _) in all {
            sink.append(value);
            sink.append(b", ");
        }
    }
    sink.append(edits.forwarding.client_ip.as_bytes());
    sink.end();
    sink.field("x-forwarded-proto", edits.forwarding.proto.as_bytes());
    if has_request_id {
        return request_id;
    }
    let generated = request_id_bytes();
    sink.field("x-request-id", &generated);
    edits
        .want_request_id
        .then(|| HeaderValue::from_bytes(&generated).ok())
        .flatten()
}

/// How one response's header section is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct ResponseEdits {
    /// A 101 to a forwarded upgrade: `upgrade` stays.
    pub upgrade: bool,
    /// The upstream's body came chunked: a `content-length` beside it means nothing
    /// (RFC 9112 §6.3) and is dropped.
    pub drop_content_length: bool,
}

/// Writes the forwarded response's header fields: hop-by-hop fields and the ones
/// `Connection` names out. The framing and `connection` fields the client's protocol
/// needs are its codec's to add.
pub fn forward_response<S: HeaderSource + ?Sized>(
    source: &S,
    edits: &ResponseEdits,
    sink: &mut impl HeaderSink,
) {
    let listed = source.listed();
    let mut kept = Kept::new(source, sink);
    for (name, value, role) in source.fields() {
        let keep = match role {
            Role::EndToEnd => !listed || !source.connection_lists(name),
            Role::Upgrade => edits.upgrade,
            Role::ContentLength => !edits.drop_content_length,
            Role::Connection | Role::HopByHop | Role::TransferEncoding | Role::Te => false,
            _ => true,
        };
        if keep {
            kept.field(name, value);
        }
    }
    kept.flush();
}

/// A random (version 4) UUID in its 36-character text form, as Envoy generates for
/// `x-request-id`.
pub fn request_id_bytes() -> [u8; 36] {
    let hi = random::next_u64();
    let lo = random::next_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // Where each byte's two hex digits go, around the dashes of 8-4-4-4-12.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    for (b, at) in bytes.iter().zip(AT) {
        out[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
    out
}

/// Each byte's two lowercase hex digits: a request id is on every request's path.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests;
