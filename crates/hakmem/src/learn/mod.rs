//! The learning layer: which strategy (knob vector) the allocator runs, decided at epoch
//! boundaries from measured costs (docs/DESIGN.md, "The learner").
//!
//! Layers, bottom up: `rng` (seeded SplitMix64), `math` (log2, ln, 10^x without libm),
//! `strategy` (knobs, ladders, the generator), `score` (measurements -> cost, lower is better),
//! `reuse` (which page faults another strategy
//! would have caused or saved: the learner screens out, or runs at once, strategies predicted
//! far worse or far better without trying them), `elo` and `ucb1` (the two raters), `sketch`
//! (size quantiles) and `site` (per-call-site profiles and the sampling rate), `playbook` (the live
//! strategies: choice, rating, evolution, file), `lifecycle` (LEARN / FROZEN / CANARY and the
//! event log), and here the `Learner` that ties them together. The `Learner` also settles which
//! epoch pays for a purge: page faults on blocks purged in the previous epoch are charged to that
//! epoch (LEARN rates each epoch one epoch late for this; a canary's challenger pays for the
//! frozen epoch after it).
//!
//! Everything is deterministic given the seed and the measurements, allocates nothing, reads no
//! clock and takes no lock: the caller keeps one `Learner` behind its own lock, measures an epoch,
//! calls `on_epoch_end` and applies the strategy it returns until the next boundary. The hot path
//! only ever reads values already decided.

pub mod elo;
pub mod lifecycle;
pub mod math;
pub mod playbook;
pub mod reuse;
pub mod rng;
pub mod score;
pub mod site;
pub mod sketch;
pub mod strategy;
pub mod ucb1;

pub use lifecycle::{Event, EventLog, LifecycleConfig, Phase, Record, Shift};
pub use playbook::{Entry, FileError, Playbook, PlaybookConfig, Selector};
pub use score::{Measurements, Mode};
pub use strategy::{Knob, Strategy};

use lifecycle::{Lifecycle, Verdict};
use rng::Rng;
use score::Scorer;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnerConfig {
    pub playbook: PlaybookConfig,
    pub lifecycle: LifecycleConfig,
    /// In LEARN after warm-up, the playbook evolves once every this many epochs.
    pub evolve_every: u32,
}

impl LearnerConfig {
    /// The defaults for a selector (the freeze tolerance is in that selector's units).
    pub const fn for_selector(selector: Selector) -> Self {
        LearnerConfig {
            playbook: PlaybookConfig::DEFAULT,
            lifecycle: match selector {
                Selector::Elo => LifecycleConfig::ELO,
                Selector::Ucb1 => LifecycleConfig::UCB1,
            },
            evolve_every: 32,
        }
    }
}

/// The strategy learner. See the module header.
pub struct Learner {
    mode: Mode,
    cfg: LearnerConfig,
    scorer: Scorer,
    playbook: Playbook,
    lifecycle: Lifecycle,
    rng: Rng,
    /// The strategy running in the current epoch.
    current: Strategy,
    /// Its playbook id in LEARN (0 otherwise).
    running: u32,
    epoch: u64,
    last_cost: f64,
    /// The last epoch's measurements and the strategy that ran it, for predictions
    /// (`predicted_cost`: screening, promising strategies, canary challengers).
    last: Measurements,
    ran: Strategy,
    /// The last LEARN epoch, rated one epoch late: (playbook id, cost). Blocks its purges gave
    /// back and the next epoch takes again cold fault in that next epoch; those faults are
    /// charged back to it before it is rated, and taken off the epoch that paid them.
    pending: Option<(u32, f64)>,
    /// The last canary epoch's cost, judged one epoch late for the same reason.
    canary_pending: Option<f64>,
}

/// What a page lost to a purge costs at least, in nanoseconds: the fault and zeroing a 4 KiB
/// page again (measured here: `lean` on the seed VM loop costs about 2 us per page, with the
/// unmapping and mapping; half of that, to stay a floor).
pub const FAULT_NS: f64 = 1000.0;

/// Whether resident memory grew from `before` to `after` by more than `REVEAL_GROWTH` of it: the
/// most generous strategy's caches are still filling with the workload's blocks (on `learn/phase`
/// they take about 10 epochs of 10 ms after the switch to large blocks). Until they hold them,
/// the reuse profile sees only the young, shallow reuses of a cache just begun, and predicts a
/// stingier strategy to lose nothing where one epoch of it would throw away what the workload
/// reuses next; so the reveal goes on (`Playbook::extend_reveal`).
fn still_filling(before: u64, after: u64) -> bool {
    before > 0 && after > before && (after - before) as f64 > REVEAL_GROWTH * after as f64
}

/// See `still_filling`.
pub const REVEAL_GROWTH: f64 = 1.0 / 16.0;

/// How many mutations of the frozen strategy a canary tries before it skips its turn, when each
/// is predicted too dear (`too_dear`).
const CANARY_DRAWS: u32 = 8;

impl Learner {
    pub fn new(mode: Mode, selector: Selector, seed: u64) -> Self {
        Learner::with_config(mode, selector, seed, LearnerConfig::for_selector(selector))
    }

    pub fn with_config(mode: Mode, selector: Selector, seed: u64, cfg: LearnerConfig) -> Self {
        let mut l = Learner {
            mode,
            cfg,
            scorer: Scorer::new(mode),
            playbook: Playbook::new(selector, cfg.playbook, seed),
            lifecycle: Lifecycle::new(cfg.lifecycle),
            rng: Rng::new(seed ^ 0x6C65_6172_6E65_7221),
            current: strategy::BALANCED,
            running: 0,
            epoch: 0,
            last_cost: 1.0,
            last: Measurements::default(),
            ran: strategy::BALANCED,
            pending: None,
            canary_pending: None,
        };
        l.choose_learning();
        l
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn selector(&self) -> Selector {
        self.playbook.selector()
    }

    /// The strategy to run in the current epoch.
    pub fn current(&self) -> &Strategy {
        &self.current
    }

    pub fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// Epochs ended so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The cost of the last epoch (lower is better; about 1.0 for an average epoch).
    pub fn last_cost(&self) -> f64 {
        self.last_cost
    }

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }

