//! A thread's heap: its thread cache bins and, per class, the slabs it owns. Everything here is the
//! slow path behind the bins: refilling a bin from slabs, flushing a full bin back, collecting
//! blocks other threads freed, adopting orphaned slabs, and tearing down at thread exit.
//!
//! Per class a heap has one `current` slab that refills the bin, `partial` slabs with free blocks,
//! and `full` slabs with none. Other threads freeing into a slab push onto its remote list and set
//! the class's bit in `remote_hint`, which tells the owner which lists are worth scanning.
//!
//! At thread exit (a pthread key destructor) the bins are flushed, empty slabs are released, and
//! slabs that still hold live blocks become orphans; a thread that needs a slab of that class
//! adopts one, and `reap_orphans` returns orphans whose blocks have all been freed.
//! Heaps are never unmapped: a finished heap goes to a pool for the next thread, so a stale
//! `owner` pointer read by a remote free always points at valid memory.
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
//! Everything else (`classes`, the bins' `count` and `cap`, `slow_calls`) is owner-only, in
//! `Cell`s and `UnsafeCell`s. The slabs follow the same rule (`slab.rs`).
//!
//! Other key destructors may allocate after hakmem's has run (glibc calls them in up to
//! `PTHREAD_DESTRUCTOR_ITERATIONS` rounds, and one may re-arm itself to run in the last). A heap
//! made then might never be retired, so such a thread never gets one again: each of its
//! allocations borrows a heap from the pool just for that block (`alloc_without_heap`). A thread
//! whose first allocation comes from a key destructor gets a heap and re-arms hakmem's key, which
//! retires it in the next round; only in the last round is there none (glibc offers no later
//! hook), and such a heap stays live.

use crate::knobs::{cache_cap, refill_batch};
use crate::list::List;
use crate::lock::Lock;
use crate::os;
use crate::remote::Block;
use crate::size_class::NUM_CLASSES;
use crate::slab::{Place, Slab};
use crate::superslab::{self, slab_of};
use crate::thread_cache::{self, Bin};
use core::cell::{Cell, UnsafeCell};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Class `c`'s slabs. Owner only (see the module header).
struct ClassSlabs {
    current: *mut Slab,
    partial: List<Slab>,
    full: List<Slab>,
}

#[repr(C)]
pub struct Heap {
    pub bins: [Bin; NUM_CLASSES],
    /// Owner only; reached through `slabs`, a raw pointer per class, so no reference to one class's
    /// lists outlives the statement that uses it.
    classes: [UnsafeCell<ClassSlabs>; NUM_CLASSES],
    /// Bit c set: some slab of class c got a remote free since the owner last looked.
    remote_hint: AtomicU64,
    /// How many times this heap was retired; never reset (a pooled heap is used again). A remote
    /// free reads it to learn whether the heap it hinted retired meanwhile (`free_remote`).
    retirements: AtomicU32,
    /// Slow-path calls (refills and flushes), to collect remote frees every `COLLECT_PERIOD`.
    /// Owner only.
    slow_calls: Cell<u32>,
    /// Next in the pool of finished heaps; only touched with the pool's lock held.
    pool_next: Cell<*mut Heap>,
    /// Next in the list of every heap ever made (for summing counters); never changes once set.
    all_next: *mut Heap,
    pub counters: crate::stats::HeapCounters,
}

/// Every this many slow-path calls a heap collects the remote frees of all its classes, so
/// slabs emptied by other threads go back even if the owner never needs a new slab.
const COLLECT_PERIOD: u32 = 64;

// Every method takes `&self`: other threads read and set the atomics and read the bins' heads while
// the owner runs these (see the module header), so no `&mut Heap` may exist.
impl Heap {
    /// A heap with empty bins that have no room (`thread_cache::EMPTY_HEAP`).
    pub const fn empty() -> Heap {
        Heap {
            bins: [const { Bin::new(0) }; NUM_CLASSES],
            classes: [const {
                UnsafeCell::new(ClassSlabs {
                    current: null_mut(),
                    partial: List::new(),
                    full: List::new(),
                })
            }; NUM_CLASSES],
            remote_hint: AtomicU64::new(0),
            retirements: AtomicU32::new(0),
            slow_calls: Cell::new(0),
            pool_next: Cell::new(null_mut()),
            all_next: null_mut(),
            counters: crate::stats::HeapCounters::new(),
        }
    }

