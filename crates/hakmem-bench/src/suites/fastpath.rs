//! Fast-path work: malloc+free pairs of 16..1024 B in batches of 64, freed in reverse (LIFO) or random
//! order, on one thread or N threads at once; ns per pair.

use super::{check_mark, mark, must, tag, Outcome, Params};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::hint::black_box;
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
