//! Statistics over raw samples. A leaf module: it imports nothing else of
//! vmbench, so the terminal table, the reports and comparisons all use the
//! same numbers.

pub mod percentile;

use serde::{Deserialize, Serialize};

/// Summary of one metric of one target over its measured repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single value.
    pub stddev: f64,
    pub median: f64,
    /// Tail percentiles, read from an HDR histogram (see [`tail_percentiles`]).
    pub p90: f64,
    pub p99: f64,
    #[serde(default)]
    pub p999: f64,
}

impl Summary {
    /// Summarises `values`; `None` when there are none. NaN values are a bug
    /// upstream and are rejected rather than sorted somewhere arbitrary.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let [p90, p99, p999] = tail_percentiles(&sorted);
        Some(Summary {
            n,
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            stddev,
            median: quantile_sorted(&sorted, 0.5),
            p90,
            p99,
            p999,
        })
    }

    /// Coefficient of variation (stddev / mean); 0 when the mean is 0.
    pub fn cov(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.stddev / self.mean.abs()
        }
    }
}

/// Values are recorded into the histogram in millionths of their unit, so a
/// 13 µs `init_ms` of 0.013 is 13 000 counts, not rounded to 0.
pub const HDR_SCALE: f64 = 1e6;
/// Significant digits the histogram keeps: at most 0.1% quantisation error.
pub const HDR_SIGFIG: u8 = 3;

/// p90, p99 and p99.9 of `sorted` (non-negative values, as every metric is)
/// from an HDR histogram with [`HDR_SIGFIG`] significant digits, each
/// clamped into [min, max] so quantisation never reports a value no sample
/// had. Falls back to exact quantiles for values the histogram cannot hold.
pub fn tail_percentiles(sorted: &[f64]) -> [f64; 3] {
    let exact = || [0.9, 0.99, 0.999].map(|q| quantile_sorted(sorted, q));
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
        return [f64::NAN; 3];
    };
    if lo < 0.0 || hi * HDR_SCALE >= u64::MAX as f64 / 4.0 {
        return exact();
    }
    let Ok(mut hist) = hdrhistogram::Histogram::<u64>::new(HDR_SIGFIG) else {
        return exact();
    };
    for v in sorted {
        if hist.record((v * HDR_SCALE).round() as u64).is_err() {
            return exact();
        }
    }
    [90.0, 99.0, 99.9].map(|p| (hist.value_at_percentile(p) as f64 / HDR_SCALE).clamp(lo, hi))
}

/// The median alone (interpolated between the middle two for an even
/// count): what resampling loops need, without the histogram of
/// [`Summary::of`]. `None` when empty or when a value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    // Selection, not a sort: O(n), and this runs inside resampling loops.
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    let (below, upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if values.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// A ratio of medians with a percentile-bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// Confidence level of `[low, high]`, e.g. 0.95.
    pub confidence: f64,
}

