//! Entry points for the fuzz targets in `fuzz/` (built with the `fuzzing` feature):
//! each takes arbitrary bytes, runs one of weir's parsers on them, and asserts the
//! properties that must hold whatever the bytes are. A panic is a finding.

use http::HeaderValue;

use crate::headers::{self, Forwarding, HostEdit, Http1Lines, RequestEdits};
use crate::http1::{self, BodyState, Framing};

/// The HTTP/1.1 request-head parser, and the head weir would send upstream for what it
/// accepts: that head must read back (strictly) as a request with the same method and
/// target, one `host` at most, and the framing weir chose.
pub fn http1_request(data: &[u8]) {
    let mut storage = http1::header_storage();
    let head = match http1::parse_request(data, &mut storage) {
        Ok(Some(head)) => head,
        Ok(None) | Err(_) => return,
    };
    assert!(head.len <= data.len());
    let forwarding = Forwarding {
        client_ip: HeaderValue::from_static("10.0.0.1"),
        proto: HeaderValue::from_static("http"),
    };
    let edits = RequestEdits {
        forwarding: &forwarding,
        to_http2: false,
        join_cookies: false,
        host: HostEdit::Keep,
        content_length: head.facts.content_length,
        upgrade: false,
        expect_continue: head.facts.expect_continue,
        chunked: head.framing == Framing::Chunked,
        want_request_id: false,
    };
    let mut out = Vec::new();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    headers::forward_request(&head.fields(), &edits, &mut Http1Lines(&mut out));
    out.extend_from_slice(b"\r\n");

    let mut again = [httparse::EMPTY_HEADER; 160];
    let mut req = httparse::Request::new(&mut again);
    let status = httparse::ParserConfig::default()
        .parse_request(&mut req, &out)
        .unwrap_or_else(|e| panic!("the upstream head does not parse ({e}): {out:?}"));
    assert_eq!(status, httparse::Status::Complete(out.len()));
    assert_eq!(req.method, Some(head.method));
    assert_eq!(req.path, Some(head.target));
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert!(count("host") <= 1, "{out:?}");
    assert!(count("content-length") <= 1, "{out:?}");
    assert!(count("connection") == 0, "{out:?}");
    assert_eq!(
        count("transfer-encoding"),
        usize::from(head.framing == Framing::Chunked),
        "{out:?}"
    );
    assert!(
        !(count("content-length") == 1 && count("transfer-encoding") == 1),
        "{out:?}"
    );
}

/// The chunked decoder against a reference: whatever weir accepts, a lenient decoder
/// (one that also reads a bare LF as a line end) reads the same way, with the same data
/// and the same end; and feeding the input in two pieces changes nothing.
pub fn chunked(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let whole = weir_decode(&[input]);
    let cut = usize::from(cut).min(input.len());
    let split = weir_decode(&[&input[..cut], &input[cut..]]);
    assert_eq!(
        whole, split,
        "the same bytes in two pieces read differently"
    );
    let Some(Ok((end, body))) = whole else {
        return;
    };
    match reference_decode(&input[..end]) {
        Some((used, reference)) => {
            assert_eq!(used, end, "the reference ends the body elsewhere");
            assert_eq!(reference, body, "the reference reads other data");
        }
        None => panic!("weir accepted a body the reference cannot read: {input:?}"),
    }
}

/// `None`: needs more input; `Some(Err)`: refused; `Some(Ok((end, data)))`: done.
type Decoded = Option<Result<(usize, Vec<u8>), ()>>;

fn weir_decode(pieces: &[&[u8]]) -> Decoded {
    let mut state = BodyState::new(Framing::Chunked);
    let mut data = Vec::new();
    let mut used = 0;
    for piece in pieces {
        let mut buf = http1::Buffer::with_capacity(piece.len().max(1));
        buf.extend_from(piece);
        let before = buf.len();
        if state
            .drain(&mut buf, |d| data.extend_from_slice(d))
            .is_err()
        {
            return Some(Err(()));
        }
        used += before - buf.len();
        if state.is_done() {
            return Some(Ok((used, data)));
        }
    }
    None
}

/// A lenient chunked decoder written apart from weir's: CRLF or LF line ends, chunk
/// extensions skipped, trailers until an empty line. `(bytes used, data)`.
fn reference_decode(input: &[u8]) -> Option<(usize, Vec<u8>)> {
    let line = |from: usize| -> Option<(usize, &[u8])> {
        let end = from + input.get(from..)?.iter().position(|&b| b == b'\n')?;
        let text = &input[from..end];
        Some((end + 1, text.strip_suffix(b"\r").unwrap_or(text)))
    };
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let (next, size_line) = line(at)?;
        let digits = size_line.split(|&b| b == b';').next()?;
        let digits = std::str::from_utf8(digits).ok()?.trim_matches([' ', '\t']);
        let size = usize::from_str_radix(digits, 16).ok()?;
        at = next;
        if size == 0 {
            loop {
                let (next, trailer) = line(at)?;
                at = next;
                if trailer.is_empty() {
                    return Some((at, body));
                }
            }
        }
        body.extend_from_slice(input.get(at..at.checked_add(size)?)?);
        at += size;
        let (next, rest) = line(at)?;
        if !rest.is_empty() {
            return None;
        }
        at = next;
    }
}

/// The config loader and validator: any text is a config or a list of problems, each
/// with a place inside the text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(crate::config::ConfigError::Invalid { issues, .. }) =
        crate::Config::parse(text, "fuzz.yaml")
    {
        assert!(!issues.is_empty());
        // Lines as YAML counts them: `\r\n`, `\r` and `\n` each end one.
        let lines = text.replace("\r\n", "\n").split(['\r', '\n']).count() as u64;
        for issue in &issues {
            assert!(issue.line >= 1 && issue.line <= lines + 1, "{issue:?}");
        }
    }
}

/// The admin API's weights body.
pub fn admin_weights(data: &[u8]) {
    if let Ok(weights) = crate::admin::parse_weights(&bytes::Bytes::copy_from_slice(data)) {
        assert!(!weights.is_empty());
    }
}

/// Certificate reading.
pub fn certificate(data: &[u8]) {
    if let Ok(info) = crate::tls::x509::CertInfo::parse(data) {
        let _ = info.serial_hex();
    }
}
