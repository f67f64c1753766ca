//! The plain demo's live table and its closing summary.
//!
//! On a terminal the table is drawn again in place once a second (the cursor goes back
//! up over the last drawing, which is then cleared); elsewhere (a pipe, a CI log) each
//! second's table is printed after the last, so nothing in the output is a control
//! sequence.

use std::collections::HashMap;
use std::fmt::Write;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::load::LoadStats;
use crate::server::Server;
use crate::telemetry::StatusClass;

/// The once-a-second table; remembers the last counts to show rates.
#[derive(Debug)]
pub struct Table {
    last: HashMap<String, (u64, u64)>,
    last_at: Option<Instant>,
    /// Redraw in place (a terminal) or print one table after another.
    in_place: bool,
    /// Lines of the drawing on screen, to go back over.
    drawn: usize,
}

impl Table {
    pub fn new(in_place: bool) -> Table {
        Table {
            last: HashMap::new(),
            last_at: None,
            in_place,
            drawn: 0,
        }
    }

    /// Draws the table of this second.
    pub fn draw(
        &mut self,
        server: &Server,
        elapsed: Duration,
        end: Option<Duration>,
        load: &LoadStats,
    ) {
        let text = self.render(server, elapsed, end, load);
        let mut out = std::io::stdout().lock();
        if self.in_place {
            if self.drawn > 0 {
                // Up over the last drawing, and clear from there down.
                let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
            }
            self.drawn = text.lines().count();
        } else {
            let _ = writeln!(out);
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn render(
        &mut self,
        server: &Server,
        elapsed: Duration,
        end: Option<Duration>,
        load: &LoadStats,
    ) -> String {
        let snapshot = server.shared().snapshot.load();
        let now = Instant::now();
        let secs = self
            .last_at
            .map_or(1.0, |t| now.duration_since(t).as_secs_f64().max(0.001));
        self.last_at = Some(now);
        let total: u64 = snapshot
            .destinations
            .iter()
            .map(|d| d.stats.requests())
            .sum();
        let mut out = String::new();
        let clock = match end {
            Some(end) => format!("t={:>3}s of {}s", elapsed.as_secs(), end.as_secs()),
            None => format!("t={:>4}s (Ctrl-C stops)", elapsed.as_secs()),
        };
        let _ = writeln!(
            out,
            "{clock}  client sent {} ({} failed or not 2xx); downstream connections {}",
            load.sent.load(Ordering::Relaxed),
            load.failed.load(Ordering::Relaxed),
            server.shared().stats.downstream_active()
        );
        let _ = writeln!(
            out,
            "  {:<11} {:>9} {:>7} {:>8} {:>7} {:>9} {:>6}",
            "destination", "requests", "share", "req/s", "5xx", "p95 ms", "conns"
        );
        for d in &snapshot.destinations {
            let s = &d.stats;
            let (n, errors) = (s.requests(), s.responses(StatusClass::ServerError));
            let (last_n, last_e) = self
                .last
                .insert(d.name.to_string(), (n, errors))
                .unwrap_or((0, 0));
            let (dn, de) = (n.saturating_sub(last_n), errors.saturating_sub(last_e));
            let ([p95], _) = s.latency.quantiles([0.95]);
            let _ = writeln!(
                out,
                "  {:<11} {:>9} {:>6.1}% {:>8.1} {:>6.1}% {:>9} {:>6}",
                d.name,
                n,
                percent(n, total),
                dn as f64 / secs,
                percent(de, dn),
                p95.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                s.upstream_active()
            );
        }
        out
    }
}

/// What the demo prints when it ends: the whole run per destination, against the split
/// it was given.
pub fn summary(server: &Server, elapsed: Duration, load: &LoadStats, window: Duration) -> String {
    let snapshot = server.shared().snapshot.load();
    let total: u64 = snapshot
        .destinations
        .iter()
        .map(|d| d.stats.requests())
        .sum();
    let weights: HashMap<&str, u32> = snapshot
        .routes
        .iter()
        .find(|(_, r)| &*r.name == "primary")
        .map(|(_, r)| {
            r.split
                .entries()
                .iter()
                .map(|(d, w)| (&*d.name, *w))
                .collect()
        })
        .unwrap_or_default();
    let weight_sum: u32 = weights.values().sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "weir demo: {} s, client sent {} requests ({} failed or not 2xx). Per destination:",
        elapsed.as_secs(),
        load.sent.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "  {:<11} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "destination", "requests", "share", "weight", "5xx", "p50 ms", "p95 ms", "p99 ms"
    );
    for d in &snapshot.destinations {
        let s = &d.stats;
        let n = s.requests();
        let weight = weights.get(&*d.name).copied().unwrap_or(0);
        let ([p50, p95, p99], _) = s.latency.quantiles([0.5, 0.95, 0.99]);
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "  {:<11} {:>9} {:>6.1}% {:>6.1}% {:>6.1}% {:>8} {:>8} {:>8}",
            d.name,
            n,
            percent(n, total),
            percent(u64::from(weight), u64::from(weight_sum)),
            percent(s.responses(StatusClass::ServerError), n),
            ms(p50),
            ms(p95),
            ms(p99),
        );
    }
    let _ = writeln!(
        out,
        "  (share: of all requests; weight: route `primary`'s split; 5xx: of the destination's requests; latency quantiles: the last {} s)",
        window.as_secs()
    );
    out
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
