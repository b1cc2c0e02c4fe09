//! The learner's lifecycle: LEARN -> FROZEN <-> CANARY, and back to LEARN on a phase change.
//!
//! - LEARN: the playbook chooses strategies. When the same leader has kept its standing (a number
//!   the caller computes: in ELO mode its expected score against the runner-up, since a dominant
//!   leader's raw rating keeps creeping up; in UCB1 mode its mean reward) within
//!   `freeze_tolerance` of where it started for `freeze_window` consecutive epochs, the ratings have
//!   converged: the leader is frozen.
//! - FROZEN: the frozen strategy runs every epoch; its mean cost is tracked. Every
//!   `canary_period`-th epoch is a CANARY epoch that runs a challenger instead (and, when the
//!   caller has a strategy that would give back memory held idle, as soon as a quarter of that,
//!   `early_canary_ok`).
//! - CANARY: one epoch of the challenger; the next epoch is FROZEN again, and the verdict comes at
//!   its end (`judge_canary`: the caller charges the challenger what its purges cost that epoch).
//!   Worse than the frozen mean by more than `rollback_margin`: rolled back at once. After
//!   `canary_trials` epochs, promoted when its mean cost beats the frozen mean by `canary_gain`; otherwise rejected.
//! - Phase change: in FROZEN or CANARY, when the size median, the size P95 or the operation rate
//!   differs from the baseline captured at freezing by more than a factor (`size_shift`,
//!   `rate_shift`) for `shift_confirm` consecutive epochs, the workload has changed: back to LEARN.
//!   In LEARN, when both size quantiles differ from their running average by more than the
//!   factor squared for twice as many epochs, or by more than the factor to the 8th power for
//!   `shift_confirm` epochs in a row (reported as a median shift): the caller starts learning
//!   afresh.
//!
//! Every transition is an `Event`, kept in a fixed ring (`EventLog`) for later printing. The
//! caller (the `Learner`) feeds costs and measurements in and decides which strategy runs. No
//! allocation, no clock: epochs are numbers, times come in the measurements.

use super::math;
use super::score::Measurements;
use super::strategy::Strategy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Learn,
    Frozen,
    Canary,
}

/// Which part of the workload moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    SizeP50,
    SizeP95,
    OpRate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Ratings converged; the strategy with this playbook id is frozen.
    Froze { leader: u32 },
    /// A canary challenger (differing in this many knobs) starts its trials.
    CanaryStarted { knobs_changed: u8 },
    /// The challenger was worse than the frozen strategy; the frozen one stays.
    CanaryRolledBack,
    /// The challenger was not clearly better after its trials; the frozen one stays.
    CanaryRejected,
    /// The challenger was clearly better; it is frozen now.
    CanaryPromoted,
    /// The workload changed; learning again.
    PhaseChanged { what: Shift },
    /// The frozen strategy was given up without a phase change (predicted too dear for the
    /// workload now, or a playbook loaded); learning again.
    Unfrozen,
}

impl Event {
    pub const fn name(&self) -> &'static str {
        match self {
            Event::Froze { .. } => "froze",
            Event::CanaryStarted { .. } => "canary-started",
            Event::CanaryRolledBack => "canary-rolled-back",
            Event::CanaryRejected => "canary-rejected",
            Event::CanaryPromoted => "canary-promoted",
            Event::PhaseChanged { .. } => "phase-changed",
            Event::Unfrozen => "unfrozen",
        }
    }
}

/// An event and the epoch it happened at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub epoch: u64,
    pub event: Event,
}

/// Events kept; older ones are overwritten.
pub const LOG_CAPACITY: usize = 32;

/// A ring of the last `LOG_CAPACITY` events.
#[derive(Clone, Copy, Debug)]
pub struct EventLog {
    ring: [Record; LOG_CAPACITY],
    total: u64,
}

