//! Exact latency quantiles: with upstreams of known latency (`weir upstream` processes,
//! whose sleeps are timed to tens of microseconds), weir's p95 per destination, in the
//! summary and in the JSON, is within 5 % of the true p95. Alone in its test binary, so
//! no other test competes for the CPU while latencies are measured.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use http::StatusCode;
use support::*;

/// A `weir upstream` process, killed on drop.
struct Upstream {
    child: Child,
    addr: SocketAddr,
}

impl Upstream {
    fn start(name: &str, latency: &str) -> Upstream {
        let mut child = Command::new(WEIR)
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
        // The true p95: 50 ms for the fixed upstream; for a uniform 40..80 ms, 78 ms.
        let fixed = Upstream::start("fixed", "50ms");
        let spread = Upstream::start("spread", "40ms..80ms");
        let w = Weir::start(&format!(
            "destinations:\n  fixed: {{ endpoints: [\"{}\"] }}\n  spread: {{ endpoints: [\"{}\"] }}\nroutes:\n  - name: r\n    split: {{ fixed: 1, spread: 1 }}\n",
            fixed.addr, spread.addr
        ))
        .await;
        let client = h1_client();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (client, url) = (client.clone(), w.url("/"));
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    assert_eq!(get(&client, &url).await.status, 200);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = admin_json(w.admin, "/stats/destinations").await;
        for (who, true_p95) in [("fixed", 50.0), ("spread", 78.0)] {
            let weir_p95 = summary(&w, who, "0.95").await;
            let json_p95 = stats["destinations"][who]["latency_ms"]["p95"].as_f64().unwrap();
            let n = stats["destinations"][who]["latency_ms"]["samples"].as_u64().unwrap();
            println!("{who}: true p95 {true_p95} ms, weir p95 {weir_p95:.3} ms ({n} requests)");
            assert!(n > 150, "{who}: only {n} samples");
            let err = (weir_p95 - true_p95).abs() / true_p95;
            assert!(err < 0.05, "{who}: weir p95 {weir_p95} vs true {true_p95} ({:.1}% off)", err * 100.0);
            assert!((json_p95 - weir_p95).abs() < 0.01, "{json_p95} vs {weir_p95}");
        }
    })
    .await;
}
