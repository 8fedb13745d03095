//! The transient domain a libvirt trial starts, as XML generated from the
//! same [`QemuCommand`] the qemu backend spawns: same kernel, initramfs,
//! command line, CPU model, vCPUs, memory, disk and network devices. Tested
//! without libvirt.

use crate::backend::qemu::cmdline::{
    user_netdev, virtio_device, Accel, Firmware, QemuCommand, Virtio, DISK_CACHE, ROOT_SERIAL, SCRATCH_SERIAL,
};
use crate::xml::escape;
use std::fmt::Write;
use std::path::Path;

/// The `<domain>` document for `cmd`, named `name`, its serial console
/// written to `console` (a file libvirt opens and vmbench reads as it grows).
pub fn domain(cmd: &QemuCommand, name: &str, console: &Path) -> String {
    let mut xml = String::new();
    // libvirt offers `kvm` whenever /dev/kvm exists; the type follows the
    // real KVM probe instead.
    let kind = match cmd.accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "qemu",
    };
    let qemu_ns = if !cmd.forwards.is_empty() {
        " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
    } else {
        ""
    };
    let _ = writeln!(xml, "<domain type='{kind}'{qemu_ns}>");
    let _ = writeln!(xml, "  <name>{}</name>", escape(name));
    let _ = writeln!(xml, "  <memory unit='MiB'>{}</memory>", cmd.memory_mib);
    match &cmd.cpuset {
        // vCPU threads by <vcpu cpuset>, QEMU's other threads by
        // <emulatorpin>: the whole process, as the qemu backend pins it.
        Some(set) => {
            let _ = writeln!(xml, "  <vcpu cpuset='{set}'>{}</vcpu>", cmd.vcpus);
            let _ = writeln!(xml, "  <cputune><emulatorpin cpuset='{set}'/></cputune>");
        }
        None => {
            let _ = writeln!(xml, "  <vcpu>{}</vcpu>", cmd.vcpus);
        }
    }
    os(&mut xml, cmd);
    cpu(&mut xml, cmd.accel);
    // The agent reboots or powers off when it is done: either ends the
    // domain, which, being transient, then disappears.
    for event in ["on_poweroff", "on_reboot", "on_crash"] {
        let _ = writeln!(xml, "  <{event}>destroy</{event}>");
    }
    devices(&mut xml, cmd, console);
    if !cmd.forwards.is_empty() {
        user_network(&mut xml, cmd);
    }
    xml.push_str("</domain>\n");
    xml
}

/// Direct kernel boot of the same kernel, initramfs and command line; or
/// the same firmware (SeaBIOS, libvirt's default, or OVMF as a ROM, QEMU's
/// `-bios`) with the instructions as the same SMBIOS OEM string.
fn os(xml: &mut String, cmd: &QemuCommand) {
    if let Some(oem) = &cmd.smbios_oem {
        let _ = writeln!(xml, "  <sysinfo type='smbios'>");
        let _ = writeln!(xml, "    <oemStrings><entry>{}</entry></oemStrings>", escape(oem));
        let _ = writeln!(xml, "  </sysinfo>");
    }
    let _ = writeln!(xml, "  <os>");
    let _ = writeln!(xml, "    <type arch='x86_64' machine='{}'>hvm</type>", cmd.machine.as_str());
    match &cmd.firmware {
        Firmware::Direct => {
            let _ = writeln!(xml, "    <kernel>{}</kernel>", escape(&cmd.kernel.display().to_string()));
            if let Some(initrd) = &cmd.initrd {
                let _ = writeln!(xml, "    <initrd>{}</initrd>", escape(&initrd.display().to_string()));
            }
            let _ = writeln!(xml, "    <cmdline>{}</cmdline>", escape(&cmd.append.join(" ")));
        }
        Firmware::Bios => {}
        Firmware::Uefi(ovmf) => {
            let _ = writeln!(
                xml,
                "    <loader readonly='yes' type='rom'>{}</loader>",
                escape(&ovmf.display().to_string())
            );
        }
    }
    if cmd.smbios_oem.is_some() {
        let _ = writeln!(xml, "    <smbios mode='sysinfo'/>");
    }
    let _ = writeln!(xml, "  </os>");
    // Without ACPI the guest cannot power the machine off.
    let _ = writeln!(xml, "  <features><acpi/></features>");
}

