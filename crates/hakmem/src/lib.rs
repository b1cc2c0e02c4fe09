//! hakmem: a general-purpose memory allocator.
//!
//! The front: `malloc`, `free`, `calloc`, `realloc`, `memalign`, `usable_size`, and `Hakmem`, the
//! `GlobalAlloc`. A request up to 256 KiB is a size class served from this thread's cache
//! (`thread_cache.rs`), refilled from slabs (`slab.rs`) on 2 MiB SuperSlabs (`superslab.rs`) by the
//! heap's slow path (`heap.rs`). Larger requests get their own mapping (`large.rs`), recycled by
//! BigCache (`bigcache.rs`). `free` asks the registry (`registry.rs`) what the pointer's 2 MiB chunk
//! holds; a pointer that is not ours is reported and the process aborts, like glibc does.
//!
//! The core never allocates through any other allocator: everything comes from mmap and statics,
//! so it can sit under `LD_PRELOAD` and under Rust's `#[global_allocator]`.

mod bigcache;
mod check;
pub mod config;
mod heap;
pub mod knobs;
mod large;
pub mod learn;
mod list;
mod lock;
mod os;
mod registry;
mod remote;
pub mod sites;
pub mod size_class;
mod slab;
pub mod stats;
mod superslab;
mod sync;
mod text;
mod thread_cache;
pub mod tuning;

pub mod abi;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use core::sync::atomic::Ordering;
use registry::Kind;
use remote::Block;
use size_class::{class_of, class_size, MID_MAX, MIN_ALIGN};

/// The hakmem allocator, for `#[global_allocator] static A: hakmem::Hakmem = hakmem::Hakmem;`.
pub struct Hakmem;

/// Allocates `size` bytes aligned to 16. Null with errno ENOMEM when memory is exhausted.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[inline]
pub unsafe fn malloc(size: usize) -> *mut u8 {
    malloc_at(size, 0)
}

/// `malloc` called from `site` (the caller's return address, or any id; 0: unknown). The site
/// is only looked at on the slow paths, where `sites.rs` may sample it.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
#[inline]
pub unsafe fn malloc_at(size: usize, site: usize) -> *mut u8 {
    if size <= MID_MAX {
        let c = class_of(size);
        let heap = thread_cache::current();
        if !heap.is_null() {
            // SAFETY: class_of(size) < NUM_CLASSES for size <= MID_MAX.
            let b = (*heap).bins.get_unchecked_mut(c).pop();
            if !b.is_null() {
                return b as *mut u8;
            }
        }
        return alloc_class_slow(c, size, site);
    }
    alloc_large_at(size, site)
}

/// A large block for `malloc_at`, its site recorded when sampled.
#[cold]
unsafe fn alloc_large_at(size: usize, site: usize) -> *mut u8 {
    let p = alloc_large(size, MIN_ALIGN).0;
    if !p.is_null() && sites::enabled() {
        let h = large::header_of(p as usize, Kind::Large);
        (*h).site = if sites::alloc(site, size, true) {
            site
        } else {
            0
        };
    }
    p
}

/// Refills this thread's cache for class `c` (creating the thread's heap if needed) and allocates
/// a block for a request of `size` bytes. In safe mode (where the caches stay empty, so every
/// allocation comes here) the block is one class up if needed to hold the canary.
#[cold]
unsafe fn alloc_class_slow(c: usize, size: usize, site: usize) -> *mut u8 {
    if check::safe_mode() {
        if size + check::SAFE_EXTRA > MID_MAX {
            return alloc_large(size, MIN_ALIGN).0;
        }
        return alloc_checked(class_of(size + check::SAFE_EXTRA), size);
    }
    if size > knobs::large_threshold() {
        // The strategy maps mid sizes above its threshold individually (and caches them).
        return alloc_large_at(size, site);
    }
    sites::alloc(site, size, false);
    alloc_from_class(c)
}

