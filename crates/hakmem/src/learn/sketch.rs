//! A fixed-size histogram of request sizes for their quantiles: four buckets per power of two
//! (exact below 4), so a quantile is within 12.5 % of the true value. No allocation.

const SUB: usize = 4;
/// Sizes of 2^62 and above share the last bucket.
const BUCKETS: usize = SUB + (62 - 2) * SUB;

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = (63 - v.leading_zeros()).min(61) as usize;
    let sub = ((v >> (e - 2)) & 3) as usize;
    SUB + (e - 2) * SUB + if v >= 1 << 62 { SUB - 1 } else { sub }
}

/// The middle of bucket `i`.
fn middle_of(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + 2;
    let width = 1u64 << (e - 2);
    (SUB + (i - SUB) % SUB) as u64 * width + (width - 1) / 2
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
            min: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        // A minimum of 0 until the first value, so a new sketch is all zeros (in .bss, not .data).
        let first = self.total == 0;
        let b = bucket_of(v);
        if self.counts[b] == u32::MAX {
            // Halve everything: the quantiles stay, the counts fit.
            self.counts.iter_mut().for_each(|c| *c /= 2);
            self.total = self.counts.iter().map(|&c| c as u64).sum();
        }
        self.counts[b] += 1;
        self.total += 1;
        self.min = if first { v } else { self.min.min(v) };
        self.max = self.max.max(v);
    }

    /// The `q` quantile (0..=1), within the recorded minimum and maximum; None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        // The rank is ceil(x): x >= 0, and `as` truncates.
        let x = q.clamp(0.0, 1.0) * self.total as f64;
        let rank = ((x as u64) + ((x as u64 as f64) < x) as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return Some(middle_of(i).clamp(self.min, self.max));
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

    pub fn clear(&mut self) {
        *self = SizeSketch::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_size_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 40, (1 << 62) - 1, 1 << 62, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "{v}");
            last = b;
            if (4..1 << 62).contains(&v) {
                let m = middle_of(b);
                assert!(m.abs_diff(v) * 8 <= v, "{v}: {m}");
            }
        }
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let mut s = SizeSketch::new();
        assert_eq!(s.p50(), None);
        for v in 1..=1000u64 {
            s.record(v * 64);
        }
        let p50 = s.p50().unwrap() as f64;
        let p95 = s.p95().unwrap() as f64;
        assert!((p50 / 32_000.0 - 1.0).abs() < 0.125, "{p50}");
        assert!((p95 / 60_800.0 - 1.0).abs() < 0.125, "{p95}");
        assert!(s.quantile(0.0).unwrap() - 64 <= 8);
        assert!(64_000 - s.quantile(1.0).unwrap() <= 8000);
        s.clear();
        s.record(7);
        assert_eq!((s.p50(), s.total), (Some(7), 1));
    }
}
