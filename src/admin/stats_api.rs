//! `/metrics` (Prometheus) and the JSON statistics for people, autoscalers and the
//! dashboard.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::series::Series;
use super::{AdminResponse, json_response};
use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::telemetry::{DestinationStats, ExpositionContext, StatusClass, render_prometheus};

/// `GET /metrics`.
pub fn metrics(shared: &Shared) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let route_weights = snapshot
        .routes
        .iter()
        .flat_map(|(_, r)| {
            r.split
                .entries()
                .iter()
                .map(|(d, w)| (&*r.name, &*d.name, *w))
        })
        .collect();
    let ctx = ExpositionContext {
        current: current_stats(&snapshot),
        route_weights,
        reloads_success: shared
            .reloads
            .success
            .load(std::sync::atomic::Ordering::Relaxed),
        reloads_failure: shared
            .reloads
            .failure
            .load(std::sync::atomic::Ordering::Relaxed),
        last_reload_failed: !shared.last_reload_successful(),
        config_version: snapshot.version,
    };
    let body = render_prometheus(&shared.stats, &ctx);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn current_stats(snapshot: &Snapshot) -> Vec<Arc<DestinationStats>> {
    snapshot
        .destinations
        .iter()
        .map(|d| d.stats.clone())
        .collect()
}

/// `GET /stats/connections`: small and cheap, for autoscalers polling every second.
pub fn connections(shared: &Shared) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let mut destinations = Map::new();
    for d in &snapshot.destinations {
        destinations.insert(
            d.name.to_string(),
            json!({
                "upstream_active": d.stats.upstream_active(),
                "requests_active": d.stats.requests_active(),
            }),
        );
    }
    let requests_active: i64 = shared
        .stats
        .destinations()
        .iter()
        .map(|d| d.requests_active())
        .sum::<i64>()
        + shared.stats.unknown().requests_active();
    json_response(
        StatusCode::OK,
        &json!({
            "downstream_active": shared.stats.downstream_active(),
            "requests_active": requests_active,
            "destinations": destinations,
        }),
    )
}

/// `GET /stats/destinations`: per destination, counts by status class, success rate,
/// latency quantiles over the window and the weights in effect.
pub fn destinations(shared: &Shared) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let window = snapshot.config.latency_window.as_secs();
    let mut out = Map::new();
    for d in &snapshot.destinations {
        let s = &d.stats;
        let requests = s.requests();
        let class = |c| s.responses(c);
        let errors = class(StatusClass::ServerError);
        let (qs, samples) = s.latency.quantiles([0.5, 0.95, 0.99]);
        let ms = |v: Option<f64>| v.map(|v| (v * 1000.0).round() / 1000.0);
        let weights: Map<String, Value> = snapshot
            .routes
            .iter()
            .filter_map(|(_, r)| {
                let w = r
                    .split
                    .entries()
                    .iter()
                    .find(|(dest, _)| Arc::ptr_eq(dest, d))?
                    .1;
                Some((r.name.to_string(), json!(w)))
            })
            .collect();
        out.insert(
            d.name.to_string(),
            json!({
                "requests": requests,
                "responses": {
                    "1xx": class(StatusClass::Informational),
                    "2xx": class(StatusClass::Success),
                    "3xx": class(StatusClass::Redirect),
                    "4xx": class(StatusClass::ClientError),
                    "5xx": errors,
                    "none": class(StatusClass::None),
                },
                "success_rate": (requests > 0).then(|| (requests - errors) as f64 / requests as f64),
                "latency_ms": { "p50": ms(qs[0]), "p95": ms(qs[1]), "p99": ms(qs[2]), "samples": samples },
                "weights": weights,
                "requests_active": s.requests_active(),
                "upstream_active": s.upstream_active(),
            }),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({ "window_seconds": window, "destinations": out }),
    )
}

/// This process, told apart from a restarted one on the same address: a reader of the
/// cumulative counts below must not diff across a restart.
fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// `GET /stats/latency`: per destination, cumulative counts since start (requests,
/// responses by class) and the cumulative latency histogram in weir's log-linear
/// buckets, `[first µs, last µs, count]` for each non-empty one. A reader that diffs two
/// readings gets exactly the requests between them, and can add diffs over many weirs
/// before taking a quantile (`weir canary` does).
pub fn latency(shared: &Shared) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let mut out = Map::new();
    for d in &snapshot.destinations {
        let s = &d.stats;
        let buckets: Vec<Value> = s
            .latency
            .cumulative()
            .into_iter()
            .map(|(lo, hi, n)| json!([lo, hi, n]))
            .collect();
        let class = |c| s.responses(c);
        out.insert(
            d.name.to_string(),
            json!({
                "requests": s.requests(),
                "responses": {
                    "1xx": class(StatusClass::Informational),
                    "2xx": class(StatusClass::Success),
                    "3xx": class(StatusClass::Redirect),
                    "4xx": class(StatusClass::ClientError),
                    "5xx": class(StatusClass::ServerError),
                    "none": class(StatusClass::None),
                },
                "latency_recorded": s.is_detailed(),
                "latency_us": buckets,
            }),
        );
    }
    // Compact, unlike the other endpoints: hundreds of buckets per destination, read
    // by programs at every interval.
    compact_json(&json!({ "instance": instance(), "destinations": out }))
}

/// JSON on one line, for what programs poll often.
fn compact_json(value: &Value) -> AdminResponse {
    let body = value.to_string() + "\n";
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /stats/series[?since=SEQ]`: the dashboard's history, a sample per second per
/// destination for the last five minutes (see [`super::series`]), or only the samples
/// after `since`. `writes_need_token` says whether the weights API wants the bearer
/// token, so the page can ask for it before the first change rather than after a 401.
pub fn series(
    shared: &Shared,
    series: &Series,
    query: Option<&str>,
    writes_need_token: bool,
) -> AdminResponse {
    let since = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("since="))
        .and_then(|v| v.parse::<u64>().ok());
    let (samples, last) = series.since(since, shared);
    // Compact: polled every second by every open dashboard.
    compact_json(&json!({
        "every_seconds": super::series::EVERY.as_secs_f64(),
        "keep": super::series::KEEP,
        "quantile_samples": super::series::QUANTILE_SAMPLES,
        "writes_need_token": writes_need_token,
        "last": last,
        "samples": samples,
    }))
}
