//! Client connection handling on the data plane: `idle_timeout` closes HTTP/1.1
//! connections that sit idle (before a first request and between requests) and sends
//! HTTP/2 connections that sit idle a GOAWAY, and pipelined HTTP/1.1 requests are
//! answered in order. Protocol-specific on purpose: how a connection is ended (close
//! versus GOAWAY and a drain) and pipelining (HTTP/2 multiplexes instead) differ.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn weir_with_idle_timeout() -> Weir {
    let upstream = synthetic("up").await;
    Weir::start(&format!(
        "idle_timeout: 1s\ndrain_timeout: 1s\ndestinations:\n  up: {{ endpoints: [\"{upstream}\"] }}\n\
         routes:\n  - name: all\n    split: {{ up: 1 }}\n"
    ))
    .await
}

/// Reads until weir closes the connection; returns how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("weir kept an idle connection open for 10s"),
        }
    }
}

#[tokio::test]
async fn idle_http1_connections_are_closed_after_idle_timeout() {
    within(60, async {
        let weir = weir_with_idle_timeout().await;
        // A connection that never sends a request.
        let mut quiet = TcpStream::connect(weir.listen).await.unwrap();
        let took = closed_after(&mut quiet).await;
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");

        // A keep-alive connection, idle after its first response.
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let took = closed_after(&mut stream).await;
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    })
    .await;
}

/// An HTTP/2 connection in use stays open however long it lives; one with no stream
/// open for `idle_timeout` gets a GOAWAY and is closed, and one whose client vanished
/// (it never answers the GOAWAY) is closed `drain_timeout` later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_after_idle_timeout() {
    within(60, async {
        let weir = weir_with_idle_timeout().await;
        let stream = TcpStream::connect(weir.listen).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .handshake::<_, ReqBody>(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let get = |tx: &mut hyper::client::conn::http2::SendRequest<ReqBody>| {
            tx.send_request(http::Request::get("http://shop/").body(empty()).unwrap())
        };
        // Busy for over 2 s, longer than the idle timeout, with a request every 400 ms.
        let mut last_activity = Instant::now();
        for i in 0..6 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let resp = get(&mut tx).await.expect("the busy connection stays open");
            assert_eq!(resp.status(), 200);
            let _ = read(resp).await.unwrap();
            last_activity = Instant::now();
        }
        // Then idle: weir says GOAWAY and closes, so the client's connection ends.
        tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("weir kept an idle HTTP/2 connection open for 10s")
            .unwrap()
            .unwrap();
        let took = last_activity.elapsed();
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
        assert!(get(&mut tx).await.is_err());

        // A client that sends the preface and its SETTINGS, then nothing, ever.
        let mut gone = TcpStream::connect(weir.listen).await.unwrap();
        gone.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        let took = closed_after(&mut gone).await;
        assert!(took >= Duration::from_millis(1900), "closed after {took:?}");
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    within(60, async {
        let weir = weir_with_echo().await;
        let raw = raw_exchange(
            weir.listen,
            b"GET /first HTTP/1.1\r\nHost: shop\r\n\r\n\
              GET /second HTTP/1.1\r\nHost: shop\r\n\r\n\
              GET /third HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        let uris: Vec<&str> = text
            .match_indices("\"uri\":\"")
            .map(|(i, m)| {
                let rest = &text[i + m.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        assert_eq!(uris, ["/first", "/second", "/third"], "{text}");
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    })
    .await;
}

async fn weir_with_echo() -> Weir {
    let upstream = echo_upstream(false).await;
    Weir::start(&format!(
        "destinations:\n  echo: {{ endpoints: [\"{upstream}\"] }}\n\
         routes:\n  - name: all\n    split: {{ echo: 1 }}\n"
    ))
    .await
}
