//! VMs run by spawning `qemu-system-x86_64` directly: direct kernel boot of
//! the cached kernel with vmbench's initramfs, serial console on a pipe.

pub mod accel;
pub mod cmdline;

use super::footprint::{self, Sampler, Series};
use super::{collect_agent_report, ms_between, read_console, reader_stream, Backend, ConsoleEnd, RunContext, TrialRequest, TrialResult};
use crate::console::Console;
use crate::guest::{self, kernel::Kernel};
use crate::protocol::Instructions;
use crate::record::{ArtifactFacts, TargetFacts};
use crate::scenario::{AccelChoice, VmSpec};
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use cmdline::{Accel, QemuCommand, BASE_KERNEL_ARGS};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

pub struct QemuBackend {
    name: String,
    spec: VmSpec,
    ctx: Arc<RunContext>,
    /// The command without per-launch instructions; set by `prepare`.
    template: Option<QemuCommand>,
    /// The initramfs that also carries virtio drivers (disk, network).
    initrd_drivers: Option<PathBuf>,
}

impl QemuBackend {
    pub fn new(name: &str, spec: VmSpec, ctx: Arc<RunContext>) -> Self {
        QemuBackend {
            name: name.to_string(),
            spec,
            ctx,
            template: None,
            initrd_drivers: None,
        }
    }
}

/// The accelerator for a VM target: TCG when asked, else what the run's KVM
/// probe (one real guest under `-accel kvm`, cached) says, with why.
pub async fn choose_accel(
    ctx: &RunContext,
    target: &str,
    spec: &VmSpec,
    qemu: &Path,
    kernel: &Path,
    initrd: &Path,
) -> Result<(Accel, String)> {
    if spec.accel == AccelChoice::Tcg {
        return Ok((Accel::Tcg, "the scenario asks for tcg".to_string()));
    }
    let verdict = ctx.kvm.get_or_init(|| accel::probe(qemu, kernel, initrd)).await;
    match (spec.accel, verdict.kvm_works) {
        (_, true) => Ok((Accel::Kvm, verdict.reason.clone())),
        (AccelChoice::Kvm, false) => bail!(
            "target `{target}` asks for accel = \"kvm\", but KVM does not work on this host: {}. Use accel = \"auto\" or \"tcg\"",
            verdict.reason
        ),
        (_, false) => Ok((Accel::Tcg, format!("auto: {}; using TCG (emulation)", verdict.reason))),
    }
}

/// What preparing a VM target yields, whichever backend launches it.
pub struct PreparedVm {
    /// The command without per-launch instructions.
    pub template: QemuCommand,
    /// The initramfs that also carries virtio drivers (disk, network).
    pub initrd_drivers: PathBuf,
    pub facts: TargetFacts,
}

/// Finds QEMU and the kernel, builds both initramfs variants, chooses the
/// accelerator and describes the result; shared by the qemu and libvirt
/// backends so both boot exactly the same guest.
pub async fn prepare_vm(name: &str, spec: &VmSpec, ctx: &RunContext) -> Result<PreparedVm> {
    let qemu = find_qemu(spec.qemu.as_deref())?;
    let version = qemu_version(&qemu).await?;
    let kernel = guest::kernel::find(&spec.kernel).with_context(|| format!("target `{name}`"))?;
    let agent_sha = guest::agent::sha256();
    let initramfs = guest::initramfs::for_kernel(&kernel.path, false).context("building the initramfs")?;
    let with_drivers = guest::initramfs::for_kernel(&kernel.path, true).context("building the initramfs with drivers")?;
    let (accel, accel_reason) = choose_accel(ctx, name, spec, &qemu, &kernel.path, &initramfs.path).await?;
    let mut append: Vec<String> = BASE_KERNEL_ARGS.iter().map(|s| s.to_string()).collect();
    if accel == Accel::Tcg {
        // See host::tsc_khz: without it TCG microVMs sometimes hang.
        append.extend(crate::host::tsc_khz().map(|khz| format!("tsc_early_khz={khz}")));
    }
    append.extend(spec.kernel_args.iter().cloned());
    let template = QemuCommand {
        binary: qemu.clone(),
        machine: spec.machine,
        accel,
        vcpus: spec.vcpus,
        memory_mib: spec.memory_mib,
        kernel: kernel.path.clone(),
        initrd: initramfs.path.clone(),
        append,
        disk: None,
        forward_port: None,
    };
    let reproduce = with_instructions(&template, &Instructions::new("repro", "boot")).argv();
    let mut facts = facts(name, &template, &kernel, &initramfs, version, accel_reason, reproduce, agent_sha);
    facts.initramfs_drivers = Some(ArtifactFacts {
        path: with_drivers.path.display().to_string(),
        sha256: with_drivers.sha256.clone(),
        bytes: with_drivers.bytes,
        reused: with_drivers.reused,
    });
    Ok(PreparedVm {
        template,
        initrd_drivers: with_drivers.path,
        facts,
    })
}

