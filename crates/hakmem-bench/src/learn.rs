//! The `learn` suite's runner: hakmem only, each fixed candidate strategy
//! of its learner (`hakmem::strategy::DEFAULTS`, run with `HAKMEM_STRATEGY=<name>`) and the
//! learner itself (`HAKMEM_LEARN=elo|ucb1`) on each workload, one worker process per run; a composite
//! score per workload; a warm start from a saved playbook; and the cost of learning on the fast path.

use crate::alloc::AllocKind;
use crate::results::{self, Collector, Failure, Metric, Results};
use crate::runner::Config;
use crate::stats;
use crate::suites::Scenario;
use crate::table::{fmt_ns, Table};
use crate::worker::{self, Job, LearnInfo, Sample};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Score weights (balanced mode): time, minor faults, mean RSS.
pub const WEIGHTS: [f64; 3] = [0.4, 0.3, 0.3];
/// The candidate the learner is judged against besides the best: the built-in behaviour.
pub const DEFAULT_CANDIDATE: &str = "default";
/// `default` run a second time, as its own column: how far apart two identical configurations
/// land in the same run (the noise floor of every gap), never a candidate itself.
pub const REPEAT: &str = "default-again";
/// The learner variants, after the fixed candidates.
pub const LEARNERS: [&str; 2] = ["elo", "ucb1"];
/// The workload of the warm-start demonstration.
pub const WARM_ON: &str = "learn/pressure";
/// The fast-path scenarios timed with learning off and on, with this many times the suite's work
/// (the default run's fastpath measurements last ~0.1 s, too short for a 1 % question).
pub const COST_SCALE: f64 = 4.0;
/// The cost runs: everything off, learning on, the call-site telemetry on (label, variable, value).
pub const COST_VARIANTS: [(&str, &str, &str); 3] = [
    ("off", "HAKMEM_LEARN", "off"),
    ("learn=elo", "HAKMEM_LEARN", "elo"),
    ("sites=1", "HAKMEM_SITES", "1"),
];
/// The fast-path scenarios timed with learning off and on.
pub const COST_ON: [&str; 4] = [
    "fastpath/lifo-1t",
    "fastpath/random-1t",
    "fastpath/lifo-nt",
    "fastpath/random-nt",
];

pub const CPU_MS: Metric = Metric {
    name: "cpu_ms",
    unit: "ms",
    lower_is_better: true,
};
pub const MEAN_RSS: Metric = Metric {
    name: "mean_rss_kib",
    unit: "KiB",
    lower_is_better: true,
};
pub const MINFLT_TOTAL: Metric = Metric {
    name: "minflt_total",
    unit: "faults",
    lower_is_better: true,
};
pub const EPOCHS: Metric = Metric {
    name: "epochs",
    unit: "epochs",
    lower_is_better: false,
};
pub const SCORE: Metric = Metric {
    name: "score",
    unit: "x best",
    lower_is_better: true,
};

