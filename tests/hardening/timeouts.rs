//! Slow clients and stalled upstreams: the request-header timeout (408, and the
//! connection closes), the idle timeout before a request's first byte, the request
//! timeout (the body must arrive in time) and the stream idle timeout (something must
//! move, either way), before and during the response, for both client protocols.

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::*;

/// Reads what weir sends until it closes (at most 10 s): the response, if any, and
/// when the connection closed, from `start`.
async fn answer_and_close(
    stream: &mut TcpStream,
    start: Instant,
) -> (Option<RawResponse>, Duration) {
    let (raw, closed) = read_until_close(stream, Duration::from_secs(10)).await;
    assert!(
        closed,
        "still open after 10 s; got {:?}",
        String::from_utf8_lossy(&raw)
    );
    let took = start.elapsed();
    let resp = (!raw.is_empty()).then(|| RawResponse::parse(&raw));
    (resp, took)
}

fn about(took: Duration, secs: f64, what: &str) {
    let (low, high) = (secs * 0.8, secs + 1.5);
    assert!(
        took.as_secs_f64() >= low && took.as_secs_f64() < high,
        "{what}: after {took:?}, expected about {secs} s"
    );
}

#[tokio::test]
async fn a_partial_head_then_silence_is_408_and_closed() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "request_header_timeout: 1s\nidle_timeout: 60s").await;
        // A first request, and a second on a kept-alive connection.
        for keep_alive_first in [false, true] {
            let mut stream = TcpStream::connect(weir.listen).await.unwrap();
            if keep_alive_first {
                stream
                    .write_all(b"GET /first HTTP/1.1\r\nHost: shop\r\n\r\n")
                    .await
                    .unwrap();
                let resp = read_response(&mut stream).await.expect("first response");
                assert_eq!(resp.status, 200);
            }
            let start = Instant::now();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nHost: shop\r\nX-Pad: a")
                .await
                .unwrap();
            let (resp, took) = answer_and_close(&mut stream, start).await;
            let resp = resp.expect("a 408");
            assert_eq!(resp.status, 408, "{resp:?}");
            assert!(
                String::from_utf8_lossy(&resp.body).contains("request header timeout"),
                "{resp:?}"
            );
            about(took, 1.0, "408");
        }
    })
    .await;
}

/// Without `request_header_timeout` in the config, the default is 10 s.
#[tokio::test]
async fn the_default_header_timeout_is_ten_seconds() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "idle_timeout: 60s").await;
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        let start = Instant::now();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: shop\r\n")
            .await
            .unwrap();
        let (raw, closed) = read_until_close(&mut stream, Duration::from_secs(15)).await;
        let took = start.elapsed();
        assert!(closed, "still open after {took:?}");
        assert!(!raw.is_empty(), "closed without an answer after {took:?}");
        assert_eq!(RawResponse::parse(&raw).status, 408, "after {took:?}");
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(12),
            "408 after {took:?}, not about 10 s"
        );
    })
    .await;
}

/// The header timeout runs from a request's first byte, however the bytes before the
/// end of the head are spread (here the first one alone, as protocol detection reads
/// it, then the rest).
#[tokio::test]
async fn the_header_timeout_counts_from_the_first_byte() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "request_header_timeout: 1s\nidle_timeout: 60s").await;
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        let start = Instant::now();
        stream.write_all(b"P").await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        stream
            .write_all(b"OST /slow HTTP/1.1\r\nHost: shop\r\n")
            .await
            .unwrap();
        let (resp, took) = answer_and_close(&mut stream, start).await;
        assert_eq!(resp.map(|r| r.status), Some(408));
        assert!(
            took < Duration::from_millis(1400),
            "408 {took:?} after the first byte, request_header_timeout is 1s"
        );
    })
    .await;
}

#[tokio::test]
async fn idle_keep_alive_connections_still_live_for_the_idle_timeout() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "request_header_timeout: 1s\nidle_timeout: 4s").await;
        let get = b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n";
        // Idle between two requests for longer than the header timeout.
        let between = async {
            let mut stream = TcpStream::connect(weir.listen).await.unwrap();
            stream.write_all(get).await.unwrap();
            assert_eq!(
                read_response(&mut stream).await.map(|r| r.status),
                Some(200)
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            stream.write_all(get).await.unwrap();
            let resp = read_response(&mut stream).await;
            assert_eq!(resp.map(|r| r.status), Some(200), "after 2 s idle");
            // Then the idle timeout closes it, without a response.
            let start = Instant::now();
            let (resp, took) = answer_and_close(&mut stream, start).await;
            assert!(resp.is_none(), "{resp:?}");
            about(took, 4.0, "idle close");
        };
        // Opened ahead of its first request.
        let ahead = async {
            let mut stream = TcpStream::connect(weir.listen).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            stream.write_all(get).await.unwrap();
            let resp = read_response(&mut stream).await;
            assert_eq!(resp.map(|r| r.status), Some(200), "first request after 2 s");
        };
        tokio::join!(between, ahead);
    })
    .await;
}

