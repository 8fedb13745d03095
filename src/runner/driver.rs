//! One trial, written once for every backend: the agent's instructions, the
//! scratch file, the launch, the console up to the ready line, footprint
//! sampling from there, the host side of the network workload, the end of
//! the target, and the metrics and failure text of the sample. Backends only
//! start, reach, wait for and remove their targets (`backend::Launch`).

use super::network::NetworkClient;
use crate::backend::footprint::{Mark, Sampler, Series};
use crate::backend::{ms_between, Backend, ExitStyle, Footprint, Launch, LaunchSpec, Pending, Started};
use crate::console::Console;
use crate::protocol::{AgentMessage, Instructions};
use crate::scenario::{ReadyProbe, Workload, WorkloadKind};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one trial produced. `error` set means the trial failed; metrics
/// measured before the failure are still reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialResult {
    pub metrics: BTreeMap<String, f64>,
    pub error: Option<String>,
    pub agent_kernel: Option<String>,
    /// The clock source the agent's kernel used (`tsc`, `kvm-clock`, `jiffies`).
    pub clocksource: Option<String>,
    /// What the agent saw of its machine (measured clock resolution, CPU
    /// model and caches, huge pages, mitigations).
    pub agent_facts: Option<crate::protocol::AgentFacts>,
    /// The server an application workload ran, as the agent started it.
    pub server: Option<crate::protocol::ServerFacts>,
    /// The target cannot run this workload at all (not a failure): why.
    pub not_applicable: Option<String>,
    /// Host-driven phases whose host CPU per unit of work is reported.
    pub unit_windows: Vec<super::network::UnitWindow>,
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

    /// Adds how the target ended (an exit status, a signal, the OOM killer)
    /// to a failure already recorded.
    pub fn how_it_ended(&mut self, problem: &str) {
        if let Some(error) = &mut self.error {
            error.push_str(&format!("\nhow it ended: {problem}"));
        }
    }
}

/// What the host does against a target once its agent listens: the network
/// workload's round trips and stream, or an application workload's load.
pub enum HostWork {
    Network(NetworkClient),
    App(super::apps::AppClient),
}

impl HostWork {
    /// The host's part of `workload`, if it has one.
    pub fn for_workload(workload: &Workload) -> Option<Self> {
        NetworkClient::for_workload(workload)
            .map(HostWork::Network)
            .or_else(|| super::apps::AppClient::for_workload(workload).map(HostWork::App))
    }

