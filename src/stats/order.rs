//! The exact, distribution-free confidence interval of a median from order
//! statistics. Whatever the distribution, the number of samples below the
//! true median is Binomial(n, ½), so P(X₍ₗ₎ ≤ median ≤ X₍ᵤ₎) is a sum of
//! binomial probabilities that does not depend on the data. No resampling,
//! no normality, and the coverage it states is the coverage it has (at least
//! that, with ties). A bootstrap interval of a median claims 95% but covers
//! less with the few repetitions benchmarks have.

use serde::{Deserialize, Serialize};

/// 1-based ranks of the order statistics that bound the median, and the
/// probability that they do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianRanks {
    pub lower: usize,
    pub upper: usize,
    /// P(X₍lower₎ ≤ median ≤ X₍upper₎) for continuous data; at least that
    /// with ties.
    pub coverage: f64,
}

/// The narrowest symmetric ranks (l, n + 1 − l) whose coverage is at least
/// `confidence`, with that coverage: 1 − 2·P(B ≤ l − 1) for B ~ Binomial(n, ½).
/// When no pair reaches it (n ≤ 5 for 95%: even [min, max] covers only
/// 1 − 2^(1−n)) the ranks are (1, n) and the coverage says how far short
/// they fall. `None` for n = 0.
pub fn median_ranks(n: usize, confidence: f64) -> Option<MedianRanks> {
    if n == 0 {
        return None;
    }
    let alpha = 1.0 - confidence;
    // P(B = k) = C(n, k)·2^−n: computed directly for n up to 1000 (exact in
    // f64 for the small n of most runs, so 5 samples report 0.9375, not
    // 0.93749999…), in logarithms beyond, where 2^−n comes near underflow.
    let exact = n <= 1000;
    let mut ln_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut pmf = if exact { 0.5f64.powi(n as i32) } else { ln_pmf.exp() };
    let mut cdf = pmf;
    let (mut lower, mut below) = (1, cdf);
    // Try l = k + 1 while it stays at or below the middle (l ≤ n + 1 − l).
    for k in 1..n {
        if 2 * (k + 1) > n + 1 {
            break;
        }
        // P(B = k) = P(B = k − 1)·(n − k + 1)/k.
        if exact {
            pmf = pmf * (n - k + 1) as f64 / k as f64;
        } else {
            ln_pmf += ((n - k + 1) as f64 / k as f64).ln();
            pmf = ln_pmf.exp();
        }
        cdf += pmf;
        if 2.0 * cdf > alpha {
            break;
        }
        (lower, below) = (k + 1, cdf);
    }
    Some(MedianRanks {
        lower,
        upper: n + 1 - lower,
        coverage: (1.0 - 2.0 * below).max(0.0),
    })
}

/// The median's interval over `values`: the order statistics at
/// [`median_ranks`], with their coverage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianInterval {
    pub low: f64,
    pub high: f64,
    /// The probability that `[low, high]` holds the true median; below the
    /// confidence asked for when n is too small to reach it.
    pub coverage: f64,
}

/// The exact interval of the median of `values` at `confidence` (see
/// [`median_ranks`]). `None` when empty or when a value is NaN.
pub fn median_interval(values: &[f64], confidence: f64) -> Option<MedianInterval> {
    if values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let ranks = median_ranks(values.len(), confidence)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(MedianInterval {
        low: sorted[ranks.lower - 1],
        high: sorted[ranks.upper - 1],
        coverage: ranks.coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(n: usize) -> (usize, usize, f64) {
        let r = median_ranks(n, 0.95).unwrap();
        (r.lower, r.upper, r.coverage)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn below_six_samples_there_is_no_95_percent_interval_and_it_says_so() {
        assert_eq!(median_ranks(0, 0.95), None);
        for (n, coverage) in [(1, 0.0), (2, 0.5), (3, 0.75), (4, 0.875), (5, 0.9375)] {
            let (l, u, c) = ranks(n);
            assert_eq!((l, u), (1, n), "n = {n}");
            assert!(close(c, coverage), "n = {n}: {c}");
        }
    }

    #[test]
    fn ranks_and_coverage_match_the_binomial_tables() {
        // n: (l, u, 1 − 2·P(Binomial(n, ½) ≤ l − 1)), from the exact sums.
        let table = [
            (6, 1, 6, 1.0 - 2.0 / 64.0),
            (8, 1, 8, 1.0 - 2.0 / 256.0),
            (9, 2, 8, 1.0 - 2.0 * 10.0 / 512.0),
            (10, 2, 9, 1.0 - 2.0 * 11.0 / 1024.0),
            (20, 6, 15, 0.958611),
            (100, 40, 61, 0.964800),
        ];
        for (n, l, u, coverage) in table {
            let (gl, gu, gc) = ranks(n);
            assert_eq!((gl, gu), (l, u), "n = {n}");
            assert!((gc - coverage).abs() < 1e-6, "n = {n}: {gc} vs {coverage}");
            assert!(gc >= 0.95);
        }
    }

    #[test]
    fn large_samples_do_not_underflow() {
        // Normal approximation: l ≈ n/2 − 0.98·√n.
        let r = median_ranks(10_000, 0.95).unwrap();
        assert!((4899..=4903).contains(&r.lower), "{r:?}");
        assert_eq!(r.upper, 10_001 - r.lower);
        assert!(r.coverage >= 0.95 && r.coverage < 0.96, "{r:?}");
    }

    #[test]
    fn the_interval_is_made_of_sample_values() {
        let i = median_interval(&[5.0, 1.0, 4.0, 2.0, 3.0], 0.95).unwrap();
        assert_eq!((i.low, i.high), (1.0, 5.0));
        assert!(close(i.coverage, 0.9375));
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let i = median_interval(&v, 0.95).unwrap();
        assert_eq!((i.low, i.high), (2.0, 9.0));
        assert_eq!(median_interval(&[], 0.95), None);
        assert_eq!(median_interval(&[1.0, f64::NAN], 0.95), None);
    }
}
