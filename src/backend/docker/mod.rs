//! Containers through the Docker Engine API (bollard), never the CLI.
//! Each trial: create, attach, start, read the ready line from the attached
//! output, wait for exit, remove; every phase timed on vmbench's clock.

pub mod image;
pub mod spec;

use super::footprint::{self, Sampler};
use super::{collect_agent_report, ms_between, read_console, Backend, ConsoleEnd, RunContext, TrialRequest, TrialResult};
use crate::console::Console;
use crate::guest;
use crate::protocol::Instructions;
use crate::record::TargetFacts;
use crate::scenario::{ContainerSpec, Engine};
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub struct DockerBackend {
    name: String,
    spec: ContainerSpec,
    ctx: Arc<RunContext>,
    docker: Option<Docker>,
    image: Option<String>,
    launches: usize,
    /// The engine starts this runtime without a network (`--network=none`).
    no_network: bool,
    /// The runtime is gVisor's runsc.
    gvisor: bool,
}

impl DockerBackend {
    pub fn new(name: &str, spec: ContainerSpec, ctx: Arc<RunContext>) -> Self {
        DockerBackend {
            name: name.to_string(),
            spec,
            ctx,
            docker: None,
            image: None,
            launches: 0,
            no_network: false,
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
        let agent_sha = guest::agent::sha256();
        let image = image::ensure(&docker, guest::agent::bytes(), &agent_sha)
            .await
            .with_context(|| format!("target `{}`", self.name))?;
        probe_runtime(&docker, &self.spec, &image.tag, &self.ctx.run_id, &self.name)
            .await
            .with_context(|| format!("target `{}`", self.name))?;
        let cmd = Instructions::new("repro", "boot").to_tokens();
        let facts = TargetFacts {
            name: self.name.clone(),
            kind: "container".into(),
            backend: self.spec.engine.as_str().into(),
            runtime: Some(self.spec.runtime.clone()),
            cpus: Some(self.spec.cpus),
            memory_mib: Some(self.spec.memory_mib),
            engine: Some(self.spec.engine.as_str().into()),
            engine_version: version.version,
            engine_api_version: version.api_version,
            artifact_bytes: image.size_bytes,
            reproduce: spec::reproduce(&self.spec, &image.tag, &cmd),
            image: Some(image.clone()),
            agent_sha256: agent_sha,
            settings: spec::settings(&self.spec),
            ..Default::default()
        };
        self.image = Some(image.tag);
        self.docker = Some(docker);
        Ok(facts)
    }

    async fn run_trial(&mut self, request: &TrialRequest) -> TrialResult {
        let (Some(docker), Some(image)) = (&self.docker, &self.image) else {
            return TrialResult::failed("container target used before prepare");
        };
        self.launches += 1;
        let name = format!("{}{}-{}-{}", spec::NAME_PREFIX, self.ctx.run_id, self.name, self.launches);
        let mut instructions = Instructions::new(&request.nonce, request.workload.kind.as_str());
        instructions.params = request.workload.params.clone();
        // Disk workloads write to a host directory mounted at /scratch.
        let mut volume = None;
        if let Some(mib) = super::disk_mib(&request.workload) {
            let file_name = format!("{}.img", request.nonce);
            let made = self
                .ctx
                .scratch_for(&self.name)
                .and_then(|dir| super::scratch_file(&dir, &file_name, mib).map(|file| (dir, file)));
            match made {
                Ok((dir, file)) => {
                    instructions.scratch = Some(format!("{}/{file_name}", spec::SCRATCH_MOUNT));
                    volume = Some((dir, file));
                }
                Err(e) => return TrialResult::failed(format!("creating the scratch file: {e}")),
            }
        }
        let network_workload = request.workload.kind == "network";
        if network_workload {
            instructions.listen = Some(spec::listen_address(self.spec.network));
        }
        let mut body = spec::create_body(&self.spec, image, &self.ctx.run_id, &self.name, instructions.to_tokens());
        if let Some((dir, _)) = &volume {
            spec::mount_scratch(&mut body, dir);
        }
        let network = if network_workload {
            spec::enable_network(&mut body, self.spec.network);
            let resolve: Box<dyn FnOnce(u16) -> futures_util::future::BoxFuture<'static, Result<std::net::SocketAddr, String>> + Send> =
                match self.spec.network {
                    crate::scenario::ContainerNetwork::Host => Box::new(super::loopback),
                    crate::scenario::ContainerNetwork::Bridge => {
                        let (docker, name) = (docker.clone(), name.clone());
                        Box::new(move |_| Box::pin(async move { published_port(&docker, &name).await }))
                    }
                };
            super::network::NetworkClient::for_workload(&request.workload, resolve)
        } else {
            None
        };
        let deadline = tokio::time::Instant::now() + request.timeout;
        let mut result = TrialResult::default();
        let launched = Instant::now();
        let trial = tokio::time::timeout_at(
            deadline,
            trial(
                Launch {
                    docker,
                    name: &name,
                    nonce: &request.nonce,
                    launched,
                    deadline,
                },
                body,
                network,
                &mut result,
            ),
        )
        .await;
        if trial.is_err() {
            result.fail("timed out talking to the Docker daemon");
        }
        if let Some((_, file)) = volume {
            let _ = std::fs::remove_file(file);
        }
        // Remove whatever happened above; the removal is the last phase.
        let removing = Instant::now();
        match remove(docker, &name).await {
            Ok(()) => {
                let now = Instant::now();
                result.metrics.insert("remove_ms".into(), ms_between(removing, now));
                result.metrics.insert("exit_ms".into(), ms_between(launched, now));
            }
            Err(e) => result.fail(format!("removing container {name}: {e:#}")),
        }
        if result.error.is_some() {
            // A failed trial's partial timings would mix with good ones.
            result.metrics.remove("exit_ms");
        }
        result
    }

    fn not_applicable(&self, workload: &crate::scenario::Workload) -> Option<String> {
        match workload.kind.as_str() {
            "network" if self.no_network => Some(format!(
                "{} starts runtime `{}` with --network=none, so its containers have no network",
                self.spec.engine, self.spec.runtime
            )),
            // Measured here: 52 000 O_DIRECT random reads/s under runsc
            // against 13 600 natively on the same disk.
            "disk" if self.gvisor => Some(
                "gVisor accepts O_DIRECT but serves the I/O through its own file cache, so the disk workload would measure \
                 memory, not the disk"
                    .to_string(),
            ),
            _ => None,
        }
    }

    async fn cleanup(&mut self) -> Result<()> {
        match &self.docker {
            Some(docker) => remove_run_containers(docker, &self.ctx.run_id).await.map(|_| ()),
            None => Ok(()),
        }
    }
}

/// One container launch: which container, for which nonce, timed from when.
struct Launch<'a> {
    docker: &'a Docker,
    name: &'a str,
    nonce: &'a str,
    launched: Instant,
    deadline: tokio::time::Instant,
}

