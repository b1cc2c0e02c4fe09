//! Per-epoch measurements and the composite cost that ranks strategies. LOWER IS BETTER.
//!
//! Each epoch yields three raw terms, made independent of the epoch's length:
//! - CPU: nanoseconds spent in the allocator's slow paths per operation;
//! - faults: minor page faults per operation;
//! - memory: mapped bytes per live byte (the footprint overhead; live bytes are floored at 1 MiB
//!   so an almost empty heap does not blow the ratio up).
//!
//! Each raw term is divided by a baseline of the same term: its mean over the epochs since the
//! start or the last `reset` (a phase change), whatever strategy ran them; past `BASELINE_EPOCHS`
//! epochs, an exponential moving average over about that many. So a normalised term is about 1.0
//! for an average epoch of the run, terms with different units can be weighted, and an epoch's
//! cost is about its share of what the whole run's terms add up to, as a benchmark scores a run.
//! (A short moving average does not do that: after a quiet stretch of 16 epochs with almost no
//! page faults, the next burst's faults cost a thousand times what they weigh in the run, and a
//! strategy that would save them looks worth any memory.) The cost is the weighted sum; weights
//! sum to 1 and depend on the mode (`Mode::weights`). A cost of 0.8 reads "20 % cheaper than the
//! run's epochs on average". The first epoch (and the first after `reset`) sets the baseline and
//! scores exactly 1.0. Pure arithmetic: no allocation, no clock.

/// What the caller measured over one epoch. Counts are for this epoch only (deltas).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measurements {
    /// CPU nanoseconds spent in the allocator's slow paths (refill, flush, mmap, madvise, ...).
    pub slow_path_ns: u64,
    /// Minor page faults (getrusage ru_minflt delta).
    pub minor_faults: u64,
    /// Live bytes at the end of the epoch (or averaged over it).
    pub live_bytes: u64,
    /// Bytes mapped by the allocator at the end of the epoch (or averaged over it).
    pub mapped_bytes: u64,
    /// Allocation and free operations in the epoch.
    pub ops: u64,
    /// Wall-clock nanoseconds the epoch lasted; 0 = unknown (then rates are not compared).
    pub elapsed_ns: u64,
    /// Median and 95th percentile of requested sizes in the epoch (from `sketch`); 0 = unknown.
    pub size_p50: u64,
    pub size_p95: u64,
    /// Pages handed out again warm in the epoch, by age and depth (`reuse`).
    pub reuse: super::reuse::Reuse,
}

/// What the learner optimises for (`HAKMEM_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// CPU-heavy.
    Fast,
    /// The original's weights: 0.4 CPU, 0.3 faults, 0.3 memory.
    Balanced,
    /// Memory-heavy.
    Lean,
}

/// Weights of the three normalised terms; they sum to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub cpu: f64,
    pub faults: f64,
    pub memory: f64,
}

impl Mode {
    pub const fn weights(self) -> Weights {
        match self {
            Mode::Fast => Weights {
                cpu: 0.7,
                faults: 0.2,
                memory: 0.1,
            },
            Mode::Balanced => Weights {
                cpu: 0.4,
                faults: 0.3,
                memory: 0.3,
            },
            Mode::Lean => Weights {
                cpu: 0.2,
                faults: 0.2,
                memory: 0.6,
            },
        }
    }
}

/// Raw per-operation terms of one epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Terms {
    pub cpu_ns_per_op: f64,
    pub faults_per_op: f64,
    pub mapped_per_live: f64,
}

/// Live bytes below this count as this much in the memory term.
pub const LIVE_FLOOR_BYTES: u64 = 1 << 20;

/// Floors added to both a term and its baseline, so a term that is almost always 0 (no faults)
/// does not turn noise into huge ratios: 1 ns/op, 1 fault per 10^4 ops, 1 % overhead.
const FLOOR: Terms = Terms {
    cpu_ns_per_op: 1.0,
    faults_per_op: 1e-4,
    mapped_per_live: 0.01,
};

