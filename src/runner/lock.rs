//! A lock for every running run, so that a run that died without its own
//! cleanup (`kill -9`, the OOM killer, a power cut) is noticed and swept by
//! the next vmbench that starts targets.
//!
//! Each run holds `<cache>/runs/<run id>.lock` with an exclusive `flock` for
//! as long as its process lives; the kernel drops the lock when the process
//! dies, however it dies. Next to it, `<run id>.json` ([`LockInfo`], written
//! atomically, readable by its owner only) says what the run's sweepers
//! remove and where its run directory is, updated as they become known. A
//! later vmbench that can take a run's lock knows the run is dead: it
//! rebuilds the sweepers from the file, sweeps, marks the run directory's
//! `run.json` interrupted (if it still says running) and removes both files.
//! A lock it cannot take belongs to a live run and is left alone, so two
//! runs at once each sweep only their own. A lock file appears under its
//! name only once it is locked (it is locked under a temporary name and
//! renamed), so a starting run is never taken for a dead one.

use crate::backend::Leftovers;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the locks of running runs are.
pub fn default_dir() -> PathBuf {
    crate::guest::cache::dir().join("runs")
}

/// What a running run's lock file says about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    pub run_id: String,
    pub pid: u32,
    /// UTC, RFC 3339.
    pub started_at: String,
    /// The run directory, once it exists (after preflight).
    pub dir: Option<PathBuf>,
    /// What the run's sweepers remove, as they were registered.
    pub leftovers: Vec<Leftovers>,
}

/// The lock a live run holds; dropping it keeps the files (see [`RunLock::release`]).
pub struct RunLock {
    dir: PathBuf,
    /// Holds the `flock` for as long as this process lives.
    _file: File,
    info: Mutex<LockInfo>,
}

impl RunLock {
    /// Takes the lock of run `run_id` in `dir`.
    pub fn acquire(dir: &Path, run_id: &str) -> Result<RunLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let temporary = dir.join(format!(".{run_id}.lock.{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        if !try_flock(&file) {
            anyhow::bail!("{} is locked by another process", temporary.display());
        }
        let lock = RunLock {
            dir: dir.to_path_buf(),
            _file: file,
            info: Mutex::new(LockInfo {
                run_id: run_id.to_string(),
                pid: std::process::id(),
                started_at: crate::rundir::now_rfc3339(),
                ..Default::default()
            }),
        };
        lock.write()?;
        std::fs::rename(&temporary, lock_path(dir, run_id)).with_context(|| format!("renaming {}", temporary.display()))?;
        Ok(lock)
    }

    /// Records what one more sweeper removes.
    pub fn add(&self, leftovers: Leftovers) -> Result<()> {
        let mut info = self.info.lock().expect("run lock");
        if !info.leftovers.contains(&leftovers) {
            info.leftovers.push(leftovers);
        }
        drop(info);
        self.write()
    }

    /// Records the run directory.
    pub fn set_dir(&self, dir: &Path) -> Result<()> {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        self.info.lock().expect("run lock").dir = Some(absolute);
        self.write()
    }

    /// Removes the lock's files: the run has swept what it made.
    pub fn release(&self) {
        let run_id = self.info.lock().expect("run lock").run_id.clone();
        let _ = std::fs::remove_file(info_path(&self.dir, &run_id));
        let _ = std::fs::remove_file(lock_path(&self.dir, &run_id));
    }

    fn write(&self) -> Result<()> {
        let info = self.info.lock().expect("run lock").clone();
        let json = serde_json::to_vec_pretty(&info).context("serialising the run's lock")?;
        crate::guest::cache::write_atomic(&info_path(&self.dir, &info.run_id), &json, 0o600)
    }
}

fn lock_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.lock"))
}

fn info_path(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.json"))
}

