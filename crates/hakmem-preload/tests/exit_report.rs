//! The exit report (`HAKMEM_STATS`) under LD_PRELOAD, as people use it: it survives programs that
//! close stderr before they exit (c/report/report.c, `ls`, `sort`) and never lands in a file the
//! program opened on descriptor 2; `HAKMEM_STATS_FILE` takes `%p` (the pid) and appends, one
//! report per process, each headed with its pid and program; call sites are named as module +
//! offset that addr2line resolves to the function that called malloc; the memory figures are
//! there and plausible (64 MiB of large blocks show as at least that); JSON is one valid object
//! per line; every column the report prints is explained in it.
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADER: &str = "hakmem: ======== report of pid ";

fn report_exe(td: &TempDir) -> PathBuf {
    compile_c(Path::new("report/report.c"), td.path(), &[])
}

/// The text reports in `s`: each from its header to the next one.
fn text_reports(s: &str) -> Vec<&str> {
    let starts: Vec<usize> = s.match_indices(HEADER).map(|(i, _)| i).collect();
    let ends = starts.iter().skip(1).copied().chain([s.len()]);
    starts.iter().zip(ends).map(|(&a, b)| &s[a..b]).collect()
}

/// The JSON reports in a file: one object per line.
fn json_reports(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_report_survives_programs_that_close_stderr() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("report-close");
    let exe = report_exe(&td);
    let r = Child::new(&exe)
        .arg("close")
        .preload(true)
        .env("HAKMEM_STATS", "1")
        .run_ok("report close");
    let reports = text_reports(&r.stderr);
    assert_eq!(reports.len(), 1, "{}", r.describe());
    assert!(
        reports[0].contains("end of report of pid"),
        "{}",
        r.describe()
    );

    // Real programs: coreutils close stdout and stderr in an atexit handler.
    let input = td.join("numbers");
    std::fs::write(
        &input,
        (0..2000)
            .rev()
            .map(|i| format!("{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let sorted = td.join("sorted");
    let runs = [
        ("ls", Child::new("ls").arg("/")),
        (
            "sort",
            Child::new("sort")
                .args_vec(&["-n", input.to_str().unwrap()])
                .stdout_to(&sorted),
        ),
    ];
    for (name, child) in runs {
        let r = child.preload(true).env("HAKMEM_STATS", "1").run_ok(name);
        let reports = text_reports(&r.stderr);
        assert_eq!(reports.len(), 1, "{name}: {}", r.describe());
        assert!(
            reports[0].contains(&format!(", program {name} ========")),
            "{name}: {}",
            reports[0]
        );
    }
    assert!(std::fs::read_to_string(&sorted)
        .unwrap()
        .starts_with("0\n1\n2\n"));
}

#[test]
fn the_report_never_goes_into_a_file_opened_on_descriptor_2() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("report-reuse");
    let exe = report_exe(&td);
    let data = td.join("data");
    let r = Child::new(&exe)
        .args_vec(&["reuse", data.to_str().unwrap()])
        .preload(true)
        .env("HAKMEM_STATS", "1")
        .run_ok("report reuse");
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "data only\n");
    assert_eq!(text_reports(&r.stderr).len(), 1, "{}", r.describe());
}

#[test]
fn stats_files_take_the_pid_and_collect_one_report_per_process() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("report-files");
    let exe = report_exe(&td);
    // %p: one file per process, named with its pid, holding that process's report.
    let pattern = td.join("report.%p.txt");
    for _ in 0..2 {
        Child::new(&exe)
            .preload(true)
            .env("HAKMEM_STATS", "1")
            .env("HAKMEM_STATS_FILE", pattern.to_str().unwrap())
            .run_ok("report to %p");
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(td.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".txt"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let pid = name.trim_start_matches("report.").trim_end_matches(".txt");
        let text = std::fs::read_to_string(f).unwrap();
        let reports = text_reports(&text);
        assert_eq!(reports.len(), 1, "{name}: {text}");
        assert!(
            reports[0].starts_with(&format!("{HEADER}{pid}, program {}", exe.display())),
            "{name}: {text}"
        );
    }

    // One file for every process: reports are appended, one JSON object per line.
    let shared = td.join("all.json");
    let _ = std::fs::remove_file(&shared);
    for _ in 0..2 {
        Child::new(&exe)
            .preload(true)
            .env("HAKMEM_STATS", "json")
            .env("HAKMEM_STATS_FILE", shared.to_str().unwrap())
            .run_ok("report appended");
    }
    let script = format!(
        "ls / | sort -r | head -n 1000 >/dev/null; {} sites",
        exe.display()
    );
    Child::new("/bin/sh")
        .args_vec(&["-c", &script])
        .preload(true)
        .env("HAKMEM_STATS", "json")
        .env("HAKMEM_STATS_FILE", shared.to_str().unwrap())
        .run_ok("a pipeline");
    let reports = json_reports(&shared);
    let mut pids: Vec<u64> = reports.iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    let programs: Vec<&str> = reports
        .iter()
        .map(|r| r["program"].as_str().unwrap())
        .collect();
    pids.sort();
    pids.dedup();
    assert_eq!(
        pids.len(),
        reports.len(),
        "one report per process: {programs:?}"
    );
    let exe_runs = programs
        .iter()
        .filter(|&&p| p == exe.to_str().unwrap())
        .count();
    assert_eq!(exe_runs, 3, "{programs:?}");
    for name in ["ls", "sort", "head"] {
        assert!(programs.contains(&name), "{name} missing from {programs:?}");
    }
}

/// What `addr2line -f -e module offset` names: (function, file:line).
fn addr2line(module: &str, offset: &str) -> (String, String) {
    let out = Command::new("addr2line")
        .args(["-f", "-e", module, offset])
        .output()
        .expect("run addr2line (binutils)");
    assert!(out.status.success(), "addr2line failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    (
        lines.next().unwrap_or("").to_string(),
        lines.next().unwrap_or("").to_string(),
    )
}

/// Runs the report program's `step` with the JSON report and returns the executable's path (in a
/// temporary directory, kept while the returned `TempDir` lives) and the one call site the report
/// places in it.
fn the_site_in_the_executable(step: &str) -> (TempDir, String, Value) {
    let td = TempDir::new(&format!("report-{step}"));
    let exe = std::fs::canonicalize(report_exe(&td)).unwrap();
    let exe_path = exe.to_str().unwrap().to_string();
    let json = td.join("sites.json");
    Child::new(&exe)
        .arg(step)
        .preload(true)
        .env("HAKMEM_STATS", "json")
        .env("HAKMEM_STATS_FILE", json.to_str().unwrap())
        .run_ok(&format!("report {step}"));
    let reports = json_reports(&json);
    assert_eq!(reports.len(), 1);
    let sites = reports[0]["call_sites"]["sites"].as_array().unwrap();
    let mine: Vec<&Value> = sites
        .iter()
        .filter(|s| s["module"].as_str() == Some(exe_path.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "one site in {exe_path}: {sites:#?}");
    let site = mine[0].clone();
    (td, exe_path, site)
}

/// malloc's slow paths take malloc's caller as the site, for sizes its thread cache serves (a
/// miss) as for large ones.
#[test]
fn a_thread_cache_miss_names_mallocs_caller() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let (_td, exe_path, s) = the_site_in_the_executable("small");
    assert!((1..=64).contains(&s["size_p50"].as_u64().unwrap()), "{s}");
    let (function, line) = addr2line(&exe_path, s["offset"].as_str().unwrap());
    assert_eq!(function, "allocate_small_here", "{s} -> {line}");
}

#[test]
fn call_sites_are_named_as_module_and_offset() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let (_td, exe_path, s) = the_site_in_the_executable("sites");
    let exe_path = exe_path.as_str();
    assert!(s["allocs"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["size_p50"].as_u64().unwrap() >= 250_000, "{s}");
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
    let offset = s["offset"].as_str().unwrap();
    // The raw address is kept; the difference is the executable's load address (page-aligned).
    assert_eq!(
        (hex(s["site"].as_str().unwrap()) - hex(offset)) % 4096,
        0,
        "{s}"
    );
    let (function, line) = addr2line(exe_path, offset);
    assert_eq!(function, "allocate_here", "{s} -> {line}");
    assert!(line.contains("report.c:"), "{line}");

    // The text report gives the same as module+offset after the raw address.
    let r = Child::new(Path::new(exe_path))
        .arg("sites")
        .preload(true)
        .env("HAKMEM_STATS", "1")
        .run_ok("report sites, text");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(&format!(" {exe_path}+0x")))
        .unwrap_or_else(|| panic!("no site in {exe_path}: {}", r.stderr));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields[1].starts_with("0x"), "{line}");
    let offset = fields.last().unwrap().rsplit_once('+').unwrap().1;
    assert_eq!(addr2line(exe_path, offset).0, "allocate_here", "{line}");
    assert!(
        r.stderr.contains("addr2line -e MODULE OFFSET"),
        "{}",
        r.stderr
    );
}