/// A block of class `c` from this thread's cache, refilled if empty.
unsafe fn alloc_from_class(c: usize) -> *mut u8 {
    let heap = heap::current_or_create();
    if heap.is_null() {
        // The thread is exiting (its heap is gone) or there is no memory for a heap.
        let b = heap::alloc_without_heap(c);
        return if b.is_null() {
            out_of_memory()
        } else {
            b as *mut u8
        };
    }
    let b = (*heap).bins[c].pop();
    if !b.is_null() {
        return b as *mut u8;
    }
    if !(*heap).refill(c) {
        return out_of_memory();
    }
    (*heap).bins[c].pop() as *mut u8
}

/// Safe mode: a block of class `c` armed for a request of `size` bytes.
#[cold]
unsafe fn alloc_checked(c: usize, size: usize) -> *mut u8 {
    let p = alloc_from_class(c);
    if !p.is_null() {
        check::arm(p, size, class_size(c));
    }
    p
}

#[cold]
fn alloc_large(size: usize, align: usize) -> (*mut u8, bool) {
    if size > large::MAX_REQUEST {
        // Impossible whatever the caches hold: do not empty them trying.
        return (out_of_memory(), false);
    }
    heap::ensure_init();
    let timer = tuning::Timer::start_large();
    let (mut p, mut zeroed) = large::alloc(size, align);
    if p.is_null() {
        release_cached_memory();
        (p, zeroed) = large::alloc(size, align);
        if p.is_null() {
            return (out_of_memory(), false);
        }
    }
    timer.stop(size);
    (p, zeroed)
}

#[cold]
fn out_of_memory() -> *mut u8 {
    os::set_errno(libc::ENOMEM);
    null_mut()
}

/// Frees a block from `malloc` and friends. Null is ignored; a pointer hakmem did not hand out,
/// or one inside a block, or a block just freed, is reported on stderr and the process aborts
/// (see `check.rs`).
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline]
pub unsafe fn free(p: *mut u8) {
    if !p.is_null() {
        free_non_null(p);
    }
}

/// `free` of a pointer known not to be null (GlobalAlloc::dealloc never passes null).
#[inline]
unsafe fn free_non_null(p: *mut u8) {
    let addr = p as usize;
    match registry::kind_of(addr) {
        Kind::SuperSlab => {
            let slab = superslab::slab_of(addr);
            let heap = thread_cache::current();
            if (*slab).owner.load(Ordering::Relaxed) == heap && !heap.is_null() {
                if !(*slab).is_carved_block_start(addr) {
                    check::report("free", "interior pointer", addr);
                }
                let c = (*slab).class as usize;
                // SAFETY: a slab this heap owns is formatted for a valid class.
                let bin = (*heap).bins.get_unchecked_mut(c);
                let head = bin.head();
                if head == p as *mut Block {
                    check::report("free", "double free", addr);
                }
                if bin.count < bin.cap {
                    bin.push_before(p as *mut Block, head);
                    return;
                }
                return free_and_flush(heap, c, p);
            }
            free_foreign_slab(slab, p)
        }
        Kind::Large | Kind::LargeAligned => free_large(addr),
        Kind::None => check::report("free", "invalid pointer", addr),
    }
}

/// The bin of class `c` is full (always, in safe mode): flush it, with `p`.
#[cold]
unsafe fn free_and_flush(heap: *mut heap::Heap, c: usize, p: *mut u8) {
    if check::safe_mode() {
        check::disarm("free", p, class_size(c));
        (*heap).bins[c].push(p as *mut Block);
        (*heap).flush(c);
        return;
    }
    (*heap).flush(c);
    (*heap).bins[c].push(p as *mut Block);
}

/// Frees a block of a slab this thread does not own.
#[cold]
unsafe fn free_foreign_slab(slab: *mut slab::Slab, p: *mut u8) {
    check_block_start("free", slab, p as usize);
    if check::safe_mode() {
        check::disarm("free", p, (*slab).block_size as usize);
    }
    heap::free_remote(slab, p as *mut Block);
}

