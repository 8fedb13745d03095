//! Scenario files: TOML in, a typed [`Scenario`] out, or an error that names
//! the file, line and key. See `scenarios/README.md` for every key.

mod cpuset;
mod error;
mod guests;
mod raw;
pub mod shipped;
mod targets;
mod validate;

pub use cpuset::CpuSet;
pub use error::{line_column, ScenarioError};
pub use guests::{is_image_reference, DEFAULT_DEBIAN_MIRROR};

pub use crate::protocol::WorkloadKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated scenario: targets × workloads × repetitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Measured repetitions per target and workload (with `auto`, the most).
    pub repetitions: u32,
    /// `repetitions = "auto"`: stop early once the headline metric is steady.
    pub auto: Option<AutoRepetitions>,
    /// Repetitions run first, recorded with `warmup = true`, not summarised.
    pub warmup: u32,
    /// Limit for one repetition, launch to teardown.
    pub timeout: Duration,
    /// The host CPUs every target runs on (vmbench keeps the others);
    /// `None`: no pinning (`cpuset = "all"`, or a one-CPU host).
    pub cpuset: Option<CpuSet>,
    /// How the memory and CPU of the targets vmbench starts itself (QEMU,
    /// the native agent) are accounted.
    pub accounting: Accounting,
    /// The `[[guest]]` systems; targets carry a copy of the one they name.
    pub guests: Vec<Guest>,
    pub targets: Vec<Target>,
    pub workloads: Vec<Workload>,
    /// Where the scenario came from and its exact text, kept with the results.
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub spec: TargetSpec,
    /// `optional = true`: when preflight finds the target cannot run on this
    /// host, the run goes on and reports its workloads as not applicable,
    /// with the reason, instead of stopping with status 2.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    Vm(VmSpec),
    Container(ContainerSpec),
    Native(NativeSpec),
}

/// A native target: the agent as a child process of vmbench.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeSpec {
    /// Another program to run in the agent's place (it must speak the
    /// agent's protocol); `None`: vmbench's own agent. For testing vmbench
    /// against a misbehaving guest, or a modified agent, without rebuilding.
    pub agent: Option<PathBuf>,
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self.spec {
            TargetSpec::Vm(_) => TargetKind::Vm,
            TargetSpec::Container(_) => TargetKind::Container,
            TargetSpec::Native(_) => TargetKind::Native,
        }
    }
}

/// What isolates a target: a VM, a container or nothing (the bare host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Vm,
    Container,
    #[default]
    Native,
}

impl TargetKind {
    /// `vm`, `container` or `native`, as in the scenario.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Vm => "vm",
            TargetKind::Container => "container",
            TargetKind::Native => "native",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A guest system (a `[[guest]]` table): VM and container targets that name
/// it run it instead of vmbench's minimal guest (the agent alone). A built
/// root file system becomes both the container image and the VM disk; the
/// user's own container image runs in containers only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guest {
    pub name: String,
    pub source: GuestSource,
    pub init: GuestInit,
    /// How the host tells the guest is up when no agent says so: required
    /// with `init = "image"`, optional with `init = "systemd"` (the agent's
    /// unit is then told nothing and stays quiet). A probed guest runs the
    /// boot workload only.
    pub ready: Option<ReadyProbe>,
}

/// A readiness probe the host runs against a target that has no agent to
/// say it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadyProbe {
    /// A TCP connection to this port succeeds (through the target's
    /// network path: the container's bridge address, or the host's).
    Tcp(u16),
    /// A line of the console (the container's output) matches this regular
    /// expression (`regex-lite` syntax).
    Console(String),
    /// An HTTP/1.1 `GET path` on this port answers with this status.
    Http { port: u16, path: String, status: u16 },
}

impl ReadyProbe {
    /// The guest port a `tcp` or `http` probe connects to.
    pub fn port(&self) -> Option<u16> {
        match self {
            ReadyProbe::Tcp(port) | ReadyProbe::Http { port, .. } => Some(*port),
            ReadyProbe::Console(_) => None,
        }
    }

