//! A metric across many runs, for `vmbench history`. Reads each run's
//! `summary.json` when it has one (fast for hundreds of runs) and computes
//! the summary from the raw samples only when it must.

use crate::report::summary::{self, MetricSummary, RunSummary, SUMMARY_SCHEMA_VERSION};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One run's value of the metric for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

/// One run on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPoint {
    pub dir: PathBuf,
    pub started_at: String,
    /// Short commit, else the label, else the run id: what the axis shows.
    pub tag: String,
    /// Per target, in `History::targets` order.
    pub values: Vec<Option<Point>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub metric: String,
    pub unit: String,
    pub targets: Vec<String>,
    /// Oldest first.
    pub runs: Vec<RunPoint>,
}

/// Run directories among `paths`: each path is a run, or a directory of runs.
pub fn run_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.join("run.json").is_file() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).with_context(|| format!("{} is neither a run nor a directory of runs", path.display()))?;
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("run.json").is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    if out.is_empty() {
        bail!(
            "no runs found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

fn load_summary(dir: &Path) -> Result<RunSummary> {
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) {
        if let Ok(s) = serde_json::from_str::<RunSummary>(&text) {
            if s.schema_version == SUMMARY_SCHEMA_VERSION {
                return Ok(s);
            }
        }
    }
    let run = crate::rundir::load(dir)?;
    Ok(summary::build(&run.record, &run.samples))
}

/// `metric` (optionally of one workload) across the runs in `dirs`.
pub fn collect(dirs: &[PathBuf], metric: &str, workload: Option<&str>) -> Result<History> {
    let summaries = load_oldest_first(dirs)?;
    let targets = targets_with(&summaries, metric, workload);
    if targets.is_empty() {
        bail!(
            "no run has metric `{metric}`{}",
            workload.map(|w| format!(" for workload `{w}`")).unwrap_or_default()
        );
    }
    let runs = summaries
        .into_iter()
        .map(|(dir, s)| run_point(dir, s, &targets, metric, workload))
        .collect();
    Ok(History {
        metric: metric.to_string(),
        unit: crate::metric::unit(metric).to_string(),
        targets,
        runs,
    })
}

/// The summary of every run in `dirs`, with its directory, oldest first.
fn load_oldest_first(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, RunSummary)>> {
    let mut summaries = Vec::new();
    for dir in dirs {
        summaries.push((
            dir.clone(),
            load_summary(dir).with_context(|| format!("reading {}", dir.display()))?,
        ));
    }
    summaries.sort_by(|a, b| a.1.started_at.cmp(&b.1.started_at));
    Ok(summaries)
}

/// Whether `m` is `metric`, of `workload` when one is given.
fn is_wanted(m: &MetricSummary, metric: &str, workload: Option<&str>) -> bool {
    m.metric == metric && workload.is_none_or(|w| m.workload.as_str() == w)
}

/// Every target that has `metric` in some run, in order of first appearance.
fn targets_with(summaries: &[(PathBuf, RunSummary)], metric: &str, workload: Option<&str>) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for (_, s) in summaries {
        for m in s.metrics.iter().filter(|m| is_wanted(m, metric, workload)) {
            if !targets.contains(&m.target) {
                targets.push(m.target.clone());
            }
        }
    }
    targets
}

/// One run on the time axis: its tag and its value of `metric` per target.
fn run_point(dir: PathBuf, s: RunSummary, targets: &[String], metric: &str, workload: Option<&str>) -> RunPoint {
    let tag = s
        .git
        .as_ref()
        .map(|g| g.commit.chars().take(8).collect())
        .or(s.label.clone())
        .unwrap_or(s.run_id.clone());
    let values = targets
        .iter()
        .map(|t| {
            s.metrics
                .iter()
                .find(|m| &m.target == t && is_wanted(m, metric, workload))
                .map(|m| Point {
                    median: m.median,
                    low: m.median_low,
                    high: m.median_high,
                    n: m.n,
                })
        })
        .collect();
    RunPoint {
        dir,
        started_at: s.started_at,
        tag,
        values,
    }
}
