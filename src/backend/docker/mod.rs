//! Containers through the Docker Engine API (bollard), never the CLI.
//! Each trial: create, attach, start, read the ready line from the attached
//! output, wait for exit, remove; every phase timed on vmbench's clock.

pub mod context;
pub mod image;
pub mod own;
pub mod spec;

use super::{
    cgroup, footprint, ms_between, Backend, ExitStyle, Footprint, Gone, Launch, LaunchSpec, Pending, RunContext, Started, Sweeper,
};
use crate::guest;
use crate::protocol::Instructions;
use crate::rundir::{TargetFacts, TargetKind};
use crate::scenario::{ContainerNetwork, ContainerSpec, Engine, WorkloadKind};
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct DockerBackend {
    name: String,
    spec: ContainerSpec,
    ctx: Arc<RunContext>,
    docker: Option<Docker>,
    image: Option<String>,
    /// Launches so far, for unique container names.
    launches: AtomicUsize,
    /// The engine starts this runtime without a network (`--network=none`).
    no_network: bool,
    /// The bridge's gateway, where `network = "published-nat"` publishes.
    nat_ip: Option<String>,
    /// The runtime is gVisor's runsc.
    gvisor: bool,
}

impl DockerBackend {
    /// A labelled, pinned launch of this target with the agent's
    /// instruction `tokens`.
    fn plan(&self, image: &str, tokens: Vec<String>) -> spec::ContainerPlan {
        spec::ContainerPlan::for_guest(&self.spec, image, tokens)
            .labelled(&self.ctx.run_id, &self.name)
            .pinned(self.ctx.cpuset.as_ref())
    }

    pub fn new(name: &str, spec: ContainerSpec, ctx: Arc<RunContext>) -> Self {
        DockerBackend {
            name: name.to_string(),
            spec,
            ctx,
            docker: None,
            image: None,
            launches: AtomicUsize::new(0),
            no_network: false,
            nat_ip: None,
            gvisor: false,
        }
    }
}

/// Podman's Docker-compatible API socket as scripts/setup.sh starts it.
pub const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";

/// The engine address: the target's `host`, else the engine's environment
/// variable (`DOCKER_HOST`, `CONTAINER_HOST`), else its default socket.
pub fn engine_address(engine: Engine, configured: Option<&str>) -> String {
    let (variable, default) = match engine {
        Engine::Docker => ("DOCKER_HOST", "unix:///var/run/docker.sock"),
        Engine::Podman => ("CONTAINER_HOST", PODMAN_SOCKET),
    };
    configured
        .map(str::to_string)
        .or_else(|| {
            std::env::var(variable)
                .ok()
                .filter(|h| h.starts_with("unix://") || h.starts_with("tcp://"))
        })
        .unwrap_or_else(|| default.to_string())
}

/// How to start `engine`'s API service by hand.
fn start_hint(engine: Engine) -> &'static str {
    match engine {
        Engine::Docker => "start it with `dockerd &` or run scripts/setup.sh",
        Engine::Podman => {
            "start its API service with `podman system service --time=0 unix:///run/podman/podman.sock &` or run scripts/setup.sh"
        }
    }
}

/// Connects and agrees on an API version both sides speak.
pub async fn connect(engine: Engine, address: &str) -> Result<Docker> {
    let fail = |e: bollard::errors::Error| anyhow!("the {engine} API at {address} does not answer ({e}); {}", start_hint(engine));
    let docker = Docker::connect_with_host(address).map_err(fail)?;
    let docker = docker.negotiate_version().await.map_err(fail)?;
    docker.ping().await.map_err(fail)?;
    Ok(docker)
}