    /// `tcp:80`, `console:<pattern>`: as recorded with the results.
    pub fn describe(&self) -> String {
        match self {
            ReadyProbe::Tcp(port) => format!("tcp:{port}"),
            ReadyProbe::Console(pattern) => format!("console:{pattern}"),
            ReadyProbe::Http { port, path, status } => format!("http:{port}{path}={status}"),
        }
    }
}

impl Guest {
    /// The root file system vmbench builds, for a `rootfs` guest.
    pub fn rootfs(&self) -> Option<&Rootfs> {
        match &self.source {
            GuestSource::Rootfs(rootfs) => Some(rootfs),
            _ => None,
        }
    }
}

/// Where a guest system comes from: exactly one per `[[guest]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuestSource {
    /// A distribution's tree, built by vmbench (`rootfs = {...}`).
    Rootfs(Rootfs),
    /// An image already in the container engine (`image = "name:tag"`);
    /// never pulled.
    Image(String),
    /// A Dockerfile built through the engine's API, its directory as the
    /// context (`dockerfile = "path"`, resolved against the scenario's
    /// directory).
    Dockerfile(PathBuf),
    /// A `docker save` / OCI archive loaded through the engine's API
    /// (`image_archive = "path"`, resolved likewise).
    ImageArchive(PathBuf),
    /// A VM disk image of the user's own (`disk = "path"`, resolved
    /// likewise), booted by firmware or with a `kernel` the target gives;
    /// never written (QEMU's `snapshot=on`).
    Disk(DiskImage),
}

/// A VM disk image file and the format its first bytes say it has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiskImage {
    pub path: PathBuf,
    pub format: crate::disk_image::DiskFormat,
    /// What its header says, as recorded (`qcow2 (version 3)`).
    pub detected: String,
    /// A bare file system (no partition table, so no bootloader) boots only
    /// with a kernel given.
    pub bare_file_system: bool,
}

impl GuestSource {
    /// The scenario key that names this source.
    pub fn key(&self) -> &'static str {
        match self {
            GuestSource::Rootfs(_) => "rootfs",
            GuestSource::Image(_) => "image",
            GuestSource::Dockerfile(_) => "dockerfile",
            GuestSource::ImageArchive(_) => "image_archive",
            GuestSource::Disk(_) => "disk",
        }
    }

    /// A container image of the user's own (`image`, `dockerfile`,
    /// `image_archive`).
    pub fn is_own_image(&self) -> bool {
        matches!(
            self,
            GuestSource::Image(_) | GuestSource::Dockerfile(_) | GuestSource::ImageArchive(_)
        )
    }

    /// The user's own VM disk image.
    pub fn disk(&self) -> Option<&DiskImage> {
        match self {
            GuestSource::Disk(disk) => Some(disk),
            _ => None,
        }
    }
}

/// A distribution's root file system, built with `mmdebstrap`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rootfs {
    pub distro: Distro,
    /// The release (`bookworm`).
    pub suite: String,
    /// Packages beyond vmbench's recipe, sorted and without duplicates.
    pub packages: Vec<String>,
    /// The package archive.
    pub mirror: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distro {
    Debian,
}

impl Distro {
    pub fn as_str(self) -> &'static str {
        match self {
            Distro::Debian => "debian",
        }
    }
}

/// What runs as the guest's PID 1, and so what "ready" means. (`init =
/// "image"`, the image's own entrypoint without the agent, is refused at
/// validation until ready probes exist: nothing else could say when such a
/// guest is up.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestInit {
    /// The agent itself (`init=` in the VM, the entrypoint in the
    /// container): ready when the agent starts.
    Agent,
    /// systemd, with the agent as a unit ordered after `multi-user.target`:
    /// ready when the system has reached it, with systemd's own phases.
    Systemd,
    /// The image's own entrypoint and command, no agent: ready when the
    /// guest's `ready` probe says so; only the boot workload applies.
    Image,
}

