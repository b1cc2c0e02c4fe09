//! The playbook: the live strategies with their ratings, which one runs next, how the set evolves,
//! and its file.
//!
//! Choosing (`select`): a strategy predicted to save many page faults runs first (`promising`); the
//! first `REVEAL_EPOCHS` epochs (at the start and after a phase change; more while the caller sees
//! its caches still filling, `extend_reveal`) run the most generous
//! strategy, whose kept memory shows what the stingier ones would lose, so that the predictions
//! screen the catastrophic ones out before their turn, and the warm-up gives no turn to one
//! predicted `PROMISE` slower; until
//! `min_samples` epochs are recorded, the strategies take turns (round robin, in a new random order
//! each round so each meets varied opponents), so ratings drive
//! nothing before they mean something; then a challenger that has run fewer than `trial_epochs`
//! epochs runs; then ELO mode is epsilon-greedy (the leader, or with
//! probability epsilon a uniformly chosen other strategy) and UCB1 mode asks the bandit.
//!
//! Rating (`record`): every epoch adds to its strategy's mean cost and bandit arm. An ELO game is
//! played between two *adjacent* epochs that ran different strategies (the closest in time, so a
//! drifting workload affects both alike); consecutive epochs of one strategy play no game.
//!
//! Evolving (`evolve`) is a delta update, never a reset: the generator mutates one or two knobs of
//! the leader or the runner-up into a challenger (it starts at the start rating with a fresh
//! bandit arm, like any newcomer: it cannot lead on its parent's merit, and the games it loses do
//! not inflate the leader's rating); the curator retires proven strategies ranked below the top `keep`. The top
//! `keep` are never touched.
//!
//! The file (`save`/`load`, raw libc, caller-given NUL-terminated path) is little-endian: a header
//! (magic "HAKMEMPB", version, header size, entry size, knob count, entry count, next id, epochs),
//! the entries, then the FNV-1a 64 checksum of everything before it. `decode` rejects a wrong
//! (or partial) magic, version or layout, a truncated or over-long file, a bad checksum and any
//! invalid entry, before changing anything. `save` writes a temporary file in the same directory,
//! syncs it and renames it over the old one, which must be a playbook (by its magic, however
//! corrupt) or an empty file: it never replaces anything else.
//!
//! Fixed capacity (`MAX_STRATEGIES`), no allocation; the caller serialises access.

use super::elo::{self, Rating};
use super::rng::Rng;
use super::score::reward_of;
use super::strategy::{mutate, Strategy, DEFAULTS, KNOB_COUNT};
use super::ucb1::{self, Arm};

/// Most strategies alive at once.
pub const MAX_STRATEGIES: usize = 16;

/// What ranks strategies and drives the choice after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// ELO ratings from pairwise games, epsilon-greedy choice.
    Elo,
    /// UCB1 over the strategies' mean rewards.
    Ucb1,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaybookConfig {
    /// Share of epochs that explore a non-leader in ELO mode (0.05: 0.1 measured
    /// worse in the allocator, where an epoch of a bad strategy also costs the next ones).
    pub epsilon: f64,
    /// Epochs recorded before ratings drive choices (20, two rounds of the ten defaults;
    /// 50 made learning on seed VM cost +40-70 % time instead of +10-20 %).
    pub min_samples: u64,
    /// Strategies the curator keeps (the top 6 survive).
    pub keep: usize,
    /// Epochs a new challenger runs before it can be ranked out.
    pub trial_epochs: u32,
    /// Relative cost difference that counts as a draw.
    pub draw_margin: f64,
    /// UCB1 exploration constant.
    pub ucb_c: f64,
}

impl PlaybookConfig {
    pub const DEFAULT: PlaybookConfig = PlaybookConfig {
        epsilon: 0.05,
        min_samples: 20,
        keep: 6,
        trial_epochs: 2,
        draw_margin: elo::DRAW_MARGIN,
        ucb_c: 0.25,
    };
}

impl Default for PlaybookConfig {
    fn default() -> Self {
        PlaybookConfig::DEFAULT
    }
}

/// One live strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    /// Unique for the playbook's life (and across save/load); starts at 1.
    pub id: u32,
    /// The id this strategy was mutated from; 0 for a starting candidate.
    pub parent: u32,
    pub strategy: Strategy,
    pub elo: Rating,
    pub arm: Arm,
    /// Epochs run with this strategy.
    pub samples: u32,
    /// Mean cost of those epochs (a moving average over about the last 16).
    pub mean_cost: f64,
}

impl Entry {
    const EMPTY: Entry = Entry {
        id: 0,
        parent: 0,
        strategy: DEFAULTS[0].1,
        elo: Rating::new(),
        arm: Arm::new(),
        samples: 0,
        mean_cost: 0.0,
    };
}

/// Why `select` chose what it chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A challenger's trial epochs.
    Trial,
    /// The most generous strategy first (`REVEAL_EPOCHS`), then round robin before `min_samples`.
    WarmUp,
    /// ELO mode: the leader.
    Exploit,
    /// ELO mode: a random non-leader (probability epsilon).
    Explore,
    /// UCB1 mode: the bandit's pick.
    Bandit,
    /// Predicted to save many page faults or memory (`promising`), or to give back memory held
    /// idle (`releasing`).
    Promising,
}

/// What `evolve` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evolution {
    pub retired: u32,
    /// The challenger's id, if one was added.
    pub added: Option<u32>,
}

/// Why a playbook file was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// The path is not NUL-terminated, has an inner NUL, or is too long.
    BadPath,
    /// A system call failed with this errno.
    Io(i32),
    /// Shorter than its header says.
    Truncated,
    /// Longer than the largest valid file, or longer than its header says.
    TooLong,
    BadMagic,
    BadVersion,
    /// Header, entry size or knob count differ from this build's.
    BadLayout,
    BadChecksum,
    /// An entry fails validation (invalid strategy, non-finite numbers, duplicate id).
    BadEntry,
    /// `save` found something other than a playbook at the path (a file without the magic, a
    /// directory, a device), and left it alone.
    NotAPlaybook,
}

impl FileError {
    /// Why, in a few words: the system's message for the common errnos of file operations (the
    /// caller adds the number), a description for the rest.
    pub fn reason(self) -> &'static str {
        match self {
            FileError::BadPath => "path too long",
            FileError::Io(e) => match e {
                libc::EPERM => "Operation not permitted",
                libc::ENOENT => "No such file or directory",
                libc::EIO => "Input/output error",
                libc::EACCES => "Permission denied",
                libc::EBUSY => "Device or resource busy",
                libc::ENOTDIR => "Not a directory",
                libc::EISDIR => "Is a directory",
                libc::EINVAL => "Invalid argument",
                libc::ENFILE => "Too many open files in system",
                libc::EMFILE => "Too many open files",
                libc::ETXTBSY => "Text file busy",
                libc::EFBIG => "File too large",
                libc::ENOSPC => "No space left on device",
                libc::EROFS => "Read-only file system",
                libc::EMLINK => "Too many links",
                libc::ENAMETOOLONG => "File name too long",
                libc::ELOOP => "Too many levels of symbolic links",
                libc::EDQUOT => "Disk quota exceeded",
                libc::ENOMEM => "Cannot allocate memory",
                _ => "system error",
            },
            FileError::Truncated => "corrupt playbook (truncated)",
            FileError::TooLong => "corrupt playbook (too long)",
            FileError::BadMagic | FileError::NotAPlaybook => "not a hakmem playbook",
            FileError::BadVersion => "playbook of another version",
            FileError::BadLayout => "playbook of another build (different layout)",
            FileError::BadChecksum => "corrupt playbook (bad checksum)",
            FileError::BadEntry => "corrupt playbook (invalid entry)",
        }
    }
}

