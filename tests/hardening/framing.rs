//! Host and framing semantics (RFC 9112 §3.2, §6; RFC 9110 §8.6), checked on raw TCP
//! against an upstream that records the exact bytes weir sends it: what weir refuses
//! never reaches the upstream, and what it forwards is in one canonical form.

use super::*;

/// One request on a new connection; the response weir sent, parsed.
async fn exchange(weir: &Weir, request: &[u8]) -> RawResponse {
    let raw = raw_exchange(weir.listen, request)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(request)));
    assert!(
        !raw.is_empty(),
        "no response to {:?}",
        String::from_utf8_lossy(request)
    );
    RawResponse::parse(&raw)
}

/// The request line and header lines an upstream received, one string per line.
fn head_lines(req: &RecordedRequest) -> Vec<String> {
    std::iter::once(req.line.clone())
        .chain(req.headers.iter().map(|(k, v)| format!("{k}: {v}")))
        .collect()
}

#[tokio::test]
async fn host_and_request_target_rules() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        for (what, request) in [
            (
                "no Host",
                &b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            ),
            (
                "two Host lines",
                b"GET /b HTTP/1.1\r\nHost: shop\r\nHost: evil\r\nConnection: close\r\n\r\n",
            ),
            (
                "a target in no valid form",
                b"GET foo HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
            ),
        ] {
            let resp = exchange(&weir, request).await;
            assert_eq!(resp.status, 400, "{what}: {resp:?}");
        }
        // `*` is the target of OPTIONS (RFC 9112 §3.2.4), and only of OPTIONS.
        let resp = exchange(
            &weir,
            b"OPTIONS * HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "OPTIONS *: {resp:?}");
        let requests = recorder.wait_requests(1).await;
        assert_eq!(
            requests.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(),
            ["OPTIONS * HTTP/1.1"],
            "only OPTIONS * reaches the upstream"
        );
        let resp = exchange(
            &weir,
            b"GET * HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 400, "GET *: {resp:?}");
        assert_eq!(recorder.requests().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_absolute_form_target_replaces_host_for_routing_and_upstream() {
    within(60, async {
        let shop = recording_upstream().await;
        let evil = recording_upstream().await;
        let weir = Weir::start(&format!(
            r#"
destinations:
  shop: {{ endpoints: ["{}"] }}
  evil: {{ endpoints: ["{}"] }}
routes:
  - name: shop
    match: {{ authority: shop.example }}
    split: {{ shop: 1 }}
  - name: rest
    split: {{ evil: 1 }}
"#,
            shop.addr, evil.addr
        ))
        .await;
        let resp = exchange(
            &weir,
            b"GET http://shop.example/x?q=1 HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let requests = shop.wait_requests(1).await;
        let req = &requests[0];
        assert_eq!(req.line, "GET /x?q=1 HTTP/1.1", "origin form upstream");
        assert_eq!(
            req.all("host"),
            ["shop.example"],
            "the URI's authority replaces Host: {:?}",
            head_lines(req)
        );
        let text = String::from_utf8_lossy(&shop.bytes()).to_ascii_lowercase();
        assert!(!text.contains("evil"), "the client's Host leaked: {text}");
        assert_eq!(evil.connections(), 0, "routed on the Host header");

        // With a port, the authority goes as it came.
        let resp = exchange(
            &weir,
            b"GET http://shop.example:8080/y HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let requests = shop.wait_requests(2).await;
        assert_eq!(requests[1].line, "GET /y HTTP/1.1");
        assert_eq!(requests[1].all("host"), ["shop.example:8080"]);
        assert_eq!(evil.connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_content_length_list_is_forwarded_as_one_value() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        for (n, lengths) in [
            "Content-Length: 5, 5\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5,5\r\nContent-Length: 5\r\n",
        ]
        .into_iter()
        .enumerate()
        {
            let request =
                format!("POST /cl HTTP/1.1\r\nHost: shop\r\n{lengths}Connection: close\r\n\r\nhello");
            let resp = exchange(&weir, request.as_bytes()).await;
            assert_eq!(resp.status, 200, "{lengths:?}: {resp:?}");
            let requests = recorder.wait_requests(n + 1).await;
            let req = &requests[n];
            assert_eq!(
                req.all("content-length"),
                ["5"],
                "{lengths:?}: {:?}",
                head_lines(req)
            );
            assert_eq!(req.body, b"hello", "{lengths:?}");
        }
        let resp = exchange(
            &weir,
            b"POST /cl HTTP/1.1\r\nHost: shop\r\nContent-Length: 5, 6\r\nConnection: close\r\n\r\nhello!",
        )
        .await;
        assert_eq!(resp.status, 400, "conflicting lengths: {resp:?}");
        assert_eq!(recorder.requests().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_alone_are_refused() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        for (what, request, status) in [
            (
                "gzip, chunked",
                &b"POST /te HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"[..],
                501,
            ),
            (
                "chunked + U+00A0 (not optional whitespace)",
                b"POST /te HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\xC2\xA0\r\n\r\n0\r\n\r\n",
                400,
            ),
            (
                "HTTP/1.0 with Transfer-Encoding",
                b"POST /te HTTP/1.0\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                400,
            ),
        ] {
            let resp = exchange(&weir, request).await;
            assert_eq!(resp.status, status, "{what}: {resp:?}");
        }
        // Nothing of them reached the upstream: refused before forwarding.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            recorder.bytes(),
            b"",
            "the upstream received: {}",
            String::from_utf8_lossy(&recorder.bytes())
        );
    })
    .await;
}

#[tokio::test]
async fn an_upstream_response_with_another_transfer_coding_is_502_uc() {
    within(60, async {
        let upstream = scripted_upstream(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Duration::from_millis(100),
        )
        .await;
        let weir = weir_to(upstream, "").await;
        let resp = exchange(
            &weir,
            b"GET /gz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 502, "HTTP/1.1: {resp:?}");
        assert_eq!(resp.header("x-weir-response-flags"), Some("UC"), "HTTP/1.1");
        let got = http_get(weir.listen, Proto::H2c, "/gz").await.unwrap();
        assert_eq!(got.status, 502, "h2c: {got:?}");
        assert_eq!(got.header("x-weir-response-flags"), Some("UC"), "h2c");
    })
    .await;
}

#[tokio::test]
async fn every_header_listed_in_connection_is_removed() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let names: Vec<String> = (1..=20).map(|i| format!("x-hop-{i}")).collect();
        let mut request = format!(
            "GET /hop HTTP/1.1\r\nHost: shop\r\nConnection: close, {}\r\nX-Kept: yes\r\n",
            names.join(", ")
        );
        for name in &names {
            request.push_str(&format!("{name}: secret\r\n"));
        }
        request.push_str("\r\n");
        let resp = exchange(&weir, request.as_bytes()).await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let req = &recorder.wait_requests(1).await[0];
        let leaked: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-hop-"))
            .map(|(k, _)| k.as_str())
            .collect();
        assert!(leaked.is_empty(), "listed headers forwarded: {leaked:?}");
        assert_eq!(req.all("x-kept"), ["yes"], "{:?}", head_lines(req));
        assert!(req.all("connection").iter().all(|v| !v.contains("x-hop")));
    })
    .await;
}

#[tokio::test]
async fn chunked_bodies_are_reframed_canonically() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let resp = exchange(
            &weir,
            b"POST /chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              5;ext=1\r\nhello\r\n6;name=\"quoted\"\r\n world\r\n0;last\r\nX-Check:   v1  \r\nX-Other:\tv2\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let req = &recorder.wait_requests(1).await[0];
        let body = String::from_utf8_lossy(&req.body).into_owned();
        assert!(!body.contains(';'), "chunk extensions forwarded: {body:?}");
        let lower = body.to_ascii_lowercase();
        assert!(
            lower.starts_with("5\r\nhello\r\n6\r\n world\r\n0\r\n")
                || lower.starts_with("b\r\nhello world\r\n0\r\n"),
            "chunks not canonical: {body:?}"
        );
        assert!(
            lower.ends_with("\r\nx-check: v1\r\nx-other: v2\r\n\r\n"),
            "trailers not re-emitted as `name: value`: {body:?}"
        );
    })
    .await;
}

/// The issue's headline: a bare LF ending the chunked trailer section. weir must refuse
/// it, and the upstream must never see the request hidden behind it; the next client on
/// the pooled upstream connection gets its own response.
#[tokio::test]
async fn a_bare_lf_after_the_last_chunk_smuggles_nothing() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let attack = b"POST /attacker HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n\
                       0\r\n\nPOST /SMUGGLED HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 6.6.6.6\r\n\
                       Content-Length: 120\r\nX-Pad: x\r\n\r\n";
        let raw = raw_exchange(weir.listen, attack).await.unwrap();
        let resp = RawResponse::parse(&raw);
        assert_eq!(resp.status, 400, "{resp:?}");
        let statuses = String::from_utf8_lossy(&raw).matches("HTTP/1.1 ").count();
        assert_eq!(statuses, 1, "one answer: {}", String::from_utf8_lossy(&raw));
        // The next client's request, on whatever upstream connection weir picks.
        let resp = exchange(
            &weir,
            b"GET /victim HTTP/1.1\r\nHost: shop\r\nCookie: secret\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(resp.body, b"ok");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = String::from_utf8_lossy(&recorder.bytes()).into_owned();
        assert!(!seen.contains("SMUGGLED"), "the upstream saw: {seen}");
        assert!(!seen.contains("6.6.6.6"), "the upstream saw: {seen}");
        let lines: Vec<String> = recorder.requests().into_iter().map(|r| r.line).collect();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("GET /victim HTTP/1.1"),
            "{lines:?}; the upstream saw: {seen}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l.contains("/victim") || l.contains("/attacker")),
            "{lines:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn upgrade_h2c_is_a_plain_request_and_websocket_still_tunnels() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let mut stream = tokio::net::TcpStream::connect(weir.listen).await.unwrap();
        use tokio::io::AsyncWriteExt;
        stream
            .write_all(
                b"GET /up HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                  Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            )
            .await
            .unwrap();
        let resp = read_response(&mut stream).await.expect("a response");
        assert_eq!(resp.status, 200, "not tunnelled: {resp:?}");
        assert!(!resp.has("upgrade"), "{resp:?}");
        assert_eq!(resp.body, b"ok");
        // Still HTTP/1.1 on both sides: a second request on the same connection.
        stream
            .write_all(b"GET /after HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut stream).await.expect("a second response");
        assert_eq!(resp.status, 200, "{resp:?}");
        let requests = recorder.wait_requests(2).await;
        let first = &requests[0];
        assert_eq!(first.line, "GET /up HTTP/1.1");
        for name in ["upgrade", "http2-settings"] {
            assert!(
                first.all(name).is_empty(),
                "{name} reached the upstream: {:?}",
                head_lines(first)
            );
        }
        assert!(
            first
                .all("connection")
                .iter()
                .all(|v| !v.to_ascii_lowercase().contains("upgrade")),
            "{:?}",
            head_lines(first)
        );
        assert_eq!(requests[1].line, "GET /after HTTP/1.1");

        // WebSocket (the default `upgrades`) is still tunnelled to an upstream that
        // speaks it.
        let ws = synthetic("ws").await;
        let weir = weir_to(ws, "").await;
        let mut stream = tokio::net::TcpStream::connect(weir.listen).await.unwrap();
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            )
            .await
            .unwrap();
        let resp = read_response(&mut stream).await.expect("a response");
        assert_eq!(resp.status, 101, "{resp:?}");
        assert_eq!(
            resp.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{resp:?}"
        );
    })
    .await;
}

/// userinfo is no part of the authority a request is for (RFC 9110 §4.2.4): weir
/// routes on the URI's host, so it must forward that host (or refuse the request), never
/// `evil@shop.example` as `Host`.
#[tokio::test]
async fn absolute_form_userinfo_never_reaches_the_upstream_host() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let resp = exchange(
            &weir,
            b"GET http://evil@shop.example/x HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
        )
        .await;
        if resp.status == 400 {
            return;
        }
        assert_eq!(resp.status, 200, "{resp:?}");
        let req = &recorder.wait_requests(1).await[0];
        assert_eq!(req.all("host"), ["shop.example"], "{:?}", head_lines(req));
    })
    .await;
}

