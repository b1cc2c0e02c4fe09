//! The main run: every selected scenario, every allocator in its own worker process, repetitions
//! alternating A B C D A B C D; a progress bar meanwhile and a table per suite as each one ends.

use crate::alloc::AllocKind;
use crate::results::{self, Collector, Failure, Metric, Results, RunInfo};
use crate::suites::{Params, Scenario};
use crate::worker::{self, Job, Sample};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;

/// The columns of the main run's tables.
/// (P95 is in the JSON and CSV only, to keep the table narrow.)
pub const COLUMNS: [Metric; 5] = [
    results::TIME_NS,
    results::P99_NS,
    results::OPS_PER_S,
    results::MINFLT,
    results::PEAK_RSS,
];

pub struct Config {
    pub exe: PathBuf,
    pub scenarios: Vec<&'static Scenario>,
    pub allocators: Vec<AllocKind>,
    pub reps: usize,
    pub params: Params,
    pub timeout: Duration,
    pub mode: String,
    pub command: Vec<String>,
    pub progress: bool,
    /// Things the reader should know, carried into the results.
    pub notes: Vec<String>,
    /// The `learn` suite's selected scenarios (run by `learn::run`, not here).
    pub learn: Vec<&'static Scenario>,
    /// Units of work of the `learn` suite (its own, so that the learner sees as many epochs
    /// whatever the main suites' size).
    pub learn_scale: f64,
    /// Repetitions per variant in the `learn` suite.
    pub learn_reps: usize,
}

/// The progress bar of a run of `total` measurements (hidden unless `cfg.progress`).
pub fn progress_bar(cfg: &Config, total: u64) -> ProgressBar {
    let pb = if cfg.progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb
}

pub fn run(cfg: &Config) -> Results {
    let total = (cfg.scenarios.len() * cfg.allocators.len() * cfg.reps) as u64;
    let pb = progress_bar(cfg, total);
    let mut col = Collector::default();
    let mut errors: Vec<Failure> = Vec::new();
    let mut suite_done: Vec<&str> = Vec::new();
    let info = RunInfo {
        schema: results::SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: results::git_revision(),
        cores: results::cores(),
        kernel: results::kernel(),
        mode: cfg.mode.clone(),
        reps: cfg.reps,
        allocators: cfg
            .allocators
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
        baseline: results::BASELINE.into(),
        created_unix: results::now_unix(),
        command: cfg.command.clone(),
        program: Vec::new(),
        versions: cfg
            .allocators
            .iter()
            .map(|a| (a.name().to_string(), a.version()))
            .collect(),
        loadavg_start: results::loadavg(),
        loadavg_end: Vec::new(),
    };

    for (i, sc) in cfg.scenarios.iter().enumerate() {
        let id = sc.id();
        let mut failed: Vec<AllocKind> = Vec::new();
        for rep in 0..cfg.reps {
            for &alloc in &cfg.allocators {
                pb.set_message(format!(
                    "{id} {} rep {}/{}",
                    alloc.name(),
                    rep + 1,
                    cfg.reps
                ));
                if failed.contains(&alloc) {
                    pb.inc(1);
                    continue; // a worker that failed once is not run again for this scenario
                }
                let job = Job {
                    scenario: id.clone(),
                    allocator: alloc,
                    params: cfg.params.clone(),
                    env: vec![],
                };
                match worker::spawn(&cfg.exe, &job, cfg.timeout) {
                    Ok(s) => add_sample(&mut col, sc.suite, &id, alloc.name(), &s),
                    Err(msg) => {
                        pb.suspend(|| eprintln!("error: {id} on {}: {msg}", alloc.name()));
                        errors.push(Failure {
                            suite: sc.suite.into(),
                            scenario: id.clone(),
                            allocator: alloc.name().into(),
                            message: msg,
                        });
                        failed.push(alloc);
                    }
                }
                pb.inc(1);
            }
        }
        // Print a suite's table as soon as its last scenario is done.
        let last_of_suite = cfg.scenarios.get(i + 1).is_none_or(|n| n.suite != sc.suite);
        if last_of_suite && cfg.progress && !suite_done.contains(&sc.suite) {
            suite_done.push(sc.suite);
            let partial = Results {
                info: info.clone(),
                records: col.snapshot(),
                errors: errors.clone(),
                notes: vec![],
                learn: None,
            };
            for t in crate::table::tables(&partial, &COLUMNS, results::TIME_NS) {
                if t.title == sc.suite {
                    pb.suspend(|| println!("{}", t.render_text()));
                }
            }
        }
    }
    pb.finish_and_clear();
    Results {
        info,
        records: col.finish(),
        errors,
        notes: cfg.notes.clone(),
        learn: None,
    }
}

fn add_sample(col: &mut Collector, suite: &str, id: &str, alloc: &str, s: &Sample) {
    col.add(suite, id, alloc, results::TIME_NS, s.ns_per_op);
    if let Some(v) = s.p95_ns {
        col.add(suite, id, alloc, results::P95_NS, v);
    }
    if let Some(v) = s.p99_ns {
        col.add(suite, id, alloc, results::P99_NS, v);
    }
    if let Some(v) = s.ops_per_s {
        col.add(suite, id, alloc, results::OPS_PER_S, v);
    }
    col.add(suite, id, alloc, results::MINFLT, s.minflt as f64);
    col.add(suite, id, alloc, results::PEAK_RSS, s.peak_rss_kib as f64);
}
