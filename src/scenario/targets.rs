//! One `[[target]]` table → a validated [`Target`]: the keys its kind
//! allows, and each kind's own settings with their defaults and ranges.

use super::error::Locator;
use super::raw::RawTarget;
use super::validate::{check_name, float_in, int_in, one_of, Result};
use super::*;
use std::io::Read;
use std::ops::Range;
use toml::Spanned;

pub(super) fn target_from_raw(loc: &Locator, i: usize, target: &Spanned<RawTarget>, base_dir: &Path, guests: &[Guest]) -> Result<Target> {
    let key = |k: &str| format!("target[{i}].{k}");
    let t = target.get_ref();
    let table = Some(target.span());
    let name = t
        .name
        .as_ref()
        .ok_or_else(|| loc.error(table.clone(), &key("name"), "missing: every target needs a `name`"))?;
    check_name(loc, name, &key("name"))?;
    let kind = t.kind.as_ref().ok_or_else(|| {
        loc.error(
            table.clone(),
            &key("kind"),
            "missing: set `kind` to \"vm\", \"container\" or \"native\"",
        )
    })?;
    let guest = guest_of(loc, i, t, guests)?;
    let (spec, allowed): (TargetSpec, &[&str]) = match kind.get_ref().as_str() {
        "vm" => (TargetSpec::Vm(vm_from_raw(loc, i, t, base_dir, guest)?), VM_KEYS),
        "container" => (
            TargetSpec::Container(container_from_raw(loc, i, t, base_dir, guest)?),
            CONTAINER_KEYS,
        ),
        "native" => (TargetSpec::Native(native_from_raw(loc, i, t, base_dir)?), NATIVE_KEYS),
        other => {
            return Err(loc.error(
                Some(kind.span()),
                &key("kind"),
                format!("unknown kind `{other}`; expected \"vm\", \"container\" or \"native\""),
            ))
        }
    };
    for (k, span) in present_keys(t) {
        if !allowed.contains(&k) {
            return Err(loc.error(
                Some(span),
                &key(k),
                format!("`{k}` does not apply to a target of kind \"{}\"", kind.get_ref()),
            ));
        }
    }
    Ok(Target {
        name: name.get_ref().clone(),
        spec,
        optional: t.optional.as_ref().is_some_and(|o| *o.get_ref()),
    })
}

/// The `[[guest]]` a target names with `guest = "NAME"`, if any.
fn guest_of(loc: &Locator, i: usize, t: &RawTarget, guests: &[Guest]) -> Result<Option<Guest>> {
    let Some(name) = &t.guest else {
        return Ok(None);
    };
    let found = guests.iter().find(|g| &g.name == name.get_ref()).cloned();
    if found.is_none() {
        let known: Vec<String> = guests.iter().map(|g| format!("`{}`", g.name)).collect();
        let hint = if known.is_empty() {
            "the scenario has no [[guest]] table".to_string()
        } else {
            format!("the scenario's guests are {}", known.join(", "))
        };
        return Err(loc.error(
            Some(name.span()),
            &format!("target[{i}].guest"),
            format!("no guest named `{}`; {hint}", name.get_ref()),
        ));
    }
    Ok(found)
}

const VM_KEYS: &[&str] = &[
    "guest",
    "boot",
    "backend",
    "machine",
    "accel",
    "vcpus",
    "memory_mib",
    "kernel",
    "initrd",
    "kernel_args",
    "qemu",
    "uri",
    "sandbox",
    "run_as",
    "network",
    "agent",
];
const CONTAINER_KEYS: &[&str] = &[
    "guest",
    "engine",
    "runtime",
    "cpus",
    "memory_mib",
    "host",
    "pids_limit",
    "network",
    "storage",
    "agent",
];
const NATIVE_KEYS: &[&str] = &["agent"];

