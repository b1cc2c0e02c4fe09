//! The per-thread cache: one singly-linked free list ("bin") per size class, and the thread-local
//! pointer to this thread's heap that holds them.
//!
//! `malloc` pops and `free` pushes here with plain loads and stores and no locks. An empty bin is refilled
//! in a batch from the heap's slabs; a full one flushes half back (`heap.rs`).

use crate::heap::Heap;
use crate::remote::Block;
use crate::size_class::{class_of, TABLE_MAX};
use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A bin is only ever reached through shared references: other threads read `head` (see below)
/// while the owner pushes and pops, so a `&mut Bin` would claim an exclusive access that does not
/// hold. `room` and `cap` are `Cell`s that only the owner touches.
#[repr(C)]
pub struct Bin {
    /// The first block. Only the owner writes it; a thread freeing a block of the owner's reads it
    /// (`remote_free::free_remote`) to catch a block freed again while it sits here. Relaxed loads and
    /// stores are plain moves on x86_64: the fast paths are what they would be with a pointer.
    head: AtomicPtr<Block>,
    /// Blocks the bin may still take before a flush: `cap` minus the blocks in it. A free takes one
    /// with a single decrement-and-branch; a pop gives one back. Owner only.
    room: Cell<i32>,
    /// Most blocks kept before a flush. Owner only.
    cap: Cell<u32>,
}

impl Bin {
    /// An empty bin with no room: every pop and push on it takes the slow path.
    pub const fn new(cap: u32) -> Self {
        Bin {
            head: AtomicPtr::new(null_mut()),
            room: Cell::new(cap as i32),
            cap: Cell::new(cap),
        }
    }

    /// Empties the bin (its blocks are forgotten) and sets its cap.
    pub fn reset(&self, cap: u32) {
        self.head.store(null_mut(), Ordering::Relaxed);
        self.room.set(cap as i32);
        self.cap.set(cap);
    }

    /// Blocks in the bin.
    pub fn count(&self) -> u32 {
        (self.cap.get() as i32 - self.room.get()) as u32
    }

    pub fn cap(&self) -> u32 {
        self.cap.get()
    }

    /// Sets the cap, keeping the blocks (a bin above its new cap flushes at its next free).
    pub fn set_cap(&self, cap: u32) {
        let count = self.count();
        self.cap.set(cap);
        self.room.set(cap as i32 - count as i32);
    }

    /// Makes `count` say `n` (tests of the damage checks).
    #[cfg(test)]
    pub fn force_count(&self, n: u32) {
        self.room
            .set((self.cap.get() as i32).wrapping_sub(n as i32));
    }

    /// The first block (null when empty).
    #[inline(always)]
    pub fn head(&self) -> *mut Block {
        self.head.load(Ordering::Relaxed)
    }

    /// Takes room for one more block: false when the bin is full, and then the room is left one
    /// below zero until `undo_take_room` (written this way, the free fast path is one
    /// decrement-and-branch).
    #[inline(always)]
    pub fn take_room(&self) -> bool {
        let r = self.room.get() - 1;
        self.room.set(r);
        r >= 0
    }

    /// Undoes a `take_room` that found the bin full.
    pub fn undo_take_room(&self) {
        self.room.set(self.room.get() + 1);
    }

    /// Pushes the list of `count` blocks from `first` to `last` (linked already, `last`'s link is
    /// set here), whatever the room: one update of the head and the room for the whole list.
    ///
    /// # Safety
    /// The blocks are free and handed to this bin; following links from `first` reaches `last`.
    pub unsafe fn push_list(&self, first: *mut Block, last: *mut Block, count: u32) {
        // SAFETY: `last` is a free block handed to this bin (the caller's contract).
        unsafe { (*last).next = self.head() };
        self.head.store(first, Ordering::Relaxed);
        self.room.set(self.room.get() - count as i32);
    }

    /// Pushes `b`, whatever the room (a flush follows when the bin is over its cap).
    pub fn push(&self, b: *mut Block) {
        self.room.set(self.room.get() - 1);
        self.link_before(b, self.head());
    }

