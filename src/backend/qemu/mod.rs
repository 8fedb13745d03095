//! VMs run by spawning `qemu-system-x86_64` directly: direct kernel boot of
//! the cached kernel with vmbench's initramfs, serial console on a pipe.

pub mod accel;
pub mod cmdline;
pub mod tap;

use super::cgroup::JoinClock;
use super::{footprint, Backend, ExitStyle, Footprint, Gone, Launch, LaunchSpec, RunContext, Started};
use crate::guest::{self, kernel::Kernel};
use crate::protocol::Instructions;
use crate::rundir::{ArtifactFacts, TargetFacts};
use crate::scenario::{AccelChoice, VmBackend, VmNetwork, VmSpec};
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use cmdline::{Accel, QemuCommand, BASE_KERNEL_ARGS};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;
use tokio::process::{Child, Command};

pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

pub struct QemuBackend {
    name: String,
    spec: VmSpec,
    ctx: Arc<RunContext>,
    /// The command without per-launch instructions; set by `prepare`.
    template: Option<QemuCommand>,
    /// The initramfs that also carries virtio drivers (disk, network).
    initrd_drivers: Option<PathBuf>,
}

impl QemuBackend {
    pub fn new(name: &str, spec: VmSpec, ctx: Arc<RunContext>) -> Self {
        QemuBackend {
            name: name.to_string(),
            spec,
            ctx,
            template: None,
            initrd_drivers: None,
        }
    }
}

/// The accelerator for a VM target: TCG when asked, else what the run's KVM
/// probe (one real guest under `-accel kvm`, cached) says, with why.
pub async fn choose_accel(ctx: &RunContext, target: &str, spec: &VmSpec, qemu: &Path, kernel: &Path) -> Result<(Accel, String)> {
    if spec.accel == AccelChoice::Tcg {
        return Ok((Accel::Tcg, "the scenario asks for tcg".to_string()));
    }
    // The probe boots vmbench's own agent, whatever the target runs: only
    // it says when the guest is up.
    let probe = guest::initramfs::for_kernel(kernel, false, &guest::agent::Agent::embedded())
        .context("building the initramfs for the KVM probe")?;
    let verdict = ctx.kvm.get_or_init(|| accel::probe(qemu, kernel, &probe.path)).await;
    match (spec.accel, verdict.kvm_works) {
        (_, true) => Ok((Accel::Kvm, verdict.reason.clone())),
        (AccelChoice::Kvm, false) => bail!(
            "target `{target}` asks for accel = \"kvm\", but KVM does not work on this host: {}. Use accel = \"auto\" or \"tcg\"",
            verdict.reason
        ),
        (_, false) => Ok((Accel::Tcg, format!("auto: {}; using TCG (emulation)", verdict.reason))),
    }
}

/// What preparing a VM target yields, whichever backend launches it.
pub struct PreparedVm {
    /// The command without per-launch instructions.
    pub template: QemuCommand,
    /// The initramfs that also carries virtio drivers (disk, network).
    pub initrd_drivers: PathBuf,
    pub facts: TargetFacts,
}

/// Finds QEMU and the kernel, builds both initramfs variants, chooses the
/// accelerator and describes the result; shared by the qemu and libvirt
/// backends so both boot exactly the same guest.
pub async fn prepare_vm(name: &str, spec: &VmSpec, ctx: &RunContext) -> Result<PreparedVm> {
    if let Some(guest) = &spec.guest {
        if let Some(disk) = guest.source.disk() {
            return prepare_disk_vm(name, spec, guest, disk, ctx).await;
        }
        return prepare_guest_vm(name, spec, guest, ctx).await;
    }
    let qemu = find_qemu(spec.qemu.as_deref())?;
    let version = qemu_version(&qemu).await?;
    check_run_as(name, spec, ctx)?;
    let sandbox = spec.sandbox && spec.backend == VmBackend::Qemu;
    if sandbox {
        check_sandbox(&qemu, &format!("target `{name}`")).await?;
    }
    let choice = spec.kernel.clone();
    let kernel = tokio::task::spawn_blocking(move || guest::kernel::resolve(&choice))
        .await
        .context("finding the guest kernel")?
        .with_context(|| format!("target `{name}`"))?;
    let agent = guest::agent::Agent::from_file(spec.agent.as_deref()).with_context(|| format!("target `{name}`"))?;
    let initramfs = guest::initramfs::for_kernel(&kernel.path, false, &agent).context("building the initramfs")?;
    let with_drivers = guest::initramfs::for_kernel(&kernel.path, true, &agent).context("building the initramfs with drivers")?;
    let (accel, accel_reason) = choose_accel(ctx, name, spec, &qemu, &kernel.path).await?;
    let append = kernel_args(accel, &[], &spec.kernel_args);
    let template = QemuCommand {
        kernel: kernel.path.clone(),
        initrd: Some(initramfs.path.clone()),
        append,
        sandbox,
        ..base_command(&qemu, spec, accel, ctx)
    };
    let reproduce = reproduce_command(&template).argv();
    let mut facts = facts(
        name,
        ctx,
        &template,
        &kernel,
        &initramfs,
        version,
        accel_reason,
        reproduce,
        agent.sha256().into(),
    );
    facts.settings.extend(spec.agent.as_deref().map(crate::backend::agent_setting));
    facts.initramfs_drivers = Some(ArtifactFacts {
        path: with_drivers.path.display().to_string(),
        sha256: with_drivers.sha256.clone(),
        bytes: with_drivers.bytes,
        reused: with_drivers.reused,
    });
    Ok(PreparedVm {
        template,
        initrd_drivers: with_drivers.path,
        facts,
    })
}

