//! SVG charts, written directly (no plotting library: a horizontal grouped bar chart is a few rectangles
//! and labels, and this keeps the build small): one group of bars per scenario, one bar per allocator,
//! each with a whisker over the range of its repetitions. The axis is logarithmic when the values
//! span more than a decade or the bars start at a ratio of 1, else linear from 0; either way its ends
//! are the nearest 1-2-5 steps around the data.

use std::fmt::Write as _;

pub struct BarChart<'a> {
    pub title: &'a str,
    pub axis_label: &'a str,
    pub categories: Vec<String>,
    pub series: Vec<String>,
    /// values[category][series]
    pub values: Vec<Vec<Option<f64>>>,
    /// The range over repetitions of each value (min, max), drawn as a whisker; same shape as
    /// `values` (or empty: no whiskers).
    pub ranges: Vec<Vec<Option<(f64, f64)>>>,
    /// Bars start at this value (1.0 for ratios: left of it is better than the baseline), else at the
    /// axis' left end.
    pub origin: Option<f64>,
    pub fmt: fn(f64) -> String,
}

pub fn color(name: &str) -> &'static str {
    match name {
        "hakmem" => "#d62728",
        "glibc" => "#7f7f7f",
        "mimalloc" => "#1f77b4",
        "jemalloc" => "#2ca02c",
        "tcmalloc" => "#9467bd",
        "snmalloc" => "#ff7f0e",
        _ => "#8c564b",
    }
}

/// A label cut to fit the left margin.
fn short(s: &str) -> String {
    const MAX: usize = 30;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        s.chars().take(MAX - 3).collect::<String>() + "..."
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl BarChart<'_> {
    pub fn to_svg(&self) -> String {
        const LEFT: f64 = 190.0;
        const PLOT_W: f64 = 640.0;
        const RIGHT: f64 = 90.0;
        const TOP: f64 = 64.0;
        const BAR: f64 = 11.0;
        const GAP: f64 = 10.0;
        let ns = self.series.len().max(1) as f64;
        let group_h = ns * BAR + GAP;
        let plot_h = group_h * self.categories.len().max(1) as f64;
        let width = LEFT + PLOT_W + RIGHT;
        let height = TOP + plot_h + 50.0;

        let range = |ci: usize, si: usize| -> Option<(f64, f64)> {
            self.ranges.get(ci)?.get(si).copied().flatten()
        };
        let vals: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
            .chain(
                self.ranges
                    .iter()
                    .flatten()
                    .flatten()
                    .flat_map(|r| [r.0, r.1]),
            )
            .filter(|v| v.is_finite() && *v > 0.0)
            .chain(self.origin)
            .collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo, hi)
        } else {
            (0.1, 10.0)
        };
        let log = self.origin.is_some() || hi / lo > 10.0;
        // Linear: 0 to the first multiple of a 1-2-5 step (about a sixth of the largest value) at
        // or above it.
        let step = step_above(hi / 6.0);
        let (a0, a1) = if log {
            let a0 = step_below(lo);
            (a0, step_above(hi).max(step_above(a0 * 1.01)))
        } else {
            (0.0, (hi / step - 1e-9).ceil().max(1.0) * step)
        };
        let x = |v: f64| {
            let f = if log {
                (v.max(a0).log10() - a0.log10()) / (a1.log10() - a0.log10())
            } else {
                v.max(0.0) / a1
            };
            LEFT + f.min(1.0) * PLOT_W
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        // The title from the left edge, smaller when it is long (about 0.6 em per character).
        let size = (width - 20.0) / (0.6 * self.title.chars().count().max(1) as f64);
        let _ = writeln!(
            s,
            r#"<text x="10" y="20" font-size="{:.1}" font-weight="bold">{}</text>"#,
            size.clamp(9.0, 15.0),
            esc(self.title)
        );
        // Legend.
        let mut lx = LEFT;
        for name in &self.series {
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="32" width="12" height="12" fill="{}"/>"#,
                color(name)
            );
            let _ = writeln!(s, r#"<text x="{}" y="42">{}</text>"#, lx + 16.0, esc(name));
            lx += 34.0 + 7.0 * name.len() as f64;
        }
        for v in ticks(a0, a1, (!log).then_some(step)) {
            let gx = x(v);
            let _ = writeln!(
                s,
                r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                TOP + plot_h
            );
            let _ = writeln!(
                s,
                r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + plot_h + 14.0,
                esc(&(self.fmt)(v))
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + PLOT_W / 2.0,
            TOP + plot_h + 34.0,
            esc(self.axis_label)
        );
        // Bars.
        for (ci, cat) in self.categories.iter().enumerate() {
            let gy = TOP + ci as f64 * group_h;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                gy + (ns * BAR) / 2.0 + 4.0,
                esc(&short(cat))
            );
            for (si, name) in self.series.iter().enumerate() {
                let Some(v) = self
                    .values
                    .get(ci)
                    .and_then(|r| r.get(si))
                    .copied()
                    .flatten()
                else {
                    continue;
                };
                if !v.is_finite() || v <= 0.0 {
                    continue;
                }
                let y = gy + si as f64 * BAR;
                let start = self.origin.map(x).unwrap_or(LEFT);
                let (a, b) = if x(v) >= start {
                    (start, x(v))
                } else {
                    (x(v), start)
                };
                let _ = writeln!(
                    s,
                    r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                    (b - a).max(1.0),
                    BAR - 1.0,
                    color(name),
                    esc(cat),
                    esc(name),
                    esc(&(self.fmt)(v))
                );
                let mut label_x = b + 3.0;
                if let Some((r0, r1)) = range(ci, si).filter(|r| r.0.is_finite() && r.1.is_finite())
                {
                    let (w0, w1, wy) = (x(r0), x(r1), y + (BAR - 1.0) / 2.0);
                    let _ = writeln!(
                        s,
                        r##"<path d="M{w0:.1} {:.1}V{:.1}M{w0:.1} {wy:.1}H{w1:.1}M{w1:.1} {:.1}V{:.1}" stroke="#000" fill="none"><title>{} {}: {} .. {}</title></path>"##,
                        wy - 3.0,
                        wy + 3.0,
                        wy - 3.0,
                        wy + 3.0,
                        esc(cat),
                        esc(name),
                        esc(&(self.fmt)(r0)),
                        esc(&(self.fmt)(r1))
                    );
                    label_x = label_x.max(w1 + 3.0);
                }
                let _ = writeln!(
                    s,
                    r##"<text x="{label_x:.1}" y="{:.1}" font-size="9" fill="#333">{}</text>"##,
                    y + BAR - 2.5,
                    esc(&(self.fmt)(v))
                );
            }
        }
        if let Some(o) = self.origin {
            let ox = x(o);
            let _ = writeln!(
                s,
                r##"<line x1="{ox:.1}" y1="{TOP}" x2="{ox:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4 3"/>"##,
                TOP + plot_h
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000"/>"##,
            TOP + plot_h,
            LEFT + PLOT_W,
            TOP + plot_h
        );
        s.push_str("</svg>\n");
        s
    }
}

