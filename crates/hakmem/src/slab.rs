//! A slab: a run of equal-sized blocks of one size class, owned by one thread's heap.
//!
//! Blocks leave a slab in batches to the owner's thread cache, carved fresh from `start` upwards or
//! taken from the slab's local free list. Blocks freed by the owner come back through the thread
//! cache's flush; blocks freed by other threads are pushed on `remote` and drained by the owner.
//! `used` counts blocks outside the slab (in a thread cache, in use, or on `remote`): a slab with
//! `used == 0` is empty and can be returned to its SuperSlab.
//!
//! Only the slab's holder (its owner, or for an orphaned slab whoever holds the orphan lock) writes
//! its fields, except `remote`, which other threads push to. Other threads freeing a block of the
//! slab read `owner_thread`, `owner`, `class`, `start`, `block_size`, `divides_magic`, `carved` and
//! the head of `free` (to check the pointer), so the slab is only ever reached through shared
//! references: its methods take `&self`, the holder-only fields are `Cell`s, and those written
//! while others may read them are atomics. No `&mut Slab` is ever made. `remote` sits on its own
//! cache line so that remote frees do not slow down the free fast path's reads of the first one.

use crate::check;
use crate::heap::Heap;
use crate::list::{Linked, Links};
use crate::os::{align_up, PAGE};
use crate::remote::{Block, RemoteList, UNCOUNTED};
use crate::thread_cache::Bin;
use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// `class` of a slab that holds no blocks (free in its SuperSlab, or the header slab).
pub const NO_CLASS: u8 = u8::MAX;

/// Which of its owner's lists a slab is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Place {
    None,
    Current,
    Partial,
    Full,
    Orphan,
}

#[repr(C, align(64))]
pub struct CacheLine<T>(pub T);

/// A slab's owner as its record keeps it: the heap, the `thread_token` of the heap's thread (0 if
/// none) and the heap's bin of the slab's class (`Heap::owner_of`).
#[derive(Clone, Copy)]
pub struct Owner {
    pub heap: *mut Heap,
    pub thread: usize,
    pub bin: *const Bin,
}

impl Owner {
    /// No one: an orphaned or unused slab.
    pub const NONE: Owner = Owner {
        heap: null_mut(),
        thread: 0,
        bin: core::ptr::null(),
    };
}

/// 256 bytes, so a slab's record is found from a block's address with a shift and a mask (the page
/// map's entries are set so; the registry's path of `free` computes it). Aligned to a cache line
/// only: a SuperSlab's records start at a line-sized colour (`superslab.rs`).
#[repr(C, align(64))]
pub struct Slab {
    /// `owner`'s `thread`, 0 while it has none (`set_owner`): a free whose `thread_token` is this
    /// is by the owner, which pushes the block on `bin`. A retired heap leaves no slab with its
    /// token; a heap that is never retired can: after a `fork`, the heaps of the parent's other
    /// threads, and a heap made in the last round of a thread's key destructors. A later thread
    /// can get the same token (glibc reuses a finished thread's stack, and so its thread pointer).
    /// Its fast path then pushes onto that abandoned heap's bin, which no thread pops: the block
    /// stays there, as it would stay on the slab's remote list with no owner to drain it. Its
    /// slow paths check `owner` against the heap itself.
    owner_thread: AtomicUsize,
    /// `owner`'s bin of the slab's class (dereferenced only by a thread whose token matched).
    bin: AtomicPtr<Bin>,
    /// The heap that owns the slab; null while it is orphaned or unused.
    owner: AtomicPtr<Heap>,
    pub start: Cell<usize>,
    /// floor(2^64 / block_size) + 1: `offset * divides_magic < divides_magic` (wrapping) exactly
    /// when `block_size` divides `offset` (Lemire, Kaser and Kurz, 2019; offsets below 2^32, block
    /// sizes below 2^32). For a power of two this is one more than the paper's ceil(2^64 / size),
    /// so that `block_size * divides_magic` (mod 2^64) is never 0 (`carved_bound`).
    pub divides_magic: Cell<u64>,
    /// `start * divides_magic` (wrapping): the fast path's check multiplies the pointer itself.
    start_times_magic: Cell<u64>,
    pub block_size: Cell<u32>,
    /// `carved * (block_size * divides_magic mod 2^64)`: the offset of carved block k times
    /// `divides_magic` is k times that step, so one compare against this bound checks both that an
    /// offset is a block boundary and that the block was carved (`is_carved_block_start`). Owner
    /// only (the fast path's check); other threads use `carved`.
    carved_bound: Cell<u64>,
    pub class: Cell<u8>,
    pub place: Cell<Place>,
    /// The local free list. Atomic (relaxed) only because a thread freeing a block of the slab
    /// reads its head to catch a double free (`remote_free::free_remote`); only the holder writes it.
    free: AtomicPtr<Block>,
    pub capacity: Cell<u32>,
    /// Blocks carved so far. Atomic (relaxed) only because other threads read it to validate a
    /// pointer they free; only the owner writes it.
    pub carved: AtomicU32,
    pub used: Cell<u32>,
    /// How many free blocks at the bottom of the local free list (the end pops reach last) have
    /// had their inner pages returned to the OS (`purge_idle_free_blocks`; mid slabs only).
    purged_free: Cell<u32>,
    /// How many free blocks at the bottom of the local free list were already on it at the last
    /// `purge_idle_free_blocks` (at least `purged_free`).
    idle_free: Cell<u32>,
    pub links: Links<Slab>,
    pub remote: CacheLine<RemoteList>,
    /// Fills the record to 256 bytes.
    _tail: [u64; 8],
}

