//! Guest artifacts, built by vmbench itself and cached by content hash: the
//! static agent, the VM initramfs that runs it as `/init`, and the kernel.
//! The container image is built from the same agent by the docker backend.

pub mod agent;
pub use crate::cache;
pub mod cpio;
pub mod initramfs;
pub mod kernel;
pub mod minimal;
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

/// Runs a build tool (never through a shell). Its output is captured (a
/// kernel build prints thousands of lines); on failure the error carries
/// the command and the last lines it printed.
pub fn run_tool(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let output = cmd
        .output()
        .with_context(|| format!("{what}: cannot start `{shown}` (scripts/setup.sh installs it)"))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        anyhow::bail!("{what}: `{shown}` failed ({}):\n{}", output.status, tail.join("\n"));
    }
    Ok(())
}
