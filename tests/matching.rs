//! Route matching: by header, authority (host), path (exact, prefix, regex), method and
//! query, conditions ANDed, first match wins. Every case runs over HTTP/1.1 and h2c
//! from one table.

mod support;

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

/// One request and the route it must reach: method, host (`Host` on HTTP/1.1,
/// `:authority` on HTTP/2), path with query, other headers, the route that answers.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Sends each case on a new connection of each client protocol and checks the route
/// that answered: matching does not depend on the client's protocol.
async fn check(weir: &Weir, cases: &[Case]) {
    for proto in Proto::ALL {
        for (method, host, path, headers, want) in cases {
            let what = format!("{proto} {method} {host}{path} {headers:?}");
            let mut conn = proto.conn(weir.listen).await;
            let mut req = conn.request(method, host, path);
            for (k, v) in *headers {
                req = req.header(*k, *v);
            }
            let got = conn
                .send(req.body(empty()).unwrap())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.status, 200, "{what}: {}", got.text());
            assert_eq!(got.upstream(), *want, "{what}");
        }
    }
}

#[tokio::test]
async fn header_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        check(
            &weir,
            &[
                ("GET", "shop", "/", &[("x-weir-stage", "prerelease")], "prerelease"),
                // (hyper lower-cases the name on the wire; see the raw check below)
                ("GET", "shop", "/", &[("X-Weir-Stage", "prerelease")], "prerelease"),
                // Values are exact.
                ("GET", "shop", "/", &[("x-weir-stage", "prerelease2")], "fallback"),
                ("GET", "shop", "/", &[("x-weir-stage", "Prerelease")], "fallback"),
                // A repeated header matches when any of its values does.
                (
                    "GET",
                    "shop",
                    "/",
                    &[("x-weir-stage", "other"), ("x-weir-stage", "prerelease")],
                    "prerelease",
                ),
                ("GET", "shop", "/", &[], "fallback"),
            ],
        )
        .await;
        // Header names are case-insensitive. Only HTTP/1.1 can send upper case (HTTP/2
        // field names are lower case on the wire, and hyper's clients lower-case them
        // in both protocols), so this one is written on raw TCP.
        let raw = raw_exchange(
            weir.listen,
            b"GET / HTTP/1.1\r\nHost: shop\r\nX-WEIR-STAGE: prerelease\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let resp = RawResponse::parse(&raw);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-weir-upstream"), Some("prerelease"), "{resp:?}");
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
        check(
            &weir,
            &[
                ("GET", "prerelease.shop", "/", &[], "prerelease-host"),
                // The port is not part of the host that is matched.
                ("GET", "prerelease.shop:15001", "/", &[], "prerelease-host"),
                ("GET", "shop", "/", &[], "fallback"),
                ("GET", "www.prerelease.shop", "/", &[], "fallback"),
                ("GET", "admin.shop", "/", &[], "admin-host"),
                ("GET", "admin.shop:8080", "/", &[], "admin-host"),
                ("GET", "admin.shop:80", "/x", &[], "admin-host"),
                ("GET", "admin.shop.example", "/", &[], "fallback"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn path_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        check(
            &weir,
            &[
                // Exact: the whole path, and the query is not part of it.
                ("GET", "shop", "/exact", &[], "exact"),
                ("GET", "shop", "/exact?x=1", &[], "exact"),
                ("GET", "shop", "/exact/", &[], "fallback"),
                ("GET", "shop", "/exactly", &[], "fallback"),
                // Prefix.
                ("GET", "shop", "/api/", &[], "api"),
                ("GET", "shop", "/api/v1/orders", &[], "api"),
                ("GET", "shop", "/api", &[], "fallback"),
                // Regex: anchored at both ends.
                ("GET", "shop", "/items/42", &[], "items"),
                ("GET", "shop", "/items/7", &[], "items"),
                ("GET", "shop", "/items/42/x", &[], "fallback"),
                ("GET", "shop", "/items/abc", &[], "fallback"),
                ("GET", "shop", "/x/items/1", &[], "fallback"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn method_and_query_conditions() {
    within(60, async {
        let weir = weir_with_routes().await;
        check(
            &weir,
            &[
                ("DELETE", "shop", "/thing", &[], "delete"),
                ("POST", "shop", "/thing", &[], "fallback"),
                // `?debug` alone has the value "".
                ("GET", "shop", "/q?debug", &[], "debug"),
                ("GET", "shop", "/q?a=1&debug=", &[], "debug"),
                ("GET", "shop", "/q?debug=1", &[], "fallback"),
                ("GET", "shop", "/q?debugx", &[], "fallback"),
                // Conditions are ANDed: query prefix and method regex.
                ("GET", "shop", "/q?user=beta-7", &[], "beta"),
                ("HEAD", "shop", "/q?user=beta-7", &[], "beta"),
                ("POST", "shop", "/q?user=beta-7", &[], "fallback"),
                ("GET", "shop", "/q?user=alpha-7", &[], "fallback"),
                // Path prefix and header regex.
                ("GET", "shop", "/both", &[("x-user", "u12")], "both"),
                ("GET", "shop", "/both", &[("x-user", "admin")], "fallback"),
                ("GET", "shop", "/both", &[("x-user", "u12x")], "fallback"),
                ("GET", "shop", "/both", &[], "fallback"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn first_match_wins() {
    within(60, async {
        let weir = weir_with_routes().await;
        let staged: &[(&str, &str)] = &[("x-weir-stage", "prerelease")];
        check(
            &weir,
            &[
                // `api` (prefix) is listed before `api-special` (exact).
                ("GET", "shop", "/api/special", &[], "api"),
                // The header route comes before the host route, and the host route
                // before the path, method and query routes.
                ("GET", "prerelease.shop", "/api/x", staged, "prerelease"),
                (
                    "DELETE",
                    "prerelease.shop",
                    "/exact?debug",
                    &[],
                    "prerelease-host",
                ),
                // `exact` comes before `delete`, `delete` before `debug`.
                ("DELETE", "shop", "/exact?debug", &[], "exact"),
                ("DELETE", "shop", "/other?debug", &[], "delete"),
                ("GET", "shop", "/other?debug", &[], "debug"),
            ],
        )
        .await;
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
