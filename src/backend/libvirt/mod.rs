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

pub mod sandbox;
pub mod xml;

use super::qemu::{self, cmdline::QemuCommand};
use super::{footprint, ms_between, Backend, ExitStyle, Footprint, Gone, Launch, LaunchSpec, RunContext, Started, Sweeper};
use crate::rundir::TargetFacts;
use crate::scenario::VmSpec;
use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// A guest's root disk where libvirt's QEMU user can open it: a hard link
/// in `dir` (one of the run's, removed with it), or a copy where the cache
/// is on another file system. Returns the path and which it was.
fn stage_disk(src: &Path, dir: &Path) -> Result<(PathBuf, &'static str)> {
    let hint = "libvirt's QEMU cannot read vmbench's cache, so the disk is staged there; run vmbench as root";
    std::fs::create_dir_all(dir).with_context(|| format!("creating {} ({hint})", dir.display()))?;
    let file_name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dest = dir.join(format!("root-{file_name}"));
    let _ = std::fs::remove_file(&dest);
    if std::fs::hard_link(src, &dest).is_ok() {
        return Ok((dest, "hard-linked into"));
    }
    std::fs::copy(src, &dest).with_context(|| format!("copying {} to {} ({hint})", src.display(), dest.display()))?;
    Ok((dest, "copied into"))
}

/// The directory of one run's disk images.
pub fn images_dir(run_id: &str) -> PathBuf {
    Path::new(IMAGES_DIR).join(run_id)
}

/// The connection to libvirtd that a target's launches share, opened again
/// when libvirtd went away (killed, restarting): the domains it started run
/// on without it, so vmbench reconnects rather than losing track of them.
struct Link {
    uri: String,
    conn: std::sync::Mutex<Arc<Connect>>,
}

impl Link {
    fn new(uri: &str, conn: Connect) -> Arc<Link> {
        Arc::new(Link {
            uri: uri.to_string(),
            conn: std::sync::Mutex::new(Arc::new(conn)),
        })
    }