/// Checks the engine offers `runtime`, naming the ones it has otherwise;
/// returns how the engine starts it (path, extra arguments).
pub async fn check_runtime(docker: &Docker, engine: Engine, runtime: &str) -> Result<bollard::models::Runtime> {
    let info = docker.info().await.with_context(|| format!("asking {engine} for its runtimes"))?;
    // Podman's Docker-compatible API ignores the runtime a container asks
    // for and always uses its default (seen with Podman 4.3): asking for
    // another would silently measure the wrong runtime.
    if let (Engine::Podman, Some(default)) = (engine, info.default_runtime.as_deref()) {
        if default != runtime {
            bail!(
                "Podman's Docker-compatible API always runs its default runtime `{default}`, whatever a container asks for; \
                 set runtime = \"{default}\" on the target, or make `{runtime}` the default with `runtime = \"{runtime}\"` \
                 under [engine] in /etc/containers/containers.conf and restart the podman service"
            );
        }
    }
    let runtimes = info.runtimes.unwrap_or_default();
    if let Some(found) = runtimes.get(runtime) {
        return Ok(found.clone());
    }
    let mut offered: Vec<&String> = runtimes.keys().collect();
    offered.sort();
    let how = match engine {
        Engine::Docker => "register it under \"runtimes\" in /etc/docker/daemon.json and restart dockerd",
        Engine::Podman => "add it under [engine.runtimes] in /etc/containers/containers.conf and restart the podman service",
    };
    let offered: Vec<&str> = offered.into_iter().map(String::as_str).collect();
    bail!("{engine} has no runtime `{runtime}` (it offers: {}); {how}", offered.join(", "))
}

impl DockerBackend {
    /// vmbench's agent image, the image of the target's guest root file
    /// system (built into the cache first if need be), or the user's own
    /// image with the agent added, with the guest's facts.
    async fn ensure_image(
        &self,
        docker: &Docker,
        agent: &guest::agent::Agent,
    ) -> Result<(crate::rundir::ImageFacts, Option<crate::rundir::GuestFacts>)> {
        let agent_sha = agent.sha256();
        let Some(guest) = &self.spec.guest else {
            return Ok((image::ensure(docker, agent.bytes(), agent_sha).await?, None));
        };
        let context = || format!("guest `{}`", guest.name);
        let Some(rootfs) = guest.rootfs().cloned() else {
            let (image, facts) = own::ensure(docker, self.spec.engine, guest, agent.bytes(), agent_sha)
                .await
                .with_context(context)?;
            return Ok((image, Some(facts)));
        };
        let owned = agent.clone();
        let built = tokio::task::spawn_blocking(move || guest::rootfs::ensure(&rootfs, owned.bytes(), owned.sha256()))
            .await
            .context("building the guest root file system")?
            .with_context(context)?;
        let scratch = self.scratch_dir();
        // A file only where the service can read vmbench's files: on this
        // host, through its Unix socket. Elsewhere Podman gets the body (and
        // keeps its copy; see `ImportFrom::File`).
        let address = engine_address(self.spec.engine, self.spec.host.as_deref());
        let local = address.starts_with("unix://") || address.starts_with('/');
        let from = match self.spec.engine {
            Engine::Podman if local => image::ImportFrom::File(&scratch),
            _ => image::ImportFrom::Body,
        };
        let image = image::ensure_rootfs(docker, &built, agent_sha, from).await.with_context(context)?;
        Ok((image, Some(crate::rundir::GuestFacts::new(guest, &built))))
    }

    /// A guest of the user's own that is to boot systemd but has none where
    /// the container starts it says so, rather than blaming the runtime.
    fn probe_hint(&self, error: anyhow::Error) -> anyhow::Error {
        let Some(guest) = self.spec.guest.as_ref().filter(|g| g.source.is_own_image()) else {
            return error;
        };
        let text = format!("{error:#}");
        if guest.init == crate::scenario::GuestInit::Systemd && text.contains(spec::SYSTEMD_PATH) {
            return error.context(format!(
                "guest `{}` has init = \"systemd\", but its image cannot start {}: install systemd in the image \
                 or use init = \"agent\"",
                guest.name,
                spec::SYSTEMD_PATH
            ));
        }
        error
    }
}

