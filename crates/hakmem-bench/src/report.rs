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
    let scenarios: Vec<String> = res.scenarios().into_iter().map(|(_, s)| s).collect();
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
    let ratio_title = format!(
        "{} relative to {BASELINE} (median; left of the dashed line is faster)",
        time.name
    );
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
        title: "peak RSS of the worker process (median; includes the process baseline)",
        axis_label: "peak RSS (log scale, lower is better)",
        categories: scenarios.clone(),
        series: allocs.clone(),
        values: pick("peak_rss_kib", false),
        origin: None,
        fmt: |v| table::fmt_value("peak_rss_kib", v),
    };
    let ratio_svg = format!("{stem}-ratio.svg");
    let rss_svg = format!("{stem}-rss.svg");
    std::fs::write(dir.join(&ratio_svg), ratio.to_svg())?;
    std::fs::write(dir.join(&rss_svg), rss.to_svg())?;

    let i = &res.info;
    let mut md = String::new();
    let _ = writeln!(md, "# hakmem-bench report\n");
    let _ = writeln!(
        md,
        "git revision `{}`, {} cores, kernel {}, mode `{}`, {} repetitions per allocator (alternating {}), created at unix time {}.\n",
        i.git_revision,
        i.cores,
        i.kernel,
        i.mode,
        i.reps,
        i.allocators.join(" "),
        i.created_unix
    );
    let _ = writeln!(md, "Command: `{}`\n", i.command.join(" "));
    let _ = writeln!(
        md,
        "Each figure is the median over the repetitions; `x{BASELINE}` is that median divided by {BASELINE}'s (below 1 is better, except for ops/s); `+-` is half the range over the repetitions in percent of the median. Every measurement ran in its own process, so page faults (`minflt`) and peak RSS belong to one allocator; peak RSS includes the worker's own baseline.\n"
    );
    let headline = table::summary(res, time.name);
    if !headline.is_empty() {
        let _ = writeln!(
            md,
            "**Geometric mean of {} relative to {BASELINE}** (lower is better): {headline}.\n",
            time.name
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
    let _ = writeln!(
        md,
        "\n## Time relative to {BASELINE}\n\n![ratio]({ratio_svg})\n"
    );
    let _ = writeln!(md, "## Peak RSS\n\n![rss]({rss_svg})\n");
    for t in table::tables(res, columns, time) {
        let _ = writeln!(md, "## {}\n", t.title);
        if let Some(desc) = suite_description(&t.title) {
            let _ = writeln!(md, "{desc}\n");
        }
        md.push_str(&t.render_markdown());
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
