//! The learner: which strategy (knob vector) the allocator runs, decided at epoch boundaries from
//! measured costs (docs/LEARNING.md says how). Deterministic given the seed and the measurements;
//! no allocation, clock, lock or I/O but the playbook file. `tuning.rs` keeps one behind its lock;
//! `sketch` and `site` are its own and the call-site report's tools.

pub mod file;
pub mod lifecycle;
pub mod playbook;
pub mod rate;
pub mod reuse;
pub mod rng;
pub mod score;
pub mod site;
pub mod sketch;
pub mod strategy;

pub use file::FileError;
pub use lifecycle::{Phase, Transitions};
pub use playbook::{Evolution, Playbook, Selector};
pub use score::{Measurements, Mode};
pub use strategy::{Knob, Strategy};

use lifecycle::Lifecycle;
use rng::Rng;
use score::Scorer;

/// In LEARN past the warm-up, the playbook evolves once every this many epochs.
pub const EVOLVE_EVERY: u64 = 32;
/// An epoch costing more than this (twice an average one) is rated at once, even settling.
pub const SETTLED_ENOUGH: f64 = 2.0;
/// A cold learner runs `DEFAULT` for this many epochs (at least a quarter of a second), which set
/// the baseline, before it tries anything: a short program never pays for trying. `load` skips it.
pub const START_EPOCHS: u64 = 25;

pub struct Learner {
    mode: Mode,
    scorer: Scorer,
    playbook: Playbook,
    lifecycle: Lifecycle,
    rng: Rng,
    /// The strategy of the current epoch, and its playbook id in LEARN.
    current: Strategy,
    running: u32,
    /// The recent epochs' BigCache reuses, decaying slowly (`observe_reuses`).
    reuses: reuse::Reuse,
    cpu_us: u64,
    /// Whether the current epoch is the first of a strategy after another one (LEARN).
    settling: bool,
    epoch: u64,
    /// Whether the start (`START_EPOCHS`) is over.
    started: bool,
}

