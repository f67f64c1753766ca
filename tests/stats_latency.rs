//! `GET /stats/latency`: cumulative counts and latency histogram per destination, which
//! `weir canary` diffs per interval.

mod support;

use std::time::Duration;

use support::*;
use weir::synthetic::{LatencyRange, Profile};

#[tokio::test]
async fn cumulative_histograms_diff_to_exactly_an_interval() {
    within(30, async {
        let up = synthetic_with(Profile {
            latency: LatencyRange::fixed(Duration::from_millis(4)),
            ..Profile::new("release")
        })
        .await;
        let w = Weir::start(&format!(
            "latency_window: 1s\ndestinations:\n  release: {{ endpoints: [\"{up}\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 1 }}\n"
        ))
        .await;
        let client = h1_client();
        for _ in 0..20 {
            assert_eq!(get(&client, &w.url("/")).await.status, 200);
        }
        let first = admin_json(w.admin, "/stats/latency").await;
        let d = &first["destinations"]["release"];
        assert_eq!(d["requests"], 20);
        assert_eq!(d["responses"]["2xx"], 20);
        let count = |v: &serde_json::Value| -> u64 {
            v["latency_us"].as_array().unwrap().iter().map(|b| b[2].as_u64().unwrap()).sum()
        };
        assert_eq!(count(d), 20);
        for b in d["latency_us"].as_array().unwrap() {
            let (lo, hi) = (b[0].as_u64().unwrap(), b[1].as_u64().unwrap());
            assert!(lo <= hi && lo >= 3_000 && hi < 60_000, "{b}");
        }
        // Past the 1 s window: the window forgets, the cumulative histogram does not.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for _ in 0..5 {
            get(&client, &w.url("/")).await;
        }
        let second = admin_json(w.admin, "/stats/latency").await;
        assert_eq!(second["instance"], first["instance"]);
        assert_eq!(second["destinations"]["release"]["requests"], 25);
        assert_eq!(count(&second["destinations"]["release"]), 25);
        let window = admin_json(w.admin, "/stats/destinations").await;
        assert_eq!(window["destinations"]["release"]["latency_ms"]["samples"], 5);
    })
    .await;
}
