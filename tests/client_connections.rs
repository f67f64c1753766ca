//! Client connection handling on the data plane: `idle_timeout` closes HTTP/1.1
//! connections that sit idle (before a first request and between requests), and
//! pipelined HTTP/1.1 requests are answered in order.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn weir_with_idle_timeout() -> Weir {
    let upstream = synthetic("up").await;
    Weir::start(&format!(
        "idle_timeout: 1s\ndestinations:\n  up: {{ endpoints: [\"{upstream}\"] }}\n\
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
