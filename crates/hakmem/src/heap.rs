//! A thread's heap: its thread cache bins and, per class, the slabs it owns. Everything here is the
//! slow path behind the bins: refilling a bin from slabs, flushing a full bin back, collecting
//! blocks other threads freed, and retiring the heap when its thread exits (its slabs that still
//! hold live blocks become orphans, `orphans.rs`). Where heaps come from: `heap_pool.rs`; when a
//! thread gets and loses one: `thread_heap.rs`; frees from other threads: `remote_free.rs`.
//!
//! Per class a heap has one `current` slab that refills the bin, `partial` slabs with free blocks,
//! and `full` slabs with none. Other threads freeing into a slab push onto its remote list and set
//! the class's bit in `remote_hint`, which tells the owner which lists are worth scanning.
//!
//! What other threads touch, which is what makes the owner's access sound: a heap is reached only
//! through raw pointers and shared references (`Heap`'s methods take `&self`; no `&mut Heap`,
//! `&mut Bin` or `&mut Slab` is ever made), and every field another thread may touch is atomic:
//! - a thread freeing a block of one of this heap's slabs (`free_remote`) reads the slab's
//!   `owner`, then this heap's `retirements` (atomic) and the head of the bin of the block's class
//!   (an `AtomicPtr`, relaxed), and sets the class's bit in `remote_hint` (atomic `fetch_or`);
//! - `stats` reads `counters` (atomics) of every heap, following `all_next`, which is written once
//!   before the heap is published;
//! - the pool's lock holder writes `pool_next` (a `Cell`) of a heap nobody uses.
//!
//! Everything else (`classes`, the bins' `room` and `cap`, `slow_calls`) is owner-only, in
//! `Cell`s and `UnsafeCell`s. The slabs follow the same rule (`slab.rs`).

use crate::clock;
use crate::knobs::{cache_cap, refill_batch};
use crate::list::List;
use crate::remote::Block;
use crate::remote_free::Outbox;
use crate::size_class::{NUM_CLASSES, NUM_SMALL_CLASSES};
use crate::slab::{Owner, Place, Slab};
use crate::superslab::{self, slab_of};
use crate::thread_cache::{self, Bin};
use core::cell::{Cell, UnsafeCell};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

// `classes_used`, `mid_active` and the remote hints are masks of one bit per class.
const _: () = assert!(NUM_CLASSES <= 64);

/// Class `c`'s slabs. Owner only (see the module header).
struct ClassSlabs {
    current: *mut Slab,
    partial: List<Slab>,
    full: List<Slab>,
    /// Refills of the class since the heap's owner took it, up to `SLOW_START` (see there).
    refills: u32,
    /// The bin's cap is `cache_cap` times 2^`cap_shift` (see `grown_cap`).
    cap_shift: u32,
    /// The class's last slow call was a flush.
    flushed: bool,
    /// The class was refilled since the last `CAP_DECAY_PERIOD` slow calls began.
    refilled: bool,
}

impl ClassSlabs {
    /// No slabs, and the class's slow start and cap growth from the beginning.
    const fn new() -> Self {
        ClassSlabs {
            current: null_mut(),
            partial: List::new(),
            full: List::new(),
            refills: 0,
            cap_shift: 0,
            flushed: false,
            refilled: false,
        }
    }
}

/// A bin that flushes and is then refilled was too small for the program's round of frees and
/// allocations: its cap doubles (`cap_shift`), up to 8 times `cache_cap` and `GROWN_CAP_BYTES` of
/// blocks. A class not refilled over `CAP_DECAY_PERIOD` slow calls of its heap halves it again.
/// glibc-simple frees 1,600 blocks of a class and allocates them again, round after round: with
/// the cap fixed at 256, each round flushed and refilled a dozen times.
const MAX_CAP_SHIFT: u32 = 3;
const GROWN_CAP_BYTES: u32 = 128 * 1024;
const CAP_DECAY_PERIOD: u32 = 4096;

