//! Per-epoch measurements and the cost that ranks strategies (lower is better): time (the
//! allocator's share of the CPU time, slow paths plus the kernel's time, at least `FAULT_NS` a
//! page fault, as the time the whole program would take, 1 / (1 - share)) and memory (the
//! resident bytes at the epoch's end), each over its baseline (its mean since the start or the
//! last `reset`, past `BASELINE_EPOCHS` a moving average) and weighted by the mode. An average
//! epoch costs about 1.0, the first exactly.

/// What the caller measured over one epoch (deltas over the epoch, but `resident_bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measurements {
    /// Nanoseconds spent in the allocator's slow paths (refill, flush, mmap, madvise, ...).
    pub slow_path_ns: u64,
    /// Minor page faults (getrusage ru_minflt).
    pub minor_faults: u64,
    /// Nanoseconds of the process's system time (getrusage ru_stime): the page faults, and the
    /// madvise, mmap and munmap calls with the TLB shootdowns they cost the other threads.
    pub system_ns: u64,
    /// The process's resident bytes at the end of the epoch.
    pub resident_bytes: u64,
    /// Operations: the process's CPU microseconds (the fast paths count nothing).
    pub ops: u64,
    /// Median and 95th percentile of the sampled request sizes; 0 = unknown.
    pub size_p50: u64,
    pub size_p95: u64,
    /// The warm BigCache reuses (`reuse`).
    pub reuse: super::reuse::Reuse,
}

/// What the learner optimises for (`HAKMEM_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fast,
    Balanced,
    Lean,
}

impl Mode {
    /// The weights of time and memory; they sum to 1.
    pub const fn weights(self) -> [f64; 2] {
        match self {
            Mode::Fast => [0.8, 0.2],
            Mode::Balanced => [0.5, 0.5],
            Mode::Lean => [0.25, 0.75],
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Mode::Fast => "fast",
            Mode::Balanced => "balanced",
            Mode::Lean => "lean",
        }
    }
}

/// What a minor page fault costs at least, in nanoseconds: taking it and zeroing a 4 KiB page
/// (about half what `lean` paid a page on the `learn/vm` loop). The epoch's system time counts
/// instead when it is more: a strategy that gives slabs back at once costs a producer-consumer
/// program (mimalloc-bench's xmalloc-testN) 1.2 million faults and 6.1 s of system time in 5 s,
/// 5 us a fault, and at 1 us its smaller footprint made it the learner's choice at 3-4x the time.
pub const FAULT_NS: f64 = 1000.0;
/// The allocator's share of the time counts at most this much (a program 20 times slower).
const MAX_SHARE: f64 = 0.95;
/// Epochs the baseline averages: all of them up to this many (about 10 s), then a moving average.
pub const BASELINE_EPOCHS: u64 = 1024;

fn terms(m: &Measurements) -> [f64; 2] {
    let cpu_ns = m.ops.max(1) as f64 * 1000.0;
    let kernel_ns = (m.minor_faults as f64 * FAULT_NS).max(m.system_ns as f64);
    let share = (m.slow_path_ns as f64 + kernel_ns) / cpu_ns;
    [
        1.0 / (1.0 - share.min(MAX_SHARE)),
        m.resident_bytes.max(1 << 16) as f64,
    ]
}

/// Turns measurements into costs against a running baseline.
#[derive(Clone, Copy, Debug)]
pub struct Scorer {
    weights: [f64; 2],
    baseline: Option<[f64; 2]>,
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

    pub fn has_baseline(&self) -> bool {
        self.baseline.is_some()
    }

    /// Forgets the baseline (after a phase change: old costs mean nothing for the new workload).
    pub fn reset(&mut self) {
        self.baseline = None;
        self.epochs = 0;
    }

