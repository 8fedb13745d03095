//! A distribution's root file system, built with `mmdebstrap` and cached by
//! the hash of its definition, then made into what targets run: a tree with
//! the agent and its systemd unit added (imported as a container image by
//! the container backends) and a partitioned disk image of that same tree
//! (booted by the VM backend directly with the kernel and initramfs the tree
//! installs, or by BIOS or UEFI firmware through the bootloaders on it).
//!
//! Layout under `<cache>/rootfs/<key>/`: `base/` (mmdebstrap's tree, never
//! modified) and `agent-<hash>/` holding `tree/` (hard links into `base/`
//! plus the agent files) and the VM disks made of it, `boot-<hash of the
//! kernel arguments>.img` ([`bootable_disk`]). Everything is built in a
//! temporary directory next to its final place and renamed into it when
//! complete, so an interrupted build leaves nothing half-built behind a
//! final name.

use super::{cache, sha256_hex};
use crate::cache::TempDir;
use crate::scenario::Rootfs;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the recipe below changes, so old trees are not reused.
const RECIPE_VERSION: u32 = 1;

/// What every guest tree carries besides the scenario's packages: systemd as
/// init, and the distribution's kernel with an initramfs that finds the
/// root disk (the VM boots them; a container image carries them unused, and
/// its size says so).
pub const RECIPE_PACKAGES: &[&str] = &["initramfs-tools", "linux-image-cloud-amd64", "systemd", "systemd-sysv", "udev"];

/// Where the agent lives in a guest tree.
pub const AGENT_PATH: &str = "/usr/local/sbin/vmbench-agent";
/// The agent's unit, ordered after `multi-user.target`.
pub const UNIT_NAME: &str = "vmbench-agent.service";
/// The label of the root file system on the VM disk (`root=LABEL=...`).
pub const DISK_LABEL: &str = "vmbench-root";

/// The unit that starts the agent once the system is up. No default
/// dependencies, so `multi-user.target` (which wants it) is not also
/// ordered after it, which would be a cycle.
pub fn unit_text() -> String {
    format!(
        "[Unit]\nDescription=vmbench agent\nDefaultDependencies=no\nAfter=multi-user.target\n\n\
         [Service]\nType=exec\nExecStart={AGENT_PATH} {}\n\n[Install]\nWantedBy=multi-user.target\n",
        crate::agent::service::FLAG
    )
}

/// The cache key of a root file system's definition.
pub fn key(rootfs: &Rootfs) -> String {
    let mut packages: Vec<&str> = RECIPE_PACKAGES.to_vec();
    packages.extend(rootfs.packages.iter().map(String::as_str));
    packages.sort_unstable();
    packages.dedup();
    let text = format!(
        "recipe-{RECIPE_VERSION}\ndistro={}\nsuite={}\nmirror={}\npackages={}\n",
        rootfs.distro.as_str(),
        rootfs.suite,
        rootfs.mirror,
        packages.join(",")
    );
    sha256_hex(text.as_bytes())[..24].to_string()
}

/// The `mmdebstrap` argument vector that builds `rootfs` into `dest`.
pub fn mmdebstrap_argv(rootfs: &Rootfs, dest: &Path) -> Vec<String> {
    let mut packages: Vec<&str> = RECIPE_PACKAGES.to_vec();
    packages.extend(rootfs.packages.iter().map(String::as_str));
    packages.sort_unstable();
    packages.dedup();
    let mut argv: Vec<String> = vec![
        "mmdebstrap".into(),
        "--mode=root".into(),
        "--variant=minbase".into(),
        format!("--include={}", packages.join(",")),
    ];
    // Documentation and translations are never read in a benchmark guest.
    for excluded in ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"] {
        argv.push(format!("--dpkgopt=path-exclude={excluded}"));
    }
    argv.push("--dpkgopt=path-include=/usr/share/doc/*/copyright".into());
    argv.push(rootfs.suite.clone());
    argv.push(dest.display().to_string());
    argv.push(rootfs.mirror.clone());
    argv
}

/// A guest root file system ready to run, with its sizes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Built {
    pub key: String,
    /// The tree with the agent (what the container image and the VM disks
    /// are made of).
    pub tree: PathBuf,
    /// The kernel and initramfs the tree installed.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Bytes of the files in the tree (apparent sizes, as `du -sb`).
    pub tree_bytes: u64,
    /// mmdebstrap's time when this run built the tree; `None` when cached.
    pub build_ms: Option<f64>,
    /// Time to add the agent to a copy of the tree, when this run did.
    pub agent_build_ms: Option<f64>,
}

