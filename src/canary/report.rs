//! `report.html`: a canary run's report for people, from its `report.json`.
//!
//! One self-contained file: inline SVG plots drawn here, an embedded stylesheet with a
//! print style, system fonts, no script and nothing fetched, so it opens from disk in any
//! browser and can be attached to a ticket. Top to bottom: the verdict and the sentence
//! that says what decided it, the stages over time with their scores, the groups, and
//! per metric the time series, histograms and beeswarm of canary against baseline beside
//! the numbers the judge used. `weir canary` rewrites it beside `report.json` after
//! every interval ([`write`]); `weir report` renders one from any `report.json`
//! ([`render_file`]).

mod model;
mod plots;
mod sections;
mod svg;
mod verdict;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use model::Unit;

const STYLE: &str = include_str!("report/style.css");

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: not a `weir canary` report (no `weir_canary` and `started`)")]
    NotAReport { path: PathBuf },
    #[error("{path}: cannot write it: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A number as `weir judge` prints it, without trailing zeros.
fn num(v: f64) -> String {
    let s = crate::canary::judge::short(v);
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        None if s.contains('.') => s.trim_end_matches('0').trim_end_matches('.').to_owned(),
        _ => s,
    }
}

/// The page for a report; `None` if `doc` is not a `weir canary` report.
pub fn render(doc: &Map<String, Value>) -> Option<String> {
    let run = model::Run::read(doc)?;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!(
        "weir canary: {} ({})",
        run.route,
        run.deciding()
            .map_or(run.result.as_str(), |j| j.verdict.as_str())
    );
    out.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    // Nothing may be fetched: the page is whole by itself.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">");
    if run.running() {
        // The file is rewritten at every interval while the run goes on.
        let secs = run.interval.map_or(5, |i| i.as_secs().clamp(5, 60));
        out.push_str(&format!("<meta http-equiv=\"refresh\" content=\"{secs}\">"));
    }
    out.push_str(&format!("<title>{}</title><style>", svg::esc(&title)));
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>");
    verdict::verdict(&run, &mut out);
    out.push_str(r#"<p class="legend"><i class="key canary"></i>canary <i class="key baseline"></i>baseline <span class="legend-note">in every plot; shaded: warm-up (grey) and the points the deciding judgement saw (tinted); solid lines: stages; dashed: other weight changes</span></p>"#);
    sections::stages(&run, &mut out);
    sections::groups(&run, &mut out);
    out.push_str(r#"<section id="metrics"><h2>Metrics</h2>"#);
    for m in &run.metrics {
        sections::metric(&run, m, &mut out);
    }
    out.push_str("</section>");
    sections::record(&run, &mut out);
    out.push_str(&format!(
        "<footer>weir {} · report.json beside this file holds every point and judgement</footer></main></body></html>\n",
        svg::esc(doc.get("weir_canary").and_then(Value::as_str).unwrap_or("")),
    ));
    Some(out)
}

/// Writes `body` to `path` atomically: to a temporary file beside it, renamed over it.
pub fn write(path: &Path, body: &str) -> std::io::Result<()> {
    let name = path.file_name().map_or_else(
        || "report.html".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// `weir report`: renders `json` to `out` (default: `report.html` beside it). Returns
/// where it wrote.
pub fn render_file(json: &Path, out: Option<&Path>) -> Result<PathBuf, RenderError> {
    let text = std::fs::read_to_string(json).map_err(|source| RenderError::Read {
        path: json.to_owned(),
        source,
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| RenderError::Json {
        path: json.to_owned(),
        message: e.to_string(),
    })?;
    let not_a_report = || RenderError::NotAReport {
        path: json.to_owned(),
    };
    let html = doc.as_object().and_then(render).ok_or_else(not_a_report)?;
    let out = out.map_or_else(|| json.with_file_name("report.html"), Path::to_owned);
    write(&out, &html).map_err(|source| RenderError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(num(38.4), "38.4");
        assert_eq!(num(60.0), "60");
        assert_eq!(num(13_193_215.99), "1.32e7");
        assert_eq!(num(0.000_182_67), "1.83e-4");
        assert_eq!(num(f64::NAN), "-");
    }

    #[test]
    fn anything_else_is_not_a_report() {
        let doc = serde_json::json!({ "score": 60 });
        assert!(render(doc.as_object().unwrap()).is_none());
    }
}
