//! `kernel = "minimal"`: the kernel vmbench builds from the distribution's
//! kernel source package (once per cache: minutes on a 2-core host; every
//! later use finds it), booted under TCG on both machine types, running
//! the workloads that need its devices.

mod common;

use common::*;

const SCENARIO: &str = r#"name = "kernels"
repetitions = 1
warmup = 0
timeout_s = 120

[[target]]
name = "minimal-microvm"
kind = "vm"
accel = "tcg"
kernel = "minimal"

[[target]]
name = "minimal-q35"
kind = "vm"
accel = "tcg"
machine = "q35"
kernel = "minimal"

[[target]]
name = "distro"
kind = "vm"
accel = "tcg"
kernel = "distro"

[[workload]]
kind = "boot"

[[workload]]
kind = "syscall"
calls = 20000
round_trips = 2000

[[workload]]
kind = "disk"
file_mib = 16
rand_ops = 100
fsync_ops = 10

[[workload]]
kind = "network"
rr_count = 200
stream_mib = 2
"#;

#[test]
fn the_minimal_kernel_is_built_once_and_runs_every_workload_on_both_machines() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (out, run) = run_scenario(tmp.path(), "kernels.toml", SCENARIO);
    assert!(out.status.success(), "{}", stderr(&out));
    for s in samples(&run) {
        assert!(s.ok, "{} {}: {:?}", s.target, s.workload, s.error);
    }
    let record = record(&run);
    let kernel = |name: &str| {
        record
            .targets
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.kernel.clone())
            .unwrap_or_else(|| panic!("{name}: no kernel facts"))
    };
    let (microvm, q35, distro) = (kernel("minimal-microvm"), kernel("minimal-q35"), kernel("distro"));
    // One kernel for both machines, from the source package, much smaller
    // than the distribution's (about 2 MiB against 13.5).
    assert_eq!(microvm.sha256, q35.sha256);
    assert!(microvm.source.starts_with("minimal (linux-source-"), "{}", microvm.source);
    assert!(microvm.bytes < distro.bytes / 2, "{} vs {}", microvm.bytes, distro.bytes);
    // It booted, and it is the kernel the agent ran on.
    let boot = |t: &str| {
        samples(&run)
            .into_iter()
            .find(|s| s.target == t && s.workload == vmbench::rundir::WorkloadKind::Boot)
            .unwrap()
    };
    let (minimal_release, distro_release) = (boot("minimal-microvm").agent_kernel.unwrap(), boot("distro").agent_kernel.unwrap());
    assert_ne!(minimal_release, distro_release);
    // Built into the cache once and completely: its configuration beside it
    // holds every option vmbench asked for, and no build directory is left.
    let cached = vmbench::cache::dir().join("kernel-minimal");
    let entries: Vec<String> = std::fs::read_dir(&cached)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.iter().all(|e| !e.contains(".tmp")), "{entries:?}");
    let config = std::fs::read_to_string(microvm.path.with_file_name("config")).unwrap();
    assert!(vmbench::guest::minimal::dropped_options(&config).is_empty());
    assert!(config.contains("# CONFIG_MODULES is not set"), "everything is built in");

    // A second run builds nothing and boots the same kernel.
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let only_boot = SCENARIO.split("[[workload]]\nkind = \"syscall\"").next().unwrap();
    let (out, run) = run_scenario(&again, "again.toml", only_boot);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = common::record(&run);
    let facts = second.targets.iter().find(|t| t.name == "minimal-microvm").unwrap();
    let kernel = facts.kernel.as_ref().unwrap();
    assert_eq!((kernel.build_ms, kernel.sha256.as_str()), (None, microvm.sha256.as_str()));
}

#[test]
fn a_missing_kernel_source_is_a_preflight_error_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(
        tmp.path(),
        "minimal.toml",
        "name = \"m\"\n\n[[target]]\nname = \"vm\"\nkind = \"vm\"\naccel = \"tcg\"\nkernel = \"minimal\"\n\n[[workload]]\nkind = \"boot\"\n",
    );
    let out = vmbench()
        .current_dir(tmp.path())
        .env("VMBENCH_KERNEL_SOURCE", tmp.path().join("no-such-linux.tar.xz"))
        .args(["run", scenario.to_str().unwrap(), "--out", "run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("VMBENCH_KERNEL_SOURCE names") && stderr(&out).contains("not a file"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("run").exists(), "no run directory for a preflight error");
}