/// What every VM target's command shares: its QEMU, machine, accelerator,
/// vCPUs, memory, host CPUs and user, with vmbench's agent and nothing yet
/// to boot, no disk, no network and no sandbox; each kind of target sets
/// the rest.
fn base_command(qemu: &Path, spec: &VmSpec, accel: Accel, ctx: &RunContext) -> QemuCommand {
    QemuCommand {
        binary: qemu.to_path_buf(),
        machine: spec.machine,
        accel,
        vcpus: spec.vcpus,
        memory_mib: spec.memory_mib,
        firmware: cmdline::Firmware::Direct,
        kernel: PathBuf::new(),
        initrd: None,
        append: Vec::new(),
        agent: true,
        smbios_oem: None,
        sandbox: false,
        root_disk: None,
        root_format: crate::disk_image::DiskFormat::Raw,
        disk: None,
        forwards: Vec::new(),
        ready_port: None,
        tap: None,
        cpuset: ctx.cpuset.clone(),
        run_as: spec.run_as.clone(),
    }
}

/// `run_as` needs a cgroup of vmbench's own for QEMU: without one nothing
/// could find a QEMU that outlived a killed vmbench (it has no parent-death
/// signal once it changed its user).
fn check_run_as(name: &str, spec: &VmSpec, ctx: &RunContext) -> Result<()> {
    if spec.run_as.is_some() && ctx.accounting != crate::scenario::Accounting::Cgroup {
        bail!(
            "target `{name}`: run_as needs a cgroup of vmbench's own for QEMU, and this host gives none ({})",
            ctx.accounting_fallback.as_deref().unwrap_or("accounting = \"process\"")
        );
    }
    Ok(())
}

/// What a vmbench tree probed on a port is booted with: its NIC configured
/// by DHCP (QEMU's user network answers) through systemd's own
/// network-generator and networkd, which the tree has but does not enable.
pub const PROBE_NETWORK_ARGS: &[&str] = &[
    "ip=dhcp",
    "systemd.wants=systemd-network-generator.service",
    "systemd.wants=systemd-networkd.service",
];

/// vmbench's kernel parameters for `accel`, then `guest_args` (how a guest
/// system finds its root), then the scenario's own `extra`.
fn kernel_args(accel: Accel, guest_args: &[String], extra: &[String]) -> Vec<String> {
    let mut append: Vec<String> = BASE_KERNEL_ARGS.iter().map(|s| s.to_string()).collect();
    if accel == Accel::Tcg {
        // See host::tsc_khz: without it TCG microVMs sometimes hang.
        append.extend(crate::host::tsc_khz().map(|khz| format!("tsc_early_khz={khz}")));
        // Under emulation the clocksource watchdog sees the TSC drift against
        // the (equally emulated) HPET or PM timer and demotes it; a microvm
        // has neither, so the guest fell back to 4 ms jiffies and every
        // duration the agent measured was quantised to 4 ms. The agent checks
        // its clock's resolution anyway (a coarse clock fails the sample).
        append.push("tsc=reliable".into());
    }
    append.extend(guest_args.iter().cloned());
    append.extend(extra.iter().cloned());
    append
}