impl Linked for Slab {
    unsafe fn links(this: *mut Self) -> *const Links<Self> {
        // SAFETY: `this` is valid (the caller's contract); no reference to the record is made.
        unsafe { &raw const (*this).links }
    }
}

const _: () = assert!(core::mem::size_of::<Slab>() == 256);

impl Slab {
    /// Formats the slab for `class` with `capacity` blocks from `start`, owned by `owner`.
    pub fn format(&self, class: usize, start: usize, capacity: u32, owner: Owner) {
        self.set_free_list(null_mut());
        self.start.set(start);
        let block_size = crate::size_class::class_size(class) as u32;
        self.block_size.set(block_size);
        let magic = ((1u128 << 64) / block_size as u128) as u64 + 1;
        self.divides_magic.set(magic);
        self.start_times_magic
            .set((start as u64).wrapping_mul(magic));
        self.capacity.set(capacity);
        self.carved.store(0, Ordering::Relaxed);
        self.carved_bound.set(0);
        self.used.set(0);
        self.purged_free.set(0);
        self.idle_free.set(0);
        self.class.set(class as u8);
        self.place.set(Place::None);
        self.links.prev.set(null_mut());
        self.links.next.set(null_mut());
        self.remote.0.reset();
        self.set_owner(owner, Ordering::Release);
        crate::stats::slab_taken(class, capacity as u64 * block_size as u64);
    }

    /// Marks the slab unused (its SuperSlab gets it back).
    pub fn clear(&self) {
        if self.class.get() != NO_CLASS {
            let bytes = self.capacity.get() as u64 * self.block_size.get() as u64;
            crate::stats::slab_given_back(self.class.get() as usize, bytes);
        }
        self.class.set(NO_CLASS);
        self.place.set(Place::None);
        self.set_owner(Owner::NONE, Ordering::Release);
    }

    /// The heap that owns the slab; null while it is orphaned or unused.
    #[inline(always)]
    pub fn owner(&self, order: Ordering) -> *mut Heap {
        self.owner.load(order)
    }

    /// Hands the slab to `owner` (`Owner::NONE`: to no one), its heap stored with `order`.
    pub fn set_owner(&self, owner: Owner, order: Ordering) {
        // The token goes before the bin changes and comes back after it (the release stores keep
        // the order), so no thread, and no child of a fork taken in between, finds a token with
        // a bin that is not its owner's.
        self.owner_thread.store(0, Ordering::Relaxed);
        self.bin.store(owner.bin as *mut Bin, Ordering::Release);
        self.owner_thread.store(owner.thread, Ordering::Release);
        self.owner.store(owner.heap, order);
    }