/// create → attach → start → ready → exit, timing each phase into `result`.
async fn trial(
    launch: Launch<'_>,
    body: bollard::models::ContainerCreateBody,
    network: Option<super::network::NetworkClient>,
    result: &mut TrialResult,
) {
    let Launch {
        docker,
        name,
        nonce,
        launched,
        deadline,
    } = launch;
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    if let Err(e) = docker.create_container(Some(options), body).await {
        return result.fail(format!("creating the container: {e}"));
    }
    let created = Instant::now();
    crate::fault::point("docker-after-create");
    result.metrics.insert("create_ms".into(), ms_between(launched, created));
    let attach = AttachContainerOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .logs(true)
        .build();
    let output = match docker.attach_container(name, Some(attach)).await {
        Ok(attached) => attached.output,
        Err(e) => return result.fail(format!("attaching to the container: {e}")),
    };
    let attached = Instant::now();
    result.metrics.insert("attach_ms".into(), ms_between(created, attached));
    let mut console = Console::new(nonce);
    let bytes = output.map(|item| match item {
        Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => Ok(message),
        Ok(LogOutput::StdIn { .. }) => Ok(bytes::Bytes::new()),
        Err(e) => Err(std::io::Error::other(e)),
    });
    // Read the attached output while the start call is in flight: the agent
    // may be ready before the engine answers the start request, and the
    // ready line must be stamped when it arrives, not when we look.
    let mut host_side = TrialResult::default();
    // Footprint sampling (an inspect call, then cgroup reads) starts at the
    // ready line, so it never competes with the start it would measure; the
    // cgroup's own peak covers what came before.
    let mut sampler = None;
    let start_sampling = || sampler = Some(footprint_sampler(docker.clone(), name.to_string()));
    let (started, end) = {
        let reading = read_console(&mut console, Box::pin(bytes), deadline, network, &mut host_side, start_sampling);
        tokio::pin!(reading);
        let start = docker.start_container(name, None);
        tokio::pin!(start);
        let mut end = None;
        let started = loop {
            tokio::select! {
                started = &mut start => break started,
                finished = &mut reading, if end.is_none() => end = Some(finished),
            }
        };
        match started {
            Err(e) => (Err(e), ConsoleEnd::Closed),
            Ok(()) => {
                let started_at = Instant::now();
                let end = match end {
                    Some(end) => end,
                    None => reading.await,
                };
                (Ok(started_at), end)
            }
        }
    };
    let started_at = match started {
        Ok(at) => at,
        Err(e) => {
            if let Some(s) = sampler {
                s.stop().await;
            }
            return result.fail(format!("starting the container: {e}"));
        }
    };
    result.metrics.insert("start_ms".into(), ms_between(attached, started_at));
    let series = match sampler {
        Some(s) => s.stop().await,
        None => Default::default(),
    };
    if let Some(ready_at) = console.report.ready_at {
        result.metrics.insert("start_to_ready_ms".into(), ms_between(attached, ready_at));
    }
    result.metrics.extend(host_side.metrics);
    if let Some(e) = host_side.error {
        result.fail(e);
    }
    collect_agent_report(&console, launched, end, result);
    series.record(console.report.ready_at, &mut result.metrics);
    if end == ConsoleEnd::TimedOut {
        return;
    }
    let mut wait = docker.wait_container(name, None);
    match wait.next().await {
        Some(Ok(_)) | None => {}
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
            if result.error.is_none() {
                result.fail(format!("the agent exited with status {code} {error}"));
            }
        }
        Some(Err(e)) => result.fail(format!("waiting for the container: {e}")),
    }
    result.metrics.insert("stopped_ms".into(), ms_between(launched, Instant::now()));
}

