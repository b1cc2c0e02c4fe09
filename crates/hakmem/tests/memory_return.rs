//! Memory return through the rlib (its own test binary, so nothing else disturbs RSS): allocate 1 GiB
//! in small blocks (64 B..1 KiB), touch it, free it all; VmRSS must come back to within start + 64 MiB.
//! Then 3 cycles where another thread allocates and this one frees (the allocating thread then does a
//! few thousand malloc/free pairs and exits): RSS back near the start each time, not growing per cycle.
mod common;
use common::*;
use std::sync::mpsc;

const TOTAL: usize = 1 << 30;
const SLACK_KIB: u64 = 64 * 1024;

fn allocate_gib(seed: u64, ptrs: &mut Vec<(usize, usize)>) {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    ptrs.clear();
    while total < TOTAL {
        let n = 64 + rng.below(961) as usize;
        unsafe {
            let p = hakmem::malloc(n);
            assert!(!p.is_null(), "malloc({}) NULL after {} MiB", n, total >> 20);
            std::ptr::write_bytes(p, (ptrs.len() & 0xff) as u8, n);
            (p as *mut u64).write_unaligned(p as u64 ^ n as u64);
            ptrs.push((p as usize, n));
        }
        total += n;
    }
}

fn free_all(ptrs: &mut Vec<(usize, usize)>) {
    for (i, &(p, n)) in ptrs.iter().enumerate() {
        unsafe {
            let b = p as *mut u8;
            assert_eq!(
                (b as *const u64).read_unaligned(),
                p as u64 ^ n as u64,
                "block {} header corrupted",
                i
            );
            assert_eq!(
                *b.add(n - 1),
                (i & 0xff) as u8,
                "block {} tail corrupted",
                i
            );
            hakmem::free(b);
        }
    }
    ptrs.clear();
}

/// A little allocation work: `k` blocks of 64..1024 B held at once, then freed (so the slow paths,
/// where deferred work such as purging happens, do run).
fn churn_a_little(k: usize) {
    let held: Vec<*mut u8> = (0..k)
        .map(|i| unsafe {
            let p = hakmem::malloc(64 + i % 961);
            assert!(!p.is_null());
            *p = 1;
            p
        })
        .collect();
    for p in held {
        unsafe { hakmem::free(p) };
    }
}

/// RSS after a free: up to ~2 s (with a little allocation work in between) for deferred release.
fn settle(bound: u64) -> u64 {
    let mut rss = status_kib("VmRSS");
    for _ in 0..20 {
        if rss <= bound {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        churn_a_little(2000);
        rss = status_kib("VmRSS");
    }
    rss
}

#[test]
fn memory_returns_after_free_same_and_cross_thread() {
    // the pointer list is allocated (by the system allocator) and touched once, before the baseline
    let mut ptrs: Vec<(usize, usize)> = Vec::with_capacity(TOTAL / 64 + 16);
    // fill with non-zero bytes (a zero fill of fresh memory may be folded into calloc and not touch it)
    ptrs.resize(ptrs.capacity(), (usize::MAX, 1));
    ptrs.clear();
    churn_a_little(1000);
    let start = status_kib("VmRSS");
    let bound = start + SLACK_KIB;

    allocate_gib(1, &mut ptrs);
    let peak = status_kib("VmRSS");
    assert!(
        peak > start + 900 * 1024,
        "RSS rose only {} MiB for 1 GiB of touched blocks",
        (peak - start) >> 10
    );
    free_all(&mut ptrs);
    churn_a_little(5000);
    let after = settle(bound);
    eprintln!(
        "memory return same-thread: start {} KiB, peak {} KiB, after free {} KiB",
        start, peak, after
    );
    assert!(
        after <= bound,
        "same thread: RSS {} MiB after freeing 1 GiB (start {} MiB, +64 allowed)",
        after >> 10,
        start >> 10
    );

    let mut first = None;
    for cycle in 0..3u64 {
        let (to_main, from_worker) = mpsc::channel::<Vec<(usize, usize)>>();
        let (to_worker, from_main) = mpsc::channel::<()>();
        let mut v = std::mem::take(&mut ptrs);
        let h = std::thread::spawn(move || {
            allocate_gib(100 + cycle, &mut v);
            to_main.send(v).unwrap();
            from_main.recv().unwrap(); // main has freed everything
            churn_a_little(5000); // the owner collects remote frees in its slow path
        });
        ptrs = from_worker.recv().unwrap();
        let peak = status_kib("VmRSS");
        free_all(&mut ptrs); // cross-thread frees
        to_worker.send(()).unwrap();
        h.join().unwrap();
        churn_a_little(5000);
        // Later cycles must come back to cycle 0's level (give the purges the same 2 s to get
        // there: settling only to `bound` could stop anywhere below it and make cycles differ).
        let target = first.map_or(bound, |f: u64| bound.min(f + 16 * 1024));
        let after = settle(target);
        eprintln!(
            "memory return cross-thread cycle {}: peak {} KiB, after free {} KiB",
            cycle, peak, after
        );
        assert!(
            peak > start + 900 * 1024,
            "cycle {}: RSS rose only {} MiB",
            cycle,
            (peak - start) >> 10
        );
        assert!(
            after <= bound,
            "cross-thread cycle {}: RSS {} MiB after freeing 1 GiB (start {} MiB, +64 allowed)",
            cycle,
            after >> 10,
            start >> 10
        );
        let f = *first.get_or_insert(after);
        assert!(
            after <= f + 16 * 1024,
            "cycle {}: RSS {} KiB grew from cycle 0 ({} KiB)",
            cycle,
            after,
            f
        );
    }
}