/// median(numerator) / median(denominator), with a 95% percentile-bootstrap
/// interval: both samples are resampled with replacement `resamples` times.
/// Deterministic for a given `seed`. `None` if either side is empty or a
/// denominator median is 0.
pub fn ratio_of_medians(numerator: &[f64], denominator: &[f64], resamples: usize, seed: u64) -> Option<Ratio> {
    let value = median(numerator)? / nonzero(median(denominator)?)?;
    let mut rng = SplitMix(seed);
    let mut ratios = Vec::with_capacity(resamples);
    let mut a = vec![0.0; numerator.len()];
    let mut b = vec![0.0; denominator.len()];
    for _ in 0..resamples {
        resample(numerator, &mut a, &mut rng);
        resample(denominator, &mut b, &mut rng);
        if let Some(d) = median(&b).and_then(nonzero) {
            ratios.push(median(&a)? / d);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(Ratio {
        value,
        low: quantile_sorted(&ratios, 0.025),
        high: quantile_sorted(&ratios, 0.975),
        confidence: 0.95,
    })
}

/// 95% percentile-bootstrap interval of the median of `values`.
pub fn median_ci(values: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    median(values)?;
    let mut rng = SplitMix(seed);
    let mut medians = Vec::with_capacity(resamples);
    let mut sample = vec![0.0; values.len()];
    for _ in 0..resamples {
        resample(values, &mut sample, &mut rng);
        medians.push(median(&sample)?);
    }
    medians.sort_by(f64::total_cmp);
    Some((quantile_sorted(&medians, 0.025), quantile_sorted(&medians, 0.975)))
}

/// Values outside Tukey's fences (below Q1 − 1.5·IQR or above Q3 + 1.5·IQR).
/// They are reported, never dropped: summaries include them.
pub fn tukey_outliers(values: &[f64]) -> Vec<f64> {
    if values.len() < 4 || values.iter().any(|v| v.is_nan()) {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (quantile_sorted(&sorted, 0.25), quantile_sorted(&sorted, 0.75));
    let (low, high) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
    values.iter().copied().filter(|v| *v < low || *v > high).collect()
}

/// Two-sided permutation test of the difference of medians: the share of
/// random relabellings of the pooled samples whose |difference| is at least
/// the observed one (with the observed labelling counted, so p > 0).
/// Deterministic for a given `seed`.
pub fn permutation_p_value(a: &[f64], b: &[f64], permutations: usize, seed: u64) -> Option<f64> {
    let observed = (median(a)? - median(b)?).abs();
    let mut pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut rng = SplitMix(seed);
    let mut at_least = 1usize;
    for _ in 0..permutations {
        // Fisher-Yates shuffle, then split at |a|.
        for i in (1..pooled.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            pooled.swap(i, j);
        }
        let (x, y) = pooled.split_at(a.len());
        if (median(x)? - median(y)?).abs() >= observed - 1e-12 {
            at_least += 1;
        }
    }
    Some(at_least as f64 / (permutations + 1) as f64)
}

fn nonzero(v: f64) -> Option<f64> {
    (v != 0.0).then_some(v)
}

fn resample(from: &[f64], into: &mut [f64], rng: &mut SplitMix) {
    for slot in into.iter_mut() {
        *slot = from[(rng.next() % from.len() as u64) as usize];
    }
}

/// SplitMix64: small, fast, good enough for resampling, and seedable so
/// reports are reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}

/// The `q` quantile (0 ≤ q ≤ 1) of sorted values, interpolating linearly
/// between closest ranks (Hyndman & Fan type 7, as R and numpy default to).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of nothing");
    let q = q.clamp(0.0, 1.0);
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.mean, s.median), (5, 1.0, 5.0, 3.0, 3.0));
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        // Tail percentiles are nearest-rank (the histogram's definition).
        assert_eq!((s.p90, s.p99, s.p999), (5.0, 5.0, 5.0));
        assert!((s.cov() - 2.5f64.sqrt() / 3.0).abs() < 1e-12);
    }

    #[test]
    fn median_alone_agrees_with_the_summary() {
        for n in 1..40usize {
            let values: Vec<f64> = (0..n).map(|i| ((i * 7919) % 31) as f64 * 0.5).collect();
            let (alone, summary) = (median(&values).unwrap(), Summary::of(&values).unwrap().median);
            assert!(
                (alone - summary).abs() <= 1e-12 * summary.abs().max(1.0),
                "n = {n}: {alone} vs {summary}"
            );
        }
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn even_count_median_interpolates() {
        let s = Summary::of(&[10.0, 20.0]).unwrap();
        assert_eq!(s.median, 15.0);
        assert_eq!(s.p90, 20.0);
    }

    #[test]
    fn tail_percentiles_of_a_known_distribution() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let s = Summary::of(&values).unwrap();
        for (got, want) in [(s.p90, 900.0), (s.p99, 990.0), (s.p999, 999.0)] {
            // 3 significant digits: within 0.1%, plus at most one rank.
            assert!((got - want).abs() <= want * 1e-3 + 1.0, "{got} vs {want}");
        }
    }

    #[test]
    fn sub_millisecond_values_keep_their_precision() {
        // 13.000 µs .. 13.999 µs as milliseconds, like the agent's init_ms.
        let values: Vec<f64> = (0..1000).map(|i| 0.013 + i as f64 * 1e-6).collect();
        let s = Summary::of(&values).unwrap();
        assert!(s.p999 > 0.0139 && s.p999 <= 0.013999, "{}", s.p999);
        assert!((s.p90 - 0.013899).abs() / 0.013899 <= 1e-3, "{}", s.p90);
        assert!(s.p90 < s.p99 && s.p99 <= s.p999);
    }

    #[test]
    fn ratio_of_identical_samples_is_one_with_a_tight_interval() {
        let a = [10.0, 11.0, 9.0, 10.5, 9.5];
        let r = ratio_of_medians(&a, &a, 2000, 7).unwrap();
        assert_eq!(r.value, 1.0);
        assert!(r.low <= 1.0 && r.high >= 1.0 && r.high / r.low < 1.5, "{r:?}");
    }

    #[test]
    fn ratio_interval_brackets_a_clear_difference_and_is_reproducible() {
        let slow = [20.0, 21.0, 19.0, 20.5, 19.5, 20.2];
        let fast = [10.0, 10.4, 9.8, 10.1, 9.9, 10.2];
        let r = ratio_of_medians(&slow, &fast, 2000, 42).unwrap();
        assert!((r.value - 20.1 / 10.05).abs() < 1e-9, "{r:?}");
        assert!(r.low > 1.8 && r.high < 2.2 && r.low <= r.value && r.value <= r.high, "{r:?}");
        assert_eq!(ratio_of_medians(&slow, &fast, 2000, 42), Some(r));
        assert_eq!(ratio_of_medians(&[], &fast, 10, 1), None);
        assert_eq!(ratio_of_medians(&slow, &[0.0], 10, 1), None);
    }

    #[test]
    fn permutation_test_separates_shifted_samples_from_equal_ones() {
        let a = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3, 10.1];
        let b: Vec<f64> = a.iter().map(|v| v * 1.3).collect();
        let p = permutation_p_value(&a, &b, 2000, 3).unwrap();
        assert!(p < 0.01, "{p}");
        let p_same = permutation_p_value(&a, &a, 2000, 3).unwrap();
        assert!(p_same > 0.5, "{p_same}");
        assert_eq!(permutation_p_value(&a, &b, 500, 9), permutation_p_value(&a, &b, 500, 9));
        assert_eq!(permutation_p_value(&[], &b, 10, 1), None);
    }

    #[test]
    fn median_interval_contains_the_median_and_narrows_with_agreement() {
        let tight = [10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0];
        let (lo, hi) = median_ci(&tight, 2000, 5).unwrap();
        assert!(lo <= 10.0 && hi >= 10.0 && hi - lo <= 0.2, "{lo} {hi}");
        let loose = [5.0, 15.0, 8.0, 12.0, 10.0, 3.0, 17.0];
        let (lo2, hi2) = median_ci(&loose, 2000, 5).unwrap();
        assert!(hi2 - lo2 > hi - lo);
        assert_eq!(median_ci(&tight, 100, 1), median_ci(&tight, 100, 1));
    }

    #[test]
    fn tukey_flags_only_the_far_values() {
        let v = [10.0, 10.2, 9.8, 10.1, 9.9, 10.0, 30.0, 1.0];
        assert_eq!(tukey_outliers(&v), vec![30.0, 1.0]);
        assert!(tukey_outliers(&[1.0, 2.0, 3.0, 4.0, 5.0]).is_empty());
        assert!(tukey_outliers(&[1.0, 100.0]).is_empty(), "too few to judge");
    }

    #[test]
    fn empty_and_nan_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
        assert_eq!(Summary::of(&[7.0]).unwrap().stddev, 0.0);
    }
}
