//! The one percentile definition of vmbench: nearest rank.
//!
//! The agent computes percentiles of its own per-operation times (the disk
//! workload's `fsync_p50_us`), the host those of the network round trips and
//! the summaries those of the repetitions; all three call [`nearest_rank`],
//! so a p99 means the same thing wherever it appears. This file imports
//! nothing: the agent, built without the harness (and so without the rest of
//! `stats`), compiles it alone as `crate::percentile` (see `lib.rs`).

/// The `q` percentile (0 ≤ q ≤ 1) of `sorted` (ascending) by nearest rank:
/// the value of rank ⌈q·n⌉ (1-based), the smallest sample with at least a
/// share `q` of the samples at or below it; q = 0 gives the minimum. Always
/// a value that was measured, never an interpolation between two.
///
/// With n < 1/(1 − q) the rank is n: the percentile is then just the
/// maximum, which is why reports withhold tail percentiles of small samples.
///
/// # Panics
///
/// On an empty slice: there is no percentile of nothing.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    sorted[rank(sorted.len() as u64, q) as usize - 1]
}

/// The 1-based rank [`nearest_rank`] takes among `n` ≥ 1 sorted samples: for
/// samples kept as counts (a histogram) rather than one by one.
pub fn rank(n: u64, q: f64) -> u64 {
    let x = q.clamp(0.0, 1.0) * n as f64;
    // q·n is often an integer in exact arithmetic (0.07 × 100) but a few ulps
    // above it in floating point, which would push ⌈q·n⌉ one rank too far.
    let rank = (x - x * 1e-12).ceil() as u64;
    rank.clamp(1, n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_known_values() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.0), 1.0);
        assert_eq!(nearest_rank(&v, 0.1), 1.0);
        assert_eq!(nearest_rank(&v, 0.11), 2.0);
        assert_eq!(nearest_rank(&v, 0.5), 5.0, "the lower middle, a measured value");
        assert_eq!(nearest_rank(&v, 0.9), 9.0);
        assert_eq!(nearest_rank(&v, 0.99), 10.0, "n < 100: p99 is the maximum");
        assert_eq!(nearest_rank(&v, 1.0), 10.0);
        assert_eq!(nearest_rank(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn integer_ranks_are_not_pushed_up_by_rounding() {
        // 0.07 × 100 is 7.000000000000001 in f64.
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.07), 7.0);
        assert_eq!(nearest_rank(&v, 0.99), 99.0);
        let w: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(nearest_rank(&w, 0.999), 999.0);
        assert_eq!(nearest_rank(&w, 0.9), 900.0);
    }
}
