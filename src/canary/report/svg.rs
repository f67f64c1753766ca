//! The report's drawing kit: scales, axis ticks at round numbers, axes with their units,
//! and escaping. The plots ([`super::plots`]) are written with it as inline SVG text;
//! colours come from the stylesheet's classes (`canary`, `baseline`, ...), so every plot
//! uses the same two colours and the print style can change them in one place.

use std::fmt::Write;

/// Escapes text for HTML and SVG, in content and in quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A coordinate with at most one decimal (`12`, `12.5`): enough for a screen, and small.
pub fn c(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// A linear map from a domain onto a range of pixels.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    pub fn new((d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> Scale {
        Scale { d0, d1, r0, r1 }
    }

    pub fn at(&self, v: f64) -> f64 {
        if self.d1 == self.d0 {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }

    pub fn domain(&self) -> (f64, f64) {
        (self.d0, self.d1)
    }
}

/// A tick step of 1, 2 or 5 x 10^k giving about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    let raw = span / n.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `[lo, hi]` widened to round numbers (and to a little width when it has none), and
/// the tick values in it.
pub fn nice(lo: f64, hi: f64, n: f64) -> ((f64, f64), Vec<f64>) {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.05 };
        lo -= pad;
        hi += pad;
    }
    let s = step(hi - lo, n);
    let (lo, hi) = ((lo / s).floor() * s, (hi / s).ceil() * s);
    let count = ((hi - lo) / s).round() as usize;
    let ticks = (0..=count).map(|i| lo + i as f64 * s).collect();
    ((lo, hi), ticks)
}

/// A tick label with as many decimals as the step needs.
pub fn tick_label(v: f64, ticks: &[f64]) -> String {
    let s = match ticks {
        [a, b, ..] => (b - a).abs(),
        _ => 1.0,
    };
    let decimals = if s >= 1.0 {
        0
    } else {
        (-s.log10().floor()) as usize
    };
    let text = format!("{v:.decimals$}");
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_owned()
    } else {
        text
    }
}

/// `m:ss` (or `h:mm:ss`) for seconds since the run started.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Time ticks at round seconds or minutes, about six over `[lo, hi]` seconds.
pub fn time_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    let span = (hi - lo).max(1.0);
    let s = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 6.0)
        .unwrap_or(14_400.0);
    let first = (lo / s).ceil() * s;
    (0..)
        .map(|i| first + f64::from(i) * s)
        .take_while(|t| *t <= hi + 1e-9)
        .collect()
}

/// A plot: the picture's size, the plotting area inside its margins, and the scales.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub w: f64,
    pub h: f64,
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
    pub x: Scale,
    pub y: Scale,
}

/// Margins: room for the y labels and title on the left, the x labels and title below.
pub const MARGINS: (f64, f64, f64, f64) = (58.0, 14.0, 18.0, 40.0);

impl Frame {
    pub fn new(w: f64, h: f64, xdom: (f64, f64), ydom: (f64, f64)) -> Frame {
        Frame::with_margins(w, h, MARGINS, xdom, ydom)
    }

    /// A frame with its own margins `(left, top, right, bottom)`.
    pub fn with_margins(
        w: f64,
        h: f64,
        (l, t, r, b): (f64, f64, f64, f64),
        xdom: (f64, f64),
        ydom: (f64, f64),
    ) -> Frame {
        Frame {
            w,
            h,
            left: l,
            top: t,
            right: w - r,
            bottom: h - b,
            x: Scale::new(xdom, (l, w - r)),
            y: Scale::new(ydom, (h - b, t)),
        }
    }

    /// Opens the `<svg>`, with a text equivalent for screen readers.
    pub fn open(&self, out: &mut String, class: &str, label: &str) {
        let _ = write!(
            out,
            r#"<svg class="plot {class}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}"><title>{}</title>"#,
            c(self.w),
            c(self.h),
            c(self.w),
            c(self.h),
            esc(label),
            esc(label)
        );
    }

    /// Horizontal grid lines with their labels, and the axis title (with its unit).
    pub fn y_axis(&self, out: &mut String, ticks: &[f64], title: &str) {
        for t in ticks {
            let y = c(self.y.at(*t));
            let _ = write!(
                out,
                r#"<line class="grid" x1="{}" x2="{}" y1="{y}" y2="{y}"/><text class="tick" x="{}" y="{y}" dy="0.32em" text-anchor="end">{}</text>"#,
                c(self.left),
                c(self.right),
                c(self.left - 5.0),
                esc(&tick_label(*t, ticks))
            );
        }
        let mid = c((self.top + self.bottom) / 2.0);
        let _ = write!(
            out,
            r#"<text class="axis-title" transform="translate(13 {mid}) rotate(-90)" text-anchor="middle">{}</text>"#,
            esc(title)
        );
    }

    /// Tick marks and labels under the plot, and the axis title.
    pub fn x_axis(&self, out: &mut String, ticks: &[(f64, String)], title: &str) {
        let b = c(self.bottom);
        let _ = write!(
            out,
            r#"<line class="axis" x1="{}" x2="{}" y1="{b}" y2="{b}"/>"#,
            c(self.left),
            c(self.right)
        );
        for (v, label) in ticks {
            let x = c(self.x.at(*v));
            let _ = write!(
                out,
                r#"<line class="axis" x1="{x}" x2="{x}" y1="{b}" y2="{}"/><text class="tick" x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                c(self.bottom + 4.0),
                c(self.bottom + 15.0),
                esc(label)
            );
        }
        let _ = write!(
            out,
            r#"<text class="axis-title" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            c((self.left + self.right) / 2.0),
            c(self.h - 4.0),
            esc(title)
        );
    }

    /// A path through `points`, broken where a point is missing.
    pub fn path(&self, points: impl Iterator<Item = (f64, Option<f64>)>) -> String {
        let mut d = String::new();
        let mut pen_down = false;
        for (x, y) in points {
            match y {
                Some(y) if y.is_finite() => {
                    let _ = write!(
                        d,
                        "{}{} {}",
                        if pen_down { "L" } else { "M" },
                        c(self.x.at(x)),
                        c(self.y.at(y))
                    );
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ranges_and_labels() {
        let ((lo, hi), ticks) = nice(0.083, 0.142, 5.0);
        assert!(lo <= 0.083 && hi >= 0.142, "{lo} {hi}");
        assert_eq!(tick_label(ticks[1], &ticks), "0.09");
        let ((lo, hi), _) = nice(5.0, 5.0, 5.0);
        assert!(lo < 5.0 && hi > 5.0);
        assert_eq!(tick_label(-0.0001, &[0.0, 1.0]), "0");
    }

    #[test]
    fn clocks_and_time_ticks() {
        assert_eq!(clock(75.4), "1:15");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(time_ticks(0.0, 1800.0).len(), 7);
        assert_eq!(time_ticks(3.0, 16.0), vec![5.0, 10.0, 15.0]);
    }

    #[test]
    fn paths_break_at_missing_points() {
        let f = Frame::new(100.0, 100.0, (0.0, 1.0), (0.0, 1.0));
        let d = f.path([(0.0, Some(0.0)), (0.5, None), (1.0, Some(1.0))].into_iter());
        assert_eq!(d.matches('M').count(), 2);
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