impl Learner {
    pub fn new(mode: Mode, selector: Selector, seed: u64) -> Self {
        let playbook = Playbook::new(selector, strategy::ceiling(mode), seed);
        Learner {
            mode,
            scorer: Scorer::new(mode),
            lifecycle: Lifecycle::new(playbook.entries[0].strategy),
            current: playbook.entries[0].strategy,
            playbook,
            rng: Rng::new(seed ^ 0x6C65_6172_6E65_7221),
            running: 0,
            reuses: reuse::Reuse::default(),
            cpu_us: 0,
            settling: false,
            epoch: 0,
            started: false,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn selector(&self) -> Selector {
        self.playbook.selector
    }

    /// The strategy to run in the current epoch.
    pub fn current(&self) -> &Strategy {
        &self.current
    }

    pub fn phase(&self) -> Phase {
        self.lifecycle.phase
    }

    /// Epochs ended so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }

    /// How often the lifecycle went from one phase to another.
    pub fn transitions(&self) -> Transitions {
        self.lifecycle.transitions
    }

    /// The best strategy known: the frozen one outside LEARN, else the playbook's leader.
    pub fn best(&self) -> &Strategy {
        match self.phase() {
            Phase::Learn => &self.playbook.entries[self.playbook.leader()].strategy,
            _ => &self.lifecycle.frozen,
        }
    }

    fn choose_learning(&mut self) {
        let (reuses, cpu_us) = (self.reuses, self.cpu_us);
        self.playbook.screen(|s| Self::too_dear(&reuses, cpu_us, s));
        let slot = self.playbook.select();
        let e = self.playbook.entries[slot];
        self.settling = e.strategy != self.current;
        self.current = e.strategy;
        self.running = e.id;
    }

    /// Whether `s` is predicted, from the recent BigCache reuses, to make an epoch of `cpu_us` at
    /// least twice as long: every page it would lose faults again (`reuse`).
    fn too_dear(reuses: &reuse::Reuse, cpu_us: u64, s: &Strategy) -> bool {
        reuses.lost_pages(s) as f64 * score::FAULT_NS > cpu_us as f64 * 1000.0
    }

    fn choose_frozen(&mut self) {
        self.running = 0;
        let frozen = self.lifecycle.frozen;
        if self.lifecycle.canary_due() {
            let ceiling = self.playbook.ceiling;
            let c = (0..8)
                .map(|_| strategy::mutate(&frozen, &mut self.rng).capped(&ceiling))
                .find(|c| *c != frozen && !Self::too_dear(&self.reuses, self.cpu_us, c));
            if let Some(c) = c {
                self.lifecycle.start_canary(c);
            }
        }
        self.current = match self.lifecycle.phase {
            Phase::Canary => self.lifecycle.challenger,
            _ => frozen,
        };
    }

    /// Ends the epoch that ran `current()`; returns the strategy for the next one.
    pub fn on_epoch_end(&mut self, m: &Measurements) -> &Strategy {
        self.epoch += 1;
        // The start's epochs and the first after a phase change only set the baseline.
        let rated = self.started && self.scorer.has_baseline();
        let cost = self.scorer.score(m);
        self.observe_reuses(m);
        let shifted = self.lifecycle.observe_sizes(m.size_p50, m.size_p95);
        if shifted {
            self.scorer.reset();
        }
        if !self.started && self.epoch >= START_EPOCHS {
            self.started = true;
            self.choose_learning();
        }
        if !rated {
            return &self.current;
        }
        if shifted {
            self.playbook.restart();
            self.choose_learning();
            return &self.current;
        }
        match self.phase() {
            Phase::Learn if !self.learned(cost) => return &self.current,
            Phase::Learn => {}
            Phase::Frozen => self.lifecycle.frozen_epoch(cost),
            Phase::Canary => {
                if self.lifecycle.canary_epoch(cost) {
                    let p = &mut self.playbook;
                    let lead = p.entries[p.leader()];
                    p.adopt(
                        self.lifecycle.frozen,
                        lead.id,
                        lead.elo.rating + rate::K / 2.0,
                    );
                }
            }
        }
        match self.phase() {
            Phase::Learn => self.choose_learning(),
            _ => self.choose_frozen(),
        }
        &self.current
    }

    /// Folds the epoch's BigCache reuses and CPU time into what screening looks at; a cell decays
    /// by a quarter an epoch, so a stingy strategy's epoch (few reuses) opens the door to no other.
    fn observe_reuses(&mut self, m: &Measurements) {
        let new = m.reuse.pages.iter().flatten();
        for (seen, new) in self.reuses.pages.iter_mut().flatten().zip(new) {
            *seen = (*seen - *seen / 4).max(*new);
        }
        self.cpu_us = m.ops;
    }

    /// Rates a LEARN epoch, evolves now and then and lets the lifecycle freeze a leader that holds;
    /// false for a strategy's first epoch after another, which still shows the one before's caches.
    fn learned(&mut self, cost: f64) -> bool {
        if self.settling && cost <= SETTLED_ENOUGH {
            self.settling = false;
            return false;
        }
        if let Some(slot) = self.playbook.slot_of(self.running) {
            self.playbook.record(slot, cost);
        }
        if !self.playbook.warming_up() {
            if self.epoch.is_multiple_of(EVOLVE_EVERY) {
                self.playbook.evolve();
            }
            let lead = self.playbook.entries[self.playbook.leader()];
            self.lifecycle.observe_leader(lead.id, &lead.strategy);
        }
        true
    }

    /// One evolution step now (`hak_evolve_playbook`).
    pub fn evolve(&mut self) -> Evolution {
        self.playbook.evolve()
    }

    /// Writes the playbook to `path` (NUL-terminated).
    pub fn save(&self, path: &[u8]) -> Result<(), FileError> {
        self.playbook.save(path)
    }

    /// Warm start: replaces the playbook with the one in `path` (NUL-terminated), whose ratings
    /// then pick the strategies from the first epoch. On error nothing changes.
    pub fn load(&mut self, path: &[u8]) -> Result<(), FileError> {
        self.playbook.load(path)?;
        self.lifecycle.unfreeze();
        self.started = true;
        self.choose_learning();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strategy::DEFAULTS;

    /// A NUL-terminated path in the temporary directory, unique to this process and `name`.
    fn temp_path(name: &str) -> Vec<u8> {
        let (dir, pid) = (std::env::temp_dir(), std::process::id());
        format!("{}/hakmem-learn-{pid}-{name}\0", dir.display()).into_bytes()
    }

    fn remove_temp(path: &[u8]) {
        std::fs::remove_file(std::str::from_utf8(&path[..path.len() - 1]).unwrap()).unwrap();
    }

    /// The strategy the synthetic workload rewards (under every mode's ceiling).
    fn target(mode: Mode) -> Strategy {
        DEFAULTS[7].1.capped(&strategy::ceiling(mode))
    }

    /// A synthetic workload: every cost grows with the strategy's distance (in ladder rungs) from
    /// `target`, with +-3 % noise.
    fn measure(s: &Strategy, target: &Strategy, noise: &mut Rng) -> Measurements {
        let d = s.rung_distance(target) as u64;
        let jitter = 970 + noise.below(61);
        let ops = 100_000;
        Measurements {
            slow_path_ns: ops * (100 + 15 * d) * jitter / 1000,
            minor_faults: ops / 100 * (10 + d) / 10,
            resident_bytes: (64 << 20) * (120 + 5 * d) / 100,
            ops,
            size_p50: 4096,
            size_p95: 1 << 20,
            ..Default::default()
        }
    }

    /// Runs `epochs`, checking that each strategy is under the mode's ceiling; returns the epoch
    /// from which `best()` was `target` to the end, and how often `target` ran in the last 100.
    fn run(l: &mut Learner, target: &Strategy, epochs: u64, seed: u64) -> (u64, u32) {
        let mut noise = Rng::new(seed);
        let (mut since, mut recent) = (None, 0);
        let ceiling = strategy::ceiling(l.mode());
        for e in 0..epochs {
            recent += (e >= epochs - 100 && l.current() == target) as u32;
            assert_eq!(l.current().capped(&ceiling), *l.current(), "epoch {e}");
            let m = measure(l.current(), target, &mut noise);
            l.on_epoch_end(&m);
            if l.best() == target {
                since.get_or_insert(e + 1);
            } else {
                since = None;
            }
        }
        (since.unwrap_or(u64::MAX), recent)
    }

    #[test]
    fn both_selectors_converge_in_every_mode_deterministically_and_elo_freezes() {
        for mode in [Mode::Fast, Mode::Balanced, Mode::Lean] {
            for sel in [Selector::Elo, Selector::Ucb1] {
                let t = target(mode);
                let mut l = Learner::new(mode, sel, 11);
                let (since, recent) = run(&mut l, &t, 400, 3);
                let mut twin = Learner::new(mode, sel, 11);
                assert_eq!(run(&mut twin, &t, 400, 3), (since, recent));
                assert_eq!(twin.playbook().entries(), l.playbook().entries());
                assert_eq!(l.epoch(), 400);

                assert!(since <= 150, "{mode:?} {sel:?}: best from epoch {since}");
                assert!(recent >= 80, "{mode:?} {sel:?}: target ran {recent} of 100");
                if sel == Selector::Elo {
                    assert_ne!(l.phase(), Phase::Learn, "{mode:?}");
                    let t = l.transitions();
                    assert!(t.froze >= 1 && t.rejected + t.rolled_back >= 1, "{t:?}");
                    assert_eq!(t.promoted, 0, "{mode:?}");
                }
            }
        }
    }

    #[test]
    fn a_cold_learner_runs_the_default_first() {
        let t = target(Mode::Balanced);
        let mut noise = Rng::new(5);
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 9);
        let mut tried = 0;
        for e in 1..=START_EPOCHS + 30 {
            assert!(
                e > START_EPOCHS || *l.current() == DEFAULTS[0].1,
                "epoch {e}"
            );
            let m = measure(l.current(), &t, &mut noise);
            tried += (*l.on_epoch_end(&m) != DEFAULTS[0].1) as u32;
        }
        assert!(tried > 10, "{tried} epochs off the default after the start");
    }

    /// The VM loop: every operation takes a 2 MiB block back from BigCache at once. A strategy
    /// keeping no cache would fault every page of every block: it never runs, not even once.
    #[test]
    fn strategies_screened_out_by_the_reuses_never_run() {
        let mut vm = reuse::Reuse::default();
        let (a, d) = reuse::cell(0, 2 << 20);
        vm.pages[a][d] = 1000 * 513;
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut l = Learner::new(Mode::Balanced, sel, 9);
            let (t, mut noise) = (target(Mode::Balanced), Rng::new(4));
            let mut ran = std::collections::HashSet::new();
            for e in 0..600 {
                let s = *l.current();
                assert_eq!(vm.lost_pages(&s), 0, "{sel:?} epoch {e}: {s:?}");
                ran.insert(s.knobs());
                let mut m = measure(&s, &t, &mut noise);
                m.reuse = vm;
                l.on_epoch_end(&m);
            }
            assert!(ran.len() >= 8, "{sel:?}: {}", ran.len());
        }
    }

    #[test]
    fn a_canary_that_is_better_is_promoted() {
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 5);
        let old = target(Mode::Balanced);
        run(&mut l, &old, 300, 1);
        assert_eq!((*l.best(), l.phase()), (old, Phase::Frozen));
        // The workload now rewards a strategy one rung away from the frozen one.
        let mut noise = Rng::new(9);
        let new = strategy::Strategy {
            cache_cap_mult: old.cache_cap_mult / 2,
            ..old
        };
        for _ in 0..1500 {
            let mut m = measure(l.current(), &new, &mut noise);
            m.slow_path_ns *= 1 + 2 * l.current().rung_distance(&new) as u64;
            l.on_epoch_end(&m);
        }
        assert_eq!(*l.best(), new);
        assert!(l.transitions().promoted >= 1 && l.playbook().find(&new).is_some());
    }

