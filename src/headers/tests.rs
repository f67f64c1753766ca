use super::*;

fn fwd() -> Forwarding {
    Forwarding {
        client_ip: HeaderValue::from_static("10.0.0.7"),
        proto: HeaderValue::from_static("http"),
    }
}

fn edits(fwd: &Forwarding) -> RequestEdits<'_> {
    RequestEdits {
        forwarding: fwd,
        to_http2: false,
        join_cookies: false,
        host: HostEdit::Keep,
        content_length: None,
        upgrade: false,
        expect_continue: false,
        chunked: false,
        want_request_id: true,
    }
}

/// Parses `raw` as a request head and forwards its fields as HTTP/1.1 lines. Lines
/// copied in runs from the head must come out as written field by field.
fn forward_lines(raw: &[u8], edits: &RequestEdits<'_>) -> (String, Option<HeaderValue>) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    assert!(req.parse(raw).unwrap().is_complete());
    let roles = roles(req.headers);
    let mut field_by_field = Vec::new();
    forward_request(
        &lines(&[], req.headers, &roles),
        edits,
        &mut Http1Lines(&mut field_by_field),
    );
    let mut out = Vec::new();
    let id = forward_request(
        &lines(raw, req.headers, &roles),
        edits,
        &mut Http1Lines(&mut out),
    );
    let (text, field_by_field) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(field_by_field).unwrap(),
    );
    // A generated request id (the last line) differs between the two; nothing else may.
    let masked = |t: &str| match t.rfind("x-request-id: ") {
        Some(at) if t.len() == at + 14 + 36 + 2 => format!("{}x-request-id: ?\r\n", &t[..at]),
        _ => t.to_string(),
    };
    assert_eq!(masked(&text), masked(&field_by_field));
    (text, id)
}

/// Each line's role, as the HTTP/1.1 parser classifies them.
fn roles(headers: &[httparse::Header<'_>]) -> Vec<Role> {
    headers.iter().map(|h| role(h.name)).collect()
}

fn lines<'h, 'b>(
    bytes: &'b [u8],
    headers: &'h [httparse::Header<'b>],
    roles: &'h [Role],
) -> Lines<'h, 'b> {
    let listed = headers
        .iter()
        .filter(|h| role(h.name) == Role::Connection)
        .flat_map(|h| tokens(h.value))
        .any(|t| !is_connection_option(t));
    Lines {
        headers,
        roles,
        listed,
        bytes,
    }
}

#[test]
fn strips_hop_by_hop_and_adds_forwarding() {
    let raw = b"GET /x HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n";
    let fwd = fwd();
    let (text, id) = forward_lines(raw, &edits(&fwd));
    assert!(text.starts_with("Host: shop\r\nAccept: */*\r\n"), "{text}");
    for gone in ["Connection", "X-Secret", "Keep-Alive", "TE:", "https"] {
        assert!(!text.contains(gone), "{gone} in {text}");
    }
    assert!(
        text.contains("x-forwarded-for: 1.2.3.4, 5.6.7.8, 10.0.0.7\r\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-proto: http\r\n"));
    let id = id.unwrap();
    assert_eq!(id.len(), 36);
    assert!(text.contains(&format!("x-request-id: {}\r\n", id.to_str().unwrap())));
}

#[test]
fn every_name_connection_lists_is_removed() {
    let names: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
    let mut raw = format!("GET / HTTP/1.1\r\nConnection: {}\r\n", names.join(", "));
    for name in &names {
        raw.push_str(&format!("{name}: 1\r\n"));
    }
    raw.push_str("x-kept: 1\r\n\r\n");
    let fwd = fwd();
    let (text, _) = forward_lines(raw.as_bytes(), &edits(&fwd));
    for name in &names {
        assert!(!text.contains(&format!("{name}:")), "{name} in {text}");
    }
    assert!(text.contains("x-kept: 1\r\n"));
}

#[test]
fn keeps_te_trailers_and_a_given_request_id() {
    let raw = b"GET / HTTP/1.1\r\nTE: trailers\r\nX-Request-Id: abc\r\n\r\n";
    let fwd = fwd();
    let (text, id) = forward_lines(raw, &edits(&fwd));
    assert!(text.contains("TE: trailers\r\n"), "{text}");
    assert_eq!(id.unwrap(), "abc");
    assert_eq!(
        text.matches("x-request-id").count() + text.matches("X-Request-Id").count(),
        1
    );
}

#[test]
fn host_added_when_missing_or_replaced() {
    let fwd = fwd();
    let add = RequestEdits {
        host: HostEdit::AddIfMissing("shop.example:8080"),
        ..edits(&fwd)
    };
    let (text, _) = forward_lines(b"GET / HTTP/1.1\r\n\r\n", &add);
    assert!(text.starts_with("host: shop.example:8080\r\n"), "{text}");
    let (text, _) = forward_lines(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &add);
    assert!(
        text.starts_with("Host: a\r\n") && !text.contains("host:"),
        "{text}"
    );
    let replace = RequestEdits {
        host: HostEdit::Replace("shop.example"),
        ..edits(&fwd)
    };
    let (text, _) = forward_lines(b"GET / HTTP/1.1\r\nHost: evil\r\n\r\n", &replace);
    assert!(text.starts_with("host: shop.example\r\n"), "{text}");
    assert!(!text.contains("evil"), "{text}");
}

#[test]
fn one_canonical_content_length() {
    let fwd = fwd();
    let with = RequestEdits {
        content_length: Some(5),
        ..edits(&fwd)
    };
    let raw = b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n";
    let (text, _) = forward_lines(raw, &with);
    assert_eq!(text.matches("ontent-length").count(), 1, "{text}");
    assert!(text.contains("content-length: 5\r\n"), "{text}");
}

