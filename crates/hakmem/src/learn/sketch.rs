//! A streaming quantile sketch for allocation sizes: a log-linear histogram.
//!
//! Values below 8 get a bucket each. A value v >= 8 with highest set bit e goes to one of 8
//! sub-buckets of [2^e, 2^(e+1)), chosen by the 3 bits below the highest one, so a bucket
//! [lo, lo + w) has w = 2^(e-3) <= lo / 8. A quantile is answered with the bucket's middle (then
//! clamped to the smallest and largest value seen), so:
//!
//! **Error bound**: the estimate of the q-quantile is within 1/16 (6.25 %) of the true
//! nearest-rank q-quantile (the sample of rank ceil(q * n)), for values below 2^40. Values at or
//! above 2^40 (1 TiB) are counted in the last bucket and reported as at most its top.
//!
//! Fixed size (304 u32 counts, about 1.2 KiB), no allocation; counts saturate, `decay` halves them.

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values at or above 2^MAX_EXP share the last bucket.
pub const MAX_EXP: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS) as usize * SUB;

/// The bucket of `v`.
pub fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let v = v.min((1u64 << MAX_EXP) - 1);
    let e = 63 - v.leading_zeros();
    let mant = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (e - SUB_BITS) as usize * SUB + mant
}

/// The smallest value and the width of bucket `i`.
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let e = ((i - SUB) / SUB) as u32 + SUB_BITS;
    let m = ((i - SUB) % SUB) as u64;
    let w = 1u64 << (e - SUB_BITS);
    ((SUB as u64 + m) * w, w)
}

#[derive(Clone, Copy, Debug)]
pub struct SizeSketch {
    counts: [u32; BUCKETS],
    total: u64,
    min: u64,
    max: u64,
}

impl SizeSketch {
    pub const fn new() -> Self {
        SizeSketch {
            counts: [0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        let b = bucket_of(v);
        if self.counts[b] == u32::MAX {
            self.decay();
        }
        self.counts[b] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The nearest-rank `q`-quantile (q in [0, 1]) within the bound in the module header; None
    /// when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                let (lo, w) = bucket_range(i);
                let mid = lo + (w - 1) / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    pub fn p50(&self) -> Option<u64> {
        self.quantile(0.5)
    }

    pub fn p95(&self) -> Option<u64> {
        self.quantile(0.95)
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &SizeSketch) {
        for i in 0..BUCKETS {
            let (s, overflow) = self.counts[i].overflowing_add(other.counts[i]);
            if overflow {
                self.decay();
                self.counts[i] = self.counts[i].saturating_add(other.counts[i] / 2);
            } else {
                self.counts[i] = s;
            }
        }
        self.total = self.counts.iter().map(|&c| c as u64).sum();
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Halves every count (ages old samples; keeps quantiles roughly where they were).
    pub fn decay(&mut self) {
        for c in self.counts.iter_mut() {
            *c /= 2;
        }
        self.total = self.counts.iter().map(|&c| c as u64).sum();
        if self.total == 0 {
            self.clear();
        }
    }

    pub fn clear(&mut self) {
        *self = SizeSketch::new();
    }
}

impl Default for SizeSketch {
    fn default() -> Self {
        SizeSketch::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::rng::Rng;

    const BOUND: f64 = 1.0 / 16.0;

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let n = sorted.len() as u64;
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        sorted[rank as usize - 1]
    }

    fn check(values: &[u64]) {
        let mut s = SizeSketch::new();
        for &v in values {
            s.record(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0] {
            let want = exact(&sorted, q) as f64;
            let got = s.quantile(q).unwrap() as f64;
            let err = (got - want).abs() / want.max(1.0);
            assert!(err <= BOUND, "q {q}: got {got} want {want} err {err}");
        }
    }

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([1 << 39, (1 << 40) - 1]) {
            let b = bucket_of(v);
            assert!(b >= prev || v >= 1 << 39);
            prev = b;
            let (lo, w) = bucket_range(b);
            assert!(lo <= v && v < lo + w, "{v} in bucket {b} [{lo}, +{w})");
            assert!(w == 1 || w * 8 <= lo);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of((1 << 40) - 1), BUCKETS - 1);
    }

    #[test]
    fn constant_is_exact() {
        let mut s = SizeSketch::new();
        for _ in 0..1000 {
            s.record(4096);
        }
        assert_eq!(s.p50(), Some(4096));
        assert_eq!(s.p95(), Some(4096));
        assert_eq!(SizeSketch::new().p50(), None);
    }

    #[test]
    fn uniform_within_bound() {
        let mut r = Rng::new(1);
        let v: Vec<u64> = (0..50_000).map(|_| 1 + r.below(1 << 20)).collect();
        check(&v);
        let v: Vec<u64> = (0..20_000).map(|_| 16 + r.below(1024)).collect();
        check(&v);
    }

    #[test]
    fn geometric_within_bound() {
        // Sizes 2^k * (1 + jitter) with P(k) halving per step: many small, a few huge.
        let mut r = Rng::new(2);
        let v: Vec<u64> = (0..50_000)
            .map(|_| {
                let mut k = 4;
                while k < 30 && r.below(2) == 0 {
                    k += 1;
                }
                (1u64 << k) + r.below(1 << k)
            })
            .collect();
        check(&v);
    }

    #[test]
    fn small_values_are_exact() {
        let v: Vec<u64> = (0..1000).map(|i| i % 8).collect();
        check(&v);
        let mut s = SizeSketch::new();
        for &x in &v {
            s.record(x);
        }
        assert_eq!(s.quantile(0.5), Some(3));
    }

    #[test]
    fn decay_and_merge_keep_quantiles() {
        let mut a = SizeSketch::new();
        let mut b = SizeSketch::new();
        for i in 0..1000u64 {
            a.record(100 + i % 10);
            b.record(100_000 + i);
        }
        let p = a.p50().unwrap();
        a.decay();
        assert_eq!(a.count(), 500);
        assert!((a.p50().unwrap() as f64 - p as f64).abs() / p as f64 <= BOUND);
        a.merge(&b);
        assert_eq!(a.count(), 1500);
        assert!(a.p95().unwrap() >= 100_000 - 100_000 / 16);
        a.clear();
        assert!(a.is_empty());
    }
}
