//! A long-running random driver for toolchains without libFuzzer: random programs (seeded from the
//! clock, or from the second argument) run against the model for N minutes (first argument,
//! default 1), with 1 to 4 threads each running its own model (so frees cross threads only
//! through the allocator's own paths). A violation panics with the seed and program number,
//! which reproduce it: `drive MINUTES SEED`.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    }) | 1;
    let threads: u64 = std::env::var("DRIVE_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    eprintln!("drive: {minutes} min, seed {seed}, {threads} threads");
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let (mut programs, mut ops) = (0u64, 0u64);
                let mut buf = Vec::new();
                while Instant::now() < end {
                    // Programs of 16 bytes to 64 KiB; long ones keep many blocks live.
                    let len = 16 + (xorshift(&mut s) % (1 << (4 + xorshift(&mut s) % 13))) as usize;
                    buf.clear();
                    buf.extend((0..len).map(|_| xorshift(&mut s) as u8));
                    let prog_seed = s;
                    let r = std::panic::catch_unwind(|| hakmem_fuzz::run(&buf));
                    match r {
                        Ok(n) => ops += n,
                        Err(_) => {
                            eprintln!(
                                "drive: FAILURE in thread {t}, program {programs} (state {prog_seed}), seed {seed}"
                            );
                            std::process::exit(1);
                        }
                    }
                    programs += 1;
                }
                (programs, ops)
            })
        })
        .collect();
    let (mut programs, mut ops) = (0, 0);
    for h in hs {
        let (p, o) = h.join().unwrap();
        programs += p;
        ops += o;
    }
    println!("drive: seed {seed}: {programs} programs, {ops} operations checked, no violation");
}