/// One column of the table: a fixed candidate or a learner.
pub struct Variant {
    pub label: String,
    pub env: Vec<(String, String)>,
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every fixed candidate, `default` again (`REPEAT`), then `learn-elo` and `learn-ucb1`.
pub fn variants() -> Vec<Variant> {
    let fixed = |label: &str, name: &str| Variant {
        label: label.to_string(),
        env: env(&[
            ("HAKMEM_STRATEGY", name),
            ("HAKMEM_LEARN", "off"),
            ("HAKMEM_MODE", "balanced"),
        ]),
    };
    let mut v: Vec<Variant> = hakmem::strategy::DEFAULTS
        .iter()
        .map(|(name, _)| fixed(name, name))
        .collect();
    v.push(fixed(REPEAT, DEFAULT_CANDIDATE));
    for l in LEARNERS {
        v.push(Variant {
            label: format!("learn-{l}"),
            env: env(&[("HAKMEM_LEARN", l), ("HAKMEM_MODE", "balanced")]),
        });
    }
    v
}

/// One variant on one workload: medians over the repetitions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    pub variant: String,
    pub score: f64,
    /// Wall and CPU time per operation.
    pub ns_per_op: f64,
    pub cpu_ns_per_op: f64,
    /// Minor faults of the whole worker process (start-up included).
    pub minflt: f64,
    /// Minor faults of the run itself (start-up excluded) per million operations: runs last the
    /// same wall time, not the same work.
    #[serde(default)]
    pub faults_per_mop: f64,
    pub mean_rss_kib: f64,
    pub peak_rss_kib: f64,
    /// Learners: what each repetition ended on ("name, N epochs").
    pub choices: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub cells: Vec<Cell>,
    /// The fixed candidate with the lowest score.
    pub best_fixed: Option<String>,
    /// Score / the best fixed candidate's score - 1, in percent.
    pub gap_pct: Vec<(String, f64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WarmRun {
    pub epochs: u64,
    /// Epochs the playbook had learned from at the end, earlier runs included.
    pub trained_epochs: u64,
    pub settled_epoch: Option<u64>,
    pub phase: String,
    pub choice: String,
    pub ns_per_op: f64,
    /// On the workload's scale in the main table (when it ran there).
    pub score: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WarmStart {
    pub scenario: String,
    /// One cold run then one warm run from the playbook it saved, per repetition (a fresh file
    /// each time).
    pub pairs: Vec<[WarmRun; 2]>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cost {
    pub scenario: String,
    /// What is on: `HAKMEM_LEARN=elo` (learning) or `HAKMEM_SITES=1` (the call-site telemetry).
    #[serde(default)]
    pub with: String,
    /// Median CPU ns per operation with it off and on.
    pub off_ns: f64,
    pub on_ns: f64,
    /// on / off - 1, in percent.
    pub diff_pct: f64,
    /// The same for the fastest repetitions (less sensitive to a noisy machine).
    pub diff_min_pct: f64,
    /// The larger of the two spreads over repetitions (half the range, % of the median).
    pub spread_pct: f64,
}

/// The learn suite's results, beside the records in `results.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Weights of time, minor faults and mean RSS in the score.
    pub weights: Vec<f64>,
    /// Repetitions per variant of the workloads and of the warm start.
    pub reps: usize,
    /// Repetitions per variant of the cost runs.
    #[serde(default)]
    pub cost_reps: usize,
    pub candidates: Vec<String>,
    pub rows: Vec<Row>,
    pub warm_start: Option<WarmStart>,
    pub cost: Vec<Cost>,
}

/// Composite scores of runs `[time per op, faults per million ops, mean RSS]`: each term divided by
/// the lowest value among the runs (faults + 1 per million operations on top of the caller's floor,
/// so that a run without faults never divides by zero), weighted by `WEIGHTS`. The
/// best possible score is 1.0. `best` gives the lowest values (`None`: those of `vals`).
pub fn scores(vals: &[[f64; 3]], best: Option<[f64; 3]>) -> Vec<f64> {
    let best = best.unwrap_or_else(|| lowest(vals));
    vals.iter()
        .map(|v| {
            (0..3)
                .map(|j| {
                    let (x, b) = if j == 1 {
                        (v[j] + 1.0, best[j] + 1.0)
                    } else {
                        (v[j], best[j])
                    };
                    WEIGHTS[j] * x / b
                })
                .sum()
        })
        .collect()
}

/// CPU time (user + sys, all threads) of a run per operation: unlike wall time, it does not grow
/// when the worker waits for a core that other processes hold (wall time if unknown).
fn cpu_ns_per_op(s: &Sample) -> f64 {
    match s.cpu_ns {
        Some(ns) if ns > 0 => ns as f64 / s.ops.max(1) as f64,
        _ => s.ns_per_op,
    }
}

/// Minor faults of a run (start-up excluded) per million operations.
fn faults_per_mop(s: &Sample) -> f64 {
    s.minflt as f64 * 1e6 / s.ops.max(1) as f64
}

/// What the score adds to every run's faults per million operations on a workload: the worker's
/// start-up faults (the same for every variant) spread over the median run's operations. As
/// when whole runs' faults were compared, a handful of faults in a run that hardly faults is not
/// a ratio of several times; but a faster run's own faults are no longer spread thinner.
fn fault_floor_per_mop(samples: &[Sample]) -> f64 {
    let startup: Vec<f64> = samples
        .iter()
        .map(|s| s.minflt_total.unwrap_or(s.minflt).saturating_sub(s.minflt) as f64)
        .collect();
    let ops: Vec<f64> = samples.iter().map(|s| s.ops as f64).collect();
    let f = median_of(&startup) * 1e6 / median_of(&ops).max(1.0);
    if f.is_finite() {
        f
    } else {
        0.0
    }
}

fn lowest(vals: &[[f64; 3]]) -> [f64; 3] {
    let mut b = [f64::INFINITY; 3];
    for v in vals {
        for j in 0..3 {
            if v[j].is_finite() && v[j] < b[j] {
                b[j] = v[j];
            }
        }
    }
    b
}

fn label(v: &str) -> String {
    format!("hakmem:{v}")
}

struct Runner<'a> {
    cfg: &'a Config,
    pb: ProgressBar,
    col: Collector,
    errors: Vec<Failure>,
}

impl Runner<'_> {
    /// Runs one job; records its figures under `scenario` x `variant`; None on failure.
    fn run(&mut self, scenario: &str, variant: &str, job: &Job) -> Option<Sample> {
        self.pb
            .set_message(format!("{scenario} {variant} ({})", job.scenario));
        let r = worker::spawn(&self.cfg.exe, job, self.cfg.timeout);
        self.pb.inc(1);
        match r {
            Ok(s) => {
                let (c, a) = (&mut self.col, label(variant));
                c.add("learn", scenario, &a, results::TIME_NS, s.ns_per_op);
                c.add(
                    "learn",
                    scenario,
                    &a,
                    results::WALL_MS,
                    s.elapsed_ns as f64 / 1e6,
                );
                if let Some(v) = s.cpu_ns {
                    c.add("learn", scenario, &a, CPU_MS, v as f64 / 1e6);
                }
                c.add("learn", scenario, &a, results::MINFLT, s.minflt as f64);
                if let Some(v) = s.minflt_total {
                    c.add("learn", scenario, &a, MINFLT_TOTAL, v as f64);
                }
                c.add(
                    "learn",
                    scenario,
                    &a,
                    results::PEAK_RSS,
                    s.peak_rss_kib as f64,
                );
                if let Some(v) = s.mean_rss_kib {
                    c.add("learn", scenario, &a, MEAN_RSS, v);
                }
                if let Some(l) = s.learn.as_ref().filter(|l| l.learning) {
                    c.add("learn", scenario, &a, EPOCHS, l.epochs as f64);
                }
                Some(s)
            }
            Err(msg) => {
                self.pb
                    .suspend(|| eprintln!("error: {scenario} on {variant}: {msg}"));
                self.errors.push(Failure {
                    suite: "learn".into(),
                    scenario: scenario.into(),
                    allocator: label(variant),
                    message: msg,
                });
                None
            }
        }
    }
}

fn job(cfg: &Config, scenario: &str, env: Vec<(String, String)>) -> Job {
    let mut params = cfg.params.clone();
    params.scale = cfg.learn_scale;
    Job {
        scenario: scenario.into(),
        allocator: AllocKind::Hakmem,
        params,
        env,
    }
}

fn min_of(v: &[f64]) -> f64 {
    stats::min(v).unwrap_or(f64::NAN)
}

fn median_of(res: &[f64]) -> f64 {
    stats::median(res).unwrap_or(f64::NAN)
}

/// Runs the learn suite's selected parts (`cfg.learn`) and adds them to `res`.
pub fn run(cfg: &Config, res: &mut Results) {
    let work: Vec<&Scenario> = cfg
        .learn
        .iter()
        .copied()
        .filter(|s| s.name != "warm-start" && s.name != "cost")
        .collect();
    let warm = cfg.learn.iter().any(|s| s.name == "warm-start");
    let cost = cfg.learn.iter().any(|s| s.name == "cost");
    let vars = variants();
    let reps = cfg.learn_reps;
    let total = work.len() * vars.len() * reps
        + if warm { 2 * reps } else { 0 }
        + if cost {
            COST_ON.len() * COST_VARIANTS.len() * cfg.reps
        } else {
            0
        };
    let pb = crate::runner::progress_bar(cfg, total as u64);
    let mut r = Runner {
        cfg,
        pb,
        col: Collector::default(),
        errors: Vec::new(),
    };
    let mut sum = Summary {
        weights: WEIGHTS.to_vec(),
        reps,
        cost_reps: if cost { cfg.reps } else { 0 },
        candidates: vars.iter().map(|v| v.label.clone()).collect(),
        ..Summary::default()
    };
    // Per workload: the lowest [time, faults, mean RSS] medians, to score the warm-start runs.
    let mut bests: Vec<(String, [f64; 3], f64)> = Vec::new();

    for sc in &work {
        let id = sc.id();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); vars.len()];
        for _ in 0..reps {
            for (i, v) in vars.iter().enumerate() {
                if let Some(s) = r.run(&id, &v.label, &job(cfg, &id, v.env.clone())) {
                    samples[i].push(s);
                }
            }
        }
        let mut cells: Vec<Cell> = vars
            .iter()
            .zip(&samples)
            .map(|(v, ss)| {
                let m =
                    |f: &dyn Fn(&Sample) -> f64| median_of(&ss.iter().map(f).collect::<Vec<f64>>());
                Cell {
                    variant: v.label.clone(),
                    score: f64::NAN,
                    ns_per_op: m(&|s| s.ns_per_op),
                    cpu_ns_per_op: m(&cpu_ns_per_op),
                    minflt: m(&|s| s.minflt_total.unwrap_or(s.minflt) as f64),
                    faults_per_mop: m(&faults_per_mop),
                    mean_rss_kib: m(&|s| s.mean_rss_kib.unwrap_or(f64::NAN)),
                    peak_rss_kib: m(&|s| s.peak_rss_kib as f64),
                    choices: ss
                        .iter()
                        .filter_map(|s| s.learn.as_ref().filter(|l| l.learning))
                        .map(describe_run)
                        .collect(),
                }
            })
            .collect();
        let floor = fault_floor_per_mop(&samples.concat());
        let vals: Vec<[f64; 3]> = cells
            .iter()
            .map(|c| [c.cpu_ns_per_op, c.faults_per_mop + floor, c.mean_rss_kib])
            .collect();
        // The repeat is a noise probe, not a run to normalise by.
        let probes: Vec<[f64; 3]> = vals
            .iter()
            .zip(&cells)
            .filter(|(_, c)| c.variant != REPEAT)
            .map(|(v, _)| *v)
            .collect();
        let best = lowest(&probes);
        bests.push((id.clone(), best, floor));
        for (c, s) in cells.iter_mut().zip(scores(&vals, Some(best))) {
            c.score = s;
            if s.is_finite() {
                r.col.add("learn", &id, &label(&c.variant), SCORE, s);
            }
        }
        sum.rows.push(row(id, cells));
    }

    if warm {
        let playbook =
            std::env::temp_dir().join(format!("hakmem-bench-playbook-{}.bin", std::process::id()));
        let mut pairs = Vec::new();
        for _ in 0..reps {
            let _ = std::fs::remove_file(&playbook);
            let mut runs = Vec::new();
            for which in ["cold", "warm"] {
                let e = env(&[
                    ("HAKMEM_LEARN", "elo"),
                    ("HAKMEM_MODE", "balanced"),
                    ("HAKMEM_PLAYBOOK", &playbook.to_string_lossy()),
                ]);
                let s = r.run(
                    "learn/warm-start",
                    &format!("learn-elo-{which}"),
                    &job(cfg, WARM_ON, e),
                );
                runs.push(s.map(|s| warm_run(&s, bests.iter().find(|b| b.0 == WARM_ON))));
            }
            if let [Some(cold), Some(warm)] = &runs[..] {
                pairs.push([cold.clone(), warm.clone()]);
            }
        }
        let _ = std::fs::remove_file(&playbook);
        if !pairs.is_empty() {
            sum.warm_start = Some(WarmStart {
                scenario: WARM_ON.into(),
                pairs,
            });
        }
    }

    if cost {
        for sc in COST_ON {
            let id = format!("learn/cost/{}", sc.trim_start_matches("fastpath/"));
            let mut t: Vec<Vec<f64>> = vec![Vec::new(); COST_VARIANTS.len()];
            for _ in 0..cfg.reps {
                // Interleaved, so a noisy stretch of the machine hits every variant alike.
                for (k, (label, var, val)) in COST_VARIANTS.iter().enumerate() {
                    let e = env(&[(var, val), ("HAKMEM_MODE", "balanced")]);
                    let mut j = job(cfg, sc, e);
                    j.params.scale *= COST_SCALE;
                    if let Some(s) = r.run(&id, label, &j) {
                        t[k].push(cpu_ns_per_op(&s));
                    }
                }
            }
            for k in 1..COST_VARIANTS.len() {
                let (off, on) = (median_of(&t[0]), median_of(&t[k]));
                sum.cost.push(Cost {
                    scenario: sc.into(),
                    with: COST_VARIANTS[k].0.into(),
                    off_ns: off,
                    on_ns: on,
                    diff_pct: (on / off - 1.0) * 100.0,
                    diff_min_pct: (min_of(&t[k]) / min_of(&t[0]) - 1.0) * 100.0,
                    spread_pct: stats::spread_pct(&t[0]).max(stats::spread_pct(&t[k])),
                });
            }
        }
    }

    r.pb.finish_and_clear();
    res.records.extend(r.col.finish());
    res.errors.extend(r.errors);
    res.learn = Some(sum);
}

