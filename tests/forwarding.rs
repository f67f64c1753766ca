//! What weir does to requests and responses on the way through: hop-by-hop headers
//! removed both ways, `x-forwarded-for` appended, `x-forwarded-proto` set,
//! `x-request-id` kept or generated, `Host` preserved, end-to-end headers untouched.
//! Requests are written on raw TCP so the exact header lines are under control.

mod support;

use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use support::*;

async fn weir_to(upstream: SocketAddr) -> Weir {
    Weir::start(&format!(
        r#"
access_log: true
destinations:
  echo: {{ endpoints: ["{upstream}"] }}
routes:
  - name: all
    split: {{ echo: 1 }}
"#
    ))
    .await
}

/// Sends a raw HTTP/1.1 request (which must ask for `Connection: close`) and returns
/// the response and what the echo upstream saw.
async fn through(weir: &Weir, request: &str) -> (RawResponse, Echoed) {
    let raw = raw_exchange(weir.listen, request.as_bytes()).await.unwrap();
    let resp = RawResponse::parse(&raw);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&raw));
    let echoed = Echoed::parse(&resp.body);
    (resp, echoed)
}

fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let (_, seen) = through(
            &weir,
            "GET /h?x=1 HTTP/1.1\r\n\
             Host: shop.example:8080\r\n\
             Connection: close, X-Secret, x-other\r\n\
             X-Secret: 1\r\n\
             X-Other: 2\r\n\
             Keep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\n\
             TE: gzip\r\n\
             Upgrade: foo/1\r\n\
             X-Custom: kept\r\n\
             Cookie: a=1\r\n\
             \r\n",
        )
        .await;
        for gone in [
            "connection",
            "x-secret",
            "x-other",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            assert!(
                seen.all(gone).is_empty(),
                "{gone} reached the upstream: {seen:?}"
            );
        }
        assert_eq!(seen.one("x-custom"), Some("kept"));
        assert_eq!(seen.one("cookie"), Some("a=1"));
        assert_eq!(
            seen.one("host"),
            Some("shop.example:8080"),
            "Host is preserved"
        );
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.uri, "/h?x=1");
        assert_eq!(seen.version, "HTTP/1.1");
    })
    .await;
}

#[tokio::test]
async fn te_trailers_is_kept() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let (_, seen) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close, TE\r\nTE: trailers\r\n\r\n",
        )
        .await;
        assert_eq!(seen.one("te"), Some("trailers"), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn forwarding_headers_are_added() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        // No forwarding headers from the client.
        let (_, seen) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
        let generated = seen.one("x-request-id").expect("x-request-id generated");
        assert!(is_uuid_v4(generated), "not a UUID v4: {generated}");
        // The access log carries the same id.
        let line = weir
            .wait_access("the generated request id", |v| v["request_id"] == generated)
            .await;
        assert_eq!(line["status"], 200);

        // A client-sent chain is appended to, and the request id kept.
        let (_, seen) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
             X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\
             X-Request-Id: my-request-1\r\n\r\n",
        )
        .await;
        assert_eq!(
            seen.all("x-forwarded-for").join(", "),
            "203.0.113.7, 10.0.0.1, 127.0.0.1"
        );
        assert_eq!(seen.all("x-request-id"), ["my-request-1"]);
        weir.wait_access("the kept request id", |v| v["request_id"] == "my-request-1")
            .await;

        // Request ids differ per request.
        let (_, a) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (_, b) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_ne!(a.one("x-request-id"), b.one("x-request-id"));
    })
    .await;
}

/// `X-Forwarded-For` sent as two field lines is one list (RFC 9110 §5.3): weir appends
/// to all of it.
#[tokio::test]
async fn forwarded_for_in_several_lines_is_appended_whole() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let (_, seen) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
             X-Forwarded-For: 203.0.113.7\r\n\
             X-Forwarded-For: 10.0.0.1\r\n\r\n",
        )
        .await;
        assert_eq!(
            seen.all("x-forwarded-for").join(", "),
            "203.0.113.7, 10.0.0.1, 127.0.0.1",
            "{seen:?}"
        );
    })
    .await;
}

/// An upstream whose responses carry hop-by-hop headers of its own.
async fn chatty_upstream() -> SocketAddr {
    serve(false, |_req: Request<Incoming>| async move {
        Response::builder()
            .header("connection", "x-up-secret")
            .header("x-up-secret", "1")
            .header("keep-alive", "timeout=5, max=100")
            .header("proxy-connection", "keep-alive")
            .header("x-up-custom", "kept")
            .body(server_body("hello\n"))
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    within(60, async {
        let weir = weir_to(chatty_upstream().await).await;
        let raw = raw_exchange(
            weir.listen,
            b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let resp = RawResponse::parse(&raw);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello\n");
        assert_eq!(resp.header("x-up-custom"), Some("kept"));
        for gone in ["x-up-secret", "keep-alive", "proxy-connection"] {
            assert!(!resp.has(gone), "{gone} reached the client: {resp:?}");
        }
        // Only weir's own connection management remains.
        for (k, v) in &resp.headers {
            if k == "connection" {
                assert_eq!(v, "close", "{resp:?}");
            }
        }

        // Over HTTP/2, connection-specific headers are not allowed at all.
        let got = get(&h2_client(), &weir.url("/")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-up-custom"), Some("kept"));
        for gone in [
            "connection",
            "x-up-secret",
            "keep-alive",
            "proxy-connection",
        ] {
            assert!(got.header(gone).is_none(), "{gone} reached the h2 client");
        }
    })
    .await;
}

/// HTTP/2 downstream to an HTTP/1.1 upstream: `:authority` becomes `Host`, split
/// cookies become one header, the forwarding headers are the same.
#[tokio::test]
async fn h2_request_to_http1_upstream() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let mut tx = h2_conn(weir.listen).await;
        let req = Request::get("http://shop.example:8080/p?q=1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("te", "trailers")
            .header("x-request-id", "h2-req")
            .body(empty())
            .unwrap();
        let got = read(tx.send_request(req).await.unwrap()).await.unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        let seen = Echoed::parse(&got.body);
        assert_eq!(seen.version, "HTTP/1.1");
        assert_eq!(seen.uri, "/p?q=1");
        assert_eq!(seen.one("host"), Some("shop.example:8080"));
        assert_eq!(seen.one("cookie"), Some("a=1; b=2"));
        assert_eq!(seen.one("te"), Some("trailers"));
        assert_eq!(seen.one("x-request-id"), Some("h2-req"));
        assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    })
    .await;
}

/// Request bodies keep their framing meaning: a chunked HTTP/1.1 upload arrives whole,
/// re-framed by weir (one `transfer-encoding`, never together with a length).
#[tokio::test]
async fn chunked_request_bodies_are_forwarded() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let raw = raw_exchange(
            weir.listen,
            b"POST /upload HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
        let resp = RawResponse::parse(&raw);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&raw));
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["body_bytes"], 11, "{v}");
        let seen = Echoed::parse(&resp.body);
        assert!(seen.all("transfer-encoding").len() <= 1, "{seen:?}");
        assert!(
            seen.all("transfer-encoding").is_empty() || seen.all("content-length").is_empty(),
            "{seen:?}"
        );
    })
    .await;
}
