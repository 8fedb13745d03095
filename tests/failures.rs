//! Failures inside a run: timeouts, Ctrl-C, preflight problems. Each must
//! leave no QEMU process and no container behind, and lose no sample.
//! The tests here look at processes host-wide, so they run one at a time.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_timed_out_vm_is_a_failed_sample_with_console_lines_and_the_run_goes_on() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    // 0.4 s is far too short for a TCG boot; native fits easily.
    let text = three_targets("timeout", 2, 0, 0.4).replace(
        "name = \"ctr\"\nkind = \"container\"\nruntime = \"runc\"\ncpus = 1.0\nmemory_mib = 128\n",
        "name = \"ctr\"\nkind = \"native\"\n",
    );
    let scenario = write(tmp.path(), "t.toml", &text);
    let out = tmp.path().join("run");
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(3), "failed samples: {}", stderr(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 6, "every trial is recorded");
    for s in samples.iter().filter(|s| s.target == "vm") {
        assert!(!s.ok);
        let error = s.error.as_deref().unwrap();
        assert!(error.contains("timed out"), "{error}");
        assert!(!s.metrics.contains_key("ready_ms"), "{s:?}");
    }
    assert!(samples.iter().filter(|s| s.target != "vm").all(|s| s.ok));
    assert!(stderr(&result).contains("failed: vm boot rep 0"), "{}", stderr(&result));
    assert_eq!(record(&out).failed_samples, 2);
    assert!(vmbench_qemu_processes().is_empty(), "{:?}", vmbench_qemu_processes());
}

#[test]
fn sigint_keeps_finished_samples_and_leaves_nothing_running() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "long.toml", &three_targets("interrupt", 50, 0, 60.0));
    let out = tmp.path().join("run");
    let mut child = spawn_run(tmp.path(), &scenario, &out);
    // Wait until some samples exist and a VM is (most likely) booting.
    let started = Instant::now();
    loop {
        let lines = std::fs::read_to_string(out.join("samples.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 4 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no samples appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let record = record(&out);
    assert_eq!(record.status, vmbench::rundir::RunStatus::Interrupted);
    assert!(record.note.as_deref().unwrap().contains("SIGINT"));
    let samples = samples(&out);
    assert!(samples.len() >= 4 && samples.len() < 150, "{}", samples.len());
    assert_eq!(record.samples, samples.len());
    assert!(vmbench_qemu_processes().is_empty(), "{:?}", vmbench_qemu_processes());
    assert_eq!(containers_of_run(&record.run_id), 0);
    // What finished still has a report, marked incomplete.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("**Incomplete run** (status: interrupted: interrupted by SIGINT)"),
        "{report}"
    );
}

#[test]
fn an_unreachable_docker_daemon_fails_preflight_with_status_2() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "d.toml", &three_targets("nodaemon", 1, 0, 60.0));
    let out = tmp.path().join("run");
    let result = vmbench()
        .current_dir(tmp.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(2));
    let err = stderr(&result);
    assert!(
        err.contains("target `ctr`") && err.contains("does not answer") && err.contains("dockerd"),
        "{err}"
    );
    assert!(!out.exists(), "no run directory after a failed preflight");
}

#[test]
fn an_unregistered_runtime_fails_preflight_naming_the_offered_ones() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("noruntime", 1, 0, 60.0).replace("runtime = \"runc\"", "runtime = \"nosuchruntime\"");
    let scenario = write(tmp.path(), "r.toml", &text);
    let out = tmp.path().join("run");
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2));
    let err = stderr(&result);
    assert!(
        err.contains("no runtime `nosuchruntime`") && err.contains("runc") && err.contains("daemon.json"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Runs the three-target scenario with a panic injected at `fault`.
fn run_with_fault(fault: &str) -> (std::process::Output, vmbench::rundir::RunRecord) {
    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("panic", 2, 0, 60.0);
    let scenario = write(tmp.path(), "p.toml", &text);
    let out = tmp.path().join("run");
    let seed = seed_with_vm_first(&scenario, &text).to_string();
    let result = vmbench()
        .current_dir(tmp.path())
        .env("VMBENCH_FAULT", fault)
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--seed", &seed])
        .output()
        .unwrap();
    (result, record(&out))
}

/// An order seed whose first round starts with the VM, then the container,
/// so the faults below strike at a known point of the run.
fn seed_with_vm_first(path: &std::path::Path, text: &str) -> u64 {
    let scenario = vmbench::scenario::parse(path, text).unwrap();
    (0..1000)
        .find(|&seed| {
            let overrides = vmbench::plan::Overrides {
                order_seed: Some(seed),
                ..Default::default()
            };
            let plan = vmbench::plan::build(&scenario, &overrides).unwrap();
            let first: Vec<&str> = plan.trials[..2].iter().map(|t| scenario.targets[t.target].name.as_str()).collect();
            first == ["vm", "ctr"]
        })
        .expect("some seed puts the VM first")
}

#[test]
fn a_panic_while_a_vm_runs_leaves_no_qemu_behind() {
    let _guard = serial();
    let (result, record) = run_with_fault("qemu-after-spawn");
    assert_eq!(result.status.code(), Some(4), "an internal error");
    let err = stderr(&result);
    assert!(
        err.contains("injected fault at qemu-after-spawn") && err.contains("vmbench panicked"),
        "{err}"
    );
    assert_eq!(record.status, vmbench::rundir::RunStatus::Interrupted);
    assert!(vmbench_qemu_processes().is_empty(), "{:?}", vmbench_qemu_processes());
}

#[test]
fn a_panic_after_a_container_was_created_leaves_no_container_behind() {
    let _guard = serial();
    let (result, record) = run_with_fault("docker-after-create");
    assert_eq!(result.status.code(), Some(4), "an internal error");
    assert!(
        stderr(&result).contains("injected fault at docker-after-create"),
        "{}",
        stderr(&result)
    );
    assert_eq!(record.status, vmbench::rundir::RunStatus::Interrupted);
    // The VM trial before the container's finished and was kept.
    assert_eq!(record.samples, 1);
    assert_eq!(containers_of_run(&record.run_id), 0);
    assert!(vmbench_qemu_processes().is_empty());
}

#[test]
fn sigint_during_a_disk_trial_removes_the_scratch_files() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("disk-interrupt", 20, 0, 60.0).replace("kind = \"boot\"", "kind = \"disk\"\nfile_mib = 64\nrand_ops = 20000");
    let scenario = write(tmp.path(), "disk.toml", &text);
    let out = tmp.path().join("run");
    let mut child = spawn_run(tmp.path(), &scenario, &out);
    // Wait until a scratch file exists, i.e. a disk trial is under way.
    let started = Instant::now();
    let run_id = loop {
        if let Ok(record) = vmbench::rundir::read_run_record(&out) {
            let root = vmbench::backend::scratch_root(&record.run_id);
            let busy = std::fs::read_dir(&root).map(|d| {
                d.flatten()
                    .any(|t| std::fs::read_dir(t.path()).map(|f| f.count() > 0).unwrap_or(false))
            });
            if busy.unwrap_or(false) {
                break record.run_id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no disk trial started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!vmbench::backend::scratch_root(&run_id).exists(), "scratch files left behind");
    assert!(vmbench_qemu_processes().is_empty());
    assert_eq!(containers_of_run(&run_id), 0);
}
