//! Heaps are never unmapped: they are carved from mappings of `POOL_CHUNK` bytes, and a finished
//! heap goes to a pool for the next thread, so a stale `owner` pointer read by a remote free
//! always points at valid memory. Every heap ever made is on a list, for summing counters.

use crate::heap::Heap;
use crate::lock::Lock;
use crate::os;
use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

struct Pool {
    lock: Lock,
    free: Cell<*mut Heap>,
    carve: Cell<usize>,
    carve_end: Cell<usize>,
}
// SAFETY: fields are only accessed with `lock` held.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool {
    lock: Lock::new(),
    free: Cell::new(null_mut()),
    carve: Cell::new(0),
    carve_end: Cell::new(0),
};

const POOL_CHUNK: usize = 256 * 1024;

/// The most recently made heap; with `all_next`, every heap ever made (heaps are never unmapped).
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(null_mut());

/// Calls `f` with the counters of every heap ever made.
pub fn for_each_heap(mut f: impl FnMut(&crate::stats::HeapCounters)) {
    let mut h = ALL_HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are never unmapped and `all_next` never changes once published.
        unsafe {
            f(&(*h).counters);
            h = (*h).all_next;
        }
    }
}

/// A heap for a new owner (its memory fresh or retired; the caller sets it up); null when no
/// memory is left.
pub fn pool_take() -> *mut Heap {
    POOL.lock.lock();
    let mut h = POOL.free.get();
    if !h.is_null() {
        // SAFETY: heaps in the pool are valid and unused; `pool_next` is read with the lock held.
        POOL.free.set(unsafe { (*h).pool_next.get() });
    } else {
        let size = os::align_up(core::mem::size_of::<Heap>(), 64);
        if POOL.carve.get() + size > POOL.carve_end.get() {
            let p = os::map(POOL_CHUNK);
            if !p.is_null() {
                POOL.carve.set(p as usize);
                POOL.carve_end.set(p as usize + POOL_CHUNK);
            }
        }
        if POOL.carve.get() + size <= POOL.carve_end.get() {
            h = POOL.carve.get() as *mut Heap;
            POOL.carve.set(POOL.carve.get() + size);
            // SAFETY: fresh zeroed memory for one heap; published once its link is set.
            unsafe { (*h).all_next = ALL_HEAPS.load(Ordering::Relaxed) };
            ALL_HEAPS.store(h, Ordering::Release);
        }
    }
    POOL.lock.unlock();
    h
}

/// Gives back a retired heap.
pub fn pool_put(h: *mut Heap) {
    POOL.lock.lock();
    // SAFETY: `h` is a retired heap nobody uses; `pool_next` is written with the lock held.
    unsafe { (*h).pool_next.set(POOL.free.get()) };
    POOL.free.set(h);
    POOL.lock.unlock();
}

/// The lock the fork handlers hold across `fork()`.
pub fn lock() -> &'static Lock {
    &POOL.lock
}