/// A cold or warm learner's run, scored on the scale of its workload's row (`best`: the
/// workload, its lowest values and its fault floor) when that workload ran.
fn warm_run(s: &Sample, best: Option<&(String, [f64; 3], f64)>) -> WarmRun {
    let l = s.learn.clone().unwrap_or(LearnInfo {
        learning: false,
        epochs: 0,
        trained_epochs: 0,
        phase: "?".into(),
        choice: "?".into(),
        settled_epoch: None,
    });
    let score = best.map(|(_, b, floor)| {
        scores(
            &[[
                cpu_ns_per_op(s),
                faults_per_mop(s) + floor,
                s.mean_rss_kib.unwrap_or(f64::NAN),
            ]],
            Some(*b),
        )[0]
    });
    WarmRun {
        epochs: l.epochs,
        trained_epochs: l.trained_epochs,
        settled_epoch: l.settled_epoch,
        phase: l.phase,
        choice: l.choice,
        ns_per_op: s.ns_per_op,
        score,
    }
}

fn describe_run(l: &LearnInfo) -> String {
    match l.settled_epoch {
        Some(e) => format!("{} ({} ep, {} at {e})", l.choice, l.epochs, l.phase),
        None => format!("{} ({} ep, {})", l.choice, l.epochs, l.phase),
    }
}

