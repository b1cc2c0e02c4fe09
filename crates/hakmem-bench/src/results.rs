//! The results of a run: one record per scenario x allocator x metric, with the raw repetitions, plus
//! the run's context and the failures. Written as `results.json` and `results.csv`.

use crate::stats;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const SCHEMA: &str = "hakmem-bench/1";
pub const BASELINE: &str = "mimalloc";

/// A measured figure: its name, unit and which direction is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub lower_is_better: bool,
}

pub const TIME_NS: Metric = Metric {
    name: "time_ns",
    unit: "ns/op",
    lower_is_better: true,
};
pub const P95_NS: Metric = Metric {
    name: "p95_ns",
    unit: "ns/op",
    lower_is_better: true,
};
pub const P99_NS: Metric = Metric {
    name: "p99_ns",
    unit: "ns/op",
    lower_is_better: true,
};
pub const OPS_PER_S: Metric = Metric {
    name: "ops_per_s",
    unit: "ops/s",
    lower_is_better: false,
};
pub const MINFLT: Metric = Metric {
    name: "minflt",
    unit: "faults",
    lower_is_better: true,
};
pub const PEAK_RSS: Metric = Metric {
    name: "peak_rss_kib",
    unit: "KiB",
    lower_is_better: true,
};
pub const WALL_MS: Metric = Metric {
    name: "wall_ms",
    unit: "ms",
    lower_is_better: true,
};
pub const USER_MS: Metric = Metric {
    name: "user_ms",
    unit: "ms",
    lower_is_better: true,
};
pub const SYS_MS: Metric = Metric {
    name: "sys_ms",
    unit: "ms",
    lower_is_better: true,
};

/// Where and how the figures were taken.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub schema: String,
    pub tool_version: String,
    pub git_revision: String,
    pub cores: usize,
    pub kernel: String,
    /// quick | default | full | compare
    pub mode: String,
    pub reps: usize,
    pub allocators: Vec<String>,
    pub baseline: String,
    pub created_unix: u64,
    pub command: Vec<String>,
    /// `compare`: the program that ran under each allocator, with its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub program: Vec<String>,
    /// Per allocator, the version under test (see `AllocKind::version`; for `compare`, the library).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// /proc/loadavg's 1, 5 and 15 minute averages when the run started and when it ended: a load
    /// near or above `cores` means other processes competed for the cores.
    #[serde(default)]
    pub loadavg_start: Vec<f64>,
    #[serde(default)]
    pub loadavg_end: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub suite: String,
    pub scenario: String,
    pub allocator: String,
    pub metric: String,
    pub unit: String,
    /// "lower" or "higher"
    pub better: String,
    /// One value per repetition, in the order they ran.
    pub reps: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Half the range, in percent of the median.
    pub spread_pct: f64,
    /// median / the baseline allocator's median for the same scenario and metric.
    pub ratio_to_mimalloc: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    pub suite: String,
    pub scenario: String,
    pub allocator: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub info: RunInfo,
    pub records: Vec<Record>,
    pub errors: Vec<Failure>,
    /// Things the reader should know (skipped allocators and the like).
    pub notes: Vec<String>,
    /// The `learn` suite's scores, gaps, warm start and cost (its raw figures are in `records`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn: Option<crate::learn::Summary>,
}

/// Gathers repetitions into records, keeping the order of first appearance.
#[derive(Default)]
pub struct Collector {
    records: Vec<Record>,
    index: HashMap<(String, String, String), usize>,
}

impl Collector {
    pub fn add(&mut self, suite: &str, scenario: &str, allocator: &str, m: Metric, value: f64) {
        let key = (
            scenario.to_string(),
            allocator.to_string(),
            m.name.to_string(),
        );
        let i = *self.index.entry(key).or_insert_with(|| {
            self.records.push(Record {
                suite: suite.into(),
                scenario: scenario.into(),
                allocator: allocator.into(),
                metric: m.name.into(),
                unit: m.unit.into(),
                better: if m.lower_is_better { "lower" } else { "higher" }.into(),
                reps: Vec::new(),
                median: 0.0,
                min: 0.0,
                max: 0.0,
                spread_pct: 0.0,
                ratio_to_mimalloc: None,
            });
            self.records.len() - 1
        });
        self.records[i].reps.push(value);
    }