/// The kind-specific keys a target sets, with the span of each value.
fn present_keys(t: &RawTarget) -> Vec<(&'static str, Range<usize>)> {
    let mut keys = Vec::new();
    let mut add = |k: &'static str, span: Option<Range<usize>>| {
        if let Some(span) = span {
            keys.push((k, span));
        }
    };
    add("guest", t.guest.as_ref().map(Spanned::span));
    add("boot", t.boot.as_ref().map(Spanned::span));
    add("backend", t.backend.as_ref().map(Spanned::span));
    add("machine", t.machine.as_ref().map(Spanned::span));
    add("accel", t.accel.as_ref().map(Spanned::span));
    add("vcpus", t.vcpus.as_ref().map(Spanned::span));
    add("kernel", t.kernel.as_ref().map(Spanned::span));
    add("initrd", t.initrd.as_ref().map(Spanned::span));
    add("kernel_args", t.kernel_args.as_ref().map(Spanned::span));
    add("qemu", t.qemu.as_ref().map(Spanned::span));
    add("uri", t.uri.as_ref().map(Spanned::span));
    add("sandbox", t.sandbox.as_ref().map(Spanned::span));
    add("run_as", t.run_as.as_ref().map(Spanned::span));
    add("memory_mib", t.memory_mib.as_ref().map(Spanned::span));
    add("engine", t.engine.as_ref().map(Spanned::span));
    add("runtime", t.runtime.as_ref().map(Spanned::span));
    add("cpus", t.cpus.as_ref().map(Spanned::span));
    add("host", t.host.as_ref().map(Spanned::span));
    add("pids_limit", t.pids_limit.as_ref().map(Spanned::span));
    add("network", t.network.as_ref().map(Spanned::span));
    add("storage", t.storage.as_ref().map(Spanned::span));
    add("agent", t.agent.as_ref().map(Spanned::span));
    keys
}

fn vm_from_raw(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path, guest: Option<Guest>) -> Result<VmSpec> {
    let key = |k: &str| format!("target[{i}].{k}");
    let backend = vm_backend(loc, i, t)?;
    let libvirt = backend == VmBackend::Libvirt;
    if let Some(guest) = &guest {
        check_vm_guest(loc, i, t, guest, libvirt)?;
    }
    let disk = guest.as_ref().is_some_and(|g| g.source.disk().is_some());
    // A disk of the user's own boots by firmware unless a kernel is given,
    // and firmware needs q35.
    let firmware_default = disk && t.kernel.is_none();
    let machine = vm_machine(loc, i, t, libvirt, firmware_default)?;
    let boot = vm_boot(loc, i, t, guest.as_ref(), machine, firmware_default)?;
    let initrd = vm_initrd(loc, i, t, base_dir, guest.as_ref(), boot)?;
    let uri = vm_uri(loc, i, t, libvirt)?;
    let sandbox = vm_sandbox(loc, i, t, libvirt)?;
    let run_as = vm_run_as(loc, i, t, libvirt)?;
    let network = one_of(
        loc,
        t.network.as_ref(),
        &key("network"),
        &[("user", VmNetwork::User), ("tap", VmNetwork::Tap)],
        VmNetwork::User,
    )?;
    let probed = guest.as_ref().filter(|g| g.ready.is_some());
    if let (Some(g), VmNetwork::Tap) = (probed, network) {
        return Err(loc.error(
            t.network.as_ref().map(Spanned::span),
            &key("network"),
            format!(
                "guest `{}` is ready by its `ready` probe and runs only the boot workload, whose probe goes through \
                 QEMU's user network (the tap path's address is set by vmbench's agent); drop `network`",
                g.name
            ),
        ));
    }
    if let Some(g) = probed.filter(|g| matches!(g.ready, Some(ReadyProbe::Tcp(_)))) {
        return Err(loc.error(
            t.guest.as_ref().map(Spanned::span),
            &key("guest"),
            format!(
                "guest `{}` has ready = {{ tcp = ... }}, which cannot tell a VM is up: QEMU's user network accepts \
                 the host's connection to a forwarded port before the guest does; use {{ http = \"/PATH\" }} (an \
                 answer comes from the guest) or {{ console = \"REGEX\" }}",
                g.name
            ),
        ));
    }
    if let (true, VmNetwork::Tap) = (libvirt, network) {
        return Err(loc.error(
            t.network.as_ref().map(Spanned::span),
            &key("network"),
            "network = \"tap\" applies to backend = \"qemu\" only; libvirt targets use QEMU's user network",
        ));
    }
    let accel = one_of(
        loc,
        t.accel.as_ref(),
        &key("accel"),
        &[("auto", AccelChoice::Auto), ("kvm", AccelChoice::Kvm), ("tcg", AccelChoice::Tcg)],
        AccelChoice::Auto,
    )?;
    let vcpus = int_in(loc, t.vcpus.as_ref(), &key("vcpus"), 1..=64, 1)? as u32;
    let memory_mib = int_in(loc, t.memory_mib.as_ref(), &key("memory_mib"), 64..=1_048_576, 256)? as u32;
    let kernel = vm_kernel(loc, i, t, base_dir)?;
    let kernel_args = vm_kernel_args(loc, i, t)?;
    let qemu = t.qemu.as_ref().map(|q| PathBuf::from(q.get_ref()));
    let agent = guest_agent(loc, i, t, base_dir, "vm", guest.as_ref())?;
    Ok(VmSpec {
        backend,
        machine,
        accel,
        vcpus,
        memory_mib,
        kernel,
        initrd,
        kernel_args,
        qemu,
        uri,
        guest,
        boot,
        sandbox,
        run_as,
        network,
        agent,
    })
}