/// The best fixed candidate of a row and the others' gaps to it.
fn row(scenario: String, cells: Vec<Cell>) -> Row {
    let fixed = |c: &&Cell| !c.variant.starts_with("learn-") && c.variant != REPEAT;
    let best = cells
        .iter()
        .filter(fixed)
        .filter(|c| c.score.is_finite())
        .min_by(|a, b| a.score.total_cmp(&b.score));
    let mut gap_pct = Vec::new();
    if let Some(b) = best {
        for c in &cells {
            if (c.variant.starts_with("learn-") || c.variant == DEFAULT_CANDIDATE)
                && c.score.is_finite()
            {
                gap_pct.push((c.variant.clone(), (c.score / b.score - 1.0) * 100.0));
            }
        }
    }
    // The repeat against the configuration it repeats.
    let score_of = |v: &str| cells.iter().find(|c| c.variant == v).map(|c| c.score);
    if let (Some(a), Some(d)) = (score_of(REPEAT), score_of(DEFAULT_CANDIDATE)) {
        if a.is_finite() && d.is_finite() {
            gap_pct.push((REPEAT.into(), (a / d - 1.0) * 100.0));
        }
    }
    Row {
        scenario,
        best_fixed: best.map(|b| b.variant.clone()),
        cells,
        gap_pct,
    }
}