/// A VM booting a `[[guest]]`: its root file system built (or found in the
/// cache) as a disk image, booted with the kernel and initramfs the tree
/// installed, `root=` by the disk's label, and the agent as init or as a
/// systemd unit. The accelerator is probed by booting vmbench's initramfs
/// with the tree's kernel, so no other kernel is needed.
async fn prepare_guest_vm(name: &str, spec: &VmSpec, guest_spec: &crate::scenario::Guest, ctx: &RunContext) -> Result<PreparedVm> {
    check_run_as(name, spec, ctx)?;
    let qemu = find_qemu(spec.qemu.as_deref())?;
    let version = qemu_version(&qemu).await?;
    let agent = guest::agent::Agent::from_file(spec.agent.as_deref()).with_context(|| format!("target `{name}`"))?;
    let agent_sha = agent.sha256().to_string();
    let rootfs = guest_spec
        .rootfs()
        .cloned()
        .context("only a built root file system boots as a VM")?;
    let built = tokio::task::spawn_blocking(move || guest::rootfs::ensure(&rootfs, agent.bytes(), agent.sha256()))
        .await
        .context("building the guest root file system")?
        .with_context(|| format!("target `{name}`: guest `{}`", guest_spec.name))?;
    // The KVM probe boots vmbench's own initramfs with the tree's kernel.
    let (accel, accel_reason) = choose_accel(ctx, name, spec, &qemu, &built.kernel).await?;
    // libvirt puts its own -sandbox on the QEMU it starts.
    let sandbox = spec.sandbox && spec.backend == VmBackend::Qemu;
    if sandbox {
        check_sandbox(&qemu, &format!("target `{name}`")).await?;
    }
    let mut root_args = vec![format!("root=LABEL={}", guest::rootfs::DISK_LABEL), "rw".to_string()];
    if guest_spec.init == crate::scenario::GuestInit::Agent {
        root_args.push(format!("init={}", guest::rootfs::AGENT_PATH));
    }
    // Probed for readiness: no instructions (the agent's unit stays quiet),
    // and for a port probe the tree asks DHCP on its NIC: systemd's
    // generator turns `ip=dhcp` into a unit for its networkd.
    let probe_port = guest_spec.ready.as_ref().and_then(crate::scenario::ReadyProbe::port);
    if probe_port.is_some() {
        root_args.extend(PROBE_NETWORK_ARGS.iter().map(|a| a.to_string()));
    }
    // What firmware's bootloader passes: fixed on the disk, so without the
    // host-specific `tsc_early_khz`, and with the marker that sends the
    // agent to SMBIOS for its per-launch instructions.
    let mut loader_args: Vec<String> = BASE_KERNEL_ARGS.iter().map(|s| s.to_string()).collect();
    if accel == Accel::Tcg {
        loader_args.push("tsc=reliable".into());
    }
    loader_args.extend(root_args.iter().cloned());
    loader_args.extend(spec.kernel_args.iter().cloned());
    loader_args.push(cmdline::SMBIOS_MARKER.into());
    let disk = {
        let (built, args) = (built.clone(), loader_args.clone());
        tokio::task::spawn_blocking(move || guest::rootfs::bootable_disk(&built, &args))
            .await
            .context("making the guest disk")?
            .with_context(|| format!("target `{name}`: guest `{}`", guest_spec.name))?
    };
    let firmware = firmware_for(name, spec.boot)?;
    let template = QemuCommand {
        firmware,
        kernel: built.kernel.clone(),
        initrd: Some(built.initrd.clone()),
        append: kernel_args(accel, &root_args, &spec.kernel_args),
        sandbox,
        root_disk: Some(disk.path.clone()),
        agent: guest_spec.ready.is_none(),
        ready_port: probe_port,
        ..base_command(&qemu, spec, accel, ctx)
    };
    let reproduce = reproduce_command(&template).argv();
    let kernel = Kernel {
        path: built.kernel.clone(),
        source: format!("guest `{}`", guest_spec.name),
        sha256: guest::sha256_file(&built.kernel)?,
        bytes: std::fs::metadata(&built.kernel)?.len(),
        build_ms: None,
    };
    let initrd = guest::initramfs::Initramfs {
        path: built.initrd.clone(),
        sha256: guest::sha256_file(&built.initrd)?,
        bytes: std::fs::metadata(&built.initrd)?.len(),
        reused: built.agent_build_ms.is_none(),
    };
    let mut facts = facts(name, ctx, &template, &kernel, &initrd, version, accel_reason, reproduce, agent_sha);
    facts.settings.extend(spec.agent.as_deref().map(crate::backend::agent_setting));
    facts.settings.insert(
        "root_disk".into(),
        format!(
            "virtio-blk, raw MBR disk (FAT boot partition with syslinux and systemd-boot, ext4 root), cache={} \
             (O_DIRECT on the host), snapshot=on (writes discarded)",
            cmdline::DISK_CACHE
        ),
    );
    facts.settings.insert("boot".into(), spec.boot.as_str().into());
    facts.settings.extend(probe_port.map(ready_probe_setting));
    if spec.boot != crate::scenario::BootPath::Direct {
        facts.settings.insert("loader_cmdline".into(), loader_args.join(" "));
        facts.kernel_cmdline = Some(loader_args.join(" "));
    }
    // What has to be stored to boot it: the disk's blocks (the boot
    // partition holds the kernel and initramfs).
    facts.artifact_bytes = disk.allocated_bytes;
    let mut guest_facts = crate::rundir::GuestFacts::new(guest_spec, &built);
    guest_facts.disk_bytes = Some(disk.bytes);
    guest_facts.disk_allocated_bytes = Some(disk.allocated_bytes);
    guest_facts.disk_build_ms = disk.build_ms;
    guest_facts.boot = Some(spec.boot.as_str().into());
    facts.guest = Some(guest_facts);
    Ok(PreparedVm {
        initrd_drivers: built.initrd.clone(),
        template,
        facts,
    })
}

