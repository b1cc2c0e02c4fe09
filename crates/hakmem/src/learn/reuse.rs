//! The epoch's reuse profile, and what another strategy would have lost or saved of it.
//!
//! A "warm reuse" is memory the allocator kept with its pages (a BigCache block, an empty
//! SuperSlab) and handed out again, saving a page fault per page. How long it waited (its age)
//! and how much kept memory was newer than it (its depth: kept memory goes oldest first) decide
//! whether another strategy would have kept it too: not if its depth exceeds that strategy's
//! budget (`bigcache_bytes`, `warm_superslabs`), nor if its age reached that strategy's purge delay
//! while its depth exceeds the madvise batch. A reuse that strategy would have lost costs its
//! pages in faults. The learner uses this to refuse, without running it, a strategy predicted to
//! be catastrophic for the workload at hand (no caches on a large-block loop: hundreds of faults
//! per operation), which no short trial could make cheap. A "cold reuse" (a BigCache block whose
//! pages a purge had taken) is the other way round: what a more generous strategy would have saved.
//! The cache's content at the epoch's end is memory: its warm blocks (`held_big`) are what a
//! switch to a stingier strategy would purge at once (`dropped_pages`): faults where the workload
//! uses that part of the cache, though the reuses of a young cache cannot show it yet
//! (`dropped_busy_pages`), memory given back where it does not. Its purged blocks
//! (`held_cold_big`, still listed with their address space) are what a more generous strategy
//! would still hold warm (`kept_cold_pages`).
//!
//! These are estimates: purges run when the allocator checks, not at the exact delay; a depth is
//! taken when the block is reused, not at its deepest; a SuperSlab counts as all its pages. Buckets
//! follow the knobs' ladders, so each bucket is on one side of every rung: ages by the purge-delay
//! ladder, BigCache depths by the union of the BigCache and batch ladders, SuperSlab depths by the
//! warm-SuperSlab ladder. Pure data and arithmetic.

use super::strategy::Strategy;

/// Age buckets: [0, 10), [10, 50), ..., [5000, inf) ms (the purge-delay ladder's rungs).
pub const AGE_LO_MS: [u64; 7] = [0, 10, 50, 100, 500, 1000, 5000];
/// BigCache depth buckets: depth <= each bound (the last is "more").
pub const BIG_DEPTH: [u64; 7] = [
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
    1 << 30,
    u64::MAX,
];
/// SuperSlab depth buckets, in SuperSlabs: depth <= each bound.
pub const SS_DEPTH: [u64; 7] = [1, 2, 4, 8, 16, 32, u64::MAX];
/// Bytes of one SuperSlab (the batch knob is in bytes; SuperSlabs count whole).
pub const SS_BYTES: u64 = 2 << 20;
/// Bytes per page.
pub const PAGE: u64 = 4096;

/// Pages reused in one epoch, by [age bucket][depth bucket]: warm (BigCache blocks, empty
/// SuperSlabs) and cold (BigCache blocks whose pages a purge had taken: each page faulted again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reuse {
    pub big: [[u64; 7]; 7],
    pub superslab: [[u64; 7]; 7],
    pub cold_big: [[u64; 7]; 7],
    /// Page faults (one per huge page where huge pages back the block) of the cold reuses whose
    /// purge happened in the previous epoch: that epoch's strategy gave them back, this epoch
    /// faulted them in again.
    pub cold_from_last_epoch: u64,
    /// Pages of the warm BigCache blocks held at the epoch's end, by age and depth: not reuses,
    /// the cache's content, which a switch to a stingier strategy would purge at once.
    pub held_big: [[u64; 7]; 7],
    /// Pages of the purged BigCache blocks still listed at the epoch's end, by age (since they
    /// were freed) and depth (every listed block counts, as for a cold reuse): memory a more
    /// generous strategy would still hold.
    pub held_cold_big: [[u64; 7]; 7],
}