/// The VM's `boot` path: direct unless firmware is asked for, which needs a
/// `[[guest]]` (a disk with bootloaders) and the q35 machine (a microvm has
/// no disk-booting firmware).
/// A disk of the user's own boots by BIOS by default, directly only with a
/// `kernel` the target gives, and never with `kernel_args` under firmware
/// (its bootloader's command line is on the disk).
fn vm_boot(loc: &Locator, i: usize, t: &RawTarget, guest: Option<&Guest>, machine: Machine, firmware_default: bool) -> Result<BootPath> {
    let key = format!("target[{i}].boot");
    let boot = one_of(
        loc,
        t.boot.as_ref(),
        &key,
        &[("direct", BootPath::Direct), ("bios", BootPath::Bios), ("uefi", BootPath::Uefi)],
        if firmware_default { BootPath::Bios } else { BootPath::Direct },
    )?;
    let span = t.boot.as_ref().map(Spanned::span);
    if let Some(g) = guest.filter(|g| g.source.disk().is_some()) {
        check_disk_boot(loc, i, t, g, boot)?;
    }
    if boot == BootPath::Direct {
        return Ok(boot);
    }
    if guest.is_none() {
        return Err(loc.error(
            span,
            &key,
            format!(
                "boot = \"{}\" boots a disk, and only a [[guest]] system has one; add `guest = ...` or drop `boot`",
                boot.as_str()
            ),
        ));
    }
    if machine == Machine::Microvm {
        return Err(loc.error(
            span,
            &key,
            format!(
                "boot = \"{}\" needs firmware that boots a disk, which the microvm machine lacks; set machine = \"q35\"",
                boot.as_str()
            ),
        ));
    }
    Ok(boot)
}

