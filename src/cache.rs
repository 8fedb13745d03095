//! vmbench's cache directory: `$VMBENCH_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/vmbench`, else `~/.cache/vmbench`.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VMBENCH_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("vmbench");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("vmbench")
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees a half-written artifact and a crash leaves none.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let parent = path.parent().context("artifact path has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact"),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(mode)))
            .and_then(|()| file.sync_all());
        written.with_context(|| format!("writing {} (through {})", path.display(), tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A temporary directory beside a final path (named by the process, so
/// two builds never share one), removed on drop unless it was renamed away.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn beside(final_path: &Path) -> Result<Self> {
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
