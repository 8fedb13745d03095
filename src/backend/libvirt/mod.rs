//! VMs through libvirt (`backend = "libvirt"`), over libvirt's C API (the
//! `virt` crate), never `virsh`. Each trial starts a transient domain from
//! generated XML that boots exactly the guest the qemu backend boots (same
//! kernel, initramfs, command line, CPU model); its serial console goes to a
//! file that vmbench reads as it grows. Phases: the create call, the time
//! to the ready line, and libvirt's teardown once the agent is done, so the
//! management layer's cost shows next to plain QEMU.
//!
//! libvirt runs QEMU as its own user, which cannot read vmbench's cache
//! under `/root`: kernel and initramfs are staged (once, by content hash)
//! into [`BOOT_DIR`], disk images live under [`IMAGES_DIR`]. Both are paths
//! on this host, so a remote URI needs the same paths on the remote side.
//!
//! libvirt calls block: each runs on tokio's blocking pool.

pub mod xml;

use super::footprint::{self, Sampler};
use super::qemu::{self, cmdline::QemuCommand};
use super::{collect_agent_report, ms_between, read_console, Backend, RunContext, TrialRequest, TrialResult};
use crate::console::Console;
use crate::record::TargetFacts;
use crate::scenario::VmSpec;
use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use virt::connect::Connect;

pub use crate::scenario::DEFAULT_LIBVIRT_URI as DEFAULT_URI;

/// Every domain vmbench starts is named `vmbench-<run id>-<target>-<n>`.
pub const DOMAIN_PREFIX: &str = "vmbench-";
/// Where kernel and initramfs are staged for libvirt's QEMU user.
pub const BOOT_DIR: &str = "/var/lib/libvirt/boot/vmbench";
/// Where disk workloads' images live, one directory per run.
pub const IMAGES_DIR: &str = "/var/lib/libvirt/images/vmbench";
/// How often a trial asks libvirt whether its domain still exists once the
/// agent is done (the resolution of `teardown_ms` and `exit_ms`).
const POLL_DOMAIN: Duration = Duration::from_millis(10);
/// How often it asks while the guest boots and works: only to notice a guest
/// that died without a word, and rarely, so the calls into libvirtd do not
/// compete with the guest being measured.
const POLL_DOMAIN_RUNNING: Duration = Duration::from_millis(250);
/// How often the console file is read for new output when it had none.
const POLL_CONSOLE: Duration = Duration::from_millis(1);

/// libvirt's and the hypervisor's versions, as `major.minor.release`.
#[derive(Debug, Clone)]
pub struct Versions {
    pub library: String,
    pub hypervisor: String,
}

/// Opens `uri`, or says how to get libvirtd answering.
pub fn open(uri: &str) -> Result<Connect> {
    // libvirt prints every error to stderr by default; vmbench reports the
    // ones that matter itself ("domain not found" while polling is normal).
    virt::error::clear_error_callback();
    Connect::open(Some(uri)).map_err(|e| {
        anyhow!(
            "libvirt does not answer at {uri} ({e}); start it with `virtlogd -d && libvirtd -d` or run scripts/setup.sh, \
             or set `uri` on the target"
        )
    })
}

/// The versions libvirt at `uri` reports.
pub fn versions(uri: &str) -> Result<Versions> {
    let conn = open(uri)?;
    versions_of(&conn)
}

fn versions_of(conn: &Connect) -> Result<Versions> {
    let library = conn.lib_version().context("asking libvirt for its version")?;
    let hypervisor = conn.hyp_version().context("asking libvirt for QEMU's version")?;
    Ok(Versions {
        library: dotted(library),
        hypervisor: dotted(hypervisor),
    })
}

/// libvirt's `major * 1_000_000 + minor * 1000 + release` as text.
pub fn dotted(version: u32) -> String {
    format!("{}.{}.{}", version / 1_000_000, (version / 1000) % 1000, version % 1000)
}

/// Destroys every running domain whose name starts with `prefix`; returns
/// their names. Transient domains disappear with it.
fn destroy_prefixed(conn: &Connect, prefix: &str) -> Result<Vec<String>> {
    let domains = conn
        .list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        .context("listing libvirt domains")?;
    let mut destroyed = Vec::new();
    for domain in domains {
        let Ok(name) = domain.name() else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        match domain.destroy() {
            Ok(()) => destroyed.push(name),
            // It ended by itself since the listing: nothing left to do.
            Err(_) if !domain.is_active().unwrap_or(false) => {}
            Err(e) => return Err(anyhow!("destroying domain {name}: {e}")),
        }
    }
    Ok(destroyed)
}