/// What booting a disk of the user's own `boot`'s way needs: a kernel the
/// target gives for a direct boot; no kernel, initramfs or kernel arguments
/// under firmware, whose bootloader on the disk chooses them.
fn check_disk_boot(loc: &Locator, i: usize, t: &RawTarget, g: &Guest, boot: BootPath) -> Result<()> {
    if boot == BootPath::Direct {
        if t.kernel.is_none() {
            return Err(loc.error(
                t.boot.as_ref().map(Spanned::span),
                &format!("target[{i}].kernel"),
                format!(
                    "missing: boot = \"direct\" of guest `{}`'s disk needs the kernel to start: `kernel = \"PATH\"` \
                     (or \"minimal\"), usually with `initrd = \"PATH\"` and `kernel_args = [\"root=/dev/vda1\"]`; \
                     or boot it by firmware (boot = \"bios\" or \"uefi\")",
                    g.name
                ),
            ));
        }
        return Ok(());
    }
    if g.source.disk().is_some_and(|d| d.bare_file_system) {
        return Err(loc.error(
            t.boot
                .as_ref()
                .map_or_else(|| t.guest.as_ref().map(Spanned::span), |b| Some(b.span())),
            &format!("target[{i}].boot"),
            format!(
                "guest `{}`'s disk is a bare file system, with no partition table and so no bootloader for firmware \
                 (boot = \"{}\") to start; boot it with boot = \"direct\" and a `kernel`",
                g.name,
                boot.as_str()
            ),
        ));
    }
    let given = [
        ("kernel", t.kernel.as_ref().map(Spanned::span)),
        ("initrd", t.initrd.as_ref().map(Spanned::span)),
        ("kernel_args", t.kernel_args.as_ref().map(Spanned::span)),
    ];
    if let Some((k, span)) = given.into_iter().find_map(|(k, span)| Some((k, span?))) {
        return Err(loc.error(
            Some(span),
            &format!("target[{i}].{k}"),
            format!(
                "`{k}` cannot reach a kernel that guest `{}`'s own bootloader starts (boot = \"{}\"); \
                 drop it, or boot the disk with boot = \"direct\" and a `kernel`",
                g.name,
                boot.as_str()
            ),
        ));
    }
    Ok(())
}

/// The `initrd` a direct boot of the user's own disk starts with; no other
/// VM takes one (vmbench makes its own initramfs, or boots the tree's).
fn vm_initrd(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path, guest: Option<&Guest>, boot: BootPath) -> Result<Option<PathBuf>> {
    let Some(initrd) = &t.initrd else { return Ok(None) };
    let key = format!("target[{i}].initrd");
    let disk = guest.is_some_and(|g| g.source.disk().is_some());
    if !disk || boot != BootPath::Direct {
        return Err(loc.error(
            Some(initrd.span()),
            &key,
            "`initrd` applies to boot = \"direct\" of a disk of your own (`[[guest]] disk = ...`); \
             otherwise vmbench makes the initramfs (its agent) or boots the one the guest's tree installed",
        ));
    }
    let path = base_dir.join(initrd.get_ref());
    if !path.is_file() {
        return Err(loc.error(
            Some(initrd.span()),
            &key,
            format!(
                "`{}` does not exist (looked at {}; a relative path is relative to the scenario file)",
                initrd.get_ref(),
                path.display()
            ),
        ));
    }
    Ok(Some(path))
}

/// Whether QEMU runs under its seccomp sandbox: yes unless `sandbox = false`
/// (to debug QEMU itself); libvirt decides its own in its `qemu.conf`.
fn vm_sandbox(loc: &Locator, i: usize, t: &RawTarget, libvirt: bool) -> Result<bool> {
    match &t.sandbox {
        Some(s) if libvirt => Err(loc.error(
            Some(s.span()),
            &format!("target[{i}].sandbox"),
            "`sandbox` only applies to backend = \"qemu\"; libvirt sandboxes its QEMU itself \
             (`seccomp_sandbox` in /etc/libvirt/qemu.conf, on unless set to 0), which vmbench records but does not change",
        )),
        Some(s) => Ok(*s.get_ref()),
        None => Ok(true),
    }
}

/// The user QEMU runs as once it has opened what it needs (`-runas`); qemu
/// backend only (libvirt runs its QEMU as its own user), and a user this
/// host has.
fn vm_run_as(loc: &Locator, i: usize, t: &RawTarget, libvirt: bool) -> Result<Option<String>> {
    let Some(user) = &t.run_as else { return Ok(None) };
    let key = format!("target[{i}].run_as");
    if libvirt {
        return Err(loc.error(
            Some(user.span()),
            &key,
            "`run_as` only applies to backend = \"qemu\"; libvirt runs its QEMU as the user in /etc/libvirt/qemu.conf",
        ));
    }
    let name = user.get_ref();
    if !user_exists(name) {
        return Err(loc.error(Some(user.span()), &key, format!("no user `{name}` on this host")));
    }
    Ok(Some(name.clone()))
}

