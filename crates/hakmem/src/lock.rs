//! A small futex-based mutex for the slow paths (SuperSlab manager, orphans, BigCache, heap pool).
//!
//! It never allocates, can be locked and unlocked without a guard (the fork handlers hold every
//! lock across `fork()`), and can be reset in a forked child. States: 0 free, 1 held, 2 held with
//! waiters (Drepper, "Futexes are tricky").
//!
//! A thread that finds the lock held polls it, first spinning (`SPINS`), then yielding its CPU
//! between polls (`YIELDS`), and only then sleeps on the futex. The slow paths hold these locks
//! for short sections, the longest making a few syscalls or page faults (the learner's lock,
//! rarely, also loads or saves the playbook file), and a sleep costs more than such a wait: the
//! holder's wake-up lets the scheduler move the sleeper onto the waker's core. On rptestN, whose
//! two threads take slabs from the SuperSlab manager at the same moments, they then shared one
//! core while the other idled, and one thread's blocks for the other piled up. Polling with
//! `sched_yield` keeps the waiter where it is, and still lets threads waiting for its CPU run (the
//! scheduler takes the yield as a hint).
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

/// Polls of a held lock with a pause between them (about 2 µs in all) before yielding.
const SPINS: u32 = 100;
/// Polls with a `sched_yield` between them (about 0.4 ms in all on a 2-core VM) before sleeping
/// on the futex.
const YIELDS: u32 = 1_000;

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
        for attempt in 0..SPINS + YIELDS {
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if attempt < SPINS {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
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

#[cfg(test)]
mod tests {
    use super::Lock;
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicBool, Ordering};

    struct Counter {
        lock: Lock,
        inside: AtomicBool,
        count: UnsafeCell<u64>,
    }
    // SAFETY: `count` is only touched with `lock` held.
    unsafe impl Sync for Counter {}

    /// Four threads add to a plain counter under the lock. Every 500th holder sleeps 20 ms inside,
    /// far longer than a waiter spins and yields (about 0.4 ms), so waiters also go through the
    /// futex wait and wake; a lost wake-up would hang the test.
    #[test]
    #[cfg_attr(miri, ignore = "thousands of sleeps and yields, slow under Miri")]
    fn contended_lock_keeps_critical_sections_apart() {
        const THREADS: u64 = 4;
        const ROUNDS: u64 = 2_000;
        let counter = Counter {
            lock: Lock::new(),
            inside: AtomicBool::new(false),
            count: UnsafeCell::new(0),
        };
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let counter = &counter;
                scope.spawn(move || {
                    for i in 0..ROUNDS {
                        counter.lock.lock();
                        assert!(!counter.inside.swap(true, Ordering::Relaxed), "two holders");
                        // SAFETY: the lock is held.
                        let v = unsafe { *counter.count.get() };
                        if (i + t) % 500 == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        // SAFETY: the lock is held.
                        unsafe { *counter.count.get() = v + 1 };
                        counter.inside.store(false, Ordering::Relaxed);
                        counter.lock.unlock();
                    }
                });
            }
        });
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *counter.count.get() }, THREADS * ROUNDS);
    }
}