const MIB: u64 = 1 << 20;

#[test]
fn memory_figures_are_reported_and_plausible() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("report-memory");
    let exe = report_exe(&td);
    let json = td.join("memory.json");
    Child::new(&exe)
        .arg("big")
        .preload(true)
        .env("HAKMEM_STATS", "json")
        .env("HAKMEM_STATS_FILE", json.to_str().unwrap())
        .run_ok("report big");
    let reports = json_reports(&json);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r["program"].as_str(), exe.to_str());
    let s = &r["hakmem_stats"];
    let v = |name: &str| {
        s[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing: {s}"))
    };
    assert!(
        v("rss_bytes") > 0 && v("rss_bytes_peak") >= v("rss_bytes"),
        "{s}"
    );
    // 64 MiB written while alive at once.
    assert!(v("rss_bytes_peak") >= 64 * MIB, "{s}");
    // Small blocks were allocated: free's page map has a SuperSlab's entries.
    assert!(v("page_map_bytes") >= 256, "{s}");
    assert!(v("large_bytes_peak") >= 64 * MIB, "{s}");
    assert!(v("large_bytes_total") >= 64 * MIB, "{s}");
    assert!(v("large_bytes") < MIB, "all freed: {s}");
    assert!(v("mapped_bytes_peak") >= v("large_bytes_peak"), "{s}");
    assert!(v("mapped_bytes_peak") >= v("mapped_bytes"), "{s}");
    assert!(
        v("slab_bytes") > 0 && v("slab_bytes_peak") >= v("slab_bytes"),
        "{s}"
    );
    assert!(v("mapped_bytes") >= v("slab_bytes"), "{s}");
    assert!(
        v("large_allocs") >= 64 && v("large_frees") == v("large_allocs"),
        "{s}"
    );
    let classes = r["size_classes"].as_array().unwrap();
    assert!(!classes.is_empty(), "{r}");
    for c in classes {
        assert!(c["block_size"].as_u64().unwrap() >= 16, "{c}");
        assert!(
            c["slabs"].as_u64().unwrap() <= c["slabs_peak"].as_u64().unwrap(),
            "{c}"
        );
    }
    let refills: u64 = classes.iter().map(|c| c["refills"].as_u64().unwrap()).sum();
    assert_eq!(refills, v("refills"), "{r}");

    // The text report: the same figures for people, and what every column means.
    let r = Child::new(&exe)
        .arg("big")
        .preload(true)
        .env("HAKMEM_STATS", "1")
        .env("HAKMEM_LEARN", "elo")
        .run_ok("report big, text");
    let report = text_reports(&r.stderr)[0];
    let row = |name: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("hakmem:   {name}  ")))
            .unwrap_or_else(|| panic!("no {name} row: {report}"))
    };
    // "hakmem:   in large blocks   0 B   64.3 MiB  large blocks in use (their mappings)"
    let large = row("in large blocks");
    let peak: Vec<&str> = large.split_whitespace().collect();
    let mib = peak.iter().position(|&w| w == "MiB").expect(large);
    assert!(peak[mib - 1].parse::<f64>().unwrap() >= 64.0, "{large}");
    row("process resident");
    row("mapped by hakmem");
    row("in slabs");
    row("page map");
    row("refills");
    for legend in [
        "VmRSS, VmHWM",
        "thread-cache refills from slabs",
        "slabs: held by threads now, and at most",
        "<parent: the one it was mutated from",
        "mean_cost: their cost",
        "lifetime_us: mean",
    ] {
        assert!(report.contains(legend), "{legend} not explained: {report}");
    }
}