/// Whether the host's user database knows `name` (getpwnam_r: scenarios
/// are validated from several threads at once).
fn user_exists(name: &str) -> bool {
    let Ok(c_name) = std::ffi::CString::new(name) else { return false };
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwnam_r writes
    // the entry's strings into `buf` and sets `found` to `entry` or null.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        libc::getpwnam_r(c_name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) == 0 && !found.is_null()
    }
}

/// The VM's `backend` (QEMU by default); libvirt only if this build has it.
fn vm_backend(loc: &Locator, i: usize, t: &RawTarget) -> Result<VmBackend> {
    let key = format!("target[{i}].backend");
    let backend = one_of(
        loc,
        t.backend.as_ref(),
        &key,
        &[("qemu", VmBackend::Qemu), ("libvirt", VmBackend::Libvirt)],
        VmBackend::Qemu,
    )?;
    if backend == VmBackend::Libvirt && !cfg!(feature = "libvirt") {
        return Err(loc.error(
            t.backend.as_ref().map(Spanned::span),
            &key,
            "this vmbench was built without libvirt support; rebuild it with `cargo build --release --features libvirt` \
             (needs libvirt-dev and pkg-config, which scripts/setup.sh installs)",
        ));
    }
    Ok(backend)
}

/// What a VM that boots a `[[guest]]` cannot combine it with: a container
/// image of the user's own (a VM boots a disk), a disk of the user's own
/// under libvirt, and a `kernel` of its own for a tree vmbench builds (the
/// guest boots the kernel installed in its root file system).
fn check_vm_guest(loc: &Locator, i: usize, t: &RawTarget, guest: &Guest, libvirt: bool) -> Result<()> {
    if guest.source.is_own_image() {
        return Err(loc.error(
            t.guest.as_ref().map(Spanned::span),
            &format!("target[{i}].guest"),
            format!(
                "guest `{}` is a container image (`{}`), which only container targets run; a VM boots a disk, and \
                 vmbench makes VM disks only of the root file systems it builds (`rootfs = {{...}}`) so far",
                guest.name,
                guest.source.key()
            ),
        ));
    }
    if libvirt && guest.source.disk().is_some() {
        // libvirt gives its QEMU user the disk by changing the file's owner
        // (dynamic ownership), which vmbench does to its own cached disks
        // but not to a file of the user's.
        return Err(loc.error(
            t.guest.as_ref().map(Spanned::span),
            &format!("target[{i}].guest"),
            format!(
                "guest `{}` is a disk of your own, which only backend = \"qemu\" boots: libvirt would hand your \
                 file to its QEMU user by changing its owner; drop `backend`",
                guest.name
            ),
        ));
    }
    if let Some(kernel) = t.kernel.as_ref().filter(|_| guest.rootfs().is_some()) {
        return Err(loc.error(
            Some(kernel.span()),
            &format!("target[{i}].kernel"),
            format!(
                "guest `{}` boots the kernel installed in its own root file system; remove `kernel`",
                guest.name
            ),
        ));
    }
    Ok(())
}

/// The VM's `machine`: microvm by default, q35 under libvirt, which cannot run microvm.
fn vm_machine(loc: &Locator, i: usize, t: &RawTarget, libvirt: bool, firmware_default: bool) -> Result<Machine> {
    let key = format!("target[{i}].machine");
    let machine = one_of(
        loc,
        t.machine.as_ref(),
        &key,
        &[("microvm", Machine::Microvm), ("q35", Machine::Q35)],
        if libvirt || firmware_default {
            Machine::Q35
        } else {
            Machine::Microvm
        },
    )?;
    if libvirt && machine == Machine::Microvm {
        return Err(loc.error(
            t.machine.as_ref().map(Spanned::span),
            &key,
            "libvirt cannot run the microvm machine type; use machine = \"q35\" (the default for backend = \"libvirt\")",
        ));
    }
    Ok(machine)
}

