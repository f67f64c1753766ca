//! Exact latency quantiles: with upstreams of known latency (`weir upstream` processes,
//! whose sleeps are timed to tens of microseconds), weir's p95 per destination, in the
//! summary and in the JSON, is within 5 % of the true p95: the one its clients measured
//! (which bounds it from above), and never below the upstream's own latency. Alone in
//! its test binary, so no other test competes for the CPU while latencies are measured.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::*;

/// A `weir upstream` process, killed on drop.
struct Upstream {
    child: Child,
    addr: SocketAddr,
}

impl Upstream {
    fn start(name: &str, latency: &str) -> Upstream {
        let mut child = Command::new(weir_bin())
            .args([
                "--log-format",
                "json",
                "upstream",
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
                "--latency",
                latency,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir upstream");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the upstream logs its address")
                .unwrap();
            if line.contains("synthetic upstream serving") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                break v["listen"].as_str().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Upstream { child, addr }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn summary(w: &Weir, destination: &str, quantile: &str) -> f64 {
    let (status, text) = admin_get(w.admin, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let prefix = format!(
        "weir_request_duration_milliseconds{{destination=\"{destination}\",quantile=\"{quantile}\"}} "
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    line[prefix.len()..].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p95_is_within_five_percent_of_known_latencies() {
    within(120, async {
        // The true p95: 200 ms for the fixed upstream; 245 ms for a uniform 150..250 ms.
        // Latencies this long keep the test's own noise (debug builds sharing two
        // cores) small beside them.
        let fixed = Upstream::start("fixed", "200ms");
        let spread = Upstream::start("spread", "150ms..250ms");
        let w = Weir::start(&format!(
            "latency_window: 6s\ndestinations:\n  fixed: {{ endpoints: [\"{}\"] }}\n  spread: {{ endpoints: [\"{}\"] }}\nroutes:\n  - name: r\n    split: {{ fixed: 1, spread: 1 }}\n",
            fixed.addr, spread.addr
        ))
        .await;
        let client = h1_client();
        // Warm up: open the client and upstream connections (a first request on a new
        // connection of a debug build costs a millisecond or two more), then let those
        // requests slide out of the window.
        let mut warm = Vec::new();
        for _ in 0..8 {
            let (client, url) = (client.clone(), w.url("/"));
            warm.push(tokio::spawn(async move {
                for _ in 0..4 {
                    get(&client, &url).await;
                }
            }));
        }
        for t in warm {
            t.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(6600)).await;
        let mut tasks = Vec::new();
        for k in 0..8u64 {
            let (client, url) = (client.clone(), w.url("/"));
            tokio::time::sleep(Duration::from_millis(k * 3)).await;
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0..25u64 {
                    // Spread the clients out: eight requests arriving in the same
                    // millisecond would queue behind each other in these debug builds,
                    // and that queueing is not the upstreams' latency.
                    tokio::time::sleep(Duration::from_millis((i * 7919 + 13) % 23)).await;
                    let start = Instant::now();
                    let got = get(&client, &url).await;
                    assert_eq!(got.status, 200);
                    seen.push((got.upstream().to_owned(), start.elapsed()));
                }
                seen
            }));
        }
        let mut measured: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        for t in tasks {
            for (who, d) in t.await.unwrap() {
                measured.entry(who).or_default().push(d);
            }
        }
        let stats = admin_json(w.admin, "/stats/destinations").await;
        for (who, nominal) in [("fixed", 200.0), ("spread", 245.0)] {
            let mut lat = measured.remove(who).unwrap_or_default();
            lat.sort();
            let client_p95 = lat[(lat.len() as f64 * 0.95).ceil() as usize - 1].as_secs_f64() * 1e3;
            let weir_p95 = summary(&w, who, "0.95").await;
            let json_p95 = stats["destinations"][who]["latency_ms"]["p95"].as_f64().unwrap();
            let n = stats["destinations"][who]["latency_ms"]["samples"].as_u64().unwrap();
            println!(
                "{who}: nominal p95 {nominal} ms, clients measured {client_p95:.3} ms, weir {weir_p95:.3} ms ({n} requests)"
            );
            assert_eq!(n as usize, lat.len(), "{who}: every request is in the window");
            let err = (weir_p95 - client_p95).abs() / client_p95;
            assert!(err < 0.05, "{who}: weir p95 {weir_p95} vs measured {client_p95} ({:.1}% off)", err * 100.0);
            let off_nominal = (weir_p95 - nominal).abs() / nominal;
            assert!(off_nominal < 0.05, "{who}: weir p95 {weir_p95} vs the upstream's {nominal}");
            assert!((json_p95 - weir_p95).abs() < 0.01, "{json_p95} vs {weir_p95}");
        }
    })
    .await;
}
