//! The `HAKMEM_*` variables under LD_PRELOAD (c/settings.c prints `hak_config_get` and whether a
//! 4 MiB block's mapping is advised huge pages): a value not understood gives one warning line
//! naming the variable, its value, what is accepted and the default used, and the default
//! applies; the switch spellings (on/off, yes/no, true/false, any case) and numbers in range take
//! effect, `HAKMEM_SAFE_FREE=yes` catching a planted overflow.
mod common;
use common::*;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

fn lib_dir() -> PathBuf {
    lib_path().parent().unwrap().to_path_buf()
}

fn compile_settings(td: &TempDir) -> PathBuf {
    let inc = format!(
        "-I{}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("include")
            .display()
    );
    let ld = format!("-L{}", lib_dir().display());
    compile_c(Path::new("settings.c"), td.path(), &[&inc, &ld, "-lhakmem"])
}

/// Runs settings.c with `env` (and nothing else of hakmem's); returns its `settings:` values and
/// its stderr.
fn run(exe: &Path, env: &[(&str, &str)]) -> (HashMap<String, String>, String) {
    let mut c = Child::new(exe)
        .preload(true)
        .env("LD_LIBRARY_PATH", lib_dir().to_str().unwrap())
        .timeout(60);
    for (k, v) in env {
        c = c.env(k, v);
    }
    let r = c.run_ok("settings");
    let kv = parse_kv(&r.stdout, "settings: ");
    assert!(kv.contains_key("safe_free"), "{}", r.describe());
    (kv, r.stderr)
}

/// Whether the kernel knows transparent huge pages (else nothing is ever advised huge).
fn thp_supported() -> bool {
    Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists()
}

#[test]
fn values_not_understood_warn_once_each_and_keep_the_defaults() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("settings-bad");
    let exe = compile_settings(&td);
    let bad = [
        ("HAKMEM_THP", "maybe"),
        ("HAKMEM_SAFE_FREE", "2"),
        ("HAKMEM_DISABLE_BIGCACHE", "sure"),
        ("HAKMEM_SITES", "y"),
        ("HAKMEM_STATS", "loud"),
        ("HAKMEM_PURGE_DELAY_MS", "-5"),
        ("HAKMEM_SS_WARM", "1e3"),
        ("HAKMEM_SS_COLD", "65537"),
        ("HAKMEM_BIGCACHE_MB", "99999999999999999"),
        ("HAKMEM_STRATEGY", "no-such-strategy"),
        ("HAKMEM_LEARN", "maybe"),
        ("HAKMEM_MODE", "slow"),
    ];
    let (kv, stderr) = run(&exe, &bad);
    for (name, value) in bad {
        let head = format!("hakmem: {name}={value} is not understood; accepted: ");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&head)).collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(lines[0].contains("; using the default: "), "{}", lines[0]);
    }
    // Nothing else: one line per bad variable.
    let warnings = stderr.lines().filter(|l| l.starts_with("hakmem: ")).count();
    assert_eq!(warnings, bad.len(), "{stderr}");
    assert!(stderr.contains(
        "hakmem: HAKMEM_THP=maybe is not understood; accepted: 1/0, on/off, yes/no, true/false; \
         using the default: on"
    ));
    assert!(stderr.contains(
        "hakmem: HAKMEM_BIGCACHE_MB=99999999999999999 is not understood; accepted: decimal \
         digits, 0 to 1048576; using the default: the fixed strategy's value"
    ));
    assert!(
        stderr.contains("accepted: default, balanced, fast, lean, "),
        "{stderr}"
    );
    let want = [
        ("safe_free", "0"),
        ("bigcache_enabled", "1"),
        ("purge_delay_ms", "50"),
        ("ss_warm_max", "32"),
        ("ss_cold_max", "64"),
        ("bigcache_bytes", "67108864"),
    ];
    for (k, v) in want {
        assert_eq!(kv[k], v, "{k}: {kv:?}");
    }
    if thp_supported() {
        assert_eq!(kv["thp_advised"], "1", "{kv:?}");
    }
}

#[test]
fn the_usual_spellings_and_numbers_in_range_take_effect() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("settings-good");
    let exe = compile_settings(&td);
    let (kv, stderr) = run(
        &exe,
        &[
            ("HAKMEM_THP", "off"),
            ("HAKMEM_SAFE_FREE", "yes"),
            ("HAKMEM_DISABLE_BIGCACHE", "TRUE"),
            ("HAKMEM_STATS", "On"),
            ("HAKMEM_PURGE_DELAY_MS", "1000"),
            ("HAKMEM_SS_COLD", "0"),
            ("HAKMEM_BIGCACHE_MB", "1048576"),
            ("HAKMEM_LEARN", "no"),
        ],
    );
    assert!(!stderr.contains("not understood"), "{stderr}");
    let want = [
        ("thp_advised", "0"),
        ("safe_free", "1"),
        ("bigcache_enabled", "0"),
        ("purge_delay_ms", "1000"),
        ("ss_cold_max", "0"),
        ("bigcache_bytes", "1099511627776"),
    ];
    for (k, v) in want {
        assert_eq!(kv[k], v, "{k}: {kv:?}");
    }
    // HAKMEM_STATS=On: the counters and the learner's state (off) at exit.
    assert!(stderr.contains("hakmem:   refills "), "{stderr}");
    assert!(stderr.contains("hakmem: learning off"), "{stderr}");
    if thp_supported() {
        let (kv, _) = run(&exe, &[("HAKMEM_THP", "Yes")]);
        assert_eq!(kv["thp_advised"], "1", "{kv:?}");
        let (kv, _) = run(&exe, &[("HAKMEM_THP", "0")]);
        assert_eq!(kv["thp_advised"], "0", "{kv:?}");
    }
}

/// `HAKMEM_SAFE_FREE=yes` (and `true`) really runs the full checks: the one-byte overflow of
/// bugs/overflow.c, which only they catch, is reported; with `no` it goes unnoticed.
#[test]
fn safe_free_yes_catches_a_planted_overflow() {
    if !lib_is_hakmem() {
        eprintln!("skipped: {} is not hakmem", lib_str());
        return;
    }
    let td = TempDir::new("settings-safe");
    let exe = compile_c(Path::new("bugs/overflow.c"), td.path(), &[]);
    let run = |value: &str| {
        // No core file from the abort.
        Child::new("/bin/sh")
            .args_vec(&["-c", "ulimit -c 0 && exec \"$0\"", exe.to_str().unwrap()])
            .preload(true)
            .env("HAKMEM_SAFE_FREE", value)
            .cwd(td.path())
            .timeout(60)
            .run()
    };
    for on in ["yes", "true"] {
        let r = run(on);
        assert_eq!(r.status.signal(), Some(libc::SIGABRT), "{}", r.describe());
        assert!(
            r.stderr.contains("free(): buffer overflow"),
            "{}",
            r.describe()
        );
    }
    let r = run("no");
    assert_eq!(r.status.code(), Some(3), "{}", r.describe());
    assert!(r.stdout.contains("bug not detected"), "{}", r.describe());
}
