//! A free of a block whose slab another heap owns, or no heap (an orphan): the block goes on the
//! slab's remote list (through the freeing thread's outbox) and the owner is told through its hint
//! word.

use crate::clock;
use crate::heap::Heap;
use crate::orphans::{ORPHAN_FREE_MS, ORPHAN_HINT};
use crate::purge::purge_if_due;
use crate::remote::Block;
use crate::slab::Slab;
use crate::thread_cache;
use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU64, Ordering};

/// See `free_remote`.
const REMOTE_PURGE_PERIOD: u64 = 64;

/// Frees a block of a slab owned by another heap (or orphaned), where `append_to_outbox` could
/// not: checks it (a double free is reported as `op`'s), then puts it in this thread's outbox
/// (`Outbox`), or sends it to the slab's owner at once (`send`).
///
/// # Safety
/// `b` is a live block of `slab`.
// Always: its one caller is `free_foreign_slab_slow` (cold, one copy per C free function), and a
// call here cost the remote free path a frame and its saves.
#[inline(always)]
pub unsafe fn free_remote(op: &str, slab: *mut Slab, b: *mut Block) {
    // A thread that only frees (a consumer) gets a heap too, for its outbox and counters.
    let mut me = thread_cache::current();
    if thread_cache::is_empty_heap(me) {
        me = crate::thread_heap::current_or_create();
    }
    if me.is_null() {
        // A thread whose heap was retired at its exit counts nothing and asks at every one.
        purge_if_due();
    } else {
        // SAFETY: a heap other than the empty one is valid while its thread runs.
        count_remote_free(unsafe { &*me });
    }
    // SAFETY: `b` is a live block of `slab`, so the slab is valid and formatted for its class
    // (formatted before the block was handed out); it is read only through shared references.
    let s = unsafe { &*slab };
    let class = s.class.get() as usize;
    // SAFETY: a heap other than the empty one is valid while its thread runs; only its thread
    // (this one) touches the outbox.
    let outbox = (!me.is_null()).then(|| unsafe { &(*me).outbox });
    // SAFETY: `b` is a live block of `slab` (the caller's contract).
    if unsafe { is_free(s, outbox, b) } {
        crate::check::report(op, "double free", b as usize);
    }
    match outbox {
        Some(o) if crate::size_class::is_small(class) && !crate::check::safe_mode() => {
            // SAFETY: `b` is a live block of `slab`, a small slab (the outbox's condition).
            unsafe { o.put(slab, b) }
        }
        // SAFETY: `b` is a live block of `slab`, given up by this free.
        _ => unsafe { send(slab, b, b, 1) },
    }
}

/// Whether `b`, a block of `slab` being freed by a thread that does not own the slab, is free
/// already. A block freed while it is free sits at the head of the list its last free put it on:
/// the owner's thread cache bin (the owner freed it), the slab's local free list (the owner
/// flushed it), the slab's remote list or this thread's outbox (another thread, or this one,
/// freed it). A block on one of these lists is never handed out, so a match is always a double
/// free; a block taken off a list before it was handed to this thread reads as taken (the
/// holder's store happened before this free).
///
/// # Safety
/// `b` is a live block of `slab`.
#[inline(always)]
unsafe fn is_free(slab: &Slab, outbox: Option<&Outbox>, b: *mut Block) -> bool {
    let owner = slab.owner(Ordering::Relaxed);
    slab.remote.0.head() == b
        || slab.free_list() == b
        || outbox.is_some_and(|o| o.first.get() == b)
        || (!owner.is_null()
            // SAFETY: `b` is a live block (the caller's contract), so its first word is readable.
            && unsafe { may_be_cached(b) }
            // SAFETY: heaps are never unmapped, so even a stale owner is valid; its bins' heads
            // are atomics, read by shared reference.
            && unsafe { (*owner).bins[slab.class.get() as usize].head() } == b)
}

