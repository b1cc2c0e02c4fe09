//! BigCache: freed large blocks kept mapped for reuse by later large requests: by a request up
//! to 25 % smaller, and, once its warm bytes fill the budget (or for requests above 4 MiB), by
//! any: a longer block is split (the request takes its start, the rest from a 2 MiB boundary
//! stays cached with its pages), and warm blocks shorter than the request are moved into one
//! mapping by mremap (the kernel moves their pages; only what they lack faults). `take` says
//! which, `large::alloc` does it.
//!
//! Blocks are kept most recently freed first. A block cached longer than `HAKMEM_PURGE_DELAY_MS`,
//! or the oldest ones past the budget of warm bytes (`budget`), are purged (MADV_DONTNEED: the
//! address space stays, the pages go back to the OS and will read as zero); past `MAX_ENTRIES`
//! blocks the oldest are unmapped. A hit saves the mmap and, for a warm block, every page fault of
//! touching it again. Purging happens under the lock, so nobody takes a block while its pages go.

use crate::clock;
use crate::knobs;
use crate::large::{self, LargeHeader, MAX_CACHED_LEN};
use crate::list::List;
use crate::lock::Lock;
use crate::os::{self, PAGE};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

const MAX_ENTRIES: usize = 64;

/// Told of each warm block a request uses (`note_reuse`, from `large.rs` once it knows which bytes
/// of the block it keeps: a longer block is split and its rest stays cached, a gathered one may
/// give only its end): how long it waited (ms), the warm bytes cached more recently than it or in
/// it (1 when any budget above 0 keeps them: within half the large blocks in use it could keep),
/// and the bytes used. The learner sets one when it starts (`tuning.rs`).
pub type ReuseObserver = fn(age_ms: u64, depth: u64, bytes: usize);
static REUSE_OBSERVER: AtomicPtr<()> = AtomicPtr::new(null_mut());

/// Makes `f` the observer of warm reuses (`None`: no observer); returns the one it replaces.
pub fn observe_reuses(f: Option<ReuseObserver>) -> Option<ReuseObserver> {
    let new = f.map_or(null_mut(), |f| f as *mut ());
    observer_from(REUSE_OBSERVER.swap(new, Ordering::Relaxed))
}

/// The observer a value of `REUSE_OBSERVER` stands for.
fn observer_from(p: *mut ()) -> Option<ReuseObserver> {
    // SAFETY: only `observe_reuses` stores in `REUSE_OBSERVER`: a `ReuseObserver`, or null.
    (!p.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), ReuseObserver>(p) })
}

/// Tells the reuse observer, if any, that a request uses `bytes` of a warm block `take` handed
/// out, cached at `cached_ms` (`clock::now_ms`) with `depth` warm bytes (`Taken::depth`).
pub fn note_reuse(cached_ms: u64, depth: usize, bytes: usize) {
    if let Some(f) = observer_from(REUSE_OBSERVER.load(Ordering::Relaxed)) {
        // Every budget but 0 keeps the warm bytes within the share of the large blocks in use
        // (`budget`): a block that deep is reported 1 byte deep, the shallowest a cached block
        // lies, so that only a budget of 0, or a purge delay it outwaited, loses it
        // (`learn::reuse`; depth 0 would count as kept by every strategy).
        let depth = if depth <= in_use_share() { 1 } else { depth };
        f(
            clock::now_ms().saturating_sub(cached_ms),
            depth as u64,
            bytes,
        );
    }
}

struct Cache {
    blocks: List<LargeHeader>,
    warm_bytes: usize,
}

struct Global {
    lock: Lock,
    c: UnsafeCell<Cache>,
}
// SAFETY: `c` is only accessed with `lock` held.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    c: UnsafeCell::new(Cache {
        blocks: List::new(),
        warm_bytes: 0,
    }),
};

/// Requests above this take blocks of other sizes (split, gathered) even while the cache has
/// room: the pages they save outweigh the system calls. Smaller ones doing so split and moved
/// blocks over and over (16 live blocks of 256 KiB-4 MiB, every page touched, a 256 MiB budget:
/// 3.4 times the CPU time per operation, for a third of the page faults).
const SPLIT_ALWAYS_LEN: usize = 4 << 20;

