//! A small futex-based mutex for the slow paths (SuperSlab manager, orphans, BigCache, heap pool).
//!
//! It never allocates, can be locked and unlocked without a guard (the fork handlers hold every
//! lock across `fork()`), and can be reset in a forked child. States: 0 free, 1 held, 2 held with
//! waiters (Drepper, "Futexes are tricky").

use core::sync::atomic::{AtomicU32, Ordering};

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

    /// Takes the lock if it is free; never waits.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
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
