//! `summary.json`: the machine-readable summary of a run, computed from
//! `run.json` and `samples.jsonl` alone. The Markdown report is rendered from
//! the same structure, and `history` reads it instead of raw samples.

use super::{failures, metric_rows, Drift, MetricRow};
use crate::metric::{self, Direction};
use crate::rundir::{GitFacts, RunRecord, RunStatus, Sample, WorkloadKind};
use crate::stats::{median_interval, tukey_outliers, Ratio, Trend, CONFIDENCE, TAIL_MIN_N};
use serde::{Deserialize, Serialize};

/// Bumped on any change that an older reader would misread. 2: the median's
/// interval is the exact order-statistic one (with `median_ci_coverage`),
/// p90/p99/p999 are exact nearest ranks and null below `tail_min_n`.
pub const SUMMARY_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Why a metric's `p90`, `p99` or `p999` is null: it has fewer samples
    /// than this, and its nearest-rank percentile would be the maximum.
    #[serde(default)]
    pub tail_min_n: TailMinN,
    /// Metrics whose values trend with run order (Spearman's ρ against
    /// `seq`, p < [`super::DRIFT_ALPHA`]): the host drifted during the run.
    #[serde(default)]
    pub drift: Vec<Drift>,
    /// What the application workloads' medians show, one sentence per
    /// comparison (`report::findings`).
    #[serde(default)]
    pub findings: Vec<String>,
}

/// The fewest samples each tail percentile needs (see `stats::TAIL_MIN_N`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TailMinN {
    pub p90: usize,
    pub p99: usize,
    pub p999: usize,
}

impl TailMinN {
    pub fn new() -> Self {
        let [p90, p99, p999] = TAIL_MIN_N;
        TailMinN { p90, p99, p999 }
    }
}

impl Default for TailMinN {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotApplicable {
    pub target: String,
    pub workload: WorkloadKind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetSummary {
    pub name: String,
    pub kind: crate::rundir::TargetKind,
    /// `kvm`/`tcg` and machine for VMs, engine and runtime for containers.
    pub how: String,
    pub artifact_bytes: u64,
    /// Time to prepare the target before its trials (building or finding
    /// its artifacts), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_ms: Option<f64>,
    /// What `artifact_bytes` counts (`image ...`, `kernel + initramfs`, ...).
    #[serde(default)]
    pub artifact: String,
    pub failed_trials: usize,
    /// The `[[guest]]` system the target ran, with its sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<crate::rundir::GuestFacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The median's exact distribution-free interval: order statistics
    /// chosen from the Binomial(n, ½) distribution to cover the median with
    /// at least 95% probability (`stats::median_interval`).
    pub median_low: f64,
    pub median_high: f64,
    /// The probability that `[median_low, median_high]` holds the median:
    /// at least 0.95 from 6 samples on, less below (0.9375 for 5, [min, max]).
    pub median_ci_coverage: f64,
    /// Nearest-rank percentiles; null with fewer samples than
    /// [`RunSummary::tail_min_n`] (10, 100, 1000), where they would be the
    /// maximum.
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    /// Values outside Tukey's fences; included in every statistic above.
    pub outliers: Vec<f64>,
    /// See `report::cost_ratio`; `paired` says whether it is the median of
    /// per-round ratios or a ratio of medians.
    pub vs_native: Option<Ratio>,
    /// The values against run order: Spearman's ρ with `seq` and its
    /// permutation p-value; null below 6 values or when all are equal.
    #[serde(default)]
    pub trend: Option<Trend>,
}

pub fn build(record: &RunRecord, samples: &[Sample]) -> RunSummary {
    let rows = metric_rows(record, samples);
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
        drift: super::drifts(&rows),
        findings: super::findings::findings(record, &rows),
        metrics: rows.into_iter().map(metric_summary).collect(),
        pair_ratios: super::pair_ratios(record, samples),
        not_applicable: not_applicable(samples),
        tail_min_n: TailMinN::new(),
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
            prepare_ms: t.prepare_ms,
            artifact: super::table::artifact_label(t),
            failed_trials: failed.get(&t.name).copied().unwrap_or(0),
            guest: t.guest.clone(),
        })
        .collect()
}

/// The statistics of one metric row, with the median's exact interval, the
/// tail percentiles its n supports, and the outliers.
fn metric_summary(r: MetricRow) -> MetricSummary {
    let s = &r.summary;
    let interval = median_interval(&r.values, CONFIDENCE);
    let (median_low, median_high, median_ci_coverage) = interval.map_or((s.median, s.median, 0.0), |i| (i.low, i.high, i.coverage));
    let [p90, p99, p999] = s.supported_tails();
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
        median_ci_coverage,
        p90,
        p99,
        p999,
        outliers: tukey_outliers(&r.values),
        vs_native: r.vs_native,
        trend: r.trend,
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
