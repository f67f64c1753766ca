//! The weights API on the admin listener: good and bad bodies, unknown routes, DELETE,
//! the file-versus-API rule, and the bearer token off loopback (writes and `/config`).

mod support;

use std::net::SocketAddr;

use std::time::Duration;

use http::StatusCode;
use support::*;

fn config(a: SocketAddr, b: SocketAddr, split: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\ndestinations:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - name: other\n    match: {{ path: /other }}\n    split: {{ b: 1 }}\n  - name: primary\n    split: {split}\n"
    )
}

async fn shares(w: &Weir, n: usize) -> (usize, usize) {
    let client = h1_client();
    let mut a = 0;
    for _ in 0..n {
        if get(&client, &w.url("/")).await.upstream() == "a" {
            a += 1;
        }
    }
    (a, n - a)
}

async fn put(w: &Weir, route: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let (status, text) = admin_request(
        w.admin,
        "PUT",
        &format!("/routes/{route}/split"),
        body,
        None,
    )
    .await
    .unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

#[tokio::test]
async fn put_get_and_delete_a_split() {
    within(30, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let w = Weir::start(&config(a, b, "{ a: 100, b: 0 }")).await;
        assert_eq!(shares(&w, 20).await, (20, 0));

        let (status, body) = put(&w, "primary", r#"{"a": 0, "b": 1}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["split"], serde_json::json!({"a": 0, "b": 1}));
        assert_eq!(body["source"], "api");
        assert_eq!(
            shares(&w, 20).await,
            (0, 20),
            "the next requests follow the API split"
        );

        let cfg = admin_json(w.admin, "/config").await;
        let route = &cfg["routes"][1];
        assert_eq!(route["name"], "primary");
        assert_eq!(route["split_source"], "api");
        assert_eq!(route["split"], serde_json::json!({"a": 0, "b": 1}));
        assert_eq!(route["file_split"], serde_json::json!({"a": 100, "b": 0}));
        assert_eq!(cfg["routes"][0]["split_source"], "file");
        assert_eq!(
            cfg["routes"][0]["match"],
            serde_json::json!({"path": {"exact": "/other"}})
        );
        let v = cfg["version"].as_u64().unwrap();

        // Relative weights: 34/33/33-style shares work the same with any total.
        let (status, _) = put(&w, "primary", r#"{"a": 1, "b": 3}"#).await;
        assert_eq!(status, StatusCode::OK);
        let (ga, gb) = shares(&w, 400).await;
        assert!(
            (60..=140).contains(&ga) && ga + gb == 400,
            "a got {ga} of 400 at 25%"
        );

        let got = admin_json(w.admin, "/routes/primary/split").await;
        assert_eq!(got["split"], serde_json::json!({"a": 1, "b": 3}));
        assert_eq!(got["version"].as_u64(), Some(v + 1));

        let (status, text) = admin_request(w.admin, "DELETE", "/routes/primary/split", "", None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["source"], "file");
        assert_eq!(body["split"], serde_json::json!({"a": 100, "b": 0}));
        assert_eq!(shares(&w, 20).await, (20, 0));
        // Deleting again changes nothing.
        let (status, _) = admin_request(w.admin, "DELETE", "/routes/primary/split", "", None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            admin_json(w.admin, "/config").await["version"].as_u64(),
            Some(v + 2)
        );
    })
    .await;
}

#[tokio::test]
async fn bad_bodies_get_400_with_what_is_wrong() {
    within(30, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let w = Weir::start(&config(a, b, "{ a: 100, b: 0 }")).await;
        let v = admin_json(w.admin, "/config").await["version"]
            .as_u64()
            .unwrap();
        for (body, says) in [
            (r#"{"a": -1, "b": 1}"#, "non-negative integers"),
            (r#"{"a": 1.5}"#, "non-negative integers"),
            (r#"{"a": "10"}"#, "non-negative integers"),
            (r#"{"a": 0, "b": 0}"#, "all weights are zero"),
            (r#"{"a": 1, "canary": 1}"#, "unknown destination `canary`"),
            (r#"{}"#, "empty"),
            (r#"[["a", 1]]"#, "JSON object"),
            ("a=1", "not JSON"),
            ("", "not JSON"),
        ] {
            let (status, json) = put(&w, "primary", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
            let error = json["error"].as_str().unwrap_or_default();
            assert!(error.contains(says), "{body}: {error}");
        }
        // Nothing changed.
        assert_eq!(
            admin_json(w.admin, "/config").await["version"].as_u64(),
            Some(v)
        );
        assert_eq!(shares(&w, 10).await, (10, 0));
    })
    .await;
}

#[tokio::test]
async fn unknown_routes_get_404() {
    within(30, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let w = Weir::start(&config(a, b, "{ a: 100, b: 0 }")).await;
        for (method, body) in [("PUT", r#"{"a": 1}"#), ("DELETE", ""), ("GET", "")] {
            let (status, text) = admin_request(w.admin, method, "/routes/nope/split", body, None)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {text}");
            assert!(
                text.contains("no route named `nope`") && text.contains("primary"),
                "{text}"
            );
        }
        let (status, _) = admin_request(w.admin, "POST", "/routes/primary/split", "{}", None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    })
    .await;
}

#[tokio::test]
async fn a_changed_file_replaces_api_splits_an_unchanged_one_does_not() {
    within(30, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let dir = TempDir::new("api-file");
        let file = dir.write("weir.yaml", &config(a, b, "{ a: 100, b: 0 }"));
        let w = Weir::start_file(&file, LogFormat::Json).await;
        let (status, _) = put(&w, "primary", r#"{"a": 0, "b": 1}"#).await;
        assert_eq!(status, StatusCode::OK);

        // Same content: the API split holds.
        let same = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &same).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(shares(&w, 10).await, (0, 10));

        // Changed content: the file wins, and the override is gone.
        std::fs::write(
            &file,
            config(a, b, "{ a: 100, b: 0 }").replace("routes:", "# edited\nroutes:"),
        )
        .unwrap();
        for _ in 0..50 {
            if admin_json(w.admin, "/routes/primary/split").await["source"] == "file" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = admin_json(w.admin, "/routes/primary/split").await;
        assert_eq!(got["source"], "file");
        assert_eq!(shares(&w, 10).await, (10, 0));
        w.wait_line("the override drop", |l| {
            l.contains("API split overrides replaced")
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn off_loopback_the_admin_needs_a_token() {
    within(30, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let dir = TempDir::new("token");
        // No token file: refused at check and at run, at the `admin` key.
        let open = config(a, b, "{ a: 1 }").replace("admin: 127.0.0.1:0", "admin: 0.0.0.0:0");
        let path = dir.write("open.yaml", &open);
        for cmd in ["check", "run"] {
            let out = weir_output(
                &[cmd, "--config", path.to_str().unwrap()],
                Duration::from_secs(10),
            );
            assert_eq!(out.status.code(), Some(1), "{cmd}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!(
                    "{}:2:8: `admin` is 0.0.0.0:0, not a loopback address",
                    path.display()
                )),
                "{cmd}: {err}"
            );
        }

        let token = "s3cret-token-0123456789";
        dir.write("token", &format!("{token}\n"));
        let guarded = format!("admin_token_file: token\n{open}");
        let path = dir.write("guarded.yaml", &guarded);
        let w = Weir::start_file(&path, LogFormat::Json).await;
        let admin = SocketAddr::from(([127, 0, 0, 1], w.admin.port()));
        let body = r#"{"a": 0, "b": 1}"#;
        for bearer in [None, Some("wrong-token-0000000000")] {
            let (status, text) = admin_request(admin, "PUT", "/routes/primary/split", body, bearer)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
            assert!(text.contains("Authorization: Bearer"), "{text}");
            let (status, _) = admin_request(admin, "DELETE", "/routes/primary/split", "", bearer)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, text) =
            admin_request(admin, "PUT", "/routes/primary/split", body, Some(token))
                .await
                .unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        // `/config` (endpoints, file paths, every route) needs the token too...
        for bearer in [None, Some("wrong-token-0000000000")] {
            let (status, text) = admin_request(admin, "GET", "/config", "", bearer)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
            assert!(!text.contains("split_source"), "{text}");
        }
        let (status, text) = admin_request(admin, "GET", "/config", "", Some(token))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(cfg["routes"][1]["split_source"], "api");
        // ...while probes, scrapers, autoscalers and the dashboard's page need none.
        for path in [
            "/healthz",
            "/ready",
            "/metrics",
            "/stats/connections",
            "/stats/destinations",
            "/routes/primary/split",
            "/ui",
        ] {
            let (status, text) = admin_get(admin, path).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{path}: {text}");
        }
    })
    .await;
}
