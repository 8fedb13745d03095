//! The agent run as a unit of the guest's own init (`vmbench-agent
//! --service`), ordered after `multi-user.target`: in a VM booted from a
//! root file system and in a container whose PID 1 is systemd. The unit is
//! the same file in both, so the agent finds out where it is and, from
//! that, where its instructions are, where the host reads it and how the
//! target ends.

use std::collections::BTreeMap;

/// The first argument that selects this role.
pub const FLAG: &str = "--service";

/// Where the service runs. Either way its output goes to `/dev/console`,
/// where systemd writes too: the kernel's console in a VM, the container's
/// terminal (which the engine streams) in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A VM: instructions on the kernel command line, leaves by powering
    /// the machine off.
    Vm,
    /// A container: instructions in PID 1's environment, leaves by asking
    /// systemd for an immediate power-off, which ends the container.
    Container,
}

/// A VM's kernel command line carries the instructions; a container's
/// `/proc/cmdline` is the host's, which never does.
pub fn place() -> Place {
    if super::pid1::carries_instructions() {
        Place::Vm
    } else {
        Place::Container
    }
}

/// The instruction tokens for `place`.
pub fn instructions(place: Place) -> Vec<String> {
    match place {
        Place::Vm => super::pid1::vm_instructions(),
        Place::Container => {
            let environ = std::fs::read("/proc/1/environ").unwrap_or_default();
            from_environ(&environ)
        }
    }
}

/// Whether vmbench gave the service any instruction: a `vmbench.` token
/// besides the marker a firmware-booted disk always carries.
pub fn has_instructions(tokens: &[String]) -> bool {
    tokens
        .iter()
        .any(|t| t.starts_with(crate::protocol::TOKEN_PREFIX) && t != crate::protocol::SMBIOS_MARKER)
}