/// Starts one throwaway container with the target's runtime and settings, so
/// a runtime that is registered but cannot run here (crun on a cgroup v1 +
/// unified host, say) is a preflight error carrying the daemon's own reason,
/// not a run full of failed samples.
pub async fn probe_runtime(docker: &Docker, spec: &ContainerSpec, image: &str, run_id: &str, target: &str) -> Result<()> {
    let name = format!("{}{run_id}-{target}-probe", spec::NAME_PREFIX);
    let body = spec::create_body(spec, image, run_id, target, Instructions::new("probe", "boot").to_tokens());
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let outcome = async {
        docker.create_container(Some(options), body).await?;
        docker.start_container(&name, None).await
    }
    .await;
    let _ = remove(docker, &name).await;
    outcome.map_err(|e| {
        let reason = match &e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
            other => other.to_string(),
        };
        anyhow!("runtime `{}` cannot start a container on this host: {reason}", spec.runtime)
    })
}

/// The host port Docker published for the agent's port.
async fn published_port(docker: &Docker, name: &str) -> Result<std::net::SocketAddr, String> {
    let key = format!("{}/tcp", crate::agent::workloads::network::GUEST_PORT);
    let inspect = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| format!("inspecting the container: {e}"))?;
    let port = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|mut ports| ports.remove(&key))
        .flatten()
        .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("Docker published no host port for {key}"))?;
    Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Samples the container's cgroup memory plus its shim's RSS. Finding the
/// cgroup takes an inspect call, made inside the sampling task.
fn footprint_sampler(docker: Docker, name: String) -> Sampler {
    Sampler::start_with(async move {
        let inspect = docker.inspect_container(&name, None).await.ok()?;
        let id = inspect.id?;
        let pid = u32::try_from(inspect.state?.pid?).ok().filter(|p| *p > 0)?;
        // A container that has just exited leaves a pid whose cgroup reads
        // as the root (the whole host's memory, gigabytes): only a cgroup
        // named after this container counts.
        let dir = footprint::cgroup_dir(pid).filter(|d| d.to_string_lossy().contains(&id))?;
        let shim = footprint::parent(pid);
        Some(move || footprint::cgroup(&dir, shim))
    })
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
