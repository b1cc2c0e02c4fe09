//! Process-wide set-up, once, on the first allocation (or a library constructor's call): the
//! configuration, the kernel's huge-page mode, the learner, call-site profiling, the thread-exit
//! key and the fork handlers.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// 0: not started; 1: a thread is setting up; 2: done.
static INIT: AtomicU8 = AtomicU8::new(0);

/// The thread setting up (`pthread_self`), while one is; 0 otherwise.
static INITIALISING: AtomicUsize = AtomicUsize::new(0);

fn this_thread() -> usize {
    // SAFETY: pthread_self has no precondition.
    unsafe { libc::pthread_self() as usize }
}

/// Process-wide set-up, once: the thread-exit key and the fork handlers. Either may call malloc,
/// which re-enters here and proceeds (the heap itself needs none of this).
pub fn ensure_init() {
    if INIT.load(Ordering::Acquire) == 2 || INITIALISING.load(Ordering::Relaxed) == this_thread() {
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
        INITIALISING.store(this_thread(), Ordering::Relaxed);
        crate::config::get();
        // Read now, not first under the SuperSlab manager's lock.
        crate::os::huge_pages_by_default();
        crate::tuning::init();
        crate::sites::init();
        crate::thread_heap::create_exit_key();
        crate::fork::install_handlers();
        INITIALISING.store(0, Ordering::Relaxed);
        INIT.store(2, Ordering::Release);
    } else {
        while INIT.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}
