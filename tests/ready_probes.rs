//! An image run as it is (`init = "image"`): no agent inside, ready when a
//! probe from the host says so, for real against the Docker daemon. The
//! image's own command is vmbench's agent binary started by the image with
//! instructions of its own (a stand-in service that prints lines and
//! listens on a port): vmbench does not talk to it, it only probes it.

mod common;

use common::*;

/// A Dockerfile whose command is a service: listens on 7777, says so on its
/// output, and waits.
fn service_dockerfile(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("service"), vmbench::guest::agent::bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("service"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY service /service\n\
         CMD [\"/service\", \"vmbench.nonce=svc\", \"vmbench.workload=network\", \"vmbench.listen=0.0.0.0:7777\"]\n",
    )
    .unwrap();
}

fn scenario(timeout_s: u32) -> String {
    format!(
        r#"name = "probes"
repetitions = 2
warmup = 0
timeout_s = {timeout_s}

[[guest]]
name = "by-port"
dockerfile = "svc/Dockerfile"
init = "image"
ready = {{ tcp = 7777 }}

[[guest]]
name = "by-line"
dockerfile = "svc/Dockerfile"
init = "image"
ready = {{ console = '"type":"listening"' }}

[[guest]]
name = "never"
dockerfile = "svc/Dockerfile"
init = "image"
ready = {{ console = "this line never comes" }}

[[target]]
name = "tcp"
kind = "container"
guest = "by-port"

[[target]]
name = "console"
kind = "container"
guest = "by-line"

[[target]]
name = "never"
kind = "container"
guest = "never"

[[workload]]
kind = "boot"

[[workload]]
kind = "syscall"
"#
    )
}

#[test]
fn an_image_without_the_agent_is_ready_when_its_probe_says_so() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    service_dockerfile(&tmp.path().join("svc"));
    let (out, run) = run_scenario(tmp.path(), "probes.toml", &scenario(5));
    // The target whose probe never succeeds fails its samples; the run goes on.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let samples = samples(&run);
    let boot = |t: &str| -> Vec<&vmbench::rundir::Sample> {
        samples
            .iter()
            .filter(|s| s.target == t && s.workload == vmbench::rundir::WorkloadKind::Boot)
            .collect()
    };
    for target in ["tcp", "console"] {
        let trials = boot(target);
        assert_eq!(trials.len(), 2, "{target}");
        for s in trials {
            assert!(s.ok, "{target}: {:?}", s.error);
            let m = &s.metrics;
            // Ready after the start call, and the container removed by vmbench after.
            assert!(m["ready_ms"] > m["create_ms"], "{target}: {m:?}");
            assert!(m["exit_ms"] >= m["ready_ms"] && m.contains_key("remove_ms"), "{target}: {m:?}");
            assert!(m["mem_ready_bytes"] > 0.0, "{target}: {m:?}");
        }
        // No agent in it: the other workloads do not apply, they do not fail.
        let syscall = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Syscall)
            .unwrap();
        assert!(syscall.not_applicable.as_deref().is_some_and(|r| r.contains("init = \"image\"")));
    }
    for s in boot("never") {
        let error = s.error.as_deref().unwrap_or_default();
        assert!(!s.ok && error.contains("timed out before the ready probe succeeded"), "{error}");
        assert!(
            error.contains("console:this line never comes") && error.contains("\"type\":\"listening\""),
            "{error}"
        );
    }
    let record = record(&run);
    assert_eq!(containers_of_run(&record.run_id), 0, "every container removed");
    let facts = record.targets.iter().find(|t| t.name == "tcp").unwrap();
    let guest = facts.guest.as_ref().unwrap();
    assert_eq!(guest.init, "image");
    assert_eq!(guest.ready, "tcp:7777");
    assert_eq!(facts.settings["network"], "bridge");
    // The base image, run as it is: vmbench added nothing to it.
    assert_eq!(facts.image.as_ref().unwrap().id, guest.base_image.as_ref().unwrap().id);
    // Clean up the image the Dockerfile built (the same for the three guests).
    remove_images(&[guest.base_image.as_ref().unwrap().reference.clone()]);
}

/// A full system ready when its service answers, not when its init says so:
/// the Debian tree with nginx (the definition tests/apps.rs builds, so the
/// cache holds one tree) booting systemd as a TCG microVM (its NIC set up by
/// DHCP on QEMU's user network, asked for on the kernel command line) and
/// as a Docker container, ready when nginx answers `GET /` through the
/// target's network path. The agent's unit in it is told nothing and stays
/// quiet; the workloads that need it are not applicable.
#[test]
fn a_systemd_guest_is_ready_when_its_nginx_answers_as_a_vm_and_as_a_container() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let text = r#"name = "web-ready"
repetitions = 1
warmup = 0
timeout_s = 150

[[guest]]
name = "web"
rootfs = { distro = "debian", suite = "bookworm", packages = ["nginx", "mariadb-server"] }
init = "systemd"
ready = { http = "/" }

[[target]]
name = "vm"
kind = "vm"
guest = "web"
accel = "tcg"
memory_mib = 512

[[target]]
name = "ctr"
kind = "container"
guest = "web"

[[workload]]
kind = "boot"

[[workload]]
kind = "syscall"
"#;
    let (out, run) = run_scenario(dir.path(), "web.toml", text);
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = samples(&run);
    for target in ["vm", "ctr"] {
        let boot = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Boot)
            .unwrap();
        assert!(boot.ok, "{target}: {:?}", boot.error);
        assert!(boot.metrics["ready_ms"] > 0.0, "{target}: {:?}", boot.metrics);
        let syscall = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Syscall)
            .unwrap();
        assert!(
            syscall
                .not_applicable
                .as_deref()
                .is_some_and(|r| r.contains("ready by its `ready` probe")),
            "{syscall:?}"
        );
    }
    let vm = median(&samples, "vm", "ready_ms");
    let ctr = median(&samples, "ctr", "ready_ms");
    assert!(vm > ctr, "a TCG VM boots a kernel first: vm {vm} ms, container {ctr} ms");
    let record = record(&run);
    for facts in &record.targets {
        assert_eq!(facts.guest.as_ref().map(|g| g.ready.as_str()), Some("http:80/=200"));
        let repro = facts.reproduce.join(" ");
        assert!(!repro.contains("vmbench.nonce"), "no instructions: {repro}");
    }
    let vm = record.targets.iter().find(|t| t.name == "vm").unwrap();
    assert!(vm.kernel_cmdline.as_deref().unwrap().contains("ip=dhcp"), "{vm:?}");
    assert!(vm.settings["ready_probe"].contains("guest port 80"), "{vm:?}");
    for facts in &record.targets {
        let resolution = &facts.settings["ready_probe_resolution"];
        assert!(
            resolution.contains("2 ms after a refusal") && resolution.contains("every 20 ms"),
            "{resolution}"
        );
    }
}