/// Mid classes up to this block size keep their bin's first block (usually the last one freed)
/// through the rounds of `purge_idle_mid_blocks`. A program that takes one block of a class and
/// frees it again never calls a slow path for it, so the rounds take its class for idle: espresso's
/// bins went back to their slabs round after round, to be purged and faulted in again (3,110 page
/// faults; 1,720 with the first block kept, and a lower peak). A thread keeps at most 364 KiB of
/// blocks this way (12 classes); a kept block also keeps its slab from going back empty.
const MID_KEPT_MAX: usize = 64 * 1024;

/// Class `c`'s bin cap at `shift` (see `MAX_CAP_SHIFT`).
fn grown_cap(c: usize, shift: u32) -> u32 {
    let base = cache_cap(c);
    let bound = (GROWN_CAP_BYTES / crate::size_class::class_size(c) as u32).max(base);
    (base << shift).min(bound)
}

/// A class's first refills in a heap take a quarter, then half of the batch: carving writes every
/// block it hands over, so a thread that uses a class a little (most of the 52, in most threads)
/// touches a few KiB of it rather than the whole batch, and a busy class reaches the full batch
/// on its third refill.
const SLOW_START: u32 = 2;

/// The part of a heap that threads freeing into its slabs touch on every such free. It has a cache
/// line of its own: the owner's slow-path state next to it would otherwise take the line away from
/// them at every refill.
#[repr(C, align(64))]
pub struct Mailbox {
    /// Bit c set: some slab of class c got a remote free since the owner last looked.
    pub remote_hint: AtomicU64,
    /// How many times this heap was retired; never reset (a pooled heap is used again). A remote
    /// free reads it to learn whether the heap it hinted retired meanwhile (`free_remote`).
    pub retirements: AtomicU32,
}

#[repr(C)]
pub struct Heap {
    pub bins: [Bin; NUM_CLASSES],
    /// `thread_cache::thread_token()` of the thread using the heap, 0 while none does (retired, or
    /// borrowed by a thread without a heap): what its slabs' `owner_thread` is set to.
    pub thread: Cell<usize>,
    /// `thread_cache::BIN_OFFSETS`, written when the heap is set up (`small_bin`).
    pub bin_offsets: UnsafeCell<thread_cache::BinOffsets>,
    /// Owner only; reached through `slabs`, a raw pointer per class, so no reference to one class's
    /// lists outlives the statement that uses it.
    classes: [UnsafeCell<ClassSlabs>; NUM_CLASSES],
    /// What other threads' frees read and write, on a cache line of its own.
    pub mail: Mailbox,
    /// Slow-path calls (refills and flushes), to collect remote frees every `COLLECT_PERIOD`.
    /// Owner only.
    slow_calls: Cell<u32>,
    /// When the heap next gives back the pages of its mid slabs' idle free blocks
    /// (`purge_idle_mid_blocks`; ms, `clock::now_ms`). Owner only.
    mid_purge_due_ms: Cell<u64>,
    /// Bit c set: mid class c had a refill or flush since the last such round. Owner only.
    mid_active: Cell<u64>,
    /// Bit c set: class c was refilled since the heap was set up, so it may hold blocks or slabs:
    /// the classes `retire` goes through. Owner only.
    classes_used: Cell<u64>,
    /// Blocks this heap's thread freed into another heap's slab, not yet sent. Owner only.
    pub outbox: Outbox,
    /// Next in the pool of finished heaps; only touched with the pool's lock held.
    pub pool_next: Cell<*mut Heap>,
    /// Next in the list of every heap ever made (for summing counters); never changes once set.
    pub all_next: *mut Heap,
    pub counters: crate::stats::HeapCounters,
}

/// Every this many slow-path calls a heap collects the remote frees of all its classes, so
/// slabs emptied by other threads go back even if the owner never needs a new slab.
const COLLECT_PERIOD: u32 = 64;

/// Every this many slow-path calls a heap asks whether a purge is due (`purge.rs`): the question
/// reads the clock, which costs as much as a refill of a busy producer when asked at each one.
const PURGE_CHECK_PERIOD: u32 = 8;