/// The CPU model QEMU is given under `accel`.
fn cpu(xml: &mut String, accel: Accel) {
    match accel {
        Accel::Kvm => {
            let _ = writeln!(xml, "  <cpu mode='host-passthrough'/>");
        }
        Accel::Tcg => {
            let _ = writeln!(
                xml,
                "  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>{}</model></cpu>",
                accel.cpu_model()
            );
        }
    }
}

/// The emulator, the serial console file, the disk workload's image, and
/// nothing else.
fn devices(xml: &mut String, cmd: &QemuCommand, console: &Path) {
    let _ = writeln!(xml, "  <devices>");
    let _ = writeln!(xml, "    <emulator>{}</emulator>", escape(&cmd.binary.display().to_string()));
    let _ = writeln!(
        xml,
        "    <serial type='file'><source path='{}'/><target port='0'/></serial>",
        escape(&console.display().to_string())
    );
    // A guest system's root disk first, its writes discarded (`<transient/>`,
    // QEMU's snapshot=on), then the disk workload's, each with the serial
    // the qemu backend gives it.
    if let Some(root) = &cmd.root_disk {
        disk(xml, root, cmd.root_format.as_str(), "vda", Some(ROOT_SERIAL), true);
    }
    if let Some(scratch) = &cmd.disk {
        let (dev, serial) = match cmd.root_disk {
            Some(_) => ("vdb", Some(SCRATCH_SERIAL)),
            None => ("vda", None),
        };
        disk(xml, scratch, "raw", dev, serial, false);
    }
    // QEMU's defaults under -nodefaults, as the qemu backend runs it: no
    // balloon, no USB, no graphics.
    let _ = writeln!(xml, "    <controller type='usb' model='none'/>");
    let _ = writeln!(xml, "    <memballoon model='none'/>");
    let _ = writeln!(xml, "  </devices>");
}

/// One virtio disk.
fn disk(xml: &mut String, path: &Path, format: &str, dev: &str, serial: Option<&str>, transient: bool) {
    let _ = writeln!(xml, "    <disk type='file' device='disk'>");
    let _ = writeln!(xml, "      <driver name='qemu' type='{format}' cache='{DISK_CACHE}' io='threads'/>");
    let _ = writeln!(xml, "      <source file='{}'/>", escape(&path.display().to_string()));
    let _ = writeln!(xml, "      <target dev='{dev}' bus='virtio'/>");
    if let Some(serial) = serial {
        let _ = writeln!(xml, "      <serial>{serial}</serial>");
    }
    if transient {
        let _ = writeln!(xml, "      <transient/>");
    }
    let _ = writeln!(xml, "    </disk>");
}

