//! Limits on what clients hold all together: the global connection limit
//! (`max_connections`), HTTP/2 peers that flood the log, and a destination's
//! `connection_pool` (requests in flight, a bounded queue, overflow 503 `UO`).

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;

#[tokio::test]
async fn the_connection_over_max_connections_is_closed_at_once() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "max_connections: 5").await;
        let mut five = Vec::new();
        for _ in 0..5 {
            let mut conn = Proto::Http1.conn(weir.listen).await;
            let got = conn.get("/").await.unwrap();
            assert_eq!(got.status, 200);
            five.push(conn);
        }
        wait_connections(&weir, "five counted", Duration::from_secs(5), |j| {
            downstream_active(j) == 5
        })
        .await;
        // The sixth: closed right after accept, without a response.
        let mut sixth = TcpStream::connect(weir.listen).await.unwrap();
        let _ = sixth
            .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await;
        let start = Instant::now();
        let (raw, closed) = read_until_close(&mut sixth, Duration::from_secs(5)).await;
        assert!(closed, "the sixth connection is still open");
        assert!(
            raw.is_empty(),
            "the sixth got {:?}",
            String::from_utf8_lossy(&raw)
        );
        // Closed at once, not held: a bound far from the 5 s the read waits.
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        // The five still work, and the admin port answers.
        for (i, conn) in five.iter_mut().enumerate() {
            let got = conn
                .get("/again")
                .await
                .unwrap_or_else(|e| panic!("#{i}: {e}"));
            assert_eq!(got.status, 200, "#{i}");
        }
        let (status, _) = admin_get(weir.admin, "/ready").await.unwrap();
        assert_eq!(status, 200);
        weir.wait_line("the overflow warning", |l| {
            l.contains("max_connections are open")
        })
        .await;
        // One closes: a new client is served again.
        drop(five.pop());
        wait_connections(&weir, "four left", Duration::from_secs(5), |j| {
            downstream_active(j) == 4
        })
        .await;
        let got = http_get(weir.listen, Proto::H2c, "/").await.unwrap();
        assert_eq!(got.status, 200, "a new client once under the limit");
    })
    .await;
}

/// The overflow is counted where operators look: `/metrics`.
#[tokio::test]
async fn connections_refused_at_the_limit_are_counted_in_metrics() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "max_connections: 1").await;
        let _held = TcpStream::connect(weir.listen).await.unwrap();
        wait_connections(&weir, "one counted", Duration::from_secs(5), |j| {
            downstream_active(j) == 1
        })
        .await;
        for _ in 0..3 {
            let mut refused = TcpStream::connect(weir.listen).await.unwrap();
            let (_, closed) = read_until_close(&mut refused, Duration::from_secs(5)).await;
            assert!(closed);
        }
        assert_eq!(
            metric(&weir, "weir_downstream_connections_overflow_total").await,
            Some(3)
        );
    })
    .await;
}

#[tokio::test]
async fn unsolicited_ping_acks_do_not_flood_the_log() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "").await;
        let (mut stream, _) = frames::open(weir.listen).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = weir.logs().len();
        let mut flood = Vec::new();
        for i in 0..500u64 {
            flood.extend(frames::frame(
                frames::PING,
                frames::ACK,
                0,
                &i.to_be_bytes(),
            ));
        }
        // weir may close the connection part-way: that is its right.
        let _ = stream.write_all(&flood).await;
        let _ = read_until_close(&mut stream, Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let added: Vec<String> = weir.logs().split_off(before);
        assert!(
            added.len() <= 2,
            "500 PING acks wrote {} log lines, first: {:?}",
            added.len(),
            added.first()
        );
        let got = http_get(weir.listen, Proto::H2c, "/").await.unwrap();
        assert_eq!(got.status, 200);
    })
    .await;
}

#[tokio::test]
async fn requests_over_the_pool_limit_and_queue_get_503_uo_at_once() {
    within(60, async {
        let mut profile = weir::synthetic::Profile::new("app");
        // Answers take 2 s, so "at once" (well under 2 s) is far from a wait for a
        // place (4 s), even on a loaded machine.
        profile.latency = weir::synthetic::LatencyRange::fixed(Duration::from_secs(2));
        let upstream = synthetic_with(profile).await;
        let weir = Weir::start(&format!(
            r#"
destinations:
  app:
    endpoints: ["{upstream}"]
    connection_pool: {{ max_requests: 2, max_pending_requests: 1 }}
routes:
  - name: all
    split: {{ app: 1 }}
"#
        ))
        .await;
        for proto in Proto::ALL {
            let mut conns = Vec::new();
            for _ in 0..6 {
                conns.push(proto.conn(weir.listen).await);
            }
            let start = Instant::now();
            let answers = conns.iter_mut().map(|conn| async move {
                let got = conn.get("/slow").await.unwrap();
                (got, start.elapsed())
            });
            let answers = futures_join_all(answers).await;
            let ok: Vec<_> = answers.iter().filter(|(g, _)| g.status == 200).collect();
            let uo: Vec<_> = answers
                .iter()
                .filter(|(g, _)| g.status == 503 && g.header("x-weir-response-flags") == Some("UO"))
                .collect();
            let summary: Vec<_> = answers
                .iter()
                .map(|(g, t)| {
                    (
                        g.status.as_u16(),
                        g.header("x-weir-response-flags").map(str::to_owned),
                        *t,
                    )
                })
                .collect();
            assert_eq!((ok.len(), uo.len()), (3, 3), "{proto}: {summary:?}");
            for (_, took) in &uo {
                assert!(
                    *took < Duration::from_millis(1500),
                    "{proto}: UO after {took:?}"
                );
            }
            // Two at once, the queued one after them.
            let mut times: Vec<Duration> = ok.iter().map(|(_, t)| *t).collect();
            times.sort();
            assert!(
                times[2] >= Duration::from_millis(3600),
                "{proto}: {summary:?}"
            );
        }
        assert_eq!(
            metric(&weir, "weir_upstream_overflow_total{destination=\"app\"}").await,
            Some(6),
            "UO counted per destination"
        );
    })
    .await;
}

/// Runs futures together and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