/// Epochs the baseline averages: all of them up to this many (about 10 s of 10 ms epochs), then
/// a moving average in which the newest weighs 1 / `BASELINE_EPOCHS`.
pub const BASELINE_EPOCHS: u64 = 1024;

impl Terms {
    const ZERO: Terms = Terms {
        cpu_ns_per_op: 0.0,
        faults_per_op: 0.0,
        mapped_per_live: 0.0,
    };

    pub fn of(m: &Measurements) -> Terms {
        let ops = m.ops.max(1) as f64;
        Terms {
            cpu_ns_per_op: m.slow_path_ns as f64 / ops,
            faults_per_op: m.minor_faults as f64 / ops,
            mapped_per_live: m.mapped_bytes as f64 / m.live_bytes.max(LIVE_FLOOR_BYTES) as f64,
        }
    }
}

/// Turns measurements into costs against a running baseline.
#[derive(Clone, Copy, Debug)]
pub struct Scorer {
    weights: Weights,
    baseline: Option<Terms>,
    /// Epochs folded into the baseline since the last reset.
    epochs: u64,
}

impl Scorer {
    pub const fn new(mode: Mode) -> Self {
        Scorer {
            weights: mode.weights(),
            baseline: None,
            epochs: 0,
        }
    }

    pub fn with_weights(weights: Weights) -> Self {
        Scorer {
            weights,
            baseline: None,
            epochs: 0,
        }
    }

    pub fn weights(&self) -> Weights {
        self.weights
    }

    pub fn baseline(&self) -> Option<Terms> {
        self.baseline
    }

    /// Forgets the baseline (after a phase change: old costs mean nothing for the new workload).
    pub fn reset(&mut self) {
        self.baseline = None;
        self.epochs = 0;
    }

    /// The cost of `terms` against the current baseline, without updating it.
    pub fn cost_of(&self, t: &Terms) -> f64 {
        self.price(&Terms {
            cpu_ns_per_op: t.cpu_ns_per_op + FLOOR.cpu_ns_per_op,
            faults_per_op: t.faults_per_op + FLOOR.faults_per_op,
            mapped_per_live: t.mapped_per_live + FLOOR.mapped_per_live,
        })
        .unwrap_or(1.0)
    }

    /// What `faults` more page faults over `ops` operations add to an epoch's cost against the
    /// current baseline (`cost_of` is linear in each term); 0 without a baseline.
    pub fn fault_cost(&self, faults: u64, ops: u64) -> f64 {
        self.price(&Terms {
            faults_per_op: faults as f64 / ops.max(1) as f64,
            ..Terms::ZERO
        })
        .unwrap_or(0.0)
    }

    /// What `bytes` more resident memory add to the cost of an epoch with `live` live bytes
    /// against the current baseline (`cost_of` is linear in each term); 0 without a baseline.
    pub fn memory_cost(&self, bytes: u64, live: u64) -> f64 {
        self.price(&Terms {
            mapped_per_live: bytes as f64 / live.max(LIVE_FLOOR_BYTES) as f64,
            ..Terms::ZERO
        })
        .unwrap_or(0.0)
    }

    /// Each term over its baseline (floored), weighted and summed: what the terms `t` weigh in
    /// an epoch's cost. None without a baseline.
    fn price(&self, t: &Terms) -> Option<f64> {
        let b = self.baseline?;
        let w = self.weights;
        Some(
            w.cpu * t.cpu_ns_per_op / (b.cpu_ns_per_op + FLOOR.cpu_ns_per_op)
                + w.faults * t.faults_per_op / (b.faults_per_op + FLOOR.faults_per_op)
                + w.memory * t.mapped_per_live / (b.mapped_per_live + FLOOR.mapped_per_live),
        )
    }