    /// Lifecycle transitions, oldest first (the last `lifecycle::LOG_CAPACITY`).
    pub fn events(&self) -> &EventLog {
        self.lifecycle.log()
    }

    /// Live strategies from best to worst.
    pub fn leaderboard(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.playbook.ranked()
    }

    /// The best strategy known: the frozen one outside LEARN, else the playbook's leader.
    pub fn best(&self) -> &Strategy {
        match self.lifecycle.phase() {
            Phase::Learn => &self.playbook.entry(self.playbook.open_leader()).strategy,
            _ => self.lifecycle.frozen().0,
        }
    }

    /// Whether the current strategy is running for the first time (in LEARN): the caller may
    /// make this epoch a short probe, so that a catastrophic candidate costs little.
    pub fn probing(&self) -> bool {
        self.lifecycle.phase() == Phase::Learn
            && self
                .playbook
                .slot_of(self.running)
                .is_some_and(|s| self.playbook.untried(s))
    }

    fn choose_learning(&mut self) {
        let (slot, _) = self.playbook.select();
        let e = self.playbook.entry(slot);
        self.current = e.strategy;
        self.running = e.id;
    }

    /// Ends the epoch that ran `current()`: scores it, updates ratings and the lifecycle, maybe
    /// evolves the playbook, and returns the strategy for the next epoch.
    pub fn on_epoch_end(&mut self, m: &Measurements) -> &Strategy {
        self.epoch += 1;
        self.lifecycle.set_epoch(self.epoch);
        // An epoch without a baseline (the first, or the first after a phase change) only sets
        // it: its cost is 1.0 by definition, which says nothing about its strategy (and the very
        // first epoch also carries the program's start-up).
        let judged = self.scorer.baseline().is_some();
        // The faults this epoch paid for the previous epoch's purges are that epoch's cost, when
        // that epoch is still to be rated (a pending LEARN epoch, a canary awaiting its verdict);
        // priced against the baseline this epoch's cost is taken against.
        let inherited = m.reuse.cold_from_last_epoch.min(m.minor_faults);
        let owed = self.pending.is_some() || self.canary_pending.is_some();
        let (own_share, debt) = if owed {
            (
                self.scorer.fault_cost(inherited, m.ops),
                self.scorer.fault_cost(inherited, self.last.ops),
            )
        } else {
            (0.0, 0.0)
        };
        let cost = self.scorer.score(m);
        self.last_cost = cost;
        let shifted = (cost - own_share).max(0.0);
        let phase = self.lifecycle.phase();
        if !judged {
            // Nothing to record; the same strategy runs again, now judged.
        } else if self.lifecycle.observe_shape(m).is_some() {
            // The epoch belongs to the new workload, whose costs the old baseline cannot judge.
            self.flush_pending(0.0);
            self.canary_pending = None;
            self.scorer.reset();
            self.playbook.forget_half();
        } else {
            // The previous epoch's rating or verdict first, with what it owes.
            self.flush_pending(debt);
            let verdict = match self.canary_pending.take() {
                Some(c) => self.judge_canary(c + debt),
                None => Verdict::Continue,
            };
            match phase {
                Phase::Learn => {
                    self.pending = Some((self.running, shifted));
                    self.judge_learning();
                }
                // This epoch ran the old frozen strategy: it says nothing of a promoted one.
                Phase::Frozen if verdict == Verdict::Promoted => {}
                Phase::Frozen => self.lifecycle.frozen_epoch(shifted),
                Phase::Canary => {
                    self.canary_pending = Some(shifted);
                    self.lifecycle.end_canary_run();
                }
            }
        }
        self.playbook.set_in_flight(self.pending.map(|p| p.0));
        if self.playbook.reveal_just_ended()
            && still_filling(self.last.mapped_bytes, m.mapped_bytes)
        {
            self.playbook.extend_reveal();
        }
        self.last = *m;
        self.ran = self.current;
        self.screen();
        if self.lifecycle.phase() != Phase::Learn {
            // A frozen strategy now predicted too dear (the workload moved under it) is given up.
            let f = *self.lifecycle.frozen().0;
            let p = &self.playbook;
            if p.find(&f).is_some_and(|s| p.screened(s) && p.vetoed(s)) {
                self.lifecycle.unfreeze();
            }
        }
        match self.lifecycle.phase() {
            Phase::Learn => self.choose_learning(),
            _ => self.choose_frozen(),
        }
        &self.current
    }

    /// Rates the pending LEARN epoch, `debt` dearer (nothing when there is none, or when an
    /// evolution retired its strategy meanwhile).
    fn flush_pending(&mut self, debt: f64) {
        if let Some((id, cost)) = self.pending.take() {
            if let Some(slot) = self.playbook.slot_of(id) {
                self.playbook.record(slot, cost + debt);
            }
        }
    }

    /// How many times as dear the last epoch would have been with `s` instead: about 1.0, plus
    /// the page faults of every page of a warm reuse `s` would have lost, minus those of every
    /// page of a cold reuse it would have kept warm (`reuse`). The faults are priced twice and
    /// the larger figure counts: `FAULT_NS` each over the epoch's wall time, and what they add to
    /// the epoch's cost (`Scorer::fault_cost`, where a cost of 1.0 is an average epoch). The cost
    /// is what rates the strategy once it runs; where the epochs fault little, it counts a
    /// thousand faults as dear though they take only a millisecond. 1.0 when the epoch's length
    /// is unknown. What else `s` changes (CPU time above all) is learned by running it.
    ///
    /// Switching to `s` also costs what it purges at once of the cache the last strategy filled
    /// (`Reuse::dropped_pages`), as far as the workload is using that part of the cache
    /// (`Reuse::dropped_busy_pages`). The reuses alone cannot show this while the cache is young:
    /// a cache 100 ms old has handed out no block older than 100 ms, yet a 50 ms purge delay would
    /// throw most of it away.
    ///
    /// And memory, priced as the score prices it (`Scorer::memory_cost`): what `s` would hold
    /// more than the strategy that ran, warm blocks it would not drop and purged ones it would
    /// still hold (`Reuse::kept_cold_pages`). A generous strategy thereby pays, in the epochs a
    /// stingier one runs, for the memory it would keep idle through a quiet stretch (where no
    /// epoch of its own ever shows it: whoever runs after a purge holds nothing), and a stingier
    /// one is credited, while a generous one runs, with the memory it would give back.
    pub fn predicted_cost(&self, s: &Strategy) -> f64 {
        let (faults, memory) = self.predicted_shares(s);
        1.0 + faults + memory
    }