pub const MAGIC: [u8; 8] = *b"HAKMEMPB";
pub const VERSION: u32 = 1;
pub const HEADER_SIZE: usize = 8 + 6 * 4 + 8;
pub const ENTRY_SIZE: usize = 4 + 4 + KNOB_COUNT * 8 + 8 + 4 * 4 + 8 + 8 + 8;
/// Size of the largest valid file.
pub const MAX_FILE_SIZE: usize = HEADER_SIZE + MAX_STRATEGIES * ENTRY_SIZE + 8;
/// Longest path `save` and `load` accept, NUL included.
pub const MAX_PATH: usize = 4096;

pub struct Playbook {
    entries: [Entry; MAX_STRATEGIES],
    len: usize,
    next_id: u32,
    epochs: u64,
    selector: Selector,
    cfg: PlaybookConfig,
    rng: Rng,
    /// The previous epoch's strategy id and cost, for the next ELO game.
    last: Option<(u32, f64)>,
    /// Epoch count at which the current warm-up started (0, or the last `forget_half`).
    warm_start: u64,
    /// Epochs of the current warm-up's reveal: `REVEAL_EPOCHS`, or more (`extend_reveal`).
    reveal: u64,
    /// This warm-up round's order of slots (shuffled every round, so opponents vary).
    order: [u8; MAX_STRATEGIES],
    /// Per slot: the cost of its last epoch and the epoch count then (NaN: not run since the
    /// last reset). A strategy whose last epoch cost `VETO_FACTOR` times the cheapest one's is
    /// not explored again for `VETO_EPOCHS`: one epoch of a catastrophic strategy (no caches on
    /// a large-block workload) can cost more than everything exploration gains. Not saved.
    recent: [(f64, u64); MAX_STRATEGIES],
    /// Per slot: how much dearer than an average epoch the learner predicts it would make one (a
    /// moving average over recent epochs, `note_loss`); above `VETO_FACTOR - 1` the slot is
    /// screened out without ever running. Not saved.
    loss: [f64; MAX_STRATEGIES],
    /// Per slot: predictions folded into `loss` (the first ones weigh more: see `note_loss`).
    loss_n: [u32; MAX_STRATEGIES],
    /// Per slot: the newest prediction alone (`note_loss`'s `extra`): what a switch to it now
    /// would do.
    latest: [f64; MAX_STRATEGIES],
    /// Per slot: whether a switch to it now would give back memory held idle (`note_release`).
    release: [bool; MAX_STRATEGIES],
    /// The id of a strategy whose epoch ran but is not recorded yet (the caller rates epochs one
    /// late): it counts as run for the warm-up, trials and `untried`.
    in_flight: Option<u32>,
}

/// How much dearer than the cheapest recent epoch a strategy's last epoch must be to veto it.
pub const VETO_FACTOR: f64 = 2.0;
/// Share of an epoch's cost a strategy must be predicted to save to be run at once.
pub const PROMISE: f64 = 0.25;
/// Predictions a strategy needs before it can be promising (a single burst is not enough).
pub const PROMISE_MIN: u32 = 4;
/// Weight of the newest epoch in a slot's predicted loss (`note_loss`): about 16 epochs.
pub const LOSS_ALPHA: f64 = 1.0 / 16.0;
/// Epochs recorded with the most generous strategy before the warm-up's round robin, at the
/// start and after a phase change: long enough for its caches to fill with the new workload's
/// blocks, so that what stingier strategies would lose shows in the predictions.
pub const REVEAL_EPOCHS: u64 = 3;
/// Longest a reveal may be extended to (`extend_reveal`): 160 ms of 10 ms epochs.
pub const REVEAL_MAX_EPOCHS: u64 = 16;
/// ELO mode: a strategy expected to score less than this against the leader is proven worse.
pub const RETIRE_BELOW: f64 = 0.25;
/// Epochs a veto lasts (then the strategy may be explored again).
pub const VETO_EPOCHS: u64 = 256;
const UNKNOWN: (f64, u64) = (f64::NAN, 0);

impl Playbook {
    /// A playbook holding `DEFAULTS`.
    pub fn new(selector: Selector, cfg: PlaybookConfig, seed: u64) -> Self {
        let mut s = [DEFAULTS[0].1; MAX_STRATEGIES];
        for (i, (_, d)) in DEFAULTS.iter().enumerate() {
            s[i] = *d;
        }
        Playbook::with_strategies(selector, cfg, seed, &s[..DEFAULTS.len()])
    }