    /// The epoch's cost, then folds the epoch into the baseline.
    pub fn score(&mut self, m: &Measurements) -> f64 {
        let t = terms(m);
        let b = *self.baseline.get_or_insert(t);
        let cost = self.weights[0] * t[0] / b[0] + self.weights[1] * t[1] / b[1];
        self.epochs += 1;
        let alpha = 1.0 / self.epochs.min(BASELINE_EPOCHS) as f64;
        self.baseline = Some(core::array::from_fn(|i| b[i] + alpha * (t[i] - b[i])));
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: u64, faults: u64, resident: u64, ops: u64) -> Measurements {
        Measurements {
            slow_path_ns: ns,
            minor_faults: faults,
            resident_bytes: resident,
            ops,
            ..Default::default()
        }
    }

    #[test]
    fn time_is_the_whole_program_s_and_memory_the_resident_bytes() {
        let mut s = Scorer::new(Mode::Balanced);
        // Half the CPU time in the allocator: 200 us of slow paths and 300 faults in 1 ms.
        let base = m(200_000, 300, 80 << 20, 1000);
        assert_eq!(s.score(&base), 1.0);
        // A tenth in the allocator, in an epoch twice as long: 0.9 / 0.5 times as fast.
        let c = s.score(&m(200_000, 0, 80 << 20, 2000));
        assert!((c - (0.5 * (1.0 / 0.9) / 2.0 + 0.5)).abs() < 1e-12, "{c}");
        // 20 % faster for 20 % more memory is a wash in balanced mode, a win in fast mode, a
        // loss in lean mode.
        let faster = m(1_000_000 / 6, 0, 96 << 20, 1000);
        for (mode, sign) in [(Mode::Balanced, 0.0), (Mode::Fast, -1.0), (Mode::Lean, 1.0)] {
            assert!((mode.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let mut s = Scorer::new(mode);
            s.score(&m(1_000_000 / 3, 0, 80 << 20, 1000));
            let c = s.score(&faster) - 1.0;
            assert!(
                c * sign > 0.0 || (sign == 0.0 && c.abs() < 1e-5),
                "{mode:?} {c}"
            );
        }
    }

    #[test]
    fn system_time_counts_where_it_is_more_than_the_faults_floor() {
        // A tenth of the CPU time in the kernel: 100 faults (100 us at the floor) and 100 us of
        // system time in 1 ms.
        let base = Measurements {
            system_ns: 100_000,
            ..m(0, 100, 80 << 20, 1000)
        };
        let mut s = Scorer::new(Mode::Fast);
        assert_eq!(s.score(&base), 1.0);
        // Half of it in the kernel for the same faults: (1 / 0.5) / (1 / 0.9) times the time.
        let c = s.score(&Measurements {
            system_ns: 500_000,
            ..base
        });
        assert!((c - (0.8 * 1.8 + 0.2)).abs() < 1e-12, "{c}");
        // System time under the floor changes nothing.
        let mut s = Scorer::new(Mode::Fast);
        s.score(&base);
        assert_eq!(
            s.score(&Measurements {
                system_ns: 0,
                ..base
            }),
            1.0
        );
    }

    #[test]
    fn baseline_is_the_mean_then_a_moving_average_and_reset_forgets_it() {
        let mut s = Scorer::new(Mode::Lean);
        s.score(&m(0, 0, 100 << 20, 1000));
        assert!(s.score(&m(0, 0, 200 << 20, 1000)) > 1.0);
        assert_eq!(s.baseline.unwrap()[1], (150 << 20) as f64);
        for _ in 0..4 * BASELINE_EPOCHS {
            s.score(&m(0, 0, 300 << 20, 1000));
        }
        for _ in 0..BASELINE_EPOCHS {
            s.score(&m(0, 0, 600 << 20, 1000));
        }
        let b = s.baseline.unwrap()[1] / (1 << 20) as f64;
        assert!(
            (b - (300.0 + 300.0 * (1.0 - (-1.0f64).exp()))).abs() < 1.0,
            "{b}"
        );
        s.reset();
        assert!(!s.has_baseline());
        assert_eq!(s.score(&m(7, 7, 7, 0)), 1.0);
        assert!(s.score(&m(u64::MAX, u64::MAX, 1 << 20, 0)).is_finite());
    }
}
