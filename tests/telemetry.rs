//! Telemetry: the Prometheus exposition (format, families, Istio label sets per
//! destination), the connection gauges and JSON against known numbers of connections,
//! the sliding window, route weights and the gRPC status label. (Exact quantiles have
//! their own test binary, `latency_quantiles.rs`, so that nothing runs beside them.)

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use support::*;
use weir::synthetic::{LatencyRange, Profile};

/// One sample of the exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly: every sample must belong to a family announced by
/// `# HELP` and `# TYPE` lines before it, label values must be well escaped, values must
/// be numbers. Returns the samples and each family's type.
fn parse_exposition(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut types = BTreeMap::new();
    let mut helps = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(!help.trim().is_empty(), "empty HELP for {name}");
            helps.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind),
                "{line}"
            );
            assert!(helps.contains(name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line
                .split_once(' ')
                .map(|(n, _)| (n, &line[n.len()..]))
                .unwrap(),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                let (start, c) = chars.next().expect("unterminated label set");
                if c == '}' {
                    break start;
                }
                let key_start = start;
                let mut key_end = start;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                }
                let key = &body[key_start..key_end];
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name {key:?}"
                );
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("unterminated value").1 {
                        '\\' => match chars.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            c @ ('\\' | '"') => value.push(c),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                assert!(
                    labels.insert(key.to_owned(), value).is_none(),
                    "duplicate label in {line}"
                );
                if let Some((_, ',')) = chars.peek() {
                    chars.next();
                }
            };
            rest = &body[end + 1..];
        }
        let value: f64 = rest
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| {
                    types
                        .get(*f)
                        .is_some_and(|t| t == "histogram" || t == "summary")
                })
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample of undeclared family: {line}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (samples, types)
}

const ENVOY_BUCKETS: [&str; 19] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000",
];

/// Histogram series are cumulative, carry Envoy's bounds, and `+Inf` equals `_count`.
fn check_histograms(samples: &[Sample], family: &str) {
    let mut series: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket"))
    {
        let mut key = s.labels.clone();
        key.remove("le");
        series.entry(format!("{key:?}")).or_default().push(s);
    }
    assert!(!series.is_empty(), "no {family} series");
    for (key, buckets) in series {
        let les: Vec<&str> = buckets.iter().map(|b| b.labels["le"].as_str()).collect();
        let mut expected: Vec<&str> = ENVOY_BUCKETS.to_vec();
        expected.push("+Inf");
        assert_eq!(les, expected, "{family} {key}");
        assert!(
            buckets.windows(2).all(|w| w[0].value <= w[1].value),
            "{family} not cumulative"
        );
        let count = samples
            .iter()
            .find(|s| {
                s.name == format!("{family}_count") && {
                    let mut k = buckets[0].labels.clone();
                    k.remove("le");
                    k == s.labels
                }
            })
            .expect("a _count per series");
        assert_eq!(
            buckets.last().unwrap().value,
            count.value,
            "{family} +Inf != _count"
        );
    }
}

