//! One trait over every way of running the agent: QEMU VMs, Docker
//! containers and native processes. A backend prepares its target once
//! (artifacts, probes, preflight checks), then runs trials: launch, wait for
//! the agent's ready line, collect, tear down, and report timed phases.

pub mod docker;
pub mod footprint;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod native;
pub mod network;
pub mod qemu;

use crate::console::Console;
use crate::record::TargetFacts;
use crate::scenario::{Target, TargetSpec, Workload};
use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// What one trial asks of a backend.
#[derive(Debug, Clone)]
pub struct TrialRequest {
    /// Chosen by the host per launch; only lines carrying it count.
    pub nonce: String,
    pub workload: Workload,
    /// For the whole trial, launch to teardown.
    pub timeout: Duration,
    /// Set by a backend for disk workloads: where the agent does its I/O.
    pub scratch: Option<String>,
}

/// What one trial produced. `error` set means the trial failed; metrics
/// measured before the failure are still reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialResult {
    pub metrics: BTreeMap<String, f64>,
    pub error: Option<String>,
    pub agent_kernel: Option<String>,
    /// The target cannot run this workload at all (not a failure): why.
    pub not_applicable: Option<String>,
}

/// Scratch space of a run: in vmbench's cache, on a disk-backed file system
/// (unlike a tmpfs `/tmp`, it supports O_DIRECT), the same for every target.
pub fn scratch_root(run_id: &str) -> std::path::PathBuf {
    crate::guest::cache::dir().join("scratch").join(run_id)
}

/// Creates the scratch file of one disk trial with `mib` MiB.
pub fn scratch_file(dir: &std::path::Path, name: &str, mib: u64) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    file.set_len(mib * 1024 * 1024)?;
    Ok(path)
}

/// The size of the scratch file a disk workload needs, `None` for others.
pub fn disk_mib(workload: &Workload) -> Option<u64> {
    (workload.kind == "disk").then(|| workload.param("file_mib")).flatten()
}

/// Shared by the backends of one run.
#[derive(Debug)]
pub struct RunContext {
    pub run_id: String,
    /// Host probes whose verdict holds for the whole run.
    pub kvm: tokio::sync::OnceCell<qemu::accel::Verdict>,
    /// Where disk workloads put their files and images; removed when the
    /// run ends, however it ends.
    pub scratch: std::path::PathBuf,
}

impl RunContext {
    pub fn new(run_id: &str) -> Arc<Self> {
        Arc::new(RunContext {
            run_id: run_id.to_string(),
            kvm: Default::default(),
            scratch: scratch_root(run_id),
        })
    }

    /// A target's own scratch directory, created on first use.
    pub fn scratch_for(&self, target: &str) -> std::io::Result<std::path::PathBuf> {
        let dir = self.scratch.join(target);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

#[async_trait]
pub trait Backend: Send {
    /// Checks everything a launch needs and builds the artifacts, before the
    /// first trial of the run. An error here stops the run with status 2,
    /// and its message says how to fix it.
    async fn prepare(&mut self) -> Result<TargetFacts>;

    /// Runs one trial. Never panics on a target's failure: that is a result
    /// with `error` set. Leaves nothing running when it returns.
    async fn run_trial(&mut self, request: &TrialRequest) -> TrialResult;

    /// Why this target cannot run `workload` at all, known before trying
    /// (gVisor without a network, say); `None` when it can.
    fn not_applicable(&self, _workload: &Workload) -> Option<String> {
        None
    }

    /// Removes anything of this run the backend may have left (after an
    /// interruption, say). Safe to call more than once.
    async fn cleanup(&mut self) -> Result<()>;
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
        TargetSpec::Native => Box::new(native::NativeBackend::new(&target.name, ctx)),
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
    async fn run_trial(&mut self, _request: &TrialRequest) -> TrialResult {
        TrialResult::failed(self.0.clone())
    }
    async fn cleanup(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How reading a console ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleEnd {
    /// The agent said `done`.
    Done,
    /// The source closed first (the target exited or crashed).
    Closed,
    TimedOut,
}

/// Feeds `source` into `console` until the agent is done, the source closes
/// or `deadline` passes. Each chunk is stamped the moment it is read.
///
/// `on_ready` runs once, right after the ready line has been stamped: work
/// that watches a target (footprint sampling) starts there, so nothing but
/// reading the console happens between the launch call and the ready line.
/// When the agent then announces a listening port and a `network` client is
/// given, the host side of the network workload runs (its metrics or error go
/// to `result`) and reading resumes.
pub async fn read_console<S>(
    console: &mut Console,
    mut source: S,
    deadline: Instant,
    mut network: Option<network::NetworkClient>,
    result: &mut TrialResult,
    on_ready: impl FnOnce(),
) -> ConsoleEnd
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let end = read_until(console, &mut source, deadline, |c| c.is_done() || c.report.ready.is_some()).await;
    if console.report.ready.is_none() {
        return end;
    }
    on_ready();
    let end = read_until(console, &mut source, deadline, |c| c.is_done() || c.report.listening.is_some()).await;
    let Some(port) = console.report.listening.filter(|_| end == ConsoleEnd::Done && !console.is_done()) else {
        return end;
    };
    if let Some(client) = network.take() {
        match tokio::time::timeout_at(deadline, client.run(port)).await {
            Ok(Ok(metrics)) => result.metrics.extend(metrics),
            Ok(Err(e)) => result.fail(format!("network workload: {e}")),
            Err(_) => result.fail("network workload: timed out"),
        }
    }
    // Keep reading, now only until the agent is done.
    read_until(console, &mut source, deadline, Console::is_done).await
}

/// A resolver for targets whose agent listens on the host's loopback
/// (native, container with host networking).
pub fn loopback(port: u16) -> futures_util::future::BoxFuture<'static, Result<std::net::SocketAddr, String>> {
    Box::pin(async move { Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port))) })
}

