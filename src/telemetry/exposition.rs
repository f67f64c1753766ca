//! The Prometheus text exposition (format 0.0.4) of everything weir measures.
//!
//! Istio's families keep Istio's names and labels, so Flagger's, Argo Rollouts' and
//! Kayenta's queries run unchanged; weir's own families are prefixed `weir_`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use super::stats::{DestinationStats, ProxyStats, StatusClass, escape};

/// What the exposition needs besides the statistics.
#[derive(Debug, Default)]
pub struct ExpositionContext<'a> {
    /// The destinations of the running config, for the quantile summary.
    pub current: Vec<Arc<DestinationStats>>,
    /// `(route, destination, weight)` in effect.
    pub route_weights: Vec<(&'a str, &'a str, u32)>,
    pub reloads_success: u64,
    pub reloads_failure: u64,
    /// False while the config file holds an edit that was refused.
    pub last_reload_failed: bool,
    pub config_version: u64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The status classes of `weir_responses_total`, with their label values.
const CLASSES: [(StatusClass, &str); 6] = [
    (StatusClass::Informational, "1xx"),
    (StatusClass::Success, "2xx"),
    (StatusClass::Redirect, "3xx"),
    (StatusClass::ClientError, "4xx"),
    (StatusClass::ServerError, "5xx"),
    (StatusClass::None, "none"),
];