    /// `predicted_cost`'s two parts: the faults' share and the memory's (each signed).
    fn predicted_shares(&self, s: &Strategy) -> (f64, f64) {
        let m = &self.last;
        if m.elapsed_ns == 0 {
            return (0.0, 0.0);
        }
        // Relative to the strategy that ran, which thereby predicts exactly 1.0 for itself. Per
        // strategy: the pages it would fault (lost, minus saved, plus what a switch to it drops
        // of the busy part of the cache) and the pages it would hold (kept purged ones, minus
        // dropped warm ones).
        let effect = |x: &Strategy| {
            let dropped = m.reuse.dropped_pages(x) as f64;
            let faulted = m.reuse.lost_pages(x) as f64 - m.reuse.saved_pages(x) as f64
                + m.reuse.dropped_busy_pages(x);
            (faulted, m.reuse.kept_cold_pages(x) as f64 - dropped)
        };
        let (faulted, held) = effect(s);
        let (ran_faulted, ran_held) = effect(&self.ran);
        let pages = faulted - ran_faulted;
        let time_share = pages * FAULT_NS / m.elapsed_ns as f64;
        let cost_share = self
            .scorer
            .fault_cost(pages.abs() as u64, m.ops)
            .copysign(pages);
        let faults = if time_share.abs() >= cost_share.abs() {
            time_share
        } else {
            cost_share
        };
        let more = held - ran_held;
        let memory = self
            .scorer
            .memory_cost((more.abs() * reuse::PAGE as f64) as u64, m.live_bytes)
            .copysign(more);
        (faults, memory)
    }

    /// Whether `s` is predicted to make an epoch more than `playbook::VETO_FACTOR` times as dear
    /// (`predicted_cost`): a strategy so wrong for the workload that even one short probe of it
    /// costs more than exploring it could ever win back.
    fn too_dear(&self, s: &Strategy) -> bool {
        self.predicted_cost(s) > playbook::VETO_FACTOR
    }

    /// Updates every live strategy's predicted loss (`Playbook::note_loss`): those predicted too
    /// dear for this workload are screened out without ever running. And notes those that would
    /// give back memory the strategy that ran holds idle (`Playbook::note_release`): a saving of
    /// `PROMISE` in memory alone, and overall with the faults it would cost.
    fn screen(&mut self) {
        if self.last.elapsed_ns == 0 {
            return;
        }
        for slot in 0..self.playbook.len() {
            let (faults, memory) = self.predicted_shares(&self.playbook.entry(slot).strategy);
            let extra = faults + memory;
            self.playbook.note_loss(slot, extra);
            let release = extra < -playbook::PROMISE && memory < -playbook::PROMISE;
            self.playbook.note_release(slot, release);
        }
    }

    /// After a LEARN epoch: evolves the playbook now and then, and lets the lifecycle freeze a
    /// leader that holds steady (the pending epoch is rated at the next epoch's end all the same).
    fn judge_learning(&mut self) {
        // Neither evolution nor freezing on the ratings of a warm-up (after a phase change, the
        // old phase's ratings, halved, still order the strategies).
        if !self.playbook.warmed_up() {
            return;
        }
        if self.cfg.evolve_every > 0 && self.epoch.is_multiple_of(self.cfg.evolve_every as u64) {
            self.playbook.evolve();
        }
        // The leader the lifecycle may freeze on: never a screened one.
        let lead = self.playbook.open_leader();
        let e = *self.playbook.entry(lead);
        let r = self.playbook.ranking();
        let p = &self.playbook;
        let second = r[..p.len()]
            .iter()
            .map(|&i| i as usize)
            .find(|&i| i != lead && !p.vetoed(i))
            .or_else(|| {
                r[..p.len()]
                    .iter()
                    .map(|&i| i as usize)
                    .find(|&i| i != lead)
            });
        let standing = match self.playbook.selector() {
            Selector::Elo if second.is_some() => elo::expected(
                e.elo.rating,
                self.playbook.entry(second.unwrap_or(0)).elo.rating,
            ),
            Selector::Elo => 1.0,
            Selector::Ucb1 => e.arm.mean(),
        };
        self.lifecycle.observe_leader(e.id, standing, &e.strategy);
    }

    /// The verdict on the last canary epoch at `cost` (its purges' cost included).
    fn judge_canary(&mut self, cost: f64) -> Verdict {
        let v = self.lifecycle.judge_canary(cost);
        if v == Verdict::Promoted {
            let (s, parent) = self.lifecycle.frozen();
            let s = *s;
            let rating = self.playbook.entry(self.playbook.leader()).elo.rating + elo::K / 2.0;
            if let Some(slot) = self.playbook.adopt(s, parent, rating) {
                let id = self.playbook.entry(slot).id;
                self.lifecycle.set_frozen_id(id);
            }
        }
        v
    }

