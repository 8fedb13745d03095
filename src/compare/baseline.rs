//! Named baselines: run directories kept under `results/baselines/NAME/`.
//! Saving copies into a temporary directory first and renames it into
//! place, so a baseline is never half written.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub fn dir(results_root: &Path) -> PathBuf {
    results_root.join("baselines")
}

/// A baseline name must be a plain file name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 100 && name != "." && name != ".." && !name.starts_with('.');
    if ok && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        Ok(())
    } else {
        bail!("baseline name `{name}` must be letters, digits, `-`, `_` or `.` (no path separators, no leading dot)")
    }
}

/// A run directory given as a path, or a baseline given by name.
pub fn resolve(arg: &str, results_root: &Path) -> Result<PathBuf> {
    let as_path = Path::new(arg);
    if as_path.join(crate::rundir::RUN_FILE).is_file() {
        return Ok(as_path.to_path_buf());
    }
    if as_path.exists() {
        bail!("{arg} is not a vmbench run directory (no run.json)");
    }
    check_name(arg).with_context(|| format!("{arg} is neither a run directory nor a baseline name"))?;
    let path = dir(results_root).join(arg);
    if !path.join(crate::rundir::RUN_FILE).is_file() {
        bail!(
            "no baseline `{arg}` (looked in {}); save one with `vmbench run ... --save-baseline {arg}`",
            dir(results_root).display()
        );
    }
    Ok(path)
}

/// Stores `run` as baseline `name`, replacing an older one atomically.
pub fn save(run: &Path, name: &str, results_root: &Path) -> Result<PathBuf> {
    check_name(name)?;
    let root = dir(results_root);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let target = root.join(name);
    let tmp = root.join(format!(".{name}.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(run, &tmp).with_context(|| format!("copying {} to {}", run.display(), tmp.display()))?;
    let old = root.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = target.exists();
    if had_old {
        std::fs::rename(&target, &old)?;
    }
    if let Err(e) = std::fs::rename(&tmp, &target) {
        if had_old {
            let _ = std::fs::rename(&old, &target);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e).context("moving the new baseline into place");
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(target)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}
