//! Multi-threaded stress of the rlib API: random sizes 0..1 MiB (90% <= 1 KiB, 9% <= 64 KiB, 1% <= 1 MiB),
//! malloc / calloc / memalign / realloc, a large share of frees done by another thread (blocks travel
//! through channels), every block filled with an address-derived pattern and fully checked before it is
//! freed or reallocated. HAKMEM_STRESS_OPS (default 10^7) and HAKMEM_STRESS_THREADS (default 4);
//! HAKMEM_STRESS_SECS, if set, runs for that many seconds instead of a number of operations
//! (scripts/soak.sh uses it).
mod common;
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

#[derive(Clone, Copy)]
struct Block {
    p: usize,
    n: usize,
    align: usize,
}
unsafe impl Send for Block {}

unsafe fn verify(b: Block, what: &str) {
    let p = b.p as *const u8;
    if let Some(off) = check(p, b.n, seed_of(p, b.n)) {
        panic!(
            "{}: block {:#x} size {} align {} corrupted at offset {}",
            what, b.p, b.n, b.align, off
        );
    }
    if b.align > 1 {
        assert_eq!(
            b.p % b.align,
            0,
            "{}: block {:#x} lost its alignment {}",
            what,
            b.p,
            b.align
        );
    }
}

unsafe fn new_block(rng: &mut Rng, counts: &mut [u64; 4]) -> Block {
    let n = rng.size();
    let k = rng.below(100);
    let (p, align) = if k < 70 {
        counts[0] += 1;
        (hakmem::malloc(n), 1)
    } else if k < 85 {
        counts[1] += 1;
        let p = hakmem::calloc(1, n);
        assert!(!p.is_null(), "calloc(1, {}) returned NULL", n);
        // calloc memory must read as zero (check a sample for large blocks, all for small)
        let step = if n > 65536 { 61 } else { 1 };
        let mut i = 0;
        while i < n {
            assert_eq!(*p.add(i), 0, "calloc(1, {}) byte {} not zero", n, i);
            i += step;
        }
        if n > 0 {
            assert_eq!(*p.add(n - 1), 0, "calloc(1, {}) last byte not zero", n);
        }
        (p, 1)
    } else {
        counts[2] += 1;
        let sh = if rng.below(200) == 0 {
            12 + rng.below(10)
        } else {
            3 + rng.below(10)
        };
        let a = 1usize << sh; // 8 .. 4 KiB, rarely 4 KiB .. 2 MiB
        let a = a.max(8);
        (hakmem::memalign(a, n), a)
    };
    assert!(
        !p.is_null(),
        "allocation of {} bytes (align {}) returned NULL",
        n,
        align
    );
    if align > 1 {
        assert_eq!(
            p as usize % align,
            0,
            "memalign({}, {}) returned misaligned {:p}",
            align,
            n,
            p
        );
    }
    if rng.below(16) == 0 {
        let u = hakmem::usable_size(p);
        assert!(u >= n, "usable_size({:p}) = {} < requested {}", p, u, n);
    }
    fill(p, n, seed_of(p, n));
    Block {
        p: p as usize,
        n,
        align,
    }
}

unsafe fn do_realloc(rng: &mut Rng, b: Block) -> Block {
    verify(b, "before realloc");
    let n2 = if rng.below(2) == 0 {
        rng.size()
    } else {
        (b.n / 2).max(1) + rng.below(b.n as u64 * 2 + 2) as usize
    };
    let n2 = n2.min(1 << 21);
    let old = b.p as *mut u8;
    let seed = seed_of(old, b.n);
    let p = hakmem::realloc(old, n2);
    assert!(
        !p.is_null(),
        "realloc({:#x}, {} -> {}) returned NULL",
        b.p,
        b.n,
        n2
    );
    let keep = b.n.min(n2);
    if let Some(off) = check_prefix(p, keep, b.n, seed) {
        panic!(
            "realloc {:#x} ({} bytes) -> {:p} ({} bytes): content lost at offset {}",
            b.p, b.n, p, n2, off
        );
    }
    fill(p, n2, seed_of(p, n2));
    Block {
        p: p as usize,
        n: n2,
        align: 1,
    }
}

unsafe fn release(b: Block, what: &str) {
    verify(b, what);
    hakmem::free(b.p as *mut u8);
}

