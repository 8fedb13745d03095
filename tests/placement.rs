//! Every target runs on the scenario's CPUs and is accounted by a cgroup,
//! checked from the host while the trials run: the affinity of every
//! thread of QEMU, of the container's agent and of the native agent; and in
//! the results, cgroup memory and host CPU time for all three. The container's
//! network workload reaches it on its bridge address, without a proxy.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// `Cpus_allowed_list` of every thread of process `pid`.
fn thread_cpus(pid: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        })
        .collect()
}

/// What kind of target process `pid` is, if it is one started by vmbench
/// (a trial or the container runtime's probe), and its command line.
fn target_kind(pid: &str) -> Option<(&'static str, String)> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).replace('\0', " ");
    if !cmdline.contains("vmbench.nonce=") {
        return None;
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let kind = match comm.trim() {
        c if c.starts_with("qemu-system") => "vm",
        "vmbench-agent" if cgroup.contains("docker") => "ctr",
        "vmbench-agent" => "native",
        _ => return None,
    };
    Some((kind, cmdline))
}

#[test]
fn targets_run_on_the_cpuset_and_are_accounted_by_cgroups() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("one CPU: nothing to pin; skipped");
        return;
    }
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("placement", 2, 0, 120.0)
        // No `accounting` key: cgroups are the default.
        .replace("timeout_s = 120", "timeout_s = 120\ncpuset = \"1\"")
        .replace(
            "[[workload]]\nkind = \"boot\"\n",
            "[[workload]]\nkind = \"cpu\"\nsha_mib = 32\nmatrix_n = 64\nmatrix_reps = 1\nthreads = 1\n\
             [[workload]]\nkind = \"network\"\nrr_count = 200\nstream_mib = 8\n",
        )
        .replace(
            "name = \"ctr\"\nkind = \"container\"",
            "name = \"ctr\"\nkind = \"container\"\nnetwork = \"bridge\"",
        );
    let scenario = write(tmp.path(), "placement.toml", &text);
    let out = tmp.path().join("run");
    let mut child = spawn_run(tmp.path(), &scenario, &out);
    let mut seen: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    let mut strays = Vec::new();
    let mut proxies = false;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(300) {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if let Some((kind, cmdline)) = target_kind(&pid) {
                let cpus = thread_cpus(&pid);
                if cpus.iter().any(|c| c != "1") {
                    strays.push(format!("{kind} {cpus:?}: {cmdline}"));
                }
                seen.entry(kind).or_default().extend(cpus);
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            proxies |= comm.trim() == "docker-proxy";
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success(), "the run failed");
    for kind in ["vm", "ctr", "native"] {
        let cpus = seen
            .get(kind)
            .unwrap_or_else(|| panic!("never saw a {kind} target running: {seen:?}"));
        assert_eq!(
            cpus.iter().collect::<Vec<_>>(),
            ["1"],
            "{kind}: every thread on CPU 1; off it: {strays:#?}"
        );
    }
    let record = record(&out);
    assert_eq!(record.scenario.cpuset.as_deref(), Some("1"));
    assert_eq!(record.scenario.harness_cpuset.as_deref(), Some("0"));
    assert!(record.targets.iter().all(|t| t.cpuset.as_deref() == Some("1")));
    let samples = samples(&out);
    for target in ["vm", "ctr", "native"] {
        let cpu = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Cpu && s.ok)
            .unwrap_or_else(|| panic!("no good cpu sample of {target}"));
        assert!(cpu.metrics["host_cpu_ms"] > 10.0, "{target}: {:?}", cpu.metrics);
        assert!(cpu.metrics["mem_peak_bytes"] > 1e5, "{target}: {:?}", cpu.metrics);
        assert!(cpu.metrics.contains_key("mem_ready_bytes"), "{target}: {:?}", cpu.metrics);
        // The migration into vmbench's cgroup is timed and left out of the
        // launch's clock; a container's engine makes its own.
        assert_eq!(
            cpu.metrics.get("cgroup_join_ms").is_some_and(|&ms| ms > 0.0),
            target != "ctr",
            "{target}: {:?}",
            cpu.metrics
        );
    }
    for t in record.targets.iter().filter(|t| t.name != "ctr") {
        assert!(
            t.settings["accounting"].contains("in a cgroup of its own made by vmbench"),
            "{:?}",
            t.settings
        );
    }
    let net = samples
        .iter()
        .find(|s| s.target == "ctr" && s.workload == vmbench::rundir::WorkloadKind::Network)
        .unwrap();
    assert!(net.ok && net.metrics["tcp_rr_p50_us"] > 0.0, "{net:?}");
    let ctr = record.targets.iter().find(|t| t.name == "ctr").unwrap();
    assert_eq!(ctr.settings["network_workload"], "bridge");
    assert!(!proxies, "the bridge path needs no docker-proxy, yet one ran during the run");
    // The cgroups vmbench made for QEMU and the agent are gone.
    for root in [
        "/sys/fs/cgroup/memory/vmbench",
        "/sys/fs/cgroup/cpuacct/vmbench",
        "/sys/fs/cgroup/vmbench",
    ] {
        assert!(
            !std::path::Path::new(root).join(&record.run_id).exists(),
            "{root}/{} left",
            record.run_id
        );
    }
}