/// Reports `p` unless it is the start of a block of `slab`.
unsafe fn check_block_start(op: &str, slab: *mut slab::Slab, p: usize) {
    if !(*slab).is_block_start(p) {
        let what = if (*slab).class != slab::NO_CLASS && p >= (*slab).start {
            "interior pointer"
        } else {
            "invalid pointer"
        };
        check::report(op, what, p);
    }
}

/// The header of the large block at `addr`, or a report (interior pointer, or freed).
unsafe fn large_header(op: &str, addr: usize) -> *mut large::LargeHeader {
    let h = large::header_of(addr, registry::kind_of(addr));
    if h.is_null() {
        check::report(op, "interior pointer", addr);
    }
    if (*h).cached {
        check::report(
            op,
            if op == "free" {
                "double free"
            } else {
                "use after free"
            },
            addr,
        );
    }
    h
}

#[cold]
unsafe fn free_large(addr: usize) {
    let timer = tuning::Timer::start_large();
    let h = large_header("free", addr);
    let size = (*h).map_len;
    if (*h).site != 0 {
        sites::free((*h).site);
        (*h).site = 0;
    }
    large::free(h);
    timer.stop(size);
}

/// Allocates `n * size` zeroed bytes; null with ENOMEM if the product overflows.
///
/// # Safety
/// Always safe to call.
pub unsafe fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return out_of_memory();
    };
    if total <= MID_MAX {
        let p = malloc(total);
        if !p.is_null() {
            core::ptr::write_bytes(p, 0, total);
        }
        return p;
    }
    let (p, zeroed) = alloc_large(total, MIN_ALIGN);
    if !p.is_null() && !zeroed {
        core::ptr::write_bytes(p, 0, total);
    }
    p
}

/// Allocates `size` bytes aligned to `align`, a power of two; null with EINVAL if it is not one.
///
/// # Safety
/// Always safe to call.
pub unsafe fn memalign(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return null_mut();
    }
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if check::safe_mode() {
        if let Some(c) = size_class::class_for_aligned(size + check::SAFE_EXTRA, align) {
            return alloc_checked(c, size);
        }
        return alloc_large(size, align).0;
    }
    match size_class::class_for_aligned(size, align) {
        Some(c) => alloc_from_class(c),
        None => alloc_large(size, align).0,
    }
}

/// Resizes a block, moving it if needed; `realloc(null, n)` is `malloc(n)`. `realloc(p, 0)`
/// returns a minimum-size block. On failure returns null and leaves `p` untouched.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(size);
    }
    let addr = p as usize;
    let old = match registry::kind_of(addr) {
        Kind::SuperSlab => {
            let slab = superslab::slab_of(addr);
            check_block_start("realloc", slab, addr);
            let block = (*slab).block_size as usize;
            if check::safe_mode() {
                check::live_requested_size("realloc", p, block)
            } else {
                if size <= block && (size > block / 2 || block <= 64) {
                    return p;
                }
                block
            }
        }
        Kind::Large | Kind::LargeAligned => {
            let h = large_header("realloc", addr);
            if size > MID_MAX {
                let r = large::resize(h, size);
                if !r.is_null() {
                    return r;
                }
            }
            large::usable_size(h)
        }
        Kind::None => check::report("realloc", "invalid pointer", addr),
    };
    let q = malloc(size);
    if !q.is_null() {
        core::ptr::copy_nonoverlapping(p, q, old.min(size));
        free(p);
    }
    q
}

/// Bytes usable in the block at `p` (at least what was asked for); 0 for null.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    let addr = p as usize;
    match registry::kind_of(addr) {
        Kind::SuperSlab => {
            let slab = superslab::slab_of(addr);
            check_block_start("malloc_usable_size", slab, addr);
            let block = (*slab).block_size as usize;
            if check::safe_mode() {
                return check::live_requested_size("malloc_usable_size", p, block);
            }
            block
        }
        Kind::Large | Kind::LargeAligned => {
            large::usable_size(large_header("malloc_usable_size", addr))
        }
        Kind::None => check::report("malloc_usable_size", "invalid pointer", addr),
    }
}