#[async_trait]
impl Backend for DockerBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        let engine = self.spec.engine;
        let address = engine_address(engine, self.spec.host.as_deref());
        let docker = connect(engine, &address).await.with_context(|| format!("target `{}`", self.name))?;
        let version = docker.version().await.with_context(|| format!("asking {engine} for its version"))?;
        let runtime = check_runtime(&docker, engine, &self.spec.runtime)
            .await
            .with_context(|| format!("target `{}`", self.name))?;
        self.no_network = runtime.runtime_args.unwrap_or_default().iter().any(|a| a == "--network=none");
        self.gvisor = self.spec.runtime == "runsc" || runtime.path.is_some_and(|p| p.ends_with("/runsc"));
        if self.spec.network == ContainerNetwork::PublishedNat {
            let gateway = bridge_gateway(&docker, engine)
                .await
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("target `{}`: network = \"published-nat\"", self.name))?;
            self.nat_ip = Some(gateway);
        }
        let agent = guest::agent::Agent::from_file(self.spec.agent.as_deref()).with_context(|| format!("target `{}`", self.name))?;
        let (image, guest_facts) = self
            .ensure_image(&docker, &agent)
            .await
            .with_context(|| format!("target `{}`", self.name))?;
        let probe_name = format!("{}{}-{}-probe", spec::NAME_PREFIX, self.ctx.run_id, self.name);
        let probe = self.plan(&image.tag, Instructions::new("probe", "boot").to_tokens());
        probe_runtime(&docker, &probe, &probe_name)
            .await
            .map_err(|e| self.probe_hint(e))
            .with_context(|| format!("target `{}`", self.name))?;
        let example = self.plan(&image.tag, Instructions::new("repro", "boot").to_tokens());
        let facts = TargetFacts {
            name: self.name.clone(),
            kind: TargetKind::Container,
            backend: self.spec.engine.as_str().into(),
            runtime: Some(self.spec.runtime.clone()),
            cpus: Some(self.spec.cpus),
            memory_mib: Some(self.spec.memory_mib),
            engine: Some(self.spec.engine),
            engine_version: version.version,
            engine_api_version: version.api_version,
            artifact_bytes: image.size_bytes,
            reproduce: example.argv(),
            image: Some(image.clone()),
            agent_sha256: agent.sha256().to_string(),
            settings: example
                .settings()
                .into_iter()
                .chain([(
                    "accounting".to_string(),
                    "the container's cgroup (memory usage + the shim's RSS, cpuacct), found by the container's id".to_string(),
                )])
                .chain(self.spec.agent.as_deref().map(crate::backend::agent_setting))
                .collect(),
            cpuset: self.ctx.cpuset.as_ref().map(ToString::to_string),
            guest: guest_facts,
            ..Default::default()
        };
        self.image = Some(image.tag);
        self.docker = Some(docker);
        Ok(facts)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.ctx.scratch_for(&self.name)
    }

    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        let (Some(docker), Some(image)) = (&self.docker, &self.image) else {
            return Err("container target used before prepare".into());
        };
        let n = self.launches.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{}{}-{}-{n}", spec::NAME_PREFIX, self.ctx.run_id, self.name);
        let mut instructions = spec.instructions.clone();
        // Disk workloads write to the host's scratch directory mounted at /scratch.
        let scratch_dir = spec.scratch.as_ref().and_then(|file| {
            let file_name = file.file_name()?.to_string_lossy().into_owned();
            instructions.scratch = Some(format!("{}/{file_name}", spec::SCRATCH_MOUNT));
            file.parent().map(Path::to_path_buf)
        });
        let kind = spec.workload.kind;
        if kind.host_driven() {
            instructions.listen = Some(spec::listen_address(self.spec.network));
        }
        let mut plan = self.plan(image, instructions.to_tokens());
        if let Some(dir) = &scratch_dir {
            plan.mount_scratch(dir);
        }
        if kind.host_driven() {
            if self.spec.network == ContainerNetwork::PublishedNat && self.nat_ip.is_none() {
                // Publishing on 127.0.0.1 instead would measure the proxy
                // under the NAT path's name.
                return Err("network = \"published-nat\" without the bridge's gateway (prepare did not find it)".into());
            }
            plan.enable_network(&spec::Reach {
                mode: self.spec.network,
                ports: kind.guest_ports().to_vec(),
                nat_ip: self.nat_ip.clone(),
            });
        }
        if matches!(kind, WorkloadKind::Http | WorkloadKind::Sql) {
            plan.serve_application(self.spec.storage);
        }
        let body = plan.body();
        Ok(Box::new(ContainerLaunch {
            docker: docker.clone(),
            name,
            body: Some(body),
            id: None,
            network: self.spec.network,
        }))
    }

    fn ready_probe(&self) -> Option<crate::scenario::ReadyProbe> {
        self.spec.guest.as_ref().and_then(|g| g.ready.clone())
    }

    fn not_applicable(&self, workload: &crate::scenario::Workload) -> Option<String> {
        if let Some(reason) = super::needs_a_guest_system(workload, self.spec.guest.as_ref()) {
            return Some(reason);
        }
        match workload.kind {
            WorkloadKind::Network | WorkloadKind::Http | WorkloadKind::Sql if self.no_network => Some(format!(
                "{} starts runtime `{}` with --network=none, so its containers have no network",
                self.spec.engine, self.spec.runtime
            )),
            // Measured here: 52 000 O_DIRECT random reads/s under runsc
            // against 13 600 natively on the same disk.
            WorkloadKind::Disk if self.gvisor => Some(
                "gVisor accepts O_DIRECT but serves the I/O through its own file cache, so the disk workload would measure \
                 memory, not the disk"
                    .to_string(),
            ),
            _ => None,
        }
    }

    fn sweeper(&self) -> Option<Arc<dyn Sweeper>> {
        Some(sweeper(
            self.spec.engine,
            &engine_address(self.spec.engine, self.spec.host.as_deref()),
        ))
    }
}

