//! The extended scenarios of DESIGN.md section 6. Each reports wall time per operation and ops/s; every
//! block is written and read back before it is freed.

use super::{
    check_mark, check_pages, mark, must, tag, touch_pages, Block, Outcome, Params, KIB, MIB,
};
use crate::alloc::Alloc;
use crate::rng::Rng;
use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Barrier;
use std::time::Instant;

fn outcome(ops: usize, start: Instant, checksum: u64) -> Outcome {
    Outcome {
        ops: ops as u64,
        elapsed_ns: start.elapsed().as_nanos() as u64,
        per_op_ns: None,
        throughput: true,
        checksum,
    }
}

/// Allocates and marks a block (align 8).
#[inline(always)]
fn new_block<A: Alloc>(a: &A, size: usize, t: u8) -> Block {
    // SAFETY: size > 0, align 8; the caller frees it with `free_block`.
    let p = unsafe { must(a.alloc(size, 8), "extended", size) };
    // SAFETY: p is valid for size bytes.
    unsafe { mark(p, size, t) };
    Block { p, size, tag: t }
}

/// Checks and frees a block made by `new_block`.
#[inline(always)]
fn free_block<A: Alloc>(a: &A, b: Block) -> u64 {
    // SAFETY: b is live, from `new_block` on this allocator, and freed once.
    unsafe {
        let s = check_mark(b.p, b.size, b.tag);
        a.dealloc(b.p, b.size, 8);
        s
    }
}

/// 8 threads; each round every thread allocates 1000 blocks (16 B..4 KiB) and sends them to the next
/// thread, which checks and frees them: every free is a cross-thread free.
pub fn threads<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const T: usize = 8;
    const PER: usize = 1000;
    let rounds = p.n(60);
    let barrier = Barrier::new(T + 1);
    let mut txs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..T {
        let (tx, rx) = mpsc::channel::<Vec<Block>>();
        txs.push(tx);
        rxs.push(rx);
    }
    rxs.rotate_left(1); // thread i receives what thread i-1 sent
    let (start, sum) = std::thread::scope(|s| {
        let handles: Vec<_> = txs
            .into_iter()
            .zip(rxs)
            .enumerate()
            .map(|(i, (tx, rx))| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut rng = Rng::new(77 + i as u64);
                    let mut sum = 0u64;
                    barrier.wait();
                    for r in 0..rounds {
                        let batch: Vec<Block> = (0..PER)
                            .map(|_| new_block(a, rng.range(16, 4096), tag(r)))
                            .collect();
                        tx.send(batch).expect("send");
                        let got = rx.recv().expect("recv");
                        for b in got {
                            sum = sum.wrapping_add(free_block(a, b));
                        }
                    }
                    sum
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let sum = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .fold(0u64, u64::wrapping_add);
        (start, sum)
    });
    outcome(T * PER * rounds, start, sum)
}

/// 20000 blocks of 16 B..2 KiB; free every other one; allocate 10000 blocks of 2..8 KiB (which do not
/// fit the holes); free the rest of the small ones; repeat. Peak RSS shows how well holes are reused.
pub fn fragmentation<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const N: usize = 20000;
    let rounds = p.n(10);
    let mut rng = Rng::new(99);
    let mut sum = 0u64;
    let mut ops = 0;
    let mut large: Vec<Block> = Vec::with_capacity(N);
    let mut small: Vec<Block> = Vec::with_capacity(N);
    let start = Instant::now();
    for r in 0..rounds {
        small.extend((0..N).map(|_| new_block(a, rng.range(16, 2048), tag(r))));
        let mut keep = Vec::with_capacity(N / 2);
        for (i, b) in small.drain(..).enumerate() {
            if i % 2 == 0 {
                sum = sum.wrapping_add(free_block(a, b));
            } else {
                keep.push(b);
            }
        }
        // Free the large blocks of the previous round, then make new ones among the holes.
        for b in large.drain(..) {
            sum = sum.wrapping_add(free_block(a, b));
        }
        large.extend((0..N / 2).map(|_| new_block(a, rng.range(2049, 8192), tag(r))));
        for b in keep {
            sum = sum.wrapping_add(free_block(a, b));
        }
        ops += N + N / 2;
    }
    for b in large.drain(..) {
        sum = sum.wrapping_add(free_block(a, b));
    }
    outcome(ops, start, sum)
}

/// 10^6 operations over 10000 slots: a random slot is freed if full, else filled with a block of
/// 16 B..4 KiB (1 % of them 64 KiB).
pub fn long_running<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const SLOTS: usize = 10000;
    let ops = p.n(1_000_000);
    let mut rng = Rng::new(5);
    let mut slots = vec![Block::EMPTY; SLOTS];
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        let s = &mut slots[rng.below(SLOTS)];
        if s.p.is_null() {
            let size = if rng.chance(1) {
                64 * KIB
            } else {
                rng.range(16, 4096)
            };
            *s = new_block(a, size, tag(i));
        } else {
            sum = sum.wrapping_add(free_block(a, *s));
            *s = Block::EMPTY;
        }
    }
    for s in slots.into_iter().filter(|s| !s.p.is_null()) {
        sum = sum.wrapping_add(free_block(a, s));
    }
    outcome(ops, start, sum)
}

