//! HTTP/1.1 Upgrade pass-through: a raw TCP client does the RFC 6455 handshake through
//! weir with the synthetic upstream (a WebSocket echo) and exchanges frames. HTTP/1.1
//! only: WebSockets over HTTP/2 need extended CONNECT (RFC 8441), which weir does not
//! offer.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one unmasked server frame: `(first byte, payload)`.
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.unwrap()),
        127 => stream.read_u64().await.unwrap(),
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// Reads the response head byte by byte, so no frame byte is consumed with it.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
        assert!(head.len() < 16 * 1024, "response head too long");
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    within(60, async {
        let upstream = synthetic("ws-echo").await;
        let weir = Weir::start(&format!(
            r#"
access_log: true
destinations:
  ws: {{ endpoints: ["{upstream}"] }}
routes:
  - name: ws
    split: {{ ws: 1 }}
    timeout: 2s
"#
        ))
        .await;
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        stream
            .write_all(
                b"GET /chat HTTP/1.1\r\n\
                  Host: shop\r\n\
                  Upgrade: websocket\r\n\
                  Connection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        let lower = head.to_ascii_lowercase();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
        // RFC 6455 §1.3's example key and answer.
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "Sec-WebSocket-Accept: {head}"
        );
        assert!(lower.contains("\r\nx-weir-upstream: ws-echo\r\n"), "{head}");

        // A text frame, echoed.
        stream
            .write_all(&client_frame(0x1, b"hello through weir"))
            .await
            .unwrap();
        assert_eq!(
            server_frame(&mut stream).await,
            (0x81, b"hello through weir".to_vec())
        );
        // The tunnel outlives the route's 2s timeout, which covers the handshake only.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        // Ping gets pong; a 100 KB binary frame (64-bit length) comes back whole.
        stream.write_all(&client_frame(0x9, b"p")).await.unwrap();
        assert_eq!(server_frame(&mut stream).await, (0x8a, b"p".to_vec()));
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        stream.write_all(&client_frame(0x2, &big)).await.unwrap();
        assert_eq!(server_frame(&mut stream).await, (0x82, big));
        // Close: echoed, then the connection ends.
        stream
            .write_all(&client_frame(0x8, &[0x03, 0xe8]))
            .await
            .unwrap();
        assert_eq!(server_frame(&mut stream).await, (0x88, vec![0x03, 0xe8]));
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("weir closes the tunnel after the upstream does")
            .unwrap();
        assert!(rest.is_empty());
        // The client closes its side too, as RFC 6455 §7.1.1 has it.
        drop(stream);

        // One access-log line for the session, with status 101.
        let line = weir
            .wait_access("the WebSocket session", |v| v["path"] == "/chat")
            .await;
        assert_eq!(line["status"], 101, "{line}");
        assert_eq!(line["route"], "ws");
        assert_eq!(line["flags"], "-", "{line}");
    })
    .await;
}