/// libvirt's own user-mode interface forwards ports only through passt;
/// QEMU's slirp with hostfwd is passed through instead, the same network the
/// qemu backend gives its guests. `bus=pcie.0` holds because libvirt
/// targets are always q35 (the scenario refuses microvm for them).
fn user_network(xml: &mut String, cmd: &QemuCommand) {
    let device = virtio_device(Virtio::Net, cmd.machine);
    let _ = writeln!(xml, "  <qemu:commandline>");
    for arg in [
        "-netdev".to_string(),
        user_netdev("vmbnet0", &cmd.forwards),
        "-device".to_string(),
        format!("{device},netdev=vmbnet0,bus=pcie.0,addr=0x10"),
    ] {
        let _ = writeln!(xml, "    <qemu:arg value='{}'/>", escape(&arg));
    }
    let _ = writeln!(xml, "  </qemu:commandline>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Machine;

    fn command(accel: Accel) -> QemuCommand {
        QemuCommand {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            machine: Machine::Q35,
            accel,
            vcpus: 2,
            memory_mib: 512,
            kernel: "/var/lib/libvirt/boot/vmbench/k".into(),
            initrd: Some("/var/lib/libvirt/boot/vmbench/i".into()),
            append: vec!["console=ttyS0".into(), "vmbench.nonce=a<b".into()],
            firmware: crate::backend::qemu::cmdline::Firmware::Direct,
            smbios_oem: None,
            root_disk: None,
            root_format: crate::disk_image::DiskFormat::Raw,
            agent: true,
            ready_port: None,
            disk: None,
            forwards: Vec::new(),
            tap: None,
            cpuset: None,
            sandbox: false,
            run_as: None,
        }
    }

    #[test]
    fn a_guest_systems_disk_is_transient_and_firmware_gets_its_smbios_string() {
        let mut cmd = command(Accel::Tcg);
        cmd.root_disk = Some("/var/lib/libvirt/images/vmbench/r/vm/root-boot.img".into());
        cmd.disk = Some("/var/lib/libvirt/images/vmbench/r/vm/n.img".into());
        cmd.firmware = Firmware::Uefi("/usr/share/ovmf/OVMF.fd".into());
        cmd.smbios_oem = Some("vmbench:vmbench.nonce=a<b".into());
        let xml = domain(&cmd, "vmbench-r-vm-1", Path::new("/tmp/c"));
        assert!(!xml.contains("<kernel>") && !xml.contains("<cmdline>"), "{xml}");
        assert!(
            xml.contains("<loader readonly='yes' type='rom'>/usr/share/ovmf/OVMF.fd</loader>"),
            "{xml}"
        );
        assert!(
            xml.contains("<entry>vmbench:vmbench.nonce=a&lt;b</entry>") && xml.contains("<smbios mode='sysinfo'/>"),
            "{xml}"
        );
        let root = xml.find("root-boot.img").unwrap();
        let scratch = xml.find("n.img").unwrap();
        assert!(root < scratch, "the root disk comes first");
        assert!(
            xml[root..scratch].contains("<target dev='vda'") && xml[root..scratch].contains("<transient/>"),
            "{xml}"
        );
        assert!(xml[scratch..].contains("<target dev='vdb'") && xml[scratch..].contains("<serial>vmbench-scratch</serial>"));
        assert!(!xml[scratch..].contains("<transient/>"), "the scratch disk is written: {xml}");
        cmd.firmware = Firmware::Bios;
        cmd.smbios_oem = None;
        let xml = domain(&cmd, "vmbench-r-vm-1", Path::new("/tmp/c"));
        assert!(
            !xml.contains("<loader") && !xml.contains("<kernel>") && !xml.contains("sysinfo"),
            "{xml}"
        );
    }

    #[test]
    fn the_domain_type_follows_the_accelerator_not_dev_kvm() {
        let tcg = domain(&command(Accel::Tcg), "vmbench-r-t-1", Path::new("/tmp/c"));
        assert!(tcg.starts_with("<domain type='qemu'>"));
        assert!(tcg.contains("<model fallback='forbid'>qemu64</model>"));
        let kvm = domain(&command(Accel::Kvm), "vmbench-r-t-1", Path::new("/tmp/c"));
        assert!(kvm.starts_with("<domain type='kvm'>"));
        assert!(kvm.contains("<cpu mode='host-passthrough'/>"));
    }

    #[test]
    fn the_domain_boots_the_same_guest_and_ends_itself() {
        let xml = domain(&command(Accel::Tcg), "vmbench-r-t-1", Path::new("/tmp/run/x.console"));
        for needle in [
            "<name>vmbench-r-t-1</name>",
            "<memory unit='MiB'>512</memory>",
            "<vcpu>2</vcpu>",
            "machine='q35'",
            "<kernel>/var/lib/libvirt/boot/vmbench/k</kernel>",
            "<cmdline>console=ttyS0 vmbench.nonce=a&lt;b</cmdline>",
            "<features><acpi/></features>",
            "<on_poweroff>destroy</on_poweroff>",
            "<on_reboot>destroy</on_reboot>",
            "<source path='/tmp/run/x.console'/>",
            "<memballoon model='none'/>",
        ] {
            assert!(xml.contains(needle), "missing {needle} in\n{xml}");
        }
        assert!(!xml.contains("<disk"));
        assert!(!xml.contains("qemu:commandline"));
    }

    #[test]
    fn disk_and_network_workloads_get_their_devices() {
        let mut cmd = command(Accel::Tcg);
        cmd.disk = Some("/var/lib/libvirt/images/vmbench/r/n.img".into());
        cmd.forwards = vec![crate::backend::qemu::cmdline::Forward { host: 40123, guest: 7777 }];
        let xml = domain(&cmd, "vmbench-r-t-2", Path::new("/tmp/c"));
        assert!(xml.contains("cache='none'"));
        assert!(xml.contains("<source file='/var/lib/libvirt/images/vmbench/r/n.img'/>"));
        assert!(xml.contains("<target dev='vda' bus='virtio'/>"));
        assert!(xml.contains("xmlns:qemu="));
        assert!(xml.contains("hostfwd=tcp:127.0.0.1:40123-:"));
        // The same user network the qemu backend gives its guests.
        assert!(xml.contains(&format!("<qemu:arg value='{}'/>", user_netdev("vmbnet0", &cmd.forwards))));
        assert!(xml.contains("<qemu:arg value='virtio-net-pci,netdev=vmbnet0,bus=pcie.0,addr=0x10'/>"));
    }
}
