//! Statistics run once per target × workload × metric when a report is
//! rendered (a spectrum run has a few hundred such rows), and the bootstraps
//! and permutation tests inside them resample 2000 times: these keep
//! `vmbench report` fast.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use vmbench::report::{BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED};
use vmbench::stats::{median_interval, paired_ratio, ratio_of_medians, spearman_trend, Summary, CONFIDENCE};

/// `n` plausible boot times in ms with a little deterministic spread.
fn samples(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1800.0 + ((i * 7919) % 113) as f64 * 1.7).collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stats");
    for n in [10usize, 50, 1000] {
        let values = samples(n);
        group.bench_with_input(BenchmarkId::new("summary (nearest-rank percentiles)", n), &values, |b, v| {
            b.iter(|| Summary::of(black_box(v)))
        });
        group.bench_with_input(BenchmarkId::new("median_interval (order statistics)", n), &values, |b, v| {
            b.iter(|| median_interval(black_box(v), CONFIDENCE))
        });
        let order: Vec<f64> = (0..n).map(|i| i as f64).collect();
        group.bench_with_input(BenchmarkId::new("spearman_trend (2000 permutations)", n), &values, |b, v| {
            b.iter(|| spearman_trend(black_box(&order), black_box(v), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED))
        });
        let native: Vec<f64> = values.iter().map(|v| v / 1800.0).collect();
        group.bench_with_input(BenchmarkId::new("ratio_of_medians (2000 resamples)", n), &values, |b, v| {
            b.iter(|| ratio_of_medians(black_box(v), black_box(&native), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED))
        });
        group.bench_with_input(BenchmarkId::new("paired_ratio (2000 resamples)", n), &values, |b, v| {
            b.iter(|| paired_ratio(black_box(v), black_box(&native), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
