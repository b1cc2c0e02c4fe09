//! A strategy: one vector of the allocator's workload-dependent knobs, valid when each knob sits on
//! a rung of its ladder (`Knob::ladder`). `mutate` moves one or two knobs one rung; `DEFAULTS` are
//! the built-in candidates. Pure data: the caller applies a strategy to the allocator.

use super::rng::Rng;
use super::score::Mode;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Declares `Knob` (`ALL`, `name`) and `Strategy::get` and `set` from one list of knobs and fields.
macro_rules! knobs {
    ($($knob:ident $field:ident,)*) => {
        /// One tunable: a field of `Strategy`, in field order (that of the playbook file's knob
        /// array). `crate::knobs` holds the live values and says where the allocator reads each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Knob {
            $($knob,)*
        }

        impl Knob {
            pub const ALL: [Knob; KNOB_COUNT] = [$(Knob::$knob,)*];

            pub const fn name(self) -> &'static str {
                match self {
                    $(Knob::$knob => stringify!($field),)*
                }
            }
        }

        impl Strategy {
            pub(crate) fn get(&self, k: Knob) -> u64 {
                match k {
                    $(Knob::$knob => self.$field,)*
                }
            }

            pub(crate) fn set(&mut self, k: Knob, v: u64) {
                match k {
                    $(Knob::$knob => self.$field = v,)*
                }
            }
        }
    };
}

knobs! {
    LargeThreshold large_threshold,
    BigCacheBytes bigcache_bytes,
    MadviseBatch madvise_batch,
    PurgeDelayMs purge_delay_ms,
    CacheCapMultiplier cache_cap_mult,
    RefillBytes refill_bytes,
    WarmSuperSlabs warm_superslabs,
}

/// Number of knobs in a strategy.
pub const KNOB_COUNT: usize = 7;

impl Knob {
    /// The legal values, ascending, where the knob changes what the allocator does; `DEFAULT`'s
    /// among them.
    pub const fn ladder(self) -> &'static [u64] {
        match self {
            Knob::LargeThreshold => &[64 * KIB, 128 * KIB, 256 * KIB],
            Knob::BigCacheBytes => &[0, 16 * MIB, 64 * MIB, 256 * MIB, GIB],
            Knob::MadviseBatch => &[0, MIB, 4 * MIB, 16 * MIB, 64 * MIB],
            Knob::PurgeDelayMs => &[0, 10, 50, 100, 500, 1000, 5000],
            Knob::CacheCapMultiplier => &[1, 2, 4, 8],
            Knob::RefillBytes => &[4 * KIB, 8 * KIB, 16 * KIB, 32 * KIB, 64 * KIB],
            Knob::WarmSuperSlabs => &[0, 1, 2, 4, 8, 16, 32],
        }
    }

    /// The rung of `v` on this knob's ladder, if `v` is legal.
    pub fn rung(self, v: u64) -> Option<usize> {
        self.ladder().iter().position(|&x| x == v)
    }
}

/// A complete knob vector; `is_valid` holds for every strategy the learner hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strategy {
    /// Mid-size requests above this many bytes get their own mapping (and BigCache); at or below
    /// it they come from the mid-size pools. Only the pools' range (64..256 KiB) can move.
    pub large_threshold: u64,
    /// BigCache's budget of freed large blocks kept with their pages, in bytes.
    pub bigcache_bytes: u64,
    /// Dirty bytes of freed memory kept with their pages even past the purge delay; purges only
    /// take what is above it, in one batch (0: every expired byte goes back).
    pub madvise_batch: u64,
    /// How long freed memory keeps its pages, in ms (0: until the next check).
    pub purge_delay_ms: u64,
    /// A thread cache holds this many refill batches of a class before it flushes half.
    pub cache_cap_mult: u64,
    /// Bytes moved from a slab to a thread cache at once (small classes; the block count follows
    /// from the class size).
    pub refill_bytes: u64,
    /// Empty SuperSlabs kept with their pages for reuse, whatever their age.
    pub warm_superslabs: u64,
}

/// In `balanced` mode, BigCache's size and the madvise batch keep at most `DEFAULT`'s value or,
/// if more, what is left below the peak resident size or 1/32 of the resident size (about 6 % for
/// the two): below the peak idle memory costs no peak, above it a strategy would raise it for good.
pub const HEADROOM_SHIFT: u32 = 5;

impl Strategy {
    /// The knobs in `Knob::ALL` order.
    pub(crate) fn knobs(&self) -> [u64; KNOB_COUNT] {
        Knob::ALL.map(|k| self.get(k))
    }

