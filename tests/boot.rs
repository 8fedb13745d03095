//! The boot slice end to end: a TCG microVM under the real QEMU, a runc
//! container on the real Docker daemon, and a native process.

mod common;

use common::*;

#[test]
fn boot_run_measures_all_three_targets_and_records_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "boot.toml", &three_targets("boot-test", 3, 1, 60.0));
    let out = tmp.path().join("run");
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(
        result.status.code(),
        Some(0),
        "stderr: {}\nstdout: {}",
        stderr(&result),
        stdout(&result)
    );

    // The headline names every target, its ready time, and says the VM was
    // emulated; it says where every metric is.
    let table = stdout(&result);
    for needle in [
        "vm ",
        "ctr ",
        "native ",
        "ready ms",
        "TCG (emulated)",
        "docker runc",
        "--all-metrics",
    ] {
        assert!(table.contains(needle), "summary lacks {needle:?}:\n{table}");
    }

    let record = record(&out);
    assert_eq!(record.schema_version, 1);
    assert_eq!(record.status, vmbench::rundir::RunStatus::Complete);
    assert_eq!((record.samples, record.failed_samples), (12, 0));
    assert!(record.scenario.text.contains("boot-test"));
    assert!(record.host.logical_cpus >= 1 && record.host.memory_bytes > 0 && !record.host.kernel.is_empty());

    let vm = &record.targets[0];
    assert_eq!((vm.accel.as_deref(), vm.machine.as_deref()), (Some("tcg"), Some("microvm")));
    assert!(vm.qemu_version.as_deref().unwrap().starts_with("QEMU emulator version"));
    let kernel = vm.kernel.as_ref().unwrap();
    assert_eq!(kernel.sha256.len(), 64);
    assert!(kernel.bytes > 1_000_000);
    assert!(vm.initramfs.as_ref().unwrap().bytes > 100_000);
    // Drivers travel only with the workloads that use them.
    assert!(vm.initramfs_drivers.as_ref().unwrap().bytes > vm.initramfs.as_ref().unwrap().bytes);
    assert_eq!(vm.artifact_bytes, kernel.bytes + vm.initramfs.as_ref().unwrap().bytes);
    assert!(vm.reproduce[0].ends_with("qemu-system-x86_64"));
    // QEMU ran under its seccomp sandbox, and run.json says so.
    let sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
    assert!(vm.reproduce.windows(2).any(|w| w == ["-sandbox", sandbox]), "{:?}", vm.reproduce);
    assert!(
        vm.settings["sandbox"].starts_with(&format!("-sandbox {sandbox}")),
        "{:?}",
        vm.settings
    );

    let ctr = &record.targets[1];
    let image = ctr.image.as_ref().unwrap();
    assert!(image.tag.starts_with("vmbench/agent:") && image.size_bytes > 100_000 && image.id.starts_with("sha256:"));
    assert_eq!(ctr.runtime.as_deref(), Some("runc"));
    assert!(!ctr.engine_version.as_deref().unwrap_or("").is_empty());
    assert_eq!(&ctr.reproduce[..3], ["docker", "run", "--rm"]);
    assert_eq!(record.targets[2].agent_sha256, vm.agent_sha256);

    let samples = samples(&out);
    assert_eq!(samples.len(), 12);
    assert_eq!(samples.iter().filter(|s| s.warmup).count(), 3);
    assert!(samples.iter().all(|s| s.ok && s.error.is_none()), "{samples:#?}");
    for s in &samples {
        let ready = s.metrics["ready_ms"];
        let exit = s.metrics["exit_ms"];
        assert!(ready > 0.0 && exit >= ready, "{s:?}");
    }
    for s in samples.iter().filter(|s| s.target == "vm") {
        assert_eq!(s.accel.as_deref(), Some("tcg"));
        for metric in ["first_byte_ms", "kernel_ms", "init_ms", "pre_kernel_ms"] {
            assert!(s.metrics[metric] >= 0.0, "{metric} in {s:?}");
        }
        // The phases add up to ready_ms (pre_kernel_ms is what remains).
        let sum = s.metrics["pre_kernel_ms"] + s.metrics["kernel_ms"] + s.metrics["init_ms"];
        assert!((sum - s.metrics["ready_ms"]).abs() < 1.0, "{s:?}");
        // The guest runs its own kernel, not the host's.
        assert!(s.agent_kernel.as_deref().unwrap().contains("cloud"), "{s:?}");
    }
    for s in samples.iter().filter(|s| s.target == "ctr") {
        for metric in ["create_ms", "attach_ms", "start_ms", "start_to_ready_ms", "remove_ms"] {
            assert!(s.metrics[metric] > 0.0, "{metric} in {s:?}");
        }
        assert_eq!(s.runtime.as_deref(), Some("runc"));
    }
    // Isolation has a price, in this order.
    let (native, ctr, vm) = (
        median(&samples, "native", "ready_ms"),
        median(&samples, "ctr", "ready_ms"),
        median(&samples, "vm", "ready_ms"),
    );
    assert!(native < ctr && ctr < vm, "native {native} < container {ctr} < vm {vm}");

    // Reports were written, and `vmbench report` renders the same from the files.
    for file in ["summary.json", "samples.csv", "report.md"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let first = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(first.contains("| qemu-microvm |") || first.contains("| vm |"), "{first}");
    std::fs::remove_file(out.join("report.md")).unwrap();
    let again = run_in(tmp.path(), &["report", out.to_str().unwrap(), "--format", "md"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), first);
    // Charts: the boot distribution and the overhead against native, drawn
    // (not blank) and linked from the Markdown report.
    for chart in ["charts/boot-ready", "charts/overhead-boot"] {
        let png = std::fs::read(out.join(format!("{chart}.png"))).unwrap();
        assert!(&png[1..4] == b"PNG" && png.len() > 10_000, "{chart}.png ({} bytes)", png.len());
        assert!(std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap().contains("<svg"));
        assert!(first.contains(&format!("]({chart}.png)")), "report.md links {chart}.png");
    }
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["schema_version"], 2);
    assert_eq!(summary["incomplete"], false);

    // A second run reuses the cached initramfs and image.
    let again = tmp.path().join("again");
    let result = run_in(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
            "--reps",
            "1",
            "--warmup",
            "0",
            "--only",
            "vm",
            "--only",
            "ctr",
        ],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let record = common::record(&again);
    assert_eq!(record.targets.len(), 2);
    assert!(record.targets[0].initramfs.as_ref().unwrap().reused);
    assert!(record.targets[1].image.as_ref().unwrap().reused);
    assert_eq!(common::samples(&again).len(), 2);
}

#[test]
fn the_recorded_qemu_reproduce_line_boots_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "vm.toml", &three_targets("repro", 1, 0, 60.0));
    let out = tmp.path().join("run");
    let result = run_in(
        tmp.path(),
        &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--only", "vm"],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let argv = &record(&out).targets[0].reproduce;
    // The line by hand is sandboxed as the trials were.
    assert!(argv.iter().any(|a| a == "-sandbox"), "{argv:?}");
    let by_hand = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(by_hand.status.success(), "{}", String::from_utf8_lossy(&by_hand.stderr));
    let console = String::from_utf8_lossy(&by_hand.stdout);
    assert!(console.contains("VMBENCH1 repro {\"type\":\"ready\""), "{console}");
    assert!(console.contains("VMBENCH1 repro {\"type\":\"done\"}"), "{console}");
}
