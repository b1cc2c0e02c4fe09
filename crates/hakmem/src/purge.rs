//! When freed memory goes back to the OS: the purge deadline shared by every thread.
//!
//! Freed memory keeps its pages for the purge delay (`knobs::purge_delay_ms`), so a program that
//! frees and allocates again does not fault them back in. The delay runs on the allocator's clock
//! (`clock.rs`), on which a pause between the slow paths' reads counts 10 ms at most: what a
//! program freed before it slept goes back only if it stays unused once the program runs again.
//! The slow paths call `purge_if_due` (large blocks and thread exits every time, a heap every 8th
//! refill or flush, a thread every 64th free into another thread's slabs), which at most every
//! half delay lets one of them reap the orphans other threads emptied (`orphans.rs`), purge the
//! idle free blocks of orphaned mid slabs, and `run` a purge: SuperSlabs (`superslab.rs`) and
//! BigCache (`bigcache.rs`) return the pages of whatever has been free longer than the delay. A
//! program that makes no allocator calls at all keeps what it freed until it runs again (or calls
//! `malloc_trim`, which returns every cached region: `release_all`).

use crate::clock;
use core::sync::atomic::{AtomicU64, Ordering};

/// When the next purge is due (ms, `clock::now_ms`).
static NEXT_PURGE_MS: AtomicU64 = AtomicU64::new(0);

/// Whether a purge is due (at most every half delay); true for one caller, which then runs it.
pub fn due() -> bool {
    let now = clock::now_ms();
    let due = NEXT_PURGE_MS.load(Ordering::Relaxed);
    if now < due {
        return false;
    }
    let next = now + (crate::knobs::purge_delay_ms() / 2).max(1);
    NEXT_PURGE_MS
        .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// Returns every cached region to the OS at once: BigCache's large blocks and the empty
/// SuperSlabs (a mapping failed, or `malloc_trim`).
pub fn release_all() {
    crate::bigcache::clear();
    crate::superslab::release_empty();
}

/// Returns the pages of freed memory whose purge delay is over.
pub fn run() {
    crate::superslab::purge_expired();
    crate::bigcache::purge_expired();
}

/// Returns the pages of memory idle past the purge delay, if a purge is due, and then
/// the orphaned slabs that other threads' frees have emptied and the pages of orphaned mid slabs'
/// idle free blocks, so memory freed on behalf of exited threads goes back too. Called from the
/// slow paths (see the module header).
pub fn purge_if_due() {
    if due() {
        crate::orphans::reap();
        crate::orphans::purge_idle_mid_blocks();
        run();
    }
}