    /// A strategy from knobs in `Knob::ALL` order, unchecked (see `is_valid`).
    pub fn from_knobs(a: &[u64; KNOB_COUNT]) -> Strategy {
        let mut s = BALANCED;
        for (&k, &v) in Knob::ALL.iter().zip(a) {
            s.set(k, v);
        }
        s
    }

    /// True when every knob is on its ladder.
    pub fn is_valid(&self) -> bool {
        Knob::ALL.iter().all(|&k| k.rung(self.get(k)).is_some())
    }

    /// Number of knobs whose values differ.
    pub fn knobs_differing(&self, other: &Strategy) -> usize {
        let differs = |k: &&Knob| self.get(**k) != other.get(**k);
        Knob::ALL.iter().filter(differs).count()
    }

    /// The same strategy with no knob above `ceiling`'s.
    pub fn capped(&self, ceiling: &Strategy) -> Strategy {
        Strategy::from_knobs(&Knob::ALL.map(|k| self.get(k).min(ceiling.get(k))))
    }

    /// The same strategy within the headroom (`HEADROOM_SHIFT`) of a process `resident` bytes
    /// large whose resident size has been up to `peak` bytes.
    pub fn within_headroom(&self, resident: u64, peak: u64) -> Strategy {
        let room = (resident >> HEADROOM_SHIFT).max(peak.saturating_sub(resident));
        let cap = |k: Knob| self.get(k).min(DEFAULT.get(k).max(room));
        Strategy {
            bigcache_bytes: cap(Knob::BigCacheBytes),
            madvise_batch: cap(Knob::MadviseBatch),
            ..*self
        }
    }

    /// Sum over knobs of the distance in rungs (both must be valid).
    pub fn rung_distance(&self, other: &Strategy) -> u32 {
        let rung = |s: &Strategy, k: Knob| k.rung(s.get(k)).unwrap_or(0);
        let d = |&k: &Knob| rung(self, k).abs_diff(rung(other, k)) as u32;
        Knob::ALL.iter().map(d).sum()
    }
}

/// The generator: a challenger that differs from `parent` (valid) in one knob (probability 1/2) or
/// two knobs, each moved one rung up or down (down at the top rung, up at the bottom).
pub fn mutate(parent: &Strategy, rng: &mut Rng) -> Strategy {
    let mut s = *parent;
    let first = rng.below(KNOB_COUNT as u64) as usize;
    let mut second = None;
    if rng.below(2) == 1 {
        let j = rng.below(KNOB_COUNT as u64 - 1) as usize;
        second = Some(if j >= first { j + 1 } else { j });
    }
    for i in [Some(first), second].into_iter().flatten() {
        let k = Knob::ALL[i];
        let l = k.ladder();
        let r = k.rung(s.get(k)).unwrap_or(0);
        let up = r == 0 || (r + 1 < l.len() && rng.below(2) == 1);
        s.set(k, l[if up { r + 1 } else { r - 1 }]);
    }
    s
}

/// The most a strategy may keep in `mode` (`Strategy::capped`): in `lean` mode no more freed
/// memory than `DEFAULT`, so that trying one never raises the peak; elsewhere every rung.
pub fn ceiling(mode: Mode) -> Strategy {
    let top = Strategy::from_knobs(&Knob::ALL.map(|k| *k.ladder().last().unwrap_or(&0)));
    match mode {
        Mode::Fast | Mode::Balanced => top,
        Mode::Lean => Strategy {
            bigcache_bytes: DEFAULT.bigcache_bytes,
            madvise_batch: DEFAULT.madvise_batch,
            purge_delay_ms: DEFAULT.purge_delay_ms,
            warm_superslabs: DEFAULT.warm_superslabs,
            ..top
        },
    }
}

/// A strategy from its knobs: threshold in KiB, BigCache in MiB, batch in MiB, delay in ms,
/// cap multiplier, refill in KiB, warm SuperSlabs.
const fn knobs([thr, cache, batch, delay, cap, refill, warm]: [u64; KNOB_COUNT]) -> Strategy {
    Strategy {
        large_threshold: thr * KIB,
        bigcache_bytes: cache * MIB,
        madvise_batch: batch * MIB,
        purge_delay_ms: delay,
        cache_cap_mult: cap,
        refill_bytes: refill * KIB,
        warm_superslabs: warm,
    }
}

/// The allocator's built-in behaviour (the `config.rs` defaults): what runs unless told otherwise.
pub const DEFAULT: Strategy = knobs([256, 64, 0, 50, 2, 16, 32]);
/// The middle of the road: the default with batched purges and fewer warm SuperSlabs.
pub const BALANCED: Strategy = knobs([256, 64, 4, 100, 2, 16, 8]);
/// Speed first: big caches, long purge delay, deep thread caches.
pub const FAST: Strategy = knobs([256, 1024, 64, 5000, 8, 64, 32]);
/// Footprint first: no caches, immediate purge, shallow thread caches.
pub const LEAN: Strategy = knobs([64, 0, 0, 0, 1, 4, 0]);

