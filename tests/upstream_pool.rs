//! Upstream connections are pooled and kept alive: sequential requests reuse one
//! connection (also after bodiless answers: HEAD, 204, 304), HTTP/2 upstreams carry
//! many requests on one connection per worker, and a pooled connection the upstream
//! closed is not used again. The pool is behind both client protocols, so each case
//! runs for HTTP/1.1 and h2c clients.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.1 or h2c upstream that counts the connections it accepted. It answers
/// `/no-content` with 204, `/not-modified` with 304, HEAD with a length and no body,
/// and anything else with `ok`.
async fn counting_upstream(http2: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (_, "/no-content") => Response::builder()
                            .status(StatusCode::NO_CONTENT)
                            .body(Empty::new().map_err(|n| match n {}).boxed()),
                        (_, "/not-modified") => Response::builder()
                            .status(StatusCode::NOT_MODIFIED)
                            .header("etag", "\"v1\"")
                            .body(Empty::new().map_err(|n| match n {}).boxed()),
                        (&Method::HEAD, _) => Response::builder()
                            .header("content-length", "1234")
                            .body(Empty::new().map_err(|n| match n {}).boxed()),
                        _ => Response::builder().body(
                            Full::new(Bytes::from_static(b"ok\n"))
                                .map_err(|n| match n {})
                                .boxed(),
                        ),
                    };
                    Ok::<_, Infallible>(resp.unwrap())
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, accepted)
}

async fn weir_to(upstream: SocketAddr, protocol: &str) -> Weir {
    Weir::start(&format!(
        "destinations:\n  up: {{ endpoints: [\"{upstream}\"], protocol: {protocol} }}\n\
         routes:\n  - name: all\n    split: {{ up: 1 }}\n"
    ))
    .await
}

/// Sends `method path` on a client connection and reads the whole answer.
async fn send(conn: &mut Conn, method: Method, path: &str) -> Got {
    let req = conn
        .request(method.as_str(), "shop", path)
        .body(empty())
        .unwrap();
    let proto = conn.proto();
    conn.send(req)
        .await
        .unwrap_or_else(|e| panic!("{proto} {method} {path}: {e}"))
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    within(60, async {
        for proto in Proto::ALL {
            let (upstream, accepted) = counting_upstream(false).await;
            let weir = weir_to(upstream, "http1").await;
            let mut conn = proto.conn(weir.listen).await;
            for i in 0..50 {
                let got = send(&mut conn, Method::GET, &format!("/r{i}")).await;
                assert_eq!(got.status, 200, "{proto}");
                assert_eq!(got.text(), "ok\n", "{proto}");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "{proto}: 50 requests, one connection"
            );

            // Bodiless answers end the exchange at once and hand the connection back.
            for _ in 0..5 {
                let got = send(&mut conn, Method::HEAD, "/head").await;
                assert_eq!(got.status, 200, "{proto}");
                assert_eq!(got.header("content-length"), Some("1234"), "{proto}");
                assert!(got.body.is_empty(), "{proto}");
                let got = send(&mut conn, Method::GET, "/no-content").await;
                assert_eq!(got.status, 204, "{proto}");
                let got = send(&mut conn, Method::GET, "/not-modified").await;
                assert_eq!(got.status, 304, "{proto}");
                assert_eq!(got.header("etag"), Some("\"v1\""), "{proto}");
                let got = send(&mut conn, Method::GET, "/after").await;
                assert_eq!(got.text(), "ok\n", "{proto}");
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "{proto}: HEAD, 204 and 304 answers give the connection back to the pool"
            );
        }
    })
    .await;
}

/// New client connections share the pooled upstream connections (one pool per worker).
#[tokio::test]
async fn client_connections_share_pooled_upstream_connections() {
    within(60, async {
        for proto in Proto::ALL {
            let (upstream, accepted) = counting_upstream(false).await;
            let weir = weir_to(upstream, "http1").await;
            for i in 0..40 {
                let mut conn = proto.conn(weir.listen).await;
                let got = send(&mut conn, Method::GET, &format!("/c{i}")).await;
                assert_eq!(got.status, 200, "{proto}");
            }
            let n = accepted.load(Ordering::SeqCst);
            assert!(
                n <= 4,
                "{proto}: 40 sequential client connections opened {n} upstream connections"
            );
        }
    })
    .await;
}

/// HTTP/2 upstream: hundreds of concurrent requests, from clients of both protocols,
/// share one connection per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_multiplexes() {
    within(60, async {
        let (upstream, accepted) = counting_upstream(true).await;
        let weir = weir_to(upstream, "http2").await;
        let mut tasks = Vec::new();
        for (c, proto) in Proto::ALL.into_iter().cycle().take(4).enumerate() {
            let client = proto.client();
            for i in 0..50 {
                let client = client.clone();
                let url = weir.url(&format!("/m{c}-{i}"));
                tasks.push(tokio::spawn(async move {
                    (proto, get(&client, &url).await.status)
                }));
            }
        }
        for t in tasks {
            let (proto, status) = t.await.unwrap();
            assert_eq!(status, 200, "{proto}");
        }
        let n = accepted.load(Ordering::SeqCst);
        assert!(
            n <= 2,
            "200 requests opened {n} HTTP/2 upstream connections"
        );
    })
    .await;
}