    fn choose_frozen(&mut self) {
        self.running = 0;
        let frozen = *self.lifecycle.frozen().0;
        // A strategy that would give back memory the frozen one holds idle runs as a canary
        // without waiting for `canary_due` (continuing its trial if it is the challenger).
        let release = self
            .playbook
            .releasing()
            .map(|i| self.playbook.entry(i).strategy);
        if let Some(r) = release.filter(|r| *r != frozen && self.lifecycle.early_canary_ok()) {
            let trial = self.lifecycle.has_challenger() && *self.lifecycle.challenger() == r;
            self.lifecycle
                .start_canary(if trial { None } else { Some(&r) });
            self.current = r;
            return;
        }
        if self.lifecycle.canary_due() {
            // A promising strategy is the challenger of choice: the canary's verdict, measured,
            // decides whether the prediction was right.
            let promising = self
                .playbook
                .promising()
                .map(|i| self.playbook.entry(i).strategy)
                .filter(|s| *s != frozen && *s != *self.lifecycle.challenger());
            if let Some(c) = promising {
                self.lifecycle.start_canary(Some(&c));
                self.current = c;
                return;
            }
            if self.lifecycle.has_challenger() && !self.too_dear(self.lifecycle.challenger()) {
                self.lifecycle.start_canary(None);
                self.current = *self.lifecycle.challenger();
                return;
            }
            // A fresh challenger, one not predicted too dear; none this time if every draw is.
            for _ in 0..CANARY_DRAWS {
                let c = strategy::mutate(self.lifecycle.frozen().0, &mut self.rng);
                if !self.too_dear(&c) {
                    self.lifecycle.start_canary(Some(&c));
                    self.current = c;
                    return;
                }
            }
        }
        self.current = *self.lifecycle.frozen().0;
    }

    /// One curator step now (`hak_evolve_playbook`): retires proven strategies below the top
    /// `keep` and adds a challenger mutated from a leader. Epochs also do this on their own.
    pub fn evolve(&mut self) -> playbook::Evolution {
        self.playbook.evolve()
    }

    /// Writes the playbook to `path` (NUL-terminated).
    pub fn save(&self, path: &[u8]) -> Result<(), FileError> {
        self.playbook.save(path)
    }

    /// Warm start: replaces the playbook with the one in `path` (NUL-terminated) and goes back
    /// to LEARN with it. On error nothing changes; the caller warns and carries on cold.
    pub fn load(&mut self, path: &[u8]) -> Result<(), FileError> {
        self.playbook.load(path)?;
        self.pending = None;
        self.canary_pending = None;
        self.playbook.set_in_flight(None);
        self.lifecycle.unfreeze();
        self.screen();
        self.choose_learning();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strategy::DEFAULTS;

    /// The strategy the synthetic workload rewards: "big-blocks-cached".
    const TARGET: usize = 6;

    /// A synthetic workload: every cost grows with the strategy's distance (in ladder rungs) from
    /// the target, with +-3 % noise.
    fn measure(s: &Strategy, noise: &mut Rng) -> Measurements {
        let d = s.rung_distance(&DEFAULTS[TARGET].1) as u64;
        let jitter = 970 + noise.below(61); // per mille
        let ops = 100_000;
        let live = 64 << 20;
        Measurements {
            slow_path_ns: ops * (100 + 15 * d) * jitter / 1000,
            minor_faults: ops / 100 * (10 + d) / 10,
            live_bytes: live,
            mapped_bytes: live + live * (20 + 5 * d) / 100,
            ops,
            elapsed_ns: 10_000_000,
            size_p50: 4096,
            size_p95: 1 << 20,
            reuse: Default::default(),
        }
    }

    /// What a run showed: the first epoch from which `best()` was the target until the end, the
    /// first epoch at which the target had run in 8 of the last 10 epochs (the learner exploits
    /// it), and how often the target ran in the last 100 epochs.
    struct Run {
        best_since: u64,
        exploits_at: u64,
        recent: u32,
    }

    fn run(l: &mut Learner, epochs: u64, seed: u64) -> Run {
        let mut noise = Rng::new(seed);
        let target = DEFAULTS[TARGET].1;
        let mut since = None;
        let mut exploits_at = None;
        let mut window = 0u32; // bit i: the target ran i epochs ago
        let mut recent = 0;
        for e in 0..epochs {
            let m = measure(l.current(), &mut noise);
            let hit = *l.current() == target;
            if e >= epochs - 100 && hit {
                recent += 1;
            }
            window = ((window << 1) | hit as u32) & 0x3ff;
            if window.count_ones() >= 8 && exploits_at.is_none() {
                exploits_at = Some(e + 1);
            }
            l.on_epoch_end(&m);
            if *l.best() == target {
                since.get_or_insert(e + 1);
            } else {
                since = None;
            }
        }
        Run {
            best_since: since.unwrap_or(u64::MAX),
            exploits_at: exploits_at.unwrap_or(u64::MAX),
            recent,
        }
    }

    /// Epochs of the warm-up (an ELO learner's, from `seed`) that ran a strategy `counted`, on
    /// the synthetic workload with `adjust` applied to each epoch's measurements.
    fn warm_up_turns(
        seed: u64,
        counted: impl Fn(&Strategy) -> bool,
        adjust: impl Fn(&mut Measurements),
    ) -> u32 {
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, seed);
        let mut noise = Rng::new(seed);
        let mut ran = 0;
        while !l.playbook().warmed_up() {
            let s = *l.current();
            ran += counted(&s) as u32;
            let mut m = measure(&s, &mut noise);
            adjust(&mut m);
            l.on_epoch_end(&m);
        }
        ran
    }

    fn temp_path(name: &str) -> Vec<u8> {
        let mut v = std::env::temp_dir()
            .join(format!("hakmem-learner-{}-{name}", std::process::id()))
            .into_os_string()
            .into_encoded_bytes();
        v.push(0);
        v
    }

    #[test]
    fn learner_starts_on_a_default_and_is_deterministic() {
        let mut a = Learner::new(Mode::Balanced, Selector::Elo, 7);
        let mut b = Learner::new(Mode::Balanced, Selector::Elo, 7);
        assert!(DEFAULTS.iter().any(|(_, d)| d == a.current()));
        let mut na = Rng::new(1);
        let mut nb = Rng::new(1);
        for _ in 0..300 {
            let ma = measure(a.current(), &mut na);
            let mb = measure(b.current(), &mut nb);
            assert_eq!(a.on_epoch_end(&ma), b.on_epoch_end(&mb));
        }
        assert!(a.leaderboard().count() >= 6);
        assert_eq!(a.epoch(), 300);
    }

