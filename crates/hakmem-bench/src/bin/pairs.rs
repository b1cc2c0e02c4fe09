//! `pairs ALLOCATOR SIZE N`: N malloc+free pairs of SIZE bytes on one thread, for instruction counts
//! under `valgrind --tool=callgrind` (scripts/callgrind-pairs.sh runs it with N = 0 and N > 0 and
//! divides the difference). ALLOCATOR: hakmem, glibc, mimalloc, jemalloc, snmalloc.

use core::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

fn pairs<A: GlobalAlloc>(a: &A, size: usize, n: u64) {
    let layout = Layout::from_size_align(size, 8).expect("layout");
    // One pair before counting starts, so first-use set-up is not in the difference.
    // SAFETY: valid non-zero layout; each block is freed with the layout it was made with.
    unsafe {
        let p = a.alloc(layout);
        a.dealloc(p, layout);
        for _ in 0..n {
            let p = black_box(a.alloc(layout));
            assert!(!p.is_null());
            a.dealloc(p, layout);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: pairs hakmem|glibc|mimalloc|jemalloc|snmalloc SIZE N");
        std::process::exit(2);
    }
    let size: usize = args[2].parse().expect("SIZE");
    let n: u64 = args[3].parse().expect("N");
    match args[1].as_str() {
        "hakmem" => pairs(&hakmem::Hakmem, size, n),
        "glibc" => pairs(&std::alloc::System, size, n),
        "mimalloc" => pairs(&mimalloc::MiMalloc, size, n),
        "jemalloc" => pairs(&tikv_jemallocator::Jemalloc, size, n),
        "snmalloc" => pairs(&snmalloc_rs::SnMalloc, size, n),
        other => {
            eprintln!("pairs: unknown allocator {other}");
            std::process::exit(2);
        }
    }
}