/// Number of built-in candidates.
pub const DEFAULT_COUNT: usize = 10;

/// The built-in candidates, with names for the leaderboard and `HAKMEM_STRATEGY`. They differ in
/// three knobs or more each, so that the warm-up samples the space broadly; mutation refines.
pub const DEFAULTS: [(&str, Strategy); DEFAULT_COUNT] = [
    ("default", DEFAULT),
    ("balanced", BALANCED),
    ("fast", FAST),
    ("lean", LEAN),
    ("fast-small", knobs([256, 256, 16, 1000, 4, 32, 16])),
    ("lean-small", knobs([128, 16, 1, 10, 1, 8, 2])),
    ("big-blocks-cached", knobs([64, 1024, 16, 5000, 2, 16, 4])),
    ("small-objects", knobs([256, 16, 4, 100, 8, 64, 16])),
    ("batched-purge", knobs([256, 64, 64, 50, 2, 8, 1])),
    ("mmap-early", knobs([128, 16, 0, 10, 4, 8, 4])),
];

/// The name of `s` if it is a built-in candidate.
pub fn default_name(s: &Strategy) -> Option<&'static str> {
    DEFAULTS.iter().find(|(_, d)| d == s).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_ascend_and_the_candidates_are_valid_distinct_and_round_trip() {
        for &k in &Knob::ALL {
            assert!(k.ladder().windows(2).all(|w| w[0] < w[1]), "{}", k.name());
        }
        for (i, (n, a)) in DEFAULTS.iter().enumerate() {
            assert!(a.is_valid() && default_name(a) == Some(*n), "{n}");
            assert_eq!(Strategy::from_knobs(&a.knobs()), *a);
            for (m, b) in &DEFAULTS[i + 1..] {
                assert!(a.knobs_differing(b) >= 3, "{n} vs {m}");
            }
        }
        let lean = ceiling(Mode::Lean);
        assert_eq!(FAST.capped(&lean).bigcache_bytes, DEFAULT.bigcache_bytes);
        assert_eq!(FAST.capped(&ceiling(Mode::Balanced)), FAST);
    }

    #[test]
    fn headroom_grows_with_the_resident_set_or_up_to_the_peak_and_never_below_the_default() {
        // A small process: `fast` keeps no more than `default`, but its other knobs stay.
        let small = FAST.within_headroom(8 * MIB, 8 * MIB);
        assert_eq!(small.bigcache_bytes, DEFAULT.bigcache_bytes);
        assert_eq!(small.madvise_batch, 256 * KIB);
        assert_eq!((small.purge_delay_ms, small.cache_cap_mult), (5000, 8));
        // 4 GiB resident: 128 MiB of room for each knob.
        let big = FAST.within_headroom(4 * GIB, 4 * GIB);
        assert_eq!(
            (big.bigcache_bytes, big.madvise_batch),
            (128 * MIB, FAST.madvise_batch)
        );
        // The warm SuperSlabs need no cap: the default's are the most there can be.
        assert_eq!(
            Knob::WarmSuperSlabs.ladder().last(),
            Some(&DEFAULT.warm_superslabs)
        );
        // Nothing below the default's values, and a stingy strategy is left alone.
        assert_eq!(DEFAULT.within_headroom(0, 0), DEFAULT);
        assert_eq!(LEAN.within_headroom(0, 0), LEAN);
        // Below an earlier peak, what is left under it: 200 MiB here.
        let below = FAST.within_headroom(100 * MIB, 300 * MIB);
        assert_eq!(
            (below.bigcache_bytes, below.madvise_batch),
            (200 * MIB, 64 * MIB)
        );
    }

    #[test]
    fn mutate_changes_one_or_two_knobs_by_one_rung() {
        let mut rng = Rng::new(42);
        let mut twos = 0;
        for i in 0..2000 {
            let parent = DEFAULTS[i % DEFAULT_COUNT].1;
            let c = mutate(&parent, &mut rng);
            let d = c.knobs_differing(&parent);
            assert!(c.is_valid() && (d == 1 || d == 2), "{d}");
            assert_eq!(c.rung_distance(&parent) as usize, d);
            twos += (d == 2) as u32;
        }
        assert!((800..1200).contains(&twos), "{twos}");
        // The extremes can only move inwards.
        for _ in 0..100 {
            let (l, f) = (mutate(&LEAN, &mut rng), mutate(&FAST, &mut rng));
            assert!(Knob::ALL
                .iter()
                .all(|&k| l.get(k) >= LEAN.get(k) && f.get(k) <= FAST.get(k)));
        }
    }
}