async fn metrics(w: &Weir) -> Vec<Sample> {
    let (status, text) = admin_get(w.admin, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    parse_exposition(&text).0
}

fn find<'s>(samples: &'s [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'s Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

#[tokio::test]
async fn exposition_is_valid_with_istio_labels_per_destination() {
    within(60, async {
        let release = synthetic("release").await;
        let canary = synthetic("canary").await;
        let dead = dead_port();
        let w = Weir::start(&format!(
            r#"
service: shop
namespace: prod
reporter: destination
workload: shop-gateway
destinations:
  release: {{ endpoints: ["{release}"] }}
  canary:
    endpoints: ["{canary}"]
    labels: {{ destination_workload: shop-canary, destination_version: v2 }}
  gone: {{ endpoints: ["{}"] }}
routes:
  - name: gone
    match: {{ path: /gone }}
    split: {{ gone: 1 }}
  - name: stage
    match: {{ headers: {{ x-stage: canary }} }}
    split: {{ canary: 1 }}
  - name: primary
    match: {{ path: {{ prefix: / }} }}
    split: {{ release: 1 }}
"#,
            dead.addr
        ))
        .await;
        // The same requests from each client protocol: both land in the same series
        // (Istio's `request_protocol` is `http` for HTTP/1.1 and HTTP/2 alike).
        for proto in Proto::ALL {
            let client = proto.client();
            for _ in 0..5 {
                assert_eq!(get(&client, &w.url("/")).await.status, 200, "{proto}");
            }
            for _ in 0..3 {
                let req = Request::get(w.url("/"))
                    .header("x-stage", "canary")
                    .body(empty())
                    .unwrap();
                assert_eq!(fetch(&client, req).await.status, 200, "{proto}");
            }
            assert_eq!(get(&client, &w.url("/gone")).await.status, 503, "{proto}");
        }
        let protos = Proto::ALL.len() as f64;
        // (Unrouted requests are checked in their own test: this config catches all.)
        let (status, text) = admin_get(w.admin, "/metrics").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let (samples, types) = parse_exposition(&text);
        for (family, kind) in [
            ("istio_requests_total", "counter"),
            ("istio_request_duration_milliseconds", "histogram"),
            ("istio_request_bytes", "histogram"),
            ("istio_response_bytes", "histogram"),
            ("weir_request_duration_milliseconds", "summary"),
            ("weir_downstream_connections_active", "gauge"),
            ("weir_downstream_connections_total", "counter"),
            ("weir_upstream_connections_active", "gauge"),
            ("weir_requests_active", "gauge"),
            ("weir_route_weight", "gauge"),
            ("weir_responses_total", "counter"),
            ("weir_config_reloads_total", "counter"),
            ("weir_config_last_reload_successful", "gauge"),
        ] {
            assert_eq!(
                types.get(family).map(String::as_str),
                Some(kind),
                "{family}"
            );
        }
        for family in [
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        ] {
            check_histograms(&samples, family);
        }

        let common = [
            ("reporter", "destination"),
            ("source_workload", "shop-gateway"),
            ("destination_service", "shop.prod.svc.cluster.local"),
            ("destination_service_name", "shop"),
            ("destination_workload_namespace", "prod"),
            ("request_protocol", "http"),
            ("grpc_response_status", ""),
            ("connection_security_policy", "none"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            common
                .iter()
                .copied()
                .chain(extra.iter().copied())
                .collect()
        };
        let release_ok = find(
            &samples,
            "istio_requests_total",
            &with(&[
                ("destination_workload", "shop-release"),
                ("destination_version", "release"),
                ("response_code", "200"),
                ("response_flags", "-"),
            ]),
        );
        assert_eq!(release_ok.len(), 1, "{release_ok:?}");
        assert_eq!(release_ok[0].value, 5.0 * protos);
        let canary_ok = find(
            &samples,
            "istio_requests_total",
            &with(&[
                ("destination_workload", "shop-canary"),
                ("destination_version", "v2"),
                ("response_code", "200"),
            ]),
        );
        assert_eq!(canary_ok.len(), 1);
        assert_eq!(canary_ok[0].value, 3.0 * protos);
        let uf = find(
            &samples,
            "istio_requests_total",
            &with(&[
                ("destination_workload", "shop-gone"),
                ("response_code", "503"),
                ("response_flags", "UF"),
            ]),
        );
        assert_eq!(uf.len(), 1, "{uf:?}");
        assert_eq!(uf[0].value, protos, "{uf:?}");
        // weir's own per-destination counters, keyed by the destination's name (not its
        // metric labels), as the kit's dashboard and alerts read them.
        for (destination, class, want) in [
            ("release", "2xx", 5.0 * protos),
            ("canary", "2xx", 3.0 * protos),
            ("gone", "5xx", protos),
            ("canary", "5xx", 0.0),
        ] {
            let got = find(
                &samples,
                "weir_responses_total",
                &[("destination", destination), ("class", class)],
            );
            assert_eq!(got.len(), 1, "{destination} {class}: {got:?}");
            assert_eq!(got[0].value, want, "{destination} {class}");
        }
        let ok = find(&samples, "weir_config_last_reload_successful", &[]);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].value, 1.0);
        // Every Istio series has the full label set, unknown where weir cannot know.
        for s in samples.iter().filter(|s| s.name == "istio_requests_total") {
            for key in [
                "source_workload_namespace",
                "source_principal",
                "destination_principal",
                "destination_app",
                "destination_canonical_service",
                "destination_canonical_revision",
                "destination_cluster",
                "source_cluster",
            ] {
                assert!(s.labels.contains_key(key), "{key} missing in {s:?}");
            }
            assert_eq!(s.labels["source_principal"], "unknown");
        }
        let bytes = find(
            &samples,
            "istio_response_bytes_sum",
            &[
                ("destination_workload", "shop-release"),
                ("response_code", "200"),
            ],
        );
        assert_eq!(bytes[0].value, 5.0 * protos * "release\n".len() as f64);
        let weights = find(
            &samples,
            "weir_route_weight",
            &[("route", "primary"), ("destination", "release")],
        );
        assert_eq!(weights[0].value, 1.0);
    })
    .await;
}

#[tokio::test]
async fn unrouted_requests_count_under_unknown_with_nr() {
    within(30, async {
        let up = synthetic("release").await;
        let w = Weir::start(&format!(
            "service: shop\ndestinations:\n  release: {{ endpoints: [\"{up}\"] }}\nroutes:\n  - name: only\n    match: {{ path: /only }}\n    split: {{ release: 1 }}\n"
        ))
        .await;
        for proto in Proto::ALL {
            let client = proto.client();
            for _ in 0..2 {
                assert_eq!(get(&client, &w.url("/elsewhere")).await.status, 404, "{proto}");
            }
        }
        let samples = metrics(&w).await;
        let nr = find(
            &samples,
            "istio_requests_total",
            &[("destination_workload", "unknown"), ("response_code", "404"), ("response_flags", "NR"), ("reporter", "source")],
        );
        assert_eq!(nr.len(), 1, "{nr:?}");
        assert_eq!(nr[0].value, 2.0 * Proto::ALL.len() as f64);
        assert_eq!(nr[0].labels["destination_service"], "shop.default.svc.cluster.local");
        assert_eq!(nr[0].labels["source_workload"], "weir");
    })
    .await;
}

#[tokio::test]
async fn connection_gauges_count_exactly() {
    within(60, async {
        let up = synthetic("release").await;
        let slow = synthetic_with(Profile {
            latency: LatencyRange::fixed(Duration::from_millis(1500)),
            ..Profile::new("slow")
        })
        .await;
        // A weir per client protocol: the upstream connections the first one pooled
        // would blur the second one's count.
        for proto in Proto::ALL {
            let w = Weir::start(&format!(
                "destinations:\n  release: {{ endpoints: [\"{up}\"] }}\n  slow: {{ endpoints: [\"{slow}\"] }}\nroutes:\n  - name: slow\n    match: {{ path: /slow }}\n    split: {{ slow: 1 }}\n  - name: primary\n    split: {{ release: 1 }}\n"
            ))
            .await;
            let active = |v: &serde_json::Value| v["downstream_active"].as_i64().unwrap();
            assert_eq!(active(&admin_json(w.admin, "/stats/connections").await), 0);

            // 50 keep-alive connections, each after one request, left idle.
            let mut conns = Vec::new();
            for _ in 0..50 {
                let mut conn = proto.conn(w.listen).await;
                let got = conn.get("/").await.unwrap();
                assert_eq!(got.status, 200, "{proto}");
                conns.push(conn);
            }
            let json = admin_json(w.admin, "/stats/connections").await;
            assert_eq!(active(&json), 50, "{proto}: {json}");
            let samples = metrics(&w).await;
            assert_eq!(
                find(&samples, "weir_downstream_connections_active", &[])[0].value,
                50.0,
                "{proto}"
            );
            assert!(
                find(&samples, "weir_downstream_connections_total", &[])[0].value >= 50.0,
                "{proto}"
            );
            drop(conns);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let json = admin_json(w.admin, "/stats/connections").await;
                if active(&json) == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{proto}: still open after close: {json}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            // Three requests in flight to the slow destination, each on a client (and
            // so a connection) of its own.
            let mut inflight = Vec::new();
            for _ in 0..3 {
                let url = w.url("/slow");
                inflight.push(tokio::spawn(async move { get(&proto.client(), &url).await.status }));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let json = admin_json(w.admin, "/stats/connections").await;
                let slow = &json["destinations"]["slow"];
                // A request is counted when it is routed, its upstream connection once
                // connected: wait for both rather than read the moment in between.
                if slow["requests_active"] == 3 && slow["upstream_active"] == 3 {
                    assert_eq!(json["requests_active"], 3, "{proto}: {json}");
                    assert_eq!(active(&json), 3, "{proto}: {json}");
                    let samples = metrics(&w).await;
                    assert_eq!(find(&samples, "weir_requests_active", &[("destination", "slow")])[0].value, 3.0, "{proto}");
                    assert_eq!(find(&samples, "weir_upstream_connections_active", &[("destination", "slow")])[0].value, 3.0, "{proto}");
                    break;
                }
                assert!(Instant::now() < deadline, "{proto}: never 3 in flight: {json}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for t in inflight {
                assert_eq!(t.await.unwrap(), 200, "{proto}");
            }
            let json = admin_json(w.admin, "/stats/connections").await;
            assert_eq!(json["destinations"]["slow"]["requests_active"], 0, "{proto}: {json}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_latency_window_slides() {
    within(60, async {
        let up = synthetic_with(Profile {
            latency: LatencyRange::fixed(Duration::from_millis(5)),
            ..Profile::new("release")
        })
        .await;
        let w = Weir::start(&format!(
            "latency_window: 2s\ndestinations:\n  release: {{ endpoints: [\"{up}\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 1 }}\n"
        ))
        .await;
        let client = h1_client();
        for _ in 0..20 {
            get(&client, &w.url("/")).await;
        }
        let samples_in = |json: &serde_json::Value| json["destinations"]["release"]["latency_ms"]["samples"].as_u64().unwrap();
        let json = admin_json(w.admin, "/stats/destinations").await;
        assert_eq!(samples_in(&json), 20, "{json}");
        assert_eq!(json["window_seconds"], 2);
        let p95 = find(&metrics(&w).await, "weir_request_duration_milliseconds", &[("quantile", "0.95")])[0].value;
        assert!(p95 >= 5.0, "{p95}");
        // Two seconds later the window holds nothing.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let json = admin_json(w.admin, "/stats/destinations").await;
        assert_eq!(samples_in(&json), 0, "{json}");
        assert!(json["destinations"]["release"]["latency_ms"]["p95"].is_null());
        let q = find(&metrics(&w).await, "weir_request_duration_milliseconds", &[("quantile", "0.95")])[0].value;
        assert!(q.is_nan(), "{q}");
        // The counters do not slide.
        assert_eq!(json["destinations"]["release"]["requests"], 20);
        get(&client, &w.url("/")).await;
        assert_eq!(samples_in(&admin_json(w.admin, "/stats/destinations").await), 1);
    })
    .await;
}

#[tokio::test]
async fn destination_stats_and_route_weights_follow_changes() {
    within(60, async {
        let ok = synthetic("release").await;
        let failing = synthetic_with(Profile {
            error_rate: 1.0,
            ..Profile::new("canary")
        })
        .await;
        let w = Weir::start(&format!(
            "destinations:\n  release: {{ endpoints: [\"{ok}\"] }}\n  canary: {{ endpoints: [\"{failing}\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 80, canary: 20 }}\n"
        ))
        .await;
        let samples = metrics(&w).await;
        assert_eq!(find(&samples, "weir_route_weight", &[("route", "primary"), ("destination", "canary")])[0].value, 20.0);
        let (status, _) = admin_request(w.admin, "PUT", "/routes/primary/split", r#"{"release": 50, "canary": 50}"#, None).await.unwrap();
        assert_eq!(status, 200);
        let samples = metrics(&w).await;
        assert_eq!(find(&samples, "weir_route_weight", &[("route", "primary"), ("destination", "canary")])[0].value, 50.0);
        assert_eq!(find(&samples, "weir_config_version", &[])[0].value, 2.0);

        let client = h1_client();
        let mut canary = 0;
        for _ in 0..100 {
            if get(&client, &w.url("/")).await.status == 500 {
                canary += 1;
            }
        }
        let json = admin_json(w.admin, "/stats/destinations").await;
        let c = &json["destinations"]["canary"];
        assert_eq!(c["requests"], canary);
        assert_eq!(c["responses"]["5xx"], canary);
        assert_eq!(c["success_rate"], 0.0);
        assert_eq!(c["weights"]["primary"], 50);
        let r = &json["destinations"]["release"];
        assert_eq!(r["responses"]["2xx"], 100 - canary);
        assert_eq!(r["success_rate"], 1.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests_carry_their_status() {
    within(60, async {
        let up = serve(true, |req: Request<Incoming>| async move {
            let _ = req.into_body().collect().await;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("14"));
            let body = Full::new(Bytes::from_static(b"\0\0\0\0\0"))
                .with_trailers(async move { Some(Ok(trailers)) })
                .map_err(|never| match never {})
                .boxed();
            Response::builder().header("content-type", "application/grpc").body(body).unwrap()
        })
        .await;
        let w = Weir::start(&format!(
            "destinations:\n  grpc: {{ endpoints: [\"{up}\"], protocol: http2 }}\nroutes:\n  - name: primary\n    split: {{ grpc: 1 }}\n"
        ))
        .await;
        let mut tx = h2_conn(w.listen).await;
        for _ in 0..2 {
            let req = Request::post(format!("http://{}/pkg.Svc/Call", w.listen))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(full(Bytes::from_static(b"\0\0\0\0\0")))
                .unwrap();
            let got = read(tx.send_request(req).await.unwrap()).await.unwrap();
            assert_eq!(got.trailers.unwrap()["grpc-status"], "14");
        }
        let samples = metrics(&w).await;
        let grpc = find(
            &samples,
            "istio_requests_total",
            &[("request_protocol", "grpc"), ("grpc_response_status", "14"), ("response_code", "200")],
        );
        assert_eq!(grpc.len(), 1, "{grpc:?}");
        assert_eq!(grpc[0].value, 2.0);
    })
    .await;
}
