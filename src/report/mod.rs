//! From a run's files to what people read. Starts from `run.json` and the
//! samples only, so it works on any run directory without a VM or daemon.

pub mod findings;
pub mod formats;
pub mod headline;
pub mod latex;
pub mod summary;
pub mod table;
pub mod template;

use crate::metric::{self, Direction};
use crate::rundir::{RunRecord, Sample, TargetKind, WorkloadKind};
use crate::stats::{paired_ratio, ratio_of_medians, spearman_trend, Ratio, Summary, Trend};
use std::collections::BTreeMap;

/// One target × workload × metric over the measured (non-warmup, ok) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub target: String,
    pub workload: WorkloadKind,
    pub metric: String,
    pub summary: Summary,
    /// The values summarised, in run order.
    pub values: Vec<f64>,
    /// Cost against the native target for the same workload and metric,
    /// oriented so that above 1 means "costs more"; `None` for the native
    /// target itself, or when there is no native value to compare with.
    pub vs_native: Option<Ratio>,
    /// The values against run order (`seq`); `None` below
    /// [`crate::stats::TREND_MIN_N`] values or when they are all equal.
    pub trend: Option<Trend>,
}

/// One measured value and where it sits in the run: its repetition (the
/// round it shares with the other targets) and its place in run order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub rep: u32,
    pub seq: usize,
    pub value: f64,
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

/// Every summarised metric's measured values, in run order, keyed by
/// (target index, workload, metric).
fn values_by_key(record: &RunRecord, samples: &[Sample]) -> BTreeMap<Key, Vec<Observation>> {
    let mut values: BTreeMap<Key, Vec<Observation>> = BTreeMap::new();
    let mut measured: Vec<&Sample> = samples.iter().filter(|s| s.ok && !s.warmup).collect();
    measured.sort_by_key(|s| s.seq);
    for s in measured {
        let Some(t) = record.targets.iter().position(|t| t.name == s.target) else {
            continue;
        };
        for (metric, value) in s.metrics.iter().filter(|(m, _)| metric::summarised(s.workload, m)) {
            values.entry((t, s.workload, metric.clone())).or_default().push(Observation {
                rep: s.rep,
                seq: s.seq,
                value: *value,
            });
        }
    }
    values
}

