//! Helpers for the integration tests, which drive the real `vmbench` binary
//! against the real QEMU and Docker daemon that scripts/setup.sh provides.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vmbench::rundir::{RunRecord, Sample};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Tests that look at QEMU processes host-wide take this first, so a VM of
/// a neighbouring test in the same binary is not mistaken for a leak.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn vmbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmbench"))
}

/// Runs vmbench with `args` in `cwd` and returns its output.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    vmbench().current_dir(cwd).args(args).output().expect("vmbench runs")
}

/// Starts `vmbench run SCENARIO --out OUT` in `cwd` without waiting.
pub fn spawn_run(cwd: &Path, scenario: &Path, out: &Path) -> std::process::Child {
    vmbench()
        .current_dir(cwd)
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .spawn()
        .expect("vmbench starts")
}

/// Writes `text` as scenario `name` in `dir` and runs it into `dir/run`;
/// returns the output and the run directory.
pub fn run_scenario(dir: &Path, name: &str, text: &str) -> (Output, PathBuf) {
    let file = write(dir, name, text);
    let out = dir.join("run");
    let result = run_in(dir, &["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    (result, out)
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn record(dir: &Path) -> RunRecord {
    vmbench::rundir::read_run_record(dir).unwrap()
}

pub fn samples(dir: &Path) -> Vec<Sample> {
    vmbench::rundir::read_samples(dir).unwrap()
}

/// Median of one metric over the measured, ok samples of a target.
pub fn median(samples: &[Sample], target: &str, metric: &str) -> f64 {
    let values: Vec<f64> = samples
        .iter()
        .filter(|s| s.target == target && s.ok && !s.warmup)
        .filter_map(|s| s.metrics.get(metric).copied())
        .collect();
    vmbench::stats::Summary::of(&values)
        .unwrap_or_else(|| panic!("no {metric} for {target}"))
        .median
}

/// QEMU processes started by any vmbench (their kernel command line carries
/// a vmbench nonce).
pub fn vmbench_qemu_processes() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("qemu-system") && cmdline.contains("vmbench.nonce=") {
            let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // A zombie is gone already, waiting only for its parent to look.
            if state.split_whitespace().nth(2).is_none_or(|s| s != "Z") {
                found.push(cmdline);
            }
        }
    }
    found
}

/// Containers carrying vmbench's run label for `run_id`, through the API.
pub fn containers_of_run(run_id: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use bollard::query_parameters::ListContainersOptionsBuilder;
        let engine = vmbench::scenario::Engine::Docker;
        let docker = vmbench::backend::docker::connect(engine, &vmbench::backend::docker::engine_address(engine, None))
            .await
            .unwrap();
        let filters = std::collections::HashMap::from([("label", vec![format!("vmbench.run={run_id}")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        docker.list_containers(Some(options)).await.unwrap().len()
    })
}

/// A scenario with the three kinds of target; TCG so it means the same on
/// every host.
pub fn three_targets(name: &str, reps: u32, warmup: u32, timeout_s: f64) -> String {
    format!(
        r#"name = "{name}"
repetitions = {reps}
warmup = {warmup}
timeout_s = {timeout_s}

[[target]]
name = "vm"
kind = "vm"
machine = "microvm"
accel = "tcg"
memory_mib = 256

[[target]]
name = "ctr"
kind = "container"
runtime = "runc"
cpus = 1.0
memory_mib = 128

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#
    )
}
