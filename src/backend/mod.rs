//! The seam between the trial driver (`runner/`) and the engines that run
//! the agent: QEMU, libvirt, Docker and Podman, a native process.
//!
//! A backend says only what differs between engines: how a target is
//! prepared (artifacts, probes, preflight), how one launch starts, where its
//! console bytes come from, how its process or cgroup is found, how it is
//! known to be gone and how it is removed, and what to sweep after an
//! interruption. Everything else of a trial (instructions, scratch files,
//! the ready line, footprint sampling, the host side of network workloads,
//! metric assembly, failure text) is written once, in `runner::driver`.
//!
//! Nothing here assumes one launch at a time: a backend hands out
//! independent [`Launch`] values, each owning what it started.

pub mod cgroup;
pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod footprint;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod native;
pub mod qemu;

use crate::protocol::Instructions;
use crate::rundir::TargetFacts;
use crate::scenario::{Accounting, CpuSet, Target, TargetSpec, Workload};
use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Shared by the backends of one run.
#[derive(Debug)]
pub struct RunContext {
    pub run_id: String,
    /// Host probes whose verdict holds for the whole run.
    pub kvm: tokio::sync::OnceCell<qemu::accel::Verdict>,
    /// Where disk workloads put their files and images; removed when the
    /// run ends, however it ends.
    pub scratch: PathBuf,
    /// The host CPUs every target runs on; `None`: no pinning.
    pub cpuset: Option<CpuSet>,
    /// Cgroups of vmbench's own for QEMU and the native agent, or their
    /// processes: what this host allows of what the scenario asked for.
    pub accounting: Accounting,
    /// Why the scenario's `accounting = "cgroup"` could not be had here.
    pub accounting_fallback: Option<String>,
}

impl RunContext {
    pub fn new(run_id: &str, cpuset: Option<CpuSet>, accounting: Accounting) -> Arc<Self> {
        let fallback = match accounting {
            Accounting::Cgroup => cgroup::usable(run_id).err(),
            Accounting::Process => None,
        };
        if let Some(why) = &fallback {
            eprintln!("warning: no cgroup of vmbench's own for the VMs and native agents it starts ({why}); their processes are read instead (recorded as settings.accounting)");
        }
        Arc::new(RunContext {
            run_id: run_id.to_string(),
            kvm: Default::default(),
            scratch: scratch_root(run_id),
            cpuset,
            accounting: if fallback.is_some() { Accounting::Process } else { accounting },
            accounting_fallback: fallback,
        })
    }

    /// How the memory and CPU of `what` (a target vmbench starts itself)
    /// are accounted, for `run.json`.
    pub fn accounting_setting(&self, what: &str) -> String {
        cgroup::accounting(what, self.accounting, self.accounting_fallback.as_deref())
    }

    /// A target's own scratch directory (not created here).
    pub fn scratch_for(&self, target: &str) -> PathBuf {
        self.scratch.join(target)
    }
}

/// The `agent` setting recorded for a target that runs the scenario's own
/// agent program.
pub fn agent_setting(path: &Path) -> (String, String) {
    let said = format!("{} (the scenario's `agent`, not vmbench's own)", path.display());
    ("agent".to_string(), said)
}

/// Scratch space of a run: in vmbench's cache, on a disk-backed file system
/// (unlike a tmpfs `/tmp`, it supports O_DIRECT), the same for every target.
pub fn scratch_root(run_id: &str) -> PathBuf {
    crate::guest::cache::dir().join("scratch").join(run_id)
}

/// One launch to set up: what the driver decided, for the backend to turn
/// into its own terms.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The agent's instructions: nonce, workload and parameters. The
    /// backend adds where the agent listens and where its scratch space is.
    pub instructions: Instructions,
    pub workload: Workload,
    /// The disk workload's scratch file on the host, created by the driver
    /// in [`Backend::scratch_dir`] and removed by it after the trial.
    pub scratch: Option<PathBuf>,
}

/// How the host learns what a target costs it in memory.
pub enum Footprint {
    /// Nothing to sample.
    None,
    /// The agent is the whole target and reports its own RSS (native).
    AgentReported,
    /// Sampled from the ready line on, on the sampler's own thread: the
    /// finder locates the source (a process, a cgroup) and returns its reader.
    Sampled(footprint::Finder),
}

/// A launch whose target is starting: its console, and the phases timed so far.
pub struct Started {
    /// The target's console bytes, as they arrive.
    pub console: BoxStream<'static, std::io::Result<Bytes>>,
    /// Durations measured while starting (`create_ms`, `spawn_ms`, ...).
    pub phases: BTreeMap<String, f64>,
    /// A start call still in flight while the console is read (the
    /// container engine's start call: the agent may be ready before it
    /// returns). Resolves to its own phases.
    pub pending: Option<BoxFuture<'static, Result<Pending, String>>>,
    /// vmbench's own work inside the start call that is not the target's
    /// (joining the cgroup vmbench made for it): the launch's clock starts
    /// this much later, so `ready_ms`, `exit_ms` and the rest leave it out.
    pub uncounted: Duration,
}

