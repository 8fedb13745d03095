//! The files a run leaves behind, as types: `run.json` ([`RunRecord`]) and
//! one line of `samples.jsonl` per trial ([`Sample`]). These are the output
//! schema; reports and comparisons read them back, so every field says what
//! it holds and in which unit.

use crate::guest::kernel::Kernel;
pub use crate::protocol::WorkloadKind;
pub use crate::scenario::{Engine, TargetKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any change that an older reader would misread.
pub const SCHEMA_VERSION: u32 = 1;

/// One trial's outcome: a line of `samples.jsonl`, written the moment the
/// trial ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    pub target: String,
    pub workload: WorkloadKind,
    /// Repetition number from 0, counted separately for warmups.
    pub rep: u32,
    /// Warmup samples are kept but not summarised.
    pub warmup: bool,
    /// Position in the run's execution order, from 0.
    pub seq: usize,
    pub ok: bool,
    /// Why the trial failed, with the last console lines; `None` when ok.
    pub error: Option<String>,
    /// Metric name (unit as suffix, e.g. `ready_ms`) to value.
    pub metrics: BTreeMap<String, f64>,
    /// `kvm` or `tcg` for VMs; `None` elsewhere.
    pub accel: Option<String>,
    /// The container runtime (`runc`, ...); `None` elsewhere.
    pub runtime: Option<String>,
    /// `uname -r` as the agent saw it.
    pub agent_kernel: Option<String>,
    /// UTC time the trial started, RFC 3339.
    pub started_at: String,
    /// The clock source of the kernel the agent ran on (`tsc`, `kvm-clock`,
    /// `jiffies`): every duration the agent measured came from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clocksource: Option<String>,
    /// What the agent saw of its machine: measured clock resolution, CPU
    /// model, flags and caches, huge pages, mitigations, available memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_facts: Option<crate::protocol::AgentFacts>,
    /// The server an application workload (`http`, `sql`) ran in the
    /// target: program, version, port, workers, settings, file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::protocol::ServerFacts>,
    /// Set when the target cannot run this workload at all (one such sample
    /// stands for the whole target × workload pair): why. Not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

impl Sample {
    /// A trial that went wrong (a not-applicable workload is not one).
    pub fn failed(&self) -> bool {
        !self.ok && self.not_applicable.is_none()
    }
}

/// A built artifact on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactFacts {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// True when this run found it in the cache instead of building it.
    pub reused: bool,
}

/// A locally built container image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageFacts {
    pub tag: String,
    pub id: String,
    /// Uncompressed size as the engine reports it.
    pub size_bytes: u64,
    pub reused: bool,
}

/// Everything about one target that changes its numbers, recorded before
/// the first launch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetFacts {
    pub name: String,
    pub kind: TargetKind,
    /// `qemu`, `libvirt`, `docker`, `podman` or `native`.
    pub backend: String,
    /// `kvm` or `tcg` (VMs): TCG numbers are emulation, not virtualisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// Why this accel was chosen (the KVM probe's verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The guest CPU model given to QEMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_cmdline: Option<String>,
    /// The initramfs of workloads without devices (what `artifact_bytes` counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<ArtifactFacts>,
    /// The initramfs with the kernel's virtio modules, for disk and network workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_drivers: Option<ArtifactFacts>,
    /// Container runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Container CPU limit in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageFacts>,
    pub agent_sha256: String,
    /// What has to be stored to launch this target, in bytes: kernel plus
    /// initramfs for a VM, the image for a container, the agent for native.
    pub artifact_bytes: u64,
    /// The exact argv that repeats one launch by hand.
    pub reproduce: Vec<String>,
    /// The host CPUs the target ran on (Linux list format); `None`: not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Other settings that change results (security options, limits, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// An optional target that cannot run on this host: why. Every workload
    /// of it is then not applicable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// The `[[guest]]` system the target ran, with its sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestFacts>,
    /// How long preparing the target took before any trial (finding or
    /// building its artifacts, probing the engine and KVM), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepare_ms: Option<f64>,
}

