//! The QEMU command line as data: one struct, turned into an argument vector
//! that is spawned directly (never through a shell) and recorded in
//! `run.json` as the `reproduce` line. Tested without starting QEMU.

use crate::scenario::Machine;
use std::path::PathBuf;

/// How the guest CPU is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// QEMU's emulator: numbers measure emulation, not virtualisation.
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The guest CPU model: the host's own under KVM; QEMU's default
    /// `qemu64` under TCG, which boots about 20% faster here than `max`
    /// (fewer features for the emulator to model).
    pub fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "qemu64",
        }
    }
}

/// Kernel parameters vmbench always passes. `quiet` keeps the slow serial
/// console from dominating boot time; `panic=-1` and `reboot=t` turn a guest
/// panic or the agent's reboot into an immediate QEMU exit (`-no-reboot`).
pub const BASE_KERNEL_ARGS: &[&str] = &["console=ttyS0", "quiet", "panic=-1", "reboot=t"];

/// What starts the guest kernel.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Firmware {
    /// QEMU loads `kernel` and `initrd` with `append` as the command line.
    #[default]
    Direct,
    /// QEMU's default BIOS (SeaBIOS) boots the first disk.
    Bios,
    /// This OVMF image boots the first disk's EFI system partition.
    Uefi(PathBuf),
}

/// OVMF as Debian's `ovmf` package installs it.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

pub use crate::protocol::SMBIOS_MARKER;

#[derive(Debug, Clone, PartialEq)]
pub struct QemuCommand {
    pub binary: PathBuf,
    pub machine: Machine,
    pub accel: Accel,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// How the guest kernel is started; `kernel`, `initrd` and `append`
    /// apply to [`Firmware::Direct`] only.
    pub firmware: Firmware,
    pub kernel: PathBuf,
    /// None only for a disk of the user's own booted without one.
    pub initrd: Option<PathBuf>,
    /// Kernel command line, one parameter per entry.
    pub append: Vec<String>,
    /// The guest runs vmbench's agent, so each launch passes it its
    /// instructions (on the command line, or as an SMBIOS string). A disk
    /// of the user's own has no agent and gets none.
    pub agent: bool,
    /// An SMBIOS OEM string (type 11) for the guest: the instructions of a
    /// firmware-booted guest, which reads them from
    /// `/sys/firmware/dmi/entries/11-*/raw`.
    pub smbios_oem: Option<String>,
    /// A guest's root file system image, attached first as virtio-blk with
    /// writes going to a temporary overlay QEMU discards (`snapshot=on`), so
    /// every boot starts from the same disk.
    pub root_disk: Option<PathBuf>,
    /// How QEMU opens `root_disk`: raw for the disks vmbench makes, what
    /// the header says for the user's own.
    pub root_format: crate::disk_image::DiskFormat,
    /// A raw image attached as virtio-blk (the disk workload's `/dev/vda`).
    pub disk: Option<PathBuf>,
    /// A virtio-net NIC on QEMU's user network, with these host ports on
    /// 127.0.0.1 forwarded to ports in the guest (a host-driven workload's:
    /// the agent's, a server's). No NIC when empty.
    pub forwards: Vec<Forward>,
    /// The guest port a ready probe connects to (a guest with no agent):
    /// every launch forwards a host port to it (not an argument itself).
    pub ready_port: Option<u16>,
    /// A virtio-net NIC on this tap device instead (a `tap` network), the
    /// guest at its own address; vhost-net with KVM.
    pub tap: Option<super::tap::Tap>,
    /// The host CPUs the whole QEMU process (vCPU and helper threads) runs
    /// on; not an argument: applied by affinity, or by libvirt's `<cputune>`.
    pub cpuset: Option<crate::scenario::CpuSet>,
    /// QEMU's seccomp filter ([`SANDBOX`]); off only when a scenario asks.
    pub sandbox: bool,
    /// The user QEMU switches to before it starts the guest (`-runas`).
    pub run_as: Option<String>,
}

