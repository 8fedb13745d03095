//! The short table a run ends with: per target the four numbers that answer
//! "what does it cost?" (ready time, exit time, artifact size, host memory),
//! each under its ratio to native with the 95% interval, and how the target
//! ran. The long table of every metric is [`super::table::summary`].

use super::table::{how, number};
use super::{drifts, failures, metric_rows, MetricRow};
use crate::rundir::{RunRecord, Sample, TargetFacts, TargetKind, WorkloadKind};

/// A headline quantity measured in trials: its column title, the metric and
/// how it is shown (divided by the scale).
struct Measured {
    title: &'static str,
    metric: &'static str,
    scale: f64,
}

const READY: Measured = Measured {
    title: "ready ms",
    metric: "ready_ms",
    scale: 1.0,
};
const EXIT: Measured = Measured {
    title: "exit ms",
    metric: "exit_ms",
    scale: 1.0,
};
const MEMORY: Measured = Measured {
    title: "host memory MiB",
    metric: "mem_ready_bytes",
    scale: 1024.0 * 1024.0,
};
/// Without the boot workload: the most the target held while it worked
/// (an application workload's server starts after the ready line).
const PEAK_MEMORY: Measured = Measured {
    title: "peak memory MiB",
    metric: "mem_peak_bytes",
    scale: 1024.0 * 1024.0,
};

/// The measured columns of the headline for `record`'s workloads: ready
/// and exit times and memory at the ready line, as ever, unless the
/// scenario runs only application workloads (their server starts after the
/// ready line: then the peak memory); then each application workload's
/// rate and median latency.
fn columns(record: &RunRecord) -> (Vec<Measured>, Measured) {
    let mut out = Vec::new();
    let workloads = &record.scenario.workloads;
    let app = |w: &WorkloadKind| matches!(w, WorkloadKind::Http | WorkloadKind::Sql);
    let only_apps = !workloads.is_empty() && workloads.iter().all(app);
    if !only_apps {
        out.extend([READY, EXIT]);
    }
    let memory = if only_apps { PEAK_MEMORY } else { MEMORY };
    let mut apps = Vec::new();
    for w in &record.scenario.workloads {
        match w {
            WorkloadKind::Http => apps.extend([
                Measured {
                    title: "http req/s",
                    metric: "http_rps",
                    scale: 1.0,
                },
                Measured {
                    title: "http p50 µs",
                    metric: "http_p50_us",
                    scale: 1.0,
                },
            ]),
            WorkloadKind::Sql => apps.extend([
                Measured {
                    title: "sql txn/s",
                    metric: "sql_point_tps",
                    scale: 1.0,
                },
                Measured {
                    title: "sql p50 µs",
                    metric: "sql_point_p50_us",
                    scale: 1.0,
                },
            ]),
            _ => {}
        }
    }
    out.extend(apps);
    (out, memory)
}

/// The row of `metric` for `target`: from the boot workload when it has one,
/// else from the first workload (in the scenario's order) that does.
fn pick<'a>(rows: &'a [MetricRow], record: &RunRecord, target: &str, metric: &str) -> Option<&'a MetricRow> {
    let order = |w: WorkloadKind| {
        if w == WorkloadKind::Boot {
            0
        } else {
            1 + record.scenario.workloads.iter().position(|&s| s == w).unwrap_or(usize::MAX - 1)
        }
    };
    rows.iter()
        .filter(|r| r.target == target && r.metric == metric)
        .min_by_key(|r| order(r.workload))
}

/// `1776× [1557, 2225]`: a ratio to native with three significant digits, so
/// the column stays narrow; `*` when not paired by round.
fn short_ratio(r: &crate::stats::Ratio) -> String {
    let mark = if r.paired { "" } else { "*" };
    format!("{}× [{}, {}]{mark}", sig3(r.value), sig3(r.low), sig3(r.high))
}

/// Three significant digits, without an exponent.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        number(v)
    }
}

/// One cell pair (value line, ratio line) of a measured quantity; also
/// names the workload it came from when that is not boot.
fn measured(rows: &[MetricRow], record: &RunRecord, target: &str, m: &Measured) -> ([String; 2], Option<WorkloadKind>) {
    let Some(row) = pick(rows, record, target, m.metric) else {
        return (["–".into(), String::new()], None);
    };
    let value = number(row.summary.median / m.scale);
    let ratio = row.vs_native.as_ref().map(short_ratio).unwrap_or_default();
    let from = (row.workload != WorkloadKind::Boot).then_some(row.workload);
    ([value, ratio], from)
}

