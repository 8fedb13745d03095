//! `kill -9` of vmbench itself, twenty times, at moments spread over
//! preparation, launches, ready waits, teardowns and the sweeps of earlier
//! dead runs, against the real Docker daemon and the host's cgroups. After
//! the next run nothing of any killed run is left (no container with its
//! run label, no cgroup directory, no scratch files, no lock), every killed
//! run directory says `interrupted` and keeps the samples it had finished;
//! and a run that is alive meanwhile is not touched.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmbench::rundir::RunStatus;

const KILLS: usize = 20;

fn scenario(reps: u32) -> String {
    format!(
        r#"name = "killed"
repetitions = {reps}
warmup = 0
timeout_s = 30
accounting = "cgroup"

[[target]]
name = "native"
kind = "native"

[[target]]
name = "ctr"
kind = "container"
memory_mib = 128

[[workload]]
kind = "boot"

[[workload]]
kind = "disk"
file_mib = 16
rand_ops = 100
fsync_ops = 10
"#
    )
}

/// vmbench with its own cache directory (locks, scratch files, the agent),
/// so only this test's runs are seen and swept.
fn start(cwd: &Path, cache: &Path, scenario: &Path, out: &Path) -> std::process::Child {
    vmbench()
        .current_dir(cwd)
        .env("VMBENCH_CACHE_DIR", cache)
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Run ids with a lock (held or not) in the cache.
fn locked_runs(cache: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache.join("runs")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match name.strip_prefix('.') {
                Some(hidden) => hidden.split_once(".lock.").map(|(id, _)| id.to_string()),
                None => name.strip_suffix(".lock").map(str::to_string),
            }
        })
        .collect()
}

/// The cgroup directories vmbench made for `run_id`.
fn cgroup_dirs(run_id: &str) -> Vec<PathBuf> {
    vmbench::backend::cgroup::Hierarchies::of_host()
        .map(|h| h.run_dirs(run_id).into_iter().filter(|d| d.exists()).collect())
        .unwrap_or_default()
}

/// Complete lines of a samples file (a torn last line is a sample that was
/// not finished).
fn complete_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    lines
}

/// What one kill left behind, before anyone swept it.
#[derive(Debug, Default)]
struct Killed {
    delay: Duration,
    out: PathBuf,
    samples: Vec<String>,
    containers: usize,
    cgroups: bool,
    scratch: bool,
}

