//! The baseline: the agent as a plain child process of vmbench.

use super::cgroup::JoinClock;
use super::{Backend, Footprint, Gone, Launch, LaunchSpec, RunContext, Started};
use crate::guest;
use crate::protocol::Instructions;
use crate::rundir::{TargetFacts, TargetKind};
use crate::scenario::{NativeSpec, WorkloadKind};
use anyhow::{Context, Result};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;
use tokio::process::{Child, Command};

pub struct NativeBackend {
    name: String,
    spec: NativeSpec,
    ctx: Arc<RunContext>,
    agent: Option<PathBuf>,
}

impl NativeBackend {
    pub fn new(name: &str, spec: NativeSpec, ctx: Arc<RunContext>) -> Self {
        NativeBackend {
            name: name.to_string(),
            spec,
            ctx,
            agent: None,
        }
    }

    /// The program to run, its SHA-256 and size: the scenario's `agent`,
    /// else vmbench's own agent (written into the cache).
    fn program(&self) -> Result<(PathBuf, String, u64)> {
        match &self.spec.agent {
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("reading the agent program {}", path.display()))?;
                Ok((path.clone(), guest::sha256_hex(&bytes), bytes.len() as u64))
            }
            None => Ok((guest::agent::path()?, guest::agent::sha256(), guest::agent::bytes().len() as u64)),
        }
    }
}

/// The agent's argv for `spec`: the instructions, the scratch file as it
/// is, and any free port on loopback for a host-driven workload (the agent
/// says which).
pub fn argv(agent: &Path, spec: &LaunchSpec) -> Vec<String> {
    let mut instructions = spec.instructions.clone();
    instructions.scratch = spec.scratch.as_ref().map(|p| p.display().to_string());
    if spec.workload.kind.host_driven() {
        instructions.listen = Some("127.0.0.1:0".into());
    }
    let mut argv = vec![agent.display().to_string()];
    argv.extend(instructions.to_tokens());
    argv
}

#[async_trait]
impl Backend for NativeBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        let (agent, agent_sha256, agent_bytes) = self.program()?;
        let example = LaunchSpec {
            instructions: Instructions::new("repro", "boot"),
            workload: crate::scenario::Workload::boot(),
            scratch: None,
        };
        let facts = TargetFacts {
            name: self.name.clone(),
            kind: TargetKind::Native,
            backend: "native".into(),
            agent_sha256,
            artifact_bytes: agent_bytes,
            reproduce: argv(&agent, &example),
            cpuset: self.ctx.cpuset.as_ref().map(ToString::to_string),
            settings: [
                ("accounting".to_string(), self.ctx.accounting_setting("the agent")),
                (
                    "network_workload".to_string(),
                    "loopback (127.0.0.1), a port the agent chose".to_string(),
                ),
            ]
            .into_iter()
            .chain(self.spec.agent.as_deref().map(super::agent_setting))
            .collect(),
            ..Default::default()
        };
        self.agent = Some(agent);
        Ok(facts)
    }

    fn scratch_dir(&self) -> PathBuf {
        self.ctx.scratch_for(&self.name)
    }

    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        let agent = self.agent.as_ref().ok_or("native target used before prepare")?;
        let cgroup = super::launch_cgroup(&self.ctx, &self.name, &spec.instructions.nonce)?;
        Ok(Box::new(NativeLaunch {
            argv: argv(agent, &spec),
            cpuset: self.ctx.cpuset.clone(),
            cgroup,
            child: None,
            group: None,
            // Only where the agent starts a server: the directory is made
            // between the launch and the ready line.
            temp: matches!(spec.workload.kind, WorkloadKind::Http | WorkloadKind::Sql)
                .then(|| super::run_temp_dir(&self.ctx.run_id, &format!("{}-{}", self.name, spec.instructions.nonce))),
        }))
    }

    // Children are killed on drop; what is left is their cgroups.
    fn sweeper(&self) -> Option<Arc<dyn super::Sweeper>> {
        Some(Arc::new(super::CgroupSweeper))
    }
}

