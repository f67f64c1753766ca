//! A short history per destination for the dashboard (`GET /stats/series`): once a
//! second, on the admin listener's thread, a sample of what weir counts anyway (requests
//! and 5xx since the previous sample, the latency quantiles of the last few seconds from
//! the cumulative histogram `/stats/latency` serves, active connections) and of every
//! route's split. Five minutes are kept. Nothing is added to the request path: the
//! sampler only reads counters the requests already update. It samples only while
//! someone watches: from the first `GET /stats/series` (which takes a sample at once;
//! the dashboard asks every second) until [`WATCHED_FOR`] after the last; a weir nobody watches spends nothing
//! on it (a sample reads every latency bucket of every destination).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::runtime::DrainSignal;
use crate::state::Shared;
use crate::telemetry::StatusClass;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(1);
/// Samples kept: five minutes.
pub const KEEP: usize = 300;
/// The latency quantiles of a sample are over this many samples' requests, so a
/// destination with a few requests a second still gets a p99 worth reading.
pub const QUANTILE_SAMPLES: usize = 5;

/// How long after the last ask the sampler keeps going.
pub const WATCHED_FOR: Duration = Duration::from_secs(600);

/// One destination's cumulative numbers at one sample.
#[derive(Debug, Clone, Default)]
struct Reading {
    requests: u64,
    server_errors: u64,
    /// `(first µs, last µs, count)` per non-empty bucket, in order.
    latency: Vec<(u64, u64, u64)>,
}

/// The history.
#[derive(Debug, Default)]
pub struct Series {
    inner: Mutex<Inner>,
    /// When the samples were last asked for; `None`: not since the sampler stopped.
    asked: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    samples: VecDeque<Value>,
    /// The last readings, newest last, with when they were taken.
    readings: VecDeque<(Instant, HashMap<String, Reading>)>,
}

/// Quantiles (ms) of the latencies counted in `now` but not in `then`, read at the
/// bucket midpoints as weir's own quantiles are; `None` when there were none, or when
/// a count went down (the destination's statistics started again).
fn quantiles_between(
    now: &[(u64, u64, u64)],
    then: &[(u64, u64, u64)],
    qs: [f64; 3],
) -> Option<([f64; 3], u64)> {
    let mut earlier: HashMap<(u64, u64), u64> = HashMap::with_capacity(then.len());
    for (lo, hi, n) in then {
        earlier.insert((*lo, *hi), *n);
    }
    let mut diff = Vec::with_capacity(now.len());
    for (lo, hi, n) in now {
        let before = earlier.remove(&(*lo, *hi)).unwrap_or(0);
        diff.push(((*lo + *hi) as f64 / 2.0 / 1000.0, n.checked_sub(before)?));
    }
    if earlier.values().any(|n| *n > 0) {
        return None;
    }
    let total: u64 = diff.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let mut out = [0.0; 3];
    for (slot, q) in out.iter_mut().zip(qs) {
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (ms, n) in &diff {
            seen += n;
            if seen >= rank {
                *slot = (ms * 1000.0).round() / 1000.0;
                break;
            }
        }
    }
    Some((out, total))
}