#[test]
fn killed_runs_are_swept_by_the_next_run_and_live_runs_are_not() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let killed_scenario = write(tmp.path(), "killed.toml", &scenario(4));
    let started = Instant::now();
    let mut killed: Vec<(String, Killed)> = Vec::new();
    for i in 0..KILLS {
        // Spread over the whole of a run: its sweep of earlier dead runs,
        // preparation, both targets' trials and the reports at the end.
        let spread = (i as f64 * 0.618_034).fract(); // golden ratio: evenly, in no order
        let delay = Duration::from_millis(40 + (spread * 2800.0) as u64);
        let out = tmp.path().join(format!("run-{i}"));
        let mut child = start(tmp.path(), &cache, &killed_scenario, &out);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let record = vmbench::rundir::read_run_record(&out).ok();
        let ids = locked_runs(&cache).into_iter().chain(record.as_ref().map(|r| r.run_id.clone()));
        for id in ids.collect::<std::collections::BTreeSet<_>>() {
            if killed.iter().any(|(known, _)| *known == id) {
                continue;
            }
            // A new id is this iteration's run: one run per iteration.
            let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap_or_default();
            killed.push((
                id.clone(),
                Killed {
                    delay,
                    out: out.clone(),
                    samples: complete_lines(&samples),
                    containers: containers_of_run(&id),
                    cgroups: !cgroup_dirs(&id).is_empty(),
                    scratch: cache.join("scratch").join(&id).exists(),
                },
            ));
        }
    }
    let kills_took = started.elapsed();

    // A run that lives through the sweep, and the run that sweeps.
    let live_out = tmp.path().join("live");
    let live = start(tmp.path(), &cache, &write(tmp.path(), "live.toml", &scenario(6)), &live_out);
    std::thread::sleep(Duration::from_millis(1500));
    let sweeper_out = tmp.path().join("sweeper");
    let sweeper = start(tmp.path(), &cache, &write(tmp.path(), "sweeper.toml", &scenario(1)), &sweeper_out);
    let sweeper = sweeper.wait_with_output().unwrap();
    let said = stderr(&sweeper);
    assert_eq!(sweeper.status.code(), Some(0), "{said}");
    let live = live.wait_with_output().unwrap();
    assert_eq!(live.status.code(), Some(0), "the live run: {}", stderr(&live));

    // The live run was left alone: complete, every sample good, and not
    // named by the sweeping run.
    let live_record = record(&live_out);
    assert_eq!((live_record.status, live_record.failed_samples), (RunStatus::Complete, 0));
    assert!(!said.contains(&live_record.run_id), "{said}");

    let summary: Vec<String> = killed
        .iter()
        .map(|(id, k)| {
            format!(
                "{id}: killed after {:?}; {} samples, {} container(s), cgroups {}, scratch {}",
                k.delay,
                k.samples.len(),
                k.containers,
                k.cgroups,
                k.scratch
            )
        })
        .collect();
    eprintln!(
        "{KILLS} kills in {kills_took:?}:\n{}\nthe sweeping run said:\n{said}",
        summary.join("\n")
    );
    // The kills landed in every phase that leaves something behind, so the
    // sweep below had real work: before the run directory existed, with a
    // container alive, with cgroups and with scratch files.
    assert!(killed.iter().any(|(_, k)| !k.out.join("run.json").exists()), "{summary:#?}");
    assert!(killed.iter().any(|(_, k)| k.containers > 0), "{summary:#?}");
    assert!(killed.iter().any(|(_, k)| k.cgroups), "{summary:#?}");
    assert!(killed.iter().any(|(_, k)| k.scratch), "{summary:#?}");
    assert!(killed.iter().any(|(_, k)| !k.samples.is_empty()), "{summary:#?}");

    // Nothing of any killed run is left.
    assert!(locked_runs(&cache).is_empty(), "locks left: {:?}", locked_runs(&cache));
    for (id, k) in &killed {
        assert_eq!(containers_of_run(id), 0, "containers of {id}");
        assert!(cgroup_dirs(id).is_empty(), "cgroups of {id}: {:?}", cgroup_dirs(id));
        assert!(!cache.join("scratch").join(id).exists(), "scratch files of {id}");
        if k.out.join("run.json").exists() {
            let record = record(&k.out);
            assert_ne!(record.status, RunStatus::Running, "{id} still says running");
            // Every sample finished before the kill is there, unchanged.
            let now = std::fs::read_to_string(k.out.join("samples.jsonl")).unwrap();
            assert_eq!(complete_lines(&now), k.samples, "samples of {id}");
            assert_eq!(samples(&k.out).len(), k.samples.len());
            if record.status == RunStatus::Interrupted {
                assert_eq!(record.samples, k.samples.len(), "{id}");
                assert!(record.note.unwrap().contains("died without cleaning up"));
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(180), "took {:?}", started.elapsed());
}

/// Processes in vmbench's cgroups of `run_id` (with `accounting = "cgroup"`
/// every QEMU of the run is in one).
fn processes_of_run(run_id: &str) -> Vec<String> {
    processes().into_iter().filter(|p| p.in_run(run_id)).map(|p| p.cmdline).collect()
}

#[test]
fn a_killed_vm_run_takes_its_qemu_with_it_and_is_swept_next_time() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let vm = r#"name = "killed-vm"
repetitions = 3
warmup = 0
timeout_s = 60
accounting = "cgroup"

[[target]]
name = "vm"
kind = "vm"
accel = "tcg"

[[workload]]
kind = "boot"
"#;
    let scenario = write(tmp.path(), "vm.toml", vm);
    let mut killed = Vec::new();
    // During a boot (the ready wait), right after one, and later in the run.
    for (i, delay_ms) in [1500u64, 2600, 4200].into_iter().enumerate() {
        let out = tmp.path().join(format!("vm-{i}"));
        let mut child = spawn_quiet_run(tmp.path(), &scenario, &out);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let run_id = record(&out).run_id;
        let running = processes_of_run(&run_id);
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !processes_of_run(&run_id).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(processes_of_run(&run_id), Vec::<String>::new(), "QEMU outlived vmbench");
        eprintln!(
            "killed {run_id} after {delay_ms} ms with {} QEMU process(es) running",
            running.len()
        );
        killed.push((run_id, out, running.len()));
    }
    assert!(killed.iter().any(|(_, _, qemu)| *qemu > 0), "no kill found a VM running");
    // The next run (any targets) sweeps what the killed ones left.
    let next = r#"name = "next"
repetitions = 1
warmup = 0

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#;
    let (result, _) = run_scenario(tmp.path(), "next.toml", next);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    // Each killed run was swept by the next one to start; the last by this one.
    let last = &killed.last().unwrap().0;
    assert!(stderr(&result).contains(&format!("run {last} ")), "{}", stderr(&result));
    for (run_id, out, _) in &killed {
        assert!(cgroup_dirs(run_id).is_empty(), "cgroups of {run_id}");
        assert_eq!(record(out).status, RunStatus::Interrupted);
    }
}