    /// Class `c`'s slabs. Only the owner dereferences it, and never while a reference from an
    /// earlier dereference is live.
    #[inline]
    fn slabs(&self, c: usize) -> *mut ClassSlabs {
        self.classes[c].get()
    }

    /// Makes a fresh or pooled heap ready for a new owner, the only thread that holds it.
    fn init(&self) {
        // In safe mode the caches hold nothing, so every allocation and free takes a checked path.
        let safe = crate::check::safe_mode();
        for c in 0..NUM_CLASSES {
            self.bins[c].reset(if safe { 0 } else { cache_cap(c) });
            // SAFETY: only the thread setting the heap up holds it, and no reference to its
            // classes is live.
            unsafe {
                *self.slabs(c) = ClassSlabs {
                    current: null_mut(),
                    partial: List::new(),
                    full: List::new(),
                }
            };
        }
        self.remote_hint.store(0, Ordering::Relaxed);
        self.slow_calls.set(0);
        self.pool_next.set(null_mut());
    }

    fn count_slow_call(&self) {
        let n = self.slow_calls.get().wrapping_add(1);
        self.slow_calls.set(n);
        if n % COLLECT_PERIOD == 0 {
            self.collect_all_remote();
            reap_orphans();
        }
        purge_if_due();
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
        self.count_slow_call();
        crate::stats::bump(&self.counters.refills[c]);
        let bin = &self.bins[c];
        // The cap follows the live knob (0 stays 0: safe mode keeps caches empty).
        let batch = if bin.cap() == 0 {
            1
        } else {
            bin.set_cap(cache_cap(c));
            refill_batch(c)
        };
        let cs = self.slabs(c);
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
        let s = adopt_orphan(c, self as *const Heap as *mut Heap);
        if !s.is_null() {
            return s;
        }
        // About to take new memory: first give back what remote frees and orphans have emptied.
        self.collect_all_remote();
        reap_orphans();
        // SAFETY: owner only.
        let has_full = unsafe { (*cs).full.len } > 0;
        superslab::acquire_slab(c, self as *const Heap as *mut Heap, has_full)
    }

    /// Drains the remote lists of class `c`'s partial and full slabs if the hint says to; empty
    /// slabs are released, slabs that got blocks back become partial. (The lists are reached
    /// through raw pointers because a slab moves from one of the class's lists to the other inside
    /// the loop.)
    fn collect_remote(&self, c: usize) {
        let bit = 1u64 << c;
        if self.remote_hint.load(Ordering::SeqCst) & bit == 0 {
            return;
        }
        self.remote_hint.fetch_and(!bit, Ordering::SeqCst);
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
        let mut hint = self.remote_hint.load(Ordering::SeqCst);
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
        self.count_slow_call();
        crate::stats::bump(&self.counters.flushes);
        let bin = &self.bins[c];
        if bin.cap() != 0 {
            bin.set_cap(cache_cap(c));
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
    fn retire(&self) {
        for c in 0..NUM_CLASSES {
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
                    retire_slab(c, cur);
                }
                loop {
                    let s = (*cs).partial.pop_front();
                    if s.is_null() {
                        break;
                    }
                    retire_slab(c, s);
                }
                loop {
                    let s = (*cs).full.pop_front();
                    if s.is_null() {
                        break;
                    }
                    retire_slab(c, s);
                }
            }
        }
        // A remote free that read this heap as its slab's owner before the slab was orphaned may
        // push onto the orphan and hint here: the hints that came in go to the orphans, and a
        // free that hints after this sees the new count and forwards its own (`free_remote`).
        self.retirements.fetch_add(1, Ordering::SeqCst);
        let late = self.remote_hint.swap(0, Ordering::SeqCst);
        if late != 0 {
            ORPHAN_HINT.fetch_or(late, Ordering::SeqCst);
        }
        reap_orphans();
        purge_if_due();
    }
}