fn fmt_gap(g: Option<f64>) -> String {
    match g {
        Some(g) if g.is_finite() => format!("{g:+.1}%"),
        _ => "-".into(),
    }
}

impl Summary {
    /// The main table: score and wall time of every variant on every workload; `*` marks the best
    /// fixed candidate; the learners' and the default candidate's gaps to it.
    pub fn table(&self) -> Table {
        let mut headers = vec!["workload".to_string(), String::new()];
        headers.extend(self.candidates.iter().cloned());
        headers.push("best fixed".into());
        let gaps: Vec<String> = LEARNERS
            .iter()
            .map(|l| format!("learn-{l}"))
            .chain(
                self.candidates
                    .iter()
                    .filter(|c| *c == DEFAULT_CANDIDATE || *c == REPEAT)
                    .cloned(),
            )
            .collect();
        for g in &gaps {
            headers.push(if g == REPEAT {
                "noise (again vs default)".to_string()
            } else {
                format!("{} gap", g.trim_start_matches("learn-"))
            });
        }
        let mut rows = Vec::new();
        for r in &self.rows {
            let short = r.scenario.trim_start_matches("learn/").to_string();
            let mut score = vec![short, "score".into()];
            let mut time = vec![String::new(), "CPU/op".into()];
            let mut faults = vec![String::new(), "faults/Mop".into()];
            let mut rss = vec![String::new(), "mean RSS".into()];
            for c in &r.cells {
                let star = if r.best_fixed.as_deref() == Some(&c.variant) {
                    "*"
                } else {
                    ""
                };
                score.push(if c.score.is_finite() {
                    format!("{:.3}{star}", c.score)
                } else {
                    "-".into()
                });
                time.push(if c.cpu_ns_per_op.is_finite() {
                    fmt_ns(c.cpu_ns_per_op)
                } else {
                    "-".into()
                });
                faults.push(format!("{:.0}", c.faults_per_mop));
                rss.push(if c.mean_rss_kib.is_finite() {
                    format!("{:.1} MiB", c.mean_rss_kib / 1024.0)
                } else {
                    "-".into()
                });
            }
            score.push(r.best_fixed.clone().unwrap_or_else(|| "-".into()));
            for g in &gaps {
                let v = r.gap_pct.iter().find(|(n, _)| n == g).map(|(_, x)| *x);
                score.push(fmt_gap(v));
            }
            for other in [&mut time, &mut faults, &mut rss] {
                other.resize(score.len(), String::new());
            }
            rows.push(score);
            rows.push(time);
            rows.push(faults);
            rows.push(rss);
        }
        Table {
            title: "learn".into(),
            headers,
            rows,
            notes: vec![],
        }
    }

