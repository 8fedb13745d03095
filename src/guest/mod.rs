//! Guest artifacts, built by vmbench itself and cached by content hash: the
//! static agent, the VM initramfs that runs it as `/init`, and the kernel.
//! The container image is built from the same agent by the docker backend.

pub mod agent;
pub use crate::cache;
pub mod cpio;
pub mod initramfs;
pub mod kernel;
pub mod modules;
pub mod rootfs;

use sha2::{Digest, Sha256};
use std::path::Path;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
