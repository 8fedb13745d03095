//! What the application workloads' numbers show, in sentences computed
//! from the run (never canned text): the cost of each network path against
//! the container's own address and against native loopback, the way the
//! IBM paper states its findings ("Docker's NAT adds latency").

use super::MetricRow;
use crate::rundir::{RunRecord, TargetKind, WorkloadKind};

/// The two metrics a finding speaks of for `workload`: throughput (more is
/// better) and median latency, with the throughput's unit in words.
fn metrics_of(workload: WorkloadKind) -> Option<(&'static str, &'static str, &'static str)> {
    match workload {
        WorkloadKind::Http => Some(("http_rps", "http_p50_us", "requests/s")),
        WorkloadKind::Sql => Some(("sql_point_tps", "sql_point_p50_us", "point selects/s")),
        _ => None,
    }
}

/// A target's path as the report names it.
fn path_of(record: &RunRecord, target: &str) -> Option<String> {
    let facts = record.targets.iter().find(|t| t.name == target)?;
    Some(match facts.kind {
        TargetKind::Native => "native loopback".to_string(),
        TargetKind::Vm if is_tap(facts) => "a tap device on vmbench's bridge".to_string(),
        TargetKind::Vm => "QEMU's user network".to_string(),
        TargetKind::Container => match facts.settings.get("network_workload").map(String::as_str) {
            Some("published") => "a published port through docker-proxy".to_string(),
            Some("published-nat") => "a published port through the kernel's NAT".to_string(),
            Some("bridge") => "the container's own address".to_string(),
            Some("host") => "the host's network".to_string(),
            other => other.unwrap_or("its network").to_string(),
        },
    })
}

fn median(rows: &[MetricRow], target: &str, workload: WorkloadKind, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.target == target && r.workload == workload && r.metric == metric)
        .map(|r| r.summary.median)
        .filter(|m| m.is_finite())
}

/// Whether a VM target ran on a tap network.
fn is_tap(facts: &crate::rundir::TargetFacts) -> bool {
    facts.settings.get("network_workload").is_some_and(|p| p.starts_with("tap"))
}

/// The container target whose path is `path`, if any.
fn container_on(record: &RunRecord, path: &str) -> Option<String> {
    record
        .targets
        .iter()
        .find(|t| t.kind == TargetKind::Container && t.settings.get("network_workload").map(String::as_str) == Some(path))
        .map(|t| t.name.clone())
}

/// One sentence comparing `target` with `base` on `workload`.
fn against(rows: &[MetricRow], record: &RunRecord, workload: WorkloadKind, target: &str, base: &str) -> Option<String> {
    let (rate, p50, unit) = metrics_of(workload)?;
    let (r, r0) = (median(rows, target, workload, rate)?, median(rows, base, workload, rate)?);
    let (l, l0) = (median(rows, target, workload, p50)?, median(rows, base, workload, p50)?);
    if r0 <= 0.0 {
        return None;
    }
    let change = (r / r0 - 1.0) * 100.0;
    let verb = if change < 0.0 { "costs" } else { "gains" };
    let latency = if l >= l0 { "adds" } else { "saves" };
    Some(format!(
        "`{target}` ({}): {latency} {:.1} µs at p50 ({:.1} against {:.1} µs) and {verb} {:.1}% of {unit} ({:.0} against {:.0}) \
         compared with `{base}` ({}).",
        path_of(record, target)?,
        (l - l0).abs(),
        l,
        l0,
        change.abs(),
        r,
        r0,
        path_of(record, base)?,
    ))
}