    /// A playbook holding the valid, distinct strategies of `start` (the first `MAX_STRATEGIES`).
    pub fn with_strategies(
        selector: Selector,
        cfg: PlaybookConfig,
        seed: u64,
        start: &[Strategy],
    ) -> Self {
        let mut p = Playbook {
            entries: [Entry::EMPTY; MAX_STRATEGIES],
            len: 0,
            next_id: 1,
            epochs: 0,
            selector,
            cfg,
            rng: Rng::new(seed),
            last: None,
            warm_start: 0,
            reveal: REVEAL_EPOCHS,
            order: [0; MAX_STRATEGIES],
            recent: [UNKNOWN; MAX_STRATEGIES],
            loss: [0.0; MAX_STRATEGIES],
            loss_n: [0; MAX_STRATEGIES],
            latest: [0.0; MAX_STRATEGIES],
            release: [false; MAX_STRATEGIES],
            in_flight: None,
        };
        for s in start {
            if p.len < MAX_STRATEGIES && s.is_valid() && p.find(s).is_none() {
                p.push(*s, 0, Rating::new());
            }
        }
        p
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    pub fn entry(&self, slot: usize) -> &Entry {
        &self.entries[slot]
    }

    pub fn selector(&self) -> Selector {
        self.selector
    }

    pub fn config(&self) -> &PlaybookConfig {
        &self.cfg
    }

    /// Epochs recorded (including those loaded from a file).
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    pub fn slot_of(&self, id: u32) -> Option<usize> {
        self.entries().iter().position(|e| e.id == id)
    }

    /// The slot holding strategy `s`.
    pub fn find(&self, s: &Strategy) -> Option<usize> {
        self.entries().iter().position(|e| e.strategy == *s)
    }

    fn push(&mut self, s: Strategy, parent: u32, elo: Rating) -> usize {
        let i = self.len;
        self.entries[i] = Entry {
            id: self.next_id,
            parent,
            strategy: s,
            elo,
            arm: Arm::new(),
            samples: 0,
            mean_cost: 0.0,
        };
        self.recent[i] = UNKNOWN;
        self.loss[i] = 0.0;
        self.loss_n[i] = 0;
        self.latest[i] = 0.0;
        self.release[i] = false;
        self.next_id += 1;
        self.len += 1;
        i
    }

    fn remove(&mut self, slot: usize) {
        self.entries.copy_within(slot + 1..self.len, slot);
        self.recent.copy_within(slot + 1..self.len, slot);
        self.loss.copy_within(slot + 1..self.len, slot);
        self.loss_n.copy_within(slot + 1..self.len, slot);
        self.latest.copy_within(slot + 1..self.len, slot);
        self.release.copy_within(slot + 1..self.len, slot);
        self.len -= 1;
    }

    /// Whether `slot` has not run since the playbook started, was loaded or forgot half: its next
    /// epoch is a probe.
    pub fn untried(&self, slot: usize) -> bool {
        !self.recent[slot].0.is_finite() && !self.is_in_flight(slot)
    }

    /// Tells the playbook which strategy's epoch ran and awaits its `record` (None: none).
    pub fn set_in_flight(&mut self, id: Option<u32>) {
        self.in_flight = id;
    }

    fn is_in_flight(&self, slot: usize) -> bool {
        self.in_flight == Some(self.entries[slot].id)
    }

    /// Epochs recorded, and the one in flight.
    fn epochs_run(&self) -> u64 {
        self.epochs + self.in_flight.is_some() as u64
    }

    /// Folds one epoch's prediction for `slot` into its moving average: `extra` is the share of
    /// the epoch's cost it would have added had `slot` run (negative: saved).
    /// An average, so that a rare burst of reuse (a memory crest every few hundred epochs) does
    /// not screen out, or push, a strategy on its own for long: the first predictions are simply
    /// averaged (so a start screens at once what its first epochs condemn, and a burst among the
    /// very first epochs screens for a few epochs), then about the last 1 / `LOSS_ALPHA` count.
    pub fn note_loss(&mut self, slot: usize, extra: f64) {
        let extra = if extra.is_finite() { extra } else { 1e9 };
        let x = extra.clamp(-1.0, 1e9);
        // The mean of the predictions so far, then a moving average over about 1 / LOSS_ALPHA:
        // a start (or a warm start from a file) screens at once what its first epochs condemn.
        let n = self.loss_n[slot].saturating_add(1);
        self.loss_n[slot] = n;
        let alpha = (1.0 / n as f64).max(LOSS_ALPHA);
        self.loss[slot] += alpha * (x - self.loss[slot]);
        self.latest[slot] = extra;
    }

    /// Notes whether a switch to `slot` now would give back memory the strategy that ran holds
    /// idle: the newest prediction saves at least `PROMISE` of an epoch's cost, in memory alone
    /// and with the faults it would cost counted (the caller's judgement: `Learner::screen`).
    pub fn note_release(&mut self, slot: usize, release: bool) {
        self.release[slot] = release;
    }

    /// Of the slots that would give back memory held idle now (`note_release`), not vetoed, the
    /// one predicted cheapest, faults and memory together. Unlike `promising`, on the newest
    /// prediction alone: memory held idle is there to see in every epoch it stays (not a rare
    /// burst, which an average has to weigh against the epochs without it), and each epoch it
    /// stays costs as much as the last. After a memory
    /// crest on `learn/pressure`, a generous strategy held 40 MiB idle for 5 to 10 epochs while
    /// the average of the predictions for the stingy ones crept towards `PROMISE`.
    pub fn releasing(&self) -> Option<usize> {
        // Never during a reveal: its caches are meant to fill.
        let since = self.epochs_run().saturating_sub(self.warm_start);
        if since < self.reveal_epochs() {
            return None;
        }
        (0..self.len)
            .filter(|&i| self.release[i] && !self.vetoed(i))
            .min_by(|&a, &b| self.latest[a].total_cmp(&self.latest[b]))
    }

    /// The slot to run next whatever the selector says: the one that would give back memory held
    /// idle (`releasing`), else the one predicted to save the most (at least `PROMISE` of the
    /// epochs' cost, over `PROMISE_MIN` predictions or more) until the prediction fades. Not one
    /// that is vetoed, nor, for a saving, one whose measured epochs cost more on average than the
    /// leader's (the prediction sees page faults and memory, not CPU time).
    pub fn promising(&self) -> Option<usize> {
        if let Some(i) = self.releasing() {
            return Some(i);
        }
        let lead = &self.entries[self.leader()];
        (0..self.len)
            .filter(|&i| {
                let e = &self.entries[i];
                self.loss[i] < -PROMISE
                    && self.loss_n[i] >= PROMISE_MIN
                    && !self.vetoed(i)
                    && (e.samples == 0 || lead.samples == 0 || e.mean_cost <= lead.mean_cost)
            })
            .min_by(|&a, &b| self.loss[a].total_cmp(&self.loss[b]))
    }

    /// Whether `slot` is screened out: predicted to make epochs `VETO_FACTOR` times as dear.
    /// Exploration skips it, as if it had run and been vetoed, but it never has to run.
    pub fn screened(&self, slot: usize) -> bool {
        self.loss[slot] > VETO_FACTOR - 1.0
    }

    /// Whether the selection skips `slot`: it is screened (the leader too, unless every slot
    /// is), or its last epoch was too dear (`recent`; never the leader).
    pub fn vetoed(&self, slot: usize) -> bool {
        if self.screened(slot) {
            return (0..self.len).any(|i| !self.screened(i));
        }
        let (cost, at) = self.recent[slot];
        if !cost.is_finite() || self.epochs.saturating_sub(at) >= VETO_EPOCHS {
            return false;
        }
        let cheapest = self.recent[..self.len]
            .iter()
            .filter(|r| r.0.is_finite() && self.epochs.saturating_sub(r.1) < VETO_EPOCHS)
            .map(|r| r.0)
            .fold(f64::INFINITY, f64::min);
        cost > VETO_FACTOR * cheapest.max(1e-3) && slot != self.leader()
    }

    /// The value that ranks an entry: its ELO rating, or its mean reward in UCB1 mode.
    pub fn rank_value(&self, e: &Entry) -> f64 {
        match self.selector {
            Selector::Elo => e.elo.rating,
            Selector::Ucb1 => {
                if e.arm.pulls == 0 {
                    f64::NEG_INFINITY
                } else {
                    e.arm.mean()
                }
            }
        }
    }

    /// True when `a` ranks above `b`: higher rank value, then more samples, then lower id.
    fn above(&self, a: &Entry, b: &Entry) -> bool {
        let (va, vb) = (self.rank_value(a), self.rank_value(b));
        if va != vb {
            return va > vb;
        }
        if a.samples != b.samples {
            return a.samples > b.samples;
        }
        a.id < b.id
    }

    /// Slots from best to worst; the first `len()` are meaningful.
    pub fn ranking(&self) -> [u8; MAX_STRATEGIES] {
        let mut r = [0u8; MAX_STRATEGIES];
        for i in 0..self.len {
            r[i] = i as u8;
            let mut j = i;
            while j > 0
                && self.above(
                    &self.entries[r[j] as usize],
                    &self.entries[r[j - 1] as usize],
                )
            {
                r.swap(j, j - 1);
                j -= 1;
            }
        }
        r
    }

    /// Entries from best to worst.
    pub fn ranked(&self) -> impl Iterator<Item = &Entry> + '_ {
        let r = self.ranking();
        (0..self.len).map(move |i| &self.entries[r[i] as usize])
    }

    /// The best entry's slot (the playbook is never empty).
    pub fn leader(&self) -> usize {
        self.ranking()[0] as usize
    }

    /// The best-ranked slot that is not vetoed (a screened leader does not run), or the leader.
    /// (When every slot is vetoed: the best-ranked one not screened, then the leader.)
    pub fn open_leader(&self) -> usize {
        let r = self.ranking();
        let ranked = || r[..self.len].iter().map(|&i| i as usize);
        ranked()
            .find(|&i| !self.vetoed(i))
            .or_else(|| ranked().find(|&i| !self.screened(i)))
            .unwrap_or(r[0] as usize)
    }

    /// Whether the warm-up gives `slot` no turn: it is vetoed, or predicted to make epochs
    /// `PROMISE` dearer (it may still be explored once warm-up is over).
    fn skipped_in_warm_up(&self, slot: usize) -> bool {
        self.vetoed(slot) || self.loss[slot] > PROMISE
    }

    /// Whether the warm-up (the reveal epochs and the round robin, at the start and after a
    /// phase change) is over: ratings mean something from then on.
    pub fn warmed_up(&self) -> bool {
        self.epochs_run() >= self.warm_start + self.reveal_epochs() + self.cfg.min_samples
    }

    /// The reveal's epochs (`REVEAL_EPOCHS` unless extended), or none without a warm-up.
    fn reveal_epochs(&self) -> u64 {
        self.reveal.min(self.cfg.min_samples)
    }

    /// Whether the reveal ended with the epoch in flight (or, without one, the last recorded):
    /// the next epoch would open the round robin, unless `extend_reveal` adds one more.
    pub fn reveal_just_ended(&self) -> bool {
        let r = self.reveal_epochs();
        r > 0 && self.epochs_run().checked_sub(self.warm_start) == Some(r)
    }

    /// One more reveal epoch, up to `REVEAL_MAX_EPOCHS`: the caller saw the most generous
    /// strategy's caches still filling with the workload's blocks, so the predictions cannot
    /// yet tell what a stingier strategy would lose.
    pub fn extend_reveal(&mut self) {
        self.reveal = (self.reveal + 1).min(REVEAL_MAX_EPOCHS);
    }