/// The age bucket of `age_ms`.
pub fn age_bucket(age_ms: u64) -> usize {
    AGE_LO_MS.iter().rposition(|&lo| age_ms >= lo).unwrap_or(0)
}

/// The bucket of `depth` in `bounds`.
pub fn depth_bucket(depth: u64, bounds: &[u64; 7]) -> usize {
    bounds.iter().position(|&b| depth <= b).unwrap_or(6)
}

impl Reuse {
    pub const ZERO: Reuse = Reuse {
        big: [[0; 7]; 7],
        superslab: [[0; 7]; 7],
        cold_big: [[0; 7]; 7],
        cold_from_last_epoch: 0,
        held_big: [[0; 7]; 7],
        held_cold_big: [[0; 7]; 7],
    };

    /// Pages reused warm in all.
    pub fn pages(&self) -> u64 {
        self.big.iter().chain(&self.superslab).flatten().sum()
    }

    /// Pages of this epoch's cold BigCache reuses that strategy `s` would have kept warm (each a
    /// page fault saved).
    pub fn saved_pages(&self, s: &Strategy) -> u64 {
        big_pages(&self.cold_big, s, false, ALL)
    }

    /// Pages of the held BigCache blocks (`held_big`) that a switch to strategy `s` would purge
    /// at once: those deeper than its budget, and those older than its purge delay deeper than
    /// its batch.
    pub fn dropped_pages(&self, s: &Strategy) -> u64 {
        big_pages(&self.held_big, s, true, ALL)
    }

    /// Pages of the purged BigCache blocks still listed (`held_cold_big`) that strategy `s` would
    /// still hold warm: those within its budget, and younger than its purge delay or within its
    /// batch. Memory `s` would cost; faults it would save show once the blocks are reused cold.
    pub fn kept_cold_pages(&self, s: &Strategy) -> u64 {
        big_pages(&self.held_cold_big, s, false, ALL)
    }

    /// Of the held BigCache pages a switch to strategy `s` would purge at once (`dropped_pages`),
    /// how many the workload is likely to want again soon: those in the part of the cache it is
    /// using (no deeper than its deepest warm reuse this epoch), times how busy that part is (the
    /// epoch's warm BigCache reuses over the pages held there, at most 1). A cache the workload
    /// takes from all the time (large-block churn) loses to a purge what it would have handed out
    /// next, though the reuses of a young cache show no block older than the cache. Blocks below
    /// every reuse are idle (a memory crest kept through a quiet trough, a 512 KiB block reused
    /// again and again on top of it): dropping them costs no fault.
    pub fn dropped_busy_pages(&self, s: &Strategy) -> f64 {
        let Some(reach) = (0..BIG_DEPTH.len())
            .rev()
            .find(|&d| self.big.iter().any(|r| r[d] > 0))
        else {
            return 0.0;
        };
        let held: u64 = self
            .held_big
            .iter()
            .map(|r| r[..=reach].iter().sum::<u64>())
            .sum();
        let dropped = big_pages(&self.held_big, s, true, reach);
        if held == 0 {
            return 0.0;
        }
        let reused: u64 = self.big.iter().flatten().sum();
        dropped as f64 * (reused as f64 / held as f64).min(1.0)
    }

    /// Pages of this epoch's warm reuses that strategy `s` would have returned to the OS first
    /// (each a page fault to touch again).
    pub fn lost_pages(&self, s: &Strategy) -> u64 {
        let mut lost = big_pages(&self.big, s, true, ALL);
        for (a, &lo) in AGE_LO_MS.iter().enumerate() {
            let expired = lo >= s.purge_delay_ms;
            for (d, &ss) in SS_DEPTH.iter().enumerate() {
                if ss > s.warm_superslabs
                    || (expired && ss.saturating_mul(SS_BYTES) > s.madvise_batch)
                {
                    lost += self.superslab[a][d];
                }
            }
        }
        lost
    }
}

/// `big_pages` over every depth bucket.
const ALL: usize = BIG_DEPTH.len() - 1;

