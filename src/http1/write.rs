//! Writing the parts of HTTP/1.1 messages that are not header fields (those go through
//! the header policy, `crate::headers`): status lines and chunk framing.

/// `HTTP/1.1 STATUS REASON\r\n`; the canonical reason when `reason` is `None`.
pub(crate) fn status_line(out: &mut Vec<u8>, status: u16, reason: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let s = status.min(999);
    // Three digits: httparse accepts nothing else.
    out.extend_from_slice(&[
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]);
    out.push(b' ');
    let reason = reason.unwrap_or_else(|| {
        http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    });
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The size line of a chunk of `len` bytes: `1a2\r\n`.
pub(crate) fn chunk_header(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_and_chunk_headers() {
        let mut out = Vec::new();
        status_line(&mut out, 503, None);
        status_line(&mut out, 200, Some("Fine"));
        assert_eq!(
            out,
            b"HTTP/1.1 503 Service Unavailable\r\nHTTP/1.1 200 Fine\r\n"
        );
        for (len, text) in [(0, "0\r\n"), (10, "a\r\n"), (4096, "1000\r\n")] {
            let mut out = Vec::new();
            chunk_header(&mut out, len);
            assert_eq!(out, text.as_bytes());
        }
    }
}
