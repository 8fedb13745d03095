//! A distribution's root file system, built with `mmdebstrap` and cached by
//! the hash of its definition, then made into what targets run: a tree with
//! the agent and its systemd unit added (imported as a container image by
//! the container backends) and an ext4 disk image of that same tree (booted
//! by the VM backend with the kernel and initramfs the tree installs).
//!
//! Layout under `<cache>/rootfs/<key>/`: `base/` (mmdebstrap's tree, never
//! modified) and `agent-<hash>/` holding `tree/` (hard links into `base/`
//! plus the agent files) and `disk.img`. Everything is built in a
//! temporary directory next to its final place and renamed into it when
//! complete, so an interrupted build leaves nothing half-built behind a
//! final name.

use super::{cache, sha256_hex};
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
    /// The tree with the agent (what the container image is made of).
    pub tree: PathBuf,
    /// The ext4 image of the same tree.
    pub disk: PathBuf,
    /// The kernel and initramfs the tree installed.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Bytes of the files in the tree (apparent sizes, as `du -sb`).
    pub tree_bytes: u64,
    /// The disk image's apparent size and the blocks it occupies.
    pub disk_bytes: u64,
    pub disk_allocated_bytes: u64,
    /// mmdebstrap's time when this run built the tree; `None` when cached.
    pub build_ms: Option<f64>,
    /// Time to make the agent tree and the disk image, when this run did.
    pub disk_build_ms: Option<f64>,
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
    let disk_build_ms = if staged.join("disk.img").is_file() {
        None
    } else {
        let started = Instant::now();
        build_staged(&base, &staged, agent)?;
        Some(started.elapsed().as_secs_f64() * 1e3)
    };
    let tree = staged.join("tree");
    let disk = staged.join("disk.img");
    let (kernel, initrd) = boot_files(&tree)?;
    let meta = std::fs::metadata(&disk).with_context(|| format!("reading {}", disk.display()))?;
    use std::os::unix::fs::MetadataExt;
    Ok(Built {
        key,
        tree_bytes: tree_bytes(&tree)?,
        disk_bytes: meta.len(),
        disk_allocated_bytes: meta.blocks() * 512,
        tree,
        disk,
        kernel,
        initrd,
        build_ms,
        disk_build_ms,
    })
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
    std::fs::rename(&tree, base).with_context(|| format!("renaming the built tree into {}", base.display()))?;
    Ok(())
}

/// `base` hard-linked into a new tree, the agent and its unit added (new
/// files, so `base` is untouched), and the ext4 disk image made from it.
fn build_staged(base: &Path, staged: &Path, agent: &[u8]) -> Result<()> {
    let tmp = TempDir::beside(staged)?;
    let tree = tmp.path.join("tree");
    run(
        &["cp".into(), "-al".into(), base.display().to_string(), tree.display().to_string()],
        "copying the guest tree",
    )?;
    add_agent(&tree, agent)?;
    let disk = tmp.path.join("disk.img");
    make_disk(&tree, &disk)?;
    std::fs::rename(&tmp.path, staged).with_context(|| format!("renaming into {}", staged.display()))?;
    Ok(())
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

/// An ext4 image of `tree`, sized to the tree plus a quarter and 256 MiB of
/// room (systemd writes its journal and state at boot), made without
/// mounting anything (`mkfs.ext4 -d`).
fn make_disk(tree: &Path, disk: &Path) -> Result<()> {
    let bytes = tree_bytes(tree)?;
    let size_mib = (bytes + bytes / 4) / (1 << 20) + 256;
    std::fs::File::create(disk)
        .and_then(|f| f.set_len(size_mib << 20))
        .with_context(|| format!("creating {}", disk.display()))?;
    run(
        &[
            "mkfs.ext4".into(),
            "-q".into(),
            "-F".into(),
            "-L".into(),
            DISK_LABEL.into(),
            "-d".into(),
            tree.display().to_string(),
            disk.display().to_string(),
        ],
        "making the guest disk image",
    )
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

/// Runs `argv` (never through a shell); on failure the error carries what
/// the tool printed last.
fn run(argv: &[String], what: &str) -> Result<()> {
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("{what}: cannot start {} (scripts/setup.sh installs it)", argv[0]))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("{what}: `{}` failed ({}):\n{}", argv.join(" "), output.status, tail.join("\n"));
    }
    Ok(())
}

/// A temporary directory beside a final path, removed on drop unless it
/// was renamed away.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn beside(final_path: &Path) -> Result<Self> {
        let parent = final_path.parent().context("path has no parent")?;
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let name = final_path.file_name().and_then(|n| n.to_str()).unwrap_or("build");
        let path = parent.join(format!(".{name}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
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