    /// The `thread_token` of the owner's thread, 0 if none: a free by the thread with this token
    /// pushes onto `owner_bin` (see `owner_thread`).
    #[inline(always)]
    pub fn owner_thread(&self) -> usize {
        self.owner_thread.load(Ordering::Relaxed)
    }

    /// The owner's bin of the slab's class, for a free whose token matched.
    #[inline(always)]
    pub fn owner_bin(&self) -> *const Bin {
        self.bin.load(Ordering::Relaxed)
    }

    /// The first block of the local free list (null when empty).
    #[inline]
    pub fn free_list(&self) -> *mut Block {
        self.free.load(Ordering::Relaxed)
    }

    #[inline]
    fn set_free_list(&self, b: *mut Block) {
        self.free.store(b, Ordering::Relaxed);
    }

    /// Moves blocks other threads freed onto the local free list. Returns how many.
    pub fn drain_remote(&self) -> u32 {
        let (mut b, count) = self.remote.0.take_counted();
        if b.is_null() {
            return 0;
        }
        let safe = check::safe_mode();
        if self.free_list().is_null() && count != UNCOUNTED && !safe {
            // The list becomes the free list as it is, without a walk: its blocks were just
            // written by other threads, and a walk would take their cache misses one by one.
            self.set_free_list(b);
            self.used.set(self.used.get() - count);
            return count;
        }
        let mut n = 0;
        while !b.is_null() {
            // SAFETY: blocks on the remote list are free blocks of this slab, linked by their
            // pushers.
            let next = unsafe { (*b).next };
            if next == b {
                check::report("free", "double free", b as usize);
            }
            if safe && !next.is_null() && !self.is_block_start(next as usize) {
                check::report("free", "use after free", b as usize);
            }
            self.put_free(b);
            n += 1;
            b = next;
        }
        self.used.set(self.used.get() - n);
        n
    }

    /// Links a block into the local free list (encoded in safe mode).
    #[inline]
    fn put_free(&self, b: *mut Block) {
        let link = if check::safe_mode() {
            check::encode_link(b as usize, self.free_list() as usize) as *mut Block
        } else {
            self.free_list()
        };
        // SAFETY: `b` is a free block of this slab; its first word is the link.
        unsafe { (*b).next = link };
        self.set_free_list(b);
    }

    /// Unlinks the first block of the local free list (checked in safe mode).
    #[inline]
    fn pop_free(&self) -> *mut Block {
        let b = self.free_list();
        // SAFETY: `b` is the first free block of this slab.
        let link = unsafe { (*b).next };
        if check::safe_mode() {
            // SAFETY: as above; a freed block carries its cookie.
            unsafe { check::verify_freed(b as *mut u8, self.block_size.get() as usize) };
            let next = check::encode_link(b as usize, link as usize);
            if next != 0 && !self.is_block_start(next) {
                check::report("malloc", "use after free", b as usize);
            }
            self.set_free_list(next as *mut Block);
        } else {
            self.set_free_list(link);
        }
        b
    }

