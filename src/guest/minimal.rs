//! `kernel = "minimal"`: a small kernel vmbench builds itself from the
//! distribution's kernel source package (`linux-source-6.1` on Debian 12),
//! `make tinyconfig` plus [`CONFIG`], everything built in and no modules,
//! enough for vmbench's initramfs and every workload on both machine types.
//! Built once into the cache under a key made of the source archive's name,
//! size and modification time, the configuration and [`RECIPE_VERSION`], in
//! a temporary directory renamed into place only when complete.

use super::{cache, run_tool as run, sha256_hex};
use crate::cache::TempDir;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the build steps below change, so old kernels are not reused.
const RECIPE_VERSION: u32 = 1;

/// What `make tinyconfig` leaves out and vmbench's guests need, each with
/// why. Everything the agent and its workloads touch is built in:
/// a VM boots it without an initramfs of modules.
pub const CONFIG: &[(&str, &str)] = &[
    ("CONFIG_64BIT", "an x86-64 kernel (tinyconfig is 32-bit)"),
    ("CONFIG_SMP", "more than one vCPU"),
    ("CONFIG_PRINTK", "kernel messages on the console (a panic says why)"),
    ("CONFIG_BLK_DEV_INITRD", "vmbench's initramfs"),
    ("CONFIG_BINFMT_ELF", "running the agent"),
    ("CONFIG_MULTIUSER", "the agent's system calls for users and groups"),
    ("CONFIG_FUTEX", "threads (Rust's standard library)"),
    ("CONFIG_EPOLL", "the agent's network workload"),
    ("CONFIG_EVENTFD", "the agent's network workload"),
    ("CONFIG_SIGNALFD", "completeness of the system-call surface"),
    ("CONFIG_TIMERFD", "completeness of the system-call surface"),
    ("CONFIG_POSIX_TIMERS", "clock_gettime on every clock the agent reads"),
    ("CONFIG_ADVISE_SYSCALLS", "madvise, used by the memory workload's allocator"),
    ("CONFIG_SHMEM", "tmpfs and shared anonymous memory"),
    ("CONFIG_TMPFS", "tmpfs"),
    ("CONFIG_PROC_FS", "/proc, which the agent mounts"),
    ("CONFIG_SYSFS", "/sys, where the agent finds its disks by serial"),
    ("CONFIG_DEVTMPFS", "/dev, which the agent mounts"),
    ("CONFIG_TTY", "the serial console"),
    ("CONFIG_SERIAL_8250", "the serial console (ttyS0)"),
    ("CONFIG_SERIAL_8250_CONSOLE", "the serial console (ttyS0)"),
    ("CONFIG_HYPERVISOR_GUEST", "paravirtual guest support"),
    ("CONFIG_PARAVIRT", "paravirtual guest support"),
    ("CONFIG_KVM_GUEST", "kvm-clock and paravirtual features under KVM"),
    ("CONFIG_X86_MPPARSE", "interrupt routing from the firmware's MP table"),
    ("CONFIG_HIGH_RES_TIMERS", "timers finer than a jiffy"),
    (
        "CONFIG_ACPI",
        "microvm describes its virtio-mmio devices in ACPI, as q35 does its hardware",
    ),
    ("CONFIG_PCI", "q35's devices"),
    ("CONFIG_PCI_MSI", "virtio-pci interrupts"),
    ("CONFIG_VIRTIO_MENU", "virtio"),
    ("CONFIG_VIRTIO", "virtio"),
    ("CONFIG_VIRTIO_PCI", "virtio devices on q35"),
    ("CONFIG_VIRTIO_MMIO", "virtio devices on microvm"),
    (
        "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES",
        "virtio-mmio devices named on the command line",
    ),
    ("CONFIG_BLOCK", "the disk workload's scratch disk"),
    ("CONFIG_BLK_DEV", "the disk workload's scratch disk"),
    ("CONFIG_VIRTIO_BLK", "the disk workload's scratch disk"),
    ("CONFIG_NET", "the network workloads"),
    ("CONFIG_NET_CORE", "the network workloads"),
    ("CONFIG_INET", "TCP/IP"),
    ("CONFIG_UNIX", "Unix sockets"),
    ("CONFIG_NETDEVICES", "network devices"),
    ("CONFIG_VIRTIO_NET", "the guest's network device"),
    ("CONFIG_EXT4_FS", "an ext4 root or scratch file system"),
];

/// Where the Debian package `linux-source-<version>` puts its source.
const SOURCE_DIR: &str = "/usr/src";

/// A built minimal kernel.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    /// What it was built from: `minimal (linux-source-6.1.tar.xz, config <key>)`.
    pub source: String,
    /// The build's time when this run built it; `None` when cached.
    pub build_ms: Option<f64>,
}