/// The sweeper of a run's containers at `address`.
pub fn sweeper(engine: Engine, address: &str) -> Arc<dyn Sweeper> {
    Arc::new(ContainerSweeper {
        engine,
        address: address.to_string(),
    })
}

/// Removes a run's containers from one engine by their run label.
struct ContainerSweeper {
    engine: Engine,
    address: String,
}

#[async_trait]
impl Sweeper for ContainerSweeper {
    fn key(&self) -> String {
        format!("{} {}", self.engine.as_str(), self.address)
    }

    fn leftovers(&self) -> Option<super::Leftovers> {
        Some(super::Leftovers::Containers {
            engine: self.engine,
            address: self.address.clone(),
        })
    }

    async fn sweep(&self, run_id: &str, interrupted: bool) -> Result<()> {
        let Ok(docker) = connect(self.engine, &self.address).await else {
            return Ok(());
        };
        if interrupted {
            // A create call cut off mid-flight may still land: sweep twice.
            let _ = remove_run_containers(&docker, run_id).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        remove_run_containers(&docker, run_id).await.map(|_| ())
    }
}

/// One container: created, attached, started, waited for and removed
/// through the Engine API.
struct ContainerLaunch {
    docker: Docker,
    name: String,
    /// The create body, until the start uses it.
    body: Option<bollard::models::ContainerCreateBody>,
    /// The engine's id, once created.
    id: Option<String>,
    network: ContainerNetwork,
}

#[async_trait]
impl Launch for ContainerLaunch {
    /// create → attach, each timed; the start call stays in flight while
    /// the driver reads the attached output, since the agent may be ready
    /// before the engine answers it.
    async fn start(&mut self) -> Result<Started, String> {
        let (docker, name) = (&self.docker, self.name.as_str());
        let asked = Instant::now();
        let mut creating = asked;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let body = self.body.take().ok_or("the container was started twice")?;
        let response = loop {
            match docker.create_container(Some(options.clone()), body.clone()).await {
                // The engine went away (killed, restarting): the trial waits
                // until it answers again, within the driver's deadline, and
                // that wait is not the container's start.
                Err(e) if unreachable(&e) => {
                    wait_for_engine(docker).await;
                    creating = Instant::now();
                }
                other => break other.map_err(|e| engine_error("creating the container", &e))?,
            }
        };
        self.id = Some(response.id);
        let created = Instant::now();
        crate::fault::point("docker-after-create");
        let attach = AttachContainerOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(true)
            .build();
        let output = docker
            .attach_container(name, Some(attach))
            .await
            .map_err(|e| format!("attaching to the container: {e}"))?
            .output;
        let attached = Instant::now();
        let bytes = output.map(|item| match item {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => Ok(message),
            Ok(LogOutput::StdIn { .. }) => Ok(bytes::Bytes::new()),
            Err(e) => Err(std::io::Error::other(e)),
        });
        let (docker, name) = (docker.clone(), name.to_string());
        let pending = async move {
            docker
                .start_container(&name, None)
                .await
                .map_err(|e| format!("starting the container: {e}"))?;
            Ok(Pending {
                phases: [("start_ms".to_string(), ms_between(attached, Instant::now()))]
                    .into_iter()
                    .collect(),
                ready_since: Some(("start_to_ready_ms", attached)),
            })
        };
        let waited = creating - asked;
        Ok(Started {
            console: Box::pin(bytes),
            phases: [
                ("create_ms".to_string(), ms_between(creating, created)),
                ("attach_ms".to_string(), ms_between(created, attached)),
            ]
            .into_iter()
            .collect(),
            pending: Some(Box::pin(pending)),
            uncounted: waited,
        })
    }

