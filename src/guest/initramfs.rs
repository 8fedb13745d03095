//! The VM initramfs: the agent as `/init`, the directories it mounts on and a
//! console device node. Cached under a key made of the agent's hash and the
//! layout version, so a second run reuses it without building anything.

use super::{cache, cpio::CpioWriter, sha256_hex};
use anyhow::Result;
use std::path::PathBuf;

/// Bump when the layout below changes, so old cache entries are not reused.
const LAYOUT_VERSION: u32 = 2;

/// A built (or reused) initramfs on disk.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    /// True when this run found it in the cache.
    pub reused: bool,
}

/// A kernel module to carry: its name and contents.
pub type Module = (String, Vec<u8>);

/// The archive for `agent` with `modules` (in load order).
pub fn build(agent: &[u8], modules: &[Module]) -> Vec<u8> {
    let mut w = CpioWriter::new();
    w.dir("dev", 0o755)
        .char_device("dev/console", 0o600, 5, 1)
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .dir("tmp", 0o1777)
        .file("init", 0o755, agent);
    if !modules.is_empty() {
        let order: String = modules.iter().map(|(name, _)| format!("{name}\n")).collect();
        w.dir("vmbench", 0o755)
            .file("vmbench/modules", 0o644, order.as_bytes())
            .dir("lib", 0o755)
            .dir("lib/modules", 0o755);
        for (name, bytes) in modules {
            w.file(&format!("lib/modules/{name}.ko"), 0o644, bytes);
        }
    }
    w.finish()
}

/// Reads the modules to carry from `(name, file)` pairs.
pub fn read_modules(files: &[(String, PathBuf)]) -> Result<Vec<Module>> {
    files.iter().map(|(name, path)| Ok((name.clone(), std::fs::read(path)?))).collect()
}

/// Returns the cached initramfs for `agent` and `modules`, building it on
/// first use.
pub fn ensure(agent: &[u8], agent_sha256: &str, modules: &[Module]) -> Result<Initramfs> {
    let mut key_text = format!("layout-{LAYOUT_VERSION}-agent-{agent_sha256}");
    for (name, bytes) in modules {
        key_text.push_str(&format!("-{name}:{}", sha256_hex(bytes)));
    }
    let key = sha256_hex(key_text.as_bytes());
    let path = cache::dir().join("initramfs").join(format!("{}.cpio", &key[..24]));
    let (bytes, reused) = match std::fs::read(&path) {
        Ok(existing) => (existing, true),
        Err(_) => {
            let fresh = build(agent, modules);
            cache::write_atomic(&path, &fresh, 0o644)?;
            (fresh, false)
        }
    };
    Ok(Initramfs {
        path,
        sha256: sha256_hex(&bytes),
        bytes: bytes.len() as u64,
        reused,
    })
}

/// The initramfs for booting `kernel`: `agent` alone, or with `drivers`
/// the agent plus that kernel's virtio modules (none when it has them built in
/// or ships no modules). Workloads that need no device boot without them, so
/// their boot time does not pay for unpacking drivers they never load.
pub fn for_kernel(kernel: &std::path::Path, drivers: bool, agent: &super::agent::Agent) -> Result<Initramfs> {
    let files = match super::modules::dir_for(kernel).filter(|_| drivers) {
        Some(dir) => super::modules::resolve(&dir, super::modules::VIRTIO)?,
        None => Vec::new(),
    };
    ensure(agent.bytes(), agent.sha256(), &read_modules(&files)?)
}
