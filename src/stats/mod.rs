//! Statistics over raw samples. A leaf module: it imports nothing else of
//! vmbench, so the terminal table, the reports and comparisons all use the
//! same numbers. Every percentile is [`percentile::nearest_rank`], the one
//! definition the agent uses too.

mod order;
pub mod percentile;
mod trend;

pub use order::{median_interval, median_ranks, MedianInterval, MedianRanks};
use percentile::nearest_rank;
use serde::{Deserialize, Serialize};
pub use trend::{spearman_trend, Trend, TREND_MIN_N};

/// Confidence level of every interval vmbench reports.
pub const CONFIDENCE: f64 = 0.95;

/// Summary of one metric of one target over its measured repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single value.
    pub stddev: f64,
    /// The middle value, or the mean of the middle two for an even count.
    pub median: f64,
    /// Tail percentiles by nearest rank, whatever n is: with too few samples
    /// they are the maximum (see [`Summary::supported_tails`]).
    pub p90: f64,
    pub p99: f64,
    #[serde(default)]
    pub p999: f64,
}

/// The fewest samples for which p90, p99 and p99.9 are more than the
/// maximum: by nearest rank, rank ⌈q·n⌉ < n needs n ≥ 1/(1 − q).
pub const TAIL_MIN_N: [usize; 3] = [10, 100, 1000];