    async fn address(&self, port: u16) -> Result<SocketAddr, String> {
        match self.network {
            ContainerNetwork::Host => Ok(super::loopback(port)),
            ContainerNetwork::Published | ContainerNetwork::PublishedNat => published_port(&self.docker, &self.name, port).await,
            ContainerNetwork::Bridge => bridge_address(&self.docker, &self.name, port).await,
        }
    }

    fn footprint(&self) -> Footprint {
        let Some(id) = self.id.clone() else {
            return Footprint::None;
        };
        // Found by the container's id, so a container that has just exited
        // cannot make its init's leftover pid point at the root cgroup (the
        // whole host's memory).
        Footprint::Sampled(Box::new(move || {
            let (memory, cpu) = cgroup::of_container(&cgroup::Hierarchies::of_host()?, &id)?;
            let shim = footprint::first_process(&memory).and_then(footprint::parent);
            Some(Box::new(move || cgroup::counters(&memory, &cpu, shim)) as footprint::Reader)
        }))
    }

    fn exit_style(&self) -> ExitStyle {
        ExitStyle::Removed
    }

    async fn wait_gone(&mut self, deadline: tokio::time::Instant, _cleanly: bool) -> Gone {
        let mut wait = self.docker.wait_container(&self.name, None);
        let problem = match tokio::time::timeout_at(deadline, wait.next()).await {
            Err(_) => {
                return Gone {
                    at: None,
                    problem: Some("timed out talking to the Docker daemon".into()),
                }
            }
            Ok(Some(Ok(_)) | None) => None,
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error }))) => {
                let oom = oom_killed(&self.docker, &self.name).await;
                let error = if error.is_empty() { String::new() } else { format!(" ({error})") };
                Some(format!("the container's process exited with status {code}{error}{oom}"))
            }
            Ok(Some(Err(e))) => Some(engine_error("waiting for the container", &e)),
        };
        Gone {
            at: Some(Instant::now()),
            problem,
        }
    }

    async fn remove(&mut self) -> Result<(), String> {
        remove(&self.docker, &self.name)
            .await
            .map_err(|e| match e.downcast_ref::<bollard::errors::Error>() {
                Some(e) if unreachable(e) => format!(
                    "{}; the run's sweep removes it at the end, once the engine answers",
                    engine_error(&format!("removing container {}", self.name), e)
                ),
                _ => format!("removing container {}: {e:#}", self.name),
            })
    }
}

/// Starts one throwaway container from `plan` (the target's runtime, limits
/// and CPUs, a `probe` nonce), so a runtime that is registered but cannot run
/// here (crun on a cgroup v1 + unified host, say) is a preflight error
/// carrying the daemon's own reason, not a run full of failed samples. It
/// runs with the target's settings, pinned like the trials, so it neither
/// lands on the harness's CPU nor hides a setting the runtime refuses.
pub async fn probe_runtime(docker: &Docker, plan: &spec::ContainerPlan, name: &str) -> Result<()> {
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let outcome = async {
        docker.create_container(Some(options), plan.body()).await?;
        docker.start_container(name, None).await
    }
    .await;
    let _ = remove(docker, name).await;
    outcome.map_err(|e| {
        let reason = match &e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
            other => other.to_string(),
        };
        anyhow!("runtime `{}` cannot start a container on this host: {reason}", plan.runtime())
    })
}

/// Whether `e` says the engine does not answer at all (its socket refuses
/// connections or is gone): a daemon that died or is restarting.
fn unreachable(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::HyperLegacyError { err } => err.is_connect(),
        bollard::errors::Error::SocketNotFoundError(_) => true,
        _ => false,
    }
}

