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
    run_command(cwd, scenario, out).spawn().expect("vmbench starts")
}

/// [`spawn_run`] with vmbench's output discarded (a test that reads only
/// the run directory, or lets many runs go at once).
pub fn spawn_quiet_run(cwd: &Path, scenario: &Path, out: &Path) -> std::process::Child {
    run_command(cwd, scenario, out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vmbench starts")
}

fn run_command(cwd: &Path, scenario: &Path, out: &Path) -> Command {
    let mut cmd = vmbench();
    cmd.current_dir(cwd)
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    cmd
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

/// A process on this host as the tests look at it, read from `/proc`.
pub struct Proc {
    pub pid: i32,
    /// Its arguments joined by spaces.
    pub cmdline: String,
    /// `/proc/PID/cgroup` as it reads.
    pub cgroup: String,
    /// Its real user id.
    pub uid: Option<u32>,
    /// Gone already, waiting only for its parent to look.
    pub zombie: bool,
}

impl Proc {
    /// A QEMU that some vmbench started (its kernel command line carries a
    /// vmbench nonce).
    pub fn is_vmbench_qemu(&self) -> bool {
        self.cmdline.contains("qemu-system") && self.cmdline.contains("vmbench.nonce=")
    }

    /// In a cgroup vmbench made for run `run_id`.
    pub fn in_run(&self, run_id: &str) -> bool {
        self.cgroup.contains(&format!("/vmbench/{run_id}/"))
    }
}

/// Every process on this host but the calling one (those that end while
/// being read are left out).
pub fn processes() -> Vec<Proc> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok().filter(|&p| p != me)?;
            let cmdline = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).ok()?).replace('\0', " ");
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
            Some(Proc {
                pid,
                cmdline,
                cgroup: std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default(),
                uid: field("Uid:").and_then(|v| v.split_whitespace().next()?.parse().ok()),
                zombie: field("State:").is_some_and(|s| s.starts_with('Z')),
            })
        })
        .collect()
}

/// QEMU processes started by any vmbench and still running, by command line.
pub fn vmbench_qemu_processes() -> Vec<String> {
    processes()
        .into_iter()
        .filter(|p| p.is_vmbench_qemu() && !p.zombie)
        .map(|p| p.cmdline)
        .collect()
}

/// Runs `f` against the local Docker daemon's API on a runtime of its own.
pub fn with_docker<F, Fut, T>(f: F) -> T
where
    F: FnOnce(bollard::Docker) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    with_engine(vmbench::scenario::Engine::Docker, f)
}

/// Runs `f` against the local engine's API (Docker or the Podman service)
/// on a runtime of its own.
pub fn with_engine<F, Fut, T>(engine: vmbench::scenario::Engine, f: F) -> T
where
    F: FnOnce(bollard::Docker) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let address = vmbench::backend::docker::engine_address(engine, None);
        f(vmbench::backend::docker::connect(engine, &address).await.unwrap()).await
    })
}

/// Removes these images from Docker (those a test made), through the API;
/// one that is gone already is fine.
pub fn remove_images(tags: &[String]) {
    with_docker(|docker| async move {
        for tag in tags {
            let _ = docker
                .remove_image(tag, None::<bollard::query_parameters::RemoveImageOptions>, None)
                .await;
        }
    })
}

/// Containers carrying vmbench's run label for `run_id`, through the API.
pub fn containers_of_run(run_id: &str) -> usize {
    with_docker(|docker| async move {
        use bollard::query_parameters::ListContainersOptionsBuilder;
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

/// A run directory written through vmbench's own writer without measuring
/// anything, for tests of what reads runs (exports, compare, check):
/// `reps` boot samples each of a TCG VM and a native target, the VM's
/// `ready_ms` spread over 1800–1800+reps ms and multiplied by `scale`, and,
/// with `throughput`, a bigger-is-better metric on the VM too. It started
/// at 2026-11-25T15:01:02Z and took 62.5 s.
pub fn synthetic_run(dir: &Path, scale: f64, reps: u32, throughput: bool) -> PathBuf {
    use vmbench::rundir::{HostFacts, RunStatus, ScenarioFacts, Sink, TargetFacts, TargetKind, WorkloadKind, SCHEMA_VERSION};
    let target = |name: &str, kind: TargetKind, accel: Option<&str>| TargetFacts {
        name: name.into(),
        kind,
        accel: accel.map(str::to_string),
        ..Default::default()
    };
    let record = RunRecord {
        schema_version: SCHEMA_VERSION,
        vmbench_version: env!("CARGO_PKG_VERSION").into(),
        run_id: "synthetic".into(),
        status: RunStatus::Running,
        started_at: "2026-11-25T15:01:02Z".into(),
        finished_at: None,
        scenario: ScenarioFacts {
            auto: None,
            name: "synthetic".into(),
            description: String::new(),
            path: "synthetic.toml".into(),
            text: String::new(),
            sha256: "0123456789abcdef".into(),
            repetitions: reps,
            warmup: 0,
            timeout_s: 60.0,
            workloads: vec![WorkloadKind::Boot],
            only: vec![],
            order_seed: None,
            cpuset: None,
            harness_cpuset: None,
        },
        host: HostFacts {
            cpu_model: "test cpu".into(),
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
    let mut sink = Sink::create(dir, record).unwrap();
    let mut seq = 0;
    for rep in 0..reps {
        for (name, ready) in [("vm", (1800.0 + rep as f64) * scale), ("native", 1.0 + rep as f64 * 0.01)] {
            let mut metrics = std::collections::BTreeMap::from([("ready_ms".to_string(), ready)]);
            if throughput && name == "vm" {
                metrics.insert("image_read_mb_per_s".into(), 100.0 + rep as f64);
            }
            sink.append(&Sample {
                target: name.into(),
                workload: WorkloadKind::Boot,
                rep,
                warmup: false,
                seq,
                ok: true,
                error: None,
                metrics,
                accel: None,
                runtime: None,
                agent_kernel: None,
                started_at: "2026-11-25T15:01:02Z".into(),
                clocksource: None,
                agent_facts: None,
                server: None,
                not_applicable: None,
            })
            .unwrap();
            seq += 1;
        }
    }
    sink.record.status = RunStatus::Complete;
    sink.record.finished_at = Some("2026-11-25T15:02:04.5Z".into());
    vmbench::rundir::write_run_record(dir, &sink.record).unwrap();
    dir.to_path_buf()
}