    fn name(&self) -> &'static str {
        match self {
            HostWork::Network(_) => "network",
            HostWork::App(super::apps::AppClient::Http { .. }) => "http",
            HostWork::App(super::apps::AppClient::Sql { .. }) => "sql",
        }
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

/// Runs one trial of `workload` on `backend`, within `timeout` from launch
/// to teardown. Never panics on a target's failure: that is a result with
/// `error` set. Leaves nothing running and no scratch file when it returns.
pub async fn run_trial(backend: &dyn Backend, workload: &Workload, timeout: Duration) -> TrialResult {
    let nonce = crate::console::new_nonce();
    let scratch = match scratch_file(backend.scratch_dir().as_path(), &nonce, workload) {
        Ok(scratch) => scratch,
        Err(e) => return TrialResult::failed(format!("creating the scratch file: {e}")),
    };
    let mut instructions = Instructions::new(&nonce, workload.kind.as_str());
    instructions.params = workload.params.clone();
    let spec = LaunchSpec {
        instructions,
        workload: workload.clone(),
        scratch: scratch.clone(),
    };
    let probe = backend.ready_probe();
    let mut result = match backend.launch(spec) {
        Ok(mut launch) => match &probe {
            Some(probe) => drive_probed(launch.as_mut(), &nonce, probe, timeout).await,
            None => drive(launch.as_mut(), &nonce, workload, timeout).await,
        },
        Err(e) => TrialResult::failed(e),
    };
    reject_impossible(&mut result);
    if let Some(path) = scratch {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// A guest is not trusted: a metric that no measurement can have (negative,
/// not finite, beyond [`crate::metric::MAX_VALUE`]) comes from a broken or
/// hostile agent (its results, or the times and sizes in its ready line). It
/// is dropped, never reported, and the sample fails saying which it was.
fn reject_impossible(result: &mut TrialResult) {
    let bad: Vec<(String, f64)> = result
        .metrics
        .iter()
        .filter(|(_, v)| !crate::metric::possible(**v))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (name, _) in &bad {
        result.metrics.remove(name);
    }
    if let Some((name, value)) = bad.first() {
        result.fail(format!(
            "the agent reported an impossible {name} = {value:e} (a metric is finite, at least 0 and at most {:e})",
            crate::metric::MAX_VALUE
        ));
    }
}

/// The disk workload's scratch file of `file_mib` MiB in `dir`, `None` for
/// other workloads.
fn scratch_file(dir: &Path, nonce: &str, workload: &Workload) -> std::io::Result<Option<PathBuf>> {
    let Some(mib) = workload.param("file_mib").filter(|_| workload.kind == WorkloadKind::Disk) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{nonce}.img"));
    std::fs::File::create(&path)?.set_len(mib * 1024 * 1024)?;
    Ok(Some(path))
}

/// Start → ready → done → gone → removed, each on vmbench's clock.
async fn drive(launch: &mut dyn Launch, nonce: &str, workload: &Workload, timeout: Duration) -> TrialResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut result = TrialResult::default();
    let mut launched = Instant::now();
    let end = match tokio::time::timeout_at(deadline, launch.start()).await {
        Ok(Ok(started)) => {
            launched += started.uncounted;
            observe(launch, started, nonce, workload, deadline, launched, &mut result).await
        }
        Ok(Err(e)) => {
            result.fail(e);
            None
        }
        Err(_) => {
            result.fail("timed out starting the target");
            None
        }
    };
    if let Some((end, done_at)) = end.filter(|(end, _)| *end != ConsoleEnd::TimedOut) {
        record_gone(launch, deadline, launched, end, done_at, &mut result).await;
    }
    record_removal(launch, launched, &mut result).await;
    result
}

/// A target with no agent (`init = "image"`): start → ready by `probe` →
/// removed by vmbench, each on vmbench's clock. Its own command keeps
/// running, so the trial ends by removing it (`remove_ms`, `exit_ms`).
async fn drive_probed(launch: &mut dyn Launch, nonce: &str, probe: &ReadyProbe, timeout: Duration) -> TrialResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut result = TrialResult::default();
    let mut launched = Instant::now();
    match tokio::time::timeout_at(deadline, launch.start()).await {
        Ok(Ok(started)) => {
            launched += started.uncounted;
            observe_probed(launch, started, nonce, probe, deadline, launched, &mut result).await
        }
        Ok(Err(e)) => result.fail(e),
        Err(_) => result.fail("timed out starting the target"),
    }
    record_removal(launch, launched, &mut result).await;
    result
}

/// Runs `probe` while the console is read (for its last lines, and for a
/// console probe's pattern), then records `ready_ms`, the phases up to it
/// and one footprint sample right after it.
async fn observe_probed(
    launch: &mut dyn Launch,
    started: Started,
    nonce: &str,
    probe: &ReadyProbe,
    deadline: tokio::time::Instant,
    launched: Instant,
    result: &mut TrialResult,
) {
    let Started {
        console, phases, pending, ..
    } = started;
    result.metrics.extend(phases);
    let pattern = match probe {
        ReadyProbe::Console(pattern) => regex_lite::Regex::new(pattern).ok(),
        ReadyProbe::Tcp(_) | ReadyProbe::Http { .. } => None,
    };
    let mut reading = Console::new(nonce).watching(pattern);
    let mut source = console;
    let outcome = match probe {
        ReadyProbe::Console(_) => {
            let read = read_until(&mut reading, &mut source, deadline, None, |c| c.report.matched_at.is_some());
            with_pending(read, pending)
                .await
                .map(|(end, pending)| (end, pending, reading.report.matched_at))
        }
        ReadyProbe::Tcp(_) | ReadyProbe::Http { .. } => {
            let connected = connect_ready(&*launch, pending, probe, deadline);
            // The console is read meanwhile, for the failure message.
            let read = read_until(&mut reading, &mut source, deadline, None, |_| false);
            tokio::select! {
                // A probe that gave up at the deadline timed out; the
                // target did not end.
                outcome = connected => outcome.map(|(pending, at)| {
                    let end = if at.is_some() { ConsoleEnd::Done } else { ConsoleEnd::TimedOut };
                    (end, pending, at)
                }),
                end = read => Ok((end, None, None)),
            }
        }
    };
    let (end, pending, ready_at) = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return result.fail(with_console_tail(&e, &reading)),
    };
    if let Some(Pending { phases, ready_since }) = pending {
        result.metrics.extend(phases);
        if let (Some((name, since)), Some(ready_at)) = (ready_since, ready_at) {
            result.metrics.insert(name.to_string(), ms_between(since, ready_at));
        }
    }
    let Some(ready_at) = ready_at else {
        let why = match end {
            ConsoleEnd::TimedOut => "timed out before the ready probe succeeded",
            _ => "the target ended before the ready probe succeeded",
        };
        result.fail(with_console_tail(&format!("{why} ({})", probe.describe()), &reading));
        if end != ConsoleEnd::TimedOut {
            let gone = launch.wait_gone(deadline, false).await;
            if let Some(problem) = gone.problem {
                result.how_it_ended(&problem);
            }
        }
        return;
    };
    result.metrics.insert("ready_ms".into(), ms_between(launched, ready_at));
    if let Footprint::Sampled(find) = launch.footprint() {
        Sampler::start(find).stop().await.record(Some(ready_at), &mut result.metrics);
    }
}