    #[test]
    fn elo_learner_converges_to_the_best_strategy_and_freezes() {
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 11);
        let r = run(&mut l, 400, 3);
        assert!(
            r.best_since <= 120,
            "best() settled at epoch {}",
            r.best_since
        );
        assert!(
            r.exploits_at <= 150,
            "exploits from epoch {}",
            r.exploits_at
        );
        assert!(
            r.recent >= 85,
            "target ran {} of the last 100 epochs",
            r.recent
        );
        assert_ne!(l.phase(), Phase::Learn);
        let names: Vec<&str> = l.events().iter().map(|r| r.event.name()).collect();
        // It froze first (the log keeps the last LOG_CAPACITY events, so "froze" may have
        // scrolled out: then the log is full of canaries).
        assert!(
            names[0] == "froze" || names.len() == lifecycle::LOG_CAPACITY,
            "{names:?}"
        );
        assert!(names.contains(&"canary-rolled-back"), "{names:?}");
        assert!(!names.contains(&"canary-promoted"), "{names:?}");
        assert_eq!(l.leaderboard().next().unwrap().strategy, DEFAULTS[TARGET].1);
        // Never a wholesale reset: the playbook stays between keep and capacity.
        assert!(l.playbook().len() >= 6);
    }

    #[test]
    fn ucb1_learner_converges_to_the_best_strategy() {
        let mut l = Learner::new(Mode::Balanced, Selector::Ucb1, 11);
        let r = run(&mut l, 400, 4);
        assert!(
            r.best_since <= 150,
            "best() settled at epoch {}",
            r.best_since
        );
        assert!(
            r.exploits_at <= 150,
            "exploits from epoch {}",
            r.exploits_at
        );
        assert!(
            r.recent >= 80,
            "target ran {} of the last 100 epochs",
            r.recent
        );
    }

    #[test]
    fn converges_in_every_mode() {
        for mode in [Mode::Fast, Mode::Lean] {
            for sel in [Selector::Elo, Selector::Ucb1] {
                let mut l = Learner::new(mode, sel, 5);
                let r = run(&mut l, 300, 6);
                assert!(r.best_since <= 200, "{mode:?} {sel:?}: {}", r.best_since);
                assert!(r.recent >= 75, "{mode:?} {sel:?}: {}", r.recent);
            }
        }
    }

    #[test]
    fn warm_start_converges_faster_than_cold() {
        for (i, sel) in [Selector::Elo, Selector::Ucb1].into_iter().enumerate() {
            let path = temp_path(&format!("warm{i}"));
            let mut teacher = Learner::new(Mode::Balanced, sel, 21);
            run(&mut teacher, 200, 8);
            teacher.save(&path).unwrap();

            let mut cold = Learner::new(Mode::Balanced, sel, 22);
            let cold_run = run(&mut cold, 150, 9);
            let mut warm = Learner::new(Mode::Balanced, sel, 22);
            warm.load(&path).unwrap();
            let warm_run = run(&mut warm, 150, 9);
            eprintln!(
                "{sel:?}: best() settles at epoch {} warm, {} cold; exploits from {} warm, {} cold",
                warm_run.best_since,
                cold_run.best_since,
                warm_run.exploits_at,
                cold_run.exploits_at
            );
            assert!(warm_run.best_since <= cold_run.best_since && warm_run.best_since <= 5);
            assert!(warm_run.exploits_at < cold_run.exploits_at && warm_run.exploits_at <= 20);
            let os = String::from_utf8(path[..path.len() - 1].to_vec()).unwrap();
            std::fs::remove_file(os).unwrap();
            // A bad file leaves the learner as it was.
            let before = *warm.current();
            assert!(warm.load(b"/nonexistent/playbook\0").is_err());
            assert_eq!(*warm.current(), before);
        }
    }

    /// The most generous strategy runs the baseline epoch and the `REVEAL_EPOCHS` (epochs are
    /// rated one epoch late, but the warm-up counts the one in flight), not the round robin's
    /// first turn: with this seed the round's random order puts another strategy first.
    /// While resident memory grows more than `REVEAL_GROWTH` an epoch, its caches are still
    /// filling: the reveal goes on, up to `REVEAL_MAX_EPOCHS`.
    #[test]
    fn the_reveal_lasts_its_epochs_or_while_memory_grows() {
        let generous_run = |resident: &dyn Fn(u32) -> u64| {
            let mut l = Learner::new(Mode::Balanced, Selector::Elo, 3);
            let generous = l.playbook().most_generous();
            let generous = l.playbook().entry(generous).strategy;
            let mut noise = Rng::new(1);
            let mut run = 0;
            while *l.current() == generous && run < 40 {
                let mut m = measure(l.current(), &mut noise);
                m.mapped_bytes = resident(run);
                l.on_epoch_end(&m);
                run += 1;
            }
            run
        };
        let mib = |n: u32| (n as u64) << 20;
        assert_eq!(
            generous_run(&|_| mib(100)),
            1 + playbook::REVEAL_EPOCHS as u32
        );
        // 12 MiB more each epoch: more than REVEAL_GROWTH up to epoch 7 (12 of 184 MiB), not at
        // epoch 8 (12 of 196 MiB), which ends the reveal. The baseline epoch and the reveal's
        // eight; the round robin does not open with the generous strategy again.
        assert_eq!(generous_run(&|e| mib(100 + 12 * e.min(8))), 1 + 8);
        // 10 % more every epoch: the reveal stops at its longest.
        assert_eq!(
            generous_run(&|e| (mib(100) as f64 * 1.1f64.powi(e as i32)) as u64),
            1 + playbook::REVEAL_MAX_EPOCHS as u32
        );
    }

    #[test]
    fn phase_change_sends_the_learner_back_to_learn_and_it_relearns() {
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 31);
        run(&mut l, 250, 1);
        assert_ne!(l.phase(), Phase::Learn);
        // The workload changes: sizes 16x larger, and now the worst-ranked live strategy is best.
        let mut noise = Rng::new(2);
        let lean = l.leaderboard().last().unwrap().strategy;
        assert_ne!(lean, DEFAULTS[TARGET].1);
        let mut relearned_at = None;
        for e in 0..400u64 {
            let mut m = measure(l.current(), &mut noise);
            let d = l.current().rung_distance(&lean) as u64;
            m.slow_path_ns = m.ops * (100 + 15 * d);
            m.minor_faults = m.ops / 100 * (10 + d) / 10;
            m.mapped_bytes = m.live_bytes + m.live_bytes * (20 + 5 * d) / 100;
            m.size_p50 = 65536;
            m.size_p95 = 16 << 20;
            l.on_epoch_end(&m);
            if e == 1 {
                assert_eq!(l.phase(), Phase::Learn);
                let last = l.events().last().unwrap().event;
                assert!(matches!(last, Event::PhaseChanged { .. }), "{last:?}");
            }
            if *l.best() == lean && relearned_at.is_none() {
                relearned_at = Some(e);
            }
        }
        assert!(relearned_at.is_some(), "never re-learned");
        assert_eq!(*l.best(), lean);
    }

    /// The seed VM loop: every operation takes a 2 MiB block back from BigCache at once. A
    /// strategy without a cache (`lean`, or a mutation down to no cache or no delay) would fault
    /// every page of every block, hundreds of times the cost of any other: the learner predicts
    /// that from the reuse profile and never runs one, in warm-up, exploration, trials or canaries.
    #[test]
    fn strategies_predicted_catastrophic_never_run() {
        use reuse::{age_bucket, depth_bucket, Reuse, BIG_DEPTH};
        let mut loop_reuse = Reuse::ZERO;
        loop_reuse.big[age_bucket(0)][depth_bucket((2 << 20) + 4096, &BIG_DEPTH)] = 1000 * 513;
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut l = Learner::new(Mode::Balanced, sel, 9);
            let mut noise = Rng::new(4);
            let mut kept = std::collections::HashSet::new(); // knob vectors that ran
            for e in 0..600 {
                let s = *l.current();
                let lost = loop_reuse.lost_pages(&s);
                assert_eq!(
                    lost, 0,
                    "{sel:?} epoch {e}: ran {s:?}, which loses every block"
                );
                kept.insert(s.knobs());
                let mut m = measure(&s, &mut noise);
                m.reuse = loop_reuse;
                l.on_epoch_end(&m);
                if e % 100 == 99 {
                    l.evolve();
                }
            }
            assert!(
                kept.len() >= 8,
                "{sel:?}: only {} strategies ran",
                kept.len()
            );
            if let Some(slot) = l.playbook().find(&strategy::LEAN) {
                assert!(l.playbook().screened(slot), "{sel:?}: lean is screened out");
            }
        }
        // A burst as large but rare (a memory crest once every 50 epochs, as much reuse as 1.2
        // epochs' wall time in faults) screens nothing: lean runs, and is judged by its costs.
        let mut crest = Reuse::ZERO;
        crest.big[age_bucket(300)][depth_bucket(40 << 20, &BIG_DEPTH)] = 12_000;
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut l = Learner::new(Mode::Balanced, sel, 9);
            let mut noise = Rng::new(5);
            let mut lean_ran = false;
            for e in 0..300 {
                lean_ran |= *l.current() == strategy::LEAN;
                let mut m = measure(l.current(), &mut noise);
                if e % 50 == 25 {
                    m.reuse = crest;
                }
                l.on_epoch_end(&m);
                let slot = l.playbook().find(&strategy::LEAN);
                assert!(
                    !slot.is_some_and(|s| l.playbook().screened(s)),
                    "{sel:?} {e}"
                );
            }
            assert!(lean_ran, "{sel:?}: lean never ran");
        }
    }

    /// Large-block churn on a cache the most generous strategy filled: every reuse is young and
    /// no deeper than 64 MiB (which a 64 MiB budget and a 50 ms delay would have kept), and the
    /// workload takes more from that part per epoch than it holds, yet two thirds of what it
    /// holds there is older than 100 ms. A strategy that would purge that at once gets no turn in
    /// the warm-up. Without the held blocks in the measurements, the reuses alone let those
    /// strategies run. Add 84 MiB lying idle below the part in use: a strategy that would drop
    /// only those (`batched-purge`: 64 MiB, no purge under 64 MiB) is not held back by them.
    #[test]
    fn a_strategy_that_would_drop_a_busy_cache_gets_no_warm_up_turn() {
        use reuse::{age_bucket, depth_bucket, Reuse, BIG_DEPTH};
        let in_use = depth_bucket(64 << 20, &BIG_DEPTH);
        let mut busy = Reuse::ZERO;
        busy.big[age_bucket(5)][depth_bucket(32 << 20, &BIG_DEPTH)] = 30_000;
        busy.held_big[age_bucket(20)][in_use] = 4096;
        busy.held_big[age_bucket(300)][in_use] = 8192;
        let dropper = |s: &Strategy| busy.dropped_pages(s) > 0;
        let mut reuses_only = busy;
        reuses_only.held_big = [[0; 7]; 7];
        let mut idle_below = busy;
        idle_below.held_big[age_bucket(300)][depth_bucket(100 << 20, &BIG_DEPTH)] = 21_504;
        let batched_purge = DEFAULTS
            .iter()
            .find(|(n, _)| *n == "batched-purge")
            .unwrap()
            .1;
        assert!(!dropper(&batched_purge) && idle_below.dropped_pages(&batched_purge) > 0);
        for seed in 1..6 {
            let busy_run = warm_up_turns(seed, dropper, |m| m.reuse = busy);
            assert_eq!(busy_run, 0, "seed {seed}");
            let reuses_run = warm_up_turns(seed, dropper, |m| m.reuse = reuses_only);
            assert!(reuses_run >= 2, "seed {seed}");
            let idle_run = warm_up_turns(seed, |s| *s == batched_purge, |m| m.reuse = idle_below);
            assert!(idle_run >= 2, "seed {seed}");
            assert_eq!(warm_up_turns(seed, dropper, |m| m.reuse = idle_below), 0);
        }
    }

    /// After a memory crest, a stingy strategy has purged 40 MiB of blocks that stay listed in
    /// BigCache while the program idles (8 MiB mapped for under 1 MiB live). `fast` would still
    /// hold them: five times the epoch's memory term, which no epoch of its own would show (run
    /// after the purge, it holds nothing). The other way round, while `fast` holds them warm and
    /// idle, a stingy strategy is credited with giving them back.
    #[test]
    fn memory_a_strategy_would_hold_is_priced_in_its_prediction() {
        use reuse::{age_bucket, depth_bucket, BIG_DEPTH};
        let lean_small = DEFAULTS.iter().find(|(n, _)| *n == "lean-small").unwrap().1;
        let fast = strategy::FAST;
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 1);
        let quiet = Measurements {
            slow_path_ns: 100_000,
            live_bytes: 512 << 10,
            mapped_bytes: 8 << 20,
            ops: 2500,
            elapsed_ns: 10_000_000,
            ..Default::default()
        };
        l.on_epoch_end(&quiet);
        l.on_epoch_end(&quiet);
        let crest = (age_bucket(300), depth_bucket(40 << 20, &BIG_DEPTH));
        let mut purged = quiet;
        purged.reuse.held_cold_big[crest.0][crest.1] = 10_240;
        l.last = purged;
        l.ran = lean_small;
        assert_eq!(l.predicted_cost(&lean_small), 1.0);
        assert_eq!(l.predicted_cost(&strategy::LEAN), 1.0);
        let f = l.predicted_cost(&fast);
        assert!((f - (1.0 + 0.3 * 40.0 / 8.01)).abs() < 1e-9, "{f}");
        assert!(l.too_dear(&fast));
        let mut kept = quiet;
        kept.reuse.held_big[crest.0][crest.1] = 10_240;
        l.last = kept;
        l.ran = fast;
        let s = l.predicted_cost(&lean_small);
        assert!((s - (1.0 - 0.3 * 40.0 / 8.01)).abs() < 1e-9, "{s}");
        assert!(s < 1.0 - playbook::PROMISE);
        // Reused as much as held, down to where they lie, the same blocks are faults to lose,
        // not memory to save.
        kept.reuse.big[age_bucket(5)][crest.1] = 10_240;
        l.last = kept;
        assert!(l.predicted_cost(&lean_small) > playbook::VETO_FACTOR);
    }

    /// The learner has settled on the workload's best strategy, a generous one, when the program
    /// goes quiet: 40 MiB stay cached, 300 ms old, and only a 512 KiB block on top is reused.
    /// The next epoch runs a strategy that gives the 40 MiB back (as a canary when frozen). Where
    /// the workload churns through the whole cache, or where it is a small part of the footprint,
    /// nothing is given back.
    #[test]
    fn memory_held_idle_is_given_back_at_once() {
        use reuse::{age_bucket, depth_bucket, BIG_DEPTH};
        let crest = (age_bucket(300), depth_bucket(40 << 20, &BIG_DEPTH));
        let settled = |frozen: bool| {
            let mut l = Learner::new(Mode::Balanced, Selector::Elo, 7);
            let mut noise = Rng::new(7);
            // Learning past the warm-up; or frozen for 4 epochs (no canary on the way).
            let mut frozen_for = 0;
            for _ in 0..400 {
                frozen_for = if l.phase() == Phase::Frozen {
                    frozen_for + 1
                } else {
                    0
                };
                let done = if frozen {
                    frozen_for > 4
                } else {
                    l.playbook().warmed_up()
                };
                if done {
                    break;
                }
                let m = measure(l.current(), &mut noise);
                l.on_epoch_end(&m);
            }
            assert_eq!(l.phase() == Phase::Frozen, frozen);
            assert_eq!(*l.current(), DEFAULTS[TARGET].1);
            let mut quiet = measure(l.current(), &mut noise);
            quiet.live_bytes = 1 << 20;
            quiet.mapped_bytes = 48 << 20;
            quiet.reuse.big[age_bucket(0)][0] = 128;
            quiet.reuse.held_big[crest.0][crest.1] = 10_240;
            (l, quiet)
        };
        for frozen in [false, true] {
            let (mut l, quiet) = settled(frozen);
            l.on_epoch_end(&quiet);
            assert!(l.playbook().releasing().is_some());
            let s = *l.current();
            assert!(quiet.reuse.dropped_pages(&s) > 0, "frozen {frozen}: {s:?}");
            if frozen {
                assert_eq!(l.phase(), Phase::Canary);
                // Should the memory stay idle whatever runs, a canary at most every 4 epochs,
                // each judged: the lifecycle keeps its pace and its verdicts.
                let mut canaries = 1;
                for _ in 0..40 {
                    l.on_epoch_end(&quiet);
                    canaries += (l.phase() == Phase::Canary) as u32;
                }
                assert!((2..=11).contains(&canaries), "{canaries}");
                let verdicts = l
                    .events()
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.event,
                            lifecycle::Event::CanaryPromoted
                                | lifecycle::Event::CanaryRejected
                                | lifecycle::Event::CanaryRolledBack
                        )
                    })
                    .count();
                assert!(verdicts >= 1, "{verdicts}");
            }
            // Large-block churn through the whole cache, ten times over per epoch: kept.
            let (mut l, mut busy) = settled(frozen);
            busy.live_bytes = 4 << 20;
            busy.reuse.held_big[crest.0][crest.1] = 0;
            busy.reuse.held_big[age_bucket(0)][crest.1] = 10_240;
            busy.reuse.big[age_bucket(0)][crest.1] = 102_400;
            l.on_epoch_end(&busy);
            assert!(l.playbook().releasing().is_none(), "frozen {frozen}");
            // 40 MiB beside 640 MiB live: too little to be worth a switch.
            let (mut l, mut big) = settled(frozen);
            big.live_bytes = 640 << 20;
            big.mapped_bytes = 700 << 20;
            l.on_epoch_end(&big);
            assert!(l.playbook().releasing().is_none(), "frozen {frozen}");
        }
    }

    /// 500 pages a 50 ms purge delay would lose each epoch take half a millisecond of a 10 ms
    /// epoch to fault again, but where the epochs fault 10 times each, they make the score's
    /// fault term 50 times its baseline: priced in the score too, the strategies that would lose
    /// them get no warm-up turn. Where every epoch faults 100 000 times, 500 more are nothing,
    /// and they do.
    #[test]
    fn lost_pages_are_priced_in_the_score_as_well_as_in_time() {
        use reuse::{age_bucket, depth_bucket, Reuse, BIG_DEPTH};
        let mut r = Reuse::ZERO;
        r.big[age_bucket(200)][depth_bucket(8 << 20, &BIG_DEPTH)] = 500;
        let loser = |s: &Strategy| r.lost_pages(s) > 0;
        let with_faults = |faults: u64| {
            move |m: &mut Measurements| {
                m.minor_faults = faults;
                m.reuse = r;
            }
        };
        for seed in 1..6 {
            assert_eq!(
                warm_up_turns(seed, loser, with_faults(10)),
                0,
                "seed {seed}"
            );
            assert!(
                warm_up_turns(seed, loser, with_faults(100_000)) >= 2,
                "seed {seed}"
            );
        }
    }

    /// Large blocks freed in one epoch are taken again 20 ms later, in the next: whether they are
    /// still warm depends on the strategy that ran while they waited. A stingy one (purging them
    /// at 10 ms, or keeping no cache) makes the next epoch fault them all, whatever runs then;
    /// its own epochs look cheap after a generous one (its blocks are warm, its RSS low). Rated
    /// by adjacent epochs, stingy strategies would win every game against the strategies that
    /// pay for them. Charged back (`inherited`), the generous ones win, as they do when run alone.
    #[test]
    fn faults_caused_by_a_purge_are_charged_to_the_strategy_that_purged() {
        use reuse::{age_bucket, depth_bucket, Reuse, BIG_DEPTH};
        const PAGES: u64 = 3000;
        let (a, d) = (age_bucket(20), depth_bucket(8 << 20, &BIG_DEPTH));
        let stingy = |s: &Strategy| {
            let mut one = Reuse::ZERO;
            one.big[a][d] = 1;
            one.lost_pages(s) > 0
        };
        let n = DEFAULTS.iter().filter(|(_, s)| stingy(s)).count();
        assert!((2..=4).contains(&n), "{n} stingy defaults");
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut l = Learner::new(Mode::Balanced, sel, 17);
            let mut noise = Rng::new(6);
            let mut prev = *l.current();
            let mut stingy_recent = 0;
            for e in 0..400 {
                let s = *l.current();
                let ops = 100_000;
                let live = 64 << 20;
                let mut m = Measurements {
                    slow_path_ns: ops * 100 * (970 + noise.below(61)) / 1000,
                    minor_faults: 1000,
                    live_bytes: live,
                    // Keeping costs memory: the generous strategies hold 30 % more.
                    mapped_bytes: live + live * if stingy(&s) { 20 } else { 50 } / 100,
                    ops,
                    // Long epochs (100 ms).
                    elapsed_ns: 100_000_000,
                    size_p50: 1 << 20,
                    size_p95: 4 << 20,
                    reuse: Reuse::ZERO,
                };
                if stingy(&prev) {
                    m.reuse.cold_big[a][d] = PAGES;
                    m.reuse.cold_from_last_epoch = PAGES;
                    m.minor_faults += PAGES;
                } else {
                    m.reuse.big[a][d] = PAGES;
                }
                if e >= 300 && stingy(&s) {
                    stingy_recent += 1;
                }
                prev = s;
                l.on_epoch_end(&m);
            }
            assert!(!stingy(l.best()), "{sel:?}: best is {:?}", l.best());
            assert!(
                stingy_recent <= 15,
                "{sel:?}: stingy strategies ran {stingy_recent} of the last 100 epochs"
            );
        }
    }

    /// The learner runs inside the allocator, where a panic aborts the program: whatever the
    /// measurements (zeros, huge values, wild swings), it never panics, and every strategy it
    /// hands out is valid.
    #[test]
    fn any_measurements_keep_the_learner_sane() {
        use proptest::prelude::*;
        let big = prop_oneof![Just(0u64), Just(1u64), Just(u64::MAX), 0u64..1 << 40];
        let m = (
            big.clone(),
            big.clone(),
            big.clone(),
            big.clone(),
            big.clone(),
            big.clone(),
        )
            .prop_map(|(a, b, c, d, e, f)| Measurements {
                slow_path_ns: a,
                minor_faults: b,
                live_bytes: c,
                mapped_bytes: d,
                ops: e,
                elapsed_ns: f,
                size_p50: a ^ f,
                size_p95: b ^ e,
                reuse: Default::default(),
            });
        let cfg = ProptestConfig {
            cases: 24,
            ..ProptestConfig::default()
        };
        proptest!(cfg, |(epochs in proptest::collection::vec(m, 1..400), ucb in any::<bool>())| {
            let sel = if ucb { Selector::Ucb1 } else { Selector::Elo };
            let mut l = Learner::new(Mode::Balanced, sel, 3);
            for (i, m) in epochs.iter().enumerate() {
                let s = *l.on_epoch_end(m);
                prop_assert!(s.is_valid(), "epoch {}: {:?}", i, s);
                prop_assert!(l.best().is_valid());
                if i % 50 == 0 {
                    l.evolve();
                }
            }
        });
    }
}