    /// Pushes `b` in front of `head`, the head the caller has just read, after `take_room` said
    /// there is room (the free fast path compares `head` with `b` first, and this spares it a
    /// second load).
    #[inline(always)]
    pub fn link_before(&self, b: *mut Block, head: *mut Block) {
        // SAFETY: `b` is a free block handed to this bin; its first word is ours to link with.
        unsafe { (*b).next = head };
        self.head.store(b, Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn pop(&self) -> *mut Block {
        let b = self.head();
        if !b.is_null() {
            // SAFETY: `b` is the head block of this bin.
            let next = unsafe { (*b).next };
            self.head.store(next, Ordering::Relaxed);
            self.room.set(self.room.get() + 1);
            prefetch(next);
        }
        b
    }

    /// Hands a list of `count` blocks starting at `first` to this empty bin.
    pub fn fill(&self, first: *mut Block, count: u32) {
        debug_assert!(self.head().is_null());
        self.head.store(first, Ordering::Relaxed);
        self.room.set(self.cap.get() as i32 - count as i32);
    }

    /// Detaches all but the first `keep` blocks and returns them as a list.
    pub fn split_off(&self, keep: u32) -> *mut Block {
        if keep == 0 {
            let all = self.head();
            self.head.store(null_mut(), Ordering::Relaxed);
            self.room.set(self.cap.get() as i32);
            return all;
        }
        if self.count() <= keep {
            return null_mut();
        }
        let mut last = self.head();
        for _ in 1..keep {
            // SAFETY: the bin holds more than `keep` blocks, so these links are valid.
            last = unsafe { (*last).next };
        }
        // SAFETY: `last` is the keep-th block of the bin; a bin's blocks are free, so their link
        // words are the bin's to read.
        let rest = unsafe { (*last).next };
        // SAFETY: as for the read: `last` is a free block of the bin, whose link is the bin's.
        unsafe { (*last).next = null_mut() };
        self.room.set(self.cap.get() as i32 - keep as i32);
        rest
    }
}

/// For requests up to `TABLE_MAX` bytes, by size in bytes: the byte offset of their class's bin in
/// a heap, in 8-byte units. Every heap holds a copy (`Heap::bin_offsets`), so `malloc` reads it at
/// a fixed offset from the heap it already has (a static table would need its address loaded
/// first); indexed by the size itself and scaled by the load's addressing, it takes no arithmetic.
pub type BinOffsets = [u8; TABLE_MAX + 1];

pub const BIN_OFFSETS: BinOffsets = {
    let mut t = [0u8; TABLE_MAX + 1];
    let mut size = 0;
    while size < t.len() {
        let offset = class_of(size) * core::mem::size_of::<Bin>();
        assert!(offset.is_multiple_of(8) && offset / 8 <= u8::MAX as usize);
        t[size] = (offset / 8) as u8;
        size += 1;
    }
    t
};

/// The bin of `heap` for a request of `size <= TABLE_MAX` bytes.
///
/// # Safety
/// `heap` is a valid heap, this thread's or an empty one.
#[inline(always)]
pub unsafe fn small_bin(heap: *const Heap, size: usize) -> *const Bin {
    debug_assert!(size <= TABLE_MAX);
    // SAFETY: the table of a valid heap is only written when it is set up, before any thread
    // uses it; `size <= TABLE_MAX` indexes it.
    let off = unsafe { *(*(*heap).bin_offsets.get()).get_unchecked(size) } as usize;
    // SAFETY: the bins are the heap's first field and the offset is that of one of them.
    unsafe { (heap as *const u8).add(off * 8).cast::<Bin>() }
}

/// Starts loading the new head's cache line, whose link the next pop reads: blocks that came
/// back from a slab or another thread are usually cold. Never faults, even on null.
#[inline(always)]
fn prefetch(b: *mut Block) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: prefetching is a hint and never faults.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(b as *const i8)
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = b;
}

/// What a thread without a heap of its own points at: a heap whose bins are empty and have no room,
/// so the fast paths need no null test (a pop finds nothing, and no slab is owned by it), and the
/// slow paths ask `is_empty_heap`. Nothing ever writes to it.
pub static EMPTY_HEAP: EmptyHeap = EmptyHeap(Heap::empty());

#[repr(transparent)]
pub struct EmptyHeap(Heap);
// SAFETY: the empty heap is never written (see above): its bins have no blocks and no room, no slab
// names it as owner, and the slow paths replace it before touching a heap.
unsafe impl Sync for EmptyHeap {}

/// What a thread points at once its heap was retired at its exit: an empty heap like
/// `EMPTY_HEAP`, which also tells that the thread must not get a heap again (`thread_heap.rs`).
pub static EXITED_HEAP: EmptyHeap = EmptyHeap(Heap::empty());

/// Whether `h` is an empty heap (the thread has no heap yet, or no longer).
#[inline(always)]
pub fn is_empty_heap(h: *mut Heap) -> bool {
    core::ptr::eq(h, &EMPTY_HEAP.0) || has_exited(h)
}

/// Whether `h` is the heap of a thread whose heap was retired at its exit.
#[inline(always)]
pub fn has_exited(h: *mut Heap) -> bool {
    core::ptr::eq(h, &EXITED_HEAP.0)
}

/// The exited heap as the pointer the TLS slot holds.
pub fn exited_heap() -> *mut Heap {
    &EXITED_HEAP.0 as *const Heap as *mut Heap
}

/// The empty heap as the pointer the TLS slot holds.
#[cfg(test)]
pub fn empty_heap() -> *mut Heap {
    &EMPTY_HEAP.0 as *const Heap as *mut Heap
}

// This thread's heap pointer lives in static TLS (initial-exec model): reading it is two
// instructions, where Rust's `thread_local!` in a shared library calls `__tls_get_addr` on every
// access. It starts as the empty heap's address (the TLS image is relocated before any thread
// copies it). The symbol is hidden, so an executable and a preloaded libhakmem.so each keep their
// own.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",@progbits",
    ".p2align 3",
    ".globl hakmem_tls_heap",
    ".hidden hakmem_tls_heap",
    ".type hakmem_tls_heap, @object",
    ".size hakmem_tls_heap, 8",
    "hakmem_tls_heap:",
    ".quad {empty}",
    ".popsection",
    empty = sym EMPTY_HEAP,
);

