use super::*;
use crate::rundir::{load, HostFacts, RunStatus, Sample, ScenarioFacts, TargetFacts, TargetKind, WorkloadKind, SCHEMA_VERSION};

/// A run of one VM and one native target with `reps` boot samples each;
/// `scale` multiplies the VM's times.
pub(crate) fn run(scale: f64, reps: usize) -> Run {
    let target = |name: &str, kind: TargetKind, accel: Option<&str>| TargetFacts {
        name: name.into(),
        kind,
        accel: accel.map(str::to_string),
        ..Default::default()
    };
    let record = RunRecord {
        schema_version: SCHEMA_VERSION,
        vmbench_version: "test".into(),
        run_id: "r".into(),
        status: RunStatus::Complete,
        started_at: String::new(),
        finished_at: None,
        scenario: ScenarioFacts {
            auto: None,
            name: "s".into(),
            description: String::new(),
            path: "s.toml".into(),
            text: "t".into(),
            sha256: "abcdef0123456789".into(),
            repetitions: reps as u32,
            warmup: 0,
            timeout_s: 1.0,
            workloads: vec![WorkloadKind::Boot],
            only: vec![],
            order_seed: None,
            cpuset: None,
            harness_cpuset: None,
        },
        host: HostFacts {
            cpu_model: "cpu".into(),
            kernel: "6.1".into(),
            ..Default::default()
        },
        targets: vec![
            target("vm", TargetKind::Vm, Some("tcg")),
            target("native", TargetKind::Native, None),
        ],
        samples: 0,
        failed_samples: 0,
        note: None,
        git: None,
        label: None,
    };
    let mut samples = Vec::new();
    for rep in 0..reps {
        // A little deterministic spread, as real samples have.
        let jitter = 1.0 + ((rep * 7 % 5) as f64 - 2.0) * 0.005;
        for (target, base) in [("vm", 1800.0 * scale), ("native", 1.0)] {
            samples.push(Sample {
                target: target.into(),
                workload: WorkloadKind::Boot,
                rep: rep as u32,
                warmup: false,
                seq: samples.len(),
                ok: true,
                error: None,
                metrics: [("ready_ms".to_string(), base * jitter)].into_iter().collect(),
                accel: None,
                runtime: None,
                agent_kernel: None,
                started_at: String::new(),
                clocksource: None,
                agent_facts: None,
                server: None,
                not_applicable: None,
            });
        }
    }
    Run { record, samples }
}

fn row<'a>(c: &'a Comparison, target: &str) -> &'a Row {
    c.rows.iter().find(|r| r.target == target && r.metric == "ready_ms").unwrap()
}

#[test]
fn a_run_compared_with_itself_has_no_change() {
    let r = run(1.0, 10);
    let c = compare(&r, &r, "a", "a", Options::default());
    assert_eq!(c.regressions(), 0);
    assert!(c.rows.iter().all(|r| r.verdict == Verdict::NoChange && r.change_pct == 0.0));
    assert!(c.environment_changes.is_empty() && c.only_in_base.is_empty());
}

#[test]
fn thirty_percent_slower_boot_is_a_regression_of_that_target() {
    let c = compare(&run(1.0, 10), &run(1.3, 10), "base", "new", Options::default());
    let vm = row(&c, "vm");
    assert_eq!(vm.verdict, Verdict::Regressed);
    assert!((vm.change_pct - 30.0).abs() < 0.5, "{vm:?}");
    assert!(vm.change_low_pct > 20.0 && vm.p_value < 0.01, "{vm:?}");
    // Two rows: the smaller p doubles under Holm.
    assert!((vm.p_adjusted - 2.0 * vm.p_value).abs() < 1e-12, "{vm:?}");
    assert_eq!(row(&c, "native").verdict, Verdict::NoChange);
    assert_eq!(c.regressions(), 1);
    assert!(format::text(&c).contains("REGRESSED"));
}

