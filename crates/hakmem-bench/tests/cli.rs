//! End-to-end tests of the hakmem-bench binary: a `--quick` run of small scenarios, failure handling,
//! and `compare` on a short command.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_hakmem-bench");

#[path = "../../hakmem-preload/tests/common/tempdir.rs"]
mod tempdir;
use tempdir::TempDir;

fn tmp(name: &str) -> TempDir {
    TempDir::new(&format!("bench-{name}"))
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hakmem-bench")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn records<'a>(v: &'a Value, scenario: &str, alloc: &str, metric: &str) -> Vec<&'a Value> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scenario"] == scenario && r["allocator"] == alloc && r["metric"] == metric)
        .collect()
}

#[test]
fn quick_run_end_to_end() {
    let out = tmp("quick");
    let o = run(
        &[
            "--quick",
            "--scenario",
            "seed/json,larson/tput",
            "--reps",
            "2",
            "--larson-secs",
            "0.1",
            "--threads",
            "2",
            "--no-progress",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("== seed ==") && t.contains("== larson =="),
        "{t}"
    );
    let v = json(&out.join("results.json"));
    assert_eq!(v["info"]["schema"], "hakmem-bench/1");
    assert!(v["info"]["cores"].as_u64().unwrap() >= 1);
    assert!(!v["info"]["git_revision"].as_str().unwrap().is_empty());
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    // Every allocator's version, and the machine's load at the start and the end.
    let versions = &v["info"]["versions"];
    for (alloc, starts) in [
        ("hakmem", "hakmem 0.1"),
        ("glibc", "glibc 2."),
        ("mimalloc", "mimalloc "),
        ("jemalloc", "jemalloc 5."),
        ("snmalloc", "snmalloc "),
    ] {
        let s = versions[alloc].as_str().unwrap_or_default();
        assert!(s.starts_with(starts), "{alloc}: version {s:?}");
        assert!(
            !s.contains(" ?") && !s.contains("(?"),
            "{alloc}: version {s:?}"
        );
    }
    for k in ["loadavg_start", "loadavg_end"] {
        assert_eq!(v["info"][k].as_array().unwrap().len(), 3, "{k}");
    }
    for alloc in ["hakmem", "glibc", "mimalloc", "jemalloc", "snmalloc"] {
        for (scen, metric) in [
            ("seed/json", "time_ns"),
            ("seed/json", "p99_ns"),
            ("seed/json", "minflt"),
            ("seed/json", "peak_rss_kib"),
            ("larson/tput", "ops_per_s"),
        ] {
            let r = records(&v, scen, alloc, metric);
            assert_eq!(r.len(), 1, "{scen} {alloc} {metric}");
            let r = r[0];
            assert_eq!(r["reps"].as_array().unwrap().len(), 2);
            let med = r["median"].as_f64().unwrap();
            assert!(med >= r["min"].as_f64().unwrap() && med <= r["max"].as_f64().unwrap());
            assert!(
                r["ratio_to_mimalloc"].as_f64().is_some(),
                "{scen} {alloc} {metric}: no ratio"
            );
        }
        let t = records(&v, "seed/json", alloc, "time_ns")[0]["median"]
            .as_f64()
            .unwrap();
        assert!(
            t > 1.0 && t < 1e7,
            "implausible ns per cycle {t} for {alloc}"
        );
        assert!(
            records(&v, "larson/tput", alloc, "ops_per_s")[0]["median"]
                .as_f64()
                .unwrap()
                > 1000.0
        );
    }
    assert_eq!(
        records(&v, "seed/json", "mimalloc", "time_ns")[0]["ratio_to_mimalloc"],
        1.0
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + v["records"].as_array().unwrap().len()
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("report-ratio.svg") && md.contains("| json | hakmem |"),
        "{md}"
    );
    assert!(
        md.contains("- snmalloc: snmalloc") && md.contains("Machine load"),
        "{md}"
    );
    // The closing line names every file written.
    for f in [
        "results.json",
        "results.csv",
        "report.md",
        "report-ratio.svg",
        "report-rss.svg",
    ] {
        assert!(t.contains(f), "{f} not in the closing line: {t}");
    }
    let svg = std::fs::read_to_string(out.join("report-ratio.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("seed/json"));
    assert!(out.join("report-rss.svg").exists());
}

#[test]
fn crashing_worker_is_reported_and_others_still_come_out() {
    let out = tmp("crash");
    let o = run(
        &[
            "--quick",
            "--scenario",
            "seed/vm",
            "--allocators",
            "glibc,jemalloc",
            "--reps",
            "2",
            "--no-progress",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[("HAKMEM_BENCH_FAULT", "jemalloc")],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("seed/vm on jemalloc") && t.contains("SIGABRT"),
        "{t}"
    );
    let v = json(&out.join("results.json"));
    assert_eq!(
        records(&v, "seed/vm", "glibc", "time_ns")[0]["reps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(records(&v, "seed/vm", "jemalloc", "time_ns").is_empty());
    let errs = v["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["allocator"], "jemalloc");
}

#[test]
fn bad_arguments_fail_clearly() {
    let o = run(&["--no-such-option"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--no-such-option"));
    let o = run(&["--scenario", "seed/nope"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("unknown scenario `seed/nope`"),
        "{}",
        text(&o)
    );
    let o = run(&["--allocators", "tcmalloc"], &[]);
    assert_eq!(o.status.code(), Some(2));
    // Counts must be positive: a negative one is a bad value, not an unknown option, and 0 is
    // not taken for 1.
    for (opt, val) in [
        ("--reps", "-1"),
        ("--reps", "0"),
        ("--threads", "0"),
        ("--larson-threads", "0"),
    ] {
        let o = run(&[opt, val, "--scenario", "seed/json"], &[]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{opt} {val}: {t}");
        assert!(
            t.contains(&format!("invalid value '{val}' for '{opt}"))
                && t.contains("must be a positive integer"),
            "{opt} {val}: {t}"
        );
    }
    let o = run(&["compare", "--reps", "-1", "--", "true"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("must be a positive integer"),
        "{}",
        text(&o)
    );
}

#[test]
fn compare_rejects_an_unknown_allocator_before_running() {
    let out = tmp("compare-unknown");
    let o = run(
        &[
            "compare",
            "--allocators",
            "glibc,foo",
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "true",
        ],
        &[],
    );
    let t = text(&o);
    // As the main command answers `--allocators foo`: status 2, clap's wording, nothing written.
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("invalid value 'foo' for '--allocators"), "{t}");
    assert!(!out.join("compare.json").exists() && !out.join("compare.md").exists());
    let main = run(&["--allocators", "foo"], &[]);
    assert_eq!(main.status.code(), Some(2));
    assert!(text(&main).contains("invalid value 'foo' for '--allocators"));
}

#[test]
fn compare_marks_every_failure_and_quotes_the_command() {
    let out = tmp("compare-fail");
    let o = run(
        &[
            "compare",
            "--reps",
            "1",
            "--allocators",
            "glibc",
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
        &[],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAILED: exited with status 3"), "{t}");
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("| glibc | FAILED: exited with status 3 |"),
        "{md}"
    );
    assert!(md.contains("\nsh -c 'exit 3'\n"), "{md}");
    for f in ["compare.json", "compare.csv", "compare.md"] {
        assert!(t.contains(f), "{f} not in the closing line: {t}");
    }
}

/// Runs `--quick` cross-thread frees on one CPU: a thread that waits for the other must give it
/// the CPU, or each hand-over costs a time slice.
#[test]
fn cross_thread_handoff_does_not_spin_on_one_cpu() {
    use std::os::unix::process::CommandExt;
    let out = tmp("cross-one-cpu");
    let mut c = Command::new(BIN);
    c.args([
        "--quick",
        "--scenario",
        "fastpath/cross-thread",
        "--allocators",
        "glibc",
        "--reps",
        "1",
        "--no-progress",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    // SAFETY: sched_setaffinity on the child itself, between fork and exec, with a local set.
    unsafe {
        c.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let v = json(&out.join("results.json"));
    let ns = records(&v, "fastpath/cross-thread", "glibc", "time_ns")[0]["median"]
        .as_f64()
        .unwrap();
    // Some 100-300 ns per block when the threads hand over at once; a spinning waiter burns
    // its whole time slice each time the ring fills, several microseconds per block.
    assert!(ns < 2000.0, "{ns} ns per block on one CPU");
}

/// The Debian allocator libraries present on this machine (compare runs those and glibc).
fn installed() -> Vec<&'static str> {
    let arch = std::env::consts::ARCH;
    [
        ("mimalloc", "libmimalloc.so.2"),
        ("jemalloc", "libjemalloc.so.2"),
        ("tcmalloc", "libtcmalloc_minimal.so.4"),
    ]
    .into_iter()
    .filter(|(_, f)| Path::new(&format!("/usr/lib/{arch}-linux-gnu/{f}")).exists())
    .map(|(n, _)| n)
    .collect()
}

#[test]
fn compare_runs_a_short_command() {
    let out = tmp("compare");
    let input = out.join("words.txt");
    std::fs::write(
        &input,
        (0..2000)
            .map(|i| format!("{}\n", (i * 7919) % 2003))
            .collect::<String>(),
    )
    .unwrap();
    let mut allocs = vec!["glibc"];
    allocs.extend(installed());
    // libhakmem.so too when it was built beside this binary (scripts/test.sh builds it first).
    if Path::new(BIN).with_file_name("libhakmem.so").exists() {
        allocs.push("hakmem");
    }
    let list = allocs.join(",");
    let o = run(
        &[
            "compare",
            "--reps",
            "2",
            "--allocators",
            &list,
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "sort",
            "-n",
            input.to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("== compare =="), "{t}");
    let v = json(&out.join("compare.json"));
    assert_eq!(v["info"]["mode"], "compare");
    let program = ["sort", "-n", input.to_str().unwrap()];
    assert_eq!(v["info"]["program"], serde_json::json!(program));
    // The tables name the program by a short label; the whole command is printed once above.
    let scen = "sort -n ...";
    assert!(
        t.contains(&format!("command: {}", program.join(" "))),
        "{t}"
    );
    for a in &allocs {
        for m in ["wall_ms", "user_ms", "sys_ms", "minflt", "peak_rss_kib"] {
            let r = records(&v, scen, a, m);
            assert_eq!(r.len(), 1, "{a} {m}: {t}");
            assert_eq!(r[0]["reps"].as_array().unwrap().len(), 2);
        }
        assert!(
            records(&v, scen, a, "peak_rss_kib")[0]["median"]
                .as_f64()
                .unwrap()
                > 100.0
        );
    }
    assert!(out.join("compare.csv").exists() && out.join("compare.md").exists());
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    // Nothing from the suites' report that does not apply to one program's run.
    assert!(
        !md.contains("ops/s") && !md.contains("Geometric mean"),
        "{md}"
    );
    for a in &allocs {
        assert!(
            md.contains(&format!("- {a}: ")),
            "no version line for {a}: {md}"
        );
    }
    let rss = std::fs::read_to_string(out.join("compare-rss.svg")).unwrap();
    assert!(rss.contains("peak RSS of `sort -n ...`"), "{rss}");
}

#[test]
fn compare_reports_missing_and_unusable_libraries() {
    let out = tmp("compare-missing");
    let arch = std::env::consts::ARCH;
    let libm = [
        format!("/lib/{arch}-linux-gnu/libm.so.6"),
        format!("/usr/lib/{arch}-linux-gnu/libm.so.6"),
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or_default();
    let fake = format!("nomalloc={libm}");
    let o = run(
        &[
            "compare",
            "--reps",
            "1",
            "--allocators",
            "glibc,hakmem,nomalloc",
            "--hakmem-lib",
            "/nonexistent/libhakmem.so",
            "--lib",
            &fake,
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "true",
        ],
        &[],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("/nonexistent/libhakmem.so"), "{t}");
    if !libm.is_empty() {
        assert!(t.contains("does not define malloc"), "{t}");
    }
    let v = json(&out.join("compare.json"));
    assert_eq!(records(&v, "true", "glibc", "wall_ms").len(), 1, "{t}");
    // The program's peak RSS is its own, not the runner's (see compare::launcher_main).
    let rss = records(&v, "true", "glibc", "peak_rss_kib")[0]["median"]
        .as_f64()
        .unwrap();
    assert!(rss < 3072.0, "peak RSS of `true` is {rss} KiB");
    assert!(v["errors"].as_array().unwrap().len() >= 2);
}

#[test]
fn learn_suite_quick_has_every_candidate_with_a_finite_score() {
    let out = tmp("learn");
    let o = run(
        &[
            "--quick",
            "--suite",
            "learn",
            "--reps",
            "1",
            "--no-progress",
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("== learn ==") && t.contains("Warm start on"),
        "{t}"
    );
    let v = json(&out.join("results.json"));
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{t}");
    let l = &v["learn"];
    let mut want: Vec<String> = hakmem::strategy::DEFAULTS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    want.push("default-again".into());
    want.push("learn-elo".into());
    want.push("learn-ucb1".into());
    let cands: Vec<String> = l["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cands, want);
    let rows = l["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "vm, mixed, pressure, phase, larson");
    for r in rows {
        let cells = r["cells"].as_array().unwrap();
        assert_eq!(cells.len(), want.len());
        for (c, name) in cells.iter().zip(&want) {
            assert_eq!(c["variant"], name.as_str());
            let s = c["score"].as_f64().unwrap_or(f64::NAN);
            // Scores are over the lowest values of the runs but the repeat of `default` (a noise
            // probe, not normalised by): only the repeat may land below 1.
            let floor = if name == "default-again" { 0.0 } else { 0.999 };
            assert!(
                s.is_finite() && s > 0.0 && s >= floor,
                "{} {name}: score {s}",
                r["scenario"]
            );
            assert!(c["mean_rss_kib"].as_f64().unwrap() > 0.0);
        }
        assert!(r["best_fixed"].as_str().is_some());
        // The table shows every candidate.
        for name in &want {
            assert!(
                t.contains(name.as_str()),
                "{name} missing from the table:\n{t}"
            );
        }
        let sc = r["scenario"].as_str().unwrap();
        assert_eq!(records(&v, sc, "hakmem:learn-elo", "epochs").len(), 1);
    }
    let pairs = l["warm_start"]["pairs"].as_array().unwrap();
    assert!(!pairs.is_empty());
    assert!(pairs.iter().all(|p| p[1]["epochs"].as_u64().is_some()
        && p[1]["trained_epochs"].as_u64() > p[0]["trained_epochs"].as_u64()));
    let cost = l["cost"].as_array().unwrap();
    // Four fastpath scenarios, each with learning and with the call-site telemetry against off.
    assert_eq!(cost.len(), 8);
    assert!(cost
        .iter()
        .all(|c| c["diff_pct"].as_f64().unwrap().is_finite()));
    for with in ["learn=elo", "sites=1"] {
        assert_eq!(cost.iter().filter(|c| c["with"] == with).count(), 4);
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("## learn") && md.contains("| vm | score |"),
        "{md}"
    );
    // The header says what ran: hakmem alone, the repetitions per variant, no ratios to mimalloc.
    assert!(
        md.contains("hakmem only (the learn suite): 1 repetition per variant, 1 for the cost runs"),
        "{md}"
    );
    assert!(!md.contains("divided by mimalloc"), "{md}");
}