/// The artifact's size, and its ratio to native's (one value each, so no
/// interval).
fn artifact(t: &TargetFacts, native: Option<&TargetFacts>) -> [String; 2] {
    let mib = t.artifact_bytes as f64 / (1024.0 * 1024.0);
    if t.unavailable.is_some() || t.artifact_bytes == 0 {
        return ["–".into(), String::new()];
    }
    let ratio = native
        .filter(|n| n.name != t.name && n.artifact_bytes > 0)
        .map(|n| format!("{}×", sig3(t.artifact_bytes as f64 / n.artifact_bytes as f64)))
        .unwrap_or_default();
    [format!("{mib:.1}"), ratio]
}

/// The headline: a two-line row per target (numbers, then ratios to native
/// and accel/runtime), failures and drift warnings, and where the rest is.
pub fn headline(record: &RunRecord, samples: &[Sample]) -> String {
    let rows = metric_rows(record, samples);
    let native = record.targets.iter().find(|t| t.kind == TargetKind::Native);
    let (measures, memory) = columns(record);
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut borrowed = Vec::new();
    for t in &record.targets {
        let mut values = vec![t.name.clone()];
        let mut ratios = vec![format!(" {}", how(Some(t)))];
        // Times before the artifact, memory and the applications after it.
        let split = measures
            .iter()
            .take_while(|m| m.metric == READY.metric || m.metric == EXIT.metric)
            .count();
        for m in &measures[..split] {
            let ([v, r], _) = measured(&rows, record, &t.name, m);
            values.push(v);
            ratios.push(r);
        }
        let [size, size_r] = artifact(t, native);
        values.push(size);
        ratios.push(size_r);
        let ([mem, mem_r], from) = measured(&rows, record, &t.name, &memory);
        if let Some(w) = from.filter(|_| memory.metric == MEMORY.metric) {
            borrowed.push(format!("{} from its {w} workload", t.name));
        }
        values.push(mem);
        ratios.push(mem_r);
        for m in &measures[split..] {
            let ([v, r], _) = measured(&rows, record, &t.name, m);
            values.push(v);
            ratios.push(r);
        }
        lines.push(values);
        lines.push(ratios);
    }
    let split = measures
        .iter()
        .take_while(|m| m.metric == READY.metric || m.metric == EXIT.metric)
        .count();
    let mut header = vec!["target"];
    header.extend(measures[..split].iter().map(|m| m.title));
    header.extend(["artifact MiB", memory.title]);
    header.extend(measures[split..].iter().map(|m| m.title));
    let mut out = layout(&header, &lines);
    if native.is_some() && record.targets.len() > 1 {
        out.push_str("second line: accel / runtime, and × native [95% CI] (> 1 costs more; * = ratio of medians)\n");
    }
    if !borrowed.is_empty() {
        out.push_str(&format!("host memory at the ready line; {}\n", borrowed.join(", ")));
    }
    if memory.metric == PEAK_MEMORY.metric {
        out.push_str("peak memory: the most the target held on the host while it worked (its server included)\n");
    }
    for (target, failed) in failures(samples) {
        out.push_str(&format!("{target}: {failed} failed trial(s); see samples.jsonl for the errors\n"));
    }
    for drift in drifts(&rows) {
        out.push_str(&drift.warning());
        out.push('\n');
    }
    if record.targets.iter().any(|t| t.accel.as_deref() == Some("tcg")) {
        out.push_str("TCG: QEMU emulated the guest CPU (no KVM); VM numbers measure emulation.\n");
    }
    out.push_str("every metric: report.md / report.html in the run directory, or run with --all-metrics\n");
    out
}