    /// Moves up to `max` blocks into `bin`: local free list first, then remote frees, and fresh
    /// blocks only when there were no freed ones (topping a short batch up with fresh blocks would
    /// touch new pages while freed ones wait: a mid slab is 2 MiB). Returns how many moved; 0
    /// means the slab has nothing left to give.
    pub fn take_batch(&self, bin: &Bin, max: u32) -> u32 {
        if self.free_list().is_null() {
            self.drain_remote();
        }
        // Blocks neither handed out nor carved-but-unused: the local free list's length.
        let free_len = self.carved.load(Ordering::Relaxed) - self.used.get();
        if !self.free_list().is_null()
            && bin.head().is_null()
            && free_len <= bin.cap()
            && !check::safe_mode()
        {
            // The whole list fits the empty bin: hand it over without walking it. Freed blocks are
            // usually cold, and a walk here takes their cache misses one after another, where
            // pops at malloc time overlap them with the caller's work.
            bin.fill(self.free_list(), free_len);
            self.set_free_list(null_mut());
            self.used.set(self.used.get() + free_len);
            self.free_list_shrank();
            return free_len;
        }
        let mut n = 0;
        while n < max && !self.free_list().is_null() {
            let b = self.pop_free();
            bin.push(b);
            n += 1;
        }
        if n > 0 {
            self.used.set(self.used.get() + n);
            self.free_list_shrank();
            return n;
        }
        let carved = self.carved.load(Ordering::Relaxed);
        let mut fresh = (max - n).min(self.capacity.get() - carved);
        if fresh > 0 {
            let block_size = self.block_size.get() as usize;
            let first = self.start.get() + carved as usize * block_size;
            // Blocks smaller than a page stop at the last page boundary they would cross, if a
            // block fits before it: a carve never ends just past a page boundary, so a class used
            // a little (a first refill takes a quarter of a batch, `heap::SLOW_START`) makes one
            // page resident rather than two (the slab's colour puts its first page's end in the
            // middle of such a batch).
            let end = first + fresh as usize * block_size;
            let boundary = end & !(PAGE - 1);
            if block_size < PAGE && boundary < end && boundary >= first + block_size {
                fresh = ((boundary - first) / block_size) as u32;
            }
            // Linked in address order, so the lowest address comes out of the bin first, and
            // handed over at once: pushed one at a time, each block's push waited on the last
            // one's store of the bin's head.
            let last = first + (fresh as usize - 1) * block_size;
            let mut b = first;
            while b < last {
                // SAFETY: `b` and the block after it are fresh blocks of this slab, carved here.
                unsafe { (*(b as *mut Block)).next = (b + block_size) as *mut Block };
                b += block_size;
            }
            // SAFETY: the blocks from `first` to `last` are carved here and linked in order.
            unsafe { bin.push_list(first as *mut Block, last as *mut Block, fresh) };
            self.set_carved(carved + fresh);
            n += fresh;
        }
        self.used.set(self.used.get() + n);
        n
    }

    /// After pops: the bottom counts of the free list (`purged_free`, `idle_free`) cannot exceed
    /// its length. Pushes go on top, so only pops change them.
    fn free_list_shrank(&self) {
        let len = self.carved.load(Ordering::Relaxed) - self.used.get();
        self.purged_free.set(self.purged_free.get().min(len));
        self.idle_free.set(self.idle_free.get().min(len));
    }

    /// Returns to the OS the pages inside the free blocks that were on the local free list at the
    /// last call and still are (a block's first page stays: it holds the link), and notes the
    /// blocks on it now for the next call: called every round (`knobs::mid_round_ms`), it gives
    /// back what stayed free for one to two rounds. Mid slabs only (their blocks span whole
    /// pages), not in safe mode (freed blocks keep a fill that `pop_free` checks). Returns the
    /// bytes given back.
    ///
    /// # Safety
    /// This is a mid slab held by the calling thread.
    pub unsafe fn purge_idle_free_blocks(&self) -> usize {
        let len = self.carved.load(Ordering::Relaxed) - self.used.get();
        let (purged, idle) = (self.purged_free.get(), self.idle_free.get());
        debug_assert!(purged <= idle && idle <= len, "{purged} {idle} {len}");
        let size = self.block_size.get() as usize;
        let mut bytes = 0;
        let mut b = self.free_list();
        for i in 0..len - purged {
            if i >= len - idle {
                let from = align_up(b as usize + core::mem::size_of::<Block>(), PAGE);
                let to = (b as usize + size) & !(PAGE - 1);
                if to > from {
                    if bytes == 0 {
                        // SAFETY: this is a mid slab this thread holds (the caller's contract).
                        unsafe { crate::superslab::stop_huge_pages(self) };
                    }
                    crate::os::discard(from as *mut u8, to - from);
                    bytes += to - from;
                }
            }
            // SAFETY: `b` is one of the list's `len` free blocks of this slab (this thread its
            // only writer), its first word the link, which the discard above kept.
            b = unsafe { (*b).next };
        }
        self.purged_free.set(idle);
        self.idle_free.set(len);
        bytes
    }