/// Connects to the probe's port on the target until a connection succeeds
/// (and, for an HTTP probe, a `GET` on it answers with the expected status),
/// from vmbench's own CPU (no busy loop on the target's), once the start
/// call in flight has completed. Returns that call's phases and when the
/// probe succeeded.
///
/// An attempt that is refused is tried again after [`PROBE_INTERVAL`]. One
/// that hangs (a forwarder that accepted the connection for a guest that
/// has no address yet, as a VM's user-mode network does) does not hold the
/// probe up: another starts every [`PROBE_STAGGER`] beside it, up to
/// [`PROBE_IN_FLIGHT`] at once, each given up after [`PROBE_ATTEMPT`].
async fn connect_ready(
    launch: &dyn Launch,
    pending: Option<futures_util::future::BoxFuture<'static, Result<Pending, String>>>,
    probe: &ReadyProbe,
    deadline: tokio::time::Instant,
) -> Result<(Option<Pending>, Option<Instant>), String> {
    let pending = match pending {
        Some(p) => Some(p.await?),
        None => None,
    };
    let port = probe.port().ok_or("a console probe has no port")?;
    let addr = launch.address(port).await?;
    Ok((pending, probe_until(addr, probe, deadline).await))
}

/// When `probe` at `addr` first succeeded, or `None` at `deadline`.
async fn probe_until(addr: std::net::SocketAddr, probe: &ReadyProbe, deadline: tokio::time::Instant) -> Option<Instant> {
    let mut attempts = futures_util::stream::FuturesUnordered::new();
    let mut next = tokio::time::Instant::now();
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= next && attempts.len() < PROBE_IN_FLIGHT {
            attempts.push(probe_once(addr, probe));
            next = now + PROBE_STAGGER;
        }
        // At the limit, only a finished attempt (or the deadline) makes
        // room: no waking on a start time that has passed.
        let wake = if attempts.len() < PROBE_IN_FLIGHT {
            next.min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            Some(up) = attempts.next(), if !attempts.is_empty() => {
                if up {
                    return Some(Instant::now());
                }
                // Refused or answered otherwise: the next try soon.
                next = next.min(tokio::time::Instant::now() + PROBE_INTERVAL);
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// How finely a ready probe's success is timed, as `run.json` records it
/// (`settings.ready_probe_resolution`).
pub fn probe_resolution(probe: &ReadyProbe) -> String {
    match probe {
        ReadyProbe::Console(_) => "stamped when the matching bytes are read from the console (a prompt counts without its line end)".into(),
        ReadyProbe::Tcp(_) | ReadyProbe::Http { .. } => format!(
            "from vmbench's CPU: again {} ms after a refusal; while attempts hang, another every {} ms (at most {} \
             at once, each given up after {} ms)",
            PROBE_INTERVAL.as_millis(),
            PROBE_STAGGER.as_millis(),
            PROBE_IN_FLIGHT,
            PROBE_ATTEMPT.as_millis()
        ),
    }
}

/// One probe attempt: connected (and, for HTTP, answered with the expected
/// status) within [`PROBE_ATTEMPT`].
async fn probe_once(addr: std::net::SocketAddr, probe: &ReadyProbe) -> bool {
    let attempt = async {
        let conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        match probe {
            ReadyProbe::Http { path, status, .. } => http_status(conn, &addr, path).await.ok().map(|code| code == *status),
            _ => Some(true),
        }
    };
    matches!(tokio::time::timeout(PROBE_ATTEMPT, attempt).await, Ok(Some(true)))
}

/// Sends `GET path` over `conn` and returns the status code of the answer.
pub async fn http_status(mut conn: tokio::net::TcpStream, addr: &std::net::SocketAddr, path: &str) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: vmbench\r\n\r\n");
    conn.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = conn.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|code| code.parse().ok())) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or_default())),
    }
}