// Every method takes `&self`: other threads read and set the atomics and read the bins' heads while
// the owner runs these (see the module header), so no `&mut Heap` may exist.
impl Heap {
    /// A heap with empty bins that have no room (`thread_cache::EMPTY_HEAP`).
    pub const fn empty() -> Heap {
        Heap {
            bins: [const { Bin::new(0) }; NUM_CLASSES],
            thread: Cell::new(0),
            bin_offsets: UnsafeCell::new(thread_cache::BIN_OFFSETS),
            classes: [const { UnsafeCell::new(ClassSlabs::new()) }; NUM_CLASSES],
            mail: Mailbox {
                remote_hint: AtomicU64::new(0),
                retirements: AtomicU32::new(0),
            },
            slow_calls: Cell::new(0),
            mid_purge_due_ms: Cell::new(0),
            mid_active: Cell::new(0),
            classes_used: Cell::new(0),
            outbox: Outbox::new(),
            pool_next: Cell::new(null_mut()),
            all_next: null_mut(),
            counters: crate::stats::HeapCounters::new(),
        }
    }

    /// This heap as the owner of a slab of class `c`.
    pub fn owner_of(&self, c: usize) -> Owner {
        Owner {
            heap: self as *const Heap as *mut Heap,
            thread: self.thread.get(),
            bin: &self.bins[c],
        }
    }

    /// Class `c`'s slabs. Only the owner dereferences it, and never while a reference from an
    /// earlier dereference is live.
    #[inline]
    fn slabs(&self, c: usize) -> *mut ClassSlabs {
        self.classes[c].get()
    }

    /// Makes a fresh or pooled heap ready for a new owner, the only thread that holds it.
    pub fn init(&self) {
        // In safe mode the caches hold nothing, so every allocation and free takes a checked path.
        let safe = crate::check::safe_mode();
        // SAFETY: only the thread setting the heap up holds it.
        unsafe { *self.bin_offsets.get() = thread_cache::BIN_OFFSETS };
        for c in 0..NUM_CLASSES {
            self.bins[c].reset(if safe { 0 } else { cache_cap(c) });
            // SAFETY: only the thread setting the heap up holds it, and no reference to its
            // classes is live.
            unsafe { *self.slabs(c) = ClassSlabs::new() };
        }
        self.thread.set(0);
        self.mail.remote_hint.store(0, Ordering::Relaxed);
        self.slow_calls.set(0);
        self.mid_purge_due_ms.set(0);
        self.mid_active.set(0);
        self.classes_used.set(0);
        self.pool_next.set(null_mut());
    }

    /// Bookkeeping of every refill and flush, of class `c`: the deferred work below runs every
    /// so many calls (mid classes check the heap's purge round at each: their refills and
    /// flushes are rare, and hand over or take back at least 8 KiB a block).
    fn count_slow_call(&self, c: usize) {
        self.outbox.flush();
        let n = self.slow_calls.get().wrapping_add(1);
        self.slow_calls.set(n);
        if n.is_multiple_of(COLLECT_PERIOD) {
            self.collect_all_remote();
            crate::orphans::reap();
        }
        let mid = !crate::size_class::is_small(c);
        if mid {
            self.mid_active.set(self.mid_active.get() | 1 << c);
        }
        if n.is_multiple_of(PURGE_CHECK_PERIOD) {
            crate::purge::purge_if_due();
        }
        if mid || n.is_multiple_of(PURGE_CHECK_PERIOD) {
            self.purge_idle_mid_blocks();
        }
        if n.is_multiple_of(CAP_DECAY_PERIOD) {
            self.decay_caps();
        }
    }