/// A request body the test sends piece by piece; it ends when the sender drops.
struct Sent(mpsc::Receiver<Bytes>);

impl http_body::Body for Sent {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// An HTTP/2 connection to weir and a request whose body the test sends by hand.
async fn h2_with_body(weir: &Weir, length: usize) -> (Conn, Request<ReqBody>, mpsc::Sender<Bytes>) {
    let conn = Proto::H2c.conn(weir.listen).await;
    let (tx, rx) = mpsc::channel(4);
    let req = conn
        .request("POST", "shop", "/upload")
        .header("content-length", length)
        .body(Sent(rx).boxed())
        .unwrap();
    (conn, req, tx)
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_request_timeout_is_408() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "request_timeout: 1s\nstream_idle_timeout: 0s").await;
        // HTTP/1.1: 1 byte of 10, then nothing.
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        let start = Instant::now();
        stream
            .write_all(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 10\r\n\r\nx")
            .await
            .unwrap();
        let (resp, took) = answer_and_close(&mut stream, start).await;
        assert_eq!(resp.map(|r| r.status), Some(408), "HTTP/1.1");
        about(took, 1.0, "HTTP/1.1 408");
        wait_connections(
            &weir,
            "HTTP/1.1: upstream released",
            Duration::from_secs(3),
            |j| upstream_active(j) == 0,
        )
        .await;

        // h2c: the same body on a stream.
        let (mut conn, req, tx) = h2_with_body(&weir, 10).await;
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        let start = Instant::now();
        let got = conn.send(req).await.expect("h2c: a response");
        assert_eq!(got.status, 408, "h2c: {got:?}");
        about(start.elapsed(), 1.0, "h2c 408");
        drop(tx);
        wait_connections(
            &weir,
            "h2c: upstream released",
            Duration::from_secs(3),
            |j| upstream_active(j) == 0,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_body_that_pauses_longer_than_the_stream_idle_timeout_is_408_si() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "stream_idle_timeout: 1s\nrequest_timeout: 0s").await;
        // HTTP/1.1: half the body, then a pause longer than the timeout.
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        let start = Instant::now();
        stream
            .write_all(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 10\r\n\r\n12345")
            .await
            .unwrap();
        // The rest would come 2 s later: weir answers before.
        let resp = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
            .await
            .ok()
            .flatten();
        let resp = resp.expect("HTTP/1.1: a response");
        assert_eq!(resp.status, 408, "HTTP/1.1: {resp:?}");
        assert_eq!(resp.header("x-weir-response-flags"), Some("SI"), "HTTP/1.1");
        about(start.elapsed(), 1.0, "HTTP/1.1 SI");

        // h2c: the same pause on a stream.
        let (mut conn, req, tx) = h2_with_body(&weir, 10).await;
        tx.send(Bytes::from_static(b"12345")).await.unwrap();
        let start = Instant::now();
        // The rest would come 2 s later (the sender stays open meanwhile).
        let got = conn.send(req).await.expect("h2c: a response");
        assert_eq!(got.status, 408, "h2c: {got:?}");
        assert_eq!(got.header("x-weir-response-flags"), Some("SI"), "h2c");
        about(start.elapsed(), 1.0, "h2c SI");
        drop(tx);
        wait_connections(&weir, "upstream released", Duration::from_secs(3), |j| {
            upstream_active(j) == 0
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_response_is_cut_after_the_stream_idle_timeout() {
    within(60, async {
        let upstream = scripted_upstream(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
            Duration::from_secs(20),
        )
        .await;
        let weir = weir_to(upstream, "stream_idle_timeout: 1s").await;
        // HTTP/1.1: the head and 10 bytes, then the connection closes short.
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        let start = Instant::now();
        stream
            .write_all(b"GET /h1 HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let (raw, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
        assert!(closed, "HTTP/1.1: not cut");
        about(start.elapsed(), 1.0, "HTTP/1.1 cut");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("0123456789"), "HTTP/1.1: {text}");
        let line = weir
            .wait_access("HTTP/1.1 stalled response", |l| l["path"] == "/h1")
            .await;
        assert!(has_flag(&line, "SI"), "HTTP/1.1: {line}");

        // h2c: the stream is reset after the 10 bytes.
        let mut conn = Proto::H2c.conn(weir.listen).await;
        let start = Instant::now();
        let got = conn.get("/h2c").await;
        assert!(got.is_err(), "h2c: the body was not cut: {got:?}");
        about(start.elapsed(), 1.0, "h2c cut");
        let line = weir
            .wait_access("h2c stalled response", |l| l["path"] == "/h2c")
            .await;
        assert!(has_flag(&line, "SI"), "h2c: {line}");
    })
    .await;
}
