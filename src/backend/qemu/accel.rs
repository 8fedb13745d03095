//! Does KVM really work here? `/dev/kvm` existing is not enough: on some
//! hosts (nested virtualisation without support) `KVM_CREATE_VM` succeeds
//! and the guest then spins forever. The only proof is a real guest that
//! boots under `-accel kvm` within a few seconds, so that is the probe.

use super::cmdline::{Accel, QemuCommand};
use super::QemuLaunch;
use crate::backend::Launch;
use crate::console::Console;
use crate::scenario::Machine;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The probe's verdict, cached for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kvm_works: bool,
    /// What was tried and what happened, for `run.json` and `doctor`.
    pub reason: String,
}

/// How long a KVM guest may take to print its ready line. A working KVM
/// boots the probe in well under a second; `VMBENCH_KVM_PROBE_TIMEOUT_S`
/// overrides this on slow hosts.
pub fn probe_timeout() -> Duration {
    let secs = std::env::var("VMBENCH_KVM_PROBE_TIMEOUT_S")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0);
    Duration::from_secs_f64(secs.unwrap_or(8.0))
}

/// Opens `/dev/kvm` and asks for a VM, without running anything in it.
pub fn device_check() -> Result<(), String> {
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
    use std::os::fd::AsRawFd;
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    // SAFETY: plain ioctls on a descriptor we own; no pointers passed.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if version != 12 {
        return Err(format!("/dev/kvm answered API version {version}, expected 12"));
    }
    // SAFETY: as above; the returned descriptor is closed right away.
    let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM, 0) };
    if vm < 0 {
        return Err(format!("KVM_CREATE_VM failed: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `vm` is a descriptor the kernel just gave us.
    unsafe { libc::close(vm) };
    Ok(())
}

/// Boots the agent once under KVM with a hard timeout; kills what it started.
pub async fn probe(qemu: &Path, kernel: &Path, initrd: &Path) -> Verdict {
    if let Err(why) = device_check() {
        return Verdict {
            kvm_works: false,
            reason: why,
        };
    }
    let timeout = probe_timeout();
    let nonce = crate::console::new_nonce();
    let mut append: Vec<String> = super::cmdline::BASE_KERNEL_ARGS.iter().map(|s| s.to_string()).collect();
    append.extend(crate::protocol::Instructions::new(&nonce, "boot").to_tokens());
    let cmd = QemuCommand {
        binary: qemu.to_path_buf(),
        machine: Machine::Microvm,
        accel: Accel::Kvm,
        vcpus: 1,
        memory_mib: 256,
        kernel: kernel.to_path_buf(),
        initrd: Some(initrd.to_path_buf()),
        append,
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
        // The probe asks whether KVM runs a guest here, whatever the targets'
        // sandbox; the preflight checks the sandbox on its own.
        sandbox: false,
        run_as: None,
    };
    let launched = Instant::now();
    let mut launch = QemuLaunch::new(cmd);
    let outcome = match launch.start().await {
        Ok(started) => Ok(ready_within(started.console, &nonce, timeout).await),
        Err(e) => Err(e),
    };
    let _ = launch.remove().await;
    let stderr = super::super::stderr_text(launch.stderr.take()).await;
    verdict_from(outcome, launched, &stderr, timeout)
}

/// When the console carried this launch's ready line; `Err(true)` when the
/// time ran out first, `Err(false)` when the console closed.
async fn ready_within(mut console: BoxStream<'static, std::io::Result<Bytes>>, nonce: &str, timeout: Duration) -> Result<Instant, bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reading = Console::new(nonce);
    loop {
        match tokio::time::timeout_at(deadline, console.next()).await {
            Err(_) => return Err(true),
            Ok(None | Some(Err(_))) => return Err(false),
            Ok(Some(Ok(chunk))) => reading.feed(Instant::now(), &chunk),
        }
        if let Some(at) = reading.report.ready_at {
            return Ok(at);
        }
    }
}

fn verdict_from(outcome: Result<Result<Instant, bool>, String>, launched: Instant, stderr: &str, timeout: Duration) -> Verdict {
    match outcome {
        Err(e) => Verdict {
            kvm_works: false,
            reason: format!("{e} (with -accel kvm)"),
        },
        Ok(Ok(ready_at)) => Verdict {
            kvm_works: true,
            reason: format!(
                "a KVM guest booted to its ready line in {:.0} ms",
                crate::backend::ms_between(launched, ready_at)
            ),
        },
        Ok(Err(true)) => Verdict {
            kvm_works: false,
            reason: format!(
                "/dev/kvm accepts KVM_CREATE_VM, but a KVM guest did not boot within {:.0} s (no usable nested virtualisation?)",
                timeout.as_secs_f64()
            ),
        },
        Ok(Err(false)) => Verdict {
            kvm_works: false,
            reason: format!("QEMU with -accel kvm exited before the guest was ready: {}", stderr.trim()),
        },
    }
}
