//! The plain-text tables printed at the end of a run.

use super::{drifts, failures, metric_rows};
use crate::rundir::{RunRecord, Sample, TargetFacts};

/// Left-aligned first column, right-aligned numbers, two spaces between.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}

/// A number with sensible precision for a table.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// How a target ran: accel for VMs (TCG flagged as emulation), runtime for
/// containers.
pub fn how(facts: Option<&TargetFacts>) -> String {
    let Some(f) = facts else { return String::new() };
    if f.unavailable.is_some() {
        return format!("{} {}: unavailable here", f.backend, f.runtime.as_deref().unwrap_or("")).replace(" :", ":");
    }
    match (f.accel.as_deref(), f.runtime.as_deref()) {
        (Some("tcg"), _) => format!("TCG (emulated) {}", f.machine.as_deref().unwrap_or("")),
        (Some(accel), _) => format!("{} {}", accel.to_uppercase(), f.machine.as_deref().unwrap_or("")),
        (None, Some(runtime)) => format!("{} {runtime}", f.engine.map_or("container", |e| e.as_str())),
        _ => f.kind.to_string(),
    }
    .trim()
    .to_string()
}

/// The end-of-run summary: one row per target and metric, failures, drift
/// warnings, and artifact sizes.
pub fn summary(record: &RunRecord, samples: &[Sample]) -> String {
    let facts = |name: &str| record.targets.iter().find(|t| t.name == name);
    let metrics = metric_rows(record, samples);
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .map(|r| {
            let s = &r.summary;
            let (label, scale) = display(&r.metric);
            vec![
                r.target.clone(),
                format!("{} {label}", r.workload),
                s.n.to_string(),
                number(s.median / scale),
                s.supported_tails()[0].map_or(WITHHELD.to_string(), |p90| number(p90 / scale)),
                number(s.min / scale),
                number(s.max / scale),
                r.vs_native.map(|v| ratio(&v)).unwrap_or_default(),
                how(facts(&r.target)),
            ]
        })
        .collect();
    let mut out = render(
        &[
            "target",
            "metric",
            "n",
            "median",
            "p90",
            "min",
            "max",
            "vs native [95% CI]",
            "accel / runtime",
        ],
        &rows,
    );
    for (target, failed) in failures(samples) {
        out.push_str(&format!("{target}: {failed} failed trial(s); see samples.jsonl for the errors\n"));
    }
    for drift in drifts(&metrics) {
        out.push_str(&drift.warning());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&artifacts(record));
    out.push_str(&guests(record));
    out.push_str(&notes(record, &metrics));
    if record.targets.iter().any(|t| t.accel.as_deref() == Some("tcg")) {
        out.push_str("\nTCG: QEMU emulated the guest CPU (no KVM); VM numbers measure emulation, not hardware virtualisation.\n");
    }
    out
}

/// What a withheld statistic shows as: a tail percentile n does not support.
pub const WITHHELD: &str = "–";

/// The notes under the table that explain its marks.
/// What has to be stored to launch each target, as a table.
fn artifacts(record: &RunRecord) -> String {
    let rows: Vec<Vec<String>> = record
        .targets
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                artifact_label(t),
                format!("{:.1}", t.artifact_bytes as f64 / (1024.0 * 1024.0)),
            ]
        })
        .collect();
    render(&["target", "artifact", "MiB"], &rows)
}

/// The guest systems' root file systems: the same tree as files, as a VM
/// disk and as a container image. Empty when no target ran one.
fn guests(record: &RunRecord) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
    let rows: Vec<Vec<String>> = record
        .targets
        .iter()
        .filter_map(|t| {
            let g = t.guest.as_ref()?;
            Some(vec![
                t.name.clone(),
                g.name.clone(),
                g.init.clone(),
                format!("{} {}", g.distro, g.suite),
                mib(g.tree_bytes),
                g.disk_bytes.map_or("–".into(), mib),
                g.disk_allocated_bytes.map_or("–".into(), mib),
                t.image.as_ref().map_or("–".into(), |i| mib(i.size_bytes)),
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    out.push_str(&render(
        &[
            "target",
            "guest",
            "init",
            "system",
            "tree MiB",
            "disk MiB",
            "allocated MiB",
            "image MiB",
        ],
        &rows,
    ));
    out
}

fn notes(record: &RunRecord, rows: &[super::MetricRow]) -> String {
    let mut out = String::new();
    if rows.iter().any(|r| r.summary.n < crate::stats::TAIL_MIN_N[0]) {
        out.push_str("\np90 –: fewer than 10 samples, where the nearest-rank p90 would be the maximum.\n");
    }
    if record.targets.iter().any(|t| t.kind == crate::rundir::TargetKind::Native) && record.targets.len() > 1 {
        out.push_str("\nvs native: median of the per-round ratios against the native target (rounds = repetitions, run interleaved), > 1 = costs more (slower or less throughput).\n");
        if rows.iter().any(|r| r.vs_native.is_some_and(|v| !v.paired)) {
            out.push_str("*: ratio of medians instead: the two targets do not have values for the same repetitions.\n");
        }
    }
    out
}

/// How a metric is shown: byte counts as MiB, everything else as recorded.
pub fn display(metric: &str) -> (String, f64) {
    match metric.strip_suffix("_bytes") {
        Some(stem) => (format!("{stem}_mib"), 1024.0 * 1024.0),
        None => (metric.to_string(), 1.0),
    }
}

/// `2.31× [2.10, 2.55]`, with a `*` when the ratio is not paired by round.
pub fn ratio(r: &crate::stats::Ratio) -> String {
    let mark = if r.paired { "" } else { " *" };
    format!("{}× [{}, {}]{mark}", number(r.value), number(r.low), number(r.high))
}

pub fn artifact_label(t: &TargetFacts) -> String {
    if t.unavailable.is_some() {
        return "none (unavailable here)".to_string();
    }
    if let (Some(guest), None) = (&t.guest, &t.image) {
        return format!("guest `{}`: disk (allocated) + kernel + initrd", guest.name);
    }
    match (&t.image, &t.kernel, &t.initramfs) {
        (Some(image), _, _) => format!("image {}", image.tag),
        (None, Some(_), Some(_)) => "kernel + initramfs".to_string(),
        _ => "agent binary".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let text = render(
            &["target", "metric", "n"],
            &[
                vec!["a".into(), "ready_ms".into(), "10".into()],
                vec!["long-name".into(), "x".into(), "2".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "target     metric     n");
        assert_eq!(lines[2], "a          ready_ms  10");
        assert_eq!(lines[3], "long-name  x          2");
    }

    #[test]
    fn numbers_keep_sub_millisecond_precision() {
        assert_eq!(number(1834.25), "1834");
        assert_eq!(number(183.25), "183.2");
        assert_eq!(number(2.345), "2.35");
        assert_eq!(number(0.0123), "0.012");
    }
}
