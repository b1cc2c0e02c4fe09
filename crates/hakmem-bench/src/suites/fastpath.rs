//! Fast-path work: malloc+free pairs of 16..1024 B in batches of 64, freed in reverse (LIFO) or random
//! order, on one thread or N threads at once; ns per pair. And the cross-thread case: blocks
//! allocated on one thread and freed on another.

use super::{check_mark, mark, must, tag, Outcome, Params};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::hint::black_box;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Barrier;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Lifo,
    Random,
}

const BATCH: usize = 64;
/// Pairs per thread in the default run.
const PAIRS: usize = 3_000_000;
const SIZES: usize = 4096;
const PERMS: usize = 64;

pub fn run<A: Alloc>(a: &A, p: &Params, order: Order, threads: usize) -> Outcome {
    let threads = threads.max(1);
    let batches = p.n(PAIRS) / BATCH + 1;
    let barrier = Barrier::new(threads + 1);
    let (start, sums) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || worker(a, order, batches, t as u64, barrier))
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let sums: Vec<u64> = handles
            .into_iter()
            .map(|h| h.join().expect("fastpath thread"))
            .collect();
        (start, sums)
    });
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    Outcome {
        ops: (batches * BATCH * threads) as u64,
        elapsed_ns,
        per_op_ns: None,
        throughput: true,
        checksum: sums.iter().fold(0, |x, y| x.wrapping_add(*y)),
    }
}

fn worker<A: Alloc>(a: &A, order: Order, batches: usize, seed: u64, barrier: &Barrier) -> u64 {
    let mut rng = Rng::new(0xFA57 + seed);
    let sizes: Vec<usize> = (0..SIZES).map(|_| rng.range(16, 1024)).collect();
    let perms: Vec<[u8; BATCH]> = (0..PERMS)
        .map(|_| {
            let mut p = [0u8; BATCH];
            for (i, x) in p.iter_mut().enumerate() {
                *x = i as u8;
            }
            match order {
                Order::Lifo => p.reverse(),
                Order::Random => rng.shuffle(&mut p),
            }
            p
        })
        .collect();
    let mut ptrs = [(core::ptr::null_mut::<u8>(), 0usize); BATCH];
    let mut sum = 0u64;
    let mut k = 0usize;
    barrier.wait();
    for b in 0..batches {
        let t = tag(b);
        for slot in ptrs.iter_mut() {
            let size = sizes[k % SIZES];
            k += 1;
            // SAFETY: size >= 16, align 8; freed below with the same layout.
            let p = unsafe { must(a.alloc(size, 8), "fastpath", size) };
            // SAFETY: p is valid for size bytes.
            unsafe { mark(p, size, t) };
            *slot = (black_box(p), size);
        }
        for &i in perms[b % PERMS].iter() {
            let (p, size) = ptrs[i as usize];
            // SAFETY: p was allocated above with (size, 8) and is freed exactly once.
            unsafe {
                sum = sum.wrapping_add(check_mark(p, size, t));
                a.dealloc(p, size, 8);
            }
        }
    }
    sum
}

/// Slots in the producer -> consumer ring of `cross_thread`.
const RING: usize = 8;
/// Polls of a slot before a thread that waits for it goes to sleep: about a microsecond, long
/// enough to catch a batch that is nearly done, short enough not to burn a busy machine's core.
const SPINS: u32 = 200;

const EMPTY: u32 = 0;
const FULL: u32 = 1;
/// Added to a slot's state by a thread about to sleep on it: whoever changes the state wakes it.
const SLEEPER: u32 = 2;

/// One batch of blocks in flight from the producer to the consumer.
struct Slot {
    /// EMPTY or FULL, plus SLEEPER while a thread sleeps on it (futex word).
    state: AtomicU32,
    blocks: std::cell::UnsafeCell<[(usize, usize); BATCH]>,
}

