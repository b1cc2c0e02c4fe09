//! Thread churn through the rlib: 10,000 short Rust threads in batches of 8, each allocating and freeing
//! a few hundred blocks of mixed sizes (content-checked) and handing some blocks to the next batch to
//! free. Peak RSS (VmHWM) and final VmRSS must stay under 64 MiB: exiting threads lose no memory.
mod common;
use common::*;
use std::sync::Mutex;

static HANDOFF: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

fn worker(seed: u64) {
    let mut rng = Rng::new(seed);
    let taken: Vec<(usize, usize)> = {
        let mut h = HANDOFF.lock().unwrap();
        let k = h.len().min(24);
        let at = h.len() - k;
        h.split_off(at)
    };
    unsafe {
        for (p, n) in taken {
            let p = p as *mut u8;
            if let Some(off) = check(p, n, seed_of(p, n)) {
                panic!("handed-over block {:p} size {} corrupted at {}", p, n, off);
            }
            hakmem::free(p);
        }
        let mut live: Vec<(usize, usize)> = Vec::with_capacity(64);
        let nops = 200 + rng.below(200);
        for _ in 0..nops {
            if live.len() >= 48 || (!live.is_empty() && rng.below(3) == 0) {
                let i = rng.below(live.len() as u64) as usize;
                let (p, n) = live.swap_remove(i);
                let p = p as *mut u8;
                if let Some(off) = check(p, n, seed_of(p, n)) {
                    panic!("block {:p} size {} corrupted at {}", p, n, off);
                }
                hakmem::free(p);
            }
            let mut n = rng.size();
            if n > 65536 {
                n = 65536 + n % 200_000;
            }
            let p = hakmem::malloc(n);
            assert!(!p.is_null(), "malloc({}) NULL", n);
            fill(p, n, seed_of(p, n));
            live.push((p as usize, n));
        }
        let mut give = Vec::new();
        for (k, (p, n)) in live.into_iter().enumerate() {
            if k % 2 == 1 && give.len() < 24 {
                give.push((p, n));
            } else {
                hakmem::free(p as *mut u8);
            }
        }
        HANDOFF.lock().unwrap().extend(give);
    }
}

#[test]
fn thread_churn_rss_bounded() {
    let n = env_u64("HAKMEM_CHURN_THREADS", 10_000);
    let rss0 = status_kib("VmRSS");
    let t0 = std::time::Instant::now();
    let mut mid = 0;
    let mut t = 0;
    while t < n {
        let hs: Vec<_> = (0..8)
            .map(|i| std::thread::spawn(move || worker(t * 8 + i + 1)))
            .collect();
        for h in hs {
            h.join().expect("churn thread panicked");
        }
        t += 8;
        if t == n / 2 / 8 * 8 {
            mid = status_kib("VmRSS");
        }
    }
    unsafe {
        for (p, _) in HANDOFF.lock().unwrap().drain(..) {
            hakmem::free(p as *mut u8);
        }
    }
    let rss = status_kib("VmRSS");
    let hwm = status_kib("VmHWM");
    eprintln!(
        "thread churn: {} threads in {:.1}s, VmRSS start {} KiB, mid {} KiB, end {} KiB, VmHWM {} KiB, VmSize {} KiB",
        n, t0.elapsed().as_secs_f64(), rss0, mid, rss, hwm, status_kib("VmSize")
    );
    assert!(
        rss < 64 * 1024,
        "VmRSS {} KiB >= 64 MiB after {} threads came and went",
        rss,
        n
    );
    assert!(
        hwm < 64 * 1024,
        "peak RSS {} KiB >= 64 MiB during thread churn",
        hwm
    );
    assert!(
        rss <= mid + 16 * 1024,
        "RSS keeps growing with thread count: mid {} KiB, end {} KiB",
        mid,
        rss
    );
}
