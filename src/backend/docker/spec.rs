//! The container a trial creates, as data: one [`ContainerPlan`] from which
//! the Engine API body, the equivalent `docker run` / `podman run` line and
//! the settings recorded in `run.json` are all rendered. Pure, tested
//! without a daemon.

use crate::scenario::{ContainerNetwork, ContainerSpec, Engine};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Label carried by every container vmbench creates; its value is the run id,
/// so leftovers of one run (or of all runs) can be found and removed.
pub const RUN_LABEL: &str = "vmbench.run";
/// Label with the target name, for people reading `docker ps`.
pub const TARGET_LABEL: &str = "vmbench.target";
/// Name prefix of every container vmbench creates.
pub const NAME_PREFIX: &str = "vmbench-";
/// Where disk workloads find the host's scratch directory.
pub const SCRATCH_MOUNT: &str = "/scratch";

/// systemd in a guest tree, started as PID 1 for `init = "systemd"`.
pub const SYSTEMD_PATH: &str = "/lib/systemd/systemd";

/// Where the agent sits in the image.
pub const AGENT_PATH: &str = "/vmbench-agent";

const MIB: i64 = 1024 * 1024;

/// One setting of the container, as a value. Each knows its Engine API
/// field, its `docker run` flag(s) and its entry in `run.json`'s settings,
/// so the three renderings cannot drift apart.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerOption {
    /// `None`: no network at all; else the network workload's mode.
    Network(Option<ContainerNetwork>),
    CapDrop(&'static str),
    SecurityOpt(&'static str),
    ReadOnlyRoot,
    PidsLimit(i64),
    Cpus(f64),
    /// The memory limit in MiB. Swap is set to the same value (no swap, so
    /// the limit is the limit); one option keeps the two equal.
    Memory(u32),
    Runtime(String),
    Label(String, String),
    /// A host directory bind-mounted read-write at [`SCRATCH_MOUNT`].
    Scratch(PathBuf),
    /// The workload's ports in the container, each published on an
    /// ephemeral host port at `host_ip` (127.0.0.1, or the bridge's gateway
    /// for the NAT path).
    Publish {
        host_ip: String,
        ports: Vec<u16>,
    },
    /// The host CPUs the container may run on (`--cpuset-cpus`).
    CpuSet(String),
    /// The program the container starts, replacing the image's entrypoint.
    Entrypoint(String),
    /// An environment variable of the container's first process.
    Env(String, String),
    /// Capabilities given back after `CapDrop("ALL")`: what systemd as PID 1
    /// needs (mounting its own cgroup file system and the API file systems).
    CapAdd(Vec<&'static str>),
    /// A cgroup namespace of the container's own, in which systemd mounts
    /// a cgroup hierarchy it may write.
    CgroupnsPrivate,
    /// Empty tmpfs file systems mounted at these paths.
    Tmpfs(Vec<&'static str>),
    /// An anonymous volume at this path (removed with the container).
    Volume(&'static str),
    /// A terminal as the container's console: systemd as PID 1 points its
    /// own standard output at /dev/null and writes to `/dev/console`, which
    /// only exists, and reaches the engine's stream, with a terminal.
    Tty,
}

impl ContainerOption {
    /// Sets this option's field(s) in the Engine API body.
    pub fn apply(&self, body: &mut ContainerCreateBody) {
        fn host(body: &mut ContainerCreateBody) -> &mut HostConfig {
            body.host_config.get_or_insert_with(HostConfig::default)
        }
        match self {
            ContainerOption::Network(mode) => {
                host(body).network_mode = Some(network_name(*mode).to_string());
                body.network_disabled = Some(mode.is_none());
            }
            ContainerOption::CapDrop(cap) => host(body).cap_drop = Some(vec![cap.to_string()]),
            ContainerOption::SecurityOpt(opt) => host(body).security_opt = Some(vec![opt.to_string()]),
            ContainerOption::ReadOnlyRoot => host(body).readonly_rootfs = Some(true),
            ContainerOption::PidsLimit(n) => host(body).pids_limit = Some(*n),
            ContainerOption::Cpus(cpus) => host(body).nano_cpus = Some((cpus * 1e9).round() as i64),
            ContainerOption::Memory(mib) => {
                let host = host(body);
                host.memory = Some(i64::from(*mib) * MIB);
                host.memory_swap = host.memory;
            }
            ContainerOption::Runtime(name) => host(body).runtime = Some(name.clone()),
            ContainerOption::Label(key, value) => {
                body.labels.get_or_insert_with(HashMap::new).insert(key.clone(), value.clone());
            }
            ContainerOption::Scratch(dir) => host(body).binds.get_or_insert_with(Vec::new).push(scratch_bind(dir)),
            ContainerOption::Publish { host_ip, ports } => {
                let binding = PortBinding {
                    host_ip: Some(host_ip.clone()),
                    // Empty: the engine picks a free port, read back after start.
                    host_port: Some(String::new()),
                };
                let keys: Vec<String> = ports.iter().map(|p| port_key(*p)).collect();
                host(body).port_bindings = Some(keys.iter().map(|k| (k.clone(), Some(vec![binding.clone()]))).collect());
                body.exposed_ports = Some(keys);
            }
            ContainerOption::CpuSet(cpus) => host(body).cpuset_cpus = Some(cpus.clone()),
            ContainerOption::Entrypoint(path) => body.entrypoint = Some(vec![path.clone()]),
            ContainerOption::Env(key, value) => body.env.get_or_insert_with(Vec::new).push(format!("{key}={value}")),
            ContainerOption::CapAdd(caps) => host(body).cap_add = Some(caps.iter().map(|c| c.to_string()).collect()),
            ContainerOption::CgroupnsPrivate => host(body).cgroupns_mode = Some(bollard::models::HostConfigCgroupnsModeEnum::PRIVATE),
            ContainerOption::Tmpfs(paths) => host(body).tmpfs = Some(paths.iter().map(|p| (p.to_string(), String::new())).collect()),
            ContainerOption::Tty => body.tty = Some(true),
            ContainerOption::Volume(path) => body.volumes = Some(vec![path.to_string()]),
        }
    }

    /// The `docker run` / `podman run` flag(s) with their values.
    pub fn flags(&self) -> Vec<String> {
        let (flag, value) = match self {
            ContainerOption::Network(mode) => ("--network", network_name(*mode).to_string()),
            ContainerOption::CapDrop(cap) => ("--cap-drop", cap.to_string()),
            ContainerOption::SecurityOpt(opt) => ("--security-opt", opt.to_string()),
            ContainerOption::ReadOnlyRoot => return vec!["--read-only".to_string()],
            ContainerOption::PidsLimit(n) => ("--pids-limit", n.to_string()),
            ContainerOption::Cpus(cpus) => ("--cpus", cpus.to_string()),
            ContainerOption::Memory(mib) => {
                return ["--memory", &format!("{mib}m"), "--memory-swap", &format!("{mib}m")]
                    .map(String::from)
                    .to_vec();
            }
            ContainerOption::Runtime(name) => ("--runtime", name.clone()),
            ContainerOption::Label(key, value) => ("--label", format!("{key}={value}")),
            ContainerOption::Scratch(dir) => ("--volume", scratch_bind(dir)),
            ContainerOption::Publish { host_ip, ports } => {
                return ports
                    .iter()
                    .flat_map(|p| ["--publish".to_string(), format!("{host_ip}::{}", port_key(*p))])
                    .collect();
            }
            ContainerOption::CpuSet(cpus) => ("--cpuset-cpus", cpus.clone()),
            ContainerOption::Entrypoint(path) => ("--entrypoint", path.clone()),
            ContainerOption::Env(key, value) => ("--env", format!("{key}={value}")),
            ContainerOption::CapAdd(caps) => return repeated("--cap-add", caps),
            ContainerOption::CgroupnsPrivate => ("--cgroupns", "private".to_string()),
            ContainerOption::Tmpfs(paths) => return repeated("--tmpfs", paths),
            ContainerOption::Tty => return vec!["--tty".to_string()],
            ContainerOption::Volume(path) => ("--volume", path.to_string()),
        };
        vec![flag.to_string(), value]
    }

    /// The entry recorded in `run.json`'s settings.
    pub fn setting(&self) -> (String, String) {
        let (key, value) = match self {
            ContainerOption::Network(mode) => ("network", network_name(*mode).to_string()),
            ContainerOption::CapDrop(cap) => ("cap_drop", cap.to_string()),
            ContainerOption::SecurityOpt(opt) => ("security_opt", opt.to_string()),
            ContainerOption::ReadOnlyRoot => ("read_only_rootfs", "true".to_string()),
            ContainerOption::PidsLimit(n) => ("pids_limit", n.to_string()),
            ContainerOption::Cpus(cpus) => ("cpus", cpus.to_string()),
            ContainerOption::Memory(mib) => ("memory_mib", mib.to_string()),
            ContainerOption::Runtime(name) => ("runtime", name.clone()),
            ContainerOption::Label(key, value) => return (format!("label.{key}"), value.clone()),
            ContainerOption::Scratch(dir) => ("scratch", scratch_bind(dir)),
            ContainerOption::Publish { host_ip, ports } => (
                "publish",
                ports
                    .iter()
                    .map(|p| format!("{host_ip}::{}", port_key(*p)))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ContainerOption::CpuSet(cpus) => ("cpuset", cpus.clone()),
            ContainerOption::Entrypoint(path) => ("entrypoint", path.clone()),
            ContainerOption::Env(key, value) => return (format!("env.{key}"), value.clone()),
            ContainerOption::CapAdd(caps) => ("cap_add", caps.join(",")),
            ContainerOption::CgroupnsPrivate => ("cgroupns", "private".to_string()),
            ContainerOption::Tmpfs(paths) => ("tmpfs", paths.join(",")),
            ContainerOption::Tty => ("tty", "true".to_string()),
            ContainerOption::Volume(path) => ("volume", path.to_string()),
        };
        (key.to_string(), value)
    }
}

fn repeated(flag: &str, values: &[&str]) -> Vec<String> {
    values.iter().flat_map(|v| [flag.to_string(), v.to_string()]).collect()
}

fn network_name(mode: Option<ContainerNetwork>) -> &'static str {
    mode.map_or("none", ContainerNetwork::engine_mode)
}

fn scratch_bind(dir: &Path) -> String {
    format!("{}:{SCRATCH_MOUNT}:rw", dir.display())
}

/// Where an application workload's server keeps its files in a container
/// with `storage = "volume"`: an anonymous volume mounted there.
pub const SERVER_DATA: &str = "/var/lib/vmbench";

/// The engine's key of a TCP port in the container (`7777/tcp`).
pub fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

/// How a host-driven workload's container is reached: the path and, for a
/// published one, the ports to publish and the host address to publish them
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub mode: ContainerNetwork,
    pub ports: Vec<u16>,
    /// The bridge's gateway address, for `published-nat`.
    pub nat_ip: Option<String>,
}

impl Reach {
    /// `mode` for `ports`, published on 127.0.0.1 where it publishes.
    pub fn new(mode: ContainerNetwork, ports: &[u16]) -> Self {
        Reach {
            mode,
            ports: ports.to_vec(),
            nat_ip: None,
        }
    }
}

/// The options that give a container a host-driven workload's network: a
/// bridge (its ports published on 127.0.0.1 or on the bridge's gateway, or
/// not at all), or the host's own stack.
fn network_options(reach: &Reach) -> Vec<ContainerOption> {
    let mut options = vec![ContainerOption::Network(Some(reach.mode))];
    let host_ip = match reach.mode {
        ContainerNetwork::Host | ContainerNetwork::Bridge => return options,
        ContainerNetwork::Published => "127.0.0.1".to_string(),
        ContainerNetwork::PublishedNat => reach.nat_ip.clone().unwrap_or_else(|| "127.0.0.1".into()),
    };
    options.push(ContainerOption::Publish {
        host_ip,
        ports: reach.ports.clone(),
    });
    options
}

/// One container launch: the engine, image, command and options from which
/// the API body, the command line and the recorded settings are all drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    pub engine: Engine,
    pub image: String,
    pub cmd: Vec<String>,
    pub options: Vec<ContainerOption>,
    /// How the network workload's containers get a network (see
    /// [`ContainerPlan::enable_network`]); recorded with the settings,
    /// since every other launch has none.
    pub network_workload: ContainerNetwork,
    /// Where an application workload's server keeps its files; recorded
    /// with the settings.
    pub server_storage: crate::scenario::ServerStorage,
}

impl ContainerPlan {
    /// Safe defaults plus the scenario's limits: no network, every
    /// capability dropped, no privilege escalation, read-only root, a pids
    /// limit, the CPU and memory limits and the runtime.
    pub fn new(spec: &ContainerSpec, image: &str, cmd: Vec<String>) -> Self {
        let options = vec![
            ContainerOption::Network(None),
            ContainerOption::CapDrop("ALL"),
            ContainerOption::SecurityOpt("no-new-privileges"),
            ContainerOption::ReadOnlyRoot,
            ContainerOption::PidsLimit(spec.pids_limit),
            ContainerOption::Cpus(spec.cpus),
            ContainerOption::Memory(spec.memory_mib),
            ContainerOption::Runtime(spec.runtime.clone()),
        ];
        ContainerPlan {
            engine: spec.engine,
            image: image.to_string(),
            cmd,
            options,
            network_workload: spec.network,
            server_storage: spec.storage,
        }
    }

    /// Adds the labels by which a run's leftovers are found ([`RUN_LABEL`])
    /// and people reading `docker ps` see the target ([`TARGET_LABEL`]).
    pub fn labelled(mut self, run_id: &str, target: &str) -> Self {
        self.options.push(ContainerOption::Label(RUN_LABEL.to_string(), run_id.to_string()));
        self.options
            .push(ContainerOption::Label(TARGET_LABEL.to_string(), target.to_string()));
        self
    }

    /// A launch of `spec`'s guest carrying the agent's instruction `tokens`:
    /// vmbench's agent image takes them as its command; a guest tree whose
    /// init is the agent starts the agent with them; a guest booting systemd
    /// gets them in PID 1's environment (the agent's unit reads them there)
    /// and only what systemd needs beyond the default hardening: two
    /// capabilities, a cgroup namespace, tmpfs mounts and a terminal for
    /// its console; an image run as it is (`init = "image"`) gets no agent
    /// and its own command, with a network.
    pub fn for_guest(spec: &ContainerSpec, image: &str, tokens: Vec<String>) -> Self {
        use crate::scenario::GuestInit;
        match spec.guest.as_ref().map(|g| g.init) {
            None => ContainerPlan::new(spec, image, tokens),
            // The image's own entrypoint and command, on the network path a
            // TCP ready probe (or the service itself) needs.
            Some(GuestInit::Image) => {
                let mut plan = ContainerPlan::new(spec, image, Vec::new());
                plan.enable_network(&Reach::new(spec.network, &[]));
                plan
            }
            Some(GuestInit::Agent) => {
                let mut plan = ContainerPlan::new(spec, image, tokens);
                plan.options
                    .push(ContainerOption::Entrypoint(crate::guest::rootfs::AGENT_PATH.to_string()));
                plan
            }
            Some(GuestInit::Systemd) => {
                let mut plan = ContainerPlan::new(spec, image, Vec::new());
                // Probed for readiness: the agent's unit is told nothing (and
                // stays quiet), the probe needs the container's network, and
                // the services it waits for what a server needs (a writable
                // root, the engine's default capabilities), as `docker run`
                // gives them.
                let probed = spec.guest.as_ref().is_some_and(|g| g.ready.is_some());
                let tokens = if probed { Vec::new() } else { tokens };
                if probed {
                    plan.enable_network(&Reach::new(spec.network, &[]));
                    plan.serve_application(spec.storage);
                }
                plan.options.extend([
                    ContainerOption::Entrypoint(SYSTEMD_PATH.to_string()),
                    ContainerOption::Env("container".into(), spec.engine.as_str().into()),
                    ContainerOption::Env(crate::protocol::INSTRUCTIONS_ENV.into(), tokens.join(" ")),
                    ContainerOption::CapAdd(vec!["SYS_ADMIN", "DAC_OVERRIDE"]),
                    ContainerOption::CgroupnsPrivate,
                    ContainerOption::Tmpfs(vec!["/run", "/run/lock", "/tmp", "/sys/fs/cgroup"]),
                    ContainerOption::Tty,
                ]);
                plan
            }
        }
    }

    /// Pins the container to `cpuset` (the run's target CPUs), if any.
    pub fn pinned(mut self, cpuset: Option<&crate::scenario::CpuSet>) -> Self {
        self.options.extend(cpuset.map(|s| ContainerOption::CpuSet(s.to_string())));
        self
    }

    /// Bind-mounts `dir` read-write at [`SCRATCH_MOUNT`]; the root stays read-only.
    pub fn mount_scratch(&mut self, dir: &Path) {
        self.options.push(ContainerOption::Scratch(dir.to_path_buf()));
    }

    /// What a server in the container needs that the default hardening
    /// takes away, as the seed lab's `docker run nginx` gives it: the
    /// engine's default capabilities (nginx's workers set their groups,
    /// MariaDB changes file ownership) and a writable root (the container
    /// layer holds the server's files: recorded as their file system).
    /// With `ServerStorage::Volume` the server's files go to an anonymous
    /// volume instead (the agent's `TMPDIR` points there).
    pub fn serve_application(&mut self, storage: crate::scenario::ServerStorage) {
        self.options
            .retain(|o| !matches!(o, ContainerOption::CapDrop(_) | ContainerOption::ReadOnlyRoot));
        if storage == crate::scenario::ServerStorage::Volume {
            self.options.extend([
                ContainerOption::Volume(SERVER_DATA),
                ContainerOption::Env("TMPDIR".into(), SERVER_DATA.into()),
            ]);
        }
    }

    /// Replaces "no network" (or an earlier mode) with the network
    /// workload's network.
    pub fn enable_network(&mut self, reach: &Reach) {
        self.options
            .retain(|o| !matches!(o, ContainerOption::Network(_) | ContainerOption::Publish { .. }));
        self.options.extend(network_options(reach));
    }

    /// The Engine API body. vmbench attaches to the output and removes the
    /// container itself, after reading its exit.
    pub fn body(&self) -> ContainerCreateBody {
        let mut body = ContainerCreateBody {
            image: Some(self.image.clone()),
            // No command: the image's own (an overridden entrypoint takes
            // none of the image's command with it).
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            host_config: Some(HostConfig {
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        for option in &self.options {
            option.apply(&mut body);
        }
        body
    }

    /// The engine's own `run` line that repeats this launch by hand; `--rm`
    /// stands for the removal vmbench does itself.
    pub fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![self.engine.as_str().to_string(), "run".to_string(), "--rm".to_string()];
        argv.extend(self.options.iter().flat_map(ContainerOption::flags));
        argv.push(self.image.clone());
        argv.extend(self.cmd.iter().cloned());
        argv
    }

    /// The OCI runtime the container runs under.
    pub fn runtime(&self) -> &str {
        self.options
            .iter()
            .find_map(|o| match o {
                ContainerOption::Runtime(name) => Some(name.as_str()),
                _ => None,
            })
            .unwrap_or("the default runtime")
    }

    /// The settings recorded in `run.json` next to the numbers.
    pub fn settings(&self) -> BTreeMap<String, String> {
        let mut settings: BTreeMap<String, String> = self.options.iter().map(ContainerOption::setting).collect();
        settings.insert("network_workload".to_string(), self.network_workload.as_str().to_string());
        settings.insert("server_storage".to_string(), self.server_storage.as_str().to_string());
        settings
    }
}

/// The API body of a labelled launch of `spec` (see [`ContainerPlan::new`]).
pub fn create_body(spec: &ContainerSpec, image: &str, run_id: &str, target: &str, cmd: Vec<String>) -> ContainerCreateBody {
    ContainerPlan::new(spec, image, cmd).labelled(run_id, target).body()
}

/// Bind-mounts `dir` read-write at [`SCRATCH_MOUNT`] in an existing body.
pub fn mount_scratch(body: &mut ContainerCreateBody, dir: &Path) {
    ContainerOption::Scratch(dir.to_path_buf()).apply(body);
}

/// Gives an existing body the network a host-driven workload needs: a
/// bridge, with the workload's ports published on ephemeral host ports (on
/// 127.0.0.1, or on the bridge's gateway for `published-nat`) where the
/// path publishes, or the host's own network stack.
pub fn enable_network(body: &mut ContainerCreateBody, reach: &Reach) {
    for option in network_options(reach) {
        option.apply(body);
    }
}

/// Where the agent listens in the container for `mode`.
pub fn listen_address(mode: ContainerNetwork) -> String {
    match mode {
        ContainerNetwork::Host => "127.0.0.1:0".to_string(),
        ContainerNetwork::Bridge | ContainerNetwork::Published | ContainerNetwork::PublishedNat => {
            format!("0.0.0.0:{}", crate::protocol::AGENT_PORT)
        }
    }
}

/// The `docker run` (or `podman run`) line that repeats one launch by hand.
pub fn reproduce(spec: &ContainerSpec, image: &str, cmd: &[String]) -> Vec<String> {
    ContainerPlan::new(spec, image, cmd.to_vec()).argv()
}

/// The settings recorded in `run.json` next to the numbers.
pub fn settings(spec: &ContainerSpec) -> BTreeMap<String, String> {
    ContainerPlan::new(spec, "", Vec::new()).settings()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            engine: Engine::Docker,
            runtime: "runc".into(),
            cpus: 1.5,
            memory_mib: 256,
            host: None,
            pids_limit: 64,
            network: crate::scenario::ContainerNetwork::Published,
            guest: None,
            storage: crate::scenario::ServerStorage::Layer,
            agent: None,
        }
    }

    fn guest(init: crate::scenario::GuestInit) -> ContainerSpec {
        ContainerSpec {
            guest: Some(crate::scenario::Guest {
                name: "debian".into(),
                source: crate::scenario::GuestSource::Rootfs(crate::scenario::Rootfs {
                    distro: crate::scenario::Distro::Debian,
                    suite: "bookworm".into(),
                    packages: vec![],
                    mirror: crate::scenario::DEFAULT_DEBIAN_MIRROR.into(),
                }),
                init,
                ready: None,
            }),
            ..spec()
        }
    }

    #[test]
    fn a_systemd_guest_gets_its_instructions_in_the_environment_and_only_what_systemd_needs() {
        let tokens = vec!["vmbench.nonce=ab".to_string(), "vmbench.workload=boot".to_string()];
        let plan = ContainerPlan::for_guest(&guest(crate::scenario::GuestInit::Systemd), "img", tokens.clone());
        let body = plan.body();
        assert_eq!(body.entrypoint, Some(vec![SYSTEMD_PATH.to_string()]));
        assert_eq!(body.cmd, None, "no command of the image's goes to systemd");
        let env = body.env.clone().unwrap();
        assert!(env.contains(&"VMBENCH_INSTRUCTIONS=vmbench.nonce=ab vmbench.workload=boot".to_string()));
        assert!(env.contains(&"container=docker".to_string()));
        let host = body.host_config.unwrap();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, Some(vec!["SYS_ADMIN".to_string(), "DAC_OVERRIDE".to_string()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert!(host.tmpfs.unwrap().contains_key("/sys/fs/cgroup"));
        assert_eq!(body.tty, Some(true));
        let settings = plan.settings();
        assert_eq!(settings["cap_add"], "SYS_ADMIN,DAC_OVERRIDE");
        assert_eq!(settings["cgroupns"], "private");
        let argv = plan.argv();
        assert!(argv.windows(2).any(|w| w == ["--cap-add", "DAC_OVERRIDE"]));
        assert!(argv.iter().any(|a| a == "--tty"));
        // The agent as the guest's init: the agent image's command line, from the tree's path.
        let agent = ContainerPlan::for_guest(&guest(crate::scenario::GuestInit::Agent), "img", tokens.clone()).body();
        assert_eq!(agent.entrypoint, Some(vec![crate::guest::rootfs::AGENT_PATH.to_string()]));
        assert_eq!(agent.cmd, Some(tokens.clone()));
        assert!(agent.host_config.unwrap().cap_add.is_none());
        // The image as it is: its own entrypoint and command, a network, no agent.
        let own = ContainerPlan::for_guest(&guest(crate::scenario::GuestInit::Image), "img", tokens).body();
        assert_eq!((own.entrypoint, own.cmd), (None, None));
        assert_eq!(own.host_config.unwrap().network_mode.as_deref(), Some("bridge"));
    }

    #[test]
    fn containers_are_locked_down_and_limited() {
        let body = create_body(&spec(), "vmbench/agent:abc", "run1", "docker", vec!["vmbench.nonce=x".into()]);
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.memory, Some(256 * MIB));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.runtime.as_deref(), Some("runc"));
        assert_eq!(body.labels.as_ref().unwrap()[RUN_LABEL], "run1");
        assert_eq!(body.cmd.clone().unwrap(), vec!["vmbench.nonce=x".to_string()]);
        assert_eq!(host.binds, None);
        let mut body = body;
        mount_scratch(&mut body, std::path::Path::new("/cache/scratch/r/t"));
        assert_eq!(
            body.host_config.unwrap().binds.unwrap(),
            vec!["/cache/scratch/r/t:/scratch:rw".to_string()]
        );
    }

    /// Every leaf of `value` that is set, by its path of keys.
    fn leaves(value: &serde_json::Value, path: Vec<String>, out: &mut BTreeMap<Vec<String>, serde_json::Value>) {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    let mut path = path.clone();
                    path.push(key.clone());
                    leaves(child, path, out);
                }
            }
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }

    fn body_leaves(body: &ContainerCreateBody) -> BTreeMap<Vec<String>, serde_json::Value> {
        let mut out = BTreeMap::new();
        leaves(&serde_json::to_value(body).unwrap(), Vec::new(), &mut out);
        out
    }

    #[test]
    fn the_body_the_command_line_and_the_settings_agree_option_by_option() {
        let mut plan = ContainerPlan::new(&spec(), "img:1", vec!["vmbench.nonce=x".into()]).labelled("run1", "c");
        plan.mount_scratch(Path::new("/cache/scratch/r/c"));
        plan.enable_network(&Reach::new(ContainerNetwork::Published, &[7777]));
        // A server's container, its files on a volume: every option agrees too.
        plan.serve_application(crate::scenario::ServerStorage::Volume);
        let (body, argv, settings) = (body_leaves(&plan.body()), plan.argv(), plan.settings());
        // What no option explains: the image, the command and how vmbench
        // drives the container (attached, no TTY, removed by vmbench).
        let bare = ContainerPlan {
            options: Vec::new(),
            ..plan.clone()
        };
        let mut explained = body_leaves(&bare.body());
        let mut expected_argv = vec!["docker".to_string(), "run".into(), "--rm".into()];
        let mut expected_keys = vec!["network_workload".to_string(), "server_storage".to_string()];
        for option in &plan.options {
            // Its API fields are set, to the values the whole body carries.
            let mut alone = ContainerCreateBody::default();
            option.apply(&mut alone);
            let fields = body_leaves(&alone);
            assert!(!fields.is_empty(), "{option:?} sets no API field");
            for (path, value) in fields {
                assert_eq!(body.get(&path), Some(&value), "{option:?} at {path:?}");
                explained.insert(path, value);
            }
            // Its flags are on the command line, and its entry in the settings.
            let flags = option.flags();
            assert!(flags[0].starts_with("--"), "{option:?} has no flag");
            assert!(argv.windows(flags.len()).any(|w| w == flags), "{option:?} missing from {argv:?}");
            expected_argv.extend(flags);
            let (key, value) = option.setting();
            assert_eq!(settings.get(&key), Some(&value), "{option:?} not in the settings");
            expected_keys.push(key);
        }
        // Nothing else: no body field, flag or setting that no option owns.
        assert_eq!(explained, body);
        expected_argv.extend(["img:1".to_string(), "vmbench.nonce=x".to_string()]);
        assert_eq!(argv, expected_argv);
        expected_keys.sort();
        assert_eq!(settings.into_keys().collect::<Vec<_>>(), expected_keys);
    }

    #[test]
    fn podman_targets_reproduce_with_podman() {
        let podman = ContainerSpec {
            engine: Engine::Podman,
            ..spec()
        };
        let argv = reproduce(&podman, "img:1", &["vmbench.nonce=repro".to_string()]);
        assert!(argv.join(" ").starts_with("podman run --rm --network none"), "{argv:?}");
        assert_eq!(reproduce(&spec(), "img:1", &[])[0], "docker");
    }

    #[test]
    fn the_settings_record_the_locked_down_defaults_and_the_limits() {
        let settings = settings(&spec());
        for (key, value) in [
            ("network", "none"),
            ("cap_drop", "ALL"),
            ("security_opt", "no-new-privileges"),
            ("read_only_rootfs", "true"),
            ("pids_limit", "64"),
            ("memory_mib", "256"),
            ("cpus", "1.5"),
            ("runtime", "runc"),
            ("network_workload", "published"),
        ] {
            assert_eq!(settings.get(key).map(String::as_str), Some(value), "{key}");
        }
    }

    #[test]
    fn the_network_workload_gets_its_network_the_same_way_in_body_and_plan() {
        let mut plan = ContainerPlan::new(&spec(), "img:1", Vec::new());
        let mut body = plan.body();
        enable_network(&mut body, &Reach::new(ContainerNetwork::Published, &[7777]));
        plan.enable_network(&Reach::new(ContainerNetwork::Published, &[7777]));
        assert_eq!(body, plan.body());
        assert_eq!(body.network_disabled, Some(false));
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let binding = &host.port_bindings.unwrap()["7777/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert!(plan.argv().join(" ").contains("--network bridge --publish 127.0.0.1::7777/tcp"));
        plan.enable_network(&Reach::new(ContainerNetwork::Host, &[7777]));
        assert_eq!(plan.body().host_config.unwrap().network_mode.as_deref(), Some("host"));
        assert!(!plan.argv().iter().any(|a| a == "--publish"));
    }

    #[test]
    fn reproduce_line_matches_the_api_settings() {
        let argv = reproduce(&spec(), "img:1", &["vmbench.nonce=repro".to_string()]);
        let joined = argv.join(" ");
        assert!(joined.starts_with("docker run --rm --network none --cap-drop ALL"));
        assert!(joined.contains("--cpus 1.5 --memory 256m --memory-swap 256m --runtime runc img:1 vmbench.nonce=repro"));
    }
}
