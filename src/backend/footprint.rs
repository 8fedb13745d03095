//! What a target costs the host in memory: sampled from `/proc` and the
//! cgroup file system while it runs, never from inside the target.
//!
//! - VM: the QEMU process's RSS and PSS (`/proc/<pid>/smaps_rollup`), peak
//!   from `VmHWM`; guest RAM given is in `run.json`.
//! - Container: the container's cgroup memory usage (and its peak) plus the
//!   RSS of the runtime shim that keeps it.
//! - Native: the agent's own RSS (it reports it at ready and its peak at the end).
//!
//! Sampling runs on a thread of its own every [`INTERVAL`], started by the
//! trial driver at the ready line, so it never delays the console reading
//! that times the ready line or the network workload's round trips.
//! Backends only say where their target's memory is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const INTERVAL: Duration = Duration::from_millis(20);

/// How late a reading may come after the instant it stands for when there
/// is no earlier one to interpolate from. That happens when a region begins
/// before the sampler's first reading: the sampler starts at the ready line
/// and first has to find its source (a container's cgroup), while the agent
/// begins its first region milliseconds later. The CPU time spent between
/// the instant and that reading (at most this long) is then missed.
pub const MARK_SLACK: Duration = INTERVAL;

/// One reading: bytes in use, and the peak so far when the source knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: Instant,
    pub bytes: u64,
    pub peak_bytes: Option<u64>,
    /// Proportional set size (QEMU only).
    pub pss_bytes: Option<u64>,
    /// The process's own resident set, when the bytes above are a cgroup's.
    pub rss_bytes: Option<u64>,
    /// Host CPU time used since the target started, in ns.
    pub cpu_ns: Option<u64>,
}

/// Readings of one trial.
#[derive(Debug, Default, Clone)]
pub struct Series(pub Vec<Reading>);

impl Series {
    /// The first reading taken at or after `t` (the footprint "at ready").
    pub fn at_or_after(&self, t: Instant) -> Option<&Reading> {
        self.0.iter().find(|r| r.at >= t)
    }

    /// Host CPU time (ns) the source used between `from` and `to`, each
    /// end interpolated linearly between the readings around it; `None`
    /// unless readings with CPU time bracket both ends. An end before the
    /// first reading takes that reading when it came within [`MARK_SLACK`].
    pub fn cpu_between(&self, from: Instant, to: Instant) -> Option<f64> {
        Some(self.cpu_at(to)? - self.cpu_at(from)?).filter(|ns| *ns >= 0.0)
    }

    fn cpu_at(&self, t: Instant) -> Option<f64> {
        let with_cpu: Vec<(Instant, u64)> = self.0.iter().filter_map(|r| Some((r.at, r.cpu_ns?))).collect();
        let after = with_cpu.iter().position(|(at, _)| *at >= t)?;
        let (t1, c1) = with_cpu[after];
        if t1 == t {
            return Some(c1 as f64);
        }
        let Some(before) = after.checked_sub(1) else {
            return (t1 - t <= MARK_SLACK).then_some(c1 as f64);
        };
        let (t0, c0) = with_cpu[before];
        let span = (t1 - t0).as_secs_f64();
        let part = (t - t0).as_secs_f64() / span;
        Some(c0 as f64 + (c1 as f64 - c0 as f64) * part)
    }

    /// The largest usage seen, or reported as the peak by the source.
    pub fn peak(&self) -> Option<u64> {
        self.0.iter().map(|r| r.bytes.max(r.peak_bytes.unwrap_or(0))).max()
    }

    /// Adds `mem_ready_bytes`, `mem_peak_bytes` (and `pss_ready_bytes`,
    /// `rss_ready_bytes`, `host_cpu_ms` where the source has them) to `metrics`.
    pub fn record(&self, ready_at: Option<Instant>, metrics: &mut std::collections::BTreeMap<String, f64>) {
        if let Some(r) = ready_at.and_then(|t| self.at_or_after(t)) {
            metrics.insert("mem_ready_bytes".into(), r.bytes as f64);
            if let Some(pss) = r.pss_bytes {
                metrics.insert("pss_ready_bytes".into(), pss as f64);
            }
            if let Some(rss) = r.rss_bytes {
                metrics.insert("rss_ready_bytes".into(), rss as f64);
            }
        }
        if let Some(peak) = self.peak() {
            metrics.insert("mem_peak_bytes".into(), peak as f64);
        }
        // The last reading is taken when the agent is done: everything the
        // target's work cost the host's CPUs, start-up included.
        let last_cpu = self.0.iter().rev().find_map(|r| r.cpu_ns);
        if let Some(cpu_ns) = last_cpu {
            metrics.insert("host_cpu_ms".into(), cpu_ns as f64 / 1e6);
        }
        // From the ready line to the end: what the workload itself cost.
        let ready_cpu = ready_at.and_then(|t| self.at_or_after(t)).and_then(|r| r.cpu_ns);
        if let (Some(from), Some(to)) = (ready_cpu, last_cpu) {
            metrics.insert("host_cpu_workload_ms".into(), to.saturating_sub(from) as f64 / 1e6);
        }
    }
}

/// Takes one reading of a target's memory; `None` once the source is gone.
pub type Reader = Box<dyn FnMut() -> Option<Reading> + Send>;

/// Finds a target's memory source (its process, its cgroup) and returns the
/// reader; runs on the sampler's own thread.
pub type Finder = Box<dyn FnOnce() -> Option<Reader> + Send>;

/// A running sampler; `stop` ends it and returns what it saw.
pub struct Sampler {
    stop: std::sync::mpsc::Sender<Ask>,
    thread: std::thread::JoinHandle<Series>,
}