/// Where built root file systems live (`vmbench clean --cache` empties it).
pub fn cache_root() -> PathBuf {
    cache::dir().join("rootfs")
}

/// The root file system for `rootfs` with `agent` in it, building whatever
/// the cache lacks.
pub fn ensure(rootfs: &Rootfs, agent: &[u8], agent_sha256: &str) -> Result<Built> {
    let key = key(rootfs);
    let dir = cache_root().join(&key);
    let base = dir.join("base");
    let build_ms = if base.is_dir() {
        None
    } else {
        let started = Instant::now();
        build_base(rootfs, &base)?;
        Some(started.elapsed().as_secs_f64() * 1e3)
    };
    let staged = dir.join(format!("agent-{}", &agent_sha256[..16]));
    let mut agent_build_ms = None;
    // Locked in use, then checked again: another vmbench may have pruned
    // it between the check and the lock, and then it is built again.
    for _ in 0..2 {
        if !staged.join("tree").is_dir() {
            let started = Instant::now();
            build_staged(&base, &staged, agent)?;
            agent_build_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        }
        if let Err(e) = hold_in_use(&staged) {
            // A cache this vmbench may read but not write: it goes on
            // unlocked (a vmbench that may write could prune the build).
            eprintln!("warning: {e:#}");
            break;
        }
        if staged.join("tree").is_dir() {
            break;
        }
    }
    mark_used(&staged);
    prune_agent_builds(&dir, &staged);
    let tree = staged.join("tree");
    let (kernel, initrd) = boot_files(&tree)?;
    Ok(Built {
        key,
        tree_bytes: tree_bytes(&tree)?,
        tree,
        kernel,
        initrd,
        build_ms,
        agent_build_ms,
    })
}

/// How many agent builds of one tree the cache keeps, the last used first.
/// Each is the tree's hard links plus its VM disks (0.6-2 GB), and every new
/// vmbench brings a new agent: kept forever, they filled the disk.
pub const KEEP_AGENT_BUILDS: usize = 2;

/// Shared locks on the agent builds this process uses, held until it
/// exits: a build that any vmbench uses is never pruned.
static IN_USE: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// The lock file of an agent build (`flock`: shared while used, exclusive
/// while pruned).
fn in_use_lock(staged: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(staged.join(".in-use"))
}

fn flock(file: &std::fs::File, operation: i32) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

/// Marks `staged` as in use by this process until it exits.
fn hold_in_use(staged: &Path) -> Result<()> {
    let lock = in_use_lock(staged).with_context(|| format!("locking {} as in use", staged.display()))?;
    if !flock(&lock, libc::LOCK_SH) {
        bail!("locking {} as in use: {}", staged.display(), std::io::Error::last_os_error());
    }
    IN_USE.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
    Ok(())
}

/// Sets `staged`'s modification time to now: when it was last used.
fn mark_used(staged: &Path) {
    let now = std::time::SystemTime::now();
    if let Err(e) = std::fs::File::open(staged).and_then(|dir| dir.set_modified(now)) {
        eprintln!("warning: marking {} as used: {e}", staged.display());
    }
}

/// Removes the agent builds under `dir` beyond the [`KEEP_AGENT_BUILDS`]
/// last used, saying so; never `current`, nor one that any vmbench holds in
/// use (its lock cannot be taken). Each is renamed away before it is
/// removed, so a removal cut short leaves nothing that looks built.
fn prune_agent_builds(dir: &Path, current: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".agent-") && name.contains(".removing") {
            // A removal that a killed vmbench did not finish.
            let _ = std::fs::remove_dir_all(entry.path());
        } else if name.starts_with("agent-") && entry.path() != current {
            if let Some(used) = entry.metadata().ok().and_then(|m| m.modified().ok()) {
                others.push((used, entry.path()));
            }
        }
    }
    others.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, old) in others.into_iter().skip(KEEP_AGENT_BUILDS - 1) {
        let Ok(lock) = in_use_lock(&old) else { continue };
        if !flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
            continue;
        }
        let name = old.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let doomed = dir.join(format!(".{name}.removing{}", std::process::id()));
        if std::fs::rename(&old, &doomed).is_ok() {
            let freed = std::fs::remove_dir_all(&doomed);
            eprintln!(
                "vmbench: removed {} from the cache (an older vmbench's agent; the {KEEP_AGENT_BUILDS} last used are kept){}",
                old.display(),
                freed.err().map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
    }
}

