//! vmbench's own load generators for the application workloads: HTTP/1.1
//! against nginx (`http.rs`) and the MySQL protocol against MariaDB
//! (`sql.rs`). Each runs on OS threads of its own, never on the thread that
//! reads a console or samples a footprint.

pub mod http;
pub mod reference;
pub mod sql;

use crate::stats::percentile;
use std::sync::atomic::{AtomicU64, Ordering};

/// CPU time (µs, user + system) the load generators' threads have spent in
/// this process, each adding its own when it ends: what the generator cost,
/// apart from everything else vmbench does meanwhile (the footprint
/// sampler's reads of a VM's page tables, the console).
static LOAD_THREADS_CPU_US: AtomicU64 = AtomicU64::new(0);

/// Adds the calling thread's CPU time to [`load_threads_cpu_ms`]; a load
/// thread calls it as its last act.
pub fn account_thread_cpu() {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } == 0 {
        let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
        LOAD_THREADS_CPU_US.fetch_add(us(u.ru_utime) + us(u.ru_stime), Ordering::Relaxed);
    }
}

/// The CPU time (ms) every ended load thread has spent so far; the
/// difference across a phase is that phase's generator cost.
pub fn load_threads_cpu_ms() -> f64 {
    LOAD_THREADS_CPU_US.load(Ordering::Relaxed) as f64 / 1e3
}
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