/// The libvirt connection `uri`, or the default one; set only for backend = "libvirt".
fn vm_uri(loc: &Locator, i: usize, t: &RawTarget, libvirt: bool) -> Result<String> {
    let key = format!("target[{i}].uri");
    match &t.uri {
        Some(u) if !libvirt => Err(loc.error(Some(u.span()), &key, "`uri` only applies to backend = \"libvirt\"")),
        Some(u) if !u.get_ref().contains(":/") => Err(loc.error(
            Some(u.span()),
            &key,
            format!("`{}` is not a libvirt URI (like \"qemu:///system\")", u.get_ref()),
        )),
        Some(u) => Ok(u.get_ref().clone()),
        None => Ok(super::DEFAULT_LIBVIRT_URI.to_string()),
    }
}

/// The guest `kernel`: "auto" (the default) or a file relative to `base_dir` that must exist.
fn vm_kernel(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path) -> Result<KernelChoice> {
    match &t.kernel {
        None => Ok(KernelChoice::Auto),
        Some(k) if k.get_ref() == "auto" || k.get_ref() == "distro" => Ok(KernelChoice::Auto),
        Some(k) if k.get_ref() == "minimal" => Ok(KernelChoice::Minimal),
        Some(k) => {
            let path = base_dir.join(k.get_ref());
            if !path.is_file() {
                return Err(loc.error(
                    Some(k.span()),
                    &format!("target[{i}].kernel"),
                    format!(
                        "kernel `{}` does not exist (looked at {}); expected \"distro\", \"minimal\" or a kernel file",
                        k.get_ref(),
                        path.display()
                    ),
                ));
            }
            Ok(KernelChoice::Path(path))
        }
    }
}

/// The extra `kernel_args`: each one parameter without spaces, none of them vmbench's own.
fn vm_kernel_args(loc: &Locator, i: usize, t: &RawTarget) -> Result<Vec<String>> {
    let kernel_args = t.kernel_args.as_ref().map(|a| a.get_ref().clone()).unwrap_or_default();
    if let Some(bad) = kernel_args
        .iter()
        .find(|a| a.is_empty() || a.contains(char::is_whitespace) || a.starts_with(crate::protocol::TOKEN_PREFIX))
    {
        let span = t.kernel_args.as_ref().map(Spanned::span);
        return Err(loc.error(
            span,
            &format!("target[{i}].kernel_args"),
            format!("`{bad}`: each entry must be one parameter without spaces, not starting with `vmbench.`"),
        ));
    }
    Ok(kernel_args)
}

/// A native target's `agent`: a program file relative to `base_dir`, which must exist.
fn native_from_raw(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path) -> Result<NativeSpec> {
    Ok(NativeSpec {
        agent: agent_program(loc, i, t, base_dir)?,
    })
}

/// A target's `agent` program, relative to `base_dir`; it must exist.
fn agent_program(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path) -> Result<Option<PathBuf>> {
    let Some(agent) = &t.agent else {
        return Ok(None);
    };
    let path = base_dir.join(agent.get_ref());
    if !path.is_file() {
        return Err(loc.error(
            Some(agent.span()),
            &format!("target[{i}].agent"),
            format!("program `{}` does not exist (looked at {})", agent.get_ref(), path.display()),
        ));
    }
    Ok(Some(path))
}

