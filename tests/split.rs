//! Split accuracy: the weighted choice is made per request, over keep-alive HTTP/1.1
//! connections and over the streams of one HTTP/2 connection, and lands within
//! ±1.5 percentage points of the weights over 20,000 requests. The two protocols get
//! tests of their own because their load shapes differ (several sequential keep-alive
//! connections, many concurrent streams on one connection); the single-destination
//! case runs over both.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use http::Request;
use support::*;

const NAMES: [&str; 3] = ["release", "baseline", "canary"];
const WEIGHTS: [f64; 3] = [0.80, 0.10, 0.10];

async fn weir_80_10_10() -> Weir {
    let release = synthetic("release").await;
    let baseline = synthetic("baseline").await;
    let canary = synthetic("canary").await;
    Weir::start(&format!(
        r#"
destinations:
  release:  {{ endpoints: ["{release}"] }}
  baseline: {{ endpoints: ["{baseline}"] }}
  canary:   {{ endpoints: ["{canary}"] }}
routes:
  - name: canary-only
    match: {{ headers: {{ x-stage: canary }} }}
    split: {{ release: 0, canary: 100 }}
  - name: primary
    split: {{ release: 80, baseline: 10, canary: 10 }}
"#
    ))
    .await
}

type Counts = BTreeMap<String, u64>;

/// `n` sequential requests over one HTTP/1.1 keep-alive connection.
async fn over_one_h1_connection(addr: SocketAddr, n: usize, header: Option<&str>) -> Counts {
    let mut tx = h1_conn(addr).await;
    let mut counts = Counts::new();
    for _ in 0..n {
        tx.ready().await.expect("connection stays open");
        let mut req = Request::get("/split").header("host", "shop");
        if let Some(stage) = header {
            req = req.header("x-stage", stage);
        }
        let resp = tx.send_request(req.body(empty()).unwrap()).await.unwrap();
        let got = read(resp).await.unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        *counts.entry(got.upstream().to_owned()).or_default() += 1;
    }
    counts
}

/// `n` requests as streams of one HTTP/2 connection, `concurrency` at a time.
async fn over_one_h2_connection(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    header: Option<&'static str>,
) -> Counts {
    let tx = h2_conn(addr).await;
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let mut tx = tx.clone();
        let share = n / concurrency + usize::from(t < n % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut counts = Counts::new();
            for _ in 0..share {
                let mut req = Request::get("http://shop/split");
                if let Some(stage) = header {
                    req = req.header("x-stage", stage);
                }
                tx.ready().await.expect("connection stays open");
                let resp = tx.send_request(req.body(empty()).unwrap()).await.unwrap();
                let got = read(resp).await.unwrap();
                assert_eq!(got.status, 200, "{}", got.text());
                *counts.entry(got.upstream().to_owned()).or_default() += 1;
            }
            counts
        }));
    }
    let mut total = Counts::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

fn merge(into: &mut Counts, from: &Counts) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// Asserts each destination's share is within `tolerance` (a fraction) of its weight.
fn assert_shares(counts: &Counts, n: usize, tolerance: f64, what: &str) {
    let total: u64 = counts.values().sum();
    assert_eq!(total, n as u64, "{what}: {counts:?}");
    assert_eq!(
        counts.len(),
        3,
        "{what}: unexpected destinations {counts:?}"
    );
    for (name, weight) in NAMES.iter().zip(WEIGHTS) {
        let share = *counts.get(*name).unwrap_or(&0) as f64 / n as f64;
        assert!(
            (share - weight).abs() <= tolerance,
            "{what}: {name} got {:.2}% of {n}, weight {:.0}% (±{:.1} pp): {counts:?}",
            share * 100.0,
            weight * 100.0,
            tolerance * 100.0
        );
    }
}

/// 20,000 requests over 8 keep-alive connections: the total is within ±1.5 pp of
/// 80/10/10, and every single connection shows the split too (the choice is per
/// request, not per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keepalive_connections_follow_the_weights() {
    within(240, async {
        let weir = weir_80_10_10().await;
        const CONNS: usize = 8;
        const PER_CONN: usize = 2_500;
        let tasks: Vec<_> = (0..CONNS)
            .map(|_| tokio::spawn(over_one_h1_connection(weir.listen, PER_CONN, None)))
            .collect();
        let mut total = Counts::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let counts = t.await.unwrap();
            // 2,500 requests: ±5 pp is more than 6 standard deviations.
            assert_shares(&counts, PER_CONN, 0.05, &format!("connection {i}"));
            merge(&mut total, &counts);
        }
        assert_shares(&total, CONNS * PER_CONN, 0.015, "HTTP/1.1 total");
    })
    .await;
}

/// 20,000 streams on a single HTTP/2 connection land within ±1.5 pp of 80/10/10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_on_one_connection_follow_the_weights() {
    within(240, async {
        let weir = weir_80_10_10().await;
        let counts = over_one_h2_connection(weir.listen, 20_000, 32, None).await;
        assert_shares(&counts, 20_000, 0.015, "HTTP/2 single connection");
    })
    .await;
}

/// A route whose only non-zero weight is 100 sends every request there; the weight-0
/// destination never gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_weighted_destination_gets_every_request() {
    within(120, async {
        let weir = weir_80_10_10().await;
        let h1 = over_one_h1_connection(weir.listen, 1_000, Some("canary")).await;
        assert_eq!(h1, Counts::from([("canary".to_owned(), 1_000)]));
        let h2 = over_one_h2_connection(weir.listen, 1_000, 16, Some("canary")).await;
        assert_eq!(h2, Counts::from([("canary".to_owned(), 1_000)]));
    })
    .await;
}
