//! From a run's files to what people read. Starts from `run.json` and the
//! samples only, so it works on any run directory without a VM or daemon.

pub mod table;

use crate::record::{RunRecord, Sample};
use crate::stats::Summary;
use std::collections::BTreeMap;

/// One target × workload × metric over the measured (non-warmup, ok) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub target: String,
    pub workload: String,
    pub metric: String,
    pub summary: Summary,
}

/// Failed measured trials per target.
pub fn failures(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.warmup && !s.ok) {
        *out.entry(s.target.clone()).or_insert(0) += 1;
    }
    out
}

/// Rows in target order (as in `run.json`), workload order, then metric
/// order: `ready_ms`, `exit_ms`, then the phases by name.
pub fn metric_rows(record: &RunRecord, samples: &[Sample]) -> Vec<MetricRow> {
    let mut values: BTreeMap<(usize, String, String), Vec<f64>> = BTreeMap::new();
    let target_index = |name: &str| record.targets.iter().position(|t| t.name == name).unwrap_or(usize::MAX);
    for s in samples.iter().filter(|s| s.ok && !s.warmup) {
        for (metric, value) in &s.metrics {
            values
                .entry((target_index(&s.target), s.workload.clone(), metric.clone()))
                .or_default()
                .push(*value);
        }
    }
    let mut rows: Vec<MetricRow> = values
        .into_iter()
        .filter_map(|((t, workload, metric), v)| {
            let target = record.targets.get(t).map(|f| f.name.clone())?;
            Some(MetricRow {
                target,
                workload,
                metric,
                summary: Summary::of(&v)?,
            })
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            target_index(&r.target),
            r.workload.clone(),
            metric_rank(&r.metric),
            r.metric.clone(),
        )
    });
    rows
}

fn metric_rank(metric: &str) -> u8 {
    match metric {
        "ready_ms" => 0,
        "exit_ms" => 1,
        _ => 2,
    }
}
