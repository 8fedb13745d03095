//! Comparing two runs: per target, workload and metric, the change of the
//! median with a bootstrap interval, a permutation test on the raw samples
//! (its p-values Holm-adjusted over all rows, since a comparison tests many
//! metrics at once), and a verdict against a noise threshold. Works on run
//! directories alone.

pub mod baseline;
pub mod export;
pub mod format;
pub mod html;
pub mod junit;
pub mod thresholds;

use crate::metric::{self, Direction};
use crate::rundir::{Run, RunRecord, TargetFacts};
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
    /// incomparable: vmbench version, host, scenario text and every target
    /// fact that changes results (see [`environment_changes`]).
    pub environment_changes: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regressed).count()
    }
}

pub(crate) type Key = (String, String, String);

pub(crate) fn values(run: &Run) -> BTreeMap<Key, Vec<f64>> {
    let mut out: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for s in run.samples.iter().filter(|s| s.ok && !s.warmup) {
        for (m, v) in s
            .metrics
            .iter()
            .filter(|(m, _)| metric::summarised(s.workload, m) && metric::judged(m))
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

/// What differs between two runs' environments in ways that change results:
/// vmbench's version, the host, the scenario text, and per target (by name)
/// every fact `run.json` records that the numbers depend on.
pub fn environment_changes(base: &RunRecord, new: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what}: {a} → {b}"));
        }
    };
    differ("vmbench version", &base.vmbench_version, &new.vmbench_version);
    differ("CPU model", &base.host.cpu_model, &new.host.cpu_model);
    differ("host kernel", &base.host.kernel, &new.host.kernel);
    differ("scenario", short(&base.scenario.sha256), short(&new.scenario.sha256));
    for t in &base.targets {
        let Some(n) = new.targets.iter().find(|n| n.name == t.name) else {
            continue;
        };
        for ((what, a), (_, b)) in target_facts(t).into_iter().zip(target_facts(n)) {
            differ(&format!("{} {what}", t.name), &a, &b);
        }
        // Settings: security options, limits, how disk and network are
        // attached. libvirt's domain XML names the run's own files, so it
        // always differs; what it is made of is compared above.
        let keys: std::collections::BTreeSet<&String> = t.settings.keys().chain(n.settings.keys()).collect();
        for key in keys.into_iter().filter(|k| k.as_str() != "domain_xml") {
            let value = |f: &TargetFacts| f.settings.get(key).cloned().unwrap_or_else(|| "-".to_string());
            differ(&format!("{} {key}", t.name), &value(t), &value(n));
        }
    }
    out
}

/// The facts of one target that change its numbers, as (name, value) in a
/// fixed order, `-` where the target has none; its settings are compared
/// apart. Paths, cache reuse and `reproduce` are left out: they differ
/// between machines and runs without changing what is measured (a file's
/// content is compared by its sha256).
fn target_facts(t: &TargetFacts) -> Vec<(&'static str, String)> {
    let text = |v: Option<&str>| v.unwrap_or("-").to_string();
    let number = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    vec![
        ("backend", t.backend.clone()),
        ("accel", text(t.accel.as_deref())),
        ("machine", text(t.machine.as_deref())),
        ("CPU model", text(t.cpu_model.as_deref())),
        ("vCPUs", number(t.vcpus.map(|v| v.to_string()))),
        ("memory MiB", number(t.memory_mib.map(|v| v.to_string()))),
        ("QEMU version", text(t.qemu_version.as_deref())),
        ("guest kernel sha256", text(t.kernel.as_ref().map(|k| short(&k.sha256)))),
        (
            "kernel command line",
            text(t.kernel_cmdline.as_deref().map(without_measured).as_deref()),
        ),
        ("engine", text(t.engine.map(|e| e.as_str()))),
        ("engine version", text(t.engine_version.as_deref())),
        ("runtime", text(t.runtime.as_deref())),
        ("CPU limit", number(t.cpus.map(|v| v.to_string()))),
        ("agent sha256", short(&t.agent_sha256).to_string()),
        (
            "guest base image id",
            text(
                t.guest
                    .as_ref()
                    .and_then(|g| g.base_image.as_ref())
                    .map(|b| short(b.id.trim_start_matches("sha256:"))),
            ),
        ),
        (
            "guest root file system",
            text(t.guest.as_ref().map(|g| g.rootfs_key.as_str()).filter(|k| !k.is_empty())),
        ),
        ("guest disk", text(t.guest.as_ref().and_then(guest_disk).as_deref())),
        ("guest ready", text(t.guest.as_ref().map(|g| g.ready.as_str()))),
        ("available here", if t.unavailable.is_some() { "no" } else { "yes" }.to_string()),
    ]
}

/// A disk of the user's own, as far as can be told without hashing
/// gigabytes: its format, the size the guest sees, and the bytes and count
/// of the files of its chain (not their paths, which differ between hosts).
fn guest_disk(g: &crate::rundir::GuestFacts) -> Option<String> {
    let disk = g.disk_image.as_ref()?;
    Some(format!(
        "{}, {} B virtual, {} B in {} file(s)",
        disk.format,
        disk.virtual_bytes,
        g.disk_bytes.unwrap_or(0),
        disk.backing_chain.len() + 1
    ))
}

/// A kernel command line without `tsc_early_khz=`, which vmbench measures
/// on the host for every run (a few kHz of jitter) rather than chooses.
fn without_measured(cmdline: &str) -> String {
    let words: Vec<&str> = cmdline.split_whitespace().filter(|w| !w.starts_with("tsc_early_khz=")).collect();
    words.join(" ")
}

fn short(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}

#[cfg(test)]
pub(crate) mod tests;
