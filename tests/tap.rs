//! A VM on a tap network, for real: vmbench makes the bridge and a tap per
//! launch, the guest takes its own address on it, the host reaches the
//! guest there with nothing forwarding in between, and nothing of it is
//! left afterwards; `vmbench clean` removes a tap a killed run left.

mod common;

use common::*;
use vmbench::rundir::WorkloadKind;

fn vmbench_interfaces() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vmbt") || n == "vmbench0")
        .collect()
}

#[test]
fn a_vm_on_a_tap_network_is_reached_at_its_own_address_and_leaves_nothing() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = r#"name = "tap"
repetitions = 2
warmup = 0
timeout_s = 120

[[target]]
name = "vm-tap"
kind = "vm"
accel = "tcg"
network = "tap"

[[target]]
name = "vm-user"
kind = "vm"
accel = "tcg"

[[workload]]
kind = "network"
rr_count = 300
stream_mib = 4
"#;
    let (output, out) = run_scenario(tmp.path(), "tap.toml", scenario);
    assert!(output.status.success(), "{}", stderr(&output));
    let samples = samples(&out);
    for s in samples.iter().filter(|s| s.workload == WorkloadKind::Network) {
        assert!(s.ok, "{}: {:?}", s.target, s.error);
        assert!(s.metrics["tcp_rr_p50_us"] > 0.0 && s.metrics["tcp_stream_gbps"] > 0.0, "{s:?}");
    }
    let record = record(&out);
    let path = |t: &str| record.targets.iter().find(|f| f.name == t).unwrap().settings["network_workload"].clone();
    assert!(
        path("vm-tap").starts_with("tap: virtio-net on a tap device on bridge vmbench0"),
        "{}",
        path("vm-tap")
    );
    assert!(path("vm-user").contains("user network"), "{}", path("vm-user"));
    let tap_reproduce = record.targets.iter().find(|f| f.name == "vm-tap").unwrap();
    assert!(tap_reproduce.reproduce.iter().all(|a| !a.contains("hostfwd")));
    assert!(vmbench_interfaces().is_empty(), "left behind: {:?}", vmbench_interfaces());
    assert!(vmbench_qemu_processes().is_empty());
}

#[test]
fn clean_removes_a_tap_a_killed_run_left() {
    let _serial = serial();
    let ip = |args: &[&str]| {
        let ok = std::process::Command::new("ip").args(args).status().unwrap().success();
        assert!(ok, "ip {args:?}");
    };
    ip(&["tuntap", "add", "dev", "vmbtleft0", "mode", "tap"]);
    ip(&["link", "set", "dev", "vmbtleft0", "alias", "vmbench:20260101T000000Z-dead"]);
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["clean"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed 1 vmbench tap device(s)"), "{}", stdout(&out));
    assert!(!std::path::Path::new("/sys/class/net/vmbtleft0").exists());
}