impl GuestInit {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestInit::Agent => "agent",
            GuestInit::Systemd => "systemd",
            GuestInit::Image => "image",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    pub backend: VmBackend,
    pub machine: Machine,
    pub accel: AccelChoice,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub kernel: KernelChoice,
    /// The initramfs a direct boot of the user's own disk starts with.
    pub initrd: Option<PathBuf>,
    /// Extra kernel command-line parameters, appended after vmbench's own.
    pub kernel_args: Vec<String>,
    /// The QEMU binary; `None` looks up `qemu-system-x86_64` on PATH.
    pub qemu: Option<PathBuf>,
    /// libvirt's connection URI (libvirt backend only).
    pub uri: String,
    /// The guest system to boot from a disk; `None`: vmbench's initramfs.
    pub guest: Option<Guest>,
    /// How a guest system's disk is booted.
    pub boot: BootPath,
    /// QEMU's seccomp sandbox (qemu backend only; libvirt applies its own,
    /// as its `qemu.conf` says). `false` only for debugging.
    pub sandbox: bool,
    /// The user QEMU switches to once it has opened what it needs
    /// (`-runas`; qemu backend only). `None`: vmbench's own user.
    pub run_as: Option<String>,
    /// How the host-driven workloads reach the guest.
    pub network: VmNetwork,
    /// A static program to boot in the agent's place (`/init`, or the
    /// guest's agent); `None`: vmbench's own agent.
    pub agent: Option<PathBuf>,
}

/// A VM's network path for the host-driven workloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VmNetwork {
    /// QEMU's user network (slirp) with forwarded 127.0.0.1 ports.
    #[default]
    User,
    /// A tap device on a Linux bridge vmbench makes, the guest at its own
    /// address; vhost-net under KVM (qemu backend only).
    Tap,
}

impl VmNetwork {
    pub fn as_str(self) -> &'static str {
        match self {
            VmNetwork::User => "user",
            VmNetwork::Tap => "tap",
        }
    }
}

/// How a VM reaches a guest system's kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BootPath {
    /// QEMU loads the kernel and initramfs itself (`-kernel`, `-initrd`).
    #[default]
    Direct,
    /// SeaBIOS, then the MBR code and syslinux on the disk.
    Bios,
    /// OVMF, then systemd-boot on the disk's EFI system partition.
    Uefi,
}

impl BootPath {
    pub fn as_str(self) -> &'static str {
        match self {
            BootPath::Direct => "direct",
            BootPath::Bios => "bios",
            BootPath::Uefi => "uefi",
        }
    }
}

/// `repetitions = "auto"`: repeat each target × workload until the exact 95%
/// interval of the median of its headline metric is within ±`target_cov` of
/// the median at two consecutive sample sizes of at least 6 (and at least
/// `min` repetitions), or `max` is reached. The key keeps its old name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoRepetitions {
    pub min: u32,
    pub max: u32,
    pub target_cov: f64,
}

/// The libvirt URI a libvirt target uses unless it sets `uri`.
pub const DEFAULT_LIBVIRT_URI: &str = "qemu:///system";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmBackend {
    Qemu,
    Libvirt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Microvm,
    Q35,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when a real guest boots under it, TCG otherwise.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelChoice {
    /// `$VMBENCH_KERNEL`, the cache, then `/boot/vmlinuz-$(uname -r)`: the
    /// distribution's kernel (`"auto"` or `"distro"`).
    Auto,
    /// A small kernel vmbench builds from the kernel source package.
    Minimal,
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub engine: Engine,
    /// OCI runtime name as the engine knows it (`runc`, `crun`, `runsc`).
    pub runtime: String,
    /// CPU limit in cores (Docker's `--cpus`).
    pub cpus: f64,
    pub memory_mib: u32,
    /// Engine address such as `unix:///var/run/docker.sock`; `None` honours
    /// `DOCKER_HOST` and then the default socket.
    pub host: Option<String>,
    pub pids_limit: i64,
    /// How the network workload reaches the container: `bridge` (a port
    /// published on 127.0.0.1) or `host` (the host's network stack). Every
    /// other workload runs with no network at all.
    pub network: ContainerNetwork,
    /// The guest system's image to run; `None`: vmbench's agent-only image.
    pub guest: Option<Guest>,
    /// Where an application workload's server keeps its files.
    pub storage: ServerStorage,
    /// A static program to run in the agent's place (the entrypoint, or
    /// the guest's agent); `None`: vmbench's own agent.
    pub agent: Option<PathBuf>,
}

/// Where a container's server (an application workload's) keeps its files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerStorage {
    /// The container's own writable layer (overlay).
    #[default]
    Layer,
    /// An anonymous volume the engine makes for the launch (on the host's
    /// file system) and removes with the container.
    Volume,
}