    /// Every fifth of the purge delay (`knobs::mid_round_ms`), a round over this heap's mid
    /// classes: the bin of a class with no refill or flush since the last round goes back to its
    /// slabs (but for its first block, in classes up to `MID_KEPT_MAX`), and the free
    /// blocks of the current and partial slabs that were free at the last round give back their
    /// pages (`Slab::purge_idle_free_blocks`). A mid slab is a whole SuperSlab, seldom empty as a
    /// whole, and the pages of its freed blocks serve no other class: without this, a class whose
    /// use fell off would keep them resident (cc1 compiling a large file holds a few freed blocks
    /// of most mid classes).
    fn purge_idle_mid_blocks(&self) {
        if crate::check::safe_mode() {
            return;
        }
        let now = clock::now_ms();
        if now < self.mid_purge_due_ms.get() {
            return;
        }
        self.mid_purge_due_ms
            .set(now + crate::knobs::mid_round_ms());
        let active = self.mid_active.replace(0);
        let mut bytes = 0;
        for c in NUM_SMALL_CLASSES..NUM_CLASSES {
            if active & 1 << c == 0 && self.bins[c].count() != 0 {
                let keep = (crate::size_class::class_size(c) <= MID_KEPT_MAX) as u32;
                self.return_blocks(c, self.bins[c].split_off(keep));
            }
            let cs = self.slabs(c);
            // SAFETY: owner only; the current slab and the partial list's slabs are this heap's
            // (this thread their only writer), and purging moves none of them.
            unsafe {
                let cur = (*cs).current;
                if !cur.is_null() {
                    bytes += (*cur).purge_idle_free_blocks();
                }
                let mut s = (*cs).partial.head;
                while !s.is_null() {
                    bytes += (*s).purge_idle_free_blocks();
                    s = (*s).links.next.get();
                }
            }
        }
        if bytes > 0 {
            crate::stats::add(&crate::stats::PURGED_BYTES, bytes as u64);
        }
    }

    /// Runs a round of `purge_idle_mid_blocks` now, whenever the last one ran; none runs by itself
    /// until the next call.
    #[cfg(test)]
    pub(crate) fn run_mid_round(&self) {
        self.mid_purge_due_ms.set(0);
        self.purge_idle_mid_blocks();
        self.mid_purge_due_ms.set(u64::MAX);
    }

    /// Halves the grown cap of every class not refilled since the last call (a bin above its new
    /// cap flushes at its next free).
    pub(crate) fn decay_caps(&self) {
        for c in 0..NUM_CLASSES {
            // SAFETY: the owner is the only thread that touches `classes`; no reference is live.
            let cs = unsafe { &mut *self.slabs(c) };
            if !cs.refilled && cs.cap_shift > 0 {
                cs.cap_shift -= 1;
                if self.bins[c].cap() != 0 {
                    self.bins[c].set_cap(grown_cap(c, cs.cap_shift));
                }
            }
            cs.refilled = false;
        }
    }

    /// Whether this slow call is one the tuner samples.
    fn sampled(&self) -> bool {
        (self.slow_calls.get() as u64).is_multiple_of(crate::tuning::SAMPLE_PERIOD)
    }

    /// Refills the bin of class `c`. Returns false only when no memory can be had. Called by the
    /// heap's owner only.
    #[cold]
    pub fn refill(&self, c: usize) -> bool {
        let timer = crate::tuning::Timer::start(self.sampled());
        let ok = self.refill_untimed(c);
        timer.stop(crate::size_class::class_size(c));
        ok
    }