    /// The records so far, finished, without consuming the collector.
    pub fn snapshot(&self) -> Vec<Record> {
        Collector {
            records: self.records.clone(),
            index: HashMap::new(),
        }
        .finish()
    }

    /// Computes medians, ranges and ratios to the baseline.
    pub fn finish(self) -> Vec<Record> {
        let mut recs = self.records;
        for r in recs.iter_mut() {
            r.median = stats::median(&r.reps).unwrap_or(f64::NAN);
            r.min = stats::min(&r.reps).unwrap_or(f64::NAN);
            r.max = stats::max(&r.reps).unwrap_or(f64::NAN);
            r.spread_pct = stats::spread_pct(&r.reps);
        }
        let base: HashMap<(String, String), f64> = recs
            .iter()
            .filter(|r| r.allocator == BASELINE)
            .map(|r| ((r.scenario.clone(), r.metric.clone()), r.median))
            .collect();
        for r in recs.iter_mut() {
            r.ratio_to_mimalloc = base
                .get(&(r.scenario.clone(), r.metric.clone()))
                .and_then(|&b| stats::ratio(r.median, b));
        }
        recs
    }
}

impl Results {
    pub fn find(&self, scenario: &str, allocator: &str, metric: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.scenario == scenario && r.allocator == allocator && r.metric == metric)
    }

    /// Scenarios in order of first appearance, with their suite.
    pub fn scenarios(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        for r in self
            .records
            .iter()
            .map(|r| (&r.suite, &r.scenario))
            .chain(self.errors.iter().map(|e| (&e.suite, &e.scenario)))
        {
            if !v.iter().any(|(_, s)| s == r.1) {
                v.push((r.0.clone(), r.1.clone()));
            }
        }
        v
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialise")
    }

    /// Reads results back, checking the schema (used by the tests; for tools built on the JSON).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn from_json(s: &str) -> Result<Results, String> {
        let r: Results = serde_json::from_str(s).map_err(|e| e.to_string())?;
        if r.info.schema != SCHEMA {
            return Err(format!("schema `{}`, expected `{SCHEMA}`", r.info.schema));
        }
        Ok(r)
    }

    /// One line per record; repetitions joined with `;`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "suite,scenario,allocator,metric,unit,better,median,min,max,spread_pct,ratio_to_mimalloc,reps,git_revision,cores\n",
        );
        for r in &self.records {
            let reps: Vec<String> = r.reps.iter().map(|x| fmt_num(*x)).collect();
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{:.2},{},{},{},{}",
                csv(&r.suite),
                csv(&r.scenario),
                csv(&r.allocator),
                r.metric,
                csv(&r.unit),
                r.better,
                fmt_num(r.median),
                fmt_num(r.min),
                fmt_num(r.max),
                r.spread_pct,
                r.ratio_to_mimalloc
                    .map(|x| format!("{x:.4}"))
                    .unwrap_or_default(),
                reps.join(";"),
                csv(&self.info.git_revision),
                self.info.cores
            );
        }
        s
    }

    /// Writes `<stem>.json` and `<stem>.csv` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join(format!("{stem}.json"));
        let csv = dir.join(format!("{stem}.csv"));
        std::fs::write(&json, self.to_json())?;
        std::fs::write(&csv, self.to_csv())?;
        Ok(vec![json, csv])
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The short git revision this runner (and the hakmem in it) was built from, `-dirty` when tracked
/// files differed from it, or "unknown" (recorded by build.rs).
pub fn git_revision() -> String {
    env!("HAKMEM_BENCH_GIT").into()
}