impl ServerStorage {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStorage::Layer => "layer",
            ServerStorage::Volume => "volume",
        }
    }
}

/// How vmbench accounts the memory and CPU of the targets it starts itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Accounting {
    /// The process: QEMU's RSS, PSS and CPU time from /proc, the native
    /// agent's own RSS and CPU time.
    Process,
    /// A cgroup of its own per launch, as a container has (the default), so
    /// every target's `mem_*` and `host_cpu_ms` are the same kind of number.
    /// Joining it is a cgroup migration, which on cgroup v1 hosts waits for
    /// an RCU grace period (2-16 ms here); that is vmbench's own work and is
    /// left out of the launch's clock (`cgroup_join_ms`).
    #[default]
    Cgroup,
}

impl Accounting {
    pub fn as_str(self) -> &'static str {
        match self {
            Accounting::Process => "process",
            Accounting::Cgroup => "cgroup",
        }
    }
}

/// The path the network workload's traffic takes into a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerNetwork {
    /// To the container's own address on the engine's bridge: the
    /// isolation's data path (veth, bridge), no proxy.
    Bridge,
    /// To a port published on 127.0.0.1 (`-p`): through the engine's
    /// userland proxy where it runs one (docker-proxy), then the bridge.
    Published,
    /// The same port mapping through the kernel's NAT only: published on
    /// the bridge's gateway address and reached there, where the engine's
    /// DNAT rule in the host's OUTPUT chain sends it to the container before
    /// any proxy sees it (Docker's rule skips only 127.0.0.0/8). The
    /// daemon's configuration is not changed.
    PublishedNat,
    /// The host's own network stack.
    Host,
}

impl ContainerNetwork {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerNetwork::Bridge => "bridge",
            ContainerNetwork::Published => "published",
            ContainerNetwork::PublishedNat => "published-nat",
            ContainerNetwork::Host => "host",
        }
    }

    /// Whether the path goes through a published port.
    pub fn publishes(self) -> bool {
        matches!(self, ContainerNetwork::Published | ContainerNetwork::PublishedNat)
    }

    /// The engine's network mode for this path.
    pub fn engine_mode(self) -> &'static str {
        match self {
            ContainerNetwork::Bridge | ContainerNetwork::Published | ContainerNetwork::PublishedNat => "bridge",
            ContainerNetwork::Host => "host",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    pub const ALL: [Engine; 2] = [Engine::Docker, Engine::Podman];
}

/// How messages name the engine: "Docker", "Podman".
impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Docker => "Docker",
            Engine::Podman => "Podman",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// Every parameter the workload takes, defaults filled in, as sent to
    /// the agent and recorded with the run.
    pub params: BTreeMap<String, String>,
}

impl Workload {
    /// The boot workload, which takes no parameters.
    pub fn boot() -> Self {
        Workload {
            kind: WorkloadKind::Boot,
            params: BTreeMap::new(),
        }
    }

    /// A parameter as a number (they all are).
    pub fn param(&self, name: &str) -> Option<u64> {
        self.params.get(name).and_then(|v| v.parse().ok())
    }
}

/// The JSON Schema of a scenario file, from the types it is read into.
pub fn schema() -> serde_json::Value {
    raw::scenario_schema()
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the scenario: {e}"),
        ..Default::default()
    })?;
    parse(path, &text)
}

/// Validates scenario `text` read from `path` (used for messages and to
/// resolve relative file names).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    validate::validate(path, text)
}

/// CPUs this process may run on (affinity and cgroup quota applied; 1 when
/// unknown): the ceiling for a container's `cpus` and for a workload's
/// threads on containers and native. One definition, so both checks agree.
fn usable_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

impl Scenario {
    /// How many CPUs a native process or a container may use: the cpuset's,
    /// or the host's without one.
    pub fn target_cpus(&self) -> u64 {
        self.cpuset.as_ref().map_or_else(usable_cpus, |s| s.len() as u64)
    }
}

#[cfg(test)]
mod tests;