async fn read_until<S>(console: &mut Console, source: &mut S, deadline: Instant, stop: impl Fn(&Console) -> bool) -> ConsoleEnd
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    if stop(console) {
        return ConsoleEnd::Done;
    }
    loop {
        match tokio::time::timeout_at(deadline, source.next()).await {
            Err(_) => return ConsoleEnd::TimedOut,
            Ok(None) | Ok(Some(Err(_))) => {
                console.finish(std::time::Instant::now());
                return if console.is_done() { ConsoleEnd::Done } else { ConsoleEnd::Closed };
            }
            Ok(Some(Ok(chunk))) => {
                console.feed(std::time::Instant::now(), &chunk);
                if stop(console) {
                    return ConsoleEnd::Done;
                }
            }
        }
    }
}

/// A byte stream over an async reader (a child's stdout).
pub fn reader_stream<R: AsyncRead + Unpin + Send + 'static>(reader: R) -> impl Stream<Item = std::io::Result<Bytes>> + Unpin + Send {
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
pub fn ms_between(from: std::time::Instant, to: std::time::Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Turns what the console saw into metrics common to every backend:
/// `ready_ms` from `launched`, the agent's own `init_ms`, its result metrics
/// and its kernel. Returns the error to record, if any.
pub fn collect_agent_report(console: &Console, launched: std::time::Instant, end: ConsoleEnd, result: &mut TrialResult) {
    let report = &console.report;
    if let (Some(ready_at), Some(crate::protocol::AgentMessage::Ready { init_ns, kernel, .. })) = (report.ready_at, &report.ready) {
        result.metrics.insert("ready_ms".into(), ms_between(launched, ready_at));
        result.metrics.insert("init_ms".into(), *init_ns as f64 / 1e6);
        result.agent_kernel = Some(kernel.clone());
    }
    if let Some(metrics) = &report.metrics {
        result.metrics.extend(metrics.iter().map(|(k, v)| (k.clone(), *v)));
    }
    if let Some(reason) = &report.unsupported {
        result.not_applicable = Some(reason.clone());
    }
    let problem = match (end, &report.error, report.ready.is_some()) {
        (_, Some(err), _) => Some(format!("agent error: {err}")),
        (ConsoleEnd::TimedOut, _, false) => Some("timed out before the agent was ready".to_string()),
        (ConsoleEnd::TimedOut, _, true) => Some("timed out before the agent finished".to_string()),
        (ConsoleEnd::Closed, _, false) => Some("the console closed before the agent was ready".to_string()),
        (ConsoleEnd::Closed, _, true) => Some("the console closed before the agent finished".to_string()),
        (ConsoleEnd::Done, None, _) => None,
    };
    if let Some(problem) = problem {
        result.fail(with_console_tail(&problem, console));
    }
}

/// `message` followed by the last console lines, for a failed sample.
pub fn with_console_tail(message: &str, console: &Console) -> String {
    let tail = console.tail();
    if tail.is_empty() {
        format!("{message} (the console printed nothing else)")
    } else {
        format!("{message}; last console lines:\n{}", tail.join("\n"))
    }
}

impl TrialResult {
    /// A trial that failed before it produced anything.
    pub fn failed(message: impl Into<String>) -> Self {
        TrialResult {
            error: Some(message.into()),
            ..Default::default()
        }
    }

    /// Records a failure; the first one wins, later ones are appended.
    pub fn fail(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.error = Some(match self.error.take() {
            None => message,
            Some(first) => format!("{first}\nthen: {message}"),
        });
    }
}
