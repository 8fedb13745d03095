//! A VM disk image of the user's own (`[[guest]] disk = ...`), for real: a
//! qcow2 overlay (made with qemu-img) over the Debian disk vmbench built for
//! a guest with nginx, booted as it is under TCG by SeaBIOS, by OVMF, and
//! directly with the tree's kernel and initramfs. No agent is told anything:
//! ready is the serial console's `login:` prompt, or an HTTP answer from the
//! guest's nginx through a forwarded port on QEMU's user network. A disk
//! that never becomes ready is a failed sample with its last console lines,
//! and the image is never written.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The same definition as tests/apps.rs, so the cache holds one tree.
const GUEST: &str = r#"rootfs = { distro = "debian", suite = "bookworm", packages = ["nginx", "mariadb-server"] }"#;

/// What vmbench built for the guest: its bootable disk, kernel and initramfs.
struct Built {
    disk: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

/// Runs the guest once as vmbench's own systemd VM, which builds (or finds)
/// its disk, and reads where everything is from `run.json`.
fn vmbench_disk(dir: &Path) -> Built {
    let text = format!(
        "name = \"prep\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = 240\n\n[[guest]]\nname = \"web\"\n{GUEST}\n\n\
         [[target]]\nname = \"vm\"\nkind = \"vm\"\nguest = \"web\"\naccel = \"tcg\"\nmemory_mib = 512\n\n\
         [[workload]]\nkind = \"boot\"\n"
    );
    let (out, run) = run_scenario(dir, "prep.toml", &text);
    assert!(out.status.success(), "{}", stderr(&out));
    let facts = record(&run).targets.remove(0);
    std::fs::remove_dir_all(&run).unwrap();
    let drive = facts
        .reproduce
        .iter()
        .find_map(|a| a.strip_prefix("file=").filter(|_| a.contains("id=root")))
        .expect("a root drive");
    Built {
        disk: PathBuf::from(drive.split(",format=").next().unwrap()),
        kernel: PathBuf::from(&facts.kernel.unwrap().path),
        initrd: PathBuf::from(&facts.initramfs.unwrap().path),
    }
}

fn sha256(path: &Path) -> String {
    vmbench::guest::sha256_file(path).unwrap()
}

/// QEMU processes that have `disk` open, by command line.
fn qemus_on(disk: &Path) -> Vec<String> {
    let name = disk.to_str().unwrap();
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains("qemu-system") && p.cmdline.contains(name) && !p.zombie)
        .map(|p| p.cmdline)
        .collect()
}

