//! Validation of the keys that bound what one client may hold: timeouts, connection
//! and stream limits, and the upgrade protocols that may be tunnelled.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::super::raw::{RawConfig, RawConnectionPool};
use super::super::{Issue, Limits, PoolLimits, duration};

/// Envoy's edge best practices (request_headers_timeout, stream_idle_timeout,
/// request_timeout, max_concurrent_streams).
const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

pub(super) fn limits(raw: &RawConfig, issues: &mut Vec<Issue>) -> Limits {
    let request_header_timeout = match timeout(
        raw.request_header_timeout.as_ref(),
        Some(DEFAULT_REQUEST_HEADER_TIMEOUT),
        issues,
    ) {
        Some(t) => t,
        None => {
            let at = raw.request_header_timeout.as_ref().map(|s| s.referenced);
            issues.push(at.map_or_else(
                || Issue::top("`request_header_timeout` cannot be off"),
                |at| {
                    Issue::at(
                        at,
                        "`request_header_timeout` cannot be 0: a client that never finishes its head would hold its connection",
                    )
                },
            ));
            DEFAULT_REQUEST_HEADER_TIMEOUT
        }
    };
    let max_connections = raw.max_connections.as_ref().and_then(|m| {
        if m.value == 0 {
            issues.push(Issue::at(
                m.referenced,
                "`max_connections` must be at least 1 (leave it out to derive it from the file-descriptor limit)",
            ));
            None
        } else {
            Some(m.value)
        }
    });
    let streams = match &raw.http2_max_concurrent_streams {
        None => DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        Some(s) if s.value == 0 || s.value > 2_147_483_647 => {
            issues.push(Issue::at(
                s.referenced,
                "`http2_max_concurrent_streams` must be between 1 and 2147483647",
            ));
            DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS
        }
        Some(s) => s.value,
    };
    Limits {
        max_connections,
        request_header_timeout,
        request_timeout: timeout(
            raw.request_timeout.as_ref(),
            Some(DEFAULT_REQUEST_TIMEOUT),
            issues,
        ),
        stream_idle_timeout: timeout(
            raw.stream_idle_timeout.as_ref(),
            Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            issues,
        ),
        http2_max_concurrent_streams: streams,
    }
}

/// A timeout that `0s` turns off.
fn timeout(
    value: Option<&Spanned<String>>,
    default: Option<Duration>,
    issues: &mut Vec<Issue>,
) -> Option<Duration> {
    let Some(v) = value else { return default };
    match duration::parse(&v.value) {
        Ok(Duration::ZERO) => None,
        Ok(d) => Some(d),
        Err(why) => {
            issues.push(Issue::at(v.referenced, why));
            default
        }
    }
}

/// `upgrades`: the protocols an HTTP/1.1 `Upgrade` may switch to (tunnelled past
/// weir); `websocket` by default. Anything else (`h2c` above all) is not an upgrade.
pub(super) fn upgrades(raw: &RawConfig, issues: &mut Vec<Issue>) -> Vec<String> {
    let Some(list) = &raw.upgrades else {
        return vec!["websocket".to_owned()];
    };
    let mut out = Vec::new();
    for p in &list.value {
        let name = p.value.trim().to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
        {
            issues.push(Issue::at(
                p.referenced,
                format!(
                    "`{}` is not an upgrade protocol token (for example `websocket`)",
                    p.value
                ),
            ));
        } else if name == "h2c" {
            issues.push(Issue::at(
                p.referenced,
                "`h2c` cannot be tunnelled: HTTP/2 reaches weir with prior knowledge, and a tunnel would pass it by routing, the split and the access log",
            ));
        } else if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A destination's `connection_pool`.
pub(super) fn pool(
    destination: &str,
    raw: Option<&Spanned<RawConnectionPool>>,
    issues: &mut Vec<Issue>,
) -> PoolLimits {
    let mut limits = PoolLimits::default();
    let Some(raw) = raw else { return limits };
    let mut positive = |key: &str, value: &Option<Spanned<usize>>, out: &mut usize| {
        if let Some(v) = value {
            if v.value == 0 {
                issues.push(Issue::at(
                    v.referenced,
                    format!(
                        "destination `{destination}`: `connection_pool.{key}` must be at least 1"
                    ),
                ));
            } else {
                *out = v.value;
            }
        }
    };
    positive(
        "max_requests",
        &raw.value.max_requests,
        &mut limits.max_requests,
    );
    positive(
        "max_pending_requests",
        &raw.value.max_pending_requests,
        &mut limits.max_pending_requests,
    );
    limits
}