    /// The most generous strategy not vetoed (the best-ranked among equals): its epochs show
    /// every warm reuse a stingier one could lose, so the learner can screen the catastrophic
    /// ones out before they run.
    pub fn most_generous(&self) -> usize {
        let r = self.ranking();
        let g = |x: usize| self.entries[x].strategy.generosity();
        let mut first = None;
        for i in r[..self.len].iter().map(|&i| i as usize) {
            if !self.vetoed(i) && first.is_none_or(|f| g(i) > g(f)) {
                first = Some(i);
            }
        }
        first.unwrap_or(r[0] as usize)
    }

    /// The slot to run next, and why.
    pub fn select(&mut self) -> (usize, Choice) {
        if let Some(i) = self.promising() {
            return (i, Choice::Promising);
        }
        let since = self.epochs_run().saturating_sub(self.warm_start);
        let reveal = self.reveal_epochs();
        if since < reveal {
            return (self.most_generous(), Choice::WarmUp);
        }
        if since < reveal + self.cfg.min_samples {
            let k = ((since - reveal) % self.len as u64) as usize;
            if k == 0 {
                // A new round: a fresh Fisher-Yates shuffle of the slots.
                for i in 0..self.len {
                    self.order[i] = i as u8;
                }
                for i in (1..self.len).rev() {
                    let j = self.rng.below(i as u64 + 1) as usize;
                    self.order.swap(i, j);
                }
                // No slot is put first: the reveal has just run the most generous one, and
                // another turn of it right away would hold whatever it cached through a quiet
                // stretch once more (a memory crest's 40 MiB on `learn/pressure`).
            }
            // The round's turns go to the slots worth one, in the round's order, as often as
            // the round is long (the open leader if none is).
            let mut turns = [0u8; MAX_STRATEGIES];
            let mut n = 0;
            for &slot in &self.order[..self.len] {
                if !self.skipped_in_warm_up(slot as usize) {
                    turns[n] = slot;
                    n += 1;
                }
            }
            let slot = if n == 0 {
                self.open_leader()
            } else {
                turns[k % n] as usize
            };
            return (slot, Choice::WarmUp);
        }
        // A challenger's trial comes after the warm-up (one mutated just before a phase change
        // from the old phase's leader would otherwise run before the reveal).
        if let Some(i) = (0..self.len).find(|&i| {
            let e = &self.entries[i];
            let samples = e.samples + self.is_in_flight(i) as u32;
            e.parent != 0 && samples < self.cfg.trial_epochs && !self.vetoed(i)
        }) {
            return (i, Choice::Trial);
        }
        // The candidates exploration may pick.
        let mut open = [0u8; MAX_STRATEGIES];
        let mut n = 0;
        for i in 0..self.len {
            if !self.vetoed(i) {
                open[n] = i as u8;
                n += 1;
            }
        }
        match self.selector {
            Selector::Elo => {
                let leader = self.open_leader();
                if n > 1 && self.rng.chance(self.cfg.epsilon) {
                    let mut k = open[self.rng.below(n as u64 - 1) as usize] as usize;
                    if k == leader {
                        k = open[n - 1] as usize;
                    }
                    (k, Choice::Explore)
                } else {
                    (leader, Choice::Exploit)
                }
            }
            Selector::Ucb1 => {
                let mut arms = [Arm::new(); MAX_STRATEGIES];
                for (a, &i) in arms.iter_mut().zip(&open[..n]) {
                    *a = self.entries[i as usize].arm;
                }
                let i = ucb1::select(&arms[..n], self.cfg.ucb_c).unwrap_or(0);
                (open[i] as usize, Choice::Bandit)
            }
        }
    }

    /// Records an epoch run with the strategy in `slot` at `cost` (lower is better): its mean cost
    /// and bandit arm, and an ELO game against the previous epoch if that ran another strategy.
    pub fn record(&mut self, slot: usize, cost: f64) {
        let cost = if cost.is_finite() { cost.max(0.0) } else { 1e9 };
        let id = self.entries[slot].id;
        if let Some((prev_id, prev_cost)) = self.last {
            if prev_id != id {
                if let Some(p) = self.slot_of(prev_id) {
                    let o = elo::outcome(cost, prev_cost, self.cfg.draw_margin);
                    let mut a = self.entries[slot].elo;
                    let mut b = self.entries[p].elo;
                    elo::update(&mut a, &mut b, o);
                    self.entries[slot].elo = a;
                    self.entries[p].elo = b;
                }
            }
        }
        let e = &mut self.entries[slot];
        e.samples = e.samples.saturating_add(1);
        let w = 1.0 / (e.samples.min(16) as f64);
        e.mean_cost += w * (cost - e.mean_cost);
        e.arm.record(reward_of(cost));
        self.recent[slot] = (cost, self.epochs);
        self.last = Some((id, cost));
        self.epochs += 1;
    }

    /// After a phase change: halves every rating's distance from the start rating and every
    /// arm's pulls (keeping its mean), and restarts the warm-up, so new evidence counts double
    /// without throwing the old away.
    pub fn forget_half(&mut self) {
        for e in self.entries[..self.len].iter_mut() {
            e.elo.rating = elo::START + (e.elo.rating - elo::START) / 2.0;
            let mean = e.arm.mean();
            e.arm.pulls /= 2;
            e.arm.reward_sum = mean * e.arm.pulls as f64;
        }
        self.restart_warm_up(self.epochs);
    }

    /// Starts a warm-up (reveal, then round robin) at epoch `at`, with no recent cost, no
    /// prediction and no previous epoch to play against: what is known of the strategies is their
    /// ratings and arms.
    fn restart_warm_up(&mut self, at: u64) {
        self.warm_start = at;
        self.reveal = REVEAL_EPOCHS;
        self.recent = [UNKNOWN; MAX_STRATEGIES];
        self.loss = [0.0; MAX_STRATEGIES];
        self.loss_n = [0; MAX_STRATEGIES];
        self.latest = [0.0; MAX_STRATEGIES];
        self.release = [false; MAX_STRATEGIES];
        self.last = None;
    }

    /// Adds `s` as a strategy derived from `parent` with ELO rating `rating` (a fresh arm), unless
    /// it is already present; when full, the lowest-ranked strategy outside the top `keep` goes
    /// first. Returns the slot, or None if it could not be added.
    pub fn adopt(&mut self, s: Strategy, parent: u32, rating: f64) -> Option<usize> {
        if !s.is_valid() {
            return None;
        }
        if let Some(i) = self.find(&s) {
            return Some(i);
        }
        if self.len == MAX_STRATEGIES {
            let r = self.ranking();
            let worst = r[self.len - 1] as usize;
            if self.len <= self.cfg.keep {
                return None;
            }
            self.remove(worst);
        }
        Some(self.push(s, parent, Rating::at(rating)))
    }

    /// Whether the evidence says `e` is worse than the leader, not just ranked lower: in ELO mode,
    /// expected to score under `RETIRE_BELOW` against it (about 190 points below); in UCB1 mode,
    /// the upper confidence bound of its mean reward (`Arm::index`) is below the leader's mean.
    /// Where every strategy costs the same (a quiet stretch), ranks below the top `keep` come from
    /// noise, and retiring on them threw away the best strategy of `learn/pressure` in some runs.
    fn proven_worse(&self, e: &Entry) -> bool {
        let lead = &self.entries[self.leader()];
        match self.selector {
            Selector::Elo => elo::expected(e.elo.rating, lead.elo.rating) < RETIRE_BELOW,
            Selector::Ucb1 => {
                let total = self.entries[..self.len].iter().map(|e| e.arm.pulls).sum();
                e.arm.pulls > 0 && e.arm.index(total, self.cfg.ucb_c) < lead.arm.mean()
            }
        }
    }

