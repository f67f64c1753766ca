//! The weirs a rollout drives, through their admin API: finding them (static URLs and
//! `discover:` names resolved at every interval), the pre-flight check, and reading and
//! setting a route's split.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use ::http::Method;
use serde_json::Value;

use super::config::{AdminSource, RolloutConfig, Side, Weights};
use super::http::{self, Call};

/// A problem with one target, named.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{target}: {message}")]
pub struct TargetError {
    pub target: String,
    pub message: String,
}

fn fail(target: &str, message: impl std::fmt::Display) -> TargetError {
    TargetError {
        target: target.to_owned(),
        message: message.to_string(),
    }
}

/// The admin URLs the sources name now, and the `discover:` names that did not resolve.
pub async fn resolve(sources: &[AdminSource]) -> (Vec<String>, Vec<String>) {
    let mut urls = Vec::new();
    let mut problems = Vec::new();
    for s in sources {
        match s {
            AdminSource::Url(u) => urls.push(u.clone()),
            AdminSource::Discover { host, port } => {
                match tokio::net::lookup_host((host.as_str(), *port)).await {
                    Ok(addrs) => {
                        let mut found: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
                        found.sort();
                        found.dedup();
                        if found.is_empty() {
                            problems.push(format!("discover {host}:{port}: no address"));
                        }
                        urls.extend(found);
                    }
                    Err(e) => problems.push(format!("discover {host}:{port}: {e}")),
                }
            }
        }
    }
    urls.dedup();
    (urls, problems)
}

/// Reads the admin token, if the config names a file. Read at every write, so a rotated
/// token is used at once (as weir reads it).
pub fn token(file: Option<&Path>) -> Result<Option<String>, String> {
    let Some(file) = file else {
        return Ok(None);
    };
    match std::fs::read_to_string(file) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_owned())),
        Ok(_) => Err(format!("{}: the admin token file is empty", file.display())),
        Err(e) => Err(format!(
            "{}: cannot read the admin token file: {e}",
            file.display()
        )),
    }
}

/// What the pre-flight check learnt about a target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub url: String,
    /// The route's split when the rollout started.
    pub split: Weights,
    /// Endpoints (`host:port`) of the canary and the baseline.
    pub endpoints: BTreeMap<Side, Vec<String>>,
    /// Whether the target records latencies (`telemetry: true`).
    pub telemetry: Option<bool>,
}

fn split_of(v: &Value) -> Weights {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, w)| Some((k.clone(), u32::try_from(w.as_u64()?).ok()?)))
                .filter(|(_, w)| *w > 0)
                .collect()
        })
        .unwrap_or_default()
}

fn json(target: &str, bytes: &[u8]) -> Result<Value, TargetError> {
    serde_json::from_slice(bytes)
        .map_err(|e| fail(target, format!("answered something that is not JSON: {e}")))
}

/// Checks one target: it answers, has the route, and knows every destination the
/// rollout names. `token` goes with the read of `/config`, which a weir with
/// `admin_token_file` guards like its writes.
pub async fn preflight(
    url: &str,
    cfg: &RolloutConfig,
    token: Option<&str>,
    deadline: Instant,
) -> Result<TargetInfo, TargetError> {
    let config_url = format!("{url}/config");
    let call = Call {
        bearer: token,
        ..Call::get(&config_url)
    };
    let body = http::send_retrying(&call, deadline)
        .await
        .map_err(|e| fail(url, e))?;
    let v = json(url, &body)?;
    let route = &cfg.target.route;
    let routes = v["routes"].as_array().cloned().unwrap_or_default();
    let Some(r) = routes.iter().find(|r| r["name"].as_str() == Some(route)) else {
        let names: Vec<&str> = routes.iter().filter_map(|r| r["name"].as_str()).collect();
        return Err(fail(
            url,
            format!("no route `{route}` (routes: {})", names.join(", ")),
        ));
    };
    let destinations = v["destinations"].as_object().cloned().unwrap_or_default();
    let t = &cfg.target;
    let mut needed: Vec<&str> = vec![&t.release, &t.baseline, &t.canary];
    for w in cfg
        .stages
        .iter()
        .map(|s| &s.weights)
        .chain([&cfg.promote, &cfg.rollback])
    {
        needed.extend(w.keys().map(String::as_str));
    }
    for name in needed {
        if !destinations.contains_key(name) {
            let known: Vec<&String> = destinations.keys().collect();
            return Err(fail(
                url,
                format!(
                    "no destination `{name}` (destinations: {})",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let endpoints = Side::BOTH
        .iter()
        .map(|side| {
            let eps = destinations[t.destination(*side)]["endpoints"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (*side, eps)
        })
        .collect();
    Ok(TargetInfo {
        url: url.to_owned(),
        split: split_of(&r["split"]),
        endpoints,
        telemetry: None,
    })
}

/// The route's split now.
pub async fn get_split(url: &str, route: &str, deadline: Instant) -> Result<Weights, TargetError> {
    let u = format!("{url}/routes/{route}/split");
    let body = http::send_retrying(&Call::get(&u), deadline)
        .await
        .map_err(|e| fail(url, e))?;
    Ok(split_of(&json(url, &body)?["split"]))
}

/// Sets the route's split and reads it back; an error unless weir then has exactly it.
pub async fn set_split(
    url: &str,
    route: &str,
    weights: &Weights,
    token: Option<&str>,
    deadline: Instant,
) -> Result<(), TargetError> {
    let u = format!("{url}/routes/{route}/split");
    let body = serde_json::to_vec(weights).unwrap_or_default();
    let call = Call {
        method: Method::PUT,
        url: &u,
        body: Some(body),
        bearer: token,
    };
    http::send_retrying(&call, deadline)
        .await
        .map_err(|e| fail(url, e))?;
    let now = get_split(url, route, deadline).await?;
    if &now != weights {
        return Err(fail(
            url,
            format!(
                "the split read back is {} instead of {}",
                show(&now),
                show(weights)
            ),
        ));
    }
    Ok(())
}

/// `release 80 / baseline 10 / canary 10`.
pub fn show(w: &Weights) -> String {
    if w.is_empty() {
        return "(no weights)".to_owned();
    }
    w.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
