//! The workloads the agent can run, one file each behind [`Workload`].

mod boot;
mod cpu;
mod disk;
mod http;
pub mod memory;
pub mod network;
pub mod params;
pub mod serve;
pub mod sha256;
mod sql;
mod syscall;

use super::clock::Clock;
use std::collections::BTreeMap;

/// Metric name (with its unit as suffix, e.g. `ops_per_s`) to value.
pub type Metrics = BTreeMap<String, f64>;
/// Workload parameters as the host sent them (`vmbench.p.<name>=<value>`).
pub type Params = BTreeMap<String, String>;

/// Tells the host, mid-workload, the port the agent listens on, and the
/// server an application workload started.
pub type Announce = Box<dyn Fn(u16, Option<crate::protocol::ServerFacts>) + Send + Sync>;

/// Prints a region line: a begin (`None`) or an end with the units done.
pub type RegionLine = Box<dyn Fn(&str, Option<f64>) + Send + Sync>;

/// Where a workload runs, beyond its parameters.
#[derive(Clone)]
pub struct Env {
    /// Where to do disk I/O (`vmbench.scratch=`).
    pub scratch: Option<String>,
    /// Where to listen for the host (`vmbench.listen=`).
    pub listen: Option<String>,
    /// A VM's address on its NIC (`vmbench.addr=`, a tap network).
    pub address: Option<String>,
    /// The agent is a VM's init: drivers may need loading first.
    pub vm_init: bool,
    /// How the network workload announces its port.
    pub announce: std::sync::Arc<Announce>,
    /// The clock every timed region is measured on; workloads check their
    /// regions against its resolution with [`Clock::check`].
    pub clock: Clock,
    /// A VM's boot as the agent's ready line reported it; `None` elsewhere.
    pub startup: Option<Startup>,
    /// Tells the host where a region of work begins and ends, so it can
    /// report its own CPU time per unit of that work ([`Env::per_unit`]).
    pub region: std::sync::Arc<RegionLine>,
}

impl Env {
    /// Runs `work`, which returns its result and how many `unit`s it did,
    /// between a begin and an end line: the host reports the target's CPU
    /// time over it as `host_cpu_per_<unit>_us`. The lines are printed
    /// outside whatever `work` times itself.
    pub fn per_unit<T>(&self, unit: &str, work: impl FnOnce() -> Result<(T, f64), String>) -> Result<T, String> {
        (self.region)(unit, None);
        let (out, units) = work()?;
        (self.region)(unit, Some(units));
        Ok(out)
    }
}

/// The durations a VM's ready line reported, which the boot workload checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// `init_ns` of the ready line.
    pub init_ns: u64,
    /// `boottime_ns`: the guest kernel's boot up to init.
    pub boottime_ns: u64,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            scratch: None,
            listen: None,
            address: None,
            vm_init: false,
            announce: std::sync::Arc::new(Box::new(|_, _| {})),
            clock: Clock::measure(),
            startup: None,
            region: std::sync::Arc::new(Box::new(|_, _| {})),
        }
    }
}

/// One thing the agent measures inside a target.
pub trait Workload {
    /// The name scenarios and instructions use.
    fn name(&self) -> &'static str;
    /// The parameters it takes, with defaults and ranges.
    fn params(&self) -> &'static [params::ParamSpec];
    /// Runs once and returns its metrics, or the reason it could not run.
    fn run(&self, params: &Params, env: &Env) -> Result<Metrics, WorkloadError>;
}

/// Why a workload produced no metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadError {
    /// It tried and failed: a failed sample.
    Failed(String),
    /// This target cannot run it at all (no O_DIRECT on its file system,
    /// say): reported as not applicable, not as a failure.
    Unsupported(String),
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkloadError::Failed(m) => f.write_str(m),
            WorkloadError::Unsupported(m) => write!(f, "not applicable: {m}"),
        }
    }
}

impl From<String> for WorkloadError {
    fn from(message: String) -> Self {
        WorkloadError::Failed(message)
    }
}

impl From<&str> for WorkloadError {
    fn from(message: &str) -> Self {
        WorkloadError::Failed(message.to_string())
    }
}

/// Every workload this agent knows.
pub fn all() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(boot::Boot),
        Box::new(cpu::Cpu),
        Box::new(memory::Memory),
        Box::new(syscall::Syscall),
        Box::new(disk::Disk),
        Box::new(network::Network),
        Box::new(http::Http),
        Box::new(sql::Sql),
    ]
}

/// The workload called `name`.
pub fn find(name: &str) -> Option<Box<dyn Workload>> {
    all().into_iter().find(|w| w.name() == name)
}

/// Runs the workload called `name`.
pub fn run(name: &str, params: &Params, env: &Env) -> Result<Metrics, WorkloadError> {
    find(name)
        .ok_or_else(|| format!("this agent has no workload `{name}`"))?
        .run(params, env)
}
