//! Route matching: by header, authority (host), path (exact, prefix, regex), method and
//! query, conditions ANDed, first match wins; over HTTP/1.1 and HTTP/2.

mod support;

use http::Request;
use support::*;

/// Each route sends to its own synthetic upstream, named after the route, so the
/// `x-weir-upstream` answer says which route matched.
const ROUTES: &[(&str, &str)] = &[
    ("prerelease", "{ headers: { x-weir-stage: prerelease } }"),
    (
        "prerelease-host",
        "{ authority: { prefix: \"prerelease.\" } }",
    ),
    ("api", "{ path: { prefix: /api/ } }"),
    // Never reached: `api` comes first and matches all of its requests.
    ("api-special", "{ path: /api/special }"),
    ("exact", "{ path: { exact: /exact } }"),
    ("items", "{ path: { regex: \"/items/[0-9]+\" } }"),
    ("delete", "{ method: DELETE }"),
    ("debug", "{ query: { debug: \"\" } }"),
    (
        "beta",
        "{ query: { user: { prefix: beta- } }, method: { regex: \"GET|HEAD\" } }",
    ),
    (
        "both",
        "{ path: { prefix: /both }, headers: { x-user: { regex: \"u[0-9]+\" } } }",
    ),
    ("admin-host", "{ authority: admin.shop }"),
];

async fn weir_with_routes() -> Weir {
    let mut destinations = String::new();
    let mut routes = String::new();
    for (name, condition) in ROUTES {
        let addr = synthetic(name).await;
        destinations.push_str(&format!("  {name}: {{ endpoints: [\"{addr}\"] }}\n"));
        routes.push_str(&format!(
            "  - name: {name}\n    match: {condition}\n    split: {{ {name}: 100 }}\n"
        ));
    }
    let fallback = synthetic("fallback").await;
    destinations.push_str(&format!("  fallback: {{ endpoints: [\"{fallback}\"] }}\n"));
    routes.push_str("  - name: fallback\n    split: { fallback: 1 }\n");
    Weir::start(&format!(
        "access_log: true\ndestinations:\n{destinations}routes:\n{routes}"
    ))
    .await
}

/// Sends `method path` with `headers` (Host defaults to `shop`) over HTTP/1.1 and
/// returns the upstream that answered.
async fn h1_route(weir: &Weir, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut tx = h1_conn(weir.listen).await;
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", "shop");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tx.send_request(req.body(empty()).unwrap()).await.unwrap();
    let got = read(resp).await.unwrap();
    assert_eq!(got.status, 200, "{method} {path}: {}", got.text());
    got.upstream().to_owned()
}

/// The same over HTTP/2, where the host travels as `:authority`.
async fn h2_route(weir: &Weir, method: &str, uri: &str, headers: &[(&str, &str)]) -> String {
    let mut tx = h2_conn(weir.listen).await;
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tx.send_request(req.body(empty()).unwrap()).await.unwrap();
    let got = read(resp).await.unwrap();
    assert_eq!(got.status, 200, "{method} {uri}: {}", got.text());
    got.upstream().to_owned()
}

#[tokio::test]
async fn header_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("x-weir-stage", "prerelease")], "prerelease"),
            // Header names are case-insensitive.
            (&[("X-Weir-Stage", "prerelease")], "prerelease"),
            // Values are exact.
            (&[("x-weir-stage", "prerelease2")], "fallback"),
            (&[("x-weir-stage", "Prerelease")], "fallback"),
            // A repeated header matches when any of its values does.
            (
                &[("x-weir-stage", "other"), ("x-weir-stage", "prerelease")],
                "prerelease",
            ),
            (&[], "fallback"),
        ];
        for (headers, want) in cases {
            assert_eq!(
                h1_route(&weir, "GET", "/", headers).await,
                *want,
                "{headers:?}"
            );
        }
        assert_eq!(
            h2_route(
                &weir,
                "GET",
                "http://shop/",
                &[("x-weir-stage", "prerelease")]
            )
            .await,
            "prerelease"
        );
        // The access log names the route that matched.
        weir.wait_access("the prerelease route", |v| {
            v["route"] == "prerelease" && v["destination"] == "prerelease" && v["status"] == 200
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn authority_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        let host = |h: &'static str| [("host", h)];
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("prerelease.shop")).await,
            "prerelease-host"
        );
        // The port is not part of the host that is matched.
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("prerelease.shop:15001")).await,
            "prerelease-host"
        );
        assert_eq!(h1_route(&weir, "GET", "/", &host("shop")).await, "fallback");
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("www.prerelease.shop")).await,
            "fallback"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("admin.shop")).await,
            "admin-host"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("admin.shop:8080")).await,
            "admin-host"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/", &host("admin.shop.example")).await,
            "fallback"
        );
        // HTTP/2: the host is the :authority pseudo-header.
        assert_eq!(
            h2_route(&weir, "GET", "http://prerelease.shop/x", &[]).await,
            "prerelease-host"
        );
        assert_eq!(
            h2_route(&weir, "GET", "http://admin.shop:80/x", &[]).await,
            "admin-host"
        );
        assert_eq!(
            h2_route(&weir, "GET", "http://shop/x", &[]).await,
            "fallback"
        );
    })
    .await;
}