/// Most cached blocks one request gathers (`take`).
pub const MAX_PIECES: usize = 4;

/// The cached blocks `take` hands out for one request: one block, or several warm ones to be
/// moved side by side into one mapping (`large::alloc`).
pub struct Taken {
    pub pieces: [*mut LargeHeader; MAX_PIECES],
    /// Of each warm piece, the warm bytes cached more recently than it or in it (for `note_reuse`).
    pub depth: [usize; MAX_PIECES],
    pub n: usize,
}

/// What `take` chose, before it is taken out of the list.
#[derive(Clone, Copy)]
struct Pick {
    h: *mut LargeHeader,
    len: usize,
    /// Warm bytes cached more recently than it, and its own (for the reuse observer).
    depth: usize,
}

const NO_PICK: Pick = Pick {
    h: null_mut(),
    len: 0,
    depth: 0,
};

/// The cached blocks to serve a request for a mapping of `len` bytes, warm ones first, as the
/// pages a warm block keeps are what saves time (a page fault zeroes a page; mremap moves it):
/// - a warm block at most 25 % longer (the shortest);
/// - then, once the cache is full (a new block would push older warm ones past the budget) or
///   for a request above `SPLIT_ALWAYS_LEN`: a longer warm block (the shortest; the caller
///   splits it and caches the rest), else the longest warm blocks, up to `MAX_PIECES`, until
///   they add up to `len`, if they add up to half of it at least (the caller moves them into
///   one mapping; only what they lack faults);
/// - then a purged block at least `len` long (the shortest; over 25 % longer only when full or
///   above `SPLIT_ALWAYS_LEN`): it saves the mmap only;
/// - else none (`n == 0`).
///
/// While the cache has room, a miss adds a block of the size asked for, so that the sizes cached
/// come to match the sizes asked. On malloc-large (20 live blocks of 5-25 MiB replaced at
/// random), where a rule of one block only (a longer one's tail unmapped, a shorter one grown)
/// purged 8.2-8.4 GiB of pages that were then faulted in again, this faults in about 0.75 GB
/// (187,000 page faults on 5f31774, most of them the first touch of the live blocks).
///
/// With learning on, the bytes of each warm block a request uses are recorded with the block's
/// age and depth (the warm bytes freed after it, and its own; `Taken::depth`), which is what
/// decides whether a stingier strategy would have lost them (`learn::reuse`): `large.rs` calls
/// `note_reuse` once it knows which bytes it keeps.
pub fn take(len: usize) -> Taken {
    let mut taken = Taken {
        pieces: [null_mut(); MAX_PIECES],
        depth: [0; MAX_PIECES],
        n: 0,
    };
    GLOBAL.lock.lock();
    // SAFETY: the lock is held; cached headers are valid.
    unsafe {
        let c = &mut *GLOBAL.c.get();
        let mut fit = NO_PICK;
        let mut purged = NO_PICK;
        // The longest warm blocks shorter than `len`, longest first.
        let mut longest = [NO_PICK; MAX_PIECES];
        let mut warm_ahead = 0;
        let mut h = c.blocks.head;
        while !h.is_null() {
            let l = (*h).map_len;
            if (*h).purged {
                if l >= len && (purged.h.is_null() || l < purged.len) {
                    purged = Pick {
                        h,
                        len: l,
                        depth: 0,
                    };
                }
            } else {
                warm_ahead += l;
                let pick = Pick {
                    h,
                    len: l,
                    depth: warm_ahead,
                };
                if l >= len {
                    if fit.h.is_null() || l < fit.len {
                        fit = pick;
                        if l == len {
                            break;
                        }
                    }
                } else if let Some(i) = longest.iter().position(|p| p.h.is_null() || p.len < l) {
                    longest.copy_within(i..MAX_PIECES - 1, i + 1);
                    longest[i] = pick;
                }
            }
            h = (*h).links.next.get();
        }
        // While the cache has room, a request up to `SPLIT_ALWAYS_LEN` takes only a block at most
        // 25 % longer; a miss adds a block of the size asked for, so that the sizes cached come
        // to match the sizes asked.
        let full = c.warm_bytes + len > budget() || len > SPLIT_ALWAYS_LEN;
        let close = |p: &Pick| !p.h.is_null() && p.len <= len + len / 4;
        let mut picks = [NO_PICK; MAX_PIECES];
        if close(&fit) || (full && !fit.h.is_null()) {
            picks[0] = fit;
            taken.n = 1;
        } else if full {
            let mut sum = 0;
            for p in longest.iter().take_while(|p| !p.h.is_null()) {
                if sum >= len {
                    break;
                }
                picks[taken.n] = *p;
                taken.n += 1;
                sum += p.len;
            }
            if sum < len / 2 {
                taken.n = 0;
            }
        }
        if taken.n == 0 && (close(&purged) || (full && !purged.h.is_null())) {
            picks[0] = purged;
            taken.n = 1;
        }
        for (i, p) in picks.iter().take(taken.n).enumerate() {
            let b = p.h;
            (*b).cached = false;
            c.blocks.remove(b);
            if !(*b).purged {
                c.warm_bytes -= (*b).map_len;
            }
            taken.pieces[i] = b;
            taken.depth[i] = p.depth;
        }
    }
    GLOBAL.lock.unlock();
    taken
}