/// Left-aligned columns two spaces apart (a value and the ratio under it
/// start in the same place), a rule under the header.
fn layout(header: &[&str], lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let join = |cells: Vec<String>| -> String {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = join(header.iter().map(|h| h.to_string()).collect());
    out.push_str(&join(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for line in lines {
        out.push_str(&join(line.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spectrum-like run: a TCG VM, a container and native, with boot
    /// times, memory and artifact sizes of real magnitudes.
    fn run() -> crate::rundir::Run {
        let mut run = crate::compare::tests::run(1.0, 10);
        run.record.targets[0].name = "qemu-microvm-long".into();
        run.record.targets[0].machine = Some("microvm".into());
        run.record.targets[0].artifact_bytes = 15 << 20;
        run.record.targets[1].artifact_bytes = 3 << 19;
        let mut container = run.record.targets[1].clone();
        container.name = "docker-runsc".into();
        container.kind = TargetKind::Container;
        container.engine = Some(crate::rundir::Engine::Docker);
        container.runtime = Some("runsc".into());
        container.artifact_bytes = 3 << 19;
        run.record.targets.insert(1, container);
        let mut extra = Vec::new();
        for s in run.samples.iter_mut() {
            let scale: f64 = if s.target == "vm" { 1800.0 } else { 1.0 };
            s.metrics.insert("exit_ms".into(), s.metrics["ready_ms"] * 1.01);
            s.metrics.insert("mem_ready_bytes".into(), scale.min(150.0) * 1.4 * 1048576.0);
            if s.target == "vm" {
                s.target = "qemu-microvm-long".into();
                let mut c = s.clone();
                c.target = "docker-runsc".into();
                c.seq += 1000;
                for v in c.metrics.values_mut() {
                    *v /= 18.0;
                }
                extra.push(c);
            }
        }
        run.samples.extend(extra);
        run
    }

    #[test]
    fn the_headline_answers_per_target_with_ratios_and_fits_100_columns() {
        let run = run();
        let text = headline(&run.record, &run.samples);
        println!("{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "wider than 100 columns:\n{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("target") && lines[0].contains("ready ms") && lines[0].contains("host memory MiB"));
        let vm = lines.iter().position(|l| l.starts_with("qemu-microvm-long")).unwrap();
        assert!(
            lines[vm].contains("1800") || lines[vm].contains("1799") || lines[vm].contains("1801"),
            "{text}"
        );
        assert!(lines[vm].contains("15.0"), "artifact MiB: {text}");
        let ratios = lines[vm + 1];
        assert!(ratios.starts_with(" TCG (emulated) microvm"), "{text}");
        assert!(ratios.contains("× ["), "ratio with its interval: {text}");
        assert!(ratios.contains("10.0×"), "artifact 15 MiB vs 1.5 MiB: {text}");
        let container = lines.iter().position(|l| l.starts_with("docker-runsc")).unwrap();
        assert!(lines[container + 1].starts_with(" docker runsc"), "{text}");
        assert!(text.contains("--all-metrics"), "says where the full tables are: {text}");
        assert!(text.contains("TCG:"));
        // Shorter than the long table by far.
        let long = super::super::table::summary(&run.record, &run.samples);
        assert!(text.lines().count() < long.lines().count(), "{text}\n{long}");
    }

    #[test]
    fn an_application_run_heads_with_its_rate_latency_and_peak_memory() {
        let mut run = crate::compare::tests::run(1.0, 6);
        run.record.scenario.workloads = vec![WorkloadKind::Http];
        for s in run.samples.iter_mut() {
            s.workload = WorkloadKind::Http;
            let slow = if s.target == "vm" { 10.0 } else { 1.0 };
            s.metrics = [
                ("http_rps".to_string(), 40000.0 / slow),
                ("http_p50_us".to_string(), 50.0 * slow),
                ("mem_peak_bytes".to_string(), 8.0 * slow * 1048576.0),
            ]
            .into_iter()
            .collect();
        }
        let text = headline(&run.record, &run.samples);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines[0].contains("ready ms"), "no boot workload, no boot columns: {text}");
        for title in ["http req/s", "http p50 µs", "peak memory MiB"] {
            assert!(lines[0].contains(title), "{title}: {text}");
        }
        let vm = lines.iter().position(|l| l.starts_with("vm")).unwrap();
        assert!(
            lines[vm].contains("4000") && lines[vm].contains("500") && lines[vm].contains("80.0"),
            "{text}"
        );
        // Rate, latency and memory all cost ten times native's: an inverted
        // rate would read 0.1×.
        assert_eq!(
            lines[vm + 1].matches("10.0× [").count(),
            3,
            "ten times native on every column: {text}"
        );
        assert!(text.contains("peak memory: the most the target held"), "{text}");
    }

    #[test]
    fn a_run_without_boot_or_applications_keeps_ready_exit_and_memory_at_ready() {
        let mut run = crate::compare::tests::run(1.0, 6);
        run.record.scenario.workloads = vec![WorkloadKind::Cpu];
        let text = headline(&run.record, &run.samples);
        let header = text.lines().next().unwrap();
        assert!(header.contains("ready ms") && header.contains("host memory MiB"), "{text}");
        assert!(!header.contains("peak memory"), "{text}");
    }

    #[test]
    fn three_significant_digits_keep_columns_narrow() {
        assert_eq!(sig3(1776.4), "1776");
        assert_eq!(sig3(94.79), "94.8");
        assert_eq!(sig3(1.043), "1.04");
        assert_eq!(sig3(0.9871), "0.987");
    }
}