    #[test]
    fn a_phase_change_sends_the_learner_back_to_learn_and_it_relearns() {
        let mut l = Learner::new(Mode::Balanced, Selector::Elo, 31);
        let t = target(Mode::Balanced);
        run(&mut l, &t, 250, 1);
        assert_ne!(l.phase(), Phase::Learn);
        let other = strategy::LEAN;
        let mut noise = Rng::new(2);
        for e in 0..300 {
            let mut m = measure(l.current(), &other, &mut noise);
            m.size_p50 = 65536;
            m.size_p95 = 16 << 20;
            l.on_epoch_end(&m);
            if e == 2 {
                assert_eq!(l.phase(), Phase::Learn);
                assert_eq!(l.transitions().phase_changes, 1);
            }
        }
        assert_eq!(*l.best(), other);
    }

    /// A playbook saved to a file comes back whole, and its ratings pick the strategy from the
    /// first epoch; a failed load changes nothing. (Renames, foreign files and the warnings are
    /// tested under the preload: `crates/hakmem-preload/tests/learning.rs`.)
    #[test]
    fn a_warm_start_picks_the_learned_strategy_at_once() {
        for sel in [Selector::Elo, Selector::Ucb1] {
            let c = temp_path(sel.name());
            let t = target(Mode::Balanced);
            let mut teacher = Learner::new(Mode::Balanced, sel, 21);
            run(&mut teacher, &t, 200, 8);
            teacher.save(&c).unwrap();
            let mut warm = Learner::new(Mode::Balanced, sel, 22);
            warm.load(&c).unwrap();
            remove_temp(&c);
            assert_eq!(warm.playbook().entries(), teacher.playbook().entries());
            assert_eq!(*warm.current(), t, "{sel:?}");
            // A warm learner rates from its first epochs (no start epochs to wait out).
            let samples = |l: &Learner| {
                l.playbook()
                    .entries()
                    .iter()
                    .map(|e| e.samples)
                    .sum::<u32>()
            };
            let loaded = samples(&warm);
            let mut noise = Rng::new(3);
            for _ in 0..3 {
                let m = measure(warm.current(), &t, &mut noise);
                warm.on_epoch_end(&m);
            }
            assert!(
                samples(&warm) > loaded,
                "{sel:?}: {loaded} samples before and after"
            );
            let (since, _) = run(&mut warm, &t, 100, 9);
            assert!(since <= 2, "{sel:?}: {since}");
            let before = *warm.current();
            assert_eq!(warm.load(&c), Err(FileError::Io(libc::ENOENT)));
            assert_eq!(warm.load(b"no-nul"), Err(FileError::BadPath));
            assert_eq!(*warm.current(), before);
        }
    }

    /// The learner runs inside the allocator, where a panic aborts the program: whatever the
    /// measurements, it never panics, and every strategy it hands out is valid.
    #[test]
    fn any_measurements_keep_the_learner_sane() {
        use proptest::prelude::*;
        let big = prop_oneof![Just(0u64), Just(1u64), Just(u64::MAX), 0u64..1 << 40];
        let m = proptest::array::uniform6(big).prop_map(|[a, b, c, d, e, f]| Measurements {
            slow_path_ns: a,
            minor_faults: b,
            system_ns: b ^ d,
            resident_bytes: c,
            ops: d,
            size_p50: e,
            size_p95: f,
            reuse: reuse::Reuse {
                pages: [[a ^ b; 6]; 8],
            },
        });
        let cfg = ProptestConfig::with_cases(24);
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