/// `what` failed: in the engine's words, or that the engine went away.
fn engine_error(what: &str, e: &bollard::errors::Error) -> String {
    if unreachable(e) {
        format!("{what}: the engine stopped answering (it died or is restarting: {e})")
    } else {
        format!("{what}: {e}")
    }
}

/// Waits until the engine answers a ping, asking every 250 ms; the caller's
/// deadline bounds the wait.
async fn wait_for_engine(docker: &Docker) {
    while docker.ping().await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// `" (killed by the kernel's OOM killer ...)"` when the engine says the
/// container's process was, else nothing.
async fn oom_killed(docker: &Docker, name: &str) -> &'static str {
    let state = docker.inspect_container(name, None).await.ok().and_then(|i| i.state);
    if state.and_then(|s| s.oom_killed) == Some(true) {
        " (killed by the kernel's OOM killer at the container's memory limit: the engine reports OOMKilled)"
    } else {
        ""
    }
}

/// The container's own address on the engine's bridge, at the agent's port:
/// reached from the host through the bridge, with no proxy in between.
async fn bridge_address(docker: &Docker, name: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| format!("inspecting the container: {e}"))?;
    let settings = inspect.network_settings.ok_or("the engine reported no network settings")?;
    let ip = settings
        .networks
        .unwrap_or_default()
        .into_values()
        .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
        .ok_or("the container has no address on the bridge")?;
    let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("the container's address `{ip}`: {e}"))?;
    Ok(std::net::SocketAddr::new(ip, port))
}

/// The host address and port Docker published for `port` in the container:
/// on 127.0.0.1 (the userland proxy's path) or on the bridge's gateway (the
/// kernel's NAT path), as it was published.
async fn published_port(docker: &Docker, name: &str, port: u16) -> Result<std::net::SocketAddr, String> {
    let key = spec::port_key(port);
    let inspect = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| format!("inspecting the container: {e}"))?;
    let port = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|mut ports| ports.remove(&key))
        .flatten()
        .and_then(|bindings| {
            bindings.into_iter().find_map(|b| {
                let port = b.host_port?.parse::<u16>().ok()?;
                let ip = match b.host_ip.as_deref() {
                    None | Some("") | Some("0.0.0.0") => std::net::IpAddr::from([127, 0, 0, 1]),
                    Some(ip) => ip.parse().ok()?,
                };
                Some(std::net::SocketAddr::new(ip, port))
            })
        })
        .ok_or_else(|| format!("Docker published no host port for {key}"))?;
    Ok(port)
}

/// The gateway address of the engine's default bridge network (Docker's
/// `bridge`, Podman's `podman`): where `published-nat` publishes.
async fn bridge_gateway(docker: &Docker, engine: crate::scenario::Engine) -> Result<String, String> {
    let name = match engine {
        crate::scenario::Engine::Docker => "bridge",
        crate::scenario::Engine::Podman => "podman",
    };
    let network = docker
        .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
        .await
        .map_err(|e| format!("inspecting the engine's `{name}` network: {e}"))?;
    network
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| c.gateway.filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok()))
        .ok_or_else(|| format!("the engine's `{name}` network has no IPv4 gateway to publish on"))
}

async fn remove(docker: &Docker, name: &str) -> Result<()> {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        // Never created (the create call failed): nothing to remove.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(anyhow!(e)),
    }
}

/// Removes every container labelled with `run_id` (or, with `None`, every
/// container vmbench ever created). Returns how many were removed.
pub async fn remove_run_containers(docker: &Docker, run_id: &str) -> Result<usize> {
    remove_labelled(docker, &format!("{}={run_id}", spec::RUN_LABEL)).await
}

/// Removes every container with vmbench's run label, whatever the run.
pub async fn remove_all_containers(docker: &Docker) -> Result<usize> {
    remove_labelled(docker, spec::RUN_LABEL).await
}

async fn remove_labelled(docker: &Docker, label_filter: &str) -> Result<usize> {
    let filters = HashMap::from([("label", vec![label_filter])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .context("listing vmbench's containers")?;
    let mut removed = 0;
    for container in containers {
        if let Some(id) = container.id {
            remove(docker, &id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
