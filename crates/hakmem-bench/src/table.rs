//! The results as tables, one per suite: one row per scenario x allocator, each figure followed by its
//! ratio to mimalloc. Rendered for the terminal or as Markdown.

use crate::results::{Metric, Results};

pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Human units for a metric's value.
pub fn fmt_value(metric: &str, v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match metric {
        "time_ns" | "p95_ns" | "p99_ns" => fmt_ns(v),
        "ops_per_s" => {
            if v >= 1e6 {
                format!("{:.2} M/s", v / 1e6)
            } else if v >= 1e3 {
                format!("{:.1} k/s", v / 1e3)
            } else {
                format!("{v:.0} /s")
            }
        }
        "peak_rss_kib" => {
            if v >= 1024.0 * 1024.0 {
                format!("{:.2} GiB", v / 1024.0 / 1024.0)
            } else {
                format!("{:.1} MiB", v / 1024.0)
            }
        }
        "wall_ms" | "user_ms" | "sys_ms" => {
            if v >= 1000.0 {
                format!("{:.2} s", v / 1000.0)
            } else {
                format!("{v:.1} ms")
            }
        }
        _ => {
            if v >= 1e6 {
                format!("{:.2} M", v / 1e6)
            } else if v >= 1e4 {
                format!("{:.1} k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        }
    }
}

pub fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} us", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0} ns")
    } else {
        format!("{v:.1} ns")
    }
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".into(),
    }
}

/// One table per suite (but `learn`, which has its own: `learn::Summary`). `spread_on` is the metric
/// whose spread over repetitions is shown.
pub fn tables(res: &Results, columns: &[Metric], spread_on: Metric) -> Vec<Table> {
    let mut suites: Vec<String> = Vec::new();
    for (suite, _) in res.scenarios() {
        if suite != "learn" && !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    let allocs = &res.info.allocators;
    suites
        .into_iter()
        .map(|suite| {
            let scen: Vec<String> = res
                .scenarios()
                .into_iter()
                .filter(|(s, _)| *s == suite)
                .map(|(_, n)| n)
                .collect();
            // Only the columns some scenario of this suite has.
            let cols: Vec<Metric> = columns
                .iter()
                .copied()
                .filter(|m| {
                    res.records
                        .iter()
                        .any(|r| r.suite == suite && r.metric == m.name)
                })
                .collect();
            let mut headers = vec!["scenario".to_string(), "allocator".to_string()];
            for m in &cols {
                headers.push(header(*m));
                if *m == spread_on {
                    headers.push("+-".into());
                }
                headers.push("x mi".into());
            }
            let mut rows = Vec::new();
            for sc in &scen {
                let short = sc.strip_prefix(&format!("{suite}/")).unwrap_or(sc);
                let mut first = true;
                for a in allocs {
                    let mut row = vec![
                        if first {
                            short.to_string()
                        } else {
                            String::new()
                        },
                        a.clone(),
                    ];
                    if let Some(err) = res
                        .errors
                        .iter()
                        .find(|e| &e.scenario == sc && &e.allocator == a)
                    {
                        if !res
                            .records
                            .iter()
                            .any(|r| &r.scenario == sc && &r.allocator == a)
                        {
                            let mut msg = format!("FAILED: {}", err.message);
                            if msg.len() > 100 {
                                let mut cut = 97;
                                while !msg.is_char_boundary(cut) {
                                    cut -= 1;
                                }
                                msg.truncate(cut);
                                msg.push_str("...");
                            }
                            row.push(msg);
                            rows.push(row);
                            first = false;
                            continue;
                        }
                    }
                    if !res
                        .records
                        .iter()
                        .any(|r| &r.scenario == sc && &r.allocator == a)
                    {
                        continue;
                    }
                    for m in &cols {
                        let rec = res.find(sc, a, m.name);
                        row.push(
                            rec.map(|r| fmt_value(m.name, r.median))
                                .unwrap_or_else(|| "-".into()),
                        );
                        if *m == spread_on {
                            row.push(
                                rec.map(|r| format!("{:.0}%", r.spread_pct))
                                    .unwrap_or_else(|| "-".into()),
                            );
                        }
                        row.push(fmt_ratio(rec.and_then(|r| r.ratio_to_mimalloc)));
                    }
                    rows.push(row);
                    first = false;
                }
            }
            Table {
                title: suite,
                headers,
                rows,
            }
        })
        .collect()
}

/// Per allocator, the geometric mean over scenarios of `metric`'s ratio to mimalloc, as one line:
/// the headline of a run. Empty when there is no ratio.
pub fn summary(res: &Results, metric: &str) -> String {
    let mut most = 0;
    let parts: Vec<String> = res
        .info
        .allocators
        .iter()
        .filter_map(|a| {
            let logs: Vec<f64> = res
                .records
                .iter()
                .filter(|r| &r.allocator == a && r.metric == metric)
                .filter_map(|r| r.ratio_to_mimalloc)
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(f64::ln)
                .collect();
            most = most.max(logs.len());
            (!logs.is_empty()).then(|| {
                format!(
                    "{a} {:.2}x",
                    (logs.iter().sum::<f64>() / logs.len() as f64).exp()
                )
            })
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "{} (over {most} scenario{})",
        parts.join(", "),
        if most == 1 { "" } else { "s" }
    )
}

fn header(m: Metric) -> String {
    match m.name {
        "time_ns" => "time/op".into(),
        "p95_ns" => "p95".into(),
        "p99_ns" => "p99".into(),
        "ops_per_s" => "ops/s".into(),
        "minflt" => "minflt".into(),
        "peak_rss_kib" => "peak RSS".into(),
        "wall_ms" => "wall".into(),
        "user_ms" => "user".into(),
        "sys_ms" => "sys".into(),
        other => other.into(),
    }
}

impl Table {
    /// Aligned columns for the terminal; a row with fewer cells (a failure) runs on past the columns.
    pub fn render_text(&self) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            if r.len() == n {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let width = if cells.len() == n { w[i] } else { 0 };
                if i < 2 {
                    s.push_str(&format!("{c:<width$}  "));
                } else {
                    s.push_str(&format!("{c:>width$}  "));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = format!("== {} ==\n", self.title);
        out.push_str(&line(&self.headers));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    pub fn render_markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.headers.join(" | "));
        out.push_str(&format!(
            "|{}\n",
            self.headers
                .iter()
                .enumerate()
                .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
                .collect::<String>()
        ));
        for r in &self.rows {
            let mut cells = r.clone();
            cells.resize(self.headers.len(), String::new());
            out.push_str(&format!(
                "| {} |\n",
                cells
                    .iter()
                    .map(|c| c.replace('|', "\\|"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(fmt_value("time_ns", 253.4), "253 ns");
        assert_eq!(fmt_value("time_ns", 36_600.0), "36.6 us");
        assert_eq!(fmt_value("time_ns", 12.34), "12.3 ns");
        assert_eq!(fmt_value("ops_per_s", 13.9e6), "13.90 M/s");
        assert_eq!(fmt_value("peak_rss_kib", 2048.0), "2.0 MiB");
        assert_eq!(fmt_value("minflt", 12.0), "12");
        assert_eq!(fmt_ratio(Some(0.5)), "0.50x");
        assert_eq!(fmt_ratio(None), "-");
    }
}
