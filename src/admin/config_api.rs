//! `/config` and the weights API: the effective configuration as JSON, and
//! `PUT`/`DELETE /routes/{route}/split` to change a split live.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::{AdminResponse, json_response};
use crate::config::{Config, RouteConfig};
use crate::routing::{RequestMatch, StringMatch};
use crate::snapshot::Route;
use crate::state::{ReloadResult, Shared, SplitWriteError};

/// Largest split body accepted: a split is a handful of names and numbers.
const MAX_BODY: usize = 64 * 1024;
/// How long a weights body may take to arrive: a client that declares a body and
/// sends nothing must not hold the admin thread's attention.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /config`.
pub fn config(shared: &Shared) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let control = shared.control();
    let config = &snapshot.config;
    let last_reload = control.last_reload.as_ref().map(|r| {
        let (result, error) = match &r.result {
            ReloadResult::Success => ("success", Value::Null),
            ReloadResult::Failure(e) => ("failure", Value::String(e.clone())),
            ReloadResult::Unchanged => ("unchanged", Value::Null),
        };
        json!({ "time": rfc3339(r.at), "result": result, "error": error, "version": r.version })
    });
    let destinations: Map<String, Value> = config
        .destinations
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                json!({
                    "endpoints": d.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "protocol": d.protocol.as_str(),
                    "connect_timeout": duration(d.connect_timeout),
                    "labels": { "destination_workload": d.workload, "destination_version": d.version },
                }),
            )
        })
        .collect();
    let routes: Vec<Value> = config
        .routes
        .iter()
        .zip(snapshot.routes.iter())
        .map(|(file, (_, live))| route_json(config, file, live))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "version": snapshot.version,
            "file": config.origin,
            "last_reload": last_reload,
            "listen": config.listen.to_string(),
            "admin": config.admin.to_string(),
            "service": config.labels.service,
            "namespace": config.labels.namespace,
            "reporter": config.labels.reporter,
            "workload": config.labels.workload,
            "access_log": config.access_log,
            "drain_timeout": duration(config.drain_timeout),
            "idle_timeout": duration(config.idle_timeout),
            "destinations": destinations,
            "routes": routes,
        }),
    )
}

fn route_json(config: &Config, file: &RouteConfig, live: &Route) -> Value {
    let file_split: Map<String, Value> = file
        .split
        .iter()
        .map(|&(i, w)| (config.destinations[i].name.clone(), json!(w)))
        .collect();
    json!({
        "name": file.name,
        "match": match_json(&file.matcher),
        "split": live_split(live),
        "split_source": live.split_source.as_str(),
        "file_split": file_split,
        "timeout": file.timeout.map(duration),
    })
}

fn live_split(route: &Route) -> Map<String, Value> {
    route
        .split
        .entries()
        .iter()
        .map(|(d, w)| (d.name.to_string(), json!(w)))
        .collect()
}

fn match_json(m: &RequestMatch) -> Value {
    if m.is_catch_all() {
        return Value::Null;
    }
    let sm = |s: &StringMatch| {
        let (kind, text) = s.describe();
        json!({ kind: text })
    };
    let mut out = Map::new();
    if let Some(a) = &m.authority {
        out.insert("authority".into(), sm(a));
    }
    if let Some(p) = &m.path {
        out.insert("path".into(), sm(p));
    }
    if let Some(x) = &m.method {
        out.insert("method".into(), sm(x));
    }
    if !m.headers.is_empty() {
        let h: Map<String, Value> = m
            .headers
            .iter()
            .map(|(n, s)| (n.to_string(), sm(s)))
            .collect();
        out.insert("headers".into(), Value::Object(h));
    }
    if !m.query.is_empty() {
        let q: Map<String, Value> = m.query.iter().map(|(k, s)| (k.clone(), sm(s))).collect();
        out.insert("query".into(), Value::Object(q));
    }
    Value::Object(out)
}