/// A guest system as a target ran it: its definition, what "ready" meant,
/// and its sizes: a root file system vmbench built as a tree, a disk and an
/// image, or the user's own image with its layers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuestFacts {
    pub name: String,
    /// Where the guest came from; runs recorded before there was a choice
    /// built root file systems only.
    #[serde(default)]
    pub source: GuestSourceKind,
    /// `agent` or `systemd`: PID 1 of the guest.
    pub init: String,
    /// What ready means: `agent` (the agent started as PID 1), `systemd`
    /// (the agent's unit started after `multi-user.target`), or the probe
    /// of an image run as it is (`tcp:80`, `console:<pattern>`).
    pub ready: String,
    /// The root file system's definition (`rootfs` guests; empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub distro: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suite: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mirror: String,
    /// The root file system's cache key (hash of its definition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rootfs_key: String,
    /// Bytes of the files in the tree (0 for an image of the user's own).
    #[serde(default)]
    pub tree_bytes: u64,
    /// The VM disk image: apparent size and allocated blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_allocated_bytes: Option<u64>,
    /// mmdebstrap's time, when this run built the tree (`None`: cached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<f64>,
    /// Time to add the agent to a copy of the tree, when this run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_build_ms: Option<f64>,
    /// Time to make the VM disk image, when this run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_build_ms: Option<f64>,
    /// How the VM booted it: `direct`, `bios` or `uefi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The user's own image the target's image was derived from (the agent
    /// added on top): `image`, `dockerfile` and `image_archive` guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<BaseImageFacts>,
    /// The user's own VM disk image (`disk` guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_image: Option<DiskImageFacts>,
}

/// The user's own VM disk image, as its file's header (and its backing
/// files') describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskImageFacts {
    /// The file the scenario named, as an absolute path.
    pub path: String,
    /// `qcow2` or `raw`: how QEMU opened it.
    pub format: String,
    /// What its header said (`qcow2 (version 3)`, `raw, GPT partition table`).
    pub detected: String,
    /// The disk's size as the guest sees it.
    pub virtual_bytes: u64,
    /// The backing files below it (a qcow2 overlay's), nearest first; empty
    /// for an image that stands alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backing_chain: Vec<String>,
}

/// Where a guest system came from: the scenario key that named it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestSourceKind {
    /// A distribution's tree built by vmbench.
    #[default]
    Rootfs,
    /// An image already in the engine.
    Image,
    /// An image built from the user's Dockerfile.
    Dockerfile,
    /// An image loaded from a `docker save` / OCI archive.
    ImageArchive,
    /// The user's own VM disk image.
    Disk,
}

impl GuestSourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestSourceKind::Rootfs => "rootfs",
            GuestSourceKind::Image => "image",
            GuestSourceKind::Dockerfile => "dockerfile",
            GuestSourceKind::ImageArchive => "image_archive",
            GuestSourceKind::Disk => "disk",
        }
    }
}

/// The user's own container image, as the engine describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseImageFacts {
    /// What the scenario named: the image reference, or the Dockerfile's or
    /// the archive's path.
    pub source: String,
    /// The reference vmbench ran it by: the scenario's, the tag vmbench gave
    /// the Dockerfile's build, or a reference the archive loaded.
    pub reference: String,
    /// The engine's image id (`sha256:...`).
    pub id: String,
    /// Uncompressed size as the engine reports it.
    pub size_bytes: u64,
    /// Its build history, oldest first, as `docker image history` lists it:
    /// every step with the bytes its layer added (0 for steps that only
    /// change metadata).
    pub layers: Vec<LayerFacts>,
    /// Time to build the Dockerfile or load the archive, when this run did
    /// (`None` for an image that was already in the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<f64>,
}

/// One step of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerFacts {
    /// The instruction that made it (`COPY ...`, `RUN ...`), as the engine
    /// recorded it.
    pub created_by: String,
    pub size_bytes: u64,
}