/// The most warm bytes the cache keeps: `HAKMEM_BIGCACHE_MB` (the strategy's budget), or half the
/// bytes of the large blocks in use it could keep (`in_use_share`) when that is more, so that a
/// program churning big blocks keeps enough to find a warm block for most replacements, at a cost
/// bounded by its own footprint; the purge delay returns them all the same once the churn stops.
/// A budget of 0 keeps none.
/// malloc-large (20 live blocks of 5-25 MiB, about 300 MiB in use; 5 interleaved runs): with a
/// quarter, 1.32-1.41 s and 333,000 page faults; with half, 1.05-1.21 s and 187,000-201,000 faults
/// (tcmalloc, which keeps every freed page, 1.01-1.09 s and 184,500), for a peak of 450 MB instead
/// of 442 (tcmalloc 574 MB); with the whole, the same as half.
fn budget() -> usize {
    let set = knobs::bigcache_bytes();
    if set == 0 {
        return 0;
    }
    set.max(in_use_share())
}

/// Half the bytes of the large blocks in use that the cache could keep once freed (`could_keep`;
/// their mappings): a program holding a 4 GiB array does not keep 2 GiB of freed smaller blocks
/// warm for it.
fn in_use_share() -> usize {
    crate::stats::LARGE_CACHEABLE_BYTES.now() as usize / 2
}

/// Whether the cache may keep a freed large block on a mapping of `map_len` bytes: a standard one
/// (aligned to a page at most) of up to `MAX_CACHED_LEN`. What `keep` takes, and what
/// `stats::LARGE_CACHEABLE_BYTES` counts of the blocks in use.
pub fn could_keep(map_len: usize, standard: bool) -> bool {
    standard && map_len <= MAX_CACHED_LEN
}

/// Keeps a freed standard block. Returns false if the cache does not take it.
///
/// # Safety
/// `h` is the header of a standard large block nothing uses any more.
pub unsafe fn put(h: *mut LargeHeader) -> bool {
    // SAFETY: the caller's contract is `keep`'s.
    unsafe {
        (*h).purged = false;
        (*h).cached_ms = clock::now_ms();
        keep(h)
    }
}

/// Keeps a block that `take` handed out and that was not used after all, or the part of one
/// that a request did not need (`large::alloc`), warm or purged as it was; unmaps it if the
/// cache does not take it.
///
/// # Safety
/// `h` is the header of a standard large block nothing uses, its `purged` as when it was cached.
pub unsafe fn put_back(h: *mut LargeHeader) {
    // SAFETY: the caller's contract is `keep`'s; a block the cache refuses is still ours.
    unsafe {
        (*h).cached_ms = clock::now_ms();
        if !keep(h) {
            large::unmap(h);
        }
    }
}