/// Runs mmdebstrap into a temporary directory beside `base` and renames it
/// into place; its own message is the error when it fails (a package or
/// suite the archive lacks, an unreachable mirror).
fn build_base(rootfs: &Rootfs, base: &Path) -> Result<()> {
    let parent = base.parent().context("rootfs cache path has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = TempDir::beside(base)?;
    let tree = tmp.path.join("tree");
    let argv = mmdebstrap_argv(rootfs, &tree);
    run(&argv, "building the guest root file system")?;
    rename_into(&tree, base)
}

/// `base` hard-linked into a new tree, and the agent and its unit added
/// (new files, so `base` is untouched).
fn build_staged(base: &Path, staged: &Path, agent: &[u8]) -> Result<()> {
    let tmp = TempDir::beside(staged)?;
    let tree = tmp.path.join("tree");
    run(
        &["cp".into(), "-al".into(), base.display().to_string(), tree.display().to_string()],
        "copying the guest tree",
    )?;
    add_agent(&tree, agent)?;
    rename_into(&tmp.path, staged)
}

/// One file the agent brings into a guest system, as data: written into a
/// tree by [`add_agent`], copied into a derived container image by the
/// container backend, so both carry the same files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentFile<'a> {
    /// A regular file at the absolute `path`.
    File {
        path: String,
        bytes: std::borrow::Cow<'a, [u8]>,
        mode: u32,
    },
    /// A symbolic link at the absolute `path` pointing at `target`.
    Symlink { path: String, target: String },
}

/// What the agent adds to a guest: its binary at [`AGENT_PATH`] and, when
/// systemd is to start it, its unit and the unit's enablement.
pub fn agent_files(agent: &[u8], with_unit: bool) -> Vec<AgentFile<'_>> {
    let mut files = vec![AgentFile::File {
        path: AGENT_PATH.to_string(),
        bytes: agent.into(),
        mode: 0o755,
    }];
    if with_unit {
        let unit = format!("/etc/systemd/system/{UNIT_NAME}");
        files.push(AgentFile::File {
            path: unit.clone(),
            bytes: unit_text().into_bytes().into(),
            mode: 0o644,
        });
        files.push(AgentFile::Symlink {
            path: format!("/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"),
            target: unit,
        });
    }
    files
}