/// QEMU's own seccomp filter, as libvirt applies it by default: besides
/// QEMU's base filter, no obsolete system calls, no privilege elevation
/// (setuid and friends), no spawning processes (fork, execve) and no
/// resource control (affinity, scheduler, priorities: vmbench pins QEMU
/// between fork and exec, before the filter exists). A guest that escapes
/// into QEMU then cannot start a shell or change its own limits.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The filter for a QEMU that changes its user (`-runas`): the same but for
/// privilege elevation, which `-runas` itself needs (QEMU installs its
/// filter first and calls setuid later, so with `elevateprivileges=deny` the
/// filter kills it). Once it is that user it has no privilege to regain.
pub const SANDBOX_RUN_AS: &str = "on,obsolete=deny,spawn=deny,resourcecontrol=deny";

/// The serial number of a guest system's root disk.
pub const ROOT_SERIAL: &str = "vmbench-root";

/// The serial number of the disk workload's scratch disk, by which a guest
/// system (with a root disk of its own) finds it.
pub const SCRATCH_SERIAL: &str = "vmbench-scratch";

/// How the disk image is opened on the host: `cache=none` is O_DIRECT, so the
/// host's page cache does not flatter the guest's I/O.
pub const DISK_CACHE: &str = "none";

/// The virtio devices vmbench attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Virtio {
    Blk,
    Net,
}

/// The QEMU device model for `kind` on `machine`. A microvm has no PCI bus,
/// only virtio-mmio (`-device` models); q35 has PCI. The qemu backend and
/// the libvirt domain both ask here, so their guests see the same devices.
pub fn virtio_device(kind: Virtio, machine: Machine) -> &'static str {
    match (kind, machine) {
        (Virtio::Blk, Machine::Microvm) => "virtio-blk-device",
        (Virtio::Blk, Machine::Q35) => "virtio-blk-pci",
        (Virtio::Net, Machine::Microvm) => "virtio-net-device",
        (Virtio::Net, Machine::Q35) => "virtio-net-pci",
    }
}

/// A host port on 127.0.0.1 forwarded to a guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

/// The `-netdev` value of QEMU's user network (slirp) named `id`, with each
/// forward's host port on 127.0.0.1 forwarded to its guest port: a
/// host-driven workload's path in, for the qemu and libvirt backends alike.
pub fn user_netdev(id: &str, forwards: &[Forward]) -> String {
    let mut value = format!("user,id={id}");
    for f in forwards {
        value.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
    }
    value
}