/// How often a TCP ready probe tries again after a refusal: fine enough for
/// container start-ups of tens of milliseconds, coarse enough to cost
/// nothing.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(2);

/// While attempts hang, how often another starts beside them: the probe's
/// resolution behind a forwarder that accepts before the guest does.
pub const PROBE_STAGGER: Duration = Duration::from_millis(20);

/// How long one attempt (connect, and the HTTP answer) may take.
pub const PROBE_ATTEMPT: Duration = Duration::from_secs(1);

/// Attempts in flight at most (1 s / 20 ms: a new one every 20 ms while the
/// older ones hang).
pub const PROBE_IN_FLIGHT: usize = 50;

/// What the console showed of a started target, into `result`. `None` when
/// the start call in flight failed (nothing the agent said counts then).
async fn observe(
    launch: &mut dyn Launch,
    started: Started,
    nonce: &str,
    workload: &Workload,
    deadline: tokio::time::Instant,
    launched: Instant,
    result: &mut TrialResult,
) -> Option<(ConsoleEnd, Option<Instant>)> {
    let Started {
        console, phases, pending, ..
    } = started;
    result.metrics.extend(phases);
    let mut reading = Console::new(nonce);
    let footprint = launch.footprint();
    let agent_reported = matches!(footprint, Footprint::AgentReported);
    let mut sampler = None;
    // Footprint sampling starts at the ready line, so nothing but reading the
    // console happens between the launch and the ready line; the kernel's
    // own peaks (VmHWM, the cgroup's maximum) cover the boot before it.
    let on_ready = || {
        let Footprint::Sampled(find) = footprint else {
            return None;
        };
        let started = Sampler::start(find);
        let mark = started.mark();
        sampler = Some(started);
        Some(mark)
    };
    let host_work = HostWork::for_workload(workload).map(|work| (work, &*launch));
    let mut host_side = TrialResult::default();
    let read = read_console(&mut reading, console, deadline, host_work, &mut host_side, on_ready);
    let outcome = with_pending(read, pending).await;
    let series = match sampler {
        Some(s) => s.stop().await,
        None => Series::default(),
    };
    let (end, pending) = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            result.fail(e);
            return None;
        }
    };
    if let Some(Pending { phases, ready_since }) = pending {
        result.metrics.extend(phases);
        if let (Some((name, since)), Some(ready_at)) = (ready_since, reading.report.ready_at) {
            result.metrics.insert(name.to_string(), ms_between(since, ready_at));
        }
    }
    result.metrics.extend(std::mem::take(&mut host_side.metrics));
    if let Some(e) = host_side.error.take() {
        result.fail(e);
    }
    collect_agent_report(&reading, launched, end, result);
    record_footprint(&reading, &series, agent_reported, &mut result.metrics);
    let mut windows = std::mem::take(&mut host_side.unit_windows);
    windows.extend(agent_regions(&reading.report));
    record_cpu_per_unit(&series, &windows, &mut result.metrics);
    if launch.boots_a_kernel() {
        boot_phases(&reading, launched, &mut result.metrics);
    }
    Some((end, reading.report.done_at))
}