/// A `Host`, an absolute-form authority or an `:authority` that names no single host
/// (user information, an empty host, spaces, a list) is refused, never forwarded.
#[tokio::test]
async fn hosts_that_name_no_single_host_are_400() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        for head in [
            "GET http://evil@shop.example/x HTTP/1.1\r\nHost: shop.example\r\n",
            "GET http://:80/x HTTP/1.1\r\nHost: shop.example\r\n",
            "GET /x HTTP/1.1\r\nHost: evil@shop.example\r\n",
            "GET /x HTTP/1.1\r\nHost: :80\r\n",
            "GET /x HTTP/1.1\r\nHost: shop evil\r\n",
            "GET /x HTTP/1.1\r\nHost: shop, evil\r\n",
            "GET /x HTTP/1.0\r\nHost: shop/evil\r\n",
        ] {
            let raw = format!("{head}Connection: close\r\n\r\n");
            let resp = exchange(&weir, raw.as_bytes()).await;
            assert_eq!(resp.status, 400, "{head:?}: {resp:?}");
        }
        let tcp = tokio::net::TcpStream::connect(weir.listen).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(conn);
        let req = http::Request::get("http://evil@shop.example/h2")
            .body(())
            .unwrap();
        let (response, _) = send.ready().await.unwrap().send_request(req, true).unwrap();
        assert_eq!(response.await.expect("a response").status(), 400);
        // Then one good request: the recorder must see it alone.
        let resp = exchange(
            &weir,
            b"GET /ok HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let requests = recorder.wait_requests(1).await;
        assert_eq!(requests.len(), 1, "only the valid request is forwarded");
        assert_eq!(requests[0].all("host"), ["shop.example:8080"]);
    })
    .await;
}