/// A VM booting a disk image of the user's own, as it is: by firmware (the
/// disk's bootloader), or directly with the target's kernel, initramfs and
/// command line. No agent runs in it, so no instructions are passed and its
/// `ready` probe says when it is up (a TCP or HTTP probe's port forwarded
/// from the host on QEMU's user network). Writes go to QEMU's temporary
/// overlay (`snapshot=on`): the image is never changed.
async fn prepare_disk_vm(
    name: &str,
    spec: &VmSpec,
    guest_spec: &crate::scenario::Guest,
    disk: &crate::scenario::DiskImage,
    ctx: &RunContext,
) -> Result<PreparedVm> {
    check_run_as(name, spec, ctx)?;
    let qemu = find_qemu(spec.qemu.as_deref())?;
    let version = qemu_version(&qemu).await?;
    let whom = format!("target `{name}`: guest `{}`", guest_spec.name);
    // Read again: the file may have changed since the scenario was checked.
    let layers = crate::disk_image::chain(&disk.path).map_err(|e| anyhow!("{whom}: {}: {e}", disk.path.display()))?;
    let format = layers[0]
        .detected
        .format()
        .map_err(|e| anyhow!("{whom}: {} {e}", disk.path.display()))?;
    if spec.sandbox {
        check_sandbox(&qemu, &format!("target `{name}`")).await?;
    }
    // A direct boot's kernel; else the KVM probe's, which is vmbench's own
    // (the disk's kernel is known only to its bootloader).
    let direct = spec.boot == crate::scenario::BootPath::Direct;
    let kernel = if direct || spec.accel != AccelChoice::Tcg {
        let choice = if direct {
            spec.kernel.clone()
        } else {
            crate::scenario::KernelChoice::Auto
        };
        let why = match direct {
            true => whom.clone(),
            false => format!(
                "{whom}: accel = \"{}\" finds out whether KVM works by booting vmbench's own guest, which needs a \
                 kernel (your disk's is known only to its bootloader); set accel = \"tcg\" to go without",
                if spec.accel == AccelChoice::Kvm { "kvm" } else { "auto" }
            ),
        };
        let kernel = tokio::task::spawn_blocking(move || guest::kernel::resolve(&choice))
            .await
            .context("finding the guest kernel")?
            .context(why)?;
        Some(kernel)
    } else {
        None
    };
    let (accel, accel_reason) = match &kernel {
        Some(kernel) => choose_accel(ctx, name, spec, &qemu, &kernel.path).await?,
        None => (Accel::Tcg, "the scenario asks for tcg".to_string()),
    };
    let firmware = firmware_for(name, spec.boot)?;
    let port = guest_spec.ready.as_ref().and_then(crate::scenario::ReadyProbe::port);
    let template = QemuCommand {
        firmware,
        kernel: kernel.as_ref().map(|k| k.path.clone()).unwrap_or_default(),
        initrd: spec.initrd.clone(),
        append: kernel_args(accel, &[], &spec.kernel_args),
        agent: false,
        sandbox: spec.sandbox,
        root_disk: Some(disk.path.clone()),
        root_format: format,
        ready_port: port,
        ..base_command(&qemu, spec, accel, ctx)
    };
    let mut facts = facts(
        name,
        ctx,
        &template,
        &Kernel::default(),
        &guest::initramfs::Initramfs::default(),
        version,
        accel_reason,
        reproduce_command(&template).argv(),
        String::new(),
    );
    facts.kernel = kernel.filter(|_| direct);
    facts.initramfs = match &spec.initrd {
        Some(path) => Some(ArtifactFacts {
            path: path.display().to_string(),
            sha256: guest::sha256_file(path)?,
            bytes: std::fs::metadata(path)?.len(),
            reused: true,
        }),
        None => None,
    };
    if !direct {
        facts.kernel_cmdline = None;
    }
    facts.settings.remove("disk_workload");
    facts.settings.remove("network_workload");
    facts.settings.insert(
        "root_disk".into(),
        format!(
            "virtio-blk, your own {} image, cache={} (O_DIRECT on the host), snapshot=on (writes discarded)",
            format.as_str(),
            cmdline::DISK_CACHE
        ),
    );
    facts.settings.insert("boot".into(), spec.boot.as_str().into());
    facts.settings.extend(port.map(ready_probe_setting));
    // What has to be stored to boot it: every file of its chain's blocks.
    let allocated: u64 = layers.iter().map(|l| allocated_bytes(&l.path)).sum();
    facts.artifact_bytes = allocated + facts.kernel.as_ref().map_or(0, |k| k.bytes) + facts.initramfs.as_ref().map_or(0, |i| i.bytes);
    let mut guest_facts = crate::rundir::GuestFacts::own_disk(
        guest_spec,
        crate::rundir::DiskImageFacts {
            path: disk.path.display().to_string(),
            format: format.as_str().into(),
            detected: layers[0].detected.describe(),
            virtual_bytes: layers[0].virtual_bytes,
            backing_chain: layers.iter().skip(1).map(|l| l.path.display().to_string()).collect(),
        },
    );
    guest_facts.disk_bytes = Some(layers.iter().map(|l| std::fs::metadata(&l.path).map_or(0, |m| m.len())).sum());
    guest_facts.disk_allocated_bytes = Some(allocated);
    guest_facts.boot = Some(spec.boot.as_str().into());
    facts.guest = Some(guest_facts);
    Ok(PreparedVm {
        initrd_drivers: PathBuf::new(),
        template,
        facts,
    })
}