/// `malloc` on behalf of call site `site` (any nonzero id), for `hak_alloc_at`: the site's
/// profile (`sites.rs`) samples every call, fast path or not.
///
/// # Safety
/// Always safe to call; unsafe because it returns raw memory.
pub unsafe fn alloc_at(size: usize, site: usize) -> *mut u8 {
    let p = malloc(size);
    sites::alloc_block(p as usize, site, size);
    p
}

/// `free` of a block from `alloc_at(_, site)`, for `hak_free_at`.
///
/// # Safety
/// As `free`.
pub unsafe fn free_at(p: *mut u8, site: usize) {
    if !p.is_null() {
        sites::free_block(p as usize, site);
    }
    free(p)
}

/// Process-wide set-up (thread-exit hook, fork handlers). Runs by itself on first use; a library
/// constructor may call it early so that the fork handlers exist before any allocation.
pub fn init() {
    heap::ensure_init();
}

/// Returns every cached region to the OS: BigCache's large blocks and the empty SuperSlabs.
/// Called when a mapping fails, and available to programs (`malloc_trim`).
pub fn release_cached_memory() {
    bigcache::clear();
    superslab::release_empty();
}

/// Figures for tests and the benchmark: (SuperSlabs mapped, large blocks cached, warm bytes cached).
pub fn memory_stats() -> (usize, usize, usize) {
    let (n, warm) = bigcache::stats();
    (superslab::mapped_count(), n, warm)
}

