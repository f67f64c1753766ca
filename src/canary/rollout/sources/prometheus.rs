//! The `prometheus` source: an instant query (`/api/v1/query`) per metric, side and
//! interval, with `{{scope}}` and `{{interval}}` filled in. In a cluster, Prometheus
//! already adds up every pod, and its container CPU and memory series are the
//! Kubernetes metrics.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::super::http::{self, Call, encode};

/// A duration as PromQL writes it: `10s`, `1500ms`.
pub fn promql_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Fills in `{{scope}}` and `{{interval}}` (spaces inside the braces allowed).
pub fn render(query: &str, scope: &str, interval: Duration) -> String {
    let mut out = query.to_owned();
    for (name, value) in [
        ("scope", scope.to_owned()),
        ("interval", promql_duration(interval)),
    ] {
        for pattern in [format!("{{{{{name}}}}}"), format!("{{{{ {name} }}}}")] {
            out = out.replace(&pattern, &value);
        }
    }
    out
}

/// The value of an instant query's answer: one sample's value, the sum of several
/// series' (with a note), NaN for none.
pub fn value_of(answer: &Value) -> Result<(f64, Option<String>), String> {
    if answer["status"].as_str() != Some("success") {
        let e = answer["error"].as_str().unwrap_or("no status: success");
        return Err(format!("Prometheus refused the query: {e}"));
    }
    let data = &answer["data"];
    let sample = |v: &Value| -> f64 {
        v[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    match data["resultType"].as_str() {
        Some("scalar") => Ok((sample(&data["result"]), None)),
        Some("vector") => {
            let series = data["result"].as_array().cloned().unwrap_or_default();
            match series.len() {
                0 => Ok((f64::NAN, Some("the query returned no series".to_owned()))),
                1 => Ok((sample(&series[0]["value"]), None)),
                n => Ok((
                    series.iter().map(|s| sample(&s["value"])).sum(),
                    Some(format!(
                        "the query returned {n} series; their sum is used (aggregate with sum() to silence this)"
                    )),
                )),
            }
        }
        other => Err(format!(
            "expected an instant vector or scalar, got {}",
            other.unwrap_or("nothing")
        )),
    }
}

/// Runs `query` at the current time.
pub async fn instant(
    base: &str,
    query: &str,
    deadline: Instant,
) -> Result<(f64, Option<String>), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let url = format!("{base}/api/v1/query?query={}&time={now:.3}", encode(query));
    let body = http::send_retrying(&Call::get(&url), deadline)
        .await
        .map_err(|e| e.to_string())?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{base}: the answer is not JSON: {e}"))?;
    value_of(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_fill_in() {
        let q = "sum(rate(container_cpu_usage_seconds_total{pod=~\"shop-{{scope}}-.*\"}[{{ interval }}]))";
        assert_eq!(
            render(q, "canary", Duration::from_secs(10)),
            "sum(rate(container_cpu_usage_seconds_total{pod=~\"shop-canary-.*\"}[10s]))"
        );
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn answers_read() {
        let one = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.25"]}]}});
        assert_eq!(value_of(&one).unwrap(), (0.25, None));
        let none = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert!(value_of(&none).unwrap().0.is_nan());
        let nan =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "NaN"]}});
        assert!(value_of(&nan).unwrap().0.is_nan());
        let two = json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]}});
        assert_eq!(value_of(&two).unwrap().0, 3.0);
        let bad = json!({"status": "error", "error": "parse error"});
        assert!(value_of(&bad).unwrap_err().contains("parse error"));
    }
}