/// The 1, 5 and 15 minute load averages (empty when /proc/loadavg cannot be read).
pub fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .take(3)
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<f64>>>()
        })
        .unwrap_or_default()
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A run's context as the unit tests need it.
#[cfg(test)]
pub fn info_for_tests(allocators: &[&str]) -> RunInfo {
    RunInfo {
        schema: SCHEMA.into(),
        tool_version: "0".into(),
        git_revision: "abc".into(),
        cores: 2,
        kernel: "k".into(),
        mode: "quick".into(),
        reps: 3,
        allocators: allocators.iter().map(|a| a.to_string()).collect(),
        baseline: BASELINE.into(),
        created_unix: 1,
        command: vec!["hakmem-bench".into()],
        program: vec![],
        versions: BTreeMap::from([("hakmem".into(), "hakmem 0.1.0".into())]),
        loadavg_start: vec![0.5, 0.25, 0.125],
        loadavg_end: vec![1.0, 0.5, 0.25],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut c = Collector::default();
        for (alloc, base) in [("hakmem", 200.0), ("mimalloc", 100.0)] {
            for k in 0..3 {
                c.add("seed", "seed/json", alloc, TIME_NS, base + k as f64);
                c.add("seed", "seed/json", alloc, MINFLT, 0.0);
            }
        }
        Results {
            info: info_for_tests(&["hakmem", "mimalloc"]),
            records: c.finish(),
            errors: vec![Failure {
                suite: "seed".into(),
                scenario: "seed/vm".into(),
                allocator: "hakmem".into(),
                message: "x".into(),
            }],
            notes: vec![],
            learn: None,
        }
    }

    #[test]
    fn collector_medians_and_ratios() {
        let r = sample();
        let h = r.find("seed/json", "hakmem", "time_ns").unwrap();
        assert_eq!(h.reps, vec![200.0, 201.0, 202.0]);
        assert_eq!(h.median, 201.0);
        assert_eq!(h.better, "lower");
        assert!((h.ratio_to_mimalloc.unwrap() - 201.0 / 101.0).abs() < 1e-12);
        assert_eq!(
            r.find("seed/json", "mimalloc", "time_ns")
                .unwrap()
                .ratio_to_mimalloc,
            Some(1.0)
        );
        assert_eq!(
            r.find("seed/json", "hakmem", "minflt")
                .unwrap()
                .ratio_to_mimalloc,
            Some(1.0)
        );
        assert_eq!(
            r.scenarios(),
            vec![
                ("seed".into(), "seed/json".into()),
                ("seed".into(), "seed/vm".into())
            ]
        );
    }

    #[test]
    fn json_round_trip_and_schema() {
        let r = sample();
        let s = r.to_json();
        assert_eq!(Results::from_json(&s).unwrap(), r);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["info"]["schema"], SCHEMA);
        assert_eq!(v["info"]["cores"], 2);
        assert_eq!(v["info"]["git_revision"], "abc");
        assert_eq!(v["info"]["versions"]["hakmem"], "hakmem 0.1.0");
        assert_eq!(v["info"]["loadavg_end"][0], 1.0);
        let rec = &v["records"][0];
        for key in [
            "suite",
            "scenario",
            "allocator",
            "metric",
            "unit",
            "better",
            "reps",
            "median",
            "min",
            "max",
            "spread_pct",
            "ratio_to_mimalloc",
        ] {
            assert!(rec.get(key).is_some(), "record lacks `{key}`");
        }
        assert!(Results::from_json(&s.replace(SCHEMA, "other/9")).is_err());
    }

    #[test]
    fn csv_has_one_line_per_record() {
        let r = sample();
        let csv = r.to_csv();
        assert_eq!(csv.lines().count(), 1 + r.records.len());
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("seed,seed/json,hakmem,time_ns,ns/op,lower,201,200,202,"));
        assert!(csv.contains("200;201;202"));
    }
}