    /// Starts the idle count of the free list afresh: the blocks not yet purged count as freed
    /// now, so the next `purge_idle_free_blocks` only notes them. For a slab changing hands
    /// (orphaned, adopted), whose new holder's round may come right after the last one.
    pub fn restart_idle_count(&self) {
        self.idle_free.set(self.purged_free.get());
    }

    /// Records that the first `n` blocks are carved (for other threads' checks and the fast
    /// path's).
    fn set_carved(&self, n: u32) {
        self.carved.store(n, Ordering::Relaxed);
        let step = (self.block_size.get() as u64).wrapping_mul(self.divides_magic.get());
        self.carved_bound.set(n as u64 * step);
    }

    /// Puts back one block the owner freed.
    #[inline]
    pub fn put_local(&self, b: *mut Block) {
        self.put_free(b);
        self.used.set(self.used.get() - 1);
    }

    /// Whether `p` is at a block boundary of this (formatted) slab, below `limit` bytes from its
    /// start.
    #[inline(always)]
    fn is_boundary_below(&self, p: usize, limit: u64) -> bool {
        let off = p.wrapping_sub(self.start.get()) as u64;
        let magic = self.divides_magic.get();
        off < limit && off.wrapping_mul(magic) < magic
    }

    /// The owner's check on the fast path: `p` is the start of a carved block. It computes
    /// `(p - start) * divides_magic` (wrapping) as `p * divides_magic - start_times_magic`, one
    /// multiply and one subtract. `p` lies in the slab's SuperSlab, so `p - start` is below
    /// 2 MiB, where the divisibility test is exact, or (in a mid slab's header) minus at most
    /// 64 KiB: there the product, taken modulo 2^64, is at least 2^64 / block_size minus 2 MiB,
    /// far above `carved_bound` (at most 2 MiB).
    #[inline(always)]
    pub fn is_carved_block_start(&self, p: usize) -> bool {
        (p as u64)
            .wrapping_mul(self.divides_magic.get())
            .wrapping_sub(self.start_times_magic.get())
            < self.carved_bound.get()
    }

    /// Whether `p` is at a block boundary anywhere in the slab's span.
    #[cfg(test)]
    pub fn is_at_block_boundary(&self, p: usize) -> bool {
        self.is_boundary_below(p, self.capacity.get() as u64 * self.block_size.get() as u64)
    }

    /// Whether `p` lies inside (or at the start of) one of this slab's carved blocks.
    pub fn holds_carved(&self, p: usize) -> bool {
        let carved = self.carved.load(Ordering::Relaxed) as usize;
        let start = self.start.get();
        self.class.get() != NO_CLASS
            && p >= start
            && p - start < carved * self.block_size.get() as usize
    }