/// The configuration fragment appended to tinyconfig's `.config`.
pub fn fragment() -> String {
    CONFIG.iter().map(|(option, _)| format!("{option}=y\n")).collect()
}

/// The kernel source archive: `$VMBENCH_KERNEL_SOURCE` (a `.tar.xz` of
/// any kernel tree), else the newest `linux-source-*` installed; or how to
/// get one.
pub fn source_archive() -> Result<PathBuf> {
    if let Some(given) = std::env::var_os("VMBENCH_KERNEL_SOURCE").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(given);
        if !path.is_file() {
            bail!(
                "kernel = \"minimal\": VMBENCH_KERNEL_SOURCE names {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(SOURCE_DIR)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    name.starts_with("linux-source-") && name.ends_with(".tar.xz")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| version_of(p));
    found.pop().with_context(|| {
        format!(
            "kernel = \"minimal\" builds from the kernel source package, and {SOURCE_DIR} has no linux-source-*.tar.xz; \
             install linux-source-6.1 (scripts/setup.sh does)"
        )
    })
}

/// `linux-source-6.1.tar.xz` → `[6, 1]`, for picking the newest.
fn version_of(path: &Path) -> Vec<u32> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let version = name.trim_start_matches("linux-source-").trim_end_matches(".tar.xz");
    version.split('.').map(|part| part.parse().unwrap_or(0)).collect()
}

/// The cache key: the archive's identity, the configuration and the recipe.
pub fn key(archive: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let archive = &archive.canonicalize().with_context(|| format!("reading {}", archive.display()))?;
    let meta = std::fs::metadata(archive).with_context(|| format!("reading {}", archive.display()))?;
    let identity = format!(
        "{RECIPE_VERSION}\n{}\n{}\n{}\n{}",
        archive.display(),
        meta.len(),
        meta.mtime(),
        fragment()
    );
    Ok(sha256_hex(identity.as_bytes())[..24].to_string())
}

/// Where built minimal kernels live (`vmbench clean --cache` empties it).
pub fn cache_root() -> PathBuf {
    cache::dir().join("kernel-minimal")
}

/// The minimal kernel, built if the cache lacks it (minutes: say so).
pub fn ensure() -> Result<Built> {
    let archive = source_archive()?;
    let key = key(&archive)?;
    let dir = cache_root().join(&key);
    let path = dir.join("bzImage");
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let source = format!("minimal ({name}, cache key {})", &key[..12]);
    if path.is_file() {
        return Ok(Built {
            path,
            source,
            build_ms: None,
        });
    }
    // One build at a time per key: a second run waits, then finds it.
    let _lock = exclusive_lock(&dir.with_extension("lock"))?;
    if path.is_file() {
        return Ok(Built {
            path,
            source,
            build_ms: None,
        });
    }
    sweep_dead_builds(dir.parent().context("kernel cache path has no parent")?);
    eprintln!(
        "vmbench: building the minimal kernel from {} (once; a few minutes)",
        archive.display()
    );
    let started = Instant::now();
    build(&archive, &dir)?;
    Ok(Built {
        path,
        source,
        build_ms: Some(started.elapsed().as_secs_f64() * 1e3),
    })
}

/// Takes an exclusive `flock` on `path` (created), waiting for it; held
/// until the returned file is dropped.
fn exclusive_lock(path: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor this process owns.
    let locked = |operation| unsafe { libc::flock(file.as_raw_fd(), operation) } == 0;
    if !locked(libc::LOCK_EX | libc::LOCK_NB) {
        eprintln!("vmbench: another vmbench is building this kernel; waiting for it");
        if !locked(libc::LOCK_EX) {
            bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
        }
    }
    Ok(file)
}

/// Removes the build directories (`.<key>.tmp<pid>`, 1-2 GB each) that a
/// vmbench killed while building left: those whose process is gone.
fn sweep_dead_builds(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit_once(".tmp").and_then(|(_, pid)| pid.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && name.starts_with('.') {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The build tools die with vmbench (`PR_SET_PDEATHSIG`): a `make` of
/// minutes must not outlive a killed run. They run on every CPU: vmbench
/// pins itself to the harness's CPUs, which its children would inherit, and
/// no trial runs while targets are prepared (one CPU doubled the build).
fn dies_with_vmbench(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl and sched_setaffinity are async-signal-safe and touch
    // only the set built on this stack.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut all: libc::cpu_set_t = std::mem::zeroed();
            for cpu in 0..libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut all);
            }
            // The kernel keeps only the CPUs this process may use.
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &all);
            Ok(())
        })
    }
}

