//! OCI runtimes on the real Docker daemon that scripts/setup.sh configured:
//! gVisor (runsc) runs the agent on its own kernel; crun runs where the host
//! allows it, and where it does not, preflight says why in the daemon's words.

mod common;

use common::*;
use std::path::Path;

fn scenario(runtime: &str) -> String {
    format!("name = \"rt\"\nrepetitions = 2\nwarmup = 0\n[[target]]\nname = \"ctr\"\nkind = \"container\"\nruntime = \"{runtime}\"\n[[workload]]\nkind = \"boot\"\n")
}

/// cgroup v1 controllers mounted next to a unified hierarchy: crun 1.8 refuses these hosts.
fn hybrid_cgroups() -> bool {
    Path::new("/sys/fs/cgroup/unified").is_dir() && Path::new("/sys/fs/cgroup/memory").is_dir()
}

#[test]
fn runsc_runs_the_agent_on_gvisors_own_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, out) = run_scenario(tmp.path(), "runsc.toml", &scenario("runsc"));
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 2);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for s in &samples {
        assert_eq!(s.runtime.as_deref(), Some("runsc"));
        // gVisor answers uname itself; it is not the host's kernel.
        assert_ne!(s.agent_kernel.as_deref(), Some(host_kernel.trim()), "{s:?}");
        assert!(s.metrics["ready_ms"] > 0.0);
    }
    assert_eq!(record(&out).targets[0].runtime.as_deref(), Some("runsc"));
}

#[test]
fn crun_runs_or_preflight_gives_the_daemons_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, out) = run_scenario(tmp.path(), "crun.toml", &scenario("crun"));
    if hybrid_cgroups() {
        assert_eq!(result.status.code(), Some(2), "{}", stdout(&result));
        let err = stderr(&result);
        assert!(
            err.contains("runtime `crun` cannot start a container on this host") && err.contains("cgroups in hybrid mode not supported"),
            "{err}"
        );
        assert!(!out.exists(), "no run directory after a failed preflight");
    } else {
        assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
        assert!(samples(&out).iter().all(|s| s.ok && s.runtime.as_deref() == Some("crun")));
    }
}

#[test]
fn podman_runs_the_agent_through_the_same_engine_api() {
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario("runc").replace("kind = \"container\"", "kind = \"container\"\nengine = \"podman\"");
    let (result, out) = run_scenario(tmp.path(), "podman.toml", &text);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(s.ok, "{s:?}");
        for metric in ["create_ms", "start_ms", "ready_ms", "remove_ms"] {
            assert!(s.metrics[metric] > 0.0, "{metric} in {s:?}");
        }
    }
    let target = &record(&out).targets[0];
    assert_eq!(target.engine.map(|e| e.as_str()), Some("podman"));
    // Podman answers the version call with its own version, not Docker's.
    assert!(
        target
            .engine_version
            .as_deref()
            .is_some_and(|v| v.starts_with('4') || v.starts_with('5')),
        "{target:?}"
    );
    assert!(target.image.as_ref().is_some_and(|i| i.size_bytes > 0), "{target:?}");
}

#[test]
fn a_missing_podman_socket_is_a_preflight_error_naming_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario("runc").replace(
        "kind = \"container\"",
        "kind = \"container\"\nengine = \"podman\"\nhost = \"unix:///nonexistent/podman.sock\"",
    );
    let (result, out) = run_scenario(tmp.path(), "podman.toml", &text);
    assert_eq!(result.status.code(), Some(2), "{}", stdout(&result));
    let err = stderr(&result);
    assert!(
        err.contains("the Podman API at unix:///nonexistent/podman.sock does not answer") && err.contains("podman system service"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn network_and_disk_under_runsc_are_not_applicable_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario("runsc").replace(
        "kind = \"boot\"",
        "kind = \"network\"\nrr_count = 100\nstream_mib = 1\n[[workload]]\nkind = \"disk\"\nfile_mib = 16\nrand_ops = 50\nfsync_ops = 5",
    );
    let (result, out) = run_scenario(tmp.path(), "runsc-na.toml", &text);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    // One sample stands for each pair; the second repetition is not attempted.
    assert_eq!(samples.len(), 2, "{samples:?}");
    let reason = |workload: &str| {
        samples
            .iter()
            .find(|s| s.workload.as_str() == workload)
            .unwrap()
            .not_applicable
            .clone()
            .unwrap()
    };
    // Registered with --network=none (scripts/setup.sh), gVisor has no network.
    assert!(reason("network").contains("--network=none"));
    // gVisor accepts O_DIRECT but caches: disk numbers would measure memory.
    assert!(reason("disk").contains("O_DIRECT"));
    assert!(samples.iter().all(|s| !s.failed()));
    assert_eq!(record(&out).failed_samples, 0);
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["not_applicable"].as_array().unwrap().len(), 2);
}

#[test]
fn an_optional_target_that_cannot_run_here_is_reported_not_applicable() {
    // A runtime the daemon does not have: preflight fails, the run goes on.
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario("nosuchruntime").replace("kind = \"container\"", "kind = \"container\"\noptional = true")
        + "[[target]]\nname = \"native\"\nkind = \"native\"\n";
    let (result, out) = run_scenario(tmp.path(), "optional.toml", &text);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    let ctr: Vec<_> = samples.iter().filter(|s| s.target == "ctr").collect();
    assert_eq!(ctr.len(), 1);
    assert!(
        ctr[0].not_applicable.as_deref().unwrap().contains("no runtime `nosuchruntime`"),
        "{ctr:?}"
    );
    assert_eq!(samples.iter().filter(|s| s.target == "native" && s.ok).count(), 2);
    let facts = &record(&out).targets[0];
    assert!(facts.unavailable.as_deref().unwrap().contains("nosuchruntime"));
}

#[test]
fn podman_refuses_a_runtime_its_compatible_api_would_silently_ignore() {
    // Podman 4.3's Docker-compatible API runs its default runtime whatever a
    // container asks for: asking for runsc would measure runc.
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario("runsc").replace("kind = \"container\"", "kind = \"container\"\nengine = \"podman\"");
    let (result, out) = run_scenario(tmp.path(), "podman-runsc.toml", &text);
    assert_eq!(result.status.code(), Some(2), "{}", stdout(&result));
    let err = stderr(&result);
    assert!(
        err.contains("always runs its default runtime `runc`") && err.contains("containers.conf"),
        "{err}"
    );
    assert!(!out.exists());
}