impl Series {
    /// Takes one sample of `shared` now.
    pub fn sample(&self, shared: &Shared) {
        let snapshot = shared.snapshot.load();
        let taken = Instant::now();
        let mut readings = HashMap::new();
        let mut current = Vec::new();
        for d in &snapshot.destinations {
            let s = &d.stats;
            let r = Reading {
                requests: s.requests(),
                server_errors: s.responses(StatusClass::ServerError),
                latency: s.latency.cumulative(),
            };
            current.push((d.name.to_string(), s.upstream_active(), s.requests_active()));
            readings.insert(d.name.to_string(), r);
        }
        let routes: Map<String, Value> = snapshot
            .routes
            .iter()
            .map(|(_, r)| {
                let split: Map<String, Value> = r
                    .split
                    .entries()
                    .iter()
                    .map(|(d, w)| (d.name.to_string(), json!(w)))
                    .collect();
                (r.name.to_string(), Value::Object(split))
            })
            .collect();
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let previous = inner.readings.back();
        let seconds = previous.map(|(at, _)| taken.duration_since(*at).as_secs_f64());
        let oldest = inner.readings.front().map(|(_, r)| r);
        let mut destinations = Map::new();
        for (name, upstream_active, requests_active) in current {
            let now = &readings[&name];
            let before = previous.and_then(|(_, p)| p.get(&name));
            let delta = |f: fn(&Reading) -> u64| before.and_then(|b| f(now).checked_sub(f(b)));
            let window = oldest
                .and_then(|o| o.get(&name))
                .and_then(|o| quantiles_between(&now.latency, &o.latency, [0.5, 0.95, 0.99]));
            destinations.insert(
                name,
                json!({
                    "requests": delta(|r| r.requests),
                    "5xx": delta(|r| r.server_errors),
                    "p50": window.map(|(q, _)| q[0]),
                    "p95": window.map(|(q, _)| q[1]),
                    "p99": window.map(|(q, _)| q[2]),
                    "latency_samples": window.map_or(0, |(_, n)| n),
                    "upstream_active": upstream_active,
                    "requests_active": requests_active,
                }),
            );
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.samples.push_back(json!({
            "seq": seq,
            "t": t,
            "seconds": seconds.map(|s| (s * 1000.0).round() / 1000.0),
            "config_version": snapshot.version,
            "downstream_active": shared.stats.downstream_active(),
            "destinations": destinations,
            "routes": routes,
        }));
        while inner.samples.len() > KEEP {
            inner.samples.pop_front();
        }
        inner.readings.push_back((taken, readings));
        while inner.readings.len() > QUANTILE_SAMPLES {
            inner.readings.pop_front();
        }
    }

    /// The samples after `since` (all kept ones without it), oldest first, and the
    /// newest sequence number.
    /// The first ask after a quiet spell takes a sample at once, so a dashboard opened
    /// has a first point without waiting for the sampler's next tick.
    pub fn since(&self, since: Option<u64>, shared: &Shared) -> (Vec<Value>, Option<u64>) {
        let was_watched = self
            .asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Instant::now())
            .is_some();
        if !was_watched {
            self.sample(shared);
        }
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let last = inner.next_seq.checked_sub(1);
        let samples = inner
            .samples
            .iter()
            .filter(|s| since.is_none_or(|since| s["seq"].as_u64() > Some(since)))
            .cloned()
            .collect();
        (samples, last)
    }
}

impl Series {
    /// Whether someone asked lately. When they stopped, the history goes too: a
    /// sample later would compare its counts with ones minutes old.
    fn watched(&self) -> bool {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if asked.is_some_and(|at| at.elapsed() <= WATCHED_FOR) {
            return true;
        }
        if asked.take().is_some() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.samples.clear();
            inner.readings.clear();
        }
        false
    }
}

/// Samples `shared` every [`EVERY`] while it is watched, until `stop`.
pub async fn run(shared: Arc<Shared>, series: Arc<Series>, mut stop: DrainSignal) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.wait() => return,
            _ = tick.tick() => {
                if !series.watched() {
                    continue;
                }
                let started = Instant::now();
                series.sample(&shared);
                tracing::trace!(took_us = started.elapsed().as_micros() as u64, "dashboard sample");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_the_requests_between_two_readings() {
        let then = vec![(1000, 1000, 5)];
        let now = vec![(1000, 1000, 6), (2000, 2001, 3), (9000, 9007, 1)];
        let (q, n) = quantiles_between(&now, &then, [0.5, 0.95, 0.99]).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            q,
            [2.0005, 9.0035, 9.0035].map(|v: f64| (v * 1000.0).round() / 1000.0)
        );
        assert_eq!(
            quantiles_between(&then, &then, [0.5; 3]),
            None,
            "no new requests"
        );
        assert_eq!(
            quantiles_between(&then, &now, [0.5; 3]),
            None,
            "counts went down"
        );
    }
}