/// # Safety
/// `h` is the header of a standard large block nothing uses any more, its `purged` and
/// `cached_ms` set.
unsafe fn keep(h: *mut LargeHeader) -> bool {
    // SAFETY: `h` is a standard block's header nothing else uses (the caller's contract); the cache
    // is only touched with its lock held, and an evicted block has left it, so it is ours to unmap.
    unsafe {
        let cfg = crate::config::get();
        if !cfg.bigcache_enabled || !could_keep((*h).map_len, (*h).standard) {
            return false;
        }
        let mut evicted: *mut LargeHeader = null_mut();
        let now = clock::now_ms();
        GLOBAL.lock.lock();
        {
            let c = &mut *GLOBAL.c.get();
            (*h).cached = true;
            c.blocks.push_front(h);
            if !(*h).purged {
                c.warm_bytes += (*h).map_len;
            }
            purge_locked(c, now);
            if c.blocks.len > MAX_ENTRIES {
                evicted = c.blocks.pop_back();
                if !(*evicted).purged {
                    c.warm_bytes -= (*evicted).map_len;
                }
            }
        }
        GLOBAL.lock.unlock();
        if !evicted.is_null() {
            large::unmap(evicted);
        }
        true
    }
}

/// Purges, oldest first, the warm blocks cached longer than the purge delay or past the budget.
///
/// # Safety
/// The cache's lock is held and `c` is the cache.
unsafe fn purge_locked(c: &mut Cache, now: u64) {
    // SAFETY: the lock is held (the caller's contract), so the cached blocks, unused and valid, are
    // the cache's.
    unsafe {
        let delay = knobs::purge_delay_ms();
        let budget = budget();
        let batch = knobs::madvise_batch();
        let mut t = c.blocks.tail;
        while !t.is_null() {
            // Expired blocks go only while more than the batch is warm; the budget always holds.
            let expired = (*t).cached_ms + delay <= now && c.warm_bytes > batch;
            if !expired && c.warm_bytes <= budget {
                break;
            }
            if !(*t).purged {
                os::discard(((*t).map_start + PAGE) as *mut u8, (*t).map_len - PAGE);
                if large::may_be_huge((*t).map_len) {
                    // Without this, khugepaged would fill the header's huge page back in (2 MiB
                    // resident for a purged block; in the kernel's THP mode `always`, for an
                    // unadvised one too); `large::alloc` advises it again on reuse.
                    os::advise_no_huge((*t).map_start as *mut u8, crate::registry::CHUNK);
                }
                crate::stats::add(&crate::stats::PURGED_BYTES, ((*t).map_len - PAGE) as u64);
                (*t).purged = true;
                c.warm_bytes -= (*t).map_len;
            }
            t = (*t).links.prev.get();
        }
    }
}

/// Purges the blocks whose purge delay is over.
pub fn purge_expired() {
    let now = clock::now_ms();
    GLOBAL.lock.lock();
    // SAFETY: the lock is held.
    unsafe { purge_locked(&mut *GLOBAL.c.get(), now) };
    GLOBAL.lock.unlock();
}

/// Unmaps every cached block.
pub fn clear() {
    loop {
        GLOBAL.lock.lock();
        // SAFETY: the lock is held.
        let h = unsafe {
            let c = &mut *GLOBAL.c.get();
            let h = c.blocks.pop_back();
            if !h.is_null() && !(*h).purged {
                c.warm_bytes -= (*h).map_len;
            }
            h
        };
        GLOBAL.lock.unlock();
        if h.is_null() {
            return;
        }
        // SAFETY: the block left the cache; nobody else holds it.
        unsafe { large::unmap(h) };
    }
}

/// (blocks cached, bytes of them still warm)
pub fn stats() -> (usize, usize) {
    // SAFETY: the lock is held while the cache is read.
    GLOBAL.lock.with(|| unsafe {
        let c = &*GLOBAL.c.get();
        (c.blocks.len, c.warm_bytes)
    })
}

