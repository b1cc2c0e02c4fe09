//! The clock the purge delay runs on: time while the program uses the allocator.
//!
//! Freed memory keeps its pages for the purge delay (`knobs::purge_delay_ms`, `purge.rs`), so
//! that a program which frees and allocates again does not fault them back in. On a wall clock,
//! a program that frees memory, sleeps or waits a while, and wakes up to do the same work again
//! would find that memory past its delay at its first call, have its pages returned, and fault
//! them straight back in. rptest, which frees everything and sleeps about a second between
//! bursts, faulted in twice snmalloc's pages at the same peak. On this clock a gap between two
//! reads longer than `MAX_GAP_MS` counts as `MAX_GAP_MS`: the delay counts the time the program
//! runs, and what it freed before a pause goes back only if it stays unused while it runs again
//! (each pause counts a little, so memory goes back across a series of short runs too). The
//! heaps' rounds over their mid slabs' idle blocks come every fifth of the delay
//! (`knobs::mid_round_ms`), at the default delay as often as a pause counts: their first after a
//! pause comes at once.
//!
//! The clock is read on the slow paths only. One thread at a time moves it; a thread reading it
//! meanwhile does not wait but reads it as at the latest read, or behind by the gap being
//! accounted, never ahead: a release stamped then counts as older, a purge may come early, and
//! no deadline lands beyond the clock (which, with pauses counting 10 ms, it could take hours of
//! running to reach).

use crate::os;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The most a pause between two reads of the clock counts for (ms). Above the coarse clock's
/// resolution (4 ms at 250 Hz), which a busy program's reads see as gaps.
const MAX_GAP_MS: u64 = 10;

/// A clock that skips the pauses between its reads.
struct Clock {
    /// The wall time of the latest read (ms, `os::now_ms`).
    last_wall_ms: AtomicU64,
    /// The wall time not counted: the sum of the gaps' excess over `MAX_GAP_MS`.
    skipped_ms: AtomicU64,
    /// Held by the thread moving the clock; the others read it without waiting.
    moving: AtomicBool,
}

impl Clock {
    const fn new() -> Clock {
        Clock {
            last_wall_ms: AtomicU64::new(0),
            skipped_ms: AtomicU64::new(0),
            moving: AtomicBool::new(false),
        }
    }

    /// The clock read at wall time `wall`.
    fn read(&self, wall: u64) -> u64 {
        // Not later than the latest read (the coarse clock moves every few ms), or another
        // thread is moving it: as at the latest read. The latest wall time first, then what was
        // skipped up to it (or later), so the reading is not ahead of the clock.
        let latest = self.last_wall_ms.load(Ordering::Acquire);
        if wall <= latest
            || self
                .moving
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return latest.saturating_sub(self.skipped_ms.load(Ordering::Relaxed));
        }
        let last = self.last_wall_ms.load(Ordering::Relaxed);
        let mut skipped = self.skipped_ms.load(Ordering::Relaxed);
        if wall > last {
            if last != 0 && wall - last > MAX_GAP_MS {
                skipped += wall - last - MAX_GAP_MS;
                self.skipped_ms.store(skipped, Ordering::Relaxed);
            }
            // After the skip, so a reader that sees this wall time sees the skip too.
            self.last_wall_ms.store(wall, Ordering::Release);
        }
        self.moving.store(false, Ordering::Release);
        wall.max(last).saturating_sub(skipped)
    }
}

static CLOCK: Clock = Clock::new();

/// Milliseconds of the program's time using the allocator: the wall clock less the pauses'
/// excess over `MAX_GAP_MS`. Never ahead, as the module header says.
pub fn now_ms() -> u64 {
    CLOCK.read(os::now_ms())
}

/// In a child after fork: the thread that was moving the clock is gone.
pub fn reset_after_fork() {
    CLOCK.moving.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_count_at_most_the_longest_gap() {
        let c = Clock::new();
        let t0 = c.read(1_000_000);
        // Busy: reads a few ms apart count in full.
        assert_eq!(c.read(1_000_004) - t0, 4);
        assert_eq!(c.read(1_000_008) - t0, 8);
        // A 2 s pause counts MAX_GAP_MS.
        assert_eq!(c.read(1_002_008) - t0, 8 + MAX_GAP_MS);
        // Busy again; a read behind the latest (another thread's) reads as the latest.
        assert_eq!(c.read(1_002_012) - t0, 12 + MAX_GAP_MS);
        assert_eq!(c.read(1_002_010) - t0, 12 + MAX_GAP_MS);
        // A series of short runs between pauses: each pause counts MAX_GAP_MS.
        let t1 = c.read(1_002_012);
        for i in 1..=5 {
            c.read(1_002_012 + i * 1000);
        }
        assert_eq!(c.read(1_007_012) - t1, 5 * MAX_GAP_MS);
        // While another thread moves it, a read after a pause is not ahead: as at the latest.
        let t2 = c.read(1_007_012);
        c.moving.store(true, Ordering::Relaxed);
        assert_eq!(c.read(1_107_012), t2);
        c.moving.store(false, Ordering::Relaxed);
        assert_eq!(c.read(1_107_012), t2 + MAX_GAP_MS);
    }
}
