//! From a run's files to what people read. Starts from `run.json` and the
//! samples only, so it works on any run directory without a VM or daemon.

pub mod formats;
pub mod summary;
pub mod table;
pub mod template;

use crate::metric::{self, Direction};
use crate::rundir::{RunRecord, Sample, TargetKind, WorkloadKind};
use crate::stats::{ratio_of_medians, Ratio, Summary};
use std::collections::BTreeMap;

/// One target × workload × metric over the measured (non-warmup, ok) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub target: String,
    pub workload: WorkloadKind,
    pub metric: String,
    pub summary: Summary,
    /// Cost against the native target for the same workload and metric,
    /// oriented so that above 1 means "costs more"; `None` for the native
    /// target itself, or when there is no native value to compare with.
    pub vs_native: Option<Ratio>,
}

/// Bootstrap resamples for confidence intervals, and their fixed seed, so the
/// same samples always give the same report.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
pub const BOOTSTRAP_SEED: u64 = 0x0076_6d62_656e_6368;

/// Failed measured trials per target.
pub fn failures(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.warmup && s.failed()) {
        *out.entry(s.target.clone()).or_insert(0) += 1;
    }
    out
}

/// A chart written for a run, as the reports refer to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChartFile {
    pub title: String,
    /// Paths relative to the run directory.
    pub svg: String,
    pub png: String,
}

type Key = (usize, WorkloadKind, String);

/// Values of every summarised metric, keyed by (target index, workload, metric).
fn values_by_key(record: &RunRecord, samples: &[Sample]) -> BTreeMap<Key, Vec<f64>> {
    let mut values: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.ok && !s.warmup) {
        let Some(t) = record.targets.iter().position(|t| t.name == s.target) else {
            continue;
        };
        for (metric, value) in s.metrics.iter().filter(|(m, _)| metric::summarised(s.workload, m)) {
            values.entry((t, s.workload, metric.clone())).or_default().push(*value);
        }
    }
    values
}

/// Rows in target order (as in `run.json`), workload order, then metric
/// order: `ready_ms`, `exit_ms`, then the rest by name.
pub fn metric_rows(record: &RunRecord, samples: &[Sample]) -> Vec<MetricRow> {
    let values = values_by_key(record, samples);
    let native = record.targets.iter().position(|t| t.kind == TargetKind::Native);
    let mut rows: Vec<MetricRow> = values
        .iter()
        .filter_map(|((t, workload, metric), v)| {
            let baseline = native.filter(|n| n != t).and_then(|n| values.get(&(n, *workload, metric.clone())));
            Some(MetricRow {
                target: record.targets[*t].name.clone(),
                workload: *workload,
                metric: metric.clone(),
                summary: Summary::of(v)?,
                vs_native: baseline.and_then(|b| cost_ratio(metric, v, b)),
            })
        })
        .collect();
    let index = |name: &str| record.targets.iter().position(|t| t.name == name);
    let workload_order = |w: WorkloadKind| record.scenario.workloads.iter().position(|&x| x == w);
    rows.sort_by_key(|r| {
        (
            index(&r.target),
            workload_order(r.workload),
            metric_rank(&r.metric),
            r.metric.clone(),
        )
    });
    rows
}

/// The cost of one target against another on a workload's headline metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairRatio {
    pub workload: WorkloadKind,
    pub metric: String,
    /// The target whose cost is expressed …
    pub target: String,
    /// … relative to this one (1 = the same, > 1 = `target` costs more).
    pub relative_to: String,
    pub ratio: Ratio,
}

/// Every ordered pair of targets that both measured a workload's headline
/// metric ([`metric::headline`]), as a cost ratio with its 95% bootstrap
/// interval: the "A against B" numbers beyond "against native" (libvirt
/// against plain QEMU, gVisor against runc, ...).
pub fn pair_ratios(record: &RunRecord, samples: &[Sample]) -> Vec<PairRatio> {
    let values = values_by_key(record, samples);
    let mut out = Vec::new();
    for workload in &record.scenario.workloads {
        let metric = metric::headline(*workload);
        let measured: Vec<(usize, &Vec<f64>)> = (0..record.targets.len())
            .filter_map(|t| values.get(&(t, *workload, metric.to_string())).map(|v| (t, v)))
            .collect();
        for &(a, va) in &measured {
            for &(b, vb) in measured.iter().filter(|(b, _)| *b != a) {
                if let Some(ratio) = cost_ratio(metric, va, vb) {
                    out.push(PairRatio {
                        workload: *workload,
                        metric: metric.to_string(),
                        target: record.targets[a].name.clone(),
                        relative_to: record.targets[b].name.clone(),
                        ratio,
                    });
                }
            }
        }
    }
    out
}

