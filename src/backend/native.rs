//! The baseline: the agent as a plain child process of vmbench.

use super::{collect_agent_report, ms_between, read_console, reader_stream, Backend, ConsoleEnd, TrialRequest, TrialResult};
use crate::console::Console;
use crate::guest;
use crate::protocol::Instructions;
use crate::record::TargetFacts;
use anyhow::Result;
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;
use tokio::process::Command;

pub struct NativeBackend {
    name: String,
    agent: Option<PathBuf>,
}

impl NativeBackend {
    pub fn new(name: &str) -> Self {
        NativeBackend {
            name: name.to_string(),
            agent: None,
        }
    }
}

/// The agent's argv for `request`.
pub fn argv(agent: &std::path::Path, request: &TrialRequest) -> Vec<String> {
    let mut instructions = Instructions::new(&request.nonce, request.workload.kind.as_str());
    instructions.params = request.workload.params.clone();
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
        let mut result = TrialResult::default();
        let Some(agent) = &self.agent else {
            result.fail("native target used before prepare");
            return result;
        };
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
        let end = read_console(&mut console, reader_stream(stdout), deadline).await;
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

    async fn cleanup(&mut self) -> Result<()> {
        // Children are killed on drop; nothing else outlives a trial.
        Ok(())
    }
}