/// One trial's command line and what it needs around it.
pub struct TrialCommand {
    pub cmd: QemuCommand,
    /// The disk workload's raw image, to remove after the trial.
    pub disk: Option<PathBuf>,
    /// The host side of the network workload.
    pub network: Option<super::network::NetworkClient>,
}

/// The command line of one trial: the template plus the trial's
/// instructions, a raw disk image in `disk_dir` for disk workloads, a
/// forwarded port for network workloads, and the driver-carrying initramfs
/// for both.
pub fn trial_command(
    template: &QemuCommand,
    initrd_drivers: &Path,
    request: &TrialRequest,
    disk_dir: &Path,
) -> Result<TrialCommand, String> {
    let mut instructions = Instructions::new(&request.nonce, request.workload.kind.as_str());
    instructions.params = request.workload.params.clone();
    let disk = match super::disk_mib(&request.workload) {
        None => None,
        Some(mib) => Some(
            std::fs::create_dir_all(disk_dir)
                .and_then(|_| super::scratch_file(disk_dir, &format!("{}.img", request.nonce), mib))
                .map_err(|e| format!("creating the disk image: {e}"))?,
        ),
    };
    let mut forward_port = None;
    if request.workload.kind == "network" {
        forward_port = Some(super::network::free_local_port().map_err(|e| format!("finding a free port to forward: {e}"))?);
        let guest = crate::agent::workloads::network::GUEST_PORT;
        instructions.listen = Some(format!("0.0.0.0:{guest}"));
    }
    if disk.is_some() {
        instructions.scratch = Some("/dev/vda".into());
    }
    let mut cmd = with_instructions(template, &instructions);
    cmd.disk = disk.clone();
    cmd.forward_port = forward_port;
    if disk.is_some() || forward_port.is_some() {
        cmd.initrd = initrd_drivers.to_path_buf();
    }
    // The host connects to the forwarded port, whatever the guest port.
    let network = forward_port.and_then(|host_port| {
        super::network::NetworkClient::for_workload(&request.workload, Box::new(move |_| super::loopback(host_port)))
    });
    Ok(TrialCommand { cmd, disk, network })
}

/// Splits a boot's `ready_ms` into the part before the guest kernel's clock
/// starts (`pre_kernel_ms`: QEMU, firmware, decompression), `kernel_ms`
/// (guest `CLOCK_BOOTTIME` when the agent started) and the agent's `init_ms`.
pub fn boot_phases(console: &Console, metrics: &mut std::collections::BTreeMap<String, f64>) {
    if let Some(crate::protocol::AgentMessage::Ready { boottime_ns, .. }) = &console.report.ready {
        let kernel_ms = *boottime_ns as f64 / 1e6;
        metrics.insert("kernel_ms".into(), kernel_ms);
        if let (Some(ready), Some(init)) = (metrics.get("ready_ms"), metrics.get("init_ms")) {
            metrics.insert("pre_kernel_ms".into(), (ready - kernel_ms - init).max(0.0));
        }
    }
}