/// Returns the pages of memory idle past the purge delay (`purge.rs`), if a purge is due, and then
/// the orphaned slabs that other threads' frees have emptied, so memory freed on behalf of exited
/// threads goes back too. Called on every slow path.
pub fn purge_if_due() {
    if crate::purge::due() {
        reap_orphans();
        crate::purge::run();
    }
}

/// Bit c set: an orphaned slab of class c may have received frees since the last reap.
static ORPHAN_HINT: AtomicU64 = AtomicU64::new(0);
/// When a block was last freed into an orphaned slab (ms, `os::now_ms`): a slab the reap finds
/// empty has been free since then at least, which is when its purge delay starts.
static ORPHAN_FREE_MS: AtomicU64 = AtomicU64::new(0);

/// Releases an empty slab or makes it an orphan.
///
/// # Safety
/// The calling heap owns `s`, a slab of class `c` in none of its lists.
unsafe fn retire_slab(c: usize, s: *mut Slab) {
    // SAFETY: the caller owns `s`, so it is valid and this thread is its only writer.
    let slab = unsafe { &*s };
    slab.drain_remote();
    if slab.used.get() == 0 {
        // SAFETY: the slab is empty and in no list.
        unsafe { superslab::release_slab(s) };
        return;
    }
    slab.owner.store(null_mut(), Ordering::SeqCst);
    // A remote free may have come in between the drain and the store: the next holder drains it.
    slab.place.set(Place::Orphan);
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

/// Takes an orphaned slab of class `c` for `heap`.
fn adopt_orphan(c: usize, heap: *mut Heap) -> *mut Slab {
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
        slab.owner.store(heap, Ordering::SeqCst);
        slab.drain_remote();
    }
    s
}