/// Requests of 16 blocks each: 80 % 16 B..1 KiB, 15 % 1..64 KiB, 5 % 64..256 KiB; every page written
/// and read back; all freed at the end of the request.
pub fn web_server<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const PER: usize = 16;
    let requests = p.n(12_000);
    let mut rng = Rng::new(80);
    let mut sum = 0u64;
    let mut live: [(usize, *mut u8); PER] = [(0, core::ptr::null_mut()); PER];
    let start = Instant::now();
    for r in 0..requests {
        let t = tag(r);
        for slot in live.iter_mut() {
            let roll = rng.below(100);
            let size = if roll < 80 {
                rng.range(16, KIB)
            } else if roll < 95 {
                rng.range(KIB + 1, 64 * KIB)
            } else {
                rng.range(64 * KIB + 1, 256 * KIB)
            };
            // SAFETY: size > 0; the block is written within bounds and freed below.
            let p = unsafe { must(a.alloc(size, 8), "web-server", size) };
            // SAFETY: p is valid for size bytes.
            unsafe { touch_pages(black_box(p), size, t) };
            *slot = (size, p);
        }
        for &(size, p) in live.iter() {
            // SAFETY: p is live with layout (size, 8) and freed once.
            unsafe {
                sum = sum.wrapping_add(check_pages(p, size, t));
                a.dealloc(p, size, 8);
            }
        }
    }
    outcome(requests * PER, start, sum)
}

/// Blocks of 16..512 B: 70 % are freed at once, 25 % live for ~1000 allocations (a ring), 5 % are kept
/// to the end.
pub fn lifetimes<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const RING: usize = 1000;
    let ops = p.n(600_000);
    let mut rng = Rng::new(70);
    let mut ring = vec![Block::EMPTY; RING];
    let mut ri = 0;
    let mut forever: Vec<Block> = Vec::with_capacity(ops / 16);
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        let b = new_block(a, rng.range(16, 512), tag(i));
        let roll = rng.below(100);
        if roll < 70 {
            sum = sum.wrapping_add(free_block(a, b));
        } else if roll < 95 {
            let old = std::mem::replace(&mut ring[ri], b);
            ri = (ri + 1) % RING;
            if !old.p.is_null() {
                sum = sum.wrapping_add(free_block(a, old));
            }
        } else {
            forever.push(b);
        }
    }
    for b in ring.into_iter().filter(|b| !b.p.is_null()).chain(forever) {
        sum = sum.wrapping_add(free_block(a, b));
    }
    outcome(ops, start, sum)
}

/// 32 blocks of 1 MiB (mmap-sized for most allocators): one u64 per 64-byte line is written, then read
/// back and checked, in address order or in a random (multiplicative) order; the blocks are freed and
/// the round repeats. One op is one line written and read.
pub fn access<A: Alloc>(a: &A, p: &Params, random: bool) -> Outcome {
    const BLOCKS: usize = 32;
    const SIZE: usize = MIB;
    const LINES: usize = SIZE / 64;
    let rounds = p.n(12);
    let mut sum = 0u64;
    let mut ptrs = [core::ptr::null_mut::<u64>(); BLOCKS];
    let order = |i: usize| {
        if random {
            i.wrapping_mul(0x9E37_79B1) & (LINES - 1)
        } else {
            i
        }
    };
    let start = Instant::now();
    for r in 0..rounds {
        for p in ptrs.iter_mut() {
            // SAFETY: SIZE > 0, align 64; freed below.
            *p = unsafe { must(a.alloc(SIZE, 64), "access", SIZE) } as *mut u64;
        }
        for (b, &p) in ptrs.iter().enumerate() {
            for i in 0..LINES {
                let l = order(i);
                // SAFETY: l < LINES, so the u64 at l*8 words is inside the block.
                unsafe { p.add(l * 8).write_volatile((r * BLOCKS + b + l) as u64) };
            }
        }
        for (b, &p) in ptrs.iter().enumerate() {
            for i in 0..LINES {
                let l = order(i);
                // SAFETY: as above.
                let v = unsafe { p.add(l * 8).read_volatile() };
                if v != (r * BLOCKS + b + l) as u64 {
                    super::corrupt(p as usize, SIZE);
                }
                sum = sum.wrapping_add(v);
            }
        }
        for &p in ptrs.iter() {
            // SAFETY: p is live with layout (SIZE, 64).
            unsafe { a.dealloc(p as *mut u8, SIZE, 64) };
        }
    }
    outcome(rounds * BLOCKS * LINES, start, sum)
}

