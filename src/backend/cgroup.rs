//! Cgroups that vmbench makes for the targets it starts itself (a QEMU
//! process, the native agent), so that their memory and CPU are accounted
//! exactly as a container's are: by the kernel's cgroup counters, page
//! cache and kernel memory included. cgroup v1 (`memory` and `cpuacct`
//! hierarchies) or v2 (the unified hierarchy), whichever the host has.
//!
//! Each launch gets `<root>/vmbench/<run id>/<launch>`; the child joins it
//! between fork and exec, so nothing it does is missed. The directories are
//! removed after the launch, and the run's tree by its sweeper.

use super::footprint::Reading;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a controller's counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// Directory holding `memory.usage_in_bytes` (v1) or `memory.current` (v2).
    pub memory: PathBuf,
    /// Directory holding `cpuacct.usage` (v1) or `cpu.stat` (v2).
    pub cpu: PathBuf,
}

impl Hierarchies {
    /// This host's: v2 when the unified hierarchy has the memory
    /// controller, else the v1 `memory` and `cpuacct` hierarchies.
    pub fn of_host() -> Option<Hierarchies> {
        let unified = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Some(Hierarchies {
                memory: unified.into(),
                cpu: unified.into(),
            });
        }
        let memory = PathBuf::from("/sys/fs/cgroup/memory");
        let cpu = ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cpuacct.usage").exists())?;
        memory.join("memory.usage_in_bytes").exists().then_some(Hierarchies { memory, cpu })
    }

    fn unified(&self) -> bool {
        self.memory == self.cpu
    }

    /// The run's directories under each hierarchy.
    pub fn run_dirs(&self, run_id: &str) -> Vec<PathBuf> {
        let mut dirs = vec![self.memory.join("vmbench").join(run_id)];
        if !self.unified() {
            dirs.push(self.cpu.join("vmbench").join(run_id));
        }
        dirs
    }
}

/// Whether vmbench can make cgroups for run `run_id`'s targets here: it
/// makes one as a launch would (controllers delegated on v2) and removes it
/// again, with the run's directories, which stay empty until a launch.
pub fn usable(run_id: &str) -> Result<(), String> {
    let hierarchies = Hierarchies::of_host().ok_or("no cgroup v1 memory + cpuacct or v2 memory controller found")?;
    let made = LaunchCgroup::create(&hierarchies, run_id, "probe");
    if let Ok(probe) = &made {
        probe.remove();
    }
    remove_run(&hierarchies, run_id);
    made.map(|_| ())
        .map_err(|e| format!("cannot make a cgroup under {}: {e}", hierarchies.memory.display()))
}

/// How the memory and CPU of a target vmbench starts itself are accounted
/// on this host, for `run.json` (`settings.accounting`); `fallback` says why
/// the cgroup accounting the scenario asked for could not be had.
pub fn accounting(what: &str, mode: crate::scenario::Accounting, fallback: Option<&str>) -> String {
    const BATCHES: &str = "charged in batches of 64 pages per CPU, so a reading may be up to 256 KiB per CPU above what is in use";
    if mode == crate::scenario::Accounting::Process {
        let asked = match fallback {
            Some(why) => format!("accounting = \"cgroup\" was asked for, but {why}"),
            None => "accounting = \"process\"".to_string(),
        };
        return format!("{what}'s own process ({asked}): RSS, VmHWM and CPU time from /proc, or as the agent reports them");
    }
    match Hierarchies::of_host() {
        Some(h) if h.unified() => format!("{what} in a cgroup of its own made by vmbench (cgroup v2: memory.current/peak, {BATCHES}; cpu.stat); the process's own RSS and PSS as rss_ready_bytes, pss_ready_bytes"),
        _ => format!("{what} in a cgroup of its own made by vmbench (cgroup v1: memory usage and max usage, {BATCHES}; cpuacct.usage); the process's own RSS and PSS as rss_ready_bytes, pss_ready_bytes"),
    }
}

/// One launch's cgroup.
#[derive(Debug, Clone)]
pub struct LaunchCgroup {
    pub memory: PathBuf,
    pub cpu: PathBuf,
    /// `cgroup.procs` of each hierarchy, ready for the child to write to.
    procs: Vec<CString>,
}

impl LaunchCgroup {
    /// Creates `vmbench/<run id>/<name>` in every hierarchy.
    pub fn create(hierarchies: &Hierarchies, run_id: &str, name: &str) -> std::io::Result<LaunchCgroup> {
        let memory = hierarchies.memory.join("vmbench").join(run_id).join(name);
        let cpu = hierarchies.cpu.join("vmbench").join(run_id).join(name);
        if hierarchies.unified() {
            enable_controllers(&hierarchies.memory, &memory)?;
        }
        let mut procs = Vec::new();
        for dir in [&memory, &cpu] {
            std::fs::create_dir_all(dir)?;
            let path = CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
            if !procs.contains(&path) {
                procs.push(path);
            }
        }
        Ok(LaunchCgroup { memory, cpu, procs })
    }

