//! Targets that die or exhaust their own limits mid-run, on the real QEMU and
//! Docker daemon: QEMU killed as the OOM killer would, a container's memory
//! bomb stopped at its memory limit, a fork bomb stopped at its pids limit, a
//! guest kernel that panics. Each is a failed sample that says why, the run
//! goes on, and nothing is left behind. They look at processes host-wide, so
//! they run one at a time.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pids of QEMU processes whose kernel command line carries a vmbench nonce.
fn qemu_pids() -> Vec<i32> {
    processes().into_iter().filter(Proc::is_vmbench_qemu).map(|p| p.pid).collect()
}

#[test]
fn qemu_killed_mid_trial_is_a_failed_sample_saying_so_and_the_run_goes_on() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    // The VM first (seeded order is not needed: the native trial is short
    // and the kill waits for QEMU), its cpu workload long enough to be
    // killed in the middle of it.
    let text = r#"
name = "qemu-killed"
repetitions = 1
warmup = 0
timeout_s = 120

[[target]]
name = "vm"
kind = "vm"
machine = "microvm"
accel = "tcg"
memory_mib = 256

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "cpu"
threads = 1
sha_mib = 1
min_time_ms = 3000
"#;
    let scenario = write(tmp.path(), "k.toml", text);
    let out = tmp.path().join("run");
    let mut run = spawn_run(tmp.path(), &scenario, &out);
    let started = Instant::now();
    let mut killed = None;
    while run.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        if killed.is_none() {
            if let Some(&pid) = qemu_pids().first() {
                // Booted (about 2 s under TCG, more on a loaded host) and
                // well into the workload (four passes of at least 3 s).
                std::thread::sleep(Duration::from_secs(8));
                // SAFETY: kill sends a signal; the pid is QEMU's, seen above.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
                killed = Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(killed.is_some(), "never saw QEMU");
    assert_eq!(run.wait().unwrap().code(), Some(3), "a failed sample, the run finished");
    let samples = samples(&out);
    let vm = samples.iter().find(|s| s.target == "vm").unwrap();
    assert!(!vm.ok);
    let error = vm.error.as_deref().unwrap();
    assert!(error.contains("the console closed before the agent finished"), "{error}");
    assert!(error.contains("how it ended: QEMU exited with signal: 9 (SIGKILL)"), "{error}");
    assert!(error.contains("last console lines"), "{error}");
    assert!(vm.metrics.contains_key("ready_ms"), "what was measured before stays: {vm:?}");
    let native = samples.iter().find(|s| s.target == "native").unwrap();
    assert!(native.ok, "the run went on: {native:?}");
    assert!(qemu_pids().is_empty());
}

/// A static build of the tests' hostile guest, in `dir`, under each name.
fn static_hostile_guest(dir: &Path, names: &[&str]) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/hostile.rs");
    let binary = dir.join("hostile");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = std::process::Command::new(rustc)
        .args(["--edition", "2021", "-O", "-C", "target-feature=+crt-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("rustc runs");
    assert!(built.success(), "building the hostile guest");
    for name in names {
        std::fs::copy(&binary, dir.join(name)).unwrap();
    }
}

/// A scenario with one container target running `behaviour` from a
/// `FROM scratch` image of the hostile guest (no agent: ready by a console
/// line it never prints), and a native target after it.
fn bomb_scenario(dir: &Path, behaviour: &str, limits: &str) -> PathBuf {
    static_hostile_guest(dir, &[behaviour]);
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM scratch\nCOPY {behaviour} /{behaviour}\nENTRYPOINT [\"/{behaviour}\"]\n"),
    )
    .unwrap();
    std::fs::write(dir.join(".dockerignore"), "hostile\n").unwrap();
    let text = format!(
        r#"
name = "{behaviour}"
repetitions = 1
warmup = 0
timeout_s = 60

[[guest]]
name = "bomb"
dockerfile = "Dockerfile"
init = "image"
ready = {{ console = "^never printed$" }}

[[target]]
name = "ctr"
kind = "container"
guest = "bomb"
{limits}

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#
    );
    write(dir, "bomb.toml", &text)
}

fn run_bomb(behaviour: &str, limits: &str) -> (std::process::Output, Vec<vmbench::rundir::Sample>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = bomb_scenario(tmp.path(), behaviour, limits);
    let out = tmp.path().join("run");
    let started = Instant::now();
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "the bomb was stopped by its limit, not by the timeout"
    );
    let run_id = record(&out).run_id;
    assert_eq!(containers_of_run(&run_id), 0, "the container is removed");
    let samples = samples(&out);
    assert!(samples.iter().find(|s| s.target == "native").unwrap().ok, "the run went on");
    let error = samples
        .iter()
        .find(|s| s.target == "ctr")
        .unwrap()
        .error
        .clone()
        .unwrap_or_default();
    eprintln!("{behaviour}: {error}");
    (result, samples, error)
}

#[test]
fn a_memory_bomb_in_a_container_stops_at_its_memory_limit_and_says_oom() {
    let _guard = serial();
    let (result, _, error) = run_bomb("membomb", "memory_mib = 64");
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    assert!(error.contains("the target ended before the ready probe succeeded"), "{error}");
    assert!(error.contains("OOMKilled"), "{error}");
    assert!(error.contains("membomb: holding"), "its last lines: {error}");
}

