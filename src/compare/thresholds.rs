//! Threshold files, in the spirit of Kata Containers' checkmetrics: per
//! metric, which statistic to check and the bounds it must stay within.
//!
//! ```toml
//! [[metric]]
//! target = "qemu-microvm"   # optional: every target when left out
//! workload = "boot"         # optional
//! name = "ready_ms"
//! statistic = "median"      # median | p90 | p99 | mean | min | max | cov
//! max = 4000.0              # and/or min = ...
//!
//! [[metric]]
//! name = "exit_ms"
//! expected = 120.0          # or: an expected value with allowed percentages
//! minpercent = 50.0
//! maxpercent = 25.0
//! ```

use crate::metric;
use crate::rundir::Sample;
use crate::stats::Summary;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    metric: Vec<Threshold>,
}

/// One bound from a thresholds file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub target: Option<String>,
    pub workload: Option<String>,
    pub name: String,
    #[serde(default)]
    pub statistic: Statistic,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub expected: Option<f64>,
    pub minpercent: Option<f64>,
    pub maxpercent: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    #[default]
    Median,
    P90,
    P99,
    Mean,
    Min,
    Max,
    Cov,
}

impl Statistic {
    fn of(self, s: &Summary) -> f64 {
        match self {
            Statistic::Median => s.median,
            Statistic::P90 => s.p90,
            Statistic::P99 => s.p99,
            Statistic::Mean => s.mean,
            Statistic::Min => s.min,
            Statistic::Max => s.max,
            Statistic::Cov => s.cov(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::P90 => "p90",
            Statistic::P99 => "p99",
            Statistic::Mean => "mean",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::Cov => "cov",
        }
    }
}

impl Threshold {
    /// The allowed range, from min/max or from expected ± percentages.
    pub fn bounds(&self) -> (Option<f64>, Option<f64>) {
        match self.expected {
            Some(e) => (
                self.minpercent.map(|p| e * (1.0 - p / 100.0)),
                self.maxpercent.map(|p| e * (1.0 + p / 100.0)),
            ),
            None => (self.min, self.max),
        }
    }
}

/// Reads and checks a thresholds file; errors name the file and line.
pub fn load(path: &Path) -> Result<Vec<Threshold>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading thresholds {}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| crate::scenario::line_column(&text, s.start).0).unwrap_or(0);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
    })?;
    for (i, t) in file.metric.iter().enumerate() {
        let at = format!("{}: metric[{i}] ({})", path.display(), t.name);
        if metric::info(&t.name).is_none() {
            bail!(
                "{at}: unknown metric `{}` (metric names end in their unit, e.g. ready_ms, copy_gb_per_s)",
                t.name
            );
        }
        let has_range = t.min.is_some() || t.max.is_some();
        let has_expected = t.expected.is_some();
        if has_range == has_expected {
            bail!("{at}: give either min/max or expected with minpercent/maxpercent");
        }
        if has_expected && t.minpercent.is_none() && t.maxpercent.is_none() {
            bail!("{at}: expected needs minpercent and/or maxpercent");
        }
    }
    Ok(file.metric)
}

/// The outcome of one threshold for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    pub target: String,
    pub workload: String,
    pub metric: String,
    pub statistic: String,
    /// `None` when the run has no such samples.
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub pass: bool,
}

/// Checks every threshold against the measured samples of a run. A
/// threshold that matches nothing in the run fails: a silently skipped
/// check is worse than a failing one.
pub fn check(thresholds: &[Threshold], targets: &[String], samples: &[Sample]) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    for t in thresholds {
        let mut matched = false;
        for target in targets.iter().filter(|n| t.target.as_ref().is_none_or(|x| x == *n)) {
            let mut workloads: Vec<&str> = samples
                .iter()
                .filter(|s| &s.target == target)
                .map(|s| s.workload.as_str())
                .collect();
            workloads.dedup();
            for workload in workloads.into_iter().filter(|w| t.workload.as_deref().is_none_or(|x| x == *w)) {
                let values: Vec<f64> = samples
                    .iter()
                    .filter(|s| s.ok && !s.warmup && &s.target == target && s.workload.as_str() == workload)
                    .filter_map(|s| s.metrics.get(&t.name).copied())
                    .collect();
                let Some(summary) = Summary::of(&values) else { continue };
                matched = true;
                rows.push(row(t, target, workload, Some(t.statistic.of(&summary))));
            }
        }
        if !matched {
            let target = t.target.clone().unwrap_or_else(|| "*".into());
            rows.push(row(t, &target, t.workload.as_deref().unwrap_or("*"), None));
        }
    }
    rows
}

fn row(t: &Threshold, target: &str, workload: &str, value: Option<f64>) -> CheckRow {
    let (min, max) = t.bounds();
    let pass = value.is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m));
    CheckRow {
        target: target.to_string(),
        workload: workload.to_string(),
        metric: t.name.clone(),
        statistic: t.statistic.as_str().to_string(),
        value,
        min,
        max,
        pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn bounds_pass_and_fail() {
        let run = crate::compare::tests::run(1.0, 10);
        let targets = vec!["vm".to_string(), "native".to_string()];
        let f = write("[[metric]]\ntarget = \"vm\"\nname = \"ready_ms\"\nmax = 2000.0\n\n[[metric]]\nname = \"ready_ms\"\nstatistic = \"p99\"\nexpected = 1.0\nminpercent = 10.0\nmaxpercent = 10.0\n");
        let thresholds = load(f.path()).unwrap();
        let rows = check(&thresholds, &targets, &run.samples);
        // vm under 2000 passes; the second threshold applies to both targets:
        // native's p99 is near 1.0 (pass), the VM's is 1800 (fail).
        let passes: Vec<(&str, bool)> = rows.iter().map(|r| (r.target.as_str(), r.pass)).collect();
        assert_eq!(passes, vec![("vm", true), ("vm", false), ("native", true)]);
        assert_eq!(rows[2].min, Some(0.9));
    }

    #[test]
    fn a_threshold_that_matches_nothing_fails() {
        let run = crate::compare::tests::run(1.0, 3);
        let f = write("[[metric]]\ntarget = \"ghost\"\nname = \"ready_ms\"\nmax = 1.0\n");
        let rows = check(&load(f.path()).unwrap(), &["vm".to_string()], &run.samples);
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].pass && rows[0].value.is_none());
    }

    #[test]
    fn bad_files_are_rejected_with_a_line() {
        let unknown_key = write("[[metric]]\nname = \"ready_ms\"\nmax = 1.0\ncolour = 1\n");
        assert!(load(unknown_key.path()).unwrap_err().to_string().contains(":4:"));
        let unknown_metric = write("[[metric]]\nname = \"ready\"\nmax = 1.0\n");
        assert!(load(unknown_metric.path())
            .unwrap_err()
            .to_string()
            .contains("unknown metric `ready`"));
        let both = write("[[metric]]\nname = \"ready_ms\"\nmax = 1.0\nexpected = 2.0\nmaxpercent = 1.0\n");
        assert!(load(both.path()).unwrap_err().to_string().contains("either"));
    }
}
