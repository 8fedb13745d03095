//! What a target costs the host in memory: sampled from `/proc` and the
//! cgroup file system while it runs, never from inside the target.
//!
//! - VM: the QEMU process's RSS and PSS (`/proc/<pid>/smaps_rollup`), peak
//!   from `VmHWM`; guest RAM given is in `run.json`.
//! - Container: the container's cgroup memory usage (and its peak) plus the
//!   RSS of the runtime shim that keeps it.
//! - Native: the agent's own RSS (it reports it at ready and its peak at the end).
//!
//! Sampling runs in its own task every [`INTERVAL`], started by the trial
//! driver at the ready line, so it never delays the console reading that
//! times the ready line. Backends only say where their target's memory is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const INTERVAL: Duration = Duration::from_millis(20);

/// One reading: bytes in use, and the peak so far when the source knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Instant,
    pub bytes: u64,
    pub peak_bytes: Option<u64>,
    /// Proportional set size (QEMU only).
    pub pss_bytes: Option<u64>,
}

/// Readings of one trial.
#[derive(Debug, Default, Clone)]
pub struct Series(pub Vec<Reading>);

impl Series {
    /// The first reading taken at or after `t` (the footprint "at ready").
    pub fn at_or_after(&self, t: Instant) -> Option<&Reading> {
        self.0.iter().find(|r| r.at >= t)
    }

    /// The largest usage seen, or reported as the peak by the source.
    pub fn peak(&self) -> Option<u64> {
        self.0.iter().map(|r| r.bytes.max(r.peak_bytes.unwrap_or(0))).max()
    }

    /// Adds `mem_ready_bytes`, `mem_peak_bytes` (and `pss_ready_bytes`) to `metrics`.
    pub fn record(&self, ready_at: Option<Instant>, metrics: &mut std::collections::BTreeMap<String, f64>) {
        if let Some(r) = ready_at.and_then(|t| self.at_or_after(t)) {
            metrics.insert("mem_ready_bytes".into(), r.bytes as f64);
            if let Some(pss) = r.pss_bytes {
                metrics.insert("pss_ready_bytes".into(), pss as f64);
            }
        }
        if let Some(peak) = self.peak() {
            metrics.insert("mem_peak_bytes".into(), peak as f64);
        }
    }
}

/// Takes one reading of a target's memory; `None` once the source is gone.
pub type Reader = Box<dyn FnMut() -> Option<Reading> + Send>;

/// A running sampler; `stop` ends it and returns what it saw.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Series>,
}

impl Sampler {
    /// Finds the source with `init` (a container's cgroup needs an API
    /// call), then reads it now and every [`INTERVAL`] until stopped; stops
    /// early once the source is gone after having answered. `init` runs in
    /// the sampling task, so it never delays the caller.
    pub fn start<I>(init: I) -> Sampler
    where
        I: std::future::Future<Output = Option<Reader>> + Send + 'static,
    {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut series = Series::default();
            let Some(mut read) = init.await else { return series };
            loop {
                match read() {
                    Some(r) => series.0.push(r),
                    None if !series.0.is_empty() => return series,
                    None => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {}
                    _ = &mut stopped => break,
                }
            }
            // One last reading at the moment the caller asked to stop.
            series.0.extend(read());
            series
        });
        Sampler { stop, task }
    }

    /// Takes a last reading and returns everything seen.
    pub async fn stop(self) -> Series {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Fields of `/proc/<pid>/smaps_rollup` or `/proc/<pid>/status` in bytes.
fn kib_fields(path: &Path, names: &[&str]) -> Option<Vec<Option<u64>>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    .map(|kib| kib * 1024)
            })
            .collect(),
    )
}

/// RSS, PSS and peak RSS of a process.
pub fn process(pid: u32) -> Option<Reading> {
    let at = Instant::now();
    let rollup = kib_fields(Path::new(&format!("/proc/{pid}/smaps_rollup")), &["Rss", "Pss"])?;
    let status = kib_fields(Path::new(&format!("/proc/{pid}/status")), &["VmHWM"]).unwrap_or_default();
    Some(Reading {
        at,
        bytes: rollup[0]?,
        pss_bytes: rollup[1],
        peak_bytes: status.first().copied().flatten(),
    })
}

/// A reader of one process's memory (QEMU).
pub fn process_reader(pid: u32) -> Reader {
    Box::new(move || process(pid))
}

/// The memory cgroup directory of a process (cgroup v1 `memory` controller,
/// or the unified hierarchy).
pub fn cgroup_dir(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return Some(PathBuf::from(format!("/sys/fs/cgroup/memory{path}")));
        }
    }
    let unified = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(|root| PathBuf::from(format!("{root}{unified}")))
        .find(|p| p.join("memory.current").exists())
}

/// Usage and peak of a memory cgroup, plus `extra_pid`'s RSS (the shim).
pub fn cgroup(dir: &Path, extra_pid: Option<u32>) -> Option<Reading> {
    let at = Instant::now();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<u64>().ok();
    let (bytes, peak) = match read("memory.usage_in_bytes") {
        Some(usage) => (usage, read("memory.max_usage_in_bytes")),
        None => (read("memory.current")?, read("memory.peak")),
    };
    let shim = extra_pid.and_then(process).map(|r| r.bytes).unwrap_or(0);
    Some(Reading {
        at,
        bytes: bytes + shim,
        peak_bytes: peak.map(|p| p + shim),
        pss_bytes: None,
    })
}

/// The parent of a process (the runtime shim of a container's init).
pub fn parent(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_footprint() {
        let me = process(std::process::id()).unwrap();
        assert!(me.bytes > 1024 * 1024, "{me:?}");
        assert!(me.pss_bytes.unwrap() > 0 && me.peak_bytes.unwrap() >= me.bytes);
        assert!(parent(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn this_process_has_a_memory_cgroup_that_reads() {
        if let Some(dir) = cgroup_dir(std::process::id()) {
            let reading = cgroup(&dir, None).unwrap();
            assert!(reading.bytes > 0, "{dir:?}");
        }
    }

    #[test]
    fn series_picks_the_reading_after_ready_and_the_peak() {
        let t0 = Instant::now();
        let r = |ms: u64, bytes: u64, peak: Option<u64>| Reading {
            at: t0 + Duration::from_millis(ms),
            bytes,
            peak_bytes: peak,
            pss_bytes: None,
        };
        let s = Series(vec![r(0, 10, None), r(20, 50, Some(70)), r(40, 30, None)]);
        assert_eq!(s.at_or_after(t0 + Duration::from_millis(15)).unwrap().bytes, 50);
        assert_eq!(s.peak(), Some(70));
        let mut m = Default::default();
        s.record(Some(t0 + Duration::from_millis(30)), &mut m);
        assert_eq!((m["mem_ready_bytes"], m["mem_peak_bytes"]), (30.0, 70.0));
    }
}