/// The tokens of [`crate::protocol::INSTRUCTIONS_ENV`] in a NUL-separated
/// environment block.
pub fn from_environ(environ: &[u8]) -> Vec<String> {
    let prefix = format!("{}=", crate::protocol::INSTRUCTIONS_ENV);
    environ
        .split(|&b| b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .find_map(|var| var.strip_prefix(&prefix))
        .map(|value| value.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Set once the agent writes to `/dev/console` itself.
static ON_CONSOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Points standard output and error at what the host reads, `/dev/console`
/// (systemd's own standard output is /dev/null). Opened without becoming
/// the controlling terminal, so a getty's hang-up of the console sends no
/// SIGHUP. Left as they are (the journal) if it cannot be opened; the host
/// then times out and records the console it saw.
pub fn take_console() {
    if open_console() {
        ON_CONSOLE.store(true, std::sync::atomic::Ordering::Relaxed);
    } else {
        eprintln!("vmbench-agent: cannot open /dev/console for the host to read");
    }
}

/// After a failed write: a getty starting on the console (`Type=idle`, so
/// after this unit started) hangs it up with `vhangup`, and every
/// descriptor opened before that fails from then on. Reopens the console
/// and says whether the write is worth retrying.
pub fn reopen_console() -> bool {
    ON_CONSOLE.load(std::sync::atomic::Ordering::Relaxed) && open_console()
}

fn open_console() -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
    else {
        return false;
    };
    // SAFETY: both descriptors are open; dup2 replaces 1 and 2 atomically.
    unsafe { libc::dup2(file.as_raw_fd(), 1) >= 0 && libc::dup2(file.as_raw_fd(), 2) >= 0 }
}

/// systemd's own boot phases, in ms, from its monotonic timestamps (what
/// `systemd-analyze` prints), ending where this unit began: when
/// `multi-user.target` was reached. After UEFI with a bootloader that tells
/// systemd (systemd-boot), `firmware` and `loader` come first. A container
/// has no kernel or initrd phase of its own, so only `userspace` is given
/// there.
pub fn systemd_phases(place: Place) -> BTreeMap<String, f64> {
    let manager = systemctl_show(&[
        "--property=FirmwareTimestampMonotonic",
        "--property=LoaderTimestampMonotonic",
        "--property=InitRDTimestampMonotonic",
        "--property=UserspaceTimestampMonotonic",
    ]);
    let target = systemctl_show(&["multi-user.target", "--property=ActiveEnterTimestampMonotonic"]);
    phases_from(place, &manager, &target)
}

/// The phases from `systemctl show` output of the manager and of
/// `multi-user.target` (`Key=value` lines, values in µs).
pub fn phases_from(place: Place, manager: &str, target: &str) -> BTreeMap<String, f64> {
    let us = |text: &str, key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
            .filter(|&v: &u64| v > 0)
    };
    let initrd = us(manager, "InitRDTimestampMonotonic");
    let userspace = us(manager, "UserspaceTimestampMonotonic");
    let reached = us(target, "ActiveEnterTimestampMonotonic");
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e3;
    let mut phases = BTreeMap::new();
    // Both are µs *before* the kernel started, as systemd records them.
    let (firmware, loader) = (us(manager, "FirmwareTimestampMonotonic"), us(manager, "LoaderTimestampMonotonic"));
    if place == Place::Vm {
        if let (Some(firmware), Some(loader)) = (firmware, loader) {
            phases.insert("firmware".to_string(), ms(loader, firmware));
        }
        if let Some(loader) = loader {
            phases.insert("loader".to_string(), ms(0, loader));
        }
        if let Some(end) = initrd.or(userspace) {
            phases.insert("kernel".to_string(), ms(0, end));
        }
        if let (Some(initrd), Some(userspace)) = (initrd, userspace) {
            phases.insert("initrd".to_string(), ms(initrd, userspace));
        }
    }
    if let (Some(userspace), Some(reached)) = (userspace, reached) {
        phases.insert("userspace".to_string(), ms(userspace, reached));
    }
    phases
}

fn systemctl_show(args: &[&str]) -> String {
    let binary = ["/usr/bin/systemctl", "/bin/systemctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("systemctl");
    std::process::Command::new(binary)
        .arg("show")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Ends a container whose PID 1 is systemd: `SIGRTMIN+14` asks it for an
/// immediate power-off (no units stopped), which in a container ends PID 1
/// and so the container. Returns the agent's status for the unit.
pub fn stop_container(status: i32) -> i32 {
    // SAFETY: kill takes no pointers.
    let rc = unsafe { libc::kill(1, libc::SIGRTMIN() + 14) };
    if rc != 0 {
        eprintln!(
            "vmbench-agent: cannot ask systemd to power off: {}",
            std::io::Error::last_os_error()
        );
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_booted_without_vmbench_has_no_instructions() {
        let tokens = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!has_instructions(&tokens(&[
            "console=ttyS0",
            crate::protocol::SMBIOS_MARKER,
            "quiet"
        ])));
        assert!(!has_instructions(&[]));
        assert!(has_instructions(&tokens(&["quiet", "vmbench.nonce=ab"])));
    }

    #[test]
    fn instructions_come_from_pid_1s_environment() {
        let environ = b"container=docker\0VMBENCH_INSTRUCTIONS=vmbench.nonce=ab vmbench.workload=boot\0PATH=/bin\0";
        assert_eq!(from_environ(environ), ["vmbench.nonce=ab", "vmbench.workload=boot"]);
        assert!(from_environ(b"PATH=/bin\0").is_empty());
    }

    #[test]
    fn phases_follow_systemd_analyze() {
        let manager = "InitRDTimestampMonotonic=1500000\nUserspaceTimestampMonotonic=4000000\n";
        let target = "ActiveEnterTimestampMonotonic=9250000\n";
        let vm = phases_from(Place::Vm, manager, target);
        assert_eq!(vm["kernel"], 1500.0);
        assert_eq!(vm["initrd"], 2500.0);
        assert_eq!(vm["userspace"], 5250.0);
        assert!(!vm.contains_key("firmware") && !vm.contains_key("loader"));
        let uefi = phases_from(
            Place::Vm,
            &format!("FirmwareTimestampMonotonic=3000000\nLoaderTimestampMonotonic=800000\n{manager}"),
            target,
        );
        assert_eq!((uefi["firmware"], uefi["loader"]), (2200.0, 800.0));
        // A container has neither kernel nor initrd of its own.
        let ctr = phases_from(Place::Container, manager, target);
        assert_eq!(ctr.keys().collect::<Vec<_>>(), ["userspace"]);
        // No initrd: the kernel phase ends where userspace begins.
        let direct = phases_from(Place::Vm, "InitRDTimestampMonotonic=0\nUserspaceTimestampMonotonic=4000000", target);
        assert_eq!(direct["kernel"], 4000.0);
        assert!(!direct.contains_key("initrd"));
        assert!(phases_from(Place::Vm, "", "").is_empty());
    }
}
