//! The playbook's two raters. ELO: an epoch is a game against the previous one's strategy (when
//! it differs), the cheaper wins, within `DRAW_MARGIN` a draw; ratings move by `K` times (points -
//! expected points). UCB1: the arm with the highest mean reward (`reward_of`) + c * sqrt(ln(total
//! pulls) / pulls) runs. `ln`, `sqrt` and `pow10` are here: libhakmem.so links nothing but libc.

use core::f64::consts::{LN_2, LOG2_10, SQRT_2};

pub const K: f64 = 32.0;
pub const START: f64 = 1500.0;
/// Costs within 2 % of each other are a draw.
pub const DRAW_MARGIN: f64 = 0.02;

/// An ELO rating and the games behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rating {
    pub rating: f64,
    pub wins: u32,
    pub losses: u32,
    pub draws: u32,
}

impl Rating {
    pub const fn at(rating: f64) -> Self {
        Rating {
            rating,
            wins: 0,
            losses: 0,
            draws: 0,
        }
    }
}

/// The points `ra` expects against `rb`: 1 / (1 + 10^((rb - ra) / 400)).
pub fn expected(ra: f64, rb: f64) -> f64 {
    1.0 / (1.0 + pow10((rb - ra) / 400.0))
}

/// One game between the epochs of `a` (cost `ca`) and `b` (cost `cb`): lower cost wins.
pub fn play(a: &mut Rating, ca: f64, b: &mut Rating, cb: f64) {
    let points = if (ca - cb).abs() <= DRAW_MARGIN * ca.abs().max(cb.abs()) {
        a.draws += 1;
        b.draws += 1;
        0.5
    } else if ca < cb {
        a.wins += 1;
        b.losses += 1;
        1.0
    } else {
        a.losses += 1;
        b.wins += 1;
        0.0
    };
    let delta = K * (points - expected(a.rating, b.rating));
    a.rating += delta;
    b.rating -= delta;
}

/// A UCB1 arm.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Arm {
    pub pulls: u64,
    pub reward_sum: f64,
}

impl Arm {
    /// The mean reward; 0 for an arm never pulled (whose reward sum is 0).
    pub fn mean(&self) -> f64 {
        self.reward_sum / self.pulls.max(1) as f64
    }

    pub fn record(&mut self, cost: f64) {
        self.pulls += 1;
        self.reward_sum += reward_of(cost);
    }

    /// The upper confidence bound; infinite for an arm never pulled.
    pub fn index(&self, total: u64, c: f64) -> f64 {
        if self.pulls == 0 {
            return f64::INFINITY;
        }
        self.mean() + c * sqrt(ln(total.max(1) as f64) / self.pulls as f64)
    }
}

/// A cost (finite, >= 0: `Playbook::record` clamps it) as a reward in (0, 1]: 1 / (1 + cost^2).
/// An average epoch (1.0) gives 0.5; no cost saturates (`learn/pressure`'s cost 0.1 to 12).
pub fn reward_of(cost: f64) -> f64 {
    1.0 / (1.0 + cost * cost)
}

/// The natural logarithm of `x`, a positive normal number (UCB1 takes it of a pull count), to
/// about 1e-14.
pub fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let (mut term, mut sum) = (z, 0.0);
    for k in (1..24).step_by(2) {
        sum += term / k as f64;
        term *= z * z;
    }
    e as f64 * LN_2 + 2.0 * sum
}

/// The square root (core has no float functions; this is one SSE2 instruction).
pub fn sqrt(x: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of every x86_64 CPU.
    unsafe {
        use core::arch::x86_64::{_mm_cvtsd_f64, _mm_set_sd, _mm_sqrt_pd};
        _mm_cvtsd_f64(_mm_sqrt_pd(_mm_set_sd(x)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    x.sqrt()
}

/// 10^y, to about 1e-13 relative.
pub fn pow10(y: f64) -> f64 {
    let x = y * LOG2_10;
    if x.is_nan() || x >= 1024.0 {
        return if x.is_nan() { x } else { f64::INFINITY };
    }
    if x < -1074.0 {
        return 0.0;
    }
    // floor(x), for |x| < 2^63 (x is within [-1074, 1024) here).
    let t = x as i64 as f64;
    let n = if t > x { t - 1.0 } else { t };
    let f = (x - n) * LN_2;
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..16 {
        term *= f / k as f64;
        sum += term;
    }
    let pow2 = |n: i64| f64::from_bits(((n.clamp(-1022, 1023) + 1023) as u64) << 52);
    let n = n as i64;
    sum * pow2(n / 2) * pow2(n - n / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn ln_and_pow10_match_the_standard_library() {
        let mut x = f64::MIN_POSITIVE;
        while x < 1e300 {
            assert!(
                (ln(x) - x.ln()).abs() <= 1e-12 * x.ln().abs().max(1.0),
                "{x}"
            );
            x *= 1.37;
        }
        let mut y = -30.0;
        while y < 30.0 {
            let want = 10f64.powf(y);
            assert!((pow10(y) - want).abs() <= 1e-11 * want, "{y}");
            y += 0.0173;
        }
        assert_eq!(pow10(400.0), f64::INFINITY);
        assert_eq!(pow10(-400.0), 0.0);
    }

    #[test]
    fn elo_games_match_hand_values() {
        assert!(close(expected(1600.0, 1400.0), 0.759746927));
        let (mut a, mut b) = (Rating::at(START), Rating::at(START));
        play(&mut a, 0.5, &mut b, 1.0);
        assert!(close(a.rating, 1516.0) && close(b.rating, 1484.0));
        play(&mut a, 1.0, &mut b, 1.01);
        assert_eq!((a.wins, a.draws, b.losses, b.draws), (1, 1, 1, 1));
        // 1600 loses to 1400: -32 * 0.759746927.
        let (mut a, mut b) = (Rating::at(1600.0), Rating::at(1400.0));
        play(&mut a, 2.0, &mut b, 1.0);
        assert!(close(a.rating, 1575.688098), "{}", a.rating);
        assert!(close(a.rating + b.rating, 3000.0));
    }

    #[test]
    fn ucb1_index_and_reward() {
        let mut a = Arm::default();
        assert_eq!(a.index(10, 1.0), f64::INFINITY);
        a.record(1.0);
        a.record(0.0);
        assert!(close(a.mean(), 0.75));
        assert!(close(
            a.index(8, 0.5),
            0.75 + 0.5 * (8f64.ln() / 2.0).sqrt()
        ));
        assert!(reward_of(3.0) > reward_of(10.0) && reward_of(0.1) > reward_of(0.5));
    }
}