/// The lock the fork handlers hold across `fork()` (`fork.rs`).
pub fn lock() -> &'static Lock {
    &GLOBAL.lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large;
    use crate::learn::strategy::DEFAULT;

    /// The tests' lock, held with BigCache emptied and its budget set to `bytes`; dropped (a
    /// failed test too), it empties the cache and puts the default strategy back.
    struct Budget {
        _knobs: crate::tests::Knobs,
    }

    impl Budget {
        fn set(bytes: u64) -> Budget {
            let _knobs = crate::tests::Knobs::set(&crate::learn::Strategy {
                bigcache_bytes: bytes,
                ..DEFAULT
            });
            clear();
            Budget { _knobs }
        }
    }

    impl Drop for Budget {
        // The knobs go back to the default after this, with the lock still held.
        fn drop(&mut self) {
            clear();
        }
    }

    /// Frees the standard large block `p`.
    ///
    /// # Safety
    /// `p` is a live standard large block, freed once.
    unsafe fn free_block(p: *mut u8) {
        // SAFETY: the caller's contract.
        unsafe { large::free(large::header_of(p as usize, crate::registry::Kind::Large)) }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn freed_blocks_are_reused_and_purged_past_the_budget() {
        let _serial = crate::tests::serial();
        let size = 3 << 20;
        let len = large::standard_len(size);
        let (p, zeroed) = large::alloc(size, 16);
        assert!(!p.is_null() && zeroed);
        // SAFETY: `p` is a fresh large block of `size` bytes.
        unsafe { core::ptr::write_bytes(p, 0xEE, size) };
        let h = large::header_of(p as usize, crate::registry::Kind::Large);
        assert!(!h.is_null());
        // SAFETY: `h` is the header of `p`, which nothing uses any more.
        unsafe { large::free(h) };
        // Same step: the same mapping comes back, warm (its contents are still there).
        let t = take(len);
        assert_eq!(t.n, 1);
        let taken = t.pieces[0];
        // SAFETY: `taken` is a header the cache handed out: valid, and ours, now in use as
        // `large::alloc` would count it.
        crate::stats::large_taken(unsafe { (*taken).map_len }, true);
        {
            // SAFETY: `taken` is a header the cache handed out: valid, and ours.
            unsafe {
                assert_eq!((*taken).user, p as usize);
                assert!(!(*taken).purged);
                assert_eq!(*p.add(size - 1), 0xEE);
                large::free(taken);
            }
        }
        // Filling the cache past its warm budget purges the oldest blocks: they read as zero.
        let n = budget() / len + 3;
        let blocks: Vec<*mut u8> = (0..n).map(|_| large::alloc(size, 16).0).collect();
        for &b in &blocks {
            // SAFETY: each block is a fresh large block of `size` bytes.
            unsafe { core::ptr::write_bytes(b, 0xAA, size) };
        }
        for &b in &blocks {
            // SAFETY: each block is live, standard, unused and freed once.
            unsafe { free_block(b) };
        }
        let (_, warm) = stats();
        let budget = budget();
        assert!(warm <= budget, "warm {warm} > budget {budget}");
        clear();
        assert_eq!(stats(), (0, 0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn the_budget_grows_with_the_large_blocks_in_use() {
        let _budget = Budget::set(16 << 20);
        // 32 blocks of 3 MiB in use (96 MiB): half, 48 MiB, may stay warm, not only 16.
        let size = 3 << 20;
        let blocks: Vec<*mut u8> = (0..32).map(|_| large::alloc(size, 16).0).collect();
        for (i, &b) in blocks.iter().enumerate() {
            assert!(!b.is_null());
            // SAFETY: each block is a fresh large block of `size` bytes.
            unsafe { core::ptr::write_bytes(b, i as u8, size) };
        }
        // Nine freed (27 MiB): more than a quarter of the 69 MiB still in use, within half.
        for &b in &blocks[..9] {
            // SAFETY: each block is live, standard, unused and freed once.
            unsafe { free_block(b) };
        }
        let (n, warm) = stats();
        assert_eq!(n, 9);
        assert!(warm >= 9 * size, "warm {warm}");
        assert!(warm <= budget(), "warm {warm} > budget {}", budget());
        // Reused, a warm block still holds what was written before it was freed, and the learner
        // hears of it 1 byte deep (within the share of the blocks in use, only a budget of 0
        // loses it).
        static DEPTH: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(u64::MAX);
        fn record(_age_ms: u64, depth: u64, _bytes: usize) {
            DEPTH.store(depth, Ordering::Relaxed);
        }
        let before = observe_reuses(Some(record));
        let (p, zeroed) = large::alloc(size, 16);
        let ours = observe_reuses(before)
            .is_some_and(|f| core::ptr::fn_addr_eq(f, record as ReuseObserver));
        assert!(!ours || DEPTH.load(Ordering::Relaxed) == 1, "depth");
        assert!(!zeroed);
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { assert!(*p < 9 && *p.add(size - 1) == *p) };
        for &b in blocks[9..].iter().chain([&p]) {
            // SAFETY: `b` is a live block from `alloc`, freed once.
            unsafe {
                assert!(*b.add(size / 2) == *b);
                free_block(b);
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn the_share_counts_only_blocks_the_cache_could_keep() {
        let _budget = Budget::set(1 << 20);
        // Other tests may take or free a few MiB of large blocks meanwhile.
        let slack = 16 << 20;
        let s0 = in_use_share();
        // Too big to cache: it adds nothing to the share.
        let big_len = large::MAX_CACHED_LEN + (64 << 20);
        let (big, _) = large::alloc(big_len, 16);
        assert!(!big.is_null());
        let s1 = in_use_share();
        assert!(s1.abs_diff(s0) < slack, "{s0} -> {s1}");
        // Aligned to more than a page: never cached either.
        let aligned_len = 64 << 20;
        let (aligned, _) = large::alloc(aligned_len, 1 << 16);
        assert!(!aligned.is_null() && (aligned as usize).is_multiple_of(1 << 16));
        let s2 = in_use_share();
        assert!(s2.abs_diff(s1) < slack, "{s1} -> {s2}");
        // 64 MiB: cacheable, half of it counts.
        let mid_len = 64 << 20;
        let (mid, _) = large::alloc(mid_len, 16);
        assert!(!mid.is_null());
        let s3 = in_use_share();
        assert!(s3.abs_diff(s2 + (32 << 20)) < slack, "{s2} -> {s3}");
        let blocks = [
            (big, big_len, 0x5a),
            (aligned, aligned_len, 0x3c),
            (mid, mid_len, 0xa5),
        ];
        // SAFETY: each block is live with `n` bytes, freed once after its first and last bytes
        // are written and read back.
        unsafe {
            for (p, n, tag) in blocks {
                *p = tag;
                *p.add(n - 1) = tag;
            }
            for (p, n, tag) in blocks {
                assert_eq!((*p, *p.add(n - 1)), (tag, tag));
                free_block(p);
            }
        }
        let s4 = in_use_share();
        assert!(s4.abs_diff(s0) < slack, "{s0} -> {s4}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mremap, which Miri does not model")]
    fn blocks_of_other_sizes_are_trimmed_or_grown_and_keep_their_contents() {
        // A budget the 16 live blocks' churn fills at once, so that blocks are trimmed and grown.
        let _budget = Budget::set(16 << 20);
        let hits = || crate::stats::BIGCACHE_HITS.load(Ordering::Relaxed);
        let (h0, mut x) = (hits(), 0x2545_F491_4F6C_DD1Du64);
        let mut live = [(null_mut::<u8>(), 0usize); 16];
        let rounds = 2000;
        for i in 0..rounds {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, size) = (
                x as usize % live.len(),
                (256 << 10) + (x >> 8) as usize % (4 << 20),
            );
            let (p, n) = live[k];
            if !p.is_null() {
                // SAFETY: `p` is a live large block of `n` bytes, filled with its tag below.
                unsafe {
                    assert!((0..n).step_by(PAGE).all(|o| *p.add(o) == (n % 251) as u8));
                    free_block(p);
                }
            }
            let (p, _) = large::alloc(size, 16);
            assert!(!p.is_null(), "{i}");
            let h = large::header_of(p as usize, crate::registry::Kind::Large);
            // SAFETY: `h` is the header of the live block `p`.
            assert!(
                !h.is_null() && unsafe { large::usable_size(h) } >= size,
                "{i}"
            );
            // SAFETY: `p` is a fresh block of at least `size` bytes.
            unsafe { core::ptr::write_bytes(p, (size % 251) as u8, size) };
            live[k] = (p, size);
        }
        // Sizes spread over 16x, yet nearly every request is served from the cache.
        assert!(hits() - h0 > rounds * 9 / 10, "{} hits", hits() - h0);
        for (p, _) in live {
            // SAFETY: each block is live and freed once.
            unsafe { free_block(p) };
        }
    }
}