/// Reads the console while a start call in flight completes; its failure
/// ends the reading.
async fn with_pending(
    read: impl std::future::Future<Output = ConsoleEnd>,
    pending: Option<futures_util::future::BoxFuture<'static, Result<Pending, String>>>,
) -> Result<(ConsoleEnd, Option<Pending>), String> {
    let Some(mut pending) = pending else {
        return Ok((read.await, None));
    };
    tokio::pin!(read);
    let mut end = None;
    let done = loop {
        tokio::select! {
            done = &mut pending => break done?,
            finished = &mut read, if end.is_none() => end = Some(finished),
        }
    };
    let end = match end {
        Some(end) => end,
        None => read.await,
    };
    Ok((end, Some(done)))
}

/// The agent's closed regions as windows of `host_cpu_per_<unit>_us`.
fn agent_regions(report: &crate::console::AgentReport) -> Vec<super::network::UnitWindow> {
    report
        .closed_regions()
        .into_iter()
        .map(|(unit, from, to, units)| super::network::UnitWindow {
            metric: format!("host_cpu_per_{unit}_us"),
            from,
            to,
            units,
        })
        .collect()
}

/// The target's host CPU per unit of work in each window (a host-driven
/// phase, an agent's region): µs per request, per MB, per I/O, from the
/// sampled CPU time at the window's ends. Only where the target's CPU is
/// sampled (VMs, containers, native targets under `accounting = "cgroup"`),
/// and only for windows the samples bracket and that have a length: a
/// region whose begin and end lines came in one console chunk was not
/// resolved, and gets no figure rather than 0.
fn record_cpu_per_unit(series: &Series, windows: &[super::network::UnitWindow], metrics: &mut BTreeMap<String, f64>) {
    for w in windows.iter().filter(|w| w.units > 0.0 && w.to > w.from) {
        if let Some(ns) = series.cpu_between(w.from, w.to) {
            metrics.insert(w.metric.clone(), ns / 1e3 / w.units);
        }
    }
}

/// Host memory: sampled from the ready line on, or the agent's own.
fn record_footprint(console: &Console, series: &Series, agent_reported: bool, metrics: &mut BTreeMap<String, f64>) {
    series.record(console.report.ready_at, metrics);
    if !agent_reported {
        return;
    }
    // A native target costs the host exactly the agent's own memory.
    if let Some(AgentMessage::Ready { rss_bytes, .. }) = &console.report.ready {
        metrics.insert("mem_ready_bytes".into(), *rss_bytes as f64);
    }
    if let Some(peak) = metrics.get("agent_peak_rss_bytes").copied() {
        metrics.insert("mem_peak_bytes".into(), peak);
    }
    if let Some(cpu) = metrics.get("agent_cpu_ms").copied() {
        metrics.insert("host_cpu_ms".into(), cpu);
    }
}

/// Waits for the target to end and records when, as its backend reports it.
async fn record_gone(
    launch: &mut dyn Launch,
    deadline: tokio::time::Instant,
    launched: Instant,
    end: ConsoleEnd,
    done_at: Option<Instant>,
    result: &mut TrialResult,
) {
    let gone = launch.wait_gone(deadline, end == ConsoleEnd::Done).await;
    if let Some(at) = gone.at {
        match launch.exit_style() {
            ExitStyle::Stops { teardown } => {
                result.metrics.insert("exit_ms".into(), ms_between(launched, at));
                if let Some(done) = done_at.filter(|_| teardown) {
                    result.metrics.insert("teardown_ms".into(), ms_between(done, at));
                }
            }
            ExitStyle::Removed => {
                result.metrics.insert("stopped_ms".into(), ms_between(launched, at));
            }
        }
    }
    match (gone.problem, &mut result.error) {
        (Some(problem), None) => result.fail(problem),
        // A target that ended on its own before its agent was done: how it
        // ended (an exit status, a signal, the OOM killer) is the reason.
        (Some(problem), Some(_)) if end == ConsoleEnd::Closed => result.how_it_ended(&problem),
        _ => {}
    }
}