/// The pages of a BigCache table, by [age bucket][depth bucket], in the buckets `s` would purge
/// (`lost`) or keep (`!lost`), down to depth bucket `deepest`.
fn big_pages(table: &[[u64; 7]; 7], s: &Strategy, lost: bool, deepest: usize) -> u64 {
    let mut pages = 0;
    for (a, &lo) in AGE_LO_MS.iter().enumerate() {
        for (d, &depth) in BIG_DEPTH.iter().enumerate().take(deepest + 1) {
            if big_lost(s, lo, depth) == lost {
                pages += table[a][d];
            }
        }
    }
    pages
}

/// Whether `s` purges a BigCache block `lo` ms old (the age bucket's floor) at `depth` before
/// it is taken again.
fn big_lost(s: &Strategy, lo: u64, depth: u64) -> bool {
    depth > s.bigcache_bytes || (lo >= s.purge_delay_ms && depth > s.madvise_batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::{DEFAULT, DEFAULTS, FAST, LEAN};

    #[test]
    fn buckets_follow_the_ladders() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(9), 0);
        assert_eq!(age_bucket(10), 1);
        assert_eq!(age_bucket(4999), 5);
        assert_eq!(age_bucket(u64::MAX), 6);
        assert_eq!(depth_bucket(0, &BIG_DEPTH), 0);
        assert_eq!(depth_bucket(2 << 20, &BIG_DEPTH), 1);
        assert_eq!(depth_bucket(1 << 30, &BIG_DEPTH), 5);
        assert_eq!(depth_bucket((1 << 30) + 1, &BIG_DEPTH), 6);
        assert_eq!(depth_bucket(1, &SS_DEPTH), 0);
        assert_eq!(depth_bucket(3, &SS_DEPTH), 2);
        assert_eq!(depth_bucket(1000, &SS_DEPTH), 6);
    }

    #[test]
    fn a_large_block_loop_is_lost_only_without_a_cache() {
        // The seed VM loop: one 2 MiB block freed and taken again at once, 100 times.
        let mut r = Reuse::ZERO;
        r.big[age_bucket(0)][depth_bucket((2 << 20) + 4096, &BIG_DEPTH)] += 100 * 513;
        assert_eq!(r.pages(), 100 * 513);
        assert_eq!(r.lost_pages(&LEAN), 100 * 513);
        for (name, s) in DEFAULTS.iter().filter(|(n, _)| *n != "lean") {
            assert_eq!(r.lost_pages(s), 0, "{name}");
        }
    }

    #[test]
    fn old_reuses_are_lost_to_a_short_delay_unless_the_batch_keeps_them() {
        // A 3 MiB block reused after 200 ms, and an empty SuperSlab reused after 20 ms.
        let mut r = Reuse::ZERO;
        r.big[age_bucket(200)][depth_bucket(3 << 20, &BIG_DEPTH)] = 768;
        r.superslab[age_bucket(20)][depth_bucket(1, &SS_DEPTH)] = 512;
        // default: 50 ms delay, no batch: both expired... the SuperSlab one is 20 ms old: kept.
        assert_eq!(r.lost_pages(&DEFAULT), 768);
        // fast: 5 s delay keeps both.
        assert_eq!(r.lost_pages(&FAST), 0);
        let mut s = DEFAULT;
        s.madvise_batch = 4 << 20;
        assert_eq!(r.lost_pages(&s), 0, "the batch keeps 4 MiB past the delay");
        s.purge_delay_ms = 10;
        s.madvise_batch = 0;
        assert_eq!(r.lost_pages(&s), 768 + 512);
        s.warm_superslabs = 0;
        s.purge_delay_ms = 5000;
        assert_eq!(r.lost_pages(&s), 512, "no warm SuperSlab kept at all");
    }

    #[test]
    fn a_switch_drops_what_the_new_strategy_would_not_hold() {
        // A cache filled by `fast`: 32 MiB at most 40 ms old on top, 64 MiB 200 ms old below.
        let mut r = Reuse::ZERO;
        r.held_big[age_bucket(40)][depth_bucket(32 << 20, &BIG_DEPTH)] = 8192;
        r.held_big[age_bucket(200)][depth_bucket(96 << 20, &BIG_DEPTH)] = 16384;
        assert_eq!(r.dropped_pages(&FAST), 0);
        // default: 64 MiB budget, 50 ms delay and no batch: the old 64 MiB go.
        assert_eq!(r.dropped_pages(&DEFAULT), 16384);
        assert_eq!(r.dropped_pages(&LEAN), 8192 + 16384);
        // Nothing reused: nothing to lose by the drop.
        assert_eq!(r.dropped_busy_pages(&LEAN), 0.0);
        // Reuses only on top (a small block again and again): the cache below is idle.
        r.big[age_bucket(0)][0] = 100_000;
        assert_eq!(r.dropped_busy_pages(&LEAN), 0.0);
        // Reuses down to 32 MiB, a quarter of what is held there: a quarter of the drop there.
        r.big[age_bucket(0)][depth_bucket(32 << 20, &BIG_DEPTH)] = 2048;
        r.big[age_bucket(0)][0] = 0;
        assert_eq!(r.dropped_busy_pages(&DEFAULT), 0.0);
        assert_eq!(r.dropped_busy_pages(&LEAN), 2048.0);
        // Down to 96 MiB: the whole cache is in use.
        r.big[age_bucket(0)][depth_bucket(96 << 20, &BIG_DEPTH)] = 4096;
        assert_eq!(r.dropped_busy_pages(&DEFAULT), 16384.0 * 0.25);
        assert_eq!(r.dropped_busy_pages(&LEAN), 24576.0 * 0.25);
        r.big[age_bucket(0)][depth_bucket(96 << 20, &BIG_DEPTH)] = 100_000;
        assert_eq!(r.dropped_busy_pages(&DEFAULT), 16384.0);
        assert_eq!(r.dropped_busy_pages(&FAST), 0.0);
    }

    #[test]
    fn purged_blocks_still_listed_are_what_a_more_generous_strategy_would_hold() {
        // A crest's blocks purged by lean-small: 8 MiB freed 30 ms ago, 32 MiB 300 ms ago below.
        let mut r = Reuse::ZERO;
        r.held_cold_big[age_bucket(30)][depth_bucket(8 << 20, &BIG_DEPTH)] = 2048;
        r.held_cold_big[age_bucket(300)][depth_bucket(40 << 20, &BIG_DEPTH)] = 8192;
        assert_eq!(r.kept_cold_pages(&FAST), 2048 + 8192);
        assert_eq!(r.kept_cold_pages(&LEAN), 0);
        // default: 50 ms delay, no batch: the young 8 MiB only.
        assert_eq!(r.kept_cold_pages(&DEFAULT), 2048);
        // A 16 MiB budget keeps nothing below 16 MiB, however long its delay.
        let mut s = FAST;
        s.bigcache_bytes = 16 << 20;
        assert_eq!(r.kept_cold_pages(&s), 2048);
        // The batch keeps the newest 16 MiB past any delay.
        let mut s = LEAN;
        s.bigcache_bytes = 64 << 20;
        s.madvise_batch = 16 << 20;
        assert_eq!(r.kept_cold_pages(&s), 2048);
        // Warm blocks are not purged ones.
        assert_eq!(r.dropped_pages(&LEAN), 0);
    }

    #[test]
    fn cold_reuses_are_what_a_more_generous_strategy_saves() {
        // 2 MiB blocks purged by default's 50 ms delay and reused cold after 200 ms.
        let mut r = Reuse::ZERO;
        r.cold_big[age_bucket(200)][depth_bucket(8 << 20, &BIG_DEPTH)] = 2048;
        assert_eq!(r.saved_pages(&DEFAULT), 0);
        assert_eq!(r.saved_pages(&LEAN), 0);
        assert_eq!(r.saved_pages(&FAST), 2048);
        assert_eq!(r.lost_pages(&FAST), 0);
    }
}