#[test]
fn a_fork_bomb_in_a_container_stops_at_its_pids_limit() {
    let _guard = serial();
    let (result, _, error) = run_bomb("forkbomb", "pids_limit = 32");
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    // The first process and 31 sleepers: the limit, and not one more.
    assert!(error.contains("forkbomb: refused after 31 processes"), "{error}");
    assert!(error.contains("exited with status 1"), "{error}");
}

#[test]
fn a_guest_kernel_that_panics_is_a_failed_sample_with_the_panic_on_its_console() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    // No init where the kernel is told to look: it panics, and with
    // vmbench's `panic=-1` and `-no-reboot` QEMU exits at once.
    let text = r#"
name = "panic"
repetitions = 1
warmup = 0
timeout_s = 60

[[target]]
name = "vm"
kind = "vm"
machine = "microvm"
accel = "tcg"
memory_mib = 256
kernel_args = ["rdinit=/no/such/init"]

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#;
    let scenario = write(tmp.path(), "p.toml", text);
    let out = tmp.path().join("run");
    let started = Instant::now();
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(55), "ended by the panic, not the timeout");
    assert_eq!(result.status.code(), Some(3), "{}", stderr(&result));
    let samples = samples(&out);
    let vm = samples.iter().find(|s| s.target == "vm").unwrap();
    let error = vm.error.as_deref().unwrap();
    assert!(error.contains("the console closed before the agent was ready"), "{error}");
    assert!(error.contains("Kernel panic"), "{error}");
    assert!(samples.iter().find(|s| s.target == "native").unwrap().ok);
    assert!(qemu_pids().is_empty());
}

#[test]
fn a_full_results_file_system_is_a_clear_error_and_every_sample_written_stays_whole() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a 64 KiB tmpfs (the tests run as root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let text = "name = \"full\"\nrepetitions = 400\nwarmup = 0\ntimeout_s = 30\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n";
    let scenario = write(tmp.path(), "full.toml", text);
    let out = small.join("run");
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(4), "a file vmbench could not write: {err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(out.to_str().unwrap()), "the error names the path: {err}");
    // Every line whole and parsed, by vmbench's own reader and as JSON.
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "no torn last line");
    let lines = text.lines().count();
    assert!(lines > 50, "the samples that fitted are there: {lines}");
    assert_eq!(samples(&out).len(), lines);
    assert!(
        std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains(".tmp")),
        "no temporary file left"
    );
}

/// A scenario with one TCG microVM booted once, whose initramfs vmbench
/// builds into its cache.
const ONE_VM: &str = "name = \"cache\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = 60\n\n[[target]]\nname = \"vm\"\nkind = \"vm\"\naccel = \"tcg\"\n\n[[workload]]\nkind = \"boot\"\n";

/// vmbench run with `cache` as its cache directory and the host's guest
/// kernel named directly (a fresh cache has none unpacked).
fn run_with_cache(dir: &Path, cache: &Path, out: &Path) -> std::process::Child {
    let kernel = vmbench::guest::kernel::find(None).expect("scripts/setup.sh unpacks a guest kernel");
    vmbench()
        .current_dir(dir)
        .env("VMBENCH_CACHE_DIR", cache)
        .env("VMBENCH_KERNEL", &kernel.path)
        .args(["run", "cache.toml", "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Files under `dir` whose name says they are half-written.
fn temporary_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temporary_files(&path));
        } else if path.file_name().unwrap().to_string_lossy().contains(".tmp") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_full_or_read_only_cache_is_a_preflight_error_and_leaves_nothing_half_written() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "cache.toml", ONE_VM);
    for (options, says) in [("size=1m", "No space left on device"), ("size=1m,ro", "Read-only file system")] {
        let cache = tmp.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&cache)
            .status()
            .unwrap();
        assert!(mounted.success());
        let out = tmp.path().join(format!("run-{}", options.len()));
        let result = run_with_cache(tmp.path(), &cache, &out).wait_with_output().unwrap();
        let err = stderr(&result);
        let left = temporary_files(&cache);
        let _ = std::process::Command::new("umount").arg(&cache).status();
        assert_eq!(result.status.code(), Some(2), "a preflight error: {err}");
        assert!(err.contains("building the initramfs") && err.contains(says), "{err}");
        assert!(err.contains(cache.to_str().unwrap()), "the error names the path: {err}");
        assert!(left.is_empty(), "half-written files left in the cache: {left:?}");
        assert!(!out.exists(), "nothing was started");
    }
}

#[test]
fn two_runs_building_the_same_artifact_at_once_end_with_one_good_copy() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "cache.toml", ONE_VM);
    let cache = tmp.path().join("cache");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (first, second) = (run_with_cache(tmp.path(), &cache, &a), run_with_cache(tmp.path(), &cache, &b));
    for run in [first, second] {
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let built: Vec<PathBuf> = std::fs::read_dir(cache.join("initramfs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(temporary_files(&cache).is_empty(), "{built:?}");
    // One initramfs (and its variant with drivers, if the kernel needs one)
    // and each run used exactly what is in the cache.
    for out in [&a, &b] {
        let target = record(out).targets.into_iter().next().unwrap();
        let initramfs = target.initramfs.expect("the initramfs is recorded");
        let on_disk = vmbench::guest::sha256_file(Path::new(&initramfs.path)).unwrap();
        assert_eq!(on_disk, initramfs.sha256, "{} is the copy the run recorded", initramfs.path);
        assert!(built.contains(&PathBuf::from(&initramfs.path)), "{built:?}");
    }
}
