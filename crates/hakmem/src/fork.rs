//! fork(): every global lock is taken before the fork and released (parent) or reset (child)
//! after, so the child never inherits a lock another thread held.

use crate::lock::Lock;

/// Registers the handlers. Called once, by `init`.
pub fn install_handlers() {
    // SAFETY: a plain libc call with valid function pointers.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
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
        crate::heap_pool::lock(),
        crate::orphans::lock(),
        crate::bigcache::lock(),
        crate::superslab::lock(),
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
    crate::clock::reset_after_fork();
    for l in global_locks() {
        l.reset();
    }
}