    /// Whether `p` is the start of one of this slab's carved blocks.
    pub fn is_block_start(&self, p: usize) -> bool {
        if self.class.get() == NO_CLASS || p < self.start.get() {
            return false;
        }
        let carved = self.carved.load(Ordering::Relaxed) as u64;
        self.is_boundary_below(p, carved * self.block_size.get() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeroed memory of `words` words starting on a page (at the returned address), in the vector.
    fn page_aligned(words: usize) -> (Vec<u64>, usize) {
        let mut mem = vec![0u64; words + PAGE / 8];
        let start = align_up(mem.as_mut_ptr() as usize, PAGE);
        (mem, start)
    }

    /// A slab of class 0 (16-byte blocks) formatted for 100 blocks at the start of a page of the
    /// returned memory, which must outlive it.
    fn slab_of_100_blocks_of_16_bytes() -> (Vec<u64>, usize, Slab) {
        let (mem, start) = page_aligned(1024);
        // SAFETY: a zeroed Slab is a valid (unformatted) slab.
        let slab: Slab = unsafe { core::mem::zeroed() };
        slab.format(0, start, 100, Owner::NONE);
        (mem, start, slab)
    }

    #[test]
    fn a_carve_of_blocks_under_a_page_stops_at_the_last_page_boundary_it_crosses() {
        let (mem, base) = page_aligned(3 * PAGE / 8);
        let (class, size) = (2, 48);
        assert_eq!(crate::size_class::class_size(class), size);
        // SAFETY: a zeroed Slab is a valid (unformatted) slab.
        let slab: Slab = unsafe { core::mem::zeroed() };
        let start = base + 1000; // as a small slab's colour puts it
        slab.format(class, start, ((3 * PAGE - 1000) / size) as u32, Owner::NONE);
        let carve = |max: u32| {
            let bin = Bin::new(256);
            let n = slab.take_batch(&bin, max);
            let blocks: Vec<usize> = (0..n).map(|_| bin.pop() as usize).collect();
            (n, blocks.iter().map(|b| b + size).max().unwrap())
        };
        // 128 blocks would end 7,144 bytes in: the carve ends within the first page.
        assert_eq!(carve(128), (64, start + 64 * size));
        assert!(start + 65 * size > base + PAGE);
        // From there, the next 128 would end past 10 KiB: it ends within the second page.
        let (n, end) = carve(128);
        assert_eq!(end, start + (64 + n as usize) * size);
        assert!(
            end <= base + 2 * PAGE && end + size > base + 2 * PAGE,
            "{n}"
        );
        // A carve that crosses no boundary, or whose first block does, keeps its length.
        assert_eq!(carve(1).0, 1);
        assert_eq!(carve(2).0, 2);
        drop(mem);
    }

    #[test]
    fn carved_block_start_check_is_exact() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for class in 0..crate::size_class::NUM_CLASSES {
            // SAFETY: a zeroed Slab is a valid (unformatted) slab.
            let slab: Slab = unsafe { core::mem::zeroed() };
            let size = crate::size_class::class_size(class);
            let start = 0x7f00_0001_0000usize;
            let span = if crate::size_class::is_small(class) {
                64 << 10
            } else {
                (2 << 20) - (64 << 10)
            };
            let capacity = (span / size) as u32;
            slab.format(class, start, capacity, Owner::NONE);
            for carved in [0, 1, capacity / 2, capacity] {
                slab.set_carved(carved);
                let check = |off: isize| {
                    let p = (start as isize + off) as usize;
                    let want = off >= 0
                        && (off as usize).is_multiple_of(size)
                        && (off as usize) < carved as usize * size;
                    assert_eq!(
                        slab.is_carved_block_start(p),
                        want,
                        "class {class} carved {carved} off {off}"
                    );
                };
                // Every block boundary and its neighbours, the header below a mid slab, and a
                // sample of other offsets.
                for k in 0..=capacity as isize {
                    for d in [-1, 0, 1, 8, 16] {
                        check(k * size as isize + d);
                    }
                }
                for off in -(64 << 10)..0isize {
                    if off % 7 == 0 || off > -64 || off % size as isize == 0 {
                        check(off);
                    }
                }
                for _ in 0..2000 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    check((rng % span as u64) as isize);
                }
            }
            slab.clear();
        }
    }

    #[test]
    fn a_carve_comes_out_of_the_bin_in_address_order_before_what_the_bin_held() {
        let (mem, start, slab) = slab_of_100_blocks_of_16_bytes();
        let bin = Bin::new(64);
        let mut held = Block { next: null_mut() };
        bin.push(&mut held);
        assert_eq!(slab.take_batch(&bin, 5), 5);
        assert_eq!(bin.count(), 6);
        for i in 0..5 {
            assert_eq!(bin.pop() as usize, start + 16 * i);
        }
        assert_eq!(bin.pop(), &raw mut held);
        assert!(bin.pop().is_null());
        assert_eq!(bin.count(), 0);
        drop(mem);
    }