/// What the free fast path compares with a slab's `owner_thread`: on x86_64 the thread pointer,
/// which the TLS ABI keeps at `%fs:0` (one load, where the heap takes two), elsewhere this thread's
/// heap. Never 0, and no two live threads share one.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
#[inline(always)]
pub fn thread_token() -> usize {
    let t: usize;
    // SAFETY: reads the thread pointer the x86_64 TLS ABI stores at %fs:0; it never changes for a
    // thread (so the read is pure).
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr fs:[0]",
            t = out(reg) t,
            options(nostack, readonly, preserves_flags, pure),
        );
    }
    t
}

/// What the free fast path compares with a slab's `owner_thread`: this thread's heap.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
#[inline(always)]
pub fn thread_token() -> usize {
    current() as usize
}

/// This thread's heap: the empty heap if it has none yet (or its heap was retired at thread exit).
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
#[inline(always)]
pub fn current() -> *mut Heap {
    let h: *mut Heap;
    // SAFETY: reads this thread's 8-byte TLS slot at its initial-exec offset from %fs.
    unsafe {
        core::arch::asm!(
            "mov {off}, qword ptr [rip + hakmem_tls_heap@GOTTPOFF]",
            "mov {h}, qword ptr fs:[{off}]",
            off = out(reg) _,
            h = out(reg) h,
            options(nostack, readonly, preserves_flags, pure),
        );
    }
    h
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
pub fn set_current(h: *mut Heap) {
    // SAFETY: writes this thread's 8-byte TLS slot at its initial-exec offset from %fs.
    unsafe {
        core::arch::asm!(
            "mov {off}, qword ptr [rip + hakmem_tls_heap@GOTTPOFF]",
            "mov qword ptr fs:[{off}], {h}",
            off = out(reg) _,
            h = in(reg) h,
            options(nostack, preserves_flags),
        );
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
thread_local! {
    static HEAP: Cell<*mut Heap> = const { Cell::new(&EMPTY_HEAP.0 as *const Heap as *mut Heap) };
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
#[inline(always)]
pub fn current() -> *mut Heap {
    HEAP.get()
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
pub fn set_current(h: *mut Heap) {
    HEAP.set(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_pointer_is_per_thread() {
        let mine = 0x1000 as *mut Heap;
        set_current(mine);
        assert_eq!(current(), mine);
        std::thread::spawn(|| {
            assert!(is_empty_heap(current()));
            set_current(0x2000 as *mut Heap);
            assert_eq!(current(), 0x2000 as *mut Heap);
        })
        .join()
        .unwrap();
        assert_eq!(current(), mine);
        set_current(empty_heap());
    }

    #[test]
    fn small_bin_is_the_bin_of_the_class() {
        let heap = &EMPTY_HEAP.0;
        for size in 0..=TABLE_MAX {
            // SAFETY: the empty heap is valid; `size <= TABLE_MAX`.
            let bin = unsafe { small_bin(heap, size) };
            assert!(
                core::ptr::eq(bin, &heap.bins[class_of(size)]),
                "size {size}"
            );
        }
    }

    #[test]
    fn push_pop_split() {
        let mut blocks: Vec<Block> = (0..10).map(|_| Block { next: null_mut() }).collect();
        let bin = Bin::new(8);
        for b in blocks.iter_mut() {
            bin.push(b);
        }
        assert_eq!(bin.count(), 10);
        let mut rest = bin.split_off(4);
        let mut n = 0;
        while !rest.is_null() {
            n += 1;
            // SAFETY: `rest` is one of `blocks`, linked by the bin.
            rest = unsafe { (*rest).next };
        }
        assert_eq!(n, 6);
        assert_eq!(bin.count(), 4);
        assert_eq!(bin.pop(), &mut blocks[9] as *mut Block);
        assert!(bin.split_off(5).is_null());
        assert!(!bin.split_off(0).is_null());
        assert!(bin.pop().is_null());
    }
}
