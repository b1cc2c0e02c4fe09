//! Statistics helpers: median, percentiles, spread and ratios.

/// The `p`-th percentile (0..=100) by linear interpolation between closest ranks; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    Some(percentile_sorted(&v, p))
}

/// As [`percentile`] on an already sorted, non-empty slice.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let p = p.clamp(0.0, 100.0);
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The median; `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Percentiles of integer samples (nanoseconds), computed in place: returns (median, p95, p99).
pub fn summarize_ns(samples: &mut [u64]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let f: Vec<f64> = samples.iter().map(|&x| x as f64).collect();
    Some((
        percentile_sorted(&f, 50.0),
        percentile_sorted(&f, 95.0),
        percentile_sorted(&f, 99.0),
    ))
}

/// Half the range around the median, in percent of the median: a simple spread for a handful of
/// repetitions (0 when there is one value or the median is 0).
pub fn spread_pct(values: &[f64]) -> f64 {
    let (Some(m), Some(lo), Some(hi)) = (median(values), min(values), max(values)) else {
        return 0.0;
    };
    if m == 0.0 {
        return 0.0;
    }
    (hi - lo) / 2.0 / m.abs() * 100.0
}

pub fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::min)
}

pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

/// `value / baseline`, or `None` when the baseline is zero or either is not finite. Two zeros give 1.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    if !value.is_finite() || !baseline.is_finite() {
        return None;
    }
    if baseline == 0.0 {
        return if value == 0.0 { Some(1.0) } else { None };
    }
    Some(value / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=101).map(|x| x as f64).collect();
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 95.0), Some(96.0));
        assert_eq!(percentile(&v, 99.0), Some(100.0));
        assert_eq!(percentile(&v, 100.0), Some(101.0));
        assert_eq!(percentile(&[10.0, 20.0], 50.0), Some(15.0));
        assert_eq!(percentile(&[10.0, 20.0], 200.0), Some(20.0));
    }

    #[test]
    fn summarize_sorts() {
        let mut s: Vec<u64> = (0..100).rev().collect();
        let (m, p95, p99) = summarize_ns(&mut s).unwrap();
        assert_eq!(m, 49.5);
        assert!((p95 - 94.05).abs() < 1e-9);
        assert!((p99 - 98.01).abs() < 1e-9);
        assert!(summarize_ns(&mut []).is_none());
    }

    #[test]
    fn ratio_and_spread() {
        assert_eq!(ratio(2.0, 4.0), Some(0.5));
        assert_eq!(ratio(0.0, 0.0), Some(1.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(spread_pct(&[90.0, 100.0, 110.0]), 10.0);
        assert_eq!(spread_pct(&[5.0]), 0.0);
        assert_eq!(spread_pct(&[]), 0.0);
    }
}