impl Summary {
    /// Summarises `values`; `None` when there are none. NaN values are a bug
    /// upstream and are rejected rather than sorted somewhere arbitrary.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev = if n > 1 {
            (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let [p90, p99, p999] = [0.9, 0.99, 0.999].map(|q| nearest_rank(&sorted, q));
        Some(Summary {
            n,
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            stddev,
            median: (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0,
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

    /// p90, p99 and p99.9 where n supports them ([`TAIL_MIN_N`]), else
    /// `None`: below that a "p99" would only be the maximum under another name.
    pub fn supported_tails(&self) -> [Option<f64>; 3] {
        let values = [self.p90, self.p99, self.p999];
        std::array::from_fn(|i| (self.n >= TAIL_MIN_N[i]).then_some(values[i]))
    }
}

/// The median alone (the mean of the middle two for an even count, as in
/// [`Summary::of`]): what resampling loops need, without a full sort.
/// `None` when empty or when a value is NaN.
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ratio {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    /// Confidence level of `[low, high]`, e.g. 0.95.
    pub confidence: f64,
    /// True when computed from paired rounds ([`paired_ratio`]), false for
    /// a ratio of two independent medians ([`ratio_of_medians`]).
    #[serde(default)]
    pub paired: bool,
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
    Some(percentile_interval(value, &ratios, false))
}

/// The ratio of paired samples: `numerator[i]` and `denominator[i]` were
/// measured in the same round, so whatever the host did during that round
/// weighs on both and cancels in their ratio. The value is the median of the
/// per-round ratios, taken on their logarithms (for an even count the
/// geometric mean of the middle two) so that A against B is exactly the
/// inverse of B against A. The 95% percentile-bootstrap interval resamples
/// whole rounds. `None` unless both sides have the same, non-zero number of
/// values, all of them positive (a ratio with 0 is meaningless).
pub fn paired_ratio(numerator: &[f64], denominator: &[f64], resamples: usize, seed: u64) -> Option<Ratio> {
    if numerator.len() != denominator.len() || numerator.is_empty() || resamples == 0 {
        return None;
    }
    let logs: Vec<f64> = numerator
        .iter()
        .zip(denominator)
        .map(|(a, b)| (*a > 0.0 && *b > 0.0).then(|| (a / b).ln()))
        .collect::<Option<_>>()?;
    let value = median(&logs)?.exp();
    let mut rng = SplitMix(seed);
    let mut sample = vec![0.0; logs.len()];
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        resample(&logs, &mut sample, &mut rng);
        ratios.push(median(&sample)?.exp());
    }
    ratios.sort_by(f64::total_cmp);
    Some(percentile_interval(value, &ratios, true))
}

/// `value` with the 2.5% and 97.5% points of its sorted bootstrap replicates.
fn percentile_interval(value: f64, sorted_replicates: &[f64], paired: bool) -> Ratio {
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Ratio {
        value,
        low: nearest_rank(sorted_replicates, tail),
        high: nearest_rank(sorted_replicates, 1.0 - tail),
        confidence: CONFIDENCE,
        paired,
    }
}

/// Values outside Tukey's fences (below Q1 − 1.5·IQR or above Q3 + 1.5·IQR).
/// They are reported, never dropped: summaries include them.
pub fn tukey_outliers(values: &[f64]) -> Vec<f64> {
    if values.len() < 4 || values.iter().any(|v| v.is_nan()) {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (nearest_rank(&sorted, 0.25), nearest_rank(&sorted, 0.75));
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

/// Holm–Bonferroni adjusted p-values, in the order given: the i-th smallest
/// p times (m − i + 1), made non-decreasing, at most 1. Rejecting where the
/// adjusted p is under α keeps the chance of any false "significant" among
/// all m tests under α, whatever their dependence; unlike plain Bonferroni
/// it does not pay the full factor m for every test after the first.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![1.0; m];
    let mut running = 0.0f64;
    for (i, &index) in order.iter().enumerate() {
        running = running.max(((m - i) as f64 * p_values[index]).min(1.0));
        adjusted[index] = running;
    }
    adjusted
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!((s.n, s.min, s.max, s.mean, s.median), (5, 1.0, 5.0, 3.0, 3.0));
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        // Nearest rank: with 5 samples every tail percentile is the maximum …
        assert_eq!((s.p90, s.p99, s.p999), (5.0, 5.0, 5.0));
        // … so none of them is supported.
        assert_eq!(s.supported_tails(), [None, None, None]);
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
    fn even_count_median_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[10.0, 20.0]).unwrap();
        assert_eq!(s.median, 15.0);
        assert_eq!(s.p90, 20.0);
    }

    #[test]
    fn tail_percentiles_are_exact_nearest_ranks() {
        let values: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        let s = Summary::of(&values).unwrap();
        assert_eq!((s.p90, s.p99, s.p999), (900.0, 990.0, 999.0));
        assert_eq!(s.supported_tails(), [Some(900.0), Some(990.0), Some(999.0)]);
    }

    #[test]
    fn tail_percentiles_appear_only_from_their_minimum_n() {
        let of = |n: usize| Summary::of(&(1..=n).map(|i| i as f64).collect::<Vec<_>>()).unwrap();
        assert_eq!(of(9).supported_tails(), [None, None, None]);
        assert_eq!(of(10).supported_tails(), [Some(9.0), None, None], "rank 9 of 10");
        assert_eq!(of(99).supported_tails()[1], None);
        assert_eq!(of(100).supported_tails()[1], Some(99.0));
        assert_eq!(of(999).supported_tails()[2], None);
        assert_eq!(of(1000).supported_tails()[2], Some(999.0));
    }

    #[test]
    fn sub_millisecond_values_keep_their_precision() {
        // 13.000 µs .. 13.999 µs as milliseconds, like the agent's init_ms.
        let values: Vec<f64> = (0..1000).map(|i| 0.013 + i as f64 * 1e-6).collect();
        let s = Summary::of(&values).unwrap();
        assert_eq!((s.p90, s.p99, s.p999), (values[899], values[989], values[998]));
    }

    #[test]
    fn ratio_of_identical_samples_is_one_with_a_tight_interval() {
        let a = [10.0, 11.0, 9.0, 10.5, 9.5];
        let r = ratio_of_medians(&a, &a, 2000, 7).unwrap();
        assert_eq!((r.value, r.paired), (1.0, false));
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
    fn paired_ratio_is_the_median_of_per_round_ratios() {
        // Round ratios 2, 3, 1.5, 2.5, 2: median 2.
        let a = [20.0, 30.0, 15.0, 25.0, 40.0];
        let b = [10.0, 10.0, 10.0, 10.0, 20.0];
        let r = paired_ratio(&a, &b, 2000, 3).unwrap();
        assert!((r.value - 2.0).abs() < 1e-12 && r.paired, "{r:?}");
        assert!(
            r.low >= 1.5 - 1e-12 && r.high <= 3.0 + 1e-12 && r.low <= 2.0 && r.high >= 2.0,
            "{r:?}"
        );
        // Even count (2, 3, 1.5, 2.5): the geometric mean of the middle two
        // (2 and 2.5), so that the other way round is exactly the inverse.
        let r = paired_ratio(&a[..4], &b[..4], 100, 3).unwrap();
        let back = paired_ratio(&b[..4], &a[..4], 100, 3).unwrap();
        assert!((r.value - 5f64.sqrt()).abs() < 1e-12 && (r.value * back.value - 1.0).abs() < 1e-12);
        assert_eq!(paired_ratio(&a, &b, 2000, 3), paired_ratio(&a, &b, 2000, 3));
        assert_eq!(paired_ratio(&a, &b[..4], 10, 1), None, "unequal lengths are not pairs");
        assert_eq!(paired_ratio(&[1.0], &[0.0], 10, 1), None);
        assert_eq!(paired_ratio(&[], &[], 10, 1), None);
    }

    #[test]
    fn pairing_removes_drift_shared_by_both_sides() {
        // Both sides drift by the same factor round after round: the paired
        // ratio sees a constant 2, independent medians a wide interval.
        let drift: Vec<f64> = (0..10).map(|i| 1.0 + i as f64 * 0.2).collect();
        let a: Vec<f64> = drift.iter().map(|d| 20.0 * d).collect();
        let b: Vec<f64> = drift.iter().map(|d| 10.0 * d).collect();
        let paired = paired_ratio(&a, &b, 2000, 1).unwrap();
        assert!((paired.low - 2.0).abs() < 1e-12 && (paired.high - 2.0).abs() < 1e-12, "{paired:?}");
        let unpaired = ratio_of_medians(&a, &b, 2000, 1).unwrap();
        assert!(unpaired.high - unpaired.low > 0.5, "{unpaired:?}");
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
    fn holm_adjusts_known_values() {
        // Sorted: 0.005 × 4 = 0.02, 0.01 × 3 = 0.03, 0.03 × 2 = 0.06,
        // 0.04 × 1 = 0.04 → raised to 0.06 to stay monotone.
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (got, want) in adjusted.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0], "capped at 1");
        assert_eq!(holm(&[0.02]), vec![0.02], "one test: unchanged");
        assert!(holm(&[]).is_empty());
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