impl EventLog {
    pub const fn new() -> Self {
        EventLog {
            ring: [Record {
                epoch: 0,
                event: Event::CanaryRejected,
            }; LOG_CAPACITY],
            total: 0,
        }
    }

    pub fn push(&mut self, epoch: u64, event: Event) {
        self.ring[(self.total % LOG_CAPACITY as u64) as usize] = Record { epoch, event };
        self.total += 1;
    }

    /// Events ever pushed (including those overwritten).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn len(&self) -> usize {
        self.total.min(LOG_CAPACITY as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kept events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        let start = self.total - self.len() as u64;
        (start..self.total).map(move |i| &self.ring[(i % LOG_CAPACITY as u64) as usize])
    }

    pub fn last(&self) -> Option<&Record> {
        self.iter().last()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifecycleConfig {
    /// Consecutive LEARN epochs the leader must hold steady to freeze.
    pub freeze_window: u32,
    /// Largest change of the leader's standing over the window (see `Learner`: its expected
    /// score against the runner-up in ELO mode, its mean reward in UCB1 mode).
    pub freeze_tolerance: f64,
    /// One epoch in this many is a canary epoch while frozen.
    pub canary_period: u32,
    /// Canary epochs before a challenger can be promoted.
    pub canary_trials: u32,
    /// Relative gain a challenger's mean cost needs over the frozen mean to be promoted.
    pub canary_gain: f64,
    /// Relative loss in one canary epoch that rolls the challenger back at once.
    pub rollback_margin: f64,
    /// Factor by which the size P50 or P95 must move to count as a phase change.
    pub size_shift: f64,
    /// Factor by which the operation rate must move to count as a phase change.
    pub rate_shift: f64,
    /// Consecutive shifted epochs that confirm a phase change.
    pub shift_confirm: u32,
}

impl LifecycleConfig {
    /// For ELO mode (the standing is an expected score in [0, 1]).
    pub const ELO: LifecycleConfig = LifecycleConfig {
        freeze_window: 48,
        freeze_tolerance: 0.05,
        canary_period: 16,
        canary_trials: 3,
        canary_gain: 0.08,
        rollback_margin: 0.02,
        size_shift: 2.0,
        rate_shift: 4.0,
        shift_confirm: 2,
    };
    /// For UCB1 mode (the standing is a mean reward in [0, 1]).
    pub const UCB1: LifecycleConfig = LifecycleConfig {
        freeze_tolerance: 0.03,
        ..LifecycleConfig::ELO
    };
}

/// What a canary epoch decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// More trials to come; the frozen strategy runs until the next canary epoch.
    Continue,
    RolledBack,
    Rejected,
    Promoted,
}

/// The workload's shape in log2 units (NaN = unknown).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    p50: f64,
    p95: f64,
    rate: f64,
}

const UNKNOWN: Shape = Shape {
    p50: f64::NAN,
    p95: f64::NAN,
    rate: f64::NAN,
};

fn log2_or_nan(v: u64) -> f64 {
    if v == 0 {
        f64::NAN
    } else {
        math::log2(v as f64)
    }
}

impl Shape {
    fn of(m: &Measurements) -> Shape {
        let rate = if m.elapsed_ns == 0 || m.ops == 0 {
            f64::NAN
        } else {
            math::log2(m.ops as f64 * 1e9 / m.elapsed_ns as f64)
        };
        Shape {
            p50: log2_or_nan(m.size_p50),
            p95: log2_or_nan(m.size_p95),
            rate,
        }
    }
}

/// Weight of the newest epoch in the LEARN-time shape average.
const SHAPE_ALPHA: f64 = 1.0 / 8.0;

fn mix(old: f64, new: f64) -> f64 {
    if new.is_nan() {
        old
    } else if old.is_nan() {
        new
    } else {
        old + SHAPE_ALPHA * (new - old)
    }
}