#[test]
fn stress_multithreaded_cross_thread_frees() {
    let threads = env_u64("HAKMEM_STRESS_THREADS", 4).max(2) as usize;
    let total_ops = env_u64("HAKMEM_STRESS_OPS", 10_000_000);
    let secs = env_u64("HAKMEM_STRESS_SECS", 0);
    let deadline =
        (secs > 0).then(|| std::time::Instant::now() + std::time::Duration::from_secs(secs));
    let per_thread = if deadline.is_some() {
        u64::MAX
    } else {
        total_ops / threads as u64
    };
    let slots = 2048usize;
    let t0 = std::time::Instant::now();

    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = mpsc::channel::<Vec<Block>>();
        senders.push(tx);
        receivers.push(rx);
    }
    let ops_done = Arc::new(AtomicU64::new(0));
    let remote_frees = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for (t, rx) in receivers.into_iter().enumerate() {
        let others: Vec<_> = senders
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != t)
            .map(|(_, s)| s.clone())
            .collect();
        let ops_done = ops_done.clone();
        let remote_frees = remote_frees.clone();
        handles.push(std::thread::spawn(move || unsafe {
            let mut rng = Rng::new(t as u64 + 1);
            let mut live: Vec<Option<Block>> = vec![None; slots];
            let mut outbox: Vec<Vec<Block>> = vec![Vec::new(); others.len()];
            let mut counts = [0u64; 4];
            let mut ops = 0u64;
            let mut remote = 0u64;
            while ops < per_thread {
                let i = rng.below(slots as u64) as usize;
                match live[i].take() {
                    None => {
                        live[i] = Some(new_block(&mut rng, &mut counts));
                    }
                    Some(b) => {
                        let k = rng.below(100);
                        if k < 15 {
                            counts[3] += 1;
                            live[i] = Some(do_realloc(&mut rng, b));
                        } else if k < 60 {
                            // handed to another thread, which checks and frees it
                            verify(b, "before hand-off");
                            let dst = rng.below(others.len() as u64) as usize;
                            outbox[dst].push(b);
                            if outbox[dst].len() >= 64 {
                                let v = std::mem::take(&mut outbox[dst]);
                                let _ = others[dst].send(v);
                            }
                        } else {
                            release(b, "local free");
                        }
                    }
                }
                ops += 1;
                if ops.is_multiple_of(1024)
                    && deadline.is_some_and(|d| std::time::Instant::now() >= d)
                {
                    break;
                }
                if ops.is_multiple_of(64) {
                    while let Ok(v) = rx.try_recv() {
                        for b in v {
                            release(b, "remote free");
                            remote += 1;
                            ops += 1;
                        }
                    }
                }
            }
            for (dst, v) in outbox.into_iter().enumerate() {
                if !v.is_empty() {
                    let _ = others[dst].send(v);
                }
            }
            for b in live.into_iter().flatten() {
                release(b, "final free");
            }
            drop(others);
            // drain until every other thread has dropped its senders
            for v in rx.iter() {
                for b in v {
                    release(b, "remote free (drain)");
                    remote += 1;
                    ops += 1;
                }
            }
            ops_done.fetch_add(ops, Ordering::Relaxed);
            remote_frees.fetch_add(remote, Ordering::Relaxed);
            counts
        }));
    }
    drop(senders);
    let mut counts = [0u64; 4];
    for h in handles {
        let c = h.join().expect("stress thread panicked");
        for k in 0..4 {
            counts[k] += c[k];
        }
    }
    let ops = ops_done.load(Ordering::Relaxed);
    let remote = remote_frees.load(Ordering::Relaxed);
    eprintln!(
        "stress: {} threads, {} ops ({} malloc, {} calloc, {} memalign, {} realloc, {} cross-thread frees) in {:.1}s",
        threads, ops, counts[0], counts[1], counts[2], counts[3], remote, t0.elapsed().as_secs_f64()
    );
    if deadline.is_none() {
        assert!(ops >= total_ops, "only {} operations done", ops);
    }
    let allocs = counts[0] + counts[1] + counts[2];
    assert!(
        remote * 4 >= allocs,
        "too few cross-thread frees: {} of {} allocations",
        remote,
        allocs
    );
}

/// Blocks allocated by a thread that has exited are freed by others (orphaned slabs), and the exited
/// thread's memory is reused.
#[test]
fn frees_after_owner_exit() {
    for round in 0..20u64 {
        let blocks: Vec<Block> = std::thread::spawn(move || unsafe {
            let mut rng = Rng::new(1000 + round);
            let mut counts = [0u64; 4];
            (0..5000)
                .map(|_| new_block(&mut rng, &mut counts))
                .collect()
        })
        .join()
        .unwrap();
        let half = blocks.len() / 2;
        let (a, b) = blocks.split_at(half);
        let a = a.to_vec();
        let t = std::thread::spawn(move || unsafe {
            for x in a {
                release(x, "free after owner exit (thread)");
            }
        });
        unsafe {
            for &x in b {
                release(x, "free after owner exit (main)");
            }
        }
        t.join().unwrap();
    }
}
