//! The baseline: the agent as a plain child process of vmbench.

use super::{collect_agent_report, ms_between, read_console, reader_stream, Backend, ConsoleEnd, RunContext, TrialRequest, TrialResult};
use crate::console::Console;
use crate::guest;
use crate::protocol::Instructions;
use crate::record::TargetFacts;
use anyhow::Result;
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;
use tokio::process::Command;

pub struct NativeBackend {
    name: String,
    ctx: Arc<RunContext>,
    agent: Option<PathBuf>,
}

impl NativeBackend {
    pub fn new(name: &str, ctx: Arc<RunContext>) -> Self {
        NativeBackend {
            name: name.to_string(),
            ctx,
            agent: None,
        }
    }
}

/// The agent's argv for `request`.
pub fn argv(agent: &Path, request: &TrialRequest) -> Vec<String> {
    let mut instructions = Instructions::new(&request.nonce, request.workload.kind.as_str());
    instructions.params = request.workload.params.clone();
    instructions.scratch = request.scratch.clone();
    if request.workload.kind == "network" {
        // Any free port on loopback; the agent says which.
        instructions.listen = Some("127.0.0.1:0".into());
    }
    let mut argv = vec![agent.display().to_string()];
    argv.extend(instructions.to_tokens());
    argv
}

#[async_trait]
impl Backend for NativeBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        let agent = guest::agent::path()?;
        let example = TrialRequest {
            nonce: "repro".into(),
            workload: crate::scenario::Workload::boot(),
            timeout: std::time::Duration::from_secs(1),
            scratch: None,
        };
        let facts = TargetFacts {
            name: self.name.clone(),
            kind: "native".into(),
            backend: "native".into(),
            agent_sha256: guest::agent::sha256(),
            artifact_bytes: guest::agent::bytes().len() as u64,
            reproduce: argv(&agent, &example),
            ..Default::default()
        };
        self.agent = Some(agent);
        Ok(facts)
    }

    async fn run_trial(&mut self, request: &TrialRequest) -> TrialResult {
        let Some(agent) = self.agent.clone() else {
            return TrialResult::failed("native target used before prepare");
        };
        let mut request = request.clone();
        let disk = match super::disk_mib(&request.workload) {
            None => None,
            Some(mib) => {
                let made = self
                    .ctx
                    .scratch_for(&self.name)
                    .and_then(|dir| super::scratch_file(&dir, &format!("{}.img", request.nonce), mib));
                match made {
                    Ok(path) => Some(path),
                    Err(e) => return TrialResult::failed(format!("creating the scratch file: {e}")),
                }
            }
        };
        request.scratch = disk.as_ref().map(|p| p.display().to_string());
        let result = launch(&agent, &request).await;
        if let Some(path) = disk {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    async fn cleanup(&mut self) -> Result<()> {
        // Children are killed on drop; scratch files are removed per trial
        // and the run's scratch directory by the runner.
        Ok(())
    }
}

async fn launch(agent: &Path, request: &TrialRequest) -> TrialResult {
    let mut result = TrialResult::default();
    let argv = argv(agent, request);
    let deadline = tokio::time::Instant::now() + request.timeout;
    let launched = Instant::now();
    let spawned = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            result.fail(format!("cannot start {}: {e}", argv[0]));
            return result;
        }
    };
    result.metrics.insert("spawn_ms".into(), ms_between(launched, Instant::now()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut console = Console::new(&request.nonce);
    let network = super::network::NetworkClient::for_workload(&request.workload, Box::new(super::loopback));
    // The agent reports its own memory; nothing to start at ready.
    let end = read_console(&mut console, reader_stream(stdout), deadline, network, &mut result, || {}).await;
    if end == ConsoleEnd::TimedOut {
        let _ = child.kill().await;
    }
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => {
            result.metrics.insert("exit_ms".into(), ms_between(launched, Instant::now()));
            if !status.success() && console.report.error.is_none() {
                result.fail(format!("the agent exited with {status}"));
            }
        }
        Ok(Err(e)) => result.fail(format!("waiting for the agent: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            result.fail("timed out waiting for the agent to exit");
        }
    }
    collect_agent_report(&console, launched, end, &mut result);
    // The native target costs the host exactly the agent's own memory.
    if let Some(crate::protocol::AgentMessage::Ready { rss_bytes, .. }) = &console.report.ready {
        result.metrics.insert("mem_ready_bytes".into(), *rss_bytes as f64);
    }
    if let Some(peak) = result.metrics.get("agent_peak_rss_bytes").copied() {
        result.metrics.insert("mem_peak_bytes".into(), peak);
    }
    result
}