/// The common case of a free into another heap's slab, inline in `free`: this thread's outbox
/// already holds blocks of `slab` and has room for `b` without sending. Makes `free_remote`'s
/// double-free check (naming `op`) and its purge check, and links `b` into the outbox. Returns
/// false, having done nothing, otherwise: the outbox holds another slab's blocks, or none (as
/// always in safe mode, and for the empty and exited heaps, whose outboxes are never written),
/// or it is one block short of full.
///
/// Inline, with the same checks, it took a producer-consumer program's remote free from 133
/// instructions (three calls deep) to 77 (callgrind) and its throughput up by about 11 %.
///
/// # Safety
/// `b` is a carved block of `slab`, given up by the caller.
#[inline(always)]
pub unsafe fn append_to_outbox(op: &str, slab: *mut Slab, b: *mut Block) -> bool {
    let me = thread_cache::current();
    // SAFETY: the TLS slot holds this thread's heap, or the empty or exited heap (statics whose
    // outboxes stay empty); only the heap's thread touches its outbox.
    let o = unsafe { &(*me).outbox };
    if o.slab.get() != slab || o.count.get() >= OUTBOX_MAX - 1 {
        return false;
    }
    // SAFETY: `b` is a carved block of `slab` (the caller's contract), so the slab is valid and
    // formatted; it is read only through shared references.
    let s = unsafe { &*slab };
    // SAFETY: as above.
    if unsafe { is_free(s, Some(o), b) } {
        crate::check::report(op, "double free", b as usize);
    }
    // SAFETY: `b` is the caller's to give up.
    unsafe { o.link(b) };
    // SAFETY: the outbox held blocks, so `me` is this thread's own heap.
    count_remote_free(unsafe { &*me });
    true
}

/// Counts a free into another heap's slab, a slow path: every `REMOTE_PURGE_PERIOD` of them
/// checks whether idle memory is due to go back (`purge.rs`).
#[inline(always)]
fn count_remote_free(me: &Heap) {
    // Its counters are atomics only this heap's thread (the caller) writes.
    let n = &me.counters.remote_frees;
    crate::stats::bump(n);
    if n.load(Ordering::Relaxed)
        .is_multiple_of(REMOTE_PURGE_PERIOD)
    {
        purge_if_due();
    }
}

/// The blocks of one small slab that this thread freed and has not yet handed to the slab's
/// owner. Frees that follow each other into the same slab (a consumer freeing what a producer
/// allocated, in order) then cost one push and one hint for up to `OUTBOX_MAX` blocks: it took
/// a producer-consumer program's remote free from a CAS on a shared line per block to one per
/// batch. The blocks wait at most until a free into another slab, the batch is full, this
/// thread's next slow path (refill, flush), `malloc_trim`, or its exit; while they wait, their
/// slab (64 KiB) cannot be released. Only the heap's thread touches its outbox.
pub struct Outbox {
    slab: Cell<*mut Slab>,
    /// The most recently freed block; its link leads to `last`.
    first: Cell<*mut Block>,
    last: Cell<*mut Block>,
    count: Cell<u32>,
}

/// Most blocks an outbox holds before it sends them.
const OUTBOX_MAX: u32 = 64;

impl Outbox {
    pub const fn new() -> Self {
        Outbox {
            slab: Cell::new(null_mut()),
            first: Cell::new(null_mut()),
            last: Cell::new(null_mut()),
            count: Cell::new(0),
        }
    }

    /// Adds `b`, sending what the outbox held first if that was another slab's.
    ///
    /// # Safety
    /// `b` is a live block of `slab`, a small slab, given up by the caller.
    unsafe fn put(&self, slab: *mut Slab, b: *mut Block) {
        if self.slab.get() != slab {
            self.flush();
            self.slab.set(slab);
            self.last.set(b);
        }
        // SAFETY: `b` is the caller's to give up.
        unsafe { self.link(b) };
        if self.count.get() == OUTBOX_MAX {
            self.flush();
        }
    }

