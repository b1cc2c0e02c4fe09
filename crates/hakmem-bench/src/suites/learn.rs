//! The `learn` suite's workloads: chosen so that different fixed strategies of hakmem's learner win
//! on different ones. Each runs about a second in the default run (scale 2), long enough for the
//! learner to see 100 or more epochs of about 10 ms. Wall time is the figure (`elapsed_ns`).

use super::{
    check_mark, check_pages, mark, must, seed, tag, touch_pages, Block, Outcome, Params, KIB, MIB,
};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::hint::black_box;
use std::time::Instant;

/// The seed VM cycle (2 MiB blocks, every page touched), more rounds than `seed/vm`.
pub fn vm<A: Alloc>(a: &A, p: &Params) -> Outcome {
    seed::cycles(a, &[seed::VM; 10], p.n(250))
}

/// The seed MIXED cycle list (64 KiB, 256 KiB and 2 MiB blocks 1000:100:10), more rounds.
pub fn mixed<A: Alloc>(a: &A, p: &Params) -> Outcome {
    seed::cycles(a, &seed::mixed_sizes(), p.n(10))
}

/// Allocates and marks a block (align 16).
#[inline(always)]
fn new_block<A: Alloc>(a: &A, size: usize, t: u8, touch: bool) -> Block {
    // SAFETY: size > 0, align 16; freed with `free_block`.
    let p = unsafe { must(a.alloc(size, 16), "learn", size) };
    // SAFETY: p is valid for size bytes.
    unsafe {
        if touch {
            touch_pages(black_box(p), size, t);
        } else {
            mark(black_box(p), size, t);
        }
    }
    Block { p, size, tag: t }
}

/// Checks and frees a block made by `new_block` with the same `touch`.
#[inline(always)]
fn free_block<A: Alloc>(a: &A, b: Block, touch: bool) -> u64 {
    // SAFETY: b is live, from `new_block` on this allocator, and freed once.
    unsafe {
        let s = if touch {
            check_pages(b.p, b.size, b.tag)
        } else {
            check_mark(b.p, b.size, b.tag)
        };
        a.dealloc(b.p, b.size, 16);
        s
    }
}

/// Small-object churn: `ops` random replacements in `live` (16..1024 B blocks).
fn small_churn<A: Alloc>(a: &A, live: &mut [Block], ops: usize, rng: &mut Rng) -> u64 {
    let mut sum = 0;
    for i in 0..ops {
        let k = rng.below(live.len());
        if !live[k].p.is_null() {
            sum += free_block(a, live[k], false);
        }
        live[k] = new_block(a, rng.range(16, 1024), tag(i), false);
    }
    sum
}

fn free_all<A: Alloc>(a: &A, live: &mut [Block], touch: bool) -> u64 {
    let mut sum = 0;
    for b in live.iter_mut() {
        if !b.p.is_null() {
            sum += free_block(a, *b, touch);
            *b = Block::EMPTY;
        }
    }
    sum
}

/// Memory pressure in waves: a crest builds a live set of ~40 MiB of 64..256 KiB blocks (every page
/// touched) and churns it, then frees it all; a long trough follows with only small-object churn.
/// Keeping the crest's memory saves page faults; giving it back during the trough halves the mean RSS.
pub fn pressure<A: Alloc>(a: &A, p: &Params) -> Outcome {
    let mut rng = Rng::new(0x9E55_0001);
    let mut small = vec![Block::EMPTY; 4096];
    let mut big = vec![Block::EMPTY; 256];
    let mut sum = 0u64;
    let mut ops = 0usize;
    let start = Instant::now();
    for w in 0..p.n(3) {
        for (i, b) in big.iter_mut().enumerate() {
            *b = new_block(a, rng.range(64 * KIB, 256 * KIB), tag(w + i), true);
        }
        for i in 0..big.len() {
            let k = rng.below(big.len());
            sum += free_block(a, big[k], true);
            big[k] = new_block(a, rng.range(64 * KIB, 256 * KIB), tag(w + i + 1), true);
        }
        sum += free_all(a, &mut big, true);
        ops += 2 * big.len();
        let trough = 1_000_000;
        sum += small_churn(a, &mut small, trough, &mut rng);
        ops += trough;
    }
    sum += free_all(a, &mut small, false);
    Outcome {
        ops: ops as u64,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum: sum,
    }
}

/// A workload that changes halfway: small-object churn (16..1024 B over 20000 live blocks), then
/// large-block churn (256 KiB..4 MiB over 16 live blocks, every page touched).
pub fn phase<A: Alloc>(a: &A, p: &Params) -> Outcome {
    let mut rng = Rng::new(0x9E55_0002);
    let mut sum = 0u64;
    let start = Instant::now();
    let mut small = vec![Block::EMPTY; 20_000];
    let n_small = p.n(1_500_000);
    sum += small_churn(a, &mut small, n_small, &mut rng);
    sum += free_all(a, &mut small, false);
    drop(small);
    let mut big = vec![Block::EMPTY; 16];
    let n_big = p.n(1500);
    for i in 0..n_big {
        let k = rng.below(big.len());
        if !big[k].p.is_null() {
            sum += free_block(a, big[k], true);
        }
        big[k] = new_block(a, rng.range(256 * KIB, 4 * MIB), tag(i), true);
    }
    sum += free_all(a, &mut big, true);
    Outcome {
        ops: (n_small + n_big) as u64,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum: sum,
    }
}