    /// What the learners ended on, per workload and repetition: one line per workload x learner.
    pub fn choices_text(&self) -> String {
        let mut s = String::from(
            "The learners' final choice (the best strategy known at the end) per repetition, with the epochs seen and the phase at the end:\n",
        );
        for r in &self.rows {
            for c in r.cells.iter().filter(|c| c.variant.starts_with("learn-")) {
                let _ = writeln!(
                    s,
                    "- {} {}: {}",
                    r.scenario.trim_start_matches("learn/"),
                    c.variant,
                    c.choices.join("; ")
                );
            }
        }
        s
    }

    pub fn cost_table(&self) -> Table {
        Table {
            title: format!("learn: the cost of learning and of the call-site telemetry on the fast path (CPU time/op, median of {} repetitions)", self.cost_reps),
            headers: vec![
                "scenario".into(),
                "with".into(),
                "off".into(),
                "on".into(),
                "diff".into(),
                "+-".into(),
                "diff of min".into(),
            ],
            rows: self
                .cost
                .iter()
                .map(|c| {
                    vec![
                        c.scenario.clone(),
                        c.with.clone(),
                        fmt_ns(c.off_ns),
                        fmt_ns(c.on_ns),
                        fmt_gap(Some(c.diff_pct)),
                        format!("{:.0}%", c.spread_pct),
                        fmt_gap(Some(c.diff_min_pct)),
                    ]
                })
                .collect(),
            notes: vec![],
        }
    }

