//! LEARN -> FROZEN -> CANARY, and back to LEARN when the workload changes (`Transitions`):
//! - LEARN: the playbook picks; a leader that held `FREEZE_AFTER` epochs past the warm-up freezes.
//! - FROZEN: every `CANARY_EVERY` frozen epochs a challenger (the frozen strategy one or two knob
//!   rungs away) runs `CANARY_EPOCHS` epochs: promoted (frozen instead) when it cost `CANARY_GAIN`
//!   less than the frozen epochs on average, rolled back at once when one epoch costs `ROLLBACK`
//!   times theirs, else rejected.
//! - A phase change, back to LEARN: the request sizes' median and 95th percentile both move more
//!   than `SHIFT` times from their running averages, `SHIFT_EPOCHS` epochs in a row.

use super::strategy::Strategy;

pub const FREEZE_AFTER: u32 = 48;
pub const CANARY_EVERY: u32 = 16;
pub const CANARY_EPOCHS: u32 = 3;
pub const CANARY_GAIN: f64 = 0.08;
pub const ROLLBACK: f64 = 1.5;
pub const SHIFT: f64 = 4.0;
pub const SHIFT_EPOCHS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Learn,
    Frozen,
    Canary,
}

impl Phase {
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Learn => "learn",
            Phase::Frozen => "frozen",
            Phase::Canary => "canary",
        }
    }
}

/// How often each transition happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transitions {
    pub froze: u32,
    pub canaries: u32,
    pub promoted: u32,
    pub rejected: u32,
    pub rolled_back: u32,
    pub phase_changes: u32,
}

pub struct Lifecycle {
    pub(super) phase: Phase,
    leader: u32,
    stable: u32,
    pub(super) frozen: Strategy,
    /// The frozen epochs' mean cost (over about the last 16).
    frozen_cost: f64,
    frozen_epochs: u32,
    since_canary: u32,
    pub(super) challenger: Strategy,
    canary_epochs: u32,
    canary_sum: f64,
    /// Running averages of the sizes' median and 95th percentile (0: none yet).
    sizes: [f64; 2],
    shifted: u32,
    pub(super) transitions: Transitions,
}

impl Lifecycle {
    pub fn new(start: Strategy) -> Self {
        Lifecycle {
            phase: Phase::Learn,
            leader: 0,
            stable: 0,
            frozen: start,
            frozen_cost: 0.0,
            frozen_epochs: 0,
            since_canary: 0,
            challenger: start,
            canary_epochs: 0,
            canary_sum: 0.0,
            sizes: [0.0; 2],
            shifted: 0,
            transitions: Transitions::default(),
        }
    }

    /// Back to LEARN (a phase change, or a loaded playbook).
    pub fn unfreeze(&mut self) {
        self.phase = Phase::Learn;
        self.stable = 0;
    }

    /// Follows the epoch's size quantiles (0: none sampled); true on a phase change, which has
    /// put the lifecycle back in LEARN.
    pub fn observe_sizes(&mut self, p50: u64, p95: u64) -> bool {
        if p50 == 0 || p95 == 0 {
            return false;
        }
        let now = [p50 as f64, p95 as f64];
        if self.sizes[0] == 0.0 {
            self.sizes = now;
            return false;
        }
        let moved = |i: usize| !(1.0 / SHIFT..=SHIFT).contains(&(now[i] / self.sizes[i]));
        if !(moved(0) && moved(1)) {
            self.shifted = 0;
            for (avg, x) in self.sizes.iter_mut().zip(now) {
                *avg += (x - *avg) / 8.0;
            }
            return false;
        }
        self.shifted += 1;
        if self.shifted < SHIFT_EPOCHS {
            return false;
        }
        self.shifted = 0;
        self.sizes = now;
        self.unfreeze();
        self.transitions.phase_changes += 1;
        true
    }

    /// In LEARN past the warm-up: the playbook's leader is `id`; freezes it when it has held.
    pub fn observe_leader(&mut self, id: u32, strategy: &Strategy) {
        if self.phase != Phase::Learn {
            return;
        }
        if id != self.leader {
            self.leader = id;
            self.stable = 0;
            return;
        }
        self.stable += 1;
        if self.stable >= FREEZE_AFTER {
            self.phase = Phase::Frozen;
            self.frozen = *strategy;
            self.frozen_cost = 0.0;
            self.frozen_epochs = 0;
            self.since_canary = 0;
            self.transitions.froze += 1;
        }
    }