/// HTTP/1.0 may come without `Host`; the HTTP/1.1 request weir sends must have one, so
/// it names the endpoint (as nginx's default `Host $proxy_host`).
#[tokio::test]
async fn http10_without_host_reaches_the_upstream_with_the_endpoint_as_host() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let resp = exchange(&weir, b"GET /old HTTP/1.0\r\n\r\n").await;
        assert_eq!(resp.status, 200, "{resp:?}");
        let req = &recorder.wait_requests(1).await[0];
        assert_eq!(
            req.all("host"),
            [recorder.addr.to_string()],
            "{:?}",
            head_lines(req)
        );
    })
    .await;
}

/// Over HTTP/2 what is routed is what is forwarded: a `host` naming another authority
/// than `:authority` is refused (RFC 9113 §8.3.1).
#[tokio::test]
async fn http2_host_conflicting_with_authority_is_400() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        let tcp = tokio::net::TcpStream::connect(weir.listen).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(conn);
        for (host, status) in [("evil", 400), ("shop.example", 200)] {
            let req = http::Request::get("http://shop.example/h2")
                .header("host", host)
                .body(())
                .unwrap();
            let (response, _) = send
                .clone()
                .ready()
                .await
                .unwrap()
                .send_request(req, true)
                .unwrap();
            let response = response.await.expect("a response");
            assert_eq!(response.status(), status, "host: {host}");
        }
        let requests = recorder.wait_requests(1).await;
        assert_eq!(
            requests.len(),
            1,
            "only the consistent request is forwarded"
        );
        assert_eq!(requests[0].all("host"), ["shop.example"]);
    })
    .await;
}