    /// Makes the child join this cgroup before it runs anything.
    pub fn join_in_child(&self, command: &mut tokio::process::Command) -> JoinClock {
        let procs = self.procs.clone();
        let pipe = JoinPipe::new();
        // The closure owns its own copy of the write end, so the number it
        // writes to stays this pipe's whatever happens to the JoinClock.
        let report = pipe.as_ref().and_then(|p| p.write.try_clone().ok());
        // SAFETY: clock_gettime, open, write and close are async-signal-safe;
        // the paths were built before the fork and are only read.
        unsafe {
            command.pre_exec(move || {
                let joining = monotonic_ns();
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // "0": the writing process itself.
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(fd) = &report {
                    let took = monotonic_ns().saturating_sub(joining).to_ne_bytes();
                    libc::write(fd.as_raw_fd(), took.as_ptr().cast(), took.len());
                }
                Ok(())
            });
        }
        JoinClock(pipe)
    }

    /// Removes the directories (the processes must be gone).
    pub fn remove(&self) {
        for dir in [&self.memory, &self.cpu] {
            // A cgroup directory is removed with rmdir, never unlinked file by file.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// How long the child took to join its cgroup, as it measured it between
/// fork and exec. A cgroup migration is vmbench's own work, not the target's
/// (on cgroup v1 it waits for an RCU grace period: 2-16 ms here), so the
/// launch's clock leaves it out.
#[must_use = "the join's duration is read from it after the spawn"]
pub struct JoinClock(Option<JoinPipe>);

struct JoinPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl JoinPipe {
    fn new() -> Option<JoinPipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors it returns, which are
        // then owned here and nowhere else.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return None;
        }
        // SAFETY: both descriptors were just created and are not shared.
        unsafe {
            Some(JoinPipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            })
        }
    }
}

impl JoinClock {
    /// The join's duration, once the child was spawned (it wrote it before
    /// its exec, which the spawn waited for); `None` if it could not say.
    pub fn joined(self) -> Option<Duration> {
        let pipe = self.0?;
        let mut took = [0u8; 8];
        let read = std::fs::File::from(pipe.read).read(&mut took).ok()?;
        (read == took.len()).then(|| Duration::from_nanos(u64::from_ne_bytes(took)))
    }
}

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Memory and CPU counters of a cgroup, plus `extra_pid`'s RSS (a
/// container's shim).
pub fn counters(memory: &Path, cpu: &Path, extra_pid: Option<u32>) -> Option<Reading> {
    let at = Instant::now();
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<u64>().ok();
    let (bytes, peak) = match read(memory, "memory.usage_in_bytes") {
        Some(usage) => (usage, read(memory, "memory.max_usage_in_bytes")),
        None => (read(memory, "memory.current")?, read(memory, "memory.peak")),
    };
    let cpu_ns = read(cpu, "cpuacct.usage").or_else(|| cpu_stat_usage_ns(cpu));
    let shim = extra_pid.and_then(super::footprint::process).map(|r| r.bytes).unwrap_or(0);
    Some(Reading {
        at,
        bytes: bytes + shim,
        peak_bytes: peak.map(|p| p + shim),
        pss_bytes: None,
        rss_bytes: None,
        cpu_ns,
    })
}

/// `usage_usec` of a v2 `cpu.stat`, in ns.
fn cpu_stat_usage_ns(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    parse_usage_usec(&text).map(|us| us * 1000)
}

fn parse_usage_usec(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
}

/// v2: a child cgroup only gets the memory and cpu controllers when every
/// ancestor below the root delegates them.
fn enable_controllers(root: &Path, leaf: &Path) -> std::io::Result<()> {
    let mut dir = root.to_path_buf();
    for part in leaf
        .strip_prefix(root)
        .map_err(std::io::Error::other)?
        .parent()
        .into_iter()
        .flat_map(Path::components)
    {
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu")?;
        dir = dir.join(part);
        std::fs::create_dir_all(&dir)?;
    }
    std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu")
}

/// Removes every run's cgroups that no process uses any more (`vmbench
/// clean`, after a run was killed before its own cleanup); returns how many
/// run directories went.
pub fn remove_all(hierarchies: &Hierarchies) -> usize {
    let mut roots = vec![hierarchies.memory.join("vmbench")];
    if !hierarchies.unified() {
        roots.push(hierarchies.cpu.join("vmbench"));
    }
    let mut removed = 0;
    for root in roots {
        let runs = std::fs::read_dir(&root).into_iter().flatten().flatten();
        for run in runs.filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let run_id = run.file_name().to_string_lossy().into_owned();
            remove_run(hierarchies, &run_id);
            removed += usize::from(!run.path().exists());
        }
    }
    removed
}

