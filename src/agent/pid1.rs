//! What the agent does differently as PID 1 in a VM: mount the pseudo file
//! systems, read the kernel command line, and leave by rebooting.

use crate::protocol::ExitMode;
use std::ffi::CString;

/// `CLOCK_BOOTTIME` in ns: time since the kernel started keeping time.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// True when the agent is a VM's init: PID 1 with no `/proc` yet (vmbench's
/// initramfs), or PID 1 on a root file system an initramfs has already
/// mounted `/proc` for, whose kernel command line carries vmbench's
/// instructions. A container's entrypoint is PID 1 too, but gets its
/// instructions as arguments (`args`), so it never reads the command line:
/// that read would sit between its start and its ready line.
pub fn is_vm_init(args: &[String]) -> bool {
    std::process::id() == 1
        && (!std::path::Path::new("/proc/self").exists()
            || (!args.iter().any(|a| a.starts_with(crate::protocol::NONCE_TOKEN)) && carries_instructions()))
}

/// Whether the kernel command line carries vmbench's instructions, or the
/// marker of a firmware boot that sends them through SMBIOS.
pub fn carries_instructions() -> bool {
    kernel_cmdline()
        .iter()
        .any(|t| t.starts_with(crate::protocol::NONCE_TOKEN) || t == crate::protocol::SMBIOS_MARKER)
}

/// A VM's instructions: the kernel command line, or after a firmware boot
/// (whose bootloader's command line is fixed) the SMBIOS OEM string the
/// host gave this launch.
pub fn vm_instructions() -> Vec<String> {
    let cmdline = kernel_cmdline();
    if !cmdline.iter().any(|t| t == crate::protocol::SMBIOS_MARKER) {
        return cmdline;
    }
    let Ok(entries) = std::fs::read_dir("/sys/firmware/dmi/entries") else {
        return cmdline;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("11-"))
        .filter_map(|e| std::fs::read(e.path().join("raw")).ok())
        .find_map(|raw| crate::protocol::tokens_from_smbios_oem(&raw))
        .unwrap_or(cmdline)
}

/// Mounts `/proc`, `/sys` and `/dev` when they are missing. Failures are
/// ignored: the boot workload needs none of them, and the workloads that do
/// report their own error.
pub fn mount_basics() {
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        let _ = std::fs::create_dir_all(target);
        let (Ok(source), Ok(target), Ok(fstype)) = (CString::new(source), CString::new(target), CString::new(fstype)) else {
            continue;
        };
        // SAFETY: all pointers are valid NUL-terminated strings; data is null.
        unsafe {
            libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null());
        }
    }
}

/// The kernel command line split on white space.
pub fn kernel_cmdline() -> Vec<String> {
    std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The agent's resident set now (`VmRSS`), 0 if `/proc` is missing.
pub fn rss_bytes() -> u64 {
    status_kib("VmRSS") * 1024
}

/// The agent's peak resident set so far (`VmHWM`). Not `getrusage`, whose
/// `ru_maxrss` survives `fork` and `exec` and so reports the parent's peak
/// (vmbench's, or runc's) for a process as small as the agent.
/// CPU time (user + system, every thread) the agent has used, in ms.
pub fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

pub fn peak_rss_bytes() -> u64 {
    status_kib("VmHWM") * 1024
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// `uname -r`.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Ends the VM by rebooting (QEMU runs with `-no-reboot`, so it exits) or
/// powering off. Should both fail, exiting makes the kernel panic, and
/// `panic=-1` turns that into a reboot as well.
pub fn leave(exit: ExitMode, status: i32) -> ! {
    // SAFETY: sync and reboot take no pointers; reboot only returns on error.
    unsafe {
        libc::sync();
        let (first, second) = match exit {
            ExitMode::Reboot => (libc::RB_AUTOBOOT, libc::RB_POWER_OFF),
            ExitMode::Poweroff => (libc::RB_POWER_OFF, libc::RB_AUTOBOOT),
        };
        libc::reboot(first);
        libc::reboot(second);
    }
    std::process::exit(status)
}