    /// One delta update: retires strategies ranked below the top `keep` and proven worse than
    /// the leader (`proven_worse`), then adds one
    /// challenger mutated from the leader or the runner-up (unless it duplicates a live one).
    pub fn evolve(&mut self) -> Evolution {
        let mut ev = Evolution::default();
        let r = self.ranking();
        let mut retire = [0u32; MAX_STRATEGIES];
        let mut n = 0;
        for &slot in &r[self.cfg.keep.min(self.len)..self.len] {
            let e = &self.entries[slot as usize];
            if e.samples >= self.cfg.trial_epochs && self.proven_worse(e) {
                retire[n] = e.id;
                n += 1;
            }
        }
        for &id in &retire[..n] {
            if let Some(s) = self.slot_of(id) {
                self.remove(s);
                ev.retired += 1;
            }
        }
        if self.len < MAX_STRATEGIES {
            let r = self.ranking();
            let pick = if self.len > 1 && self.rng.below(2) == 1 {
                1
            } else {
                0
            };
            let parent = self.entries[r[pick] as usize];
            for _ in 0..8 {
                let c = mutate(&parent.strategy, &mut self.rng);
                if self.find(&c).is_none() {
                    let slot = self.push(c, parent.id, Rating::new());
                    ev.added = Some(self.entries[slot].id);
                    break;
                }
            }
        }
        ev
    }

    /// Serialises the playbook into `buf`; returns the length used.
    pub fn encode(&self, buf: &mut [u8; MAX_FILE_SIZE]) -> usize {
        let mut w = Writer { buf, pos: 0 };
        w.bytes(&MAGIC);
        w.u32(VERSION);
        w.u32(HEADER_SIZE as u32);
        w.u32(ENTRY_SIZE as u32);
        w.u32(KNOB_COUNT as u32);
        w.u32(self.len as u32);
        w.u32(self.next_id);
        w.u64(self.epochs);
        for e in self.entries() {
            w.u32(e.id);
            w.u32(e.parent);
            for k in e.strategy.knobs() {
                w.u64(k);
            }
            w.f64(e.elo.rating);
            w.u32(e.elo.wins);
            w.u32(e.elo.losses);
            w.u32(e.elo.draws);
            w.u32(e.samples);
            w.f64(e.mean_cost);
            w.u64(e.arm.pulls);
            w.f64(e.arm.reward_sum);
        }
        let sum = fnv1a(&w.buf[..w.pos]);
        w.u64(sum);
        w.pos
    }

    /// Replaces the entries, ids and epoch count with those in `buf` (a whole file), keeping the
    /// configuration, selector and random state. On error nothing changes.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(), FileError> {
        // Anything else than an empty file or one starting with the magic is some other file
        // (as `save` sees it).
        if !buf.is_empty() && !buf.starts_with(&MAGIC) {
            return Err(FileError::BadMagic);
        }
        if buf.len() > MAX_FILE_SIZE {
            return Err(FileError::TooLong);
        }
        if buf.len() < HEADER_SIZE + 8 {
            return Err(FileError::Truncated);
        }
        let mut r = Reader { buf, pos: 0 };
        r.take(8);
        if r.u32() != VERSION {
            return Err(FileError::BadVersion);
        }
        if r.u32() as usize != HEADER_SIZE
            || r.u32() as usize != ENTRY_SIZE
            || r.u32() as usize != KNOB_COUNT
        {
            return Err(FileError::BadLayout);
        }
        let count = r.u32() as usize;
        if count == 0 || count > MAX_STRATEGIES {
            return Err(FileError::BadLayout);
        }
        let want = HEADER_SIZE + count * ENTRY_SIZE + 8;
        if buf.len() < want {
            return Err(FileError::Truncated);
        }
        if buf.len() > want {
            return Err(FileError::TooLong);
        }
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&buf[want - 8..]);
        if fnv1a(&buf[..want - 8]) != u64::from_le_bytes(tail) {
            return Err(FileError::BadChecksum);
        }
        let next_id = r.u32();
        let epochs = r.u64();
        let mut entries = [Entry::EMPTY; MAX_STRATEGIES];
        for i in 0..count {
            let id = r.u32();
            let parent = r.u32();
            let mut knobs = [0u64; KNOB_COUNT];
            for k in knobs.iter_mut() {
                *k = r.u64();
            }
            let e = Entry {
                id,
                parent,
                strategy: Strategy::from_knobs(&knobs),
                elo: Rating {
                    rating: r.f64(),
                    wins: r.u32(),
                    losses: r.u32(),
                    draws: r.u32(),
                },
                samples: r.u32(),
                mean_cost: r.f64(),
                arm: Arm {
                    pulls: r.u64(),
                    reward_sum: r.f64(),
                },
            };
            let dup = entries[..i]
                .iter()
                .any(|o| o.id == e.id || o.strategy == e.strategy);
            if dup
                || e.id == 0
                || e.id >= next_id
                || e.parent >= next_id
                || !e.strategy.is_valid()
                || !e.elo.rating.is_finite()
                || !e.mean_cost.is_finite()
                || !e.arm.reward_sum.is_finite()
                || e.arm.reward_sum < 0.0
                || e.arm.reward_sum > e.arm.pulls as f64
            {
                return Err(FileError::BadEntry);
            }
            entries[i] = e;
        }
        self.entries = entries;
        self.len = count;
        self.next_id = next_id;
        self.epochs = epochs;
        // A warm-up counted from epoch 0, which the file's epochs are past: a warm start.
        self.restart_warm_up(0);
        Ok(())
    }

    /// Writes the playbook to `path` (NUL-terminated) through a temporary file in the same
    /// directory (named after the process, so processes saving at once never share one), synced
    /// to disk, and a rename: a crash never leaves a partial playbook. Only a missing path, an
    /// empty regular file or a regular file starting with the magic (a playbook, perhaps
    /// corrupt) is replaced; anything else is left alone (`NotAPlaybook`).
    pub fn save(&self, path: &[u8]) -> Result<(), FileError> {
        check_path(path)?;
        check_replaceable(path)?;
        let mut buf = [0u8; MAX_FILE_SIZE];
        let n = self.encode(&mut buf);
        let mut tmp = [0u8; MAX_PATH + 32];
        let stem = path.len() - 1;
        tmp[..stem].copy_from_slice(&path[..stem]);
        let mut len = stem;
        tmp[len] = b'.';
        len += 1;
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        let mut digits = [0u8; 20];
        let pid = crate::text::decimal(pid as u64, &mut digits);
        tmp[len..len + pid.len()].copy_from_slice(pid);
        len += pid.len();
        tmp[len..len + 5].copy_from_slice(b".tmp\0");
        let tmp = &tmp[..len + 5];
        // SAFETY: tmp and path are NUL-terminated byte strings that outlive the calls; buf holds n
        // initialised bytes.
        unsafe {
            let fd = libc::open(
                tmp.as_ptr() as *const libc::c_char,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return Err(FileError::Io(errno()));
            }
            let mut done = 0;
            while done < n {
                let w = libc::write(fd, buf[done..].as_ptr() as *const libc::c_void, n - done);
                if w < 0 {
                    let e = errno();
                    if e == libc::EINTR {
                        continue;
                    }
                    libc::close(fd);
                    libc::unlink(tmp.as_ptr() as *const libc::c_char);
                    return Err(FileError::Io(e));
                }
                done += w as usize;
            }
            if libc::fsync(fd) != 0 {
                let e = errno();
                libc::close(fd);
                libc::unlink(tmp.as_ptr() as *const libc::c_char);
                return Err(FileError::Io(e));
            }
            if libc::close(fd) != 0
                || libc::rename(
                    tmp.as_ptr() as *const libc::c_char,
                    path.as_ptr() as *const libc::c_char,
                ) != 0
            {
                let e = errno();
                libc::unlink(tmp.as_ptr() as *const libc::c_char);
                return Err(FileError::Io(e));
            }
        }
        Ok(())
    }

    /// Reads the playbook from `path` (NUL-terminated); see `decode`.
    pub fn load(&mut self, path: &[u8]) -> Result<(), FileError> {
        check_path(path)?;
        // One byte more than the largest valid file, to tell "too long" from "exactly full".
        let mut buf = [0u8; MAX_FILE_SIZE + 1];
        let mut n = 0;
        // SAFETY: path is NUL-terminated; reads stay within buf.
        unsafe {
            let fd = libc::open(
                path.as_ptr() as *const libc::c_char,
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(FileError::Io(errno()));
            }
            while n < buf.len() {
                let r = libc::read(
                    fd,
                    buf[n..].as_mut_ptr() as *mut libc::c_void,
                    buf.len() - n,
                );
                if r < 0 {
                    let e = errno();
                    if e == libc::EINTR {
                        continue;
                    }
                    libc::close(fd);
                    return Err(FileError::Io(e));
                }
                if r == 0 {
                    break;
                }
                n += r as usize;
            }
            libc::close(fd);
        }
        self.decode(&buf[..n])
    }
}