/// How a port probe reaches a VM (`settings.ready_probe`).
fn ready_probe_setting(port: u16) -> (String, String) {
    (
        "ready_probe".into(),
        format!("virtio-net on QEMU's user network (slirp, with DHCP), a 127.0.0.1 port forwarded to guest port {port}"),
    )
}

/// Blocks a file has on the host's disk.
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// The firmware for `boot`; UEFI needs Debian's OVMF.
fn firmware_for(name: &str, boot: crate::scenario::BootPath) -> Result<cmdline::Firmware> {
    Ok(match boot {
        crate::scenario::BootPath::Direct => cmdline::Firmware::Direct,
        crate::scenario::BootPath::Bios => cmdline::Firmware::Bios,
        crate::scenario::BootPath::Uefi => {
            let ovmf = PathBuf::from(cmdline::OVMF);
            if !ovmf.is_file() {
                bail!(
                    "target `{name}`: boot = \"uefi\" needs {} (Debian package ovmf; scripts/setup.sh installs it)",
                    ovmf.display()
                );
            }
            cmdline::Firmware::Uefi(ovmf)
        }
    })
}

/// The command line of one launch: the template plus the launch's
/// instructions, the disk workload's scratch file as a raw virtio disk, a
/// host-driven workload's NIC (forwarded ports on the user network, or
/// `tap` with the guest's address), and the driver-carrying initramfs for
/// both.
pub fn launch_command(
    template: &QemuCommand,
    initrd_drivers: &Path,
    spec: &LaunchSpec,
    tap: Option<tap::Tap>,
) -> Result<QemuCommand, String> {
    let mut instructions = spec.instructions.clone();
    let mut forwards = Vec::new();
    let tap = tap.filter(|_| spec.workload.kind.host_driven());
    if let Some(tap) = &tap {
        instructions.address = Some(format!("{}/{}", tap.guest, tap::PREFIX));
    } else {
        // Every probe listener is held until all are chosen, so two forwards
        // never get the same port.
        let mut held = Vec::new();
        for &guest in spec.workload.kind.guest_ports().iter().chain(&template.ready_port) {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| Ok((l.local_addr()?.port(), l)))
                .map_err(|e| format!("finding a free port to forward: {e}"))?;
            forwards.push(cmdline::Forward { host: probe.0, guest });
            held.push(probe.1);
        }
    }
    if spec.workload.kind.host_driven() {
        instructions.listen = Some(format!("0.0.0.0:{}", crate::protocol::AGENT_PORT));
    }
    if spec.scratch.is_some() {
        // A guest system's root disk is a virtio disk too: name the scratch
        // disk by its serial there.
        instructions.scratch = Some(match template.root_disk {
            Some(_) => format!("serial:{}", cmdline::SCRATCH_SERIAL),
            None => "/dev/vda".into(),
        });
    }
    let mut cmd = with_instructions(template, &instructions);
    cmd.disk = spec.scratch.clone();
    let nic = !forwards.is_empty() || tap.is_some();
    cmd.forwards = forwards;
    cmd.tap = tap;
    if (cmd.disk.is_some() || nic) && cmd.agent {
        cmd.initrd = Some(initrd_drivers.to_path_buf());
    }
    Ok(cmd)
}

