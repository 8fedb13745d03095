//! What the file-reading targets share: one scratch run directory per
//! fuzzing process, its files rewritten for every input (the readers take a
//! directory, as `vmbench report`, `check` and `history` do).
#![allow(dead_code)] // each target uses only some of these

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The nonce the console and protocol targets expect; the seeds carry it.
pub const NONCE: &str = "f022f022f022f022";

/// This process's scratch directory, emptied of earlier files by each writer.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vmbench-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
        dir
    })
}

/// Writes `files` (name, bytes) into the scratch directory, removing the
/// names in `absent`, and returns it.
pub fn run_dir(files: &[(&str, &[u8])], absent: &[&str]) -> &'static Path {
    let dir = scratch_dir();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("writing a fuzz input");
    }
    for name in absent {
        let _ = std::fs::remove_file(dir.join(name));
    }
    dir
}