/// Removes what is left of the launch; for targets that are removed by a
/// timed call, that call is the last phase.
async fn record_removal(launch: &mut dyn Launch, launched: Instant, result: &mut TrialResult) {
    let removing = Instant::now();
    let removed = launch.remove().await;
    let style = launch.exit_style();
    match removed {
        Ok(()) if style == ExitStyle::Removed => {
            let now = Instant::now();
            result.metrics.insert("remove_ms".into(), ms_between(removing, now));
            result.metrics.insert("exit_ms".into(), ms_between(launched, now));
        }
        Ok(()) => {}
        Err(e) => result.fail(e),
    }
    if style == ExitStyle::Removed && result.error.is_some() {
        // A failed trial's partial timings would mix with good ones.
        result.metrics.remove("exit_ms");
    }
}

/// Feeds `source` into `console` until the agent is done, the source closes
/// or `deadline` passes. Each chunk is stamped the moment it is read.
///
/// `on_ready` runs once, right after the ready line has been stamped: work
/// that watches a target (footprint sampling) starts there, and may hand
/// back a [`Mark`] with which the network client has the target's CPU time
/// read at the ends of its phases. When the agent
/// then announces a listening port and `host_work` is given, the host side
/// of the workload runs against the addresses the launch gives for the
/// agent's port and the server's (its metrics or error go to `host_side`)
/// and reading resumes.
pub async fn read_console(
    console: &mut Console,
    mut source: BoxStream<'static, std::io::Result<Bytes>>,
    deadline: tokio::time::Instant,
    host_work: Option<(HostWork, &dyn Launch)>,
    host_side: &mut TrialResult,
    on_ready: impl FnOnce() -> Option<Mark>,
) -> ConsoleEnd {
    let end = read_until(console, &mut source, deadline, None, |c| c.is_done() || c.report.ready.is_some()).await;
    if console.report.ready.is_none() {
        return end;
    }
    let mark = on_ready();
    let end = read_until(console, &mut source, deadline, mark.as_ref(), |c| {
        c.is_done() || c.report.listening.is_some()
    })
    .await;
    let Some(port) = console.report.listening.filter(|_| end == ConsoleEnd::Done && !console.is_done()) else {
        return end;
    };
    if let Some((work, launch)) = host_work {
        let name = work.name();
        let server_port = console.report.server.as_ref().map(|s| s.port);
        let measured = async {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match work {
                HostWork::Network(client) => {
                    let addr = launch.address(port).await?;
                    client.run_on_own_thread(addr, left, mark.clone()).await
                }
                HostWork::App(client) => {
                    let server_port = server_port.ok_or("the agent announced no server")?;
                    client.run(launch, port, server_port, left).await
                }
            }
        };
        match tokio::time::timeout_at(deadline, measured).await {
            Ok(Ok(measured)) => {
                host_side.metrics.extend(measured.metrics);
                host_side.unit_windows = measured.windows;
            }
            Ok(Err(e)) => host_side.fail(format!("{name} workload: {e}")),
            Err(_) => host_side.fail(format!("{name} workload: timed out")),
        }
    }
    // Keep reading, now only until the agent is done.
    read_until(console, &mut source, deadline, mark.as_ref(), Console::is_done).await
}