    /// A frozen epoch cost `cost`.
    pub fn frozen_epoch(&mut self, cost: f64) {
        self.frozen_epochs = self.frozen_epochs.saturating_add(1);
        self.frozen_cost += (cost - self.frozen_cost) / self.frozen_epochs.min(16) as f64;
        self.since_canary += 1;
    }

    pub fn canary_due(&self) -> bool {
        self.phase == Phase::Frozen && self.since_canary >= CANARY_EVERY
    }

    pub fn start_canary(&mut self, challenger: Strategy) {
        self.phase = Phase::Canary;
        self.challenger = challenger;
        self.canary_epochs = 0;
        self.canary_sum = 0.0;
        self.since_canary = 0;
        self.transitions.canaries += 1;
    }

    /// A canary epoch cost `cost`. Returns true when the challenger was promoted.
    pub fn canary_epoch(&mut self, cost: f64) -> bool {
        self.canary_epochs += 1;
        self.canary_sum += cost;
        let mean = self.canary_sum / self.canary_epochs as f64;
        let t = &mut self.transitions;
        if cost > ROLLBACK * self.frozen_cost {
            t.rolled_back += 1;
        } else if self.canary_epochs < CANARY_EPOCHS {
            return false;
        } else if mean >= (1.0 - CANARY_GAIN) * self.frozen_cost {
            t.rejected += 1;
        } else {
            t.promoted += 1;
            self.phase = Phase::Frozen;
            self.frozen = self.challenger;
            self.frozen_cost = mean;
            self.frozen_epochs = self.canary_epochs;
            return true;
        }
        self.phase = Phase::Frozen;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::{BALANCED, LEAN};

    fn frozen() -> Lifecycle {
        let mut l = Lifecycle::new(BALANCED);
        for _ in 0..=FREEZE_AFTER {
            l.observe_leader(7, &LEAN);
        }
        l
    }

    #[test]
    fn a_leader_that_holds_is_frozen() {
        let mut l = Lifecycle::new(BALANCED);
        for i in 0..100 {
            l.observe_leader(1 + (i % 2), &LEAN);
        }
        assert_eq!(l.phase, Phase::Learn);
        let l = frozen();
        assert_eq!((l.phase, l.frozen), (Phase::Frozen, LEAN));
        assert_eq!(l.transitions.froze, 1);
    }

    #[test]
    fn canaries_are_promoted_rejected_or_rolled_back() {
        let mut l = frozen();
        for _ in 0..CANARY_EVERY {
            assert!(!l.canary_due());
            l.frozen_epoch(1.0);
        }
        assert!(l.canary_due());
        l.start_canary(BALANCED);
        assert!(!l.canary_epoch(1.0) && !l.canary_epoch(1.0) && !l.canary_epoch(1.0));
        assert_eq!(l.phase, Phase::Frozen);
        l.start_canary(BALANCED);
        assert!(!l.canary_epoch(1.6));
        assert_eq!(l.phase, Phase::Frozen);
        l.start_canary(BALANCED);
        assert!(!l.canary_epoch(0.8) && !l.canary_epoch(0.9));
        assert!(l.canary_epoch(0.85));
        assert_eq!(l.frozen, BALANCED);
        let t = l.transitions;
        assert_eq!(
            (t.canaries, t.rejected, t.rolled_back, t.promoted),
            (3, 1, 1, 1)
        );
    }

    #[test]
    fn sizes_that_move_far_for_two_epochs_are_a_phase_change() {
        let mut l = frozen();
        for _ in 0..20 {
            assert!(!l.observe_sizes(100, 1000));
        }
        assert!(!l.observe_sizes(100, 9000), "only one quantile moved");
        assert!(!l.observe_sizes(1000, 9000), "one epoch");
        assert!(!l.observe_sizes(100, 1000));
        assert!(!l.observe_sizes(1000, 9000));
        assert!(l.observe_sizes(1000, 9000));
        assert_eq!(l.phase, Phase::Learn);
        assert_eq!(l.transitions.phase_changes, 1);
        for _ in 0..40 {
            assert!(!l.observe_sizes(1000, 9000));
        }
    }
}