// SAFETY: `state` hands `blocks` from one thread to the other (release/acquire), so only one of
// them touches it at a time.
unsafe impl Sync for Slot {}

impl Slot {
    /// Returns once the slot is `want`: polls briefly, then sleeps in the kernel until the other
    /// thread changes the state, so a waiting thread leaves the core to the one it waits for.
    fn wait_for(&self, want: u32) {
        for _ in 0..SPINS {
            if self.state.load(Acquire) & !SLEEPER == want {
                return;
            }
            std::hint::spin_loop();
        }
        loop {
            let s = self.state.load(Acquire);
            if s & !SLEEPER == want {
                return;
            }
            if s & SLEEPER == 0
                && self
                    .state
                    .compare_exchange(s, s | SLEEPER, Acquire, Acquire)
                    .is_err()
            {
                continue;
            }
            // SAFETY: FUTEX_WAIT on an aligned u32 that outlives the call; it returns at once if
            // the state is no longer `s | SLEEPER`, so a wake-up cannot be missed.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.state.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    s | SLEEPER,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    /// Sets the state to `to` (publishing the blocks) and wakes the other thread if it sleeps.
    fn set(&self, to: u32) {
        if self.state.swap(to, Release) & SLEEPER != 0 {
            // SAFETY: FUTEX_WAKE on an aligned u32 that outlives the call.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.state.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1,
                )
            };
        }
    }
}

/// Cross-thread frees: one thread allocates batches of 64 blocks (16..1024 B) and marks them, the
/// other checks and frees them (every free is a remote free); batches go through a ring of 8. A
/// thread that finds its next slot not ready polls it briefly, then sleeps until the other hands
/// it over (futex), so on a busy machine neither burns the time slice the other needs. Time per
/// block (one malloc and its free on another thread).
pub fn cross_thread<A: Alloc>(a: &A, p: &Params) -> Outcome {
    let batches = p.n(PAIRS / 2) / BATCH + 1;
    let ring: Vec<Slot> = (0..RING)
        .map(|_| Slot {
            state: EMPTY.into(),
            blocks: [(0, 0); BATCH].into(),
        })
        .collect();
    let mut rng = Rng::new(0xC0055);
    let sizes: Vec<usize> = (0..SIZES).map(|_| rng.range(16, 1024)).collect();
    let start = Instant::now();
    let sum = std::thread::scope(|s| {
        let ring = &ring;
        let sizes = &sizes;
        s.spawn(move || {
            let mut k = 0;
            for b in 0..batches {
                let slot = &ring[b % RING];
                slot.wait_for(EMPTY);
                // SAFETY: the slot is empty, so the consumer is done with it.
                let blocks = unsafe { &mut *slot.blocks.get() };
                for x in blocks.iter_mut() {
                    let size = sizes[k % SIZES];
                    k += 1;
                    // SAFETY: size >= 16, align 8; the consumer frees it with the same layout.
                    let q = unsafe { must(a.alloc(size, 8), "fastpath", size) };
                    // SAFETY: q is valid for size bytes.
                    unsafe { mark(q, size, tag(b)) };
                    *x = (q as usize, size);
                }
                slot.set(FULL);
            }
        });
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            for b in 0..batches {
                let slot = &ring[b % RING];
                slot.wait_for(FULL);
                // SAFETY: the slot is full, so the producer is done with it.
                let blocks = unsafe { &*slot.blocks.get() };
                for &(q, size) in blocks.iter() {
                    // SAFETY: allocated by the producer with (size, 8), freed exactly once.
                    unsafe {
                        sum = sum.wrapping_add(check_mark(q as *mut u8, size, tag(b)));
                        a.dealloc(q as *mut u8, size, 8);
                    }
                }
                slot.set(EMPTY);
            }
            sum
        });
        consumer.join().expect("fastpath consumer")
    });
    Outcome {
        ops: (batches * BATCH) as u64,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum: sum,
    }
}