#[test]
fn two_percent_slower_is_within_the_default_threshold() {
    let c = compare(&run(1.0, 10), &run(1.02, 10), "base", "new", Options::default());
    assert_eq!(row(&c, "vm").verdict, Verdict::NoChange);
    // With a 1% threshold the same change counts.
    let strict = Options {
        threshold_pct: 1.0,
        ..Options::default()
    };
    assert_eq!(
        row(&compare(&run(1.0, 10), &run(1.02, 10), "b", "n", strict), "vm").verdict,
        Verdict::Regressed
    );
}

#[test]
fn faster_is_an_improvement_and_throughput_points_the_other_way() {
    let c = compare(&run(1.0, 10), &run(0.7, 10), "b", "n", Options::default());
    assert_eq!(row(&c, "vm").verdict, Verdict::Improved);
    let mut base = run(1.0, 10);
    let mut new = run(1.0, 10);
    for (r, factor) in [(&mut base, 1.0), (&mut new, 0.7)] {
        for s in r.samples.iter_mut() {
            let v = s.metrics.remove("ready_ms").unwrap();
            s.metrics.insert("copy_gb_per_s".into(), v * factor);
        }
    }
    assert_eq!(
        compare(&base, &new, "b", "n", Options::default()).regressions(),
        2,
        "less bandwidth is worse"
    );
}

#[test]
fn one_sided_metrics_and_environment_changes_are_listed() {
    let base = run(1.0, 5);
    let mut new = run(1.0, 5);
    new.samples.retain(|s| s.target == "vm");
    new.record.targets[0].accel = Some("kvm".into());
    new.record.host.kernel = "6.2".into();
    let c = compare(&base, &new, "b", "n", Options::default());
    assert_eq!(c.only_in_base, vec!["native boot ready_ms".to_string()]);
    assert!(
        c.environment_changes.iter().any(|e| e == "vm accel: tcg → kvm"),
        "{:?}",
        c.environment_changes
    );
    assert!(c.environment_changes.iter().any(|e| e.starts_with("host kernel")));
    let md = format::markdown(&c);
    assert!(md.contains("| target | metric |") && md.contains("ENVIRONMENT CHANGED"));
    let json: serde_json::Value = serde_json::from_str(&format::json(&c)).unwrap();
    assert_eq!(json["rows"][0]["verdict"], "no_change");
}

#[test]
fn baseline_names_cannot_escape_the_baseline_directory() {
    for bad in ["", "..", "../x", "a/b", ".hidden", "x y"] {
        assert!(baseline::check_name(bad).is_err(), "{bad:?}");
    }
    baseline::check_name("main-2026.11").unwrap();
}

#[test]
fn runs_of_another_schema_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path()).unwrap_err().to_string().contains("not a vmbench run directory"));
    let mut record = serde_json::to_value(&run(1.0, 1).record).unwrap();
    record["schema_version"] = serde_json::json!(99);
    std::fs::write(dir.path().join("run.json"), record.to_string()).unwrap();
    std::fs::write(dir.path().join("samples.jsonl"), "").unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("schema_version Some(99)") && err.contains("reads 1"), "{err}");
}

fn judged(p_values: &[f64]) -> Vec<Verdict> {
    let mut rows: Vec<Row> = p_values
        .iter()
        .enumerate()
        .map(|(i, &p_value)| Row {
            target: format!("t{i}"),
            workload: "boot".into(),
            metric: "ready_ms".into(),
            unit: "ms".into(),
            base_median: 100.0,
            new_median: 130.0,
            base_n: 10,
            new_n: 10,
            change_pct: 30.0,
            change_low_pct: 20.0,
            change_high_pct: 40.0,
            p_value,
            p_adjusted: p_value,
            verdict: Verdict::NoChange,
        })
        .collect();
    judge(&mut rows, Options::default());
    rows.iter().map(|r| r.verdict).collect()
}

