//! Validation of `routes`: names, match conditions, splits and timeouts.

use http::header::HeaderName;
use serde_saphyr::Spanned;

use super::super::raw::{Entries, RawMatch, RawRoute, RawStringMatch, RawWeight};
use super::super::{DestinationConfig, Issue, RouteConfig, duration};
use super::valid_name;
use crate::routing::{RequestMatch, StringMatch};

pub(super) fn routes(
    raw: &[Spanned<RawRoute>],
    destinations: &[DestinationConfig],
    issues: &mut Vec<Issue>,
) -> Vec<RouteConfig> {
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (i, route) in raw.iter().enumerate() {
        let before = issues.len();
        let name = match &route.value.name {
            None => {
                issues.push(Issue::at(
                    route.referenced,
                    format!(
                        "route {} has no `name`: every route needs a unique name (used in logs, metrics and the admin API)",
                        i + 1
                    ),
                ));
                ""
            }
            Some(n) if !valid_name(&n.value) => {
                issues.push(Issue::at(
                    n.referenced,
                    format!(
                        "route name `{}` may only use letters, digits, '.', '_' and '-'",
                        n.value
                    ),
                ));
                ""
            }
            Some(n) if names.contains(&n.value.as_str()) => {
                issues.push(Issue::at(
                    n.referenced,
                    format!(
                        "duplicate route name `{}`: route names must be unique",
                        n.value
                    ),
                ));
                ""
            }
            Some(n) => {
                names.push(&n.value);
                &n.value
            }
        };
        let matcher = route
            .value
            .matcher
            .as_ref()
            .map(|m| request_match(m, issues))
            .unwrap_or_default();
        let split = match &route.value.split {
            None => {
                issues.push(Issue::at(
                    route.referenced,
                    format!("route `{name}` has no `split`: give at least one destination a weight, e.g. split: {{ release: 100 }}"),
                ));
                Vec::new()
            }
            Some(split) => route_split(name, split, destinations, issues),
        };
        let timeout = route
            .value
            .timeout
            .as_ref()
            .and_then(|t| match duration::parse(&t.value) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(why) => {
                    issues.push(Issue::at(t.referenced, why));
                    None
                }
            });
        if issues.len() == before {
            out.push(RouteConfig {
                name: name.to_owned(),
                matcher,
                split,
                timeout,
            });
        }
    }
    out
}

fn route_split(
    route: &str,
    split: &Spanned<Entries<Spanned<RawWeight>>>,
    destinations: &[DestinationConfig],
    issues: &mut Vec<Issue>,
) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    let mut ok = true;
    for (dest, weight) in &split.value.0 {
        let weight = match &weight.value.0 {
            Ok(w) => *w,
            Err(why) => {
                ok = false;
                issues.push(Issue::at(weight.referenced, why.clone()));
                continue;
            }
        };
        match destinations.iter().position(|d| d.name == dest.value) {
            Some(index) => out.push((index, weight)),
            None => {
                ok = false;
                issues.push(Issue::at(
                    dest.referenced,
                    unknown_destination(&dest.value, destinations),
                ));
            }
        }
    }
    if ok && let Err(why) = check_weights(&out) {
        issues.push(Issue::at(
            split.referenced,
            format!("route `{route}`: {why}"),
        ));
    }
    out
}

fn unknown_destination(name: &str, destinations: &[DestinationConfig]) -> String {
    let known: Vec<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
    format!(
        "split names unknown destination `{name}`: known destinations are {}",
        if known.is_empty() {
            "(none)".to_owned()
        } else {
            known.join(", ")
        }
    )
}

fn check_weights(split: &[(usize, u32)]) -> Result<(), String> {
    if split.is_empty() {
        return Err("the split is empty: give at least one destination a weight".into());
    }
    if split.iter().all(|&(_, w)| w == 0) {
        return Err("all weights are zero: at least one destination needs a weight above 0".into());
    }
    Ok(())
}

/// Validates a split given as `(destination, weight)` pairs, as the admin API receives it.
pub fn split_from_weights(
    weights: &[(String, u32)],
    destinations: &[DestinationConfig],
) -> Result<Vec<(usize, u32)>, String> {
    let mut out = Vec::with_capacity(weights.len());
    for (name, weight) in weights {
        let index = destinations
            .iter()
            .position(|d| &d.name == name)
            .ok_or_else(|| unknown_destination(name, destinations))?;
        if out.iter().any(|&(i, _)| i == index) {
            return Err(format!("destination `{name}` is named twice"));
        }
        out.push((index, *weight));
    }
    check_weights(&out)?;
    Ok(out)
}

fn request_match(raw: &Spanned<RawMatch>, issues: &mut Vec<Issue>) -> RequestMatch {
    let m = &raw.value;
    let mut out = RequestMatch {
        authority: m.authority.as_ref().and_then(|s| string_match(s, issues)),
        path: m.path.as_ref().and_then(|s| string_match(s, issues)),
        method: m.method.as_ref().and_then(|s| string_match(s, issues)),
        ..Default::default()
    };
    for (name, value) in m.headers.iter().flat_map(|h| &h.0) {
        if name.value.starts_with(':') {
            issues.push(Issue::at(
                name.referenced,
                format!(
                    "`{}` is a pseudo-header: use the `authority`, `path` or `method` condition",
                    name.value
                ),
            ));
            continue;
        }
        match HeaderName::from_bytes(name.value.to_ascii_lowercase().as_bytes()) {
            Ok(header) => {
                if let Some(sm) = string_match(value, issues) {
                    out.headers.push((header, sm));
                }
            }
            Err(_) => issues.push(Issue::at(
                name.referenced,
                format!("`{}` is not a valid header name", name.value),
            )),
        }
    }
    for (key, value) in m.query.iter().flat_map(|q| &q.0) {
        if let Some(sm) = string_match(value, issues) {
            out.query.push((key.value.clone(), sm));
        }
    }
    out
}

fn string_match(raw: &Spanned<RawStringMatch>, issues: &mut Vec<Issue>) -> Option<StringMatch> {
    match &raw.value {
        RawStringMatch::Exact(s) => Some(StringMatch::Exact(s.clone())),
        RawStringMatch::Prefix(s) => Some(StringMatch::Prefix(s.clone())),
        RawStringMatch::Regex(pattern) => match StringMatch::regex(pattern) {
            Ok(m) => Some(m),
            Err(e) => {
                let text = e.to_string();
                let last = text.lines().last().unwrap_or("").trim();
                let detail = last.strip_prefix("error: ").unwrap_or(last).to_owned();
                issues.push(Issue::at(
                    raw.referenced,
                    format!("bad regex `{pattern}`: {detail}"),
                ));
                None
            }
        },
    }
}