/// A free local TCP port for a forwarded VM port. Another process could take
/// it between here and QEMU's bind; QEMU then fails to start and the trial
/// says so.
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the host reaches `port` in a VM: the guest's own address on a tap
/// network, else the host port forwarded to it.
pub fn forwarded(cmd: &QemuCommand, port: u16) -> Result<SocketAddr, String> {
    if let Some(tap) = &cmd.tap {
        return Ok(SocketAddr::from((tap.guest, port)));
    }
    cmd.forwards
        .iter()
        .find(|f| f.guest == port)
        .map(|f| super::loopback(f.host))
        .ok_or_else(|| format!("the VM was started without a forwarded port for guest port {port}"))
}

/// The command `run.json` records to repeat a launch by hand: the template
/// with a boot workload's instructions and, for a port probe, the forward a
/// launch adds (to a host port that was free when the target was prepared).
pub fn reproduce_command(template: &QemuCommand) -> QemuCommand {
    let mut cmd = with_instructions(template, &Instructions::new("repro", "boot"));
    if let Some(guest) = template.ready_port {
        let host = free_local_port().unwrap_or(guest);
        cmd.forwards = vec![cmdline::Forward { host, guest }];
    }
    cmd
}

/// The command line for one launch of `template` with `instructions`: on
/// the kernel command line, or for firmware, whose bootloader's command line
/// is fixed on the disk, as an SMBIOS OEM string.
pub fn with_instructions(template: &QemuCommand, instructions: &Instructions) -> QemuCommand {
    let mut cmd = template.clone();
    if !cmd.agent {
        return cmd;
    }
    match cmd.firmware {
        cmdline::Firmware::Direct => cmd.append.extend(instructions.to_tokens()),
        _ => cmd.smbios_oem = Some(crate::protocol::smbios_instructions(&instructions.to_tokens())),
    }
    cmd
}

#[async_trait]
impl Backend for QemuBackend {
    fn not_applicable(&self, workload: &crate::scenario::Workload) -> Option<String> {
        super::needs_a_guest_system(workload, self.spec.guest.as_ref())
    }

    fn ready_probe(&self) -> Option<crate::scenario::ReadyProbe> {
        self.spec.guest.as_ref().and_then(|g| g.ready.clone())
    }

