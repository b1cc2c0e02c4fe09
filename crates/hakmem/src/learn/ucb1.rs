//! UCB1 (Auer et al. 2002) over a small set of arms with rewards in [0, 1], higher is better.
//!
//! `select` tries every arm once first (lowest index first), then picks the arm with the largest
//! mean + c * sqrt(ln N / n), ties to the lowest index, so the choice is a pure function of the
//! arms' counts and sums. The classic constant is c = sqrt(2); the learner uses a smaller one,
//! because each of its pulls is a whole epoch of real work (see `mod.rs`). `Ucb1<N>` is a
//! fixed-size set of arms, e.g. one per call site over the 6 large-block thresholds. No allocation.

/// The classic exploration constant.
pub const C_CLASSIC: f64 = core::f64::consts::SQRT_2;

/// One arm: how often it was pulled and the sum of its rewards.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Arm {
    pub pulls: u64,
    pub reward_sum: f64,
}

impl Arm {
    pub const fn new() -> Self {
        Arm {
            pulls: 0,
            reward_sum: 0.0,
        }
    }

    /// Mean reward; 0 for an arm never pulled.
    pub fn mean(&self) -> f64 {
        if self.pulls == 0 {
            0.0
        } else {
            self.reward_sum / self.pulls as f64
        }
    }

    /// Records one pull with `reward`, clamped to [0, 1] (NaN counts as 0).
    pub fn record(&mut self, reward: f64) {
        let r = if reward.is_nan() {
            0.0
        } else {
            reward.clamp(0.0, 1.0)
        };
        self.pulls += 1;
        self.reward_sum += r;
    }

    /// The UCB1 index given `total` pulls over all arms; infinite for an arm never pulled.
    pub fn index(&self, total: u64, c: f64) -> f64 {
        if self.pulls == 0 {
            return f64::INFINITY;
        }
        let ln = super::math::ln(total.max(1) as f64);
        self.mean() + c * (ln / self.pulls as f64).sqrt()
    }
}

/// The arm to pull next: the first never-pulled arm, else the largest index (ties to the lowest
/// index). None only for an empty slice.
pub fn select(arms: &[Arm], c: f64) -> Option<usize> {
    let total: u64 = arms.iter().map(|a| a.pulls).sum();
    let mut best: Option<(usize, f64)> = None;
    for (i, a) in arms.iter().enumerate() {
        if a.pulls == 0 {
            return Some(i);
        }
        let v = a.index(total, c);
        match best {
            Some((_, bv)) if v <= bv => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// The arm with the highest mean among those pulled (ties to the lowest index).
pub fn best(arms: &[Arm]) -> Option<usize> {
    let mut b: Option<(usize, f64)> = None;
    for (i, a) in arms.iter().enumerate() {
        if a.pulls == 0 {
            continue;
        }
        match b {
            Some((_, m)) if a.mean() <= m => {}
            _ => b = Some((i, a.mean())),
        }
    }
    b.map(|(i, _)| i)
}

/// A fixed set of `N` arms with its own exploration constant.
#[derive(Clone, Copy, Debug)]
pub struct Ucb1<const N: usize> {
    pub arms: [Arm; N],
    pub c: f64,
}

impl<const N: usize> Ucb1<N> {
    pub const fn new(c: f64) -> Self {
        Ucb1 {
            arms: [Arm::new(); N],
            c,
        }
    }

    pub fn select(&self) -> usize {
        select(&self.arms, self.c).unwrap_or(0)
    }

    pub fn record(&mut self, arm: usize, reward: f64) {
        self.arms[arm].record(reward);
    }

    pub fn best(&self) -> Option<usize> {
        best(&self.arms)
    }

    pub fn total_pulls(&self) -> u64 {
        self.arms.iter().map(|a| a.pulls).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arm_is_tried_once_first_in_index_order() {
        let mut u = Ucb1::<4>::new(C_CLASSIC);
        for want in 0..4 {
            let a = u.select();
            assert_eq!(a, want);
            u.record(a, 0.0);
        }
    }

    #[test]
    fn choice_sequence_on_a_fixed_reward_table() {
        // Deterministic rewards per arm. Hand-checked start: after one pull each
        // (0.2, 0.8, 0.5), N = 3, bonus = sqrt(2 ln 3) = 1.4823 for every arm, so arm 1 (best
        // mean) is next; then arm 1 has n = 2 and a smaller bonus sqrt(2 ln 4 / 2) = 1.1774:
        // indices 0: 0.2 + sqrt(2 ln 4) = 1.865, 1: 0.8 + 1.177 = 1.977, 2: 0.5 + 1.665 = 2.165 -> arm 2.
        let table = [0.2, 0.8, 0.5];
        let mut u = Ucb1::<3>::new(C_CLASSIC);
        let mut seq = Vec::new();
        for _ in 0..8 {
            let a = u.select();
            seq.push(a);
            u.record(a, table[a]);
        }
        assert_eq!(&seq[..5], &[0, 1, 2, 1, 2]);
        // Check the whole sequence against a straightforward reference implementation.
        let mut pulls = [0u64; 3];
        let mut sums = [0f64; 3];
        let mut want = Vec::new();
        for t in 0..8 {
            let a = if t < 3 {
                t
            } else {
                let n: u64 = pulls.iter().sum();
                let mut bi = 0;
                let mut bv = f64::NEG_INFINITY;
                for i in 0..3 {
                    let v = sums[i] / pulls[i] as f64
                        + (2.0 * (n as f64).ln() / pulls[i] as f64).sqrt();
                    if v > bv {
                        bv = v;
                        bi = i;
                    }
                }
                bi
            };
            want.push(a);
            pulls[a] += 1;
            sums[a] += table[a];
        }
        assert_eq!(seq, want);
    }

    #[test]
    fn best_arm_dominates_in_the_long_run() {
        let table = [0.3, 0.7, 0.5, 0.6];
        let mut u = Ucb1::<4>::new(C_CLASSIC);
        for _ in 0..5000 {
            let a = u.select();
            u.record(a, table[a]);
        }
        assert_eq!(u.best(), Some(1));
        assert!(u.arms[1].pulls > 3500, "{:?}", u.arms);
        assert_eq!(u.total_pulls(), 5000);
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        let mut arms = [Arm::new(); 3];
        for a in arms.iter_mut() {
            a.record(0.5);
        }
        assert_eq!(select(&arms, C_CLASSIC), Some(0));
        assert_eq!(best(&arms), Some(0));
        assert_eq!(select(&[], C_CLASSIC), None);
        assert_eq!(best(&[Arm::new()]), None);
    }

    #[test]
    fn rewards_are_clamped() {
        let mut a = Arm::new();
        a.record(5.0);
        a.record(-1.0);
        a.record(f64::NAN);
        assert_eq!(a.pulls, 3);
        assert!((a.mean() - 1.0 / 3.0).abs() < 1e-12);
    }
}
