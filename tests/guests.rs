//! Guest systems, for real: a Debian root file system built with mmdebstrap
//! (once; later runs find it in vmbench's cache), booted as a VM under TCG
//! with systemd and with the agent as init, and run as a Docker container
//! with systemd as PID 1 and with the agent as its entrypoint (and under
//! Podman with systemd as PID 1), each also
//! running the network workload. Ready means what the guest's init says,
//! and systemd's own phases are recorded.

mod common;

use common::*;

const SCENARIO: &str = r#"name = "guests"
repetitions = 1
warmup = 0
timeout_s = 180

[[guest]]
name = "debian"
rootfs = { distro = "debian", suite = "bookworm" }
init = "systemd"

[[guest]]
name = "debian-agent"
rootfs = { distro = "debian", suite = "bookworm" }
init = "agent"

[[target]]
name = "vm-systemd"
kind = "vm"
guest = "debian"
accel = "tcg"
memory_mib = 512

[[target]]
name = "vm-agent"
kind = "vm"
guest = "debian-agent"
accel = "tcg"
memory_mib = 512

[[target]]
name = "ctr-systemd"
kind = "container"
guest = "debian"

[[target]]
name = "ctr-agent"
kind = "container"
guest = "debian-agent"

[[target]]
name = "podman-systemd"
kind = "container"
engine = "podman"
guest = "debian"

[[workload]]
kind = "boot"

[[workload]]
kind = "network"
rr_count = 300
stream_mib = 4
"#;

use vmbench::rundir::WorkloadKind::{Boot, Disk};

fn metric(samples: &[vmbench::rundir::Sample], target: &str, name: &str) -> f64 {
    metric_of(samples, target, Boot, name)
}

fn metric_of(samples: &[vmbench::rundir::Sample], target: &str, workload: vmbench::rundir::WorkloadKind, name: &str) -> f64 {
    let sample = samples
        .iter()
        .find(|s| s.target == target && s.workload == workload)
        .unwrap_or_else(|| panic!("no {workload} sample of {target}"));
    *sample
        .metrics
        .get(name)
        .unwrap_or_else(|| panic!("{target}: no {name} in {:?}", sample.metrics))
}

/// The copies of import bodies Podman's compatible API leaves in /var/tmp.
fn podman_import_copies() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/var/tmp")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("api_load.tar"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_debian_tree_boots_as_a_vm_and_runs_as_a_container_with_systemd_and_without() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    // Podman imports the tree afresh, so its import is what this run does.
    with_engine(vmbench::scenario::Engine::Podman, |podman| async move {
        vmbench::backend::docker::image::remove_guest_images(&podman).await.unwrap()
    });
    let podman_leftovers_before = podman_import_copies();
    let (out, run) = run_scenario(tmp.path(), "guests.toml", SCENARIO);
    assert!(out.status.success(), "{}", stderr(&out));
    // Podman's compatible import copies a request body into /var/tmp and
    // never removes it; vmbench hands it a file instead and removes that.
    assert_eq!(podman_import_copies(), podman_leftovers_before, "a tree's copy left in /var/tmp");
    let samples = samples(&run);
    for s in &samples {
        let ran = s.ok || s.not_applicable.is_some();
        assert!(ran, "{} {}: {:?}", s.target, s.workload, s.error);
    }
    // The network workload ran against every guest, under systemd too: the
    // guest VM's NIC found whatever its name, its driver loaded from the
    // tree's own modules where no udev runs.
    for target in ["vm-systemd", "vm-agent", "ctr-systemd", "ctr-agent", "podman-systemd"] {
        let network = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Network)
            .unwrap_or_else(|| panic!("{target}: no network sample"));
        assert!(network.ok && network.metrics["tcp_rr_p50_us"] > 0.0, "{target}: {network:?}");
    }
    // Ready under systemd is after multi-user.target, with systemd's phases
    // inside it; the same tree with the agent as init is ready much sooner.
    let (ready, kernel, userspace) = (
        metric(&samples, "vm-systemd", "ready_ms"),
        metric(&samples, "vm-systemd", "kernel_ms"),
        metric(&samples, "vm-systemd", "userspace_ms"),
    );
    assert!(
        kernel > 0.0 && userspace > 0.0 && ready > kernel + userspace,
        "{ready} {kernel} {userspace}"
    );
    assert!(metric(&samples, "vm-agent", "ready_ms") < ready);
    // The same tree under systemd through either engine (Podman imports it
    // through its Docker-compatible API too).
    for ctr in ["ctr-systemd", "podman-systemd"] {
        let userspace = metric(&samples, ctr, "userspace_ms");
        assert!(userspace > 0.0 && metric(&samples, ctr, "ready_ms") > userspace, "{ctr}");
    }
    assert!(
        !samples
            .iter()
            .any(|s| s.target.starts_with("ctr") && s.metrics.contains_key("kernel_ms")),
        "a container has no kernel phase of its own"
    );
    // The VM runs the kernel installed in the tree, the container the host's.
    let boot = |t: &str| {
        samples
            .iter()
            .find(|s| s.target == t && s.workload == vmbench::rundir::WorkloadKind::Boot)
            .unwrap()
    };
    let guest_kernel = boot("vm-systemd").agent_kernel.clone().unwrap();
    assert!(guest_kernel.ends_with("-cloud-amd64"), "{guest_kernel}");
    assert_ne!(boot("ctr-systemd").agent_kernel.as_deref(), Some(guest_kernel.as_str()));

    let record = record(&run);
    let facts = |t: &str| record.targets.iter().find(|f| f.name == t).unwrap();
    let vm = facts("vm-systemd").guest.clone().expect("the VM's guest facts");
    assert_eq!((vm.init.as_str(), vm.suite.as_str()), ("systemd", "bookworm"));
    let (disk, allocated) = (vm.disk_bytes.unwrap(), vm.disk_allocated_bytes.unwrap());
    assert!(
        disk >= allocated && allocated > vm.tree_bytes / 2,
        "{disk} {allocated} {}",
        vm.tree_bytes
    );
    // The same tree, the same key, for the VM and the container.
    assert!(
        !facts("podman-systemd").image.as_ref().unwrap().reused,
        "Podman's image was imported"
    );
    let ctr = facts("ctr-systemd");
    assert_eq!(ctr.guest.as_ref().unwrap().rootfs_key, vm.rootfs_key);
    assert!(ctr.image.as_ref().unwrap().tag.starts_with("vmbench/rootfs:"));
    assert_eq!(ctr.settings["cap_add"], "SYS_ADMIN,DAC_OVERRIDE");
    assert_eq!(
        facts("ctr-agent").settings.get("cap_add"),
        None,
        "the agent as PID 1 needs nothing more"
    );
    assert!(facts("vm-agent")
        .kernel_cmdline
        .as_deref()
        .unwrap()
        .contains("init=/usr/local/sbin/vmbench-agent"));
    assert_eq!(containers_of_run(&record.run_id), 0);
    assert!(vmbench_qemu_processes().is_empty());

    // Nothing half-built in the cache, and a second run builds nothing.
    let cache = vmbench::cache::dir().join("rootfs").join(&vm.rootfs_key);
    let temporaries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let text = SCENARIO
        .replace("kind = \"vm\"", "kind = \"vm\"\noptional = true")
        .replace("[[workload]]\nkind = \"network\"\nrr_count = 300\nstream_mib = 4\n", "");
    let only_containers: String = text
        .split("[[target]]")
        .filter(|part| !part.contains("kind = \"vm\""))
        .collect::<Vec<_>>()
        .join("[[target]]");
    let (out, run) = run_scenario(&again, "again.toml", &only_containers);
    assert!(out.status.success(), "{}", stderr(&out));
    let record = common::record(&run);
    for t in &record.targets {
        let g = t.guest.as_ref().unwrap();
        assert_eq!((g.build_ms, g.disk_build_ms), (None, None), "{}: rebuilt", t.name);
        assert!(t.image.as_ref().unwrap().reused, "{}: image imported again", t.name);
    }
}