/// The agent as a child process, its stdout as the console.
struct NativeLaunch {
    argv: Vec<String>,
    cpuset: Option<crate::scenario::CpuSet>,
    /// The agent's own cgroup, where the host lets vmbench make one.
    cgroup: Option<super::cgroup::LaunchCgroup>,
    child: Option<Child>,
    /// The process group the agent leads (its pid), kept after the agent
    /// is reaped: a server's workers may outlive it in the group.
    group: Option<libc::pid_t>,
    /// The agent's `TMPDIR`, where an application workload's server keeps
    /// its files: removed with the launch (and by the run's sweep), even
    /// when the agent was killed before it could remove them itself. Only
    /// for the application workloads.
    temp: Option<std::path::PathBuf>,
}

#[async_trait]
impl Launch for NativeLaunch {
    async fn start(&mut self) -> Result<Started, String> {
        let mut command = Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // A process group of its own: a server the agent started (and
            // the workers that server forks) ends with it, by the group.
            .process_group(0)
            .kill_on_drop(true);
        super::pin_child(&mut command, self.cpuset.clone());
        super::die_with_vmbench(&mut command);
        let join = self.cgroup.as_ref().map(|cgroup| cgroup.join_in_child(&mut command));
        if let Some(temp) = &self.temp {
            std::fs::create_dir_all(temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
            command.env("TMPDIR", temp);
        }
        let spawning = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", self.argv[0]))?;
        let spawned = Instant::now();
        let uncounted = join.and_then(JoinClock::joined).unwrap_or_default();
        let stdout = child.stdout.take().expect("stdout is piped");
        self.group = child.id().map(|pid| pid as libc::pid_t);
        self.child = Some(child);
        Ok(Started {
            console: super::reader_stream(stdout),
            phases: super::spawn_phases(spawning, spawned, uncounted),
            pending: None,
            uncounted,
        })
    }

    async fn address(&self, port: u16) -> Result<SocketAddr, String> {
        Ok(super::loopback(port))
    }

    /// The agent's cgroup, as a container's; without one, the agent's own
    /// report of its RSS.
    fn footprint(&self) -> Footprint {
        match (&self.cgroup, self.child.as_ref().and_then(Child::id)) {
            (Some(cgroup), pid) => {
                let (memory, cpu) = (cgroup.memory.clone(), cgroup.cpu.clone());
                Footprint::Sampled(Box::new(move || Some(super::footprint::cgroup_reader(memory, cpu, pid))))
            }
            (None, _) => Footprint::AgentReported,
        }
    }

    async fn wait_gone(&mut self, deadline: tokio::time::Instant, _cleanly: bool) -> Gone {
        let Some(child) = self.child.as_mut() else {
            return Gone::default();
        };
        match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(status)) => Gone {
                at: Some(Instant::now()),
                problem: (!status.success()).then(|| format!("the agent exited with {status}")),
            },
            Ok(Err(e)) => Gone {
                at: None,
                problem: Some(format!("waiting for the agent: {e}")),
            },
            Err(_) => Gone {
                at: None,
                problem: Some("timed out waiting for the agent to exit".into()),
            },
        }
    }

    async fn remove(&mut self) -> Result<(), String> {
        self.kill_group();
        super::end_child(self.child.take(), self.cgroup.as_ref()).await;
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_dir_all(temp);
        }
        Ok(())
    }
}

impl NativeLaunch {
    /// Kills the agent's process group: whatever the agent started (an
    /// application workload's server and its workers) goes with it.
    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            // SAFETY: the group the agent leads (`process_group(0)`), also
            // after the agent was reaped: a group lives while any member
            // does, so its id is not reused meanwhile; a group already gone
            // makes kill fail harmlessly.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

/// Dropped without `remove` (an interrupted run): the group dies too.
impl Drop for NativeLaunch {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_dir_all(temp);
        }
    }
}