unsafe impl GlobalAlloc for Hakmem {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            malloc(layout.size())
        } else {
            memalign(layout.align(), layout.size())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
        free_non_null(p)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            return calloc(1, layout.size());
        }
        if size_class::class_for_aligned(layout.size(), layout.align()).is_none() {
            let (p, zeroed) = alloc_large(layout.size(), layout.align());
            if !p.is_null() && !zeroed {
                core::ptr::write_bytes(p, 0, layout.size());
            }
            return p;
        }
        let p = memalign(layout.align(), layout.size());
        if !p.is_null() {
            core::ptr::write_bytes(p, 0, layout.size());
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            return realloc(p, new_size);
        }
        let q = memalign(layout.align(), new_size);
        if !q.is_null() {
            core::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            free(p);
        }
        q
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests that count or empty shared allocator state (SuperSlabs, BigCache) run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());
    pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fill(p: *mut u8, n: usize) {
        for i in 0..n {
            unsafe { *p.add(i) = (p as usize).wrapping_add(i) as u8 };
        }
    }
    fn check(p: *mut u8, n: usize) {
        for i in 0..n {
            assert_eq!(
                unsafe { *p.add(i) },
                (p as usize).wrapping_add(i) as u8,
                "byte {i} of {p:?}"
            );
        }
    }

    #[test]
    fn every_class_and_some_large_sizes_hold_their_contents() {
        let _serial = serial();
        let mut sizes: Vec<usize> = (0..size_class::NUM_CLASSES).map(class_size).collect();
        sizes.extend([0, 1, 15, 17, 1000, MID_MAX + 1, 1 << 20, 3 << 20, 40 << 20]);
        let mut blocks = Vec::new();
        for round in 0..3 {
            for &s in &sizes {
                let p = unsafe { malloc(s) };
                assert!(!p.is_null());
                assert_eq!(p as usize % MIN_ALIGN, 0);
                let u = unsafe { usable_size(p) };
                assert!(u >= s, "usable {u} < {s}");
                fill(p, u);
                blocks.push((p, u));
            }
            if round == 1 {
                for &(p, u) in &blocks {
                    check(p, u);
                    unsafe { free(p) };
                }
                blocks.clear();
            }
        }
        for &(p, u) in &blocks {
            check(p, u);
            unsafe { free(p) };
        }
    }

    #[test]
    fn many_small_blocks_are_distinct_and_recycled() {
        let _serial = serial();
        for &s in &[16usize, 48, 100, 1024, 8192, 20000, 200_000] {
            let n = (8 << 20) / s;
            let v: Vec<*mut u8> = (0..n).map(|_| unsafe { malloc(s) }).collect();
            for &p in &v {
                unsafe { (p as *mut usize).write(p as usize) };
            }
            let mut sorted: Vec<usize> = v.iter().map(|&p| p as usize).collect();
            sorted.sort();
            for w in sorted.windows(2) {
                assert!(w[1] - w[0] >= s, "overlap at size {s}");
            }
            for &p in &v {
                assert_eq!(unsafe { (p as *mut usize).read() }, p as usize);
                unsafe { free(p) };
            }
        }
    }

    #[test]
    fn cross_thread_frees_come_back() {
        let _serial = serial();
        let mut after_first = 0;
        for round in 0..5 {
            let blocks: Vec<usize> = (0..200_000)
                .map(|i| unsafe { malloc(16 + i % 500) } as usize)
                .collect();
            for &p in &blocks {
                fill(p as *mut u8, 16);
            }
            std::thread::spawn(move || {
                for &p in &blocks {
                    check(p as *mut u8, 16);
                    unsafe { free(p as *mut u8) };
                }
            })
            .join()
            .unwrap();
            if round == 0 {
                after_first = superslab::mapped_count();
            }
        }
        // Allocating again collects what other threads freed instead of mapping more.
        let p = unsafe { malloc(64) };
        unsafe { free(p) };
        let now = superslab::mapped_count();
        assert!(
            now <= after_first + 4,
            "SuperSlabs grew from {after_first} to {now}"
        );
    }

    #[test]
    fn aligned_allocations_are_aligned() {
        let _serial = serial();
        for shift in 4..=24 {
            let align = 1usize << shift;
            for &s in &[0usize, 1, 100, 4096, 300_000] {
                let p = unsafe { memalign(align, s) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {s}");
                let u = unsafe { usable_size(p) };
                assert!(u >= s);
                fill(p, u);
                check(p, u);
                unsafe { free(p) };
            }
        }
        assert!(unsafe { memalign(24, 10) }.is_null());
    }

    #[test]
    fn realloc_keeps_contents_across_tiers() {
        let _serial = serial();
        let mut p = unsafe { malloc(10) };
        fill(p, 10);
        let mut len = 10;
        for &s in &[
            100usize,
            5000,
            100_000,
            1 << 20,
            64 << 20,
            2 << 20,
            3000,
            5,
            0,
        ] {
            let q = unsafe { realloc(p, s) };
            assert!(!q.is_null());
            let keep = len.min(s);
            for i in 0..keep {
                assert_eq!(
                    unsafe { *q.add(i) },
                    (p as usize).wrapping_add(i) as u8,
                    "size {s} byte {i}"
                );
            }
            // Re-fill with the new address's pattern.
            fill(q, s);
            p = q;
            len = s;
        }
        unsafe { free(p) };
    }

    #[test]
    fn calloc_zeroes_and_checks_overflow() {
        let _serial = serial();
        for &s in &[1usize, 100, 5000, 300_000, 3 << 20] {
            for _ in 0..3 {
                let p = unsafe { calloc(1, s) };
                assert!((0..s).all(|i| unsafe { *p.add(i) } == 0));
                unsafe { core::ptr::write_bytes(p, 0xAB, s) };
                unsafe { free(p) };
            }
        }
        assert!(unsafe { calloc(usize::MAX / 2, 3) }.is_null());
        assert!(unsafe { malloc(usize::MAX - 100) }.is_null());
    }
}