    #[test]
    fn carve_free_and_drain() {
        let (mem, start, slab) = slab_of_100_blocks_of_16_bytes();
        let bin = Bin::new(64);
        assert_eq!(slab.take_batch(&bin, 60), 60);
        assert_eq!(bin.pop() as usize, start);
        assert_eq!(slab.used.get(), 60);
        assert!(slab.is_block_start(start + 16 * 59));
        assert!(!slab.is_block_start(start + 16 * 60));
        assert!(!slab.is_block_start(start + 8));
        assert!(slab.is_at_block_boundary(start + 16 * 99));
        assert!(!slab.is_at_block_boundary(start + 16 * 99 + 1));
        let b = bin.pop();
        slab.put_local(b);
        slab.remote.0.push(start as *mut Block);
        assert_eq!(slab.used.get(), 59);
        // Freed blocks first, without fresh ones to top the batch up: the local free...
        assert_eq!(slab.take_batch(&bin, 60), 1);
        // ...then the remote one (drained once the local list is empty), then fresh blocks.
        assert_eq!(slab.take_batch(&bin, 60), 1);
        assert_eq!(slab.used.get(), 60);
        assert_eq!(slab.take_batch(&bin, 60), 40);
        assert_eq!(slab.take_batch(&bin, 60), 0);
        assert_eq!(slab.used.get(), 100);
        assert!(
            slab.free_list().is_null()
                && slab.carved.load(Ordering::Relaxed) == slab.capacity.get()
        );
        drop(mem);
    }

    #[test]
    fn a_free_list_that_fits_an_empty_bin_moves_whole() {
        let (mem, _, slab) = slab_of_100_blocks_of_16_bytes();
        let bin = Bin::new(8);
        assert_eq!(slab.take_batch(&bin, 4), 4);
        let blocks: Vec<_> = (0..4).map(|_| bin.pop()).collect();
        for &b in &blocks[..3] {
            slab.put_local(b);
        }
        assert_eq!(slab.take_batch(&bin, 4), 3);
        assert_eq!((bin.count(), slab.used.get()), (3, 4));
        assert!(slab.free_list().is_null());
        let mut got: Vec<_> = (0..3).map(|_| bin.pop()).collect();
        assert!(bin.pop().is_null());
        got.sort();
        assert_eq!(got, blocks[..3].to_vec());
        drop(mem);
    }

    #[test]
    #[cfg_attr(miri, ignore = "slow under Miri (millions of checks)")]
    fn boundary_check_is_exact_for_every_class() {
        // SAFETY: a zeroed Slab is a valid (unformatted) slab: every field is an integer, a pointer
        // or a Cell or atomic of one.
        let slab: Slab = unsafe { core::mem::zeroed() };
        for c in 0..crate::size_class::NUM_CLASSES {
            let start = 1usize << 30;
            let bs = crate::size_class::class_size(c);
            let capacity = (2usize << 20) / bs;
            slab.format(c, start, capacity as u32, Owner::NONE);
            let span = capacity * bs;
            for off in (0..(2usize << 20))
                .step_by(7)
                .chain([bs, 2 * bs, span - bs, span])
            {
                let expected = off % bs == 0 && off < span;
                assert_eq!(
                    slab.is_at_block_boundary(start + off),
                    expected,
                    "class {c} off {off}"
                );
            }
            assert!(!slab.is_at_block_boundary(start - bs), "below the start");
        }
        // Only carved blocks pass the owner's check.
        let (mem, start) = page_aligned(64);
        slab.format(0, start, 32, Owner::NONE);
        let bin = Bin::new(4);
        slab.take_batch(&bin, 2);
        assert!(slab.is_carved_block_start(start + 16));
        assert!(!slab.is_carved_block_start(start + 32));
        assert!(!slab.is_carved_block_start(start + 8));
        drop(mem);
    }

