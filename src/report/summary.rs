//! `summary.json`: the machine-readable summary of a run, computed from
//! `run.json` and `samples.jsonl` alone. The Markdown report is rendered from
//! the same structure, and `history` reads it instead of raw samples.

use super::{failures, metric_rows, MetricRow, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED};
use crate::metric::{self, Direction};
use crate::rundir::{GitFacts, RunRecord, RunStatus, Sample, WorkloadKind};
use crate::stats::{median_ci, tukey_outliers, Ratio};
use serde::{Deserialize, Serialize};

/// Bumped on any change that an older reader would misread.
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub schema_version: u32,
    pub run_id: String,
    pub scenario: String,
    pub status: RunStatus,
    /// True unless the run completed: the numbers cover only what ran.
    pub incomplete: bool,
    pub started_at: String,
    pub git: Option<GitFacts>,
    pub label: Option<String>,
    pub host_cpu: String,
    pub host_kernel: String,
    pub targets: Vec<TargetSummary>,
    pub metrics: Vec<MetricSummary>,
    /// Target × workload pairs the target cannot run, with why.
    #[serde(default)]
    pub not_applicable: Vec<NotApplicable>,
    /// Every target against every other on each workload's headline metric.
    #[serde(default)]
    pub pair_ratios: Vec<super::PairRatio>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotApplicable {
    pub target: String,
    pub workload: WorkloadKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub name: String,
    pub kind: crate::rundir::TargetKind,
    /// `kvm`/`tcg` and machine for VMs, engine and runtime for containers.
    pub how: String,
    pub artifact_bytes: u64,
    pub failed_trials: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub target: String,
    pub workload: WorkloadKind,
    pub metric: String,
    pub unit: String,
    pub lower_is_better: bool,
    pub n: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
    pub cov: f64,
    pub median: f64,
    /// 95% bootstrap interval of the median.
    pub median_low: f64,
    pub median_high: f64,
    pub p90: f64,
    pub p99: f64,
    /// p90, p99 and p99.9 come from an HDR histogram (3 significant digits).
    #[serde(default)]
    pub p999: f64,
    /// Values outside Tukey's fences; included in every statistic above.
    pub outliers: Vec<f64>,
    pub vs_native: Option<Ratio>,
}

pub fn build(record: &RunRecord, samples: &[Sample]) -> RunSummary {
    RunSummary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        run_id: record.run_id.clone(),
        scenario: record.scenario.name.clone(),
        status: record.status,
        incomplete: record.status != RunStatus::Complete,
        started_at: record.started_at.clone(),
        git: record.git.clone(),
        label: record.label.clone(),
        host_cpu: record.host.cpu_model.clone(),
        host_kernel: record.host.kernel.clone(),
        targets: target_summaries(record, samples),
        metrics: metric_rows(record, samples)
            .into_iter()
            .map(|r| metric_summary(r, samples))
            .collect(),
        pair_ratios: super::pair_ratios(record, samples),
        not_applicable: not_applicable(samples),
    }
}

/// One line per target of the run: how it ran, its artifact and its failed trials.
fn target_summaries(record: &RunRecord, samples: &[Sample]) -> Vec<TargetSummary> {
    let failed = failures(samples);
    record
        .targets
        .iter()
        .map(|t| TargetSummary {
            name: t.name.clone(),
            kind: t.kind,
            how: super::table::how(Some(t)),
            artifact_bytes: t.artifact_bytes,
            failed_trials: failed.get(&t.name).copied().unwrap_or(0),
        })
        .collect()
}

/// The statistics of one metric row, with the median's bootstrap interval
/// and the outliers computed from the row's measured (non-warmup) samples.
fn metric_summary(r: MetricRow, samples: &[Sample]) -> MetricSummary {
    let values: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok && !s.warmup && s.target == r.target && s.workload == r.workload)
        .filter_map(|s| s.metrics.get(&r.metric).copied())
        .collect();
    let (median_low, median_high) = median_ci(&values, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED).unwrap_or((r.summary.median, r.summary.median));
    let s = &r.summary;
    MetricSummary {
        unit: metric::unit(&r.metric).to_string(),
        lower_is_better: metric::info(&r.metric).map(|i| i.direction) != Some(Direction::HigherIsBetter),
        n: s.n,
        min: s.min,
        max: s.max,
        mean: s.mean,
        stddev: s.stddev,
        cov: s.cov(),
        median: s.median,
        median_low,
        median_high,
        p90: s.p90,
        p99: s.p99,
        p999: s.p999,
        outliers: tukey_outliers(&values),
        vs_native: r.vs_native,
        target: r.target,
        workload: r.workload,
        metric: r.metric,
    }
}

/// The target × workload pairs the samples mark as not applicable, with why.
fn not_applicable(samples: &[Sample]) -> Vec<NotApplicable> {
    samples
        .iter()
        .filter_map(|s| {
            s.not_applicable.as_ref().map(|reason| NotApplicable {
                target: s.target.clone(),
                workload: s.workload,
                reason: reason.clone(),
            })
        })
        .collect()
}