/// Renders every metric family.
pub fn render_prometheus(stats: &ProxyStats, ctx: &ExpositionContext<'_>) -> String {
    let all = stats.destinations();
    let mut out = String::with_capacity(16 * 1024);

    family(
        &mut out,
        "istio_requests_total",
        "counter",
        "Requests proxied, by destination and response (Istio standard metric).",
    );
    for d in &all {
        d.series.each(|labels, s| {
            let n = s.requests.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(out, "istio_requests_total{{{},{labels}}} {n}", d.labels);
        });
    }
    for (name, help, pick) in [
        (
            "istio_request_duration_milliseconds",
            "Time from request start to the end of the response, in milliseconds (Istio standard metric).",
            0,
        ),
        (
            "istio_request_bytes",
            "Request body sizes in bytes (Istio standard metric).",
            1,
        ),
        (
            "istio_response_bytes",
            "Response body sizes in bytes (Istio standard metric).",
            2,
        ),
    ] {
        family(&mut out, name, "histogram", help);
        for d in &all {
            d.series.each(|labels, s| {
                let h = match pick {
                    0 => &s.duration,
                    1 => &s.request_bytes,
                    _ => &s.response_bytes,
                };
                h.render(&mut out, name, &format!("{},{labels}", d.labels));
            });
        }
    }

    family(
        &mut out,
        "weir_request_duration_milliseconds",
        "summary",
        "Exact request latency quantiles per destination over the sliding window, in milliseconds.",
    );
    for d in ctx.current.iter().filter(|d| d.is_detailed()) {
        let name = escape(&d.name);
        let (qs, _) = d.latency.quantiles([0.5, 0.95, 0.99]);
        for (q, v) in ["0.5", "0.95", "0.99"].iter().zip(qs) {
            let v = v.map_or_else(|| "NaN".to_owned(), |v| format!("{v:.3}"));
            let _ = writeln!(
                out,
                "weir_request_duration_milliseconds{{destination=\"{name}\",quantile=\"{q}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "weir_request_duration_milliseconds_sum{{destination=\"{name}\"}} {}",
            d.duration_sum_ms()
        );
        let _ = writeln!(
            out,
            "weir_request_duration_milliseconds_count{{destination=\"{name}\"}} {}",
            d.requests()
        );
    }

    family(
        &mut out,
        "weir_downstream_connections_active",
        "gauge",
        "Client connections open on this pod.",
    );
    let _ = writeln!(
        out,
        "weir_downstream_connections_active {}",
        stats.downstream_active()
    );
    family(
        &mut out,
        "weir_downstream_connections_total",
        "counter",
        "Client connections accepted since start.",
    );
    let _ = writeln!(
        out,
        "weir_downstream_connections_total {}",
        stats.downstream_total()
    );
    family(
        &mut out,
        "weir_downstream_connections_overflow_total",
        "counter",
        "Client connections closed at accept because max_connections were open.",
    );
    let _ = writeln!(
        out,
        "weir_downstream_connections_overflow_total {}",
        stats.downstream_overflow()
    );
    family(
        &mut out,
        "weir_downstream_connections_shed_total",
        "counter",
        "HTTP/2 client connections closed because their streams held places of a full \
         destination without reading their responses.",
    );
    let _ = writeln!(
        out,
        "weir_downstream_connections_shed_total {}",
        stats.downstream_shed()
    );

    // Gauges and counters by destination name. A reload that relabels a destination
    // leaves an older stats object behind; sum them so each name is one series.
    let mut by_name: BTreeMap<&str, [i64; 5]> = BTreeMap::new();
    let mut classes: BTreeMap<&str, [u64; CLASSES.len()]> = BTreeMap::new();
    for d in &all {
        let e = by_name.entry(&d.name).or_default();
        e[0] += d.upstream_active();
        e[1] += d.upstream_total() as i64;
        e[2] += d.requests_active();
        e[3] += d.connect_failures() as i64;
        e[4] += d.overflows() as i64;
        let c = classes.entry(&d.name).or_default();
        for (n, (class, _)) in c.iter_mut().zip(CLASSES) {
            *n += d.responses(class);
        }
    }
    family(
        &mut out,
        "weir_responses_total",
        "counter",
        "Requests finished, by destination and status class (1xx..5xx; none: the client \
         left before a response), kept with telemetry off too.",
    );
    for (dest, counts) in &classes {
        for (n, (_, class)) in counts.iter().zip(CLASSES) {
            let _ = writeln!(
                out,
                "weir_responses_total{{destination=\"{}\",class=\"{class}\"}} {n}",
                escape(dest)
            );
        }
    }
    for (name, help, kind, i) in [
        (
            "weir_upstream_connections_active",
            "Upstream connections open, by destination.",
            "gauge",
            0,
        ),
        (
            "weir_upstream_connections_total",
            "Upstream connections opened since start, by destination.",
            "counter",
            1,
        ),
        (
            "weir_requests_active",
            "Requests in flight, by destination.",
            "gauge",
            2,
        ),
        (
            "weir_upstream_connect_failures_total",
            "Upstream connects that failed, by destination.",
            "counter",
            3,
        ),
        (
            "weir_upstream_overflow_total",
            "Requests refused with UO (in-flight limit and queue full), by destination.",
            "counter",
            4,
        ),
    ] {
        family(&mut out, name, kind, help);
        for (dest, values) in &by_name {
            let _ = writeln!(
                out,
                "{name}{{destination=\"{}\"}} {}",
                escape(dest),
                values[i]
            );
        }
    }

    family(
        &mut out,
        "weir_route_weight",
        "gauge",
        "The weight in effect for each destination of each route.",
    );
    for (route, dest, w) in &ctx.route_weights {
        let _ = writeln!(
            out,
            "weir_route_weight{{route=\"{}\",destination=\"{}\"}} {w}",
            escape(route),
            escape(dest)
        );
    }
    family(
        &mut out,
        "weir_config_reloads_total",
        "counter",
        "Config file reloads, by result.",
    );
    let _ = writeln!(
        out,
        "weir_config_reloads_total{{result=\"success\"}} {}",
        ctx.reloads_success
    );
    let _ = writeln!(
        out,
        "weir_config_reloads_total{{result=\"failure\"}} {}",
        ctx.reloads_failure
    );
    family(
        &mut out,
        "weir_config_last_reload_successful",
        "gauge",
        "0 while the config file holds an edit that was refused (the previous config keeps \
         serving), else 1.",
    );
    let _ = writeln!(
        out,
        "weir_config_last_reload_successful {}",
        u8::from(!ctx.last_reload_failed)
    );
    family(
        &mut out,
        "weir_config_version",
        "gauge",
        "The config version in effect; it increases with every change (file or API).",
    );
    let _ = writeln!(out, "weir_config_version {}", ctx.config_version);
    out
}