    /// The warm-start demonstration in a few lines.
    pub fn warm_text(&self) -> String {
        let Some(w) = &self.warm_start else {
            return String::new();
        };
        let mut s = format!(
            "Warm start on {} (HAKMEM_LEARN=elo; per pair, a cold run saves its playbook to a fresh HAKMEM_PLAYBOOK file and a warm run starts from it):\n",
            w.scenario
        );
        for (i, pair) in w.pairs.iter().enumerate() {
            for (which, r) in [("cold", &pair[0]), ("warm", &pair[1])] {
                let _ = writeln!(
                    s,
                    "- pair {} {which}: {} epochs ({} in the playbook at the end), {}, final choice {}, score {}",
                    i + 1,
                    r.epochs,
                    r.trained_epochs,
                    match r.settled_epoch {
                        Some(e) => format!("left LEARN for good at epoch {e} (phase {})", r.phase),
                        None => format!("never settled (phase at the end: {})", r.phase),
                    },
                    r.choice,
                    r.score
                        .map(|x| format!("{x:.3}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        let sooner = w
            .pairs
            .iter()
            .filter(|p| match (p[0].settled_epoch, p[1].settled_epoch) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(c), Some(w)) => w < c,
            })
            .count();
        let better = w
            .pairs
            .iter()
            .filter(|p| matches!((p[0].score, p[1].score), (Some(c), Some(w)) if w < c))
            .count();
        let _ = writeln!(
            s,
            "The warm run settled sooner in {sooner} of {n} pairs and scored better in {better} of {n}.",
            n = w.pairs.len()
        );
        s
    }

    /// Everything, for the terminal.
    pub fn render_text(&self) -> String {
        self.render(false)
    }

    /// Everything, for report.md.
    pub fn render_markdown(&self) -> String {
        self.render(true)
    }

    fn render(&self, markdown: bool) -> String {
        let mut s = String::new();
        if !self.rows.is_empty() {
            if markdown {
                s.push_str(&self.table().render_markdown());
                let _ = writeln!(s, "\n{}\n", self.legend());
            } else {
                s.push_str(&self.table().render_text());
                let _ = writeln!(s, "{}", self.legend());
            }
            s.push_str(&self.choices_text());
            s.push('\n');
        }
        if self.warm_start.is_some() {
            s.push_str(&self.warm_text());
            s.push('\n');
        }
        if !self.cost.is_empty() {
            let t = self.cost_table();
            if markdown {
                let _ = writeln!(s, "{}\n", t.title);
                s.push_str(&t.render_markdown());
            } else {
                s.push_str(&t.render_text());
            }
        }
        s
    }

    fn legend(&self) -> String {
        format!(
            "score = {} x CPU time/op + {} x minor faults/op + {} x mean RSS, each divided by the lowest among the runs of that workload (1.0 = best on all three); every run lasts the same wall time, so time and faults are taken per operation; CPU time (user + sys), not wall time, so that a run does not pay for the cores other processes held; faults/Mop are the run's own per million operations, and the score adds to them the worker's start-up faults spread over the workload's median run (a floor, the same for all); RSS is the worker process'; medians of {} repetitions; * = best fixed candidate; gap = score / best fixed score - 1; `default-again` runs `default` a second time, never a candidate: its score / `default`'s - 1 (the noise column) is how far two identical configurations land apart in this run.",
            WEIGHTS[0], WEIGHTS[1], WEIGHTS[2], self.reps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_list_names_what_runs() {
        let what = |name: &str| crate::suites::find(&format!("learn/{name}")).unwrap().what;
        assert!(
            what("warm-start").contains(WARM_ON),
            "{}",
            what("warm-start")
        );
        for (_, var, val) in COST_VARIANTS.iter().skip(1) {
            assert!(
                what("cost").contains(&format!("{var}={val}")),
                "{}",
                what("cost")
            );
        }
    }

    #[test]
    fn scores_normalise_by_the_best() {
        let s = scores(&[[100.0, 0.0, 10.0], [200.0, 9.0, 5.0]], None);
        assert!((s[0] - (0.4 + 0.3 + 0.3 * 2.0)).abs() < 1e-12);
        assert!((s[1] - (0.4 * 2.0 + 0.3 * 10.0 + 0.3)).abs() < 1e-12);
        let one = scores(&[[3.0, 4.0, 5.0]], None);
        assert!((one[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn variants_cover_every_candidate_and_both_learners() {
        let v = variants();
        assert_eq!(v.len(), hakmem::strategy::DEFAULTS.len() + 3);
        let again = v.iter().find(|x| x.label == REPEAT).unwrap();
        assert!(again
            .env
            .iter()
            .any(|(k, x)| k == "HAKMEM_STRATEGY" && x == DEFAULT_CANDIDATE));
        assert_eq!(v[v.len() - 1].label, "learn-ucb1");
        assert!(v[0]
            .env
            .iter()
            .any(|(k, x)| k == "HAKMEM_STRATEGY" && x == hakmem::strategy::DEFAULTS[0].0));
    }

    #[test]
    fn row_marks_best_fixed_and_gaps() {
        let cell = |v: &str, score| Cell {
            variant: v.into(),
            score,
            ns_per_op: 1.0,
            cpu_ns_per_op: 1.0,
            minflt: 0.0,
            faults_per_mop: 0.0,
            mean_rss_kib: 1.0,
            peak_rss_kib: 1.0,
            choices: vec![],
        };
        let r = row(
            "learn/x".into(),
            vec![
                cell("default", 1.5),
                cell(REPEAT, 1.0),
                cell("lean", 1.2),
                cell("learn-elo", 1.0),
                cell("learn-ucb1", 1.26),
            ],
        );
        assert_eq!(r.best_fixed.as_deref(), Some("lean"));
        let gap = |n: &str| r.gap_pct.iter().find(|(x, _)| x == n).unwrap().1;
        assert!((gap("default") - 25.0).abs() < 1e-9);
        assert!((gap("learn-ucb1") - 5.0).abs() < 1e-9);
        assert!(gap("learn-elo") < 0.0);
        // The repeat is never the best fixed candidate; its gap is to `default`.
        assert!((gap(REPEAT) + 100.0 / 3.0).abs() < 1e-9);
    }
}