fn plain(observations: &[Observation]) -> Vec<f64> {
    observations.iter().map(|o| o.value).collect()
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
            let values_in_order = plain(v);
            Some(MetricRow {
                target: record.targets[*t].name.clone(),
                workload: *workload,
                metric: metric.clone(),
                summary: Summary::of(&values_in_order)?,
                vs_native: baseline.and_then(|b| cost_ratio(metric, v, b)),
                trend: trend(v),
                values: values_in_order,
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
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
/// interval ([`cost_ratio`]): the "A against B" numbers beyond "against
/// native" (libvirt against plain QEMU, gVisor against runc, ...).
pub fn pair_ratios(record: &RunRecord, samples: &[Sample]) -> Vec<PairRatio> {
    let values = values_by_key(record, samples);
    let mut out = Vec::new();
    for workload in &record.scenario.workloads {
        let metric = metric::headline(*workload);
        let measured: Vec<(usize, &Vec<Observation>)> = (0..record.targets.len())
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
/// rate over this rate. Paired by round ([`paired_ratio`]) when both sides
/// have values for exactly the same repetitions: targets run interleaved,
/// so a round's two trials saw the same host, and the per-round ratio
/// cancels what the host did then. Otherwise (a failed trial, `auto`
/// stopping one side early, a value of 0) the ratio of the two medians.
pub fn cost_ratio(metric: &str, values: &[Observation], baseline: &[Observation]) -> Option<Ratio> {
    let (numerator, denominator) = match metric::info(metric)?.direction {
        Direction::LowerIsBetter => (values, baseline),
        Direction::HigherIsBetter => (baseline, values),
    };
    rounds(numerator, denominator)
        .and_then(|(a, b)| paired_ratio(&a, &b, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED))
        .or_else(|| ratio_of_medians(&plain(numerator), &plain(denominator), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED))
}

/// Both sides' values in rounds, aligned by repetition, when they have
/// values for exactly the same repetitions (each once).
fn rounds(a: &[Observation], b: &[Observation]) -> Option<(Vec<f64>, Vec<f64>)> {
    let by_rep = |side: &[Observation]| {
        let mut map = BTreeMap::new();
        side.iter().all(|o| map.insert(o.rep, o.value).is_none()).then_some(map)
    };
    let (a, b) = (by_rep(a)?, by_rep(b)?);
    (!a.is_empty() && a.keys().eq(b.keys())).then(|| (a.into_values().collect(), b.into_values().collect()))
}

/// Drift warnings are raised below this p-value: strict, because a run has
/// many rows and each is tested (at 0.01, about one row in a hundred warns
/// by chance alone).
pub const DRIFT_ALPHA: f64 = 0.01;

/// A metric that moved with run order: its Spearman correlation with `seq`
/// has p < [`DRIFT_ALPHA`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Drift {
    pub target: String,
    pub workload: WorkloadKind,
    pub metric: String,
    pub n: usize,
    pub rho: f64,
    pub p_value: f64,
}

impl Drift {
    /// The warning line the terminal table prints (the reports say the same).
    pub fn warning(&self) -> String {
        format!(
            "warning: {} {} {} trends with run order (Spearman ρ = {:.2}, {}): the host drifted during the run",
            self.target,
            self.workload,
            self.metric,
            self.rho,
            p_text(self.p_value)
        )
    }
}

/// `p = 0.003`, or `p < 0.001` where three decimals would print a
/// misleading 0 (a permutation p-value is never 0).
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// The rows whose values trend with run order.
pub fn drifts(rows: &[MetricRow]) -> Vec<Drift> {
    rows.iter()
        .filter_map(|r| {
            let t = r.trend.filter(|t| t.p_value < DRIFT_ALPHA)?;
            Some(Drift {
                target: r.target.clone(),
                workload: r.workload,
                metric: r.metric.clone(),
                n: t.n,
                rho: t.rho,
                p_value: t.p_value,
            })
        })
        .collect()
}

/// Spearman's ρ of the values against their place in run order.
fn trend(observations: &[Observation]) -> Option<Trend> {
    let order: Vec<f64> = observations.iter().map(|o| o.seq as f64).collect();
    spearman_trend(&order, &plain(observations), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
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
        assert!(vm.ratio.paired && native.ratio.paired, "every round has both targets");
        let matrices = ratio_matrices(&ratios, &run.record.scenario.workloads);
        assert_eq!(matrices.len(), 1);
        let m = &matrices[0];
        assert_eq!(m.targets, ["vm", "native"]);
        assert_eq!(m.rows[0].1[0], None, "no ratio of a target with itself");
        assert_eq!(m.rows[0].1[1], Some(vm.ratio));
    }

    fn observations(values: &[f64]) -> Vec<Observation> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Observation {
                rep: i as u32,
                seq: i,
                value,
            })
            .collect()
    }

    #[test]
    fn rates_and_times_are_both_oriented_as_costs() {
        let slow = observations(&[2.0, 2.0, 2.0]);
        let fast = observations(&[1.0, 1.0, 1.0]);
        // Twice the time costs 2×; half the rate also costs 2×.
        assert_eq!(cost_ratio("ready_ms", &slow, &fast).unwrap().value, 2.0);
        assert_eq!(cost_ratio("copy_gb_per_s", &fast, &slow).unwrap().value, 2.0);
        assert_eq!(cost_ratio("no_unit", &fast, &slow), None);
    }

    #[test]
    fn ratios_pair_rounds_only_when_both_sides_have_the_same_repetitions() {
        // Round ratios 2, 3, 2.5: paired median 2.5; medians 25 / 10 = 2.5 too,
        // but only the paired one says so.
        let a = observations(&[20.0, 30.0, 25.0]);
        let b = observations(&[10.0, 10.0, 10.0]);
        let paired = cost_ratio("ready_ms", &a, &b).unwrap();
        assert!(paired.paired && (paired.value - 2.5).abs() < 1e-12, "{paired:?}");
        // A failed trial on one side (rep 1 missing): ratio of medians.
        let gap = [b[0], b[2]];
        let unpaired = cost_ratio("ready_ms", &a, &gap).unwrap();
        assert!(!unpaired.paired && unpaired.value == 2.5, "{unpaired:?}");
        // A zero cannot be a ratio's denominator: the unpaired fallback.
        let zero = observations(&[10.0, 0.0, 10.0]);
        assert!(!cost_ratio("ready_ms", &a, &zero).unwrap().paired);
    }

    #[test]
    fn a_drifting_metric_is_listed_with_its_warning() {
        let mut run = crate::compare::tests::run(1.0, 12);
        for s in run.samples.iter_mut().filter(|s| s.target == "native") {
            // Native slows down steadily over the run.
            *s.metrics.get_mut("ready_ms").unwrap() = 1.0 + s.seq as f64 * 0.1;
        }
        let rows = metric_rows(&run.record, &run.samples);
        let found = drifts(&rows);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].target.as_str(), found[0].n, found[0].rho), ("native", 12, 1.0));
        assert!(found[0].p_value < DRIFT_ALPHA);
        assert_eq!((p_text(0.0005), p_text(0.0123)), ("p < 0.001".to_string(), "p = 0.012".to_string()));
        assert_eq!(
            found[0].warning(),
            "warning: native boot ready_ms trends with run order (Spearman ρ = 1.00, p < 0.001): the host drifted during the run"
        );
        let vm = rows.iter().find(|r| r.target == "vm").unwrap();
        assert!(vm.trend.unwrap().p_value > DRIFT_ALPHA, "the jitter is not a trend: {:?}", vm.trend);
    }
}
