//! A small futex-based mutex for the slow paths (SuperSlab manager, orphans, BigCache, heap pool).
//!
//! It never allocates, can be locked and unlocked without a guard (the fork handlers hold every
//! lock across `fork()`), and can be reset in a forked child. States: 0 free, 1 held, 2 held with
//! waiters (Drepper, "Futexes are tricky").
//!
//! While the forking thread holds every lock (`hold_for_fork`), its own `lock` and `unlock` pass
//! through: other libraries' fork handlers run on that thread between hakmem's prepare handler and
//! its parent or child handler, and may allocate. That is safe because the locks were taken at
//! quiescent points (no critical section is half done), and no other thread can enter one.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The thread (`pthread_self`) that holds every lock across a fork, or 0.
static FORK_HOLDER: AtomicUsize = AtomicUsize::new(0);

fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Records that this thread now holds every lock (true, after taking them all) or is about to
/// release them (false, before the first unlock or reset).
pub fn hold_for_fork(held: bool) {
    FORK_HOLDER.store(if held { this_thread() } else { 0 }, Ordering::Relaxed);
}

/// Whether this thread holds every lock for a fork. Only this thread ever stores its own id, so
/// a relaxed load is exact for it.
#[inline]
fn held_for_fork() -> bool {
    let holder = FORK_HOLDER.load(Ordering::Relaxed);
    holder != 0 && holder == this_thread()
}

pub struct Lock {
    state: AtomicU32,
}

impl Lock {
    pub const fn new() -> Self {
        Lock {
            state: AtomicU32::new(0),
        }
    }

    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free; never waits (and fails while a fork holds it, even on the
    /// forking thread).
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
        if held_for_fork() {
            return;
        }
        let mut spins = 0;
        while spins < 100 {
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
            spins += 1;
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            // SAFETY: futex wait on our own word; returns on wake, signal or value mismatch.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    &self.state as *const AtomicU32,
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    2u32,
                    core::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if held_for_fork() {
            return;
        }
        if self.state.swap(0, Ordering::Release) == 2 {
            // SAFETY: futex wake on our own word.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    &self.state as *const AtomicU32,
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1u32,
                )
            };
        }
    }

    /// Used only in a forked child, where the thread that held the lock no longer exists.
    pub fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    /// Runs `f` with the lock held.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock();
        let r = f();
        self.unlock();
        r
    }
}