    /// The epoch's cost (lower is better; about 1.0 for an average epoch), then folds the epoch
    /// into the baseline.
    pub fn score(&mut self, m: &Measurements) -> f64 {
        let t = Terms::of(m);
        let c = self.cost_of(&t);
        self.epochs += 1;
        self.baseline = Some(match self.baseline {
            None => t,
            Some(b) => {
                let alpha = 1.0 / self.epochs.min(BASELINE_EPOCHS) as f64;
                let mix = |old: f64, new: f64| old + alpha * (new - old);
                Terms {
                    cpu_ns_per_op: mix(b.cpu_ns_per_op, t.cpu_ns_per_op),
                    faults_per_op: mix(b.faults_per_op, t.faults_per_op),
                    mapped_per_live: mix(b.mapped_per_live, t.mapped_per_live),
                }
            }
        });
        c
    }
}

/// A cost as a bandit reward in [0, 1], higher is better: 1 / (1 + cost^2). A cost of 1.0 (an
/// average epoch) gives 0.5, and no cost saturates: an epoch that holds a cache idle through a
/// quiet stretch (cost 0.5) still ranks below one that gave it back (0.1), and a dear one (3.0)
/// above a dearer one (10.0). (A line clamped to [0, 1] at costs 0.5 and 1.5 ranked all of these
/// alike: the memory crests of `learn/pressure` cost 3-12, its troughs 0.1-0.8.)
pub fn reward_of(cost: f64) -> f64 {
    if cost.is_nan() {
        return 0.0;
    }
    let c = cost.max(0.0);
    1.0 / (1.0 + c * c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: u64, faults: u64, live: u64, mapped: u64, ops: u64) -> Measurements {
        Measurements {
            slow_path_ns: ns,
            minor_faults: faults,
            live_bytes: live,
            mapped_bytes: mapped,
            ops,
            ..Default::default()
        }
    }

    #[test]
    fn weights_sum_to_one_and_lean_favours_memory() {
        for mode in [Mode::Fast, Mode::Balanced, Mode::Lean] {
            let w = mode.weights();
            assert!((w.cpu + w.faults + w.memory - 1.0).abs() < 1e-12);
        }
        assert_eq!(
            Mode::Balanced.weights(),
            Weights {
                cpu: 0.4,
                faults: 0.3,
                memory: 0.3
            }
        );
        assert!(Mode::Fast.weights().cpu > Mode::Lean.weights().cpu);
        assert!(Mode::Lean.weights().memory > Mode::Fast.weights().memory);
    }

    #[test]
    fn first_epoch_scores_one_and_same_epoch_scores_one() {
        let mut s = Scorer::new(Mode::Balanced);
        let e = m(1_000_000, 100, 64 << 20, 80 << 20, 10_000);
        assert_eq!(s.score(&e), 1.0);
        assert!((s.score(&e) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn costs_are_per_op_so_epoch_length_does_not_matter() {
        let mut s = Scorer::new(Mode::Balanced);
        s.score(&m(1_000_000, 100, 64 << 20, 80 << 20, 10_000));
        let short = Terms::of(&m(1_000_000, 100, 64 << 20, 80 << 20, 10_000));
        let long = Terms::of(&m(10_000_000, 1000, 64 << 20, 80 << 20, 100_000));
        assert!((s.cost_of(&short) - s.cost_of(&long)).abs() < 1e-12);
    }

    #[test]
    fn cost_is_the_weighted_sum_of_ratios() {
        let mut s = Scorer::new(Mode::Balanced);
        // Baseline: 100 ns/op, 0.01 faults/op, overhead 1.25.
        s.score(&m(1_000_000, 100, 64 << 20, 80 << 20, 10_000));
        // Half the CPU, same faults, same overhead.
        let t = Terms::of(&m(500_000, 100, 64 << 20, 80 << 20, 10_000));
        let want = 0.4 * (50.0 + 1.0) / (100.0 + 1.0) + 0.3 + 0.3;
        assert!((s.cost_of(&t) - want).abs() < 1e-12);
        // Each mode ranks a CPU-cheap/memory-dear epoch against a CPU-dear/memory-cheap one.
        let cpu_cheap = Terms::of(&m(500_000, 100, 64 << 20, 160 << 20, 10_000));
        let mem_cheap = Terms::of(&m(2_000_000, 100, 64 << 20, 64 << 20, 10_000));
        for (mode, cpu_wins) in [(Mode::Fast, true), (Mode::Lean, false)] {
            let mut s = Scorer::new(mode);
            s.score(&m(1_000_000, 100, 64 << 20, 80 << 20, 10_000));
            assert_eq!(s.cost_of(&cpu_cheap) < s.cost_of(&mem_cheap), cpu_wins);
        }
    }

    #[test]
    fn baseline_moves_towards_new_epochs_and_reset_forgets_it() {
        let mut s = Scorer::new(Mode::Fast);
        s.score(&m(1_000_000, 0, 0, 0, 10_000));
        let c = s.score(&m(2_000_000, 0, 0, 0, 10_000));
        assert!(c > 1.0);
        let b = s.baseline().unwrap().cpu_ns_per_op;
        assert_eq!(b, 150.0, "the mean of both epochs");
        let c = s.score(&m(1_000_000, 0, 0, 0, 10_000));
        assert!(c < 1.0);
        let b = s.baseline().unwrap().cpu_ns_per_op;
        assert!((b - 400.0 / 3.0).abs() < 1e-9, "{b}");
        for _ in 0..4 * BASELINE_EPOCHS {
            s.score(&m(3_000_000, 0, 0, 0, 10_000));
        }
        let b = s.baseline().unwrap().cpu_ns_per_op;
        assert!(b > 299.0 && b < 300.0, "{b}");
        // Past BASELINE_EPOCHS, a moving average: as many epochs again at a new level move it
        // 1 - 1/e of the way there.
        for _ in 0..BASELINE_EPOCHS {
            s.score(&m(6_000_000, 0, 0, 0, 10_000));
        }
        let b = s.baseline().unwrap().cpu_ns_per_op;
        assert!(
            (b - (300.0 + 300.0 * (1.0 - (-1.0f64).exp()))).abs() < 1.0,
            "{b}"
        );
        s.reset();
        assert_eq!(s.score(&m(7, 7, 7, 7, 7)), 1.0);
    }

    #[test]
    fn memory_is_priced_against_the_baseline_like_the_score() {
        let mut s = Scorer::new(Mode::Balanced);
        assert_eq!(s.memory_cost(1 << 20, 1 << 20), 0.0, "no baseline yet");
        // Baseline: 4 MiB mapped per 1 MiB live. 4 MiB more is one more baseline's worth: the
        // memory weight, as `cost_of` counts it; below the live floor, live counts as 1 MiB.
        s.score(&m(100, 10, 1 << 20, 4 << 20, 100));
        let t = Terms::of(&m(100, 10, 1 << 20, 8 << 20, 100));
        let direct = s.cost_of(&t) - 1.0;
        let priced = s.memory_cost(4 << 20, 1 << 20);
        assert!((direct - priced).abs() < 1e-12, "{direct} {priced}");
        assert_eq!(s.memory_cost(4 << 20, 1 << 10), priced);
    }

    #[test]
    fn zero_ops_and_zero_live_do_not_divide_by_zero() {
        let mut s = Scorer::new(Mode::Balanced);
        s.score(&m(0, 0, 0, 0, 0));
        let c = s.score(&m(100, 3, 0, 1 << 20, 0));
        assert!(c.is_finite() && c > 1.0);
    }

    #[test]
    fn reward_maps_cost_into_unit_interval() {
        assert_eq!(reward_of(1.0), 0.5);
        assert_eq!(reward_of(0.0), 1.0);
        assert_eq!(reward_of(-1.0), 1.0);
        assert_eq!(reward_of(3.0), 0.1);
        assert_eq!(reward_of(f64::NAN), 0.0);
        assert_eq!(reward_of(f64::INFINITY), 0.0);
        // Ordered at both ends, where a clamp would tie.
        assert!(reward_of(0.1) > reward_of(0.5));
        assert!(reward_of(0.8) > reward_of(0.9));
        assert!(reward_of(3.0) > reward_of(10.0) && reward_of(10.0) > 0.0);
    }
}