    fn current(&self) -> Arc<Connect> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A connection that answers: the current one, or a new one as soon as
    /// libvirtd answers again (asked every 250 ms; the caller's deadline
    /// bounds the wait).
    async fn alive(&self) -> Arc<Connect> {
        loop {
            let conn = self.current();
            let probe = conn.clone();
            // A call that goes to libvirtd: the client may not notice a
            // closed socket until one fails.
            if tokio::task::spawn_blocking(move || probe.lib_version().is_ok())
                .await
                .unwrap_or(false)
            {
                return conn;
            }
            let uri = self.uri.clone();
            if let Ok(Ok(fresh)) = tokio::task::spawn_blocking(move || Connect::open(Some(&uri))).await {
                let fresh = Arc::new(fresh);
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                return fresh;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub struct LibvirtBackend {
    name: String,
    spec: VmSpec,
    ctx: Arc<RunContext>,
    link: Option<Arc<Link>>,
    template: Option<QemuCommand>,
    initrd_drivers: Option<PathBuf>,
    /// Launches so far, for unique domain names.
    launches: AtomicUsize,
}

impl LibvirtBackend {
    pub fn new(name: &str, spec: VmSpec, ctx: Arc<RunContext>) -> Self {
        LibvirtBackend {
            name: name.to_string(),
            spec,
            ctx,
            link: None,
            template: None,
            initrd_drivers: None,
            launches: AtomicUsize::new(0),
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
    fn not_applicable(&self, workload: &crate::scenario::Workload) -> Option<String> {
        super::needs_a_guest_system(workload, self.spec.guest.as_ref())
    }

    fn ready_probe(&self) -> Option<crate::scenario::ReadyProbe> {
        self.spec.guest.as_ref().and_then(|g| g.ready.clone())
    }

    async fn prepare(&mut self) -> Result<TargetFacts> {
        let uri = self.spec.uri.clone();
        let target = self.name.clone();
        // The first connection takes seconds: libvirt probes QEMU.
        let conn = blocking(move || open(&uri).with_context(|| format!("target `{target}`"))).await?;
        let link = Link::new(&self.spec.uri, conn);
        let versions = {
            let conn = link.current();
            blocking(move || versions_of(&conn)).await?
        };
        let prepared = qemu::prepare_vm(&self.name, &self.spec, &self.ctx).await?;
        let mut template = prepared.template;
        let mut facts = prepared.facts;
        let kernel_sha = facts.kernel.as_ref().map(|k| k.sha256.clone()).unwrap_or_default();
        let initrd_sha = facts.initramfs.as_ref().map(|a| a.sha256.clone()).unwrap_or_default();
        // A guest system's drivers initramfs is its own initramfs.
        let drivers_sha = facts
            .initramfs_drivers
            .as_ref()
            .map_or_else(|| initrd_sha.clone(), |a| a.sha256.clone());
        template.kernel = stage(&template.kernel, &kernel_sha)?;
        template.initrd = template.initrd.as_deref().map(|i| stage(i, &initrd_sha)).transpose()?;
        let initrd_drivers = stage(&prepared.initrd_drivers, &drivers_sha)?;
        if let Some(root) = &template.root_disk {
            let (staged, how) = stage_disk(root, &images_dir(&self.ctx.run_id).join(&self.name))?;
            template.root_disk = Some(staged);
            if let Some(setting) = facts.settings.get_mut("root_disk") {
                setting.push_str(&format!(
                    "; under libvirt: <transient/> (libvirt's own snapshot overlay), the disk {how} the run's \
                     images directory, which libvirt gives to its QEMU user by changing the file's owner while a \
                     domain runs"
                ));
            }
        }
        describe(&mut facts, &template, &self.spec.uri, versions);
        self.link = Some(link);
        self.template = Some(template);
        self.initrd_drivers = Some(initrd_drivers);
        Ok(facts)
    }

    fn scratch_dir(&self) -> PathBuf {
        images_dir(&self.ctx.run_id).join(&self.name)
    }

    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        let (Some(link), Some(template), Some(drivers)) = (&self.link, &self.template, &self.initrd_drivers) else {
            return Err("libvirt target used before prepare".into());
        };
        let cmd = qemu::launch_command(template, drivers, &spec, None)?;
        let console_dir = self.ctx.scratch_for(&self.name);
        std::fs::create_dir_all(&console_dir).map_err(|e| format!("creating the scratch directory: {e}"))?;
        let console = console_dir.join(format!("{}.console", spec.instructions.nonce));
        let n = self.launches.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{DOMAIN_PREFIX}{}-{}-{n}", self.ctx.run_id, self.name);
        Ok(Box::new(DomainLaunch {
            link: link.clone(),
            xml: xml::domain(&cmd, &name, &console),
            name,
            cmd,
            console,
            gone: Arc::new(AtomicBool::new(false)),
            console_ended: Arc::new(tokio::sync::Notify::new()),
            watcher: None,
            accounting: self.ctx.accounting,
        }))
    }

    fn sweeper(&self) -> Option<Arc<dyn Sweeper>> {
        Some(sweeper(&self.spec.uri))
    }
}

/// What `run.json` says about a libvirt target beyond the guest itself:
/// versions, the domain XML of one launch, how console and teardown are read.
fn describe(facts: &mut TargetFacts, template: &QemuCommand, uri: &str, versions: Versions) {
    let repro = qemu::reproduce_command(template);
    let domain_xml = xml::domain(&repro, &format!("{DOMAIN_PREFIX}repro"), Path::new("/tmp/vmbench-repro.console"));
    facts.backend = "libvirt".into();
    facts.qemu_version = Some(format!(
        "{} (through libvirt {}, which reports QEMU {})",
        facts.qemu_version.take().unwrap_or_default(),
        versions.library,
        versions.hypervisor
    ));
    facts.reproduce = vec![
        "virsh".into(),
        "-c".into(),
        uri.to_string(),
        "create".into(),
        "domain.xml  # the `domain_xml` setting".into(),
    ];
    let console = format!(
        "serial port to a file, read as it grows (checked every {} ms when idle)",
        POLL_CONSOLE.as_millis()
    );
    let teardown = format!(
        "from the agent's done line until libvirt no longer lists the domain (asked every {} ms)",
        POLL_DOMAIN.as_millis()
    );
    let network = "virtio-net on QEMU's user network (slirp) passed through <qemu:commandline>, a forwarded 127.0.0.1 port";
    for (key, value) in [
        ("libvirt_uri", uri.to_string()),
        ("libvirt_version", versions.library),
        ("sandbox", sandbox::setting(uri)),
        ("domain_xml", domain_xml),
        ("console", console),
        ("teardown", teardown),
        ("network_workload", network.to_string()),
        (
            "accounting",
            "accounting = \"cgroup\": the cgroup libvirt gives the domain (memory, cpuacct), else the QEMU process from /proc (RSS, PSS, CPU time)".to_string(),
        ),
    ] {
        facts.settings.insert(key.into(), value);
    }
}

/// The sweeper of a run's domains at `uri`.
pub fn sweeper(uri: &str) -> Arc<dyn Sweeper> {
    Arc::new(DomainSweeper { uri: uri.to_string() })
}

/// Destroys a run's domains at one URI by name prefix and removes its disk images.
struct DomainSweeper {
    uri: String,
}

#[async_trait]
impl Sweeper for DomainSweeper {
    fn key(&self) -> String {
        format!("libvirt {}", self.uri)
    }

    fn leftovers(&self) -> Option<super::Leftovers> {
        Some(super::Leftovers::Domains { uri: self.uri.clone() })
    }

    async fn sweep(&self, run_id: &str, interrupted: bool) -> Result<()> {
        // After an interruption, a create call in flight may still start
        // its domain: sweep twice.
        for pass in 0..if interrupted { 2 } else { 1 } {
            let (uri, run_id) = (self.uri.clone(), run_id.to_string());
            let _ = blocking(move || destroy_run_domains(&uri, &run_id)).await;
            if interrupted && pass == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let dir = images_dir(run_id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// One transient domain, its console a file that libvirt's QEMU writes.
struct DomainLaunch {
    link: Arc<Link>,
    name: String,
    xml: String,
    /// The command the XML was made from (its forwarded port).
    cmd: QemuCommand,
    console: PathBuf,
    /// Set by the watcher once libvirt no longer lists the domain.
    gone: Arc<AtomicBool>,
    /// Told when the agent's console has ended: the watcher then asks often.
    console_ended: Arc<tokio::sync::Notify>,
    watcher: Option<tokio::task::JoinHandle<Instant>>,
    /// Whether libvirt's domain cgroup or the QEMU process is read.
    accounting: crate::scenario::Accounting,
}

#[async_trait]
impl Launch for DomainLaunch {
    /// The create call (timed), then the console file from its start.
    async fn start(&mut self) -> Result<Started, String> {
        // A libvirtd that went away is waited for (within the driver's
        // deadline); that wait is not the domain's start.
        let asked = Instant::now();
        let conn = self.link.alive().await;
        let creating = Instant::now();
        let xml = self.xml.clone();
        let created = tokio::task::spawn_blocking(move || conn.create_domain_xml(&xml, 0).map(|_| Instant::now()))
            .await
            .map_err(|e| format!("the create call panicked: {e}"))?
            .map_err(|e| format!("libvirt could not start the domain: {e}"))?;
        crate::fault::point("libvirt-after-create");
        // libvirt (re)creates the file while starting the domain: open it now,
        // from its start, so nothing written so far is missed.
        let file = std::fs::File::open(&self.console).map_err(|e| format!("opening the console file libvirt writes: {e}"))?;
        let watch = watch(self.link.clone(), self.name.clone(), self.gone.clone(), self.console_ended.clone());
        self.watcher = Some(tokio::spawn(watch));
        Ok(Started {
            console: follow(file, self.gone.clone()),
            phases: [("create_ms".to_string(), ms_between(creating, created))].into_iter().collect(),
            pending: None,
            uncounted: creating - asked,
        })
    }

    async fn address(&self, port: u16) -> Result<SocketAddr, String> {
        qemu::forwarded(&self.cmd, port)
    }

    fn footprint(&self) -> Footprint {
        let pid_file = Path::new("/run/libvirt/qemu").join(format!("{}.pid", self.name));
        let by_cgroup = self.accounting == crate::scenario::Accounting::Cgroup;
        Footprint::Sampled(Box::new(move || {
            let pid = std::fs::read_to_string(&pid_file).ok()?.trim().parse::<u32>().ok()?;
            // The cgroup libvirt gave the domain, when it gave it one.
            Some(footprint::qemu_reader(super::cgroup::of_process(pid).filter(|_| by_cgroup), pid))
        }))
    }

    fn boots_a_kernel(&self) -> bool {
        true
    }

    fn exit_style(&self) -> ExitStyle {
        ExitStyle::Stops { teardown: true }
    }

    async fn wait_gone(&mut self, deadline: tokio::time::Instant, _cleanly: bool) -> Gone {
        // From here on the domain's end is what is timed: ask often.
        self.console_ended.notify_one();
        let Some(watcher) = self.watcher.take() else {
            return Gone::default();
        };
        match tokio::time::timeout_at(deadline, watcher).await {
            Ok(Ok(gone_at)) => Gone {
                at: Some(gone_at),
                problem: None,
            },
            _ => Gone {
                at: None,
                problem: Some("the domain did not end in time and was destroyed".into()),
            },
        }
    }

    /// Destroys the domain if it is still there, whatever happened before.
    async fn remove(&mut self) -> Result<(), String> {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        // A libvirtd that went away is waited for a while; if it stays away
        // the run's sweep destroys the domain at the end.
        let conn = tokio::time::timeout(Duration::from_secs(10), self.link.alive()).await;
        let Ok(conn) = conn else {
            let _ = std::fs::remove_file(&self.console);
            return Err(format!(
                "libvirtd does not answer at {}: domain {} not destroyed; the run's sweep destroys it at the end",
                self.link.uri, self.name
            ));
        };
        let name = self.name.clone();
        let _ = tokio::task::spawn_blocking(move || destroy(&conn, &name)).await;
        let _ = std::fs::remove_file(&self.console);
        Ok(())
    }
}

/// Whether the domain `name` still runs (a transient domain that ended is
/// gone, which counts as not running); `None` when libvirt did not answer.
fn is_running(conn: &Connect, name: &str) -> Option<bool> {
    match conn.lookup_domain_by_name(name).and_then(|d| d.is_active()) {
        Ok(active) => Some(active),
        Err(e) if e.code().is(virt::error::ErrorNumber::NoDomain) => Some(false),
        Err(_) => None,
    }
}

fn destroy(conn: &Connect, name: &str) {
    if let Ok(domain) = conn.lookup_domain_by_name(name) {
        let _ = domain.destroy();
    }
}

/// Asks libvirt whether the domain still runs, every [`POLL_DOMAIN_RUNNING`]
/// until `console_ended` is notified and every [`POLL_DOMAIN`] after; when
/// it does not, sets `gone` and returns when that was seen.
async fn watch(link: Arc<Link>, name: String, gone: Arc<AtomicBool>, console_ended: Arc<tokio::sync::Notify>) -> Instant {
    let mut interval = POLL_DOMAIN_RUNNING;
    loop {
        let (c, n) = (link.current(), name.clone());
        let running = tokio::task::spawn_blocking(move || is_running(&c, &n)).await.ok().flatten();
        if running.is_none() {
            // No answer: libvirtd went away while the domain runs on. Ask
            // again (through a new connection once it is back), not at once.
            tokio::time::sleep(interval).await;
            link.alive().await;
            continue;
        }
        if running == Some(false) {
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
fn follow(file: std::fs::File, gone: Arc<AtomicBool>) -> futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
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