/// Podman containers carrying vmbench's run label for `run_id`.
fn podman_containers_of_run(run_id: &str) -> usize {
    let out = std::process::Command::new("podman")
        .args(["ps", "-a", "-q", "--filter", &format!("label=vmbench.run={run_id}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "podman ps: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn killed_podman_runs_leave_containers_that_the_next_run_removes() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let podman = scenario(3).replace("kind = \"container\"", "kind = \"container\"\nengine = \"podman\"");
    let killed_scenario = write(tmp.path(), "podman.toml", &podman);
    let mut killed = Vec::new();
    // Spread over preparation (the engine's image import), the podman
    // container's trials and the native ones.
    for (i, delay_ms) in [900u64, 1700, 2500, 3300, 4100, 4900].into_iter().enumerate() {
        let out = tmp.path().join(format!("podman-{i}"));
        let mut child = start(tmp.path(), &cache, &killed_scenario, &out);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Ok(record) = vmbench::rundir::read_run_record(&out) {
            killed.push((record.run_id.clone(), podman_containers_of_run(&record.run_id)));
        }
    }
    eprintln!("killed podman runs (run id, containers left): {killed:?}");
    assert!(
        killed.iter().any(|(_, left)| *left > 0),
        "no kill left a container to sweep: {killed:?}"
    );
    let sweeper_out = tmp.path().join("sweeper");
    let sweeper = start(tmp.path(), &cache, &killed_scenario, &sweeper_out)
        .wait_with_output()
        .unwrap();
    assert_eq!(sweeper.status.code(), Some(0), "{}", stderr(&sweeper));
    for (id, _) in &killed {
        assert_eq!(podman_containers_of_run(id), 0, "containers of {id}");
    }
    assert!(locked_runs(&cache).is_empty(), "locks left: {:?}", locked_runs(&cache));
}

/// The uids of the processes in vmbench's cgroups of `run_id`.
fn uids_of_run(run_id: &str) -> Vec<u32> {
    processes().into_iter().filter(|p| p.in_run(run_id)).filter_map(|p| p.uid).collect()
}

/// A child killed when dropped, so a failed assertion leaves no run going.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `run_as`: QEMU gives up root once it has opened its files. The kernel
/// then clears its parent-death signal, so it outlives a killed vmbench;
/// the next run finds it by its cgroup and kills it.
#[test]
fn a_qemu_running_as_another_user_outlives_a_killed_vmbench_until_the_next_run() {
    let _turn = serial();
    let tmp = tempfile::tempdir().unwrap();
    let vm = r#"name = "run-as"
repetitions = 2
warmup = 0
timeout_s = 60

[[target]]
name = "vm"
kind = "vm"
accel = "tcg"
run_as = "nobody"

[[workload]]
kind = "cpu"
threads = 1
sha_mib = 1
min_time_ms = 3000
"#;
    let scenario = write(tmp.path(), "vm.toml", vm);
    let out = tmp.path().join("vm-run");
    let mut child = KilledOnDrop(spawn_quiet_run(tmp.path(), &scenario, &out));
    let started = Instant::now();
    while !out.join("run.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run_id = record(&out).run_id;
    // QEMU starts as root, opens its files, then switches before the guest runs.
    loop {
        let uids = uids_of_run(&run_id);
        if uids.first().is_some_and(|&uid| uid != 0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "QEMU never ran as `nobody`: uids {uids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(record(&out).targets[0].settings["sandbox"].contains("runs as user `nobody`"));
    std::thread::sleep(Duration::from_secs(1));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !processes_of_run(&run_id).is_empty(),
        "QEMU as another user is expected to outlive vmbench (no parent-death signal)"
    );
    let next = "name = \"next\"\nrepetitions = 1\nwarmup = 0\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n";
    let (result, _) = run_scenario(tmp.path(), "next.toml", next);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert!(stderr(&result).contains(&format!("run {run_id} ")), "{}", stderr(&result));
    assert_eq!(processes_of_run(&run_id), Vec::<String>::new(), "the next run killed it");
    assert!(cgroup_dirs(&run_id).is_empty());
}