/// Destroys every vmbench domain at `uri` (`vmbench clean`).
pub fn destroy_all_domains(uri: &str) -> Result<Vec<String>> {
    destroy_prefixed(&open(uri)?, DOMAIN_PREFIX)
}

/// Destroys the domains of one run (after Ctrl-C or a crash of the run task).
pub fn destroy_run_domains(uri: &str, run_id: &str) -> Result<Vec<String>> {
    destroy_prefixed(&open(uri)?, &format!("{DOMAIN_PREFIX}{run_id}-"))
}

/// Copies `src` into [`BOOT_DIR`] under a name carrying its hash, unless an
/// earlier run already did; readable by libvirt's QEMU user.
fn stage(src: &Path, sha256: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(BOOT_DIR);
    let file_name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dest = dir.join(format!("{}-{file_name}", &sha256[..16.min(sha256.len())]));
    let want = std::fs::metadata(src).with_context(|| format!("reading {}", src.display()))?.len();
    if std::fs::metadata(&dest).map(|m| m.len() == want).unwrap_or(false) {
        return Ok(dest);
    }
    let hint = "libvirt's QEMU cannot read vmbench's cache, so artifacts are staged there; run vmbench as root";
    std::fs::create_dir_all(dir).with_context(|| format!("creating {BOOT_DIR} ({hint})"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    let tmp = dir.join(format!(".{file_name}.{}", std::process::id()));
    std::fs::copy(src, &tmp).with_context(|| format!("copying {} to {} ({hint})", src.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

/// The directory of one run's disk images.
pub fn images_dir(run_id: &str) -> PathBuf {
    Path::new(IMAGES_DIR).join(run_id)
}

pub struct LibvirtBackend {
    name: String,
    spec: VmSpec,
    ctx: Arc<RunContext>,
    conn: Option<Arc<Connect>>,
    template: Option<QemuCommand>,
    initrd_drivers: Option<PathBuf>,
    launches: usize,
}

impl LibvirtBackend {
    pub fn new(name: &str, spec: VmSpec, ctx: Arc<RunContext>) -> Self {
        LibvirtBackend {
            name: name.to_string(),
            spec,
            ctx,
            conn: None,
            template: None,
            initrd_drivers: None,
            launches: 0,
        }
    }
}

/// Runs a blocking libvirt call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("libvirt call panicked: {e}"))?
}

#[async_trait]
impl Backend for LibvirtBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        let uri = self.spec.uri.clone();
        let target = self.name.clone();
        // The first connection takes seconds: libvirt probes QEMU.
        let conn = blocking(move || open(&uri).with_context(|| format!("target `{target}`"))).await?;
        let conn = Arc::new(conn);
        let versions = {
            let conn = conn.clone();
            blocking(move || versions_of(&conn)).await?
        };
        let prepared = qemu::prepare_vm(&self.name, &self.spec, &self.ctx).await?;
        let mut template = prepared.template;
        let mut facts = prepared.facts;
        let kernel_sha = facts.kernel.as_ref().map(|k| k.sha256.clone()).unwrap_or_default();
        let initrd_sha = facts.initramfs.as_ref().map(|a| a.sha256.clone()).unwrap_or_default();
        let drivers_sha = facts.initramfs_drivers.as_ref().map(|a| a.sha256.clone()).unwrap_or_default();
        template.kernel = stage(&template.kernel, &kernel_sha)?;
        template.initrd = stage(&template.initrd, &initrd_sha)?;
        let initrd_drivers = stage(&prepared.initrd_drivers, &drivers_sha)?;
        let repro = qemu::with_instructions(&template, &crate::protocol::Instructions::new("repro", "boot"));
        let domain_xml = xml::domain(&repro, &format!("{DOMAIN_PREFIX}repro"), Path::new("/tmp/vmbench-repro.console"));
        facts.backend = "libvirt".into();
        facts.qemu_version = Some(format!(
            "{} (through libvirt {}, which reports QEMU {})",
            facts.qemu_version.unwrap_or_default(),
            versions.library,
            versions.hypervisor
        ));
        facts.reproduce = vec![
            "virsh".into(),
            "-c".into(),
            self.spec.uri.clone(),
            "create".into(),
            "domain.xml  # the `domain_xml` setting".into(),
        ];
        let settings = &mut facts.settings;
        settings.insert("libvirt_uri".into(), self.spec.uri.clone());
        settings.insert("libvirt_version".into(), versions.library);
        settings.insert("domain_xml".into(), domain_xml);
        settings.insert(
            "console".into(),
            format!(
                "serial port to a file, read as it grows (checked every {} ms when idle)",
                POLL_CONSOLE.as_millis()
            ),
        );
        settings.insert(
            "teardown".into(),
            format!(
                "from the agent's done line until libvirt no longer lists the domain (asked every {} ms)",
                POLL_DOMAIN.as_millis()
            ),
        );
        settings.insert(
            "network_workload".into(),
            "virtio-net on QEMU's user network (slirp) passed through <qemu:commandline>, a forwarded 127.0.0.1 port".into(),
        );
        self.conn = Some(conn);
        self.template = Some(template);
        self.initrd_drivers = Some(initrd_drivers);
        Ok(facts)
    }

    async fn run_trial(&mut self, request: &TrialRequest) -> TrialResult {
        let (Some(conn), Some(template), Some(drivers)) = (&self.conn, &self.template, &self.initrd_drivers) else {
            return TrialResult::failed("libvirt target used before prepare");
        };
        let disk_dir = images_dir(&self.ctx.run_id).join(&self.name);
        let trial = match qemu::trial_command(template, drivers, request, &disk_dir) {
            Ok(trial) => trial,
            Err(e) => return TrialResult::failed(e),
        };
        let console_path = match self.ctx.scratch_for(&self.name) {
            Ok(dir) => dir.join(format!("{}.console", request.nonce)),
            Err(e) => return TrialResult::failed(format!("creating the scratch directory: {e}")),
        };
        self.launches += 1;
        let name = format!("{DOMAIN_PREFIX}{}-{}-{}", self.ctx.run_id, self.name, self.launches);
        let domain_xml = xml::domain(&trial.cmd, &name, &console_path);
        let result = launch(
            conn.clone(),
            Trial {
                name,
                xml: domain_xml,
                console: console_path.clone(),
                nonce: request.nonce.clone(),
                timeout: request.timeout,
            },
            trial.network,
        )
        .await;
        let _ = std::fs::remove_file(console_path);
        if let Some(path) = trial.disk {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    async fn cleanup(&mut self) -> Result<()> {
        if let Some(conn) = &self.conn {
            let (conn, prefix) = (conn.clone(), format!("{DOMAIN_PREFIX}{}-", self.ctx.run_id));
            blocking(move || destroy_prefixed(&conn, &prefix)).await?;
        }
        let dir = images_dir(&self.ctx.run_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// One domain to start.
struct Trial {
    name: String,
    xml: String,
    console: PathBuf,
    nonce: String,
    timeout: Duration,
}

/// Whether the domain `name` still runs (a transient domain that ended is
/// gone, which counts as not running).
fn is_running(conn: &Connect, name: &str) -> bool {
    conn.lookup_domain_by_name(name).and_then(|d| d.is_active()).unwrap_or(false)
}

fn destroy(conn: &Connect, name: &str) {
    if let Ok(domain) = conn.lookup_domain_by_name(name) {
        let _ = domain.destroy();
    }
}

/// create → ready → done → gone, each on vmbench's clock. The domain is
/// destroyed at the deadline and on every way out.
async fn launch(conn: Arc<Connect>, trial: Trial, network: Option<super::network::NetworkClient>) -> TrialResult {
    let mut result = TrialResult::default();
    let deadline = tokio::time::Instant::now() + trial.timeout;
    let mut console = Console::new(&trial.nonce);
    let launched = Instant::now();
    let create = {
        let (conn, xml) = (conn.clone(), trial.xml.clone());
        tokio::task::spawn_blocking(move || conn.create_domain_xml(&xml, 0).map(|_| Instant::now()))
    };
    let created = match tokio::time::timeout_at(deadline, create).await {
        Ok(Ok(Ok(at))) => at,
        Ok(Ok(Err(e))) => {
            result.fail(format!("libvirt could not start the domain: {e}"));
            return finish(&conn, &trial.name, result).await;
        }
        Ok(Err(e)) => {
            result.fail(format!("the create call panicked: {e}"));
            return finish(&conn, &trial.name, result).await;
        }
        Err(_) => {
            result.fail("timed out in libvirt's create call");
            return finish(&conn, &trial.name, result).await;
        }
    };
    crate::fault::point("libvirt-after-create");
    // libvirt (re)creates the file while starting the domain: open it now,
    // from its start, so nothing written so far is missed.
    let file = match std::fs::File::open(&trial.console) {
        Ok(f) => f,
        Err(e) => {
            result.fail(format!("opening the console file libvirt writes: {e}"));
            return finish(&conn, &trial.name, result).await;
        }
    };
    result.metrics.insert("create_ms".into(), ms_between(launched, created));
    let gone = Arc::new(AtomicBool::new(false));
    let console_ended = Arc::new(tokio::sync::Notify::new());
    let watcher = tokio::spawn(watch(conn.clone(), trial.name.clone(), gone.clone(), console_ended.clone()));
    let mut sampler = None;
    let pid_file = Path::new("/run/libvirt/qemu").join(format!("{}.pid", trial.name));
    let start_sampling = || {
        let pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok());
        sampler = pid.map(|pid| Sampler::start(move || footprint::process(pid)));
    };
    let mut host_side = TrialResult::default();
    let end = read_console(
        &mut console,
        follow(file, gone.clone()),
        deadline,
        network,
        &mut host_side,
        start_sampling,
    )
    .await;
    // From here on the domain's end is what is timed: ask often.
    console_ended.notify_one();
    let series = match sampler {
        Some(s) => s.stop().await,
        None => Default::default(),
    };
    result.metrics.extend(host_side.metrics);
    if let Some(e) = host_side.error {
        result.fail(e);
    }
    collect_agent_report(&console, launched, end, &mut result);
    qemu::boot_phases(&console, &mut result.metrics);
    series.record(console.report.ready_at, &mut result.metrics);
    if let Some(at) = console.report.first_byte_at {
        result.metrics.insert("first_byte_ms".into(), ms_between(launched, at));
    }
    match tokio::time::timeout_at(deadline, watcher).await {
        Ok(Ok(gone_at)) => {
            result.metrics.insert("exit_ms".into(), ms_between(launched, gone_at));
            if let Some(done) = console.report.done_at {
                result.metrics.insert("teardown_ms".into(), ms_between(done, gone_at));
            }
        }
        _ if result.error.is_none() => result.fail("the domain did not end in time and was destroyed"),
        _ => {}
    }
    finish(&conn, &trial.name, result).await
}

/// Destroys the domain if it is still there, whatever happened before.
async fn finish(conn: &Arc<Connect>, name: &str, result: TrialResult) -> TrialResult {
    let (conn, name) = (conn.clone(), name.to_string());
    let _ = tokio::task::spawn_blocking(move || destroy(&conn, &name)).await;
    result
}

/// Asks libvirt whether the domain still runs, every [`POLL_DOMAIN_RUNNING`]
/// until `console_ended` is notified and every [`POLL_DOMAIN`] after; when
/// it does not, sets `gone` and returns when that was seen.
async fn watch(conn: Arc<Connect>, name: String, gone: Arc<AtomicBool>, console_ended: Arc<tokio::sync::Notify>) -> Instant {
    let mut interval = POLL_DOMAIN_RUNNING;
    loop {
        let (c, n) = (conn.clone(), name.clone());
        let running = tokio::task::spawn_blocking(move || is_running(&c, &n)).await.unwrap_or(false);
        if !running {
            let at = Instant::now();
            gone.store(true, Ordering::SeqCst);
            return at;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            // A notification during the call above is kept as a permit.
            _ = console_ended.notified(), if interval != POLL_DOMAIN => interval = POLL_DOMAIN,
        }
    }
}

/// The console file as a stream of chunks as they are written; it ends
/// once the domain is gone and everything written has been read. Reads of a
/// regular file do not block, so they run inline.
fn follow(file: std::fs::File, gone: Arc<AtomicBool>) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin + Send {
    use std::io::Read;
    Box::pin(futures_util::stream::unfold((file, gone), |(mut file, gone)| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Read the flag first: what QEMU wrote before it was gone is
            // then certain to be read below.
            let ended = gone.load(Ordering::SeqCst);
            match file.read(&mut buf) {
                Ok(0) if ended => return None,
                Ok(0) => tokio::time::sleep(POLL_CONSOLE).await,
                Ok(n) => {
                    buf.truncate(n);
                    return Some((Ok(bytes::Bytes::from(buf)), (file, gone)));
                }
                Err(e) => return Some((Err(e), (file, gone))),
            }
        }
    }))
}