impl BaseImageFacts {
    /// The layers that hold files (the steps that only set metadata are 0 bytes).
    pub fn file_layers(&self) -> impl Iterator<Item = &LayerFacts> {
        self.layers.iter().filter(|l| l.size_bytes > 0)
    }

    /// A Dockerfile's image of 1.5 MiB and 1 KiB layers around a 0-byte step.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        let layer = |created_by: &str, size_bytes| LayerFacts {
            created_by: created_by.into(),
            size_bytes,
        };
        BaseImageFacts {
            source: "my/Dockerfile".into(),
            reference: "vmbench/build:ab".into(),
            id: "sha256:0123456789abcdef".into(),
            size_bytes: (3 << 19) + (1 << 10),
            layers: vec![
                layer("/bin/sh -c #(nop) COPY dir:1 in /app", 3 << 19),
                layer("/bin/sh -c #(nop)  ENV X=1", 0),
                layer("/bin/sh -c #(nop) COPY file:2 in /etc/app|conf", 1 << 10),
            ],
            build_ms: None,
        }
    }
}

impl GuestFacts {
    /// A guest whose root file system vmbench built.
    pub fn new(guest: &crate::scenario::Guest, built: &crate::guest::rootfs::Built) -> Self {
        let mut facts = GuestFacts::of(guest);
        if let Some(rootfs) = guest.rootfs() {
            facts.distro = rootfs.distro.as_str().to_string();
            facts.suite = rootfs.suite.clone();
            facts.packages = rootfs.packages.clone();
            facts.mirror = rootfs.mirror.clone();
        }
        facts.rootfs_key = built.key.clone();
        facts.tree_bytes = built.tree_bytes;
        facts.build_ms = built.build_ms;
        facts.agent_build_ms = built.agent_build_ms;
        facts
    }

    /// A guest that is the user's own image.
    pub fn own_image(guest: &crate::scenario::Guest, base: BaseImageFacts) -> Self {
        GuestFacts {
            base_image: Some(base),
            ..GuestFacts::of(guest)
        }
    }

    /// A guest that is the user's own VM disk.
    pub fn own_disk(guest: &crate::scenario::Guest, disk: DiskImageFacts) -> Self {
        GuestFacts {
            disk_image: Some(disk),
            ..GuestFacts::of(guest)
        }
    }

    fn of(guest: &crate::scenario::Guest) -> Self {
        use crate::scenario::GuestSource;
        GuestFacts {
            name: guest.name.clone(),
            source: match guest.source {
                GuestSource::Rootfs(_) => GuestSourceKind::Rootfs,
                GuestSource::Image(_) => GuestSourceKind::Image,
                GuestSource::Dockerfile(_) => GuestSourceKind::Dockerfile,
                GuestSource::ImageArchive(_) => GuestSourceKind::ImageArchive,
                GuestSource::Disk(_) => GuestSourceKind::Disk,
            },
            init: guest.init.as_str().to_string(),
            ready: guest
                .ready
                .as_ref()
                .map_or_else(|| guest.init.as_str().to_string(), crate::scenario::ReadyProbe::describe),
            ..Default::default()
        }
    }

    /// What the guest is, for a table: `debian bookworm`, or the source key
    /// and what it named (`dockerfile app/Dockerfile`).
    pub fn system(&self) -> String {
        match (&self.base_image, &self.disk_image) {
            (Some(base), _) => format!("{} {}", self.source.as_str(), base.source),
            (None, Some(disk)) => format!("disk {}", disk.path),
            (None, None) => format!("{} {}", self.distro, self.suite),
        }
    }
}