/// Ok if `save` may replace what is at `path` (NUL-terminated, checked): nothing, an empty
/// regular file, or a regular file starting with the magic.
fn check_replaceable(path: &[u8]) -> Result<(), FileError> {
    let mut head = [0u8; 8];
    let mut n = 0;
    // SAFETY: path is NUL-terminated; fstat fills the struct we pass; reads stay within head.
    unsafe {
        // Non-blocking, so that a FIFO at the path cannot hang the process.
        let fd = libc::open(
            path.as_ptr() as *const libc::c_char,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        );
        if fd < 0 {
            let e = errno();
            return if e == libc::ENOENT {
                Ok(())
            } else {
                Err(FileError::Io(e))
            };
        }
        let mut st: libc::stat = core::mem::zeroed();
        let regular = libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG;
        while regular && n < head.len() {
            let r = libc::read(
                fd,
                head[n..].as_mut_ptr() as *mut libc::c_void,
                head.len() - n,
            );
            if r < 0 && errno() == libc::EINTR {
                continue;
            }
            if r <= 0 {
                break;
            }
            n += r as usize;
        }
        libc::close(fd);
        if regular && ((st.st_size == 0 && n == 0) || head == MAGIC) {
            Ok(())
        } else {
            Err(FileError::NotAPlaybook)
        }
    }
}

