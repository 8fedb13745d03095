//! vmbench's own load generators for the application workloads: HTTP/1.1
//! against nginx (`http.rs`) and the MySQL protocol against MariaDB
//! (`sql.rs`). Each runs on OS threads of its own, never on the thread that
//! reads a console or samples a footprint.

pub mod http;
pub mod reference;
pub mod sql;

use crate::stats::percentile;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds of one load phase (requests or
/// transactions), from an HDR histogram of nanoseconds at 3 significant
/// digits; all zero when `count` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    /// The requests or transactions the percentiles are of.
    pub count: u64,
}

impl Latency {
    /// The percentiles of `hist` (ns) by vmbench's one definition, nearest
    /// rank ([`percentile::rank`]), each the top of the bucket holding that
    /// rank (at most 0.1% above the sample itself) but never above `max_ns`,
    /// the exact maximum; `mean_ns` as the caller measured it.
    pub fn of(hist: &Histogram<u64>, max_ns: u64, mean_ns: f64) -> Latency {
        if hist.is_empty() {
            return Latency::default();
        }
        let at = |q: f64| nearest_rank_ns(hist, q).min(max_ns) as f64 / 1e3;
        Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: max_ns as f64 / 1e3,
            mean: mean_ns / 1e3,
            count: hist.len(),
        }
    }
}

/// The nearest-rank `q` percentile of a non-empty histogram: the top of the
/// bucket that holds the sample of rank [`percentile::rank`].
pub fn nearest_rank_ns(hist: &Histogram<u64>, q: f64) -> u64 {
    let rank = percentile::rank(hist.len(), q);
    let mut below = 0;
    for bucket in hist.iter_recorded() {
        below += bucket.count_at_value();
        if below >= rank {
            return bucket.value_iterated_to();
        }
    }
    hist.max()
}
