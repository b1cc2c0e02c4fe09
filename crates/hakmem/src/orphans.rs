//! Orphans: slabs whose owner thread exited while they still held live blocks. Frees into them
//! go on their remote lists and set `ORPHAN_HINT`; a thread that needs a slab of that class adopts
//! one (`adopt`), `reap` returns the orphans whose blocks have all been freed, and
//! `purge_idle_mid_blocks` gives back the pages of mid orphans' idle free blocks, as their owner
//! did while it lived (`Heap::purge_idle_mid_blocks`).

use crate::clock;
use crate::list::List;
use crate::lock::Lock;
use crate::size_class::{NUM_CLASSES, NUM_SMALL_CLASSES};
use crate::slab::{Owner, Place, Slab};
use crate::superslab;
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU64, Ordering};

/// Bit c set: an orphaned slab of class c may have received frees since the last reap.
pub static ORPHAN_HINT: AtomicU64 = AtomicU64::new(0);
/// When a block was last freed into an orphaned slab (ms, `clock::now_ms`): a slab the reap finds
/// empty has been free since then at least, which is when its purge delay starts.
pub static ORPHAN_FREE_MS: AtomicU64 = AtomicU64::new(0);

/// Releases an empty slab or makes it an orphan.
///
/// # Safety
/// The calling heap owns `s`, a slab of class `c` in none of its lists.
pub unsafe fn retire_slab(c: usize, s: *mut Slab) {
    // SAFETY: the caller owns `s`, so it is valid and this thread is its only writer.
    let slab = unsafe { &*s };
    slab.drain_remote();
    if slab.used.get() == 0 {
        // SAFETY: the slab is empty and in no list.
        unsafe { superslab::release_slab(s) };
        return;
    }
    slab.set_owner(Owner::NONE, Ordering::SeqCst);
    // A remote free may have come in between the drain and the store: the next holder drains it.
    slab.place.set(Place::Orphan);
    slab.restart_idle_count();
    ORPHANS.lock.lock();
    // SAFETY: the orphan lock is held; `s` is in no list.
    unsafe { (*ORPHANS.lists.get())[c].push_front(s) };
    ORPHANS.count.set(ORPHANS.count.get() + 1);
    ORPHANS.lock.unlock();
    ORPHAN_HINT.fetch_or(1 << c, Ordering::SeqCst);
}

/// Slabs whose owner thread exited while they still held live blocks, per class.
struct Orphans {
    lock: Lock,
    lists: UnsafeCell<[List<Slab>; NUM_CLASSES]>,
    count: Cell<usize>,
}
// SAFETY: `lists` and `count` are only accessed with `lock` held.
unsafe impl Sync for Orphans {}

static ORPHANS: Orphans = Orphans {
    lock: Lock::new(),
    lists: UnsafeCell::new([const { List::new() }; NUM_CLASSES]),
    count: Cell::new(0),
};

/// Takes an orphaned slab of class `c` for `owner`.
pub fn adopt(c: usize, owner: Owner) -> *mut Slab {
    ORPHANS.lock.lock();
    // SAFETY: the lock is held.
    let s = unsafe { (*ORPHANS.lists.get())[c].pop_front() };
    if !s.is_null() {
        ORPHANS.count.set(ORPHANS.count.get() - 1);
    }
    ORPHANS.lock.unlock();
    if !s.is_null() {
        // SAFETY: the slab left the orphan list, so we are its only holder (and it is valid).
        let slab = unsafe { &*s };
        slab.set_owner(owner, Ordering::SeqCst);
        slab.drain_remote();
        slab.restart_idle_count();
    }
    s
}

/// Releases the orphaned slabs whose blocks have all been freed by now, in the classes whose
/// orphans got frees since the last reap.
pub fn reap() {
    if ORPHAN_HINT.load(Ordering::SeqCst) == 0 {
        return;
    }
    ORPHANS.lock.lock();
    let mut hint = ORPHAN_HINT.swap(0, Ordering::SeqCst);
    // SAFETY: the lock is held, so the lists are ours; the lock holder is the holder of every
    // orphan (valid, and this thread its only writer); `next` is read before a slab leaves.
    unsafe {
        let lists = &mut *ORPHANS.lists.get();
        while hint != 0 {
            let c = hint.trailing_zeros() as usize;
            hint &= hint - 1;
            let list = &mut lists[c];
            let mut s = list.head;
            while !s.is_null() {
                let next = (*s).links.next.get();
                (*s).drain_remote();
                if (*s).used.get() == 0 {
                    list.remove(s);
                    ORPHANS.count.set(ORPHANS.count.get() - 1);
                    superslab::release_slab_freed_at(s, ORPHAN_FREE_MS.load(Ordering::SeqCst));
                }
                s = next;
            }
        }
    }
    ORPHANS.lock.unlock();
}

/// When the next round over the mid orphans is due (ms, `clock::now_ms`).
static MID_ROUND_DUE_MS: AtomicU64 = AtomicU64::new(0);

/// Every purge delay, a round over the orphaned mid slabs: the free blocks that were on a slab's
/// free list at the last round and still are give back their pages
/// (`Slab::purge_idle_free_blocks`). Blocks still on a remote list wait until `reap` or an
/// adopter drains them. Called with the purge (`purge::purge_if_due`); not in safe mode.
pub fn purge_idle_mid_blocks() {
    if crate::check::safe_mode() {
        return;
    }
    let now = clock::now_ms();
    if now < MID_ROUND_DUE_MS.load(Ordering::Relaxed) {
        return;
    }
    MID_ROUND_DUE_MS.store(now + crate::knobs::purge_delay_ms(), Ordering::Relaxed);
    let mut bytes = 0;
    ORPHANS.lock.lock();
    // SAFETY: the lock is held, so the lists are ours and the lock holder is the holder of every
    // orphan (valid, this thread its only writer); purging moves no slab.
    unsafe {
        let lists = &*ORPHANS.lists.get();
        for list in &lists[NUM_SMALL_CLASSES..] {
            let mut s = list.head;
            while !s.is_null() {
                bytes += (*s).purge_idle_free_blocks();
                s = (*s).links.next.get();
            }
        }
    }
    ORPHANS.lock.unlock();
    if bytes > 0 {
        crate::stats::add(&crate::stats::PURGED_BYTES, bytes as u64);
    }
}

/// The lock the fork handlers hold across `fork()`.
pub fn lock() -> &'static Lock {
    &ORPHANS.lock
}
