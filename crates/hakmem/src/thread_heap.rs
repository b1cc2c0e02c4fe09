//! A thread's heap from its first allocation to its exit: made (or taken from the pool) on the
//! first slow path, retired by a pthread key destructor when the thread exits.
//!
//! Other key destructors may allocate after hakmem's has run (glibc calls them in up to
//! `PTHREAD_DESTRUCTOR_ITERATIONS` rounds, and one may re-arm itself to run in the last). A heap
//! made then might never be retired, so such a thread never gets one again: each of its
//! allocations borrows a heap from the pool just for that block (`alloc_without_heap`). A thread
//! whose first allocation comes from a key destructor gets a heap and re-arms hakmem's key, which
//! retires it in the next round; only in the last round is there none (glibc offers no later
//! hook), and such a heap stays live.

use crate::heap::Heap;
use crate::heap_pool::{pool_put, pool_take};
use crate::remote::Block;
use crate::thread_cache;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU8, Ordering};

static mut EXIT_KEY: libc::pthread_key_t = 0;
static EXIT_KEY_READY: AtomicU8 = AtomicU8::new(0);

/// Creates the key whose destructor retires a thread's heap. Called once, by `init`.
pub fn create_exit_key() {
    // SAFETY: a plain libc call with valid arguments; EXIT_KEY is written once, here.
    unsafe {
        let key = &raw mut EXIT_KEY;
        if libc::pthread_key_create(key, Some(on_thread_exit)) == 0 {
            EXIT_KEY_READY.store(1, Ordering::Release);
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
    if thread_cache::has_exited(h) {
        return null_mut();
    }
    crate::init::ensure_init();
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
    // SAFETY: as above; `init` wrote the table.
    debug_assert!(unsafe { *(*h).bin_offsets.get() } == thread_cache::BIN_OFFSETS);
    thread_cache::set_current(h);
    // SAFETY: as above; after `set_current`, as the token is the heap itself on some targets.
    unsafe { (*h).thread.set(thread_cache::thread_token()) };
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
    // Never a heap again for this thread.
    thread_cache::set_current(thread_cache::exited_heap());
    // SAFETY: `h` is this thread's heap; the thread runs no more allocator code with it.
    unsafe { (*h).retire() };
    pool_put(h);
}
