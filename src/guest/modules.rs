//! Kernel modules for the initramfs. Distribution cloud kernels build their
//! virtio drivers as modules; the disk and network workloads need them, so
//! the initramfs carries them with a load order. Unpacked `.deb` kernels come
//! without `modules.dep`, so dependencies are read from each module's
//! `.modinfo` section (`depends=`), the same data depmod uses.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What the disk and network workloads need, on microvm (virtio-mmio) and
/// q35 (virtio-pci).
pub const VIRTIO: &[&str] = &["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net"];

/// The modules directory that belongs to a kernel image: `lib/modules/<v>`
/// next to a `boot/vmlinuz-<v>` unpacked from a package, or the host's
/// `/lib/modules/<v>`.
pub fn dir_for(kernel: &Path) -> Option<PathBuf> {
    let version = kernel.file_name()?.to_str()?.strip_prefix("vmlinuz-")?;
    let unpacked = kernel.parent()?.parent()?.join("lib/modules").join(version);
    let host = Path::new("/lib/modules").join(version);
    [unpacked, host].into_iter().find(|d| d.join("kernel").is_dir())
}

/// `wanted` and everything they depend on, dependencies first, as
/// (module name, file). Modules built into the kernel are left out.
pub fn resolve(dir: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let files = index(&dir.join("kernel"))?;
    let builtin = builtin(dir);
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        visit(name, &files, &builtin, &mut seen, &mut order)?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &HashSet<String>,
    seen: &mut HashSet<String>,
    order: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if builtin.contains(name) || !seen.insert(name.to_string()) {
        return Ok(());
    }
    let Some(file) = files.get(name) else {
        bail!("kernel module `{name}` is neither built in nor among the modules");
    };
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    for dep in depends(&bytes) {
        visit(&dep, files, builtin, seen, order)?;
    }
    order.push((name.to_string(), file.clone()));
    Ok(())
}

/// Module name (dashes as underscores) → `.ko` file, under `root`.
fn index(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
                out.insert(stem.replace('-', "_"), path);
            }
        }
    }
    Ok(out)
}

fn builtin(dir: &Path) -> HashSet<String> {
    std::fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Path::new(l).file_stem()?.to_str().map(|s| s.replace('-', "_")))
        .collect()
}

/// The `depends=` entry of a module's `.modinfo` ELF section.
pub fn depends(elf: &[u8]) -> Vec<String> {
    modinfo(elf)
        .into_iter()
        .filter_map(|kv| kv.strip_prefix("depends=").map(str::to_string))
        .flat_map(|list| {
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The NUL-separated strings of the `.modinfo` section of a 64-bit ELF.
pub fn modinfo(elf: &[u8]) -> Vec<String> {
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let shoff = u64::from_le_bytes(elf.get(0x28..0x30)?.try_into().ok()?) as usize;
        let shentsize = u16::from_le_bytes(elf.get(0x3a..0x3c)?.try_into().ok()?) as usize;
        let base = shoff + i * shentsize;
        let word = |o: usize| -> Option<usize> { Some(u64::from_le_bytes(elf.get(base + o..base + o + 8)?.try_into().ok()?) as usize) };
        let name = u32::from_le_bytes(elf.get(base..base + 4)?.try_into().ok()?) as usize;
        Some((name, word(0x18)?, word(0x20)?))
    };
    let (Some(shnum), Some(shstrndx)) = (
        elf.get(0x3c..0x3e).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize),
        elf.get(0x3e..0x40).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize),
    ) else {
        return Vec::new();
    };
    if elf.get(..4) != Some(b"\x7fELF") {
        return Vec::new();
    }
    let Some((_, names_off, _)) = section(shstrndx) else {
        return Vec::new();
    };
    for i in 0..shnum {
        let Some((name, offset, size)) = section(i) else { continue };
        let name_bytes = elf.get(names_off + name..).unwrap_or_default();
        let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(0);
        if &name_bytes[..end] == b".modinfo" {
            let data = elf.get(offset..offset + size).unwrap_or_default();
            return data
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached_kernel_modules() -> Option<PathBuf> {
        let kernel = crate::guest::kernel::find(None).ok()?;
        dir_for(&kernel.path)
    }

    #[test]
    fn virtio_modules_resolve_with_dependencies_first() {
        // Needs the kernel scripts/setup.sh unpacks; a kernel with virtio
        // built in has nothing to resolve, which is also fine.
        let Some(dir) = cached_kernel_modules() else { return };
        let order = resolve(&dir, VIRTIO).unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        let pos = |n: &str| names.iter().position(|x| *x == n);
        if let (Some(core), Some(blk)) = (pos("virtio"), pos("virtio_blk")) {
            assert!(core < blk, "{names:?}");
        }
        if let (Some(ring), Some(net)) = (pos("virtio_ring"), pos("virtio_net")) {
            assert!(ring < net, "{names:?}");
        }
        let unique: HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn garbage_has_no_modinfo() {
        assert!(modinfo(b"not an elf at all, not even close to 64 bytes long........").is_empty());
        assert!(depends(&[]).is_empty());
    }
}
