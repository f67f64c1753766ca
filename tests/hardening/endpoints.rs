//! Dead endpoints: after a connect failure an endpoint backs off (250 ms doubling to
//! 8 s), requests skip it while another endpoint is up and get 503 `UF` at once while
//! none is, one probe at a time finds it again once it listens. Connect attempts are
//! counted from weir's rate-limited `upstream connect failed` warning (one line per 5 s
//! at most, with the failures since the last line).

use super::*;

/// The `failures` of every `upstream connect failed` warning so far, for `endpoint`.
fn connect_failures(weir: &Weir, endpoint: SocketAddr) -> Vec<u64> {
    weir.logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"] == "upstream connect failed"
                || v["message"] == "upstream connect failed"
        })
        .filter(|v| {
            let e = v["fields"]["endpoint"].as_str().or(v["endpoint"].as_str());
            e == Some(endpoint.to_string().as_str())
        })
        .filter_map(|v| v["fields"]["failures"].as_u64().or(v["failures"].as_u64()))
        .collect()
}

/// One GET on `conn` (reconnecting if weir closed it): status and flags.
async fn get(weir: &Weir, conn: &mut Conn) -> (u16, String) {
    let got = match conn.get("/").await {
        Ok(got) => got,
        Err(_) => {
            *conn = Proto::Http1.conn(weir.listen).await;
            conn.get("/").await.expect("GET on a new connection")
        }
    };
    let flags = got
        .header("x-weir-response-flags")
        .unwrap_or("-")
        .to_owned();
    (got.status.as_u16(), format!("{flags} {}", got.upstream()))
}

#[tokio::test]
async fn a_dead_endpoint_is_backed_off_and_used_again_once_it_listens() {
    within(90, async {
        let dead = dead_port();
        let addr = dead.addr;
        let weir = weir_to(addr, "").await;
        let mut conn = Proto::Http1.conn(weir.listen).await;

        // 200 requests: all 503 UF, fast, and few connect attempts.
        let start = Instant::now();
        for i in 0..200 {
            let (status, flags) = get(&weir, &mut conn).await;
            assert_eq!((status, flags.as_str()), (503, "UF -"), "request {i}");
        }
        let took = start.elapsed();
        // The connect attempts counted below are the check; the time only rules out a
        // wait per request (a connect timeout each would be minutes).
        assert!(took < Duration::from_secs(30), "200 requests took {took:?}");
        let attempts = metric(
            &weir,
            "weir_upstream_connect_failures_total{destination=\"app\"}",
        )
        .await;

        // Until the next warning (5 s after the first at the earliest), one request per
        // 100 ms: its count is the attempts since the first.
        let warned = Instant::now();
        let failures = loop {
            let failures = connect_failures(&weir, addr);
            if failures.len() >= 2 {
                break failures;
            }
            assert!(
                warned.elapsed() < Duration::from_secs(15),
                "no second connect warning; warnings so far: {failures:?}"
            );
            let (status, _) = get(&weir, &mut conn).await;
            assert_eq!(status, 503);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(failures[0], 1, "{failures:?}");
        assert!(
            failures[1] <= 12,
            "{} connect attempts in about 6 s of requests to a dead endpoint (backoff allows \
             about 6); warnings: {failures:?}",
            failures[1]
        );

        assert!(
            attempts.is_some_and(|n| n <= 10),
            "{attempts:?} connect attempts (weir_upstream_connect_failures_total) during the \
             200 requests ({took:?})"
        );

        // It comes back: served again within the backoff cap (8 s) and a little.
        drop(dead);
        let (_addr, _task) = weir::synthetic::spawn(addr, weir::synthetic::Profile::new("back"))
            .await
            .expect("bind the dead endpoint's port");
        let back = Instant::now();
        loop {
            let (status, flags) = get(&weir, &mut conn).await;
            if status == 200 {
                assert_eq!(flags, "- back");
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "still {status} {flags} 10 s after the endpoint came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "dead endpoint served again {:?} after it listened",
            back.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn with_one_endpoint_dead_requests_go_to_the_live_one() {
    within(90, async {
        let dead = dead_port();
        let live = synthetic("live").await;
        let weir = Weir::start(&format!(
            r#"
destinations:
  app: {{ endpoints: ["{}", "{live}"] }}
routes:
  - name: all
    split: {{ app: 1 }}
"#,
            dead.addr
        ))
        .await;
        let mut conn = Proto::Http1.conn(weir.listen).await;
        let start = Instant::now();
        let mut requests = 0;
        let failures = loop {
            let (status, flags) = get(&weir, &mut conn).await;
            assert_eq!(
                (status, flags.as_str()),
                (200, "- live"),
                "request {requests}"
            );
            requests += 1;
            let failures = connect_failures(&weir, dead.addr);
            if failures.len() >= 2 {
                break failures;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no second connect warning; warnings so far: {failures:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(
            failures[1] <= 12,
            "the dead endpoint was tried {} times in {:?} ({requests} requests); warnings: \
             {failures:?}",
            failures[1],
            start.elapsed()
        );
    })
    .await;
}
