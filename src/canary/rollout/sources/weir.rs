//! The `weir` source: every target's `GET /stats/latency` (cumulative counts and latency
//! histogram per destination), diffed against the previous reading of the same target,
//! and the diffs added over targets. A quantile is then taken over exactly the requests
//! of the interval, on every weir together, which no per-pod quantile can give.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

use super::super::config::{Side, WeirQuery};
use super::super::http::{self, Call};
use crate::canary::judge::Counts;

/// One destination's cumulative numbers at one reading.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cumulative {
    requests: u64,
    server_errors: u64,
    /// `(first µs, last µs)` -> count.
    buckets: BTreeMap<(u64, u64), u64>,
}

impl Cumulative {
    fn parse(v: &Value) -> Cumulative {
        let mut buckets = BTreeMap::new();
        for b in v["latency_us"].as_array().into_iter().flatten() {
            if let (Some(lo), Some(hi), Some(n)) = (b[0].as_u64(), b[1].as_u64(), b[2].as_u64()) {
                buckets.insert((lo, hi), n);
            }
        }
        Cumulative {
            requests: v["requests"].as_u64().unwrap_or(0),
            server_errors: v["responses"]["5xx"].as_u64().unwrap_or(0),
            buckets,
        }
    }

    /// `self - earlier`, or `None` if a count went down (the destination's statistics
    /// started again, as a reload that changes its labels does).
    fn since(&self, earlier: &Cumulative) -> Option<Cumulative> {
        let requests = self.requests.checked_sub(earlier.requests)?;
        let server_errors = self.server_errors.checked_sub(earlier.server_errors)?;
        let mut buckets = BTreeMap::new();
        for (k, before) in &earlier.buckets {
            if self.buckets.get(k).copied().unwrap_or(0) < *before {
                return None;
            }
        }
        for (k, now) in &self.buckets {
            let d = now - earlier.buckets.get(k).copied().unwrap_or(0);
            if d > 0 {
                buckets.insert(*k, d);
            }
        }
        Some(Cumulative {
            requests,
            server_errors,
            buckets,
        })
    }

    fn add(&mut self, other: &Cumulative) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        for (k, n) in &other.buckets {
            *self.buckets.entry(*k).or_default() += n;
        }
    }

    /// The smallest bucket with at least `q` of the latencies at or below it, read at
    /// its midpoint, in milliseconds (as weir's own quantiles).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for ((lo, hi), n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return (*lo + *hi) as f64 / 2.0 / 1000.0;
            }
        }
        f64::NAN
    }
}

/// One target's last reading.
#[derive(Debug, Clone)]
struct Reading {
    instance: String,
    destinations: HashMap<String, Cumulative>,
}

/// One interval, summed over the targets that gave a diff.
#[derive(Debug, Clone, Default)]
pub struct WeirInterval {
    sides: BTreeMap<Side, Cumulative>,
    /// Targets whose diff is in the sums.
    pub contributors: usize,
    /// Why some targets are not in the sums.
    pub notes: Vec<String>,
    /// Targets that did not answer (for the lost-target rule).
    pub failed: Vec<String>,
}

impl WeirInterval {
    /// The point for `query` on `side`; NaN when nothing was measured.
    pub fn value(&self, query: WeirQuery, side: Side) -> f64 {
        let Some(c) = self.sides.get(&side).filter(|_| self.contributors > 0) else {
            return f64::NAN;
        };
        let rate = |n: u64| {
            if c.requests == 0 {
                f64::NAN
            } else {
                n as f64 / c.requests as f64
            }
        };
        match query {
            WeirQuery::Requests => c.requests as f64,
            WeirQuery::HealthyResponses => (c.requests - c.server_errors) as f64,
            WeirQuery::SuccessRate => rate(c.requests - c.server_errors),
            WeirQuery::ErrorRate => rate(c.server_errors),
            WeirQuery::LatencyP50 => c.quantile_ms(0.5),
            WeirQuery::LatencyP95 => c.quantile_ms(0.95),
            WeirQuery::LatencyP99 => c.quantile_ms(0.99),
        }
    }

    /// Events and requests, for the proportions test: healthy (non-5xx) responses for
    /// `healthy_responses` and `success_rate`, 5xx for `error_rate`.
    pub fn counts(&self, query: WeirQuery, side: Side) -> Option<Counts> {
        let c = self.sides.get(&side).filter(|_| self.contributors > 0)?;
        let successes = match query {
            WeirQuery::ErrorRate => c.server_errors,
            _ => c.requests - c.server_errors,
        };
        Some(Counts {
            successes,
            total: c.requests,
        })
    }
}

/// Remembers each target's previous reading.
#[derive(Debug, Default)]
pub struct WeirSource {
    previous: HashMap<String, Reading>,
}

