//! Which strategies would have lost the epoch's BigCache reuses, without running them. BigCache
//! reports each warm block it hands out with its age and depth (the warm bytes freed after it, and
//! its own): a strategy would have purged it past its purge delay (deeper than its madvise batch)
//! or evicted it deeper than its BigCache size, and each page would fault again. Ages and depths
//! are bucketed on those knobs' ladders, so a loss is exact but for the batch (a bucket counts
//! only when all of it is past the batch).

use super::strategy::{Knob, Strategy};

const AGES: usize = 8;
const DEPTHS: usize = 6;

/// Pages reused warm in an epoch, by [age bucket][depth bucket].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reuse {
    pub pages: [[u64; DEPTHS]; AGES],
}

/// The first rung of `k`'s ladder at or above `v` (the ladder's length if none).
fn bucket(k: Knob, v: u64) -> usize {
    k.ladder().partition_point(|&x| x < v)
}

/// The bucket (age, depth) of a reuse after `age_ms`, `depth` bytes deep.
pub fn cell(age_ms: u64, depth: u64) -> (usize, usize) {
    (
        bucket(Knob::PurgeDelayMs, age_ms),
        bucket(Knob::BigCacheBytes, depth),
    )
}

impl Reuse {
    /// The pages of this epoch's reuses that `s` would have lost.
    pub fn lost_pages(&self, s: &Strategy) -> u64 {
        let delay = bucket(Knob::PurgeDelayMs, s.purge_delay_ms);
        let budget = bucket(Knob::BigCacheBytes, s.bigcache_bytes);
        let mut lost = 0;
        for (a, row) in self.pages.iter().enumerate() {
            for (d, &pages) in row.iter().enumerate() {
                // Every depth in bucket d is above the rung below it.
                let shallowest = match d {
                    0 => 0,
                    _ => Knob::BigCacheBytes.ladder()[d - 1] + 1,
                };
                let expired = a > delay && shallowest > s.madvise_batch;
                if d > budget || expired {
                    lost = pages.saturating_add(lost);
                }
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::strategy::{DEFAULT, FAST, LEAN};

    #[test]
    fn a_strategy_loses_what_waited_longer_or_lay_deeper_than_it_keeps() {
        let mut r = Reuse::default();
        let (a, d) = cell(0, 2 << 20);
        r.pages[a][d] = 513; // the VM loop: a 2 MiB block taken back at once
        assert_eq!((r.lost_pages(&DEFAULT), r.lost_pages(&FAST)), (0, 0));
        assert_eq!(r.lost_pages(&LEAN), 513);
        let (a, d) = cell(300, 100 << 20); // 300 ms old, 100 MiB deep
        r.pages[a][d] = 1000;
        assert_eq!((r.lost_pages(&DEFAULT), r.lost_pages(&FAST)), (1000, 0));
        let batched = Strategy {
            madvise_batch: 64 << 20,
            bigcache_bytes: 1 << 30,
            ..DEFAULT
        };
        assert_eq!(r.lost_pages(&batched), 1000, "deeper than the batch");
        r.pages[a][d] = 0;
        let (a, d) = cell(300, 8 << 20);
        r.pages[a][d] = 7;
        assert_eq!(r.lost_pages(&DEFAULT), 7);
        // Within the batch, or maybe: a bucket counts only when all of it is past the batch.
        assert_eq!(
            r.lost_pages(&Strategy {
                madvise_batch: 16 << 20,
                ..DEFAULT
            }),
            0
        );
        assert_eq!(cell(6000, 2 << 30), (7, 5));
    }

    #[test]
    fn a_reuse_reported_one_byte_deep_is_lost_only_to_no_cache_or_its_age() {
        // BigCache reports a reuse within its share of the blocks in use 1 byte deep.
        let mut r = Reuse::default();
        let (a, d) = cell(0, 1);
        r.pages[a][d] = 100;
        assert_eq!((r.lost_pages(&DEFAULT), r.lost_pages(&LEAN)), (0, 100));
        let (a, d) = cell(300, 1);
        r.pages[a][d] = 10;
        assert_eq!((r.lost_pages(&DEFAULT), r.lost_pages(&FAST)), (10, 0));
    }
}
