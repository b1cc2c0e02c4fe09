//! Larson's server benchmark, written from its description: each thread repeatedly frees a random block
//! of an array and allocates a replacement of random size in `min..=max`, for a fixed time. Arrays are
//! handed between threads (a thread parks its array in a shared queue and takes the one parked longest),
//! so blocks are freed by other threads than the ones that allocated them. Reports ops/s.

use super::{check_mark, mark, must, tag, Block, LarsonParams, Outcome};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// The `tput` profile: small blocks, throughput of the fast paths.
pub fn tput(threads: usize, secs: f64) -> LarsonParams {
    LarsonParams {
        secs,
        min: 8,
        max: 128,
        chunks: 1024,
        seed: 12345,
        threads,
    }
}

/// The `pf` profile: 2..32 KiB blocks, 10000 per thread: page faults and memory reuse.
pub fn pf(threads: usize, secs: f64) -> LarsonParams {
    LarsonParams {
        secs,
        min: 2048,
        max: 32768,
        chunks: 10000,
        seed: 12345,
        threads,
    }
}

/// Replacements between two checks of the stop flag.
const STEP: usize = 64;

pub fn run<A: Alloc>(a: &A, lp: &LarsonParams) -> Outcome {
    let threads = lp.threads.max(1);
    let chunks = lp.chunks.max(1);
    let (min, max) = (lp.min.max(1), lp.max.max(lp.min.max(1)));
    let fill = |seed: u64| -> Vec<Block> {
        let mut rng = Rng::new(seed);
        (0..chunks)
            .map(|i| {
                let size = rng.range(min, max);
                let t = tag(i);
                // SAFETY: size >= 1, align 8; freed by a replacement or at the end.
                let p = unsafe { must(a.alloc(size, 8), "larson", size) };
                // SAFETY: p is valid for size bytes.
                unsafe { mark(p, size, t) };
                Block { p, size, tag: t }
            })
            .collect()
    };
    // One array per thread plus one parked, so a hand-over always yields another thread's array.
    let mut own: Vec<Vec<Block>> = (0..threads).map(|t| fill(lp.seed + t as u64)).collect();
    let parked: Mutex<VecDeque<Vec<Block>>> = Mutex::new(VecDeque::from([fill(lp.seed + 1000)]));
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let turn = chunks.max(STEP);

    let (elapsed, ops, sum) = std::thread::scope(|s| {
        let handles: Vec<_> = own
            .drain(..)
            .enumerate()
            .map(|(t, arr)| {
                let (parked, stop, barrier) = (&parked, &stop, &barrier);
                s.spawn(move || {
                    let mut rng = Rng::new(lp.seed ^ ((t as u64 + 1) << 32));
                    let mut arr = arr;
                    let (mut ops, mut sum, mut done) = (0u64, 0u64, 0usize);
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..STEP {
                            let i = rng.below(arr.len());
                            let b = arr[i];
                            let size = rng.range(min, max);
                            let t = tag(ops as usize);
                            // SAFETY: b is a live block of this allocator with layout (b.size, 8); it
                            // is freed once and replaced.
                            unsafe {
                                sum = sum.wrapping_add(check_mark(b.p, b.size, b.tag));
                                a.dealloc(b.p, b.size, 8);
                                let p = must(a.alloc(size, 8), "larson", size);
                                mark(p, size, t);
                                arr[i] = Block { p, size, tag: t };
                            }
                            ops += 1;
                        }
                        done += STEP;
                        if threads > 1 && done >= turn {
                            done = 0;
                            let mut q = parked.lock().unwrap();
                            q.push_back(arr);
                            arr = q.pop_front().unwrap();
                        }
                    }
                    parked.lock().unwrap().push_back(arr);
                    (ops, sum)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(lp.secs.max(0.01)));
        stop.store(true, Ordering::Relaxed);
        let res: Vec<(u64, u64)> = handles
            .into_iter()
            .map(|h| h.join().expect("larson thread"))
            .collect();
        let elapsed = start.elapsed();
        (
            elapsed,
            res.iter().map(|r| r.0).sum::<u64>(),
            res.iter().fold(0u64, |x, r| x.wrapping_add(r.1)),
        )
    });

    for arr in parked.into_inner().unwrap() {
        for b in arr {
            // SAFETY: every block left in the arrays is live and freed exactly once here.
            unsafe {
                check_mark(b.p, b.size, b.tag);
                a.dealloc(b.p, b.size, 8);
            }
        }
    }
    Outcome {
        ops,
        elapsed_ns: elapsed.as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum: sum,
    }
}
