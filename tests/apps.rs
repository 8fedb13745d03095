//! The application workloads, for real: Debian's nginx and MariaDB in a VM
//! (TCG, booted from the guest disk, on QEMU's user network and on a tap),
//! in Docker containers on every network path, and the host's own natively,
//! driven by vmbench's load generators for a second each. One guest tree
//! with both packages serves both tests, so the cache holds one build.

mod common;

use common::*;
use vmbench::rundir::{Sample, WorkloadKind};

const GUEST: &str = r#"
[[guest]]
name = "apps"
rootfs = { distro = "debian", suite = "bookworm", packages = ["nginx", "mariadb-server"] }
init = "agent"
"#;

fn sample<'a>(samples: &'a [Sample], target: &str, kind: WorkloadKind) -> &'a Sample {
    samples
        .iter()
        .find(|s| s.target == target && s.workload == kind && !s.warmup)
        .unwrap_or_else(|| panic!("no {kind} sample of {target}"))
}

fn metric(s: &Sample, name: &str) -> f64 {
    *s.metrics
        .get(name)
        .unwrap_or_else(|| panic!("{}: no {name} in {:?}", s.target, s.metrics))
}

/// Processes whose command name is `name`, with their command lines.
fn processes(name: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

/// The CPU ticks (utime + stime) of every docker-proxy process by the host
/// address it listens on, the largest seen per process, polled while `child`
/// runs.
fn watch_proxies(child: &mut std::process::Child) -> std::collections::BTreeMap<String, u64> {
    let mut ticks: std::collections::BTreeMap<u32, (String, u64)> = Default::default();
    while child.try_wait().unwrap().is_none() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim() != "docker-proxy" {
                continue;
            }
            let cmdline = String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
            let host_ip = cmdline
                .split_whitespace()
                .skip_while(|a| *a != "-host-ip")
                .nth(1)
                .unwrap_or("?")
                .to_string();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split_whitespace().collect();
            if fields.len() > 12 {
                let t = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
                let e = ticks.entry(pid).or_insert((host_ip, 0));
                e.1 = e.1.max(t);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut by_ip = std::collections::BTreeMap::new();
    for (ip, t) in ticks.into_values() {
        *by_ip.entry(ip).or_insert(0) += t;
    }
    by_ip
}

fn nat_rules() -> usize {
    let out = std::process::Command::new("iptables").args(["-t", "nat", "-S"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("DNAT")).count())
        .unwrap_or(0)
}

#[test]
fn nginx_in_a_vm_in_containers_on_every_path_and_natively() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"name = "apps-http"
repetitions = 1
warmup = 0
timeout_s = 300
accounting = "cgroup"
{GUEST}
[[target]]
name = "vm-user"
kind = "vm"
guest = "apps"
accel = "tcg"
memory_mib = 512

[[target]]
name = "vm-tap"
kind = "vm"
guest = "apps"
accel = "tcg"
memory_mib = 512
network = "tap"

[[target]]
name = "ctr-published"
kind = "container"
guest = "apps"
network = "published"

[[target]]
name = "ctr-nat"
kind = "container"
guest = "apps"
network = "published-nat"

[[target]]
name = "ctr-bridge"
kind = "container"
guest = "apps"
network = "bridge"

[[target]]
name = "ctr-host"
kind = "container"
guest = "apps"
network = "host"

[[target]]
name = "native"
kind = "native"

# vmbench's minimal guest has no nginx: not applicable, not a failure.
[[target]]
name = "ctr-minimal"
kind = "container"

[[workload]]
kind = "http"
duration_s = 1
warmup_s = 0
connections = 4
rate = 300
"#
    );
    let path = write(tmp.path(), "http.toml", &scenario);
    let out = tmp.path().join("out");
    let rules_before = nat_rules();
    let mut child = spawn_run(tmp.path(), &path, &out);
    let proxies = watch_proxies(&mut child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let samples = samples(&out);
    for target in ["vm-user", "vm-tap", "ctr-published", "ctr-nat", "ctr-bridge", "ctr-host", "native"] {
        let s = sample(&samples, target, WorkloadKind::Http);
        assert!(s.ok, "{target}: {:?}", s.error);
        assert!(metric(s, "http_rps") > 0.0, "{target}");
        assert_eq!(metric(s, "http_errors_count"), 0.0, "{target}");
        assert!(metric(s, "http_p50_us") <= metric(s, "http_p99_us"), "{target}");
        assert!(metric(s, "http_open_achieved_rps") > 0.0, "{target}");
        assert!(metric(s, "server_ready_ms") > 0.0, "{target}");
        assert!(metric(s, "server_cpu_ms") >= 0.0, "{target}");
        let server = s.server.as_ref().unwrap_or_else(|| panic!("{target}: no server facts"));
        assert_eq!(server.name, "nginx");
        assert!(server.version.as_deref().unwrap_or("").contains("nginx"), "{server:?}");
        assert!(server.data_fs.is_some(), "{server:?}");
        // Host CPU per request where the target's CPU is sampled: all of
        // them under cgroup accounting.
        assert!(metric(s, "host_cpu_per_request_us") > 0.0, "{target}");
    }
    let minimal = sample(&samples, "ctr-minimal", WorkloadKind::Http);
    assert!(minimal.not_applicable.as_deref().unwrap_or("").contains("no nginx"), "{minimal:?}");
    // Every path is recorded with its target.
    let record = record(&out);
    let path_of = |t: &str| {
        record
            .targets
            .iter()
            .find(|f| f.name == t)
            .and_then(|f| f.settings.get("network_workload").cloned())
    };
    assert_eq!(path_of("ctr-nat").as_deref(), Some("published-nat"));
    assert_eq!(path_of("ctr-published").as_deref(), Some("published"));
    // The proxy carried the published path and not the NAT path: its CPU
    // time grows with every request it relays.
    let on_loopback = proxies.get("127.0.0.1").copied().unwrap_or(0);
    let on_gateway: u64 = proxies.iter().filter(|(ip, _)| ip.as_str() != "127.0.0.1").map(|(_, t)| *t).sum();
    assert!(on_loopback >= 5, "docker-proxy on 127.0.0.1 relayed little: {proxies:?}");
    assert!(on_gateway * 5 < on_loopback, "the NAT path went through docker-proxy: {proxies:?}");
    // Nothing left behind: no nginx, no container, no NAT rule, no QEMU.
    assert!(processes("nginx").is_empty(), "{:?}", processes("nginx"));
    assert_eq!(containers_of_run(&record.run_id), 0);
    assert_eq!(nat_rules(), rules_before, "NAT rules left behind");
    assert!(vmbench_qemu_processes().is_empty());
    assert!(no_server_dirs("nginx"), "an nginx directory was left in /tmp");
    let devices: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vmbt") || n == "vmbench0")
        .collect();
    assert!(devices.is_empty(), "network devices left: {devices:?}");
}

/// Docker's volumes, by name.
fn volumes() -> Vec<String> {
    let out = std::process::Command::new("docker").args(["volume", "ls", "-q"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// Whether no server directory of the agent's is left in /tmp.
fn no_server_dirs(name: &str) -> bool {
    let prefix = format!("vmbench-{name}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with(&prefix))
}

#[test]
fn mariadb_in_a_vm_a_container_and_natively() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"name = "apps-sql"
repetitions = 1
warmup = 0
timeout_s = 600
accounting = "cgroup"
{GUEST}
[[target]]
name = "vm-user"
kind = "vm"
guest = "apps"
accel = "tcg"
memory_mib = 1024

[[target]]
name = "ctr-bridge"
kind = "container"
guest = "apps"
network = "bridge"
memory_mib = 1024

[[target]]
name = "ctr-volume"
kind = "container"
guest = "apps"
network = "bridge"
memory_mib = 1024
storage = "volume"

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "sql"
duration_s = 1
warmup_s = 0
clients = 2
table_rows = 1000
"#
    );
    let volumes_before = volumes();
    let (output, out) = run_scenario(tmp.path(), "sql.toml", &scenario);
    assert!(output.status.success(), "{}", stderr(&output));
    let samples = samples(&out);
    for target in ["vm-user", "ctr-bridge", "ctr-volume", "native"] {
        let s = sample(&samples, target, WorkloadKind::Sql);
        assert!(s.ok, "{target}: {:?}", s.error);
        assert!(metric(s, "sql_point_tps") > 0.0, "{target}");
        assert!(metric(s, "sql_rw_tps") > 0.0, "{target}");
        assert_eq!(metric(s, "sql_point_errors_count"), 0.0, "{target}");
        assert!(metric(s, "sql_point_p50_us") <= metric(s, "sql_point_p99_us"), "{target}");
        assert!(metric(s, "server_init_ms") > 0.0, "{target}");
        let server = s.server.as_ref().unwrap_or_else(|| panic!("{target}: no server facts"));
        assert_eq!(server.name, "mariadb");
        assert!(!server.settings.is_empty(), "{server:?}");
    }
    // The layer is overlay; the volume is the host's own file system.
    let fs = |t: &str| sample(&samples, t, WorkloadKind::Sql).server.as_ref().unwrap().data_fs.clone();
    assert_eq!(fs("ctr-bridge").as_deref(), Some("overlay"));
    assert!(fs("ctr-volume").is_some_and(|f| f != "overlay"), "{:?}", fs("ctr-volume"));
    assert_eq!(volumes(), volumes_before, "the launch's volume was left behind");
    let record = record(&out);
    assert!(processes("mariadbd").is_empty(), "{:?}", processes("mariadbd"));
    assert_eq!(containers_of_run(&record.run_id), 0);
    assert!(vmbench_qemu_processes().is_empty());
    assert!(no_server_dirs("mariadb"), "a MariaDB directory was left in /tmp");
}

#[test]
fn ctrl_c_during_a_native_http_trial_leaves_no_server_and_no_files() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = r#"name = "apps-interrupted"
repetitions = 1
warmup = 0
timeout_s = 300

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "http"
duration_s = 60
warmup_s = 0
connections = 2
"#;
    let path = write(tmp.path(), "http.toml", scenario);
    let out = tmp.path().join("out");
    let mut child = spawn_run(tmp.path(), &path, &out);
    // Until nginx serves from the launch's own directory.
    let started = std::time::Instant::now();
    while !processes("nginx").iter().any(|c| c.contains("vmbench-run-")) {
        assert!(started.elapsed().as_secs() < 60, "nginx never started");
        assert!(child.try_wait().unwrap().is_none(), "vmbench ended before nginx started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted run does not exit 0");
    let left: Vec<String> = processes("nginx").into_iter().filter(|c| c.contains("vmbench-run-")).collect();
    assert!(left.is_empty(), "nginx left running: {left:?}");
    let record = record(&out);
    let prefix = format!("vmbench-run-{}-", record.run_id);
    let dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(dirs.is_empty(), "left in /tmp: {dirs:?}");
}