/// A VM's or container's `agent`: as a native target's, and static, since
/// it runs where no dynamic loader is (a VM's initramfs, a `FROM scratch`
/// image), and only where an agent runs at all (not `init = "image"`).
fn guest_agent(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path, kind: &str, guest: Option<&Guest>) -> Result<Option<PathBuf>> {
    let Some(path) = agent_program(loc, i, t, base_dir)? else {
        return Ok(None);
    };
    let span = t.agent.as_ref().map(Spanned::span);
    let key = format!("target[{i}].agent");
    if let Some(g) = guest.filter(|g| g.init == GuestInit::Image) {
        return Err(loc.error(span, &key, format!("guest `{}` has init = \"image\", which runs no agent", g.name)));
    }
    // The ELF and program headers are at the start of the file.
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
        .map_err(|e| loc.error(span.clone(), &key, format!("reading {}: {e}", path.display())))?;
    let why = match crate::elf::linkage(&bytes) {
        crate::elf::Linkage::Static => return Ok(Some(path)),
        crate::elf::Linkage::Dynamic(loader) => format!("it needs the dynamic loader {loader}"),
        crate::elf::Linkage::NotElf => "it is not an ELF executable".to_string(),
    };
    Err(loc.error(
        span,
        &key,
        format!(
            "`{}` cannot be a {kind}'s agent: {why}, and it runs where there is none (link it statically)",
            path.display()
        ),
    ))
}

fn container_from_raw(loc: &Locator, i: usize, t: &RawTarget, base_dir: &Path, guest: Option<Guest>) -> Result<ContainerSpec> {
    let key = |k: &str| format!("target[{i}].{k}");
    if let Some(g) = guest.as_ref().filter(|g| g.source.disk().is_some()) {
        return Err(loc.error(
            t.guest.as_ref().map(Spanned::span),
            &key("guest"),
            format!(
                "guest `{}` is a VM disk image, which only VM targets boot; a container runs a root file system \
                 (`rootfs = {{...}}`) or an image (`image`, `dockerfile`, `image_archive`)",
                g.name
            ),
        ));
    }
    let engine = one_of(
        loc,
        t.engine.as_ref(),
        &key("engine"),
        &[("docker", Engine::Docker), ("podman", Engine::Podman)],
        Engine::Docker,
    )?;
    let runtime = t
        .runtime
        .as_ref()
        .map(|r| r.get_ref().clone())
        .unwrap_or_else(|| "runc".to_string());
    if runtime.is_empty() || !runtime.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        let span = t.runtime.as_ref().map(Spanned::span);
        return Err(loc.error(
            span,
            &key("runtime"),
            format!("`{runtime}` is not a runtime name (letters, digits, - and _)"),
        ));
    }
    let host_cores = usable_cpus() as f64;
    let cpus = float_in(loc, t.cpus.as_ref(), &key("cpus"), 0.01..=host_cores, 1.0f64.min(host_cores))?;
    let memory_mib = int_in(loc, t.memory_mib.as_ref(), &key("memory_mib"), 6..=1_048_576, 256)? as u32;
    let pids_limit = int_in(loc, t.pids_limit.as_ref(), &key("pids_limit"), 1..=1_000_000, 64)?;
    let host = t.host.as_ref().map(|h| h.get_ref().clone());
    let network = one_of(
        loc,
        t.network.as_ref(),
        &key("network"),
        &[
            ("bridge", ContainerNetwork::Bridge),
            ("published", ContainerNetwork::Published),
            ("published-nat", ContainerNetwork::PublishedNat),
            ("host", ContainerNetwork::Host),
        ],
        ContainerNetwork::Bridge,
    )?;
    if let Some(g) = guest.as_ref().filter(|_| network.publishes()) {
        if g.ready.is_some() {
            return Err(loc.error(
                t.network.as_ref().map(Spanned::span),
                &key("network"),
                format!(
                    "guest `{}` is probed for readiness on its own port, which network = \"{}\" does not \
                     publish (it publishes the workload's); use \"bridge\" or \"host\"",
                    g.name,
                    network.as_str()
                ),
            ));
        }
    }
    let storage = one_of(
        loc,
        t.storage.as_ref(),
        &key("storage"),
        &[("layer", ServerStorage::Layer), ("volume", ServerStorage::Volume)],
        ServerStorage::Layer,
    )?;
    let agent = guest_agent(loc, i, t, base_dir, "container", guest.as_ref())?;
    Ok(ContainerSpec {
        engine,
        runtime,
        cpus,
        memory_mib,
        host,
        pids_limit,
        network,
        agent,
        guest,
        storage,
    })
}
