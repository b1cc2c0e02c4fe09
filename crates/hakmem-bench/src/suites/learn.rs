//! The `learn` suite's workloads: chosen so that different fixed strategies of hakmem's learner win
//! on different ones; `larson` is a real program's pattern (Larson's server benchmark, as
//! mimalloc-bench runs it), where the thread-cache knobs decide. Each runs for a fixed wall time (`secs`: 1.5 s in the default run), so the
//! learner sees the same ~150 epochs of 10 ms whatever the strategy, and a bad strategy cannot make
//! the suite run for minutes; the figure is wall time per operation.

use super::{
    check_mark, check_pages, mark, must, seed, tag, touch_pages, Block, LarsonParams, Outcome,
    Params, KIB, MIB,
};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Wall time of one run: 0.75 s per unit of work (1.5 s default, 0.19 s quick, 3.75 s full).
pub fn secs(p: &Params) -> f64 {
    0.75 * p.scale
}

/// In the `phase` workload, one large-block operation counts as this many operations (about their
/// relative cost), so that both halves weigh in its time per operation.
pub const LARGE_OP_WEIGHT: u64 = 1000;

fn outcome(ops: u64, start: Instant, checksum: u64) -> Outcome {
    Outcome {
        ops,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum,
    }
}

/// The seed VM cycle (a 2 MiB block: allocate, touch every page, check, free) for `secs`.
pub fn vm<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &[seed::VM], secs(p))
}

/// The seed MIXED cycle list (64 KiB, 256 KiB and 2 MiB blocks 1000:100:10) for `secs`.
pub fn mixed<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &seed::mixed_sizes(), secs(p))
}

/// As `seed::cycles`, round after round until `secs` have passed, without timing each cycle.
fn cycles<A: Alloc>(a: &A, sizes: &[usize], secs: f64) -> Outcome {
    let mut sum = 0u64;
    let mut ops = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut r = 0;
    while Instant::now() < end {
        for (i, &size) in sizes.iter().enumerate() {
            sum += free_block(a, new_block(a, size, tag(r + i), true), true);
            ops += 1;
            if i % 16 == 15 && Instant::now() >= end {
                break;
            }
        }
        r += 1;
    }
    outcome(ops, start, sum)
}

/// Allocates a block (align 16) and marks it, or touches every page.
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

/// Replaces a random block of `live` by a new one of a size in `lo..=hi`.
#[inline(always)]
fn replace<A: Alloc>(
    a: &A,
    live: &mut [Block],
    (lo, hi): (usize, usize),
    touch: bool,
    i: usize,
    rng: &mut Rng,
) -> u64 {
    let k = rng.below(live.len());
    let mut sum = 0;
    if !live[k].p.is_null() {
        sum = free_block(a, live[k], touch);
    }
    live[k] = new_block(a, rng.range(lo, hi), tag(i), touch);
    sum
}

/// Sizes of the `pressure` crest's blocks: above every large-block threshold, below huge pages.
pub const CREST_MIN: usize = 300 * KIB;
pub const CREST_MAX: usize = MIB;

/// Memory pressure in waves of ~0.5 s: a crest builds a live set of ~40 MiB of 300 KiB..1 MiB
/// blocks (every page touched), churns it once over and frees it all; a long, nearly idle trough
/// follows (computation over a 64 KiB buffer, a 512 KiB block allocated and freed about every ms).
/// The crest's blocks are above every large-block threshold and below the huge-page size, so every
/// strategy maps them alike, 4 KiB pages: keeping them saves their page faults at the next crest,
/// giving them back makes the trough's RSS small, and on the balanced score giving back wins.
/// An operation is a crest allocation or 1000 steps of trough computation.
pub fn pressure<A: Alloc>(a: &A, p: &Params) -> Outcome {
    let mut rng = Rng::new(0x9E55_0001);
    let mut big = vec![Block::EMPTY; 64];
    let buf = new_block(a, 64 * KIB, 1, true);
    let words = 64 * KIB / 8;
    let mut sum = 0u64;
    let mut ops = 0u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs(p));
    let mut w = 0;
    'run: while Instant::now() < end {
        for (i, b) in big.iter_mut().enumerate() {
            *b = new_block(a, rng.range(CREST_MIN, CREST_MAX), tag(w + i), true);
        }
        for i in 0..big.len() {
            sum += replace(
                a,
                &mut big,
                (CREST_MIN, CREST_MAX),
                true,
                w + i + 1,
                &mut rng,
            );
        }
        sum += free_all(a, &mut big, true);
        ops += 2 * big.len() as u64;
        // The trough: ~0.4 s of computation (about 4 us per step), whatever the strategy.
        for step in 0..100_000u64 {
            for _ in 0..1000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = (x as usize) % words;
                // SAFETY: k < words, so the word is inside the 64 KiB buffer.
                unsafe {
                    let q = (buf.p as *mut u64).add(k);
                    q.write_volatile(q.read_volatile().wrapping_add(x));
                }
            }
            ops += 1;
            // A 512 KiB block (above every large-block threshold) about every millisecond: a slow
            // event, so that the learner's epochs go on ending in the trough.
            if step % 256 == 0 {
                let b = new_block(a, 512 * KIB, tag(step as usize), false);
                sum += free_block(a, b, false);
                if Instant::now() >= end {
                    break 'run;
                }
            }
        }
        w += 1;
    }
    sum += free_all(a, &mut big, true);
    // SAFETY: buf is live and was allocated with (64 KiB, 16).
    unsafe { a.dealloc(buf.p, buf.size, 16) };
    outcome(ops, start, sum.wrapping_add(x))
}

/// A workload that changes halfway through its time: small-object churn (16..1024 B over 20000
/// live blocks), then large-block churn (256 KiB..4 MiB over 16 live blocks, every page touched;
/// each of these operations counts as `LARGE_OP_WEIGHT`).
pub fn phase<A: Alloc>(a: &A, p: &Params) -> Outcome {
    let mut rng = Rng::new(0x9E55_0002);
    let mut sum = 0u64;
    let mut ops = 0u64;
    let start = Instant::now();
    let half = start + Duration::from_secs_f64(secs(p) / 2.0);
    let end = start + Duration::from_secs_f64(secs(p));
    let mut small = vec![Block::EMPTY; 20_000];
    let mut i = 0;
    while Instant::now() < half {
        for _ in 0..256 {
            sum += replace(a, &mut small, (16, 1024), false, i, &mut rng);
            i += 1;
        }
        ops += 256;
    }
    sum += free_all(a, &mut small, false);
    drop(small);
    let mut big = vec![Block::EMPTY; 16];
    while Instant::now() < end {
        sum += replace(a, &mut big, (256 * KIB, 4 * MIB), true, i, &mut rng);
        i += 1;
        ops += LARGE_OP_WEIGHT;
    }
    sum += free_all(a, &mut big, true);
    outcome(ops, start, sum)
}

/// Larson's server pattern with mimalloc-bench's `larsonN` arguments (8..1000 B blocks, 5000 per
/// thread, seed 4141) on `--threads` threads for `secs`: each thread frees a random block of its
/// array and allocates a replacement, and the arrays change hands between threads, so most frees
/// are cross-thread. How many blocks a thread cache takes and keeps decides its speed.
pub fn larson<A: Alloc>(a: &A, p: &Params) -> Outcome {
    super::larson::run(
        a,
        &LarsonParams {
            secs: secs(p),
            min: 8,
            max: 1000,
            chunks: 5000,
            seed: 4141,
            threads: p.threads,
        },
    )
}