    async fn prepare(&mut self) -> Result<TargetFacts> {
        if self.spec.network == VmNetwork::Tap {
            tap::preflight()
                .and_then(|()| tap::ensure_bridge())
                .map_err(|e| anyhow!("target `{}`: network = \"tap\": {e}", self.name))?;
        }
        let mut prepared = prepare_vm(&self.name, &self.spec, &self.ctx).await?;
        if self.spec.network == VmNetwork::Tap {
            let vhost = match (prepared.template.accel, tap::vhost(prepared.template.accel)) {
                (_, true) => "on",
                (Accel::Kvm, false) => "off (no /dev/vhost-net)",
                (Accel::Tcg, false) => "off (TCG)",
            };
            prepared.facts.settings.insert(
                "network_workload".to_string(),
                format!(
                    "tap: virtio-net on a tap device on bridge {} ({}/{}), the guest at its own address; vhost-net {vhost}",
                    tap::BRIDGE,
                    tap::HOST,
                    tap::PREFIX
                ),
            );
        }
        self.template = Some(prepared.template);
        self.initrd_drivers = Some(prepared.initrd_drivers);
        Ok(prepared.facts)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.ctx.scratch_for(&self.name)
    }

    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        let (Some(template), Some(drivers)) = (&self.template, &self.initrd_drivers) else {
            return Err("VM target used before prepare".into());
        };
        let tap = match self.spec.network {
            VmNetwork::Tap if spec.workload.kind.host_driven() => Some(tap::create(&self.ctx.run_id, tap::vhost(template.accel))?),
            _ => None,
        };
        let cmd = match launch_command(template, drivers, &spec, tap.clone()) {
            Ok(cmd) => cmd,
            Err(e) => {
                if let Some(tap) = &tap {
                    tap::delete(&tap.ifname);
                }
                return Err(e);
            }
        };
        let mut launch = QemuLaunch::new(cmd);
        // On error the launch is dropped, and with it its tap device.
        launch.cgroup = super::launch_cgroup(&self.ctx, &self.name, &spec.instructions.nonce)?;
        Ok(Box::new(launch))
    }
    // QEMU children are killed when their handle drops and, should vmbench
    // itself die, by PR_SET_PDEATHSIG; what is left is their cgroups, and on
    // a tap network the run's tap devices and the bridge.
    fn sweeper(&self) -> Option<Arc<dyn super::Sweeper>> {
        match self.spec.network {
            VmNetwork::Tap => Some(Arc::new(TapSweeper)),
            VmNetwork::User => Some(Arc::new(super::CgroupSweeper)),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn facts(
    name: &str,
    ctx: &RunContext,
    cmd: &QemuCommand,
    kernel: &Kernel,
    initramfs: &guest::initramfs::Initramfs,
    qemu_version: String,
    accel_reason: String,
    reproduce: Vec<String>,
    agent_sha256: String,
) -> TargetFacts {
    TargetFacts {
        name: name.to_string(),
        kind: crate::rundir::TargetKind::Vm,
        backend: "qemu".into(),
        accel: Some(cmd.accel.as_str().into()),
        accel_reason: Some(accel_reason),
        machine: Some(cmd.machine.as_str().into()),
        cpu_model: Some(cmd.accel.cpu_model().into()),
        vcpus: Some(cmd.vcpus),
        memory_mib: Some(cmd.memory_mib),
        cpuset: cmd.cpuset.as_ref().map(ToString::to_string),
        qemu_path: Some(cmd.binary.display().to_string()),
        qemu_version: Some(qemu_version),
        kernel: Some(kernel.clone()),
        kernel_cmdline: Some(cmd.append.join(" ")),
        initramfs: Some(ArtifactFacts {
            path: initramfs.path.display().to_string(),
            sha256: initramfs.sha256.clone(),
            bytes: initramfs.bytes,
            reused: initramfs.reused,
        }),
        agent_sha256,
        artifact_bytes: kernel.bytes + initramfs.bytes,
        reproduce,
        settings: [
            ("accounting".to_string(), ctx.accounting_setting("the QEMU process")),
            ("sandbox".to_string(), sandbox_setting(cmd.sandbox, cmd.run_as.as_deref())),
            (
                "disk_workload".to_string(),
                format!("virtio-blk, raw image, cache={} (O_DIRECT on the host)", cmdline::DISK_CACHE),
            ),
            (
                "network_workload".to_string(),
                "virtio-net on QEMU's user network (slirp), a forwarded 127.0.0.1 port".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// The QEMU binary: the scenario's, or `qemu-system-x86_64` on PATH.
pub fn find_qemu(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = configured {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("QEMU binary {} does not exist", path.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(DEFAULT_BINARY))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{DEFAULT_BINARY} is not on PATH; install it with `apt-get install qemu-system-x86` (scripts/setup.sh does)")
        })
}

/// What `run.json` says about QEMU's sandbox (`settings.sandbox`).
pub fn sandbox_setting(on: bool, run_as: Option<&str>) -> String {
    let filter = match (on, run_as) {
        (false, _) => "off: the scenario says sandbox = false".to_string(),
        (true, None) => format!("-sandbox {} (QEMU's seccomp filter)", cmdline::SANDBOX),
        (true, Some(_)) => format!(
            "-sandbox {} (QEMU's seccomp filter, privilege elevation allowed for -runas)",
            cmdline::SANDBOX_RUN_AS
        ),
    };
    match run_as {
        Some(user) => format!("{filter}; QEMU runs as user `{user}` once it has opened its files (-runas)"),
        None => filter,
    }
}

/// Fails unless `qemu` accepts vmbench's `-sandbox`: QEMU parses it before
/// it acts on `-version`, so a QEMU built without seccomp (or too old for one
/// of the options) refuses here, before any launch, and nothing is started.
/// Whether the kernel lets the filter be installed is only known at a real
/// launch; QEMU then exits at once and the trial fails with its message.
/// `whom` names where `sandbox = false` would go (`target \`vm\``).
pub async fn check_sandbox(qemu: &Path, whom: &str) -> Result<()> {
    let out = Command::new(qemu)
        .args(["-sandbox", cmdline::SANDBOX, "-version"])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} -sandbox ... -version", qemu.display()))?;
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{} refuses `-sandbox {}` ({}): this QEMU lacks seccomp support (Debian's and Ubuntu's packages have it). \
         Install a QEMU built with libseccomp, or set `sandbox = false` on {whom} to run QEMU without its \
         syscall filter (recorded in run.json)",
        qemu.display(),
        cmdline::SANDBOX,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// First line of `qemu --version`.
pub async fn qemu_version(qemu: &Path) -> Result<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} --version", qemu.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            qemu.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// One QEMU process: spawned with its serial console on a pipe.
pub struct QemuLaunch {
    cmd: QemuCommand,
    /// The process's own cgroup, where the host lets vmbench make one.
    cgroup: Option<super::cgroup::LaunchCgroup>,
    child: Option<Child>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl QemuLaunch {
    pub fn new(cmd: QemuCommand) -> Self {
        QemuLaunch {
            cmd,
            cgroup: None,
            child: None,
            stderr: None,
        }
    }
}

#[async_trait]
impl Launch for QemuLaunch {
    async fn start(&mut self) -> Result<Started, String> {
        let (mut child, join) = spawn(&self.cmd, self.cgroup.as_ref()).map_err(|e| format!("could not start QEMU: {e}"))?;
        let uncounted = join.and_then(JoinClock::joined).unwrap_or_default();
        crate::fault::point("qemu-after-spawn");
        let stdout = child.stdout.take().expect("stdout is piped");
        self.stderr = child.stderr.take().map(super::collect_stderr);
        self.child = Some(child);
        Ok(Started {
            console: super::reader_stream(stdout),
            phases: super::join_phase(uncounted),
            pending: None,
            uncounted,
        })
    }

    async fn address(&self, port: u16) -> Result<SocketAddr, String> {
        forwarded(&self.cmd, port)
    }

    fn footprint(&self) -> Footprint {
        let Some(pid) = self.child.as_ref().and_then(Child::id) else {
            return Footprint::None;
        };
        let cgroup = self.cgroup.as_ref().map(|c| (c.memory.clone(), c.cpu.clone()));
        Footprint::Sampled(Box::new(move || Some(footprint::qemu_reader(cgroup, pid))))
    }

    fn boots_a_kernel(&self) -> bool {
        true
    }

    fn exit_style(&self) -> ExitStyle {
        ExitStyle::Stops { teardown: true }
    }

    async fn wait_gone(&mut self, deadline: tokio::time::Instant, _cleanly: bool) -> Gone {
        let Some(child) = self.child.as_mut() else {
            return Gone::default();
        };
        let waited = tokio::time::timeout_at(deadline, child.wait()).await;
        let at = Instant::now();
        if waited.is_err() {
            let _ = child.kill().await;
        }
        let stderr = super::stderr_text(self.stderr.take()).await;
        match waited {
            Ok(Ok(status)) if status.success() => Gone {
                at: Some(at),
                problem: None,
            },
            Ok(Ok(status)) => Gone {
                at: Some(at),
                problem: Some(format!("QEMU exited with {status}: {}", stderr.trim())),
            },
            _ => Gone {
                at: None,
                problem: Some(format!("QEMU did not exit in time and was killed: {}", stderr.trim())),
            },
        }
    }

    async fn remove(&mut self) -> Result<(), String> {
        super::end_child(self.child.take(), self.cgroup.as_ref()).await;
        if let Some(tap) = self.cmd.tap.take() {
            tap::delete(&tap.ifname);
        }
        Ok(())
    }
}

/// The tap device goes with the launch, however the launch ends.
impl Drop for QemuLaunch {
    fn drop(&mut self) {
        if let Some(tap) = self.cmd.tap.take() {
            if let Some(child) = self.child.as_mut() {
                // QEMU holds the device open; it goes first.
                let _ = child.start_kill();
            }
            tap::delete(&tap.ifname);
        }
    }
}

/// Sweeps a run's cgroups, its tap devices and, once empty, the bridge.
pub struct TapSweeper;

#[async_trait]
impl super::Sweeper for TapSweeper {
    fn key(&self) -> String {
        "vmbench cgroups and tap devices".into()
    }
    fn leftovers(&self) -> Option<super::Leftovers> {
        Some(super::Leftovers::TapDevices)
    }
    async fn sweep(&self, run_id: &str, interrupted: bool) -> Result<()> {
        super::CgroupSweeper.sweep(run_id, interrupted).await?;
        tap::sweep(Some(run_id));
        Ok(())
    }
}

/// Spawns QEMU with its console on a pipe, on the run's CPUs and in its
/// launch's cgroup (with the clock of that join); it dies with vmbench.
fn spawn(cmd: &QemuCommand, cgroup: Option<&super::cgroup::LaunchCgroup>) -> std::io::Result<(Child, Option<JoinClock>)> {
    let mut command = Command::new(&cmd.binary);
    command
        .args(cmd.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    super::pin_child(&mut command, cmd.cpuset.clone());
    let join = cgroup.map(|cgroup| cgroup.join_in_child(&mut command));
    super::die_with_vmbench(&mut command);
    Ok((command.spawn()?, join))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_qemu_that_refuses_the_sandbox_fails_preflight_saying_how_to_go_on() {
        // `false` exits 1 whatever it is given, as a QEMU without seccomp
        // does on `-sandbox`.
        let e = block_on(check_sandbox(Path::new("/bin/false"), "target `vm`"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacks seccomp support") && e.contains("`sandbox = false` on target `vm`"),
            "{e}"
        );
    }

    #[test]
    fn the_hosts_qemu_accepts_the_sandbox() {
        let Ok(qemu) = find_qemu(None) else {
            return; // no QEMU here: the integration tests say so loudly
        };
        block_on(check_sandbox(&qemu, "target `vm`")).unwrap();
    }
}
