//! A metric's source in `canary.yaml`: `weir` with its query, `process` with optional
//! PIDs, or `prometheus` with its URL, query, `total_query` and scopes.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ProcessQuery, Side, Source, TargetConfig, WeirQuery, err, obj, only_keys, string};
use crate::canary::judge::InputError;
use crate::canary::judge::settings::Test;

fn sides<T>(
    v: Option<&Value>,
    path: &str,
    each: impl Fn(&Value, &str) -> Result<T, InputError>,
) -> Result<Option<BTreeMap<Side, T>>, InputError> {
    let Some(v) = v else {
        return Ok(None);
    };
    let m = obj(v, path)?;
    only_keys(m, path, &["canary", "baseline"])?;
    let mut out = BTreeMap::new();
    for side in Side::BOTH {
        if let Some(x) = m.get(side.as_str()) {
            out.insert(side, each(x, &format!("{path}.{}", side.as_str()))?);
        }
    }
    Ok(Some(out))
}

pub(super) fn source(
    m: &Map<String, Value>,
    path: &str,
    target: &TargetConfig,
    test: Test,
) -> Result<Source, InputError> {
    let kind = string(m, path, "source")?.ok_or_else(|| {
        err(
            format!("{path}.source"),
            "missing: weir, process or prometheus",
        )
    })?;
    let query = string(m, path, "query")?;
    let need_query = || err(format!("{path}.query"), "missing");
    match kind.as_str() {
        "weir" => {
            let q = query.ok_or_else(need_query)?;
            let names: Vec<&str> = WeirQuery::ALL.iter().map(|(n, _)| *n).collect();
            let query = WeirQuery::ALL
                .iter()
                .find(|(n, _)| *n == q)
                .map(|(_, w)| *w)
                .ok_or_else(|| {
                    err(
                        format!("{path}.query"),
                        format!("`{q}` is not one of {}", names.join(", ")),
                    )
                })?;
            if test == Test::Proportions
                && !matches!(
                    query,
                    WeirQuery::HealthyResponses | WeirQuery::SuccessRate | WeirQuery::ErrorRate
                )
            {
                return Err(err(
                    format!("{path}.test"),
                    "the proportions test counts events out of requests: use it with healthy_responses, success_rate or error_rate",
                ));
            }
            Ok(Source::Weir(query))
        }
        "process" => {
            let q = query.ok_or_else(need_query)?;
            let query = match q.as_str() {
                "cpu" => ProcessQuery::Cpu,
                "rss" | "memory" => ProcessQuery::Rss,
                other => {
                    return Err(err(
                        format!("{path}.query"),
                        format!("`{other}` is not one of cpu, rss"),
                    ));
                }
            };
            if test == Test::Proportions {
                return Err(err(
                    format!("{path}.test"),
                    "process metrics are not counts of events: use mann-whitney",
                ));
            }
            let pids = sides(m.get("pids"), &format!("{path}.pids"), |v, at| {
                v.as_array()
                    .ok_or_else(|| err(at, "expected a list of PIDs"))?
                    .iter()
                    .map(|p| {
                        p.as_u64()
                            .and_then(|p| u32::try_from(p).ok())
                            .ok_or_else(|| err(at, "expected PIDs (whole numbers)"))
                    })
                    .collect::<Result<Vec<u32>, _>>()
            })?;
            Ok(Source::Process { query, pids })
        }
        "prometheus" => {
            let url = string(m, path, "prometheus")?
                .ok_or_else(|| {
                    err(
                        format!("{path}.prometheus"),
                        "missing: the Prometheus URL, e.g. http://prometheus.monitoring:9090",
                    )
                })?
                .trim_end_matches('/')
                .to_owned();
            if !url.starts_with("http://") {
                return Err(err(format!("{path}.prometheus"), "expected an http:// URL"));
            }
            let query = query.ok_or_else(need_query)?;
            let total_query = string(m, path, "total_query")?;
            if test == Test::Proportions && total_query.is_none() {
                return Err(err(
                    format!("{path}.total_query"),
                    "the proportions test needs `total_query` (the trials per interval; `query` counts the successes)",
                ));
            }
            let mut scopes = sides(m.get("scopes"), &format!("{path}.scopes"), |v, at| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err(at, "expected a string"))
            })?
            .unwrap_or_default();
            for side in Side::BOTH {
                scopes
                    .entry(side)
                    .or_insert_with(|| target.destination(side).to_owned());
            }
            Ok(Source::Prometheus {
                url,
                query,
                total_query,
                scopes,
            })
        }
        other => Err(err(
            format!("{path}.source"),
            format!("`{other}` is not one of weir, process, prometheus"),
        )),
    }
}

pub(super) const METRIC_KEYS: &[&str] = &[
    "name",
    "group",
    "source",
    "query",
    "pids",
    "prometheus",
    "total_query",
    "scopes",
];
