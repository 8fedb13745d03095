//! Finding the guest kernel: the scenario's path, `$VMBENCH_KERNEL`, the
//! kernel `scripts/setup.sh` unpacked into the cache, then the host's own
//! `/boot/vmlinuz-$(uname -r)`.

use super::{cache, sha256_file};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Kernel {
    pub path: PathBuf,
    /// Where it was found: `scenario`, `VMBENCH_KERNEL`, `cache` or `host`;
    /// or `minimal (<source archive>, config <key>)` for the kernel vmbench built.
    pub source: String,
    pub sha256: String,
    pub bytes: u64,
    /// How long this run took to build it (the minimal kernel, when the
    /// cache lacked it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<f64>,
}

pub const HOW_TO_GET_ONE: &str = "run scripts/setup.sh (it unpacks Debian's cloud kernel into the vmbench cache), \
export VMBENCH_KERNEL=/path/to/bzImage, or set kernel = \"/path/to/bzImage\" on the target";

/// The kernel a VM target boots: as [`find`] says for `auto` and a path,
/// or the minimal kernel, built first if the cache lacks it.
pub fn resolve(choice: &crate::scenario::KernelChoice) -> Result<Kernel> {
    use crate::scenario::KernelChoice;
    match choice {
        KernelChoice::Auto => find(None),
        KernelChoice::Path(path) => find(Some(path)),
        KernelChoice::Minimal => {
            let built = super::minimal::ensure()?;
            let mut kernel = describe(&built.path, &built.source)?;
            kernel.build_ms = built.build_ms;
            Ok(kernel)
        }
    }
}

/// The kernel the scenario names (`configured`), or else the first that
/// exists of `$VMBENCH_KERNEL`, the cache and the host's own; or how to get one.
pub fn find(configured: Option<&Path>) -> Result<Kernel> {
    let (path, source) = match configured {
        Some(path) => (path.to_path_buf(), "scenario"),
        None => candidates()
            .into_iter()
            .find(|(p, _)| p.is_file())
            .ok_or_else(|| anyhow::anyhow!("no guest kernel found; {HOW_TO_GET_ONE}"))?,
    };
    describe(&path, source)
}

fn describe(path: &Path, source: &str) -> Result<Kernel> {
    let meta = std::fs::metadata(path).with_context(|| format!("guest kernel {}", path.display()))?;
    if !meta.is_file() {
        bail!("guest kernel {} is not a file", path.display());
    }
    let sha256 = sha256_file(path).with_context(|| format!("reading guest kernel {}", path.display()))?;
    Ok(Kernel {
        path: path.to_path_buf(),
        source: source.to_string(),
        sha256,
        bytes: meta.len(),
        build_ms: None,
    })
}

/// Where `auto` looks, in order.
pub fn candidates() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    if let Some(env) = std::env::var_os("VMBENCH_KERNEL").filter(|v| !v.is_empty()) {
        out.push((PathBuf::from(env), "VMBENCH_KERNEL"));
    }
    if let Some(cached) = newest_cached() {
        out.push((cached, "cache"));
    }
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        out.push((PathBuf::from(format!("/boot/vmlinuz-{}", release.trim())), "host"));
    }
    out
}

/// The cache's kernel directory, laid out as a Debian package unpacked with
/// `dpkg -x`: `boot/vmlinuz-<version>` and `lib/modules/<version>/`.
pub fn cache_dir() -> PathBuf {
    cache::dir().join("kernel")
}

fn newest_cached() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(cache_dir().join("boot"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .collect();
    kernels.sort();
    kernels.pop()
}
