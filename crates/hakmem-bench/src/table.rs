//! The results as tables, one per suite: one row per scenario x allocator, each figure followed by its
//! ratio to mimalloc. Rendered for the terminal or as Markdown.

use crate::results::{Metric, Record, Results, BASELINE};

pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (the legend of its marks).
    pub notes: Vec<String>,
}

/// Repetitions that spread more than this (half the range, in percent of the median) make a
/// figure, and a ratio built on it, unreliable: such cells get [`UNRELIABLE`].
pub const SPREAD_WARN_PCT: f64 = 20.0;
pub const UNRELIABLE: &str = "!";

/// The legend line of [`UNRELIABLE`].
pub fn unreliable_legend() -> String {
    format!(
        "{UNRELIABLE} = the repetitions of this figure, or of {BASELINE}'s, spread more than {SPREAD_WARN_PCT:.0} % around the median (half the range): the ratio is unreliable; rerun on an idle machine or with more repetitions (--reps)."
    )
}

/// Whether a record's repetitions spread too much to trust its median.
pub fn unreliable(r: &Record) -> bool {
    r.spread_pct > SPREAD_WARN_PCT
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
            // Only the columns some scenario of this suite has (all of them when every run
            // failed, so the FAILED cells have a column to go in).
            let mut cols: Vec<Metric> = columns
                .iter()
                .copied()
                .filter(|m| {
                    res.records
                        .iter()
                        .any(|r| r.suite == suite && r.metric == m.name)
                })
                .collect();
            if cols.is_empty() {
                cols = columns.to_vec();
            }
            let mut headers = vec!["scenario".to_string(), "allocator".to_string()];
            for m in &cols {
                headers.push(header(*m));
                if *m == spread_on {
                    headers.push("+-".into());
                }
                headers.push("x mi".into());
            }
            let mut rows = Vec::new();
            let mut marked = false;
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
                        let base = res.find(sc, BASELINE, m.name);
                        let mut mark = |bad: bool| {
                            marked |= bad;
                            if bad {
                                UNRELIABLE
                            } else {
                                ""
                            }
                        };
                        row.push(
                            rec.map(|r| fmt_value(m.name, r.median))
                                .unwrap_or_else(|| "-".into()),
                        );
                        if *m == spread_on {
                            row.push(
                                rec.map(|r| format!("{:.0}%{}", r.spread_pct, mark(unreliable(r))))
                                    .unwrap_or_else(|| "-".into()),
                            );
                        }
                        let ratio = rec.and_then(|r| r.ratio_to_mimalloc);
                        let shaky = rec.is_some_and(unreliable) || base.is_some_and(unreliable);
                        row.push(match ratio {
                            Some(_) => format!("{}{}", fmt_ratio(ratio), mark(shaky)),
                            None => fmt_ratio(None),
                        });
                    }
                    rows.push(row);
                    first = false;
                }
            }
            Table {
                title: suite,
                headers,
                rows,
                notes: if marked {
                    vec![unreliable_legend()]
                } else {
                    vec![]
                },
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
    /// Aligned columns for the terminal; a row with fewer cells (a failure) has its scenario and
    /// allocator aligned, and its message runs on past the columns.
    pub fn render_text(&self) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            let cols = if r.len() == n { n } else { r.len().min(2) };
            for (i, c) in r.iter().take(cols).enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let width = if cells.len() == n || i < 2 { w[i] } else { 0 };
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
        for n in &self.notes {
            out.push_str(n);
            out.push('\n');
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
        for n in &self.notes {
            out.push('\n');
            out.push_str(n);
            out.push('\n');
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

    #[test]
    fn widely_spread_figures_and_their_ratios_are_marked() {
        use crate::results::{info_for_tests, Collector, Results, TIME_NS};
        let mut c = Collector::default();
        for (alloc, reps) in [
            ("hakmem", [100.0, 100.0, 300.0]),
            ("glibc", [200.0, 201.0, 202.0]),
            ("mimalloc", [100.0, 101.0, 102.0]),
        ] {
            for x in reps {
                c.add("seed", "seed/json", alloc, TIME_NS, x);
            }
        }
        let res = Results {
            info: info_for_tests(&["hakmem", "glibc", "mimalloc"]),
            records: c.finish(),
            errors: vec![],
            notes: vec![],
            learn: None,
        };
        let t = &tables(&res, &[TIME_NS], TIME_NS)[0];
        // scenario, allocator, time/op, +-, x mi
        assert_eq!(t.rows[0][3], "100%!");
        assert_eq!(t.rows[0][4], "0.99x!");
        assert_eq!(t.rows[1][3], "0%");
        assert_eq!(t.rows[1][4], "1.99x");
        assert_eq!(t.notes, vec![unreliable_legend()]);
        assert!(t.render_text().contains("the ratio is unreliable"));
        assert!(t.render_markdown().contains("the ratio is unreliable"));
        // A spread baseline makes every ratio to it unreliable.
        let mut c = Collector::default();
        for (alloc, reps) in [
            ("glibc", [200.0, 201.0, 202.0]),
            ("mimalloc", [50.0, 100.0, 150.0]),
        ] {
            for x in reps {
                c.add("seed", "seed/json", alloc, TIME_NS, x);
            }
        }
        let res = Results {
            records: c.finish(),
            info: info_for_tests(&["glibc", "mimalloc"]),
            ..res
        };
        let t = &tables(&res, &[TIME_NS], TIME_NS)[0];
        assert_eq!(t.rows[0][3], "0%");
        assert_eq!(t.rows[0][4], "2.01x!");
    }
}