fn check_path(path: &[u8]) -> Result<(), FileError> {
    match path.iter().position(|&b| b == 0) {
        Some(i) if i > 0 && i + 1 == path.len() && path.len() <= MAX_PATH => Ok(()),
        _ => Err(FileError::BadPath),
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct Writer<'a> {
    buf: &'a mut [u8; MAX_FILE_SIZE],
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
}

/// Reads fields from a buffer whose length the caller has already checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4));
        u32::from_le_bytes(a)
    }
    fn u64(&mut self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8));
        u64::from_le_bytes(a)
    }
    fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::{BALANCED, DEFAULT_COUNT};

    fn pb(selector: Selector) -> Playbook {
        Playbook::new(selector, PlaybookConfig::DEFAULT, 1)
    }

    /// A playbook whose ratings are spread out: slot i plays and loses to slot i-1 a few times.
    /// Five rounds of every default, slot `i` at cost 0.5 + 0.05 i, then ratings 50 points apart
    /// from 1700 down (as more games would spread them): the last four are proven worse.
    fn rated() -> Playbook {
        let mut p = pb(Selector::Elo);
        for _ in 0..5 {
            for i in 0..p.len() {
                p.record(i, 0.5 + 0.05 * i as f64);
            }
        }
        for i in 0..p.len() {
            p.entries[i].elo.rating = 1700.0 - 50.0 * i as f64;
        }
        p
    }

    #[test]
    fn the_warm_up_gives_no_turn_to_a_strategy_predicted_dear() {
        let mut p = Playbook::new(Selector::Elo, PlaybookConfig::DEFAULT, 8);
        // Slot 5 is predicted 40 % slower: not screened (that is 100 %), but not worth a turn.
        p.note_loss(5, 0.4);
        assert!(!p.screened(5) && !p.vetoed(5));
        let mut turns = [0u32; MAX_STRATEGIES];
        while !p.warmed_up() {
            let (s, c) = p.select();
            assert_eq!(c, Choice::WarmUp);
            turns[s] += 1;
            p.record(s, 1.0);
        }
        assert_eq!(turns[5], 0, "{turns:?}");
        // The other slots share its turns.
        let rest = (0..p.len()).filter(|&i| i != 5);
        assert!(rest.clone().all(|i| turns[i] >= 2), "{turns:?}");
        // Once warm, exploration may still pick it: predictions see page faults only.
        let explored = (0..2000).any(|_| {
            let (s, _) = p.select();
            p.record(s, 1.0);
            s == 5
        });
        assert!(explored);
    }

    #[test]
    fn predicted_losses_screen_and_predicted_savings_promote() {
        for sel in [Selector::Elo, Selector::Ucb1] {
            let mut p = Playbook::new(sel, PlaybookConfig::DEFAULT, 8);
            for e in 0..40 {
                let (s, _) = p.select();
                p.record(s, 1.0 + 0.01 * s as f64);
                assert!(p.promising().is_none() && !p.screened(s), "{e}");
            }
            // Slot 3 is predicted to triple an epoch's time: screened, never selected, even as
            // the leader (a rare large prediction is averaged away, a steady one is not).
            let leader = p.leader();
            for _ in 0..20 {
                p.note_loss(3, 0.0);
            }
            p.note_loss(3, 8.0);
            assert!(
                !p.screened(3),
                "one epoch's prediction is averaged with the past ones"
            );
            for _ in 0..16 {
                p.note_loss(3, 8.0);
                p.note_loss(leader, 8.0);
            }
            assert!(p.screened(3) && p.vetoed(3) && p.vetoed(leader));
            for _ in 0..200 {
                let (s, _) = p.select();
                assert!(s != 3 && s != leader, "{sel:?}: ran screened slot {s}");
                p.record(s, 1.0);
            }
            // Slot 5 is predicted to save half of every epoch: it runs at once, until the
            // prediction fades (its own epochs predict nothing more to save).
            for _ in 0..16 {
                p.note_loss(5, -0.5);
            }
            // Not while its measured epochs cost more than the leader's.
            p.record(5, 3.0);
            assert_eq!(p.promising(), None);
            for _ in 0..16 {
                p.record(5, 0.5);
            }
            assert_eq!(p.promising(), Some(5));
            assert_eq!(p.select(), (5, Choice::Promising));
            for _ in 0..40 {
                p.note_loss(5, 0.0);
            }
            assert_eq!(p.promising(), None);
            // All screened: the selection falls back on the leader rather than on nothing.
            for i in 0..p.len() {
                for _ in 0..40 {
                    p.note_loss(i, 8.0);
                }
            }
            assert!(!p.vetoed(p.leader()));
        }
    }

    #[test]
    fn catastrophic_strategies_are_not_explored_until_the_veto_expires() {
        for sel in [Selector::Elo, Selector::Ucb1] {
            let cfg = PlaybookConfig {
                min_samples: 20,
                ..PlaybookConfig::DEFAULT
            };
            let mut p = Playbook::new(sel, cfg, 5);
            // Slot 3 costs 10x the others whenever it runs.
            let cost = |s: usize| if s == 3 { 10.0 } else { 0.9 + 0.01 * s as f64 };
            let mut runs_of_3 = 0;
            for e in 0..VETO_EPOCHS - 40 {
                let (s, _) = p.select();
                if s == 3 {
                    runs_of_3 += 1;
                    assert!(e < 20, "{sel:?}: vetoed strategy explored at epoch {e}");
                }
                p.record(s, cost(s));
            }
            assert_eq!(
                runs_of_3, 1,
                "{sel:?}: run once in the warm-up, then vetoed"
            );
            assert!(p.vetoed(3) && !p.vetoed(p.leader()));
            // The veto expires: it may be tried once more (and is vetoed again).
            let mut again = 0;
            for _ in 0..80 {
                let (s, _) = p.select();
                again += (s == 3) as u32;
                p.record(s, cost(s));
            }
            assert!(again <= 1, "{sel:?}: {again}");
            p.record(3, 10.0);
            assert!(p.vetoed(3));
            // A phase change lifts every veto at once.
            p.forget_half();
            assert!(!p.vetoed(3));
        }
    }

    fn temp_path(name: &str) -> Vec<u8> {
        let mut v = std::env::temp_dir()
            .join(format!("hakmem-learn-{}-{name}", std::process::id()))
            .into_os_string()
            .into_encoded_bytes();
        v.push(0);
        v
    }

    #[test]
    fn starts_with_the_defaults() {
        let p = pb(Selector::Elo);
        assert_eq!(p.len(), DEFAULT_COUNT);
        for (i, e) in p.entries().iter().enumerate() {
            assert_eq!(e.id, i as u32 + 1);
            assert_eq!(e.strategy, DEFAULTS[i].1);
            assert_eq!(e.elo.rating, elo::START);
        }
        let q = Playbook::with_strategies(
            Selector::Elo,
            PlaybookConfig::DEFAULT,
            1,
            &[
                BALANCED,
                BALANCED,
                Strategy {
                    refill_bytes: 5,
                    ..BALANCED
                },
            ],
        );
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn warm_up_is_round_robin_then_ratings_drive() {
        let mut p = pb(Selector::Elo);
        let mut seen = [0u32; DEFAULT_COUNT];
        let warm = p.config().min_samples;
        let generous = p.most_generous();
        assert_eq!(p.entry(generous).strategy, crate::learn::strategy::FAST);
        for _ in 0..REVEAL_EPOCHS {
            assert_eq!(p.select(), (generous, Choice::WarmUp));
            p.record(generous, 1.0);
        }
        for _ in 0..warm {
            let (s, c) = p.select();
            assert!(c == Choice::Trial || c == Choice::WarmUp);
            seen[s] += 1;
            p.record(s, if s == 3 { 0.5 } else { 1.0 });
        }
        let rounds = (warm / DEFAULT_COUNT as u64) as u32;
        assert!(rounds >= 2 && seen.iter().all(|&n| n == rounds), "{seen:?}");
        assert_eq!(p.leader(), 3);
        let (s, c) = p.select();
        assert!(c == Choice::Exploit || c == Choice::Explore);
        if c == Choice::Exploit {
            assert_eq!(s, 3);
        }
    }

    #[test]
    fn min_samples_is_configurable() {
        let cfg = PlaybookConfig {
            min_samples: 0,
            trial_epochs: 0,
            ..PlaybookConfig::DEFAULT
        };
        let mut p = Playbook::new(Selector::Elo, cfg, 3);
        let (_, c) = p.select();
        assert!(c == Choice::Exploit || c == Choice::Explore);
    }

    #[test]
    fn epsilon_greedy_explores_at_the_configured_rate() {
        let mut p = rated();
        let leader = p.leader();
        assert_eq!(leader, 0);
        let n = 20_000;
        let mut explore = 0;
        let mut others = [0u32; MAX_STRATEGIES];
        for _ in 0..n {
            let (s, c) = p.select();
            match c {
                Choice::Explore => {
                    explore += 1;
                    assert_ne!(s, leader);
                    others[s] += 1;
                }
                Choice::Exploit => assert_eq!(s, leader),
                _ => panic!("{c:?}"),
            }
        }
        // Binomial(20000, 0.05): sd = 31; allow 5 sd.
        assert_eq!(p.config().epsilon, 0.05);
        assert!((845..=1155).contains(&explore), "{explore}");
        // Exploration is spread over all non-leaders (about 111 each).
        for (i, &o) in others[..p.len()].iter().enumerate() {
            if i != leader {
                assert!((45..=185).contains(&o), "{others:?}");
            }
        }
        // Same seed, same choices.
        let mut a = rated();
        let mut b = rated();
        for _ in 0..1000 {
            assert_eq!(a.select(), b.select());
        }
    }

    #[test]
    fn adjacent_epochs_play_elo_games() {
        let mut p = pb(Selector::Elo);
        p.record(0, 1.0);
        p.record(0, 1.0); // same strategy: no game
        assert_eq!(p.entry(0).elo.games(), 0);
        p.record(1, 0.5); // 1 beats 0
        assert_eq!(p.entry(1).elo.rating, 1516.0);
        assert_eq!(p.entry(0).elo.rating, 1484.0);
        p.record(0, 0.995); // 0 loses to 1's 0.5 again
        assert_eq!(p.entry(0).elo.losses, 2);
        p.record(2, 1.0); // draw with 0.995
        assert_eq!(p.entry(2).elo.draws, 1);
        assert_eq!(p.entry(0).samples, 3);
        assert!((p.entry(0).mean_cost - (1.0 + 1.0 + 0.995) / 3.0).abs() < 1e-12);
        assert_eq!(p.epochs(), 5);
    }

    #[test]
    fn evolve_keeps_the_top_and_adds_a_close_challenger() {
        let mut p = rated();
        let before: Vec<Entry> = p.ranked().copied().collect();
        let ev = p.evolve();
        assert_eq!(ev.retired as usize, DEFAULT_COUNT - 6);
        let id = ev.added.unwrap();
        // The top 6 are untouched, in order, with their ratings.
        let after: Vec<Entry> = p.ranked().copied().collect();
        for e in &before[..6] {
            assert!(p.entries().contains(e));
        }
        assert_eq!(p.len(), 7);
        let c = *p.entry(p.slot_of(id).unwrap());
        let parent = *p.entry(p.slot_of(c.parent).unwrap());
        assert!(before[..2].iter().any(|e| e.id == parent.id));
        let d = c.strategy.knobs_differing(&parent.strategy);
        assert!(d == 1 || d == 2);
        assert_eq!(c.elo.rating, elo::START);
        assert_eq!((c.samples, c.arm.pulls), (0, 0));
        assert!(after.len() == 7);
        // The challenger runs its trials next.
        assert_eq!(p.select(), (p.slot_of(id).unwrap(), Choice::Trial));
    }

    /// Ranked below the top `keep` on noise alone, a strategy stays; proven worse, it goes.
    #[test]
    fn evolve_retires_only_strategies_proven_worse_than_the_leader() {
        let mut p = pb(Selector::Elo);
        for i in 0..p.len() {
            p.record(i, 1.0);
            p.record(i, 1.0);
            p.entries[i].elo.rating = 1530.0 - 6.0 * i as f64;
        }
        assert_eq!(p.evolve().retired, 0);
        let worst = p.entries[DEFAULT_COUNT - 1].id;
        p.entries[DEFAULT_COUNT - 1].elo.rating = 1300.0;
        assert_eq!(p.evolve().retired, 1);
        assert!(p.slot_of(worst).is_none());

        let mut u = pb(Selector::Ucb1);
        for i in 0..u.len() {
            for k in 0..20 {
                // Means 0.9 down to 0.81, each a little noisy.
                u.record(
                    i,
                    (1.0 / (0.9 - 0.01 * i as f64) - 1.0).sqrt() + 0.01 * (k % 3) as f64,
                );
            }
        }
        assert_eq!(u.evolve().retired, 0);
        // 200 epochs at cost 3 (reward 0.1): its upper bound is below the leader's mean.
        let worst = u.entries[DEFAULT_COUNT - 1].id;
        for _ in 0..200 {
            u.record(DEFAULT_COUNT - 1, 3.0);
        }
        assert_eq!(u.evolve().retired, 1);
        assert!(u.slot_of(worst).is_none());
    }

    #[test]
    fn evolve_spares_unproven_challengers_and_never_resets() {
        let mut p = rated();
        p.evolve();
        let first = p.entries()[p.len() - 1].id;
        let ev = p.evolve(); // the first challenger has no samples yet: it stays
        assert!(p.slot_of(first).is_some());
        assert_eq!(
            p.len(),
            7 + ev.added.is_some() as usize - ev.retired as usize
        );
        for _ in 0..50 {
            let ev = p.evolve();
            assert!(p.len() >= 6 && p.len() <= MAX_STRATEGIES);
            assert!(ev.retired as usize <= p.len());
        }
        // Full of unproven challengers: nothing is added, nothing of the top is lost.
        assert!(p.entries().iter().any(|e| e.id == 1));
    }

    #[test]
    fn ucb1_ranks_by_mean_reward_and_selects_by_bandit() {
        let mut p = pb(Selector::Ucb1);
        for _ in 0..60 {
            let (s, _) = p.select();
            p.record(s, if s == 4 { 0.6 } else { 1.2 });
        }
        assert_eq!(p.leader(), 4);
        let mut n4 = 0;
        for _ in 0..200 {
            let (s, c) = p.select();
            assert_eq!(c, Choice::Bandit);
            if s == 4 {
                n4 += 1;
            }
            p.record(s, if s == 4 { 0.6 } else { 1.2 });
        }
        assert!(n4 > 150, "{n4}");
    }

    #[test]
    fn forget_half_compresses_ratings_and_restarts_warm_up() {
        let mut p = rated();
        let r0 = p.entry(0).elo.rating;
        let m0 = p.entry(0).arm.mean();
        p.forget_half();
        assert!((p.entry(0).elo.rating - (1500.0 + (r0 - 1500.0) / 2.0)).abs() < 1e-9);
        assert!((p.entry(0).arm.mean() - m0).abs() < 1e-9);
        assert_eq!(p.entry(0).arm.pulls, 2);
        for _ in 0..REVEAL_EPOCHS {
            assert_eq!(p.select(), (p.most_generous(), Choice::WarmUp));
            p.record(p.most_generous(), 1.0);
        }
        let mut seen = [false; MAX_STRATEGIES];
        for _ in 0..p.len() {
            let (s, c) = p.select();
            assert_eq!(c, Choice::WarmUp);
            assert!(!seen[s]);
            seen[s] = true;
            p.record(s, 1.0);
        }
    }

    #[test]
    fn adopt_adds_and_replaces_the_worst_when_full() {
        let mut p = rated();
        let worst = p.ranked().last().unwrap().id;
        let mut rng = Rng::new(5);
        let mut added = 0;
        while p.len() < MAX_STRATEGIES {
            let c = mutate(&BALANCED, &mut rng);
            if p.adopt(c, 1, 1500.0).is_some() {
                added += 1;
            }
        }
        assert!(added >= 6);
        let c = loop {
            let c = mutate(&DEFAULTS[1].1, &mut rng);
            if p.find(&c).is_none() {
                break c;
            }
        };
        let s = p.adopt(c, 2, 1700.0).unwrap();
        assert_eq!(p.entry(s).strategy, c);
        assert_eq!(p.len(), MAX_STRATEGIES);
        assert!(p.slot_of(worst).is_none() || p.entry(p.leader()).id != worst);
        assert_eq!(p.adopt(c, 2, 1700.0), Some(s));
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut p = rated();
        p.evolve();
        let mut buf = [0u8; MAX_FILE_SIZE];
        let n = p.encode(&mut buf);
        assert_eq!(n, HEADER_SIZE + p.len() * ENTRY_SIZE + 8);
        let mut q = pb(Selector::Elo);
        q.decode(&buf[..n]).unwrap();
        assert_eq!(q.entries(), p.entries());
        assert_eq!(q.epochs(), p.epochs());
        assert_eq!(q.next_id, p.next_id);
    }

    #[test]
    fn every_corrupt_byte_truncation_and_foreign_file_is_rejected() {
        let p = rated();
        let mut buf = [0u8; MAX_FILE_SIZE];
        let n = p.encode(&mut buf);
        let mut q = pb(Selector::Elo);
        let fresh: Vec<Entry> = q.entries().to_vec();
        for i in 0..n {
            let mut b = buf;
            b[i] ^= 0x10;
            assert!(q.decode(&b[..n]).is_err(), "flip at byte {i}");
        }
        for len in 0..n {
            assert!(q.decode(&buf[..len]).is_err(), "truncated to {len}");
        }
        assert_eq!(q.entries(), &fresh[..], "a rejected file changed nothing");
        let mut b = buf;
        b[0] = b'X';
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadMagic));
        let mut b = buf;
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadVersion));
        let mut b = buf;
        b[16..20].copy_from_slice(&999u32.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadLayout));
        assert_eq!(q.decode(&buf[..n - 1]), Err(FileError::Truncated));
        assert_eq!(q.decode(&buf[..n + 1]), Err(FileError::TooLong));
        let mut b = buf;
        b[HEADER_SIZE + 5] ^= 1;
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadChecksum));
        assert_eq!(
            q.decode(b"#!/bin/sh\necho hello\n"),
            Err(FileError::BadMagic)
        );
        assert_eq!(
            q.decode(&[b'#'; MAX_FILE_SIZE * 2]),
            Err(FileError::BadMagic)
        );
        assert_eq!(q.decode(b"HAKX"), Err(FileError::BadMagic));
        assert_eq!(q.decode(b"HAKMEMP"), Err(FileError::BadMagic));
        assert_eq!(q.decode(b""), Err(FileError::Truncated));
        // A valid checksum over an invalid entry (knob off its ladder).
        let mut b = buf;
        b[HEADER_SIZE + 8..HEADER_SIZE + 16].copy_from_slice(&12345u64.to_le_bytes());
        let sum = fnv1a(&b[..n - 8]);
        b[n - 8..n].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(q.decode(&b[..n]), Err(FileError::BadEntry));
    }

    #[test]
    fn file_round_trip_and_bad_files() {
        let path = temp_path("roundtrip");
        let mut p = rated();
        p.evolve();
        p.save(&path).unwrap();
        let mut q = pb(Selector::Elo);
        q.load(&path).unwrap();
        assert_eq!(q.entries(), p.entries());
        // Saving again replaces the file atomically.
        p.record(0, 0.1);
        p.save(&path).unwrap();
        q.load(&path).unwrap();
        assert_eq!(q.epochs(), p.epochs());
        // Truncated and corrupt files on disk.
        let os_path = String::from_utf8(path[..path.len() - 1].to_vec()).unwrap();
        let mut bytes = std::fs::read(&os_path).unwrap();
        std::fs::write(&os_path, &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(q.load(&path), Err(FileError::Truncated));
        bytes[HEADER_SIZE + 3] ^= 0xff;
        std::fs::write(&os_path, &bytes).unwrap();
        assert_eq!(q.load(&path), Err(FileError::BadChecksum));
        bytes.resize(5000, 0);
        std::fs::write(&os_path, &bytes).unwrap();
        assert_eq!(q.load(&path), Err(FileError::TooLong));
        std::fs::remove_file(&os_path).unwrap();
        assert_eq!(q.load(&path), Err(FileError::Io(libc::ENOENT)));
        assert_eq!(q.load(b"no-nul"), Err(FileError::BadPath));
        assert_eq!(q.save(b"a\0b\0"), Err(FileError::BadPath));
        assert!(matches!(
            p.save(b"/nonexistent-dir/x\0"),
            Err(FileError::Io(_))
        ));
    }

    /// `save` replaces only a playbook (by its magic, even a corrupt one) or an empty file, never
    /// another file or a directory, and leaves no temporary file behind.
    #[test]
    fn save_never_replaces_what_is_not_a_playbook() {
        let path = temp_path("foreign");
        let os_path = String::from_utf8(path[..path.len() - 1].to_vec()).unwrap();
        let p = rated();
        for foreign in [&b"# /etc/services\nhttp 80/tcp\n"[..], b"H", b"HAKMEMP"] {
            std::fs::write(&os_path, foreign).unwrap();
            assert_eq!(p.save(&path), Err(FileError::NotAPlaybook));
            assert_eq!(std::fs::read(&os_path).unwrap(), foreign);
        }
        for ours in [&b""[..], b"HAKMEMPB and then anything"] {
            std::fs::write(&os_path, ours).unwrap();
            p.save(&path).unwrap();
            let mut q = pb(Selector::Elo);
            q.load(&path).unwrap();
            assert_eq!(q.entries(), p.entries());
        }
        std::fs::remove_file(&os_path).unwrap();
        std::fs::create_dir(&os_path).unwrap();
        assert_eq!(p.save(&path), Err(FileError::NotAPlaybook));
        std::fs::remove_dir(&os_path).unwrap();
        let dir = std::path::Path::new(&os_path).parent().unwrap();
        let stem = std::path::Path::new(&os_path).file_name().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&*stem.to_string_lossy())
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
