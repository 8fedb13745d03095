//! Statistics over raw samples. A leaf module: it imports nothing else of
//! vmbench, so the terminal table, the reports and comparisons all use the
//! same numbers.

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
    pub p90: f64,
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
        Some(Summary {
            n,
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            stddev,
            median: quantile_sorted(&sorted, 0.5),
            p90: quantile_sorted(&sorted, 0.9),
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
        assert!((s.p90 - 4.6).abs() < 1e-12);
        assert!((s.cov() - 2.5f64.sqrt() / 3.0).abs() < 1e-12);
    }

    #[test]
    fn even_count_median_interpolates() {
        let s = Summary::of(&[10.0, 20.0]).unwrap();
        assert_eq!(s.median, 15.0);
        assert_eq!(s.p90, 19.0);
    }

    #[test]
    fn empty_and_nan_have_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
        assert_eq!(Summary::of(&[7.0]).unwrap().stddev, 0.0);
    }
}
