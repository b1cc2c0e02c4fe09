//! The exit report in a Rust program with hakmem as its `#[global_allocator]` (no libhakmem.so):
//! `HAKMEM_STATS=1` prints it once at exit, `hakmem::stats::print()` prints one when called, and
//! without either nothing is printed. The environment is read at the first allocation, so each
//! case re-runs this test binary as a child (`child` below) with its own environment.

use std::process::Command;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

const CHILD: &str = "HAKMEM_TEST_REPORT_CHILD";
const HEADER: &str = "hakmem: ======== report of pid ";

/// Runs `child` in a fresh process with `CHILD=case` and `env`; returns (its pid, its stderr).
fn run_child(case: &str, env: &[(&str, &str)]) -> (u32, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env_remove("HAKMEM_STATS")
        .env_remove("HAKMEM_STATS_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "child {case} failed\n{stdout}\n{stderr}"
    );
    (pid, stderr)
}

/// The child: some small and large allocations, then `hakmem::stats::print()` if the case says so.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    let small: Vec<String> = (0..10_000).map(|i| format!("block {i}")).collect();
    let big = vec![7u8; 16 << 20];
    assert_eq!(small[9_999], "block 9999");
    assert_eq!(
        big.iter().map(|&b| b as usize).sum::<usize>(),
        7 * (16 << 20)
    );
    drop(big);
    if case == "print" {
        hakmem::stats::print();
    }
    println!("child ok");
}

#[test]
fn hakmem_stats_prints_the_report_once_at_exit() {
    let (pid, stderr) = run_child("exit", &[("HAKMEM_STATS", "1")]);
    let exe = std::env::current_exe().unwrap();
    assert_eq!(stderr.matches(HEADER).count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{HEADER}{pid}, program {}", exe.display())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("end of report of pid {pid} ")));
    // The 16 MiB vector was a large block: "in large blocks  0 B  18.0 MiB  ..." (its mapping
    // is rounded up to whole huge pages).
    let large = stderr
        .lines()
        .find(|l| l.starts_with("hakmem:   in large blocks "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let words: Vec<&str> = large.split_whitespace().collect();
    let mib = words.iter().position(|&w| w == "MiB").expect(large);
    assert!(words[mib - 1].parse::<f64>().unwrap() >= 16.0, "{large}");
}

#[test]
fn print_reports_on_demand_and_nothing_is_printed_unasked() {
    let (pid, stderr) = run_child("print", &[]);
    assert_eq!(stderr.matches(HEADER).count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{HEADER}{pid},")), "{stderr}");
    let (_, stderr) = run_child("exit", &[]);
    assert!(!stderr.contains("hakmem:"), "{stderr}");
}
