//! SVG charts, written directly (no plotting library: a horizontal grouped bar chart is a few rectangles
//! and labels, and this keeps the build small): one group of bars per scenario, one bar per allocator,
//! on a logarithmic axis.

use std::fmt::Write as _;

pub struct BarChart<'a> {
    pub title: &'a str,
    pub axis_label: &'a str,
    pub categories: Vec<String>,
    pub series: Vec<String>,
    /// values[category][series]
    pub values: Vec<Vec<Option<f64>>>,
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
        _ => "#ff7f0e",
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

        let vals: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .copied()
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
        let (d0, d1) = (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        );
        let x = |v: f64| LEFT + (v.max(10f64.powf(d0)).log10() - d0) / (d1 - d0) * PLOT_W;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="20" font-size="15" font-weight="bold">{}</text>"#,
            LEFT,
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
        // Grid: 1, 2, 5 per decade when there are few decades, else decades only.
        let decades = (d1 - d0) as i32;
        let steps: &[f64] = if decades <= 3 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        for e in d0 as i32..=d1 as i32 {
            for &m in steps {
                let v = m * 10f64.powi(e);
                if v < 10f64.powf(d0) * 0.999 || v > 10f64.powf(d1) * 1.001 {
                    continue;
                }
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
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#333">{}</text>"##,
                    b + 3.0,
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
            origin: Some(1.0),
            fmt: |v| format!("{v:.2}x"),
        };
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("t &lt;1&gt;"));
    }
}
