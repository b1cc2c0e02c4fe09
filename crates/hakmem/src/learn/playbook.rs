//! The playbook: the candidate strategies under the mode's ceiling, their ratings, which one runs
//! next (`select`: a warm-up round of every strategy, trials, then ELO's leader or UCB1's highest
//! bound, skipping the hopeless and the screened) and how the set evolves (`evolve`: proven losers
//! retired, a challenger added). Saved at exit and loaded at start (`file.rs`).

use super::rate::{self, Arm, Rating};
use super::rng::Rng;
use super::strategy::{mutate, Strategy, DEFAULTS};
use core::cmp::Ordering;

pub const MAX_STRATEGIES: usize = 16;
/// The top this many are never retired.
pub const KEEP: usize = 6;
/// ELO's exploration rate.
pub const EPSILON: f64 = 0.05;
/// UCB1's exploration constant (rewards are in [0, 1], most within 0.3 of each other).
pub const UCB_C: f64 = 0.25;
/// Warm-up rounds at the start (one after a phase change).
pub const WARM_UP_ROUNDS: u32 = 2;
/// Epochs a new challenger runs before the selector decides on it.
pub const TRIAL_EPOCHS: u32 = 2;
/// A strategy cheaper on average than the leader runs until it has this many rated epochs (a
/// warm-up gives each only a couple, and exploitation seldom comes back to it).
pub const CONFIRM_EPOCHS: u32 = 6;
/// ELO: retired when expected to score under this against the leader.
pub const RETIRE_BELOW: f64 = 0.25;
/// Not explored while its mean cost is more than this many times the leader's.
pub const HOPELESS: f64 = 2.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    Elo,
    Ucb1,
}

impl Selector {
    pub const fn name(self) -> &'static str {
        match self {
            Selector::Elo => "elo",
            Selector::Ucb1 => "ucb1",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub id: u32,
    /// The entry it was mutated from; 0 for a built-in candidate.
    pub parent: u32,
    pub strategy: Strategy,
    pub elo: Rating,
    pub arm: Arm,
    /// Epochs it ran since the workload last changed (earlier runs' included) and their mean cost
    /// (over about the last 16).
    pub samples: u32,
    pub mean_cost: f64,
    /// Predicted, from the last epoch's reuses, to at least double an epoch's time (not saved).
    pub screened: bool,
}

impl Entry {
    pub(super) const EMPTY: Entry = Entry {
        id: 0,
        parent: 0,
        strategy: DEFAULTS[0].1,
        elo: Rating::at(rate::START),
        arm: Arm {
            pulls: 0,
            reward_sum: 0.0,
        },
        samples: 0,
        mean_cost: 0.0,
        screened: false,
    };
}

/// What one `evolve` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evolution {
    pub retired: u32,
    pub added: Option<u32>,
}

pub struct Playbook {
    pub(super) entries: [Entry; MAX_STRATEGIES],
    pub(super) len: usize,
    pub(super) next_id: u32,
    pub(super) epochs: u64,
    pub(super) selector: Selector,
    pub(super) ceiling: Strategy,
    rng: Rng,
    /// The last rated epoch: (entry id, cost), ELO's opponent.
    last: Option<(u32, f64)>,
    /// Warm-up epochs left, and the current round's order.
    warm_up: u32,
    order: [u8; MAX_STRATEGIES],
}

