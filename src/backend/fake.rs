//! A scripted backend for fast tests of the trial driver and the runner:
//! each launch plays a console byte stream (ready line, results, garbage,
//! silence) with pauses between its steps, then "exits" after a scripted
//! time. It stands beside the tests against real engines, never for them.

use super::{Backend, ExitStyle, Footprint, Gone, Launch, LaunchSpec, Started, Sweeper};
use crate::protocol::{AgentMessage, MAGIC};
use crate::rundir::{TargetFacts, TargetKind};
use crate::scenario::Workload;
use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One step of a scripted console.
#[derive(Debug, Clone)]
pub enum Step {
    Pause(Duration),
    /// The agent's ready line, with the launch's nonce.
    Ready {
        init_ms: f64,
    },
    /// A result line with these metrics.
    Result(Vec<(&'static str, f64)>),
    /// A ready line carrying another nonce (a previous launch's leftover).
    ForeignReady,
    /// Bytes that are not protocol lines.
    Garbage(&'static [u8]),
    Error(&'static str),
    Unsupported(&'static str),
    Done,
}

/// What one launch does.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub steps: Vec<Step>,
    /// After the console ends: how long until the target is gone.
    pub exit_after: Duration,
    /// The start fails with this message.
    pub start_error: Option<String>,
    /// Known before trying: not applicable, with this reason.
    pub not_applicable: Option<String>,
    /// vmbench's own work inside the start call (a cgroup join): spent
    /// before the console starts, and reported as not the target's.
    pub uncounted: Duration,
}

impl Script {
    /// A well-behaved agent: ready after `ready_after`, one result, done.
    pub fn good(ready_after: Duration, metrics: Vec<(&'static str, f64)>) -> Script {
        Script {
            steps: vec![
                Step::Pause(ready_after),
                Step::Ready { init_ms: 0.5 },
                Step::Result(metrics),
                Step::Done,
            ],
            exit_after: Duration::from_millis(2),
            ..Default::default()
        }
    }
}

/// Decides each launch's script from the launch number (from 0) and workload.
pub type Scripter = Arc<dyn Fn(usize, &Workload) -> Script + Send + Sync>;

/// Counts what the fake was asked to do.
#[derive(Debug, Default)]
pub struct Counters {
    pub launches: AtomicUsize,
    pub removed: AtomicUsize,
    pub sweeps: AtomicUsize,
    /// Scratch files that existed when a launch was set up.
    pub scratch_seen: Mutex<Vec<PathBuf>>,
}

pub struct FakeBackend {
    pub name: String,
    pub scripter: Scripter,
    pub counters: Arc<Counters>,
    pub scratch: PathBuf,
    /// What `prepare` records; a plain native-like target when `None`.
    pub facts: Option<TargetFacts>,
}

impl FakeBackend {
    pub fn new(name: &str, scratch: PathBuf, scripter: Scripter) -> Self {
        FakeBackend {
            name: name.to_string(),
            scripter,
            counters: Default::default(),
            scratch,
            facts: None,
        }
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn prepare(&mut self) -> Result<TargetFacts> {
        if let Some(facts) = &self.facts {
            return Ok(facts.clone());
        }
        Ok(TargetFacts {
            name: self.name.clone(),
            kind: TargetKind::Native,
            backend: "fake".into(),
            ..Default::default()
        })
    }

    fn not_applicable(&self, workload: &Workload) -> Option<String> {
        (self.scripter)(0, workload).not_applicable
    }

    fn scratch_dir(&self) -> PathBuf {
        self.scratch.clone()
    }

    fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Launch>, String> {
        let n = self.counters.launches.fetch_add(1, Ordering::SeqCst);
        if let Some(path) = spec.scratch.as_ref().filter(|p| p.exists()) {
            self.counters.scratch_seen.lock().unwrap().push(path.clone());
        }
        Ok(Box::new(FakeLaunch {
            script: (self.scripter)(n, &spec.workload),
            nonce: spec.instructions.nonce.clone(),
            counters: self.counters.clone(),
            console_end: Arc::new(Mutex::new(None)),
        }))
    }

    fn sweeper(&self) -> Option<Arc<dyn Sweeper>> {
        Some(Arc::new(FakeSweeper(self.counters.clone())))
    }
}

struct FakeSweeper(Arc<Counters>);

#[async_trait]
impl Sweeper for FakeSweeper {
    fn key(&self) -> String {
        "fake".into()
    }
    fn leftovers(&self) -> Option<super::Leftovers> {
        None
    }
    async fn sweep(&self, _run_id: &str, _interrupted: bool) -> Result<()> {
        self.0.sweeps.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct FakeLaunch {
    script: Script,
    nonce: String,
    counters: Arc<Counters>,
    /// When the scripted console ran out.
    console_end: Arc<Mutex<Option<Instant>>>,
}

/// The bytes of one protocol line.
fn line(nonce: &str, message: &AgentMessage) -> Bytes {
    Bytes::from(format!(
        "{MAGIC} {nonce} {}\n",
        serde_json::to_string(message).expect("serialisable")
    ))
}

fn bytes_of(step: &Step, nonce: &str) -> Option<Bytes> {
    let message = match step {
        Step::Pause(_) => return None,
        Step::Garbage(b) => return Some(Bytes::from_static(b)),
        Step::ForeignReady => return Some(line("0000000000000000", &ready(1.0))),
        Step::Ready { init_ms } => ready(*init_ms),
        Step::Result(metrics) => AgentMessage::Result {
            workload: "fake".into(),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        },
        Step::Error(m) => AgentMessage::Error { message: m.to_string() },
        Step::Unsupported(r) => AgentMessage::Unsupported { reason: r.to_string() },
        Step::Done => AgentMessage::Done,
    };
    Some(line(nonce, &message))
}

fn ready(init_ms: f64) -> AgentMessage {
    AgentMessage::Ready {
        boottime_ns: 1_000_000,
        init_ns: (init_ms * 1e6) as u64,
        pid: 1,
        rss_bytes: 4096,
        kernel: "fake".into(),
        clocksource: None,
        clock_getres_ns: None,
    }
}

#[async_trait]
impl Launch for FakeLaunch {
    async fn start(&mut self) -> Result<Started, String> {
        if let Some(e) = &self.script.start_error {
            return Err(e.clone());
        }
        tokio::time::sleep(self.script.uncounted).await;
        let (steps, nonce, end) = (self.script.steps.clone(), self.nonce.clone(), self.console_end.clone());
        let stream = futures_util::stream::unfold(steps.into_iter(), move |mut steps| {
            let (nonce, end) = (nonce.clone(), end.clone());
            async move {
                for step in steps.by_ref() {
                    if let Step::Pause(d) = step {
                        tokio::time::sleep(d).await;
                    } else if let Some(bytes) = bytes_of(&step, &nonce) {
                        return Some((Ok(bytes), steps));
                    }
                }
                *end.lock().unwrap() = Some(Instant::now());
                None
            }
        });
        Ok(Started {
            console: Box::pin(stream),
            phases: [("spawn_ms".to_string(), 0.25)].into_iter().collect(),
            pending: None,
            uncounted: self.script.uncounted,
        })
    }

    async fn address(&self, port: u16) -> Result<SocketAddr, String> {
        Ok(super::loopback(port))
    }

    fn footprint(&self) -> Footprint {
        Footprint::AgentReported
    }

    fn exit_style(&self) -> ExitStyle {
        ExitStyle::Stops { teardown: true }
    }

    async fn wait_gone(&mut self, deadline: tokio::time::Instant, _cleanly: bool) -> Gone {
        let from = self.console_end.lock().unwrap().unwrap_or_else(Instant::now);
        let at = tokio::time::Instant::from_std(from + self.script.exit_after);
        if at > deadline {
            tokio::time::sleep_until(deadline).await;
            return Gone {
                at: None,
                problem: Some("the fake did not exit in time".into()),
            };
        }
        tokio::time::sleep_until(at).await;
        Gone {
            at: Some(Instant::now()),
            problem: None,
        }
    }

    async fn remove(&mut self) -> Result<(), String> {
        self.counters.removed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