/// What a start call in flight measured when it returned.
pub struct Pending {
    pub phases: BTreeMap<String, f64>,
    /// Metrics timed from this instant to the ready line, by name.
    pub ready_since: Option<(&'static str, Instant)>,
}

/// How a launch's end is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStyle {
    /// The target stops by itself: `exit_ms` when it is gone, and with
    /// `teardown`, `teardown_ms` from the agent's done line.
    Stops { teardown: bool },
    /// The target stops, then is removed by a timed call: `stopped_ms`,
    /// `remove_ms`, and `exit_ms` once removed.
    Removed,
}

/// The end of a launch as the backend saw it.
#[derive(Debug, Default)]
pub struct Gone {
    /// When the target was seen gone; `None` when it did not end in time.
    pub at: Option<Instant>,
    /// Something the backend has to say about the end (a non-zero exit,
    /// a target that had to be killed), recorded unless the trial already failed.
    pub problem: Option<String>,
}

/// One launch of a target. Dropping it must not leave anything running
/// that `remove` would have removed.
#[async_trait]
pub trait Launch: Send + Sync {
    /// Starts the target. Errors say what failed, in the engine's words.
    async fn start(&mut self) -> Result<Started, String>;

    /// Where the host reaches a port the agent listens on inside the target.
    async fn address(&self, port: u16) -> Result<SocketAddr, String>;

    /// How to sample the target's memory once it is ready.
    fn footprint(&self) -> Footprint;

    /// Whether the agent's boot time is a guest kernel's (VMs): the driver
    /// then splits `ready_ms` into `pre_kernel_ms`, `kernel_ms` and `init_ms`.
    fn boots_a_kernel(&self) -> bool {
        false
    }

    fn exit_style(&self) -> ExitStyle {
        ExitStyle::Stops { teardown: false }
    }

    /// Waits until the target is gone, at most until `deadline`; the agent's
    /// console has ended (`cleanly`: it said done).
    async fn wait_gone(&mut self, deadline: tokio::time::Instant, cleanly: bool) -> Gone;

    /// Removes whatever is left of the launch (kills, destroys, deletes).
    /// Safe after any outcome, including a failed start.
    async fn remove(&mut self) -> Result<(), String>;
}

/// Removes what the launches of one run may have left after an
/// interruption (containers by label, domains by name prefix, image
/// directories). Registered before the first launch, so it can run even
/// when the run task was cancelled mid-trial. Safe to call more than once.
#[async_trait]
pub trait Sweeper: Send + Sync {
    /// Sweepers with the same key sweep the same things: one runs.
    fn key(&self) -> String;
    /// What this sweeper sweeps, as data a later vmbench can rebuild it
    /// from ([`sweeper_for`]) should this one be killed before sweeping;
    /// `None` for what cannot outlive vmbench (the tests' fake).
    fn leftovers(&self) -> Option<Leftovers>;
    /// At the end of every run, and after an interruption (`interrupted`:
    /// then also whatever a call cut off mid-flight may still create).
    async fn sweep(&self, run_id: &str, interrupted: bool) -> Result<()>;
}

/// What a run's sweeper removes, as data: recorded in the lock file of a
/// running run (`runner::lock`), so that a run killed outright is swept by
/// the next vmbench. The engine address is kept as given (it may carry
/// credentials: the lock file is readable by its owner only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Leftovers {
    /// The launch cgroups and, of a VM's tap network, the run's tap devices
    /// and the bridge once empty.
    TapDevices,
    /// Containers carrying the run's label at one engine.
    Containers { engine: crate::scenario::Engine, address: String },
    /// libvirt domains named after the run at one URI, and the run's images.
    Domains { uri: String },
    /// The cgroups vmbench made for the run's launches.
    Cgroups,
}