/// The host the run happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostFacts {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub physical_cores: Option<usize>,
    pub memory_bytes: u64,
    /// `/proc/sys/kernel/random/boot_id`: tells runs on the same boot apart.
    pub boot_id: String,
    /// cpu0's frequency governor (`performance`, `powersave`, `schedutil`);
    /// `None` without cpufreq (most VMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_governor: Option<String>,
    /// `/sys/devices/system/cpu/smt/control`: `on`, `off`, `forceoff`, `notsupported`, `notimplemented`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smt: Option<String>,
    /// Every file of `/sys/devices/system/cpu/vulnerabilities`: name → the
    /// kernel's text (`Not affected`, `Mitigation: ...`, `Vulnerable ...`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mitigations: BTreeMap<String, String>,
    /// Transparent huge pages: the selected mode of
    /// `/sys/kernel/mm/transparent_hugepage/enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thp: Option<String>,
    /// `/proc/loadavg` when the run started: 1, 5 and 15 minute averages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_avg: Option<[f64; 3]>,
    /// CPU time stolen by the hypervisor from this host (itself a VM) since
    /// it booted, all CPUs together, in seconds (`/proc/stat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_s: Option<f64>,
}

/// `running` while samples are being written; `complete`, `interrupted` or
/// `failed` once the run ended. A reader of a `running` run whose process is
/// gone is looking at a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Interrupted,
    Failed,
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    pub schema_version: u32,
    pub vmbench_version: String,
    pub run_id: String,
    pub status: RunStatus,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub scenario: ScenarioFacts,
    pub host: HostFacts,
    pub targets: Vec<TargetFacts>,
    /// Samples written, failed samples among them.
    pub samples: usize,
    pub failed_samples: usize,
    /// Why the run ended early, when it did.
    pub note: Option<String>,
    /// The git commit of the working directory vmbench ran in, if any.
    #[serde(default)]
    pub git: Option<GitFacts>,
    /// Free text from `--label`.
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitFacts {
    pub commit: String,
    /// `None` on a detached HEAD.
    pub branch: Option<String>,
    /// Tracked files differed from the commit (`None`: not known, as from
    /// a CI variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
    /// Where the facts came from: `git`, `GITHUB_SHA` or `CI_COMMIT_SHA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AutoFacts {
    pub min_repetitions: u32,
    pub max_repetitions: u32,
    /// The target relative half-width of the median's exact 95% interval
    /// (see `scenarios/README.md`); the name is kept from the CoV rule.
    pub target_cov: f64,
    pub outcomes: Vec<AutoOutcome>,
}

/// How `repetitions = "auto"` ended for one target × workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AutoOutcome {
    pub target: String,
    pub workload: WorkloadKind,
    /// The metric whose median's interval decided.
    pub metric: String,
    pub repetitions: u32,
    /// Its coefficient of variation over those repetitions (informative;
    /// runs before the interval rule stopped on it).
    pub cov: Option<f64>,
    /// The width of its exact 95% median interval over those repetitions,
    /// relative to the median: (high − low) / |median|. What the stopping
    /// rule compares with 2 × `target_cov`.
    #[serde(default)]
    pub median_ci_rel_width: Option<f64>,
    /// True when the stopping rule was met; false when the maximum was
    /// reached first.
    pub converged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScenarioFacts {
    pub name: String,
    pub description: String,
    pub path: String,
    /// The scenario file as it was read, credentials redacted
    /// (`crate::redact`): otherwise exactly its text.
    pub text: String,
    /// SHA-256 of `text` as recorded.
    pub sha256: String,
    /// After `--reps` / `--warmup`; with `auto`, the most.
    pub repetitions: u32,
    pub warmup: u32,
    /// `repetitions = "auto"`: the bounds, and what happened per target ×
    /// workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoFacts>,
    pub timeout_s: f64,
    pub workloads: Vec<WorkloadKind>,
    /// `--only` filter, empty when all targets ran.
    pub only: Vec<String>,
    /// The seed of the order of targets within each round (`--seed`
    /// repeats it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_seed: Option<u64>,
    /// The host CPUs every target ran on; `None`: not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// The CPUs vmbench itself ran on (the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpuset: Option<String>,
}