/// The CPUs online, whatever vmbench itself is pinned to.
fn online_cpus() -> usize {
    // SAFETY: sysconf reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// Unpacks `archive`, configures and builds it in a temporary directory
/// beside `dir`, and renames the kernel and its `.config` into `dir`.
fn build(archive: &Path, dir: &Path) -> Result<()> {
    let tmp = TempDir::beside(dir)?;
    run(
        dies_with_vmbench(Command::new("tar").arg("-xJf").arg(archive).arg("-C").arg(&tmp.path)),
        "unpacking the kernel source",
    )?;
    let tree = unpacked_tree(&tmp.path)?;
    let make = |args: &[&str]| {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(&tree)
            .args(args)
            .env("KBUILD_BUILD_USER", "vmbench")
            .env("KBUILD_BUILD_HOST", "vmbench")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
            .env("KBUILD_BUILD_VERSION", "1");
        dies_with_vmbench(&mut cmd);
        cmd
    };
    run(&mut make(&["tinyconfig"]), "configuring the minimal kernel (make tinyconfig)")?;
    let config_path = tree.join(".config");
    let mut config = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    config.push_str(&fragment());
    std::fs::write(&config_path, config).with_context(|| format!("writing {}", config_path.display()))?;
    run(&mut make(&["olddefconfig"]), "configuring the minimal kernel (make olddefconfig)")?;
    let resolved = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let dropped = dropped_options(&resolved);
    if !dropped.is_empty() {
        bail!(
            "the kernel's configuration dropped {} (a dependency this source lacks?)",
            dropped.join(", ")
        );
    }
    let jobs = online_cpus();
    run(
        &mut make(&[&format!("-j{jobs}"), "bzImage"]),
        "building the minimal kernel (make bzImage)",
    )?;
    let staged = tmp.path.join("out");
    std::fs::create_dir(&staged).with_context(|| format!("creating {}", staged.display()))?;
    for (from, to) in [("arch/x86/boot/bzImage", "bzImage"), (".config", "config")] {
        let (from, to) = (tree.join(from), staged.join(to));
        std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    match std::fs::rename(&staged, dir) {
        Ok(()) => Ok(()),
        Err(_) if dir.join("bzImage").is_file() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("renaming into {}", dir.display())),
    }
}

/// The options of [`CONFIG`] that the resolved `.config` does not have set
/// to `y` (Kconfig drops what an unmet dependency forbids, silently).
pub fn dropped_options(resolved: &str) -> Vec<&'static str> {
    CONFIG
        .iter()
        .map(|(option, _)| *option)
        .filter(|option| !resolved.lines().any(|l| l == format!("{option}=y")))
        .collect()
}

/// The one directory the archive unpacked into.
fn unpacked_tree(dir: &Path) -> Result<PathBuf> {
    let mut dirs = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Makefile").is_file());
    dirs.next()
        .with_context(|| format!("the kernel source unpacked into {} has no top-level Makefile", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_sets_every_option_once() {
        let fragment = fragment();
        assert_eq!(fragment.lines().count(), CONFIG.len());
        let mut options: Vec<&str> = CONFIG.iter().map(|(o, _)| *o).collect();
        options.sort();
        options.dedup();
        assert_eq!(options.len(), CONFIG.len());
        assert!(fragment.lines().all(|l| l.starts_with("CONFIG_") && l.ends_with("=y")));
    }

    #[test]
    fn an_option_kconfig_dropped_is_named() {
        let mut resolved = fragment().replace("CONFIG_VIRTIO_NET=y\n", "# CONFIG_VIRTIO_NET is not set\n");
        resolved.push_str("CONFIG_EXT4_FS=m\n");
        let resolved = resolved.replace("CONFIG_EXT4_FS=y\n", "");
        assert_eq!(dropped_options(&resolved), ["CONFIG_VIRTIO_NET", "CONFIG_EXT4_FS"]);
        assert!(dropped_options(&fragment()).is_empty());
    }

    #[test]
    fn the_newest_source_is_chosen_by_version() {
        let mut names = ["linux-source-6.10.tar.xz", "linux-source-6.1.tar.xz", "linux-source-5.19.tar.xz"]
            .map(PathBuf::from)
            .to_vec();
        names.sort_by_key(|p| version_of(p));
        assert_eq!(names.last().unwrap(), &PathBuf::from("linux-source-6.10.tar.xz"));
    }

    #[test]
    fn the_key_changes_with_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("linux-source-6.1.tar.xz");
        std::fs::write(&archive, b"one").unwrap();
        let first = key(&archive).unwrap();
        assert_eq!(key(&archive).unwrap(), first);
        std::fs::write(&archive, b"longer").unwrap();
        assert_ne!(key(&archive).unwrap(), first);
    }
}
