//! The corners of HTTP/1.1 that weir's own HTTP/1.1 path must get right, on raw TCP so
//! every byte is under control: HTTP/1.0 clients, `Expect: 100-continue`, HEAD, heads
//! that are too large, and request shapes used for smuggling.

mod support;

use std::net::SocketAddr;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn weir_to(upstream: SocketAddr) -> Weir {
    Weir::start(&format!(
        r#"
destinations:
  app: {{ endpoints: ["{upstream}"] }}
routes:
  - name: all
    split: {{ app: 1 }}
"#
    ))
    .await
}

/// An upstream that answers every request on a kept-alive connection with a chunked
/// body, `hello world` in two chunks.
async fn chunked_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                                     5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
                        if stream.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Reads one response from `stream`: its head, then a `Content-Length` body if any.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    if let Some(line) = head.lines().find(|l| l.starts_with("content-length:")) {
        let mut body = vec![0u8; line[15..].trim().parse().unwrap()];
        stream.read_exact(&mut body).await.unwrap();
        raw.extend_from_slice(&body);
    }
    RawResponse::parse(&raw)
}

#[tokio::test]
async fn http10_clients_get_chunked_bodies_decoded_and_keep_alive_on_request() {
    within(60, async {
        let weir = weir_to(chunked_upstream().await).await;
        // No keep-alive asked: the data alone, then the connection closes.
        let raw = raw_exchange(weir.listen, b"GET / HTTP/1.0\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let resp = RawResponse::parse(&raw);
        assert_eq!(resp.status, 200);
        assert!(!resp.has("transfer-encoding"), "{resp:?}");
        assert_eq!(resp.body, b"hello world");
        // Keep-alive asked, with a length-framed answer: the connection stays open.
        let echo = weir_to(echo_upstream(false).await).await;
        let mut stream = TcpStream::connect(echo.listen).await.unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"GET /a HTTP/1.0\r\nHost: shop\r\nConnection: keep-alive\r\n\r\n")
                .await
                .unwrap();
            let resp = read_response(&mut stream).await;
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("connection"), Some("keep-alive"), "{resp:?}");
            assert_eq!(Echoed::parse(&resp.body).one("connection"), None);
        }
    })
    .await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_by_weir_and_not_forwarded() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        stream
            .write_all(
                b"POST /up HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\
                  Expect: 100-continue\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let interim = read_response(&mut stream).await;
        assert_eq!(interim.status, 100);
        stream.write_all(b"hello").await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        let resp = RawResponse::parse(&rest);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&rest));
        let seen = Echoed::parse(&resp.body);
        assert!(seen.one("expect").is_none(), "{seen:?}");
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["body_bytes"], 5, "{v}");
    })
    .await;
}

#[tokio::test]
async fn head_responses_have_no_body_and_the_connection_goes_on() {
    within(60, async {
        let weir = weir_to(chunked_upstream().await).await;
        let raw = raw_exchange(
            weir.listen,
            b"HEAD / HTTP/1.1\r\nHost: shop\r\n\r\nGET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        // The HEAD answer ends at its blank line; the GET answer follows at once.
        let second = text.find("\r\n\r\nHTTP/1.1 200").expect("two responses") + 4;
        let get = RawResponse::parse(&raw[second..]);
        assert_eq!(get.body, b"hello world", "{text}");
    })
    .await;
}

#[tokio::test]
async fn oversized_heads_and_smuggling_shapes_are_refused() {
    within(60, async {
        let weir = weir_to(echo_upstream(false).await).await;
        let mut big = b"GET / HTTP/1.1\r\nHost: shop\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 80 * 1024));
        big.extend_from_slice(b"\r\n\r\n");
        let raw = raw_exchange(weir.listen, &big).await.unwrap();
        assert_eq!(RawResponse::parse(&raw).status, 431);
        for request in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let raw = raw_exchange(weir.listen, request).await.unwrap();
            let resp = RawResponse::parse(&raw);
            assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(request));
            assert_eq!(resp.header("connection"), Some("close"));
        }
    })
    .await;
}
