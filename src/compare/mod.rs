//! Comparing two runs: per target, workload and metric, the change of the
//! median with a bootstrap interval, a permutation test on the raw samples
//! (its p-values Holm-adjusted over all rows, since a comparison tests many
//! metrics at once), and a verdict against a noise threshold. Works on run
//! directories alone.

pub mod baseline;
pub mod export;
pub mod format;
pub mod thresholds;

use crate::metric::{self, Direction};
use crate::rundir::{Run, RunRecord};
use crate::stats::{holm, permutation_p_value, ratio_of_medians, Summary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How sure and how large a change must be to count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Changes of the median smaller than this, in percent, are noise.
    pub threshold_pct: f64,
    /// Significance level of the permutation test, for the Holm-adjusted
    /// p-values: the chance of any false "significant" in the comparison.
    pub alpha: f64,
    /// Resamples for the interval and permutations for the test.
    pub resamples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threshold_pct: 5.0,
            alpha: 0.05,
            resamples: 2000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Improved,
    Regressed,
    NoChange,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::NoChange => "no change",
        }
    }
}

/// One target × workload × metric present in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub target: String,
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub base_median: f64,
    pub new_median: f64,
    pub base_n: usize,
    pub new_n: usize,
    /// (new − base) / base of the medians, in percent.
    pub change_pct: f64,
    /// 95% bootstrap interval of `change_pct`.
    pub change_low_pct: f64,
    pub change_high_pct: f64,
    /// Two-sided permutation test of the difference of medians, this row alone.
    pub p_value: f64,
    /// `p_value` adjusted by Holm–Bonferroni over every row of the
    /// comparison; what the verdict compares with alpha.
    pub p_adjusted: f64,
    pub verdict: Verdict,
}

/// The whole comparison, as printed and as `--format json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub options: Options,
    pub rows: Vec<Row>,
    /// `target workload metric` present in one run only.
    pub only_in_base: Vec<String>,
    pub only_in_new: Vec<String>,
    /// Differences between the runs' environments that make the numbers
    /// incomparable (accel, CPU model, kernel, scenario text).
    pub environment_changes: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regressed).count()
    }
}

type Key = (String, String, String);

fn values(run: &Run) -> BTreeMap<Key, Vec<f64>> {
    let mut out: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for s in run.samples.iter().filter(|s| s.ok && !s.warmup) {
        for (m, v) in s
            .metrics
            .iter()
            .filter(|(m, _)| metric::summarised(s.workload, m) && metric::info(m).is_some())
        {
            out.entry((s.target.clone(), s.workload.to_string(), m.clone()))
                .or_default()
                .push(*v);
        }
    }
    out
}

/// Compares `new` against `base`.
pub fn compare(base: &Run, new: &Run, base_name: &str, new_name: &str, opts: Options) -> Comparison {
    let (b, n) = (values(base), values(new));
    let label = |k: &Key| format!("{} {} {}", k.0, k.1, k.2);
    let mut rows = Vec::new();
    for (key, base_values) in &b {
        let Some(new_values) = n.get(key) else { continue };
        if let Some(row) = compare_one(key, base_values, new_values, opts) {
            rows.push(row);
        }
    }
    judge(&mut rows, opts);
    Comparison {
        base: base_name.to_string(),
        new: new_name.to_string(),
        options: opts,
        rows,
        only_in_base: b.keys().filter(|k| !n.contains_key(*k)).map(label).collect(),
        only_in_new: n.keys().filter(|k| !b.contains_key(*k)).map(label).collect(),
        environment_changes: environment_changes(&base.record, &new.record),
    }
}

/// One row with its raw p-value; the verdict waits for [`judge`].
fn compare_one(key: &Key, base: &[f64], new: &[f64], opts: Options) -> Option<Row> {
    metric::info(&key.2)?;
    let (bs, ns) = (Summary::of(base)?, Summary::of(new)?);
    let ratio = ratio_of_medians(new, base, opts.resamples, crate::report::BOOTSTRAP_SEED)?;
    let p_value = permutation_p_value(base, new, opts.resamples, crate::report::BOOTSTRAP_SEED)?;
    let pct = |r: f64| (r - 1.0) * 100.0;
    let change = pct(ratio.value);
    Some(Row {
        target: key.0.clone(),
        workload: key.1.clone(),
        metric: key.2.clone(),
        unit: metric::unit(&key.2).to_string(),
        base_median: bs.median,
        new_median: ns.median,
        base_n: bs.n,
        new_n: ns.n,
        change_pct: change,
        change_low_pct: pct(ratio.low),
        change_high_pct: pct(ratio.high),
        p_value,
        p_adjusted: p_value,
        verdict: Verdict::NoChange,
    })
}

/// Adjusts every row's p-value for the others (Holm–Bonferroni: a
/// comparison of dozens of metrics at α = 0.05 would otherwise call a few
/// of them "changed" by chance alone) and gives each its verdict: changed
/// when the adjusted p is under alpha and the change is at least the
/// threshold, a regression when the change is for the worse.
fn judge(rows: &mut [Row], opts: Options) {
    let adjusted = holm(&rows.iter().map(|r| r.p_value).collect::<Vec<_>>());
    for (row, p_adjusted) in rows.iter_mut().zip(adjusted) {
        row.p_adjusted = p_adjusted;
        let significant = p_adjusted < opts.alpha && row.change_pct.abs() >= opts.threshold_pct;
        let worse = match metric::info(&row.metric).map(|i| i.direction) {
            Some(Direction::HigherIsBetter) => row.change_pct < 0.0,
            _ => row.change_pct > 0.0,
        };
        row.verdict = match (significant, worse) {
            (false, _) => Verdict::NoChange,
            (true, true) => Verdict::Regressed,
            (true, false) => Verdict::Improved,
        };
    }
}

/// What differs between two runs' environments in ways that change results.
pub fn environment_changes(base: &RunRecord, new: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what}: {a} → {b}"));
        }
    };
    differ("CPU model", &base.host.cpu_model, &new.host.cpu_model);
    differ("host kernel", &base.host.kernel, &new.host.kernel);
    differ(
        "scenario",
        &base.scenario.sha256[..12.min(base.scenario.sha256.len())],
        &new.scenario.sha256[..12.min(new.scenario.sha256.len())],
    );
    for t in &base.targets {
        if let Some(n) = new.targets.iter().find(|n| n.name == t.name) {
            differ(
                &format!("{} accel", t.name),
                t.accel.as_deref().unwrap_or("-"),
                n.accel.as_deref().unwrap_or("-"),
            );
            differ(
                &format!("{} runtime", t.name),
                t.runtime.as_deref().unwrap_or("-"),
                n.runtime.as_deref().unwrap_or("-"),
            );
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