#[test]
fn verdicts_use_holm_adjusted_p_values() {
    // Alone, 0.02 and 0.03 are under α = 0.05; among four tests they are
    // not (Holm: 0.01 × 4 = 0.04, 0.02 × 3 = 0.06, 0.03 × 2 = 0.06).
    let verdicts = judged(&[0.02, 0.01, 0.5, 0.03]);
    assert_eq!(
        verdicts,
        [Verdict::NoChange, Verdict::Regressed, Verdict::NoChange, Verdict::NoChange]
    );
    assert_eq!(judged(&[0.02]), [Verdict::Regressed], "one test: no adjustment");
}

#[test]
fn every_recorded_fact_that_changes_numbers_is_an_environment_change() {
    let base = run(1.0, 3);
    let mut new = run(1.0, 3);
    new.record.vmbench_version = "0.2.0".into();
    let vm = &mut new.record.targets[0];
    vm.agent_sha256 = "ffff".into();
    vm.qemu_version = Some("QEMU emulator version 9.0.0".into());
    vm.kernel = Some(crate::guest::kernel::Kernel {
        path: "/k".into(),
        source: "cache".into(),
        sha256: "0123456789abcdef".into(),
        bytes: 1,
        build_ms: None,
    });
    vm.settings.insert("domain_xml".into(), "<domain/>".into());
    new.record.targets[1].runtime = Some("runsc".into());
    new.record.targets[1].guest = Some(crate::rundir::GuestFacts {
        base_image: Some(crate::rundir::BaseImageFacts::example()),
        ready: "agent".into(),
        ..Default::default()
    });
    let changes = environment_changes(&base.record, &new.record);
    for want in [
        "vmbench version: test → 0.2.0",
        "vm agent sha256:  → ffff",
        "vm QEMU version: - → QEMU emulator version 9.0.0",
        "vm guest kernel sha256: - → 0123456789ab",
        "native runtime: - → runsc",
        "native guest base image id: - → 0123456789ab",
        "native guest ready: - → agent",
    ] {
        assert!(changes.iter().any(|c| c == want), "{want:?} not in {changes:?}");
    }
    assert_eq!(changes.len(), 7, "the domain XML names run files: {changes:?}");
    // Another disk of the user's own, wherever it lives, is another guest.
    let disk = |bytes: u64, path: &str| crate::rundir::GuestFacts {
        ready: "console:login:".into(),
        disk_bytes: Some(bytes),
        disk_image: Some(crate::rundir::DiskImageFacts {
            path: path.into(),
            format: "qcow2".into(),
            virtual_bytes: 1 << 30,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut a = run(1.0, 3);
    let mut b = run(1.0, 3);
    a.record.targets[0].guest = Some(disk(5 << 20, "/home/a/cloud.qcow2"));
    b.record.targets[0].guest = Some(disk(5 << 20, "/srv/b/cloud.qcow2"));
    assert!(environment_changes(&a.record, &b.record).is_empty(), "paths differ between hosts");
    b.record.targets[0].guest = Some(disk(6 << 20, "/srv/b/cloud.qcow2"));
    let changes = environment_changes(&a.record, &b.record);
    assert!(changes.iter().any(|c| c.starts_with("vm guest disk: qcow2")), "{changes:?}");
    // The TSC frequency vmbench measures per run is not a change of command line.
    let mut a = run(1.0, 1);
    let mut b = run(1.0, 1);
    a.record.targets[0].kernel_cmdline = Some("console=ttyS0 tsc_early_khz=2400001".into());
    b.record.targets[0].kernel_cmdline = Some("console=ttyS0 tsc_early_khz=2399996".into());
    assert!(environment_changes(&a.record, &b.record).is_empty());
    b.record.targets[0].kernel_cmdline = Some("console=ttyS0 mitigations=off".into());
    assert_eq!(environment_changes(&a.record, &b.record).len(), 1);
}