impl Playbook {
    /// The built-in candidates under `ceiling`.
    pub fn new(selector: Selector, ceiling: Strategy, seed: u64) -> Self {
        let mut p = Playbook {
            entries: [Entry::EMPTY; MAX_STRATEGIES],
            len: 0,
            next_id: 1,
            epochs: 0,
            selector,
            ceiling,
            rng: Rng::new(seed),
            last: None,
            warm_up: 0,
            order: [0; MAX_STRATEGIES],
        };
        p.add_defaults();
        p.warm_up = WARM_UP_ROUNDS * p.len as u32;
        p
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// Epochs rated, earlier runs' included.
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    pub fn warming_up(&self) -> bool {
        self.warm_up > 0
    }

    pub fn slot_of(&self, id: u32) -> Option<usize> {
        self.entries().iter().position(|e| e.id == id)
    }

    pub fn find(&self, s: &Strategy) -> Option<usize> {
        self.entries().iter().position(|e| e.strategy == *s)
    }

    fn push(&mut self, s: Strategy, parent: u32, rating: f64) -> usize {
        let i = self.len;
        self.entries[i] = Entry {
            id: self.next_id,
            parent,
            strategy: s,
            elo: Rating::at(rating),
            ..Entry::EMPTY
        };
        self.next_id += 1;
        self.len += 1;
        i
    }

    /// Adds the built-in candidates under the ceiling that are missing (duplicates dropped).
    fn add_defaults(&mut self) {
        for (_, s) in &DEFAULTS {
            let s = s.capped(&self.ceiling);
            if self.find(&s).is_none() && self.len < MAX_STRATEGIES {
                self.push(s, 0, rate::START);
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        self.entries.copy_within(slot + 1..self.len, slot);
        self.len -= 1;
    }

    /// Slots from best to worst: by ELO rating or UCB1 mean reward (unpulled arms last), then
    /// more samples, then the older entry.
    pub fn ranking(&self) -> [u8; MAX_STRATEGIES] {
        let key = |i: u8| {
            let e = &self.entries[i as usize];
            let value = match self.selector {
                Selector::Elo => e.elo.rating,
                Selector::Ucb1 if e.arm.pulls == 0 => f64::NEG_INFINITY,
                Selector::Ucb1 => e.arm.mean(),
            };
            (value, e.samples, u32::MAX - e.id)
        };
        // The keys are distinct (ids are) and not NaN, so any sort gives the same order.
        let mut r = core::array::from_fn(|i| i as u8);
        let order = |a: &u8, b: &u8| key(*b).partial_cmp(&key(*a)).unwrap_or(Ordering::Equal);
        r[..self.len].sort_unstable_by(order);
        r
    }

    pub fn ranked(&self) -> impl Iterator<Item = &Entry> + '_ {
        let r = self.ranking();
        (0..self.len).map(move |i| &self.entries[r[i] as usize])
    }

    pub fn leader(&self) -> usize {
        self.ranking()[0] as usize
    }

    /// Whether slot `i` is not to be tried: screened, or `HOPELESS` against the leader.
    fn closed(&self, i: usize) -> bool {
        let (e, lead) = (&self.entries[i], &self.entries[self.leader()]);
        e.screened || (e.samples > 0 && lead.samples > 0 && e.mean_cost > HOPELESS * lead.mean_cost)
    }

    /// Marks the entries `f` predicts to be far too dear (`Entry::screened`).
    pub fn screen(&mut self, f: impl Fn(&Strategy) -> bool) {
        for e in self.entries[..self.len].iter_mut() {
            e.screened = f(&e.strategy);
        }
    }

    /// The slot to run next (in LEARN).
    pub fn select(&mut self) -> usize {
        while self.warm_up > 0 {
            let k = (self.warm_up as usize - 1) % self.len;
            if k == self.len - 1 {
                self.order = core::array::from_fn(|i| i as u8);
                for i in (1..self.len).rev() {
                    self.order.swap(i, self.rng.below(i as u64 + 1) as usize);
                }
            }
            self.warm_up -= 1;
            let slot = (self.order[k] as usize).min(self.len - 1);
            if !self.closed(slot) {
                return slot;
            }
        }
        let mut open = [0u8; MAX_STRATEGIES];
        let mut n = 0;
        for i in 0..self.len {
            if !self.closed(i) {
                open[n] = i as u8;
                n += 1;
            }
        }
        let (e, lead) = (self.entries(), self.entries[self.leader()]);
        if let Some(&i) = open[..n].iter().find(|&&i| {
            let e = &e[i as usize];
            (e.parent != 0 && e.samples < TRIAL_EPOCHS)
                || (e.samples < CONFIRM_EPOCHS && e.mean_cost < lead.mean_cost)
        }) {
            return i as usize;
        }
        match self.selector {
            Selector::Elo => {
                let r = self.ranking();
                let leader = r[..self.len]
                    .iter()
                    .map(|&i| i as usize)
                    .find(|&i| !self.entries[i].screened)
                    .unwrap_or(r[0] as usize);
                if n <= 1 || !self.rng.chance(EPSILON) {
                    return leader;
                }
                // Another open strategy: the last one stands in for the leader.
                match open[self.rng.below(n as u64 - 1) as usize] as usize {
                    k if k == leader => open[n - 1] as usize,
                    k => k,
                }
            }
            Selector::Ucb1 => {
                let total = self.entries().iter().map(|e| e.arm.pulls).sum();
                let index = |i: &u8| self.entries[*i as usize].arm.index(total, UCB_C);
                let best = open[..n]
                    .iter()
                    .max_by(|a, b| index(a).total_cmp(&index(b)));
                best.map_or(0, |&i| i as usize)
            }
        }
    }

    /// Rates an epoch of slot `slot` that cost `cost`: an ELO game against the last rated epoch
    /// when another strategy ran it, a UCB1 pull, the mean cost.
    pub fn record(&mut self, slot: usize, cost: f64) {
        let cost = if cost.is_finite() { cost.max(0.0) } else { 1e9 };
        let id = self.entries[slot].id;
        if let Some((prev, prev_cost)) = self.last.filter(|l| l.0 != id) {
            if let Some(p) = self.slot_of(prev) {
                let (mut a, mut b) = (self.entries[slot].elo, self.entries[p].elo);
                rate::play(&mut a, cost, &mut b, prev_cost);
                self.entries[slot].elo = a;
                self.entries[p].elo = b;
            }
        }
        let e = &mut self.entries[slot];
        e.samples = e.samples.saturating_add(1);
        e.mean_cost += (cost - e.mean_cost) / e.samples.min(16) as f64;
        e.arm.record(cost);
        self.last = Some((id, cost));
        self.epochs += 1;
    }

    /// After a phase change: the top `KEEP` and the built-in candidates (back if retired) start
    /// again, unrated, with one warm-up round (a short one: the new phase is already running).
    pub fn restart(&mut self) {
        let r = self.ranking();
        let top: [u32; KEEP] =
            core::array::from_fn(|i| self.entries[r[i.min(self.len - 1)] as usize].id);
        let mut i = 0;
        while i < self.len {
            let e = self.entries[i];
            if e.parent != 0 && !top.contains(&e.id) {
                self.remove(i);
                continue;
            }
            self.entries[i] = Entry {
                id: e.id,
                parent: e.parent,
                strategy: e.strategy,
                ..Entry::EMPTY
            };
            i += 1;
        }
        self.add_defaults();
        self.last = None;
        self.warm_up = self.len as u32;
    }

    /// Adds a promoted canary `s` with `rating` if missing, replacing the worst entry when full.
    pub fn adopt(&mut self, s: Strategy, parent: u32, rating: f64) {
        if !s.is_valid() || self.find(&s).is_some() {
            return;
        }
        if self.len == MAX_STRATEGIES {
            self.remove(self.ranking()[self.len - 1] as usize);
        }
        self.push(s, parent, rating);
    }

    fn proven_worse(&self, e: &Entry) -> bool {
        let lead = &self.entries[self.leader()];
        match self.selector {
            Selector::Elo => rate::expected(e.elo.rating, lead.elo.rating) < RETIRE_BELOW,
            Selector::Ucb1 => {
                let total = self.entries().iter().map(|e| e.arm.pulls).sum();
                e.arm.pulls > 0 && e.arm.index(total, UCB_C) < lead.arm.mean()
            }
        }
    }

    /// Retires the proven losers below the top `KEEP` and adds a challenger.
    pub fn evolve(&mut self) -> Evolution {
        let mut ev = Evolution::default();
        let r = self.ranking();
        let mut retire = [false; MAX_STRATEGIES];
        for &slot in &r[KEEP.min(self.len)..self.len] {
            let e = &self.entries[slot as usize];
            retire[slot as usize] = e.samples >= TRIAL_EPOCHS && self.proven_worse(e);
        }
        // From the last slot down, so that a removal moves none still to be removed.
        for slot in (0..self.len).rev().filter(|&s| retire[s]) {
            self.remove(slot);
            ev.retired += 1;
        }
        if self.len < MAX_STRATEGIES {
            let r = self.ranking();
            let pick = (self.len > 1 && self.rng.below(2) == 1) as usize;
            let parent = self.entries[r[pick] as usize];
            for _ in 0..8 {
                let c = mutate(&parent.strategy, &mut self.rng).capped(&self.ceiling);
                if self.find(&c).is_none() {
                    let slot = self.push(c, parent.id, rate::START);
                    ev.added = Some(self.entries[slot].id);
                    break;
                }
            }
        }
        ev
    }

    /// Replaces the entries with loaded ones (`file.rs`), whose ratings drive selection at once.
    pub(super) fn replace(&mut self, entries: &[Entry], next_id: u32, epochs: u64) {
        self.len = 0;
        for e in entries {
            let s = e.strategy.capped(&self.ceiling);
            if self.find(&s).is_none() {
                self.entries[self.len] = Entry { strategy: s, ..*e };
                self.len += 1;
            }
        }
        self.next_id = next_id;
        self.epochs = epochs;
        self.last = None;
        self.warm_up = 0;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::learn::score::Mode;
    use crate::learn::strategy::{ceiling, DEFAULT};

    pub(crate) fn pb(sel: Selector) -> Playbook {
        Playbook::new(sel, ceiling(Mode::Fast), 1)
    }

    /// A playbook past its warm-up where slot 0 is best, then 1, 2, ...
    pub(crate) fn rated(sel: Selector) -> Playbook {
        let mut p = pb(sel);
        while p.warming_up() {
            let s = p.select();
            p.record(s, 1.0 + 0.1 * s as f64);
        }
        for _ in 0..4 {
            for s in 0..p.len {
                p.record(s, 1.0 + 0.1 * s as f64);
            }
        }
        p
    }

    #[test]
    fn starts_with_the_defaults_and_evolves_under_the_ceiling() {
        assert_eq!(pb(Selector::Elo).len, DEFAULTS.len());
        let mut b = Playbook::new(Selector::Elo, ceiling(Mode::Lean), 1);
        assert!(b.find(&DEFAULT).is_some() && b.len >= 8);
        for _ in 0..50 {
            for e in b.entries() {
                assert_eq!(e.strategy.capped(&b.ceiling), e.strategy);
                assert!(e.strategy.bigcache_bytes <= DEFAULT.bigcache_bytes);
                assert!(e.strategy.purge_delay_ms <= DEFAULT.purge_delay_ms);
            }
            b.evolve();
        }
    }

    #[test]
    fn warm_up_runs_each_strategy_once_a_round_then_ratings_drive() {
        let mut p = pb(Selector::Elo);
        let mut seen = vec![0; p.len];
        for round in 0..WARM_UP_ROUNDS {
            for _ in 0..p.len {
                let s = p.select();
                seen[s] += 1;
                p.record(s, if s == 3 { 0.5 } else { 1.0 });
            }
            assert!(seen.iter().all(|&n| n == round + 1), "{seen:?}");
        }
        assert!(!p.warming_up());
        assert_eq!(p.leader(), 3);
        let runs = (0..1000).filter(|_| p.select() == 3).count();
        assert!((920..=980).contains(&runs), "{runs}");
    }

    #[test]
    fn adjacent_epochs_play_elo_games_and_means_follow() {
        let mut p = pb(Selector::Elo);
        p.record(0, 1.0);
        p.record(0, 1.0);
        assert_eq!(p.entries[0].elo, Rating::at(rate::START));
        p.record(1, 0.5);
        assert_eq!(
            (p.entries[1].elo.rating, p.entries[0].elo.rating),
            (1516.0, 1484.0)
        );
        assert_eq!((p.entries[0].samples, p.entries[0].mean_cost), (2, 1.0));
        assert_eq!(p.epochs(), 3);
    }

    #[test]
    fn hopeless_strategies_are_not_explored() {
        let mut p = rated(Selector::Elo);
        for _ in 0..3 {
            p.record(5, 10.0);
        }
        assert!((0..5000).all(|_| p.select() != 5));
        let mut u = rated(Selector::Ucb1);
        u.record(5, 10.0);
        assert!((0..500).all(|_| {
            let s = u.select();
            u.record(s, 1.0 + 0.1 * s as f64);
            s != 5
        }));
    }

    #[test]
    fn evolve_retires_proven_losers_below_the_top_and_adds_a_close_challenger() {
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut p = rated(sel);
            for _ in 0..200 {
                p.record(p.len - 1, 5.0);
                p.record(0, 1.0);
            }
            let before: Vec<Entry> = p.ranked().copied().collect();
            let ev = p.evolve();
            assert!(ev.retired >= 1, "{sel:?}");
            for e in &before[..KEEP] {
                assert!(p.slot_of(e.id).is_some());
            }
            let c = p.entries[p.slot_of(ev.added.unwrap()).unwrap()];
            let parent = p.entries[p.slot_of(c.parent).unwrap()].strategy;
            assert!((1..=2).contains(&c.strategy.knobs_differing(&parent)));
            assert_eq!(p.select(), p.slot_of(c.id).unwrap(), "a trial");
        }
    }

    #[test]
    fn restart_forgets_the_ratings_brings_back_the_built_ins_and_warms_up_again() {
        let mut p = rated(Selector::Elo);
        while p.len < MAX_STRATEGIES {
            p.evolve();
        }
        p.remove(3);
        p.restart();
        assert_eq!(
            p.len,
            DEFAULTS.len() + p.entries().iter().filter(|e| e.parent != 0).count()
        );
        assert!(p.len <= DEFAULTS.len() + KEEP);
        assert!(p
            .entries()
            .iter()
            .all(|e| e.elo.rating == rate::START && e.samples == 0));
        let mut seen = vec![0; p.len];
        while p.warming_up() {
            seen[p.select()] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }
}
