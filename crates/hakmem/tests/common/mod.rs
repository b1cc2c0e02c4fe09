//! Shared helpers for the rlib integration tests: a small PRNG, address-derived patterns, RSS.
#![allow(dead_code)]

pub struct Rng(pub u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// 90% 0..=1 KiB, 9% ..=64 KiB, 1% ..=1 MiB.
    pub fn size(&mut self) -> usize {
        let k = self.below(100);
        (if k < 90 {
            self.below(1025)
        } else if k < 99 {
            self.below(64 * 1024 + 1)
        } else {
            self.below(1024 * 1024 + 1)
        }) as usize
    }
}

#[inline]
pub fn seed_of(p: *const u8, n: usize) -> u64 {
    (p as u64).wrapping_mul(0x2545F4914F6CDD1D) ^ (n as u64).rotate_left(32)
}
#[inline]
fn word(seed: u64, j: usize) -> u64 {
    seed.wrapping_add(j as u64).wrapping_mul(0x9E3779B97F4A7C15)
}
#[inline]
fn byte(seed: u64, i: usize) -> u8 {
    (seed as u8).wrapping_add((i as u8).wrapping_mul(31))
}

/// Fill n bytes at p with a pattern derived from `seed` (use seed_of(p, n) for address-derived).
pub unsafe fn fill(p: *mut u8, n: usize, seed: u64) {
    let nw = n / 8;
    let w = p as *mut u64;
    for j in 0..nw {
        w.add(j).write_unaligned(word(seed, j));
    }
    for i in nw * 8..n {
        *p.add(i) = byte(seed, i);
    }
}

/// First offset where the pattern differs, or None.
pub unsafe fn check(p: *const u8, n: usize, seed: u64) -> Option<usize> {
    let nw = n / 8;
    let w = p as *const u64;
    for j in 0..nw {
        if w.add(j).read_unaligned() != word(seed, j) {
            for b in 0..8 {
                let exp = word(seed, j).to_le_bytes()[b];
                if *p.add(j * 8 + b) != exp {
                    return Some(j * 8 + b);
                }
            }
        }
    }
    (nw * 8..n).find(|&i| *p.add(i) != byte(seed, i))
}

/// Prefix check: the first `keep` bytes of a block that was filled with (seed, n_filled) are intact.
pub unsafe fn check_prefix(p: *const u8, keep: usize, n_filled: usize, seed: u64) -> Option<usize> {
    let words = n_filled / 8;
    for i in 0..keep {
        let exp = if i / 8 < words {
            word(seed, i / 8).to_le_bytes()[i % 8]
        } else {
            byte(seed, i)
        };
        if *p.add(i) != exp {
            return Some(i);
        }
    }
    None
}

/// /proc/self/status field in KiB (VmRSS, VmHWM, VmSize).
pub fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    for l in s.lines() {
        if let Some(rest) = l.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            return rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("parse status");
        }
    }
    panic!("{} not in /proc/self/status", field)
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
