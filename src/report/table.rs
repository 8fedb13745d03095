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
    out.push_str(&guests(&record.targets));
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
                t.prepare_ms.map_or("–".into(), |ms| format!("{:.2}", ms / 1e3)),
            ]
        })
        .collect();
    render(&["target", "artifact", "MiB", "prepare s"], &rows)
}

/// The guest systems: a built root file system as files, as a VM disk and
/// as a container image; an image of the user's own with the sizes of the
/// layers that hold files. Empty when no target ran one.
fn guests(targets: &[TargetFacts]) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
    let rows: Vec<Vec<String>> = targets
        .iter()
        .filter_map(|t| {
            let g = t.guest.as_ref()?;
            let own = g.base_image.is_some() || g.disk_image.is_some();
            let tree = if own { "–".into() } else { mib(g.tree_bytes) };
            Some(vec![
                t.name.clone(),
                g.name.clone(),
                g.init.clone(),
                g.ready.clone(),
                g.system(),
                tree,
                g.disk_bytes.map_or("–".into(), mib),
                g.disk_allocated_bytes.map_or("–".into(), mib),
                t.image.as_ref().map_or("–".into(), |i| mib(i.size_bytes)),
                g.base_image.as_ref().map_or("–".into(), layer_sizes),
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
            "ready",
            "system",
            "tree MiB",
            "disk MiB",
            "allocated MiB",
            "image MiB",
            "base image layers MiB",
        ],
        &rows,
    ));
    out
}

/// An image history step as a reader wants it: without the classic
/// builder's `/bin/sh -c #(nop)` prefix, content hashes (`file:<64 hex>`)
/// cut to 12 digits, at most 100 characters.
pub fn layer_step(created_by: &str) -> String {
    let text = created_by.trim().trim_start_matches("/bin/sh -c #(nop)").trim();
    let mut out = String::new();
    let mut rest = text;
    while let Some(colon) = rest.find(':') {
        let (before, after) = rest.split_at(colon + 1);
        out.push_str(before);
        let hex = after.chars().take_while(char::is_ascii_hexdigit).count();
        let is_hash = hex == 64 && ["file:", "dir:", "multi:", "sha256:"].iter().any(|p| before.ends_with(p));
        rest = if is_hash {
            out.push_str(&after[..12]);
            &after[64..]
        } else {
            after
        };
    }
    out.push_str(rest);
    match out.char_indices().nth(100) {
        Some((end, _)) => format!("{}…", &out[..end]),
        None => out,
    }
}

/// The sizes of an image's layers that hold files, oldest first, in MiB:
/// `74.8 + 0.120 + 1.50`.
pub fn layer_sizes(base: &crate::rundir::BaseImageFacts) -> String {
    let sizes: Vec<String> = base
        .file_layers()
        .map(|l| number(l.size_bytes as f64 / (1024.0 * 1024.0)))
        .collect();
    if sizes.is_empty() {
        "none".to_string()
    } else {
        sizes.join(" + ")
    }
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
        return match (&guest.disk_image, &t.kernel) {
            (Some(_), Some(_)) => format!("guest {}: your disk (allocated, its chain) + kernel + initrd", guest.name),
            (Some(_), None) => format!("guest {}: your disk (allocated, its chain)", guest.name),
            (None, _) => format!("guest {}: disk (allocated; holds kernel + initrd)", guest.name),
        };
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
    fn history_steps_lose_the_builders_noise() {
        let hash = "437591b9ef274c582e9eb9c1d809a836d9e3076d974ef5a2d2bd0123456789ab";
        assert_eq!(
            layer_step(&format!("/bin/sh -c #(nop) COPY file:{hash} in /opt/app/data.bin ")),
            "COPY file:437591b9ef27 in /opt/app/data.bin"
        );
        assert_eq!(
            layer_step("RUN /bin/sh -c apt-get update # buildkit"),
            "RUN /bin/sh -c apt-get update # buildkit"
        );
        assert_eq!(layer_step("ENV A=b:c"), "ENV A=b:c");
        assert_eq!(layer_step(&"x".repeat(150)).chars().count(), 101);
    }

    #[test]
    fn an_own_image_guest_shows_its_source_and_its_layers() {
        use crate::rundir::{BaseImageFacts, GuestFacts, GuestSourceKind, ImageFacts};
        let target = TargetFacts {
            name: "app".into(),
            image: Some(ImageFacts {
                tag: "vmbench/own:0123".into(),
                id: "sha256:1".into(),
                size_bytes: 3 << 20,
                reused: true,
            }),
            guest: Some(GuestFacts {
                name: "mine".into(),
                source: GuestSourceKind::Dockerfile,
                init: "agent".into(),
                ready: "agent".into(),
                base_image: Some(BaseImageFacts::example()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = guests(&[target]);
        let row = text.lines().find(|l| l.starts_with("app")).unwrap();
        assert!(row.contains("dockerfile my/Dockerfile"), "{text}");
        let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(cells[5..], ["–", "–", "–", "3.0", "1.50 + 0.001"], "{text}");
    }

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