/// Removes what is left of a run's cgroups: leaf directories first, each
/// after killing any process still in it. Normally there is none (every
/// launch kills and reaps its own, and QEMU dies with vmbench); a QEMU that
/// changed its user (`run_as`) lost its parent-death signal and outlives a
/// killed vmbench, and this is where it ends.
pub fn remove_run(hierarchies: &Hierarchies, run_id: &str) {
    for dir in hierarchies.run_dirs(run_id) {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for leaf in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                kill_members(&leaf.path());
                let _ = std::fs::remove_dir(leaf.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Sends SIGKILL to every process in the cgroup `dir` and waits (at most
/// 2 s) until the cgroup is empty, so it can be removed.
fn kill_members(dir: &Path) {
    let members = |dir: &Path| -> Vec<libc::pid_t> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pids = members(dir);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            // SAFETY: kill sends a signal; the pid is a member of vmbench's
            // own cgroup for this run.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The memory and cpu cgroup directories of a process (libvirt's QEMU, which
/// libvirt places itself); `None` when it sits in a root cgroup, whose
/// counters are the whole host's.
pub fn of_process(pid: u32) -> Option<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let hierarchies = Hierarchies::of_host()?;
    let path_of = |controller: &str| {
        text.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = if hierarchies.unified() {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == controller)
            };
            (wanted && path != "/").then(|| path.trim_start_matches('/').to_string())
        })
    };
    Some((
        hierarchies.memory.join(path_of("memory")?),
        hierarchies.cpu.join(path_of("cpuacct")?),
    ))
}

/// The cgroup directories of a container, found by its id in each hierarchy.
pub fn of_container(hierarchies: &Hierarchies, id: &str) -> Option<(PathBuf, PathBuf)> {
    let memory = find_named(&hierarchies.memory, id, 3)?;
    let cpu = if hierarchies.unified() {
        memory.clone()
    } else {
        find_named(&hierarchies.cpu, id, 3)?
    };
    Some((memory, cpu))
}

/// The directory under `dir`, at most `depth` levels further down, whose
/// name carries `id` (`docker/<id>`, `system.slice/docker-<id>.scope`,
/// `libpod_parent/libpod-<id>`, ...).
fn find_named(dir: &Path, id: &str, depth: u32) -> Option<PathBuf> {
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    // Podman may put a container's monitor in `libpod-conmon-<id>` beside
    // the container's `libpod-<id>`: that one is not the container.
    let is_container = |p: &&PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .is_some_and(|n| n.contains(id) && !n.contains("conmon"))
    };
    if let Some(found) = subdirs.iter().find(is_container) {
        return Some(found.clone());
    }
    (depth > 0)
        .then(|| subdirs.iter().find_map(|d| find_named(d, id, depth - 1)))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `remove_all` sweeps every run's cgroups, the other test's too.
    static HOST_CGROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_dead_runs_cgroups_are_removed_with_whatever_still_runs_in_them() {
        let _alone = HOST_CGROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(hierarchies) = Hierarchies::of_host() else {
            eprintln!("no usable cgroup hierarchy here; skipped");
            return;
        };
        let run = format!("left-{}", std::process::id());
        let cgroup = LaunchCgroup::create(&hierarchies, &run, "vm-0").unwrap();
        assert!(cgroup.memory.exists());
        // A process the dead run left in its cgroup (as a QEMU that changed
        // its user, and so lost its parent-death signal, would be).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut child = rt.block_on(async {
            let mut command = tokio::process::Command::new("sleep");
            command.arg("600");
            let join = cgroup.join_in_child(&mut command);
            let child = command.spawn().unwrap();
            assert!(join.joined().is_some(), "the child timed its join");
            child
        });
        // Its own run only: remove_all would reach any live run's cgroups.
        remove_run(&hierarchies, &run);
        let status = rt.block_on(child.wait()).unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        assert!(hierarchies.run_dirs(&run).iter().all(|d| !d.exists()));
    }

    #[test]
    fn v2_cpu_usage_is_read_from_cpu_stat() {
        assert_eq!(parse_usage_usec("usage_usec 1234\nuser_usec 1000\n"), Some(1234));
        assert_eq!(parse_usage_usec("user_usec 1\n"), None);
    }

    #[test]
    fn a_launch_cgroup_accounts_a_child_and_is_removed() {
        let _alone = HOST_CGROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(hierarchies) = Hierarchies::of_host() else {
            eprintln!("no usable cgroup hierarchy here; skipped");
            return;
        };
        let run = format!("test-{}", std::process::id());
        let cgroup = LaunchCgroup::create(&hierarchies, &run, "child").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // `yes` into /dev/null: a child that burns CPU until killed.
            let mut command = tokio::process::Command::new("yes");
            command.stdout(std::process::Stdio::null());
            let _join = cgroup.join_in_child(&mut command);
            let mut child = command.spawn().unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            child.kill().await.unwrap();
        });
        let reading = counters(&cgroup.memory, &cgroup.cpu, None).expect("counters read");
        assert!(reading.cpu_ns.unwrap() > 1_000_000, "the child's CPU time was charged: {reading:?}");
        assert!(reading.peak_bytes.unwrap() > 0);
        cgroup.remove();
        remove_run(&hierarchies, &run);
        assert!(hierarchies.run_dirs(&run).iter().all(|d| !d.exists()));
    }
}