#[test]
fn the_same_disk_boots_through_bios_and_uefi_firmware() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "name = \"firmware\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = 240\n\n\
         [[guest]]\nname = \"debian\"\nrootfs = { suite = \"bookworm\" }\n\n\
         [[guest]]\nname = \"debian-agent\"\nrootfs = { suite = \"bookworm\" }\ninit = \"agent\"\n",
    );
    for (name, guest, boot) in [
        ("bios", "debian", "bios"),
        ("uefi", "debian", "uefi"),
        ("uefi-agent", "debian-agent", "uefi"),
    ] {
        text.push_str(&format!(
            "\n[[target]]\nname = \"{name}\"\nkind = \"vm\"\nguest = \"{guest}\"\nmachine = \"q35\"\n\
             accel = \"tcg\"\nboot = \"{boot}\"\nmemory_mib = 512\n"
        ));
    }
    // The disk workload: a guest system finds the scratch disk beside its
    // own root disk by its serial, whatever the boot path.
    text.push_str("\n[[workload]]\nkind = \"disk\"\nfile_mib = 16\nblock_kib = 256\nrand_ops = 200\nfsync_ops = 20\n");
    let (out, run) = run_scenario(tmp.path(), "firmware.toml", &text);
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = samples(&run);
    for s in &samples {
        assert!(s.ok, "{}: {:?}", s.target, s.error);
    }
    // Firmware and the bootloader run before the kernel: the time before the
    // guest kernel's clock starts is seconds under TCG, not QEMU's start-up.
    for target in ["bios", "uefi", "uefi-agent"] {
        assert!(metric_of(&samples, target, Disk, "pre_kernel_ms") > 1000.0, "{target}");
        assert!(metric_of(&samples, target, Disk, "rand_read_iops") > 0.0, "{target}");
    }
    // systemd reports firmware and loader phases only where it can read the
    // loader's EFI variables early, which Debian's cloud kernel (efivarfs as
    // a module) and initramfs-tools do not allow: never under BIOS.
    assert!(samples.iter().all(|s| s.target != "bios" || !s.metrics.contains_key("loader_ms")));
    let record = record(&run);
    let facts = |t: &str| record.targets.iter().find(|f| f.name == t).unwrap();
    assert_eq!(facts("bios").settings["boot"], "bios");
    assert!(facts("uefi").reproduce.iter().any(|a| a == "-bios"));
    let disk = |t: &str| facts(t).guest.clone().unwrap().disk_bytes;
    assert_eq!(disk("bios"), disk("uefi"), "the same disk");
    assert!(facts("uefi-agent").kernel_cmdline.as_deref().unwrap().contains("init="));
}

#[test]
fn clean_cache_removes_the_built_guests() {
    let _serial = serial();
    let cache = tempfile::tempdir().unwrap();
    let tree = cache.path().join("rootfs/0123/base/etc");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("hostname"), "vm\n").unwrap();
    let out = vmbench()
        .env("VMBENCH_CACHE_DIR", cache.path())
        .args(["clean", "--cache"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cache.path().join("rootfs").exists(), "{}", stdout(&out));
    assert!(stdout(&out).contains("no minimal kernels in"), "{}", stdout(&out));
    assert!(stdout(&out).contains("guest image(s) from Docker"), "{}", stdout(&out));
}
