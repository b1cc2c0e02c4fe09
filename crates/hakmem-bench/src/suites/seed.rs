//! The seed scenarios of DESIGN.md section 6: allocate a block, touch every page, free it; each cycle is
//! timed on its own, for the median, P95 and P99 per cycle.

use super::{check_pages, must, tag, touch_pages, Outcome, Params, KIB, MIB};
use crate::alloc::Alloc;
use std::hint::black_box;
use std::time::Instant;

const JSON: usize = 64 * KIB;
const MIR: usize = 256 * KIB;
pub const VM: usize = 2 * MIB;

/// Rounds of the scenario's cycle list in the default run.
const ROUNDS: usize = 20;

pub fn json<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &[JSON; 1000], p.n(ROUNDS))
}

pub fn mir<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &[MIR; 100], p.n(ROUNDS))
}

pub fn vm<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &[VM; 10], p.n(ROUNDS))
}

/// The three interleaved: every cycle a JSON block, every 10th also a MIR block, every 100th a VM block.
pub fn mixed<A: Alloc>(a: &A, p: &Params) -> Outcome {
    cycles(a, &mixed_sizes(), p.n(ROUNDS))
}

/// The cycle list of `mixed`: 1000 JSON, 100 MIR and 10 VM blocks interleaved.
pub fn mixed_sizes() -> Vec<usize> {
    let mut sizes = Vec::with_capacity(1110);
    for i in 0..1000 {
        sizes.push(JSON);
        if i % 10 == 0 {
            sizes.push(MIR);
        }
        if i % 100 == 0 {
            sizes.push(VM);
        }
    }
    sizes
}

/// Allocates, touches, checks and frees each size of `sizes` in turn, `rounds` times.
pub fn cycles<A: Alloc>(a: &A, sizes: &[usize], rounds: usize) -> Outcome {
    let mut times: Vec<u64> = Vec::with_capacity(sizes.len() * rounds);
    let mut checksum = 0u64;
    let start = Instant::now();
    for r in 0..rounds {
        for (i, &size) in sizes.iter().enumerate() {
            let t = tag(r + i);
            let t0 = Instant::now();
            // SAFETY: size > 0, align 16 is a power of two; the block is freed with the same layout.
            unsafe {
                let p = must(a.alloc(size, 16), "seed", size);
                touch_pages(black_box(p), size, t);
                checksum = checksum.wrapping_add(check_pages(p, size, t));
                a.dealloc(p, size, 16);
            }
            times.push(t0.elapsed().as_nanos() as u64);
        }
    }
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    Outcome {
        ops: times.len() as u64,
        elapsed_ns,
        per_op_ns: Some(times),
        throughput: false,
        checksum,
    }
}