/// The sweeper that removes `leftovers`, or why this build cannot.
pub fn sweeper_for(leftovers: &Leftovers) -> Result<Arc<dyn Sweeper>, String> {
    match leftovers {
        Leftovers::Containers { engine, address } => Ok(docker::sweeper(*engine, address)),
        #[cfg(feature = "libvirt")]
        Leftovers::Domains { uri } => Ok(libvirt::sweeper(uri)),
        #[cfg(not(feature = "libvirt"))]
        Leftovers::Domains { uri } => Err(format!(
            "libvirt domains at {uri}: this vmbench was built without the `libvirt` feature; \
             `vmbench clean` in a build with it destroys them"
        )),
        Leftovers::Cgroups => Ok(Arc::new(CgroupSweeper)),
        Leftovers::TapDevices => Ok(Arc::new(qemu::TapSweeper)),
    }
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// Checks everything a launch needs and builds the artifacts, before the
    /// first trial of the run. An error here stops the run with status 2,
    /// and its message says how to fix it.
    async fn prepare(&mut self) -> Result<TargetFacts>;

    /// Why this target cannot run `workload` at all, known before trying
    /// (gVisor without a network, say); `None` when it can.
    fn not_applicable(&self, _workload: &Workload) -> Option<String> {
        None
    }

    /// How the host tells this target is ready when no agent runs in it
    /// (`init = "image"`); `None`: the agent's ready line.
    fn ready_probe(&self) -> Option<crate::scenario::ReadyProbe> {
        None
    }

    /// The host directory where the driver puts this target's scratch files.
    fn scratch_dir(&self) -> PathBuf;

    /// Sets up one launch (nothing is started yet).
    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String>;

    /// What to sweep after an interruption; known before `prepare`.
    fn sweeper(&self) -> Option<Arc<dyn Sweeper>> {
        None
    }
}

/// A launch's own temporary directory, named after its run, so the run's
/// sweep finds what a killed launch left ([`remove_run_temp_dirs`]).
pub fn run_temp_dir(run_id: &str, launch: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vmbench-run-{run_id}-{launch}"))
}

/// Removes the temporary directories of `run_id`'s launches.
pub fn remove_run_temp_dirs(run_id: &str) {
    let prefix = format!("vmbench-run-{run_id}-");
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in dir.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Why an application workload (`http`, `sql`) cannot run on a target
/// without a guest system: vmbench's minimal guests hold the agent alone, no
/// nginx or MariaDB. `None` for every other workload, or with a guest.
pub fn needs_a_guest_system(workload: &Workload, guest: Option<&crate::scenario::Guest>) -> Option<String> {
    if let Some(guest) = guest.filter(|g| g.ready.is_some()) {
        if workload.kind != crate::scenario::WorkloadKind::Boot {
            let why = match guest.init {
                crate::scenario::GuestInit::Image => "runs its own system with no agent (init = \"image\", or a disk of your own)",
                _ => "is ready by its `ready` probe, and its agent is told nothing",
            };
            return Some(format!("guest `{}` {why}: only the boot workload applies", guest.name));
        }
    }
    let server = match workload.kind {
        crate::scenario::WorkloadKind::Http => "nginx",
        crate::scenario::WorkloadKind::Sql => "MariaDB",
        _ => return None,
    };
    guest.is_none().then(|| {
        format!(
            "vmbench's minimal guest holds the agent alone, no {server}: give the target a [[guest]] whose packages \
             include it (scenarios/nginx.toml, scenarios/mysql.toml)"
        )
    })
}

/// The backend for `target`.
pub fn for_target(target: &Target, ctx: Arc<RunContext>) -> Box<dyn Backend> {
    match &target.spec {
        #[cfg(feature = "libvirt")]
        TargetSpec::Vm(spec) if spec.backend == crate::scenario::VmBackend::Libvirt => {
            Box::new(libvirt::LibvirtBackend::new(&target.name, spec.clone(), ctx))
        }
        #[cfg(not(feature = "libvirt"))]
        TargetSpec::Vm(spec) if spec.backend == crate::scenario::VmBackend::Libvirt => Box::new(Unavailable(
            "this vmbench was built without the `libvirt` feature; rebuild with `--features libvirt`".into(),
        )),
        TargetSpec::Vm(spec) => Box::new(qemu::QemuBackend::new(&target.name, spec.clone(), ctx)),
        TargetSpec::Container(spec) => Box::new(docker::DockerBackend::new(&target.name, spec.clone(), ctx)),
        TargetSpec::Native(spec) => Box::new(native::NativeBackend::new(&target.name, spec.clone(), ctx)),
    }
}

/// A target that cannot run here, for the reason it holds: an optional
/// target whose preflight failed (every workload is then not applicable),
/// or a backend this build lacks (`prepare` says so; validation normally
/// catches that first).
pub struct Unavailable(pub String);

#[async_trait]
impl Backend for Unavailable {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        anyhow::bail!("{}", self.0)
    }
    fn not_applicable(&self, _workload: &Workload) -> Option<String> {
        Some(self.0.clone())
    }
    fn scratch_dir(&self) -> PathBuf {
        PathBuf::new()
    }
    fn launch(&self, _spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        Err(self.0.clone())
    }
}

/// A byte stream over an async reader (a child's stdout).
pub fn reader_stream<R: AsyncRead + Unpin + Send + 'static>(reader: R) -> BoxStream<'static, std::io::Result<Bytes>> {
    Box::pin(futures_util::stream::unfold(reader, |mut reader| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    }))
}