/// Feeds the console until `stop` says so; with a `mark`, the target's CPU
/// time is read the moment a chunk brings one of the agent's region lines.
async fn read_until(
    console: &mut Console,
    source: &mut BoxStream<'static, std::io::Result<Bytes>>,
    deadline: tokio::time::Instant,
    mark: Option<&Mark>,
    stop: impl Fn(&Console) -> bool,
) -> ConsoleEnd {
    if stop(console) {
        return ConsoleEnd::Done;
    }
    loop {
        match tokio::time::timeout_at(deadline, source.next()).await {
            Err(_) => return ConsoleEnd::TimedOut,
            Ok(None) | Ok(Some(Err(_))) => {
                console.finish(Instant::now());
                return if console.is_done() { ConsoleEnd::Done } else { ConsoleEnd::Closed };
            }
            Ok(Some(Ok(chunk))) => {
                let edges = console.report.regions.len();
                console.feed(Instant::now(), &chunk);
                if let Some(mark) = mark.filter(|_| console.report.regions.len() > edges) {
                    mark.now();
                }
                if stop(console) {
                    return ConsoleEnd::Done;
                }
            }
        }
    }
}

/// Turns what the console saw into metrics common to every backend:
/// `ready_ms` from `launched`, the agent's own `init_ms`, its result metrics
/// and its kernel, and the failure to record, if any.
pub fn collect_agent_report(console: &Console, launched: Instant, end: ConsoleEnd, result: &mut TrialResult) {
    let report = &console.report;
    if let (
        Some(ready_at),
        Some(AgentMessage::Ready {
            init_ns,
            kernel,
            clocksource,
            ..
        }),
    ) = (report.ready_at, &report.ready)
    {
        result.metrics.insert("ready_ms".into(), ms_between(launched, ready_at));
        result.metrics.insert("init_ms".into(), *init_ns as f64 / 1e6);
        result.agent_kernel = Some(kernel.clone());
        result.clocksource = clocksource.clone();
    }
    result.agent_facts = report.facts.clone();
    result.server = report.server.clone();
    // The guest init's own phases (systemd's kernel, initrd, userspace).
    for (phase, ms) in report.phases.iter().flatten() {
        if ms.is_finite() && *ms >= 0.0 {
            result.metrics.insert(format!("{phase}_ms"), *ms);
        }
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

/// A guest's boot: `first_byte_ms` on the console, and `ready_ms` split into
/// the part before the guest kernel's clock starts (`pre_kernel_ms`: the VMM,
/// firmware, decompression), the guest's time up to the agent (`kernel_ms`:
/// guest `CLOCK_BOOTTIME` when the agent started, or where the guest's init
/// reported its own phases, systemd's `kernel_ms`, `initrd_ms` and
/// `userspace_ms`) and the agent's `init_ms`.
fn boot_phases(console: &Console, launched: Instant, metrics: &mut BTreeMap<String, f64>) {
    if let Some(at) = console.report.first_byte_at {
        metrics.insert("first_byte_ms".into(), ms_between(launched, at));
    }
    if let Some(AgentMessage::Ready { boottime_ns, .. }) = &console.report.ready {
        let kernel_ms = *boottime_ns as f64 / 1e6;
        metrics.entry("kernel_ms".into()).or_insert(kernel_ms);
        if let (Some(ready), Some(init)) = (metrics.get("ready_ms"), metrics.get("init_ms")) {
            metrics.insert("pre_kernel_ms".into(), (ready - kernel_ms - init).max(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarder holds every connection made before the guest is up
    /// without a word (a VM's user-mode network does, for a guest with no
    /// address yet); the probe must not wait out those attempts.
    #[test]
    fn a_probe_is_not_held_up_by_attempts_a_forwarder_holds() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let start = tokio::time::Instant::now();
            let up_at = start + Duration::from_millis(300);
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    if tokio::time::Instant::now() < up_at {
                        held.push(conn);
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut request = [0u8; 512];
                        let _ = conn.read(&mut request).await;
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
                    });
                }
            });
            let probe = ReadyProbe::Http {
                port: addr.port(),
                path: "/".into(),
                status: 200,
            };
            let at = probe_until(addr, &probe, start + Duration::from_secs(10)).await.expect("up");
            let waited = at - start.into_std();
            assert!(waited >= Duration::from_millis(300), "{waited:?}");
            // One attempt at a time would have waited out the first (1 s).
            assert!(waited < Duration::from_millis(800), "held attempts held the probe up: {waited:?}");
        });
    }
}