impl WeirSource {
    /// Forgets every reading: the next [`WeirSource::collect`] only takes new ones (at the
    /// start of a stage's analysis, so no point spans a weight change or a warm-up).
    pub fn reset(&mut self) {
        self.previous.clear();
    }

    /// Reads every target and returns the interval since the previous readings.
    pub async fn collect(
        &mut self,
        targets: &[String],
        names: &BTreeMap<Side, String>,
        deadline: Instant,
    ) -> WeirInterval {
        let mut tasks = tokio::task::JoinSet::new();
        for t in targets {
            let url = format!("{t}/stats/latency");
            let t = t.clone();
            tasks.spawn(async move {
                let r = http::send_retrying(&Call::get(&url), deadline).await;
                (t, r)
            });
        }
        let mut out = WeirInterval::default();
        let mut seen = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((target, result)) = joined else {
                continue;
            };
            seen.push(target.clone());
            let body = match result {
                Ok(b) => b,
                Err(e) => {
                    out.notes.push(e.to_string());
                    out.failed.push(target.clone());
                    self.previous.remove(&target);
                    continue;
                }
            };
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                out.notes
                    .push(format!("{target}: /stats/latency is not JSON"));
                out.failed.push(target.clone());
                self.previous.remove(&target);
                continue;
            };
            let now = Reading {
                instance: v["instance"].as_str().unwrap_or("").to_owned(),
                destinations: v["destinations"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, d)| (k.clone(), Cumulative::parse(d)))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let previous = self.previous.insert(target.clone(), now.clone());
            let Some(previous) = previous else {
                continue; // a first reading: the next interval diffs against it
            };
            if previous.instance != now.instance {
                out.notes.push(format!(
                    "{target}: restarted; its next interval counts again"
                ));
                continue;
            }
            let mut diffs = BTreeMap::new();
            for (side, name) in names {
                let empty = Cumulative::default();
                let before = previous.destinations.get(name).unwrap_or(&empty);
                let after = now.destinations.get(name).unwrap_or(&empty);
                match after.since(before) {
                    Some(d) => {
                        diffs.insert(*side, d);
                    }
                    None => break,
                }
            }
            if diffs.len() != names.len() {
                out.notes.push(format!(
                    "{target}: its counts went back (statistics restarted); skipped once"
                ));
                continue;
            }
            for (side, d) in diffs {
                out.sides.entry(side).or_default().add(&d);
            }
            out.contributors += 1;
        }
        // Targets no longer named (a pod gone from the Service) are forgotten.
        self.previous.retain(|t, _| seen.contains(t));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cumulative(requests: u64, errors: u64, buckets: &[((u64, u64), u64)]) -> Cumulative {
        Cumulative {
            requests,
            server_errors: errors,
            buckets: buckets.iter().copied().collect(),
        }
    }

    #[test]
    fn a_diff_is_exactly_the_interval() {
        let before = cumulative(10, 1, &[((100, 100), 5), ((2000, 2015), 5)]);
        let after = cumulative(
            14,
            1,
            &[((100, 100), 5), ((2000, 2015), 8), ((9000, 9063), 1)],
        );
        let d = after.since(&before).unwrap();
        assert_eq!(d.requests, 4);
        assert_eq!(d.buckets.len(), 2);
        // Of the interval's 4 latencies, three are ~2 ms and one ~9 ms: p50 is ~2 ms.
        assert!((d.quantile_ms(0.5) - 2.0075).abs() < 1e-9);
        assert!((d.quantile_ms(0.99) - 9.0315).abs() < 1e-9);
        assert!(
            before.since(&after).is_none(),
            "counts going back are a restart"
        );
    }

    #[test]
    fn diffs_add_over_targets() {
        let mut sum = Cumulative::default();
        sum.add(&cumulative(3, 1, &[((100, 100), 3)]));
        sum.add(&cumulative(1, 0, &[((9000, 9063), 1)]));
        let mut i = WeirInterval {
            contributors: 2,
            ..WeirInterval::default()
        };
        i.sides.insert(Side::Canary, sum);
        assert_eq!(i.value(WeirQuery::Requests, Side::Canary), 4.0);
        assert_eq!(i.value(WeirQuery::HealthyResponses, Side::Canary), 3.0);
        assert_eq!(i.value(WeirQuery::ErrorRate, Side::Canary), 0.25);
        assert_eq!(i.value(WeirQuery::LatencyP50, Side::Canary), 0.1);
        assert!(i.value(WeirQuery::Requests, Side::Baseline).is_nan());
        assert_eq!(
            i.counts(WeirQuery::SuccessRate, Side::Canary),
            Some(Counts {
                successes: 3,
                total: 4
            })
        );
    }
}