/// The largest 1, 2 or 5 x 10^k at or below `v` (> 0).
fn step_below(v: f64) -> f64 {
    let e = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * e)
        .find(|s| *s <= v * 1.000_001)
        .unwrap_or(e)
}

/// The smallest 1, 2 or 5 x 10^k at or above `v` (> 0).
fn step_above(v: f64) -> f64 {
    let e = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .find(|s| *s >= v * 0.999_999)
        .unwrap_or(10.0 * e)
}

/// Grid values between `a0` and `a1`: on a linear axis every `linear_step`, else (log) 1, 2, 5 per
/// decade (decades only when there are more than three).
fn ticks(a0: f64, a1: f64, linear_step: Option<f64>) -> Vec<f64> {
    let inside = |v: &f64| *v >= a0 * 0.999 && *v <= a1 * 1.001;
    match linear_step {
        Some(step) => (0..=((a1 / step).round() as usize))
            .map(|i| i as f64 * step)
            .collect(),
        None => {
            let (d0, d1) = (a0.log10().floor() as i32, a1.log10().ceil() as i32);
            let steps: &[f64] = if d1 - d0 <= 3 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            (d0..=d1)
                .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
                .filter(inside)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_bar_per_value() {
        let c = BarChart {
            title: "t <1>",
            axis_label: "ratio",
            categories: vec!["a".into(), "b".into()],
            series: vec!["hakmem".into(), "mimalloc".into()],
            values: vec![vec![Some(2.0), Some(1.0)], vec![Some(0.5), None]],
            ranges: vec![vec![Some((1.5, 2.5)), None], vec![Some((0.4, 0.6)), None]],
            origin: Some(1.0),
            fmt: |v| format!("{v:.2}x"),
        };
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "3 bars and 2 legend boxes"
        );
        assert_eq!(svg.matches("<path d=").count(), 2, "a whisker per range");
        assert!(svg.contains("t &lt;1&gt;"));
        // The ratio axis runs over the 1-2-5 steps around the data: 0.2 .. 5.
        assert!(svg.contains(">0.20x</text>") && svg.contains(">5.00x</text>"));
        assert!(!svg.contains(">0.10x</text>") && !svg.contains(">10.00x</text>"));
    }

    #[test]
    fn values_within_a_decade_get_a_linear_axis_from_zero() {
        let c = BarChart {
            title: "rss",
            axis_label: "MiB",
            categories: vec!["sort".into()],
            series: vec!["hakmem".into(), "glibc".into()],
            values: vec![vec![Some(105.0), Some(115.0)]],
            ranges: vec![],
            origin: None,
            fmt: |v| format!("{v:.0} MiB"),
        };
        let svg = c.to_svg();
        assert!(svg.contains(">0 MiB</text>") && svg.contains(">120 MiB</text>"));
        assert!(!svg.contains(">140 MiB</text>") && !svg.contains(">1000 MiB</text>"));
        assert_eq!(svg.matches("<path d=").count(), 0);
    }

    #[test]
    fn steps() {
        assert_eq!(step_below(0.8), 0.5);
        assert_eq!(step_below(1.0), 1.0);
        assert_eq!(step_above(1.3), 2.0);
        assert_eq!(step_above(115.0), 200.0);
        assert_eq!(step_above(5.0), 5.0);
        assert_eq!(ticks(0.0, 120.0, Some(20.0)).len(), 7);
    }
}
