//! Drift: does a metric move with the order the trials ran in? Spearman's
//! rank correlation with a permutation p-value needs no assumption about
//! the shape of the trend (any monotone drift counts) or the distribution of
//! the values, and stays valid at the small n of a benchmark run.

use super::SplitMix;
use serde::{Deserialize, Serialize};

/// Fewer samples than this and no permutation p-value can get small: with
/// 5 values the most extreme order still has p = 2/120.
pub const TREND_MIN_N: usize = 6;

/// Spearman's ρ of a metric against run order, with its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trend {
    pub n: usize,
    /// −1 … 1: the values fall (−) or rise (+) with run order.
    pub rho: f64,
    /// Two-sided permutation test of ρ = 0: the share of random orders of
    /// the values whose |ρ| is at least the observed one (the observed order
    /// counted, so p > 0).
    pub p_value: f64,
}

/// Spearman's ρ between `order` (e.g. `seq`) and `values`, and its two-sided
/// permutation p-value over `permutations` shuffles, deterministic for a
/// `seed`. `None` with fewer than [`TREND_MIN_N`] pairs, unequal lengths, a
/// NaN, or a side whose values are all tied (no ranks to correlate).
pub fn spearman_trend(order: &[f64], values: &[f64], permutations: usize, seed: u64) -> Option<Trend> {
    let n = values.len();
    if n < TREND_MIN_N || order.len() != n || order.iter().chain(values).any(|v| v.is_nan()) {
        return None;
    }
    let (x, mut y) = (centred_ranks(order), centred_ranks(values));
    let scale = (dot(&x, &x) * dot(&y, &y)).sqrt();
    if scale == 0.0 {
        return None;
    }
    let observed = dot(&x, &y);
    let mut rng = SplitMix(seed);
    let mut at_least = 1usize;
    for _ in 0..permutations {
        // Fisher-Yates: a random order of the values' ranks. The sums of
        // squares do not change, so the covariance alone decides.
        for i in (1..n).rev() {
            y.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        if dot(&x, &y).abs() >= observed.abs() * (1.0 - 1e-12) {
            at_least += 1;
        }
    }
    Some(Trend {
        n,
        rho: observed / scale,
        p_value: at_least as f64 / (permutations + 1) as f64,
    })
}

/// Ranks from 1 (tied values share the mean of their ranks), minus their
/// mean, so that ρ is the plain correlation of the two rank vectors.
fn centred_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut index: Vec<usize> = (0..n).collect();
    index.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && values[index[end]] == values[index[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end; their mean.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &index[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    let mean = (n + 1) as f64 / 2.0;
    ranks.iter().map(|r| r - mean).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    #[test]
    fn rho_of_known_values() {
        let t = spearman_trend(&seq(5), &[2.0, 1.0, 4.0, 3.0, 5.0], 10, 1);
        assert_eq!(t, None, "five values are too few");
        let t = spearman_trend(&seq(6), &[2.0, 1.0, 4.0, 3.0, 6.0, 5.0], 2000, 1).unwrap();
        // d = (−1, 1, −1, 1, −1, 1): ρ = 1 − 6·Σd² / (n(n² − 1)) = 1 − 6·6/(6·35).
        assert!((t.rho - (1.0 - 36.0 / 210.0)).abs() < 1e-12, "{t:?}");
        // Ties share their mean rank: ranks (1, 2.5, 2.5, 4, 5, 6) against 1..6.
        let t = spearman_trend(&seq(6), &[1.0, 2.0, 2.0, 3.0, 4.0, 5.0], 10, 1).unwrap();
        let (x, y) = (centred_ranks(&seq(6)), centred_ranks(&[1.0, 2.0, 2.0, 3.0, 4.0, 5.0]));
        assert_eq!(y, vec![-2.5, -1.0, -1.0, 0.5, 1.5, 2.5]);
        assert!((t.rho - dot(&x, &y) / (dot(&x, &x) * dot(&y, &y)).sqrt()).abs() < 1e-12);
        assert!(t.rho > 0.98 && t.rho < 1.0, "{t:?}");
    }

    #[test]
    fn a_monotone_drift_is_significant_and_noise_is_not() {
        // Six values in rising order: exactly 2 of 720 orders reach |ρ| = 1, p ≈ 0.003.
        let rising: Vec<f64> = (0..6).map(|i| 100.0 + i as f64 * 3.0).collect();
        let t = spearman_trend(&seq(6), &rising, 2000, 7).unwrap();
        assert_eq!(t.rho, 1.0);
        assert!(t.p_value < 0.01 && t.p_value > 0.0005, "{t:?}");
        let falling: Vec<f64> = rising.iter().rev().copied().collect();
        assert_eq!(spearman_trend(&seq(6), &falling, 2000, 7).unwrap().rho, -1.0);
        let noise = [5.0, 1.0, 4.0, 6.0, 2.0, 3.0, 5.5, 1.5, 4.5, 2.5];
        let t = spearman_trend(&seq(10), &noise, 2000, 7).unwrap();
        assert!(t.p_value > 0.2, "{t:?}");
        assert_eq!(spearman_trend(&seq(10), &noise, 500, 3), spearman_trend(&seq(10), &noise, 500, 3));
    }

    #[test]
    fn constant_values_have_no_trend() {
        assert_eq!(spearman_trend(&seq(8), &[3.0; 8], 10, 1), None);
        assert_eq!(spearman_trend(&seq(8), &[3.0; 7], 10, 1), None);
    }
}
