//! The learning layer and call-site profiles from C: the exit report (`HAKMEM_STATS=json` into
//! `HAKMEM_STATS_FILE`) is valid JSON with the counters, the tuner's state and the call sites;
//! explicit sites (`hak_alloc_at`/`hak_free_at`) get their sizes and relative lifetimes right and
//! the caller of `malloc` is sampled for large blocks; learning under the preload runs epochs,
//! keeps every block intact (thread churn, content-checked) and writes its playbook at exit. The
//! playbook file: a good one round-trips (through a temporary file and a rename), a file that is
//! not a playbook is never overwritten, an unwritable path and a playbook without learning are
//! warned about.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn compile_linked(name: &str, td: &TempDir) -> PathBuf {
    let inc = format!(
        "-I{}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("include")
            .display()
    );
    let ld = format!("-L{}", lib_path().parent().unwrap().display());
    compile_c(Path::new(name), td.path(), &[&inc, &ld, "-lhakmem"])
}

/// Runs python3 `script` with the report file as argv[1]; the script asserts what it must.
fn check_report(report: &Path, script: &str) {
    let out = Command::new(python3())
        .args(["-c", script, report.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report check failed:\n{}\n{}\nreport: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(report).unwrap_or_default()
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn call_sites_are_profiled_and_reported_as_json() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("sites");
    let exe = compile_linked("learn/sites.c", &td);
    let report = td.join("stats.json");
    let r = Child::new(&exe)
        .preload(true)
        .env(
            "LD_LIBRARY_PATH",
            lib_path().parent().unwrap().to_str().unwrap(),
        )
        .env("HAKMEM_STATS", "json")
        .env("HAKMEM_STATS_FILE", report.to_str().unwrap())
        .timeout(120)
        .run_ok("sites");
    assert!(r.stdout.contains("sites: 0 failures"), "{}", r.describe());
    check_report(
        &report,
        r#"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["hakmem_stats"]["large_allocs"] > 0, r["hakmem_stats"]
assert r["tuning"]["learning"] is False and r["tuning"]["strategy"] == "default", r["tuning"]
sites = {s["site"]: s for s in r["call_sites"]["sites"]}
for site, lo, hi in [("0x1000", 32, 64), ("0x2000", 768, 1280), ("0x3000", 16384, 24576)]:
    s = sites[site]
    assert s["allocs"] > 0 and s["frees"] > 0, s
    assert lo <= s["size_p50"] <= hi, s
# Kept for 64 rounds against freed at once: clearly longer-lived.
assert sites["0x2000"]["lifetime_us"] > sites["0x1000"]["lifetime_us"], sites
# The caller of malloc for the 600000-byte blocks (a code address), with its frees.
big = [s for k, s in sites.items() if k not in ("0x1000", "0x2000", "0x3000")
       and s["size_p50"] >= 500000]
assert big and big[0]["frees"] > 0 and int(big[0]["site"], 16) > 0x10000, sites
print("sites ok:", sorted(sites))
"#,
    );
    // With learning on, hak_evolve_playbook works (sites.c checks its result).
    let r = Child::new(&exe)
        .preload(true)
        .env(
            "LD_LIBRARY_PATH",
            lib_path().parent().unwrap().to_str().unwrap(),
        )
        .env("HAKMEM_LEARN", "elo")
        .timeout(120)
        .run_ok("sites with learning");
    assert!(r.stdout.contains("sites: 0 failures"), "{}", r.describe());
}

#[test]
fn learning_under_the_preload_reports_and_saves_its_playbook() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("learn-preload");
    let exe = compile_c(Path::new("churn.c"), td.path(), &["-pthread"]);
    let report = td.join("stats.json");
    let book = td.join("playbook");
    for selector in ["elo", "ucb1"] {
        // Reports are appended: one run's report alone in the file.
        let _ = std::fs::remove_file(&report);
        let r = Child::new(&exe)
            .args_vec(&["3000", "128"])
            .preload(true)
            .env("HAKMEM_LEARN", selector)
            .env("HAKMEM_MODE", "lean")
            .env("HAKMEM_PLAYBOOK", book.to_str().unwrap())
            .env("HAKMEM_STATS", "json")
            .env("HAKMEM_STATS_FILE", report.to_str().unwrap())
            .timeout(300)
            .run_ok("churn under learning");
        assert!(!r.stderr.contains("HAKMEM_PLAYBOOK"), "{}", r.describe());
        assert!(std::fs::read(&book).unwrap().starts_with(b"HAKMEMPB"));
        check_report(
            &report,
            &format!(
                r#"
import json, sys
t = json.load(open(sys.argv[1]))["tuning"]
assert t["learning"] is True and t["selector"] == "{selector}" and t["mode"] == "lean", t
assert t["epochs"] > 0 and len(t["leaderboard"]) >= 6, t
assert sum(1 for e in t["leaderboard"] if e["chosen"]) >= 1, t
print("{selector}:", t["epochs"], "epochs, chosen", [e["name"] for e in t["leaderboard"] if e["chosen"]])
"#
            ),
        );
    }
}

/// Runs c/settings.c (a short program) with learning `learn` and `HAKMEM_PLAYBOOK=book`; returns
/// its stderr.
fn run_with_playbook(exe: &Path, learn: Option<&str>, book: &Path) -> String {
    let mut c = Child::new(exe)
        .preload(true)
        .env(
            "LD_LIBRARY_PATH",
            lib_path().parent().unwrap().to_str().unwrap(),
        )
        .env("HAKMEM_PLAYBOOK", book.to_str().unwrap())
        .timeout(60);
    if let Some(l) = learn {
        c = c.env("HAKMEM_LEARN", l);
    }
    c.run_ok("settings with a playbook").stderr
}

/// The names in `dir` other than `keep`.
fn other_files(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_good_playbook_round_trips_through_a_rename() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("pb-good");
    let exe = compile_linked("settings.c", &td);
    let book = td.join("playbook");
    for run in 0..2 {
        let err = run_with_playbook(&exe, Some("elo"), &book);
        assert!(!err.contains("hakmem:"), "run {run}: {err}");
        let bytes = std::fs::read(&book).unwrap();
        assert!(
            bytes.starts_with(b"HAKMEMPB") && bytes.len() > 48,
            "run {run}"
        );
        // No temporary file left behind.
        assert_eq!(
            other_files(td.path(), &["settings", "playbook"]),
            Vec::<String>::new()
        );
    }
}

#[test]
fn a_file_that_is_not_a_playbook_is_never_overwritten() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("pb-foreign");
    let exe = compile_linked("settings.c", &td);
    let book = td.join("services");
    let text: String = (0..300)
        .map(|i| format!("service{i}\t{}/tcp\t# a line of text\n", 1000 + i))
        .collect();
    for content in [text.as_bytes(), b"HAKMEM"] {
        std::fs::write(&book, content).unwrap();
        let err = run_with_playbook(&exe, Some("elo"), &book);
        assert_eq!(std::fs::read(&book).unwrap(), content, "{err}");
        let path = book.display();
        assert!(
            err.contains(&format!(
                "hakmem: cannot use HAKMEM_PLAYBOOK file {path}: not a hakmem playbook; starting cold"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "hakmem: cannot write HAKMEM_PLAYBOOK file {path}: not a hakmem playbook; not saved"
            )),
            "{err}"
        );
        assert_eq!(
            other_files(td.path(), &["settings", "services"]),
            Vec::<String>::new()
        );
    }
}

#[test]
fn an_unwritable_playbook_path_is_warned_about() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("pb-unwritable");
    let exe = compile_linked("settings.c", &td);
    let book = td.join("no-such-dir").join("playbook");
    let err = run_with_playbook(&exe, Some("ucb1"), &book);
    let want = format!(
        "hakmem: cannot write HAKMEM_PLAYBOOK file {}: No such file or directory (errno 2); not saved",
        book.display()
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("hakmem:")).collect();
    assert_eq!(lines, [want.as_str()], "{err}");
}

#[test]
fn a_playbook_without_learning_is_warned_about() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("pb-no-learn");
    let exe = compile_linked("settings.c", &td);
    let book = td.join("playbook");
    for learn in [None, Some("off"), Some("0")] {
        let err = run_with_playbook(&exe, learn, &book);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("hakmem:")).collect();
        assert_eq!(
            lines,
            [
                "hakmem: HAKMEM_PLAYBOOK is ignored because learning is off (HAKMEM_LEARN is not \
                 elo or ucb1)"
            ],
            "{learn:?}"
        );
        assert!(!book.exists());
    }
}