#[test]
fn a_disk_of_your_own_boots_by_bios_uefi_and_directly_ready_by_console_and_http() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let built = vmbench_disk(dir.path());
    let overlay = dir.path().join("mine.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&built.disk)
        .arg(&overlay)
        .output()
        .expect("qemu-img runs (scripts/setup.sh installs qemu-utils)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let before = sha256(&overlay);
    // The tree enables no network of its own: systemd's generator turns
    // `ip=dhcp` into a unit for its networkd, which asks slirp's DHCP (what
    // vmbench passes a tree of its own that is probed on a port).
    let text = format!(
        r#"name = "own-disk"
repetitions = 1
warmup = 0
timeout_s = 150

[[guest]]
name = "mine"
disk = "mine.qcow2"
ready = {{ console = "login:" }}

[[guest]]
name = "mine-web"
disk = "mine.qcow2"
ready = {{ http = "/" }}

[[target]]
name = "bios"
kind = "vm"
guest = "mine"
accel = "tcg"
memory_mib = 512

[[target]]
name = "uefi"
kind = "vm"
guest = "mine"
boot = "uefi"
accel = "tcg"
memory_mib = 512

[[target]]
name = "direct-http"
kind = "vm"
guest = "mine-web"
accel = "tcg"
memory_mib = 512
kernel = "{kernel}"
initrd = "{initrd}"
kernel_args = ["root=LABEL=vmbench-root", "rw", {network}]

[[workload]]
kind = "boot"

[[workload]]
kind = "cpu"
"#,
        kernel = built.kernel.display(),
        initrd = built.initrd.display(),
        network = vmbench::backend::qemu::PROBE_NETWORK_ARGS
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let (out, run) = run_scenario(dir.path(), "disk.toml", &text);
    assert!(out.status.success(), "{}", stderr(&out));
    let samples = samples(&run);
    for target in ["bios", "uefi", "direct-http"] {
        let sample = samples
            .iter()
            .find(|s| s.target == target && s.workload == vmbench::rundir::WorkloadKind::Boot)
            .unwrap_or_else(|| panic!("no boot sample of {target}"));
        assert!(sample.ok, "{target}: {:?}", sample.error);
        let ready = sample.metrics["ready_ms"];
        // Firmware, a kernel and systemd under TCG: seconds, not less.
        assert!(ready > 2000.0 && ready < 150_000.0, "{target}: ready_ms {ready}");
    }
    for cpu in samples.iter().filter(|s| s.workload == vmbench::rundir::WorkloadKind::Cpu) {
        let why = cpu.not_applicable.as_deref().unwrap_or_default();
        assert!(
            why.contains("only the boot workload applies"),
            "no agent runs the cpu workload: not applicable, not failed: {cpu:?}"
        );
    }
    let record = record(&run);
    for facts in &record.targets {
        let guest = facts.guest.as_ref().expect("guest facts");
        let disk = guest.disk_image.as_ref().expect("disk facts");
        assert_eq!(guest.source.as_str(), "disk");
        assert_eq!((disk.format.as_str(), disk.detected.as_str()), ("qcow2", "qcow2 (version 3)"));
        assert_eq!(disk.backing_chain, [built.disk.display().to_string()]);
        assert_eq!(disk.virtual_bytes, std::fs::metadata(&built.disk).unwrap().len());
        let argv = facts.reproduce.join(" ");
        assert!(
            !argv.contains("vmbench.") && !argv.contains("-smbios"),
            "no instructions for a guest with no agent: {argv}"
        );
        assert!(argv.contains("format=qcow2") && argv.contains("snapshot=on"), "{argv}");
    }
    let uefi = record.targets.iter().find(|t| t.name == "uefi").unwrap();
    assert_eq!(uefi.settings["boot"], "uefi");
    assert!(uefi.kernel.is_none(), "the disk's bootloader chose the kernel");
    assert_eq!(sha256(&overlay), before, "the image is never written");
    assert_eq!(qemus_on(&overlay), Vec::<String>::new(), "no QEMU is left");

    // A guest that never says the words: a failed sample with what its
    // console showed, at the deadline, and nothing left running.
    let never = "name = \"never\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = 8\n\n[[guest]]\nname = \"never\"\n\
         disk = \"mine.qcow2\"\nready = { console = \"this line is never printed\" }\n\n[[target]]\n\
         name = \"never-ready\"\nkind = \"vm\"\nguest = \"never\"\naccel = \"tcg\"\nmemory_mib = 512\n\n\
         [[workload]]\nkind = \"boot\"\n";
    std::fs::remove_dir_all(&run).unwrap();
    let (out, run) = run_scenario(dir.path(), "never.toml", never);
    assert_eq!(out.status.code(), Some(3), "a failed sample: {}", stderr(&out));
    let sample = &common::samples(&run)[0];
    let error = sample.error.as_deref().unwrap_or_default();
    assert!(
        !sample.ok && error.contains("timed out before the ready probe succeeded") && error.contains("SeaBIOS"),
        "{error}"
    );
    assert_eq!(qemus_on(&overlay), Vec::<String>::new(), "no QEMU is left");
}

#[test]
fn a_file_that_is_not_a_disk_image_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("disk.vmdk"), b"KDMV\x01\0\0\0").unwrap();
    let text = "name = \"bad\"\n\n[[guest]]\nname = \"g\"\ndisk = \"disk.vmdk\"\nready = { console = \"login:\" }\n\n\
                [[target]]\nname = \"vm\"\nkind = \"vm\"\nguest = \"g\"\n\n[[workload]]\nkind = \"boot\"\n";
    let (out, run) = run_scenario(dir.path(), "bad.toml", text);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("guest[0].disk") && err.contains("vmdk") && err.contains("qemu-img convert"),
        "{err}"
    );
    assert!(!run.exists(), "nothing started");
}