#[test]
fn http2_sources_and_sinks() {
    let mut map = HeaderMap::new();
    map.append("cookie", HeaderValue::from_static("a=1"));
    map.append("cookie", HeaderValue::from_static("b=2"));
    map.append("host", HeaderValue::from_static("shop"));
    map.append("te", HeaderValue::from_static("trailers"));
    let fwd = fwd();
    // HTTP/2 to HTTP/1.1: one cookie line.
    let mut out = Vec::new();
    let to_h1 = RequestEdits {
        join_cookies: true,
        ..edits(&fwd)
    };
    forward_request(&map, &to_h1, &mut Http1Lines(&mut out));
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("cookie: a=1; b=2\r\n"), "{text}");
    assert!(text.contains("host: shop\r\n"));
    // To HTTP/2: host becomes the authority, cookies stay apart.
    let mut sink = HeaderMap::new();
    let to_h2 = RequestEdits {
        to_http2: true,
        ..edits(&fwd)
    };
    forward_request(&map, &to_h2, &mut MapSink::new(&mut sink));
    assert!(sink.get("host").is_none());
    assert_eq!(sink.get_all("cookie").iter().count(), 2);
    assert_eq!(sink["te"], "trailers");
    assert_eq!(sink["x-forwarded-for"], "10.0.0.7");
}

#[test]
fn upgrades_keep_their_headers() {
    let raw = b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let fwd = fwd();
    let with = RequestEdits {
        upgrade: true,
        ..edits(&fwd)
    };
    let (text, _) = forward_lines(raw, &with);
    assert!(text.contains("Upgrade: websocket\r\n"), "{text}");
    assert!(text.contains("connection: upgrade\r\n"), "{text}");
    let (text, _) = forward_lines(raw, &edits(&fwd));
    assert!(!text.contains("pgrade"), "{text}");
}

#[test]
fn responses_lose_hop_by_hop_fields() {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let raw = b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
    assert!(resp.parse(raw).unwrap().is_complete());
    let mut out = Vec::new();
    let edits = ResponseEdits {
        upgrade: false,
        drop_content_length: true,
    };
    let roles = roles(resp.headers);
    forward_response(
        &lines(raw, resp.headers, &roles),
        &edits,
        &mut Http1Lines(&mut out),
    );
    assert_eq!(String::from_utf8(out).unwrap(), "Server: x\r\n");
}

#[test]
fn lines_are_copied_as_received_only_when_canonical() {
    let fwd = fwd();
    // Spacing other than one space, a tab, trailing whitespace: written field by
    // field (`forward_lines` compares both ways); the canonical lines around them
    // come through unchanged.
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nA:1\r\nB:  2  \r\nC:\t3\r\nD: 4\r\nE: 5\r\nConnection: x-drop\r\nx-drop: 1\r\nF: 6\r\n\r\n";
    let (text, _) = forward_lines(raw, &edits(&fwd));
    assert!(
        text.starts_with("Host: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n"),
        "{text}"
    );
}

#[test]
fn roles_by_word_agree_with_a_byte_by_byte_comparison() {
    const KNOWN: [&str; 16] = [
        "te",
        "host",
        "expect",
        "cookie",
        "upgrade",
        "trailer",
        "connection",
        "keep-alive",
        "x-request-id",
        "content-type",
        "content-length",
        "x-forwarded-for",
        "proxy-connection",
        "transfer-encoding",
        "x-forwarded-proto",
        "proxy-authenticate",
    ];
    let reference = |name: &str| {
        KNOWN
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .map_or(Role::EndToEnd, |k| role(k))
    };
    // Every byte a header name may hold (RFC 9110 tchar), at every place of every name.
    let tchars: Vec<u8> = (0u8..128)
        .filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        .collect();
    for known in KNOWN {
        assert_ne!(role(known), Role::EndToEnd, "{known}");
        assert_eq!(role(&known.to_ascii_uppercase()), role(known));
        for at in 0..known.len() {
            for &b in &tchars {
                let mut name = known.as_bytes().to_vec();
                name[at] = b;
                let name = String::from_utf8(name).unwrap();
                assert_eq!(role(&name), reference(&name), "{name:?}");
            }
        }
    }
}

#[test]
fn list_tokens_are_trimmed_of_spaces_and_tabs_only() {
    let tokens: Vec<&[u8]> = tokens(b" a ,\tb\t,, c\xc2\xa0").collect();
    assert_eq!(tokens, [&b"a"[..], b"b", b"c\xc2\xa0"]);
}

#[test]
fn request_ids_are_version_4_uuids() {
    let id = request_id_bytes();
    assert_eq!(id[14], b'4');
    assert!(matches!(id[19], b'8' | b'9' | b'a' | b'b'));
    assert_ne!(request_id_bytes(), id);
}

#[test]
fn host_values_name_a_host_and_nothing_else() {
    for good in [
        "shop.example",
        "shop.example:8080",
        "shop:",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "xn--bcher-kva.example",
        "a_b.example",
        "",
    ] {
        assert!(valid_host(good.as_bytes()), "{good:?} should be valid");
    }
    for bad in [
        "evil@shop.example",
        ":80",
        "shop evil",
        "shop, evil",
        "shop:80:81",
        "shop:8o",
        "shop:123456",
        "[::1",
        "[::1]x",
        "[zz]",
        "[]",
        "shop/x",
        "shop\\x",
        "shop\tx",
    ] {
        assert!(!valid_host(bad.as_bytes()), "{bad:?} should be invalid");
    }
}