pub struct Lifecycle {
    cfg: LifecycleConfig,
    phase: Phase,
    epoch: u64,
    // LEARN: convergence tracking.
    leader: u32,
    anchor: f64,
    stable: u32,
    // FROZEN / CANARY.
    frozen: Strategy,
    frozen_id: u32,
    frozen_cost: f64,
    frozen_epochs: u32,
    since_canary: u32,
    challenger: Strategy,
    canary_runs: u32,
    canary_cost_sum: f64,
    /// A challenger's epoch has ended and waits for its verdict (`judge_canary`).
    canary_awaiting: bool,
    // Phase-change detection.
    shape: Shape,
    baseline: Shape,
    shifted: u32,
    /// Consecutive LEARN epochs of a massive size shift (see `observe_shape`).
    massive: u32,
    log: EventLog,
}

impl Lifecycle {
    pub fn new(cfg: LifecycleConfig) -> Self {
        Lifecycle {
            cfg,
            phase: Phase::Learn,
            epoch: 0,
            leader: 0,
            anchor: f64::NAN,
            stable: 0,
            frozen: super::strategy::BALANCED,
            frozen_id: 0,
            frozen_cost: 0.0,
            frozen_epochs: 0,
            since_canary: 0,
            challenger: super::strategy::BALANCED,
            canary_runs: 0,
            canary_cost_sum: 0.0,
            canary_awaiting: false,
            shape: UNKNOWN,
            baseline: UNKNOWN,
            shifted: 0,
            massive: 0,
            log: EventLog::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.cfg
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The frozen strategy and its playbook id (0 if promoted from a canary and not in the
    /// playbook); meaningful outside LEARN.
    pub fn frozen(&self) -> (&Strategy, u32) {
        (&self.frozen, self.frozen_id)
    }

    /// The canary challenger; meaningful in CANARY.
    pub fn challenger(&self) -> &Strategy {
        &self.challenger
    }

    /// Mean cost of the frozen strategy's epochs.
    pub fn frozen_cost(&self) -> f64 {
        self.frozen_cost
    }

    /// Sets the epoch number used for events (the learner's epoch counter).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn emit(&mut self, e: Event) {
        self.log.push(self.epoch, e);
    }

    /// Feeds one epoch's workload shape and returns the shift when a phase change is confirmed
    /// (the lifecycle is then in LEARN, with the new shape as its reference). In FROZEN and
    /// CANARY the epoch is compared with the shape frozen with the strategy. In LEARN it is
    /// compared with the running average of recent epochs, more strictly, since strategies under
    /// trial move the operation rate and the mix of slow-path sizes themselves: both size
    /// quantiles must move by more than the square of the size factor, over twice as many
    /// epochs (or by more than its 8th power, over as many epochs as in FROZEN).
    pub fn observe_shape(&mut self, m: &Measurements) -> Option<Shift> {
        let s = Shape::of(m);
        let learning = self.phase == Phase::Learn;
        let size_limit = math::log2(self.cfg.size_shift);
        let rate_limit = math::log2(self.cfg.rate_shift);
        // NaN on either side compares false: unknown values never signal a shift.
        let what = if learning {
            let moved = |a: f64, b: f64| (a - b).abs() > 2.0 * size_limit;
            (moved(s.p50, self.shape.p50) && moved(s.p95, self.shape.p95)).then_some(Shift::SizeP50)
        } else if (s.p50 - self.baseline.p50).abs() > size_limit {
            Some(Shift::SizeP50)
        } else if (s.p95 - self.baseline.p95).abs() > size_limit {
            Some(Shift::SizeP95)
        } else if (s.rate - self.baseline.rate).abs() > rate_limit {
            Some(Shift::OpRate)
        } else {
            None
        };
        // In LEARN, a run of `shift_confirm` epochs whose quantiles both moved by more than the
        // size factor to the 8th power (256x with the default 2x: a program going from small
        // objects to multi-MiB blocks) confirms as fast as in FROZEN: each epoch of waiting may
        // run a strategy with no cache for the new sizes (four such epochs were a third of one
        // `learn/phase` run's faults). Switching strategies moved the sampled median at most
        // 2x in the traced runs of `learn/vm`, `mixed` and `pressure`.
        let massive = learning
            && (s.p50 - self.shape.p50).abs() > 8.0 * size_limit
            && (s.p95 - self.shape.p95).abs() > 8.0 * size_limit;
        self.massive = if massive { self.massive + 1 } else { 0 };
        let confirm = self.cfg.shift_confirm * if learning { 2 } else { 1 };
        match what {
            None => {
                self.shifted = 0;
                if learning {
                    self.shape = Shape {
                        p50: mix(self.shape.p50, s.p50),
                        p95: mix(self.shape.p95, s.p95),
                        rate: mix(self.shape.rate, s.rate),
                    };
                }
                None
            }
            Some(w) => {
                self.shifted += 1;
                if self.shifted < confirm && self.massive < self.cfg.shift_confirm {
                    return None;
                }
                self.phase = Phase::Learn;
                self.shifted = 0;
                self.massive = 0;
                self.stable = 0;
                self.anchor = f64::NAN;
                self.canary_awaiting = false;
                self.shape = s;
                self.emit(Event::PhaseChanged { what: w });
                Some(w)
            }
        }
    }

    /// In LEARN, after an epoch: the current leader's id, rank value and strategy. Freezes it
    /// (returning true) once it has held steady for the window.
    pub fn observe_leader(&mut self, id: u32, value: f64, strategy: &Strategy) -> bool {
        if self.phase != Phase::Learn {
            return false;
        }
        // False while the anchor is NaN (no leader yet).
        let steady = (value - self.anchor).abs() <= self.cfg.freeze_tolerance;
        if id != self.leader || !steady {
            self.leader = id;
            self.anchor = value;
            self.stable = 0;
            return false;
        }
        self.stable += 1;
        if self.stable < self.cfg.freeze_window {
            return false;
        }
        self.freeze(id, strategy);
        true
    }

    /// Freezes `strategy` (playbook id `id`) now, whatever the ratings say (e.g. a warm start
    /// from a converged playbook).
    pub fn freeze(&mut self, id: u32, strategy: &Strategy) {
        self.phase = Phase::Frozen;
        self.frozen = *strategy;
        self.frozen_id = id;
        self.frozen_cost = 0.0;
        self.frozen_epochs = 0;
        self.since_canary = 0;
        self.canary_runs = 0;
        self.canary_cost_sum = 0.0;
        self.canary_awaiting = false;
        self.baseline = self.shape;
        self.shifted = 0;
        self.massive = 0;
        self.emit(Event::Froze { leader: id });
    }

    /// In FROZEN, records an epoch of the frozen strategy at `cost`.
    pub fn frozen_epoch(&mut self, cost: f64) {
        if self.phase != Phase::Frozen {
            return;
        }
        self.frozen_epochs = self.frozen_epochs.saturating_add(1);
        let w = 1.0 / (self.frozen_epochs.min(16) as f64);
        self.frozen_cost += w * (cost - self.frozen_cost);
        self.since_canary += 1;
    }

    /// In FROZEN: is the next epoch a canary epoch? (Only once the frozen cost is known.)
    pub fn canary_due(&self) -> bool {
        self.canary_after(self.cfg.canary_period)
    }

    /// In FROZEN: may a canary start ahead of `canary_due` (for a strategy that would give back
    /// memory the frozen one holds idle)? `canary_period / 4` epochs after the last canary at the
    /// soonest.
    pub fn early_canary_ok(&self) -> bool {
        self.canary_after((self.cfg.canary_period / 4).max(1))
    }

    /// Frozen, with the frozen cost known and no verdict pending, and `epochs` epochs since the
    /// last canary (counting the next).
    fn canary_after(&self, epochs: u32) -> bool {
        self.phase == Phase::Frozen
            && self.frozen_epochs > 0
            && !self.canary_awaiting
            && self.since_canary + 1 >= epochs
    }

    /// True when a challenger is mid-trial (the next canary epoch continues it).
    pub fn has_challenger(&self) -> bool {
        self.canary_runs > 0
    }

    /// Enters CANARY with `challenger` for the next epoch. A challenger mid-trial is kept if
    /// `challenger` is None.
    pub fn start_canary(&mut self, challenger: Option<&Strategy>) {
        if self.phase != Phase::Frozen {
            return;
        }
        if let Some(c) = challenger {
            self.challenger = *c;
            self.canary_runs = 0;
            self.canary_cost_sum = 0.0;
            let d = c.knobs_differing(&self.frozen) as u8;
            self.emit(Event::CanaryStarted { knobs_changed: d });
        }
        self.phase = Phase::Canary;
        self.since_canary = 0;
    }

    /// In CANARY, the challenger's epoch cost; back to FROZEN with the verdict (`end_canary_run`
    /// then `judge_canary` at once: the tests' shorthand; the learner judges one epoch later).
    #[cfg(test)]
    pub fn canary_epoch(&mut self, cost: f64) -> Verdict {
        if self.phase != Phase::Canary {
            return Verdict::Continue;
        }
        self.end_canary_run();
        self.judge_canary(cost)
    }

    /// In CANARY, after the challenger's epoch: back to FROZEN, the verdict waiting for
    /// `judge_canary` (the caller charges the challenger what its purges cost the epoch after).
    pub fn end_canary_run(&mut self) {
        if self.phase == Phase::Canary {
            self.phase = Phase::Frozen;
            self.canary_awaiting = true;
        }
    }

    /// The verdict on the challenger's last epoch, at `cost`; Continue (nothing) when no epoch
    /// awaits one (a phase change or an unfreeze came between).
    pub fn judge_canary(&mut self, cost: f64) -> Verdict {
        let awaiting = core::mem::take(&mut self.canary_awaiting);
        if !awaiting || self.phase != Phase::Frozen {
            return Verdict::Continue;
        }
        self.canary_runs += 1;
        self.canary_cost_sum += cost;
        let f = self.frozen_cost;
        let v = if cost > f * (1.0 + self.cfg.rollback_margin) {
            Verdict::RolledBack
        } else if self.canary_runs < self.cfg.canary_trials {
            Verdict::Continue
        } else if self.canary_cost_sum / (self.canary_runs as f64)
            < f * (1.0 - self.cfg.canary_gain)
        {
            Verdict::Promoted
        } else {
            Verdict::Rejected
        };
        match v {
            Verdict::Continue => {}
            Verdict::RolledBack => self.emit(Event::CanaryRolledBack),
            Verdict::Rejected => self.emit(Event::CanaryRejected),
            Verdict::Promoted => {
                self.frozen = self.challenger;
                self.frozen_id = 0;
                self.frozen_cost = self.canary_cost_sum / self.canary_runs as f64;
                self.frozen_epochs = 1;
                self.emit(Event::CanaryPromoted);
            }
        }
        if v != Verdict::Continue {
            self.canary_runs = 0;
            self.canary_cost_sum = 0.0;
        }
        v
    }

    /// Records the playbook id a promoted strategy got.
    pub fn set_frozen_id(&mut self, id: u32) {
        self.frozen_id = id;
    }

    /// Back to LEARN without a phase change (e.g. the caller wants to re-learn); logged when it
    /// leaves FROZEN or CANARY. A challenger mid-trial is dropped.
    pub fn unfreeze(&mut self) {
        if self.phase != Phase::Learn {
            self.emit(Event::Unfrozen);
        }
        self.canary_runs = 0;
        self.canary_cost_sum = 0.0;
        self.canary_awaiting = false;
        self.phase = Phase::Learn;
        self.stable = 0;
        self.anchor = f64::NAN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::{BALANCED, FAST, LEAN};

    fn cfg() -> LifecycleConfig {
        LifecycleConfig {
            freeze_window: 5,
            freeze_tolerance: 24.0,
            ..LifecycleConfig::ELO
        }
    }

    fn shape(p50: u64, p95: u64, ops: u64) -> Measurements {
        Measurements {
            size_p50: p50,
            size_p95: p95,
            reuse: Default::default(),
            ops,
            elapsed_ns: 1_000_000,
            ..Default::default()
        }
    }

    fn frozen() -> Lifecycle {
        let mut l = Lifecycle::new(cfg());
        for e in 0..10 {
            l.set_epoch(e);
            l.observe_shape(&shape(64, 4096, 1000));
            if l.observe_leader(3, 1600.0 + e as f64, &BALANCED) {
                break;
            }
        }
        assert_eq!(l.phase(), Phase::Frozen);
        l
    }

    #[test]
    fn learn_freezes_when_leader_holds_steady() {
        let mut l = Lifecycle::new(cfg());
        assert_eq!(l.phase(), Phase::Learn);
        // Leader changes reset the window.
        for e in 0..4 {
            assert!(!l.observe_leader(1, 1500.0, &LEAN));
            assert!(!l.observe_leader(2, 1500.0, &FAST), "epoch {e}");
        }
        // A leader whose rating still climbs fast does not freeze.
        for i in 0..20 {
            assert!(!l.observe_leader(2, 1500.0 + 30.0 * i as f64, &FAST));
        }
        // Steady: the first observation anchors, five more freeze.
        let base = 1500.0 + 30.0 * 20.0;
        let mut froze_at = None;
        for i in 0..10 {
            if l.observe_leader(2, base + i as f64, &FAST) {
                froze_at = Some(i);
                break;
            }
        }
        assert_eq!(froze_at, Some(5));
        assert_eq!(l.phase(), Phase::Frozen);
        assert_eq!(l.frozen(), (&FAST, 2));
        assert_eq!(l.log().last().unwrap().event, Event::Froze { leader: 2 });
        // Frozen ignores leader updates.
        assert!(!l.observe_leader(9, 0.0, &LEAN));
        // Given up: logged once, and learning again.
        let logged = l.log().total();
        l.unfreeze();
        assert_eq!(l.phase(), Phase::Learn);
        assert_eq!(l.log().last().unwrap().event, Event::Unfrozen);
        l.unfreeze();
        assert_eq!(
            l.log().total(),
            logged + 1,
            "unfreezing in LEARN logs nothing"
        );
    }

    #[test]
    fn canary_runs_one_epoch_in_sixteen_and_rolls_back_when_worse() {
        let mut l = frozen();
        let mut canaries = 0;
        for _ in 0..64 {
            if l.canary_due() {
                l.start_canary(Some(&FAST));
                assert_eq!(l.phase(), Phase::Canary);
                canaries += 1;
                // 10 % worse: rolled back at once.
                assert_eq!(l.canary_epoch(1.10), Verdict::RolledBack);
                assert_eq!(l.phase(), Phase::Frozen);
                assert_eq!(l.frozen().0, &BALANCED);
            } else {
                l.frozen_epoch(1.0);
            }
        }
        assert_eq!(canaries, 4);
        let names: Vec<&str> = l.log().iter().map(|r| r.event.name()).collect();
        assert_eq!(
            names,
            [
                "froze",
                "canary-started",
                "canary-rolled-back",
                "canary-started",
                "canary-rolled-back",
                "canary-started",
                "canary-rolled-back",
                "canary-started",
                "canary-rolled-back"
            ]
        );
    }

    #[test]
    fn a_canary_verdict_can_wait_for_the_epoch_after() {
        let mut l = frozen();
        for _ in 0..15 {
            l.frozen_epoch(1.0);
        }
        // The challenger's epoch looks 20 % cheaper, but its purges cost the next epoch: charged
        // before the verdict, it is rolled back.
        l.start_canary(Some(&LEAN));
        l.end_canary_run();
        assert_eq!(l.phase(), Phase::Frozen);
        assert!(!l.canary_due());
        assert_eq!(l.judge_canary(0.8 + 0.5), Verdict::RolledBack);
        // Judged once only.
        assert_eq!(l.judge_canary(0.5), Verdict::Continue);
        // A phase change between the run and the verdict drops the verdict.
        for _ in 0..15 {
            l.frozen_epoch(1.0);
        }
        l.start_canary(Some(&FAST));
        l.end_canary_run();
        for _ in 0..cfg().shift_confirm {
            l.observe_shape(&shape(1 << 20, 4 << 20, 1000));
        }
        assert_eq!(l.phase(), Phase::Learn);
        assert_eq!(l.judge_canary(0.1), Verdict::Continue);
        assert_eq!(l.phase(), Phase::Learn);
    }

    #[test]
    fn canary_promotes_a_clear_gain_and_rejects_a_marginal_one() {
        let mut l = frozen();
        for _ in 0..15 {
            l.frozen_epoch(1.0);
        }
        // Marginal: 3 % better three times, not the 8 % needed.
        for i in 0..3 {
            assert!(l.canary_due());
            l.start_canary(if i == 0 { Some(&LEAN) } else { None });
            let v = l.canary_epoch(0.97);
            assert_eq!(
                v,
                if i < 2 {
                    Verdict::Continue
                } else {
                    Verdict::Rejected
                }
            );
            for _ in 0..15 {
                l.frozen_epoch(1.0);
            }
        }
        assert_eq!(l.frozen().0, &BALANCED);
        // Clear: 20 % better three times.
        for i in 0..3 {
            l.start_canary(if i == 0 { Some(&FAST) } else { None });
            assert!(i == 0 || l.has_challenger());
            let v = l.canary_epoch(0.8);
            assert_eq!(
                v,
                if i < 2 {
                    Verdict::Continue
                } else {
                    Verdict::Promoted
                }
            );
            for _ in 0..15 {
                l.frozen_epoch(1.0);
            }
        }
        assert_eq!(l.frozen(), (&FAST, 0));
        assert_eq!(l.log().last().unwrap().event, Event::CanaryPromoted);
    }

    #[test]
    fn a_size_shift_in_learn_is_a_phase_change_over_twice_the_epochs() {
        let mut l = Lifecycle::new(cfg());
        let confirm = cfg().shift_confirm * 2;
        for i in 0..20 {
            assert_eq!(l.observe_shape(&shape(64 + i, 4096, 1000)), None);
        }
        // The operation rate is the strategies' doing in LEARN: never a phase change.
        for _ in 0..10 {
            assert_eq!(l.observe_shape(&shape(64, 4096, 100_000)), None);
        }
        // Nor the median alone moving, or both by less than the size factor squared.
        for _ in 0..10 {
            assert_eq!(l.observe_shape(&shape(64 * 16, 4096, 1000)), None);
        }
        for _ in 0..10 {
            assert_eq!(l.observe_shape(&shape(64 * 3, 4096 * 3, 1000)), None);
        }
        // A blip one epoch short of confirmation, then back: nothing.
        for _ in 1..confirm {
            assert_eq!(l.observe_shape(&shape(64 * 64, 4096 * 64, 1000)), None);
        }
        assert_eq!(l.observe_shape(&shape(64, 4096, 1000)), None);
        // The sizes move for good: confirmed on the `confirm`th epoch.
        for _ in 1..confirm {
            assert_eq!(l.observe_shape(&shape(64 * 64, 4096 * 64, 1000)), None);
        }
        assert_eq!(
            l.observe_shape(&shape(64 * 64, 4096 * 64, 1000)),
            Some(Shift::SizeP50)
        );
        assert_eq!(l.phase(), Phase::Learn);
        assert!(matches!(
            l.log().last().unwrap().event,
            Event::PhaseChanged { .. }
        ));
        // The new shape is the reference now.
        for _ in 0..10 {
            assert_eq!(l.observe_shape(&shape(64 * 64, 4096 * 64, 1000)), None);
        }
    }

    #[test]
    fn a_massive_size_shift_in_learn_is_confirmed_as_fast_as_when_frozen() {
        let mut l = Lifecycle::new(cfg());
        let confirm = cfg().shift_confirm;
        for _ in 0..20 {
            assert_eq!(l.observe_shape(&shape(64, 4096, 1000)), None);
        }
        // Small objects to multi-MiB blocks (both quantiles 1000x): a blip one epoch short of
        // `shift_confirm` is nothing.
        for _ in 1..confirm {
            assert_eq!(l.observe_shape(&shape(64_000, 4_096_000, 1000)), None);
        }
        assert_eq!(l.observe_shape(&shape(64, 4096, 1000)), None);
        // Only massive epochs in a row count: a 64x epoch, then `shift_confirm - 1` massive
        // ones, is not enough.
        assert_eq!(l.observe_shape(&shape(64 * 64, 4096 * 64, 1000)), None);
        for _ in 1..confirm {
            assert_eq!(l.observe_shape(&shape(64_000, 4_096_000, 1000)), None);
        }
        assert_eq!(
            l.observe_shape(&shape(64_000, 4_096_000, 1000)),
            Some(Shift::SizeP50)
        );
        assert_eq!(l.phase(), Phase::Learn);
    }

    #[test]
    fn phase_change_sends_frozen_back_to_learn() {
        let mut l = frozen();
        // Noise within a factor 2 is no phase change.
        for i in 0..20 {
            let m = shape(64 + i, 4096 + 100 * i, 1000 + 50 * i);
            assert_eq!(l.observe_shape(&m), None);
            l.frozen_epoch(1.0);
        }
        // Unknown values never trigger.
        assert_eq!(l.observe_shape(&Measurements::default()), None);
        // Sizes jump 8x: confirmed on the second epoch.
        assert_eq!(l.observe_shape(&shape(512, 32768, 1000)), None);
        assert_eq!(l.phase(), Phase::Frozen);
        assert_eq!(
            l.observe_shape(&shape(512, 32768, 1000)),
            Some(Shift::SizeP50)
        );
        assert_eq!(l.phase(), Phase::Learn);
        assert_eq!(
            l.log().last().unwrap().event,
            Event::PhaseChanged {
                what: Shift::SizeP50
            }
        );
    }

    #[test]
    fn rate_shift_from_canary_also_counts() {
        let mut l = frozen();
        l.frozen_epoch(1.0);
        l.start_canary(Some(&FAST));
        assert_eq!(l.observe_shape(&shape(64, 4096, 100_000)), None);
        assert_eq!(
            l.observe_shape(&shape(64, 4096, 100_000)),
            Some(Shift::OpRate)
        );
        assert_eq!(l.phase(), Phase::Learn);
        // A stray shifted epoch followed by a normal one resets the count.
        let mut l = frozen();
        assert_eq!(l.observe_shape(&shape(64, 1 << 20, 1000)), None);
        assert_eq!(l.observe_shape(&shape(64, 4096, 1000)), None);
        assert_eq!(l.observe_shape(&shape(64, 1 << 20, 1000)), None);
        assert_eq!(l.phase(), Phase::Frozen);
    }

    #[test]
    fn event_log_is_a_ring() {
        let mut log = EventLog::new();
        assert!(log.is_empty() && log.last().is_none());
        for e in 0..100u64 {
            log.push(e, Event::Froze { leader: e as u32 });
        }
        assert_eq!(log.total(), 100);
        assert_eq!(log.len(), LOG_CAPACITY);
        let epochs: Vec<u64> = log.iter().map(|r| r.epoch).collect();
        assert_eq!(epochs, (100 - LOG_CAPACITY as u64..100).collect::<Vec<_>>());
    }
}