/// `GET /routes/{route}/split`.
pub fn get_split(shared: &Shared, route: &str) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    match snapshot.route(route) {
        Some(r) => split_response(route, r, snapshot.version),
        None => unknown_route(shared, route),
    }
}

/// `PUT /routes/{route}/split` with `{"release": 34, "baseline": 33, "canary": 33}`.
pub async fn put_split(shared: &Shared, route: &str, body: Incoming) -> AdminResponse {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 64 KiB",
        )
    };
    if http_body::Body::size_hint(&body).lower() > MAX_BODY as u64 {
        return too_large();
    }
    let collecting = Limited::new(body, MAX_BODY).collect();
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, collecting).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive within 10 seconds",
            );
        }
    };
    let weights = match parse_weights(&bytes) {
        Ok(w) => w,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match shared.set_split(route, &weights) {
        Ok(_) => get_split(shared, route),
        Err(e @ SplitWriteError::UnknownRoute { .. }) => {
            error(StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e @ SplitWriteError::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `DELETE /routes/{route}/split`: back to the file's split.
pub fn delete_split(shared: &Shared, route: &str) -> AdminResponse {
    match shared.clear_split(route) {
        Ok(_) => get_split(shared, route),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

pub(crate) fn parse_weights(body: &Bytes) -> Result<Vec<(String, u32)>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON ({e}): send an object such as {{\"release\": 90, \"canary\": 10}}"
        )
    })?;
    let Value::Object(map) = value else {
        return Err("the body must be a JSON object of destination weights, such as {\"release\": 90, \"canary\": 10}".into());
    };
    if map.is_empty() {
        return Err("the split is empty: give at least one destination a weight".into());
    }
    map.into_iter()
        .map(
            |(name, w)| match w.as_u64().and_then(|w| u32::try_from(w).ok()) {
                Some(w) => Ok((name, w)),
                None => Err(format!(
                    "the weight of `{name}` is {w}: weights are non-negative integers"
                )),
            },
        )
        .collect()
}

fn split_response(name: &str, route: &Route, version: u64) -> AdminResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "route": name,
            "split": live_split(route),
            "source": route.split_source.as_str(),
            "version": version,
        }),
    )
}

fn unknown_route(shared: &Shared, route: &str) -> AdminResponse {
    let snapshot = shared.snapshot.load();
    let known: Vec<&str> = snapshot.routes.iter().map(|(_, r)| &*r.name).collect();
    error(
        StatusCode::NOT_FOUND,
        &format!("no route named `{route}`; routes are: {}", known.join(", ")),
    )
}

pub fn error(status: StatusCode, message: &str) -> AdminResponse {
    json_response(status, &json!({ "error": message }))
}

/// `15s`, `250ms`, `1.5s`: as the config file writes durations.
fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// RFC 3339 UTC time with milliseconds, without a date library.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = crate::civil::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_741_200_123);
        assert_eq!(rfc3339(t), "2026-11-27T01:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn weights_parse_and_refuse() {
        let ok = parse_weights(&Bytes::from_static(br#"{"release": 34, "canary": 33}"#)).unwrap();
        assert_eq!(
            ok,
            vec![("release".to_string(), 34), ("canary".to_string(), 33)]
        );
        assert!(
            parse_weights(&Bytes::from_static(br#"{"release": -1}"#))
                .unwrap_err()
                .contains("non-negative")
        );
        assert!(
            parse_weights(&Bytes::from_static(br#"{"release": 1.5}"#))
                .unwrap_err()
                .contains("non-negative")
        );
        assert!(
            parse_weights(&Bytes::from_static(b"[1]"))
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(
            parse_weights(&Bytes::from_static(b"{"))
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parse_weights(&Bytes::from_static(b"{}"))
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn durations_read_like_the_config() {
        assert_eq!(duration(Duration::from_secs(15)), "15s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
    }
}