/// Milliseconds between two instants (0 if `to` is earlier).
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// `cgroup_join_ms`, when the launch joined a cgroup vmbench made.
pub fn join_phase(joined: Duration) -> BTreeMap<String, f64> {
    let mut phases = BTreeMap::new();
    if !joined.is_zero() {
        phases.insert("cgroup_join_ms".to_string(), joined.as_secs_f64() * 1000.0);
    }
    phases
}

/// A spawned process's phases: `spawn_ms` (fork to exec, less the cgroup
/// join, which is vmbench's own work) and `cgroup_join_ms`.
pub fn spawn_phases(spawning: Instant, spawned: Instant, joined: Duration) -> BTreeMap<String, f64> {
    let mut phases = join_phase(joined);
    let spawn = spawned.saturating_duration_since(spawning).saturating_sub(joined);
    phases.insert("spawn_ms".to_string(), spawn.as_secs_f64() * 1000.0);
    phases
}

/// The loopback address of a port the agent opened on the host's own
/// network stack (native, a container with host networking).
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A cgroup of its own for one launch of a target vmbench starts itself, so
/// its memory and CPU are accounted as a container's are (`None` under
/// process accounting). The run checked that it may make them; one it cannot
/// make fails the launch rather than mix two accountings in one target.
pub fn launch_cgroup(ctx: &RunContext, target: &str, nonce: &str) -> Result<Option<cgroup::LaunchCgroup>, String> {
    if ctx.accounting != Accounting::Cgroup {
        return Ok(None);
    }
    let hierarchies = cgroup::Hierarchies::of_host().ok_or("the host's cgroup hierarchy went away")?;
    cgroup::LaunchCgroup::create(&hierarchies, &ctx.run_id, &format!("{target}-{nonce}"))
        .map(Some)
        .map_err(|e| format!("cannot make the launch's cgroup (accounting = \"cgroup\"): {e}"))
}

/// Removes the cgroups vmbench made for a run's launches.
pub struct CgroupSweeper;

#[async_trait]
impl Sweeper for CgroupSweeper {
    fn key(&self) -> String {
        "vmbench cgroups".into()
    }
    fn leftovers(&self) -> Option<Leftovers> {
        Some(Leftovers::Cgroups)
    }
    async fn sweep(&self, run_id: &str, interrupted: bool) -> Result<()> {
        if interrupted {
            // A cgroup is removed only once its processes are reaped; a QEMU
            // killed as the run task was dropped may still be on its way out.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        if let Some(h) = cgroup::Hierarchies::of_host() {
            // Kills and waits for what is left in them: off the runtime's thread.
            let run_id = run_id.to_string();
            let _ = tokio::task::spawn_blocking(move || cgroup::remove_run(&h, &run_id)).await;
        }
        remove_run_temp_dirs(run_id);
        Ok(())
    }
}

/// Kills and reaps a child that may still run, then removes its launch
/// cgroup (which must be empty by then).
pub async fn end_child(child: Option<tokio::process::Child>, cgroup: Option<&cgroup::LaunchCgroup>) {
    if let Some(mut child) = child {
        // Gone already, or killed now; either way reaped.
        let _ = child.kill().await;
    }
    if let Some(cgroup) = cgroup {
        cgroup.remove();
    }
}

/// Runs the child on `cpuset` (if any): set between fork and exec, so the
/// process and every thread it starts are placed before they run.
pub fn pin_child(command: &mut tokio::process::Command, cpuset: Option<CpuSet>) {
    let Some(cpuset) = cpuset else { return };
    // SAFETY: sched_setaffinity is async-signal-safe; the set was built
    // before the fork and is only read.
    unsafe {
        command.pre_exec(move || cpuset.apply_to_current_thread());
    }
}

/// Should vmbench die without cleaning up (`kill -9`), the child is killed
/// too (`PR_SET_PDEATHSIG`, set between fork and exec). If vmbench died
/// before that, the child does not start at all.
pub fn die_with_vmbench(command: &mut tokio::process::Command) {
    // SAFETY: the hook only calls async-signal-safe functions.
    unsafe {
        command.pre_exec(crate::agent::dies_with_this_process());
    }
}

/// Stderr of a child, read in the background, at most 64 KiB.
pub fn collect_stderr(mut stderr: tokio::process::ChildStderr) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// What a stderr task collected, waiting at most a second.
pub async fn stderr_text(task: Option<tokio::task::JoinHandle<String>>) -> String {
    match task {
        Some(task) => match tokio::time::timeout(Duration::from_secs(1), task).await {
            Ok(Ok(text)) => text,
            _ => String::new(),
        },
        None => String::new(),
    }
}
