//! Reading hakmem's counters from a program that uses it as its global allocator, and printing the
//! exit report on demand (the same report `HAKMEM_STATS=1` prints at exit).
//!
//! `cargo run --release -p hakmem --example stats`

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

fn main() {
    let before = hakmem::stats::snapshot();
    let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 1 << 20]).collect();
    let during = hakmem::stats::snapshot();
    drop(blocks);
    println!(
        "large blocks allocated while the program ran: {}",
        during.large_allocs - before.large_allocs
    );
    println!(
        "SuperSlabs live: {}, BigCache blocks: {}",
        during.superslabs_live, during.bigcache_blocks
    );
    // The whole report, to stderr (or HAKMEM_STATS_FILE).
    hakmem::stats::print();
}