    /// Whether the page holding `p` is resident.
    fn resident(p: usize) -> bool {
        let mut v = 0u8;
        let page = p & !(crate::os::PAGE - 1);
        // SAFETY: mincore reads the page table for one mapped page and writes one byte to `v`.
        let r = unsafe { libc::mincore(page as *mut libc::c_void, crate::os::PAGE, &mut v) };
        assert_eq!(r, 0);
        v & 1 == 1
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap, madvise and mincore, which Miri does not model")]
    fn idle_free_blocks_of_a_mid_slab_give_back_their_inner_pages() {
        let _serial = crate::tests::serial();
        if check::safe_mode() {
            return; // The heap never purges in safe mode, whose links are encoded.
        }
        let c = crate::size_class::class_of(64 * 1024);
        let s = crate::superslab::acquire_slab(c, Owner::NONE, 0);
        assert!(!s.is_null());
        // SAFETY: `s` is a freshly acquired slab, held by this thread until it is released below.
        let slab = unsafe { &*s };
        let size = slab.block_size.get() as usize;
        let page = crate::os::PAGE;
        let bin = Bin::new(16);
        assert_eq!(slab.take_batch(&bin, 8), 8);
        let blocks: Vec<usize> = (0..8).map(|_| bin.pop() as usize).collect();
        let fill = |b: usize, v: u8| {
            // SAFETY: `b` is a block of `size` bytes this test holds.
            unsafe { core::ptr::write_bytes(b as *mut u8, v, size) }
        };
        let holds = |b: usize, v: u8| {
            // SAFETY: as above.
            let bytes = unsafe { core::slice::from_raw_parts(b as *const u8, size) };
            bytes.iter().all(|&x| x == v)
        };
        for (i, &b) in blocks.iter().enumerate() {
            assert_eq!(b % page, 0, "64 KiB blocks start on a page");
            fill(b, i as u8 + 1);
        }
        // Blocks 0..5 are freed; 5..8 stay in use.
        for &b in &blocks[..5] {
            slab.put_local(b as *mut Block);
        }
        let purge = || {
            // SAFETY: a mid slab this thread holds.
            unsafe { slab.purge_idle_free_blocks() }
        };
        // The first round only notes the free blocks.
        assert_eq!(purge(), 0);
        assert!(blocks[..5].iter().all(|&b| resident(b + page)));
        // Block 4 is taken and freed again after that round: it is not idle yet. (A bin with
        // room for one, so the whole list does not move to it.)
        let one = Bin::new(1);
        assert_eq!(slab.take_batch(&one, 1), 1);
        assert_eq!(one.pop() as usize, blocks[4]);
        slab.put_local(blocks[4] as *mut Block);
        assert_eq!(purge(), 4 * (size - page));
        for &b in &blocks[..4] {
            assert!(resident(b), "the first page keeps the link");
            assert!(
                !resident(b + page) && !resident(b + size - 1),
                "inner pages went back"
            );
        }
        assert!(
            resident(blocks[4] + page),
            "freed after the first round: kept"
        );
        for (i, &b) in blocks.iter().enumerate().skip(5) {
            assert!(holds(b, i as u8 + 1), "block {i} in use kept its bytes");
        }
        // The next round gives back block 4's; the purged blocks are not purged again.
        assert_eq!(purge(), size - page);
        assert_eq!(purge(), 0);
        // The list still links the five free blocks, and they can be used again.
        assert_eq!(slab.take_batch(&bin, 8), 5);
        let mut again: Vec<usize> = (0..5).map(|_| bin.pop() as usize).collect();
        again.sort();
        assert_eq!(again, blocks[..5].to_vec());
        for &b in &again {
            fill(b, 0xa5);
            assert!(holds(b, 0xa5));
        }
        assert_eq!(purge(), 0, "no free block left");
        for &b in &blocks {
            slab.put_local(b as *mut Block);
        }
        // SAFETY: the slab is empty and this thread's; released once.
        unsafe { crate::superslab::release_slab(s) };
    }
}