/// An HTTP/1.1 upstream that closes every connection 20 ms after answering on it,
/// without saying so (no `Connection: close`), as servers with short keep-alive
/// timeouts do.
async fn short_keepalive_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn pooled_connections_the_upstream_closed_are_not_reused() {
    within(60, async {
        for proto in Proto::ALL {
            let (upstream, accepted) = short_keepalive_upstream().await;
            let weir = weir_to(upstream, "http1").await;
            let mut conn = proto.conn(weir.listen).await;
            for i in 0..20 {
                let got = send(&mut conn, Method::GET, &format!("/k{i}")).await;
                assert_eq!(got.status, 200, "{proto} request {i}: {}", got.text());
                assert_eq!(got.text(), "ok\n", "{proto}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 20, "{proto}");
        }
    })
    .await;
}

/// Idle pooled connections the upstream closed are closed by weir too, without a
/// request having to find them: the upstream connection gauge goes back to 0. (Both
/// client protocols at once, on two weirs: each waits for the 5 s sweep.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_upstream_closed_are_swept() {
    async fn swept(proto: Proto) {
        let (upstream, _) = short_keepalive_upstream().await;
        let weir = weir_to(upstream, "http1").await;
        let mut conn = proto.conn(weir.listen).await;
        assert_eq!(
            send(&mut conn, Method::GET, "/once").await.status,
            200,
            "{proto}"
        );
        let active = |v: &serde_json::Value| v["destinations"]["up"]["upstream_active"].as_i64();
        let json = admin_json(weir.admin, "/stats/connections").await;
        assert_eq!(active(&json), Some(1), "{proto}: {json}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let json = admin_json(weir.admin, "/stats/connections").await;
            if active(&json) == Some(0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{proto}: never swept: {json}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    within(60, async {
        tokio::join!(swept(Proto::Http1), swept(Proto::H2c));
    })
    .await;
}

/// An upstream that ends every connection after `per_conn` requests: HTTP/1.1 says
/// `Connection: close` on the last answer, HTTP/2 sends GOAWAY after it.
async fn rotating_upstream(http2: bool, per_conn: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let served = Arc::new(AtomicUsize::new(0));
                let (last_tx, mut last_rx) = tokio::sync::watch::channel(false);
                let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                    let last = n >= per_conn;
                    if last {
                        let _ = last_tx.send(true);
                    }
                    async move {
                        let mut resp = Response::new(
                            Full::new(Bytes::from_static(b"ok\n"))
                                .map_err(|n| match n {})
                                .boxed(),
                        );
                        if last && !http2 {
                            resp.headers_mut()
                                .insert("connection", "close".parse().unwrap());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(io, service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = async { let _ = last_rx.wait_for(|last| *last).await; } => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, accepted)
}

/// `n` concurrent requests through weir from a pooled `proto` client (h2c: streams of
/// one connection; HTTP/1.1: up to `n` connections); returns the failures.
async fn burst(weir: &Weir, proto: Proto, n: usize) -> Vec<String> {
    let client = proto.client();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let url = weir.url(&format!("/burst{i}"));
            tokio::spawn(async move {
                let got = get(&client, &url).await;
                (got.status, got.text())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for t in tasks {
        let (status, text) = t.await.unwrap();
        if status != 200 {
            failures.push(format!("{proto}: {status}: {}", text.trim_end()));
        }
    }
    failures
}

/// Upstreams that end connections (`Connection: close`, GOAWAY) cost no request:
/// weir does not reuse a connection that is going away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_ending_connections_cost_no_request() {
    within(60, async {
        for (http2, protocol) in [(false, "http1"), (true, "http2")] {
            for proto in Proto::ALL {
                let (upstream, accepted) = rotating_upstream(http2, 5).await;
                let weir = weir_to(upstream, protocol).await;
                // Sequential, on one client connection.
                let mut conn = proto.conn(weir.listen).await;
                for i in 0..40 {
                    let got = send(&mut conn, Method::GET, &format!("/s{i}")).await;
                    assert_eq!(
                        got.status,
                        200,
                        "{proto} to {protocol}, request {i}: {}",
                        got.text()
                    );
                    // Let the GOAWAY that may follow an answer arrive before the next
                    // request (requests racing a GOAWAY are the burst test below).
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(
                    accepted.load(Ordering::SeqCst) >= 40 / 5,
                    "{proto} to {protocol}: the upstream rotated its connections"
                );
            }
        }
        // Concurrent, HTTP/1.1 upstream.
        for proto in Proto::ALL {
            let (upstream, _) = rotating_upstream(false, 5).await;
            let weir = weir_to(upstream, "http1").await;
            let failures = burst(&weir, proto, 100).await;
            assert!(failures.is_empty(), "{failures:?}");
        }
    })
    .await;
}

/// An HTTP/2 upstream that shuts a connection down gracefully (GOAWAY 2^31-1, PING,
/// then GOAWAY with the last stream it processed, as hyper, gRPC and Go servers do)
/// while weir has streams queued on it: the h2 client writes the PING ACK before the
/// HEADERS it had already queued, so the final GOAWAY leaves those streams out. They
/// were never processed (RFC 9113 section 6.8), so weir sends them again on a new
/// connection and no request fails, whichever protocol the clients speak. (Sending
/// bodies again is unit-tested in `upstream::body`: with bodies in flight, this
/// upstream also closes under streams it had accepted, which weir cannot tell from
/// processed ones and rightly answers 502.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_goaway_during_a_burst_costs_no_request() {
    within(60, async {
        for proto in Proto::ALL {
            let (upstream, _) = rotating_upstream(true, 5).await;
            let weir = weir_to(upstream, "http2").await;
            let failures = burst(&weir, proto, 100).await;
            assert!(
                failures.is_empty(),
                "{proto}: {} of 100 failed: {failures:?}",
                failures.len()
            );
        }
    })
    .await;
}
