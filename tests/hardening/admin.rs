//! The admin API's writes: the token's minimum length holds when the token file is
//! re-read, the `Bearer` scheme is case-insensitive, and a weights body is bounded in
//! size (413 at once) and in time (408 after 10 s).

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;

const TOKEN: &str = "0123456789abcdef-admin-token";
const SPLIT: &str = r#"{"release": 50, "canary": 50}"#;

async fn weir_with_token() -> Weir {
    let upstream = synthetic("app").await;
    let dir = TempDir::new("admin-token");
    dir.write("token", TOKEN);
    Weir::start_in(
        dir,
        &format!(
            r#"
admin_token_file: token
destinations:
  release: {{ endpoints: ["{upstream}"] }}
  canary: {{ endpoints: ["{upstream}"] }}
routes:
  - name: primary
    split: {{ release: 90, canary: 10 }}
"#
        ),
        LogFormat::Json,
    )
    .await
}

/// `PUT /routes/primary/split` with `authorization` as given (the whole header line).
async fn put_split(weir: &Weir, authorization: &str) -> u16 {
    let raw = raw_exchange(
        weir.admin,
        format!(
            "PUT /routes/primary/split HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
             {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{SPLIT}",
            SPLIT.len()
        )
        .as_bytes(),
    )
    .await
    .expect("admin PUT");
    RawResponse::parse(&raw).status
}

#[tokio::test]
async fn the_token_and_the_bearer_scheme() {
    within(60, async {
        let weir = weir_with_token().await;
        assert_eq!(
            put_split(&weir, &format!("Authorization: Bearer {TOKEN}")).await,
            200
        );
        assert_eq!(
            put_split(&weir, &format!("authorization: bearer {TOKEN}")).await,
            200,
            "the scheme is case-insensitive (RFC 9110 §11.1)"
        );
        assert_eq!(
            put_split(&weir, &format!("Authorization: BEARER {TOKEN}")).await,
            200
        );
        assert_eq!(
            put_split(&weir, "Authorization: Bearer wrong-token-0123456789").await,
            401
        );

        // The file rewritten with a token too short to be safe: no write goes through,
        // with that token or the old one.
        weir.dir().replace("token", "x");
        assert_eq!(put_split(&weir, "Authorization: Bearer x").await, 503);
        assert_eq!(
            put_split(&weir, &format!("Authorization: Bearer {TOKEN}")).await,
            503
        );
        // A long one again: writes resume with it.
        weir.dir().replace("token", &format!("{TOKEN}-rotated\n"));
        assert_eq!(
            put_split(&weir, &format!("Authorization: Bearer {TOKEN}-rotated")).await,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn admin_bodies_are_bounded_in_size_and_time() {
    within(60, async {
        let weir = weir_with_token().await;
        let head = |length: u64| {
            format!(
                "PUT /routes/primary/split HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
                 Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                 Content-Length: {length}\r\n\r\n"
            )
        };
        // Declared 100 MB: refused at once, without waiting for the body.
        let huge = async {
            let mut stream = TcpStream::connect(weir.admin).await.unwrap();
            stream
                .write_all(head(100_000_000).as_bytes())
                .await
                .unwrap();
            let start = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
                .await
                .ok()
                .flatten();
            assert_eq!(resp.map(|r| r.status), Some(413));
            assert!(
                start.elapsed() < Duration::from_secs(4),
                "413 after {:?}",
                start.elapsed()
            );
        };
        // Declared 100 bytes, none sent: 408 after 10 s.
        let silent = async {
            let mut stream = TcpStream::connect(weir.admin).await.unwrap();
            stream.write_all(head(100).as_bytes()).await.unwrap();
            let start = Instant::now();
            let resp = tokio::time::timeout(Duration::from_secs(20), read_response(&mut stream))
                .await
                .ok()
                .flatten();
            let took = start.elapsed();
            assert_eq!(resp.map(|r| r.status), Some(408), "after {took:?}");
            assert!(
                took >= Duration::from_secs(9) && took < Duration::from_secs(13),
                "408 after {took:?}, not about 10 s"
            );
        };
        tokio::join!(huge, silent);
    })
    .await;
}
