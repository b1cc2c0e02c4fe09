//! `report.md`: the context of the run, the tables, and two SVG charts (time as a ratio to mimalloc, and
//! peak RSS, per scenario).

use crate::chart::BarChart;
use crate::results::{Metric, Results, RunInfo, BASELINE};
use crate::table;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `<stem>.md`, and `<stem>-ratio.svg` and `<stem>-rss.svg` when they have something to
/// show, into `dir`; returns the paths written, the report first.
pub fn write(
    res: &Results,
    dir: &Path,
    stem: &str,
    columns: &[Metric],
    time: Metric,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let compare = res.info.mode == "compare";
    let scenarios: Vec<String> = res
        .scenarios()
        .into_iter()
        .filter(|(suite, _)| suite != "learn")
        .map(|(_, s)| s)
        .collect();
    let allocs = res.info.allocators.clone();
    let with_baseline = allocs.iter().any(|a| a == BASELINE);
    // Per scenario and allocator: the median (or its ratio) and the range over repetitions.
    let pick = |metric: &str, ratio: bool, scale: f64| {
        let mut values = Vec::new();
        let mut ranges = Vec::new();
        for sc in &scenarios {
            let base = res.find(sc, BASELINE, metric).map(|b| b.median);
            let (mut v, mut r) = (Vec::new(), Vec::new());
            for a in &allocs {
                let rec = res.find(sc, a, metric);
                let div = if ratio {
                    base.filter(|b| *b > 0.0)
                } else {
                    Some(scale)
                };
                v.push(rec.and_then(|r| {
                    if ratio {
                        r.ratio_to_mimalloc
                    } else {
                        Some(r.median / scale)
                    }
                }));
                r.push(rec.zip(div).map(|(r, d)| (r.min / d, r.max / d)));
            }
            values.push(v);
            ranges.push(r);
        }
        (values, ranges)
    };
    let what = match time.name {
        "time_ns" => "time per operation",
        "wall_ms" => "wall time",
        other => other,
    };
    let program = shell_join(&res.info.program);
    let short_program = scenarios.first().cloned().unwrap_or_default();
    let ratio_title = if compare {
        format!("{what} of `{short_program}` relative to {BASELINE} (median, whiskers min-max; left of the dashed line is faster)")
    } else {
        format!("{what} relative to {BASELINE} (median, whiskers min-max; left of the dashed line is faster)")
    };
    let (values, ranges) = pick(time.name, true, 1.0);
    let ratio = BarChart {
        title: &ratio_title,
        axis_label: "ratio to mimalloc (log scale, lower is better)",
        categories: scenarios.clone(),
        series: allocs.clone(),
        values,
        ranges,
        origin: Some(1.0),
        fmt: |v| {
            if v >= 10.0 {
                format!("{v:.0}x")
            } else {
                format!("{v:.2}x")
            }
        },
    };
    let rss_title = if compare {
        format!("peak RSS of `{short_program}` (median, whiskers min-max)")
    } else {
        "peak RSS (median, whiskers min-max; includes the worker process' baseline of ~4 MiB)"
            .into()
    };
    let (values, ranges) = pick("peak_rss_kib", false, 1024.0);
    let rss = BarChart {
        title: &rss_title,
        axis_label: "peak RSS (lower is better)",
        categories: scenarios.clone(),
        series: allocs.clone(),
        values,
        ranges,
        origin: None,
        fmt: |mib| {
            if mib >= 10.0 || mib == 0.0 {
                format!("{mib:.0} MiB")
            } else {
                format!("{mib:.1} MiB")
            }
        },
    };
    let mut written = vec![dir.join(format!("{stem}.md"))];
    let mut charts = Vec::new();
    for (chart, name, heading) in [
        (&ratio, "ratio", format!("Time relative to {BASELINE}")),
        (&rss, "rss", "Peak RSS".to_string()),
    ] {
        if chart.values.iter().flatten().any(Option::is_some) {
            let file = format!("{stem}-{name}.svg");
            std::fs::write(dir.join(&file), chart.to_svg())?;
            written.push(dir.join(&file));
            charts.push(format!("## {heading}\n\n![{name}]({file})\n"));
        }
    }

    let i = &res.info;
    let main_part = !scenarios.is_empty();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# hakmem-bench {}\n",
        if compare { "compare" } else { "report" }
    );
    let reps = match (&res.learn, main_part) {
        (Some(l), false) => format!(
            "hakmem only (the learn suite): {} per variant{}",
            repetitions(l.reps),
            if l.cost_reps > 0 {
                format!(", {} for the cost runs", l.cost_reps)
            } else {
                String::new()
            }
        ),
        (learn, _) => format!(
            "{} per allocator (alternating {}){}",
            repetitions(i.reps),
            i.allocators.join(" "),
            match learn {
                Some(l) => format!("; the learn suite: {} per variant", l.reps),
                None => String::new(),
            }
        ),
    };
    let _ = writeln!(
        md,
        "git revision `{}`, {} cores, kernel {}, mode `{}`, {reps}, {}.\n",
        i.git_revision,
        i.cores,
        i.kernel,
        i.mode,
        utc(i.created_unix)
    );
    let _ = writeln!(md, "{}\n", load_line(i));
    if !i.versions.is_empty() {
        let _ = writeln!(md, "Versions:\n");
        for a in &i.allocators {
            if let Some(v) = i.versions.get(a) {
                let _ = writeln!(md, "- {a}: {v}");
            }
        }
        md.push('\n');
    }
    if compare {
        let _ = writeln!(
            md,
            "Program (`{short_program}` in the tables):\n\n```sh\n{program}\n```\n"
        );
    }
    let _ = writeln!(md, "Command:\n\n```sh\n{}\n```\n", shell_join(&i.command));
    if main_part {
        let how = if compare {
            "The program ran once per repetition under each allocator (`LD_PRELOAD`; glibc without), started from a small launcher process so that its peak RSS and page faults are its own."
        } else {
            "Every measurement ran in its own worker process, so page faults (`minflt`) and peak RSS belong to one allocator; peak RSS includes the worker's own baseline (about 4 MiB)."
        };
        let higher = res.records.iter().any(|r| r.better == "higher");
        let ratio = if with_baseline {
            format!(
                "`x mi` is that median divided by {BASELINE}'s (below 1 is better{}); ",
                if higher {
                    ", except for ops/s, where above 1 is"
                } else {
                    ""
                }
            )
        } else {
            format!("{BASELINE} did not run, so there are no ratios (`x mi`); ")
        };
        let _ = writeln!(
            md,
            "Each figure is the median over the repetitions; {ratio}`+-` is half the range over the repetitions in percent of the median; {} {how}\n",
            crate::table::unreliable_legend()
        );
    }
    let headline = table::summary(res, time.name);
    if !headline.is_empty() && !compare && scenarios.len() > 1 {
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
    if !res.notes.is_empty() {
        md.push('\n');
    }
    if !res.errors.is_empty() {
        let _ = writeln!(md, "## Failures\n");
        for e in &res.errors {
            let _ = writeln!(
                md,
                "- `{}` on {}: {}",
                e.scenario,
                e.allocator,
                e.message.replace('\n', " ")
            );
        }
        md.push('\n');
    }
    for c in &charts {
        let _ = writeln!(md, "{c}");
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
    std::fs::write(&written[0], md)?;
    Ok(written)
}

fn repetitions(n: usize) -> String {
    format!("{n} repetition{}", if n == 1 { "" } else { "s" })
}

/// The machine's load over the run, with a warning when other processes competed for the cores.
pub fn load_line(i: &RunInfo) -> String {
    let (Some(start), Some(end)) = (i.loadavg_start.first(), i.loadavg_end.first()) else {
        return format!("{} cores; load average unknown.", i.cores);
    };
    let mut s = format!(
        "Machine load (1-minute load average): {start:.2} at the start, {end:.2} at the end, on {} cores.",
        i.cores
    );
    // The run itself keeps about one core busy, so the end figure is judged against the cores.
    if *start > i.cores as f64 * 0.5 || *end > i.cores as f64 + 0.5 {
        s.push_str(" **The machine was busy**: other processes competed for the cores, so expect noisy figures (large `+-`).");
    }
    s
}

/// `dir/a, b and c` for the files written into `dir`.
pub fn list_files(dir: &Path, files: &[PathBuf]) -> String {
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(dir)
                .unwrap_or(f)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    };
    format!("{list} in {}", dir.display())
}

/// One argument as a POSIX shell reads it back: unchanged when it holds only safe characters, else
/// in single quotes (a quote inside written as '\'').
pub fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A command line a shell would run as given.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
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
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("sort"), "sort");
        assert_eq!(shell_quote("-n"), "-n");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(
            shell_join(&["sh".into(), "-c".into(), "echo $HOME > x".into()]),
            "sh -c 'echo $HOME > x'"
        );
    }

    #[test]
    fn file_lists_name_every_file() {
        let d = Path::new("/o");
        let f = |n: &str| d.join(n);
        assert_eq!(
            list_files(d, &[f("a.json"), f("a.csv"), f("a.md")]),
            "a.json, a.csv and a.md in /o"
        );
        assert_eq!(list_files(d, &[f("a.md")]), "a.md in /o");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