/// [`PairRatio`]s of one workload laid out as a table: row = the target
/// whose cost is shown, column = the target it is relative to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RatioMatrix {
    pub workload: WorkloadKind,
    pub metric: String,
    pub targets: Vec<String>,
    /// `rows[i][j]`: targets[i] against targets[j]; `None` on the diagonal
    /// and where either side has no value.
    pub rows: Vec<(String, Vec<Option<Ratio>>)>,
}

/// One matrix per workload that has at least two targets to compare.
pub fn ratio_matrices(ratios: &[PairRatio], workloads: &[WorkloadKind]) -> Vec<RatioMatrix> {
    workloads
        .iter()
        .filter_map(|w| {
            let mine: Vec<&PairRatio> = ratios.iter().filter(|r| r.workload == *w).collect();
            let mut targets: Vec<String> = Vec::new();
            for r in &mine {
                if !targets.contains(&r.target) {
                    targets.push(r.target.clone());
                }
            }
            let metric = mine.first()?.metric.clone();
            let rows = targets
                .iter()
                .map(|a| {
                    let cells = targets
                        .iter()
                        .map(|b| mine.iter().find(|r| &r.target == a && &r.relative_to == b).map(|r| r.ratio))
                        .collect();
                    (a.clone(), cells)
                })
                .collect();
            Some(RatioMatrix {
                workload: *w,
                metric,
                targets,
                rows,
            })
        })
        .collect()
}

/// `values` against `baseline` as a cost: time over time, or the baseline's
/// rate over this rate.
pub fn cost_ratio(metric: &str, values: &[f64], baseline: &[f64]) -> Option<Ratio> {
    match metric::info(metric)?.direction {
        Direction::LowerIsBetter => ratio_of_medians(values, baseline, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        Direction::HigherIsBetter => ratio_of_medians(baseline, values, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
    }
}

fn metric_rank(metric: &str) -> u8 {
    match metric {
        "ready_ms" => 0,
        "exit_ms" => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_ratios_cover_every_ordered_pair_and_invert() {
        let run = crate::compare::tests::run(1.0, 6);
        let ratios = pair_ratios(&run.record, &run.samples);
        assert_eq!(ratios.len(), 2, "vm vs native and native vs vm");
        let vm = ratios.iter().find(|r| r.target == "vm").unwrap();
        let native = ratios.iter().find(|r| r.target == "native").unwrap();
        assert_eq!((vm.metric.as_str(), vm.relative_to.as_str()), ("ready_ms", "native"));
        assert!((vm.ratio.value * native.ratio.value - 1.0).abs() < 1e-9);
        assert!(vm.ratio.low <= vm.ratio.value && vm.ratio.value <= vm.ratio.high);
        let matrices = ratio_matrices(&ratios, &run.record.scenario.workloads);
        assert_eq!(matrices.len(), 1);
        let m = &matrices[0];
        assert_eq!(m.targets, ["vm", "native"]);
        assert_eq!(m.rows[0].1[0], None, "no ratio of a target with itself");
        assert_eq!(m.rows[0].1[1], Some(vm.ratio));
    }

    #[test]
    fn rates_and_times_are_both_oriented_as_costs() {
        let slow = [2.0, 2.0, 2.0];
        let fast = [1.0, 1.0, 1.0];
        // Twice the time costs 2×; half the rate also costs 2×.
        assert_eq!(cost_ratio("ready_ms", &slow, &fast).unwrap().value, 2.0);
        assert_eq!(cost_ratio("copy_gb_per_s", &fast, &slow).unwrap().value, 2.0);
        assert_eq!(cost_ratio("no_unit", &fast, &slow), None);
    }
}
