//! Counters of what the allocator's slow paths did, for `hak_stats_get`, `HAKMEM_STATS=1` and the
//! benchmark. Nothing on the fast paths is counted (a counter there cost the original 4.8x).
//!
//! Per-heap counters (refills, flushes, remote frees) have one writer each, the heap's thread, and
//! are summed over every heap ever made when read; the rest are global atomics bumped on paths
//! that already take a lock or make a system call.

use crate::text::Text;
use core::sync::atomic::{AtomicU64, Ordering};

/// Counters kept in each heap; written only by the heap's thread.
#[derive(Default)]
pub struct HeapCounters {
    pub refills: AtomicU64,
    pub flushes: AtomicU64,
    pub remote_frees: AtomicU64,
}

/// Adds one to a single-writer counter (a plain load and store, no locked instruction).
#[inline]
pub fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Adds `n` to a shared counter.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub static SLABS_ACQUIRED: AtomicU64 = AtomicU64::new(0);
pub static SLABS_RELEASED: AtomicU64 = AtomicU64::new(0);
pub static SUPERSLABS_MAPPED: AtomicU64 = AtomicU64::new(0);
pub static SUPERSLABS_UNMAPPED: AtomicU64 = AtomicU64::new(0);
pub static LARGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
pub static LARGE_FREES: AtomicU64 = AtomicU64::new(0);
pub static BIGCACHE_HITS: AtomicU64 = AtomicU64::new(0);
pub static PURGED_BYTES: AtomicU64 = AtomicU64::new(0);
pub static MMAP_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Every counter at one moment (each read separately; totals may be off by in-flight events).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Snapshot {
    pub refills: u64,
    pub flushes: u64,
    pub remote_frees: u64,
    pub slabs_acquired: u64,
    pub slabs_released: u64,
    pub superslabs_mapped: u64,
    pub superslabs_unmapped: u64,
    pub superslabs_live: u64,
    pub large_allocs: u64,
    pub large_frees: u64,
    pub bigcache_hits: u64,
    pub bigcache_blocks: u64,
    pub bigcache_warm_bytes: u64,
    pub purged_bytes: u64,
    pub mmap_failures: u64,
}

/// Reads every counter.
pub fn snapshot() -> Snapshot {
    let mut s = Snapshot::default();
    crate::heap::for_each_heap(|c| {
        s.refills += c.refills.load(Ordering::Relaxed);
        s.flushes += c.flushes.load(Ordering::Relaxed);
        s.remote_frees += c.remote_frees.load(Ordering::Relaxed);
    });
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    s.slabs_acquired = r(&SLABS_ACQUIRED);
    s.slabs_released = r(&SLABS_RELEASED);
    s.superslabs_mapped = r(&SUPERSLABS_MAPPED);
    s.superslabs_unmapped = r(&SUPERSLABS_UNMAPPED);
    s.superslabs_live = crate::superslab::mapped_count() as u64;
    s.large_allocs = r(&LARGE_ALLOCS);
    s.large_frees = r(&LARGE_FREES);
    s.bigcache_hits = r(&BIGCACHE_HITS);
    let (blocks, warm) = crate::bigcache::stats();
    s.bigcache_blocks = blocks as u64;
    s.bigcache_warm_bytes = warm as u64;
    s.purged_bytes = r(&PURGED_BYTES);
    s.mmap_failures = r(&MMAP_FAILURES);
    s
}

impl Snapshot {
    /// (name, value) pairs in a fixed order, for printing.
    pub fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("refills", self.refills),
            ("flushes", self.flushes),
            ("remote_frees", self.remote_frees),
            ("slabs_acquired", self.slabs_acquired),
            ("slabs_released", self.slabs_released),
            ("superslabs_mapped", self.superslabs_mapped),
            ("superslabs_unmapped", self.superslabs_unmapped),
            ("superslabs_live", self.superslabs_live),
            ("large_allocs", self.large_allocs),
            ("large_frees", self.large_frees),
            ("bigcache_hits", self.bigcache_hits),
            ("bigcache_blocks", self.bigcache_blocks),
            ("bigcache_warm_bytes", self.bigcache_warm_bytes),
            ("purged_bytes", self.purged_bytes),
            ("mmap_failures", self.mmap_failures),
        ]
    }
}

/// Appends the counters: one `hakmem: name value` line each, or the members of a JSON object
/// (`"name":value,...`) when `json` is set. Never allocates.
pub fn write(out: &mut Text, json: bool) {
    let s = snapshot();
    for (i, (name, v)) in s.fields().iter().enumerate() {
        if json {
            if i > 0 {
                out.str(",");
            }
            out.str("\"").str(name).str("\":").number(*v);
        } else {
            out.str("hakmem: ").str(name).str(" ").number(*v).str("\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_with_work() {
        let _serial = crate::tests::serial();
        let before = snapshot();
        let blocks: Vec<usize> = (0..10_000)
            .map(|i| unsafe { crate::malloc(32 + i % 200) } as usize)
            .collect();
        for &b in &blocks {
            unsafe { crate::free(b as *mut u8) };
        }
        let big = unsafe { crate::malloc(1 << 20) };
        unsafe { crate::free(big) };
        let after = snapshot();
        assert!(after.refills > before.refills);
        assert!(after.flushes > before.flushes);
        assert!(after.large_allocs > before.large_allocs);
        assert!(after.large_frees > before.large_frees);
        let mut t = Text::new();
        write(&mut t, false);
        assert!(t.as_bytes().starts_with(b"hakmem: refills "));
    }
}