/// 1000 slots of 16 B..64 KiB; half the operations realloc a live block to 0.5x..2x its size (the kept
/// prefix is checked), the other half free a live block or fill an empty slot.
pub fn realloc_heavy<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const SLOTS: usize = 1000;
    const MAX: usize = 64 * KIB;
    let ops = p.n(400_000);
    let mut rng = Rng::new(50);
    let mut slots = vec![Block::EMPTY; SLOTS];
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        let s = &mut slots[rng.below(SLOTS)];
        if s.p.is_null() {
            *s = new_block(a, rng.range(16, 4096), tag(i));
        } else if rng.chance(50) {
            let old = s.size;
            let new = if rng.chance(50) {
                rng.range(old, (old * 2).min(MAX))
            } else {
                rng.range(old.div_ceil(2), old)
            };
            let new = new.max(1);
            // SAFETY: s.p is live with layout (old, 8); realloc keeps min(old, new) bytes.
            unsafe {
                let p = must(a.realloc(s.p, old, 8, new), "realloc", new);
                if p.read_volatile() != s.tag
                    || (new >= old && p.add(old - 1).read_volatile() != s.tag)
                {
                    super::corrupt(p as usize, new);
                }
                mark(p, new, s.tag);
                *s = Block {
                    p,
                    size: new,
                    tag: s.tag,
                };
            }
        } else {
            sum = sum.wrapping_add(free_block(a, *s));
            *s = Block::EMPTY;
        }
    }
    for s in slots.into_iter().filter(|s| !s.p.is_null()) {
        sum = sum.wrapping_add(free_block(a, s));
    }
    outcome(ops, start, sum)
}

/// Edge cases that `GlobalAlloc` allows (size 0 and null pointers are undefined behaviour there; they
/// are C-ABI cases, exercised under LD_PRELOAD): 1-byte blocks with align 1, `alloc_zeroed` of memory
/// just dirtied, realloc down to 1 byte and back up, and one request too large to satisfy, which must
/// return null. One op is one iteration of the loop (6 allocator calls).
pub fn edge_cases<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const Z: usize = 4096;
    let iters = p.n(150_000);
    // SAFETY: a valid layout (size <= isize::MAX rounded to align); a correct allocator returns null.
    let huge = unsafe { a.alloc(isize::MAX as usize - 2 * Z, 8) };
    if !huge.is_null() {
        panic!("edge-cases: an allocation of ~isize::MAX bytes returned {huge:p} instead of null");
    }
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..iters {
        let t = tag(i);
        // SAFETY: every block is used within its size and freed once with its layout.
        unsafe {
            let one = must(a.alloc(1, 1), "edge 1 B", 1);
            one.write_volatile(t);
            let dirty = must(a.alloc(Z, 16), "edge dirty", Z);
            core::ptr::write_bytes(black_box(dirty), 0xAB, Z);
            a.dealloc(dirty, Z, 16);
            let z = must(a.alloc_zeroed(Z, 16), "edge zeroed", Z);
            let words = core::slice::from_raw_parts(black_box(z) as *const u64, Z / 8);
            if words.iter().any(|&w| w != 0) {
                panic!("edge-cases: alloc_zeroed returned memory that is not zero");
            }
            let r = must(a.realloc(z, Z, 16, 1), "edge shrink", 1);
            r.write_volatile(t);
            let r = must(a.realloc(r, 1, 16, 3 * Z), "edge grow", 3 * Z);
            if r.read_volatile() != t {
                super::corrupt(r as usize, 3 * Z);
            }
            sum = sum.wrapping_add(one.read_volatile() as u64 + r.read_volatile() as u64);
            a.dealloc(r, 3 * Z, 16);
            a.dealloc(one, 1, 1);
        }
    }
    outcome(iters, start, sum)
}

/// Blocks of 16 B..8 KiB aligned to 64 B or 4 KiB (alternately), alignment checked, kept in a ring of
/// 256 so some are live at once.
pub fn alignment<A: Alloc>(a: &A, p: &Params) -> Outcome {
    const RING: usize = 256;
    let ops = p.n(300_000);
    let mut rng = Rng::new(64);
    let mut ring = [(core::ptr::null_mut::<u8>(), 0usize, 0usize, 0u8); RING];
    let mut sum = 0u64;
    let start = Instant::now();
    for i in 0..ops {
        let align = if i % 2 == 0 { 64 } else { 4096 };
        let size = rng.range(16, 8192);
        let t = tag(i);
        // SAFETY: size > 0, align a power of two; the block is freed once with its layout.
        unsafe {
            let p = must(a.alloc(size, align), "alignment", size);
            if !(p as usize).is_multiple_of(align) {
                panic!("alignment: block {p:p} is not aligned to {align}");
            }
            mark(p, size, t);
            let (op, osize, oalign, otag) =
                std::mem::replace(&mut ring[i % RING], (p, size, align, t));
            if !op.is_null() {
                sum = sum.wrapping_add(check_mark(op, osize, otag));
                a.dealloc(op, osize, oalign);
            }
        }
    }
    for (p, size, align, t) in ring {
        if !p.is_null() {
            // SAFETY: live block freed once with its layout.
            unsafe {
                sum = sum.wrapping_add(check_mark(p, size, t));
                a.dealloc(p, size, align);
            }
        }
    }
    outcome(ops, start, sum)
}