impl Sampler {
    /// Finds the source with `find`, then reads it now and every
    /// [`INTERVAL`] until stopped; stops early once the source is gone after
    /// having answered. All of it runs on a thread of its own, so the
    /// `/proc` and cgroup reads (walking a VM's page tables for PSS, say)
    /// never delay the thread that stamps console lines or times network
    /// round trips.
    pub fn start(find: Finder) -> Sampler {
        let (stop, messages) = std::sync::mpsc::channel::<Ask>();
        let thread = std::thread::spawn(move || {
            let mut series = Series::default();
            let Some(mut read) = find() else { return series };
            loop {
                match read() {
                    Some(r) => series.0.push(r),
                    None if !series.0.is_empty() => return series,
                    None => {}
                }
                match messages.recv_timeout(INTERVAL) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) | Ok(Ask::ReadNow) => {}
                    _ => break,
                }
            }
            // One last reading at the moment the caller asked to stop.
            series.0.extend(read());
            series
        });
        Sampler { stop, thread }
    }

    /// A handle that makes the sampler take a reading now, out of its
    /// rhythm: at the ends of a phase whose cost is wanted exactly.
    pub fn mark(&self) -> Mark {
        Mark(self.stop.clone())
    }

    /// Takes a last reading and returns everything seen.
    pub async fn stop(self) -> Series {
        let _ = self.stop.send(Ask::Stop);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}

/// What the sampler's owner asks of its thread.
enum Ask {
    ReadNow,
    Stop,
}

/// Asks a running [`Sampler`] for a reading now ([`Sampler::mark`]).
#[derive(Clone)]
pub struct Mark(std::sync::mpsc::Sender<Ask>);

impl Mark {
    /// Never blocks; a stopped sampler ignores it.
    pub fn now(&self) {
        let _ = self.0.send(Ask::ReadNow);
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
        rss_bytes: None,
        cpu_ns: process_cpu_ns(pid),
    })
}

/// A reader of one process: its memory and CPU time (a target that could
/// not be given a cgroup of its own).
pub fn process_reader(pid: u32) -> Reader {
    Box::new(move || process(pid))
}

/// The reader of a VM's QEMU process: its cgroup's counters when it has a
/// cgroup to read (`(memory, cpu)` directories), else the process itself.
pub fn qemu_reader(cgroup: Option<(PathBuf, PathBuf)>, pid: u32) -> Reader {
    match cgroup {
        Some((memory, cpu)) => cgroup_reader(memory, cpu, Some(pid)),
        None => process_reader(pid),
    }
}

/// A reader of a cgroup's memory and CPU (the same accounting as a
/// container's), with its main process's RSS and PSS beside it.
pub fn cgroup_reader(memory: PathBuf, cpu: PathBuf, pid: Option<u32>) -> Reader {
    Box::new(move || {
        let mut reading = super::cgroup::counters(&memory, &cpu, None)?;
        if let Some(own) = pid.and_then(process) {
            reading.rss_bytes = Some(own.bytes);
            reading.pss_bytes = own.pss_bytes;
        }
        Some(reading)
    })
}

/// The first process of a cgroup (a container's init).
pub fn first_process(cgroup: &Path) -> Option<u32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .ok()?
        .lines()
        .find_map(|l| l.trim().parse().ok())
}

/// CPU time (user + system, all threads) a process has used, in ns.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / hz)
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
    fn this_process_has_used_cpu_time() {
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(process_cpu_ns(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn series_picks_the_reading_after_ready_and_the_peak() {
        let t0 = Instant::now();
        let r = |ms: u64, bytes: u64, peak: Option<u64>| Reading {
            at: t0 + Duration::from_millis(ms),
            bytes,
            peak_bytes: peak,
            pss_bytes: None,
            rss_bytes: None,
            cpu_ns: Some(ms * 1_000_000),
        };
        let s = Series(vec![r(0, 10, None), r(20, 50, Some(70)), r(40, 30, None)]);
        assert_eq!(s.at_or_after(t0 + Duration::from_millis(15)).unwrap().bytes, 50);
        assert_eq!(s.peak(), Some(70));
        let mut m = Default::default();
        s.record(Some(t0 + Duration::from_millis(30)), &mut m);
        assert_eq!((m["mem_ready_bytes"], m["mem_peak_bytes"]), (30.0, 70.0));
        assert_eq!(m["host_cpu_ms"], 40.0, "CPU time from the last reading");
        assert_eq!(m["host_cpu_workload_ms"], 0.0, "the reading at ready is the last one");
    }

    #[test]
    fn cpu_between_two_instants_is_interpolated_from_the_readings_around_them() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let r = |at: u64, cpu_ms: u64| Reading {
            at: ms(at),
            bytes: 1,
            peak_bytes: None,
            pss_bytes: None,
            rss_bytes: None,
            cpu_ns: Some(cpu_ms * 1_000_000),
        };
        // 20 ms of readings: 10 ms of CPU in the first interval, 2 in the second.
        let s = Series(vec![r(0, 0), r(20, 10), r(40, 12)]);
        let ns = s.cpu_between(ms(10), ms(30)).unwrap();
        assert!((ns - 6e6).abs() < 1.0, "half of 10 ms, then half of 2 ms: {ns}");
        assert_eq!(s.cpu_between(ms(20), ms(40)), Some(2e6));
        assert_eq!(s.cpu_between(ms(10), ms(50)), None, "no reading after the end");
        assert_eq!(
            Series(vec![r(25, 1), r(30, 2)]).cpu_between(ms(0), ms(30)),
            None,
            "none near the start"
        );
        // The first reading, 1 ms after the start, stands for it.
        let marked = Series(vec![r(11, 3), r(20, 10)]);
        assert_eq!(marked.cpu_between(ms(10), ms(20)), Some(7e6));
    }
}
