//! The dashboard without a browser: `/ui` and its files are served without a token and
//! with a policy that keeps the page to its own origin, and `/stats/series` holds a
//! sample a second whose counts are the requests sent, with `since` and the token flag.
//! (`tests/pictures.rs` looks at the page itself in chromium.)

mod support;

use std::time::Duration;

use http::StatusCode;
use support::*;

fn config(a: std::net::SocketAddr, b: std::net::SocketAddr) -> String {
    format!(
        "admin_token_file: token\ndestinations:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - name: primary\n    split: {{ a: 3, b: 1 }}\n"
    )
}

async fn start() -> Weir {
    let (a, b) = (synthetic("a").await, synthetic("b").await);
    let dir = TempDir::new("dashboard");
    dir.write("token", "dashboard-token-0123456789\n");
    Weir::start_in(dir, &config(a, b), LogFormat::Json).await
}

#[tokio::test]
async fn the_page_is_served_without_a_token_and_kept_to_its_origin() {
    within(30, async {
        let w = start().await;
        for (path, kind, has) in [
            ("/ui", "text/html", "/ui/app.js"),
            ("/ui/", "text/html", "/ui/app.css"),
            ("/ui/app.js", "text/javascript", "/stats/series"),
            ("/ui/app.css", "text/css", "--ink"),
        ] {
            let raw = raw_exchange(
                w.admin,
                format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let resp = RawResponse::parse(&raw);
            assert_eq!(resp.status, 200, "{path}");
            assert!(
                resp.header("content-type").unwrap().starts_with(kind),
                "{path}"
            );
            let csp = resp.header("content-security-policy").unwrap();
            assert!(
                csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(resp.header("x-frame-options"), Some("DENY"));
            assert!(String::from_utf8_lossy(&resp.body).contains(has), "{path}");
        }
        let (status, _) = admin_get(w.admin, "/ui/secrets").await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = admin_request(w.admin, "POST", "/ui", "", None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (_, index) = admin_get(w.admin, "/").await.unwrap();
        assert!(
            index.contains("/ui") && index.contains("/stats/series"),
            "{index}"
        );
    })
    .await;
}

#[tokio::test]
async fn series_counts_the_requests_of_every_second() {
    within(40, async {
        let w = start().await;
        let client = h1_client();
        // Two samples apart, 40 requests: 30 to a and 10 to b with 3:1 weights, near enough.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = admin_json(w.admin, "/stats/series").await;
        assert_eq!(before["writes_need_token"], true, "admin_token_file is set");
        assert_eq!(before["every_seconds"], 1.0);
        let first = before["last"].as_u64().expect("a sample within a second");
        for _ in 0..40 {
            get(&client, &w.url("/")).await;
        }
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let after = admin_json(w.admin, &format!("/stats/series?since={first}")).await;
        let samples = after["samples"].as_array().unwrap();
        assert!(
            (2..=4).contains(&samples.len()),
            "a sample a second: {after}"
        );
        assert!(
            samples.iter().all(|s| s["seq"].as_u64().unwrap() > first),
            "only newer ones"
        );
        let sum = |d: &str| -> u64 {
            samples
                .iter()
                .map(|s| s["destinations"][d]["requests"].as_u64().unwrap())
                .sum()
        };
        assert_eq!(
            sum("a") + sum("b"),
            40,
            "every request in exactly one sample: {after}"
        );
        let last = samples.last().unwrap();
        assert_eq!(
            last["routes"]["primary"],
            serde_json::json!({ "a": 3, "b": 1 })
        );
        let p50 = samples
            .iter()
            .filter_map(|s| s["destinations"]["a"]["p50"].as_f64())
            .next_back()
            .expect("a latency quantile over the last seconds");
        assert!(p50 > 0.0 && p50 < 1000.0, "{p50}");
        assert!(last["seconds"].as_f64().unwrap() > 0.5, "{last}");
        // The whole history when asked without `since`.
        let all = admin_json(w.admin, "/stats/series").await;
        assert!(all["samples"].as_array().unwrap().len() > samples.len());
    })
    .await;
}
