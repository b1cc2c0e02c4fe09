//! The live values of the workload-dependent knobs (`learn::Knob`), read by the slow paths.
//!
//! One relaxed atomic per knob, and per class the refill batch and cache cap that two of them
//! set (`refill_batch`, `cache_cap`), worked out whenever a strategy is applied. They start from
//! the fixed strategy (`HAKMEM_STRATEGY`, else the built-in `default`, with the
//! `HAKMEM_PURGE_DELAY_MS` / `_SS_WARM` / `_BIGCACHE_MB` overrides applied) and, with learning on,
//! `tuning.rs` stores the strategy of each new epoch. Nothing on the fast paths reads them. Where
//! each knob acts:
//! - `large_threshold`: `lib.rs`, on a thread-cache miss of a mid-size class;
//! - `bigcache_bytes`: `bigcache.rs`, the warm budget (when above 0, at least half the large
//!   blocks in use that it could keep);
//! - `madvise_batch`: `bigcache.rs` and `superslab.rs`, the dirty bytes kept past the delay;
//! - `purge_delay_ms`: `bigcache.rs`, `superslab.rs`, `orphans.rs` and `purge.rs` (how often
//!   purges run); a fifth of it sets how often `heap.rs` runs its mid rounds (`mid_round_ms`);
//! - `cache_cap_mult`, `refill_bytes`: `heap.rs` (`Heap::refill`, `Heap::flush`);
//! - `warm_superslabs`: `superslab.rs`.

use crate::learn::Strategy;
use crate::size_class::{NUM_CLASSES, NUM_SMALL_CLASSES};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

static LARGE_THRESHOLD: AtomicU64 = AtomicU64::new(256 << 10);
static BIGCACHE_BYTES: AtomicU64 = AtomicU64::new(64 << 20);
static MADVISE_BATCH: AtomicU64 = AtomicU64::new(0);
static PURGE_DELAY_MS: AtomicU64 = AtomicU64::new(50);
static CACHE_CAP_MULT: AtomicU64 = AtomicU64::new(DEFAULT_MULT);
static REFILL_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_REFILL);
static WARM_SUPERSLABS: AtomicU64 = AtomicU64::new(32);

/// Per class, the refill batch and the bin's starting cap (`refill_batch`, `cache_cap`) at the
/// live `refill_bytes` and `cache_cap_mult`, worked out whenever those change: every new thread's
/// heap reads all the caps, and every refill a batch and a cap, which would otherwise take two
/// divisions each (worked out at each set-up, they cost about 1,500 instructions a thread).
static BATCHES: [AtomicU32; NUM_CLASSES] = class_table(DEFAULT_REFILL, DEFAULT_MULT, false);
static CAPS: [AtomicU32; NUM_CLASSES] = class_table(DEFAULT_REFILL, DEFAULT_MULT, true);
const DEFAULT_REFILL: u64 = crate::learn::strategy::DEFAULT.refill_bytes;
const DEFAULT_MULT: u64 = crate::learn::strategy::DEFAULT.cache_cap_mult;

/// `refill_batch` (or with `caps`, `cache_cap`) of every class at `refill_bytes` and
/// `cache_cap_mult` (both at least 1).
const fn class_table(
    refill_bytes: u64,
    cache_cap_mult: u64,
    caps: bool,
) -> [AtomicU32; NUM_CLASSES] {
    let mut t = [const { AtomicU32::new(0) }; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        let size = crate::size_class::compute_class_size(c) as u64;
        let batch = if c < NUM_SMALL_CLASSES {
            clamp(refill_bytes / size, 8, 128)
        } else {
            clamp(8 * refill_bytes / size, 1, 8)
        };
        let value = if caps {
            // A batch of classes up to 1 KiB counts as at least 32 blocks (see `cache_cap`).
            let counted = max(batch, min(32 * 1024 / size, 32));
            max(
                min(cache_cap_mult.saturating_mul(counted), u32::MAX as u64),
                2,
            )
        } else {
            batch
        };
        t[c] = AtomicU32::new(value as u32);
        c += 1;
    }
    t
}

const fn min(a: u64, b: u64) -> u64 {
    if a < b {
        a
    } else {
        b
    }
}

const fn max(a: u64, b: u64) -> u64 {
    if a > b {
        a
    } else {
        b
    }
}

const fn clamp(x: u64, lo: u64, hi: u64) -> u64 {
    max(min(x, hi), lo)
}