#[tokio::test]
async fn path_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        let cases = [
            // Exact: the whole path, and the query is not part of it.
            ("/exact", "exact"),
            ("/exact?x=1", "exact"),
            ("/exact/", "fallback"),
            ("/exactly", "fallback"),
            // Prefix.
            ("/api/", "api"),
            ("/api/v1/orders", "api"),
            ("/api", "fallback"),
            // Regex: anchored at both ends.
            ("/items/42", "items"),
            ("/items/42/x", "fallback"),
            ("/items/abc", "fallback"),
            ("/x/items/1", "fallback"),
        ];
        for (path, want) in cases {
            assert_eq!(h1_route(&weir, "GET", path, &[]).await, want, "{path}");
        }
        assert_eq!(
            h2_route(&weir, "GET", "http://shop/items/7", &[]).await,
            "items"
        );
    })
    .await;
}

#[tokio::test]
async fn method_and_query_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        assert_eq!(h1_route(&weir, "DELETE", "/thing", &[]).await, "delete");
        assert_eq!(h1_route(&weir, "POST", "/thing", &[]).await, "fallback");
        assert_eq!(
            h2_route(&weir, "DELETE", "http://shop/thing", &[]).await,
            "delete"
        );
        // `?debug` alone has the value "".
        assert_eq!(h1_route(&weir, "GET", "/q?debug", &[]).await, "debug");
        assert_eq!(h1_route(&weir, "GET", "/q?a=1&debug=", &[]).await, "debug");
        assert_eq!(h1_route(&weir, "GET", "/q?debug=1", &[]).await, "fallback");
        assert_eq!(h1_route(&weir, "GET", "/q?debugx", &[]).await, "fallback");
        // Conditions are ANDed: query prefix and method regex.
        assert_eq!(h1_route(&weir, "GET", "/q?user=beta-7", &[]).await, "beta");
        assert_eq!(h1_route(&weir, "HEAD", "/q?user=beta-7", &[]).await, "beta");
        assert_eq!(
            h1_route(&weir, "POST", "/q?user=beta-7", &[]).await,
            "fallback"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/q?user=alpha-7", &[]).await,
            "fallback"
        );
        // Path prefix and header regex.
        assert_eq!(
            h1_route(&weir, "GET", "/both", &[("x-user", "u12")]).await,
            "both"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/both", &[("x-user", "admin")]).await,
            "fallback"
        );
        assert_eq!(
            h1_route(&weir, "GET", "/both", &[("x-user", "u12x")]).await,
            "fallback"
        );
        assert_eq!(h1_route(&weir, "GET", "/both", &[]).await, "fallback");
    })
    .await;
}

#[tokio::test]
async fn first_match_wins() {
    within(60, async {
        let weir = weir_with_routes().await;
        // `api` (prefix) is listed before `api-special` (exact).
        assert_eq!(h1_route(&weir, "GET", "/api/special", &[]).await, "api");
        // The header route comes before the host route, and the host route before
        // the path, method and query routes.
        let staged_host = [("x-weir-stage", "prerelease"), ("host", "prerelease.shop")];
        assert_eq!(
            h1_route(&weir, "GET", "/api/x", &staged_host).await,
            "prerelease"
        );
        let host = [("host", "prerelease.shop")];
        assert_eq!(
            h1_route(&weir, "DELETE", "/exact?debug", &host).await,
            "prerelease-host"
        );
        // `exact` comes before `delete`, `delete` before `debug`.
        assert_eq!(
            h1_route(&weir, "DELETE", "/exact?debug", &[]).await,
            "exact"
        );
        assert_eq!(
            h1_route(&weir, "DELETE", "/other?debug", &[]).await,
            "delete"
        );
        assert_eq!(h1_route(&weir, "GET", "/other?debug", &[]).await, "debug");
        // Nothing ever reaches the shadowed route.
        assert!(
            weir.access_logs()
                .iter()
                .all(|v| v["route"] != "api-special"),
            "api-special matched a request"
        );
    })
    .await;
}
