//! The few transcendental functions the learner needs, computed here rather than by libm.
//!
//! With learning on, calling libm's `log2`, `ln` and `pow` faulted three pages of libm into a
//! process that otherwise never touched them (its code and its tables, each fault mapping up to
//! 16 neighbouring pages): about 0.2 MiB resident and a few page faults, 2-4 % of the small
//! workloads the learner is scored on. These are accurate to about 1e-12 relative (tested
//! against the standard library), far more than ratings, bandit indices and workload shapes
//! need. (`floor`, `ceil` and `round` need no such care: the standard library's come from the
//! compiler's own builtins, linked into hakmem, not from libm.)

use core::f64::consts::{LN_2, LOG2_10};

/// log2(x) for finite x > 0; NaN for x <= 0 or NaN, infinity for infinity.
pub fn log2(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    // Subnormals: scale into the normal range first.
    let (x, bias) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54.0)
    } else {
        (x, 0.0)
    };
    let bits = x.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // The mantissa m in [1, 2), moved to [sqrt(1/2), sqrt(2)) so that z below stays small.
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        exp += 1;
    }
    // ln(m) = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...), |z| <= 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 24.0 {
        sum += term / k;
        term *= z2;
        k += 2.0;
    }
    exp as f64 + bias + 2.0 * sum / LN_2
}

/// The natural logarithm (see `log2`).
pub fn ln(x: f64) -> f64 {
    log2(x) * LN_2
}

/// 2^x; 0 below -1074, infinity above 1024, NaN for NaN.
pub fn exp2(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= 1024.0 {
        return f64::INFINITY;
    }
    if x < -1074.0 {
        return 0.0;
    }
    let n = x.floor();
    // f in [0, ln 2); e^f by its Taylor series: f^k / k! < 1e-13 by k = 14.
    let f = (x - n) * LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while k < 15.0 {
        term *= f / k;
        sum += term;
        k += 1.0;
    }
    // Scale by 2^n in two steps, so that neither factor leaves the normal range.
    let n = n as i64;
    let half = n / 2;
    sum * pow2i(half) * pow2i(n - half)
}

/// 10^x (see `exp2`).
pub fn pow10(x: f64) -> f64 {
    exp2(x * LOG2_10)
}

/// 2^n for -1022 <= n <= 1023, as a normal float built from its bits.
fn pow2i(n: i64) -> f64 {
    f64::from_bits(((n.clamp(-1022, 1023) + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn log2_and_ln_match_the_standard_library() {
        let mut x = 1e-310;
        while x < 1e300 {
            assert!(
                close(log2(x), x.log2(), 1e-12)
                    || (x.log2().abs() < 1e-6 && (log2(x) - x.log2()).abs() < 1e-15),
                "log2({x})"
            );
            assert!(
                (ln(x) - x.ln()).abs() <= 1e-12 * x.ln().abs().max(1.0),
                "ln({x})"
            );
            x *= 1.37;
        }
        for v in [1.0, 2.0, 4096.0, 0.5, 1.5, 3.0, 1e9 + 7.0] {
            assert!((log2(v) - f64::log2(v)).abs() < 1e-12, "log2({v})");
        }
        assert_eq!(log2(1.0), 0.0);
        assert!(log2(0.0).is_nan() && log2(-1.0).is_nan() && log2(f64::NAN).is_nan());
        assert_eq!(log2(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn exp2_and_pow10_match_the_standard_library() {
        let mut x = -1000.0;
        while x < 1000.0 {
            assert!(close(exp2(x), x.exp2(), 1e-12), "exp2({x})");
            x += 0.731;
        }
        let mut y = -30.0;
        while y < 30.0 {
            assert!(close(pow10(y), 10f64.powf(y), 1e-11), "pow10({y})");
            y += 0.0173;
        }
        assert_eq!(exp2(0.0), 1.0);
        assert_eq!(exp2(10.0), 1024.0);
        assert_eq!(exp2(2000.0), f64::INFINITY);
        assert_eq!(exp2(-2000.0), 0.0);
        assert!(exp2(f64::NAN).is_nan());
    }
}