/// The command line for one launch of `template` with `instructions`.
pub fn with_instructions(template: &QemuCommand, instructions: &Instructions) -> QemuCommand {
    let mut cmd = template.clone();
    cmd.append.extend(instructions.to_tokens());
    cmd
}

#[async_trait]
impl Backend for QemuBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        let prepared = prepare_vm(&self.name, &self.spec, &self.ctx).await?;
        self.template = Some(prepared.template);
        self.initrd_drivers = Some(prepared.initrd_drivers);
        Ok(prepared.facts)
    }

    async fn run_trial(&mut self, request: &TrialRequest) -> TrialResult {
        let (Some(template), Some(drivers)) = (&self.template, &self.initrd_drivers) else {
            return TrialResult::failed("VM target used before prepare");
        };
        let disk_dir = self.ctx.scratch.join(&self.name);
        let trial = match trial_command(template, drivers, request, &disk_dir) {
            Ok(trial) => trial,
            Err(e) => return TrialResult::failed(e),
        };
        let launch = launch(&trial.cmd, &request.nonce, request.timeout, trial.network).await;
        if let Some(path) = trial.disk {
            let _ = std::fs::remove_file(path);
        }
        launch.into_result()
    }

    async fn cleanup(&mut self) -> Result<()> {
        // QEMU children are killed when their handle drops and, should
        // vmbench itself die, by PR_SET_PDEATHSIG.
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn facts(
    name: &str,
    cmd: &QemuCommand,
    kernel: &Kernel,
    initramfs: &guest::initramfs::Initramfs,
    qemu_version: String,
    accel_reason: String,
    reproduce: Vec<String>,
    agent_sha256: String,
) -> TargetFacts {
    TargetFacts {
        name: name.to_string(),
        kind: "vm".into(),
        backend: "qemu".into(),
        accel: Some(cmd.accel.as_str().into()),
        accel_reason: Some(accel_reason),
        machine: Some(cmd.machine.as_str().into()),
        cpu_model: Some(cmd.accel.cpu_model().into()),
        vcpus: Some(cmd.vcpus),
        memory_mib: Some(cmd.memory_mib),
        qemu_path: Some(cmd.binary.display().to_string()),
        qemu_version: Some(qemu_version),
        kernel: Some(kernel.clone()),
        kernel_cmdline: Some(cmd.append.join(" ")),
        initramfs: Some(ArtifactFacts {
            path: initramfs.path.display().to_string(),
            sha256: initramfs.sha256.clone(),
            bytes: initramfs.bytes,
            reused: initramfs.reused,
        }),
        agent_sha256,
        artifact_bytes: kernel.bytes + initramfs.bytes,
        reproduce,
        settings: [
            (
                "disk_workload".to_string(),
                format!("virtio-blk, raw image, cache={} (O_DIRECT on the host)", cmdline::DISK_CACHE),
            ),
            (
                "network_workload".to_string(),
                "virtio-net on QEMU's user network (slirp), a forwarded 127.0.0.1 port".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// The QEMU binary: the scenario's, or `qemu-system-x86_64` on PATH.
pub fn find_qemu(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = configured {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("QEMU binary {} does not exist", path.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(DEFAULT_BINARY))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{DEFAULT_BINARY} is not on PATH; install it with `apt-get install qemu-system-x86` (scripts/setup.sh does)")
        })
}

/// First line of `qemu --version`.
pub async fn qemu_version(qemu: &Path) -> Result<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {} --version", qemu.display()))?;
    if !out.status.success() {
        bail!(
            "{} --version failed: {}",
            qemu.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// Everything one QEMU launch produced.
#[derive(Debug)]
pub struct Launch {
    pub console: Console,
    pub launched: Instant,
    pub first_byte_at: Option<Instant>,
    pub end: ConsoleEnd,
    pub exited_at: Option<Instant>,
    pub status: Option<ExitStatus>,
    pub spawn_error: Option<String>,
    pub stderr: String,
    /// The QEMU process's memory while it ran.
    pub footprint: Series,
    /// What the host measured itself (the network workload).
    pub host_side: TrialResult,
}

impl Launch {
    /// Metrics and failure of a boot: `ready_ms` split into the part before
    /// the guest kernel's clock starts (QEMU, firmware, decompression),
    /// `kernel_ms` (guest `CLOCK_BOOTTIME` when the agent started) and
    /// `init_ms` (the agent's own start-up).
    pub fn into_result(self) -> TrialResult {
        let mut result = TrialResult::default();
        if let Some(e) = &self.spawn_error {
            result.fail(format!("could not start QEMU: {e}"));
            return result;
        }
        result.metrics.extend(self.host_side.metrics);
        if let Some(e) = self.host_side.error {
            result.fail(e);
        }
        collect_agent_report(&self.console, self.launched, self.end, &mut result);
        self.footprint.record(self.console.report.ready_at, &mut result.metrics);
        if let Some(at) = self.first_byte_at {
            result.metrics.insert("first_byte_ms".into(), ms_between(self.launched, at));
        }
        boot_phases(&self.console, &mut result.metrics);
        match (self.exited_at, self.status) {
            (Some(at), Some(status)) => {
                result.metrics.insert("exit_ms".into(), ms_between(self.launched, at));
                if let Some(done) = self.console.report.done_at {
                    result.metrics.insert("teardown_ms".into(), ms_between(done, at));
                }
                if !status.success() && result.error.is_none() {
                    result.fail(format!("QEMU exited with {status}: {}", self.stderr.trim()));
                }
            }
            _ if result.error.is_none() => result.fail(format!("QEMU did not exit in time and was killed: {}", self.stderr.trim())),
            _ => {}
        }
        result
    }
}

/// Spawns QEMU, reads its console until the agent is done, waits for QEMU to
/// exit, and kills it at the deadline. Nothing outlives this call.
pub async fn launch(cmd: &QemuCommand, nonce: &str, timeout: Duration, network: Option<super::network::NetworkClient>) -> Launch {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut command = Command::new(&cmd.binary);
    command
        .args(cmd.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            // Should vmbench die without cleaning up, QEMU dies with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut console = Console::new(nonce);
    let launched = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Launch {
                console,
                launched,
                first_byte_at: None,
                end: ConsoleEnd::Closed,
                exited_at: None,
                status: None,
                spawn_error: Some(e.to_string()),
                stderr: String::new(),
                footprint: Series::default(),
                host_side: TrialResult::default(),
            }
        }
    };
    crate::fault::point("qemu-after-spawn");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    // Footprint sampling starts at the ready line; VmHWM still gives the
    // peak of the boot before it.
    let pid = child.id();
    let mut sampler = None;
    let mut host_side = TrialResult::default();
    let start_sampling = || sampler = pid.map(|pid| Sampler::start(move || footprint::process(pid)));
    let end = read_console(
        &mut console,
        reader_stream(stdout),
        deadline,
        network,
        &mut host_side,
        start_sampling,
    )
    .await;
    let footprint = match sampler {
        Some(s) => s.stop().await,
        None => Series::default(),
    };
    let (exited_at, status) = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => (Some(Instant::now()), Some(status)),
        _ => {
            let _ = child.kill().await;
            (None, None)
        }
    };
    let stderr = match tokio::time::timeout(Duration::from_secs(1), stderr_task).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    };
    let first_byte_at = console.report.first_byte_at;
    Launch {
        console,
        launched,
        first_byte_at,
        end,
        exited_at,
        status,
        spawn_error: None,
        stderr,
        footprint,
        host_side,
    }
}
