//! SplitMix64 (Steele, Lea, Flood 2014): the learner's only randomness, seeded by the caller so a
//! run is reproducible from its seed and measurements. Not for anything security-related.

/// Any seed, including 0, is fine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (Lemire's multiply-shift; bias below 2^-32 for the small n used here).
    /// `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`: a uniform value in `[0, 1)` (53 bits) is below `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_first_value_and_uniform_draws() {
        // Reference value of SplitMix64 seeded with 1234567 (from the published C code).
        assert_eq!(Rng::new(1234567).next_u64(), 6457827717110365317);
        let mut r = Rng::new(7);
        let mut hist = [0u32; 10];
        for _ in 0..100_000 {
            hist[r.below(10) as usize] += 1;
            assert!(r.chance(1.0) && !r.chance(0.0));
        }
        assert!(hist.iter().all(|h| (9_000..11_000).contains(h)), "{hist:?}");
    }
}
