//! What weir does to requests and responses on the way through: hop-by-hop headers
//! removed both ways, `x-forwarded-for` appended, `x-forwarded-proto` set,
//! `x-request-id` kept or generated, `Host` (or `:authority`) preserved, end-to-end
//! headers untouched, and the access-log fields of a forwarded request. The header
//! policy is the same for HTTP/1.1 and h2c clients, so those cases run from one table
//! over [`Proto::ALL`]; where only HTTP/1.1 can say something (hop-by-hop request
//! headers, chunked framing, the exact response lines) the request is written on raw
//! TCP so the exact header lines are under control.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
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

/// Sends `GET path` for `host` with `headers` on a new connection speaking `proto`;
/// returns the response and what the echo upstream saw.
async fn echoed(
    weir: &Weir,
    proto: Proto,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Got, Echoed) {
    let mut conn = proto.conn(weir.listen).await;
    let mut req = conn.request("GET", host, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let got = conn
        .send(req.body(empty()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{proto} {path}: {e}"));
    assert_eq!(got.status, 200, "{proto} {path}: {}", got.text());
    let seen = Echoed::parse(&got.body);
    (got, seen)
}

fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// HTTP/1.1 only: an HTTP/2 client may not send connection-specific header fields at
/// all (RFC 9113 section 8.2.2; hyper's client refuses to), so there is nothing for
/// weir to remove. What both protocols share (`Host`, end-to-end headers kept) is in
/// `host_and_end_to_end_headers_reach_the_upstream`.
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

/// `TE: trailers` is the one `TE` value that crosses a proxy. (HTTP/1.1 must list `TE`
/// in `Connection`; HTTP/2 allows `te` with exactly this value.)
#[tokio::test]
async fn te_trailers_is_kept() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let (_, seen) = through(
            &weir,
            "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close, TE\r\nTE: trailers\r\n\r\n",
        )
        .await;
        assert_eq!(seen.one("te"), Some("trailers"), "raw HTTP/1.1: {seen:?}");
        for proto in Proto::ALL {
            let mut headers = vec![("te", "trailers")];
            if proto == Proto::Http1 {
                headers.push(("connection", "te"));
            }
            let (_, seen) = echoed(&weir, proto, "shop", "/", &headers).await;
            assert_eq!(seen.one("te"), Some("trailers"), "{proto}: {seen:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn forwarding_headers_are_added() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        for proto in Proto::ALL {
            // No forwarding headers from the client.
            let (_, seen) = echoed(&weir, proto, "shop", "/", &[]).await;
            assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"], "{proto}");
            assert_eq!(seen.one("x-forwarded-proto"), Some("http"), "{proto}");
            let generated = seen
                .one("x-request-id")
                .unwrap_or_else(|| panic!("{proto}: x-request-id generated"));
            assert!(is_uuid_v4(generated), "{proto}: not a UUID v4: {generated}");
            // The access log carries the same id.
            let line = weir
                .wait_access(&format!("{proto}: the generated request id"), |v| {
                    v["request_id"] == generated
                })
                .await;
            assert_eq!(line["status"], 200, "{proto}: {line}");
            assert_eq!(line["protocol"], proto.logged(), "{proto}: {line}");

            // A client-sent chain is appended to, and the request id kept.
            let id = format!("my-request-{}", proto.tag());
            let (_, seen) = echoed(
                &weir,
                proto,
                "shop",
                "/",
                &[
                    ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
                    ("x-request-id", &id),
                ],
            )
            .await;
            assert_eq!(
                seen.all("x-forwarded-for").join(", "),
                "203.0.113.7, 10.0.0.1, 127.0.0.1",
                "{proto}"
            );
            assert_eq!(seen.all("x-request-id"), [id.as_str()], "{proto}");
            weir.wait_access(&format!("{proto}: the kept request id"), |v| {
                v["request_id"] == id.as_str()
            })
            .await;

            // Request ids differ per request.
            let (_, a) = echoed(&weir, proto, "s", "/", &[]).await;
            let (_, b) = echoed(&weir, proto, "s", "/", &[]).await;
            assert_ne!(a.one("x-request-id"), b.one("x-request-id"), "{proto}");
        }
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
            "raw HTTP/1.1: {seen:?}"
        );
        for proto in Proto::ALL {
            let (_, seen) = echoed(
                &weir,
                proto,
                "shop",
                "/",
                &[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-for", "10.0.0.1"),
                ],
            )
            .await;
            assert_eq!(
                seen.all("x-forwarded-for").join(", "),
                "203.0.113.7, 10.0.0.1, 127.0.0.1",
                "{proto}: {seen:?}"
            );
        }
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

        // Both client protocols: the upstream's hop-by-hop headers stay behind, its
        // end-to-end ones come through.
        for proto in Proto::ALL {
            let mut conn = proto.conn(weir.listen).await;
            let got = conn.get("/").await.unwrap();
            assert_eq!(got.status, 200, "{proto}");
            assert_eq!(got.header("x-up-custom"), Some("kept"), "{proto}");
            for gone in ["x-up-secret", "keep-alive", "proxy-connection"] {
                assert!(
                    got.header(gone).is_none(),
                    "{proto}: {gone} reached the client"
                );
            }
            // Over HTTP/2, connection-specific headers are not allowed at all.
            if proto.is_http2() {
                assert!(
                    got.header("connection").is_none(),
                    "{proto}: connection reached the client"
                );
            }
        }
    })
    .await;
}

