//! `report.md`: the context of the run, the tables, and two SVG charts (time as a ratio to mimalloc, and
//! peak RSS, per scenario).

use crate::chart::BarChart;
use crate::results::{Metric, Results, BASELINE};
use crate::table;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `<stem>.md`, `<stem>-ratio.svg` and `<stem>-rss.svg` into `dir`; returns the report's path.
pub fn write(
    res: &Results,
    dir: &Path,
    stem: &str,
    columns: &[Metric],
    time: Metric,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let scenarios: Vec<String> = res
        .scenarios()
        .into_iter()
        .filter(|(suite, _)| suite != "learn")
        .map(|(_, s)| s)
        .collect();
    let allocs = res.info.allocators.clone();
    let pick = |metric: &str, ratio: bool| -> Vec<Vec<Option<f64>>> {
        scenarios
            .iter()
            .map(|sc| {
                allocs
                    .iter()
                    .map(|a| {
                        res.find(sc, a, metric).and_then(|r| {
                            if ratio {
                                r.ratio_to_mimalloc
                            } else {
                                Some(r.median)
                            }
                        })
                    })
                    .collect()
            })
            .collect()
    };
    let what = match time.name {
        "time_ns" => "time per operation",
        "wall_ms" => "wall time",
        other => other,
    };
    let ratio_title =
        format!("{what} relative to {BASELINE} (median; left of the dashed line is faster)");
    let ratio = BarChart {
        title: &ratio_title,
        axis_label: "ratio to mimalloc (log scale, lower is better)",
        categories: scenarios.clone(),
        series: allocs.clone(),
        values: pick(time.name, true),
        origin: Some(1.0),
        fmt: |v| {
            if v >= 10.0 {
                format!("{v:.0}x")
            } else {
                format!("{v:.2}x")
            }
        },
    };
    let rss = BarChart {
        title: "peak RSS (median; for the suites, includes the worker process' baseline of ~4 MiB)",
        axis_label: "peak RSS (log scale, lower is better)",
        categories: scenarios.clone(),
        series: allocs.clone(),
        values: pick("peak_rss_kib", false)
            .into_iter()
            .map(|row| row.into_iter().map(|v| v.map(|kib| kib / 1024.0)).collect())
            .collect(),
        origin: None,
        fmt: |mib| {
            if mib >= 10.0 {
                format!("{mib:.0} MiB")
            } else {
                format!("{mib:.1} MiB")
            }
        },
    };
    let ratio_svg = format!("{stem}-ratio.svg");
    let rss_svg = format!("{stem}-rss.svg");
    let charts = !scenarios.is_empty();
    if charts {
        std::fs::write(dir.join(&ratio_svg), ratio.to_svg())?;
        std::fs::write(dir.join(&rss_svg), rss.to_svg())?;
    }

    let i = &res.info;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# hakmem-bench {}\n",
        if res.info.mode == "compare" {
            "compare"
        } else {
            "report"
        }
    );
    let _ = writeln!(
        md,
        "git revision `{}`, {} cores, kernel {}, mode `{}`, {} repetitions per allocator (alternating {}), {}.\n",
        i.git_revision,
        i.cores,
        i.kernel,
        i.mode,
        i.reps,
        i.allocators.join(" "),
        utc(i.created_unix)
    );
    let _ = writeln!(md, "Command: `{}`\n", i.command.join(" "));
    let how = if i.mode == "compare" {
        "The program ran once per repetition under each allocator (`LD_PRELOAD`; glibc without), started from a small launcher process so that its peak RSS and page faults are its own."
    } else {
        "Every measurement ran in its own worker process, so page faults (`minflt`) and peak RSS belong to one allocator; peak RSS includes the worker's own baseline (about 4 MiB)."
    };
    let _ = writeln!(
        md,
        "Each figure is the median over the repetitions; `x mi` is that median divided by {BASELINE}'s (below 1 is better, except for ops/s); `+-` is half the range over the repetitions in percent of the median. {how}\n"
    );
    let headline = table::summary(res, time.name);
    if !headline.is_empty() {
        let _ = writeln!(
            md,
            "**Geometric mean of {what} relative to {BASELINE}** (lower is better): {headline}.\n"
        );
        let _ = writeln!(
            md,
            "**Geometric mean of peak RSS relative to {BASELINE}**: {}.\n",
            table::summary(res, "peak_rss_kib")
        );
    }
    for n in &res.notes {
        let _ = writeln!(md, "- note: {n}");
    }
    if !res.errors.is_empty() {
        let _ = writeln!(md, "\n## Failures\n");
        for e in &res.errors {
            let _ = writeln!(
                md,
                "- `{}` on {}: {}",
                e.scenario,
                e.allocator,
                e.message.replace('\n', " ")
            );
        }
    }
    if charts {
        let _ = writeln!(
            md,
            "\n## Time relative to {BASELINE}\n\n![ratio]({ratio_svg})\n"
        );
        let _ = writeln!(md, "## Peak RSS\n\n![rss]({rss_svg})\n");
    }
    for t in table::tables(res, columns, time) {
        let _ = writeln!(md, "## {}\n", t.title);
        if let Some(desc) = suite_description(&t.title) {
            let _ = writeln!(md, "{desc}\n");
        }
        md.push_str(&t.render_markdown());
        md.push('\n');
    }
    if let Some(l) = &res.learn {
        let _ = writeln!(md, "## learn\n");
        if let Some(desc) = suite_description("learn") {
            let _ = writeln!(md, "{desc}\n");
        }
        let _ = writeln!(
            md,
            "hakmem only: each fixed candidate strategy (`HAKMEM_STRATEGY=<name>`) and the learner (`HAKMEM_LEARN=elo|ucb1`, `HAKMEM_MODE=balanced`), one worker process per run.\n"
        );
        md.push_str(&l.render_markdown());
        md.push('\n');
    }
    let path = dir.join(format!("{stem}.md"));
    std::fs::write(&path, md)?;
    Ok(path)
}

fn suite_description(suite: &str) -> Option<String> {
    let list: Vec<String> = crate::suites::SCENARIOS
        .iter()
        .filter(|s| s.suite == suite)
        .map(|s| format!("- `{}`: {}", s.name, s.what))
        .collect();
    (!list.is_empty()).then(|| list.join("\n"))
}

/// `YYYY-MM-DD HH:MM UTC` for a Unix time (civil-from-days, proleptic Gregorian).
pub fn utc(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
