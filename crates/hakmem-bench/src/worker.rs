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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MARKER: &str = "HAKMEM_BENCH_SAMPLE ";

/// Set to an allocator's name, makes that allocator's workers abort: a test aid for crash handling.
pub const FAULT_ENV: &str = "HAKMEM_BENCH_FAULT";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub scenario: String,
    pub allocator: AllocKind,
    pub params: Params,
    /// Environment variables set for this worker (the `learn` suite's `HAKMEM_*`); when there are
    /// any, the learning variables the runner has are not passed on.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// The learning variables a `learn` worker gets only from its job.
pub const LEARN_ENV: [&str; 5] = [
    "HAKMEM_STRATEGY",
    "HAKMEM_LEARN",
    "HAKMEM_MODE",
    "HAKMEM_PLAYBOOK",
    "HAKMEM_SITES",
];

/// What the learner said at the end of a `learn` worker (`hakmem::tuning::status()`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LearnInfo {
    pub learning: bool,
    pub epochs: u64,
    /// Epochs the playbook has learned from, earlier runs included (a warm start).
    pub trained_epochs: u64,
    pub phase: String,
    /// The best strategy known at the end: a candidate's name, or the knobs of an evolved one.
    pub choice: String,
    /// The epoch at which the learner last left LEARN (froze on its final choice), if it did.
    pub settled_epoch: Option<u64>,
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
    /// User + system CPU time of the worker during the scenario (every thread).
    #[serde(default)]
    pub cpu_ns: Option<u64>,
    /// `learn` suite only: minor page faults of the whole worker process so far (start-up included).
    #[serde(default)]
    pub minflt_total: Option<u64>,
    /// `learn` suite only: mean RSS, /proc/self/statm sampled every 5 ms during the scenario.
    #[serde(default)]
    pub mean_rss_kib: Option<f64>,
    #[serde(default)]
    pub learn: Option<LearnInfo>,
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
    let learn = job.scenario.starts_with("learn/");
    let sampler = learn.then(Sampler::start);
    let before = rusage();
    let out = crate::with_alloc!(job.allocator, |a| suites::run(
        a,
        &job.scenario,
        &job.params
    ))?;
    let after = rusage();
    let (mean_rss_kib, settled_epoch) = match sampler {
        Some(s) => {
            let (m, e) = s.stop();
            (Some(m), e)
        }
        None => (None, None),
    };
    let learn_info = learn.then(|| {
        let st = crate::learnapi::status();
        crate::learnapi::finish();
        LearnInfo {
            learning: st.learning,
            epochs: st.epochs,
            phase: st.phase.to_string(),
            trained_epochs: st.trained_epochs,
            choice: match hakmem::strategy::default_name(&st.best) {
                Some(n) => n.to_string(),
                None => crate::learnapi::describe(&st.best),
            },
            settled_epoch: settled_epoch.filter(|_| st.learning && !is_learn(st.phase)),
        }
    });
    let cpu = |r: &libc::rusage| {
        let t = |v: libc::timeval| v.tv_sec as u64 * 1_000_000_000 + v.tv_usec as u64 * 1000;
        t(r.ru_utime) + t(r.ru_stime)
    };
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
        cpu_ns: Some(cpu(&after).saturating_sub(cpu(&before))),
        minflt_total: learn.then(|| after.ru_minflt.max(0) as u64),
        mean_rss_kib,
        learn: learn_info,
    };
    println!(
        "{MARKER}{}",
        serde_json::to_string(&sample).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn is_learn(phase: &str) -> bool {
    phase.eq_ignore_ascii_case("learn")
}

/// Samples the RSS (and the learner's phase) from a thread every 5 ms while a `learn` scenario runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(f64, Option<u64>)>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            // SAFETY: sysconf has no preconditions.
            let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) / 1024) as f64;
            let (mut sum, mut n) = (0.0, 0u64);
            let mut settled = None;
            loop {
                let done = flag.load(Ordering::Relaxed);
                if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
                    .ok()
                    .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
                {
                    sum += pages * page_kib;
                    n += 1;
                }
                let st = crate::learnapi::status();
                if is_learn(st.phase) {
                    settled = None;
                } else if settled.is_none() {
                    settled = Some(st.epochs);
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (sum / n.max(1) as f64, settled)
        });
        Sampler { stop, handle }
    }

    /// Mean RSS in KiB and the epoch the learner last left LEARN at.
    fn stop(self) -> (f64, Option<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or((f64::NAN, None))
    }
}

/// The runner side: run `job` in a fresh process of `exe`, with a time limit.
pub fn spawn(exe: &Path, job: &Job, timeout: Duration) -> Result<Sample, String> {
    let json = serde_json::to_string(job).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    if !job.env.is_empty() {
        for k in LEARN_ENV {
            cmd.env_remove(k);
        }
        cmd.envs(job.env.iter().map(|(k, v)| (k, v)));
    }
    let mut child = cmd
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
