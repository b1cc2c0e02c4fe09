//! `larson_ops ALLOCATOR MIN MAX CHUNKS OPS THREADS`: Larson's replacement loop (see
//! `suites/larson.rs`) for a fixed number of replacements per thread instead of a fixed time, so that
//! `valgrind --tool=callgrind` instruction and cache-miss counts, and alternating wall-time runs, can
//! be compared between allocators and builds. Each thread frees a random block of its array and
//! allocates a replacement of random size in MIN..=MAX; with THREADS > 1 the arrays are handed
//! between threads every CHUNKS replacements, so blocks are freed by other threads than their
//! allocators'. ALLOCATOR: hakmem, glibc, mimalloc, jemalloc, snmalloc. Set LARSON_STATS=1 to print hakmem's
//! counters at the end.

use core::alloc::{GlobalAlloc, Layout};
use std::collections::VecDeque;
use std::sync::Mutex;

#[path = "../rng.rs"]
#[allow(dead_code)]
mod rng;
use rng::Rng;

#[derive(Clone, Copy)]
struct Block {
    p: *mut u8,
    size: usize,
}
// SAFETY: a Block is a pointer and a size; each block is freed exactly once, by whoever holds it.
unsafe impl Send for Block {}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("layout")
}

fn run<A: GlobalAlloc + Sync>(
    a: &A,
    min: usize,
    max: usize,
    chunks: usize,
    ops: u64,
    threads: usize,
) {
    let fill = |seed: u64| -> Vec<Block> {
        let mut rng = Rng::new(seed);
        (0..chunks)
            .map(|_| {
                let size = rng.range(min, max);
                // SAFETY: valid non-zero layout; the block is freed once, below or by a replacement.
                let p = unsafe { a.alloc(layout(size)) };
                assert!(!p.is_null());
                // SAFETY: p is valid for size bytes.
                unsafe { (p.write(1), p.add(size - 1).write(1)) };
                Block { p, size }
            })
            .collect()
    };
    let mut own: Vec<Vec<Block>> = (0..threads).map(|t| fill(12345 + t as u64)).collect();
    let parked = Mutex::new(VecDeque::from([fill(13345)]));
    std::thread::scope(|s| {
        for (t, arr) in own.drain(..).enumerate() {
            let parked = &parked;
            s.spawn(move || {
                let mut rng = Rng::new(12345 ^ ((t as u64 + 1) << 32));
                let (mut arr, mut done) = (arr, 0);
                for _ in 0..ops {
                    let i = rng.below(arr.len());
                    let b = arr[i];
                    let size = rng.range(min, max);
                    // SAFETY: b is a live block of `a` with layout(b.size); it is freed once and
                    // replaced by a new block of `size` bytes, which is written at both ends.
                    unsafe {
                        let v =
                            b.p.read_volatile()
                                .wrapping_add(b.p.add(b.size - 1).read_volatile());
                        std::hint::black_box(v);
                        a.dealloc(b.p, layout(b.size));
                        let p = a.alloc(layout(size));
                        assert!(!p.is_null());
                        p.write_volatile(1);
                        p.add(size - 1).write_volatile(1);
                        arr[i] = Block { p, size };
                    }
                    done += 1;
                    if threads > 1 && done >= chunks {
                        done = 0;
                        let mut q = parked.lock().unwrap();
                        q.push_back(arr);
                        arr = q.pop_front().unwrap();
                    }
                }
                parked.lock().unwrap().push_back(arr);
            });
        }
    });
    for arr in parked.into_inner().unwrap() {
        for b in arr {
            // SAFETY: every block left in the arrays is live and freed exactly once here.
            unsafe { a.dealloc(b.p, layout(b.size)) };
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!(
            "usage: larson_ops hakmem|glibc|mimalloc|jemalloc|snmalloc MIN MAX CHUNKS OPS THREADS"
        );
        std::process::exit(2);
    }
    let num = |i: usize, what: &str| -> usize { args[i].parse().expect(what) };
    let (min, max) = (num(2, "MIN").max(1), num(3, "MAX"));
    let (chunks, ops, threads) = (
        num(4, "CHUNKS").max(1),
        num(5, "OPS") as u64,
        num(6, "THREADS").max(1),
    );
    let max = max.max(min);
    match args[1].as_str() {
        "hakmem" => run(&hakmem::Hakmem, min, max, chunks, ops, threads),
        "glibc" => run(&std::alloc::System, min, max, chunks, ops, threads),
        "mimalloc" => run(&mimalloc::MiMalloc, min, max, chunks, ops, threads),
        "jemalloc" => run(&tikv_jemallocator::Jemalloc, min, max, chunks, ops, threads),
        "snmalloc" => run(&snmalloc_rs::SnMalloc, min, max, chunks, ops, threads),
        other => {
            eprintln!("larson_ops: unknown allocator {other}");
            std::process::exit(2);
        }
    }
    if args[1] == "hakmem" && std::env::var_os("LARSON_STATS").is_some() {
        let s = hakmem::stats::snapshot();
        eprintln!(
            "refills {} flushes {} remote_frees {} slabs_acquired {} superslabs_mapped {}",
            s.refills, s.flushes, s.remote_frees, s.slabs_acquired, s.superslabs_mapped
        );
    }
}