/// Writes the agent, its unit and the unit's enablement into `tree`.
pub fn add_agent(tree: &Path, agent: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for file in agent_files(agent, true) {
        match file {
            AgentFile::File { path, bytes, mode } => {
                let path = tree.join(path.trim_start_matches('/'));
                write_new(&path, &bytes)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            }
            AgentFile::Symlink { path, target } => {
                let link = tree.join(path.trim_start_matches('/'));
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).with_context(|| format!("enabling {UNIT_NAME}"))?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path`, replacing (never writing
/// through) a hard link that may be shared with the base tree.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The newest `boot/vmlinuz-*` of `tree` and its `boot/initrd.img-*`.
pub fn boot_files(tree: &Path) -> Result<(PathBuf, PathBuf)> {
    let boot = tree.join("boot");
    let mut versions: Vec<String> = std::fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    versions.sort();
    let Some(version) = versions.pop() else {
        bail!("the guest tree has no kernel in {}", boot.display());
    };
    let initrd = boot.join(format!("initrd.img-{version}"));
    if !initrd.is_file() {
        bail!("the guest tree has a kernel {version} but no {}", initrd.display());
    }
    Ok((boot.join(format!("vmlinuz-{version}")), initrd))
}

/// A disk image of a guest, as QEMU gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    /// Apparent size and the blocks it occupies.
    pub bytes: u64,
    pub allocated_bytes: u64,
    /// Time to make it, when this run did (`None`: cached).
    pub build_ms: Option<f64>,
}

/// The boot partition: FAT16, 64 MiB, from sector 2048 (1 MiB), marked
/// active and typed as an EFI system partition, so SeaBIOS (through the
/// MBR code and syslinux) and OVMF (through `\EFI\BOOT\BOOTX64.EFI`) both
/// boot from it. The root file system follows in the second partition.
const BOOT_START_SECTOR: u64 = 2048;
const BOOT_SECTORS: u64 = 64 * 2048;
const ROOT_START_SECTOR: u64 = BOOT_START_SECTOR + BOOT_SECTORS;

/// Where the host's bootloader files come from (Debian packages `syslinux`,
/// `syslinux-common` and `systemd-boot-efi`, which `scripts/setup.sh` installs).
pub const MBR_CODE: &str = "/usr/lib/syslinux/mbr/mbr.bin";
pub const SYSTEMD_BOOT_EFI: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// A partitioned disk of `built`'s tree that firmware can boot: an MBR with
/// syslinux's boot code, the boot partition with the tree's kernel and
/// initramfs, syslinux (BIOS) and systemd-boot (UEFI) both configured with
/// `kernel_args`, and the tree as ext4 in the second partition (labelled
/// [`DISK_LABEL`], so `root=LABEL=` finds it on any boot path). Cached next
/// to the tree, one per set of kernel arguments; made without mounting.
pub fn bootable_disk(built: &Built, kernel_args: &[String]) -> Result<Disk> {
    let staged = built.tree.parent().context("the guest tree has no parent")?;
    let key = &sha256_hex(kernel_args.join(" ").as_bytes())[..12];
    let path = staged.join(format!("boot-{key}.img"));
    let build_ms = if path.is_file() {
        None
    } else {
        let started = Instant::now();
        let tmp = TempDir::beside(&path)?;
        let disk = tmp.path.join("disk.img");
        make_bootable(built, kernel_args, &disk)?;
        rename_into(&disk, &path)?;
        Some(started.elapsed().as_secs_f64() * 1e3)
    };
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Disk {
        bytes: meta.len(),
        allocated_bytes: meta.blocks() * 512,
        path,
        build_ms,
    })
}

fn make_bootable(built: &Built, kernel_args: &[String], disk: &Path) -> Result<()> {
    let tree_bytes = built.tree_bytes;
    let root_sectors = ((tree_bytes + tree_bytes / 4) / (1 << 20) + 256) * 2048;
    let total = (ROOT_START_SECTOR + root_sectors) * 512;
    std::fs::File::create(disk)
        .and_then(|f| f.set_len(total))
        .with_context(|| format!("creating {}", disk.display()))?;
    let image = disk.display().to_string();
    run(
        &argv(&[
            "mkfs.fat",
            "-F",
            "16",
            "-n",
            "VMBOOT",
            &format!("--offset={BOOT_START_SECTOR}"),
            &image,
            &(BOOT_SECTORS / 2).to_string(),
        ]),
        "making the boot partition",
    )?;
    run(
        &argv(&[
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            DISK_LABEL,
            "-d",
            &built.tree.display().to_string(),
            "-E",
            &format!("offset={}", ROOT_START_SECTOR * 512),
            &image,
            &format!("{}k", root_sectors / 2),
        ]),
        "making the root partition",
    )?;
    let fat = format!("{image}@@{}", BOOT_START_SECTOR * 512);
    let mtools = |args: &[&str], what: &str| {
        let mut full = vec![args[0], "-i", &fat];
        full.extend_from_slice(&args[1..]);
        run(&argv(&full), what)
    };
    mtools(
        &["mmd", "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"],
        "making the boot directories",
    )?;
    let args = kernel_args.join(" ");
    let config_dir = TempDir::beside(&disk.with_extension("config"))?;
    let write = |name: &str, text: String| -> Result<String> {
        let path = config_dir.path.join(name);
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let syslinux_cfg = write(
        "syslinux.cfg",
        format!("DEFAULT vmbench\nPROMPT 0\nTIMEOUT 0\nLABEL vmbench\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND {args}\n"),
    )?;
    let loader_conf = write("loader.conf", "default vmbench.conf\ntimeout 0\n".to_string())?;
    let entry = write(
        "vmbench.conf",
        format!("title vmbench\nlinux /vmlinuz\ninitrd /initrd.img\noptions {args}\n"),
    )?;
    let kernel = built.kernel.display().to_string();
    let initrd = built.initrd.display().to_string();
    for (from, to) in [
        (kernel.as_str(), "::/vmlinuz"),
        (initrd.as_str(), "::/initrd.img"),
        (syslinux_cfg.as_str(), "::/syslinux.cfg"),
        (SYSTEMD_BOOT_EFI, "::/EFI/BOOT/BOOTX64.EFI"),
        (loader_conf.as_str(), "::/loader/loader.conf"),
        (entry.as_str(), "::/loader/entries/vmbench.conf"),
    ] {
        mtools(&["mcopy", from, to], "copying into the boot partition")?;
    }
    run(
        &argv(&["syslinux", &format!("--offset={}", BOOT_START_SECTOR * 512), "--install", &image]),
        "installing syslinux",
    )?;
    let code = std::fs::read(MBR_CODE).with_context(|| format!("reading {MBR_CODE} (Debian package syslinux)"))?;
    let mbr = master_boot_record(
        &code,
        &[
            Partition {
                active: true,
                kind: 0xEF,
                start: BOOT_START_SECTOR,
                sectors: BOOT_SECTORS,
            },
            Partition {
                active: false,
                kind: 0x83,
                start: ROOT_START_SECTOR,
                sectors: root_sectors,
            },
        ],
    )?;
    use std::io::{Seek, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(disk)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(&mbr)?;
    file.sync_all()?;
    Ok(())
}

/// One primary partition of an MBR.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    pub active: bool,
    pub kind: u8,
    pub start: u64,
    pub sectors: u64,
}

/// The first sector of a disk: `code` (at most 440 bytes), a disk signature,
/// up to four LBA-addressed partitions and the 0x55AA signature.
pub fn master_boot_record(code: &[u8], partitions: &[Partition]) -> Result<[u8; 512]> {
    if code.len() > 440 {
        bail!("MBR boot code is {} bytes; at most 440 fit", code.len());
    }
    if partitions.len() > 4 {
        bail!("an MBR holds four partitions");
    }
    let mut mbr = [0u8; 512];
    mbr[..code.len()].copy_from_slice(code);
    mbr[440..444].copy_from_slice(b"vmbe");
    for (i, p) in partitions.iter().enumerate() {
        let (start, sectors) = (u32::try_from(p.start)?, u32::try_from(p.sectors)?);
        let entry = &mut mbr[446 + 16 * i..462 + 16 * i];
        entry[0] = if p.active { 0x80 } else { 0 };
        // CHS fields past the 8 GiB CHS limit: firmware uses the LBA fields.
        entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[4] = p.kind;
        entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
        entry[8..12].copy_from_slice(&start.to_le_bytes());
        entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    }
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    Ok(mbr)
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Renames a finished artifact into place; another process having put the
/// same one there first is fine.
fn rename_into(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) if to.exists() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("renaming into {}", to.display())),
    }
}

/// Apparent size of the regular files under `dir` (hard links counted once
/// per name, as a tar archive of the tree would hold them).
pub fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// What building and booting guest systems needs from the host, and for
/// what: the programs (looked up on `PATH`) and files, with whether each is
/// there. `scripts/setup.sh` installs them all.
pub fn host_tools() -> Vec<(&'static str, &'static str, bool)> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
            .unwrap_or(false)
    };
    let file = |path: &str| Path::new(path).is_file();
    vec![
        ("mmdebstrap", "building root file systems", on_path("mmdebstrap")),
        ("mkfs.ext4", "the guest disk's root partition", on_path("mkfs.ext4")),
        ("mkfs.fat", "the guest disk's boot partition", on_path("mkfs.fat")),
        ("mcopy", "copying into the boot partition (mtools)", on_path("mcopy")),
        ("syslinux", "boot = \"bios\"", on_path("syslinux")),
        (MBR_CODE, "boot = \"bios\" (the MBR code)", file(MBR_CODE)),
        (SYSTEMD_BOOT_EFI, "boot = \"uefi\" (the bootloader)", file(SYSTEMD_BOOT_EFI)),
        (
            "/usr/share/ovmf/OVMF.fd",
            "boot = \"uefi\" (the firmware)",
            file("/usr/share/ovmf/OVMF.fd"),
        ),
    ]
}

/// Runs `argv` (never through a shell); on failure the error carries what
/// the tool printed last.
fn run(argv: &[String], what: &str) -> Result<()> {
    super::run_tool(Command::new(&argv[0]).args(&argv[1..]), what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Distro;

    fn bookworm(packages: &[&str]) -> Rootfs {
        Rootfs {
            distro: Distro::Debian,
            suite: "bookworm".into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            mirror: crate::scenario::DEFAULT_DEBIAN_MIRROR.into(),
        }
    }

    #[test]
    fn the_key_follows_the_definition_and_nothing_else() {
        assert_eq!(key(&bookworm(&["nginx"])), key(&bookworm(&["nginx"])));
        assert_ne!(key(&bookworm(&["nginx"])), key(&bookworm(&[])));
        // A recipe package named again changes nothing.
        assert_eq!(key(&bookworm(&["systemd"])), key(&bookworm(&[])));
        let mut trixie = bookworm(&[]);
        trixie.suite = "trixie".into();
        assert_ne!(key(&trixie), key(&bookworm(&[])));
    }

    #[test]
    fn mmdebstrap_gets_the_recipe_and_the_packages_as_arguments() {
        let argv = mmdebstrap_argv(&bookworm(&["nginx"]), Path::new("/c/tree"));
        assert_eq!(argv[0], "mmdebstrap");
        let include = argv.iter().find(|a| a.starts_with("--include=")).unwrap();
        assert!(include.contains("nginx") && include.contains("systemd-sysv") && include.contains("linux-image-cloud-amd64"));
        assert_eq!(&argv[argv.len() - 3..], ["bookworm", "/c/tree", "http://deb.debian.org/debian"]);
    }

    #[test]
    fn the_master_boot_record_holds_the_code_the_partitions_and_the_signature() {
        let mbr = master_boot_record(
            &[0xEB; 440],
            &[
                Partition {
                    active: true,
                    kind: 0xEF,
                    start: 2048,
                    sectors: 131072,
                },
                Partition {
                    active: false,
                    kind: 0x83,
                    start: 133120,
                    sectors: 1 << 20,
                },
            ],
        )
        .unwrap();
        assert_eq!(&mbr[510..], &[0x55, 0xAA]);
        assert_eq!(mbr[439], 0xEB);
        assert_eq!((mbr[446], mbr[450]), (0x80, 0xEF));
        assert_eq!(u32::from_le_bytes(mbr[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(mbr[458..462].try_into().unwrap()), 131072);
        assert_eq!((mbr[462], mbr[466]), (0, 0x83));
        assert_eq!(u32::from_le_bytes(mbr[470..474].try_into().unwrap()), 133120);
        assert_eq!(&mbr[478..510], &[0u8; 32], "no third or fourth partition");
        assert!(master_boot_record(&[0; 441], &[]).is_err());
    }

    #[test]
    fn only_the_last_used_agent_builds_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        let hour = std::time::Duration::from_secs(3600);
        let mut other = None;
        for (name, age) in [("agent-old", 3), ("agent-older", 5), ("agent-recent", 1), ("agent-current", 9)] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.join("tree")).unwrap();
            if name == "agent-older" {
                // Another vmbench (here: another open file) uses the oldest.
                let lock = in_use_lock(&path).unwrap();
                assert!(flock(&lock, libc::LOCK_SH));
                other = Some(lock);
            }
            std::fs::File::open(&path).unwrap().set_modified(now - hour * age).unwrap();
        }
        std::fs::create_dir_all(dir.path().join(".agent-gone.removing1/tree")).unwrap();
        std::fs::create_dir_all(dir.path().join("base")).unwrap();
        prune_agent_builds(dir.path(), &dir.path().join("agent-current"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // The current one (however old its time), the last used other, and
        // the one in use elsewhere.
        assert_eq!(left, ["agent-current", "agent-older", "agent-recent", "base"]);
        drop(other);
        prune_agent_builds(dir.path(), &dir.path().join("agent-current"));
        assert!(!dir.path().join("agent-older").exists(), "pruned once no one uses it");
    }

    #[test]
    fn the_agent_is_added_as_new_files_and_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base/usr/local/sbin");
        std::fs::create_dir_all(&base).unwrap();
        // A file shared by a hard link must not be written through.
        std::fs::write(base.join("vmbench-agent"), b"old").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/local/sbin")).unwrap();
        std::fs::hard_link(base.join("vmbench-agent"), tree.join("usr/local/sbin/vmbench-agent")).unwrap();
        add_agent(&tree, b"new agent").unwrap();
        assert_eq!(std::fs::read(base.join("vmbench-agent")).unwrap(), b"old");
        assert_eq!(std::fs::read(tree.join("usr/local/sbin/vmbench-agent")).unwrap(), b"new agent");
        let link = tree.join("etc/systemd/system/multi-user.target.wants").join(UNIT_NAME);
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            Path::new("/etc/systemd/system/vmbench-agent.service")
        );
        let unit = std::fs::read_to_string(tree.join("etc/systemd/system").join(UNIT_NAME)).unwrap();
        assert!(unit.contains("After=multi-user.target") && unit.contains("DefaultDependencies=no"));
        assert!(unit.contains("ExecStart=/usr/local/sbin/vmbench-agent --service"));
    }
}
