//! The VM initramfs: the agent as `/init`, the directories it mounts on and a
//! console device node. Cached under a key made of the agent's hash and the
//! layout version, so a second run reuses it without building anything.

use super::{cache, cpio::CpioWriter, sha256_hex};
use anyhow::Result;
use std::path::PathBuf;

/// Bump when the layout below changes, so old cache entries are not reused.
const LAYOUT_VERSION: u32 = 1;

/// A built (or reused) initramfs on disk.
#[derive(Debug, Clone)]
pub struct Initramfs {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    /// True when this run found it in the cache.
    pub reused: bool,
}

/// The archive for `agent`.
pub fn build(agent: &[u8]) -> Vec<u8> {
    let mut w = CpioWriter::new();
    w.dir("dev", 0o755)
        .char_device("dev/console", 0o600, 5, 1)
        .dir("proc", 0o555)
        .dir("sys", 0o555)
        .dir("tmp", 0o1777)
        .file("init", 0o755, agent);
    w.finish()
}

/// Returns the cached initramfs for `agent`, building it on first use.
pub fn ensure(agent: &[u8], agent_sha256: &str) -> Result<Initramfs> {
    let key = sha256_hex(format!("layout-{LAYOUT_VERSION}-agent-{agent_sha256}").as_bytes());
    let path = cache::dir().join("initramfs").join(format!("{}.cpio", &key[..24]));
    let (bytes, reused) = match std::fs::read(&path) {
        Ok(existing) => (existing, true),
        Err(_) => {
            let fresh = build(agent);
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