/// Releases the orphaned slabs whose blocks have all been freed by now, in the classes whose
/// orphans got frees since the last reap.
fn reap_orphans() {
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
///   push, and the next `reap_orphans` (any heap's slow path every `COLLECT_PERIOD` calls, before
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

// ---- heap creation, the pool of finished heaps, thread exit, fork ----

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

fn pool_take() -> *mut Heap {
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

fn pool_put(h: *mut Heap) {
    POOL.lock.lock();
    // SAFETY: `h` is a retired heap nobody uses; `pool_next` is written with the lock held.
    unsafe { (*h).pool_next.set(POOL.free.get()) };
    POOL.free.set(h);
    POOL.lock.unlock();
}

static INIT: AtomicU8 = AtomicU8::new(0);
static mut EXIT_KEY: libc::pthread_key_t = 0;
static EXIT_KEY_READY: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static INITIALISING: Cell<bool> = const { Cell::new(false) };
    /// Set when this thread's heap was retired at its exit: it never gets one again.
    static EXITED: Cell<bool> = const { Cell::new(false) };
}

/// Process-wide set-up, once: the thread-exit key and the fork handlers. Either may call malloc,
/// which re-enters here and proceeds (the heap itself needs none of this).
pub fn ensure_init() {
    if INIT.load(Ordering::Acquire) == 2 || INITIALISING.get() {
        return;
    }
    init_once();
}

/// The set-up itself, out of line: its frame (the learner's set-up, over 10 KiB) is probed page by
/// page on entry, and a fresh thread's stack would fault those pages in on its first allocation.
#[cold]
#[inline(never)]
fn init_once() {
    if INIT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        INITIALISING.set(true);
        crate::config::get();
        crate::tuning::init();
        crate::sites::init();
        // SAFETY: plain libc calls with valid arguments; EXIT_KEY is written once, here.
        unsafe {
            let key = &raw mut EXIT_KEY;
            if libc::pthread_key_create(key, Some(on_thread_exit)) == 0 {
                EXIT_KEY_READY.store(1, Ordering::Release);
            }
            libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
        }
        INITIALISING.set(false);
        INIT.store(2, Ordering::Release);
    } else {
        while INIT.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}

/// This thread's heap, created on first use; null when no memory is left, or when the thread's
/// heap was retired at its exit (then `alloc_without_heap`).
#[cold]
pub fn current_or_create() -> *mut Heap {
    let h = thread_cache::current();
    if !thread_cache::is_empty_heap(h) {
        return h;
    }
    if EXITED.get() {
        return null_mut();
    }
    ensure_init();
    let h = thread_cache::current();
    if !thread_cache::is_empty_heap(h) {
        return h;
    }
    let h = pool_take();
    if h.is_null() {
        return h;
    }
    // SAFETY: `h` is fresh or retired memory of the right size that only we hold.
    unsafe { (*h).init() };
    thread_cache::set_current(h);
    if EXIT_KEY_READY.load(Ordering::Acquire) == 1 {
        // SAFETY: the key was created; setspecific may allocate, which finds `h` already set.
        unsafe { libc::pthread_setspecific(EXIT_KEY, h as *const libc::c_void) };
    }
    h
}

/// A block of class `c` for a thread without a heap (`current_or_create` gave none): a heap from
/// the pool, with no cache for that class, takes one block from a slab and is retired again at
/// once; the slab goes back to the orphans with the block in use, and the next such call of the
/// class adopts it again. Null when no memory is left.
#[cold]
pub fn alloc_without_heap(c: usize) -> *mut Block {
    let h = pool_take();
    if h.is_null() {
        return null_mut();
    }
    // SAFETY: `h` is fresh or retired memory of the right size that only we hold; it is never
    // this thread's current heap, so nothing else reaches its bins.
    let heap = unsafe { &*h };
    heap.init();
    // An empty cap: the refill takes one block.
    heap.bins[c].set_cap(0);
    let b = if heap.refill(c) {
        heap.bins[c].pop()
    } else {
        null_mut()
    };
    heap.retire();
    pool_put(h);
    b
}

extern "C" fn on_thread_exit(arg: *mut libc::c_void) {
    let h = arg as *mut Heap;
    if h.is_null() {
        return;
    }
    EXITED.set(true);
    thread_cache::set_current(thread_cache::empty_heap());
    // SAFETY: `h` is this thread's heap; the thread runs no more allocator code with it.
    unsafe { (*h).retire() };
    pool_put(h);
}

/// Every global lock, in the order they nest (the learner's outermost: an epoch's end reads
/// BigCache's content; orphans before the SuperSlab manager; the others never nest). The fork
/// handlers take them all, so the child never inherits a held one.
///
/// Other libraries' fork handlers may allocate: glibc runs prepare handlers in reverse order of
/// registration and the parent and child ones in order, so a handler registered before hakmem's
/// (any library initialised before libhakmem.so, or any registered before a Rust program's first
/// allocation) runs its prepare step after `fork_prepare` and its parent or child step before
/// `fork_parent` or `fork_child`, on the forking thread, with every lock held. The locks let that
/// thread through (`lock::hold_for_fork`), so such a handler allocates and frees as usual.
fn global_locks() -> [&'static Lock; 6] {
    [
        crate::tuning::lock(),
        crate::sites::lock(),
        &POOL.lock,
        &ORPHANS.lock,
        crate::bigcache::lock(),
        superslab::lock(),
    ]
}

extern "C" fn fork_prepare() {
    for l in global_locks() {
        l.lock();
    }
    crate::lock::hold_for_fork(true);
}

extern "C" fn fork_parent() {
    crate::lock::hold_for_fork(false);
    for l in global_locks().iter().rev() {
        l.unlock();
    }
}

extern "C" fn fork_child() {
    crate::lock::hold_for_fork(false);
    for l in global_locks() {
        l.reset();
    }
}