/// Makes `s` the live strategy (each knob is stored separately; a reader may briefly see a mix
/// of the old and the new, which is also a valid configuration).
pub fn apply(s: &Strategy) {
    LARGE_THRESHOLD.store(s.large_threshold, Ordering::Relaxed);
    BIGCACHE_BYTES.store(s.bigcache_bytes, Ordering::Relaxed);
    MADVISE_BATCH.store(s.madvise_batch, Ordering::Relaxed);
    PURGE_DELAY_MS.store(s.purge_delay_ms, Ordering::Relaxed);
    CACHE_CAP_MULT.store(s.cache_cap_mult.max(1), Ordering::Relaxed);
    REFILL_BYTES.store(s.refill_bytes.max(1), Ordering::Relaxed);
    WARM_SUPERSLABS.store(s.warm_superslabs, Ordering::Relaxed);
    let (bytes, mult) = (s.refill_bytes.max(1), s.cache_cap_mult.max(1));
    for (table, caps) in [(&BATCHES, false), (&CAPS, true)] {
        for (live, value) in table.iter().zip(class_table(bytes, mult, caps)) {
            live.store(value.into_inner(), Ordering::Relaxed);
        }
    }
}

/// The live strategy.
pub fn live() -> Strategy {
    Strategy {
        large_threshold: large_threshold() as u64,
        bigcache_bytes: bigcache_bytes() as u64,
        madvise_batch: madvise_batch() as u64,
        purge_delay_ms: purge_delay_ms(),
        cache_cap_mult: CACHE_CAP_MULT.load(Ordering::Relaxed),
        refill_bytes: REFILL_BYTES.load(Ordering::Relaxed),
        warm_superslabs: warm_superslabs() as u64,
    }
}

pub fn large_threshold() -> usize {
    LARGE_THRESHOLD.load(Ordering::Relaxed) as usize
}

pub fn bigcache_bytes() -> usize {
    BIGCACHE_BYTES.load(Ordering::Relaxed) as usize
}

pub fn madvise_batch() -> usize {
    MADVISE_BATCH.load(Ordering::Relaxed) as usize
}

pub fn purge_delay_ms() -> u64 {
    PURGE_DELAY_MS.load(Ordering::Relaxed)
}

/// How often a heap runs its round over its mid slabs' idle free blocks (ms): a fifth of the
/// purge delay (rounded up; 0 for no delay), so a block free at two rounds in a row gives back its
/// pages after one to two fifths of the delay. A mid block serves only its own class, in a slab
/// that is seldom empty as a whole, so its pages are kept less long than those of free slabs and
/// cached blocks, which serve any class or size: cc1 compiling Lua's lvm.c peaked at 79.7 MiB with
/// rounds every delay (median of 22 runs), 75.4 MiB with this (34 runs, 71.9-77.1; mimalloc 2.0.9
/// 73.3 MiB), for 19,600 page faults instead of 15,900. At the default delay a round (10 ms) is
/// what a pause counts for on the allocator's clock (`clock.rs`), so the first mid refill or flush
/// after a pause runs one.
pub fn mid_round_ms() -> u64 {
    purge_delay_ms().div_ceil(5)
}

pub fn warm_superslabs() -> usize {
    WARM_SUPERSLABS.load(Ordering::Relaxed) as usize
}

/// Blocks moved from a slab to a thread cache at once: `refill_bytes` worth for small classes
/// (8 to 128 blocks), eight times that for mid classes (1 to 8 blocks).
#[inline]
pub fn refill_batch(c: usize) -> u32 {
    BATCHES[c].load(Ordering::Relaxed)
}

/// Most blocks a thread cache holds for class `c` before it flushes half back to their slabs:
/// `cache_cap_mult` refill batches, counting a batch of classes up to 1 KiB as at least 32 blocks
/// (32 KiB at 1 KiB), so that a program freeing a few dozen such blocks at once does not flush.
/// This is a bin's starting cap: a heap grows it for a class that flushes and refills
/// (`heap::grown_cap`).
#[inline]
pub fn cache_cap(c: usize) -> u32 {
    CAPS[c].load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::DEFAULT;
    use crate::size_class::NUM_CLASSES;

    #[test]
    fn the_built_in_values_are_the_default_strategy_and_caches_hold_a_batch() {
        let _g = crate::tests::serial();
        apply(&DEFAULT);
        assert_eq!(live(), DEFAULT);
        for c in 0..NUM_CLASSES {
            assert!(refill_batch(c) >= 1);
            assert!(cache_cap(c) >= refill_batch(c));
        }
        assert_eq!(refill_batch(0), 128);
        assert_eq!(refill_batch(crate::size_class::class_of(1024)), 16);
        assert_eq!(refill_batch(NUM_CLASSES - 1), 1);
    }

    #[test]
    fn the_batches_and_caps_follow_every_strategy_applied() {
        let _g = crate::tests::serial();
        for (name, s) in crate::learn::strategy::DEFAULTS {
            apply(&s);
            for c in 0..NUM_CLASSES {
                let size = crate::size_class::class_size(c) as u64;
                let batch = if crate::size_class::is_small(c) {
                    (s.refill_bytes / size).clamp(8, 128)
                } else {
                    (8 * s.refill_bytes / size).clamp(1, 8)
                };
                let cap = (s.cache_cap_mult * batch.max((32 * 1024 / size).min(32))).max(2);
                assert_eq!(
                    (refill_batch(c), cache_cap(c)),
                    (batch as u32, cap as u32),
                    "{name} {c}"
                );
            }
        }
        apply(&DEFAULT);
    }
}