/// `flock(LOCK_EX | LOCK_NB)`: whether this process now holds the lock.
fn try_flock(file: &File) -> bool {
    // SAFETY: a plain system call on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// A run whose process is gone, its lock now held by this process.
pub struct DeadRun {
    pub info: LockInfo,
    /// The lock's own path, or a temporary one of a run that died starting.
    lock: PathBuf,
    dir: PathBuf,
    _file: File,
}

impl DeadRun {
    /// Removes its files once it has been swept.
    pub fn forget(self) {
        let _ = std::fs::remove_file(info_path(&self.dir, &self.info.run_id));
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// The runs in `dir` whose process died holding their lock. A lock held by
/// a live process, or already taken and removed by another vmbench, is
/// skipped.
pub fn dead_runs(dir: &Path) -> Vec<DeadRun> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dead = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // `<id>.lock`, or `.<id>.lock.<pid>` of a run that died while
        // starting; a young one may be a run between its open and its flock.
        let run_id = match name.strip_prefix('.') {
            Some(_) if younger_than(&path, STARTING) => continue,
            Some(hidden) => hidden.split_once(".lock.").map(|(id, _)| id),
            None => name.strip_suffix(".lock"),
        };
        let Some(run_id) = run_id.map(str::to_string) else {
            continue;
        };
        let Ok(file) = File::open(&path) else { continue };
        if !try_flock(&file) || !still_at(&file, &path) {
            continue;
        }
        let info = std::fs::read(info_path(dir, &run_id))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LockInfo>(&bytes).ok())
            .filter(|info| info.run_id == run_id)
            .unwrap_or(LockInfo {
                run_id,
                ..Default::default()
            });
        dead.push(DeadRun {
            info,
            lock: path,
            dir: dir.to_path_buf(),
            _file: file,
        });
    }
    dead
}

/// How long a run may take between creating its temporary lock and
/// locking it (microseconds, in fact).
const STARTING: std::time::Duration = std::time::Duration::from_secs(10);

fn younger_than(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e < age))
}

/// Whether `path` still names the file `file` has open (another vmbench may
/// have swept the run and removed its lock between our open and our flock).
fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_run_is_never_dead_and_a_dropped_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path(), "r1").unwrap();
        lock.add(Leftovers::Cgroups).unwrap();
        lock.add(Leftovers::Cgroups).unwrap();
        lock.set_dir(Path::new("/results/r1")).unwrap();
        // Another open file description conflicts even in this process, as
        // another vmbench's would.
        assert!(dead_runs(dir.path()).is_empty(), "a held lock is a live run");
        drop(lock); // the kernel releases the flock, as when the process dies
        let dead = dead_runs(dir.path());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].info.run_id, "r1");
        assert_eq!(dead[0].info.pid, std::process::id());
        assert_eq!(dead[0].info.leftovers, [Leftovers::Cgroups]);
        assert_eq!(dead[0].info.dir.as_deref(), Some(Path::new("/results/r1")));
        // While one vmbench holds a dead run, nobody else takes it.
        assert!(dead_runs(dir.path()).is_empty());
        dead.into_iter().for_each(DeadRun::forget);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_released_run_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path(), "r2").unwrap();
        lock.release();
        drop(lock);
        assert!(dead_runs(dir.path()).is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_run_that_died_while_starting_is_found_by_its_temporary_lock() {
        let dir = tempfile::tempdir().unwrap();
        let starting = dir.path().join(".r3.lock.12345");
        std::fs::write(&starting, b"").unwrap();
        std::fs::write(dir.path().join("r3.json"), b"{ torn").unwrap();
        std::fs::write(dir.path().join("unrelated"), b"").unwrap();
        assert!(dead_runs(dir.path()).is_empty(), "it may be starting still");
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::options().write(true).open(&starting).unwrap().set_modified(long_ago).unwrap();
        let dead = dead_runs(dir.path());
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].info.run_id.as_str(), dead[0].info.leftovers.len()), ("r3", 0));
        dead.into_iter().for_each(DeadRun::forget);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, ["unrelated"]);
    }

    #[test]
    fn the_lock_file_is_its_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = RunLock::acquire(dir.path(), "r4").unwrap();
        for file in ["r4.lock", "r4.json"] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }
}