impl QemuCommand {
    /// Arguments after the binary.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]
            .map(String::from)
            .to_vec();
        let mut pair = |flag: &str, value: String| {
            args.push(flag.to_string());
            args.push(value);
        };
        if self.sandbox {
            let filter = if self.run_as.is_some() { SANDBOX_RUN_AS } else { SANDBOX };
            pair("-sandbox", filter.to_string());
        }
        if let Some(user) = &self.run_as {
            pair("-runas", user.clone());
        }
        pair("-machine", self.machine.as_str().to_string());
        pair("-accel", self.accel.as_str().to_string());
        pair("-cpu", self.accel.cpu_model().to_string());
        pair("-smp", self.vcpus.to_string());
        pair("-m", format!("{}M", self.memory_mib));
        match &self.firmware {
            Firmware::Direct => {
                pair("-kernel", self.kernel.display().to_string());
                if let Some(initrd) = &self.initrd {
                    pair("-initrd", initrd.display().to_string());
                }
                pair("-append", self.append.join(" "));
            }
            Firmware::Bios => {}
            Firmware::Uefi(ovmf) => pair("-bios", ovmf.display().to_string()),
        }
        if let Some(oem) = &self.smbios_oem {
            // QEMU's option syntax: a comma inside a value is doubled.
            pair("-smbios", format!("type=11,value={}", oem.replace(',', ",,")));
        }
        if let Some(root) = &self.root_disk {
            pair(
                "-drive",
                format!(
                    "file={},format={},if=none,id=root,cache={DISK_CACHE},aio=threads,snapshot=on",
                    root.display().to_string().replace(',', ",,"),
                    self.root_format.as_str()
                ),
            );
            pair(
                "-device",
                format!("{},drive=root,serial={ROOT_SERIAL}", virtio_device(Virtio::Blk, self.machine)),
            );
        }
        if let Some(disk) = &self.disk {
            pair(
                "-drive",
                format!("file={},format=raw,if=none,id=disk0,cache={DISK_CACHE},aio=threads", disk.display()),
            );
            pair(
                "-device",
                format!("{},drive=disk0,serial={SCRATCH_SERIAL}", virtio_device(Virtio::Blk, self.machine)),
            );
        }
        if let Some(tap) = &self.tap {
            let vhost = if tap.vhost { ",vhost=on" } else { "" };
            pair(
                "-netdev",
                format!("tap,id=net0,ifname={},script=no,downscript=no{vhost}", tap.ifname),
            );
            pair(
                "-device",
                format!(
                    "{},netdev=net0,mac={}",
                    virtio_device(Virtio::Net, self.machine),
                    super::tap::mac(tap)
                ),
            );
        } else if !self.forwards.is_empty() {
            pair("-netdev", user_netdev("net0", &self.forwards));
            pair("-device", format!("{},netdev=net0", virtio_device(Virtio::Net, self.machine)));
        }
        // The guest's serial port is QEMU's stdout: a pipe vmbench reads as
        // bytes arrive.
        pair("-serial", "stdio".to_string());
        args
    }

    /// The full argument vector, binary first.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.binary.display().to_string()];
        argv.extend(self.args());
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(machine: Machine, accel: Accel) -> QemuCommand {
        QemuCommand {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            machine,
            accel,
            vcpus: 2,
            memory_mib: 256,
            kernel: "/k/vmlinuz".into(),
            initrd: Some("/k/initrd.cpio".into()),
            append: vec!["console=ttyS0".into(), "vmbench.nonce=ab".into()],
            firmware: Firmware::Direct,
            smbios_oem: None,
            root_disk: None,
            root_format: crate::disk_image::DiskFormat::Raw,
            agent: true,
            ready_port: None,
            disk: None,
            forwards: Vec::new(),
            tap: None,
            cpuset: None,
            sandbox: true,
            run_as: None,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> &'a str {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing"));
        &args[i + 1]
    }

    #[test]
    fn microvm_under_tcg() {
        let args = command(Machine::Microvm, Accel::Tcg).args();
        for flag in ["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
        assert_eq!(value_after(&args, "-machine"), "microvm");
        assert_eq!(value_after(&args, "-accel"), "tcg");
        assert_eq!(value_after(&args, "-cpu"), "qemu64");
        assert_eq!(value_after(&args, "-smp"), "2");
        assert_eq!(value_after(&args, "-m"), "256M");
        assert_eq!(value_after(&args, "-append"), "console=ttyS0 vmbench.nonce=ab");
        assert_eq!(value_after(&args, "-serial"), "stdio");
        assert!(!args.iter().any(|a| a == "-drive"));
        assert_eq!(
            value_after(&args, "-sandbox"),
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        );
    }

    #[test]
    fn a_qemu_that_changes_its_user_keeps_the_filter_but_may_call_setuid_once() {
        let mut cmd = command(Machine::Microvm, Accel::Tcg);
        cmd.run_as = Some("nobody".into());
        let args = cmd.args();
        assert_eq!(value_after(&args, "-runas"), "nobody");
        assert_eq!(value_after(&args, "-sandbox"), SANDBOX_RUN_AS);
        assert!(!SANDBOX_RUN_AS.contains("elevateprivileges"));
        assert_eq!(SANDBOX_RUN_AS, SANDBOX.replace("elevateprivileges=deny,", ""));
    }

    #[test]
    fn the_sandbox_is_left_out_only_when_asked() {
        let mut cmd = command(Machine::Microvm, Accel::Tcg);
        cmd.sandbox = false;
        // Not `-sandbox off`: a QEMU built without seccomp refuses any -sandbox.
        assert!(!cmd.args().iter().any(|a| a.contains("sandbox")));
    }

    #[test]
    fn a_disk_is_virtio_blk_on_the_machines_bus_without_host_caching() {
        let mut cmd = command(Machine::Microvm, Accel::Tcg);
        cmd.disk = Some("/s/d.img".into());
        let args = cmd.args();
        assert_eq!(
            value_after(&args, "-drive"),
            "file=/s/d.img,format=raw,if=none,id=disk0,cache=none,aio=threads"
        );
        assert_eq!(
            value_after(&args, "-device"),
            "virtio-blk-device,drive=disk0,serial=vmbench-scratch"
        );
        cmd.machine = Machine::Q35;
        assert_eq!(
            value_after(&cmd.args(), "-device"),
            "virtio-blk-pci,drive=disk0,serial=vmbench-scratch"
        );
    }

    #[test]
    fn a_guest_disk_comes_first_and_every_boot_discards_its_writes() {
        let mut cmd = command(Machine::Q35, Accel::Tcg);
        cmd.root_disk = Some("/c/disk.img".into());
        let args = cmd.args();
        assert_eq!(
            value_after(&args, "-drive"),
            "file=/c/disk.img,format=raw,if=none,id=root,cache=none,aio=threads,snapshot=on"
        );
        assert_eq!(value_after(&args, "-device"), "virtio-blk-pci,drive=root,serial=vmbench-root");
    }

    #[test]
    fn firmware_boots_the_disk_and_gets_its_instructions_through_smbios() {
        let mut cmd = command(Machine::Q35, Accel::Tcg);
        cmd.root_disk = Some("/c/boot.img".into());
        cmd.firmware = Firmware::Uefi(OVMF.into());
        cmd.smbios_oem = Some("vmbench:vmbench.nonce=ab vmbench.p.cpus=1,3".into());
        let args = cmd.args();
        assert!(!args.iter().any(|a| a == "-kernel" || a == "-append" || a == "-initrd"));
        assert_eq!(value_after(&args, "-bios"), OVMF);
        assert_eq!(
            value_after(&args, "-smbios"),
            "type=11,value=vmbench:vmbench.nonce=ab vmbench.p.cpus=1,,3"
        );
        cmd.firmware = Firmware::Bios;
        assert!(!cmd.args().iter().any(|a| a == "-bios"), "SeaBIOS is QEMU's default");
    }

    #[test]
    fn the_network_workload_gets_a_user_network_nic_with_a_forwarded_port() {
        let mut cmd = command(Machine::Microvm, Accel::Tcg);
        cmd.forwards = vec![Forward { host: 40000, guest: 7777 }, Forward { host: 40001, guest: 80 }];
        let args = cmd.args();
        assert_eq!(
            value_after(&args, "-netdev"),
            "user,id=net0,hostfwd=tcp:127.0.0.1:40000-:7777,hostfwd=tcp:127.0.0.1:40001-:80"
        );
        assert_eq!(value_after(&args, "-device"), "virtio-net-device,netdev=net0");
    }

    #[test]
    fn q35_under_kvm_uses_the_host_cpu() {
        let cmd = command(Machine::Q35, Accel::Kvm);
        let argv = cmd.argv();
        assert_eq!(argv[0], "/usr/bin/qemu-system-x86_64");
        assert_eq!(value_after(&argv, "-machine"), "q35");
        assert_eq!(value_after(&argv, "-cpu"), "host");
        // The kernel command line stays one argument: no shell splits it.
        assert_eq!(argv.iter().filter(|a| a.contains("vmbench.nonce")).count(), 1);
    }
}