/// `Host` (HTTP/1.1) or `:authority` (HTTP/2) reaches an HTTP/1.1 upstream as `Host`,
/// with the path and query, end-to-end headers, and the same forwarding headers.
#[tokio::test]
async fn host_and_end_to_end_headers_reach_the_upstream() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        for proto in Proto::ALL {
            let id = format!("{}-req", proto.tag());
            let (_, seen) = echoed(
                &weir,
                proto,
                "shop.example:8080",
                "/p?q=1",
                &[("x-custom", "kept"), ("x-request-id", &id)],
            )
            .await;
            assert_eq!(seen.version, "HTTP/1.1", "{proto}");
            assert_eq!(seen.method, "GET", "{proto}");
            assert_eq!(seen.uri, "/p?q=1", "{proto}");
            assert_eq!(seen.one("host"), Some("shop.example:8080"), "{proto}");
            assert_eq!(seen.one("x-custom"), Some("kept"), "{proto}");
            assert_eq!(seen.one("x-request-id"), Some(id.as_str()), "{proto}");
            assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"], "{proto}");
            assert_eq!(seen.one("x-forwarded-proto"), Some("http"), "{proto}");
        }
    })
    .await;
}

/// HTTP/2 only: a client may split `cookie` into several fields (RFC 9113 section
/// 8.2.3); an HTTP/1.1 upstream gets them as one header. With `te: trailers`, as gRPC
/// clients send it.
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

/// A request body of unknown length, in two pieces, with no size hint: over HTTP/2 it
/// goes out as DATA frames without `content-length`.
struct TwoPieces(Vec<Bytes>);

impl Body for TwoPieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Request bodies keep their framing meaning: an upload of unknown length (chunked on
/// HTTP/1.1, DATA frames without a length on HTTP/2) arrives whole, re-framed by weir
/// (one `transfer-encoding`, never together with a length).
#[tokio::test]
async fn requests_without_a_length_are_forwarded_whole() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        for proto in Proto::ALL {
            let body = match proto {
                // The exact chunked framing on the wire.
                Proto::Http1 => {
                    let raw = raw_exchange(
                        weir.listen,
                        b"POST /upload HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
                          Transfer-Encoding: chunked\r\n\r\n\
                          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                    )
                    .await
                    .unwrap();
                    let resp = RawResponse::parse(&raw);
                    assert_eq!(
                        resp.status,
                        200,
                        "{proto}: {}",
                        String::from_utf8_lossy(&raw)
                    );
                    resp.body
                }
                Proto::H2c => {
                    let mut conn = proto.conn(weir.listen).await;
                    let pieces = TwoPieces(vec![Bytes::from("hello"), Bytes::from(" world")]);
                    let req = conn
                        .request("POST", "shop", "/upload")
                        .body(pieces.boxed())
                        .unwrap();
                    let got = conn.send(req).await.unwrap();
                    assert_eq!(got.status, 200, "{proto}: {}", got.text());
                    got.body.to_vec()
                }
            };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["body_bytes"], 11, "{proto}: {v}");
            let seen = Echoed::parse(&body);
            assert!(
                seen.all("transfer-encoding").len() <= 1,
                "{proto}: {seen:?}"
            );
            assert!(
                seen.all("transfer-encoding").is_empty() || seen.all("content-length").is_empty(),
                "{proto}: {seen:?}"
            );
        }
    })
    .await;
}

/// The access-log line of a forwarded request has the same fields, filled the same
/// way, whichever protocol the client spoke.
#[tokio::test]
async fn access_log_fields_are_the_same_for_both_protocols() {
    within(60, async {
        let upstream = echo_upstream(false).await;
        let weir = weir_to(upstream).await;
        for proto in Proto::ALL {
            let id = format!("fields-{}", proto.tag());
            let mut conn = proto.conn(weir.listen).await;
            let req = conn
                .request("POST", "shop", "/fields?x=1")
                .header("x-request-id", &id)
                .body(full("hello"))
                .unwrap();
            let got = conn.send(req).await.unwrap();
            assert_eq!(got.status, 200, "{proto}: {}", got.text());
            let line = weir
                .wait_access(&format!("{proto}: the line"), |v| {
                    v["request_id"] == id.as_str()
                })
                .await;
            for (field, want) in [
                ("method", serde_json::json!("POST")),
                ("path", serde_json::json!("/fields?x=1")),
                ("protocol", serde_json::json!(proto.logged())),
                ("route", serde_json::json!("all")),
                ("destination", serde_json::json!("echo")),
                ("endpoint", serde_json::json!(upstream.to_string())),
                ("status", serde_json::json!(200)),
                ("flags", serde_json::json!("-")),
                ("request_bytes", serde_json::json!(5)),
                ("response_bytes", serde_json::json!(got.body.len())),
                ("tls", serde_json::json!("-")),
                ("client_subject", serde_json::json!("-")),
            ] {
                assert_eq!(line[field], want, "{proto}: {field} in {line}");
            }
            let peer = line["peer"].as_str().unwrap_or_default();
            assert!(peer.starts_with("127.0.0.1:"), "{proto}: {line}");
            let ms: f64 = line["duration_ms"].as_str().unwrap().parse().unwrap();
            assert!(ms >= 0.0, "{proto}: {line}");
        }
    })
    .await;
}
