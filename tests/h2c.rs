//! HTTP/2 cleartext: prior-knowledge clients downstream (to HTTP/1.1 and to HTTP/2
//! upstreams), both client protocols to an HTTP/2 upstream, gRPC-style trailers
//! carried end to end over HTTP/2, and what only HTTP/2 has (a preface arriving in
//! pieces, flow-control windows). What does not depend on the client's protocol is
//! tested over both in the other files; weir's own replies' `Date` is in `failures.rs`.

mod support;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use support::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

async fn weir_with(upstream: SocketAddr, protocol: &str) -> Weir {
    Weir::start(&format!(
        r#"
access_log: true
destinations:
  up: {{ endpoints: ["{upstream}"], protocol: {protocol} }}
routes:
  - name: all
    split: {{ up: 1 }}
"#
    ))
    .await
}

fn post(uri: &str, body: Bytes) -> Request<ReqBody> {
    Request::post(uri).body(full(body)).unwrap()
}

/// Both client protocols to an HTTP/1.1 upstream: a GET, and a 300,000-byte POST
/// counted in the response and the access log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_client_protocols_to_an_http1_upstream() {
    within(60, async {
        let weir = weir_with(synthetic("h1-upstream").await, "http1").await;
        for proto in Proto::ALL {
            let client = proto.client();
            let got = get(&client, &weir.url("/hello")).await;
            assert_eq!(got.status, 200, "{proto}");
            assert_eq!(got.upstream(), "h1-upstream", "{proto}");
            assert_eq!(got.text(), "h1-upstream\n", "{proto}");
            let body = Bytes::from(vec![b'x'; 300_000]);
            let path = format!("/upload-{}", proto.tag());
            let got = fetch(&client, post(&weir.url(&path), body)).await;
            assert_eq!(got.status, 200, "{proto}");
            assert_eq!(
                got.header("x-weir-request-bytes"),
                Some("300000"),
                "{proto}"
            );
            let line = weir
                .wait_access(&format!("the {proto} POST"), |v| v["path"] == path.as_str())
                .await;
            assert_eq!(line["protocol"], proto.logged(), "{proto}");
            assert_eq!(line["request_bytes"], 300_000, "{proto}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_from_both_client_protocols() {
    within(60, async {
        let weir = weir_with(synthetic("h2-upstream").await, "http2").await;
        for proto in Proto::ALL {
            let client = proto.client();
            let got = get(&client, &weir.url("/")).await;
            assert_eq!(got.status, 200, "{proto}: {}", got.text());
            assert_eq!(got.upstream(), "h2-upstream", "{proto}");
            let got = fetch(
                &client,
                post(&weir.url("/up"), Bytes::from(vec![1u8; 70_000])),
            )
            .await;
            assert_eq!(got.status, 200, "{proto}: {}", got.text());
            assert_eq!(got.header("x-weir-request-bytes"), Some("70000"), "{proto}");
        }
        // Many concurrent streams over the pooled upstream connection.
        let client = h2_client();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let client = client.clone();
                let url = weir.url("/many");
                tokio::spawn(async move { get(&client, &url).await.status })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
    })
    .await;
}

/// A request to an HTTP/2 upstream: `Host` (or the client's `:authority`) becomes
/// `:authority`, and no `host` or `connection` field goes out. The HTTP/1.1 request is
/// written on raw TCP so its `Host` and `Connection` lines are exactly these.
#[tokio::test]
async fn requests_to_an_http2_upstream_carry_the_authority() {
    within(60, async {
        let weir = weir_with(echo_upstream(true).await, "http2").await;
        for proto in Proto::ALL {
            let body = match proto {
                Proto::Http1 => {
                    let raw = raw_exchange(
                        weir.listen,
                        b"GET /p?q=1 HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
                    let resp = RawResponse::parse(&raw);
                    assert_eq!(resp.status, 200, "{proto}: {}", String::from_utf8_lossy(&raw));
                    resp.body
                }
                Proto::H2c => {
                    let mut conn = proto.conn(weir.listen).await;
                    let req = conn.request("GET", "shop.example:8080", "/p?q=1");
                    let got = conn.send(req.body(empty()).unwrap()).await.unwrap();
                    assert_eq!(got.status, 200, "{proto}: {}", got.text());
                    got.body.to_vec()
                }
            };
            let seen = Echoed::parse(&body);
            assert_eq!(seen.version, "HTTP/2.0", "{proto}");
            assert_eq!(seen.uri, "http://shop.example:8080/p?q=1", "{proto}");
            assert!(seen.all("host").is_empty(), "{proto}: {seen:?}");
            assert!(seen.all("connection").is_empty(), "{proto}: {seen:?}");
        }
    })
    .await;
}

/// A gRPC-like upstream over h2c: `/pkg.Svc/Echo` answers a body then trailers
/// (`grpc-status: 0`); `/pkg.Svc/Missing` answers trailers-only with `grpc-status: 5`.
/// Both report the `te` header they received.
async fn grpc_like_upstream() -> SocketAddr {
    serve(true, |req: Request<Incoming>| async move {
        let te = req.headers().get("te").cloned();
        let missing = req.uri().path() == "/pkg.Svc/Missing";
        let received = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        let mut builder = Response::builder()
            .header("content-type", "application/grpc")
            .header("x-received", received.to_string());
        if let Some(te) = te {
            builder = builder.header("x-seen-te", te);
        }
        if missing {
            return builder
                .header("grpc-status", "5")
                .header("grpc-message", "no such method")
                .body(server_body(Bytes::new()))
                .unwrap();
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static("all good"));
        // A length-prefixed message, as gRPC frames it, then a second data frame.
        let mut message = vec![0u8, 0, 0, 0, 5];
        message.extend_from_slice(b"hello");
        let body = Full::new(Bytes::from(message))
            .with_trailers(async move { Some(Ok(trailers)) })
            .map_err(|never| match never {})
            .boxed();
        builder.body(body).unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_pass_end_to_end_over_http2() {
    within(60, async {
        let weir = weir_with(grpc_like_upstream().await, "http2").await;
        let mut tx = h2_conn(weir.listen).await;
        let req = Request::post("http://shop/pkg.Svc/Echo")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(&b"\0\0\0\0\x03abc"[..]))
            .unwrap();
        let got = read(tx.send_request(req).await.unwrap()).await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("x-seen-te"),
            Some("trailers"),
            "te: trailers reached the upstream"
        );
        assert_eq!(got.header("x-received"), Some("8"));
        assert_eq!(&got.body[..], b"\0\0\0\0\x05hello");
        let trailers = got.trailers.expect("trailers arrive");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "all good");

        // Trailers-only answer (an error status in the response headers).
        let req = Request::post("http://shop/pkg.Svc/Missing")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(&b"\0\0\0\0\x00"[..]))
            .unwrap();
        let got = read(tx.send_request(req).await.unwrap()).await.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.header("grpc-status"), Some("5"));
        assert_eq!(got.header("grpc-message"), Some("no such method"));
        assert!(got.body.is_empty());

        let line = weir
            .wait_access("the gRPC call", |v| v["path"] == "/pkg.Svc/Echo")
            .await;
        assert_eq!(line["status"], 200);
        assert_eq!(line["flags"], "-");
    })
    .await;
}

/// A client stream that writes its first `slow` bytes one at a time, 5 ms apart: the
/// HTTP/2 preface arrives in pieces, and weir must still see HTTP/2.
struct Trickle {
    inner: TcpStream,
    slow: usize,
    sent: usize,
    pause: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.sent >= this.slow {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if let Some(pause) = &mut this.pause {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..1]))?;
        this.sent += n;
        this.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(5))));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preface_arriving_in_pieces_is_still_http2() {
    within(60, async {
        let weir = weir_with(synthetic("up").await, "http1").await;
        let stream = TcpStream::connect(weir.listen).await.unwrap();
        let io = Trickle {
            inner: stream,
            slow: 24,
            sent: 0,
            pause: None,
        };
        let (mut tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake::<_, ReqBody>(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        let got = read(
            tx.send_request(Request::get("http://shop/").body(empty()).unwrap())
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.upstream(), "up");
    })
    .await;
}

/// Bodies larger than every flow-control window on the way (weir's 1 MiB receive
/// windows, the client's 2 MiB stream window) keep moving in both directions, on
/// concurrent streams of one connection: weir hands receive capacity back as the
/// upstream takes the upload, and waits for send capacity for the downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_larger_than_the_windows_flow_both_ways() {
    within(120, async {
        const SIZE: usize = 6 * 1024 * 1024;
        let mut profile = weir::synthetic::Profile::new("big");
        profile.body_bytes = Some(SIZE);
        let weir = weir_with(synthetic_with(profile).await, "http1").await;
        let client = h2_client();
        let upload = Bytes::from(vec![b'u'; 5 * 1024 * 1024]);
        let mut calls = Vec::new();
        for i in 0..4 {
            let (client, url) = (client.clone(), weir.url(&format!("/down/{i}")));
            calls.push(tokio::spawn(async move { get(&client, &url).await }));
        }
        let got = fetch(&client, post(&weir.url("/up"), upload)).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-weir-request-bytes"), Some("5242880"));
        for call in calls {
            let got = call.await.unwrap();
            assert_eq!(got.status, 200);
            assert_eq!(got.body.len(), SIZE);
        }
        let line = weir
            .wait_access("the big POST", |v| v["path"] == "/up")
            .await;
        assert_eq!(line["request_bytes"], 5_242_880);
    })
    .await;
}