/// The findings of every application workload in the run, medians of the
/// measured samples; empty when no application workload ran.
pub fn findings(record: &RunRecord, rows: &[MetricRow]) -> Vec<String> {
    let mut out = Vec::new();
    let workloads: Vec<WorkloadKind> = record
        .scenario
        .workloads
        .iter()
        .copied()
        .filter(|k| metrics_of(*k).is_some())
        .collect();
    let native = record.targets.iter().find(|t| t.kind == TargetKind::Native).map(|t| t.name.clone());
    let bridge = container_on(record, "bridge");
    for workload in workloads {
        // The proxy and the NAT against the container's own address: the
        // port mapping's cost.
        if let Some(bridge) = &bridge {
            for path in ["published", "published-nat"] {
                if let Some(t) = container_on(record, path) {
                    out.extend(against(rows, record, workload, &t, bridge));
                }
            }
        }
        // A VM's tap against a VM's user network: what slirp costs.
        let vm = |tap: bool| {
            record
                .targets
                .iter()
                .find(|t| t.kind == TargetKind::Vm && is_tap(t) == tap)
                .map(|t| t.name.clone())
        };
        if let (Some(tap), Some(user)) = (vm(true), vm(false)) {
            out.extend(against(rows, record, workload, &tap, &user));
        }
        // Every other target against native loopback.
        if let Some(native) = &native {
            for t in record.targets.iter().filter(|t| t.kind != TargetKind::Native) {
                out.extend(against(rows, record, workload, &t.name, native));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::{Sample, TargetFacts};

    /// An http run: native, a bridge and a published container, a VM; each
    /// with three samples of requests/s and p50.
    fn http_run() -> (RunRecord, Vec<Sample>) {
        let mut run = crate::compare::tests::run(1.0, 1);
        let target = |name: &str, kind: TargetKind, path: Option<&str>| TargetFacts {
            name: name.into(),
            kind,
            settings: path
                .map(|p| [("network_workload".to_string(), p.to_string())].into_iter().collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        run.record.scenario.workloads = vec![WorkloadKind::Http];
        run.record.targets = vec![
            target("native", TargetKind::Native, None),
            target("bridge", TargetKind::Container, Some("bridge")),
            target("proxy", TargetKind::Container, Some("published")),
            target("vm", TargetKind::Vm, Some("virtio-net on QEMU's user network")),
            target("tap", TargetKind::Vm, Some("tap: virtio-net on a tap device")),
        ];
        let template = run.samples[0].clone();
        let mut samples = Vec::new();
        for rep in 0..3u32 {
            for (name, rps, p50) in [
                ("native", 40000.0, 50.0),
                ("bridge", 30000.0, 60.0),
                ("proxy", 15000.0, 150.0),
                ("vm", 4000.0, 900.0),
                ("tap", 5000.0, 800.0),
            ] {
                let mut s = template.clone();
                s.target = name.into();
                s.workload = WorkloadKind::Http;
                s.rep = rep;
                s.seq = samples.len();
                s.metrics = [("http_rps".to_string(), rps), ("http_p50_us".to_string(), p50)]
                    .into_iter()
                    .collect();
                samples.push(s);
            }
        }
        (run.record, samples)
    }

    #[test]
    fn the_proxy_is_measured_against_the_containers_own_address_and_everything_against_native() {
        let (record, samples) = http_run();
        let rows = super::super::metric_rows(&record, &samples);
        let f = findings(&record, &rows);
        assert_eq!(f.len(), 6, "{f:#?}");
        assert!(
            f[0].starts_with("`proxy` (a published port through docker-proxy): adds 90.0 µs at p50"),
            "{}",
            f[0]
        );
        assert!(f[0].contains("costs 50.0% of requests/s (15000 against 30000)"), "{}", f[0]);
        assert!(f[0].ends_with("compared with `bridge` (the container's own address)."), "{}", f[0]);
        let vm = f.iter().find(|s| s.starts_with("`vm`")).unwrap();
        assert!(
            vm.contains("QEMU's user network") && vm.contains("costs 90.0%") && vm.contains("native loopback"),
            "{vm}"
        );
        let tap = f
            .iter()
            .find(|s| s.starts_with("`tap` (a tap") && s.contains("compared with `vm`"))
            .unwrap();
        assert!(tap.contains("saves 100.0 µs") && tap.contains("gains 25.0% of requests/s"), "{tap}");
        assert!(tap.ends_with("compared with `vm` (QEMU's user network)."), "{tap}");
    }

    #[test]
    fn no_application_workload_no_findings() {
        let run = crate::compare::tests::run(1.0, 3);
        let rows = super::super::metric_rows(&run.record, &run.samples);
        assert!(findings(&run.record, &rows).is_empty());
    }
}
