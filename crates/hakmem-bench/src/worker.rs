//! One measurement in its own process: the runner re-executes itself as
//! `hakmem-bench __worker '<job json>'`; the worker runs one scenario on one allocator, prints one line
//! `HAKMEM_BENCH_SAMPLE {json}` and exits, so peak RSS and page faults belong to that allocator alone.

use crate::alloc::AllocKind;
use crate::stats;
use crate::suites::{self, Params};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const MARKER: &str = "HAKMEM_BENCH_SAMPLE ";

/// Set to an allocator's name, makes that allocator's workers abort: a test aid for crash handling.
pub const FAULT_ENV: &str = "HAKMEM_BENCH_FAULT";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub scenario: String,
    pub allocator: AllocKind,
    pub params: Params,
}

/// What a worker reports for one repetition.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Median ns per cycle for scenarios timed per cycle, else wall ns / ops.
    pub ns_per_op: f64,
    pub p95_ns: Option<f64>,
    pub p99_ns: Option<f64>,
    pub ops: u64,
    pub elapsed_ns: u64,
    pub ops_per_s: Option<f64>,
    /// Minor page faults during the scenario (getrusage delta, all threads).
    pub minflt: u64,
    /// Peak RSS of the worker process (ru_maxrss), baseline included.
    pub peak_rss_kib: u64,
    /// ru_maxrss before the scenario started: the worker's own baseline.
    pub base_rss_kib: u64,
    pub checksum: u64,
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF is always valid.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

/// The worker side: run the job and print the sample line.
pub fn worker_main(job_json: &str) -> Result<(), String> {
    let job: Job = serde_json::from_str(job_json).map_err(|e| format!("bad worker job: {e}"))?;
    if std::env::var(FAULT_ENV).is_ok_and(|v| v == job.allocator.name()) {
        eprintln!(
            "{FAULT_ENV}={} set: aborting on purpose",
            job.allocator.name()
        );
        std::process::abort();
    }
    if suites::find(&job.scenario).is_none() {
        return Err(format!("unknown scenario `{}`", job.scenario));
    }
    let before = rusage();
    let out = crate::with_alloc!(job.allocator, |a| suites::run(
        a,
        &job.scenario,
        &job.params
    ))?;
    let after = rusage();
    let ops = out.ops.max(1);
    let (ns_per_op, p95, p99) = match out.per_op_ns {
        Some(mut v) => match stats::summarize_ns(&mut v) {
            Some((m, p95, p99)) => (m, Some(p95), Some(p99)),
            None => (0.0, None, None),
        },
        None => (out.elapsed_ns as f64 / ops as f64, None, None),
    };
    let sample = Sample {
        ns_per_op,
        p95_ns: p95,
        p99_ns: p99,
        ops: out.ops,
        elapsed_ns: out.elapsed_ns,
        ops_per_s: out
            .throughput
            .then(|| ops as f64 / (out.elapsed_ns.max(1) as f64 / 1e9)),
        minflt: (after.ru_minflt - before.ru_minflt).max(0) as u64,
        peak_rss_kib: after.ru_maxrss.max(0) as u64,
        base_rss_kib: before.ru_maxrss.max(0) as u64,
        checksum: std::hint::black_box(out.checksum),
    };
    println!(
        "{MARKER}{}",
        serde_json::to_string(&sample).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// The runner side: run `job` in a fresh process of `exe`, with a time limit.
pub fn spawn(exe: &Path, job: &Job, timeout: Duration) -> Result<Sample, String> {
    let json = serde_json::to_string(job).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("__worker")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start worker {}: {e}", exe.display()))?;
    // Drain the pipes on their own threads so a chatty worker cannot block on a full pipe.
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "worker timed out after {} s (--timeout)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => break Err(format!("waiting for worker: {e}")),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let status = status?;
    let tail = last_lines(&stderr, 4);
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let how = match status.signal() {
            Some(sig) => format!("was killed by signal {sig} ({})", signal_name(sig)),
            None => format!("exited with status {}", status.code().unwrap_or(-1)),
        };
        return Err(if tail.is_empty() {
            format!("worker {how}")
        } else {
            format!("worker {how}: {tail}")
        });
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARKER))
        .ok_or_else(|| format!("worker printed no result line; stderr: {tail}"))?;
    serde_json::from_str(line).map_err(|e| format!("bad worker result: {e}"))
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