    fn refill_untimed(&self, c: usize) -> bool {
        self.classes_used.set(self.classes_used.get() | 1 << c);
        self.count_slow_call(c);
        crate::stats::bump(&self.counters.refills[c]);
        let bin = &self.bins[c];
        // The cap follows the live knob (0 stays 0: safe mode keeps caches empty).
        let cs = self.slabs(c);
        let batch = if bin.cap() == 0 {
            1
        } else {
            // SAFETY: the owner is the only thread that touches `classes`; no reference is live.
            let state = unsafe { &mut *cs };
            if state.flushed && state.cap_shift < MAX_CAP_SHIFT {
                state.cap_shift += 1;
            }
            state.flushed = false;
            state.refilled = true;
            bin.set_cap(grown_cap(c, state.cap_shift));
            let shift = SLOW_START - state.refills;
            state.refills = (state.refills + 1).min(SLOW_START);
            (refill_batch(c) >> shift).max(1)
        };
        loop {
            // SAFETY: the owner is the only thread that touches `classes`; `cs` is not
            // dereferenced across the calls below that reach it themselves.
            let cur = unsafe { (*cs).current };
            if !cur.is_null() {
                // SAFETY: `cur` is a slab this heap owns: this thread is its only writer, and
                // `take_batch` takes it by shared reference, as other threads may read it.
                if unsafe { (*cur).take_batch(bin, batch) } > 0 {
                    return true;
                }
                // SAFETY: as above; `cur` leaves `current` for the full list.
                unsafe {
                    (*cur).place.set(Place::Full);
                    (*cs).full.push_front(cur);
                    (*cs).current = null_mut();
                }
            }
            let next = self.next_slab(c);
            if next.is_null() {
                return false;
            }
            // SAFETY: `next` is a slab this heap owns, in no list.
            unsafe {
                (*next).place.set(Place::Current);
                (*cs).current = next;
            }
        }
    }

    /// A slab of class `c` to become current: a partial one, one with remote frees, an orphan, or a
    /// new one.
    fn next_slab(&self, c: usize) -> *mut Slab {
        let cs = self.slabs(c);
        // SAFETY: owner only; the partial list holds slabs this heap owns.
        let s = unsafe { (*cs).partial.pop_front() };
        if !s.is_null() {
            return s;
        }
        self.collect_remote(c);
        // SAFETY: owner only, and no reference from the pop above is live after `collect_remote`.
        let s = unsafe { (*cs).partial.pop_front() };
        if !s.is_null() {
            return s;
        }
        let s = crate::orphans::adopt(c, self.owner_of(c));
        if !s.is_null() {
            return s;
        }
        // About to take new memory: first give back what remote frees and orphans have emptied.
        self.collect_all_remote();
        crate::orphans::reap();
        // SAFETY: owner only.
        let full = unsafe { (*cs).full.len } as u32;
        let me = self.owner_of(c);
        let s = superslab::acquire_slab(c, me, full);
        if !s.is_null() {
            return s;
        }
        // The OS refused a new SuperSlab: give back every cached region and try once more.
        crate::purge::release_all();
        superslab::acquire_slab(c, me, full)
    }

    /// Drains the remote lists of class `c`'s partial and full slabs if the hint says to; empty
    /// slabs are released, slabs that got blocks back become partial. (The lists are reached
    /// through raw pointers because a slab moves from one of the class's lists to the other inside
    /// the loop.)
    fn collect_remote(&self, c: usize) {
        let bit = 1u64 << c;
        if self.mail.remote_hint.load(Ordering::SeqCst) & bit == 0 {
            return;
        }
        self.mail.remote_hint.fetch_and(!bit, Ordering::SeqCst);
        let cs = self.slabs(c);
        for from_full in [true, false] {
            // SAFETY: owner only; `addr_of` makes no reference to the class's lists.
            let list: *mut List<Slab> = unsafe {
                if from_full {
                    &raw mut (*cs).full
                } else {
                    &raw mut (*cs).partial
                }
            };
            // SAFETY: owner only.
            let mut s = unsafe { (*list).head };
            while !s.is_null() {
                // SAFETY: the lists hold slabs this heap owns (valid, this thread their only
                // writer); `next` is read before `s` moves; each list call borrows one list for
                // that call only.
                unsafe {
                    let next = (*s).links.next.get();
                    if !(*s).remote.0.is_empty() {
                        (*s).drain_remote();
                        if (*s).used.get() == 0 {
                            (*list).remove(s);
                            superslab::release_slab(s);
                        } else if from_full {
                            (*list).remove(s);
                            (*s).place.set(Place::Partial);
                            (*cs).partial.push_front(s);
                        }
                    }
                    s = next;
                }
            }
        }
    }

    fn collect_all_remote(&self) {
        let mut hint = self.mail.remote_hint.load(Ordering::SeqCst);
        while hint != 0 {
            let c = hint.trailing_zeros() as usize;
            hint &= hint - 1;
            self.collect_remote(c);
        }
    }