    /// Puts `b` at the front of the chain.
    ///
    /// # Safety
    /// `b` is a live block of the outbox's slab, given up by the caller.
    #[inline(always)]
    unsafe fn link(&self, b: *mut Block) {
        // SAFETY: the caller's contract; the block's first word becomes the chain's link.
        unsafe { (*b).next = self.first.get() };
        self.first.set(b);
        self.count.set(self.count.get() + 1);
    }

    /// Sends the blocks the outbox holds to their slab's owner.
    pub fn flush(&self) {
        let n = self.count.get();
        if n == 0 {
            return;
        }
        // SAFETY: the outbox holds `n` live blocks of `slab`, chained from `first` to `last`;
        // they keep the slab from being released until this send.
        unsafe { send(self.slab.get(), self.first.get(), self.last.get(), n) };
        self.slab.set(null_mut());
        self.first.set(null_mut());
        self.last.set(null_mut());
        self.count.set(0);
    }
}

/// Pushes the chain `first` .. `last` of `n` blocks of `slab` on the slab's remote list and tells
/// the owner. The slab's metadata is read before the push: once the blocks are on the list the
/// owner may drain them and return the slab, whose SuperSlab may then be unmapped, so the
/// freeing thread must not touch it after.
///
/// The owner may change between that read and the push, so the hint may reach a heap that no
/// longer holds the slab. What bounds how long the blocks then wait:
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
///   blocks are never lost, and the slab is one that heap holds anyway.
///
/// # Safety
/// `first` .. `last` are `n` live blocks of `slab`, chained, given up by the caller.
unsafe fn send(slab: *mut Slab, first: *mut Block, last: *mut Block, n: u32) {
    // SAFETY: the blocks are live, so the slab is valid; read by shared reference.
    let slab = unsafe { &*slab };
    let (owner, retirements) = owner_of(slab);
    let bit = 1u64 << slab.class.get();
    if owner.is_null() {
        // Before the push, so a reap that drains these blocks reads this time or a later one.
        ORPHAN_FREE_MS.store(clock::now_ms(), Ordering::SeqCst);
    }
    slab.remote.0.push_chain(first, last, n);
    if owner.is_null() {
        set_hint(&ORPHAN_HINT, bit);
        return;
    }
    // SAFETY: as above; only the owner's atomics (hint, retirements) are touched from here.
    let owner = unsafe { &*owner };
    set_hint(&owner.mail.remote_hint, bit);
    if owner.mail.retirements.load(Ordering::SeqCst) != retirements {
        set_hint(&ORPHAN_HINT, bit);
    }
}

/// Whether `b` could be the head of its owner's bin, judged from its first word, which this free
/// writes anyway: a cached block links to the next free block of its class, in a SuperSlab, or to
/// nothing. Anything else proves the block is not cached, and spares this free a read of the
/// owner's bin, a cache line the owner writes at every malloc and free of the class (reading it on
/// every remote free cost a producer-consumer program 13 % of its throughput).
///
/// # Safety
/// `b` is a live block.
#[inline]
unsafe fn may_be_cached(b: *mut Block) -> bool {
    // SAFETY: the caller's contract.
    let next = unsafe { (*b).next };
    next.is_null() || crate::registry::kind_of(next as usize).is_superslab()
}

/// The slab's owner (null: orphaned) and that heap's retirement count, read while the heap owned
/// the slab.
fn owner_of(slab: &Slab) -> (*mut Heap, u32) {
    loop {
        let owner = slab.owner(Ordering::SeqCst);
        if owner.is_null() {
            return (owner, 0);
        }
        // SAFETY: heaps are never unmapped, so even a stale owner is readable; `retirements` is
        // atomic.
        let retirements = unsafe { (*owner).mail.retirements.load(Ordering::SeqCst) };
        if slab.owner(Ordering::SeqCst) == owner {
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
