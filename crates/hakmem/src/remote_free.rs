//! A free of a block whose slab another heap owns, or no heap (an orphan): the block goes on the
//! slab's remote list and the owner is told through its hint word.

use crate::heap::Heap;
use crate::orphans::{ORPHAN_FREE_MS, ORPHAN_HINT};
use crate::os;
use crate::purge::purge_if_due;
use crate::remote::Block;
use crate::slab::Slab;
use crate::thread_cache;
use core::sync::atomic::{AtomicU64, Ordering};

/// See `free_remote`.
const REMOTE_PURGE_PERIOD: u64 = 8;

/// Frees a block of a slab owned by another heap (or orphaned): push it on the slab's remote list
/// and tell the owner. The slab's metadata is read before the push: once the block is on the list
/// the owner may drain it and return the slab, whose SuperSlab may then be unmapped, so the
/// freeing thread must not touch it after.
///
/// The owner may change between that read and the push, so the hint may reach a heap that no
/// longer holds the slab. What bounds how long the block then waits:
/// - The owner read is checked (`owner_of`): the heap still owned the slab after its retirement
///   count was read, so a retirement that orphans the slab later changes the count.
/// - Orphaned in between (the owner's thread exited): `retire` bumps the count and then forwards
///   the hint bits that came in to `ORPHAN_HINT`; here the hint is set before the count is read
///   again (all SeqCst), so either this thread sees the new count and sets `ORPHAN_HINT` itself,
///   or the retirement sees the hint and forwards it. `ORPHAN_HINT` thus has the bit after the
///   push, and the next `orphans::reap` (any heap's slow path every `COLLECT_PERIOD` calls, before
///   it maps memory, or a thread's exit) drains the slab and releases it if it is empty.
/// - Orphaned and adopted by another heap, which drained it, all before the push: that heap made
///   it its current slab, whose remote list it drains whenever the free list runs dry, before
///   the slab can leave `current`. Only a push later still (the whole slab used up in between)
///   waits for that heap's next collection of the class (any remote free into one of its slabs
///   of the class), for the slab to become current again, or for the heap's thread to exit. The
///   block is never lost, and the slab is one that heap holds anyway.
///
/// # Safety
/// `b` is a live block of `slab`.
#[inline]
pub unsafe fn free_remote(slab: *mut Slab, b: *mut Block) {
    let me = thread_cache::current();
    // A free into another thread's slab is a slow path: every REMOTE_PURGE_PERIOD of them (each,
    // for a thread without a heap) checks whether idle memory is due to go back (`purge.rs`).
    let check_purge = if thread_cache::is_empty_heap(me) {
        true
    } else {
        // SAFETY: this thread's heap is valid; its counters are atomics it alone writes.
        let n = unsafe { &(*me).counters.remote_frees };
        crate::stats::bump(n);
        n.load(Ordering::Relaxed) % REMOTE_PURGE_PERIOD == 0
    };
    if check_purge {
        purge_if_due();
    }
    // SAFETY: `b` is a live block of `slab`, so the slab is valid and formatted for its class
    // (formatted before the block was handed out); it is read only through shared references.
    let slab = unsafe { &*slab };
    let (owner, retirements) = owner_of(slab);
    let class = slab.class.get() as usize;
    let bit = 1u64 << class;
    if owner.is_null() {
        // Before the push, so a reap that drains this block reads this time or a later one.
        ORPHAN_FREE_MS.store(os::now_ms(), Ordering::SeqCst);
    }
    // A block freed while it is free sits at the head of the list its last free put it on: the
    // owner's thread cache bin (the owner freed it), the slab's local free list (the owner flushed
    // it), or the slab's remote list (another thread freed it). A block on one of these lists is
    // never handed out, so a match is always a double free; a block taken off a list before it was
    // handed to this thread reads as taken (the holder's store happened before this free).
    if slab.remote.0.head() == b
        || slab.free_list() == b
        // SAFETY: heaps are never unmapped, so even a stale owner is valid; its bins' heads are
        // atomics, read by shared reference.
        || (!owner.is_null() && unsafe { (*owner).bins[class].head() } == b)
    {
        crate::check::report("free", "double free", b as usize);
    }
    slab.remote.0.push(b);
    if owner.is_null() {
        set_hint(&ORPHAN_HINT, bit);
        return;
    }
    // SAFETY: as above; only the owner's atomics (hint, retirements) are touched from here.
    let owner = unsafe { &*owner };
    set_hint(&owner.remote_hint, bit);
    if owner.retirements.load(Ordering::SeqCst) != retirements {
        set_hint(&ORPHAN_HINT, bit);
    }
}

/// The slab's owner (null: orphaned) and that heap's retirement count, read while the heap owned
/// the slab.
fn owner_of(slab: &Slab) -> (*mut Heap, u32) {
    loop {
        let owner = slab.owner.load(Ordering::SeqCst);
        if owner.is_null() {
            return (owner, 0);
        }
        // SAFETY: heaps are never unmapped, so even a stale owner is readable; `retirements` is
        // atomic.
        let retirements = unsafe { (*owner).retirements.load(Ordering::SeqCst) };
        if slab.owner.load(Ordering::SeqCst) == owner {
            return (owner, retirements);
        }
    }
}

/// Sets `bit` in a hint word, without a locked instruction when it is set already (then whoever
/// clears it scans after this thread's push).
fn set_hint(hint: &AtomicU64, bit: u64) {
    if hint.load(Ordering::SeqCst) & bit == 0 {
        hint.fetch_or(bit, Ordering::SeqCst);
    }
}