    /// Flushes half of class `c`'s bin (the older half) back to the slabs. Called by the heap's
    /// owner only.
    #[cold]
    pub fn flush(&self, c: usize) {
        let timer = crate::tuning::Timer::start(self.sampled());
        self.count_slow_call(c);
        crate::stats::bump(&self.counters.flushes);
        let bin = &self.bins[c];
        if bin.cap() != 0 {
            // SAFETY: the owner is the only thread that touches `classes`; no reference is live.
            let state = unsafe { &mut *self.slabs(c) };
            state.flushed = true;
            bin.set_cap(grown_cap(c, state.cap_shift));
        }
        let keep = bin.cap() / 2;
        let rest = bin.split_off(keep);
        self.return_blocks(c, rest);
        timer.stop(crate::size_class::class_size(c));
    }

    fn return_blocks(&self, c: usize, mut b: *mut Block) {
        let cs = self.slabs(c);
        while !b.is_null() {
            // SAFETY: blocks in a bin are free blocks of slabs this heap owns, so their slabs are
            // valid and this thread is their only writer; the lists are owner only.
            unsafe {
                let next = (*b).next;
                let s = slab_of(b as usize);
                (*s).put_local(b);
                let place = (*s).place.get();
                if place != Place::Current {
                    if (*s).used.get() == 0 {
                        if place == Place::Full {
                            (*cs).full.remove(s);
                        } else {
                            (*cs).partial.remove(s);
                        }
                        superslab::release_slab(s);
                    } else if place == Place::Full {
                        (*cs).full.remove(s);
                        (*s).place.set(Place::Partial);
                        (*cs).partial.push_front(s);
                    }
                }
                b = next;
            }
        }
    }

    /// Thread exit: every cached block goes back, empty slabs are released, the rest orphaned.
    pub fn retire(&self) {
        self.outbox.flush();
        // Only the classes refilled hold blocks or slabs (most threads use a few of the 52).
        let mut used = self.classes_used.get();
        while used != 0 {
            let c = used.trailing_zeros() as usize;
            used &= used - 1;
            let all = self.bins[c].split_off(0);
            // Returning blocks may release partial/full slabs; the current one is handled below.
            self.return_blocks(c, all);
            let cs = self.slabs(c);
            // SAFETY: owner only; these are slabs this heap owns, and each leaves its list before
            // it is handed on.
            unsafe {
                let cur = (*cs).current;
                (*cs).current = null_mut();
                if !cur.is_null() {
                    crate::orphans::retire_slab(c, cur);
                }
                loop {
                    let s = (*cs).partial.pop_front();
                    if s.is_null() {
                        break;
                    }
                    crate::orphans::retire_slab(c, s);
                }
                loop {
                    let s = (*cs).full.pop_front();
                    if s.is_null() {
                        break;
                    }
                    crate::orphans::retire_slab(c, s);
                }
            }
        }
        #[cfg(debug_assertions)]
        for c in (0..NUM_CLASSES).filter(|c| self.classes_used.get() & 1 << c == 0) {
            // SAFETY: owner only; no reference to the class's lists is live.
            let cs = unsafe { &*self.slabs(c) };
            debug_assert!(
                self.bins[c].count() == 0
                    && cs.current.is_null()
                    && cs.partial.len == 0
                    && cs.full.len == 0,
                "class {c}, never refilled, holds blocks or slabs"
            );
        }
        // A remote free that read this heap as its slab's owner before the slab was orphaned may
        // push onto the orphan and hint here: the hints that came in go to the orphans, and a
        // free that hints after this sees the new count and forwards its own (`free_remote`).
        self.thread.set(0);
        self.mail.retirements.fetch_add(1, Ordering::SeqCst);
        let late = self.mail.remote_hint.swap(0, Ordering::SeqCst);
        if late != 0 {
            crate::orphans::ORPHAN_HINT.fetch_or(late, Ordering::SeqCst);
        }
        crate::orphans::reap();
        crate::purge::purge_if_due();
    }
}
