//! The per-thread cache: one singly-linked free list ("bin") per size class, and the thread-local
//! pointer to this thread's heap that holds them.
//!
//! `malloc` pops and `free` pushes here with plain loads and stores and no locks. An empty bin is refilled
//! in a batch from the heap's slabs; a full one flushes half back (`heap.rs`).

use crate::heap::Heap;
use crate::remote::Block;
use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A bin is only ever reached through shared references: other threads read `head` (see below)
/// while the owner pushes and pops, so a `&mut Bin` would claim an exclusive access that does not
/// hold. `count` and `cap` are `Cell`s that only the owner touches.
#[repr(C)]
pub struct Bin {
    /// The first block. Only the owner writes it; a thread freeing a block of the owner's reads it
    /// (`heap::free_remote`) to catch a block freed again while it sits here. Relaxed loads and
    /// stores are plain moves on x86_64: the fast paths are what they would be with a pointer.
    head: AtomicPtr<Block>,
    /// Blocks in the bin. Owner only.
    pub count: Cell<u32>,
    /// Most blocks kept before a flush. Owner only.
    pub cap: Cell<u32>,
}

impl Bin {
    #[cfg(test)]
    pub const fn new(cap: u32) -> Self {
        Bin {
            head: AtomicPtr::new(null_mut()),
            count: Cell::new(0),
            cap: Cell::new(cap),
        }
    }

    /// Empties the bin (its blocks are forgotten) and sets its cap.
    pub fn reset(&self, cap: u32) {
        self.head.store(null_mut(), Ordering::Relaxed);
        self.count.set(0);
        self.cap.set(cap);
    }

    /// The first block (null when empty).
    #[inline(always)]
    pub fn head(&self) -> *mut Block {
        self.head.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub fn push(&self, b: *mut Block) {
        let head = self.head();
        self.push_before(b, head);
    }

    /// Pushes `b` in front of `head`, the head the caller has just read (the free fast path
    /// compares it with `b` first, and this spares it a second load).
    #[inline(always)]
    pub fn push_before(&self, b: *mut Block, head: *mut Block) {
        // SAFETY: `b` is a free block handed to this bin; its first word is ours to link with.
        unsafe { (*b).next = head };
        self.head.store(b, Ordering::Relaxed);
        self.count.set(self.count.get() + 1);
    }

    #[inline(always)]
    pub fn pop(&self) -> *mut Block {
        let b = self.head();
        if !b.is_null() {
            // SAFETY: `b` is the head block of this bin.
            let next = unsafe { (*b).next };
            self.head.store(next, Ordering::Relaxed);
            self.count.set(self.count.get() - 1);
            prefetch(next);
        }
        b
    }

    /// Hands a list of `count` blocks starting at `first` to this empty bin.
    pub fn fill(&self, first: *mut Block, count: u32) {
        debug_assert!(self.head().is_null());
        self.head.store(first, Ordering::Relaxed);
        self.count.set(count);
    }

    /// Detaches all but the first `keep` blocks and returns them as a list.
    pub fn split_off(&self, keep: u32) -> *mut Block {
        if keep == 0 {
            let all = self.head();
            self.head.store(null_mut(), Ordering::Relaxed);
            self.count.set(0);
            return all;
        }
        if self.count.get() <= keep {
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
        self.count.set(keep);
        rest
    }
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

// This thread's heap pointer lives in static TLS (initial-exec model): reading it is two
// instructions, where Rust's `thread_local!` in a shared library calls `__tls_get_addr` on every
// access. The symbol is hidden, so an executable and a preloaded libhakmem.so each keep their own.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl hakmem_tls_heap",
    ".hidden hakmem_tls_heap",
    ".type hakmem_tls_heap, @object",
    ".size hakmem_tls_heap, 8",
    "hakmem_tls_heap:",
    ".zero 8",
    ".popsection",
);

/// This thread's heap, or null if it has none yet (or its heap was torn down at thread exit).
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
    static HEAP: Cell<*mut Heap> = const { Cell::new(null_mut()) };
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
            assert!(current().is_null());
            set_current(0x2000 as *mut Heap);
            assert_eq!(current(), 0x2000 as *mut Heap);
        })
        .join()
        .unwrap();
        assert_eq!(current(), mine);
        set_current(null_mut());
    }

    #[test]
    fn push_pop_split() {
        let mut blocks: Vec<Block> = (0..10).map(|_| Block { next: null_mut() }).collect();
        let bin = Bin::new(8);
        for b in blocks.iter_mut() {
            bin.push(b);
        }
        assert_eq!(bin.count.get(), 10);
        let mut rest = bin.split_off(4);
        let mut n = 0;
        while !rest.is_null() {
            n += 1;
            // SAFETY: `rest` is one of `blocks`, linked by the bin.
            rest = unsafe { (*rest).next };
        }
        assert_eq!(n, 6);
        assert_eq!(bin.count.get(), 4);
        assert_eq!(bin.pop(), &mut blocks[9] as *mut Block);
        assert!(bin.split_off(5).is_null());
        assert!(!bin.split_off(0).is_null());
        assert!(bin.pop().is_null());
    }
}
